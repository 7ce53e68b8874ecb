package kafka

// Characterisation of Produce (0) and Fetch (1) across two clusters (the
// single-cluster rewrites are in handlers_test.go): split by topic cluster
// and leader, unrouted topics answered by the proxy, transactions held to
// their home cluster, virtual producer ids mapped per cluster, KIP-951
// leaders presented as peers.

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// cxBatch is a valid v2 record batch of producer (id, epoch).
func cxBatch(id int64, epoch int16, values ...string) []byte {
	b := kmsg.RecordBatch{Magic: 2, ProducerID: id, ProducerEpoch: epoch, NumRecords: int32(len(values)), LastOffsetDelta: int32(len(values) - 1)}
	for i, v := range values {
		r := kmsg.Record{OffsetDelta: int32(i), Value: []byte(v)}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		b.Records = r.AppendTo(b.Records)
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

func cxProduceReq(acks int16, txn *string, pid int64, ts ...cxTopicParts) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis, req.TransactionID = acks, 1234, txn
	for _, t := range ts {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = t.topic
		for _, p := range t.parts {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition, rp.Records = p, cxBatch(pid, 0, fmt.Sprintf("%s/%d", t.topic, p))
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// cxProduceAnswer answers every partition with base offset cxOffset; with
// notLeader, west's partitions are NOT_LEADER_OR_FOLLOWER naming west/202
// as the current leader and endpoint (KIP-951).
func cxProduceAnswer(notLeader bool) cxAnswer {
	return func(a cxAt, kr kmsg.Request) kmsg.Response {
		req := kr.(*kmsg.ProduceRequest)
		resp := kmsg.NewPtrProduceResponse()
		resp.ThrottleMillis = cxThrottle(a)
		for _, t := range req.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.BaseOffset = p.Partition, cxOffset(a, p.Partition)
				if notLeader && a.cluster == cxWest {
					rp.ErrorCode, rp.BaseOffset = kerr.NotLeaderForPartition.Code, -1
					rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = 202, 9
					resp.Brokers = []kmsg.ProduceResponseBroker{{NodeID: 202, Host: "w202.kafka.internal", Port: 9202}}
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
}

func TestCharacteriseProduceTwoClusters(t *testing.T) {
	unknown := int64(kerr.UnknownTopicOrPartition.Code)
	notLeader := int64(kerr.NotLeaderForPartition.Code)
	cases := []struct {
		name      string
		txn       *string
		topics    []cxTopicParts
		notLeader bool
		sent      map[cxAt][]cxTopicParts
		asIs      bool
		codes     cxCodes // error codes; partitions without one must carry their broker's offset
		from      map[string]cxAt
	}{
		{
			name:   "one leader: as sent",
			topics: []cxTopicParts{cxTP2("payments", 0)},
			sent:   map[cxAt][]cxTopicParts{cxW100: {cxTP2("payments", 0)}}, asIs: true,
			codes: cxCodes{cxTP("payments", 0): 0}, from: map[string]cxAt{cxTP("payments", 0): cxW100},
		},
		{
			name:   "split by cluster and leader, unrouted answered by the proxy",
			topics: []cxTopicParts{cxTP2("orders", 1, 0), cxTP2("x.gone", 0), cxTP2("payments", 1)},
			sent:   map[cxAt][]cxTopicParts{cxE100: {cxTP2("orders", 0)}, cxE101: {cxTP2("orders", 1)}, cxW201: {cxTP2("payments", 1)}},
			codes:  cxCodes{cxTP("orders", 0): 0, cxTP("orders", 1): 0, cxTP("payments", 1): 0, cxTP("x.gone", 0): unknown},
			from:   map[string]cxAt{cxTP("orders", 0): cxE100, cxTP("orders", 1): cxE101, cxTP("payments", 1): cxW201},
		},
		{
			// Transactions follow their partitions (txn_clusters.go): which
			// cluster a transaction runs on is checked when its partitions
			// are added, and by the broker.
			name: "a transaction's batches go where their partitions are", txn: kmsg.StringPtr("t1"),
			topics: []cxTopicParts{cxTP2("events", 0), cxTP2("w.clicks", 0), cxTP2("x.gone", 1)},
			sent:   map[cxAt][]cxTopicParts{cxE100: {cxTP2("events", 0)}, cxW201: {cxTP2("w.clicks", 0)}},
			codes:  cxCodes{cxTP("events", 0): 0, cxTP("w.clicks", 0): 0, cxTP("x.gone", 1): unknown},
			from:   map[string]cxAt{cxTP("events", 0): cxE100, cxTP("w.clicks", 0): cxW201},
		},
		{
			name:   "KIP-951 current leader and endpoints presented as peers",
			topics: []cxTopicParts{cxTP2("w.clicks", 0), cxTP2("events", 1)},
			sent:   map[cxAt][]cxTopicParts{cxE100: {cxTP2("events", 1)}, cxW201: {cxTP2("w.clicks", 0)}},
			codes:  cxCodes{cxTP("events", 1): 0, cxTP("w.clicks", 0): notLeader}, notLeader: true,
			from: map[string]cxAt{cxTP("events", 1): cxE100},
		},
	}
	for _, v := range []int16{3, 7, 10, 12} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("v%d %s", v, tc.name), func(t *testing.T) {
				f := newCx(t, true)
				h := f.conn(t)
				mk := func() *kmsg.ProduceRequest { return cxProduceReq(-1, tc.txn, -1, tc.topics...) }
				ex, kr := h.answered(mk(), v, cxProduceAnswer(tc.notLeader))
				var want []cxAt
				for a := range tc.sent {
					want = append(want, a)
				}
				cxWantTargets(t, ex, want...)
				if tc.asIs {
					cxSentAsIs(t, ex, want[0], cxFrame(mk(), v))
				}
				wantThrottle := int32(0)
				for a, ts := range tc.sent {
					sub := ex.reqs[a][0].(*kmsg.ProduceRequest)
					var got []cxTopicParts
					for _, st := range sub.Topics {
						tp := cxTopicParts{topic: st.Topic}
						for _, p := range st.Partitions {
							tp.parts = append(tp.parts, p.Partition)
							if string(p.Records) != string(cxBatch(-1, 0, cxTP(st.Topic, p.Partition))) {
								t.Fatalf("%s: records of %s changed on the way", a, cxTP(st.Topic, p.Partition))
							}
						}
						got = append(got, tp)
					}
					if fmt.Sprint(got) != fmt.Sprint(ts) || sub.Acks != -1 || sub.TimeoutMillis != 1234 || cxStrOr(sub.TransactionID) != cxStrOr(tc.txn) {
						t.Fatalf("%s asked %v acks %d timeout %d txn %v, want %v", a, got, sub.Acks, sub.TimeoutMillis, sub.TransactionID, ts)
					}
					wantThrottle = max(wantThrottle, cxThrottle(a))
				}
				resp := kr.(*kmsg.ProduceResponse)
				got, offs := cxCodes{}, cxCodes{}
				for _, rt := range resp.Topics {
					for _, p := range rt.Partitions {
						k := cxTP(rt.Topic, p.Partition)
						got[k], offs[k] = int64(p.ErrorCode), p.BaseOffset
						if tc.notLeader && rt.Topic == "w.clicks" && v >= 10 {
							if p.CurrentLeader.LeaderID != cxExpectPeer(f, cxWest, 202) || p.CurrentLeader.LeaderEpoch != 9 {
								t.Fatalf("current leader %+v, want the peer presenting west/202", p.CurrentLeader)
							}
						}
					}
				}
				cxWantCodes(t, "partition error codes", got, tc.codes)
				for k, a := range tc.from {
					var p int32
					fmt.Sscanf(k[len(k)-1:], "%d", &p)
					if offs[k] != cxOffset(a, p) {
						t.Fatalf("%s: base offset %d, want %s's %d", k, offs[k], a, cxOffset(a, p))
					}
				}
				if v >= 1 && resp.ThrottleMillis != wantThrottle {
					t.Fatalf("throttle %d, want %d", resp.ThrottleMillis, wantThrottle)
				}
				if tc.notLeader && v >= 10 {
					if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != cxExpectPeer(f, cxWest, 202) {
						t.Fatalf("node endpoints %+v, want the peer presenting west/202", resp.Brokers)
					}
				}
			})
		}
	}
}

// TestCharacteriseProduceAcksZero: acks=0 reserves no answer; the partitions
// still go to their leaders on their clusters, and unrouted ones are
// dropped.
func TestCharacteriseProduceAcksZero(t *testing.T) {
	f := newCx(t, true)
	h := f.conn(t)
	ex := h.run(cxFrame(cxProduceReq(0, nil, -1, cxTP2("orders", 2), cxTP2("w.clicks", 1), cxTP2("x.gone", 0)), 9), nil)
	if ex.err != nil || ex.slots != 0 {
		t.Fatalf("handler error %v, %d slots: acks=0 owes no answer", ex.err, ex.slots)
	}
	cxWantTargets(t, ex, cxE102, cxW202)
}

// TestCharacteriseProduceVirtualProducerIDs: an idempotent producer's
// virtual id never reaches a broker: each cluster gets the real id it
// issued the proxy for (virtual id, epoch), in a batch whose CRC is
// recomputed. A cluster that cannot issue one fails that partition with
// REQUEST_TIMED_OUT (the client retries); the others go on.
func TestCharacteriseProduceVirtualProducerIDs(t *testing.T) {
	f := newCx(t, true)
	vpid := f.srv.pids.issue(0)
	f.srv.pids.m.put(pidKey{vpid, 0, cxEast}, realPID{id: 31, epoch: 4})
	// Nothing for west: its backend has no versions loaded, so asking it
	// for an id fails at once.
	h := f.conn(t)
	req := cxProduceReq(-1, nil, vpid, cxTP2("orders", 0, 1), cxTP2("w.clicks", 0))
	ex, kr := h.answered(req, 9, cxProduceAnswer(false))
	cxWantTargets(t, ex, cxE100, cxE101)
	for _, a := range []cxAt{cxE100, cxE101} {
		for _, rt := range ex.reqs[a][0].(*kmsg.ProduceRequest).Topics {
			for _, p := range rt.Partitions {
				var b kmsg.RecordBatch
				if err := b.ReadFrom(p.Records); err != nil {
					t.Fatal(err)
				}
				if b.ProducerID != 31 || b.ProducerEpoch != 4 {
					t.Fatalf("%s: batch of producer %d/%d, want the real 31/4", a, b.ProducerID, b.ProducerEpoch)
				}
				if crc := crc32.Checksum(p.Records[21:], crc32.MakeTable(crc32.Castagnoli)); uint32(b.CRC) != crc {
					t.Fatalf("%s: batch crc %x, computed %x", a, uint32(b.CRC), crc)
				}
			}
		}
	}
	got := cxCodes{}
	for _, rt := range kr.(*kmsg.ProduceResponse).Topics {
		for _, p := range rt.Partitions {
			got[cxTP(rt.Topic, p.Partition)] = int64(p.ErrorCode)
		}
	}
	cxWantCodes(t, "partition error codes", got, cxCodes{cxTP("orders", 0): 0, cxTP("orders", 1): 0, cxTP("w.clicks", 0): int64(kerr.RequestTimedOut.Code)})
}

func cxFetchReq(ts ...cxTopicParts) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.SessionID, req.SessionEpoch = 500, 1, 1<<20, 77, -1 // closing session 77: a full fetch (fetch_session.go)
	for _, t := range ts {
		rt := kmsg.FetchRequestTopic{Topic: t.topic}
		for _, p := range t.parts {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, 10, 1<<16
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// TestCharacteriseFetchTwoClusters: split by cluster and leader, sessions
// off (session 0, epoch -1 upstream and in the answer), unrouted topics
// answered by the proxy, preferred read replicas cleared.
func TestCharacteriseFetchTwoClusters(t *testing.T) {
	answer := func(a cxAt, kr kmsg.Request) kmsg.Response {
		req := kr.(*kmsg.FetchRequest)
		resp := kmsg.NewPtrFetchResponse()
		resp.ThrottleMillis, resp.SessionID = cxThrottle(a), 99
		for _, t := range req.Topics {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition, rp.HighWatermark, rp.PreferredReadReplica = p.Partition, cxOffset(a, p.Partition), 100
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	for _, v := range []int16{4, 7, 11, 12} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newCx(t, true)
			h := f.conn(t)
			ex, kr := h.answered(cxFetchReq(cxTP2("orders", 0, 2), cxTP2("x.gone", 0), cxTP2("w.clicks", 1), cxTP2("payments", 0)), v, answer)
			want := map[cxAt][]string{cxE100: {"orders/0"}, cxE102: {"orders/2"}, cxW100: {"payments/0"}, cxW202: {"w.clicks/1"}}
			cxWantTargets(t, ex, cxE100, cxE102, cxW100, cxW202)
			for a, ps := range want {
				sub := ex.reqs[a][0].(*kmsg.FetchRequest)
				var got []string
				for _, t := range sub.Topics {
					for _, p := range t.Partitions {
						got = append(got, cxTP(t.Topic, p.Partition))
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(ps) || (v >= 7 && (sub.SessionID != 0 || sub.SessionEpoch != -1)) || sub.MaxWaitMillis != 500 {
					t.Fatalf("%s asked %v session %d/%d, want %v sessionless", a, got, sub.SessionID, sub.SessionEpoch, ps)
				}
			}
			resp := kr.(*kmsg.FetchResponse)
			got, codes := cxCodes{}, cxCodes{}
			for _, rt := range resp.Topics {
				for _, p := range rt.Partitions {
					k := cxTP(rt.Topic, p.Partition)
					got[k], codes[k] = p.HighWatermark, int64(p.ErrorCode)
					if v >= 11 && p.PreferredReadReplica != -1 {
						t.Fatalf("%s: preferred read replica %d, want -1", k, p.PreferredReadReplica)
					}
				}
			}
			cxWantCodes(t, "error codes", codes, cxCodes{cxTP("orders", 0): 0, cxTP("orders", 2): 0, cxTP("x.gone", 0): int64(kerr.UnknownTopicOrPartition.Code), cxTP("w.clicks", 1): 0, cxTP("payments", 0): 0})
			for k, a := range map[string]cxAt{cxTP("orders", 0): cxE100, cxTP("orders", 2): cxE102, cxTP("w.clicks", 1): cxW202, cxTP("payments", 0): cxW100} {
				var p int32
				fmt.Sscanf(k[len(k)-1:], "%d", &p)
				if got[k] != cxOffset(a, p) {
					t.Fatalf("%s: high watermark %d, want %s's", k, got[k], a)
				}
			}
			if v >= 7 && resp.SessionID != 0 {
				t.Fatalf("session id %d reached the client", resp.SessionID)
			}
			if resp.ThrottleMillis != 1202 {
				t.Fatalf("throttle %d, want 1202", resp.ThrottleMillis)
			}
		})
	}
}
