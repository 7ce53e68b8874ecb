package kafka

// FindCoordinator (key 10): v0–v6, batched keys (v4+) included.
//
// A group's or transactional id's coordinator lives on its home cluster
// (group prefix rules, else the default cluster), so each key is asked of
// a broker of its home cluster; batched keys with different homes are
// split and the answers concatenated. Each coordinator in the answer is
// recorded in that cluster's coordinator cache (so the group and
// transaction requests that follow go straight to it) and presented as the
// peer that presents that broker. Errors pass through unchanged.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleFindCoordinator(r *request) error {
	c, start := r.c, r.start
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.FindCoordinatorRequest)
	typ := req.CoordinatorType
	if r.version < 4 {
		be := r.home(req.CoordinatorKey)
		key := req.CoordinatorKey
		return c.forwardAny(r, start, be, func(resp *buffer) (*buffer, error) {
			return rewrite(resp, r, func(kr kmsg.Response) bool {
				m := kr.(*kmsg.FindCoordinatorResponse)
				presentCoordinator(r, be, typ, key, m.ErrorCode, &m.NodeID, &m.Host, &m.Port)
				return true
			})
		})
	}
	by := map[*Backend]*kmsg.FindCoordinatorRequest{}
	var order []*Backend
	for _, k := range req.CoordinatorKeys {
		be := r.home(k)
		sub := by[be]
		if sub == nil {
			s := *req
			s.CoordinatorKeys = nil
			sub = &s
			by[be] = sub
			order = append(order, be)
		}
		sub.CoordinatorKeys = append(sub.CoordinatorKeys, k)
	}
	parts := make([]part, 0, len(order))
	for _, be := range order {
		parts = append(parts, part{t: target{be, anyBroker}, req: by[be]})
	}
	if len(parts) == 0 {
		parts = append(parts, part{t: target{r.defaultBackend(), anyBroker}, req: req})
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		out := resps[0].(*kmsg.FindCoordinatorResponse)
		for i, x := range resps {
			m := x.(*kmsg.FindCoordinatorResponse)
			for j := range m.Coordinators {
				co := &m.Coordinators[j]
				presentCoordinator(r, parts[i].t.be, typ, co.Key, co.ErrorCode, &co.NodeID, &co.Host, &co.Port)
			}
			if i > 0 {
				out.Coordinators = append(out.Coordinators, m.Coordinators...)
			}
		}
		return out
	})
}

func presentCoordinator(r *request, be *Backend, typ int8, key string, code int16, node *int32, host *string, port *int32) {
	if be == nil {
		return
	}
	c := r.c
	if code != 0 || *node < 0 {
		if isCoordinatorError(code) {
			c.s.setCoordinator(be, typ, key, -1)
		}
		return
	}
	// Share groups (type 2) are not served; only cache what we route.
	if typ == coordinatorGroup || typ == coordinatorTxn {
		c.s.setCoordinator(be, typ, key, *node)
	}
	pr := r.presenter(be)
	peer := pr.peerFor(*node)
	b, ok := pr.broker(peer)
	if !ok {
		*node, *host, *port = -1, "", -1
		return
	}
	*node, *host, *port = b.id, b.host, b.port
}

func isCoordinatorError(code int16) bool {
	return code == 15 || code == 16 // COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR
}
