package kafka

// A two-cluster fixture for the characterisation tests (TestCharacterise*):
// they pin what a client sees from each served key (which backend cluster
// and broker receives what, per-partition error cxCodes, merged answers, peer
// ids in place of broker ids) so that a restructuring of the request path
// can be checked against today's behaviour. They assert client-visible
// fields and where requests went, not how the handlers are built, and
// reach the handlers only through the server's handler table by key.

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	cxEast  = "east"  // the default cluster
	cxWest  = "west"  // topics "payments" (exact) and "w.*" (prefix), groups "wg-*"
	cxGhost = "ghost" // routed to by "x.*" but has no backend here: unrouted
)

// cxState: five peers in front of east (brokers 100, 101, 102; controller
// 101) and west (brokers 100, 201, 202; controller 202). Broker 100 exists
// in both clusters, as broker ids of separate clusters do.
//
//	peer 0 (this node): co-located with east/100 and west/201
//	peer 1: co-located with east/101
//	peer 2: co-located with west/100
//	peer 3: no co-located broker
//	peer 4: co-located with east/102; dead
func cxState() *fsm.State {
	return &fsm.State{
		Peers: []fsm.Peer{
			{ID: 0, Name: "p0", Region: "r0", KafkaAddr: "p0.proxy.test:9092", LocalBrokers: []fsm.BrokerRef{{Cluster: cxEast, BrokerID: 100}, {Cluster: cxWest, BrokerID: 201}}},
			{ID: 1, Name: "p1", KafkaAddr: "p1.proxy.test:9093", LocalBrokers: []fsm.BrokerRef{{Cluster: cxEast, BrokerID: 101}}},
			{ID: 2, Name: "p2", Region: "r2", KafkaAddr: "p2.proxy.test:9094", LocalBrokers: []fsm.BrokerRef{{Cluster: cxWest, BrokerID: 100}}},
			{ID: 3, Name: "p3", KafkaAddr: "p3.proxy.test:9095"},
			{ID: 4, Name: "p4", KafkaAddr: "p4.proxy.test:9096", LocalBrokers: []fsm.BrokerRef{{Cluster: cxEast, BrokerID: 102}}},
		},
		Clusters: []fsm.Cluster{
			{Name: cxEast, Bootstrap: []string{"e100.kafka.internal:9100"}},
			{Name: cxGhost, Bootstrap: []string{"g.kafka.internal:9092"}},
			{Name: cxWest, Bootstrap: []string{"w100.kafka.internal:9100"}},
		},
		Routes: fsm.Routes{
			Topics:         []fsm.TopicRoute{{Topic: "payments", Cluster: cxWest}},
			Prefixes:       []fsm.PrefixRoute{{Prefix: "w.", Cluster: cxWest}, {Prefix: "x.", Cluster: cxGhost}},
			GroupPrefixes:  []fsm.PrefixRoute{{Prefix: "wg-", Cluster: cxWest}},
			DefaultCluster: cxEast,
		},
	}
}

func cxLive() map[int32]bool { return map[int32]bool{0: true, 1: true, 2: true, 3: true} }

// cxMetadata is each cluster's own metadata. "payments" exists in both
// clusters but routes to west.
//
//	east: orders p0→100 p1→101 p2→102; events p0,p1→100; payments p0→101
//	west: w.clicks p0→201 p1→202; payments p0→100 p1→201
func cxMetadata(cluster string) *kmsg.MetadataResponse {
	m := kmsg.NewPtrMetadataResponse()
	m.Version = m.MaxVersion()
	id := cluster + "-backend-id"
	m.ClusterID = &id
	prefix := cluster[:1]
	brokers := []int32{100, 101, 102}
	m.ControllerID = 101
	if cluster == cxWest {
		brokers = []int32{100, 201, 202}
		m.ControllerID = 202
	}
	for _, b := range brokers {
		rack := fmt.Sprintf("%s-rack-%d", cluster, b)
		m.Brokers = append(m.Brokers, kmsg.MetadataResponseBroker{NodeID: b, Host: fmt.Sprintf("%s%d.kafka.internal", prefix, b), Port: 9000 + b, Rack: &rack})
	}
	topic := func(name string, leaders ...int32) kmsg.MetadataResponseTopic {
		t := kmsg.NewMetadataResponseTopic()
		t.Topic = kmsg.StringPtr(name)
		t.TopicID = [16]byte{prefix[0], byte(len(name)), name[0]}
		for p, l := range leaders {
			mp := kmsg.NewMetadataResponseTopicPartition()
			mp.Partition, mp.Leader, mp.LeaderEpoch = int32(p), l, 3
			mp.Replicas, mp.ISR = []int32{l}, []int32{l}
			t.Partitions = append(t.Partitions, mp)
		}
		return t
	}
	if cluster == cxWest {
		m.Topics = []kmsg.MetadataResponseTopic{topic("w.clicks", 201, 202), topic("payments", 100, 201)}
	} else {
		m.Topics = []kmsg.MetadataResponseTopic{topic("orders", 100, 101, 102), topic("events", 100, 100), topic("payments", 101)}
	}
	return m
}

// cxCoordinators are the coordinators each cluster's cache holds: groups
// "g1" (home east) and "wg-1" (home west) have a coordinator on both
// clusters (offsets live with the topics); transactional ids "t1" (home
// east) and "wg-txn" (home west) on their home only.
type cxCoord struct {
	typ int8
	key string
}

var cxCoordinators = map[string]map[cxCoord]int32{
	cxEast: {{coordinatorGroup, "g1"}: 102, {coordinatorGroup, "wg-1"}: 101, {coordinatorTxn, "t1"}: 100},
	cxWest: {{coordinatorGroup, "g1"}: 201, {coordinatorGroup, "wg-1"}: 100, {coordinatorTxn, "wg-txn"}: 202},
}

// cx is a Server (node 0) over cxState with an east and a west backend.
// The backends have no versions loaded, so a coordinator not in the cache
// is looked up with no network traffic and fails at once.
type cx struct {
	view       *fxView
	srv        *Server
	east, west *Backend
}

// newCx builds the fixture; with westToo false only east is a backend here.
func newCx(t testing.TB, westToo bool) *cx {
	t.Helper()
	return newCxAt(t, westToo, 0)
}

// newCxAt builds the fixture as seen from peer node.
func newCxAt(t testing.TB, westToo bool, node int32) *cx {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, 10)
	view := &fxView{st: cxState(), live: cxLive()}
	mk := func(name string) *Backend {
		b, err := NewBackend(BackendConfig{Name: name, Bootstrap: []string{"127.0.0.1:1"}, Metrics: m})
		if err != nil {
			t.Fatalf("NewBackend %s: %v", name, err)
		}
		b.updateMetadata(cxMetadata(name), true)
		return b
	}
	f := &cx{view: view, east: mk(cxEast)}
	bs := []*Backend{f.east}
	if westToo {
		f.west = mk(cxWest)
		bs = append(bs, f.west)
	}
	srv, err := NewServer(Config{ListenAddr: "127.0.0.1:0", NodeID: node}, view, m)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	srv.SetBackends(bs)
	for _, b := range bs {
		for k, id := range cxCoordinators[b.Name()] {
			srv.setCoordinator(b, k.typ, k.key, id)
		}
	}
	f.srv = srv
	return f
}

// cxAt names a backend broker: cluster and broker id.
type cxAt struct {
	cluster string
	broker  int32
}

func (a cxAt) String() string { return fmt.Sprintf("%s/%d", a.cluster, a.broker) }

func cxCmpAt(a, b cxAt) int {
	if c := strings.Compare(a.cluster, b.cluster); c != 0 {
		return c
	}
	return int(a.broker) - int(b.broker)
}

// cxConn is a client connection of node 0 whose upstreams (one per broker
// of every backend) write into memory, as fxConn does for one cluster.
type cxConn struct {
	t     testing.TB
	f     *cx
	c     *clientConn
	wires map[cxAt]*bytes.Buffer
	ups   map[cxAt]*upstream
}

func (f *cx) conn(t testing.TB) *cxConn {
	c := &clientConn{
		s:       f.srv,
		log:     f.srv.log,
		ups:     map[target]*upstream{},
		closing: make(chan struct{}),
	}
	h := &cxConn{t: t, f: f, c: c, wires: map[cxAt]*bytes.Buffer{}, ups: map[cxAt]*upstream{}}
	for _, be := range f.srv.backendSet().sorted {
		for _, id := range be.brokerIDs() {
			w := &bytes.Buffer{}
			a := cxAt{be.Name(), id}
			u := &upstream{c: c, be: be, broker: id, bw: bufio.NewWriterSize(w, 512), inflight: make(chan upCall, 16)}
			h.wires[a], h.ups[a] = w, u
			c.ups[target{be, id}] = u
		}
	}
	return h
}

// cxAnswer builds a backend broker's answer to a decoded request; the
// harness encodes it at the request's version and correlation id.
type cxAnswer func(a cxAt, req kmsg.Request) kmsg.Response

// cxExchange is what one request did.
type cxExchange struct {
	err    error                   // the handler's error (closes the connection)
	sent   map[cxAt][][]byte       // frames sent upstream, size prefix included
	reqs   map[cxAt][]kmsg.Request // the same, decoded
	slots  int
	done   bool
	out    []byte // the frame written to the client, size prefix included
	outErr error
}

// targets lists the brokers that received something, in order.
func (ex cxExchange) targets() []cxAt {
	var out []cxAt
	for a := range ex.sent {
		out = append(out, a)
	}
	slices.SortFunc(out, cxCmpAt)
	return out
}

// run feeds frame to the server's handler for its key (the handler table,
// as the connection's reader would), answers each upstream call with
// answer (nil: no call may be made), and reports the outcome.
func (h *cxConn) run(frame []byte, answer cxAnswer) cxExchange {
	h.t.Helper()
	buf := &buffer{b: slices.Clone(frame)}
	hdr, err := parseRequestHeader(buf.b[4:])
	if err != nil {
		h.t.Fatalf("request header: %v", err)
	}
	r := h.c.newRequest(hdr, buf, time.Now())
	ex := cxExchange{sent: map[cxAt][][]byte{}, reqs: map[cxAt][]kmsg.Request{}}
	hf := h.c.s.handlers[hdr.key]
	if hf == nil {
		h.t.Fatalf("key %d is not served", hdr.key)
	}
	ex.err = hf(r)
	if err := h.c.flushUpstreams(); err != nil {
		h.t.Fatalf("flush upstreams: %v", err)
	}
	ats := make([]cxAt, 0, len(h.wires))
	for a := range h.wires {
		ats = append(ats, a)
	}
	slices.SortFunc(ats, cxCmpAt)
	for _, a := range ats {
		frames := splitFrames(h.t, h.wires[a].Bytes())
		h.wires[a].Reset()
		if len(frames) == 0 {
			continue
		}
		ex.sent[a] = frames
		for _, fr := range frames {
			_, req := decodeFrame(h.t, fr)
			ex.reqs[a] = append(ex.reqs[a], req)
		}
		var calls []upCall
	drain:
		for {
			select {
			case call := <-h.ups[a].inflight:
				calls = append(calls, call)
			default:
				break drain
			}
		}
		if len(calls) == 0 {
			continue // requests that expect no response (acks=0 produce)
		}
		if len(calls) != len(frames) {
			h.t.Fatalf("%s: %d calls await a response but %d frames were sent", a, len(calls), len(frames))
		}
		if answer == nil {
			h.t.Fatalf("%s: a request went upstream, none was expected", a)
		}
		for i, call := range calls {
			if got := be32(frames[i][8:]); got != call.corr {
				h.t.Fatalf("%s: frame has correlation id %d, call expects %d", a, got, call.corr)
			}
			resp := answer(a, ex.reqs[a][i])
			call.cb(&buffer{b: respFrame(resp, fxBe16(frames[i][6:]), call.corr)}, nil)
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

// answered runs a request that must be answered: no handler error, one
// finished slot, and the client's frame decoded.
func (h *cxConn) answered(req kmsg.Request, v int16, answer cxAnswer) (cxExchange, kmsg.Response) {
	h.t.Helper()
	ex := h.run(reqFrame(req, v, 42), answer)
	if ex.err != nil || ex.slots != 1 || !ex.done || ex.outErr != nil {
		h.t.Fatalf("%s v%d: handler error %v, %d slots, finished %v, slot error %v", kmsg.NameForKey(req.Key()), v, ex.err, ex.slots, ex.done, ex.outErr)
	}
	cxNoBackendHosts(h.t, ex.out)
	corr, resp := decodeOut(h.t, ex.out, req.Key(), v)
	if corr != 42 {
		h.t.Fatalf("correlation id %d, want 42", corr)
	}
	return ex, resp
}

// cxNoBackendHosts fails if the frame names a backend broker host.
func cxNoBackendHosts(t testing.TB, frame []byte) {
	t.Helper()
	if bytes.Contains(frame, []byte("kafka.internal")) {
		t.Fatalf("a backend broker address reached the client: %q", frame)
	}
}

// cxWantTargets fails unless exactly the brokers want received a frame,
// one each.
func cxWantTargets(t testing.TB, ex cxExchange, want ...cxAt) {
	t.Helper()
	slices.SortFunc(want, cxCmpAt)
	got := ex.targets()
	if !slices.Equal(got, want) {
		t.Fatalf("sent to %v, want %v", got, want)
	}
	for _, a := range got {
		if len(ex.sent[a]) != 1 {
			t.Fatalf("%s received %d frames, want 1", a, len(ex.sent[a]))
		}
	}
}

// cxSentAsIs fails unless a received the client's frame byte for byte.
func cxSentAsIs(t testing.TB, ex cxExchange, a cxAt, frame []byte) {
	t.Helper()
	if len(ex.sent[a]) != 1 || !bytes.Equal(ex.sent[a][0], frame) {
		t.Fatalf("%s did not receive the client's frame as is", a)
	}
}

// cxCodes is a "topic/partition → value" view of an answer, for order-free
// comparison.
type cxCodes map[string]int64

func (c cxCodes) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, c[k])
	}
	return b.String()
}

func cxTP(topic string, p int32) string { return fmt.Sprintf("%s/%d", topic, p) }

func cxWantCodes(t testing.TB, what string, got, want cxCodes) {
	t.Helper()
	if got.String() != want.String() {
		t.Fatalf("%s:\n got %v\nwant %v", what, got, want)
	}
}

// cxFrame is the client frame run sends for req at v (correlation id 42).
func cxFrame(req kmsg.Request, v int16) []byte { return reqFrame(req, v, 42) }
