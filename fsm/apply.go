package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
)

// Next returns the State that applying cmd at Raft log index produces, or an
// error, wrapping one of the package's sentinels, if cmd is invalid on its
// own or against s. It never modifies s: the new State shares every section
// cmd did not touch and gets fresh slices for the one it did. It is pure and
// deterministic (no clock, randomness or I/O), so every peer computes the
// same State from the same log.
func (s *State) Next(cmd Command, index uint64) (*State, error) {
	if cmd == nil {
		return nil, fmt.Errorf("%w: nil command", ErrInvalid)
	}
	if err := cmd.Validate(); err != nil {
		return nil, err
	}
	ns := *s
	var err error
	switch c := cmd.(type) {
	case *RegisterPeer:
		err = ns.applyRegisterPeer(c)
	case *RemovePeer:
		err = ns.applyRemovePeer(c)
	case *PutCluster:
		err = ns.applyPutCluster(c)
	case *DeleteCluster:
		err = ns.applyDeleteCluster(c)
	case *PutRoute:
		err = ns.applyPutRoute(c)
	case *DeleteRoute:
		err = ns.applyDeleteRoute(c)
	case *PutPrefixRoute:
		err = ns.applyPutPrefixRoute(c)
	case *DeletePrefixRoute:
		err = ns.applyDeletePrefixRoute(c)
	case *PutGroupRoute:
		err = ns.applyPutGroupRoute(c)
	case *DeleteGroupRoute:
		err = ns.applyDeleteGroupRoute(c)
	case *SetDefaultCluster:
		err = ns.applySetDefaultCluster(c)
	case *PutQuota:
		err = ns.applyPutQuota(c)
	case *DeleteQuota:
		err = ns.applyDeleteQuota(c)
	case *PutJob:
		err = ns.applyPutJob(c)
	case *DeleteJob:
		err = ns.applyDeleteJob(c)
	case *SetClusterID:
		err = ns.applySetClusterID(c)
	case *AllowPeer:
		err = ns.applyAllowPeer(c)
	case *DisallowPeer:
		err = ns.applyDisallowPeer(c)
	case *StartMigration:
		err = ns.applyStartMigration(c)
	case *UpdateMigration:
		err = ns.applyUpdateMigration(c)
	case *SwitchMigration:
		err = ns.applySwitchMigration(c)
	case *FinishMigration:
		err = ns.applyFinishMigration(c)
	case *StartOffsetReset:
		err = ns.applyStartOffsetReset(c)
	case *UpdateOffsetReset:
		err = ns.applyUpdateOffsetReset(c)
	case *SetFailover:
		err = ns.applySetFailover(c)
	case *PutRegion:
		err = ns.applyPutRegion(c)
	case *DeleteRegion:
		err = ns.applyDeleteRegion(c)
	case *PutUserCredential:
		err = ns.applyPutUserCredential(c)
	case *DeleteUserCredential:
		err = ns.applyDeleteUserCredential(c)
	case *CreateACLs:
		err = ns.applyCreateACLs(c)
	case *DeleteACLs:
		err = ns.applyDeleteACLs(c)
	case *ClaimProducerID:
		// The producer id table lives beside the State, in the FSM
		// (producer_ids.go): the State only moves to the claim's index.
	default:
		// Unreachable: Command is sealed and every type has a case.
		return nil, fmt.Errorf("%w: %T", ErrUnknownCommand, cmd)
	}
	if err != nil {
		return nil, err
	}
	ns.Index = index
	return &ns, nil
}

// Check reports whether cmd would apply to s, running exactly the code Apply
// runs. The admin API calls it before proposing, to answer 400/404/409
// without a Raft round trip; the leader's Apply still has the last word,
// since the state can change between the check and the commit.
func (s *State) Check(cmd Command) error {
	_, err := s.Next(cmd, s.Index)
	return err
}

// Copy-on-write helpers. Each returns a new slice and never writes to its
// argument's backing array, which an older State may still be reading.

// upsert returns s with v at position i, replacing s[i] if replace, else
// inserted before it.
func upsert[T any](s []T, i int, replace bool, v T) []T {
	n := len(s) + 1
	if replace {
		n--
	}
	out := make([]T, 0, n)
	out = append(out, s[:i]...)
	out = append(out, v)
	if replace {
		return append(out, s[i+1:]...)
	}
	return append(out, s[i:]...)
}

// removeAt returns s without s[i], or nil if that leaves it empty (so a
// State that had an entry put and deleted deep-equals one that never had it).
func removeAt[T any](s []T, i int) []T {
	if len(s) == 1 {
		return nil
	}
	out := make([]T, 0, len(s)-1)
	out = append(out, s[:i]...)
	return append(out, s[i+1:]...)
}

// hasCluster looks clusters up by scanning, not by binary search, so that
// Check also works on a hand-built State whose clusters are unsorted.
func (s *State) hasCluster(name string) bool {
	_, ok := s.Cluster(name)
	return ok
}

func (s *State) requireCluster(what, name string) error {
	if !s.hasCluster(name) {
		return fmt.Errorf("%w: %s names cluster %q; put the cluster first", ErrUnknownCluster, what, name)
	}
	return nil
}

// requireTargets checks that a route's cluster and every cluster its
// targets name exist.
func (s *State) requireTargets(what, cluster string, t RouteTargets) error {
	if err := s.requireCluster(what, cluster); err != nil {
		return err
	}
	if c := t.missingCluster(s.hasCluster); c != "" {
		return fmt.Errorf("%w: %s targets cluster %q; put the cluster first", ErrUnknownCluster, what, c)
	}
	return nil
}

func (s *State) applyRegisterPeer(c *RegisterPeer) error {
	p := c.Peer
	p.LocalBrokers = sortedBrokers(p.LocalBrokers)
	if i := s.peerIndexByName(p.Name); i >= 0 {
		held := s.Peers[i].ID
		if p.ID == AutoPeerID {
			p.ID = held
		} else if p.ID != held {
			return fmt.Errorf("%w: peer name %q already holds id %d, not %d; register with that id or remove the peer first", ErrConflict, p.Name, held, p.ID)
		}
	} else if p.ID == AutoPeerID {
		p.ID = 0
		if n := len(s.Peers); n > 0 {
			last := s.Peers[n-1].ID
			if last == math.MaxInt32 {
				return fmt.Errorf("%w: register peer %q: no peer id above %d is free; pass an explicit id", ErrConflict, p.Name, last)
			}
			p.ID = last + 1
		}
	}
	i, found := slices.BinarySearchFunc(s.Peers, p.ID, cmpPeerID)
	if found && s.Peers[i].Name != p.Name {
		return fmt.Errorf("%w: peer id %d is held by peer %q; pick another id or remove that peer first", ErrConflict, p.ID, s.Peers[i].Name)
	}
	for _, o := range s.Peers {
		if o.ID == p.ID {
			continue
		}
		if o.KafkaAddr == p.KafkaAddr {
			return fmt.Errorf("%w: peers %d and %d would share kafka address %s", ErrConflict, o.ID, p.ID, p.KafkaAddr)
		}
		if p.RaftAddr != "" && o.RaftAddr == p.RaftAddr {
			return fmt.Errorf("%w: peers %d and %d would share raft address %s", ErrConflict, o.ID, p.ID, p.RaftAddr)
		}
		for _, b := range p.LocalBrokers {
			if _, dup := slices.BinarySearchFunc(o.LocalBrokers, b, cmpBrokerRef); dup {
				return fmt.Errorf("%w: broker %d of cluster %q is already local to peer %d", ErrConflict, b.BrokerID, b.Cluster, o.ID)
			}
		}
	}
	s.Peers = upsert(s.Peers, i, found, p)
	return nil
}

func (s *State) applyRemovePeer(c *RemovePeer) error {
	i, ok := slices.BinarySearchFunc(s.Peers, c.ID, cmpPeerID)
	if !ok {
		return fmt.Errorf("%w: peer %d", ErrNotFound, c.ID)
	}
	s.Peers = removeAt(s.Peers, i)
	return nil
}

func (s *State) applyPutCluster(c *PutCluster) error {
	cl := c.Cluster
	cl.Bootstrap = slices.Clone(cl.Bootstrap)
	i, found := slices.BinarySearchFunc(s.Clusters, cl.Name, cmpClusterName)
	s.Clusters = upsert(s.Clusters, i, found, cl)
	return nil
}

func (s *State) applyDeleteCluster(c *DeleteCluster) error {
	i, ok := slices.BinarySearchFunc(s.Clusters, c.Name, cmpClusterName)
	if !ok {
		return fmt.Errorf("%w: cluster %q", ErrNotFound, c.Name)
	}
	if user := s.clusterUser(c.Name); user != "" {
		return fmt.Errorf("%w: cluster %q is used by %s; move or delete that first", ErrInUse, c.Name, user)
	}
	s.Clusters = removeAt(s.Clusters, i)
	s.dropFailover(c.Name)
	return nil
}

// clusterUser names the first thing that refers to cluster, or "".
func (s *State) clusterUser(cluster string) string {
	if s.Routes.DefaultCluster == cluster {
		return "the default cluster setting"
	}
	if slices.Contains(s.Routes.Default.clusters(), cluster) {
		return "the default route's region targets or fallback"
	}
	for _, r := range s.Routes.Topics {
		if r.Cluster == cluster || slices.Contains(r.clusters(), cluster) {
			return fmt.Sprintf("the route for topic %q", r.Topic)
		}
	}
	for _, r := range s.Routes.Prefixes {
		if r.Cluster == cluster || slices.Contains(r.clusters(), cluster) {
			return fmt.Sprintf("the prefix route %q", r.Prefix)
		}
	}
	for _, r := range s.Routes.GroupPrefixes {
		if r.Cluster == cluster || slices.Contains(r.clusters(), cluster) {
			return fmt.Sprintf("the group prefix route %q", r.Prefix)
		}
	}
	return s.migrationUser(cluster)
}

// routeHeld refuses to re-point topic's exact route by hand while a
// migration is under way or the topic has a chain (its offsets are
// virtual): only a migration moves such a topic.
func (s *State) routeHeld(topic, cluster string) error {
	if m, ok := s.Migration(topic); ok && !m.State.Terminal() {
		return fmt.Errorf("%w: topic %q has a %s migration to %q; its route moves with the migration", ErrConflict, topic, m.State, m.To)
	}
	if c := s.Chain(topic); c != nil && c.Live().Cluster != cluster {
		return fmt.Errorf("%w: topic %q was migrated and its offsets are virtual; move it with a migration, not a route", ErrConflict, topic)
	}
	return nil
}

func (s *State) applyPutRoute(c *PutRoute) error {
	if err := s.requireTargets(fmt.Sprintf("route for topic %q", c.Topic), c.Cluster, c.RouteTargets); err != nil {
		return err
	}
	if err := s.routeHeld(c.Topic, c.Cluster); err != nil {
		return err
	}
	r := TopicRoute(*c)
	r.RouteTargets = r.normalized()
	i, found := slices.BinarySearchFunc(s.Routes.Topics, c.Topic, cmpTopicRoute)
	s.Routes.Topics = upsert(s.Routes.Topics, i, found, r)
	return s.regionlessMigrations()
}

func (s *State) applyDeleteRoute(c *DeleteRoute) error {
	i, ok := slices.BinarySearchFunc(s.Routes.Topics, c.Topic, cmpTopicRoute)
	if !ok {
		return fmt.Errorf("%w: route for topic %q", ErrNotFound, c.Topic)
	}
	if err := s.routeHeld(c.Topic, ""); err != nil {
		return err
	}
	s.Routes.Topics = removeAt(s.Routes.Topics, i)
	return nil
}

func (s *State) applyPutPrefixRoute(c *PutPrefixRoute) error {
	if err := s.requireTargets(fmt.Sprintf("prefix route %q", c.Prefix), c.Cluster, c.RouteTargets); err != nil {
		return err
	}
	r := PrefixRoute(*c)
	r.RouteTargets = r.normalized()
	i, found := slices.BinarySearchFunc(s.Routes.Prefixes, c.Prefix, cmpPrefixRoute)
	s.Routes.Prefixes = upsert(s.Routes.Prefixes, i, found, r)
	return s.regionlessMigrations()
}

func (s *State) applyDeletePrefixRoute(c *DeletePrefixRoute) error {
	i, ok := slices.BinarySearchFunc(s.Routes.Prefixes, c.Prefix, cmpPrefixRoute)
	if !ok {
		return fmt.Errorf("%w: prefix route %q", ErrNotFound, c.Prefix)
	}
	s.Routes.Prefixes = removeAt(s.Routes.Prefixes, i)
	return nil
}

func (s *State) applyPutGroupRoute(c *PutGroupRoute) error {
	if err := s.requireTargets(fmt.Sprintf("group prefix route %q", c.Prefix), c.Cluster, c.RouteTargets); err != nil {
		return err
	}
	r := PrefixRoute(*c)
	r.RouteTargets = r.normalized()
	i, found := slices.BinarySearchFunc(s.Routes.GroupPrefixes, c.Prefix, cmpPrefixRoute)
	s.Routes.GroupPrefixes = upsert(s.Routes.GroupPrefixes, i, found, r)
	return nil
}

func (s *State) applyDeleteGroupRoute(c *DeleteGroupRoute) error {
	i, ok := slices.BinarySearchFunc(s.Routes.GroupPrefixes, c.Prefix, cmpPrefixRoute)
	if !ok {
		return fmt.Errorf("%w: group prefix route %q", ErrNotFound, c.Prefix)
	}
	s.Routes.GroupPrefixes = removeAt(s.Routes.GroupPrefixes, i)
	return nil
}

func (s *State) applySetDefaultCluster(c *SetDefaultCluster) error {
	if c.Cluster != "" {
		if err := s.requireTargets("the default cluster setting", c.Cluster, c.RouteTargets); err != nil {
			return err
		}
	}
	s.Routes.DefaultCluster = c.Cluster
	s.Routes.Default = c.RouteTargets.normalized()
	return s.regionlessMigrations()
}

func (s *State) applyPutQuota(c *PutQuota) error {
	i, found := slices.BinarySearchFunc(s.Quotas, c.Quota.key(), cmpQuotaKey)
	s.Quotas = upsert(s.Quotas, i, found, c.Quota)
	return nil
}

func (s *State) applyDeleteQuota(c *DeleteQuota) error {
	i, ok := slices.BinarySearchFunc(s.Quotas, quotaKey{c.Topic, c.Prefix}, cmpQuotaKey)
	if !ok {
		what := "topic"
		if c.Prefix {
			what = "prefix"
		}
		return fmt.Errorf("%w: quota for %s %q", ErrNotFound, what, c.Topic)
	}
	s.Quotas = removeAt(s.Quotas, i)
	return nil
}

func (s *State) applyPutJob(c *PutJob) error {
	j := c.Job
	j.Spec = canonicalSpec(j.Spec)
	i, found := slices.BinarySearchFunc(s.Jobs, j.ID, cmpJobID)
	if found {
		old := s.Jobs[i]
		switch {
		case sameJob(old, j):
			// A retried proposal (the reply to the first was lost) is a
			// no-op, not a conflict.
		case old.State.Terminal():
			return fmt.Errorf("%w: job %q is already %s; create a new job instead", ErrConflict, j.ID, old.State)
		case old.Kind != j.Kind:
			return fmt.Errorf("%w: job %q is a %q job, not %q; a job cannot change its kind", ErrConflict, j.ID, old.Kind, j.Kind)
		case old.CreatedAt != j.CreatedAt:
			return fmt.Errorf("%w: job %q was created at %d, not %d; keep created_at when updating a job", ErrConflict, j.ID, old.CreatedAt, j.CreatedAt)
		}
	}
	s.Jobs = upsert(s.Jobs, i, found, j)
	return nil
}

func (s *State) applyDeleteJob(c *DeleteJob) error {
	i, ok := slices.BinarySearchFunc(s.Jobs, c.ID, cmpJobID)
	if !ok {
		return fmt.Errorf("%w: job %q", ErrNotFound, c.ID)
	}
	s.Jobs = removeAt(s.Jobs, i)
	return nil
}

func sameJob(a, b Job) bool {
	return a.ID == b.ID && a.Kind == b.Kind && a.State == b.State && bytes.Equal(a.Spec, b.Spec) &&
		a.CreatedAt == b.CreatedAt && a.UpdatedAt == b.UpdatedAt
}

// canonicalSpec returns spec as encoding/json writes a RawMessage (compact,
// HTML-escaped), or nil for an absent or null spec, so that a State
// round-trips through a snapshot to a deep-equal State. spec must be valid
// JSON (validateJob checks).
func canonicalSpec(spec json.RawMessage) json.RawMessage {
	if len(spec) == 0 {
		return nil
	}
	b, err := json.Marshal(spec)
	if err != nil || string(b) == "null" {
		return nil
	}
	return b
}

func (s *State) applySetClusterID(c *SetClusterID) error {
	if s.ClusterID != "" && s.ClusterID != c.ID {
		return fmt.Errorf("%w: the cluster id is already %q; it never changes", ErrConflict, s.ClusterID)
	}
	s.ClusterID = c.ID
	return nil
}

func (s *State) applyAllowPeer(c *AllowPeer) error {
	i, found := slices.BinarySearch(s.PeerAllowList, c.Name)
	if found {
		return nil
	}
	if len(s.PeerAllowList) >= MaxAllowedPeers {
		return fmt.Errorf("%w: the peer allow-list already holds %d names, the most it may; disallow retired ones first", ErrInvalid, MaxAllowedPeers)
	}
	s.PeerAllowList = upsert(s.PeerAllowList, i, false, c.Name)
	return nil
}

func (s *State) applyDisallowPeer(c *DisallowPeer) error {
	i, found := slices.BinarySearch(s.PeerAllowList, c.Name)
	if !found {
		return fmt.Errorf("%w: peer %q is not on the allow-list", ErrNotFound, c.Name)
	}
	s.PeerAllowList = removeAt(s.PeerAllowList, i)
	return nil
}
