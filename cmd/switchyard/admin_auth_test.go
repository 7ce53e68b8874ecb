package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCtlOverAdminTLSWithRoles runs `switchyard serve` with admin TLS, a
// tokens file and an audit log, and drives it with `switchyard ctl` over
// https: the CA comes from --ca-file or $SWITCHYARD_CA_FILE, --token-file
// works with any role, and each role is held to what it may do.
func TestCtlOverAdminTLSWithRoles(t *testing.T) {
	dir := t.TempDir()
	// The certificate names 127.0.0.1 (writePeerCert), the address ctl dials.
	cert, key, ca := writePeerCert(t, filepath.Join(dir, "tls"), "solo")
	const (
		readTok  = "read-token-0123456789abcdef"
		operTok  = "operator-token-0123456789abcdef"
		adminTok = "admin-token-0123456789abcdef"
	)
	tokens := filepath.Join(dir, "admin-tokens")
	if err := os.WriteFile(tokens, []byte("# roles\nread "+readTok+" dashboards\noperator "+operTok+" oncall\nadmin "+adminTok+" alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := func(name, tok string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	readFile, operFile, adminFile := tokenFile("read", readTok), tokenFile("oper", operTok), tokenFile("admin", adminTok)
	audit := filepath.Join(dir, "audit.jsonl")
	adminAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		run(ctx, []string{"serve", "--name", "solo", "--data-dir", filepath.Join(dir, "data"),
			"--kafka-listen", freeAddr(t), "--admin-listen", adminAddr, "--raft-listen", freeAddr(t), "--gossip-listen", freeAddr(t),
			"--bootstrap-expect", "1", "--log-level", "info",
			"--admin-tokens-file", tokens, "--admin-tls-cert-file", cert, "--admin-tls-key-file", key, "--admin-audit-log", audit,
		}, os.Stdout, &stderr)
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()
	server := "https://" + adminAddr
	ctl := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		// A generous bound: on a loaded machine a TLS handshake can take
		// seconds, and a timeout would hide the error the test looks for.
		c := run(context.Background(), append([]string{"ctl", "--server", server, "--timeout", "60s"}, args...), &out, &errb)
		return c, out.String(), errb.String()
	}
	waitUntil(t, 60*time.Second, "ctl status over https", func() bool {
		c, _, _ := ctl("--ca-file", ca, "--token-file", readFile, "status")
		return c == 0
	})
	// Without the CA, ctl says what to pass.
	if c, _, e := ctl("--token-file", readFile, "status"); c != 1 || !strings.Contains(e, "--ca-file") {
		t.Fatalf("ctl without the CA: %d %s", c, e)
	}
	// The CA from the environment.
	t.Setenv("SWITCHYARD_CA_FILE", ca)
	steps := []struct {
		name      string
		tokenFile string
		args      []string
		code      int
		want      string // in stderr for a failure
	}{
		{"no token", "", []string{"clusters", "set", "main", "--bootstrap", "127.0.0.1:1"}, 1, "401"},
		{"read token reads", readFile, []string{"clusters", "list"}, 0, ""},
		{"read token cannot write", readFile, []string{"clusters", "set", "main", "--bootstrap", "127.0.0.1:1"}, 1, "403 PUT /v1/clusters/main needs the admin role; this token (dashboards) has the read role"},
		{"operator cannot set a cluster", operFile, []string{"clusters", "set", "main", "--bootstrap", "127.0.0.1:1"}, 1, "needs the admin role"},
		{"admin sets a cluster", adminFile, []string{"clusters", "set", "main", "--bootstrap", "127.0.0.1:1"}, 0, ""},
		{"operator routes", operFile, []string{"routes", "set", "orders", "main"}, 0, ""},
		{"operator sets the default", operFile, []string{"routes", "default", "main"}, 0, ""},
		{"operator cannot delete the cluster", operFile, []string{"clusters", "delete", "main"}, 1, "needs the admin role"},
		{"read cannot route", readFile, []string{"routes", "delete", "orders"}, 1, "needs the operator role"},
	}
	for _, s := range steps {
		args := s.args
		if s.tokenFile != "" {
			args = append([]string{"--token-file", s.tokenFile}, args...)
		}
		c, o, e := ctl(args...)
		if c != s.code || !strings.Contains(e, s.want) {
			t.Fatalf("%s: ctl %v: exit %d, stdout %q, stderr %q; want exit %d with %q", s.name, args, c, o, e, s.code, s.want)
		}
	}
	// What the refused writes left: the cluster and the route are there.
	c, o, e := ctl("--token-file", readFile, "-o", "json", "routes", "list")
	if c != 0 || !strings.Contains(o, `"orders"`) || !strings.Contains(o, `"default_cluster": "main"`) {
		t.Fatalf("routes list: %d %s %s", c, o, e)
	}
	// The audit file has a record per write, with who, and no token.
	raw, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 8 {
		t.Fatalf("%d audit records, want 8:\n%s", len(lines), raw)
	}
	var rec struct {
		Token  string `json:"token"`
		Role   string `json:"role"`
		Method string `json:"method"`
		Path   string `json:"path"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal([]byte(lines[3]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Token != "alice" || rec.Role != "admin" || rec.Method != "PUT" || rec.Path != "/v1/clusters/main" || rec.Status != 200 {
		t.Fatalf("admin's write recorded as %+v", rec)
	}
	for _, tok := range []string{readTok, operTok, adminTok} {
		if strings.Contains(string(raw), tok) || strings.Contains(stderr.String(), tok) {
			t.Fatalf("a token reached the audit file or the log")
		}
	}
	if !strings.Contains(stderr.String(), `msg=audit`) {
		t.Errorf("no audit line in the peer's log:\n%s", stderr.String())
	}
}
