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

// TestSeqRebaseStart: a transactional producer's first batch on a segment
// continues from the start the cluster suggests (asked once), the rest
// follow; a refused guess falls back to 0 for the retry, an accepted one
// stands; a failed lookup refuses the batch and is asked again.
func TestSeqRebaseStart(t *testing.T) {
	var p producerIDs
	p.init(time.Now(), Config{Limits: Limits{ProducerIDMappings: 100, ProducerIDIdle: time.Minute}})
	vpid := txnVPID("tx")
	const scope = "c\x00segment 2"
	asked := 0
	start := func(n int32, code int16) func() (int32, int16) {
		return func() (int32, int16) { asked++; return n, code }
	}
	seqOf := func(b []byte) int32 { return int32(binary.BigEndian.Uint32(b[batchSeqOff:])) }

	part := &seqPart{"t", 0}
	if code := p.rebase(scope, vpid, 0, part, idemBatch(vpid, 0, 40), start(0, kerr.RequestTimedOut.Code)); code != kerr.RequestTimedOut.Code {
		t.Fatalf("a failed lookup: code %d, want REQUEST_TIMED_OUT", code)
	}
	k := seqBaseKey{scope, vpid, 0, "t", 0}
	for _, c := range []struct{ in, out int32 }{{40, 17}, {45, 22}} {
		b := idemBatch(vpid, 0, c.in)
		if code := p.rebase(scope, vpid, 0, part, b, start(17, 0)); code != 0 || seqOf(b) != c.out {
			t.Fatalf("rebase %d = %d (code %d), want %d", c.in, seqOf(b), code, c.out)
		}
	}
	if asked != 2 || !p.guessed(k) {
		t.Fatalf("asked %d times (want 2: the failure, then once), guessed %v", asked, p.guessed(k))
	}
	if !p.settleGuess(k, false) || p.guessed(k) {
		t.Fatal("a refused guess must fall back")
	}
	b := idemBatch(vpid, 0, 40)
	if p.rebase(scope, vpid, 0, part, b, start(99, 0)); seqOf(b) != 0 || asked != 2 {
		t.Fatalf("retry after the fallback: sequence %d, asked %d, want 0 without asking", seqOf(b), asked)
	}

	part1 := &seqPart{"t", 1}
	k1 := seqBaseKey{scope, vpid, 0, "t", 1}
	if p.rebase(scope, vpid, 0, part1, idemBatch(vpid, 0, 8), start(3, 0)); !p.guessed(k1) {
		t.Fatal("a start from the cluster is a guess")
	}
	if p.settleGuess(k1, true) || p.guessed(k1) || p.settleGuess(k1, false) {
		t.Fatal("an accepted guess stands, and is settled once")
	}
	b = idemBatch(vpid, 0, 9)
	if p.rebase(scope, vpid, 0, part1, b, nil); seqOf(b) != 4 {
		t.Fatalf("after an accepted guess: sequence %d, want 4", seqOf(b))
	}
}
