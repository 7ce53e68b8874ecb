package adminapi

import "github.com/switchyard-proxy/switchyard/fsm"

// Backend clusters: GET /v1/clusters, GET|PUT|DELETE /v1/clusters/{name}
// (docs/admin-api.md "Backend clusters"). A cluster's wire shape is
// fsm.Cluster, its TLS and SASL sub-objects fsm.ClusterTLS and
// fsm.ClusterSASL: they name files, never secrets.

// ClusterList is GET /v1/clusters, sorted by name.
type ClusterList struct {
	Clusters []fsm.Cluster `json:"clusters"`
}

// ClusterBody is the PUT body of a cluster: fsm.Cluster with the name
// optional, as the path names the cluster. Name shadows the embedded
// Cluster's name (encoding/json takes the shallower field), so a body
// without one encodes no "name" and a decoded one sets Name, never
// Cluster.Name; a server checks it against the path.
type ClusterBody struct {
	Name string `json:"name,omitempty"`
	fsm.Cluster
}
