package security

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/testpki"
	"github.com/switchyard-proxy/switchyard/kafka"
	"github.com/switchyard-proxy/switchyard/sandbox"
)

// view is a fixed replicated state.
type view struct{ st *fsm.State }

func (v *view) State() *fsm.State { return v.st }
func (v *view) Live(int32) bool   { return true }

// proxy is a TLS listener with SASL in front of a kfake cluster that
// itself requires TLS and SCRAM-SHA-512 of the proxy (issue 12's
// acceptance: secured at both ends).
type proxy struct {
	addr    string
	backend *kfake.Cluster
	ca      *testpki.CA
	dir     string
	// backendOpts are what a direct client of the backend needs.
	backendOpts []kgo.Opt
}

// The proxy's service account on the backend.
const (
	backendUser     = "switchyard-svc"
	backendPassword = "backend-secret"
)

const (
	numPartitions = 3
	numRecords    = 200
)

// startProxy runs the proxy with TLS (a CA and server certificate made
// here) and mechs, knowing users; topic has numPartitions partitions.
func startProxy(t *testing.T, topic string, mechs []string, users ...fsm.User) *proxy {
	t.Helper()
	var principals []string
	for _, u := range users {
		principals = append(principals, "User:"+u.Name)
	}
	return startProxyWith(t, topic, func(sec *kafka.Security, _ *testpki.CA, _ string) { sec.SASLMechanisms = mechs }, principals, users...)
}

// startProxyWith is startProxy with the listener's settings shaped by
// secure (given the TLS settings, the CA and the test's directory) and
// principals allowed everything.
func startProxyWith(t *testing.T, topic string, secure func(*kafka.Security, *testpki.CA, string), principals []string, users ...fsm.User) *proxy {
	t.Helper()
	dir := t.TempDir()
	ca := testpki.NewCA(t, dir, "ca")
	pair := ca.Server(t, "proxy")
	sec := kafka.Security{TLSCertFile: pair.CertFile, TLSKeyFile: pair.KeyFile}
	secure(&sec, ca, dir)
	bePair := ca.Server(t, "backend")
	beCert, err := tls.LoadX509KeyPair(bePair.CertFile, bePair.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(numPartitions, topic),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{beCert}}),
		kfake.EnableSASL(), kfake.Superuser(fsm.SASLScramSHA512, backendUser, backendPassword))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	pwFile := filepath.Join(dir, "backend.password")
	writeFile(t, pwFile, backendPassword+"\n")
	beTLS := &fsm.ClusterTLS{CAFile: ca.File}
	beSASL := &fsm.ClusterSASL{Mechanism: fsm.SASLScramSHA512, Username: backendUser, PasswordFile: pwFile}
	be, err := kafka.NewBackend(kafka.BackendConfig{Name: "c1", Bootstrap: kc.ListenAddrs(), MetadataRefresh: time.Minute, TLS: beTLS, SASL: beSASL})
	if err != nil {
		t.Fatal(err)
	}
	v := &view{}
	srv, err := kafka.NewServer(kafka.Config{
		ListenAddr: "127.0.0.1:0",
		Security:   sec,
	}, v, kafka.NewMetrics(prometheus.NewRegistry(), 0))
	if err != nil {
		t.Fatal(err)
	}
	srv.SetBackends([]*kafka.Backend{be})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr().String()
	slices.SortFunc(users, func(a, b fsm.User) int { return strings.Compare(a.Name, b.Name) })
	v.st = &fsm.State{
		Clusters: []fsm.Cluster{{Name: "c1", Bootstrap: kc.ListenAddrs(), TLS: beTLS, SASL: beSASL}},
		Routes:   fsm.Routes{DefaultCluster: "c1"},
		Peers:    []fsm.Peer{{ID: 0, Name: "peer-0", KafkaAddr: addr}},
		Users:    users,
	}
	// The listener authenticates, so every request is authorized: each
	// user may do everything (test/security's other tests narrow it).
	for _, p := range principals {
		v.st.ACLs = append(v.st.ACLs, sandbox.AllowAll(p)...)
	}
	slices.SortFunc(v.st.ACLs, fsm.CompareACLs)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); be.Run(ctx) }()
	go func() {
		defer wg.Done()
		if err := srv.Serve(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	select {
	case <-be.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("backend not ready")
	}
	return &proxy{addr: addr, backend: kc, ca: ca, dir: dir, backendOpts: []kgo.Opt{
		kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool()}),
		kgo.SASL(scram.Auth{User: backendUser, Pass: backendPassword}.AsSha512Mechanism()),
	}}
}

// user is a user with a credential of each mechanism for password.
func user(t testing.TB, name, password string, mechs ...string) fsm.User {
	t.Helper()
	u := fsm.User{Name: name}
	for _, m := range mechs {
		salt := make([]byte, 16)
		rand.Read(salt)
		c, err := fsm.DeriveCredential(m, password, salt, fsm.MinScramIterations)
		if err != nil {
			t.Fatal(err)
		}
		u.Credentials = append(u.Credentials, c)
	}
	return u
}

func (p *proxy) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: p.ca.Pool(), ServerName: "127.0.0.1"}
}

// checkBackend verifies, directly on the backend, that topic holds n
// records and group committed all of them.
func (p *proxy) checkBackend(t *testing.T, topic, group string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(p.backend.ListenAddrs()...)}, p.backendOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != int64(n) {
		t.Fatalf("backend holds %d records of %s, want %d", total, topic, n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		committed, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		sum := int64(0)
		committed.Each(func(o kadm.OffsetResponse) { sum += o.At })
		if sum == int64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s committed %d of %d records", group, sum, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// needCommand returns the path of an external client; a missing one is a
// broken setup (make deps installs it), not a reason to skip.
func needCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not installed (make deps installs it): %v", name, err)
	}
	return p
}

func value(i int) string { return fmt.Sprintf("%08d", i) }

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
