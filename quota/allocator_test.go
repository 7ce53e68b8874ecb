package quota

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"
)

func TestWaterFill(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wants []float64
		c     float64
		want  []float64
	}{
		{"all fit", []float64{10, 20, 30}, 100, []float64{10, 20, 30}},
		{"max-min", []float64{10, 50, 80}, 100, []float64{10, 45, 45}},
		{"equal split", []float64{90, 90, 90}, 90, []float64{30, 30, 30}},
		{"order kept", []float64{80, 10, 50}, 100, []float64{45, 10, 45}},
		{"no capacity", []float64{5, 5}, 0, []float64{0, 0}},
		{"none", nil, 10, []float64{}},
	} {
		got := waterFill(tc.wants, tc.c)
		if !slices.EqualFunc(got, tc.want, func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }) {
			t.Errorf("%s: waterFill(%v, %v) = %v, want %v", tc.name, tc.wants, tc.c, got, tc.want)
		}
	}
}

// peerSim is a perfectly connected peer for allocator tests: it enforces
// exactly the last grant it was sent.
type peerSim struct {
	id       PeerID
	boot     uint64
	seq      uint64
	epoch    uint64
	has      float64
	hasSeq   uint64
	gotEpoch uint64
}

func (p *peerSim) report(k Key, wants, use float64, sat bool) Report {
	p.seq++
	kr := KeyReport{Topic: k.Topic, Dir: k.Dir, Wants: wants, Use: use, Has: p.has, Sat: sat}
	if p.gotEpoch == p.epoch {
		kr.HasSeq = p.hasSeq
	}
	return Report{Boot: p.boot, Seq: p.seq, Epoch: p.epoch, Keys: []KeyReport{kr}}
}

func (p *peerSim) apply(g Grants) {
	if len(g.Keys) == 0 || g.Epoch < p.gotEpoch || (g.Epoch == p.gotEpoch && g.Seq <= p.hasSeq) {
		return
	}
	p.has, p.hasSeq, p.gotEpoch = g.Keys[0].Share, g.Seq, g.Epoch
}

const aQ = 3000.0 // quota for allocator tests: Q/N 1000, floor 10, budget 150

func newTestAllocator(t *testing.T, cfg Config, epoch uint64, peers int) *Allocator {
	t.Helper()
	a, err := NewAllocator(cfg, epoch, t0)
	if err != nil {
		t.Fatal(err)
	}
	a.SetQuotas(map[Key]int64{tk: aQ}, peers, t0)
	return a
}

func newPeers(n int, epoch uint64) []*peerSim {
	ps := make([]*peerSim, n)
	for i := range ps {
		ps[i] = &peerSim{id: PeerID(i), boot: 1, epoch: epoch, has: 3}
	}
	return ps
}

// round: every peer reports (in order) and applies its reply and the
// pushes at once, then the leader allocates and pushes.
func round(t *testing.T, a *Allocator, ps []*peerSim, now time.Time, wants []float64, sat bool) {
	t.Helper()
	for i, p := range ps {
		use := wants[i]
		if !sat {
			use = wants[i] / 1.05
		}
		reply, others, err := a.Report(p.id, p.report(tk, wants[i], use, sat), now)
		if err != nil {
			t.Fatal(err)
		}
		p.apply(reply)
		for id, g := range others {
			ps[id].apply(g)
		}
	}
	for id, g := range a.Allocate(now) {
		ps[id].apply(g)
	}
}

func shares(ps []*peerSim) []float64 {
	s := make([]float64, len(ps))
	for i, p := range ps {
		s[i] = p.has
	}
	return s
}

func TestAllocatorConverges(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wants []float64
		sat   bool
		check func(t *testing.T, got []float64)
	}{
		{"max-min when wants exceed Q", []float64{300, 1500, 2400}, true, func(t *testing.T, got []float64) {
			want := []float64{300, 1350, 1350}
			for i := range got {
				if math.Abs(got[i]-want[i]) > 1 {
					t.Errorf("shares %v, want %v", got, want)
				}
			}
		}},
		{"everyone gets its wants when they fit", []float64{300, 600, 900}, false, func(t *testing.T, got []float64) {
			sum := 0.0
			for i, g := range got {
				sum += g
				if g < []float64{300, 600, 900}[i] {
					t.Errorf("peer %d share %v below its wants", i, g)
				}
			}
			// The leftover is handed out, within Q + the credit.
			if sum < aQ-1 || sum > aQ*1.05+1 {
				t.Errorf("shares %v sum to %v, want in [Q, 1.05 Q]", got, sum)
			}
		}},
		{"no live peer below the floor", []float64{0, 0, 5000}, true, func(t *testing.T, got []float64) {
			if got[0] < 10 || got[1] < 10 {
				t.Errorf("shares %v: a peer is below the floor 10", got)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTestAllocator(t, DefaultConfig(), 1, 3)
			ps := newPeers(3, 1)
			for i := range 12 {
				round(t, a, ps, at(time.Duration(i)*250*time.Millisecond), tc.wants, tc.sat)
			}
			tc.check(t, shares(ps))
		})
	}
}

func TestAllocatorLearning(t *testing.T) {
	cfg := DefaultConfig()
	a := newTestAllocator(t, cfg, 5, 3)
	ps := newPeers(3, 5)
	ps[0].has, ps[1].has, ps[2].has = 1200, 900, 800 // what the previous leader granted
	// An echo of what the peer reports, leased from this report.
	reply, _, err := a.Report(0, ps[0].report(tk, 3000, 1200, true), t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(reply.Keys) != 1 || reply.Keys[0].Share != 1200 || reply.ReportSeq != 1 || reply.Epoch != 5 || reply.LeaseMs != 2000 {
		t.Fatalf("learning reply %+v, want an echo of 1200 for report 1", reply)
	}
	// A peer still on the old epoch does not count towards the early end.
	ps[1].epoch = 4
	if _, _, err := a.Report(1, ps[1].report(tk, 3000, 900, true), t0); err != nil {
		t.Fatal(err)
	}
	for id, g := range a.Allocate(at(time.Millisecond)) {
		if g.Keys[0].Share != []float64{1200, 900}[id] {
			t.Fatalf("learning allocation to %d: %+v", id, g)
		}
	}
	if !a.Learning(at(time.Millisecond)) {
		t.Fatal("learning ended before every peer reported with the new epoch")
	}
	// Once all three report with epoch 5, learning ends and allocation runs.
	ps[1].epoch = 5
	if _, _, err := a.Report(1, ps[1].report(tk, 3000, 900, true), at(2*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	reply, others, err := a.Report(2, ps[2].report(tk, 3000, 800, true), at(3*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if a.Learning(at(3 * time.Millisecond)) {
		t.Fatal("still learning with every peer in")
	}
	// Shrink before grow: 1200 comes down to 1000 at once, but counts as
	// 1200 until acknowledged; 900 and 800 grow towards 1000 only into
	// what is free: Q + budget − 1200 − 900 − 800 = 250 of the 300 they
	// need, shared in proportion (800 gets 2/3 of it).
	if math.Abs(reply.Keys[0].Share-(800+250*2.0/3)) > 1e-6 {
		t.Fatalf("first allocation to the smallest peer: %+v", reply)
	}
	if g, ok := others[0]; !ok || math.Abs(g.Keys[0].Share-1000) > 1e-9 {
		t.Fatalf("first allocation to the largest peer: %+v", others)
	}

	// Without every peer, learning lasts one lease.
	b := newTestAllocator(t, cfg, 6, 3)
	q := newPeers(2, 6)
	for _, p := range q {
		if _, _, err := b.Report(p.id, p.report(tk, 3000, 100, true), t0); err != nil {
			t.Fatal(err)
		}
	}
	if !b.Learning(at(cfg.Lease - time.Millisecond)) {
		t.Fatal("learning ended early with a peer missing")
	}
	if b.Learning(at(cfg.Lease)) {
		t.Fatal("learning lasted more than a lease")
	}
}

func TestAllocatorShrinkBeforeGrow(t *testing.T) {
	a := newTestAllocator(t, DefaultConfig(), 1, 3)
	ps := newPeers(3, 1)
	wants := []float64{2000, 700, 300}
	for i := range 8 {
		round(t, a, ps, at(time.Duration(i)*250*time.Millisecond), wants, true)
	}
	// Now peer 2 wants much more. Its report triggers an allocation whose
	// decreases for 0 and 1 are not acknowledged: its increase comes only
	// out of capacity that is free.
	now := at(2 * time.Second)
	before := shares(ps)
	reply, others, err := a.Report(2, ps[2].report(tk, 3000, 300, true), now)
	if err != nil {
		t.Fatal(err)
	}
	committed := before[0] + before[1] // still in force until acknowledged
	if g := reply.Keys[0].Share; committed+g > aQ*1.05+1e-6 {
		t.Fatalf("peer 2 granted %v while %v is still committed to the others", g, committed)
	}
	if len(others) == 0 {
		t.Fatal("no decrease pushed to the larger peers")
	}
	sum, budget := a.Committed(tk, now)
	if sum > aQ+budget+1e-6 {
		t.Fatalf("committed %v > Q + budget %v", sum, aQ+budget)
	}
}

func TestAllocatorSilentPeer(t *testing.T) {
	for _, strict := range []bool{true, false} {
		cfg := DefaultConfig()
		cfg.Strict = strict
		a := newTestAllocator(t, cfg, 1, 3)
		ps := newPeers(3, 1)
		for i := range 8 {
			round(t, a, ps, at(time.Duration(i)*250*time.Millisecond), []float64{3000, 3000, 3000}, true)
		}
		last := at(7 * 250 * time.Millisecond)
		// Peer 2 falls silent; 0 and 1 keep reporting.
		reserved := func(now time.Time) float64 {
			round(t, a, ps[:2], now, []float64{3000, 3000}, true)
			return aQ - ps[0].has - ps[1].has // saturated peers get no credit
		}
		inWindow := last.Add(cfg.Lease + cfg.SafeFor)
		after := last.Add(cfg.Lease + cfg.SafeFor + cfg.ReportInterval + cfg.ReserveMargin + time.Millisecond)
		for _, tc := range []struct {
			now    time.Time
			lo, hi float64
		}{
			{inWindow, 990, 1001}, // min(its share 1000, Q/N)
			{after, 9, 11},        // the floor (pessimistic share 3 is below it)
		} {
			// Give shares time to settle at each point.
			var r float64
			for k := range 4 {
				r = reserved(tc.now.Add(time.Duration(k) * time.Millisecond))
			}
			if !strict {
				tc.lo, tc.hi = 9, 11 // fast mode reclaims all but the floor at Lease + Ta
			}
			if r < tc.lo || r > tc.hi {
				t.Errorf("strict=%v at %v after the last report: %v left for the silent peer, want [%v, %v]",
					strict, tc.now.Sub(last), r, tc.lo, tc.hi)
			}
		}
	}
}

func TestAllocatorPeerDead(t *testing.T) {
	cfg := DefaultConfig()
	a := newTestAllocator(t, cfg, 1, 3)
	ps := newPeers(3, 1)
	for i := range 8 {
		round(t, a, ps, at(time.Duration(i)*250*time.Millisecond), []float64{3000, 3000, 3000}, true)
	}
	last := at(7 * 250 * time.Millisecond)
	if a.PeerDead(2, last.Add(time.Second)) {
		t.Fatal("a peer that reported a second ago was declared dead")
	}
	if !a.PeerDead(2, last.Add(3*time.Second)) {
		t.Fatal("dead verdict for a silent peer refused")
	}
	// The reservation still lasts until the peer must be pessimistic by its
	// own clock: 1.1 × (0.9 × 2 s + 3 s) = 5.28 s after its last report.
	own := last.Add(5280 * time.Millisecond)
	s1, _ := a.Committed(tk, own.Add(-time.Millisecond))
	s2, _ := a.Committed(tk, own)
	if s1-s2 < 900 {
		t.Fatalf("committed %v before and %v after the own-clock bound: reservation not released", s1, s2)
	}
	// Without the verdict it would last until 5.45 s.
	b := newTestAllocator(t, cfg, 1, 3)
	qs := newPeers(3, 1)
	for i := range 8 {
		round(t, b, qs, at(time.Duration(i)*250*time.Millisecond), []float64{3000, 3000, 3000}, true)
	}
	s3, _ := b.Committed(tk, own)
	if s3-s2 < 900 {
		t.Fatalf("without a verdict the reservation ended early: %v vs %v", s3, s2)
	}
	// A report revives a dead peer.
	if _, _, err := a.Report(2, ps[2].report(tk, 100, 100, false), last.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if a.PeerDead(2, last.Add(10*time.Second)) {
		t.Fatal("a peer that just reported was declared dead")
	}
}

func TestAllocatorStaleReports(t *testing.T) {
	a := newTestAllocator(t, DefaultConfig(), 1, 3)
	p := &peerSim{id: 0, boot: 5, epoch: 1, has: 3}
	r1 := p.report(tk, 100, 100, false)
	r2 := p.report(tk, 100, 100, false)
	if _, _, err := a.Report(0, r2, t0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		r    Report
	}{
		{"reordered", r1},
		{"repeated", r2},
		{"older incarnation", Report{Boot: 4, Seq: 99, Epoch: 1}},
	} {
		if _, _, err := a.Report(0, tc.r, t0); !errors.Is(err, ErrStale) {
			t.Errorf("%s: %v, want ErrStale", tc.name, err)
		}
	}
	for _, r := range []Report{
		{Boot: 6, Seq: 0},
		{Boot: 6, Seq: 1, Keys: []KeyReport{{Topic: "", Dir: Produce}}},
		{Boot: 6, Seq: 1, Keys: []KeyReport{{Topic: "t", Dir: 9}}},
		{Boot: 6, Seq: 1, Keys: []KeyReport{{Topic: "t", Dir: Fetch, Wants: math.Inf(1)}}},
		{Boot: 6, Seq: 1, Keys: []KeyReport{{Topic: "t", Dir: Fetch, Has: -1}}},
	} {
		if _, _, err := a.Report(0, r, t0); !errors.Is(err, ErrInvalid) {
			t.Errorf("report %+v: %v, want ErrInvalid", r, err)
		}
	}
	// A new incarnation starts afresh at seq 1.
	if _, _, err := a.Report(0, Report{Boot: 6, Seq: 1, Epoch: 1}, t0); err != nil {
		t.Fatalf("new incarnation: %v", err)
	}
}

func TestAllocatorQuotaDecrease(t *testing.T) {
	a := newTestAllocator(t, DefaultConfig(), 1, 3)
	ps := newPeers(3, 1)
	for i := range 8 {
		round(t, a, ps, at(time.Duration(i)*250*time.Millisecond), []float64{3000, 3000, 3000}, true)
	}
	pushed := a.SetQuotas(map[Key]int64{tk: aQ / 3}, 3, at(2*time.Second))
	if len(pushed) != 3 {
		t.Fatalf("quota decrease pushed %d grants, want 3", len(pushed))
	}
	for id, g := range pushed {
		if g.Keys[0].Share > aQ/9+1e-6 || g.Keys[0].Quota != aQ/3 {
			t.Errorf("peer %d after the decrease: %+v, want ≤ %v", id, g.Keys[0], aQ/9)
		}
	}
	// Removing the quota stops allocating the key.
	a.SetQuotas(nil, 3, at(3*time.Second))
	if g := a.Allocate(at(4 * time.Second)); len(g) != 0 {
		t.Fatalf("grants for a key without quota: %+v", g)
	}
}

func TestAllocatorPushesOnlyChanges(t *testing.T) {
	a := newTestAllocator(t, DefaultConfig(), 1, 3)
	ps := newPeers(3, 1)
	for i := range 8 {
		round(t, a, ps, at(time.Duration(i)*250*time.Millisecond), []float64{3000, 3000, 3000}, true)
	}
	// Steady: nothing to push, and nothing to do until a report or Ta.
	if g := a.Allocate(at(2*time.Second + time.Millisecond)); len(g) != 0 {
		t.Fatalf("steady state pushed %+v", g)
	}
	if g := a.Allocate(at(2*time.Second + 100*time.Millisecond)); g != nil {
		t.Fatalf("an allocation ran with nothing new: %+v", g)
	}
	// Replies always carry the lease renewal, answering the latest report.
	reply, _, err := a.Report(1, ps[1].report(tk, 3000, 1000, true), at(2*time.Second+200*time.Millisecond))
	if err != nil || len(reply.Keys) != 1 || reply.ReportSeq != ps[1].seq {
		t.Fatalf("reply %+v, %v", reply, err)
	}
}
