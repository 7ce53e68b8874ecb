package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/switchyard-proxy/switchyard/fsm"
)

func TestRouteMemory(t *testing.T) {
	var rm routeMemory
	if rm.moved(bounceLeader, "t", "east") {
		t.Fatal("a first sighting counted as a move")
	}
	if rm.moved(bounceLeader, "t", "east") {
		t.Fatal("the same route counted as a move")
	}
	if !rm.moved(bounceLeader, "t", "west") {
		t.Fatal("a re-pointed route was not noticed")
	}
	if rm.moved(bounceLeader, "t", "west") {
		t.Fatal("a move was reported twice")
	}
	for i := range maxRouteMemory + 10 {
		rm.moved(bounceLeader, string(rune('a'+i%26))+string(rune(i)), "east")
	}
	if len(rm.m) > maxRouteMemory {
		t.Fatalf("route memory grew to %d", len(rm.m))
	}
}

// fxWithOther is the fixture with a second backend, "other", that no
// broker serves.
func fxWithOther(t *testing.T) (*fx, *Backend) {
	t.Helper()
	f := newFx(t)
	other, err := NewBackend(BackendConfig{Name: "other", Bootstrap: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	f.srv.SetBackends([]*Backend{f.backend, other})
	return f, other
}

// TestResolveTopic: routed, unrouted, re-pointed and by-id topics.
func TestResolveTopic(t *testing.T) {
	f, other := fxWithOther(t)
	st := f.view.st
	st.Routes.Prefixes = []fsm.PrefixRoute{{Prefix: "o.", Cluster: "other"}}
	st.Routes.DefaultCluster = ""
	st.Routes.Topics = []fsm.TopicRoute{{Topic: "orders", Cluster: fxCluster}}
	h := f.conn(t)
	if tt := reqOn(h.c, 0, 9).topic("orders", [16]byte{}); tt.be != f.backend || tt.code != 0 {
		t.Fatalf("orders: %+v", tt)
	}
	if tt := reqOn(h.c, 0, 9).topic("o.logs", [16]byte{}); tt.be != other {
		t.Fatalf("o.logs: %+v", tt)
	}
	if tt := reqOn(h.c, 0, 9).topic("nowhere", [16]byte{}); tt.be != nil || tt.code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unrouted: %+v", tt)
	}
	byID := reqOn(h.c, 0, 13)
	byID.split.byID = true
	if tt := byID.topic("", virtualTopicID("orders")); tt.be != f.backend || tt.name != "orders" || tt.id != fxOrdersID || tt.code != 0 {
		t.Fatalf("by virtual id: %+v, want orders with the cluster's id", tt)
	}
	if tt := byID.topic("", [16]byte{7}); tt.be != nil || tt.code != kerr.UnknownTopicID.Code {
		t.Fatalf("by an unknown id: %+v", tt)
	}
	if tt := reqOn(h.c, 47, 0).topic("", virtualTopicID("orders")); tt.be != nil || tt.code != kerr.UnknownTopicID.Code {
		t.Fatalf("by id for a key that does not translate ids: %+v", tt)
	}
	st.Routes.Topics = []fsm.TopicRoute{{Topic: "orders", Cluster: "other"}}
	if tt := reqOn(h.c, 0, 9).topic("orders", [16]byte{}); tt.be != nil || tt.code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("re-pointed: %+v, want one NOT_LEADER_OR_FOLLOWER", tt)
	}
	if tt := reqOn(h.c, 0, 9).topic("orders", [16]byte{}); tt.be != other {
		t.Fatalf("after the bounce: %+v", tt)
	}
}

// TestResolveTopicFailingBack: while a route's cluster fails back, the
// keys that write records (Produce, AddPartitionsToTxn) resolve to the
// recovered cluster and the rest to the fallback, and one connection doing
// both is not bounced back and forth; when the failback completes, the
// reads bounce once and the writes not at all.
func TestResolveTopicFailingBack(t *testing.T) {
	f, other := fxWithOther(t)
	st := f.view.st
	st.Clusters = []fsm.Cluster{{Name: fxCluster, Bootstrap: []string{"x:1"}}, {Name: "other", Bootstrap: []string{"127.0.0.1:1"}}}
	st.Routes.Topics = []fsm.TopicRoute{{Topic: "orders", Cluster: fxCluster, RouteTargets: fsm.RouteTargets{Fallback: []string{"other"}}}}
	st.Failover.Clusters = []fsm.ClusterFailover{{Cluster: fxCluster, State: fsm.FailoverFailingBack}}
	h := f.conn(t)
	for range 3 {
		if tt := reqOn(h.c, 0, 9).topic("orders", [16]byte{}); tt.be != f.backend || tt.code != 0 {
			t.Fatalf("Produce while failing back: %+v, want the recovered cluster", tt)
		}
		if tt := reqOn(h.c, 24, 3).topic("orders", [16]byte{}); tt.be != f.backend || tt.code != 0 {
			t.Fatalf("AddPartitionsToTxn while failing back: %+v, want the recovered cluster", tt)
		}
		if tt := reqOn(h.c, 1, 12).topic("orders", [16]byte{}); tt.be != other || tt.code != 0 {
			t.Fatalf("Fetch while failing back: %+v, want the fallback", tt)
		}
		if tt := reqOn(h.c, 8, 8).topic("orders", [16]byte{}); tt.be != other || tt.code != 0 {
			t.Fatalf("OffsetCommit while failing back: %+v, want the fallback", tt)
		}
	}
	st.Failover.Clusters = []fsm.ClusterFailover{{Cluster: fxCluster, State: fsm.FailoverActive}}
	if tt := reqOn(h.c, 1, 12).topic("orders", [16]byte{}); tt.be != nil || tt.code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("Fetch after the failback: %+v, want one NOT_LEADER_OR_FOLLOWER", tt)
	}
	if tt := reqOn(h.c, 1, 12).topic("orders", [16]byte{}); tt.be != f.backend {
		t.Fatalf("Fetch after its bounce: %+v", tt)
	}
	if tt := reqOn(h.c, 0, 9).topic("orders", [16]byte{}); tt.be != f.backend || tt.code != 0 {
		t.Fatalf("Produce after the failback: %+v, want the recovered cluster unbounced", tt)
	}
}
