package kafka

// TxnOffsetCommit (key 28): all versions kmsg and every backend share.
// v6+ (KIP-1319) names topics by id: virtual ids (topicids.go) become the
// home cluster's and the answer's ids virtual again; an unknown id is
// answered UNKNOWN_TOPIC_ID per partition.
//
// A transaction lives on its transactional id's home cluster
// (coordinators.go): the offsets of topics routed there go, as the client
// sent them, to the group's coordinator on that cluster; partitions of
// topics routed elsewhere or nowhere are answered INVALID_TXN_STATE, which
// makes the client abort the transaction. A re-pointed topic bounces the
// request with NOT_COORDINATOR once (pipeline.go).

import "github.com/twmb/franz-go/pkg/kmsg"

func handleTxnOffsetCommit(r *request) error { return txnOffsetCommitFamily.serve(r) }

var txnOffsetCommitFamily = &family[*kmsg.TxnOffsetCommitRequest, *kmsg.TxnOffsetCommitResponse]{
	coordinator: func(req *kmsg.TxnOffsetCommitRequest) (int8, string) { return coordinatorGroup, req.Group },
	idsFrom:     6,
	reqIDs:      txnOffsetCommitRequestIDs,
	respIDs:     commitResponseIDs,
	prepare: func(r *request, req *kmsg.TxnOffsetCommitRequest) error {
		return r.setHome(req.TransactionalID)
	},
	topic: func(r *request, _ *kmsg.TxnOffsetCommitRequest, _ int, tt topicTarget) topicTarget {
		return onlyHome(r, tt, true)
	},
}
