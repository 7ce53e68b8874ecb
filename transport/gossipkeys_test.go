package transport

import (
	"bytes"
	"encoding/base64"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestParseGossipKeys(t *testing.T) {
	k16 := bytes.Repeat([]byte{1}, 16)
	k32 := bytes.Repeat([]byte{2}, 32)
	b64 := base64.StdEncoding.EncodeToString
	ok := "# rotation in progress\n" + b64(k32) + "\n\n  " + b64(k16) + "  \r\n"
	keys, err := ParseGossipKeys([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !bytes.Equal(keys[0], k32) || !bytes.Equal(keys[1], k16) {
		t.Fatalf("keys = %x, want the 32-byte key first then the 16-byte one", keys)
	}
	for name, in := range map[string]string{
		"empty":      "",
		"comments":   "# nothing\n\n",
		"not base64": "not-base64!\n",
		"short key":  b64([]byte("0123456789")),
		"repeated":   b64(k16) + "\n" + b64(k16),
		"too many":   strings.Repeat(b64(k16)+"\n", 1) + manyKeys(MaxGossipKeys),
		"too large":  strings.Repeat("#", maxGossipKeyFile+1),
	} {
		if _, err := ParseGossipKeys([]byte(in)); !errors.Is(err, ErrGossipKey) {
			t.Errorf("%s: err = %v, want ErrGossipKey", name, err)
		}
	}
	path := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(path, []byte(ok), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadGossipKeyFile(path); err != nil || len(got) != 2 {
		t.Fatalf("ReadGossipKeyFile = %d keys, %v", len(got), err)
	}
	if _, err := ReadGossipKeyFile(path + ".missing"); !errors.Is(err, ErrGossipKey) {
		t.Fatalf("missing file: err = %v, want ErrGossipKey", err)
	}
}

// manyKeys returns n distinct 16-byte keys, one per line.
func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(i + 10)}, 16)) + "\n")
	}
	return b.String()
}

// newKeyedMember starts a memberlist with the given keys (none: plain text).
func newKeyedMember(t *testing.T, name string, keys ...[]byte) *memberlist.Memberlist {
	ml, _ := newKeyedMemberRing(t, name, keys...)
	return ml
}

// newKeyedMemberRing also returns the keyring, which rotation changes.
func newKeyedMemberRing(t *testing.T, name string, keys ...[]byte) (*memberlist.Memberlist, *memberlist.Keyring) {
	t.Helper()
	mc, err := NewMemberlistConfig(GossipConfig{
		Name:     name,
		BindAddr: "127.0.0.1:0",
		Keys:     keys,
		Logger:   testLogger(t, slog.LevelWarn),
		// A suspect is declared dead after 1-6 s here (memberlist's
		// suspicion timeout with three members): long enough for a
		// member starved on a loaded machine to refute, short enough for
		// the rotation test's 8 s windows to see a member that cannot
		// read the others. (200 ms probes gave a starved member 0.4 s,
		// and two loaded CI runs saw one declared dead.)
		ProbeInterval:    500 * time.Millisecond,
		ProbeTimeout:     250 * time.Millisecond,
		SuspicionMult:    4,
		GossipInterval:   20 * time.Millisecond,
		TCPTimeout:       2 * time.Second,
		PushPullInterval: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = mc.Transport.Shutdown()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	return ml, mc.Keyring
}

// memberNames lists the members ml has not declared dead or left.
func memberNames(ml *memberlist.Memberlist) string {
	var s []string
	for _, n := range ml.Members() {
		if n.State == memberlist.StateAlive || n.State == memberlist.StateSuspect {
			s = append(s, n.Name)
		}
	}
	return strings.Join(sortStrings(s), ",")
}

func aliveNames(ml *memberlist.Memberlist) string {
	var s []string
	for _, n := range ml.Members() {
		if n.State == memberlist.StateAlive {
			s = append(s, n.Name)
		}
	}
	return strings.Join(sortStrings(s), ",")
}

// TestGossipEncryption: peers sharing a key form a cluster; a process
// without the key, or with another, cannot join it or be seen by it; the
// key rotates (add, make primary, remove) with every peer a member
// throughout.
func TestGossipEncryption(t *testing.T) {
	k1 := bytes.Repeat([]byte{0x11}, 32)
	k2 := bytes.Repeat([]byte{0x22}, 32)
	var mls []*memberlist.Memberlist
	var rings []*memberlist.Keyring
	for _, name := range []string{"g1", "g2", "g3"} {
		ml, kr := newKeyedMemberRing(t, name, k1)
		mls, rings = append(mls, ml), append(rings, kr)
	}
	seed := mls[0].LocalNode().Address()
	for _, ml := range mls[1:] {
		if _, err := ml.Join([]string{seed}); err != nil {
			t.Fatal(err)
		}
	}
	allSee := func(want string) func() bool {
		return func() bool {
			for _, ml := range mls {
				if aliveNames(ml) != want {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, 10*time.Second, "g1,g2,g3 alive everywhere", allSee("g1,g2,g3"))

	rogueCannotJoin := func(name string, keys ...[]byte) {
		t.Helper()
		r := newKeyedMember(t, name, keys...)
		if k, err := r.Join([]string{seed}); err == nil || k > 0 {
			t.Fatalf("%s joined an encrypted cluster (contacted %d, err %v)", name, k, err)
		}
		// Give gossip time to spread it if anything had let it in.
		time.Sleep(500 * time.Millisecond)
		if got := aliveNames(mls[0]); got != "g1,g2,g3" {
			t.Fatalf("g1 sees %s after %s tried to join", got, name)
		}
		if got := aliveNames(r); got != name {
			t.Fatalf("%s sees %s; it must see only itself", name, got)
		}
		_ = r.Shutdown()
	}
	rogueCannotJoin("plain")
	rogueCannotJoin("wrongkey", bytes.Repeat([]byte{0x33}, 32))

	// Rotation: each step on every peer before the next; after each, the
	// three still see each other through fresh push/pull exchanges.
	steps := []struct {
		what string
		keys [][]byte
	}{
		{"add k2", [][]byte{k1, k2}},
		{"make k2 primary", [][]byte{k2, k1}},
		{"remove k1", [][]byte{k2}},
	}
	for _, st := range steps {
		for _, kr := range rings {
			if err := InstallGossipKeys(kr, st.keys); err != nil {
				t.Fatalf("%s: %v", st.what, err)
			}
		}
		for _, kr := range rings {
			if !bytes.Equal(kr.GetPrimaryKey(), st.keys[0]) || len(kr.GetKeys()) != len(st.keys) {
				t.Fatalf("%s: keyring has %d keys, primary %x", st.what, len(kr.GetKeys()), kr.GetPrimaryKey()[:1])
			}
		}
		// A peer that can no longer read another's packets has it
		// declared dead within a probe and a suspicion timeout (at most
		// about 6 s here); a busy machine may make one suspect for a
		// while, which is not a failure, so only a dead member fails the
		// step.
		deadline := time.Now().Add(8 * time.Second)
		for time.Now().Before(deadline) {
			for i, ml := range mls {
				if got := memberNames(ml); got != "g1,g2,g3" {
					t.Fatalf("after %q g%d holds only %s as members (the others were declared dead)", st.what, i+1, got)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		waitFor(t, 10*time.Second, "all three alive after "+st.what, allSee("g1,g2,g3"))
	}
	// The retired key no longer opens the cluster; the new one does.
	rogueCannotJoin("oldkey", k1)
	late := newKeyedMember(t, "g4", k2)
	if _, err := late.Join([]string{seed}); err != nil {
		t.Fatalf("a peer with the new key cannot join: %v", err)
	}
	mls = append(mls, late)
	waitFor(t, 10*time.Second, "g4 joins with the new key", allSee("g1,g2,g3,g4"))
}

func TestInstallGossipKeysRefusesEmpty(t *testing.T) {
	kr, err := memberlist.NewKeyring(nil, bytes.Repeat([]byte{1}, 16))
	if err != nil {
		t.Fatal(err)
	}
	if err := InstallGossipKeys(kr, nil); !errors.Is(err, ErrGossipKey) {
		t.Fatalf("err = %v, want ErrGossipKey", err)
	}
}
