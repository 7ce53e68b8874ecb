package fsm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Snapshot format: newline-separated JSON values. First a header,
//
//	{"format":"switchyard-fsm-snapshot","version":1,"index":N}
//
// then one object per section, {"section":NAME,"data":VALUE}, every section
// of the format version exactly once and in the order of snapshotSections.
// See fsm/DESIGN.md for the rules on changing it.
const (
	snapshotFormat  = "switchyard-fsm-snapshot"
	snapshotVersion = 8
	// oldestSnapshotVersion is the oldest format this build still reads.
	oldestSnapshotVersion = 1
)

type snapshotHeader struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	Index   uint64 `json:"index"`
}

type snapshotSection struct {
	Section string          `json:"section"`
	Data    json.RawMessage `json:"data"`
}

// snapshotMeta is the "meta" section (format version 2 on): state that is
// not a list of entries.
type snapshotMeta struct {
	ClusterID string `json:"cluster_id"`
}

// snapshotContent is what a snapshot holds: the State and, beside it, the
// producer id table (producer_ids.go), oldest claim first.
type snapshotContent struct {
	*State
	producerIDs []ClaimedProducerID
}

// snapshotSections lists the sections in the order they are written and
// must be read; since is the format version that added each one, so a
// version-N snapshot holds exactly the sections with since <= N. get returns
// what Persist writes; set decodes a section's data into the content being
// restored.
var snapshotSections = []struct {
	name  string
	since int
	get   func(*snapshotContent) any
	set   func(*snapshotContent, []byte) error
}{
	{"peers", 1, func(s *snapshotContent) any { return nonNil(s.Peers) }, func(s *snapshotContent, b []byte) error { return decodeStrict(b, &s.Peers) }},
	{"clusters", 1, func(s *snapshotContent) any { return nonNil(s.Clusters) }, func(s *snapshotContent, b []byte) error { return decodeStrict(b, &s.Clusters) }},
	{"routes", 1, func(s *snapshotContent) any { return s.Routes }, func(s *snapshotContent, b []byte) error { return decodeStrict(b, &s.Routes) }},
	{"quotas", 1, func(s *snapshotContent) any { return nonNil(s.Quotas) }, func(s *snapshotContent, b []byte) error { return decodeStrict(b, &s.Quotas) }},
	{"failover", 1, func(s *snapshotContent) any { return s.Failover }, func(s *snapshotContent, b []byte) error { return decodeStrict(b, &s.Failover) }},
	{"jobs", 1, func(s *snapshotContent) any { return nonNil(s.Jobs) }, func(s *snapshotContent, b []byte) error { return decodeStrict(b, &s.Jobs) }},
	{"meta", 2, func(s *snapshotContent) any { return snapshotMeta{ClusterID: s.ClusterID} }, func(s *snapshotContent, b []byte) error {
		var m snapshotMeta
		if err := decodeStrict(b, &m); err != nil {
			return err
		}
		s.ClusterID = m.ClusterID
		return nil
	}},
	{"peer_allow_list", 3, func(s *snapshotContent) any { return nonNil(s.PeerAllowList) }, func(s *snapshotContent, b []byte) error { return decodeStrict(b, &s.PeerAllowList) }},
	{"migrations", 4, func(s *snapshotContent) any { return nonNil(s.Migrations) }, func(s *snapshotContent, b []byte) error { return decodeStrict(b, &s.Migrations) }},
	{"chains", 4, func(s *snapshotContent) any { return nonNil(s.Chains) }, func(s *snapshotContent, b []byte) error { return decodeStrict(b, &s.Chains) }},
	{"offset_resets", 5, func(s *snapshotContent) any { return nonNil(s.OffsetResets) }, func(s *snapshotContent, b []byte) error { return decodeStrict(b, &s.OffsetResets) }},
	{"regions", 6, func(s *snapshotContent) any { return nonNil(s.Regions) }, func(s *snapshotContent, b []byte) error { return decodeStrict(b, &s.Regions) }},
	{"users", 7, func(s *snapshotContent) any { return nonNil(s.Users) }, func(s *snapshotContent, b []byte) error { return decodeStrict(b, &s.Users) }},
	{"acls", 7, func(s *snapshotContent) any { return nonNil(s.ACLs) }, func(s *snapshotContent, b []byte) error { return decodeStrict(b, &s.ACLs) }},
	{"producer_ids", 8, func(s *snapshotContent) any { return nonNil(s.producerIDs) }, func(s *snapshotContent, b []byte) error { return decodeStrict(b, &s.producerIDs) }},
}

// nonNil makes an empty list encode as [] rather than null, for readers.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func knownSection(name string) bool {
	for _, s := range snapshotSections {
		if s.name == name {
			return true
		}
	}
	return false
}

// WriteSnapshot writes st in the current snapshot format, with an empty
// producer id table: the table is the FSM's, not the State's, so a
// consistent read of the State carries none. A backup carries the FSM's
// (FSM.WriteBackup).
func WriteSnapshot(w io.Writer, st *State) error {
	return writeSnapshot(w, st, nil)
}

// WriteSnapshotWithClaims writes st and the producer id table claims
// (oldest first, as ReadSnapshotWithClaims answers it): a restore that
// keeps a backup's table.
func WriteSnapshotWithClaims(w io.Writer, st *State, claims []ClaimedProducerID) error {
	return writeSnapshot(w, st, claims)
}

// ReadSnapshotWithClaims is ReadSnapshot that also answers the snapshot's
// producer id table, oldest claim first (empty before format version 8),
// validated.
func ReadSnapshotWithClaims(r io.Reader) (*State, []ClaimedProducerID, error) {
	return readSnapshot(r)
}

// WriteBackup writes st, a State this FSM published (a consistent read),
// with the producer id table as it is now: a backup that restores the
// table too. The table may be a few claims ahead of st; claims are
// independent of the State, so that is harmless.
func (f *FSM) WriteBackup(w io.Writer, st *State) error {
	return writeSnapshot(w, st, f.pids.list())
}

// writeSnapshot writes st and the producer id table pids (oldest first).
func writeSnapshot(w io.Writer, st *State, pids []ClaimedProducerID) error {
	content := &snapshotContent{State: st, producerIDs: pids}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(snapshotHeader{Format: snapshotFormat, Version: snapshotVersion, Index: st.Index}); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}
	for _, sec := range snapshotSections {
		data, err := json.Marshal(sec.get(content))
		if err != nil {
			return fmt.Errorf("encode snapshot section %q: %w", sec.name, err)
		}
		if err := enc.Encode(snapshotSection{Section: sec.name, Data: data}); err != nil {
			return fmt.Errorf("write snapshot section %q: %w", sec.name, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// ReadSnapshot reads a snapshot written by WriteSnapshot into a new State
// and validates it. It rejects another format or version, an unknown section
// name (this peer would not know what it drops: upgrade it), a missing,
// repeated or misplaced section, a section that does not decode, anything
// after the last section, and a State that breaks an invariant. The
// producer id table it holds is checked and dropped (FSM.Restore keeps it).
func ReadSnapshot(r io.Reader) (*State, error) {
	st, _, err := readSnapshot(r)
	return st, err
}

// readSnapshot is ReadSnapshot that also answers the producer id table,
// oldest claim first (empty before format version 8).
func readSnapshot(r io.Reader) (*State, []ClaimedProducerID, error) {
	dec := json.NewDecoder(bufio.NewReader(r))
	var h snapshotHeader
	if err := dec.Decode(&h); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("%w: the snapshot is empty", ErrSnapshotHeader)
		}
		return nil, nil, fmt.Errorf("%w: header: %v", ErrSnapshotHeader, err)
	}
	if h.Format != snapshotFormat {
		return nil, nil, fmt.Errorf("%w: header names format %q, want %q", ErrSnapshotHeader, h.Format, snapshotFormat)
	}
	if h.Version < oldestSnapshotVersion || h.Version > snapshotVersion {
		return nil, nil, fmt.Errorf("%w: %d, this peer reads versions %d to %d; upgrade it", ErrSnapshotVersion, h.Version, oldestSnapshotVersion, snapshotVersion)
	}
	dec.DisallowUnknownFields()
	st := &State{Index: h.Index}
	content := &snapshotContent{State: st}
	for _, sec := range snapshotSections {
		if sec.since > h.Version {
			break
		}
		var s snapshotSection
		if err := dec.Decode(&s); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, nil, fmt.Errorf("%w: %q (the snapshot ends before it)", ErrMissingSection, sec.name)
			}
			return nil, nil, fmt.Errorf("%w: reading section %q: %v", ErrBadSection, sec.name, err)
		}
		if s.Section != sec.name {
			if knownSection(s.Section) {
				return nil, nil, fmt.Errorf("%w: found %q where %q belongs", ErrSectionOrder, s.Section, sec.name)
			}
			return nil, nil, fmt.Errorf("%w: %q (written by a newer peer? upgrade this one)", ErrUnknownSection, s.Section)
		}
		if s.Data == nil {
			return nil, nil, fmt.Errorf("%w: section %q has no data", ErrBadSection, sec.name)
		}
		if err := sec.set(content, s.Data); err != nil {
			return nil, nil, fmt.Errorf("%w: section %q: %v", ErrBadSection, sec.name, err)
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fmt.Errorf("%w: after the last snapshot section", ErrTrailingData)
	}
	st.normalize()
	if err := st.validate(true); err != nil {
		return nil, nil, fmt.Errorf("snapshot state: %w", err)
	}
	pids := nilIfEmpty(content.producerIDs)
	if err := validateProducerIDs(pids); err != nil {
		return nil, nil, fmt.Errorf("snapshot producer ids: %w", err)
	}
	return st, pids, nil
}

// decodeStrict decodes one JSON value, refusing unknown fields.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: after the section data", ErrTrailingData)
	}
	return nil
}

// normalize puts a decoded State in the form the FSM keeps: empty lists nil,
// local brokers sorted, job specs canonical. A snapshot of a State the FSM
// built therefore restores to a deep-equal State.
func (s *State) normalize() {
	s.Peers = nilIfEmpty(s.Peers)
	for i := range s.Peers {
		s.Peers[i].LocalBrokers = sortedBrokers(s.Peers[i].LocalBrokers)
	}
	s.Clusters = nilIfEmpty(s.Clusters)
	s.Routes.Topics = nilIfEmpty(s.Routes.Topics)
	s.Routes.Prefixes = nilIfEmpty(s.Routes.Prefixes)
	s.Routes.GroupPrefixes = nilIfEmpty(s.Routes.GroupPrefixes)
	s.Quotas = nilIfEmpty(s.Quotas)
	s.Jobs = nilIfEmpty(s.Jobs)
	s.PeerAllowList = nilIfEmpty(s.PeerAllowList)
	s.Migrations = nilIfEmpty(s.Migrations)
	s.Chains = nilIfEmpty(s.Chains)
	s.OffsetResets = nilIfEmpty(s.OffsetResets)
	s.Regions = nilIfEmpty(s.Regions)
	s.Users = nilIfEmpty(s.Users)
	s.ACLs = nilIfEmpty(s.ACLs)
	for i := range s.Regions {
		s.Regions[i].Networks = nilIfEmpty(s.Regions[i].Networks)
		s.Regions[i].Fallback = nilIfEmpty(s.Regions[i].Fallback)
	}
	for i := range s.Routes.Topics {
		s.Routes.Topics[i].RouteTargets = s.Routes.Topics[i].normalized()
	}
	for i := range s.Routes.Prefixes {
		s.Routes.Prefixes[i].RouteTargets = s.Routes.Prefixes[i].normalized()
	}
	for i := range s.Routes.GroupPrefixes {
		s.Routes.GroupPrefixes[i].RouteTargets = s.Routes.GroupPrefixes[i].normalized()
	}
	s.Routes.Default = s.Routes.Default.normalized()
	for i := range s.OffsetResets {
		s.OffsetResets[i].Members = nilIfEmpty(s.OffsetResets[i].Members)
	}
	for i := range s.Migrations {
		s.Migrations[i].GroupsBehind = nilIfEmpty(s.Migrations[i].GroupsBehind)
	}
	for i := range s.Chains {
		for j := range s.Chains[i].Segments {
			g := &s.Chains[i].Segments[j]
			g.Starts, g.Physical = nilIfEmpty(g.Starts), nilIfEmpty(g.Physical)
		}
	}
	for i := range s.Jobs {
		if json.Valid(s.Jobs[i].Spec) {
			s.Jobs[i].Spec = canonicalSpec(s.Jobs[i].Spec)
		}
	}
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}
