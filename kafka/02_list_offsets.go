package kafka

// ListOffsets (key 2): all versions. Split by partition leader; passed
// through unchanged when one broker leads every partition.

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
	by := map[int32]*kmsg.ListOffsetsRequest{}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			id := c.s.backend.leader(t.Topic, p.Partition)
			sub := by[id]
			if sub == nil {
				s := *req
				s.Topics = nil
				sub = &s
				by[id] = sub
			}
			if n := len(sub.Topics); n == 0 || sub.Topics[n-1].Topic != t.Topic {
				sub.Topics = append(sub.Topics, kmsg.ListOffsetsRequestTopic{Topic: t.Topic})
			}
			st := &sub.Topics[len(sub.Topics)-1]
			st.Partitions = append(st.Partitions, p)
		}
	}
	if len(by) <= 1 {
		return forwardSingle(c, r, start, by)
	}
	return c.scatter(r, start, partsOf(by), func(resps []kmsg.Response) kmsg.Response {
		out := resps[0].(*kmsg.ListOffsetsResponse)
		idx := map[string]int{}
		for i, t := range out.Topics {
			idx[t.Topic] = i
		}
		for _, x := range resps[1:] {
			o := x.(*kmsg.ListOffsetsResponse)
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

// forwardSingle forwards r unchanged to the only broker in by (or any
// broker when by is empty or its key is -1).
func forwardSingle[V any](c *clientConn, r *request, start time.Time, by map[int32]V) error {
	leader := int32(-1)
	for id := range by {
		leader = id
	}
	u, err := c.upstreamOrAny(leader)
	if err != nil {
		return err
	}
	return c.forwardTo(u, r, start, nil)
}

func partsOf[R kmsg.Request](by map[int32]R) []part {
	parts := make([]part, 0, len(by))
	for _, id := range brokerOrder(by) {
		parts = append(parts, part{broker: id, req: by[id]})
	}
	return parts
}
