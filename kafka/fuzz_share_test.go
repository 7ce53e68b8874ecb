package kafka

// Fuzz targets for the share-group keys (76-79, 90-92):
//
//   - FuzzShareXxxRequest feeds arbitrary bytes as a client body of the
//     key (fuzzRequest, fuzz_handlers_test.go): routed without a panic or
//     a handler error, answered with a response that decodes.
//   - FuzzShareSplitResponse answers every part of a share request that
//     splits across brokers with the same arbitrary bytes: the merge must
//     not panic and the client gets a response that decodes, or the
//     connection closes with ErrMalformed.
//   - FuzzShareSession drives one connection's share session through a
//     fuzzed sequence of ShareFetch and ShareAcknowledge requests against
//     model brokers that check every epoch they are sent, lose sessions
//     and answer errors on demand: the proxy must never send a broker an
//     epoch its session does not expect (unless the broker lost it),
//     acknowledgements on an opening session, or a real topic id to the
//     client.
//
//	go test -run '^$' -fuzz '^FuzzShareSession$' -fuzztime 30s ./kafka/

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func seedShareFetch(epoch int32) kmsg.Request {
	o, ev := virtualTopicID("orders"), virtualTopicID("events")
	if epoch == 0 {
		return shareFetchReq(0, []shareTP{{o, 0}, {o, 1}, {o, 3}, {ev, 0}}, nil, nil)
	}
	return shareFetchReq(epoch, []shareTP{{o, 2}}, []shareTP{{o, 0}}, []shareTP{{ev, 0}})
}

func seedShareAcknowledge() kmsg.Request {
	req := kmsg.NewPtrShareAcknowledgeRequest()
	req.GroupID, req.MemberID, req.ShareSessionEpoch = kmsg.StringPtr("g"), kmsg.StringPtr("m"), 1
	req.Topics = []kmsg.ShareAcknowledgeRequestTopic{{TopicID: virtualTopicID("orders"), Partitions: []kmsg.ShareAcknowledgeRequestTopicPartition{
		{Partition: 0, AcknowledgementBatches: []kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch{{FirstOffset: 1, LastOffset: 3, AcknowledgeTypes: []int8{1, 2, 3}}}},
	}}}
	return req
}

func seedShareHeartbeat() kmsg.Request {
	req := kmsg.NewPtrShareGroupHeartbeatRequest()
	req.GroupID, req.MemberID, req.SubscribedTopicNames = "g-1", "m", []string{"orders", "events"}
	return req
}

func seedShareDescribe() kmsg.Request {
	req := kmsg.NewPtrShareGroupDescribeRequest()
	req.GroupIDs = []string{"g-1", "g-2", "other-3"}
	return req
}

func seedDescribeShareGroupOffsets() kmsg.Request {
	req := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
	for _, g := range []string{"g-1", "g-2"} {
		rg := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
		rg.GroupID = g
		rg.Topics = []kmsg.DescribeShareGroupOffsetsRequestGroupTopic{{Topic: "orders", Partitions: []int32{0, 1}}}
		req.Groups = append(req.Groups, rg)
	}
	return req
}

func seedAlterShareGroupOffsets() kmsg.Request {
	req := kmsg.NewPtrAlterShareGroupOffsetsRequest()
	req.GroupID = "g-1"
	req.Topics = []kmsg.AlterShareGroupOffsetsRequestTopic{{Topic: "orders", Partitions: []kmsg.AlterShareGroupOffsetsRequestTopicPartition{{Partition: 0, StartOffset: 5}}}}
	return req
}

func seedDeleteShareGroupOffsets() kmsg.Request {
	req := kmsg.NewPtrDeleteShareGroupOffsetsRequest()
	req.GroupID = "g-1"
	req.Topics = []kmsg.DeleteShareGroupOffsetsRequestTopic{{Topic: "orders"}}
	return req
}

func FuzzShareGroupHeartbeatRequest(f *testing.F) { fuzzRequest(f, 76, seedShareHeartbeat()) }
func FuzzShareGroupDescribeRequest(f *testing.F)  { fuzzRequest(f, 77, seedShareDescribe()) }
func FuzzShareFetchRequest(f *testing.F)          { fuzzRequest(f, 78, seedShareFetch(0), seedShareFetch(1)) }
func FuzzShareAcknowledgeRequest(f *testing.F)    { fuzzRequest(f, 79, seedShareAcknowledge()) }
func FuzzDescribeShareGroupOffsetsRequest(f *testing.F) {
	fuzzRequest(f, 90, seedDescribeShareGroupOffsets())
}
func FuzzAlterShareGroupOffsetsRequest(f *testing.F) {
	fuzzRequest(f, 91, seedAlterShareGroupOffsets())
}
func FuzzDeleteShareGroupOffsetsRequest(f *testing.F) {
	fuzzRequest(f, 92, seedDeleteShareGroupOffsets())
}

// shareSplitSeeds split across brokers in the fixture (with the
// coordinators of splitCoordinators cached).
var shareSplitSeeds = []struct {
	key int16
	req func() kmsg.Request
}{
	{78, func() kmsg.Request { return seedShareFetch(0) }},
	{77, seedShareDescribe},
	{90, seedDescribeShareGroupOffsets},
}

func FuzzShareSplitResponse(f *testing.F) {
	for i, s := range shareSplitSeeds {
		lo, hi := servedRange(s.key)
		for v := lo; v <= hi; v++ {
			f.Add(uint8(i), uint8(v), respFrame(kmsg.ResponseForKey(s.key), v, 1)[8:])
		}
	}
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, 10)
	f.Fuzz(func(t *testing.T, sel, version uint8, raw []byte) {
		defer catchPanic(t)
		s := shareSplitSeeds[int(sel)%len(shareSplitSeeds)]
		lo, hi := servedRange(s.key)
		v := lo + fuzzVersion(version, hi-lo)
		fix := fuzzFixture(t, reg, metrics)
		for k, b := range splitCoordinators {
			fix.srv.setCoordinator(fix.backend, coordinatorGroup, k, b)
		}
		ex := fix.conn(t).run(fix.srv.handlers[s.key], reqFrame(s.req(), v, 52), func(_ int32, frame []byte) []byte {
			return backendFrame(be32(frame[8:]), raw)
		})
		if ex.err != nil {
			t.Fatalf("%s v%d: handler error: %v", kmsg.NameForKey(s.key), v, ex.err)
		}
		if ex.slots != 1 || !ex.done {
			t.Fatalf("%s v%d: %d slots, finished %v", kmsg.NameForKey(s.key), v, ex.slots, ex.done)
		}
		if ex.outErr != nil {
			if !errors.Is(ex.outErr, ErrMalformed) {
				t.Fatalf("%s v%d: response error is not ErrMalformed: %v", kmsg.NameForKey(s.key), v, ex.outErr)
			}
			return
		}
		if corr, _ := decodeOut(t, ex.out, s.key, v); corr != 52 {
			t.Fatalf("correlation id %d", corr)
		}
	})
}

// FuzzShareSession: see the file comment. Each op is 3 bytes: what to send
// (ShareFetch or ShareAcknowledge, and which epoch), a partition mask
// (orders 0-3, events 0-1: added, or acknowledged, or forgotten) and how
// the brokers answer.
func FuzzShareSession(f *testing.F) {
	f.Add([]byte{0, 0x0f, 0, 1, 0x31, 0, 2, 0x02, 0, 1, 0x01, 2, 1, 0x03, 3, 0, 0x30, 0, 3, 0, 0})
	f.Add([]byte{0, 0x3f, 0, 1, 0x01, 2, 1, 0x01, 0, 5, 0, 0, 3, 0x0f, 0})
	f.Add([]byte{0x20, 0x0f, 8, 0x22, 0x31, 4, 0x20, 0x01, 8, 0x22, 0x03, 4, 0x21, 0x03, 0})
	o, ev := virtualTopicID("orders"), virtualTopicID("events")
	all := []shareTP{{o, 0}, {o, 1}, {o, 2}, {o, 3}, {ev, 0}, {ev, 1}}
	reals := map[[16]byte]bool{fxOrdersID: true, fxEventsID: true}
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, 10)
	f.Fuzz(func(t *testing.T, ops []byte) {
		defer catchPanic(t)
		if len(ops) > 3*64 {
			ops = ops[:3*64]
		}
		fix := fuzzFixture(t, reg, metrics)
		h := fix.conn(t)
		// The model brokers' sessions: broker → the epoch it expects.
		brokers := map[int32]int32{}
		var epoch int32 // the client's
		for len(ops) >= 3 {
			what, mask, mode := ops[0], ops[1], ops[2]
			ops = ops[3:]
			var pick []shareTP
			for i, tp := range all {
				if mask&(1<<i) != 0 {
					pick = append(pick, tp)
				}
			}
			sendEpoch := epoch
			switch what >> 2 & 3 {
			case 1:
				sendEpoch = 0
			case 2:
				sendEpoch = -1
			case 3:
				sendEpoch = epoch + 5
			}
			answer := func(broker int32, frame []byte) []byte {
				hdr, kreq := decodeFrame(t, frame)
				var reqEpoch int32
				var acks bool
				var resp kmsg.Response
				switch req := kreq.(type) {
				case *kmsg.ShareFetchRequest:
					reqEpoch = req.ShareSessionEpoch
					for _, rt := range req.Topics {
						if !reals[rt.TopicID] {
							t.Fatalf("broker %d sent topic id %x, not the cluster's", broker, rt.TopicID)
						}
						for _, p := range rt.Partitions {
							acks = acks || len(p.AcknowledgementBatches) > 0
							if req.IsRenewAck && len(p.AcknowledgementBatches) == 0 {
								t.Fatalf("broker %d: a renewing fetch carries a partition without acknowledgements", broker)
							}
						}
					}
					r := kmsg.NewPtrShareFetchResponse()
					for _, rt := range req.Topics {
						r.Topics = append(r.Topics, kmsg.ShareFetchResponseTopic{TopicID: rt.TopicID, Partitions: []kmsg.ShareFetchResponseTopicPartition{{Partition: rt.Partitions[0].Partition}}})
					}
					resp = r
				case *kmsg.ShareAcknowledgeRequest:
					reqEpoch = req.ShareSessionEpoch
					if reqEpoch == 0 {
						t.Fatalf("broker %d sent ShareAcknowledge at epoch 0", broker)
					}
					resp = kmsg.NewPtrShareAcknowledgeResponse()
				}
				code := int16(0)
				if mode&3 == 2 && broker == 100 {
					delete(brokers, broker) // the broker lost its sessions
				}
				want, open := brokers[broker]
				switch {
				case reqEpoch == 0:
					if acks {
						t.Fatalf("broker %d: acknowledgements on an opening session", broker)
					}
					brokers[broker] = 1
				case !open:
					if mode&3 != 2 || broker != 100 {
						t.Fatalf("broker %d sent epoch %d with no session", broker, reqEpoch)
					}
					code = kerr.ShareSessionNotFound.Code
				case reqEpoch == -1:
					delete(brokers, broker)
				case reqEpoch != want:
					t.Fatalf("broker %d sent epoch %d, its session expects %d", broker, reqEpoch, want)
				default:
					brokers[broker] = nextShareEpoch(want)
				}
				if code == 0 && mode&3 == 3 && broker == 101 && reqEpoch != -1 {
					// Another error: the broker bumps nothing.
					code = kerr.GroupIDNotFound.Code
					if reqEpoch == 0 {
						delete(brokers, broker)
					} else {
						brokers[broker] = want
					}
				}
				switch r := resp.(type) {
				case *kmsg.ShareFetchResponse:
					r.ErrorCode = code
				case *kmsg.ShareAcknowledgeResponse:
					r.ErrorCode = code
				}
				return respFrame(resp, hdr.version, hdr.corr)
			}
			var (
				frame []byte
				key   int16
				hf    handler
			)
			v := int16(what>>4) % 3
			if what&1 == 0 {
				var req *kmsg.ShareFetchRequest
				switch what >> 1 & 1 {
				case 0:
					req = shareFetchReq(sendEpoch, pick, nil, nil)
				default:
					req = shareFetchReq(sendEpoch, nil, pick, all[len(pick)%len(all):][:1])
				}
				if v >= 2 && mode&4 != 0 {
					req.IsRenewAck = true
					req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.MaxRecords = 0, 0, 0, 0
				}
				if v >= 2 && mode&8 != 0 {
					req.ShareAcquireMode = 1
				}
				frame, key, hf = reqFrame(req, v, 11), 78, handleShareFetch
			} else {
				req := kmsg.NewPtrShareAcknowledgeRequest()
				req.GroupID, req.MemberID, req.ShareSessionEpoch = kmsg.StringPtr("g"), kmsg.StringPtr("m"), sendEpoch
				for _, tp := range pick {
					req.Topics = append(req.Topics, kmsg.ShareAcknowledgeRequestTopic{TopicID: tp.vid, Partitions: []kmsg.ShareAcknowledgeRequestTopicPartition{{Partition: tp.part,
						AcknowledgementBatches: []kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch{{FirstOffset: 0, LastOffset: 1, AcknowledgeTypes: []int8{1}}}}}})
				}
				frame, key, hf = reqFrame(req, v, 11), 79, handleShareAcknowledge
			}
			ex := h.run(hf, frame, answer)
			if ex.err != nil || ex.slots != 1 || !ex.done || ex.outErr != nil {
				t.Fatalf("%s: err %v, %d slots, done %v, out err %v", kmsg.NameForKey(key), ex.err, ex.slots, ex.done, ex.outErr)
			}
			_, kr := decodeOut(t, ex.out, key, v)
			var topLevel int16
			switch r := kr.(type) {
			case *kmsg.ShareFetchResponse:
				topLevel = r.ErrorCode
				for _, rt := range r.Topics {
					if reals[rt.TopicID] {
						t.Fatalf("client answer names the cluster's topic id %x", rt.TopicID)
					}
				}
			case *kmsg.ShareAcknowledgeResponse:
				topLevel = r.ErrorCode
				for _, rt := range r.Topics {
					if reals[rt.TopicID] {
						t.Fatalf("client answer names the cluster's topic id %x", rt.TopicID)
					}
				}
			}
			// The client's epoch, as a client keeps it.
			switch {
			case topLevel == kerr.ShareSessionNotFound.Code || topLevel == kerr.InvalidShareSessionEpoch.Code || sendEpoch == -1:
				epoch = 0
			case topLevel != 0:
				if sendEpoch == epoch {
					epoch = nextShareEpoch(epoch)
				}
			case sendEpoch == epoch || sendEpoch == 0:
				epoch = nextShareEpoch(sendEpoch)
			}
		}
	})
}
