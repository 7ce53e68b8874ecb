package fsm

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Regions (issue 11, docs/regions.md). A region is a set of client
// networks: a client's region is the region of the longest network that
// holds its address, else the region of the peer it connected to. Peers
// present only their client's region's peers (kafka/present.go), and a
// route may name a cluster per region (RouteTargets.Regions).

// Bounds on the regions section and on a route's targets. They keep the
// per-connection region lookup and every log entry small.
const (
	MaxRegions         = 256 // regions in the state
	MaxRegionNetworks  = 64  // networks of one region
	MaxRegionFallbacks = 16  // fallback regions of one region
	MaxRouteRegions    = 64  // entries of a route's Regions
	MaxRouteFallbacks  = 16  // clusters of a route's Fallback
)

// Region is a named set of client networks.
type Region struct {
	// Name is the region's name, the same word peers give as their region
	// (Peer.Region) and routes use as keys of RouteTargets.Regions.
	Name string `json:"name"`
	// Networks are the client networks of the region, CIDR prefixes in
	// canonical form (masked, as netip.Prefix prints it), sorted, unique.
	// A network belongs to one region only.
	Networks []string `json:"networks,omitempty"`
	// Fallback are the regions whose peers serve this region's clients,
	// in order, when none of its own peers is live.
	Fallback []string `json:"fallback,omitempty"`
}

// PutRegion adds a region or replaces the one with the same Name. Its
// networks are stored in canonical form; every fallback region must exist.
type PutRegion struct {
	Region Region `json:"region"`
}

// DeleteRegion removes a region no other region names as a fallback.
type DeleteRegion struct {
	Name string `json:"name"`
}

func (*PutRegion) Type() CommandType    { return TypePutRegion }
func (*DeleteRegion) Type() CommandType { return TypeDeleteRegion }
func (*PutRegion) isCommand()           {}
func (*DeleteRegion) isCommand()        {}
func (c *PutRegion) Validate() error    { return validateRegion(c.Region, false) }
func (c *DeleteRegion) Validate() error { return validName("region", c.Name) }

// Region returns the region named name.
func (s *State) Region(name string) (Region, bool) {
	i, ok := slices.BinarySearchFunc(s.Regions, name, cmpRegionName)
	if !ok {
		return Region{}, false
	}
	return s.Regions[i], true
}

// ClientRegion is the region of a client at ip that connected to a peer of
// peerRegion: the region of the longest network holding ip, else
// peerRegion. Networks are unique across regions, so the answer is unique.
// It scans every network (at most MaxRegions × MaxRegionNetworks); callers
// on the data path cache it per connection and state.
func (s *State) ClientRegion(ip netip.Addr, peerRegion string) string {
	if !ip.IsValid() || len(s.Regions) == 0 {
		return peerRegion
	}
	ip = ip.Unmap()
	best, bestBits := peerRegion, -1
	for _, r := range s.Regions {
		for _, n := range r.Networks {
			p, err := netip.ParsePrefix(n)
			if err != nil || p.Bits() <= bestBits || !p.Contains(ip) {
				continue
			}
			best, bestBits = r.Name, p.Bits()
		}
	}
	return best
}

// RouteForRegion is RouteFor for a client of region: the matching rule's
// cluster for that region (RouteTargets.Regions), else the rule's Cluster.
// Region "" is RouteFor.
func (s *State) RouteForRegion(topic, region string) (cluster string, m RouteMatch) {
	cluster, t, m := s.topicRule(topic)
	return s.failoverTarget(t, t.clusterFor(cluster, region), false), m
}

// ProduceRouteForRegion is where a client of region writes topic's records
// (Produce, AddPartitionsToTxn): RouteForRegion, except that while the
// route's cluster fails back (FailoverFailingBack) its records go to that
// cluster already and everything else, consumers above all, stays on the
// fallback until the groups there have read what was written to it.
func (s *State) ProduceRouteForRegion(topic, region string) (cluster string, m RouteMatch) {
	cluster, t, m := s.topicRule(topic)
	return s.failoverTarget(t, t.clusterFor(cluster, region), true), m
}

// GroupHomeForRegion is GroupHome for a client of region, resolved like
// RouteForRegion.
func (s *State) GroupHomeForRegion(group, region string) (cluster string, m RouteMatch) {
	cluster, t, m := s.Routes.prefixOrDefault(s.Routes.GroupPrefixes, group)
	return s.failoverTarget(t, t.clusterFor(cluster, region), false), m
}

// DefaultClusterForRegion is the default route's cluster for a client of
// region: its Regions entry, else DefaultCluster ("" when none is set).
func (s *State) DefaultClusterForRegion(region string) string {
	return s.failoverTarget(s.Routes.Default, s.Routes.Default.clusterFor(s.Routes.DefaultCluster, region), false)
}

// clusterFor is the cluster a client of region uses under a rule whose
// cluster is cluster.
func (t *RouteTargets) clusterFor(cluster, region string) string {
	if region != "" && cluster != "" {
		if c, ok := t.Regions[region]; ok {
			return c
		}
	}
	return cluster
}

// HasRegions reports whether the targets send some region elsewhere than
// the route's cluster.
func (t *RouteTargets) HasRegions() bool { return len(t.Regions) > 0 }

// topicRule is the rule that routes topic: its cluster, targets and match.
func (s *State) topicRule(topic string) (string, RouteTargets, RouteMatch) {
	if i, ok := slices.BinarySearchFunc(s.Routes.Topics, topic, cmpTopicRoute); ok {
		r := s.Routes.Topics[i]
		return r.Cluster, r.RouteTargets, RouteMatch{MatchExact, r.Topic}
	}
	return s.Routes.prefixOrDefault(s.Routes.Prefixes, topic)
}

func (s *State) applyPutRegion(c *PutRegion) error {
	r := c.Region.Canonical()
	i, found := slices.BinarySearchFunc(s.Regions, r.Name, cmpRegionName)
	if !found && len(s.Regions) >= MaxRegions {
		return fmt.Errorf("%w: %d regions are defined, the most allowed; delete one first", ErrInvalid, MaxRegions)
	}
	for _, f := range r.Fallback {
		if _, ok := s.Region(f); !ok {
			return fmt.Errorf("%w: region %q names fallback region %q, which is not defined; put that region first", ErrInvalid, r.Name, f)
		}
	}
	for _, o := range s.Regions {
		if o.Name == r.Name {
			continue
		}
		for _, n := range r.Networks {
			if _, dup := slices.BinarySearch(o.Networks, n); dup {
				return fmt.Errorf("%w: network %s already belongs to region %q", ErrConflict, n, o.Name)
			}
		}
	}
	s.Regions = upsert(s.Regions, i, found, r)
	return nil
}

func (s *State) applyDeleteRegion(c *DeleteRegion) error {
	i, ok := slices.BinarySearchFunc(s.Regions, c.Name, cmpRegionName)
	if !ok {
		return fmt.Errorf("%w: region %q", ErrNotFound, c.Name)
	}
	for _, o := range s.Regions {
		if o.Name != c.Name && slices.Contains(o.Fallback, c.Name) {
			return fmt.Errorf("%w: region %q is a fallback of region %q; change that region first", ErrInUse, c.Name, o.Name)
		}
	}
	s.Regions = removeAt(s.Regions, i)
	return nil
}

// Canonical returns r as PutRegion stores it: networks masked, sorted and
// unique, fresh slices (empty ones nil).
func (r Region) Canonical() Region {
	r.Networks = canonicalNetworks(r.Networks)
	r.Fallback = nilIfEmpty(slices.Clone(r.Fallback))
	return r
}

// canonicalNetworks returns nets masked, sorted and unique; nets must be
// valid prefixes (validateRegion).
func canonicalNetworks(nets []string) []string {
	if len(nets) == 0 {
		return nil
	}
	out := make([]string, 0, len(nets))
	for _, n := range nets {
		if p, err := netip.ParsePrefix(n); err == nil {
			out = append(out, p.Masked().String())
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// validateRegion checks a region on its own; canonical (a restored state)
// also demands the networks in canonical form.
func validateRegion(r Region, canonical bool) error {
	if err := validName("region", r.Name); err != nil {
		return err
	}
	what := fmt.Sprintf("region %q", r.Name)
	if len(r.Networks) > MaxRegionNetworks {
		return fmt.Errorf("%w: %s has %d networks, at most %d allowed", ErrInvalid, what, len(r.Networks), MaxRegionNetworks)
	}
	for i, n := range r.Networks {
		if len(n) > 64 {
			return fmt.Errorf("%w: %s network %.64q... is not a CIDR prefix", ErrInvalid, what, n)
		}
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return fmt.Errorf("%w: %s network %q is not a CIDR prefix like 10.1.0.0/16 or fd00::/8", ErrInvalid, what, n)
		}
		if canonical {
			if c := p.Masked().String(); c != n {
				return fmt.Errorf("%w: %s network %q is not in canonical form %q", ErrInvalid, what, n, c)
			}
			if i > 0 && r.Networks[i-1] >= n {
				return fmt.Errorf("%w: %s networks not sorted or repeat %q", ErrInvalid, what, n)
			}
		}
	}
	if len(r.Fallback) > MaxRegionFallbacks {
		return fmt.Errorf("%w: %s has %d fallback regions, at most %d allowed", ErrInvalid, what, len(r.Fallback), MaxRegionFallbacks)
	}
	for i, f := range r.Fallback {
		if err := validName(what+" fallback region", f); err != nil {
			return err
		}
		if f == r.Name {
			return fmt.Errorf("%w: %s names itself as a fallback", ErrInvalid, what)
		}
		if slices.Contains(r.Fallback[:i], f) {
			return fmt.Errorf("%w: %s names fallback region %q twice", ErrInvalid, what, f)
		}
	}
	return nil
}

// validateRegions checks the regions section of a state: sorted unique
// names, fallbacks that exist, networks in one region only.
func validateRegions(regions []Region) error {
	if len(regions) > MaxRegions {
		return fmt.Errorf("%w: %d regions, at most %d allowed", ErrInvalid, len(regions), MaxRegions)
	}
	names := make(map[string]bool, len(regions))
	owner := map[string]string{}
	for i, r := range regions {
		if err := validateRegion(r, true); err != nil {
			return err
		}
		if i > 0 && regions[i-1].Name >= r.Name {
			return fmt.Errorf("%w: regions not sorted by unique name at %q", ErrInvalid, r.Name)
		}
		names[r.Name] = true
		for _, n := range r.Networks {
			if o, dup := owner[n]; dup {
				return fmt.Errorf("%w: network %s belongs to regions %q and %q", ErrInvalid, n, o, r.Name)
			}
			owner[n] = r.Name
		}
	}
	for _, r := range regions {
		for _, f := range r.Fallback {
			if !names[f] {
				return fmt.Errorf("%w: region %q names unknown fallback region %q", ErrInvalid, r.Name, f)
			}
		}
	}
	return nil
}

// validateTargets checks a route's targets on its own (what names a route
// in messages); cluster is the route's cluster, empty only for a cleared
// default, which must then have no targets.
func validateTargets(what, cluster string, t RouteTargets) error {
	if cluster == "" && !t.empty() {
		return fmt.Errorf("%w: %s has region targets or a failover policy but no cluster", ErrInvalid, what)
	}
	if len(t.Regions) > MaxRouteRegions {
		return fmt.Errorf("%w: %s names %d regions, at most %d allowed", ErrInvalid, what, len(t.Regions), MaxRouteRegions)
	}
	for region, c := range t.Regions {
		if err := validName(what+" region", region); err != nil {
			return err
		}
		if err := validName(fmt.Sprintf("%s region %q: cluster", what, region), c); err != nil {
			return err
		}
	}
	if len(t.Fallback) > MaxRouteFallbacks {
		return fmt.Errorf("%w: %s has %d fallback clusters, at most %d allowed", ErrInvalid, what, len(t.Fallback), MaxRouteFallbacks)
	}
	for i, c := range t.Fallback {
		if err := validName(what+" fallback cluster", c); err != nil {
			return err
		}
		if slices.Contains(t.Fallback[:i], c) {
			return fmt.Errorf("%w: %s names fallback cluster %q twice", ErrInvalid, what, c)
		}
	}
	switch t.Resume {
	case "", ResumeCommitted, ResumeTimestamp, ResumeLatest, ResumeEarliest:
	default:
		return fmt.Errorf("%w: %s resume %q is not one of %s, %s, %s, %s", ErrInvalid, what, t.Resume, ResumeCommitted, ResumeTimestamp, ResumeLatest, ResumeEarliest)
	}
	switch t.Failback {
	case "", FailbackAuto, FailbackManual:
	default:
		return fmt.Errorf("%w: %s failback %q is not %s or %s", ErrInvalid, what, t.Failback, FailbackAuto, FailbackManual)
	}
	return nil
}

func (t *RouteTargets) empty() bool {
	return len(t.Regions) == 0 && len(t.Fallback) == 0 && t.Resume == "" && t.Failback == ""
}

// clusters are every cluster the targets name, sorted by region then
// fallback order.
func (t *RouteTargets) clusters() []string {
	out := make([]string, 0, len(t.Regions)+len(t.Fallback))
	for _, k := range sortedKeys(t.Regions) {
		out = append(out, t.Regions[k])
	}
	return append(out, t.Fallback...)
}

// missingCluster is the first cluster the targets name that has is false
// for, or "".
func (t *RouteTargets) missingCluster(has func(string) bool) string {
	for _, c := range t.clusters() {
		if !has(c) {
			return c
		}
	}
	return ""
}

// normalized returns t with empty collections nil and the map copied, so a
// stored route never shares a map with a command and a restored state
// deep-equals the applied one.
func (t RouteTargets) normalized() RouteTargets {
	if len(t.Regions) == 0 {
		t.Regions = nil
	} else {
		m := make(map[string]string, len(t.Regions))
		for k, v := range t.Regions {
			m[k] = v
		}
		t.Regions = m
	}
	t.Fallback = nilIfEmpty(slices.Clone(t.Fallback))
	return t
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// regionlessMigrations refuses a state in which a topic under migration,
// or with a segment chain, is routed by a rule with region targets: the
// migration moves the topic's one route (its offsets are virtual on one
// cluster at a time), so no region may be sent elsewhere.
func (s *State) regionlessMigrations() error {
	check := func(topic, why string) error {
		if _, t, m := s.topicRule(topic); t.HasRegions() {
			return fmt.Errorf("%w: topic %q %s and its route (%s) would send regions to other clusters; region targets are refused for it", ErrConflict, topic, why, m)
		}
		return nil
	}
	for _, m := range s.Migrations {
		if !m.State.Terminal() {
			if err := check(m.Topic, fmt.Sprintf("has a %s migration", m.State)); err != nil {
				return err
			}
		}
	}
	for _, c := range s.Chains {
		if err := check(c.Topic, "was migrated (its offsets are virtual)"); err != nil {
			return err
		}
	}
	return nil
}

func cmpRegionName(r Region, name string) int { return strings.Compare(r.Name, name) }
