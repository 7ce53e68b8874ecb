package fsm

import (
	"fmt"
	"slices"
	"sync"
)

// Shared producer ids (kafka/producer_ids.go, fsm/DESIGN.md "Shared
// producer ids"): command 32 ClaimProducerID (command set 7) and the
// `producer_ids` snapshot section (format version 8).
//
// The data plane gives idempotent producers a virtual producer id and maps
// it, per backend cluster, to a real one the cluster issued. A table that
// every peer holds lets a partition's new presenting peer continue with the
// real id the old one used, so the broker still deduplicates a batch the
// client retries across the switch. The table is not part of State: State
// is copied on every apply (Next), and a table of hundreds of thousands of
// entries copied per apply would cost every command that much. It lives
// beside State in the FSM, changed in place under its own lock, and is as
// deterministic as State: it depends on the log only.

// TypeClaimProducerID is the command type of ClaimProducerID (the numbering
// is commandTable's; it sits here so the shared const block keeps its
// alignment).
const TypeClaimProducerID CommandType = 32

// Bounds of the producer id table.
const (
	// ProducerIDClaimTTL is how long a claim stays: a claim older than this
	// (by the At of the command being applied) is dropped. Brokers forget a
	// producer id's state after producer.id.expiration.ms (a day by
	// default, KIP-854), so an older claim would share nothing.
	ProducerIDClaimTTL int64 = 24 * 60 * 60 * 1000
	// MaxProducerIDClaims bounds the table; past it the oldest claim goes.
	// It is the data plane's default mapping cache size per peer
	// (kafka.Config.ProducerIDMappings): about 40 MiB of table on every
	// peer and in every snapshot when full.
	MaxProducerIDClaims = 1 << 18
	// producerIDExpireScan bounds the expired claims one apply drops, so
	// one apply after a long quiet spell does not stall the log; the rest
	// go with the next applies (and the bound above still holds).
	producerIDExpireScan = 1024
)

// ClaimedProducerID is one entry of the table: on backend Cluster, the
// virtual producer id VirtualID at VirtualEpoch is the real id RealID at
// RealEpoch. At is the proposer's clock (unix ms) when it claimed it.
type ClaimedProducerID struct {
	Cluster      string `json:"cluster"`
	VirtualID    int64  `json:"virtual_id"`
	VirtualEpoch int16  `json:"virtual_epoch"`
	RealID       int64  `json:"real_id"`
	RealEpoch    int16  `json:"real_epoch"`
	At           int64  `json:"at"`
}

// ClaimProducerID records a real producer id for a virtual one unless the
// table holds one already: the first claim of a key wins, and Apply answers
// the claim that holds (Applied.ProducerID), which the proposer then uses.
type ClaimProducerID struct {
	ClaimedProducerID
}

func (*ClaimProducerID) Type() CommandType { return TypeClaimProducerID }
func (*ClaimProducerID) isCommand()        {}
func (c *ClaimProducerID) Validate() error { return validateClaimedProducerID(c.ClaimedProducerID) }
func (c ClaimedProducerID) key() producerKey {
	return producerKey{c.Cluster, c.VirtualID, c.VirtualEpoch}
}

func validateClaimedProducerID(c ClaimedProducerID) error {
	if err := validName("producer id claim cluster", c.Cluster); err != nil {
		return err
	}
	switch {
	case c.VirtualID < 0 || c.VirtualEpoch < 0:
		return fmt.Errorf("%w: producer id claim on %q: virtual producer id %d epoch %d, want both >= 0", ErrInvalid, c.Cluster, c.VirtualID, c.VirtualEpoch)
	case c.RealID < 0 || c.RealEpoch < 0:
		return fmt.Errorf("%w: producer id claim on %q: real producer id %d epoch %d, want both >= 0", ErrInvalid, c.Cluster, c.RealID, c.RealEpoch)
	case c.At <= 0:
		return fmt.Errorf("%w: producer id claim on %q: time %d, want unix milliseconds > 0", ErrInvalid, c.Cluster, c.At)
	}
	return nil
}

type producerKey struct {
	cluster string
	vpid    int64
	vepoch  int16
}

// producerIDs is the FSM's table. A claim's real id never changes once
// made; its At moves forward when a peer still using it claims it again
// (a refresh: the same real id and epoch, a later At), so a producer that
// runs for days keeps its entry. Claims are dropped oldest At first (by
// expiry or the bound): order lists a slot per claim and refresh in log
// order, and a slot is live while its key's claim still has its At (a
// refresh leaves the earlier slot stale, skipped when it reaches the head).
// Only live slots count towards the expiry scan's budget, so a peer whose
// order came from a snapshot (no stale slots) drops what a peer that
// applied the log drops.
type producerIDs struct {
	mu    sync.RWMutex
	m     map[producerKey]ClaimedProducerID
	order []claimSlot
	head  int
	// max is MaxProducerIDClaims; tests lower it.
	max int
}

// claimSlot is one entry of order: key's claim or refresh at at.
type claimSlot struct {
	key producerKey
	at  int64
}

// live reports whether sl is its key's current slot; the caller holds p.mu.
func (p *producerIDs) live(sl claimSlot) bool {
	c, ok := p.m[sl.key]
	return ok && c.At == sl.at
}

func newProducerIDs() *producerIDs {
	return &producerIDs{m: map[producerKey]ClaimedProducerID{}, max: MaxProducerIDClaims}
}

func (p *producerIDs) get(k producerKey) (ClaimedProducerID, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	c, ok := p.m[k]
	return c, ok
}

func (p *producerIDs) len() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.m)
}

// claim applies a claim: it first drops claims that expired by c.At (up to
// producerIDExpireScan of them), then answers the claim that holds c's key:
// an earlier one (refreshed to c.At when c names its real id and epoch and
// is later), or c, added, the oldest dropped past the bound.
func (p *producerIDs) claim(c ClaimedProducerID) ClaimedProducerID {
	p.mu.Lock()
	defer p.mu.Unlock()
	for dropped := 0; dropped < producerIDExpireScan && p.head < len(p.order); {
		sl := p.order[p.head]
		if !p.live(sl) {
			p.popHead()
			continue
		}
		if sl.at >= c.At-ProducerIDClaimTTL {
			break
		}
		delete(p.m, sl.key)
		p.popHead()
		dropped++
	}
	k := c.key()
	if held, ok := p.m[k]; ok {
		if held.RealID == c.RealID && held.RealEpoch == c.RealEpoch && c.At > held.At {
			held.At = c.At
			p.m[k] = held
			p.order = append(p.order, claimSlot{k, c.At})
		}
		return held
	}
	for len(p.m) >= p.max {
		p.dropOldest()
	}
	p.m[k] = c
	p.order = append(p.order, claimSlot{k, c.At})
	return c
}

// dropOldest removes the claim of the oldest live slot; the caller holds
// p.mu and the table is not empty.
func (p *producerIDs) dropOldest() {
	for {
		sl := p.order[p.head]
		live := p.live(sl)
		if live {
			delete(p.m, sl.key)
		}
		p.popHead()
		if live {
			return
		}
	}
}

// popHead removes order's head slot; the caller holds p.mu.
func (p *producerIDs) popHead() {
	p.order[p.head] = claimSlot{}
	p.head++
	if p.head > 1024 && p.head > len(p.order)/2 {
		p.order = slices.Clone(p.order[p.head:])
		p.head = 0
	}
}

// list is the claims oldest (live slot) first, the snapshot section's
// order.
func (p *producerIDs) list() []ClaimedProducerID {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]ClaimedProducerID, 0, len(p.m))
	for _, sl := range p.order[p.head:] {
		if p.live(sl) {
			out = append(out, p.m[sl.key])
		}
	}
	return out
}

// replace swaps in the claims of a restored snapshot, oldest first, which
// validateProducerIDs has checked.
func (p *producerIDs) replace(list []ClaimedProducerID) {
	m := make(map[producerKey]ClaimedProducerID, len(list))
	order := make([]claimSlot, 0, len(list))
	for _, c := range list {
		m[c.key()] = c
		order = append(order, claimSlot{c.key(), c.At})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m, p.order, p.head = m, order, 0
}

// validateProducerIDs checks a snapshot's producer_ids section: valid
// claims, each key once, at most MaxProducerIDClaims.
func validateProducerIDs(list []ClaimedProducerID) error {
	if len(list) > MaxProducerIDClaims {
		return fmt.Errorf("%w: %d producer id claims, at most %d", ErrInvalid, len(list), MaxProducerIDClaims)
	}
	seen := make(map[producerKey]bool, len(list))
	for _, c := range list {
		if err := validateClaimedProducerID(c); err != nil {
			return err
		}
		if seen[c.key()] {
			return fmt.Errorf("%w: producer id claim on %q for virtual id %d epoch %d appears twice", ErrInvalid, c.Cluster, c.VirtualID, c.VirtualEpoch)
		}
		seen[c.key()] = true
	}
	return nil
}

// ProducerID is the claim that holds (cluster, vpid, vepoch), if any. It
// takes a read lock only; the data plane calls it on a producer's first
// batch to a cluster, never per batch.
func (f *FSM) ProducerID(cluster string, vpid int64, vepoch int16) (ClaimedProducerID, bool) {
	return f.pids.get(producerKey{cluster, vpid, vepoch})
}

// ProducerIDs is how many claims the table holds.
func (f *FSM) ProducerIDs() int { return f.pids.len() }
