package fsm

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Failover is the failover section: per backend cluster, whether its routes
// are on it or moved to their fallbacks (docs/regions.md, "Failover and
// failback"). A cluster with no entry is active. The leader's failover
// driver (node/failover.go) and the operator's POST /v1/failover|failback
// write it with SetFailover; Apply only checks the transition.
type Failover struct {
	// Clusters are the clusters' failover entries, sorted by Cluster.
	Clusters []ClusterFailover `json:"clusters,omitempty"`
}

// FailoverState is where a cluster is in failover.
type FailoverState string

// Failover states. Routes move to their fallback only in FailoverMoved and
// FailoverFailingBack; FailoverDown is a cluster seen down whose routes did
// not move (none of them has a fallback that is active). FailoverFailingBack
// is the draining failback: Produce is back on the cluster while consumers
// stay on the fallback until their groups have read what was written there
// (ProduceRouteForRegion; node/failover.go decides when it ends).
const (
	FailoverActive      FailoverState = "active"
	FailoverDown        FailoverState = "down"
	FailoverMoved       FailoverState = "failed-over"
	FailoverFailingBack FailoverState = "failing-back"
)

func (s FailoverState) known() bool {
	switch s {
	case FailoverActive, FailoverDown, FailoverMoved, FailoverFailingBack:
		return true
	}
	return false
}

// Moved reports whether routes targeting a cluster in this state resolve to
// their fallback for consumers (and every key but Produce's).
func (s FailoverState) Moved() bool { return s == FailoverMoved || s == FailoverFailingBack }

// ProduceMoved reports whether Produce for routes targeting a cluster in
// this state goes to their fallback: in failed-over only, since a draining
// failback (failing-back) writes to the recovered cluster already.
func (s FailoverState) ProduceMoved() bool { return s == FailoverMoved }

// ClusterFailover is one cluster's failover entry.
type ClusterFailover struct {
	Cluster string        `json:"cluster"`
	State   FailoverState `json:"state"`
	// Since is when the cluster entered State, unix milliseconds, fixed by
	// the leader in the command.
	Since int64 `json:"since"`
	// RoutesMoved is how many routes (exact, prefix, group prefix and the
	// default) had a fallback to move to when the state was set.
	RoutesMoved int `json:"routes_moved"`
	// Manual is set when the operator set this state (POST
	// /v1/failover|failback): the automatic driver leaves a manual entry
	// alone until health agrees with it.
	Manual bool `json:"manual,omitempty"`
}

// failoverTransitions are the allowed state changes; a cluster with no
// entry is active. A change to the same state is allowed only to flip Manual
// or update RoutesMoved.
var failoverTransitions = map[FailoverState][]FailoverState{
	FailoverActive:      {FailoverDown, FailoverMoved},
	FailoverDown:        {FailoverActive, FailoverMoved},
	FailoverMoved:       {FailoverFailingBack, FailoverActive},
	FailoverFailingBack: {FailoverActive, FailoverMoved},
}

// SetFailover sets one cluster's failover entry.
type SetFailover struct {
	Entry ClusterFailover `json:"entry"`
}

func (*SetFailover) Type() CommandType { return TypeSetFailover }
func (*SetFailover) isCommand()        {}
func (c *SetFailover) Validate() error { return validateClusterFailover(c.Entry) }

func validateClusterFailover(e ClusterFailover) error {
	if err := validName("failover cluster", e.Cluster); err != nil {
		return err
	}
	if !e.State.known() {
		return fmt.Errorf("%w: failover state %q of cluster %q is not one of active, down, failed-over, failing-back", ErrInvalid, e.State, e.Cluster)
	}
	if e.Since < 0 {
		return fmt.Errorf("%w: failover of cluster %q since %d", ErrInvalid, e.Cluster, e.Since)
	}
	if e.RoutesMoved < 0 {
		return fmt.Errorf("%w: failover of cluster %q moves %d routes", ErrInvalid, e.Cluster, e.RoutesMoved)
	}
	return nil
}

// ClusterFailover returns cluster's failover entry; a cluster without one
// is active since 0.
func (s *State) ClusterFailover(cluster string) ClusterFailover {
	if i, ok := slices.BinarySearchFunc(s.Failover.Clusters, cluster, cmpFailover); ok {
		return s.Failover.Clusters[i]
	}
	return ClusterFailover{Cluster: cluster, State: FailoverActive}
}

func cmpFailover(e ClusterFailover, name string) int { return strings.Compare(e.Cluster, name) }

func (s *State) applySetFailover(c *SetFailover) error {
	e := c.Entry
	if err := s.requireCluster("failover", e.Cluster); err != nil {
		return err
	}
	cur := s.ClusterFailover(e.Cluster)
	if cur.State == e.State {
		if cur.Manual == e.Manual && cur.RoutesMoved == e.RoutesMoved {
			return fmt.Errorf("%w: cluster %q is already %s", ErrConflict, e.Cluster, e.State)
		}
		e.Since = cur.Since // the state did not change
	} else if !slices.Contains(failoverTransitions[cur.State], e.State) {
		return fmt.Errorf("%w: cluster %q cannot go from %s to %s", ErrConflict, e.Cluster, cur.State, e.State)
	}
	i, found := slices.BinarySearchFunc(s.Failover.Clusters, e.Cluster, cmpFailover)
	s.Failover = Failover{Clusters: upsert(s.Failover.Clusters, i, found, e)}
	return nil
}

// dropFailover removes a deleted cluster's entry.
func (s *State) dropFailover(cluster string) {
	if i, ok := slices.BinarySearchFunc(s.Failover.Clusters, cluster, cmpFailover); ok {
		s.Failover = Failover{Clusters: removeAt(s.Failover.Clusters, i)}
	}
}

// failoverTarget is where a route whose chosen cluster is cluster goes: the
// cluster itself unless it is failed over (for produce, failed over and not
// failing back), else the first cluster of the route's Fallback that is
// active (neither moved nor down); with none, the cluster itself (there is
// nowhere better to send the client).
func (s *State) failoverTarget(route RouteTargets, cluster string, produce bool) string {
	if cluster == "" || len(route.Fallback) == 0 || len(s.Failover.Clusters) == 0 {
		return cluster
	}
	st := s.ClusterFailover(cluster).State
	if !st.Moved() || produce && !st.ProduceMoved() {
		return cluster
	}
	if fb := s.FallbackFor(route, cluster); fb != "" {
		return fb
	}
	return cluster
}

// FailoverRoutes counts the routes whose configured cluster is cluster and
// that have a fallback other than it: the routes a failover of cluster can
// move. The leader puts it in SetFailover.RoutesMoved; the admin API refuses
// a manual failover of a cluster with none.
func (s *State) FailoverRoutes(cluster string) int {
	n := 0
	s.eachRoute(func(c string, t RouteTargets) {
		if t.Targets(c, cluster) && slices.ContainsFunc(t.Fallback, func(fb string) bool { return fb != cluster }) {
			n++
		}
	})
	return n
}

// FailbackFallbacks lists, sorted, the clusters that cluster's movable
// routes are on while it is failed over or failing back: for each route
// that targets it and has a fallback, the first active one (FallbackFor).
// A draining failback waits for the groups on these.
func (s *State) FailbackFallbacks(cluster string) []string {
	var out []string
	s.eachRoute(func(c string, t RouteTargets) {
		if !t.Targets(c, cluster) || len(t.Fallback) == 0 {
			return
		}
		if fb := s.FallbackFor(t, cluster); fb != "" && !slices.Contains(out, fb) {
			out = append(out, fb)
		}
	})
	slices.Sort(out)
	return out
}

// eachRoute calls fn with every routing rule's cluster and targets: exact
// topic routes, topic prefixes, group prefixes and the default route.
func (s *State) eachRoute(fn func(cluster string, t RouteTargets)) {
	for _, r := range s.Routes.Topics {
		fn(r.Cluster, r.RouteTargets)
	}
	for _, rs := range [][]PrefixRoute{s.Routes.Prefixes, s.Routes.GroupPrefixes} {
		for _, r := range rs {
			fn(r.Cluster, r.RouteTargets)
		}
	}
	fn(s.Routes.DefaultCluster, s.Routes.Default)
}

// GroupHomeMovedAt is when the failover state last changed (unix ms) of
// the cluster a client of region's group calls home when nothing is failed
// over, if the group's rule has a fallback that can move it; 0 otherwise.
// After a failover or failback moved the group, its members' sessions are
// on the cluster it left: the data plane defers their commits for a while
// (kafka/08_offset_commit.go) so that the heartbeat tells them first.
func (s *State) GroupHomeMovedAt(group, region string) int64 {
	if len(s.Failover.Clusters) == 0 {
		return 0
	}
	cluster, t, _ := s.Routes.prefixOrDefault(s.Routes.GroupPrefixes, group)
	if len(t.Fallback) == 0 {
		return 0
	}
	return s.ClusterFailover(t.clusterFor(cluster, region)).Since
}

// FailbackManual reports whether some route of cluster that a failover
// moves asks for manual failback: the automatic driver then leaves the
// cluster failed over until the operator's POST /v1/failback.
func (s *State) FailbackManual(cluster string) bool {
	manual := false
	s.eachRoute(func(c string, t RouteTargets) {
		manual = manual || t.Targets(c, cluster) && len(t.Fallback) > 0 && t.Failback == FailbackManual
	})
	return manual
}

// validateFailover checks the section: entries valid, sorted, unique, and
// naming defined clusters.
func validateFailover(f *Failover, clusters map[string]bool) error {
	for i, e := range f.Clusters {
		if err := validateClusterFailover(e); err != nil {
			return err
		}
		if !clusters[e.Cluster] {
			return fmt.Errorf("%w: failover entry names cluster %q", ErrUnknownCluster, e.Cluster)
		}
		if i > 0 && f.Clusters[i-1].Cluster >= e.Cluster {
			return fmt.Errorf("%w: failover entries not sorted by unique cluster at %q", ErrInvalid, e.Cluster)
		}
	}
	return nil
}

// Failover delays.
const (
	// DefaultDownAfterMS and DefaultUpAfterMS apply when a Cluster leaves
	// DownAfterMS or UpAfterMS at 0.
	DefaultDownAfterMS = 10_000
	DefaultUpAfterMS   = 60_000
	// DefaultFailbackDrainMS applies when a Cluster leaves
	// FailbackDrainMS at 0.
	DefaultFailbackDrainMS = 120_000
	// MaxFailoverDelayMS bounds both (a day).
	MaxFailoverDelayMS = 86_400_000
)

// DownAfter is how long, in milliseconds, c must be seen down before it is
// failed over.
func (c Cluster) DownAfter() int64 { return cmp.Or(c.DownAfterMS, DefaultDownAfterMS) }

// UpAfter is how long, in milliseconds, c must be seen up again before it
// fails back.
func (c Cluster) UpAfter() int64 { return cmp.Or(c.UpAfterMS, DefaultUpAfterMS) }

// FailbackDrain is how long, in milliseconds, a failback of c keeps
// consumers on the fallback at most, waiting for their groups to read what
// was written there, before it moves them back anyway.
func (c Cluster) FailbackDrain() int64 { return cmp.Or(c.FailbackDrainMS, DefaultFailbackDrainMS) }

// ConfiguredRouteTargets is the cluster and targets of the route that
// governs topic, before failover.
func (s *State) ConfiguredRouteTargets(topic string) (string, RouteTargets) {
	cluster, t, _ := s.topicRule(topic)
	return cluster, t
}

// FallbackFor is where a route with targets t moves when cluster fails
// over: the first cluster of its Fallback, other than cluster, that is
// active; "" when there is none.
func (s *State) FallbackFor(t RouteTargets, cluster string) string {
	for _, fb := range t.Fallback {
		if fb != cluster && s.hasCluster(fb) && s.ClusterFailover(fb).State == FailoverActive {
			return fb
		}
	}
	return ""
}

// Targets reports whether a rule whose cluster is ruleCluster, with these
// targets, sends some clients to cluster: as its cluster or as some
// region's.
func (t RouteTargets) Targets(ruleCluster, cluster string) bool {
	if ruleCluster == cluster {
		return true
	}
	for _, c := range t.Regions {
		if c == cluster {
			return true
		}
	}
	return false
}
