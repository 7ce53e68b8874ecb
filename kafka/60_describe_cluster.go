package kafka

// DescribeCluster (key 60): all versions. Forwarded to a broker of the
// default cluster; the brokers become the live peers, the controller the
// peer presenting the default cluster's controller and the cluster id the
// virtual one, as in Metadata. A request for controller endpoints (v1+,
// EndpointType 2, KIP-919) is answered with the peers too: clients reach
// the controllers only through the proxy.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleDescribeCluster(r *request) error {
	c, start := r.c, r.start
	be := r.defaultBackend()
	return c.forwardAny(r, start, be, func(resp *buffer) (*buffer, error) {
		return rewrite(resp, r, func(kr kmsg.Response) bool {
			m := kr.(*kmsg.DescribeClusterResponse)
			pr := r.presenter(be)
			m.Brokers = m.Brokers[:0]
			for _, b := range pr.brokers() {
				m.Brokers = append(m.Brokers, kmsg.DescribeClusterResponseBroker{NodeID: b.id, Host: b.host, Port: b.port, Rack: b.rack})
			}
			m.ControllerID = pr.peerFor(m.ControllerID)
			if id := r.clusterID(&m.ClusterID); id != nil {
				m.ClusterID = *id
			}
			return true
		})
	})
}
