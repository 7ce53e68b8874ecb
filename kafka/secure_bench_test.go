package kafka

// The cost of TLS and SASL on the listener: the same produce and fetch
// load through a plaintext listener and through one with TLS and
// SCRAM-SHA-512, in one run, in front of the fake broker of
// forward_bench_test.go. Each reports cpu-ms/MB (the process's user+system
// CPU per MB of request and response bytes: proxy and load client together,
// so the TLS figure includes the client's own encryption, as a real
// deployment's client pays it too) and, with one request in flight,
// us/req latency. BenchmarkSecureConnect measures what a new connection
// costs: TCP, TLS handshake and SCRAM exchange (4096 iterations) vs TCP.
//
// Run: go test -run '^$' -bench Secure -benchtime 2000x ./kafka/

import (
	"bufio"
	"crypto/sha512"
	"crypto/tls"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/testpki"
)

// benchSecure is a proxy in front of the fake broker, plaintext or with
// TLS and SCRAM-SHA-512 (secure).
type benchSecure struct {
	addr   string
	secure bool
	tls    *tls.Config
}

func startSecureBenchProxy(tb testing.TB, broker string, secure bool) *benchSecure {
	tb.Helper()
	bs := &benchSecure{secure: secure}
	var sec Security
	var users []fsm.User
	if secure {
		dir := tb.TempDir()
		ca := testpki.NewCA(tb, dir, "ca")
		pair := ca.Server(tb, "proxy")
		sec = Security{TLSCertFile: pair.CertFile, TLSKeyFile: pair.KeyFile, SASLMechanisms: []string{MechScramSHA512}}
		users = []fsm.User{testUser(tb, "bench", "bench-pw", fsm.SASLScramSHA512)}
		bs.tls = &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	}
	be := newTestBackend(tb, BackendConfig{Name: benchCluster, Bootstrap: []string{broker}, MetadataRefresh: time.Minute})
	view := &benchView{}
	srv := listenServer(tb, Config{Security: sec}, view, nil, be)
	bs.addr = srv.Addr().String()
	view.st = &fsm.State{
		Clusters: []fsm.Cluster{{Name: benchCluster, Bootstrap: []string{broker}}},
		Routes:   fsm.Routes{DefaultCluster: benchCluster},
		Peers: []fsm.Peer{{ID: 0, Name: "peer-0", KafkaAddr: bs.addr,
			LocalBrokers: []fsm.BrokerRef{{Cluster: benchCluster, BrokerID: 0}}}},
		Users: users,
	}
	serveServer(tb, srv, be)
	waitReady(tb, be)
	return bs
}

// connect opens an authenticated connection (TLS and SCRAM when secure).
func (bs *benchSecure) connect(tb testing.TB) net.Conn {
	tb.Helper()
	if !bs.secure {
		nc, err := net.Dial("tcp", bs.addr)
		if err != nil {
			tb.Fatal(err)
		}
		return nc
	}
	nc, err := tls.Dial("tcp", bs.addr, bs.tls)
	if err != nil {
		tb.Fatal(err)
	}
	br := bufio.NewReader(nc)
	corr := int32(0)
	id := "bench"
	do := func(req kmsg.Request) kmsg.Response {
		corr++
		if _, err := nc.Write(appendRequest(nil, req, corr, &id)); err != nil {
			tb.Fatal(err)
		}
		buf, err := readFrame(br, 1<<20)
		if err != nil {
			tb.Fatal(err)
		}
		resp, err := decodeCtlResponse(req, corr, buf.b[4:])
		if err != nil {
			tb.Fatal(err)
		}
		return resp
	}
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, MechScramSHA512
	do(hs)
	sc := &testpki.ScramClient{H: sha512.New}
	sc.Begin("bench", "bench-pw", "")
	msg, _ := sc.Step("")
	for !sc.Done() {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.Version, req.SASLAuthBytes = 2, []byte(msg)
		resp := do(req).(*kmsg.SASLAuthenticateResponse)
		if resp.ErrorCode != 0 {
			tb.Fatalf("bench authentication: %v", *resp.ErrorMessage)
		}
		var err error
		if msg, err = sc.Step(string(resp.SASLAuthBytes)); err != nil {
			tb.Fatal(err)
		}
	}
	return nc
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSecureForward: produce and fetch of 1 KiB and 64 KiB through a
// plaintext and a TLS+SCRAM listener, pipelined (cpu-ms/MB) and one at a
// time (us/req).
func BenchmarkSecureForward(b *testing.B) {
	fb := startBenchBroker(b)
	topicID := fb.topicID
	for _, path := range []string{"plaintext", "tls+scram"} {
		bs := startSecureBenchProxy(b, fb.addr(), path != "plaintext")
		for _, op := range []string{"produce", "fetch"} {
			for _, sz := range []struct {
				name string
				n    int
			}{{"1KiB", 1 << 10}, {"64KiB", 64 << 10}} {
				frame := benchProduceFrame(sz.n)
				if op == "fetch" {
					frame = benchFetchFrame(topicID, sz.n)
				}
				for _, window := range []int{benchWindow, 1} {
					name := path + "/" + op + "/size=" + sz.name + "/inflight=" + map[int]string{1: "1", benchWindow: "16"}[window]
					b.Run(name, func(b *testing.B) {
						nc := bs.connect(b)
						defer nc.Close()
						c := &benchClient{nc: nc, frame: append([]byte(nil), frame...)}
						if err := c.run(4, window); err != nil {
							b.Fatal(err)
						}
						b.SetBytes(int64(sz.n))
						cpu0, t0 := cpuTime(), time.Now()
						b.ResetTimer()
						if err := c.run(b.N, window); err != nil {
							b.Fatal(err)
						}
						b.StopTimer()
						cpu, wall := cpuTime()-cpu0, time.Since(t0)
						mb := float64(b.N) * float64(sz.n) / 1e6
						b.ReportMetric(float64(cpu.Milliseconds())/mb, "cpu-ms/MB")
						if window == 1 {
							b.ReportMetric(float64(wall.Microseconds())/float64(b.N), "us/req")
						}
					})
				}
			}
		}
	}
}

// BenchmarkSecureConnect: a new authenticated connection, plaintext (TCP
// only) vs TLS handshake + SCRAM-SHA-512 exchange, client and proxy CPU
// together.
func BenchmarkSecureConnect(b *testing.B) {
	fb := startBenchBroker(b)
	for _, path := range []string{"plaintext", "tls+scram"} {
		bs := startSecureBenchProxy(b, fb.addr(), path != "plaintext")
		b.Run(path, func(b *testing.B) {
			cpu0 := cpuTime()
			for range b.N {
				bs.connect(b).Close()
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/conn")
		})
	}
}
