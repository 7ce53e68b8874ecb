package kafka

// OffsetForLeaderEpoch (key 23): all versions. Each partition goes to its
// leader in the cluster its topic routes to (split.go); passed through
// unchanged when one broker leads every partition. Partitions of unrouted
// topics are answered UNKNOWN_TOPIC_OR_PARTITION, of re-pointed ones
// NOT_LEADER_OR_FOLLOWER once (pipeline.go).

import "github.com/twmb/franz-go/pkg/kmsg"

func handleOffsetForLeaderEpoch(r *request) error { return offsetForLeaderEpochFamily.serve(r) }

var offsetForLeaderEpochFamily = &family[*kmsg.OffsetForLeaderEpochRequest, *kmsg.OffsetForLeaderEpochResponse]{
	seg:      offsetForLeaderEpochSeg,
	minusOne: []string{"EndOffset"},
}
