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
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
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

// offsetTopic resolves a topic named in an offsets request (by name, or by
// id in the versions that carry one) to its cluster; nil when unrouted.
func (c *clientConn) offsetTopic(st *fsm.State, name string, id [16]byte) *Backend {
	if name == "" && id != ([16]byte{}) {
		return nil // versions with topic ids are not advertised (topicids.go)
	}
	return c.s.routeTopic(st, name)
}

// handleOffsetCommit (key 8): the home cluster's part as sent, the others
// as simple commits, unrouted topics UNKNOWN_TOPIC_OR_PARTITION.
func handleOffsetCommit(c *clientConn, r *request, start time.Time) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.OffsetCommitRequest)
	st := c.s.view.State()
	home := c.s.homeOf(st, req.Group)
	if home == nil {
		return errNoCluster
	}
	by := map[*Backend]*kmsg.OffsetCommitRequest{}
	var order []*Backend
	local := kmsg.NewPtrOffsetCommitResponse()
	for _, t := range req.Topics {
		be := c.offsetTopic(st, t.Topic, t.TopicID)
		if be == nil {
			rt := kmsg.OffsetCommitResponseTopic{Topic: t.Topic, TopicID: t.TopicID}
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.OffsetCommitResponseTopicPartition{Partition: p.Partition, ErrorCode: kerr.UnknownTopicOrPartition.Code})
			}
			local.Topics = append(local.Topics, rt)
			continue
		}
		sub := by[be]
		if sub == nil {
			s := *req
			s.Topics = nil
			if be != home {
				s.Generation, s.MemberID, s.InstanceID = -1, "", nil
			}
			sub = &s
			by[be] = sub
			order = append(order, be)
		}
		sub.Topics = append(sub.Topics, t)
	}
	if len(local.Topics) == 0 && len(order) <= 1 && (len(order) == 0 || order[0] == home) {
		return c.toCoordinator(r, start, home, coordinatorGroup, req.Group)
	}
	var parts []part
	for _, be := range order {
		parts = append(parts, part{t: c.coordinatorTarget(be, coordinatorGroup, req.Group), req: by[be]})
	}
	if len(local.Topics) > 0 {
		parts = append(parts, part{local: local})
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		out := resps[0].(*kmsg.OffsetCommitResponse)
		for _, x := range resps[1:] {
			o := x.(*kmsg.OffsetCommitResponse)
			out.ThrottleMillis = max(out.ThrottleMillis, o.ThrottleMillis)
			out.Topics = append(out.Topics, o.Topics...)
		}
		return out
	})
}

// handleOffsetFetch (key 9): split by topic cluster, per group (v8+ batches
// groups). A null topic list asks every cluster, keeping from each only the
// topics that route to it.
func handleOffsetFetch(c *clientConn, r *request, start time.Time) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.OffsetFetchRequest)
	st := c.s.view.State()
	if r.version < 8 {
		return c.offsetFetchSingle(r, start, st, req)
	}
	by := map[target]*kmsg.OffsetFetchRequest{}
	add := func(t target, g kmsg.OffsetFetchRequestGroup) {
		sub := by[t]
		if sub == nil {
			s := *req
			s.Groups = nil
			sub = &s
			by[t] = sub
		}
		sub.Groups = append(sub.Groups, g)
	}
	for _, g := range req.Groups {
		if g.Topics == nil {
			for _, be := range c.s.backendSet().sorted {
				add(c.coordinatorTarget(be, coordinatorGroup, g.Group), g)
			}
			continue
		}
		split := map[*Backend][]kmsg.OffsetFetchRequestGroupTopic{}
		var order []*Backend
		for _, t := range g.Topics {
			be := c.offsetTopic(st, t.Topic, t.TopicID)
			if be == nil {
				be = c.s.homeOf(st, g.Group) // the home answers it: no offset
			}
			if _, ok := split[be]; !ok {
				order = append(order, be)
			}
			split[be] = append(split[be], t)
		}
		for _, be := range order {
			sg := g
			sg.Topics = split[be]
			add(c.coordinatorTarget(be, coordinatorGroup, g.Group), sg)
		}
	}
	if len(by) <= 1 {
		for t := range by {
			u, err := c.upstreamOrAny(t)
			if err != nil {
				return err
			}
			return c.forwardTo(u, r, start, func(resp *buffer) (*buffer, error) {
				return rewrite(resp, r, func(kr kmsg.Response) bool {
					return c.fixOffsetFetchGroups(t.be, kr.(*kmsg.OffsetFetchResponse), req.Groups)
				})
			})
		}
		return c.forwardAny(r, start, c.s.defaultBackend(), nil)
	}
	parts := partsOf(by)
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		out := resps[0].(*kmsg.OffsetFetchResponse)
		idx := map[string]int{}
		var groups []kmsg.OffsetFetchResponseGroup
		for i, x := range resps {
			o := x.(*kmsg.OffsetFetchResponse)
			out.ThrottleMillis = max(out.ThrottleMillis, o.ThrottleMillis)
			be := parts[i].t.be
			c.fixOffsetFetchGroups(be, o, parts[i].req.(*kmsg.OffsetFetchRequest).Groups)
			for _, g := range o.Groups {
				j, ok := idx[g.Group]
				if !ok {
					idx[g.Group] = len(groups)
					groups = append(groups, g)
					continue
				}
				m := &groups[j]
				m.Topics = append(m.Topics, g.Topics...)
				// The home cluster's group error wins; another's fills in.
				if g.ErrorCode != 0 && (m.ErrorCode == 0 || c.s.homeOf(st, g.Group) == be) {
					m.ErrorCode = g.ErrorCode
				}
			}
		}
		out.Groups = groups
		return out
	})
}

// fixOffsetFetchGroups makes a batched answer of be follow Kafka: a group
// without offsets there is no error, and with a null topic list only the
// topics routed to be are kept. It reports whether anything changed.
func (c *clientConn) fixOffsetFetchGroups(be *Backend, resp *kmsg.OffsetFetchResponse, asked []kmsg.OffsetFetchRequestGroup) bool {
	st := c.s.view.State()
	changed := false
	for i := range resp.Groups {
		g := &resp.Groups[i]
		var topics []kmsg.OffsetFetchRequestGroupTopic
		all := true
		for _, a := range asked {
			if a.Group == g.Group {
				topics, all = a.Topics, a.Topics == nil
			}
		}
		if g.ErrorCode == kerr.GroupIDNotFound.Code {
			g.ErrorCode = 0
			g.Topics = nil
			for _, t := range topics {
				rt := kmsg.OffsetFetchResponseGroupTopic{Topic: t.Topic, TopicID: t.TopicID}
				for _, p := range t.Partitions {
					rt.Partitions = append(rt.Partitions, noOffset(p))
				}
				g.Topics = append(g.Topics, rt)
			}
			changed = true
		}
		if all {
			kept := g.Topics[:0]
			for _, t := range g.Topics {
				if c.offsetTopic(st, t.Topic, t.TopicID) == be {
					kept = append(kept, t)
				}
			}
			if len(kept) != len(g.Topics) {
				changed = true
			}
			g.Topics = kept
		}
	}
	return changed
}

func noOffset(p int32) kmsg.OffsetFetchResponseGroupTopicPartition {
	rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = p, -1, -1
	return rp
}

// offsetFetchSingle serves OffsetFetch before v8: one group.
func (c *clientConn) offsetFetchSingle(r *request, start time.Time, st *fsm.State, req *kmsg.OffsetFetchRequest) error {
	by := map[target]*kmsg.OffsetFetchRequest{}
	if req.Topics == nil {
		for _, be := range c.s.backendSet().sorted {
			s := *req
			by[c.coordinatorTarget(be, coordinatorGroup, req.Group)] = &s
		}
	} else {
		home := c.s.homeOf(st, req.Group)
		for _, t := range req.Topics {
			be := c.s.routeTopic(st, t.Topic)
			if be == nil {
				be = home // the home answers it: no offset
			}
			tg := c.coordinatorTarget(be, coordinatorGroup, req.Group)
			sub := by[tg]
			if sub == nil {
				s := *req
				s.Topics = nil
				sub = &s
				by[tg] = sub
			}
			sub.Topics = append(sub.Topics, t)
		}
	}
	if len(by) == 0 {
		return c.forwardAny(r, start, c.s.defaultBackend(), nil)
	}
	parts := partsOf(by)
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		home := c.s.homeOf(st, req.Group)
		out := resps[0].(*kmsg.OffsetFetchResponse)
		var topics []kmsg.OffsetFetchResponseTopic
		code := int16(0)
		for i, x := range resps {
			o := x.(*kmsg.OffsetFetchResponse)
			out.ThrottleMillis = max(out.ThrottleMillis, o.ThrottleMillis)
			be, sub := parts[i].t.be, parts[i].req.(*kmsg.OffsetFetchRequest)
			if o.ErrorCode == kerr.GroupIDNotFound.Code {
				// No offsets for the group on this cluster (kfake; Kafka
				// answers offset -1 without an error).
				o.ErrorCode, o.Topics = 0, nil
				for _, t := range sub.Topics {
					rt := kmsg.OffsetFetchResponseTopic{Topic: t.Topic}
					for _, p := range t.Partitions {
						rp := kmsg.NewOffsetFetchResponseTopicPartition()
						rp.Partition, rp.Offset, rp.LeaderEpoch = p, -1, -1
						rt.Partitions = append(rt.Partitions, rp)
					}
					o.Topics = append(o.Topics, rt)
				}
			}
			if o.ErrorCode != 0 && (code == 0 || be == home) {
				code = o.ErrorCode
			}
			for _, t := range o.Topics {
				if sub.Topics == nil && c.s.routeTopic(st, t.Topic) != be {
					continue
				}
				topics = append(topics, t)
			}
		}
		out.Topics, out.ErrorCode = topics, code
		return out
	})
}

// handleOffsetDelete (key 47): split by topic cluster; a cluster where the
// group has no offsets has nothing to delete, which is no error.
func handleOffsetDelete(c *clientConn, r *request, start time.Time) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.OffsetDeleteRequest)
	st := c.s.view.State()
	home := c.s.homeOf(st, req.Group)
	by := map[target]*kmsg.OffsetDeleteRequest{}
	local := kmsg.NewPtrOffsetDeleteResponse()
	for _, t := range req.Topics {
		be := c.s.routeTopic(st, t.Topic)
		if be == nil {
			rt := kmsg.OffsetDeleteResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.OffsetDeleteResponseTopicPartition{Partition: p.Partition, ErrorCode: kerr.UnknownTopicOrPartition.Code})
			}
			local.Topics = append(local.Topics, rt)
			continue
		}
		tg := c.coordinatorTarget(be, coordinatorGroup, req.Group)
		sub := by[tg]
		if sub == nil {
			s := *req
			s.Topics = nil
			sub = &s
			by[tg] = sub
		}
		sub.Topics = append(sub.Topics, t)
	}
	parts := partsOf(by)
	if len(local.Topics) > 0 {
		parts = append(parts, part{local: local})
	}
	if len(parts) == 0 {
		return c.toCoordinator(r, start, home, coordinatorGroup, req.Group)
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		out := kmsg.NewPtrOffsetDeleteResponse()
		out.Version = r.version
		for i, x := range resps {
			o := x.(*kmsg.OffsetDeleteResponse)
			out.ThrottleMillis = max(out.ThrottleMillis, o.ThrottleMillis)
			if o.ErrorCode == kerr.GroupIDNotFound.Code && parts[i].t.be != home {
				o.ErrorCode = 0
			}
			if o.ErrorCode != 0 && out.ErrorCode == 0 {
				out.ErrorCode = o.ErrorCode
			}
			out.Topics = append(out.Topics, o.Topics...)
		}
		return out
	})
}

// txnSplit serves a transaction request whose topics must all route to the
// transaction's home cluster: as sent when they do, else the home part to
// coord on home and the others answered INVALID_TXN_STATE by the proxy. T
// is the request's topic type, L the answer's. With byID (a version that
// names topics by id, not advertised: topicids.go) every topic is answered
// UNKNOWN_TOPIC_ID, as the ids the client can know are virtual and no
// broker would recognise them.
type txnSplit[T, L any] struct {
	topics []T
	byID   bool
	name   func(T) string
	refuse func(T, int16) L // the answer topic, every partition the code
	sub    func([]T) kmsg.Request
	local  func([]L) kmsg.Response
	merge  func([]kmsg.Response) kmsg.Response
}

func splitTxn[T, L any](c *clientConn, r *request, start time.Time, home *Backend, typ int8, key string, sp txnSplit[T, L]) error {
	if home == nil {
		return errNoCluster
	}
	st := c.s.view.State()
	var keep []T
	var refused []L
	for _, t := range sp.topics {
		switch {
		case sp.byID:
			refused = append(refused, sp.refuse(t, kerr.UnknownTopicID.Code))
		case c.s.routeTopic(st, sp.name(t)) == home:
			keep = append(keep, t)
		default:
			refused = append(refused, sp.refuse(t, kerr.InvalidTxnState.Code))
		}
	}
	if len(refused) == 0 {
		return c.toCoordinator(r, start, home, typ, key)
	}
	parts := []part{{local: sp.local(refused)}}
	if len(keep) > 0 {
		parts = append([]part{{t: c.coordinatorTarget(home, typ, key), req: sp.sub(keep)}}, parts...)
	}
	return c.scatter(r, start, parts, sp.merge)
}

// handleTxnOffsetCommit (key 28): the transaction's home cluster commits
// the offsets of its topics; topics of other clusters are refused.
func handleTxnOffsetCommit(c *clientConn, r *request, start time.Time) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.TxnOffsetCommitRequest)
	home := c.s.homeOf(c.s.view.State(), req.TransactionalID)
	return splitTxn(c, r, start, home, coordinatorGroup, req.Group, txnSplit[kmsg.TxnOffsetCommitRequestTopic, kmsg.TxnOffsetCommitResponseTopic]{
		topics: req.Topics,
		byID:   r.version >= 6,
		name:   func(t kmsg.TxnOffsetCommitRequestTopic) string { return t.Topic },
		refuse: func(t kmsg.TxnOffsetCommitRequestTopic, code int16) kmsg.TxnOffsetCommitResponseTopic {
			rt := kmsg.TxnOffsetCommitResponseTopic{Topic: t.Topic, TopicID: t.TopicID}
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.TxnOffsetCommitResponseTopicPartition{Partition: p.Partition, ErrorCode: code})
			}
			return rt
		},
		sub: func(ts []kmsg.TxnOffsetCommitRequestTopic) kmsg.Request {
			s := *req
			s.Topics = ts
			return &s
		},
		local: func(ls []kmsg.TxnOffsetCommitResponseTopic) kmsg.Response {
			return &kmsg.TxnOffsetCommitResponse{Topics: ls}
		},
		merge: func(resps []kmsg.Response) kmsg.Response {
			out := resps[0].(*kmsg.TxnOffsetCommitResponse)
			for _, x := range resps[1:] {
				o := x.(*kmsg.TxnOffsetCommitResponse)
				out.ThrottleMillis = max(out.ThrottleMillis, o.ThrottleMillis)
				out.Topics = append(out.Topics, o.Topics...)
			}
			return out
		},
	})
}

// handleAddPartitionsToTxn (key 24, v0-v3): partitions of the transaction's
// home cluster go to its coordinator; others are refused.
func handleAddPartitionsToTxn(c *clientConn, r *request, start time.Time) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.AddPartitionsToTxnRequest)
	home := c.s.homeOf(c.s.view.State(), req.TransactionalID)
	return splitTxn(c, r, start, home, coordinatorTxn, req.TransactionalID, txnSplit[kmsg.AddPartitionsToTxnRequestTopic, kmsg.AddPartitionsToTxnResponseTopic]{
		topics: req.Topics,
		name:   func(t kmsg.AddPartitionsToTxnRequestTopic) string { return t.Topic },
		refuse: func(t kmsg.AddPartitionsToTxnRequestTopic, code int16) kmsg.AddPartitionsToTxnResponseTopic {
			rt := kmsg.AddPartitionsToTxnResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.AddPartitionsToTxnResponseTopicPartition{Partition: p, ErrorCode: code})
			}
			return rt
		},
		sub: func(ts []kmsg.AddPartitionsToTxnRequestTopic) kmsg.Request {
			s := *req
			s.Topics = ts
			return &s
		},
		local: func(ls []kmsg.AddPartitionsToTxnResponseTopic) kmsg.Response {
			return &kmsg.AddPartitionsToTxnResponse{Topics: ls}
		},
		merge: func(resps []kmsg.Response) kmsg.Response {
			out := resps[0].(*kmsg.AddPartitionsToTxnResponse)
			for _, x := range resps[1:] {
				o := x.(*kmsg.AddPartitionsToTxnResponse)
				out.ThrottleMillis = max(out.ThrottleMillis, o.ThrottleMillis)
				out.Topics = append(out.Topics, o.Topics...)
			}
			return out
		},
	})
}

// coordinatorsOf resolves each key's coordinator on its home cluster
// (every cluster with all).
func (c *clientConn) coordinatorsOf(typ int8, keys []string, all bool) map[target][]string {
	st := c.s.view.State()
	out := map[target][]string{}
	for _, k := range keys {
		if all {
			for _, be := range c.s.backendSet().sorted {
				t := c.coordinatorTarget(be, typ, k)
				out[t] = append(out[t], k)
			}
			continue
		}
		if be := c.s.homeOf(st, k); be != nil {
			t := c.coordinatorTarget(be, typ, k)
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
func handleGroupBatch(c *clientConn, r *request, start time.Time) error {
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
	by := c.coordinatorsOf(coordinatorGroup, groups, deleting)
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
		return c.forwardAny(r, start, c.s.defaultBackend(), nil)
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
	st := c.s.view.State()
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		switch first := resps[0].(type) {
		case *kmsg.DescribeGroupsResponse:
			for i, x := range resps {
				o := x.(*kmsg.DescribeGroupsResponse)
				c.s.fixMemberHosts(parts[i].t.be, o.Groups)
				if i > 0 {
					first.ThrottleMillis = max(first.ThrottleMillis, o.ThrottleMillis)
					first.Groups = append(first.Groups, o.Groups...)
				}
			}
		case *kmsg.DeleteGroupsResponse:
			idx := map[string]int{}
			var out []kmsg.DeleteGroupsResponseGroup
			for i, x := range resps {
				o := x.(*kmsg.DeleteGroupsResponse)
				first.ThrottleMillis = max(first.ThrottleMillis, o.ThrottleMillis)
				isHome := func(g string) bool { return c.s.homeOf(st, g) == parts[i].t.be }
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
func handleDescribeTransactions(c *clientConn, r *request, start time.Time) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.DescribeTransactionsRequest)
	by := c.coordinatorsOf(coordinatorTxn, req.TransactionalIDs, false)
	if len(by) <= 1 {
		for t := range by {
			u, err := c.upstreamOrAny(t)
			if err != nil {
				return err
			}
			return c.forwardTo(u, r, start, nil)
		}
		return c.forwardAny(r, start, c.s.defaultBackend(), nil)
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
			first.ThrottleMillis = max(first.ThrottleMillis, o.ThrottleMillis)
			first.TransactionStates = append(first.TransactionStates, o.TransactionStates...)
		}
		return first
	})
}
