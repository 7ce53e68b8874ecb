package node

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRequiredRole(t *testing.T) {
	for _, tc := range []struct {
		method, pattern string
		want            Role
	}{
		{"GET", "GET /v1/clusters", RoleRead},
		{"GET", "GET /v1/status", RoleRead},
		{"GET", "GET /v1/topics", RoleRead},
		{"HEAD", "GET /v1/routes", RoleRead},
		{"PUT", "PUT /v1/routes/{topic}", RoleOperator},
		{"DELETE", "DELETE /v1/routes/{topic}", RoleOperator},
		{"PUT", "PUT /v1/prefix-routes/{prefix}", RoleOperator},
		{"PUT", "PUT /v1/group-routes/{prefix}", RoleOperator},
		{"PUT", "PUT /v1/default-cluster", RoleOperator},
		{"DELETE", "DELETE /v1/default-cluster", RoleOperator},
		{"PUT", "PUT /v1/quotas/{topic}", RoleOperator},
		{"DELETE", "DELETE /v1/prefix-quotas/{prefix}", RoleOperator},
		{"POST", "POST /v1/migrations", RoleOperator},
		{"POST", "POST /v1/migrations/{topic}/finish", RoleOperator},
		{"DELETE", "DELETE /v1/migrations/{topic}", RoleOperator},
		{"POST", "POST /v1/groups/{group}/offset-resets", RoleOperator},
		{"POST", "POST /v1/failover/{cluster}", RoleOperator},
		{"POST", "POST /v1/failback/{cluster}", RoleOperator},
		{"PUT", "PUT /v1/clusters/{name}", RoleAdmin},
		{"DELETE", "DELETE /v1/clusters/{name}", RoleAdmin},
		{"DELETE", "DELETE /v1/peers/{name}", RoleAdmin},
		{"PUT", "PUT /v1/peers/allow-list/{name}", RoleAdmin},
		{"PUT", "PUT /v1/regions/{region}", RoleAdmin},
		{"PUT", "PUT /v1/users/{name}", RoleAdmin},
		{"POST", "POST /v1/acls", RoleAdmin},
		{"DELETE", "DELETE /v1/acls", RoleAdmin},
		// A backup holds credentials: reading it is admin-only, as is a restore.
		{"GET", "GET /v1/snapshot", RoleAdmin},
		{"POST", "POST /v1/snapshot", RoleAdmin},
		// A route nobody listed is admin-only; a prefix that merely starts
		// like an operator path is not an operator path.
		{"POST", "POST /v1/something-new", RoleAdmin},
		{"PUT", "PUT /v1/routesx/{a}", RoleAdmin},
		{"POST", "POST /v1/groups/{group}/delete", RoleAdmin},
		// The catch-all answers 404/405 and changes nothing.
		{"PUT", routeUnmatched, RoleRead},
		// The console's static assets are open, like /healthz.
		{"GET", consoleRoute, RoleNone},
	} {
		if got := RequiredRole(tc.method, tc.pattern); got != tc.want {
			t.Errorf("RequiredRole(%s, %q) = %s, want %s", tc.method, tc.pattern, got, tc.want)
		}
	}
}

const (
	tokRead  = "read-0123456789abcdef"
	tokOper  = "oper-0123456789abcdef"
	tokAdmin = "admin-0123456789abcdef"
)

func TestParseAdminTokens(t *testing.T) {
	good := "# roles\n\nread " + tokRead + " grafana\n  operator\t" + tokOper + "\nadmin " + tokAdmin + " ops@example\n"
	toks, err := parseAdminTokens([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 3 || toks[0].role != RoleRead || toks[0].name != "grafana" || toks[1].role != RoleOperator || toks[1].name != "" || toks[2].role != RoleAdmin {
		t.Fatalf("parsed %+v", toks)
	}
	for _, tc := range []struct{ name, file, want string }{
		{"one field", "read\n", "line 1: want ROLE TOKEN [NAME], got 1 fields"},
		{"four fields", "\n\nread " + tokRead + " a b\n", "line 3: want ROLE TOKEN [NAME], got 4 fields"},
		{"unknown role", "# x\nsuperuser " + tokRead + "\n", "line 2: unknown role \"superuser\""},
		{"short token", "read short\n", "line 1: the token is 5 characters"},
		{"control character", "read " + tokRead + "\x01\n", "line 1: the token has a character outside printable ASCII"},
		{"same token twice", "read " + tokRead + "\nadmin " + tokRead + "\n", "line 2: the same token as line 1"},
		{"same name twice", "read " + tokRead + " a\nadmin " + tokAdmin + " a\n", "line 2: name \"a\" is used on line 1 too"},
		{"bad name", "read " + tokRead + " a/b\n", "line 1: name \"a/b\""},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			_, err := parseAdminTokens([]byte(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), tokRead) || strings.Contains(err.Error(), tokAdmin) {
				t.Fatalf("error repeats a token: %v", err)
			}
		})
	}
}

func TestRedactBody(t *testing.T) {
	for _, tc := range []struct{ in, want, note string }{
		{``, ``, ``},
		{`{"bootstrap":["a:1"]}`, `{"bootstrap":["a:1"]}`, ``},
		{`{"mechanism":"PLAIN","password":"s3cr3t"}`, `{"mechanism":"PLAIN","password":"[redacted]"}`, ``},
		{`{"sasl":{"Password_File":"/x","username":"u"},"tls":{"key_file":"/k","ca_file":"/c"}}`,
			`{"sasl":{"Password_File":"[redacted]","username":"u"},"tls":{"ca_file":"/c","key_file":"[redacted]"}}`, ``},
		{`[{"client_secret":{"deep":1}},{"apiToken":"t"}]`, `[{"client_secret":"[redacted]"},{"apiToken":"[redacted]"}]`, ``},
		{`{"pass\u0077ord":"escaped"}`, `{"password":"[redacted]"}`, ``},
		{`{"n":12345678901234567890}`, `{"n":12345678901234567890}`, ``},
		{`password=s3cr3t`, ``, `not JSON`},
		{`{"a":1} {"password":"x"}`, ``, `not one JSON value`},
		{`{"a":"` + strings.Repeat("x", auditBodyMax) + `"}`, ``, `audit cap`},
	} {
		body, note := redactBody([]byte(tc.in))
		if string(body) != tc.want || !strings.Contains(note, tc.note) || (tc.note == "") != (note == "") {
			t.Errorf("redactBody(%.60q) = %s, %q; want %s, %q", tc.in, body, note, tc.want, tc.note)
		}
	}
}

// FuzzRedactBody: whatever the body, what the audit log keeps is valid
// JSON in which no secret-bearing key holds anything but the marker.
func FuzzRedactBody(f *testing.F) {
	for _, s := range []string{`{"password":"x"}`, `[{"a":{"token":[1,2]}}]`, `{"k\u0065y":"v"}`, `"str"`, `1e400`, `{`, ``, `{"a":{"b":{"secret":null}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		body, note := redactBody(b)
		if body == nil {
			return
		}
		if note != "" {
			t.Fatalf("body kept with a note %q", note)
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("kept body is not JSON: %v", err)
		}
		var walk func(any)
		walk = func(v any) {
			switch x := v.(type) {
			case map[string]any:
				for k, e := range x {
					if secretKey(k) && e != redacted {
						t.Fatalf("key %q kept %v", k, e)
					}
					walk(e)
				}
			case []any:
				for _, e := range x {
					walk(e)
				}
			}
		}
		walk(v)
	})
}

// lockedBuffer collects a node's log lines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAdminRolesAndAudit runs a real one-peer cluster with a tokens file
// and an audit log: each role can do what it should and nothing more,
// refused writes change nothing, the file rotates without a restart, and
// no secret reaches the log or the audit file.
func TestAdminRolesAndAudit(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	auditPath := filepath.Join(dir, "audit.log")
	writeFile(t, tokens, "read "+tokRead+" dashboards\noperator "+tokOper+"\nadmin "+tokAdmin+" alice\n")
	var logs lockedBuffer
	n := startSoloWith(t, func(c *Config) {
		c.AdminTokensFile = tokens
		c.AdminAuditLog = auditPath
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	const password = "hunter2-pa55word-do-not-log"
	steps := []struct {
		name, method, path, token, body string
		status                          int
		want                            string
	}{
		{"write without a token", "PUT", "/v1/clusters/east", "", `{"bootstrap":["127.0.0.1:1"]}`, 401, "bearer token"},
		{"write with an unknown token", "PUT", "/v1/clusters/east", "unknown-0123456789abcdef", `{"bootstrap":["127.0.0.1:1"]}`, 401, "not valid"},
		{"not a bearer token", "PUT", "/v1/clusters/east", "", `{"bootstrap":["127.0.0.1:1"]}`, 401, "bearer token"},
		{"write with a read token", "PUT", "/v1/clusters/east", tokRead, `{"bootstrap":["127.0.0.1:1"]}`, 403, "needs the admin role"},
		{"nothing changed", "GET", "/v1/clusters", tokRead, "", 200, `"clusters": []`},
		{"operator cannot set a cluster", "PUT", "/v1/clusters/east", tokOper, `{"bootstrap":["127.0.0.1:1"]}`, 403, "needs the admin role; this token (operator token "},
		{"still nothing", "GET", "/v1/clusters", tokOper, "", 200, `"clusters": []`},
		{"admin sets a cluster", "PUT", "/v1/clusters/east", tokAdmin, `{"bootstrap":["127.0.0.1:1"]}`, 200, `"name": "east"`},
		{"read cannot route", "PUT", "/v1/routes/orders", tokRead, `{"cluster":"east"}`, 403, "needs the operator role"},
		{"no route yet", "GET", "/v1/routes/orders", tokRead, "", 404, "no route"},
		{"operator routes", "PUT", "/v1/routes/orders", tokOper, `{"cluster":"east"}`, 200, `"cluster": "east"`},
		{"operator sets a quota", "PUT", "/v1/quotas/orders", tokOper, `{"produce_bytes_per_sec":1000}`, 200, `"produce_bytes_per_sec": 1000`},
		{"operator cannot set a region", "PUT", "/v1/regions/dc1", tokOper, `{"networks":["10.1.0.0/16"]}`, 403, "needs the admin role"},
		{"read reads", "GET", "/v1/routes/orders", tokRead, "", 200, `"match": "exact"`},
		{"a body with a secret", "PUT", "/v1/users/bob", tokAdmin, `{"mechanism":"SCRAM-SHA-512","password":"` + password + `"}`, 0, ""},
		{"a non-JSON body with a secret", "PUT", "/v1/clusters/x", tokAdmin, "password=" + password, 400, "request body"},
		{"probes stay open", "GET", "/healthz", "", "", 200, "ok"},
	}
	for _, s := range steps {
		req, err := http.NewRequest(s.method, "http://"+n.AdminAddr()+s.path, strings.NewReader(s.body))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case s.name == "not a bearer token":
			req.Header.Set("Authorization", "Basic "+tokAdmin)
		case s.token != "":
			req.Header.Set("Authorization", "Bearer "+s.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if s.status != 0 && (resp.StatusCode != s.status || !strings.Contains(string(b), s.want)) {
			t.Fatalf("%s: %d %s, want %d containing %q", s.name, resp.StatusCode, b, s.status, s.want)
		}
		if strings.Contains(string(b), tokAdmin) || strings.Contains(string(b), tokRead) {
			t.Fatalf("%s: the answer repeats a token: %s", s.name, b)
		}
	}

	// The audit file: one record per write, refused ones included, with
	// who, what and the outcome; never a token or the password.
	pollUntil(t, 10*time.Second, "audit records", func() bool {
		b, _ := os.ReadFile(auditPath)
		return bytes.Count(b, []byte("\n")) >= 12
	})
	raw, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	var recs []auditRecord
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var r auditRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 12 {
		t.Fatalf("%d audit records, want 12 (every write, none of the reads):\n%s", len(recs), raw)
	}
	first, admin, secret, nonJSON := recs[0], recs[5], recs[10], recs[11]
	if first.Status != 401 || first.Role != "none" || first.Route != "PUT /v1/clusters/{name}" || first.Path != "/v1/clusters/east" || first.Remote == "" || first.Peer != "solo" || string(first.Body) != `{"bootstrap":["127.0.0.1:1"]}` {
		t.Errorf("refused write recorded as %+v", first)
	}
	if admin.Status != 200 || admin.Token != "alice" || admin.Role != "admin" || admin.Index == "" || admin.Fingerprint == "" {
		t.Errorf("admin write recorded as %+v", admin)
	}
	if recs[3].Role != "read" || recs[3].Token != "dashboards" || recs[3].Status != 403 {
		t.Errorf("read token's refused write recorded as %+v", recs[3])
	}
	if recs[4].Role != "operator" || recs[4].Token != "" || len(recs[4].Fingerprint) != 8 {
		t.Errorf("unnamed operator token recorded as %+v", recs[4])
	}
	if string(secret.Body) != `{"mechanism":"SCRAM-SHA-512","password":"[redacted]"}` {
		t.Errorf("secret body recorded as %s", secret.Body)
	}
	if nonJSON.Body != nil || !strings.Contains(nonJSON.BodyOmitted, "not JSON") {
		t.Errorf("non-JSON body recorded as %+v", nonJSON)
	}
	logText := logs.String()
	if c := strings.Count(logText, `"msg":"audit"`); c != 12 {
		t.Errorf("%d audit lines in the peer's log, want 12", c)
	}
	for _, secret := range []string{password, tokRead, tokOper, tokAdmin, "unknown-0123456789abcdef"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the audit file holds the secret %q", secret)
		}
		if strings.Contains(logText, secret) {
			t.Errorf("the peer's log holds the secret %q", secret)
		}
	}

	// Rotation: the read token goes, a new one comes, without a restart.
	const tokNew = "newread-0123456789abcdef"
	writeFile(t, tokens, "read "+tokNew+"\noperator "+tokOper+"\nadmin "+tokAdmin+" alice\n")
	status := func(tok string) int {
		st, _, _ := call(t, n, "GET", "/v1/status", tok, "")
		return st
	}
	pollUntil(t, 15*time.Second, "the rotated tokens file to take effect", func() bool {
		return status(tokNew) == 200 && status(tokRead) == 401
	})
	// A file that stops parsing keeps the tokens in force.
	writeFile(t, tokens, "read "+tokNew+"\nbogus line here now\n")
	time.Sleep(300 * time.Millisecond) // several reload periods (FastTiming: 100 ms)
	if st := status(tokNew); st != 200 {
		t.Fatalf("a broken tokens file changed the tokens in force: %d", st)
	}
	if st := status(tokAdmin); st != 200 {
		t.Fatalf("a broken tokens file dropped the admin token: %d", st)
	}
	if !strings.Contains(logs.String(), "line 2: want ROLE TOKEN [NAME]") {
		t.Errorf("the broken tokens file was not logged with its line")
	}
	// Failures are counted by reason.
	_, _, metrics := call(t, n, "GET", "/metrics", "", "")
	for _, want := range []string{`switchyard_admin_auth_failures_total{reason="insufficient_role"} 4`, `switchyard_admin_auth_failures_total{reason="missing_token"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestAdminTokensFileRefusedAtStart: a bad tokens file stops the peer
// from starting, with the line named.
func TestAdminTokensFileRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	writeFile(t, tokens, "read "+tokRead+"\nroot "+tokAdmin+"\n")
	_, err := New(Config{Name: "solo", DataDir: filepath.Join(dir, "d"), KafkaListen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
		RaftListen: "127.0.0.1:0", GossipListen: "127.0.0.1:0", BootstrapExpect: 1, AdminTokensFile: tokens})
	if err == nil || !strings.Contains(err.Error(), "line 2: unknown role \"root\"") || strings.Contains(err.Error(), tokAdmin) {
		t.Fatalf("New: %v", err)
	}
}

// writeServerCert issues a certificate for 127.0.0.1 from ca and writes
// it and its key as PEM files; serial tells certificates apart.
func writeServerCert(t *testing.T, ca *testCA, dir string, serialNo int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serialNo),
		Subject:      pkix.Name{CommonName: "admin"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "admin.pem"), filepath.Join(dir, "admin.key")
	// Write to temporary names and rename, as a certificate manager does,
	// so a handshake never sees a key that does not match its certificate.
	writeFile(t, certFile+".new", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile+".new", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	if err := os.Rename(keyFile+".new", keyFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(certFile+".new", certFile); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestAdminTLS serves the admin API over TLS with a certificate that is
// renewed while the peer runs.
func TestAdminTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := writeServerCert(t, ca, dir, 1001)
	n := startSoloWith(t, func(c *Config) {
		c.AdminTLSCertFile, c.AdminTLSKeyFile = certFile, keyFile
		c.AdminToken = tokAdmin
	})
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}}
	get := func() (int, int64) {
		req, _ := http.NewRequest("GET", "https://"+n.AdminAddr()+"/v1/status", nil)
		req.Header.Set("Authorization", "Bearer "+tokAdmin)
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
	if st, sn := get(); st != 200 || sn != 1001 {
		t.Fatalf("GET over TLS: %d with certificate %d", st, sn)
	}
	// Plain HTTP is not served.
	if resp, err := http.Get("http://" + n.AdminAddr() + "/v1/status"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served on the TLS admin listener")
		}
	}
	// A renewed certificate is served without a restart.
	writeServerCert(t, ca, dir, 1002)
	pollUntil(t, 15*time.Second, "the renewed certificate", func() bool {
		_, sn := get()
		return sn == 1002
	})
}
