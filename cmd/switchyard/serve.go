package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/kafka"
	"github.com/switchyard-proxy/switchyard/node"
	"github.com/switchyard-proxy/switchyard/transport"
)

// serveConfig is one peer's configuration. Every field is a flag and a key
// of the JSON config file (the flag name with _ for -); flags given on the
// command line win over the file, which wins over the defaults.
type serveConfig struct {
	Name            string   `json:"name"`
	DataDir         string   `json:"data_dir"`
	Region          string   `json:"region"`
	KafkaListen     string   `json:"kafka_listen"`
	KafkaAdvertise  string   `json:"kafka_advertise"`
	AdminListen     string   `json:"admin_listen"`
	AdminTokenFile  string   `json:"admin_token_file"`
	RaftListen      string   `json:"raft_listen"`
	RaftAdvertise   string   `json:"raft_advertise"`
	GossipListen    string   `json:"gossip_listen"`
	GossipAdvertise string   `json:"gossip_advertise"`
	GossipKeyFile   string   `json:"gossip_key_file"`
	AllowPeers      []string `json:"allow_peer"`
	AdmitUnproven   bool     `json:"admit_unproven_peers"`
	Join            []string `json:"join"`
	BootstrapExpect int      `json:"bootstrap_expect"`
	LocalBrokers    []string `json:"local_broker"`
	PeerTLSCertFile string   `json:"peer_tls_cert_file"`
	PeerTLSKeyFile  string   `json:"peer_tls_key_file"`
	PeerTLSCAFile   string   `json:"peer_tls_ca_file"`
	LeaveOnStop     bool     `json:"leave_on_stop"`
	DeadPeerTimeout string   `json:"dead_peer_timeout"`
	WriteLease      string   `json:"write_lease"`
	ClusterID       string   `json:"cluster_id"`
	MetadataRefresh string   `json:"metadata_refresh"`
	// All-topics Metadata from the refresh loop's snapshot (docs/benchmarks.md).
	MetadataListFromSnapshot bool   `json:"metadata_list_from_snapshot"`
	MaxFrameBytes            int    `json:"max_frame_bytes"`
	MaxTopicSeries           int    `json:"max_topic_series"`
	LogLevel                 string `json:"log_level"`

	// Per-client series cap and the consumer-group lag poll (docs/metrics.md).
	MetricsMaxClients int    `json:"metrics_max_clients"`
	GroupLagInterval  string `json:"group_lag_interval"`
	GroupLagMaxGroups int    `json:"group_lag_max_groups"`

	// Admin API tokens with roles, TLS and the audit log (node/http_auth.go).
	AdminTokensFile  string `json:"admin_tokens_file"`
	AdminTLSCertFile string `json:"admin_tls_cert_file"`
	AdminTLSKeyFile  string `json:"admin_tls_key_file"`
	AdminAuditLog    string `json:"admin_audit_log"`

	// Insecure allows control-plane listeners without protection off
	// loopback (see exposures).
	Insecure bool `json:"insecure"`

	// Client connection limits (kafka.Limits), named after Kafka's.
	KafkaMaxConnections            int     `json:"kafka_max_connections"`
	KafkaMaxConnectionsPerIP       int     `json:"kafka_max_connections_per_ip"`
	KafkaMaxConnectionCreationRate float64 `json:"kafka_max_connection_creation_rate"`
	KafkaConnectionsMaxIdle        string  `json:"kafka_connections_max_idle"`
	KafkaParkIdleAfter             string  `json:"kafka_park_idle_after"`
	KafkaUpstreamIdleClose         string  `json:"kafka_upstream_idle_close"`
	KafkaFrameReadTimeout          string  `json:"kafka_frame_read_timeout"`
	KafkaQueuedMaxRequestBytes     int64   `json:"kafka_queued_max_request_bytes"`

	// The Kafka listener's TLS and SASL (serve_security.go).
	kafkaSecurityFlags

	// Tables the data plane keys by what clients send (kafka.Limits); 0
	// (or "" for a duration) takes kafka's default.
	KafkaCoordinatorCacheSize        int    `json:"kafka_coordinator_cache_size"`
	KafkaCoordinatorCacheTTL         string `json:"kafka_coordinator_cache_ttl"`
	KafkaProducerIDMappings          int    `json:"kafka_producer_id_mappings"`
	KafkaProducerIDIdle              string `json:"kafka_producer_id_idle"`
	KafkaProducerIDProtect           string `json:"kafka_producer_id_protect"`
	KafkaMaxProducerIDsPerConnection int    `json:"kafka_max_producer_ids_per_connection"`
	// Client fetch sessions (KIP-227) a peer holds; 0 turns them off, as
	// Kafka's max.incremental.fetch.session.cache.slots does.
	KafkaFetchSessionSlots int `json:"kafka_fetch_session_slots"`
	// The proxy's own fetch sessions towards the backends for its
	// clients' sessions (kafka.Limits.BackendFetchSessions); on by default.
	KafkaBackendFetchSessions bool `json:"kafka_backend_fetch_sessions"`

	// Authorization (kafka.AuthzConfig), in force once the listener
	// authenticates: Kafka's super.users and allow.everyone.if.no.acl.found.
	KafkaSuperUsers   []string `json:"kafka_super_users"`
	KafkaAllowIfNoACL bool     `json:"kafka_allow_if_no_acl"`

	// Exchanges with backend brokers (kafka.BackendConfig); 0 or "" takes
	// kafka's default.
	BackendBrokerTimeout    string `json:"backend_broker_timeout"`
	BackendMaxResponseBytes int    `json:"backend_max_response_bytes"`

	// Admin listener limits (node.AdminLimits).
	AdminReadHeaderTimeout string `json:"admin_read_header_timeout"`
	AdminReadTimeout       string `json:"admin_read_timeout"`
	AdminWriteTimeout      string `json:"admin_write_timeout"`
	AdminIdleTimeout       string `json:"admin_idle_timeout"`
	AdminMaxHeaderBytes    int    `json:"admin_max_header_bytes"`
	AdminMaxBodyBytes      int64  `json:"admin_max_body_bytes"`
}

func defaultServeConfig() serveConfig {
	admin := node.DefaultAdminLimits()
	return serveConfig{
		KafkaListen:     "127.0.0.1:9092",
		AdminListen:     "127.0.0.1:18080",
		RaftListen:      "127.0.0.1:17000",
		GossipListen:    "127.0.0.1:17946",
		LeaveOnStop:     true,
		DeadPeerTimeout: node.DefaultTiming().DeadPeerTimeout.String(),
		WriteLease:      node.DefaultWriteLease.String(),
		MetadataRefresh: "10s",
		LogLevel:        "info",
		// All-topics Metadata from the snapshot (node.Config.MetadataListFromBackend).
		MetadataListFromSnapshot: true,

		MetricsMaxClients: kafka.DefaultMaxClientSeries,
		GroupLagInterval:  node.DefaultGroupLagInterval.String(),
		GroupLagMaxGroups: node.DefaultGroupLagMaxGroups,

		KafkaConnectionsMaxIdle:    kafka.DefaultConnectionsMaxIdle.String(),
		KafkaParkIdleAfter:         kafka.DefaultParkIdleAfter.String(),
		KafkaUpstreamIdleClose:     kafka.DefaultUpstreamIdleClose.String(),
		KafkaFrameReadTimeout:      kafka.DefaultFrameReadTimeout.String(),
		KafkaQueuedMaxRequestBytes: kafka.DefaultQueuedMaxRequestBytes,
		KafkaFetchSessionSlots:     kafka.DefaultFetchSessionSlots,
		KafkaBackendFetchSessions:  true,

		AdminReadHeaderTimeout: admin.ReadHeaderTimeout.String(),
		AdminReadTimeout:       admin.ReadTimeout.String(),
		AdminWriteTimeout:      admin.WriteTimeout.String(),
		AdminIdleTimeout:       admin.IdleTimeout.String(),
		AdminMaxHeaderBytes:    admin.MaxHeaderBytes,
		AdminMaxBodyBytes:      admin.MaxBodyBytes,
	}
}

// listFlag is a repeatable flag that also splits on commas.
type listFlag struct{ v *[]string }

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

func (l listFlag) Set(s string) error {
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*l.v = append(*l.v, x)
		}
	}
	return nil
}

// serveFlags binds every serveConfig field to a flag on fs, with cfg's
// current values as the defaults shown by -h.
func serveFlags(fs *flag.FlagSet, cfg *serveConfig) {
	fs.StringVar(&cfg.Name, "name", cfg.Name, "peer name: unique, stable across restarts (its Raft id and gossip name); default: the host name")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the Raft log, stable store and snapshots (required)")
	fs.StringVar(&cfg.Region, "region", cfg.Region, "region/AZ, presented to clients as the broker rack")
	fs.StringVar(&cfg.KafkaListen, "kafka-listen", cfg.KafkaListen, "Kafka listen address")
	fs.StringVar(&cfg.KafkaAdvertise, "kafka-advertise", cfg.KafkaAdvertise, "Kafka address clients are told (default: the listen address)")
	fs.StringVar(&cfg.AdminListen, "admin-listen", cfg.AdminListen, "admin HTTP API address (\"\" for none)")
	fs.StringVar(&cfg.AdminTokenFile, "admin-token-file", cfg.AdminTokenFile, "file holding a bearer token with the admin role for the admin API's /v1/ endpoints (see also --admin-tokens-file)")
	fs.StringVar(&cfg.AdminTokensFile, "admin-tokens-file", cfg.AdminTokensFile, "file of admin API tokens with roles, one \"ROLE TOKEN [NAME]\" per line (roles read, operator, admin); re-read when it changes")
	fs.StringVar(&cfg.AdminTLSCertFile, "admin-tls-cert-file", cfg.AdminTLSCertFile, "PEM certificate (chain) for TLS on the admin API; reloaded when it changes")
	fs.StringVar(&cfg.AdminTLSKeyFile, "admin-tls-key-file", cfg.AdminTLSKeyFile, "PEM key for --admin-tls-cert-file")
	fs.StringVar(&cfg.AdminAuditLog, "admin-audit-log", cfg.AdminAuditLog, "file every admin API write is appended to as a JSON line (secrets redacted); writes are logged at info either way")
	fs.StringVar(&cfg.RaftListen, "raft-listen", cfg.RaftListen, "peer port (Raft and peer RPC) listen address")
	fs.StringVar(&cfg.RaftAdvertise, "raft-advertise", cfg.RaftAdvertise, "peer port address other peers dial (default: the listen address)")
	fs.StringVar(&cfg.GossipListen, "gossip-listen", cfg.GossipListen, "gossip (memberlist, TCP and UDP) listen address")
	fs.StringVar(&cfg.GossipAdvertise, "gossip-advertise", cfg.GossipAdvertise, "gossip address other peers use (default: the listen address)")
	fs.StringVar(&cfg.GossipKeyFile, "gossip-key-file", cfg.GossipKeyFile, "file of base64 gossip encryption keys (16, 24 or 32 bytes), one per line, the first used to send; re-read every 10s for rotation")
	fs.Var(listFlag{&cfg.AllowPeers}, "allow-peer", "peer name admitted without a peer certificate naming it (repeatable); the replicated list is managed with ctl peers allow")
	fs.BoolVar(&cfg.AdmitUnproven, "admit-unproven-peers", cfg.AdmitUnproven, "admit every gossip member as a peer without proof of its name (insecure: development and closed networks only)")
	fs.Var(listFlag{&cfg.Join}, "join", "gossip address of a running peer to join (repeatable or comma-separated)")
	fs.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", cfg.BootstrapExpect, "form a new cluster once this many peers started with the same value see each other (start exactly N peers with it; others --join)")
	fs.Var(listFlag{&cfg.LocalBrokers}, "local-broker", "CLUSTER:BROKER_ID of a backend broker on this host (repeatable); its partitions are presented as led by this peer")
	fs.StringVar(&cfg.PeerTLSCertFile, "peer-tls-cert-file", cfg.PeerTLSCertFile, "PEM certificate for mutual TLS on the peer port")
	fs.StringVar(&cfg.PeerTLSKeyFile, "peer-tls-key-file", cfg.PeerTLSKeyFile, "PEM key for --peer-tls-cert-file")
	fs.StringVar(&cfg.PeerTLSCAFile, "peer-tls-ca-file", cfg.PeerTLSCAFile, "PEM CA bundle that signs every peer's certificate")
	fs.BoolVar(&cfg.Insecure, "insecure", cfg.Insecure, "allow the peer port without TLS, gossip without a key or the admin API without a token and TLS on a non-loopback address (only on a network where every host may control the cluster)")
	fs.BoolVar(&cfg.LeaveOnStop, "leave-on-stop", cfg.LeaveOnStop, "announce a clean stop to gossip so the other peers stop presenting this one at once")
	fs.StringVar(&cfg.DeadPeerTimeout, "dead-peer-timeout", cfg.DeadPeerTimeout, "how long a peer may be dead before the leader removes it from the Raft configuration")
	fs.StringVar(&cfg.WriteLease, "write-lease", cfg.WriteLease, "how long a grant from the raft leader lets this peer forward Produce: a peer cut off from the leader stops writing within it, and a migration's switch waits it out for a peer that is down (same value on every peer; at most 17.27s; 0 disables it: Produce never waits on the control plane, and migrations and offset resets need every registered peer to confirm their fence)")
	fs.StringVar(&cfg.ClusterID, "cluster-id", cfg.ClusterID, "cluster id presented to clients (default: the backend's)")
	fs.StringVar(&cfg.MetadataRefresh, "metadata-refresh", cfg.MetadataRefresh, "backend metadata refresh period")
	fs.BoolVar(&cfg.MetadataListFromSnapshot, "metadata-list-from-snapshot", cfg.MetadataListFromSnapshot, "answer all-topics Metadata from each cluster's last refresh instead of asking the backends (on by default; =false asks the backends each time). Topics created or deleted through any peer show within a gossip round; ones created at the backend directly, after the next --metadata-refresh")
	fs.IntVar(&cfg.MaxFrameBytes, "max-frame-bytes", cfg.MaxFrameBytes, "largest client request accepted (default 104857600)")
	fs.IntVar(&cfg.MaxTopicSeries, "max-topic-series", cfg.MaxTopicSeries, "per-topic metric series cap (default 1000)")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.IntVar(&cfg.MetricsMaxClients, "metrics-max-clients", cfg.MetricsMaxClients, "distinct (client.id, principal) pairs with metric series of their own; more are counted as \"(other)\"")
	fs.StringVar(&cfg.GroupLagInterval, "group-lag-interval", cfg.GroupLagInterval, "how often the raft leader polls consumer-group lag for switchyard_group_lag_records, 0 turns it off")
	fs.IntVar(&cfg.GroupLagMaxGroups, "group-lag-max-groups", cfg.GroupLagMaxGroups, "consumer groups with lag series of their own (the most lagging); the others are summed per topic as group \"(other)\"")

	fs.IntVar(&cfg.KafkaMaxConnections, "kafka-max-connections", cfg.KafkaMaxConnections, "most open client connections; more are refused (Kafka's max.connections; 0: unlimited)")
	fs.IntVar(&cfg.KafkaMaxConnectionsPerIP, "kafka-max-connections-per-ip", cfg.KafkaMaxConnectionsPerIP, "most open client connections from one address (max.connections.per.ip; 0: unlimited)")
	fs.Float64Var(&cfg.KafkaMaxConnectionCreationRate, "kafka-max-connection-creation-rate", cfg.KafkaMaxConnectionCreationRate, "most new client connections per second, burst of one second's worth; more are refused (max.connection.creation.rate; 0: unlimited)")
	fs.StringVar(&cfg.KafkaConnectionsMaxIdle, "kafka-connections-max-idle", cfg.KafkaConnectionsMaxIdle, "close a client connection with no request for this long and none in flight (connections.max.idle.ms; 0: never)")
	fs.StringVar(&cfg.KafkaParkIdleAfter, "kafka-park-idle-after", cfg.KafkaParkIdleAfter, "hold a plaintext client connection with no request for this long, and none in flight, without a goroutine of its own until its next request (0: never)")
	fs.StringVar(&cfg.KafkaUpstreamIdleClose, "kafka-upstream-idle-close", cfg.KafkaUpstreamIdleClose, "close the backend connections of a parked client connection with no request for this long; its next request dials them again (0: never)")
	fs.StringVar(&cfg.KafkaFrameReadTimeout, "kafka-frame-read-timeout", cfg.KafkaFrameReadTimeout, "how long a client request may take to arrive once it has started (0: no limit)")
	fs.Int64Var(&cfg.KafkaQueuedMaxRequestBytes, "kafka-queued-max-request-bytes", cfg.KafkaQueuedMaxRequestBytes, "request bytes held in memory across client connections; past it reading pauses (queued.max.request.bytes; -1: unbounded)")
	fs.IntVar(&cfg.KafkaCoordinatorCacheSize, "kafka-coordinator-cache-size", cfg.KafkaCoordinatorCacheSize, "most group and transaction coordinators cached from FindCoordinator answers, over every backend cluster, and most group members' client hosts remembered (0: 10000)")
	fs.StringVar(&cfg.KafkaCoordinatorCacheTTL, "kafka-coordinator-cache-ttl", cfg.KafkaCoordinatorCacheTTL, "drop a cached coordinator or member host unused for this long (0: 5m)")
	fs.IntVar(&cfg.KafkaProducerIDMappings, "kafka-producer-id-mappings", cfg.KafkaProducerIDMappings, "most virtual-to-real producer id mappings held (0: 262144)")
	fs.StringVar(&cfg.KafkaProducerIDIdle, "kafka-producer-id-idle", cfg.KafkaProducerIDIdle, "drop a producer id mapping unused for this long (0: 1h)")
	fs.StringVar(&cfg.KafkaProducerIDProtect, "kafka-producer-id-protect", cfg.KafkaProducerIDProtect, "a producer id mapping used within this window is never evicted; a new one is refused while the table is full of them (0: 1m)")
	fs.IntVar(&cfg.KafkaFetchSessionSlots, "kafka-fetch-session-slots", cfg.KafkaFetchSessionSlots, "most client fetch sessions (KIP-227) held; with one a consumer lists only the partitions that changed in each fetch (max.incremental.fetch.session.cache.slots; 0: none, every fetch lists every partition)")
	fs.BoolVar(&cfg.KafkaBackendFetchSessions, "kafka-backend-fetch-sessions", cfg.KafkaBackendFetchSessions, "fetch from the backends in fetch sessions (KIP-227) of the proxy's own for each client session, so a backend broker is asked only the partitions that changed for it (on by default; =false lists every partition of the client's session in every backend fetch)")
	fs.Var(listFlag{&cfg.KafkaSuperUsers}, "kafka-super-users", "principals allowed everything whatever the ACLs say, `User:NAME` (comma-separated or repeated; Kafka's super.users)")
	fs.BoolVar(&cfg.KafkaAllowIfNoACL, "kafka-allow-if-no-acl", cfg.KafkaAllowIfNoACL, "allow a request on a resource no ACL names (Kafka's allow.everyone.if.no.acl.found); by default it is denied")
	addKafkaSecurityFlags(fs, &cfg.kafkaSecurityFlags)
	fs.IntVar(&cfg.KafkaMaxProducerIDsPerConnection, "kafka-max-producer-ids-per-connection", cfg.KafkaMaxProducerIDsPerConnection, "most distinct producer ids (and epochs) one client connection may use (0: 64)")

	fs.StringVar(&cfg.BackendBrokerTimeout, "backend-broker-timeout", cfg.BackendBrokerTimeout, "bound on one control exchange with a backend broker (versions, metadata, coordinator and producer id lookups), dial included (0: 5s)")
	fs.IntVar(&cfg.BackendMaxResponseBytes, "backend-max-response-bytes", cfg.BackendMaxResponseBytes, fmt.Sprintf("largest backend broker response accepted (0: %d; at most %d)", kafka.DefaultMaxResponseBytes, kafka.MaxResponseLimit))

	fs.StringVar(&cfg.AdminReadHeaderTimeout, "admin-read-header-timeout", cfg.AdminReadHeaderTimeout, "admin API: time to read a request's headers")
	fs.StringVar(&cfg.AdminReadTimeout, "admin-read-timeout", cfg.AdminReadTimeout, "admin API: time to read a whole request, body included")
	fs.StringVar(&cfg.AdminWriteTimeout, "admin-write-timeout", cfg.AdminWriteTimeout, "admin API: time from a request's headers to the end of its response (raised to the 10s a write may wait for the leader plus --admin-read-timeout)")
	fs.StringVar(&cfg.AdminIdleTimeout, "admin-idle-timeout", cfg.AdminIdleTimeout, "admin API: close a keep-alive connection idle this long")
	fs.IntVar(&cfg.AdminMaxHeaderBytes, "admin-max-header-bytes", cfg.AdminMaxHeaderBytes, "admin API: largest request header block")
	fs.Int64Var(&cfg.AdminMaxBodyBytes, "admin-max-body-bytes", cfg.AdminMaxBodyBytes, "admin API: largest request body; a larger one is answered 413 (at most 1048576)")
}

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseServe(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.LogLevel)
	if err != nil {
		return err
	}
	ncfg, err := cfg.nodeConfig()
	if err != nil {
		return err
	}
	for _, e := range cfg.exposures(ncfg) {
		log.Warn("--insecure: listening without protection on a non-loopback address; any host that reaches it can control the cluster", "exposed", e)
	}
	ncfg.Logger = log
	n, err := node.New(ncfg)
	if err != nil {
		return err
	}
	log.Info("switchyard peer starting", "version", version, "name", ncfg.Name, "kafka", n.KafkaAddr(), "admin", n.AdminAddr(),
		"raft", n.RaftAddr(), "gossip", n.GossipAddr())
	return n.Run(ctx)
}

// parseServe builds the configuration from the defaults, the config file
// and the flags in args.
func parseServe(args []string, stderr io.Writer) (serveConfig, error) {
	cfg := defaultServeConfig()
	if path, ok, err := configFileArg(args); err != nil {
		return cfg, err
	} else if ok {
		if err := loadConfigFile(path, &cfg); err != nil {
			return cfg, err
		}
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", "", "JSON config file; its keys are the flag names with _ for - (flags win)")
	// A list flag given on the command line replaces the file's list.
	fileJoin, fileBrokers, fileAllow := cfg.Join, cfg.LocalBrokers, cfg.AllowPeers
	cfg.Join, cfg.LocalBrokers, cfg.AllowPeers = nil, nil, nil
	serveFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["join"] {
		cfg.Join = fileJoin
	}
	if !set["local-broker"] {
		cfg.LocalBrokers = fileBrokers
	}
	if !set["allow-peer"] {
		cfg.AllowPeers = fileAllow
	}
	return cfg, nil
}

// configFileArg finds --config FILE (or -config, =FILE) among args, so the
// file can be read before the flags that override it are parsed.
func configFileArg(args []string) (string, bool, error) {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasVal {
			return val, true, nil
		}
		if i+1 >= len(args) {
			return "", false, errors.New("serve: --config needs a file name")
		}
		return args[i+1], true, nil
	}
	return "", false, nil
}

// loadConfigFile reads a JSON config over cfg; unknown keys are errors so a
// typo never silently falls back to a default.
func loadConfigFile(path string, cfg *serveConfig) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("serve: read config: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return fmt.Errorf("serve: config %s: %w", path, err)
	}
	return nil
}

// nodeConfig checks the flat configuration and turns it into node.Config.
func (c *serveConfig) nodeConfig() (node.Config, error) {
	var nc node.Config
	name := c.Name
	if name == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return nc, errors.New("serve: no --name given and the host name is unknown")
		}
		name = h
	}
	if c.DataDir == "" {
		return nc, errors.New("serve: --data-dir is required: the peer keeps its Raft state there")
	}
	groupLag, err := time.ParseDuration(c.GroupLagInterval)
	if err != nil || groupLag < 0 {
		return nc, fmt.Errorf("serve: --group-lag-interval %q: want a duration of 0 (off) or more, such as 30s", c.GroupLagInterval)
	}
	refresh, err := time.ParseDuration(c.MetadataRefresh)
	if err != nil || refresh <= 0 {
		return nc, fmt.Errorf("serve: --metadata-refresh %q: want a positive duration such as 10s", c.MetadataRefresh)
	}
	dead, err := time.ParseDuration(c.DeadPeerTimeout)
	if err != nil || dead <= 0 {
		return nc, fmt.Errorf("serve: --dead-peer-timeout %q: want a positive duration such as 30m", c.DeadPeerTimeout)
	}
	lease, err := time.ParseDuration(c.WriteLease)
	if err != nil || lease < 0 {
		return nc, fmt.Errorf("serve: --write-lease %q: want a duration such as 10s (0 disables the lease)", c.WriteLease)
	}
	if lease == 0 {
		lease = -1 // node.Config: negative disables, 0 is the default
	}
	if c.MaxFrameBytes < 0 || c.MaxFrameBytes > 1<<30 {
		return nc, fmt.Errorf("serve: --max-frame-bytes %d: want 0 (default) up to 1073741824", c.MaxFrameBytes)
	}
	limits, err := c.kafkaLimits()
	if err != nil {
		return nc, err
	}
	admin, err := c.adminLimits()
	if err != nil {
		return nc, err
	}
	security, err := c.kafkaSecurity()
	if err != nil {
		return nc, err
	}
	brokerTimeout, err := defaultableDuration("backend-broker-timeout", c.BackendBrokerTimeout)
	if err != nil {
		return nc, err
	}
	if c.BackendMaxResponseBytes < 0 || c.BackendMaxResponseBytes > kafka.MaxResponseLimit {
		return nc, fmt.Errorf("serve: --backend-max-response-bytes %d: want 0 (default %d) up to %d", c.BackendMaxResponseBytes, kafka.DefaultMaxResponseBytes, kafka.MaxResponseLimit)
	}
	var brokers []fsm.BrokerRef
	for _, s := range c.LocalBrokers {
		b, err := node.ParseBrokerRef(s)
		if err != nil {
			return nc, fmt.Errorf("serve: %w", err)
		}
		brokers = append(brokers, b)
	}
	token := ""
	if c.AdminTokenFile != "" {
		b, err := os.ReadFile(c.AdminTokenFile)
		if err != nil {
			return nc, fmt.Errorf("serve: admin token: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return nc, fmt.Errorf("serve: admin token file %s is empty", c.AdminTokenFile)
		}
	}
	timing := node.DefaultTiming()
	timing.DeadPeerTimeout = dead
	nc = node.Config{
		Name:            name,
		DataDir:         c.DataDir,
		Region:          c.Region,
		Version:         version,
		KafkaListen:     c.KafkaListen,
		KafkaAdvertise:  c.KafkaAdvertise,
		AdminListen:     c.AdminListen,
		AdminToken:      token,
		Admin:           admin,
		RaftListen:      c.RaftListen,
		RaftAdvertise:   c.RaftAdvertise,
		GossipListen:    c.GossipListen,
		GossipAdvertise: c.GossipAdvertise,
		GossipKeyFile:   c.GossipKeyFile,
		AllowPeers:      c.AllowPeers,
		AdmitUnproven:   c.AdmitUnproven,
		Join:            c.Join,
		BootstrapExpect: c.BootstrapExpect,
		LocalBrokers:    brokers,
		LeaveOnStop:     c.LeaveOnStop,
		WriteLease:      lease,
		ClusterID:       c.ClusterID,
		MetadataRefresh: refresh,

		MetadataListFromBackend: !c.MetadataListFromSnapshot,
		MaxFrameBytes:           int32(c.MaxFrameBytes),
		MaxTopicSeries:          c.MaxTopicSeries,
		KafkaLimits:             limits,
		KafkaAuthz:              kafka.AuthzConfig{SuperUsers: c.KafkaSuperUsers, AllowIfNoACL: c.KafkaAllowIfNoACL},
		KafkaSecurity:           security,
		Timing:                  timing,

		BackendBrokerTimeout:    brokerTimeout,
		BackendMaxResponseBytes: int32(c.BackendMaxResponseBytes),
	}
	nc.MaxClientSeries = c.MetricsMaxClients
	nc.GroupLagInterval, nc.GroupLagMaxGroups = groupLag, c.GroupLagMaxGroups
	nc.AdminTokensFile, nc.AdminAuditLog = c.AdminTokensFile, c.AdminAuditLog
	nc.AdminTLSCertFile, nc.AdminTLSKeyFile = c.AdminTLSCertFile, c.AdminTLSKeyFile
	if c.PeerTLSCertFile != "" || c.PeerTLSKeyFile != "" || c.PeerTLSCAFile != "" {
		srv, cli, err := peerTLS(c.PeerTLSCertFile, c.PeerTLSKeyFile, c.PeerTLSCAFile)
		if err != nil {
			return nc, err
		}
		// The other peers hold this peer's name to its certificate: fail
		// here, not with every connection refused.
		leaf := srv.Certificates[0].Leaf
		if leaf == nil {
			if leaf, err = x509.ParseCertificate(srv.Certificates[0].Certificate[0]); err != nil {
				return nc, fmt.Errorf("serve: --peer-tls-cert-file %s: %w", c.PeerTLSCertFile, err)
			}
		}
		if err := transport.CheckPeerName(leaf, name); err != nil {
			return nc, fmt.Errorf("serve: --peer-tls-cert-file %s: %w: issue it with the peer name as common name or DNS SAN", c.PeerTLSCertFile, err)
		}
		nc.PeerServerTLS, nc.PeerClientTLS = srv, cli
	}
	if exposed := c.exposures(nc); len(exposed) > 0 && !c.Insecure {
		return nc, fmt.Errorf("serve: refusing to listen without protection on a non-loopback address: %s. "+
			"Bind these to 127.0.0.1 on a single host, add the protection named, or pass --insecure (config: \"insecure\": true) "+
			"if every host that can reach them may control the cluster", strings.Join(exposed, "; "))
	}
	if err := nc.Validate(); err != nil {
		return nc, err
	}
	return nc, nil
}

// exposures lists the control-plane listeners of nc that accept other
// hosts without protection. The peer port without TLS is full control of
// the cluster (a forwarded write is applied without the admin token, and a
// claimed name is all a sender shows); gossip without a key lets anyone
// join or announce false addresses; the admin API without a token takes
// writes from anyone, and without TLS its tokens travel in clear text, so
// off loopback the admin API needs both a token and TLS.
func (c *serveConfig) exposures(nc node.Config) []string {
	var out []string
	if nc.PeerServerTLS == nil && !loopbackAddr(nc.RaftListen) {
		out = append(out, fmt.Sprintf("the peer port %s has no TLS (set --peer-tls-cert-file, --peer-tls-key-file and --peer-tls-ca-file)", nc.RaftListen))
	}
	if c.GossipKeyFile == "" && !loopbackAddr(nc.GossipListen) {
		out = append(out, fmt.Sprintf("gossip %s has no encryption key (set --gossip-key-file)", nc.GossipListen))
	}
	if nc.AdminListen != "" && !loopbackAddr(nc.AdminListen) {
		if nc.AdminToken == "" && nc.AdminTokensFile == "" {
			out = append(out, fmt.Sprintf("the admin API %s has no token (set --admin-tokens-file or --admin-token-file)", nc.AdminListen))
		}
		if nc.AdminTLSCertFile == "" {
			out = append(out, fmt.Sprintf("the admin API %s has no TLS, so its tokens travel in clear text (set --admin-tls-cert-file and --admin-tls-key-file)", nc.AdminListen))
		}
	}
	return out
}

// loopbackAddr reports whether a listen address accepts this host only: a
// loopback IP or "localhost". An empty host or 0.0.0.0 is every interface;
// any other name might resolve to anything, so it counts as exposed.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// kafkaLimits checks the client connection limits. A duration of 0 turns
// its limit off (kafka.Limits takes 0 as "default", negative as "off").
func (c *serveConfig) kafkaLimits() (kafka.Limits, error) {
	l := kafka.Limits{
		MaxConnections:            c.KafkaMaxConnections,
		MaxConnectionsPerIP:       c.KafkaMaxConnectionsPerIP,
		MaxConnectionCreationRate: c.KafkaMaxConnectionCreationRate,
		QueuedMaxRequestBytes:     c.KafkaQueuedMaxRequestBytes,
		CoordinatorCacheSize:      c.KafkaCoordinatorCacheSize,
		ProducerIDMappings:        c.KafkaProducerIDMappings,
		MaxProducerIDsPerConn:     c.KafkaMaxProducerIDsPerConnection,
	}
	for _, d := range []struct {
		flag, v string
		dst     *time.Duration
	}{
		{"kafka-connections-max-idle", c.KafkaConnectionsMaxIdle, &l.ConnectionsMaxIdle},
		{"kafka-park-idle-after", c.KafkaParkIdleAfter, &l.ParkIdleAfter},
		{"kafka-upstream-idle-close", c.KafkaUpstreamIdleClose, &l.UpstreamIdleClose},
		{"kafka-frame-read-timeout", c.KafkaFrameReadTimeout, &l.FrameReadTimeout},
	} {
		v, err := time.ParseDuration(d.v)
		if err != nil || v < 0 {
			return l, fmt.Errorf("serve: --%s %q: want a duration such as 30s, or 0 for none", d.flag, d.v)
		}
		if v == 0 {
			v = -1
		}
		*d.dst = v
	}
	if l.QueuedMaxRequestBytes == 0 {
		return l, errors.New("serve: --kafka-queued-max-request-bytes 0: want a byte count, or -1 for unbounded")
	}
	switch {
	case c.KafkaFetchSessionSlots < 0:
		return l, fmt.Errorf("serve: --kafka-fetch-session-slots %d: want a count of sessions, or 0 for none", c.KafkaFetchSessionSlots)
	case c.KafkaFetchSessionSlots == 0:
		l.FetchSessionSlots = -1 // kafka.Limits: negative is none, 0 its default
	default:
		l.FetchSessionSlots = c.KafkaFetchSessionSlots
	}
	if !c.KafkaBackendFetchSessions {
		l.BackendFetchSessions = -1 // kafka.Limits: negative is off, 0 its default (on)
	}
	// The client-keyed tables cannot be unbounded: 0 is kafka's default.
	for _, d := range []struct {
		flag, v string
		dst     *time.Duration
	}{
		{"kafka-coordinator-cache-ttl", c.KafkaCoordinatorCacheTTL, &l.CoordinatorCacheTTL},
		{"kafka-producer-id-idle", c.KafkaProducerIDIdle, &l.ProducerIDIdle},
		{"kafka-producer-id-protect", c.KafkaProducerIDProtect, &l.ProducerIDProtect},
	} {
		v, err := defaultableDuration(d.flag, d.v)
		if err != nil {
			return l, err
		}
		*d.dst = v
	}
	for _, b := range []struct {
		flag string
		v    int
	}{
		{"kafka-coordinator-cache-size", l.CoordinatorCacheSize},
		{"kafka-producer-id-mappings", l.ProducerIDMappings},
		{"kafka-max-producer-ids-per-connection", l.MaxProducerIDsPerConn},
	} {
		if b.v < 0 {
			return l, fmt.Errorf("serve: --%s %d: want a positive count, or 0 for the default (these tables cannot be unbounded)", b.flag, b.v)
		}
	}
	if err := l.Validate(); err != nil {
		return l, fmt.Errorf("serve: %w", err)
	}
	return l, nil
}

// defaultableDuration parses a setting where "" or 0 takes the
// component's default.
func defaultableDuration(flag, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("serve: --%s %q: want a duration such as 30s, or 0 for the default", flag, v)
	}
	return d, nil
}

// adminLimits checks the admin listener's limits. They have no "off":
// every admin connection gets deadlines and size caps.
func (c *serveConfig) adminLimits() (node.AdminLimits, error) {
	var a node.AdminLimits
	for _, d := range []struct {
		flag, v string
		dst     *time.Duration
	}{
		{"admin-read-header-timeout", c.AdminReadHeaderTimeout, &a.ReadHeaderTimeout},
		{"admin-read-timeout", c.AdminReadTimeout, &a.ReadTimeout},
		{"admin-write-timeout", c.AdminWriteTimeout, &a.WriteTimeout},
		{"admin-idle-timeout", c.AdminIdleTimeout, &a.IdleTimeout},
	} {
		v, err := time.ParseDuration(d.v)
		if err != nil || v <= 0 {
			return a, fmt.Errorf("serve: --%s %q: want a positive duration such as 30s", d.flag, d.v)
		}
		*d.dst = v
	}
	if c.AdminMaxHeaderBytes <= 0 {
		return a, fmt.Errorf("serve: --admin-max-header-bytes %d: want a positive byte count", c.AdminMaxHeaderBytes)
	}
	if c.AdminMaxBodyBytes <= 0 {
		return a, fmt.Errorf("serve: --admin-max-body-bytes %d: want a positive byte count", c.AdminMaxBodyBytes)
	}
	a.MaxHeaderBytes, a.MaxBodyBytes = c.AdminMaxHeaderBytes, c.AdminMaxBodyBytes
	return a, nil
}

// peerTLS builds mutual TLS for the peer port: every peer presents its
// certificate and accepts only peers whose certificate the CA signed.
func peerTLS(certFile, keyFile, caFile string) (*tls.Config, *tls.Config, error) {
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, nil, errors.New("serve: peer TLS needs --peer-tls-cert-file, --peer-tls-key-file and --peer-tls-ca-file together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("serve: peer TLS key pair: %w", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, nil, fmt.Errorf("serve: peer TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, nil, fmt.Errorf("serve: peer TLS CA file %s holds no PEM certificate", caFile)
	}
	srv := &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	cli := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}
	return srv, cli, nil
}
