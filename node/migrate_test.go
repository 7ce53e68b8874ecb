package node

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// migrationEnv is a one-peer node in front of two real in-process Kafka
// clusters (kfake), east and west, with topic orders routed to east.
type migrationEnv struct {
	n          *Node
	east, west *kfake.Cluster
	eastAdm    *kadm.Client
	westAdm    *kadm.Client
}

const migParts = 4

func startMigrationEnv(t *testing.T, westOpts ...kfake.Opt) *migrationEnv {
	t.Helper()
	east, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(migParts, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(east.Close)
	west, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(2)}, westOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(west.Close)

	n, err := New(Config{
		Name:            "solo",
		DataDir:         filepath.Join(t.TempDir(), "solo"),
		KafkaListen:     "127.0.0.1:0",
		AdminListen:     "127.0.0.1:0",
		RaftListen:      "127.0.0.1:0",
		GossipListen:    "127.0.0.1:0",
		BootstrapExpect: 1,
		MetadataRefresh: 500 * time.Millisecond,
		// Below the 10 s fence timeout set here, with its margin.
		WriteLease: 2 * time.Second,
		Timing:     FastTiming(),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Before Run: the driver reads its timing from the leader's goroutines.
	n.migrations.cfg.ServingInterval = 200 * time.Millisecond
	n.migrations.cfg.Retry = 100 * time.Millisecond
	n.migrations.cfg.FenceTimeout = 10 * time.Second
	n.migrations.cfg.DrainTimeout = 10 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	waitUntil(t, 20*time.Second, "the peer leads", n.IsLeader)

	for name, kc := range map[string]*kfake.Cluster{"east": east, "west": west} {
		b, _ := json.Marshal(map[string]any{"bootstrap": kc.ListenAddrs()})
		if code, _, body := call(t, n, "PUT", "/v1/clusters/"+name, "", string(b)); code != 200 {
			t.Fatalf("put cluster %s: %d %s", name, code, body)
		}
	}
	if code, _, body := call(t, n, "PUT", "/v1/default-cluster", "", `{"cluster":"east"}`); code != 200 {
		t.Fatalf("default cluster: %d %s", code, body)
	}
	waitUntil(t, 30*time.Second, "both backends load", func() bool {
		for _, c := range []string{"east", "west"} {
			if _, err := n.migrationBackend(c); err != nil {
				return false
			}
		}
		return true
	})
	admin := func(kc *kfake.Cluster) *kadm.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return kadm.NewClient(cl)
	}
	return &migrationEnv{n: n, east: east, west: west, eastAdm: admin(east), westAdm: admin(west)}
}

// produce writes count records to each partition of topic on kc directly.
func produce(t *testing.T, kc *kfake.Cluster, topic string, perPartition []int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for p, k := range perPartition {
		for i := range k {
			r := &kgo.Record{Partition: int32(p), Value: []byte(fmt.Sprintf("%d-%d", p, i))}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce to %s/%d: %v", topic, p, err)
			}
		}
	}
}

func (e *migrationEnv) migration(t *testing.T, topic string) adminapi.Migration {
	t.Helper()
	code, _, body := call(t, e.n, "GET", "/v1/migrations/"+topic, "", "")
	if code != 200 {
		t.Fatalf("get migration %s: %d %s", topic, code, body)
	}
	var v adminapi.Migration
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("migration %s: %v in %s", topic, err, body)
	}
	return v
}

func (e *migrationEnv) waitMigration(t *testing.T, topic string, state fsm.MigrationState, phase string) adminapi.Migration {
	t.Helper()
	var v adminapi.Migration
	waitUntil(t, 60*time.Second, fmt.Sprintf("the migration of %s is %s/%s", topic, state, phase), func() bool {
		v = e.migration(t, topic)
		if v.State.Terminal() && v.State != state {
			t.Fatalf("migration of %s ended %s: %s", topic, v.State, v.Error)
		}
		return v.State == state && (phase == "" || v.Phase == phase)
	})
	return v
}

// TestMigrationSwitches: a migration started through the API reaches
// switched: the target topic has the source's partitions, the chain's bases
// are the source's high watermarks, the route moved, group offsets were
// copied; finish refuses while a group is behind and ?force=1 finishes.
func TestMigrationSwitches(t *testing.T) {
	e := startMigrationEnv(t, kfake.SeedTopics(1, "other"))
	counts := []int{5, 0, 3, 7}
	produce(t, e.east, "orders", counts)
	ctx := context.Background()
	// g-active has a live member on west (consuming another topic): its
	// offsets cannot be copied there and the migration says so.
	member, err := kgo.NewClient(kgo.SeedBrokers(e.west.ListenAddrs()...), kgo.ConsumerGroup("g-active"), kgo.ConsumeTopics("other"))
	if err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for mctx.Err() == nil {
			member.PollFetches(mctx)
		}
	}()
	t.Cleanup(func() { mcancel(); <-polled; member.Close() })
	waitUntil(t, 30*time.Second, "g-active is stable on west", func() bool {
		gs, err := e.westAdm.DescribeGroups(ctx, "g-active")
		return err == nil && gs["g-active"].State == "Stable"
	})
	// g-behind committed 1 on each partition: behind every non-empty one;
	// g-done is at the end.
	behind, done := kadm.Offsets{}, kadm.Offsets{}
	for p, k := range counts {
		behind.Add(kadm.Offset{Topic: "orders", Partition: int32(p), At: min(1, int64(k)), LeaderEpoch: -1, Metadata: "m"})
		done.Add(kadm.Offset{Topic: "orders", Partition: int32(p), At: int64(k), LeaderEpoch: -1})
	}
	for g, os := range map[string]kadm.Offsets{"g-behind": behind, "g-done": done, "g-active": done} {
		rs, err := e.eastAdm.CommitOffsets(ctx, g, os)
		if err == nil {
			err = rs.Error()
		}
		if err != nil {
			t.Fatalf("commit %s on east: %v", g, err)
		}
	}

	code, _, body := call(t, e.n, "POST", "/v1/migrations", "", `{"topic":"orders","to":"west"}`)
	if code != 202 || !strings.Contains(body, `"from": "east"`) {
		t.Fatalf("start: %d %s", code, body)
	}
	if code, _, body := call(t, e.n, "POST", "/v1/migrations", "", `{"topic":"orders","to":"west"}`); code != 409 {
		t.Fatalf("second start: %d %s, want 409", code, body)
	}
	v := e.waitMigration(t, "orders", fsm.MigrationSwitched, fsm.PhaseServing)
	if !strings.Contains(v.Error, "groups [g-active] not copied: members active on west") {
		t.Errorf("migration error %q, want g-active named", v.Error)
	}

	st := e.n.fsm.State()
	if c, _ := st.RouteFor("orders"); c != "west" {
		t.Errorf("orders routes to %q, want west", c)
	}
	chain := st.Chain("orders")
	if chain == nil || len(chain.Segments) != 2 || chain.Segments[0].Cluster != "east" || chain.Live().Cluster != "west" {
		t.Fatalf("chain %+v", chain)
	}
	for p, k := range counts {
		if got := chain.Live().Starts[p]; got != int64(k) {
			t.Errorf("partition %d starts at %d, want the source high watermark %d", p, got, k)
		}
		if got := chain.Live().Physical[p]; got != 0 {
			t.Errorf("partition %d physical %d, want 0 (new target topic)", p, got)
		}
	}
	if chain.Live().EpochBase < 1 {
		t.Errorf("epoch base %d, want above the source's epochs", chain.Live().EpochBase)
	}
	if len(v.Partitions) != migParts || v.Partitions[3].Base == nil || *v.Partitions[3].Base != 7 {
		t.Errorf("api partitions %+v", v.Partitions)
	}
	tds, err := e.westAdm.ListTopics(ctx, "orders")
	if err != nil || tds["orders"].Err != nil || len(tds["orders"].Partitions) != migParts {
		t.Fatalf("target topic: %v %+v", err, tds["orders"])
	}
	for g, want := range map[string]kadm.Offsets{"g-behind": behind, "g-done": done} {
		got, err := e.westAdm.FetchOffsets(ctx, g)
		if err != nil || got.Error() != nil {
			t.Fatalf("fetch %s on west: %v %v", g, err, got.Error())
		}
		for p := range counts {
			o, ok := got.Lookup("orders", int32(p))
			w, _ := want.Lookup("orders", int32(p))
			if !ok || o.At != w.At || o.Metadata != w.Metadata {
				t.Errorf("group %s partition %d on west: %+v (found %v), want %d %q", g, p, o.Offset, ok, w.At, w.Metadata)
			}
		}
	}
	waitUntil(t, 20*time.Second, "g-behind is listed behind", func() bool {
		v := e.migration(t, "orders")
		return len(v.GroupsBehind) == 1 && v.GroupsBehind[0] == "g-behind"
	})

	if code, _, body := call(t, e.n, "GET", "/metrics", "", ""); code != 200 || !strings.Contains(body, `switchyard_migration_phase{phase="serving",topic="orders"} 1`) {
		t.Errorf("phase gauge missing: %d", code)
	}
	code, _, body = call(t, e.n, "POST", "/v1/migrations/orders/finish", "", "")
	if code != 409 || !strings.Contains(body, `"g-behind"`) || strings.Contains(body, `"g-done"`) {
		t.Fatalf("finish with a group behind: %d %s", code, body)
	}
	if code, _, body := call(t, e.n, "DELETE", "/v1/migrations/orders", "", ""); code != 409 {
		t.Fatalf("abort after the switch: %d %s, want 409", code, body)
	}
	code, _, body = call(t, e.n, "POST", "/v1/migrations/orders/finish?force=1", "", "")
	if code != 200 || !strings.Contains(body, `"state": "finished"`) {
		t.Fatalf("forced finish: %d %s", code, body)
	}
	if !e.n.fsm.State().Chain("orders").Segments[0].Retired {
		t.Error("the source segment is not retired")
	}
	code, _, body = call(t, e.n, "GET", "/metrics", "", "")
	if code != 200 || !strings.Contains(body, "switchyard_migration_fence_seconds_count 1") {
		t.Errorf("fence histogram not observed once: %d", code)
	}
	if strings.Contains(body, `switchyard_migration_phase{`) {
		t.Error("a finished migration still has a phase series")
	}
}

// TestMigrationAPIErrors: bad bodies, unknown topics and clusters, and an
// abort before the switch, which leaves the route as it was.
func TestMigrationAPIErrors(t *testing.T) {
	var hold atomic.Bool
	hold.Store(true)
	e := startMigrationEnv(t)
	// West's controller answers CreateTopics with NOT_CONTROLLER while
	// hold is set: the driver retries prepare, so the migration stays
	// running for the abort.
	e.west.ControlKey(int16(kmsg.CreateTopics), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		e.west.KeepControl()
		if !hold.Load() {
			return nil, nil, false
		}
		req := kreq.(*kmsg.CreateTopicsRequest)
		resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewCreateTopicsResponseTopic()
			st.Topic, st.ErrorCode = rt.Topic, kerr.NotController.Code
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	for _, c := range []struct {
		name, body string
		status     int
		contains   string
	}{
		{"malformed", `{"topic":`, 400, "request body"},
		{"unknown field", `{"topic":"orders","to":"west","x":1}`, 400, "unknown field"},
		{"missing to", `{"topic":"orders"}`, 400, "needs"},
		{"unknown cluster", `{"topic":"orders","to":"north"}`, 404, "north"},
		{"unknown topic", `{"topic":"nosuch","to":"west"}`, 404, "does not exist"},
		{"same cluster", `{"topic":"orders","to":"east"}`, 400, "already on"},
		{"bad topic name", `{"topic":"bad topic","to":"west"}`, 400, "topic"},
	} {
		code, _, body := call(t, e.n, "POST", "/v1/migrations", "", c.body)
		if code != c.status || !strings.Contains(body, c.contains) {
			t.Errorf("%s: %d %s, want %d containing %q", c.name, code, body, c.status, c.contains)
		}
	}
	if code, _, body := call(t, e.n, "GET", "/v1/migrations/orders", "", ""); code != 404 {
		t.Errorf("get before any: %d %s", code, body)
	}
	if code, _, body := call(t, e.n, "POST", "/v1/migrations", "", `{"topic":"orders","to":"west"}`); code != 202 {
		t.Fatalf("start: %d %s", code, body)
	}
	time.Sleep(300 * time.Millisecond) // the driver is retrying prepare
	if v := e.migration(t, "orders"); v.State != fsm.MigrationRunning || v.Phase != fsm.PhasePrepare {
		t.Fatalf("held migration is %s/%s: %s", v.State, v.Phase, v.Error)
	}
	code, _, body := call(t, e.n, "DELETE", "/v1/migrations/orders", "", "")
	if code != 200 || !strings.Contains(body, `"state": "aborted"`) {
		t.Fatalf("abort: %d %s", code, body)
	}
	hold.Store(false)
	time.Sleep(300 * time.Millisecond) // a driver still running would move on
	st := e.n.fsm.State()
	if c, _ := st.RouteFor("orders"); c != "east" || st.Chain("orders") != nil {
		t.Errorf("after abort: route %q, chain %+v", c, st.Chain("orders"))
	}
	if m, _ := st.Migration("orders"); m.State != fsm.MigrationAborted {
		t.Errorf("after abort: %s", m.State)
	}
	code, _, body = call(t, e.n, "GET", "/v1/migrations", "", "")
	if code != 200 || !strings.Contains(body, `"aborted"`) {
		t.Errorf("list: %d %s", code, body)
	}
	// Aborted is terminal: a new migration may start, and runs through.
	if code, _, body := call(t, e.n, "POST", "/v1/migrations", "", `{"topic":"orders","to":"west"}`); code != 202 {
		t.Fatalf("restart: %d %s", code, body)
	}
	e.waitMigration(t, "orders", fsm.MigrationSwitched, fsm.PhaseServing)
}

// TestMigrationFailsOnTargetWithData: a target topic that already holds
// records fails the migration in prepare, with the reason, and nothing
// moves.
func TestMigrationFailsOnTargetWithData(t *testing.T) {
	e := startMigrationEnv(t, kfake.SeedTopics(migParts, "orders"))
	produce(t, e.west, "orders", []int{0, 2})
	code, _, body := call(t, e.n, "POST", "/v1/migrations", "", `{"topic":"orders","to":"west"}`)
	if code != 202 {
		t.Fatalf("start: %d %s", code, body)
	}
	v := e.waitMigration(t, "orders", fsm.MigrationFailed, "")
	if !strings.Contains(v.Error, "holds data") || !strings.Contains(v.Error, "1 (2 records)") {
		t.Errorf("failure reason %q", v.Error)
	}
	if c, _ := e.n.fsm.State().RouteFor("orders"); c != "east" {
		t.Errorf("route moved to %q", c)
	}
}

// TestMigrationFencedRPC: a follower answers the leader's fence question
// from its applied index; a sender outside the cluster is refused.
func TestMigrationFencedRPC(t *testing.T) {
	nodes := startTrio(t)
	leader, followers := leaderOf(t, nodes)
	f := followers[0]
	p, ok := leader.State().PeerByName(f.Name())
	if !ok {
		t.Fatal("follower not registered")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ask := func(index uint64) bool {
		t.Helper()
		var resp migrationFencedResponse
		if err := leader.rpc.CallPeer(ctx, p.Name, p.RaftAddr, rpcMigrationFenced, migrationFencedRequest{Topic: "orders", Index: index}, &resp); err != nil {
			t.Fatalf("ask %d: %v", index, err)
		}
		return resp.Fenced
	}
	idx := leader.State().Index
	waitUntil(t, 20*time.Second, "the follower confirms an applied index", func() bool { return ask(idx) })
	if ask(idx + 1_000_000) {
		t.Error("fenced at an index the follower has not applied")
	}
	var resp migrationFencedResponse
	err := intruder(t, "mallory").Call(ctx, p.RaftAddr, rpcMigrationFenced, migrationFencedRequest{Topic: "orders", Index: 1}, &resp)
	if !isUnauthorized(err) {
		t.Errorf("intruder: %v, want unauthorized", err)
	}
}

// TestMigrationResumesAfterLeaderChange: three peers; the migration is held
// in its fence (the source reports an open transaction) while leadership
// moves; the new leader resumes it from the replicated state and switches.
func TestMigrationResumesAfterLeaderChange(t *testing.T) {
	east, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(east.Close)
	west, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(west.Close)
	produce(t, east, "orders", []int{3, 4})
	var hold atomic.Bool
	hold.Store(true)
	east.ControlKey(int16(kmsg.ListOffsets), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		east.KeepControl()
		req := kreq.(*kmsg.ListOffsetsRequest)
		if !hold.Load() || req.IsolationLevel != 1 {
			return nil, nil, false
		}
		// A last stable offset of 0 below a high watermark above it: an
		// open transaction the drain waits for.
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewListOffsetsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewListOffsetsResponseTopicPartition()
				sp.Partition, sp.Offset, sp.Timestamp = rp.Partition, 0, -1
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	nodes := startTrio(t)
	leader, _ := leaderOf(t, nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for name, kc := range map[string]*kfake.Cluster{"east": east, "west": west} {
		if _, err := leader.Apply(ctx, &fsm.PutCluster{Cluster: fsm.Cluster{Name: name, Bootstrap: kc.ListenAddrs()}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := leader.Apply(ctx, &fsm.SetDefaultCluster{Cluster: "east"}); err != nil {
		t.Fatal(err)
	}
	if _, err := leader.Apply(ctx, &fsm.StartMigration{Topic: "orders", From: "east", To: "west", Partitions: 2, Started: time.Now().UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	phase := func(n *Node) (fsm.MigrationState, string) {
		m, ok := n.State().Migration("orders")
		if !ok {
			return "", ""
		}
		return m.State, m.Phase
	}
	waitUntil(t, 30*time.Second, "the migration is fenced", func() bool {
		s, p := phase(leader)
		if s.Terminal() {
			m, _ := leader.State().Migration("orders")
			t.Fatalf("migration ended %s: %s", s, m.Error)
		}
		return s == fsm.MigrationRunning && p == fsm.PhaseFence
	})
	if err := leader.TransferLeadership(); err != nil {
		t.Fatal(err)
	}
	var next *Node
	waitUntil(t, 20*time.Second, "another leader", func() bool {
		for _, n := range nodes {
			if n != leader && n.IsLeader() {
				next = n
				return true
			}
		}
		return false
	})
	time.Sleep(500 * time.Millisecond)
	if s, p := phase(next); s != fsm.MigrationRunning || p != fsm.PhaseFence {
		t.Fatalf("held migration is %s/%s on the new leader", s, p)
	}
	hold.Store(false)
	waitUntil(t, 30*time.Second, "the new leader switches the migration", func() bool {
		s, p := phase(next)
		if s.Terminal() {
			m, _ := next.State().Migration("orders")
			t.Fatalf("migration ended %s: %s", s, m.Error)
		}
		return s == fsm.MigrationSwitched && p == fsm.PhaseServing
	})
	st := next.State()
	if c := st.Chain("orders"); c == nil || c.Live().Cluster != "west" || c.Live().Starts[0] != 3 || c.Live().Starts[1] != 4 {
		t.Errorf("chain %+v", st.Chain("orders"))
	}
	if c, _ := st.RouteFor("orders"); c != "west" {
		t.Errorf("route %q", c)
	}
}

func TestMigrationTextTruncate(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"plain", 10, "plain"},
		{"a\nb\x00c", 10, "a?b?c"},
		{"bad\xffutf", 10, "bad?utf"},
		{"héllo", 2, "h"},
		{"héllo", 3, "hé"},
	} {
		got := truncate(c.in, c.n)
		if got != c.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
		if err := (&fsm.UpdateMigration{Topic: "t", State: fsm.MigrationFailed, Phase: fsm.PhaseFence, Error: got, At: 1}).Validate(); err != nil {
			t.Errorf("truncate(%q) is refused by the fsm: %v", c.in, err)
		}
	}
}
