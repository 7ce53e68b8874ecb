package kafka

// Consumer groups and transactions across clusters.
//
// A group has a home cluster (group prefix rules, else the default
// cluster): its membership (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
// ConsumerGroupHeartbeat) lives there. Its offsets live with the topics:
// OffsetCommit, OffsetFetch and OffsetDelete are split by the cluster each
// topic routes to and the answers merged. On the home cluster a commit is
// forwarded as the client sent it; on another cluster, where the group has
// no members, it is sent as a "simple" commit (generation -1, no member
// id), which Kafka accepts for a group without members. A cluster that has
// no offsets for the group answers GROUP_ID_NOT_FOUND on some brokers
// (kfake); the proxy answers as Kafka does, with no committed offset.
//
// A transaction lives on its transactional id's home cluster: its
// partitions (AddPartitionsToTxn, Produce) and offsets (TxnOffsetCommit)
// must route there; the others are refused with INVALID_TXN_STATE, which
// makes the client abort the transaction.
//
// Batched keys (OffsetFetch v8+, DescribeGroups, DeleteGroups,
// DescribeTransactions) are split per coordinator
// and the per-key answers concatenated.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// coordKey is a cached coordinator: of a group (0) or transactional id
// (1) on one backend. The cache is one bounded LRU for every cluster
// (Config.CoordinatorCacheSize, CoordinatorCacheTTL): the keys are the
// client's, so a client naming thousands of groups must not grow it
// without bound. A coordinator evicted or expired is asked again.
type coordKey struct {
	be  *Backend
	typ int8
	key string
}

// cachedCoordinator returns a cached coordinator without asking the backend.
func (s *Server) cachedCoordinator(be *Backend, typ int8, key string) (int32, bool) {
	return s.coords.get(coordKey{be, typ, key})
}

// setCoordinator records a coordinator seen in a FindCoordinator answer;
// node < 0 forgets it.
func (s *Server) setCoordinator(be *Backend, typ int8, key string, node int32) {
	if node < 0 {
		s.coords.remove(coordKey{be, typ, key})
		return
	}
	s.coords.put(coordKey{be, typ, key}, node)
}

// coordinator returns the broker coordinating key on be, asking be when
// it is not cached.
func (s *Server) coordinator(ctx context.Context, be *Backend, typ int8, key string) (int32, error) {
	if id, ok := s.cachedCoordinator(be, typ, key); ok {
		return id, nil
	}
	id, err := be.findCoordinator(ctx, typ, key)
	if err != nil {
		return -1, err
	}
	s.setCoordinator(be, typ, key, id)
	return id, nil
}

// coordinatorsOf resolves each key's coordinator on its home cluster
// (every cluster with all).
func (r *request) coordinatorsOf(typ int8, keys []string, all bool) map[target][]string {
	out := map[target][]string{}
	for _, k := range keys {
		if all {
			for _, be := range r.set.sorted {
				t := r.coordinator(be, typ, k)
				out[t] = append(out[t], k)
			}
			continue
		}
		if be := r.home(k); be != nil {
			t := r.coordinator(be, typ, k)
			out[t] = append(out[t], k)
		}
	}
	return out
}

// handleGroupBatch serves DescribeGroups (15) from each group's home
// cluster, members' client hosts as they joined (members.go), and
// DeleteGroups (42) on every
// cluster (offsets live on each): the home cluster's answer per group
// wins, and a cluster where the group does not exist is no error.
func handleGroupBatch(r *request) error {
	c, start := r.c, r.start
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	var groups []string
	deleting := false
	switch v := kreq.(type) {
	case *kmsg.DescribeGroupsRequest:
		groups = v.Groups
	case *kmsg.DeleteGroupsRequest:
		groups, deleting = v.Groups, true
	}
	by := r.coordinatorsOf(coordinatorGroup, groups, deleting)
	if len(by) <= 1 {
		for t := range by {
			u, err := c.upstreamOrAny(t)
			if err != nil {
				return err
			}
			var post postFunc
			if !deleting {
				post = func(resp *buffer) (*buffer, error) {
					return rewrite(resp, r, func(kr kmsg.Response) bool {
						return c.s.fixMemberHosts(t.be, kr.(*kmsg.DescribeGroupsResponse).Groups)
					})
				}
			}
			return c.forwardTo(u, r, start, post)
		}
		return c.forwardAny(r, start, r.defaultBackend(), nil)
	}
	var parts []part
	for _, t := range targetOrder(by) {
		var sub kmsg.Request
		switch v := kreq.(type) {
		case *kmsg.DescribeGroupsRequest:
			s := *v
			s.Groups = by[t]
			sub = &s
		case *kmsg.DeleteGroupsRequest:
			s := *v
			s.Groups = by[t]
			sub = &s
		}
		parts = append(parts, part{t: t, req: sub})
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		switch first := resps[0].(type) {
		case *kmsg.DescribeGroupsResponse:
			for i, x := range resps {
				o := x.(*kmsg.DescribeGroupsResponse)
				c.s.fixMemberHosts(parts[i].t.be, o.Groups)
				if i > 0 {
					first.Groups = append(first.Groups, o.Groups...)
				}
			}
		case *kmsg.DeleteGroupsResponse:
			idx := map[string]int{}
			var out []kmsg.DeleteGroupsResponseGroup
			for i, x := range resps {
				o := x.(*kmsg.DeleteGroupsResponse)
				isHome := func(g string) bool { return r.home(g) == parts[i].t.be }
				for _, g := range o.Groups {
					if g.ErrorCode == kerr.GroupIDNotFound.Code && !isHome(g.Group) {
						g.ErrorCode = 0
					}
					j, seen := idx[g.Group]
					switch {
					case !seen:
						idx[g.Group] = len(out)
						out = append(out, g)
					case g.ErrorCode != 0 && (out[j].ErrorCode == 0 || isHome(g.Group)):
						out[j] = g
					}
				}
			}
			first.Groups = out
		}
		return resps[0]
	})
}

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

// setHome records the home cluster of a group or transactional id for the
// family hooks; a request needs one.
func (r *request) setHome(key string) error {
	r.split.home = r.home(key)
	if r.split.home == nil {
		return errNoCluster
	}
	return nil
}

// onlyHome refuses a topic routed to another cluster than the
// transaction's home with INVALID_TXN_STATE: a transaction cannot span
// clusters, and the client aborts it. With unrouted, a topic no rule
// routes is refused the same way (the transaction keys: the client would
// retry UNKNOWN_TOPIC_OR_PARTITION until its transaction times out);
// Produce keeps UNKNOWN_TOPIC_OR_PARTITION for it, as a broker answers.
func onlyHome(r *request, tt topicTarget, unrouted bool) topicTarget {
	if tt.be != nil && tt.be != r.split.home || unrouted && tt.code == kerr.UnknownTopicOrPartition.Code {
		return topicTarget{name: tt.name, code: kerr.InvalidTxnState.Code}
	}
	return tt
}
