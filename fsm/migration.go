package fsm

// Live topic migrations and the segment chains they leave (issue 9).
//
// A migrated topic's partitions are chains of segments on several clusters;
// clients see one virtual offset space. A segment says, per partition, the
// virtual offset where it starts and the cluster's own (physical) offset at
// that point, and how much its cluster's leader epochs are raised when
// presented. Only the last segment is written to; the one before it, while
// its migration is switched and not finished, still serves reads below the
// last one's start ("chained reads"). Finished migrations retire their
// source segment: it is kept in the chain (so a topic can move back to a
// cluster that still holds its old data) but never read again.
//
// A migration is a replicated record the leader drives phase by phase
// (node/migrate.go); every peer enforces its fence in the data plane.

import (
	"fmt"
	"slices"
	"strings"
)

// MigrationState is where a migration is in its life.
type MigrationState string

// Migration states. Finished, aborted and failed are terminal.
const (
	// MigrationRunning: preparing or fencing; clients still use the source.
	MigrationRunning MigrationState = "running"
	// MigrationSwitched: clients are on the target; the source still
	// serves offsets below the base.
	MigrationSwitched MigrationState = "switched"
	// MigrationFinished: the source segment is retired.
	MigrationFinished MigrationState = "finished"
	// MigrationAborted: stopped before the switch; nothing changed.
	MigrationAborted MigrationState = "aborted"
	// MigrationFailed: stopped before the switch with an error; nothing
	// changed.
	MigrationFailed MigrationState = "failed"
)

// Terminal reports whether a migration in this state is over.
func (s MigrationState) Terminal() bool {
	return s == MigrationFinished || s == MigrationAborted || s == MigrationFailed
}

// Migration phases. A running migration is in prepare (the target topic is
// being created) or fence (Produce to the topic is refused on every peer
// while the source's high watermarks settle); a switched one in copy (group
// offsets are being copied to the target) or serving (waiting for finish).
const (
	PhasePrepare = "prepare"
	PhaseFence   = "fence"
	PhaseCopy    = "copy"
	PhaseServing = "serving"
	PhaseDone    = "done"
)

// Bounds on what a migration and a chain may hold.
const (
	// MaxMigrationPartitions bounds a migrated topic's partition count.
	MaxMigrationPartitions = 100_000
	// MaxChainSegments bounds a chain; the oldest retired segments are
	// dropped past it.
	MaxChainSegments = 8
	// maxGroupsBehind bounds the groups a migration lists as behind.
	maxGroupsBehind = 1000
)

// Migration is one topic's move from cluster From to cluster To. Times are
// unix milliseconds fixed by the proposer.
type Migration struct {
	Topic string         `json:"topic"`
	From  string         `json:"from"`
	To    string         `json:"to"`
	State MigrationState `json:"state"`
	Phase string         `json:"phase"`
	// Partitions is the topic's partition count on the source when the
	// migration started.
	Partitions int32 `json:"partitions"`
	Started    int64 `json:"started"`
	Switched   int64 `json:"switched,omitempty"`
	Ended      int64 `json:"ended,omitempty"`
	// Error says why a migration failed (or why a switched one's offset
	// copy or finish is stuck).
	Error string `json:"error,omitempty"`
	// GroupsBehind are the groups whose committed offsets on the target
	// are still below the base of some partition, as last checked.
	GroupsBehind []string `json:"groups_behind,omitempty"`
}

// Fenced reports whether Produce to the migration's topic is refused.
func (m *Migration) Fenced() bool { return m.State == MigrationRunning && m.Phase == PhaseFence }

// TopicChain is a migrated topic's segments, oldest first.
type TopicChain struct {
	Topic    string    `json:"topic"`
	Segments []Segment `json:"segments"`
}

// Segment is a stretch of a topic's partitions on one cluster. For
// partition p (p < len(Starts)), virtual offset v ≥ Starts[p] is the
// cluster's offset v - Starts[p] + Physical[p]; a partition past the lists
// (added later) starts at virtual = physical = 0. The cluster's leader
// epochs are presented raised by EpochBase.
type Segment struct {
	Cluster   string  `json:"cluster"`
	EpochBase int32   `json:"epoch_base"`
	Starts    []int64 `json:"starts,omitempty"`
	Physical  []int64 `json:"physical,omitempty"`
	Retired   bool    `json:"retired,omitempty"`
}

// Delta is what is added to the cluster's offsets of partition p to get
// virtual ones.
func (g *Segment) Delta(p int32) int64 {
	if p < 0 || int(p) >= len(g.Starts) {
		return 0
	}
	return g.Starts[p] - g.Physical[p]
}

// Start is the virtual offset where partition p starts in this segment.
func (g *Segment) Start(p int32) int64 {
	if p < 0 || int(p) >= len(g.Starts) {
		return 0
	}
	return g.Starts[p]
}

// Live is the segment written to: the last.
func (c *TopicChain) Live() *Segment { return &c.Segments[len(c.Segments)-1] }

// Previous is the segment before the live one while it still serves reads
// (not retired), else nil.
func (c *TopicChain) Previous() *Segment {
	if len(c.Segments) < 2 || c.Segments[len(c.Segments)-2].Retired {
		return nil
	}
	return &c.Segments[len(c.Segments)-2]
}

// Migration returns the latest migration of topic.
func (s *State) Migration(topic string) (*Migration, bool) {
	i, ok := slices.BinarySearchFunc(s.Migrations, topic, cmpMigration)
	if !ok {
		return nil, false
	}
	return &s.Migrations[i], true
}

// Chain returns topic's segment chain; nil when it never migrated.
func (s *State) Chain(topic string) *TopicChain {
	if len(s.Chains) == 0 {
		return nil
	}
	i, ok := slices.BinarySearchFunc(s.Chains, topic, cmpChain)
	if !ok {
		return nil
	}
	return &s.Chains[i]
}

func cmpMigration(m Migration, topic string) int { return strings.Compare(m.Topic, topic) }
func cmpChain(c TopicChain, topic string) int    { return strings.Compare(c.Topic, topic) }

// StartMigration begins moving Topic to cluster To: a new migration in
// state running, phase prepare. From must be the cluster the topic routes
// to now; a topic with a migration not yet finished, aborted or failed
// cannot start another.
type StartMigration struct {
	Topic      string `json:"topic"`
	From       string `json:"from"`
	To         string `json:"to"`
	Partitions int32  `json:"partitions"`
	Started    int64  `json:"started"`
}

// UpdateMigration moves a migration to Phase, or ends it (State aborted or
// failed, only before the switch), and records GroupsBehind and Error.
// State is the migration's current state unless it ends it.
type UpdateMigration struct {
	Topic        string         `json:"topic"`
	State        MigrationState `json:"state"`
	Phase        string         `json:"phase"`
	Error        string         `json:"error,omitempty"`
	GroupsBehind []string       `json:"groups_behind,omitempty"`
	At           int64          `json:"at"`
}

// SwitchMigration is the flip, in one command: the topic's exact route
// moves to the target, the chain gets the target's segment (and the
// source's, for a topic's first migration), and the migration is switched,
// phase copy. Starts are the source's high watermarks (the virtual bases),
// Physical the target's log end offsets at that moment.
type SwitchMigration struct {
	Topic     string  `json:"topic"`
	Starts    []int64 `json:"starts"`
	Physical  []int64 `json:"physical"`
	EpochBase int32   `json:"epoch_base"`
	At        int64   `json:"at"`
}

// FinishMigration retires a switched migration's source segment.
type FinishMigration struct {
	Topic string `json:"topic"`
	At    int64  `json:"at"`
}

func (*StartMigration) Type() CommandType  { return TypeStartMigration }
func (*UpdateMigration) Type() CommandType { return TypeUpdateMigration }
func (*SwitchMigration) Type() CommandType { return TypeSwitchMigration }
func (*FinishMigration) Type() CommandType { return TypeFinishMigration }
func (*StartMigration) isCommand()         {}
func (*UpdateMigration) isCommand()        {}
func (*SwitchMigration) isCommand()        {}
func (*FinishMigration) isCommand()        {}

func (c *StartMigration) Validate() error {
	if err := validTopic("migration topic", c.Topic, false); err != nil {
		return err
	}
	if err := validName("migration source cluster", c.From); err != nil {
		return err
	}
	if err := validName("migration target cluster", c.To); err != nil {
		return err
	}
	if c.From == c.To {
		return fmt.Errorf("%w: migration of %q: the topic is already on cluster %q", ErrInvalid, c.Topic, c.To)
	}
	if c.Partitions <= 0 || c.Partitions > MaxMigrationPartitions {
		return fmt.Errorf("%w: migration of %q: %d partitions, want 1 to %d", ErrInvalid, c.Topic, c.Partitions, MaxMigrationPartitions)
	}
	if c.Started <= 0 {
		return fmt.Errorf("%w: migration of %q: started %d is not a unix time in milliseconds", ErrInvalid, c.Topic, c.Started)
	}
	return nil
}

func (c *UpdateMigration) Validate() error {
	if err := validTopic("migration topic", c.Topic, false); err != nil {
		return err
	}
	switch c.State {
	case MigrationRunning, MigrationSwitched, MigrationAborted, MigrationFailed:
	default:
		return fmt.Errorf("%w: migration of %q: an update cannot set state %q", ErrInvalid, c.Topic, c.State)
	}
	switch c.Phase {
	case PhasePrepare, PhaseFence, PhaseCopy, PhaseServing, PhaseDone:
	default:
		return fmt.Errorf("%w: migration of %q: unknown phase %q", ErrInvalid, c.Topic, c.Phase)
	}
	if err := validText("migration error", c.Error, 4096); err != nil {
		return err
	}
	if len(c.GroupsBehind) > maxGroupsBehind {
		return fmt.Errorf("%w: migration of %q lists %d groups behind, at most %d", ErrInvalid, c.Topic, len(c.GroupsBehind), maxGroupsBehind)
	}
	for _, g := range c.GroupsBehind {
		if g == "" || len(g) > 1024 {
			return fmt.Errorf("%w: migration of %q: group id of %d bytes", ErrInvalid, c.Topic, len(g))
		}
	}
	if c.At <= 0 {
		return fmt.Errorf("%w: migration of %q: time %d is not a unix time in milliseconds", ErrInvalid, c.Topic, c.At)
	}
	return nil
}

func (c *SwitchMigration) Validate() error {
	if err := validTopic("migration topic", c.Topic, false); err != nil {
		return err
	}
	if len(c.Starts) == 0 || len(c.Starts) > MaxMigrationPartitions || len(c.Starts) != len(c.Physical) {
		return fmt.Errorf("%w: switch of %q: %d starts and %d physical offsets, want one of each per partition", ErrInvalid, c.Topic, len(c.Starts), len(c.Physical))
	}
	for p := range c.Starts {
		if c.Starts[p] < 0 || c.Physical[p] < 0 {
			return fmt.Errorf("%w: switch of %q: partition %d has a negative offset", ErrInvalid, c.Topic, p)
		}
	}
	if c.EpochBase < 0 {
		return fmt.Errorf("%w: switch of %q: negative epoch base %d", ErrInvalid, c.Topic, c.EpochBase)
	}
	if c.At <= 0 {
		return fmt.Errorf("%w: switch of %q: time %d is not a unix time in milliseconds", ErrInvalid, c.Topic, c.At)
	}
	return nil
}

func (c *FinishMigration) Validate() error {
	if err := validTopic("migration topic", c.Topic, false); err != nil {
		return err
	}
	if c.At <= 0 {
		return fmt.Errorf("%w: finish of %q: time %d is not a unix time in milliseconds", ErrInvalid, c.Topic, c.At)
	}
	return nil
}

func (s *State) applyStartMigration(c *StartMigration) error {
	i, found := slices.BinarySearchFunc(s.Migrations, c.Topic, cmpMigration)
	if found {
		old := s.Migrations[i]
		if old.From == c.From && old.To == c.To && old.Started == c.Started && old.State == MigrationRunning && old.Phase == PhasePrepare {
			return nil // a retried proposal
		}
		if !old.State.Terminal() {
			return fmt.Errorf("%w: topic %q already has a %s migration to %q; finish or abort it first", ErrConflict, c.Topic, old.State, old.To)
		}
	}
	if err := s.requireCluster("migration source", c.From); err != nil {
		return err
	}
	if err := s.requireCluster("migration target", c.To); err != nil {
		return err
	}
	if now, _ := s.ConfiguredRouteFor(c.Topic); now != c.From {
		return fmt.Errorf("%w: topic %q routes to cluster %q, not %q", ErrConflict, c.Topic, now, c.From)
	}
	if _, t, rule := s.topicRule(c.Topic); t.HasRegions() {
		return fmt.Errorf("%w: topic %q is routed by %s with region targets (regions use different clusters); a migration moves one route: drop the region targets first", ErrConflict, c.Topic, rule)
	}
	m := Migration{Topic: c.Topic, From: c.From, To: c.To, State: MigrationRunning, Phase: PhasePrepare, Partitions: c.Partitions, Started: c.Started}
	s.Migrations = upsert(s.Migrations, i, found, m)
	// Pin the topic to its source by an exact route, so a prefix route or
	// default cluster changed during the migration cannot move it before
	// the switch (the switch re-points this route; an abort leaves it,
	// naming the cluster the topic resolved to anyway).
	if k, ok := slices.BinarySearchFunc(s.Routes.Topics, c.Topic, cmpTopicRoute); !ok {
		s.Routes.Topics = upsert(s.Routes.Topics, k, false, TopicRoute{Topic: c.Topic, Cluster: c.From})
	}
	return nil
}

func (s *State) applyUpdateMigration(c *UpdateMigration) error {
	i, found := slices.BinarySearchFunc(s.Migrations, c.Topic, cmpMigration)
	if !found {
		return fmt.Errorf("%w: migration of topic %q", ErrNotFound, c.Topic)
	}
	m := s.Migrations[i]
	if m.State.Terminal() {
		return fmt.Errorf("%w: the migration of %q is already %s", ErrConflict, c.Topic, m.State)
	}
	switch c.State {
	case MigrationAborted, MigrationFailed:
		if m.State != MigrationRunning {
			return fmt.Errorf("%w: the migration of %q is %s: clients already use %q; finish it, or migrate the topic back", ErrConflict, c.Topic, m.State, m.To)
		}
		m.Ended = c.At
	case MigrationRunning:
		if m.State != MigrationRunning || (c.Phase != PhasePrepare && c.Phase != PhaseFence) {
			return fmt.Errorf("%w: the migration of %q is %s; it cannot go to %s/%s", ErrConflict, c.Topic, m.State, c.State, c.Phase)
		}
	case MigrationSwitched:
		if m.State != MigrationSwitched || (c.Phase != PhaseCopy && c.Phase != PhaseServing) {
			return fmt.Errorf("%w: the migration of %q is %s; it cannot go to %s/%s", ErrConflict, c.Topic, m.State, c.State, c.Phase)
		}
	}
	m.State, m.Phase, m.Error = c.State, c.Phase, c.Error
	m.GroupsBehind = slices.Clone(c.GroupsBehind)
	s.Migrations = upsert(s.Migrations, i, true, m)
	return nil
}

func (s *State) applySwitchMigration(c *SwitchMigration) error {
	i, found := slices.BinarySearchFunc(s.Migrations, c.Topic, cmpMigration)
	if !found {
		return fmt.Errorf("%w: migration of topic %q", ErrNotFound, c.Topic)
	}
	m := s.Migrations[i]
	if m.State == MigrationSwitched && m.Switched == c.At {
		return nil // a retried proposal
	}
	if m.State != MigrationRunning || m.Phase != PhaseFence {
		return fmt.Errorf("%w: the migration of %q is %s/%s; only a fenced migration switches", ErrConflict, c.Topic, m.State, m.Phase)
	}
	if int32(len(c.Starts)) != m.Partitions {
		return fmt.Errorf("%w: switch of %q names %d partitions, the migration has %d", ErrInvalid, c.Topic, len(c.Starts), m.Partitions)
	}
	if err := s.requireCluster("migration target", m.To); err != nil {
		return err
	}
	j, hasChain := slices.BinarySearchFunc(s.Chains, c.Topic, cmpChain)
	var segs []Segment
	if hasChain {
		old := s.Chains[j]
		live := old.Live()
		if live.Cluster != m.From {
			return fmt.Errorf("%w: topic %q is written on %q, not %q", ErrConflict, c.Topic, live.Cluster, m.From)
		}
		if prev := old.Previous(); prev != nil {
			return fmt.Errorf("%w: topic %q still serves reads from %q; finish its last migration first", ErrConflict, c.Topic, prev.Cluster)
		}
		for p := range c.Starts {
			if c.Starts[p] < live.Start(int32(p)) {
				return fmt.Errorf("%w: switch of %q: partition %d starts at %d, before the live segment's start %d", ErrInvalid, c.Topic, p, c.Starts[p], live.Start(int32(p)))
			}
		}
		if c.EpochBase <= live.EpochBase {
			return fmt.Errorf("%w: switch of %q: epoch base %d does not rise above %d", ErrInvalid, c.Topic, c.EpochBase, live.EpochBase)
		}
		segs = slices.Clone(old.Segments)
	} else {
		segs = []Segment{{Cluster: m.From}}
	}
	segs = append(segs, Segment{Cluster: m.To, EpochBase: c.EpochBase, Starts: slices.Clone(c.Starts), Physical: slices.Clone(c.Physical)})
	for len(segs) > MaxChainSegments && segs[0].Retired {
		segs = segs[1:]
	}
	chain := TopicChain{Topic: c.Topic, Segments: segs}
	s.Chains = upsert(s.Chains, j, hasChain, chain)

	k, hasRoute := slices.BinarySearchFunc(s.Routes.Topics, c.Topic, cmpTopicRoute)
	s.Routes.Topics = upsert(s.Routes.Topics, k, hasRoute, TopicRoute{Topic: c.Topic, Cluster: m.To})

	m.State, m.Phase, m.Switched, m.Error = MigrationSwitched, PhaseCopy, c.At, ""
	s.Migrations = upsert(s.Migrations, i, true, m)
	return nil
}

func (s *State) applyFinishMigration(c *FinishMigration) error {
	i, found := slices.BinarySearchFunc(s.Migrations, c.Topic, cmpMigration)
	if !found {
		return fmt.Errorf("%w: migration of topic %q", ErrNotFound, c.Topic)
	}
	m := s.Migrations[i]
	if m.State == MigrationFinished && m.Ended == c.At {
		return nil // a retried proposal
	}
	if m.State != MigrationSwitched {
		return fmt.Errorf("%w: the migration of %q is %s; only a switched migration finishes", ErrConflict, c.Topic, m.State)
	}
	if j, ok := slices.BinarySearchFunc(s.Chains, c.Topic, cmpChain); ok {
		segs := slices.Clone(s.Chains[j].Segments)
		if len(segs) >= 2 {
			segs[len(segs)-2].Retired = true
		}
		s.Chains = upsert(s.Chains, j, true, TopicChain{Topic: c.Topic, Segments: segs})
	}
	m.State, m.Phase, m.Ended = MigrationFinished, PhaseDone, c.At
	s.Migrations = upsert(s.Migrations, i, true, m)
	return nil
}

// validateMigrations checks the migrations and chains of a State: sorted,
// unique, naming known clusters.
func validateMigrations(s *State, clusters map[string]bool) error {
	for i, m := range s.Migrations {
		if i > 0 && s.Migrations[i-1].Topic >= m.Topic {
			return fmt.Errorf("%w: migrations not sorted by unique topic at %q", ErrInvalid, m.Topic)
		}
		if err := validTopic("migration topic", m.Topic, false); err != nil {
			return err
		}
		switch m.State {
		case MigrationRunning, MigrationSwitched, MigrationFinished, MigrationAborted, MigrationFailed:
		default:
			return fmt.Errorf("%w: migration of %q has unknown state %q", ErrInvalid, m.Topic, m.State)
		}
		if !m.State.Terminal() && (!clusters[m.From] || !clusters[m.To]) {
			return fmt.Errorf("%w: migration of %q names an unknown cluster (%q → %q)", ErrInvalid, m.Topic, m.From, m.To)
		}
	}
	for i, c := range s.Chains {
		if i > 0 && s.Chains[i-1].Topic >= c.Topic {
			return fmt.Errorf("%w: chains not sorted by unique topic at %q", ErrInvalid, c.Topic)
		}
		if len(c.Segments) == 0 || len(c.Segments) > MaxChainSegments+1 {
			return fmt.Errorf("%w: chain of %q has %d segments", ErrInvalid, c.Topic, len(c.Segments))
		}
		for _, g := range c.Segments {
			if len(g.Starts) != len(g.Physical) || len(g.Starts) > MaxMigrationPartitions {
				return fmt.Errorf("%w: chain of %q: segment on %q has %d starts and %d physical offsets", ErrInvalid, c.Topic, g.Cluster, len(g.Starts), len(g.Physical))
			}
		}
	}
	return nil
}

// migrationUser names the migration or live chain segment that still needs
// cluster, for DeleteCluster.
func (s *State) migrationUser(cluster string) string {
	for _, m := range s.Migrations {
		if !m.State.Terminal() && (m.From == cluster || m.To == cluster) {
			return fmt.Sprintf("the migration of topic %q", m.Topic)
		}
	}
	for _, c := range s.Chains {
		for _, g := range c.Segments {
			if !g.Retired && g.Cluster == cluster {
				return fmt.Sprintf("segment of migrated topic %q", c.Topic)
			}
		}
	}
	return ""
}
