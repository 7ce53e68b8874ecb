package kafka

// ConsumerGroupDescribe (key 69): v0–v1 (KIP-848), as kmsg and every
// backend support.
//
// A KIP-848 group has a backend group on every cluster its members'
// subscribed topics route to (68_consumer_group_heartbeat.go), so each
// group is asked of its coordinator on every cluster and the answers are
// merged: a cluster where the group does not exist is left out (the group
// is GROUP_ID_NOT_FOUND only when no cluster has it), members are merged
// by member id with their assignments joined, topic ids are made virtual
// (topicids.go), a member this peer serves shows the epoch and client host
// the client knows, and the group's epochs are the largest of its
// clusters'. A group state that differs between clusters shows the first
// that is not Stable: the group is stable only when every part is.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleConsumerGroupDescribe(r *request) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.ConsumerGroupDescribeRequest)
	if len(r.set.sorted) == 0 {
		return errNoCluster
	}
	by := r.coordinatorsOf(coordinatorGroup, req.Groups, true)
	var parts []part
	for _, t := range targetOrder(by) {
		s := *req
		s.Groups = by[t]
		parts = append(parts, part{t: t, req: &s})
	}
	return r.c.scatter(r, r.start, parts, func(resps []kmsg.Response) kmsg.Response {
		out := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
		idx := map[string]int{}
		for i, x := range resps {
			o := x.(*kmsg.ConsumerGroupDescribeResponse)
			for _, g := range o.Groups {
				r.fixDescribed848(parts[i].t.be, &g)
				j, ok := idx[g.Group]
				if !ok {
					idx[g.Group] = len(out.Groups)
					out.Groups = append(out.Groups, g)
					continue
				}
				mergeDescribed848(&out.Groups[j], g)
			}
		}
		// Answer in the order asked (a group asked twice, once).
		ordered := make([]kmsg.ConsumerGroupDescribeResponseGroup, 0, len(out.Groups))
		for _, name := range req.Groups {
			if j, ok := idx[name]; ok {
				ordered = append(ordered, out.Groups[j])
				delete(idx, name)
			}
		}
		out.Groups = ordered
		return out
	})
}

// fixDescribed848 makes be's description of a group what the client
// knows: virtual topic ids, and for members this peer serves the epoch it
// presents and the client's host.
func (r *request) fixDescribed848(be *Backend, g *kmsg.ConsumerGroupDescribeResponseGroup) {
	for i := range g.Members {
		m := &g.Members[i]
		r.virtualAssignment(be, &m.Assignment)
		r.virtualAssignment(be, &m.TargetAssignment)
		if pm := r.c.s.member848(g.Group, &m.MemberID); pm != nil {
			pm.mu.Lock()
			if pm.multi {
				m.MemberEpoch = pm.presented
			}
			if pm.host != "" {
				m.ClientHost = pm.host
			}
			pm.mu.Unlock()
		}
	}
}

// virtualAssignment swaps be's topic ids in a for the virtual ones and
// fills in the names; a topic be names that the proxy does not route
// there is left out.
func (r *request) virtualAssignment(be *Backend, a *kmsg.Assignment) {
	kept := a.TopicPartitions[:0]
	for _, t := range a.TopicPartitions {
		name := t.Topic
		if n, ok := be.topicName(t.TopicID); ok {
			name = n
		}
		if name == "" || r.route(name) != be {
			continue
		}
		t.Topic = name
		r.c.s.presentTopicID(name, &t.TopicID)
		kept = append(kept, t)
	}
	a.TopicPartitions = kept
}

// mergeDescribed848 folds another cluster's description of a group into g.
func mergeDescribed848(g *kmsg.ConsumerGroupDescribeResponseGroup, o kmsg.ConsumerGroupDescribeResponseGroup) {
	notFound := kerr.GroupIDNotFound.Code
	switch {
	case o.ErrorCode == notFound:
		return
	case g.ErrorCode == notFound:
		*g = o
		return
	case o.ErrorCode != 0:
		if g.ErrorCode == 0 {
			g.ErrorCode, g.ErrorMessage = o.ErrorCode, o.ErrorMessage
		}
		return
	case g.ErrorCode != 0:
		return
	}
	if g.State == "Stable" && o.State != "Stable" {
		g.State = o.State
	}
	g.Epoch = max(g.Epoch, o.Epoch)
	g.AssignmentEpoch = max(g.AssignmentEpoch, o.AssignmentEpoch)
	g.AuthorizedOperations &= o.AuthorizedOperations
	for _, om := range o.Members {
		found := false
		for i := range g.Members {
			m := &g.Members[i]
			if m.MemberID != om.MemberID {
				continue
			}
			found = true
			m.Assignment.TopicPartitions = append(m.Assignment.TopicPartitions, om.Assignment.TopicPartitions...)
			m.TargetAssignment.TopicPartitions = append(m.TargetAssignment.TopicPartitions, om.TargetAssignment.TopicPartitions...)
			m.SubscribedTopics = appendNew(m.SubscribedTopics, om.SubscribedTopics)
			m.MemberEpoch = max(m.MemberEpoch, om.MemberEpoch)
		}
		if !found {
			g.Members = append(g.Members, om)
		}
	}
}

// appendNew appends the strings of b not in a.
func appendNew(a, b []string) []string {
	for _, s := range b {
		found := false
		for _, t := range a {
			if s == t {
				found = true
				break
			}
		}
		if !found {
			a = append(a, s)
		}
	}
	return a
}
