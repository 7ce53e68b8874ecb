package kafka

// Characterisation of the group offset keys across two clusters:
// OffsetCommit (8), OffsetFetch (9), OffsetDelete (47), TxnOffsetCommit
// (28). Offsets live with their topics' clusters; the group's home cluster
// gets the commit as sent, the others a simple commit.

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var (
	cxE100 = cxAt{cxEast, 100}
	cxE101 = cxAt{cxEast, 101}
	cxE102 = cxAt{cxEast, 102}
	cxW100 = cxAt{cxWest, 100}
	cxW201 = cxAt{cxWest, 201}
	cxW202 = cxAt{cxWest, 202}
)

// cxTopicParts is "topic" → partitions, in request order.
type cxTopicParts struct {
	topic string
	parts []int32
}

func cxTP2(topic string, parts ...int32) cxTopicParts { return cxTopicParts{topic, parts} }

// cxThrottle is what each broker answers as throttle_time_ms, so the merge
// (the largest) shows which brokers answered.
func cxThrottle(a cxAt) int32 {
	if a.cluster == cxWest {
		return a.broker + 1000
	}
	return a.broker
}

// cxOffset is the offset a broker answers for a partition: who answered
// is visible in the client's answer.
func cxOffset(a cxAt, p int32) int64 {
	c := int64(1)
	if a.cluster == cxWest {
		c = 2
	}
	return c*100000 + int64(a.broker)*100 + int64(p)
}

func cxOffsetCommitReq(group string, ts ...cxTopicParts) *kmsg.OffsetCommitRequest {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation, req.MemberID, req.InstanceID = group, 5, "member-1", kmsg.StringPtr("instance-1")
	for _, t := range ts {
		rt := kmsg.OffsetCommitRequestTopic{Topic: t.topic}
		for _, p := range t.parts {
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset = p, 77
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// cxCommitCodes answers every partition with the code of the broker's
// cluster: 0 on east, REBALANCE_IN_PROGRESS on west.
func cxCommitCodes(a cxAt, kr kmsg.Request) kmsg.Response {
	req := kr.(*kmsg.OffsetCommitRequest)
	resp := kmsg.NewPtrOffsetCommitResponse()
	resp.ThrottleMillis = cxThrottle(a)
	code := int16(0)
	if a.cluster == cxWest {
		code = kerr.RebalanceInProgress.Code
	}
	for _, t := range req.Topics {
		rt := kmsg.OffsetCommitResponseTopic{Topic: t.Topic}
		for _, p := range t.Partitions {
			rt.Partitions = append(rt.Partitions, kmsg.OffsetCommitResponseTopicPartition{Partition: p.Partition, ErrorCode: code})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func cxCommitTopics(req *kmsg.OffsetCommitRequest) []string {
	var out []string
	for _, t := range req.Topics {
		out = append(out, t.Topic)
	}
	return out
}

func TestCharacteriseOffsetCommit(t *testing.T) {
	unknown, rebalance := int64(kerr.UnknownTopicOrPartition.Code), int64(kerr.RebalanceInProgress.Code)
	cases := []struct {
		name   string
		group  string
		topics []cxTopicParts
		asIs   bool              // forwarded to the one target as the client sent it
		home   map[cxAt][]string // topics each target receives as sent (generation kept)
		simple map[cxAt][]string // topics each target receives as a simple commit
		codes  cxCodes
	}{
		{
			name: "home cluster only: as sent to the home coordinator", group: "g1",
			topics: []cxTopicParts{cxTP2("orders", 0, 1)},
			asIs:   true, home: map[cxAt][]string{cxE102: {"orders"}},
			codes: cxCodes{cxTP("orders", 0): 0, cxTP("orders", 1): 0},
		},
		{
			name: "home, other cluster and unrouted", group: "g1",
			topics: []cxTopicParts{cxTP2("w.clicks", 1), cxTP2("orders", 0), cxTP2("x.gone", 0, 3)},
			home:   map[cxAt][]string{cxE102: {"orders"}},
			simple: map[cxAt][]string{cxW201: {"w.clicks"}},
			codes:  cxCodes{cxTP("w.clicks", 1): rebalance, cxTP("orders", 0): 0, cxTP("x.gone", 0): unknown, cxTP("x.gone", 3): unknown},
		},
		{
			name: "other cluster only: a simple commit, never as sent", group: "g1",
			topics: []cxTopicParts{cxTP2("w.clicks", 0, 1)},
			simple: map[cxAt][]string{cxW201: {"w.clicks"}},
			codes:  cxCodes{cxTP("w.clicks", 0): rebalance, cxTP("w.clicks", 1): rebalance},
		},
		{
			name: "group homed on west; payments routes west though east has it too", group: "wg-1",
			topics: []cxTopicParts{cxTP2("orders", 2), cxTP2("payments", 0)},
			home:   map[cxAt][]string{cxW100: {"payments"}},
			simple: map[cxAt][]string{cxE101: {"orders"}},
			codes:  cxCodes{cxTP("orders", 2): 0, cxTP("payments", 0): rebalance},
		},
		{
			name: "unrouted only: answered by the proxy", group: "g1",
			topics: []cxTopicParts{cxTP2("x.gone", 1)},
			codes:  cxCodes{cxTP("x.gone", 1): unknown},
		},
	}
	for _, v := range []int16{3, 8, 9} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("v%d %s", v, tc.name), func(t *testing.T) {
				f := newCx(t, true)
				h := f.conn(t)
				req := cxOffsetCommitReq(tc.group, tc.topics...)
				ex, kr := h.answered(req, v, cxCommitCodes)
				var want []cxAt
				for a := range tc.home {
					want = append(want, a)
				}
				for a := range tc.simple {
					want = append(want, a)
				}
				cxWantTargets(t, ex, want...)
				if tc.asIs {
					cxSentAsIs(t, ex, want[0], cxFrame(cxOffsetCommitReq(tc.group, tc.topics...), v))
				}
				wantThrottle := int32(0)
				for _, a := range want {
					sub := ex.reqs[a][0].(*kmsg.OffsetCommitRequest)
					if sub.Group != tc.group {
						t.Fatalf("%s: group %q", a, sub.Group)
					}
					if ts, ok := tc.home[a]; ok {
						if !slices.Equal(cxCommitTopics(sub), ts) || sub.Generation != 5 || sub.MemberID != "member-1" || (v >= 7 && (sub.InstanceID == nil || *sub.InstanceID != "instance-1")) {
							t.Fatalf("%s: got topics %v generation %d member %q, want %v as sent", a, cxCommitTopics(sub), sub.Generation, sub.MemberID, ts)
						}
					}
					if ts, ok := tc.simple[a]; ok {
						if !slices.Equal(cxCommitTopics(sub), ts) || sub.Generation != -1 || sub.MemberID != "" || sub.InstanceID != nil {
							t.Fatalf("%s: got topics %v generation %d member %q instance %v, want %v as a simple commit", a, cxCommitTopics(sub), sub.Generation, sub.MemberID, sub.InstanceID, ts)
						}
					}
					wantThrottle = max(wantThrottle, cxThrottle(a))
				}
				resp := kr.(*kmsg.OffsetCommitResponse)
				got := cxCodes{}
				for _, rt := range resp.Topics {
					for _, p := range rt.Partitions {
						got[cxTP(rt.Topic, p.Partition)] = int64(p.ErrorCode)
					}
				}
				cxWantCodes(t, "partition error codes", got, tc.codes)
				if resp.ThrottleMillis != wantThrottle {
					t.Fatalf("throttle %d, want %d (the largest)", resp.ThrottleMillis, wantThrottle)
				}
			})
		}
	}
}

// cxOffsetFetchAnswer answers OffsetFetch with cxOffset for every partition
// asked, and for a null topic list the topics in all (per cluster). Groups
// and top-level errors come from groupErr (by target and group).
func cxOffsetFetchAnswer(all map[string][]cxTopicParts, groupErr map[cxAt]int16) cxAnswer {
	return func(a cxAt, kr kmsg.Request) kmsg.Response {
		req := kr.(*kmsg.OffsetFetchRequest)
		resp := kmsg.NewPtrOffsetFetchResponse()
		resp.ThrottleMillis = cxThrottle(a)
		topicsOf := func(asked []cxTopicParts) []kmsg.OffsetFetchResponseGroupTopic {
			var out []kmsg.OffsetFetchResponseGroupTopic
			for _, t := range asked {
				rt := kmsg.OffsetFetchResponseGroupTopic{Topic: t.topic}
				for _, p := range t.parts {
					rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					rp.Partition, rp.Offset = p, cxOffset(a, p)
					rt.Partitions = append(rt.Partitions, rp)
				}
				out = append(out, rt)
			}
			return out
		}
		if req.Version < 8 {
			var asked []cxTopicParts
			if req.Topics == nil {
				asked = all[a.cluster]
			}
			for _, t := range req.Topics {
				asked = append(asked, cxTopicParts{t.Topic, t.Partitions})
			}
			resp.ErrorCode = groupErr[a]
			if resp.ErrorCode != 0 {
				return resp
			}
			for _, gt := range topicsOf(asked) {
				rt := kmsg.OffsetFetchResponseTopic{Topic: gt.Topic}
				for _, p := range gt.Partitions {
					rp := kmsg.NewOffsetFetchResponseTopicPartition()
					rp.Partition, rp.Offset = p.Partition, p.Offset
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			return resp
		}
		for _, g := range req.Groups {
			var asked []cxTopicParts
			if g.Topics == nil {
				asked = all[a.cluster]
			}
			for _, t := range g.Topics {
				asked = append(asked, cxTopicParts{t.Topic, t.Partitions})
			}
			rg := kmsg.OffsetFetchResponseGroup{Group: g.Group, ErrorCode: groupErr[a]}
			if rg.ErrorCode == 0 {
				rg.Topics = topicsOf(asked)
			}
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	}
}

// cxOffsetFetchV7 asks for one group's offsets before v8; nil ts asks all.
func cxOffsetFetchV7(group string, ts []cxTopicParts) *kmsg.OffsetFetchRequest {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	for _, t := range ts {
		req.Topics = append(req.Topics, kmsg.OffsetFetchRequestTopic{Topic: t.topic, Partitions: t.parts})
	}
	return req
}

func cxFetchedTopics(ts []kmsg.OffsetFetchRequestTopic) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Topic)
	}
	return out
}

// cxEveryTopic is what each cluster's coordinator knows of g1 for a null
// topic list: east still has offsets of payments from before it was routed
// west.
var cxEveryTopic = map[string][]cxTopicParts{
	cxEast: {{"orders", []int32{0}}, {"payments", []int32{0}}},
	cxWest: {{"payments", []int32{0}}, {"w.clicks", []int32{1}}},
}

func TestCharacteriseOffsetFetchSingleGroup(t *testing.T) {
	notFound, loading, notCoord := kerr.GroupIDNotFound.Code, kerr.CoordinatorLoadInProgress.Code, kerr.NotCoordinator.Code
	cases := []struct {
		name     string
		topics   []cxTopicParts // nil: every topic
		groupErr map[cxAt]int16
		sent     map[cxAt][]string // topics each coordinator is asked (nil: all)
		offsets  cxCodes
		code     int16
	}{
		{
			name:   "topics on both clusters; an unrouted topic is asked of the home",
			topics: []cxTopicParts{cxTP2("orders", 0, 1), cxTP2("w.clicks", 1), cxTP2("x.gone", 0)},
			sent:   map[cxAt][]string{cxE102: {"orders", "x.gone"}, cxW201: {"w.clicks"}},
			offsets: cxCodes{
				cxTP("orders", 0): cxOffset(cxE102, 0), cxTP("orders", 1): cxOffset(cxE102, 1),
				cxTP("x.gone", 0): cxOffset(cxE102, 0), cxTP("w.clicks", 1): cxOffset(cxW201, 1),
			},
		},
		{
			name:     "a cluster without offsets for the group answers no offset, no error",
			topics:   []cxTopicParts{cxTP2("orders", 0), cxTP2("w.clicks", 0, 1)},
			groupErr: map[cxAt]int16{cxW201: notFound},
			sent:     map[cxAt][]string{cxE102: {"orders"}, cxW201: {"w.clicks"}},
			offsets:  cxCodes{cxTP("orders", 0): cxOffset(cxE102, 0), cxTP("w.clicks", 0): -1, cxTP("w.clicks", 1): -1},
		},
		{
			name:     "even the home cluster's GROUP_ID_NOT_FOUND is no error",
			topics:   []cxTopicParts{cxTP2("orders", 0)},
			groupErr: map[cxAt]int16{cxE102: notFound},
			sent:     map[cxAt][]string{cxE102: {"orders"}},
			offsets:  cxCodes{cxTP("orders", 0): -1},
		},
		{
			name:     "another cluster's group error fills in",
			topics:   []cxTopicParts{cxTP2("orders", 0), cxTP2("w.clicks", 0)},
			groupErr: map[cxAt]int16{cxW201: loading},
			sent:     map[cxAt][]string{cxE102: {"orders"}, cxW201: {"w.clicks"}},
			offsets:  cxCodes{cxTP("orders", 0): cxOffset(cxE102, 0)},
			code:     loading,
		},
		{
			name:     "the home cluster's group error wins",
			topics:   []cxTopicParts{cxTP2("orders", 0), cxTP2("w.clicks", 0)},
			groupErr: map[cxAt]int16{cxE102: notCoord, cxW201: loading},
			sent:     map[cxAt][]string{cxE102: {"orders"}, cxW201: {"w.clicks"}},
			offsets:  cxCodes{},
			code:     notCoord,
		},
		{
			name: "null topic list: every cluster, each keeping the topics routed to it",
			sent: map[cxAt][]string{cxE102: nil, cxW201: nil},
			offsets: cxCodes{
				cxTP("orders", 0): cxOffset(cxE102, 0), cxTP("payments", 0): cxOffset(cxW201, 0), cxTP("w.clicks", 1): cxOffset(cxW201, 1),
			},
		},
	}
	for _, v := range []int16{2, 5, 7} { // v2 brought the group error and null topic lists
		for _, tc := range cases {
			t.Run(fmt.Sprintf("v%d %s", v, tc.name), func(t *testing.T) {
				f := newCx(t, true)
				h := f.conn(t)
				ex, kr := h.answered(cxOffsetFetchV7("g1", tc.topics), v, cxOffsetFetchAnswer(cxEveryTopic, tc.groupErr))
				var want []cxAt
				for a := range tc.sent {
					want = append(want, a)
				}
				cxWantTargets(t, ex, want...)
				wantThrottle := int32(0)
				for a, ts := range tc.sent {
					sub := ex.reqs[a][0].(*kmsg.OffsetFetchRequest)
					if sub.Group != "g1" || !slices.Equal(cxFetchedTopics(sub.Topics), ts) || (ts == nil) != (sub.Topics == nil) {
						t.Fatalf("%s asked group %q topics %v, want %v", a, sub.Group, cxFetchedTopics(sub.Topics), ts)
					}
					wantThrottle = max(wantThrottle, cxThrottle(a))
				}
				resp := kr.(*kmsg.OffsetFetchResponse)
				got := cxCodes{}
				for _, rt := range resp.Topics {
					for _, p := range rt.Partitions {
						if p.ErrorCode != 0 {
							t.Fatalf("%s: partition error %d", cxTP(rt.Topic, p.Partition), p.ErrorCode)
						}
						got[cxTP(rt.Topic, p.Partition)] = p.Offset
					}
				}
				cxWantCodes(t, "offsets", got, tc.offsets)
				if resp.ErrorCode != tc.code {
					t.Fatalf("group error %d, want %d", resp.ErrorCode, tc.code)
				}
				if v >= 3 && resp.ThrottleMillis != wantThrottle {
					t.Fatalf("throttle %d, want %d", resp.ThrottleMillis, wantThrottle)
				}
			})
		}
	}
}

func cxOffsetFetchGroup(group string, ts []cxTopicParts) kmsg.OffsetFetchRequestGroup {
	g := kmsg.OffsetFetchRequestGroup{Group: group}
	for _, t := range ts {
		g.Topics = append(g.Topics, kmsg.OffsetFetchRequestGroupTopic{Topic: t.topic, Partitions: t.parts})
	}
	return g
}

func TestCharacteriseOffsetFetchBatched(t *testing.T) {
	notFound, loading := kerr.GroupIDNotFound.Code, kerr.CoordinatorLoadInProgress.Code
	type group struct {
		name   string
		topics []cxTopicParts
	}
	cases := []struct {
		name     string
		groups   []group
		groupErr map[cxAt]int16
		asIs     bool
		sent     map[cxAt]map[string][]string // group → topics asked, per coordinator
		offsets  cxCodes                      // "group:topic/partition"
		codes    map[string]int16             // group → error
	}{
		{
			name:   "one coordinator: forwarded as sent",
			groups: []group{{"g1", []cxTopicParts{cxTP2("orders", 0)}}},
			asIs:   true,
			sent:   map[cxAt]map[string][]string{cxE102: {"g1": {"orders"}}},
			offsets: cxCodes{
				"g1:" + cxTP("orders", 0): cxOffset(cxE102, 0),
			},
			codes: map[string]int16{"g1": 0},
		},
		{
			name:     "one coordinator without the group: no offset, no error",
			groups:   []group{{"g1", []cxTopicParts{cxTP2("orders", 0)}}},
			groupErr: map[cxAt]int16{cxE102: notFound},
			asIs:     true,
			sent:     map[cxAt]map[string][]string{cxE102: {"g1": {"orders"}}},
			offsets:  cxCodes{"g1:" + cxTP("orders", 0): -1},
			codes:    map[string]int16{"g1": 0},
		},
		{
			name: "two groups over two clusters: four coordinators, merged per group",
			groups: []group{
				{"g1", []cxTopicParts{cxTP2("orders", 0), cxTP2("w.clicks", 1), cxTP2("x.gone", 2)}},
				{"wg-1", []cxTopicParts{cxTP2("payments", 0), cxTP2("orders", 1)}},
			},
			groupErr: map[cxAt]int16{cxW201: notFound},
			sent: map[cxAt]map[string][]string{
				cxE102: {"g1": {"orders", "x.gone"}},
				cxW201: {"g1": {"w.clicks"}},
				cxW100: {"wg-1": {"payments"}},
				cxE101: {"wg-1": {"orders"}},
			},
			offsets: cxCodes{
				"g1:" + cxTP("orders", 0): cxOffset(cxE102, 0), "g1:" + cxTP("x.gone", 2): cxOffset(cxE102, 2),
				"g1:" + cxTP("w.clicks", 1):   -1,
				"wg-1:" + cxTP("payments", 0): cxOffset(cxW100, 0), "wg-1:" + cxTP("orders", 1): cxOffset(cxE101, 1),
			},
			codes: map[string]int16{"g1": 0, "wg-1": 0},
		},
		{
			name: "group errors: another cluster's fills in",
			groups: []group{
				{"g1", []cxTopicParts{cxTP2("orders", 0), cxTP2("w.clicks", 1)}},
			},
			groupErr: map[cxAt]int16{cxW201: loading},
			sent:     map[cxAt]map[string][]string{cxE102: {"g1": {"orders"}}, cxW201: {"g1": {"w.clicks"}}},
			offsets:  cxCodes{"g1:" + cxTP("orders", 0): cxOffset(cxE102, 0)},
			codes:    map[string]int16{"g1": loading},
		},
		{
			name:   "null topic list: every cluster, each keeping the topics routed to it",
			groups: []group{{"g1", nil}},
			sent:   map[cxAt]map[string][]string{cxE102: {"g1": nil}, cxW201: {"g1": nil}},
			offsets: cxCodes{
				"g1:" + cxTP("orders", 0): cxOffset(cxE102, 0), "g1:" + cxTP("payments", 0): cxOffset(cxW201, 0), "g1:" + cxTP("w.clicks", 1): cxOffset(cxW201, 1),
			},
			codes: map[string]int16{"g1": 0},
		},
	}
	for _, v := range []int16{8, 9} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("v%d %s", v, tc.name), func(t *testing.T) {
				f := newCx(t, true)
				h := f.conn(t)
				mk := func() *kmsg.OffsetFetchRequest {
					req := kmsg.NewPtrOffsetFetchRequest()
					for _, g := range tc.groups {
						req.Groups = append(req.Groups, cxOffsetFetchGroup(g.name, g.topics))
					}
					return req
				}
				ex, kr := h.answered(mk(), v, cxOffsetFetchAnswer(cxEveryTopic, tc.groupErr))
				var want []cxAt
				for a := range tc.sent {
					want = append(want, a)
				}
				cxWantTargets(t, ex, want...)
				if tc.asIs {
					cxSentAsIs(t, ex, want[0], cxFrame(mk(), v))
				}
				wantThrottle := int32(0)
				for a, groups := range tc.sent {
					sub := ex.reqs[a][0].(*kmsg.OffsetFetchRequest)
					got := map[string][]string{}
					for _, g := range sub.Groups {
						var ts []string
						for _, t := range g.Topics {
							ts = append(ts, t.Topic)
						}
						got[g.Group] = ts
					}
					if fmt.Sprint(got) != fmt.Sprint(groups) {
						t.Fatalf("%s asked %v, want %v", a, got, groups)
					}
					wantThrottle = max(wantThrottle, cxThrottle(a))
				}
				resp := kr.(*kmsg.OffsetFetchResponse)
				got, gotCodes := cxCodes{}, map[string]int16{}
				for _, g := range resp.Groups {
					if _, dup := gotCodes[g.Group]; dup {
						t.Fatalf("group %s answered twice", g.Group)
					}
					gotCodes[g.Group] = g.ErrorCode
					for _, rt := range g.Topics {
						for _, p := range rt.Partitions {
							got[g.Group+":"+cxTP(rt.Topic, p.Partition)] = p.Offset
						}
					}
				}
				cxWantCodes(t, "offsets", got, tc.offsets)
				if fmt.Sprint(gotCodes) != fmt.Sprint(tc.codes) {
					t.Fatalf("group errors %v, want %v", gotCodes, tc.codes)
				}
				if resp.ThrottleMillis != wantThrottle {
					t.Fatalf("throttle %d, want %d", resp.ThrottleMillis, wantThrottle)
				}
			})
		}
	}
}

func cxOffsetDeleteReq(group string, ts ...cxTopicParts) *kmsg.OffsetDeleteRequest {
	req := kmsg.NewPtrOffsetDeleteRequest()
	req.Group = group
	for _, t := range ts {
		rt := kmsg.OffsetDeleteRequestTopic{Topic: t.topic}
		for _, p := range t.parts {
			rt.Partitions = append(rt.Partitions, kmsg.OffsetDeleteRequestTopicPartition{Partition: p})
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

func TestCharacteriseOffsetDelete(t *testing.T) {
	notFound, unknown := kerr.GroupIDNotFound.Code, int64(kerr.UnknownTopicOrPartition.Code)
	subscribed := int64(kerr.GroupSubscribedToTopic.Code)
	cases := []struct {
		name     string
		group    string
		topics   []cxTopicParts
		groupErr map[cxAt]int16
		sent     map[cxAt][]string
		asIs     bool
		codes    cxCodes
		code     int16
	}{
		{
			name: "topics on both clusters and unrouted", group: "g1",
			topics: []cxTopicParts{cxTP2("orders", 0), cxTP2("w.clicks", 1), cxTP2("x.gone", 0)},
			sent:   map[cxAt][]string{cxE102: {"orders"}, cxW201: {"w.clicks"}},
			codes:  cxCodes{cxTP("orders", 0): 0, cxTP("w.clicks", 1): subscribed, cxTP("x.gone", 0): unknown},
		},
		{
			// The other cluster's topics are then missing from the answer
			// altogether: Kafka answers a group error with no topics.
			name: "another cluster without the group: its GROUP_ID_NOT_FOUND is dropped", group: "g1",
			topics:   []cxTopicParts{cxTP2("orders", 0), cxTP2("w.clicks", 1)},
			groupErr: map[cxAt]int16{cxW201: notFound},
			sent:     map[cxAt][]string{cxE102: {"orders"}, cxW201: {"w.clicks"}},
			codes:    cxCodes{cxTP("orders", 0): 0},
		},
		{
			name: "the home cluster without the group: GROUP_ID_NOT_FOUND", group: "g1",
			topics:   []cxTopicParts{cxTP2("orders", 0)},
			groupErr: map[cxAt]int16{cxE102: notFound},
			sent:     map[cxAt][]string{cxE102: {"orders"}},
			codes:    cxCodes{},
			code:     notFound,
		},
		{
			name: "no topics: as sent to the home coordinator", group: "wg-1",
			sent: map[cxAt][]string{cxW100: nil}, asIs: true,
			codes: cxCodes{},
		},
		{
			name: "unrouted only: answered by the proxy", group: "g1",
			topics: []cxTopicParts{cxTP2("x.gone", 4)},
			codes:  cxCodes{cxTP("x.gone", 4): unknown},
		},
	}
	answer := func(groupErr map[cxAt]int16) cxAnswer {
		return func(a cxAt, kr kmsg.Request) kmsg.Response {
			req := kr.(*kmsg.OffsetDeleteRequest)
			resp := kmsg.NewPtrOffsetDeleteResponse()
			resp.ThrottleMillis = cxThrottle(a)
			if resp.ErrorCode = groupErr[a]; resp.ErrorCode != 0 {
				return resp
			}
			for _, t := range req.Topics {
				rt := kmsg.OffsetDeleteResponseTopic{Topic: t.Topic}
				for _, p := range t.Partitions {
					code := int16(0)
					if a.cluster == cxWest {
						code = kerr.GroupSubscribedToTopic.Code
					}
					rt.Partitions = append(rt.Partitions, kmsg.OffsetDeleteResponseTopicPartition{Partition: p.Partition, ErrorCode: code})
				}
				resp.Topics = append(resp.Topics, rt)
			}
			return resp
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newCx(t, true)
			h := f.conn(t)
			ex, kr := h.answered(cxOffsetDeleteReq(tc.group, tc.topics...), 0, answer(tc.groupErr))
			var want []cxAt
			for a := range tc.sent {
				want = append(want, a)
			}
			cxWantTargets(t, ex, want...)
			if tc.asIs {
				cxSentAsIs(t, ex, want[0], cxFrame(cxOffsetDeleteReq(tc.group, tc.topics...), 0))
			}
			wantThrottle := int32(0)
			for a, ts := range tc.sent {
				sub := ex.reqs[a][0].(*kmsg.OffsetDeleteRequest)
				var got []string
				for _, t := range sub.Topics {
					got = append(got, t.Topic)
				}
				if sub.Group != tc.group || !slices.Equal(got, ts) {
					t.Fatalf("%s asked %q %v, want %v", a, sub.Group, got, ts)
				}
				wantThrottle = max(wantThrottle, cxThrottle(a))
			}
			resp := kr.(*kmsg.OffsetDeleteResponse)
			got := cxCodes{}
			for _, rt := range resp.Topics {
				for _, p := range rt.Partitions {
					got[cxTP(rt.Topic, p.Partition)] = int64(p.ErrorCode)
				}
			}
			cxWantCodes(t, "partition error codes", got, tc.codes)
			if resp.ErrorCode != tc.code || resp.ThrottleMillis != wantThrottle {
				t.Fatalf("group error %d throttle %d, want %d and %d", resp.ErrorCode, resp.ThrottleMillis, tc.code, wantThrottle)
			}
		})
	}
}

func cxTxnOffsetCommitReq(txn, group string, ts ...cxTopicParts) *kmsg.TxnOffsetCommitRequest {
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = txn, group, 9, 1
	req.Generation, req.MemberID = 5, "member-1"
	for _, t := range ts {
		rt := kmsg.TxnOffsetCommitRequestTopic{Topic: t.topic}
		for _, p := range t.parts {
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset = p, 77
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// TestCharacteriseTxnOffsetCommit: the offsets of a transaction are
// committed on the transaction's home cluster, by the group's coordinator
// there; topics routed elsewhere, or nowhere, are INVALID_TXN_STATE.
func TestCharacteriseTxnOffsetCommit(t *testing.T) {
	invalid := int64(kerr.InvalidTxnState.Code)
	cases := []struct {
		name     string
		txn      string
		group    string
		topics   []cxTopicParts
		sent     map[cxAt][]string
		asIs     bool
		codes    cxCodes
		throttle int32
	}{
		{
			name: "home topics only: as sent", txn: "t1", group: "g1",
			topics: []cxTopicParts{cxTP2("orders", 0, 1), cxTP2("events", 0)},
			sent:   map[cxAt][]string{cxE102: {"orders", "events"}}, asIs: true,
			codes:    cxCodes{cxTP("orders", 0): 0, cxTP("orders", 1): 0, cxTP("events", 0): 0},
			throttle: 102,
		},
		{
			name: "other cluster and unrouted topics are refused", txn: "t1", group: "g1",
			topics: []cxTopicParts{cxTP2("w.clicks", 0), cxTP2("orders", 1), cxTP2("x.gone", 0)},
			sent:   map[cxAt][]string{cxE102: {"orders"}},
			codes:  cxCodes{cxTP("w.clicks", 0): invalid, cxTP("orders", 1): 0, cxTP("x.gone", 0): invalid},
			// The proxy's own part answers throttle 0.
			throttle: 102,
		},
		{
			name: "the transaction's home decides, not the group's", txn: "wg-txn", group: "g1",
			topics:   []cxTopicParts{cxTP2("payments", 0), cxTP2("orders", 0)},
			sent:     map[cxAt][]string{cxW201: {"payments"}},
			codes:    cxCodes{cxTP("payments", 0): 0, cxTP("orders", 0): invalid},
			throttle: 1201,
		},
		{
			name: "nothing on the home cluster: answered by the proxy", txn: "wg-txn", group: "g1",
			topics: []cxTopicParts{cxTP2("orders", 0)},
			codes:  cxCodes{cxTP("orders", 0): invalid},
		},
	}
	answer := func(a cxAt, kr kmsg.Request) kmsg.Response {
		req := kr.(*kmsg.TxnOffsetCommitRequest)
		resp := kmsg.NewPtrTxnOffsetCommitResponse()
		resp.ThrottleMillis = cxThrottle(a)
		for _, t := range req.Topics {
			rt := kmsg.TxnOffsetCommitResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.TxnOffsetCommitResponseTopicPartition{Partition: p.Partition})
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	for _, v := range []int16{0, 3, 4} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("v%d %s", v, tc.name), func(t *testing.T) {
				f := newCx(t, true)
				h := f.conn(t)
				ex, kr := h.answered(cxTxnOffsetCommitReq(tc.txn, tc.group, tc.topics...), v, answer)
				var want []cxAt
				for a := range tc.sent {
					want = append(want, a)
				}
				cxWantTargets(t, ex, want...)
				if tc.asIs {
					cxSentAsIs(t, ex, want[0], cxFrame(cxTxnOffsetCommitReq(tc.txn, tc.group, tc.topics...), v))
				}
				for a, ts := range tc.sent {
					sub := ex.reqs[a][0].(*kmsg.TxnOffsetCommitRequest)
					var got []string
					for _, t := range sub.Topics {
						got = append(got, t.Topic)
					}
					if sub.TransactionalID != tc.txn || sub.Group != tc.group || sub.ProducerID != 9 || !slices.Equal(got, ts) {
						t.Fatalf("%s got txn %q group %q producer %d topics %v, want %v", a, sub.TransactionalID, sub.Group, sub.ProducerID, got, ts)
					}
					if v >= 3 && (sub.Generation != 5 || sub.MemberID != "member-1") {
						t.Fatalf("%s: generation %d member %q, want them as sent", a, sub.Generation, sub.MemberID)
					}
				}
				resp := kr.(*kmsg.TxnOffsetCommitResponse)
				got := cxCodes{}
				for _, rt := range resp.Topics {
					for _, p := range rt.Partitions {
						got[cxTP(rt.Topic, p.Partition)] = int64(p.ErrorCode)
					}
				}
				cxWantCodes(t, "partition error codes", got, tc.codes)
				if resp.ThrottleMillis != tc.throttle {
					t.Fatalf("throttle %d, want %d", resp.ThrottleMillis, tc.throttle)
				}
			})
		}
	}
}

// TestRouteChangeBouncesCommitsWhole: after orders is re-pointed from east
// to west, the connection's next commit naming it is answered by the
// proxy, every partition NOT_COORDINATOR (the whole request, so the
// client finds the coordinator and commits again), nothing is sent; the
// commit after that goes to west. The same topic's next ListOffsets on
// the connection gets its own bounce (NOT_LEADER_OR_FOLLOWER): each class
// is bounced once.
func TestRouteChangeBouncesCommitsWhole(t *testing.T) {
	f := newCx(t, true)
	h := f.conn(t)
	commit := cxOffsetCommitReq("g1", cxTP2("orders", 0, 1), cxTP2("events", 0))
	ex, _ := h.answered(commit, 8, cxCommitCodes)
	cxWantTargets(t, ex, cxE102)
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "orders", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Partition: 0, Timestamp: -1}}}}
	h.answered(lo, 4, cxAnswerWith(kmsg.NewPtrListOffsetsResponse()))

	st := *f.view.st
	st.Routes.Topics = append(slices.Clone(st.Routes.Topics), fsm.TopicRoute{Topic: "orders", Cluster: cxWest})
	slices.SortFunc(st.Routes.Topics, func(a, b fsm.TopicRoute) int { return strings.Compare(a.Topic, b.Topic) })
	f.view.st = &st

	ex, kr := h.answered(commit, 8, nil)
	cxWantTargets(t, ex)
	got := cxCodes{}
	for _, rt := range kr.(*kmsg.OffsetCommitResponse).Topics {
		for _, p := range rt.Partitions {
			got[cxTP(rt.Topic, p.Partition)] = int64(p.ErrorCode)
		}
	}
	nc := int64(kerr.NotCoordinator.Code)
	cxWantCodes(t, "bounced commit", got, cxCodes{cxTP("orders", 0): nc, cxTP("orders", 1): nc, cxTP("events", 0): nc})

	ex, _ = h.answered(commit, 8, cxCommitCodes)
	if len(ex.targets()) != 2 {
		t.Fatalf("the commit after the bounce went to %v, want east (events) and west (orders)", ex.targets())
	}
	ex, kr = h.answered(lo, 4, nil)
	cxWantTargets(t, ex)
	if p := kr.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]; p.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("ListOffsets after the move answered %d, want NOT_LEADER_OR_FOLLOWER", p.ErrorCode)
	}
}

// TestRouteChangeBouncesOffsetFetch: after orders is re-pointed, the
// connection's next OffsetFetch naming it is answered by the proxy with
// NOT_COORDINATOR at the request's own version (a batched v8+ answer
// carries it per group), and the next one goes to west. The answer used to
// be encoded at version 0 whatever the request's, which franz-go could not
// decode ("response did not contain enough data"): its group loop failed
// after every failover and failback.
func TestRouteChangeBouncesOffsetFetch(t *testing.T) {
	for _, v := range []int16{5, 7, 8, 9} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newCx(t, true)
			h := f.conn(t)
			req := kmsg.NewPtrOffsetFetchRequest()
			if v < 8 {
				req.Group = "g1"
				req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "orders", Partitions: []int32{0}}}
			} else {
				g := kmsg.NewOffsetFetchRequestGroup()
				g.Group = "g1"
				g.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: "orders", Partitions: []int32{0}}}
				req.Groups = []kmsg.OffsetFetchRequestGroup{g}
			}
			h.answered(req, v, cxOffsetFetchAnswer(cxEveryTopic, nil))

			st := *f.view.st
			st.Routes.Topics = append(slices.Clone(st.Routes.Topics), fsm.TopicRoute{Topic: "orders", Cluster: cxWest})
			slices.SortFunc(st.Routes.Topics, func(a, b fsm.TopicRoute) int { return strings.Compare(a.Topic, b.Topic) })
			f.view.st = &st

			ex, kr := h.answered(req, v, nil)
			cxWantTargets(t, ex)
			resp := kr.(*kmsg.OffsetFetchResponse)
			nc := kerr.NotCoordinator.Code
			if v < 8 && resp.ErrorCode != nc || v >= 8 && (len(resp.Groups) != 1 || resp.Groups[0].ErrorCode != nc) {
				t.Fatalf("bounced OffsetFetch v%d answered %+v, want NOT_COORDINATOR", v, resp)
			}
			ex, _ = h.answered(req, v, cxOffsetFetchAnswer(cxEveryTopic, nil))
			if len(ex.targets()) != 1 {
				t.Fatalf("the OffsetFetch after the bounce went to %v, want west", ex.targets())
			}
		})
	}
}

// TestStaleMemberCommitDeferred: for 30 s after a failover or failback
// moved a group's home, a commit its home refuses as from an unknown member
// or an old generation is answered REBALANCE_IN_PROGRESS (the commit fails
// without a rejoin, and the heartbeat then makes the client drop its
// partitions as lost and read its committed offsets anew); after that, or
// for a group whose rule has no fallback, the home's answer goes as it is.
func TestStaleMemberCommitDeferred(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fallback bool
		since    time.Duration // how long ago east's failover state changed
		want     int16
	}{
		{"just failed back", true, 5 * time.Second, kerr.RebalanceInProgress.Code},
		{"failed back long ago", true, 2 * time.Minute, kerr.IllegalGeneration.Code},
		{"no fallback: nothing moves it", false, 5 * time.Second, kerr.IllegalGeneration.Code},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newCx(t, true)
			st := *f.view.st
			if tc.fallback {
				st.Routes.Default = fsm.RouteTargets{Fallback: []string{cxWest}}
			}
			st.Failover.Clusters = []fsm.ClusterFailover{{Cluster: cxEast, State: fsm.FailoverActive, Since: time.Now().Add(-tc.since).UnixMilli()}}
			f.view.st = &st
			h := f.conn(t)
			refuse := func(_ cxAt, kr kmsg.Request) kmsg.Response {
				resp := kmsg.NewPtrOffsetCommitResponse()
				for _, rt := range kr.(*kmsg.OffsetCommitRequest).Topics {
					t := kmsg.OffsetCommitResponseTopic{Topic: rt.Topic}
					for _, p := range rt.Partitions {
						t.Partitions = append(t.Partitions, kmsg.OffsetCommitResponseTopicPartition{Partition: p.Partition, ErrorCode: kerr.IllegalGeneration.Code})
					}
					resp.Topics = append(resp.Topics, t)
				}
				return resp
			}
			_, kr := h.answered(cxOffsetCommitReq("g1", cxTP2("orders", 0, 1)), 8, refuse)
			for _, rt := range kr.(*kmsg.OffsetCommitResponse).Topics {
				for _, p := range rt.Partitions {
					if p.ErrorCode != tc.want {
						t.Fatalf("%s/%d answered %v, want %v", rt.Topic, p.Partition, kerr.ErrorForCode(p.ErrorCode), kerr.ErrorForCode(tc.want))
					}
				}
			}
		})
	}
}
