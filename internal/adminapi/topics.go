package adminapi

// Topics: GET /v1/topics (docs/admin-api.md "Topics").

// Limits of GET /v1/topics?limit=N.
const (
	TopicsDefaultLimit = 1000
	TopicsMaxLimit     = 10000
)

// Topic is one topic as a peer sees it: where its route sends it now,
// which clusters hold it (per this peer's last metadata refresh of each),
// and whether a live migration moves it.
type Topic struct {
	// Name is the topic's name as clients see it.
	Name string `json:"name"`
	// Cluster is the cluster the topic's route resolves to now (where
	// produce goes); "" when no route, prefix rule or default cluster
	// routes it.
	Cluster string `json:"cluster"`
	// Partitions is the partition count on Cluster per this peer's
	// metadata, 0 when unknown (the topic is not on that cluster, or its
	// metadata has not been loaded).
	Partitions int `json:"partitions"`
	// PresentOn are the clusters whose metadata holds the topic, sorted.
	PresentOn []string `json:"present_on"`
	// Migrating: a live migration of the topic is in progress (running or
	// switched; not finished, aborted or failed).
	Migrating bool `json:"migrating"`
}

// TopicList is GET /v1/topics: the topics sorted by name, internal ones
// ("__" prefix) left out, at most the request's limit; Truncated says
// whether more matched.
type TopicList struct {
	Topics    []Topic `json:"topics"`
	Truncated bool    `json:"truncated"`
}
