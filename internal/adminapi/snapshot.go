package adminapi

// Backup and restore: GET|POST /v1/snapshot (docs/operations.md "Backup
// and restore"). A backup is the FSM's snapshot file (NDJSON), not JSON;
// only the restore's answer is.

// RestoreReport is the answer of POST /v1/snapshot: what was installed.
type RestoreReport struct {
	// Index is the Raft index the restored state was installed at.
	Index uint64 `json:"index"`
	// SavedIndex is the index the backup was taken at (in its cluster).
	SavedIndex uint64 `json:"saved_index"`
	ClusterID  string `json:"cluster_id"`
	Clusters   int    `json:"clusters"`
	Routes     int    `json:"routes"`
	Quotas     int    `json:"quotas"`
	Users      int    `json:"users"`
	ACLs       int    `json:"acls"`
	Regions    int    `json:"regions"`
	Jobs       int    `json:"jobs"`
	// Peers is the running cluster's peer table, kept as it was.
	Peers int `json:"peers"`
}
