package node

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

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

// unauthorized builds the coded error for a refused sender and logs it:
// a refusal means a misconfigured or hostile peer, worth a warning.
func (n *Node) unauthorized(from, method, why string) error {
	err := fmt.Errorf("%w: %s refuses %s from %q: %s", ErrUnauthorized, n.cfg.Name, method, from, why)
	n.log.Warn("refusing peer rpc", "from", from, "method", method, "why", why)
	return &transport.RPCError{Code: transport.CodeUnauthorized, Message: err.Error()}
}

// authorizeRPC reports nil when from is a server in this peer's latest Raft
// configuration (voter or not).
func (n *Node) authorizeRPC(from, method string) error {
	servers, _, err := n.raftServers()
	if err != nil {
		return n.unauthorized(from, method, fmt.Sprintf("cannot read the raft configuration: %v", err))
	}
	if _, ok := servers[from]; !ok {
		return n.unauthorized(from, method, "not a server in the raft configuration")
	}
	return nil
}

// authorizeLeader reports nil when from is the Raft leader this peer
// follows: only the leader allocates quota shares.
func (n *Node) authorizeLeader(from, method string) error {
	_, id := n.raft.LeaderWithID()
	if id == "" || id != raft.ServerID(from) {
		return n.unauthorized(from, method, fmt.Sprintf("not the raft leader (this peer follows %q)", id))
	}
	return nil
}
