package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// A leader that steps down with a write in flight (raft.ErrLeadershipLost)
// does not know whether the write committed: the entry may be in the new
// leader's log, or overwritten. The proposer settles it. Each entry it
// proposes carries a write id in the Raft log entry's Extensions (not in
// the command, so the FSM's state and the command encoding are
// untouched; an older peer stores and ignores it). Every peer's FSM
// remembers, for its latest applied entries, the write id and what Apply
// answered (resultsFSM). Once the old leader, now a follower, has applied
// the write's index, the entry at that index is the committed one:
//   - its write id is ours: the write committed, and its answer is the one
//     Apply gave on this peer (the same on every peer: Apply is
//     deterministic);
//   - any other entry: ours was overwritten and can never commit (an entry
//     lives at one index only), so it is retried against the new leader.
// Only when the answer cannot be found (the index was applied from a
// snapshot, the peer is cut off from the new leader until the deadline) is
// the outcome still unknown.

// resultsKept is how many recent command entries' answers a peer keeps.
// A settle looks up one index moments after a leader change; the window
// only has to outlast the writes committed meanwhile.
const resultsKept = 1024

// writeIDs makes a peer's write ids: a random prefix per process and a
// counter, so ids never repeat across peers or restarts.
type writeIDs struct {
	prefix [8]byte
	n      atomic.Uint64
}

func newWriteIDs() *writeIDs {
	w := &writeIDs{}
	if _, err := rand.Read(w.prefix[:]); err != nil {
		// crypto/rand does not fail on the platforms Go supports; a
		// clock-derived prefix keeps ids distinct across restarts anyway.
		binary.BigEndian.PutUint64(w.prefix[:], uint64(time.Now().UnixNano()))
	}
	return w
}

func (w *writeIDs) next() []byte {
	id := make([]byte, 16)
	copy(id, w.prefix[:])
	binary.BigEndian.PutUint64(id[8:], w.n.Add(1))
	return id
}

// result is what Apply answered for one entry and the write id it carried.
type result struct {
	id   []byte
	resp any
}

// resultsFSM is the FSM Raft drives: fsm.FSM, plus a record of the latest
// command entries' answers by index. The record is this peer's memory
// only; the FSM's state, snapshots and determinism are fsm.FSM's.
type resultsFSM struct {
	*fsm.FSM
	mu    sync.Mutex
	by    map[uint64]result
	order [resultsKept]uint64 // ring of the indexes in by, oldest at next
	next  int
}

func newResultsFSM(f *fsm.FSM) *resultsFSM {
	return &resultsFSM{FSM: f, by: make(map[uint64]result, resultsKept)}
}

// Apply applies l and records its answer.
func (r *resultsFSM) Apply(l *raft.Log) any {
	resp := r.FSM.Apply(l)
	if l.Type != raft.LogCommand {
		return resp
	}
	r.mu.Lock()
	if old := r.order[r.next]; old != 0 {
		delete(r.by, old)
	}
	r.order[r.next] = l.Index
	r.next = (r.next + 1) % resultsKept
	r.by[l.Index] = result{id: l.Extensions, resp: resp}
	r.mu.Unlock()
	return resp
}

// result returns the recorded answer for the entry at idx.
func (r *resultsFSM) result(idx uint64) (result, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res, ok := r.by[idx]
	return res, ok
}

// settle finds out what became of a write this peer proposed at idx with
// write id id, after it lost leadership with the write in flight. It
// returns the write's answer (fsm.Applied, or the FSM's refusal) when it
// committed; ErrNotLeader when it was overwritten (never applied; safe to
// send again); ErrUnknownOutcome when ctx ends first or the answer is not
// to be found.
func (n *Node) settle(ctx context.Context, idx uint64, id []byte) (fsm.Applied, error) {
	if idx == 0 {
		return fsm.Applied{}, fmt.Errorf("%w: leadership lost before the write had an index", ErrUnknownOutcome)
	}
	t := time.NewTicker(retryMinWait)
	defer t.Stop()
	wait := func() error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	// Raft counts an entry applied once it handed it to the FSM: from then
	// on this peer's log holds the committed entry at idx.
	for n.raft.AppliedIndex() < idx {
		if err := wait(); err != nil {
			n.metrics.settled.WithLabelValues("unknown").Inc()
			return fsm.Applied{}, fmt.Errorf("%w: %s lost leadership with the write at index %d in flight, and had not learnt its fate from the new leader before the deadline (%v); read the state back before retrying",
				ErrUnknownOutcome, n.cfg.Name, idx, err)
		}
	}
	var l raft.Log
	if err := n.store.GetLog(idx, &l); err != nil {
		// Compacted already: the FSM's record may still say.
		res, ok := n.results.result(idx)
		if !ok {
			n.metrics.settled.WithLabelValues("unknown").Inc()
			return fsm.Applied{}, fmt.Errorf("%w: %s lost leadership with the write at index %d in flight, and that entry is no longer in its log (%v); read the state back before retrying",
				ErrUnknownOutcome, n.cfg.Name, idx, err)
		}
		l = raft.Log{Type: raft.LogCommand, Extensions: res.id}
	}
	if l.Type != raft.LogCommand || !bytes.Equal(l.Extensions, id) {
		n.metrics.settled.WithLabelValues("dropped").Inc()
		return fsm.Applied{}, fmt.Errorf("%w: %s lost leadership and the new leader dropped the write at index %d", ErrNotLeader, n.cfg.Name, idx)
	}
	// Committed. Its answer is the FSM's, once the FSM goroutine has
	// applied it (moments after Raft handed it over).
	for {
		if res, ok := n.results.result(idx); ok {
			n.metrics.settled.WithLabelValues("committed").Inc()
			switch r := res.resp.(type) {
			case fsm.Applied:
				return r, nil
			case error:
				return fsm.Applied{}, r
			}
			return fsm.Applied{}, fmt.Errorf("raft apply: unexpected response %T at index %d", res.resp, idx)
		}
		if err := wait(); err != nil {
			n.metrics.settled.WithLabelValues("unknown").Inc()
			return fsm.Applied{}, fmt.Errorf("%w: the write committed at index %d, but %s has no record of its answer (applied from a snapshot?) (%v); read the state back",
				ErrUnknownOutcome, idx, n.cfg.Name, err)
		}
	}
}
