package adminapi

import "github.com/switchyard-proxy/switchyard/fsm"

// Status, peers and the peer allow-list: GET /v1/status, GET /v1/peers,
// GET /v1/peers/allow-list (docs/admin-api.md).

// Status is GET /v1/status: this peer, the leader, Raft's view, every peer
// and the backend clusters as this peer's data plane serves them.
type Status struct {
	Node           StatusNode      `json:"node"`
	Leader         *StatusLeader   `json:"leader"`
	Raft           StatusRaft      `json:"raft"`
	StateIndex     uint64          `json:"state_index"`
	ClusterID      string          `json:"cluster_id,omitempty"`
	Peers          []Peer          `json:"peers"`
	Clusters       []ClusterStatus `json:"clusters"`
	TopicConflicts []TopicConflict `json:"topic_conflicts"`
}

// StatusNode is the peer that answered; ID is null until the replicated
// peer table names it.
type StatusNode struct {
	ID      *int32 `json:"id"`
	Name    string `json:"name"`
	Region  string `json:"region,omitempty"`
	Version string `json:"version,omitempty"`
}

// StatusLeader is the Raft leader this peer knows (null: none).
type StatusLeader struct {
	Name      string `json:"name"`
	RaftAddr  string `json:"raft_addr"`
	AdminAddr string `json:"admin_addr,omitempty"`
}

// StatusRaft is this peer's Raft view. LastContactMS is 0 on the leader
// and -1 when a follower never heard from one.
type StatusRaft struct {
	State         string `json:"state"`
	Term          uint64 `json:"term"`
	LastLogIndex  uint64 `json:"last_log_index"`
	CommitIndex   uint64 `json:"commit_index"`
	AppliedIndex  uint64 `json:"applied_index"`
	LastContactMS int64  `json:"last_contact_ms"`
	Voters        int    `json:"voters"`
	Nonvoters     int    `json:"nonvoters"`
}

// ClusterStatus is a backend cluster as this peer's data plane serves it.
type ClusterStatus struct {
	Name string `json:"name"`
	// Served: this peer's data plane has a backend for it.
	Served bool `json:"served"`
	// Loaded: its metadata has been loaded at least once.
	Loaded bool `json:"loaded"`
}

// TopicConflict is a topic that exists in more than one backend cluster;
// clients see only the copy in the cluster its route names.
type TopicConflict struct {
	Topic    string   `json:"topic"`
	Clusters []string `json:"clusters"`
	RoutedTo string   `json:"routed_to"`
}

// Peer is a peer as the API shows it: its replicated entry and its health
// as the answering peer sees it. Gossip is alive, suspect, dead, left or
// unknown; Raft is voter, nonvoter or none.
type Peer struct {
	fsm.Peer
	Gossip string `json:"gossip"`
	Raft   string `json:"raft"`
	Live   bool   `json:"live"`
}

// PeerList is GET /v1/peers.
type PeerList struct {
	Peers []Peer `json:"peers"`
}

// AllowList is GET /v1/peers/allow-list.
type AllowList struct {
	// AllowList is the replicated allow-list.
	AllowList []string `json:"allow_list"`
	// Static are the answering peer's --allow-peer names.
	Static []string `json:"static"`
	// Unproven are the members the answering peer, when it leads, last
	// refused.
	Unproven []UnprovenMember `json:"unproven"`
}

// UnprovenMember is a gossip member refused as a peer, and why.
type UnprovenMember struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}
