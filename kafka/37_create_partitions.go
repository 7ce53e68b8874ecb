package kafka

// CreatePartitions (37): all versions kmsg and the backend share.
//
// Split by the cluster each topic routes to, each part to that cluster's
// controller; unrouted topics are answered UNKNOWN_TOPIC_OR_PARTITION with
// a message naming the missing route.

import "github.com/twmb/franz-go/pkg/kmsg"

func handleCreatePartitions(r *request) error { return createPartitionsFamily.serve(r) }

var createPartitionsFamily = &family[*kmsg.CreatePartitionsRequest, *kmsg.CreatePartitionsResponse]{
	controller: true,
	message:    noRouteMessage,
}
