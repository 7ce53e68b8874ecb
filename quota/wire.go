package quota

import (
	"fmt"
	"math"
)

// PeerID is a peer's stable node id (fsm.Peer.ID, the broker id clients see).
type PeerID int32

// Report is what a peer sends the Raft leader every Ta (and out of cycle at
// the onset of saturation). It is soft state: never put it in the Raft log.
type Report struct {
	// Boot identifies the reporting Limiter's incarnation; it must increase
	// across restarts of the peer (the process start time in Unix
	// nanoseconds will do). A grant echoes it.
	Boot uint64 `json:"boot"`
	// Seq numbers the reports of one incarnation, from 1. A grant names the
	// report it answers, and the peer times the grant's lease from when it
	// sent that report.
	Seq uint64 `json:"seq"`
	// Epoch is the leader epoch (Raft term) this peer now takes grants from;
	// it refuses grants of older epochs.
	Epoch uint64 `json:"epoch"`
	// Urgent marks an out-of-cycle report (a key has just become
	// saturated): the leader may re-allocate at once.
	Urgent bool `json:"urgent,omitempty"`
	// Peers is the configured peer count N this peer applies (Q/N is its
	// safe share): a peer behind on the replicated configuration may use
	// another value than the leader.
	Peers int `json:"n,omitempty"`
	// Keys lists every key the peer holds state for.
	Keys []KeyReport `json:"keys,omitempty"`
}

// KeyReport is one key's demand on one peer. Rates are bytes/s.
type KeyReport struct {
	Topic string    `json:"t"`
	Dir   Direction `json:"d"`
	// Wants is the peer's demand estimate.
	Wants float64 `json:"w"`
	// Use is the rate the peer admitted since its previous report.
	Use float64 `json:"u"`
	// Has is the share the peer enforces as it sends the report.
	Has float64 `json:"h"`
	// HasSeq is the Grants.Seq (of this report's Epoch) the share came from,
	// 0 if none: grants up to it are superseded.
	HasSeq uint64 `json:"hs,omitempty"`
	// Sat: the key is saturated: in debt, or a throttled connection has
	// not come back yet.
	Sat bool `json:"s,omitempty"`
	// Quota is the quota (bytes/s) this peer applies to the key; with
	// Report.Peers it tells the leader how large a safe or pessimistic
	// share the peer may fall back to, even if it missed a quota decrease.
	Quota float64 `json:"q,omitempty"`
}

// Grants is the leader's answer to one peer: its share of every allocated
// key, with a lease.
type Grants struct {
	// Epoch is the allocator's leader epoch (Raft term).
	Epoch uint64 `json:"epoch"`
	// Seq orders the grants one allocator sends one peer (every message a
	// new number); the peer applies only increasing (Epoch, Seq).
	Seq uint64 `json:"seq"`
	// Boot and ReportSeq name the report this answers (the latest the leader
	// had); the lease runs from when the peer sent it.
	Boot      uint64 `json:"boot"`
	ReportSeq uint64 `json:"rseq"`
	// LeaseMs is the lease length in milliseconds.
	LeaseMs int64 `json:"lease_ms"`
	// Echo marks a new leader's learning-mode grants, which only renew the
	// shares the peer reported: the peer keeps min(its share, the echo).
	// A report can be overtaken by a decrease from the previous leader;
	// echoing it as a plain grant undid that decrease (property test:
	// 1.44 Q after a failover).
	Echo bool `json:"echo,omitempty"`
	// Keys are the shares. A key the peer holds but that is not listed keeps
	// its old share until that lease runs out.
	Keys []KeyGrant `json:"keys,omitempty"`
}

// KeyGrant is one key's share for one peer.
type KeyGrant struct {
	Topic string    `json:"t"`
	Dir   Direction `json:"d"`
	// Share is the granted rate in bytes/s.
	Share float64 `json:"s"`
	// Quota is the key's quota the leader allocated against; a peer whose
	// replicated configuration already has a lower quota scales the share
	// down by the ratio, so a grant in flight across a quota decrease cannot
	// exceed the new quota.
	Quota float64 `json:"q"`
}

// Key returns the report's key.
func (r KeyReport) Key() Key { return Key{r.Topic, r.Dir} }

// Key returns the grant's key.
func (g KeyGrant) Key() Key { return Key{g.Topic, g.Dir} }

func finiteNonNeg(v float64) bool { return v >= 0 && !math.IsInf(v, 1) } // false for NaN

// Validate checks the fields a peer controls; the Allocator refuses a report
// that fails it.
func (r *Report) Validate() error {
	if r.Seq == 0 || r.Peers < 0 {
		return fmt.Errorf("%w: report seq %d peers %d", ErrInvalid, r.Seq, r.Peers)
	}
	for i, k := range r.Keys {
		if !k.Key().valid() {
			return fmt.Errorf("%w: report key %d: topic %q direction %d", ErrInvalid, i, k.Topic, k.Dir)
		}
		if !finiteNonNeg(k.Wants) || !finiteNonNeg(k.Use) || !finiteNonNeg(k.Has) || !finiteNonNeg(k.Quota) {
			return fmt.Errorf("%w: report key %s: wants %v use %v has %v", ErrInvalid, k.Key(), k.Wants, k.Use, k.Has)
		}
	}
	return nil
}

// Validate checks the fields the leader controls; the Limiter refuses grants
// that fail it.
func (g *Grants) Validate() error {
	if g.Seq == 0 || g.ReportSeq == 0 {
		return fmt.Errorf("%w: grant seq %d report seq %d", ErrInvalid, g.Seq, g.ReportSeq)
	}
	if g.LeaseMs <= 0 || g.LeaseMs > 3_600_000 {
		return fmt.Errorf("%w: lease %d ms", ErrInvalid, g.LeaseMs)
	}
	for i, k := range g.Keys {
		if !k.Key().valid() {
			return fmt.Errorf("%w: grant key %d: topic %q direction %d", ErrInvalid, i, k.Topic, k.Dir)
		}
		if !finiteNonNeg(k.Share) || !finiteNonNeg(k.Quota) {
			return fmt.Errorf("%w: grant key %s: share %v quota %v", ErrInvalid, k.Key(), k.Share, k.Quota)
		}
	}
	return nil
}
