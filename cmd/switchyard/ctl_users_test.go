package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/node"
	"github.com/switchyard-proxy/switchyard/sandbox"
)

func writePasswordFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestParseCtlUsers: the call each users command line makes, the password
// read from its file (one line ending dropped, other white space kept),
// and the usage errors.
func TestParseCtlUsers(t *testing.T) {
	pw := writePasswordFile(t, " s3cret \r\n")
	cases := []struct {
		args, method, path, query, body string
	}{
		{"users list", "GET", "/v1/users", "", ""},
		{"users set alice --mechanism SCRAM-SHA-512 --password-file " + pw, "PUT", "/v1/users/alice", "", `{"mechanism":"SCRAM-SHA-512","password":" s3cret "}`},
		{"users set bob@example.com/x --password-file " + pw + " --mechanism PLAIN --iterations 4096", "PUT", "/v1/users/bob@example.com%2Fx", "", `{"mechanism":"PLAIN","password":" s3cret ","iterations":4096}`},
		{"users delete alice", "DELETE", "/v1/users/alice", "", ""},
		{"users delete alice --mechanism SCRAM-SHA-256", "DELETE", "/v1/users/alice", "mechanism=SCRAM-SHA-256", ""},
	}
	for _, tc := range cases {
		_, call, err := parseCtl(strings.Fields(tc.args), noEnv)
		if err != nil {
			t.Fatalf("%s: %v", tc.args, err)
		}
		if call.method != tc.method || call.path != tc.path || call.query.Encode() != tc.query || bodyJSON(t, call.body) != tc.body {
			t.Errorf("%s: %s %s ?%s %s; want %s %s ?%s %s", tc.args, call.method, call.path, call.query.Encode(), bodyJSON(t, call.body), tc.method, tc.path, tc.query, tc.body)
		}
	}

	empty := writePasswordFile(t, "\n")
	big := writePasswordFile(t, strings.Repeat("x", 2000))
	bad := []struct{ args, msg string }{
		{"users set alice --password-file " + pw, "--mechanism is required"},
		{"users set alice --mechanism GSSAPI --password-file " + pw, `"GSSAPI" is not`},
		{"users set alice --mechanism PLAIN", "--password-file is required"},
		{"users set alice --mechanism PLAIN --password-file /nonexistent/pw", "read password file"},
		{"users set alice --mechanism PLAIN --password-file " + empty, "is empty"},
		{"users set alice --mechanism PLAIN --password-file " + big, "over 1024 bytes"},
		{"users set --mechanism PLAIN --password-file " + pw, "missing NAME"},
		{"users delete", "missing NAME"},
		{"users list extra", "unexpected argument"},
	}
	for _, tc := range bad {
		if _, _, err := parseCtl(strings.Fields(tc.args), noEnv); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want an error mentioning %q", tc.args, err, tc.msg)
		}
	}
}

func TestRenderUsers(t *testing.T) {
	_, call, err := parseCtl([]string{"users", "list"}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := call.show(&b, []byte(`{"users":[{"name":"alice","mechanisms":[{"mechanism":"PLAIN","iterations":8192},{"mechanism":"SCRAM-SHA-512","iterations":4096}]}]}`), ""); err != nil {
		t.Fatal(err)
	}
	if want := "USER   MECHANISMS\nalice  PLAIN(8192),SCRAM-SHA-512(4096)\n"; b.String() != want {
		t.Fatalf("rendered\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := call.show(&b, []byte(`{"users":[]}`), ""); err != nil || b.String() != "no users\n" {
		t.Fatalf("empty: %q %v", b.String(), err)
	}
}

// TestCtlUsersOnNode drives users set, list and delete against a real
// one-peer cluster, and checks the stored credential verifies the password
// from the file.
func TestCtlUsersOnNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := node.New(node.Config{
		Name:            "solo",
		DataDir:         filepath.Join(t.TempDir(), "solo"),
		KafkaListen:     "127.0.0.1:0",
		AdminListen:     "127.0.0.1:0",
		RaftListen:      "127.0.0.1:0",
		GossipListen:    "127.0.0.1:0",
		BootstrapExpect: 1,
		Timing:          node.FastTiming(),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitUntil(t, 20*time.Second, "the peer leads", n.IsLeader)
	ctl := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(ctx, append([]string{"ctl", "--server", n.AdminAddr(), "--timeout", "20s"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	pw := writePasswordFile(t, "pencil\n")

	if code, out, errOut := ctl("users", "set", "alice", "--mechanism", "SCRAM-SHA-256", "--password-file", pw, "--iterations", "4096"); code != 0 || !strings.HasPrefix(out, "user alice: SCRAM-SHA-256 credential set (index ") {
		t.Fatalf("users set: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := ctl("users", "set", "alice", "--mechanism", "PLAIN", "--password-file", pw); code != 0 {
		t.Fatalf("users set PLAIN: %d %q", code, errOut)
	}
	u, ok := n.State().User("alice")
	c, _ := u.Credential(fsm.SASLScramSHA256)
	if !ok || len(u.Credentials) != 2 || !c.CheckPassword("pencil") || c.Iterations != 4096 {
		t.Fatalf("stored user %+v", u)
	}
	if code, out, _ := ctl("users", "list"); code != 0 || out != "USER   MECHANISMS\nalice  PLAIN(8192),SCRAM-SHA-256(4096)\n" {
		t.Fatalf("users list: %d %q", code, out)
	}
	if code, _, errOut := ctl("users", "set", "alice", "--mechanism", "PLAIN", "--password-file", pw, "--iterations", "99"); code != 1 || !strings.Contains(errOut, "4096 to 16384") {
		t.Fatalf("bad iterations: %d %q", code, errOut)
	}
	if code, out, _ := ctl("users", "delete", "alice", "--mechanism", "PLAIN"); code != 0 || !strings.HasPrefix(out, "user alice: PLAIN credential deleted") {
		t.Fatalf("users delete --mechanism: %d %q", code, out)
	}
	if code, out, _ := ctl("users", "delete", "alice"); code != 0 || !strings.HasPrefix(out, "user alice deleted") {
		t.Fatalf("users delete: %d %q", code, out)
	}
	if code, _, errOut := ctl("users", "delete", "alice"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("delete again: %d %q", code, errOut)
	}
	if code, out, _ := ctl("users", "list"); code != 0 || out != "no users\n" {
		t.Fatalf("users list at the end: %d %q", code, out)
	}
}

// TestCtlUsersOnFollower: users set sent to a follower of a two-peer
// sandbox is committed through the leader and known on every peer.
func TestCtlUsersOnFollower(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb, err := sandbox.Start(ctx, sandbox.Config{Brokers: 1, Peers: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	follower := -1
	waitUntil(t, 20*time.Second, "a follower", func() bool {
		for i, n := range sb.Nodes {
			if !n.IsLeader() && n.Leader() != "" {
				follower = i
				return true
			}
		}
		return false
	})
	pw := writePasswordFile(t, "pencil")
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"ctl", "--server", sb.AdminURLs[follower], "--timeout", "20s",
		"users", "set", "alice", "--mechanism", "SCRAM-SHA-512", "--password-file", pw}, &out, &errb); code != 0 {
		t.Fatalf("users set on the follower: %d %s", code, errb.String())
	}
	// The follower answers once it applied the change; the leader has.
	for i, n := range sb.Nodes {
		u, ok := n.State().User("alice")
		if !ok || !u.Credentials[0].CheckPassword("pencil") {
			t.Fatalf("peer %d: alice %+v", i, u)
		}
	}
}
