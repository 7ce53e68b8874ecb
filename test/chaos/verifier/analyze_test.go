package verifier

import (
	"testing"
	"time"
)

// TestAnalyze checks each figure on a log written by hand.
func TestAnalyze(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	l := NewLog()
	// Producer a: seq 0..5 acked on partition 0 at offsets 0..5, one ack
	// every 100 ms except a 2 s gap after the fault (at 250 ms).
	ackMs := []int{0, 100, 200, 2200, 2300, 2400}
	for s, ms := range ackMs {
		l.ack(Ack{Producer: "a", Seq: int64(s), Partition: 0, Offset: int64(s), At: at(ms)})
	}
	// Producer b: seq 0..2 acked on partition 1; seq 3 failed.
	for s := range 3 {
		l.ack(Ack{Producer: "b", Seq: int64(s), Partition: 1, Offset: int64(s), At: at(50 * s)})
	}
	l.fail("b", 3, "boom")

	d := func(p string, seq int64, part int32, off int64, ms int) {
		l.deliver(Delivery{Producer: p, Seq: seq, Partition: part, Offset: off, Member: "m", At: at(ms)})
	}
	// Partition 0: a:0 a:1 a:2 a:2(again, stored twice at offset 3) a:4 a:3
	// (out of order at offset 5); a:5 never delivered (lost).
	d("a", 0, 0, 0, 10)
	d("a", 1, 0, 1, 110)
	d("a", 2, 0, 2, 210)
	d("a", 2, 0, 3, 2210)
	d("a", 4, 0, 4, 2310)
	d("a", 3, 0, 5, 2410)
	// Partition 1: b:0 b:1 b:1 (same offset: redelivered) b:2.
	d("b", 0, 1, 0, 20)
	d("b", 1, 1, 1, 70)
	d("b", 1, 1, 1, 900)
	d("b", 2, 1, 2, 910)
	l.foreignRecord()

	r := Analyze(l, at(250), at(3000))
	want := Report{Acknowledged: 9, Failed: 1, Lost: 1, Delivered: 8, Duplicated: 2, StoredTwice: 1, Redelivered: 1, OutOfOrder: 1, Foreign: 1,
		// a:3 acked at offset 3 but delivered from offset 5; a:4 acked at 4 is there.
		AckMoved: 1}
	got := r
	got.Producers, got.LostSample, got.StoredTwiceSample, got.ProduceStall, got.ConsumeStall = nil, nil, nil, 0, 0
	if got.String() != want.String() || got.Delivered != want.Delivered || got.AckMoved != want.AckMoved {
		t.Errorf("report:\n%v\nwant:\n%v (delivered %d/%d, moved %d/%d)", got, want, got.Delivered, want.Delivered, got.AckMoved, want.AckMoved)
	}
	if r.ProduceStall != 2*time.Second {
		t.Errorf("produce stall %v, want 2s (a's gap from 200 to 2200 ms)", r.ProduceStall)
	}
	// Partition 0's deliveries at 210 and 2210 ms: its gap ending after the
	// fault; partition 1's 70 to 900 ms gap is shorter. All partitions
	// together would show 910 to 2210 ms.
	if r.ConsumeStall != 2*time.Second {
		t.Errorf("consume stall %v, want 2s", r.ConsumeStall)
	}
	if len(r.Producers) != 2 || r.Producers[0].Lost != 1 || r.Producers[1].Failed != 1 || r.Producers[1].Stall != 0 {
		t.Errorf("producers: %+v", r.Producers)
	}
	if len(r.StoredTwiceSample) != 1 || r.StoredTwiceSample[0] != "a:2 at p0@2, p0@3" {
		t.Errorf("stored twice sample %q", r.StoredTwiceSample)
	}
	if len(r.LostSample) != 1 {
		t.Errorf("lost sample %v", r.LostSample)
	}
}

func TestParseValue(t *testing.T) {
	for _, c := range []struct {
		in   string
		name string
		seq  int64
		ok   bool
	}{
		{"kgo:12", "kgo", 12, true},
		{"a:b:3", "a:b", 3, true},
		{":3", "", 0, false},
		{"kgo:", "", 0, false},
		{"kgo:-1", "", 0, false},
		{"plain", "", 0, false},
	} {
		name, seq, ok := parseValue([]byte(c.in))
		if name != c.name || seq != c.seq || ok != c.ok {
			t.Errorf("parseValue(%q) = %q %d %v, want %q %d %v", c.in, name, seq, ok, c.name, c.seq, c.ok)
		}
	}
}

// TestAnalyzeAudited: a topic re-pointed from east to west. The group's
// offsets overlap across the clusters (p0@0 is a:0 on east and a:1 on
// west); the audits' positions say what is stored where.
func TestAnalyzeAudited(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := NewLog()
	for s := range 6 {
		l.ack(Ack{Producer: "a", Seq: int64(s), Partition: 0, Offset: -1, At: t0.Add(time.Duration(s) * time.Second)})
	}
	for _, s := range []Stored{
		{"east", "a", 0, 0, 0}, {"east", "a", 1, 0, 1}, {"east", "a", 5, 0, 2},
		// a:1 retried across the change: stored on both clusters.
		{"west", "a", 1, 0, 0}, {"west", "a", 2, 0, 1}, {"west", "a", 3, 0, 2},
	} {
		l.store(s)
	}
	// The group read a:0 on east, then west from its start; it never read
	// a:5, left on east. a:4 is stored nowhere: lost.
	for i, s := range []int64{0, 1, 2, 3} {
		off := int64(i - 1)
		if i == 0 {
			off = 0
		}
		l.deliver(Delivery{Producer: "a", Seq: s, Partition: 0, Offset: off, Member: "m", At: t0.Add(time.Duration(i) * time.Second)})
	}
	r := Analyze(l, t0, t0.Add(10*time.Second))
	if !r.Audited || r.Acknowledged != 6 || r.Lost != 1 || r.Unread != 1 || r.StoredTwice != 1 || r.OutOfOrder != 0 || r.Duplicated != 0 || r.Redelivered != 0 {
		t.Fatalf("report: %v", r)
	}
	if len(r.StoredTwiceSample) != 1 || r.StoredTwiceSample[0] != "a:1 at east/p0@1, west/p0@0" {
		t.Errorf("stored twice sample %q", r.StoredTwiceSample)
	}
	if len(r.LostSample) != 1 || r.LostSample[0][:4] != "a:4 " {
		t.Errorf("lost sample %q", r.LostSample)
	}
}
