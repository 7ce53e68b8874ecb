package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/kafka"
	"github.com/switchyard-proxy/switchyard/transport"
)

// Config configures one peer. Addresses are host:port; an advertised
// address defaults to its listen address, which must then name a concrete
// host (not 0.0.0.0).
type Config struct {
	// Name is the peer's stable node name: its Raft server id, gossip name
	// and the key its broker id is kept under. Required.
	Name string
	// DataDir holds the Raft log, stable store and snapshots. Required.
	DataDir string
	// Region is the peer's region/AZ, presented to clients as the rack.
	Region string
	// Version is the Switchyard version, gossiped to the other peers.
	Version string

	// KafkaListen is the Kafka listener address; KafkaListener, when set,
	// is an already bound listener used instead. KafkaAdvertise is the
	// address clients are told.
	KafkaListen    string
	KafkaListener  net.Listener
	KafkaAdvertise string
	// AdminListen is the admin HTTP address; empty runs no admin API.
	AdminListen string
	// AdminToken, when not empty, is the bearer token every /v1/ request
	// must carry.
	AdminToken string
	// AdminTokensFile, when set, names a file of admin API tokens with
	// roles, one "ROLE TOKEN [NAME]" per line (http_auth.go); it is re-read
	// when it changes (checked at most every Timing.AdminFileReload).
	// AdminToken, when also set, is one more token with the admin role.
	AdminTokensFile string
	// AdminTLSCertFile and AdminTLSKeyFile, set together, serve the admin
	// API over TLS; the pair is reloaded when either file changes.
	AdminTLSCertFile string
	AdminTLSKeyFile  string
	// AdminAuditLog, when set, is a file every admin write is appended to
	// as one JSON line (http_audit.go); writes go to the log either way.
	AdminAuditLog string
	// Admin bounds the admin listener's connections; zero fields take
	// DefaultAdminLimits' values.
	Admin AdminLimits
	// RaftListen and RaftAdvertise are the peer port: Raft and the peer RPC
	// stream (write forwarding, consistent reads) share it.
	RaftListen    string
	RaftAdvertise string
	// PeerServerTLS and PeerClientTLS turn on TLS on the peer port (set
	// both, normally with client certificates for mutual TLS).
	PeerServerTLS *tls.Config
	PeerClientTLS *tls.Config
	// GossipListen and GossipAdvertise are memberlist's address.
	GossipListen    string
	GossipAdvertise string
	// GossipKeyFile, when set, names a file of base64 gossip keys, one per
	// line, the first the primary (transport.ParseGossipKeys): all gossip
	// is then encrypted and authenticated, and a process without a key
	// cannot join. The file is re-read every Timing.GossipKeyReload, so a
	// key rotates without a restart (see node/DESIGN.md).
	GossipKeyFile string
	// AdmitUnproven makes the leader admit every gossip member (register
	// it, add it to Raft, promote it) without proof of its name: the
	// insecure mode of the sandbox, tests and loopback development. Off,
	// a member is admitted only when its peer-port certificate names it
	// (peer TLS on), or an allow-list names it (AllowPeers or the
	// replicated one, /v1/peers/allow-list).
	AdmitUnproven bool
	// AllowPeers are peer names admitted without a certificate, in
	// addition to the replicated allow-list. They let peers without peer
	// TLS form a cluster (bootstrap happens before any replicated state).
	AllowPeers []string
	// Join lists gossip addresses of running peers to join at start.
	Join []string
	// BootstrapExpect forms a new cluster once this many peers started with
	// the same value see each other; 0 never bootstraps (join only).
	BootstrapExpect int
	// LocalBrokers are the backend brokers on this host.
	LocalBrokers []fsm.BrokerRef

	// ClusterID is presented to clients; empty presents the backend's.
	ClusterID string
	// MetadataRefresh is how often backend metadata is reloaded.
	MetadataRefresh time.Duration
	// MetadataListFromBackend asks the backends for every all-topics
	// Metadata instead of answering it from each cluster's last refresh
	// (kafka.BackendConfig.ListFromSnapshot, the default). From the
	// snapshot, a topic created or deleted through any peer shows within
	// a gossip round (the peers tell each other, node/gossip.go); one
	// created at the backend directly, after the next refresh.
	MetadataListFromBackend bool
	// MaxFrameBytes bounds a client request frame.
	MaxFrameBytes int32
	// MaxTopicSeries caps per-topic metric series.
	MaxTopicSeries int
	// MaxClientSeries caps per-client metric series (distinct client id
	// and principal pairs); 0 takes kafka.DefaultMaxClientSeries.
	MaxClientSeries int
	// GroupLagInterval is how often the Raft leader polls consumer-group
	// lag (group_lag.go); 0 turns it off. GroupLagMaxGroups caps the
	// groups with series of their own (0: DefaultGroupLagMaxGroups).
	GroupLagInterval  time.Duration
	GroupLagMaxGroups int
	// KafkaLimits bound client connections and the request bytes they
	// make the data plane hold; zero fields take kafka's defaults.
	KafkaLimits kafka.Limits
	// KafkaAuthz configures authorization once the listener authenticates
	// (super users, allow-if-no-ACL).
	KafkaAuthz kafka.AuthzConfig
	// KafkaSecurity: TLS and SASL on the Kafka listener (kafka.Security).
	KafkaSecurity kafka.Security
	// BackendBrokerTimeout bounds one control exchange with a backend
	// broker, dial included, and BackendMaxResponseBytes one backend
	// response (kafka.BackendConfig's BrokerTimeout and MaxResponseBytes);
	// 0 takes kafka's defaults.
	BackendBrokerTimeout    time.Duration
	BackendMaxResponseBytes int32

	// LeaveOnStop makes a stopping peer announce its departure to gossip,
	// so the others stop presenting it at once instead of after failure
	// detection. It keeps its Raft seat either way (see DeadPeerTimeout).
	LeaveOnStop bool

	// CommandSet is the fsm command set this peer gossips and applies;
	// 0 is this build's (fsm.CommandSetVersion). CommandIntroduced
	// overrides entries of fsm's type → command set table. Only tests set
	// them, to stand in for an older or a newer build in a rolling upgrade.
	CommandSet        uint16
	CommandIntroduced map[fsm.CommandType]uint16

	// WriteLease is how long a write lease from the Raft leader lets this
	// peer forward Produce and AddPartitionsToTxn (lease.go): a peer cut
	// off from the leader stops writing within it, and a migration's switch
	// waits this long (plus a margin) for a registered peer that cannot
	// confirm the fence. 0 is DefaultWriteLease; negative disables the
	// lease: Produce then never waits on the control plane, and nothing
	// bounds how long a cut-off peer keeps writing, so migrations and
	// offset resets need every registered peer to confirm their fence (a
	// peer that is down or cut off blocks them until it is back or
	// removed). Set the same value on every peer.
	WriteLease time.Duration

	// Health tunes the backend cluster probes behind failover (health.go);
	// zero fields take the defaults.
	Health HealthConfig

	// Timing holds the control plane's timeouts; zero fields take
	// DefaultTiming's values.
	Timing Timing
	// Faults, in tests, drops, delays or partitions peer traffic.
	Faults *transport.Faults
	Logger *slog.Logger
}

// Timing are the control plane's timeouts and periods.
type Timing struct {
	// Raft: a follower that hears nothing for HeartbeatTimeout starts an
	// election; see hashicorp/raft's Config.
	RaftHeartbeat   time.Duration
	RaftElection    time.Duration
	RaftLeaderLease time.Duration
	// RaftCommitTimeout is how often the leader sends each follower an
	// AppendEntries on an idle log: an idle leader sends 1/it to 2/it
	// messages per second to each follower. Followers learn a write's
	// commit from the barrier the leader appends once it committed
	// (nudge.go), so writes reach every peer's data plane in about a round
	// trip whatever this is; it bounds only what no nudge covers (a
	// membership change, a barrier's AppendEntries lost to a broken
	// connection) at 1-2× it (BenchmarkCommitTimeout).
	RaftCommitTimeout time.Duration
	// SnapshotInterval and SnapshotThreshold: how often Raft checks, and how
	// many new entries it needs, to take a snapshot.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	// TrailingLogs is how many entries a snapshot leaves in the log, so a
	// follower that lags by fewer catches up without a snapshot.
	TrailingLogs uint64
	// ApplyTimeout bounds one write (the proposal and its commit). A write
	// whose leader steps down with it in flight may take as long again to
	// be settled (settle.go), when its caller set no deadline.
	ApplyTimeout time.Duration
	// ReconcileInterval is how often the leader reconciles gossip into the
	// Raft configuration and the peer table (gossip events also trigger it).
	ReconcileInterval time.Duration
	// PromoteAfter is how long a non-voter must be alive before the leader
	// promotes it to voter.
	PromoteAfter time.Duration
	// DeadPeerTimeout is how long a peer may be dead or gone from gossip
	// before the leader removes it from the Raft configuration. It keeps its
	// broker id and peer entry, so it can come back.
	DeadPeerTimeout time.Duration
	// Gossip failure detection, see memberlist.Config.
	GossipProbeInterval time.Duration
	GossipProbeTimeout  time.Duration
	GossipInterval      time.Duration
	GossipSuspicionMult int
	// JoinRetry is the pause between attempts to join the Join addresses.
	JoinRetry time.Duration
	// ReconnectInterval is how often a peer tries to rejoin peers gossip
	// holds dead: memberlist never probes a dead member again, so after a
	// partition longer than failure detection the two sides would stay
	// apart without it.
	ReconnectInterval time.Duration
	// GossipKeyReload is how often GossipKeyFile is re-read for a rotation.
	GossipKeyReload time.Duration
	// AdminFileReload is how often the admin tokens file and the admin TLS
	// key pair are checked for a change (on use, at most this often).
	AdminFileReload time.Duration
	// ProofTimeout bounds one identity probe of a gossip member's peer
	// port (TLS dial and handshake); a refused member is probed again
	// after ProofRetry.
	ProofTimeout time.Duration
	ProofRetry   time.Duration
}

// AdminLimits bound the admin HTTP listener, so a slow or hostile client
// cannot hold connections or memory: every read and write has a deadline
// and every header and body a size cap.
type AdminLimits struct {
	// ReadHeaderTimeout bounds reading a request's headers (slowloris).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the end
	// of its response. It must exceed twice Timing.ApplyTimeout: a write
	// waits up to that long for the leader, and as long again when its
	// leader steps down with it in flight (shorter settings are raised to
	// twice ApplyTimeout plus ReadTimeout).
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps a request's header block.
	MaxHeaderBytes int
	// MaxBodyBytes caps a request body; a larger one is answered 413.
	MaxBodyBytes int64
}

// validate reports limits that cannot work. Zero fields are defaults;
// negative ones are mistakes. A body cap above maxBody would not be
// honoured (decodeBody's backstop), so it is refused rather than ignored.
func (a AdminLimits) validate() error {
	switch {
	case a.ReadHeaderTimeout < 0 || a.ReadTimeout < 0 || a.WriteTimeout < 0 || a.IdleTimeout < 0:
		return fmt.Errorf("node: admin timeouts must not be negative: read header %v, read %v, write %v, idle %v",
			a.ReadHeaderTimeout, a.ReadTimeout, a.WriteTimeout, a.IdleTimeout)
	case a.MaxHeaderBytes < 0:
		return fmt.Errorf("node: admin max header bytes %d is negative", a.MaxHeaderBytes)
	case a.MaxBodyBytes < 0 || a.MaxBodyBytes > maxBody:
		return fmt.Errorf("node: admin max body bytes %d: want 0 (default) up to %d; admin requests are small JSON objects", a.MaxBodyBytes, maxBody)
	}
	return nil
}

// DefaultAdminLimits suit an operator API: small JSON requests, writes that
// may wait for a leader election.
func DefaultAdminLimits() AdminLimits {
	return AdminLimits{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		MaxBodyBytes:      1 << 20,
	}
}

// withDefaults fills zero fields from DefaultAdminLimits and keeps the
// write timeout above the time a write may wait for the leader.
func (a AdminLimits) withDefaults(applyTimeout time.Duration) AdminLimits {
	d := DefaultAdminLimits()
	fill := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	fill(&a.ReadHeaderTimeout, d.ReadHeaderTimeout)
	fill(&a.ReadTimeout, d.ReadTimeout)
	fill(&a.WriteTimeout, d.WriteTimeout)
	fill(&a.IdleTimeout, d.IdleTimeout)
	if a.MaxHeaderBytes <= 0 {
		a.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if a.MaxBodyBytes <= 0 {
		a.MaxBodyBytes = d.MaxBodyBytes
	}
	a.WriteTimeout = max(a.WriteTimeout, 2*applyTimeout+a.ReadTimeout)
	return a
}

// DefaultTiming is for production on a LAN.
func DefaultTiming() Timing {
	return Timing{
		RaftHeartbeat:       1000 * time.Millisecond,
		RaftElection:        1000 * time.Millisecond,
		RaftLeaderLease:     500 * time.Millisecond,
		RaftCommitTimeout:   200 * time.Millisecond,
		SnapshotInterval:    30 * time.Second,
		SnapshotThreshold:   8192,
		TrailingLogs:        10240,
		ApplyTimeout:        10 * time.Second,
		ReconcileInterval:   time.Second,
		PromoteAfter:        10 * time.Second,
		DeadPeerTimeout:     30 * time.Minute,
		GossipProbeInterval: time.Second,
		GossipProbeTimeout:  500 * time.Millisecond,
		GossipInterval:      200 * time.Millisecond,
		GossipSuspicionMult: 4,
		JoinRetry:           time.Second,
		ReconnectInterval:   10 * time.Second,
		GossipKeyReload:     10 * time.Second,
		AdminFileReload:     5 * time.Second,
		ProofTimeout:        5 * time.Second,
		ProofRetry:          10 * time.Second,
	}
}

// FastTiming is for tests and the sandbox on loopback: elections and
// failure detection within a second or two, under the race detector too.
func FastTiming() Timing {
	return Timing{
		RaftHeartbeat:       500 * time.Millisecond,
		RaftElection:        500 * time.Millisecond,
		RaftLeaderLease:     250 * time.Millisecond,
		RaftCommitTimeout:   50 * time.Millisecond,
		SnapshotInterval:    2 * time.Second,
		SnapshotThreshold:   64,
		TrailingLogs:        32,
		ApplyTimeout:        5 * time.Second,
		ReconcileInterval:   200 * time.Millisecond,
		PromoteAfter:        500 * time.Millisecond,
		DeadPeerTimeout:     3 * time.Second,
		GossipProbeInterval: 200 * time.Millisecond,
		GossipProbeTimeout:  100 * time.Millisecond,
		GossipInterval:      50 * time.Millisecond,
		GossipSuspicionMult: 2,
		JoinRetry:           100 * time.Millisecond,
		ReconnectInterval:   500 * time.Millisecond,
		GossipKeyReload:     200 * time.Millisecond,
		AdminFileReload:     100 * time.Millisecond,
		ProofTimeout:        2 * time.Second,
		ProofRetry:          500 * time.Millisecond,
	}
}

// SharedMachineTiming is FastTiming for peers that share a busy machine
// with their backends and clients (the sandbox, the in-process test
// clusters): Raft's production heartbeat, election and lease timeouts,
// and gossip that waits 1-2 s before it calls a peer dead. With
// FastTiming's 250 ms lease and 100 ms probes, two cores shared with other
// jobs (the race detector on) kept in-process peers in election storms,
// without write leases, and declaring live peers dead.
func SharedMachineTiming() Timing {
	t := FastTiming()
	d := DefaultTiming()
	t.RaftHeartbeat, t.RaftElection, t.RaftLeaderLease = d.RaftHeartbeat, d.RaftElection, d.RaftLeaderLease
	t.GossipProbeInterval = 500 * time.Millisecond
	t.GossipProbeTimeout = 300 * time.Millisecond
	t.GossipSuspicionMult = 3
	return t
}

// withDefaults fills zero fields from DefaultTiming.
func (t Timing) withDefaults() Timing {
	d := DefaultTiming()
	fill := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	fill(&t.RaftHeartbeat, d.RaftHeartbeat)
	fill(&t.RaftElection, d.RaftElection)
	fill(&t.RaftLeaderLease, d.RaftLeaderLease)
	fill(&t.RaftCommitTimeout, d.RaftCommitTimeout)
	fill(&t.SnapshotInterval, d.SnapshotInterval)
	fill(&t.ApplyTimeout, d.ApplyTimeout)
	fill(&t.ReconcileInterval, d.ReconcileInterval)
	fill(&t.PromoteAfter, d.PromoteAfter)
	fill(&t.DeadPeerTimeout, d.DeadPeerTimeout)
	fill(&t.GossipProbeInterval, d.GossipProbeInterval)
	fill(&t.GossipProbeTimeout, d.GossipProbeTimeout)
	fill(&t.GossipInterval, d.GossipInterval)
	fill(&t.JoinRetry, d.JoinRetry)
	fill(&t.ReconnectInterval, d.ReconnectInterval)
	fill(&t.GossipKeyReload, d.GossipKeyReload)
	fill(&t.AdminFileReload, d.AdminFileReload)
	fill(&t.ProofTimeout, d.ProofTimeout)
	fill(&t.ProofRetry, d.ProofRetry)
	if t.SnapshotThreshold == 0 {
		t.SnapshotThreshold = d.SnapshotThreshold
	}
	if t.TrailingLogs == 0 {
		t.TrailingLogs = d.TrailingLogs
	}
	if t.GossipSuspicionMult <= 0 {
		t.GossipSuspicionMult = d.GossipSuspicionMult
	}
	return t
}

func (c *Config) setDefaults() {
	c.Timing = c.Timing.withDefaults()
	c.Admin = c.Admin.withDefaults(c.Timing.ApplyTimeout)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a configuration that cannot work, saying which setting
// to change.
func (c *Config) Validate() error {
	if c.Name == "" {
		return errors.New("node: a peer needs a name (--name); it must stay the same across restarts")
	}
	if c.DataDir == "" {
		return errors.New("node: a data directory is required (--data-dir)")
	}
	if c.KafkaListen == "" && c.KafkaListener == nil {
		return errors.New("node: the kafka listen address is empty (--kafka-listen)")
	}
	if c.RaftListen == "" {
		return errors.New("node: the peer port address is empty (--raft-listen)")
	}
	if c.GossipListen == "" {
		return errors.New("node: the gossip address is empty (--gossip-listen)")
	}
	if c.BootstrapExpect < 0 {
		return fmt.Errorf("node: bootstrap-expect %d is negative", c.BootstrapExpect)
	}
	if err := c.KafkaLimits.Validate(); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if err := c.KafkaAuthz.Validate(); err != nil {
		return fmt.Errorf("node: --kafka-super-users: %w", err)
	}
	if err := c.KafkaSecurity.Validate(); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if c.BackendBrokerTimeout < 0 {
		return fmt.Errorf("node: backend broker timeout %v is negative (0 is the default)", c.BackendBrokerTimeout)
	}
	if c.BackendMaxResponseBytes < 0 || c.BackendMaxResponseBytes > kafka.MaxResponseLimit {
		return fmt.Errorf("node: backend max response bytes %d: want 0 (default %d) up to %d",
			c.BackendMaxResponseBytes, kafka.DefaultMaxResponseBytes, kafka.MaxResponseLimit)
	}
	if err := c.Admin.validate(); err != nil {
		return err
	}
	if (c.AdminTLSCertFile == "") != (c.AdminTLSKeyFile == "") {
		return errors.New("node: admin TLS needs both --admin-tls-cert-file and --admin-tls-key-file")
	}
	if err := DefaultMigrationConfig().Validate(c.writeLease()); err != nil {
		return fmt.Errorf("node: write lease %v: %w; want at most %v", c.WriteLease, err, maxWriteLease(DefaultMigrationConfig().FenceTimeout))
	}
	if c.BootstrapExpect == 0 && len(c.Join) == 0 {
		return errors.New("node: nothing to form or join: pass --bootstrap-expect N to form a new cluster or --join ADDR to join one")
	}
	if (c.PeerServerTLS == nil) != (c.PeerClientTLS == nil) {
		return errors.New("node: peer TLS needs both the server and the client settings")
	}
	for _, name := range c.AllowPeers {
		if err := (&fsm.AllowPeer{Name: name}).Validate(); err != nil {
			return fmt.Errorf("node: --allow-peer: %w", err)
		}
	}
	for _, b := range c.LocalBrokers {
		if b.Cluster == "" || b.BrokerID < 0 {
			return fmt.Errorf("node: local broker %q:%d: want CLUSTER:BROKER_ID with a non-negative id", b.Cluster, b.BrokerID)
		}
	}
	return nil
}

// writeLease is the lease duration in force: 0 when disabled.
func (c *Config) writeLease() time.Duration {
	switch {
	case c.WriteLease < 0:
		return 0
	case c.WriteLease == 0:
		return DefaultWriteLease
	}
	return c.WriteLease
}

// maxWriteLease is the longest lease whose margin still ends before fence:
// l + l/10 + 1s < fence.
func maxWriteLease(fence time.Duration) time.Duration {
	l := (fence - time.Second) * 10 / 11
	for l > 0 && l+leaseMargin(l) >= fence {
		l--
	}
	return l.Truncate(time.Millisecond)
}

// advertised returns the address to advertise for a listener bound at
// bound: adv when set (its port 0 replaced by the bound port), else the
// bound address, which must then name a concrete host.
func advertised(what, adv string, bound net.Addr) (string, error) {
	bhost, bport, err := net.SplitHostPort(bound.String())
	if err != nil {
		return "", fmt.Errorf("node: %s: bound address %s: %w", what, bound, err)
	}
	if adv == "" {
		adv = bound.String()
	}
	host, port, err := net.SplitHostPort(adv)
	if err != nil {
		return "", fmt.Errorf("node: %s %q is not host:port: %w", what, adv, err)
	}
	if port == "0" {
		port = bport
	}
	if host == "" {
		host = bhost
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "", fmt.Errorf("node: %s %q is a wildcard address; set the advertised address to one that clients and peers can reach", what, adv)
	}
	return net.JoinHostPort(host, port), nil
}
