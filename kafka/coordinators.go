package kafka

// Batched coordinator keys: OffsetFetch v8+ (9), DescribeGroups (15),
// DeleteGroups (42), ConsumerGroupDescribe (69), DescribeTransactions (65).
// Each names several groups or transactional ids whose coordinators may be
// different brokers. When they share one broker the request goes through
// unchanged; otherwise it is split per coordinator and the per-key answers
// are concatenated.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// coordinatorsOf resolves each key's coordinator; unresolvable keys go to
// any broker (-1), which answers them with a coordinator error.
func (c *clientConn) coordinatorsOf(typ int8, keys []string) map[int32][]string {
	c.flushUpstreams() // a lookup may block this reader; an error resurfaces on the next write
	ctx, cancel := context.WithTimeout(context.Background(), coordinatorTimeout)
	defer cancel()
	out := map[int32][]string{}
	for _, k := range keys {
		id, err := c.s.backend.coordinator(ctx, typ, k)
		if err != nil {
			id = -1
		}
		out[id] = append(out[id], k)
	}
	return out
}

func handleOffsetFetch(c *clientConn, r *request, start time.Time) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.OffsetFetchRequest)
	if r.version < 8 {
		return c.toCoordinator(r, start, coordinatorGroup, req.Group)
	}
	names := make([]string, len(req.Groups))
	byName := map[string]kmsg.OffsetFetchRequestGroup{}
	for i, g := range req.Groups {
		names[i] = g.Group
		byName[g.Group] = g
	}
	by := c.coordinatorsOf(coordinatorGroup, names)
	if len(by) == 1 {
		for id := range by {
			if id >= 0 {
				return c.forward(r, start, id, nil)
			}
		}
	}
	var parts []part
	for _, id := range brokerOrder(by) {
		sub := *req
		sub.Groups = nil
		for _, g := range by[id] {
			sub.Groups = append(sub.Groups, byName[g])
		}
		parts = append(parts, part{broker: id, req: &sub})
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		first := resps[0].(*kmsg.OffsetFetchResponse)
		for _, x := range resps[1:] {
			o := x.(*kmsg.OffsetFetchResponse)
			first.ThrottleMillis = max(first.ThrottleMillis, o.ThrottleMillis)
			first.Groups = append(first.Groups, o.Groups...)
		}
		return first
	})
}

func handleGroupBatch(c *clientConn, r *request, start time.Time) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	var groups []string
	switch v := kreq.(type) {
	case *kmsg.DescribeGroupsRequest:
		groups = v.Groups
	case *kmsg.DeleteGroupsRequest:
		groups = v.Groups
	case *kmsg.ConsumerGroupDescribeRequest:
		groups = v.Groups
	}
	by := c.coordinatorsOf(coordinatorGroup, groups)
	if len(by) <= 1 {
		for id := range by {
			if id >= 0 {
				return c.forward(r, start, id, nil)
			}
		}
		return c.forwardAny(r, start, nil)
	}
	var parts []part
	for _, id := range brokerOrder(by) {
		var sub kmsg.Request
		switch v := kreq.(type) {
		case *kmsg.DescribeGroupsRequest:
			s := *v
			s.Groups = by[id]
			sub = &s
		case *kmsg.DeleteGroupsRequest:
			s := *v
			s.Groups = by[id]
			sub = &s
		case *kmsg.ConsumerGroupDescribeRequest:
			s := *v
			s.Groups = by[id]
			sub = &s
		}
		parts = append(parts, part{broker: id, req: sub})
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		switch first := resps[0].(type) {
		case *kmsg.DescribeGroupsResponse:
			for _, x := range resps[1:] {
				o := x.(*kmsg.DescribeGroupsResponse)
				first.ThrottleMillis = max(first.ThrottleMillis, o.ThrottleMillis)
				first.Groups = append(first.Groups, o.Groups...)
			}
		case *kmsg.DeleteGroupsResponse:
			for _, x := range resps[1:] {
				o := x.(*kmsg.DeleteGroupsResponse)
				first.ThrottleMillis = max(first.ThrottleMillis, o.ThrottleMillis)
				first.Groups = append(first.Groups, o.Groups...)
			}
		case *kmsg.ConsumerGroupDescribeResponse:
			for _, x := range resps[1:] {
				o := x.(*kmsg.ConsumerGroupDescribeResponse)
				first.ThrottleMillis = max(first.ThrottleMillis, o.ThrottleMillis)
				first.Groups = append(first.Groups, o.Groups...)
			}
		}
		return resps[0]
	})
}

func handleDescribeTransactions(c *clientConn, r *request, start time.Time) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.DescribeTransactionsRequest)
	by := c.coordinatorsOf(coordinatorTxn, req.TransactionalIDs)
	if len(by) <= 1 {
		for id := range by {
			if id >= 0 {
				return c.forward(r, start, id, nil)
			}
		}
		return c.forwardAny(r, start, nil)
	}
	var parts []part
	for _, id := range brokerOrder(by) {
		sub := *req
		sub.TransactionalIDs = by[id]
		parts = append(parts, part{broker: id, req: &sub})
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		first := resps[0].(*kmsg.DescribeTransactionsResponse)
		for _, x := range resps[1:] {
			o := x.(*kmsg.DescribeTransactionsResponse)
			first.ThrottleMillis = max(first.ThrottleMillis, o.ThrottleMillis)
			first.TransactionStates = append(first.TransactionStates, o.TransactionStates...)
		}
		return first
	})
}
