package transport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// logSink routes component logs to t.Log until the test's cleanups run;
// lines from goroutines that outlive the test (raft's, memberlist's) are
// dropped instead of panicking the test binary.
type logSink struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

// newLogSink must be called before anything whose cleanup still logs, so
// that its own cleanup (which silences it) runs last.
func newLogSink(t testing.TB) *logSink {
	s := &logSink{t: t}
	t.Cleanup(func() {
		s.mu.Lock()
		s.done = true
		s.mu.Unlock()
	})
	return s
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done {
		s.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(newLogSink(t), &slog.HandlerOptions{Level: level}))
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newMux starts a Mux on an ephemeral loopback port, closed at cleanup.
func newMux(t testing.TB, name string, faults *Faults, mod func(*Config)) *Mux {
	t.Helper()
	cfg := Config{
		Name:             name,
		BindAddr:         "127.0.0.1:0",
		Faults:           faults,
		Logger:           testLogger(t, slog.LevelDebug),
		DialTimeout:      2 * time.Second,
		HandshakeTimeout: 2 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	m, err := Listen(cfg)
	if err != nil {
		t.Fatalf("listen %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close %s: %v", name, err)
		}
	})
	return m
}

// echoReply is what echoHandler answers.
type echoReply struct {
	From   string          `json:"from"`
	Method string          `json:"method"`
	Body   json.RawMessage `json:"body"`
}

func echoHandler(_ context.Context, from, method string, body []byte) ([]byte, error) {
	return json.Marshal(echoReply{From: from, Method: method, Body: body})
}

func callCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// rawDial opens a plain TCP connection to m's port, for tests that speak
// the wire protocol by hand.
func rawDial(t testing.TB, m *Mux) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", m.Addr().String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByPeer reports whether the far end closes c within d: a read that
// ends in EOF or a reset, not in our own deadline.
func closedByPeer(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

// testTLS returns server and client configs for mutual TLS with one
// self-signed certificate valid for 127.0.0.1 and localhost, naming the
// peer "switchyard-test" only (config tests; peers need testCA).
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	cert, pool := selfSigned(t, "switchyard-test")
	return tlsConfigs(cert, pool)
}

func tlsConfigs(cert tls.Certificate, pool *x509.CertPool) (server, client *tls.Config) {
	server = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
	client = &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS13,
	}
	return server, client
}

func selfSigned(t testing.TB, cn string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca := newTestCA(t)
	cert := ca.issue(t, cn)
	return cert, ca.pool
}

// testCA is a cluster CA for tests: it issues one certificate per peer.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "switchyard test ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue signs a peer certificate with common name cn and DNS SANs
// localhost and dns, valid for 127.0.0.1.
func (ca *testCA) issue(t testing.TB, cn string, dns ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     append([]string{"localhost"}, dns...),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// peerTLS sets mutual TLS on c with a certificate from ca naming the peer
// c.Name.
func (ca *testCA) peerTLS(t testing.TB) func(*Config) {
	return func(c *Config) {
		c.ServerTLS, c.ClientTLS = tlsConfigs(ca.issue(t, c.Name), ca.pool)
	}
}
