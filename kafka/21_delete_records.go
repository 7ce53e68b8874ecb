package kafka

// DeleteRecords (key 21): all versions. Split by partition leader; passed
// through unchanged when one broker leads every partition.

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
	by := map[int32]*kmsg.DeleteRecordsRequest{}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			id := c.s.backend.leader(t.Topic, p.Partition)
			sub := by[id]
			if sub == nil {
				sub = &kmsg.DeleteRecordsRequest{Version: req.Version, TimeoutMillis: req.TimeoutMillis}
				by[id] = sub
			}
			if n := len(sub.Topics); n == 0 || sub.Topics[n-1].Topic != t.Topic {
				sub.Topics = append(sub.Topics, kmsg.DeleteRecordsRequestTopic{Topic: t.Topic})
			}
			st := &sub.Topics[len(sub.Topics)-1]
			st.Partitions = append(st.Partitions, p)
		}
	}
	if len(by) <= 1 {
		return forwardSingle(c, r, start, by)
	}
	return c.scatter(r, start, partsOf(by), func(resps []kmsg.Response) kmsg.Response {
		out := resps[0].(*kmsg.DeleteRecordsResponse)
		idx := map[string]int{}
		for i, t := range out.Topics {
			idx[t.Topic] = i
		}
		for _, x := range resps[1:] {
			o := x.(*kmsg.DeleteRecordsResponse)
			out.ThrottleMillis = max(out.ThrottleMillis, o.ThrottleMillis)
			for _, t := range o.Topics {
				if i, ok := idx[t.Topic]; ok {
					out.Topics[i].Partitions = append(out.Topics[i].Partitions, t.Partitions...)
					continue
				}
				idx[t.Topic] = len(out.Topics)
				out.Topics = append(out.Topics, t)
			}
		}
		return out
	})
}
