package node

import "errors"

// Errors of the peer's control plane (more live in apply.go's block).
var (
	// ErrUnproven: a gossip member's claimed name is not proven by a peer
	// certificate or an allow-list, so the leader does not admit it.
	ErrUnproven = errors.New("peer identity not proven")
)
