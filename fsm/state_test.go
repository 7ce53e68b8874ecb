package fsm

import (
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
		{"unknown cluster", State{Clusters: cl, Peers: []Peer{{ID: 0, KafkaAddr: "a:1", LocalBrokers: []BrokerRef{{Cluster: "x"}}}}}, "unknown cluster"},
		{"cluster without bootstrap", State{Clusters: []Cluster{{Name: "main"}}}, "no bootstrap"},
		{"cluster twice", State{Clusters: append(cl, cl[0])}, "defined twice"},
		{"cluster without name", State{Clusters: []Cluster{{Bootstrap: []string{"b:1"}}}}, "empty name"},
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
