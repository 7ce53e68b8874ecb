package node

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// leaderLoop runs lead while this peer is the Raft leader.
func (n *Node) leaderLoop(ctx context.Context) {
	type term struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	var cur *term
	stop := func() {
		if cur != nil {
			cur.cancel()
			<-cur.done
			cur = nil
		}
	}
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case isLeader := <-n.raft.LeaderCh():
			switch {
			case isLeader && cur == nil:
				lctx, cancel := context.WithCancel(ctx)
				cur = &term{cancel: cancel, done: make(chan struct{})}
				go func(done chan struct{}) {
					defer close(done)
					n.lead(lctx)
				}(cur.done)
				n.log.Info("became raft leader")
			case !isLeader && cur != nil:
				stop()
				n.log.Info("lost raft leadership")
			}
		}
	}
}

// leaderState is the leader's soft state for reconciliation: when it first
// saw each non-voter and each peer gone from gossip. It starts empty at
// every leadership change, which only delays promotions and removals.
type leaderState struct {
	since     time.Time
	nonvoters map[string]time.Time
	gone      map[string]time.Time
	lastErr   map[string]string
}

// lead reconciles gossip into the peer table and the Raft configuration on
// a ticker and on every gossip change, until leadership ends.
func (n *Node) lead(ctx context.Context) {
	// Apply everything the previous leader committed before acting on it.
	for {
		err := n.raft.Barrier(n.cfg.Timing.ApplyTimeout).Error()
		if err == nil {
			break
		}
		n.log.Warn("leader barrier failed", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(n.cfg.Timing.ReconcileInterval):
		}
	}
	// The followers learn what this term committed so far (its first
	// entry, and the previous leader's last) from the next AppendEntries.
	n.nudgeCommit()
	// Live migrations resume from the replicated state (migrate.go); the
	// drivers stop with the term.
	migrating := make(chan struct{})
	go func() {
		defer close(migrating)
		n.migrations.run(ctx)
	}()
	defer func() { <-migrating }()
	// So do offset resets (offset_reset.go).
	resetting := make(chan struct{})
	go func() {
		defer close(resetting)
		n.resets.run(ctx)
	}()
	defer func() { <-resetting }()
	// And failover, from the health reports (failover.go).
	failing := make(chan struct{})
	go func() {
		defer close(failing)
		n.failover.run(ctx)
	}()
	defer func() { <-failing }()
	ls := &leaderState{since: time.Now(), nonvoters: map[string]time.Time{}, gone: map[string]time.Time{}, lastErr: map[string]string{}}
	t := time.NewTicker(n.cfg.Timing.ReconcileInterval)
	defer t.Stop()
	for {
		changed := n.gossipChanged.wait()
		n.reconcile(ctx, ls)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changed:
		}
	}
}

// ensureClusterID gives the virtual cluster its id, once: the first leader
// picks a random one (as a Kafka controller would) and the log keeps it.
func (n *Node) ensureClusterID(ctx context.Context) {
	if n.fsm.State().ClusterID != "" {
		return
	}
	var b [16]byte
	rand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	if _, err := n.applyLocal(ctx, &fsm.SetClusterID{ID: id}); err != nil && !errors.Is(err, fsm.ErrConflict) {
		n.log.Warn("cannot set the cluster id", "err", err)
	}
}

func (n *Node) reconcile(ctx context.Context, ls *leaderState) {
	n.ensureClusterID(ctx)
	members := n.gossip.snapshot()
	// Admission (admit.go) is decided once per round; a member not
	// admitted is left out of everything below.
	admitted := n.admitAll(ctx, n.fsm.State(), members)
	n.reconcilePeers(ctx, ls, members, admitted)
	n.reconcileRaft(ls, members, admitted)
}

func alive(m member) bool { return m.state == memberAlive || m.state == memberSuspect }

// reconcilePeers registers every live, admitted gossip member in the
// replicated peer table, or updates its entry when its gossiped facts
// changed. An entry already there stays while its facts do not change,
// admitted or not: the entry predates the check or the operator put it
// there, and removing it is the operator's call.
func (n *Node) reconcilePeers(ctx context.Context, ls *leaderState, members map[string]member, admitted map[string]bool) {
	for _, name := range sortedNames(members) {
		m := members[name]
		if !alive(m) || m.meta.Kafka == "" {
			continue
		}
		want := m.meta.peer(name)
		st := n.fsm.State()
		if have, ok := st.PeerByName(name); ok && samePeer(have, want) {
			delete(ls.lastErr, name)
			continue
		}
		if !admitted[name] {
			continue
		}
		err := n.register(ctx, st, members, want)
		if err == nil {
			delete(ls.lastErr, name)
			continue
		}
		if msg := err.Error(); ls.lastErr[name] != msg {
			ls.lastErr[name] = msg
			n.log.Warn("cannot register peer", "peer", name, "err", err)
		}
	}
}

// register applies RegisterPeer. When another peer entry holds the same
// Kafka or Raft address and that peer is not alive, the address has moved
// to this peer: the stale entry is removed first.
func (n *Node) register(ctx context.Context, st *fsm.State, members map[string]member, p fsm.Peer) error {
	_, err := n.applyLocal(ctx, &fsm.RegisterPeer{Peer: p})
	if !errors.Is(err, fsm.ErrConflict) {
		return err
	}
	removed := false
	for _, o := range st.Peers {
		if o.Name == p.Name || (o.KafkaAddr != p.KafkaAddr && (p.RaftAddr == "" || o.RaftAddr != p.RaftAddr)) {
			continue
		}
		if m, ok := members[o.Name]; ok && alive(m) {
			continue
		}
		n.log.Info("removing a stale peer entry whose address a new peer now holds", "stale", o.Name, "id", o.ID, "new", p.Name)
		if _, rerr := n.applyLocal(ctx, &fsm.RemovePeer{ID: o.ID}); rerr != nil {
			return rerr
		}
		removed = true
	}
	if !removed {
		return err
	}
	_, err = n.applyLocal(ctx, &fsm.RegisterPeer{Peer: p})
	return err
}

func samePeer(a, b fsm.Peer) bool {
	return a.Name == b.Name && a.Region == b.Region && a.KafkaAddr == b.KafkaAddr && a.AdminAddr == b.AdminAddr &&
		a.RaftAddr == b.RaftAddr && a.GossipAddr == b.GossipAddr && a.Version == b.Version &&
		slices.Equal(a.LocalBrokers, b.LocalBrokers)
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// desiredVoters is how many voters a cluster of n live servers keeps: 5 or
// 3 (an odd number tolerates as many failures as the next even one with a
// smaller quorum), or all of them below 3.
func desiredVoters(n int) int {
	switch {
	case n >= 5:
		return 5
	case n >= 3:
		return 3
	}
	return n
}

// reconcileRaft makes the Raft configuration follow gossip: live peers not
// in it join as non-voters; non-voters alive for PromoteAfter are promoted
// while voters are short (spread over regions); surplus voters are demoted
// once no voter is dead; peers dead or gone for DeadPeerTimeout are removed.
// Changes are made one at a time: each is a log entry that must commit
// before the next is safe, and every future here is waited on. Additions
// all happen in one round (a fleet that starts at once is added in one
// pass, not one peer per ReconcileInterval: with 97 peers joining, one
// per round took 100 s of the 1 s ticker); a removal, a promotion or a
// demotion is the round's one change.
//
// Only admitted members are added or promoted; a configured server that is
// not admitted keeps its current suffrage.
func (n *Node) reconcileRaft(ls *leaderState, members map[string]member, admitted map[string]bool) {
	servers, _, err := n.raftServers()
	if err != nil {
		n.log.Warn("read raft configuration", "err", err)
		return
	}
	now := time.Now()
	timeout := n.cfg.Timing.ApplyTimeout
	self := n.cfg.Name

	// Live peers not in the configuration, or at a new address, join as
	// non-voters (an existing voter keeps its vote), all in this round;
	// the round ends after them, and a failure ends it at once.
	added := false
	for _, name := range sortedNames(members) {
		m := members[name]
		if !alive(m) || m.meta.Raft == "" || !admitted[name] {
			continue
		}
		s, in := servers[name]
		if in && string(s.Address) == m.meta.Raft {
			continue
		}
		var f raft.IndexFuture
		if in && s.Suffrage == raft.Voter {
			f = n.raft.AddVoter(raft.ServerID(name), raft.ServerAddress(m.meta.Raft), 0, timeout)
		} else {
			f = n.raft.AddNonvoter(raft.ServerID(name), raft.ServerAddress(m.meta.Raft), 0, timeout)
			ls.nonvoters[name] = now
		}
		if err := f.Error(); err != nil {
			n.log.Warn("add peer to raft", "peer", name, "err", err)
			return
		}
		n.log.Info("peer added to raft", "peer", name, "addr", m.meta.Raft, "voter", in && s.Suffrage == raft.Voter)
		added = true
	}
	if added {
		return
	}

	// Peers dead, left or unknown to gossip for DeadPeerTimeout leave the
	// configuration.
	for _, name := range sortedNames(servers) {
		if name == self {
			continue
		}
		m, ok := members[name]
		if ok && alive(m) {
			delete(ls.gone, name)
			continue
		}
		first, seen := ls.gone[name]
		if !seen {
			// Gossip knows when it saw the peer go; a peer it never saw
			// starts its clock now.
			first = now
			if ok {
				first = m.since
			}
			ls.gone[name] = first
		}
		if now.Sub(first) < n.cfg.Timing.DeadPeerTimeout {
			continue
		}
		if err := n.raft.RemoveServer(raft.ServerID(name), 0, timeout).Error(); err != nil {
			n.log.Warn("remove dead peer from raft", "peer", name, "err", err)
		} else {
			n.log.Info("dead peer removed from raft", "peer", name, "dead_for", now.Sub(first).Round(time.Millisecond))
			delete(ls.gone, name)
		}
		return
	}

	var liveVoters, liveNonvoters []string
	deadVoter := false
	for name, s := range servers {
		m, ok := members[name]
		live := name == self || ok && alive(m)
		switch {
		case s.Suffrage == raft.Voter && live:
			liveVoters = append(liveVoters, name)
		case s.Suffrage == raft.Voter:
			deadVoter = true
		case live:
			liveNonvoters = append(liveNonvoters, name)
		}
	}
	want := desiredVoters(len(liveVoters) + len(liveNonvoters))
	region := func(name string) string { return members[name].meta.Region }
	perRegion := map[string]int{}
	for _, v := range liveVoters {
		perRegion[region(v)]++
	}
	switch {
	case len(liveVoters) < want:
		var ready []string
		for _, name := range liveNonvoters {
			if !admitted[name] {
				continue
			}
			first, ok := ls.nonvoters[name]
			if !ok {
				first = ls.since
				ls.nonvoters[name] = first
			}
			if now.Sub(first) >= n.cfg.Timing.PromoteAfter {
				ready = append(ready, name)
			}
		}
		if len(ready) == 0 {
			return
		}
		// The region with the fewest voters gets the next one.
		slices.SortFunc(ready, func(a, b string) int {
			if d := perRegion[region(a)] - perRegion[region(b)]; d != 0 {
				return d
			}
			return strings.Compare(a, b)
		})
		name := ready[0]
		if err := n.raft.AddVoter(raft.ServerID(name), servers[name].Address, 0, timeout).Error(); err != nil {
			n.log.Warn("promote peer to voter", "peer", name, "err", err)
			return
		}
		delete(ls.nonvoters, name)
		n.log.Info("peer promoted to voter", "peer", name, "voters", len(liveVoters)+1)
	case len(liveVoters) > want && !deadVoter:
		// The region with the most voters gives one up; never the leader.
		slices.SortFunc(liveVoters, func(a, b string) int {
			if d := perRegion[region(b)] - perRegion[region(a)]; d != 0 {
				return d
			}
			return strings.Compare(b, a)
		})
		for _, name := range liveVoters {
			if name == self {
				continue
			}
			if err := n.raft.DemoteVoter(raft.ServerID(name), 0, timeout).Error(); err != nil {
				n.log.Warn("demote voter", "peer", name, "err", err)
				return
			}
			ls.nonvoters[name] = now
			n.log.Info("voter demoted to non-voter", "peer", name, "voters", len(liveVoters)-1)
			return
		}
	}
}
