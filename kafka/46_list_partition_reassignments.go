package kafka

// ListPartitionReassignments (46): all versions kmsg and the backend share.
//
// Split by the cluster each topic routes to, each part to that cluster's
// controller; unrouted topics have no reassignment in progress and are
// left out. A null topic list asks every cluster's controller.

import "github.com/twmb/franz-go/pkg/kmsg"

func handleListPartitionReassignments(r *request) error {
	c, start := r.c, r.start
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.ListPartitionReassignmentsRequest)
	var parts []part
	if req.Topics == nil {
		for _, t := range r.everyCluster(true) {
			sub := *req
			parts = append(parts, part{t: t, req: &sub})
		}
	} else {
		// Unrouted topics have no reassignment in progress: nothing to list.
		by, order, _ := byCluster(r, req.Topics, func(t kmsg.ListPartitionReassignmentsRequestTopic) string { return t.Topic })
		for _, be := range order {
			sub := *req
			sub.Topics = by[be]
			parts = append(parts, part{t: controllerOf(be), req: &sub})
		}
		if len(parts) == 0 {
			parts = append(parts, part{local: kmsg.NewPtrListPartitionReassignmentsResponse()})
		}
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		out := resps[0].(*kmsg.ListPartitionReassignmentsResponse)
		for _, x := range resps[1:] {
			o := x.(*kmsg.ListPartitionReassignmentsResponse)
			if out.ErrorCode == 0 {
				out.ErrorCode, out.ErrorMessage = o.ErrorCode, o.ErrorMessage
			}
			out.Topics = append(out.Topics, o.Topics...)
		}
		return out
	})
}
