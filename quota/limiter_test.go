package quota

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Q = 3000 B/s over N = 3 peers: Q/N 1000, floor 10, pessimistic 3,
// initial share min(10, 3) = 3.
var (
	tk      = Key{Topic: "orders", Dir: Produce}
	tkFetch = Key{Topic: "orders", Dir: Fetch}
)

const testQ = 3000

func newTestLimiter(t *testing.T, cfg Config, urgent func()) *Limiter {
	t.Helper()
	l, err := NewLimiter(cfg, 7, urgent)
	if err != nil {
		t.Fatal(err)
	}
	l.SetQuotas(map[Key]int64{tk: testQ, tkFetch: testQ}, 3, t0)
	return l
}

// grant builds grants answering report rseq of boot 7.
func grant(epoch, seq, rseq uint64, share float64) Grants {
	return Grants{Epoch: epoch, Seq: seq, Boot: 7, ReportSeq: rseq, LeaseMs: 2000,
		Keys: []KeyGrant{{Topic: tk.Topic, Dir: tk.Dir, Share: share, Quota: testQ}}}
}

func status(t *testing.T, l *Limiter, k Key, now time.Time) KeyStatus {
	t.Helper()
	st, ok := l.Status(k, now)
	if !ok {
		t.Fatalf("no state for %v", k)
	}
	return st
}

func TestLimiterNoQuota(t *testing.T) {
	l := newTestLimiter(t, DefaultConfig(), nil)
	other := Key{Topic: "free", Dir: Produce}
	if th := l.Charge(other, 1<<30, t0); th.Delay != 0 || th.Millis() != 0 || th.MuteEnd().After(t0) {
		t.Fatalf("a key without quota was throttled: %+v", th)
	}
	if got := l.FetchCap(other, 5<<20, t0); got != 5<<20 {
		t.Fatalf("FetchCap without quota = %d", got)
	}
	if _, ok := l.Status(other, t0); ok {
		t.Fatal("state kept for a key without quota")
	}
	var zero Throttle
	if zero.Millis() != 0 || !zero.MuteEnd().IsZero() || zero.Max(Throttle{}).Delay != 0 {
		t.Fatal("the zero Throttle throttles")
	}
}

func TestLimiterInitialShare(t *testing.T) {
	cfg := DefaultConfig()
	l := newTestLimiter(t, cfg, nil)
	th := l.Charge(tk, 1000, t0)
	st := status(t, l, tk, t0)
	if st.Mode != Unleased || st.Share != 3 {
		t.Fatalf("fresh key: %+v, want unleased at share 3", st)
	}
	// 1000 B at 3 B/s with 0.6 B of burst: the throttle is 333 s, the mute
	// is capped at 5 s, and an unleased key advertises at most Ta.
	if th.Delay < 300*time.Second || th.MuteEnd() != t0.Add(MaxMute) {
		t.Fatalf("throttle %v, mute end %v", th.Delay, th.MuteEnd().Sub(t0))
	}
	if th.Millis() != int32(cfg.ReportInterval/time.Millisecond) {
		t.Fatalf("unleased key advertises %d ms, want %d", th.Millis(), cfg.ReportInterval/time.Millisecond)
	}
}

func TestLimiterLeaseFromSendTime(t *testing.T) {
	l := newTestLimiter(t, DefaultConfig(), nil)
	l.Charge(tk, 1, t0)
	r := l.Report(1, t0)
	// The grant arrives 1.5 s after the report was sent: the lease (2 s,
	// less 10 % for drift) still ends 1.8 s after the send.
	if err := l.Apply(grant(1, 1, r.Seq, 500), at(1500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	st := status(t, l, tk, at(1799*time.Millisecond))
	if st.Mode != Leased || st.Share != 500 || st.LeaseLeft != time.Millisecond {
		t.Fatalf("at 1.799 s: %+v, want leased 500 with 1 ms left", st)
	}
	if st := status(t, l, tk, at(1800*time.Millisecond)); st.Mode != Safe {
		t.Fatalf("at 1.8 s: mode %v, want safe", st.Mode)
	}
	// A grant answering that report that arrives after 1.8 s is refused.
	l2 := newTestLimiter(t, DefaultConfig(), nil)
	r = l2.Report(1, t0)
	if err := l2.Apply(grant(1, 1, r.Seq, 500), at(1800*time.Millisecond)); !errors.Is(err, ErrExpired) {
		t.Fatalf("late grant: %v, want ErrExpired", err)
	}
}

func TestLimiterSafeThenPessimistic(t *testing.T) {
	for _, tc := range []struct {
		name           string
		strict         bool
		share          float64
		safe, lastMode float64
		last           Mode
	}{
		{"strict, share above Q/N", true, 1500, 1000, 3, Pessimistic},
		{"strict, share below Q/N", true, 400, 400, 3, Pessimistic},
		{"fast mode stays safe", false, 1500, 1000, 1000, Safe},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Strict = tc.strict
			l := newTestLimiter(t, cfg, nil)
			r := l.Report(1, t0)
			if err := l.Apply(grant(1, 1, r.Seq, tc.share), t0); err != nil {
				t.Fatal(err)
			}
			exp := 1800 * time.Millisecond
			if st := status(t, l, tk, at(exp)); st.Mode != Safe || st.Share != tc.safe {
				t.Fatalf("after the lease: %+v, want safe at %v", st, tc.safe)
			}
			if st := status(t, l, tk, at(exp+cfg.SafeFor-time.Millisecond)); st.Mode != Safe {
				t.Fatalf("just before SafeFor: mode %v", st.Mode)
			}
			if st := status(t, l, tk, at(exp+cfg.SafeFor)); st.Mode != tc.last || st.Share != tc.lastMode {
				t.Fatalf("after SafeFor: %+v, want %v at %v", st, tc.last, tc.lastMode)
			}
			// A fresh grant brings it back.
			r = l.Report(1, at(10*time.Second))
			if err := l.Apply(grant(1, 2, r.Seq, 700), at(10*time.Second)); err != nil {
				t.Fatal(err)
			}
			if st := status(t, l, tk, at(10*time.Second)); st.Mode != Leased || st.Share != 700 {
				t.Fatalf("after a new grant: %+v", st)
			}
		})
	}
}

// The transitions happen at the instant they fall due, however late they
// are noticed: tokens earned meanwhile are counted at the rate then in force.
func TestLimiterLazyTransitionTiming(t *testing.T) {
	l := newTestLimiter(t, DefaultConfig(), nil)
	r := l.Report(1, t0)
	if err := l.Apply(grant(1, 1, r.Seq, 2000), t0); err != nil {
		t.Fatal(err)
	}
	l.Charge(tk, 400+2000*1.8, t0) // burst 400 and 1.8 s of the share: tokens reach 0 at 1.8 s
	// First look at 2.8 s: 1 s at the safe share (1000 B/s) → capped at
	// the safe burst (200).
	if st := status(t, l, tk, at(2800*time.Millisecond)); math.Abs(st.Tokens-200) > 1e-6 || st.Share != 1000 {
		t.Fatalf("tokens %v share %v, want 200 at 1000", st.Tokens, st.Share)
	}
}

func TestLimiterApplyRefuses(t *testing.T) {
	l := newTestLimiter(t, DefaultConfig(), nil)
	r1 := l.Report(3, t0)
	if err := l.Apply(grant(3, 10, r1.Seq, 500), t0); err != nil {
		t.Fatal(err)
	}
	bad := grant(3, 11, r1.Seq, 500)
	bad.Boot = 8
	nan := grant(3, 12, r1.Seq, math.NaN())
	for _, tc := range []struct {
		name string
		g    Grants
		want error
	}{
		{"another incarnation", bad, ErrWrongBoot},
		{"same seq again", grant(3, 10, r1.Seq, 900), ErrStale},
		{"older seq (reordered)", grant(3, 9, r1.Seq, 900), ErrStale},
		{"older epoch", grant(2, 99, r1.Seq, 900), ErrStale},
		{"unknown report", grant(3, 13, 42, 900), ErrUnknownReport},
		{"not finite", nan, ErrInvalid},
		{"no lease", Grants{Epoch: 3, Seq: 14, Boot: 7, ReportSeq: r1.Seq}, ErrInvalid},
	} {
		if err := l.Apply(tc.g, t0); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if st := status(t, l, tk, t0); st.Share != 500 {
		t.Fatalf("a refused grant changed the share to %v", st.Share)
	}
	// Reporting to a newer leader refuses the old leader's grants from then on.
	r2 := l.Report(4, t0)
	if err := l.Apply(grant(3, 20, r2.Seq, 900), t0); !errors.Is(err, ErrStale) {
		t.Fatalf("grant of epoch 3 after reporting to epoch 4: %v", err)
	}
	if err := l.Apply(grant(4, 1, r2.Seq, 900), t0); err != nil {
		t.Fatalf("grant of the new epoch: %v", err)
	}
}

// leased returns a limiter whose key tk is leased at share from t0, with
// a full bucket at start (a key created by a grant starts empty and fills
// at its rate; the clock here starts one burst window later).
func leased(t *testing.T, share float64) (*Limiter, time.Time) {
	t.Helper()
	l := newTestLimiter(t, DefaultConfig(), nil)
	r := l.Report(1, t0)
	if err := l.Apply(grant(1, 1, r.Seq, share), t0); err != nil {
		t.Fatal(err)
	}
	return l, t0.Add(BurstWindow)
}

func TestLimiterMuteRescale(t *testing.T) {
	l, s := leased(t, 1000)
	ms := func(d time.Duration) time.Time { return s.Add(d) }
	th := l.Charge(tk, 200+1000, s) // 1000 B of debt at 1000 B/s: 1 s
	if th.Delay != time.Second || th.Millis() != 1000 || th.MuteEnd() != ms(time.Second) {
		t.Fatalf("throttle %v advertised %d mute end %v", th.Delay, th.Millis(), th.MuteEnd().Sub(s))
	}
	// 200 ms later the share doubles: the remaining 800 ms become 400 ms.
	r := l.Report(1, ms(200*time.Millisecond))
	if err := l.Apply(grant(1, 2, r.Seq, 2000), ms(200*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if got := th.MuteEnd(); got != ms(600*time.Millisecond) {
		t.Fatalf("after the increase the mute ends at %v, want 600ms", got.Sub(s))
	}
	// A decrease never lengthens it.
	if err := l.Apply(grant(1, 3, r.Seq, 100), ms(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if got := th.MuteEnd(); got != ms(600*time.Millisecond) {
		t.Fatalf("after a decrease the mute ends at %v, want 600ms still", got.Sub(s))
	}
	// An increase after the mute ended does not move it.
	if err := l.Apply(grant(1, 4, r.Seq, 5000), ms(700*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if got := th.MuteEnd(); got != ms(600*time.Millisecond) {
		t.Fatalf("a later increase moved the mute to %v", got.Sub(s))
	}
	// A mute charged after an increase is not shortened by it again.
	th2 := l.Charge(tk, 1e4, ms(700*time.Millisecond))
	if got, want := th2.MuteEnd(), ms(700*time.Millisecond).Add(MuteFor(th2.Delay)); got != want {
		t.Fatalf("new mute ends at %v, want %v", got.Sub(s), want.Sub(s))
	}
	if m := th.Max(th2); m.Delay != th2.Delay {
		t.Fatal("Max did not pick the longer throttle")
	}
}

func TestLimiterFetchCap(t *testing.T) {
	l := newTestLimiter(t, DefaultConfig(), nil)
	r := l.Report(1, t0)
	g := grant(1, 1, r.Seq, 1000)
	g.Keys[0].Dir = Fetch
	if err := l.Apply(g, t0.Add(-BurstWindow)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		charge    int64
		clientMax int32
		want      int32
	}{
		{"client's value when small", 0, 500, 500},
		{"tokens (burst 200) + 1 s of share", 0, 1 << 20, 1200},
		{"in debt: 1 s of share only", 1500, 1 << 20, 1000},
		{"non-positive client value passes", 0, 0, 0},
	} {
		l.Charge(tkFetch, tc.charge, t0)
		if got := l.FetchCap(tkFetch, tc.clientMax, t0); got != tc.want {
			t.Errorf("%s: FetchCap = %d, want %d", tc.name, got, tc.want)
		}
	}
	// Deep in debt at a tiny share the cap stays at least 1 byte.
	l.Charge(tk, 1e9, t0)
	if got := l.FetchCap(tk, 1<<20, t0); got < 1 {
		t.Fatalf("FetchCap %d < 1", got)
	}
}

func TestLimiterDemand(t *testing.T) {
	cfg := DefaultConfig()
	l := newTestLimiter(t, cfg, nil)
	r := l.Report(1, t0)
	if err := l.Apply(grant(1, 1, r.Seq, 1000), t0); err != nil {
		t.Fatal(err)
	}
	ta := cfg.ReportInterval
	find := func(r Report) KeyReport {
		for _, k := range r.Keys {
			if k.Key() == tk {
				return k
			}
		}
		t.Fatal("key missing from report")
		return KeyReport{}
	}
	// Unsaturated: 100 B over Ta = 400 B/s → wants (1 + h)·use + floor.
	l.Charge(tk, 100, at(ta/2))
	kr := find(l.Report(1, at(ta)))
	if kr.Sat || math.Abs(kr.Use-400) > 1e-9 || math.Abs(kr.Wants-(1.05*400+10)) > 1e-9 || kr.Has != 1000 || kr.HasSeq != 1 {
		t.Fatalf("unsaturated report %+v", kr)
	}
	// Saturated (in debt, connections muted): max(2 × use, 1.25 × share).
	l.Charge(tk, 200+900, at(ta+ta/2))
	kr = find(l.Report(1, at(2*ta)))
	if !kr.Sat || math.Abs(kr.Wants-math.Max(2*1100*4, 1.25*1000)) > 1e-6 {
		t.Fatalf("saturated report %+v", kr)
	}
	high := kr.Wants
	// Still saturated (the muted connection is not back), no traffic: the
	// wants do not fall while saturated.
	kr = find(l.Report(1, at(3*ta)))
	if !kr.Sat || kr.Wants != high {
		t.Fatalf("saturated without traffic: %+v, want wants %v kept", kr, high)
	}
	// Calm again: fast down to the unsaturated estimate.
	kr = find(l.Report(1, at(20*ta)))
	if kr.Sat || kr.Wants != 10 {
		t.Fatalf("idle report %+v, want unsaturated with wants = floor", kr)
	}
	// An out-of-cycle report right after a regular one does not close the
	// measuring interval: the use stays the last interval's.
	l.Charge(tk, 50, at(20*ta+time.Millisecond))
	kr = find(l.Report(1, at(20*ta+2*time.Millisecond)))
	if kr.Use != 0 || kr.Wants != 10 {
		t.Fatalf("out-of-cycle report %+v, want the last interval's use 0", kr)
	}
}

func TestLimiterUrgent(t *testing.T) {
	var calls atomic.Int32
	cfg := DefaultConfig()
	l := newTestLimiter(t, cfg, func() { calls.Add(1) })
	r := l.Report(1, t0)
	if err := l.Apply(grant(1, 1, r.Seq, 1000), t0); err != nil {
		t.Fatal(err)
	}
	l.Report(1, at(time.Millisecond)) // the grant created the key; the leader knows it now
	// The first throttle within 50 ms of a report: no urgent report.
	l.Charge(tk, 2000, at(10*time.Millisecond))
	if calls.Load() != 0 || l.UrgentDue() {
		t.Fatal("urgent report within UrgentInterval of the last report")
	}
	const calm = 3 * time.Second // debt, mute and advertised wait all over
	l.Report(1, at(calm))
	// Onset of saturation: one callback, then the report carries Urgent.
	l.Charge(tk, 2000, at(calm+60*time.Millisecond))
	l.Charge(tk, 2000, at(calm+70*time.Millisecond))
	if calls.Load() != 1 || !l.UrgentDue() {
		t.Fatalf("onset of saturation: %d callbacks, due %v; want 1, true", calls.Load(), l.UrgentDue())
	}
	r = l.Report(1, at(calm+80*time.Millisecond))
	if !r.Urgent || l.UrgentDue() {
		t.Fatalf("report Urgent %v, still due %v", r.Urgent, l.UrgentDue())
	}
	// A decrease of more than AckFraction is acknowledged at once.
	if err := l.Apply(grant(1, 2, r.Seq, 500), at(calm+81*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 {
		t.Fatalf("decrease: %d callbacks, want 2", calls.Load())
	}
	r = l.Report(1, at(calm+82*time.Millisecond))
	if err := l.Apply(grant(1, 3, r.Seq, 490), at(calm+83*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 {
		t.Fatal("a 2 % decrease was acknowledged out of cycle")
	}
}

// The callback may call Report itself: no lock is held.
func TestLimiterUrgentCallbackMayReport(t *testing.T) {
	var l *Limiter
	var got Report
	l = newTestLimiter(t, DefaultConfig(), func() { got = l.Report(1, at(time.Second)) })
	l.Report(1, t0)
	l.Charge(tk, 1e6, at(time.Second))
	if got.Seq != 2 || !got.Urgent {
		t.Fatalf("report from the callback: %+v", got)
	}
}

func TestLimiterIdleKeys(t *testing.T) {
	cfg := DefaultConfig()
	l := newTestLimiter(t, cfg, nil)
	l.Charge(tk, 1, t0)
	r := l.Report(1, t0)
	if err := l.Apply(grant(1, 1, r.Seq, 1000), t0); err != nil {
		t.Fatal(err)
	}
	// Leased keys are kept however idle; lease renewed at 19 s.
	r = l.Report(1, at(19*time.Second))
	if err := l.Apply(grant(1, 2, r.Seq, 1000), at(19*time.Second)); err != nil {
		t.Fatal(err)
	}
	if r := l.Report(1, at(20*time.Second)); len(r.Keys) != 1 {
		t.Fatalf("leased key dropped: %+v", r)
	}
	// Idle for IdleAfter and no lease: dropped.
	if r := l.Report(1, at(21*time.Second)); len(r.Keys) != 0 {
		t.Fatalf("idle key kept: %+v", r)
	}
	if _, ok := l.Status(tk, at(21*time.Second)); ok {
		t.Fatal("idle key still has state")
	}
}

func TestLimiterSetQuotas(t *testing.T) {
	l := newTestLimiter(t, DefaultConfig(), nil)
	r := l.Report(1, t0)
	if err := l.Apply(grant(1, 1, r.Seq, 1200), t0); err != nil {
		t.Fatal(err)
	}
	l.Charge(tkFetch, 1, t0)
	// Halving the quota halves the share at once; dropping fetch's quota
	// drops its state.
	l.SetQuotas(map[Key]int64{tk: testQ / 2}, 3, t0)
	if st := status(t, l, tk, t0); st.Share != 600 || st.Quota != testQ/2 {
		t.Fatalf("after halving: %+v", st)
	}
	if _, ok := l.Status(tkFetch, t0); ok {
		t.Fatal("key without quota kept")
	}
	// A grant computed against the old quota is scaled down.
	if err := l.Apply(grant(1, 2, r.Seq, 1000), t0); err != nil {
		t.Fatal(err)
	}
	if st := status(t, l, tk, t0); st.Share != 500 {
		t.Fatalf("grant for Q 3000 at local Q 1500: share %v, want 500", st.Share)
	}
	// Raising the quota leaves the share to the leader.
	l.SetQuotas(map[Key]int64{tk: testQ * 2}, 3, t0)
	if st := status(t, l, tk, t0); st.Share != 500 {
		t.Fatalf("raising the quota changed the share to %v", st.Share)
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := newTestLimiter(t, DefaultConfig(), func() {})
	var wg sync.WaitGroup
	var clock atomic.Int64
	now := func() time.Time { return t0.Add(time.Duration(clock.Add(int64(time.Millisecond)))) }
	for i := range 4 {
		wg.Go(func() {
			for range 2000 {
				th := l.Charge(tk, int64(100+i), now())
				_ = th.MuteEnd()
				_ = l.FetchCap(tkFetch, 1<<20, now())
				l.Charge(tkFetch, 50, now())
			}
		})
	}
	wg.Go(func() {
		for i := range 500 {
			r := l.Report(1, now())
			_ = l.Apply(grant(1, uint64(i+1), r.Seq, float64(500+i)), now())
			if i%100 == 0 {
				l.SetQuotas(map[Key]int64{tk: testQ, tkFetch: testQ + int64(i)}, 3, now())
			}
		}
	})
	wg.Wait()
	end := now()
	r := l.Report(1, end)
	if err := l.Apply(grant(1, 1000, r.Seq, 800), end); err != nil {
		t.Fatal(err)
	}
	if st := status(t, l, tk, end); st.Mode != Leased || st.Share != 800 {
		t.Fatalf("after the race: %+v", st)
	}
}
