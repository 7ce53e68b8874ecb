package kafka

// Characterisation of the admin keys across two clusters: topic
// administration at the controller of each topic's cluster (19, 20, 37,
// 43, 45, 46, 57), security and quota writes on every cluster (30, 31, 49,
// 51), telemetry and ListConfigResources on the default cluster (71, 72,
// 74), and DescribeCluster (60). The merged security and quota reads (29,
// 48, 50) are in characterise_merged_reads_test.go.

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// cxRealID is the topic id a cluster answers for a topic; clients must see
// the virtual one.
func cxRealID(a cxAt, topic string) [16]byte {
	return [16]byte{0xee, byte(a.broker), byte(len(topic)), topic[0]}
}

func TestCharacteriseCreateTopics(t *testing.T) {
	mk := func() *kmsg.CreateTopicsRequest {
		r := kmsg.NewPtrCreateTopicsRequest()
		r.TimeoutMillis, r.ValidateOnly = 5000, true
		for _, n := range []string{"w.new", "neworder", "x.new", "payments"} {
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = n, 3, 1
			r.Topics = append(r.Topics, rt)
		}
		return r
	}
	answer := func(a cxAt, kr kmsg.Request) kmsg.Response {
		resp := kmsg.NewPtrCreateTopicsResponse()
		resp.ThrottleMillis = cxThrottle(a)
		for _, t := range kr.(*kmsg.CreateTopicsRequest).Topics {
			rt := kmsg.NewCreateTopicsResponseTopic()
			rt.Topic, rt.TopicID, rt.NumPartitions = t.Topic, cxRealID(a, t.Topic), 3
			if t.Topic == "payments" {
				rt.ErrorCode = kerr.TopicAlreadyExists.Code
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	for _, v := range []int16{0, 2, 5, 7} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newCx(t, true)
			h := f.conn(t)
			ex, kr := h.answered(mk(), v, answer)
			cxWantTargets(t, ex, cxE101, cxW202) // the controllers
			for a, want := range map[cxAt][]string{cxE101: {"neworder"}, cxW202: {"w.new", "payments"}} {
				sub := ex.reqs[a][0].(*kmsg.CreateTopicsRequest)
				var got []string
				for _, t := range sub.Topics {
					got = append(got, t.Topic)
				}
				if !slices.Equal(got, want) || sub.TimeoutMillis != 5000 || (v >= 1 && !sub.ValidateOnly) {
					t.Fatalf("%s asked %v timeout %d validate %v, want %v", a, got, sub.TimeoutMillis, sub.ValidateOnly, want)
				}
			}
			resp := kr.(*kmsg.CreateTopicsResponse)
			got := cxCodes{}
			for _, rt := range resp.Topics {
				got[rt.Topic] = int64(rt.ErrorCode)
				switch {
				case rt.Topic == "x.new":
					if v >= 1 && (rt.ErrorMessage == nil || !strings.Contains(*rt.ErrorMessage, "no route")) {
						t.Fatalf("x.new: message %v, want one naming the missing route", rt.ErrorMessage)
					}
					if rt.TopicID != ([16]byte{}) {
						t.Fatalf("x.new: topic id %x", rt.TopicID)
					}
				case v >= 7 && rt.TopicID != virtualTopicID(rt.Topic):
					t.Fatalf("%s: topic id %x, want the virtual %x", rt.Topic, rt.TopicID, virtualTopicID(rt.Topic))
				}
			}
			cxWantCodes(t, "topic error codes", got, cxCodes{"w.new": 0, "neworder": 0, "payments": int64(kerr.TopicAlreadyExists.Code), "x.new": int64(kerr.PolicyViolation.Code)})
			if v >= 2 && resp.ThrottleMillis != 1202 {
				t.Fatalf("throttle %d, want 1202", resp.ThrottleMillis)
			}
		})
	}
}

func TestCharacteriseDeleteTopics(t *testing.T) {
	unknownID := virtualTopicID("never-existed")
	answer := func(a cxAt, kr kmsg.Request) kmsg.Response {
		req := kr.(*kmsg.DeleteTopicsRequest)
		resp := kmsg.NewPtrDeleteTopicsResponse()
		resp.ThrottleMillis = cxThrottle(a)
		names := req.TopicNames
		for _, t := range req.Topics {
			if t.Topic == nil || t.TopicID != ([16]byte{}) {
				panic("a backend was asked to delete by id")
			}
			names = append(names, *t.Topic)
		}
		for _, n := range names {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic, rt.TopicID = kmsg.StringPtr(n), cxRealID(a, n)
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	for _, v := range []int16{0, 1, 5, 6} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newCx(t, true)
			h := f.conn(t)
			req := kmsg.NewPtrDeleteTopicsRequest()
			req.TimeoutMillis = 5000
			names := []string{"orders", "w.clicks", "x.gone"}
			if v < 6 {
				req.TopicNames = names
			} else {
				for _, n := range names {
					req.Topics = append(req.Topics, kmsg.DeleteTopicsRequestTopic{Topic: kmsg.StringPtr(n)})
				}
				// By virtual id: resolved to the name, deleted on the
				// topic's cluster by name.
				req.Topics = append(req.Topics, kmsg.DeleteTopicsRequestTopic{TopicID: virtualTopicID("payments")}, kmsg.DeleteTopicsRequestTopic{TopicID: unknownID})
			}
			ex, kr := h.answered(req, v, answer)
			cxWantTargets(t, ex, cxE101, cxW202)
			want := map[cxAt][]string{cxE101: {"orders"}, cxW202: {"w.clicks"}}
			if v >= 6 {
				want[cxW202] = append(want[cxW202], "payments")
			}
			for a, ws := range want {
				sub := ex.reqs[a][0].(*kmsg.DeleteTopicsRequest)
				got := slices.Clone(sub.TopicNames)
				for _, t := range sub.Topics {
					got = append(got, *t.Topic)
				}
				if !slices.Equal(got, ws) || sub.TimeoutMillis != 5000 {
					t.Fatalf("%s asked %v timeout %d, want %v", a, got, sub.TimeoutMillis, ws)
				}
			}
			resp := kr.(*kmsg.DeleteTopicsResponse)
			got := cxCodes{}
			for _, rt := range resp.Topics {
				key := fmt.Sprintf("id %x", rt.TopicID)
				if rt.Topic != nil {
					key = *rt.Topic
					if v >= 6 && rt.ErrorCode == 0 && rt.TopicID != virtualTopicID(key) {
						t.Fatalf("%s: topic id %x, want the virtual one", key, rt.TopicID)
					}
				}
				got[key] = int64(rt.ErrorCode)
			}
			wantCodes := cxCodes{"orders": 0, "w.clicks": 0, "x.gone": int64(kerr.UnknownTopicOrPartition.Code)}
			if v >= 6 {
				wantCodes["payments"] = 0
				wantCodes[fmt.Sprintf("id %x", unknownID)] = int64(kerr.UnknownTopicID.Code)
			}
			cxWantCodes(t, "topic error codes", got, wantCodes)
			if v >= 1 && resp.ThrottleMillis != 1202 {
				t.Fatalf("throttle %d, want 1202", resp.ThrottleMillis)
			}
		})
	}
}

// TestCharacteriseCreatePartitions: by topic cluster to its controller.
// Manual assignments name broker ids and are passed on unmapped: the
// client's ids (peer ids) reach the backend as broker ids.
func TestCharacteriseCreatePartitions(t *testing.T) {
	answer := func(a cxAt, kr kmsg.Request) kmsg.Response {
		resp := kmsg.NewPtrCreatePartitionsResponse()
		resp.ThrottleMillis = cxThrottle(a)
		for _, t := range kr.(*kmsg.CreatePartitionsRequest).Topics {
			rt := kmsg.NewCreatePartitionsResponseTopic()
			rt.Topic = t.Topic
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	for _, v := range []int16{0, 2, 3} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newCx(t, true)
			h := f.conn(t)
			req := kmsg.NewPtrCreatePartitionsRequest()
			req.TimeoutMillis, req.ValidateOnly = 5000, true
			for _, n := range []string{"x.gone", "orders", "w.clicks"} {
				req.Topics = append(req.Topics, kmsg.CreatePartitionsRequestTopic{Topic: n, Count: 4, Assignment: []kmsg.CreatePartitionsRequestTopicAssignment{{Replicas: []int32{1, 3}}}})
			}
			ex, kr := h.answered(req, v, answer)
			cxWantTargets(t, ex, cxE101, cxW202)
			for a, want := range map[cxAt]string{cxE101: "orders", cxW202: "w.clicks"} {
				sub := ex.reqs[a][0].(*kmsg.CreatePartitionsRequest)
				if len(sub.Topics) != 1 || sub.Topics[0].Topic != want || !sub.ValidateOnly || !slices.Equal(sub.Topics[0].Assignment[0].Replicas, []int32{1, 3}) {
					t.Fatalf("%s asked %+v, want %s with replicas [1 3] as sent", a, sub.Topics, want)
				}
			}
			resp := kr.(*kmsg.CreatePartitionsResponse)
			got := cxCodes{}
			for _, rt := range resp.Topics {
				got[rt.Topic] = int64(rt.ErrorCode)
				if rt.Topic == "x.gone" && (rt.ErrorMessage == nil || !strings.Contains(*rt.ErrorMessage, "no route")) {
					t.Fatalf("x.gone: message %v", rt.ErrorMessage)
				}
			}
			cxWantCodes(t, "topic error codes", got, cxCodes{"orders": 0, "w.clicks": 0, "x.gone": int64(kerr.UnknownTopicOrPartition.Code)})
			if resp.ThrottleMillis != 1202 {
				t.Fatalf("throttle %d, want 1202", resp.ThrottleMillis)
			}
		})
	}
}

// TestCharacteriseElectLeaders: named topics by cluster to its controller,
// unrouted ones UNKNOWN_TOPIC_OR_PARTITION; a null topic list asks every
// controller and keeps from each only the topics routed to its cluster.
func TestCharacteriseElectLeaders(t *testing.T) {
	every := map[cxAt][]string{cxE101: {"orders", "payments"}, cxW202: {"payments", "w.clicks"}}
	answer := func(a cxAt, kr kmsg.Request) kmsg.Response {
		req := kr.(*kmsg.ElectLeadersRequest)
		resp := kmsg.NewPtrElectLeadersResponse()
		resp.ThrottleMillis = cxThrottle(a)
		if a == cxW202 {
			resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		}
		topics := req.Topics
		if topics == nil {
			for _, n := range every[a] {
				topics = append(topics, kmsg.ElectLeadersRequestTopic{Topic: n, Partitions: []int32{0}})
			}
		}
		for _, t := range topics {
			rt := kmsg.ElectLeadersResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.ElectLeadersResponseTopicPartition{Partition: p, ErrorCode: int16(a.broker)})
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	cases := []struct {
		name   string
		topics []cxTopicParts
		sent   map[cxAt][]string
		codes  cxCodes
	}{
		{"named topics", []cxTopicParts{cxTP2("w.clicks", 1), cxTP2("orders", 0, 2), cxTP2("x.gone", 0)},
			map[cxAt][]string{cxE101: {"orders"}, cxW202: {"w.clicks"}},
			cxCodes{cxTP("w.clicks", 1): 202, cxTP("orders", 0): 101, cxTP("orders", 2): 101, cxTP("x.gone", 0): int64(kerr.UnknownTopicOrPartition.Code)}},
		{"every topic", nil,
			map[cxAt][]string{cxE101: nil, cxW202: nil},
			cxCodes{cxTP("orders", 0): 101, cxTP("payments", 0): 202, cxTP("w.clicks", 0): 202}},
	}
	for _, v := range []int16{0, 1, 2} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("v%d %s", v, tc.name), func(t *testing.T) {
				f := newCx(t, true)
				h := f.conn(t)
				req := kmsg.NewPtrElectLeadersRequest()
				req.ElectionType, req.TimeoutMillis = 1, 5000
				for _, tp := range tc.topics {
					req.Topics = append(req.Topics, kmsg.ElectLeadersRequestTopic{Topic: tp.topic, Partitions: tp.parts})
				}
				ex, kr := h.answered(req, v, answer)
				cxWantTargets(t, ex, cxE101, cxW202)
				for a, want := range tc.sent {
					sub := ex.reqs[a][0].(*kmsg.ElectLeadersRequest)
					var got []string
					for _, t := range sub.Topics {
						got = append(got, t.Topic)
					}
					if !slices.Equal(got, want) || (want == nil) != (sub.Topics == nil) || (v >= 1 && sub.ElectionType != 1) {
						t.Fatalf("%s asked %v type %d, want %v", a, got, sub.ElectionType, want)
					}
				}
				resp := kr.(*kmsg.ElectLeadersResponse)
				got := cxCodes{}
				for _, rt := range resp.Topics {
					for _, p := range rt.Partitions {
						if _, dup := got[cxTP(rt.Topic, p.Partition)]; dup {
							t.Fatalf("%s answered twice", cxTP(rt.Topic, p.Partition))
						}
						got[cxTP(rt.Topic, p.Partition)] = int64(p.ErrorCode)
					}
				}
				cxWantCodes(t, "partition codes", got, tc.codes)
				if v >= 1 && resp.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
					t.Fatalf("error %d, want the first any controller gave", resp.ErrorCode)
				}
				if resp.ThrottleMillis != 1202 {
					t.Fatalf("throttle %d, want 1202", resp.ThrottleMillis)
				}
			})
		}
	}
}

// TestCharacteriseAlterPartitionAssignments: by topic cluster to its
// controller, unrouted topics UNKNOWN_TOPIC_OR_PARTITION. The replica ids
// are passed on unmapped (the client's peer ids reach the backend as
// broker ids). The first top-level error, with its message, is the
// answer's.
func TestCharacteriseAlterPartitionAssignments(t *testing.T) {
	answer := func(a cxAt, kr kmsg.Request) kmsg.Response {
		resp := kmsg.NewPtrAlterPartitionAssignmentsResponse()
		resp.ThrottleMillis = cxThrottle(a)
		if a == cxW202 {
			resp.ErrorCode, resp.ErrorMessage = kerr.NotController.Code, kmsg.StringPtr("west says no")
		}
		for _, t := range kr.(*kmsg.AlterPartitionAssignmentsRequest).Topics {
			rt := kmsg.AlterPartitionAssignmentsResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.AlterPartitionAssignmentsResponseTopicPartition{Partition: p.Partition})
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	for _, v := range []int16{0, 1} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newCx(t, true)
			h := f.conn(t)
			req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
			for _, n := range []string{"orders", "x.gone", "w.clicks"} {
				req.Topics = append(req.Topics, kmsg.AlterPartitionAssignmentsRequestTopic{Topic: n, Partitions: []kmsg.AlterPartitionAssignmentsRequestTopicPartition{{Partition: 0, Replicas: []int32{1, 0}}}})
			}
			ex, kr := h.answered(req, v, answer)
			cxWantTargets(t, ex, cxE101, cxW202)
			for a, want := range map[cxAt]string{cxE101: "orders", cxW202: "w.clicks"} {
				sub := ex.reqs[a][0].(*kmsg.AlterPartitionAssignmentsRequest)
				if len(sub.Topics) != 1 || sub.Topics[0].Topic != want || !slices.Equal(sub.Topics[0].Partitions[0].Replicas, []int32{1, 0}) {
					t.Fatalf("%s asked %+v, want %s with replicas [1 0] as sent", a, sub.Topics, want)
				}
			}
			resp := kr.(*kmsg.AlterPartitionAssignmentsResponse)
			got := cxCodes{}
			for _, rt := range resp.Topics {
				for _, p := range rt.Partitions {
					got[cxTP(rt.Topic, p.Partition)] = int64(p.ErrorCode)
				}
			}
			cxWantCodes(t, "partition codes", got, cxCodes{cxTP("orders", 0): 0, cxTP("w.clicks", 0): 0, cxTP("x.gone", 0): int64(kerr.UnknownTopicOrPartition.Code)})
			if resp.ErrorCode != kerr.NotController.Code || resp.ErrorMessage == nil || *resp.ErrorMessage != "west says no" || resp.ThrottleMillis != 1202 {
				t.Fatalf("error %d %v throttle %d", resp.ErrorCode, resp.ErrorMessage, resp.ThrottleMillis)
			}
		})
	}
}

// TestCharacteriseListPartitionReassignments: named topics by cluster to
// its controller (unrouted topics have nothing to list); a null topic list
// asks every controller and concatenates their lists as they are: unlike
// ElectLeaders, a topic a cluster lists is kept even when it routes
// elsewhere, and replica ids are the backend's broker ids, unmapped.
func TestCharacteriseListPartitionReassignments(t *testing.T) {
	lists := map[cxAt][]string{cxE101: {"orders", "payments"}, cxW202: {"payments"}}
	answer := func(a cxAt, kr kmsg.Request) kmsg.Response {
		req := kr.(*kmsg.ListPartitionReassignmentsRequest)
		resp := kmsg.NewPtrListPartitionReassignmentsResponse()
		resp.ThrottleMillis = cxThrottle(a)
		names := lists[a]
		if req.Topics != nil {
			names = nil
			for _, t := range req.Topics {
				names = append(names, t.Topic)
			}
		}
		for _, n := range names {
			resp.Topics = append(resp.Topics, kmsg.ListPartitionReassignmentsResponseTopic{Topic: n, Partitions: []kmsg.ListPartitionReassignmentsResponseTopicPartition{{Partition: 0, Replicas: []int32{a.broker}, AddingReplicas: []int32{a.broker}}}})
		}
		return resp
	}
	read := func(kr kmsg.Response) []string {
		var out []string
		for _, t := range kr.(*kmsg.ListPartitionReassignmentsResponse).Topics {
			for _, p := range t.Partitions {
				out = append(out, fmt.Sprintf("%s/%d@%v", t.Topic, p.Partition, p.Replicas))
			}
		}
		sort.Strings(out)
		return out
	}
	t.Run("every topic", func(t *testing.T) {
		f := newCx(t, true)
		h := f.conn(t)
		ex, kr := h.answered(kmsg.NewPtrListPartitionReassignmentsRequest(), 0, answer)
		cxWantTargets(t, ex, cxE101, cxW202)
		// Each cluster's answer keeps the topics routed to it, as for
		// ElectLeaders and Metadata: east's copy of payments (routed
		// west) is not listed. Before the request pipeline it was.
		if got, want := read(kr), []string{"orders/0@[101]", "payments/0@[202]"}; !slices.Equal(got, want) {
			t.Fatalf("reassignments %v, want %v", got, want)
		}
		if kr.(*kmsg.ListPartitionReassignmentsResponse).ThrottleMillis != 1202 {
			t.Fatal("throttle is not the largest")
		}
	})
	t.Run("named topics", func(t *testing.T) {
		f := newCx(t, true)
		h := f.conn(t)
		req := kmsg.NewPtrListPartitionReassignmentsRequest()
		for _, n := range []string{"payments", "x.gone", "orders"} {
			req.Topics = append(req.Topics, kmsg.ListPartitionReassignmentsRequestTopic{Topic: n, Partitions: []int32{0}})
		}
		ex, kr := h.answered(req, 0, answer)
		cxWantTargets(t, ex, cxE101, cxW202)
		if got, want := read(kr), []string{"orders/0@[101]", "payments/0@[202]"}; !slices.Equal(got, want) {
			t.Fatalf("reassignments %v, want %v", got, want)
		}
	})
	t.Run("unrouted only: an empty list from the proxy", func(t *testing.T) {
		f := newCx(t, true)
		h := f.conn(t)
		req := kmsg.NewPtrListPartitionReassignmentsRequest()
		req.Topics = []kmsg.ListPartitionReassignmentsRequestTopic{{Topic: "x.gone", Partitions: []int32{0}}}
		_, kr := h.answered(req, 0, nil)
		if resp := kr.(*kmsg.ListPartitionReassignmentsResponse); len(resp.Topics) != 0 || resp.ErrorCode != 0 {
			t.Fatalf("answer %+v", resp)
		}
	})
}

// TestCharacteriseUpdateFeatures: refused with INVALID_REQUEST when more
// than one cluster is served; with one, as sent to its controller.
func TestCharacteriseUpdateFeatures(t *testing.T) {
	mk := func() *kmsg.UpdateFeaturesRequest {
		r := kmsg.NewPtrUpdateFeaturesRequest()
		r.TimeoutMillis = 5000
		r.FeatureUpdates = []kmsg.UpdateFeaturesRequestFeatureUpdate{{Feature: "metadata.version", MaxVersionLevel: 21}}
		return r
	}
	for _, v := range []int16{0, 1, 2} {
		t.Run(fmt.Sprintf("v%d two clusters", v), func(t *testing.T) {
			f := newCx(t, true)
			h := f.conn(t)
			_, kr := h.answered(mk(), v, nil)
			resp := kr.(*kmsg.UpdateFeaturesResponse)
			if resp.ErrorCode != kerr.InvalidRequest.Code || resp.ErrorMessage == nil || !strings.Contains(*resp.ErrorMessage, "each cluster") {
				t.Fatalf("answer %d %v, want INVALID_REQUEST saying why", resp.ErrorCode, resp.ErrorMessage)
			}
		})
		t.Run(fmt.Sprintf("v%d one cluster", v), func(t *testing.T) {
			f := newCx(t, false)
			h := f.conn(t)
			resp := &kmsg.UpdateFeaturesResponse{ThrottleMillis: 3}
			ex, _ := h.answered(mk(), v, cxAnswerWith(resp))
			cxWantTargets(t, ex, cxE101)
			cxSentAsIs(t, ex, cxE101, cxFrame(mk(), v))
			cxPassedThrough(t, ex, resp, v)
		})
	}
}

// TestCharacteriseWrittenToEveryCluster: CreateACLs, DeleteACLs,
// AlterClientQuotas and AlterUserSCRAMCredentials go to a broker of every
// cluster (this host's), each entry answered with the first error any
// cluster gave, else success; DeleteACLs lists only the first cluster's
// (by name) matching ACLs. With one cluster, as sent.
func TestCharacteriseWrittenToEveryCluster(t *testing.T) {
	denied, invalid := kerr.ClusterAuthorizationFailed.Code, kerr.InvalidRequest.Code
	// Per cluster, the code of each of three entries.
	entryCodes := map[string][]int16{cxEast: {0, denied, 0}, cxWest: {invalid, invalid, 0}}
	want := []int16{invalid, denied, 0}
	msg := func(a cxAt) *string { return kmsg.StringPtr("from " + a.cluster) }
	keys := []struct {
		name string
		v    int16
		req  func() kmsg.Request
		ans  func(a cxAt) kmsg.Response
		read func(kmsg.Response) ([]int16, int32)
	}{
		{"CreateACLs", 3, func() kmsg.Request {
			r := kmsg.NewPtrCreateACLsRequest()
			for i := range 3 {
				c := kmsg.NewCreateACLsRequestCreation()
				c.ResourceType, c.ResourceName, c.Principal, c.Host = kmsg.ACLResourceTypeTopic, fmt.Sprintf("t%d", i), "User:a", "*"
				c.Operation, c.PermissionType, c.ResourcePatternType = kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow, kmsg.ACLResourcePatternTypeLiteral
				r.Creations = append(r.Creations, c)
			}
			return r
		}, func(a cxAt) kmsg.Response {
			resp := kmsg.NewPtrCreateACLsResponse()
			resp.ThrottleMillis = cxThrottle(a)
			for _, c := range entryCodes[a.cluster] {
				resp.Results = append(resp.Results, kmsg.CreateACLsResponseResult{ErrorCode: c, ErrorMessage: msg(a)})
			}
			return resp
		}, func(kr kmsg.Response) (out []int16, th int32) {
			resp := kr.(*kmsg.CreateACLsResponse)
			for _, r := range resp.Results {
				out = append(out, r.ErrorCode)
			}
			return out, resp.ThrottleMillis
		}},
		{"DeleteACLs", 3, func() kmsg.Request {
			r := kmsg.NewPtrDeleteACLsRequest()
			for i := range 3 {
				fl := kmsg.NewDeleteACLsRequestFilter()
				fl.ResourceType, fl.ResourceName = kmsg.ACLResourceTypeTopic, kmsg.StringPtr(fmt.Sprintf("t%d", i))
				fl.Operation, fl.PermissionType, fl.ResourcePatternType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny, kmsg.ACLResourcePatternTypeMatch
				r.Filters = append(r.Filters, fl)
			}
			return r
		}, func(a cxAt) kmsg.Response {
			resp := kmsg.NewPtrDeleteACLsResponse()
			resp.ThrottleMillis = cxThrottle(a)
			for _, c := range entryCodes[a.cluster] {
				m := kmsg.NewDeleteACLsResponseResultMatchingACL()
				m.ResourceType, m.ResourceName, m.Principal = kmsg.ACLResourceTypeTopic, "acl-of-"+a.cluster, "User:a"
				resp.Results = append(resp.Results, kmsg.DeleteACLsResponseResult{ErrorCode: c, ErrorMessage: msg(a), MatchingACLs: []kmsg.DeleteACLsResponseResultMatchingACL{m}})
			}
			return resp
		}, func(kr kmsg.Response) (out []int16, th int32) {
			resp := kr.(*kmsg.DeleteACLsResponse)
			for _, r := range resp.Results {
				out = append(out, r.ErrorCode)
				if len(r.MatchingACLs) != 1 || r.MatchingACLs[0].ResourceName != "acl-of-east" {
					return nil, -1 // only the first cluster's matches are listed
				}
			}
			return out, resp.ThrottleMillis
		}},
		{"AlterClientQuotas", 1, func() kmsg.Request {
			r := kmsg.NewPtrAlterClientQuotasRequest()
			for i := range 3 {
				r.Entries = append(r.Entries, kmsg.AlterClientQuotasRequestEntry{
					Entity: []kmsg.AlterClientQuotasRequestEntryEntity{{Type: "user", Name: kmsg.StringPtr(fmt.Sprintf("u%d", i))}},
					Ops:    []kmsg.AlterClientQuotasRequestEntryOp{{Key: "producer_byte_rate", Value: 1024}},
				})
			}
			return r
		}, func(a cxAt) kmsg.Response {
			resp := kmsg.NewPtrAlterClientQuotasResponse()
			resp.ThrottleMillis = cxThrottle(a)
			for i, c := range entryCodes[a.cluster] {
				resp.Entries = append(resp.Entries, kmsg.AlterClientQuotasResponseEntry{ErrorCode: c, ErrorMessage: msg(a), Entity: []kmsg.AlterClientQuotasResponseEntryEntity{{Type: "user", Name: kmsg.StringPtr(fmt.Sprintf("u%d", i))}}})
			}
			return resp
		}, func(kr kmsg.Response) (out []int16, th int32) {
			resp := kr.(*kmsg.AlterClientQuotasResponse)
			for _, r := range resp.Entries {
				out = append(out, r.ErrorCode)
			}
			return out, resp.ThrottleMillis
		}},
		{"AlterUserSCRAMCredentials", 0, func() kmsg.Request {
			r := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
			for i := range 3 {
				r.Deletions = append(r.Deletions, kmsg.AlterUserSCRAMCredentialsRequestDeletion{Name: fmt.Sprintf("u%d", i), Mechanism: 1})
			}
			return r
		}, func(a cxAt) kmsg.Response {
			resp := kmsg.NewPtrAlterUserSCRAMCredentialsResponse()
			resp.ThrottleMillis = cxThrottle(a)
			for i, c := range entryCodes[a.cluster] {
				resp.Results = append(resp.Results, kmsg.AlterUserSCRAMCredentialsResponseResult{User: fmt.Sprintf("u%d", i), ErrorCode: c, ErrorMessage: msg(a)})
			}
			return resp
		}, func(kr kmsg.Response) (out []int16, th int32) {
			resp := kr.(*kmsg.AlterUserSCRAMCredentialsResponse)
			for _, r := range resp.Results {
				out = append(out, r.ErrorCode)
			}
			return out, resp.ThrottleMillis
		}},
	}
	for _, k := range keys {
		t.Run(k.name+" two clusters", func(t *testing.T) {
			f := newCx(t, true)
			h := f.conn(t)
			ex, kr := h.answered(k.req(), k.v, func(a cxAt, _ kmsg.Request) kmsg.Response { return k.ans(a) })
			cxWantTargets(t, ex, cxE100, cxW201)
			for _, a := range []cxAt{cxE100, cxW201} {
				cxSentAsIs(t, ex, a, cxFrame(k.req(), k.v)) // the same request to each
			}
			got, th := k.read(kr)
			if !slices.Equal(got, want) || th != 1201 {
				t.Fatalf("entry codes %v throttle %d, want %v and 1201", got, th, want)
			}
		})
		t.Run(k.name+" one cluster", func(t *testing.T) {
			f := newCx(t, false)
			h := f.conn(t)
			resp := k.ans(cxE100)
			ex, _ := h.answered(k.req(), k.v, cxAnswerWith(resp))
			cxWantTargets(t, ex, cxE100)
			cxSentAsIs(t, ex, cxE100, cxFrame(k.req(), k.v))
			cxPassedThrough(t, ex, resp, k.v)
		})
	}
}

// TestCharacteriseDefaultClusterKeys: GetTelemetrySubscriptions,
// PushTelemetry and ListConfigResources v0 go as sent to a broker of the
// default cluster (this host's), and the answer comes back as is: the
// other clusters are not consulted.
func TestCharacteriseDefaultClusterKeys(t *testing.T) {
	keys := []struct {
		name string
		v    int16
		req  kmsg.Request
		resp kmsg.Response
	}{
		{"GetTelemetrySubscriptions", 0, &kmsg.GetTelemetrySubscriptionsRequest{ClientInstanceID: [16]byte{7}},
			&kmsg.GetTelemetrySubscriptionsResponse{ThrottleMillis: 9, ClientInstanceID: [16]byte{7}, SubscriptionID: 5, PushIntervalMillis: 1000}},
		{"PushTelemetry", 0, &kmsg.PushTelemetryRequest{ClientInstanceID: [16]byte{7}, SubscriptionID: 5, Metrics: []byte("m")},
			&kmsg.PushTelemetryResponse{ThrottleMillis: 9}},
		{"ListConfigResources", 0, &kmsg.ListConfigResourcesRequest{},
			&kmsg.ListConfigResourcesResponse{ThrottleMillis: 9, ConfigResources: []kmsg.ListConfigResourcesResponseConfigResource{{Name: "all-clients", Type: 16}}}},
	}
	for _, k := range keys {
		t.Run(k.name, func(t *testing.T) {
			f := newCx(t, true)
			h := f.conn(t)
			ex, _ := h.answered(k.req, k.v, cxAnswerWith(k.resp))
			cxWantTargets(t, ex, cxE100)
			cxSentAsIs(t, ex, cxE100, cxFrame(k.req, k.v))
			cxPassedThrough(t, ex, k.resp, k.v)
		})
	}
}

// TestCharacteriseDescribeClusterTwoClusters: answered from the default
// cluster: every live peer is a broker (whatever cluster its co-located
// brokers belong to), the controller is the peer presenting the default
// cluster's controller, and the cluster id is the virtual one.
func TestCharacteriseDescribeClusterTwoClusters(t *testing.T) {
	for _, v := range []int16{0, 1, 2} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newCx(t, true)
			st := *f.view.st
			st.ClusterID = "virtual-cluster"
			f.view.st = &st
			h := f.conn(t)
			answer := func(a cxAt, _ kmsg.Request) kmsg.Response {
				resp := kmsg.NewPtrDescribeClusterResponse()
				resp.ClusterID, resp.ControllerID, resp.ThrottleMillis = "east-backend-id", 101, 9
				for _, b := range []int32{100, 101, 102} {
					resp.Brokers = append(resp.Brokers, kmsg.DescribeClusterResponseBroker{NodeID: b, Host: fmt.Sprintf("e%d.kafka.internal", b), Port: 9000 + b})
				}
				return resp
			}
			ex, kr := h.answered(kmsg.NewPtrDescribeClusterRequest(), v, answer)
			cxWantTargets(t, ex, cxE100)
			resp := kr.(*kmsg.DescribeClusterResponse)
			var got []string
			for _, b := range resp.Brokers {
				rack := "-"
				if b.Rack != nil {
					rack = *b.Rack
				}
				got = append(got, fmt.Sprintf("%d=%s:%d/%s", b.NodeID, b.Host, b.Port, rack))
			}
			want := []string{"0=p0.proxy.test:9092/r0", "1=p1.proxy.test:9093/-", "2=p2.proxy.test:9094/r2", "3=p3.proxy.test:9095/-"}
			if !slices.Equal(got, want) {
				t.Fatalf("brokers %v, want %v", got, want)
			}
			if resp.ControllerID != 1 || resp.ClusterID != "virtual-cluster" || resp.ThrottleMillis != 9 {
				t.Fatalf("controller %d cluster %q throttle %d, want 1, virtual-cluster, 9", resp.ControllerID, resp.ClusterID, resp.ThrottleMillis)
			}
		})
	}
}
