package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// produceAt writes count records to each partition of topic on kc
// directly, record i of a partition stamped at base + i seconds.
func produceAt(t *testing.T, kc *kfake.Cluster, topic string, perPartition []int, base time.Time) {
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
			r := &kgo.Record{Partition: int32(p), Value: []byte(fmt.Sprintf("%d-%d", p, i)), Timestamp: base.Add(time.Duration(i) * time.Second)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce to %s/%d: %v", topic, p, err)
			}
		}
	}
}

// proxyClient is a franz-go client of the peer's Kafka listener.
func proxyClient(t *testing.T, n *Node, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(n.kafkaAdvertise)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func getGroupView(t *testing.T, n *Node, group string) (int, adminapi.Group, string) {
	t.Helper()
	code, _, body := call(t, n, "GET", "/v1/groups/"+group, "", "")
	var v adminapi.Group
	if code == 200 {
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("group %s: %v in %s", group, err, body)
		}
	}
	return code, v, body
}

// TestGroupResetTargetsAndViews: one peer in front of two clusters;
// "orders" starts on east and is migrated to west (so its offsets are
// virtual: the west segment starts at the east high watermarks), "payments"
// lives on west. A reset's targets resolve through the peer's own data
// plane for every kind of target, across both clusters and the migration,
// and bad input is refused with the errors the API maps to 400 and 404.
// The group views show members, committed offsets, log end offsets and lag.
func TestGroupResetTargetsAndViews(t *testing.T) {
	e := startMigrationEnv(t, kfake.SeedTopics(2, "payments"))
	n := e.n
	ctx := context.Background()
	if code, _, body := call(t, n, "PUT", "/v1/routes/payments", "", `{"cluster":"west"}`); code != 200 {
		t.Fatalf("route payments: %d %s", code, body)
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	east := []int{10, 0, 4, 6}
	produceAt(t, e.east, "orders", east, base)
	produceAt(t, e.west, "payments", []int{5, 5}, base)

	if code, _, body := call(t, n, "POST", "/v1/migrations", "", `{"topic":"orders","to":"west"}`); code != 202 {
		t.Fatalf("start migration: %d %s", code, body)
	}
	e.waitMigration(t, "orders", fsm.MigrationSwitched, fsm.PhaseServing)
	// Three more records per partition through the proxy: onto west, at
	// virtual offsets from the east high watermark on.
	pc := proxyClient(t, n, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DefaultProduceTopic("orders"))
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	for p := range east {
		for i := range 3 {
			r := &kgo.Record{Partition: int32(p), Value: []byte(fmt.Sprintf("new-%d-%d", p, i))}
			if err := pc.ProduceSync(pctx, r).FirstErr(); err != nil {
				t.Fatalf("produce through the proxy to orders/%d: %v", p, err)
			}
		}
	}
	ends := []int64{13, 3, 7, 9}

	// g1 commits through the proxy: virtual offsets on orders, plain ones
	// on payments.
	adm := kadm.NewClient(proxyClient(t, n))
	commit := kadm.Offsets{}
	commit.Add(kadm.Offset{Topic: "orders", Partition: 0, At: 2, LeaderEpoch: -1})
	commit.Add(kadm.Offset{Topic: "orders", Partition: 2, At: 5, LeaderEpoch: -1})
	commit.Add(kadm.Offset{Topic: "payments", Partition: 0, At: 3, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(pctx, "g1", commit); err != nil {
		t.Fatalf("commit g1: %v", err)
	}

	resolve := func(topics []string, parts map[string][]int32, to fsm.ResetTo) ([]fsm.ResetTarget, error) {
		rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		return n.resolveResetTargets(rctx, "g1", topics, parts, to)
	}
	orders := func(news ...int64) []fsm.ResetTarget {
		old := []int64{2, -1, 5, -1}
		var out []fsm.ResetTarget
		for p, v := range news {
			out = append(out, fsm.ResetTarget{Topic: "orders", Partition: int32(p), Old: old[p], New: v})
		}
		return out
	}
	ms := func(d time.Duration) int64 { return base.Add(d).UnixMilli() }
	for _, c := range []struct {
		name  string
		to    fsm.ResetTo
		parts map[string][]int32
		want  []fsm.ResetTarget
	}{
		{"earliest", fsm.ResetTo{Kind: fsm.ResetToEarliest}, nil, orders(0, 0, 0, 0)},
		{"latest", fsm.ResetTo{Kind: fsm.ResetToLatest}, nil, orders(ends...)},
		// The first record at or after base+5s: offset 5 on east where
		// there is one; the first west record (stamped now) where east has
		// none that late: its virtual offset is the east high watermark.
		{"timestamp", fsm.ResetTo{Kind: fsm.ResetToTimestamp, Value: ms(5 * time.Second)}, nil, orders(5, 0, 4, 5)},
		{"timestamp in the future", fsm.ResetTo{Kind: fsm.ResetToTimestamp, Value: time.Now().Add(time.Hour).UnixMilli()}, nil, orders(ends...)},
		{"offset clamped", fsm.ResetTo{Kind: fsm.ResetToOffset, Value: 8}, nil, orders(8, 3, 7, 8)},
		{"shift back", fsm.ResetTo{Kind: fsm.ResetToShift, Value: -1}, map[string][]int32{"orders": {2, 0}},
			[]fsm.ResetTarget{{Topic: "orders", Partition: 0, Old: 2, New: 1}, {Topic: "orders", Partition: 2, Old: 5, New: 4}}},
		{"shift clamped", fsm.ResetTo{Kind: fsm.ResetToShift, Value: 100}, map[string][]int32{"orders": {0, 2}},
			[]fsm.ResetTarget{{Topic: "orders", Partition: 0, Old: 2, New: 13}, {Topic: "orders", Partition: 2, Old: 5, New: 7}}},
		{"shift clamped low", fsm.ResetTo{Kind: fsm.ResetToShift, Value: -100}, map[string][]int32{"orders": {0}},
			[]fsm.ResetTarget{{Topic: "orders", Partition: 0, Old: 2, New: 0}}},
	} {
		got, err := resolve([]string{"orders"}, c.parts, c.to)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: targets\n %+v\nwant\n %+v", c.name, got, c.want)
		}
	}

	// Two clusters, topics given unsorted and repeated.
	got, err := resolve([]string{"payments", "orders", "payments"}, map[string][]int32{"payments": {1, 0}}, fsm.ResetTo{Kind: fsm.ResetToLatest})
	want := append(orders(ends...), fsm.ResetTarget{Topic: "payments", Partition: 0, Old: 3, New: 5}, fsm.ResetTarget{Topic: "payments", Partition: 1, Old: -1, New: 5})
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("two topics: %+v %v\nwant %+v", got, err, want)
	}
	if err := (&fsm.StartOffsetReset{Group: "g1", Topics: []string{"orders", "payments"}, To: fsm.ResetTo{Kind: fsm.ResetToLatest}, Targets: got, At: 1}).Validate(); err != nil {
		t.Errorf("the fsm refuses the resolved targets: %v", err)
	}

	for _, c := range []struct {
		name   string
		topics []string
		parts  map[string][]int32
		to     fsm.ResetTo
		is     error
		msg    string
	}{
		{"shift without a commit", []string{"orders"}, nil, fsm.ResetTo{Kind: fsm.ResetToShift, Value: -1}, fsm.ErrInvalid, "cannot shift orders/1 by -1"},
		{"unknown topic", []string{"nope"}, nil, fsm.ResetTo{Kind: fsm.ResetToEarliest}, fsm.ErrNotFound, `topic "nope" does not exist`},
		{"unknown partition", []string{"orders"}, map[string][]int32{"orders": {9}}, fsm.ResetTo{Kind: fsm.ResetToEarliest}, fsm.ErrNotFound, "no partition 9"},
		{"partitions of another topic", []string{"orders"}, map[string][]int32{"payments": {0}}, fsm.ResetTo{Kind: fsm.ResetToEarliest}, fsm.ErrInvalid, "does not name"},
		{"negative partition", []string{"orders"}, map[string][]int32{"orders": {-1}}, fsm.ResetTo{Kind: fsm.ResetToEarliest}, fsm.ErrInvalid, "negative"},
		{"repeated partition", []string{"orders"}, map[string][]int32{"orders": {1, 1}}, fsm.ResetTo{Kind: fsm.ResetToEarliest}, fsm.ErrInvalid, "twice"},
		{"no topics", nil, nil, fsm.ResetTo{Kind: fsm.ResetToEarliest}, fsm.ErrInvalid, "at least one topic"},
		{"bad kind", []string{"orders"}, nil, fsm.ResetTo{Kind: "middle"}, fsm.ErrInvalid, "unknown reset target"},
		{"negative offset", []string{"orders"}, nil, fsm.ResetTo{Kind: fsm.ResetToOffset, Value: -3}, fsm.ErrInvalid, "negative"},
		{"a value for earliest", []string{"orders"}, nil, fsm.ResetTo{Kind: fsm.ResetToEarliest, Value: 3}, fsm.ErrInvalid, "takes no value"},
		{"invalid topic name", []string{"no/slash"}, nil, fsm.ResetTo{Kind: fsm.ResetToEarliest}, fsm.ErrInvalid, "no/slash"},
	} {
		_, err := resolve(c.topics, c.parts, c.to)
		if !errors.Is(err, c.is) || !strings.Contains(fmt.Sprint(err), c.msg) {
			t.Errorf("%s: %v, want %v with %q", c.name, err, c.is, c.msg)
		}
	}

	// The views. g-live has a classic member consuming payments through
	// the proxy.
	member := proxyClient(t, n, kgo.ConsumerGroup("g-live"), kgo.ConsumeTopics("payments"), kgo.ClientID("live-member"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	mctx, mcancel := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for mctx.Err() == nil {
			fs := member.PollFetches(mctx)
			if fs.NumRecords() > 0 {
				_ = member.CommitUncommittedOffsets(mctx)
			}
		}
	}()
	t.Cleanup(func() { mcancel(); <-polled })

	var live adminapi.Group
	waitUntil(t, 60*time.Second, "g-live shows its member, its assignment and its commits", func() bool {
		code, v, _ := getGroupView(t, n, "g-live")
		live = v
		if code != 200 || v.State != "Stable" || len(v.Members) != 1 || len(v.Topics) != 1 {
			return false
		}
		ps := v.Topics[0].Partitions
		return len(ps) == 2 && ps[0].Committed == 5 && ps[1].Committed == 5
	})
	m := live.Members[0]
	if live.Type != "classic" || live.ProtocolType != "consumer" || live.Protocol == "" || m.ClientID != "live-member" || m.MemberID == "" ||
		len(m.Assignment) != 1 || m.Assignment[0].Topic != "payments" || !slices.Equal(m.Assignment[0].Partitions, []int32{0, 1}) {
		t.Errorf("g-live view %+v", live)
	}
	if tp := live.Topics[0]; tp.Topic != "payments" || tp.Lag != 0 || tp.Partitions[0].LogEndOffset != 5 || tp.Partitions[0].Lag == nil || *tp.Partitions[0].Lag != 0 {
		t.Errorf("g-live offsets %+v", live.Topics)
	}

	// g-848 is a KIP-848 group: described with ConsumerGroupDescribe.
	next := proxyClient(t, n, kgo.ConsumerGroup("g-848"), kgo.ConsumeTopics("payments"), kgo.ClientID("next-gen"),
		kgo.ServerSideBalancer(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	nctx, ncancel := context.WithCancel(ctx)
	npolled := make(chan struct{})
	go func() {
		defer close(npolled)
		for nctx.Err() == nil {
			next.PollFetches(nctx)
		}
	}()
	t.Cleanup(func() { ncancel(); <-npolled })
	var ng adminapi.Group
	waitUntil(t, 60*time.Second, "g-848 shows its member and its assignment", func() bool {
		code, v, _ := getGroupView(t, n, "g-848")
		ng = v
		return code == 200 && len(v.Members) == 1 && len(v.Members[0].Assignment) == 1 && len(v.Members[0].Assignment[0].Partitions) == 2
	})
	if ng.Type != "consumer" || ng.Members[0].ClientID != "next-gen" || ng.Members[0].Assignment[0].Topic != "payments" || ng.Protocol == "" {
		t.Errorf("g-848 view %+v", ng)
	}

	code, g1, body := getGroupView(t, n, "g1")
	if code != 200 {
		t.Fatalf("g1: %d %s", code, body)
	}
	if len(g1.Members) != 0 || len(g1.Topics) != 2 || g1.OffsetsError != "" || g1.OffsetReset != nil {
		t.Fatalf("g1 view %s", body)
	}
	o, p := g1.Topics[0], g1.Topics[1]
	// Lag is known where g1 committed: 13-2 on orders/0, 7-5 on orders/2.
	if o.Topic != "orders" || o.Lag != 11+2 || len(o.Partitions) != 2 || o.Partitions[0].LogEndOffset != 13 || o.Partitions[1].Committed != 5 {
		t.Errorf("g1 orders %+v", o)
	}
	if p.Topic != "payments" || p.Lag != 2 || len(p.Partitions) != 1 || p.Partitions[0].Committed != 3 {
		t.Errorf("g1 payments %+v", p)
	}

	if code, _, body := getGroupView(t, n, "no-such-group"); code != 404 || !strings.Contains(body, "does not exist") {
		t.Errorf("unknown group: %d %s", code, body)
	}

	// The group's latest reset comes from the replicated state (the
	// leader's driver moves it on meanwhile: any state will do).
	at := time.Now().UnixMilli()
	if _, err := n.Apply(ctx, &fsm.StartOffsetReset{Group: "g1", Topics: []string{"orders"}, To: fsm.ResetTo{Kind: fsm.ResetToEarliest},
		Targets: orders(0, 0, 0, 0), At: at}); err != nil {
		t.Fatalf("record a reset: %v", err)
	}
	waitUntil(t, 30*time.Second, "g1 shows its reset", func() bool {
		_, v, _ := getGroupView(t, n, "g1")
		return v.OffsetReset != nil && v.OffsetReset.Created == at && len(v.OffsetReset.Targets) == 4
	})

	code, _, body = call(t, n, "GET", "/v1/groups", "", "")
	var list struct {
		Groups []adminapi.GroupListing `json:"groups"`
		Errors []string                `json:"errors"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil {
		t.Fatalf("list: %d %s", code, body)
	}
	var names []string
	for _, g := range list.Groups {
		names = append(names, g.Group)
		if g.Group == "g-live" && (g.State != "Stable" || g.ProtocolType != "consumer" || g.Type != "classic") {
			t.Errorf("g-live listed as %+v", g)
		}
		if g.Group == "g-848" && g.Type != "consumer" {
			t.Errorf("g-848 listed as %+v", g)
		}
	}
	if !slices.IsSorted(names) || !slices.Contains(names, "g1") || !slices.Contains(names, "g-live") || !slices.Contains(names, "g-848") || len(list.Errors) != 0 {
		t.Errorf("groups listed %s", body)
	}
}
