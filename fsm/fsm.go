package fsm

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// FSM is the raft.FSM of a Switchyard peer. It holds the latest State in an
// atomic pointer that readers load without locking; Apply and Restore build a
// new State aside and swap it in. It never mutates a published State.
type FSM struct {
	// mu orders Apply, Restore and Snapshot, so the OnApply hook sees
	// States in log order. Readers never take it.
	mu      sync.Mutex
	state   atomic.Pointer[State]
	onApply func(*State)
	log     *slog.Logger
	// skipped counts committed entries Apply could not decode.
	skipped atomic.Uint64
	// pids is the shared producer id table (producer_ids.go), kept beside
	// the State rather than in it: it changes in place, under its own lock.
	pids *producerIDs
}

// Option configures an FSM.
type Option func(*FSM)

// WithLogger sets where Apply reports an entry it skips (default: nowhere).
func WithLogger(l *slog.Logger) Option {
	return func(f *FSM) {
		if l != nil {
			f.log = l.With("component", "fsm")
		}
	}
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.FSMSnapshot = (*snapshot)(nil)
)

// New returns an FSM holding an empty State. onApply, if not nil, is called
// with every new State, after it is published, whenever Apply accepts a
// command and after every Restore; node uses it to swap the data plane's
// state pointer. It runs on Raft's FSM goroutine, in log order: it must
// return quickly and must not call back into the FSM or wait on Raft.
func New(onApply func(*State), opts ...Option) *FSM {
	f := &FSM{onApply: onApply, log: slog.New(slog.DiscardHandler), pids: newProducerIDs()}
	for _, o := range opts {
		o(f)
	}
	f.state.Store(&State{})
	return f
}

// State returns the latest applied State. It never blocks and the State it
// returns never changes.
func (f *FSM) State() *State { return f.state.Load() }

// Applied is what Apply returns for an accepted command (the
// ApplyFuture.Response); a rejected command returns its error instead.
type Applied struct {
	// Index is the log index of the command.
	Index uint64
	// PeerID is, for RegisterPeer, the id the peer holds (assigned or
	// kept); zero for other commands.
	PeerID int32
	// ProducerID is, for ClaimProducerID, the claim that holds its key:
	// the command's own, or an earlier one (the first claim wins); nil for
	// other commands.
	ProducerID *ClaimedProducerID
}

// Apply applies one committed log entry. An entry that does not decode is
// skipped: it changes nothing, counts in Skipped, is logged with its index
// and returns an error wrapping ErrSkippedEntry. Panicking instead would
// stop every peer on the same entry, and again after every restart, since
// Raft replays it: one forged or corrupt entry would take the cluster down
// for good. Skipping is deterministic (it depends on the entry's bytes
// only), so peers of one version stay equal; the leader gates new command
// types and versions on every peer's Version, so an older peer skipping a
// newer command should not happen, and the counter shows it if it does. A
// command that decodes but is invalid against the current state likewise
// changes nothing and returns its error, which the proposer reads from
// ApplyFuture.Response.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd, err := Decode(l.Data)
	if err != nil {
		f.skipped.Add(1)
		f.log.Error("skipping a committed log entry that does not decode; the state is unchanged",
			"index", l.Index, "term", l.Term, "bytes", len(l.Data), "err", err)
		return fmt.Errorf("%w: index %d: %w", ErrSkippedEntry, l.Index, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	next, err := f.state.Load().Next(cmd, l.Index)
	if err != nil {
		return err
	}
	res := Applied{Index: l.Index}
	switch c := cmd.(type) {
	case *RegisterPeer:
		p, _ := next.PeerByName(c.Peer.Name)
		res.PeerID = p.ID
	case *ClaimProducerID:
		// Next only validated it and moved the index: the table is
		// outside State. It changes before the State carrying its index
		// is published, so a reader that waited for the index sees it.
		held := f.pids.claim(c.ClaimedProducerID)
		res.ProducerID = &held
	}
	f.publish(next)
	return res
}

// Skipped is how many committed entries Apply skipped because they did not
// decode (exported as switchyard_fsm_skipped_entries_total).
func (f *FSM) Skipped() uint64 { return f.skipped.Load() }

// publish swaps st in and calls the hook. The caller holds f.mu.
func (f *FSM) publish(st *State) {
	f.state.Store(st)
	if f.onApply != nil {
		f.onApply(st)
	}
}

// Snapshot captures the current State and producer id table. The State is
// immutable, so its capture is a pointer copy; the table changes in place,
// so it is copied (under f.mu, so both are of the same index). Persist does
// the encoding while Apply goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &snapshot{state: f.state.Load(), producerIDs: f.pids.list()}, nil
}

// Restore replaces the state with the one in a snapshot written by Persist.
// It decodes and validates the whole snapshot aside first, so a snapshot
// that fails (an unknown section or version included) leaves the current
// State in place and returns the error; it never panics. Unlike a log
// entry, a snapshot is the whole state, so it is refused rather than
// partly applied: Raft keeps the old state (a follower refuses the
// InstallSnapshot and the leader retries; at start NewRaft fails naming
// the snapshot).
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, pids, err := readSnapshot(rc)
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pids.replace(pids)
	f.publish(st)
	return nil
}

// snapshot is an FSMSnapshot of one immutable State and a copy of the
// producer id table at the same index.
type snapshot struct {
	state       *State
	producerIDs []ClaimedProducerID
}

// Persist writes the snapshot to sink and closes it, or cancels the sink on
// error.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.state, s.producerIDs); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release does nothing: the State and the copy need no cleanup.
func (s *snapshot) Release() {}
