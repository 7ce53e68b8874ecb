package node

// Cluster-wide topic quotas: this peer's side of the lease protocol.
//
// The quota rules are replicated (fsm.Quota); the shares are soft state and
// never enter the Raft log. Every peer holds a quota.Limiter, which the data
// plane charges per request. Every ReportInterval (and at once when a key
// saturates) the peer sends its demand to the Raft leader over the peer RPC
// stream; the leader's quota.Allocator divides each quota among the peers
// (max-min fair, shrinking shares before growing others, leased) and
// answers, and pushes changed grants to the others. A peer that loses its
// lease falls back to a safe share, then towards zero (strict mode); the
// leader gives a dead peer's share back once gossip declares it dead.
//
// Prefix quota rules apply to every matching topic on its own: the keys are
// expanded against the topics the backends know, refreshed as they appear.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
	"github.com/switchyard-proxy/switchyard/quota"
	"github.com/switchyard-proxy/switchyard/transport"
)

// Peer RPC methods of the quota protocol.
const (
	rpcQuotaReport = "quota.report" // peer → leader: demand; answer: grants
	rpcQuotaGrants = "quota.grants" // leader → peer: pushed grants
	rpcQuotaStatus = "quota.status" // any → any: this peer's shares, for the admin API
)

// quotas is a peer's quota machinery.
type quotas struct {
	n      *Node
	cfg    quota.Config
	lim    *quota.Limiter
	urgent chan struct{}

	mu    sync.Mutex
	keys  map[quota.Key]int64
	peers int
	alloc *quota.Allocator // while leader
	term  uint64
	dead  map[int32]bool
}

type quotaReportRequest struct {
	Peer   int32        `json:"peer"`
	Report quota.Report `json:"report"`
}

type quotaStatusRequest struct {
	Topic string `json:"topic"`
}

// QuotaShare is one peer's state for one key, as the admin API shows it.
type QuotaShare = adminapi.QuotaShare

func newQuotas(n *Node) (*quotas, error) {
	q := &quotas{n: n, cfg: quota.DefaultConfig(), urgent: make(chan struct{}, 1), dead: map[int32]bool{}}
	lim, err := quota.NewLimiter(q.cfg, uint64(time.Now().UnixNano()), func() {
		select {
		case q.urgent <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, fmt.Errorf("node: quotas: %w", err)
	}
	q.lim = lim
	return q, nil
}

// run drives the protocol until ctx ends: every UrgentInterval it refreshes
// the keys (every second: prefix rules meet new topics), runs the leader's
// side, and reports when a report is due or urgent.
//
// While no quota key exists (no rule, or only prefix rules that match no
// topic) nothing can saturate and the leader has nothing to allocate, so it
// ticks every ReportInterval instead and reports on each tick: the leader
// still hears from every peer as often as with keys, so a quota added later
// is divided among the peers it knows to be live. A new key (a state change
// or the keys' refresh) brings the short tick back at once. On a cluster
// without quotas this is a fifth of the wake-ups, in every peer.
func (q *quotas) run(ctx context.Context) {
	period := q.cfg.UrgentInterval
	tick := time.NewTicker(period)
	defer tick.Stop()
	var lastReport, lastKeys time.Time
	var inflight sync.WaitGroup
	defer inflight.Wait()
	busy := false
	var busyMu sync.Mutex
	for {
		changed := q.n.stateChanged.wait()
		urgent, ticked := false, false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			ticked = true
		case <-q.urgent:
			urgent = true
		case <-changed:
			lastKeys = time.Time{}
		}
		now := time.Now()
		if now.Sub(lastKeys) >= time.Second {
			q.syncKeys(now)
			lastKeys = now
		}
		idle := q.idle()
		if want := q.tickPeriod(idle); want != period {
			period = want
			tick.Reset(period)
		}
		q.lead(now)
		due := now.Sub(lastReport) >= q.cfg.ReportInterval || idle && ticked
		if !urgent && !q.lim.UrgentDue() && !due {
			continue
		}
		busyMu.Lock()
		if busy { // the previous report is still out
			busyMu.Unlock()
			continue
		}
		busy = true
		busyMu.Unlock()
		lastReport = now
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			q.report(ctx)
			busyMu.Lock()
			busy = false
			busyMu.Unlock()
		}()
	}
}

// idle reports whether this peer holds no quota key.
func (q *quotas) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.keys) == 0
}

// tickPeriod is run's tick: UrgentInterval while a key exists, so a
// saturation is reported and allocated within it; ReportInterval while none
// does.
func (q *quotas) tickPeriod(idle bool) time.Duration {
	if idle {
		return q.cfg.ReportInterval
	}
	return q.cfg.UrgentInterval
}

// quotaKeys expands the quota rules of st into keys: exact rules, and prefix
// rules for every topic the backends know that no exact rule governs.
// topics lists those; it is called only when a prefix rule exists, since
// listing thousands of topics every second is a cost no exact rule needs.
func quotaKeys(st *fsm.State, topics func() []string) map[quota.Key]int64 {
	keys := map[quota.Key]int64{}
	add := func(topic string, q fsm.Quota) {
		if q.ProduceBytesPerSec > 0 {
			keys[quota.Key{Topic: topic, Dir: quota.Produce}] = q.ProduceBytesPerSec
		}
		if q.FetchBytesPerSec > 0 {
			keys[quota.Key{Topic: topic, Dir: quota.Fetch}] = q.FetchBytesPerSec
		}
	}
	hasPrefix := false
	for _, r := range st.Quotas {
		if r.Prefix {
			hasPrefix = true
			continue
		}
		add(r.Topic, r)
	}
	if hasPrefix {
		for _, t := range topics() {
			if r, ok := st.QuotaFor(t); ok && r.Prefix {
				add(t, r)
			}
		}
	}
	return keys
}

// livePeers counts the peers the data plane presents (at least 1).
func (q *quotas) livePeers(st *fsm.State) int {
	n := 0
	for _, p := range st.Peers {
		if q.n.gossip.isLive(p.Name) {
			n++
		}
	}
	return max(n, 1)
}

// syncKeys hands the limiter (and the allocator, when leading) the current
// quota keys when they or the peer count changed.
func (q *quotas) syncKeys(now time.Time) {
	st := q.n.fsm.State()
	topics := func() []string {
		if dp := q.n.dp.Load(); dp != nil {
			return dp.srv.Topics()
		}
		return nil
	}
	keys, peers := quotaKeys(st, topics), q.livePeers(st)
	q.mu.Lock()
	same := peers == q.peers && maps.Equal(keys, q.keys)
	q.keys, q.peers = keys, peers
	alloc := q.alloc
	q.mu.Unlock()
	if same {
		return
	}
	q.lim.SetQuotas(keys, peers, now)
	if alloc != nil {
		q.push(alloc.SetQuotas(keys, peers, now))
	}
}

// lead keeps an allocator while this peer leads: a new one for every term
// (it starts in learning mode), pushing what it allocates, and telling it
// of peers gossip declares dead.
func (q *quotas) lead(now time.Time) {
	leader := q.n.raft.State() == raft.Leader
	term := q.n.raftTerm()
	q.mu.Lock()
	if !leader {
		q.alloc = nil
		q.mu.Unlock()
		return
	}
	if q.alloc == nil || q.term != term {
		a, err := quota.NewAllocator(q.cfg, term, now)
		if err != nil {
			q.mu.Unlock()
			q.n.log.Error("quota allocator", "err", err)
			return
		}
		a.SetQuotas(q.keys, q.peers, now)
		q.alloc, q.term = a, term
		clear(q.dead)
	}
	alloc := q.alloc
	q.mu.Unlock()
	st := q.n.fsm.State()
	members := q.n.gossip.snapshot()
	for _, p := range st.Peers {
		m, ok := members[p.Name]
		dead := ok && (m.state == memberDead || m.state == memberLeft)
		q.mu.Lock()
		was := q.dead[p.ID]
		q.dead[p.ID] = dead
		q.mu.Unlock()
		if dead && !was {
			alloc.PeerDead(quota.PeerID(p.ID), now)
		}
	}
	q.push(alloc.Allocate(now))
}

// report sends this peer's demand to the leader and applies the answer.
func (q *quotas) report(ctx context.Context) {
	self, ok := q.n.ID()
	if !ok {
		return
	}
	now := time.Now()
	r := q.lim.Report(q.n.raftTerm(), now)
	q.mu.Lock()
	alloc := q.alloc
	q.mu.Unlock()
	if alloc != nil {
		reply, others, err := alloc.Report(quota.PeerID(self), r, now)
		if err != nil {
			q.n.log.Debug("quota report refused", "err", err)
			return
		}
		q.apply(reply)
		q.push(others)
		return
	}
	addr, id := q.n.raft.LeaderWithID()
	if addr == "" {
		return // no leader: the lease runs out and the limiter falls back
	}
	cctx, cancel := context.WithTimeout(ctx, q.cfg.ReportInterval*2)
	defer cancel()
	var g quota.Grants
	if err := q.n.rpc.CallPeer(cctx, string(id), string(addr), rpcQuotaReport, quotaReportRequest{Peer: self, Report: r}, &g); err != nil {
		q.n.log.Debug("quota report to the leader failed", "leader", addr, "err", err)
		return
	}
	q.apply(g)
}

func (q *quotas) apply(g quota.Grants) {
	if len(g.Keys) == 0 && g.Epoch == 0 {
		return
	}
	if err := q.lim.Apply(g, time.Now()); err != nil {
		q.n.log.Debug("quota grants not applied", "err", err)
	}
}

// push sends grants to their peers: this one in process, the others over
// the peer RPC stream (fire and forget: a lost push is renewed at the next
// report).
func (q *quotas) push(grants map[quota.PeerID]quota.Grants) {
	if len(grants) == 0 {
		return
	}
	self, _ := q.n.ID()
	st := q.n.fsm.State()
	for p, g := range grants {
		if int32(p) == self {
			q.apply(g)
			continue
		}
		peer, ok := st.Peer(int32(p))
		if !ok || peer.RaftAddr == "" {
			continue
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), q.cfg.ReportInterval*2)
			defer cancel()
			if err := q.n.rpc.CallPeer(ctx, peer.Name, peer.RaftAddr, rpcQuotaGrants, g, nil); err != nil {
				q.n.log.Debug("quota grants push failed", "peer", peer.Name, "err", err)
			}
		}()
	}
}

// handleReport serves a peer's report on the leader. The report speaks for
// the peer id it names, so that id must be the sender's own: else one peer
// could shrink another's share (or inflate its demand) at will.
func (q *quotas) handleReport(from string, req quotaReportRequest) ([]byte, error) {
	if p, ok := q.n.fsm.State().Peer(req.Peer); !ok || p.Name != from {
		return nil, q.n.unauthorized(slog.LevelWarn, from, rpcQuotaReport, fmt.Sprintf("the report names peer id %d, which is %q", req.Peer, p.Name))
	}
	q.mu.Lock()
	alloc := q.alloc
	q.mu.Unlock()
	if alloc == nil {
		return nil, toRPCError(fmt.Errorf("%w: %s has no quota allocator", ErrNotLeader, q.n.cfg.Name))
	}
	reply, others, err := alloc.Report(quota.PeerID(req.Peer), req.Report, time.Now())
	if err != nil {
		return nil, &transport.RPCError{Code: "quota_refused", Message: err.Error()}
	}
	q.push(others)
	return marshal(reply)
}

// handleGrants applies grants the leader pushed (handleRPC checked that
// the sender leads).
func (q *quotas) handleGrants(g quota.Grants) ([]byte, error) {
	q.apply(g)
	return marshal(struct{}{})
}

// status is this peer's shares of topic.
func (q *quotas) status(topic string) []QuotaShare {
	self, _ := q.n.ID()
	now := time.Now()
	var out []QuotaShare
	for _, d := range []quota.Direction{quota.Produce, quota.Fetch} {
		s, ok := q.lim.Status(quota.Key{Topic: topic, Dir: d}, now)
		if !ok {
			continue
		}
		out = append(out, QuotaShare{Peer: q.n.cfg.Name, ID: self, Direction: d.String(), Share: s.Share, Quota: s.Quota,
			Rate: s.Use, Wants: s.Wants, Mode: s.Mode.String(), Saturated: s.Saturated, LeaseMS: s.LeaseLeft.Milliseconds()})
	}
	return out
}

func (q *quotas) handleStatus(req quotaStatusRequest) ([]byte, error) {
	return marshal(q.status(req.Topic))
}

// shares collects every live peer's shares of topic.
func (q *quotas) shares(ctx context.Context, topic string) []QuotaShare {
	out := q.status(topic)
	st := q.n.fsm.State()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range st.Peers {
		if p.Name == q.n.cfg.Name || p.RaftAddr == "" || !q.n.gossip.isLive(p.Name) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			var got []QuotaShare
			if err := q.n.rpc.CallPeer(cctx, p.Name, p.RaftAddr, rpcQuotaStatus, quotaStatusRequest{Topic: topic}, &got); err != nil {
				var re *transport.RPCError
				if !errors.As(err, &re) {
					q.n.log.Debug("quota status", "peer", p.Name, "err", err)
				}
				return
			}
			mu.Lock()
			out = append(out, got...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// raftTerm is the current Raft term.
func (n *Node) raftTerm() uint64 { return n.raft.CurrentTerm() }

// maxQuotaSeries bounds the keys exported as metrics.
const maxQuotaSeries = 1000

// collect exports this peer's shares (and, on the leader, the committed
// sums) for every quota key, up to maxQuotaSeries keys.
func (q *quotas) collect(gauge func(*prometheus.Desc, float64, ...string)) {
	q.mu.Lock()
	keys := slices.Collect(maps.Keys(q.keys))
	alloc := q.alloc
	q.mu.Unlock()
	slices.SortFunc(keys, func(a, b quota.Key) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Dir, b.Dir))
	})
	now := time.Now()
	for i, k := range keys {
		if i == maxQuotaSeries {
			break
		}
		d := k.Dir.String()
		if s, ok := q.lim.Status(k, now); ok {
			gauge(descQuotaShare, s.Share, k.Topic, d, s.Mode.String())
			gauge(descQuotaRate, s.Use, k.Topic, d)
			gauge(descQuotaLimit, s.Quota, k.Topic, d)
		}
		if alloc != nil {
			sum, _ := alloc.Committed(k, now)
			gauge(descQuotaCommitted, sum, k.Topic, d)
		}
	}
}
