package kafka

// Handler-level tests of the response rewrites and request routing, using
// the real handlers and rewrite functions over the fixture in
// harness_test.go.

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// expectPeer is the reference presentation of fxState under the fixture's
// liveness: co-located brokers by their peer, the rest by rendezvous.
func (f *fx) expectPeer(b int32) int32 {
	if b < 0 {
		return -1
	}
	for _, p := range f.view.st.Peers {
		if !f.view.live[p.ID] {
			continue
		}
		for _, lb := range p.LocalBrokers {
			if lb.Cluster == fxCluster && lb.BrokerID == b {
				return p.ID
			}
		}
	}
	return rendezvousWinner(fxCluster, b, f.view.liveIDs())
}

// expectEndpoint is a live peer's advertised host and port.
func (f *fx) expectEndpoint(t testing.TB, id int32) (string, int32) {
	t.Helper()
	p, ok := f.view.st.Peer(id)
	if !ok || !f.view.live[id] {
		t.Fatalf("peer %d is not a live peer", id)
	}
	host, port, err := splitHostPort(p.KafkaAddr)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// noBackendHosts fails if the frame names a backend broker host.
func noBackendHosts(t testing.TB, frame []byte) {
	t.Helper()
	if bytes.Contains(frame, []byte("kafka.internal")) {
		t.Fatalf("a backend broker address reached the client: %q", frame)
	}
}

func TestPresentMetadata(t *testing.T) {
	for _, clusterID := range []string{"", "proxy-cluster"} {
		t.Run("cluster id "+clusterID, func(t *testing.T) {
			f := newFx(t, withClusterID(clusterID))
			m := fxMetadata()
			// Extra shapes: unknown leader, leader outside its replicas, an
			// offline replica, a dead peer's broker as controller.
			extra := kmsg.NewMetadataResponseTopic()
			extra.Topic = kmsg.StringPtr("odd")
			p0 := kmsg.NewMetadataResponseTopicPartition()
			p0.Partition, p0.Leader, p0.Replicas, p0.ISR = 0, -1, []int32{100, 101}, []int32{}
			p1 := kmsg.NewMetadataResponseTopicPartition()
			p1.Partition, p1.Leader, p1.Replicas, p1.ISR, p1.OfflineReplicas = 1, 100, []int32{101}, []int32{101}, []int32{103, 101}
			extra.Partitions = []kmsg.MetadataResponseTopicPartition{p0, p1}
			m.Topics = append(m.Topics, extra)
			m.ControllerID = 103
			orig := fxMetadata()
			orig.Topics = append(orig.Topics, extra)
			orig.Topics[2].Partitions = slices.Clone(extra.Partitions)

			presentMetadata(reqOn(f.conn(t).c, 3, m.Version), f.backend, m)

			var wantIDs []int32
			for i, b := range m.Brokers {
				wantIDs = append(wantIDs, b.NodeID)
				host, port := f.expectEndpoint(t, b.NodeID)
				if b.Host != host || b.Port != port {
					t.Fatalf("broker %d = %s:%d, want %s:%d", i, b.Host, b.Port, host, port)
				}
				p, _ := f.view.st.Peer(b.NodeID)
				if (p.Region == "") != (b.Rack == nil) || (b.Rack != nil && *b.Rack != p.Region) {
					t.Fatalf("broker %d rack = %v, want region %q", b.NodeID, b.Rack, p.Region)
				}
			}
			if !slices.Equal(wantIDs, f.view.liveIDs()) {
				t.Fatalf("brokers = %v, want the live peers %v", wantIDs, f.view.liveIDs())
			}
			if m.ControllerID != f.expectPeer(103) {
				t.Fatalf("controller = %d, want %d", m.ControllerID, f.expectPeer(103))
			}
			wantCluster := "backend-cluster-id"
			if clusterID != "" {
				wantCluster = clusterID
			}
			if m.ClusterID == nil || *m.ClusterID != wantCluster {
				t.Fatalf("cluster id = %v, want %q", strp(m.ClusterID), wantCluster)
			}
			mapList := func(ids []int32) []int32 {
				out := []int32{}
				for _, id := range ids {
					if p := f.expectPeer(id); p >= 0 && !slices.Contains(out, p) {
						out = append(out, p)
					}
				}
				return out
			}
			for i, tp := range m.Topics {
				for j, p := range tp.Partitions {
					o := orig.Topics[i].Partitions[j]
					name := fmt.Sprintf("%s/%d", *tp.Topic, p.Partition)
					if want := f.expectPeer(o.Leader); p.Leader != want {
						t.Fatalf("%s: leader %d, want %d (real leader %d)", name, p.Leader, want, o.Leader)
					}
					wantReplicas := mapList(o.Replicas)
					if p.Leader >= 0 && len(wantReplicas) > 0 {
						wantReplicas = moveFirst(wantReplicas, p.Leader)
					}
					if !slices.Equal(p.Replicas, wantReplicas) {
						t.Fatalf("%s: replicas %v, want %v (real %v)", name, p.Replicas, wantReplicas, o.Replicas)
					}
					if p.Leader >= 0 && p.Replicas[0] != p.Leader {
						t.Fatalf("%s: leader %d is not the first replica of %v", name, p.Leader, p.Replicas)
					}
					if want := mapList(o.ISR); !slices.Equal(p.ISR, want) {
						t.Fatalf("%s: isr %v, want %v", name, p.ISR, want)
					}
					if want := mapList(o.OfflineReplicas); !slices.Equal(p.OfflineReplicas, want) {
						t.Fatalf("%s: offline %v, want %v", name, p.OfflineReplicas, want)
					}
					if p.LeaderEpoch != o.LeaderEpoch {
						t.Fatalf("%s: leader epoch changed", name)
					}
				}
			}
			// Concretely, for the co-located brokers.
			if got := m.Topics[0].Partitions[1]; got.Leader != 1 || got.Replicas[0] != 1 {
				t.Fatalf("orders/1 led by 101 is presented as %d %v, want peer 1", got.Leader, got.Replicas)
			}
			if got := m.Topics[2].Partitions[1].Replicas; !slices.Equal(got, []int32{0, 1}) {
				t.Fatalf("odd/1: leader 100 outside replicas [101]: replicas %v, want [0 1]", got)
			}
		})
	}
}

func TestPresentMetadataController(t *testing.T) {
	f := newFx(t)
	for _, tc := range []struct{ real, want int32 }{{101, 1}, {100, 0}, {-1, -1}, {104, f.expectPeer(104)}} {
		m := fxMetadata()
		m.ControllerID = tc.real
		presentMetadata(reqOn(f.conn(t).c, 3, m.Version), f.backend, m)
		if m.ControllerID != tc.want {
			t.Fatalf("controller %d presented as %d, want %d", tc.real, m.ControllerID, tc.want)
		}
	}
}

// TestHandleMetadata drives the Metadata handler at every version: the
// request goes opaquely to this host's broker, the answer is rewritten, and
// the leader cache learns the real leaders.
func TestHandleMetadata(t *testing.T) {
	maxV := kmsg.NewPtrMetadataRequest().MaxVersion()
	for v := int16(0); v <= maxV; v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newFx(t, withClusterID("proxy-cluster"))
			h := f.conn(t)
			req := kmsg.NewPtrMetadataRequest()
			if v == 0 {
				req.Topics = []kmsg.MetadataRequestTopic{} // v0: empty means all
			}
			frame := reqFrame(req, v, 31)
			answer := fxMetadata()
			answer.Topics[0].Partitions[0].Leader = 101 // orders/0 moved to 101
			ex := h.run(handleMetadata, frame, fixedAnswer(answer))
			if ex.err != nil || !ex.done || ex.outErr != nil || ex.slots != 1 {
				t.Fatalf("exchange = %+v", ex)
			}
			if len(ex.sent) != 1 || len(ex.sent[100]) != 1 || !bytes.Equal(ex.sent[100][0], frame) {
				t.Fatalf("request not forwarded unchanged to this host's broker 100: %v", ex.sent)
			}
			noBackendHosts(t, ex.out)
			corr, resp := decodeOut(t, ex.out, 3, v)
			m := resp.(*kmsg.MetadataResponse)
			if corr != 31 {
				t.Fatalf("correlation id %d, want 31", corr)
			}
			var ids []int32
			for _, b := range m.Brokers {
				ids = append(ids, b.NodeID)
			}
			if !slices.Equal(ids, []int32{0, 1, 3}) {
				t.Fatalf("brokers %v, want live peers [0 1 3]", ids)
			}
			if v >= 1 && m.ControllerID != 1 {
				t.Fatalf("controller %d, want 1", m.ControllerID)
			}
			if v >= 2 && (m.ClusterID == nil || *m.ClusterID != "proxy-cluster") {
				t.Fatalf("cluster id %v", strp(m.ClusterID))
			}
			if got := m.Topics[0].Partitions[0].Leader; got != 1 {
				t.Fatalf("orders/0 leader %d, want 1", got)
			}
			if got := f.backend.leader("orders", 0); got != 101 {
				t.Fatalf("leader cache: orders/0 led by %d, want 101", got)
			}
		})
	}
}

// TestHandleMetadataPartial: a metadata answer for named topics updates
// those and forgets nothing else.
func TestHandleMetadataPartial(t *testing.T) {
	f := newFx(t)
	h := f.conn(t)
	req := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("events")
	req.Topics = []kmsg.MetadataRequestTopic{mt}
	answer := fxMetadata()
	answer.Topics = answer.Topics[1:]
	answer.Topics[0].Partitions[1].Leader = 104
	ex := h.run(handleMetadata, reqFrame(req, 12, 1), fixedAnswer(answer))
	if ex.err != nil || !ex.done || ex.outErr != nil {
		t.Fatalf("exchange = %+v", ex)
	}
	if got := f.backend.leader("events", 1); got != 104 {
		t.Fatalf("events/1 led by %d, want 104", got)
	}
	if got := f.backend.leader("orders", 2); got != 102 {
		t.Fatalf("orders forgotten by a partial answer: orders/2 led by %d", got)
	}
}

func produceResp(version int16) *kmsg.ProduceResponse {
	r := kmsg.NewPtrProduceResponse()
	r.Version = version
	return r
}

func producePart(p int32, code int16, leader int32) kmsg.ProduceResponseTopicPartition {
	rp := kmsg.NewProduceResponseTopicPartition()
	rp.Partition, rp.ErrorCode, rp.BaseOffset = p, code, int64(p)*100
	rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = leader, 4
	return rp
}

func TestFixProduce(t *testing.T) {
	f := newFx(t)
	c := &clientConn{s: f.srv}
	notLeader := kerr.NotLeaderForPartition.Code
	for _, v := range []int16{3, 8, 9, 10, 11, 12, 13} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			resp := produceResp(v)
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic, rt.TopicID = "orders", fxOrdersID
			rt.Partitions = []kmsg.ProduceResponseTopicPartition{
				producePart(0, notLeader, 101),
				producePart(1, 0, -1),
				producePart(2, notLeader, 103),
			}
			resp.Topics = []kmsg.ProduceResponseTopic{rt}
			if v >= 10 {
				resp.Brokers = []kmsg.ProduceResponseBroker{
					{NodeID: 101, Host: "b101.kafka.internal", Port: 19101},
					{NodeID: 103, Host: "b103.kafka.internal", Port: 19103},
					{NodeID: 100, Host: "b100.kafka.internal", Port: 19100},
				}
			}
			f.refreshRequested()
			changed := fixProduce(reqOn(c, 0, resp.Version), f.backend, resp)
			if !f.refreshRequested() {
				t.Fatalf("NOT_LEADER_OR_FOLLOWER did not trigger a metadata refresh")
			}
			if changed != (v >= 10) {
				t.Fatalf("changed = %v", changed)
			}
			ps := resp.Topics[0].Partitions
			if v < 10 {
				if ps[0].CurrentLeader.LeaderID != 101 {
					t.Fatalf("v%d has no CurrentLeader (KIP-951 is v10+), yet it was rewritten", v)
				}
				return
			}
			if ps[0].CurrentLeader.LeaderID != 1 || ps[0].CurrentLeader.LeaderEpoch != 4 {
				t.Fatalf("current leader 101 presented as %+v, want peer 1, epoch 4", ps[0].CurrentLeader)
			}
			if ps[1].CurrentLeader.LeaderID != -1 {
				t.Fatalf("unknown current leader became %d", ps[1].CurrentLeader.LeaderID)
			}
			if want := f.expectPeer(103); ps[2].CurrentLeader.LeaderID != want {
				t.Fatalf("current leader 103 presented as %d, want %d", ps[2].CurrentLeader.LeaderID, want)
			}
			want := dedup([]int32{1, f.expectPeer(103), 0})
			var got []int32
			for _, b := range resp.Brokers {
				got = append(got, b.NodeID)
				host, port := f.expectEndpoint(t, b.NodeID)
				if b.Host != host || b.Port != port {
					t.Fatalf("endpoint %d = %s:%d, want %s:%d", b.NodeID, b.Host, b.Port, host, port)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("node endpoints %v, want %v", got, want)
			}
			noBackendHosts(t, respFrame(resp, v, 1))
		})
	}
}

func TestFixProduceUnchanged(t *testing.T) {
	f := newFx(t)
	c := &clientConn{s: f.srv}
	resp := produceResp(11)
	rt := kmsg.NewProduceResponseTopic()
	rt.Topic = "orders"
	rt.Partitions = []kmsg.ProduceResponseTopicPartition{producePart(0, 0, -1)}
	resp.Topics = []kmsg.ProduceResponseTopic{rt}
	if fixProduce(reqOn(c, 0, resp.Version), f.backend, resp) {
		t.Fatal("a response without leaders or endpoints was reported changed")
	}
	if f.refreshRequested() {
		t.Fatal("a successful produce triggered a metadata refresh")
	}
}

type fxPart struct {
	topic     string
	id        [16]byte
	partition int32
	payload   []byte
}

func produceReq(acks int16, parts ...fxPart) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = acks, 1234
	req.TransactionID = kmsg.StringPtr("txn-1")
	for _, p := range parts {
		if n := len(req.Topics); n == 0 || req.Topics[n-1].Topic != p.topic {
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic, rt.TopicID = p.topic, p.id
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = p.partition, p.payload
		rt := &req.Topics[len(req.Topics)-1]
		rt.Partitions = append(rt.Partitions, rp)
	}
	return req
}

// produceAnswer answers a produce request with success for every
// partition; the broker reports itself as current leader and endpoint.
func produceAnswer(t testing.TB) answerFunc {
	return func(broker int32, frame []byte) []byte {
		hdr, kreq := decodeFrame(t, frame)
		req := kreq.(*kmsg.ProduceRequest)
		resp := produceResp(hdr.version)
		resp.ThrottleMillis = broker
		for _, rt := range req.Topics {
			out := kmsg.NewProduceResponseTopic()
			out.Topic, out.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				out.Partitions = append(out.Partitions, producePart(rp.Partition, 0, broker))
			}
			resp.Topics = append(resp.Topics, out)
		}
		resp.Brokers = []kmsg.ProduceResponseBroker{{NodeID: broker, Host: fmt.Sprintf("b%d.kafka.internal", broker), Port: 19000 + broker}}
		return respFrame(resp, hdr.version, hdr.corr)
	}
}

// TestHandleProduceSingleLeader: when one broker leads every partition the
// client's bytes go through unchanged, and bytes are counted per topic.
func TestHandleProduceSingleLeader(t *testing.T) {
	for _, v := range []int16{3, 7, 9, 10, 12} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newFx(t)
			h := f.conn(t)
			req := produceReq(-1,
				fxPart{"orders", fxOrdersID, 0, bytes.Repeat([]byte{1}, 100)},
				fxPart{"events", fxEventsID, 0, bytes.Repeat([]byte{2}, 30)},
				fxPart{"events", fxEventsID, 1, bytes.Repeat([]byte{3}, 12)},
			)
			frame := reqFrame(req, v, 9)
			var backendAnswer []byte
			ex := h.run(handleProduce, frame, func(b int32, fr []byte) []byte {
				backendAnswer = produceAnswer(t)(b, fr)
				return backendAnswer
			})
			if ex.err != nil || !ex.done || ex.outErr != nil || ex.slots != 1 {
				t.Fatalf("exchange = %+v", ex)
			}
			if len(ex.sent) != 1 || len(ex.sent[100]) != 1 || !bytes.Equal(ex.sent[100][0], frame) {
				t.Fatalf("request not forwarded unchanged to leader 100: %v", ex.sent)
			}
			if got := topicBytes(t, f.reg, "orders", "produce"); got != 100 {
				t.Fatalf("orders produce bytes = %v, want 100", got)
			}
			if got := topicBytes(t, f.reg, "events", "produce"); got != 42 {
				t.Fatalf("events produce bytes = %v, want 42", got)
			}
			corr, resp := decodeOut(t, ex.out, 0, v)
			pr := resp.(*kmsg.ProduceResponse)
			if corr != 9 {
				t.Fatalf("correlation id %d", corr)
			}
			if v < 9 {
				// Nothing to present: the backend's bytes go through as is.
				if !bytes.Equal(ex.out, backendAnswer) {
					t.Fatalf("v%d response re-encoded though nothing changed", v)
				}
				return
			}
			noBackendHosts(t, ex.out)
			if v >= 10 {
				if got := pr.Topics[0].Partitions[0].CurrentLeader.LeaderID; got != 0 {
					t.Fatalf("current leader %d, want peer 0", got)
				}
				if len(pr.Brokers) != 1 || pr.Brokers[0].NodeID != 0 || pr.Brokers[0].Host != "p0.proxy.test" {
					t.Fatalf("node endpoints %+v, want peer 0", pr.Brokers)
				}
			}
		})
	}
}

// TestHandleProduceSplit: partitions led by three brokers are split per
// leader, and the answers merged into one response in the client's order.
func TestHandleProduceSplit(t *testing.T) {
	for _, v := range []int16{3, 9, 10, 12} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newFx(t)
			h := f.conn(t)
			req := produceReq(1,
				fxPart{"orders", fxOrdersID, 0, []byte("a")},
				fxPart{"orders", fxOrdersID, 1, []byte("bb")},
				fxPart{"orders", fxOrdersID, 2, []byte("ccc")},
				fxPart{"events", fxEventsID, 0, []byte("dddd")},
			)
			ex := h.run(handleProduce, reqFrame(req, v, 10), produceAnswer(t))
			if ex.err != nil || !ex.done || ex.outErr != nil || ex.slots != 1 {
				t.Fatalf("exchange = %+v", ex)
			}
			want := map[int32][]string{100: {"orders/0", "events/0"}, 101: {"orders/1"}, 102: {"orders/2"}}
			if len(ex.sent) != len(want) {
				t.Fatalf("sent to %d brokers, want %d", len(ex.sent), len(want))
			}
			for b, parts := range want {
				if len(ex.sent[b]) != 1 {
					t.Fatalf("broker %d got %d requests", b, len(ex.sent[b]))
				}
				hdr, kreq := decodeFrame(t, ex.sent[b][0])
				sub := kreq.(*kmsg.ProduceRequest)
				if hdr.version != v || hdr.corr != 10 || *hdr.clientID != "fx-client" {
					t.Fatalf("broker %d: header %+v", b, hdr)
				}
				if sub.Acks != 1 || sub.TimeoutMillis != 1234 || sub.TransactionID == nil || *sub.TransactionID != "txn-1" {
					t.Fatalf("broker %d: request fields not carried: %+v", b, sub)
				}
				var got []string
				for _, rt := range sub.Topics {
					name := rt.Topic
					if v >= 13 {
						name, _ = f.backend.topicName(rt.TopicID)
					}
					for _, rp := range rt.Partitions {
						got = append(got, fmt.Sprintf("%s/%d", name, rp.Partition))
					}
				}
				if !slices.Equal(got, parts) {
					t.Fatalf("broker %d got %v, want %v", b, got, parts)
				}
			}
			_, resp := decodeOut(t, ex.out, 0, v)
			pr := resp.(*kmsg.ProduceResponse)
			if v >= 1 && pr.ThrottleMillis != 102 {
				t.Fatalf("throttle %d, want the max 102", pr.ThrottleMillis)
			}
			var got []string
			for _, rt := range pr.Topics {
				for _, rp := range rt.Partitions {
					got = append(got, fmt.Sprintf("%s%x/%d", rt.Topic, rt.TopicID[:1], rp.Partition))
					if v >= 10 && rp.CurrentLeader.LeaderID != f.expectPeer(f.backend.leader(nameOf(f, rt.Topic, rt.TopicID, v), rp.Partition)) {
						t.Fatalf("partition %d: current leader %d", rp.Partition, rp.CurrentLeader.LeaderID)
					}
				}
			}
			if len(got) != 4 {
				t.Fatalf("merged response has %v", got)
			}
			if v >= 10 {
				noBackendHosts(t, ex.out)
				ids := []int32{}
				for _, b := range pr.Brokers {
					ids = append(ids, b.NodeID)
				}
				if want := dedup([]int32{0, 1, f.expectPeer(102)}); !slices.Equal(ids, want) {
					t.Fatalf("node endpoints %v, want %v", ids, want)
				}
			}
		})
	}
}

func nameOf(f *fx, name string, id [16]byte, v int16) string {
	if v >= 13 {
		n, _ := f.backend.topicName(id)
		return n
	}
	return name
}

// TestHandleProduceAcksZero: acks=0 reserves no response slot, split or not.
func TestHandleProduceAcksZero(t *testing.T) {
	f := newFx(t)
	h := f.conn(t)
	never := func(int32, []byte) []byte { t.Fatal("acks=0 awaited a response"); return nil }
	single := reqFrame(produceReq(0, fxPart{"orders", fxOrdersID, 1, []byte("x")}), 9, 1)
	ex := h.run(handleProduce, single, never)
	if ex.err != nil || ex.slots != 0 || len(ex.sent[101]) != 1 || !bytes.Equal(ex.sent[101][0], single) {
		t.Fatalf("single leader acks=0: %+v", ex)
	}
	split := reqFrame(produceReq(0, fxPart{"orders", fxOrdersID, 0, []byte("x")}, fxPart{"orders", fxOrdersID, 1, []byte("y")}), 9, 2)
	ex = h.run(handleProduce, split, never)
	if ex.err != nil || ex.slots != 0 || len(ex.sent[100]) != 1 || len(ex.sent[101]) != 1 {
		t.Fatalf("split acks=0: %+v", ex)
	}
}

// TestHandleProduceUnknownTopic: a partition of a topic the proxy does
// not know is answered UNKNOWN_TOPIC_OR_PARTITION by the proxy itself,
// rather than sent to a broker picked blindly (produce_order.go), and
// triggers a refresh of its metadata.
func TestHandleProduceUnknownTopic(t *testing.T) {
	f := newFx(t)
	h := f.conn(t)
	f.refreshRequested()
	ex := h.run(handleProduce, reqFrame(produceReq(-1, fxPart{"nope", [16]byte{9}, 0, []byte("x")}), 9, 1), produceAnswer(t))
	if ex.err != nil || !ex.done || ex.outErr != nil || len(ex.sent) != 0 {
		t.Fatalf("exchange = %+v", ex)
	}
	_, resp := decodeOut(t, ex.out, 0, 9)
	pr := resp.(*kmsg.ProduceResponse)
	if len(pr.Topics) != 1 || len(pr.Topics[0].Partitions) != 1 || pr.Topics[0].Partitions[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("answer %+v, want nope/0 UNKNOWN_TOPIC_OR_PARTITION", pr.Topics)
	}
	if !f.refreshRequested() {
		t.Fatal("unknown leader did not trigger a metadata refresh")
	}
}

func fetchResp(version int16) *kmsg.FetchResponse {
	r := kmsg.NewPtrFetchResponse()
	r.Version = version
	return r
}

func fetchPart(p int32, code int16, leader, preferred int32, records []byte) kmsg.FetchResponseTopicPartition {
	fp := kmsg.NewFetchResponseTopicPartition()
	fp.Partition, fp.ErrorCode, fp.HighWatermark = p, code, 1000
	fp.CurrentLeader.LeaderID, fp.CurrentLeader.LeaderEpoch = leader, 6
	fp.PreferredReadReplica = preferred
	fp.RecordBatches = records
	return fp
}

func TestFixFetch(t *testing.T) {
	maxV := kmsg.NewPtrFetchResponse().MaxVersion()
	for v := int16(4); v <= maxV; v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newFx(t)
			c := &clientConn{s: f.srv}
			resp := fetchResp(v)
			resp.SessionID = 55
			orders := kmsg.NewFetchResponseTopic()
			orders.Topic, orders.TopicID = "orders", fxOrdersID
			orders.Partitions = []kmsg.FetchResponseTopicPartition{
				fetchPart(0, 0, 101, 102, make([]byte, 10)),
				fetchPart(1, kerr.FencedLeaderEpoch.Code, 103, -1, make([]byte, 20)),
				fetchPart(2, 0, -1, -1, nil),
			}
			events := kmsg.NewFetchResponseTopic()
			events.Topic, events.TopicID = "events", fxEventsID
			events.Partitions = []kmsg.FetchResponseTopicPartition{fetchPart(0, 0, -1, -1, make([]byte, 5))}
			resp.Topics = []kmsg.FetchResponseTopic{orders, events}
			resp.Brokers = []kmsg.FetchResponseBroker{
				{NodeID: 101, Host: "b101.kafka.internal", Port: 19101},
				{NodeID: 103, Host: "b103.kafka.internal", Port: 19103},
			}
			// What a client would have decoded at this version.
			resp = roundTrip(t, resp).(*kmsg.FetchResponse)
			f.refreshRequested()

			changed := fixFetch(reqOn(c, 1, resp.Version), target{be: f.backend, broker: -1}, resp)

			if !f.refreshRequested() {
				t.Fatal("FENCED_LEADER_EPOCH did not trigger a metadata refresh")
			}
			wantChanged := v >= 7 // the session id, from v7
			if changed != wantChanged {
				t.Fatalf("changed = %v, want %v", changed, wantChanged)
			}
			if resp.SessionID != 0 {
				t.Fatalf("session id %d passed to the client", resp.SessionID)
			}
			ps := resp.Topics[0].Partitions
			if v >= 11 && ps[0].PreferredReadReplica != -1 {
				t.Fatalf("preferred read replica %d passed to the client (KIP-392)", ps[0].PreferredReadReplica)
			}
			if v >= 12 {
				if ps[0].CurrentLeader.LeaderID != 1 || ps[0].CurrentLeader.LeaderEpoch != 6 {
					t.Fatalf("current leader 101 presented as %+v", ps[0].CurrentLeader)
				}
				if want := f.expectPeer(103); ps[1].CurrentLeader.LeaderID != want {
					t.Fatalf("current leader 103 presented as %d, want %d", ps[1].CurrentLeader.LeaderID, want)
				}
				if ps[2].CurrentLeader.LeaderID != -1 {
					t.Fatalf("unknown current leader became %d", ps[2].CurrentLeader.LeaderID)
				}
			}
			if v >= 16 {
				var ids []int32
				for _, b := range resp.Brokers {
					ids = append(ids, b.NodeID)
					host, port := f.expectEndpoint(t, b.NodeID)
					if b.Host != host || b.Port != port {
						t.Fatalf("endpoint %d = %s:%d", b.NodeID, b.Host, b.Port)
					}
				}
				if want := dedup([]int32{1, f.expectPeer(103)}); !slices.Equal(ids, want) {
					t.Fatalf("node endpoints %v, want %v", ids, want)
				}
			}
			noBackendHosts(t, respFrame(resp, v, 1))
			if got := topicBytes(t, f.reg, "orders", "fetch"); got != 30 {
				t.Fatalf("orders fetch bytes = %v, want 30", got)
			}
			if got := topicBytes(t, f.reg, "events", "fetch"); got != 5 {
				t.Fatalf("events fetch bytes = %v, want 5", got)
			}
		})
	}
}

// roundTrip encodes and decodes resp at its version, as the wire would.
func roundTrip(t testing.TB, resp kmsg.Response) kmsg.Response {
	t.Helper()
	back := kmsg.ResponseForKey(resp.Key())
	back.SetVersion(resp.GetVersion())
	if err := back.ReadFrom(resp.AppendTo(nil)); err != nil {
		t.Fatalf("round trip: %v", err)
	}
	return back
}

func fetchReq(parts ...fxPart) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.IsolationLevel = 500, 1, 1<<20, 1
	req.SessionID, req.SessionEpoch = 77, -1 // closing session 77: a full fetch (fetch_session.go)
	req.Rack = "rack-a"
	for _, p := range parts {
		if n := len(req.Topics); n == 0 || req.Topics[n-1].Topic != p.topic {
			ft := kmsg.NewFetchRequestTopic()
			ft.Topic, ft.TopicID = p.topic, p.id
			req.Topics = append(req.Topics, ft)
		}
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p.partition, 10, 1<<20
		ft := &req.Topics[len(req.Topics)-1]
		ft.Partitions = append(ft.Partitions, fp)
	}
	return req
}

// fetchAnswer answers each partition p with (p%8+1)*10 bytes of
// records, the broker as current leader, and a session the proxy did not
// ask for.
func fetchAnswer(t testing.TB) answerFunc {
	return func(broker int32, frame []byte) []byte {
		hdr, kreq := decodeFrame(t, frame)
		req := kreq.(*kmsg.FetchRequest)
		if hdr.version >= 7 && (req.SessionID != 0 || req.SessionEpoch != -1) {
			t.Fatalf("broker %d got session %d/%d, want sessionless 0/-1", broker, req.SessionID, req.SessionEpoch)
		}
		resp := fetchResp(hdr.version)
		resp.SessionID = 1000 + broker
		resp.ThrottleMillis = broker
		for _, ft := range req.Topics {
			out := kmsg.NewFetchResponseTopic()
			out.Topic, out.TopicID = ft.Topic, ft.TopicID
			for _, fp := range ft.Partitions {
				out.Partitions = append(out.Partitions, fetchPart(fp.Partition, 0, broker, broker, make([]byte, 10*(int(uint32(fp.Partition)%8)+1))))
			}
			resp.Topics = append(resp.Topics, out)
		}
		resp.Brokers = []kmsg.FetchResponseBroker{{NodeID: broker, Host: fmt.Sprintf("b%d.kafka.internal", broker), Port: 19000 + broker}}
		return respFrame(resp, hdr.version, hdr.corr)
	}
}

// TestHandleFetchSessionless: from v7 the request goes upstream patched in
// place to session 0, epoch -1, and nothing else changes; the answer never
// hands the client a session.
func TestHandleFetchSessionless(t *testing.T) {
	// v13+ name topics by id and are not advertised (topicids.go).
	for v := int16(4); v <= versionCaps[1]; v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newFx(t)
			h := f.conn(t)
			req := fetchReq(fxPart{"orders", fxOrdersID, 0, nil}, fxPart{"events", fxEventsID, 1, nil})
			frame := reqFrame(req, v, 3)
			ex := h.run(handleFetch, frame, fetchAnswer(t))
			if ex.err != nil || !ex.done || ex.outErr != nil || ex.slots != 1 {
				t.Fatalf("exchange = %+v", ex)
			}
			if len(ex.sent) != 1 || len(ex.sent[100]) != 1 {
				t.Fatalf("sent %v, want one request to leader 100", ex.sent)
			}
			want := slices.Clone(frame)
			if v >= 7 {
				hdr, _ := parseRequestHeader(frame[4:])
				off := 4 + hdr.bodyOff + fetchSessionOffset(v)
				copy(want[off:], []byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
			}
			if !bytes.Equal(ex.sent[100][0], want) {
				t.Fatalf("upstream request differs from the client's beyond the session fields")
			}
			_, resp := decodeOut(t, ex.out, 1, v)
			fr := resp.(*kmsg.FetchResponse)
			if fr.SessionID != 0 {
				t.Fatalf("client handed session %d", fr.SessionID)
			}
			if v >= 11 && fr.Topics[0].Partitions[0].PreferredReadReplica != -1 {
				t.Fatal("preferred read replica passed to the client")
			}
			if v >= 12 && fr.Topics[0].Partitions[0].CurrentLeader.LeaderID != 0 {
				t.Fatalf("current leader %d, want peer 0", fr.Topics[0].Partitions[0].CurrentLeader.LeaderID)
			}
			noBackendHosts(t, ex.out)
			if got := topicBytes(t, f.reg, "orders", "fetch"); got != 10 {
				t.Fatalf("orders fetch bytes = %v, want 10", got)
			}
			if got := topicBytes(t, f.reg, "events", "fetch"); got != 20 {
				t.Fatalf("events fetch bytes = %v, want 20", got)
			}
		})
	}
}

// TestHandleFetchSplit: partitions of several leaders are fetched from each
// and merged; bytes are counted once.
func TestHandleFetchSplit(t *testing.T) {
	for _, v := range []int16{4, 7, 11, 12} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newFx(t)
			h := f.conn(t)
			req := fetchReq(fxPart{"orders", fxOrdersID, 0, nil}, fxPart{"orders", fxOrdersID, 1, nil}, fxPart{"orders", fxOrdersID, 3, nil})
			ex := h.run(handleFetch, reqFrame(req, v, 4), fetchAnswer(t))
			if ex.err != nil || !ex.done || ex.outErr != nil || ex.slots != 1 {
				t.Fatalf("exchange = %+v", ex)
			}
			for b, want := range map[int32][]int32{100: {0}, 101: {1}, 103: {3}} {
				if len(ex.sent[b]) != 1 {
					t.Fatalf("broker %d got %d requests", b, len(ex.sent[b]))
				}
				_, kreq := decodeFrame(t, ex.sent[b][0])
				sub := kreq.(*kmsg.FetchRequest)
				var got []int32
				for _, ft := range sub.Topics {
					for _, fp := range ft.Partitions {
						got = append(got, fp.Partition)
					}
				}
				if !slices.Equal(got, want) || sub.MaxBytes != req.MaxBytes || sub.IsolationLevel != req.IsolationLevel {
					t.Fatalf("broker %d: partitions %v (want %v), request %+v", b, got, want, sub)
				}
			}
			_, resp := decodeOut(t, ex.out, 1, v)
			fr := resp.(*kmsg.FetchResponse)
			if fr.SessionID != 0 {
				t.Fatalf("merged session id %d", fr.SessionID)
			}
			if v >= 1 && fr.ThrottleMillis != 103 {
				t.Fatalf("throttle %d, want 103", fr.ThrottleMillis)
			}
			if len(fr.Topics) != 1 || len(fr.Topics[0].Partitions) != 3 {
				t.Fatalf("merged topics %+v", fr.Topics)
			}
			if got := topicBytes(t, f.reg, "orders", "fetch"); got != 10+20+40 {
				t.Fatalf("orders fetch bytes = %v, want 70", got)
			}
			if v >= 12 {
				for _, p := range fr.Topics[0].Partitions {
					if want := f.expectPeer(f.backend.leader("orders", p.Partition)); p.CurrentLeader.LeaderID != want {
						t.Fatalf("partition %d: current leader %d, want %d", p.Partition, p.CurrentLeader.LeaderID, want)
					}
				}
			}
			if v >= 16 {
				noBackendHosts(t, ex.out)
			}
		})
	}
}

// TestHandleFetchForgottenTopicsOnly: a Fetch (v7+) whose Topics is empty
// and whose ForgottenTopics is not (what an incremental-session client
// sends when it drops its last partitions) must still get a response.
//
// Today handleFetch takes the split path (len(req.ForgottenTopics) > 0)
// with no partition to split (no topic, or topics without partitions), so
// scatter gets zero parts: no request goes
// upstream and the response slot is never finished. The client's
// connection stalls for good, every later response queued behind it.
func TestHandleFetchForgottenTopicsOnly(t *testing.T) {
	for _, v := range []int16{7, 12, 13, 18} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newFx(t)
			h := f.conn(t)
			for _, topics := range []int{0, 1} {
				req := fetchReq()
				if topics > 0 {
					// A topic listed with no partitions: nothing to split either.
					req.Topics = []kmsg.FetchRequestTopic{{Topic: "events", TopicID: fxEventsID}}
				}
				req.ForgottenTopics = []kmsg.FetchRequestForgottenTopic{{Topic: "orders", TopicID: fxOrdersID, Partitions: []int32{0, 1}}}
				ex := h.run(handleFetch, reqFrame(req, v, 5), fetchAnswer(t))
				if ex.err != nil {
					t.Fatalf("%d topics: handler error: %v", topics, ex.err)
				}
				if ex.slots != 1 || !ex.done {
					t.Fatalf("%d topics: response slot reserved %d, finished %v: the connection would wait forever (sent upstream: %d brokers)", topics, ex.slots, ex.done, len(ex.sent))
				}
				_, resp := decodeOut(t, ex.out, 1, v)
				if fr := resp.(*kmsg.FetchResponse); fr.SessionID != 0 {
					t.Fatalf("session id %d", fr.SessionID)
				}
			}
		})
	}
}

// TestScatterNoParts is the root cause of the stall above: scatter with no
// parts must finish its response slot rather than leave it pending.
func TestScatterNoParts(t *testing.T) {
	f := newFx(t)
	h := f.conn(t)
	scatterNone := func(r *request) error {
		c, start := r.c, r.start
		return c.scatter(r, start, nil, func(resps []kmsg.Response) kmsg.Response { return resps[0] })
	}
	ex := h.run(scatterNone, reqFrame(kmsg.NewPtrListGroupsRequest(), 4, 1), fixedAnswer(kmsg.NewPtrListGroupsResponse()))
	if ex.slots == 1 && !ex.done && ex.err == nil {
		t.Fatal("scatter with no parts reserved a response slot it never finishes")
	}
}

// TestHandleOffsetFetchNoGroups: OffsetFetch v8+ with an empty group list
// hits the same zero-part scatter.
func TestHandleOffsetFetchNoGroups(t *testing.T) {
	f := newFx(t)
	h := f.conn(t)
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Groups = []kmsg.OffsetFetchRequestGroup{}
	ex := h.run(handleOffsetFetch, reqFrame(req, 8, 1), fixedAnswer(kmsg.NewPtrOffsetFetchResponse()))
	if ex.err == nil && (ex.slots != 1 || !ex.done) {
		t.Fatalf("OffsetFetch v8 without groups: %d slots, finished %v, %d brokers sent to; the connection would wait forever", ex.slots, ex.done, len(ex.sent))
	}
}

func TestAdvertisedVersions(t *testing.T) {
	f := newFx(t)
	got := map[int16][2]int16{}
	var order []int16
	for _, k := range f.srv.advertisedVersions() {
		got[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
		order = append(order, k.ApiKey)
	}
	kmax := func(k int16) int16 { return kmsg.RequestForKey(k).MaxVersion() }
	want := map[int16][2]int16{
		0:  {3, 11},                         // backend narrower than kmsg
		1:  {4, kmax(1)},                    // backend wider than kmsg
		2:  {1, min(10, kmax(2))},           // ListOffsets
		3:  {0, min(12, kmax(3))},           // Metadata
		10: {0, min(6, kmax(10))},           // FindCoordinator
		18: {0, kmax(18)},                   // ApiVersions: ours, whatever the backend says
		19: {0, kmax(19)},                   // nonsense backend range clamped to ours
		24: {0, min(3, versionCaps[24], 5)}, // AddPartitionsToTxn capped (KIP-890)
		60: {0, min(1, kmax(60))},           // DescribeCluster
		75: {0, min(0, kmax(75))},           // DescribeTopicPartitions
	}
	if len(got) != len(want) {
		t.Fatalf("advertised %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Fatalf("%s (%d): advertised %v, want %v", kmsg.NameForKey(k), k, got[k], w)
		}
	}
	if !slices.IsSorted(order) {
		t.Fatalf("keys not in order: %v", order)
	}
	for _, k := range []int16{4, 32, 34} {
		if _, ok := got[k]; ok {
			t.Fatalf("key %d advertised (no handler, or empty backend range)", k)
		}
	}
	// Before the backend's versions are known, only ApiVersions.
	f.backend.versions.Store(nil)
	if got := f.srv.advertisedVersions(); len(got) != 1 || got[0].ApiKey != 18 {
		t.Fatalf("without backend versions advertised %+v, want only ApiVersions", got)
	}
}

// TestAdvertisedVersionsInvariants: with a backend supporting everything,
// every served key is advertised within kmsg's range, and no unserved key.
func TestAdvertisedVersionsInvariants(t *testing.T) {
	f := newFx(t)
	vs := &versionSet{}
	for i := range vs.keys {
		vs.keys[i] = versionRange{0, 100}
	}
	f.backend.versions.Store(vs)
	adv := map[int16]kmsg.ApiVersionsResponseApiKey{}
	for _, k := range f.srv.advertisedVersions() {
		adv[k.ApiKey] = k
	}
	for k := int16(0); k <= maxKey; k++ {
		a, ok := adv[k]
		if served := f.srv.handlers[k] != nil; served != ok {
			t.Fatalf("key %d: served %v, advertised %v", k, served, ok)
		}
		if !ok {
			continue
		}
		hi := kmsg.RequestForKey(k).MaxVersion()
		if c, ok := versionCaps[k]; ok {
			hi = min(hi, c)
		}
		if a.MinVersion != 0 || a.MaxVersion != hi {
			t.Fatalf("%s: advertised %d–%d, want 0–%d", kmsg.NameForKey(k), a.MinVersion, a.MaxVersion, hi)
		}
	}
}

// TestAdvertisedTopicIDVersions: with a backend supporting every version,
// the versions that name topics by id are advertised: the proxy translates
// the virtual ids clients know (topicids.go) to each cluster's own.
func TestAdvertisedTopicIDVersions(t *testing.T) {
	f := newFx(t)
	vs := &versionSet{}
	for i := range vs.keys {
		vs.keys[i] = versionRange{0, 100}
	}
	f.backend.versions.Store(vs)
	byID := map[int16]int16{
		0:  13, // Produce
		1:  13, // Fetch
		8:  10, // OffsetCommit
		9:  10, // OffsetFetch
		28: 6,  // TxnOffsetCommit (KIP-1319)
		75: 0,  // DescribeTopicPartitions
	}
	got := map[int16]int16{}
	for _, k := range f.srv.advertisedVersions() {
		got[k.ApiKey] = k.MaxVersion
	}
	for k, first := range byID {
		if v, ok := got[k]; !ok || v < first {
			t.Errorf("%s advertised up to v%d (advertised: %v), want at least v%d", kmsg.NameForKey(k), v, ok, first)
		}
	}
}

func TestHandleApiVersions(t *testing.T) {
	maxV := kmsg.NewPtrApiVersionsRequest().MaxVersion()
	f := newFx(t)
	for v := int16(0); v <= maxV; v++ {
		h := f.conn(t)
		req := kmsg.NewPtrApiVersionsRequest()
		req.ClientSoftwareName, req.ClientSoftwareVersion = "fx", "1"
		ex := h.run(handleApiVersions, reqFrame(req, v, 70+int32(v)), nil)
		if ex.err != nil || !ex.done || ex.slots != 1 || len(ex.sent) != 0 {
			t.Fatalf("v%d: exchange %+v", v, ex)
		}
		// KIP-511: no tagged fields in the response header, so the body's
		// error code follows the correlation id directly.
		if ex.out[8] != 0 || ex.out[9] != 0 {
			t.Fatalf("v%d: error code bytes %x", v, ex.out[8:10])
		}
		corr, resp := decodeOut(t, ex.out, 18, v)
		av := resp.(*kmsg.ApiVersionsResponse)
		if corr != 70+int32(v) || av.ErrorCode != 0 {
			t.Fatalf("v%d: corr %d error %d", v, corr, av.ErrorCode)
		}
		if !sameKeys(av.ApiKeys, f.srv.advertisedVersions()) {
			t.Fatalf("v%d: api keys %+v", v, av.ApiKeys)
		}
		if v >= 3 && (av.FinalizedFeaturesEpoch != 3 || len(av.SupportedFeatures) != 1 || len(av.FinalizedFeatures) != 1) {
			t.Fatalf("v%d: backend features not passed: %+v", v, av)
		}
	}
}

// TestHandleApiVersionsTooNew: a client newer than kmsg gets a v0 answer
// with UNSUPPORTED_VERSION and our ApiVersions range (KIP-511).
func TestHandleApiVersionsTooNew(t *testing.T) {
	f := newFx(t)
	h := f.conn(t)
	frame := bytes.Join([][]byte{
		{0, 0, 0, 0},
		rawHeader(18, 99, 12, kmsg.StringPtr("future-client"), []byte{0}),
		{0x03, 'f', 'x', 0x02, '9', 0}, // a v3-shaped body; never decoded
	}, nil)
	copy(frame, []byte{0, 0, 0, byte(len(frame) - 4)})
	ex := h.run(handleApiVersions, frame, nil)
	if ex.err != nil || !ex.done || ex.slots != 1 {
		t.Fatalf("exchange %+v", ex)
	}
	corr, resp := decodeOut(t, ex.out, 18, 0)
	av := resp.(*kmsg.ApiVersionsResponse)
	want := []kmsg.ApiVersionsResponseApiKey{{ApiKey: 18, MinVersion: 0, MaxVersion: kmsg.NewPtrApiVersionsRequest().MaxVersion()}}
	if corr != 12 || av.ErrorCode != kerr.UnsupportedVersion.Code || !sameKeys(av.ApiKeys, want) {
		t.Fatalf("answer corr %d %+v", corr, av)
	}
}

// findCoordinatorAnswer answers each key with a broker chosen by keyBroker
// (-1: COORDINATOR_NOT_AVAILABLE).
func findCoordinatorAnswer(t testing.TB, keyBroker map[string]int32) answerFunc {
	return func(_ int32, frame []byte) []byte {
		hdr, kreq := decodeFrame(t, frame)
		req := kreq.(*kmsg.FindCoordinatorRequest)
		resp := kmsg.NewPtrFindCoordinatorResponse()
		one := func(key string) (int32, string, int32, int16) {
			b, ok := keyBroker[key]
			if !ok || b < 0 {
				return -1, "", -1, kerr.CoordinatorNotAvailable.Code
			}
			return b, fmt.Sprintf("b%d.kafka.internal", b), 19000 + b, 0
		}
		if hdr.version < 4 {
			resp.NodeID, resp.Host, resp.Port, resp.ErrorCode = one(req.CoordinatorKey)
		}
		for _, k := range req.CoordinatorKeys {
			co := kmsg.NewFindCoordinatorResponseCoordinator()
			co.Key = k
			co.NodeID, co.Host, co.Port, co.ErrorCode = one(k)
			resp.Coordinators = append(resp.Coordinators, co)
		}
		return respFrame(resp, hdr.version, hdr.corr)
	}
}

func TestHandleFindCoordinator(t *testing.T) {
	maxV := kmsg.NewPtrFindCoordinatorRequest().MaxVersion()
	keyBroker := map[string]int32{"g-101": 101, "g-103": 103, "g-100": 100, "g-none": -1}
	for v := int16(0); v <= maxV; v++ {
		for _, typ := range []int8{coordinatorGroup, coordinatorTxn} {
			if v == 0 && typ != coordinatorGroup {
				continue // v0 has no coordinator type
			}
			t.Run(fmt.Sprintf("v%d type %d", v, typ), func(t *testing.T) {
				f := newFx(t)
				h := f.conn(t)
				f.srv.setCoordinator(f.backend, typ, "g-none", 104) // stale entry to be dropped
				req := kmsg.NewPtrFindCoordinatorRequest()
				req.CoordinatorType = typ
				keys := []string{"g-101", "g-103", "g-none", "g-100"}
				if v < 4 {
					keys = keys[:1]
					req.CoordinatorKey = keys[0]
				} else {
					req.CoordinatorKeys = keys
				}
				ex := h.run(handleFindCoordinator, reqFrame(req, v, 8), findCoordinatorAnswer(t, keyBroker))
				if ex.err != nil || !ex.done || ex.outErr != nil || len(ex.sent[100]) != 1 {
					t.Fatalf("exchange %+v", ex)
				}
				noBackendHosts(t, ex.out)
				_, resp := decodeOut(t, ex.out, 10, v)
				m := resp.(*kmsg.FindCoordinatorResponse)
				type co struct {
					key  string
					node int32
					host string
					port int32
					code int16
				}
				var got []co
				if v < 4 {
					got = append(got, co{keys[0], m.NodeID, m.Host, m.Port, m.ErrorCode})
				}
				for _, c := range m.Coordinators {
					got = append(got, co{c.Key, c.NodeID, c.Host, c.Port, c.ErrorCode})
				}
				if len(got) != len(keys) {
					t.Fatalf("answers %+v for keys %v", got, keys)
				}
				for i, c := range got {
					real := keyBroker[keys[i]]
					if real < 0 {
						if c.code != kerr.CoordinatorNotAvailable.Code || c.node != -1 {
							t.Fatalf("%s: error answer changed: %+v", c.key, c)
						}
						if _, ok := f.srv.coords.get(coordKey{f.backend, typ, c.key}); ok {
							t.Fatalf("%s: COORDINATOR_NOT_AVAILABLE left a cached coordinator", c.key)
						}
						continue
					}
					want := f.expectPeer(real)
					host, port := f.expectEndpoint(t, want)
					if c.code != 0 || c.node != want || c.host != host || c.port != port {
						t.Fatalf("%s: coordinator %d presented as %+v, want peer %d at %s:%d", c.key, real, c, want, host, port)
					}
					if id, ok := f.srv.coords.get(coordKey{f.backend, typ, c.key}); !ok || id != real {
						t.Fatalf("%s: coordinator cache has %v, want the real broker %d", c.key, id, real)
					}
				}
			})
		}
	}
}

// TestHandleFindCoordinatorShareGroup: share-group coordinators (type 2)
// are presented but not cached: the proxy does not route share groups.
func TestHandleFindCoordinatorShareGroup(t *testing.T) {
	f := newFx(t)
	h := f.conn(t)
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorType = 2
	req.CoordinatorKeys = []string{"g-101"}
	ex := h.run(handleFindCoordinator, reqFrame(req, 6, 1), findCoordinatorAnswer(t, map[string]int32{"g-101": 101}))
	if ex.err != nil || !ex.done {
		t.Fatalf("exchange %+v", ex)
	}
	_, resp := decodeOut(t, ex.out, 10, 6)
	if c := resp.(*kmsg.FindCoordinatorResponse).Coordinators[0]; c.NodeID != 1 {
		t.Fatalf("share coordinator presented as %d, want 1", c.NodeID)
	}
	if _, ok := f.srv.coords.get(coordKey{f.backend, 2, "g-101"}); ok {
		t.Fatal("share-group coordinator cached")
	}
}

func TestHandleDescribeCluster(t *testing.T) {
	maxV := kmsg.NewPtrDescribeClusterRequest().MaxVersion()
	for v := int16(0); v <= maxV; v++ {
		for _, clusterID := range []string{"", "proxy-cluster"} {
			t.Run(fmt.Sprintf("v%d %q", v, clusterID), func(t *testing.T) {
				f := newFx(t, withClusterID(clusterID))
				h := f.conn(t)
				req := kmsg.NewPtrDescribeClusterRequest()
				if v >= 1 {
					req.EndpointType = 2 // controllers: answered with the peers too (KIP-919)
				}
				answer := kmsg.NewPtrDescribeClusterResponse()
				answer.ClusterID, answer.ControllerID = "backend-cluster-id", 103
				for id := int32(100); id <= 104; id++ {
					answer.Brokers = append(answer.Brokers, kmsg.DescribeClusterResponseBroker{NodeID: id, Host: fmt.Sprintf("b%d.kafka.internal", id), Port: 19000 + id})
				}
				frame := reqFrame(req, v, 6)
				ex := h.run(handleDescribeCluster, frame, fixedAnswer(answer))
				if ex.err != nil || !ex.done || ex.outErr != nil || len(ex.sent[100]) != 1 || !bytes.Equal(ex.sent[100][0], frame) {
					t.Fatalf("exchange %+v", ex)
				}
				noBackendHosts(t, ex.out)
				_, resp := decodeOut(t, ex.out, 60, v)
				m := resp.(*kmsg.DescribeClusterResponse)
				var ids []int32
				for _, b := range m.Brokers {
					ids = append(ids, b.NodeID)
					host, port := f.expectEndpoint(t, b.NodeID)
					if b.Host != host || b.Port != port {
						t.Fatalf("broker %d = %s:%d", b.NodeID, b.Host, b.Port)
					}
				}
				if !slices.Equal(ids, f.view.liveIDs()) {
					t.Fatalf("brokers %v, want live peers %v", ids, f.view.liveIDs())
				}
				if m.ControllerID != f.expectPeer(103) {
					t.Fatalf("controller %d, want %d", m.ControllerID, f.expectPeer(103))
				}
				wantCluster := "backend-cluster-id"
				if clusterID != "" {
					wantCluster = clusterID
				}
				if m.ClusterID != wantCluster {
					t.Fatalf("cluster id %q, want %q", m.ClusterID, wantCluster)
				}
			})
		}
	}
}

// TestRewriteMalformedResponse: a backend answer that does not decode is an
// ErrMalformed that closes the connection, not a panic.
func TestRewriteMalformedResponse(t *testing.T) {
	f := newFx(t)
	h := f.conn(t)
	ex := h.run(handleMetadata, reqFrame(kmsg.NewPtrMetadataRequest(), 12, 1), func(_ int32, req []byte) []byte {
		return []byte{0, 0, 0, 7, 0, 0, 0, 1, 0, 0xff, 0xff}
	})
	if ex.err != nil || !ex.done || !errors.Is(ex.outErr, ErrMalformed) || ex.out != nil {
		t.Fatalf("exchange %+v, want the slot finished with ErrMalformed", ex)
	}
}

func sameKeys(a, b []kmsg.ApiVersionsResponseApiKey) bool {
	return slices.EqualFunc(a, b, func(x, y kmsg.ApiVersionsResponseApiKey) bool {
		return x.ApiKey == y.ApiKey && x.MinVersion == y.MinVersion && x.MaxVersion == y.MaxVersion
	})
}

// TestHandleProduceInvalidUTF8Topic: a client can name any bytes as a
// topic. handleProduce counts bytes per topic name before the backend has
// validated it, and Metrics.topic hands the name to Prometheus as a label
// value, which panics for invalid UTF-8. The panic is on the connection's
// reader goroutine, so one Produce request from any client crashes the
// whole proxy. (Found by FuzzProduceRequest.)
func TestHandleProduceInvalidUTF8Topic(t *testing.T) {
	f := newFx(t)
	h := f.conn(t)
	frame := reqFrame(produceReq(-1, fxPart{"bad\xfftopic", [16]byte{}, 0, []byte("x")}), 9, 1)
	var ex exchange
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("Produce to topic %q panicked: %v", "bad\xfftopic", r)
			}
		}()
		ex = h.run(handleProduce, frame, produceAnswer(t))
	}()
	if ex.err != nil || !ex.done || ex.outErr != nil {
		t.Fatalf("exchange %+v", ex)
	}
}

// TestFixFetchInvalidUTF8Topic: the same panic from a Fetch answer, on the
// upstream reader goroutine. (Found by FuzzFetchResponse.)
func TestFixFetchInvalidUTF8Topic(t *testing.T) {
	f := newFx(t)
	c := &clientConn{s: f.srv}
	resp := fetchResp(11)
	ft := kmsg.NewFetchResponseTopic()
	ft.Topic = "bad\xfftopic"
	ft.Partitions = []kmsg.FetchResponseTopicPartition{fetchPart(0, 0, -1, -1, []byte("records"))}
	resp.Topics = []kmsg.FetchResponseTopic{ft}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Fetch answer for topic %q panicked: %v", ft.Topic, r)
		}
	}()
	fixFetch(reqOn(c, 1, resp.Version), target{be: f.backend, broker: -1}, resp)
}

// TestUpdateMetadataSparsePartition: the leader cache is a slice indexed by
// partition id and sized by the largest id in the answer, so one partition
// numbered 2^31-1 in a backend Metadata answer (or one relayed for a
// client) allocates and fills 8 GiB. Here a partition numbered 1<<22 costs
// 16 MiB; a topic with one partition should cost bytes.
func TestUpdateMetadataSparsePartition(t *testing.T) {
	f := newFx(t)
	m := kmsg.NewPtrMetadataResponse()
	m.Version = 12
	tp := kmsg.NewMetadataResponseTopic()
	tp.Topic = kmsg.StringPtr("sparse")
	p := kmsg.NewMetadataResponseTopicPartition()
	p.Partition, p.Leader = 1<<22, 101
	tp.Partitions = []kmsg.MetadataResponseTopicPartition{p}
	m.Topics = []kmsg.MetadataResponseTopic{tp}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f.backend.updateMetadata(m, false)
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("caching one partition (id %d) allocated %d bytes", p.Partition, d)
	}
}

// TestTopicIDsTranslated: Produce and Fetch at the versions that name
// topics by id reach the backend with its own id for the client's virtual
// one, and the answers reach the client with the virtual id again: in
// place on the single-target path (the client's bytes forwarded as they
// are), rebuilt on a split. A backend never sees a virtual id; an id the
// proxy does not know is answered UNKNOWN_TOPIC_ID without a request.
func TestTopicIDsTranslated(t *testing.T) {
	f := newFx(t)
	h := f.conn(t)
	vid := virtualTopicID("orders")
	var seen [][16]byte
	echo := func(_ int32, frame []byte) []byte {
		hdr, kr := decodeFrame(t, frame)
		switch req := kr.(type) {
		case *kmsg.ProduceRequest:
			resp := kmsg.NewPtrProduceResponse()
			for _, rt := range req.Topics {
				seen = append(seen, rt.TopicID)
				ot := kmsg.NewProduceResponseTopic()
				ot.TopicID = rt.TopicID
				for _, p := range rt.Partitions {
					op := kmsg.NewProduceResponseTopicPartition()
					op.Partition = p.Partition
					ot.Partitions = append(ot.Partitions, op)
				}
				resp.Topics = append(resp.Topics, ot)
			}
			return respFrame(resp, hdr.version, hdr.corr)
		case *kmsg.FetchRequest:
			resp := kmsg.NewPtrFetchResponse()
			for _, rt := range req.Topics {
				seen = append(seen, rt.TopicID)
				ot := kmsg.NewFetchResponseTopic()
				ot.TopicID = rt.TopicID
				for _, p := range rt.Partitions {
					op := kmsg.NewFetchResponseTopicPartition()
					op.Partition, op.HighWatermark, op.RecordBatches = p.Partition, 10, benchRecordBatch(20)
					ot.Partitions = append(ot.Partitions, op)
				}
				resp.Topics = append(resp.Topics, ot)
			}
			return respFrame(resp, hdr.version, hdr.corr)
		}
		t.Fatalf("unexpected %T", kr)
		return nil
	}
	wantSeen := func(what string, n int) {
		t.Helper()
		if len(seen) != n {
			t.Fatalf("%s: the backend saw %d topics, want %d", what, len(seen), n)
		}
		for _, id := range seen {
			if id != fxOrdersID {
				t.Fatalf("%s: the backend saw id %x, want its own %x", what, id, fxOrdersID)
			}
		}
		seen = nil
	}

	// Produce v13, one partition: forwarded as sent, but for the id.
	preq := kmsg.NewPtrProduceRequest()
	preq.Acks = -1
	pt := kmsg.NewProduceRequestTopic()
	pt.TopicID = vid
	pt.Partitions = []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: benchRecordBatch(10)}}
	preq.Topics = []kmsg.ProduceRequestTopic{pt}
	ex := h.run(handleProduce, reqFrame(preq, 13, 7), echo)
	if ex.err != nil || !ex.done || ex.outErr != nil {
		t.Fatalf("produce v13: %+v", ex)
	}
	wantSeen("produce v13", 1)
	_, resp := decodeOut(t, ex.out, 0, 13)
	if got := resp.(*kmsg.ProduceResponse).Topics[0].TopicID; got != vid {
		t.Fatalf("produce v13 answered id %x, want the virtual %x", got, vid)
	}

	// Fetch at every id version, partitions led by two brokers: split.
	for v := int16(13); v <= kmsg.NewPtrFetchRequest().MaxVersion(); v++ {
		freq := kmsg.NewPtrFetchRequest()
		ft := kmsg.NewFetchRequestTopic()
		ft.TopicID = vid
		for p := int32(0); p < 2; p++ {
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition, fp.PartitionMaxBytes = p, 1<<20
			ft.Partitions = append(ft.Partitions, fp)
		}
		freq.Topics = []kmsg.FetchRequestTopic{ft}
		ex = h.run(handleFetch, reqFrame(freq, v, 8), echo)
		if ex.err != nil || !ex.done || ex.outErr != nil {
			t.Fatalf("fetch v%d: %+v", v, ex)
		}
		wantSeen(fmt.Sprintf("fetch v%d", v), 2)
		_, resp = decodeOut(t, ex.out, 1, v)
		fr := resp.(*kmsg.FetchResponse)
		if len(fr.Topics) != 1 || fr.Topics[0].TopicID != vid || len(fr.Topics[0].Partitions) != 2 {
			t.Fatalf("fetch v%d answered %+v, want one topic with the virtual id and both partitions", v, fr.Topics)
		}
		// And one partition: the answer goes as it is but for the id.
		freq.Topics[0].Partitions = freq.Topics[0].Partitions[:1]
		ex = h.run(handleFetch, reqFrame(freq, v, 9), echo)
		wantSeen(fmt.Sprintf("fetch v%d, one partition", v), 1)
		_, resp = decodeOut(t, ex.out, 1, v)
		if got := resp.(*kmsg.FetchResponse).Topics[0].TopicID; got != vid {
			t.Fatalf("fetch v%d, one partition: answered id %x, want %x", v, got, vid)
		}
	}

	// An id nobody presented: answered here.
	preq.Topics[0].TopicID = [16]byte{0xde, 0xad}
	ex = h.run(handleProduce, reqFrame(preq, 13, 10), nil)
	if ex.err != nil || len(ex.sent) != 0 || !ex.done {
		t.Fatalf("unknown id: err %v, sent %v, done %v", ex.err, ex.sent, ex.done)
	}
	_, resp = decodeOut(t, ex.out, 0, 13)
	if code := resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownTopicID.Code {
		t.Fatalf("unknown id answered code %d, want UNKNOWN_TOPIC_ID", code)
	}
}

// TestVirtualTopicIDs: Metadata presents one id per topic name, not the
// backend's, stable and the same on every peer; a Metadata request naming
// that id is answered for the topic.
func TestVirtualTopicIDs(t *testing.T) {
	f := newFx(t)
	m := fxMetadata()
	presentMetadata(reqOn(f.conn(t).c, 3, m.Version), f.backend, m)
	for _, tp := range m.Topics {
		if tp.TopicID != virtualTopicID(*tp.Topic) || tp.TopicID == fxOrdersID || tp.TopicID == fxEventsID {
			t.Fatalf("%s presented with id %x, want the virtual %x", *tp.Topic, tp.TopicID, virtualTopicID(*tp.Topic))
		}
	}
	other := newFx(t, withNodeID(1))
	be, name := reqOn(other.conn(t).c, 3, 0).topicOfVID(virtualTopicID("orders"))
	if be != other.backend || name != "orders" {
		t.Fatalf("another peer resolves the virtual id to %v %q", be, name)
	}
	if be, _ := reqOn(other.conn(t).c, 3, 0).topicOfVID([16]byte{9}); be != nil {
		t.Fatal("an unknown id resolved")
	}
}
