package kafka

// FindCoordinator (key 10): v0–v6, batched keys (v4+) included.
//
// Forwarded to a backend broker; each coordinator in the answer is
// recorded in the proxy's coordinator cache (so the group and transaction
// requests that follow go straight to it) and presented as the peer that
// presents that broker. Errors pass through unchanged.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleFindCoordinator(c *clientConn, r *request, start time.Time) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.FindCoordinatorRequest)
	typ := req.CoordinatorType
	key := req.CoordinatorKey
	return c.forwardAny(r, start, func(resp *buffer) (*buffer, error) {
		return rewrite(resp, r, func(kr kmsg.Response) bool {
			m := kr.(*kmsg.FindCoordinatorResponse)
			pr := c.s.presenter()
			if m.Version < 4 {
				c.presentCoordinator(pr, typ, key, m.ErrorCode, &m.NodeID, &m.Host, &m.Port)
				return true
			}
			for i := range m.Coordinators {
				co := &m.Coordinators[i]
				c.presentCoordinator(pr, typ, co.Key, co.ErrorCode, &co.NodeID, &co.Host, &co.Port)
			}
			return true
		})
	})
}

func (c *clientConn) presentCoordinator(pr *presenter, typ int8, key string, code int16, node *int32, host *string, port *int32) {
	if code != 0 || *node < 0 {
		if isCoordinatorError(code) {
			c.s.backend.setCoordinator(typ, key, -1)
		}
		return
	}
	// Share groups (type 2) are not served; only cache what we route.
	if typ == coordinatorGroup || typ == coordinatorTxn {
		c.s.backend.setCoordinator(typ, key, *node)
	}
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
