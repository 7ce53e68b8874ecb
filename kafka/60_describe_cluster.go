package kafka

// DescribeCluster (key 60): all versions. Forwarded to a backend broker;
// the brokers become the live peers and the controller the peer presenting
// the real controller. A request for controller endpoints (v1+,
// EndpointType 2, KIP-919) is answered with the peers too: clients reach
// the controllers only through the proxy.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleDescribeCluster(c *clientConn, r *request, start time.Time) error {
	return c.forwardAny(r, start, func(resp *buffer) (*buffer, error) {
		return rewrite(resp, r, func(kr kmsg.Response) bool {
			m := kr.(*kmsg.DescribeClusterResponse)
			pr := c.s.presenter()
			m.Brokers = m.Brokers[:0]
			for _, b := range pr.brokers() {
				m.Brokers = append(m.Brokers, kmsg.DescribeClusterResponseBroker{NodeID: b.id, Host: b.host, Port: b.port, Rack: b.rack})
			}
			m.ControllerID = pr.peerFor(m.ControllerID)
			if c.s.cfg.ClusterID != "" {
				m.ClusterID = c.s.cfg.ClusterID
			}
			return true
		})
	})
}
