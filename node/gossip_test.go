package node

import (
	"log/slog"
	"net"
	"testing"

	"github.com/hashicorp/memberlist"
)

// TestGossipRaftAddr: Raft resolves a peer's address through raftAddr on
// every RPC; it must follow the peer's gossiped metadata (a restart on a
// new address) and know nothing of a peer gossip never saw.
func TestGossipRaftAddr(t *testing.T) {
	g, err := newGossip("a", peerMeta{Kafka: "k:1", Raft: "10.0.0.1:1"}, newNotifier(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	join := func(name string, meta peerMeta, st memberState) {
		b, err := encodeMeta(meta)
		if err != nil {
			t.Fatal(err)
		}
		g.update(&memberlist.Node{Name: name, Addr: net.IPv4(127, 0, 0, 1), Port: 7946, Meta: b}, st)
	}
	join("b", peerMeta{Kafka: "k:2", Raft: "10.0.0.2:1"}, memberAlive)
	join("c", peerMeta{Kafka: "k:3"}, memberAlive) // gossips no peer port
	join("d", peerMeta{Kafka: "k:4", Raft: "10.0.0.4:1"}, memberDead)
	for _, tc := range []struct {
		name, want string
		ok         bool
	}{
		{"b", "10.0.0.2:1", true},
		{"c", "", false},
		{"d", "10.0.0.4:1", true}, // dead peers keep their address: Raft retries it
		{"e", "", false},
	} {
		got, ok := g.raftAddr(tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("raftAddr(%q) = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	join("b", peerMeta{Kafka: "k:2", Raft: "10.0.0.9:1"}, memberAlive)
	if got, _ := g.raftAddr("b"); got != "10.0.0.9:1" {
		t.Errorf("after b moved: raftAddr(b) = %q, want 10.0.0.9:1", got)
	}
}
