package kafka

// How the Kafka listener authenticates its clients (issue 12, "towards
// clients"): TLS with an optional client certificate (listener_tls.go),
// and SASL PLAIN, SCRAM-SHA-256/512 (sasl.go, sasl_scram.go) and
// OAUTHBEARER (sasl_oauth.go), with KIP-368 re-authentication. The
// resulting principal is clientConn.principal, which authorization reads.

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// SASL mechanism names, as clients send them in SaslHandshake.
const (
	MechPlain       = fsm.SASLPlain
	MechScramSHA256 = fsm.SASLScramSHA256
	MechScramSHA512 = fsm.SASLScramSHA512
	MechOAuthBearer = "OAUTHBEARER"
)

// Mechanisms lists the SASL mechanisms the listener can serve.
var Mechanisms = []string{MechPlain, MechScramSHA256, MechScramSHA512, MechOAuthBearer}

// Security configures the authentication of the listener's clients. The
// zero value is a plaintext listener without authentication.
type Security struct {
	// TLSCertFile and TLSKeyFile are the listener's certificate (chain) and
	// private key in PEM; both set turns TLS on. They are re-read when
	// either file's modification time or size changes, so a renewed
	// certificate is served to new connections without a restart.
	TLSCertFile string
	TLSKeyFile  string
	// TLSClientCAFile, when set, requires every client to present a
	// certificate signed by one of its PEM certificates (Kafka's
	// ssl.client.auth=required). The principal is then "User:" + the
	// certificate's subject in RFC 2253 form ("User:CN=alice,O=acme"),
	// Kafka's default, unless SASL authenticates the connection. Re-read
	// on change like the certificate.
	TLSClientCAFile string
	// TLSHandshakeTimeout bounds a client's TLS handshake (default 10 s).
	TLSHandshakeTimeout time.Duration
	// SASLMechanisms are the SASL mechanisms served (Mechanisms); empty:
	// no SASL. With any, a client must authenticate before any request
	// other than ApiVersions, SaslHandshake and SaslAuthenticate.
	SASLMechanisms []string
	// OAuthJWKSFile holds the keys OAUTHBEARER tokens are verified with
	// (a JSON Web Key Set); required with OAUTHBEARER, re-read on change.
	OAuthJWKSFile string
	// OAuthIssuer and OAuthAudience, when set, must match the token's iss
	// claim and be one of its aud claim's values.
	OAuthIssuer   string
	OAuthAudience string
	// SessionLifetime is KIP-368's connections.max.reauth.ms: an
	// authenticated session lasts this long (or until its token expires,
	// if sooner), after which the client must re-authenticate on the same
	// connection or be disconnected at its next request. 0: sessions last
	// until the token expires, or forever.
	SessionLifetime time.Duration
}

// DefaultTLSHandshakeTimeout bounds a client's TLS handshake.
const DefaultTLSHandshakeTimeout = 10 * time.Second

// Authenticating reports whether these settings authenticate every client:
// SASL is on, or client certificates are required.
func (s *Security) Authenticating() bool {
	return len(s.SASLMechanisms) > 0 || s.TLSClientCAFile != ""
}

// Validate reports settings that contradict each other or name unknown
// mechanisms. It does not read the files (NewServer does).
func (s *Security) Validate() error {
	switch {
	case (s.TLSCertFile == "") != (s.TLSKeyFile == ""):
		return errors.New("kafka tls: set both the certificate file and the key file (--kafka-tls-cert-file, --kafka-tls-key-file), or neither")
	case s.TLSClientCAFile != "" && s.TLSCertFile == "":
		return errors.New("kafka tls: a client CA file needs TLS on the listener: set --kafka-tls-cert-file and --kafka-tls-key-file too")
	case s.TLSHandshakeTimeout < 0:
		return fmt.Errorf("kafka tls: handshake timeout %v is negative", s.TLSHandshakeTimeout)
	case s.SessionLifetime < 0:
		return fmt.Errorf("kafka sasl: session lifetime %v is negative (0: no re-authentication)", s.SessionLifetime)
	case s.SessionLifetime > 0 && len(s.SASLMechanisms) == 0:
		return errors.New("kafka sasl: a session lifetime needs SASL: set --kafka-sasl-mechanisms, or drop --kafka-session-lifetime")
	case s.SessionLifetime > 0 && s.SessionLifetime < time.Second:
		return fmt.Errorf("kafka sasl: session lifetime %v is under a second; clients could not re-authenticate in time", s.SessionLifetime)
	}
	seen := map[string]bool{}
	for _, m := range s.SASLMechanisms {
		if !slices.Contains(Mechanisms, m) {
			return fmt.Errorf("kafka sasl: unknown mechanism %q: want some of %s", m, strings.Join(Mechanisms, ","))
		}
		if seen[m] {
			return fmt.Errorf("kafka sasl: mechanism %s listed twice", m)
		}
		seen[m] = true
	}
	oauth := seen[MechOAuthBearer]
	switch {
	case oauth && s.OAuthJWKSFile == "":
		return errors.New("kafka sasl: OAUTHBEARER needs the keys tokens are signed with: set --kafka-oauth-jwks-file")
	case !oauth && (s.OAuthJWKSFile != "" || s.OAuthIssuer != "" || s.OAuthAudience != ""):
		return errors.New("kafka sasl: OAuth settings given but OAUTHBEARER is not among --kafka-sasl-mechanisms")
	}
	return nil
}

// ParseMechanisms splits a comma-separated mechanism list ("PLAIN,
// SCRAM-SHA-512"), upper-casing names and dropping blanks.
func ParseMechanisms(list string) []string {
	var out []string
	for _, m := range strings.Split(list, ",") {
		if m = strings.ToUpper(strings.TrimSpace(m)); m != "" {
			out = append(out, m)
		}
	}
	return out
}

// fileCache holds what parse made of some files, parsing them again when
// one's modification time or size changed. It checks at most once per
// checkEvery, so a handshake costs a stat at most that often. A file that
// fails to parse keeps the last good value in service (logged once per
// change); the first load must succeed.
type fileCache[T any] struct {
	paths []string
	what  string
	parse func(data [][]byte) (T, error)
	log   *slog.Logger

	mu      sync.Mutex
	val     T
	stamp   []fileStamp
	checked time.Time
}

type fileStamp struct {
	mod  time.Time
	size int64
}

const fileCheckEvery = time.Second

// maxWatchedFileBytes bounds a certificate, CA or JWKS file read.
const maxWatchedFileBytes = 4 << 20

func newFileCache[T any](what string, log *slog.Logger, parse func([][]byte) (T, error), paths ...string) (*fileCache[T], error) {
	fc := &fileCache[T]{paths: paths, what: what, parse: parse, log: log}
	stamp, val, err := fc.load()
	if err != nil {
		return nil, err
	}
	fc.val, fc.stamp, fc.checked = val, stamp, time.Now()
	return fc, nil
}

func (fc *fileCache[T]) load() ([]fileStamp, T, error) {
	var zero T
	stamp := make([]fileStamp, len(fc.paths))
	data := make([][]byte, len(fc.paths))
	for i, p := range fc.paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, zero, fmt.Errorf("%s: %w", fc.what, err)
		}
		if fi.Size() > maxWatchedFileBytes {
			return nil, zero, fmt.Errorf("%s: %s is %d bytes (max %d)", fc.what, p, fi.Size(), maxWatchedFileBytes)
		}
		stamp[i] = fileStamp{fi.ModTime(), fi.Size()}
		if data[i], err = os.ReadFile(p); err != nil {
			return nil, zero, fmt.Errorf("%s: %w", fc.what, err)
		}
	}
	val, err := fc.parse(data)
	if err != nil {
		return nil, zero, fmt.Errorf("%s (%s): %w", fc.what, strings.Join(fc.paths, ", "), err)
	}
	return stamp, val, nil
}

// get returns the current value, re-reading the files if they changed.
func (fc *fileCache[T]) get() T {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	now := time.Now()
	if now.Sub(fc.checked) < fileCheckEvery {
		return fc.val
	}
	fc.checked = now
	changed := false
	for i, p := range fc.paths {
		fi, err := os.Stat(p)
		if err != nil || !fi.ModTime().Equal(fc.stamp[i].mod) || fi.Size() != fc.stamp[i].size {
			changed = true
			break
		}
	}
	if !changed {
		return fc.val
	}
	stamp, val, err := fc.load()
	if err != nil {
		// Keep serving the last good value; try again at the next change.
		for i, p := range fc.paths {
			if fi, serr := os.Stat(p); serr == nil {
				fc.stamp[i] = fileStamp{fi.ModTime(), fi.Size()}
			}
		}
		fc.log.Warn("reloading failed; keeping the previous version", "what", fc.what, "err", err)
		return fc.val
	}
	fc.val, fc.stamp = val, stamp
	fc.log.Info("reloaded", "what", fc.what)
	return fc.val
}

// authMetrics counts authentications.
type authMetrics struct {
	results *prometheus.CounterVec
}

// Auth results: the fixed label values of switchyard_kafka_auth_total's
// result.
const (
	authOK      = "success"
	authFailed  = "failure"
	authExpired = "session_expired"
)

func newAuthMetrics(reg prometheus.Registerer) authMetrics {
	m := authMetrics{results: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_auth_total",
		Help: "Client authentications by mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, TLS for client certificates) and result (success, failure, session_expired: a request after the session ended without re-authentication).",
	}, []string{"mechanism", "result"})}
	reg.MustRegister(m.results)
	return m
}

func (m authMetrics) count(mech, result string) {
	if m.results != nil {
		m.results.WithLabelValues(mech, result).Inc()
	}
}

// initSecurity loads the listener's certificate, client CA and key set and
// turns on the SASL keys when SASL is configured.
func (s *Server) initSecurity() error {
	sec := &s.cfg.Security
	var err error
	if s.tls, err = newListenerTLS(sec, s.log); err != nil {
		return err
	}
	if s.sasl, err = newSASLServer(sec, s); err != nil {
		return err
	}
	if s.sasl != nil {
		s.handlers[17] = handleSaslHandshake
		s.handlers[36] = handleSaslAuthenticate
	}
	return nil
}
