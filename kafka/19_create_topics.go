package kafka

// CreateTopics (19): all versions kmsg and the backend share.
//
// Topics are split by the cluster each routes to and each part goes to
// that cluster's controller (admin.go); the answers are concatenated and
// real topic ids replaced by virtual ones (topicids.go). A topic no rule
// routes is answered POLICY_VIOLATION with a message naming the missing
// route: creating it anywhere would leave it unreachable.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleCreateTopics(r *request) error { return createTopicsFamily.serve(r) }

var createTopicsFamily = &family[*kmsg.CreateTopicsRequest, *kmsg.CreateTopicsResponse]{
	controller: true,
	topic: func(_ *request, _ *kmsg.CreateTopicsRequest, _ int, tt topicTarget) topicTarget {
		if tt.code == kerr.UnknownTopicOrPartition.Code {
			tt.code = kerr.PolicyViolation.Code
		}
		return tt
	},
	message: noRouteMessage,
	done: func(r *request, out *kmsg.CreateTopicsResponse) bool {
		var changed []*Backend
		for i := range out.Topics {
			r.c.s.presentTopicID(out.Topics[i].Topic, &out.Topics[i].TopicID)
			if be := r.route(out.Topics[i].Topic); be != nil {
				// Before the client has the answer: its next Metadata
				// must show the topic, so the snapshot stops serving
				// until it is refreshed (metadata_cache.go).
				be.TriggerRefresh()
				changed = append(changed, be)
			}
		}
		r.c.s.topicsChanged(changed...)
		return len(out.Topics) > 0
	},
}
