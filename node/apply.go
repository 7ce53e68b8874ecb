package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/quota"
	"github.com/switchyard-proxy/switchyard/transport"
)

// Errors of the write and consistent-read paths, tested with errors.Is.
var (
	// ErrNoLeader: no Raft leader is known, so nothing can be written or
	// read consistently (the admin API answers 503).
	ErrNoLeader = errors.New("no raft leader")
	// ErrNotLeader: a forwarded request reached a peer that is no longer
	// the leader; it is never forwarded again.
	ErrNotLeader = errors.New("not the raft leader")
	// ErrUnknownOutcome: leadership was lost while a write was in flight;
	// it may or may not have been committed.
	ErrUnknownOutcome = errors.New("write outcome unknown")
)

// Peer RPC methods.
const (
	rpcApply = "apply"
	rpcState = "state"
)

// rpcCodes maps the errors that cross the peer RPC stream to codes and
// back, so a follower answers a forwarded write's error with the same
// status the leader would.
var rpcCodes = []struct {
	code string
	err  error
}{
	{"invalid", fsm.ErrInvalid},
	{"not_found", fsm.ErrNotFound},
	{"conflict", fsm.ErrConflict},
	{"unknown_cluster", fsm.ErrUnknownCluster},
	{"in_use", fsm.ErrInUse},
	{"bad_payload", fsm.ErrBadPayload},
	// A command this leader cannot decode: a newer peer forwarded it.
	{"bad_payload", fsm.ErrUnknownCommand},
	{"bad_payload", fsm.ErrUnknownVersion},
	{"bad_payload", fsm.ErrShortCommand},
	{"bad_payload", fsm.ErrTrailingData},
	{"no_leader", ErrNoLeader},
	{"not_leader", ErrNotLeader},
	{"unknown_outcome", ErrUnknownOutcome},
	{transport.CodeUnauthorized, ErrUnauthorized},
}

func toRPCError(err error) error {
	for _, c := range rpcCodes {
		if errors.Is(err, c.err) {
			return &transport.RPCError{Code: c.code, Message: err.Error()}
		}
	}
	return err
}

// remoteError is an error the leader returned: its message, unwrapping to
// the sentinel its code names.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

func fromRPCError(err error) error {
	var re *transport.RPCError
	if !errors.As(err, &re) {
		return err
	}
	for _, c := range rpcCodes {
		if re.Code == c.code {
			return &remoteError{msg: re.Message, sentinel: c.err}
		}
	}
	return errors.New(re.Message)
}

type applyRequest struct {
	Command []byte `json:"command"`
}

type applyResponse struct {
	Index  uint64 `json:"index"`
	PeerID int32  `json:"peer_id"`
}

type stateResponse struct {
	Snapshot []byte `json:"snapshot"`
}

// Apply is the one write path: it validates cmd, then applies it through
// Raft on the leader, or forwards it to the leader over the peer port. The
// returned error wraps an fsm sentinel for a rejected command, or
// ErrNoLeader / ErrUnknownOutcome.
func (n *Node) Apply(ctx context.Context, cmd fsm.Command) (fsm.Applied, error) {
	if cmd == nil {
		return fsm.Applied{}, fmt.Errorf("%w: nil command", fsm.ErrInvalid)
	}
	if err := cmd.Validate(); err != nil {
		return fsm.Applied{}, err
	}
	if n.raft.State() == raft.Leader {
		return n.applyLocal(ctx, cmd)
	}
	addr, _ := n.raft.LeaderWithID()
	if addr == "" {
		return fsm.Applied{}, fmt.Errorf("%w: this peer (%s) knows no leader; the cluster may have lost quorum", ErrNoLeader, n.cfg.Name)
	}
	b, err := fsm.Encode(cmd)
	if err != nil {
		return fsm.Applied{}, err
	}
	var resp applyResponse
	if err := n.rpc.Call(ctx, string(addr), rpcApply, applyRequest{Command: b}, &resp); err != nil {
		if errors.As(err, new(*transport.RPCError)) {
			return fsm.Applied{}, fromRPCError(err)
		}
		return fsm.Applied{}, fmt.Errorf("%w: forwarding to the leader at %s failed: %v", ErrNoLeader, addr, err)
	}
	return fsm.Applied{Index: resp.Index, PeerID: resp.PeerID}, nil
}

// applyLocal proposes cmd on this peer, which must be the leader. It checks
// cmd against the latest state first, so an invalid command costs no log
// entry; Apply on every peer still has the last word.
func (n *Node) applyLocal(ctx context.Context, cmd fsm.Command) (fsm.Applied, error) {
	if err := n.fsm.State().Check(cmd); err != nil {
		return fsm.Applied{}, err
	}
	b, err := fsm.Encode(cmd)
	if err != nil {
		return fsm.Applied{}, err
	}
	timeout := n.cfg.Timing.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, max(0, time.Until(d)))
	}
	f := n.raft.Apply(b, timeout)
	if err := f.Error(); err != nil {
		n.metrics.applies.WithLabelValues("error").Inc()
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			return fsm.Applied{}, fmt.Errorf("%w: %s stepped down before the write was proposed; retry", ErrNoLeader, n.cfg.Name)
		case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrRaftShutdown):
			return fsm.Applied{}, fmt.Errorf("%w: %v; read the state back before retrying", ErrUnknownOutcome, err)
		}
		return fsm.Applied{}, fmt.Errorf("raft apply: %w", err)
	}
	switch r := f.Response().(type) {
	case error:
		n.metrics.applies.WithLabelValues("rejected").Inc()
		return fsm.Applied{}, r
	case fsm.Applied:
		n.metrics.applies.WithLabelValues("ok").Inc()
		return r, nil
	default:
		return fsm.Applied{}, fmt.Errorf("raft apply: unexpected response %T", r)
	}
}

// ConsistentState returns the state as of a read confirmed by the leader:
// the leader commits a barrier (proving it still leads and applying every
// earlier entry) and answers its state; a follower asks the leader.
func (n *Node) ConsistentState(ctx context.Context) (*fsm.State, error) {
	if n.raft.State() == raft.Leader {
		return n.leaderState()
	}
	addr, _ := n.raft.LeaderWithID()
	if addr == "" {
		return nil, fmt.Errorf("%w: this peer (%s) knows no leader; drop ?consistent=1 to read its local state", ErrNoLeader, n.cfg.Name)
	}
	var resp stateResponse
	if err := n.rpc.Call(ctx, string(addr), rpcState, struct{}{}, &resp); err != nil {
		if errors.As(err, new(*transport.RPCError)) {
			return nil, fromRPCError(err)
		}
		return nil, fmt.Errorf("%w: reading through the leader at %s failed: %v", ErrNoLeader, addr, err)
	}
	return fsm.ReadSnapshot(bytes.NewReader(resp.Snapshot))
}

func (n *Node) leaderState() (*fsm.State, error) {
	if err := n.raft.Barrier(n.cfg.Timing.ApplyTimeout).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return nil, fmt.Errorf("%w: %s lost leadership during a consistent read; retry", ErrNoLeader, n.cfg.Name)
		}
		return nil, fmt.Errorf("consistent read barrier: %w", err)
	}
	return n.fsm.State(), nil
}

// handleRPC serves the peer RPC stream, only to senders in the Raft
// configuration (peerrpc.go); from is proven by TLS when it is on.
// Forwarded writes and reads are served only by the leader and never
// forwarded again, so they cannot loop.
func (n *Node) handleRPC(ctx context.Context, from, method string, body []byte) ([]byte, error) {
	if !knownRPC(method) {
		return nil, &transport.RPCError{Code: "unknown_method", Message: fmt.Sprintf("unknown peer rpc method %q", method)}
	}
	if err := n.authorizeRPC(from, method); err != nil {
		return nil, err
	}
	req, err := decodeRPC(method, body)
	if err != nil {
		return nil, toRPCError(err)
	}
	switch method {
	case rpcQuotaGrants:
		if err := n.authorizeLeader(from, method); err != nil {
			return nil, err
		}
		return n.quotas.handleGrants(req.(quota.Grants))
	case rpcQuotaStatus:
		return n.quotas.handleStatus(req.(quotaStatusRequest))
	case rpcQuotaReport:
		return n.quotas.handleReport(from, req.(quotaReportRequest))
	}
	if n.raft.State() != raft.Leader {
		return nil, toRPCError(fmt.Errorf("%w: %s received a forwarded %s from %s", ErrNotLeader, n.cfg.Name, method, from))
	}
	switch method {
	case rpcApply:
		res, err := n.applyLocal(ctx, req.(fsm.Command))
		if err != nil {
			return nil, toRPCError(err)
		}
		return marshal(applyResponse{Index: res.Index, PeerID: res.PeerID})
	default: // rpcState
		st, err := n.leaderState()
		if err != nil {
			return nil, toRPCError(err)
		}
		var buf bytes.Buffer
		if err := fsm.WriteSnapshot(&buf, st); err != nil {
			return nil, err
		}
		return marshal(stateResponse{Snapshot: buf.Bytes()})
	}
}
