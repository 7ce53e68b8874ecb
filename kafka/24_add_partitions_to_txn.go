package kafka

// AddPartitionsToTxn (key 24): v0–v3 (v4+ batches transactions and is for
// brokers only, KIP-890: route.go versionCaps).
//
// Partitions of topics routed to the transaction's home cluster go, as the
// client sent them, to the transaction's coordinator there; partitions of
// topics routed elsewhere or nowhere are answered INVALID_TXN_STATE (a
// transaction cannot span clusters), which makes the client abort it. A
// re-pointed topic bounces the request with NOT_COORDINATOR once
// (pipeline.go).

import "github.com/twmb/franz-go/pkg/kmsg"

func handleAddPartitionsToTxn(r *request) error { return addPartitionsToTxnFamily.serve(r) }

var addPartitionsToTxnFamily = &family[*kmsg.AddPartitionsToTxnRequest, *kmsg.AddPartitionsToTxnResponse]{
	coordinator: func(req *kmsg.AddPartitionsToTxnRequest) (int8, string) {
		return coordinatorTxn, req.TransactionalID
	},
	prepare: func(r *request, req *kmsg.AddPartitionsToTxnRequest) error {
		return r.setHome(req.TransactionalID)
	},
	topic: func(r *request, _ *kmsg.AddPartitionsToTxnRequest, _ int, tt topicTarget) topicTarget {
		return onlyHome(r, tt, true)
	},
}
