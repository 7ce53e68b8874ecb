package kafka

// ElectLeaders (43): all versions kmsg and the backend share.
//
// Split by the cluster each topic routes to, each part to that cluster's
// controller; unrouted topics are answered UNKNOWN_TOPIC_OR_PARTITION. A
// null topic list (every partition) asks every cluster's controller and
// keeps from each answer the topics routed to it.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleElectLeaders(r *request) error {
	c, start := r.c, r.start
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.ElectLeadersRequest)
	var parts []part
	all := req.Topics == nil
	if all {
		for _, t := range r.everyCluster(true) {
			sub := *req
			parts = append(parts, part{t: t, req: &sub})
		}
	} else {
		by, order, unrouted := byCluster(r, req.Topics, func(t kmsg.ElectLeadersRequestTopic) string { return t.Topic })
		for _, be := range order {
			sub := *req
			sub.Topics = by[be]
			parts = append(parts, part{t: controllerOf(be), req: &sub})
		}
		if len(unrouted) > 0 {
			local := kmsg.NewPtrElectLeadersResponse()
			for _, t := range unrouted {
				rt := kmsg.ElectLeadersResponseTopic{Topic: t.Topic}
				for _, p := range t.Partitions {
					rt.Partitions = append(rt.Partitions, kmsg.ElectLeadersResponseTopicPartition{Partition: p, ErrorCode: kerr.UnknownTopicOrPartition.Code})
				}
				local.Topics = append(local.Topics, rt)
			}
			parts = append(parts, part{local: local})
		}
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		out := resps[0].(*kmsg.ElectLeadersResponse)
		var topics []kmsg.ElectLeadersResponseTopic
		for i, x := range resps {
			o := x.(*kmsg.ElectLeadersResponse)
			if out.ErrorCode == 0 {
				out.ErrorCode = o.ErrorCode
			}
			for _, t := range o.Topics {
				if all && r.route(t.Topic) != parts[i].t.be {
					continue
				}
				topics = append(topics, t)
			}
		}
		out.Topics = topics
		return out
	})
}
