// Package sandbox runs a whole Switchyard deployment in one process: an
// in-memory kfake backend cluster and several peers in front of it, on
// loopback. `switchyard dev`, the cross-package tests and the benchmarks
// use it; it is not for production.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/node"
)

// Config configures a sandbox.
type Config struct {
	// Brokers is the number of kfake brokers (default 3).
	Brokers int
	// Peers is the number of Switchyard peers (default 3). Peer i shares a
	// host with broker i, when there is one.
	Peers int
	// Host is the loopback address to bind (default 127.0.0.1).
	Host string
	// KafkaBasePort: peer i listens on KafkaBasePort+i; 0 picks free ports.
	KafkaBasePort int
	// AdminBasePort: peer i's admin API is on AdminBasePort+i; 0 picks free
	// ports; -1 runs no admin listener.
	AdminBasePort int
	// ClusterName names the backend cluster (default "local").
	ClusterName string
	// MetadataRefresh is the peers' backend metadata refresh period.
	MetadataRefresh time.Duration
	// KfakeOpts are extra options for the backend cluster.
	KfakeOpts []kfake.Opt
	Logger    *slog.Logger
}

// Sandbox is a running deployment.
type Sandbox struct {
	// Backend is the kfake cluster behind the peers.
	Backend *kfake.Cluster
	// Nodes are the peers, by index (peer i has id i).
	Nodes []*node.Node
	// Bootstrap lists the peers' Kafka addresses.
	Bootstrap []string
	// AdminURLs lists the peers' admin base URLs (empty without admin).
	AdminURLs []string

	pending []net.Listener
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errMu   sync.Mutex
	errs    []error
}

// Start starts a sandbox and waits until every peer has loaded the
// backend's metadata.
func Start(ctx context.Context, cfg Config) (*Sandbox, error) {
	if cfg.Brokers <= 0 {
		cfg.Brokers = 3
	}
	if cfg.Peers <= 0 {
		cfg.Peers = 3
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = "local"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	opts := append([]kfake.Opt{kfake.NumBrokers(cfg.Brokers), kfake.AllowAutoTopicCreation()}, cfg.KfakeOpts...)
	be, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("sandbox: start kfake: %w", err)
	}
	sb := &Sandbox{Backend: be}
	fail := func(err error) (*Sandbox, error) {
		for _, ln := range sb.listeners() {
			ln.Close()
		}
		be.Close()
		return nil, err
	}
	state := &fsm.State{Clusters: []fsm.Cluster{{Name: cfg.ClusterName, Bootstrap: be.ListenAddrs()}}}
	lns := make([]net.Listener, cfg.Peers)
	for i := range cfg.Peers {
		port := 0
		if cfg.KafkaBasePort > 0 {
			port = cfg.KafkaBasePort + i
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(port)))
		if err != nil {
			for _, l := range lns[:i] {
				l.Close()
			}
			be.Close()
			return nil, fmt.Errorf("sandbox: peer %d kafka listener: %w", i, err)
		}
		lns[i] = ln
		p := fsm.Peer{ID: int32(i), Name: "peer-" + strconv.Itoa(i), KafkaAddr: ln.Addr().String()}
		if i < cfg.Brokers {
			p.LocalBrokers = []fsm.BrokerRef{{Cluster: cfg.ClusterName, BrokerID: int32(i)}}
		}
		state.Peers = append(state.Peers, p)
		sb.Bootstrap = append(sb.Bootstrap, ln.Addr().String())
	}
	sb.pending = lns
	for i := range cfg.Peers {
		admin := ""
		switch {
		case cfg.AdminBasePort > 0:
			admin = net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.AdminBasePort+i))
		case cfg.AdminBasePort == 0:
			admin = net.JoinHostPort(cfg.Host, "0")
		}
		n, err := node.New(node.Config{
			NodeID:          int32(i),
			KafkaListener:   lns[i],
			AdminListen:     admin,
			State:           state,
			MetadataRefresh: cfg.MetadataRefresh,
			Logger:          cfg.Logger.With("peer", i),
		})
		if err != nil {
			return fail(fmt.Errorf("sandbox: peer %d: %w", i, err))
		}
		sb.Nodes = append(sb.Nodes, n)
		if a := n.AdminAddr(); a != "" {
			sb.AdminURLs = append(sb.AdminURLs, "http://"+a)
		}
	}
	sb.pending = nil
	rctx, cancel := context.WithCancel(context.Background())
	sb.cancel = cancel
	for _, n := range sb.Nodes {
		sb.wg.Add(1)
		go func() {
			defer sb.wg.Done()
			if err := n.Run(rctx); err != nil {
				sb.errMu.Lock()
				sb.errs = append(sb.errs, err)
				sb.errMu.Unlock()
			}
		}()
	}
	for i, n := range sb.Nodes {
		select {
		case <-n.Ready():
		case <-ctx.Done():
			sb.Close()
			return nil, fmt.Errorf("sandbox: peer %d not ready: %w", i, ctx.Err())
		}
	}
	return sb, nil
}

// listeners returns Kafka listeners not yet owned by a running node.
func (sb *Sandbox) listeners() []net.Listener { return sb.pending }

// Close stops the peers and the backend and returns any serve errors.
func (sb *Sandbox) Close() error {
	if sb.cancel != nil {
		sb.cancel()
	}
	sb.wg.Wait()
	sb.Backend.Close()
	sb.errMu.Lock()
	defer sb.errMu.Unlock()
	return errors.Join(sb.errs...)
}

// SelfCheck produces one record through the first peer and consumes it
// back through the last: proof that clients can use the sandbox.
func (sb *Sandbox) SelfCheck(ctx context.Context) error {
	const topic = "switchyard-selfcheck"
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(sb.Bootstrap[0]),
		kgo.DefaultProduceTopic(topic),
		kgo.AllowAutoTopicCreation(),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	val := []byte(strconv.FormatInt(time.Now().UnixNano(), 10))
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: val}).FirstErr(); err != nil {
		return fmt.Errorf("sandbox self-check produce: %w", err)
	}
	cons, err := kgo.NewClient(
		kgo.SeedBrokers(sb.Bootstrap[len(sb.Bootstrap)-1]),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return err
	}
	defer cons.Close()
	for {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sandbox self-check consume: %w", err)
		}
		found := false
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) == string(val) {
				found = true
			}
		})
		if found {
			return nil
		}
	}
}
