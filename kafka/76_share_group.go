package kafka

// ShareGroupHeartbeat (76) and ShareGroupDescribe (77): every version
// kmsg and the backend share (KIP-932).
//
// A share group lives on its home cluster (group prefix rules, else the
// default cluster), whose group coordinator assigns its partitions: each
// request goes to the group's coordinator there (ShareGroupDescribe split
// by group when groups have different coordinators). Assignments name
// topics by id, so the cluster's ids become the virtual ids clients know
// (topicids.go) in both answers. As for classic groups (members.go), a
// member's client host in ShareGroupDescribe is the address its
// heartbeats came from through this peer, not the proxy's upstream
// socket.
//
// One coordinator can only assign the partitions of its own cluster: a
// heartbeat subscribing to a topic routed to another cluster is answered
// INVALID_REQUEST with a message saying so, instead of a group that
// silently never gets those partitions.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleShareGroupHeartbeat(r *request) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.ShareGroupHeartbeatRequest)
	be := r.home(req.GroupID)
	if be == nil {
		return errNoCluster
	}
	for _, topic := range req.SubscribedTopicNames {
		if tb := r.route(topic); tb != nil && tb != be {
			resp := kmsg.NewPtrShareGroupHeartbeatResponse()
			resp.SetVersion(r.version)
			resp.ErrorCode = kerr.InvalidRequest.Code
			resp.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("switchyard: share group %q lives on cluster %s, but topic %q routes to cluster %s; "+
				"a share group can only consume topics of its home cluster: subscribe to them in another group", req.GroupID, be.Name(), topic, tb.Name()))
			return r.c.respond(r, r.start, resp)
		}
	}
	c, group, member, leaving := r.c, req.GroupID, req.MemberID, req.MemberEpoch == -1
	if leaving {
		c.s.members.remove(memberKey{be.Name(), group, member})
	}
	return c.toCoordinatorPost(r, r.start, be, coordinatorGroup, group, func(resp *buffer) (*buffer, error) {
		return rewrite(resp, r, func(kr kmsg.Response) bool {
			hb := kr.(*kmsg.ShareGroupHeartbeatResponse)
			if hb.MemberID != nil && *hb.MemberID != "" {
				member = *hb.MemberID
			}
			if hb.ErrorCode == 0 && !leaving && member != "" && c.clientHost != "" {
				c.s.members.put(memberKey{be.Name(), group, member}, c.clientHost)
			}
			a := hb.Assignment
			if a == nil || len(a.TopicPartitions) == 0 {
				return false
			}
			for i := range a.TopicPartitions {
				presentShareTopic(r, be, &a.TopicPartitions[i].TopicID)
			}
			return true
		})
	})
}

func handleShareGroupDescribe(r *request) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.ShareGroupDescribeRequest)
	by := r.coordinatorsOf(coordinatorGroup, req.GroupIDs, false)
	if len(by) == 0 {
		return r.c.forwardAny(r, r.start, r.defaultBackend(), nil)
	}
	var parts []part
	for _, t := range targetOrder(by) {
		sub := *req
		sub.GroupIDs = by[t]
		parts = append(parts, part{t: t, req: &sub})
	}
	return r.c.scatter(r, r.start, parts, func(resps []kmsg.Response) kmsg.Response {
		out := resps[0].(*kmsg.ShareGroupDescribeResponse)
		for i, x := range resps {
			resp := x.(*kmsg.ShareGroupDescribeResponse)
			be := parts[i].t.be
			for j := range resp.Groups {
				g := &resp.Groups[j]
				for k := range g.Members {
					m := &g.Members[k]
					if h, ok := r.c.s.members.get(memberKey{be.Name(), g.GroupID, m.MemberID}); ok {
						m.ClientHost = h
					}
					tps := m.Assignment.TopicPartitions
					for l := range tps {
						presentShareTopic(r, be, &tps[l].TopicID)
					}
				}
			}
			if i > 0 {
				out.Groups = append(out.Groups, resp.Groups...)
			}
		}
		return out
	})
}
