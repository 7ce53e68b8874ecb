package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// View is what the data plane reads of the cluster: the latest applied
// state and gossip liveness. The node package implements it; the data plane
// never waits on consensus.
type View interface {
	// State returns the latest applied state; it is never nil.
	State() *fsm.State
	// Live reports whether a peer is alive.
	Live(peerID int32) bool
}

// WriteGate decides whether this peer may forward client writes: Produce,
// and AddPartitionsToTxn, which opens a transaction's writes. The node's
// write lease implements it (node/lease.go): a peer cut off from the
// control plane stops writing once its lease runs out, so a migration's
// switch can count on it. WriteAllowed is called once per write request,
// before the request reads the state; it must be cheap (an atomic load)
// and safe for concurrent use.
type WriteGate interface {
	WriteAllowed() bool
}

// Proposer commits a change to the replicated state and returns once it is
// applied. The node implements it (Node.Apply: forwarded to the Raft leader,
// answered once this peer applied it). The client admin keys that manage the
// proxy's own users and ACLs use it when the listener authenticates
// (AlterUserSCRAMCredentials, CreateAcls, DeleteAcls).
type Proposer interface {
	Apply(ctx context.Context, cmd fsm.Command) (fsm.Applied, error)
}

// SharedProducerIDs is the replicated table of idempotent producers' real
// producer ids (fsm/producer_ids.go), which the node implements over its
// FSM and Apply. The data plane asks it on a virtual id's first batch to a
// cluster, and to refresh a claim it still uses (producer_ids.go); both
// must be safe for concurrent use.
type SharedProducerIDs interface {
	// Lookup is the claim the table holds for (cluster, vpid, vepoch), if
	// any, as this peer has applied it. It must not block.
	Lookup(cluster string, vpid int64, vepoch int16) (SharedProducerID, bool)
	// Claim records (id, epoch) for the key unless the table holds a
	// claim, and answers the one that holds once committed (another
	// peer's, if it claimed first). Claiming the id and epoch the table
	// holds again refreshes the claim's time.
	Claim(ctx context.Context, cluster string, vpid int64, vepoch int16, id int64, epoch int16) (SharedProducerID, error)
}

// SharedProducerID is a claim of the shared table: the real producer id and
// epoch, and when (unix ms) it was claimed or last refreshed.
type SharedProducerID struct {
	ID    int64
	Epoch int16
	At    int64
}

// Config configures one peer's Kafka listener.
type Config struct {
	// ListenAddr is the TCP address to accept clients on.
	ListenAddr string
	// Listener, when set, is used instead of binding ListenAddr.
	Listener net.Listener
	// NodeID is this peer's broker id.
	NodeID int32
	// ClusterID is the cluster id presented to clients; empty presents the
	// backend cluster's own id.
	ClusterID string
	// MaxFrameBytes bounds a client request frame (default 100 MiB).
	MaxFrameBytes int32
	// MaxInFlight bounds requests awaiting a response per connection
	// (default 1024); a client pipelining more is paused, not failed.
	MaxInFlight int
	// Limiter, when set, enforces topic quotas (throttle.go).
	Limiter Limiter
	// Writes, when set, gates client writes (WriteGate); nil allows them.
	Writes WriteGate
	// Authenticates: the listener authenticates its clients (SASL, or
	// client certificates), so every connection has a proven principal.
	// The proxy then owns users and ACLs: requests are authorized against
	// the replicated ACLs (acl.go), and the client admin keys for users and
	// ACLs manage the proxy's own instead of the backends'.
	Authenticates bool
	// Proposer, when set, commits the users and ACLs clients manage with
	// Kafka's admin keys; nil refuses those writes.
	Proposer Proposer
	// SharedProducerIDs, when set, shares idempotent producers' real ids
	// with the other peers (producer_ids.go); nil maps them on this peer
	// alone.
	SharedProducerIDs SharedProducerIDs
	// TopicsChanged, when set, is told the cluster whose topics a client
	// created, deleted or grew through this peer (after this peer's own
	// backend was told to refresh), before the client has the answer, so
	// the other peers refresh theirs too: node tells every peer, and their
	// all-topics answers from the snapshot (BackendConfig.ListFromSnapshot)
	// then show the change to the client's next request. It may block
	// briefly (node bounds it at a second).
	TopicsChanged func(cluster string)
	// Authz configures authorization (acl.go); used when Authenticates.
	Authz AuthzConfig
	// Security: TLS and SASL on the listener (security.go).
	Security
	Limits
	Logger *slog.Logger
}

// Limits bound what clients can make one peer hold: connections, their
// idle time, and request bytes in memory. Each is named after the Kafka
// broker setting it mirrors.
type Limits struct {
	// MaxConnections caps open client connections (max.connections); a
	// connection past it is refused. 0: unlimited, as in Kafka.
	MaxConnections int
	// MaxConnectionsPerIP caps open client connections from one address
	// (max.connections.per.ip). 0: unlimited, as in Kafka.
	MaxConnectionsPerIP int
	// MaxConnectionCreationRate caps new client connections per second, with
	// a burst of one second's worth (max.connection.creation.rate); a
	// connection past it is refused. 0: unlimited, as in Kafka.
	MaxConnectionCreationRate float64
	// ConnectionsMaxIdle closes a client connection that sent no request
	// for this long while none was in flight (connections.max.idle.ms).
	// 0: 10 minutes, Kafka's default; negative: never.
	ConnectionsMaxIdle time.Duration
	// ParkIdleAfter: a plaintext client connection that sent no request
	// for this long, with none in flight, is held without a reader
	// goroutine until it sends one (park.go). 0: 10 s; negative: never.
	ParkIdleAfter time.Duration
	// UpstreamIdleClose: a parked client connection that has sent no
	// request for this long closes its backend connections (they are
	// dialed again at its next request), so an idle client holds no
	// goroutine and no broker connection. 0: 1 minute; negative: never.
	UpstreamIdleClose time.Duration
	// FrameReadTimeout is how long a request may take to arrive once its
	// first byte has (Kafka has no such limit; it stops a client that
	// claims a size and stalls from holding its buffer and budget). 0: 30 s;
	// negative: no limit.
	FrameReadTimeout time.Duration
	// QueuedMaxRequestBytes caps the request bytes held in memory across
	// the peer's client connections (queued.max.request.bytes); a reader
	// that would pass it stops reading until bytes are released. 0: 256 MiB;
	// negative: unbounded.
	QueuedMaxRequestBytes int64

	// Tables keyed by what clients send are bounded (coordinators.go,
	// producer_ids.go).
	//
	// CoordinatorCacheSize bounds the coordinators cached from
	// FindCoordinator answers, over every cluster (default 10,000); the
	// table of group members' client hosts (members.go) has the same bound.
	CoordinatorCacheSize int
	// CoordinatorCacheTTL drops a coordinator (or member host) unused for
	// this long (default 5m).
	CoordinatorCacheTTL time.Duration
	// ProducerIDMappings bounds the virtual-to-real producer id mappings
	// (default 262,144).
	ProducerIDMappings int
	// ProducerIDIdle drops a mapping unused for this long (default 1h).
	ProducerIDIdle time.Duration
	// ProducerIDProtect: a mapping used within this window is never
	// evicted; a new one is refused instead while the table is full of them
	// (default 1m).
	ProducerIDProtect time.Duration
	// MaxProducerIDsPerConn bounds the distinct virtual producer ids (and
	// epochs) one client connection may use (default 64).
	MaxProducerIDsPerConn int
	// FetchSessionSlots bounds the client fetch sessions (KIP-227) the
	// peer holds (max.incremental.fetch.session.cache.slots;
	// fetch_session.go). 0: 1000, Kafka's default; negative: no sessions,
	// every fetch is served sessionless.
	FetchSessionSlots int
	// BackendFetchSessions: the fetches of a client's session reach each
	// backend broker in a fetch session of the proxy's own (KIP-227,
	// fetch_session.go), listing only the partitions changed since that
	// broker last saw them. 0 (the default) or positive: on; negative:
	// off, every fetch to a backend lists every partition (sessionless).
	BackendFetchSessions int
}

// Default limits; see Limits.
const (
	DefaultConnectionsMaxIdle    = 10 * time.Minute
	DefaultParkIdleAfter         = 10 * time.Second
	DefaultUpstreamIdleClose     = time.Minute
	DefaultFrameReadTimeout      = 30 * time.Second
	DefaultQueuedMaxRequestBytes = 256 << 20
)

func (c *Config) setDefaults() {
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = 100 << 20
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 1024
	}
	if c.ConnectionsMaxIdle == 0 {
		c.ConnectionsMaxIdle = DefaultConnectionsMaxIdle
	}
	if c.ParkIdleAfter == 0 {
		c.ParkIdleAfter = DefaultParkIdleAfter
	}
	if c.UpstreamIdleClose == 0 {
		c.UpstreamIdleClose = DefaultUpstreamIdleClose
	}
	if c.FrameReadTimeout == 0 {
		c.FrameReadTimeout = DefaultFrameReadTimeout
	}
	if c.QueuedMaxRequestBytes == 0 {
		c.QueuedMaxRequestBytes = DefaultQueuedMaxRequestBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.CoordinatorCacheSize == 0 {
		c.CoordinatorCacheSize = 10_000
	}
	if c.CoordinatorCacheTTL == 0 {
		c.CoordinatorCacheTTL = 5 * time.Minute
	}
	if c.ProducerIDMappings == 0 {
		c.ProducerIDMappings = 1 << 18
	}
	if c.ProducerIDIdle == 0 {
		c.ProducerIDIdle = time.Hour
	}
	if c.ProducerIDProtect == 0 {
		c.ProducerIDProtect = time.Minute
	}
	if c.MaxProducerIDsPerConn == 0 {
		c.MaxProducerIDsPerConn = 64
	}
	if c.FetchSessionSlots == 0 {
		c.FetchSessionSlots = DefaultFetchSessionSlots
	}
	if c.Security.Authenticating() {
		c.Authenticates = true
	}
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if c.ListenAddr == "" && c.Listener == nil {
		return errors.New("kafka listen address is empty")
	}
	if c.NodeID < 0 {
		return fmt.Errorf("node id %d is negative", c.NodeID)
	}
	if err := c.Authz.Validate(); err != nil {
		return err
	}
	if err := c.Security.Validate(); err != nil {
		return err
	}
	return c.Limits.Validate()
}

// Validate reports limits that cannot work.
func (l *Limits) Validate() error {
	switch {
	case l.MaxConnections < 0:
		return fmt.Errorf("kafka max connections %d is negative (0 is unlimited)", l.MaxConnections)
	case l.MaxConnectionsPerIP < 0:
		return fmt.Errorf("kafka max connections per ip %d is negative (0 is unlimited)", l.MaxConnectionsPerIP)
	case l.MaxConnectionCreationRate < 0 || math.IsNaN(l.MaxConnectionCreationRate) || math.IsInf(l.MaxConnectionCreationRate, 0):
		return fmt.Errorf("kafka max connection creation rate %v: want 0 (unlimited) or a positive rate", l.MaxConnectionCreationRate)
	case l.CoordinatorCacheSize < 0 || l.ProducerIDMappings < 0 || l.MaxProducerIDsPerConn < 0:
		return fmt.Errorf("cache bounds must not be negative: coordinators %d, producer id mappings %d, producer ids per connection %d",
			l.CoordinatorCacheSize, l.ProducerIDMappings, l.MaxProducerIDsPerConn)
	case l.FetchSessionSlots > maxFetchSessionSlots:
		return fmt.Errorf("kafka fetch session slots %d: want at most %d (or 0 for the default, negative for none)", l.FetchSessionSlots, maxFetchSessionSlots)
	case l.CoordinatorCacheTTL < 0 || l.ProducerIDIdle < 0 || l.ProducerIDProtect < 0:
		return fmt.Errorf("cache durations must not be negative: coordinator ttl %v, producer id idle %v, producer id protect %v",
			l.CoordinatorCacheTTL, l.ProducerIDIdle, l.ProducerIDProtect)
	}
	return nil
}

// Server is one peer's Kafka listener.
type Server struct {
	cfg      Config
	log      *slog.Logger
	view     View
	backends atomic.Pointer[backendSet]
	metrics  *Metrics
	handlers [maxKey + 1]handler
	pids     producerIDs
	txns     txnTable              // transactional ids (txn_clusters.go)
	coords   *lru[coordKey, int32] // coordinators.go
	vids     sync.Map              // virtual topic id → name (topicids.go)
	authz    *authz                // acl.go

	// produceInflight counts Produce requests in flight per topic under
	// migration (segments.go).
	produceInflight inflight
	// seqGaps: idempotent batches the proxy refused (seq_gaps.go).
	seqGaps seqGaps

	// members: member id → the client host it joined from (members.go).
	members *lru[memberKey, string]
	// kip848: KIP-848 consumer group members (68_consumer_group_heartbeat.go).
	kip848 *lru[member848Key, *member848]
	// noticed: members offset resets removed that were told so here
	// (group_reset.go).
	noticed noticedSet
	// commits: groups' last forwarded offset commits per cluster, for
	// failover's resume policies (commit_log.go).
	commits *commitLog
	// fetchSessions: clients' fetch sessions (fetch_session.go); nil when
	// they are off.
	fetchSessions *fetchSessionCache

	// budget holds the request bytes read and not yet handled.
	budget byteBudget
	// refusals is owned by the accept loop.
	refusals refusals
	// tls and sasl: the listener's authentication (security.go); nil when off.
	tls  *listenerTLS
	sasl *saslServer

	mu    sync.Mutex
	ln    net.Listener
	conns map[*clientConn]struct{}
	perIP map[netip.Addr]int // open connections by client address (mu)
	wg    sync.WaitGroup
	// parker holds idle connections without a goroutine (park.go); nil
	// when parking is off or unavailable. Set by Serve.
	parker *parker
}

// NewServer builds a server; SetBackends gives it the backend clusters.
func NewServer(cfg Config, view View, metrics *Metrics) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "kafka", "node", cfg.NodeID),
		view:    view,
		metrics: metrics,
		conns:   map[*clientConn]struct{}{},
		perIP:   map[netip.Addr]int{},
	}
	s.budget.max = cfg.QueuedMaxRequestBytes
	s.refusals.rate = tokenBucket{rate: cfg.MaxConnectionCreationRate}
	s.backends.Store(newBackendSet(nil))
	s.pids.init(time.Now(), cfg)
	s.txns.init(cfg)
	s.coords = newLRU[coordKey, int32](cfg.CoordinatorCacheSize, cfg.CoordinatorCacheTTL, 0, nil)
	s.members = newLRU[memberKey, string](cfg.CoordinatorCacheSize, cfg.CoordinatorCacheTTL, 0, nil)
	s.commits = newCommitLog(nil)
	s.kip848 = newMembers848(cfg.CoordinatorCacheSize)
	if cfg.FetchSessionSlots > 0 {
		var fm *fetchSessionMetrics
		if metrics != nil {
			fm = metrics.fetchSessions
		}
		s.fetchSessions = newFetchSessionCache(cfg.FetchSessionSlots, fm)
		s.fetchSessions.backend = cfg.BackendFetchSessions >= 0
		if s.fetchSessions.backend {
			s.fetchSessions.closes = make(chan sessionClose, maxPendingCloses)
		}
	}
	s.handlers = handlerTable()
	s.authz = newAuthz(cfg.Authz, metrics, s.log)
	if err := s.initSecurity(); err != nil {
		return nil, err
	}
	return s, nil
}

// Listen binds the listener; Serve accepts on it.
func (s *Server) Listen() error {
	if s.cfg.Listener != nil {
		s.mu.Lock()
		s.ln = s.cfg.Listener
		s.mu.Unlock()
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("kafka listener on %s: %w", s.cfg.ListenAddr, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return nil
}

// Addr is the bound listener address.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve accepts clients until ctx ends, then closes every connection.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		return errors.New("kafka server: Serve before Listen")
	}
	if s.cfg.ParkIdleAfter > 0 {
		p, err := newParker((*clientConn).resume)
		if err != nil {
			s.log.Warn("idle client connections keep their reader goroutine", "err", err)
		} else {
			s.mu.Lock()
			s.parker = p
			s.mu.Unlock()
		}
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	if fs := s.fetchSessions; fs != nil && fs.closes != nil {
		go fs.runCloser(ctx) // backend fetch sessions closed at their brokers
	}
	var tempDelay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				s.closeAll()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				tempDelay = min(max(tempDelay*2, 5*time.Millisecond), time.Second)
				time.Sleep(tempDelay)
				continue
			}
			s.closeAll()
			return fmt.Errorf("kafka accept: %w", err)
		}
		tempDelay = 0
		ip := remoteIP(nc)
		if reason := s.admit(ip, time.Now()); reason != "" {
			s.metrics.refused(reason)
			nc.Close()
			s.refusals.log(s.log, reason, ip, time.Now())
			continue
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		_, internal := nc.(*internalConn)
		if s.tls != nil && !internal {
			nc = tls.Server(nc, s.tls.base)
		}
		c := newClientConn(s, nc)
		if internal {
			c.principal, c.sasl.authed = InternalPrincipal, true
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		c.done = func() { // when c has closed, parked or not in between
			s.mu.Lock()
			delete(s.conns, c)
			if s.perIP[ip]--; s.perIP[ip] <= 0 {
				delete(s.perIP, ip)
			}
			s.mu.Unlock()
			s.wg.Done()
		}
		go c.serve()
	}
}

// admit applies the connection limits to a new connection from ip and
// counts it in when it passes; it returns the reason for a refusal, or "".
// The rate counts refused connections too, as Kafka's does: a client
// reconnecting in a loop is not helped by being refused.
func (s *Server) admit(ip netip.Addr, now time.Time) string {
	if !s.refusals.rate.take(now) {
		return refusedRate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.cfg.MaxConnections > 0 && len(s.conns) >= s.cfg.MaxConnections:
		return refusedMax
	case s.cfg.MaxConnectionsPerIP > 0 && s.perIP[ip] >= s.cfg.MaxConnectionsPerIP:
		return refusedPerIP
	}
	s.perIP[ip]++
	return ""
}

// remoteIP is the client's address, without the port; the zero Addr for a
// connection that has none (net.Pipe in tests), all of which share a count.
func remoteIP(nc net.Conn) netip.Addr {
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(nc.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// Refusal reasons: the fixed label set of
// switchyard_kafka_connections_refused_total.
const (
	refusedMax   = "max_connections"
	refusedPerIP = "max_connections_per_ip"
	refusedRate  = "creation_rate"
)

var refusedReasons = []string{refusedMax, refusedPerIP, refusedRate}

// refusalLogEvery is the least time between two log lines about refused
// connections: under a connection flood one line per refusal would itself
// be a denial of service (the metric counts every one).
const refusalLogEvery = 10 * time.Second

// refusals rate-limits the log of refused connections and holds the
// creation-rate bucket. The accept loop owns it.
type refusals struct {
	rate       tokenBucket
	last       time.Time
	suppressed map[string]int
}

// log logs a refusal, or counts it for the next line when one was logged
// less than refusalLogEvery ago.
func (r *refusals) log(log *slog.Logger, reason string, ip netip.Addr, now time.Time) {
	if !r.last.IsZero() && now.Sub(r.last) < refusalLogEvery {
		if r.suppressed == nil {
			r.suppressed = map[string]int{}
		}
		r.suppressed[reason]++
		return
	}
	args := []any{"reason", reason, "client", ip.String()}
	for _, k := range refusedReasons {
		if n := r.suppressed[k]; n > 0 {
			args = append(args, "suppressed_"+k, n)
		}
	}
	log.Warn("refused client connection", args...)
	r.last = now
	clear(r.suppressed)
}

// tokenBucket admits rate events per second with a burst of one second's
// worth (at least one); rate 0 admits everything.
type tokenBucket struct {
	rate   float64
	tokens float64
	at     time.Time
}

func (b *tokenBucket) take(now time.Time) bool {
	if b.rate <= 0 {
		return true
	}
	burst := max(b.rate, 1)
	if b.at.IsZero() {
		b.tokens = burst
	} else if d := now.Sub(b.at); d > 0 {
		b.tokens = min(burst, b.tokens+d.Seconds()*b.rate)
	}
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (s *Server) closeAll() {
	s.mu.Lock()
	for c := range s.conns {
		c.closeWith(ErrClosed) // a parked one gets its reader back to end
	}
	s.mu.Unlock()
	s.wg.Wait()
	if s.parker != nil {
		s.parker.close()
	}
}

// presenter builds the broker presentation of cluster under st for a
// client of region: every broker list, leader, replica and coordinator a
// client is shown passes through here, so near serving (only the client's
// region's peers, docs/regions.md) is applied in this one place.
func (c *clientConn) presenter(st *fsm.State, region, cluster string) *presenter {
	return newRegionPresenter(st, c.s.view.Live, cluster, region)
}

// clientRegion is the region of this connection's client under st (the
// longest network of st.Regions holding its address, else this peer's
// region). The reader goroutine owns the cache: the scan runs once per
// state the connection sees, not per request.
func (c *clientConn) clientRegion(st *fsm.State) string {
	if c.regionSt == st {
		return c.region
	}
	peerRegion := ""
	if p, ok := st.Peer(c.s.cfg.NodeID); ok {
		peerRegion = p.Region
	}
	c.regionSt, c.region, c.peerRegion = st, st.ClientRegion(c.clientIP, peerRegion), peerRegion
	return c.region
}

// localBrokers are be's brokers on this peer's host, under the current
// state.
func (s *Server) localBrokers(be *Backend) []int32 {
	return s.localBrokersIn(s.view.State(), be)
}

// localBrokers are be's brokers on this peer's host, under r's state.
func (r *request) localBrokers(be *Backend) []int32 {
	return r.c.s.localBrokersIn(r.st, be)
}

func (s *Server) localBrokersIn(st *fsm.State, be *Backend) []int32 {
	p, ok := st.Peer(s.cfg.NodeID)
	if !ok {
		return nil
	}
	var out []int32
	for _, b := range p.LocalBrokers {
		if b.Cluster == be.Name() {
			out = append(out, b.BrokerID)
		}
	}
	return out
}

// clusterID is the id clients see: the configured one, else the virtual
// cluster's id from the replicated state, else the default cluster's own.
func (r *request) clusterID(backendID *string) *string {
	s := r.c.s
	if s.cfg.ClusterID != "" {
		id := s.cfg.ClusterID
		return &id
	}
	if id := r.st.ClusterID; id != "" {
		return &id
	}
	return backendID
}
