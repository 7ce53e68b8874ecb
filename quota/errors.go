package quota

import "errors"

// Errors callers test with errors.Is. Every error this package returns wraps
// one of them. None is serious on its own: the node logs them at debug level
// and carries on, because a lost or stale quota message only delays a share
// change and never breaks the invariant that shares in use sum to at most
// the quota plus its headroom credit.
var (
	// ErrInvalid: a configuration value or a wire message field out of range
	// (a negative or non-finite rate, an empty topic, an unknown direction).
	ErrInvalid = errors.New("invalid")
	// ErrStale: a report or grant older than one already taken (message
	// reordering, a deposed leader, a restarted peer's old incarnation).
	ErrStale = errors.New("stale")
	// ErrWrongBoot: a grant addressed to another incarnation of this peer.
	ErrWrongBoot = errors.New("grant for another incarnation of this peer")
	// ErrUnknownReport: a grant that answers a report this limiter has no
	// record of sending (too old, or from before a restart).
	ErrUnknownReport = errors.New("grant answers an unknown report")
	// ErrExpired: a grant whose lease had already run out when it arrived.
	ErrExpired = errors.New("grant lease already expired")
)
