package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// TestApplyEachCommand applies every command type to a fresh FSM (after the
// setup it needs) and checks the state it leaves.
func TestApplyEachCommand(t *testing.T) {
	base := []Command{&PutCluster{Cluster: cluster("c1")}, &PutCluster{Cluster: cluster("c2")}}
	cases := []struct {
		name  string
		setup []Command
		cmd   Command
		check func(t *testing.T, s *State)
	}{
		{"RegisterPeer explicit id", base,
			&RegisterPeer{Peer: Peer{ID: 7, Name: "p", KafkaAddr: "p:9092", RaftAddr: "p:7000", GossipAddr: "p:7001", Version: "1.2.3",
				LocalBrokers: []BrokerRef{{"c2", 1}, {"c1", 9}, {"c1", 2}}}},
			func(t *testing.T, s *State) {
				p, ok := s.Peer(7)
				want := Peer{ID: 7, Name: "p", KafkaAddr: "p:9092", RaftAddr: "p:7000", GossipAddr: "p:7001", Version: "1.2.3",
					LocalBrokers: []BrokerRef{{"c1", 2}, {"c1", 9}, {"c2", 1}}}
				if !ok || !reflect.DeepEqual(p, want) {
					t.Fatalf("peer %+v, want %+v (local brokers sorted)", p, want)
				}
			}},
		{"RegisterPeer auto id on empty", nil, &RegisterPeer{Peer: peer("p", AutoPeerID, "p:1")},
			func(t *testing.T, s *State) { wantPeerIDs(t, s, 0) }},
		{"RegisterPeer auto id above the highest", []Command{
			&RegisterPeer{Peer: peer("a", 5, "a:1")}, &RegisterPeer{Peer: peer("b", 2, "b:1")}},
			&RegisterPeer{Peer: peer("c", AutoPeerID, "c:1")},
			func(t *testing.T, s *State) { wantPeerIDs(t, s, 2, 5, 6) }},
		{"RegisterPeer again keeps id and updates", []Command{&RegisterPeer{Peer: peer("a", 5, "a:1")}},
			&RegisterPeer{Peer: Peer{ID: AutoPeerID, Name: "a", KafkaAddr: "a:2", Version: "2"}},
			func(t *testing.T, s *State) {
				wantPeerIDs(t, s, 5)
				if p, _ := s.Peer(5); p.KafkaAddr != "a:2" || p.Version != "2" {
					t.Fatalf("peer not updated: %+v", p)
				}
			}},
		{"RemovePeer", []Command{&RegisterPeer{Peer: peer("a", 1, "a:1")}, &RegisterPeer{Peer: peer("b", 2, "b:1")}},
			&RemovePeer{ID: 1}, func(t *testing.T, s *State) { wantPeerIDs(t, s, 2) }},
		{"RemovePeer last", []Command{&RegisterPeer{Peer: peer("a", 1, "a:1")}},
			&RemovePeer{ID: 1}, func(t *testing.T, s *State) {
				if s.Peers != nil {
					t.Fatalf("peers %v, want nil", s.Peers)
				}
			}},
		{"PutRegion canonical networks", []Command{&PutRegion{Region: Region{Name: "b"}}},
			&PutRegion{Region: Region{Name: "a", Networks: []string{"10.1.2.3/16", "127.0.0.2/32", "10.1.0.0/16"}, Fallback: []string{"b"}}},
			func(t *testing.T, s *State) {
				r, ok := s.Region("a")
				want := Region{Name: "a", Networks: []string{"10.1.0.0/16", "127.0.0.2/32"}, Fallback: []string{"b"}}
				if !ok || !reflect.DeepEqual(r, want) || len(s.Regions) != 2 || s.Regions[0].Name != "a" {
					t.Fatalf("regions %+v, want %+v first", s.Regions, want)
				}
			}},
		{"DeleteRegion", []Command{&PutRegion{Region: Region{Name: "a"}}}, &DeleteRegion{Name: "a"},
			func(t *testing.T, s *State) {
				if s.Regions != nil {
					t.Fatalf("regions %+v, want nil", s.Regions)
				}
			}},
		{"PutUserCredential", []Command{&PutUserCredential{Name: "b", Credential: testCredential(SASLPlain, "x")}},
			&PutUserCredential{Name: "a", Credential: testCredential(SASLScramSHA512, "pw")},
			func(t *testing.T, s *State) {
				if u, ok := s.User("a"); !ok || userNames(s) != "a,b" || !u.Credentials[0].CheckPassword("pw") {
					t.Fatalf("users %+v", s.Users)
				}
			}},
		{"DeleteUserCredential", []Command{&PutUserCredential{Name: "a", Credential: testCredential(SASLPlain, "x")}},
			&DeleteUserCredential{Name: "a", Mechanism: SASLPlain},
			func(t *testing.T, s *State) {
				if s.Users != nil {
					t.Fatalf("users %+v, want nil", s.Users)
				}
			}},
		{"PutCluster new, kept sorted", base, &PutCluster{Cluster: cluster("b0")},
			func(t *testing.T, s *State) { wantClusters(t, s, "b0", "c1", "c2") }},
		{"PutCluster replace", base, &PutCluster{Cluster: Cluster{Name: "c1", Bootstrap: []string{"n:1"}, TLS: &ClusterTLS{}}},
			func(t *testing.T, s *State) {
				wantClusters(t, s, "c1", "c2")
				if c, _ := s.Cluster("c1"); c.TLS == nil || c.Bootstrap[0] != "n:1" {
					t.Fatalf("cluster not replaced: %+v", c)
				}
			}},
		{"DeleteCluster", base, &DeleteCluster{Name: "c1"},
			func(t *testing.T, s *State) { wantClusters(t, s, "c2") }},
		{"PutRoute", base, &PutRoute{Topic: "t", Cluster: "c2"},
			func(t *testing.T, s *State) { wantRoute(t, s, "t", "c2", RouteMatch{MatchExact, "t"}) }},
		{"PutRoute replace", append(slices.Clone(base), &PutRoute{Topic: "t", Cluster: "c1"}), &PutRoute{Topic: "t", Cluster: "c2"},
			func(t *testing.T, s *State) {
				wantRoute(t, s, "t", "c2", RouteMatch{MatchExact, "t"})
				if len(s.Routes.Topics) != 1 {
					t.Fatalf("routes %v", s.Routes.Topics)
				}
			}},
		{"DeleteRoute", append(slices.Clone(base), &PutRoute{Topic: "t", Cluster: "c1"}), &DeleteRoute{Topic: "t"},
			func(t *testing.T, s *State) { wantRoute(t, s, "t", "", RouteMatch{Kind: MatchNone}) }},
		{"PutPrefixRoute", base, &PutPrefixRoute{Prefix: "a.", Cluster: "c1"},
			func(t *testing.T, s *State) { wantRoute(t, s, "a.b", "c1", RouteMatch{MatchPrefix, "a."}) }},
		{"DeletePrefixRoute", append(slices.Clone(base), &PutPrefixRoute{Prefix: "a.", Cluster: "c1"}), &DeletePrefixRoute{Prefix: "a."},
			func(t *testing.T, s *State) { wantRoute(t, s, "a.b", "", RouteMatch{Kind: MatchNone}) }},
		{"PutGroupRoute", base, &PutGroupRoute{Prefix: "g-", Cluster: "c2"},
			func(t *testing.T, s *State) {
				if c, m := s.GroupHome("g-1"); c != "c2" || m != (RouteMatch{MatchPrefix, "g-"}) {
					t.Fatalf("GroupHome = %q %v", c, m)
				}
			}},
		{"DeleteGroupRoute", append(slices.Clone(base), &PutGroupRoute{Prefix: "g-", Cluster: "c2"}), &DeleteGroupRoute{Prefix: "g-"},
			func(t *testing.T, s *State) {
				if c, m := s.GroupHome("g-1"); c != "" || m.Kind != MatchNone {
					t.Fatalf("GroupHome = %q %v", c, m)
				}
			}},
		{"SetDefaultCluster", base, &SetDefaultCluster{Cluster: "c1"},
			func(t *testing.T, s *State) { wantRoute(t, s, "any", "c1", RouteMatch{Kind: MatchDefault}) }},
		{"SetDefaultCluster clear", append(slices.Clone(base), &SetDefaultCluster{Cluster: "c1"}), &SetDefaultCluster{},
			func(t *testing.T, s *State) { wantRoute(t, s, "any", "", RouteMatch{Kind: MatchNone}) }},
		{"PutQuota", nil, &PutQuota{Quota: Quota{Topic: "t", ProduceBytesPerSec: 10, FetchBytesPerSec: 20}},
			func(t *testing.T, s *State) {
				if q, ok := s.QuotaFor("t"); !ok || q.ProduceBytesPerSec != 10 || q.FetchBytesPerSec != 20 {
					t.Fatalf("QuotaFor = %+v %v", q, ok)
				}
			}},
		{"DeleteQuota", []Command{&PutQuota{Quota: Quota{Topic: "t", Prefix: true, ProduceBytesPerSec: 10}}}, &DeleteQuota{Topic: "t", Prefix: true},
			func(t *testing.T, s *State) {
				if q, ok := s.QuotaFor("t"); ok {
					t.Fatalf("QuotaFor = %+v", q)
				}
			}},
		{"PutJob", nil, &PutJob{Job: job("j", "k", JobPending, 100, 100, "{ \"a\" : [1, 2] , \"h\": \"<b>\" }")},
			func(t *testing.T, s *State) {
				j, ok := s.Job("j")
				if !ok || string(j.Spec) != `{"a":[1,2],"h":"\u003cb\u003e"}` {
					t.Fatalf("job %+v (spec %s), want a canonical spec", j, j.Spec)
				}
			}},
		{"PutJob null spec", nil, &PutJob{Job: job("j", "k", JobPending, 100, 100, "null")},
			func(t *testing.T, s *State) {
				if j, _ := s.Job("j"); j.Spec != nil {
					t.Fatalf("spec %q, want nil", j.Spec)
				}
			}},
		{"PutJob update", []Command{&PutJob{Job: job("j", "k", JobPending, 100, 100, "")}}, &PutJob{Job: job("j", "k", JobSucceeded, 100, 200, `{"done":1}`)},
			func(t *testing.T, s *State) {
				if j, _ := s.Job("j"); j.State != JobSucceeded || j.UpdatedAt != 200 {
					t.Fatalf("job %+v", j)
				}
			}},
		{"PutJob retry of a finished job", []Command{&PutJob{Job: job("j", "k", JobFailed, 100, 100, "")}}, &PutJob{Job: job("j", "k", JobFailed, 100, 100, "")},
			func(t *testing.T, s *State) {
				if j, _ := s.Job("j"); j.State != JobFailed {
					t.Fatalf("job %+v", j)
				}
			}},
		{"SetClusterID again with the same id", []Command{&SetClusterID{ID: "v1"}}, &SetClusterID{ID: "v1"},
			func(t *testing.T, s *State) {
				if s.ClusterID != "v1" {
					t.Fatalf("cluster id %q", s.ClusterID)
				}
			}},
		{"AllowPeer kept sorted", []Command{&AllowPeer{Name: "m"}, &AllowPeer{Name: "z"}}, &AllowPeer{Name: "a"},
			func(t *testing.T, s *State) {
				if !reflect.DeepEqual(s.PeerAllowList, []string{"a", "m", "z"}) {
					t.Fatalf("allow-list %v", s.PeerAllowList)
				}
			}},
		{"AllowPeer twice changes nothing", []Command{&AllowPeer{Name: "m"}}, &AllowPeer{Name: "m"},
			func(t *testing.T, s *State) {
				if !reflect.DeepEqual(s.PeerAllowList, []string{"m"}) {
					t.Fatalf("allow-list %v", s.PeerAllowList)
				}
			}},
		{"DisallowPeer last", []Command{&AllowPeer{Name: "m"}}, &DisallowPeer{Name: "m"},
			func(t *testing.T, s *State) {
				if s.PeerAllowList != nil || s.PeerAllowed("m") {
					t.Fatalf("allow-list %v, want nil", s.PeerAllowList)
				}
			}},
		{"SetFailover", append(slices.Clone(base), &PutRoute{Topic: "t", Cluster: "c1", RouteTargets: RouteTargets{Fallback: []string{"c2"}}}),
			&SetFailover{Entry: ClusterFailover{Cluster: "c1", State: FailoverMoved, Since: 100, RoutesMoved: 1}},
			func(t *testing.T, s *State) {
				if r, _ := s.RouteFor("t"); r != "c2" {
					t.Fatalf("route %q, want the fallback c2", r)
				}
			}},
		{"StartMigration", append(slices.Clone(base), &PutRoute{Topic: "t", Cluster: "c1"}),
			&StartMigration{Topic: "t", From: "c1", To: "c2", Partitions: 3, Started: 100},
			func(t *testing.T, s *State) {
				m, ok := s.Migration("t")
				want := Migration{Topic: "t", From: "c1", To: "c2", State: MigrationRunning, Phase: PhasePrepare, Partitions: 3, Started: 100}
				if !ok || !reflect.DeepEqual(*m, want) || m.Fenced() {
					t.Fatalf("migration %+v, want %+v, not fenced", m, want)
				}
				if r, _ := s.RouteFor("t"); r != "c1" || s.Chain("t") != nil {
					t.Fatalf("a started migration moved the route to %q or made a chain", r)
				}
			}},
		{"UpdateMigration to fence", append(slices.Clone(base), &PutRoute{Topic: "t", Cluster: "c1"},
			&StartMigration{Topic: "t", From: "c1", To: "c2", Partitions: 1, Started: 100}),
			&UpdateMigration{Topic: "t", State: MigrationRunning, Phase: PhaseFence, At: 101},
			func(t *testing.T, s *State) {
				if m, _ := s.Migration("t"); !m.Fenced() || m.Phase != PhaseFence {
					t.Fatalf("migration %+v, want fenced", m)
				}
			}},
		{"SwitchMigration", append(slices.Clone(base), &PutRoute{Topic: "t", Cluster: "c1"},
			&StartMigration{Topic: "t", From: "c1", To: "c2", Partitions: 2, Started: 100},
			&UpdateMigration{Topic: "t", State: MigrationRunning, Phase: PhaseFence, At: 101}),
			&SwitchMigration{Topic: "t", Starts: []int64{10, 20}, Physical: []int64{0, 3}, EpochBase: 7, At: 102},
			func(t *testing.T, s *State) {
				if m, _ := s.Migration("t"); m.State != MigrationSwitched || m.Phase != PhaseCopy || m.Switched != 102 {
					t.Fatalf("migration %+v, want switched/copy at 102", m)
				}
				if r, _ := s.RouteFor("t"); r != "c2" {
					t.Fatalf("route %q, want c2", r)
				}
				want := TopicChain{Topic: "t", Segments: []Segment{{Cluster: "c1"},
					{Cluster: "c2", EpochBase: 7, Starts: []int64{10, 20}, Physical: []int64{0, 3}}}}
				if c := s.Chain("t"); c == nil || !reflect.DeepEqual(*c, want) {
					t.Fatalf("chain %+v, want %+v", c, want)
				}
			}},
		{"FinishMigration", append(slices.Clone(base), &PutRoute{Topic: "t", Cluster: "c1"},
			&StartMigration{Topic: "t", From: "c1", To: "c2", Partitions: 1, Started: 100},
			&UpdateMigration{Topic: "t", State: MigrationRunning, Phase: PhaseFence, At: 101},
			&SwitchMigration{Topic: "t", Starts: []int64{10}, Physical: []int64{0}, EpochBase: 7, At: 102}),
			&FinishMigration{Topic: "t", At: 103},
			func(t *testing.T, s *State) {
				if m, _ := s.Migration("t"); m.State != MigrationFinished || m.Phase != PhaseDone || m.Ended != 103 {
					t.Fatalf("migration %+v, want finished/done at 103", m)
				}
				c := s.Chain("t")
				if c == nil || !c.Segments[0].Retired || c.Previous() != nil || c.Live().Cluster != "c2" {
					t.Fatalf("chain %+v, want the source retired", c)
				}
			}},
		{"StartOffsetReset", nil,
			&StartOffsetReset{Group: "g", Topics: []string{"t"}, To: ResetTo{Kind: ResetToEarliest}, Targets: []ResetTarget{{"t", 0, 5, 0}, {"t", 1, -1, 0}}, At: 100},
			func(t *testing.T, s *State) {
				r, ok := s.OffsetReset("g")
				want := OffsetReset{Group: "g", Topics: []string{"t"}, To: ResetTo{Kind: ResetToEarliest}, State: ResetPending, Targets: []ResetTarget{{"t", 0, 5, 0}, {"t", 1, -1, 0}}, Created: 100}
				if !ok || !reflect.DeepEqual(*r, want) || r.Holding() {
					t.Fatalf("reset %+v, want %+v, not holding", r, want)
				}
			}},
		{"UpdateOffsetReset to applied", []Command{
			&StartOffsetReset{Group: "g", Topics: []string{"t"}, To: ResetTo{Kind: ResetToOffset, Value: 3}, Targets: []ResetTarget{{"t", 0, 5, 3}}, At: 100},
			&UpdateOffsetReset{Group: "g", Created: 100, State: ResetFencing, At: 101},
			&UpdateOffsetReset{Group: "g", Created: 100, State: ResetFencing, Members: []ResetMember{{ID: "m1", Protocol: ProtocolClassic}, {ID: "k1", Protocol: ProtocolConsumer, Epoch: 7}}, At: 102}},
			&UpdateOffsetReset{Group: "g", Created: 100, State: ResetApplied, At: 103},
			func(t *testing.T, s *State) {
				r, _ := s.OffsetReset("g")
				if r.State != ResetApplied || r.Fenced != 101 || r.Ended != 103 || len(r.Members) != 2 || r.Holding() {
					t.Fatalf("reset %+v, want applied, fenced at 101, ended at 103, two members kept", r)
				}
				if !r.RemovedClassic("m1") || r.RemovedClassic("m2") || r.RemovedClassic("k1") {
					t.Fatalf("removed-member checks wrong for %+v", r.Members)
				}
			}},
		{"CreateACLs sorted and unique", []Command{&CreateACLs{ACLs: []ACL{testACL("User:b", "t", OpRead)}}},
			&CreateACLs{ACLs: []ACL{testACL("User:c", "t", OpRead), testACL("User:a", "t", OpRead), testACL("User:b", "t", OpRead), testACL("User:a", "t", OpRead)}},
			func(t *testing.T, s *State) {
				want := []ACL{testACL("User:a", "t", OpRead), testACL("User:b", "t", OpRead), testACL("User:c", "t", OpRead)}
				if !reflect.DeepEqual(s.ACLs, want) {
					t.Fatalf("acls %+v, want %+v", s.ACLs, want)
				}
			}},
		{"DeleteACLs", []Command{&CreateACLs{ACLs: []ACL{testACL("User:a", "t", OpRead), testACL("User:b", "t", OpRead)}}},
			&DeleteACLs{Filters: []ACLFilter{{Principal: "User:a"}, {Principal: "User:b", Operation: OpWrite}}},
			func(t *testing.T, s *State) {
				if want := []ACL{testACL("User:b", "t", OpRead)}; !reflect.DeepEqual(s.ACLs, want) {
					t.Fatalf("acls %+v, want %+v", s.ACLs, want)
				}
			}},
		// The table is the FSM's, not the State's (producer_ids_test.go
		// checks it); the State moves to the claim's index only.
		{"ClaimProducerID", []Command{&PutCluster{Cluster: cluster("c")}}, &ClaimProducerID{ClaimedProducerID{Cluster: "c", VirtualID: 1 << 40, RealID: 9, At: 5}},
			func(t *testing.T, s *State) {
				if len(s.Clusters) != 1 {
					t.Fatalf("clusters %+v", s.Clusters)
				}
			}},
		{"DeleteJob", []Command{&PutJob{Job: job("j", "k", JobCancelled, 100, 100, "")}}, &DeleteJob{ID: "j"},
			func(t *testing.T, s *State) {
				if s.Jobs != nil {
					t.Fatalf("jobs %v", s.Jobs)
				}
			}},
	}
	covered := map[CommandType]bool{}
	for _, tc := range cases {
		covered[tc.cmd.Type()] = true
		t.Run(tc.name, func(t *testing.T) {
			var hooked []*State
			f := New(func(s *State) { hooked = append(hooked, s) })
			applyOK(t, f, tc.setup...)
			idx := f.State().Index + 1
			res := applyLog(t, f, idx, tc.cmd)
			applied, ok := res.(Applied)
			if !ok {
				t.Fatalf("Apply returned %v (%T)", res, res)
			}
			st := f.State()
			if applied.Index != idx || st.Index != idx {
				t.Fatalf("index: response %d, state %d, want %d", applied.Index, st.Index, idx)
			}
			if len(hooked) != len(tc.setup)+1 || hooked[len(hooked)-1] != st {
				t.Fatalf("OnApply saw %d states, the last not the published one", len(hooked))
			}
			if err := st.Validate(); err != nil {
				t.Fatalf("applied state invalid: %v", err)
			}
			tc.check(t, st)
		})
	}
	for _, cmd := range oneOfEach() {
		if !covered[cmd.Type()] {
			t.Errorf("no case applies %s", cmd.Type())
		}
	}
}

func wantPeerIDs(t *testing.T, s *State, ids ...int32) {
	t.Helper()
	var got []int32
	for _, p := range s.Peers {
		got = append(got, p.ID)
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("peer ids %v, want %v", got, ids)
	}
}

func wantClusters(t *testing.T, s *State, names ...string) {
	t.Helper()
	var got []string
	for _, c := range s.Clusters {
		got = append(got, c.Name)
	}
	if !slices.Equal(got, names) {
		t.Fatalf("clusters %v, want %v", got, names)
	}
}

func wantRoute(t *testing.T, s *State, topic, cluster string, m RouteMatch) {
	t.Helper()
	if c, got := s.RouteFor(topic); c != cluster || got != m {
		t.Fatalf("RouteFor(%q) = %q %v, want %q %v", topic, c, got, cluster, m)
	}
}

func TestApplyRegisterPeerResult(t *testing.T) {
	f := New(nil)
	applyOK(t, f, &RegisterPeer{Peer: peer("a", 4, "a:1")})
	for _, tc := range []struct {
		p    Peer
		want int32
	}{
		{peer("b", AutoPeerID, "b:1"), 5},
		{peer("a", AutoPeerID, "a:2"), 4},
		{peer("c", 2, "c:1"), 2},
	} {
		res := applyLog(t, f, f.State().Index+1, &RegisterPeer{Peer: tc.p})
		if a, ok := res.(Applied); !ok || a.PeerID != tc.want {
			t.Errorf("register %s: %v, want peer id %d", tc.p.Name, res, tc.want)
		}
	}
}

// TestApplyRejects: a command that is invalid, alone or against the state,
// returns its error and changes nothing (same pointer, same content, no
// hook call); State.Check gives the same answer before proposing.
func TestApplyRejects(t *testing.T) {
	setup := []Command{
		&PutCluster{Cluster: cluster("c1")},
		&PutCluster{Cluster: cluster("c2")},
		&PutCluster{Cluster: cluster("spare")},
		&RegisterPeer{Peer: Peer{ID: 1, Name: "a", KafkaAddr: "a:1", RaftAddr: "a:7", LocalBrokers: []BrokerRef{{"c1", 1}}}},
		&RegisterPeer{Peer: Peer{ID: 2, Name: "b", KafkaAddr: "b:1", RaftAddr: "b:7"}},
		&PutRoute{Topic: "t", Cluster: "c2"},
		&PutPrefixRoute{Prefix: "p.", Cluster: "c2"},
		&PutGroupRoute{Prefix: "g", Cluster: "spare"},
		&PutQuota{Quota: Quota{Topic: "t", ProduceBytesPerSec: 1}},
		&PutJob{Job: job("run", "k", JobRunning, 10, 10, "")},
		&PutJob{Job: job("done", "k", JobSucceeded, 10, 20, "")},
		&SetClusterID{ID: "v1"},
	}
	cases := []struct {
		name string
		cmd  Command
		err  error
		msg  string
	}{
		{"peer without name", &RegisterPeer{Peer: Peer{ID: 3, KafkaAddr: "c:1"}}, ErrInvalid, "needs a name"},
		{"peer id held by another name", &RegisterPeer{Peer: peer("c", 2, "c:1")}, ErrConflict, `held by peer "b"`},
		{"peer name holds another id", &RegisterPeer{Peer: peer("a", 9, "a:1")}, ErrConflict, "already holds id 1"},
		{"peer kafka address taken", &RegisterPeer{Peer: peer("c", 3, "a:1")}, ErrConflict, "share kafka address"},
		{"peer raft address taken", &RegisterPeer{Peer: Peer{ID: 3, Name: "c", KafkaAddr: "c:1", RaftAddr: "b:7"}}, ErrConflict, "share raft address"},
		{"peer local broker taken", &RegisterPeer{Peer: Peer{ID: 3, Name: "c", KafkaAddr: "c:1", LocalBrokers: []BrokerRef{{"c1", 1}}}}, ErrConflict, "already local to peer 1"},
		{"remove unknown peer", &RemovePeer{ID: 42}, ErrNotFound, "peer 42"},
		{"allow a bad name", &AllowPeer{Name: "a b"}, ErrInvalid, "allowed peer"},
		{"allow an empty name", &AllowPeer{}, ErrInvalid, "empty name"},
		{"disallow a name not allowed", &DisallowPeer{Name: "nobody"}, ErrNotFound, `"nobody"`},
		{"cluster without bootstrap", &PutCluster{Cluster: Cluster{Name: "x"}}, ErrInvalid, "no bootstrap"},
		{"delete unknown cluster", &DeleteCluster{Name: "x"}, ErrNotFound, `"x"`},
		{"delete cluster a route uses", &DeleteCluster{Name: "c2"}, ErrInUse, `topic "t"`},
		{"delete cluster a group route uses", &DeleteCluster{Name: "spare"}, ErrInUse, `group prefix route "g"`},
		{"route to unknown cluster", &PutRoute{Topic: "u", Cluster: "nope"}, ErrUnknownCluster, "put the cluster first"},
		{"route bad topic", &PutRoute{Topic: "a b", Cluster: "c1"}, ErrInvalid, "route topic"},
		{"delete unknown route", &DeleteRoute{Topic: "u"}, ErrNotFound, `"u"`},
		{"prefix route to unknown cluster", &PutPrefixRoute{Prefix: "u", Cluster: "nope"}, ErrUnknownCluster, "nope"},
		{"delete unknown prefix route", &DeletePrefixRoute{Prefix: "u"}, ErrNotFound, `"u"`},
		{"group route to unknown cluster", &PutGroupRoute{Prefix: "u", Cluster: "nope"}, ErrUnknownCluster, "nope"},
		{"delete unknown group route", &DeleteGroupRoute{Prefix: "u"}, ErrNotFound, `"u"`},
		{"default to unknown cluster", &SetDefaultCluster{Cluster: "nope"}, ErrUnknownCluster, "default"},
		{"negative quota", &PutQuota{Quota: Quota{Topic: "t", FetchBytesPerSec: -1}}, ErrInvalid, "negative rate"},
		{"delete unknown quota", &DeleteQuota{Topic: "t", Prefix: true}, ErrNotFound, `prefix "t"`},
		{"job changes kind", &PutJob{Job: job("run", "other", JobRunning, 10, 11, "")}, ErrConflict, "cannot change its kind"},
		{"job changes created_at", &PutJob{Job: job("run", "k", JobRunning, 9, 11, "")}, ErrConflict, "keep created_at"},
		{"finished job changes", &PutJob{Job: job("done", "k", JobRunning, 10, 30, "")}, ErrConflict, "already succeeded"},
		{"job negative time", &PutJob{Job: job("new", "k", JobRunning, -1, 0, "")}, ErrInvalid, "created_at"},
		{"delete unknown job", &DeleteJob{ID: "nope"}, ErrNotFound, `"nope"`},
		{"cluster id with a space", &SetClusterID{ID: "a b"}, ErrInvalid, "cluster id"},
		{"cluster id changes", &SetClusterID{ID: "v2"}, ErrConflict, "never changes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			f := New(func(*State) { calls++ })
			applyOK(t, f, setup...)
			calls = 0
			before := f.State()
			beforeJSON := stateJSON(t, before)

			if err := before.Check(tc.cmd); !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Check = %v, want %v containing %q", err, tc.err, tc.msg)
			}
			res := applyLog(t, f, before.Index+1, tc.cmd)
			err, ok := res.(error)
			if !ok || !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Apply = %v, want %v containing %q", res, tc.err, tc.msg)
			}
			if f.State() != before || stateJSON(t, before) != beforeJSON || calls != 0 {
				t.Fatalf("a rejected command changed the state (hook calls %d)", calls)
			}
		})
	}
}

// TestApplySkipsUndecodable: a committed entry that does not decode is
// skipped with an error and counted; the state is unchanged and the next
// valid entry applies. It used to panic, on every peer and again after
// every restart.
func TestApplySkipsUndecodable(t *testing.T) {
	f := New(nil)
	applyOK(t, f, &PutCluster{Cluster: cluster("c1")})
	for i, data := range [][]byte{nil, {0xff, 1, '{', '}'}, {byte(TypePutRoute), 99, '{', '}'}, {byte(TypePutRoute), 1, 'x'}} {
		before := f.State()
		beforeJSON := stateJSON(t, before)
		idx := before.Index + 10
		res := f.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: data})
		err, ok := res.(error)
		if !ok || !errors.Is(err, ErrSkippedEntry) || !strings.Contains(err.Error(), fmt.Sprintf("index %d", idx)) {
			t.Fatalf("data %q: Apply returned %v, want an ErrSkippedEntry naming index %d", data, res, idx)
		}
		if f.State() != before || stateJSON(t, f.State()) != beforeJSON {
			t.Fatalf("data %q: a skipped entry changed the state", data)
		}
		if got := f.Skipped(); got != uint64(i+1) {
			t.Fatalf("Skipped() = %d after %d garbage entries", got, i+1)
		}
		next := idx + 1
		if res := applyLog(t, f, next, &PutCluster{Cluster: cluster(fmt.Sprintf("n%d", i))}); res == nil {
			t.Fatalf("valid entry after garbage: nil response")
		} else if err, ok := res.(error); ok {
			t.Fatalf("valid entry after garbage: %v", err)
		}
		if f.State().Index != next {
			t.Fatalf("valid entry after garbage: state at index %d, want %d", f.State().Index, next)
		}
	}
}

func TestApplyIgnoresOtherLogTypes(t *testing.T) {
	f := New(nil)
	before := f.State()
	for _, typ := range []raft.LogType{raft.LogNoop, raft.LogBarrier, raft.LogConfiguration} {
		if res := f.Apply(&raft.Log{Index: 1, Type: typ, Data: []byte("junk")}); res != nil || f.State() != before {
			t.Errorf("log type %v: %v", typ, res)
		}
	}
}

// randomLog builds a log of n commands, valid and invalid mixed, from seed.
func randomLog(seed uint64, n int) []Command {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	name := func(prefix string, k int) string { return fmt.Sprintf("%s%d", prefix, r.IntN(k)) }
	var log []Command
	for range n {
		var c Command
		switch r.IntN(20) {
		case 0:
			id := int32(r.IntN(8)) - 1
			c = &RegisterPeer{Peer: Peer{ID: id, Name: name("p", 6), KafkaAddr: name("h", 10) + ":9092",
				LocalBrokers: []BrokerRef{{name("c", 4), int32(r.IntN(5))}}}}
		case 1:
			c = &RemovePeer{ID: int32(r.IntN(8))}
		case 2:
			c = &PutCluster{Cluster: cluster(name("c", 4))}
		case 3:
			c = &DeleteCluster{Name: name("c", 4)}
		case 4:
			c = &PutRoute{Topic: name("t", 20), Cluster: name("c", 4)}
		case 5:
			c = &DeleteRoute{Topic: name("t", 20)}
		case 6:
			c = &PutPrefixRoute{Prefix: name("t", 3), Cluster: name("c", 4)}
		case 7:
			c = &DeletePrefixRoute{Prefix: name("t", 3)}
		case 8:
			c = &PutGroupRoute{Prefix: name("g", 3), Cluster: name("c", 4)}
		case 9:
			c = &DeleteGroupRoute{Prefix: name("g", 3)}
		case 10:
			c = &SetDefaultCluster{Cluster: []string{"", "c0", "c1", "c9"}[r.IntN(4)]}
		case 11:
			c = &PutQuota{Quota: Quota{Topic: name("t", 5), Prefix: r.IntN(2) == 0, ProduceBytesPerSec: int64(r.IntN(100)) - 5}}
		case 12:
			c = &DeleteQuota{Topic: name("t", 5), Prefix: r.IntN(2) == 0}
		case 13:
			created := int64(1000 + r.IntN(3))
			c = &PutJob{Job: job(name("j", 4), name("k", 2), []JobState{JobPending, JobRunning, JobFailed}[r.IntN(3)], created, created+int64(r.IntN(10)), `{"n": 1}`)}
		case 14:
			c = &DeleteJob{ID: name("j", 4)}
		case 15:
			// Migrations use few topics and one partition, so that whole
			// lifecycles (switches, finishes, chains) happen in a log.
			c = &StartMigration{Topic: name("t", 3), From: name("c", 4), To: name("c", 4), Partitions: 1, Started: int64(1000 + r.IntN(3))}
		case 16:
			u := []struct {
				state MigrationState
				phase string
			}{{MigrationRunning, PhaseFence}, {MigrationRunning, PhasePrepare}, {MigrationSwitched, PhaseServing}, {MigrationAborted, PhasePrepare}, {MigrationFailed, PhaseFence}, {MigrationSwitched, PhaseFence}}[r.IntN(6)]
			c = &UpdateMigration{Topic: name("t", 3), State: u.state, Phase: u.phase, At: int64(1000 + r.IntN(3))}
		case 17:
			c = &SwitchMigration{Topic: name("t", 3), Starts: []int64{int64(r.IntN(100))}, Physical: []int64{int64(r.IntN(10))}, EpochBase: int32(r.IntN(50)), At: int64(1000 + r.IntN(3))}
		case 18:
			c = &FinishMigration{Topic: name("t", 3), At: int64(1000 + r.IntN(3))}
		case 19:
			// Few keys, so later claims meet earlier ones (the first
			// wins), and times a day apart, so claims expire.
			c = &ClaimProducerID{ClaimedProducerID{Cluster: name("c", 3), VirtualID: int64(r.IntN(4)), VirtualEpoch: int16(r.IntN(2)),
				RealID: int64(r.IntN(100)) - 1, At: 1 + int64(r.IntN(3))*ProducerIDClaimTTL}}
		}
		log = append(log, c)
	}
	return log
}

// TestDeterminism: the same log applied to two FSMs gives deep-equal states
// and the same responses after every entry, and byte-identical snapshots.
func TestDeterminism(t *testing.T) {
	switched := 0 // logs that switched a migration
	for seed := range uint64(20) {
		log := randomLog(seed, 400)
		a, b := New(nil), New(nil)
		accepted := 0
		for i, cmd := range log {
			data := mustEncode(t, cmd)
			e := &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: data}
			ra, rb := a.Apply(e), b.Apply(&raft.Log{Index: e.Index, Type: raft.LogCommand, Data: slices.Clone(data)})
			// Errors compare by text; an Applied deeply (its ProducerID is
			// a pointer).
			if fmt.Sprint(ra) != fmt.Sprint(rb) && !reflect.DeepEqual(ra, rb) {
				t.Fatalf("seed %d entry %d: responses differ: %v vs %v", seed, i, ra, rb)
			}
			if _, ok := ra.(Applied); ok {
				accepted++
			}
			if !reflect.DeepEqual(a.State(), b.State()) {
				t.Fatalf("seed %d entry %d: states differ", seed, i)
			}
			if !reflect.DeepEqual(a.pids.list(), b.pids.list()) {
				t.Fatalf("seed %d entry %d: producer id tables differ", seed, i)
			}
		}
		if err := a.State().Validate(); err != nil {
			t.Fatalf("seed %d: final state invalid: %v", seed, err)
		}
		if !bytes.Equal(persist(t, a), persist(t, b)) {
			t.Fatalf("seed %d: snapshots differ", seed)
		}
		if len(a.State().Chains) > 0 {
			switched++
		}
		if accepted < 50 || accepted > 380 {
			t.Fatalf("seed %d: %d of 400 accepted; the generator no longer mixes valid and invalid", seed, accepted)
		}
	}
	if switched == 0 {
		t.Fatal("no log switched a migration; the generator no longer reaches chains")
	}
}

// TestOldStatesNeverChange keeps every published State and checks that
// later commands, touching every section, leave them as they were.
func TestOldStatesNeverChange(t *testing.T) {
	f := New(nil)
	type kept struct {
		st   *State
		json string
	}
	var history []kept
	keep := func() { history = append(history, kept{f.State(), stateJSON(t, f.State())}) }
	keep()
	for _, cmd := range fullLog() {
		applyOK(t, f, cmd)
		keep()
	}
	more := []Command{
		&RegisterPeer{Peer: Peer{ID: AutoPeerID, Name: "a1", KafkaAddr: "a1:9093", LocalBrokers: []BrokerRef{{"east", 2}}}},
		&RegisterPeer{Peer: peer("a9", 9, "a9:1")},
		&RemovePeer{ID: 1},
		&RegisterPeer{Peer: peer("a5", 5, "a5:1")},
		&RemovePeer{ID: 0},
		&PutCluster{Cluster: Cluster{Name: "east", Bootstrap: []string{"x:1"}}},
		&PutCluster{Cluster: cluster("aaa")},
		&PutRoute{Topic: "orders", Cluster: "aaa"},
		&PutRoute{Topic: "a", Cluster: "aaa"},
		&DeleteRoute{Topic: "orders"},
		&PutPrefixRoute{Prefix: "logs.", Cluster: "east"},
		&PutPrefixRoute{Prefix: "a", Cluster: "east"},
		&PutGroupRoute{Prefix: "billing-", Cluster: "west"},
		&SetDefaultCluster{Cluster: "aaa"},
		&PutQuota{Quota: Quota{Topic: "orders", ProduceBytesPerSec: 1}},
		&PutQuota{Quota: Quota{Topic: "a", ProduceBytesPerSec: 1}},
		&DeleteQuota{Topic: "logs.", Prefix: true},
		&PutJob{Job: job("mig-1", "migrate-topic", JobSucceeded, 1700000000000, 1700000009000, `{}`)},
		&PutJob{Job: job("a", "k", JobPending, 1, 1, `[1]`)},
		&DeleteJob{ID: "mig-1"},
		&SetDefaultCluster{},
		&DeleteGroupRoute{Prefix: "billing-"},
		&DeletePrefixRoute{Prefix: "logs."},
	}
	for _, cmd := range more {
		applyOK(t, f, cmd)
		keep()
		for i, h := range history {
			if got := stateJSON(t, h.st); got != h.json {
				t.Fatalf("after %s, state %d changed:\n%s\nwas\n%s", cmd.Type(), i, got, h.json)
			}
		}
	}
}

func TestCheckDoesNotChangeState(t *testing.T) {
	f := New(nil)
	applyOK(t, f, fullLog()...)
	st := f.State()
	before := stateJSON(t, st)
	for _, cmd := range append(oneOfEach(), fullLog()...) {
		_ = st.Check(cmd)
	}
	if stateJSON(t, st) != before || f.State() != st {
		t.Fatal("Check changed the state")
	}
}

func TestCheckOnHandBuiltState(t *testing.T) {
	// A hand-built State may list clusters unsorted; Check still finds them.
	st := &State{Clusters: []Cluster{cluster("z"), cluster("a")}}
	if err := st.Check(&PutRoute{Topic: "t", Cluster: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := st.Check(nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Check(nil) = %v", err)
	}
}

func TestRegisterPeerIDExhausted(t *testing.T) {
	f := New(nil)
	applyOK(t, f, &RegisterPeer{Peer: peer("max", math.MaxInt32, "m:1")})
	err := f.State().Check(&RegisterPeer{Peer: peer("next", AutoPeerID, "n:1")})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("Check = %v, want ErrConflict", err)
	}
}

// TestAllowListBounded: the allow-list stops at MaxAllowedPeers names.
func TestAllowListBounded(t *testing.T) {
	s := &State{}
	for i := range MaxAllowedPeers {
		next, err := s.Next(&AllowPeer{Name: fmt.Sprintf("p%05d", i)}, uint64(i+1))
		if err != nil {
			t.Fatalf("allow %d: %v", i, err)
		}
		s = next
	}
	if err := s.Check(&AllowPeer{Name: "one-more"}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "allow-list") {
		t.Fatalf("allow past the cap: %v, want ErrInvalid", err)
	}
	if err := s.Check(&AllowPeer{Name: "p00000"}); err != nil {
		t.Fatalf("re-allowing a listed name at the cap: %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}
