package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	Logger  *slog.Logger

	// Tables keyed by what clients send are bounded (coordinators.go,
	// producer_ids.go).
	//
	// CoordinatorCacheSize bounds the coordinators cached from
	// FindCoordinator answers, over every cluster (default 10,000).
	CoordinatorCacheSize int
	// CoordinatorCacheTTL drops a coordinator unused for this long
	// (default 5m).
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
}

func (c *Config) setDefaults() {
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = 100 << 20
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 1024
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
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if c.ListenAddr == "" && c.Listener == nil {
		return errors.New("kafka listen address is empty")
	}
	if c.NodeID < 0 {
		return fmt.Errorf("node id %d is negative", c.NodeID)
	}
	if c.CoordinatorCacheSize < 0 || c.ProducerIDMappings < 0 || c.MaxProducerIDsPerConn < 0 {
		return fmt.Errorf("cache bounds must be positive: coordinators %d, producer id mappings %d, producer ids per connection %d",
			c.CoordinatorCacheSize, c.ProducerIDMappings, c.MaxProducerIDsPerConn)
	}
	if c.CoordinatorCacheTTL < 0 || c.ProducerIDIdle < 0 || c.ProducerIDProtect < 0 {
		return fmt.Errorf("cache durations must be positive: coordinator ttl %v, producer id idle %v, producer id protect %v",
			c.CoordinatorCacheTTL, c.ProducerIDIdle, c.ProducerIDProtect)
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
	coords   *lru[coordKey, int32] // coordinators.go
	vids     sync.Map              // virtual topic id → name (topicids.go)

	mu    sync.Mutex
	ln    net.Listener
	conns map[*clientConn]struct{}
	wg    sync.WaitGroup
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
	}
	s.backends.Store(newBackendSet(nil))
	s.pids.init(time.Now(), cfg)
	s.coords = newLRU[coordKey, int32](cfg.CoordinatorCacheSize, cfg.CoordinatorCacheTTL, 0, nil)
	s.handlers = handlerTable()
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
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
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
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		c := newClientConn(s, nc)
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) closeAll() {
	s.mu.Lock()
	for c := range s.conns {
		c.closeWith(ErrClosed)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// presenter builds the broker presentation of be for the current state.
func (s *Server) presenter(be *Backend) *presenter {
	return newPresenter(s.view.State(), s.view.Live, be.Name())
}

// localBrokers are be's brokers on this peer's host.
func (s *Server) localBrokers(be *Backend) []int32 {
	p, ok := s.view.State().Peer(s.cfg.NodeID)
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
func (s *Server) clusterID(backendID *string) *string {
	if s.cfg.ClusterID != "" {
		id := s.cfg.ClusterID
		return &id
	}
	if id := s.view.State().ClusterID; id != "" {
		return &id
	}
	return backendID
}
