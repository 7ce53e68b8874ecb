package fsm

import (
	"errors"
	"strings"
	"testing"
)

func TestStateValidate(t *testing.T) {
	cl := []Cluster{{Name: "main", Bootstrap: []string{"b:9092"}}}
	peer := func(id int32, addr string) Peer { return Peer{ID: id, KafkaAddr: addr} }
	cases := []struct {
		name  string
		state State
		err   string
	}{
		{"valid", State{Clusters: cl, Peers: []Peer{peer(0, "a:1"), peer(2, "b:1")}}, ""},
		{"unsorted", State{Clusters: cl, Peers: []Peer{peer(2, "a:1"), peer(0, "b:1")}}, "not sorted"},
		{"duplicate id", State{Clusters: cl, Peers: []Peer{peer(1, "a:1"), peer(1, "b:1")}}, "not sorted"},
		{"negative id", State{Clusters: cl, Peers: []Peer{peer(-1, "a:1")}}, "negative id"},
		{"no port", State{Clusters: cl, Peers: []Peer{peer(0, "a")}}, "not host:port"},
		{"empty addr", State{Clusters: cl, Peers: []Peer{peer(0, "")}}, "not host:port"},
		{"shared addr", State{Clusters: cl, Peers: []Peer{peer(0, "a:1"), peer(1, "a:1")}}, "share kafka address"},
		{"local broker of a cluster not yet defined", State{Clusters: cl, Peers: []Peer{{ID: 0, KafkaAddr: "a:1", LocalBrokers: []BrokerRef{{Cluster: "x"}}}}}, ""},
		{"cluster without bootstrap", State{Clusters: []Cluster{{Name: "main"}}}, "no bootstrap"},
		{"cluster twice", State{Clusters: append(cl, cl[0])}, "defined twice"},
		{"cluster without name", State{Clusters: []Cluster{{Bootstrap: []string{"b:1"}}}}, "empty name"},
		{"unsorted clusters are fine by hand", State{Clusters: []Cluster{{Name: "z", Bootstrap: []string{"b:1"}}, cl[0]}}, ""},
		{"bad bootstrap", State{Clusters: []Cluster{{Name: "main", Bootstrap: []string{"b"}}}}, "not host:port"},
		{"sasl without password file", State{Clusters: []Cluster{{Name: "main", Bootstrap: []string{"b:1"}, SASL: &ClusterSASL{Mechanism: SASLPlain, Username: "u"}}}}, "password_file"},
		{"shared name", State{Clusters: cl, Peers: []Peer{{ID: 0, Name: "x", KafkaAddr: "a:1"}, {ID: 1, Name: "x", KafkaAddr: "b:1"}}}, "share name"},
		{"unnamed peers are fine by hand", State{Clusters: cl, Peers: []Peer{peer(0, "a:1"), peer(1, "b:1")}}, ""},
		{"shared raft addr", State{Clusters: cl, Peers: []Peer{{ID: 0, KafkaAddr: "a:1", RaftAddr: "r:1"}, {ID: 1, KafkaAddr: "b:1", RaftAddr: "r:1"}}}, "share raft address"},
		{"bad gossip addr", State{Clusters: cl, Peers: []Peer{{ID: 0, KafkaAddr: "a:1", GossipAddr: "g"}}}, "gossip address"},
		{"broker local to two peers", State{Clusters: cl, Peers: []Peer{
			{ID: 0, KafkaAddr: "a:1", LocalBrokers: []BrokerRef{{"main", 1}}},
			{ID: 1, KafkaAddr: "b:1", LocalBrokers: []BrokerRef{{"main", 1}}}}}, "both list broker 1"},
		{"route to unknown cluster", State{Clusters: cl, Routes: Routes{Topics: []TopicRoute{{Topic: "t", Cluster: "x"}}}}, "names cluster \"x\""},
		{"routes unsorted", State{Clusters: cl, Routes: Routes{Topics: []TopicRoute{{Topic: "t2", Cluster: "main"}, {Topic: "t1", Cluster: "main"}}}}, "not sorted"},
		{"prefix routes duplicate", State{Clusters: cl, Routes: Routes{Prefixes: []PrefixRoute{{Prefix: "p", Cluster: "main"}, {Prefix: "p", Cluster: "main"}}}}, "not sorted"},
		{"group prefix empty", State{Clusters: cl, Routes: Routes{GroupPrefixes: []PrefixRoute{{Prefix: "", Cluster: "main"}}}}, "is empty"},
		{"default unknown", State{Clusters: cl, Routes: Routes{DefaultCluster: "x"}}, "default cluster"},
		{"quotas exact after prefix", State{Quotas: []Quota{{Topic: "a", Prefix: true}, {Topic: "b"}}}, "not sorted"},
		{"quotas ok", State{Quotas: []Quota{{Topic: "b"}, {Topic: "a", Prefix: true}}}, ""},
		{"quota negative", State{Quotas: []Quota{{Topic: "b", FetchBytesPerSec: -1}}}, "negative rate"},
		{"jobs unsorted", State{Jobs: []Job{job("b", "k", JobPending, 1, 1, ""), job("a", "k", JobPending, 1, 1, "")}}, "not sorted"},
		{"job bad state", State{Jobs: []Job{job("b", "k", "", 1, 1, "")}}, "state"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.state.Validate()
			if tc.err == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

func TestStateLookups(t *testing.T) {
	s := &State{
		Clusters: []Cluster{{Name: "main", Bootstrap: []string{"b:1"}}},
		Peers:    []Peer{{ID: 1, KafkaAddr: "a:1"}, {ID: 5, KafkaAddr: "b:1"}, {ID: 9, KafkaAddr: "c:1"}},
	}
	for _, id := range []int32{1, 5, 9} {
		if p, ok := s.Peer(id); !ok || p.ID != id {
			t.Errorf("Peer(%d) = %v, %v", id, p, ok)
		}
	}
	for _, id := range []int32{0, 2, 10, -1} {
		if _, ok := s.Peer(id); ok {
			t.Errorf("Peer(%d) found a peer", id)
		}
	}
	if c, ok := s.Cluster("main"); !ok || c.Name != "main" {
		t.Errorf("Cluster(main) = %v, %v", c, ok)
	}
	if _, ok := s.Cluster("other"); ok {
		t.Error("Cluster(other) found a cluster")
	}
}

func TestStateValidateSentinels(t *testing.T) {
	bad := &State{Clusters: []Cluster{{Name: "main"}}}
	if err := bad.Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("no bootstrap: %v, want ErrInvalid", err)
	}
	unknown := &State{Routes: Routes{DefaultCluster: "x"}}
	if err := unknown.Validate(); !errors.Is(err, ErrUnknownCluster) {
		t.Errorf("unknown cluster: %v, want ErrUnknownCluster", err)
	}
}

func TestRouteFor(t *testing.T) {
	s := &State{Routes: Routes{
		Topics:   []TopicRoute{{Topic: "logs.audit", Cluster: "exact"}, {Topic: "orders", Cluster: "exact"}},
		Prefixes: []PrefixRoute{{Prefix: "l", Cluster: "p-l"}, {Prefix: "logs", Cluster: "p-logs"}, {Prefix: "logs.", Cluster: "p-logs."}, {Prefix: "logs.app", Cluster: "p-logs.app"}, {Prefix: "m", Cluster: "p-m"}},
	}}
	cases := []struct {
		topic, cluster string
		match          RouteMatch
	}{
		{"orders", "exact", RouteMatch{MatchExact, "orders"}},
		{"logs.audit", "exact", RouteMatch{MatchExact, "logs.audit"}},       // exact beats a longer-matching prefix
		{"logs.app.web", "p-logs.app", RouteMatch{MatchPrefix, "logs.app"}}, // longest prefix wins
		{"logs.apple", "p-logs.app", RouteMatch{MatchPrefix, "logs.app"}},   // prefixes are plain string prefixes
		{"logs.ap", "p-logs.", RouteMatch{MatchPrefix, "logs."}},            // shorter than logs.app
		{"logs", "p-logs", RouteMatch{MatchPrefix, "logs"}},                 // a prefix equal to the topic matches
		{"logsx", "p-logs", RouteMatch{MatchPrefix, "logs"}},                // later-sorting rule logs. does not match
		{"lx", "p-l", RouteMatch{MatchPrefix, "l"}},                         // only the short rule matches
		{"ordersx", "", RouteMatch{Kind: MatchNone}},                        // exact routes are exact
		{"a", "", RouteMatch{Kind: MatchNone}},                              // sorts before every rule
		{"z", "", RouteMatch{Kind: MatchNone}},                              // sorts after every rule
	}
	for _, tc := range cases {
		c, m := s.RouteFor(tc.topic)
		if c != tc.cluster || m != tc.match {
			t.Errorf("RouteFor(%q) = %q %v, want %q %v", tc.topic, c, m, tc.cluster, tc.match)
		}
	}
	s.Routes.DefaultCluster = "dflt"
	for topic, want := range map[string]string{"z": "dflt", "a": "dflt", "ordersx": "dflt", "orders": "exact", "lx": "p-l"} {
		if c, m := s.RouteFor(topic); c != want || (want == "dflt") != (m.Kind == MatchDefault) {
			t.Errorf("with a default, RouteFor(%q) = %q %v, want %q", topic, c, m, want)
		}
	}
	if got := (RouteMatch{MatchPrefix, "logs."}).String(); got != "prefix:logs." {
		t.Errorf("RouteMatch.String() = %q", got)
	}
	if got := (RouteMatch{Kind: MatchDefault}).String(); got != "default" {
		t.Errorf("RouteMatch.String() = %q", got)
	}
	// An empty State routes nothing and does not panic.
	if c, m := (&State{}).RouteFor("t"); c != "" || m.Kind != MatchNone {
		t.Errorf("empty state: %q %v", c, m)
	}
}

func TestGroupHome(t *testing.T) {
	s := &State{Routes: Routes{
		Topics:        []TopicRoute{{Topic: "billing", Cluster: "topic-route"}},
		GroupPrefixes: []PrefixRoute{{Prefix: "billing", Cluster: "b"}, {Prefix: "billing-eu", Cluster: "b-eu"}},
	}}
	for group, want := range map[string]RouteMatch{
		"billing-eu-1": {MatchPrefix, "billing-eu"},
		"billing-us":   {MatchPrefix, "billing"},
		"other":        {Kind: MatchNone},
	} {
		if _, m := s.GroupHome(group); m != want {
			t.Errorf("GroupHome(%q) = %v, want %v", group, m, want)
		}
	}
	s.Routes.DefaultCluster = "d"
	if c, m := s.GroupHome("other"); c != "d" || m.Kind != MatchDefault {
		t.Errorf("GroupHome(other) = %q %v", c, m)
	}
}

func TestQuotaFor(t *testing.T) {
	s := &State{Quotas: []Quota{
		{Topic: "logs.free"},
		{Topic: "orders", ProduceBytesPerSec: 1},
		{Topic: "logs", Prefix: true, ProduceBytesPerSec: 2},
		{Topic: "logs.app", Prefix: true, ProduceBytesPerSec: 3},
		{Topic: "orders", Prefix: true, ProduceBytesPerSec: 4},
	}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]int64{
		"orders":       1, // exact beats the equal prefix
		"orders-eu":    4,
		"logs.app.web": 3,
		"logs.x":       2,
		"logs.free":    0, // exact 0/0 exempts a topic from its prefix rule
	} {
		q, ok := s.QuotaFor(topic)
		if !ok || q.ProduceBytesPerSec != want {
			t.Errorf("QuotaFor(%q) = %+v %v, want produce %d", topic, q, ok, want)
		}
	}
	if q, ok := s.QuotaFor("unlimited"); ok {
		t.Errorf("QuotaFor(unlimited) = %+v", q)
	}
}

func TestJobStateTerminal(t *testing.T) {
	for s, want := range map[JobState]bool{JobPending: false, JobRunning: false, JobSucceeded: true, JobFailed: true, JobCancelled: true} {
		if s.Terminal() != want {
			t.Errorf("%s.Terminal() = %v", s, !want)
		}
	}
}

// TestDeriveCredential: a derived credential checks its own password and no
// other, for every mechanism, and the iteration bounds are enforced.
func TestDeriveCredential(t *testing.T) {
	for _, mech := range []string{SASLPlain, SASLScramSHA256, SASLScramSHA512} {
		c, err := DeriveCredential(mech, "pencil", []byte("salty-salt"), MinScramIterations)
		if err != nil {
			t.Fatal(err)
		}
		if !c.CheckPassword("pencil") || c.CheckPassword("pencil ") || c.CheckPassword("") {
			t.Fatalf("%s: CheckPassword does not tell the password from others", mech)
		}
		if len(c.StoredKey) == 0 || len(c.ServerKey) != len(c.StoredKey) {
			t.Fatalf("%s: keys %d and %d bytes", mech, len(c.StoredKey), len(c.ServerKey))
		}
	}
	if _, err := DeriveCredential(SASLScramSHA256, "p", []byte("s"), MinScramIterations-1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("too few iterations: %v", err)
	}
	if _, err := DeriveCredential(SASLScramSHA256, "p", []byte("short"), MinScramIterations); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a salt shorter than %d bytes: %v", MinSaltLen, err)
	}
	if _, err := DeriveCredential("GSSAPI", "p", []byte("s"), MinScramIterations); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown mechanism: %v", err)
	}
}
