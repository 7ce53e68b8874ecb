package node

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Admin API authentication and authorization (docs/admin-api.md, "Auth").
//
// A request carries a bearer token; the token has a role; the request's
// method and matched route pattern decide the role it needs (RequiredRole).
// Tokens come from --admin-token-file (one token, role admin) and
// --admin-tokens-file (lines ROLE TOKEN [NAME]), the latter re-read when it
// changes so tokens rotate without a restart. Tokens are kept only as
// SHA-256 hashes and compared in constant time; logs and the audit trail
// name a token by its NAME or by a short fingerprint, never by its value.

// Role is what an admin API token may do. Roles nest: admin can do
// everything operator can, operator everything read can.
type Role uint8

const (
	// RoleNone is no role at all: an unauthenticated request.
	RoleNone Role = iota
	// RoleRead may read (GET) every endpoint.
	RoleRead
	// RoleOperator may also change routes, the default cluster, quotas,
	// and run migrations, offset resets and failovers/failbacks.
	RoleOperator
	// RoleAdmin may also change clusters, peers and the allow-list,
	// regions, users, ACLs and any endpoint not named for operator.
	RoleAdmin
)

func (r Role) String() string {
	switch r {
	case RoleRead:
		return "read"
	case RoleOperator:
		return "operator"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// ParseRole reads a role name as the tokens file spells it.
func ParseRole(s string) (Role, error) {
	switch s {
	case "read":
		return RoleRead, nil
	case "operator":
		return RoleOperator, nil
	case "admin":
		return RoleAdmin, nil
	}
	return RoleNone, fmt.Errorf("unknown role %q: use read, operator or admin", s)
}

// operatorPaths are the route path prefixes an operator token may change:
// the day-to-day traffic controls. Anything else that writes needs admin,
// so a route added later is admin-only until it is listed here.
var operatorPaths = []string{
	"/v1/routes",
	"/v1/prefix-routes",
	"/v1/group-routes",
	"/v1/default-cluster",
	"/v1/quotas",
	"/v1/prefix-quotas",
	"/v1/migrations",
	"/v1/groups/{group}/offset-resets",
	"/v1/failover",
	"/v1/failback",
}

// RequiredRole is the role a request needs, from its method and its matched
// route pattern as registered ("PUT /v1/routes/{topic}"): GET and HEAD need
// read, except GET /v1/snapshot (a backup, credentials included: admin); writes to the operatorPaths need operator; every other write needs
// admin; the console's static assets (consoleRoute) need none. The
// catch-all of unknown /v1/ paths (routeUnmatched) needs only a valid
// token: it answers 404 or 405 and changes nothing.
func RequiredRole(method, pattern string) Role {
	if pattern == consoleRoute {
		// The console's static assets: open like /healthz; its pages
		// call /v1 with the operator's own token.
		return RoleNone
	}
	if pattern == "GET /v1/snapshot" {
		// A backup holds users' credentials and backend secrets.
		return RoleAdmin
	}
	if method == http.MethodGet || method == http.MethodHead || pattern == routeUnmatched {
		return RoleRead
	}
	path := pattern
	if _, p, ok := strings.Cut(pattern, " "); ok {
		path = p
	}
	for _, p := range operatorPaths {
		if path == p || strings.HasPrefix(path, p+"/") {
			return RoleOperator
		}
	}
	return RoleAdmin
}

// Limits of the tokens file. A token shorter than minTokenLen is refused:
// a role token must not be guessable, and its fingerprint (8 hex digits of
// its hash) must not give it away.
const (
	minTokenLen        = 16
	maxTokenLen        = 4096
	maxTokenNameLen    = 64
	maxTokensFileBytes = 1 << 20
)

// adminToken is one line of the tokens file.
type adminToken struct {
	role  Role
	token string
	name  string
}

// parseAdminTokens reads a tokens file: one token per line as
// "ROLE TOKEN [NAME]", fields separated by spaces or tabs; blank lines and
// lines starting with # are skipped. Errors name the line, never the token.
func parseAdminTokens(data []byte) ([]adminToken, error) {
	var out []adminToken
	tokenLine := map[[32]byte]int{}
	nameLine := map[string]int{}
	for i, line := range strings.Split(string(data), "\n") {
		ln := i + 1
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("line %d: want ROLE TOKEN [NAME], got %d fields", ln, len(f))
		}
		role, err := ParseRole(f[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", ln, err)
		}
		tok := f[1]
		if len(tok) < minTokenLen || len(tok) > maxTokenLen {
			return nil, fmt.Errorf("line %d: the token is %d characters; want %d to %d random characters (e.g. openssl rand -hex 32)", ln, len(tok), minTokenLen, maxTokenLen)
		}
		for j := 0; j < len(tok); j++ {
			if c := tok[j]; c < 0x21 || c > 0x7e {
				return nil, fmt.Errorf("line %d: the token has a character outside printable ASCII at position %d", ln, j+1)
			}
		}
		h := sha256.Sum256([]byte(tok))
		if prev, ok := tokenLine[h]; ok {
			return nil, fmt.Errorf("line %d: the same token as line %d; each token has one role", ln, prev)
		}
		tokenLine[h] = ln
		name := ""
		if len(f) == 3 {
			name = f[2]
			if err := checkTokenName(name); err != nil {
				return nil, fmt.Errorf("line %d: %w", ln, err)
			}
			if prev, ok := nameLine[name]; ok {
				return nil, fmt.Errorf("line %d: name %q is used on line %d too; names tell tokens apart in the audit log", ln, name, prev)
			}
			nameLine[name] = ln
		}
		out = append(out, adminToken{role: role, token: tok, name: name})
	}
	return out, nil
}

func checkTokenName(s string) error {
	if len(s) > maxTokenNameLen {
		return fmt.Errorf("name is %d characters; at most %d", len(s), maxTokenNameLen)
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.ContainsRune("._@:-", c):
		default:
			return fmt.Errorf("name %q: use letters, digits and . _ @ : - only", s)
		}
	}
	return nil
}

// readAdminTokensFile reads and parses a tokens file, bounded in size.
func readAdminTokensFile(path string) ([]adminToken, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTokensFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxTokensFileBytes {
		return nil, fmt.Errorf("%s is over %d bytes; a tokens file holds one short line per token", path, maxTokensFileBytes)
	}
	toks, err := parseAdminTokens(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return toks, nil
}

// tokenEntry is a token as kept in memory: its hash, never its value.
type tokenEntry struct {
	hash [32]byte
	role Role
	name string
}

// fingerprint names a token in logs: the first 8 hex digits of its SHA-256.
func fingerprint(hash [32]byte) string { return hex.EncodeToString(hash[:4]) }

func entriesOf(toks []adminToken) []tokenEntry {
	out := make([]tokenEntry, len(toks))
	for i, t := range toks {
		out[i] = tokenEntry{hash: sha256.Sum256([]byte(t.token)), role: t.role, name: t.name}
	}
	return out
}

// fileStamp tells whether a file changed since it was read.
type fileStamp struct {
	info os.FileInfo
}

func (s fileStamp) same(fi os.FileInfo) bool {
	return s.info != nil && os.SameFile(s.info, fi) && s.info.ModTime().Equal(fi.ModTime()) && s.info.Size() == fi.Size()
}

// adminTokens is the set of tokens the admin API accepts.
type adminTokens struct {
	static []tokenEntry // --admin-token-file: role admin
	file   string       // --admin-tokens-file, "" for none
	every  time.Duration
	log    *slog.Logger

	fromFile atomic.Pointer[[]tokenEntry]

	mu       sync.Mutex // guards the reload fields below
	checked  time.Time
	stamp    fileStamp
	failures string // the last reload error logged, so it is logged once
}

func newAdminTokens(static, file string, every time.Duration, log *slog.Logger) (*adminTokens, error) {
	t := &adminTokens{file: file, every: every, log: log}
	if static != "" {
		h := sha256.Sum256([]byte(static))
		t.static = []tokenEntry{{hash: h, role: RoleAdmin, name: "admin-token-file"}}
	}
	if file != "" {
		fi, err := os.Stat(file)
		if err != nil {
			return nil, fmt.Errorf("node: --admin-tokens-file: %w", err)
		}
		toks, err := readAdminTokensFile(file)
		if err != nil {
			return nil, fmt.Errorf("node: --admin-tokens-file: %w", err)
		}
		if len(toks) == 0 {
			log.Warn("the admin tokens file holds no token: every /v1/ request is refused until one is added", "file", file)
		}
		e := entriesOf(toks)
		t.fromFile.Store(&e)
		t.stamp, t.checked = fileStamp{fi}, time.Now()
	}
	return t, nil
}

// enabled reports whether requests need a token at all.
func (t *adminTokens) enabled() bool { return t != nil && (len(t.static) > 0 || t.file != "") }

// refresh re-reads the tokens file when it changed, at most once per
// t.every. A file that no longer parses keeps the tokens in force and is
// logged once per distinct error.
func (t *adminTokens) refresh() {
	if t.file == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if time.Since(t.checked) < t.every {
		return
	}
	t.checked = time.Now()
	fi, err := os.Stat(t.file)
	if err == nil && t.stamp.same(fi) {
		return
	}
	var toks []adminToken
	if err == nil {
		toks, err = readAdminTokensFile(t.file)
	}
	if err != nil {
		if msg := err.Error(); msg != t.failures {
			t.failures = msg
			t.log.Warn("admin tokens file not reloaded; the tokens read before stay in force", "file", t.file, "err", err)
		}
		return
	}
	e := entriesOf(toks)
	t.fromFile.Store(&e)
	t.stamp, t.failures = fileStamp{fi}, ""
	t.log.Info("admin tokens file reloaded", "file", t.file, "tokens", len(e))
}

// lookup finds the token's entry. Every entry is compared (in constant
// time, on hashes), whether or not an earlier one matched.
func (t *adminTokens) lookup(token string) (tokenEntry, bool) {
	h := sha256.Sum256([]byte(token))
	var found tokenEntry
	ok := 0
	check := func(es []tokenEntry) {
		for _, e := range es {
			m := subtle.ConstantTimeCompare(h[:], e.hash[:])
			if m == 1 {
				found = e
			}
			ok |= m
		}
	}
	check(t.static)
	if p := t.fromFile.Load(); p != nil {
		check(*p)
	}
	return found, ok == 1
}

// adminIdentity is who sent a request, as far as the audit log may say.
type adminIdentity struct {
	role        Role
	name        string // the token's NAME, "" when it has none
	fingerprint string // of the token presented, "" when none
}

// Reasons an admin request was refused, the label values of
// switchyard_admin_auth_failures_total.
const (
	authMissingToken = "missing_token"
	authInvalidToken = "invalid_token"
	authNoRole       = "insufficient_role"
)

// adminAuth decides who a request is and whether its role suffices.
type adminAuth struct {
	tokens   *adminTokens
	failures *prometheus.CounterVec
}

func newAdminAuth(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*adminAuth, error) {
	toks, err := newAdminTokens(cfg.AdminToken, cfg.AdminTokensFile, cfg.Timing.AdminFileReload, log)
	if err != nil {
		return nil, err
	}
	a := &adminAuth{
		tokens: toks,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_admin_auth_failures_total",
			Help: "Admin API requests refused by authentication or authorization, by reason: missing_token (no bearer token), invalid_token (a token this peer does not know), insufficient_role (a known token without the role the request needs).",
		}, []string{"reason"}),
	}
	for _, r := range []string{authMissingToken, authInvalidToken, authNoRole} {
		a.failures.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(a.failures)
	}
	return a, nil
}

// authorize authenticates r and checks it may use route (the matched
// pattern). Without any token configured every request is allowed as
// admin (the loopback sandbox). The error is a 401 or 403 httpError whose
// message says what to do; it never repeats the token.
func (a *adminAuth) authorize(r *http.Request, route string) (adminIdentity, error) {
	if a == nil || !a.tokens.enabled() {
		return adminIdentity{role: RoleAdmin}, nil
	}
	a.tokens.refresh()
	h := r.Header.Get("Authorization")
	const scheme = "bearer "
	if h == "" {
		a.failures.WithLabelValues(authMissingToken).Inc()
		return adminIdentity{}, &httpError{http.StatusUnauthorized, "this peer requires a bearer token: send Authorization: Bearer <token> (switchyard ctl --token-file)"}
	}
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		a.failures.WithLabelValues(authInvalidToken).Inc()
		return adminIdentity{}, &httpError{http.StatusUnauthorized, "the Authorization header is not a bearer token: send Authorization: Bearer <token>"}
	}
	tok := strings.TrimSpace(h[len(scheme):])
	e, ok := a.tokens.lookup(tok)
	id := adminIdentity{fingerprint: fingerprint(sha256.Sum256([]byte(tok)))}
	if !ok {
		a.failures.WithLabelValues(authInvalidToken).Inc()
		return id, &httpError{http.StatusUnauthorized, fmt.Sprintf("the bearer token (fingerprint %s) is not valid for this peer; check --token-file against the peer's token files", id.fingerprint)}
	}
	id.role, id.name = e.role, e.name
	if need := RequiredRole(r.Method, route); id.role < need {
		a.failures.WithLabelValues(authNoRole).Inc()
		return id, &httpError{http.StatusForbidden, fmt.Sprintf("%s %s needs the %s role; this token (%s) has the %s role", r.Method, r.URL.Path, need, id.who(), id.role)}
	}
	return id, nil
}

// who names the identity for messages and logs: NAME, or role + fingerprint.
func (id adminIdentity) who() string {
	switch {
	case id.name != "":
		return id.name
	case id.fingerprint != "":
		return id.role.String() + " token " + id.fingerprint
	}
	return "anonymous"
}

// bodyReplay is a request body read ahead of the handler (for the audit
// log): the bytes read, then the error the read ended with (a
// *http.MaxBytesError for a body over the limit, so decodeBody still
// answers 413).
type bodyReplay struct {
	r   *bytes.Reader
	err error
}

func (b *bodyReplay) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF && b.err != nil {
		return n, b.err
	}
	return n, err
}

func (b *bodyReplay) Close() error { return nil }
