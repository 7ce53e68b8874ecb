package kafka

// OffsetFetch (key 9): all versions kmsg and every backend share.
//
// A group's offsets live with their topics (coordinators.go): the topics
// asked for are split by the cluster each routes to and each part goes to
// the group's coordinator there; v8+ batches groups, split the same way
// group by group. A topic no rule routes is asked of the home cluster,
// which answers it with no offset. A null topic list (every committed
// offset) asks every cluster and keeps from each only the topics routed
// to it. A cluster that has no offsets for the group answers
// GROUP_ID_NOT_FOUND on some brokers (kfake); the proxy answers as Kafka
// does, with no committed offset; the home cluster's group error wins. A
// re-pointed topic bounces the whole request with NOT_COORDINATOR once
// (pipeline.go). v10+ names topics by id: each part carries its cluster's
// ids for the client's virtual ones (topicids.go), every answer's ids are
// made virtual again, and an id the proxy does not know is answered by the
// proxy, UNKNOWN_TOPIC_ID per partition, as a broker does. A KIP-848
// member's epoch is translated per cluster (fetchMember848). A migrated
// topic whose previous segment still serves reads (segments.go) is asked
// of both clusters and each partition answered with the higher committed
// offset: both are virtual, and a group whose offsets could not be copied
// to the target at the switch (it has members there) keeps its position
// until its next commit lands on the target. While an offset reset holds
// a group, its OffsetFetch is answered COORDINATOR_LOAD_IN_PROGRESS
// (group_reset.go).

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleOffsetFetch (key 9): split by topic cluster, per group (v8+ batches
// groups). A null topic list asks every cluster, keeping from each only the
// topics that route to it.
func handleOffsetFetch(r *request) error {
	c, start := r.c, r.start
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.OffsetFetchRequest)
	if held, ok := heldOffsetFetch(r, req); ok {
		return c.respond(r, start, held) // an offset reset holds the group (group_reset.go)
	}
	if r.version < 8 {
		return offsetFetchSingle(r, req)
	}
	r.split.byID = r.version >= 10
	bounced, translated := false, false
	var local *kmsg.OffsetFetchResponse // unknown topic ids, answered here
	by := map[target]*kmsg.OffsetFetchRequest{}
	add := func(t target, g kmsg.OffsetFetchRequestGroup) {
		var changed bool
		g, changed = r.fetchMember848(t.be, g) // KIP-848 member epochs
		translated = translated || changed
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
			for _, be := range r.set.sorted {
				add(r.coordinator(be, coordinatorGroup, g.Group), g)
			}
			continue
		}
		split := map[*Backend][]kmsg.OffsetFetchRequestGroupTopic{}
		var order []*Backend
		for _, t := range g.Topics {
			be, real, bounce := offsetsCluster(r, t.Topic, t.TopicID, g.Group)
			bounced = bounced || bounce
			if prev, prevID := offsetsPrevious(r, t.Topic, t.TopicID); prev != nil {
				pt := t
				if prevID != ([16]byte{}) {
					pt.TopicID = prevID
				}
				if _, ok := split[prev]; !ok {
					order = append(order, prev)
				}
				split[prev] = append(split[prev], pt)
			}
			if be == nil {
				if local == nil {
					local = kmsg.NewPtrOffsetFetchResponse()
				}
				local.Groups = append(local.Groups, unknownTopicIDs(g.Group, t))
				continue
			}
			if real != ([16]byte{}) {
				t.TopicID = real
			}
			if _, ok := split[be]; !ok {
				order = append(order, be)
			}
			split[be] = append(split[be], t)
		}
		for _, be := range order {
			sg := g
			sg.Topics = split[be]
			add(r.coordinator(be, coordinatorGroup, g.Group), sg)
		}
	}
	if bounced {
		return c.respond(r, start, failedAnswer(req))
	}
	if len(by) <= 1 && local == nil && !r.split.byID && !translated {
		for t := range by {
			u, err := c.upstreamOrAny(t)
			if err != nil {
				return c.answerUnreachable(r, start, t.be, err)
			}
			return c.forwardTo(u, r, start, func(resp *buffer) (*buffer, error) {
				return rewrite(resp, r, func(kr kmsg.Response) bool {
					return fixOffsetFetchGroups(r, t.be, kr.(*kmsg.OffsetFetchResponse), req.Groups)
				})
			})
		}
		return c.forwardAny(r, start, r.defaultBackend(), nil)
	}
	parts := partsOf(by)
	if local != nil {
		parts = append(parts, part{local: local})
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		out := resps[0].(*kmsg.OffsetFetchResponse)
		idx := map[string]int{}
		var groups []kmsg.OffsetFetchResponseGroup
		for i, x := range resps {
			o := x.(*kmsg.OffsetFetchResponse)
			be := parts[i].t.be
			if parts[i].local == nil {
				fixOffsetFetchGroups(r, be, o, parts[i].req.(*kmsg.OffsetFetchRequest).Groups)
			}
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
				if g.ErrorCode != 0 && (m.ErrorCode == 0 || r.home(g.Group) == be) {
					m.ErrorCode = g.ErrorCode
				}
			}
		}
		if len(r.st.Chains) > 0 {
			for i := range groups {
				groups[i].Topics = maxOffsetsByTopic(groups[i].Topics)
			}
		}
		out.Groups = groups
		return out
	})
}

// offsetsPrevious is the previous segment's cluster of a migrated topic
// while it serves reads (and that cluster's id for a topic named by
// virtual id), else nil.
func offsetsPrevious(r *request, topic string, id [16]byte) (*Backend, [16]byte) {
	if len(r.st.Chains) == 0 {
		return nil, [16]byte{}
	}
	if topic == "" {
		if be, name := r.topicOfVID(id); be != nil {
			topic = name
		}
	}
	be := r.route(topic)
	if be == nil {
		return nil, [16]byte{}
	}
	tt := topicTarget{be: be, name: topic}
	r.chainOf(&tt)
	if tt.prev == nil {
		return nil, [16]byte{}
	}
	var real [16]byte
	if id != ([16]byte{}) {
		real, _ = tt.prev.topicID(topic)
	}
	return tt.prev, real
}

// keptOnPrevious reports whether be serves a previous segment of topic,
// whose committed offsets a null topic list also keeps.
func keptOnPrevious(r *request, be *Backend, topic string) bool {
	if len(r.st.Chains) == 0 {
		return false
	}
	prev, _ := offsetsPrevious(r, topic, [16]byte{})
	return prev == be
}

// maxOffsetsByTopic joins a group's answers for the same topic (a
// migrated topic asked of two clusters), keeping per partition the higher
// committed offset.
func maxOffsetsByTopic(ts []kmsg.OffsetFetchResponseGroupTopic) []kmsg.OffsetFetchResponseGroupTopic {
	out := ts[:0]
	for _, t := range ts {
		j := slices.IndexFunc(out, func(o kmsg.OffsetFetchResponseGroupTopic) bool {
			return o.Topic == t.Topic && o.TopicID == t.TopicID
		})
		if j < 0 {
			out = append(out, t)
			continue
		}
		for _, p := range t.Partitions {
			k := slices.IndexFunc(out[j].Partitions, func(o kmsg.OffsetFetchResponseGroupTopicPartition) bool { return o.Partition == p.Partition })
			switch {
			case k < 0:
				out[j].Partitions = append(out[j].Partitions, p)
			case p.ErrorCode == 0 && (out[j].Partitions[k].ErrorCode != 0 || p.Offset > out[j].Partitions[k].Offset):
				out[j].Partitions[k] = p
			}
		}
	}
	return out
}

// maxOffsetsByTopicV0 is maxOffsetsByTopic for answers before v8.
func maxOffsetsByTopicV0(ts []kmsg.OffsetFetchResponseTopic) []kmsg.OffsetFetchResponseTopic {
	out := ts[:0]
	for _, t := range ts {
		j := slices.IndexFunc(out, func(o kmsg.OffsetFetchResponseTopic) bool { return o.Topic == t.Topic })
		if j < 0 {
			out = append(out, t)
			continue
		}
		for _, p := range t.Partitions {
			k := slices.IndexFunc(out[j].Partitions, func(o kmsg.OffsetFetchResponseTopicPartition) bool { return o.Partition == p.Partition })
			switch {
			case k < 0:
				out[j].Partitions = append(out[j].Partitions, p)
			case p.ErrorCode == 0 && (out[j].Partitions[k].ErrorCode != 0 || p.Offset > out[j].Partitions[k].Offset):
				out[j].Partitions[k] = p
			}
		}
	}
	return out
}

// fixOffsetFetchGroups makes a batched answer of be follow Kafka: a group
// without offsets there is no error, and with a null topic list only the
// topics routed to be are kept. It reports whether anything changed.
func fixOffsetFetchGroups(r *request, be *Backend, resp *kmsg.OffsetFetchResponse, asked []kmsg.OffsetFetchRequestGroup) bool {
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
				name := t.Topic
				if name == "" && t.TopicID != ([16]byte{}) {
					name, _ = be.topicName(t.TopicID)
				}
				if name != "" && (r.route(name) == be || keptOnPrevious(r, be, name)) {
					kept = append(kept, t)
				}
			}
			if len(kept) != len(g.Topics) {
				changed = true
			}
			g.Topics = kept
		}
		if r.split.byID {
			// v10+: the cluster's ids become the virtual ones the client
			// knows (topicids.go).
			for j := range g.Topics {
				t := &g.Topics[j]
				if name, ok := be.topicName(t.TopicID); ok {
					r.c.s.presentTopicID(name, &t.TopicID)
					changed = true
				}
			}
		}
	}
	return changed
}

// unknownTopicIDs answers a topic of group named by an id the proxy does not
// know (v10+) as a broker does: UNKNOWN_TOPIC_ID for each partition.
func unknownTopicIDs(group string, t kmsg.OffsetFetchRequestGroupTopic) kmsg.OffsetFetchResponseGroup {
	rg := kmsg.NewOffsetFetchResponseGroup()
	rg.Group = group
	rt := kmsg.OffsetFetchResponseGroupTopic{Topic: t.Topic, TopicID: t.TopicID}
	for _, p := range t.Partitions {
		rp := noOffset(p)
		rp.ErrorCode = kerr.UnknownTopicID.Code
		rt.Partitions = append(rt.Partitions, rp)
	}
	rg.Topics = append(rg.Topics, rt)
	return rg
}

func noOffset(p int32) kmsg.OffsetFetchResponseGroupTopicPartition {
	rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = p, -1, -1
	return rp
}

// offsetFetchSingle serves OffsetFetch before v8: one group.
func offsetFetchSingle(r *request, req *kmsg.OffsetFetchRequest) error {
	c, start := r.c, r.start
	by := map[target]*kmsg.OffsetFetchRequest{}
	if req.Topics == nil {
		for _, be := range r.set.sorted {
			s := *req
			by[r.coordinator(be, coordinatorGroup, req.Group)] = &s
		}
	} else {
		bounced := false
		for _, t := range req.Topics {
			be, _, bounce := offsetsCluster(r, t.Topic, [16]byte{}, req.Group)
			bounced = bounced || bounce
			clusters := []*Backend{be}
			if prev, _ := offsetsPrevious(r, t.Topic, [16]byte{}); prev != nil {
				clusters = append(clusters, prev)
			}
			for _, be := range clusters {
				tg := r.coordinator(be, coordinatorGroup, req.Group)
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
		if bounced {
			return c.respond(r, start, failedAnswer(req))
		}
	}
	if len(by) == 0 {
		return c.forwardAny(r, start, r.defaultBackend(), nil)
	}
	parts := partsOf(by)
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		home := r.home(req.Group)
		out := resps[0].(*kmsg.OffsetFetchResponse)
		var topics []kmsg.OffsetFetchResponseTopic
		code := int16(0)
		for i, x := range resps {
			o := x.(*kmsg.OffsetFetchResponse)
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
				if sub.Topics == nil && r.route(t.Topic) != be && !keptOnPrevious(r, be, t.Topic) {
					continue
				}
				topics = append(topics, t)
			}
		}
		if len(r.st.Chains) > 0 {
			topics = maxOffsetsByTopicV0(topics)
		}
		out.Topics, out.ErrorCode = topics, code
		return out
	})
}

// offsetsCluster is the cluster holding a group's offsets for a topic: the
// one it routes to, else the group's home (which answers "no offset").
// For a topic named by virtual id, real is that cluster's id for it, and be
// is nil when the id is unknown (the proxy answers it). bounced reports the
// route-change bounce (pipeline.go).
func offsetsCluster(r *request, topic string, id [16]byte, group string) (be *Backend, real [16]byte, bounced bool) {
	tt := r.topic(topic, id)
	switch {
	case tt.be != nil:
		return tt.be, tt.id, false
	case tt.code == kerr.UnknownTopicID.Code:
		return nil, real, false
	}
	return r.home(group), real, tt.code == kerr.NotCoordinator.Code
}
