//go:build linux

package kafka

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawConn reads and writes a TCP connection with raw read(2)/write(2) on
// its non-blocking socket, through syscall.RawConn, so the runtime's
// netpoller still parks a goroutine until the socket is ready.
//
// Why: a read or write through net.Conn enters the runtime's syscall
// state, and the first such call after the process went idle wakes sysmon,
// which then polls every 20 µs until every P is idle again (golang/go#18236).
// A proxy at a few thousand small requests per second goes idle and wakes
// twice per request, and that polling cost as much CPU as the forwarding.
// Calls on a non-blocking socket return at once, which is what RawSyscall
// asks of its callers; the goroutine keeps its P for those microseconds.
//
// Only calls of up to rawMax bytes go raw: a larger one may copy for long
// enough that the goroutine should give up its P, and it is a bulk transfer
// whose sysmon cost does not matter, so it takes the ordinary path (the same
// poll.FD, so the two mix safely).
//
// One goroutine reads and one writes at a time (a bufio.Reader and a
// bufio.Writer own each side), so the per-direction state needs no lock.
type rawConn struct {
	net.Conn
	rc syscall.RawConn

	rp     []byte
	rn     int
	rerr   syscall.Errno
	readFn func(fd uintptr) bool

	// fresh is readFresh's buffer, taken only once the socket has data.
	fresh   *buffer
	freshFn func(fd uintptr) bool

	wp      []byte
	wn      int
	werr    syscall.Errno
	writeFn func(fd uintptr) bool

	// lowat is the socket's SO_RCVLOWAT as last set (1, the default, or
	// a large frame's missing bytes); lowatOff says setting it failed once
	// and is not tried again.
	lowat    int
	lowatOff bool
}

// rawMax is the largest read or write done with a raw syscall: the size of
// the connections' bufio buffers, so every buffered call qualifies.
const rawMax = 64 << 10

// rawIO returns nc with raw-syscall reads and writes when nc is a TCP
// connection, else nc itself.
func rawIO(nc net.Conn) io.ReadWriter {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	c := &rawConn{Conn: nc, rc: rc, lowat: 1}
	c.readFn = c.doRead
	c.freshFn = c.doReadFresh
	c.writeFn = c.doWrite
	return c
}

func (c *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > rawMax {
		return c.Conn.Read(p)
	}
	c.rp, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.readFn)
	c.rp = nil
	switch {
	case err != nil:
		return 0, err
	case c.rerr != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: c.rerr}
	case c.rn == 0:
		return 0, io.EOF
	}
	return c.rn, nil
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

func (c *rawConn) doRead(fd uintptr) bool {
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

// readFresh waits until the socket has data, then reads it into a pooled
// buffer of connBufSize bytes: the buffer is taken only for the read that
// finds data and given back when the socket has none, so a connection
// parked here holds no buffer (connReader).
func (c *rawConn) readFresh() (*buffer, int, error) {
	c.rn, c.rerr = 0, 0
	err := c.rc.Read(c.freshFn)
	buf := c.fresh
	c.fresh = nil
	switch {
	case err != nil:
		putBuffer(buf)
		return nil, 0, err
	case c.rerr != 0:
		putBuffer(buf)
		return nil, 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: c.rerr}
	case c.rn == 0:
		putBuffer(buf)
		return nil, 0, io.EOF
	}
	return buf, c.rn, nil
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
			c.rn = int(n)
		default:
			c.rerr = e
		}
		c.fresh = buf
		return true
	}
}

func (c *rawConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > rawMax {
		return c.Conn.Write(p)
	}
	c.wp, c.wn, c.werr = p, 0, 0
	err := c.rc.Write(c.writeFn)
	n := c.wn
	c.wp = nil
	switch {
	case err != nil:
		return n, err
	case c.werr != 0:
		return n, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: c.werr}
	}
	return n, nil
}

func (c *rawConn) doWrite(fd uintptr) bool {
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
