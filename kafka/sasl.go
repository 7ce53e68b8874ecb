package kafka

// SASL on the Kafka listener: SaslHandshake (key 17) v0–v1 and
// SaslAuthenticate (key 36) v0–v2, answered by the proxy.
//
// Before a connection has authenticated only ApiVersions, SaslHandshake and
// SaslAuthenticate are served, and every frame is bounded by
// saslMaxReceive (Kafka's sasl.server.max.receive.size); anything else
// closes the connection, as Kafka's broker does. SaslHandshake v0 means the
// client sends its SASL tokens as raw size-prefixed frames without a Kafka
// header and expects raw frames back (Kafka 0.10's protocol); v1 means
// tokens travel in SaslAuthenticate. A failed authentication is answered
// SASL_AUTHENTICATION_FAILED with a message that names no secret, then the
// connection closes (a raw v0 exchange has no error channel: it just
// closes). An unknown mechanism is answered UNSUPPORTED_SASL_MECHANISM with
// the enabled list, then the connection closes.
//
// KIP-368: SaslAuthenticate v1+ answers session_lifetime_ms, the least of
// SessionLifetime and the time until the credential expires (an OAuth
// token's exp). Once that has passed, the next request that is not a
// re-authentication (SaslHandshake, SaslAuthenticate, or ApiVersions)
// closes the connection. A re-authentication runs on the live connection,
// possibly with requests still in flight upstream: its answers take their
// place in the connection's response order like any other, and it must
// prove the same principal, else the connection closes. Requests sent
// between the re-authentication's handshake and its last step are served
// under the session they were sent in (if it has not expired).

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// saslMaxReceive bounds every frame of a connection that has not
// authenticated (Kafka's sasl.server.max.receive.size default).
const saslMaxReceive = 512 << 10

// closeAfterAnswerWait bounds how long the reader waits for a refusal to
// be written before it closes the connection anyway.
const closeAfterAnswerWait = 10 * time.Second

var (
	// ErrAuthentication is what a connection that failed to authenticate
	// is closed with.
	ErrAuthentication = errors.New("sasl authentication failed")
	// ErrUnauthenticated is what a connection that sent a request before
	// authenticating is closed with.
	ErrUnauthenticated = errors.New("request before sasl authentication")
	// ErrSessionExpired is what a connection whose session ended without
	// re-authentication (KIP-368) is closed with.
	ErrSessionExpired = errors.New("sasl session expired")
	// ErrIllegalSASLState is what a connection that broke the SASL
	// exchange's order is closed with.
	ErrIllegalSASLState = errors.New("illegal sasl state")
)

// saslServer is the listener's SASL configuration.
type saslServer struct {
	mechs    []string
	lifetime time.Duration
	oauth    *oauthValidator // nil without OAUTHBEARER
	// secret keys the fake SCRAM salts of unknown users, so a client
	// cannot tell an unknown user from a wrong password.
	secret [32]byte
	// failLog bounds the log lines about failed authentications.
	failLog failLog
}

// failLogBurst failed authentications are logged per failLogEvery; past
// that they are counted and the next line says how many were not logged,
// so a password-guessing flood does not flood the log (the metric counts
// every one).
const (
	failLogBurst = 20
	failLogEvery = 10 * time.Second
)

type failLog struct {
	mu         sync.Mutex
	window     time.Time
	n          int
	suppressed int
}

func (f *failLog) log(log *slog.Logger, now time.Time, args ...any) {
	f.mu.Lock()
	if now.Sub(f.window) >= failLogEvery {
		f.window, f.n = now, 0
	}
	f.n++
	if f.n > failLogBurst {
		f.suppressed++
		f.mu.Unlock()
		return
	}
	suppressed := f.suppressed
	f.suppressed = 0
	f.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "not_logged_before", suppressed)
	}
	log.Info("sasl authentication failed", args...)
}

func newSASLServer(sec *Security, s *Server) (*saslServer, error) {
	if len(sec.SASLMechanisms) == 0 {
		return nil, nil
	}
	ss := &saslServer{mechs: slices.Clone(sec.SASLMechanisms), lifetime: sec.SessionLifetime}
	rand.Read(ss.secret[:])
	if slices.Contains(ss.mechs, MechOAuthBearer) {
		var err error
		if ss.oauth, err = newOAuthValidator(sec, s.log); err != nil {
			return nil, err
		}
	}
	return ss, nil
}

// saslConn is a connection's SASL state, owned by its reader goroutine.
type saslConn struct {
	// authed: a SASL exchange succeeded on this connection.
	authed bool
	// expires ends the session (KIP-368); zero: never.
	expires time.Time
	// mech is the mechanism the last SaslHandshake chose, "" when no
	// exchange is under way; raw: it was v0, so tokens come as raw frames.
	mech string
	raw  bool
	// step is the exchange under way (nil before its first token).
	step saslStep
}

// saslStep is one mechanism's server side of an exchange.
type saslStep interface {
	// next takes the client's token and returns the server's. done says
	// the exchange ended successfully with the result; an error fails it
	// (its message is sent to the client, so it names no secret; reason is
	// logged).
	next(in []byte) (out []byte, done *saslResult, err error)
}

// saslResult is who an exchange authenticated.
type saslResult struct {
	user    string
	expires time.Time // the credential's expiry (a token's exp); zero: none
}

// saslError fails an exchange: msg goes to the client, reason (which may
// name the user, never a secret) to the log.
type saslError struct {
	msg, reason string
}

func (e *saslError) Error() string { return e.msg + ": " + e.reason }

func authFail(msg, format string, args ...any) error {
	return &saslError{msg: msg, reason: fmt.Sprintf(format, args...)}
}

// admitSASL decides whether a request of key may be served now.
func (c *clientConn) admitSASL(key int16, now time.Time) error {
	switch key {
	case 17, 36, 18:
		return nil
	}
	a := &c.sasl
	if !a.authed {
		return fmt.Errorf("%w: %s", ErrUnauthenticated, kmsg.NameForKey(key))
	}
	if !a.expires.IsZero() && now.After(a.expires) {
		c.s.metrics.auth.count("session", authExpired)
		return fmt.Errorf("%w: %s sent %s after the session ended at %s without re-authenticating",
			ErrSessionExpired, c.principal, kmsg.NameForKey(key), a.expires.Format(time.RFC3339))
	}
	return nil
}

// frameLimit bounds the next request frame: small until the connection has
// authenticated.
func (c *clientConn) frameLimit() int32 {
	if c.s.sasl != nil && !c.sasl.authed {
		return min(c.s.cfg.MaxFrameBytes, saslMaxReceive)
	}
	return c.s.cfg.MaxFrameBytes
}

func handleSaslHandshake(r *request) error {
	c := r.c
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.SetVersion(r.version)
	if err := req.ReadFrom(r.body); err != nil {
		return fmt.Errorf("%w: SaslHandshake v%d: %v", ErrMalformed, r.version, err)
	}
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = slices.Clone(c.s.sasl.mechs)
	a := &c.sasl
	switch {
	case a.mech != "":
		// Kafka's IllegalSaslStateException: a second handshake before the
		// first exchange ended.
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return c.answerAndClose(r, resp, fmt.Errorf("%w: SaslHandshake while a %s exchange is under way", ErrIllegalSASLState, a.mech))
	case a.authed && r.version == 0:
		// Re-authentication is KIP-368's, which needs SaslAuthenticate.
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return c.answerAndClose(r, resp, fmt.Errorf("%w: re-authentication with SaslHandshake v0", ErrIllegalSASLState))
	case !slices.Contains(c.s.sasl.mechs, req.Mechanism):
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		c.s.metrics.auth.count("unsupported", authFailed)
		c.s.sasl.failLog.log(c.log, time.Now(), "mechanism", truncate(req.Mechanism, 64), "reason", "unsupported mechanism")
		return c.answerAndClose(r, resp, fmt.Errorf("%w: mechanism %q is not enabled (enabled: %s)",
			ErrAuthentication, truncate(req.Mechanism, 64), strings.Join(c.s.sasl.mechs, ",")))
	}
	a.mech, a.raw, a.step = req.Mechanism, r.version == 0, nil
	return c.respond(r, r.start, resp)
}

func handleSaslAuthenticate(r *request) error {
	c := r.c
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.SetVersion(r.version)
	if err := req.ReadFrom(r.body); err != nil {
		return fmt.Errorf("%w: SaslAuthenticate v%d: %v", ErrMalformed, r.version, err)
	}
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	a := &c.sasl
	if a.mech == "" || a.raw {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		msg := "SaslAuthenticate without a SaslHandshake v1 first"
		resp.ErrorMessage = &msg
		return c.answerAndClose(r, resp, fmt.Errorf("%w: %s", ErrIllegalSASLState, msg))
	}
	out, res, err := c.saslNext(req.SASLAuthBytes, r.start)
	if err != nil {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := err.Error()
		var se *saslError
		if errors.As(err, &se) {
			msg = se.msg
		}
		resp.ErrorMessage = &msg
		return c.answerAndClose(r, resp, err)
	}
	resp.SASLAuthBytes = out
	if res != nil && !a.expires.IsZero() {
		resp.SessionLifetimeMillis = max(a.expires.Sub(r.start).Milliseconds(), 1)
	}
	return c.respond(r, r.start, resp)
}

// saslRawToken serves one raw token frame of a SaslHandshake v0 exchange.
func (c *clientConn) saslRawToken(token []byte, start time.Time) error {
	out, res, err := c.saslNext(token, start)
	if err != nil {
		// v0 has no way to say why: Kafka closes the connection.
		return err
	}
	if res != nil {
		c.sasl.raw = false
	}
	p, err := c.newPending(&request{requestHeader: requestHeader{key: 36}}, start)
	if err != nil {
		return err
	}
	buf := getBuffer(4 + len(out))
	buf.b = append(buf.b[:0], byte(len(out)>>24), byte(len(out)>>16), byte(len(out)>>8), byte(len(out)))
	buf.b = append(buf.b, out...)
	c.finish(p, buf, nil)
	c.kickWriter()
	return nil
}

// saslNext feeds the client's token to the exchange under way and, when
// it ends, authenticates the connection (or fails it).
func (c *clientConn) saslNext(token []byte, now time.Time) ([]byte, *saslResult, error) {
	a := &c.sasl
	mech := a.mech
	if a.step == nil {
		a.step = c.newSASLStep(mech, now)
	}
	out, res, err := a.step.next(token)
	if err == nil && res != nil {
		err = c.saslDone(mech, res, now)
	}
	if err != nil {
		a.mech, a.step = "", nil
		c.s.metrics.auth.count(mech, authFailed)
		reason := err.Error()
		var se *saslError
		if errors.As(err, &se) {
			reason = se.reason
		}
		c.s.sasl.failLog.log(c.log, time.Now(), "mechanism", mech, "reason", reason)
		return nil, nil, fmt.Errorf("%w: %w", ErrAuthentication, err)
	}
	if res != nil {
		a.mech, a.step = "", nil
		c.s.metrics.auth.count(mech, authOK)
	}
	return out, res, nil
}

// saslDone authenticates the connection as res says.
func (c *clientConn) saslDone(mech string, res *saslResult, now time.Time) error {
	a := &c.sasl
	principal := "User:" + res.user
	if a.authed && principal != c.principal {
		return authFail("re-authentication must keep the principal",
			"re-authentication as %s on a connection authenticated as %s", principal, c.principal)
	}
	if !res.expires.IsZero() && !res.expires.After(now) {
		return authFail("the credential has expired", "credential of %s expired at %s", principal, res.expires.Format(time.RFC3339))
	}
	var expires time.Time
	if l := c.s.sasl.lifetime; l > 0 {
		expires = now.Add(l)
	}
	if !res.expires.IsZero() && (expires.IsZero() || res.expires.Before(expires)) {
		expires = res.expires
	}
	c.log.Debug("sasl authenticated", "mechanism", mech, "principal", principal, "reauthentication", a.authed)
	a.authed, a.expires = true, expires
	c.principal = principal
	return nil
}

func (c *clientConn) newSASLStep(mech string, now time.Time) saslStep {
	switch mech {
	case MechPlain:
		return &plainStep{st: c.s.view.State()}
	case MechScramSHA256, MechScramSHA512:
		return newScramStep(mech, c.s.view.State(), &c.s.sasl.secret)
	case MechOAuthBearer:
		return &oauthStep{v: c.s.sasl.oauth, now: now}
	}
	return failStep{}
}

type failStep struct{}

func (failStep) next([]byte) ([]byte, *saslResult, error) {
	return nil, nil, authFail("mechanism not available", "no server side for the mechanism")
}

// answerAndClose answers r with resp, then closes the connection with err
// once the answer (and every answer before it) is written.
func (c *clientConn) answerAndClose(r *request, resp kmsg.Response, err error) error {
	if werr := c.respond(r, r.start, resp); werr != nil {
		return werr
	}
	p, werr := c.newPending(r, r.start)
	if werr != nil {
		return werr
	}
	c.finish(p, nil, err)
	c.kickWriter()
	t := time.NewTimer(closeAfterAnswerWait)
	defer t.Stop()
	select {
	case <-c.closing:
	case <-t.C:
	}
	return err
}

// PLAIN (RFC 4616): authzid NUL authcid NUL passwd.

type plainStep struct {
	st *fsm.State
}

const plainFailed = "Authentication failed: Invalid username or password"

func (p *plainStep) next(in []byte) ([]byte, *saslResult, error) {
	authzid, user, pass, err := parsePlain(in)
	if err != nil {
		return nil, nil, authFail("malformed PLAIN message", "%v", err)
	}
	if authzid != "" && authzid != user {
		return nil, nil, authFail("Authentication failed: authorization id must be empty or the user name",
			"user %q asked to act as %q", user, authzid)
	}
	u, ok := p.st.User(user)
	if !ok {
		return nil, nil, authFail(plainFailed, "unknown user %q", user)
	}
	if !checkUserPassword(u, pass) {
		return nil, nil, authFail(plainFailed, "wrong password for user %q", user)
	}
	return []byte{}, &saslResult{user: user}, nil
}

// checkUserPassword checks pass against u's PLAIN credential, else against
// any of its SCRAM credentials (a user set up for SCRAM can use PLAIN over
// TLS, as in Kafka when both are enabled).
func checkUserPassword(u fsm.User, pass string) bool {
	if c, ok := u.Credential(fsm.SASLPlain); ok {
		return c.CheckPassword(pass)
	}
	for _, c := range u.Credentials {
		if c.Mechanism == fsm.SASLScramSHA256 || c.Mechanism == fsm.SASLScramSHA512 {
			if c.CheckPassword(pass) {
				return true
			}
		}
	}
	return false
}

// maxSASLName bounds a user name or authorization id.
const maxSASLName = 1024

// parsePlain splits a PLAIN message.
func parsePlain(in []byte) (authzid, user, pass string, err error) {
	parts := bytes.Split(in, []byte{0})
	if len(parts) != 3 {
		return "", "", "", fmt.Errorf("want authzid NUL user NUL password, have %d NUL-separated fields", len(parts))
	}
	for _, f := range parts {
		if !utf8.Valid(f) {
			return "", "", "", errors.New("a field is not UTF-8")
		}
	}
	switch {
	case len(parts[1]) == 0:
		return "", "", "", errors.New("empty user name")
	case len(parts[2]) == 0:
		return "", "", "", errors.New("empty password")
	case len(parts[0]) > maxSASLName || len(parts[1]) > maxSASLName:
		return "", "", "", fmt.Errorf("user name or authorization id longer than %d bytes", maxSASLName)
	}
	return string(parts[0]), string(parts[1]), string(parts[2]), nil
}

// fakeSalt is the salt offered for a user that does not exist: stable per
// name and server, so probing twice looks like a real user.
func fakeSalt(secret *[32]byte, user string) []byte {
	m := hmac.New(sha256.New, secret[:])
	m.Write([]byte(user))
	return m.Sum(nil)[:16]
}

// truncate shortens a client-sent string for a log line.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
