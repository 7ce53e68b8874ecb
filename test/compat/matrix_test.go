package compat

// The client-version matrix (docs/clients.md): every client at every version
// listed produces, consumes in a consumer group, commits, and resumes from
// its commits after a restart, through the proxy.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/sandbox"
)

var matrixDirect = flag.Bool("matrix.direct", false,
	"run TestMatrix against the kfake backend directly instead of through the proxy, "+
		"to tell a proxy bug from a backend limit")

// The matrix's shape: matrixRecords records, consumed and committed by one
// group member, then matrixMore more, which a restarted member must read
// and nothing else.
const (
	matrixRecords = 2000
	matrixMore    = 200
)

// matrixClient is one client at one version. Each call runs a fresh client
// bootstrapped on addr: produce writes records from..to-1 and returns once
// they are acknowledged; consume joins group as its only member, reads from
// the committed offsets (the earliest with none) until n records arrived,
// commits them and leaves.
type matrixClient struct {
	produce func(t *testing.T, addr, topic string, from, to int)
	consume func(t *testing.T, addr, topic, group string, n int) []consumed
}

// TestMatrix runs every client of the matrix, one after the other, against
// one sandbox.
func TestMatrix(t *testing.T) {
	sb := startSandbox(t)
	addrs := sb.Bootstrap
	if *matrixDirect {
		addrs = sb.Backend.ListenAddrs()
	}
	seen := observeVersions(sb.Backend)
	cases := []struct {
		name string
		open func(t *testing.T) matrixClient
	}{
		// From the oldest protocol sarama can speak to kfake (Produce v3
		// and record batches came with 0.11; docs/clients.md has what
		// happens below it) up to the newest sarama knows.
		{"sarama/V0_11_0_0", saramaMatrix(sarama.V0_11_0_0)},
		{"sarama/V1_0_0_0", saramaMatrix(sarama.V1_0_0_0)},
		{"sarama/V2_1_0_0", saramaMatrix(sarama.V2_1_0_0)},
		{"sarama/V3_6_0_0", saramaMatrix(sarama.V3_6_0_0)},
		{"sarama/V4_0_0_0", saramaMatrix(sarama.V4_0_0_0)},
		{"sarama/MaxVersion", saramaMatrix(sarama.MaxVersion)},
		{"franz-go/current", franzMatrix},
		{"franz-go/v1.21", franzOldMatrix},
		{"kafka-go", kafkaGoMatrix},
		{"kcat", kcatMatrix},
		{"confluent-kafka", rdkafkaMatrix},
		{"kafka-python", kafkaPythonMatrix},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			runMatrixCase(t, sb, addrs, seen, "matrix-"+strings.NewReplacer("/", "-", ".", "-").Replace(tc.name), tc.open(t))
			t.Logf("%s took %v", tc.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

// runMatrixCase produces, consumes and commits, then produces more and
// checks that a restarted member reads exactly the new records: nothing
// committed is read again and nothing is lost.
func runMatrixCase(t *testing.T, sb *sandbox.Sandbox, addrs []string, seen *versionsSeen, name string, c matrixClient) {
	topic, group := name, name+"-g"
	addr := func(i int) string { return addrs[i%len(addrs)] }
	createTopic(t, addrs[:1], topic, numPartitions)
	// The backend's versions are recorded only while the client runs, not
	// while the checks below ask the backend directly.
	seen.reset()
	defer func() {
		t.Logf("backend saw %s", seen)
		if t.Failed() {
			return
		}
		for _, k := range []int16{0, 1, 8, 11, 14} { // produce, fetch, commit, join, sync
			if len(seen.versions(k)) == 0 {
				t.Errorf("the backend saw no %s request from the client", kmsg.NameForKey(k))
			}
		}
	}()
	record := func(f func()) {
		seen.record(true)
		defer seen.record(false)
		f()
	}

	record(func() { c.produce(t, addr(0), topic, 0, matrixRecords) })
	var first []consumed
	record(func() { first = c.consume(t, addr(1), topic, group, matrixRecords) })
	checkConsumed(t, first, matrixRecords)
	checkBackend(t, sb, topic, group, matrixRecords)
	if t.Failed() {
		t.FailNow()
	}

	record(func() { c.produce(t, addr(2), topic, matrixRecords, matrixRecords+matrixMore) })
	var second []consumed
	record(func() { second = c.consume(t, addr(2), topic, group, matrixMore) })
	reread := 0
	for _, r := range second {
		if r.Value < recordValue(matrixRecords) {
			reread++
		}
	}
	if reread > 0 || len(second) != matrixMore {
		t.Errorf("restarted member read %d records (%d of them committed before), want the %d new ones", len(second), reread, matrixMore)
	}
	checkConsumed(t, append(first, second...), matrixRecords+matrixMore)
	checkBackend(t, sb, topic, group, matrixRecords+matrixMore)
}

// saramaMatrix is IBM/sarama at protocol version v: an idempotent sync
// producer and a consumer group with auto-commit.
func saramaMatrix(v sarama.KafkaVersion) func(*testing.T) matrixClient {
	return func(*testing.T) matrixClient {
		return matrixClient{
			produce: func(t *testing.T, addr, topic string, from, to int) {
				t.Helper()
				p, err := sarama.NewSyncProducer([]string{addr}, saramaProducerConfig(v, "matrix-producer"))
				if err != nil {
					t.Fatalf("sarama %s producer: %v", v, err)
				}
				msgs := make([]*sarama.ProducerMessage, 0, to-from)
				for i := from; i < to; i++ {
					msgs = append(msgs, &sarama.ProducerMessage{
						Topic: topic,
						Key:   sarama.StringEncoder(recordKey(i)),
						Value: sarama.StringEncoder(recordValue(i)),
					})
				}
				err = p.SendMessages(msgs)
				if cerr := p.Close(); err == nil {
					err = cerr
				}
				var perrs sarama.ProducerErrors
				if errors.As(err, &perrs) && len(perrs) > 0 {
					err = fmt.Errorf("%d of %d records failed, first: %w", len(perrs), len(msgs), perrs[0].Err)
				}
				if err != nil {
					t.Fatalf("sarama %s produce: %v", v, err)
				}
			},
			consume: func(t *testing.T, addr, topic, group string, n int) []consumed {
				t.Helper()
				cfg := saramaGroupConfig(v, "matrix-consumer")
				g, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
				if err != nil {
					t.Fatalf("sarama %s consumer group: %v", v, err)
				}
				gate := make(chan struct{})
				close(gate)
				h := &saramaHandler{gate: gate, done: make(chan struct{}), byMember: map[string]int{}, want: n}
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				var wg sync.WaitGroup
				wg.Go(func() {
					for err := range g.Errors() {
						t.Logf("sarama %s consumer group error: %v", v, err)
					}
				})
				wg.Go(func() {
					for ctx.Err() == nil {
						if err := g.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
							if errors.Is(err, sarama.ErrClosedConsumerGroup) {
								return
							}
							t.Logf("sarama %s consume: %v", v, err)
						}
					}
				})
				select {
				case <-h.done:
				case <-ctx.Done():
				}
				// Ending the session runs Cleanup, which commits; Close
				// flushes the offsets and leaves the group.
				cancel()
				if err := g.Close(); err != nil {
					t.Errorf("sarama %s close consumer group: %v", v, err)
				}
				wg.Wait()
				h.mu.Lock()
				defer h.mu.Unlock()
				return h.recs
			},
		}
	}
}

// franzMatrix is franz-go at the version in go.mod, in process.
func franzMatrix(t *testing.T) matrixClient {
	t.Logf("franz-go %s", moduleVersion("github.com/twmb/franz-go"))
	return matrixClient{
		produce: func(t *testing.T, addr, topic string, from, to int) {
			produceFranz(t, []string{addr}, topic, from, to)
		},
		consume: func(t *testing.T, addr, topic, group string, n int) []consumed {
			// consumeGroup reads only the bootstrap addresses of the sandbox.
			return consumeGroup(t, &sandbox.Sandbox{Bootstrap: []string{addr}}, topic, group, 1, n)
		},
	}
}

// franzOldMatrix is franz-go at the older version testdata/franzold/go.mod
// pins, built and run as a process.
func franzOldMatrix(t *testing.T) matrixClient {
	bin := filepath.Join(t.TempDir(), "franzold")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join("testdata", "franzold")
	// A go.work above the checkout must not pull the program into it.
	build.Env = append(os.Environ(), "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build testdata/franzold (make deps downloads its modules): %v\n%s", err, out)
	}
	checkVersion := func(t *testing.T, stderr string) {
		if !strings.HasPrefix(stderr, "franz-go v1.21.") {
			t.Errorf("franzold linked %q, want franz-go v1.21.x", strings.SplitN(stderr, "\n", 2)[0])
		}
	}
	return matrixClient{
		produce: func(t *testing.T, addr, topic string, from, to int) {
			_, stderr := runClient(t, 60*time.Second, bin, "produce", addr, topic, strconv.Itoa(from), strconv.Itoa(to))
			checkVersion(t, stderr)
		},
		consume: func(t *testing.T, addr, topic, group string, n int) []consumed {
			out, stderr := runClient(t, 75*time.Second, bin, "consume", addr, topic, group, strconv.Itoa(n), "60s")
			checkVersion(t, stderr)
			return parseRecordLines(t, out)
		},
	}
}

// kafkaGoMatrix is segmentio/kafka-go: a Writer, and a Reader in a group
// committing synchronously.
func kafkaGoMatrix(t *testing.T) matrixClient {
	t.Logf("kafka-go %s", moduleVersion("github.com/segmentio/kafka-go"))
	return matrixClient{
		produce: func(t *testing.T, addr, topic string, from, to int) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			w := kafkaGoWriter(t, addr, topic)
			msgs := make([]kafka.Message, 0, to-from)
			for i := from; i < to; i++ {
				msgs = append(msgs, kafka.Message{Key: []byte(recordKey(i)), Value: []byte(recordValue(i))})
			}
			err := w.WriteMessages(ctx, msgs...)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatalf("kafka-go write: %v", err)
			}
		},
		consume: func(t *testing.T, addr, topic, group string, n int) []consumed {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			r := kafkaGoReader(t, addr, group, topic, "kafka-go reader")
			defer func() {
				if err := r.Close(); err != nil {
					t.Errorf("kafka-go close reader: %v", err)
				}
			}()
			var recs []consumed
			var pending []kafka.Message
			for len(recs) < n {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					t.Errorf("kafka-go fetch after %d of %d records: %v", len(recs), n, err)
					return recs
				}
				recs = append(recs, consumed{Partition: int32(m.Partition), Offset: m.Offset, Key: string(m.Key), Value: string(m.Value)})
				// Commit every 100 records and at the end: one commit per
				// record would only make the case slow.
				if pending = append(pending, m); len(pending) == 100 || len(recs) == n {
					if err := r.CommitMessages(ctx, pending...); err != nil {
						t.Errorf("kafka-go commit: %v", err)
						return recs
					}
					pending = pending[:0]
				}
			}
			return recs
		},
	}
}

// kcatMatrix is librdkafka through kcat: `kcat -P` with an idempotent
// producer and a `kcat -G` member that commits as SIGTERM closes it.
func kcatMatrix(t *testing.T) matrixClient {
	kcat := needCommand(t, "kcat")
	if out, err := exec.Command(kcat, "-V").CombinedOutput(); err == nil {
		if i := bytes.Index(out, []byte("Version ")); i >= 0 {
			t.Logf("kcat %s", bytes.SplitN(out[i:], []byte("\n"), 2)[0])
		}
	}
	return matrixClient{
		produce: func(t *testing.T, addr, topic string, from, to int) {
			t.Helper()
			var in strings.Builder
			for i := from; i < to; i++ {
				fmt.Fprintf(&in, "%s:%s\n", recordKey(i), recordValue(i))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, kcat, "-P", "-b", addr, "-t", topic, "-K", ":",
				"-X", "acks=all", "-X", "enable.idempotence=true", "-X", "client.id=matrix-producer")
			cmd.Stdin = strings.NewReader(in.String())
			cmd.WaitDelay = 5 * time.Second
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("kcat -P: %v\n%s", err, out)
			}
		},
		consume: func(t *testing.T, addr, topic, group string, n int) []consumed {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 75*time.Second)
			defer cancel()
			total := &kcatCounter{}
			m := startKcatMember(ctx, t, kcat, "matrix-consumer", addr, group, topic, total)
			waitFor(t, 60*time.Second, fmt.Sprintf("kcat -G to consume %d records", n), func() bool { return total.get() >= n })
			m.stop(t, 20*time.Second)
			recs, bad := m.out.result()
			if len(bad) > 0 {
				t.Errorf("kcat printed %d unparsable lines, first %q", len(bad), bad[0])
			}
			return recs
		},
	}
}

// rdkafkaMatrix is librdkafka through python3-confluent-kafka
// (testdata/rdkclient.py): an idempotent producer and a group consumer
// committing synchronously.
func rdkafkaMatrix(t *testing.T) matrixClient {
	py := needCommand(t, pythonPath)
	script := testdataPath(t, "rdkclient.py")
	return matrixClient{
		produce: func(t *testing.T, addr, topic string, from, to int) {
			_, stderr := runClient(t, 60*time.Second, py, script, "produce", addr, topic, strconv.Itoa(from), strconv.Itoa(to))
			if from == 0 {
				t.Log(strings.SplitN(stderr, "\n", 2)[0])
			}
		},
		consume: func(t *testing.T, addr, topic, group string, n int) []consumed {
			out, _ := runClient(t, 75*time.Second, py, script, "consume", addr, topic, group, strconv.Itoa(n), "60")
			return parseRecordLines(t, out)
		},
	}
}

// kafkaPythonMatrix is kafka-python (testdata/pyclient.py), probing the
// broker version through the proxy.
func kafkaPythonMatrix(*testing.T) matrixClient {
	return matrixClient{
		produce: func(t *testing.T, addr, topic string, from, to int) {
			runPyclient(t, 60*time.Second, "produce", addr, topic, strconv.Itoa(to), strconv.Itoa(from))
		},
		consume: func(t *testing.T, addr, topic, group string, n int) []consumed {
			out, _ := runPyclient(t, 75*time.Second, "consume", addr, topic, group, strconv.Itoa(n), "60")
			return parseRecordLines(t, out)
		},
	}
}

// runClient runs an external client bounded by timeout and returns its
// stdout and stderr; stderr is logged when the test fails.
func runClient(t *testing.T, timeout time.Duration, name string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(cmd.Environ(), "PYTHONUNBUFFERED=1")
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v (context: %v)\n%s", filepath.Base(name), strings.Join(args, " "), err, ctx.Err(), errOut.String())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s %s stderr:\n%s", filepath.Base(name), strings.Join(args, " "), errOut.String())
		}
	})
	return out.String(), errOut.String()
}

// parseRecordLines parses "partition\toffset\tkey\tvalue" lines.
func parseRecordLines(t *testing.T, out string) []consumed {
	t.Helper()
	var recs []consumed
	for line := range strings.Lines(out) {
		r, ok := parseTabRecord(strings.TrimSuffix(line, "\n"))
		if !ok {
			t.Errorf("unparsable record line %q", line)
			continue
		}
		recs = append(recs, r)
	}
	return recs
}

// testdataPath is the absolute path of a file in testdata.
func testdataPath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// moduleVersion is the version of module path that go.mod selects (a test
// binary carries no dependency list in its build info).
func moduleVersion(path string) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", path).Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// versionsSeen records the versions of the requests the backend is sent
// for the keys of a produce-consume-commit cycle, while recording is on.
type versionsSeen struct {
	mu   sync.Mutex
	on   bool
	seen map[int16]map[int16]bool
}

// matrixKeys are the keys versionsSeen records: Produce, Fetch,
// ListOffsets, OffsetCommit, OffsetFetch, JoinGroup, Heartbeat,
// LeaveGroup, SyncGroup, InitProducerID.
var matrixKeys = []int16{0, 1, 2, 8, 9, 11, 12, 13, 14, 22}

// observeVersions installs observers (control functions that handle
// nothing) on every matrix key of c.
func observeVersions(c *kfake.Cluster) *versionsSeen {
	s := &versionsSeen{seen: map[int16]map[int16]bool{}}
	for _, k := range matrixKeys {
		c.ControlKey(k, func(req kmsg.Request) (kmsg.Response, error, bool) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.on {
				if s.seen[k] == nil {
					s.seen[k] = map[int16]bool{}
				}
				s.seen[k][req.GetVersion()] = true
			}
			return nil, nil, false
		})
	}
	return s
}

func (s *versionsSeen) record(on bool) {
	s.mu.Lock()
	s.on = on
	s.mu.Unlock()
}

func (s *versionsSeen) reset() {
	s.mu.Lock()
	clear(s.seen)
	s.mu.Unlock()
}

// versions are the versions of key seen, lowest first.
func (s *versionsSeen) versions(key int16) []int16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.seen[key]))
}

// String lists the versions per key, e.g. "Produce v3, Fetch v4-5".
func (s *versionsSeen) String() string {
	var parts []string
	for _, k := range matrixKeys {
		vs := s.versions(k)
		switch {
		case len(vs) == 0:
			continue
		case vs[0] == vs[len(vs)-1]:
			parts = append(parts, fmt.Sprintf("%s v%d", kmsg.NameForKey(k), vs[0]))
		default:
			parts = append(parts, fmt.Sprintf("%s v%d-%d", kmsg.NameForKey(k), vs[0], vs[len(vs)-1]))
		}
	}
	return strings.Join(parts, ", ")
}
