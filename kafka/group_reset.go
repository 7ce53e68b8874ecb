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
// A removed member must also not go on as a zombie: one that completed a
// SyncGroup just before the fence, and whose OffsetFetch was held, would
// otherwise get the targets once the hold lifts, consume from them, find
// its commits refused, rejoin, and read the same records again. So every
// request a removed member sends in its old session (Heartbeat,
// SyncGroup, JoinGroup with its old id) is answered UNKNOWN_MEMBER_ID by
// the peer it reaches (its first JoinGroup REBALANCE_IN_PROGRESS, see
// removedAnswer), which ends the client's session and drops its
// assignment, and the peer notes that the member has noticed
// (Server.NoticedRemoved). The driver keeps the group held until every
// removed member has noticed on some peer (or a bound passes: a member
// that crashed never will), so no session that began before the reset is
// still running when the targets are handed out.
//
// A peer cut off from the control plane cannot know whether a reset
// began. Once its write lease lapses (Config.Writes, the lease that also
// stops its Produce) it holds every group: joins and offset fetches as
// above, and commits answered COORDINATOR_LOAD_IN_PROGRESS, so the driver
// may count it as holding once its lease has certainly run out.
//
// Limit: an OffsetFetch batching several groups (v8+) of which one is
// held is answered COORDINATOR_LOAD_IN_PROGRESS for every group in it;
// consumers send one group, admin tools retry.

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

const heldMessage = "the group's offsets are being reset by switchyard; retry"

// held reports whether the request's group is held: its offset reset is
// fencing, or this peer has no write lease (it cannot know whether a reset
// began: Config.Writes).
func (r *request) held(group string) bool {
	return r.split.noWrite || groupHeld(r.st, group)
}

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
		if !r.held(req.Group) {
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
	held := r.split.noWrite
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
//
// The refusal is REBALANCE_IN_PROGRESS, not UNKNOWN_MEMBER_ID: franz-go
// answers an UNKNOWN_MEMBER_ID commit by rejoining at once and, in a
// cooperative group, keeps its partitions through that rejoin, so it
// would never fetch their (reset) offsets. A failed commit alone leaves
// the session to its next heartbeat, which is told the member is gone
// and makes every client drop its assignment. It does not count as the
// member having noticed.
func refuseRemovedMember[Req kmsg.Request](r *request, _ Req, _, _ int, _ topicTarget) int16 {
	if r.split.noWrite {
		return kerr.CoordinatorLoadInProgress.Code // no write lease: commits wait
	}
	if r.split.memberGone {
		return kerr.RebalanceInProgress.Code
	}
	return 0
}

// maxNoticed bounds the removed members a peer remembers as having
// noticed, over all groups; past it the oldest group's entries go (the
// driver then waits for its bound for them).
const maxNoticed = 100_000

// noticedSet is the removed members that sent a request in their old
// session through this peer, per group.
type noticedSet struct {
	mu     sync.Mutex
	groups map[string]map[string]bool
	order  []string // groups, oldest first
	n      int
}

func (ns *noticedSet) add(group, member string) (added bool) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.groups == nil {
		ns.groups = map[string]map[string]bool{}
	}
	g := ns.groups[group]
	if g == nil {
		g = map[string]bool{}
		ns.groups[group] = g
		ns.order = append(ns.order, group)
	}
	if g[member] {
		return false
	}
	g[member] = true
	ns.n++
	for ns.n > maxNoticed && len(ns.order) > 1 {
		old := ns.order[0]
		ns.order = ns.order[1:]
		ns.n -= len(ns.groups[old])
		delete(ns.groups, old)
	}
	return true
}

func (ns *noticedSet) list(group string) []string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	var out []string
	for m := range ns.groups[group] {
		out = append(out, m)
	}
	return out
}

// NoticedRemoved lists the members an offset reset of group removed that
// have since sent a request in their old session through this peer (and
// were told they are gone).
func (s *Server) NoticedRemoved(group string) []string { return s.noticed.list(group) }

// removedAnswer answers a membership request from a member an offset reset
// removed with UNKNOWN_MEMBER_ID, and notes that the member noticed. nil
// when the request is not from a removed member.
func (s *Server) removedAnswer(st *fsm.State, group string, req kmsg.Request) kmsg.Response {
	if st == nil || len(st.OffsetResets) == 0 {
		return nil
	}
	var member string
	switch v := req.(type) {
	case *kmsg.HeartbeatRequest:
		member = v.MemberID
	case *kmsg.SyncGroupRequest:
		member = v.MemberID
	case *kmsg.JoinGroupRequest:
		member = v.MemberID
	default:
		return nil
	}
	if !removedMember(st, group, member) {
		return nil
	}
	first := s.noticed.add(group, member)
	code := kerr.UnknownMemberID.Code
	switch v := req.(type) {
	case *kmsg.HeartbeatRequest:
		resp := v.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.SyncGroupRequest:
		resp := v.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = code
		return resp
	default:
		j := req.(*kmsg.JoinGroupRequest)
		resp := j.ResponseKind().(*kmsg.JoinGroupResponse)
		if first {
			// The member is rejoining in the session the reset ended
			// (a cooperative member still owning its partitions):
			// fail this join so the client drops its assignment
			// (franz-go keeps a cooperative member's partitions
			// through a join answered UNKNOWN_MEMBER_ID, and would
			// never fetch their offsets again). Its next join, under
			// the same id, is told the id is gone.
			code = kerr.RebalanceInProgress.Code
		}
		resp.ErrorCode, resp.Generation, resp.MemberID = code, -1, j.MemberID
		return resp
	}
}
