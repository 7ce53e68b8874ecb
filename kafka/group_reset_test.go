package kafka

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// withReset puts a reset of group into the fixture's state.
func (f *cx) withReset(group string, state fsm.ResetState, removed ...string) {
	st := *f.view.st
	j := fsm.OffsetReset{Group: group, Topics: []string{"orders"}, To: fsm.ResetTo{Kind: fsm.ResetToEarliest}, State: state,
		Targets: []fsm.ResetTarget{{Topic: "orders", Partition: 0, Old: 5, New: 0}}, Created: 1}
	for _, m := range removed {
		j.Members = append(j.Members, fsm.ResetMember{ID: m, Protocol: fsm.ProtocolClassic})
	}
	st.OffsetResets = []fsm.OffsetReset{j}
	f.view.st = &st
}

// TestGroupResetHold: while a reset fences a group, its joins (classic and
// KIP-848) and offset fetches are answered COORDINATOR_LOAD_IN_PROGRESS by
// the proxy without reaching a backend; other groups pass, and once the
// reset is applied the group passes again.
func TestGroupResetHold(t *testing.T) {
	f := newCx(t, true)
	f.withReset("g", fsm.ResetFencing)
	h := f.conn(t)
	load := kerr.CoordinatorLoadInProgress.Code
	noCall := cxAnswer(nil)

	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.MemberID, join.ProtocolType = "g", "m-1", "consumer"
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{1}}}
	ex, resp := h.answered(join, 9, noCall)
	if jr := resp.(*kmsg.JoinGroupResponse); jr.ErrorCode != load || jr.MemberID != "m-1" || len(ex.sent) != 0 {
		t.Fatalf("held JoinGroup: %+v, sent %v", jr, ex.targets())
	}

	hb := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	hb.Group, hb.MemberID, hb.MemberEpoch = "g", "k-1", 0
	hb.SubscribedTopicNames = []string{"orders"}
	ex, resp = h.answered(hb, 0, noCall)
	if hr := resp.(*kmsg.ConsumerGroupHeartbeatResponse); hr.ErrorCode != load || len(ex.sent) != 0 {
		t.Fatalf("held KIP-848 join: %+v, sent %v", hr, ex.targets())
	}

	for _, v := range []int16{1, 7} {
		of := kmsg.NewPtrOffsetFetchRequest()
		of.Group = "g"
		of.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "orders", Partitions: []int32{0, 1}}}
		ex, resp = h.answered(of, v, noCall)
		or := resp.(*kmsg.OffsetFetchResponse)
		if len(ex.sent) != 0 || len(or.Topics) != 1 || or.Topics[0].Partitions[1].ErrorCode != load || (v >= 2 && or.ErrorCode != load) {
			t.Fatalf("held OffsetFetch v%d: %+v, sent %v", v, or, ex.targets())
		}
	}
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "orders", Partitions: []int32{0}}}}}
	ex, resp = h.answered(of, 8, noCall)
	if or := resp.(*kmsg.OffsetFetchResponse); len(ex.sent) != 0 || len(or.Groups) != 1 || or.Groups[0].ErrorCode != load {
		t.Fatalf("held OffsetFetch v8: %+v, sent %v", or, ex.targets())
	}

	// Another group is not held: its join reaches its coordinator.
	other := kmsg.NewPtrJoinGroupRequest()
	other.Group, other.ProtocolType = "h", "consumer"
	other.Protocols = join.Protocols
	ex, _ = h.answered(other, 9, cxAnswerWith(&kmsg.JoinGroupResponse{Generation: 1, MemberID: "x", LeaderID: "x"}))
	if len(ex.sent) != 1 {
		t.Fatalf("JoinGroup of an unheld group went to %v", ex.targets())
	}

	// Applied: the hold is lifted.
	f.withReset("g", fsm.ResetApplied)
	ex, resp = h.answered(join, 9, cxAnswerWith(&kmsg.JoinGroupResponse{Generation: 4, MemberID: "m-2", LeaderID: "m-2"}))
	if jr := resp.(*kmsg.JoinGroupResponse); jr.ErrorCode != 0 || jr.Generation != 4 || len(ex.sent) != 1 {
		t.Fatalf("JoinGroup after the reset: %+v, sent %v", jr, ex.targets())
	}
}

// TestGroupResetRefusesRemovedMembers: a commit from a member the reset
// removed is refused on every cluster (the home cluster's broker would
// refuse it, the others take simple commits unchecked); a commit from a
// member that joined since passes.
func TestGroupResetRefusesRemovedMembers(t *testing.T) {
	f := newCx(t, true)
	f.withReset("g", fsm.ResetApplied, "gone-1")
	h := f.conn(t)
	commit := func(member string) *kmsg.OffsetCommitRequest {
		oc := kmsg.NewPtrOffsetCommitRequest()
		oc.Group, oc.MemberID, oc.Generation = "g", member, 3
		oc.Topics = []kmsg.OffsetCommitRequestTopic{
			{Topic: "orders", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 99}}},
			{Topic: "payments", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 7}}},
		}
		return oc
	}
	ex, resp := h.answered(commit("gone-1"), 8, nil)
	if len(ex.sent) != 0 {
		t.Fatalf("a removed member's commit reached %v", ex.targets())
	}
	for _, tp := range resp.(*kmsg.OffsetCommitResponse).Topics {
		for _, p := range tp.Partitions {
			if p.ErrorCode != kerr.RebalanceInProgress.Code {
				t.Fatalf("%s/%d answered %d, want REBALANCE_IN_PROGRESS", tp.Topic, p.Partition, p.ErrorCode)
			}
		}
	}
	answer := func(_ cxAt, req kmsg.Request) kmsg.Response {
		oc := req.(*kmsg.OffsetCommitRequest)
		out := oc.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, tp := range oc.Topics {
			rt := kmsg.OffsetCommitResponseTopic{Topic: tp.Topic}
			for _, p := range tp.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.OffsetCommitResponseTopicPartition{Partition: p.Partition})
			}
			out.Topics = append(out.Topics, rt)
		}
		return out
	}
	ex, _ = h.answered(commit("new-1"), 8, answer)
	if len(ex.sent) != 2 {
		t.Fatalf("a current member's commit went to %v, want both clusters", ex.targets())
	}

	txn := kmsg.NewPtrTxnOffsetCommitRequest()
	txn.Group, txn.MemberID, txn.Generation, txn.TransactionalID, txn.ProducerID = "g", "gone-1", 3, "tx", 5
	txn.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "orders", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 9}}}}
	ex, resp = h.answered(txn, 3, nil)
	if tr := resp.(*kmsg.TxnOffsetCommitResponse); len(ex.sent) != 0 || tr.Topics[0].Partitions[0].ErrorCode != kerr.RebalanceInProgress.Code {
		t.Fatalf("removed member's TxnOffsetCommit: %+v, sent %v", tr, ex.targets())
	}
}

// TestGroupResetEndsRemovedSessions: a removed member's heartbeat, sync
// and join with its old id are answered UNKNOWN_MEMBER_ID here, and the
// peer reports the member as having noticed; a current member passes.
func TestGroupResetEndsRemovedSessions(t *testing.T) {
	f := newCx(t, true)
	f.withReset("g", fsm.ResetApplied, "gone-1", "gone-2", "gone-3")
	h := f.conn(t)
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "g", "gone-1", 3
	ex, resp := h.answered(hb, 4, nil)
	if r := resp.(*kmsg.HeartbeatResponse); r.ErrorCode != kerr.UnknownMemberID.Code || len(ex.sent) != 0 {
		t.Fatalf("removed member's heartbeat: %+v, sent %v", r, ex.targets())
	}
	sg := kmsg.NewPtrSyncGroupRequest()
	sg.Group, sg.MemberID, sg.Generation = "g", "gone-2", 3
	ex, resp = h.answered(sg, 5, nil)
	if r := resp.(*kmsg.SyncGroupResponse); r.ErrorCode != kerr.UnknownMemberID.Code || len(ex.sent) != 0 {
		t.Fatalf("removed member's sync: %+v, sent %v", r, ex.targets())
	}
	// A join under the old id: first REBALANCE_IN_PROGRESS (the client
	// drops its assignment), then UNKNOWN_MEMBER_ID (it drops the id).
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.MemberID, join.ProtocolType = "g", "gone-3", "consumer"
	for _, want := range []int16{kerr.RebalanceInProgress.Code, kerr.UnknownMemberID.Code} {
		ex, resp = h.answered(join, 9, nil)
		if r := resp.(*kmsg.JoinGroupResponse); r.ErrorCode != want || len(ex.sent) != 0 {
			t.Fatalf("removed member's join: %+v, sent %v, want code %d", r, ex.targets(), want)
		}
	}
	got := f.srv.NoticedRemoved("g")
	slices.Sort(got)
	if !slices.Equal(got, []string{"gone-1", "gone-2", "gone-3"}) {
		t.Fatalf("noticed %v, want both removed members", got)
	}
	hb.MemberID = "current"
	ex, _ = h.answered(hb, 4, cxAnswerWith(&kmsg.HeartbeatResponse{}))
	if len(ex.sent) != 1 {
		t.Fatalf("a current member's heartbeat went to %v", ex.targets())
	}
	if got := f.srv.NoticedRemoved("other"); len(got) != 0 {
		t.Fatalf("noticed %v for a group without a reset", got)
	}
}

// TestGroupHeldWithoutLease: a peer without a write lease cannot know
// whether a reset began, so it holds every group (joins, offset fetches)
// and its commits wait, without reaching a backend; open, they pass.
func TestGroupHeldWithoutLease(t *testing.T) {
	f := newCx(t, true)
	gate := &fxGate{}
	f.srv.cfg.Writes = gate
	h := f.conn(t)
	load := kerr.CoordinatorLoadInProgress.Code

	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType = "any", "consumer"
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{1}}}
	ex, resp := h.answered(join, 9, nil)
	if r := resp.(*kmsg.JoinGroupResponse); r.ErrorCode != load || len(ex.sent) != 0 {
		t.Fatalf("JoinGroup without a lease: %+v, sent %v", r, ex.targets())
	}
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "any", Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "orders", Partitions: []int32{0}}}}}
	ex, resp = h.answered(of, 8, nil)
	if r := resp.(*kmsg.OffsetFetchResponse); r.Groups[0].ErrorCode != load || len(ex.sent) != 0 {
		t.Fatalf("OffsetFetch without a lease: %+v, sent %v", r, ex.targets())
	}
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Group, oc.MemberID, oc.Generation = "any", "m", 1
	oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "orders", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 3}}}}
	ex, resp = h.answered(oc, 8, nil)
	if r := resp.(*kmsg.OffsetCommitResponse); r.Topics[0].Partitions[0].ErrorCode != load || len(ex.sent) != 0 {
		t.Fatalf("OffsetCommit without a lease: %+v, sent %v", r, ex.targets())
	}

	gate.open.Store(true)
	ex, _ = h.answered(join, 9, cxAnswerWith(&kmsg.JoinGroupResponse{Generation: 1, MemberID: "m", LeaderID: "m"}))
	if len(ex.sent) != 1 {
		t.Fatalf("JoinGroup with a lease went to %v", ex.targets())
	}
}
