package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

const maxKey = kmsg.MaxKey

// handler serves one client request. It must reserve exactly one response
// slot (newPending) unless the request expects no response, and must not
// keep r's bytes after it returns. An error closes the connection.
type handler func(r *request) error

// versionCaps lowers the maximum version advertised for a key below what
// kmsg and the backend support, where later versions change routing.
var versionCaps = map[int16]int16{
	// AddPartitionsToTxn v4+ batches several transactions and is for
	// brokers only (KIP-890); clients use v3 and below.
	24: 3,
	// KIP-890 part 2 (transaction.version 2) is not offered: EndTxn v5
	// bumps the epoch on one cluster only, where transactions follow
	// their partitions across clusters (txn_clusters.go).
	26: 4,
	// ListConfigResources v1 (KIP-1142) lists one cluster's topics, brokers
	// and groups (74_list_config_resources.go); v0 lists client metrics.
	74: 0,
}

// handlerTable maps every API key the proxy serves to its handler, each
// in its NN_name.go file (whose header says the versions, what is
// rewritten and where it is routed). Keys without a handler are not
// advertised in ApiVersions and close the connection if sent, as a broker
// does for an unknown key.
//
// Routing classes (pipeline.go resolves topics to clusters and groups and
// transactional ids to their home cluster):
//   - local answer: ApiVersions (18), InitProducerID without a
//     transactional id (22, virtual producer ids, producer_ids.go)
//   - merged across clusters: Metadata (3), FindCoordinator (10),
//     DescribeCluster (60, default cluster), DescribeTopicPartitions (75,
//     paged over every cluster's topics by name)
//   - partition-keyed, split by the splitter (split.go) to each
//     partition's leader: Produce (0), Fetch (1), ListOffsets (2),
//     DeleteRecords (21), OffsetForLeaderEpoch (23), DescribeProducers
//     (61); to the group's or transaction's coordinator on the topic's
//     cluster: OffsetCommit (8), OffsetDelete (47), TxnOffsetCommit (28),
//     AddPartitionsToTxn (24)
//   - group coordinator on the home cluster: JoinGroup (11), Heartbeat
//     (12), LeaveGroup (13), SyncGroup (14), DescribeGroups (15); offsets
//     by topic cluster: OffsetFetch (9); DeleteGroups (42) on every cluster
//   - KIP-848 groups, on the group's coordinator of every cluster its
//     subscribed topics route to, merged: ConsumerGroupHeartbeat (68),
//     ConsumerGroupDescribe (69, every cluster)
//   - transaction coordinator of every cluster: InitProducerID (22, epochs
//     levelled, txn_clusters.go); on the cluster the transaction's
//     partitions are on: AddOffsetsToTxn (25), EndTxn (26); on every
//     cluster, the running one's answer kept: DescribeTransactions (65)
//   - every broker of every cluster, merged, keeping what the brokers
//     this peer presents coordinate: ListGroups (16), ListTransactions (66)
//   - controller of the topic's cluster: CreateTopics (19), DeleteTopics
//     (20), CreatePartitions (37), ElectLeaders (43),
//     AlterPartitionAssignments (45), ListPartitionReassignments (46);
//     UpdateFeatures (57) only with one cluster
//   - by config resource: DescribeConfigs (32), AlterConfigs (33),
//     IncrementalAlterConfigs (44)
//   - written to every cluster: CreateACLs (30), DeleteACLs (31),
//     AlterClientQuotas (49), AlterUserSCRAMCredentials (51)
//   - read from every cluster, merged, disagreements marked
//     (merged_reads.go): DescribeACLs (29), DescribeClientQuotas (48),
//     DescribeUserSCRAMCredentials (50)
//   - the default cluster: GetTelemetrySubscriptions (71), PushTelemetry
//     (72), ListConfigResources (74, v0)
//   - share groups (KIP-932): ShareGroupHeartbeat (76), ShareGroupDescribe
//     (77) and the share-group offset keys (90, 91, 92) to the group's
//     coordinator on its home cluster; ShareFetch (78) and
//     ShareAcknowledge (79) split by partition leader under a share
//     session the proxy holds (share_sessions.go)
//
// Not served (docs/conformance.md lists every key and why):
// broker-to-broker and controller keys, SASL (the proxy does not
// authenticate clients yet) and log-dir keys (they name real brokers).
// TestConformanceDoc keeps that list and this table in step.
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
	t[75] = handleDescribeTopicPartitions
	t[61] = handleDescribeProducers
	for _, k := range []int16{11, 12, 13, 14} {
		t[k] = toGroupCoordinator
	}
	t[8] = handleOffsetCommit
	t[9] = handleOffsetFetch
	t[28] = handleTxnOffsetCommit
	t[47] = handleOffsetDelete
	for _, k := range []int16{15, 42} {
		t[k] = handleGroupBatch
	}
	for _, k := range []int16{22, 25, 26} {
		t[k] = toTxnCoordinator
	}
	t[24] = handleAddPartitionsToTxn
	t[65] = handleDescribeTransactions
	t[68] = handleConsumerGroupHeartbeat
	t[69] = handleConsumerGroupDescribe
	t[16] = toEveryBroker
	t[66] = toEveryBroker
	t[19] = handleCreateTopics
	t[20] = handleDeleteTopics
	t[37] = handleCreatePartitions
	t[43] = handleElectLeaders
	t[45] = handleAlterPartitionAssignments
	t[46] = handleListPartitionReassignments
	t[57] = handleUpdateFeatures
	for _, k := range []int16{32, 33, 44} {
		t[k] = handleConfigs
	}
	for _, k := range []int16{30, 31, 49, 51} {
		t[k] = toEveryCluster
	}
	t[51] = handleAlterUserSCRAMCredentials // toEveryCluster unless the listener authenticates
	t[29] = handleDescribeACLs
	t[29], t[30], t[31] = ownACLs(t[29]), ownACLs(t[30]), ownACLs(t[31]) // the proxy's own rules when it authenticates (acl_admin.go)
	t[48] = handleDescribeClientQuotas
	t[50] = handleDescribeUserSCRAMCredentials
	for _, k := range []int16{71, 72, 74} {
		t[k] = toAny
	}
	t[76] = handleShareGroupHeartbeat
	t[77] = handleShareGroupDescribe
	t[78] = handleShareFetch
	t[79] = handleShareAcknowledge
	t[90] = handleDescribeShareGroupOffsets
	t[91] = handleShareGroupOffsetsWrite
	t[92] = handleShareGroupOffsetsWrite
	return t
}
