package node

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// TestClaimProducerIDAcrossPeers: claims of one key through a follower,
// the leader and the other follower are answered the first one, forwarded
// answers included, and every peer's table ends up holding it; another
// epoch is another key.
func TestClaimProducerIDAcrossPeers(t *testing.T) {
	nodes := startTrio(t)
	leader, fs := leaderOf(t, nodes)
	const vpid = 3<<40 | 17
	claim := func(n *Node, real int64, vepoch int16) fsm.ClaimedProducerID {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := n.ClaimProducerID(ctx, "main", vpid, vepoch, real, 4)
		if err != nil {
			t.Fatalf("claim via %s: %v", n.Name(), err)
		}
		return c
	}
	first := claim(fs[0], 100, 0)
	if first.RealID != 100 || first.RealEpoch != 4 || first.Cluster != "main" || first.VirtualID != vpid || first.At == 0 {
		t.Fatalf("first claim, forwarded by a follower, answered %+v", first)
	}
	for _, n := range []*Node{leader, fs[1], fs[0]} {
		if got := claim(n, 200, 0); got != first {
			t.Fatalf("a later claim via %s answered %+v, want the first %+v", n.Name(), got, first)
		}
	}
	if got := claim(fs[1], 300, 1); got.RealID != 300 {
		t.Fatalf("another epoch answered %+v", got)
	}
	waitUntil(t, 30*time.Second, "every peer holds both claims", func() bool {
		for _, n := range nodes {
			c0, ok0 := n.ProducerID("main", vpid, 0)
			c1, ok1 := n.ProducerID("main", vpid, 1)
			if !ok0 || !ok1 || c0 != first || c1.RealID != 300 {
				return false
			}
		}
		return true
	})
	if _, ok := leader.ProducerID("other", vpid, 0); ok {
		t.Fatal("a claim on main answered for cluster other")
	}
}
