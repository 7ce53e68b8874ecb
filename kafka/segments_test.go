package kafka

import (
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// batchAt builds a v2 record batch header (61 bytes, no records) at
// baseOffset with the given leader epoch.
func batchAt(base int64, epoch int32) []byte {
	b := make([]byte, 61)
	binary.BigEndian.PutUint64(b, uint64(base))
	binary.BigEndian.PutUint32(b[8:], 61-12)
	binary.BigEndian.PutUint32(b[12:], uint32(epoch))
	b[16] = 2
	return b
}

func TestSegRefTranslation(t *testing.T) {
	prev := &fsm.Segment{Cluster: "east"}
	live := &fsm.Segment{Cluster: "west", EpochBase: 10, Starts: []int64{100, 50}, Physical: []int64{7, 0}}
	l := segRef{g: live}
	p := segRef{g: prev, next: live}
	if got := l.toVirtual(0, 7); got != 100 {
		t.Errorf("live toVirtual(0, 7) = %d, want 100", got)
	}
	if got := l.toVirtual(0, 3); got != 100 {
		t.Errorf("live toVirtual(0, 3) (retired data below the segment) = %d, want the start 100", got)
	}
	if got := l.toPhysical(1, 60); got != 10 {
		t.Errorf("live toPhysical(1, 60) = %d, want 10", got)
	}
	if got := l.toVirtual(5, 4); got != 4 {
		t.Errorf("a partition added after the switch: toVirtual = %d, want 4", got)
	}
	if got := p.toVirtual(0, 120); got != 100 {
		t.Errorf("previous toVirtual past the switch = %d, want clamped to 100", got)
	}
	if got := l.toVirtual(0, -1); got != -1 {
		t.Errorf("toVirtual(-1) = %d, want -1 kept", got)
	}
	if l.epochOut(3) != 13 || l.epochIn(13) != 3 || l.epochIn(9) != -1 || p.epochIn(5) != -1 || l.epochOut(-1) != -1 {
		t.Error("epoch translation wrong")
	}

	// Batches: base offsets shifted, epochs raised, and a batch past the
	// previous segment's end cut off.
	var b []byte
	b = append(b, batchAt(7, 0)...)
	b = append(b, batchAt(8, 1)...)
	out := shiftBatches(append([]byte(nil), b...), l, 0)
	if got := int64(binary.BigEndian.Uint64(out[61:])); got != 101 {
		t.Errorf("second batch base = %d, want 101", got)
	}
	if got := int32(binary.BigEndian.Uint32(out[61+12:])); got != 11 {
		t.Errorf("second batch epoch = %d, want 11", got)
	}
	var pb []byte
	pb = append(pb, batchAt(98, 0)...)
	pb = append(pb, batchAt(100, 0)...)
	if out := shiftBatches(pb, p, 0); len(out) != 61 {
		t.Errorf("previous segment kept %d bytes, want the batch before its end (61)", len(out))
	}
}

// FuzzShiftBatches: any fetched bytes are shifted without panicking, never
// grow, and a clean batch sequence keeps its length and order.
func FuzzShiftBatches(f *testing.F) {
	f.Add(append(batchAt(0, 0), batchAt(1, 2)...), int64(5), int32(3))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}, int64(1), int32(0))
	f.Add([]byte{}, int64(0), int32(0))
	f.Fuzz(func(t *testing.T, b []byte, start int64, epochBase int32) {
		if start < 0 || epochBase < 0 {
			return
		}
		g := &fsm.Segment{Cluster: "c", EpochBase: epochBase, Starts: []int64{start}, Physical: []int64{0}}
		out := shiftBatches(append([]byte(nil), b...), segRef{g: g}, 0)
		if len(out) > len(b) {
			t.Fatalf("grew from %d to %d bytes", len(b), len(out))
		}
		next := &fsm.Segment{Cluster: "d", Starts: []int64{start}, Physical: []int64{0}}
		_ = shiftBatches(append([]byte(nil), b...), segRef{g: &fsm.Segment{}, next: next}, 0)
	})
}

// TestChainedFetchPreviousWithoutID: a fetch by topic id (v13) of a
// partition below the live segment, while the previous segment's cluster
// does not know the topic's id yet, answers that partition here with
// UNKNOWN_TOPIC_ID under the client's own id (which it retries) and asks
// that cluster for fresh metadata; the partition on the live segment is
// forwarded. Sent on with no id, the cluster's answer would name a topic
// the client never asked for, and the client would drop it.
func TestChainedFetchPreviousWithoutID(t *testing.T) {
	f := newFx(t)
	other, err := NewBackend(BackendConfig{Name: "other", Bootstrap: []string{"127.0.0.1:1"}, Metrics: f.metrics})
	if err != nil {
		t.Fatal(err)
	}
	md := kmsg.NewPtrMetadataResponse()
	md.Version = md.MaxVersion()
	md.Brokers = []kmsg.MetadataResponseBroker{{NodeID: 102, Host: "o.kafka.internal", Port: 9092}}
	other.updateMetadata(md, true) // no topics: orders' id unknown there
	other.versions.Store(fxVersions())
	f.srv.SetBackends([]*Backend{f.backend, other})
	f.view.st.Chains = []fsm.TopicChain{{Topic: "orders", Segments: []fsm.Segment{
		{Cluster: "other", Starts: []int64{0, 0, 0, 0}, Physical: []int64{0, 0, 0, 0}},
		{Cluster: fxCluster, Starts: []int64{100, 100, 100, 100}, Physical: []int64{0, 0, 0, 0}},
	}}}

	vid := virtualTopicID("orders")
	req := kmsg.NewPtrFetchRequest()
	req.Version = 13
	req.ReplicaID, req.MaxWaitMillis, req.MaxBytes, req.SessionEpoch = -1, 100, 1<<20, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.TopicID = vid
	for _, p := range []struct {
		p   int32
		off int64
	}{{0, 5}, {1, 150}} {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p.p, p.off, 1<<20
		rp.CurrentLeaderEpoch, rp.LogStartOffset, rp.LastFetchedEpoch = -1, -1, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)

	h := f.conn(t)
	var forwarded []int32
	ex := h.run(handleFetch, reqFrame(req, 13, 7), func(broker int32, frame []byte) []byte {
		_, kr := decodeFrame(t, frame)
		sub := kr.(*kmsg.FetchRequest)
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = 13
		for _, st := range sub.Topics {
			if st.TopicID != fxOrdersID {
				t.Errorf("broker %d asked for topic id %x, want c1's %x", broker, st.TopicID, fxOrdersID)
			}
			ot := kmsg.NewFetchResponseTopic()
			ot.TopicID = st.TopicID
			for _, sp := range st.Partitions {
				forwarded = append(forwarded, sp.Partition)
				op := kmsg.NewFetchResponseTopicPartition()
				op.Partition, op.HighWatermark, op.LastStableOffset, op.LogStartOffset = sp.Partition, 60, 60, 0
				ot.Partitions = append(ot.Partitions, op)
			}
			resp.Topics = append(resp.Topics, ot)
		}
		return respFrame(resp, 13, be32(frame[8:]))
	})
	if ex.err != nil || !ex.done || ex.outErr != nil {
		t.Fatalf("fetch: err %v, done %v, out err %v", ex.err, ex.done, ex.outErr)
	}
	if len(forwarded) != 1 || forwarded[0] != 1 {
		t.Fatalf("forwarded partitions %v, want [1] (partition 0 is the previous segment's)", forwarded)
	}
	_, kr := decodeOut(t, ex.out, 1, 13)
	resp := kr.(*kmsg.FetchResponse)
	codes := map[int32]int16{}
	for _, rt := range resp.Topics {
		if rt.TopicID != vid {
			t.Errorf("answer names topic id %x, want the client's %x", rt.TopicID, vid)
		}
		for _, p := range rt.Partitions {
			codes[p.Partition] = p.ErrorCode
		}
	}
	if len(codes) != 2 || codes[0] != kerr.UnknownTopicID.Code || codes[1] != 0 {
		t.Fatalf("partition errors %v, want 0: UNKNOWN_TOPIC_ID, 1: none", codes)
	}
	select {
	case <-other.refreshCh:
	default:
		t.Errorf("the previous segment's cluster was not asked to refresh its metadata")
	}
}
