package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/hashicorp/raft"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/quota"
	"github.com/switchyard-proxy/switchyard/transport"
)

// Who may call which peer RPC. The peer port carries full control of the
// cluster (a forwarded write is applied by the leader without the admin
// token), so every method is served only to a sender in the current Raft
// configuration, by its server id, which is its peer name. With TLS on, the
// transport has proven that name against the sender's certificate; without
// TLS it is only claimed, which is why serve refuses a non-loopback peer
// port without TLS unless --insecure is given.

// ErrUnauthorized: a peer RPC from a sender this peer does not serve: not in
// the Raft configuration, speaking for another peer, or (quota grants) not
// the leader. It crosses the peer RPC stream as transport.CodeUnauthorized.
var ErrUnauthorized = errors.New("peer rpc sender not authorized")

// unauthorized builds the coded error for a refused sender and logs it at
// level: a warning for a sender outside the configuration or speaking for
// another peer (misconfigured or hostile), debug for the race of a leader
// change (grants from a leader this peer has not heard of yet).
func (n *Node) unauthorized(level slog.Level, from, method, why string) error {
	err := fmt.Errorf("%w: %s refuses %s from %q: %s", ErrUnauthorized, n.cfg.Name, method, from, why)
	n.log.Log(context.Background(), level, "refusing peer rpc", "from", from, "method", method, "why", why)
	return &transport.RPCError{Code: transport.CodeUnauthorized, Message: err.Error()}
}

// authorizeRPC reports nil when from is a server in this peer's latest Raft
// configuration (voter or not).
func (n *Node) authorizeRPC(from, method string) error {
	servers, _, err := n.raftServers()
	if err != nil {
		return n.unauthorized(slog.LevelWarn, from, method, fmt.Sprintf("cannot read the raft configuration: %v", err))
	}
	if _, ok := servers[from]; !ok {
		return n.unauthorized(slog.LevelWarn, from, method, "not a server in the raft configuration")
	}
	return nil
}

// authorizeLeader reports nil when from is the Raft leader this peer
// follows: only the leader allocates quota shares.
func (n *Node) authorizeLeader(from, method string) error {
	_, id := n.raft.LeaderWithID()
	if id == "" || id != raft.ServerID(from) {
		// Renewed at this peer's next report, answered by whoever leads.
		return n.unauthorized(slog.LevelDebug, from, method, fmt.Sprintf("not the raft leader (this peer follows %q)", id))
	}
	return nil
}

// knownRPC reports whether method is a peer RPC this peer serves.
func knownRPC(method string) bool {
	switch method {
	case rpcApply, rpcState, rpcQuotaReport, rpcQuotaGrants, rpcQuotaStatus, rpcMigrationFenced, rpcGroupHeld, rpcLeaseGrant,
		rpcHealthReport, rpcHealthStatus, rpcResumeCommits:
		return true
	}
	return false
}

// decodeRPC decodes the request body of a known method: the one parser of
// peer RPC bodies (FuzzPeerRPCBodies). It returns an fsm.Command, decoded
// and validated, for apply; a quotaReportRequest, quota.Grants or
// quotaStatusRequest for the quota methods; a leaseGrantRequest for the
// write lease; nil for state, whose body
// carries nothing and is not read. Unknown fields and trailing data are
// errors; every error wraps an fsm decoding sentinel, so it crosses the
// wire as bad_payload.
func decodeRPC(method string, body []byte) (any, error) {
	switch method {
	case rpcApply:
		var req applyRequest
		if err := unmarshalStrict(body, &req); err != nil {
			return nil, fmt.Errorf("%w: forwarded apply: %v", fsm.ErrBadPayload, err)
		}
		cmd, err := fsm.Decode(req.Command)
		if err != nil {
			return nil, err
		}
		if err := cmd.Validate(); err != nil {
			return nil, err
		}
		return cmd, nil
	case rpcState:
		return nil, nil
	case rpcQuotaReport:
		var req quotaReportRequest
		if err := unmarshalStrict(body, &req); err != nil {
			return nil, fmt.Errorf("%w: quota report: %v", fsm.ErrBadPayload, err)
		}
		return req, nil
	case rpcQuotaGrants:
		var g quota.Grants
		if err := unmarshalStrict(body, &g); err != nil {
			return nil, fmt.Errorf("%w: quota grants: %v", fsm.ErrBadPayload, err)
		}
		return g, nil
	case rpcQuotaStatus:
		var req quotaStatusRequest
		if err := unmarshalStrict(body, &req); err != nil {
			return nil, fmt.Errorf("%w: quota status: %v", fsm.ErrBadPayload, err)
		}
		return req, nil
	case rpcHealthReport:
		var req healthReportRequest
		if err := unmarshalStrict(body, &req); err != nil {
			return nil, fmt.Errorf("%w: health report: %v", fsm.ErrBadPayload, err)
		}
		if err := validHealthReport(req); err != nil {
			return nil, err
		}
		return req, nil
	case rpcHealthStatus:
		return nil, nil
	case rpcResumeCommits:
		var req resumeCommitsRequest
		if err := unmarshalStrict(body, &req); err != nil {
			return nil, fmt.Errorf("%w: resume commits: %v", fsm.ErrBadPayload, err)
		}
		if req.Cluster == "" || len(req.Cluster) > 255 {
			return nil, fmt.Errorf("%w: resume commits: cluster name of %d bytes", fsm.ErrBadPayload, len(req.Cluster))
		}
		return req, nil
	case rpcLeaseGrant:
		var req leaseGrantRequest
		if err := unmarshalStrict(body, &req); err != nil {
			return nil, fmt.Errorf("%w: lease grant: %v", fsm.ErrBadPayload, err)
		}
		return req, nil
	case rpcMigrationFenced:
		var req migrationFencedRequest
		if err := unmarshalStrict(body, &req); err != nil {
			return nil, fmt.Errorf("%w: migration fenced: %v", fsm.ErrBadPayload, err)
		}
		if req.Topic == "" || len(req.Topic) > 249 {
			return nil, fmt.Errorf("%w: migration fenced: topic name of %d bytes", fsm.ErrBadPayload, len(req.Topic))
		}
		return req, nil
	case rpcGroupHeld:
		var req groupHeldRequest
		if err := unmarshalStrict(body, &req); err != nil {
			return nil, fmt.Errorf("%w: group held: %v", fsm.ErrBadPayload, err)
		}
		if req.Group == "" || len(req.Group) > 1024 {
			return nil, fmt.Errorf("%w: group held: group id of %d bytes", fsm.ErrBadPayload, len(req.Group))
		}
		return req, nil
	}
	return nil, fmt.Errorf("%w: unknown peer rpc method %q", fsm.ErrBadPayload, method)
}

// servePeerRPC is the peer port's handler: the migration driver's fence
// question (any peer answers it for itself, to any server in the Raft
// configuration), everything else handleRPC.
func (n *Node) servePeerRPC(ctx context.Context, from, method string, body []byte) ([]byte, error) {
	if method != rpcMigrationFenced && method != rpcGroupHeld && method != rpcResumeCommits {
		return n.handleRPC(ctx, from, method, body)
	}
	if err := n.authorizeRPC(from, method); err != nil {
		return nil, err
	}
	req, err := decodeRPC(method, body)
	if err != nil {
		return nil, toRPCError(err)
	}
	if method == rpcGroupHeld {
		return n.handleGroupHeld(req.(groupHeldRequest))
	}
	if method == rpcResumeCommits {
		return n.handleResumeCommits(req.(resumeCommitsRequest))
	}
	return n.handleMigrationFenced(req.(migrationFencedRequest))
}
