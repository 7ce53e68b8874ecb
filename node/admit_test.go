package node

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// testCA issues peer certificates for tests.
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
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "switchyard test CA"},
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
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

var serial = struct {
	sync.Mutex
	n int64
}{n: 100}

// peerTLS returns mutual TLS settings for a peer whose certificate has CN
// cn (and 127.0.0.1, which the peer port's dialer checks as the host).
func (ca *testCA) peerTLS(t testing.TB, cn string) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial.Lock()
	serial.n++
	sn := serial.n
	serial.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(sn),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: ca.pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.pool, MinVersion: tls.VersionTLS13}
	return server, client
}

// testSink routes logs to t.Log until the test ends.
type testSink struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (s *testSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done {
		s.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLog(t testing.TB) *slog.Logger {
	s := &testSink{t: t}
	t.Cleanup(func() { s.mu.Lock(); s.done = true; s.mu.Unlock() })
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startPeer starts a peer from cfg (addresses on loopback, FastTiming) and
// stops it when the test ends.
func startPeer(t *testing.T, log *slog.Logger, cfg Config) *Node {
	t.Helper()
	cfg.DataDir = filepath.Join(t.TempDir(), cfg.Name)
	cfg.KafkaListen, cfg.AdminListen, cfg.RaftListen, cfg.GossipListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Timing = FastTiming()
	cfg.Logger = log.With("peer", cfg.Name)
	n, _ := runPeer(t, cfg)
	return n
}

func writeKeys(t *testing.T, path string, keys ...[]byte) {
	t.Helper()
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// rogueMember is a plain memberlist process, not a Switchyard peer, that
// claims a name and addresses in its gossip metadata.
type rogueMember struct{ meta []byte }

func (r *rogueMember) NodeMeta(int) []byte             { return r.meta }
func (r *rogueMember) NotifyMsg([]byte)                {}
func (r *rogueMember) GetBroadcasts(int, int) [][]byte { return nil }
func (r *rogueMember) LocalState(bool) []byte          { return nil }
func (r *rogueMember) MergeRemoteState([]byte, bool)   {}
func startRogue(t *testing.T, name string, meta peerMeta, keys ...[]byte) *memberlist.Memberlist {
	t.Helper()
	b, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = name
	mc.BindAddr, mc.BindPort = "127.0.0.1", 0
	mc.Delegate = &rogueMember{meta: b}
	mc.LogOutput = &testSink{t: t, done: true} // silent
	mc.ProbeInterval, mc.ProbeTimeout, mc.GossipInterval = 200*time.Millisecond, 100*time.Millisecond, 50*time.Millisecond
	if len(keys) > 0 {
		kr, err := memberlist.NewKeyring(keys[1:], keys[0])
		if err != nil {
			t.Fatal(err)
		}
		mc.Keyring = kr
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	return ml
}

// presented lists the Kafka addresses n's data plane presents as brokers:
// peers in the replicated state that gossip holds live (kafka.View).
func presented(n *Node) []string {
	var out []string
	for _, p := range n.State().Peers {
		if n.Live(p.ID) {
			out = append(out, p.KafkaAddr)
		}
	}
	return out
}

func currentLeader(nodes ...*Node) *Node {
	for _, n := range nodes {
		if n.IsLeader() {
			return n
		}
	}
	return nil
}

// TestRogueGossipMemberNotAdmitted is the reproduction from the hardening
// issue: a plain memberlist process that joins with a made-up name and
// Kafka address must not be registered, added to Raft or presented as a
// broker. Three peers run in secure mode (peer mTLS, encrypted gossip).
// A rogue without the gossip key cannot join at all; one with a leaked key
// joins gossip but is not admitted, even though its peer port presents a
// certificate from the cluster CA (for another name). A properly certified
// fourth peer is admitted by its certificate, and the rogue only once the
// operator allow-lists its name.
func TestRogueGossipMemberNotAdmitted(t *testing.T) {
	log := testLog(t)
	ca := newTestCA(t)
	key := bytes.Repeat([]byte{0x5a}, 32)
	keyFile := filepath.Join(t.TempDir(), "gossip.key")
	writeKeys(t, keyFile, key)

	secure := func(name string) Config {
		srv, cli := ca.peerTLS(t, name)
		return Config{Name: name, Version: "test", PeerServerTLS: srv, PeerClientTLS: cli, GossipKeyFile: keyFile, BootstrapExpect: 3}
	}
	p1 := startPeer(t, log, secure("p1"))
	c2, c3 := secure("p2"), secure("p3")
	c2.Join, c3.Join = []string{p1.GossipAddr()}, []string{p1.GossipAddr()}
	p2, p3 := startPeer(t, log, c2), startPeer(t, log, c3)
	nodes := []*Node{p1, p2, p3}
	waitUntil(t, 60*time.Second, "a leader and three registered peers", func() bool {
		l := currentLeader(nodes...)
		return l != nil && len(l.State().Peers) == 3 && len(l.RaftServers()) == 3
	})

	// The rogue's peer port presents a certificate the cluster CA signed,
	// but for p9, not for the name it gossips.
	rsrv, _ := ca.peerTLS(t, "p9")
	rln, err := tls.Listen("tcp", "127.0.0.1:0", rsrv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rln.Close() })
	go func() {
		for {
			c, err := rln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); time.Sleep(time.Second); c.Close() }()
		}
	}()
	const rogueKafka = "10.66.6.6:9092"
	rogueMeta := peerMeta{Kafka: rogueKafka, Raft: rln.Addr().String(), Version: "test", Expect: 3}

	// Without the gossip key the rogue cannot even join.
	plain := startRogue(t, "rogue-plain", rogueMeta)
	if k, err := plain.Join([]string{p1.GossipAddr()}); err == nil || k > 0 {
		t.Fatalf("a keyless process joined encrypted gossip (contacted %d, err %v)", k, err)
	}
	_ = plain.Shutdown()

	// With a leaked key it joins gossip, and stays unadmitted.
	rogue := startRogue(t, "rogue", rogueMeta, key)
	if _, err := rogue.Join([]string{p2.GossipAddr()}); err != nil {
		t.Fatalf("rogue with the key: %v", err)
	}
	waitUntil(t, 60*time.Second, "the leader to refuse the rogue", func() bool {
		l := currentLeader(nodes...)
		if l == nil {
			return false
		}
		l.admission.mu.Lock()
		defer l.admission.mu.Unlock()
		return strings.Contains(l.admission.logged["rogue"], `naming ["p9"]`)
	})
	// Several more reconcile rounds, in which the old code registered it.
	time.Sleep(5 * FastTiming().ReconcileInterval)
	assertNotAdmitted := func(name, kafka string) {
		t.Helper()
		for _, n := range nodes {
			if _, ok := n.State().PeerByName(name); ok {
				t.Fatalf("%s: %s is in the peer table", n.Name(), name)
			}
			if slices.Contains(n.RaftServers(), name) {
				t.Fatalf("%s: %s is in the raft configuration %v", n.Name(), name, n.RaftServers())
			}
			if slices.Contains(presented(n), kafka) {
				t.Fatalf("%s presents %s's kafka address %s as a broker: %v", n.Name(), name, kafka, presented(n))
			}
		}
	}
	assertNotAdmitted("rogue", rogueKafka)
	var l *Node
	waitUntil(t, 60*time.Second, "a leader", func() bool { l = currentLeader(nodes...); return l != nil })
	if _, _, body := call(t, l, "GET", "/metrics", "", ""); !strings.Contains(body, "\nswitchyard_peer_unproven_members 1\n") {
		t.Fatalf("the leader's metrics do not count one unproven member:\n%s", body)
	}

	// A fourth peer whose certificate names it is admitted by it.
	c4 := secure("p4")
	c4.BootstrapExpect, c4.Join = 0, []string{p3.GossipAddr()}
	p4 := startPeer(t, log, c4)
	waitUntil(t, 60*time.Second, "p4 registered and in raft", func() bool {
		l := currentLeader(nodes...)
		if l == nil {
			return false
		}
		_, ok := l.State().PeerByName("p4")
		return ok && slices.Contains(l.RaftServers(), "p4") && slices.Contains(presented(l), p4.KafkaAddr())
	})
	assertNotAdmitted("rogue", rogueKafka)

	// The operator vouches for the rogue's name: now it is admitted.
	// Retried: on a busy machine leadership can move mid-request (503),
	// and the PUT is idempotent.
	waitUntil(t, 60*time.Second, "PUT /v1/peers/allow-list/rogue to succeed", func() bool {
		code, _, body := call(t, p3, "PUT", "/v1/peers/allow-list/rogue", "", "")
		if code != 200 {
			t.Logf("allow rogue: %d %s", code, body)
		}
		return code == 200
	})
	waitUntil(t, 60*time.Second, "the allow-listed member registered and in raft", func() bool {
		l := currentLeader(nodes...)
		if l == nil {
			return false
		}
		_, ok := l.State().PeerByName("rogue")
		return ok && slices.Contains(l.RaftServers(), "rogue") && slices.Contains(presented(l), rogueKafka)
	})
	code, _, body := call(t, p1, "GET", "/v1/peers/allow-list", "", "")
	if code != 200 || !strings.Contains(body, `"rogue"`) {
		t.Fatalf("allow-list: %d %s", code, body)
	}
}

// TestAllowListAPI: the allow-list endpoints' shapes and errors.
func TestAllowListAPI(t *testing.T) {
	n := startSolo(t, "")
	for _, s := range []struct {
		method, path string
		status       int
		contains     string
	}{
		{"GET", "/v1/peers/allow-list", 200, `"allow_list": []`},
		{"PUT", "/v1/peers/allow-list/p7", 200, `"name": "p7"`},
		{"PUT", "/v1/peers/allow-list/p7", 200, `"name": "p7"`},
		{"PUT", "/v1/peers/allow-list/bad%20name", 400, "allowed peer"},
		{"GET", "/v1/peers/allow-list", 200, `"p7"`},
		{"DELETE", "/v1/peers/allow-list/p7", 204, ""},
		{"DELETE", "/v1/peers/allow-list/p7", 404, "not on the allow-list"},
		{"POST", "/v1/peers/allow-list/p7", 405, "use PUT, DELETE"},
	} {
		code, _, body := call(t, n, s.method, s.path, "", "")
		if code != s.status || !strings.Contains(body, s.contains) {
			t.Fatalf("%s %s = %d %s, want %d containing %q", s.method, s.path, code, body, s.status, s.contains)
		}
	}
}

// TestReloadGossipKeys: a rewritten key file is installed once, primary
// first; a broken one keeps the keys.
func TestReloadGossipKeys(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 32)
	file := filepath.Join(t.TempDir(), "keys")
	writeKeys(t, file, k1)
	n := startPeer(t, testLog(t), Config{Name: "solo", BootstrapExpect: 1, GossipKeyFile: file})
	if changed, err := n.ReloadGossipKeys(); changed || err != nil {
		t.Fatalf("unchanged file: changed %v, err %v", changed, err)
	}
	writeKeys(t, file, k2, k1)
	if changed, err := n.ReloadGossipKeys(); !changed || err != nil {
		t.Fatalf("rotated file: changed %v, err %v", changed, err)
	}
	if !bytes.Equal(n.keyring.GetPrimaryKey(), k2) || len(n.keyring.GetKeys()) != 2 {
		t.Fatal("k2 is not primary")
	}
	if changed, _ := n.ReloadGossipKeys(); changed {
		t.Fatal("the same file installed twice")
	}
	if err := os.WriteFile(file, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ReloadGossipKeys(); err == nil {
		t.Fatal("a broken key file was accepted")
	}
	if !bytes.Equal(n.keyring.GetPrimaryKey(), k2) {
		t.Fatal("a broken key file changed the keys")
	}
	// The watcher picks up a rewrite on its own.
	writeKeys(t, file, k1)
	waitUntil(t, 10*time.Second, "the watcher to install k1 alone", func() bool {
		return bytes.Equal(n.keyring.GetPrimaryKey(), k1) && len(n.keyring.GetKeys()) == 1
	})
}

// TestBootstrapIgnoresUnprovenMembers: without peer TLS, founders named by
// --allow-peer form the cluster; a rogue announcing the same
// --bootstrap-expect before the second founder arrives is not counted (it
// would otherwise have formed a cluster with the first founder).
func TestBootstrapIgnoresUnprovenMembers(t *testing.T) {
	log := testLog(t)
	founders := []string{"a", "b"}
	a := startPeer(t, log, Config{Name: "a", Version: "test", BootstrapExpect: 2, AllowPeers: founders})
	rogue := startRogue(t, "rogue", peerMeta{Kafka: "10.66.6.7:9092", Raft: "127.0.0.1:9", Version: "test", Expect: 2})
	if _, err := rogue.Join([]string{a.GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 60*time.Second, "a to refuse the rogue", func() bool {
		a.admission.mu.Lock()
		defer a.admission.mu.Unlock()
		return strings.Contains(a.admission.logged["rogue"], "no allow-list names")
	})
	// Time in which the old code bootstrapped {a, rogue}.
	time.Sleep(time.Second)
	if got := a.RaftServers(); len(got) != 0 {
		t.Fatalf("a bootstrapped %v without its second founder", got)
	}
	b := startPeer(t, log, Config{Name: "b", Version: "test", BootstrapExpect: 2, AllowPeers: founders, Join: []string{a.GossipAddr()}})
	waitUntil(t, 60*time.Second, "a and b to form a cluster and register", func() bool {
		l := currentLeader(a, b)
		return l != nil && len(l.State().Peers) == 2 && slices.Equal(l.RaftServers(), founders)
	})
	for _, n := range []*Node{a, b} {
		if _, ok := n.State().PeerByName("rogue"); ok || slices.Contains(n.RaftServers(), "rogue") {
			t.Fatalf("%s admitted the rogue: peers %v, raft %v", n.Name(), n.State().Peers, n.RaftServers())
		}
	}
}

// countingHandler counts log records by message.
type countingHandler struct {
	mu   sync.Mutex
	msgs map[string]int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.msgs[r.Message]++
	h.mu.Unlock()
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// TestAdmitAllLogsOnceAndCounts: a refused member is logged and counted
// once however many rounds refuse it, admitted by the allow-list, and
// counted again only after it was admitted and is refused anew.
func TestAdmitAllLogsOnceAndCounts(t *testing.T) {
	h := &countingHandler{msgs: map[string]int{}}
	reg := prometheus.NewRegistry()
	n := &Node{cfg: Config{Name: "self", Timing: FastTiming()}, log: slog.New(h), admission: newAdmission(reg)}
	members := map[string]member{
		"self":  {name: "self", state: memberAlive},
		"rogue": {name: "rogue", state: memberAlive, meta: peerMeta{Kafka: "10.0.0.9:9092", Raft: "10.0.0.9:7000"}},
		"gone":  {name: "gone", state: memberDead},
	}
	metric := func(name string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				return m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	const refusedMsg = "not admitting an unproven gossip member: it is not registered, added to raft or presented to clients"
	empty := &fsm.State{}
	for range 5 {
		got := n.admitAll(context.Background(), empty, members)
		if !got["self"] || got["rogue"] || got["gone"] {
			t.Fatalf("verdicts %v", got)
		}
	}
	if h.msgs[refusedMsg] != 1 || metric("switchyard_peer_admission_refusals_total") != 1 || metric("switchyard_peer_unproven_members") != 1 {
		t.Fatalf("after 5 rounds: %d warnings, %v refusals, %v unproven; want 1 each",
			h.msgs[refusedMsg], metric("switchyard_peer_admission_refusals_total"), metric("switchyard_peer_unproven_members"))
	}
	allowed := &fsm.State{PeerAllowList: []string{"rogue"}}
	if got := n.admitAll(context.Background(), allowed, members); !got["rogue"] {
		t.Fatal("the allow-list did not admit rogue")
	}
	if metric("switchyard_peer_unproven_members") != 0 || h.msgs["gossip member admitted"] != 1 {
		t.Fatalf("after allowing: unproven %v, admitted logs %d", metric("switchyard_peer_unproven_members"), h.msgs["gossip member admitted"])
	}
	n.admitAll(context.Background(), empty, members)
	if h.msgs[refusedMsg] != 2 || metric("switchyard_peer_admission_refusals_total") != 2 {
		t.Fatalf("refused again: %d warnings, %v refusals; want 2", h.msgs[refusedMsg], metric("switchyard_peer_admission_refusals_total"))
	}
}

// TestProveByCert: the probe accepts a certificate from the cluster CA
// whose CN or DNS SAN is the name, and nothing else.
func TestProveByCert(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	_, client := ca.peerTLS(t, "prober")
	listen := func(srv *tls.Config) string {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
			}
		}()
		return ln.Addr().String()
	}
	good, _ := ca.peerTLS(t, "p1")
	foreign, _ := other.peerTLS(t, "p1")
	foreign.ClientAuth = tls.NoClientCert // only the probe's own chain check can refuse it
	san, _ := ca.peerTLS(t, "host-cn")
	// A DNS SAN naming the peer: re-issue with the SAN.
	san.Certificates[0] = ca.leafWithSAN(t, "host-cn", "p2")
	for _, tc := range []struct {
		what, name, addr string
		ok               bool
	}{
		{"cn matches", "p1", listen(good), true},
		{"cn differs", "p9", listen(good), false},
		{"another ca", "p1", listen(foreign), false},
		{"dns san matches", "p2", listen(san), true},
		{"nothing listens", "p1", "127.0.0.1:1", false},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := proveByCert(ctx, client, tc.name, tc.addr)
		cancel()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrUnproven)) {
			t.Errorf("%s: err = %v, want ok=%v", tc.what, err, tc.ok)
		}
	}
}

// leafWithSAN issues a certificate with CN cn and one DNS SAN.
func (ca *testCA) leafWithSAN(t testing.TB, cn, san string) tls.Certificate {
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
		DNSNames:     []string{san},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
