package fsm

// Online consumer-group offset resets (issue 10).
//
// A reset is a replicated job per group: the topics and partitions it
// covers, the operator's target (earliest, latest, a timestamp, an offset,
// a shift) and the per-partition offsets that target resolved to when the
// job started, so what will be applied is shown before it is. The leader
// drives it (node/offset_reset.go): pending → fencing (every peer holds
// the group's joins and offset fetches; the members the job removed from
// the group are listed so every peer refuses their commits) → applied
// (the targets are the group's committed offsets; the hold is lifted and
// every member resumes from them) or failed (with the reason). The group's
// latest job stays in the state after it ends, so its outcome is visible
// and the members it removed stay refused.

import (
	"fmt"
	"slices"
	"strings"
)

// ResetState is where an offset reset is in its life.
type ResetState string

// Offset reset states. Applied and failed are terminal.
const (
	// ResetPending: targets resolved and recorded; the group is not held
	// yet.
	ResetPending ResetState = "pending"
	// ResetFencing: every peer holds the group's joins and offset fetches
	// while its members are removed and the targets committed.
	ResetFencing ResetState = "fencing"
	// ResetApplied: the targets are the group's committed offsets.
	ResetApplied ResetState = "applied"
	// ResetFailed: stopped with an error; see the job's Error for whether
	// any target was committed.
	ResetFailed ResetState = "failed"
)

// Terminal reports whether a reset in this state is over.
func (s ResetState) Terminal() bool { return s == ResetApplied || s == ResetFailed }

// Reset target kinds, as kafka-consumer-groups.sh names them.
const (
	ResetToEarliest  = "earliest"
	ResetToLatest    = "latest"
	ResetToTimestamp = "timestamp"
	ResetToOffset    = "offset"
	ResetToShift     = "shift"
)

// Bounds on what a reset may hold.
const (
	// MaxResetTargets bounds the partitions one reset covers.
	MaxResetTargets = 100_000
	// MaxResetMembers bounds the members one reset records as removed.
	MaxResetMembers = 10_000
	// MaxOffsetResets bounds the jobs kept (one per group); the oldest
	// ended ones are dropped past it.
	MaxOffsetResets = 1000
	maxGroupLen     = 1024
)

// ResetTo is what a reset moves a group's offsets to. Value is the
// timestamp (unix ms), the offset or the shift; unused for earliest and
// latest.
type ResetTo struct {
	Kind  string `json:"kind"`
	Value int64  `json:"value,omitempty"`
}

func (t ResetTo) String() string {
	switch t.Kind {
	case ResetToEarliest, ResetToLatest:
		return t.Kind
	}
	return fmt.Sprintf("%s %d", t.Kind, t.Value)
}

// ResetTarget is one partition's committed offset before the reset (-1:
// none) and the offset the reset commits. Offsets are the ones clients see
// (virtual for a migrated topic).
type ResetTarget struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Old       int64  `json:"old"`
	New       int64  `json:"new"`
}

// ResetMember is a member a reset removed from its group. Classic members
// (JoinGroup) are named by the member id the broker gave them, which a
// member that rejoins never gets again, so every peer refuses their
// commits; KIP-848 members keep their id across a rejoin, and Epoch is
// the member epoch they had when removed (their commits and offset
// fetches name it, and the coordinators refuse it).
type ResetMember struct {
	ID         string `json:"id"`
	InstanceID string `json:"instance_id,omitempty"`
	ClientID   string `json:"client_id,omitempty"`
	Host       string `json:"host,omitempty"`
	// Protocol is "classic" or "consumer" (KIP-848).
	Protocol string `json:"protocol"`
	Epoch    int32  `json:"epoch,omitempty"`
}

// Member protocols.
const (
	ProtocolClassic  = "classic"
	ProtocolConsumer = "consumer"
)

// OffsetReset is one group's latest offset reset job. Times are unix
// milliseconds fixed by the proposer; Created identifies the job.
type OffsetReset struct {
	Group   string        `json:"group"`
	Topics  []string      `json:"topics"`
	To      ResetTo       `json:"to"`
	State   ResetState    `json:"state"`
	Targets []ResetTarget `json:"targets"`
	Members []ResetMember `json:"members,omitempty"`
	Created int64         `json:"created"`
	Fenced  int64         `json:"fenced,omitempty"`
	Ended   int64         `json:"ended,omitempty"`
	Error   string        `json:"error,omitempty"`
}

// Holding reports whether peers hold the group's joins and offset
// fetches.
func (r *OffsetReset) Holding() bool { return r.State == ResetFencing }

// RemovedClassic reports whether the reset removed the classic member id
// (whose commits are refused from the fence on).
func (r *OffsetReset) RemovedClassic(member string) bool {
	if member == "" || r.State == ResetPending {
		return false
	}
	for i := range r.Members {
		if r.Members[i].Protocol == ProtocolClassic && r.Members[i].ID == member {
			return true
		}
	}
	return false
}

// OffsetReset returns group's latest offset reset.
func (s *State) OffsetReset(group string) (*OffsetReset, bool) {
	if len(s.OffsetResets) == 0 {
		return nil, false
	}
	i, ok := slices.BinarySearchFunc(s.OffsetResets, group, cmpOffsetReset)
	if !ok {
		return nil, false
	}
	return &s.OffsetResets[i], true
}

func cmpOffsetReset(r OffsetReset, group string) int { return strings.Compare(r.Group, group) }

// StartOffsetReset records a new reset of Group, pending, with its targets
// resolved. A group whose last reset has not ended cannot start another.
type StartOffsetReset struct {
	Group   string        `json:"group"`
	Topics  []string      `json:"topics"`
	To      ResetTo       `json:"to"`
	Targets []ResetTarget `json:"targets"`
	At      int64         `json:"at"`
}

// UpdateOffsetReset moves the reset Group/Created to State (fencing,
// applied or failed), recording the members it removed (the full list,
// replacing the last) and the error.
type UpdateOffsetReset struct {
	Group   string        `json:"group"`
	Created int64         `json:"created"`
	State   ResetState    `json:"state"`
	Members []ResetMember `json:"members,omitempty"`
	Error   string        `json:"error,omitempty"`
	At      int64         `json:"at"`
}

func (*StartOffsetReset) Type() CommandType  { return TypeStartOffsetReset }
func (*UpdateOffsetReset) Type() CommandType { return TypeUpdateOffsetReset }
func (*StartOffsetReset) isCommand()         {}
func (*UpdateOffsetReset) isCommand()        {}

func validGroup(g string) error {
	if g == "" || len(g) > maxGroupLen {
		return fmt.Errorf("%w: group id of %d bytes, want 1 to %d", ErrInvalid, len(g), maxGroupLen)
	}
	return nil
}

func validResetTo(t ResetTo) error {
	switch t.Kind {
	case ResetToEarliest, ResetToLatest:
		if t.Value != 0 {
			return fmt.Errorf("%w: reset to %s takes no value", ErrInvalid, t.Kind)
		}
	case ResetToTimestamp, ResetToOffset:
		if t.Value < 0 {
			return fmt.Errorf("%w: reset to %s %d: negative", ErrInvalid, t.Kind, t.Value)
		}
	case ResetToShift:
	default:
		return fmt.Errorf("%w: unknown reset target %q (want earliest, latest, timestamp, offset or shift)", ErrInvalid, t.Kind)
	}
	return nil
}

func (c *StartOffsetReset) Validate() error {
	if err := validGroup(c.Group); err != nil {
		return err
	}
	if len(c.Topics) == 0 || len(c.Topics) > MaxResetTargets {
		return fmt.Errorf("%w: reset of group %q names %d topics, want 1 to %d", ErrInvalid, c.Group, len(c.Topics), MaxResetTargets)
	}
	for i, t := range c.Topics {
		if err := validTopic("reset topic", t, false); err != nil {
			return err
		}
		if i > 0 && c.Topics[i-1] >= t {
			return fmt.Errorf("%w: reset of group %q: topics not sorted or %q repeated", ErrInvalid, c.Group, t)
		}
	}
	if err := validResetTo(c.To); err != nil {
		return err
	}
	if err := validResetTargets(c.Group, c.Topics, c.Targets); err != nil {
		return err
	}
	if c.At <= 0 {
		return fmt.Errorf("%w: reset of group %q: time %d is not a unix time in milliseconds", ErrInvalid, c.Group, c.At)
	}
	return nil
}

func validResetTargets(group string, topics []string, targets []ResetTarget) error {
	if len(targets) == 0 || len(targets) > MaxResetTargets {
		return fmt.Errorf("%w: reset of group %q has %d partitions, want 1 to %d", ErrInvalid, group, len(targets), MaxResetTargets)
	}
	for i, t := range targets {
		if _, ok := slices.BinarySearch(topics, t.Topic); !ok {
			return fmt.Errorf("%w: reset of group %q: target topic %q is not one of its topics", ErrInvalid, group, t.Topic)
		}
		if t.Partition < 0 || t.New < 0 || t.Old < -1 {
			return fmt.Errorf("%w: reset of group %q: %s[%d] old %d new %d out of range", ErrInvalid, group, t.Topic, t.Partition, t.Old, t.New)
		}
		if i > 0 {
			p := targets[i-1]
			if p.Topic > t.Topic || (p.Topic == t.Topic && p.Partition >= t.Partition) {
				return fmt.Errorf("%w: reset of group %q: targets not sorted by topic and partition at %s[%d]", ErrInvalid, group, t.Topic, t.Partition)
			}
		}
	}
	return nil
}

func validResetMembers(group string, ms []ResetMember) error {
	if len(ms) > MaxResetMembers {
		return fmt.Errorf("%w: reset of group %q lists %d members, at most %d", ErrInvalid, group, len(ms), MaxResetMembers)
	}
	for _, m := range ms {
		if m.ID == "" || len(m.ID) > maxGroupLen || len(m.InstanceID) > maxGroupLen || len(m.ClientID) > maxGroupLen || len(m.Host) > 256 {
			return fmt.Errorf("%w: reset of group %q: member id %q or its instance, client id or host too long", ErrInvalid, group, m.ID)
		}
		if m.Protocol != ProtocolClassic && m.Protocol != ProtocolConsumer {
			return fmt.Errorf("%w: reset of group %q: member %q has protocol %q (want classic or consumer)", ErrInvalid, group, m.ID, m.Protocol)
		}
	}
	return nil
}

func (c *UpdateOffsetReset) Validate() error {
	if err := validGroup(c.Group); err != nil {
		return err
	}
	switch c.State {
	case ResetFencing, ResetApplied, ResetFailed:
	default:
		return fmt.Errorf("%w: reset of group %q: an update cannot set state %q", ErrInvalid, c.Group, c.State)
	}
	if err := validResetMembers(c.Group, c.Members); err != nil {
		return err
	}
	if err := validText("reset error", c.Error, 4096); err != nil {
		return err
	}
	if c.Created <= 0 || c.At <= 0 {
		return fmt.Errorf("%w: reset of group %q: times %d, %d are not unix times in milliseconds", ErrInvalid, c.Group, c.Created, c.At)
	}
	return nil
}

func (s *State) applyStartOffsetReset(c *StartOffsetReset) error {
	i, found := slices.BinarySearchFunc(s.OffsetResets, c.Group, cmpOffsetReset)
	if found {
		old := s.OffsetResets[i]
		if old.Created == c.At {
			return nil // a retried proposal
		}
		if !old.State.Terminal() {
			return fmt.Errorf("%w: group %q already has a %s offset reset (started %d); wait for it to end", ErrConflict, c.Group, old.State, old.Created)
		}
	}
	r := OffsetReset{Group: c.Group, Topics: slices.Clone(c.Topics), To: c.To, State: ResetPending, Targets: slices.Clone(c.Targets), Created: c.At}
	s.OffsetResets = upsert(s.OffsetResets, i, found, r)
	if len(s.OffsetResets) > MaxOffsetResets {
		s.OffsetResets = dropOldestEnded(s.OffsetResets, c.Group)
	}
	return nil
}

// dropOldestEnded removes the ended job that started first (never keep's).
// Callers hold a fresh slice.
func dropOldestEnded(rs []OffsetReset, keep string) []OffsetReset {
	at := -1
	for i := range rs {
		if rs[i].Group == keep || !rs[i].State.Terminal() {
			continue
		}
		if at < 0 || rs[i].Created < rs[at].Created {
			at = i
		}
	}
	if at < 0 {
		return rs // every job is live: the bound is the live ones
	}
	return append(rs[:at:at], rs[at+1:]...)
}

func (s *State) applyUpdateOffsetReset(c *UpdateOffsetReset) error {
	i, found := slices.BinarySearchFunc(s.OffsetResets, c.Group, cmpOffsetReset)
	if !found || s.OffsetResets[i].Created != c.Created {
		return fmt.Errorf("%w: offset reset of group %q started %d", ErrNotFound, c.Group, c.Created)
	}
	r := s.OffsetResets[i]
	if r.State == c.State && r.State.Terminal() {
		return nil // a retried proposal
	}
	if r.State.Terminal() {
		return fmt.Errorf("%w: the offset reset of group %q is already %s", ErrConflict, c.Group, r.State)
	}
	if c.State == ResetApplied && r.State != ResetFencing {
		return fmt.Errorf("%w: the offset reset of group %q is %s; only a fencing reset is applied", ErrConflict, c.Group, r.State)
	}
	if c.State == ResetFencing && r.State == ResetPending {
		r.Fenced = c.At
	}
	if c.State.Terminal() {
		r.Ended = c.At
	}
	r.State, r.Error = c.State, c.Error
	if c.Members != nil || c.State == ResetFencing {
		r.Members = slices.Clone(c.Members)
	}
	s.OffsetResets = upsert(s.OffsetResets, i, true, r)
	return nil
}

func validateOffsetResets(s *State) error {
	if len(s.OffsetResets) > MaxOffsetResets+1 {
		return fmt.Errorf("%w: %d offset resets, at most %d", ErrInvalid, len(s.OffsetResets), MaxOffsetResets)
	}
	for i, r := range s.OffsetResets {
		if i > 0 && s.OffsetResets[i-1].Group >= r.Group {
			return fmt.Errorf("%w: offset resets not sorted by unique group at %q", ErrInvalid, r.Group)
		}
		if err := validGroup(r.Group); err != nil {
			return err
		}
		switch r.State {
		case ResetPending, ResetFencing, ResetApplied, ResetFailed:
		default:
			return fmt.Errorf("%w: offset reset of %q has unknown state %q", ErrInvalid, r.Group, r.State)
		}
		if err := validResetTo(r.To); err != nil {
			return err
		}
		if err := validResetTargets(r.Group, r.Topics, r.Targets); err != nil {
			return err
		}
		if err := validResetMembers(r.Group, r.Members); err != nil {
			return err
		}
	}
	return nil
}
