package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// CommandType is the first byte of an encoded command. The numbering is
// append-only: a number, once released, keeps its meaning forever, because
// old log entries and snapshots of peers still carry it. Never renumber or
// reuse one; retire a command by leaving its number unused.
type CommandType uint8

// Command types. 0 is never a command, so a zeroed entry fails to decode.
const (
	TypeRegisterPeer      CommandType = 1
	TypeRemovePeer        CommandType = 2
	TypePutCluster        CommandType = 3
	TypeDeleteCluster     CommandType = 4
	TypePutRoute          CommandType = 5
	TypeDeleteRoute       CommandType = 6
	TypePutPrefixRoute    CommandType = 7
	TypeDeletePrefixRoute CommandType = 8
	TypePutGroupRoute     CommandType = 9
	TypeDeleteGroupRoute  CommandType = 10
	TypeSetDefaultCluster CommandType = 11
	TypePutQuota          CommandType = 12
	TypeDeleteQuota       CommandType = 13
	TypePutJob            CommandType = 14
	TypeDeleteJob         CommandType = 15
	TypeSetClusterID      CommandType = 16
	TypeAllowPeer         CommandType = 17
	TypeDisallowPeer      CommandType = 18
	TypeStartMigration    CommandType = 19
	TypeUpdateMigration   CommandType = 20
	TypeSwitchMigration   CommandType = 21
	TypeFinishMigration   CommandType = 22
	TypeStartOffsetReset  CommandType = 23
	TypeUpdateOffsetReset CommandType = 24
	TypePutRegion         CommandType = 25
	TypeDeleteRegion      CommandType = 26
	TypeSetFailover       CommandType = 27
)

// commandInfo is one row of the command table: the type's name, the payload
// version this build writes and reads, and a constructor for its payload.
type commandInfo struct {
	name    string
	version uint8
	new     func() Command
}

// oldestVersion is the oldest payload version Decode still reads for t. An
// older payload decodes into the current struct, whose new fields it must
// leave zero (olderPayload).
func (t CommandType) oldestVersion() uint8 {
	switch t {
	case TypePutRoute, TypePutPrefixRoute, TypePutGroupRoute, TypeSetDefaultCluster, TypePutCluster:
		// Version 2 added RouteTargets, and Cluster's DownAfterMS and
		// UpAfterMS (command set 5); PutCluster's version 3 its TLS and
		// SASL (command set 6), version 4 its FailbackDrainMS (set 8).
		return 1
	}
	return t.Version()
}

// commandTable is the one list of commands. Adding a command: take the next
// number, add a row here, a struct below, a case in State.Next's switch, an
// applyX, and tests (apply, invalid, snapshot section if it adds state,
// fuzz seed). Changing a payload incompatibly: bump its version here and keep
// a decoder for every older version that can still be in a log or snapshot.
var commandTable = [...]commandInfo{
	TypeRegisterPeer:      {"RegisterPeer", 1, func() Command { return new(RegisterPeer) }},
	TypeRemovePeer:        {"RemovePeer", 1, func() Command { return new(RemovePeer) }},
	TypePutCluster:        {"PutCluster", 4, func() Command { return new(PutCluster) }},
	TypeDeleteCluster:     {"DeleteCluster", 1, func() Command { return new(DeleteCluster) }},
	TypePutRoute:          {"PutRoute", 2, func() Command { return new(PutRoute) }},
	TypeDeleteRoute:       {"DeleteRoute", 1, func() Command { return new(DeleteRoute) }},
	TypePutPrefixRoute:    {"PutPrefixRoute", 2, func() Command { return new(PutPrefixRoute) }},
	TypeDeletePrefixRoute: {"DeletePrefixRoute", 1, func() Command { return new(DeletePrefixRoute) }},
	TypePutGroupRoute:     {"PutGroupRoute", 2, func() Command { return new(PutGroupRoute) }},
	TypeDeleteGroupRoute:  {"DeleteGroupRoute", 1, func() Command { return new(DeleteGroupRoute) }},
	TypeSetDefaultCluster: {"SetDefaultCluster", 2, func() Command { return new(SetDefaultCluster) }},
	TypePutQuota:          {"PutQuota", 1, func() Command { return new(PutQuota) }},
	TypeDeleteQuota:       {"DeleteQuota", 1, func() Command { return new(DeleteQuota) }},
	TypePutJob:            {"PutJob", 1, func() Command { return new(PutJob) }},
	TypeDeleteJob:         {"DeleteJob", 1, func() Command { return new(DeleteJob) }},
	TypeSetClusterID:      {"SetClusterID", 1, func() Command { return new(SetClusterID) }},
	TypeAllowPeer:         {"AllowPeer", 1, func() Command { return new(AllowPeer) }},
	TypeDisallowPeer:      {"DisallowPeer", 1, func() Command { return new(DisallowPeer) }},
	TypeStartMigration:    {"StartMigration", 1, func() Command { return new(StartMigration) }},
	TypeUpdateMigration:   {"UpdateMigration", 1, func() Command { return new(UpdateMigration) }},
	TypeSwitchMigration:   {"SwitchMigration", 1, func() Command { return new(SwitchMigration) }},
	TypeFinishMigration:   {"FinishMigration", 1, func() Command { return new(FinishMigration) }},
	TypeStartOffsetReset:  {"StartOffsetReset", 1, func() Command { return new(StartOffsetReset) }},
	TypeUpdateOffsetReset: {"UpdateOffsetReset", 1, func() Command { return new(UpdateOffsetReset) }},
	TypePutRegion:         {"PutRegion", 1, func() Command { return new(PutRegion) }},
	TypeDeleteRegion:      {"DeleteRegion", 1, func() Command { return new(DeleteRegion) }},
	TypeSetFailover:       {"SetFailover", 1, func() Command { return new(SetFailover) }},

	// The proxy's SASL users (fsm/users.go).
	TypePutUserCredential:    {"PutUserCredential", 1, func() Command { return new(PutUserCredential) }},
	TypeDeleteUserCredential: {"DeleteUserCredential", 1, func() Command { return new(DeleteUserCredential) }},
	TypeCreateACLs:           {"CreateACLs", 1, func() Command { return new(CreateACLs) }},
	TypeDeleteACLs:           {"DeleteACLs", 1, func() Command { return new(DeleteACLs) }},

	// Shared producer ids (fsm/producer_ids.go).
	TypeClaimProducerID: {"ClaimProducerID", 1, func() Command { return new(ClaimProducerID) }},
}

func (t CommandType) info() (commandInfo, bool) {
	if int(t) >= len(commandTable) || commandTable[t].new == nil {
		return commandInfo{}, false
	}
	return commandTable[t], true
}

func (t CommandType) String() string {
	if info, ok := t.info(); ok {
		return info.name
	}
	return fmt.Sprintf("CommandType(%d)", uint8(t))
}

// CommandSetVersion is the newest command set this build applies: every
// command type, in the payload version commandTable gives it, that this
// build can decode. Peers gossip it, and the leader proposes a command only
// when every peer's command set includes it (version gating), so a rolling
// upgrade never sends an old peer an entry it cannot decode. Bump it in the
// same change that adds a command type or a payload version, and add the
// type to Introduced.
const CommandSetVersion uint16 = 8

// Introduced is the command set that introduced t in the payload version
// this build encodes; 0 if t is not a command. Set 1 is every type up to
// TypeSetClusterID in payload version 1, what peers that gossip no command
// set apply; set 2 adds the peer allow-list (AllowPeer, DisallowPeer).
func (t CommandType) Introduced() uint16 {
	if _, ok := t.info(); !ok {
		return 0
	}
	// One case per type (or payload version) added after set 1.
	switch t {
	case TypeAllowPeer, TypeDisallowPeer:
		// The peer allow-list (set 2).
		return 2
	case TypeStartMigration, TypeUpdateMigration, TypeSwitchMigration, TypeFinishMigration:
		// Live migrations (set 3).
		return 3
	case TypeStartOffsetReset, TypeUpdateOffsetReset:
		// Online offset resets (set 4).
		return 4
	case TypePutRegion, TypeDeleteRegion, TypeSetFailover,
		TypePutRoute, TypePutPrefixRoute, TypePutGroupRoute, TypeSetDefaultCluster:
		// Regions and failover, and the route commands' payload version 2
		// with region targets and failover policy (set 5).
		return 5
	case TypePutUserCredential, TypeDeleteUserCredential, TypeCreateACLs, TypeDeleteACLs:
		// The proxy's SASL users (fsm/users.go) and authorization rules
		// (fsm/acl.go) (set 6).
		return 6
	case TypeClaimProducerID:
		// Shared producer ids (fsm/producer_ids.go) (set 7).
		return 7
	case TypePutCluster:
		// PutCluster's version 4 with the failback drain (set 8); its
		// version 2 with down/up-after was set 5 and version 3 with TLS
		// and SASL set 6 (see Needs).
		return 8
	}
	return 1
}

// Needs is the command set a leader must see on every peer before it
// proposes cmd: Introduced of its type, except a route command without
// targets (PutRoute, PutPrefixRoute, PutGroupRoute, SetDefaultCluster with
// no regions, fallback, resume or failback), which Encode writes in payload
// version 1 that every build decodes, so plain routes keep working during a
// rolling upgrade to set 5.
func Needs(cmd Command) uint16 {
	if cmd == nil {
		return 0
	}
	if c, ok := cmd.(*PutCluster); ok {
		// Written in the oldest payload version that carries it.
		return map[uint8]uint16{1: 1, 2: 5, 3: 6, 4: 8}[clusterPayloadVersion(c)]
	}
	if unset, ok := newFieldsUnset(cmd); ok && unset {
		return 1
	}
	return cmd.Type().Introduced()
}

// newFieldsUnset reports, for a command whose payload version 2 only added
// optional fields (the route commands' targets, PutCluster's down/up-after),
// whether none of them is set: its JSON is then exactly version 1's, which
// older peers decode, and it needs only command set 1. ok is false for the
// other commands.
func newFieldsUnset(cmd Command) (unset, ok bool) {
	if t := targetsOf(cmd); t != nil {
		return t.empty(), true
	}
	if c, is := cmd.(*PutCluster); is {
		return clusterPayloadVersion(c) == 1, true
	}
	return false, false
}

// targetsOf is the route targets a route command carries, nil for other
// commands.
func targetsOf(cmd Command) *RouteTargets {
	switch c := cmd.(type) {
	case *PutRoute:
		return &c.RouteTargets
	case *PutPrefixRoute:
		return &c.RouteTargets
	case *PutGroupRoute:
		return &c.RouteTargets
	case *SetDefaultCluster:
		return &c.RouteTargets
	}
	return nil
}

// Version is the payload version this build encodes for t (0 if t is not a
// command); a route command without targets is written in version 1
// (Needs).
func (t CommandType) Version() uint8 {
	info, _ := t.info()
	return info.version
}

// Command is one change to the replicated state. Only this package's command
// structs implement it, always as pointers.
type Command interface {
	// Type is the command's type byte.
	Type() CommandType
	// Validate checks the command on its own, without a State: what the
	// admin API can reject with a 400 before proposing. State.Check adds
	// the checks against the current state.
	Validate() error
	isCommand()
}

// RegisterPeer adds a peer or updates the one registered under the same
// Name. ID is AutoPeerID to let the FSM assign one (the lowest id above every
// current peer's) or to keep the id the name already holds; an explicit ID
// must be free or already be this name's.
type RegisterPeer struct {
	Peer Peer `json:"peer"`
}

// RemovePeer removes the peer with ID.
type RemovePeer struct {
	ID int32 `json:"id"`
}

// PutCluster adds a backend cluster or replaces the one with the same Name.
type PutCluster struct {
	Cluster Cluster `json:"cluster"`
}

// DeleteCluster removes a backend cluster that nothing refers to any more.
type DeleteCluster struct {
	Name string `json:"name"`
}

// PutRoute routes one topic to a cluster, replacing any route it had.
// Payload version 2 adds RouteTargets; version 1 payloads still decode.
type PutRoute struct {
	Topic   string `json:"topic"`
	Cluster string `json:"cluster"`
	RouteTargets
}

// DeleteRoute removes a topic's exact route.
type DeleteRoute struct {
	Topic string `json:"topic"`
}

// PutPrefixRoute routes topics starting with Prefix to a cluster.
type PutPrefixRoute struct {
	Prefix  string `json:"prefix"`
	Cluster string `json:"cluster"`
	RouteTargets
}

// DeletePrefixRoute removes a topic prefix route.
type DeletePrefixRoute struct {
	Prefix string `json:"prefix"`
}

// PutGroupRoute gives consumer groups whose id starts with Prefix a home
// cluster.
type PutGroupRoute struct {
	Prefix  string `json:"prefix"`
	Cluster string `json:"cluster"`
	RouteTargets
}

// DeleteGroupRoute removes a group prefix route.
type DeleteGroupRoute struct {
	Prefix string `json:"prefix"`
}

// SetDefaultCluster sets the cluster that takes unrouted topics and groups;
// an empty Cluster clears it (and its targets, which must then be empty).
type SetDefaultCluster struct {
	Cluster string `json:"cluster"`
	RouteTargets
}

// PutQuota adds or replaces the quota rule for (Topic, Prefix).
type PutQuota struct {
	Quota Quota `json:"quota"`
}

// DeleteQuota removes the quota rule for (Topic, Prefix).
type DeleteQuota struct {
	Topic  string `json:"topic"`
	Prefix bool   `json:"prefix"`
}

// PutJob creates a job or updates the one with the same ID. An update keeps
// the job's Kind and CreatedAt and cannot change a job in a terminal state.
type PutJob struct {
	Job Job `json:"job"`
}

// DeleteJob removes a job.
type DeleteJob struct {
	ID string `json:"id"`
}

// SetClusterID sets the virtual cluster id once; the proposer picks it (a
// random id), so Apply stays deterministic. A second SetClusterID with a
// different id is a conflict: clients must never see the id change.
type SetClusterID struct {
	ID string `json:"id"`
}

// AllowPeer adds a peer name to the operator's allow-list: the leader
// admits a gossip member of that name (registers it, adds it to Raft,
// promotes it) without a peer certificate naming it. Allowing a name
// already allowed changes nothing.
type AllowPeer struct {
	Name string `json:"name"`
}

// DisallowPeer removes a name from the allow-list. It does not evict a
// peer already admitted: that is RemovePeer's job.
type DisallowPeer struct {
	Name string `json:"name"`
}

func (*AllowPeer) Type() CommandType    { return TypeAllowPeer }
func (*DisallowPeer) Type() CommandType { return TypeDisallowPeer }
func (*AllowPeer) isCommand()           {}
func (*DisallowPeer) isCommand()        {}
func (c *AllowPeer) Validate() error    { return validName("allowed peer", c.Name) }
func (c *DisallowPeer) Validate() error { return validName("allowed peer", c.Name) }

func (*RegisterPeer) Type() CommandType      { return TypeRegisterPeer }
func (*RemovePeer) Type() CommandType        { return TypeRemovePeer }
func (*PutCluster) Type() CommandType        { return TypePutCluster }
func (*DeleteCluster) Type() CommandType     { return TypeDeleteCluster }
func (*PutRoute) Type() CommandType          { return TypePutRoute }
func (*DeleteRoute) Type() CommandType       { return TypeDeleteRoute }
func (*PutPrefixRoute) Type() CommandType    { return TypePutPrefixRoute }
func (*DeletePrefixRoute) Type() CommandType { return TypeDeletePrefixRoute }
func (*PutGroupRoute) Type() CommandType     { return TypePutGroupRoute }
func (*DeleteGroupRoute) Type() CommandType  { return TypeDeleteGroupRoute }
func (*SetDefaultCluster) Type() CommandType { return TypeSetDefaultCluster }
func (*PutQuota) Type() CommandType          { return TypePutQuota }
func (*DeleteQuota) Type() CommandType       { return TypeDeleteQuota }
func (*PutJob) Type() CommandType            { return TypePutJob }
func (*DeleteJob) Type() CommandType         { return TypeDeleteJob }
func (*SetClusterID) Type() CommandType      { return TypeSetClusterID }

func (*RegisterPeer) isCommand()      {}
func (*RemovePeer) isCommand()        {}
func (*PutCluster) isCommand()        {}
func (*DeleteCluster) isCommand()     {}
func (*PutRoute) isCommand()          {}
func (*DeleteRoute) isCommand()       {}
func (*PutPrefixRoute) isCommand()    {}
func (*DeletePrefixRoute) isCommand() {}
func (*PutGroupRoute) isCommand()     {}
func (*DeleteGroupRoute) isCommand()  {}
func (*SetDefaultCluster) isCommand() {}
func (*PutQuota) isCommand()          {}
func (*DeleteQuota) isCommand()       {}
func (*PutJob) isCommand()            {}
func (*DeleteJob) isCommand()         {}
func (*SetClusterID) isCommand()      {}

func (c *RegisterPeer) Validate() error {
	p := c.Peer
	if p.Name == "" {
		return fmt.Errorf("%w: register peer: a peer needs a name (its stable node name)", ErrInvalid)
	}
	if p.ID == AutoPeerID {
		p.ID = 0 // any valid id: the FSM picks the real one
	}
	return validatePeer(p)
}

func (c *RemovePeer) Validate() error {
	if c.ID < 0 {
		return fmt.Errorf("%w: remove peer: negative id %d", ErrInvalid, c.ID)
	}
	return nil
}

func (c *PutCluster) Validate() error    { return validateCluster(c.Cluster) }
func (c *DeleteCluster) Validate() error { return validName("cluster", c.Name) }
func (c *PutRoute) Validate() error      { return validateTopicRoute(TopicRoute(*c)) }
func (c *DeleteRoute) Validate() error   { return validTopic("route topic", c.Topic, false) }
func (c *PutPrefixRoute) Validate() error {
	return validatePrefixRoute("prefix route", PrefixRoute(*c), true)
}
func (c *DeletePrefixRoute) Validate() error {
	return validTopic("prefix route prefix", c.Prefix, true)
}
func (c *PutGroupRoute) Validate() error {
	return validatePrefixRoute("group prefix route", PrefixRoute(*c), false)
}
func (c *DeleteGroupRoute) Validate() error {
	return validGroupPrefix("group prefix route prefix", c.Prefix)
}
func (c *SetDefaultCluster) Validate() error {
	if c.Cluster != "" {
		if err := validName("default cluster", c.Cluster); err != nil {
			return err
		}
	}
	return validateTargets("the default route", c.Cluster, c.RouteTargets)
}
func (c *PutQuota) Validate() error { return validateQuota(c.Quota) }
func (c *DeleteQuota) Validate() error {
	if c.Prefix {
		return validTopic("quota prefix", c.Topic, true)
	}
	return validTopic("quota topic", c.Topic, false)
}
func (c *PutJob) Validate() error       { return validateJob(c.Job) }
func (c *DeleteJob) Validate() error    { return validName("job", c.ID) }
func (c *SetClusterID) Validate() error { return validClusterID(c.ID) }

// Encode writes cmd as a log entry: one byte of command type, one byte of
// payload version, then the payload as a JSON object. It fails only for a
// nil command or one whose payload cannot be marshalled (a Job.Spec that is
// not JSON); it does not Validate.
func Encode(cmd Command) ([]byte, error) {
	if cmd == nil {
		return nil, fmt.Errorf("%w: encode a nil command", ErrBadPayload)
	}
	t := cmd.Type()
	info, ok := t.info()
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrUnknownCommand, uint8(t))
	}
	payload, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("%w: encode %s: %v", ErrBadPayload, t, err)
	}
	if len(payload) == 0 || payload[0] != '{' {
		return nil, fmt.Errorf("%w: encode %s: payload is %s, not an object", ErrBadPayload, t, payload)
	}
	version := info.version
	if c, ok := cmd.(*PutCluster); ok {
		// The oldest version that carries it: older peers decode a
		// cluster without TLS and SASL (the new fields are omitted when
		// empty).
		version = clusterPayloadVersion(c)
	} else if unset, ok := newFieldsUnset(cmd); ok && unset {
		// Its JSON is exactly version 1's (the new fields are omitted
		// when empty): older peers decode it.
		version = 1
	}
	out := make([]byte, 0, 2+len(payload))
	out = append(out, byte(t), version)
	return append(out, payload...), nil
}

// Decode reads a command written by Encode. It rejects an unknown type or
// version, a payload that is not one JSON object of the type's shape
// (unknown fields included: a newer peer's field must not be dropped in
// silence), and anything after the object but white space. It does not
// Validate: a decodable but invalid command is rejected by Apply, the same on
// every peer.
func Decode(b []byte) (Command, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: %d bytes, want a type and a version byte", ErrShortCommand, len(b))
	}
	t := CommandType(b[0])
	info, ok := t.info()
	if !ok {
		return nil, fmt.Errorf("%w: %d; this peer knows types 1 to %d, upgrade it", ErrUnknownCommand, b[0], len(commandTable)-1)
	}
	oldest := t.oldestVersion()
	if b[1] < oldest || b[1] > info.version {
		return nil, fmt.Errorf("%w: %s version %d, this peer reads versions %d to %d", ErrUnknownVersion, t, b[1], oldest, info.version)
	}
	payload := b[2:]
	if len(payload) == 0 || payload[0] != '{' {
		return nil, fmt.Errorf("%w: %s payload does not start with a JSON object", ErrBadPayload, t)
	}
	cmd := info.new()
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cmd); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadPayload, t, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: %s payload has bytes after its JSON object at offset %d", ErrTrailingData, t, dec.InputOffset())
	}
	if b[1] < info.version {
		if err := olderPayload(cmd, b[1]); err != nil {
			return nil, fmt.Errorf("%w: %s version %d: %v", ErrBadPayload, t, b[1], err)
		}
	}
	return cmd, nil
}

// olderPayload refuses fields a payload version did not have: the
// current struct decodes an older payload, so a field it accepts would
// otherwise pass in a payload version that never carried it.
func olderPayload(cmd Command, version uint8) error {
	if c, ok := cmd.(*PutCluster); ok {
		switch need := clusterPayloadVersion(c); {
		case need <= version:
			return nil
		case need == 4:
			return fmt.Errorf("failback_drain_ms needs payload version 4")
		case need == 3:
			return fmt.Errorf("tls and sasl need payload version 3")
		default:
			return fmt.Errorf("down_after_ms and up_after_ms need payload version 2")
		}
	}
	if unset, ok := newFieldsUnset(cmd); ok && version < 2 && !unset {
		if _, cluster := cmd.(*PutCluster); cluster {
			return fmt.Errorf("down_after_ms and up_after_ms need payload version 2")
		}
		return fmt.Errorf("region targets and failover policy need payload version 2")
	}
	return nil
}
