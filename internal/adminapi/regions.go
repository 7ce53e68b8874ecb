package adminapi

import "github.com/switchyard-proxy/switchyard/fsm"

// Regions, backend health and failover: GET /v1/regions, PUT|DELETE
// /v1/regions/{region}, GET /v1/health, GET /v1/failover, POST
// /v1/failover|failback/{cluster} (docs/admin-api.md, docs/regions.md).
// GET /v1/regions answers a bare list of fsm.Region; GET /v1/health and
// GET /v1/failover bare lists of ClusterHealth and FailoverEntry.

// RegionBody is the PUT body of a region; the name comes from the path.
type RegionBody struct {
	Networks []string `json:"networks"`
	Fallback []string `json:"fallback"`
}

// ClusterHealth is the Raft leader's view of one backend cluster.
type ClusterHealth struct {
	Cluster string `json:"cluster"`
	State   string `json:"state"`
	// Peers are the verdicts (up, down) of the peers whose report is
	// fresh, by peer name.
	Peers map[string]string `json:"peers"`
	// Since is when State last changed on this leader (unix ms; the
	// leader's start of leadership for a state it never saw change).
	Since int64 `json:"since"`
	// UpForMS is how long a majority has said up (0 when none does): the
	// failover driver fails back once it reaches up_after.
	UpForMS int64 `json:"up_for_ms"`
}

// FailoverEntry is one cluster's failover state, and the answer of a
// manual failover or failback.
type FailoverEntry struct {
	Cluster     string            `json:"cluster"`
	State       fsm.FailoverState `json:"state"`
	Since       int64             `json:"since"`
	RoutesMoved int               `json:"routes_moved"`
	Manual      bool              `json:"manual"`
}
