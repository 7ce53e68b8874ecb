package kafka

// OffsetForLeaderEpoch (key 23): all versions. Each partition goes to its
// leader in the cluster its topic routes to (split.go); passed through
// unchanged when one broker leads every partition. Partitions of unrouted
// topics are answered UNKNOWN_TOPIC_OR_PARTITION.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleOffsetForLeaderEpoch(c *clientConn, r *request, start time.Time) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.OffsetForLeaderEpochRequest)
	return splitByLeader(c, r, start, splitSpec[*kmsg.OffsetForLeaderEpochRequest, kmsg.OffsetForLeaderEpochRequestTopic, kmsg.OffsetForLeaderEpochRequestTopicPartition, *kmsg.OffsetForLeaderEpochResponse]{
		topics: req.Topics,
		topic: func(t kmsg.OffsetForLeaderEpochRequestTopic) (string, []kmsg.OffsetForLeaderEpochRequestTopicPartition) {
			return t.Topic, t.Partitions
		},
		partition: func(p kmsg.OffsetForLeaderEpochRequestTopicPartition) int32 { return p.Partition },
		newSub: func() *kmsg.OffsetForLeaderEpochRequest {
			return &kmsg.OffsetForLeaderEpochRequest{Version: req.Version, ReplicaID: req.ReplicaID}
		},
		add: func(sub *kmsg.OffsetForLeaderEpochRequest, topic string, p kmsg.OffsetForLeaderEpochRequestTopicPartition) {
			if n := len(sub.Topics); n == 0 || sub.Topics[n-1].Topic != topic {
				sub.Topics = append(sub.Topics, kmsg.OffsetForLeaderEpochRequestTopic{Topic: topic})
			}
			st := &sub.Topics[len(sub.Topics)-1]
			st.Partitions = append(st.Partitions, p)
		},
		newLocal: kmsg.NewPtrOffsetForLeaderEpochResponse,
		fail: func(local *kmsg.OffsetForLeaderEpochResponse, topic string, partition int32, code int16) {
			if n := len(local.Topics); n == 0 || local.Topics[n-1].Topic != topic {
				local.Topics = append(local.Topics, kmsg.OffsetForLeaderEpochResponseTopic{Topic: topic})
			}
			p := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			p.Partition, p.ErrorCode, p.LeaderEpoch, p.EndOffset = partition, code, -1, -1
			lt := &local.Topics[len(local.Topics)-1]
			lt.Partitions = append(lt.Partitions, p)
		},
		merge: mergeByTopic(
			func(r *kmsg.OffsetForLeaderEpochResponse) *[]kmsg.OffsetForLeaderEpochResponseTopic { return &r.Topics },
			func(t kmsg.OffsetForLeaderEpochResponseTopic) string { return t.Topic },
			func(dst *kmsg.OffsetForLeaderEpochResponseTopic, src kmsg.OffsetForLeaderEpochResponseTopic) {
				dst.Partitions = append(dst.Partitions, src.Partitions...)
			},
			func(r *kmsg.OffsetForLeaderEpochResponse) *int32 { return &r.ThrottleMillis }),
	})
}
