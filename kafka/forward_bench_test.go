package kafka

// Micro-benchmarks of the forwarding path. A fake backend broker in this
// file answers instantly and stores nothing, so what the proxy adds per
// request and per byte is visible without kfake. Each Forward benchmark
// also runs the same requests straight to the fake broker, outside the
// timer, and reports the difference as proxy-ns/req and proxy-allocs/req;
// the Direct benchmarks show that baseline on its own.
//
// Run: go test -run '^$' -bench . -benchmem ./kafka/

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

const (
	benchTopic      = "bench"
	benchPartitions = 8
	benchCluster    = "bench"
	// benchWindow is how many requests the load client keeps in flight on
	// its connection, about what a busy producer pipelines.
	benchWindow = 16
	// benchProduceVersion is what current clients send (Kafka 3.x/4.x,
	// franz-go); v10+ responses are scanned for KIP-951 leader hints (a plain
	// success answer has none and is forwarded without decoding).
	benchProduceVersion = 11
)

var benchSizes = []struct {
	name string
	n    int
}{{"100B", 100}, {"1KiB", 1 << 10}, {"16KiB", 16 << 10}, {"1MiB", 1 << 20}}

// benchBroker is a fake Kafka broker: ApiVersions, Metadata (one topic
// whose partitions are all led by broker 0, itself), Produce (success for
// every partition, nothing stored) and Fetch (every partition answers with a
// canned record batch of PartitionMaxBytes value bytes). Anything else
// closes the connection.
type benchBroker struct {
	ln      net.Listener
	host    string
	port    int32
	topicID [16]byte
	wg      sync.WaitGroup

	mu      sync.Mutex
	batches map[int32][]byte // fetch answers by PartitionMaxBytes
}

func startBenchBroker(tb testing.TB) *benchBroker {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	host, port, err := splitHostPort(ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	f := &benchBroker{ln: ln, host: host, port: port, batches: map[int32][]byte{}}
	for i := range f.topicID {
		f.topicID[i] = byte(i + 1)
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer nc.Close()
				f.serve(nc)
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		// Connections end when their peers close; the proxy and the load
		// clients are torn down by their own cleanups, registered later and
		// so run earlier.
		f.wg.Wait()
	})
	return f
}

func (f *benchBroker) addr() string { return f.ln.Addr().String() }

// serve answers requests in order, flushing only when no further request is
// already buffered, as a broker batches its writes.
func (f *benchBroker) serve(nc net.Conn) {
	br := bufio.NewReaderSize(nc, 64<<10)
	bw := bufio.NewWriterSize(nc, 64<<10)
	var out []byte
	for {
		buf, err := readFrame(br, 1<<30)
		if err != nil {
			return
		}
		h, err := parseRequestHeader(buf.b[4:])
		if err != nil {
			putBuffer(buf)
			return
		}
		resp, err := f.answer(h, buf.b[4+h.bodyOff:])
		putBuffer(buf)
		if err != nil {
			return
		}
		if resp != nil {
			out = appendResponse(out[:0], resp, h.corr)
			if _, err := bw.Write(out); err != nil {
				return
			}
		}
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}

// answer builds the response to one request; nil means none (acks=0).
func (f *benchBroker) answer(h requestHeader, body []byte) (kmsg.Response, error) {
	switch h.key {
	case 18:
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.Version = min(h.version, 3)
		for _, k := range []struct{ key, lo, hi int16 }{{0, 3, 11}, {1, 4, 16}, {3, 0, 12}, {18, 0, 4}, {22, 0, 4}} {
			resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: k.key, MinVersion: k.lo, MaxVersion: k.hi})
		}
		return resp, nil
	case 22: // the proxy maps an idempotent producer's virtual id once
		resp := kmsg.NewPtrInitProducerIDResponse()
		resp.Version = h.version
		resp.ProducerID, resp.ProducerEpoch = 7000, 0
		return resp, nil
	case 3:
		resp := kmsg.NewPtrMetadataResponse()
		resp.Version = h.version
		id := "bench-cluster"
		resp.ClusterID = &id
		resp.ControllerID = 0
		resp.Brokers = []kmsg.MetadataResponseBroker{{NodeID: 0, Host: f.host, Port: f.port}}
		t := kmsg.NewMetadataResponseTopic()
		name := benchTopic
		t.Topic = &name
		t.TopicID = f.topicID
		for p := range int32(benchPartitions) {
			mp := kmsg.NewMetadataResponseTopicPartition()
			mp.Partition = p
			mp.Leader = 0
			mp.Replicas = []int32{0}
			mp.ISR = []int32{0}
			t.Partitions = append(t.Partitions, mp)
		}
		resp.Topics = []kmsg.MetadataResponseTopic{t}
		return resp, nil
	case 0:
		req := kmsg.NewPtrProduceRequest()
		req.Version = h.version
		if err := req.ReadFrom(body); err != nil {
			return nil, err
		}
		if req.Acks == 0 {
			return nil, nil
		}
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = h.version
		for _, t := range req.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = p.Partition
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	case 1:
		req := kmsg.NewPtrFetchRequest()
		req.Version = h.version
		if err := req.ReadFrom(body); err != nil {
			return nil, err
		}
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = h.version
		for _, t := range req.Topics {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition = p.Partition
				rp.HighWatermark = 1 << 40
				rp.LastStableOffset = 1 << 40
				rp.RecordBatches = f.batch(p.PartitionMaxBytes)
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	}
	return nil, fmt.Errorf("bench broker: unexpected %s", kmsg.NameForKey(h.key))
}

// batch returns the canned record batch of n value bytes.
func (f *benchBroker) batch(n int32) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.batches[n]
	if !ok {
		b = benchRecordBatch(int(n))
		f.batches[n] = b
	}
	return b
}

// benchView is a one-peer cluster state in front of the fake broker.
type benchView struct{ st *fsm.State }

func (v *benchView) State() *fsm.State { return v.st }
func (v *benchView) Live(int32) bool   { return true }

// startBenchProxy runs a Backend and a Server in front of broker and
// returns the proxy's address once the backend's metadata is loaded. Each
// of others is a second cluster's broker; with them, the routing table
// also holds 100 prefix rules that the bench topic does not match, so the
// bench measures routing among several clusters.
func startBenchProxy(tb testing.TB, broker string, others ...string) string {
	tb.Helper()
	return startBenchProxyWith(tb, broker, nil, others...)
}

// benchGate is a write gate shaped like the node's lease (an atomic
// deadline on a monotonic clock), always open here: produce benchmarks pay
// for the check as a peer does.
type benchGate struct {
	origin time.Time
	until  atomic.Int64
}

func (g *benchGate) WriteAllowed() bool { return int64(time.Since(g.origin)) < g.until.Load() }

// startBenchProxyWith is startBenchProxy with the state changed by edit
// before the proxy serves.
func startBenchProxyWith(tb testing.TB, broker string, edit func(*fsm.State), others ...string) string {
	tb.Helper()
	be := newTestBackend(tb, BackendConfig{Name: benchCluster, Bootstrap: []string{broker}, MetadataRefresh: time.Minute})
	view := &benchView{}
	gate := &benchGate{origin: time.Now()}
	gate.until.Store(int64(24 * time.Hour))
	backends := []*Backend{be}
	clusters := []fsm.Cluster{{Name: benchCluster, Bootstrap: []string{broker}}}
	var prefixes []fsm.PrefixRoute
	for i, o := range others {
		name := fmt.Sprintf("other-%d", i)
		backends = append(backends, newTestBackend(tb, BackendConfig{Name: name, Bootstrap: []string{o}, MetadataRefresh: time.Minute}))
		clusters = append(clusters, fsm.Cluster{Name: name, Bootstrap: []string{o}})
		for j := range 100 / len(others) {
			prefixes = append(prefixes, fsm.PrefixRoute{Prefix: fmt.Sprintf("%s-%03d.", name, j), Cluster: name})
		}
	}
	srv := listenServer(tb, Config{Writes: gate}, view, nil, backends...)
	addr := srv.Addr().String()
	view.st = &fsm.State{
		Clusters: clusters,
		Routes:   fsm.Routes{DefaultCluster: benchCluster, Prefixes: prefixes},
		Peers: []fsm.Peer{{ID: 0, Name: "peer-0", KafkaAddr: addr,
			LocalBrokers: []fsm.BrokerRef{{Cluster: benchCluster, BrokerID: 0}}}},
	}
	if edit != nil {
		edit(view.st)
	}
	serveServer(tb, srv, backends...)
	waitReady(tb, be) // the bench topic's cluster; the others only add routes
	return addr
}

// benchRecordBatch returns a v2 record batch holding n bytes of values in
// records of up to 1 KiB each.
func benchRecordBatch(n int) []byte { return benchProducerBatch(n, -1) }

// benchProducerBatch is benchRecordBatch written by producer id pid
// (epoch 0 when pid is set).
func benchProducerBatch(n int, pid int64) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var records []byte
	count := 0
	for left := n; left > 0; count++ {
		v := make([]byte, min(left, 1<<10))
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		left -= len(v)
		r := kmsg.Record{OffsetDelta: int32(count), Value: v}
		body := r.AppendTo(nil)[1:] // without the 1-byte zero length
		r.Length = int32(len(body))
		records = r.AppendTo(records)
	}
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{
		Magic:           2,
		LastOffsetDelta: int32(count - 1),
		FirstTimestamp:  now,
		MaxTimestamp:    now,
		ProducerID:      pid,
		ProducerEpoch:   -1,
		FirstSequence:   -1,
		NumRecords:      int32(count),
		Records:         records,
	}
	if pid >= 0 {
		b.ProducerEpoch, b.FirstSequence = 0, 0
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// benchProduceFrame encodes one acks=all Produce request for one partition
// carrying a batch of n value bytes, size prefix included.
func benchProduceFrame(n int) []byte { return benchProduceFrameBy(n, -1) }

// benchProduceFrameBy is benchProduceFrame with its batch written by
// producer id pid.
func benchProduceFrameBy(n int, pid int64) []byte {
	req := kmsg.NewPtrProduceRequest()
	req.Version = benchProduceVersion
	req.Acks = -1
	req.TimeoutMillis = 30000
	t := kmsg.NewProduceRequestTopic()
	t.Topic = benchTopic
	p := kmsg.NewProduceRequestTopicPartition()
	p.Partition = 3
	p.Records = benchProducerBatch(n, pid)
	t.Partitions = []kmsg.ProduceRequestTopicPartition{p}
	req.Topics = []kmsg.ProduceRequestTopic{t}
	id := "bench"
	return appendRequest(nil, req, 0, &id)
}

// benchFetchVersion is the newest Fetch the proxy advertises (v13+ names
// topics by id and is not advertised, topicids.go), what franz-go and the
// Java client send through it. (It was 16 until December 2026: the proxy
// refused those by id itself, so the benchmark never reached the broker.)
const benchFetchVersion = 12

// benchFetchFrame encodes one Fetch request for one partition whose answer
// carries n value bytes (the fake broker sizes it by PartitionMaxBytes).
func benchFetchFrame(topicID [16]byte, n int) []byte {
	req := kmsg.NewPtrFetchRequest()
	req.Version = benchFetchVersion
	req.MaxWaitMillis = 500
	req.MinBytes = 1
	req.MaxBytes = 50 << 20
	req.SessionEpoch = -1
	t := kmsg.NewFetchRequestTopic()
	t.Topic = benchTopic
	t.TopicID = topicID
	p := kmsg.NewFetchRequestTopicPartition()
	p.Partition = 3
	p.PartitionMaxBytes = int32(n)
	t.Partitions = []kmsg.FetchRequestTopicPartition{p}
	req.Topics = []kmsg.FetchRequestTopic{t}
	id := "bench"
	return appendRequest(nil, req, 0, &id)
}

// benchClient is a raw Kafka connection that pipelines one request frame.
type benchClient struct {
	nc    net.Conn
	frame []byte
	corr  int32
}

func dialBench(tb testing.TB, addr string, frame []byte) *benchClient {
	tb.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	c := &benchClient{nc: nc, frame: append([]byte(nil), frame...)}
	// Warm up: the proxy dials its upstream on the first request.
	if err := c.run(4, benchWindow); err != nil {
		tb.Fatal(err)
	}
	return c
}

// run sends the frame n times with up to window requests in flight and
// reads every response, checking that correlation ids come back in order.
func (c *benchClient) run(n, window int) error {
	sem := make(chan struct{}, window)
	werr := make(chan error, 1)
	first := c.corr
	go func() {
		bw := bufio.NewWriterSize(c.nc, 64<<10)
		for range n {
			select {
			case sem <- struct{}{}:
			default:
				if err := bw.Flush(); err != nil {
					werr <- err
					return
				}
				sem <- struct{}{}
			}
			binary.BigEndian.PutUint32(c.frame[8:], uint32(c.corr))
			c.corr++
			if _, err := bw.Write(c.frame); err != nil {
				werr <- err
				return
			}
		}
		werr <- bw.Flush()
	}()
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var hdr [8]byte
	for i := range n {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return err
		}
		size := int(binary.BigEndian.Uint32(hdr[:4]))
		if corr := int32(binary.BigEndian.Uint32(hdr[4:])); corr != first+int32(i) {
			return fmt.Errorf("response %d has correlation id %d, want %d", i, corr, first+int32(i))
		}
		if _, err := br.Discard(size - 4); err != nil {
			return err
		}
		<-sem
	}
	if br.Buffered() > 0 {
		return errors.New("unexpected bytes after the last response")
	}
	return <-werr
}

func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// BenchmarkDirectProduce is the baseline: the load client against the fake
// broker with no proxy in between.
func BenchmarkDirectProduce(b *testing.B) {
	fb := startBenchBroker(b)
	for _, sz := range benchSizes {
		b.Run("size="+sz.name, func(b *testing.B) {
			frame := benchProduceFrame(sz.n)
			c := dialBench(b, fb.addr(), frame)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			b.ResetTimer()
			if err := c.run(b.N, benchWindow); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkDirectFetch is the fetch baseline: each response carries one
// record batch of the size named.
func BenchmarkDirectFetch(b *testing.B) {
	fb := startBenchBroker(b)
	for _, sz := range benchSizes[1:] {
		b.Run("size="+sz.name, func(b *testing.B) {
			c := dialBench(b, fb.addr(), benchFetchFrame(fb.topicID, sz.n))
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			b.ResetTimer()
			if err := c.run(b.N, benchWindow); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkForwardFetch sends fetches through the proxy, which decodes
// every response (records aliased, not copied) to count bytes per topic
// and to check the fields it presents. SetBytes is the record bytes of one
// response.
func BenchmarkForwardFetch(b *testing.B) {
	fb := startBenchBroker(b)
	proxy := startBenchProxy(b, fb.addr())
	for _, sz := range benchSizes[1:] {
		b.Run("size="+sz.name, func(b *testing.B) {
			benchForward(b, fb.addr(), proxy, benchFetchFrame(fb.topicID, sz.n), benchWindow)
			b.SetBytes(int64(sz.n))
		})
	}
}

// BenchmarkForwardFetchRegion is BenchmarkForwardFetch through a peer
// with a region (issue 11): the client sends no rack id, so every fetch is
// re-encoded with the region as rack_id (KIP-392) before it goes out.
func BenchmarkForwardFetchRegion(b *testing.B) {
	fb := startBenchBroker(b)
	proxy := startBenchProxyWith(b, fb.addr(), func(st *fsm.State) { st.Peers[0].Region = "dc1" })
	for _, sz := range benchSizes[1:] {
		b.Run("size="+sz.name, func(b *testing.B) {
			benchForward(b, fb.addr(), proxy, benchFetchFrame(fb.topicID, sz.n), benchWindow)
			b.SetBytes(int64(sz.n))
		})
	}
}

// BenchmarkForwardFetchMigrated is BenchmarkForwardFetch for a migrated
// topic (segments.go). translated: the bench topic's live segment is on
// the bench broker with its epochs raised, so every request is rebuilt
// and every answer's offsets, epochs and batch headers translated (the
// cost of virtual offsets on a plain fetch). chained: the live segment
// starts past the fetch offset, so the fetch is served by the previous
// segment on a second broker (a lagging consumer's chained read).
func BenchmarkForwardFetchMigrated(b *testing.B) {
	fb := startBenchBroker(b)
	other := startBenchBroker(b)
	starts := make([]int64, benchPartitions)
	for _, c := range []struct {
		name  string
		start int64
	}{{"translated", 0}, {"chained", 1 << 40}} {
		for i := range starts {
			starts[i] = c.start
		}
		proxy := startBenchProxyWith(b, fb.addr(), func(st *fsm.State) {
			st.Chains = []fsm.TopicChain{{Topic: benchTopic, Segments: []fsm.Segment{
				{Cluster: "other-0"},
				{Cluster: benchCluster, EpochBase: 5, Starts: slices.Clone(starts), Physical: make([]int64, benchPartitions)},
			}}}
		}, other.addr())
		for _, sz := range benchSizes[1:3] {
			b.Run(c.name+"/size="+sz.name, func(b *testing.B) {
				benchForward(b, fb.addr(), proxy, benchFetchFrame(fb.topicID, sz.n), benchWindow)
				b.SetBytes(int64(sz.n))
			})
		}
	}
}

// BenchmarkForwardProduce sends the same load through the proxy, pipelined
// benchWindow deep. ns/op and allocs/op include the load client and the
// fake broker (all in this process); proxy-ns/req and proxy-allocs/req
// subtract a direct run of the same b.N requests made just before, outside
// the timer.
func BenchmarkForwardProduce(b *testing.B) {
	fb := startBenchBroker(b)
	proxy := startBenchProxy(b, fb.addr())
	for _, sz := range benchSizes {
		b.Run("size="+sz.name, func(b *testing.B) {
			benchForward(b, fb.addr(), proxy, benchProduceFrame(sz.n), benchWindow)
		})
	}
}

// BenchmarkForwardProduceIdempotent is BenchmarkForwardProduce from an
// idempotent producer: every batch carries a virtual producer id that the
// proxy maps to the cluster's real one (asked once) and rewrites, CRC-32C
// recomputed (producer_ids.go).
func BenchmarkForwardProduceIdempotent(b *testing.B) {
	fb := startBenchBroker(b)
	proxy := startBenchProxy(b, fb.addr())
	vpid := int64(1)<<vpidPeerShift | 5 // as peer 0 issues them
	for _, sz := range benchSizes[:3] {
		b.Run("size="+sz.name, func(b *testing.B) {
			benchForward(b, fb.addr(), proxy, benchProduceFrameBy(sz.n, vpid), benchWindow)
		})
	}
}

// BenchmarkForwardProduceTwoClusters is BenchmarkForwardProduce with a
// second backend cluster and 100 prefix routes configured: the cost of
// routing each topic among clusters.
func BenchmarkForwardProduceTwoClusters(b *testing.B) {
	fb := startBenchBroker(b)
	other := startBenchBroker(b)
	proxy := startBenchProxy(b, fb.addr(), other.addr())
	for _, sz := range benchSizes[:2] {
		b.Run("size="+sz.name, func(b *testing.B) {
			benchForward(b, fb.addr(), proxy, benchProduceFrame(sz.n), benchWindow)
		})
	}
}

// BenchmarkForwardProduceRoundTrip keeps one request in flight, as a
// producer with linger 0 at a modest rate does: proxy-ns/req is then the
// latency the proxy adds to a request on an otherwise idle process.
func BenchmarkForwardProduceRoundTrip(b *testing.B) {
	fb := startBenchBroker(b)
	proxy := startBenchProxy(b, fb.addr())
	for _, sz := range benchSizes[:2] {
		b.Run("size="+sz.name, func(b *testing.B) {
			benchForward(b, fb.addr(), proxy, benchProduceFrame(sz.n), 1)
		})
	}
}

func benchForward(b *testing.B, broker, proxy string, frame []byte, window int) {
	direct := dialBench(b, broker, frame)
	via := dialBench(b, proxy, frame)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()

	b.StopTimer()
	m0 := mallocs()
	t0 := time.Now()
	if err := direct.run(b.N, window); err != nil {
		b.Fatal(err)
	}
	directNs := time.Since(t0).Nanoseconds()
	directAllocs := mallocs() - m0

	m0 = mallocs()
	b.StartTimer()
	t0 = time.Now()
	if err := via.run(b.N, window); err != nil {
		b.Fatal(err)
	}
	proxyNs := time.Since(t0).Nanoseconds()
	b.StopTimer()
	proxyAllocs := mallocs() - m0

	b.ReportMetric(float64(proxyNs-directNs)/float64(b.N), "proxy-ns/req")
	b.ReportMetric((float64(proxyAllocs)-float64(directAllocs))/float64(b.N), "proxy-allocs/req")
}
