package kafka

// TxnOffsetCommit (key 28): all versions kmsg and every backend share.
// v6+ (KIP-1319) names topics by id: virtual ids (topicids.go) become the
// cluster's and the answer's ids virtual again; an unknown id is answered
// UNKNOWN_TOPIC_ID per partition.
//
// A transaction runs on the cluster of its partitions (txn_clusters.go):
// the offsets go to the group's coordinator on the cluster their topics
// route to, with the virtual producer id swapped for that cluster's real
// one (re-encoded), after the group is added to the transaction there
// (txnOffsetsOn: the client's AddOffsetsToTxn may have come before the
// transaction had a cluster); the broker checks the producer's epoch. On
// a cluster other than the group's home, where the group has no members,
// the commit goes as a "simple" one (generation -1, no member id), as
// OffsetCommit does. Topics of a second cluster in one request are
// answered INVALID_PRODUCER_ID_MAPPING (txnSpanCode), of none
// INVALID_TXN_STATE; either makes the client abort the transaction. A
// re-pointed topic bounces the request with NOT_COORDINATOR once
// (pipeline.go). A member an offset reset removed is answered
// REBALANCE_IN_PROGRESS (group_reset.go).

import "github.com/twmb/franz-go/pkg/kmsg"

func handleTxnOffsetCommit(r *request) error { return txnOffsetCommitFamily.serve(r) }

var txnOffsetCommitFamily = &family[*kmsg.TxnOffsetCommitRequest, *kmsg.TxnOffsetCommitResponse]{
	coordinator: func(req *kmsg.TxnOffsetCommitRequest) (int8, string) { return coordinatorGroup, req.Group },
	idsFrom:     6,
	reqIDs:      txnOffsetCommitRequestIDs,
	respIDs:     commitResponseIDs,
	prepare: func(r *request, req *kmsg.TxnOffsetCommitRequest) error {
		r.split.groupHome = r.home(req.Group)
		r.split.memberGone = removedMember(r.st, req.Group, req.MemberID)
		return r.txnPrepare(req.TransactionalID, req.ProducerID)
	},
	partition: refuseRemovedMember[*kmsg.TxnOffsetCommitRequest],
	topic: func(r *request, req *kmsg.TxnOffsetCommitRequest, _ int, tt topicTarget) topicTarget {
		if tt.be != nil && r.split.home == nil {
			r.split.home = tt.be
			if r.split.txn != "" {
				r.split.txnCode = r.c.txnOffsetsOn(r, req, tt.be)
			}
		}
		if tt = r.txnTopic(tt); tt.be != nil && r.split.txnCode != 0 {
			return topicTarget{name: tt.name, code: r.split.txnCode}
		}
		return tt
	},
	// A real producer id (not virtual) is sent as it is.
	keeps: func(r *request, t target) bool {
		return r.split.txn == "" || r.split.txnPID < 0 && t.be == r.split.groupHome
	},
	rewrite: func(r *request, t target, sub *kmsg.TxnOffsetCommitRequest) {
		if r.split.txn == "" {
			return
		}
		if r.split.txnPID >= 0 {
			sub.ProducerID = r.split.txnPID
		}
		if t.be != r.split.groupHome {
			sub.Generation, sub.MemberID, sub.InstanceID = -1, "", nil
		}
	},
}
