package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/kafka"
)

// The data plane runs once the replicated state names this peer (its broker
// id). The node owns the Kafka listener: its accept loop hands connections
// to the data plane, or closes them at once while there is none, so
// clients fail fast instead of hanging. The data plane serves every
// backend cluster of the state; the node keeps one kafka.Backend per
// cluster, starting one when a cluster is put, replacing it when its
// definition changes (its connections finish on the old one) and stopping
// it when the cluster is deleted.

// dataPlane is the running Kafka server.
type dataPlane struct {
	selfID  int32
	ln      *chanListener
	srv     *kafka.Server
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	running map[string]*backendRun
}

// backendRun is one backend cluster's running Backend.
type backendRun struct {
	def    fsm.Cluster
	be     *kafka.Backend
	cancel context.CancelFunc
	done   chan struct{}
}

// readyCluster is the cluster whose metadata makes the peer ready: the
// default cluster, else the first by name.
func readyCluster(st *fsm.State) (fsm.Cluster, bool) {
	if c, ok := st.Cluster(st.Routes.DefaultCluster); ok {
		return c, true
	}
	if len(st.Clusters) == 0 {
		return fsm.Cluster{}, false
	}
	best := st.Clusters[0]
	for _, c := range st.Clusters[1:] {
		if c.Name < best.Name {
			best = c
		}
	}
	return best, true
}

// runDataPlane starts the data plane once this peer is registered and
// keeps its backends in step with the state, until ctx ends.
func (n *Node) runDataPlane(ctx context.Context) {
	var dp *dataPlane
	cut := map[string]int64{} // failed-over clusters whose client traffic was cut (failover.go)
	defer func() {
		if dp != nil {
			dp.stop()
			n.dp.Store(nil)
		}
	}()
	for {
		changed := n.stateChanged.wait()
		st := n.fsm.State()
		self, registered := st.PeerByName(n.cfg.Name)
		switch {
		case !registered && dp != nil:
			n.log.Warn("data plane stopped: the state no longer names this peer")
			dp.stop()
			dp = nil
			n.dp.Store(nil)
		case registered && dp != nil && dp.selfID != self.ID:
			// Ids are stable; only an operator removing and re-adding the
			// peer changes it.
			n.log.Warn("restarting the data plane: this peer's broker id changed", "from", dp.selfID, "to", self.ID)
			dp.stop()
			dp = nil
			n.dp.Store(nil)
		}
		if registered && dp == nil {
			var err error
			if dp, err = n.startDataPlane(ctx, self.ID); err != nil {
				n.log.Error("data plane cannot start", "err", err)
			} else {
				n.dp.Store(dp)
			}
		}
		if dp != nil {
			n.syncBackends(ctx, dp, st)
			n.cutFailedOver(dp, st, cut)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

func (n *Node) startDataPlane(ctx context.Context, selfID int32) (*dataPlane, error) {
	ln := newChanListener(n.kafkaLn.Addr())
	srv, err := kafka.NewServer(kafka.Config{
		Listener:      ln,
		NodeID:        selfID,
		ClusterID:     n.cfg.ClusterID,
		MaxFrameBytes: n.cfg.MaxFrameBytes,
		Limits:        n.cfg.KafkaLimits,
		Security:      n.cfg.KafkaSecurity,
		Authenticates: n.cfg.KafkaSecurity.Authenticating(),
		Limiter:       n.quotas.lim,
		Writes:        n.lease,
		Proposer:      n,
		// Idempotent producers' real ids, shared through the FSM
		// (producer_ids.go).
		SharedProducerIDs: sharedProducerIDs{n},
		Authz:             n.cfg.KafkaAuthz,
		Logger:            n.cfg.Logger,
		TopicsChanged:     n.gossip.broadcastTopicsChanged,
	}, n, n.kafkaMetrics)
	if err != nil {
		return nil, err
	}
	if err := srv.Listen(); err != nil {
		return nil, err
	}
	dctx, cancel := context.WithCancel(ctx)
	dp := &dataPlane{selfID: selfID, ln: ln, srv: srv, cancel: cancel, done: make(chan struct{}), running: map[string]*backendRun{}}
	go func() {
		defer close(dp.done)
		if err := srv.Serve(dctx); err != nil {
			n.log.Error("kafka server stopped", "err", err)
		}
	}()
	n.metrics.dataPlanes.Inc()
	n.log.Info("data plane serving", "broker_id", selfID, "kafka", n.kafkaAdvertise)
	return dp, nil
}

// backendConfig is the configuration of cl's Backend on this peer.
func (n *Node) backendConfig(cl fsm.Cluster) kafka.BackendConfig {
	return kafka.BackendConfig{
		Name:             cl.Name,
		Bootstrap:        cl.Bootstrap,
		TLS:              cl.TLS,
		SASL:             cl.SASL,
		MetadataRefresh:  n.cfg.MetadataRefresh,
		ListFromSnapshot: !n.cfg.MetadataListFromBackend,
		BrokerTimeout:    n.cfg.BackendBrokerTimeout,
		MaxResponseBytes: n.cfg.BackendMaxResponseBytes,
		Metrics:          n.kafkaMetrics,
		Logger:           n.cfg.Logger,
	}
}

// refreshCluster makes the named backend refresh its metadata: another
// peer's client changed its topics (gossip's topics-changed broadcast).
// Until the refresh lands, its snapshot is not fresh, so listings ask the
// backend (kafka/metadata_cache.go). Unknown names are ignored.
func (n *Node) refreshCluster(cluster string) {
	dp := n.dp.Load()
	if dp == nil {
		return
	}
	dp.mu.Lock()
	run, ok := dp.running[cluster]
	dp.mu.Unlock()
	if ok {
		run.be.TriggerRefresh()
	}
}

// syncBackends starts, replaces and stops backends to match st. Replaced
// and deleted backends are stopped after dp.mu is released and the server
// has the new set: a stop waits for the backend's loop to end, and readiness
// and the admin API must not wait behind it.
func (n *Node) syncBackends(ctx context.Context, dp *dataPlane, st *fsm.State) {
	var stopping []*backendRun
	defer func() {
		for _, run := range stopping {
			run.stop()
		}
	}()
	dp.mu.Lock()
	defer dp.mu.Unlock()
	changed := false
	want := map[string]bool{}
	for _, cl := range st.Clusters {
		want[cl.Name] = true
		if cur, ok := dp.running[cl.Name]; ok && reflect.DeepEqual(cur.def, cl) {
			continue
		}
		be, err := kafka.NewBackend(n.backendConfig(cl))
		if err != nil {
			n.log.Error("backend cluster not served", "cluster", cl.Name, "err", err)
			continue
		}
		bctx, cancel := context.WithCancel(ctx)
		run := &backendRun{def: cl, be: be, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(run.done)
			be.Run(bctx)
		}()
		if old, ok := dp.running[cl.Name]; ok {
			n.log.Info("backend cluster redefined; new requests use the new definition", "cluster", cl.Name)
			stopping = append(stopping, old)
		} else {
			n.log.Info("serving backend cluster", "cluster", cl.Name, "bootstrap", cl.Bootstrap)
		}
		dp.running[cl.Name] = run
		changed = true
	}
	for name, run := range dp.running {
		if !want[name] {
			n.log.Info("backend cluster deleted; no longer served", "cluster", name)
			stopping = append(stopping, run)
			delete(dp.running, name)
			changed = true
		}
	}
	if changed {
		bs := make([]*kafka.Backend, 0, len(dp.running))
		for _, run := range dp.running {
			bs = append(bs, run.be)
		}
		dp.srv.SetBackends(bs)
	}
}

func (r *backendRun) stop() {
	r.cancel()
	<-r.done
}

func (dp *dataPlane) stop() {
	dp.cancel()
	<-dp.done
	dp.mu.Lock()
	running := dp.running
	dp.running = map[string]*backendRun{}
	dp.mu.Unlock()
	for _, run := range running {
		run.stop()
	}
}

// backend returns the running backend of cluster name.
func (dp *dataPlane) backend(name string) (*kafka.Backend, bool) {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	run, ok := dp.running[name]
	if !ok {
		return nil, false
	}
	return run.be, true
}

// acceptKafka hands each client connection to the running data plane, or
// holds it until there is one (deliverWhenReady).
func (n *Node) acceptKafka() {
	var backoff time.Duration
	stopped := make(chan struct{}) // closed once the listener is
	defer close(stopped)
	var waiting atomic.Int32
	for {
		c, err := n.kafkaLn.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off and go on,
			// as net/http does, rather than stop serving for good.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			n.log.Error("kafka accept failed; retrying", "err", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if dp := n.dp.Load(); dp != nil && dp.ln.deliver(c) {
			continue
		}
		if waiting.Add(1) <= maxWaitingConns {
			go func() {
				defer waiting.Add(-1)
				n.deliverWhenReady(c, stopped)
			}()
			continue
		}
		waiting.Add(-1)
		n.refuseEarly(c)
	}
}

// A client that connects while the data plane is not running yet (a
// restarted peer replaying its state, one not yet registered) is held for
// up to dataPlaneWait and handed over once it runs: its first request is
// answered late rather than its connection closed. A close there is what
// franz-go reports as "broker closed the connection immediately during api
// versions negotiation" and fails the records waiting on that broker (74 of
// them in a rolling restart under load, test/chaos). At most
// maxWaitingConns wait; more, or a wait past dataPlaneWait, are closed.
const (
	dataPlaneWait   = 10 * time.Second
	maxWaitingConns = 1024
)

// deliverWhenReady hands c to the data plane once it runs, or closes it
// after dataPlaneWait or when the listener closes.
func (n *Node) deliverWhenReady(c net.Conn, stopped <-chan struct{}) {
	deadline := time.NewTimer(dataPlaneWait)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if dp := n.dp.Load(); dp != nil && dp.ln.deliver(c) {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			n.refuseEarly(c)
			return
		case <-stopped:
			c.Close()
			return
		}
	}
}

func (n *Node) refuseEarly(c net.Conn) {
	n.metrics.noBackend.Inc()
	n.log.Debug("closing a client connection: this peer has no data plane (not registered)", "client", c.RemoteAddr())
	c.Close()
}

// readiness is nil once the data plane serves clients: this peer is
// registered and the default cluster's (else the first cluster's) metadata
// is loaded. Other clusters still loading do not make a peer unready; their
// requests fail until they load, and /v1/status shows them.
func (n *Node) readiness() error {
	st := n.fsm.State()
	if _, ok := st.PeerByName(n.cfg.Name); !ok {
		return fmt.Errorf("this peer (%s) is not registered in the replicated state yet: it has not joined a cluster with a leader", n.cfg.Name)
	}
	cl, ok := readyCluster(st)
	if !ok {
		return errors.New("no backend cluster is configured: PUT /v1/clusters/{name} (switchyard ctl clusters set)")
	}
	dp := n.dp.Load()
	if dp == nil {
		return errors.New("the data plane is not running (see the log)")
	}
	be, ok := dp.backend(cl.Name)
	if !ok {
		return fmt.Errorf("backend cluster %q is not served (see the log)", cl.Name)
	}
	select {
	case <-be.Ready():
		return nil
	default:
		return fmt.Errorf("backend cluster %q: metadata not loaded yet (are its bootstrap brokers %v reachable?)", cl.Name, cl.Bootstrap)
	}
}

// chanListener is a net.Listener fed by the node's accept loop; closing it
// stops one data-plane generation without closing the node's socket.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
