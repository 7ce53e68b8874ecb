package transport

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// listFSM records applied entries in order.
type listFSM struct {
	mu      sync.Mutex
	entries []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, string(l.Data))
	return nil
}

func (f *listFSM) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries)
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) { return listSnapshot(f.list()), nil }

func (f *listFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var entries []string
	if err := json.NewDecoder(rc).Decode(&entries); err != nil {
		return err
	}
	f.mu.Lock()
	f.entries = entries
	f.mu.Unlock()
	return nil
}

type listSnapshot []string

func (s listSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode([]string(s)); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (listSnapshot) Release() {}

type raftNode struct {
	name string
	mux  *Mux
	raft *raft.Raft
	fsm  *listFSM
}

func startRaftNode(t *testing.T, name string, faults *Faults) *raftNode {
	t.Helper()
	sink := newLogSink(t)
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft-" + name, Output: sink, Level: hclog.Info})
	m := newMux(t, name, faults, nil)
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  m.RaftLayer(),
		MaxPool: 3,
		Timeout: time.Second,
		Logger:  hlog,
	})
	t.Cleanup(func() { _ = trans.Close() })
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(name)
	rc.HeartbeatTimeout = 300 * time.Millisecond
	rc.ElectionTimeout = 300 * time.Millisecond
	rc.LeaderLeaseTimeout = 100 * time.Millisecond
	rc.CommitTimeout = 20 * time.Millisecond
	rc.Logger = hlog
	fsm := &listFSM{}
	r, err := raft.NewRaft(rc, fsm, raft.NewInmemStore(), raft.NewInmemStore(), raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Shutdown().Error(); err != nil {
			t.Errorf("raft %s shutdown: %v", name, err)
		}
	})
	return &raftNode{name: name, mux: m, raft: r, fsm: fsm}
}

// leaderAmong returns the one node that is leader, or nil.
func leaderAmong(nodes []*raftNode) *raftNode {
	var leader *raftNode
	for _, n := range nodes {
		if n.raft.State() == raft.Leader {
			if leader != nil {
				return nil // two claim it: not settled yet
			}
			leader = n
		}
	}
	return leader
}

func apply(t *testing.T, n *raftNode, entry string) {
	t.Helper()
	if err := n.raft.Apply([]byte(entry), 5*time.Second).Error(); err != nil {
		t.Fatalf("apply %q on %s: %v", entry, n.name, err)
	}
}

func TestRaftOverMux(t *testing.T) {
	faults := NewFaults()
	var nodes []*raftNode
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, startRaftNode(t, fmt.Sprintf("r%d", i), faults))
	}
	var servers []raft.Server
	for _, n := range nodes {
		servers = append(servers, raft.Server{ID: raft.ServerID(n.name), Address: raft.ServerAddress(n.mux.Addr().String())})
	}
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatal(err)
	}

	var leader *raftNode
	waitFor(t, 10*time.Second, "a leader", func() bool { leader = leaderAmong(nodes); return leader != nil })
	var want []string
	for i := range 5 {
		e := fmt.Sprintf("before-%d", i)
		apply(t, leader, e)
		want = append(want, e)
	}
	allHave := func(nodes []*raftNode, want []string) func() bool {
		return func() bool {
			for _, n := range nodes {
				if !slices.Equal(n.fsm.list(), want) {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, 10*time.Second, "every node to apply the first entries", allHave(nodes, want))

	// Cut the leader off: the other two elect one of themselves and commit
	// without it, while the old leader cannot commit anything.
	old := leader
	faults.Isolate(old.name)
	var rest []*raftNode
	for _, n := range nodes {
		if n != old {
			rest = append(rest, n)
		}
	}
	lost := old.raft.Apply([]byte("lost"), time.Second)
	var next *raftNode
	waitFor(t, 10*time.Second, "a new leader among the other two", func() bool { next = leaderAmong(rest); return next != nil })
	apply(t, next, "after-isolate")
	want = append(want, "after-isolate")
	waitFor(t, 10*time.Second, "the majority to apply the new entry", allHave(rest, want))
	if err := lost.Error(); err == nil {
		t.Fatal("the isolated leader committed an entry")
	}
	if got := old.fsm.list(); slices.Contains(got, "lost") || slices.Contains(got, "after-isolate") {
		t.Fatalf("isolated node applied %v while cut off", got)
	}
	waitFor(t, 5*time.Second, "the isolated leader to step down", func() bool { return old.raft.State() != raft.Leader })

	// Heal: the old leader rejoins as a follower and catches up; its
	// uncommitted entry is gone everywhere.
	faults.Heal()
	waitFor(t, 15*time.Second, "the old leader to catch up", allHave(nodes, want))
	waitFor(t, 10*time.Second, "a settled leader", func() bool { leader = leaderAmong(nodes); return leader != nil })
	apply(t, leader, "after-heal")
	want = append(want, "after-heal")
	waitFor(t, 10*time.Second, "every node to apply after heal", allHave(nodes, want))
}
