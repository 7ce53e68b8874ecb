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

// TestResolveTopic: routed, unrouted, re-pointed and by-id topics.
func TestResolveTopic(t *testing.T) {
	f := newFx(t)
	other, err := NewBackend(BackendConfig{Name: "other", Bootstrap: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	f.srv.SetBackends([]*Backend{f.backend, other})
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
