package kafka

// Shared fixtures for the package's unit and fuzz tests: a fixed cluster
// state, a backend whose caches are filled directly (no network), and a
// client connection whose upstreams write into memory so a handler can be
// driven end to end, its upstream calls answered synchronously, and its
// response slot inspected.

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const fxCluster = "c1"

// fxView is a View over a fixed state and a liveness map. Tests change
// liveness between calls, never concurrently with them.
type fxView struct {
	st   *fsm.State
	live map[int32]bool
}

func (v *fxView) State() *fsm.State  { return v.st }
func (v *fxView) Live(id int32) bool { return v.live[id] }
func (v *fxView) liveIDs() (ids []int32) {
	for _, p := range v.st.Peers {
		if v.live[p.ID] {
			ids = append(ids, p.ID)
		}
	}
	return ids
}

// fxState is four peers in front of cluster c1 (brokers 100–104):
//
//	peer 0: co-located with broker 100
//	peer 1: co-located with broker 101 (and broker 102 of another cluster)
//	peer 2: co-located with broker 103; dead in the default liveness
//	peer 3: no co-located broker
//
// so 100 and 101 are presented by their peers and 102, 103 and 104 by
// rendezvous over the live peers.
func fxState() *fsm.State {
	return &fsm.State{
		Peers: []fsm.Peer{
			{ID: 0, Name: "p0", Region: "east", KafkaAddr: "p0.proxy.test:9092", LocalBrokers: []fsm.BrokerRef{{Cluster: fxCluster, BrokerID: 100}}},
			{ID: 1, Name: "p1", KafkaAddr: "p1.proxy.test:9093", LocalBrokers: []fsm.BrokerRef{{Cluster: fxCluster, BrokerID: 101}, {Cluster: "other", BrokerID: 102}}},
			{ID: 2, Name: "p2", Region: "west", KafkaAddr: "p2.proxy.test:9094", LocalBrokers: []fsm.BrokerRef{{Cluster: fxCluster, BrokerID: 103}}},
			{ID: 3, Name: "p3", Region: "west", KafkaAddr: "p3.proxy.test:9095"},
		},
		Clusters: []fsm.Cluster{
			{Name: fxCluster, Bootstrap: []string{"b100.kafka.internal:19100"}},
			{Name: "other", Bootstrap: []string{"o.kafka.internal:9092"}},
		},
		Routes: fsm.Routes{DefaultCluster: fxCluster},
	}
}

func fxLive() map[int32]bool { return map[int32]bool{0: true, 1: true, 3: true} }

var (
	fxOrdersID = [16]byte{0xaa, 1}
	fxEventsID = [16]byte{0xbb, 2}
)

// fxMetadata is the backend's own metadata: real broker ids and hosts.
// Topic "orders" has partitions led by 100, 101, 102 and 103; "events" by
// 100 only.
func fxMetadata() *kmsg.MetadataResponse {
	m := kmsg.NewPtrMetadataResponse()
	m.Version = kmsg.NewPtrMetadataResponse().MaxVersion()
	clusterID := "backend-cluster-id"
	m.ClusterID = &clusterID
	m.ControllerID = 101
	for id := int32(100); id <= 104; id++ {
		rack := fmt.Sprintf("rack-%d", id)
		m.Brokers = append(m.Brokers, kmsg.MetadataResponseBroker{NodeID: id, Host: fmt.Sprintf("b%d.kafka.internal", id), Port: 19000 + id, Rack: &rack})
	}
	part := func(p, leader int32, replicas ...int32) kmsg.MetadataResponseTopicPartition {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition, mp.Leader, mp.LeaderEpoch = p, leader, 7
		mp.Replicas = replicas
		mp.ISR = replicas
		return mp
	}
	orders := kmsg.NewMetadataResponseTopic()
	orders.Topic, orders.TopicID = kmsg.StringPtr("orders"), fxOrdersID
	orders.Partitions = []kmsg.MetadataResponseTopicPartition{
		part(0, 100, 100, 101, 102),
		part(1, 101, 101, 102, 100),
		part(2, 102, 102, 100, 101),
		part(3, 103, 103, 104, 100),
	}
	events := kmsg.NewMetadataResponseTopic()
	events.Topic, events.TopicID = kmsg.StringPtr("events"), fxEventsID
	events.Partitions = []kmsg.MetadataResponseTopicPartition{part(0, 100, 100), part(1, 100, 100)}
	m.Topics = []kmsg.MetadataResponseTopic{orders, events}
	return m
}

// fxVersions is what the backend supports: a few keys, some wider and
// some narrower than kmsg.
func fxVersions() *versionSet {
	vs := &versionSet{epoch: 3}
	for i := range vs.keys {
		vs.keys[i] = versionRange{0, -1}
	}
	set := func(k, lo, hi int16) { vs.keys[k] = versionRange{lo, hi} }
	set(0, 3, 11)    // Produce: narrower than kmsg
	set(1, 4, 99)    // Fetch: wider than kmsg
	set(2, 1, 10)    // ListOffsets
	set(3, 0, 12)    // Metadata
	set(4, 0, 7)     // LeaderAndIsr: broker-only, no handler
	set(10, 0, 6)    // FindCoordinator
	set(18, 0, 4)    // ApiVersions: ours is advertised regardless
	set(24, 0, 5)    // AddPartitionsToTxn: capped at v3
	set(32, 5, 4)    // DescribeConfigs: empty range
	set(60, 0, 1)    // DescribeCluster
	set(75, 0, 0)    // DescribeTopicPartitions
	set(34, 0, 2)    // AlterReplicaLogDirs: not served (names real brokers)
	set(19, -3, 200) // CreateTopics: nonsense backend range, clamped
	vs.supported = []kmsg.ApiVersionsResponseSupportedFeature{{Name: "metadata.version", MinVersion: 1, MaxVersion: 20}}
	vs.finalized = []kmsg.ApiVersionsResponseFinalizedFeature{{Name: "metadata.version", MinVersionLevel: 20, MaxVersionLevel: 20}}
	return vs
}

// fx is a Server over fxState and a backend loaded with fxMetadata.
type fx struct {
	view    *fxView
	backend *Backend
	srv     *Server
	reg     *prometheus.Registry
	metrics *Metrics
}

type fxOpt func(*Config)

func withClusterID(id string) fxOpt { return func(c *Config) { c.ClusterID = id } }
func withNodeID(id int32) fxOpt     { return func(c *Config) { c.NodeID = id } }

func newFx(t testing.TB, opts ...fxOpt) *fx {
	t.Helper()
	reg := prometheus.NewRegistry()
	return newFxMetrics(t, reg, NewMetrics(reg, 10), opts...)
}

// newFxMetrics builds a fresh fixture on shared metrics, for fuzz targets
// that want fresh caches per input without re-registering metrics.
func newFxMetrics(t testing.TB, reg *prometheus.Registry, m *Metrics, opts ...fxOpt) *fx {
	t.Helper()
	view := &fxView{st: fxState(), live: fxLive()}
	b, err := NewBackend(BackendConfig{Name: fxCluster, Bootstrap: []string{"127.0.0.1:1"}, Metrics: m})
	if err != nil {
		t.Fatalf("NewBackend: %v", err)
	}
	b.updateMetadata(fxMetadata(), true)
	b.versions.Store(fxVersions())
	cfg := Config{ListenAddr: "127.0.0.1:0", NodeID: 0}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := NewServer(cfg, view, m)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	srv.SetBackends([]*Backend{b})
	return &fx{view: view, backend: b, srv: srv, reg: reg, metrics: m}
}

// refreshRequested reports (and consumes) a pending metadata refresh.
func (f *fx) refreshRequested() bool {
	select {
	case <-f.backend.refreshCh:
		return true
	default:
		return false
	}
}

// topicBytes reads switchyard_kafka_topic_bytes_total for (topic, dir)
// from the registry without creating the series.
func topicBytes(t testing.TB, reg *prometheus.Registry, topic, dir string) float64 {
	t.Helper()
	return gatherMetric(t, reg, "switchyard_kafka_topic_bytes_total", "topic", topic, "direction", dir)
}

// fxConn is a client connection whose upstreams (one per backend broker)
// write into memory. Nothing dials and no goroutine runs: upstream calls
// are answered synchronously by run.
type fxConn struct {
	t     testing.TB
	c     *clientConn
	wires map[int32]*bytes.Buffer
}

func (f *fx) conn(t testing.TB) *fxConn {
	c := &clientConn{
		s:       f.srv,
		log:     f.srv.log,
		ups:     map[target]*upstream{},
		closing: make(chan struct{}),
	}
	h := &fxConn{t: t, c: c, wires: map[int32]*bytes.Buffer{}}
	for _, id := range f.backend.brokerIDs() {
		w := &bytes.Buffer{}
		h.wires[id] = w
		c.ups[target{f.backend, id}] = &upstream{c: c, be: f.backend, broker: id, bw: bufio.NewWriterSize(w, 512), inflight: make(chan upCall, 16)}
	}
	return h
}

// exchange is what one request did.
type exchange struct {
	// err is the handler's error (it would close the connection).
	err error
	// sent holds the frames sent upstream per broker, size prefix included.
	sent map[int32][][]byte
	// slots is how many response slots the handler reserved.
	slots int
	// done reports whether the reserved slot was finished.
	done bool
	// out and outErr are what the slot finished with.
	out    []byte
	outErr error
}

// answerFunc builds the backend's response frame (size prefix included) to
// a request frame sent to broker.
type answerFunc func(broker int32, req []byte) []byte

// run feeds frame (size prefix included) to handler hf, answers each
// upstream call with answer, and reports the outcome.
func (h *fxConn) run(hf handler, frame []byte, answer answerFunc) exchange {
	h.t.Helper()
	buf := &buffer{b: slices.Clone(frame)}
	hdr, err := parseRequestHeader(buf.b[4:])
	if err != nil {
		h.t.Fatalf("request header: %v", err)
	}
	r := h.c.newRequest(hdr, buf, time.Now())
	ex := exchange{sent: map[int32][][]byte{}}
	ex.err = hf(r)
	// The reader goroutine flushes before blocking on the next frame.
	if err := h.c.flushUpstreams(); err != nil {
		h.t.Fatalf("flush upstreams: %v", err)
	}
	for _, id := range brokerOrder(h.wires) {
		frames := splitFrames(h.t, h.wires[id].Bytes())
		h.wires[id].Reset()
		if len(frames) > 0 {
			ex.sent[id] = frames
		}
		var calls []upCall
	drain:
		for {
			select {
			case call := <-h.c.ups[target{h.c.s.backendSet().sorted[0], id}].inflight:
				calls = append(calls, call)
			default:
				break drain
			}
		}
		if len(calls) > 0 && len(calls) != len(frames) {
			h.t.Fatalf("broker %d: %d calls await a response but %d frames were sent", id, len(calls), len(frames))
		}
		for i, call := range calls {
			if got := be32(frames[i][8:]); got != call.corr {
				h.t.Fatalf("broker %d: frame has correlation id %d, call expects %d", id, got, call.corr)
			}
			resp := answer(id, frames[i])
			call.cb(&buffer{b: resp}, nil)
		}
	}
	for p := h.c.dequeue(); p != nil; p = h.c.dequeue() {
		ex.slots++
		select {
		case <-p.done:
			ex.done = true
			ex.outErr = p.err
			if p.out != nil {
				ex.out = slices.Clone(p.out.b)
			}
		default:
		}
	}
	return ex
}

// splitFrames splits concatenated size-prefixed frames.
func splitFrames(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	r := bytes.NewReader(b)
	for r.Len() > 0 {
		buf, err := readFrame(r, 1<<30)
		if err != nil {
			t.Fatalf("frame sent upstream does not parse: %v", err)
		}
		out = append(out, slices.Clone(buf.b))
		putBuffer(buf)
	}
	return out
}

// decodeFrame parses a request frame (size prefix included) as kmsg would.
func decodeFrame(t testing.TB, frame []byte) (requestHeader, kmsg.Request) {
	t.Helper()
	hdr, err := parseRequestHeader(frame[4:])
	if err != nil {
		t.Fatalf("frame sent upstream: header: %v", err)
	}
	req := kmsg.RequestForKey(hdr.key)
	req.SetVersion(hdr.version)
	if err := req.ReadFrom(frame[4+hdr.bodyOff:]); err != nil {
		t.Fatalf("frame sent upstream: %s v%d body: %v", kmsg.NameForKey(hdr.key), hdr.version, err)
	}
	return hdr, req
}

// decodeOut decodes a response frame sent to the client.
func decodeOut(t testing.TB, frame []byte, key, version int16) (int32, kmsg.Response) {
	t.Helper()
	if len(frame) < 8 {
		t.Fatalf("response frame of %d bytes", len(frame))
	}
	if got := int(be32(frame)); got != len(frame)-4 {
		t.Fatalf("size prefix %d, frame has %d bytes after it", got, len(frame)-4)
	}
	resp, err := decodeResponse(&buffer{b: frame}, key, version)
	if err != nil {
		t.Fatalf("response to client does not decode: %v", err)
	}
	return be32(frame[4:]), resp
}

// reqFrame encodes req at version as a client would.
func reqFrame(req kmsg.Request, version int16, corr int32) []byte {
	req.SetVersion(version)
	return appendRequest(nil, req, corr, kmsg.StringPtr("fx-client"))
}

// respFrame encodes resp at version as a backend would.
func respFrame(resp kmsg.Response, version int16, corr int32) []byte {
	resp.SetVersion(version)
	return appendResponse(nil, resp, corr)
}

// fixedAnswer answers every call with the same response, at the request's
// version and correlation id.
func fixedAnswer(resp kmsg.Response) answerFunc {
	return func(_ int32, req []byte) []byte {
		return respFrame(resp, fxBe16(req[6:]), be32(req[8:]))
	}
}

func fxBe16(b []byte) int16 { return int16(uint16(b[0])<<8 | uint16(b[1])) }

// brokerOrder returns the keys of m sorted, for deterministic test output.
func brokerOrder[V any](m map[int32]V) []int32 {
	ids := make([]int32, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// reqOn is an empty request of key at version on c, served under the
// state as it is now.
func reqOn(c *clientConn, key, version int16) *request {
	return c.newRequest(requestHeader{key: key, version: version}, &buffer{b: make([]byte, 4)}, time.Now())
}

// testPresenter is what a connection presents of be under the state as it
// is now.
func (s *Server) testPresenter(be *Backend) *presenter {
	return newPresenter(s.view.State(), s.view.Live, be.Name())
}
