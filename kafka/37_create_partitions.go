package kafka

// CreatePartitions (37): all versions kmsg and the backend share.
//
// Split by the cluster each topic routes to, each part to that cluster's
// controller; unrouted topics are answered UNKNOWN_TOPIC_OR_PARTITION with
// a message naming the missing route. Each cluster asked refreshes its
// metadata, its snapshot not served until then (metadata_cache.go).

import "github.com/twmb/franz-go/pkg/kmsg"

func handleCreatePartitions(r *request) error { return createPartitionsFamily.serve(r) }

var createPartitionsFamily = &family[*kmsg.CreatePartitionsRequest, *kmsg.CreatePartitionsResponse]{
	controller: true,
	message:    noRouteMessage,
	done: func(r *request, out *kmsg.CreatePartitionsResponse) bool {
		var changed []*Backend
		for i := range out.Topics {
			if be := r.route(out.Topics[i].Topic); be != nil {
				be.TriggerRefresh()
				changed = append(changed, be)
			}
		}
		r.c.s.topicsChanged(changed...)
		return false
	},
}
