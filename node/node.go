package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/kafka"
)

// Config configures one peer.
type Config struct {
	// NodeID is this peer's id in State.Peers.
	NodeID int32
	// KafkaListen is the address the Kafka listener binds; the advertised
	// address is this peer's KafkaAddr in State.
	KafkaListen string
	// KafkaListener, when set, is an already bound Kafka listener.
	KafkaListener net.Listener
	// AdminListen is the admin HTTP address (empty: no admin listener).
	AdminListen string
	// State is the static cluster configuration: peers and backend clusters.
	State *fsm.State
	// ClusterID is presented to clients; empty presents the backend's.
	ClusterID string
	// MetadataRefresh is how often backend metadata is reloaded.
	MetadataRefresh time.Duration
	// MaxFrameBytes bounds a client request frame.
	MaxFrameBytes int32
	// MaxTopicSeries caps per-topic metric series.
	MaxTopicSeries int
	Logger         *slog.Logger
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	if c.State == nil {
		return errors.New("node: no cluster state configured")
	}
	if err := c.State.Validate(); err != nil {
		return fmt.Errorf("node: cluster state: %w", err)
	}
	if _, ok := c.State.Peer(c.NodeID); !ok {
		return fmt.Errorf("node: id %d is not among the configured peers", c.NodeID)
	}
	if len(c.State.Clusters) != 1 {
		return fmt.Errorf("node: exactly one backend cluster is supported for now, %d configured", len(c.State.Clusters))
	}
	if c.KafkaListen == "" && c.KafkaListener == nil {
		return errors.New("node: kafka listen address is empty")
	}
	return nil
}

// Node is one running peer.
type Node struct {
	cfg     Config
	log     *slog.Logger
	state   atomic.Pointer[fsm.State]
	reg     *prometheus.Registry
	backend *kafka.Backend
	kafka   *kafka.Server
	adminLn net.Listener
	admin   *http.Server
}

// New builds a peer and binds its listeners; Run serves.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("component", "node", "node", cfg.NodeID), reg: prometheus.NewRegistry()}
	n.state.Store(cfg.State)
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cl := cfg.State.Clusters[0]
	be, err := kafka.NewBackend(kafka.BackendConfig{
		Name:            cl.Name,
		Bootstrap:       cl.Bootstrap,
		MetadataRefresh: cfg.MetadataRefresh,
		Logger:          cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	n.backend = be
	metrics := kafka.NewMetrics(n.reg, cfg.MaxTopicSeries)
	n.kafka, err = kafka.NewServer(kafka.Config{
		ListenAddr:    cfg.KafkaListen,
		Listener:      cfg.KafkaListener,
		NodeID:        cfg.NodeID,
		ClusterID:     cfg.ClusterID,
		MaxFrameBytes: cfg.MaxFrameBytes,
		Logger:        cfg.Logger,
	}, n, be, metrics)
	if err != nil {
		return nil, err
	}
	if err := n.kafka.Listen(); err != nil {
		return nil, err
	}
	if cfg.AdminListen != "" {
		ln, err := net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			return nil, fmt.Errorf("node: admin listener on %s: %w", cfg.AdminListen, err)
		}
		n.adminLn = ln
		n.admin = &http.Server{Handler: n.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	}
	return n, nil
}

// State implements kafka.View.
func (n *Node) State() *fsm.State { return n.state.Load() }

// Live implements kafka.View. Without gossip every configured peer is
// presented as live.
func (n *Node) Live(id int32) bool {
	_, ok := n.state.Load().Peer(id)
	return ok
}

// KafkaAddr is the bound Kafka listener address.
func (n *Node) KafkaAddr() string { return n.kafka.Addr().String() }

// AdminAddr is the bound admin address, or "".
func (n *Node) AdminAddr() string {
	if n.adminLn == nil {
		return ""
	}
	return n.adminLn.Addr().String()
}

// Ready is closed once the backend's metadata has been loaded.
func (n *Node) Ready() <-chan struct{} { return n.backend.Ready() }

// Run serves until ctx ends.
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.backend.Run(ctx)
	}()
	if n.admin != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.admin.Serve(n.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.log.Error("admin listener failed", "err", err)
			}
		}()
		context.AfterFunc(ctx, func() {
			sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			n.admin.Shutdown(sctx)
		})
	}
	err := n.kafka.Serve(ctx)
	cancel()
	wg.Wait()
	return err
}

func (n *Node) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		select {
		case <-n.backend.Ready():
			fmt.Fprintln(w, `{"status":"ready"}`)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"error":"backend metadata not loaded yet"}`)
		}
	})
	return mux
}
