package fsm

import (
	"fmt"
	"io"
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
func New(onApply func(*State)) *FSM {
	f := &FSM{onApply: onApply}
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
}

// Apply applies one committed log entry. An entry that does not decode
// panics: a peer that cannot read the log must stop rather than skip an
// entry and diverge from the others (the leader gates new command types and
// versions on every peer's Version). A command that decodes but is invalid
// against the current state changes nothing and returns its error, which
// the proposer reads from ApplyFuture.Response.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd, err := Decode(l.Data)
	if err != nil {
		panic(fmt.Sprintf("fsm: cannot decode committed log entry at index %d, stopping so this peer does not diverge: %v", l.Index, err))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	next, err := f.state.Load().Next(cmd, l.Index)
	if err != nil {
		return err
	}
	f.publish(next)
	res := Applied{Index: l.Index}
	if rp, ok := cmd.(*RegisterPeer); ok {
		p, _ := next.PeerByName(rp.Peer.Name)
		res.PeerID = p.ID
	}
	return res
}

// publish swaps st in and calls the hook. The caller holds f.mu.
func (f *FSM) publish(st *State) {
	f.state.Store(st)
	if f.onApply != nil {
		f.onApply(st)
	}
}

// Snapshot captures the current State. The State is immutable, so the
// capture is a pointer copy; Persist does the encoding while Apply goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &snapshot{state: f.state.Load()}, nil
}

// Restore replaces the state with the one in a snapshot written by Persist.
// It decodes and validates the whole snapshot aside first, so a snapshot
// that fails leaves the current State in place.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := ReadSnapshot(rc)
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.publish(st)
	return nil
}

// snapshot is an FSMSnapshot of one immutable State.
type snapshot struct {
	state *State
}

// Persist writes the snapshot to sink and closes it, or cancels the sink on
// error.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := WriteSnapshot(sink, s.state); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release does nothing: the State needs no cleanup.
func (s *snapshot) Release() {}
