package kafka

// ListOffsets (key 2): all versions. Each partition goes to its leader in
// the cluster its topic routes to (split.go); passed through unchanged when
// one broker leads every partition. Partitions of unrouted topics are
// answered UNKNOWN_TOPIC_OR_PARTITION.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleListOffsets(c *clientConn, r *request, start time.Time) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.ListOffsetsRequest)
	return splitByLeader(c, r, start, splitSpec[*kmsg.ListOffsetsRequest, kmsg.ListOffsetsRequestTopic, kmsg.ListOffsetsRequestTopicPartition, *kmsg.ListOffsetsResponse]{
		topics: req.Topics,
		topic: func(t kmsg.ListOffsetsRequestTopic) (string, []kmsg.ListOffsetsRequestTopicPartition) {
			return t.Topic, t.Partitions
		},
		partition: func(p kmsg.ListOffsetsRequestTopicPartition) int32 { return p.Partition },
		newSub: func() *kmsg.ListOffsetsRequest {
			s := *req
			s.Topics = nil
			return &s
		},
		add: func(sub *kmsg.ListOffsetsRequest, topic string, p kmsg.ListOffsetsRequestTopicPartition) {
			if n := len(sub.Topics); n == 0 || sub.Topics[n-1].Topic != topic {
				sub.Topics = append(sub.Topics, kmsg.ListOffsetsRequestTopic{Topic: topic})
			}
			st := &sub.Topics[len(sub.Topics)-1]
			st.Partitions = append(st.Partitions, p)
		},
		newLocal: kmsg.NewPtrListOffsetsResponse,
		fail: func(local *kmsg.ListOffsetsResponse, topic string, partition int32, code int16) {
			if n := len(local.Topics); n == 0 || local.Topics[n-1].Topic != topic {
				local.Topics = append(local.Topics, kmsg.ListOffsetsResponseTopic{Topic: topic})
			}
			p := kmsg.NewListOffsetsResponseTopicPartition()
			p.Partition, p.ErrorCode, p.Timestamp, p.Offset = partition, code, -1, -1
			lt := &local.Topics[len(local.Topics)-1]
			lt.Partitions = append(lt.Partitions, p)
		},
		merge: mergeByTopic(
			func(r *kmsg.ListOffsetsResponse) *[]kmsg.ListOffsetsResponseTopic { return &r.Topics },
			func(t kmsg.ListOffsetsResponseTopic) string { return t.Topic },
			func(dst *kmsg.ListOffsetsResponseTopic, src kmsg.ListOffsetsResponseTopic) {
				dst.Partitions = append(dst.Partitions, src.Partitions...)
			},
			func(r *kmsg.ListOffsetsResponse) *int32 { return &r.ThrottleMillis }),
	})
}
