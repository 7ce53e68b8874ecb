package kafka

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// TestMember848Epochs: with one leg the member epoch is the leg's; once a
// member has two legs the proxy presents its own, from 2^30, bumped only
// when a leg's moves, and maps each presented epoch (the last 16) back to
// the leg epochs it stood for; an epoch it forgot maps to one the backend
// refuses as stale, and a cluster without a leg has none.
func TestMember848Epochs(t *testing.T) {
	a, _ := NewBackend(BackendConfig{Name: "a", Bootstrap: []string{"127.0.0.1:1"}})
	b, _ := NewBackend(BackendConfig{Name: "b", Bootstrap: []string{"127.0.0.1:1"}})
	c, _ := NewBackend(BackendConfig{Name: "c", Bootstrap: []string{"127.0.0.1:1"}})
	m := &member848{id: "m", legs: map[string]*leg848{"a": {be: a, epoch: 3}}}
	m.present()
	if m.presented != 3 {
		t.Fatalf("single leg: presented %d, want the leg's 3", m.presented)
	}
	if e, ok := m.legEpoch(a, 3); !ok || e != 3 {
		t.Fatalf("single leg: commit epoch 3 → %d %v, want 3 as is", e, ok)
	}

	m.legs["b"] = &leg848{be: b, epoch: 7}
	m.multi = true
	m.present()
	if m.presented != epoch848Base {
		t.Fatalf("two legs: presented %d, want %d", m.presented, epoch848Base)
	}
	first := m.presented
	m.present()
	if m.presented != first {
		t.Fatalf("no leg moved, yet the epoch went %d → %d", first, m.presented)
	}
	m.legs["a"].epoch = 4
	m.present()
	if m.presented != first+1 {
		t.Fatalf("leg a moved: presented %d, want %d", m.presented, first+1)
	}
	for _, tc := range []struct {
		be          *Backend
		epoch, want int32
		ok          bool
	}{
		{a, 3, 3, true}, // the single-leg epoch, still remembered
		{a, first, 3, true},
		{b, first, 7, true},
		{a, first + 1, 4, true},
		{b, first + 1, 7, true},
		{a, 99, epoch848Unmapped, true},
		{c, first, 0, false},
	} {
		if e, ok := m.legEpoch(tc.be, tc.epoch); e != tc.want || ok != tc.ok {
			t.Errorf("legEpoch(%s, %d) = %d %v, want %d %v", tc.be.Name(), tc.epoch, e, ok, tc.want, tc.ok)
		}
	}
	for i := range 40 {
		m.legs["b"].epoch = int32(8 + i)
		m.present()
	}
	if len(m.history) != epoch848History {
		t.Fatalf("history holds %d epochs, want the bound %d", len(m.history), epoch848History)
	}
	if e, _ := m.legEpoch(a, first); e != epoch848Unmapped {
		t.Fatalf("a forgotten epoch maps to %d, want %d", e, epoch848Unmapped)
	}
	if !m.knows(m.presented) || m.knows(first) {
		t.Fatalf("knows: current %v, forgotten %v", m.knows(m.presented), m.knows(first))
	}
}

// startProxy2 is a proxy over two kfake clusters: topics starting "b."
// route to b, the rest (and groups) to a.
func startProxy2(t *testing.T, ka, kb *kfake.Cluster) string {
	t.Helper()
	addr, _, _ := startProxy2With(t, ka, kb, nil)
	return addr
}

// startProxy2With is startProxy2 with each backend's config (refreshed
// every second) changed by edit, when not nil; it also returns a's and
// b's Backends.
func startProxy2With(t *testing.T, ka, kb *kfake.Cluster, edit func(*BackendConfig)) (addr string, ba, bb *Backend) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry(), 0)
	backend := func(name string, kc *kfake.Cluster) *Backend {
		cfg := BackendConfig{Name: name, Bootstrap: kc.ListenAddrs(), MetadataRefresh: time.Second, Metrics: m}
		if edit != nil {
			edit(&cfg)
		}
		return newTestBackend(t, cfg)
	}
	ba, bb = backend("a", ka), backend("b", kb)
	view := &benchView{}
	srv := listenServer(t, Config{}, view, m, ba, bb)
	addr = srv.Addr().String()
	view.st = &fsm.State{
		Clusters: []fsm.Cluster{{Name: "a", Bootstrap: ka.ListenAddrs()}, {Name: "b", Bootstrap: kb.ListenAddrs()}},
		Routes:   fsm.Routes{DefaultCluster: "a", Prefixes: []fsm.PrefixRoute{{Prefix: "b.", Cluster: "b"}}},
		Peers:    []fsm.Peer{{ID: 0, Name: "peer-0", KafkaAddr: addr}},
	}
	serveServer(t, srv, ba, bb)
	waitReady(t, ba, bb)
	return addr, ba, bb
}

// TestConsumerGroupHeartbeatTwoClusters drives the KIP-848 keys by hand
// through a proxy over two kfake clusters: one member subscribed to a
// topic on each gets both topics' partitions under virtual ids and a
// proxy epoch; each cluster holds a consumer group with that member;
// commits and offset fetches with the presented epoch reach both
// clusters with each one's epoch, an epoch the proxy never presented is
// refused as stale, ConsumerGroupDescribe merges the clusters, and a
// leave leaves both. A heartbeat from a member the proxy does not know is
// fenced, and a v0 join gets a member id the proxy chose.
func TestConsumerGroupHeartbeatTwoClusters(t *testing.T) {
	ka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "t1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ka.Close)
	kb, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "b.t2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kb.Close)
	addr := startProxy2(t, ka, kb)
	c := dialRaw(t, addr)
	do := func(req kmsg.Request, v int16) kmsg.Response {
		t.Helper()
		req.SetVersion(v)
		resp, err := c.do(req, 30*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
		}
		return resp
	}
	hb := func(epoch int32, owned []kmsg.ConsumerGroupHeartbeatRequestTopic) *kmsg.ConsumerGroupHeartbeatResponse {
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Group, req.MemberID, req.MemberEpoch = "g", "member-1", epoch
		req.Topics = owned
		if epoch == 0 {
			req.SubscribedTopicNames = []string{"b.t2", "t1"}
			req.ServerAssignor = kmsg.StringPtr("range")
			req.RebalanceTimeoutMillis = 30000
			req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		}
		return do(req, 1).(*kmsg.ConsumerGroupHeartbeatResponse)
	}
	want := map[[16]byte]int{virtualTopicID("t1"): 3, virtualTopicID("b.t2"): 2}

	resp := hb(0, nil)
	if resp.ErrorCode != 0 || resp.MemberEpoch < epoch848Base {
		t.Fatalf("join: error %d, epoch %d (want ≥ %d)", resp.ErrorCode, resp.MemberEpoch, epoch848Base)
	}
	var owned []kmsg.ConsumerGroupHeartbeatRequestTopic
	epoch := resp.MemberEpoch
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp.Assignment != nil {
			owned = owned[:0]
			got := map[[16]byte]int{}
			for _, tp := range resp.Assignment.Topics {
				got[tp.TopicID] = len(tp.Partitions)
				owned = append(owned, kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: tp.TopicID, Partitions: tp.Partitions})
			}
			if len(got) == len(want) && got[virtualTopicID("t1")] == 3 && got[virtualTopicID("b.t2")] == 2 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("assignment never covered both topics by virtual id: %+v", resp.Assignment)
		}
		time.Sleep(50 * time.Millisecond)
		resp = hb(epoch, owned)
		if resp.ErrorCode != 0 {
			t.Fatalf("heartbeat: error %d", resp.ErrorCode)
		}
		if resp.MemberEpoch < epoch {
			t.Fatalf("member epoch went back: %d → %d", epoch, resp.MemberEpoch)
		}
		epoch = resp.MemberEpoch
	}
	// Acknowledge the assignment, then settle on the epoch it gives.
	resp = hb(epoch, owned)
	if resp.ErrorCode != 0 {
		t.Fatalf("heartbeat: error %d", resp.ErrorCode)
	}
	epoch = resp.MemberEpoch

	// Each cluster has a consumer group with the member.
	for name, kc := range map[string]*kfake.Cluster{"a": ka, "b": kb} {
		adm := directAdmin(t, kc)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ds, err := adm.DescribeConsumerGroups(ctx, "g")
		cancel()
		if err != nil || len(ds["g"].Members) != 1 || ds["g"].Members[0].MemberID != "member-1" {
			t.Fatalf("cluster %s: consumer group g = %+v, %v; want member-1", name, ds["g"], err)
		}
	}

	commit := func(gen int32) map[string]int16 {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.MemberID, req.Generation = "g", "member-1", gen
		for _, topic := range []string{"t1", "b.t2"} {
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset = 0, 42
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
		}
		out := map[string]int16{}
		for _, rt := range do(req, 9).(*kmsg.OffsetCommitResponse).Topics {
			for _, rp := range rt.Partitions {
				out[rt.Topic] = rp.ErrorCode
			}
		}
		return out
	}
	if got := commit(epoch); got["t1"] != 0 || got["b.t2"] != 0 || len(got) != 2 {
		t.Fatalf("commit with the presented epoch: %v, want no errors", got)
	}
	if got := commit(epoch + 1000); got["t1"] != kerr.StaleMemberEpoch.Code || got["b.t2"] != kerr.StaleMemberEpoch.Code {
		t.Fatalf("commit with an epoch never presented: %v, want STALE_MEMBER_EPOCH", got)
	}
	for name, kc := range map[string]*kfake.Cluster{"t1": ka, "b.t2": kb} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		offs, err := directAdmin(t, kc).FetchOffsets(ctx, "g")
		cancel()
		if o, ok := offs.Lookup(name, 0); err != nil || !ok || o.At != 42 {
			t.Fatalf("topic %s: committed %+v %v on its cluster, want 42", name, o, err)
		}
	}
	fetch := kmsg.NewPtrOffsetFetchRequest()
	fg := kmsg.NewOffsetFetchRequestGroup()
	fg.Group, fg.MemberID, fg.MemberEpoch = "g", kmsg.StringPtr("member-1"), epoch
	fg.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t1", Partitions: []int32{0}}, {Topic: "b.t2", Partitions: []int32{0}}}
	fetch.Groups = []kmsg.OffsetFetchRequestGroup{fg}
	fr := do(fetch, 9).(*kmsg.OffsetFetchResponse)
	if len(fr.Groups) != 1 || fr.Groups[0].ErrorCode != 0 {
		t.Fatalf("offset fetch with the presented epoch: %+v", fr.Groups)
	}
	for _, rt := range fr.Groups[0].Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode != 0 || rp.Offset != 42 {
				t.Fatalf("offset fetch %s/%d: offset %d error %d, want 42", rt.Topic, rp.Partition, rp.Offset, rp.ErrorCode)
			}
		}
	}

	// Describe through the proxy: one member holding all five partitions,
	// named, with the epoch it was presented.
	desc := kmsg.NewPtrConsumerGroupDescribeRequest()
	desc.Groups = []string{"g"}
	dr := do(desc, 1).(*kmsg.ConsumerGroupDescribeResponse)
	if len(dr.Groups) != 1 || dr.Groups[0].ErrorCode != 0 || len(dr.Groups[0].Members) != 1 {
		t.Fatalf("describe: %+v", dr.Groups)
	}
	dm := dr.Groups[0].Members[0]
	parts := 0
	for _, tp := range dm.Assignment.TopicPartitions {
		if tp.TopicID != virtualTopicID(tp.Topic) {
			t.Errorf("described topic %q has id %x, not its virtual id", tp.Topic, tp.TopicID)
		}
		parts += len(tp.Partitions)
	}
	if parts != 5 || dm.MemberEpoch != epoch || !slices.Contains(dm.SubscribedTopics, "t1") || !slices.Contains(dm.SubscribedTopics, "b.t2") {
		t.Fatalf("described member: %d partitions, epoch %d (want 5, %d), subscribed %v", parts, dm.MemberEpoch, epoch, dm.SubscribedTopics)
	}

	// Leave: gone from both clusters, and unknown to the proxy after.
	if resp := hb(-1, nil); resp.ErrorCode != 0 || resp.MemberEpoch != -1 {
		t.Fatalf("leave: error %d epoch %d", resp.ErrorCode, resp.MemberEpoch)
	}
	for name, kc := range map[string]*kfake.Cluster{"a": ka, "b": kb} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ds, err := directAdmin(t, kc).DescribeConsumerGroups(ctx, "g")
		cancel()
		if err != nil || len(ds["g"].Members) != 0 {
			t.Fatalf("cluster %s after the leave: %+v %v", name, ds["g"], err)
		}
	}
	if resp := hb(epoch, nil); resp.ErrorCode != kerr.FencedMemberEpoch.Code {
		t.Fatalf("heartbeat of a member that left: error %d, want FENCED_MEMBER_EPOCH", resp.ErrorCode)
	}

	// v0: the coordinator (here the proxy) chooses the member id.
	join := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	join.Group, join.SubscribedTopicNames = "g0", []string{"t1"}
	join.Topics, join.RebalanceTimeoutMillis = []kmsg.ConsumerGroupHeartbeatRequestTopic{}, 30000
	jr := do(join, 0).(*kmsg.ConsumerGroupHeartbeatResponse)
	if jr.ErrorCode != 0 || jr.MemberID == nil || *jr.MemberID == "" || jr.MemberEpoch <= 0 || jr.MemberEpoch >= epoch848Base {
		t.Fatalf("v0 join: error %d member %v epoch %d", jr.ErrorCode, jr.MemberID, jr.MemberEpoch)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := directAdmin(t, ka).DescribeConsumerGroups(ctx, "g0")
	if err != nil || len(ds["g0"].Members) != 1 || ds["g0"].Members[0].MemberID != *jr.MemberID {
		t.Fatalf("v0 member on its cluster: %+v %v, want %s", ds["g0"], err, *jr.MemberID)
	}
}

func directAdmin(t *testing.T, kc *kfake.Cluster) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// Fuzz targets: the KIP-848 handlers take any decodable request (join,
// heartbeat, leave, describe) without failing, and any backend answer to
// a join's legs without panicking.

func seedHeartbeat(epoch int32) kmsg.Request {
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Group, req.MemberID, req.MemberEpoch = "g-1", "m-1", epoch
	req.SubscribedTopicNames = []string{"orders", "events", "nope"}
	req.ServerAssignor, req.InstanceID = kmsg.StringPtr("uniform"), kmsg.StringPtr("i-1")
	req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	if epoch > 0 {
		req.Topics = append(req.Topics, kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: virtualTopicID("orders"), Partitions: []int32{0, 1}})
	}
	return req
}

func FuzzConsumerGroupHeartbeatRequest(f *testing.F) {
	fuzzRequest(f, 68, seedHeartbeat(0), seedHeartbeat(5), seedHeartbeat(-1), seedHeartbeat(-2))
}

func FuzzConsumerGroupDescribeRequest(f *testing.F) {
	req := kmsg.NewPtrConsumerGroupDescribeRequest()
	req.Groups = []string{"g-1", "g-2", "g-1"}
	fuzzRequest(f, 69, req)
}

// FuzzConsumerGroupHeartbeatResponse answers a join's legs, then a
// heartbeat's, with the same arbitrary bytes: the client always gets one
// answer that decodes, and the member state stays usable.
func FuzzConsumerGroupHeartbeatResponse(f *testing.F) {
	for v := int16(0); v <= 1; v++ {
		ok := kmsg.NewPtrConsumerGroupHeartbeatResponse()
		ok.Version, ok.MemberID, ok.MemberEpoch = v, kmsg.StringPtr("m-1"), 3
		ok.Assignment = &kmsg.ConsumerGroupHeartbeatResponseAssignment{Topics: []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{{TopicID: fxOrdersID, Partitions: []int32{0, 1, 2}}}}
		f.Add(uint8(v), respFrame(ok, v, 1)[8:])
		f.Add(uint8(v), respFrame(heartbeatError(kmsg.NewPtrConsumerGroupHeartbeatRequest(), kerr.FencedMemberEpoch.Code, "x"), v, 1)[8:])
	}
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, 10)
	f.Fuzz(func(t *testing.T, version uint8, raw []byte) {
		defer catchPanic(t)
		v := int16(version % 2)
		fix := fuzzFixture(t, reg, metrics)
		fix.srv.setCoordinator(fix.backend, coordinatorGroup, "g-1", 100)
		answer := func(_ int32, frame []byte) []byte { return backendFrame(be32(frame[8:]), raw) }
		conn := fix.conn(t)
		for i, req := range []kmsg.Request{seedHeartbeat(0), seedHeartbeat(3), seedHeartbeat(-1)} {
			ex := conn.run(fix.srv.handlers[68], reqFrame(req, v, int32(60+i)), answer)
			if ex.err != nil {
				t.Fatalf("v%d request %d: handler error: %v", v, i, ex.err)
			}
			if ex.slots != 1 || !ex.done || ex.outErr != nil {
				t.Fatalf("v%d request %d: %d slots, finished %v, error %v", v, i, ex.slots, ex.done, ex.outErr)
			}
			corr, out := decodeOut(t, ex.out, 68, v)
			if corr != int32(60+i) {
				t.Fatalf("correlation id %d", corr)
			}
			if r := out.(*kmsg.ConsumerGroupHeartbeatResponse); r.ErrorCode == 0 && i < 2 && r.MemberEpoch < 0 {
				t.Fatalf("request %d: success with epoch %d", i, r.MemberEpoch)
			}
		}
	})
}

// TestConsumerGroupHeartbeatGainsCluster: a member subscribed to a topic
// on one cluster has that cluster's epoch; when it subscribes to a topic
// on a second cluster too, the proxy joins it there, its epoch becomes the
// proxy's (larger: it never goes back), its assignment grows to both
// topics, and dropping the first topic leaves the first cluster.
func TestConsumerGroupHeartbeatGainsCluster(t *testing.T) {
	ka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "t1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ka.Close)
	kb, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "b.t2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kb.Close)
	c := dialRaw(t, startProxy2(t, ka, kb))
	var epoch int32
	var owned []kmsg.ConsumerGroupHeartbeatRequestTopic
	hb := func(subscribed []string) *kmsg.ConsumerGroupHeartbeatResponse {
		t.Helper()
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Group, req.MemberID, req.MemberEpoch = "g", "member-1", epoch
		req.SubscribedTopicNames, req.Topics = subscribed, owned
		if epoch == 0 {
			req.Topics, req.RebalanceTimeoutMillis = []kmsg.ConsumerGroupHeartbeatRequestTopic{}, 30000
		}
		req.SetVersion(1)
		kr, err := c.do(req, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		resp := kr.(*kmsg.ConsumerGroupHeartbeatResponse)
		if resp.ErrorCode != 0 {
			t.Fatalf("heartbeat (subscribed %v): error %d", subscribed, resp.ErrorCode)
		}
		if resp.MemberEpoch < epoch {
			t.Fatalf("member epoch went back: %d → %d", epoch, resp.MemberEpoch)
		}
		epoch = resp.MemberEpoch
		if resp.Assignment != nil {
			owned = owned[:0]
			for _, tp := range resp.Assignment.Topics {
				owned = append(owned, kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: tp.TopicID, Partitions: tp.Partitions})
			}
		}
		return resp
	}
	holds := func(topics ...string) bool {
		if len(owned) != len(topics) {
			return false
		}
		for _, tp := range owned {
			found := false
			for _, name := range topics {
				found = found || tp.TopicID == virtualTopicID(name) && len(tp.Partitions) == 2
			}
			if !found {
				return false
			}
		}
		return true
	}
	until := func(what string, subscribed []string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for hb(subscribed); !cond(); hb(nil) {
			if time.Now().After(deadline) {
				t.Fatalf("never %s: epoch %d, owned %+v", what, epoch, owned)
			}
			time.Sleep(20 * time.Millisecond)
			subscribed = nil
		}
	}
	until("assigned t1", []string{"t1"}, func() bool { return holds("t1") })
	if epoch >= epoch848Base {
		t.Fatalf("one cluster: epoch %d, want the backend's", epoch)
	}
	until("assigned t1 and b.t2", []string{"b.t2", "t1"}, func() bool { return holds("t1", "b.t2") })
	if epoch < epoch848Base {
		t.Fatalf("two clusters: epoch %d, want the proxy's (≥ %d)", epoch, epoch848Base)
	}
	until("left t1", []string{"b.t2"}, func() bool { return holds("b.t2") })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := directAdmin(t, ka).DescribeConsumerGroups(ctx, "g")
	if err != nil || len(ds["g"].Members) != 0 {
		t.Fatalf("cluster a after unsubscribing its topic: %+v %v, want no members", ds["g"], err)
	}
}

// TestConsumerGroupHeartbeatForgottenLeg: when one cluster forgets a
// member (UNKNOWN_MEMBER_ID), the client is told so and will rejoin under
// a new member id; the proxy takes the old member out of the other
// cluster too, so its partitions there are not held until its session
// times out.
func TestConsumerGroupHeartbeatForgottenLeg(t *testing.T) {
	ka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "t1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ka.Close)
	kb, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "b.t2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kb.Close)
	c := dialRaw(t, startProxy2(t, ka, kb))
	hb := func(epoch int32) *kmsg.ConsumerGroupHeartbeatResponse {
		t.Helper()
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Group, req.MemberID, req.MemberEpoch = "g", "member-1", epoch
		if epoch == 0 {
			req.SubscribedTopicNames, req.RebalanceTimeoutMillis = []string{"t1", "b.t2"}, 30000
			req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		}
		req.SetVersion(1)
		kr, err := c.do(req, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return kr.(*kmsg.ConsumerGroupHeartbeatResponse)
	}
	resp := hb(0)
	if resp.ErrorCode != 0 {
		t.Fatalf("join: error %d", resp.ErrorCode)
	}
	ka.ControlKey(68, func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		r := kreq.(*kmsg.ConsumerGroupHeartbeatRequest).ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		r.ErrorCode = kerr.UnknownMemberID.Code
		return r, nil, true // once
	})
	if got := hb(resp.MemberEpoch); got.ErrorCode != kerr.UnknownMemberID.Code {
		t.Fatalf("heartbeat after cluster a forgot the member: error %d, want UNKNOWN_MEMBER_ID", got.ErrorCode)
	}
	adm := directAdmin(t, kb)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ds, err := adm.DescribeConsumerGroups(ctx, "g")
		cancel()
		if err == nil && len(ds["g"].Members) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster b still holds the forgotten member: %+v %v", ds["g"], err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
