package kafka

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// idemBatch is a v2 batch header of producer pid/epoch at sequence seq.
func idemBatch(pid int64, epoch int16, seq int32) []byte {
	b := batchAt(0, -1)
	binary.BigEndian.PutUint64(b[batchPIDOff:], uint64(pid))
	binary.BigEndian.PutUint16(b[batchEpochOff:], uint16(epoch))
	binary.BigEndian.PutUint32(b[batchSeqOff:], uint32(seq))
	return b
}

// TestSeqGaps: after the proxy refuses a batch, later batches of the same
// producer and partition are refused until the refused one comes back; a
// new epoch starts over; other partitions and producers are not held.
func TestSeqGaps(t *testing.T) {
	vpid := int64(1)<<vpidPeerShift | 7
	var g seqGaps
	if code := g.admit("t", 0, idemBatch(vpid, 0, 15)); code != 0 {
		t.Fatalf("no gap: admit = %d", code)
	}
	g.refused("t", 0, idemBatch(vpid, 0, 10))
	g.refused("t", 0, idemBatch(vpid, 0, 12)) // the earlier refusal stands
	if code := g.admit("t", 0, idemBatch(vpid, 0, 15)); code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("a batch past the refused one: admit = %d, want NOT_LEADER_OR_FOLLOWER", code)
	}
	if code := g.admit("t", 1, idemBatch(vpid, 0, 15)); code != 0 {
		t.Fatalf("another partition held: %d", code)
	}
	if code := g.admit("t", 0, idemBatch(vpid+1, 0, 15)); code != 0 {
		t.Fatalf("another producer held: %d", code)
	}
	if code := g.admit("t", 0, idemBatch(vpid, 0, 10)); code != 0 {
		t.Fatalf("the refused batch back: admit = %d", code)
	}
	if code := g.admit("t", 0, idemBatch(vpid, 0, 15)); code != 0 {
		t.Fatalf("after the gap closed: admit = %d", code)
	}
	g.refused("t", 0, idemBatch(vpid, 0, 20))
	if code := g.admit("t", 0, idemBatch(vpid, 1, 0)); code != 0 {
		t.Fatalf("a new epoch: admit = %d", code)
	}
	if g.open.Load() != 0 {
		t.Fatalf("%d gaps left open", g.open.Load())
	}
	// A non-idempotent batch is never held.
	g.refused("t", 0, idemBatch(-1, -1, -1))
	if g.open.Load() != 0 {
		t.Fatal("a batch without a producer opened a gap")
	}
}

// TestSeqRebase: on a migrated segment the first batch a producer sends a
// partition starts at sequence 0 and the rest follow it; an older batch is
// refused retriably.
func TestSeqRebase(t *testing.T) {
	var p producerIDs
	p.init(time.Now(), Config{Limits: Limits{ProducerIDMappings: 100, ProducerIDIdle: time.Minute}})
	vpid := int64(1)<<vpidPeerShift | 7
	part := &seqPart{"t", 3}
	for _, c := range []struct{ in, out int32 }{{130, 0}, {131, 1}, {140, 10}} {
		b := idemBatch(vpid, 0, c.in)
		if code := p.rebase("c\x00segment 1", vpid, 0, part, b, nil); code != 0 {
			t.Fatalf("rebase %d: code %d", c.in, code)
		}
		if got := int32(binary.BigEndian.Uint32(b[batchSeqOff:])); got != c.out {
			t.Fatalf("rebase %d = %d, want %d", c.in, got, c.out)
		}
	}
	if code := p.rebase("c\x00segment 1", vpid, 0, part, idemBatch(vpid, 0, 120), nil); code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("a batch before the base: code %d", code)
	}
	b := idemBatch(vpid, 0, 50)
	if p.rebase("c\x00segment 1", vpid, 0, &seqPart{"t", 4}, b, nil); binary.BigEndian.Uint32(b[batchSeqOff:]) != 0 {
		t.Fatal("another partition has its own base")
	}
}
