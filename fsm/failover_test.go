package fsm

import (
	"bytes"
	"errors"
	"testing"
)

// failoverFSM has east (with a fallback route to west, then south), west
// and south.
func failoverFSM(t *testing.T) *FSM {
	t.Helper()
	f := New(nil)
	applyOK(t, f,
		&PutCluster{Cluster: cluster("east")},
		&PutCluster{Cluster: cluster("west")},
		&PutCluster{Cluster: cluster("south")},
		&PutRoute{Topic: "orders", Cluster: "east", RouteTargets: RouteTargets{Fallback: []string{"east", "west", "south"}}},
		&PutRoute{Topic: "plain", Cluster: "east"},
		&PutPrefixRoute{Prefix: "logs.", Cluster: "east", RouteTargets: RouteTargets{Fallback: []string{"south"}}},
		&PutGroupRoute{Prefix: "billing-", Cluster: "east", RouteTargets: RouteTargets{Fallback: []string{"west"}, Failback: FailbackManual}},
	)
	return f
}

func setFailover(cluster string, state FailoverState, since int64) *SetFailover {
	return &SetFailover{Entry: ClusterFailover{Cluster: cluster, State: state, Since: since}}
}

func TestFailoverRouting(t *testing.T) {
	f := failoverFSM(t)
	st := f.State()
	if n := st.FailoverRoutes("east"); n != 3 {
		t.Fatalf("FailoverRoutes(east) = %d, want 3 (orders, logs., billing-)", n)
	}
	if st.FailoverRoutes("south") != 0 {
		t.Fatalf("FailoverRoutes(south) = %d, want 0", st.FailoverRoutes("south"))
	}
	if !(RouteTargets{Regions: map[string]string{"dc2": "south"}}).Targets("east", "south") || (RouteTargets{}).Targets("east", "south") {
		t.Fatal("Targets: a region's cluster is a target, another cluster is not")
	}
	if !st.FailbackManual("east") || st.FailbackManual("west") {
		t.Fatal("FailbackManual: east has a manual group route, west none")
	}
	if got := st.FailbackFallbacks("south"); len(got) != 0 {
		t.Fatalf("FailbackFallbacks(south) = %v, want none (no route of south has a fallback)", got)
	}
	wantProduce := func(topic, cluster string) {
		t.Helper()
		if c, _ := f.State().ProduceRouteForRegion(topic, ""); c != cluster {
			t.Fatalf("ProduceRouteForRegion(%q) = %q, want %q (failover %+v)", topic, c, cluster, f.State().Failover)
		}
	}
	want := func(topic, cluster string) {
		t.Helper()
		if c, _ := f.State().RouteFor(topic); c != cluster {
			t.Fatalf("RouteFor(%q) = %q, want %q (failover %+v)", topic, c, cluster, f.State().Failover)
		}
		if c, _ := f.State().ConfiguredRouteFor(topic); c != "east" {
			t.Fatalf("ConfiguredRouteFor(%q) = %q, want east", topic, c)
		}
	}
	wantHome := func(group, cluster string) {
		t.Helper()
		if c, _ := f.State().GroupHome(group); c != cluster {
			t.Fatalf("GroupHome(%q) = %q, want %q", group, c, cluster)
		}
	}
	want("orders", "east")
	// Down does not move routes.
	applyOK(t, f, setFailover("east", FailoverDown, 10))
	want("orders", "east")
	applyOK(t, f, setFailover("east", FailoverMoved, 11))
	want("orders", "west") // the cluster itself is skipped in its fallback
	wantProduce("orders", "west")
	want("plain", "east") // no fallback: stays
	want("logs.x", "south")
	wantHome("billing-1", "west")
	// A fallback that is itself down is skipped.
	applyOK(t, f, setFailover("west", FailoverDown, 12))
	want("orders", "south")
	wantHome("billing-1", "east") // no active fallback: stays on its cluster
	applyOK(t, f, setFailover("west", FailoverActive, 13))
	// Failing back (draining) keeps every route moved for consumers,
	// coordinators and the other keys, and brings Produce back.
	applyOK(t, f, setFailover("east", FailoverFailingBack, 14))
	want("orders", "west")
	want("logs.x", "south")
	wantHome("billing-1", "west")
	wantProduce("orders", "east")
	wantProduce("logs.x", "east")
	wantProduce("plain", "east")
	if got := f.State().FailbackFallbacks("east"); len(got) != 2 || got[0] != "south" || got[1] != "west" {
		t.Fatalf("FailbackFallbacks(east) = %v, want [south west]", got)
	}
	applyOK(t, f, setFailover("east", FailoverActive, 15))
	want("orders", "east")
	wantProduce("orders", "east")
	wantHome("billing-1", "east")
	if e := f.State().ClusterFailover("east"); e.State != FailoverActive || e.Since != 15 {
		t.Fatalf("east = %+v, want active since 15", e)
	}
}

func TestSetFailoverRejects(t *testing.T) {
	f := failoverFSM(t)
	applyOK(t, f, setFailover("east", FailoverDown, 1))
	cases := []struct {
		name string
		cmd  *SetFailover
		want error
	}{
		{"unknown cluster", setFailover("north", FailoverMoved, 2), ErrUnknownCluster},
		{"unknown state", setFailover("east", "sideways", 2), ErrInvalid},
		{"negative since", setFailover("east", FailoverMoved, -1), ErrInvalid},
		{"negative routes", &SetFailover{Entry: ClusterFailover{Cluster: "east", State: FailoverMoved, RoutesMoved: -1}}, ErrInvalid},
		{"empty cluster", setFailover("", FailoverMoved, 2), ErrInvalid},
		{"same state", setFailover("east", FailoverDown, 2), ErrConflict},
		{"down to failing-back", setFailover("east", FailoverFailingBack, 2), ErrConflict},
		{"active to failing-back", setFailover("west", FailoverFailingBack, 2), ErrConflict},
	}
	for _, tc := range cases {
		if err := f.State().Check(tc.cmd); !errors.Is(err, tc.want) {
			t.Errorf("%s: Check = %v, want %v", tc.name, err, tc.want)
		}
	}
	// Flipping Manual in the same state keeps Since.
	applyOK(t, f, &SetFailover{Entry: ClusterFailover{Cluster: "east", State: FailoverDown, Since: 9, Manual: true}})
	if e := f.State().ClusterFailover("east"); e.Since != 1 || !e.Manual {
		t.Fatalf("east = %+v, want manual since 1", e)
	}
}

func TestDeleteClusterDropsFailover(t *testing.T) {
	f := New(nil)
	applyOK(t, f, &PutCluster{Cluster: cluster("c")}, setFailover("c", FailoverDown, 1), &DeleteCluster{Name: "c"})
	if len(f.State().Failover.Clusters) != 0 {
		t.Fatalf("failover after delete = %+v", f.State().Failover)
	}
}

func TestClusterDelays(t *testing.T) {
	c := cluster("c")
	if c.DownAfter() != DefaultDownAfterMS || c.UpAfter() != DefaultUpAfterMS {
		t.Fatalf("defaults = %d/%d", c.DownAfter(), c.UpAfter())
	}
	for _, ms := range []int64{-1, MaxFailoverDelayMS + 1} {
		c.DownAfterMS = ms
		if err := (&PutCluster{Cluster: c}).Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("down after %d: %v, want ErrInvalid", ms, err)
		}
	}
}

// TestFailoverOldSnapshot: a version-5 snapshot's empty failover section
// loads as no entries.
func TestFailoverOldSnapshot(t *testing.T) {
	old := `{"format":"switchyard-fsm-snapshot","version":5,"index":3}
{"section":"peers","data":[]}
{"section":"clusters","data":[{"name":"east","bootstrap":["e:1"]}]}
{"section":"routes","data":{"topics":[{"topic":"orders","cluster":"east"}]}}
{"section":"quotas","data":[]}
{"section":"failover","data":{}}
{"section":"jobs","data":[]}
{"section":"meta","data":{"cluster_id":""}}
{"section":"peer_allow_list","data":[]}
{"section":"migrations","data":[]}
{"section":"chains","data":[]}
{"section":"offset_resets","data":[]}
`
	st, err := ReadSnapshot(bytes.NewReader([]byte(old)))
	if err != nil {
		t.Fatal(err)
	}
	if e := st.ClusterFailover("east"); e.State != FailoverActive || len(st.Failover.Clusters) != 0 {
		t.Fatalf("east = %+v", e)
	}
	// And a failover entry for an unknown cluster is refused.
	bad := bytes.Replace([]byte(old), []byte(`"data":{}`), []byte(`"data":{"clusters":[{"cluster":"x","state":"down","since":1,"routes_moved":0}]}`), 1)
	if _, err := ReadSnapshot(bytes.NewReader(bad)); !errors.Is(err, ErrUnknownCluster) {
		t.Fatalf("unknown cluster entry: %v", err)
	}
}

// TestPutClusterVersions: PutCluster's version 2 adds down/up-after. One
// without them is written as version 1 and needs set 1 (older peers read
// it); one with them is version 2 and needs set 5; a version 1 payload
// carrying them is refused.
func TestPutClusterVersions(t *testing.T) {
	plain := &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"h:9092"}}}
	if b := mustEncode(t, plain); b[1] != 1 || Needs(plain) != 1 {
		t.Fatalf("plain PutCluster encodes version %d and needs set %d, want 1 and 1", b[1], Needs(plain))
	}
	timed := &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"h:9092"}, DownAfterMS: 5000}}
	b := mustEncode(t, timed)
	if b[1] != 2 || Needs(timed) != 5 {
		t.Fatalf("PutCluster with down_after_ms encodes version %d and needs set %d, want 2 and 5", b[1], Needs(timed))
	}
	got, err := Decode(b)
	if err != nil || got.(*PutCluster).Cluster.DownAfterMS != 5000 {
		t.Fatalf("decode v2: %+v %v", got, err)
	}
	if _, err := Decode([]byte("\x03\x01" + `{"cluster":{"name":"c","bootstrap":["h:9092"],"up_after_ms":1000}}`)); !errors.Is(err, ErrBadPayload) {
		t.Fatalf("v1 with up_after_ms: %v, want ErrBadPayload", err)
	}
}
