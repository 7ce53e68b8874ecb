package node

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
	"github.com/switchyard-proxy/switchyard/kafka"
)

// Cluster health (docs/regions.md, "Failover and failback").
//
// Every peer probes every backend cluster once a HealthConfig.Interval and
// reports its verdicts to the leader over the peer RPC stream, as soft
// state like quota reports: never in the Raft log, lost with the leader,
// rebuilt from the next reports. A probe is one Metadata round trip, with
// a short timeout, through the peer's own backend connections, asking for
// the topics routed to the cluster (up to maxProbeTopics): the cluster is up
// when the answer names a broker and, if any asked topic has partitions, at
// least one of them has a leader and no error (a produce-able partition). A
// topic the cluster does not have is no evidence either way.
//
// The leader keeps each peer's latest verdict per cluster and when it
// changed; a report older than HealthConfig.Stale counts as no report. A
// cluster is down once fresh reports saying down from a majority of the
// registered peers (not merely of those reporting) have held for the
// cluster's down_after, and up again as soon as a majority of the fresh
// reports say up. A cut link between sites (one side sees the cluster, the
// other does not, and the leader hears only its own side) gives no such
// majority, so the cluster keeps its state.

const (
	rpcHealthReport = "health.report" // peer → leader: this peer's verdicts
	rpcHealthStatus = "health.status" // peer → leader: the leader's view

	// maxProbeTopics bounds the topics a probe asks for.
	maxProbeTopics = 8
	// maxHealthClusters bounds a report from the wire.
	maxHealthClusters = 1024
)

// HealthConfig tunes the cluster probes. Zero values take the defaults.
type HealthConfig struct {
	// Interval between probes (and reports). Default 1 s.
	Interval time.Duration
	// Timeout of one probe. Default 2 s.
	Timeout time.Duration
	// Stale is the age after which the leader ignores a peer's report.
	// Default 3 s.
	Stale time.Duration
}

func (c HealthConfig) withDefaults() HealthConfig {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Stale <= 0 {
		c.Stale = 3 * time.Second
	}
	return c
}

// Health verdicts and states.
const (
	healthUp   = "up"
	healthDown = "down"
)

// healthVerdict is one peer's verdict on one cluster.
type healthVerdict struct {
	Cluster string `json:"cluster"`
	Up      bool   `json:"up"`
}

type healthReportRequest struct {
	Verdicts []healthVerdict `json:"verdicts"`
}

// peerVerdict is the leader's record of one peer's verdict.
type peerVerdict struct {
	up      bool
	changed time.Time // when this peer's verdict last changed
	at      time.Time // when it was last reported
}

// clusterView is the leader's running judgement of one cluster.
type clusterView struct {
	peers     map[string]*peerVerdict
	down      bool
	since     time.Time
	downSince time.Time // when a majority started saying down; zero if none does
	upSince   time.Time // when a majority started saying up; zero if none does
}

// health probes this peer's clusters and, on the leader, judges them.
type health struct {
	n   *Node
	cfg HealthConfig
	// state and term read the replicated state and the Raft term (the
	// node's; tests judge without one).
	state func() *fsm.State
	term  func() uint64

	mu       sync.Mutex
	local    map[string]bool         // this peer's latest verdicts
	views    map[string]*clusterView // leader only
	termSeen uint64                  // the term views belong to
}

func newHealth(n *Node, cfg HealthConfig) *health {
	return &health{n: n, cfg: cfg.withDefaults(), local: map[string]bool{}, views: map[string]*clusterView{},
		state: func() *fsm.State { return n.fsm.State() }, term: n.raftTerm}
}

// run probes and reports every Interval until ctx ends.
func (h *health) run(ctx context.Context) {
	t := time.NewTicker(h.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		verdicts := h.probeAll(ctx)
		h.report(ctx, verdicts)
	}
}

// probeAll probes every cluster this peer's data plane serves, in
// parallel, and returns the verdicts.
func (h *health) probeAll(ctx context.Context) []healthVerdict {
	st := h.n.fsm.State()
	dp := h.n.dp.Load()
	if dp == nil {
		return nil
	}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		out []healthVerdict
	)
	for _, c := range st.Clusters {
		be, ok := dp.backend(c.Name)
		if !ok {
			continue
		}
		topics := probeTopics(st, c.Name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
			defer cancel()
			up := probeCluster(pctx, be, topics) == nil
			mu.Lock()
			out = append(out, healthVerdict{Cluster: c.Name, Up: up})
			mu.Unlock()
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Cluster < out[j].Cluster })
	h.mu.Lock()
	h.local = make(map[string]bool, len(out))
	for _, v := range out {
		h.local[v.Cluster] = v.Up
	}
	h.mu.Unlock()
	return out
}

// probeTopics are the exact-route topics whose configured cluster is
// cluster, sorted, at most maxProbeTopics.
func probeTopics(st *fsm.State, cluster string) []string {
	var out []string
	for _, r := range st.Routes.Topics {
		if r.Cluster == cluster {
			out = append(out, r.Topic)
			if len(out) == maxProbeTopics {
				break
			}
		}
	}
	return out
}

// probeCluster is one Metadata round trip; nil means up.
func probeCluster(ctx context.Context, be *kafka.Backend, topics []string) error {
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{} // none: brokers only
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := be.Request(ctx, -1, req, -1)
	if err != nil {
		return err
	}
	m, ok := resp.(*kmsg.MetadataResponse)
	if !ok {
		return fmt.Errorf("cluster %s answered metadata with %T", be.Name(), resp)
	}
	if len(m.Brokers) == 0 {
		return fmt.Errorf("cluster %s names no broker", be.Name())
	}
	partitions := 0
	for _, t := range m.Topics {
		for _, p := range t.Partitions {
			partitions++
			if p.ErrorCode == 0 && p.Leader >= 0 {
				return nil
			}
		}
	}
	if partitions > 0 {
		return fmt.Errorf("cluster %s: none of %d partitions has a leader", be.Name(), partitions)
	}
	return nil
}

// report sends this peer's verdicts to the leader (in process on the
// leader itself).
func (h *health) report(ctx context.Context, verdicts []healthVerdict) {
	if len(verdicts) == 0 {
		return
	}
	if h.n.raft.State() == raft.Leader {
		h.record(h.n.cfg.Name, verdicts, time.Now())
		return
	}
	addr, id := h.n.raft.LeaderWithID()
	if addr == "" {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, h.cfg.Interval*2)
	defer cancel()
	var ack struct{}
	if err := h.n.rpc.CallPeer(cctx, string(id), string(addr), rpcHealthReport, healthReportRequest{Verdicts: verdicts}, &ack); err != nil {
		h.n.log.Debug("health report to the leader failed", "leader", addr, "err", err)
	}
}

// handleReport serves a peer's report on the leader.
func (h *health) handleReport(from string, req healthReportRequest) ([]byte, error) {
	h.record(from, req.Verdicts, time.Now())
	return marshal(struct{}{})
}

// record keeps peer's verdicts and re-judges the clusters they name.
func (h *health) record(peer string, verdicts []healthVerdict, now time.Time) {
	st := h.state()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.resetIfNewTerm(now)
	for _, v := range verdicts {
		if _, ok := st.Cluster(v.Cluster); !ok {
			continue
		}
		cv := h.view(v.Cluster, now)
		pv := cv.peers[peer]
		if pv == nil || pv.up != v.Up {
			pv = &peerVerdict{up: v.Up, changed: now}
			cv.peers[peer] = pv
		}
		pv.at = now
	}
	h.judgeLocked(st, now)
}

// resetIfNewTerm drops views from an earlier leadership term: a new
// leader judges from reports it received itself.
func (h *health) resetIfNewTerm(now time.Time) {
	if term := h.term(); term != h.termSeen {
		h.termSeen = term
		h.views = map[string]*clusterView{}
	}
}

func (h *health) view(cluster string, now time.Time) *clusterView {
	cv := h.views[cluster]
	if cv == nil {
		cv = &clusterView{peers: map[string]*peerVerdict{}, since: now}
		h.views[cluster] = cv
	}
	return cv
}

// judgeLocked updates every cluster's state from the fresh reports.
func (h *health) judgeLocked(st *fsm.State, now time.Time) {
	for name, cv := range h.views {
		c, ok := st.Cluster(name)
		if !ok {
			delete(h.views, name)
			continue
		}
		ups, downs := 0, 0
		var downChanged, upChanged time.Time
		for _, pv := range cv.peers {
			if now.Sub(pv.at) > h.cfg.Stale {
				continue
			}
			if pv.up {
				ups++
				upChanged = later(upChanged, pv.changed)
			} else {
				downs++
				downChanged = later(downChanged, pv.changed)
			}
		}
		reporting := ups + downs
		// Down needs a majority of every registered peer, not only of
		// those that report: across a cut link the leader hears only
		// its own side, which cannot see the other site's cluster.
		voters := max(len(st.Peers), reporting)
		switch {
		case reporting > 0 && downs*2 > voters:
			// The majority has said down since the latest of its
			// members turned down (or since this view began).
			if cv.downSince.IsZero() {
				cv.downSince = later(downChanged, cv.since)
			}
			cv.upSince = time.Time{}
		case reporting > 0 && ups*2 > reporting:
			if cv.upSince.IsZero() {
				cv.upSince = later(upChanged, cv.since)
			}
			cv.downSince = time.Time{}
		default: // no majority: a cut link, or nobody reports
			cv.downSince, cv.upSince = time.Time{}, time.Time{}
		}
		downFor := time.Duration(c.DownAfter()) * time.Millisecond
		if !cv.down && !cv.downSince.IsZero() && now.Sub(cv.downSince) >= downFor {
			cv.down, cv.since = true, now
			h.log().Warn("backend cluster is down", "cluster", name, "down_peers", downs, "reporting", reporting)
		} else if cv.down && !cv.upSince.IsZero() {
			cv.down, cv.since = false, now
			h.log().Info("backend cluster is up again", "cluster", name, "up_peers", ups, "reporting", reporting)
		}
	}
}

func (h *health) log() *slog.Logger {
	if h.n == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.n.log
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// status is the leader's view of every cluster, sorted by name; a cluster
// no peer reports on is up with no peers.
func (h *health) status(now time.Time) []adminapi.ClusterHealth {
	st := h.state()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.resetIfNewTerm(now)
	h.judgeLocked(st, now)
	out := make([]adminapi.ClusterHealth, 0, len(st.Clusters))
	for _, c := range st.Clusters {
		ch := adminapi.ClusterHealth{Cluster: c.Name, State: healthUp, Peers: map[string]string{}}
		if cv := h.views[c.Name]; cv != nil {
			if cv.down {
				ch.State = healthDown
			}
			ch.Since = cv.since.UnixMilli()
			for p, pv := range cv.peers {
				if now.Sub(pv.at) > h.cfg.Stale {
					continue
				}
				ch.Peers[p] = healthDown
				if pv.up {
					ch.Peers[p] = healthUp
				}
			}
			if !cv.upSince.IsZero() {
				ch.UpForMS = now.Sub(cv.upSince).Milliseconds()
			}
		}
		out = append(out, ch)
	}
	return out
}

// handleStatus serves the leader's view to another peer.
func (h *health) handleStatus() ([]byte, error) {
	return marshal(h.status(time.Now()))
}

// leaderStatus is the leader's view, from any peer.
func (n *Node) healthStatus(ctx context.Context) ([]adminapi.ClusterHealth, error) {
	if n.raft.State() == raft.Leader {
		return n.health.status(time.Now()), nil
	}
	addr, id := n.raft.LeaderWithID()
	if addr == "" {
		return nil, fmt.Errorf("%w: cluster health is judged by the leader and %s knows none", ErrNoLeader, n.cfg.Name)
	}
	var out []adminapi.ClusterHealth
	if err := n.rpc.CallPeer(ctx, string(id), string(addr), rpcHealthStatus, struct{}{}, &out); err != nil {
		return nil, fmt.Errorf("cluster health from the leader %s: %w", id, err)
	}
	return out, nil
}

// localHealth is this peer's latest verdicts (the health metric).
func (h *health) localHealth() map[string]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.local)
}

// validHealthReport bounds a report from the wire.
func validHealthReport(req healthReportRequest) error {
	if len(req.Verdicts) > maxHealthClusters {
		return fmt.Errorf("%w: health report of %d clusters, at most %d", fsm.ErrBadPayload, len(req.Verdicts), maxHealthClusters)
	}
	for _, v := range req.Verdicts {
		if v.Cluster == "" || len(v.Cluster) > 255 {
			return fmt.Errorf("%w: health report names a cluster of %d bytes", fsm.ErrBadPayload, len(v.Cluster))
		}
	}
	if !slices.IsSortedFunc(req.Verdicts, func(a, b healthVerdict) int {
		if a.Cluster < b.Cluster {
			return -1
		}
		if a.Cluster > b.Cluster {
			return 1
		}
		return 0
	}) {
		return fmt.Errorf("%w: health report not sorted by cluster", fsm.ErrBadPayload)
	}
	return nil
}
