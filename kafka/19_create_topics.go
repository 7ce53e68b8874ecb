package kafka

// CreateTopics (19): all versions kmsg and the backend share.
//
// Topics are split by the cluster each routes to and each part goes to
// that cluster's controller (admin.go); the answers are concatenated and
// real topic ids replaced by virtual ones (topicids.go). A topic no rule
// routes is answered POLICY_VIOLATION with a message naming the missing
// route: creating it anywhere would leave it unreachable.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleCreateTopics(r *request) error {
	c, start := r.c, r.start
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.CreateTopicsRequest)
	by, order, unrouted := byCluster(r, req.Topics, func(t kmsg.CreateTopicsRequestTopic) string { return t.Topic })
	var parts []part
	for _, be := range order {
		sub := *req
		sub.Topics = by[be]
		parts = append(parts, part{t: controllerOf(be), req: &sub})
	}
	if len(unrouted) > 0 {
		local := kmsg.NewPtrCreateTopicsResponse()
		for _, t := range unrouted {
			rt := kmsg.NewCreateTopicsResponseTopic()
			rt.Topic, rt.ErrorCode, rt.ErrorMessage = t.Topic, kerr.PolicyViolation.Code, noRouteMessage(t.Topic)
			local.Topics = append(local.Topics, rt)
		}
		parts = append(parts, part{local: local})
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		out := resps[0].(*kmsg.CreateTopicsResponse)
		for _, x := range resps[1:] {
			o := x.(*kmsg.CreateTopicsResponse)
			out.Topics = append(out.Topics, o.Topics...)
		}
		for i := range out.Topics {
			c.s.presentTopicID(out.Topics[i].Topic, &out.Topics[i].TopicID)
		}
		return out
	})
}
