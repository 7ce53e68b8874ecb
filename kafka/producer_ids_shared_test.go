package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// fsmProducerIDs is the replicated producer id table as the node serves
// it, without the consensus: one real fsm.FSM that both proxies' claims
// are applied to in one order (what Raft's log gives the node), and that
// both read. fail, when set, refuses every claim (no leader, or a peer of
// an older build: the node's Apply error).
type fsmProducerIDs struct {
	mu     sync.Mutex
	f      *fsm.FSM
	index  uint64
	fail   error
	claims int
	// skew moves the clock claims are made by (the node's), in ns.
	skew atomic.Int64
}

func newFSMProducerIDs() *fsmProducerIDs { return &fsmProducerIDs{f: fsm.New(nil)} }

func (s *fsmProducerIDs) Lookup(cluster string, vpid int64, vepoch int16) (SharedProducerID, bool) {
	c, ok := s.f.ProducerID(cluster, vpid, vepoch)
	return SharedProducerID{c.RealID, c.RealEpoch, c.At}, ok
}

func (s *fsmProducerIDs) Claim(_ context.Context, cluster string, vpid int64, vepoch int16, id int64, epoch int16) (SharedProducerID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.claims++
	if s.fail != nil {
		return SharedProducerID{}, s.fail
	}
	at := time.Now().Add(time.Duration(s.skew.Load())).UnixMilli()
	b, err := fsm.Encode(&fsm.ClaimProducerID{ClaimedProducerID: fsm.ClaimedProducerID{
		Cluster: cluster, VirtualID: vpid, VirtualEpoch: vepoch, RealID: id, RealEpoch: epoch, At: at}})
	if err != nil {
		return SharedProducerID{}, err
	}
	s.index++
	switch r := s.f.Apply(&raft.Log{Index: s.index, Type: raft.LogCommand, Data: b}).(type) {
	case error:
		return SharedProducerID{}, r
	case fsm.Applied:
		return SharedProducerID{r.ProducerID.RealID, r.ProducerID.RealEpoch, r.ProducerID.At}, nil
	default:
		return SharedProducerID{}, fmt.Errorf("apply answered %T", r)
	}
}

// claimsMade is how many claims s was asked for.
func (s *fsmProducerIDs) claimsMade() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claims
}

// startSharedProxy is startProxy with the shared producer id table and
// the proxy's metrics.
func startSharedProxy(t *testing.T, kc *kfake.Cluster, shared SharedProducerIDs) (string, *Metrics) {
	t.Helper()
	be := newTestBackend(t, BackendConfig{Name: "k", Bootstrap: kc.ListenAddrs(), MetadataRefresh: time.Minute})
	view := &benchView{}
	m := NewMetrics(prometheus.NewRegistry(), 0)
	srv := listenServer(t, Config{SharedProducerIDs: shared}, view, m, be)
	addr := srv.Addr().String()
	view.st = &fsm.State{
		Clusters: []fsm.Cluster{{Name: "k", Bootstrap: kc.ListenAddrs()}},
		Routes:   fsm.Routes{DefaultCluster: "k"},
		Peers:    []fsm.Peer{{ID: 0, Name: "peer-0", KafkaAddr: addr}},
	}
	serveServer(t, srv, be)
	select {
	case <-be.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("backend metadata not loaded")
	}
	return addr, m
}

// produceAt sends one batch of p at sequence seq through c and answers
// the partition's error code and base offset.
func (p *rawProducer) produceAt(c *rawClient, seq int32, values ...string) (int16, int64) {
	p.t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 7, -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = idempotentBatch(p.id, p.epoch, seq, values...)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := c.do(req, 30*time.Second)
	if err != nil {
		p.t.Fatalf("produce at seq %d: %v", seq, err)
	}
	part := resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	return part.ErrorCode, part.BaseOffset
}

// consumeTopicT reads topic t of kc from the start until it has n records,
// and a moment longer for any more.
func consumeTopicT(t *testing.T, kc *kfake.Cluster, n int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ConsumeTopics("t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(got) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	more, cancelMore := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancelMore()
	cl.PollFetches(more).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	return got
}

func claimCount(m *Metrics, result string) float64 {
	var d dto.Metric
	if err := m.producerIDClaims.WithLabelValues(result).Write(&d); err != nil {
		return -1
	}
	return d.GetCounter().GetValue()
}

// TestSharedProducerRetryAcrossPeers: a batch written through peer A and
// sent again (the client's retry, the same sequence) through peer B after
// the partition moved is answered as the duplicate it is and stored once:
// B maps the virtual id to the real id A claimed in the shared table.
// Without the table B took a real id of its own and the broker stored the
// batch twice.
func TestSharedProducerRetryAcrossPeers(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	shared := newFSMProducerIDs()
	addrA, mA := startSharedProxy(t, kc, shared)
	addrB, mB := startSharedProxy(t, kc, shared)
	a, b := dialRaw(t, addrA), dialRaw(t, addrB)
	p := newRawProducer(t, a)

	if code, off := p.produceAt(a, 0, "r-0", "r-1"); code != 0 || off != 0 {
		t.Fatalf("first batch via a: %v at %d", kerr.ErrorForCode(code), off)
	}
	// The retry through B: the broker knows the sequence for this id.
	if code, off := p.produceAt(b, 0, "r-0", "r-1"); code != 0 && code != kerr.DuplicateSequenceNumber.Code {
		t.Fatalf("the same batch via b: %v at %d, want it answered as a duplicate", kerr.ErrorForCode(code), off)
	}
	// And the producer goes on through B.
	if code, off := p.produceAt(b, 2, "r-2"); code != 0 || off != 2 {
		t.Fatalf("next batch via b: %v at %d, want offset 2", kerr.ErrorForCode(code), off)
	}
	if got, want := consumeTopicT(t, kc, 3), []string{"r-0", "r-1", "r-2"}; !slices.Equal(got, want) {
		t.Fatalf("records %v, want %v (each once)", got, want)
	}
	if shared.claimsMade() != 1 || shared.f.ProducerIDs() != 1 {
		t.Fatalf("%d claims, %d in the table; want A's one", shared.claimsMade(), shared.f.ProducerIDs())
	}
	if claimCount(mA, claimWon) != 1 || claimCount(mB, claimShared) != 1 || claimCount(mA, claimLocal)+claimCount(mB, claimLocal) != 0 {
		t.Fatalf("claims: a won %v, b shared %v", claimCount(mA, claimWon), claimCount(mB, claimShared))
	}
}

// TestSharedProducerMovesAwayAndBack: the partition goes A, B, A, B. With
// the shared table every peer uses the same real id, so each batch
// continues the sequences the partition holds for it: no
// OUT_OF_ORDER_SEQUENCE_NUMBER when it comes back to A (compare
// TestProducerMovesAwayAndBack, the same moves without the table).
func TestSharedProducerMovesAwayAndBack(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	shared := newFSMProducerIDs()
	addrA, _ := startSharedProxy(t, kc, shared)
	addrB, _ := startSharedProxy(t, kc, shared)
	a, b := dialRaw(t, addrA), dialRaw(t, addrB)
	p := newRawProducer(t, a)
	for _, step := range []struct {
		c   *rawClient
		via string
	}{{a, "a"}, {a, "a"}, {b, "b"}, {b, "b"}, {a, "a"}, {b, "b"}, {a, "a"}} {
		p.step(step.c, step.via, 0)
	}
	want := []string{"a-0", "a-1", "a-2", "a-3", "b-4", "b-5", "b-6", "b-7", "a-8", "a-9", "b-10", "b-11", "a-12", "a-13"}
	if got := consumeTopicT(t, kc, len(want)); !slices.Equal(got, want) {
		t.Fatalf("records %v, want %v", got, want)
	}
}

// TestSharedProducerClaimFails: when claims fail (no Raft leader, or a
// peer of an older build refusing the command), each peer maps with its
// own real id as it did before the table, counted as local: production
// goes on, and the limit TestProducerMovesAwayAndBack shows is back.
func TestSharedProducerClaimFails(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	shared := newFSMProducerIDs()
	shared.fail = errors.New("peers must be upgraded first: ClaimProducerID needs command set 7")
	addrA, mA := startSharedProxy(t, kc, shared)
	addrB, mB := startSharedProxy(t, kc, shared)
	a, b := dialRaw(t, addrA), dialRaw(t, addrB)
	p := newRawProducer(t, a)
	for _, step := range []struct {
		c    *rawClient
		via  string
		want int16
	}{{a, "a", 0}, {b, "b", 0}, {a, "a", kerr.OutOfOrderSequenceNumber.Code}} {
		p.step(step.c, step.via, step.want)
	}
	if shared.claimsMade() != 2 || shared.f.ProducerIDs() != 0 || claimCount(mA, claimLocal) != 1 || claimCount(mB, claimLocal) != 1 {
		t.Fatalf("%d claims tried, %d held; local a %v b %v", shared.claimsMade(), shared.f.ProducerIDs(), claimCount(mA, claimLocal), claimCount(mB, claimLocal))
	}
}

// TestSharedProducerClaimRefreshed: a shared claim this peer still uses is
// claimed again once it is claimRefreshAfter old, so the table keeps it
// past its day (fsm.ProducerIDClaimTTL) while the producer runs; a fresh
// one is not. Without the refresh a producer running for more than a day
// lost its entry, and a peer meeting it afterwards took a real id of its
// own again.
func TestSharedProducerClaimRefreshed(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	shared := newFSMProducerIDs()
	shared.skew.Store(int64(-7 * time.Hour)) // the first claim is seven hours old
	addr, m := startSharedProxy(t, kc, shared)
	a := dialRaw(t, addr)
	p := newRawProducer(t, a)
	p.step(a, "a", 0)
	held, _ := shared.f.ProducerID("k", p.id, p.epoch)
	if shared.claimsMade() != 1 || time.Since(time.UnixMilli(held.At)) < 6*time.Hour {
		t.Fatalf("%d claims, the first at %v", shared.claimsMade(), time.UnixMilli(held.At))
	}
	shared.skew.Store(0)
	p.step(a, "a", 0) // uses the cached mapping: refreshes it aside
	deadline := time.Now().Add(30 * time.Second)
	for claimCount(m, claimRefreshed) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("not refreshed within 30 s: %d claims, refreshed %v, failed %v", shared.claimsMade(), claimCount(m, claimRefreshed), claimCount(m, claimRefreshFailed))
		}
		time.Sleep(10 * time.Millisecond)
	}
	now, _ := shared.f.ProducerID("k", p.id, p.epoch)
	if now.RealID != held.RealID || time.Since(time.UnixMilli(now.At)) > time.Minute {
		t.Fatalf("after the refresh the table holds %+v (was %+v)", now, held)
	}
	// Fresh now: the next batches claim nothing.
	p.step(a, "a", 0)
	p.step(a, "a", 0)
	if n := shared.claimsMade(); n != 2 {
		t.Fatalf("%d claims after the refresh, want 2 (the first and the refresh)", n)
	}
	if got := consumeTopicT(t, kc, int(p.seq)); len(got) != int(p.seq) {
		t.Fatalf("%d records, want %d", len(got), p.seq)
	}
}
