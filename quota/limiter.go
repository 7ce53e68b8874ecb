package quota

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// Mode is where a key's share on a peer comes from.
type Mode uint8

// The modes of a key on a peer.
const (
	// Unleased: the peer never held a lease for the key; it enforces the
	// initial share min(floor, pessimistic share).
	Unleased Mode = iota
	// Leased: the share of a grant whose lease has not run out.
	Leased
	// Safe: the lease ran out; the share is min(last share, Q/N).
	Safe
	// Pessimistic: strict mode, SafeFor after the lease ran out; the share
	// is at most PessimisticFraction × Q.
	Pessimistic
)

func (m Mode) String() string {
	switch m {
	case Unleased:
		return "unleased"
	case Leased:
		return "leased"
	case Safe:
		return "safe"
	case Pessimistic:
		return "pessimistic"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// sentRing is how many report send times a Limiter remembers. At 4 reports
// a second plus out-of-cycle ones (at most 20/s) it covers more than a
// lease; a grant answering an older report could not have a lease left.
const sentRing = 64

// maxIncreases bounds the share-increase log kept per key for rescaling
// mutes (increases come at most every UrgentInterval, so 5 s hold ≤ 100).
const maxIncreases = 256

// Limiter is the peer side: one debt-capable bucket per quota key, whose rate
// is this peer's leased share. The Kafka data plane calls Charge and FetchCap
// on every request and knows nothing of the allocation; the node calls
// Report every Ta, sends the result to the leader, and hands the answers to
// Apply. All methods are safe for concurrent use. A Limiter starts no
// goroutine and does no I/O: time is whatever the caller passes as now (a
// time.Time with a monotonic reading, or any consistent virtual clock).
type Limiter struct {
	cfg    Config
	boot   uint64
	urgent func()

	// ctl orders Report and Apply. Lock order: ctl, then mu, then a key's mu.
	ctl              sync.Mutex
	seq              uint64
	sent             [sentRing]sentReport
	epoch            uint64 // least grant epoch accepted
	appEpoch, appSeq uint64 // the last grants applied

	mu     sync.RWMutex
	quotas map[Key]float64
	peers  int
	keys   map[Key]*keyState

	umu        sync.Mutex
	lastUrgent time.Time
	urgentDue  bool
}

type sentReport struct {
	seq uint64
	at  time.Time
}

// NewLimiter returns a Limiter with no quotas (call SetQuotas). boot must
// increase across restarts of this peer (its start time in Unix nanoseconds
// will do). urgent, if not nil, is called (without any lock held) when a key
// has just become saturated and an out-of-cycle report is due, at most once
// per UrgentInterval; it must not block. It may call Report directly, or
// wake whoever does.
func NewLimiter(cfg Config, boot uint64, urgent func()) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Limiter{cfg: cfg, boot: boot, urgent: urgent, quotas: map[Key]float64{}, peers: 1, keys: map[Key]*keyState{}}, nil
}

// SetQuotas installs the replicated quota configuration: bytes/s per key
// (keys with 0 have no quota and are dropped) and the number of configured
// peers N (fsm State.Peers), which sets the safe share Q/N and the floor. A
// lowered quota scales the key's current share down by new/old at once,
// without waiting for the leader; a removed quota drops the key.
func (l *Limiter) SetQuotas(quotas map[Key]int64, peers int, now time.Time) {
	m := make(map[Key]float64, len(quotas))
	for k, v := range quotas {
		if v > 0 && k.valid() {
			m[k] = float64(v)
		}
	}
	peers = max(peers, 1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.quotas, l.peers = m, peers
	for k, ks := range l.keys {
		q, ok := m[k]
		if !ok {
			delete(l.keys, k)
			continue
		}
		ks.mu.Lock()
		ks.refresh(&l.cfg, now)
		if q < ks.q {
			ks.setShare(ks.b.rate*q/ks.q, now)
		}
		ks.q, ks.n = q, peers
		ks.mu.Unlock()
	}
}

// keyState is one key on one peer.
type keyState struct {
	mu  sync.Mutex
	key Key
	q   float64 // quota, bytes/s
	n   int     // configured peers

	b          Bucket // its rate is the share
	mode       Mode
	leaseExp   time.Time
	grantEpoch uint64
	grantSeq   uint64

	// demand since the last report
	since      time.Time // start of the current report interval
	admitted   float64
	throttled  int
	horizon    time.Time // when the last muted connection is unmuted (rescaled)
	advHorizon time.Time // when the last throttled client's advertised wait ends
	wants      float64   // demand estimate
	use        float64   // rate admitted over the last closed interval
	calmSince  time.Time // first charge since the key was last saturated (zero: saturated)
	calmBytes  float64   // bytes admitted after calmSince
	calmSent   bool      // an out-of-cycle report already told the leader about this calm
	reported   bool      // the key was in a report: the leader knows of it
	lastSat    bool
	lastCharge time.Time

	// share increases, for rescaling mutes (see Throttle.MuteEnd)
	incSeq uint64
	incs   []increase
}

type increase struct {
	seq uint64
	at  time.Time
	f   float64 // old rate / new rate (< 1)
}

func newKeyState(cfg *Config, k Key, q float64, n int, now time.Time) *keyState {
	return &keyState{key: k, q: q, n: n, b: *NewBucket(cfg.initial(q, n), now), since: now, lastCharge: now}
}

// get returns the key's state, creating it if the key has a quota; nil if it
// has none.
func (l *Limiter) get(k Key, now time.Time) *keyState {
	l.mu.RLock()
	ks := l.keys[k]
	ok := ks != nil
	if !ok {
		_, ok = l.quotas[k]
	}
	l.mu.RUnlock()
	if ks != nil || !ok {
		return ks
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ks = l.keys[k]; ks == nil {
		q, ok := l.quotas[k]
		if !ok {
			return nil
		}
		ks = newKeyState(&l.cfg, k, q, l.peers, now)
		l.keys[k] = ks
	}
	return ks
}

// refresh applies the lease-loss transitions that fell due by now, each at
// the instant it fell due, so tokens earned meanwhile are counted at the
// rate then in force.
func (ks *keyState) refresh(cfg *Config, now time.Time) {
	if ks.mode == Leased && !now.Before(ks.leaseExp) {
		ks.mode = Safe
		ks.setShare(math.Min(ks.b.rate, cfg.fairShare(ks.q, ks.n)), ks.leaseExp)
	}
	if cfg.Strict && ks.mode == Safe {
		if at := ks.leaseExp.Add(cfg.SafeFor); !now.Before(at) {
			ks.mode = Pessimistic
			ks.setShare(math.Min(ks.b.rate, cfg.pessimistic(ks.q)), at)
		}
	}
}

// setShare changes the bucket's rate at at (or at the bucket's last update,
// if later). An increase is logged so that mutes already handed out, and the
// expected return of throttled connections, shrink by old/new; a decrease
// leaves them alone.
func (ks *keyState) setShare(r float64, at time.Time) {
	if at.Before(ks.b.last) {
		at = ks.b.last
	}
	old := ks.b.SetRate(r, at)
	nr := ks.b.rate
	if !(nr > old) {
		return
	}
	f := old / nr
	ks.incSeq++
	cut := 0
	for cut < len(ks.incs) && (ks.incs[cut].at.Before(at.Add(-MaxMute)) || len(ks.incs)-cut >= maxIncreases) {
		cut++
	}
	ks.incs = append(ks.incs[cut:], increase{ks.incSeq, at, f})
	if ks.horizon.After(at) {
		ks.horizon = at.Add(time.Duration(float64(ks.horizon.Sub(at)) * f))
	}
}

// Throttle is the outcome of one Charge. The data plane advertises Millis()
// in the response (max with the broker's throttle_time_ms and over the keys
// of the request, see Max) and stops reading from the connection until
// MuteEnd(). The zero Throttle is no throttle.
type Throttle struct {
	// Delay is the key's deficit divided by its share when the bytes were
	// charged: how long the bucket needs to pay back its debt (0 = none).
	Delay time.Duration
	adv   time.Duration // Delay, capped for an unleased key
	ks    *keyState
	at    time.Time
	inc   uint64
}

// Millis is the throttle_time_ms to advertise: at most MaxAdvertised, and
// at most Ta for a key the peer has never held a lease for.
func (t Throttle) Millis() int32 { return AdvertisedMillis(t.adv) }

// Max returns whichever of t and o mutes longer (for a request that charged
// several keys).
func (t Throttle) Max(o Throttle) Throttle {
	if o.Delay > t.Delay {
		return o
	}
	return t
}

// MuteEnd is when the connection may be read again: the charge time plus
// the mute (at most MaxMute), shortened by old/new for every increase of the
// key's share since the charge, never lengthened. It can move earlier when a
// grant arrives, so a muted connection should look again at least every
// few tens of milliseconds (or when Apply raised a share).
func (t Throttle) MuteEnd() time.Time {
	if t.Delay <= 0 || t.ks == nil {
		return t.at
	}
	end := t.at.Add(MuteFor(t.Delay))
	ks := t.ks
	ks.mu.Lock()
	for _, in := range ks.incs {
		if in.seq <= t.inc || !in.at.Before(end) {
			continue
		}
		if in.at.Before(t.at) { // cannot happen with a monotonic clock
			continue
		}
		end = in.at.Add(time.Duration(float64(end.Sub(in.at)) * in.f))
	}
	ks.mu.Unlock()
	return end
}

// Charge records n bytes against key at now (KIP-219: the request is
// admitted whatever the throttle) and returns the throttle. Produce charges
// the bytes of the key's record batches in the request; fetch charges the
// bytes of the key's partitions in the response. A key without a quota
// returns the zero Throttle and costs one map lookup.
func (l *Limiter) Charge(k Key, n int64, now time.Time) Throttle {
	ks := l.get(k, now)
	if ks == nil {
		return Throttle{}
	}
	ks.mu.Lock()
	ks.refresh(&l.cfg, now)
	d := ks.b.Record(float64(n), now)
	// A key this peer never held a lease for is about to get one (its
	// first report goes out within Ta, or at once when it saturates), so a
	// KIP-219 client is told to wait at most Ta rather than a full
	// MaxAdvertised computed from the tiny initial share; the mute still
	// enforces the rest, and shrinks when the grant lands.
	advCap := MaxAdvertised
	if ks.mode == Unleased {
		advCap = min(advCap, l.cfg.ReportInterval)
	}
	if n > 0 {
		ks.admitted += float64(n)
	}
	ks.lastCharge = now
	fire := false
	switch {
	case d > 0 || now.Before(ks.horizon) || now.Before(ks.advHorizon):
		ks.calmSince, ks.calmBytes, ks.calmSent = time.Time{}, 0, false
	case ks.calmSince.IsZero():
		ks.calmSince = now // this charge opens the calm period; its bytes are not in it
	default:
		ks.calmBytes += float64(max(n, 0))
		// The end of saturation, as urgent as its onset: a key that was
		// reported saturated and has been calm for two urgent intervals
		// at a rate well below its share holds capacity others may need.
		if c := now.Sub(ks.calmSince); ks.lastSat && !ks.calmSent && c >= calmMin(&l.cfg) && l.cfg.ablate&ablateCalmRate == 0 {
			if ks.calmWants(&l.cfg, c) < ks.b.rate*(1-l.cfg.AckFraction) {
				ks.calmSent, fire = true, true
			}
		}
	}
	if d > 0 {
		// Out-of-cycle report at the onset of saturation (note §3.3), not
		// within UrgentInterval of the key's last report, unless the
		// leader has never heard of the key (a new client on this peer).
		fire = ks.throttled == 0 && !ks.lastSat && (!ks.reported || now.Sub(ks.since) >= l.cfg.UrgentInterval)
		ks.throttled++
		// A throttled connection sends nothing until both its mute and the
		// client's own wait for the advertised throttle are over, so until
		// then the key counts as saturated; otherwise its demand would look
		// like zero and its share would collapse. Only the mute part
		// shrinks when the share grows: a KIP-219 client waits the
		// advertised time in full.
		if h := now.Add(MuteFor(d) + l.cfg.ReturnSlack); h.After(ks.horizon) {
			ks.horizon = h
		}
		adv := time.Duration(AdvertisedMillis(min(d, advCap))) * time.Millisecond
		if h := now.Add(adv + l.cfg.ReturnSlack); h.After(ks.advHorizon) {
			ks.advHorizon = h
		}
	}
	t := Throttle{Delay: d, adv: min(d, advCap), ks: ks, at: now, inc: ks.incSeq}
	ks.mu.Unlock()
	if fire {
		l.markUrgent(now, false)
	}
	return t
}

// markUrgent asks for an out-of-cycle report. The callback runs at most
// once per UrgentInterval, except for acknowledgements (ack), which the
// leader's own allocation rate already limits; a request inside the
// interval sets UrgentDue and the Urgent flag of whatever report goes out
// next, so the node polls UrgentDue on its UrgentInterval tick.
func (l *Limiter) markUrgent(now time.Time, ack bool) {
	l.umu.Lock()
	call := !l.urgentDue && (ack || l.lastUrgent.IsZero() || now.Sub(l.lastUrgent) >= l.cfg.UrgentInterval)
	l.urgentDue = true
	if call {
		l.lastUrgent = now
	}
	l.umu.Unlock()
	if call && l.urgent != nil {
		l.urgent()
	}
}

// UrgentDue reports whether an out-of-cycle report is waiting: one the
// urgent callback was not called for (rate limit), or for a node that polls
// instead of passing a callback. Poll it every UrgentInterval.
func (l *Limiter) UrgentDue() bool {
	l.umu.Lock()
	defer l.umu.Unlock()
	return l.urgentDue
}

// FetchCap returns the max_bytes to forward for a fetch of key: the client's
// value, capped at the key's available tokens plus one second of its share
// (Kafka caps at 10 s of quota). max_bytes is soft (KIP-74): a first batch
// larger than it is still returned, then charged and throttled. For a fetch
// touching several quota keys, forward the least cap.
func (l *Limiter) FetchCap(k Key, clientMax int32, now time.Time) int32 {
	if clientMax <= 0 {
		return clientMax
	}
	ks := l.get(k, now)
	if ks == nil {
		return clientMax
	}
	ks.mu.Lock()
	ks.refresh(&l.cfg, now)
	c := math.Max(0, ks.b.Tokens(now)) + ks.b.rate
	ks.mu.Unlock()
	if c >= float64(clientMax) {
		return clientMax
	}
	return max(1, int32(c))
}

// Report returns the demand report to send to the leader now, and starts
// the next measuring interval of every key. epoch is the leader epoch (Raft
// term) the node is reporting to: from now on, grants of older epochs are
// refused. Keys idle for IdleAfter whose lease has run out are dropped here.
func (l *Limiter) Report(epoch uint64, now time.Time) Report {
	l.ctl.Lock()
	defer l.ctl.Unlock()
	l.epoch = max(l.epoch, epoch)
	l.seq++
	l.sent[l.seq%sentRing] = sentReport{l.seq, now}
	l.mu.RLock()
	r := Report{Boot: l.boot, Seq: l.seq, Epoch: l.epoch, Peers: l.peers}
	l.mu.RUnlock()
	l.umu.Lock()
	r.Urgent, l.urgentDue = l.urgentDue, false
	l.umu.Unlock()

	l.mu.RLock()
	keys := make([]*keyState, 0, len(l.keys))
	for _, ks := range l.keys {
		keys = append(keys, ks)
	}
	l.mu.RUnlock()
	slices.SortFunc(keys, func(a, b *keyState) int { return compareKeys(a.key, b.key) })

	var idle []*keyState
	r.Keys = make([]KeyReport, 0, len(keys))
	for _, ks := range keys {
		ks.mu.Lock()
		ks.refresh(&l.cfg, now)
		if ks.mode != Leased && now.Sub(ks.lastCharge) >= l.cfg.IdleAfter {
			idle = append(idle, ks)
		} else {
			r.Keys = append(r.Keys, ks.report(&l.cfg, l.epoch, now))
		}
		ks.mu.Unlock()
	}
	if len(idle) > 0 {
		l.mu.Lock()
		for _, ks := range idle {
			ks.mu.Lock()
			if l.keys[ks.key] == ks && ks.mode != Leased && now.Sub(ks.lastCharge) >= l.cfg.IdleAfter {
				delete(l.keys, ks.key)
			}
			ks.mu.Unlock()
		}
		l.mu.Unlock()
	}
	return r
}

// report estimates the key's demand (note §3.3) and returns the key's part
// of a report. It closes the measuring interval only if at least half a Ta
// has passed since the last close: out-of-cycle reports (saturation onset,
// acknowledging a decrease) may come a millisecond after a regular one, and
// a rate measured over so short an interval is noise (it made a peer's
// wants flip between its use and its burst rate on every report).
func (ks *keyState) report(cfg *Config, epoch uint64, now time.Time) KeyReport {
	el := now.Sub(ks.since)
	share := ks.b.rate
	// Saturated now: in debt, or a throttled connection has not come back.
	// The note also counted "throttled anything since the last report";
	// that kept a peer whose demand had just fallen (a producer done
	// draining its backlog) claiming its old share for one more Ta.
	sat := ks.b.Tokens(now) < 0 || now.Before(ks.horizon) || now.Before(ks.advHorizon)
	if cfg.ablate&ablateSatNow != 0 {
		sat = sat || ks.throttled > 0
	}
	// Calm for less than two urgent intervals: too short to measure a
	// rate. The key counts as still saturated (its wants stay); the
	// out-of-cycle report at the end of saturation measures it.
	calm := now.Sub(ks.calmSince)
	// The calm period means something only after a saturation: a throttle
	// in this interval, or saturated at the last report.
	calmAfterSat := !sat && !ks.calmSince.IsZero() && ks.calmSince.After(ks.since) &&
		(ks.throttled > 0 || ks.lastSat) && cfg.ablate&ablateCalmRate == 0
	justCalm := calmAfterSat && calm < calmMin(cfg)
	if el >= cfg.ReportInterval/2 {
		use := ks.admitted / el.Seconds()
		var w float64
		if sat {
			w = math.Max(cfg.SatGrow*use, cfg.SatProbe*share)
		} else {
			w = (1+cfg.Headroom)*use + cfg.floor(ks.q, ks.n)
			if calmAfterSat && calm >= calmMin(cfg) {
				// The key stopped being saturated during this interval (a
				// producer finished draining its backlog): its demand is
				// the rate since then, not the interval's average, which
				// would keep it holding share it no longer uses for
				// another Ta.
				w = ks.calmWants(cfg, calm)
			}
		}
		switch {
		case justCalm:
			sat = true
		case sat && w < ks.wants && cfg.ablate&ablateStickySat == 0:
			// Still saturated: the demand has not fallen, its connections
			// are muted (their use is hidden). Dropping wants here made a
			// peer recovering from a pessimistic share oscillate for
			// seconds.
		case ks.wants == 0 || w < ks.wants:
			ks.wants = w // fast down
		default:
			ks.wants = cfg.WantsUpWeight*w + (1-cfg.WantsUpWeight)*ks.wants
		}
		ks.use, ks.lastSat = use, sat
		ks.admitted, ks.throttled, ks.since = 0, 0, now
	} else if !sat && ks.lastSat && !ks.calmSince.IsZero() && calm >= calmMin(cfg) && cfg.ablate&ablateCalmRate == 0 {
		// Out of cycle at the end of saturation: the calm rate, measured
		// over at least two urgent intervals, is the demand.
		ks.wants = math.Min(ks.wants, ks.calmWants(cfg, calm))
		ks.lastSat = false
	} else if sat {
		// Out of cycle and saturated (the onset that made it urgent):
		// probe upwards at once, from the rate so far if the interval is
		// long enough to mean anything.
		w := cfg.SatProbe * share
		if el >= cfg.UrgentInterval {
			w = math.Max(w, cfg.SatGrow*ks.admitted/el.Seconds())
		}
		ks.wants = math.Max(ks.wants, w)
		ks.lastSat = true
	}
	ks.reported = true
	kr := KeyReport{Topic: ks.key.Topic, Dir: ks.key.Dir, Wants: ks.wants, Use: ks.use, Has: share, Sat: ks.lastSat, Quota: ks.q}
	if ks.grantEpoch == epoch {
		kr.HasSeq = ks.grantSeq
	}
	return kr
}

// calmWants is an unsaturated key's demand estimate from its rate over the
// calm period of length c.
func (ks *keyState) calmWants(cfg *Config, c time.Duration) float64 {
	return (1+cfg.Headroom)*ks.calmBytes/c.Seconds() + cfg.floor(ks.q, ks.n)
}

// Apply installs the leader's grants. It refuses (with an error wrapping
// ErrWrongBoot, ErrStale, ErrUnknownReport, ErrExpired or ErrInvalid, all
// harmless: log at debug) grants for another incarnation, from an older
// epoch, out of order, answering a report it no longer remembers, or whose
// lease (counted from when that report was sent, shortened by LeaseDrift)
// has already run out. Shares that grow shorten the key's mutes.
func (l *Limiter) Apply(g Grants, now time.Time) error {
	if err := g.Validate(); err != nil {
		return err
	}
	ack, err := l.apply(g, now)
	if ack && l.cfg.ablate&ablateAckDecrease == 0 {
		// Acknowledge a decrease at once: the leader counts the old share
		// as committed until it hears the peer enforces the new one, and
		// only then lets other peers grow (shrink before grow).
		l.markUrgent(now, true)
	}
	return err
}

// apply installs g under ctl; ack reports a share decrease worth telling
// the leader about at once.
func (l *Limiter) apply(g Grants, now time.Time) (ack bool, err error) {
	l.ctl.Lock()
	defer l.ctl.Unlock()
	switch {
	case g.Boot != l.boot:
		return false, fmt.Errorf("%w: boot %d, this peer is %d", ErrWrongBoot, g.Boot, l.boot)
	case g.Epoch < l.epoch:
		return false, fmt.Errorf("%w: grant epoch %d, leader epoch is %d", ErrStale, g.Epoch, l.epoch)
	case g.Epoch == l.appEpoch && g.Seq <= l.appSeq:
		return false, fmt.Errorf("%w: grant seq %d, %d already applied", ErrStale, g.Seq, l.appSeq)
	}
	sr := l.sent[g.ReportSeq%sentRing]
	if sr.seq != g.ReportSeq || sr.at.IsZero() {
		return false, fmt.Errorf("%w: report %d", ErrUnknownReport, g.ReportSeq)
	}
	exp := sr.at.Add(l.cfg.peerLease(time.Duration(g.LeaseMs) * time.Millisecond))
	if !now.Before(exp) {
		return false, fmt.Errorf("%w: report %d sent %v before now, lease %d ms", ErrExpired, g.ReportSeq, now.Sub(sr.at), g.LeaseMs)
	}
	l.appEpoch, l.appSeq = g.Epoch, g.Seq
	l.epoch = max(l.epoch, g.Epoch)
	for _, kg := range g.Keys {
		ks := l.get(kg.Key(), now)
		if ks == nil {
			continue // no quota here (yet): the leader counts the grant anyway
		}
		ks.mu.Lock()
		ks.refresh(&l.cfg, now)
		share := kg.Share
		if kg.Quota > 0 && ks.q < kg.Quota {
			share *= ks.q / kg.Quota
		}
		old := ks.b.rate
		keyExp := exp
		if g.Echo {
			// Learning mode only renews: never above the current share, and
			// never cutting short a lease already held.
			share = math.Min(share, old)
			if ks.mode == Leased && ks.leaseExp.After(keyExp) {
				keyExp = ks.leaseExp
			}
		}
		ks.setShare(share, now)
		if ks.b.rate < old*(1-l.cfg.AckFraction) {
			ack = true
		}
		ks.mode, ks.leaseExp = Leased, keyExp
		ks.grantEpoch, ks.grantSeq = g.Epoch, g.Seq
		ks.mu.Unlock()
	}
	return ack, nil
}

// KeyStatus is a key's state on this peer, for metrics and tests.
type KeyStatus struct {
	Quota     float64       // bytes/s
	Share     float64       // bytes/s, the bucket's rate
	Tokens    float64       // bytes; negative is debt
	Mode      Mode          // where the share comes from
	LeaseLeft time.Duration // 0 unless Leased
	Wants     float64       // last demand estimate reported
	Use       float64       // bytes/s admitted over the last report interval
	Saturated bool          // as of the last report
}

// Status returns the key's state at now; false if this peer holds none.
func (l *Limiter) Status(k Key, now time.Time) (KeyStatus, bool) {
	l.mu.RLock()
	ks := l.keys[k]
	l.mu.RUnlock()
	if ks == nil {
		return KeyStatus{}, false
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.refresh(&l.cfg, now)
	st := KeyStatus{Quota: ks.q, Share: ks.b.rate, Tokens: ks.b.Tokens(now), Mode: ks.mode, Wants: ks.wants, Use: ks.use, Saturated: ks.lastSat}
	if ks.mode == Leased {
		st.LeaseLeft = ks.leaseExp.Sub(now)
	}
	return st, true
}

// calmMin is how long a key must be calm before its rate counts as its
// demand.
func calmMin(cfg *Config) time.Duration { return cfg.UrgentInterval }
