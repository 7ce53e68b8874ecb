package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const mib = 1 << 20

// mode is how a round reaches kfake.
type mode int

const (
	modeDirect   mode = iota
	modeProxy         // through the proxy under test
	modeBaseline      // through the -baseline proxy
	modeRelay         // through byte-copying relays, one per broker (peers3)
)

func (m mode) String() string {
	switch m {
	case modeProxy:
		return "proxy"
	case modeBaseline:
		return "base"
	case modeRelay:
		return "relay"
	}
	return "direct"
}

// measurement is one round of one mode (direct or through a proxy).
type measurement struct {
	mode  mode
	round int
	// value is the scenario's main figure: MiB/s of record values, or the
	// p50 produce latency in ms for the latency scenario.
	value float64
	// p99 is the p99 produce latency in ms (latency scenario).
	p99 float64
	// stored is MiB/s until every record was in kfake (acks0 scenario).
	stored float64
	// rate is the achieved records/s (latency scenario).
	rate float64

	wall       time.Duration // measured interval
	payload    int64         // record value bytes moved
	proxyCPU   time.Duration // proxy processes' CPU in the interval
	cpuOK      bool          // proxyCPU is meaningful
	proxyBytes int64         // bytes the proxy read from and wrote to clients
	proxyReqs  int64         // client requests the proxy read
	proxyGCs   int64         // the proxy processes' garbage collections
	selfCPU    time.Duration // this process's CPU: load generator + kfake
	backendCPU time.Duration // the backend process's CPU (peers3), else 0
	requests   int           // requests the round timed (peers3 metadata)
	rss        int64         // the peer's resident set at the round's end (idle)
	fds        int           // the peer's open descriptors at the round's end (idle)
	rssBefore  int64         // the peer's resident set before the idle connections opened (idle, quiet phase)
}

// scenarioResult is every round of one scenario.
type scenarioResult struct {
	name                    string
	direct, proxy, baseline []measurement
	relay                   []measurement // peers3: through the byte-copying relays
	note                    string        // printed under the table (peers3: the machine's load)
}

// meter brackets the measured part of a round: proxy CPU, proxy bytes and
// this process's CPU are read at both ends, the metrics scrape outside the
// CPU reading so it is not counted.
type meter struct {
	e      *env
	mode   mode
	t0     time.Time
	cpu0   time.Duration
	count0 proxyCounters
	self0  time.Duration
	back0  time.Duration
	io0    [2]int64 // relay rounds: the clients' byte and request counts
	m      measurement
}

func (mt *meter) start(ctx context.Context) error {
	if ps := mt.e.set(mt.mode); ps != nil {
		pc, err := ps.counters(ctx)
		if err != nil {
			return err
		}
		mt.count0 = pc
		c, ok, err := ps.cpu()
		if err != nil {
			return err
		}
		mt.cpu0, mt.m.cpuOK = c, ok
	}
	if b := mt.e.backend; b != nil {
		c, err := procCPU(b.cmd.Process.Pid)
		if err != nil {
			return err
		}
		mt.back0 = c
	}
	if mt.mode == modeRelay {
		mt.io0 = [2]int64{mt.e.relayIO.bytes.Load(), mt.e.relayIO.requests.Load()}
	}
	mt.self0 = selfCPU()
	mt.t0 = time.Now()
	return nil
}

func (mt *meter) stop(ctx context.Context) error {
	mt.m.wall = time.Since(mt.t0)
	mt.m.selfCPU = selfCPU() - mt.self0
	if b := mt.e.backend; b != nil {
		c, err := procCPU(b.cmd.Process.Pid)
		if err != nil {
			return err
		}
		mt.m.backendCPU = c - mt.back0
	}
	ps := mt.e.set(mt.mode)
	if ps == nil {
		return nil
	}
	c, _, err := ps.cpu()
	if err != nil {
		return err
	}
	mt.m.proxyCPU = c - mt.cpu0
	pc, err := ps.counters(ctx)
	if err != nil {
		return err
	}
	mt.m.proxyBytes = pc.bytes - mt.count0.bytes
	mt.m.proxyReqs = pc.requests - mt.count0.requests
	mt.m.proxyGCs = pc.gcs - mt.count0.gcs
	if mt.mode == modeRelay {
		mt.m.proxyBytes = mt.e.relayIO.bytes.Load() - mt.io0[0]
		mt.m.proxyReqs = mt.e.relayIO.requests.Load() - mt.io0[1]
	}
	return nil
}

func (h *harness) runScenario(ctx context.Context, name string) (scenarioResult, error) {
	if name == "floor" {
		return h.floorScenario(ctx)
	}
	res := scenarioResult{name: name}
	e, err := h.startEnv(ctx)
	if err != nil {
		return res, err
	}
	defer e.close()
	value := make([]byte, h.o.recordSize)
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range value {
		value[i] = byte(rng.Uint32())
	}
	n := int(h.o.bytes / int64(h.o.recordSize))
	const backlog = "bench-consume"
	if name == "consume" {
		h.logf("bench: consume: writing a %d MiB backlog to kfake", int64(n)*int64(h.o.recordSize)/mib)
		if err := h.backlog(ctx, e, backlog, value, n); err != nil {
			return res, err
		}
	}
	modes := []mode{modeDirect, modeProxy}
	if e.baseline != nil {
		modes = append(modes, modeBaseline)
	}
	h.logf("bench: %s: %d rounds, %v in turn", name, h.o.rounds, modes)
	for r := range h.o.rounds {
		// With a baseline, the two proxies alternate which goes first, so
		// neither always follows the direct round.
		order := modes
		if len(modes) == 3 && r%2 == 1 {
			order = []mode{modeDirect, modeBaseline, modeProxy}
		}
		for _, md := range order {
			settle()
			rctx, cancel := context.WithTimeout(ctx, h.o.roundTimeout)
			topic := fmt.Sprintf("bench-%s-%d-%s", name, r, md)
			mt := &meter{e: e, mode: md}
			var err error
			switch name {
			case "produce":
				err = h.produceRound(rctx, mt, topic, value, n, false)
			case "acks0":
				err = h.produceRound(rctx, mt, topic, value, n, true)
			case "consume":
				err = h.consumeRound(rctx, mt, backlog, n)
			case "latency":
				err = h.latencyRound(rctx, mt, topic, value)
			}
			cancel()
			if err != nil {
				return res, fmt.Errorf("round %d %s: %w", r+1, md, err)
			}
			m := mt.m
			m.mode, m.round = md, r
			h.logf("bench:   round %d %-6s %s", r+1, md, describe(name, m))
			switch md {
			case modeProxy:
				res.proxy = append(res.proxy, m)
			case modeBaseline:
				res.baseline = append(res.baseline, m)
			default:
				res.direct = append(res.direct, m)
			}
		}
	}
	return res, nil
}

// settle collects the previous round's garbage (kfake's deleted topic, the
// old client) and returns memory to the OS, so it is not paid for in the
// next round.
func settle() {
	runtime.GC()
	debug.FreeOSMemory()
}

func (e *env) createTopic(ctx context.Context, topic string, partitions int) error {
	_, err := e.adm.CreateTopic(ctx, int32(partitions), 1, nil, topic)
	return err
}

// deleteTopic drops a round's topic; kfake keeps records in memory.
func (e *env) deleteTopic(topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e.adm.DeleteTopic(ctx, topic)
}

// endOffsets sums the topic's high watermarks.
func (e *env) endOffsets(ctx context.Context, topic string) (int64, error) {
	lo, err := e.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	if err := lo.Error(); err != nil {
		return 0, err
	}
	var sum int64
	lo.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	return sum, nil
}

// errOnce keeps the first error of many produce callbacks.
type errOnce struct {
	mu  sync.Mutex
	err error
}

func (e *errOnce) set(err error) {
	if err == nil {
		return
	}
	e.mu.Lock()
	if e.err == nil {
		e.err = err
	}
	e.mu.Unlock()
}

func (e *errOnce) get() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// producer returns a client tuned alike for both modes: no compression, so
// the bytes on the wire are the payload; franz-go defaults otherwise.
func (h *harness) producer(mt *meter, topic string, extra ...kgo.Opt) (*kgo.Client, error) {
	opts := append(h.modeOpts(mt.e, mt.mode),
		kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)
	return kgo.NewClient(append(opts, extra...)...)
}

// produceRound writes n records as fast as the client goes. With acks=0
// the client's promises complete once a request is written to the socket,
// so the rate is measured at the producer; the round then waits until kfake
// holds every record and also reports that rate.
func (h *harness) produceRound(ctx context.Context, mt *meter, topic string, value []byte, n int, acks0 bool) error {
	e := mt.e
	if err := e.createTopic(ctx, topic, h.o.partitions); err != nil {
		return err
	}
	defer e.deleteTopic(topic)
	var extra []kgo.Opt
	if acks0 {
		extra = append(extra, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	}
	cl, err := h.producer(mt, topic, extra...)
	if err != nil {
		return err
	}
	defer cl.Close()
	// Warm up: metadata, connections and the producer id are not measured.
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
		return fmt.Errorf("warm-up produce: %w", err)
	}
	var perr errOnce
	cb := func(_ *kgo.Record, err error) { perr.set(err) }
	if err := mt.start(ctx); err != nil {
		return err
	}
	for range n {
		cl.Produce(ctx, &kgo.Record{Value: value}, cb)
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	atProducer := time.Since(mt.t0)
	if err := perr.get(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	if acks0 {
		want := int64(n) + 1
		for {
			got, err := e.endOffsets(ctx, topic)
			if err != nil {
				return err
			}
			if got >= want {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("acks=0: kfake holds %d of %d records: %w", got, want, ctx.Err())
			case <-time.After(2 * time.Millisecond):
			}
		}
	}
	if err := mt.stop(ctx); err != nil {
		return err
	}
	payload := int64(n) * int64(len(value))
	mt.m.payload = payload
	mt.m.value = float64(payload) / mib / atProducer.Seconds()
	if acks0 {
		mt.m.stored = float64(payload) / mib / mt.m.wall.Seconds()
	}
	return nil
}

// backlog writes n records straight to kfake for the consume scenario.
func (h *harness) backlog(ctx context.Context, e *env, topic string, value []byte, n int) error {
	if err := e.createTopic(ctx, topic, h.o.partitions); err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(h.clientOpts(e.direct), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.NoCompression()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var perr errOnce
	cb := func(_ *kgo.Record, err error) { perr.set(err) }
	for range n {
		cl.Produce(ctx, &kgo.Record{Value: value}, cb)
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	return perr.get()
}

// consumeRound reads the whole backlog from the start with a new client
// (no group), counting record values.
func (h *harness) consumeRound(ctx context.Context, mt *meter, topic string, n int) error {
	if err := mt.start(ctx); err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(h.clientOpts(mt.e.addrs(mt.mode)),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var records, payload int64
	for records < int64(n) {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("consumed %d of %d records: %w", records, n, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("%s/%d: %w", t, p, err))
		})
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			records++
			payload += int64(len(r.Value))
		})
	}
	if err := mt.stop(ctx); err != nil {
		return err
	}
	mt.m.payload = payload
	mt.m.value = float64(payload) / mib / mt.m.wall.Seconds()
	return nil
}

// latencyRound produces at a fixed rate with linger 0 and records, per
// record, the time from handing it to the client to its promise (acks=all).
func (h *harness) latencyRound(ctx context.Context, mt *meter, topic string, value []byte) error {
	e := mt.e
	if err := e.createTopic(ctx, topic, h.o.partitions); err != nil {
		return err
	}
	defer e.deleteTopic(topic)
	cl, err := h.producer(mt, topic, kgo.ProducerLinger(0))
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
		return fmt.Errorf("warm-up produce: %w", err)
	}
	n := max(1, int(float64(h.o.rate)*h.o.latencyDur.Seconds()))
	interval := time.Second / time.Duration(h.o.rate)
	lat := make([]time.Duration, n)
	var perr errOnce
	if err := mt.start(ctx); err != nil {
		return err
	}
	for i := range n {
		// Paced against the schedule, not the previous send, so a late
		// wake-up is caught up and the average rate holds.
		if d := time.Until(mt.t0.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		sent := time.Now()
		cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			lat[i] = time.Since(sent)
			perr.set(err)
		})
	}
	sending := time.Since(mt.t0)
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if err := perr.get(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	if err := mt.stop(ctx); err != nil {
		return err
	}
	slices.Sort(lat)
	mt.m.payload = int64(n) * int64(len(value))
	mt.m.value = ms(percentile(lat, 0.50))
	mt.m.p99 = ms(percentile(lat, 0.99))
	mt.m.rate = float64(n) / sending.Seconds()
	return nil
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
