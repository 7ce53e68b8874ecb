package kafka

// Backend-side hardening: a broker that accepts connections and never
// answers must not keep a backend unready nor fail control lookups; a
// control caller gives up when its own context ends; a backend's size
// prefix does not size an allocation.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// waitUntil polls cond until it holds or d passes.
func waitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hangBroker makes broker node of kc accept requests and never answer them.
func hangBroker(kc *kfake.Cluster, node int32) {
	kc.Control(func(kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		if kc.CurrentNode() != node {
			return nil, nil, false
		}
		return nil, nil, true // handled, no answer: the client waits
	})
}

// startProxy runs cfg's Backend (Bootstrap set to kc's brokers) and a
// Server in front of kc until the test ends, and returns them and the
// proxy's address. The one peer presents no broker, so requests any
// broker can serve pick one by id, 0 first.
func startProxy(t *testing.T, kc *kfake.Cluster, cfg BackendConfig) (*Backend, string) {
	t.Helper()
	be, srv := startProxyServer(t, kc, cfg)
	return be, srv.Addr().String()
}

// startProxyServer is startProxy, returning the server itself.
func startProxyServer(t *testing.T, kc *kfake.Cluster, cfg BackendConfig) (*Backend, *Server) {
	t.Helper()
	cfg.Bootstrap = kc.ListenAddrs()
	if cfg.MetadataRefresh == 0 {
		cfg.MetadataRefresh = time.Minute
	}
	be := newTestBackend(t, cfg)
	view := &benchView{}
	srv := listenServer(t, Config{}, view, nil, be)
	addr := srv.Addr().String()
	view.st = &fsm.State{
		Clusters: []fsm.Cluster{{Name: cfg.Name, Bootstrap: cfg.Bootstrap}},
		Routes:   fsm.Routes{DefaultCluster: cfg.Name},
		Peers:    []fsm.Peer{{ID: 0, Name: "peer-0", KafkaAddr: addr}},
	}
	serveServer(t, srv, be)
	return be, srv
}

// rawClient sends requests to the proxy and reads their answers, each
// within a deadline.
type rawClient struct {
	nc   net.Conn
	br   *bufio.Reader
	corr int32
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawClient) do(req kmsg.Request, within time.Duration) (kmsg.Response, error) {
	c.corr++
	c.nc.SetDeadline(time.Now().Add(within))
	id := "raw-test"
	if _, err := c.nc.Write(appendRequest(nil, req, c.corr, &id)); err != nil {
		return nil, err
	}
	buf, err := readFrame(c.br, 1<<24)
	if err != nil {
		return nil, err
	}
	return decodeCtlResponse(req, c.corr, buf.b[4:])
}

// TestBackendHungBroker: broker 0 of three accepts connections and never
// answers. The backend still becomes ready with the others' versions, its
// own coordinator and producer-id lookups succeed, and so do FindCoordinator
// and a transactional InitProducerId sent through the proxy.
func TestBackendHungBroker(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close) // after the proxy's cleanup, which runs first
	// A transactional id whose coordinator answers: a hung coordinator
	// fails its own transactions, as it would without the proxy.
	txn := ""
	for i := range 100 {
		id := "txn-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if kc.CoordinatorFor(id) != 0 {
			txn = id
			break
		}
	}
	if txn == "" {
		t.Fatal("every transactional id tried is coordinated by broker 0")
	}
	hangBroker(kc, 0)

	be, addr := startProxy(t, kc, BackendConfig{Name: "hung", BrokerTimeout: 2 * time.Second})
	select {
	case <-be.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("backend not ready: one hung broker kept it from loading versions and metadata")
	}
	if _, ok := be.versionsFor(int16(kmsg.FindCoordinator)); !ok {
		t.Fatal("no FindCoordinator versions after ready")
	}
	if got := len(be.brokerIDs()); got != 3 {
		t.Fatalf("metadata lists %d brokers, want 3", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := be.findCoordinator(ctx, coordinatorGroup, "group-1"); err != nil {
		t.Fatalf("coordinator lookup with a hung broker: %v", err)
	}
	if _, _, err := be.initProducerID(ctx); err != nil {
		t.Fatalf("producer id lookup with a hung broker: %v", err)
	}

	c := dialRaw(t, addr)
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version = 3
	fc.CoordinatorKey = "group-2"
	resp, err := c.do(fc, 15*time.Second)
	if err != nil {
		t.Fatalf("FindCoordinator through the proxy: %v", err)
	}
	if code := resp.(*kmsg.FindCoordinatorResponse).ErrorCode; code != 0 {
		t.Fatalf("FindCoordinator through the proxy: error code %d", code)
	}
	ip := kmsg.NewPtrInitProducerIDRequest()
	ip.Version = 4
	ip.TransactionalID = &txn
	ip.TransactionTimeoutMillis = 60000
	ip.ProducerID, ip.ProducerEpoch = -1, -1
	resp, err = c.do(ip, 15*time.Second)
	if err != nil {
		t.Fatalf("InitProducerId through the proxy: %v", err)
	}
	if code := resp.(*kmsg.InitProducerIDResponse).ErrorCode; code != 0 {
		t.Fatalf("InitProducerId through the proxy: error code %d", code)
	}
}

// hangListener accepts connections and never answers; it counts them.
type hangListener struct {
	ln       net.Listener
	accepted atomic.Int32
}

func startHangListener(t *testing.T) *hangListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hangListener{ln: ln}
	var conns []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			h.accepted.Add(1)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
	})
	return h
}

// TestControlLockHonoursContext: a lookup queued behind an exchange with a
// hung broker returns when its own context ends, not when the other
// exchange times out.
func TestControlLockHonoursContext(t *testing.T) {
	h := startHangListener(t)
	c := newCtlConn(h.ln.Addr().String(), testDial)
	defer c.close()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 1
	first := make(chan error, 1)
	go func() {
		_, err := c.roundTrip(context.Background(), req, time.Minute, 1<<20)
		first <- err
	}()
	waitUntil(t, 10*time.Second, "the first exchange to connect", func() bool { return h.accepted.Load() > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	second := make(chan error, 1)
	go func() {
		_, err := c.roundTrip(ctx, req, time.Minute, 1<<20)
		second <- err
	}()
	select {
	case err := <-second:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("queued lookup: %v, want its context's deadline", err)
		}
	case err := <-first:
		t.Fatalf("the hung exchange ended first (%v)", err)
	case <-time.After(20 * time.Second):
		t.Fatal("a queued lookup waited past its context behind a hung broker")
	}
	// Stopping the backend does not wait for the hung exchange either: the
	// connection closes and the exchange fails.
	c.close()
	select {
	case err := <-first:
		if err == nil {
			t.Fatal("the hung exchange succeeded")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("closing the control connection left the hung exchange waiting")
	}
}

// TestBackendHedgedLookup: a lookup any broker can answer does not wait for
// a hung broker's timeout, and the hung broker is asked last afterwards.
func TestBackendHedgedLookup(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	h := startHangListener(t)
	hung := h.ln.Addr().String()
	be, err := NewBackend(BackendConfig{Name: "c", Bootstrap: append([]string{hung}, kc.ListenAddrs()...), BrokerTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer be.closeCtl()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Versions: asked of every bootstrap broker in parallel; the hung one
	// is not waited for past the context, and the answer comes from kfake.
	vctx, vcancel := context.WithTimeout(ctx, 3*time.Second)
	err = be.loadVersions(vctx)
	vcancel()
	if err != nil {
		t.Fatalf("versions with a hung bootstrap broker: %v", err)
	}
	start := time.Now()
	if _, err := be.findCoordinator(ctx, coordinatorGroup, "g"); err != nil {
		t.Fatalf("coordinator lookup: %v", err)
	}
	// Not a timing assertion: the broker timeout is a minute, so an answer
	// at all within the 30 s context means the lookup moved on.
	if d := time.Since(start); d > 25*time.Second {
		t.Fatalf("lookup took %v", d)
	}
	waitUntil(t, 10*time.Second, "the hung broker to be suspect", func() bool {
		got := be.healthFirst([]string{hung, kc.ListenAddrs()[0]})
		return got[0] != hung
	})
}

// versionsBroker answers ApiVersions with Produce up to max, or, while
// hang is set, reads requests and never answers.
type versionsBroker struct {
	ln   net.Listener
	max  atomic.Int32
	hang atomic.Bool
	wg   sync.WaitGroup
}

func startVersionsBroker(t *testing.T, maxProduce int16) *versionsBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &versionsBroker{ln: ln}
	f.max.Store(int32(maxProduce))
	var mu sync.Mutex
	var conns []net.Conn
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer nc.Close()
				br := bufio.NewReader(nc)
				for {
					buf, err := readFrame(br, 1<<20)
					if err != nil {
						return
					}
					h, err := parseRequestHeader(buf.b[4:])
					if err != nil || f.hang.Load() {
						continue
					}
					resp := kmsg.NewPtrApiVersionsResponse()
					resp.Version = h.version
					resp.ApiKeys = []kmsg.ApiVersionsResponseApiKey{
						{ApiKey: 0, MinVersion: 3, MaxVersion: int16(f.max.Load())},
						{ApiKey: 18, MinVersion: 0, MaxVersion: 3},
					}
					if _, err := nc.Write(appendResponse(nil, resp, h.corr)); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		f.wg.Wait()
	})
	return f
}

// TestBackendVersionsHungBroker: versions intersect the brokers that ever
// answered. A broker that has never answered is left out; its first answer
// narrows the set; a broker that answered and then hangs keeps narrowing
// it (a hang never widens what clients are told).
func TestBackendVersionsHungBroker(t *testing.T) {
	a := startVersionsBroker(t, 11)
	b := startVersionsBroker(t, 9)
	b.hang.Store(true)
	be, err := NewBackend(BackendConfig{Name: "c", Bootstrap: []string{a.ln.Addr().String()}, BrokerTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer be.closeCtl()
	md := kmsg.NewPtrMetadataResponse()
	for i, f := range []*versionsBroker{a, b} {
		host, port, err := splitHostPort(f.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		md.Brokers = append(md.Brokers, kmsg.MetadataResponseBroker{NodeID: int32(i), Host: host, Port: port})
	}
	be.updateMetadata(md, true)
	produceMax := func() int16 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := be.loadVersions(ctx); err != nil {
			t.Fatalf("loadVersions: %v", err)
		}
		r, ok := be.versionsFor(0)
		if !ok {
			t.Fatal("no Produce versions")
		}
		return r.max
	}
	if got := produceMax(); got != 11 {
		t.Fatalf("with broker 1 hung since the start: Produce max v%d, want v11 (the broker that answered)", got)
	}
	b.hang.Store(false)
	if got := produceMax(); got != 9 {
		t.Fatalf("after broker 1's first answer: Produce max v%d, want v9", got)
	}
	b.hang.Store(true)
	if got := produceMax(); got != 9 {
		t.Fatalf("broker 1 hung again: Produce max v%d, want v9 (its last answer)", got)
	}
}

// TestBackendFrameGrowsAsRead: a backend that announces a huge answer and
// stalls costs what it sent, not what it announced.
func TestBackendFrameGrowsAsRead(t *testing.T) {
	const announced = 200 << 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		br := bufio.NewReader(nc)
		if _, err := readFrame(br, 1<<20); err != nil {
			return
		}
		// The size prefix, the correlation id and a little body; then
		// nothing until the client gives up.
		out := binary.BigEndian.AppendUint32(nil, announced)
		nc.Write(append(out, 0, 0, 0, 1, 0, 0))
		one := make([]byte, 1)
		nc.Read(one)
	}()
	c := newCtlConn(ln.Addr().String(), testDial)
	defer c.close()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 1
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = c.roundTrip(context.Background(), req, time.Second, 256<<20)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "timeout") && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled answer: %v, want a timeout", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Fatalf("a stalled %d-byte answer allocated %d bytes", announced, grew)
	}
	// The bound still holds: a prefix past it fails before any read.
	if _, err := readBackendFrame(bufio.NewReader(strings.NewReader("\x7f\xff\xff\xff")), 1<<20); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("prefix past the bound: %v, want ErrFrameTooLarge", err)
	}
}

// TestReadBackendFrameLarge: an answer larger than the first chunk is
// read whole across growth steps.
func TestReadBackendFrameLarge(t *testing.T) {
	n := 3*backendFrameChunk + 12345
	frame := make([]byte, 4+n)
	frame[0], frame[1], frame[2], frame[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	for i := 4; i < len(frame); i++ {
		frame[i] = byte(i * 7 % 251)
	}
	buf, err := readBackendFrame(bufio.NewReader(strings.NewReader(string(frame))), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf.b) != string(frame) {
		t.Fatal("frame read across growth steps differs")
	}
	// Truncated: the error is unexpected EOF, not a short frame.
	if _, err := readBackendFrame(bufio.NewReader(strings.NewReader(string(frame[:len(frame)-1]))), 1<<30); err == nil {
		t.Fatal("a truncated frame was accepted")
	}
}

// testDial dials a test broker within a second.
func testDial(ctx context.Context, addr string) (net.Conn, error) {
	return dialTCP(ctx, addr, time.Second)
}

// TestApiVersionsAwaitsFirstVersions: a client's ApiVersions that arrives
// before the cluster's brokers have said their versions (a peer just
// started) is answered once they have, with the keys the cluster serves,
// rather than at once without them.
func TestApiVersionsAwaitsFirstVersions(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	be := newTestBackend(t, BackendConfig{Name: "c1", Bootstrap: kc.ListenAddrs(), MetadataRefresh: time.Minute})
	view := &benchView{}
	srv := listenServer(t, Config{}, view, nil, be)
	addr := srv.Addr().String()
	view.st = &fsm.State{
		Clusters: []fsm.Cluster{{Name: "c1", Bootstrap: kc.ListenAddrs()}},
		Routes:   fsm.Routes{DefaultCluster: "c1"},
		Peers:    []fsm.Peer{{ID: 0, Name: "peer-0", KafkaAddr: addr}},
	}
	serveServer(t, srv) // the backend runs below, late

	c := dialRaw(t, addr)
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1"
	// The backend starts loading only after the request is on its way.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(300 * time.Millisecond)
		be.Run(ctx)
	}()
	kr, err := c.do(req, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp := kr.(*kmsg.ApiVersionsResponse)
	keys := map[int16]bool{}
	for _, k := range resp.ApiKeys {
		keys[k.ApiKey] = true
	}
	for _, k := range []int16{0, 1, 3} { // Produce, Fetch, Metadata
		if !keys[k] {
			t.Fatalf("ApiVersions answered without key %d (%d keys): it did not wait for the cluster's versions", k, len(resp.ApiKeys))
		}
	}
}
