package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
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
	// ErrUpgradeRequired: the command's type belongs to a newer command
	// set than some peer's build applies (version gating); upgrade those
	// peers, then retry. The admin API answers 409.
	ErrUpgradeRequired = errors.New("peers must be upgraded first")
)

// Forwarded-write retries back off from retryMinWait to retryMaxWait while
// a new leader is elected.
const (
	retryMinWait = 10 * time.Millisecond
	retryMaxWait = 250 * time.Millisecond
)

// Peer RPC methods.
const (
	rpcApply = "apply"
	rpcState = "state"
)

// codeUnknownMethod answers a peer RPC method this build does not serve
// (a newer peer asking an older one).
const codeUnknownMethod = "unknown_method"

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
	{"upgrade_required", ErrUpgradeRequired},
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
	// ProducerID: a ClaimProducerID's answer (fsm.Applied.ProducerID).
	ProducerID *fsm.ClaimedProducerID `json:"producer_id,omitempty"`
}

type stateResponse struct {
	Snapshot []byte `json:"snapshot"`
}

// Apply is the one write path: it validates cmd, then applies it through
// Raft on the leader, or forwards it to the leader over the peer port. The
// returned error wraps an fsm sentinel for a rejected command, or
// ErrNoLeader / ErrUnknownOutcome / ErrUpgradeRequired, or ErrUnauthorized
// (this peer is not in the Raft configuration yet) or transport.ErrIdentity
// (the leader's address is served by another peer) for a write not sent.
//
// A write that certainly was not proposed (no leader known, the leader
// unreachable, the target no longer leads, a leadership transfer under
// way, the leader's queue full) is retried against the new leader until
// ctx's deadline, or Timing.ApplyTimeout when ctx has none, as rqlite and
// Consul do: a leader change is routine and must not fail a request. A
// write whose leader stepped down with it in flight is settled by that
// leader from the new leader's log (settle.go): answered with its result
// when it committed, sent again when it was dropped. A caller without a
// deadline allows the settling as long again as the proposal. What stays
// unknown (the connection to the leader broke after the request left, the
// old leader learnt nothing from the new one in time) is never retried: a
// retried delete would answer 404 for its own success, so the caller gets
// ErrUnknownOutcome and reads the state back.
func (n *Node) Apply(ctx context.Context, cmd fsm.Command) (fsm.Applied, error) {
	if cmd == nil {
		return fsm.Applied{}, fmt.Errorf("%w: nil command", fsm.ErrInvalid)
	}
	if err := cmd.Validate(); err != nil {
		return fsm.Applied{}, err
	}
	b, err := fsm.Encode(cmd)
	if err != nil {
		return fsm.Applied{}, err
	}
	// retryUntil bounds the retries of writes not proposed; ctx, which
	// may run longer, bounds an attempt (a commit and its settling).
	retryUntil, ok := ctx.Deadline()
	if !ok {
		timeout := n.cfg.Timing.ApplyTimeout
		retryUntil = time.Now().Add(timeout)
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*timeout)
		defer cancel()
	}
	wait := retryMinWait
	for attempt := 1; ; attempt++ {
		res, err := n.applyOnce(ctx, cmd, b)
		if err == nil || !notProposed(err) {
			return res, err
		}
		left := time.Until(retryUntil)
		if ctx.Err() != nil || left <= 0 {
			return fsm.Applied{}, fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		t := time.NewTimer(min(wait, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return fsm.Applied{}, fmt.Errorf("%w (gave up after %d attempts: %v)", err, attempt, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, retryMaxWait)
	}
}

// notProposed reports whether err says the write certainly never reached a
// leader's log, so sending it again cannot apply it twice.
func notProposed(err error) bool {
	return errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader)
}

// applyOnce makes one attempt: propose on this peer if it leads, else
// forward to the leader it knows.
func (n *Node) applyOnce(ctx context.Context, cmd fsm.Command, b []byte) (fsm.Applied, error) {
	if n.raft.State() == raft.Leader {
		return n.applyLocal(ctx, cmd)
	}
	addr, id := n.raft.LeaderWithID()
	if addr == "" || id == "" {
		return fsm.Applied{}, fmt.Errorf("%w: this peer (%s) knows no leader; the cluster may have lost quorum", ErrNoLeader, n.cfg.Name)
	}
	res, err := n.forwardApply(ctx, string(id), string(addr), b)
	if err == nil && cmd.Type() != fsm.TypeClaimProducerID {
		// A claim's answer carries the claim that holds, and the data
		// plane caches it: waiting for this peer to apply it would only
		// delay a producer's first batch.
		n.readYourWrite(ctx, res.Index)
	}
	return res, err
}

// readYourWriteWait bounds how long a forwarded write waits for this peer
// to apply it.
const readYourWriteWait = 2 * time.Second

// readYourWrite waits, briefly, until this peer has applied a write it
// forwarded, so a read sent to this peer after the write's answer sees it
// (ctl set, then list, through the same peer). The write is committed
// either way: a peer that is slow to apply answers anyway.
func (n *Node) readYourWrite(ctx context.Context, idx uint64) {
	wctx, cancel := context.WithTimeout(ctx, readYourWriteWait)
	defer cancel()
	if err := n.WaitIndex(wctx, idx); err != nil {
		n.log.Debug("a forwarded write is not applied here yet; answering anyway", "index", idx, "err", err)
	}
}

// forwardApply sends an encoded write to the leader named leader at addr.
// The Raft leader id is the leader's peer name, so with peer TLS the
// serving certificate must name it (CallPeer): the address Raft last heard
// may since serve another member, which must not be handed the write.
func (n *Node) forwardApply(ctx context.Context, leader, addr string, b []byte) (fsm.Applied, error) {
	var resp applyResponse
	if err := n.rpc.CallPeer(ctx, leader, addr, rpcApply, applyRequest{Command: b}, &resp); err != nil {
		if errors.As(err, new(*transport.RPCError)) {
			return fsm.Applied{}, n.leaderRefused(fromRPCError(err))
		}
		if errors.Is(err, transport.ErrIdentity) {
			// Nothing was sent, yet it is not retried: a certificate naming
			// another peer is a stale leader address or a misconfiguration,
			// and neither is likely to heal within one write's timeout.
			return fsm.Applied{}, n.notTheLeader(leader, addr, err)
		}
		if errors.Is(err, transport.ErrConnLost) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			// The request may have left: the leader may apply it.
			return fsm.Applied{}, fmt.Errorf("%w: forwarding to the leader at %s failed after sending: %v; read the state back before retrying", ErrUnknownOutcome, addr, err)
		}
		// No connection to the old leader: the request never left.
		return fsm.Applied{}, fmt.Errorf("%w: cannot reach the leader at %s: %v", ErrNoLeader, addr, err)
	}
	return fsm.Applied{Index: resp.Index, PeerID: resp.PeerID, ProducerID: resp.ProducerID}, nil
}

// leaderRefused adds what to do next to an error the leader answered a
// forwarded request with.
func (n *Node) leaderRefused(err error) error {
	if errors.Is(err, ErrUnauthorized) {
		// The leader serves forwarded requests to Raft members only
		// (peerrpc.go); a peer admitted moments ago is one shortly.
		return fmt.Errorf("%w; this peer (%s) is not (yet) a member of the raft configuration, so the leader does not serve its forwarded requests: retry once it is admitted (GET /v1/peers), or send the request to a member", err, n.cfg.Name)
	}
	return err
}

// notTheLeader is the error for a leader address served by a peer whose
// certificate does not name the leader.
func (n *Node) notTheLeader(leader, addr string, err error) error {
	return fmt.Errorf("forwarding to the leader %s at %s: nothing sent: %w; retry once gossip has the leader's current address, and check that every peer's certificate names its --name", leader, addr, err)
}

// applyLocal proposes cmd on this peer, which must be the leader. It checks
// cmd against the peers' command sets and the latest state first, so a
// refused command costs no log entry; Apply on every peer still has the
// last word.
func (n *Node) applyLocal(ctx context.Context, cmd fsm.Command) (fsm.Applied, error) {
	if err := n.checkCommandSet(cmd); err != nil {
		return fsm.Applied{}, err
	}
	timeout := n.cfg.Timing.ApplyTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, max(0, time.Until(d)))
	}
	if err := n.fsm.State().Check(cmd); err != nil {
		// A new leader's FSM may still be applying entries its predecessor
		// committed, and a stale state would refuse a valid command (a
		// route naming a cluster put a moment ago): a barrier applies
		// everything committed before the refusal stands.
		if berr := n.raft.Barrier(timeout).Error(); berr != nil {
			if errors.Is(berr, raft.ErrNotLeader) || errors.Is(berr, raft.ErrLeadershipLost) || errors.Is(berr, raft.ErrLeadershipTransferInProgress) {
				return fsm.Applied{}, fmt.Errorf("%w: %s stepped down before the write was proposed (%v)", ErrNotLeader, n.cfg.Name, berr)
			}
			return fsm.Applied{}, fmt.Errorf("%w (the leader could not confirm its state is current: %v)", err, berr)
		}
		if err := n.fsm.State().Check(cmd); err != nil {
			return fsm.Applied{}, err
		}
	}
	b, err := fsm.Encode(cmd)
	if err != nil {
		return fsm.Applied{}, err
	}
	id := n.writeIDs.next()
	f := n.raft.ApplyLog(raft.Log{Data: b, Extensions: id}, timeout)
	err = f.Error()
	var res fsm.Applied
	switch {
	case err == nil:
		switch r := f.Response().(type) {
		case error:
			err = r
		case fsm.Applied:
			res = r
		default:
			err = fmt.Errorf("raft apply: unexpected response %T", r)
		}
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// Refused before it was appended: safe to send to the next leader.
		n.metrics.applies.WithLabelValues("error").Inc()
		return fsm.Applied{}, fmt.Errorf("%w: %s stepped down before the write was proposed (%v)", ErrNotLeader, n.cfg.Name, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		// Raft's leader loop did not take it: nothing was appended.
		n.metrics.applies.WithLabelValues("error").Inc()
		return fsm.Applied{}, fmt.Errorf("%w: %s did not take the write into its log within %v (overloaded or stepping down); nothing was proposed", ErrNotLeader, n.cfg.Name, timeout)
	case errors.Is(err, raft.ErrLeadershipLost):
		// Appended, maybe committed: the new leader's log says which.
		res, err = n.settle(ctx, f.Index(), id)
		if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrUnknownOutcome) {
			n.metrics.applies.WithLabelValues("error").Inc()
			return fsm.Applied{}, err
		}
	case errors.Is(err, raft.ErrRaftShutdown):
		n.metrics.applies.WithLabelValues("error").Inc()
		return fsm.Applied{}, fmt.Errorf("%w: %v; read the state back before retrying", ErrUnknownOutcome, err)
	default:
		n.metrics.applies.WithLabelValues("error").Inc()
		return fsm.Applied{}, fmt.Errorf("raft apply: %w", err)
	}
	if err != nil {
		n.metrics.applies.WithLabelValues("rejected").Inc()
		return fsm.Applied{}, err
	}
	n.metrics.applies.WithLabelValues("ok").Inc()
	n.nudgeCommit()
	return res, nil
}

// checkCommandSet refuses a command that some peer's build cannot decode:
// its command set (gossiped; none gossiped means set 1) is older than the
// one the command needs (fsm.Needs: its type's, or its payload version's). The peers counted are those in
// the Raft configuration, whatever their gossip state (a peer down for its
// upgrade still replays the log when it returns), and every live gossip
// member (it may be about to join) but those the leader refused to admit:
// they never receive the log, and a stranger holding the gossip key must
// not be able to freeze new command types by claiming an old set.
func (n *Node) checkCommandSet(cmd fsm.Command) error {
	t := cmd.Type()
	need := n.commandNeeds(cmd)
	if need <= 1 {
		return nil
	}
	if !n.gossipUp.Load() {
		return fmt.Errorf("%w: %s needs command set %d and this peer cannot see the others' sets before gossip starts; retry", ErrUpgradeRequired, t, need)
	}
	var behind []string
	low := n.commandSet()
	if low < need {
		behind = append(behind, fmt.Sprintf("%s (set %d)", n.cfg.Name, low))
	}
	members := n.gossip.snapshot()
	servers, _, err := n.raftServers()
	if err != nil {
		return fmt.Errorf("%w: cannot read the raft configuration to check peer versions: %v", ErrNoLeader, err)
	}
	names := map[string]bool{}
	for name := range servers {
		names[name] = true
	}
	for name, m := range members {
		if alive(m) && !n.admission.refused(name) {
			names[name] = true
		}
	}
	delete(names, n.cfg.Name)
	for _, name := range sortedNames(names) {
		set := uint16(1)
		if m, ok := members[name]; ok && m.meta.Commands > 1 {
			set = m.meta.Commands
		}
		if set < need {
			behind = append(behind, fmt.Sprintf("%s (set %d)", name, set))
			low = min(low, set)
		}
	}
	if len(behind) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s needs command set %d, but %s apply only older sets; upgrade them, then retry",
		ErrUpgradeRequired, t, need, strings.Join(behind, ", "))
}

// commandSet is the command set this peer's build applies.
func (n *Node) commandSet() uint16 {
	if n.cfg.CommandSet != 0 {
		return n.cfg.CommandSet
	}
	return fsm.CommandSetVersion
}

// commandNeeds is the command set cmd needs, from fsm (fsm.Needs: its
// type's, or set 1 for a route command without targets, written in the
// old payload version) unless a test stands in for a newer build
// (Config.CommandIntroduced).
func (n *Node) commandNeeds(cmd fsm.Command) uint16 {
	if v, ok := n.cfg.CommandIntroduced[cmd.Type()]; ok {
		return v
	}
	return fsm.Needs(cmd)
}

// TransferLeadership asks this peer, which must lead, to hand leadership to
// the most up-to-date follower (operators drain a peer with it; tests
// exercise writes across leader changes with it).
func (n *Node) TransferLeadership() error {
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return fmt.Errorf("%w: %s cannot transfer leadership it does not hold", ErrNotLeader, n.cfg.Name)
		}
		return fmt.Errorf("leadership transfer from %s: %w", n.cfg.Name, err)
	}
	return nil
}

// ConsistentState returns the state as of a read confirmed by the leader:
// the leader commits a barrier (proving it still leads and applying every
// earlier entry) and answers its state; a follower asks the leader.
//
// Like a write not proposed, a read that found no leader (none known, the
// leader unreachable or stepping down) is tried again until ctx's
// deadline, or Timing.ApplyTimeout when ctx has none: a read changes
// nothing, so a second try is always safe, and a leader change is routine.
func (n *Node) ConsistentState(ctx context.Context) (*fsm.State, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.Timing.ApplyTimeout)
		defer cancel()
	}
	wait := retryMinWait
	for attempt := 1; ; attempt++ {
		st, err := n.consistentOnce(ctx)
		if err == nil || !notProposed(err) {
			return st, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (gave up after %d attempts: %v)", err, attempt, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, retryMaxWait)
	}
}

// consistentOnce makes one attempt of ConsistentState.
func (n *Node) consistentOnce(ctx context.Context) (*fsm.State, error) {
	if n.raft.State() == raft.Leader {
		return n.leaderState()
	}
	addr, id := n.raft.LeaderWithID()
	if addr == "" || id == "" {
		return nil, fmt.Errorf("%w: this peer (%s) knows no leader; drop ?consistent=1 to read its local state", ErrNoLeader, n.cfg.Name)
	}
	st, err := n.forwardState(ctx, string(id), string(addr))
	if err == nil {
		// As after a forwarded write: a local read on this peer after the
		// answer sees at least this state (ctl's --wait polls through the
		// leader, then reads here).
		n.readYourWrite(ctx, st.Index)
	}
	return st, err
}

// forwardState reads the state through the leader named leader at addr,
// which must prove that name with peer TLS on (see forwardApply).
func (n *Node) forwardState(ctx context.Context, leader, addr string) (*fsm.State, error) {
	var resp stateResponse
	if err := n.rpc.CallPeer(ctx, leader, addr, rpcState, struct{}{}, &resp); err != nil {
		if errors.As(err, new(*transport.RPCError)) {
			return nil, n.leaderRefused(fromRPCError(err))
		}
		if errors.Is(err, transport.ErrIdentity) {
			return nil, n.notTheLeader(leader, addr, err)
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
		return nil, &transport.RPCError{Code: codeUnknownMethod, Message: fmt.Sprintf("unknown peer rpc method %q", method)}
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
	case rpcLeaseGrant:
		return n.lease.handleGrant(ctx)
	case rpcHealthReport:
		return n.health.handleReport(from, req.(healthReportRequest))
	case rpcHealthStatus:
		return n.health.handleStatus()
	case rpcApply:
		res, err := n.applyLocal(ctx, req.(fsm.Command))
		if err != nil {
			return nil, toRPCError(err)
		}
		return marshal(applyResponse{Index: res.Index, PeerID: res.PeerID, ProducerID: res.ProducerID})
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
