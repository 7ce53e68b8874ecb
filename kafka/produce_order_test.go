package kafka

import (
	"context"
	"encoding/binary"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestProduceAfterLeaderMoveWaitsForEarlier: an idempotent producer
// pipelines batch 0 and batch 1 of a partition on one connection. Batch 0
// is held at the partition's leader; meanwhile the leadership moves and
// the proxy's metadata learns it. Batch 1 must not go to the new leader
// ahead of batch 0 (a leader without the producer's state would write it,
// and batch 0's retry would then be refused as out of order): the proxy
// refuses it unsent, and batch 2 behind it too, until batch 0 is retried.
// The retries are then written once each, in order.
func TestProduceAfterLeaderMoveWaitsForEarlier(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	be, srv := startProxyServer(t, kc, BackendConfig{Name: "k"})
	addr := srv.Addr().String()
	waitReady(t, be)
	leader := be.leader("t", 0)
	if leader < 0 {
		t.Fatal("t/0 has no leader in the proxy's metadata")
	}
	moved := (leader + 1) % 3

	var (
		mu       sync.Mutex
		arrivals = map[int32]int{}
		held     = make(chan struct{}, 1)
		release  = make(chan struct{})
	)
	kc.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		n := kc.CurrentNode()
		mu.Lock()
		arrivals[n]++
		first := n == leader && arrivals[n] == 1
		mu.Unlock()
		if first {
			held <- struct{}{}
			kc.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	arrived := func(n int32) int {
		mu.Lock()
		defer mu.Unlock()
		return arrivals[n]
	}

	c := dialRaw(t, addr)
	ip := kmsg.NewPtrInitProducerIDRequest()
	ip.SetVersion(4)
	ip.ProducerID, ip.ProducerEpoch = -1, -1
	resp, err := c.do(ip, 30*time.Second)
	if err != nil {
		t.Fatalf("init producer id: %v", err)
	}
	ipr := resp.(*kmsg.InitProducerIDResponse)
	if ipr.ErrorCode != 0 {
		t.Fatalf("init producer id: code %d", ipr.ErrorCode)
	}
	pid, epoch := ipr.ProducerID, ipr.ProducerEpoch
	batch := func(seq int32, v string) *kmsg.ProduceRequest {
		req := produceOne("t", 0)
		req.Topics[0].Partitions[0].Records = idempotentBatch(pid, epoch, seq, v)
		req.SetVersion(12) // KIP-951's CurrentLeader, topics by name
		return req
	}
	answer := func(req *kmsg.ProduceRequest, corr int32) *kmsg.ProduceResponse {
		t.Helper()
		resp, err := c.recv(req, corr, 30*time.Second)
		if err != nil {
			t.Fatalf("produce answer: %v", err)
		}
		pr := resp.(*kmsg.ProduceResponse)
		if len(pr.Topics) != 1 || len(pr.Topics[0].Partitions) != 1 {
			t.Fatalf("produce answer %+v, want t/0 alone", pr.Topics)
		}
		return pr
	}
	code := func(req *kmsg.ProduceRequest, corr int32) int16 {
		t.Helper()
		return answer(req, corr).Topics[0].Partitions[0].ErrorCode
	}
	// refusedTowards checks that an answer the proxy gave itself names
	// the new leader, as the one peer presents it, at its new epoch, with
	// the peer's endpoint, so the client moves without a metadata refresh.
	newEpoch := int32(-1)
	refusedTowards := func(what string, pr *kmsg.ProduceResponse) {
		t.Helper()
		p := pr.Topics[0].Partitions[0]
		if p.ErrorCode != kerr.NotLeaderForPartition.Code {
			t.Fatalf("%s: code %d, want NOT_LEADER_OR_FOLLOWER", what, p.ErrorCode)
		}
		if p.CurrentLeader.LeaderID != 0 || p.CurrentLeader.LeaderEpoch != newEpoch {
			t.Fatalf("%s: current leader %+v, want peer 0 at epoch %d", what, p.CurrentLeader, newEpoch)
		}
		if len(pr.Brokers) != 1 || pr.Brokers[0].NodeID != 0 || net.JoinHostPort(pr.Brokers[0].Host, strconv.Itoa(int(pr.Brokers[0].Port))) != addr {
			t.Fatalf("%s: endpoints %+v, want peer 0 at %s", what, pr.Brokers, addr)
		}
	}

	b0 := batch(0, "a")
	corr0 := c.send(t, b0)
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("batch 0 never reached the leader")
	}
	if err := kc.MoveTopicPartition("t", 0, moved); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for be.leader("t", 0) != moved {
		if time.Now().After(deadline) {
			t.Fatalf("the proxy's metadata still has broker %d leading t/0", be.leader("t", 0))
		}
		be.TriggerRefresh()
		time.Sleep(20 * time.Millisecond)
	}
	if newEpoch = be.meta("t").leaderEpoch(0); newEpoch < 1 {
		t.Fatalf("t/0's leader epoch after the move is %d", newEpoch)
	}
	b1, b2 := batch(1, "b"), batch(2, "c")
	corr1 := c.send(t, b1)
	corr2 := c.send(t, b2)
	// Batch 0 stays held until the proxy has decided batch 1: refused
	// (the gap it leaves is what holds batch 2) or sent to the new
	// leader (the failure this tests for).
	deadline = time.Now().Add(30 * time.Second)
	for srv.seqGaps.open.Load() == 0 && arrived(moved) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("batch 1 was neither refused nor sent within 30 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	if got := code(b0, corr0); got != kerr.NotLeaderForPartition.Code {
		t.Fatalf("batch 0 at the old leader: code %d, want NOT_LEADER_OR_FOLLOWER", got)
	}
	refusedTowards("batch 1 behind the unanswered batch 0", answer(b1, corr1))
	refusedTowards("batch 2 behind the refused batch 1", answer(b2, corr2))
	if n := arrived(moved); n != 0 {
		t.Fatalf("%d produce(s) reached the new leader ahead of batch 0's retry", n)
	}

	// The client resends in order; each is written once.
	for seq, b := range []*kmsg.ProduceRequest{batch(0, "a"), batch(1, "b"), batch(2, "c")} {
		if got := code(b, c.send(t, b)); got != 0 {
			t.Fatalf("retry of batch %d: code %d", seq, got)
		}
	}
	f := kmsg.NewPtrFetchRequest()
	f.SetVersion(11)
	f.ReplicaID, f.MaxWaitMillis, f.MaxBytes = -1, 100, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "t"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.PartitionMaxBytes, fp.LogStartOffset = 0, 1<<20, -1
	ft.Partitions = append(ft.Partitions, fp)
	f.Topics = append(f.Topics, ft)
	fr := c.fetch(t, f)
	var values []string
	for _, tp := range fr.Topics {
		for _, p := range tp.Partitions {
			if p.ErrorCode != 0 {
				t.Fatalf("fetch t/0: code %d", p.ErrorCode)
			}
			values = append(values, recordValues(t, p.RecordBatches)...)
		}
	}
	if len(values) != 3 || values[0] != "a" || values[1] != "b" || values[2] != "c" {
		t.Fatalf("t/0 holds %q, want [a b c]", values)
	}
}

// send writes req without waiting for its answer and returns its
// correlation id.
func (c *rawClient) send(t *testing.T, req kmsg.Request) int32 {
	t.Helper()
	c.corr++
	id := "raw-test"
	c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.nc.Write(appendRequest(nil, req, c.corr, &id)); err != nil {
		t.Fatalf("write %s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return c.corr
}

// recv reads the next answer, which must be req's (corr).
func (c *rawClient) recv(req kmsg.Request, corr int32, within time.Duration) (kmsg.Response, error) {
	c.nc.SetReadDeadline(time.Now().Add(within))
	buf, err := readFrame(c.br, 1<<24)
	if err != nil {
		return nil, err
	}
	return decodeCtlResponse(req, corr, buf.b[4:])
}

// recordValues is the values of the uncompressed record batches in raw.
func recordValues(t *testing.T, raw []byte) []string {
	t.Helper()
	var out []string
	for len(raw) > 0 {
		var b kmsg.RecordBatch
		if err := b.ReadFrom(raw); err != nil {
			t.Fatalf("record batch: %v", err)
		}
		raw = raw[min(len(raw), 12+int(b.Length)):]
		recs := b.Records
		for range b.NumRecords {
			l, n := binary.Varint(recs)
			if n <= 0 || int(l) > len(recs)-n {
				t.Fatalf("record length %d in %d bytes", l, len(recs))
			}
			var r kmsg.Record
			if err := r.ReadFrom(recs[:n+int(l)]); err != nil {
				t.Fatalf("record: %v", err)
			}
			out = append(out, string(r.Value))
			recs = recs[n+int(l):]
		}
	}
	return out
}

// TestProduceOrderAcrossLeaderMoves: a franz-go idempotent producer writes
// through one peer in front of three brokers while the partitions' leaders
// move among them. The client sees one broker throughout; the peer learns
// each move from its metadata and sends the next batches to the new
// leader. Every record is acknowledged and written once, in order.
func TestProduceOrderAcrossLeaderMoves(t *testing.T) {
	const partitions, wantMoves = 3, 100
	kc, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(partitions, "moving"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	be, addr := startProxy(t, kc, BackendConfig{Name: "k"})
	waitReady(t, be)
	// One peer presents every partition: each move keeps the same
	// presented leader at a newer epoch (KIP-951), and a second refusal
	// at the epoch the client already moved to makes franz-go refresh its
	// metadata, no sooner than its metadata min age (5 s by default)
	// after the last refresh, as it does direct when two pipelined batches
	// meet the same move. Moves every few milliseconds would make that
	// the whole run.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("moving"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	stop, moverDone := make(chan struct{}), make(chan struct{})
	var moves atomic.Int64
	go func() {
		defer close(moverDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(15 * time.Millisecond):
			}
			p := int32(i % partitions)
			if err := kc.MoveTopicPartition("moving", p, int32((i/partitions+int(p))%3)); err != nil {
				t.Errorf("move moving/%d: %v", p, err)
				return
			}
			moves.Add(1)
			be.TriggerRefresh()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		failed   int
	)
	// Records go out until the leaders have moved wantMoves times, a
	// millisecond's pause every other one so that they span the moves.
	records := 0
	for ; moves.Load() < wantMoves; records++ {
		if records%2 == 1 {
			time.Sleep(time.Millisecond)
		}
		r := &kgo.Record{Partition: int32(records % partitions), Value: []byte(strconv.Itoa(records))}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				failed++
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	close(stop)
	<-moverDone
	if err := cl.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if failed > 0 {
		t.Fatalf("%d of %d records failed (first: %v) across %d leader moves", failed, records, firstErr, moves.Load())
	}

	direct, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ConsumeTopics("moving"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	last := map[int32]int{}
	got := 0
	for got < records {
		fs := direct.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records back", got, records)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			v, _ := strconv.Atoi(string(r.Value))
			prev, seen := last[r.Partition]
			if want := prev + partitions; seen && v != want || !seen && v != int(r.Partition) {
				t.Fatalf("partition %d: record %d after %d (seen %v): lost, duplicated or out of order across %d leader moves", r.Partition, v, prev, seen, moves.Load())
			}
			last[r.Partition] = v
			got++
		})
	}
	t.Logf("%d records in order across %d leader moves", records, moves.Load())
}
