package kafka

// OffsetCommit (key 8): all versions kmsg and every backend share. v10+
// names topics by id: the client's virtual ids (topicids.go) become the
// owning cluster's in each part and the answers' ids virtual again; an
// id the proxy does not know is answered UNKNOWN_TOPIC_ID per partition,
// as a broker does.
//
// A group's offsets live with their topics (coordinators.go): each
// partition goes to the group's coordinator on the cluster its topic
// routes to (split.go). On the group's home cluster the commit is sent as
// the client sent it; on another cluster, where the group has no members,
// as a "simple" commit (generation -1, no member id), which Kafka accepts
// for a group without members. Unrouted topics are answered
// UNKNOWN_TOPIC_OR_PARTITION; a re-pointed topic bounces the whole commit
// with NOT_COORDINATOR once (pipeline.go), and the client commits again.
// A KIP-848 member's commit goes to each cluster with its member id and
// the epoch of its membership there (commit848). A member an offset reset
// removed is answered REBALANCE_IN_PROGRESS for every partition, here, on
// every cluster (group_reset.go). Every commit is remembered per group and
// cluster (commit_log.go) for failover's resume policies.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// recordCommit notes, per cluster the commit's topics route to, the
// group's commit (commit_log.go).
func recordCommit(r *request, req *kmsg.OffsetCommitRequest) {
	now := time.Now()
	by := map[*Backend][]string{}
	for _, t := range req.Topics {
		if tt := r.topic(t.Topic, t.TopicID); tt.be != nil {
			by[tt.be] = append(by[tt.be], tt.name)
		}
	}
	for be, topics := range by {
		r.c.s.commits.record(req.Group, be.Name(), topics, now)
	}
}

func handleOffsetCommit(r *request) error { return offsetCommitFamily.serve(r) }

// staleMemberWindow is how long after a failover or failback moved a
// group's home its members' refused commits are deferred (deferStaleMember).
const staleMemberWindow = 30 * time.Second

// deferStaleMember answers REBALANCE_IN_PROGRESS instead of
// UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION for the partitions the group's
// home refused, while the home moved less than staleMemberWindow ago (a
// failover or failback of its cluster). The member's session is on the
// cluster the group left, and its fetch positions are that cluster's
// offsets (or, once a client's KIP-320 check saw the epochs change, the new
// cluster's end). Told by the commit, franz-go rejoins keeping its
// partitions and positions and commits them in the new generation: the
// records between the group's offsets there and those positions are never
// read (test/sites lost 112-185 records so, 2 runs in 8, once the draining
// failback had producers write to the recovered cluster). Told by the
// heartbeat, every client drops its partitions as lost and reads its
// group's committed offsets again on rejoining. REBALANCE_IN_PROGRESS
// fails the commit without a retry and without franz-go's rejoin (a
// retriable NOT_COORDINATOR was retried for half a minute, holding the
// rejoin back); the heartbeat, every 3 s, then ends the old session. A
// KIP-848 member's leg (its own epoch per cluster) is left alone.
func deferStaleMember(r *request, t target, resp *kmsg.OffsetCommitResponse) bool {
	if t.be != r.split.home || r.split.g848.m != nil {
		return false
	}
	req, ok := r.split.req.(*kmsg.OffsetCommitRequest)
	if !ok || req.Generation < 0 {
		return false // a simple commit has no session to be stale
	}
	moved := r.st.GroupHomeMovedAt(req.Group, r.region)
	if moved == 0 || time.Since(time.UnixMilli(moved)) > staleMemberWindow {
		return false
	}
	changed := false
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			p := &resp.Topics[i].Partitions[j]
			switch p.ErrorCode {
			case kerr.UnknownMemberID.Code, kerr.IllegalGeneration.Code:
				p.ErrorCode, changed = kerr.RebalanceInProgress.Code, true
			}
		}
	}
	return changed
}

var offsetCommitFamily = &family[*kmsg.OffsetCommitRequest, *kmsg.OffsetCommitResponse]{
	coordinator: func(req *kmsg.OffsetCommitRequest) (int8, string) { return coordinatorGroup, req.Group },
	idsFrom:     10,
	reqIDs:      offsetCommitRequestIDs,
	respIDs:     commitResponseIDs,
	prepare: func(r *request, req *kmsg.OffsetCommitRequest) error {
		r.split.g848 = commit848{r.c.s.member848(req.Group, &req.MemberID), req.Generation}
		r.split.memberGone = removedMember(r.st, req.Group, req.MemberID)
		return r.setHome(req.Group)
	},
	partition: refuseRemovedMember[*kmsg.OffsetCommitRequest],
	keeps:     func(r *request, t target) bool { return t.be == r.split.home && r.split.g848.keeps(t.be) },
	routed:    recordCommit,
	fix:       deferStaleMember,
	rewrite: func(r *request, t target, sub *kmsg.OffsetCommitRequest) {
		if r.split.g848.rewrite(t.be, sub) {
			return // a KIP-848 member: its leg on t's cluster
		}
		if t.be != r.split.home {
			sub.Generation, sub.MemberID, sub.InstanceID = -1, "", nil
		}
	},
}
