//go:build linux

package kafka

import (
	"io"
	"net"
	"syscall"
	"unsafe"

	"github.com/switchyard-proxy/switchyard/internal/rawio"
)

// rawConn is a client or broker connection with raw-syscall reads and
// writes (internal/rawio: the first syscall after the process went idle no
// longer wakes sysmon), plus what the proxy's reader adds: readFresh, which
// takes a pooled buffer only once the socket has data, and the read
// low-water mark for large frames.
//
// One goroutine reads and one writes at a time (a bufio.Reader and a
// bufio.Writer own each side).
type rawConn struct {
	*rawio.Conn
	rc syscall.RawConn

	// fresh is readFresh's buffer, taken only once the socket has data.
	fresh   *buffer
	frn     int
	frerr   syscall.Errno
	freshFn func(fd uintptr) bool

	// lowat is the socket's SO_RCVLOWAT as last set (1, the default, or
	// a large frame's missing bytes); lowatOff says setting it failed once
	// and is not tried again.
	lowat    int
	lowatOff bool
}

// rawMax is the largest read or write done with a raw syscall: the size of
// the connections' bufio buffers, so every buffered call qualifies.
const rawMax = rawio.Max

// rawIO returns nc with raw-syscall reads and writes when nc is a TCP
// connection, else nc itself.
func rawIO(nc net.Conn) io.ReadWriter {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	rw, ok := rawio.New(tc)
	if !ok {
		return nc
	}
	c := &rawConn{Conn: rw, rc: rw.RawConn(), lowat: 1}
	c.freshFn = c.doReadFresh
	return c
}

// setReadLowWater makes the socket wake its reader only once n bytes are
// queued (SO_RCVLOWAT; n ≤ 1 restores the default of any byte). A large
// frame's body then arrives in one or two reads instead of one per TCP
// segment train: each read that finds the socket empty parks the goroutine
// and later wakes it, and on a busy or virtualised host those wake-ups,
// not the copying, were most of the proxy's CPU per forwarded byte.
//
// The caller never asks for more than the bytes its peer is committed to
// send (the rest of a frame whose size it announced), so the wait always
// ends. The kernel wakes the reader early when the receive buffer fills,
// and grows the buffer to fit n unless an SO_RCVBUF pinned it. Should the
// call fail, the socket is put back to the default and never set again.
func (c *rawConn) setReadLowWater(n int) {
	n = max(n, 1)
	if n == c.lowat || (c.lowatOff && n > 1) {
		return
	}
	var serr error
	err := c.rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, n)
	})
	if err == nil && serr == nil {
		c.lowat = n
		return
	}
	if n > 1 && !c.lowatOff {
		c.lowatOff = true
		c.setReadLowWater(1)
	}
}

// readFresh waits until the socket has data, then reads it into a pooled
// buffer of connBufSize bytes: the buffer is taken only for the read that
// finds data and given back when the socket has none, so a connection
// parked here holds no buffer (connReader).
func (c *rawConn) readFresh() (*buffer, int, error) {
	c.frn, c.frerr = 0, 0
	err := c.rc.Read(c.freshFn)
	buf := c.fresh
	c.fresh = nil
	switch {
	case err != nil:
		putBuffer(buf)
		return nil, 0, err
	case c.frerr != 0:
		putBuffer(buf)
		return nil, 0, c.OpError("read", c.frerr)
	case c.frn == 0:
		putBuffer(buf)
		return nil, 0, io.EOF
	}
	return buf, c.frn, nil
}

func (c *rawConn) doReadFresh(fd uintptr) bool {
	buf := getBuffer(connBufSize)
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&buf.b[0])), uintptr(len(buf.b)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			putBuffer(buf)
			return false // wait for the netpoller, holding no buffer
		case 0:
			c.frn = int(n)
		default:
			c.frerr = e
		}
		c.fresh = buf
		return true
	}
}
