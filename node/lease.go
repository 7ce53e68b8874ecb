package node

// The write lease (issue 9, "cut-off peer"): a peer forwards client writes
// (Produce, AddPartitionsToTxn) only while it holds a lease the Raft leader
// granted, so a peer cut off from the control plane stops writing within
// Config.WriteLease, and a migration's switch can wait that long for a
// peer that cannot confirm its fence (migrate.go; the argument is in
// node/DESIGN.md).
//
// A grant is one round trip: the peer notes the time s it sends
// lease.grant; the leader confirms it still leads (raft VerifyLeader, one
// round answering every request that arrived before it started) and
// answers its applied index I; the peer's lease runs until s + L once its
// own applied index reaches I. The leader grants itself from its own
// rounds, with s the time the round started. Renewal runs every L/4, and
// quickly after a failure.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-proxy/switchyard/transport"
)

// rpcLeaseGrant asks the leader for a write lease: peer → leader; the
// answer is the leader's applied index and lease duration.
const rpcLeaseGrant = "lease.grant"

// DefaultWriteLease is the write lease's duration when Config.WriteLease
// is zero.
const DefaultWriteLease = 10 * time.Second

type leaseGrantRequest struct{}

type leaseGrantResponse struct {
	// Index is the leader's applied index when its leadership was
	// confirmed; the lease counts once the peer has applied it.
	Index uint64 `json:"index"`
	// LeaseMS is the leader's lease duration: the peer holds the shorter
	// of it and its own, so the leader's migration driver never waits less
	// than a lease it granted can last.
	LeaseMS int64 `json:"lease_ms"`
}

// leaseMargin is what the migration driver adds to a lease before it
// treats a silent peer's lease as expired: the peer's and the leader's
// clocks measure L at rates that may differ (10% of L), plus a second for
// a write admitted just before expiry to reach its broker.
func leaseMargin(l time.Duration) time.Duration { return l/10 + time.Second }

// writeLease is one peer's lease and, while it leads, the grant rounds.
type writeLease struct {
	n *Node
	// l is the lease's duration; 0 disables it (every write allowed).
	l   time.Duration
	log *slog.Logger

	// origin is the monotonic zero of until.
	origin time.Time
	// until is when the lease runs out, in nanoseconds after origin; 0
	// before the first grant. Only run writes it.
	until atomic.Int64
	// warned: the current lapse has been logged.
	warned atomic.Bool
	// legacy: the leader answered that it has no lease.grant (logged once).
	legacy  atomic.Bool
	refused prometheus.Counter

	rounds leaseRounds
}

func newWriteLease(n *Node, l time.Duration, reg prometheus.Registerer) *writeLease {
	wl := &writeLease{
		n:      n,
		l:      l,
		log:    n.log.With("component", "lease"),
		origin: time.Now(),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_write_lease_refused_requests_total",
			Help: "Client write requests (Produce, AddPartitionsToTxn) answered with a retriable error because this peer held no valid write lease.",
		}),
	}
	wl.rounds.verify = func() (uint64, error) {
		if err := n.raft.VerifyLeader().Error(); err != nil {
			return 0, err
		}
		return n.fsm.State().Index, nil
	}
	reg.MustRegister(wl.refused, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchyard_write_lease_valid",
		Help: "1 while this peer holds a valid write lease from the Raft leader (or the lease is disabled), else 0: it refuses Produce.",
	}, func() float64 {
		if wl.valid() {
			return 1
		}
		return 0
	}))
	return wl
}

// now is the lease clock: monotonic nanoseconds after origin.
func (wl *writeLease) now() int64 { return int64(time.Since(wl.origin)) }

func (wl *writeLease) valid() bool { return wl.l <= 0 || wl.now() < wl.until.Load() }

// WriteAllowed implements kafka.WriteGate: an atomic load and a clock read;
// a refusal is counted, and the first of a lapse logged.
func (wl *writeLease) WriteAllowed() bool {
	if wl.valid() {
		return true
	}
	wl.refused.Inc()
	if wl.warned.CompareAndSwap(false, true) {
		wl.log.Warn("no valid write lease: refusing Produce with NOT_LEADER_OR_FOLLOWER until the raft leader grants one (is this peer cut off from the others?)")
	}
	return false
}

// extend records a grant: the lease runs until sent+l, where sent is when
// the request left (or the leader's round started), on the lease clock.
func (wl *writeLease) extend(sent int64, l time.Duration) {
	until := sent + int64(l)
	if until <= wl.until.Load() {
		return
	}
	wl.until.Store(until)
	if wl.now() < until && wl.warned.CompareAndSwap(true, false) {
		wl.log.Info("write lease granted again: Produce allowed")
	}
}

// run renews the lease until ctx ends: every L/4 after a grant, every
// L/40 (at most 250 ms) after a failure.
func (wl *writeLease) run(ctx context.Context) {
	if wl.l <= 0 {
		return
	}
	fast := min(wl.l/40, 250*time.Millisecond)
	lastErr := ""
	for {
		l, err := wl.renew(ctx)
		wait := l / 4 // the granting leader's lease may be shorter
		if err != nil {
			wait = fast
			if msg := err.Error(); msg != lastErr {
				lastErr = msg
				wl.log.Debug("write lease not renewed", "err", err)
			}
		} else {
			lastErr = ""
		}
		if sleep(ctx, wait) != nil {
			return
		}
	}
}

// renew asks for one grant and, once this peer has applied its index,
// extends the lease. It returns the lease duration the grant was for.
func (wl *writeLease) renew(ctx context.Context) (time.Duration, error) {
	n := wl.n
	sent := wl.now()
	l := wl.l
	var index uint64
	if n.raft.State() == raft.Leader {
		r, err := wl.rounds.join(ctx, wl.now)
		if err != nil {
			return l, err
		}
		sent, index = r.started, r.index
	} else {
		addr, id := n.raft.LeaderWithID()
		if addr == "" || id == "" {
			return l, fmt.Errorf("%w: no leader known to grant a write lease", ErrNoLeader)
		}
		cctx, cancel := context.WithTimeout(ctx, wl.l/2)
		defer cancel()
		var resp leaseGrantResponse
		if err := n.rpc.CallPeer(cctx, string(id), string(addr), rpcLeaseGrant, leaseGrantRequest{}, &resp); err != nil {
			var re *transport.RPCError
			if errors.As(err, &re) && re.Code == codeUnknownMethod {
				// A leader from before write leases (a rolling upgrade):
				// its migration driver does not count on leases, so
				// refusing writes here would only cost availability. The
				// guarantee holds once the leader runs this build.
				if wl.legacy.CompareAndSwap(false, true) {
					wl.log.Info("the raft leader predates write leases; writing without one until it is upgraded", "leader", id)
				}
				wl.extend(sent, l)
				return l, nil
			}
			return l, fmt.Errorf("write lease from the leader %s: %w", id, err)
		}
		wl.legacy.Store(false)
		if resp.LeaseMS > 0 {
			l = min(l, time.Duration(resp.LeaseMS)*time.Millisecond)
		}
		index = resp.Index
	}
	// The lease counts only once this peer enforces everything the leader
	// had applied: wait for it, but not past the lease's own end.
	wctx, cancel := context.WithTimeout(ctx, time.Duration(sent+int64(l)-wl.now()))
	defer cancel()
	if err := n.WaitIndex(wctx, index); err != nil {
		return l, err
	}
	wl.extend(sent, l)
	return l, nil
}

// handleGrant serves rpcLeaseGrant on the leader (handleRPC checked that
// this peer leads and the sender is a Raft member): it answers after the
// next verification round that started after the request arrived.
func (wl *writeLease) handleGrant(ctx context.Context) ([]byte, error) {
	r, err := wl.rounds.join(ctx, wl.now)
	if err != nil {
		return nil, toRPCError(fmt.Errorf("%w: %s could not confirm its leadership: %v", ErrNotLeader, wl.n.cfg.Name, err))
	}
	return marshal(leaseGrantResponse{Index: r.index, LeaseMS: wl.l.Milliseconds()})
}

// leaseRounds coalesces leadership verifications: every caller waiting
// when a round starts is answered by that round, so the leader runs one
// VerifyLeader at a time however many peers renew, and each caller's
// answer comes from a round that started after it asked.
type leaseRounds struct {
	verify func() (uint64, error)

	mu      sync.Mutex
	next    *leaseRound // collecting callers; started by the runner
	running bool
	count   atomic.Int64 // rounds run (tests)
}

type leaseRound struct {
	done    chan struct{}
	started int64 // lease clock when the round started
	index   uint64
	err     error
}

// join waits for the next round that starts after the call and returns
// it; now is the clock rounds are stamped with.
func (lr *leaseRounds) join(ctx context.Context, now func() int64) (*leaseRound, error) {
	lr.mu.Lock()
	if lr.next == nil {
		lr.next = &leaseRound{done: make(chan struct{})}
	}
	r := lr.next
	if !lr.running {
		lr.running = true
		go lr.runRounds(now)
	}
	lr.mu.Unlock()
	select {
	case <-r.done:
		return r, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// runRounds runs rounds while callers wait, then stops.
func (lr *leaseRounds) runRounds(now func() int64) {
	for {
		lr.mu.Lock()
		r := lr.next
		lr.next = nil
		if r == nil {
			lr.running = false
			lr.mu.Unlock()
			return
		}
		lr.mu.Unlock()
		// Stamped after the callers joined (under the lock above), before
		// the leadership is confirmed.
		r.started = now()
		lr.count.Add(1)
		r.index, r.err = lr.verify()
		close(r.done)
	}
}
