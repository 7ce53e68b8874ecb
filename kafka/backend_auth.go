package kafka

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// TLS and SASL towards a backend cluster (origination).
//
// Backend.dial is the one place an upstream connection is made (client
// upstreams, control connections, and through them the health probe), so
// every connection to a secured cluster is, before it is handed out: TCP,
// then TLS (the cluster's CA or the system roots, an optional client
// certificate, the server name from the cluster or the broker address's
// host), then SASL (SaslHandshake v1 and SaslAuthenticate v1) with the
// proxy's service credentials. DialTimeout (and the caller's ctx) bound
// the whole handshake.
//
// Secrets are never in the replicated state: the cluster names files, read
// here when a connection is made through a cache keyed by each file's
// modification time and size, so a rotated password, key, certificate or
// token is picked up by the next connection without a restart, and an
// unchanged file costs one stat.
//
// A failure says which cluster, which broker and what failed (a TLS
// verification, the broker refusing the credentials with its message, a
// secret file that cannot be read, the token endpoint), and is counted in
// switchyard_backend_auth_failures_total{cluster,reason}.

const (
	// maxSecretFile bounds a secret file (password, token, key, CA bundle).
	maxSecretFile = 1 << 20
	// maxSASLResponse bounds a broker's SaslHandshake / SaslAuthenticate
	// answer: a list of mechanism names or one SASL message.
	maxSASLResponse = 1 << 20
	// maxTokenResponse bounds an OAuth token endpoint's answer.
	maxTokenResponse = 1 << 20
	// tokenRefreshMargin: a cached client-credentials token is fetched
	// again when less than this fraction of its lifetime is left.
	tokenRefreshMargin = 0.2
	// defaultTokenLifetime is assumed when a token endpoint gives no
	// expires_in.
	defaultTokenLifetime = 5 * time.Minute
)

// Reasons of switchyard_backend_auth_failures_total.
const (
	authReasonTLSVerify = "tls_verify"     // the broker's certificate did not verify
	authReasonTLS       = "tls"            // another TLS handshake failure
	authReasonMechanism = "sasl_mechanism" // the broker does not enable the mechanism
	authReasonSASL      = "sasl_auth"      // the broker refused the credentials
	authReasonSecret    = "secret"         // a secret or certificate file could not be used
	authReasonToken     = "token"          // the OAuth token endpoint failed
	authReasonIO        = "io"             // the connection failed during the handshake
)

var authReasons = []string{authReasonTLSVerify, authReasonTLS, authReasonMechanism, authReasonSASL, authReasonSecret, authReasonToken, authReasonIO}

func newAuthFailures() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_backend_auth_failures_total",
		Help: "Failed TLS or SASL handshakes with backend brokers, by cluster and reason (tls_verify, tls, sasl_mechanism, sasl_auth, secret, token, io).",
	}, []string{"cluster", "reason"})
}

// BackendAuthError is a failed TLS or SASL handshake with a backend broker.
type BackendAuthError struct {
	Cluster string
	Broker  string // host:port
	Reason  string // the metric's reason label
	Err     error
}

func (e *BackendAuthError) Error() string {
	return fmt.Sprintf("backend cluster %q broker %s: %s", e.Cluster, e.Broker, e.Err)
}

func (e *BackendAuthError) Unwrap() error { return e.Err }

// backendAuth connects to one secured cluster's brokers.
type backendAuth struct {
	cluster string
	tls     *fsm.ClusterTLS
	sasl    *fsm.ClusterSASL
	timeout time.Duration
	files   *secretFiles
	fails   *prometheus.CounterVec

	tlsMu  sync.Mutex
	tlsKey string      // the files' versions tlsCfg was built from
	tlsCfg *tls.Config // without ServerName; cloned per dial

	tokens *tokenSource // OAUTHBEARER client credentials
	salted saltedCache  // SCRAM's salted password (backend_scram.go)
}

func newBackendAuth(cfg BackendConfig, fails *prometheus.CounterVec) *backendAuth {
	if cfg.TLS == nil && cfg.SASL == nil {
		return nil
	}
	a := &backendAuth{cluster: cfg.Name, tls: cfg.TLS, sasl: cfg.SASL, timeout: cfg.DialTimeout, files: newSecretFiles(), fails: fails}
	for _, r := range authReasons {
		// Every series from the start, so increase() sees the first failure.
		fails.WithLabelValues(cfg.Name, r)
	}
	if s := cfg.SASL; s != nil && s.Mechanism == fsm.SASLOAuthBearer && s.TokenEndpoint != "" {
		a.tokens = &tokenSource{endpoint: s.TokenEndpoint, clientID: s.ClientID, secretFile: s.ClientSecretFile, scope: s.Scope,
			files: a.files, client: &http.Client{Timeout: cfg.DialTimeout}}
	}
	return a
}

// dial connects to addr and completes TLS and SASL within the dial timeout
// and ctx. renew is when the connection should be replaced because the
// broker's SASL session ends (KIP-368 session_lifetime_ms); zero when the
// broker gave no lifetime.
func (a *backendAuth) dial(ctx context.Context, addr string) (nc net.Conn, renew time.Time, err error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	start := time.Now()
	// raw, not the named result: the deferred cancel can run the
	// AfterFunc below after the results are set (nc nil on failure).
	raw, err := dialTCP(ctx, addr, a.timeout)
	if err != nil {
		return nil, time.Time{}, err
	}
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	conn, lifetime, reason, err := a.handshake(ctx, raw, addr)
	if !stop() || err != nil {
		if err == nil { // ctx ended as the handshake finished
			err, reason = ctx.Err(), authReasonIO
		}
		raw.Close()
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		a.fails.WithLabelValues(a.cluster, reason).Inc()
		return nil, time.Time{}, &BackendAuthError{Cluster: a.cluster, Broker: addr, Reason: reason, Err: err}
	}
	conn.SetDeadline(time.Time{})
	if lifetime > 0 {
		// Renew with a tenth of the session left (the lifetime counts
		// from the broker's check, after this dial started).
		renew = start.Add(lifetime - lifetime/10)
	}
	return conn, renew, nil
}

// maxSessionLifetime bounds a broker's session_lifetime_ms (a year), so a
// hostile or buggy value cannot overflow a time.Duration.
const maxSessionLifetime = 365 * 24 * time.Hour

// handshake runs TLS then SASL on nc; reason labels a failure, lifetime is
// the SASL session's (0: none given).
func (a *backendAuth) handshake(ctx context.Context, nc net.Conn, addr string) (net.Conn, time.Duration, string, error) {
	conn := nc
	if a.tls != nil {
		cfg, err := a.tlsConfig(addr)
		if err != nil {
			return nil, 0, authReasonSecret, err
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			var verr *tls.CertificateVerificationError
			if errors.As(err, &verr) {
				return nil, 0, authReasonTLSVerify, fmt.Errorf("TLS: the broker's certificate does not verify (server name %q): %w", cfg.ServerName, err)
			}
			return nil, 0, authReasonTLS, fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	var lifetime time.Duration
	if a.sasl != nil {
		mech, reason, err := a.mechanism(ctx)
		if err != nil {
			return nil, 0, reason, err
		}
		ms, reason, err := saslClient(ctx, conn, addr, mech)
		if err != nil {
			if reason == authReasonSASL && a.tokens != nil {
				// The broker refused the token (revoked, or expired
				// early): the next dial fetches a new one.
				a.tokens.invalidate()
			}
			return nil, 0, reason, err
		}
		if ms > 0 {
			lifetime = time.Duration(min(ms, int64(maxSessionLifetime/time.Millisecond))) * time.Millisecond
		}
	}
	return conn, lifetime, "", nil
}

// tlsConfig is the cluster's TLS configuration for a broker at addr, built
// again when one of its files changed.
func (a *backendAuth) tlsConfig(addr string) (*tls.Config, error) {
	t := a.tls
	var ca, cert, key []byte
	var versions strings.Builder
	for _, f := range []struct {
		path string
		into *[]byte
	}{{t.CAFile, &ca}, {t.CertFile, &cert}, {t.KeyFile, &key}} {
		if f.path == "" {
			versions.WriteString("-|")
			continue
		}
		b, v, err := a.files.read(f.path)
		if err != nil {
			return nil, err
		}
		*f.into = b
		versions.WriteString(v + "|")
	}
	a.tlsMu.Lock()
	defer a.tlsMu.Unlock()
	if a.tlsCfg == nil || a.tlsKey != versions.String() {
		cfg := &tls.Config{
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: t.InsecureSkipVerify,
			// Resumption makes a new connection's handshake an
			// abbreviated one; a new cache with new files.
			ClientSessionCache: tls.NewLRUClientSessionCache(256),
		}
		if ca != nil {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(ca) {
				return nil, fmt.Errorf("TLS ca_file %s holds no PEM certificate", t.CAFile)
			}
			cfg.RootCAs = pool
		}
		if cert != nil {
			pair, err := tls.X509KeyPair(cert, key)
			if err != nil {
				return nil, fmt.Errorf("TLS client certificate %s and key %s: %w", t.CertFile, t.KeyFile, err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		a.tlsCfg, a.tlsKey = cfg, versions.String()
	}
	cfg := a.tlsCfg.Clone()
	cfg.ServerName = t.ServerName
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg.ServerName = host
	}
	return cfg, nil
}

// mechanism builds the SASL mechanism with the current secrets.
func (a *backendAuth) mechanism(ctx context.Context) (sasl.Mechanism, string, error) {
	s := a.sasl
	switch s.Mechanism {
	case fsm.SASLPlain, fsm.SASLScramSHA256, fsm.SASLScramSHA512:
		pw, _, err := a.files.read(s.PasswordFile)
		if err != nil {
			return nil, authReasonSecret, err
		}
		pass := string(trimSecret(pw))
		switch s.Mechanism {
		case fsm.SASLPlain:
			return plain.Auth{User: s.Username, Pass: pass}.AsMechanism(), "", nil
		default:
			return newScramMechanism(s.Mechanism, s.Username, pass, &a.salted), "", nil
		}
	case fsm.SASLOAuthBearer:
		if a.tokens != nil {
			tok, err := a.tokens.token(ctx)
			if err != nil {
				return nil, authReasonToken, err
			}
			return oauth.Auth{Token: tok}.AsMechanism(), "", nil
		}
		b, _, err := a.files.read(s.TokenFile)
		if err != nil {
			return nil, authReasonSecret, err
		}
		tok := trimSecret(b)
		if len(tok) == 0 {
			return nil, authReasonSecret, fmt.Errorf("SASL OAUTHBEARER token_file %s is empty", s.TokenFile)
		}
		return oauth.Auth{Token: string(tok)}.AsMechanism(), "", nil
	}
	return nil, authReasonSecret, fmt.Errorf("SASL mechanism %q is not supported", s.Mechanism)
}

// trimSecret drops the white space around a secret read from a file (the
// newline an editor or echo leaves).
func trimSecret(b []byte) []byte { return bytes.TrimSpace(b) }

// saslClient authenticates conn with mech: SaslHandshake v1, then
// SaslAuthenticate v1 messages until the mechanism is done (KIP-152). It
// returns the session lifetime the broker gave in milliseconds (KIP-368; 0:
// none) or the failure's reason and error.
func saslClient(ctx context.Context, conn net.Conn, addr string, mech sasl.Mechanism) (lifetimeMS int64, reason string, err error) {
	var corr int32
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = mech.Name()
	resp, err := saslRoundTrip(conn, hs, &corr)
	if err != nil {
		return 0, authReasonIO, fmt.Errorf("SASL handshake: %w", err)
	}
	hr := resp.(*kmsg.SASLHandshakeResponse)
	if hr.ErrorCode != 0 {
		return 0, authReasonMechanism, fmt.Errorf("SASL handshake: the broker does not enable %s (it offers %s): %w",
			mech.Name(), strings.Join(hr.SupportedMechanisms, ", "), kerr.ErrorForCode(hr.ErrorCode))
	}
	session, out, err := mech.Authenticate(ctx, addr)
	if err != nil {
		return 0, authReasonSecret, fmt.Errorf("SASL %s: %w", mech.Name(), err)
	}
	for done := false; !done || len(out) > 0; {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.SetVersion(1)
		req.SASLAuthBytes = out
		resp, err := saslRoundTrip(conn, req, &corr)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
				// Brokers that refuse without an answer (older Kafka,
				// kfake) close the connection instead.
				return 0, authReasonSASL, fmt.Errorf("SASL %s authentication failed: the broker closed the connection without an answer (wrong username or password?): %w", mech.Name(), err)
			}
			return 0, authReasonIO, fmt.Errorf("SASL %s authenticate: %w", mech.Name(), err)
		}
		ar := resp.(*kmsg.SASLAuthenticateResponse)
		if ar.ErrorCode != 0 {
			msg := ""
			if ar.ErrorMessage != nil {
				msg = *ar.ErrorMessage
			}
			return 0, authReasonSASL, fmt.Errorf("SASL %s authentication failed: %w: %s", mech.Name(), kerr.ErrorForCode(ar.ErrorCode), msg)
		}
		out = nil
		lifetimeMS = ar.SessionLifetimeMillis
		if !done {
			if done, out, err = session.Challenge(ar.SASLAuthBytes); err != nil {
				return 0, authReasonSASL, fmt.Errorf("SASL %s: the broker's answer: %w", mech.Name(), err)
			}
		}
	}
	return lifetimeMS, "", nil
}

// saslRoundTrip writes req and reads its answer, at most maxSASLResponse
// bytes, without reading ahead: the broker says nothing else until the
// client's next request, and the connection is handed out after.
func saslRoundTrip(conn net.Conn, req kmsg.Request, corr *int32) (kmsg.Response, error) {
	*corr++
	if _, err := conn.Write(appendRequest(nil, req, *corr, &ctlClientID)); err != nil {
		return nil, err
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 0 || n > maxSASLResponse {
		return nil, fmt.Errorf("%w: SASL answer of %d bytes (max %d)", ErrFrameTooLarge, n, maxSASLResponse)
	}
	frame := make([]byte, n)
	if _, err := io.ReadFull(conn, frame); err != nil {
		return nil, err
	}
	return decodeCtlResponse(req, *corr, frame)
}

// secretFiles reads small files, again only when their modification time
// or size changed.
type secretFiles struct {
	mu sync.Mutex
	m  map[string]secretFile
}

type secretFile struct {
	mod  time.Time
	size int64
	data []byte
}

func newSecretFiles() *secretFiles { return &secretFiles{m: map[string]secretFile{}} }

// read returns path's contents and a string naming their version.
func (s *secretFiles) read(path string) ([]byte, string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, "", fmt.Errorf("secret file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, "", fmt.Errorf("secret file %s is not a regular file", path)
	}
	version := fmt.Sprintf("%d.%d", fi.ModTime().UnixNano(), fi.Size())
	s.mu.Lock()
	f, ok := s.m[path]
	s.mu.Unlock()
	if ok && f.mod.Equal(fi.ModTime()) && f.size == fi.Size() {
		return f.data, version, nil
	}
	if fi.Size() > maxSecretFile {
		return nil, "", fmt.Errorf("secret file %s is %d bytes, more than %d", path, fi.Size(), maxSecretFile)
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("secret file: %w", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxSecretFile+1))
	if err != nil {
		return nil, "", fmt.Errorf("secret file %s: %w", path, err)
	}
	if len(data) > maxSecretFile {
		return nil, "", fmt.Errorf("secret file %s is more than %d bytes", path, maxSecretFile)
	}
	s.mu.Lock()
	s.m[path] = secretFile{mod: fi.ModTime(), size: fi.Size(), data: data}
	s.mu.Unlock()
	return data, version, nil
}

// tokenSource gets OAUTHBEARER tokens with the OAuth 2 client-credentials
// grant (RFC 6749 section 4.4) and keeps one until shortly before it
// expires.
type tokenSource struct {
	endpoint, clientID, secretFile, scope string
	files                                 *secretFiles
	client                                *http.Client

	mu      sync.Mutex
	tok     string
	refresh time.Time // fetch again from then on
}

func (ts *tokenSource) token(ctx context.Context) (string, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.tok != "" && time.Now().Before(ts.refresh) {
		return ts.tok, nil
	}
	secret, _, err := ts.files.read(ts.secretFile)
	if err != nil {
		return "", err
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if ts.scope != "" {
		form.Set("scope", ts.scope)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("OAuth token endpoint %s: %w", ts.endpoint, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// client_secret_basic, which every authorization server supports
	// (RFC 6749 section 2.3.1: both parts form-encoded first).
	req.SetBasicAuth(url.QueryEscape(ts.clientID), url.QueryEscape(string(trimSecret(secret))))
	resp, err := ts.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("OAuth token endpoint %s: %w", ts.endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	if err != nil {
		return "", fmt.Errorf("OAuth token endpoint %s: reading the answer: %w", ts.endpoint, err)
	}
	if len(body) > maxTokenResponse {
		return "", fmt.Errorf("OAuth token endpoint %s: answer larger than %d bytes", ts.endpoint, maxTokenResponse)
	}
	tok, lifetime, err := parseTokenResponse(resp.StatusCode, body)
	if err != nil {
		return "", fmt.Errorf("OAuth token endpoint %s: %w", ts.endpoint, err)
	}
	ts.tok = tok
	ts.refresh = time.Now().Add(time.Duration(float64(lifetime) * (1 - tokenRefreshMargin)))
	return tok, nil
}

// invalidate drops the cached token.
func (ts *tokenSource) invalidate() {
	ts.mu.Lock()
	ts.tok = ""
	ts.mu.Unlock()
}

// parseTokenResponse reads a token endpoint's answer (RFC 6749 sections
// 5.1 and 5.2): the access token and its lifetime, or the endpoint's error.
func parseTokenResponse(status int, body []byte) (string, time.Duration, error) {
	var r struct {
		AccessToken      string          `json:"access_token"`
		TokenType        string          `json:"token_type"`
		ExpiresIn        json.RawMessage `json:"expires_in"`
		Error            string          `json:"error"`
		ErrorDescription string          `json:"error_description"`
	}
	jerr := json.Unmarshal(body, &r)
	if status != http.StatusOK {
		if jerr == nil && r.Error != "" {
			return "", 0, fmt.Errorf("HTTP %d: %s %s", status, clip(r.Error, 200), clip(r.ErrorDescription, 500))
		}
		return "", 0, fmt.Errorf("HTTP %d", status)
	}
	if jerr != nil {
		return "", 0, fmt.Errorf("answer is not a JSON token response: %v", jerr)
	}
	if r.AccessToken == "" {
		return "", 0, errors.New("answer has no access_token")
	}
	if r.TokenType != "" && !strings.EqualFold(r.TokenType, "bearer") {
		return "", 0, fmt.Errorf("token_type %q is not bearer", clip(r.TokenType, 50))
	}
	lifetime := defaultTokenLifetime
	if len(r.ExpiresIn) > 0 && string(r.ExpiresIn) != "null" {
		// A number, or a number in a string (some servers).
		var secs json.Number
		raw := bytes.Trim(r.ExpiresIn, `"`)
		if err := json.Unmarshal(raw, &secs); err != nil {
			return "", 0, fmt.Errorf("expires_in %s is not a number", clip(string(r.ExpiresIn), 50))
		}
		f, err := secs.Float64()
		if err != nil || f <= 0 || f > 365*24*3600 {
			return "", 0, fmt.Errorf("expires_in %s is outside 1 second to a year", clip(string(r.ExpiresIn), 50))
		}
		lifetime = time.Duration(f * float64(time.Second))
	}
	return r.AccessToken, lifetime, nil
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// authFailures returns the counter vector of auth failures, registered
// with m or, without metrics, a private one.
func (m *Metrics) authFailures() *prometheus.CounterVec {
	if m == nil {
		return newAuthFailures()
	}
	return m.backendAuthFailures
}
