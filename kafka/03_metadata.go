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
//
// A backend is not asked at all while its metadata snapshot is fresh
// (metadata_cache.go): an all-topics request is assembled from the
// snapshots' pre-encoded blocks when every cluster's is fresh and allows
// it (BackendConfig.ListFromSnapshot, on in node by default), and a
// named topic the snapshot holds without error is answered from it. What
// the snapshot cannot answer goes to the backend: a topic it lacks (maybe
// just created elsewhere, or to be auto-created), one with an error, a
// request for authorized operations (the backend's view of the proxy's own
// principal, as before), and everything while the snapshot is stale.

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
	// Authorized operations are the backend's to say: never cached.
	cacheable := !req.IncludeClusterAuthorizedOperations && !req.IncludeTopicAuthorizedOperations
	if all && cacheable && listFromSnapshot(set.sorted) {
		if snaps := freshSnapshots(set.sorted); snaps != nil {
			p, err := c.newPending(r, start)
			if err != nil {
				return err
			}
			c.finish(p, cachedAllTopics(r, snaps), nil)
			c.kickWriter()
			return nil
		}
	}
	var parts []part
	// cached[i] is the backend whose snapshot part i's local answer was
	// taken from (presented in the merge like a backend's answer).
	var cached []*Backend
	if all {
		for _, be := range set.sorted {
			sub := *req
			parts = append(parts, part{t: target{be, anyBroker}, req: &sub})
		}
	} else {
		by := map[*Backend]*kmsg.MetadataRequest{}
		var fromSnap map[*Backend]*kmsg.MetadataResponse
		var local *kmsg.MetadataResponse
		for _, t := range req.Topics {
			var be *Backend
			switch {
			case t.Topic != nil:
				be = r.route(*t.Topic)
			case t.TopicID != ([16]byte{}):
				// A virtual id: ask the cluster by name.
				var name string
				if be, name = r.resolveVID(t.TopicID); be != nil {
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
			if cacheable && t.Topic != nil {
				if snap := be.freshSnapshot(); snap != nil {
					if ct, ok := snap.cachedTopic(*t.Topic); ok {
						m := fromSnap[be]
						if m == nil {
							if fromSnap == nil {
								fromSnap = map[*Backend]*kmsg.MetadataResponse{}
							}
							m = kmsg.NewPtrMetadataResponse()
							m.ClusterID, m.ControllerID = snap.resp.ClusterID, snap.resp.ControllerID
							fromSnap[be] = m
						}
						m.Topics = append(m.Topics, copyTopic(ct))
						continue
					}
				}
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
				parts = append(parts, part{t: target{be, anyBroker}, req: sub})
			}
		}
		for _, be := range set.sorted {
			if m := fromSnap[be]; m != nil {
				cached = append(cached, make([]*Backend, len(parts)-len(cached))...)
				cached = append(cached, be)
				parts = append(parts, part{t: target{be, anyBroker}, local: m})
			}
		}
		if local != nil {
			parts = append(parts, part{local: local})
		}
	}
	if len(parts) == 0 && cacheable {
		// An empty topic list (v1+): just the brokers; the default
		// cluster's snapshot says its id and controller.
		if def := r.defaultBackend(); def != nil {
			if snap := def.freshSnapshot(); snap != nil {
				m := kmsg.NewPtrMetadataResponse()
				m.ClusterID, m.ControllerID = snap.resp.ClusterID, snap.resp.ControllerID
				cached = []*Backend{def}
				parts = append(parts, part{t: target{def, anyBroker}, local: m})
			}
		}
	}
	if len(parts) == 0 {
		// An empty topic list (v1+): just the brokers, from any cluster.
		sub := *req
		parts = append(parts, part{t: target{r.defaultBackend(), anyBroker}, req: &sub})
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		def := r.defaultBackend()
		out := kmsg.NewPtrMetadataResponse()
		out.Version = r.version
		out.ControllerID = -1
		for i, x := range resps {
			m := x.(*kmsg.MetadataResponse)
			be := parts[i].t.be
			fromSnap := i < len(cached) && cached[i] != nil
			if parts[i].local != nil && !fromSnap {
				out.Topics = append(out.Topics, m.Topics...)
				continue
			}
			if !fromSnap {
				be.updateMetadata(m, all)
				if !all && be.learnsTopics(m) {
					// A topic the snapshot lacks exists now (created
					// elsewhere, or auto-created by this request):
					// listings must show it at once.
					be.TriggerRefresh()
				}
			}
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
	pr := r.presenter(be)
	m.Brokers = m.Brokers[:0]
	for _, b := range pr.brokers() {
		m.Brokers = append(m.Brokers, kmsg.MetadataResponseBroker{NodeID: b.id, Host: b.host, Port: b.port, Rack: b.rack})
	}
	m.ControllerID = pr.peerFor(m.ControllerID)
	m.ClusterID = r.clusterID(m.ClusterID)
	for i := range m.Topics {
		presentTopic(r, be, pr, &m.Topics[i])
	}
}

// presentTopic rewrites one topic of be's metadata in place (its id, its
// partitions' leaders, replicas and epochs); the replica slices are
// replaced, never written into, so a shallow copy of the partitions is
// enough to keep the original (metadata_cache.go).
func presentTopic(r *request, be *Backend, pr *presenter, t *kmsg.MetadataResponseTopic) {
	if t.Topic != nil {
		r.c.s.presentTopicID(*t.Topic, &t.TopicID)
	}
	for j := range t.Partitions {
		p := &t.Partitions[j]
		if t.Topic != nil {
			p.LeaderEpoch = presentChainEpoch(r, be, *t.Topic, p.LeaderEpoch)
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

// listFromSnapshot reports whether every backend lets listings be answered
// from its snapshot (BackendConfig.ListFromSnapshot).
func listFromSnapshot(bes []*Backend) bool {
	for _, be := range bes {
		if !be.cfg.ListFromSnapshot {
			return false
		}
	}
	return true
}

// freshSnapshots is every backend's fresh snapshot, in order, or nil when
// one has none.
func freshSnapshots(bes []*Backend) []*metaSnapshot {
	out := make([]*metaSnapshot, len(bes))
	for i, be := range bes {
		if out[i] = be.freshSnapshot(); out[i] == nil {
			return nil
		}
	}
	return out
}

// learnsTopics reports whether a named Metadata answer from b holds a
// topic without error that b's snapshot does not have.
func (b *Backend) learnsTopics(m *kmsg.MetadataResponse) bool {
	snap := b.snap.Load()
	if snap == nil {
		return false
	}
	for _, t := range m.Topics {
		if t.Topic == nil || t.ErrorCode != 0 {
			continue
		}
		if _, ok := snap.index[*t.Topic]; !ok {
			return true
		}
	}
	return false
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
