package kafka

// CreatePartitions (37): all versions kmsg and the backend share.
//
// Split by the cluster each topic routes to, each part to that cluster's
// controller; unrouted topics are answered UNKNOWN_TOPIC_OR_PARTITION with
// a message naming the missing route.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleCreatePartitions(r *request) error {
	c, start := r.c, r.start
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.CreatePartitionsRequest)
	by, order, unrouted := byCluster(r, req.Topics, func(t kmsg.CreatePartitionsRequestTopic) string { return t.Topic })
	var parts []part
	for _, be := range order {
		sub := *req
		sub.Topics = by[be]
		parts = append(parts, part{t: controllerOf(be), req: &sub})
	}
	if len(unrouted) > 0 {
		local := kmsg.NewPtrCreatePartitionsResponse()
		for _, t := range unrouted {
			rt := kmsg.NewCreatePartitionsResponseTopic()
			rt.Topic, rt.ErrorCode, rt.ErrorMessage = t.Topic, kerr.UnknownTopicOrPartition.Code, noRouteMessage(t.Topic)
			local.Topics = append(local.Topics, rt)
		}
		parts = append(parts, part{local: local})
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		out := resps[0].(*kmsg.CreatePartitionsResponse)
		for _, x := range resps[1:] {
			o := x.(*kmsg.CreatePartitionsResponse)
			out.Topics = append(out.Topics, o.Topics...)
		}
		return out
	})
}
