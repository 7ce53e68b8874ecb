package kafka

// DescribeTransactions (65): all versions kmsg and the backend share.
//
// Each transactional id goes to its coordinator on its home cluster
// (coordinators.go); ids with different coordinators are split and the
// answers concatenated.

import "github.com/twmb/franz-go/pkg/kmsg"

// handleDescribeTransactions (key 65): each transactional id from its home
// cluster's coordinator.
func handleDescribeTransactions(r *request) error {
	c, start := r.c, r.start
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.DescribeTransactionsRequest)
	by := r.coordinatorsOf(coordinatorTxn, req.TransactionalIDs, false)
	if len(by) <= 1 {
		for t := range by {
			u, err := c.upstreamOrAny(t)
			if err != nil {
				return err
			}
			return c.forwardTo(u, r, start, nil)
		}
		return c.forwardAny(r, start, r.defaultBackend(), nil)
	}
	var parts []part
	for _, t := range targetOrder(by) {
		sub := *req
		sub.TransactionalIDs = by[t]
		parts = append(parts, part{t: t, req: &sub})
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		first := resps[0].(*kmsg.DescribeTransactionsResponse)
		for _, x := range resps[1:] {
			o := x.(*kmsg.DescribeTransactionsResponse)
			first.TransactionStates = append(first.TransactionStates, o.TransactionStates...)
		}
		return first
	})
}
