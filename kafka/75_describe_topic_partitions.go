package kafka

// DescribeTopicPartitions (key 75): v0 (KIP-966), where every backend has it.
//
// Metadata's paged successor, served as Metadata is (03_metadata.go): the
// topics asked for are grouped by the cluster each routes to (no topics:
// every cluster is asked for all of its own, and each answer keeps only
// the topics routed to its cluster), each group is asked of a broker of
// its cluster, and the answers are merged into one virtual cluster: topic
// ids virtual (topicids.go), leaders and every replica list presented as
// peers (present.go). Topics no rule routes answer
// UNKNOWN_TOPIC_OR_PARTITION.
//
// Paging runs over the union of the clusters' topics sorted by name, and
// stays stateless: the cursor names a topic and partition, as a broker's
// does, so any peer can continue it. Each cluster is asked from the
// client's cursor with the client's partition limit; the merged page takes
// partitions in (topic, partition) order up to that limit and never past
// the earliest cursor a cluster answered (that cluster has not described
// what follows it yet), and its cursor is where it stopped. Every cluster
// described at least one partition before its own cursor, so a page never
// repeats the previous one, and each partition is on exactly one page.

import (
	"cmp"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxDescribePartitions caps a page's partitions, as Kafka's
// max.request.partition.size.limit (default 2000) does.
const maxDescribePartitions = 2000

func handleDescribeTopicPartitions(r *request) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.DescribeTopicPartitionsRequest)
	if len(r.set.sorted) == 0 {
		return errNoCluster
	}
	limit := min(max(req.ResponsePartitionLimit, 1), maxDescribePartitions)
	var from *dtpPos
	if req.Cursor != nil {
		from = &dtpPos{req.Cursor.Topic, req.Cursor.Partition}
	}
	if from != nil && from.partition < 0 {
		return r.c.respond(r, r.start, dtpInvalid(req))
	}
	all := len(req.Topics) == 0
	var parts []part
	if all {
		for _, be := range r.set.sorted {
			sub := *req
			sub.ResponsePartitionLimit = limit
			parts = append(parts, part{t: target{be, anyBroker}, req: &sub})
		}
	} else {
		by := map[*Backend]*kmsg.DescribeTopicPartitionsRequest{}
		local := kmsg.NewPtrDescribeTopicPartitionsResponse()
		seen := make(map[string]bool, len(req.Topics))
		listed := from == nil
		for _, t := range req.Topics {
			if seen[t.Topic] {
				continue
			}
			seen[t.Topic] = true
			if from != nil && t.Topic == from.topic {
				listed = true
			}
			if from != nil && t.Topic < from.topic {
				continue // described on an earlier page
			}
			if !r.allows(opDescribe, resTopic, t.Topic) {
				// As Metadata: a named topic the principal cannot
				// Describe (acl_requests.go).
				local.Topics = append(local.Topics, dtpTopicError(t.Topic, kerr.TopicAuthorizationFailed.Code))
				continue
			}
			be := r.route(t.Topic)
			if be == nil {
				local.Topics = append(local.Topics, dtpTopicError(t.Topic, kerr.UnknownTopicOrPartition.Code))
				continue
			}
			sub := by[be]
			if sub == nil {
				s := *req
				s.Topics, s.Cursor, s.ResponsePartitionLimit = nil, nil, limit
				sub = &s
				by[be] = sub
			}
			sub.Topics = append(sub.Topics, t)
			if from != nil && t.Topic == from.topic {
				sub.Cursor = req.Cursor
			}
		}
		if !listed {
			return r.c.respond(r, r.start, dtpInvalid(req))
		}
		for _, be := range r.set.sorted {
			if sub := by[be]; sub != nil {
				parts = append(parts, part{t: target{be, anyBroker}, req: sub})
			}
		}
		if len(local.Topics) > 0 || len(parts) == 0 {
			parts = append(parts, part{local: local})
		}
	}
	return r.c.scatter(r, r.start, parts, func(resps []kmsg.Response) kmsg.Response {
		var (
			topics []kmsg.DescribeTopicPartitionsResponseTopic
			cut    *dtpPos // the earliest cursor a cluster answered
		)
		for i, x := range resps {
			d := x.(*kmsg.DescribeTopicPartitionsResponse)
			if parts[i].local != nil {
				topics = append(topics, d.Topics...)
				continue
			}
			be := parts[i].t.be
			if c := d.NextCursor; c != nil && (cut == nil || (dtpPos{c.Topic, c.Partition}).before(*cut)) {
				cut = &dtpPos{c.Topic, c.Partition}
			}
			presentTopicPartitions(r, be, d)
			for _, t := range d.Topics {
				// A cluster's topic that routes elsewhere is not shown,
				// as in Metadata.
				if all && (t.Topic == nil || r.route(*t.Topic) != be) {
					continue
				}
				if all && r.authzOn() && !r.allowsQuiet(opDescribe, resTopic, *t.Topic) {
					continue // all topics: only those the principal may Describe
				}
				topics = append(topics, t)
			}
		}
		return pageTopicPartitions(topics, cut, limit)
	})
}

// dtpPos is a position in the paging order: a topic and partition.
type dtpPos struct {
	topic     string
	partition int32
}

func (a dtpPos) before(b dtpPos) bool {
	if a.topic != b.topic {
		return a.topic < b.topic
	}
	return a.partition < b.partition
}

// dtpInvalid answers a cursor a broker refuses (a negative partition, or a
// topic outside the listed ones) as Kafka does: INVALID_REQUEST for every
// listed topic.
func dtpInvalid(req *kmsg.DescribeTopicPartitionsRequest) *kmsg.DescribeTopicPartitionsResponse {
	out := kmsg.NewPtrDescribeTopicPartitionsResponse()
	for _, t := range req.Topics {
		out.Topics = append(out.Topics, dtpTopicError(t.Topic, kerr.InvalidRequest.Code))
	}
	return out
}

func dtpTopicError(name string, code int16) kmsg.DescribeTopicPartitionsResponseTopic {
	t := kmsg.NewDescribeTopicPartitionsResponseTopic()
	t.Topic, t.ErrorCode = kmsg.StringPtr(name), code
	return t
}

// pageTopicPartitions is one page of the merged topics: partitions in
// (topic, partition) order, at most limit of them, none at or past cut,
// with the cursor where the page stopped.
func pageTopicPartitions(topics []kmsg.DescribeTopicPartitionsResponseTopic, cut *dtpPos, limit int32) *kmsg.DescribeTopicPartitionsResponse {
	name := func(t *kmsg.DescribeTopicPartitionsResponseTopic) string {
		if t.Topic == nil {
			return ""
		}
		return *t.Topic
	}
	slices.SortStableFunc(topics, func(a, b kmsg.DescribeTopicPartitionsResponseTopic) int {
		return cmp.Compare(name(&a), name(&b))
	})
	out := kmsg.NewPtrDescribeTopicPartitionsResponse()
	emitted := int32(0)
	for i := range topics {
		t := topics[i]
		n := name(&t)
		if cut != nil && cut.topic < n {
			break
		}
		var next *dtpPos
		kept := make([]kmsg.DescribeTopicPartitionsResponseTopicPartition, 0, len(t.Partitions))
		slices.SortFunc(t.Partitions, func(a, b kmsg.DescribeTopicPartitionsResponseTopicPartition) int {
			return cmp.Compare(a.Partition, b.Partition)
		})
		for _, p := range t.Partitions {
			at := dtpPos{n, p.Partition}
			if cut != nil && !at.before(*cut) {
				next = cut
				break
			}
			if emitted == limit {
				next = &at
				break
			}
			kept = append(kept, p)
			emitted++
		}
		if len(kept) > 0 || len(t.Partitions) == 0 {
			t.Partitions = kept
			out.Topics = append(out.Topics, t)
		}
		if next != nil {
			out.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: next.topic, Partition: next.partition}
			return out
		}
	}
	if cut != nil {
		out.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: cut.topic, Partition: cut.partition}
	}
	return out
}

// presentTopicPartitions rewrites one backend's answer in place: topic ids
// virtual, leaders and replica lists peers, as presentMetadata does.
func presentTopicPartitions(r *request, be *Backend, d *kmsg.DescribeTopicPartitionsResponse) {
	pr := r.presenter(be)
	mapNullable := func(ids []int32) []int32 {
		if ids == nil {
			return nil
		}
		return pr.mapIDs(ids)
	}
	for i := range d.Topics {
		t := &d.Topics[i]
		if t.Topic != nil {
			r.c.s.presentTopicID(*t.Topic, &t.TopicID)
		} else {
			t.TopicID = [16]byte{}
		}
		for j := range t.Partitions {
			p := &t.Partitions[j]
			if t.Topic != nil {
				p.LeaderEpoch = presentChainEpoch(r, be, *t.Topic, p.LeaderEpoch)
			}
			p.LeaderID = pr.peerFor(p.LeaderID)
			p.Replicas = pr.mapIDs(p.Replicas)
			p.ISR = pr.mapIDs(p.ISR)
			p.EligibleLeaderReplicas = mapNullable(p.EligibleLeaderReplicas)
			p.LastKnownELR = mapNullable(p.LastKnownELR)
			p.OfflineReplicas = pr.mapIDs(p.OfflineReplicas)
			if p.LeaderID >= 0 && len(p.Replicas) > 0 && p.Replicas[0] != p.LeaderID {
				p.Replicas = moveFirst(p.Replicas, p.LeaderID)
			}
		}
	}
}
