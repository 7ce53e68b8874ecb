package fsm

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// State is one immutable view of the replicated configuration. The data
// plane holds a pointer to the latest State and never mutates it; a change
// produces a new State (State.Next, FSM.Apply) that shares the sections it
// did not touch with the old one. Never write to a State, or to a slice
// reachable from it, once another goroutine can see it.
//
// Every keyed list is kept sorted by its key, so two peers that applied the
// same log hold deep-equal States and lookups can binary-search.
type State struct {
	// Index is the Raft log index of the last command applied to this
	// State (0 for a State built by hand or restored from an empty FSM).
	Index uint64 `json:"index"`
	// ClusterID is the virtual cluster's id, the one clients see (KIP-78):
	// set once by the first leader, stable across every peer and restart.
	ClusterID string `json:"cluster_id,omitempty"`
	// Peers are the Switchyard peers, sorted by ID. They are the brokers that
	// clients see.
	Peers []Peer `json:"peers,omitempty"`
	// Clusters are the backend Kafka clusters behind the proxy. The FSM keeps
	// them sorted by Name; a hand-built State may list them in any order.
	Clusters []Cluster `json:"clusters,omitempty"`
	// Routes map topics and consumer groups to clusters.
	Routes Routes `json:"routes"`
	// Quotas are the per-topic produce and fetch rate limits, exact-topic
	// rules first, then prefix rules, each group sorted by Topic.
	Quotas []Quota `json:"quotas,omitempty"`
	// Failover is the dual-center failover state.
	Failover Failover `json:"failover"`
	// Jobs are the operator jobs (topic migrations, offset resets), sorted
	// by ID.
	Jobs []Job `json:"jobs,omitempty"`
	// PeerAllowList names the peers the operator vouches for: the leader
	// admits a gossip member with one of these names even when no peer
	// certificate proves its name. Sorted, unique.
	PeerAllowList []string `json:"peer_allow_list,omitempty"`
	// Migrations are the topics' latest live migrations, sorted by topic
	// (fsm/migration.go).
	Migrations []Migration `json:"migrations,omitempty"`
	// Chains are the segment chains of migrated topics, sorted by topic.
	Chains []TopicChain `json:"chains,omitempty"`
	// OffsetResets are the groups' latest offset resets, sorted by group
	// (fsm/offset_reset.go).
	OffsetResets []OffsetReset `json:"offset_resets,omitempty"`
	// Regions map client networks to regions, sorted by Name
	// (fsm/region.go).
	Regions []Region `json:"regions,omitempty"`
	// Users are the Kafka listener's SASL users, sorted by Name
	// (fsm/security.go).
	Users []User `json:"users,omitempty"`
	// ACLs are the authorization rules, sorted by (resource type, pattern,
	// resource name, principal, host, operation, permission)
	// (fsm/security.go).
	ACLs []ACL `json:"acls,omitempty"`
}

// MaxAllowedPeers bounds the peer allow-list; it is read on every
// reconcile round and travels in every snapshot.
const MaxAllowedPeers = 1024

// PeerAllowed reports whether the operator's allow-list names name.
func (s *State) PeerAllowed(name string) bool {
	_, ok := slices.BinarySearch(s.PeerAllowList, name)
	return ok
}

// AutoPeerID in RegisterPeer asks the FSM to assign the peer's id.
const AutoPeerID int32 = -1

// Peer is one Switchyard process. Its ID is the broker id clients see; it is
// stable for the life of the peer (a re-registration under the same Name
// keeps it).
type Peer struct {
	ID int32 `json:"id"`
	// Name is the peer's stable node name: unique, and the key a peer
	// re-registers under (and its Raft server id).
	Name string `json:"name,omitempty"`
	// Region is the region/AZ, presented to clients as the broker rack.
	Region string `json:"region,omitempty"`
	// KafkaAddr is the advertised host:port clients connect to.
	KafkaAddr string `json:"kafka_addr"`
	// AdminAddr is the admin HTTP API address.
	AdminAddr string `json:"admin_addr,omitempty"`
	// RaftAddr is the advertised Raft transport address.
	RaftAddr string `json:"raft_addr,omitempty"`
	// GossipAddr is the advertised memberlist address.
	GossipAddr string `json:"gossip_addr,omitempty"`
	// Version is the Switchyard version the peer runs; the leader reads it
	// before proposing a command type or version older peers cannot decode.
	Version string `json:"version,omitempty"`
	// LocalBrokers are the backend brokers that run on this peer's host. A
	// partition led by one of them is presented as led by this peer. They
	// are facts about the host, given when the peer starts, so they may name
	// a cluster that is not (yet) defined; such entries are inert. The FSM
	// keeps them sorted by cluster, then broker id.
	LocalBrokers []BrokerRef `json:"local_brokers,omitempty"`
}

// BrokerRef names one broker of one backend cluster.
type BrokerRef struct {
	Cluster  string `json:"cluster"`
	BrokerID int32  `json:"broker_id"`
}

// SASL mechanisms a backend cluster may require.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
	SASLOAuthBearer = "OAUTHBEARER"
)

// Cluster is a backend Kafka cluster and how peers connect to it. Secrets
// never enter the replicated log: a password, key or token is named by a
// file path that each peer reads locally when it connects.
type Cluster struct {
	Name      string   `json:"name"`
	Bootstrap []string `json:"bootstrap"`
	Region    string   `json:"region,omitempty"`
	// DownAfterMS is how long a majority of reporting peers must see the
	// cluster down before it is failed over (0: 10000).
	DownAfterMS int64 `json:"down_after_ms,omitempty"`
	// UpAfterMS is how long it must be seen up again before failback (0: 60000).
	UpAfterMS int64 `json:"up_after_ms,omitempty"`
	// FailbackDrainMS bounds a failback's drain: how long consumers stay
	// on the fallback, after Produce has come back, for their groups to
	// read what was written there (0: 120000; payload version 4).
	FailbackDrainMS int64 `json:"failback_drain_ms,omitempty"`

	// TLS, when set, connects to the cluster's brokers over TLS; an empty
	// object means TLS checked against the system roots (payload version 3).
	TLS *ClusterTLS `json:"tls,omitempty"`
	// SASL, when set, authenticates every connection to the cluster's
	// brokers with the proxy's service credentials (payload version 3).
	SASL *ClusterSASL `json:"sasl,omitempty"`
}

// ClusterTLS is how peers connect to a backend cluster's brokers over TLS.
// Every path is absolute and names a file on every peer, read when a
// connection is made (a changed file is picked up without a restart).
type ClusterTLS struct {
	// CAFile is a PEM CA bundle; empty means the system roots.
	CAFile string `json:"ca_file,omitempty"`
	// CertFile and KeyFile are a PEM client certificate and its key, set
	// together or not at all.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// ServerName is the name checked in the brokers' certificates; empty
	// means the host of the broker's address.
	ServerName string `json:"server_name,omitempty"`
	// InsecureSkipVerify skips the check of the brokers' certificates
	// (tests only).
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
}

// ClusterSASL is the proxy's service identity towards a backend cluster.
// Mechanism PLAIN and SCRAM-SHA-256/512 take Username and PasswordFile;
// OAUTHBEARER takes either TokenFile (a JWT, re-read when the file changes)
// or TokenEndpoint with ClientID, ClientSecretFile and an optional Scope
// (the OAuth 2 client-credentials grant; the token is cached and fetched
// again before it expires).
type ClusterSASL struct {
	Mechanism        string `json:"mechanism"`
	Username         string `json:"username,omitempty"`
	PasswordFile     string `json:"password_file,omitempty"`
	TokenFile        string `json:"token_file,omitempty"`
	TokenEndpoint    string `json:"token_endpoint,omitempty"`
	ClientID         string `json:"client_id,omitempty"`
	ClientSecretFile string `json:"client_secret_file,omitempty"`
	Scope            string `json:"scope,omitempty"`
}

// Routes map topics and consumer groups to backend clusters. A topic goes to
// its exact route if it has one, else to the longest matching prefix route,
// else to DefaultCluster; see State.RouteFor.
type Routes struct {
	// Topics are exact topic routes, sorted by Topic.
	Topics []TopicRoute `json:"topics,omitempty"`
	// Prefixes are topic-name prefix routes, sorted by Prefix.
	Prefixes []PrefixRoute `json:"prefixes,omitempty"`
	// GroupPrefixes give consumer groups (and transactional ids) a home
	// cluster by prefix of the group id, sorted by Prefix; see
	// State.GroupHome.
	GroupPrefixes []PrefixRoute `json:"group_prefixes,omitempty"`
	// DefaultCluster takes what no rule matches; empty means no default.
	DefaultCluster string `json:"default_cluster,omitempty"`
	// Default are the default route's region targets and failover policy.
	Default RouteTargets `json:"default,omitempty"`
}

// TopicRoute sends one topic to one cluster (per region, with
// RouteTargets).
type TopicRoute struct {
	Topic   string `json:"topic"`
	Cluster string `json:"cluster"`
	RouteTargets
}

// PrefixRoute sends every name that starts with Prefix to Cluster.
type PrefixRoute struct {
	Prefix  string `json:"prefix"`
	Cluster string `json:"cluster"`
	RouteTargets
}

// RouteTargets are a route's region-aware targets and failover policy
// (docs/regions.md). The route's Cluster stays the target for every region
// Regions does not name.
type RouteTargets struct {
	// Regions maps a client region to the cluster that region's clients use.
	Regions map[string]string `json:"regions,omitempty"`
	// Fallback is the order in which clusters take over when the route's
	// target is down (failed over).
	Fallback []string `json:"fallback,omitempty"`
	// Resume says where consumer groups resume on the fallback cluster:
	// ResumeCommitted (default), ResumeTimestamp, ResumeLatest, ResumeEarliest.
	Resume string `json:"resume,omitempty"`
	// Failback is FailbackAuto (default) or FailbackManual.
	Failback string `json:"failback,omitempty"`
}

// Route resume policies and failback modes.
const (
	ResumeCommitted = "committed"
	ResumeTimestamp = "timestamp"
	ResumeLatest    = "latest"
	ResumeEarliest  = "earliest"
	FailbackAuto    = "auto"
	FailbackManual  = "manual"
)

// Quota caps the bytes per second clients may produce to and fetch from a
// topic, summed over all peers. Zero means no limit in that direction (so an
// exact rule of 0/0 exempts one topic from a prefix rule); a prefix rule
// limits each matching topic on its own.
type Quota struct {
	// Topic is the exact topic name, or a topic-name prefix when Prefix.
	Topic              string `json:"topic"`
	Prefix             bool   `json:"prefix,omitempty"`
	ProduceBytesPerSec int64  `json:"produce_bytes_per_sec"`
	FetchBytesPerSec   int64  `json:"fetch_bytes_per_sec"`
}

// JobState is where an operator job is in its life.
type JobState string

// Job states. Succeeded, failed and cancelled are terminal: a job in one
// cannot change again, only be deleted.
const (
	JobPending   JobState = "pending"
	JobRunning   JobState = "running"
	JobSucceeded JobState = "succeeded"
	JobFailed    JobState = "failed"
	JobCancelled JobState = "cancelled"
)

// Terminal reports whether a job in this state is finished.
func (s JobState) Terminal() bool {
	return s == JobSucceeded || s == JobFailed || s == JobCancelled
}

func (s JobState) known() bool {
	switch s {
	case JobPending, JobRunning, JobSucceeded, JobFailed, JobCancelled:
		return true
	}
	return false
}

// Job is an operator job (a topic migration, an offset reset). The FSM only
// stores it; the issue that adds a Kind defines its Spec and runs it. Times
// are unix milliseconds fixed by the proposer, never read from a clock in
// Apply.
type Job struct {
	ID    string   `json:"id"`
	Kind  string   `json:"kind"`
	State JobState `json:"state"`
	// Spec is the kind-specific parameters, any JSON value, stored in
	// compact canonical form.
	Spec      json.RawMessage `json:"spec,omitempty"`
	CreatedAt int64           `json:"created_at"`
	UpdatedAt int64           `json:"updated_at"`
}

// MatchKind says which kind of rule routed a name.
type MatchKind uint8

// Kinds of route match, from most to least specific.
const (
	MatchNone MatchKind = iota
	MatchExact
	MatchPrefix
	MatchDefault
)

func (k MatchKind) String() string {
	switch k {
	case MatchNone:
		return "none"
	case MatchExact:
		return "exact"
	case MatchPrefix:
		return "prefix"
	case MatchDefault:
		return "default"
	}
	return fmt.Sprintf("MatchKind(%d)", uint8(k))
}

// RouteMatch is the rule that routed a name: the topic for an exact route,
// the prefix for a prefix route, empty for the default or no match.
type RouteMatch struct {
	Kind MatchKind
	Rule string
}

func (m RouteMatch) String() string {
	if m.Rule == "" {
		return m.Kind.String()
	}
	return m.Kind.String() + ":" + m.Rule
}

// Peer returns the peer with the given id.
func (s *State) Peer(id int32) (Peer, bool) {
	i, ok := slices.BinarySearchFunc(s.Peers, id, cmpPeerID)
	if !ok {
		return Peer{}, false
	}
	return s.Peers[i], true
}

// PeerByName returns the peer registered under name.
func (s *State) PeerByName(name string) (Peer, bool) {
	if i := s.peerIndexByName(name); i >= 0 {
		return s.Peers[i], true
	}
	return Peer{}, false
}

func (s *State) peerIndexByName(name string) int {
	if name == "" {
		return -1
	}
	return slices.IndexFunc(s.Peers, func(p Peer) bool { return p.Name == name })
}

// Cluster returns the backend cluster with the given name.
func (s *State) Cluster(name string) (Cluster, bool) {
	for _, c := range s.Clusters {
		if c.Name == name {
			return c, true
		}
	}
	return Cluster{}, false
}

// RouteFor returns the cluster that serves topic and the rule that chose it:
// the exact route, else the longest matching prefix route, else the default
// cluster. With none of them it returns "" and MatchNone. It is a pure
// function of the State, so every peer routes a topic the same way. It is
// RouteForRegion for no region: region targets are not applied.
//
// A route whose cluster is failed over (fsm/failover.go) resolves to the
// first cluster of its Fallback that is active; ConfiguredRouteFor gives the
// cluster the route names.
func (s *State) RouteFor(topic string) (cluster string, match RouteMatch) {
	return s.RouteForRegion(topic, "")
}

// ConfiguredRouteFor is RouteFor without failover: the cluster the route
// itself names (what migrations and route edits reason about).
func (s *State) ConfiguredRouteFor(topic string) (cluster string, match RouteMatch) {
	cluster, _, match = s.topicRule(topic)
	return cluster, match
}

// GroupHome returns the home cluster of a consumer group (or transactional
// id): the longest matching group prefix rule, else the default cluster,
// moved to its fallback while that cluster is failed over. It is
// GroupHomeForRegion for no region.
func (s *State) GroupHome(group string) (cluster string, match RouteMatch) {
	return s.GroupHomeForRegion(group, "")
}

func (r *Routes) prefixOrDefault(rules []PrefixRoute, name string) (string, RouteTargets, RouteMatch) {
	if p, ok := longestPrefix(rules, name); ok {
		return p.Cluster, p.RouteTargets, RouteMatch{MatchPrefix, p.Prefix}
	}
	if r.DefaultCluster != "" {
		return r.DefaultCluster, r.Default, RouteMatch{Kind: MatchDefault}
	}
	return "", RouteTargets{}, RouteMatch{Kind: MatchNone}
}

// longestPrefix scans the rules that sort at or before name (every prefix of
// name sorts before it) and keeps the longest that matches. Prefixes are
// unique, so the answer is unique.
func longestPrefix(rules []PrefixRoute, name string) (PrefixRoute, bool) {
	var best PrefixRoute
	found := false
	for _, r := range rules {
		if r.Prefix > name {
			break
		}
		if strings.HasPrefix(name, r.Prefix) && (!found || len(r.Prefix) > len(best.Prefix)) {
			best, found = r, true
		}
	}
	return best, found
}

// QuotaFor returns the quota rule that governs topic: its exact rule, else
// the longest matching prefix rule.
func (s *State) QuotaFor(topic string) (Quota, bool) {
	if i, ok := slices.BinarySearchFunc(s.Quotas, quotaKey{topic, false}, cmpQuotaKey); ok {
		return s.Quotas[i], true
	}
	var best Quota
	found := false
	start, _ := slices.BinarySearchFunc(s.Quotas, quotaKey{"", true}, cmpQuotaKey)
	for _, q := range s.Quotas[start:] {
		if q.Topic > topic {
			break
		}
		if strings.HasPrefix(topic, q.Topic) && (!found || len(q.Topic) > len(best.Topic)) {
			best, found = q, true
		}
	}
	return best, found
}

// Job returns the job with the given id.
func (s *State) Job(id string) (Job, bool) {
	i, ok := slices.BinarySearchFunc(s.Jobs, id, cmpJobID)
	if !ok {
		return Job{}, false
	}
	return s.Jobs[i], true
}

// Key comparisons for the sorted lists.

func cmpPeerID(p Peer, id int32) int               { return cmp.Compare(p.ID, id) }
func cmpClusterName(c Cluster, name string) int    { return strings.Compare(c.Name, name) }
func cmpTopicRoute(r TopicRoute, topic string) int { return strings.Compare(r.Topic, topic) }
func cmpPrefixRoute(r PrefixRoute, p string) int   { return strings.Compare(r.Prefix, p) }
func cmpJobID(j Job, id string) int                { return strings.Compare(j.ID, id) }
func cmpBrokerRef(a, b BrokerRef) int {
	return cmp.Or(strings.Compare(a.Cluster, b.Cluster), cmp.Compare(a.BrokerID, b.BrokerID))
}
func cmpQuotaKey(q Quota, k quotaKey) int { return cmpQuotaKeys(quotaKey{q.Topic, q.Prefix}, k) }
func (q Quota) key() quotaKey             { return quotaKey{q.Topic, q.Prefix} }
func cmpQuotaKeys(a, b quotaKey) int {
	// Exact rules sort before prefix rules.
	if a.prefix != b.prefix {
		if a.prefix {
			return 1
		}
		return -1
	}
	return strings.Compare(a.topic, b.topic)
}

// quotaKey identifies a quota rule.
type quotaKey struct {
	topic  string
	prefix bool
}
