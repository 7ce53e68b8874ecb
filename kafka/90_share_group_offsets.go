package kafka

// DescribeShareGroupOffsets (90), AlterShareGroupOffsets (91),
// DeleteShareGroupOffsets (92): every version kmsg and the backend share
// (KIP-932).
//
// A share group's offsets (its share-partition start offsets) live with
// the group on its home cluster, which only knows its own topics (a share
// group cannot span clusters: 76_share_group.go). Each request goes to
// the group's coordinator on its home cluster (DescribeShareGroupOffsets
// split by group when groups have different coordinators); topics named
// by name go as they are, and the topic ids in the answers become the
// virtual ids clients know (topicids.go).

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleDescribeShareGroupOffsets(r *request) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.DescribeShareGroupOffsetsRequest)
	ids := make([]string, 0, len(req.Groups))
	byID := map[string][]kmsg.DescribeShareGroupOffsetsRequestGroup{}
	for _, g := range req.Groups {
		if _, seen := byID[g.GroupID]; !seen {
			ids = append(ids, g.GroupID)
		}
		byID[g.GroupID] = append(byID[g.GroupID], g)
	}
	by := r.coordinatorsOf(coordinatorGroup, ids, false)
	if len(by) == 0 {
		return r.c.forwardAny(r, r.start, r.defaultBackend(), nil)
	}
	var parts []part
	for _, t := range targetOrder(by) {
		sub := *req
		sub.Groups = nil
		for _, id := range by[t] {
			sub.Groups = append(sub.Groups, byID[id]...)
		}
		parts = append(parts, part{t: t, req: &sub})
	}
	return r.c.scatter(r, r.start, parts, func(resps []kmsg.Response) kmsg.Response {
		out := resps[0].(*kmsg.DescribeShareGroupOffsetsResponse)
		for i, x := range resps {
			resp := x.(*kmsg.DescribeShareGroupOffsetsResponse)
			for j := range resp.Groups {
				for k := range resp.Groups[j].Topics {
					presentShareTopic(r, parts[i].t.be, &resp.Groups[j].Topics[k].TopicID)
				}
			}
			if i > 0 {
				out.Groups = append(out.Groups, resp.Groups...)
			}
		}
		return out
	})
}

// handleShareGroupOffsetsWrite serves AlterShareGroupOffsets (91) and
// DeleteShareGroupOffsets (92): one group, to its coordinator.
func handleShareGroupOffsetsWrite(r *request) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	var group string
	switch v := kreq.(type) {
	case *kmsg.AlterShareGroupOffsetsRequest:
		group = v.GroupID
	case *kmsg.DeleteShareGroupOffsetsRequest:
		group = v.GroupID
	}
	be := r.home(group)
	return r.c.toCoordinatorPost(r, r.start, be, coordinatorGroup, group, func(resp *buffer) (*buffer, error) {
		return rewrite(resp, r, func(kr kmsg.Response) bool {
			changed := false
			switch v := kr.(type) {
			case *kmsg.AlterShareGroupOffsetsResponse:
				for i := range v.Topics {
					presentShareTopic(r, be, &v.Topics[i].TopicID)
					changed = true
				}
			case *kmsg.DeleteShareGroupOffsetsResponse:
				for i := range v.Topics {
					presentShareTopic(r, be, &v.Topics[i].TopicID)
					changed = true
				}
			}
			return changed
		})
	})
}
