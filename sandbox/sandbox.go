// Package sandbox runs a whole Switchyard deployment in one process: an
// in-memory kfake backend cluster and a Switchyard cluster of several peers
// in front of it, on loopback, with their Raft state in a temporary
// directory. The peers form a real Raft + gossip cluster; the sandbox then
// puts the backend cluster through the admin write path. `switchyard dev`,
// the cross-package tests and the benchmarks use it; it is not for
// production.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/kafka"
	"github.com/switchyard-proxy/switchyard/node"
	"github.com/switchyard-proxy/switchyard/transport"
)

// ClusterSpec is one backend kfake cluster of a sandbox.
type ClusterSpec struct {
	Name    string
	Brokers int
	// KfakeOpts are extra options for this cluster.
	KfakeOpts []kfake.Opt
}

// Config configures a sandbox.
type Config struct {
	// Clusters are the backend clusters; the first is the default cluster.
	// Empty means one cluster named ClusterName with Brokers brokers.
	Clusters []ClusterSpec
	// Setup are commands applied after the clusters are put (routes,
	// quotas), before the sandbox reports ready.
	Setup []fsm.Command
	// Brokers is the number of kfake brokers (default 3).
	Brokers int
	// Peers is the number of Switchyard peers (default 3). Peer i shares a
	// host with broker i of every cluster, when there is one; with at least
	// as many peers as brokers in all, each broker has a host of its own,
	// as in production (peers 0.. on the first cluster's brokers, then the
	// next cluster's).
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
	// DataDir holds the peers' Raft state; empty uses a temporary directory
	// that Close removes.
	DataDir string
	// MetadataRefresh is the peers' backend metadata refresh period.
	MetadataRefresh time.Duration
	// Timing is the control plane's timing (default DefaultTiming()).
	Timing *node.Timing
	// Faults, when set, lets a test cut peer traffic.
	Faults *transport.Faults
	// KfakeOpts are extra options for the backend cluster.
	KfakeOpts []kfake.Opt
	// KafkaSecurity is every peer's Kafka listener TLS and SASL
	// (kafka.Security); ClientOpts are what SelfCheck's clients need to
	// pass it (TLS configuration, SASL mechanism).
	KafkaSecurity kafka.Security
	ClientOpts    []kgo.Opt
	// GroupLagInterval: how often the Raft leader polls consumer-group
	// lag (switchyard_group_lag_records); 0: never (tests that want the
	// series ask; `switchyard dev` polls every 10 s, so the console shows
	// lag soon).
	GroupLagInterval time.Duration
	// Secure runs TLS and SASL everywhere (secure.go): on the peers'
	// listeners and on the backends, with a CA and secrets made for the
	// sandbox, and one user (Sandbox.Secure) the ACLs allow everything.
	// It replaces KafkaSecurity and ClientOpts.
	Secure bool
	Logger *slog.Logger
}

// Sandbox is a running deployment.
type Sandbox struct {
	// Backend is the default (first) kfake cluster behind the peers.
	Backend *kfake.Cluster
	// ClusterName is the default cluster's name in the replicated state.
	ClusterName string
	// Backends are all the kfake clusters, by name, in Config order.
	Backends     map[string]*kfake.Cluster
	ClusterNames []string
	// Nodes are the peers, by index (peer i is named peer-i).
	Nodes []*node.Node
	// Bootstrap lists the peers' Kafka addresses.
	Bootstrap []string
	// AdminURLs lists the peers' admin base URLs (empty without admin).
	AdminURLs []string
	// Secure is what clients of a secure sandbox need (Config.Secure);
	// nil otherwise.
	Secure *Secure

	clientOpts []kgo.Opt // Config.ClientOpts, for SelfCheck

	tmpDir string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errMu  sync.Mutex
	errs   []error
}

// Start starts a sandbox and waits until the peers have formed a cluster,
// the backend cluster is in the replicated state and every peer's data
// plane has loaded its metadata.
func Start(ctx context.Context, cfg Config) (sb *Sandbox, err error) {
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
	timing := DefaultTiming()
	if cfg.Timing != nil {
		timing = *cfg.Timing
	}
	if len(cfg.Clusters) == 0 {
		cfg.Clusters = []ClusterSpec{{Name: cfg.ClusterName, Brokers: cfg.Brokers, KfakeOpts: cfg.KfakeOpts}}
	}
	sb = &Sandbox{ClusterName: cfg.Clusters[0].Name, Backends: map[string]*kfake.Cluster{}, clientOpts: cfg.ClientOpts}
	// A failed start returns a nil Sandbox (named results), so the
	// cleanup holds its own reference.
	started := sb
	defer func() {
		if err != nil {
			started.Close()
		}
	}()
	for i := range cfg.Clusters {
		if cfg.Clusters[i].Brokers <= 0 {
			cfg.Clusters[i].Brokers = 3
		}
	}
	dir := cfg.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "switchyard-sandbox-"); err != nil {
			return nil, fmt.Errorf("sandbox: data dir: %w", err)
		}
		sb.tmpDir = dir
	}
	var sec *secureSetup
	if cfg.Secure {
		if sec, err = newSecureSetup(filepath.Join(dir, "secure")); err != nil {
			return nil, fmt.Errorf("sandbox: secure setup: %w", err)
		}
		sb.Secure = sec.info
	}
	for _, spec := range cfg.Clusters {
		opts := append([]kfake.Opt{kfake.NumBrokers(spec.Brokers), kfake.AllowAutoTopicCreation()}, spec.KfakeOpts...)
		if sec != nil {
			opts = append(opts, sec.kfakeOpts...)
		}
		kc, err := kfake.NewCluster(opts...)
		if err != nil {
			return nil, fmt.Errorf("sandbox: start kfake cluster %s: %w", spec.Name, err)
		}
		sb.Backends[spec.Name] = kc
		sb.ClusterNames = append(sb.ClusterNames, spec.Name)
	}
	sb.Backend = sb.Backends[sb.ClusterName]
	rctx, cancel := context.WithCancel(context.Background())
	sb.cancel = cancel
	hostPort := func(base, i int) string {
		port := 0
		if base > 0 {
			port = base + i
		}
		return net.JoinHostPort(cfg.Host, strconv.Itoa(port))
	}
	for i := range cfg.Peers {
		name := "peer-" + strconv.Itoa(i)
		ln, err := net.Listen("tcp", hostPort(cfg.KafkaBasePort, i))
		if err != nil {
			return nil, fmt.Errorf("sandbox: %s kafka listener: %w", name, err)
		}
		admin := ""
		if cfg.AdminBasePort >= 0 {
			admin = hostPort(cfg.AdminBasePort, i)
		}
		nc := node.Config{
			Name:             name,
			DataDir:          filepath.Join(dir, name),
			Version:          "sandbox",
			KafkaListener:    ln,
			AdminListen:      admin,
			RaftListen:       net.JoinHostPort(cfg.Host, "0"),
			GossipListen:     net.JoinHostPort(cfg.Host, "0"),
			BootstrapExpect:  cfg.Peers,
			MetadataRefresh:  cfg.MetadataRefresh,
			LeaveOnStop:      true,
			GroupLagInterval: cfg.GroupLagInterval,
			AdmitUnproven:    true, // in-process peers, no peer TLS: the insecure admission mode
			Timing:           timing,
			Faults:           cfg.Faults,
			Logger:           cfg.Logger.With("peer", name),
			KafkaSecurity:    cfg.KafkaSecurity,
		}
		if i > 0 {
			nc.Join = []string{sb.Nodes[0].GossipAddr()}
		}
		nc.LocalBrokers = colocated(cfg.Clusters, cfg.Peers, i)
		if sec != nil {
			nc.KafkaSecurity = sec.listener
		}
		n, err := node.New(nc)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("sandbox: %s: %w", name, err)
		}
		sb.Nodes = append(sb.Nodes, n)
		sb.Bootstrap = append(sb.Bootstrap, n.KafkaAddr())
		if a := n.AdminAddr(); a != "" {
			sb.AdminURLs = append(sb.AdminURLs, "http://"+a)
		}
		sb.wg.Add(1)
		go func() {
			defer sb.wg.Done()
			if err := n.Run(rctx); err != nil {
				sb.errMu.Lock()
				sb.errs = append(sb.errs, fmt.Errorf("%s: %w", name, err))
				sb.errMu.Unlock()
			}
		}()
	}
	setup := cfg.Setup
	if sec != nil {
		setup = append(slices.Clone(sec.commands), setup...)
	}
	if err := sb.configure(ctx, setup, sec); err != nil {
		return nil, err
	}
	for _, n := range sb.Nodes {
		if err := n.WaitReady(ctx); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	return sb, nil
}

// configure puts the backend clusters, makes the first the default and
// applies setup, retrying while the cluster elects its first leader.
// DefaultTiming is the sandbox's control-plane timing,
// node.SharedMachineTiming: its peers share one process (and, in tests, a
// machine) with kfake and the clients, and with FastTiming's 250 ms lease
// and 100 ms probes loaded CI runs of the sandbox-based suites lost the
// leader, the write leases (commits refused) and peers (missing from
// Metadata) again and again. No sandbox stops a peer, so nothing waits on
// faster failure detection.
func DefaultTiming() node.Timing { return node.SharedMachineTiming() }

func (sb *Sandbox) configure(ctx context.Context, setup []fsm.Command, sec *secureSetup) error {
	var cmds []fsm.Command
	for _, name := range sb.ClusterNames {
		c := fsm.Cluster{Name: name, Bootstrap: sb.Backends[name].ListenAddrs()}
		if sec != nil {
			c.TLS, c.SASL = sec.clusterTLS, sec.clusterSASL
		}
		cmds = append(cmds, &fsm.PutCluster{Cluster: c})
	}
	cmds = append(cmds, &fsm.SetDefaultCluster{Cluster: sb.ClusterName})
	for _, cmd := range append(cmds, setup...) {
		if _, err := sb.Apply(ctx, cmd); err != nil {
			return fmt.Errorf("sandbox: %s: %w", cmd.Type(), err)
		}
	}
	return nil
}

// Apply applies cmd through any peer, retrying while no leader is known,
// and waits until every peer has applied it.
func (sb *Sandbox) Apply(ctx context.Context, cmd fsm.Command) (fsm.Applied, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		res, err := sb.Nodes[0].Apply(ctx, cmd)
		if err == nil {
			for _, n := range sb.Nodes {
				if err := n.WaitIndex(ctx, res.Index); err != nil {
					return res, err
				}
			}
			return res, nil
		}
		if !errors.Is(err, node.ErrNoLeader) && !errors.Is(err, node.ErrUnknownOutcome) {
			return res, err
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Close stops the peers and the backend and returns any serve errors.
func (sb *Sandbox) Close() error {
	if sb.cancel != nil {
		sb.cancel()
	}
	sb.wg.Wait()
	for _, kc := range sb.Backends {
		kc.Close()
	}
	if sb.tmpDir != "" {
		os.RemoveAll(sb.tmpDir)
	}
	sb.errMu.Lock()
	defer sb.errMu.Unlock()
	return errors.Join(sb.errs...)
}

// SelfCheck produces one record through the first peer and consumes it
// back through the last: proof that clients can use the sandbox.
func (sb *Sandbox) SelfCheck(ctx context.Context) error {
	const topic = "switchyard-selfcheck"
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(sb.Bootstrap[0]),
		kgo.DefaultProduceTopic(topic),
		kgo.AllowAutoTopicCreation(),
	}, sb.ClientOpts()...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	val := []byte(strconv.FormatInt(time.Now().UnixNano(), 10))
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: val}).FirstErr(); err != nil {
		return fmt.Errorf("sandbox self-check produce: %w", err)
	}
	cons, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(sb.Bootstrap[len(sb.Bootstrap)-1]),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, sb.ClientOpts()...)...)
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

// colocated is the brokers on peer i's host (Config.Peers).
func colocated(clusters []ClusterSpec, peers, i int) []fsm.BrokerRef {
	total := 0
	for _, spec := range clusters {
		total += spec.Brokers
	}
	var out []fsm.BrokerRef
	first := 0 // the first broker host of spec, counting across clusters
	for _, spec := range clusters {
		switch {
		case peers >= total && i >= first && i < first+spec.Brokers:
			out = append(out, fsm.BrokerRef{Cluster: spec.Name, BrokerID: int32(i - first)})
		case peers < total && i < spec.Brokers:
			out = append(out, fsm.BrokerRef{Cluster: spec.Name, BrokerID: int32(i)})
		}
		first += spec.Brokers
	}
	return out
}
