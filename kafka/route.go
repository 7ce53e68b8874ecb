package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

const maxKey = kmsg.MaxKey

// handler serves one client request. It must reserve exactly one response
// slot (newPending) unless the request expects no response, and must not
// keep r's bytes after it returns. An error closes the connection.
type handler func(c *clientConn, r *request, start time.Time) error

// versionCaps lowers the maximum version advertised for a key below what
// kmsg and the backend support, where later versions change routing.
var versionCaps = map[int16]int16{
	// AddPartitionsToTxn v4+ batches several transactions and is for
	// brokers only (KIP-890); clients use v3 and below.
	24: 3,
}

// handlerTable maps every API key the proxy serves to its handler. Keys
// without a handler are not advertised in ApiVersions and close the
// connection if sent, as a broker does for an unknown key.
//
// Routing classes:
//   - local answer: ApiVersions (18)
//   - rewrite: Metadata (3), FindCoordinator (10), DescribeCluster (60)
//   - split by partition leader: Produce (0), Fetch (1), ListOffsets (2),
//     DeleteRecords (21), OffsetForLeaderEpoch (23), DescribeProducers (61)
//   - group coordinator: OffsetCommit (8), OffsetFetch (9, split when
//     batched), JoinGroup (11), Heartbeat (12), LeaveGroup (13),
//     SyncGroup (14), DescribeGroups (15, split), TxnOffsetCommit (28),
//     DeleteGroups (42, split), OffsetDelete (47),
//     ConsumerGroupHeartbeat (68), ConsumerGroupDescribe (69, split)
//   - transaction coordinator: InitProducerID (22, any broker without a
//     transactional id), AddPartitionsToTxn (24), AddOffsetsToTxn (25),
//     EndTxn (26), DescribeTransactions (65, split)
//   - every broker, merged: ListGroups (16), ListTransactions (66)
//   - controller: CreateTopics (19), DeleteTopics (20), CreatePartitions
//     (37), ElectLeaders (43), AlterPartitionAssignments (45),
//     ListPartitionReassignments (46), UpdateFeatures (57)
//   - broker named by a config resource, else any: DescribeConfigs (32),
//     AlterConfigs (33), IncrementalAlterConfigs (44)
//   - any broker: DescribeACLs (29), CreateACLs (30), DeleteACLs (31),
//     DescribeClientQuotas (48), AlterClientQuotas (49),
//     DescribeUserSCRAMCredentials (50), AlterUserSCRAMCredentials (51),
//     GetTelemetrySubscriptions (71), PushTelemetry (72)
//
// Not served: broker-to-broker and controller keys, SASL (the proxy does
// not authenticate clients yet), log-dir keys (they name real brokers),
// DescribeTopicPartitions (75, clients fall back to Metadata) and share
// groups.
func handlerTable() [maxKey + 1]handler {
	var t [maxKey + 1]handler
	t[0] = handleProduce
	t[1] = handleFetch
	t[2] = handleListOffsets
	t[3] = handleMetadata
	t[10] = handleFindCoordinator
	t[18] = handleApiVersions
	t[21] = handleDeleteRecords
	t[23] = handleOffsetForLeaderEpoch
	t[60] = handleDescribeCluster
	t[61] = handleDescribeProducers
	for _, k := range []int16{8, 11, 12, 13, 14, 28, 47, 68} {
		t[k] = toGroupCoordinator
	}
	t[9] = handleOffsetFetch
	for _, k := range []int16{15, 42, 69} {
		t[k] = handleGroupBatch
	}
	for _, k := range []int16{22, 24, 25, 26} {
		t[k] = toTxnCoordinator
	}
	t[65] = handleDescribeTransactions
	t[16] = toEveryBroker
	t[66] = toEveryBroker
	for _, k := range []int16{19, 20, 37, 43, 45, 46, 57} {
		t[k] = toController
	}
	for _, k := range []int16{32, 33, 44} {
		t[k] = handleConfigs
	}
	for _, k := range []int16{29, 30, 31, 48, 49, 50, 51, 71, 72} {
		t[k] = toAny
	}
	return t
}

func toAny(c *clientConn, r *request, start time.Time) error {
	return c.forwardAny(r, start, nil)
}

func toController(c *clientConn, r *request, start time.Time) error {
	id := c.s.backend.controller()
	if id < 0 {
		// No controller known yet: any broker answers NOT_CONTROLLER and
		// the client retries after refreshing metadata.
		return c.forwardAny(r, start, nil)
	}
	return c.forward(r, start, id, nil)
}

// coordinatorTimeout bounds a coordinator lookup on a cache miss.
const coordinatorTimeout = 10 * time.Second

// toCoordinator forwards r to the coordinator of key. When the lookup
// fails, any broker answers, which gives the client a coordinator error it
// retries on, as it would against Kafka.
func (c *clientConn) toCoordinator(r *request, start time.Time, typ int8, key string) error {
	if id, ok := c.s.backend.cachedCoordinator(typ, key); ok {
		return c.forward(r, start, id, nil)
	}
	// The lookup blocks this reader; let what is already queued leave first.
	if err := c.flushUpstreams(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), coordinatorTimeout)
	defer cancel()
	id, err := c.s.backend.coordinator(ctx, typ, key)
	if err != nil {
		c.log.Debug("coordinator lookup failed", "key", key, "err", err)
		return c.forwardAny(r, start, nil)
	}
	return c.forward(r, start, id, nil)
}

func toGroupCoordinator(c *clientConn, r *request, start time.Time) error {
	req, err := decodeRequest(r)
	if err != nil {
		return err
	}
	var group string
	switch v := req.(type) {
	case *kmsg.OffsetCommitRequest:
		group = v.Group
	case *kmsg.JoinGroupRequest:
		group = v.Group
	case *kmsg.HeartbeatRequest:
		group = v.Group
	case *kmsg.LeaveGroupRequest:
		group = v.Group
	case *kmsg.SyncGroupRequest:
		group = v.Group
	case *kmsg.TxnOffsetCommitRequest:
		group = v.Group
	case *kmsg.OffsetDeleteRequest:
		group = v.Group
	case *kmsg.ConsumerGroupHeartbeatRequest:
		group = v.Group
	}
	return c.toCoordinator(r, start, coordinatorGroup, group)
}

func toTxnCoordinator(c *clientConn, r *request, start time.Time) error {
	req, err := decodeRequest(r)
	if err != nil {
		return err
	}
	var txn string
	switch v := req.(type) {
	case *kmsg.InitProducerIDRequest:
		if v.TransactionalID == nil {
			// An idempotent producer's id can come from any broker.
			return c.forwardAny(r, start, nil)
		}
		txn = *v.TransactionalID
	case *kmsg.AddPartitionsToTxnRequest:
		txn = v.TransactionalID
	case *kmsg.AddOffsetsToTxnRequest:
		txn = v.TransactionalID
	case *kmsg.EndTxnRequest:
		txn = v.TransactionalID
	}
	return c.toCoordinator(r, start, coordinatorTxn, txn)
}

const (
	coordinatorGroup int8 = 0
	coordinatorTxn   int8 = 1
)

// toEveryBroker sends r to every backend broker and merges the lists
// (ListGroups, ListTransactions): each broker only knows what it
// coordinates.
func toEveryBroker(c *clientConn, r *request, start time.Time) error {
	ids := c.s.backend.brokerIDs()
	if len(ids) == 0 {
		return c.forwardAny(r, start, nil)
	}
	req, err := decodeRequest(r)
	if err != nil {
		return err
	}
	parts := make([]part, len(ids))
	for i, id := range ids {
		parts[i] = part{broker: id, req: req}
	}
	return c.scatter(r, start, parts, mergeLists)
}

func mergeLists(resps []kmsg.Response) kmsg.Response {
	switch first := resps[0].(type) {
	case *kmsg.ListGroupsResponse:
		for _, x := range resps[1:] {
			o := x.(*kmsg.ListGroupsResponse)
			first.ThrottleMillis = max(first.ThrottleMillis, o.ThrottleMillis)
			if first.ErrorCode == 0 {
				first.ErrorCode = o.ErrorCode
			}
			first.Groups = append(first.Groups, o.Groups...)
		}
		return first
	case *kmsg.ListTransactionsResponse:
		for _, x := range resps[1:] {
			o := x.(*kmsg.ListTransactionsResponse)
			first.ThrottleMillis = max(first.ThrottleMillis, o.ThrottleMillis)
			if first.ErrorCode == 0 {
				first.ErrorCode = o.ErrorCode
			}
			first.TransactionStates = append(first.TransactionStates, o.TransactionStates...)
		}
		return first
	}
	return resps[0]
}
