package node

import (
	"context"
	"errors"

	"github.com/hashicorp/raft"
)

// Followers learn that an entry committed from the leader's next
// AppendEntries, which hashicorp/raft sends when a new entry is appended or,
// on an idle log, every CommitTimeout..2× it. A short commit timeout made
// writes reach every peer's data plane quickly, at the price of an empty
// AppendEntries to each follower every few milliseconds, forever: the
// largest control-plane cost in the three-peer benchmark. Instead, once a
// write has committed and applied on the leader, the leader appends a
// barrier (a log entry the FSM never sees): its AppendEntries carries the
// new commit index to every follower at once, and the commit timeout can
// be long. Nudges coalesce: a burst of writes that commit while a barrier
// is in flight is followed by one more barrier, not one each.

// nudgeCommit asks the commit nudger for a barrier. It never blocks.
func (n *Node) nudgeCommit() {
	select {
	case n.nudges <- struct{}{}:
	default: // one is pending already; it carries this commit too
	}
}

// commitNudger appends a barrier after each (coalesced) nudge while this
// peer leads, until ctx ends.
func (n *Node) commitNudger(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.nudges:
		}
		if n.raft.State() != raft.Leader {
			continue
		}
		// The future's Error waits until the barrier applied here, or the
		// leadership is lost (a leader cut off steps down within its lease
		// timeout); raft's shutdown comes after ctx ends, so the wait runs
		// aside and ctx is not held up by it.
		f := n.raft.Barrier(n.cfg.Timing.ApplyTimeout)
		done := make(chan error, 1)
		go func() { done <- f.Error() }()
		select {
		case <-ctx.Done():
			return
		case err := <-done:
			switch {
			case err == nil:
				n.metrics.nudges.WithLabelValues("ok").Inc()
			case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
				errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrRaftShutdown):
				// The next leader's own writes nudge its followers.
				n.metrics.nudges.WithLabelValues("not_leader").Inc()
			default:
				n.metrics.nudges.WithLabelValues("error").Inc()
				n.log.Debug("commit nudge failed; followers learn the commit from the next AppendEntries", "err", err)
			}
		}
	}
}
