package kafka

// ElectLeaders (43): all versions kmsg and the backend share.
//
// Split by the cluster each topic routes to, each part to that cluster's
// controller; unrouted topics are answered UNKNOWN_TOPIC_OR_PARTITION. A
// null topic list (every partition) asks every cluster's controller and
// keeps from each answer the topics routed to it.

import "github.com/twmb/franz-go/pkg/kmsg"

func handleElectLeaders(r *request) error { return electLeadersFamily.serve(r) }

var electLeadersFamily = &family[*kmsg.ElectLeadersRequest, *kmsg.ElectLeadersResponse]{
	controller: true,
	all:        func(req *kmsg.ElectLeadersRequest) bool { return req.Topics == nil },
}
