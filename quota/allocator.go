package quota

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// Allocator is the leader side: soft state per key and peer, rebuilt by
// every new leader (never in the Raft log). The node creates one when it
// becomes Raft leader, feeds it every peer's Report (including its own
// peer's), calls Allocate every Ta and pushes the results, and drops it when
// it loses leadership. All methods are safe for concurrent use; none starts
// a goroutine or does I/O.
//
// Its invariant (note §3.4): for every key, over all configured peers,
// Σ max(what the peer may be enforcing, floor) ≤ Q + budget, where budget ≤
// Headroom × Q is the headroom credit and "what the peer may be enforcing"
// is an upper bound built from the share it last reported and every grant
// sent to it since that it has not acknowledged, each decayed as the peer
// itself would: the share while its lease may run, then the safe share,
// then (strict mode) the pessimistic one; for a peer never heard from, or
// last heard from under the previous leader, a safe share of Q/N counted
// from this allocator's start. Shares shrink at once and grow only into
// capacity already released, and the bound of a peer never rises except by
// a new grant (or a quota increase). The property test checks the real
// shares of real Limiters against Q + h·Q after every step.
type Allocator struct {
	mu       sync.Mutex
	cfg      Config
	epoch    uint64
	start    time.Time
	learning bool

	quotas    map[Key]float64
	qMax      map[Key]float64 // per key, the largest quota set since the start
	n         int
	peers     map[PeerID]*peerState
	keys      map[Key]*keyAlloc
	lastAlloc time.Time
	allocated bool
	grantSeq  uint64 // last Grants.Seq sent to any peer: unique within the epoch
	dirty     bool   // a report arrived since the last allocation
	sorted    []Key  // the keys, sorted; nil when a key came or went
	lastFull  time.Time
	full      bool     // the next round recomputes every key
	lastLive  []PeerID // the live peers of the last round

	// scratch for allocate, reused across rounds
	w, extra, d, g, o []float64
	pks               []*peerKey
}

type peerState struct {
	boot, seq  uint64    // latest accepted report
	lastReport time.Time // when it arrived (leader clock)
	epoch      uint64    // its Report.Epoch
	n          int       // the peer count it reported applying (0: unknown)
	dead       bool
	deadAt     time.Time
	gen        uint64 // bumped whenever it is not live in a round: older grants are void
	nReported  int    // keys with reported set (in its latest report)
	changed    bool   // a share computed for it differs materially from the last sent
}

type keyAlloc struct {
	dirty      bool // a report changed its inputs materially since it was allocated
	q          float64
	qMax       float64   // the largest quota set since the allocator started
	lastActive time.Time // a peer last reported use or saturation
	lastIssued time.Time // a grant last went out
	aggUse     float64   // moving average of the reported aggregate use
	adj        float64   // integral correction of the credit budget
	lastInt    time.Time
	peers      map[PeerID]*peerKey
}

type peerKey struct {
	reported        bool // in the peer's latest report
	wants, use, has float64
	q               float64 // the quota it reported applying (0: unknown)
	hasSeq          uint64
	sat             bool
	out             []outGrant // sent, not known to be superseded; by seq
	sent            float64    // the share in the last grants sent (sentOK)
	sentOK          bool
	grant           float64 // the share of the last allocation that included it
	grantGen        uint64  // the peer's gen then; 0: none
	seenSeq         uint64  // the report (seq, boot) it was last listed in
	seenBoot        uint64
}

type outGrant struct {
	seq   uint64
	share float64
	base  time.Time // when the report it answers arrived: its lease ends by base + Lease
}

// NewAllocator returns the allocator of a leader of epoch (its Raft term),
// starting at now in learning mode (note §3.5): for one lease it only
// echoes each peer's reported share, because grants of the previous leader
// may still be in force. Learning ends early once every configured peer has
// reported with this epoch (it then refuses older grants), so a cluster's
// first leader, or a handover with every peer up, allocates within a Ta.
func NewAllocator(cfg Config, epoch uint64, now time.Time) (*Allocator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Allocator{cfg: cfg, epoch: epoch, start: now, learning: true, quotas: map[Key]float64{}, qMax: map[Key]float64{}, n: 1,
		peers: map[PeerID]*peerState{}, keys: map[Key]*keyAlloc{}}, nil
}

// Learning reports whether the allocator is still in learning mode at now.
func (a *Allocator) Learning(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checkLearning(now)
	return a.learning
}

// SetQuotas installs the replicated quota configuration (as on the
// Limiter) and re-allocates at once, so a lowered quota takes effect within
// one message delay: push the returned grants (nil while learning).
func (a *Allocator) SetQuotas(quotas map[Key]int64, peers int, now time.Time) map[PeerID]Grants {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := make(map[Key]float64, len(quotas))
	for k, v := range quotas {
		if v > 0 && k.valid() {
			m[k] = float64(v)
		}
	}
	a.quotas, a.n, a.full = m, max(peers, 1), true
	for k, ka := range a.keys {
		if q, ok := m[k]; ok {
			ka.q, ka.qMax = q, math.Max(ka.qMax, q)
		} else {
			delete(a.keys, k)
			a.sorted = nil
		}
	}
	for k, q := range m {
		a.qMax[k] = math.Max(a.qMax[k], q)
	}
	a.checkLearning(now)
	if a.learning {
		return nil
	}
	return a.allocate(now)
}

// PeerDead tells the allocator that membership declared peer dead. In strict
// mode the leader reserves a silent peer's safe share until the peer must
// have gone pessimistic (Lease + SafeFor + Ta + margin after its last
// report, 5.45 s by default). A dead verdict ends that reservation sooner,
// but never before the peer must have gone pessimistic by its own clock
// even if that runs 10 % slow (5.28 s): a partitioned peer wrongly declared
// dead then cannot push the total over Q + budget (see decay). A peer that
// reported within Lease + Ta is not dead whatever membership says, and the
// verdict is ignored (false). A report revives the peer. Peers this
// allocator never heard from may be declared dead too (their reservation
// counts from the allocator's start).
func (a *Allocator) PeerDead(p PeerID, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	ps := a.peers[p]
	if ps == nil {
		ps = &peerState{}
		a.peers[p] = ps
	}
	if ps.dead {
		return true
	}
	if a.live(ps, now) {
		return false
	}
	ps.dead, ps.deadAt = true, now
	a.dirty, a.full = true, true
	return true
}

// Report takes one peer's report, received at now. It returns the reply to
// send back on the same RPC: the peer's current shares, leased from this
// report (empty Keys when there is nothing to grant yet: no need to send
// it). It re-allocates at once when one is due (see below); others then
// holds the new grants of the other live peers whose shares changed, to
// push. Stale reports (reordered, or from an older incarnation) are refused
// with ErrStale, invalid ones with ErrInvalid; log them at debug level.
func (a *Allocator) Report(p PeerID, r Report, now time.Time) (reply Grants, others map[PeerID]Grants, err error) {
	if err := r.Validate(); err != nil {
		return Grants{}, nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ps := a.peers[p]
	switch {
	case ps == nil:
		ps = &peerState{}
		a.peers[p] = ps
	case r.Boot < ps.boot || (r.Boot == ps.boot && r.Seq <= ps.seq):
		return Grants{}, nil, staleReport(p, r, ps)
	case r.Boot > ps.boot:
		// A new incarnation: the old one's grants died with it (the new
		// Limiter refuses grants for another boot).
		*ps = peerState{gen: ps.gen + 1}
		for _, ka := range a.keys {
			delete(ka.peers, p)
		}
		a.full = true
	}
	if ps.dead {
		// Revived. Its old commitments keep the decay the verdict gave
		// them: capacity released because of the verdict may already be
		// someone else's, and the accounting of a peer may only grow by a
		// new grant (a property-test run reached 1.5 Q when reviving let
		// an old grant count as a safe share again).
		for _, ka := range a.keys {
			if pk := ka.peers[p]; pk != nil {
				pk.has = a.decay(pk.has, ps.lastReport, ps, pk, ka.q, now)
				for i := range pk.out {
					pk.out[i].share = a.decay(pk.out[i].share, pk.out[i].base, ps, pk, ka.q, now)
				}
			}
		}
		ps.dead = false
	}
	ps.boot, ps.seq, ps.lastReport, ps.epoch, ps.n = r.Boot, r.Seq, now, r.Epoch, r.Peers
	a.dirty = true
	ownSeqs := r.Epoch == a.epoch // HasSeq counts in this allocator's numbering

	released := false // the report acknowledges a decrease: capacity is free
	wasReported := 0  // keys of this report that were in its previous one
	nowReported := 0
	for _, kr := range r.Keys {
		k := kr.Key()
		q, ok := a.quotas[k]
		if !ok {
			continue
		}
		ka := a.keys[k]
		if ka == nil {
			ka = &keyAlloc{q: q, qMax: math.Max(q, a.qMax[k]), lastActive: now, peers: map[PeerID]*peerKey{}}
			a.keys[k] = ka
			a.sorted = nil
		}
		pk := ka.peer(p)
		if pk.seenSeq == r.Seq && pk.seenBoot == r.Boot {
			continue // listed twice
		}
		pk.seenSeq, pk.seenBoot = r.Seq, r.Boot
		nowReported++
		if pk.reported {
			wasReported++
		}
		before := a.committed(ka, ps, pk, now)
		if !pk.reported || pk.sat != kr.Sat || moved(pk.wants, kr.Wants, a.cfg.AckFraction) ||
			moved(pk.has, kr.Has, a.cfg.AckFraction) || moved(pk.use, kr.Use, a.cfg.AckFraction) {
			ka.dirty = true
		}
		pk.reported = true
		pk.wants, pk.use, pk.has, pk.sat, pk.q = kr.Wants, kr.Use, kr.Has, kr.Sat, kr.Quota
		pk.hasSeq = 0
		if ownSeqs {
			pk.hasSeq = kr.HasSeq
		}
		pk.prune()
		if kr.Use > 0 || kr.Sat {
			ka.lastActive = now
		}
		if a.committed(ka, ps, pk, now) < before*(1-a.cfg.AckFraction) {
			released, ka.dirty = true, true
		}
	}
	for _, ka := range a.keys {
		if wasReported == ps.nReported {
			break // every key of its previous report is in this one
		}
		if pk := ka.peers[p]; pk != nil && pk.reported && (pk.seenSeq != r.Seq || pk.seenBoot != r.Boot) {
			// The peer held no state for k when it reported: its share is
			// the initial one, unless a grant still in flight lands.
			if pk.reported {
				ka.dirty = true
			}
			pk.reported, pk.wants, pk.use, pk.sat = false, 0, 0, false
			pk.has, pk.hasSeq = a.cfg.initial(ka.q, a.n), 0
			pk.prune()
			wasReported++
		}
	}
	ps.nReported = nowReported

	wasLearning := a.learning
	a.checkLearning(now)
	if a.learning {
		return a.echo(p, ps, now), nil, nil
	}
	// Re-allocate with this report's news at once rather than at the next
	// tick (a tick-only leader adds up to a Ta to every step of a share
	// change): at most every UrgentInterval for a regular report, every
	// UrgentInterval/5 for an urgent one (a saturation onset or end), so a
	// storm of urgent reports costs at most 100 allocations/s; and always
	// for a report that acknowledges a decrease, since only that lets the
	// other peers grow (one per decrease, and the allocation it triggers
	// only grows shares, so it cannot cascade).
	since := now.Sub(a.lastAlloc)
	due := !a.allocated || since >= a.cfg.UrgentInterval && a.cfg.ablate&ablateAllocOnReport == 0 ||
		r.Urgent && since >= a.cfg.UrgentInterval/5 || released && a.cfg.ablate&ablateAckDecrease == 0
	if wasLearning || due {
		others = a.allocate(now)
		if g, ok := others[p]; ok {
			delete(others, p)
			return g, others, nil
		}
	}
	return a.restamp(p, ps, now), others, nil
}

// moved reports a change of more than frac (relative) from old to v.
func moved(old, v, frac float64) bool { return math.Abs(v-old) > frac*math.Max(old, v) }

func staleReport(p PeerID, r Report, ps *peerState) error {
	return fmt.Errorf("%w: report boot %d seq %d from peer %d, already have boot %d seq %d", ErrStale, r.Boot, r.Seq, p, ps.boot, ps.seq)
}

// Allocate computes every live peer's shares at now (note §3.4) and returns
// the grants to push: to each peer (the leader's own included) whose shares
// changed by more than AckFraction since the grants it was last sent; the others
// keep theirs, renewed by the reply to their next report. Reports trigger
// allocations themselves, at most every UrgentInterval; call Allocate every
// UrgentInterval (50 ms) to catch the reports that came inside that
// interval, such as a peer acknowledging a decrease right after it. It does
// nothing (nil) unless a report arrived since the last allocation or Ta has
// passed (leases and reservations run out with time). While learning, the
// grants echo each peer's reported shares to every live peer.
func (a *Allocator) Allocate(now time.Time) map[PeerID]Grants {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.dirty && a.allocated && now.Sub(a.lastAlloc) < a.cfg.ReportInterval {
		return nil
	}
	a.checkLearning(now)
	if a.learning {
		a.dirty, a.lastAlloc, a.allocated = false, now, true
		out := map[PeerID]Grants{}
		for _, p := range a.livePeers(now) {
			if g := a.echo(p, a.peers[p], now); len(g.Keys) > 0 {
				out[p] = g
			}
		}
		return out
	}
	return a.allocate(now)
}

func (a *Allocator) checkLearning(now time.Time) {
	if !a.learning {
		return
	}
	if now.Sub(a.start) >= a.cfg.Lease {
		a.learning = false
		return
	}
	acked := 0
	for _, ps := range a.peers {
		if !ps.dead && ps.epoch >= a.epoch {
			acked++
		}
	}
	a.learning = acked < a.n
}

func (a *Allocator) live(ps *peerState, now time.Time) bool {
	return !ps.dead && ps.seq > 0 && now.Sub(ps.lastReport) <= a.cfg.Lease+a.cfg.ReportInterval
}

func (a *Allocator) livePeers(now time.Time) []PeerID {
	var l []PeerID
	for p, ps := range a.peers {
		if a.live(ps, now) {
			l = append(l, p)
		}
	}
	slices.Sort(l)
	return l
}

func (ka *keyAlloc) peer(p PeerID) *peerKey {
	pk := ka.peers[p]
	if pk == nil {
		pk = &peerKey{}
		ka.peers[p] = pk
	}
	return pk
}

// maxOut bounds the grants remembered per peer and key; beyond it the two
// oldest merge into one that is as large and lasts as long as either.
const maxOut = 32

// prune drops grants the peer has superseded: acknowledged, by seq. (Not
// grants merely no larger than the share it reported: a later report can
// lower that share while such a grant, delayed, is still on its way and
// will be applied; the property test caught it at 1.12 Q.)
func (pk *peerKey) prune() {
	pk.out = slices.DeleteFunc(pk.out, func(o outGrant) bool { return o.seq <= pk.hasSeq })
	for len(pk.out) > maxOut {
		a, b := pk.out[0], pk.out[1]
		pk.out[1] = outGrant{seq: b.seq, share: math.Max(a.share, b.share), base: later(a.base, b.base)}
		pk.out = pk.out[1:]
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// decay is the most a peer may enforce at now because of a share it held,
// or was sent, in answer to a report it sent no later than base (leader
// clock) (note §3.5): the share itself until base + Lease, then its safe
// share min(share, Q/N), then, in strict mode and SafeFor (+ Ta + margin
// for clock drift) later, its pessimistic share. A grant does not vanish
// when its lease ends: the peer keeps its safe share. (Counting a peer's
// expired grants as gone while it was still reporting let the shares sum
// to 1.17 Q in the property test.)
//
// A dead verdict ends the safe part early, but not before the peer must
// have gone pessimistic by its own clock running LeaseDrift slow: base +
// (Lease × (1 − drift) + SafeFor) × (1 + drift). Ending it at the verdict,
// as the note does, let the shares exceed Q + budget in the property test
// whenever a partitioned peer was declared dead before its SafeFor ran out
// (memberlist's LAN defaults can declare a peer dead after about 4.5 s;
// its safe share lasts up to 5.05 s on a 5 % slow clock).
//
// The safe and pessimistic shares are the peer's own: from the larger of
// this leader's quota and the one the peer last reported applying, and the
// smaller peer count, so a peer that missed a configuration change (it was
// cut off when the quota went down) is not undercounted.
func (a *Allocator) decay(share float64, base time.Time, ps *peerState, pk *peerKey, q float64, now time.Time) float64 {
	cfg := &a.cfg
	if now.Before(base.Add(cfg.Lease)) {
		return share
	}
	fair := cfg.fairShare(q, a.n)
	if pk != nil && pk.q > q {
		q = pk.q
	}
	if ps != nil && ps.n > 0 && ps.n < a.n {
		fair = math.Max(fair, cfg.fairShare(q, ps.n))
	} else {
		fair = math.Max(fair, cfg.fairShare(q, a.n))
	}
	safe := math.Min(share, fair)
	if !cfg.Strict {
		return safe
	}
	end := base.Add(cfg.Lease + cfg.SafeFor + cfg.ReportInterval + cfg.ReserveMargin)
	if ps != nil && ps.dead {
		own := base.Add(time.Duration(float64(cfg.peerLease(cfg.Lease)+cfg.SafeFor) * (1 + cfg.LeaseDrift)))
		if e := later(ps.deadAt, own); e.Before(end) {
			end = e
		}
	}
	if now.Before(end) {
		return safe
	}
	return math.Min(share, cfg.pessimistic(q))
}

// committed is the most the peer may be enforcing on ka at now: the share
// it last reported or any grant sent since that it has not superseded,
// each decayed as its lease runs out. pk may be nil: the peer has no state
// for the key, so at most the initial share.
func (a *Allocator) committed(ka *keyAlloc, ps *peerState, pk *peerKey, now time.Time) float64 {
	c := a.cfg.initial(ka.q, a.n)
	if ps.epoch < a.epoch && a.cfg.Strict {
		// Its latest report was for the previous leader, whose grants it
		// may have taken after sending it: like a peer never heard from,
		// up to a safe share counted from this allocator's start. (A
		// property-test run reached 1.07 Q with a peer cut off right
		// after such a report.)
		c = math.Max(c, a.decay(a.cfg.fairShare(ka.qMax, a.n), a.start, ps, pk, ka.qMax, now))
	}
	if pk == nil {
		return c
	}
	// The reported share's lease cannot outlast the report by more than a
	// lease; a grant's, the report it answers.
	c = math.Max(c, a.decay(pk.has, ps.lastReport, ps, pk, ka.q, now))
	for _, o := range pk.out {
		if o.seq > pk.hasSeq {
			c = math.Max(c, a.decay(o.share, o.base, ps, pk, ka.q, now))
		}
	}
	return c
}

// issue records grants sent to p (one new Seq) and returns the message.
// Seqs come from one counter per allocator, so they never repeat within an
// epoch even for a peer that was forgotten and came back.
func (a *Allocator) issue(p PeerID, ps *peerState, keys []KeyGrant, pks []*peerKey, now time.Time) Grants {
	a.grantSeq++
	for i, kg := range keys {
		var pk *peerKey
		if pks != nil {
			pk = pks[i]
		} else if ka := a.keys[kg.Key()]; ka != nil {
			pk = ka.peer(p)
			ka.lastIssued = now
		} else {
			continue
		}
		pk.out = append(pk.out, outGrant{a.grantSeq, kg.Share, ps.lastReport})
		pk.sent, pk.sentOK = kg.Share, true
	}
	ps.changed = false
	return Grants{Epoch: a.epoch, Seq: a.grantSeq, Boot: ps.boot, ReportSeq: ps.seq,
		LeaseMs: a.cfg.Lease.Milliseconds(), Keys: keys}
}

// echo grants p, while learning, exactly the shares it last reported.
func (a *Allocator) echo(p PeerID, ps *peerState, now time.Time) Grants {
	var keys []KeyGrant
	for _, k := range a.sortedKeys() {
		ka := a.keys[k]
		if pk := ka.peers[p]; pk != nil && pk.reported {
			keys = append(keys, KeyGrant{Topic: k.Topic, Dir: k.Dir, Share: pk.has, Quota: ka.q})
		}
	}
	if len(keys) == 0 {
		return Grants{}
	}
	g := a.issue(p, ps, keys, nil, now)
	g.Echo = true
	return g
}

// restamp re-sends p's current shares as the answer to its latest report.
func (a *Allocator) restamp(p PeerID, ps *peerState, now time.Time) Grants {
	keys, pks := a.current(p, ps, now)
	if len(keys) == 0 {
		return Grants{}
	}
	return a.issue(p, ps, keys, pks, now)
}

// current is p's shares from the allocations since it was last not live.
func (a *Allocator) current(p PeerID, ps *peerState, now time.Time) ([]KeyGrant, []*peerKey) {
	var keys []KeyGrant
	var pks []*peerKey
	for _, k := range a.sortedKeys() {
		ka := a.keys[k]
		if pk := ka.peers[p]; pk != nil && pk.grantGen == ps.gen+1 {
			keys = append(keys, KeyGrant{Topic: k.Topic, Dir: k.Dir, Share: pk.grant, Quota: ka.q})
			pks = append(pks, pk)
			ka.lastIssued = now
		}
	}
	return keys, pks
}

func (a *Allocator) sortedKeys() []Key {
	if a.sorted == nil {
		a.sorted = make([]Key, 0, len(a.keys))
		for k := range a.keys {
			a.sorted = append(a.sorted, k)
		}
		slices.SortFunc(a.sorted, compareKeys)
	}
	return a.sorted
}

// reserved is what the configured peers that are not live may be
// enforcing on ka at now (note §3.5), each at least the floor it gets back
// when it reappears. Strict mode counts what they may still hold (their
// decayed commitments); fast mode only the floor, so a partitioned peer
// may overshoot by up to Q/N. A peer this allocator never heard from may
// hold a safe share of a grant of the previous leader, issued before this
// allocator started: it counts as silent since then, with a share of up to
// Q/N. (The note's learning mode covers the previous leader's leases, not
// the safe shares that follow them; the property test found the
// overshoot.)
func (a *Allocator) reserved(ka *keyAlloc, notLive []PeerID, now time.Time) float64 {
	floor := a.cfg.floor(ka.q, a.n)
	r := 0.0
	for _, p := range notLive {
		ps := a.peers[p]
		if !a.cfg.Strict || ps.seq == 0 { // fast mode, or declared dead before it ever reported
			r += a.unknownReserve(ka, ps, now)
			continue
		}
		r += math.Max(floor, a.committed(ka, ps, ka.peers[p], now))
	}
	if unknown := a.n - len(a.peers); unknown > 0 {
		r += float64(unknown) * a.unknownReserve(ka, nil, now)
	}
	return r
}

// split returns the live peers (sorted) and the others.
func (a *Allocator) split(now time.Time) (live, notLive []PeerID) {
	for p, ps := range a.peers {
		if a.live(ps, now) {
			live = append(live, p)
		} else {
			notLive = append(notLive, p)
		}
	}
	slices.Sort(live)
	return live, notLive
}

func (a *Allocator) unknownReserve(ka *keyAlloc, ps *peerState, now time.Time) float64 {
	floor := a.cfg.floor(ka.q, a.n)
	if !a.cfg.Strict {
		return floor
	}
	// It may apply any quota set since this allocator started (it may have
	// missed the later ones), and a previous one: that residual is at most
	// PessimisticFraction × the decrease per such peer.
	return math.Max(floor, a.decay(a.cfg.fairShare(ka.qMax, a.n), a.start, ps, nil, ka.qMax, now))
}

// scratch returns a zeroed slice of length n backed by *buf.
func scratch(buf *[]float64, n int) []float64 {
	if cap(*buf) < n {
		*buf = make([]float64, n)
	}
	s := (*buf)[:n]
	clear(s)
	return s
}

// allocate runs one allocation round: over every active key when full is
// due (every Ta, when the live peers or the quotas changed: leases and
// reservations run out with time), else over the keys whose inputs a
// report changed materially since their last round. Keys are independent,
// and skipping a key only delays the effects of time on it, which lower
// what peers may be enforcing: conservative. (Recomputing every key on
// every report cost about 17 ms a round for 1000 keys × 30 peers.)
func (a *Allocator) allocate(now time.Time) map[PeerID]Grants {
	cfg := &a.cfg
	a.lastAlloc, a.allocated, a.dirty = now, true, false
	live, notLive := a.split(now)
	nLive := len(live)
	full := a.full || now.Sub(a.lastFull) >= cfg.ReportInterval || !slices.Equal(live, a.lastLive)
	if full {
		a.full, a.lastFull, a.lastLive = false, now, live
	}
	for _, p := range notLive {
		// Its shares may be given to others now: never re-send them in a
		// reply (restamp) when it comes back.
		a.peers[p].gen++
	}
	if cap(a.pks) < nLive {
		a.pks = make([]*peerKey, nLive)
	}
	pks := a.pks[:nLive]
	var gone []Key
	for _, k := range a.sortedKeys() {
		ka := a.keys[k]
		if now.Sub(ka.lastActive) > cfg.IdleAfter {
			if !now.Before(ka.lastIssued.Add(cfg.Lease)) && !ka.anyReported() {
				gone = append(gone, k)
			}
			continue
		}
		if nLive == 0 || !full && !ka.dirty {
			continue
		}
		ka.dirty = false
		q, floor := ka.q, cfg.floor(ka.q, a.n)

		// Peers that are not live: reserve what they may hold.
		reserved := a.reserved(ka, notLive, now)
		c := q - reserved

		// Demand: charged wants, and the uncharged headroom of unsaturated
		// peers (the credit).
		w, extra := scratch(&a.w, nLive), scratch(&a.extra, nLive)
		use := 0.0
		for i, p := range live {
			pk := ka.peer(p)
			pks[i] = pk
			w[i] = floor
			if !pk.reported {
				continue
			}
			use += pk.use
			w[i] = math.Max(floor, pk.wants)
			if !pk.sat && pk.wants > pk.use {
				extra[i] = math.Max(0, math.Min(pk.wants-pk.use-floor, cfg.Headroom*pk.use))
				w[i] -= extra[i]
			}
		}
		d := waterFillInto(scratch(&a.d, nLive), w, math.Max(0, c))
		left := c
		for _, x := range d {
			left -= x
		}
		if left > 0 { // leftover split equally: idle peers keep room to grow
			for i := range d {
				d[i] += left / float64(nLive)
			}
		}
		budget := ka.credit(cfg, use, now)
		se := 0.0
		for _, x := range extra {
			se += x
		}
		scale := 1.0
		if se > budget {
			scale = budget / se
		}
		for i := range d {
			d[i] += extra[i] * scale
		}

		// Shrink before grow: decreases at once, increases only out of
		// capacity not committed elsewhere.
		committed := reserved
		g, o := scratch(&a.g, nLive), scratch(&a.o, nLive)
		need := 0.0
		for i, p := range live {
			o[i] = math.Max(a.committed(ka, a.peers[p], pks[i], now), floor)
			committed += o[i]
			if d[i] <= o[i] {
				// A decrease, but never below the floor: every live peer
				// already counts at least the floor (o ≥ floor), so this
				// adds nothing, even when the reservations for silent peers
				// leave nothing to share (after a quota decrease they may
				// still hold safe shares of the old quota).
				g[i] = math.Max(d[i], floor)
			} else {
				need += d[i] - o[i]
			}
		}
		avail := math.Max(0, q+budget-committed)
		for i, p := range live {
			if d[i] > o[i] {
				g[i] = d[i]
				if need > avail {
					g[i] = o[i] + avail*(d[i]-o[i])/need
				}
			}
			pk, ps := pks[i], a.peers[p]
			pk.grant, pk.grantGen = g[i], ps.gen+1
			// Push only a material change; smaller ones wait for the reply
			// to the peer's next report, at most a Ta away (pushing every
			// jitter of a share recomputed at every report doubled the
			// message count).
			if !pk.sentOK || math.Abs(g[i]-pk.sent) > cfg.AckFraction*pk.sent {
				ps.changed = true
			}
		}
	}
	for _, k := range gone {
		delete(a.keys, k)
		a.sorted = nil
	}
	out := make(map[PeerID]Grants)
	for _, p := range live {
		ps := a.peers[p]
		if cfg.ablate&ablateAllocOnReport != 0 || ps.changed {
			if keys, pks := a.current(p, ps, now); len(keys) > 0 {
				out[p] = a.issue(p, ps, keys, pks, now)
			}
		}
	}
	a.forget(now)
	return out
}

func (ka *keyAlloc) anyReported() bool {
	for _, pk := range ka.peers {
		if pk.reported {
			return true
		}
	}
	return false
}

// credit updates the key's integral correction with the reported aggregate
// use and returns the headroom credit budget: Headroom × Q, less the
// correction that grows while the moving average of the aggregate use stays
// above Q (note §3.4: without it, slowly growing unsaturated peers creep the
// total to 1.034 Q in the ramp test). The loop runs on elapsed time, in
// units of Ta, so urgent allocations do not speed it up.
func (ka *keyAlloc) credit(cfg *Config, use float64, now time.Time) float64 {
	max := cfg.Headroom * ka.q
	steps := 1.0
	if ka.lastInt.IsZero() {
		ka.aggUse = use
	} else {
		steps = math.Min(4, float64(now.Sub(ka.lastInt))/float64(cfg.ReportInterval))
		beta := 1 - math.Pow(0.7, steps)
		ka.aggUse = beta*use + (1-beta)*ka.aggUse
	}
	ka.lastInt = now
	ka.adj = math.Max(0, math.Min(max, ka.adj+cfg.IntegralGain*(ka.aggUse-ka.q)*steps))
	return max - ka.adj
}

// forget drops peers silent for longer than IdleAfter (and past their
// reservation window): from then on they count as never heard from, which
// by then means a pessimistic share or the floor, and a report brings them
// back.
func (a *Allocator) forget(now time.Time) {
	for p, ps := range a.peers {
		if now.Sub(ps.lastReport) > a.cfg.IdleAfter && now.Sub(ps.lastReport) > a.cfg.Lease+a.cfg.SafeFor+a.cfg.ReportInterval+a.cfg.ReserveMargin {
			delete(a.peers, p)
			for _, ka := range a.keys {
				delete(ka.peers, p)
			}
		}
	}
}

// waterFill is max-min fair sharing (Doorman FAIR_SHARE): every want is met
// if they fit in c; otherwise the smallest wants are met and the rest share
// what is left equally. Deterministic: ties keep input order.
func waterFill(wants []float64, c float64) []float64 {
	return waterFillInto(make([]float64, len(wants)), wants, c)
}

func waterFillInto(out, wants []float64, c float64) []float64 {
	n := len(wants)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(x, y int) int { return cmp.Compare(wants[x], wants[y]) })
	rem := c
	for k, i := range idx {
		g := math.Max(0, math.Min(wants[i], rem/float64(n-k)))
		out[i] = g
		rem -= g
	}
	return out
}

// Committed returns, for tests and metrics, the allocator's accounting of
// key at now: the sum over live peers of max(committed, floor) plus the
// reservations for the others, and the current credit budget (without
// advancing the integral loop).
func (a *Allocator) Committed(k Key, now time.Time) (sum, budget float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ka := a.keys[k]
	if ka == nil {
		ka = &keyAlloc{q: a.quotas[k], peers: map[PeerID]*peerKey{}}
	}
	floor := a.cfg.floor(ka.q, a.n)
	for p, ps := range a.peers {
		if !a.live(ps, now) {
			continue
		}
		sum += math.Max(a.committed(ka, ps, ka.peers[p], now), floor)
	}
	_, notLive := a.split(now)
	return sum + a.reserved(ka, notLive, now), a.cfg.Headroom*ka.q - ka.adj
}
