package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/node"
)

func del(addr, path string) (int, string) {
	req, err := http.NewRequest(http.MethodDelete, "http://"+addr+path, nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// recoverPeers runs node.Recover on the stopped peers idx with those peers
// as the only voters, as an operator runs `switchyard recover` on each
// survivor, and returns the reports.
func (c *testCluster) recoverPeers(idx ...int) []node.RecoverReport {
	c.t.Helper()
	var voters []node.RecoverVoter
	for _, i := range idx {
		voters = append(voters, node.RecoverVoter{Name: c.peers[i].name, Addr: c.peers[i].raftA})
	}
	var reps []node.RecoverReport
	for _, i := range idx {
		if c.peers[i].n != nil {
			c.t.Fatalf("recover %s: the peer is running", c.peers[i].name)
		}
		rep, err := node.Recover(c.peers[i].dir, voters, c.log.With("peer", c.peers[i].name))
		if err != nil {
			c.t.Fatalf("recover %s: %v", c.peers[i].name, err)
		}
		reps = append(reps, rep)
	}
	return reps
}

// raftConfigHas reports whether name is a server of the latest Raft
// configuration peer i holds (as raft's stats print it).
func raftConfigHas(c *testCluster, i int, name string) bool {
	return strings.Contains(c.peers[i].n.RaftStats()["latest_configuration"], "ID:"+name+" ")
}

// TestForcedRecovery: three peers commit routes (past a snapshot, so the
// recovery replays a snapshot and the log after it) and stop. Two are
// recovered with only themselves as voters and started without the third:
// they elect a leader, hold every route and commit new writes, with the
// third gone from the configuration. Then the same is done from two to
// one, where the lone survivor first shows the quorum loss that forced
// recovery is for. In between, the lost peer leaves the peer table by
// DELETE /v1/peers/{name}.
func TestForcedRecovery(t *testing.T) {
	c := newCluster(t, clusterOpts{peers: 3})
	l := c.leader(20 * time.Second)
	setupMain(c)
	idx := putRoutes(c, l, "kept", 80)
	c.waitApplied(idx, 30*time.Second)
	waitFor(t, 60*time.Second, "snapshots on the peers to recover", func() error {
		for _, i := range []int{0, 1} {
			if snapshotIndex(c, i) == 0 {
				return fmt.Errorf("peer-%d has no snapshot yet", i)
			}
		}
		return nil
	})
	// Entries after the snapshot, so recovery replays both.
	idx = putRoutes(c, l, "tail", 5)
	c.waitApplied(idx, 30*time.Second)
	c.stopAll()

	reps := c.recoverPeers(0, 1)
	for k, rep := range reps {
		if len(rep.Old) != 3 || len(rep.New) != 2 {
			t.Fatalf("peer-%d: old %+v new %+v, want 3 then 2 servers", k, rep.Old, rep.New)
		}
		if rep.LastIndex < idx {
			t.Fatalf("peer-%d: recovered up to %d, below the acknowledged write at %d", k, rep.LastIndex, idx)
		}
		if rep.SnapshotIndex == 0 || rep.Replayed == 0 {
			t.Fatalf("peer-%d: recovered from snapshot %d and %d entries, want both", k, rep.SnapshotIndex, rep.Replayed)
		}
		t.Logf("peer-%d: snapshot %d + %d entries replayed, last index %d term %d", k, rep.SnapshotIndex, rep.Replayed, rep.LastIndex, rep.LastTerm)
	}
	c.start(0, 0)
	c.start(1, 0)
	l = c.leader(30 * time.Second)
	for _, i := range []int{0, 1} {
		if err := hasRoutes(c, i, "kept", 80); err != nil {
			t.Fatal(err)
		}
		if err := hasRoutes(c, i, "tail", 5); err != nil {
			t.Fatal(err)
		}
		if raftConfigHas(c, i, "peer-2") || !raftConfigHas(c, i, "peer-0") || !raftConfigHas(c, i, "peer-1") {
			t.Fatalf("peer-%d's raft configuration after recovery: %s", i, c.peers[i].n.RaftStats()["latest_configuration"])
		}
	}
	after := c.apply(1-l, route("after-recovery"), 30*time.Second)
	c.waitApplied(after, 30*time.Second)

	// The lost peer is still registered until the operator removes it; a
	// live peer cannot be removed.
	if _, ok := c.peers[0].n.State().PeerByName("peer-2"); !ok {
		t.Fatal("peer-2 was unregistered before anyone removed it")
	}
	if code, body := del(c.peers[1-l].admin, "/v1/peers/peer-0"); code != http.StatusConflict {
		t.Fatalf("DELETE a live peer: %d %s, want 409", code, body)
	}
	if code, body := del(c.peers[1-l].admin, "/v1/peers/nobody"); code != http.StatusNotFound {
		t.Fatalf("DELETE an unknown peer: %d %s, want 404", code, body)
	}
	if code, body := del(c.peers[1-l].admin, "/v1/peers/peer-2"); code != http.StatusNoContent {
		t.Fatalf("DELETE the lost peer: %d %s, want 204", code, body)
	}
	waitFor(t, 30*time.Second, "peer-2 unregistered everywhere", func() error {
		for _, i := range []int{0, 1} {
			if _, ok := c.peers[i].n.State().PeerByName("peer-2"); ok {
				return fmt.Errorf("peer-%d still lists peer-2", i)
			}
		}
		return nil
	})

	// Lose peer-1 too: peer-0 alone is one voter of two and cannot commit.
	c.stop(1)
	waitFor(t, 30*time.Second, "peer-0 without quorum refuses writes", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := c.peers[0].n.Apply(ctx, route("no-quorum"))
		if errors.Is(err, node.ErrNoLeader) || errors.Is(err, node.ErrNotLeader) {
			return nil
		}
		return fmt.Errorf("apply without quorum: %v", err)
	})
	c.stop(0)
	reps = c.recoverPeers(0)
	if len(reps[0].Old) != 2 || reps[0].LastIndex < after {
		t.Fatalf("second recovery: %+v", reps[0])
	}
	c.start(0, 0)
	c.leader(30 * time.Second)
	last := c.apply(0, route("alone"), 30*time.Second)
	c.waitApplied(last, 30*time.Second)
	st := c.peers[0].n.State()
	for _, topic := range []string{"kept-0", "kept-79", "tail-4", "after-recovery", "alone"} {
		if cl, m := st.RouteFor(topic); m.Kind != fsm.MatchExact || cl != "main" {
			t.Fatalf("peer-0 after the second recovery: no route for %s", topic)
		}
	}
}
