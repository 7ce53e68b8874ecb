package quota

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Unix(1_000_000, 0)

const miB = 1024.0 * 1024.0

func at(d time.Duration) time.Time { return t0.Add(d) }

func TestBucketRecordThrottle(t *testing.T) {
	// rate 1000 B/s: burst 200 B; throttle = deficit / rate.
	steps := []struct {
		at    time.Duration
		n     float64
		want  time.Duration
		token float64
	}{
		{0, 200, 0, 0},                                         // the burst is spent
		{0, 100, 100 * time.Millisecond, -100},                 // 100 B of debt: 100 ms
		{50 * time.Millisecond, 0, 50 * time.Millisecond, -50}, // lazy refill
		{time.Second, 0, 0, 200},                               // refills up to the burst only
		{time.Second, 1000, 800 * time.Millisecond, -800},      // any n is admitted
	}
	b := NewBucket(1000, t0)
	for i, s := range steps {
		got := b.Record(s.n, at(s.at))
		if got != s.want || math.Abs(b.Tokens(at(s.at))-s.token) > 1e-9 {
			t.Errorf("step %d: Record(%v) at %v = %v, tokens %v; want %v, tokens %v", i, s.n, s.at, got, b.Tokens(at(s.at)), s.want, s.token)
		}
	}
}

// Under steady overload a client that waits out each throttle gets exactly
// the rate in the long run, as with Kafka's X = (O − T)/T·W: the bucket
// admits rate × T plus its burst plus one request.
func TestBucketLongRunRate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rate, req float64
	}{
		{"small requests", 10 * miB, 16 * 1024},
		{"1 MiB requests", 10 * miB, miB},
		{"requests above burst and debt window", 100 * 1024, miB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBucket(tc.rate, t0)
			now, admitted := t0, 0.0
			end := t0.Add(100 * time.Second)
			for now.Before(end) {
				d := b.Record(tc.req, now)
				admitted += tc.req
				now = now.Add(max(d, time.Millisecond)) // the client waits the throttle
			}
			// Admitted ≤ rate·T + burst + one request (the request that
			// goes into debt at the end), ≥ rate·T − one request.
			lo, hi := tc.rate*100-tc.req, tc.rate*100+tc.rate*BurstWindow.Seconds()+tc.req
			if admitted < lo || admitted > hi {
				t.Errorf("admitted %.0f B in 100 s, want within [%.0f, %.0f]", admitted, lo, hi)
			}
			if tc.req <= tc.rate && math.Abs(admitted/100-tc.rate)/tc.rate > 0.01 {
				t.Errorf("long-run admitted rate %.0f B/s, want %.0f ± 1 %%", admitted/100, tc.rate)
			}
		})
	}
}

func TestBucketDebtFloor(t *testing.T) {
	b := NewBucket(1000, t0)
	b.Record(200, t0)
	// One huge request: the floor is −max(rate × 5 s, n) = −n.
	if d := b.Record(1e6, t0); d != 1000*time.Second {
		t.Fatalf("throttle after 1 MB at 1 kB/s = %v, want 1000s (floor −n)", d)
	}
	// The next small request forgives the older debt: floor −rate × 5 s.
	if d := b.Record(1, t0); d != DebtWindow {
		t.Fatalf("throttle after the next request = %v, want %v", d, DebtWindow)
	}
	if tok := b.Tokens(t0); tok != -5000 {
		t.Fatalf("tokens %v, want −5000", tok)
	}
}

func TestBucketSetRate(t *testing.T) {
	b := NewBucket(1000, t0)
	b.Record(1200, t0) // tokens −1000
	// Rate goes to 2000 after 250 ms: the 250 ms are paid at the old rate.
	if old := b.SetRate(2000, at(250*time.Millisecond)); old != 1000 {
		t.Fatalf("SetRate returned %v, want 1000", old)
	}
	if tok := b.Tokens(at(250 * time.Millisecond)); tok != -750 {
		t.Fatalf("tokens after SetRate %v, want −750", tok)
	}
	if d := b.Delay(at(250 * time.Millisecond)); d != 375*time.Millisecond {
		t.Fatalf("delay %v, want 375ms", d)
	}
	// A decrease caps stored tokens at the new burst but keeps debt bytes.
	b = NewBucket(1000, t0) // 200 tokens
	b.SetRate(100, t0)
	if tok, burst := b.Tokens(t0), b.Burst(); tok != 20 || burst != 20 {
		t.Fatalf("after decrease tokens %v burst %v, want 20, 20", tok, burst)
	}
	// Time running backwards changes nothing.
	b.Record(0, at(-time.Second))
	if tok := b.Tokens(t0); tok != 20 {
		t.Fatalf("tokens %v after a backwards clock, want 20", tok)
	}
}

func TestBucketNoZeroRate(t *testing.T) {
	for _, r := range []float64{0, -5, math.NaN(), math.Inf(-1)} {
		b := NewBucket(r, t0)
		if b.Rate() != MinRate {
			t.Errorf("NewBucket(%v).Rate() = %v, want MinRate", r, b.Rate())
		}
		d := b.Record(1e12, t0)
		if d <= 0 || d > maxDelay {
			t.Errorf("rate %v: throttle %v, want in (0, %v]", r, d, maxDelay)
		}
		if ms := AdvertisedMillis(d); ms != 1000 {
			t.Errorf("rate %v: advertised %d ms, want 1000", r, ms)
		}
	}
	b := NewBucket(1000, t0)
	b.SetRate(0, t0)
	if b.Rate() != MinRate {
		t.Errorf("SetRate(0) gives rate %v, want MinRate", b.Rate())
	}
}

func TestAdvertisedMillisAndMute(t *testing.T) {
	for _, tc := range []struct {
		d        time.Duration
		adv      int32
		mute     time.Duration
		rescaled time.Duration // remaining d after the share doubles
	}{
		{-time.Second, 0, 0, 0},
		{0, 0, 0, 0},
		{time.Nanosecond, 1, time.Nanosecond, 0},
		{999*time.Millisecond + 1, 1000, 999*time.Millisecond + 1, 499500000},
		{1500 * time.Millisecond, 1000, 1500 * time.Millisecond, 750 * time.Millisecond},
		{7 * time.Second, 1000, MaxMute, 3500 * time.Millisecond},
		{maxDelay, 1000, MaxMute, maxDelay / 2},
	} {
		if got := AdvertisedMillis(tc.d); got != tc.adv {
			t.Errorf("AdvertisedMillis(%v) = %d, want %d", tc.d, got, tc.adv)
		}
		if got := MuteFor(tc.d); got != tc.mute {
			t.Errorf("MuteFor(%v) = %v, want %v", tc.d, got, tc.mute)
		}
		if got := RescaleMute(tc.d, 100, 200); got != tc.rescaled {
			t.Errorf("RescaleMute(%v, 100→200) = %v, want %v", tc.d, got, tc.rescaled)
		}
		if tc.d > 0 {
			if got := RescaleMute(tc.d, 200, 100); got != tc.d {
				t.Errorf("RescaleMute(%v, 200→100) = %v: a decrease must never lengthen a mute", tc.d, got)
			}
		}
	}
	if got := RescaleMute(time.Second, 0, 100); got != time.Second {
		t.Errorf("RescaleMute from rate 0 = %v, want unchanged", got)
	}
}
