package kafka

// DescribeProducers (key 61): all versions. Each partition goes to its
// leader in the cluster its topic routes to (split.go); passed through
// unchanged when one broker leads every partition. Partitions of unrouted
// topics are answered UNKNOWN_TOPIC_OR_PARTITION. Producer ids are the
// clusters' own (idempotent producers' virtual ids never reach a broker).

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleDescribeProducers(c *clientConn, r *request, start time.Time) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.DescribeProducersRequest)
	return splitByLeader(c, r, start, splitSpec[*kmsg.DescribeProducersRequest, kmsg.DescribeProducersRequestTopic, int32, *kmsg.DescribeProducersResponse]{
		topics: req.Topics,
		topic: func(t kmsg.DescribeProducersRequestTopic) (string, []int32) {
			return t.Topic, t.Partitions
		},
		partition: func(p int32) int32 { return p },
		newSub:    func() *kmsg.DescribeProducersRequest { return &kmsg.DescribeProducersRequest{Version: req.Version} },
		add: func(sub *kmsg.DescribeProducersRequest, topic string, p int32) {
			if n := len(sub.Topics); n == 0 || sub.Topics[n-1].Topic != topic {
				sub.Topics = append(sub.Topics, kmsg.DescribeProducersRequestTopic{Topic: topic})
			}
			st := &sub.Topics[len(sub.Topics)-1]
			st.Partitions = append(st.Partitions, p)
		},
		newLocal: kmsg.NewPtrDescribeProducersResponse,
		fail: func(local *kmsg.DescribeProducersResponse, topic string, partition int32, code int16) {
			if n := len(local.Topics); n == 0 || local.Topics[n-1].Topic != topic {
				local.Topics = append(local.Topics, kmsg.DescribeProducersResponseTopic{Topic: topic})
			}
			p := kmsg.NewDescribeProducersResponseTopicPartition()
			p.Partition, p.ErrorCode = partition, code
			lt := &local.Topics[len(local.Topics)-1]
			lt.Partitions = append(lt.Partitions, p)
		},
		merge: mergeByTopic(
			func(r *kmsg.DescribeProducersResponse) *[]kmsg.DescribeProducersResponseTopic { return &r.Topics },
			func(t kmsg.DescribeProducersResponseTopic) string { return t.Topic },
			func(dst *kmsg.DescribeProducersResponseTopic, src kmsg.DescribeProducersResponseTopic) {
				dst.Partitions = append(dst.Partitions, src.Partitions...)
			},
			func(r *kmsg.DescribeProducersResponse) *int32 { return &r.ThrottleMillis }),
	})
}
