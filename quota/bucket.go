package quota

import (
	"math"
	"time"
)

// Bucket and throttle constants (notes/throttling.md §3.2, §3.7).
const (
	// BurstWindow is the bucket depth in seconds of its rate: burst = 0.2 s ×
	// rate. It adds at most 0.2 s × Q to any window; 1 s gave 1 s windows up
	// to 1.18–1.28 Q in the note's simulation.
	BurstWindow = 200 * time.Millisecond
	// DebtWindow bounds the debt: tokens never fall below −max(rate × 5 s, n)
	// for a request of n bytes, so older debt is forgiven and no single
	// throttle (hence no mute) exceeds about 5 s.
	DebtWindow = 5 * time.Second
	// MaxAdvertised caps the throttle_time_ms the proxy advertises. A KIP-219
	// client waits the advertised time in full (franz-go has no cap on
	// purpose); if the share grows meanwhile the proxy can shorten its own
	// mute but not the client's wait, so it advertises at most 1 s and lets
	// the mute enforce the rest.
	MaxAdvertised = time.Second
	// MaxMute caps how long the proxy stops reading from a throttled
	// connection; it stays well below the clients' request.timeout.ms (30 s),
	// which matters for clients that ignore throttle_time_ms (librdkafka).
	MaxMute = 5 * time.Second
	// MinRate (bytes/s) is the least rate a bucket runs at: a zero share is
	// clamped to it, so no throttle divides by zero (x/time/rate's Limit(0)
	// gives a 292-year delay).
	MinRate = 1.0
	// maxDelay keeps a throttle far from time.Duration's overflow.
	maxDelay = time.Hour
)

// Bucket is a debt-capable token bucket with the semantics of Kafka's KIP-599
// TokenBucket: any request is admitted, the tokens may go negative, and the
// throttle is the deficit divided by the rate. It refills lazily on every
// call. A Bucket is not safe for concurrent use; Limiter locks around it.
type Bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

// NewBucket returns a full bucket at rate bytes/s (clamped to MinRate).
func NewBucket(rate float64, now time.Time) *Bucket {
	r := clampRate(rate)
	b := r * BurstWindow.Seconds()
	return &Bucket{rate: r, burst: b, tokens: b, last: now}
}

func clampRate(r float64) float64 {
	if !(r >= MinRate) { // also catches NaN
		return MinRate
	}
	return math.Min(r, math.MaxFloat64/4)
}

// advance refills the tokens up to now. Time that runs backwards is ignored.
func (b *Bucket) advance(now time.Time) {
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = math.Min(b.burst, b.tokens+b.rate*dt.Seconds())
		b.last = now
	}
}

// Record admits n bytes and returns the throttle: how long the bucket needs
// to pay back its deficit at the current rate (0 when it is not in debt).
// n ≤ 0 records nothing. The debt is floored at −max(rate × DebtWindow, n).
func (b *Bucket) Record(n float64, now time.Time) time.Duration {
	b.advance(now)
	if n > 0 {
		b.tokens -= n
	} else {
		n = 0
	}
	if floor := -math.Max(b.rate*DebtWindow.Seconds(), n); b.tokens < floor {
		b.tokens = floor
	}
	return b.delay()
}

func (b *Bucket) delay() time.Duration {
	if b.tokens >= 0 {
		return 0
	}
	s := -b.tokens / b.rate
	if s >= maxDelay.Seconds() {
		return maxDelay
	}
	return time.Duration(math.Ceil(s * float64(time.Second)))
}

// SetRate changes the rate (clamped to MinRate) and returns the old one. The
// tokens are advanced at the old rate first, so time already elapsed is paid
// at the rate that was in force, and are then capped at the new burst. Debt
// is kept in bytes: a lower rate repays it more slowly (the debt floor bounds
// how much there can be).
func (b *Bucket) SetRate(rate float64, now time.Time) (old float64) {
	b.advance(now)
	old = b.rate
	b.rate = clampRate(rate)
	b.burst = b.rate * BurstWindow.Seconds()
	if b.tokens > b.burst {
		b.tokens = b.burst
	}
	return old
}

// Tokens returns the tokens at now (negative: debt), after refilling.
func (b *Bucket) Tokens(now time.Time) float64 {
	b.advance(now)
	return b.tokens
}

// Delay returns the throttle a zero-byte request would get at now.
func (b *Bucket) Delay(now time.Time) time.Duration {
	b.advance(now)
	return b.delay()
}

// Rate returns the current rate in bytes/s.
func (b *Bucket) Rate() float64 { return b.rate }

// Burst returns the current bucket depth in bytes.
func (b *Bucket) Burst() float64 { return b.burst }

// AdvertisedMillis converts a throttle to the throttle_time_ms the proxy
// puts in a response: rounded up to whole milliseconds, never negative,
// capped at MaxAdvertised. The data plane takes the max of this and the
// upstream broker's throttle_time_ms.
func AdvertisedMillis(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	d = min(d, MaxAdvertised)
	return int32((d + time.Millisecond - 1) / time.Millisecond)
}

// MuteFor converts a throttle to how long the proxy mutes the connection:
// never negative, capped at MaxMute.
func MuteFor(d time.Duration) time.Duration {
	return max(0, min(d, MaxMute))
}

// RescaleMute returns what is left of a mute after the key's rate changed
// from oldRate to newRate: shortened by old/new when the rate grew, and
// unchanged when it fell. Lengthening mutes on a decrease made a feedback
// loop in the note's simulation: muted clients show no demand, so the share
// shrinks and the mutes grow longer still.
func RescaleMute(remaining time.Duration, oldRate, newRate float64) time.Duration {
	if remaining <= 0 {
		return 0
	}
	if !(newRate > oldRate) || !(oldRate > 0) {
		return remaining
	}
	return time.Duration(float64(remaining) * oldRate / newRate)
}
