package node

import (
	"errors"
	"fmt"
	"testing"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// TestNotProposed: only errors that prove a write never reached a leader's
// log are retried; an unknown outcome or a refusal is returned as is, even
// after crossing the peer RPC stream.
func TestNotProposed(t *testing.T) {
	for _, c := range []struct {
		err   error
		retry bool
	}{
		{fmt.Errorf("%w: peer-1 knows no leader", ErrNoLeader), true},
		{fmt.Errorf("%w: peer-0 stepped down before the write was proposed", ErrNotLeader), true},
		{fromRPCError(toRPCError(fmt.Errorf("%w: forwarded apply", ErrNotLeader))), true},
		{fromRPCError(toRPCError(fmt.Errorf("%w: old leader", ErrNoLeader))), true},
		{fromRPCError(toRPCError(fmt.Errorf("%w: leadership lost", ErrUnknownOutcome))), false},
		{fmt.Errorf("%w: connection lost after sending", ErrUnknownOutcome), false},
		{fromRPCError(toRPCError(fmt.Errorf("%w: PutQuota needs set 2", ErrUpgradeRequired))), false},
		{fmt.Errorf("%w: route", fsm.ErrNotFound), false},
		{errors.New("raft apply: something else"), false},
	} {
		if got := notProposed(c.err); got != c.retry {
			t.Errorf("notProposed(%v) = %v, want %v", c.err, got, c.retry)
		}
	}
}
