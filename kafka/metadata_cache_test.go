package kafka

import (
	"bytes"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// TestCachedAllTopicsEncoding: an all-topics answer assembled from the
// snapshot's pre-encoded blocks is byte for byte what kmsg encodes for the
// answer the forwarding path builds (presented, routed), at every version
// kmsg knows; with authorization on, the entries the principal cannot
// describe are left out and the count says so.
func TestCachedAllTopicsEncoding(t *testing.T) {
	f := newFx(t)
	be := f.backend
	be.setSnapshot(fxMetadata(), be.metaGen.Load())
	snap := be.freshSnapshot()
	if snap == nil {
		t.Fatal("snapshot stored at the current generation is not fresh")
	}
	h := f.conn(t)
	maxV := kmsg.NewPtrMetadataResponse().MaxVersion()
	for v := int16(0); v <= maxV; v++ {
		r := reqOn(h.c, 3, v)
		r.corr = 77
		got := cachedAllTopics(r, []*metaSnapshot{snap})

		m := fxMetadata()
		presentMetadata(r, be, m)
		want := kmsg.NewPtrMetadataResponse()
		want.Version = v
		want.Brokers = presentedBrokers(r)
		want.ClusterID = r.clusterID(fxMetadata().ClusterID)
		want.ControllerID = r.presenter(be).peerFor(fxMetadata().ControllerID)
		want.AuthorizedOperations = noAuthorizedOps
		for _, tp := range m.Topics {
			if r.route(*tp.Topic) == be {
				want.Topics = append(want.Topics, tp)
			}
		}
		if len(want.Topics) == 0 {
			t.Fatal("fixture routes no topic to its cluster")
		}
		wantB := encodeResponse(want, 77)
		if !bytes.Equal(got.b, wantB.b) {
			t.Fatalf("v%d: cached answer differs from the encoded one\n got %x\nwant %x", v, got.b, wantB.b)
		}
		// The block is reused for the same key, rebuilt for another.
		if again := cachedAllTopics(r, []*metaSnapshot{snap}); !bytes.Equal(again.b, got.b) {
			t.Fatalf("v%d: second answer differs", v)
		}
	}
	if n := len(snap.blocks); n != metaBlocksPerSnapshot {
		t.Fatalf("%d blocks kept after %d versions, want the bound %d", n, maxV+1, metaBlocksPerSnapshot)
	}

	// A refresh asked for makes the snapshot stale until one lands.
	be.TriggerRefresh()
	if be.freshSnapshot() != nil {
		t.Fatal("snapshot still fresh after TriggerRefresh")
	}
}

// TestCachedAllTopicsAuthzFilter: with authorization on, the cached
// answer drops the entries the principal may not describe, in every
// version, and still decodes (the count is rewritten).
func TestCachedAllTopicsAuthzFilter(t *testing.T) {
	f := newFx(t)
	be := f.backend
	be.setSnapshot(fxMetadata(), be.metaGen.Load())
	snap := be.freshSnapshot()
	st := *f.view.st
	st.ACLs = []fsm.ACL{{Principal: "User:alice", Host: "*", ResourceType: "topic", ResourceName: "orders", Pattern: "literal", Operation: "describe", Permission: "allow"}}
	f.view.st = &st
	f.srv.cfg.Authenticates = true
	h := f.conn(t)
	h.c.principal = "User:alice"
	maxV := kmsg.NewPtrMetadataResponse().MaxVersion()
	for v := int16(0); v <= maxV; v++ {
		r := reqOn(h.c, 3, v)
		out := cachedAllTopics(r, []*metaSnapshot{snap})
		_, resp := decodeOut(t, out.b, 3, v)
		var names []string
		for _, tp := range resp.(*kmsg.MetadataResponse).Topics {
			names = append(names, *tp.Topic)
		}
		if !slices.Equal(names, []string{"orders"}) {
			t.Fatalf("v%d: alice sees %v, want only orders", v, names)
		}
	}
}

// TestClientMetadataCostsBackendNothing: two kfake clusters behind one
// proxy, the refresh loop quiet (an hour); all-topics, named, by-id and
// empty-list Metadata at several versions reach no backend and ask for no
// refresh, and their answers hold what the backends hold, presented.
// FindCoordinator (any broker) asks for no refresh either. A topic
// created through the proxy is in the very next all-topics answer.
func TestClientMetadataCostsBackendNothing(t *testing.T) {
	ka, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(3, "a1", "a2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ka.Close)
	kb, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "b.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kb.Close)
	var metaA, metaB atomic.Int64
	count := func(kc *kfake.Cluster, n *atomic.Int64) {
		kc.ControlKey(3, func(kmsg.Request) (kmsg.Response, error, bool) {
			kc.KeepControl()
			n.Add(1)
			return nil, nil, false
		})
	}
	count(ka, &metaA)
	count(kb, &metaB)

	addr, ba, bb := startProxy2With(t, ka, kb, func(c *BackendConfig) {
		c.MetadataRefresh, c.ListFromSnapshot = time.Hour, true
	})
	waitFresh := func() {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for ba.freshSnapshot() == nil || bb.freshSnapshot() == nil {
			if time.Now().After(deadline) {
				t.Fatal("snapshots not fresh")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFresh()
	a0, b0 := metaA.Load(), metaB.Load()
	genA, genB := ba.metaGen.Load(), bb.metaGen.Load()

	cl := dialRaw(t, addr)
	ask := func(v int16, topics ...string) map[string]int {
		t.Helper()
		req := kmsg.NewPtrMetadataRequest()
		req.SetVersion(v)
		if topics != nil {
			req.Topics = []kmsg.MetadataRequestTopic{}
			for _, n := range topics {
				rt := kmsg.NewMetadataRequestTopic()
				rt.Topic = kmsg.StringPtr(n)
				if v >= 12 && n == "by-id:a2" {
					rt.Topic, rt.TopicID = nil, virtualTopicID("a2")
				}
				req.Topics = append(req.Topics, rt)
			}
		} else if v == 0 {
			req.Topics = []kmsg.MetadataRequestTopic{}
		}
		resp, err := cl.do(req, 30*time.Second)
		if err != nil {
			t.Fatalf("metadata v%d: %v", v, err)
		}
		mr := resp.(*kmsg.MetadataResponse)
		if len(mr.Brokers) != 1 || mr.Brokers[0].NodeID != 0 {
			t.Fatalf("v%d: brokers %+v, want peer 0 only", v, mr.Brokers)
		}
		out := map[string]int{}
		for _, tp := range mr.Topics {
			if tp.ErrorCode != 0 {
				t.Fatalf("v%d: topic %v error %d", v, tp.Topic, tp.ErrorCode)
			}
			for _, p := range tp.Partitions {
				if p.Leader != 0 {
					t.Fatalf("v%d: %s/%d leader %d, want peer 0", v, *tp.Topic, p.Partition, p.Leader)
				}
			}
			if v >= 10 && tp.TopicID != virtualTopicID(*tp.Topic) {
				t.Fatalf("v%d: %s has id %x, want its virtual id", v, *tp.Topic, tp.TopicID)
			}
			out[*tp.Topic] = len(tp.Partitions)
		}
		return out
	}
	want := map[string]int{"a1": 3, "a2": 3, "b.1": 2}
	for _, v := range []int16{0, 1, 4, 7, 9, 10, 12, 13} {
		if v > kmsg.NewPtrMetadataRequest().MaxVersion() {
			continue
		}
		for range 3 {
			if got := ask(v); !mapsEqual(got, want) {
				t.Fatalf("all topics v%d: %v, want %v", v, got, want)
			}
		}
		if got := ask(v, "a1", "b.1"); !mapsEqual(got, map[string]int{"a1": 3, "b.1": 2}) {
			t.Fatalf("named v%d: %v", v, got)
		}
		if v >= 12 {
			if got := ask(v, "by-id:a2"); !mapsEqual(got, map[string]int{"a2": 3}) {
				t.Fatalf("by id v%d: %v", v, got)
			}
		}
		if v >= 1 {
			if got := ask(v, []string{}...); len(got) != 0 {
				t.Fatalf("empty list v%d: %v", v, got)
			}
		}
	}
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.SetVersion(4) // batched: the split path
	fc.CoordinatorKey = "g"
	fc.CoordinatorKeys = []string{"g"}
	if _, err := cl.do(fc, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if a, b := metaA.Load()-a0, metaB.Load()-b0; a != 0 || b != 0 {
		t.Fatalf("client Metadata reached the backends: %d requests at a, %d at b, want none", a, b)
	}
	if ga, gb := ba.metaGen.Load()-genA, bb.metaGen.Load()-genB; ga != 0 || gb != 0 {
		t.Fatalf("client requests asked for %d refreshes of a and %d of b, want none", ga, gb)
	}

	// Authorized operations are the backends' to say: forwarded, one
	// request per cluster and nothing more (before anyBroker, each also
	// asked its backend for a full refresh).
	ops := kmsg.NewPtrMetadataRequest()
	ops.SetVersion(10)
	ops.IncludeTopicAuthorizedOperations = true
	if _, err := cl.do(ops, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if a, b := metaA.Load()-a0, metaB.Load()-b0; a != 1 || b != 1 {
		t.Fatalf("forwarded Metadata cost %d requests at a and %d at b, want 1 each", a, b)
	}
	if ga, gb := ba.metaGen.Load()-genA, bb.metaGen.Load()-genB; ga != 0 || gb != 0 {
		t.Fatalf("a forwarded Metadata asked for %d refreshes of a and %d of b, want none", ga, gb)
	}

	// Created through the proxy: in the very next listing.
	ct := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "b.new", 4, 1
	ct.Topics = append(ct.Topics, rt)
	ct.TimeoutMillis = 5000
	resp, err := cl.do(ct, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode; code != 0 {
		t.Fatalf("create b.new: error %d", code)
	}
	want["b.new"] = 4
	if got := ask(12); !mapsEqual(got, want) {
		t.Fatalf("all topics right after CreateTopics: %v, want %v", got, want)
	}
	// Once refreshed, listings are served from the snapshots again.
	waitFresh()
	a1, b1 := metaA.Load(), metaB.Load()
	if got := ask(12); !mapsEqual(got, want) {
		t.Fatalf("all topics after the refresh: %v, want %v", got, want)
	}
	if a, b := metaA.Load()-a1, metaB.Load()-b1; a != 0 || b != 0 {
		t.Fatalf("after the refresh a listing reached the backends (%d, %d)", a, b)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
