package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/transport"
)

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// bareLease is a writeLease without a node: its arithmetic alone.
func bareLease(l time.Duration) *writeLease {
	return &writeLease{
		l:       l,
		log:     slog.New(slog.DiscardHandler),
		origin:  time.Now(),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "refused", Help: "refused"}),
	}
}

// TestLeaseArithmetic: a lease runs from the time its request was sent,
// never from the time the grant arrived; an older grant never shortens it;
// refusals are counted; a disabled lease allows everything.
func TestLeaseArithmetic(t *testing.T) {
	wl := bareLease(time.Hour)
	if wl.WriteAllowed() {
		t.Fatal("writes allowed before any grant")
	}
	if got := counterValue(wl.refused); got != 1 {
		t.Fatalf("refused counter %v, want 1", got)
	}
	// A grant whose request left long ago has already run out.
	wl.extend(wl.now()-int64(2*time.Hour), time.Hour)
	if wl.WriteAllowed() {
		t.Fatal("a grant sent two hours ago still allows writes with a one-hour lease")
	}
	sent := wl.now()
	wl.extend(sent, time.Hour)
	if !wl.WriteAllowed() {
		t.Fatal("a fresh grant does not allow writes")
	}
	if got, want := wl.until.Load(), sent+int64(time.Hour); got != want {
		t.Fatalf("lease until %d, want sent+L = %d", got, want)
	}
	// A late answer to an earlier request does not shorten it.
	wl.extend(sent-int64(time.Minute), time.Hour)
	if got, want := wl.until.Load(), sent+int64(time.Hour); got != want {
		t.Fatalf("an older grant moved the lease to %d, want %d", got, want)
	}
	if got := counterValue(wl.refused); got != 2 {
		t.Fatalf("refused counter %v, want 2", got)
	}

	short := bareLease(50 * time.Millisecond)
	short.extend(short.now(), short.l)
	waitUntil(t, 10*time.Second, "a 50ms lease runs out", func() bool { return !short.valid() })
	if short.WriteAllowed() {
		t.Fatal("an expired lease allows writes")
	}

	off := bareLease(0)
	if !off.WriteAllowed() || counterValue(off.refused) != 0 {
		t.Fatal("a disabled lease refuses writes")
	}
}

// TestLeaseMarginAndLimits: the driver's margin, the longest lease the
// default fence fits, and Config validation at its edge.
func TestLeaseMarginAndLimits(t *testing.T) {
	for _, c := range []struct{ l, want time.Duration }{
		{10 * time.Second, 2 * time.Second},
		{2 * time.Second, 1200 * time.Millisecond},
		{0, time.Second},
	} {
		if got := leaseMargin(c.l); got != c.want {
			t.Errorf("leaseMargin(%v) = %v, want %v", c.l, got, c.want)
		}
	}
	fence := DefaultMigrationConfig().FenceTimeout
	most := maxWriteLease(fence)
	if err := DefaultMigrationConfig().Validate(most); err != nil {
		t.Fatalf("the longest lease %v does not fit: %v", most, err)
	}
	if err := DefaultMigrationConfig().Validate(most + time.Millisecond); err == nil {
		t.Fatalf("a lease of %v fits a %v fence with its margin", most+time.Millisecond, fence)
	}
	base := Config{Name: "p", DataDir: "d", KafkaListen: "x:1", RaftListen: "x:2", GossipListen: "x:3", BootstrapExpect: 1}
	for _, c := range []struct {
		lease time.Duration
		ok    bool
	}{{0, true}, {-1, true}, {most, true}, {most + time.Millisecond, false}, {time.Minute, false}} {
		cfg := base
		cfg.WriteLease = c.lease
		cfg.setDefaults()
		if err := cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("WriteLease %v: Validate() = %v, want ok=%v", c.lease, err, c.ok)
		}
	}
	var cfg Config
	if cfg.writeLease() != DefaultWriteLease {
		t.Fatalf("zero WriteLease is %v, want the default", cfg.writeLease())
	}
	cfg.WriteLease = -time.Second
	if cfg.writeLease() != 0 {
		t.Fatal("a negative WriteLease does not disable the lease")
	}
}

// TestLeaseRoundsCoalesce: callers that arrive while a verification round
// runs are all answered by the next one (not one round each), and every
// answer comes from a round that started after its caller joined.
func TestLeaseRoundsCoalesce(t *testing.T) {
	var clock atomic.Int64
	now := func() int64 { return clock.Add(1) }
	release := make(chan struct{})
	var index atomic.Uint64
	lr := &leaseRounds{verify: func() (uint64, error) {
		<-release
		return index.Add(1), nil
	}}
	ctx := context.Background()
	// The first caller starts round 1, which blocks.
	first := make(chan *leaseRound, 1)
	go func() {
		r, err := lr.join(ctx, now)
		if err != nil {
			t.Error(err)
		}
		first <- r
	}()
	waitUntil(t, 10*time.Second, "round 1 starts", func() bool { return lr.count.Load() == 1 })
	const callers = 40
	var wg sync.WaitGroup
	got := make([]*leaseRound, callers)
	joined := make([]int64, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			joined[i] = now()
			r, err := lr.join(ctx, now)
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = r
		}()
	}
	// Every caller is waiting for round 2 before round 1 ends.
	waitUntil(t, 10*time.Second, "the callers queue for the next round", func() bool {
		lr.mu.Lock()
		defer lr.mu.Unlock()
		return lr.next != nil && clock.Load() >= callers+1
	})
	time.Sleep(50 * time.Millisecond) // let the last callers reach join
	close(release)
	wg.Wait()
	r1 := <-first
	if r1.index != 1 {
		t.Fatalf("round 1 answered index %d", r1.index)
	}
	rounds := lr.count.Load()
	if rounds > 3 {
		t.Fatalf("%d callers took %d verification rounds; want them coalesced", callers, rounds)
	}
	for i, r := range got {
		if r == nil {
			t.Fatalf("caller %d got no round", i)
		}
		if r.started <= joined[i] {
			t.Fatalf("caller %d joined at %d and was answered by a round started at %d", i, joined[i], r.started)
		}
		if r == r1 {
			t.Fatalf("caller %d was answered by the round running when it joined", i)
		}
	}
	// A failed verification fails every caller of its round.
	fail := &leaseRounds{verify: func() (uint64, error) { return 0, errors.New("deposed") }}
	if _, err := fail.join(ctx, now); err == nil {
		t.Fatal("a failed verification granted a lease")
	}
}

// leaseTrio is three peers with admin APIs in front of a kfake cluster
// east (topic orders) and an empty west, with write leases of lease and
// peer traffic under faults.
type leaseTrio struct {
	peers      []*trioPeer
	faults     *transport.Faults
	east, west *kfake.Cluster
}

func startLeaseTrio(t *testing.T, lease time.Duration) *leaseTrio {
	t.Helper()
	return startLeaseTrioFence(t, lease, 0)
}

// startLeaseTrioFence is startLeaseTrio with every peer's migration driver
// retrying every 100 ms under fence timeout fence (0: the defaults), set
// before each peer runs: the leader's drivers (migrations and offset resets
// share the config) read it from their own goroutines.
func startLeaseTrioFence(t *testing.T, lease, fence time.Duration) *leaseTrio {
	t.Helper()
	east, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(migParts, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(east.Close)
	west, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(west.Close)
	w := &testSink{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	faults := transport.NewFaults()
	base := t.TempDir()
	tr := &leaseTrio{faults: faults, east: east, west: west}
	for i := range 3 {
		var join []string
		if i > 0 {
			join = []string{tr.peers[0].n.GossipAddr()}
		}
		name := fmt.Sprintf("p%d", i)
		cfg := Config{
			Name:            name,
			DataDir:         filepath.Join(base, name),
			Version:         "test",
			KafkaListen:     "127.0.0.1:0",
			AdminListen:     "127.0.0.1:0",
			RaftListen:      "127.0.0.1:0",
			GossipListen:    "127.0.0.1:0",
			Join:            join,
			BootstrapExpect: 3,
			AdmitUnproven:   true,
			MetadataRefresh: 500 * time.Millisecond,
			WriteLease:      lease,
			Faults:          faults,
			Timing:          FastTiming(),
			Logger:          log.With("peer", name),
		}
		n, stop := runPeerWith(t, cfg, func(n *Node) {
			if fence > 0 {
				n.migrations.cfg.Retry = 100 * time.Millisecond
				n.migrations.cfg.FenceTimeout = fence
			}
		})
		tr.peers = append(tr.peers, &trioPeer{n: n, cfg: cfg, stop: stop})
	}
	waitUntil(t, 30*time.Second, "three servers and three registered peers on every peer", func() bool {
		for _, p := range tr.peers {
			if len(p.n.RaftServers()) != 3 || len(p.n.State().Peers) != 3 || p.n.Leader() == "" {
				return false
			}
		}
		return true
	})
	leader := tr.leader(t)
	for name, kc := range map[string]*kfake.Cluster{"east": east, "west": west} {
		b, _ := json.Marshal(map[string]any{"bootstrap": kc.ListenAddrs()})
		if code, _, body := call(t, leader, "PUT", "/v1/clusters/"+name, "", string(b)); code != 200 {
			t.Fatalf("put cluster %s: %d %s", name, code, body)
		}
	}
	if code, _, body := call(t, leader, "PUT", "/v1/default-cluster", "", `{"cluster":"east"}`); code != 200 {
		t.Fatalf("default cluster: %d %s", code, body)
	}
	waitUntil(t, 30*time.Second, "every peer serves with a write lease", func() bool {
		for _, p := range tr.peers {
			if p.n.Ready() != nil || !p.n.lease.valid() {
				return false
			}
		}
		return true
	})
	return tr
}

func (tr *leaseTrio) leader(t *testing.T) *Node {
	t.Helper()
	var nodes []*Node
	for _, p := range tr.peers {
		nodes = append(nodes, p.n)
	}
	l, _ := leaderOf(t, nodes)
	return l
}

// produceVia sends one Produce of one record to partition 0 of orders
// straight to the peer at addr (a real franz-go client's connection to its
// seed broker, so the request is not routed to another peer) and returns
// the partition's error code, or -1 with the error when no answer came.
func produceVia(ctx context.Context, addr string) (int16, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return -1, err
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// Produce v13 names topics by id (KIP-516).
	md, err := kadm.NewClient(cl).Metadata(rctx, "orders")
	if err != nil {
		return -1, err
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic, rt.TopicID = "orders", md.Topics["orders"].ID
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = 0, leaseTestBatch([]byte("via "+addr))
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kr, err := cl.SeedBrokers()[0].Request(rctx, req)
	if err != nil {
		return -1, err
	}
	for _, tp := range kr.(*kmsg.ProduceResponse).Topics {
		for _, p := range tp.Partitions {
			return p.ErrorCode, nil
		}
	}
	return -1, errors.New("no partition in the answer")
}

// leaseTestBatch is a v2 record batch of one record.
func leaseTestBatch(v []byte) []byte {
	rec := kmsg.Record{Value: v}
	body := rec.AppendTo(nil)[1:]
	rec.Length = int32(len(body))
	recs := rec.AppendTo(nil)
	ts := time.Now().UnixMilli()
	b := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2, FirstTimestamp: ts, MaxTimestamp: ts,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: 1, Records: recs,
	}
	raw := b.AppendTo(nil)
	b.Length = int32(len(raw) - 12)
	raw = b.AppendTo(nil)
	b.CRC = int32(crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b.AppendTo(nil)
}

// TestLeaseCutOffPeerStopsWriting: a follower cut off from the other peers
// (peer port and gossip; its Kafka listener and its backend still serve)
// answers Produce with NOT_LEADER_OR_FOLLOWER once its lease runs out,
// while Produce through the others goes on; healed, it writes again.
func TestLeaseCutOffPeerStopsWriting(t *testing.T) {
	const lease = 2 * time.Second
	tr := startLeaseTrio(t, lease)
	leader := tr.leader(t)
	var cut *Node
	var others []*Node
	for _, p := range tr.peers {
		if p.n != leader && cut == nil {
			cut = p.n
		} else {
			others = append(others, p.n)
		}
	}
	ctx := context.Background()
	for _, n := range tr.peers {
		waitUntil(t, 30*time.Second, "produce through "+n.n.Name()+" succeeds", func() bool {
			code, err := produceVia(ctx, n.n.KafkaAddr())
			if err != nil || code != 0 {
				t.Logf("produce via %s: code %d, %v", n.n.Name(), code, err)
			}
			return err == nil && code == 0
		})
	}
	refusedBefore := counterValue(cut.lease.refused)

	tr.faults.Isolate(cut.Name())
	waitUntil(t, 30*time.Second, "the cut-off peer refuses Produce", func() bool {
		code, err := produceVia(ctx, cut.KafkaAddr())
		if err != nil {
			t.Logf("produce via the cut-off peer: %v", err)
		}
		return err == nil && code == kerr.NotLeaderForPartition.Code
	})
	// It keeps refusing (no grant reaches it), and says so in its metrics.
	for range 3 {
		if code, err := produceVia(ctx, cut.KafkaAddr()); err != nil || code != kerr.NotLeaderForPartition.Code {
			t.Fatalf("produce via the cut-off peer: code %d, %v; want NOT_LEADER_OR_FOLLOWER", code, err)
		}
	}
	if cut.lease.valid() {
		t.Fatal("the cut-off peer reports a valid lease")
	}
	if got := counterValue(cut.lease.refused); got < refusedBefore+4 {
		t.Fatalf("refused counter %v, want at least %v", got, refusedBefore+4)
	}
	// The two connected peers keep a leader and their leases. (On a
	// loaded machine they can lose the leader for a moment, and a lease
	// renewal with it: NOT_LEADER_OR_FOLLOWER until the next grant. So
	// each must write again within the window, not at the first try.)
	for _, n := range others {
		waitUntil(t, 30*time.Second, "produce via "+n.Name()+" while "+cut.Name()+" is cut off", func() bool {
			code, err := produceVia(ctx, n.KafkaAddr())
			if err != nil || code != 0 {
				t.Logf("produce via %s while %s is cut off: code %d, %v", n.Name(), cut.Name(), code, err)
			}
			return err == nil && code == 0
		})
	}
	// A real producer through a connected peer is not held up.
	cl, err := kgo.NewClient(kgo.SeedBrokers(others[0].KafkaAddr()), kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for i := range 10 {
		if err := cl.ProduceSync(pctx, &kgo.Record{Value: fmt.Appendf(nil, "r%d", i)}).FirstErr(); err != nil {
			t.Fatalf("produce %d through %s: %v", i, others[0].Name(), err)
		}
	}

	tr.faults.Heal()
	waitUntil(t, 60*time.Second, "the healed peer writes again", func() bool {
		code, err := produceVia(ctx, cut.KafkaAddr())
		return err == nil && code == 0
	})
}

// TestLeaseMigrationWaitsForDeadPeer: with a registered peer stopped, the
// fence cannot be confirmed by it; the switch waits until that peer's lease
// has certainly run out (the fence plus L and its margin) and then
// succeeds.
func TestLeaseMigrationWaitsForDeadPeer(t *testing.T) {
	const lease = 2 * time.Second
	tr := startLeaseTrioFence(t, lease, 30*time.Second)
	leader, dead := tr.stopFollower(t)
	if _, ok := leader.State().PeerByName(dead.n.Name()); !ok {
		t.Fatal("the stopped peer is no longer registered")
	}

	start := time.Now()
	code, _, body := call(t, leader, "POST", "/v1/migrations", "", `{"topic":"orders","to":"west"}`)
	if code != 202 {
		t.Fatalf("start: %d %s", code, body)
	}
	var switchedAt time.Time
	waitUntil(t, 60*time.Second, "the migration switches", func() bool {
		st := leader.State()
		mg, ok := st.Migration("orders")
		if ok && mg.State == fsm.MigrationFailed {
			t.Fatalf("migration failed: %s", mg.Error)
		}
		if ok && mg.State == fsm.MigrationSwitched {
			switchedAt = time.Now()
			return true
		}
		return false
	})
	// The fence applied after start; the switch could not come before the
	// stopped peer's lease had certainly run out.
	if waited := switchedAt.Sub(start); waited < lease+leaseMargin(lease) {
		t.Fatalf("switched %v after the start, before a lease of %v plus margin %v could have run out", waited, lease, leaseMargin(lease))
	}
	c := leader.State().Chain("orders")
	if c == nil || c.Live().Cluster != "west" {
		t.Fatalf("orders does not live on west after the switch: %+v", c)
	}
	if got := c.Live().Start(0); got != 3 {
		t.Fatalf("partition 0 starts at %d on west, want the source's high watermark 3", got)
	}
}

// TestNoLeaseMigrationWaitsForEveryPeer: with the write lease off, nothing
// bounds how long a silent peer keeps writing, so a stopped (or cut-off)
// registered peer holds the fence: the migration fails at its fence
// timeout, naming the peer, and the topic stays on its source.
func TestNoLeaseMigrationWaitsForEveryPeer(t *testing.T) {
	tr := startLeaseTrioFence(t, -time.Second, 3*time.Second)
	leader, dead := tr.stopFollower(t)
	code, _, body := call(t, leader, "POST", "/v1/migrations", "", `{"topic":"orders","to":"west"}`)
	if code != 202 {
		t.Fatalf("start: %d %s", code, body)
	}
	var mg *fsm.Migration
	waitUntil(t, 60*time.Second, "the migration ends", func() bool {
		var ok bool
		mg, ok = leader.State().Migration("orders")
		if ok && mg.State == fsm.MigrationSwitched {
			t.Fatal("switched with a registered peer silent and no write lease to wait out")
		}
		return ok && mg.State == fsm.MigrationFailed
	})
	if !strings.Contains(mg.Error, dead.n.Name()) {
		t.Fatalf("the failure does not name the silent peer %s: %s", dead.n.Name(), mg.Error)
	}
	if r, _ := leader.State().RouteFor("orders"); r != "east" || leader.State().Chain("orders") != nil {
		t.Fatalf("orders moved (%s) after a failed fence", r)
	}
}

// stopFollower writes 3, 1, 0 and 2 records to the partitions of orders on
// east, stops a follower and waits until the leader's gossip no longer
// shows it live.
func (tr *leaseTrio) stopFollower(t *testing.T) (leader *Node, dead *trioPeer) {
	t.Helper()
	leader = tr.leader(t)
	for _, p := range tr.peers {
		if p.n != leader {
			dead = p
			break
		}
	}
	produce(t, tr.east, "orders", []int{3, 1, 0, 2})
	dead.stop()
	waitUntil(t, 30*time.Second, "the leader sees "+dead.n.Name()+" gone", func() bool { return !leader.gossip.isLive(dead.n.Name()) })
	return leader, dead
}
