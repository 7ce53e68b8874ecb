package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/quota"
	"github.com/switchyard-proxy/switchyard/transport"
)

// runPeer runs a peer until the test ends or stop is called (once).
func runPeer(t *testing.T, cfg Config) (n *Node, stop func()) {
	t.Helper()
	return runPeerWith(t, cfg, nil)
}

// runPeerWith is runPeer with before (when not nil) called on the node
// before it runs: the place to change what its goroutines read unguarded.
func runPeerWith(t *testing.T, cfg Config, before func(*Node)) (n *Node, stop func()) {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return n, stop
}

// trioPeer is one peer of startTrio, with what it takes to restart it on
// the same data dir and addresses.
type trioPeer struct {
	n    *Node
	cfg  Config
	stop func()
}

// restart stops the peer and runs it again where it was.
func (p *trioPeer) restart(t *testing.T) {
	t.Helper()
	p.stop()
	p.n, p.stop = runPeer(t, p.cfg)
}

// startTrio runs a three-peer cluster on loopback and waits until every
// peer is in the Raft configuration and registered in the state.
func startTrio(t *testing.T) []*Node {
	t.Helper()
	var nodes []*Node
	for _, p := range startTrioPeers(t) {
		nodes = append(nodes, p.n)
	}
	return nodes
}

func startTrioPeers(t *testing.T) []*trioPeer {
	t.Helper()
	return startTrioPeersWith(t, nil)
}

// startTrioPeersWith is startTrioPeers with peer traffic through faults
// (nil: none).
func startTrioPeersWith(t *testing.T, faults *transport.Faults) []*trioPeer {
	t.Helper()
	w := &testSink{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	base := t.TempDir()
	var peers []*trioPeer
	for i := range 3 {
		var join []string
		if i > 0 {
			join = []string{peers[0].n.GossipAddr()}
		}
		name := fmt.Sprintf("p%d", i)
		cfg := Config{
			Name:            name,
			DataDir:         filepath.Join(base, name),
			Version:         "test",
			KafkaListen:     "127.0.0.1:0",
			RaftListen:      "127.0.0.1:0",
			GossipListen:    "127.0.0.1:0",
			Join:            join,
			BootstrapExpect: 3,
			AdmitUnproven:   true, // these tests are about the peer port, not admission
			Faults:          faults,
			Timing:          FastTiming(),
			Logger:          log.With("peer", name),
		}
		n, stop := runPeer(t, cfg)
		// A restart comes back on the same addresses.
		cfg.KafkaListen, cfg.RaftListen, cfg.GossipListen = n.KafkaAddr(), n.RaftAddr(), n.GossipAddr()
		peers = append(peers, &trioPeer{n: n, cfg: cfg, stop: stop})
	}
	for _, p := range peers {
		p.cfg.Join = nil
		for _, o := range peers {
			if o != p {
				p.cfg.Join = append(p.cfg.Join, o.cfg.GossipListen)
			}
		}
	}
	waitUntil(t, 30*time.Second, "three servers and three registered peers on every peer", func() bool {
		for _, p := range peers {
			if len(p.n.RaftServers()) != 3 || len(p.n.State().Peers) != 3 || p.n.Leader() == "" {
				return false
			}
		}
		return true
	})
	return peers
}

func leaderOf(t *testing.T, nodes []*Node) (leader *Node, followers []*Node) {
	t.Helper()
	waitUntil(t, 20*time.Second, "a leader", func() bool {
		leader, followers = nil, nil
		for _, n := range nodes {
			if n.IsLeader() {
				leader = n
			} else {
				followers = append(followers, n)
			}
		}
		return leader != nil
	})
	return leader, followers
}

// intruder is a peer-port client that is no member of the cluster: no TLS,
// any name it likes.
func intruder(t *testing.T, name string) *transport.Client {
	t.Helper()
	m, err := transport.Listen(transport.Config{Name: name, BindAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m.Client()
}

func isUnauthorized(err error) bool {
	return errors.Is(err, &transport.RPCError{Code: transport.CodeUnauthorized})
}

// TestPeerRPCRefusesUnknownSender: a connection to the peer port from a
// sender outside the Raft configuration cannot apply a write (the leader
// used to apply it, bypassing the admin token) nor read the state.
func TestPeerRPCRefusesUnknownSender(t *testing.T) {
	n := startSolo(t, "admin-token")
	cli := intruder(t, "intruder")
	cmd, err := fsm.Encode(&fsm.PutCluster{Cluster: fsm.Cluster{Name: "evil", Bootstrap: []string{"127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var resp applyResponse
	err = cli.Call(ctx, n.RaftAddr(), rpcApply, applyRequest{Command: cmd}, &resp)
	if !isUnauthorized(err) {
		t.Fatalf("apply from an intruder: %v (index %d), want code %s", err, resp.Index, transport.CodeUnauthorized)
	}
	if err := cli.Call(ctx, n.RaftAddr(), rpcState, struct{}{}, nil); !isUnauthorized(err) {
		t.Fatalf("state from an intruder: %v", err)
	}
	for _, m := range []string{rpcQuotaReport, rpcQuotaGrants, rpcQuotaStatus} {
		if err := cli.Call(ctx, n.RaftAddr(), m, struct{}{}, nil); !isUnauthorized(err) {
			t.Fatalf("%s from an intruder: %v", m, err)
		}
	}
	// A barrier makes sure nothing the intruder sent is still in flight.
	if _, err := n.ConsistentState(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.State().Cluster("evil"); ok {
		t.Fatalf("the intruder's write changed the state: clusters %v", n.State().Clusters)
	}
	// The peer's own name, claimed by a member of the Raft configuration,
	// is served: without TLS a name is only a claim (see serve --insecure).
	if _, err := n.handleRPC(ctx, "solo", rpcState, nil); err != nil {
		t.Fatalf("state for a raft member: %v", err)
	}
}

// TestQuotaRPCIdentity: a quota report must speak for its sender, and
// pushed grants are taken from the leader only.
func TestQuotaRPCIdentity(t *testing.T) {
	nodes := startTrio(t)
	leader, fs := leaderOf(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	idOf := func(n *Node) int32 {
		id, ok := leader.State().PeerByName(n.Name())
		if !ok {
			t.Fatalf("%s not registered", n.Name())
		}
		return id.ID
	}
	report := func(peer int32) []byte {
		b, err := marshal(quotaReportRequest{Peer: peer, Report: quota.Report{Boot: 1, Seq: 1, Epoch: leader.raftTerm()}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// fs[0] reports as fs[1]: refused.
	if _, err := leader.handleRPC(ctx, fs[0].Name(), rpcQuotaReport, report(idOf(fs[1]))); !isUnauthorized(err) {
		t.Fatalf("report naming another peer: %v, want %s", err, transport.CodeUnauthorized)
	}
	// A report for an id nobody holds: refused.
	if _, err := leader.handleRPC(ctx, fs[0].Name(), rpcQuotaReport, report(999)); !isUnauthorized(err) {
		t.Fatalf("report naming an unknown id: %v", err)
	}
	// Its own id passes the identity check (whatever the allocator says).
	if _, err := leader.handleRPC(ctx, fs[0].Name(), rpcQuotaReport, report(idOf(fs[0]))); isUnauthorized(err) {
		t.Fatalf("report naming its sender refused: %v", err)
	}
	// Grants pushed by a follower are refused; by the leader, taken.
	g, err := marshal(quota.Grants{Epoch: leader.raftTerm(), Seq: 1, LeaseMs: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs[0].handleRPC(ctx, fs[1].Name(), rpcQuotaGrants, g); !isUnauthorized(err) {
		t.Fatalf("grants from a follower: %v, want %s", err, transport.CodeUnauthorized)
	}
	waitUntil(t, 10*time.Second, "followers know the leader", func() bool { return fs[0].Leader() == leader.Name() })
	if _, err := fs[0].handleRPC(ctx, leader.Name(), rpcQuotaGrants, g); err != nil {
		t.Fatalf("grants from the leader: %v", err)
	}
	// Over the wire, the code survives and maps back to ErrUnauthorized.
	cli := intruder(t, "outsider")
	err = cli.Call(ctx, leader.RaftAddr(), rpcQuotaReport, quotaReportRequest{Peer: idOf(fs[0])}, nil)
	if !errors.Is(fromRPCError(err), ErrUnauthorized) {
		t.Fatalf("report from outside the configuration: %v", err)
	}
}

// TestGarbageEntryIsSkippedEverywhere commits an entry that does not
// decode through real Raft: every peer skips it (it used to panic every
// peer, and again after every restart), keeps running, and the peers still
// agree after the next write.
func TestGarbageEntryIsSkippedEverywhere(t *testing.T) {
	peers := startTrioPeers(t)
	nodes := func() []*Node {
		var out []*Node
		for _, p := range peers {
			out = append(out, p.n)
		}
		return out
	}
	leader, _ := leaderOf(t, nodes())
	f := leader.raft.Apply([]byte{0xff, 1, '{', '}'}, 5*time.Second)
	if err := f.Error(); err != nil {
		t.Fatalf("commit the garbage entry: %v", err)
	}
	resp, _ := f.Response().(error)
	if !errors.Is(resp, fsm.ErrSkippedEntry) {
		t.Fatalf("leader's response to a garbage entry: %v, want ErrSkippedEntry", f.Response())
	}
	garbage := f.Index()
	waitUntil(t, 20*time.Second, "every peer skipped the garbage entry", func() bool {
		for _, n := range nodes() {
			if n.fsm.Skipped() != 1 || n.raft.AppliedIndex() < garbage {
				return false
			}
		}
		return true
	})
	// A follower restarts: Raft replays the entry from its log (far below
	// the snapshot threshold) and it skips it again instead of crashing.
	var follower *trioPeer
	for _, p := range peers {
		if p.n != leader {
			follower = p
			break
		}
	}
	follower.restart(t)
	// AppliedIndex moves when raft hands an entry to the FSM, not when the
	// FSM is done with it, so wait for the skip itself.
	waitUntil(t, 30*time.Second, "the restarted follower replayed past the garbage entry", func() bool {
		return follower.n.raft.AppliedIndex() >= garbage && follower.n.fsm.Skipped() >= 1
	})
	if got := follower.n.fsm.Skipped(); got != 1 {
		t.Fatalf("restarted follower skipped %d entries on replay, want 1 (the garbage entry again)", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var idx uint64
	waitUntil(t, 30*time.Second, "a write after the garbage entry", func() bool {
		res, err := peers[0].n.Apply(ctx, &fsm.PutCluster{Cluster: fsm.Cluster{Name: "after", Bootstrap: []string{"127.0.0.1:1"}}})
		if err != nil {
			t.Logf("apply: %v", err)
			return false
		}
		idx = res.Index
		return true
	})
	for _, n := range nodes() {
		if err := n.WaitIndex(ctx, idx); err != nil {
			t.Fatal(err)
		}
		if s := n.raft.State(); s == raft.Shutdown {
			t.Fatalf("%s shut down", n.Name())
		}
	}
	want := peers[0].n.State()
	if _, ok := want.Cluster("after"); !ok {
		t.Fatalf("the write after the garbage entry is missing: %+v", want.Clusters)
	}
	for _, p := range peers[1:] {
		got := p.n.State()
		if got.Index != want.Index || !reflect.DeepEqual(got.Clusters, want.Clusters) || !reflect.DeepEqual(got.Peers, want.Peers) {
			t.Fatalf("%s disagrees with %s after the garbage entry:\n%+v\n%+v", p.n.Name(), peers[0].n.Name(), got, want)
		}
	}
}

// TestPeerRPCOverTLS: with mutual TLS, a holder of a valid cluster
// certificate gets nothing by its certificate alone. Under its own name it
// is outside the Raft configuration; claiming the leader's name, its
// connection is refused because the certificate does not name it (the CA
// check alone used to let both through).
func TestPeerRPCOverTLS(t *testing.T) {
	pki := newTestCA(t)
	srv, cli := pki.peerTLS(t, "solo")
	n, err := New(Config{
		Name:            "solo",
		DataDir:         filepath.Join(t.TempDir(), "solo"),
		KafkaListen:     "127.0.0.1:0",
		RaftListen:      "127.0.0.1:0",
		GossipListen:    "127.0.0.1:0",
		BootstrapExpect: 1,
		PeerServerTLS:   srv,
		PeerClientTLS:   cli,
		Timing:          FastTiming(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	waitUntil(t, 20*time.Second, "solo leads", n.IsLeader)
	cmd, err := fsm.Encode(&fsm.PutCluster{Cluster: fsm.Cluster{Name: "evil", Bootstrap: []string{"127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	dial := func(name, certName string) *transport.Client {
		s, c := pki.peerTLS(t, certName)
		m, err := transport.Listen(transport.Config{Name: name, BindAddr: "127.0.0.1:0", ServerTLS: s, ClientTLS: c, DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m.Client()
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	// Honest about its name, but no member.
	err = dial("mallory", "mallory").CallPeer(cctx, "solo", n.RaftAddr(), rpcApply, applyRequest{Command: cmd}, nil)
	if !isUnauthorized(err) {
		t.Fatalf("apply from a cluster certificate outside the raft configuration: %v", err)
	}
	// Claims to be the leader with its own certificate.
	err = dial("solo", "mallory").Call(cctx, n.RaftAddr(), rpcApply, applyRequest{Command: cmd}, nil)
	if err == nil || !errors.Is(err, transport.ErrConnLost) {
		t.Fatalf("apply claiming another peer's name: %v, want the connection refused", err)
	}
	if got := n.mux.IdentityRefused(); got != 1 {
		t.Fatalf("IdentityRefused = %d, want 1", got)
	}
	// The peer's own certificate (a real member) is served.
	if err := dial("solo", "solo").CallPeer(cctx, "solo", n.RaftAddr(), rpcState, struct{}{}, nil); err != nil {
		t.Fatalf("state for the member's own certificate: %v", err)
	}
	if _, ok := n.State().Cluster("evil"); ok {
		t.Fatal("a refused write changed the state")
	}
}

// TestForwardedWriteReadable: a write sent to a follower is answered once
// that follower has applied it, so a read sent to it right after the answer
// sees the write (ctl set, then list, through one peer), every time.
func TestForwardedWriteReadable(t *testing.T) {
	nodes := startTrio(t)
	_, fs := leaderOf(t, nodes)
	f := fs[0]
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := f.Apply(ctx, &fsm.PutQuota{Quota: fsm.Quota{Topic: fmt.Sprintf("t%d", i), ProduceBytesPerSec: 1000}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if got := f.State().Index; got < res.Index {
			t.Fatalf("write %d answered at index %d while the follower is at %d", i, res.Index, got)
		}
	}
}
