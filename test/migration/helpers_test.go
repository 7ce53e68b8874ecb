package migration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"maps"
	"net/http"
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
	"github.com/twmb/franz-go/pkg/kgo"
)

// pythonPath is the interpreter Debian's python3-kafka and
// python3-confluent-kafka are installed for; a python3 earlier on PATH
// (pyenv, venv) may lack them.
const pythonPath = "/usr/bin/python3"

// waitFor polls cond until it returns nil or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tWriter sends component logs to t.Log until the test ends.
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

// The admin API of issue 9.

// migrationJSON is GET /v1/migrations/{topic}. Started and switched are
// kept raw: the contract names them, not their encoding.
type migrationJSON struct {
	Topic        string          `json:"topic"`
	From         string          `json:"from"`
	To           string          `json:"to"`
	State        string          `json:"state"`
	Phase        string          `json:"phase"`
	Partitions   []partitionBase `json:"partitions"`
	GroupsBehind []string        `json:"groups_behind"`
	Started      json.RawMessage `json:"started"`
	Switched     json.RawMessage `json:"switched"`
	Error        string          `json:"error"`
}

type partitionBase struct {
	Partition int32 `json:"partition"`
	Base      int64 `json:"base"`
}

// bases returns the switch's base per partition.
func (m migrationJSON) bases() map[int32]int64 {
	out := map[int32]int64{}
	for _, p := range m.Partitions {
		out[p.Partition] = p.Base
	}
	return out
}

// adminAPI talks to the peers' admin APIs; writes go to any peer (a
// follower forwards them; a 307 to the leader is followed).
type adminAPI struct {
	urls []string // base URLs, "http://host:port"
	hc   *http.Client
}

func newAdminAPI(urls []string) *adminAPI {
	return &adminAPI{urls: urls, hc: &http.Client{Timeout: 15 * time.Second}}
}

// do sends one request to peer i and returns the status and body (bounded:
// a migration document is small).
func (a *adminAPI) do(ctx context.Context, i int, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.urls[i]+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// start POSTs a migration of topic to cluster through peer i and expects
// 202 with the job.
func (a *adminAPI) start(ctx context.Context, i int, topic, to string) (migrationJSON, error) {
	var m migrationJSON
	code, b, err := a.do(ctx, i, http.MethodPost, "/v1/migrations", map[string]string{"topic": topic, "to": to})
	if err != nil {
		return m, err
	}
	if code != http.StatusAccepted {
		return m, fmt.Errorf("POST /v1/migrations %s → %s: %d %s", topic, to, code, b)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("POST /v1/migrations answer %q: %w", b, err)
	}
	return m, nil
}

// get reads topic's migration from peer i.
func (a *adminAPI) get(ctx context.Context, i int, topic string) (migrationJSON, error) {
	var m migrationJSON
	code, b, err := a.do(ctx, i, http.MethodGet, "/v1/migrations/"+topic, nil)
	if err != nil {
		return m, err
	}
	if code != http.StatusOK {
		return m, fmt.Errorf("GET /v1/migrations/%s: %d %s", topic, code, b)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("GET /v1/migrations/%s answer %q: %w", topic, b, err)
	}
	return m, nil
}

// finish POSTs .../finish (with ?force=1 when force) and returns the status
// and body.
func (a *adminAPI) finish(ctx context.Context, i int, topic string, force bool) (int, []byte, error) {
	path := "/v1/migrations/" + topic + "/finish"
	if force {
		path += "?force=1"
	}
	return a.do(ctx, i, http.MethodPost, path, nil)
}

// waitState polls peer i (fast: phases can be short) until topic's
// migration is in one of states, and returns it. A failed or aborted
// migration ends the wait too, so the caller can say why.
func (a *adminAPI) waitState(t testing.TB, i int, topic string, timeout time.Duration, states ...string) migrationJSON {
	t.Helper()
	var m migrationJSON
	waitFor(t, timeout, fmt.Sprintf("migration of %s to reach %v", topic, states), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		if m, err = a.get(ctx, i, topic); err != nil {
			return err
		}
		if slices.Contains(states, m.State) || m.State == "failed" || m.State == "aborted" {
			return nil
		}
		return fmt.Errorf("state %s phase %s", m.State, m.Phase)
	})
	return m
}

// Records: every producer writes "<source>:<seq>" values, so a consumed
// record names the acknowledgement it must match.

// ack is one acknowledged record.
type ack struct {
	value     string
	partition int32
	offset    int64
	at        time.Time     // when the producer saw the acknowledgement
	latency   time.Duration // from produce call to acknowledgement
}

// ackLog collects one producer's acknowledgements and failures.
type ackLog struct {
	name  string
	mu    sync.Mutex
	acks  []ack
	fails []string
}

func (l *ackLog) add(a ack) {
	l.mu.Lock()
	l.acks = append(l.acks, a)
	l.mu.Unlock()
}

func (l *ackLog) fail(s string) {
	l.mu.Lock()
	l.fails = append(l.fails, s)
	l.mu.Unlock()
}

// counts is how many acknowledgements and failures l holds (no copy).
func (l *ackLog) counts() (int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks), len(l.fails)
}

func (l *ackLog) snapshot() ([]ack, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.acks), slices.Clone(l.fails)
}

// uncompressed makes franz-go write plain batches: its default, snappy,
// is a codec Debian's kafka-python cannot read (no python3-snappy), so the
// kafka-python group would consume nothing at all.
var uncompressed = kgo.ProducerBatchCompression(kgo.NoCompression())

// franzProducer produces "franz:<seq>" at rate records/s with an
// idempotent franz-go client (idempotence is kgo's default) until stop.
type franzProducer struct {
	log  *ackLog
	cl   *kgo.Client
	stop chan struct{}
	done chan struct{}
}

func startFranzProducer(t testing.TB, bootstrap []string, topic string, rate int) *franzProducer {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap...),
		kgo.DefaultProduceTopic(topic),
		kgo.ClientID("migration-franz-producer"),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond),
		uncompressed,
	)
	if err != nil {
		t.Fatal(err)
	}
	p := &franzProducer{log: &ackLog{name: "franz-go"}, cl: cl, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		const tick = 10 * time.Millisecond
		tk := time.NewTicker(tick)
		defer tk.Stop()
		start := time.Now()
		seq := 0
		for {
			select {
			case <-p.stop:
				return
			case <-tk.C:
			}
			// Paced by the clock: a stall (the fence) is made up for. On a
			// machine too busy to keep up, due runs ahead for good, so the
			// catch-up also watches for the stop (close would otherwise
			// wait on it forever).
			due := int(time.Since(start).Seconds()*float64(rate)) + 1
			for ; seq < due; seq++ {
				select {
				case <-p.stop:
					return
				default:
				}
				v := "franz:" + strconv.Itoa(seq)
				sent := time.Now()
				r := &kgo.Record{Key: []byte("franz-" + strconv.Itoa(seq%1000)), Value: []byte(v)}
				// Produce blocks while the buffer is full, which is what a
				// real application sees during the fence.
				cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
					if err != nil {
						p.log.fail(fmt.Sprintf("%s: %v", v, err))
						return
					}
					now := time.Now()
					p.log.add(ack{value: v, partition: r.Partition, offset: r.Offset, at: now, latency: now.Sub(sent)})
				})
			}
		}
	}()
	return p
}

// close stops producing, waits for every outstanding record and closes.
func (p *franzProducer) close(t testing.TB) {
	t.Helper()
	close(p.stop)
	<-p.done
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.cl.Flush(ctx); err != nil {
		t.Errorf("franz-go producer flush: %v", err)
	}
	p.cl.Close()
}

// rdkProducer runs testdata/rdkproducer.py (librdkafka, idempotent).
type rdkProducer struct {
	log   *ackLog
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
	errs  []string // client-level errors it reported (logged, not fatal)
	mu    sync.Mutex
	ended bool // "done" line seen
	stder bytes.Buffer
}

func startRdkProducer(t testing.TB, bootstrap []string, topic string, rate int) *rdkProducer {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("testdata", "rdkproducer.py"))
	if err != nil {
		t.Fatal(err)
	}
	p := &rdkProducer{log: &ackLog{name: "librdkafka"}, done: make(chan struct{})}
	p.cmd = exec.Command(pythonPath, script, strings.Join(bootstrap, ","), topic, strconv.Itoa(rate))
	p.cmd.Dir = filepath.Dir(script)
	p.cmd.Env = append(p.cmd.Environ(), "PYTHONUNBUFFERED=1")
	p.cmd.Stderr = &p.stder
	if f := os.Getenv("SY_RDK_LOG"); f != "" {
		lf, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		p.cmd.Stderr = lf
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", script, err)
	}
	t.Cleanup(func() {
		p.stdin.Close()
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			p.mu.Lock()
			defer p.mu.Unlock()
			for _, e := range p.errs {
				t.Logf("librdkafka producer reported: %s", e)
			}
			t.Logf("librdkafka producer stderr (tail):\n%s", tail(p.stder.String(), 8<<10))
		}
	})
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			f := strings.Split(sc.Text(), "\t")
			switch {
			case f[0] == "ack" && len(f) == 6:
				part, _ := strconv.ParseInt(f[2], 10, 32)
				off, err := strconv.ParseInt(f[3], 10, 64)
				if err != nil {
					off = -1 // never read as offset 0
				}
				ns, _ := strconv.ParseInt(f[4], 10, 64)
				us, _ := strconv.ParseInt(f[5], 10, 64)
				p.log.add(ack{value: "rdk:" + f[1], partition: int32(part), offset: off, at: time.Unix(0, ns), latency: time.Duration(us) * time.Microsecond})
			case f[0] == "fail":
				p.log.fail(strings.Join(f[1:], " "))
			case f[0] == "error":
				p.mu.Lock()
				p.errs = append(p.errs, strings.Join(f[1:], " "))
				p.mu.Unlock()
			case f[0] == "done":
				p.mu.Lock()
				p.ended = true
				p.mu.Unlock()
			default:
				p.log.fail("unparsable line " + strconv.Quote(sc.Text()))
			}
		}
		p.cmd.Wait()
	}()
	return p
}

// close stops producing, waits for the final flush and checks the exit.
func (p *rdkProducer) close(t testing.TB) {
	t.Helper()
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(3 * time.Minute):
		p.cmd.Process.Kill()
		<-p.done
		t.Errorf("librdkafka producer did not finish within 3m of the stop")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.errs {
		t.Logf("librdkafka producer reported: %s", e)
	}
	if !p.ended || p.cmd.ProcessState == nil || !p.cmd.ProcessState.Success() {
		t.Errorf("librdkafka producer did not end cleanly (%v); stderr:\n%s", p.cmd.ProcessState, p.stder.String())
	}
}

// consumedRec is one record as a client under test saw it, in the order it
// saw them.
type consumedRec struct {
	partition int32
	offset    int64
	value     string
}

// recLog collects one consumer group's records and the position losses
// (OFFSET_OUT_OF_RANGE, resets, truncation) it reported.
type recLog struct {
	name     string
	mu       sync.Mutex
	recs     []consumedRec
	pos      map[int32]int64 // the next offset per partition, kept by add
	problems []string
	lastWarn string // the client's last warning, for progress lines
}

func (l *recLog) warn(s string) {
	l.mu.Lock()
	l.lastWarn = s
	l.mu.Unlock()
}

func (l *recLog) lastWarning() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastWarn
}

func (l *recLog) add(rs ...consumedRec) {
	l.mu.Lock()
	l.recs = append(l.recs, rs...)
	if l.pos == nil {
		l.pos = map[int32]int64{}
	}
	for _, r := range rs {
		l.pos[r.partition] = max(l.pos[r.partition], r.offset+1)
	}
	l.mu.Unlock()
}

func (l *recLog) problem(s string) {
	l.mu.Lock()
	if len(l.problems) < 100 {
		l.problems = append(l.problems, s)
	}
	l.mu.Unlock()
}

func (l *recLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recs)
}

// problemList is a copy of l's problems alone.
func (l *recLog) problemList() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.problems)
}

func (l *recLog) snapshot() ([]consumedRec, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recs), slices.Clone(l.problems)
}

// positions is the next offset the group will consume per partition. (Kept
// as records arrive: a scan of millions of records under the lock, polled,
// held the consumers' handlers up and slowed the very groups a test waits
// for.)
func (l *recLog) positions() map[int32]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.pos)
}

// since returns the records from the i-th on (a copy) and how many there
// are in all, for a reader that keeps up incrementally.
func (l *recLog) since(i int) ([]consumedRec, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i > len(l.recs) {
		i = len(l.recs)
	}
	return slices.Clone(l.recs[i:]), len(l.recs)
}

// franzGroup is a one-member franz-go consumer group that keeps up.
type franzGroup struct {
	log       *recLog
	cl        *kgo.Client
	done      chan struct{}
	closeOnce sync.Once
}

// positionLogger reports kgo's log lines that mean a consumer lost its
// position: OFFSET_OUT_OF_RANGE handling and KIP-320 truncation.
type positionLogger struct{ l *recLog }

func (positionLogger) Level() kgo.LogLevel { return kgo.LogLevelInfo }
func (p positionLogger) Log(level kgo.LogLevel, msg string, kv ...any) {
	m := strings.ToLower(msg)
	if level <= kgo.LogLevelWarn {
		p.l.warn(fmt.Sprintf("%s %v", msg, kv))
	}
	if strings.Contains(m, "offset_out_of_range") || strings.Contains(m, "truncat") || strings.Contains(m, "data loss") {
		p.l.problem(fmt.Sprintf("kgo %v: %s %v", level, msg, kv))
	}
}

func startFranzGroup(t testing.TB, bootstrap []string, topic, group string) *franzGroup {
	t.Helper()
	g := &franzGroup{log: &recLog{name: "franz-go group " + group}, done: make(chan struct{})}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap...),
		kgo.ClientID("migration-franz-group"),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		// No reset: an OFFSET_OUT_OF_RANGE is returned from PollFetches
		// instead of being papered over (the group starts at the
		// beginning: it has no commit).
		kgo.ConsumeResetOffset(kgo.NoResetOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.WithLogger(positionLogger{g.log}),
	)
	if err != nil {
		t.Fatal(err)
	}
	g.cl = cl
	go func() {
		defer close(g.done)
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			fs.EachError(func(topic string, p int32, err error) {
				if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
					return
				}
				var session *kgo.ErrGroupSession
				if errors.As(err, &session) {
					// The group's join or heartbeat failed (a leader-kill
					// case: the group's coordinator was presented by the
					// SIGKILLed peer, and kgo's join could not dial it):
					// kgo looks the coordinator up again and rejoins by
					// itself, telling the poller only so it knows. What the
					// group then consumes is checked record by record.
					g.log.warn(fmt.Sprintf("fetch %s/%d: %v", topic, p, err))
					return
				}
				g.log.problem(fmt.Sprintf("fetch %s/%d: %v", topic, p, err))
			})
			var rs []consumedRec
			fs.EachRecord(func(r *kgo.Record) {
				rs = append(rs, consumedRec{partition: r.Partition, offset: r.Offset, value: string(r.Value)})
			})
			g.log.add(rs...)
		}
	}()
	return g
}

// close commits what was polled (so a finish sees the group at the end)
// and leaves the group. Closing twice is harmless.
func (g *franzGroup) close() {
	g.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.cl.CommitUncommittedOffsets(ctx); err != nil {
			g.log.problem(fmt.Sprintf("final commit: %v", err))
		}
		g.cl.Close()
		<-g.done
	})
}

// saramaGroup is a one-member sarama consumer group that stops taking
// records once it has pauseAt of them, until resume is called.
type saramaGroup struct {
	log       *recLog
	g         sarama.ConsumerGroup
	pauseAt   int
	paused    chan struct{} // closed once pauseAt records are in
	pauseOnce sync.Once     // claims run one goroutine per partition
	resumeC   chan struct{}
	once      sync.Once
	closeOnce sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

func startSaramaGroup(t testing.TB, bootstrap []string, topic, group string, pauseAt int) *saramaGroup {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.ClientID = "migration-sarama-group"
	cfg.Metadata.Retry.Max = 30
	cfg.Metadata.Retry.Backoff = 200 * time.Millisecond
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = true
	cfg.Consumer.Offsets.AutoCommit.Interval = 500 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Group.Heartbeat.Interval = 1 * time.Second
	cfg.Consumer.Group.Session.Timeout = 30 * time.Second
	cfg.Consumer.Group.Rebalance.Timeout = 30 * time.Second
	cfg.Consumer.MaxWaitTime = 250 * time.Millisecond
	// A paused handler must not be taken for a stuck one.
	cfg.Consumer.MaxProcessingTime = 10 * time.Minute
	if f := os.Getenv("SY_SARAMA_LOG"); f != "" {
		lf, _ := os.Create(f)
		sarama.Logger = stdlog.New(lf, "", stdlog.LstdFlags|stdlog.Lmicroseconds)
	}
	g, err := sarama.NewConsumerGroup(bootstrap, group, cfg)
	if err != nil {
		t.Fatalf("sarama group: %v", err)
	}
	s := &saramaGroup{log: &recLog{name: "sarama group " + group}, g: g, pauseAt: pauseAt,
		paused: make(chan struct{}), resumeC: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		for err := range g.Errors() {
			s.log.problem(fmt.Sprintf("sarama consumer error: %v", err))
		}
	}()
	go func() {
		defer s.wg.Done()
		sessions := 0
		for s.ctx.Err() == nil {
			sessions++
			if sessions > 1 {
				// One member, nothing joins: a second session is a
				// rebalance the proxy caused.
				t.Logf("sarama group: session %d (rebalance)", sessions)
			}
			if err := g.Consume(s.ctx, []string{topic}, s); err != nil && s.ctx.Err() == nil {
				if errors.Is(err, sarama.ErrClosedConsumerGroup) {
					return
				}
				s.log.problem(fmt.Sprintf("sarama consume: %v", err))
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	return s
}

func (s *saramaGroup) resume() { s.once.Do(func() { close(s.resumeC) }) }

// close ends the session (Cleanup commits) and leaves the group. Closing
// twice is harmless.
func (s *saramaGroup) close(t testing.TB) {
	s.closeOnce.Do(func() {
		s.resume()
		s.cancel()
		if err := s.g.Close(); err != nil {
			t.Errorf("sarama group close: %v", err)
		}
		s.wg.Wait()
	})
}

func (s *saramaGroup) Setup(sarama.ConsumerGroupSession) error { return nil }

func (s *saramaGroup) Cleanup(sess sarama.ConsumerGroupSession) error {
	sess.Commit()
	return nil
}

func (s *saramaGroup) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		if s.log.count() >= s.pauseAt {
			s.pauseOnce.Do(func() { close(s.paused) })
			select {
			case <-s.resumeC:
			case <-sess.Context().Done():
				return nil
			}
		}
		select {
		case <-sess.Context().Done():
			return nil
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			s.log.add(consumedRec{partition: m.Partition, offset: m.Offset, value: string(m.Value)})
			sess.MarkMessage(m, "")
		}
	}
}

// pyGroup runs testdata/kpyconsumer.py (kafka-python).
type pyGroup struct {
	log   *recLog
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
	ended bool
	mu    sync.Mutex
	stder bytes.Buffer
}

// stderr is what the consumer logged so far (warnings and errors).
func (g *pyGroup) stderr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stder.String()
}

// startPyGroup starts the consumer, collecting into l (l.name is
// "kafka-python group <group>").
func startPyGroup(t testing.TB, bootstrap, topic string, l *recLog) *pyGroup {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("testdata", "kpyconsumer.py"))
	if err != nil {
		t.Fatal(err)
	}
	group := strings.TrimPrefix(l.name, "kafka-python group ")
	g := &pyGroup{log: l, done: make(chan struct{})}
	g.cmd = exec.Command(pythonPath, script, bootstrap, topic, group)
	g.cmd.Dir = filepath.Dir(script)
	g.cmd.Env = append(g.cmd.Environ(), "PYTHONUNBUFFERED=1")
	g.cmd.Stderr = &lockedWriter{mu: &g.mu, w: &g.stder}
	if g.stdin, err = g.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := g.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", script, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kafka-python group stderr:\n%s", g.stderr())
		}
		g.stdin.Close()
		select {
		case <-g.done:
		case <-time.After(30 * time.Second):
			g.cmd.Process.Kill()
			<-g.done
		}
	})
	go func() {
		defer close(g.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			f := strings.Split(sc.Text(), "\t")
			switch {
			case f[0] == "rec" && len(f) == 4:
				part, _ := strconv.ParseInt(f[1], 10, 32)
				off, _ := strconv.ParseInt(f[2], 10, 64)
				g.log.add(consumedRec{partition: int32(part), offset: off, value: f[3]})
			case f[0] == "oor" || f[0] == "reset":
				g.log.problem("kafka-python " + strings.Join(f, " "))
			case f[0] == "done":
				g.ended = true
			default:
				g.log.problem("kafka-python: unparsable line " + strconv.Quote(sc.Text()))
			}
		}
		g.cmd.Wait()
	}()
	return g
}

func (g *pyGroup) close(t testing.TB) {
	t.Helper()
	g.stdin.Close()
	select {
	case <-g.done:
	case <-time.After(time.Minute):
		g.cmd.Process.Kill()
		<-g.done
		t.Errorf("kafka-python group did not stop within 1m")
	}
	if !g.ended || g.cmd.ProcessState == nil || !g.cmd.ProcessState.Success() {
		t.Errorf("kafka-python group did not end cleanly (%v); stderr:\n%s", g.cmd.ProcessState, g.stderr())
	}
}

// ackIndex is every acknowledged record by value.
func ackIndex(t testing.TB, logs ...*ackLog) (map[string]ack, int) {
	t.Helper()
	idx := map[string]ack{}
	for _, l := range logs {
		acks, fails := l.snapshot()
		for _, f := range fails {
			t.Errorf("%s producer: record failed: %s", l.name, f)
		}
		for _, a := range acks {
			if prev, dup := idx[a.value]; dup {
				t.Errorf("%s acknowledged %s twice (at %d/%d and %d/%d)", l.name, a.value, prev.partition, prev.offset, a.partition, a.offset)
			}
			idx[a.value] = a
		}
	}
	return idx, len(idx)
}

// waitCaughtUp waits until l holds every acknowledged record: it fails
// when the group delivers none of the missing ones for stall (a loaded
// machine slows a group down; a stall is what this catches), or after
// three times that in all. The records are read incrementally.
func waitCaughtUp(t testing.TB, l *recLog, acked map[string]ack, stall time.Duration) {
	t.Helper()
	missing := make(map[string]bool, len(acked))
	for v := range acked {
		missing[v] = true
	}
	start, moved, read := time.Now(), time.Now(), 0
	for {
		var recs []consumedRec
		recs, read = l.since(read)
		before := len(missing)
		for _, r := range recs {
			delete(missing, r.value)
		}
		if len(missing) == 0 {
			return
		}
		if len(missing) != before {
			moved = time.Now()
		}
		if time.Since(moved) > stall || time.Since(start) > 3*stall {
			var list []string
			for v := range missing {
				a := acked[v]
				list = append(list, fmt.Sprintf("%s acknowledged at %d/%d %s", v, a.partition, a.offset, a.at.Format("15:04:05.000")))
			}
			slices.Sort(list)
			t.Fatalf("%s to consume every acknowledged record: %d of %d not consumed, none for %v (%v in all): %v",
				l.name, len(missing), len(acked), time.Since(moved).Round(time.Second), time.Since(start).Round(time.Second), list[:min(len(list), 8)])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// resolveUnknownOffsets fills in the offsets of records a producer was
// told were delivered without an offset (librdkafka's idempotent producer
// reports some so, see testdata/rdkproducer.py) from where a group
// consumed them, in the partition they were acknowledged in. It returns
// how many it resolved; one consumed twice or elsewhere is left for the
// checks to report.
func resolveUnknownOffsets(t testing.TB, acked map[string]ack, from *recLog) int {
	t.Helper()
	recs, _ := from.snapshot()
	at := make(map[string]consumedRec, len(recs))
	for _, r := range recs {
		if _, dup := at[r.value]; !dup {
			at[r.value] = r
		}
	}
	n := 0
	for v, a := range acked {
		if a.offset >= 0 {
			continue
		}
		if r, ok := at[v]; ok && r.partition == a.partition {
			a.offset = r.offset
			acked[v] = a
			n++
		}
	}
	return n
}

// checkAcked verifies the producers' view: within each partition the
// acknowledged offsets are exactly 0..n-1 (nothing written twice, nothing
// written that was not acknowledged, no hole in the virtual offsets) and
// each producer's sequence rises with the offset.
func checkAcked(t testing.TB, acked map[string]ack) {
	t.Helper()
	byPart := map[int32][]ack{}
	for _, a := range acked {
		byPart[a.partition] = append(byPart[a.partition], a)
	}
	for p, as := range byPart {
		slices.SortFunc(as, func(a, b ack) int { return int(a.offset - b.offset) })
		last := map[string]int64{}
		for i, a := range as {
			if a.offset != int64(i) {
				t.Errorf("partition %d: acknowledged offsets are not contiguous from 0: %s at %d where %d was due", p, a.value, a.offset, i)
				break
			}
			src, seq := splitValue(a.value)
			if prev, ok := last[src]; ok && seq <= prev {
				t.Errorf("partition %d: %s at offset %d after %s:%d", p, a.value, a.offset, src, prev)
				break
			}
			last[src] = seq
		}
	}
}

func splitValue(v string) (string, int64) {
	src, s, _ := strings.Cut(v, ":")
	n, _ := strconv.ParseInt(s, 10, 64)
	return src, n
}

// checkGroup verifies one group consumed every acknowledged record exactly
// once at the offset its producer was told, in per-partition order with
// offsets rising by exactly 1 from 0 (no transactions here, so no control
// records to skip), and reported no position loss. It returns the
// duplicates and losses.
func checkGroup(t testing.TB, l *recLog, acked map[string]ack) (dups, losses int) {
	t.Helper()
	recs, problems := l.snapshot()
	for _, p := range problems {
		t.Errorf("%s: %s", l.name, p)
	}
	// A record consumed again at the offset it was first consumed at is
	// a redelivery: the group went back to its last commit (a member's
	// session expired on a starved machine, a commit failed), Kafka's
	// at-least-once, and the log is unchanged. Reported, not failed. A
	// record at a second offset is stored twice: a duplicate.
	type at struct {
		partition int32
		offset    int64
	}
	first := make(map[string]at, len(recs))
	next := map[int32]int64{}
	orderErrs, unknown, moved, redelivered := 0, 0, 0, 0
	for _, r := range recs {
		if f, ok := first[r.value]; ok {
			if f == (at{r.partition, r.offset}) {
				redelivered++
			} else {
				dups++
				if dups <= 5 {
					t.Errorf("%s: %s consumed again at %d/%d, first at %d/%d", l.name, r.value, r.partition, r.offset, f.partition, f.offset)
				}
			}
		} else {
			first[r.value] = at{r.partition, r.offset}
		}
		a, ok := acked[r.value]
		switch {
		case !ok:
			unknown++
			if unknown <= 5 {
				t.Errorf("%s: consumed %q at %d/%d, which no producer had acknowledged", l.name, r.value, r.partition, r.offset)
			}
		case a.partition != r.partition || a.offset != r.offset:
			moved++
			if moved <= 5 {
				t.Errorf("%s: %s consumed at %d/%d, acknowledged at %d/%d", l.name, r.value, r.partition, r.offset, a.partition, a.offset)
			}
		}
		switch due := next[r.partition]; {
		case r.offset == due:
		case r.offset < due && first[r.value] == (at{r.partition, r.offset}):
			// Back to an offset already read, the same record there: a
			// redelivery (counted above).
		default:
			orderErrs++
			if orderErrs <= 5 {
				t.Errorf("%s: partition %d: offset %d (%s) where %d was due", l.name, r.partition, r.offset, r.value, due)
			}
		}
		next[r.partition] = r.offset + 1
	}
	for v := range acked {
		if _, ok := first[v]; !ok {
			losses++
			if losses <= 5 {
				a := acked[v]
				t.Errorf("%s: %s (acknowledged at %d/%d) never consumed", l.name, v, a.partition, a.offset)
			}
		}
	}
	if orderErrs+unknown+moved > 0 {
		t.Errorf("%s: %d records out of order or not contiguous, %d unknown, %d at another offset than acknowledged", l.name, orderErrs, unknown, moved)
	}
	t.Logf("%s: consumed %d records, %d duplicates, %d lost, %d redelivered from a commit", l.name, len(recs), dups, losses, redelivered)
	return dups, losses
}

// pauseStats prints a producer's pause around one switch: the gaps between
// consecutive acknowledgements and the produce latencies of the records
// acknowledged in [from, to].
func pauseStats(t testing.TB, what string, l *ackLog, from, to time.Time) {
	t.Helper()
	acks, _ := l.snapshot()
	var times []time.Time
	var lats []time.Duration
	for _, a := range acks {
		if !a.at.Before(from) && !a.at.After(to) {
			times = append(times, a.at)
			lats = append(lats, a.latency)
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	var gaps []time.Duration
	for i := 1; i < len(times); i++ {
		gaps = append(gaps, times[i].Sub(times[i-1]))
	}
	if len(times) < 2 {
		t.Logf("%s %s producer: %d acknowledgements in the window, no pause figure", what, l.name, len(times))
		return
	}
	t.Logf("%s %s producer: pause (max gap between acks) %v; ack gaps p50 %v p99 %v; produce latency p50 %v p99 %v max %v (%d records, goal p99 ≤ 1s)",
		what, l.name, pct(gaps, 100), pct(gaps, 50), pct(gaps, 99), pct(lats, 50), pct(lats, 99), pct(lats, 100), len(times))
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	i = min(max(i-1, 0), len(s)-1)
	return s[i].Round(time.Millisecond)
}

// tail is the last n bytes of s, from a line start.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
