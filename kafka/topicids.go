package kafka

// Virtual topic ids.
//
// Every cluster gives its topics ids of its own, so the same topic name
// has a different id on each cluster, and a route change would look to a
// client like a topic deleted and recreated: franz-go, for one, then fails
// every record it produces to that name. The proxy therefore presents one
// id per topic name, derived from the name alone, identical on every peer
// and stable across route changes (and, unlike a broker, across deleting
// and recreating the topic on the same cluster).
//
// Real ids never reach a client and virtual ids never reach a broker:
// Metadata, CreateTopics and DeleteTopics answers carry virtual ids, a
// Metadata or DeleteTopics request naming a topic by virtual id is sent to
// its cluster by name, and Produce v13+, Fetch v13+, OffsetCommit and
// OffsetFetch v10+ and TxnOffsetCommit v6+ have each virtual id swapped for
// the owning cluster's own on the way in and back on the way out (the
// resolver, pipeline.go; in place where the bytes go as they are, wire.go;
// in every decoded answer, split.go's presentIDs). A key that does not
// translate ids answers a topic named by id itself, never forwarding it.
// The KIP-848 consumer group protocol
// (ConsumerGroupHeartbeat, ConsumerGroupDescribe) assigns partitions by
// topic id from one coordinator, which cannot span clusters; it is not
// served, and clients use the classic group protocol.

import (
	"crypto/sha256"
)

// virtualTopicID is the id clients see for topic name.
func virtualTopicID(name string) [16]byte {
	sum := sha256.Sum256([]byte("switchyard topic id\x00" + name))
	var id [16]byte
	copy(id[:], sum[:16])
	if id == ([16]byte{}) {
		id[15] = 1 // the zero id means "no id" in the protocol
	}
	return id
}

// presentTopicID replaces a real topic id by the topic's virtual id and
// remembers the name, so a later request naming the id resolves.
func (s *Server) presentTopicID(name string, id *[16]byte) {
	if *id == ([16]byte{}) || name == "" {
		return
	}
	*id = virtualTopicID(name)
	s.vids.Store(*id, name)
}

// topicOfVID resolves a virtual topic id to its name and routed backend; a
// nil backend means the id is unknown or its topic is routed nowhere.
func (r *request) topicOfVID(vid [16]byte) (*Backend, string) {
	s := r.c.s
	v, ok := s.vids.Load(vid)
	if !ok {
		// Learned through another peer: derive the ids of the topics the
		// backends know (rare, and bounded by the topic count).
		for _, b := range s.backends.Load().sorted {
			b.topics.Range(func(k, _ any) bool {
				name := k.(string)
				if virtualTopicID(name) == vid {
					s.vids.Store(vid, name)
					v, ok = name, true
					return false
				}
				return true
			})
			if ok {
				break
			}
		}
		if !ok {
			return nil, ""
		}
	}
	name := v.(string)
	return r.route(name), name
}
