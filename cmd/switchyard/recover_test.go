package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// TestRecoverCommand runs `switchyard recover` on the Raft state of a peer
// that bootstrapped a three-voter cluster, and its refusals.
func TestRecoverCommand(t *testing.T) {
	dataDir := t.TempDir()
	dir := filepath.Join(dataDir, "raft")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	store, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := raft.NewFileSnapshotStore(dir, 2, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	conf := raft.Configuration{Servers: []raft.Server{
		{Suffrage: raft.Voter, ID: "p1", Address: "10.0.1.1:17000"},
		{Suffrage: raft.Voter, ID: "p2", Address: "10.0.2.1:17000"},
		{Suffrage: raft.Nonvoter, ID: "p3", Address: "10.0.2.2:17000"},
	}}
	rc := raft.DefaultConfig()
	rc.LocalID = "p2"
	_, trans := raft.NewInmemTransport("")
	if err := raft.BootstrapCluster(rc, store, store, snaps, trans, conf); err != nil {
		t.Fatal(err)
	}
	store.Close()

	recoverCmd := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"recover"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--voter", "p2=10.0.2.1:17000"}, "--data-dir is required"},
		{[]string{"--data-dir", dataDir}, "at least one --voter"},
		{[]string{"--data-dir", dataDir, "--voter", "p2"}, "want NAME=RAFTADDR"},
		{[]string{"--data-dir", t.TempDir(), "--voter", "p2=10.0.2.1:17000"}, "holds no raft state"},
		{[]string{"--data-dir", dataDir, "--voter", "p9=10.0.2.1:17000"}, `voter "p9" is not a server`},
	} {
		code, _, stderr := recoverCmd(tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("recover %q: exit %d, stderr %q; want an error containing %q", tc.args, code, stderr, tc.want)
		}
	}

	code, out, stderr := recoverCmd("--data-dir", dataDir, "--voter", "p2=10.0.2.1:17000", "--voter", "p3=10.0.2.2:17000")
	if code != 0 {
		t.Fatalf("recover: exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"old configuration:\n  voter    p1 10.0.1.1:17000\n  voter    p2 10.0.2.1:17000\n  nonvoter p3 10.0.2.2:17000\n",
		"new configuration:\n  voter    p2 10.0.2.1:17000\n  voter    p3 10.0.2.2:17000\n",
		"last index 1 (term 1)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("recover printed:\n%s\nwant it to contain:\n%s", out, want)
		}
	}
}
