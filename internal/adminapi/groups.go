package adminapi

import (
	"encoding/json"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// Consumer groups and online offset resets: GET /v1/groups, GET
// /v1/groups/{group}, POST|GET /v1/groups/{group}/offset-resets
// (docs/admin-api.md "Consumer groups", docs/offset-reset.md). A reset
// job's wire shape is fsm.OffsetReset.

// GroupList is GET /v1/groups. Errors names the brokers that could not be
// asked; left out when every one answered.
type GroupList struct {
	Groups []GroupListing `json:"groups"`
	Errors []string       `json:"errors,omitempty"`
}

// GroupListing is one group in GET /v1/groups.
type GroupListing struct {
	Group        string `json:"group"`
	State        string `json:"state"`
	ProtocolType string `json:"protocol_type"`
	// Type is "classic" or "consumer" (KIP-848) when the brokers say
	// (ListGroups v5+), else empty.
	Type string `json:"type,omitempty"`
}

// Group is GET /v1/groups/{group}.
type Group struct {
	Group string `json:"group"`
	// Type is "classic" or "consumer" (KIP-848).
	Type         string        `json:"type"`
	State        string        `json:"state"`
	ProtocolType string        `json:"protocol_type,omitempty"`
	Protocol     string        `json:"protocol,omitempty"`
	Members      []GroupMember `json:"members"`
	Topics       []GroupTopic  `json:"topics"`
	// OffsetsError says why the committed offsets are missing (a reset
	// fencing the group answers its offset fetches with
	// COORDINATOR_LOAD_IN_PROGRESS for a few seconds).
	OffsetsError string           `json:"offsets_error,omitempty"`
	OffsetReset  *fsm.OffsetReset `json:"offset_reset,omitempty"`
}

// GroupMember is one member of a group and what it is assigned.
type GroupMember struct {
	MemberID   string            `json:"member_id"`
	InstanceID string            `json:"instance_id,omitempty"`
	ClientID   string            `json:"client_id"`
	ClientHost string            `json:"client_host"`
	Assignment []TopicPartitions `json:"assignment"`
}

// TopicPartitions is a topic and some of its partitions.
type TopicPartitions struct {
	Topic      string  `json:"topic"`
	Partitions []int32 `json:"partitions"`
}

// GroupTopic is a topic the group has committed offsets in or is
// assigned, with the total lag of the partitions whose lag is known.
type GroupTopic struct {
	Topic      string           `json:"topic"`
	Lag        int64            `json:"lag"`
	Partitions []GroupPartition `json:"partitions"`
}

// GroupPartition: Committed is -1 when the group committed nothing there;
// LogEndOffset -1 when it could not be listed; Lag is null when either is
// unknown.
type GroupPartition struct {
	Partition    int32  `json:"partition"`
	Committed    int64  `json:"committed"`
	LogEndOffset int64  `json:"log_end_offset"`
	Lag          *int64 `json:"lag"`
	Metadata     string `json:"metadata,omitempty"`
	Error        string `json:"error,omitempty"`
}

// OffsetResetRequest is POST /v1/groups/{group}/offset-resets. To is kept
// as sent so the server can say exactly what is wrong with it; ResetToJSON
// builds it.
type OffsetResetRequest struct {
	Topics     []string           `json:"topics"`
	Partitions map[string][]int32 `json:"partitions,omitempty"`
	To         json.RawMessage    `json:"to"`
	DryRun     bool               `json:"dry_run"`
}

// ResetToJSON is the request's "to" for a target: "earliest", "latest",
// or an object with exactly one of timestamp, offset, shift.
func ResetToJSON(to fsm.ResetTo) json.RawMessage {
	var b []byte
	switch to.Kind {
	case fsm.ResetToEarliest, fsm.ResetToLatest:
		b, _ = json.Marshal(to.Kind) // a string always encodes
	default:
		b, _ = json.Marshal(map[string]int64{to.Kind: to.Value})
	}
	return b
}

// OffsetResetDryRun is a dry run's answer: what a reset would commit.
type OffsetResetDryRun struct {
	Group   string            `json:"group"`
	Topics  []string          `json:"topics"`
	To      fsm.ResetTo       `json:"to"`
	DryRun  bool              `json:"dry_run"`
	Targets []fsm.ResetTarget `json:"targets"`
}
