package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// testHealth is a health judge without a node: the state and term are
// fixed, the clock is the caller's.
func testHealth(st *fsm.State) *health {
	return &health{cfg: HealthConfig{}.withDefaults(), local: map[string]bool{}, views: map[string]*clusterView{},
		state: func() *fsm.State { return st }, term: func() uint64 { return 1 }}
}

func healthOf(t *testing.T, h *health, now time.Time, cluster string) adminapi.ClusterHealth {
	t.Helper()
	for _, c := range h.status(now) {
		if c.Cluster == cluster {
			return c
		}
	}
	t.Fatalf("no health for %q", cluster)
	return adminapi.ClusterHealth{}
}

// TestHealthJudgement: a majority of fresh reports for down_after makes a
// cluster down; a partial view (one peer of three) or a cut link (one of
// two, no majority) does not; a majority up brings it back at once.
func TestHealthJudgement(t *testing.T) {
	st := &fsm.State{Clusters: []fsm.Cluster{{Name: "east", Bootstrap: []string{"e:1"}, DownAfterMS: 2000}},
		Peers: []fsm.Peer{{ID: 0, Name: "p0"}, {ID: 1, Name: "p1"}, {ID: 2, Name: "p2"}}}
	h := testHealth(st)
	t0 := time.Unix(1_000_000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	report := func(now time.Time, verdicts map[string]bool) {
		for p, up := range verdicts {
			h.record(p, []healthVerdict{{Cluster: "east", Up: up}}, now)
		}
	}
	want := func(now time.Time, state string) {
		t.Helper()
		if got := healthOf(t, h, now, "east"); got.State != state {
			t.Fatalf("at %v: east %+v, want %s", now.Sub(t0), got, state)
		}
	}
	// Partial view: only p0's probe fails, for far longer than down_after.
	for s := range 10 {
		report(at(s), map[string]bool{"p0": false, "p1": true, "p2": true})
		want(at(s), healthUp)
	}
	// Cut link: p2 stops reporting (stale after 3 s), p0 and p1 disagree:
	// no majority either way.
	for s := 10; s < 20; s++ {
		report(at(s), map[string]bool{"p0": false, "p1": true})
		want(at(s), healthUp)
	}
	if got := healthOf(t, h, at(19), "east"); len(got.Peers) != 2 {
		t.Fatalf("stale p2 still listed: %+v", got.Peers)
	}
	// The leader's side of a cut link alone (p0 reporting down, p1 and p2
	// cut off): every report it hears says down, but one of three peers is
	// no majority.
	for s := 20; s < 30; s++ {
		report(at(s), map[string]bool{"p0": false})
		want(at(s), healthUp)
	}
	// A majority says down: down once it has said so for down_after.
	report(at(30), map[string]bool{"p0": false, "p1": false})
	want(at(30), healthUp)
	report(at(31), map[string]bool{"p0": false, "p1": false})
	want(at(31), healthUp)
	report(at(32), map[string]bool{"p0": false, "p1": false})
	want(at(32), healthDown)
	// One peer up again is no majority.
	report(at(33), map[string]bool{"p0": true, "p1": false, "p2": false})
	want(at(33), healthDown)
	// A majority up: up at once, and counting how long.
	report(at(34), map[string]bool{"p0": true, "p1": true, "p2": false})
	want(at(34), healthUp)
	report(at(36), map[string]bool{"p0": true, "p1": true, "p2": false})
	if got := healthOf(t, h, at(36), "east"); got.UpForMS != 2000 {
		t.Fatalf("up for %d ms, want 2000", got.UpForMS)
	}
	// Nobody reports: the cluster keeps its state.
	want(at(70), healthUp)
}

// adminCall serves one admin request on n's handler, in process (the trio
// has no admin listener).
func adminCall(t *testing.T, n *Node, method, path string) (string, int) {
	t.Helper()
	rec := httptest.NewRecorder()
	n.adminHandler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Body.String(), rec.Code
}

// failoverEnv is three peers in front of two kfake clusters, east and
// west, both with topic orders; orders routes to east with fallback west.
type failoverEnv struct {
	peers      []*trioPeer
	east, west *kfake.Cluster
	eastPorts  []int
	eastOpts   []kfake.Opt // east's own options (a data directory), kept across restoreEast
}

func kfakePorts(t *testing.T, kc *kfake.Cluster) []int {
	t.Helper()
	var ports []int
	for _, a := range kc.ListenAddrs() {
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(p)
		ports = append(ports, n)
	}
	return ports
}

func startFailoverEnv(t *testing.T, route fsm.RouteTargets, eastOpts ...kfake.Opt) *failoverEnv {
	t.Helper()
	east, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, "orders", "carts")}, eastOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { east.Close() })
	west, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders", "carts"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(west.Close)
	e := &failoverEnv{east: east, west: west, eastPorts: kfakePorts(t, east), eastOpts: eastOpts}
	e.peers = startTrioPeers(t)
	leader := e.leader(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, c := range []fsm.Cluster{
		{Name: "east", Bootstrap: east.ListenAddrs(), DownAfterMS: 2000, UpAfterMS: 3000},
		{Name: "west", Bootstrap: west.ListenAddrs(), DownAfterMS: 2000, UpAfterMS: 3000},
	} {
		if _, err := leader.Apply(ctx, &fsm.PutCluster{Cluster: c}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := leader.Apply(ctx, &fsm.PutRoute{Topic: "orders", Cluster: "east", RouteTargets: route}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "every peer loads both backends", func() bool {
		for _, p := range e.peers {
			for _, c := range []string{"east", "west"} {
				if _, err := p.n.migrationBackend(c); err != nil {
					return false
				}
			}
		}
		return true
	})
	return e
}

func (e *failoverEnv) nodes() []*Node {
	var out []*Node
	for _, p := range e.peers {
		out = append(out, p.n)
	}
	return out
}

func (e *failoverEnv) leader(t *testing.T) *Node {
	l, _ := leaderOf(t, e.nodes())
	return l
}

func (e *failoverEnv) waitState(t *testing.T, timeout time.Duration, want fsm.FailoverState) {
	t.Helper()
	waitUntil(t, timeout, "east "+string(want)+" on every peer", func() bool {
		for _, p := range e.peers {
			if p.n.State().ClusterFailover("east").State != want {
				return false
			}
		}
		return true
	})
}

// restoreEast starts a new east on the same ports.
func (e *failoverEnv) restoreEast(t *testing.T) {
	t.Helper()
	var err error
	for range 50 { // the old listeners' ports may take a moment to free
		e.east, err = kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.Ports(e.eastPorts...), kfake.SeedTopics(1, "orders", "carts")}, e.eastOpts...)...)
		if err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("restart east on %v: %v", e.eastPorts, err)
}

func (e *failoverEnv) client(t *testing.T) *kgo.Client {
	t.Helper()
	var seeds []string
	for _, p := range e.peers {
		seeds = append(seeds, p.n.KafkaAddr())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic("orders"),
		kgo.MetadataMinAge(100*time.Millisecond), kgo.RecordDeliveryTimeout(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// endOffset is the end offset of orders/0 on kc.
func endOffset(t *testing.T, kc *kfake.Cluster) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	o, ok := ends.Lookup("orders", 0)
	if !ok || o.Err != nil {
		t.Fatalf("end offset of orders/0: %+v", o)
	}
	return o.Offset
}

func produceOne(t *testing.T, cl *kgo.Client, v string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
		t.Fatalf("produce %s through the proxy: %v", v, err)
	}
}

// TestFailoverAndFailback: east is closed → every peer's probe fails → the
// leader fails east over within down_after and a few seconds, and the
// producer's records are acked on west; a new east on the same ports →
// failback after up_after, and records land on east again.
func TestFailoverAndFailback(t *testing.T) {
	e := startFailoverEnv(t, fsm.RouteTargets{Fallback: []string{"west"}})
	cl := e.client(t)
	produceOne(t, cl, "before")
	if got := endOffset(t, e.east); got != 1 {
		t.Fatalf("east end offset %d before failover, want 1", got)
	}
	// Health sees both clusters up on every peer.
	waitUntil(t, 30*time.Second, "health reports from every peer", func() bool {
		hs, err := e.leader(t).healthStatus(context.Background())
		if err != nil {
			return false
		}
		for _, h := range hs {
			if len(h.Peers) != 3 || h.State != healthUp {
				return false
			}
		}
		return true
	})

	start := time.Now()
	e.east.Close()
	e.waitState(t, 60*time.Second, fsm.FailoverMoved)
	t.Logf("failover after %v (down_after 2s)", time.Since(start).Round(100*time.Millisecond))
	if c, _ := e.leader(t).State().RouteFor("orders"); c != "west" {
		t.Fatalf("orders routes to %q after failover, want west", c)
	}
	for i := range 5 {
		produceOne(t, cl, fmt.Sprintf("during-%d", i))
	}
	if got := endOffset(t, e.west); got < 5 {
		t.Fatalf("west end offset %d after failover, want the 5 records acked during it", got)
	}

	e.restoreEast(t)
	t.Cleanup(func() { e.east.Close() })
	start = time.Now()
	e.waitState(t, 60*time.Second, fsm.FailoverActive)
	t.Logf("failback after %v (up_after 3s)", time.Since(start).Round(100*time.Millisecond))
	produceOne(t, cl, "after")
	waitUntil(t, 30*time.Second, "a record on the restored east", func() bool { return endOffset(t, e.east) >= 1 })
}

// TestFailoverManual: POST /v1/failover moves a healthy cluster's routes
// and the automatic driver leaves them; POST /v1/failback brings them back;
// unknown clusters and clusters without a fallback route are refused.
func TestFailoverManual(t *testing.T) {
	e := startFailoverEnv(t, fsm.RouteTargets{Fallback: []string{"west"}})
	var l *Node
	post := func(path string) (int, string) {
		l = e.leader(t)
		body, code := adminCall(t, l, "POST", path)
		return code, body
	}
	if code, body := post("/v1/failover/north"); code != 404 {
		t.Fatalf("failover of an unknown cluster: %d %s", code, body)
	}
	if code, body := post("/v1/failover/west"); code != 409 {
		t.Fatalf("failover of a cluster without a fallback route: %d %s", code, body)
	}
	if code, body := post("/v1/failback/east"); code != 409 {
		t.Fatalf("failback of an active cluster: %d %s", code, body)
	}
	if code, body := post("/v1/failover/east"); code != 200 {
		t.Fatalf("failover: %d %s", code, body)
	}
	e.waitState(t, 30*time.Second, fsm.FailoverMoved)
	body, code := adminCall(t, l, "GET", "/v1/failover")
	var views []adminapi.FailoverEntry
	if err := json.Unmarshal([]byte(body), &views); code != 200 || err != nil {
		t.Fatalf("GET /v1/failover: %d %s", code, body)
	}
	if len(views) != 2 || views[0].Cluster != "east" || views[0].State != fsm.FailoverMoved || views[0].RoutesMoved != 1 || !views[0].Manual {
		t.Fatalf("GET /v1/failover = %+v", views)
	}
	cl := e.client(t)
	produceOne(t, cl, "moved")
	if got := endOffset(t, e.west); got != 1 {
		t.Fatalf("west end offset %d after a manual failover, want 1", got)
	}
	// East is healthy, up for longer than up_after: a manual failover stays.
	time.Sleep(5 * time.Second)
	if s := e.leader(t).State().ClusterFailover("east"); s.State != fsm.FailoverMoved {
		t.Fatalf("the driver undid a manual failover: %+v", s)
	}
	if code, body := post("/v1/failback/east"); code != 200 {
		t.Fatalf("failback: %d %s", code, body)
	}
	e.waitState(t, 30*time.Second, fsm.FailoverActive)
	// The manual active entry turns automatic once health says up.
	waitUntil(t, 30*time.Second, "east automatic again", func() bool {
		return !e.leader(t).State().ClusterFailover("east").Manual
	})
	produceOne(t, cl, "back")
	if got := endOffset(t, e.east); got != 1 {
		t.Fatalf("east end offset %d after failback, want 1", got)
	}
	// GET /v1/health from a follower answers with the leader's view.
	_, followers := leaderOf(t, e.nodes())
	body, code = adminCall(t, followers[0], "GET", "/v1/health")
	var hs []adminapi.ClusterHealth
	if err := json.Unmarshal([]byte(body), &hs); code != 200 || err != nil || len(hs) != 2 {
		t.Fatalf("GET /v1/health on a follower: %d %s", code, body)
	}
}

// TestFailoverLeaderKilled (acceptance 3): the leader is stopped right
// after it proposes a failover; the survivors agree on the routing, and it
// is the old or the new one for every moved route, never a mix.
func TestFailoverLeaderKilled(t *testing.T) {
	e := startFailoverEnv(t, fsm.RouteTargets{Fallback: []string{"west"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := e.leader(t)
	for _, cmd := range []fsm.Command{
		&fsm.PutPrefixRoute{Prefix: "logs.", Cluster: "east", RouteTargets: fsm.RouteTargets{Fallback: []string{"west"}}},
		&fsm.PutGroupRoute{Prefix: "billing-", Cluster: "east", RouteTargets: fsm.RouteTargets{Fallback: []string{"west"}}},
	} {
		if _, err := leader.Apply(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	var lp *trioPeer
	for _, p := range e.peers {
		if p.n == leader {
			lp = p
		}
	}
	go func() {
		// The outcome is unknown to the test: it reads it back.
		_, _ = leader.Apply(context.Background(), &fsm.SetFailover{Entry: fsm.ClusterFailover{
			Cluster: "east", State: fsm.FailoverMoved, Since: time.Now().UnixMilli(), RoutesMoved: 3, Manual: true}})
	}()
	lp.stop()
	var survivors []*Node
	for _, p := range e.peers {
		if p != lp {
			survivors = append(survivors, p.n)
		}
	}
	newLeader, _ := leaderOf(t, survivors)
	// A write in the new term commits whatever the old leader's term left
	// (the failover, if a survivor held it); once both survivors applied
	// it, they hold the same state. Comparing applied indexes alone could
	// pass before either applied the old term's last entries (a loaded CI
	// run read the group route as missing there).
	mark, err := newLeader.Apply(ctx, &fsm.PutPrefixRoute{Prefix: "unrelated.", Cluster: "west"})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the survivors apply the new term's write", func() bool {
		return survivors[0].State().Index >= mark.Index && survivors[1].State().Index >= mark.Index
	})
	routing := func(n *Node) [3]string {
		st := n.State()
		a, _ := st.RouteFor("orders")
		b, _ := st.RouteFor("logs.app")
		c, _ := st.GroupHome("billing-1")
		return [3]string{a, b, c}
	}
	got := routing(survivors[0])
	if got != routing(survivors[1]) {
		t.Fatalf("survivors disagree: %v vs %v", got, routing(survivors[1]))
	}
	if got != [3]string{"east", "east", "east"} && got != [3]string{"west", "west", "west"} {
		t.Fatalf("mixed routing after a leader kill during failover: %v", got)
	}
	t.Logf("routing after the leader kill: %v", got)
}

// TestFailoverResumePolicies: a group that committed orders (resume
// timestamp) and carts (resume latest) through the proxy on east resumes
// on west, after a failover, at the first record since its last commit
// minus the safety window, and at the end.
func TestFailoverResumePolicies(t *testing.T) {
	e := startFailoverEnv(t, fsm.RouteTargets{Fallback: []string{"west"}, Resume: fsm.ResumeTimestamp})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := e.leader(t)
	for _, cmd := range []fsm.Command{
		&fsm.PutRoute{Topic: "carts", Cluster: "east", RouteTargets: fsm.RouteTargets{Fallback: []string{"west"}, Resume: fsm.ResumeLatest}},
		&fsm.SetDefaultCluster{Cluster: "east"},
	} {
		if _, err := leader.Apply(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	// Every peer routes carts before the commit below: the one that
	// serves it may be a follower, and one that lags (a loaded run) routes
	// carts nowhere and answers UNKNOWN_TOPIC_ID.
	applied := leader.State().Index
	waitUntil(t, 30*time.Second, "every peer applies the routes", func() bool {
		for _, p := range e.peers {
			if p.n.State().Index < applied {
				return false
			}
		}
		return true
	})
	// West's copies: orders has 3 old records then 2 recent ones, carts 4.
	wcl, err := kgo.NewClient(kgo.SeedBrokers(e.west.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer wcl.Close()
	old := time.Now().Add(-10 * time.Minute)
	for i := range 5 {
		r := &kgo.Record{Topic: "orders", Value: []byte(fmt.Sprint(i))}
		if i < 3 {
			r.Timestamp = old
		}
		if err := wcl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		if err := wcl.ProduceSync(ctx, &kgo.Record{Topic: "carts", Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// The group commits both topics through the proxy (to east).
	var seeds []string
	for _, p := range e.peers {
		seeds = append(seeds, p.n.KafkaAddr())
	}
	pcl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "orders", Partition: 0, At: 0, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: "carts", Partition: 0, At: 0, LeaderEpoch: -1})
	resp, err := kadm.NewClient(pcl).CommitOffsets(ctx, "g1", offs)
	if err := errors.Join(err, resp.Error()); err != nil {
		t.Fatalf("commit through the proxy: %v", err)
	}
	code, body := 0, ""
	waitUntil(t, 30*time.Second, "the manual failover answers", func() bool {
		body, code = adminCall(t, e.leader(t), "POST", "/v1/failover/east")
		return code != 503
	})
	if code != 200 {
		t.Fatalf("failover: %d %s", code, body)
	}
	fetched, err := kadm.NewClient(wcl).FetchOffsets(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"orders": 3, "carts": 4}
	for topic, at := range want {
		o, ok := fetched.Lookup(topic, 0)
		if !ok || o.Err != nil || o.At != at {
			t.Errorf("g1 on west for %s/0: %+v, want offset %d", topic, o, at)
		}
	}
}

// TestFailoverDownWithoutFallback: a cluster no route can move off is
// recorded down (its routes stay) and becomes active when it is back; a
// manual failover of it is refused.
func TestFailoverDownWithoutFallback(t *testing.T) {
	e := startFailoverEnv(t, fsm.RouteTargets{})
	e.east.Close()
	e.waitState(t, 60*time.Second, fsm.FailoverDown)
	if c, _ := e.leader(t).State().RouteFor("orders"); c != "east" {
		t.Fatalf("orders routes to %q with east down and no fallback, want east", c)
	}
	if body, code := adminCall(t, e.leader(t), "POST", "/v1/failover/east"); code != 409 {
		t.Fatalf("manual failover without a fallback route: %d %s", code, body)
	}
	e.restoreEast(t)
	t.Cleanup(func() { e.east.Close() })
	e.waitState(t, 60*time.Second, fsm.FailoverActive)
}

// TestFailoverCutsWaitingRequests: east stops answering without closing
// its connections (every request it receives waits, as behind a dead
// host); a produce sent then is stuck on the proxy's connection to east.
// When health fails east over, every peer cuts its client connections to
// east, so the produce is answered and retried on west within seconds,
// although the client would wait two minutes on its own.
func TestFailoverCutsWaitingRequests(t *testing.T) {
	e := startFailoverEnv(t, fsm.RouteTargets{Fallback: []string{"west"}})
	var seeds []string
	for _, p := range e.peers {
		seeds = append(seeds, p.n.KafkaAddr())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic("orders"),
		kgo.MetadataMinAge(100*time.Millisecond), kgo.RecordDeliveryTimeout(5*time.Minute),
		kgo.ProduceRequestTimeout(time.Minute), kgo.RequestTimeoutOverhead(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produceOne(t, cl, "before")
	thaw := make(chan struct{})
	var thawOnce sync.Once
	thawEast := func() { thawOnce.Do(func() { close(thaw) }) }
	defer thawEast()
	e.east.Control(func(kmsg.Request) (kmsg.Response, error, bool) {
		e.east.KeepControl()
		e.east.SleepControl(func() { <-thaw })
		return nil, nil, false
	})
	sent := time.Now()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		done <- cl.ProduceSync(ctx, &kgo.Record{Value: []byte("stuck")}).FirstErr()
	}()
	e.waitState(t, 60*time.Second, fsm.FailoverMoved)
	failedOver := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the produce sent as east stopped answering failed: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the produce sent as east stopped answering is still waiting 30 s after the failover (sent %v before it)", failedOver.Sub(sent).Round(time.Millisecond))
	}
	t.Logf("acknowledged %v after it was sent, %v after the failover", time.Since(sent).Round(time.Millisecond), time.Since(failedOver).Round(time.Millisecond))
	if got := endOffset(t, e.west); got != 1 {
		t.Fatalf("west end offset %d, want the 1 record produced while east hung", got)
	}
}
