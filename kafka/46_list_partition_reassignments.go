package kafka

// ListPartitionReassignments (46): all versions kmsg and the backend share.
//
// Split by the cluster each topic routes to, each part to that cluster's
// controller; unrouted topics have no reassignment in progress and are
// left out. A null topic list asks every cluster's controller.

import "github.com/twmb/franz-go/pkg/kmsg"

func handleListPartitionReassignments(r *request) error {
	return listPartitionReassignmentsFamily.serve(r)
}

var listPartitionReassignmentsFamily = &family[*kmsg.ListPartitionReassignmentsRequest, *kmsg.ListPartitionReassignmentsResponse]{
	controller:  true,
	all:         func(req *kmsg.ListPartitionReassignmentsRequest) bool { return req.Topics == nil },
	omitRefused: true,
}
