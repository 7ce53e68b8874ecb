package offsetreset

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/node"
)

// testLevel is the component log level (SWITCHYARD_TEST_LOG, default warn).
func testLevel() slog.Level {
	lv := slog.LevelWarn
	if s := os.Getenv("SWITCHYARD_TEST_LOG"); s != "" {
		_ = lv.UnmarshalText([]byte(strings.ToUpper(s)))
	}
	return lv
}

// testTiming is node.SharedMachineTiming:
// FastTiming's 250 ms lease loses the leader again and again on two shared
// cores with client processes running.
func testTiming() *node.Timing {
	t := node.SharedMachineTiming()
	return &t
}

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

// needCommand is the path of an external client the test runs; like
// test/migration and test/compat, a missing one fails the test (make deps
// installs it) rather than skipping it.
func needCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not installed (make deps installs it): %v", name, err)
	}
	return p
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

// lockedWriter is a goroutine-safe sink for a process's output, bounded:
// past max bytes it keeps the latest (why a process stopped is at the
// end). Lines containing drop (chatter) are not kept.
type lockedWriter struct {
	mu      sync.Mutex
	buf     []byte
	max     int
	drop    string
	partial []byte // an incomplete last line, when filtering
	dropped int
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.drop == "" {
		w.buf = append(w.buf, p...)
	} else {
		w.partial = append(w.partial, p...)
		for {
			i := bytes.IndexByte(w.partial, '\n')
			if i < 0 {
				break
			}
			if line := w.partial[:i+1]; !bytes.Contains(line, []byte(w.drop)) {
				w.buf = append(w.buf, line...)
			}
			w.partial = w.partial[i+1:]
		}
		if len(w.partial) > 64<<10 { // a line this long is kept as it is
			w.buf, w.partial = append(w.buf, w.partial...), nil
		}
	}
	if w.max > 0 && len(w.buf) > w.max {
		cut := len(w.buf) - w.max
		w.dropped += cut
		w.buf = append([]byte(nil), w.buf[cut:]...)
	}
	return len(p), nil
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := string(w.buf) + string(w.partial)
	if w.dropped > 0 {
		return fmt.Sprintf("[%d earlier bytes not kept]\n", w.dropped) + s
	}
	return s
}

// createTopic creates topic through the proxy, retrying while the peers
// are still taking in the routes.
func createTopic(t testing.TB, bootstrap []string, topic string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tried := false
	waitFor(t, time.Minute, "create topic "+topic, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic)
		if err == nil {
			err = resp.Err
		}
		if tried && errors.Is(err, kerr.TopicAlreadyExists) {
			return nil // an earlier attempt created it
		}
		tried = true
		return err
	})
}

// The admin API of issue 10.

// resetJSON is an offset reset job as the admin API shows it
// (fsm.OffsetReset's JSON, decoded here on its own so the test holds the
// contract, not the implementation's type).
type resetJSON struct {
	Group   string       `json:"group"`
	Topics  []string     `json:"topics"`
	To      resetToJSON  `json:"to"`
	State   string       `json:"state"`
	Targets []targetJSON `json:"targets"`
	Members []memberJSON `json:"members"`
	Created int64        `json:"created"`
	Fenced  int64        `json:"fenced"`
	Ended   int64        `json:"ended"`
	Error   string       `json:"error"`
	raw     string       // the body, for messages
}

type resetToJSON struct {
	Kind  string `json:"kind"`
	Value int64  `json:"value"`
}

type targetJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Old       int64  `json:"old"`
	New       int64  `json:"new"`
}

type memberJSON struct {
	ID         string `json:"id"`
	InstanceID string `json:"instance_id"`
	ClientID   string `json:"client_id"`
	Host       string `json:"host"`
	Protocol   string `json:"protocol"`
	Epoch      int32  `json:"epoch"`
}

// targets is the job's target per partition of topic.
func (r resetJSON) targets(topic string) map[int32]targetJSON {
	out := map[int32]targetJSON{}
	for _, tg := range r.Targets {
		if tg.Topic == topic {
			out[tg.Partition] = tg
		}
	}
	return out
}

func (r resetJSON) terminal() bool { return r.State == "applied" || r.State == "failed" }

// The "to" of a reset request, as the contract spells it.
var (
	toEarliest = any("earliest")
	toLatest   = any("latest")
)

func toTimestamp(ms int64) any { return map[string]int64{"timestamp": ms} }
func toOffset(n int64) any     { return map[string]int64{"offset": n} }
func toShift(n int64) any      { return map[string]int64{"shift": n} }

// adminAPI talks to the peers' admin APIs; writes go to any peer (a
// follower forwards them).
type adminAPI struct {
	urls []string // base URLs, "http://host:port"
	hc   *http.Client
}

func newAdminAPI(urls []string) *adminAPI {
	return &adminAPI{urls: urls, hc: &http.Client{Timeout: 15 * time.Second}}
}

// do sends one request to peer i and returns the status and body (bounded:
// a job document is small).
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
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, b, err
}

func resetsPath(group string) string {
	return "/v1/groups/" + url.PathEscape(group) + "/offset-resets"
}

// post POSTs a reset of group's topics to `to` through peer i and returns
// the status and the decoded job (when the body is one).
func (a *adminAPI) post(ctx context.Context, i int, group string, topics []string, to any, dryRun bool) (int, resetJSON, error) {
	code, b, err := a.do(ctx, i, http.MethodPost, resetsPath(group), map[string]any{"topics": topics, "to": to, "dry_run": dryRun})
	var r resetJSON
	if err != nil {
		return code, r, err
	}
	r.raw = strings.TrimSpace(string(b))
	if code/100 == 2 {
		if err := json.Unmarshal(b, &r); err != nil {
			return code, r, fmt.Errorf("POST %s answer %q: %w", resetsPath(group), b, err)
		}
		r.raw = strings.TrimSpace(string(b))
	}
	return code, r, nil
}

// get reads group's latest job from peer i; found is false on 404.
func (a *adminAPI) get(ctx context.Context, i int, group string) (r resetJSON, found bool, err error) {
	code, b, err := a.do(ctx, i, http.MethodGet, resetsPath(group), nil)
	if err != nil {
		return r, false, err
	}
	switch code {
	case http.StatusOK:
	case http.StatusNotFound:
		return r, false, nil
	default:
		return r, false, fmt.Errorf("GET %s: %d %s", resetsPath(group), code, b)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, false, fmt.Errorf("GET %s answer %q: %w", resetsPath(group), b, err)
	}
	r.raw = strings.TrimSpace(string(b))
	return r, true, nil
}

// start POSTs a reset of group's topics through peer i and expects 202
// with a pending or later job of group naming the targets of every
// partition of every topic (each has parts partitions).
func (a *adminAPI) start(t testing.TB, i int, group string, topics []string, parts int32, to any) resetJSON {
	t.Helper()
	// A starved machine can leave the peers without a Raft leader for a
	// while (the API answers 503 and changes nothing it did not commit):
	// try again for up to two minutes. A POST that timed out may still
	// have been committed; a later attempt then meets its job (409), and
	// the job is read back instead.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	posted := time.Now().UnixMilli()
	var (
		code int
		r    resetJSON
		err  error
	)
	for unavailable := false; ; unavailable = true {
		code, r, err = a.post(ctx, i, group, topics, to, false)
		if err != nil {
			t.Fatalf("POST %s (to %v) through peer %d: %v", resetsPath(group), to, i, err)
		}
		if code == http.StatusConflict && unavailable {
			if got, found, gerr := a.get(ctx, i, group); gerr == nil && found && got.Created >= posted {
				code, r = http.StatusAccepted, got
			}
		}
		if code != http.StatusServiceUnavailable || ctx.Err() != nil {
			break
		}
		t.Logf("POST %s through peer %d: 503 %s; trying again", resetsPath(group), i, r.raw)
		time.Sleep(time.Second)
	}
	if code != http.StatusAccepted {
		t.Fatalf("POST %s (to %v) through peer %d: %d %s; want 202 and the job", resetsPath(group), to, i, code, r.raw)
	}
	if r.Group != group || r.Created <= 0 || !slices.Contains([]string{"pending", "fencing", "applied", "failed"}, r.State) {
		t.Fatalf("POST %s answered %s; want group %s, a creation time and a state", resetsPath(group), r.raw, group)
	}
	for _, topic := range topics {
		if n := len(r.targets(topic)); n != int(parts) {
			t.Fatalf("POST %s answered targets for %d partitions of %s, want %d: %s", resetsPath(group), n, topic, parts, r.raw)
		}
	}
	return r
}

// waitEnded polls peer i until the job created at created has ended
// (applied or failed) and returns it.
func (a *adminAPI) waitEnded(t testing.TB, i int, group string, created int64, timeout time.Duration) resetJSON {
	t.Helper()
	var r resetJSON
	waitFor(t, timeout, "offset reset of "+group+" to end", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, found, err := a.get(ctx, i, group)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("peer %d knows no reset of %s yet", i, group)
		case got.Created != created:
			return fmt.Errorf("peer %d shows the job created at %d, want %d", i, got.Created, created)
		case !got.terminal():
			return fmt.Errorf("state %s", got.State)
		}
		r = got
		return nil
	})
	return r
}

// Producing: values "v:<seq>", keyed so the records spread over the
// partitions.

// ack is one acknowledged record.
type ack struct {
	value     string
	partition int32
	offset    int64
	ts        time.Time // the record's timestamp
}

// producer produces at rate records/s with an idempotent franz-go client
// until closed, recording every acknowledgement.
type producer struct {
	topic string
	mu    sync.Mutex
	acks  []ack
	fails []string
	cl    *kgo.Client
	stop  chan struct{}
	done  chan struct{}
}

func startProducer(t testing.TB, bootstrap []string, topic string, rate int) *producer {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap...),
		kgo.DefaultProduceTopic(topic),
		kgo.ClientID("offsetreset-producer"),
		kgo.ProducerLinger(5*time.Millisecond),
		// Plain batches: librdkafka builds without snappy exist.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)
	if err != nil {
		t.Fatal(err)
	}
	p := &producer{topic: topic, cl: cl, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		start := time.Now()
		seq := 0
		for {
			select {
			case <-p.stop:
				return
			case <-tk.C:
			}
			// On a machine too busy to keep up, due runs ahead for good:
			// the catch-up watches for the stop too.
			due := int(time.Since(start).Seconds()*float64(rate)) + 1
			for ; seq < due; seq++ {
				select {
				case <-p.stop:
					return
				default:
				}
				v := "v:" + strconv.Itoa(seq)
				r := &kgo.Record{Key: []byte("k" + strconv.Itoa(seq%997)), Value: []byte(v)}
				cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
					p.mu.Lock()
					defer p.mu.Unlock()
					if err != nil {
						p.fails = append(p.fails, fmt.Sprintf("%s: %v", v, err))
						return
					}
					p.acks = append(p.acks, ack{value: v, partition: r.Partition, offset: r.Offset, ts: r.Timestamp})
				})
			}
		}
	}()
	return p
}

func (p *producer) snapshot() ([]ack, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.acks), slices.Clone(p.fails)
}

// ends is the live end per partition by the acknowledgements so far.
func (p *producer) ends() map[int32]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[int32]int64{}
	for _, a := range p.acks {
		out[a.partition] = max(out[a.partition], a.offset+1)
	}
	return out
}

// values is the acknowledged value per partition and offset; failures
// are test errors.
func (p *producer) values(t testing.TB) map[int32]map[int64]string {
	t.Helper()
	acks, fails := p.snapshot()
	for _, f := range fails {
		t.Errorf("producer of %s: %s", p.topic, f)
	}
	out := map[int32]map[int64]string{}
	for _, a := range acks {
		if out[a.partition] == nil {
			out[a.partition] = map[int64]string{}
		}
		out[a.partition][a.offset] = a.value
	}
	return out
}

// close stops producing, waits for every outstanding record and closes.
func (p *producer) close(t testing.TB) {
	t.Helper()
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	<-p.done
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.cl.Flush(ctx); err != nil {
		t.Errorf("producer flush: %v", err)
	}
	p.cl.Close()
}

// Consuming.

// consumedRec is one record as a member of a group under test saw it, in
// the order the group's members delivered them.
type consumedRec struct {
	topic     string
	partition int32
	offset    int64
	value     string
	member    int
	at        time.Time
}

// recLog collects one group's records and the problems its clients
// reported.
type recLog struct {
	mu       sync.Mutex
	recs     []consumedRec
	problems []string
	lastWarn string
}

func (l *recLog) add(rs ...consumedRec) {
	if len(rs) == 0 {
		return
	}
	now := time.Now()
	l.mu.Lock()
	for _, r := range rs {
		r.at = now
		l.recs = append(l.recs, r)
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

func (l *recLog) warn(s string) {
	l.mu.Lock()
	l.lastWarn = s
	l.mu.Unlock()
}

// recsSince is the records from index i on.
func (l *recLog) recsSince(i int) []consumedRec {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recs[min(i, len(l.recs)):])
}

func (l *recLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recs)
}

func (l *recLog) snapshot() ([]consumedRec, []string, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recs), slices.Clone(l.problems), l.lastWarn
}

// group is one consumer group under test: its members run until close.
type group struct {
	id      string
	kind    string // the client and protocol, for messages
	members []string
	log     *recLog
	// constructions counts client (or process) constructions: one per
	// member, never more (no member is restarted).
	constructions atomic.Int64
	// sessions counts group sessions the members went through (joins that
	// ended in an assignment), when the client says.
	sessions atomic.Int64
	alive    func() error
	close    func(t testing.TB)
}

func (g *group) String() string { return g.kind + " group " + g.id }

// kgoLogger keeps kgo's last warning, for the progress lines, and reports
// the log lines that mean a consumer lost its position. With
// SWITCHYARD_TEST_LOG=info (or debug) it also sends kgo's group lifecycle
// (joins, syncs, assignments, lost partitions) to the test log: what a
// member did around a reset.
type kgoLogger struct {
	l    *recLog
	name string
	w    *tWriter // nil: not logged
}

func (kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelInfo }
func (k kgoLogger) Log(level kgo.LogLevel, msg string, kv ...any) {
	if k.w != nil && level <= kgo.LogLevelInfo && !strings.Contains(msg, "fetch") {
		fmt.Fprintf(k.w, "kgo %s %v: %s %v", k.name, level, msg, kv)
	}
	if level <= kgo.LogLevelWarn {
		k.l.warn(fmt.Sprintf("%s %v", msg, kv))
	}
	m := strings.ToLower(msg)
	if strings.Contains(m, "offset_out_of_range") || strings.Contains(m, "data loss") {
		k.l.problem(fmt.Sprintf("kgo %v: %s %v", level, msg, kv))
	}
}

// startFranzGroup starts n franz-go members of group id, member i
// bootstrapped on peer (first+i) mod peers only, autocommitting every
// second; opts choose the protocol.
func startFranzGroup(t testing.TB, kind string, bootstrap []string, first int, topics []string, id string, n int, opts ...kgo.Opt) *group {
	t.Helper()
	g := &group{id: id, kind: kind, log: &recLog{}}
	var (
		cls  []*kgo.Client
		wg   sync.WaitGroup
		ctx  context.Context
		stop context.CancelFunc
	)
	ctx, stop = context.WithCancel(context.Background())
	var w *tWriter
	if testLevel() <= slog.LevelInfo {
		w = newTWriter(t)
	}
	for m := range n {
		peer := (first + m) % len(bootstrap)
		name := fmt.Sprintf("%s-m%d", id, m)
		cl, err := kgo.NewClient(append([]kgo.Opt{
			kgo.SeedBrokers(bootstrap[peer]),
			kgo.ClientID(name),
			kgo.ConsumerGroup(id),
			kgo.ConsumeTopics(topics...),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.AutoCommitInterval(time.Second),
			kgo.FetchMaxWait(250 * time.Millisecond),
			kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { g.sessions.Add(1) }),
			kgo.WithLogger(kgoLogger{l: g.log, name: name, w: w}),
		}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		g.constructions.Add(1)
		g.members = append(g.members, fmt.Sprintf("%s via peer %d", name, peer))
		cls = append(cls, cl)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				if fs.IsClientClosed() || ctx.Err() != nil {
					return
				}
				fs.EachError(func(tp string, p int32, err error) {
					var session *kgo.ErrGroupSession
					if errors.As(err, &session) {
						// The group session ended (a reset removed the
						// member): kgo rejoins by itself.
						g.log.warn(fmt.Sprintf("member %d: %v", m, err))
						return
					}
					if !errors.Is(err, context.Canceled) {
						g.log.problem(fmt.Sprintf("member %d fetch %s/%d: %v", m, tp, p, err))
					}
				})
				var rs []consumedRec
				fs.EachRecord(func(r *kgo.Record) {
					rs = append(rs, consumedRec{topic: r.Topic, partition: r.Partition, offset: r.Offset, value: string(r.Value), member: m})
				})
				g.log.add(rs...)
			}
		}()
	}
	g.alive = func() error { return nil } // in-process clients do not exit
	var once sync.Once
	g.close = func(testing.TB) {
		once.Do(func() {
			stop()
			wg.Wait()
			var cwg sync.WaitGroup
			for _, cl := range cls {
				cwg.Go(cl.Close) // at once: no member waits on one about to leave
			}
			cwg.Wait()
		})
	}
	return g
}

// saramaHandler is one sarama member's handler: it logs and marks every
// record.
type saramaHandler struct {
	g      *group
	member int
}

func (h *saramaHandler) Setup(sarama.ConsumerGroupSession) error {
	h.g.sessions.Add(1)
	return nil
}

func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case <-sess.Context().Done():
			return nil
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.g.log.add(consumedRec{topic: m.Topic, partition: m.Partition, offset: m.Offset, value: string(m.Value), member: h.member})
			sess.MarkMessage(m, "")
		}
	}
}

// startSaramaGroup starts n sarama members, member i bootstrapped on peer
// (first+i) mod peers only, each in the loop real applications run:
// Consume again whenever a session ends or fails.
func startSaramaGroup(t testing.TB, bootstrap []string, first int, topic, id string, n int) *group {
	t.Helper()
	g := &group{id: id, kind: "sarama", log: &recLog{}}
	ctx, stop := context.WithCancel(context.Background())
	var (
		wg  sync.WaitGroup
		cgs []sarama.ConsumerGroup
	)
	for m := range n {
		peer := (first + m) % len(bootstrap)
		name := fmt.Sprintf("%s-m%d", id, m)
		cfg := sarama.NewConfig()
		cfg.Version = sarama.V3_6_0_0
		cfg.ClientID = name
		cfg.Metadata.Retry.Max = 30
		cfg.Metadata.Retry.Backoff = 200 * time.Millisecond
		cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
		cfg.Consumer.Offsets.AutoCommit.Enable = true
		cfg.Consumer.Offsets.AutoCommit.Interval = time.Second
		cfg.Consumer.Return.Errors = true
		cfg.Consumer.Group.Heartbeat.Interval = time.Second
		cfg.Consumer.Group.Session.Timeout = 30 * time.Second
		cfg.Consumer.Group.Rebalance.Timeout = 30 * time.Second
		cfg.Consumer.MaxWaitTime = 250 * time.Millisecond
		cg, err := sarama.NewConsumerGroup([]string{bootstrap[peer]}, id, cfg)
		if err != nil {
			t.Fatalf("sarama group member %s: %v", name, err)
		}
		g.constructions.Add(1)
		g.members = append(g.members, fmt.Sprintf("%s via peer %d", name, peer))
		cgs = append(cgs, cg)
		h := &saramaHandler{g: g, member: m}
		wg.Add(2)
		go func() {
			defer wg.Done()
			for err := range cg.Errors() {
				g.log.warn(fmt.Sprintf("member %d: %v", m, err))
			}
		}()
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
					if errors.Is(err, sarama.ErrClosedConsumerGroup) {
						g.log.problem(fmt.Sprintf("member %d: consumer group closed under it", m))
						return
					}
					g.log.warn(fmt.Sprintf("member %d consume: %v", m, err))
					time.Sleep(200 * time.Millisecond)
				}
			}
		}()
	}
	g.alive = func() error { return nil }
	var once sync.Once
	g.close = func(t testing.TB) {
		once.Do(func() {
			stop()
			var cwg sync.WaitGroup
			for _, cg := range cgs {
				cwg.Go(func() {
					if err := cg.Close(); err != nil {
						t.Errorf("sarama member close: %v", err)
					}
				})
			}
			cwg.Wait()
			wg.Wait()
		})
	}
	return g
}

// startKcatGroup starts n `kcat -G` members (librdkafka), member i
// bootstrapped on peer (first+i) mod peers only, printing one line per
// record. Offsets are stored as records are handed to kcat and
// auto-committed every second, as a librdkafka application does by
// default.
func startKcatGroup(t testing.TB, bootstrap []string, first int, topic, id string, n int) *group {
	t.Helper()
	kcat := needCommand(t, "kcat")
	g := &group{id: id, kind: "librdkafka (kcat)", log: &recLog{}}
	type member struct {
		cmd    *exec.Cmd
		stderr *lockedWriter
		exited chan struct{}
	}
	var ms []*member
	for m := range n {
		peer := (first + m) % len(bootstrap)
		name := fmt.Sprintf("%s-m%d", id, m)
		mb := &member{stderr: &lockedWriter{max: 256 << 10, drop: "Reached end of topic"}, exited: make(chan struct{})}
		mb.cmd = exec.Command(kcat,
			"-b", bootstrap[peer],
			"-G", id, topic,
			"-X", "client.id="+name,
			"-X", "auto.offset.reset=earliest",
			"-X", "enable.auto.commit=true",
			"-X", "auto.commit.interval.ms=1000",
			"-X", "session.timeout.ms=10000",
			"-X", "enable.partition.eof=false", // no "Reached end" lines on stderr
			"-u", // unbuffered: lines reach the test as records are consumed
			"-f", `%p\t%o\t%s\n`,
		)
		mb.cmd.Stderr = mb.stderr
		out, err := mb.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := mb.cmd.Start(); err != nil {
			t.Fatalf("start kcat member %s: %v", name, err)
		}
		g.constructions.Add(1)
		g.members = append(g.members, fmt.Sprintf("%s via peer %d (pid %d)", name, peer, mb.cmd.Process.Pid))
		ms = append(ms, mb)
		go func() {
			defer close(mb.exited)
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 64<<10), 64<<10)
			defer func() {
				if err := sc.Err(); err != nil {
					g.log.problem(fmt.Sprintf("member %d: reading its output: %v", m, err))
				}
			}()
			for sc.Scan() {
				f := strings.SplitN(sc.Text(), "\t", 3)
				if len(f) != 3 {
					g.log.problem(fmt.Sprintf("member %d: unparsable line %q", m, sc.Text()))
					continue
				}
				p, err1 := strconv.ParseInt(f[0], 10, 32)
				o, err2 := strconv.ParseInt(f[1], 10, 64)
				if err1 != nil || err2 != nil {
					g.log.problem(fmt.Sprintf("member %d: unparsable line %q", m, sc.Text()))
					continue
				}
				g.log.add(consumedRec{topic: topic, partition: int32(p), offset: o, value: f[2], member: m})
			}
			mb.cmd.Wait()
		}()
	}
	g.alive = func() error {
		for i, mb := range ms {
			select {
			case <-mb.exited:
				_, problems, _ := g.log.snapshot()
				return fmt.Errorf("kcat member %d exited (%v; problems %q); stderr:\n%s", i, mb.cmd.ProcessState, problems, mb.stderr.String())
			default:
			}
		}
		return nil
	}
	var once sync.Once
	g.close = func(t testing.TB) {
		once.Do(func() {
			for _, mb := range ms {
				mb.cmd.Process.Signal(syscall.SIGTERM)
			}
			for i, mb := range ms {
				select {
				case <-mb.exited:
				case <-time.After(30 * time.Second):
					mb.cmd.Process.Kill()
					<-mb.exited
					t.Errorf("kcat member %d did not stop on SIGTERM", i)
				}
				if t.Failed() {
					t.Logf("kcat member %d stderr:\n%s", i, mb.stderr.String())
				}
			}
		})
	}
	t.Cleanup(func() { g.close(t) })
	return g
}

// ofTopic is the records of topic in recs, and how many of them come
// before index idx of recs.
func ofTopic(recs []consumedRec, topic string, idx int) ([]consumedRec, int) {
	var out []consumedRec
	n := 0
	for i, r := range recs {
		if r.topic != topic {
			continue
		}
		if i < idx {
			n++
		}
		out = append(out, r)
	}
	return out, n
}

// positions is the next offset per partition by the group's own account:
// one past the highest offset it consumed.
func positions(recs []consumedRec) map[int32]int64 {
	out := map[int32]int64{}
	for _, r := range recs {
		out[r.partition] = max(out[r.partition], r.offset+1)
	}
	return out
}

// waitCaughtUp waits until g has consumed, on every partition, up to the
// live end as the producer sees it now.
func waitCaughtUp(t testing.TB, g *group, p *producer, parts int32, timeout time.Duration) {
	t.Helper()
	ends := p.ends()
	waitFor(t, timeout, g.String()+" to catch up with the producer", func() error {
		if err := g.alive(); err != nil {
			t.Fatalf("%s: %v", g, err)
		}
		all, _, warn := g.log.snapshot()
		recs, _ := ofTopic(all, p.topic, 0)
		pos := positions(recs)
		for part := range parts {
			if pos[part] < ends[part] {
				return fmt.Errorf("%s/%d at %d, end %d (%d records consumed; last warning: %s)", p.topic, part, pos[part], ends[part], len(all), warn)
			}
		}
		return nil
	})
}

// fetchOffsets is group's committed offset per partition of topic, read
// through the proxy (peer i).
func fetchOffsets(t testing.TB, bootstrap string, group, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[int32]int64{}
	waitFor(t, 30*time.Second, "fetch the committed offsets of "+group, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		fetched, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
		if err != nil {
			return err
		}
		if err := fetched.Error(); err != nil {
			return err
		}
		clear(out)
		fetched.Each(func(o kadm.OffsetResponse) {
			if o.Topic == topic {
				out[o.Partition] = o.At
			}
		})
		return nil
	})
	return out
}

// pct is the p-th percentile of ds.
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
