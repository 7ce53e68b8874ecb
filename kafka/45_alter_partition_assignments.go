package kafka

// AlterPartitionAssignments (45): all versions kmsg and the backend share.
//
// Split by the cluster each topic routes to, each part to that cluster's
// controller; unrouted topics are answered UNKNOWN_TOPIC_OR_PARTITION; the
// request-level error is the first any cluster gave. Replica ids are the
// backend's own broker ids (an operator reassigns real brokers).

import "github.com/twmb/franz-go/pkg/kmsg"

func handleAlterPartitionAssignments(r *request) error {
	return alterPartitionAssignmentsFamily.serve(r)
}

var alterPartitionAssignmentsFamily = &family[*kmsg.AlterPartitionAssignmentsRequest, *kmsg.AlterPartitionAssignmentsResponse]{
	controller: true,
}
