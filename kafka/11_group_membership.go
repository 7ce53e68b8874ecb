package kafka

import "github.com/twmb/franz-go/pkg/kmsg"

// JoinGroup (11), Heartbeat (12), LeaveGroup (13), SyncGroup (14): all
// versions kmsg and the backend share.
//
// A consumer group's membership lives on its home cluster (group prefix
// rules, else the default cluster; coordinators.go): each request goes as
// the client sent it to the group's coordinator there, found through the
// coordinator cache (a miss asks the cluster and blocks this client's
// reader until the answer). A successful JoinGroup records the member's
// client address, Heartbeat keeps it and LeaveGroup drops it, so
// DescribeGroups can report the client's host (members.go). While an
// offset reset holds the group, JoinGroup is answered
// COORDINATOR_LOAD_IN_PROGRESS by the proxy, and a member the reset
// removed is answered UNKNOWN_MEMBER_ID (group_reset.go).

// toGroupCoordinator sends a group's membership requests (JoinGroup,
// Heartbeat, LeaveGroup, SyncGroup) to its
// coordinator on its home cluster.
func toGroupCoordinator(r *request) error {
	c, start := r.c, r.start
	req, err := decodeRequest(r)
	if err != nil {
		return err
	}
	var group string
	switch v := req.(type) {
	case *kmsg.JoinGroupRequest:
		group = v.Group
	case *kmsg.HeartbeatRequest:
		group = v.Group
	case *kmsg.LeaveGroupRequest:
		group = v.Group
	case *kmsg.SyncGroupRequest:
		group = v.Group
	}
	be := r.home(group)
	if gone := c.s.removedAnswer(r.st, group, req); gone != nil {
		return c.respond(r, start, gone) // removed by an offset reset (group_reset.go)
	}
	if join, ok := req.(*kmsg.JoinGroupRequest); ok && r.held(group) {
		return c.respond(r, start, heldJoin(join)) // an offset reset holds the group (group_reset.go)
	}
	if _, join := req.(*kmsg.JoinGroupRequest); join {
		return c.toCoordinatorPost(r, start, be, coordinatorGroup, group, c.joinedPost(be, group, r.key, r.version))
	}
	c.s.memberSeen(be, req)
	return c.toCoordinator(r, start, be, coordinatorGroup, group)
}
