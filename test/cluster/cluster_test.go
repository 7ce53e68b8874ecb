package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/node"
)

func route(topic string) *fsm.PutRoute { return &fsm.PutRoute{Topic: topic, Cluster: "main"} }

// putRoutes applies n routes named prefix-0.. through peer via and returns
// the last index.
func putRoutes(c *testCluster, via int, prefix string, n int) uint64 {
	var idx uint64
	for k := range n {
		idx = c.apply(via, route(fmt.Sprintf("%s-%d", prefix, k)), 20*time.Second)
	}
	return idx
}

// hasRoutes checks peer i's state holds every route prefix-0..n-1.
func hasRoutes(c *testCluster, i int, prefix string, n int) error {
	st := c.peers[i].n.State()
	for k := range n {
		topic := fmt.Sprintf("%s-%d", prefix, k)
		if cl, m := st.RouteFor(topic); m.Kind != fsm.MatchExact || cl != "main" {
			return fmt.Errorf("%s: no exact route for %s (got %q %v)", c.peers[i].name, topic, cl, m)
		}
	}
	return nil
}

func setupMain(c *testCluster) {
	c.apply(0, &fsm.PutCluster{Cluster: fsm.Cluster{Name: "main", Bootstrap: []string{"127.0.0.1:1"}}}, 20*time.Second)
}

// TestLeaderKilled: with 3 and with 5 peers, killing the leader leaves a
// cluster that elects a new leader and accepts writes through any peer.
func TestLeaderKilled(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			c := newCluster(t, clusterOpts{peers: size})
			old := c.leader(20 * time.Second)
			setupMain(c)
			idx := putRoutes(c, old, "before", 5)
			c.waitApplied(idx, 10*time.Second)
			waitFor(t, 10*time.Second, "every peer a voter or non-voter", func() error { return raftMembers(c, size) })
			killed := time.Now()
			c.stop(old)
			via := (old + 1) % size
			idx = c.apply(via, route("after"), 20*time.Second)
			t.Logf("%d peers: leader killed → first accepted write in %v", size, time.Since(killed).Round(time.Millisecond))
			c.waitApplied(idx, 10*time.Second)
			nl := c.leader(10 * time.Second)
			if nl == old {
				t.Fatalf("the killed peer %d still leads", old)
			}
			for _, i := range c.running() {
				if err := hasRoutes(c, i, "before", 5); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// raftMembers checks the leader's status lists want peers in Raft, with
// the voter count the reconcile loop aims for.
func raftMembers(c *testCluster, want int) error {
	l := c.leader(10 * time.Second)
	st := c.peers[l].n.State()
	if len(st.Peers) != want {
		return fmt.Errorf("%d peers registered, want %d", len(st.Peers), want)
	}
	var s struct {
		Raft struct{ Voters, Nonvoters int }
	}
	if err := getJSON(c.peers[l].admin, "/v1/status", &s); err != nil {
		return err
	}
	wantVoters := 3
	if want >= 5 {
		wantVoters = 5
	} else if want < 3 {
		wantVoters = want
	}
	if s.Raft.Voters != wantVoters || s.Raft.Voters+s.Raft.Nonvoters != want {
		return fmt.Errorf("raft has %d voters and %d non-voters, want %d voters of %d", s.Raft.Voters, s.Raft.Nonvoters, wantVoters, want)
	}
	return nil
}

// TestFollowerPartitionedThenHealed: a follower cut off from the others
// cannot write (no leader), the majority goes on writing, and once healed
// the follower catches up with every write.
func TestFollowerPartitionedThenHealed(t *testing.T) {
	c := newCluster(t, clusterOpts{peers: 3})
	l := c.leader(20 * time.Second)
	setupMain(c)
	f := (l + 1) % 3
	c.faults.Isolate(c.peers[f].name)
	idx := putRoutes(c, l, "during", 20)
	// The isolated follower knows no leader once its heartbeat times out,
	// and its writes fail with no-leader rather than hang.
	waitFor(t, 10*time.Second, "isolated follower refuses writes", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := c.peers[f].n.Apply(ctx, route("from-isolated"))
		if errors.Is(err, node.ErrNoLeader) {
			return nil
		}
		return fmt.Errorf("apply via isolated follower: %v", err)
	})
	if c.peers[f].n.State().Index >= idx {
		t.Fatalf("isolated follower applied index %d while cut off", idx)
	}
	// Stay cut off until gossip declares the follower dead: memberlist
	// never probes a dead member again, so this covers the reconnect path.
	waitFor(t, 20*time.Second, "gossip declares the isolated follower dead", func() error {
		return gossipState(c, l, c.peers[f].name, "dead")
	})
	if c.peers[l].n.Live(mustID(t, c, f)) {
		t.Fatal("the data plane still presents a peer gossip declared dead")
	}
	c.faults.Heal()
	waitFor(t, 20*time.Second, "the healed follower alive again", func() error {
		return gossipState(c, l, c.peers[f].name, "alive")
	})
	c.waitApplied(idx, 20*time.Second)
	if err := hasRoutes(c, f, "during", 20); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.peers[f].n.State().RouteFor("from-isolated"); ok.Kind == fsm.MatchExact {
		t.Fatal("a write refused while isolated was applied later")
	}
}

// TestLateJoinerGetsSnapshot: a peer that joins after the log was compacted
// is brought up to date by a snapshot and then serves the full state.
func TestLateJoinerGetsSnapshot(t *testing.T) {
	c := newCluster(t, clusterOpts{peers: 3})
	l := c.leader(20 * time.Second)
	setupMain(c)
	// Raft compacts the log right after it records a snapshot, in the
	// snapshot goroutine; a second snapshot proves the first compaction is
	// done, so the joiner cannot be served from the log.
	n := int(c.timing.SnapshotThreshold) * 2
	putRoutes(c, l, "early", n)
	var first uint64
	waitFor(t, 30*time.Second, "a snapshot on the leader", func() error {
		if first = snapshotIndex(c, l); first == 0 {
			return errors.New("no snapshot yet")
		}
		return nil
	})
	idx := putRoutes(c, l, "later", n)
	waitFor(t, 30*time.Second, "a second snapshot on the leader", func() error {
		if s := snapshotIndex(c, l); s <= first {
			return fmt.Errorf("snapshot still at %d", s)
		}
		return nil
	})
	joined := time.Now()
	c.peers = append(c.peers, c.newPeer(t.TempDir(), 3, 0))
	// The joiner never takes a snapshot of its own (its threshold is out of
	// reach), so any snapshot it records was installed from the leader.
	shared := c.timing
	c.timing.SnapshotThreshold = 1 << 40
	c.start(3, 0)
	c.timing = shared
	c.waitApplied(idx, 30*time.Second)
	t.Logf("late joiner applied index %d in %v", idx, time.Since(joined).Round(time.Millisecond))
	if err := hasRoutes(c, 3, "early", n); err != nil {
		t.Fatal(err)
	}
	if err := hasRoutes(c, 3, "later", n); err != nil {
		t.Fatal(err)
	}
	// Four peers: three voters and one non-voter.
	waitFor(t, 20*time.Second, "3 voters and a non-voter", func() error { return raftMembers(c, 4) })
	// Raft hands the snapshot to the FSM before it records it as its last
	// snapshot, so the state can be complete a moment before the stats say
	// how it got there.
	waitFor(t, 20*time.Second, "the late joiner to record the installed snapshot", func() error {
		if s := snapshotIndex(c, 3); s == 0 {
			return fmt.Errorf("caught up without installing a snapshot; the test no longer covers snapshot install: %v leader %v", c.peers[3].n.RaftStats(), c.peers[l].n.RaftStats())
		}
		return nil
	})
}

func snapshotIndex(c *testCluster, i int) uint64 {
	v, _ := strconv.ParseUint(c.peers[i].n.RaftStats()["last_snapshot_index"], 10, 64)
	return v
}

// TestRestartAllFromDisk: every acknowledged write survives stopping and
// starting every peer on its data directory.
func TestRestartAllFromDisk(t *testing.T) {
	c := newCluster(t, clusterOpts{peers: 3})
	l := c.leader(20 * time.Second)
	setupMain(c)
	idx := putRoutes(c, l, "kept", 100)
	c.stopAll()
	for i := range c.peers {
		c.start(i, 3)
	}
	c.leader(30 * time.Second)
	c.waitApplied(idx, 30*time.Second)
	for i := range c.peers {
		if err := hasRoutes(c, i, "kept", 100); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConcurrentWritesFromEveryPeer: writes sent at once through every
// peer all land, each exactly once (one log index per acknowledged write).
func TestConcurrentWritesFromEveryPeer(t *testing.T) {
	c := newCluster(t, clusterOpts{peers: 5})
	c.leader(20 * time.Second)
	setupMain(c)
	const per = 20
	var mu sync.Mutex
	indexes := map[uint64]string{}
	var wg sync.WaitGroup
	for i := range c.peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range per {
				topic := fmt.Sprintf("w-%d-%d", i, k)
				// Generous: on a busy machine five peers may need several
				// elections; a write must still land, once.
				idx := c.apply(i, route(topic), 60*time.Second)
				mu.Lock()
				if other, dup := indexes[idx]; dup {
					t.Errorf("writes %s and %s acknowledged at the same index %d", other, topic, idx)
				}
				indexes[idx] = topic
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var last uint64
	for idx := range indexes {
		last = max(last, idx)
	}
	c.waitApplied(last, 20*time.Second)
	for _, i := range c.running() {
		st := c.peers[i].n.State()
		if got := len(st.Routes.Topics); got != len(c.peers)*per {
			t.Fatalf("%s holds %d routes, want %d", c.peers[i].name, got, len(c.peers)*per)
		}
		for p := range c.peers {
			if err := hasRoutes(c, i, fmt.Sprintf("w-%d", p), per); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestQuorumLost: with two of three peers gone, writes answer 503 through
// the admin API and the surviving peer's data plane keeps serving a real
// client's reads on the last state it applied, presenting only itself. It
// refuses Produce once its write lease runs out: it cannot tell a cluster
// without quorum from a majority it is cut off from, which may be switching
// a migration (node/lease.go).
func TestQuorumLost(t *testing.T) {
	c := newCluster(t, clusterOpts{peers: 3, brokers: 3})
	c.leader(20 * time.Second)
	idx := c.putBackend(0)
	c.waitApplied(idx, 10*time.Second)
	survivor := 2
	waitFor(t, 20*time.Second, "survivor ready", c.peers[survivor].n.Ready)
	produceN(t, c.peers[survivor].kafka, "no-quorum", 200)
	c.stop(0)
	c.stop(1)
	waitFor(t, 20*time.Second, "503 for a write without quorum", func() error {
		code, body := put(c.peers[survivor].admin, "/v1/routes/late", `{"cluster":"main"}`)
		if code != http.StatusServiceUnavailable {
			return fmt.Errorf("PUT answered %d %s", code, body)
		}
		if !strings.Contains(body, "leader") {
			return fmt.Errorf("503 without a reason: %s", body)
		}
		return nil
	})
	if code, _ := get(c.peers[survivor].admin, "/v1/routes"); code != http.StatusOK {
		t.Fatalf("local read without quorum answered %d", code)
	}
	if code, _ := get(c.peers[survivor].admin, "/v1/routes?consistent=1"); code != http.StatusServiceUnavailable {
		t.Fatalf("consistent read without quorum answered %d, want 503", code)
	}
	// Gossip declares the others dead, and the survivor presents every
	// partition itself.
	adm := kadmClient(t, c.peers[survivor].kafka)
	waitFor(t, 30*time.Second, "metadata presents only the survivor", func() error {
		return presentsOnly(adm, c.peers[survivor].n)
	})
	waitFor(t, 30*time.Second, "the survivor's write lease lapses", func() error {
		if _, body := get(c.peers[survivor].admin, "/metrics"); !strings.Contains(body, "switchyard_write_lease_valid 0") {
			return errors.New("switchyard_write_lease_valid is not 0")
		}
		return nil
	})
	p, err := kgo.NewClient(kgo.SeedBrokers(c.peers[survivor].kafka), kgo.DefaultProduceTopic("no-quorum"), kgo.RecordDeliveryTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer pcancel()
	if err := p.ProduceSync(pctx, &kgo.Record{Value: []byte("late")}).FirstErr(); err == nil {
		t.Fatal("a peer without quorum, past its write lease, accepted a Produce")
	}
	p.Close()
	consumeN(t, c.peers[survivor].kafka, "no-quorum", 200)
}

// TestDeadPeerLeavesMetadata: a killed peer disappears from Metadata, its
// partitions move to live peers, clients keep working, and after
// DeadPeerTimeout the leader removes it from Raft.
func TestDeadPeerLeavesMetadata(t *testing.T) {
	c := newCluster(t, clusterOpts{peers: 3, brokers: 3})
	c.leader(20 * time.Second)
	idx := c.putBackend(0)
	c.waitApplied(idx, 10*time.Second)
	for _, i := range c.running() {
		waitFor(t, 20*time.Second, "ready", c.peers[i].n.Ready)
	}
	produceConsume(t, c.peers[0].kafka, "before-kill", 100)
	victim := 2
	if c.peers[victim].n.IsLeader() {
		victim = 1
	}
	c.stop(victim)
	live := []int{0, 1, 2}
	live = slices.DeleteFunc(live, func(i int) bool { return i == victim })
	adm := kadmClient(t, c.peers[live[0]].kafka)
	waitFor(t, 30*time.Second, "dead peer gone from metadata", func() error {
		md, err := adm.Metadata(context.Background())
		if err != nil {
			return err
		}
		victimID, _ := idOf(c, victim)
		for _, b := range md.Brokers {
			if b.NodeID == victimID {
				return fmt.Errorf("broker %d (the dead peer) still listed", victimID)
			}
		}
		for _, td := range md.Topics {
			for _, p := range td.Partitions {
				if p.Leader == victimID {
					return fmt.Errorf("%s/%d still led by the dead peer", td.Topic, p.Partition)
				}
			}
		}
		return nil
	})
	produceConsume(t, c.peers[live[1]].kafka, "after-kill", 100)
	l := c.leader(10 * time.Second)
	waitFor(t, 30*time.Second, "dead peer removed from raft", func() error {
		servers := c.peers[l].n.RaftServers()
		if slices.Contains(servers, c.peers[victim].name) {
			return fmt.Errorf("raft still has %v", servers)
		}
		return nil
	})
	// It keeps its broker id: a returning peer gets the same one back.
	if _, ok := c.peers[l].n.State().PeerByName(c.peers[victim].name); !ok {
		t.Fatal("the dead peer's entry (its broker id) was dropped")
	}
}

// gossipState checks how peer via's admin API reports name's gossip state.
func gossipState(c *testCluster, via int, name, want string) error {
	var ps struct {
		Peers []struct{ Name, Gossip string }
	}
	if err := getJSON(c.peers[via].admin, "/v1/peers", &ps); err != nil {
		return err
	}
	for _, p := range ps.Peers {
		if p.Name == name {
			if p.Gossip != want {
				return fmt.Errorf("%s is %s", name, p.Gossip)
			}
			return nil
		}
	}
	return fmt.Errorf("%s not listed", name)
}

func mustID(t testing.TB, c *testCluster, i int) int32 {
	t.Helper()
	id, ok := idOf(c, i)
	if !ok {
		t.Fatalf("%s has no broker id", c.peers[i].name)
	}
	return id
}

func idOf(c *testCluster, i int) (int32, bool) {
	for _, j := range c.running() {
		if p, ok := c.peers[j].n.State().PeerByName(c.peers[i].name); ok {
			return p.ID, true
		}
	}
	return -1, false
}

func kadmClient(t testing.TB, addr string) *kadm.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// presentsOnly checks Metadata lists only n as a broker and as every
// partition's leader.
func presentsOnly(adm *kadm.Client, n *node.Node) error {
	id, ok := n.ID()
	if !ok {
		return errors.New("peer has no id")
	}
	md, err := adm.Metadata(context.Background())
	if err != nil {
		return err
	}
	if len(md.Brokers) != 1 || md.Brokers[0].NodeID != id {
		return fmt.Errorf("brokers %v, want only %d", md.Brokers.NodeIDs(), id)
	}
	for _, td := range md.Topics {
		for _, p := range td.Partitions {
			if p.Leader != id {
				return fmt.Errorf("%s/%d led by %d", td.Topic, p.Partition, p.Leader)
			}
		}
	}
	return nil
}

// produceConsume produces n records to topic through addr with acks=all
// and reads them all back.
func produceConsume(t testing.TB, addr, topic string, n int) {
	t.Helper()
	produceN(t, addr, topic, n)
	consumeN(t, addr, topic, n)
}

// produceN writes the values 0..n-1 to topic through addr.
func produceN(t testing.TB, addr, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
		kgo.RecordRetries(20), kgo.RetryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for k := range n {
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(k))}).FirstErr(); err != nil {
			t.Fatalf("produce %d to %s via %s: %v", k, topic, addr, err)
		}
	}
}

// consumeN reads topic from the start through addr until it has seen the
// values 0..n-1.
func consumeN(t testing.TB, addr, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]bool{}
	for len(seen) < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d from %s via %s", len(seen), n, topic, addr)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
}

// TestFollowerForwardsOrRedirects: a write sent to a follower's admin API
// is forwarded to the leader (200, applied everywhere); with ?redirect=1 the
// follower answers 307 to the leader's admin API instead, and
// ?consistent=1 reads through the leader.
func TestFollowerForwardsOrRedirects(t *testing.T) {
	c := newCluster(t, clusterOpts{peers: 3})
	l := c.leader(20 * time.Second)
	setupMain(c)
	f := (l + 1) % 3
	code, body := put(c.peers[f].admin, "/v1/routes/forwarded", `{"cluster":"main"}`)
	if code != http.StatusOK {
		t.Fatalf("PUT via follower: %d %s", code, body)
	}
	waitFor(t, 10*time.Second, "forwarded write applied on the leader", func() error {
		if _, m := c.peers[l].n.State().RouteFor("forwarded"); m.Kind != fsm.MatchExact {
			return errors.New("not yet")
		}
		return nil
	})
	req, _ := http.NewRequest(http.MethodPut, "http://"+c.peers[f].admin+"/v1/routes/redirected?redirect=1", strings.NewReader(`{"cluster":"main"}`))
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "http://" + c.peers[l].admin + "/v1/routes/redirected?redirect=1"; resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("redirect: %d to %q, want 307 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	if _, m := c.peers[l].n.State().RouteFor("redirected"); m.Kind == fsm.MatchExact {
		t.Fatal("a redirected write was applied by the follower")
	}
	if code, body := get(c.peers[f].admin, "/v1/routes/forwarded?consistent=1"); code != http.StatusOK || !strings.Contains(body, `"exact"`) {
		t.Fatalf("consistent read via follower: %d %s", code, body)
	}
}

// TestWritesReachFollowersAtOnce: with a commit timeout far longer than
// the test (so no idle AppendEntries comes), each write still reaches
// every follower's state promptly: the leader nudges the followers with a
// barrier once the write committed (node/nudge.go). Without the nudge a
// follower learns a write's commit only from the next write or the commit
// timeout, and the first wait fails.
func TestWritesReachFollowersAtOnce(t *testing.T) {
	timing := testTiming()
	timing.RaftCommitTimeout = 10 * time.Minute
	c := newCluster(t, clusterOpts{peers: 3, timing: &timing})
	l := c.leader(30 * time.Second)
	setupMain(c)
	reachesAll := func(what string, idx uint64) {
		t.Helper()
		for i, p := range c.peers {
			if p.n == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := p.n.WaitIndex(ctx, idx)
			cancel()
			if err != nil {
				t.Fatalf("%s (index %d) not applied on peer %d within 10 s: %v", what, idx, i, err)
			}
		}
	}
	for k := range 20 {
		idx := c.apply(l, route(fmt.Sprintf("nudge-%d", k)), 20*time.Second)
		reachesAll(fmt.Sprintf("write %d through the leader", k), idx)
	}
	// Through a follower: forwarded, then read back there (readYourWrite).
	f := (l + 1) % len(c.peers)
	idx := c.apply(f, route("nudge-forwarded"), 20*time.Second)
	reachesAll("a write forwarded by a follower", idx)
}
