//go:build linux

package rawio

import (
	"io"
	"net"
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a TCP connection whose reads and writes of up to Max bytes are
// raw system calls. It is safe for concurrent use as net.Conn is: each
// direction's call state is held under that direction's lock, uncontended
// in the usual case of one reader and one writer. Deadlines apply as on the
// connection itself: RawConn's Read and Write wait on the same poller.
type Conn struct {
	net.Conn
	rc syscall.RawConn

	// clip: a read into more than Max bytes reads at most Max raw, rather
	// than taking the ordinary path (Clipped).
	clip bool

	rmu    sync.Mutex
	rp     []byte
	rn     int
	rerr   syscall.Errno
	readFn func(fd uintptr) bool

	wmu     sync.Mutex
	wp      []byte
	wn      int
	werr    syscall.Errno
	writeFn func(fd uintptr) bool
}

// New returns tc with raw reads and writes, or false when its descriptor
// cannot be had.
func New(tc *net.TCPConn) (*Conn, bool) {
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, false
	}
	c := &Conn{Conn: tc, rc: rc}
	c.readFn = c.doRead
	c.writeFn = c.doWrite
	return c, true
}

// Clipped returns nc with raw reads and writes when it is a TCP connection,
// else nc itself (a TLS connection, say: wrap the TCP connection under it).
// A read into more than Max bytes reads at most Max, raw: a short read,
// which every io.Reader caller accepts. It suits a connection read through
// a large buffer that seldom fills (hashicorp/raft reads through 256 KiB),
// where New's ordinary path for large reads would wake sysmon on every
// message.
func Clipped(nc net.Conn) net.Conn {
	if tc, ok := nc.(*net.TCPConn); ok {
		if c, ok := New(tc); ok {
			c.clip = true
			return c
		}
	}
	return nc
}

// RawConn is the connection's descriptor access, for callers that add
// their own raw calls (they must keep to one reader and one writer too).
func (c *Conn) RawConn() syscall.RawConn { return c.rc }

func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > Max {
		if !c.clip {
			return c.Conn.Read(p)
		}
		p = p[:Max]
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rp, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.readFn)
	c.rp = nil
	switch {
	case err != nil:
		return 0, err
	case c.rerr != 0:
		return 0, c.OpError("read", c.rerr)
	case c.rn == 0:
		return 0, io.EOF
	}
	return c.rn, nil
}

// OpError describes a failed raw call as net.Conn would.
func (c *Conn) OpError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errno}
}

func (c *Conn) doRead(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rp[0])), uintptr(len(c.rp)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait for the netpoller
		case 0:
			c.rn = int(n)
		default:
			c.rerr = e
		}
		return true
	}
}

func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > Max {
		return c.Conn.Write(p)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wp, c.wn, c.werr = p, 0, 0
	err := c.rc.Write(c.writeFn)
	n := c.wn
	c.wp = nil
	switch {
	case err != nil:
		return n, err
	case c.werr != 0:
		return n, c.OpError("write", c.werr)
	}
	return n, nil
}

func (c *Conn) doWrite(fd uintptr) bool {
	for c.wn < len(c.wp) {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&c.wp[c.wn])), uintptr(len(c.wp)-c.wn))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // socket buffer full: wait for the netpoller
		case 0:
			c.wn += int(n)
		default:
			c.werr = e
			return true
		}
	}
	return true
}
