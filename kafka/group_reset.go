package kafka

// The data-plane side of online offset resets (issue 10; the job is
// fsm/offset_reset.go, its driver node/offset_reset.go).
//
// While a group's reset is fencing, every peer holds the group: a
// JoinGroup, a KIP-848 join (ConsumerGroupHeartbeat at epoch 0) and an
// OffsetFetch naming it are answered COORDINATOR_LOAD_IN_PROGRESS, which
// every client retries after a short backoff, as it does while a broker
// loads its group metadata. Meanwhile the driver removes the group's
// members on the backends and commits the targets; once the job is
// applied the hold lifts, the members join again, and the first thing
// each does with its new assignment is fetch the committed offsets: the
// targets. Requests already forwarded before this peer applied the fence
// finish normally; the driver waits for every peer to apply it first.
//
// A member the reset removed must not overwrite a target with a position
// it held before: on the group's home cluster the broker refuses it (the
// member is gone), but commits to other clusters go as "simple" commits
// that no broker checks (08_offset_commit.go). So every peer answers an
// OffsetCommit or TxnOffsetCommit from a removed classic member id with
// UNKNOWN_MEMBER_ID, forever after (a classic member id is never handed
// out twice; the member rejoins under a new one). KIP-848 members keep
// their id across a rejoin, but their commits carry a member epoch every
// cluster's coordinator checks, and the removed epoch is gone there.
//
// Limit: an OffsetFetch batching several groups (v8+) of which one is
// held is answered COORDINATOR_LOAD_IN_PROGRESS for every group in it;
// consumers send one group, admin tools retry.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

const heldMessage = "the group's offsets are being reset by switchyard; retry"

// groupHeld reports whether group's offset reset holds it now.
func groupHeld(st *fsm.State, group string) bool {
	if st == nil || len(st.OffsetResets) == 0 {
		return false
	}
	j, ok := st.OffsetReset(group)
	return ok && j.Holding()
}

// removedMember reports whether a reset of group removed the classic
// member id.
func removedMember(st *fsm.State, group, member string) bool {
	if st == nil || len(st.OffsetResets) == 0 || member == "" {
		return false
	}
	j, ok := st.OffsetReset(group)
	return ok && j.RemovedClassic(member)
}

// heldJoin answers a JoinGroup for a held group.
func heldJoin(req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.ErrorCode, resp.Generation, resp.MemberID = kerr.CoordinatorLoadInProgress.Code, -1, req.MemberID
	return resp
}

// heldOffsetFetch answers an OffsetFetch naming a held group: the group
// error where the version has one, every partition asked for otherwise.
func heldOffsetFetch(r *request, req *kmsg.OffsetFetchRequest) (*kmsg.OffsetFetchResponse, bool) {
	code := kerr.CoordinatorLoadInProgress.Code
	if r.version < 8 {
		if !groupHeld(r.st, req.Group) {
			return nil, false
		}
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.ErrorCode = code
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.ErrorCode = p, -1, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, true
	}
	held := false
	for _, g := range req.Groups {
		held = held || groupHeld(r.st, g.Group)
	}
	if !held {
		return nil, false
	}
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	for _, g := range req.Groups {
		rg := kmsg.NewOffsetFetchResponseGroup()
		rg.Group, rg.ErrorCode = g.Group, code
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, true
}

// refuseRemovedMember is the commit families' partition hook: a removed
// member's commit is refused partition by partition.
func refuseRemovedMember[Req kmsg.Request](r *request, _ Req, _, _ int, _ topicTarget) int16 {
	if r.split.memberGone {
		return kerr.UnknownMemberID.Code
	}
	return 0
}
