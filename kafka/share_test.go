package kafka

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// shareSent is what one broker was sent for one client request.
type shareSent struct {
	epoch   int32
	maxWait int32
	parts   map[[2]any]int // (real topic id, partition) → ack batches
	forgot  map[[2]any]bool
}

func sharePartsOf(req *kmsg.ShareFetchRequest) shareSent {
	s := shareSent{epoch: req.ShareSessionEpoch, maxWait: req.MaxWaitMillis, parts: map[[2]any]int{}, forgot: map[[2]any]bool{}}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			s.parts[[2]any{t.TopicID, p.Partition}] = len(p.AcknowledgementBatches)
		}
	}
	for _, f := range req.ForgottenTopicsData {
		for _, p := range f.Partitions {
			s.forgot[[2]any{f.TopicID, p}] = true
		}
	}
	return s
}

// shareFetchReq is a ShareFetch of group g, member m at epoch.
func shareFetchReq(epoch int32, add []shareTP, acked []shareTP, forget []shareTP) *kmsg.ShareFetchRequest {
	req := kmsg.NewPtrShareFetchRequest()
	req.GroupID, req.MemberID = kmsg.StringPtr("g"), kmsg.StringPtr("m")
	req.ShareSessionEpoch, req.MaxWaitMillis, req.MaxRecords = epoch, 5000, 100
	put := func(tp shareTP, acks bool) {
		var t *kmsg.ShareFetchRequestTopic
		for i := range req.Topics {
			if req.Topics[i].TopicID == tp.vid {
				t = &req.Topics[i]
			}
		}
		if t == nil {
			req.Topics = append(req.Topics, kmsg.ShareFetchRequestTopic{TopicID: tp.vid})
			t = &req.Topics[len(req.Topics)-1]
		}
		p := kmsg.NewShareFetchRequestTopicPartition()
		p.Partition = tp.part
		if acks {
			p.AcknowledgementBatches = []kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch{{FirstOffset: 0, LastOffset: 4, AcknowledgeTypes: []int8{1}}}
		}
		t.Partitions = append(t.Partitions, p)
	}
	for _, tp := range add {
		put(tp, false)
	}
	for _, tp := range acked {
		put(tp, true)
	}
	for _, tp := range forget {
		req.ForgottenTopicsData = append(req.ForgottenTopicsData, kmsg.ShareFetchRequestForgottenTopicsData{TopicID: tp.vid, Partitions: []int32{tp.part}})
	}
	return req
}

// TestShareFetchSessions: the proxy holds the client's share session and
// one backend session per leader broker: each broker gets its own epochs
// and only what changed for it, topic ids are the cluster's upstream and
// virtual downstream, a backend session error is repaired on the next
// request without failing the client's session, and closing closes every
// backend session.
func TestShareFetchSessions(t *testing.T) {
	fix := newFx(t)
	h := fix.conn(t)
	vOrders, vEvents := virtualTopicID("orders"), virtualTopicID("events")
	o := func(p int32) shareTP { return shareTP{vOrders, p} }
	ev := func(p int32) shareTP { return shareTP{vEvents, p} }
	real := func(id [16]byte, p int32) [2]any { return [2]any{id, p} }

	// failEpoch makes a broker answer INVALID_SHARE_SESSION_EPOCH once.
	failEpoch := map[int32]bool{}
	var sent map[int32]shareSent
	answer := func(broker int32, frame []byte) []byte {
		hdr, kreq := decodeFrame(t, frame)
		resp := kmsg.NewPtrShareFetchResponse()
		resp.AcquisitionLockTimeoutMillis = 30000 + broker
		switch req := kreq.(type) {
		case *kmsg.ShareFetchRequest:
			sent[broker] = sharePartsOf(req)
			if failEpoch[broker] {
				delete(failEpoch, broker)
				resp.ErrorCode = kerr.InvalidShareSessionEpoch.Code
				return respFrame(resp, hdr.version, hdr.corr)
			}
			for _, rt := range req.Topics {
				t := kmsg.ShareFetchResponseTopic{TopicID: rt.TopicID}
				for _, rp := range rt.Partitions {
					p := kmsg.NewShareFetchResponseTopicPartition()
					p.Partition = rp.Partition
					p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = -1, -1
					if broker == 101 {
						// Moved: the answer names the new leader.
						p.ErrorCode = kerr.NotLeaderForPartition.Code
						p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = 100, 8
						resp.NodeEndpoints = []kmsg.ShareFetchResponseNodeEndpoint{{NodeID: 100, Host: "b100.kafka.internal", Port: 19100}}
					}
					t.Partitions = append(t.Partitions, p)
				}
				resp.Topics = append(resp.Topics, t)
			}
			return respFrame(resp, hdr.version, hdr.corr)
		case *kmsg.ShareAcknowledgeRequest:
			ack := kmsg.NewPtrShareAcknowledgeResponse()
			s := shareSent{epoch: req.ShareSessionEpoch, parts: map[[2]any]int{}}
			for _, rt := range req.Topics {
				at := kmsg.ShareAcknowledgeResponseTopic{TopicID: rt.TopicID}
				for _, rp := range rt.Partitions {
					s.parts[[2]any{rt.TopicID, rp.Partition}] = len(rp.AcknowledgementBatches)
					at.Partitions = append(at.Partitions, kmsg.NewShareAcknowledgeResponseTopicPartition())
					at.Partitions[len(at.Partitions)-1].Partition = rp.Partition
				}
				ack.Topics = append(ack.Topics, at)
			}
			sent[broker] = s
			return respFrame(ack, hdr.version, hdr.corr)
		}
		t.Fatalf("unexpected request %T", kreq)
		return nil
	}
	const v = 1
	fetch := func(req *kmsg.ShareFetchRequest) *kmsg.ShareFetchResponse {
		t.Helper()
		sent = map[int32]shareSent{}
		ex := h.run(handleShareFetch, reqFrame(req, v, 7), answer)
		if ex.err != nil || !ex.done || ex.outErr != nil {
			t.Fatalf("share fetch: err %v, done %v, out err %v", ex.err, ex.done, ex.outErr)
		}
		_, resp := decodeOut(t, ex.out, 78, v)
		return resp.(*kmsg.ShareFetchResponse)
	}
	parts := func(resp *kmsg.ShareFetchResponse) map[shareTP]kmsg.ShareFetchResponseTopicPartition {
		out := map[shareTP]kmsg.ShareFetchResponseTopicPartition{}
		for _, rt := range resp.Topics {
			for _, p := range rt.Partitions {
				out[shareTP{rt.TopicID, p.Partition}] = p
			}
		}
		return out
	}

	// Epoch 0: orders 0 (leader 100), 1 (101), events 0 (100).
	resp := fetch(shareFetchReq(0, []shareTP{o(0), o(1), ev(0)}, nil, nil))
	if resp.ErrorCode != 0 || len(sent) != 2 {
		t.Fatalf("open: error %d, sent to %v", resp.ErrorCode, sent)
	}
	if s := sent[100]; s.epoch != 0 || len(s.parts) != 2 || s.parts[real(fxOrdersID, 0)] != 0 || s.maxWait != shareSplitMaxWait {
		t.Errorf("broker 100 open: %+v", s)
	}
	if _, ok := sent[100].parts[real(fxEventsID, 0)]; !ok {
		t.Errorf("broker 100 open lacks events 0 by its real id: %+v", sent[100])
	}
	if s := sent[101]; s.epoch != 0 || len(s.parts) != 1 {
		t.Errorf("broker 101 open: %+v", s)
	}
	got := parts(resp)
	if len(got) != 3 {
		t.Fatalf("answer partitions %v, want orders 0, 1 and events 0 by virtual id", got)
	}
	if p := got[o(1)]; p.ErrorCode != kerr.NotLeaderForPartition.Code || p.CurrentLeader.LeaderID != 0 {
		t.Errorf("orders 1: error %d, leader %d; want NOT_LEADER and peer 0 (co-located with broker 100)", p.ErrorCode, p.CurrentLeader.LeaderID)
	}
	if len(resp.NodeEndpoints) != 1 || resp.NodeEndpoints[0].NodeID != 0 || resp.NodeEndpoints[0].Host != "p0.proxy.test" {
		t.Errorf("node endpoints %+v, want peer 0 only", resp.NodeEndpoints)
	}
	if resp.AcquisitionLockTimeoutMillis != 30100 {
		t.Errorf("acquisition lock %d, want the shortest (30100)", resp.AcquisitionLockTimeoutMillis)
	}

	// Epoch 1: forget events 0, add orders 3 (leader 103), ack orders 0.
	resp = fetch(shareFetchReq(1, []shareTP{o(3)}, []shareTP{o(0)}, []shareTP{ev(0)}))
	if resp.ErrorCode != 0 || len(sent) != 3 {
		t.Fatalf("epoch 1: error %d, sent to %v", resp.ErrorCode, sent)
	}
	if s := sent[100]; s.epoch != 1 || len(s.parts) != 1 || s.parts[real(fxOrdersID, 0)] != 1 || !s.forgot[real(fxEventsID, 0)] {
		t.Errorf("broker 100 at epoch 1: %+v (want the ack of orders 0 and events 0 forgotten)", s)
	}
	if s := sent[101]; s.epoch != 1 || len(s.parts) != 0 || len(s.forgot) != 0 {
		t.Errorf("broker 101 at epoch 1: %+v (want nothing new)", s)
	}
	if s := sent[103]; s.epoch != 0 || len(s.parts) != 1 {
		t.Errorf("broker 103 opened: %+v", s)
	}

	// A wrong epoch is refused here.
	resp = fetch(shareFetchReq(7, nil, nil, nil))
	if resp.ErrorCode != kerr.InvalidShareSessionEpoch.Code || len(sent) != 0 {
		t.Errorf("wrong epoch: error %d, sent to %v", resp.ErrorCode, sent)
	}

	// ShareAcknowledge at epoch 2 on the same sessions.
	ack := kmsg.NewPtrShareAcknowledgeRequest()
	ack.GroupID, ack.MemberID, ack.ShareSessionEpoch = kmsg.StringPtr("g"), kmsg.StringPtr("m"), 2
	ack.Topics = []kmsg.ShareAcknowledgeRequestTopic{{TopicID: vOrders, Partitions: []kmsg.ShareAcknowledgeRequestTopicPartition{
		{Partition: 1, AcknowledgementBatches: []kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch{{FirstOffset: 0, LastOffset: 1, AcknowledgeTypes: []int8{2}}}},
		{Partition: 2, AcknowledgementBatches: []kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch{{FirstOffset: 0, LastOffset: 1, AcknowledgeTypes: []int8{1}}}},
	}}}
	sent = map[int32]shareSent{}
	ex := h.run(handleShareAcknowledge, reqFrame(ack, v, 8), answer)
	if ex.err != nil || !ex.done || ex.outErr != nil {
		t.Fatalf("share acknowledge: %v %v %v", ex.err, ex.done, ex.outErr)
	}
	_, kack := decodeOut(t, ex.out, 79, v)
	aresp := kack.(*kmsg.ShareAcknowledgeResponse)
	if s := sent[101]; len(sent) != 1 || s.epoch != 2 || s.parts[real(fxOrdersID, 1)] != 1 {
		t.Errorf("acknowledge sent %v, want broker 101 at epoch 2 only", sent)
	}
	ackCodes := map[int32]int16{}
	for _, rt := range aresp.Topics {
		if rt.TopicID != vOrders {
			t.Errorf("acknowledge answer names topic %x, want the virtual id", rt.TopicID)
		}
		for _, p := range rt.Partitions {
			ackCodes[p.Partition] = p.ErrorCode
		}
	}
	// Orders 2's leader (102) was never fetched from in this session.
	if ackCodes[1] != 0 || ackCodes[2] != kerr.InvalidShareSessionEpoch.Code {
		t.Errorf("acknowledge codes %v", ackCodes)
	}

	// Epoch 3: broker 100 has lost its session; the ack it carried fails,
	// the client's session does not.
	failEpoch[100] = true
	resp = fetch(shareFetchReq(3, nil, []shareTP{o(0)}, nil))
	if resp.ErrorCode != 0 {
		t.Fatalf("backend session error became the client's: %d", resp.ErrorCode)
	}
	if p := parts(resp)[o(0)]; p.AcknowledgeErrorCode != kerr.InvalidShareSessionEpoch.Code {
		t.Errorf("orders 0 ack error %d, want INVALID_SHARE_SESSION_EPOCH", p.AcknowledgeErrorCode)
	}
	if s := sent[101]; s.epoch != 3 {
		t.Errorf("broker 101 at epoch %d, want 3", s.epoch)
	}
	// Epoch 4: broker 100's session is reopened with all it serves.
	resp = fetch(shareFetchReq(4, nil, nil, nil))
	if s := sent[100]; resp.ErrorCode != 0 || s.epoch != 0 || len(s.parts) != 1 || s.parts[real(fxOrdersID, 0)] != 0 {
		t.Errorf("broker 100 reopened: error %d, %+v", resp.ErrorCode, s)
	}

	// Epoch -1 closes every backend session.
	resp = fetch(shareFetchReq(-1, nil, nil, nil))
	if resp.ErrorCode != 0 || len(sent) != 3 {
		t.Fatalf("close: error %d, sent to %v", resp.ErrorCode, sent)
	}
	for b, s := range sent {
		if s.epoch != -1 {
			t.Errorf("broker %d closed with epoch %d", b, s.epoch)
		}
	}
	resp = fetch(shareFetchReq(5, nil, nil, nil))
	if resp.ErrorCode != kerr.ShareSessionNotFound.Code {
		t.Errorf("after close: error %d, want SHARE_SESSION_NOT_FOUND", resp.ErrorCode)
	}
}

// TestShareFetchLeaderMoves: a partition whose leader moved is forgotten
// by its old broker's session and added to the new one's; a backend
// session left with nothing is closed.
func TestShareFetchLeaderMoves(t *testing.T) {
	fix := newFx(t)
	h := fix.conn(t)
	vOrders := virtualTopicID("orders")
	var sent map[int32]shareSent
	answer := func(broker int32, frame []byte) []byte {
		hdr, kreq := decodeFrame(t, frame)
		sent[broker] = sharePartsOf(kreq.(*kmsg.ShareFetchRequest))
		return respFrame(kmsg.NewPtrShareFetchResponse(), hdr.version, hdr.corr)
	}
	run := func(req *kmsg.ShareFetchRequest) {
		t.Helper()
		sent = map[int32]shareSent{}
		if ex := h.run(handleShareFetch, reqFrame(req, 0, 9), answer); ex.err != nil || !ex.done || ex.outErr != nil {
			t.Fatalf("share fetch: %v %v %v", ex.err, ex.done, ex.outErr)
		}
	}
	run(shareFetchReq(0, []shareTP{{vOrders, 1}}, nil, nil))
	if s := sent[101]; len(sent) != 1 || s.epoch != 0 || s.maxWait != 5000 {
		t.Fatalf("open: %v (one broker: MaxWait kept)", sent)
	}
	// Orders 1 moves to broker 100.
	md := fxMetadata()
	md.Topics[0].Partitions[1].Leader = 100
	fix.backend.updateMetadata(md, true)
	run(shareFetchReq(1, nil, nil, nil))
	if s := sent[100]; s.epoch != 0 || s.parts[[2]any{fxOrdersID, int32(1)}] != 0 || len(s.parts) != 1 {
		t.Errorf("new leader: %+v", s)
	}
	if s := sent[101]; s.epoch != -1 {
		t.Errorf("old leader's session: %+v, want closed", s)
	}
}

// TestShareGroupHeartbeatRoutes: a heartbeat goes to the group's
// coordinator with its assignment's topic ids made virtual; one
// subscribing to a topic of another cluster is refused here.
func TestShareGroupHeartbeatRoutes(t *testing.T) {
	fix := newFx(t)
	fix.srv.setCoordinator(fix.backend, coordinatorGroup, "g", 101)
	h := fix.conn(t)
	h.c.clientHost = "/10.1.2.3"
	req := kmsg.NewPtrShareGroupHeartbeatRequest()
	req.GroupID, req.MemberID, req.SubscribedTopicNames = "g", "m", []string{"orders"}
	ex := h.run(handleShareGroupHeartbeat, reqFrame(req, 1, 3), func(broker int32, frame []byte) []byte {
		if broker != 101 {
			t.Errorf("heartbeat sent to broker %d, want the coordinator 101", broker)
		}
		hdr, _ := decodeFrame(t, frame)
		resp := kmsg.NewPtrShareGroupHeartbeatResponse()
		resp.Assignment = &kmsg.ShareGroupHeartbeatResponseAssignment{TopicPartitions: []kmsg.ShareGroupHeartbeatResponseAssignmentTopicPartition{{TopicID: fxOrdersID, Partitions: []int32{0, 1}}}}
		return respFrame(resp, hdr.version, hdr.corr)
	})
	if ex.err != nil || !ex.done || ex.outErr != nil {
		t.Fatalf("heartbeat: %v %v %v", ex.err, ex.done, ex.outErr)
	}
	_, kr := decodeOut(t, ex.out, 76, 1)
	if a := kr.(*kmsg.ShareGroupHeartbeatResponse).Assignment; a == nil || a.TopicPartitions[0].TopicID != virtualTopicID("orders") {
		t.Errorf("assignment %+v, want orders by its virtual id", a)
	}

	// ShareGroupDescribe reports the member's host as its heartbeats came,
	// and its assignment by virtual id.
	dreq := kmsg.NewPtrShareGroupDescribeRequest()
	dreq.GroupIDs = []string{"g"}
	ex = h.run(handleShareGroupDescribe, reqFrame(dreq, 1, 5), func(broker int32, frame []byte) []byte {
		hdr, _ := decodeFrame(t, frame)
		resp := kmsg.NewPtrShareGroupDescribeResponse()
		g := kmsg.NewShareGroupDescribeResponseGroup()
		g.GroupID = "g"
		m := kmsg.NewShareGroupDescribeResponseGroupMember()
		m.MemberID, m.ClientHost = "m", "/127.0.0.1"
		m.Assignment.TopicPartitions = []kmsg.ShareGroupDescribeResponseGroupMemberAssignmentTopicPartition{{TopicID: fxOrdersID, Topic: "orders", Partitions: []int32{0}}}
		g.Members = append(g.Members, m)
		resp.Groups = append(resp.Groups, g)
		return respFrame(resp, hdr.version, hdr.corr)
	})
	if ex.err != nil || !ex.done || ex.outErr != nil {
		t.Fatalf("describe: %v %v %v", ex.err, ex.done, ex.outErr)
	}
	_, kr = decodeOut(t, ex.out, 77, 1)
	dg := kr.(*kmsg.ShareGroupDescribeResponse).Groups
	if len(dg) != 1 || len(dg[0].Members) != 1 {
		t.Fatalf("describe answer %+v", dg)
	}
	if m := dg[0].Members[0]; m.ClientHost != "/10.1.2.3" || m.Assignment.TopicPartitions[0].TopicID != virtualTopicID("orders") {
		t.Errorf("described member host %q, assignment %x; want the client's host and the virtual id", m.ClientHost, m.Assignment.TopicPartitions[0].TopicID)
	}

	other, err := NewBackend(BackendConfig{Name: "other", Bootstrap: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	st := fxState()
	st.Routes.Topics = []fsm.TopicRoute{{Topic: "elsewhere", Cluster: "other"}}
	fix.view.st = st
	fix.srv.SetBackends([]*Backend{fix.backend, other})
	h = fix.conn(t)
	req.SubscribedTopicNames = []string{"orders", "elsewhere"}
	ex = h.run(handleShareGroupHeartbeat, reqFrame(req, 1, 4), func(int32, []byte) []byte {
		t.Error("a heartbeat spanning clusters was forwarded")
		return nil
	})
	if ex.err != nil || !ex.done || ex.outErr != nil {
		t.Fatalf("heartbeat: %v %v %v", ex.err, ex.done, ex.outErr)
	}
	_, kr = decodeOut(t, ex.out, 76, 1)
	resp := kr.(*kmsg.ShareGroupHeartbeatResponse)
	if resp.ErrorCode != kerr.InvalidRequest.Code || resp.ErrorMessage == nil {
		t.Errorf("spanning heartbeat: error %d, message %v; want INVALID_REQUEST with a message", resp.ErrorCode, resp.ErrorMessage)
	}
}

// TestShareSessionBounds: the share sessions a client grows on one
// connection are bounded, in number and in partitions, and refused with
// the errors a broker gives past its own limits.
func TestShareSessionBounds(t *testing.T) {
	fix := newFx(t)
	h := fix.conn(t)
	open := func(member string, tps []shareTP) *kmsg.ShareFetchResponse {
		t.Helper()
		req := shareFetchReq(0, tps, nil, nil)
		req.MemberID = kmsg.StringPtr(member)
		ex := h.run(handleShareFetch, reqFrame(req, 1, 1), func(_ int32, frame []byte) []byte {
			hdr, _ := decodeFrame(t, frame)
			return respFrame(kmsg.NewPtrShareFetchResponse(), hdr.version, hdr.corr)
		})
		if ex.err != nil || !ex.done || ex.outErr != nil {
			t.Fatalf("share fetch: %v %v %v", ex.err, ex.done, ex.outErr)
		}
		_, kr := decodeOut(t, ex.out, 78, 1)
		return kr.(*kmsg.ShareFetchResponse)
	}
	for i := range maxShareSessions {
		if resp := open(fmt.Sprintf("m%d", i), nil); resp.ErrorCode != 0 {
			t.Fatalf("session %d: error %d", i, resp.ErrorCode)
		}
	}
	if resp := open("one-too-many", nil); resp.ErrorCode != kerr.ShareSessionLimitReached.Code {
		t.Errorf("session past the limit: error %d, want SHARE_SESSION_LIMIT_REACHED", resp.ErrorCode)
	}
	// Reopening an existing session is no new session.
	if resp := open("m0", nil); resp.ErrorCode != 0 {
		t.Errorf("reopening m0: error %d", resp.ErrorCode)
	}
	many := make([]shareTP, maxSharePartitions+1)
	for i := range many {
		many[i] = shareTP{[16]byte{0xee}, int32(i)}
	}
	resp := open("m1", many)
	if resp.ErrorCode != kerr.InvalidRequest.Code || resp.ErrorMessage == nil {
		t.Errorf("too many partitions: error %d, message %v", resp.ErrorCode, resp.ErrorMessage)
	}
	h.c.share.mu.Lock()
	_, kept := h.c.share.m[shareKey{"g", "m1"}]
	h.c.share.mu.Unlock()
	if kept {
		t.Error("the session that grew past the bound was kept")
	}
}

// TestShareFetchRenewAndRecordLimit: a strict MaxRecords (record-limit
// mode) is divided among the brokers a fetch fans out to, and a fetch
// that only renews locks (KIP-1222) sends acknowledgements and nothing
// else, even for partitions a backend session has not been told of yet.
func TestShareFetchRenewAndRecordLimit(t *testing.T) {
	fix := newFx(t)
	h := fix.conn(t)
	vOrders := virtualTopicID("orders")
	var sent map[int32]*kmsg.ShareFetchRequest
	run := func(req *kmsg.ShareFetchRequest) *kmsg.ShareFetchResponse {
		t.Helper()
		sent = map[int32]*kmsg.ShareFetchRequest{}
		ex := h.run(handleShareFetch, reqFrame(req, 2, 9), func(broker int32, frame []byte) []byte {
			hdr, kreq := decodeFrame(t, frame)
			sent[broker] = kreq.(*kmsg.ShareFetchRequest)
			return respFrame(kmsg.NewPtrShareFetchResponse(), hdr.version, hdr.corr)
		})
		if ex.err != nil || !ex.done || ex.outErr != nil {
			t.Fatalf("share fetch: %v %v %v", ex.err, ex.done, ex.outErr)
		}
		_, kr := decodeOut(t, ex.out, 78, 2)
		return kr.(*kmsg.ShareFetchResponse)
	}
	req := shareFetchReq(0, []shareTP{{vOrders, 0}, {vOrders, 1}, {vOrders, 2}}, nil, nil)
	req.ShareAcquireMode, req.MaxRecords = 1, 10
	run(req)
	total := int32(0)
	for b, s := range sent {
		if s.MaxRecords < 3 || s.MaxRecords > 4 {
			t.Errorf("broker %d MaxRecords %d, want 10 divided among 3", b, s.MaxRecords)
		}
		total += s.MaxRecords
	}
	if total != 10 || len(sent) != 3 {
		t.Errorf("MaxRecords %d in total over %d brokers, want 10 over 3", total, len(sent))
	}

	// Renew at epoch 1: acks for orders 0 (broker 100), and orders 3 is
	// added (broker 103, not told yet): only the ack goes out.
	renew := shareFetchReq(1, []shareTP{{vOrders, 3}}, []shareTP{{vOrders, 0}}, nil)
	renew.IsRenewAck = true
	renew.MaxWaitMillis, renew.MaxRecords, renew.MinBytes, renew.MaxBytes = 0, 0, 0, 0
	resp := run(renew)
	if resp.ErrorCode != 0 || len(sent) != 1 || sent[100] == nil {
		t.Fatalf("renew: error %d, sent to %v; want broker 100 only", resp.ErrorCode, sent)
	}
	s := sent[100]
	if !s.IsRenewAck || s.ShareSessionEpoch != 1 || len(s.Topics) != 1 || len(s.Topics[0].Partitions) != 1 || len(s.Topics[0].Partitions[0].AcknowledgementBatches) == 0 {
		t.Errorf("renew sent %+v", s)
	}
	// The next fetch tells broker 103 of orders 3.
	run(shareFetchReq(2, nil, nil, nil))
	if s := sent[103]; s == nil || s.ShareSessionEpoch != 0 || len(s.Topics) != 1 {
		t.Errorf("after the renew, broker 103 got %+v", s)
	}
	if s := sent[100]; s == nil || s.ShareSessionEpoch != 2 {
		t.Errorf("after the renew, broker 100 got %+v", s)
	}
}
