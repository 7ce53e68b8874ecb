package kafka

// Fuzz targets for every parser of network bytes: client request headers,
// frames, backend response headers, the response rewrites (Metadata,
// FindCoordinator, DescribeCluster, Produce, Fetch) and the request-side
// decode and in-place patch of Produce and Fetch. Seeds are real kmsg
// encodings at every version. Under plain `go test` each target runs its
// seeds (and any crasher kept in testdata/fuzz).
//
//	go test -run '^$' -fuzz '^FuzzFetchRequest$' -fuzztime 30s ./kafka/

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// catchPanic turns a panic into a failure of the one input, so that under
// plain `go test` one crasher does not abort every later target.
func catchPanic(t *testing.T) {
	if r := recover(); r != nil {
		t.Fatalf("panic: %v\n%s", r, debug.Stack())
	}
}

// fuzzVersion maps a fuzzed byte onto 0..max.
func fuzzVersion(v uint8, max int16) int16 { return int16(v) % (max + 1) }

// backendFrame frames a fuzzed response (header tags included, for
// flexible versions) as a backend would send it.
func backendFrame(corr int32, raw []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(4+len(raw)))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	return append(b, raw...)
}

// seedResponses adds resp encoded at every version, minus the size prefix
// and correlation id: what the fuzz body stands for.
func seedResponses(f *testing.F, resps ...kmsg.Response) {
	for _, resp := range resps {
		for v := int16(0); v <= resp.MaxVersion(); v++ {
			f.Add(uint8(v), respFrame(resp, v, 1)[8:])
		}
	}
}

// clientFrame frames a fuzzed request body behind a well-formed header.
func clientFrame(key, version int16, corr int32, body []byte) []byte {
	req := kmsg.RequestForKey(key)
	req.SetVersion(version)
	var tags []byte
	if req.IsFlexible() {
		tags = []byte{0}
	}
	hdr := rawHeader(key, version, corr, kmsg.StringPtr("fuzz"), tags)
	b := binary.BigEndian.AppendUint32(nil, uint32(len(hdr)+len(body)))
	b = append(b, hdr...)
	return append(b, body...)
}

// seedRequests adds req's body encoded at every version from minV.
func seedRequests(f *testing.F, minV int16, reqs ...kmsg.Request) {
	for _, req := range reqs {
		for v := minV; v <= req.MaxVersion(); v++ {
			req.SetVersion(v)
			f.Add(uint8(v), req.AppendTo(nil))
		}
	}
}

// fuzzReq is the request a rewrite runs for.
func fuzzReq(key, version int16, corr int32) *request {
	req := kmsg.RequestForKey(key)
	req.SetVersion(version)
	return &request{requestHeader: requestHeader{key: key, version: version, corr: corr, flexible: req.IsFlexible()}}
}

// checkRewrite runs the shared assertions on a rewrite's outcome: a
// decode failure is ErrMalformed; otherwise the client's frame carries the
// client's correlation id and decodes at the request's version.
func checkRewrite(t *testing.T, out *buffer, err error, r *request) (kmsg.Response, bool) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("rewrite error is not ErrMalformed: %v", err)
		}
		if out != nil {
			t.Fatal("rewrite returned a buffer with its error")
		}
		return nil, false
	}
	corr, resp := decodeOut(t, out.b, r.key, r.version)
	if corr != r.corr {
		t.Fatalf("correlation id %d, want %d", corr, r.corr)
	}
	return resp, true
}

// presented checks that id is -1 (or another negative passed through) or a
// live peer: no real broker id reaches the client.
func presented(t *testing.T, f *fx, what string, id int32) {
	t.Helper()
	if id >= 0 && !f.view.live[id] {
		t.Fatalf("%s = %d: not a live peer", what, id)
	}
}

// presentedEndpoint checks that a broker entry is a live peer's endpoint.
func presentedEndpoint(t *testing.T, f *fx, what string, id int32, host string, port int32) {
	t.Helper()
	p, ok := f.view.st.Peer(id)
	if !ok || !f.view.live[id] {
		t.Fatalf("%s: node %d is not a live peer", what, id)
	}
	h, pt, _ := splitHostPort(p.KafkaAddr)
	if host != h || port != pt {
		t.Fatalf("%s: node %d at %s:%d, want %s:%d", what, id, host, port, h, pt)
	}
}

func FuzzParseRequestHeader(f *testing.F) {
	cid := "fuzz-client"
	for _, k := range []int16{0, 1, 3, 10, 18, 60} {
		req := kmsg.RequestForKey(k)
		for v := int16(0); v <= req.MaxVersion(); v++ {
			req.SetVersion(v)
			f.Add(appendRequest(nil, req, 7, &cid)[4:])
			f.Add(appendRequest(nil, req, 7, nil)[4:])
		}
	}
	f.Add(rawHeader(18, 99, 1, &cid, []byte{2, 0, 3, 'a', 'b', 'c', 5, 0}))
	f.Add(rawHeader(3, 12, 1, nil, []byte{1, 0x80, 0x01, 0x81, 0x01}))
	f.Add([]byte{0, 1, 0, 12, 0, 0, 0, 1, 0xff, 0xfe})
	f.Fuzz(func(t *testing.T, frame []byte) {
		defer catchPanic(t)
		h, err := parseRequestHeader(frame)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("error matches no sentinel: %v", err)
			}
			return
		}
		if h.bodyOff < 10 || h.bodyOff > len(frame) {
			t.Fatalf("body offset %d in a %d-byte frame", h.bodyOff, len(frame))
		}
		req := kmsg.RequestForKey(h.key)
		if req == nil {
			t.Fatalf("unknown key %d accepted", h.key)
		}
		switch {
		case h.version >= 0 && h.version <= req.MaxVersion():
			req.SetVersion(h.version)
			if h.flexible != req.IsFlexible() {
				t.Fatalf("%s v%d: flexible = %v", kmsg.NameForKey(h.key), h.version, h.flexible)
			}
		case h.key == 18 && h.version > req.MaxVersion():
			if !h.flexible {
				t.Fatalf("ApiVersions v%d parsed with a v1 header", h.version)
			}
		default:
			t.Fatalf("%s v%d accepted", kmsg.NameForKey(h.key), h.version)
		}
		if h.clientID != nil {
			if l := int(binary.BigEndian.Uint16(frame[8:])); l != len(*h.clientID) || string(frame[10:10+l]) != *h.clientID {
				t.Fatalf("client id %q does not match the frame", *h.clientID)
			}
		}
		if !h.flexible && h.bodyOff != 10+len(derefOr(h.clientID)) {
			t.Fatalf("v1 header: body offset %d", h.bodyOff)
		}
		// The header is self-delimiting: its own bytes parse the same.
		again, err := parseRequestHeader(frame[:h.bodyOff])
		if err != nil || again.bodyOff != h.bodyOff || again.key != h.key || again.version != h.version || again.corr != h.corr {
			t.Fatalf("header alone parses as %+v, %v; whole frame as %+v", again, err, h)
		}
	})
}

func derefOr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c'}, int32(100))
	f.Add([]byte{0, 0, 0, 0}, int32(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1}, int32(100))
	f.Add([]byte{0, 0, 0x10, 0, 1, 2}, int32(1<<12))
	f.Add(appendRequest(nil, kmsg.NewPtrMetadataRequest(), 1, nil), int32(1<<20))
	f.Fuzz(func(t *testing.T, data []byte, max int32) {
		defer catchPanic(t)
		// Bound the claimed size: readFrame allocates it before reading.
		max %= 1 << 20
		buf, err := readFrame(bytes.NewReader(data), max)
		var n int32 = -1
		if len(data) >= 4 {
			n = int32(binary.BigEndian.Uint32(data))
		}
		if err != nil {
			if buf != nil {
				t.Fatal("buffer returned with an error")
			}
			switch {
			case len(data) < 4:
			case n < 0 || n > max:
				if !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("size %d, max %d: err = %v", n, max, err)
				}
			case len(data) < 4+int(n):
			default:
				t.Fatalf("complete %d-byte frame (max %d) failed: %v", n, max, err)
			}
			return
		}
		if n < 0 || n > max || len(buf.b) != 4+int(n) || !bytes.Equal(buf.b, data[:4+n]) {
			t.Fatalf("frame of %d bytes read for size %d, max %d", len(buf.b), n, max)
		}
		putBuffer(buf)
	})
}

func FuzzResponseBody(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0}, int16(3), true)
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0}, int16(18), true)
	f.Add([]byte{0, 0, 0, 1, 2, 0, 1, 'z', 9, 0, 1}, int16(1), true)
	f.Add([]byte{0, 0, 0, 1}, int16(0), false)
	for _, resp := range []kmsg.Response{kmsg.NewPtrApiVersionsResponse(), fxMetadata(), kmsg.NewPtrFetchResponse()} {
		for v := int16(0); v <= resp.MaxVersion(); v++ {
			resp.SetVersion(v)
			f.Add(appendResponse(nil, resp, 9)[4:], resp.Key(), resp.IsFlexible())
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte, key int16, flexible bool) {
		defer catchPanic(t)
		corr, body, err := responseBody(frame, key, flexible)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v", err)
			}
			if len(frame) >= 4 && !(flexible && key != 18) {
				t.Fatalf("%d-byte non-flexible frame rejected: %v", len(frame), err)
			}
			return
		}
		if corr != be32(frame) {
			t.Fatalf("correlation id %d", corr)
		}
		hdr := len(frame) - len(body)
		if hdr < 4 || !bytes.Equal(frame[hdr:], body) {
			t.Fatalf("body is not a suffix of the frame after the correlation id")
		}
		if !flexible || key == 18 {
			if hdr != 4 {
				t.Fatalf("non-flexible (or ApiVersions) header of %d bytes", hdr)
			}
			return
		}
		if n, err := skipTags(frame[4:]); err != nil || 4+n != hdr {
			t.Fatalf("flexible header of %d bytes; tags span %d, %v", hdr, n, err)
		}
	})
}

// FuzzMetadataResponse feeds arbitrary bytes as a backend Metadata answer
// through decodeResponse and presentMetadata (via rewrite).
func FuzzMetadataResponse(f *testing.F) {
	seedResponses(f, fxMetadata(), kmsg.NewPtrMetadataResponse())
	maxV := kmsg.NewPtrMetadataResponse().MaxVersion()
	fix := newFx(f, withClusterID("proxy-cluster"))
	f.Fuzz(func(t *testing.T, version uint8, raw []byte) {
		defer catchPanic(t)
		v := fuzzVersion(version, maxV)
		r := fuzzReq(3, v, 41)
		r.c, r.st = &clientConn{s: fix.srv}, fix.srv.view.State()
		out, err := rewrite(&buffer{b: backendFrame(41, raw)}, r, func(kr kmsg.Response) bool {
			presentMetadata(r, fix.backend, kr.(*kmsg.MetadataResponse))
			return true
		})
		resp, ok := checkRewrite(t, out, err, r)
		if !ok {
			return
		}
		m := resp.(*kmsg.MetadataResponse)
		var ids []int32
		for _, b := range m.Brokers {
			ids = append(ids, b.NodeID)
			presentedEndpoint(t, fix, "broker", b.NodeID, b.Host, b.Port)
		}
		if fmt.Sprint(ids) != fmt.Sprint(fix.view.liveIDs()) {
			t.Fatalf("brokers %v, want the live peers", ids)
		}
		presented(t, fix, "controller", m.ControllerID)
		for _, tp := range m.Topics {
			for _, p := range tp.Partitions {
				presented(t, fix, "leader", p.Leader)
				for _, list := range [][]int32{p.Replicas, p.ISR, p.OfflineReplicas} {
					for _, id := range list {
						presented(t, fix, "replica", id)
					}
				}
			}
		}
		if v >= 2 && (m.ClusterID == nil || *m.ClusterID != "proxy-cluster") {
			t.Fatalf("cluster id %v", strp(m.ClusterID))
		}
	})
}

// FuzzFindCoordinatorResponse feeds arbitrary bytes as a backend
// FindCoordinator answer through the real handler's rewrite.
func FuzzFindCoordinatorResponse(f *testing.F) {
	resp := kmsg.NewPtrFindCoordinatorResponse()
	resp.NodeID, resp.Host, resp.Port = 101, "b101.kafka.internal", 19101
	resp.Coordinators = []kmsg.FindCoordinatorResponseCoordinator{
		{Key: "g", NodeID: 103, Host: "b103.kafka.internal", Port: 19103},
		{Key: "h", NodeID: -1, ErrorCode: 15},
	}
	seedResponses(f, resp, kmsg.NewPtrFindCoordinatorResponse())
	maxV := resp.MaxVersion()
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, 10)
	f.Fuzz(func(t *testing.T, version uint8, raw []byte) {
		defer catchPanic(t)
		v := fuzzVersion(version, maxV)
		fix := newFxMetrics(t, reg, metrics) // fresh coordinator cache per input
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorType = int8(version>>7) & 1
		req.CoordinatorKey, req.CoordinatorKeys = "g", []string{"g", "h"}
		ex := fix.conn(t).run(handleFindCoordinator, reqFrame(req, v, 42), func(_ int32, req []byte) []byte {
			return backendFrame(be32(req[8:]), raw)
		})
		if ex.err != nil || ex.slots != 1 || !ex.done {
			t.Fatalf("exchange %+v", ex)
		}
		var out *buffer
		if ex.out != nil {
			out = &buffer{b: ex.out}
		}
		kr, ok := checkRewrite(t, out, ex.outErr, fuzzReq(10, v, 42))
		if !ok {
			return
		}
		m := kr.(*kmsg.FindCoordinatorResponse)
		if v < 4 && m.ErrorCode == 0 && m.NodeID >= 0 {
			presentedEndpoint(t, fix, "coordinator", m.NodeID, m.Host, m.Port)
		}
		if v >= 4 {
			for _, co := range m.Coordinators {
				if co.ErrorCode == 0 && co.NodeID >= 0 {
					presentedEndpoint(t, fix, "coordinator "+co.Key, co.NodeID, co.Host, co.Port)
				}
			}
		}
	})
}

// FuzzDescribeClusterResponse feeds arbitrary bytes as a backend
// DescribeCluster answer through the real handler's rewrite.
func FuzzDescribeClusterResponse(f *testing.F) {
	resp := kmsg.NewPtrDescribeClusterResponse()
	resp.ClusterID, resp.ControllerID = "backend", 101
	resp.Brokers = []kmsg.DescribeClusterResponseBroker{{NodeID: 100, Host: "b100.kafka.internal", Port: 1, Rack: kmsg.StringPtr("r")}}
	seedResponses(f, resp, kmsg.NewPtrDescribeClusterResponse())
	maxV := resp.MaxVersion()
	fix := newFx(f, withClusterID("proxy-cluster"))
	f.Fuzz(func(t *testing.T, version uint8, raw []byte) {
		defer catchPanic(t)
		v := fuzzVersion(version, maxV)
		ex := fix.conn(t).run(handleDescribeCluster, reqFrame(kmsg.NewPtrDescribeClusterRequest(), v, 43), func(_ int32, req []byte) []byte {
			return backendFrame(be32(req[8:]), raw)
		})
		if ex.err != nil || ex.slots != 1 || !ex.done {
			t.Fatalf("exchange %+v", ex)
		}
		var out *buffer
		if ex.out != nil {
			out = &buffer{b: ex.out}
		}
		kr, ok := checkRewrite(t, out, ex.outErr, fuzzReq(60, v, 43))
		if !ok {
			return
		}
		m := kr.(*kmsg.DescribeClusterResponse)
		var ids []int32
		for _, b := range m.Brokers {
			ids = append(ids, b.NodeID)
			presentedEndpoint(t, fix, "broker", b.NodeID, b.Host, b.Port)
		}
		if fmt.Sprint(ids) != fmt.Sprint(fix.view.liveIDs()) {
			t.Fatalf("brokers %v, want the live peers", ids)
		}
		presented(t, fix, "controller", m.ControllerID)
		if m.ClusterID != "proxy-cluster" {
			t.Fatalf("cluster id %q", m.ClusterID)
		}
	})
}

// FuzzProduceResponse feeds arbitrary bytes as a backend Produce answer
// through decodeResponse and fixProduce (via rewrite).
func FuzzProduceResponse(f *testing.F) {
	resp := produceResp(0)
	rt := kmsg.NewProduceResponseTopic()
	rt.Topic, rt.TopicID = "orders", fxOrdersID
	rt.Partitions = []kmsg.ProduceResponseTopicPartition{producePart(0, 6, 101), producePart(1, 0, -1)}
	resp.Topics = []kmsg.ProduceResponseTopic{rt}
	resp.Brokers = []kmsg.ProduceResponseBroker{{NodeID: 101, Host: "b101.kafka.internal", Port: 19101}}
	seedResponses(f, resp, produceResp(0))
	maxV := resp.MaxVersion()
	fix := newFx(f)
	c := &clientConn{s: fix.srv}
	f.Fuzz(func(t *testing.T, version uint8, raw []byte) {
		defer catchPanic(t)
		v := fuzzVersion(version, maxV)
		r := fuzzReq(0, v, 44)
		r.c, r.st = c, fix.srv.view.State()
		out, err := rewrite(&buffer{b: backendFrame(44, raw)}, r, func(kr kmsg.Response) bool {
			return fixProduce(r, fix.backend, kr.(*kmsg.ProduceResponse))
		})
		kr, ok := checkRewrite(t, out, err, r)
		if !ok {
			return
		}
		pr := kr.(*kmsg.ProduceResponse)
		if v >= 10 {
			for _, tp := range pr.Topics {
				for _, p := range tp.Partitions {
					presented(t, fix, "current leader", p.CurrentLeader.LeaderID)
				}
			}
		}
		seen := map[int32]bool{}
		for _, b := range pr.Brokers {
			if seen[b.NodeID] {
				t.Fatalf("node endpoint %d listed twice", b.NodeID)
			}
			seen[b.NodeID] = true
			presentedEndpoint(t, fix, "node endpoint", b.NodeID, b.Host, b.Port)
		}
	})
}

// FuzzFetchResponse feeds arbitrary bytes as a backend Fetch answer through
// decodeResponse and fixFetch (via rewrite).
func FuzzFetchResponse(f *testing.F) {
	resp := fetchResp(0)
	resp.SessionID = 9
	ft := kmsg.NewFetchResponseTopic()
	ft.Topic, ft.TopicID = "orders", fxOrdersID
	ft.Partitions = []kmsg.FetchResponseTopicPartition{fetchPart(0, 0, 101, 102, []byte("records")), fetchPart(1, 74, -1, -1, nil)}
	resp.Topics = []kmsg.FetchResponseTopic{ft}
	resp.Brokers = []kmsg.FetchResponseBroker{{NodeID: 101, Host: "b101.kafka.internal", Port: 19101}}
	seedResponses(f, resp, fetchResp(0))
	maxV := resp.MaxVersion()
	fix := newFx(f)
	c := &clientConn{s: fix.srv}
	f.Fuzz(func(t *testing.T, version uint8, raw []byte) {
		defer catchPanic(t)
		v := fuzzVersion(version, maxV)
		r := fuzzReq(1, v, 45)
		r.c, r.st = c, fix.srv.view.State()
		out, err := rewrite(&buffer{b: backendFrame(45, raw)}, r, func(kr kmsg.Response) bool {
			return fixFetch(r, target{be: fix.backend, broker: -1}, kr.(*kmsg.FetchResponse))
		})
		kr, ok := checkRewrite(t, out, err, r)
		if !ok {
			return
		}
		fr := kr.(*kmsg.FetchResponse)
		if fr.SessionID != 0 {
			t.Fatalf("session id %d passed to the client", fr.SessionID)
		}
		for _, tp := range fr.Topics {
			for _, p := range tp.Partitions {
				if v >= 11 && p.PreferredReadReplica >= 0 {
					t.Fatalf("preferred read replica %d passed to the client", p.PreferredReadReplica)
				}
				if v >= 12 {
					presented(t, fix, "current leader", p.CurrentLeader.LeaderID)
				}
			}
		}
		seen := map[int32]bool{}
		for _, b := range fr.Brokers {
			if seen[b.NodeID] {
				t.Fatalf("node endpoint %d listed twice", b.NodeID)
			}
			seen[b.NodeID] = true
			presentedEndpoint(t, fix, "node endpoint", b.NodeID, b.Host, b.Port)
		}
	})
}

// FuzzProduceRequest feeds arbitrary bytes as a client Produce body: when
// it decodes, the handler must route it (whole or split) without panicking,
// send only decodable requests upstream, and answer unless acks=0.
func FuzzProduceRequest(f *testing.F) {
	seedRequests(f, 3,
		produceReq(-1, fxPart{"orders", fxOrdersID, 0, []byte("a")}),
		produceReq(1, fxPart{"orders", fxOrdersID, 0, []byte("a")}, fxPart{"orders", fxOrdersID, 1, []byte("b")}, fxPart{"events", fxEventsID, 0, nil}),
		produceReq(0, fxPart{"orders", fxOrdersID, 2, []byte("a")}, fxPart{"orders", fxOrdersID, 3, []byte("b")}),
		produceReq(-1, fxPart{"nope", [16]byte{1}, 5, []byte("x")}),
		// A batch of the transactional id's virtual producer id (txn_clusters.go).
		produceReq(-1, fxPart{"orders", fxOrdersID, 0, idempotentBatch(txnVPID("txn-1"), 2, 0, "a", "b")}),
	)
	maxV := kmsg.NewPtrProduceRequest().MaxVersion()
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, 10)
	f.Fuzz(func(t *testing.T, version uint8, body []byte) {
		defer catchPanic(t)
		v := fuzzVersion(version, maxV)
		r := fuzzReq(0, v, 46)
		r.body = body
		kreq, err := decodeRequest(r)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode error is not ErrMalformed: %v", err)
			}
			return
		}
		acks := kreq.(*kmsg.ProduceRequest).Acks
		fix := newFxMetrics(t, reg, metrics)
		ex := fix.conn(t).run(handleProduce, clientFrame(0, v, 46, body), produceAnswer(t))
		if ex.err != nil {
			t.Fatalf("handler error for a decodable request: %v", ex.err)
		}
		if acks == 0 {
			if ex.slots != 0 {
				t.Fatal("acks=0 reserved a response slot")
			}
			for _, frames := range ex.sent {
				for _, fr := range frames {
					decodeFrame(t, fr)
				}
			}
			return
		}
		if ex.slots != 1 || !ex.done || ex.outErr != nil {
			t.Fatalf("exchange %+v", ex)
		}
		decodeOut(t, ex.out, 0, v)
	})
}

// FuzzFetchRequest feeds arbitrary bytes as a client Fetch body: when it
// decodes at v7+, the session fields the handler patches in place lie
// inside it; the handler must then send only sessionless, decodable
// requests upstream and finish the client's response slot.
func FuzzFetchRequest(f *testing.F) {
	forgotten := fetchReq(fxPart{"orders", fxOrdersID, 0, nil})
	forgotten.ForgottenTopics = []kmsg.FetchRequestForgottenTopic{{Topic: "events", TopicID: fxEventsID, Partitions: []int32{1}}}
	seedRequests(f, 0,
		fetchReq(fxPart{"orders", fxOrdersID, 0, nil}),
		fetchReq(fxPart{"orders", fxOrdersID, 0, nil}, fxPart{"orders", fxOrdersID, 1, nil}, fxPart{"events", fxEventsID, 0, nil}),
		fetchReq(fxPart{"nope", [16]byte{3}, 0, nil}),
		forgotten,
	)
	maxV := kmsg.NewPtrFetchRequest().MaxVersion()
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, 10)
	f.Fuzz(func(t *testing.T, version uint8, body []byte) {
		defer catchPanic(t)
		v := fuzzVersion(version, maxV)
		r := fuzzReq(1, v, 47)
		r.body = body
		if _, err := decodeRequest(r); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode error is not ErrMalformed: %v", err)
			}
			return
		}
		if v >= 7 && len(body) < fetchSessionOffset(v)+8 {
			t.Fatalf("v%d: %d-byte body decoded, session fields end at %d", v, len(body), fetchSessionOffset(v)+8)
		}
		fix := newFxMetrics(t, reg, metrics)
		// fetchAnswer fails the test if a request upstream is not sessionless.
		ex := fix.conn(t).run(handleFetch, clientFrame(1, v, 47, body), fetchAnswer(t))
		if ex.err != nil {
			t.Fatalf("handler error for a decodable request: %v", ex.err)
		}
		if ex.slots != 1 || !ex.done {
			t.Fatalf("v%d: %d response slots, finished %v: the client would wait forever", v, ex.slots, ex.done)
		}
		if ex.outErr != nil {
			t.Fatalf("response failed: %v", ex.outErr)
		}
		_, resp := decodeOut(t, ex.out, 1, v)
		if fr := resp.(*kmsg.FetchResponse); fr.SessionID != 0 {
			t.Fatalf("session id %d", fr.SessionID)
		}
	})
}
