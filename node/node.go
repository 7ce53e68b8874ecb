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

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/kafka"
	"github.com/switchyard-proxy/switchyard/transport"
)

// Node is one running peer.
type Node struct {
	cfg Config
	log *slog.Logger

	fsm *fsm.FSM
	// results records what the FSM answered for the latest entries, and
	// writeIDs tags this peer's proposals, so a write whose leader stepped
	// down in flight is settled rather than left unknown (settle.go).
	results  *resultsFSM
	writeIDs *writeIDs
	raft     *raft.Raft
	store    *raftboltdb.BoltStore
	trans    *raft.NetworkTransport
	// hadState: Raft state existed on disk at start (no bootstrap).
	hadState bool

	mux    *transport.Mux
	rpc    *transport.Client
	gossip *gossip
	// keyring is memberlist's, when gossip is encrypted (GossipKeyFile);
	// watchGossipKeys installs rotations into it.
	keyring   *memberlist.Keyring
	admission *admission
	// gossipUp is set once gossip and its memberlist are built: Raft, which
	// starts first, resolves peer addresses through gossip only after.
	gossipUp atomic.Bool

	metaMu sync.Mutex
	meta   peerMeta

	stateChanged  *notifier
	gossipChanged *notifier

	quotas *quotas
	// health probes the backend clusters and, on the leader, judges them
	// (health.go); failover acts on the judgement (failover.go).
	health   *health
	failover *failoverDriver

	// migrations drives live topic migrations while this peer leads.
	migrations *migrator
	// resets drives online consumer-group offset resets while this peer
	// leads.
	resets *resetter
	// lease gates this peer's client writes (lease.go).
	lease *writeLease
	// nudges wakes the commit nudger (nudge.go); buffered, one slot.
	nudges chan struct{}

	reg          *prometheus.Registry
	metrics      *nodeMetrics
	kafkaMetrics *kafka.Metrics

	kafkaLn        net.Listener
	kafkaAdvertise string
	dp             atomic.Pointer[dataPlane]

	// loopback is the admin API's Kafka client of this peer's own data
	// plane (groups.go).
	loopback loopback
	// groupLag: the consumer-group lag series (group_lag.go).
	groupLag *groupLagMetrics

	adminLn net.Listener
	admin   *http.Server
	// adminAuth checks admin API tokens and roles, adminTLS serves the
	// admin certificate (nil without admin TLS), auditFile takes the audit
	// records (nil without --admin-audit-log); see http_auth.go.
	adminAuth *adminAuth
	adminTLS  *certReloader
	auditFile *auditFile

	runOnce sync.Once
}

// New builds a peer: it binds its listeners, opens its Raft state and
// starts gossip, so every address problem surfaces here. Run serves.
func New(cfg Config) (_ *Node, err error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:           cfg,
		log:           cfg.Logger.With("component", "node", "peer", cfg.Name),
		stateChanged:  newNotifier(),
		gossipChanged: newNotifier(),
		reg:           prometheus.NewRegistry(),
		nudges:        make(chan struct{}, 1),
	}
	defer func() {
		if err != nil {
			n.closeAll()
		}
	}()
	n.fsm = fsm.New(func(*fsm.State) { n.stateChanged.notify() }, fsm.WithLogger(cfg.Logger.With("peer", cfg.Name)))
	n.results, n.writeIDs = newResultsFSM(n.fsm), newWriteIDs()
	if n.quotas, err = newQuotas(n); err != nil {
		return nil, err
	}
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.metrics = newNodeMetrics(n.reg, n)
	n.admission = newAdmission(n.reg)
	n.kafkaMetrics = kafka.NewMetrics(n.reg, cfg.MaxTopicSeries)
	n.kafkaMetrics.SetMaxClientSeries(cfg.MaxClientSeries)
	n.groupLag = newGroupLagMetrics(n.reg)
	n.migrations = newMigrator(n, n.reg)
	n.resets = newResetter(n, &n.migrations.cfg, n.reg)
	n.lease = newWriteLease(n, cfg.writeLease(), n.reg)
	n.health = newHealth(n, cfg.Health)
	n.failover = newFailoverDriver(n, n.reg)

	// Kafka listener.
	if cfg.KafkaListener != nil {
		n.kafkaLn = cfg.KafkaListener
	} else if n.kafkaLn, err = net.Listen("tcp", cfg.KafkaListen); err != nil {
		return nil, fmt.Errorf("node: kafka listener on %s: %w", cfg.KafkaListen, err)
	}
	if n.kafkaAdvertise, err = advertised("kafka advertise address (--kafka-advertise)", cfg.KafkaAdvertise, n.kafkaLn.Addr()); err != nil {
		return nil, err
	}

	// Admin listener.
	adminAdv := ""
	if cfg.AdminListen != "" {
		if n.adminAuth, err = newAdminAuth(cfg, n.reg, n.log.With("component", "admin-http")); err != nil {
			return nil, err
		}
		if cfg.AdminTLSCertFile != "" {
			if n.adminTLS, err = newCertReloader(cfg.AdminTLSCertFile, cfg.AdminTLSKeyFile, cfg.Timing.AdminFileReload, n.log.With("component", "admin-http")); err != nil {
				return nil, err
			}
		}
		if cfg.AdminAuditLog != "" {
			if n.auditFile, err = openAuditFile(cfg.AdminAuditLog, n.reg, n.log.With("component", "admin-http")); err != nil {
				return nil, err
			}
		}
		if n.adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			return nil, fmt.Errorf("node: admin listener on %s: %w", cfg.AdminListen, err)
		}
		n.admin = n.newAdminServer()
		adminAdv = n.adminLn.Addr().String()
	}

	// Peer port: Raft and peer RPC.
	n.mux, err = transport.Listen(transport.Config{
		Name:          cfg.Name,
		BindAddr:      cfg.RaftListen,
		AdvertiseAddr: cfg.RaftAdvertise,
		ServerTLS:     cfg.PeerServerTLS,
		ClientTLS:     cfg.PeerClientTLS,
		Faults:        cfg.Faults,
		Logger:        cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("node: peer port: %w", err)
	}
	n.mux.HandleRPC(n.servePeerRPC)
	n.rpc = n.mux.Client()

	if err := n.openRaft(); err != nil {
		return nil, err
	}

	// Gossip.
	n.meta = peerMeta{
		Region:   cfg.Region,
		Kafka:    n.kafkaAdvertise,
		Admin:    adminAdv,
		Raft:     n.mux.Addr().String(),
		Version:  cfg.Version,
		Expect:   cfg.BootstrapExpect,
		HasState: n.hadState,
		Brokers:  brokerRefStrings(cfg.LocalBrokers),
		Commands: n.commandSet(),
	}
	t := cfg.Timing
	var gossipKeys [][]byte
	if cfg.GossipKeyFile != "" {
		if gossipKeys, err = transport.ReadGossipKeyFile(cfg.GossipKeyFile); err != nil {
			return nil, fmt.Errorf("node: --gossip-key-file: %w", err)
		}
	}
	mc, err := transport.NewMemberlistConfig(transport.GossipConfig{
		Keys:           gossipKeys,
		Name:           cfg.Name,
		BindAddr:       cfg.GossipListen,
		AdvertiseAddr:  cfg.GossipAdvertise,
		Faults:         cfg.Faults,
		Logger:         cfg.Logger,
		ProbeInterval:  t.GossipProbeInterval,
		ProbeTimeout:   t.GossipProbeTimeout,
		GossipInterval: t.GossipInterval,
		SuspicionMult:  t.GossipSuspicionMult,
	})
	if err != nil {
		return nil, fmt.Errorf("node: gossip: %w", err)
	}
	n.meta.Gossip = net.JoinHostPort(mc.AdvertiseAddr, fmt.Sprint(mc.AdvertisePort))
	if n.gossip, err = newGossip(cfg.Name, n.meta, n.gossipChanged, cfg.Logger.With("component", "gossip")); err != nil {
		return nil, err
	}
	mc.Delegate = n.gossip
	mc.Events = n.gossip
	// The delegate serves memberlist's goroutines from Create on (a ping
	// can arrive before Create returns), so what it reads is set first;
	// the queue sizes itself by the members once there are any.
	var created atomic.Pointer[memberlist.Memberlist]
	n.gossip.bq = &memberlist.TransmitLimitedQueue{NumNodes: func() int {
		if ml := created.Load(); ml != nil {
			return ml.NumMembers()
		}
		return 1
	}, RetransmitMult: mc.RetransmitMult}
	n.gossip.onTopicsChanged = n.refreshCluster
	ml, err := memberlist.Create(mc)
	if err != nil {
		// NewMemberlistConfig bound the port; memberlist did not take it.
		if mc.Transport != nil {
			mc.Transport.Shutdown()
		}
		return nil, fmt.Errorf("node: start gossip on %s: %w", cfg.GossipListen, err)
	}
	created.Store(ml)
	n.gossip.ml = ml
	n.keyring = mc.Keyring
	n.gossipUp.Store(true)
	n.log.Info("peer started", "kafka", n.kafkaAdvertise, "admin", adminAdv, "raft", n.meta.Raft, "gossip", n.meta.Gossip,
		"has_state", n.hadState, "bootstrap_expect", cfg.BootstrapExpect)
	return n, nil
}

// Run serves until ctx ends, then stops everything. It may be called once.
func (n *Node) Run(ctx context.Context) error {
	err := errors.New("node: Run called twice")
	n.runOnce.Do(func() { err = n.run(ctx) })
	return err
}

func (n *Node) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	spawn := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	spawn(func() { n.join(ctx) })
	spawn(func() { n.reconnect(ctx) })
	spawn(func() { n.watchGossipKeys(ctx) })
	spawn(func() {
		n.gossip.watchRefused(ctx, n.cfg.Timing.GossipProbeInterval, n.cfg.Timing.GossipProbeInterval/2)
	})
	spawn(func() { n.bootstrap(ctx) })
	spawn(func() { n.leaderLoop(ctx) })
	spawn(func() { n.commitNudger(ctx) })
	spawn(func() { n.runDataPlane(ctx) })
	spawn(func() { n.quotas.run(ctx) })
	spawn(func() { n.health.run(ctx) })
	spawn(func() { n.lease.run(ctx) })
	spawn(func() { n.groupLagLoop(ctx) })
	spawn(n.acceptKafka)
	if n.admin != nil {
		spawn(func() {
			serve := func() error { return n.admin.Serve(n.adminLn) }
			if n.adminTLS != nil {
				serve = func() error { return n.admin.ServeTLS(n.adminLn, "", "") }
			}
			if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.log.Error("admin listener failed", "err", err)
			}
		})
	}
	<-ctx.Done()
	n.log.Info("peer stopping")
	if n.admin != nil {
		sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
		n.admin.Shutdown(sctx)
		c()
	}
	n.kafkaLn.Close()
	cancel()
	wg.Wait()
	return n.closeAll()
}

// join joins the configured gossip addresses, retrying until one answers.
// Once in a cluster, memberlist keeps the membership itself.
func (n *Node) join(ctx context.Context) {
	if len(n.cfg.Join) == 0 {
		return
	}
	for attempt := 1; ; attempt++ {
		k, err := n.gossip.ml.Join(n.cfg.Join)
		if k > 0 {
			n.log.Info("joined the gossip cluster", "via", n.cfg.Join, "contacted", k)
			return
		}
		if attempt == 1 || attempt%30 == 0 {
			n.log.Warn("cannot join yet; retrying", "join", n.cfg.Join, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(n.cfg.Timing.JoinRetry):
		}
	}
}

// reconnect periodically tries to rejoin the peers gossip holds dead (not
// those that left), as serf's reconnect does: memberlist never probes a dead
// member again, so two sides of a healed partition would stay apart. It
// also retries the Join addresses while this peer is alone.
func (n *Node) reconnect(ctx context.Context) {
	t := time.NewTicker(n.cfg.Timing.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var addrs []string
		for _, m := range n.gossip.snapshot() {
			if m.state == memberDead && m.addr != "" {
				addrs = append(addrs, m.addr)
			}
		}
		if n.gossip.ml.NumMembers() <= 1 {
			addrs = append(addrs, n.cfg.Join...)
		}
		if len(addrs) == 0 {
			continue
		}
		if k, err := n.gossip.ml.Join(addrs); k > 0 {
			n.log.Info("reconnected to peers gossip held dead", "contacted", k)
		} else {
			n.log.Debug("reconnect attempt failed", "addrs", addrs, "err", err)
		}
	}
}

// closeAll releases what New acquired, in reverse order. With LeaveOnStop
// (the default) a stopping peer announces its leave, so the others stop
// presenting it at once; without it they see it dead after the failure
// detector's timeout. Either way the leader keeps its Raft seat for
// DeadPeerTimeout, so a restart is seamless.
func (n *Node) closeAll() error {
	var errs []error
	n.closeLoopback()
	if n.gossip != nil && n.gossip.ml != nil {
		if n.cfg.LeaveOnStop {
			// Best effort: when every peer stops at once nobody may be left
			// to hear it, and failure detection covers that case.
			if err := n.gossip.ml.Leave(2 * time.Second); err != nil {
				n.log.Info("gossip leave not acknowledged", "err", err)
			}
		}
		if err := n.gossip.ml.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("gossip shutdown: %w", err))
		}
	}
	if n.raft != nil {
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
		}
	}
	if n.trans != nil {
		n.trans.Close()
	}
	if n.mux != nil {
		n.mux.Close()
	}
	if n.store != nil {
		if err := n.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raft store: %w", err))
		}
	}
	if n.kafkaLn != nil {
		n.kafkaLn.Close()
	}
	if err := n.auditFile.close(); err != nil {
		errs = append(errs, fmt.Errorf("admin audit log: %w", err))
	}
	if n.adminLn != nil {
		n.adminLn.Close()
	}
	return errors.Join(errs...)
}

// State implements kafka.View: the latest applied state.
func (n *Node) State() *fsm.State { return n.fsm.State() }

// Live implements kafka.View: a peer is presented while gossip sees it
// alive (this peer always is).
func (n *Node) Live(id int32) bool {
	p, ok := n.fsm.State().Peer(id)
	return ok && n.gossip.isLive(p.Name)
}

// Name is the peer's name.
func (n *Node) Name() string { return n.cfg.Name }

// ID returns the broker id the replicated state gives this peer.
func (n *Node) ID() (int32, bool) {
	p, ok := n.fsm.State().PeerByName(n.cfg.Name)
	return p.ID, ok
}

// KafkaAddr is the advertised Kafka address.
func (n *Node) KafkaAddr() string { return n.kafkaAdvertise }

// AdminAddr is the bound admin address, or "".
func (n *Node) AdminAddr() string {
	if n.adminLn == nil {
		return ""
	}
	return n.adminLn.Addr().String()
}

// RaftAddr is the advertised peer-port address.
func (n *Node) RaftAddr() string { return n.mux.Addr().String() }

// GossipAddr is the advertised gossip address.
func (n *Node) GossipAddr() string { return n.meta.Gossip }

// IsLeader reports whether this peer is the Raft leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the leader's name, or "" when none is known.
func (n *Node) Leader() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// RaftStats are hashicorp/raft's statistics for this peer.
func (n *Node) RaftStats() map[string]string { return n.raft.Stats() }

// RaftServers lists the names in this peer's Raft configuration, sorted.
func (n *Node) RaftServers() []string {
	servers, _, err := n.raftServers()
	if err != nil {
		return nil
	}
	return sortedNames(servers)
}

// Ready reports nil once the data plane serves clients.
func (n *Node) Ready() error { return n.readiness() }

// WaitIndex blocks until this peer has applied the Raft index idx.
func (n *Node) WaitIndex(ctx context.Context, idx uint64) error {
	for {
		changed := n.stateChanged.wait()
		if n.fsm.State().Index >= idx {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("peer %s waiting for index %d (at %d): %w", n.cfg.Name, idx, n.fsm.State().Index, ctx.Err())
		case <-changed:
		}
	}
}

// WaitReady blocks until the data plane serves clients.
func (n *Node) WaitReady(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		err := n.readiness()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("peer %s not ready: %v: %w", n.cfg.Name, err, ctx.Err())
		case <-t.C:
		}
	}
}
