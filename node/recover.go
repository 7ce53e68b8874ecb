package node

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// RecoverVoter is one server of the configuration a forced recovery writes:
// a peer name (its Raft id) and its peer-port address.
type RecoverVoter struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
}

// RecoverServer is a server of a Raft configuration as Recover reports it.
type RecoverServer struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	Voter bool   `json:"voter"`
}

// RecoverReport says what Recover found and wrote.
type RecoverReport struct {
	// Old is the configuration this peer's state held (its latest, from
	// the newest snapshot and the log after it, committed or not).
	Old []RecoverServer `json:"old"`
	// New is the configuration written: every voter given, in that order.
	New []RecoverServer `json:"new"`
	// LastIndex and LastTerm are the last log entry this peer held; the
	// recovered snapshot is taken at that index and holds every entry up
	// to it (including entries that were never committed).
	LastIndex uint64 `json:"last_index"`
	LastTerm  uint64 `json:"last_term"`
	// SnapshotIndex is the index of the snapshot the state was rebuilt
	// from (0: none, the whole log was replayed); Replayed is how many log
	// entries were read after it.
	SnapshotIndex uint64 `json:"snapshot_index"`
	Replayed      uint64 `json:"replayed"`
}

// Recover rewrites the Raft state in dataDir so that, once started, the peer
// belongs to a cluster whose only servers are voters, all of them voters.
// It is the way out when a majority of voters is gone for good (a lost
// site): nothing can commit then, not even the configuration change that
// would remove the dead voters, so the survivors are told the new
// configuration out of band.
//
// The peer must be stopped: its store is opened the way a peer opens it and
// a running peer's lock makes Recover fail. Recover replays the newest
// snapshot and every log entry after it into this build's FSM (so a state
// this build cannot read fails here, before anything changes), writes a
// snapshot at the last log index that carries the new configuration, and
// deletes the log (hashicorp/raft's RecoverCluster). The current term is
// kept, so the recovered peers' next election is in a later term than
// anything they voted in.
//
// Run it on every surviving voter with the same voters, then start them:
// they elect a leader among themselves. Entries in a peer's log that were
// never committed become part of its state; peers that held different
// uncommitted tails converge on the tail of whichever becomes leader.
// Each voter's name must be a server of this peer's configuration (a typo
// would make a voter that never answers and a quorum that cannot form).
func Recover(dataDir string, voters []RecoverVoter, logger *slog.Logger) (RecoverReport, error) {
	var rep RecoverReport
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if dataDir == "" {
		return rep, errors.New("recover: no data dir given")
	}
	if err := checkRecoverVoters(voters); err != nil {
		return rep, err
	}
	dir := raftDir(dataDir)
	dbPath := filepath.Join(dir, "raft.db")
	// Opening the store would create it: look first, so a wrong path is
	// reported and left untouched.
	if _, err := os.Stat(dbPath); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return rep, fmt.Errorf("recover: %s holds no raft state (no %s): is it the peer's --data-dir?", dataDir, dbPath)
		}
		return rep, fmt.Errorf("recover: %w", err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        dbPath,
		BoltOptions: &bbolt.Options{Timeout: time.Second},
	})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return rep, fmt.Errorf("recover: data dir %s is in use by a running switchyard process: stop the peer first", dataDir)
		}
		return rep, fmt.Errorf("recover: open raft store in %s: %w", dir, err)
	}
	defer store.Close()
	hl := newHclog(logger.With("component", "raft"), "")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hl)
	if err != nil {
		return rep, fmt.Errorf("recover: open snapshot store in %s: %w", dir, err)
	}
	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return rep, fmt.Errorf("recover: read raft state in %s: %w", dir, err)
	}
	if !has {
		return rep, fmt.Errorf("recover: %s holds no raft state (an empty log, no snapshot): nothing to recover", dataDir)
	}
	old, err := latestConfiguration(store, snaps)
	if err != nil {
		return rep, err
	}
	rep.Old = old.servers
	rep.SnapshotIndex = old.snapshotIndex
	known := map[string]bool{}
	for _, s := range old.servers {
		known[s.Name] = true
	}
	var conf raft.Configuration
	for _, v := range voters {
		if !known[v.Name] {
			return rep, fmt.Errorf("recover: voter %q is not a server of this peer's configuration (%s): check the name", v.Name, serverNames(old.servers))
		}
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(v.Name), Address: raft.ServerAddress(v.Addr)})
		rep.New = append(rep.New, RecoverServer{Name: v.Name, Addr: v.Addr, Voter: true})
	}
	rc := raft.DefaultConfig()
	rc.LocalID = "switchyard-recover" // validated only; nothing runs
	rc.Logger = hl
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	f := fsm.New(nil, fsm.WithLogger(logger))
	if err := raft.RecoverCluster(rc, f, store, store, snaps, trans, conf); err != nil {
		return rep, fmt.Errorf("recover: %w", err)
	}
	list, err := snaps.List()
	if err != nil || len(list) == 0 {
		return rep, fmt.Errorf("recover: the recovered snapshot is not listed in %s: %v", dir, err)
	}
	rep.LastIndex, rep.LastTerm = list[0].Index, list[0].Term
	if rep.LastIndex > rep.SnapshotIndex {
		rep.Replayed = rep.LastIndex - rep.SnapshotIndex
	}
	if n := f.Skipped(); n > 0 {
		logger.Warn("recover: log entries that do not decode were skipped, as a running peer would", "skipped", n)
	}
	return rep, nil
}

// checkRecoverVoters refuses what would leave a configuration that cannot
// elect: no voter, an empty or repeated name or address.
func checkRecoverVoters(voters []RecoverVoter) error {
	if len(voters) == 0 {
		return errors.New("recover: no voters given: name every surviving voter, this peer included (NAME=RAFTADDR)")
	}
	names, addrs := map[string]bool{}, map[string]bool{}
	for _, v := range voters {
		switch {
		case v.Name == "":
			return fmt.Errorf("recover: a voter with address %q has no name", v.Addr)
		case v.Addr == "":
			return fmt.Errorf("recover: voter %q has no peer-port address", v.Name)
		case names[v.Name]:
			return fmt.Errorf("recover: voter %q given twice", v.Name)
		case addrs[v.Addr]:
			return fmt.Errorf("recover: address %s given for two voters", v.Addr)
		}
		names[v.Name], addrs[v.Addr] = true, true
	}
	return nil
}

// ParseRecoverVoter parses NAME=RAFTADDR (RAFTADDR a host:port).
func ParseRecoverVoter(s string) (RecoverVoter, error) {
	name, addr, ok := strings.Cut(s, "=")
	name, addr = strings.TrimSpace(name), strings.TrimSpace(addr)
	if !ok || name == "" || addr == "" {
		return RecoverVoter{}, fmt.Errorf("voter %q: want NAME=RAFTADDR (the peer's --name and its peer-port address host:port)", s)
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return RecoverVoter{}, fmt.Errorf("voter %q: address %q is not host:port", s, addr)
	}
	return RecoverVoter{Name: name, Addr: addr}, nil
}

type oldConfiguration struct {
	servers       []RecoverServer
	snapshotIndex uint64
}

// latestConfiguration is the configuration a peer would start with: that of
// the last configuration entry in the log after the newest snapshot, else
// the snapshot's.
func latestConfiguration(store *raftboltdb.BoltStore, snaps raft.SnapshotStore) (oldConfiguration, error) {
	var out oldConfiguration
	var conf raft.Configuration
	list, err := snaps.List()
	if err != nil {
		return out, fmt.Errorf("recover: list snapshots: %w", err)
	}
	if len(list) > 0 {
		conf, out.snapshotIndex = list[0].Configuration, list[0].Index
	}
	first, err := store.FirstIndex()
	if err != nil {
		return out, fmt.Errorf("recover: read the log: %w", err)
	}
	last, err := store.LastIndex()
	if err != nil {
		return out, fmt.Errorf("recover: read the log: %w", err)
	}
	low := max(first, out.snapshotIndex+1)
	for i := last; i >= low && i > 0; i-- {
		var e raft.Log
		if err := store.GetLog(i, &e); err != nil {
			return out, fmt.Errorf("recover: read log entry %d: %w", i, err)
		}
		if e.Type == raft.LogConfiguration {
			conf = raft.DecodeConfiguration(e.Data)
			break
		}
	}
	for _, s := range conf.Servers {
		out.servers = append(out.servers, RecoverServer{Name: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

func serverNames(s []RecoverServer) string {
	names := make([]string, len(s))
	for i, x := range s {
		names[i] = x.Name
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
