package kafka

// AddPartitionsToTxn (key 24): v0–v3 (v4+ batches transactions and is for
// brokers only, KIP-890: route.go versionCaps).
//
// A transaction runs on the cluster of its partitions (txn_clusters.go):
// the first partition added fixes it, and the request goes to the
// transaction's coordinator on that cluster with the virtual producer id
// swapped for the cluster's real one (re-encoded). Partitions of topics
// routed to another cluster are answered INVALID_PRODUCER_ID_MAPPING (a
// transaction cannot span clusters; txnSpanCode), which makes the client
// abort it; of topics routed nowhere, INVALID_TXN_STATE, as before. A
// re-pointed topic bounces the request with NOT_COORDINATOR once
// (pipeline.go), as does every routed topic while this peer holds no write
// lease (Config.Writes).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleAddPartitionsToTxn(r *request) error { return addPartitionsToTxnFamily.serve(r) }

var addPartitionsToTxnFamily = &family[*kmsg.AddPartitionsToTxnRequest, *kmsg.AddPartitionsToTxnResponse]{
	coordinator: func(req *kmsg.AddPartitionsToTxnRequest) (int8, string) {
		return coordinatorTxn, req.TransactionalID
	},
	prepare: func(r *request, req *kmsg.AddPartitionsToTxnRequest) error {
		return r.txnPrepare(req.TransactionalID, req.ProducerID)
	},
	topic: func(r *request, req *kmsg.AddPartitionsToTxnRequest, _ int, tt topicTarget) topicTarget {
		if tt.be != nil && r.split.noWrite {
			// No write lease (Config.Writes): no transaction may start
			// writing through this peer; the client looks the coordinator
			// up again and retries.
			return topicTarget{name: tt.name, code: kerr.NotCoordinator.Code}
		}
		if tt.be != nil && fenced(r.st, tt.name) && !r.c.txnHoldsFenced(req.TransactionalID, req.ProducerID, tt.be, tt.name, nil) {
			// A migration's fence: no transaction may start writing the
			// topic on the source; the client retries, and after the
			// switch the transaction runs on the target (segments.go).
			// One that holds the topic already, begun before the fence,
			// may add its other partitions, so that it can end.
			return topicTarget{name: tt.name, code: kerr.ConcurrentTransactions.Code}
		}
		if tt.be != nil && r.split.home == nil {
			// The first routed partition fixes the transaction's cluster,
			// unless it already runs on another one.
			r.split.home = r.c.txnCluster(r, req.TransactionalID, tt.be)
		}
		return r.txnTopic(tt)
	},
	routed: func(r *request, req *kmsg.AddPartitionsToTxnRequest) {
		if r.split.txnPID >= 0 {
			r.c.s.placeTxn(req.TransactionalID, r.split.home, req.ProducerEpoch, true)
		}
	},
	keeps: func(r *request, _ target) bool { return r.split.txnPID < 0 },
	rewrite: func(r *request, _ target, sub *kmsg.AddPartitionsToTxnRequest) {
		if r.split.txnPID >= 0 {
			sub.ProducerID = r.split.txnPID
		}
	},
}

// txnPrepare readies r for a transaction key naming txn with producer id
// pid: a virtual id is swapped for the real one on the transaction's
// cluster (fixed by the first routed topic, txnTopic); any other id is
// forwarded as it is to the transactional id's home cluster, as before
// transactions followed their partitions. r.split.txn is set only for a
// virtual id.
func (r *request) txnPrepare(txn string, pid int64) error {
	r.split.txn, r.split.txnPID, r.split.txnCode, r.split.home = "", -1, 0, nil
	if pid == txnVPID(txn) {
		r.split.txn = txn
		return nil
	}
	return r.setHome(txn)
}

// txnTopic serves one topic of a transaction key once r.split.home is
// fixed: a topic on another cluster is refused with txnSpanCode (logged:
// a transaction spans clusters; INVALID_TXN_STATE for a real producer id,
// as before), one no rule routes with INVALID_TXN_STATE
// (the client would retry UNKNOWN_TOPIC_OR_PARTITION until its transaction
// times out); the real producer id on the transaction's cluster is looked
// up once.
func (r *request) txnTopic(tt topicTarget) topicTarget {
	if tt.be == nil {
		if tt.code == kerr.UnknownTopicOrPartition.Code {
			tt.code = kerr.InvalidTxnState.Code
		}
		return tt
	}
	if tt.be != r.split.home {
		if r.split.home != nil {
			r.c.refuseSpan(r.split.txn, tt.name, tt.be, r.split.home)
		}
		if r.split.txn == "" {
			return topicTarget{name: tt.name, code: kerr.InvalidTxnState.Code}
		}
		return topicTarget{name: tt.name, code: txnSpanCode}
	}
	if r.split.txnPID < 0 && r.split.txn != "" {
		id, err := r.c.txnPID(tt.be, r.split.txn)
		if err != nil {
			return topicTarget{name: tt.name, code: txnPIDCode(err)}
		}
		r.split.txnPID = id
	}
	return tt
}
