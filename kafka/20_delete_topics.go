package kafka

// DeleteTopics (20): all versions kmsg and the backend share.
//
// By name (TopicNames before v6; Topics with a name or a virtual id from
// v6): split by the cluster each topic routes to, each part to that
// cluster's controller in the shape of the client's version, a virtual id
// resolved to its name first. Unrouted names are answered
// UNKNOWN_TOPIC_OR_PARTITION, unknown ids UNKNOWN_TOPIC_ID.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleDeleteTopics: by name (TopicNames before v6, Topics with a name or
// an id from v6).
func handleDeleteTopics(r *request) error {
	c, start := r.c, r.start
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.DeleteTopicsRequest)
	// Names to delete (v0-v5) become Topics entries for grouping; each sub
	// request is rebuilt in the shape of its version.
	topics := req.Topics
	if r.version < 6 {
		topics = nil
		for _, n := range req.TopicNames {
			topics = append(topics, kmsg.DeleteTopicsRequestTopic{Topic: kmsg.StringPtr(n)})
		}
	}
	by := map[*Backend][]kmsg.DeleteTopicsRequestTopic{}
	local := kmsg.NewPtrDeleteTopicsResponse()
	for _, t := range topics {
		var be *Backend
		if t.Topic != nil {
			be = r.route(*t.Topic)
		} else {
			// A virtual id: delete by name on the topic's cluster.
			var name string
			if be, name = r.resolveVID(t.TopicID); be != nil {
				t.Topic, t.TopicID = &name, [16]byte{}
			}
		}
		if be == nil {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic, rt.TopicID, rt.ErrorCode = t.Topic, t.TopicID, kerr.UnknownTopicOrPartition.Code
			if t.Topic == nil {
				rt.ErrorCode = kerr.UnknownTopicID.Code
			}
			local.Topics = append(local.Topics, rt)
			continue
		}
		by[be] = append(by[be], t)
	}
	var parts []part
	for _, be := range r.set.sorted {
		ts, ok := by[be]
		if !ok {
			continue
		}
		sub := *req
		sub.Topics, sub.TopicNames = nil, nil
		if r.version < 6 {
			for _, t := range ts {
				sub.TopicNames = append(sub.TopicNames, *t.Topic)
			}
		} else {
			sub.Topics = ts
		}
		parts = append(parts, part{t: controllerOf(be), req: &sub})
	}
	if len(local.Topics) > 0 {
		parts = append(parts, part{local: local})
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		var changed []*Backend
		for _, pt := range parts {
			if pt.t.be != nil {
				// Before the client has the answer: the snapshot must
				// not show the topic any more (metadata_cache.go).
				pt.t.be.TriggerRefresh()
				changed = append(changed, pt.t.be)
			}
		}
		r.c.s.topicsChanged(changed...)
		out := resps[0].(*kmsg.DeleteTopicsResponse)
		for _, x := range resps[1:] {
			o := x.(*kmsg.DeleteTopicsResponse)
			out.Topics = append(out.Topics, o.Topics...)
		}
		for i := range out.Topics {
			if t := &out.Topics[i]; t.Topic != nil {
				c.s.presentTopicID(*t.Topic, &t.TopicID)
			}
		}
		return out
	})
}
