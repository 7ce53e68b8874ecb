package quota

import (
	"fmt"
	"math"
	"time"
)

// Config holds the parameters that the peer side (Limiter) and the leader
// side (Allocator) must agree on. Every peer should run with the same
// values; DefaultConfig is the recommended starting point of the design note
// (notes/throttling.md §3.7) and what the simulation tests assert.
type Config struct {
	// ReportInterval (Ta) is how often each peer reports demand and the
	// leader allocates. Shorter converges faster after a demand shift and
	// costs proportionally more messages.
	ReportInterval time.Duration
	// Lease is how long a grant is good for, counted on the peer from the
	// moment it sent the report the grant answers. Keep it at least 8 × Ta so
	// several lost messages do not cost a lease.
	Lease time.Duration
	// LeaseDrift shortens every lease on the peer by this fraction, so the
	// peer expires a lease before the leader assumes it has even when their
	// clocks run at slightly different rates (Chubby/Doorman rule).
	LeaseDrift float64
	// SafeFor is how long a peer that lost its lease keeps its safe share
	// min(last share, Q/N) before going pessimistic (strict mode only).
	SafeFor time.Duration
	// Strict selects strict mode (the default): a lease-less peer goes
	// pessimistic after SafeFor, and the leader keeps a silent peer's safe
	// share reserved until then. Fast mode (false) reclaims a silent peer's
	// share after Lease + Ta, which redistributes a crashed peer's share
	// sooner but lets a partitioned peer overshoot by up to Q/N.
	Strict bool
	// Headroom (h) is the growth room an unsaturated peer asks for on top of
	// its use, and the size of the headroom credit the leader may hand out
	// beyond Q (h × Q at most, less the integral correction).
	Headroom float64
	// FloorFraction × Q/N is the least share the leader grants a live peer
	// and reserves for every other configured peer, so a new client on an
	// idle peer is admitted at once (at a low rate) without a round trip.
	FloorFraction float64
	// PessimisticFraction × Q is the share of a peer that lost its lease and
	// has used up SafeFor (strict mode).
	PessimisticFraction float64
	// UrgentInterval is the least time between two out-of-cycle reports of a
	// peer, and between two urgent allocations of the leader.
	UrgentInterval time.Duration
	// IdleAfter is how long a key may see no traffic before its state is
	// dropped (on the peer, once its lease has also run out; at the leader,
	// once no peer reports traffic and no grant of it is outstanding).
	IdleAfter time.Duration
	// WantsUpWeight is the weight of a new, higher demand estimate in the
	// moving average (a lower estimate is always taken at once). 1 takes
	// increases at once too, as the note's recommended configuration does.
	WantsUpWeight float64
	// SatGrow and SatProbe shape a saturated peer's wants:
	// max(SatGrow × use, SatProbe × share).
	SatGrow, SatProbe float64
	// IntegralGain is the gain of the leader's outer loop that shrinks the
	// headroom credit while the reported aggregate use stays above Q.
	IntegralGain float64
	// ReserveMargin is added to Lease + SafeFor + Ta to get how long the
	// leader (strict mode) keeps a silent peer's safe share reserved.
	ReserveMargin time.Duration
	// ReturnSlack is how long after its mute ends a throttled connection
	// still counts as "not come back yet" (which keeps its key saturated).
	ReturnSlack time.Duration
	// AckFraction: a grant that lowers a key's share by more than this
	// fraction makes the peer report again at once (an out-of-cycle
	// report), so the leader learns the capacity is released and can grow
	// other peers without waiting a Ta.
	AckFraction float64

	// ablate turns improvements over the design note off, for the
	// simulation's ablation figures only (see DESIGN.md).
	ablate ablation
}

type ablation uint8

const (
	ablateAllocOnReport ablation = 1 << iota // allocate only on the Ta tick, push every grant
	ablateAckDecrease                        // no out-of-cycle report after a decrease
	ablateStickySat                          // saturated wants may fall (note: always "fast down")
	ablateSatNow                             // "saturated" includes any throttle since the last report (note)
	ablateCalmRate                           // an unsaturated key's demand is always the interval's average
)

// DefaultConfig returns the recommended parameters (notes/throttling.md
// §3.7): Ta 250 ms, lease 2 s, 10 % drift margin, SafeFor 3 s, strict mode,
// 5 % headroom credit, floor 1 % of Q/N, pessimistic 0.1 % of Q.
func DefaultConfig() Config {
	return Config{
		ReportInterval:      250 * time.Millisecond,
		Lease:               2 * time.Second,
		LeaseDrift:          0.1,
		SafeFor:             3 * time.Second,
		Strict:              true,
		Headroom:            0.05,
		FloorFraction:       0.01,
		PessimisticFraction: 0.001,
		UrgentInterval:      50 * time.Millisecond,
		IdleAfter:           20 * time.Second,
		WantsUpWeight:       1,
		SatGrow:             2,
		SatProbe:            1.25,
		IntegralGain:        0.5,
		ReserveMargin:       200 * time.Millisecond,
		ReturnSlack:         50 * time.Millisecond,
		AckFraction:         0.05,
	}
}

// Validate reports the first parameter that is out of range.
func (c Config) Validate() error {
	frac := func(name string, v, lo, hi float64) error {
		if math.IsNaN(v) || v < lo || v > hi {
			return fmt.Errorf("%w: %s %v is outside [%v, %v]", ErrInvalid, name, v, lo, hi)
		}
		return nil
	}
	switch {
	case c.ReportInterval <= 0:
		return fmt.Errorf("%w: report interval %v must be positive", ErrInvalid, c.ReportInterval)
	case c.Lease < 2*c.ReportInterval:
		return fmt.Errorf("%w: lease %v must be at least two report intervals (%v); 8 is recommended", ErrInvalid, c.Lease, 2*c.ReportInterval)
	case c.SafeFor < 0 || c.UrgentInterval < 0 || c.ReserveMargin < 0 || c.ReturnSlack < 0:
		return fmt.Errorf("%w: safe-for, urgent interval, reserve margin and return slack must not be negative", ErrInvalid)
	case c.IdleAfter < c.Lease:
		return fmt.Errorf("%w: idle-after %v must be at least the lease %v", ErrInvalid, c.IdleAfter, c.Lease)
	}
	for _, f := range []struct {
		name      string
		v, lo, hi float64
	}{
		{"lease drift", c.LeaseDrift, 0, 0.5},
		{"headroom", c.Headroom, 0, 1},
		{"floor fraction", c.FloorFraction, 0, 0.5},
		{"pessimistic fraction", c.PessimisticFraction, 0, 0.5},
		{"wants up weight", c.WantsUpWeight, 0.01, 1},
		{"saturated growth", c.SatGrow, 1, 100},
		{"saturated probe", c.SatProbe, 1, 100},
		{"integral gain", c.IntegralGain, 0, 10},
		{"ack fraction", c.AckFraction, 0, 1},
	} {
		if err := frac(f.name, f.v, f.lo, f.hi); err != nil {
			return err
		}
	}
	return nil
}

// Derived per-key shares. q is the key's quota in bytes/s, n the configured
// peer count (at least 1).

func (c Config) floor(q float64, n int) float64 { return c.FloorFraction * q / float64(max(n, 1)) }

func (c Config) pessimistic(q float64) float64 { return c.PessimisticFraction * q }

// initial is the share of a key a peer has never held a lease for: no more
// than what the leader reserves for a peer it has not heard from (the floor),
// nor than a pessimistic share.
func (c Config) initial(q float64, n int) float64 {
	return math.Min(c.floor(q, n), c.pessimistic(q))
}

func (c Config) fairShare(q float64, n int) float64 { return q / float64(max(n, 1)) }

// peerLease is the lease as the peer counts it: shortened for clock drift.
func (c Config) peerLease(lease time.Duration) time.Duration {
	return time.Duration(float64(lease) * (1 - c.LeaseDrift))
}
