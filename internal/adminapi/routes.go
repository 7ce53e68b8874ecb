package adminapi

import "github.com/switchyard-proxy/switchyard/fsm"

// Routes: GET /v1/routes, GET|PUT /v1/routes/{topic}, the prefix, group
// and default-cluster routes (docs/admin-api.md "Topic routes").

// Routes is GET /v1/routes: the whole routing table.
type Routes struct {
	Topics         []fsm.TopicRoute  `json:"topics"`
	Prefixes       []fsm.PrefixRoute `json:"prefixes"`
	GroupPrefixes  []fsm.PrefixRoute `json:"group_prefixes"`
	DefaultCluster string            `json:"default_cluster"`
	Default        fsm.RouteTargets  `json:"default"`
}

// RouteBody is the PUT body of every route (exact, prefix, group, the
// default) and the answer of GET /v1/default-cluster: the cluster and,
// inlined, the region targets and failover policy (docs/regions.md).
type RouteBody struct {
	Cluster string `json:"cluster"`
	fsm.RouteTargets
}

// RouteResolution is GET /v1/routes/{topic}[?region=R]: where a client of
// region R (none: the route's cluster) is routed, and the rule that chose
// it (Match is exact, prefix or default; Rule is empty for default).
type RouteResolution struct {
	Topic   string `json:"topic"`
	Region  string `json:"region,omitempty"`
	Cluster string `json:"cluster"`
	Match   string `json:"match"`
	Rule    string `json:"rule,omitempty"`
	// ProduceCluster is where the client's records are written when that
	// is not Cluster: while Cluster's route fails back (failing-back),
	// Produce is on the recovered cluster and the rest on the fallback.
	ProduceCluster string `json:"produce_cluster,omitempty"`
}
