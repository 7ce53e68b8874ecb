package kafka

// Characterisation of the keys split by topic cluster, then partition
// leader: ListOffsets (2), DeleteRecords (21), OffsetForLeaderEpoch (23),
// DescribeProducers (61).

import (
	"fmt"
	"testing"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// cxLeaderKey describes one partition-leader key for the shared table: how
// to build its request, answer it (cxOffset per partition), and read the
// client's answer as "topic/partition" → value and → error code.
type cxLeaderKey struct {
	name     string
	versions []int16
	throttle func(v int16) bool // whether the version carries throttle_time_ms
	req      func(ts []cxTopicParts) kmsg.Request
	sub      func(kmsg.Request) []cxTopicParts
	check    func(t *testing.T, sub kmsg.Request) // fields a split must keep
	answer   cxAnswer
	read     func(kmsg.Response) (values, errs cxCodes, throttle int32)
	noValue  int64 // the value of a partition the proxy answers
}

func cxLeaderKeys() []cxLeaderKey {
	return []cxLeaderKey{
		{
			name: "ListOffsets", versions: []int16{1, 4, 7, 10},
			throttle: func(v int16) bool { return v >= 2 },
			req: func(ts []cxTopicParts) kmsg.Request {
				req := kmsg.NewPtrListOffsetsRequest()
				req.IsolationLevel, req.TimeoutMillis = 1, 4321
				for _, t := range ts {
					rt := kmsg.ListOffsetsRequestTopic{Topic: t.topic}
					for _, p := range t.parts {
						rp := kmsg.NewListOffsetsRequestTopicPartition()
						rp.Partition, rp.Timestamp = p, -1
						rt.Partitions = append(rt.Partitions, rp)
					}
					req.Topics = append(req.Topics, rt)
				}
				return req
			},
			sub: func(kr kmsg.Request) (out []cxTopicParts) {
				for _, t := range kr.(*kmsg.ListOffsetsRequest).Topics {
					tp := cxTopicParts{topic: t.Topic}
					for _, p := range t.Partitions {
						tp.parts = append(tp.parts, p.Partition)
					}
					out = append(out, tp)
				}
				return out
			},
			check: func(t *testing.T, kr kmsg.Request) {
				req := kr.(*kmsg.ListOffsetsRequest)
				if req.ReplicaID != -1 || (req.Version >= 2 && req.IsolationLevel != 1) || (req.Version >= 10 && req.TimeoutMillis != 4321) {
					t.Fatalf("sub-request lost fields: replica %d isolation %d timeout %d", req.ReplicaID, req.IsolationLevel, req.TimeoutMillis)
				}
			},
			answer: func(a cxAt, kr kmsg.Request) kmsg.Response {
				resp := kmsg.NewPtrListOffsetsResponse()
				resp.ThrottleMillis = cxThrottle(a)
				for _, t := range kr.(*kmsg.ListOffsetsRequest).Topics {
					rt := kmsg.ListOffsetsResponseTopic{Topic: t.Topic}
					for _, p := range t.Partitions {
						rp := kmsg.NewListOffsetsResponseTopicPartition()
						rp.Partition, rp.Offset, rp.Timestamp = p.Partition, cxOffset(a, p.Partition), 1
						rp.OldStyleOffsets = []int64{cxOffset(a, p.Partition)}
						rt.Partitions = append(rt.Partitions, rp)
					}
					resp.Topics = append(resp.Topics, rt)
				}
				return resp
			},
			read: func(kr kmsg.Response) (cxCodes, cxCodes, int32) {
				resp := kr.(*kmsg.ListOffsetsResponse)
				vals, errs := cxCodes{}, cxCodes{}
				for _, t := range resp.Topics {
					for _, p := range t.Partitions {
						off := p.Offset
						if resp.Version == 0 {
							off = -1
							if len(p.OldStyleOffsets) > 0 {
								off = p.OldStyleOffsets[0]
							}
						}
						vals[cxTP(t.Topic, p.Partition)], errs[cxTP(t.Topic, p.Partition)] = off, int64(p.ErrorCode)
					}
				}
				return vals, errs, resp.ThrottleMillis
			},
			noValue: -1,
		},
		{
			name: "DeleteRecords", versions: []int16{0, 2},
			throttle: func(int16) bool { return true },
			req: func(ts []cxTopicParts) kmsg.Request {
				req := kmsg.NewPtrDeleteRecordsRequest()
				req.TimeoutMillis = 4321
				for _, t := range ts {
					rt := kmsg.DeleteRecordsRequestTopic{Topic: t.topic}
					for _, p := range t.parts {
						rt.Partitions = append(rt.Partitions, kmsg.DeleteRecordsRequestTopicPartition{Partition: p, Offset: 5})
					}
					req.Topics = append(req.Topics, rt)
				}
				return req
			},
			sub: func(kr kmsg.Request) (out []cxTopicParts) {
				for _, t := range kr.(*kmsg.DeleteRecordsRequest).Topics {
					tp := cxTopicParts{topic: t.Topic}
					for _, p := range t.Partitions {
						tp.parts = append(tp.parts, p.Partition)
					}
					out = append(out, tp)
				}
				return out
			},
			check: func(t *testing.T, kr kmsg.Request) {
				req := kr.(*kmsg.DeleteRecordsRequest)
				if req.TimeoutMillis != 4321 || req.Topics[0].Partitions[0].Offset != 5 {
					t.Fatalf("sub-request lost fields: timeout %d offset %d", req.TimeoutMillis, req.Topics[0].Partitions[0].Offset)
				}
			},
			answer: func(a cxAt, kr kmsg.Request) kmsg.Response {
				resp := kmsg.NewPtrDeleteRecordsResponse()
				resp.ThrottleMillis = cxThrottle(a)
				for _, t := range kr.(*kmsg.DeleteRecordsRequest).Topics {
					rt := kmsg.DeleteRecordsResponseTopic{Topic: t.Topic}
					for _, p := range t.Partitions {
						rt.Partitions = append(rt.Partitions, kmsg.DeleteRecordsResponseTopicPartition{Partition: p.Partition, LowWatermark: cxOffset(a, p.Partition)})
					}
					resp.Topics = append(resp.Topics, rt)
				}
				return resp
			},
			read: func(kr kmsg.Response) (cxCodes, cxCodes, int32) {
				resp := kr.(*kmsg.DeleteRecordsResponse)
				vals, errs := cxCodes{}, cxCodes{}
				for _, t := range resp.Topics {
					for _, p := range t.Partitions {
						vals[cxTP(t.Topic, p.Partition)], errs[cxTP(t.Topic, p.Partition)] = p.LowWatermark, int64(p.ErrorCode)
					}
				}
				return vals, errs, resp.ThrottleMillis
			},
			noValue: -1,
		},
		{
			name: "OffsetForLeaderEpoch", versions: []int16{0, 2, 3, 4},
			throttle: func(v int16) bool { return v >= 2 },
			req: func(ts []cxTopicParts) kmsg.Request {
				req := kmsg.NewPtrOffsetForLeaderEpochRequest() // replica -2: a consumer
				for _, t := range ts {
					rt := kmsg.OffsetForLeaderEpochRequestTopic{Topic: t.topic}
					for _, p := range t.parts {
						rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
						rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = p, 3, 2
						rt.Partitions = append(rt.Partitions, rp)
					}
					req.Topics = append(req.Topics, rt)
				}
				return req
			},
			sub: func(kr kmsg.Request) (out []cxTopicParts) {
				for _, t := range kr.(*kmsg.OffsetForLeaderEpochRequest).Topics {
					tp := cxTopicParts{topic: t.Topic}
					for _, p := range t.Partitions {
						tp.parts = append(tp.parts, p.Partition)
					}
					out = append(out, tp)
				}
				return out
			},
			check: func(t *testing.T, kr kmsg.Request) {
				req := kr.(*kmsg.OffsetForLeaderEpochRequest)
				p := req.Topics[0].Partitions[0]
				if (req.Version >= 3 && req.ReplicaID != -2) || p.LeaderEpoch != 2 || (req.Version >= 2 && p.CurrentLeaderEpoch != 3) {
					t.Fatalf("sub-request lost fields: replica %d epochs %d/%d", req.ReplicaID, p.CurrentLeaderEpoch, p.LeaderEpoch)
				}
			},
			answer: func(a cxAt, kr kmsg.Request) kmsg.Response {
				resp := kmsg.NewPtrOffsetForLeaderEpochResponse()
				resp.ThrottleMillis = cxThrottle(a)
				for _, t := range kr.(*kmsg.OffsetForLeaderEpochRequest).Topics {
					rt := kmsg.OffsetForLeaderEpochResponseTopic{Topic: t.Topic}
					for _, p := range t.Partitions {
						rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
						rp.Partition, rp.LeaderEpoch, rp.EndOffset = p.Partition, 2, cxOffset(a, p.Partition)
						rt.Partitions = append(rt.Partitions, rp)
					}
					resp.Topics = append(resp.Topics, rt)
				}
				return resp
			},
			read: func(kr kmsg.Response) (cxCodes, cxCodes, int32) {
				resp := kr.(*kmsg.OffsetForLeaderEpochResponse)
				vals, errs := cxCodes{}, cxCodes{}
				for _, t := range resp.Topics {
					for _, p := range t.Partitions {
						vals[cxTP(t.Topic, p.Partition)], errs[cxTP(t.Topic, p.Partition)] = p.EndOffset, int64(p.ErrorCode)
					}
				}
				return vals, errs, resp.ThrottleMillis
			},
			noValue: -1,
		},
		{
			name: "DescribeProducers", versions: []int16{0},
			throttle: func(int16) bool { return true },
			req: func(ts []cxTopicParts) kmsg.Request {
				req := kmsg.NewPtrDescribeProducersRequest()
				for _, t := range ts {
					req.Topics = append(req.Topics, kmsg.DescribeProducersRequestTopic{Topic: t.topic, Partitions: t.parts})
				}
				return req
			},
			sub: func(kr kmsg.Request) (out []cxTopicParts) {
				for _, t := range kr.(*kmsg.DescribeProducersRequest).Topics {
					out = append(out, cxTopicParts{t.Topic, t.Partitions})
				}
				return out
			},
			check: func(*testing.T, kmsg.Request) {},
			answer: func(a cxAt, kr kmsg.Request) kmsg.Response {
				resp := kmsg.NewPtrDescribeProducersResponse()
				resp.ThrottleMillis = cxThrottle(a)
				for _, t := range kr.(*kmsg.DescribeProducersRequest).Topics {
					rt := kmsg.DescribeProducersResponseTopic{Topic: t.Topic}
					for _, p := range t.Partitions {
						rp := kmsg.NewDescribeProducersResponseTopicPartition()
						rp.Partition = p
						ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
						ap.ProducerID = cxOffset(a, p)
						rp.ActiveProducers = append(rp.ActiveProducers, ap)
						rt.Partitions = append(rt.Partitions, rp)
					}
					resp.Topics = append(resp.Topics, rt)
				}
				return resp
			},
			read: func(kr kmsg.Response) (cxCodes, cxCodes, int32) {
				resp := kr.(*kmsg.DescribeProducersResponse)
				vals, errs := cxCodes{}, cxCodes{}
				for _, t := range resp.Topics {
					for _, p := range t.Partitions {
						// Producer ids are the cluster's own, passed through.
						v := int64(-1)
						if len(p.ActiveProducers) > 0 {
							v = p.ActiveProducers[0].ProducerID
						}
						vals[cxTP(t.Topic, p.Partition)], errs[cxTP(t.Topic, p.Partition)] = v, int64(p.ErrorCode)
					}
				}
				return vals, errs, resp.ThrottleMillis
			},
			noValue: -1,
		},
	}
}

// TestCharacteriseLeaderKeys: each partition goes to its leader in the
// cluster its topic routes to (the backend leader, even when the peer that
// presents it is dead); one target gets the client's bytes as they are;
// unrouted topics are UNKNOWN_TOPIC_OR_PARTITION from the proxy; an
// unknown leader means any broker of the topic's cluster, this host's
// first; answers merge per topic with the largest throttle.
func TestCharacteriseLeaderKeys(t *testing.T) {
	unknown := int64(kerr.UnknownTopicOrPartition.Code)
	cases := []struct {
		name   string
		topics []cxTopicParts
		sent   map[cxAt][]cxTopicParts
		asIs   bool
		from   map[string]cxAt // partition → who answers it (else the proxy, UNKNOWN_TOPIC_OR_PARTITION)
	}{
		{
			name:   "one leader: as sent",
			topics: []cxTopicParts{cxTP2("orders", 0), cxTP2("events", 0, 1)},
			sent:   map[cxAt][]cxTopicParts{cxE100: {cxTP2("orders", 0), cxTP2("events", 0, 1)}},
			asIs:   true,
			from:   map[string]cxAt{cxTP("orders", 0): cxE100, cxTP("events", 0): cxE100, cxTP("events", 1): cxE100},
		},
		{
			name:   "payments routes west although east has a payments partition",
			topics: []cxTopicParts{cxTP2("payments", 0)},
			sent:   map[cxAt][]cxTopicParts{cxW100: {cxTP2("payments", 0)}},
			asIs:   true,
			from:   map[string]cxAt{cxTP("payments", 0): cxW100},
		},
		{
			name:   "split by cluster and leader, unrouted answered by the proxy",
			topics: []cxTopicParts{cxTP2("orders", 0, 1, 2), cxTP2("x.gone", 0), cxTP2("payments", 1, 0), cxTP2("events", 1)},
			sent: map[cxAt][]cxTopicParts{
				cxE100: {cxTP2("orders", 0), cxTP2("events", 1)},
				cxE101: {cxTP2("orders", 1)},
				cxE102: {cxTP2("orders", 2)},
				cxW100: {cxTP2("payments", 0)},
				cxW201: {cxTP2("payments", 1)},
			},
			from: map[string]cxAt{
				cxTP("orders", 0): cxE100, cxTP("orders", 1): cxE101, cxTP("orders", 2): cxE102, cxTP("events", 1): cxE100,
				cxTP("payments", 0): cxW100, cxTP("payments", 1): cxW201,
			},
		},
		{
			name:   "unknown leaders: any broker of the topic's cluster, this host's first",
			topics: []cxTopicParts{cxTP2("orders", 7), cxTP2("w.clicks", 5), cxTP2("w.new", 0)},
			sent: map[cxAt][]cxTopicParts{
				cxE100: {cxTP2("orders", 7)},
				cxW201: {cxTP2("w.clicks", 5), cxTP2("w.new", 0)},
			},
			from: map[string]cxAt{cxTP("orders", 7): cxE100, cxTP("w.clicks", 5): cxW201, cxTP("w.new", 0): cxW201},
		},
		{
			name:   "unrouted only: answered by the proxy",
			topics: []cxTopicParts{cxTP2("x.gone", 0, 1)},
		},
	}
	for _, k := range cxLeaderKeys() {
		for _, v := range k.versions {
			for _, tc := range cases {
				t.Run(fmt.Sprintf("%s v%d %s", k.name, v, tc.name), func(t *testing.T) {
					f := newCx(t, true)
					h := f.conn(t)
					ex, kr := h.answered(k.req(tc.topics), v, k.answer)
					var want []cxAt
					for a := range tc.sent {
						want = append(want, a)
					}
					cxWantTargets(t, ex, want...)
					if tc.asIs {
						cxSentAsIs(t, ex, want[0], cxFrame(k.req(tc.topics), v))
					}
					wantThrottle := int32(0)
					for a, ts := range tc.sent {
						sub := ex.reqs[a][0]
						if got := k.sub(sub); fmt.Sprint(got) != fmt.Sprint(ts) {
							t.Fatalf("%s asked %v, want %v", a, got, ts)
						}
						k.check(t, sub)
						wantThrottle = max(wantThrottle, cxThrottle(a))
					}
					vals, errs, throttle := k.read(kr)
					wantVals, wantErrs := cxCodes{}, cxCodes{}
					for _, tp := range tc.topics {
						for _, p := range tp.parts {
							key := cxTP(tp.topic, p)
							if a, ok := tc.from[key]; ok {
								wantVals[key], wantErrs[key] = cxOffset(a, p), 0
							} else {
								wantVals[key], wantErrs[key] = k.noValue, unknown
							}
						}
					}
					cxWantCodes(t, "values", vals, wantVals)
					cxWantCodes(t, "error codes", errs, wantErrs)
					if k.throttle(v) && throttle != wantThrottle {
						t.Fatalf("throttle %d, want %d", throttle, wantThrottle)
					}
				})
			}
		}
	}
}

// TestCharacteriseRouteMoved: when a topic's route changes, the first
// request for it on a connection that used the old route is answered
// NOT_LEADER_OR_FOLLOWER by the proxy (the client refreshes its
// metadata); the next goes to the new cluster. A new connection goes to
// the new cluster at once.
func TestCharacteriseRouteMoved(t *testing.T) {
	notLeader := int64(kerr.NotLeaderForPartition.Code)
	f := newCx(t, true)
	h := f.conn(t)
	k := cxLeaderKeys()[0] // ListOffsets
	v := int16(7)
	ask := func(h *cxConn) (cxExchange, cxCodes) {
		ex, kr := h.answered(k.req([]cxTopicParts{cxTP2("orders", 1), cxTP2("events", 0)}), v, k.answer)
		_, errs, _ := k.read(kr)
		return ex, errs
	}
	ex, errs := ask(h)
	cxWantTargets(t, ex, cxE100, cxE101)
	cxWantCodes(t, "before the move", errs, cxCodes{cxTP("orders", 1): 0, cxTP("events", 0): 0})

	st := *f.view.st
	st.Routes.Topics = []fsm.TopicRoute{{Topic: "orders", Cluster: cxWest}, {Topic: "payments", Cluster: cxWest}}
	f.view.st = &st

	ex, errs = ask(h)
	cxWantTargets(t, ex, cxE100)
	cxWantCodes(t, "first request after the move", errs, cxCodes{cxTP("orders", 1): notLeader, cxTP("events", 0): 0})
	if subs := k.sub(ex.reqs[cxE100][0]); fmt.Sprint(subs) != fmt.Sprint([]cxTopicParts{cxTP2("events", 0)}) {
		t.Fatalf("east asked %v", subs)
	}

	ex, errs = ask(h)
	cxWantTargets(t, ex, cxE100, cxW201) // west does not know orders: any broker, this host's first
	cxWantCodes(t, "second request after the move", errs, cxCodes{cxTP("orders", 1): 0, cxTP("events", 0): 0})

	ex, _ = ask(f.conn(t))
	cxWantTargets(t, ex, cxE100, cxW201)
}
