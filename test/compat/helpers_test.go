package compat

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/sandbox"
)

// The shape every client test follows.
const (
	numRecords    = 10000
	numPartitions = 6
)

// startSandbox starts a 3-broker kfake cluster behind 3 peers on free
// loopback ports, logging to t.
func startSandbox(t testing.TB) *sandbox.Sandbox {
	t.Helper()
	return startSandboxWith(t, sandbox.Config{Brokers: 3, Peers: 3})
}

// startSandboxWith starts a sandbox from cfg (free ports, a 1 s metadata
// refresh and logs to t unless cfg says otherwise) and stops it with t.
func startSandboxWith(t testing.TB, cfg sandbox.Config) *sandbox.Sandbox {
	t.Helper()
	if cfg.MetadataRefresh == 0 {
		cfg.MetadataRefresh = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(newTWriter(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sb, err := sandbox.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start sandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := sb.Close(); err != nil {
			t.Errorf("sandbox close: %v", err)
		}
	})
	return sb
}

// closeConcurrently closes every client at once, so no group member sits
// in a JoinGroup waiting for one that is about to leave.
func closeConcurrently[C io.Closer](t testing.TB, cs []C) {
	t.Helper()
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Close(); err != nil {
				t.Errorf("close client %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
}

// tWriter sends component logs to t.Log until the test ends: a peer's
// gossip can log once more after the sandbox has closed, and a Log after
// the test completed panics the whole package ("Log in goroutine after
// ... has completed").
type tWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func newTWriter(t testing.TB) *tWriter {
	w := &tWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// direct returns a kadm client that talks to the kfake backend directly,
// bypassing the proxy, to check what really landed.
func direct(t testing.TB, sb *sandbox.Sandbox) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Backend.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

// consumed is one record as a client under test saw it.
type consumed struct {
	Topic     string // empty where the client does not say
	Partition int32
	Offset    int64
	Key       string
	Value     string
}

// recordKey and recordValue are what producers write for record i; the
// value carries i so per-partition order can be checked.
func recordKey(i int) string   { return fmt.Sprintf("key-%d", i%97) }
func recordValue(i int) string { return fmt.Sprintf("%08d", i) }

// checkConsumed verifies a client saw exactly records 0..n-1 once each,
// that offsets and values rise within each partition (one producer wrote
// them in order), and that equal keys landed in one partition.
func checkConsumed(t testing.TB, recs []consumed, n int) {
	t.Helper()
	if len(recs) != n {
		t.Errorf("consumed %d records, want %d", len(recs), n)
	}
	type tp struct {
		topic     string
		partition int32
	}
	seen := make(map[string]bool, n)
	keyPart := map[[2]string]int32{}
	byPart := map[tp][]consumed{}
	for _, r := range recs {
		if seen[r.Value] {
			t.Errorf("record %s consumed twice", r.Value)
		}
		seen[r.Value] = true
		k := [2]string{r.Topic, r.Key}
		if p, ok := keyPart[k]; ok && p != r.Partition {
			t.Errorf("key %s in partitions %d and %d", r.Key, p, r.Partition)
		}
		keyPart[k] = r.Partition
		byPart[tp{r.Topic, r.Partition}] = append(byPart[tp{r.Topic, r.Partition}], r)
	}
	for i := range n {
		if !seen[recordValue(i)] {
			t.Errorf("record %d never consumed", i)
			break
		}
	}
	for p, rs := range byPart {
		slices.SortFunc(rs, func(a, b consumed) int { return int(a.Offset - b.Offset) })
		for i := 1; i < len(rs); i++ {
			if rs[i].Value <= rs[i-1].Value {
				t.Errorf("%s partition %d: value %s at offset %d follows %s at offset %d", p.topic, p.partition, rs[i].Value, rs[i].Offset, rs[i-1].Value, rs[i-1].Offset)
				break
			}
		}
	}
}

// checkBackend verifies, directly on the backend, that topic holds n
// records in total and that group committed every partition's end offset.
func checkBackend(t testing.TB, sb *sandbox.Sandbox, topic, group string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, adm := direct(t, sb)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list start offsets: %v", err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := starts.Lookup(topic, o.Partition)
		total += o.Offset - s.Offset
	})
	if total != int64(n) {
		t.Errorf("backend holds %d records in %s (control records excluded only for non-transactional topics), want %d", total, topic, n)
	}
	if group == "" {
		return
	}
	waitCommitted(t, adm, topic, group, ends, 0)
}

// waitCommitted waits until group's committed offset on every non-empty
// partition of topic is within slack of its end offset (slack 1 allows for
// a transaction's final commit marker, which consumers never return).
func waitCommitted(t testing.TB, adm *kadm.Client, topic, group string, ends kadm.ListedOffsets, slack int64) {
	t.Helper()
	// Generous: on a starved machine (three suites at once) a group's
	// last commits took longer than 15 s to land, and in another such run
	// longer than a minute (peers without a write lease answer commits
	// COORDINATOR_LOAD_IN_PROGRESS until the next grant).
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Second)
	defer cancel()
	waitFor(t, 3*time.Minute, "committed offsets to reach end offsets", func() bool {
		com, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		ok := true
		ends.Each(func(o kadm.ListedOffset) {
			c, found := com.Lookup(topic, o.Partition)
			if o.Offset > 0 && (!found || c.At < o.Offset-slack || c.At > o.Offset) {
				ok = false
			}
		})
		return ok
	})
}

// createTopic creates topic through the proxy with a franz-go admin client.
func createTopic(t testing.TB, bootstrap []string, topic string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create topic %s: %v %v", topic, err, resp.Err)
	}
}

// needCommand returns the path of an external client, failing the test
// when it is missing: `make test` installs every client it needs, so a
// missing one is a broken setup, not a reason to skip.
func needCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not installed (make deps installs it): %v", name, err)
	}
	return p
}
