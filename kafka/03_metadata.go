package kafka

// Metadata (key 3): all versions kmsg and every backend share.
//
// The requested topics are grouped by the cluster each routes to (all
// topics: every cluster) and each group is asked of a broker of its
// cluster, this host's first. The answers are merged into one virtual
// cluster: the brokers are the live peers, each partition's leader is the
// peer presenting the real leader (replica lists mapped to peers,
// duplicates dropped), the controller is the peer presenting the default
// cluster's controller, and the cluster id is the virtual one. A cluster's
// topics that route elsewhere are left out, so a topic present in two
// clusters shows only as its route says; topics no rule routes answer
// UNKNOWN_TOPIC_OR_PARTITION. Auto-creation happens on the routed cluster.
// Every answer also refreshes that backend's leader cache.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func handleMetadata(r *request) error {
	c, start := r.c, r.start
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.MetadataRequest)
	// v0 asks for all topics with an empty list, v1+ with a null one.
	all := req.Topics == nil || (r.version == 0 && len(req.Topics) == 0)
	set := c.s.backendSet()
	if len(set.sorted) == 0 {
		return errNoCluster
	}
	var parts []part
	if all {
		for _, be := range set.sorted {
			sub := *req
			parts = append(parts, part{t: target{be, -1}, req: &sub})
		}
	} else {
		by := map[*Backend]*kmsg.MetadataRequest{}
		var local *kmsg.MetadataResponse
		for _, t := range req.Topics {
			var be *Backend
			switch {
			case t.Topic != nil:
				be = r.route(*t.Topic)
			case t.TopicID != ([16]byte{}):
				// A virtual id: ask the cluster by name.
				var name string
				if be, name = r.topicOfVID(t.TopicID); be != nil {
					t.Topic, t.TopicID = &name, [16]byte{}
				}
			}
			// Kafka: a named topic the principal cannot Describe is
			// TOPIC_AUTHORIZATION_FAILED, whether or not it exists.
			denied := t.Topic != nil && !r.allows(opDescribe, resTopic, *t.Topic)
			if denied {
				be = nil
			}
			if be == nil {
				if local == nil {
					local = kmsg.NewPtrMetadataResponse()
				}
				mt := kmsg.NewMetadataResponseTopic()
				mt.Topic, mt.TopicID, mt.ErrorCode = t.Topic, t.TopicID, kerr.UnknownTopicOrPartition.Code
				if t.Topic == nil {
					mt.ErrorCode = kerr.UnknownTopicID.Code
				} else if denied {
					mt.ErrorCode = kerr.TopicAuthorizationFailed.Code
				}
				local.Topics = append(local.Topics, mt)
				continue
			}
			sub := by[be]
			if sub == nil {
				s := *req
				s.Topics = nil
				sub = &s
				by[be] = sub
			}
			if sub.AllowAutoTopicCreation && t.Topic != nil && !r.mayCreateTopic(*t.Topic) {
				// Auto-creation needs Create (acl_requests.go): without
				// it the topic is looked up only.
				sub.AllowAutoTopicCreation = false
			}
			sub.Topics = append(sub.Topics, t)
		}
		for _, be := range set.sorted {
			if sub := by[be]; sub != nil {
				parts = append(parts, part{t: target{be, -1}, req: sub})
			}
		}
		if local != nil {
			parts = append(parts, part{local: local})
		}
	}
	if len(parts) == 0 {
		// An empty topic list (v1+): just the brokers, from any cluster.
		sub := *req
		parts = append(parts, part{t: target{r.defaultBackend(), -1}, req: &sub})
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		def := r.defaultBackend()
		out := kmsg.NewPtrMetadataResponse()
		out.Version = r.version
		out.ControllerID = -1
		for i, x := range resps {
			m := x.(*kmsg.MetadataResponse)
			be := parts[i].t.be
			if parts[i].local != nil {
				out.Topics = append(out.Topics, m.Topics...)
				continue
			}
			be.updateMetadata(m, all)
			presentMetadata(r, be, m)
			if be == def || out.ClusterID == nil {
				out.ClusterID, out.ControllerID = m.ClusterID, m.ControllerID
				out.AuthorizedOperations = m.AuthorizedOperations
			}
			for _, t := range m.Topics {
				// A cluster's topic that routes elsewhere is not shown:
				// routes alone decide where a name lives.
				if t.Topic != nil && r.route(*t.Topic) != be {
					continue
				}
				if all && t.Topic != nil && r.authzOn() && !r.allowsQuiet(opDescribe, resTopic, *t.Topic) {
					// All-topics metadata leaves out the topics the
					// principal cannot Describe (Kafka).
					continue
				}
				out.Topics = append(out.Topics, t)
			}
		}
		out.Brokers = presentedBrokers(r)
		out.ClusterID = r.clusterID(out.ClusterID)
		return out
	})
}

// presentedBrokers lists the live peers as Metadata brokers.
func presentedBrokers(r *request) []kmsg.MetadataResponseBroker {
	pr := r.presenterOf("")
	var out []kmsg.MetadataResponseBroker
	for _, b := range pr.brokers() {
		out = append(out, kmsg.MetadataResponseBroker{NodeID: b.id, Host: b.host, Port: b.port, Rack: b.rack})
	}
	return out
}

// presentMetadata rewrites one backend's metadata answer in place: leaders,
// replicas and the controller become peers, topic ids virtual ones.
func presentMetadata(r *request, be *Backend, m *kmsg.MetadataResponse) {
	s := r.c.s
	pr := r.presenter(be)
	m.Brokers = m.Brokers[:0]
	for _, b := range pr.brokers() {
		m.Brokers = append(m.Brokers, kmsg.MetadataResponseBroker{NodeID: b.id, Host: b.host, Port: b.port, Rack: b.rack})
	}
	m.ControllerID = pr.peerFor(m.ControllerID)
	m.ClusterID = r.clusterID(m.ClusterID)
	for i := range m.Topics {
		if m.Topics[i].Topic != nil {
			s.presentTopicID(*m.Topics[i].Topic, &m.Topics[i].TopicID)
		}
		for j := range m.Topics[i].Partitions {
			p := &m.Topics[i].Partitions[j]
			if m.Topics[i].Topic != nil {
				p.LeaderEpoch = presentChainEpoch(r, be, *m.Topics[i].Topic, p.LeaderEpoch)
			}
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
