package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// authCA is a throwaway CA whose PEM is written to a temp file; it signs
// broker certificates for 127.0.0.1.
type authCA struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	caFile string
}

func newAuthCA(t testing.TB) *authCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "switchyard backend test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	return &authCA{cert: cert, key: key, caFile: caFile}
}

// serverTLS is a broker's TLS configuration with a certificate for
// 127.0.0.1 and "broker.test".
func (ca *authCA) serverTLS(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "broker.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"broker.test"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// writeFile writes a secret file and moves its modification time on, so
// a rewrite within the file system's time granularity is still seen.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	var old time.Time
	if fi, err := os.Stat(path); err == nil {
		old = fi.ModTime()
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if !old.IsZero() {
		if err := os.Chtimes(path, time.Now(), old.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
}

// secureCluster is a kfake cluster with TLS and SASL: SCRAM-SHA-512 user
// "proxy" (password "scram-secret"), SCRAM-SHA-256 user "proxy256" and
// PLAIN user "plainproxy" (both password "plain-secret").
func secureCluster(t testing.TB, ca *authCA, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser(fsm.SASLScramSHA512, "proxy", "scram-secret"),
		kfake.Superuser(fsm.SASLScramSHA256, "proxy256", "plain-secret"),
		kfake.Superuser(fsm.SASLPlain, "plainproxy", "plain-secret")}, opts...)
	if ca != nil {
		opts = append(opts, kfake.TLS(ca.serverTLS(t)))
	}
	kc, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return kc
}

func authBackend(t testing.TB, kc *kfake.Cluster, m *Metrics, tlsc *fsm.ClusterTLS, saslc *fsm.ClusterSASL) *Backend {
	t.Helper()
	be, err := NewBackend(BackendConfig{Name: "secure", Bootstrap: kc.ListenAddrs(), TLS: tlsc, SASL: saslc, Metrics: m, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return be
}

func authFailuresOf(m *Metrics, reason string) float64 {
	var d dto.Metric
	if err := m.backendAuthFailures.WithLabelValues("secure", reason).Write(&d); err != nil {
		return -1
	}
	return d.GetCounter().GetValue()
}

// A franz-go client through the proxy produces, consumes in a group and
// commits on a backend that takes only TLS and SCRAM-SHA-512.
func TestBackendTLSSCRAMProduceConsumeCommit(t *testing.T) {
	ca := newAuthCA(t)
	kc := secureCluster(t, ca, kfake.SeedTopics(2, "secure-orders"))
	pw := filepath.Join(t.TempDir(), "proxy.pw")
	writeFile(t, pw, "scram-secret\n")
	m := NewMetrics(prometheus.NewRegistry(), 0)
	_, addr := startProxy(t, kc, BackendConfig{Name: "secure", Metrics: m,
		TLS:  &fsm.ClusterTLS{CAFile: ca.caFile},
		SASL: &fsm.ClusterSASL{Mechanism: fsm.SASLScramSHA512, Username: "proxy", PasswordFile: pw}})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("secure-orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	const n = 20
	for i := range n {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "v%d", i)}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("secure-orders"), kgo.ConsumerGroup("secure-g"),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := 0
	for got < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records: %v", got, n, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		got += fs.NumRecords()
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	offs, err := kadm.NewClient(prod).FetchOffsets(ctx, "secure-g")
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	sum := int64(0)
	offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
	if sum != n {
		t.Fatalf("committed offsets sum to %d, want %d: %+v", sum, n, offs)
	}
	for _, r := range authReasons {
		if v := authFailuresOf(m, r); v != 0 {
			t.Errorf("auth failures %s = %v, want 0", r, v)
		}
	}
}

// A wrong password is refused with a clear error and counted; fixing the
// file heals the running backend without a restart.
func TestBackendSASLWrongPasswordThenRotation(t *testing.T) {
	ca := newAuthCA(t)
	kc := secureCluster(t, ca, kfake.SeedTopics(1, "rotate"))
	pw := filepath.Join(t.TempDir(), "proxy.pw")
	writeFile(t, pw, "not-the-password")
	m := NewMetrics(prometheus.NewRegistry(), 0)
	tlsc := &fsm.ClusterTLS{CAFile: ca.caFile}
	saslc := &fsm.ClusterSASL{Mechanism: fsm.SASLScramSHA512, Username: "proxy", PasswordFile: pw}

	be := authBackend(t, kc, m, tlsc, saslc)
	broker := kc.ListenAddrs()[0]
	_, err := be.dial(context.Background(), broker)
	var ae *BackendAuthError
	if !errors.As(err, &ae) || ae.Reason != authReasonSASL {
		t.Fatalf("dial with a wrong password: %v, want a sasl_auth BackendAuthError", err)
	}
	for _, want := range []string{`"secure"`, broker, "SCRAM-SHA-512", "authentication failed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if v := authFailuresOf(m, authReasonSASL); v != 1 {
		t.Fatalf("sasl_auth failures = %v, want 1", v)
	}

	// The whole proxy on the same wrong file: not ready, still counting.
	_, addr := startProxy(t, kc, BackendConfig{Name: "secure", Metrics: m, TLS: tlsc, SASL: saslc, MetadataRefresh: time.Minute})
	deadline := time.Now().Add(30 * time.Second)
	for authFailuresOf(m, authReasonSASL) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the running backend never tried the wrong password")
		}
		time.Sleep(20 * time.Millisecond)
	}
	writeFile(t, pw, "scram-secret\n")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("rotate"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("after rotation")}).FirstErr(); err != nil {
		t.Fatalf("produce after fixing the password file: %v", err)
	}
	if _, err := be.dial(context.Background(), broker); err != nil {
		t.Fatalf("dial after fixing the password file: %v", err)
	}
}

// TLS failures name the cause: an unknown CA, a server name the
// certificate does not carry; PLAIN works on the same cluster; a
// mechanism the broker does not enable is refused by the handshake.
func TestBackendTLSAndMechanismFailures(t *testing.T) {
	ca := newAuthCA(t)
	kc := secureCluster(t, ca)
	broker := kc.ListenAddrs()[0]
	dir := t.TempDir()
	pw := filepath.Join(dir, "plain.pw")
	writeFile(t, pw, "plain-secret")
	plainSASL := &fsm.ClusterSASL{Mechanism: fsm.SASLPlain, Username: "plainproxy", PasswordFile: pw}
	other := newAuthCA(t)

	for _, tc := range []struct {
		name   string
		tls    *fsm.ClusterTLS
		sasl   *fsm.ClusterSASL
		reason string
		says   string
	}{
		{"plain ok", &fsm.ClusterTLS{CAFile: ca.caFile}, plainSASL, "", ""},
		{"scram-sha-256 ok", &fsm.ClusterTLS{CAFile: ca.caFile}, &fsm.ClusterSASL{Mechanism: fsm.SASLScramSHA256, Username: "proxy256", PasswordFile: pw}, "", ""},
		{"scram-sha-256 wrong user", &fsm.ClusterTLS{CAFile: ca.caFile}, &fsm.ClusterSASL{Mechanism: fsm.SASLScramSHA256, Username: "proxy", PasswordFile: pw}, authReasonSASL, "authentication failed"},
		{"server name ok", &fsm.ClusterTLS{CAFile: ca.caFile, ServerName: "broker.test"}, plainSASL, "", ""},
		{"unknown CA", &fsm.ClusterTLS{CAFile: other.caFile}, plainSASL, authReasonTLSVerify, "does not verify"},
		{"system roots", &fsm.ClusterTLS{}, plainSASL, authReasonTLSVerify, "does not verify"},
		{"wrong server name", &fsm.ClusterTLS{CAFile: ca.caFile, ServerName: "other.test"}, plainSASL, authReasonTLSVerify, "other.test"},
		{"skip verify", &fsm.ClusterTLS{InsecureSkipVerify: true}, plainSASL, "", ""},
		{"missing ca file", &fsm.ClusterTLS{CAFile: filepath.Join(dir, "nope.pem")}, plainSASL, authReasonSecret, "nope.pem"},
		{"ca file not PEM", &fsm.ClusterTLS{CAFile: pw}, plainSASL, authReasonSecret, "no PEM certificate"},
		{"missing password file", &fsm.ClusterTLS{CAFile: ca.caFile}, &fsm.ClusterSASL{Mechanism: fsm.SASLPlain, Username: "plainproxy", PasswordFile: filepath.Join(dir, "none")}, authReasonSecret, "none"},
		{"plain wrong user", &fsm.ClusterTLS{CAFile: ca.caFile}, &fsm.ClusterSASL{Mechanism: fsm.SASLPlain, Username: "nobody", PasswordFile: pw}, authReasonSASL, "authentication failed"},
		{"oauthbearer not enabled", &fsm.ClusterTLS{CAFile: ca.caFile}, &fsm.ClusterSASL{Mechanism: fsm.SASLOAuthBearer, TokenFile: pw}, authReasonMechanism, "does not enable OAUTHBEARER"},
		{"plaintext to a TLS port", nil, plainSASL, authReasonIO, "SASL handshake"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMetrics(prometheus.NewRegistry(), 0)
			be := authBackend(t, kc, m, tc.tls, tc.sasl)
			be.cfg.DialTimeout = 3 * time.Second
			be.auth.timeout = 3 * time.Second
			nc, err := be.dial(context.Background(), broker)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				nc.Close()
				return
			}
			var ae *BackendAuthError
			if !errors.As(err, &ae) || ae.Reason != tc.reason || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), broker) {
				t.Fatalf("dial: %v, want a %s failure naming the broker and saying %q", err, tc.reason, tc.says)
			}
			if v := authFailuresOf(m, tc.reason); v != 1 {
				t.Fatalf("%s failures = %v, want 1", tc.reason, v)
			}
		})
	}
}

// The handshake is bounded by the dial timeout: a "broker" that accepts
// and never answers costs the timeout, not forever.
func TestBackendAuthHandshakeTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	pw := filepath.Join(t.TempDir(), "pw")
	writeFile(t, pw, "x")
	be, err := NewBackend(BackendConfig{Name: "secure", Bootstrap: []string{ln.Addr().String()}, DialTimeout: 300 * time.Millisecond,
		SASL: &fsm.ClusterSASL{Mechanism: fsm.SASLPlain, Username: "u", PasswordFile: pw}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := be.dial(context.Background(), ln.Addr().String()); done <- err }()
	select {
	case err := <-done:
		// The dial's context or the connection's deadline, whichever
		// fires first: both are the dial timeout.
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("dial: %v, want the deadline", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the SASL handshake with a silent broker never ended")
	}
}

// The client-credentials token is fetched with the client's id and secret,
// cached, fetched again once near expiry and after the secret rotates;
// the endpoint's errors come back with its words.
func TestTokenSourceClientCredentials(t *testing.T) {
	var calls atomic.Int32
	var lifetime atomic.Int32
	lifetime.Store(3600)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		id, secret, _ := r.BasicAuth()
		if r.Method != http.MethodPost || r.FormValue("grant_type") != "client_credentials" || r.FormValue("scope") != "kafka" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		if id != "proxy" || secret != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client","error_description":"bad secret"}`)
			return
		}
		fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":%d}`, calls.Load(), lifetime.Load())
	}))
	defer srv.Close()
	secret := filepath.Join(t.TempDir(), "client.secret")
	writeFile(t, secret, "wrong")
	ts := &tokenSource{endpoint: srv.URL, clientID: "proxy", secretFile: secret, scope: "kafka", files: newSecretFiles(), client: srv.Client()}
	ctx := context.Background()
	if _, err := ts.token(ctx); err == nil || !strings.Contains(err.Error(), "invalid_client bad secret") {
		t.Fatalf("token with a wrong secret: %v", err)
	}
	writeFile(t, secret, "s3cret\n")
	tok, err := ts.token(ctx)
	if err != nil || tok != "tok-2" {
		t.Fatalf("token = %q, %v; want tok-2", tok, err)
	}
	if tok, _ := ts.token(ctx); tok != "tok-2" || calls.Load() != 2 {
		t.Fatalf("cached token = %q after %d calls, want tok-2 after 2", tok, calls.Load())
	}
	ts.refresh = time.Now().Add(-time.Millisecond) // as if 80% of its life had passed
	if tok, _ := ts.token(ctx); tok != "tok-3" {
		t.Fatalf("refreshed token = %q, want tok-3", tok)
	}
	ts.invalidate() // as after a broker refused it
	if tok, _ := ts.token(ctx); tok != "tok-4" {
		t.Fatalf("token after the broker refused one = %q, want tok-4", tok)
	}
}

func TestParseTokenResponse(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		tok    string
		life   time.Duration
		err    string
	}{
		{200, `{"access_token":"a","token_type":"bearer","expires_in":60}`, "a", time.Minute, ""},
		{200, `{"access_token":"a","expires_in":"120"}`, "a", 2 * time.Minute, ""},
		{200, `{"access_token":"a"}`, "a", defaultTokenLifetime, ""},
		{200, `{"access_token":"a","token_type":"mac"}`, "", 0, "not bearer"},
		{200, `{"access_token":"a","expires_in":-1}`, "", 0, "outside"},
		{200, `{"access_token":"a","expires_in":"soon"}`, "", 0, "not a number"},
		{200, `{"token_type":"bearer"}`, "", 0, "no access_token"},
		{200, `<html>`, "", 0, "not a JSON"},
		{500, `oops`, "", 0, "HTTP 500"},
		{400, `{"error":"invalid_scope"}`, "", 0, "invalid_scope"},
	} {
		tok, life, err := parseTokenResponse(tc.status, []byte(tc.body))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%d %s: %v, want %q", tc.status, tc.body, err, tc.err)
			}
			continue
		}
		if err != nil || tok != tc.tok || life != tc.life {
			t.Errorf("%d %s: %q %v %v", tc.status, tc.body, tok, life, err)
		}
	}
}

// FuzzParseTokenResponse: no token endpoint answer makes the parser panic,
// and an accepted one has a token and a lifetime within bounds.
func FuzzParseTokenResponse(f *testing.F) {
	f.Add(200, []byte(`{"access_token":"a","token_type":"Bearer","expires_in":3600}`))
	f.Add(200, []byte(`{"access_token":"a","expires_in":"1e400"}`))
	f.Add(200, []byte(`{"access_token":"a","expires_in":null}`))
	f.Add(401, []byte(`{"error":"invalid_client","error_description":"x"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		tok, life, err := parseTokenResponse(status, body)
		if err != nil {
			return
		}
		if tok == "" || life <= 0 || life > 366*24*time.Hour {
			t.Fatalf("accepted %q with lifetime %v", tok, life)
		}
	})
}

// A broker that gives SASL sessions a lifetime (KIP-368,
// connections.max.reauth.ms) has its upstream connections replaced before
// the session ends, at a moment nothing is in flight on them: a producer
// through the proxy keeps producing across several lifetimes with no
// error, and the broker sees a new authentication each lifetime.
func TestBackendSASLSessionRenewal(t *testing.T) {
	kc := secureCluster(t, nil, kfake.SeedTopics(1, "renew"),
		kfake.BrokerConfigs(map[string]string{"connections.max.reauth.ms": "1500"}))
	var handshakes atomic.Int32
	kc.ControlKey(17, func(kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		handshakes.Add(1)
		return nil, nil, false
	})
	pw := filepath.Join(t.TempDir(), "plain.pw")
	writeFile(t, pw, "plain-secret")
	saslc := &fsm.ClusterSASL{Mechanism: fsm.SASLPlain, Username: "plainproxy", PasswordFile: pw}
	m := NewMetrics(prometheus.NewRegistry(), 0)

	be := authBackend(t, kc, m, nil, saslc)
	before := time.Now()
	nc, renew, err := be.dialSession(context.Background(), kc.ListenAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if lo, hi := before.Add(1300*time.Millisecond), time.Now().Add(1350*time.Millisecond); renew.Before(lo) || renew.After(hi) {
		t.Fatalf("renew at %v after the dial, want 90%% of the 1.5 s lifetime", renew.Sub(before))
	}

	start := handshakes.Load()
	_, addr := startProxy(t, kc, BackendConfig{Name: "secure", Metrics: m, SASL: saslc})
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("renew"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for end := time.Now().Add(5500 * time.Millisecond); time.Now().Before(end); {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatalf("produce across session lifetimes: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("handshakes: %d by the proxy", handshakes.Load()-start)
	if n := handshakes.Load() - start; n < 5 {
		t.Fatalf("%d SASL handshakes by the proxy over more than three session lifetimes, want at least 5 (the first dials, then a renewal each lifetime)", n)
	}
	var d dto.Metric
	if err := m.clusterErrors.WithLabelValues("secure", "connection").Write(&d); err != nil || d.GetCounter().GetValue() != 0 {
		t.Fatalf("connection errors = %v (%v): a renewal counted as a failure", d.GetCounter().GetValue(), err)
	}
}
