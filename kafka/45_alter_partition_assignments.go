package kafka

// AlterPartitionAssignments (45): all versions kmsg and the backend share.
//
// Split by the cluster each topic routes to, each part to that cluster's
// controller; unrouted topics are answered UNKNOWN_TOPIC_OR_PARTITION; the
// request-level error is the first any cluster gave. Replica ids are the
// backend's own broker ids (an operator reassigns real brokers).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleAlterPartitionAssignments(r *request) error {
	c, start := r.c, r.start
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.AlterPartitionAssignmentsRequest)
	by, order, unrouted := byCluster(r, req.Topics, func(t kmsg.AlterPartitionAssignmentsRequestTopic) string { return t.Topic })
	var parts []part
	for _, be := range order {
		sub := *req
		sub.Topics = by[be]
		parts = append(parts, part{t: controllerOf(be), req: &sub})
	}
	if len(unrouted) > 0 {
		local := kmsg.NewPtrAlterPartitionAssignmentsResponse()
		for _, t := range unrouted {
			rt := kmsg.AlterPartitionAssignmentsResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.AlterPartitionAssignmentsResponseTopicPartition{Partition: p.Partition, ErrorCode: kerr.UnknownTopicOrPartition.Code})
			}
			local.Topics = append(local.Topics, rt)
		}
		parts = append(parts, part{local: local})
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		out := resps[0].(*kmsg.AlterPartitionAssignmentsResponse)
		for _, x := range resps[1:] {
			o := x.(*kmsg.AlterPartitionAssignmentsResponse)
			if out.ErrorCode == 0 {
				out.ErrorCode, out.ErrorMessage = o.ErrorCode, o.ErrorMessage
			}
			out.Topics = append(out.Topics, o.Topics...)
		}
		return out
	})
}
