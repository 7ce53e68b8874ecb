package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// bootstrapDir writes the Raft state a peer has right after bootstrapping
// servers (one configuration entry), without running a peer.
func bootstrapDir(t *testing.T, servers ...string) string {
	t.Helper()
	dataDir := t.TempDir()
	dir := raftDir(dataDir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	store, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	snaps, err := raft.NewFileSnapshotStore(dir, 2, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	var conf raft.Configuration
	for i, s := range servers {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(s), Address: raft.ServerAddress(fmt.Sprintf("127.0.0.1:%d", 17000+i))})
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(servers[0])
	_, trans := raft.NewInmemTransport("")
	if err := raft.BootstrapCluster(rc, store, store, snaps, trans, conf); err != nil {
		t.Fatal(err)
	}
	return dataDir
}

func TestRecoverOffline(t *testing.T) {
	dataDir := bootstrapDir(t, "a", "b", "c")
	voters := []RecoverVoter{{"a", "10.0.0.1:17000"}, {"b", "10.0.0.2:17000"}}
	rep, err := Recover(dataDir, voters, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Old) != 3 || rep.Old[2].Name != "c" || !rep.Old[2].Voter {
		t.Fatalf("old configuration %+v, want a, b, c voters", rep.Old)
	}
	if len(rep.New) != 2 || rep.New[0] != (RecoverServer{"a", "10.0.0.1:17000", true}) || rep.New[1].Name != "b" {
		t.Fatalf("new configuration %+v", rep.New)
	}
	if rep.LastIndex != 1 || rep.LastTerm != 1 || rep.SnapshotIndex != 0 || rep.Replayed != 1 {
		t.Fatalf("report %+v, want last index 1 term 1 from the log", rep)
	}
	// What a peer starting on the dir would read: the new configuration,
	// from the snapshot, with the log gone.
	store, err := raftboltdb.NewBoltStore(filepath.Join(raftDir(dataDir), "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := raft.NewFileSnapshotStore(raftDir(dataDir), 2, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	got, err := latestConfiguration(store, snaps)
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.servers) != 2 || got.servers[1] != (RecoverServer{"b", "10.0.0.2:17000", true}) || got.snapshotIndex != 1 {
		t.Fatalf("state after recovery: %+v", got)
	}
	// Running it again (an operator retrying) gives the same result.
	rep2, err := Recover(dataDir, voters, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep2.LastIndex != 1 || rep2.SnapshotIndex != 1 || len(rep2.Old) != 2 {
		t.Fatalf("second run: %+v", rep2)
	}
}

func TestRecoverRefuses(t *testing.T) {
	voters := []RecoverVoter{{"a", "127.0.0.1:17000"}}
	check := func(name string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, want)
		}
	}

	t.Run("no voters", func(t *testing.T) {
		_, err := Recover(bootstrapDir(t, "a"), nil, nil)
		check("no voters", err, "no voters")
	})
	t.Run("bad voters", func(t *testing.T) {
		dir := bootstrapDir(t, "a", "b")
		_, err := Recover(dir, []RecoverVoter{{"a", "h:1"}, {"a", "h:2"}}, nil)
		check("repeated name", err, "given twice")
		_, err = Recover(dir, []RecoverVoter{{"a", "h:1"}, {"b", "h:1"}}, nil)
		check("repeated address", err, "two voters")
		_, err = Recover(dir, []RecoverVoter{{"a", "h:1"}, {"typo", "h:2"}}, nil)
		check("unknown name", err, `voter "typo" is not a server`)
	})
	t.Run("malformed", func(t *testing.T) {
		for _, s := range []string{"", "a", "a=", "=h:1", "a=h", "a=h:"} {
			if v, err := ParseRecoverVoter(s); err == nil {
				t.Errorf("ParseRecoverVoter(%q) = %+v, want an error", s, v)
			}
		}
		v, err := ParseRecoverVoter(" p1 = 10.0.0.1:17000")
		if err != nil || v != (RecoverVoter{"p1", "10.0.0.1:17000"}) {
			t.Errorf("ParseRecoverVoter: %+v, %v", v, err)
		}
	})
	t.Run("no state", func(t *testing.T) {
		dir := t.TempDir()
		_, err := Recover(dir, voters, nil)
		check("empty dir", err, "holds no raft state")
		if _, err := os.Stat(filepath.Join(raftDir(dir), "raft.db")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("recover created a store in an empty dir: %v", err)
		}
		// A store that exists but was never written (a peer that started
		// and stopped before joining).
		if err := os.MkdirAll(raftDir(dir), 0o750); err != nil {
			t.Fatal(err)
		}
		s, err := raftboltdb.NewBoltStore(filepath.Join(raftDir(dir), "raft.db"))
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		_, err = Recover(dir, voters, nil)
		check("empty store", err, "holds no raft state")
		_, err = Recover("", voters, nil)
		check("no dir", err, "no data dir")
	})
	t.Run("locked", func(t *testing.T) {
		dir := bootstrapDir(t, "a")
		// The lock a running peer holds (openRaft opens the same file).
		s, err := raftboltdb.NewBoltStore(filepath.Join(raftDir(dir), "raft.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, err = Recover(dir, voters, nil)
		check("locked", err, "in use by a running switchyard process")
	})
}
