package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// raftDir is where a peer keeps its Raft log, stable store and snapshots.
func raftDir(dataDir string) string { return filepath.Join(dataDir, "raft") }

// openRaft builds this peer's Raft instance over the FSM: raft-boltdb for
// the log and stable store, file snapshots, and the peer port's stream
// layer, with addresses resolved through gossip so a peer whose address
// changed is still reached.
func (n *Node) openRaft() error {
	dir := raftDir(n.cfg.DataDir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("node: data dir: %w", err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(dir, "raft.db"),
		// A second process on the same data dir fails instead of waiting.
		BoltOptions: &bbolt.Options{Timeout: time.Second},
	})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return fmt.Errorf("node: data dir %s is in use by another switchyard process", n.cfg.DataDir)
		}
		return fmt.Errorf("node: open raft store in %s: %w", dir, err)
	}
	n.store = store
	hl := newHclog(n.cfg.Logger.With("component", "raft"), "")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hl)
	if err != nil {
		return fmt.Errorf("node: open snapshot store in %s: %w", dir, err)
	}
	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return fmt.Errorf("node: read raft state in %s: %w", dir, err)
	}
	n.hadState = has
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		ServerAddressProvider: gossipAddrs{n},
		Logger:                hl,
		Stream:                n.mux.RaftLayer(),
		MaxPool:               3,
		Timeout:               10 * time.Second,
	})
	t := n.cfg.Timing
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.Name)
	rc.Logger = hl
	rc.HeartbeatTimeout = t.RaftHeartbeat
	rc.ElectionTimeout = t.RaftElection
	rc.LeaderLeaseTimeout = t.RaftLeaderLease
	// Followers learn the commit index from the next AppendEntries; the
	// leader sends one at once after each write commits (nudge.go), so the
	// commit timeout, which sends one on an idle log, can be long.
	rc.CommitTimeout = t.RaftCommitTimeout
	rc.SnapshotInterval = t.SnapshotInterval
	rc.SnapshotThreshold = t.SnapshotThreshold
	rc.TrailingLogs = t.TrailingLogs
	// The leader reads the entry before each follower's next index for
	// every AppendEntries, including the empty ones the commit timeout
	// sends each follower on an idle log; without a cache
	// each is a BoltDB read and a msgpack decode (in the three-peer
	// benchmark's profile, a fifth of the leader's control-plane CPU). The
	// cache keeps the latest entries in memory, as Consul and Nomad do.
	logs, err := raft.NewLogCache(raftLogCacheEntries, store)
	if err != nil {
		return fmt.Errorf("node: raft log cache: %w", err)
	}
	r, err := raft.NewRaft(rc, n.results, logs, store, snaps, noPipeline{n.trans})
	if err != nil {
		return fmt.Errorf("node: start raft: %w", err)
	}
	n.raft = r
	return nil
}

// raftLogCacheEntries is how many recent Raft log entries a peer keeps in
// memory in front of BoltDB (the size Consul and Nomad use).
const raftLogCacheEntries = 512

// noPipeline turns off hashicorp/raft's pipelined replication. With the
// default MaxRPCsInFlight its channels are unbuffered, and a follower that
// answers an AppendEntries with Success=false (routine around a leader
// change) can leave pipelineReplicate parked for good: that follower gets
// heartbeats but no more entries, and Raft.Shutdown hangs on it (seen in
// TestWritesAcrossLeaderTransfers; grafana/pyroscope#5518 disables it for
// the same reason). A control plane's write rate does not need pipelining.
type noPipeline struct{ *raft.NetworkTransport }

func (noPipeline) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

// gossipAddrs resolves a Raft server id (a peer name) to the peer-port
// address that peer gossips, so Raft follows a peer that restarted on a new
// address. Unknown ids fall back to the address in the Raft configuration.
type gossipAddrs struct{ n *Node }

func (g gossipAddrs) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	if !g.n.gossipUp.Load() {
		return "", errors.New("gossip not started")
	}
	addr, ok := g.n.gossip.raftAddr(string(id))
	if !ok {
		return "", fmt.Errorf("peer %s not in gossip", id)
	}
	return raft.ServerAddress(addr), nil
}

// bootstrap forms a new cluster when this peer was started with
// --bootstrap-expect N and has no Raft state: once gossip shows N peers with
// the same setting and none with Raft state, each of them bootstraps the
// same configuration (the N peers sorted by name). A peer that sees one
// with Raft state does not bootstrap: that cluster's leader adds it.
func (n *Node) bootstrap(ctx context.Context) {
	expect := n.cfg.BootstrapExpect
	if n.hadState || expect == 0 {
		return
	}
	var last []string
	for {
		changed := n.gossipChanged.wait()
		if n.inRaftConfig() {
			return
		}
		var cands []member
		existing := ""
		members := n.gossip.snapshot()
		// Only members whose name is proven (admit.go) may form the
		// cluster: a bootstrap voter is never checked again. Any member
		// with Raft state, proven or not, still stops a bootstrap: a
		// second cluster beside a real one is worse than a rogue member
		// delaying formation.
		admitted := n.admitAll(ctx, n.fsm.State(), members)
		for _, m := range members {
			if m.state != memberAlive {
				continue
			}
			if m.meta.HasState && m.name != n.cfg.Name {
				existing = m.name
			}
			if m.meta.Expect > 0 && admitted[m.name] {
				if m.meta.Expect != expect {
					n.log.Warn("peers disagree on --bootstrap-expect", "peer", m.name, "theirs", m.meta.Expect, "ours", expect)
				}
				cands = append(cands, m)
			}
		}
		switch {
		case existing != "":
			n.log.Info("not bootstrapping: a peer already belongs to a cluster; waiting for its leader to add this peer", "peer", existing)
			return
		case len(cands) > expect:
			n.log.Error("more peers than --bootstrap-expect want to form the cluster; not bootstrapping: start exactly that many with it and --join the others", "expect", expect, "seen", len(cands))
		case len(cands) == expect:
			names := make([]string, len(cands))
			for i, m := range cands {
				names[i] = m.name
			}
			slices.Sort(names)
			// Bootstrap only once the same set was seen twice in a row, so
			// a view still converging does not yield a different set on
			// different peers.
			if slices.Equal(names, last) {
				n.bootstrapWith(cands)
				return
			}
			last = names
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * n.cfg.Timing.GossipInterval):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-time.After(n.cfg.Timing.JoinRetry):
		}
	}
}

func (n *Node) bootstrapWith(cands []member) {
	var servers []raft.Server
	for _, m := range cands {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.name), Address: raft.ServerAddress(m.meta.Raft)})
	}
	slices.SortFunc(servers, func(a, b raft.Server) int { return strings.Compare(string(a.ID), string(b.ID)) })
	err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	switch {
	case err == nil:
		n.log.Info("bootstrapped a new cluster", "voters", len(servers))
	case errors.Is(err, raft.ErrCantBootstrap):
		n.log.Info("not bootstrapping: raft already has state")
	default:
		n.log.Error("bootstrap failed", "err", err)
		return
	}
	n.setHasState()
}

// inRaftConfig reports whether this peer is in a Raft configuration.
func (n *Node) inRaftConfig() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	return len(f.Configuration().Servers) > 0
}

func (n *Node) setHasState() {
	n.metaMu.Lock()
	defer n.metaMu.Unlock()
	if n.meta.HasState {
		return
	}
	n.meta.HasState = true
	if err := n.gossip.setMeta(n.meta); err != nil {
		n.log.Warn("gossip metadata update failed", "err", err)
	}
}

// raftServers returns the current Raft configuration's servers by id.
func (n *Node) raftServers() (map[string]raft.Server, uint64, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, 0, err
	}
	out := map[string]raft.Server{}
	for _, s := range f.Configuration().Servers {
		out[string(s.ID)] = s
	}
	return out, f.Index(), nil
}
