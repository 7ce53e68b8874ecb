//go:build !linux

package kafka

import "net"

// idleWaiter is Linux-only; elsewhere a backend connection keeps its read
// buffer while idle.
type idleWaiter struct{}

func newIdleWaiter(net.Conn) *idleWaiter { return nil }

func (*idleWaiter) wait() error { return nil }
