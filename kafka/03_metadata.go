package kafka

// Metadata (key 3): all versions kmsg and the backend share.
//
// Forwarded to a backend broker (this host's first); the answer is
// rewritten so that the brokers are the live peers, each partition's leader
// is the peer presenting the real leader, replica lists are mapped to peers
// (duplicates dropped), and the controller is the peer presenting the real
// controller. Every answer also refreshes the proxy's leader cache for the
// topics it lists.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleMetadata(c *clientConn, r *request, start time.Time) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.MetadataRequest)
	// v0 asks for all topics with an empty list, v1+ with a null one.
	all := req.Topics == nil || (r.version == 0 && len(req.Topics) == 0)
	return c.forwardAny(r, start, func(resp *buffer) (*buffer, error) {
		return rewrite(resp, r, func(kr kmsg.Response) bool {
			m := kr.(*kmsg.MetadataResponse)
			c.s.backend.updateMetadata(m, all)
			c.s.presentMetadata(m)
			return true
		})
	})
}

// presentMetadata rewrites a backend metadata answer in place.
func (s *Server) presentMetadata(m *kmsg.MetadataResponse) {
	pr := s.presenter()
	m.Brokers = m.Brokers[:0]
	for _, b := range pr.brokers() {
		m.Brokers = append(m.Brokers, kmsg.MetadataResponseBroker{NodeID: b.id, Host: b.host, Port: b.port, Rack: b.rack})
	}
	m.ControllerID = pr.peerFor(m.ControllerID)
	if s.cfg.ClusterID != "" {
		id := s.cfg.ClusterID
		m.ClusterID = &id
	}
	for i := range m.Topics {
		for j := range m.Topics[i].Partitions {
			p := &m.Topics[i].Partitions[j]
			p.Leader = pr.peerFor(p.Leader)
			p.Replicas = pr.mapIDs(p.Replicas)
			p.ISR = pr.mapIDs(p.ISR)
			p.OfflineReplicas = pr.mapIDs(p.OfflineReplicas)
			if p.Leader >= 0 && len(p.Replicas) > 0 && p.Replicas[0] != p.Leader {
				// Some clients treat the first replica as preferred; keep the
				// presented leader first so they never disagree with Leader.
				p.Replicas = moveFirst(p.Replicas, p.Leader)
			}
		}
	}
}

func moveFirst(ids []int32, id int32) []int32 {
	out := make([]int32, 0, len(ids)+1)
	out = append(out, id)
	for _, x := range ids {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}
