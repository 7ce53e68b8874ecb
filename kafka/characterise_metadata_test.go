package kafka

// Characterisation of Metadata (3) and FindCoordinator (10) across two
// clusters: one virtual cluster of peers, each topic shown as its route
// says, coordinators on the key's home cluster presented as peers, and the
// caches those answers fill steering the requests that follow.

import (
	"fmt"
	"slices"
	"testing"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// cxExpectPeer is the reference presentation of a backend broker under the
// fixture's state and liveness: its co-located live peer (lowest id), else
// the live peer with the highest rendezvous score.
func cxExpectPeer(f *cx, cluster string, broker int32) int32 {
	best := int32(-1)
	for _, p := range f.view.st.Peers {
		if !f.view.live[p.ID] {
			continue
		}
		for _, lb := range p.LocalBrokers {
			if lb.Cluster == cluster && lb.BrokerID == broker && (best < 0 || p.ID < best) {
				best = p.ID
			}
		}
	}
	if best >= 0 {
		return best
	}
	var score uint64
	for _, p := range f.view.st.Peers {
		if f.view.live[p.ID] {
			if s := rendezvous(cluster, broker, p.ID); best < 0 || s > score {
				best, score = p.ID, s
			}
		}
	}
	return best
}

// cxMetadataAnswer answers as each cluster's cxMetadata: every topic for a
// null list, else the topics asked (UNKNOWN_TOPIC_OR_PARTITION for those
// the cluster does not have).
func cxMetadataAnswer(a cxAt, kr kmsg.Request) kmsg.Response {
	req := kr.(*kmsg.MetadataRequest)
	m := cxMetadata(a.cluster)
	m.ThrottleMillis = cxThrottle(a)
	if req.Topics == nil {
		return m
	}
	var ts []kmsg.MetadataResponseTopic
	for _, rt := range req.Topics {
		i := slices.IndexFunc(m.Topics, func(t kmsg.MetadataResponseTopic) bool { return *t.Topic == *rt.Topic })
		if i < 0 {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic, mt.ErrorCode = rt.Topic, kerr.UnknownTopicOrPartition.Code
			ts = append(ts, mt)
			continue
		}
		ts = append(ts, m.Topics[i])
	}
	m.Topics = ts
	return m
}

func TestCharacteriseMetadataTwoClusters(t *testing.T) {
	cases := []struct {
		name   string
		topics []string // nil: all
		sent   map[cxAt][]string
		want   []string // topic: error or partition=leader/replicas
	}{
		{
			name: "every topic: each cluster, topics as routed",
			sent: map[cxAt][]string{cxE100: nil, cxW201: nil},
			want: []string{"events/0", "orders/0", "payments/0", "w.clicks/0"},
		},
		{
			name:   "named topics: by cluster, unrouted answered by the proxy",
			topics: []string{"w.clicks", "orders", "x.gone", "payments", "w.missing"},
			sent:   map[cxAt][]string{cxE100: {"orders"}, cxW201: {"w.clicks", "payments", "w.missing"}},
			want:   []string{"orders/0", "payments/0", "w.clicks/0", "w.missing/3", "x.gone/3"},
		},
	}
	for _, v := range []int16{1, 4, 9, 12} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("v%d %s", v, tc.name), func(t *testing.T) {
				f := newCx(t, true)
				st := *f.view.st
				st.ClusterID = "virtual-cluster"
				f.view.st = &st
				h := f.conn(t)
				req := kmsg.NewPtrMetadataRequest()
				if tc.topics != nil {
					req.Topics = []kmsg.MetadataRequestTopic{}
					for _, n := range tc.topics {
						req.Topics = append(req.Topics, kmsg.MetadataRequestTopic{Topic: kmsg.StringPtr(n)})
					}
				}
				ex, kr := h.answered(req, v, cxMetadataAnswer)
				var want []cxAt
				for a := range tc.sent {
					want = append(want, a)
				}
				cxWantTargets(t, ex, want...)
				for a, ts := range tc.sent {
					sub := ex.reqs[a][0].(*kmsg.MetadataRequest)
					var got []string
					for _, t := range sub.Topics {
						got = append(got, *t.Topic)
					}
					if !slices.Equal(got, ts) || (ts == nil) != (sub.Topics == nil) {
						t.Fatalf("%s asked %v, want %v", a, got, ts)
					}
				}
				m := kr.(*kmsg.MetadataResponse)
				var brokers []int32
				for _, b := range m.Brokers {
					brokers = append(brokers, b.NodeID)
				}
				if !slices.Equal(brokers, []int32{0, 1, 2, 3}) {
					t.Fatalf("brokers %v, want the live peers", brokers)
				}
				if m.ControllerID != cxExpectPeer(f, cxEast, 101) {
					t.Fatalf("controller %d, want the peer presenting east's controller", m.ControllerID)
				}
				if v >= 2 && (m.ClusterID == nil || *m.ClusterID != "virtual-cluster") {
					t.Fatalf("cluster id %v", m.ClusterID)
				}
				if m.ThrottleMillis != 1201 && v >= 3 {
					t.Fatalf("throttle %d, want 1201", m.ThrottleMillis)
				}
				var got []string
				for _, mt := range m.Topics {
					if mt.ErrorCode != 0 {
						got = append(got, fmt.Sprintf("%s/%d", *mt.Topic, mt.ErrorCode))
						continue
					}
					got = append(got, *mt.Topic+"/0")
					cluster := cxEast
					if r, _ := f.view.st.RouteFor(*mt.Topic); r == cxWest {
						cluster = cxWest
					}
					src := cxMetadata(cluster)
					i := slices.IndexFunc(src.Topics, func(t kmsg.MetadataResponseTopic) bool { return *t.Topic == *mt.Topic })
					if len(mt.Partitions) != len(src.Topics[i].Partitions) {
						t.Fatalf("%s: %d partitions, want %s's %d", *mt.Topic, len(mt.Partitions), cluster, len(src.Topics[i].Partitions))
					}
					for j, p := range mt.Partitions {
						leader := cxExpectPeer(f, cluster, src.Topics[i].Partitions[j].Leader)
						if p.Leader != leader || !slices.Equal(p.Replicas, []int32{leader}) {
							t.Fatalf("%s/%d: leader %d replicas %v, want %s's leader as peer %d", *mt.Topic, p.Partition, p.Leader, p.Replicas, cluster, leader)
						}
					}
					if v >= 10 && mt.TopicID != virtualTopicID(*mt.Topic) {
						t.Fatalf("%s: topic id %x, want the virtual one", *mt.Topic, mt.TopicID)
					}
				}
				slices.Sort(got)
				if !slices.Equal(got, tc.want) {
					t.Fatalf("topics %v, want %v", got, tc.want)
				}
			})
		}
	}
}

// TestCharacteriseMetadataFillsLeaderCache: a client's Metadata answer
// updates the proxy's leaders for the topics it lists, so the next
// partition request follows the new leader.
func TestCharacteriseMetadataFillsLeaderCache(t *testing.T) {
	f := newCx(t, true)
	h := f.conn(t)
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("orders")}}
	moved := func(a cxAt, kr kmsg.Request) kmsg.Response {
		m := cxMetadataAnswer(a, kr).(*kmsg.MetadataResponse)
		m.Topics[0].Partitions[0].Leader = 102 // orders/0 moved from 100
		return m
	}
	h.answered(req, 12, moved)
	lo := cxLeaderKeys()[0]
	ex, _ := h.answered(lo.req([]cxTopicParts{cxTP2("orders", 0)}), 7, lo.answer)
	cxWantTargets(t, ex, cxE102)
}

// cxFindCoordinatorAnswer answers each key with the coordinator in nodes
// (by cluster and key), or NOT_COORDINATOR when absent.
func cxFindCoordinatorAnswer(nodes map[string]map[string]int32) cxAnswer {
	return func(a cxAt, kr kmsg.Request) kmsg.Response {
		req := kr.(*kmsg.FindCoordinatorRequest)
		resp := kmsg.NewPtrFindCoordinatorResponse()
		resp.ThrottleMillis = cxThrottle(a)
		one := func(key string) (int32, string, int32, int16) {
			n, ok := nodes[a.cluster][key]
			if !ok {
				return -1, "", -1, kerr.NotCoordinator.Code
			}
			return n, fmt.Sprintf("%s%d.kafka.internal", a.cluster[:1], n), 9000 + n, 0
		}
		if req.Version < 4 {
			resp.NodeID, resp.Host, resp.Port, resp.ErrorCode = one(req.CoordinatorKey)
			return resp
		}
		for _, k := range req.CoordinatorKeys {
			co := kmsg.NewFindCoordinatorResponseCoordinator()
			co.Key = k
			co.NodeID, co.Host, co.Port, co.ErrorCode = one(k)
			resp.Coordinators = append(resp.Coordinators, co)
		}
		return resp
	}
}

// TestCharacteriseFindCoordinatorTwoClusters: each key is asked of a
// broker of its home cluster (this host's), the coordinator is presented
// as the peer presenting it, and the cluster's coordinator cache follows
// the answer: the group requests that follow go to the new coordinator,
// and after NOT_COORDINATOR to any broker of the home.
func TestCharacteriseFindCoordinatorTwoClusters(t *testing.T) {
	nodes := map[string]map[string]int32{
		cxEast: {"g-new": 101},
		cxWest: {"wg-new": 202, "wg-txn": 100},
	}
	heartbeat := func(group string) kmsg.Request {
		r := kmsg.NewPtrHeartbeatRequest()
		r.Group, r.Generation, r.MemberID = group, 1, "m"
		return r
	}
	hbResp := &kmsg.HeartbeatResponse{}
	for _, v := range []int16{1, 3, 4, 6} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newCx(t, true)
			h := f.conn(t)
			type key struct {
				key  string
				typ  int8
				from cxAt
				node int32 // presented peer, -1 with NOT_COORDINATOR
				code int16
			}
			keys := []key{
				{"wg-new", coordinatorGroup, cxW201, cxExpectPeer(f, cxWest, 202), 0},
				{"g-new", coordinatorGroup, cxE100, 1, 0},
				{"g1", coordinatorGroup, cxE100, -1, kerr.NotCoordinator.Code},
			}
			if v < 4 {
				keys = keys[:1]
			}
			got := map[string]string{}
			var sent []cxAt
			if v < 4 {
				req := kmsg.NewPtrFindCoordinatorRequest()
				req.CoordinatorKey = keys[0].key
				ex, kr := h.answered(req, v, cxFindCoordinatorAnswer(nodes))
				sent = ex.targets()
				resp := kr.(*kmsg.FindCoordinatorResponse)
				got[keys[0].key] = fmt.Sprintf("%d/%d/%s:%d", resp.NodeID, resp.ErrorCode, resp.Host, resp.Port)
			} else {
				req := kmsg.NewPtrFindCoordinatorRequest()
				for _, k := range keys {
					req.CoordinatorKeys = append(req.CoordinatorKeys, k.key)
				}
				ex, kr := h.answered(req, v, cxFindCoordinatorAnswer(nodes))
				sent = ex.targets()
				resp := kr.(*kmsg.FindCoordinatorResponse)
				for _, co := range resp.Coordinators {
					got[co.Key] = fmt.Sprintf("%d/%d/%s:%d", co.NodeID, co.ErrorCode, co.Host, co.Port)
				}
				if resp.ThrottleMillis != 1201 {
					t.Fatalf("throttle %d, want 1201", resp.ThrottleMillis)
				}
			}
			want := map[string]string{}
			var wantSent []cxAt
			for _, k := range keys {
				host, port := "", int32(-1)
				if k.node >= 0 {
					p, _ := f.view.st.Peer(k.node)
					host, port, _ = splitHostPort(p.KafkaAddr)
				}
				if k.code != 0 {
					host, port = "", -1
				}
				want[k.key] = fmt.Sprintf("%d/%d/%s:%d", k.node, k.code, host, port)
				if !slices.Contains(wantSent, k.from) {
					wantSent = append(wantSent, k.from)
				}
			}
			slices.SortFunc(wantSent, cxCmpAt)
			if !slices.Equal(sent, wantSent) {
				t.Fatalf("asked %v, want %v", sent, wantSent)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("coordinators %v, want %v", got, want)
			}
			// The caches follow the answers.
			ex, _ := h.answered(heartbeat("wg-new"), 4, cxAnswerWith(hbResp))
			cxWantTargets(t, ex, cxW202)
			if v >= 4 {
				ex, _ = h.answered(heartbeat("g-new"), 4, cxAnswerWith(hbResp))
				cxWantTargets(t, ex, cxE101)
				ex, _ = h.answered(heartbeat("g1"), 4, cxAnswerWith(hbResp)) // evicted: any broker of the home
				cxWantTargets(t, ex, cxE100)
			}
		})
	}
}

// TestMetadataServedUnderOneState: a route that flips while a Metadata
// request is in flight does not drop the topic. The request is split under
// the state it arrived with and its merge filters under the same state
// (pipeline.go); before the request pipeline the merge read the state
// again, and payments, asked of west, was filtered out of the answer
// because it now routed east.
func TestMetadataServedUnderOneState(t *testing.T) {
	f := newCx(t, true)
	h := f.conn(t)
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("payments")}}
	flipped := false
	ex, kr := h.answered(req, 12, func(a cxAt, r kmsg.Request) kmsg.Response {
		if !flipped {
			st := *f.view.st
			st.Routes.Topics = []fsm.TopicRoute{{Topic: "payments", Cluster: cxEast}}
			f.view.st = &st
			flipped = true
		}
		return cxMetadataAnswer(a, r)
	})
	cxWantTargets(t, ex, cxW201)
	m := kr.(*kmsg.MetadataResponse)
	if len(m.Topics) != 1 || m.Topics[0].Topic == nil || *m.Topics[0].Topic != "payments" || m.Topics[0].ErrorCode != 0 {
		t.Fatalf("answer topics %+v, want payments as west served it", m.Topics)
	}
	// The next request is served under the new state: east.
	ex, _ = h.answered(req, 12, cxMetadataAnswer)
	cxWantTargets(t, ex, cxE100)
}
