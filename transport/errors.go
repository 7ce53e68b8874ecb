package transport

import (
	"errors"
	"fmt"
)

// Errors callers test with errors.Is. Every error this package returns for
// one of these conditions wraps the matching sentinel.
var (
	// ErrClosed: the Mux, its Raft layer or its Client is closed.
	ErrClosed = errors.New("transport closed")
	// ErrHandshake: a peer-port connection did not open with a valid
	// handshake (magic/version byte, connection type, peer name).
	ErrHandshake = errors.New("bad peer handshake")
	// ErrFrameTooLarge: an RPC frame larger than the configured maximum,
	// sent or received.
	ErrFrameTooLarge = errors.New("rpc frame too large")
	// ErrMalformedFrame: an RPC frame whose header does not parse.
	ErrMalformedFrame = errors.New("malformed rpc frame")
	// ErrConnLost: the connection carrying a call broke before its
	// response arrived. The call may or may not have run on the peer;
	// it is not retried.
	ErrConnLost = errors.New("peer connection lost")
	// ErrPartitioned: Faults cut the link between the two peers.
	ErrPartitioned = errors.New("peers partitioned by fault injection")
	// ErrIdentity: with TLS on, a peer's certificate does not name the peer
	// it claims to be (the acceptor's check of the handshake name) or the
	// peer the caller meant to reach (Client.CallPeer).
	ErrIdentity = errors.New("peer certificate does not name the peer")
	// ErrInvalidConfig: a Config or GossipConfig that cannot work.
	ErrInvalidConfig = errors.New("invalid transport config")
	// ErrGossipKey: a gossip encryption key or key file that cannot be
	// used (not base64, wrong length, no key at all).
	ErrGossipKey = errors.New("bad gossip key")
)

// Error codes the transport itself sends. Every other code is chosen by
// the RPC handler (node maps its own sentinel errors to codes).
const (
	// CodeInternal is sent for a handler error that is not an *RPCError
	// and for a handler that panicked.
	CodeInternal = "internal"
	// CodeUnavailable is sent when a request arrives before HandleRPC
	// registered a handler.
	CodeUnavailable = "unavailable"
	// CodeTooLarge is sent when a handler's response would exceed the
	// server's maximum frame size.
	CodeTooLarge = "too_large"
	// CodeUnauthorized is the code handlers send to a caller they do not
	// serve (node: a sender outside the Raft configuration).
	CodeUnauthorized = "unauthorized"
)

// RPCError is an error that travels over peer RPC: a machine-readable Code
// and a human-readable Message. A handler that returns an *RPCError (or an
// error wrapping one) sends its Code and Message; the caller's Call returns
// an *RPCError with the same fields.
type RPCError struct {
	Code    string
	Message string
}

func (e *RPCError) Error() string {
	if e.Message == "" {
		return "rpc error " + e.Code
	}
	return fmt.Sprintf("rpc error %s: %s", e.Code, e.Message)
}

// Is reports whether target is an *RPCError with the same Code, so that
// errors.Is(err, &RPCError{Code: "not_leader"}) works whatever the message.
func (e *RPCError) Is(target error) bool {
	t, ok := target.(*RPCError)
	return ok && t.Code == e.Code
}
