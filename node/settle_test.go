package node

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/transport"
)

// startFaultTrio runs three peers whose peer traffic goes through faults.
func startFaultTrio(t *testing.T) ([]*Node, *transport.Faults) {
	t.Helper()
	faults := transport.NewFaults()
	var nodes []*Node
	for _, p := range startTrioPeersWith(t, faults) {
		nodes = append(nodes, p.n)
	}
	return nodes, faults
}

// answer is what Apply returned.
type answer struct {
	res fsm.Applied
	err error
}

// applyAside runs n.Apply(ctx, cmd) on its own goroutine.
func applyAside(ctx context.Context, n *Node, cmd fsm.Command) <-chan answer {
	done := make(chan answer, 1)
	go func() {
		res, err := n.Apply(ctx, cmd)
		done <- answer{res, err}
	}()
	return done
}

// commandEntries returns the indexes of n's log entries, from first on,
// that hold the command bytes b.
func commandEntries(t *testing.T, n *Node, first uint64, b []byte) []uint64 {
	t.Helper()
	last, err := n.store.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	var at []uint64
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := n.store.GetLog(i, &l); err != nil {
			continue
		}
		if l.Type == raft.LogCommand && bytes.Equal(l.Data, b) {
			at = append(at, i)
		}
	}
	return at
}

// TestWriteSettledAfterLeaderLost: the leader appends a write and
// replicates it, but hears no answer (its followers' traffic to it is
// delayed 8 s, far past its 250 ms lease, even on a loaded machine), so it
// steps down with the write in flight. The followers
// elect a new leader, which commits the entry. Once the old leader hears
// from it, the write is answered as committed, with its index: it is not
// left "outcome unknown", and it is in the log once.
func TestWriteSettledAfterLeaderLost(t *testing.T) {
	// On a loaded machine the leader can step down (its lease runs out
	// once the delays are in place) before it proposes the write, which
	// then goes to the new leader as any refused write does (or, when the
	// old leader learns of none before Apply's retries end, since the new
	// leader's traffic to it is delayed too, is refused); or a follower
	// that never received the entry wins the election, the settle finds
	// the entry dropped, and the write is sent again. Both are correct, but
	// not the case under test: such an attempt is started over.
	for attempt := 1; ; attempt++ {
		if writeSettledAfterLeaderLost(t) {
			return
		}
		if attempt == 3 {
			t.Fatal("in 3 attempts the new leader never committed the old leader's entry (the leader stepped down before proposing the write, or a follower without the entry was elected)")
		}
		t.Logf("attempt %d: the new leader did not commit the old leader's entry; again", attempt)
	}
}

// writeSettledAfterLeaderLost runs the case once and reports whether the
// old leader proposed the write (whose fate it then settled).
func writeSettledAfterLeaderLost(t *testing.T) bool {
	nodes, faults := startFaultTrio(t)
	old, followers := leaderOf(t, nodes)
	cmd := &fsm.PutCluster{Cluster: fsm.Cluster{Name: "settled", Bootstrap: []string{"127.0.0.1:1"}}}
	b, err := fsm.Encode(cmd)
	if err != nil {
		t.Fatal(err)
	}
	first := old.raft.LastIndex() + 1

	for _, f := range followers {
		faults.Delay(f.Name(), old.Name(), 8*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := applyAside(ctx, old, cmd)
	var (
		leader *Node
		got    *answer // Apply's answer, once in
	)
	waitUntil(t, 30*time.Second, "a new leader among the followers that applied the write, or the write refused unproposed", func() bool {
		if got == nil {
			select {
			case a := <-done:
				got = &a
			default:
			}
		}
		if got != nil && got.err != nil {
			return true
		}
		for _, f := range followers {
			if _, ok := f.State().Cluster("settled"); ok && f.IsLeader() {
				leader = f
				return true
			}
		}
		return false
	})
	if got != nil && got.err != nil {
		faults.Heal()
		if !notProposed(got.err) {
			t.Fatalf("write across the leader change: %v", got.err)
		}
		// The old leader stepped down before proposing it, and learned of
		// no new leader (whose traffic to it is delayed) before Apply's
		// retries ran out: refused, never proposed, as a write with no
		// leader is. Not the case under test.
		t.Logf("the write was refused before any leader proposed it: %v", got.err)
		return false
	}
	if old.IsLeader() {
		t.Fatal("the old leader still leads")
	}
	faults.Heal()
	if got == nil {
		a := <-done
		got = &a
	}
	a := *got
	if a.err != nil {
		t.Fatalf("write across the leader change: %v", a.err)
	}
	if counterValue(old.metrics.settled.WithLabelValues("committed")) == 0 {
		// Not the case under test: the old leader never proposed the
		// write, or proposed it and a follower without the entry won the
		// election, so the settle found it dropped and Apply sent it
		// again. Either way the new leader answered it, and the old one,
		// whose traffic from it is still delayed, may not have the entry
		// yet: the write must be in the new leader's log once.
		if at := commandEntries(t, leader, first, b); len(at) != 1 {
			t.Fatalf("the write is in the new leader's log at %v, want once", at)
		}
		return false
	}
	var l raft.Log
	if err := old.store.GetLog(a.res.Index, &l); err != nil || !bytes.Equal(l.Data, b) {
		t.Fatalf("answered index %d, whose entry is %v (%v), not the write", a.res.Index, l.Data, err)
	}
	if at := commandEntries(t, old, first, b); len(at) != 1 {
		t.Fatalf("the write is in the log at %v, want once", at)
	}
	if got := counterValue(old.metrics.settled.WithLabelValues("committed")); got != 1 {
		t.Errorf("settled committed = %v, want 1", got)
	}
	return true
}

// TestWriteRetriedAfterLeaderDroppedIt: the leader appends a write while
// cut off, steps down, and the others elect a leader whose log never had
// it. Once the old leader learns that, the write is sent again, through
// the new leader, and applied once.
func TestWriteRetriedAfterLeaderDroppedIt(t *testing.T) {
	nodes, faults := startFaultTrio(t)
	old, followers := leaderOf(t, nodes)
	cmd := &fsm.PutCluster{Cluster: fsm.Cluster{Name: "dropped", Bootstrap: []string{"127.0.0.1:1"}}}
	b, err := fsm.Encode(cmd)
	if err != nil {
		t.Fatal(err)
	}
	first := old.raft.LastIndex() + 1

	faults.Isolate(old.Name())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := applyAside(ctx, old, cmd)
	var leader *Node
	waitUntil(t, 30*time.Second, "a new leader among the others, past the old leader's last index", func() bool {
		for _, f := range followers {
			if f.IsLeader() && f.raft.AppliedIndex() >= first {
				leader = f
				return true
			}
		}
		return false
	})
	if _, ok := leader.State().Cluster("dropped"); ok {
		t.Fatal("the cut-off leader's write reached the new leader")
	}
	faults.Heal()
	a := <-done
	if a.err != nil {
		t.Fatalf("write across the leader change: %v", a.err)
	}
	waitUntil(t, 30*time.Second, "every peer applied the write", func() bool {
		for _, n := range nodes {
			if _, ok := n.State().Cluster("dropped"); !ok {
				return false
			}
		}
		return true
	})
	if at := commandEntries(t, leader, first, b); len(at) != 1 || at[0] != a.res.Index {
		t.Fatalf("the write is in the new leader's log at %v, answered at %d; want once, there", at, a.res.Index)
	}
	if got := counterValue(old.metrics.settled.WithLabelValues("dropped")); got != 1 {
		t.Errorf("settled dropped = %v, want 1", got)
	}
}
