package node

import (
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// nodeMetrics are the control plane's own metrics. Raft, gossip and state
// figures are read at scrape time by controlCollector, so nothing on the
// write path updates them.
type nodeMetrics struct {
	applies    *prometheus.CounterVec
	nudges     *prometheus.CounterVec
	settled    *prometheus.CounterVec
	admin      *prometheus.HistogramVec
	noBackend  prometheus.Counter
	dataPlanes prometheus.Counter
}

func newNodeMetrics(reg prometheus.Registerer, n *Node) *nodeMetrics {
	m := &nodeMetrics{
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_raft_applies_total",
			Help: "Commands this peer proposed as leader, by result (ok, rejected: the FSM refused it, error: not committed).",
		}, []string{"result"}),
		nudges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_raft_commit_nudges_total",
			Help: "Barriers this peer appended as leader after a write committed, so followers learn the commit at once instead of at the next commit timeout, by result (ok, not_leader, error).",
		}, []string{"result"}),
		settled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_raft_writes_settled_total",
			Help: "Writes this peer proposed as leader and lost leadership with in flight, by what it then found in the new leader's log (committed: answered with its result; dropped: sent again to the new leader; unknown: answered 503, read back before retrying).",
		}, []string{"result"}),
		admin: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_admin_request_duration_seconds",
			Help:    "Admin API requests by method (GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS or other), matched route pattern (unmatched for an unknown /v1/ path) and status code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}, []string{"method", "route", "code"}),
		noBackend: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_kafka_rejected_no_backend_total",
			Help: "Client connections closed because this peer had no data plane (not registered in the replicated state yet) within 10 s of their arrival, or too many were waiting for it.",
		}),
		dataPlanes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_kafka_data_plane_starts_total",
			Help: "Times the data plane started: once this peer is registered (again only if its broker id changed).",
		}),
	}
	// Read at scrape time: the FSM counts on Raft's goroutine.
	skipped := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "switchyard_fsm_skipped_entries_total",
		Help: "Committed Raft log entries this peer skipped because they do not decode (state unchanged; see the log for their index). Non-zero means a forged entry or peers of incompatible versions.",
	}, func() float64 { return float64(n.fsm.Skipped()) })
	// Read at scrape time from the peer port (n.mux is set in New, before
	// the admin API serves a scrape).
	identityRefused := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "switchyard_peer_identity_refused_total",
		Help: "Peer-port connections refused because, with peer TLS on, the dialer's certificate does not name the peer its handshake claims (or it sent none). Non-zero means a misissued certificate or a member posing as another peer.",
	}, func() float64 {
		if n.mux == nil {
			return 0
		}
		return float64(n.mux.IdentityRefused())
	})
	reg.MustRegister(m.applies, m.nudges, m.settled, m.admin, m.noBackend, m.dataPlanes, skipped, identityRefused, &controlCollector{n: n})
	return m
}

var (
	descRaftState       = prometheus.NewDesc("switchyard_raft_state", "1 for this peer's Raft state (Leader, Follower, Candidate, Shutdown).", []string{"state"}, nil)
	descRaftTerm        = prometheus.NewDesc("switchyard_raft_term", "Current Raft term.", nil, nil)
	descRaftLastIndex   = prometheus.NewDesc("switchyard_raft_last_log_index", "Index of the last entry in this peer's Raft log.", nil, nil)
	descRaftCommit      = prometheus.NewDesc("switchyard_raft_commit_index", "Highest Raft index known committed.", nil, nil)
	descRaftApplied     = prometheus.NewDesc("switchyard_raft_applied_index", "Highest Raft index applied to the FSM.", nil, nil)
	descRaftHasLeader   = prometheus.NewDesc("switchyard_raft_has_leader", "1 when this peer knows a Raft leader (quorum), else 0.", nil, nil)
	descRaftContact     = prometheus.NewDesc("switchyard_raft_last_contact_seconds", "Seconds since a follower last heard from the leader (0 on the leader, -1 never).", nil, nil)
	descRaftServers     = prometheus.NewDesc("switchyard_raft_servers", "Servers in the Raft configuration by suffrage (voter, nonvoter).", []string{"suffrage"}, nil)
	descGossipMembers   = prometheus.NewDesc("switchyard_gossip_members", "Peers in this peer's gossip view by state (alive, suspect, dead, left).", []string{"state"}, nil)
	descGossipHealth    = prometheus.NewDesc("switchyard_gossip_health_score", "Memberlist's awareness health score (0 healthy; higher means this peer is slow to process gossip).", nil, nil)
	descStateIndex      = prometheus.NewDesc("switchyard_fsm_state_index", "Raft index of the state this peer's data plane reads.", nil, nil)
	descStatePeers      = prometheus.NewDesc("switchyard_fsm_peers", "Peers in the replicated state.", nil, nil)
	descStateClusters   = prometheus.NewDesc("switchyard_fsm_clusters", "Backend clusters in the replicated state.", nil, nil)
	descDataPlaneServes = prometheus.NewDesc("switchyard_kafka_serving", "1 while the Kafka data plane serves clients from a backend cluster.", nil, nil)
	descQuotaShare      = prometheus.NewDesc("switchyard_quota_share_bytes_per_second", "This peer's leased share of a topic quota, by topic and direction.", []string{"topic", "direction", "mode"}, nil)
	descQuotaRate       = prometheus.NewDesc("switchyard_quota_rate_bytes_per_second", "Bytes per second this peer admitted for a topic quota over its last report interval.", []string{"topic", "direction"}, nil)
	descQuotaLimit      = prometheus.NewDesc("switchyard_quota_limit_bytes_per_second", "The cluster-wide quota of a topic and direction, as this peer applies it.", []string{"topic", "direction"}, nil)
	descQuotaCommitted  = prometheus.NewDesc("switchyard_quota_committed_bytes_per_second", "On the leader: the shares committed to peers for a topic quota (never above the quota plus the headroom credit).", []string{"topic", "direction"}, nil)
	descClusterHealth   = prometheus.NewDesc("switchyard_health_cluster_up", "1 when this peer's latest probe found the backend cluster up (a Metadata round trip with a produce-able partition), else 0.", []string{"cluster"}, nil)
	descFailoverState   = prometheus.NewDesc("switchyard_failover_state", "1 for the failover state a backend cluster is in (active, down, failed-over, failing-back), from the replicated state.", []string{"cluster", "state"}, nil)
	descTopicConflicts  = prometheus.NewDesc("switchyard_kafka_topic_conflicts", "Topics present in more than one backend cluster; clients see only the routed copy (GET /v1/status lists them).", nil, nil)
)

// controlCollector reads Raft, gossip and state figures at scrape time.
type controlCollector struct{ n *Node }

func (c *controlCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRaftState, descRaftTerm, descRaftLastIndex, descRaftCommit, descRaftApplied,
		descRaftHasLeader, descRaftContact, descRaftServers, descGossipMembers, descGossipHealth, descStateIndex,
		descStatePeers, descStateClusters, descDataPlaneServes, descTopicConflicts,
		descQuotaShare, descQuotaRate, descQuotaLimit, descQuotaCommitted, descClusterHealth, descFailoverState, descFailoverSeconds} {
		ch <- d
	}
}

func (c *controlCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	st := n.fsm.State()
	gauge(descStateIndex, float64(st.Index))
	gauge(descStatePeers, float64(len(st.Peers)))
	gauge(descStateClusters, float64(len(st.Clusters)))
	serving := 0.0
	if n.readiness() == nil {
		serving = 1
	}
	gauge(descDataPlaneServes, serving)
	if dp := n.dp.Load(); dp != nil {
		gauge(descTopicConflicts, float64(len(dp.srv.TopicConflicts())))
	}
	n.quotas.collect(gauge)
	for name, up := range n.health.localHealth() {
		v := 0.0
		if up {
			v = 1
		}
		gauge(descClusterHealth, v, name)
	}
	n.failover.collect(st, gauge)
	if n.raft == nil {
		return
	}
	rs := n.raft.State()
	for _, s := range []raft.RaftState{raft.Leader, raft.Follower, raft.Candidate, raft.Shutdown} {
		v := 0.0
		if s == rs {
			v = 1
		}
		gauge(descRaftState, v, s.String())
	}
	term, _ := strconv.ParseUint(n.raft.Stats()["term"], 10, 64)
	gauge(descRaftTerm, float64(term))
	gauge(descRaftLastIndex, float64(n.raft.LastIndex()))
	gauge(descRaftCommit, float64(n.raft.CommitIndex()))
	gauge(descRaftApplied, float64(n.raft.AppliedIndex()))
	has := 0.0
	if addr, _ := n.raft.LeaderWithID(); addr != "" {
		has = 1
	}
	gauge(descRaftHasLeader, has)
	contact := -1.0
	if rs == raft.Leader {
		contact = 0
	} else if lc := n.raft.LastContact(); !lc.IsZero() {
		contact = time.Since(lc).Seconds()
	}
	gauge(descRaftContact, contact)
	if servers, _, err := n.raftServers(); err == nil {
		var voters, nonvoters float64
		for _, s := range servers {
			if s.Suffrage == raft.Voter {
				voters++
			} else {
				nonvoters++
			}
		}
		gauge(descRaftServers, voters, "voter")
		gauge(descRaftServers, nonvoters, "nonvoter")
	}
	counts := map[memberState]float64{memberAlive: 0, memberSuspect: 0, memberDead: 0, memberLeft: 0}
	for _, m := range n.gossip.snapshot() {
		counts[m.state]++
	}
	for s, v := range counts {
		gauge(descGossipMembers, v, string(s))
	}
	if n.gossip.ml != nil {
		gauge(descGossipHealth, float64(n.gossip.ml.GetHealthScore()))
	}
}
