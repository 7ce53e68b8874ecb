package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/kafka"
)

// The data plane runs once the replicated state names this peer (its broker
// id) and a backend cluster. The node owns the Kafka listener: its accept
// loop hands connections to the current data plane, or closes them at once
// while there is none, so clients fail fast instead of hanging.
//
// Until several clusters are served at once, the data plane serves the
// default cluster, else the only cluster, else the first by name; when that
// cluster's definition changes, the data plane restarts on the new one
// (client connections reconnect, as on a broker restart).

// dataPlane is one generation of the Kafka server over one backend.
type dataPlane struct {
	cluster fsm.Cluster
	selfID  int32
	ln      *chanListener
	backend *kafka.Backend
	cancel  context.CancelFunc
	done    chan struct{}
}

// servedCluster picks the cluster the data plane serves from st.
func servedCluster(st *fsm.State) (fsm.Cluster, bool) {
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

// runDataPlane starts, restarts and stops the data plane as the state
// changes, until ctx ends.
func (n *Node) runDataPlane(ctx context.Context) {
	var cur *dataPlane
	stop := func() {
		if cur != nil {
			cur.cancel()
			<-cur.done
			n.dp.Store(nil)
			cur = nil
		}
	}
	defer stop()
	for {
		changed := n.stateChanged.wait()
		st := n.fsm.State()
		self, registered := st.PeerByName(n.cfg.Name)
		cl, hasCluster := servedCluster(st)
		switch {
		case !registered || !hasCluster:
			if cur != nil {
				n.log.Warn("data plane stopped: the state no longer names this peer or any backend cluster")
			}
			stop()
		case cur == nil || cur.selfID != self.ID || !reflect.DeepEqual(cur.cluster, cl):
			if cur != nil {
				n.log.Info("restarting the data plane: its backend cluster changed", "cluster", cl.Name)
			}
			stop()
			dp, err := n.startDataPlane(ctx, self.ID, cl)
			if err != nil {
				n.log.Error("data plane cannot start", "cluster", cl.Name, "err", err)
			} else {
				cur = dp
				n.dp.Store(dp)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

func (n *Node) startDataPlane(ctx context.Context, selfID int32, cl fsm.Cluster) (*dataPlane, error) {
	if cl.TLS || cl.SASLMechanism != "" {
		return nil, fmt.Errorf("cluster %q asks for TLS or SASL to its brokers, which this version does not support yet", cl.Name)
	}
	be, err := kafka.NewBackend(kafka.BackendConfig{
		Name:            cl.Name,
		Bootstrap:       cl.Bootstrap,
		MetadataRefresh: n.cfg.MetadataRefresh,
		Logger:          n.cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	ln := newChanListener(n.kafkaLn.Addr())
	srv, err := kafka.NewServer(kafka.Config{
		Listener:      ln,
		NodeID:        selfID,
		ClusterID:     n.cfg.ClusterID,
		MaxFrameBytes: n.cfg.MaxFrameBytes,
		Logger:        n.cfg.Logger,
	}, n, be, n.kafkaMetrics)
	if err != nil {
		return nil, err
	}
	if err := srv.Listen(); err != nil {
		return nil, err
	}
	dctx, cancel := context.WithCancel(ctx)
	dp := &dataPlane{cluster: cl, selfID: selfID, ln: ln, backend: be, cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		be.Run(dctx)
	}()
	go func() {
		defer wg.Done()
		if err := srv.Serve(dctx); err != nil {
			n.log.Error("kafka server stopped", "err", err)
		}
	}()
	go func() {
		wg.Wait()
		close(dp.done)
	}()
	n.metrics.dataPlanes.Inc()
	n.log.Info("data plane serving", "cluster", cl.Name, "broker_id", selfID, "kafka", n.kafkaAdvertise)
	return dp, nil
}

// acceptKafka hands each client connection to the running data plane, or
// closes it when there is none yet.
func (n *Node) acceptKafka() {
	var backoff time.Duration
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
		n.metrics.noBackend.Inc()
		n.log.Debug("closing a client connection: no backend cluster is configured yet", "client", c.RemoteAddr())
		c.Close()
	}
}

// readiness is nil once the data plane serves clients from a backend whose
// metadata is loaded; otherwise it says what is missing.
func (n *Node) readiness() error {
	st := n.fsm.State()
	if _, ok := st.PeerByName(n.cfg.Name); !ok {
		return fmt.Errorf("this peer (%s) is not registered in the replicated state yet: it has not joined a cluster with a leader", n.cfg.Name)
	}
	dp := n.dp.Load()
	if dp == nil {
		if _, ok := servedCluster(st); !ok {
			return errors.New("no backend cluster is configured: PUT /v1/clusters/{name} (switchyard ctl clusters set)")
		}
		return errors.New("the data plane is not running (see the log)")
	}
	select {
	case <-dp.backend.Ready():
		return nil
	default:
		return fmt.Errorf("backend cluster %q: metadata not loaded yet (are its bootstrap brokers %v reachable?)", dp.cluster.Name, dp.cluster.Bootstrap)
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
