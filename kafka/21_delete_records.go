package kafka

// DeleteRecords (key 21): all versions. Each partition goes to its leader
// in the cluster its topic routes to (split.go); passed through unchanged
// when one broker leads every partition. Partitions of unrouted topics are
// answered UNKNOWN_TOPIC_OR_PARTITION.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleDeleteRecords(c *clientConn, r *request, start time.Time) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.DeleteRecordsRequest)
	return splitByLeader(c, r, start, splitSpec[*kmsg.DeleteRecordsRequest, kmsg.DeleteRecordsRequestTopic, kmsg.DeleteRecordsRequestTopicPartition, *kmsg.DeleteRecordsResponse]{
		topics: req.Topics,
		topic: func(t kmsg.DeleteRecordsRequestTopic) (string, []kmsg.DeleteRecordsRequestTopicPartition) {
			return t.Topic, t.Partitions
		},
		partition: func(p kmsg.DeleteRecordsRequestTopicPartition) int32 { return p.Partition },
		newSub: func() *kmsg.DeleteRecordsRequest {
			return &kmsg.DeleteRecordsRequest{Version: req.Version, TimeoutMillis: req.TimeoutMillis}
		},
		add: func(sub *kmsg.DeleteRecordsRequest, topic string, p kmsg.DeleteRecordsRequestTopicPartition) {
			if n := len(sub.Topics); n == 0 || sub.Topics[n-1].Topic != topic {
				sub.Topics = append(sub.Topics, kmsg.DeleteRecordsRequestTopic{Topic: topic})
			}
			st := &sub.Topics[len(sub.Topics)-1]
			st.Partitions = append(st.Partitions, p)
		},
		newLocal: kmsg.NewPtrDeleteRecordsResponse,
		fail: func(local *kmsg.DeleteRecordsResponse, topic string, partition int32, code int16) {
			if n := len(local.Topics); n == 0 || local.Topics[n-1].Topic != topic {
				local.Topics = append(local.Topics, kmsg.DeleteRecordsResponseTopic{Topic: topic})
			}
			p := kmsg.NewDeleteRecordsResponseTopicPartition()
			p.Partition, p.ErrorCode, p.LowWatermark = partition, code, -1
			lt := &local.Topics[len(local.Topics)-1]
			lt.Partitions = append(lt.Partitions, p)
		},
		merge: mergeByTopic(
			func(r *kmsg.DeleteRecordsResponse) *[]kmsg.DeleteRecordsResponseTopic { return &r.Topics },
			func(t kmsg.DeleteRecordsResponseTopic) string { return t.Topic },
			func(dst *kmsg.DeleteRecordsResponseTopic, src kmsg.DeleteRecordsResponseTopic) {
				dst.Partitions = append(dst.Partitions, src.Partitions...)
			},
			func(r *kmsg.DeleteRecordsResponse) *int32 { return &r.ThrottleMillis }),
	})
}
