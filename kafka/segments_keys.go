package kafka

// The segment hooks of each key that carries offsets or epochs of a
// migrated topic (segments.go): Produce, Fetch, ListOffsets,
// OffsetForLeaderEpoch, DeleteRecords, DescribeProducers. Committed group
// offsets need none: they are stored virtual on the live cluster.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// segOf is the segment of topic (named, or by t's cluster id) served by
// t's cluster, for a request under r's state.
func segOf(r *request, t target, name string, id [16]byte) (segRef, bool) {
	if len(r.st.Chains) == 0 || t.be == nil {
		return segRef{}, false
	}
	if name == "" && id != ([16]byte{}) {
		name, _ = t.be.topicName(id)
	}
	if name == "" {
		return segRef{}, false
	}
	return segmentOn(r.st, name, t.be.Name())
}

// Produce: answers' offsets virtual, leader hints' epochs presented.
var produceSeg = segmentHooks[*kmsg.ProduceRequest, *kmsg.ProduceResponse]{
	resp: func(r *request, t target, resp *kmsg.ProduceResponse) {
		for i := range resp.Topics {
			rt := &resp.Topics[i]
			s, ok := segOf(r, t, rt.Topic, rt.TopicID)
			if !ok {
				continue
			}
			for j := range rt.Partitions {
				p := &rt.Partitions[j]
				p.BaseOffset = s.toVirtual(p.Partition, p.BaseOffset)
				p.LogStartOffset = s.toVirtual(p.Partition, p.LogStartOffset)
				p.CurrentLeader.LeaderEpoch = s.epochOut(p.CurrentLeader.LeaderEpoch)
			}
		}
	},
}

// Fetch: below the live segment's start a partition is read from the
// previous segment (or is out of range once that is retired); offsets and
// epochs are translated both ways, batches shifted in place.
var fetchSeg = segmentHooks[*kmsg.FetchRequest, *kmsg.FetchResponse]{
	older: func(r *request, req *kmsg.FetchRequest, i, j int, tt topicTarget) bool {
		p := &req.Topics[i].Partitions[j]
		return p.FetchOffset < tt.live().g.Start(p.Partition)
	},
	local: func(r *request, req *kmsg.FetchRequest, i, j int, tt topicTarget) bool {
		p := &req.Topics[i].Partitions[j]
		return tt.prev == nil && p.FetchOffset < tt.live().g.Start(p.Partition)
	},
	fill: func(r *request, req *kmsg.FetchRequest, i, j int, tt topicTarget, rp any) {
		p := rp.(*kmsg.FetchResponseTopicPartition)
		p.ErrorCode = kerr.OffsetOutOfRange.Code
		p.HighWatermark, p.LastStableOffset, p.LogStartOffset = -1, -1, -1
	},
	req: func(r *request, t target, sub *kmsg.FetchRequest) {
		for i := range sub.Topics {
			st := &sub.Topics[i]
			s, ok := segOf(r, t, st.Topic, st.TopicID)
			if !ok {
				continue
			}
			for j := range st.Partitions {
				p := &st.Partitions[j]
				p.FetchOffset = s.toPhysical(p.Partition, p.FetchOffset)
				p.CurrentLeaderEpoch = s.epochIn(p.CurrentLeaderEpoch)
				p.LastFetchedEpoch = s.epochIn(p.LastFetchedEpoch)
			}
		}
	},
	resp: func(r *request, t target, resp *kmsg.FetchResponse) {
		for i := range resp.Topics {
			rt := &resp.Topics[i]
			s, ok := segOf(r, t, rt.Topic, rt.TopicID)
			if !ok {
				continue
			}
			var moved int64
			name := rt.Topic
			if name == "" {
				name, _ = t.be.topicName(rt.TopicID)
			}
			for j := range rt.Partitions {
				p := &rt.Partitions[j]
				p.HighWatermark = s.toVirtual(p.Partition, p.HighWatermark)
				p.LastStableOffset = s.toVirtual(p.Partition, p.LastStableOffset)
				p.LogStartOffset = s.toVirtual(p.Partition, p.LogStartOffset)
				for k := range p.AbortedTransactions {
					a := &p.AbortedTransactions[k]
					a.FirstOffset = s.toVirtual(p.Partition, a.FirstOffset)
				}
				p.CurrentLeader.LeaderEpoch = s.epochOut(p.CurrentLeader.LeaderEpoch)
				p.RecordBatches = shiftBatches(p.RecordBatches, s, p.Partition)
				if s.next != nil {
					moved += int64(len(p.RecordBatches))
				}
			}
			if moved > 0 {
				r.c.s.metrics.chainedRead(t.be, name, moved)
			}
		}
	},
}

// ListOffsets: the earliest offsets and timestamp searches start at the
// previous segment while it serves reads; a timestamp past its last record
// is looked up on the live segment.
var listOffsetsSeg = segmentHooks[*kmsg.ListOffsetsRequest, *kmsg.ListOffsetsResponse]{
	older: func(r *request, req *kmsg.ListOffsetsRequest, i, j int, tt topicTarget) bool {
		ts := req.Topics[i].Partitions[j].Timestamp
		return ts >= 0 || ts == -2 || ts == -4
	},
	req: func(r *request, t target, sub *kmsg.ListOffsetsRequest) {
		for i := range sub.Topics {
			s, ok := segOf(r, t, sub.Topics[i].Topic, [16]byte{})
			if !ok {
				continue
			}
			for j := range sub.Topics[i].Partitions {
				p := &sub.Topics[i].Partitions[j]
				p.CurrentLeaderEpoch = s.epochIn(p.CurrentLeaderEpoch)
			}
		}
	},
	resp: func(r *request, t target, resp *kmsg.ListOffsetsResponse) {
		for i := range resp.Topics {
			rt := &resp.Topics[i]
			s, ok := segOf(r, t, rt.Topic, [16]byte{})
			if !ok {
				continue
			}
			for j := range rt.Partitions {
				p := &rt.Partitions[j]
				if s.next != nil && p.ErrorCode == 0 && p.Offset < 0 {
					if ts, ok := listedTimestamp(r, rt.Topic, p.Partition); ok && ts >= 0 {
						// No record at or after ts before the switch:
						// search the live segment.
						liveListOffsets(r, rt.Topic, p, ts)
						continue
					}
				}
				p.Offset = s.toVirtual(p.Partition, p.Offset)
				for k := range p.OldStyleOffsets {
					p.OldStyleOffsets[k] = s.toVirtual(p.Partition, p.OldStyleOffsets[k])
				}
				p.LeaderEpoch = s.epochOut(p.LeaderEpoch)
			}
		}
	},
}

// listedTimestamp is the timestamp the client's ListOffsets asked for
// topic's partition.
func listedTimestamp(r *request, topic string, partition int32) (int64, bool) {
	req, ok := r.split.req.(*kmsg.ListOffsetsRequest)
	if !ok {
		return 0, false
	}
	for _, t := range req.Topics {
		if t.Topic != topic {
			continue
		}
		for _, p := range t.Partitions {
			if p.Partition == partition {
				return p.Timestamp, true
			}
		}
	}
	return 0, false
}

// liveListOffsets answers p, a timestamp search the previous segment could
// not satisfy, from the live segment's leader, over the proxy's control
// connection (within BrokerTimeout). A failure answers the retriable
// NOT_LEADER_OR_FOLLOWER: the client asks again.
func liveListOffsets(r *request, topic string, p *kmsg.ListOffsetsResponseTopicPartition, ts int64) {
	be := r.route(topic)
	if be == nil {
		p.ErrorCode = kerr.NotLeaderForPartition.Code
		return
	}
	s, ok := segmentOn(r.st, topic, be.Name())
	if !ok {
		p.ErrorCode = kerr.NotLeaderForPartition.Code
		return
	}
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = p.Partition, ts, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), be.cfg.BrokerTimeout)
	defer cancel()
	kr, err := be.request(ctx, be.leader(topic, p.Partition), req)
	if err != nil {
		p.ErrorCode = kerr.NotLeaderForPartition.Code
		return
	}
	resp := kr.(*kmsg.ListOffsetsResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		p.ErrorCode = kerr.NotLeaderForPartition.Code
		return
	}
	lp := resp.Topics[0].Partitions[0]
	p.ErrorCode = lp.ErrorCode
	p.Timestamp = lp.Timestamp
	p.Offset = s.toVirtual(p.Partition, lp.Offset)
	p.LeaderEpoch = s.epochOut(lp.LeaderEpoch)
}

// OffsetForLeaderEpoch: an epoch older than the live segment's is the
// previous segment's (answered there, its end clamped to the switch), or,
// once that is retired, ended where the live segment starts.
var offsetForLeaderEpochSeg = segmentHooks[*kmsg.OffsetForLeaderEpochRequest, *kmsg.OffsetForLeaderEpochResponse]{
	older: func(r *request, req *kmsg.OffsetForLeaderEpochRequest, i, j int, tt topicTarget) bool {
		return req.Topics[i].Partitions[j].LeaderEpoch < tt.live().g.EpochBase
	},
	local: func(r *request, req *kmsg.OffsetForLeaderEpochRequest, i, j int, tt topicTarget) bool {
		return tt.prev == nil && req.Topics[i].Partitions[j].LeaderEpoch < tt.live().g.EpochBase
	},
	fill: func(r *request, req *kmsg.OffsetForLeaderEpochRequest, i, j int, tt topicTarget, rp any) {
		in := req.Topics[i].Partitions[j]
		p := rp.(*kmsg.OffsetForLeaderEpochResponseTopicPartition)
		p.LeaderEpoch, p.EndOffset = in.LeaderEpoch, tt.live().g.Start(in.Partition)
	},
	req: func(r *request, t target, sub *kmsg.OffsetForLeaderEpochRequest) {
		for i := range sub.Topics {
			s, ok := segOf(r, t, sub.Topics[i].Topic, [16]byte{})
			if !ok {
				continue
			}
			for j := range sub.Topics[i].Partitions {
				p := &sub.Topics[i].Partitions[j]
				p.CurrentLeaderEpoch = s.epochIn(p.CurrentLeaderEpoch)
				p.LeaderEpoch = max(p.LeaderEpoch-s.g.EpochBase, 0)
			}
		}
	},
	resp: func(r *request, t target, resp *kmsg.OffsetForLeaderEpochResponse) {
		for i := range resp.Topics {
			s, ok := segOf(r, t, resp.Topics[i].Topic, [16]byte{})
			if !ok {
				continue
			}
			for j := range resp.Topics[i].Partitions {
				p := &resp.Topics[i].Partitions[j]
				p.EndOffset = s.toVirtual(p.Partition, p.EndOffset)
				p.LeaderEpoch = s.epochOut(p.LeaderEpoch)
			}
		}
	},
}

// DeleteRecords: an offset below the live segment's start deletes on the
// previous segment (or nothing, once that is retired); the low watermark
// is virtual.
var deleteRecordsSeg = segmentHooks[*kmsg.DeleteRecordsRequest, *kmsg.DeleteRecordsResponse]{
	older: func(r *request, req *kmsg.DeleteRecordsRequest, i, j int, tt topicTarget) bool {
		p := req.Topics[i].Partitions[j]
		return p.Offset >= 0 && p.Offset < tt.live().g.Start(p.Partition)
	},
	local: func(r *request, req *kmsg.DeleteRecordsRequest, i, j int, tt topicTarget) bool {
		p := req.Topics[i].Partitions[j]
		return tt.prev == nil && p.Offset >= 0 && p.Offset < tt.live().g.Start(p.Partition)
	},
	fill: func(r *request, req *kmsg.DeleteRecordsRequest, i, j int, tt topicTarget, rp any) {
		rp.(*kmsg.DeleteRecordsResponseTopicPartition).LowWatermark = tt.live().g.Start(req.Topics[i].Partitions[j].Partition)
	},
	req: func(r *request, t target, sub *kmsg.DeleteRecordsRequest) {
		for i := range sub.Topics {
			s, ok := segOf(r, t, sub.Topics[i].Topic, [16]byte{})
			if !ok {
				continue
			}
			for j := range sub.Topics[i].Partitions {
				p := &sub.Topics[i].Partitions[j]
				p.Offset = s.toPhysical(p.Partition, p.Offset)
			}
		}
	},
	resp: func(r *request, t target, resp *kmsg.DeleteRecordsResponse) {
		for i := range resp.Topics {
			s, ok := segOf(r, t, resp.Topics[i].Topic, [16]byte{})
			if !ok {
				continue
			}
			for j := range resp.Topics[i].Partitions {
				p := &resp.Topics[i].Partitions[j]
				p.LowWatermark = s.toVirtual(p.Partition, p.LowWatermark)
			}
		}
	},
}

// DescribeProducers: open transactions' first offsets are virtual.
var describeProducersSeg = segmentHooks[*kmsg.DescribeProducersRequest, *kmsg.DescribeProducersResponse]{
	resp: func(r *request, t target, resp *kmsg.DescribeProducersResponse) {
		for i := range resp.Topics {
			s, ok := segOf(r, t, resp.Topics[i].Topic, [16]byte{})
			if !ok {
				continue
			}
			for j := range resp.Topics[i].Partitions {
				p := &resp.Topics[i].Partitions[j]
				for k := range p.ActiveProducers {
					a := &p.ActiveProducers[k]
					a.CurrentTxnStartOffset = s.toVirtual(p.Partition, a.CurrentTxnStartOffset)
				}
			}
		}
	},
}

// presentChainEpoch raises a live segment's leader epoch in a metadata
// answer from be.
func presentChainEpoch(r *request, be *Backend, topic string, epoch int32) int32 {
	if len(r.st.Chains) == 0 || epoch < 0 {
		return epoch
	}
	s, ok := segmentOn(r.st, topic, be.Name())
	if !ok || s.next != nil {
		return epoch
	}
	return s.epochOut(epoch)
}
