package kafka

// DescribeTransactions (65): all versions kmsg and the backend share.
//
// A transaction runs on the cluster of its partitions (txn_clusters.go),
// so each transactional id is asked of its coordinator on every cluster
// (ids with different coordinators are split) and described by the
// cluster running a transaction for it, else by its home cluster. The
// producer id shown is the proxy's virtual one, which the client knows.

import "github.com/twmb/franz-go/pkg/kmsg"

// handleDescribeTransactions (key 65): each transactional id from every
// cluster's coordinator, the answers merged per id.
func handleDescribeTransactions(r *request) error {
	c, start := r.c, r.start
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.DescribeTransactionsRequest)
	by := r.coordinatorsOf(coordinatorTxn, req.TransactionalIDs, true)
	if len(by) == 0 {
		return c.forwardAny(r, start, r.defaultBackend(), nil)
	}
	var parts []part
	for _, t := range targetOrder(by) {
		sub := *req
		sub.TransactionalIDs = by[t]
		parts = append(parts, part{t: t, req: &sub})
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		best := map[string]kmsg.DescribeTransactionsResponseTransactionState{}
		rank := map[string]int{}
		for i, x := range resps {
			for _, st := range x.(*kmsg.DescribeTransactionsResponse).TransactionStates {
				n := describedRank(st, parts[i].t.be == r.home(st.TransactionalID))
				if old, ok := rank[st.TransactionalID]; !ok || n > old {
					best[st.TransactionalID], rank[st.TransactionalID] = st, n
				}
			}
		}
		out := resps[0].(*kmsg.DescribeTransactionsResponse)
		out.TransactionStates = out.TransactionStates[:0]
		seen := map[string]bool{}
		for _, id := range req.TransactionalIDs {
			st, ok := best[id]
			if !ok || seen[id] {
				continue
			}
			seen[id] = true
			if st.ErrorCode == 0 {
				st.ProducerID = txnVPID(id)
			}
			out.TransactionStates = append(out.TransactionStates, st)
		}
		return out
	})
}

// describedRank orders one cluster's description of a transactional id:
// a running transaction first, then the home cluster's answer, then any
// answer without an error.
func describedRank(st kmsg.DescribeTransactionsResponseTransactionState, home bool) int {
	switch {
	case st.ErrorCode == 0 && ongoingTxn(st.State):
		return 3
	case home:
		return 2
	case st.ErrorCode == 0:
		return 1
	}
	return 0
}
