package kafka

// DescribeProducers (key 61): all versions. Each partition goes to its
// leader in the cluster its topic routes to (split.go); passed through
// unchanged when one broker leads every partition. Partitions of unrouted
// topics are answered UNKNOWN_TOPIC_OR_PARTITION, of re-pointed ones
// NOT_LEADER_OR_FOLLOWER once (pipeline.go). Producer ids are the
// clusters' own (idempotent producers' virtual ids never reach a broker).

import "github.com/twmb/franz-go/pkg/kmsg"

func handleDescribeProducers(r *request) error { return describeProducersFamily.serve(r) }

var describeProducersFamily = &family[*kmsg.DescribeProducersRequest, *kmsg.DescribeProducersResponse]{
	seg: describeProducersSeg,
}
