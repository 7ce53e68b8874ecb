package kafka

import (
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fxGate is a write gate a test opens and closes; it counts its calls.
type fxGate struct {
	open  atomic.Bool
	calls atomic.Int64
}

func (g *fxGate) WriteAllowed() bool {
	g.calls.Add(1)
	return g.open.Load()
}

// TestWriteGate: while the gate is closed, Produce is answered
// NOT_LEADER_OR_FOLLOWER for every partition and AddPartitionsToTxn
// NOT_COORDINATOR, and nothing is forwarded; the gate is asked once per
// write request and never for a read; open, Produce is forwarded again.
func TestWriteGate(t *testing.T) {
	gate := &fxGate{}
	f := newFx(t, func(c *Config) { c.Writes = gate })
	h := f.conn(t)
	never := func(_ int32, fr []byte) []byte {
		hdr, _ := decodeFrame(t, fr)
		t.Fatalf("key %d was forwarded while the gate was closed", hdr.key)
		return nil
	}
	split := reqFrame(produceReq(-1, fxPart{"orders", fxOrdersID, 0, []byte("x")}, fxPart{"orders", fxOrdersID, 1, []byte("y")}), 9, 1)
	ex := h.run(handleProduce, split, never)
	if ex.err != nil || !ex.done || len(ex.sent) != 0 {
		t.Fatalf("closed gate: %+v", ex)
	}
	_, resp := decodeOut(t, ex.out, 0, 9)
	n := 0
	for _, rt := range resp.(*kmsg.ProduceResponse).Topics {
		for _, p := range rt.Partitions {
			n++
			if p.ErrorCode != kerr.NotLeaderForPartition.Code {
				t.Fatalf("partition %d answered %d, want NOT_LEADER_OR_FOLLOWER", p.Partition, p.ErrorCode)
			}
		}
	}
	if n != 2 || gate.calls.Load() != 1 {
		t.Fatalf("%d partitions answered, gate asked %d times; want 2 and 1", n, gate.calls.Load())
	}

	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = "txn-1", 7, 0
	at := kmsg.NewAddPartitionsToTxnRequestTopic()
	at.Topic, at.Partitions = "orders", []int32{0, 1}
	add.Topics = append(add.Topics, at)
	ex = h.run(handleAddPartitionsToTxn, reqFrame(add, 3, 2), never)
	if ex.err != nil || !ex.done || len(ex.sent) != 0 {
		t.Fatalf("closed gate, AddPartitionsToTxn: %+v", ex)
	}
	_, aresp := decodeOut(t, ex.out, 24, 3)
	for _, rt := range aresp.(*kmsg.AddPartitionsToTxnResponse).Topics {
		for _, p := range rt.Partitions {
			if p.ErrorCode != kerr.NotCoordinator.Code {
				t.Fatalf("AddPartitionsToTxn partition %d answered %d, want NOT_COORDINATOR", p.Partition, p.ErrorCode)
			}
		}
	}

	asked := gate.calls.Load()
	h.run(handleApiVersions, reqFrame(kmsg.NewPtrApiVersionsRequest(), 3, 3), never)
	if gate.calls.Load() != asked {
		t.Fatal("the gate was asked for a read")
	}

	gate.open.Store(true)
	single := reqFrame(produceReq(-1, fxPart{"orders", fxOrdersID, 1, []byte("x")}), 9, 4)
	ex = h.run(handleProduce, single, produceAnswer(t))
	if ex.err != nil || !ex.done || len(ex.sent[101]) != 1 {
		t.Fatalf("open gate: %+v", ex)
	}
}
