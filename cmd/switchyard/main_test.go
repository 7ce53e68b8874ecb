package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/test/testnet"
)

func freeAddr(t *testing.T) string { return testnet.Addr(t) }

// TestServeFromConfigFile runs `switchyard serve` as a one-peer cluster
// from a JSON config file with one flag overriding it, configures it with
// `switchyard ctl` (bearer token on), and drives it with a real client.
func TestServeFromConfigFile(t *testing.T) {
	be, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "served"))
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kafkaAddr, adminAddr := freeAddr(t), freeAddr(t)
	cfg := map[string]any{
		"name":             "solo",
		"data_dir":         filepath.Join(dir, "data"),
		"kafka_listen":     "127.0.0.1:1", // overridden by the flag below
		"admin_listen":     adminAddr,
		"admin_token_file": tokenFile,
		"raft_listen":      freeAddr(t),
		"gossip_listen":    freeAddr(t),
		"bootstrap_expect": 1,
		"local_broker":     []string{"main:0"},
		"log_level":        "warn",
	}
	b, _ := json.Marshal(cfg)
	file := filepath.Join(dir, "peer.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	var wg sync.WaitGroup
	var code int
	wg.Add(1)
	go func() {
		defer wg.Done()
		code = run(ctx, []string{"serve", "--config", file, "--kafka-listen", kafkaAddr}, os.Stdout, &stderr)
	}()
	ctl := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		all := append([]string{"ctl", "--server", adminAddr, "--token-file", tokenFile}, args...)
		c := run(context.Background(), all, &out, &errb)
		return c, out.String(), errb.String()
	}
	// Without the token the API refuses; with it, the cluster is put once
	// the peer has elected itself.
	var out, errb bytes.Buffer
	waitUntil(t, 20*time.Second, "admin API answers 401 without a token", func() bool {
		out.Reset()
		errb.Reset()
		return run(context.Background(), []string{"ctl", "--server", adminAddr, "status"}, &out, &errb) == 1 && strings.Contains(errb.String(), "401")
	})
	waitUntil(t, 20*time.Second, "ctl clusters set", func() bool {
		c, _, _ := ctl("clusters", "set", "main", "--bootstrap", strings.Join(be.ListenAddrs(), ","))
		return c == 0
	})
	if c, o, e := ctl("routes", "default", "main"); c != 0 {
		t.Fatalf("ctl routes default: %d %s %s", c, o, e)
	}
	waitUntil(t, 20*time.Second, "readyz", func() bool {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	c, o, e := ctl("-o", "json", "peers")
	if c != 0 || !strings.Contains(o, `"name": "solo"`) || !strings.Contains(o, kafkaAddr) {
		t.Fatalf("ctl peers: %d %s %s", c, o, e)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.DefaultProduceTopic("served"), kgo.ConsumeTopics("served"))
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer pcancel()
	if err := cl.ProduceSync(pctx, &kgo.Record{Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatalf("produce through serve: %v", err)
	}
	fs := cl.PollRecords(pctx, 1)
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "hello" {
		t.Fatalf("consume through serve: %v %v", recs, fs.Errors())
	}
	cl.Close()
	cancel()
	wg.Wait()
	if code != 0 {
		t.Fatalf("serve exited %d: %s", code, stderr.String())
	}
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	base := []string{"serve", "--data-dir", dir, "--name", "p", "--bootstrap-expect", "1"}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	cases := map[string][]string{
		"no data dir":             {"serve", "--name", "p", "--bootstrap-expect", "1"},
		"nothing to form or join": {"serve", "--data-dir", dir, "--name", "p"},
		"bad local broker":        with("--local-broker", "main:x"),
		"bad log level":           with("--log-level", "loud"),
		"unknown flag":            {"serve", "--nope"},
		"unknown command":         {"frobnicate"},
		"missing config":          {"serve", "--config", "/nonexistent/peer.json"},
		"stray argument":          with("extra"),
		"bad refresh":             with("--metadata-refresh", "soon"),
		"bad dead timeout":        with("--dead-peer-timeout", "-1s"),
		"negative write lease":    with("--write-lease", "-1s"),
		"write lease past fence":  with("--write-lease", "18s"),
		"missing token file":      with("--admin-token-file", "/nonexistent/token"),
		"half of peer tls":        with("--peer-tls-cert-file", "/nonexistent/cert.pem"),
		"wildcard advertise":      with("--kafka-listen", "0.0.0.0:0", "--admin-listen", "", "--raft-listen", "127.0.0.1:0", "--gossip-listen", "127.0.0.1:0"),
	}
	for name, args := range cases {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), args, &out, &errb)
			if code == 0 {
				t.Fatalf("exit 0 for %v", args)
			}
			if errb.Len() == 0 {
				t.Fatalf("no error message for %v", args)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDevSandbox runs `switchyard dev` on free ports, waits for its ready
// line, and lists the cluster with kcat (librdkafka) at the printed
// bootstrap address: three brokers, all of them peers.
func TestDevSandbox(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat not installed (make deps installs it): %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int)
	go func() { done <- run(ctx, []string{"dev", "--kafka-port", "0", "--admin-port", "0"}, &out, &errb) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "ready") {
		if time.Now().After(deadline) {
			t.Fatalf("no ready line; stdout: %s stderr: %s", out.String(), errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var bootstrap []string
	for _, line := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "bootstrap: "); ok {
			bootstrap = strings.Split(rest, ",")
		}
	}
	if len(bootstrap) != 3 {
		t.Fatalf("bootstrap line lists %v", bootstrap)
	}
	kctx, kcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer kcancel()
	listing, err := exec.CommandContext(kctx, kcat, "-b", bootstrap[0], "-L", "-J").Output()
	if err != nil {
		t.Fatalf("kcat -L: %v", err)
	}
	var md struct {
		Brokers []struct {
			ID   int32  `json:"id"`
			Name string `json:"name"`
		} `json:"brokers"`
	}
	if err := json.Unmarshal(listing, &md); err != nil {
		t.Fatalf("kcat -L -J output: %v: %s", err, listing)
	}
	var names []string
	for _, b := range md.Brokers {
		name, _, _ := strings.Cut(b.Name, "/")
		names = append(names, name)
	}
	slices.Sort(names)
	want := slices.Clone(bootstrap)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("kcat lists brokers %v, want the peers %v", names, want)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("dev exited %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "stopping") {
		t.Errorf("dev did not say it was stopping: %s", out.String())
	}
}

// TestDevSecure runs `switchyard dev --secure`: it prints the CA, the user
// and its password file on the lines issue 12 fixes, and the kcat command
// line it prints works as printed (SASL_SSL, SCRAM-SHA-512) through a
// shell, while kcat without credentials is refused.
func TestDevSecure(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatalf("kcat not installed (make deps installs it): %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"dev", "--secure", "--peers", "1", "--brokers", "1", "--kafka-port", "0", "--admin-port", "0"}, &out, &errb)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "ready") {
		if time.Now().After(deadline) {
			t.Fatalf("no ready line; stdout: %s stderr: %s", out.String(), errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	lines := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			lines[k] = v
		}
	}
	for _, k := range []string{"tls ca", "sasl user", "sasl password file", "kcat"} {
		if lines[k] == "" {
			t.Fatalf("no %q line in:\n%s", k, out.String())
		}
	}
	if _, err := os.Stat(lines["tls ca"]); err != nil {
		t.Fatalf("tls ca: %v", err)
	}
	if pw, err := os.ReadFile(lines["sasl password file"]); err != nil || len(bytes.TrimSpace(pw)) == 0 {
		t.Fatalf("sasl password file: %v %q", err, pw)
	}
	kctx, kcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer kcancel()
	listing, err := exec.CommandContext(kctx, "bash", "-c", lines["kcat"]+" -m 10").CombinedOutput()
	if err != nil || !strings.Contains(string(listing), "brokers:") {
		t.Fatalf("the printed kcat line: %v\n%s", err, listing)
	}
	bootstrap := strings.Split(lines["bootstrap"], ",")[0]
	if o, err := exec.CommandContext(kctx, "kcat", "-b", bootstrap, "-L", "-m", "5").CombinedOutput(); err == nil {
		t.Fatalf("kcat without TLS and SASL listed the secure sandbox:\n%s", o)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("dev exited %d: %s", code, errb.String())
	}
}

// TestExampleConfigIsValid keeps deploy/config/peer.example.json loadable.
func TestExampleConfigIsValid(t *testing.T) {
	cfg := defaultServeConfig()
	if err := loadConfigFile("../../deploy/config/peer.example.json", &cfg); err != nil {
		t.Fatal(err)
	}
	// The example names a token file, peer TLS files and a gossip key on
	// the peer's host; stand them in.
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.AdminTokenFile = token
	if cfg.PeerTLSCertFile == "" || cfg.GossipKeyFile == "" {
		t.Fatal("the example listens on every interface: it must show peer TLS and a gossip key")
	}
	cfg.PeerTLSCertFile, cfg.PeerTLSKeyFile, cfg.PeerTLSCAFile = writePeerCert(t, dir, cfg.Name)
	gossipKey := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(gossipKey, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.GossipKeyFile = gossipKey
	nc, err := cfg.nodeConfig()
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if nc.BootstrapExpect != 3 || len(nc.Join) != 2 || len(nc.LocalBrokers) != 1 || len(nc.AllowPeers) != 3 || nc.GossipKeyFile == "" {
		t.Fatalf("example config: expect %d, join %v, local brokers %v", nc.BootstrapExpect, nc.Join, nc.LocalBrokers)
	}
}

// TestServeRefusesExposedControlPlane: without --insecure, serve refuses a
// peer port without TLS, gossip without a key or an admin API without a
// token on anything but loopback, and says what to do next.
func TestServeRefusesExposedControlPlane(t *testing.T) {
	dir := t.TempDir()
	cert, key, ca := writePeerCert(t, dir, "p")
	otherCert, otherKey, _ := writePeerCert(t, filepath.Join(dir, "q"), "q")
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	withTLS := []string{"--peer-tls-cert-file", cert, "--peer-tls-key-file", key, "--peer-tls-ca-file", ca}
	cases := []struct {
		name string
		args []string
		file map[string]any // config file, when set
		want []string       // substrings of the error; nil: accepted
	}{
		{name: "all loopback"},
		{name: "localhost and ::1", args: []string{"--raft-listen", "localhost:0", "--gossip-listen", "[::1]:0", "--admin-listen", "127.0.0.2:0"}},
		{name: "peer port on every interface", args: []string{"--raft-listen", "0.0.0.0:17000"},
			want: []string{"peer port 0.0.0.0:17000 has no TLS", "--peer-tls-cert-file", "--insecure", "127.0.0.1"}},
		{name: "peer port without a host", args: []string{"--raft-listen", ":17000"}, want: []string{"peer port"}},
		{name: "peer port on a host name", args: []string{"--raft-listen", "peer.example:17000"}, want: []string{"peer port"}},
		{name: "peer port with tls", args: append([]string{"--raft-listen", "0.0.0.0:17000"}, withTLS...)},
		{name: "peer port insecure", args: []string{"--raft-listen", "0.0.0.0:17000", "--insecure"}},
		{name: "insecure in the config file", args: []string{"--raft-listen", "10.0.0.1:17000"}, file: map[string]any{"insecure": true}},
		{name: "gossip without a key", args: []string{"--gossip-listen", "10.0.0.1:17946"}, want: []string{"gossip 10.0.0.1:17946", "--gossip-key-file"}},
		{name: "gossip with a key", args: []string{"--gossip-listen", "10.0.0.1:17946"}, file: map[string]any{"gossip_key_file": "/etc/switchyard/gossip.key"}},
		{name: "admin without a token", args: []string{"--admin-listen", "0.0.0.0:18080"}, want: []string{"admin API 0.0.0.0:18080", "--admin-token-file"}},
		{name: "admin with a token but no TLS", args: []string{"--admin-listen", "0.0.0.0:18080", "--admin-token-file", token},
			want: []string{"admin API 0.0.0.0:18080 has no TLS", "--admin-tls-cert-file"}},
		{name: "admin with TLS but no token", args: []string{"--admin-listen", "0.0.0.0:18080", "--admin-tls-cert-file", cert, "--admin-tls-key-file", key},
			want: []string{"admin API 0.0.0.0:18080 has no token", "--admin-tokens-file"}},
		{name: "admin with a token and TLS", args: []string{"--admin-listen", "0.0.0.0:18080", "--admin-token-file", token, "--admin-tls-cert-file", cert, "--admin-tls-key-file", key}},
		{name: "admin with a tokens file and TLS", args: []string{"--admin-listen", "0.0.0.0:18080", "--admin-tls-cert-file", cert, "--admin-tls-key-file", key},
			file: map[string]any{"admin_tokens_file": "/etc/switchyard/admin-tokens"}},
		{name: "admin TLS cert without key", args: []string{"--admin-tls-cert-file", cert}, want: []string{"--admin-tls-key-file"}},
		{name: "no admin api", args: []string{"--admin-listen", ""}},
		{name: "all three named at once", args: []string{"--raft-listen", "0.0.0.0:1", "--gossip-listen", "0.0.0.0:2", "--admin-listen", "0.0.0.0:3"},
			want: []string{"peer port", "gossip", "admin API"}},
		{name: "certificate naming another peer", args: []string{"--peer-tls-cert-file", otherCert, "--peer-tls-key-file", otherKey, "--peer-tls-ca-file", ca},
			want: []string{"does not name", `"p"`}},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			args := []string{"--data-dir", dir, "--name", "p", "--bootstrap-expect", "1",
				"--kafka-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--raft-listen", "127.0.0.1:0", "--gossip-listen", "127.0.0.1:0"}
			if tc.file != nil {
				b, _ := json.Marshal(tc.file)
				f := filepath.Join(t.TempDir(), "peer.json")
				if err := os.WriteFile(f, b, 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", f)
			}
			args = append(args, tc.args...)
			var errb bytes.Buffer
			cfg, err := parseServe(args, &errb)
			if err != nil {
				t.Fatalf("parse %v: %v", args, err)
			}
			_, err = cfg.nodeConfig()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("%v refused: %v", tc.args, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("%v accepted, want an error naming %q", tc.args, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// writePeerCert writes a CA and a peer certificate (common name name)
// signed by it, as PEM files in dir.
func writePeerCert(t *testing.T, dir, name string) (certFile, keyFile, caFile string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(file, typ string, b []byte) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("peer.pem", "CERTIFICATE", der), write("peer.key", "EC PRIVATE KEY", keyDER), write("ca.pem", "CERTIFICATE", caDER)
}

// TestCPUProfileEnv: $SWITCHYARD_CPUPROFILE's profile is written when the
// run ends (gzip, as runtime/pprof writes it), nothing is done without it,
// and a path that cannot be created is an error.
func TestCPUProfileEnv(t *testing.T) {
	stop, err := startCPUProfile("")
	if err != nil {
		t.Fatal(err)
	}
	stop()
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	stop, err = startCPUProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile is not gzip data: % x", b[:min(len(b), 8)])
	}
	if _, err := startCPUProfile(filepath.Join(t.TempDir(), "missing", "cpu.pprof")); err == nil {
		t.Fatal("a profile in a missing directory: no error")
	}
}
