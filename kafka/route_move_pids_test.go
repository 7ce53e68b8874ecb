package kafka

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// movingView is a state view whose route for topic "t" a test re-points
// while clients run.
type movingView struct{ st atomic.Pointer[fsm.State] }

func (v *movingView) State() *fsm.State { return v.st.Load() }
func (v *movingView) Live(int32) bool   { return true }

// routeT re-points topic t's route to cluster.
func (v *movingView) routeT(cluster string) {
	st := *v.st.Load()
	st.Routes.Topics = []fsm.TopicRoute{{Topic: "t", Cluster: cluster}}
	v.st.Store(&st)
}

// startMovingProxy is one peer over clusters a and b, both holding topic
// t (partitions each, no records), routed to a.
func startMovingProxy(t *testing.T, partitions int32) (addr string, view *movingView, ka, kb *kfake.Cluster) {
	addr, view, ka, kb, _ = startMovingProxyOn(t, partitions, true)
	return addr, view, ka, kb
}

// startMovingProxyOn is startMovingProxy with t on b only when onB; it
// also returns b's Backend.
func startMovingProxyOn(t *testing.T, partitions int32, onB bool) (addr string, view *movingView, ka, kb *kfake.Cluster, beB *Backend) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry(), 0)
	var bes []*Backend
	var clusters []fsm.Cluster
	for _, name := range []string{"a", "b"} {
		opts := []kfake.Opt{kfake.NumBrokers(1)}
		if name == "a" || onB {
			opts = append(opts, kfake.SeedTopics(partitions, "t"))
		}
		kc, err := kfake.NewCluster(opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(kc.Close) // after the proxy's cleanup
		be := newTestBackend(t, BackendConfig{Name: name, Bootstrap: kc.ListenAddrs(), MetadataRefresh: time.Second, Metrics: m})
		bes = append(bes, be)
		clusters = append(clusters, fsm.Cluster{Name: name, Bootstrap: kc.ListenAddrs()})
		if name == "a" {
			ka = kc
		} else {
			kb, beB = kc, be
		}
	}
	view = &movingView{}
	srv := listenServer(t, Config{}, view, m, bes...)
	addr = srv.Addr().String()
	view.st.Store(&fsm.State{
		Clusters: clusters,
		Routes:   fsm.Routes{Topics: []fsm.TopicRoute{{Topic: "t", Cluster: "a"}}},
		Peers:    []fsm.Peer{{ID: 0, Name: "peer-0", KafkaAddr: addr}},
	})
	serveServer(t, srv, bes...)
	waitReady(t, bes...)
	return addr, view, ka, kb, beB
}

// readAll returns the values of the records of topic t on kc, read
// directly, per partition: want of them, or (want < 0) all, as many as the
// partitions' end offsets count (no transactions write t, so every offset
// is a record). It returns what it has after 20 s.
func readAll(t *testing.T, kc *kfake.Cluster, want int) map[int32][]string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ConsumeTopics("t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if want < 0 {
		// Counted up front: a first poll that brings nothing within a
		// deadline says nothing on a loaded machine (all of a's records
		// once read as "stored 0 times").
		ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, "t")
		if err != nil {
			t.Fatalf("end offsets of t: %v", err)
		}
		want = 0
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err != nil {
				t.Fatalf("end offset of t/%d: %v", o.Partition, o.Err)
			}
			want += int(o.Offset)
		})
	}
	got, n := map[int32][]string{}, 0
	for n < want && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], string(r.Value))
			n++
		})
	}
	return got
}

// TestRouteMoveRebasesSequences: an idempotent producer whose topic's
// route moves to a cluster where the topic never held a record goes on
// writing, and so it does when the route comes back. Without the rebase
// (producer_ids.go pidTarget) b's empty partition refuses the continued
// sequence (KAFKA-15591), and a's real id, which last wrote seq 3 there,
// refuses the gap on the way back: both OUT_OF_ORDER_SEQUENCE_NUMBER,
// which librdkafka takes as fatal.
func TestRouteMoveRebasesSequences(t *testing.T) {
	addr, view, ka, kb := startMovingProxy(t, 1)
	step := rawIdempotent(t, addr)
	step("a", 0)
	step("a", 0)
	view.routeT("b")
	step("b", kerr.NotLeaderForPartition.Code) // the route-change bounce
	step("b", 0)
	step("b", 0)
	view.routeT("a")
	step("a", kerr.NotLeaderForPartition.Code)
	step("a", 0)

	if got, want := fmt.Sprint(readAll(t, ka, 6)[0]), "[a-0 a-1 a-2 a-3 a-8 a-9]"; got != want {
		t.Errorf("a holds %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(readAll(t, kb, 4)[0]), "[b-4 b-5 b-6 b-7]"; got != want {
		t.Errorf("b holds %s, want %s", got, want)
	}
}

// TestTopicMirroredWhileProducing: a producer writes t, which only a
// holds (its sequences go unrebased); t is then created on b, so the peer
// starts rebasing t's sequences (pidTarget). The producer goes on: it
// takes a new real id on a, which the rebased sequence (0) suits, rather
// than its old one seeing its sequence go back to 0.
func TestTopicMirroredWhileProducing(t *testing.T) {
	addr, _, ka, kb, beB := startMovingProxyOn(t, 1, false)
	step := rawIdempotent(t, addr)
	step("a", 0)
	step("a", 0)
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "t", 1, 1
	req.Topics = append(req.Topics, rt)
	if _, err := req.RequestWith(context.Background(), kgoClient(t, kb)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !beB.knows("t") {
		if time.Now().After(deadline) {
			t.Fatal("b's metadata never showed t")
		}
		beB.TriggerRefresh()
		time.Sleep(50 * time.Millisecond)
	}
	step("a", 0)
	step("a", 0)
	if got, want := fmt.Sprint(readAll(t, ka, 8)[0]), "[a-0 a-1 a-2 a-3 a-4 a-5 a-6 a-7]"; got != want {
		t.Errorf("a holds %s, want %s", got, want)
	}
}

// kgoClient is a franz-go client of kc, closed at the test's end.
func kgoClient(t *testing.T, kc *kfake.Cluster) *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// rawIdempotent is an idempotent producer of one partition of topic t
// through addr, by hand (rawProducer.step on one connection).
func rawIdempotent(t *testing.T, addr string) func(on string, want int16) {
	c := dialRaw(t, addr)
	p := newRawProducer(t, c)
	return func(on string, want int16) {
		t.Helper()
		p.step(c, on, want)
	}
}

// rawProducer is an idempotent producer of partition 0 of topic t, by
// hand: each step sends two records ("on-seq") at the next sequence on a
// connection, and the sequence advances on success.
type rawProducer struct {
	t     *testing.T
	id    int64
	epoch int16
	seq   int32
}

// newRawProducer takes a virtual producer id through c.
func newRawProducer(t *testing.T, c *rawClient) *rawProducer {
	t.Helper()
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionTimeoutMillis = -1
	resp, err := c.do(init, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ir := resp.(*kmsg.InitProducerIDResponse)
	if ir.ErrorCode != 0 || !isVirtual(ir.ProducerID) {
		t.Fatalf("InitProducerId: code %d id %x", ir.ErrorCode, ir.ProducerID)
	}
	return &rawProducer{t: t, id: ir.ProducerID, epoch: ir.ProducerEpoch}
}

// step produces through c and wants the answer's code.
func (p *rawProducer) step(c *rawClient, on string, want int16) {
	t := p.t
	t.Helper()
	values := []string{fmt.Sprintf("%s-%d", on, p.seq), fmt.Sprintf("%s-%d", on, p.seq+1)}
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 7, -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = idempotentBatch(p.id, p.epoch, p.seq, values...)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := c.do(req, 30*time.Second)
	if err != nil {
		t.Fatalf("produce via %s at seq %d: %v", on, p.seq, err)
	}
	code := resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	if code != want {
		t.Fatalf("produce via %s at seq %d: %v, want %v", on, p.seq, kerr.ErrorForCode(code), kerr.ErrorForCode(want))
	}
	if code == 0 {
		p.seq += int32(len(values))
	}
}

// TestRouteMoveIdempotentClient: a franz-go idempotent producer keeps
// producing while its topic's route moves a → b (where the topic is
// empty) → a: every record is acknowledged, none fails, and each is
// stored exactly once. franz-go gets over the refusals the rebase
// prevents by itself (this passes without it); librdkafka does not, and
// the fault suite's route-change case runs it (test/chaos), as
// TestRouteMoveRebasesSequences checks the sequences by hand.
func TestRouteMoveIdempotentClient(t *testing.T) {
	addr, view, ka, kb := startMovingProxy(t, 3)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("t"),
		kgo.RecordRetries(20), kgo.ProducerLinger(0), kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		mu     sync.Mutex
		failed []error
		acked  int
		wg     sync.WaitGroup
	)
	n := 0
	send := func(rounds int) {
		for range rounds {
			for p := range int32(3) {
				wg.Add(1)
				cl.Produce(ctx, &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "%d", n)}, func(_ *kgo.Record, err error) {
					defer wg.Done()
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						failed = append(failed, err)
					} else {
						acked++
					}
				})
				n++
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	send(20)
	view.routeT("b")
	send(40)
	view.routeT("a")
	send(40)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d records failed, first: %v", len(failed), n, failed[0])
	}
	seen, onB := map[string]int{}, 0
	for i, kc := range []*kfake.Cluster{ka, kb} {
		for _, vals := range readAll(t, kc, -1) {
			for _, v := range vals {
				seen[v]++
				if i == 1 {
					onB++
				}
			}
		}
	}
	for i := range n {
		if c := seen[fmt.Sprint(i)]; c != 1 {
			t.Errorf("record %d stored %d times", i, c)
		}
	}
	if onB == 0 || onB == n {
		t.Errorf("%d of %d records on b: the route did not move and come back", onB, n)
	}
	t.Logf("%d records acknowledged, %d of them on b", acked, onB)
}

// TestSeqBaseEvictionDropsRealID: when a rebased partition's base is
// evicted, the producer's real id goes too, so its next batch there takes
// a new real id (which the partition holds no sequences for) instead of
// starting the base over under the old one, which the partition would
// refuse as out of order.
func TestSeqBaseEvictionDropsRealID(t *testing.T) {
	var p producerIDs
	p.init(time.Now(), Config{Limits: Limits{ProducerIDMappings: 1, ProducerIDIdle: time.Hour}})
	vpid := p.issue(0)
	if _, _, err := p.real(context.Background(), "a", vpid, 0, func(context.Context) (realPID, error) { return realPID{id: 7}, nil }); err != nil {
		t.Fatal(err)
	}
	if code := p.rebase("a", vpid, 0, &seqPart{"t", 0}, idempotentBatch(vpid, 0, 12, "x"), nil); code != 0 {
		t.Fatalf("rebase: %v", kerr.ErrorForCode(code))
	}
	if _, ok := p.cached("a", vpid, 0); !ok {
		t.Fatal("the real id went with no base evicted")
	}
	// A second partition's base evicts the first (room for one).
	if code := p.rebase("a", vpid, 0, &seqPart{"t", 1}, idempotentBatch(vpid, 0, 30, "y"), nil); code != 0 {
		t.Fatalf("rebase: %v", kerr.ErrorForCode(code))
	}
	if _, ok := p.cached("a", vpid, 0); ok {
		t.Fatal("partition 0's base was evicted and the real id stayed")
	}
}
