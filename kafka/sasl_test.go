package kafka

// The listener's TLS and SASL against real clients (franz-go) and a raw
// client that checks the protocol's edges: kfake plaintext backends, users
// in a hand-built state, certificates and JWTs generated at test time.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/testpki"
)

// secureProxy is a Server with sec in front of a kfake cluster.
type secureProxy struct {
	addr string
	reg  *prometheus.Registry
	view *benchView
	srv  *Server
}

// testUser is a user with a credential of each mechanism for password.
func testUser(t testing.TB, name, password string, mechs ...string) fsm.User {
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

func startSecureProxy(t testing.TB, sec Security, users ...fsm.User) *secureProxy {
	t.Helper()
	return startSecureProxyLog(t, sec, nil, users...)
}

// startSecureProxyLog is startSecureProxy logging to log (nil: nowhere).
func startSecureProxyLog(t testing.TB, sec Security, log *slog.Logger, users ...fsm.User) *secureProxy {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	be := newTestBackend(t, BackendConfig{Name: "c1", Bootstrap: kc.ListenAddrs(), MetadataRefresh: time.Minute})
	reg := prometheus.NewRegistry()
	view := &benchView{}
	// Authentication is under test here; with no rules at all,
	// AllowIfNoACL lets every principal through (authorization: acl*_test.go,
	// test/security).
	srv := listenServer(t, Config{Security: sec, Authz: AuthzConfig{AllowIfNoACL: true}, Logger: log}, view, NewMetrics(reg, 0), be)
	addr := srv.Addr().String()
	slices.SortFunc(users, func(a, b fsm.User) int { return strings.Compare(a.Name, b.Name) })
	view.st = &fsm.State{
		Clusters: []fsm.Cluster{{Name: "c1", Bootstrap: kc.ListenAddrs()}},
		Routes:   fsm.Routes{DefaultCluster: "c1"},
		Peers:    []fsm.Peer{{ID: 0, Name: "peer-0", KafkaAddr: addr}},
		Users:    users,
	}
	serveServer(t, srv, be)
	waitReady(t, be)
	return &secureProxy{addr: addr, reg: reg, view: view, srv: srv}
}

// authCount reads switchyard_kafka_auth_total{mechanism, result}.
func (p *secureProxy) authCount(t testing.TB, mech, result string) float64 {
	t.Helper()
	return gatherMetric(t, p.reg, "switchyard_kafka_auth_total", "mechanism", mech, "result", result)
}

// secureRoundTrip produces n records to topic t through cl and consumes them back
// in a group, committing; it fails the test on any error.
func secureRoundTrip(t *testing.T, addr string, n int, opts ...kgo.Opt) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	group := fmt.Sprintf("g-%d", time.Now().UnixNano())
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ConsumeTopics("t"), kgo.ConsumerGroup(group),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.RecordRetries(3)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: "t", Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	got := 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume after %d of %d records: %v", got, n, err)
		}
		got += fs.NumRecords()
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

// rawConn dials the proxy (over TLS when cfg is set) for hand-made requests.
func dialProxy(t *testing.T, addr string, cfg *tls.Config) *rawClient {
	t.Helper()
	var nc net.Conn
	var err error
	if cfg != nil {
		nc, err = tls.Dial("tcp", addr, cfg)
	} else {
		nc, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawClient{nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawClient) handshake(t *testing.T, mech string, version int16) *kmsg.SASLHandshakeResponse {
	t.Helper()
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.Version, req.Mechanism = version, mech
	resp, err := c.do(req, 10*time.Second)
	if err != nil {
		t.Fatalf("SaslHandshake: %v", err)
	}
	return resp.(*kmsg.SASLHandshakeResponse)
}

func (c *rawClient) authenticate(t *testing.T, token []byte) *kmsg.SASLAuthenticateResponse {
	t.Helper()
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.Version, req.SASLAuthBytes = 2, token
	resp, err := c.do(req, 10*time.Second)
	if err != nil {
		t.Fatalf("SaslAuthenticate: %v", err)
	}
	return resp.(*kmsg.SASLAuthenticateResponse)
}

// expectClosed checks the proxy closes the connection.
func (c *rawClient) expectClosed(t *testing.T) {
	t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.br.ReadByte(); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("connection still open (read: %v), want it closed", err)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

func (c *rawClient) metadata(within time.Duration) error {
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 9
	_, err := c.do(req, within)
	return err
}

func plainToken(user, pass string) []byte { return []byte("\x00" + user + "\x00" + pass) }

func scramMech(user, pass string, sha512 bool) sasl.Mechanism {
	a := scram.Auth{User: user, Pass: pass}
	if sha512 {
		return a.AsSha512Mechanism()
	}
	return a.AsSha256Mechanism()
}

// TestListenerSASLPlaintext: SASL without TLS on the listener
// (SASL_PLAINTEXT, as the listener's settings choose): SCRAM and PLAIN
// authenticate and serve; a wrong password is refused.
func TestListenerSASLPlaintext(t *testing.T) {
	p := startSecureProxy(t, Security{SASLMechanisms: []string{MechScramSHA512, MechPlain}},
		testUser(t, "alice", "alice-secret", fsm.SASLScramSHA512))
	secureRoundTrip(t, p.addr, 10, kgo.SASL(scramMech("alice", "alice-secret", true)))
	secureRoundTrip(t, p.addr, 5, kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism()))
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr), kgo.SASL(scramMech("alice", "wrong", true)), kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("wrong password over SASL_PLAINTEXT: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
}

func TestListenerSCRAMAndPlain(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, dir, "ca")
	srvPair := ca.Server(t, "server")
	p := startSecureProxy(t, Security{
		TLSCertFile: srvPair.CertFile, TLSKeyFile: srvPair.KeyFile,
		SASLMechanisms: []string{MechScramSHA512, MechScramSHA256, MechPlain},
	}, testUser(t, "alice", "alice-secret", fsm.SASLScramSHA512, fsm.SASLScramSHA256), testUser(t, "bob", "bob-secret", fsm.SASLPlain))
	tlsCfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}

	t.Run("scram-sha-512", func(t *testing.T) {
		secureRoundTrip(t, p.addr, 20, kgo.DialTLSConfig(tlsCfg), kgo.SASL(scramMech("alice", "alice-secret", true)))
	})
	t.Run("scram-sha-256", func(t *testing.T) {
		secureRoundTrip(t, p.addr, 20, kgo.DialTLSConfig(tlsCfg), kgo.SASL(scramMech("alice", "alice-secret", false)))
	})
	t.Run("plain", func(t *testing.T) {
		secureRoundTrip(t, p.addr, 20, kgo.DialTLSConfig(tlsCfg), kgo.SASL(plain.Auth{User: "bob", Pass: "bob-secret"}.AsMechanism()))
	})
	t.Run("plain-with-scram-credential", func(t *testing.T) {
		secureRoundTrip(t, p.addr, 5, kgo.DialTLSConfig(tlsCfg), kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism()))
	})
	t.Run("scram-independent-client", func(t *testing.T) {
		c := dialProxy(t, p.addr, tlsCfg)
		for _, h := range []struct {
			mech string
			sc   *testpki.ScramClient
		}{{MechScramSHA256, &testpki.ScramClient{H: sha256.New}}, {MechScramSHA512, &testpki.ScramClient{H: sha512.New}}} {
			if r := c.handshake(t, h.mech, 1); r.ErrorCode != 0 {
				t.Fatalf("handshake %s: %v", h.mech, kerr.ErrorForCode(r.ErrorCode))
			}
			h.sc.Begin("alice", "alice-secret", "")
			msg, _ := h.sc.Step("")
			r := c.authenticate(t, []byte(msg))
			if r.ErrorCode != 0 {
				t.Fatalf("client-first: %v %v", kerr.ErrorForCode(r.ErrorCode), r.ErrorMessage)
			}
			msg, err := h.sc.Step(string(r.SASLAuthBytes))
			if err != nil {
				t.Fatal(err)
			}
			r = c.authenticate(t, []byte(msg))
			if r.ErrorCode != 0 {
				t.Fatalf("client-final: %v %v", kerr.ErrorForCode(r.ErrorCode), *r.ErrorMessage)
			}
			if _, err := h.sc.Step(string(r.SASLAuthBytes)); err != nil || !h.sc.Done() {
				t.Fatalf("server-final does not verify: %v", err)
			}
		}
		if err := c.metadata(10 * time.Second); err != nil {
			t.Fatalf("metadata after authenticating twice: %v", err)
		}
	})
	if n := p.authCount(t, MechScramSHA512, authOK); n < 2 {
		t.Errorf("SCRAM-SHA-512 successes counted %v, want at least 2", n)
	}
}

func TestListenerAuthFailures(t *testing.T) {
	p := startSecureProxy(t, Security{SASLMechanisms: []string{MechScramSHA512, MechPlain}},
		testUser(t, "alice", "alice-secret", fsm.SASLScramSHA512))
	t.Run("franz-wrong-password", func(t *testing.T) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr), kgo.SASL(scramMech("alice", "wrong", true)), kgo.RequestRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err = cl.Ping(ctx)
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Fatalf("ping with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
		}
	})
	for _, tc := range []struct {
		name, mech string
		token      func(*rawClient) []byte
		want       string
	}{
		{"plain-wrong-password", MechPlain, func(*rawClient) []byte { return plainToken("alice", "nope") }, plainFailed},
		{"plain-unknown-user", MechPlain, func(*rawClient) []byte { return plainToken("mallory", "x") }, plainFailed},
		{"plain-malformed", MechPlain, func(*rawClient) []byte { return []byte("alice") }, "malformed PLAIN"},
		{"scram-unknown-user", MechScramSHA512, nil, "invalid credentials"},
		{"scram-channel-binding", MechScramSHA512, func(*rawClient) []byte { return []byte("p=tls-unique,,n=alice,r=abc") }, "channel binding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialProxy(t, p.addr, nil)
			if r := c.handshake(t, tc.mech, 1); r.ErrorCode != 0 {
				t.Fatalf("handshake: %v", kerr.ErrorForCode(r.ErrorCode))
			}
			var r *kmsg.SASLAuthenticateResponse
			if tc.token != nil {
				r = c.authenticate(t, tc.token(c))
			} else {
				// An unknown user gets a server-first message like a real
				// one; the proof fails.
				sc := &testpki.ScramClient{H: sha512.New}
				sc.Begin("mallory", "x", "")
				msg, _ := sc.Step("")
				first := c.authenticate(t, []byte(msg))
				if first.ErrorCode != 0 {
					t.Fatalf("client-first of an unknown user refused at once: %v", kerr.ErrorForCode(first.ErrorCode))
				}
				msg, err := sc.Step(string(first.SASLAuthBytes))
				if err != nil {
					t.Fatal(err)
				}
				r = c.authenticate(t, []byte(msg))
			}
			if r.ErrorCode != kerr.SaslAuthenticationFailed.Code {
				t.Fatalf("error %v, want SASL_AUTHENTICATION_FAILED", kerr.ErrorForCode(r.ErrorCode))
			}
			if r.ErrorMessage == nil || !strings.Contains(*r.ErrorMessage, tc.want) {
				t.Fatalf("message %v, want it to contain %q", r.ErrorMessage, tc.want)
			}
			if strings.Contains(*r.ErrorMessage, "nope") || strings.Contains(*r.ErrorMessage, "alice-secret") {
				t.Fatalf("message %q names a password", *r.ErrorMessage)
			}
			c.expectClosed(t)
		})
	}
	t.Run("unsupported-mechanism", func(t *testing.T) {
		c := dialProxy(t, p.addr, nil)
		r := c.handshake(t, "GSSAPI", 1)
		if r.ErrorCode != kerr.UnsupportedSaslMechanism.Code {
			t.Fatalf("error %v, want UNSUPPORTED_SASL_MECHANISM", kerr.ErrorForCode(r.ErrorCode))
		}
		if strings.Join(r.SupportedMechanisms, ",") != "SCRAM-SHA-512,PLAIN" {
			t.Fatalf("mechanisms %v", r.SupportedMechanisms)
		}
		c.expectClosed(t)
	})
	t.Run("request-before-authentication", func(t *testing.T) {
		c := dialProxy(t, p.addr, nil)
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = 3
		resp, err := c.do(req, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var keys []int16
		for _, k := range resp.(*kmsg.ApiVersionsResponse).ApiKeys {
			keys = append(keys, k.ApiKey)
		}
		if !containsKey(keys, 17) || !containsKey(keys, 36) {
			t.Fatalf("ApiVersions before authentication lacks SaslHandshake or SaslAuthenticate: %v", keys)
		}
		if err := c.metadata(10 * time.Second); err == nil {
			t.Fatal("Metadata before authentication answered")
		}
		c.expectClosed(t)
	})
	t.Run("oversized-frame-before-authentication", func(t *testing.T) {
		c := dialProxy(t, p.addr, nil)
		c.nc.Write([]byte{0, 0x10, 0, 0}) // a 1 MiB claim: over 512 KiB
		c.expectClosed(t)
	})
	if n := p.authCount(t, MechPlain, authFailed); n < 3 {
		t.Errorf("PLAIN failures counted %v, want 3", n)
	}
}

func containsKey(keys []int16, k int16) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

// TestListenerPlaintextAdvertisesNoSASL: without SASL the proxy does not
// advertise the SASL keys (a client would try them) and refuses them.
func TestListenerPlaintextAdvertisesNoSASL(t *testing.T) {
	p := startSecureProxy(t, Security{})
	c := dialProxy(t, p.addr, nil)
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	resp, err := c.do(req, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range resp.(*kmsg.ApiVersionsResponse).ApiKeys {
		if k.ApiKey == 17 || k.ApiKey == 36 {
			t.Fatalf("key %d advertised without SASL", k.ApiKey)
		}
	}
	if p.srv.cfg.Authenticates {
		t.Fatal("Authenticates set without SASL or client CA")
	}
}

// TestListenerSaslV0Raw: SaslHandshake v0, then the PLAIN token as a raw
// size-prefixed frame, answered by a raw (empty) frame; then Kafka
// requests are served.
func TestListenerSaslV0Raw(t *testing.T) {
	p := startSecureProxy(t, Security{SASLMechanisms: []string{MechPlain}}, testUser(t, "bob", "pw", fsm.SASLPlain))
	c := dialProxy(t, p.addr, nil)
	if r := c.handshake(t, MechPlain, 0); r.ErrorCode != 0 {
		t.Fatalf("handshake v0: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	tok := plainToken("bob", "pw")
	frame := append([]byte{0, 0, 0, byte(len(tok))}, tok...)
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(frame); err != nil {
		t.Fatal(err)
	}
	var size [4]byte
	if _, err := io.ReadFull(c.br, size[:]); err != nil {
		t.Fatalf("raw answer: %v", err)
	}
	if size != [4]byte{} {
		t.Fatalf("raw PLAIN answer of %v bytes, want an empty frame", size)
	}
	if err := c.metadata(10 * time.Second); err != nil {
		t.Fatalf("metadata after v0 authentication: %v", err)
	}
	// A wrong password on v0 has no error frame: the connection closes.
	c2 := dialProxy(t, p.addr, nil)
	c2.handshake(t, MechPlain, 0)
	tok = plainToken("bob", "wrong")
	c2.nc.Write(append([]byte{0, 0, 0, byte(len(tok))}, tok...))
	c2.expectClosed(t)
}

func TestListenerOAuth(t *testing.T) {
	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	rs, ec := testpki.NewRSASigner(t, "rsa-1"), testpki.NewECSigner(t, "ec-1")
	testpki.WriteJWKS(t, jwks, rs, ec)
	p := startSecureProxy(t, Security{
		SASLMechanisms: []string{MechOAuthBearer},
		OAuthJWKSFile:  jwks, OAuthIssuer: "https://idp.test", OAuthAudience: "switchyard",
	})
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"sub": "svc-orders", "iss": "https://idp.test", "aud": []string{"other", "switchyard"},
			"exp": time.Now().Add(time.Hour).Unix(), "nbf": time.Now().Add(-time.Minute).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	tokenMech := func(tok string) kgo.Opt {
		return kgo.SASL(oauth.Oauth(func(context.Context) (oauth.Auth, error) { return oauth.Auth{Token: tok}, nil }))
	}
	t.Run("rs256", func(t *testing.T) { secureRoundTrip(t, p.addr, 10, tokenMech(rs.Token(t, claims(nil)))) })
	t.Run("es256", func(t *testing.T) { secureRoundTrip(t, p.addr, 10, tokenMech(ec.Token(t, claims(nil)))) })
	for _, tc := range []struct {
		name string
		tok  string
		want string
	}{
		{"expired", rs.Token(t, claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })), "expired"},
		{"not-yet-valid", rs.Token(t, claims(func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() })), "not valid before"},
		{"wrong-issuer", rs.Token(t, claims(func(c map[string]any) { c["iss"] = "https://evil.test" })), "issuer"},
		{"wrong-audience", rs.Token(t, claims(func(c map[string]any) { c["aud"] = "other" })), "audience"},
		{"no-sub", rs.Token(t, claims(func(c map[string]any) { delete(c, "sub") })), "sub"},
		{"unknown-key", testpki.NewECSigner(t, "ec-2").Token(t, claims(nil)), "no key"},
		{"forged", testpki.NewECSigner(t, "ec-1").Token(t, claims(nil)), "signature"},
		{"alg-none", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "algorithm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialProxy(t, p.addr, nil)
			c.handshake(t, MechOAuthBearer, 1)
			r := c.authenticate(t, []byte("n,,\x01auth=Bearer "+tc.tok+"\x01\x01"))
			if r.ErrorCode != kerr.SaslAuthenticationFailed.Code || r.ErrorMessage == nil || !strings.Contains(*r.ErrorMessage, tc.want) {
				t.Fatalf("answer %v %v, want SASL_AUTHENTICATION_FAILED about %q", kerr.ErrorForCode(r.ErrorCode), r.ErrorMessage, tc.want)
			}
			c.expectClosed(t)
		})
	}
	t.Run("franz-expired", func(t *testing.T) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr), tokenMech(rs.Token(t, claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }))), kgo.RequestRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := cl.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Fatalf("ping with an expired token: %v, want SASL_AUTHENTICATION_FAILED", err)
		}
	})
	t.Run("session-ends-with-token", func(t *testing.T) {
		c := dialProxy(t, p.addr, nil)
		c.handshake(t, MechOAuthBearer, 1)
		r := c.authenticate(t, []byte("n,,\x01auth=Bearer "+rs.Token(t, claims(func(c map[string]any) { c["exp"] = time.Now().Add(10 * time.Minute).Unix() }))+"\x01\x01"))
		if r.ErrorCode != 0 {
			t.Fatalf("authenticate: %v", *r.ErrorMessage)
		}
		if l := time.Duration(r.SessionLifetimeMillis) * time.Millisecond; l <= 9*time.Minute || l > 10*time.Minute {
			t.Fatalf("session lifetime %v, want about the token's 10m", l)
		}
	})
	t.Run("key-rotation", func(t *testing.T) {
		rs2 := testpki.NewRSASigner(t, "rsa-2")
		testpki.WriteJWKS(t, jwks, rs2)
		tok := rs2.Token(t, claims(nil))
		waitUntil(t, 20*time.Second, "the new key set", func() bool {
			c := dialProxy(t, p.addr, nil)
			c.handshake(t, MechOAuthBearer, 1)
			r := c.authenticate(t, []byte("n,,\x01auth=Bearer "+tok+"\x01\x01"))
			c.nc.Close()
			return r.ErrorCode == 0
		})
		c := dialProxy(t, p.addr, nil)
		c.handshake(t, MechOAuthBearer, 1)
		if r := c.authenticate(t, []byte("n,,\x01auth=Bearer "+rs.Token(t, claims(nil))+"\x01\x01")); r.ErrorCode == 0 {
			t.Fatal("a token of the removed key still accepted")
		}
	})
}

func TestListenerMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, dir, "ca")
	srvPair := ca.Server(t, "server")
	cli := ca.Client(t, "alice", pkix.Name{CommonName: "alice", Organization: []string{"acme"}})
	p := startSecureProxy(t, Security{TLSCertFile: srvPair.CertFile, TLSKeyFile: srvPair.KeyFile, TLSClientCAFile: ca.File})
	if !p.srv.cfg.Authenticates {
		t.Fatal("Authenticates not set with a client CA")
	}
	if got := certPrincipal(cli.Cert); got != "User:CN=alice,O=acme" {
		t.Fatalf("principal %q, want User:CN=alice,O=acme", got)
	}
	cert, err := tls.LoadX509KeyPair(cli.CertFile, cli.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	secureRoundTrip(t, p.addr, 10, kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}}))
	if n := p.authCount(t, "TLS", authOK); n < 1 {
		t.Fatalf("TLS authentications counted %v", n)
	}
	// Without a certificate, or with one another CA signed: refused.
	other := testpki.NewCA(t, t.TempDir(), "other")
	mallory := other.Client(t, "mallory", pkix.Name{CommonName: "mallory"})
	mcert, _ := tls.LoadX509KeyPair(mallory.CertFile, mallory.KeyFile)
	for name, certs := range map[string][]tls.Certificate{"none": nil, "other-ca": {mcert}} {
		nc, err := tls.Dial("tcp", p.addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: certs})
		if err == nil {
			// TLS 1.3: the client learns of the refusal at its first read.
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			nc.Write([]byte{0, 0, 0, 1, 0})
			_, err = nc.Read(make([]byte, 1))
			nc.Close()
		}
		if err == nil {
			t.Fatalf("%s: connection served without a valid client certificate", name)
		}
	}
}

func TestListenerCertificateReload(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, dir, "ca")
	first := ca.Server(t, "server")
	p := startSecureProxy(t, Security{TLSCertFile: first.CertFile, TLSKeyFile: first.KeyFile})
	serial := func() string {
		nc, err := tls.Dial("tcp", p.addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		return nc.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := serial(); got != first.Cert.SerialNumber.String() {
		t.Fatalf("serving serial %s, want %s", got, first.Cert.SerialNumber)
	}
	second := ca.Server(t, "server") // same file names: a renewal in place
	waitUntil(t, 20*time.Second, "the renewed certificate", func() bool { return serial() == second.Cert.SerialNumber.String() })
}

// TestListenerReauthentication: KIP-368. With a 2 s session a franz-go
// producer keeps producing for 10 s without an error (it re-authenticates
// on its connections, with produce requests in flight); a client that does
// not re-authenticate is disconnected at its first request after the
// session ended; a re-authentication as someone else fails.
func TestListenerReauthentication(t *testing.T) {
	p := startSecureProxy(t, Security{SASLMechanisms: []string{MechScramSHA512, MechPlain}, SessionLifetime: 2 * time.Second},
		testUser(t, "alice", "a-pw", fsm.SASLScramSHA512), testUser(t, "bob", "b-pw", fsm.SASLPlain))
	t.Run("producer-keeps-producing", func(t *testing.T) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr), kgo.SASL(scramMech("alice", "a-pw", true)), kgo.RecordRetries(0),
			kgo.DefaultProduceTopic("t"), kgo.ProducerLinger(0))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		before := p.authCount(t, MechScramSHA512, authOK)
		closedBefore := gatherMetric(t, p.reg, "switchyard_kafka_connections_closed_total", "reason", "auth")
		var produced, failed atomic.Int64
		var firstErr atomic.Value
		end := time.Now().Add(10 * time.Second)
		for time.Now().Before(end) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			var wg sync.WaitGroup
			for i := 0; i < 20; i++ {
				wg.Add(1)
				cl.Produce(ctx, &kgo.Record{Value: []byte("x")}, func(_ *kgo.Record, err error) {
					defer wg.Done()
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
						return
					}
					produced.Add(1)
				})
			}
			wg.Wait()
			cancel()
			time.Sleep(50 * time.Millisecond)
		}
		if failed.Load() > 0 {
			t.Fatalf("%d of %d records failed, first: %v", failed.Load(), failed.Load()+produced.Load(), firstErr.Load())
		}
		if n := p.authCount(t, MechScramSHA512, authOK) - before; n < 4 {
			t.Fatalf("%v authentications over 10 s of 2 s sessions: the client did not re-authenticate", n)
		}
		if n := gatherMetric(t, p.reg, "switchyard_kafka_connections_closed_total", "reason", "auth") - closedBefore; n != 0 {
			t.Fatalf("%v connections closed for authentication while the producer re-authenticated", n)
		}
	})
	t.Run("no-reauthentication-disconnects", func(t *testing.T) {
		c := dialProxy(t, p.addr, nil)
		c.handshake(t, MechPlain, 1)
		r := c.authenticate(t, plainToken("bob", "b-pw"))
		if r.ErrorCode != 0 || r.SessionLifetimeMillis != 2000 {
			t.Fatalf("authenticate: %v, session %d ms, want 2000", kerr.ErrorForCode(r.ErrorCode), r.SessionLifetimeMillis)
		}
		if err := c.metadata(10 * time.Second); err != nil {
			t.Fatalf("metadata within the session: %v", err)
		}
		time.Sleep(2500 * time.Millisecond)
		if err := c.metadata(10 * time.Second); err == nil {
			t.Fatal("metadata answered after the session ended")
		}
		c.expectClosed(t)
	})
	t.Run("reauthentication-extends", func(t *testing.T) {
		c := dialProxy(t, p.addr, nil)
		c.handshake(t, MechPlain, 1)
		c.authenticate(t, plainToken("bob", "b-pw"))
		for range 3 {
			time.Sleep(1200 * time.Millisecond)
			c.handshake(t, MechPlain, 1)
			if r := c.authenticate(t, plainToken("bob", "b-pw")); r.ErrorCode != 0 {
				t.Fatalf("re-authentication: %v", kerr.ErrorForCode(r.ErrorCode))
			}
			if err := c.metadata(10 * time.Second); err != nil {
				t.Fatalf("metadata after re-authenticating: %v", err)
			}
		}
	})
	t.Run("other-principal-refused", func(t *testing.T) {
		c := dialProxy(t, p.addr, nil)
		c.handshake(t, MechPlain, 1)
		c.authenticate(t, plainToken("bob", "b-pw"))
		c.handshake(t, MechScramSHA512, 1)
		sc := &testpki.ScramClient{H: sha512.New}
		sc.Begin("alice", "a-pw", "")
		msg, _ := sc.Step("")
		first := c.authenticate(t, []byte(msg))
		msg, _ = sc.Step(string(first.SASLAuthBytes))
		r := c.authenticate(t, []byte(msg))
		if r.ErrorCode != kerr.SaslAuthenticationFailed.Code || !strings.Contains(*r.ErrorMessage, "principal") {
			t.Fatalf("re-authentication as another user: %v %v, want SASL_AUTHENTICATION_FAILED", kerr.ErrorForCode(r.ErrorCode), r.ErrorMessage)
		}
		c.expectClosed(t)
	})
}

func TestSecurityValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		sec  Security
		want string // "" valid
	}{
		{"zero", Security{}, ""},
		{"tls", Security{TLSCertFile: "c", TLSKeyFile: "k"}, ""},
		{"cert-without-key", Security{TLSCertFile: "c"}, "both"},
		{"client-ca-without-cert", Security{TLSClientCAFile: "ca"}, "needs TLS"},
		{"unknown-mechanism", Security{SASLMechanisms: []string{"GSSAPI"}}, "unknown mechanism"},
		{"duplicate-mechanism", Security{SASLMechanisms: []string{"PLAIN", "PLAIN"}}, "twice"},
		{"oauth-without-jwks", Security{SASLMechanisms: []string{"OAUTHBEARER"}}, "jwks"},
		{"jwks-without-oauth", Security{SASLMechanisms: []string{"PLAIN"}, OAuthJWKSFile: "j"}, "not among"},
		{"lifetime-without-sasl", Security{SessionLifetime: time.Hour}, "needs SASL"},
		{"lifetime-too-short", Security{SASLMechanisms: []string{"PLAIN"}, SessionLifetime: time.Millisecond}, "under a second"},
		{"negative-lifetime", Security{SASLMechanisms: []string{"PLAIN"}, SessionLifetime: -time.Second}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.sec.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid settings refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one about %q", err, tc.want)
			}
		})
	}
	// Missing or broken files fail NewServer with the file named.
	_, err := NewServer(Config{ListenAddr: "127.0.0.1:0", Security: Security{TLSCertFile: "/nonexistent.pem", TLSKeyFile: "/nonexistent-key.pem"}},
		&benchView{}, NewMetrics(prometheus.NewRegistry(), 0))
	if err == nil || !strings.Contains(err.Error(), "nonexistent") {
		t.Fatalf("NewServer with a missing certificate: %v", err)
	}
	if got := ParseMechanisms(" plain, scram-sha-512 ,,"); strings.Join(got, ",") != "PLAIN,SCRAM-SHA-512" {
		t.Fatalf("ParseMechanisms: %v", got)
	}
}

// TestBackendOAuthBearerAgainstListener: kfake has no OAUTHBEARER, so the
// backend side's OAUTHBEARER (a token file) is proven against this
// package's own listener standing in for a broker that validates JWTs: the
// backend authenticates and loads the listener's metadata; once its token
// file holds a token the broker refuses (expired), its dials fail with an
// authentication error.
func TestBackendOAuthBearerAgainstListener(t *testing.T) {
	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	signer := testpki.NewRSASigner(t, "idp")
	testpki.WriteJWKS(t, jwks, signer)
	broker := startSecureProxy(t, Security{SASLMechanisms: []string{MechOAuthBearer}, OAuthJWKSFile: jwks})
	tokenFile := filepath.Join(dir, "token")
	writeFile(t, tokenFile, signer.Token(t, map[string]any{"sub": "switchyard-svc", "exp": time.Now().Add(time.Hour).Unix()}))
	be, err := NewBackend(BackendConfig{Name: "oauth", Bootstrap: []string{broker.addr}, MetadataRefresh: time.Minute,
		SASL: &fsm.ClusterSASL{Mechanism: fsm.SASLOAuthBearer, TokenFile: tokenFile}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc, err := be.dial(ctx, broker.addr)
	if err != nil {
		t.Fatalf("dial with a valid token: %v", err)
	}
	nc.Close()
	go be.Run(ctx)
	select {
	case <-be.Ready():
	case <-ctx.Done():
		t.Fatal("the backend never loaded metadata through OAUTHBEARER")
	}
	writeFile(t, tokenFile, signer.Token(t, map[string]any{"sub": "switchyard-svc", "exp": time.Now().Add(-time.Hour).Unix()}))
	// The token file is re-read when it changes (mtime and size).
	waitUntil(t, 20*time.Second, "the expired token refused", func() bool {
		nc, err := be.dial(ctx, broker.addr)
		if err == nil {
			nc.Close()
			return false
		}
		var ae *BackendAuthError
		return errors.As(err, &ae)
	})
}

// TestAccessLog: a client connection leaves one info line when it opens
// and one when it closes, the second with its client id, its principal and
// why it closed; the password it authenticated with is in neither.
func TestAccessLog(t *testing.T) {
	var buf syncBuf
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p := startSecureProxyLog(t, Security{SASLMechanisms: []string{MechPlain}}, log, testUser(t, "alice", "alice-secret", fsm.SASLPlain))
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr), kgo.ClientID("access-test"), kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	waitUntil(t, 20*time.Second, "the access line of the closed connection", func() bool {
		for _, line := range strings.Split(buf.String(), "\n") {
			if strings.Contains(line, `"msg":"client connection closed"`) && strings.Contains(line, `"client_id":"access-test"`) &&
				strings.Contains(line, `"principal":"User:alice"`) && strings.Contains(line, `"reason":"normal"`) &&
				strings.Contains(line, `"component":"access"`) {
				return true
			}
		}
		return false
	})
	if !strings.Contains(buf.String(), `"msg":"client connection opened"`) {
		t.Fatalf("no access line for the opening:\n%s", buf.String())
	}
	if strings.Contains(buf.String(), "alice-secret") {
		t.Fatal("the access log holds the password")
	}
}

// syncBuf is a bytes.Buffer safe for the log's concurrent writers.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestAccessLogQuietForProbes: a connection that opens and closes without
// a request (a load balancer's TCP check, the peers' liveness probe of the
// Kafka port) leaves no info line, on a plaintext and on a TLS listener
// with client certificates required (and counts no failed
// authentication); one that sends garbage is still logged at info.
func TestAccessLogQuietForProbes(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, dir, "ca")
	srvPair := ca.Server(t, "server")
	for _, tc := range []struct {
		name string
		sec  Security
	}{
		{"plaintext", Security{}},
		{"mtls", Security{TLSCertFile: srvPair.CertFile, TLSKeyFile: srvPair.KeyFile, TLSClientCAFile: ca.File}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf syncBuf
			log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			p := startSecureProxyLog(t, tc.sec, log)
			for range 5 {
				nc, err := net.Dial("tcp", p.addr)
				if err != nil {
					t.Fatal(err)
				}
				nc.Close()
			}
			waitUntil(t, 20*time.Second, "the probes' debug lines", func() bool {
				return strings.Count(buf.String(), `"msg":"client connection closed without a request"`) == 5
			})
			if !strings.Contains(buf.String(), `"level":"DEBUG","msg":"client connection closed without a request"`) {
				t.Fatalf("probe lines not at debug:\n%s", buf.String())
			}
			// A garbage frame: logged, as a bad request (or a failed handshake).
			nc, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			nc.Write([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3})
			waitUntil(t, 20*time.Second, "the access line of the garbage connection", func() bool {
				return strings.Contains(buf.String(), `"msg":"client connection closed"`)
			})
			nc.Close()
			if n := strings.Count(buf.String(), `"msg":"client connection closed"`); n != 1 {
				t.Fatalf("%d closing lines at info, want 1 (the garbage connection's):\n%s", n, buf.String())
			}
			if n := strings.Count(buf.String(), `"msg":"client connection opened"`); n != 1 {
				t.Fatalf("%d opening lines at info, want 1:\n%s", n, buf.String())
			}
			if tc.sec.TLSClientCAFile != "" {
				if got := p.authCount(t, "TLS", authFailed); got != 1 {
					t.Fatalf("failed TLS authentications %v, want 1 (the garbage one, not the probes)", got)
				}
			}
		})
	}
}
