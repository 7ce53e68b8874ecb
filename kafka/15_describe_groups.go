package kafka

// DescribeGroups (15), DeleteGroups (42): all versions kmsg and the
// backend share.
//
// DescribeGroups asks each group's coordinator on its home cluster and
// reports each member's client host as the member joined through this
// peer (members.go), not the proxy's own backend socket. DeleteGroups
// deletes on every cluster (a group's offsets live with its topics): the
// home cluster's answer per group wins, and a cluster where the group
// does not exist is no error.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleGroupBatch serves DescribeGroups (15) from each group's home
// cluster, members' client hosts as they joined (members.go), and
// DeleteGroups (42) on every
// cluster (offsets live on each): the home cluster's answer per group
// wins, and a cluster where the group does not exist is no error.
func handleGroupBatch(r *request) error {
	c, start := r.c, r.start
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	var groups []string
	deleting := false
	switch v := kreq.(type) {
	case *kmsg.DescribeGroupsRequest:
		groups = v.Groups
	case *kmsg.DeleteGroupsRequest:
		groups, deleting = v.Groups, true
	}
	by := r.coordinatorsOf(coordinatorGroup, groups, deleting)
	if len(by) <= 1 {
		for t := range by {
			u, err := c.upstreamOrAny(t)
			if err != nil {
				return c.answerUnreachable(r, start, t.be, err)
			}
			var post postFunc
			if !deleting {
				post = func(resp *buffer) (*buffer, error) {
					return rewrite(resp, r, func(kr kmsg.Response) bool {
						return c.s.fixMemberHosts(t.be, kr.(*kmsg.DescribeGroupsResponse).Groups)
					})
				}
			}
			return c.forwardTo(u, r, start, post)
		}
		return c.forwardAny(r, start, r.defaultBackend(), nil)
	}
	var parts []part
	for _, t := range targetOrder(by) {
		var sub kmsg.Request
		switch v := kreq.(type) {
		case *kmsg.DescribeGroupsRequest:
			s := *v
			s.Groups = by[t]
			sub = &s
		case *kmsg.DeleteGroupsRequest:
			s := *v
			s.Groups = by[t]
			sub = &s
		}
		parts = append(parts, part{t: t, req: sub})
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		switch first := resps[0].(type) {
		case *kmsg.DescribeGroupsResponse:
			for i, x := range resps {
				o := x.(*kmsg.DescribeGroupsResponse)
				c.s.fixMemberHosts(parts[i].t.be, o.Groups)
				if i > 0 {
					first.Groups = append(first.Groups, o.Groups...)
				}
			}
		case *kmsg.DeleteGroupsResponse:
			idx := map[string]int{}
			var out []kmsg.DeleteGroupsResponseGroup
			for i, x := range resps {
				o := x.(*kmsg.DeleteGroupsResponse)
				isHome := func(g string) bool { return r.home(g) == parts[i].t.be }
				for _, g := range o.Groups {
					if g.ErrorCode == kerr.GroupIDNotFound.Code && !isHome(g.Group) {
						g.ErrorCode = 0
					}
					j, seen := idx[g.Group]
					switch {
					case !seen:
						idx[g.Group] = len(out)
						out = append(out, g)
					case g.ErrorCode != 0 && (out[j].ErrorCode == 0 || isHome(g.Group)):
						out[j] = g
					}
				}
			}
			first.Groups = out
		}
		return resps[0]
	})
}
