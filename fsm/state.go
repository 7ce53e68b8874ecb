package fsm

import (
	"fmt"
	"net"
	"slices"
)

// State is one immutable view of the cluster configuration. The data plane
// holds a pointer to the latest State and never mutates it; a change produces
// a new State.
type State struct {
	// Peers are the Switchyard peers, sorted by ID. They are the brokers that
	// clients see.
	Peers []Peer
	// Clusters are the backend Kafka clusters behind the proxy.
	Clusters []Cluster
}

// Peer is one Switchyard process. Its ID is the broker id clients see.
type Peer struct {
	ID     int32
	Name   string
	Region string
	// KafkaAddr is the advertised host:port clients connect to.
	KafkaAddr string
	// AdminAddr is the admin HTTP API address.
	AdminAddr string
	// LocalBrokers are the backend brokers that run on this peer's host. A
	// partition led by one of them is presented as led by this peer.
	LocalBrokers []BrokerRef
}

// BrokerRef names one broker of one backend cluster.
type BrokerRef struct {
	Cluster  string
	BrokerID int32
}

// Cluster is a backend Kafka cluster.
type Cluster struct {
	Name      string
	Bootstrap []string
	Region    string
}

// Peer returns the peer with the given id.
func (s *State) Peer(id int32) (Peer, bool) {
	i, ok := slices.BinarySearchFunc(s.Peers, id, func(p Peer, id int32) int { return int(p.ID) - int(id) })
	if !ok {
		return Peer{}, false
	}
	return s.Peers[i], true
}

// Cluster returns the backend cluster with the given name.
func (s *State) Cluster(name string) (Cluster, bool) {
	for _, c := range s.Clusters {
		if c.Name == name {
			return c, true
		}
	}
	return Cluster{}, false
}

// Validate checks the invariants every State must hold: unique peer ids
// sorted ascending, unique addresses, known clusters in local broker refs.
func (s *State) Validate() error {
	names := map[string]bool{}
	for _, c := range s.Clusters {
		if c.Name == "" {
			return fmt.Errorf("cluster with empty name")
		}
		if names[c.Name] {
			return fmt.Errorf("cluster %q defined twice", c.Name)
		}
		if len(c.Bootstrap) == 0 {
			return fmt.Errorf("cluster %q has no bootstrap servers", c.Name)
		}
		names[c.Name] = true
	}
	addrs := map[string]int32{}
	for i, p := range s.Peers {
		if i > 0 && s.Peers[i-1].ID >= p.ID {
			return fmt.Errorf("peers not sorted by unique id at id %d", p.ID)
		}
		if p.ID < 0 {
			return fmt.Errorf("peer %q has negative id %d", p.Name, p.ID)
		}
		if _, port, err := net.SplitHostPort(p.KafkaAddr); err != nil || port == "" {
			return fmt.Errorf("peer %d kafka address %q is not host:port", p.ID, p.KafkaAddr)
		}
		if other, dup := addrs[p.KafkaAddr]; dup {
			return fmt.Errorf("peers %d and %d share kafka address %s", other, p.ID, p.KafkaAddr)
		}
		addrs[p.KafkaAddr] = p.ID
		for _, b := range p.LocalBrokers {
			if !names[b.Cluster] {
				return fmt.Errorf("peer %d names unknown cluster %q in local brokers", p.ID, b.Cluster)
			}
		}
	}
	return nil
}
