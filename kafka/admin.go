package kafka

// Admin keys across clusters.
//
// Topic administration goes to the controller of the cluster each topic
// routes to: CreateTopics (19), DeleteTopics (20), CreatePartitions (37),
// ElectLeaders (43), AlterPartitionAssignments (45) and
// ListPartitionReassignments (46) are split by cluster and the answers
// concatenated; a topic no rule routes is answered by the proxy
// (POLICY_VIOLATION for creation, with a message naming the missing route;
// UNKNOWN_TOPIC_OR_PARTITION otherwise). ElectLeaders and
// ListPartitionReassignments with a null topic list ask every cluster.
//
// Cluster-wide security and quota settings are written to every cluster,
// so the virtual cluster behaves as one: CreateACLs (30), DeleteACLs (31),
// AlterClientQuotas (49) and AlterUserSCRAMCredentials (51) fan out and
// each entry's answer is the first error any cluster gave (or success).
// Their Describe counterparts (29, 48, 50) answer the default cluster's
// view. UpdateFeatures (57) cannot span clusters with different feature
// levels: with more than one cluster it is answered INVALID_REQUEST, to be
// run against each cluster directly.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// byCluster groups items by the cluster their topic routes to, in cluster
// name order; items of unrouted topics come back apart.
func byCluster[T any](r *request, items []T, topic func(T) string) (map[*Backend][]T, []*Backend, []T) {
	by := map[*Backend][]T{}
	var unrouted []T
	for _, it := range items {
		be := r.route(topic(it))
		if be == nil {
			unrouted = append(unrouted, it)
			continue
		}
		by[be] = append(by[be], it)
	}
	var order []*Backend
	for _, be := range r.set.sorted {
		if _, ok := by[be]; ok {
			order = append(order, be)
		}
	}
	return by, order, unrouted
}

// controllerOf is the target for be's controller (any broker when unknown:
// it answers NOT_CONTROLLER and the client retries).
func controllerOf(be *Backend) target { return target{be, be.controller()} }

// everyCluster lists each backend's controller or any broker.
func (r *request) everyCluster(controller bool) []target {
	var out []target
	for _, be := range r.set.sorted {
		t := target{be, -1}
		if controller {
			t = controllerOf(be)
		}
		out = append(out, t)
	}
	return out
}

func noRouteMessage(topic string) *string {
	m := "switchyard: no route, prefix rule or default cluster routes topic " + topic + "; add a route first"
	return &m
}

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
			if be, name = r.topicOfVID(t.TopicID); be != nil {
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

func handleUpdateFeatures(r *request) error {
	c, start := r.c, r.start
	if len(r.set.sorted) > 1 {
		resp := kmsg.NewPtrUpdateFeaturesResponse()
		// At the client's version: v2 dropped the results array, so a v0
		// encoding does not decode there.
		resp.Version = r.version
		resp.ErrorCode = kerr.InvalidRequest.Code
		msg := "switchyard: feature levels belong to each backend cluster; update them on each cluster directly"
		resp.ErrorMessage = &msg
		return c.respond(r, start, resp)
	}
	return toController(r)
}

// toEveryCluster writes r to any broker of every cluster and merges each
// entry's answer: the first error any cluster gave, else success.
func toEveryCluster(r *request) error {
	c, start := r.c, r.start
	req, err := decodeRequest(r)
	if err != nil {
		return err
	}
	targets := r.everyCluster(false)
	if len(targets) <= 1 {
		return c.forwardAny(r, start, r.defaultBackend(), nil)
	}
	parts := make([]part, len(targets))
	for i, t := range targets {
		parts[i] = part{t: t, req: req}
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		switch out := resps[0].(type) {
		case *kmsg.CreateACLsResponse:
			for _, x := range resps[1:] {
				o := x.(*kmsg.CreateACLsResponse)
				for i := range min(len(out.Results), len(o.Results)) {
					if out.Results[i].ErrorCode == 0 {
						out.Results[i] = o.Results[i]
					}
				}
			}
		case *kmsg.DeleteACLsResponse:
			for _, x := range resps[1:] {
				o := x.(*kmsg.DeleteACLsResponse)
				for i := range min(len(out.Results), len(o.Results)) {
					if out.Results[i].ErrorCode == 0 && o.Results[i].ErrorCode != 0 {
						out.Results[i].ErrorCode, out.Results[i].ErrorMessage = o.Results[i].ErrorCode, o.Results[i].ErrorMessage
					}
				}
			}
		case *kmsg.AlterClientQuotasResponse:
			for _, x := range resps[1:] {
				o := x.(*kmsg.AlterClientQuotasResponse)
				for i := range min(len(out.Entries), len(o.Entries)) {
					if out.Entries[i].ErrorCode == 0 {
						out.Entries[i] = o.Entries[i]
					}
				}
			}
		case *kmsg.AlterUserSCRAMCredentialsResponse:
			for _, x := range resps[1:] {
				o := x.(*kmsg.AlterUserSCRAMCredentialsResponse)
				for i := range min(len(out.Results), len(o.Results)) {
					if out.Results[i].ErrorCode == 0 {
						out.Results[i] = o.Results[i]
					}
				}
			}
		}
		return resps[0]
	})
}
