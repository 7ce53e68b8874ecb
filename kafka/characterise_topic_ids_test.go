package kafka

// Characterisation of the group offset keys at the versions that name
// topics by id: OffsetCommit v10, OffsetFetch v10 and TxnOffsetCommit v6.
// Clients know virtual ids (topicids.go); each broker must receive its own
// cluster's ids, and the client must get the virtual ones back.

import (
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// cxID is the id cluster gives topic in cxMetadata.
func cxID(cluster, topic string) [16]byte {
	return [16]byte{cluster[0], byte(len(topic)), topic[0]}
}

// cxUnknownVID is a virtual id of a topic no cluster has.
var cxUnknownVID = virtualTopicID("never-existed")

// cxWantRealIDs fails unless every topic id sent to a is a's cluster's id
// for one of names, and the topics carry no names.
func cxWantRealIDs(t testing.TB, a cxAt, got [][16]byte, names ...string) {
	t.Helper()
	if len(got) != len(names) {
		t.Fatalf("%s received %d topics, want %d (%v)", a, len(got), len(names), names)
	}
	for i, id := range got {
		if want := cxID(a.cluster, names[i]); id != want {
			t.Fatalf("%s topic %d: id %x, want %s's own %x", a, i, id, names[i], want)
		}
	}
}

// cxVIDName names a virtual id the answers may carry.
func cxVIDName(id [16]byte) string {
	for _, n := range []string{"orders", "events", "payments", "w.clicks"} {
		if virtualTopicID(n) == id {
			return n
		}
	}
	if id == cxUnknownVID {
		return "unknown"
	}
	return fmt.Sprintf("id %x", id)
}

// TestOffsetCommitByTopicID: an OffsetCommit v10 naming orders (east),
// w.clicks (west) and an unknown id is split: each group coordinator gets
// its cluster's own ids (never a virtual one, never a name), the unknown id
// is answered UNKNOWN_TOPIC_ID by the proxy, and the client's answer
// carries the virtual ids it sent.
func TestOffsetCommitByTopicID(t *testing.T) {
	f := newCx(t, true)
	h := f.conn(t)
	req := cxOffsetCommitReq("g1", cxTP2("orders", 0, 1), cxTP2("w.clicks", 1), cxTP2("unknown", 0))
	for i := range req.Topics {
		req.Topics[i].TopicID = virtualTopicID(req.Topics[i].Topic)
		req.Topics[i].Topic = ""
	}
	req.Topics[2].TopicID = cxUnknownVID
	ex, kr := h.answered(req, 10, func(a cxAt, kr kmsg.Request) kmsg.Response {
		sub := kr.(*kmsg.OffsetCommitRequest)
		resp := kmsg.NewPtrOffsetCommitResponse()
		for _, st := range sub.Topics {
			rt := kmsg.OffsetCommitResponseTopic{TopicID: st.TopicID}
			for _, p := range st.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.OffsetCommitResponseTopicPartition{Partition: p.Partition})
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	})
	cxWantTargets(t, ex, cxE102, cxW201)
	for a, reqs := range ex.reqs {
		sub := reqs[0].(*kmsg.OffsetCommitRequest)
		var ids [][16]byte
		for _, st := range sub.Topics {
			ids = append(ids, st.TopicID)
		}
		switch a {
		case cxE102:
			cxWantRealIDs(t, a, ids, "orders")
		case cxW201:
			cxWantRealIDs(t, a, ids, "w.clicks")
			if sub.Generation != -1 || sub.MemberID != "" {
				t.Fatalf("west (not the group's home) got generation %d member %q, want a simple commit", sub.Generation, sub.MemberID)
			}
		}
	}
	got := cxCodes{}
	for _, rt := range kr.(*kmsg.OffsetCommitResponse).Topics {
		for _, p := range rt.Partitions {
			got[cxTP(cxVIDName(rt.TopicID), p.Partition)] = int64(p.ErrorCode)
		}
	}
	cxWantCodes(t, "commit by id", got, cxCodes{
		cxTP("orders", 0): 0, cxTP("orders", 1): 0, cxTP("w.clicks", 1): 0,
		cxTP("unknown", 0): int64(kerr.UnknownTopicID.Code),
	})
}

// TestOffsetFetchByTopicID: an OffsetFetch v10 asking group g1 for orders
// (east), w.clicks (west) and an unknown id, and group wg-1 for every
// topic: each coordinator gets its cluster's ids, every id in the answer
// is virtual, a null list keeps only the topics routed to each cluster
// (payments lives on both and routes west), and the unknown id is
// UNKNOWN_TOPIC_ID.
func TestOffsetFetchByTopicID(t *testing.T) {
	f := newCx(t, true)
	h := f.conn(t)
	req := kmsg.NewPtrOffsetFetchRequest()
	g := kmsg.OffsetFetchRequestGroup{Group: "g1"}
	for _, tp := range []cxTopicParts{cxTP2("orders", 0, 2), cxTP2("w.clicks", 1)} {
		g.Topics = append(g.Topics, kmsg.OffsetFetchRequestGroupTopic{TopicID: virtualTopicID(tp.topic), Partitions: tp.parts})
	}
	g.Topics = append(g.Topics, kmsg.OffsetFetchRequestGroupTopic{TopicID: cxUnknownVID, Partitions: []int32{3}})
	req.Groups = []kmsg.OffsetFetchRequestGroup{g, {Group: "wg-1"}}
	// Every cluster's topics with their partitions, for a null list.
	every := map[string][]cxTopicParts{
		cxEast: {cxTP2("orders", 0, 1, 2), cxTP2("payments", 0)},
		cxWest: {cxTP2("w.clicks", 0, 1), cxTP2("payments", 0, 1)},
	}
	ex, kr := h.answered(req, 10, func(a cxAt, kr kmsg.Request) kmsg.Response {
		sub := kr.(*kmsg.OffsetFetchRequest)
		resp := kmsg.NewPtrOffsetFetchResponse()
		for _, sg := range sub.Groups {
			rg := kmsg.OffsetFetchResponseGroup{Group: sg.Group}
			add := func(id [16]byte, parts []int32) {
				rt := kmsg.OffsetFetchResponseGroupTopic{TopicID: id}
				for _, p := range parts {
					rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					rp.Partition, rp.Offset = p, cxOffset(a, p)
					rt.Partitions = append(rt.Partitions, rp)
				}
				rg.Topics = append(rg.Topics, rt)
			}
			if sg.Topics == nil {
				for _, tp := range every[a.cluster] {
					add(cxID(a.cluster, tp.topic), tp.parts)
				}
			}
			for _, st := range sg.Topics {
				if st.Topic != "" {
					t.Fatalf("%s: a v10 topic carries the name %q", a, st.Topic)
				}
				add(st.TopicID, st.Partitions)
			}
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	})
	// g1's coordinators: east 102, west 201; wg-1's: east 101, west 100.
	cxWantTargets(t, ex, cxE101, cxE102, cxW100, cxW201)
	for a, reqs := range ex.reqs {
		for _, sg := range reqs[0].(*kmsg.OffsetFetchRequest).Groups {
			var ids [][16]byte
			for _, st := range sg.Topics {
				ids = append(ids, st.TopicID)
			}
			switch {
			case sg.Group == "wg-1":
				if sg.Topics != nil {
					t.Fatalf("%s: wg-1 asked for %v, want every topic", a, ids)
				}
			case a == cxE102:
				cxWantRealIDs(t, a, ids, "orders")
			case a == cxW201:
				cxWantRealIDs(t, a, ids, "w.clicks")
			default:
				t.Fatalf("%s was asked for group %s", a, sg.Group)
			}
		}
	}
	got := cxCodes{}
	for _, rg := range kr.(*kmsg.OffsetFetchResponse).Groups {
		if rg.ErrorCode != 0 {
			t.Fatalf("group %s: error %d", rg.Group, rg.ErrorCode)
		}
		for _, rt := range rg.Topics {
			for _, p := range rt.Partitions {
				v := p.Offset
				if p.ErrorCode != 0 {
					v = int64(p.ErrorCode)
				}
				got[rg.Group+":"+cxTP(cxVIDName(rt.TopicID), p.Partition)] = v
			}
		}
	}
	cxWantCodes(t, "offsets by id", got, cxCodes{
		"g1:" + cxTP("orders", 0): cxOffset(cxE102, 0), "g1:" + cxTP("orders", 2): cxOffset(cxE102, 2),
		"g1:" + cxTP("w.clicks", 1): cxOffset(cxW201, 1),
		"g1:" + cxTP("unknown", 3):  int64(kerr.UnknownTopicID.Code),
		"wg-1:" + cxTP("orders", 0): cxOffset(cxE101, 0), "wg-1:" + cxTP("orders", 1): cxOffset(cxE101, 1),
		"wg-1:" + cxTP("orders", 2):   cxOffset(cxE101, 2),
		"wg-1:" + cxTP("w.clicks", 0): cxOffset(cxW100, 0), "wg-1:" + cxTP("w.clicks", 1): cxOffset(cxW100, 1),
		"wg-1:" + cxTP("payments", 0): cxOffset(cxW100, 0), "wg-1:" + cxTP("payments", 1): cxOffset(cxW100, 1),
	})
}

// TestTxnOffsetCommitByTopicID: TxnOffsetCommit v6 (KIP-1319) names topics
// by id. A transaction homed on east commits orders by its virtual id: the
// group's coordinator on east gets east's id for it and the client the
// virtual id back; w.clicks (west) is INVALID_TXN_STATE as by name, and an
// id no cluster has is UNKNOWN_TOPIC_ID.
func TestTxnOffsetCommitByTopicID(t *testing.T) {
	f := newCx(t, true)
	h := f.conn(t)
	req := cxTxnOffsetCommitReq("t1", "g1", cxTP2("orders", 0, 1), cxTP2("w.clicks", 0), cxTP2("unknown", 2))
	for i := range req.Topics {
		req.Topics[i].TopicID = virtualTopicID(req.Topics[i].Topic)
		req.Topics[i].Topic = ""
	}
	req.Topics[2].TopicID = cxUnknownVID
	ex, kr := h.answered(req, 6, func(a cxAt, kr kmsg.Request) kmsg.Response {
		sub := kr.(*kmsg.TxnOffsetCommitRequest)
		resp := kmsg.NewPtrTxnOffsetCommitResponse()
		for _, st := range sub.Topics {
			rt := kmsg.TxnOffsetCommitResponseTopic{TopicID: st.TopicID}
			for _, p := range st.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.TxnOffsetCommitResponseTopicPartition{Partition: p.Partition})
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	})
	cxWantTargets(t, ex, cxE102)
	var ids [][16]byte
	for _, st := range ex.reqs[cxE102][0].(*kmsg.TxnOffsetCommitRequest).Topics {
		ids = append(ids, st.TopicID)
	}
	cxWantRealIDs(t, cxE102, ids, "orders")
	got := cxCodes{}
	for _, rt := range kr.(*kmsg.TxnOffsetCommitResponse).Topics {
		for _, p := range rt.Partitions {
			got[cxTP(cxVIDName(rt.TopicID), p.Partition)] = int64(p.ErrorCode)
		}
	}
	cxWantCodes(t, "transactional commit by id", got, cxCodes{
		cxTP("orders", 0): 0, cxTP("orders", 1): 0,
		cxTP("w.clicks", 0): int64(kerr.InvalidTxnState.Code),
		cxTP("unknown", 2):  int64(kerr.UnknownTopicID.Code),
	})
}

// cxDescribeTopicPartitions answers a DescribeTopicPartitions as a broker
// of a's cluster does (kfake and Kafka alike): the listed topics (none:
// all of the cluster's), sorted by name, from the cursor on, at most the
// limit's partitions, and the cursor where it stopped.
func cxDescribeTopicPartitions(a cxAt, kr kmsg.Request) kmsg.Response {
	req := kr.(*kmsg.DescribeTopicPartitionsRequest)
	byName := map[string]kmsg.MetadataResponseTopic{}
	for _, t := range cxMetadata(a.cluster).Topics {
		byName[*t.Topic] = t
	}
	var from dtpPos
	if req.Cursor != nil {
		from = dtpPos{req.Cursor.Topic, req.Cursor.Partition}
	}
	var names []string
	if len(req.Topics) == 0 {
		for n := range byName {
			names = append(names, n)
		}
	}
	for _, t := range req.Topics {
		names = append(names, t.Topic)
	}
	slices.Sort(names)
	resp := kmsg.NewPtrDescribeTopicPartitionsResponse()
	emitted := int32(0)
	for _, n := range names {
		if n < from.topic {
			continue
		}
		if emitted >= req.ResponsePartitionLimit {
			resp.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: n}
			break
		}
		mt, ok := byName[n]
		if !ok {
			resp.Topics = append(resp.Topics, dtpTopicError(n, kerr.UnknownTopicOrPartition.Code))
			continue
		}
		st := kmsg.NewDescribeTopicPartitionsResponseTopic()
		st.Topic, st.TopicID = kmsg.StringPtr(n), mt.TopicID
		for _, p := range mt.Partitions {
			if n == from.topic && p.Partition < from.partition {
				continue
			}
			if emitted >= req.ResponsePartitionLimit {
				resp.NextCursor = &kmsg.DescribeTopicPartitionsResponseNextCursor{Topic: n, Partition: p.Partition}
				break
			}
			sp := kmsg.NewDescribeTopicPartitionsResponseTopicPartition()
			sp.Partition, sp.LeaderID, sp.LeaderEpoch = p.Partition, p.Leader, p.LeaderEpoch
			sp.Replicas, sp.ISR, sp.EligibleLeaderReplicas = p.Replicas, p.ISR, p.Replicas
			st.Partitions = append(st.Partitions, sp)
			emitted++
		}
		resp.Topics = append(resp.Topics, st)
		if resp.NextCursor != nil {
			break
		}
	}
	return resp
}

// cxDescribeAll pages through a DescribeTopicPartitions over conns in turn
// (the cursor carries all the state, so any peer continues it) and returns
// every described partition as "topic/partition" → presented leader, and
// every error as "topic" → code, failing on anything seen twice.
func cxDescribeAll(t *testing.T, conns []*cxConn, topics []string, limit int32) (cxCodes, int) {
	t.Helper()
	got := cxCodes{}
	req := kmsg.NewPtrDescribeTopicPartitionsRequest()
	req.ResponsePartitionLimit = limit
	for _, n := range topics {
		req.Topics = append(req.Topics, kmsg.DescribeTopicPartitionsRequestTopic{Topic: n})
	}
	pages := 0
	for ; pages < 50; pages++ {
		_, kr := conns[pages%len(conns)].answered(req, 0, cxDescribeTopicPartitions)
		resp := kr.(*kmsg.DescribeTopicPartitionsResponse)
		n := 0
		for _, rt := range resp.Topics {
			name := *rt.Topic
			if rt.ErrorCode != 0 {
				if _, dup := got[name]; dup {
					t.Fatalf("page %d: %s answered again", pages, name)
				}
				got[name] = int64(rt.ErrorCode)
				continue
			}
			if rt.TopicID != virtualTopicID(name) {
				t.Fatalf("page %d: %s has id %x, want the virtual one", pages, name, rt.TopicID)
			}
			for _, p := range rt.Partitions {
				k := cxTP(name, p.Partition)
				if _, dup := got[k]; dup {
					t.Fatalf("page %d: %s described again", pages, k)
				}
				if len(p.Replicas) == 0 || p.Replicas[0] != p.LeaderID || !slices.Equal(p.ISR, p.Replicas) || !slices.Equal(p.EligibleLeaderReplicas, p.Replicas) {
					t.Fatalf("page %d: %s leader %d replicas %v isr %v elr %v, want the peers presenting them", pages, k, p.LeaderID, p.Replicas, p.ISR, p.EligibleLeaderReplicas)
				}
				got[k] = int64(p.LeaderID)
				n++
			}
		}
		if int32(n) > limit {
			t.Fatalf("page %d: %d partitions, limit %d", pages, n, limit)
		}
		if resp.NextCursor == nil {
			return got, pages + 1
		}
		req.Cursor = &kmsg.DescribeTopicPartitionsRequestCursor{Topic: resp.NextCursor.Topic, Partition: resp.NextCursor.Partition}
	}
	t.Fatalf("no last page after %d pages", pages)
	return nil, 0
}

// TestCharacteriseDescribeTopicPartitions: DescribeTopicPartitions pages
// over both clusters' topics by name, every partition exactly once, with
// virtual topic ids and peers for leaders and replicas (east/100 → peer 0,
// east/101 → 1, west/201 → 0, west/100 → 2; east/102's peer is dead and
// west/202 has none, so a rendezvous choice), whichever peer serves each
// page. With no topics listed, each cluster's topics are kept only where
// they route (payments exists on both and routes west).
func TestCharacteriseDescribeTopicPartitions(t *testing.T) {
	f0, f1 := newCx(t, true), newCxAt(t, true, 1)
	conns := []*cxConn{f0.conn(t), f1.conn(t)}
	pr := func(cluster string, broker int32) int64 {
		be := f0.east
		if cluster == cxWest {
			be = f0.west
		}
		return int64(f0.srv.testPresenter(be).peerFor(broker))
	}
	every := cxCodes{
		cxTP("events", 0): 0, cxTP("events", 1): 0,
		cxTP("orders", 0): 0, cxTP("orders", 1): 1, cxTP("orders", 2): pr(cxEast, 102),
		cxTP("payments", 0): 2, cxTP("payments", 1): 0,
		cxTP("w.clicks", 0): 0, cxTP("w.clicks", 1): pr(cxWest, 202),
	}
	for _, limit := range []int32{1, 2, 3, 100} {
		t.Run(fmt.Sprintf("all, limit %d", limit), func(t *testing.T) {
			got, pages := cxDescribeAll(t, conns, nil, limit)
			cxWantCodes(t, "described", got, every)
			if limit == 100 && pages != 1 {
				t.Fatalf("%d pages, want 1", pages)
			}
		})
	}
	t.Run("listed, limit 1", func(t *testing.T) {
		got, _ := cxDescribeAll(t, conns, []string{"w.clicks", "orders", "x.gone", "nope", "orders"}, 1)
		cxWantCodes(t, "described", got, cxCodes{
			cxTP("orders", 0): 0, cxTP("orders", 1): 1, cxTP("orders", 2): pr(cxEast, 102),
			cxTP("w.clicks", 0): 0, cxTP("w.clicks", 1): pr(cxWest, 202),
			"x.gone": int64(kerr.UnknownTopicOrPartition.Code), "nope": int64(kerr.UnknownTopicOrPartition.Code),
		})
	})
	t.Run("cursor outside the list", func(t *testing.T) {
		req := kmsg.NewPtrDescribeTopicPartitionsRequest()
		req.Topics = []kmsg.DescribeTopicPartitionsRequestTopic{{Topic: "orders"}}
		req.Cursor = &kmsg.DescribeTopicPartitionsRequestCursor{Topic: "events"}
		ex, kr := conns[0].answered(req, 0, nil)
		cxWantTargets(t, ex)
		resp := kr.(*kmsg.DescribeTopicPartitionsResponse)
		if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.InvalidRequest.Code || resp.NextCursor != nil {
			t.Fatalf("answer %+v, want orders INVALID_REQUEST", resp.Topics)
		}
	})
}

// TestCommitByTopicIDInPlace: a v10 OffsetCommit (and a v6
// TxnOffsetCommit) whose topics all live on the group's (transaction's)
// home cluster goes to its coordinator as the client's bytes with only the
// ids swapped for the cluster's, and the answer comes back with the
// virtual ids.
func TestCommitByTopicIDInPlace(t *testing.T) {
	f := newCx(t, true)
	h := f.conn(t)
	for _, tc := range []struct {
		name string
		req  func(real bool) kmsg.Request
		v    int16
	}{
		{"OffsetCommit", func(real bool) kmsg.Request {
			req := cxOffsetCommitReq("g1", cxTP2("orders", 0, 1), cxTP2("events", 1))
			for i := range req.Topics {
				req.Topics[i].TopicID = virtualTopicID(req.Topics[i].Topic)
				if real {
					req.Topics[i].TopicID = cxID(cxEast, req.Topics[i].Topic)
				}
				req.Topics[i].Topic = ""
			}
			return req
		}, 10},
		{"TxnOffsetCommit", func(real bool) kmsg.Request {
			req := cxTxnOffsetCommitReq("t1", "g1", cxTP2("orders", 0, 1), cxTP2("events", 1))
			for i := range req.Topics {
				req.Topics[i].TopicID = virtualTopicID(req.Topics[i].Topic)
				if real {
					req.Topics[i].TopicID = cxID(cxEast, req.Topics[i].Topic)
				}
				req.Topics[i].Topic = ""
			}
			return req
		}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex, kr := h.answered(tc.req(false), tc.v, func(a cxAt, kr kmsg.Request) kmsg.Response {
				switch req := kr.(type) {
				case *kmsg.OffsetCommitRequest:
					resp := kmsg.NewPtrOffsetCommitResponse()
					for _, st := range req.Topics {
						resp.Topics = append(resp.Topics, kmsg.OffsetCommitResponseTopic{TopicID: st.TopicID, Partitions: []kmsg.OffsetCommitResponseTopicPartition{{Partition: st.Partitions[0].Partition}}})
					}
					return resp
				case *kmsg.TxnOffsetCommitRequest:
					resp := kmsg.NewPtrTxnOffsetCommitResponse()
					for _, st := range req.Topics {
						resp.Topics = append(resp.Topics, kmsg.TxnOffsetCommitResponseTopic{TopicID: st.TopicID, Partitions: []kmsg.TxnOffsetCommitResponseTopicPartition{{Partition: st.Partitions[0].Partition}}})
					}
					return resp
				}
				t.Fatalf("%s: unexpected %T", a, kr)
				return nil
			})
			cxWantTargets(t, ex, cxE102)
			cxSentAsIs(t, ex, cxE102, cxFrame(tc.req(true), tc.v))
			var got []string
			switch resp := kr.(type) {
			case *kmsg.OffsetCommitResponse:
				for _, rt := range resp.Topics {
					got = append(got, cxVIDName(rt.TopicID))
				}
			case *kmsg.TxnOffsetCommitResponse:
				for _, rt := range resp.Topics {
					got = append(got, cxVIDName(rt.TopicID))
				}
			}
			if !slices.Equal(got, []string{"orders", "events"}) {
				t.Fatalf("answer's topics %v, want orders and events by their virtual ids", got)
			}
		})
	}
}
