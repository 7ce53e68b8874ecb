package kafka

import (
	"slices"
	"sort"
	"strings"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// Several backend clusters behind one set of peers (metadata sharing).
//
// Every topic resolves to one cluster through the replicated routes (exact
// name, longest prefix, default cluster); consumer groups and transactional
// ids resolve to a home cluster through the group prefix rules, else the
// default cluster. A request is split by cluster first and by broker within
// a cluster second; topics no rule routes are answered by the proxy with
// UNKNOWN_TOPIC_OR_PARTITION. Requests that name no topic go to the default
// cluster (see route.go for each key).

// backendSet is the immutable set of backends the data plane serves.
type backendSet struct {
	byName map[string]*Backend
	sorted []*Backend // by name
}

func newBackendSet(bs []*Backend) *backendSet {
	set := &backendSet{byName: make(map[string]*Backend, len(bs))}
	for _, b := range bs {
		set.byName[b.Name()] = b
		set.sorted = append(set.sorted, b)
	}
	sort.Slice(set.sorted, func(i, j int) bool { return set.sorted[i].Name() < set.sorted[j].Name() })
	return set
}

// SetBackends replaces the backend clusters the data plane serves. The node
// calls it whenever the replicated cluster definitions change; requests
// already routed finish on the backends they chose.
func (s *Server) SetBackends(bs []*Backend) {
	s.backends.Store(newBackendSet(bs))
}

func (s *Server) backendSet() *backendSet { return s.backends.Load() }

// defaultBackend is the default backend under the current state, for
// callers outside a request (a request uses its own, pipeline.go).
func (s *Server) defaultBackend() *Backend {
	return s.backends.Load().fallback(s.view.State(), "")
}

// fallback serves what names no topic or group for a client of region:
// the default route's cluster for that region, else the first by name;
// nil when there is none.
func (set *backendSet) fallback(st *fsm.State, region string) *Backend {
	if b := set.byName[st.DefaultClusterForRegion(region)]; b != nil {
		return b
	}
	if len(set.sorted) == 0 {
		return nil
	}
	return set.sorted[0]
}

// route returns the backend that serves topic for a client of region, or
// nil when no rule routes it (or its cluster has no backend here yet);
// with produce, the one its records are written to (they differ only while
// the route's cluster fails back).
func (set *backendSet) route(st *fsm.State, topic, region string, produce bool) *Backend {
	var name string
	if produce {
		name, _ = st.ProduceRouteForRegion(topic, region)
	} else {
		name, _ = st.RouteForRegion(topic, region)
	}
	if name == "" {
		return nil
	}
	return set.byName[name]
}

// home returns the home backend of a consumer group or transactional id
// for a client of region.
func (set *backendSet) home(st *fsm.State, key, region string) *Backend {
	name, _ := st.GroupHomeForRegion(key, region)
	if b := set.byName[name]; name != "" && b != nil {
		return b
	}
	return set.fallback(st, region)
}

// target is where a piece of a request goes: a broker of a backend. A
// broker of -1 means any broker of that backend because the one wanted (a
// partition's leader, the controller, a coordinator) is not known, which
// asks the backend for a metadata refresh; anyBroker means any broker by
// intent; a nil backend means nowhere (answered by the proxy).
type target struct {
	be     *Backend
	broker int32
}

// anyBroker is the broker of a target any broker of its backend can serve
// (Metadata, FindCoordinator, the listings). Unlike -1 it says nothing
// about the proxy's metadata being stale, so it triggers no refresh: before
// it existed every client Metadata (and FindCoordinator) asked its
// backend for a full metadata refresh on top of the request itself.
const anyBroker int32 = -2

func cmpTarget(a, b target) int {
	an, bn := "", ""
	if a.be != nil {
		an = a.be.Name()
	}
	if b.be != nil {
		bn = b.be.Name()
	}
	if c := strings.Compare(an, bn); c != 0 {
		return c
	}
	return int(a.broker) - int(b.broker)
}

// targetOrder returns the keys of m in a deterministic order.
func targetOrder[V any](m map[target]V) []target {
	ts := make([]target, 0, len(m))
	for t := range m {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, cmpTarget)
	return ts
}

// TopicConflict is a topic that exists in more than one backend cluster;
// clients see only the copy in the cluster its route names.
type TopicConflict struct {
	Topic    string   `json:"topic"`
	Clusters []string `json:"clusters"`
	RoutedTo string   `json:"routed_to"`
}

// TopicConflicts lists topics present in several backends' metadata.
func (s *Server) TopicConflicts() []TopicConflict {
	set := s.backends.Load()
	if len(set.sorted) < 2 {
		return nil
	}
	in := map[string][]string{}
	for _, b := range set.sorted {
		b.topics.Range(func(k, _ any) bool {
			name := k.(string)
			in[name] = append(in[name], b.Name())
			return true
		})
	}
	st := s.view.State()
	var out []TopicConflict
	for name, cls := range in {
		if len(cls) < 2 || strings.HasPrefix(name, "__") {
			continue
		}
		routed, _ := st.RouteFor(name)
		out = append(out, TopicConflict{Topic: name, Clusters: cls, RoutedTo: routed})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out
}

// Topics lists the topics every backend knows, deduplicated (for quota
// prefix rules).
func (s *Server) Topics() []string {
	seen := map[string]bool{}
	var out []string
	for _, b := range s.backends.Load().sorted {
		b.topics.Range(func(k, _ any) bool {
			if name := k.(string); !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
			return true
		})
	}
	return out
}
