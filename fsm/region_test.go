package fsm

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// regionState is a state with two clusters, two regions and region-aware
// routes, built through Next like the FSM does.
func regionState(t *testing.T, more ...Command) *State {
	t.Helper()
	st := &State{}
	cmds := append([]Command{
		&PutCluster{Cluster: cluster("east")},
		&PutCluster{Cluster: cluster("west")},
		&PutRegion{Region: Region{Name: "b", Networks: []string{"127.0.0.3/32", "10.2.0.0/16"}}},
		&PutRegion{Region: Region{Name: "a", Networks: []string{"127.0.0.2/32", "10.0.0.0/8"}, Fallback: []string{"b"}}},
	}, more...)
	for i, c := range cmds {
		next, err := st.Next(c, uint64(i+1))
		if err != nil {
			t.Fatalf("%s %+v: %v", c.Type(), c, err)
		}
		st = next
	}
	return st
}

func TestClientRegion(t *testing.T) {
	st := regionState(t, &PutRegion{Region: Region{Name: "c", Networks: []string{"10.2.3.0/24", "fd00::/8"}}})
	cases := []struct {
		ip, peer, want string
	}{
		{"127.0.0.2", "b", "a"},
		{"127.0.0.3", "a", "b"},
		{"10.9.9.9", "", "a"},        // only 10/8 holds it
		{"10.2.9.9", "", "b"},        // 10.2/16 beats 10/8
		{"10.2.3.4", "", "c"},        // 10.2.3/24 beats both
		{"::ffff:10.2.3.4", "", "c"}, // an IPv4-mapped address matches IPv4 networks
		{"fd00::1", "x", "c"},
		{"192.168.1.1", "peer-region", "peer-region"}, // no network: the peer's region
		{"192.168.1.1", "", ""},
	}
	for _, tc := range cases {
		if got := st.ClientRegion(netip.MustParseAddr(tc.ip), tc.peer); got != tc.want {
			t.Errorf("ClientRegion(%s, %q) = %q, want %q", tc.ip, tc.peer, got, tc.want)
		}
	}
	if got := (&State{}).ClientRegion(netip.MustParseAddr("10.0.0.1"), "p"); got != "p" {
		t.Errorf("no regions: ClientRegion = %q, want the peer's region", got)
	}
	if got := st.ClientRegion(netip.Addr{}, "p"); got != "p" {
		t.Errorf("no address: ClientRegion = %q, want the peer's region", got)
	}
}

func TestRouteForRegion(t *testing.T) {
	st := regionState(t,
		&PutRoute{Topic: "orders", Cluster: "east", RouteTargets: RouteTargets{Regions: map[string]string{"b": "west"}}},
		&PutPrefixRoute{Prefix: "logs.", Cluster: "west", RouteTargets: RouteTargets{Regions: map[string]string{"a": "east"}}},
		&PutGroupRoute{Prefix: "g-", Cluster: "east", RouteTargets: RouteTargets{Regions: map[string]string{"b": "west"}}},
		&SetDefaultCluster{Cluster: "east", RouteTargets: RouteTargets{Regions: map[string]string{"b": "west"}}},
	)
	cases := []struct {
		topic, region, want string
		kind                MatchKind
	}{
		{"orders", "a", "east", MatchExact},
		{"orders", "b", "west", MatchExact},
		{"orders", "", "east", MatchExact},
		{"orders", "z", "east", MatchExact},
		{"logs.app", "a", "east", MatchPrefix},
		{"logs.app", "b", "west", MatchPrefix},
		{"other", "b", "west", MatchDefault},
		{"other", "a", "east", MatchDefault},
	}
	for _, tc := range cases {
		got, m := st.RouteForRegion(tc.topic, tc.region)
		if got != tc.want || m.Kind != tc.kind {
			t.Errorf("RouteForRegion(%q, %q) = %q %v, want %q %v", tc.topic, tc.region, got, m, tc.want, tc.kind)
		}
	}
	if got, _ := st.RouteFor("orders"); got != "east" {
		t.Errorf("RouteFor ignores regions: got %q, want east", got)
	}
	for _, tc := range []struct{ group, region, want string }{
		{"g-1", "a", "east"}, {"g-1", "b", "west"}, {"x", "b", "west"}, {"x", "", "east"},
	} {
		if got, _ := st.GroupHomeForRegion(tc.group, tc.region); got != tc.want {
			t.Errorf("GroupHomeForRegion(%q, %q) = %q, want %q", tc.group, tc.region, got, tc.want)
		}
	}
	if got, _ := st.GroupHome("g-1"); got != "east" {
		t.Errorf("GroupHome ignores regions: got %q", got)
	}
	for region, want := range map[string]string{"b": "west", "a": "east", "": "east"} {
		if got := st.DefaultClusterForRegion(region); got != want {
			t.Errorf("DefaultClusterForRegion(%q) = %q, want %q", region, got, want)
		}
	}
	if got := (&State{}).DefaultClusterForRegion("b"); got != "" {
		t.Errorf("no default: %q", got)
	}
}

// TestRegionRefusals: every invalid region or route target is refused with
// its sentinel and leaves the state as it was.
func TestRegionRefusals(t *testing.T) {
	st := regionState(t, &PutRoute{Topic: "orders", Cluster: "east"})
	many := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	bigMap := map[string]string{}
	for i := range MaxRouteRegions + 1 {
		bigMap["r"+strings.Repeat("x", i)] = "east"
	}
	cases := []struct {
		name string
		cmd  Command
		err  error
		msg  string
	}{
		{"bad CIDR", &PutRegion{Region: Region{Name: "c", Networks: []string{"10.0.0.0/33"}}}, ErrInvalid, "not a CIDR"},
		{"address not prefix", &PutRegion{Region: Region{Name: "c", Networks: []string{"10.0.0.1"}}}, ErrInvalid, "not a CIDR"},
		{"bad region name", &PutRegion{Region: Region{Name: "a b"}}, ErrInvalid, "region name"},
		{"too many networks", &PutRegion{Region: Region{Name: "c", Networks: many(MaxRegionNetworks+1, func(i int) string { return netip.AddrFrom4([4]byte{10, byte(i), 0, 0}).String() + "/16" })}}, ErrInvalid, "networks"},
		{"unknown fallback", &PutRegion{Region: Region{Name: "c", Fallback: []string{"z"}}}, ErrInvalid, `fallback region "z"`},
		{"self fallback", &PutRegion{Region: Region{Name: "c", Fallback: []string{"c"}}}, ErrInvalid, "itself"},
		{"fallback twice", &PutRegion{Region: Region{Name: "c", Fallback: []string{"a", "a"}}}, ErrInvalid, "twice"},
		{"network of another region", &PutRegion{Region: Region{Name: "c", Networks: []string{"10.2.0.0/16"}}}, ErrConflict, `region "b"`},
		{"same network, other spelling", &PutRegion{Region: Region{Name: "c", Networks: []string{"10.2.7.7/16"}}}, ErrConflict, `region "b"`},
		{"delete a fallback", &DeleteRegion{Name: "b"}, ErrInUse, `fallback of region "a"`},
		{"delete unknown", &DeleteRegion{Name: "z"}, ErrNotFound, `"z"`},
		{"route targets unknown cluster", &PutRoute{Topic: "t", Cluster: "east", RouteTargets: RouteTargets{Regions: map[string]string{"a": "north"}}}, ErrUnknownCluster, "north"},
		{"route fallback unknown cluster", &PutPrefixRoute{Prefix: "p", Cluster: "east", RouteTargets: RouteTargets{Fallback: []string{"north"}}}, ErrUnknownCluster, "north"},
		{"route fallback twice", &PutRoute{Topic: "t", Cluster: "east", RouteTargets: RouteTargets{Fallback: []string{"west", "west"}}}, ErrInvalid, "twice"},
		{"route bad resume", &PutRoute{Topic: "t", Cluster: "east", RouteTargets: RouteTargets{Resume: "later"}}, ErrInvalid, "resume"},
		{"route bad failback", &PutGroupRoute{Prefix: "g", Cluster: "east", RouteTargets: RouteTargets{Failback: "never"}}, ErrInvalid, "failback"},
		{"route too many regions", &PutRoute{Topic: "t", Cluster: "east", RouteTargets: RouteTargets{Regions: bigMap}}, ErrInvalid, "regions"},
		{"route too many fallbacks", &PutRoute{Topic: "t", Cluster: "east", RouteTargets: RouteTargets{Fallback: many(MaxRouteFallbacks+1, func(i int) string { return "c" + strings.Repeat("x", i) })}}, ErrInvalid, "fallback"},
		{"cleared default with targets", &SetDefaultCluster{RouteTargets: RouteTargets{Resume: ResumeLatest}}, ErrInvalid, "no cluster"},
		{"delete a cluster a target names", &DeleteCluster{Name: "west"}, ErrInUse, "region targets"},
	}
	// The last case needs a route whose targets name west.
	st2, err := st.Next(&SetDefaultCluster{Cluster: "east", RouteTargets: RouteTargets{Fallback: []string{"west"}}}, 99)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := st
			if _, ok := tc.cmd.(*DeleteCluster); ok {
				base = st2
			}
			_, err := base.Next(tc.cmd, base.Index+1)
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Next = %v, want %v containing %q", err, tc.err, tc.msg)
			}
		})
	}
	// Too many regions.
	full := &State{}
	for i := range MaxRegions {
		full.Regions = append(full.Regions, Region{Name: "r" + netip.AddrFrom4([4]byte{0, 0, byte(i >> 8), byte(i)}).String()})
	}
	if _, err := full.Next(&PutRegion{Region: Region{Name: "zz"}}, 1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("region %d: %v, want ErrInvalid", MaxRegions+1, err)
	}
}

// TestRegionTargetsAndMigrations: a topic under migration, or migrated,
// never gets region targets, and a topic routed with region targets cannot
// start a migration: the migration moves one route.
func TestRegionTargetsAndMigrations(t *testing.T) {
	st := regionState(t,
		&PutRoute{Topic: "orders", Cluster: "east"},
		&StartMigration{Topic: "orders", From: "east", To: "west", Partitions: 1, Started: 10},
	)
	if _, err := st.Next(&PutRoute{Topic: "orders", Cluster: "east", RouteTargets: RouteTargets{Regions: map[string]string{"b": "west"}}}, 50); !errors.Is(err, ErrConflict) {
		t.Fatalf("region targets on a migrating topic: %v, want conflict", err)
	}
	// A migration pins its topic with an exact route, so a default or
	// prefix rule with regions does not move it: allowed, and the topic
	// still routes to its source for every region.
	st3 := regionState(t,
		&SetDefaultCluster{Cluster: "east"},
		&StartMigration{Topic: "orders", From: "east", To: "west", Partitions: 1, Started: 10},
	)
	for _, cmd := range []Command{
		&SetDefaultCluster{Cluster: "east", RouteTargets: RouteTargets{Regions: map[string]string{"b": "west"}}},
		&PutPrefixRoute{Prefix: "ord", Cluster: "east", RouteTargets: RouteTargets{Regions: map[string]string{"b": "west"}}},
	} {
		next, err := st3.Next(cmd, 50)
		if err != nil {
			t.Fatalf("%s over a pinned migrating topic: %v", cmd.Type(), err)
		}
		if c, m := next.RouteForRegion("orders", "b"); c != "east" || m.Kind != MatchExact {
			t.Fatalf("after %s, orders routes region b to %q by %v, want east by its exact pin", cmd.Type(), c, m)
		}
	}
	// A migrated topic (it has a chain) never gets region targets either,
	// even once its migration finished.
	done := regionState(t,
		&PutRoute{Topic: "orders", Cluster: "east"},
		&StartMigration{Topic: "orders", From: "east", To: "west", Partitions: 1, Started: 10},
		&UpdateMigration{Topic: "orders", State: MigrationRunning, Phase: PhaseFence, At: 11},
		&SwitchMigration{Topic: "orders", Starts: []int64{5}, Physical: []int64{0}, EpochBase: 1, At: 12},
		&FinishMigration{Topic: "orders", At: 13},
	)
	_, err := done.Next(&PutRoute{Topic: "orders", Cluster: "west", RouteTargets: RouteTargets{Regions: map[string]string{"a": "west"}}}, 60)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "virtual") {
		t.Fatalf("region targets on a migrated topic: %v, want conflict", err)
	}
	// Starting a migration of a topic routed with regions is refused.
	st4 := regionState(t, &PutRoute{Topic: "orders", Cluster: "east", RouteTargets: RouteTargets{Regions: map[string]string{"b": "west"}}})
	_, err = st4.Next(&StartMigration{Topic: "orders", From: "east", To: "west", Partitions: 1, Started: 10}, 50)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "region") {
		t.Fatalf("migration of a region-routed topic: %v, want conflict about regions", err)
	}
}

// TestRouteCommandVersions: version 1 route payloads (before targets) still
// decode; a version 1 payload carrying targets is refused; version 2 is what
// this build writes.
func TestRouteCommandVersions(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Command
	}{
		{"\x05\x01" + `{"topic":"t","cluster":"c"}`, &PutRoute{Topic: "t", Cluster: "c"}},
		{"\x07\x01" + `{"prefix":"p","cluster":"c"}`, &PutPrefixRoute{Prefix: "p", Cluster: "c"}},
		{"\x09\x01" + `{"prefix":"g","cluster":"c"}`, &PutGroupRoute{Prefix: "g", Cluster: "c"}},
		{"\x0b\x01" + `{"cluster":"c"}`, &SetDefaultCluster{Cluster: "c"}},
	} {
		got, err := Decode([]byte(tc.in))
		if err != nil {
			t.Fatalf("decode v1 %q: %v", tc.in, err)
		}
		if g, w := mustEncode(t, got), mustEncode(t, tc.want); string(g) != string(w) {
			t.Fatalf("decode v1 %q = %s, want %s", tc.in, g, w)
		}
	}
	if _, err := Decode([]byte("\x05\x01" + `{"topic":"t","cluster":"c","regions":{"a":"x"}}`)); !errors.Is(err, ErrBadPayload) {
		t.Fatalf("v1 with targets: %v, want ErrBadPayload", err)
	}
	if _, err := Decode([]byte("\x05\x03" + `{"topic":"t","cluster":"c"}`)); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("v3: %v, want ErrUnknownVersion", err)
	}
	with := &PutRoute{Topic: "t", Cluster: "c", RouteTargets: RouteTargets{Regions: map[string]string{"a": "x"}, Resume: ResumeLatest}}
	if b := mustEncode(t, with); b[1] != 2 || Needs(with) != 5 {
		t.Fatalf("PutRoute with targets encodes version %d and needs set %d, want 2 and 5", b[1], Needs(with))
	}
	// Without targets, a route command is written as version 1, which
	// every build reads, and needs set 1: plain routes keep committing
	// during a rolling upgrade.
	for _, cmd := range []Command{&PutRoute{Topic: "t", Cluster: "c"}, &PutPrefixRoute{Prefix: "p", Cluster: "c"},
		&PutGroupRoute{Prefix: "g", Cluster: "c"}, &SetDefaultCluster{Cluster: "c"}, &SetDefaultCluster{}} {
		b := mustEncode(t, cmd)
		if b[1] != 1 || Needs(cmd) != 1 {
			t.Fatalf("%s without targets encodes version %d and needs set %d, want 1 and 1", cmd.Type(), b[1], Needs(cmd))
		}
	}
	if Needs(&PutRegion{}) != 5 || Needs(&PutQuota{}) != 1 || Needs(&StartOffsetReset{}) != 4 {
		t.Fatal("Needs of other commands is their type's set")
	}
	for _, ct := range []CommandType{TypePutRegion, TypeDeleteRegion, TypePutRoute, TypePutPrefixRoute, TypePutGroupRoute, TypeSetDefaultCluster} {
		if got := ct.Introduced(); got != 5 || CommandSetVersion < 5 {
			t.Errorf("%s introduced in set %d (build %d), want 5", ct, got, CommandSetVersion)
		}
	}
}
