//go:build linux

package kafka

import (
	"net"
	"syscall"
	"unsafe"
)

// idleWaiter parks a goroutine until a TCP connection has bytes to read
// (or has been closed by its peer) without reading them, so an idle
// backend connection needs no read buffer while it waits (upstream.go).
type idleWaiter struct {
	rc   syscall.RawConn
	fn   func(fd uintptr) bool // built once: a closure per wait allocates
	peek [1]byte
}

func newIdleWaiter(nc net.Conn) *idleWaiter {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &idleWaiter{rc: rc}
	w.fn = func(fd uintptr) bool {
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&w.peek[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		// Bytes, end of stream or an error: the read that follows reports
		// which. Only "nothing yet" parks.
		return e != syscall.EAGAIN
	}
	return w
}

// wait returns once the connection is readable, or with the error that
// closing it (or its deadline) gives.
func (w *idleWaiter) wait() error { return w.rc.Read(w.fn) }
