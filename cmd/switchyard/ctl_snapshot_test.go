package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/sandbox"
)

func startSnapshotSandbox(t *testing.T, ctx context.Context) *sandbox.Sandbox {
	t.Helper()
	sb, err := sandbox.Start(ctx, sandbox.Config{
		Clusters:      []sandbox.ClusterSpec{{Name: "east", Brokers: 1}, {Name: "west", Brokers: 1}},
		Peers:         3,
		KafkaBasePort: 0,
		AdminBasePort: 0,
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	return sb
}

func sandboxFollower(t *testing.T, sb *sandbox.Sandbox) int {
	t.Helper()
	follower := -1
	waitUntil(t, 30*time.Second, "a follower that knows the leader", func() bool {
		for i, n := range sb.Nodes {
			if !n.IsLeader() && n.Leader() != "" {
				follower = i
				return true
			}
		}
		return false
	})
	return follower
}

// TestCtlSnapshotSaveRestore: a backup saved through a follower of one
// three-peer sandbox, restored through a follower of another (the restore
// is redirected to its leader): the clusters, routes, quotas and users
// come back on every peer of the second, which keeps its own peers; a file
// that is not a snapshot is refused before anything is sent.
func TestCtlSnapshotSaveRestore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctlAt := func(admin string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(ctx, append([]string{"ctl", "--server", admin, "--timeout", "30s"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	must := func(admin string, args ...string) string {
		t.Helper()
		code, out, errOut := ctlAt(admin, args...)
		if code != 0 {
			t.Fatalf("ctl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}

	a := startSnapshotSandbox(t, ctx)
	fa := a.AdminURLs[sandboxFollower(t, a)]
	must(fa, "routes", "set", "orders", "west")
	must(fa, "routes", "set", "--prefix", "logs.", "west")
	must(fa, "quotas", "set", "orders", "--produce", "1MiB", "--fetch", "2MiB")
	must(fa, "users", "set", "alice", "--mechanism", "SCRAM-SHA-256", "--password-file", writePasswordFile(t, "pencil\n"))
	// An idempotent producer's real id on west, claimed in the shared
	// table by the peer that served its first batch.
	wcl, err := kgo.NewClient(kgo.SeedBrokers(a.Backends["west"].ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	_, err = kadm.NewClient(wcl).CreateTopic(ctx, 1, 1, nil, "orders")
	wcl.Close()
	if err != nil {
		t.Fatalf("create orders on west: %v", err)
	}
	pcl, err := kgo.NewClient(kgo.SeedBrokers(a.Bootstrap...), kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	if err := pcl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("produce to orders: %v", err)
	}
	vpid, vepoch, err := pcl.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var claimed fsm.ClaimedProducerID
	waitUntil(t, 30*time.Second, "the producer's real id claimed on every peer", func() bool {
		for _, n := range a.Nodes {
			c, ok := n.ProducerID("west", vpid, vepoch)
			if !ok {
				return false
			}
			claimed = c
		}
		return true
	})
	want := map[string]string{}
	for _, what := range []string{"clusters", "routes", "quotas", "users"} {
		want[what] = must(fa, "-o", "json", "--consistent", what, "list")
	}

	file := filepath.Join(t.TempDir(), "backup.snap")
	out := must(fa, "snapshot", "save", file)
	if !strings.HasPrefix(out, "saved "+file+": state index ") || !strings.Contains(out, "2 clusters") || !strings.Contains(out, "1 users") {
		t.Fatalf("save output: %q", out)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
		t.Fatalf("backup file: %v, %v", fi, err)
	}
	if code, _, errOut := ctlAt(fa, "snapshot", "save", file); code != 2 || !strings.Contains(errOut, "--force") {
		t.Fatalf("save over an existing file: exit %d: %s", code, errOut)
	}

	b := startSnapshotSandbox(t, ctx)
	fb := b.AdminURLs[sandboxFollower(t, b)]
	peersBefore := must(fb, "-o", "json", "--consistent", "peers")
	for what, w := range want {
		if what == "clusters" {
			continue // the same cluster names, other addresses
		}
		if got := must(fb, "-o", "json", "--consistent", what, "list"); got == w {
			t.Fatalf("the fresh cluster already has the backup's %s:\n%s", what, got)
		}
	}

	bad := filepath.Join(t.TempDir(), "bad.snap")
	if err := os.WriteFile(bad, []byte(`{"format":"something-else","version":1}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := ctlAt(fb, "snapshot", "restore", bad); code != 2 || !strings.Contains(errOut, "not a snapshot") {
		t.Fatalf("restore of a bad file: exit %d: %s", code, errOut)
	}

	code, out, errOut := ctlAt(fb, "-o", "json", "snapshot", "restore", file)
	var sum snapshotSummary
	if code != 0 || json.Unmarshal([]byte(out), &sum) != nil || sum.RestoredIndex == 0 || sum.Routes != 2 || sum.Users != 1 || sum.Quotas != 1 {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errOut)
	}
	// Every peer of the second cluster serves the backup's state (read
	// locally on each, so the followers must have installed it too).
	for i, admin := range b.AdminURLs {
		for what, w := range want {
			waitUntil(t, 30*time.Second, "peer "+b.Nodes[i].Name()+" serves the restored "+what, func() bool {
				code, got, _ := ctlAt(admin, "-o", "json", what, "list")
				return code == 0 && got == w
			})
		}
	}
	// The shared producer ids came with the backup.
	for _, n := range b.Nodes {
		waitUntil(t, 30*time.Second, "peer "+n.Name()+" holds the backup's producer id claim", func() bool {
			c, ok := n.ProducerID("west", vpid, vepoch)
			return ok && c == claimed
		})
	}
	if got := must(fb, "-o", "json", "--consistent", "peers"); !samePeers(t, peersBefore, got) {
		t.Fatalf("the restore changed the peers:\nbefore %s\nafter %s", peersBefore, got)
	}
	// And the cluster takes writes after it.
	must(fb, "routes", "set", "after-restore", "east")
}

// samePeers compares two `peers -o json` answers by name, id and Kafka
// address (liveness and health may move between the two reads).
func samePeers(t *testing.T, a, b string) bool {
	t.Helper()
	type peer struct {
		ID        int32  `json:"id"`
		Name      string `json:"name"`
		KafkaAddr string `json:"kafka_addr"`
	}
	decode := func(s string) []peer {
		var l struct {
			Peers []peer `json:"peers"`
		}
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			var direct []peer
			if err2 := json.Unmarshal([]byte(s), &direct); err2 != nil {
				t.Fatalf("peers answer: %v / %v\n%s", err, err2, s)
			}
			return direct
		}
		return l.Peers
	}
	pa, pb := decode(a), decode(b)
	if len(pa) != len(pb) || len(pa) == 0 {
		return false
	}
	for i := range pa {
		if pa[i] != pb[i] {
			return false
		}
	}
	return true
}
