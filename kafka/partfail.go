package kafka

// Answers for a part of a split request whose broker connection failed.
//
// A request split across brokers is answered as one response. When one
// broker's connection fails (cannot be dialed, breaks before answering,
// or answers bytes that do not parse), the others may already have acted
// on their parts: failing the whole request would make the client retry
// partitions already written (duplicates for a producer without
// idempotence). So only the failed part's partitions get an error, one
// that every client retries for just those partitions after refreshing its
// metadata: NOT_LEADER_OR_FOLLOWER for partition requests (what a broker
// answers for a partition it cannot serve; unlike NETWORK_EXCEPTION, every
// client's fetcher handles it by refreshing metadata), NOT_COORDINATOR for
// requests routed to a coordinator (the client looks the coordinator up
// again), COORDINATOR_NOT_AVAILABLE for FindCoordinator keys. A request
// kind with no per-partition or per-key error here (the admin requests
// sent to every cluster, ListPartitionReassignments) gets its key's answer
// for an unreachable cluster when its part could not be sent at all
// (unavailable.go), and otherwise still fails as a whole, as before.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// failedAnswer returns the answer to sub, a part of a split request, as if
// every key in it failed retriably; nil when the kind has no such errors.
// Partition-keyed keys are answered by their family (split.go:
// shape.answerAll with the family's retry code).
func failedAnswer(sub kmsg.Request) kmsg.Response {
	if f := partitionFamilies[sub.Key()]; f != nil {
		return f.failed(sub)
	}
	notCoord := kerr.NotCoordinator.Code
	switch req := sub.(type) {
	case *kmsg.FindCoordinatorRequest:
		resp := kmsg.NewPtrFindCoordinatorResponse()
		resp.ErrorCode, resp.NodeID, resp.Port = kerr.CoordinatorNotAvailable.Code, -1, -1
		for _, k := range req.CoordinatorKeys {
			co := kmsg.NewFindCoordinatorResponseCoordinator()
			co.Key, co.NodeID, co.Port, co.ErrorCode = k, -1, -1, kerr.CoordinatorNotAvailable.Code
			resp.Coordinators = append(resp.Coordinators, co)
		}
		return resp
	case *kmsg.OffsetFetchRequest:
		resp := kmsg.NewPtrOffsetFetchResponse()
		resp.ErrorCode = notCoord
		for _, t := range req.Topics { // before v8: v0 and v1 have no group error
			rt := kmsg.OffsetFetchResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.ErrorCode = p, -1, notCoord
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		for _, g := range req.Groups {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group, rg.ErrorCode = g.Group, notCoord
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	case *kmsg.ConsumerGroupHeartbeatRequest:
		return heartbeatError(req, notCoord, "the coordinator could not be reached")
	case *kmsg.ConsumerGroupDescribeRequest:
		resp := kmsg.NewPtrConsumerGroupDescribeResponse()
		for _, g := range req.Groups {
			rg := kmsg.NewConsumerGroupDescribeResponseGroup()
			rg.Group, rg.ErrorCode = g, notCoord
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	case *kmsg.DescribeGroupsRequest:
		resp := kmsg.NewPtrDescribeGroupsResponse()
		for _, g := range req.Groups {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group, rg.ErrorCode = g, notCoord
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	case *kmsg.DeleteGroupsRequest:
		resp := kmsg.NewPtrDeleteGroupsResponse()
		for _, g := range req.Groups {
			resp.Groups = append(resp.Groups, kmsg.DeleteGroupsResponseGroup{Group: g, ErrorCode: notCoord})
		}
		return resp
	case *kmsg.DescribeTransactionsRequest:
		resp := kmsg.NewPtrDescribeTransactionsResponse()
		for _, id := range req.TransactionalIDs {
			st := kmsg.NewDescribeTransactionsResponseTransactionState()
			st.TransactionalID, st.ErrorCode = id, notCoord
			resp.TransactionStates = append(resp.TransactionStates, st)
		}
		return resp
	}
	return nil
}
