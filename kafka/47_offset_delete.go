package kafka

// OffsetDelete (key 47): all versions.
//
// Each partition goes to the group's coordinator on the cluster its topic
// routes to (split.go). A cluster other than the group's home where the
// group has no offsets has nothing to delete, which is no error
// (GROUP_ID_NOT_FOUND from it is cleared); the request-level error is the
// first any cluster gave. Unrouted topics are answered
// UNKNOWN_TOPIC_OR_PARTITION; a re-pointed topic bounces the request with
// NOT_COORDINATOR once (pipeline.go).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleOffsetDelete(r *request) error { return offsetDeleteFamily.serve(r) }

var offsetDeleteFamily = &family[*kmsg.OffsetDeleteRequest, *kmsg.OffsetDeleteResponse]{
	coordinator: func(req *kmsg.OffsetDeleteRequest) (int8, string) { return coordinatorGroup, req.Group },
	prepare: func(r *request, req *kmsg.OffsetDeleteRequest) error {
		return r.setHome(req.Group)
	},
	fix: func(r *request, t target, resp *kmsg.OffsetDeleteResponse) bool {
		if resp.ErrorCode == kerr.GroupIDNotFound.Code && t.be != r.split.home {
			resp.ErrorCode = 0
			return true
		}
		return false
	},
	// Clients read the request-level error first: a NOT_COORDINATOR the
	// proxy gave a partition (a bounce, a failed broker) is the request's.
	done: func(r *request, out *kmsg.OffsetDeleteResponse) bool {
		if out.ErrorCode != 0 {
			return false
		}
		for _, t := range out.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode == kerr.NotCoordinator.Code {
					out.ErrorCode = p.ErrorCode
					return true
				}
			}
		}
		return false
	},
}
