package node

import (
	"testing"
	"time"
)

// TestFollowerRechecksRefusal: a migration finished through the leader,
// then a new one started through a follower whose log lags (the leader's
// traffic to it is delayed 300 ms) is accepted: the follower's own state
// still shows the old migration switched, and before the recheck it
// answered 409 "already has a switched migration" (a loaded CI run's
// TestMigrationTransactions). The refusal is rechecked against the
// leader's state.
func TestFollowerRechecksRefusal(t *testing.T) {
	tr := startLeaseTrio(t, 2*time.Second)
	leader := tr.leader(t)
	var follower *Node
	for _, p := range tr.peers {
		if p.n != leader {
			follower = p.n
			break
		}
	}
	if code, _, body := call(t, leader, "POST", "/v1/migrations", "", `{"topic":"orders","to":"west"}`); code != 202 {
		t.Fatalf("start: %d %s", code, body)
	}
	waitUntil(t, 30*time.Second, "the migration switched on every peer", func() bool {
		for _, p := range tr.peers {
			if m, ok := p.n.State().Migration("orders"); !ok || m.State != "switched" {
				return false
			}
		}
		return true
	})

	tr.faults.Delay(leader.Name(), follower.Name(), 300*time.Millisecond)
	if code, _, body := call(t, leader, "POST", "/v1/migrations/orders/finish?force=1", "", ""); code != 200 {
		t.Fatalf("finish: %d %s", code, body)
	}
	stale := false
	if m, ok := follower.State().Migration("orders"); ok && m.State == "switched" {
		stale = true
	}
	code, _, body := call(t, follower, "POST", "/v1/migrations", "", `{"topic":"orders","to":"east"}`)
	tr.faults.Heal()
	if code != 202 {
		t.Fatalf("start through a follower right after the finish: %d %s", code, body)
	}
	if !stale {
		t.Log("the follower had applied the finish before the start reached it: the recheck was not exercised")
	}
}
