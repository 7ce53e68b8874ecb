//go:build linux

package kafka

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// parker holds idle plaintext client connections without a goroutine
// each (park.go says why). One goroutine waits on an epoll set of their
// descriptors, each registered one-shot for readability (a request, or
// the client's close); the first event, the connection's idle limit, or a
// close from elsewhere (closeWith, the server stopping) gives the
// connection a reader goroutine again (clientConn.resume).
type parker struct {
	epfd int
	// stop is a pipe whose read end is in the set under token 0: close
	// writes to it to end the wait at once.
	stop [2]int
	mu   sync.Mutex
	// parked: by token (the epoll event's data), the connection and when
	// its idle limit falls (zero: none).
	parked map[uint64]parkedConn
	tokens map[*clientConn]uint64
	next   uint64
	closed bool
	done   chan struct{}
	// resume starts a woken connection's reader (clientConn.resume; a
	// field, so that closeWith does not refer to the reader statically).
	resume func(*clientConn)
}

type parkedConn struct {
	c     *clientConn
	until time.Time
	// upsClosed: its idle backend connections were closed
	// (clientConn.closeIdleUpstreams).
	upsClosed bool
}

func newParker(resume func(*clientConn)) (*parker, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &parker{epfd: epfd, parked: map[uint64]parkedConn{}, tokens: map[*clientConn]uint64{}, done: make(chan struct{}), resume: resume}
	if err := syscall.Pipe2(p.stop[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.stop[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(p.stop[0])
		syscall.Close(p.stop[1])
		return nil, err
	}
	go p.loop()
	return p, nil
}

// park registers c, whose reader goroutine is ending, and reports whether
// it is parked; false (a TLS or non-TCP connection, a registration error,
// the parker closed) leaves c to its reader. until is when c's idle limit
// falls (zero: never).
func (p *parker) park(c *clientConn, until time.Time) bool {
	tc, ok := c.nc.(*net.TCPConn)
	if !ok {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.next++
	tok := p.next
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(uint32(tok)), Pad: int32(uint32(tok >> 32))}
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cerr = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	}); err != nil || cerr != nil {
		return false
	}
	p.parked[tok] = parkedConn{c: c, until: until}
	p.tokens[c] = tok
	c.s.metrics.parked.Inc()
	select {
	case <-c.closing:
		// closeWith ran before it was in the set (its unpark found
		// nothing) and may close the socket, which leaves the set
		// without an event: wake it now.
		p.wakeLocked(tok)
	default:
	}
	return true
}

// unpark gives c its reader back if it is parked (closeWith calls it
// before closing c's socket).
func (p *parker) unpark(c *clientConn) {
	p.mu.Lock()
	tok, ok := p.tokens[c]
	if ok {
		p.wakeLocked(tok)
	}
	p.mu.Unlock()
}

// wakeLocked takes tok out of the set and starts its connection's reader.
func (p *parker) wakeLocked(tok uint64) {
	pc, ok := p.parked[tok]
	if !ok {
		return
	}
	delete(p.parked, tok)
	delete(p.tokens, pc.c)
	if tc, ok := pc.c.nc.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			// Already closed: the kernel dropped it from the set itself.
			rc.Control(func(fd uintptr) { syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil) })
		}
	}
	pc.c.s.metrics.parked.Dec()
	go p.resume(pc.c)
}

// parkSweep is how often the parker looks for connections past their idle
// limit; such a connection is closed at most this late.
const parkSweep = time.Second

func (p *parker) loop() {
	defer func() {
		syscall.Close(p.epfd)
		syscall.Close(p.stop[0])
		syscall.Close(p.stop[1])
		close(p.done)
	}()
	events := make([]syscall.EpollEvent, 128)
	lastSweep := time.Now()
	for {
		n, err := syscall.EpollWait(p.epfd, events, int(parkSweep/time.Millisecond))
		if err != nil && !errors.Is(err, syscall.EINTR) {
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		for _, ev := range events[:max(n, 0)] {
			if tok := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32; tok != 0 {
				p.wakeLocked(tok)
			}
		}
		if now := time.Now(); now.Sub(lastSweep) >= parkSweep {
			lastSweep = now
			for tok, pc := range p.parked {
				switch {
				case !pc.until.IsZero() && now.After(pc.until):
					p.wakeLocked(tok) // its reader closes it as idle
				case !pc.upsClosed && pc.c.upstreamsIdle(now):
					// Parked, so no goroutine of its own touches c.ups;
					// the reader that resumes it starts after p.mu.
					pc.c.closeIdleUpstreams()
					pc.upsClosed = true
					p.parked[tok] = pc
				}
			}
		}
		p.mu.Unlock()
	}
}

// close wakes every parked connection (their readers find them closed, or
// go on) and stops the parker.
func (p *parker) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	for tok := range p.parked {
		p.wakeLocked(tok)
	}
	p.closed = true
	p.mu.Unlock()
	syscall.Write(p.stop[1], []byte{0})
	<-p.done
}
