package kafka

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// request is one client request, valid until its handler returns.
type request struct {
	requestHeader
	buf  *buffer // the whole frame, size prefix included
	body []byte  // the body, after the header
}

// pending is a response slot in a connection's response order.
type pending struct {
	done  chan struct{}
	out   *buffer // the response frame, size prefix included
	err   error
	key   int16
	start time.Time
}

func (p *pending) finish(out *buffer, err error) {
	p.out, p.err = out, err
	close(p.done)
}

// clientConn is one client connection. Its reader goroutine parses requests
// and sends them upstream in arrival order; a writer goroutine returns the
// responses in the same order. Each client connection has its own backend
// connections, so a slow or failing backend stalls or closes only it.
type clientConn struct {
	s   *Server
	nc  net.Conn
	br  *bufio.Reader
	bw  *bufio.Writer
	log *slog.Logger

	queue chan *pending

	// ups is owned by the reader goroutine.
	ups   map[int32]*upstream
	dirty []*upstream

	closeOnce sync.Once
	closing   chan struct{}
	reason    error
}

func newClientConn(s *Server, nc net.Conn) *clientConn {
	return &clientConn{
		s:       s,
		nc:      nc,
		br:      bufio.NewReaderSize(nc, 64<<10),
		bw:      bufio.NewWriterSize(nc, 64<<10),
		log:     s.log.With("client", nc.RemoteAddr().String()),
		queue:   make(chan *pending, s.cfg.MaxInFlight),
		ups:     map[int32]*upstream{},
		closing: make(chan struct{}),
	}
}

// closeWith closes the connection and its upstreams once, logging why.
func (c *clientConn) closeWith(err error) {
	c.closeOnce.Do(func() {
		c.reason = err
		close(c.closing)
		c.nc.Close()
		switch {
		case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, ErrClosed):
			c.log.Debug("connection closed", "reason", err)
			c.s.metrics.closed("normal")
		case errors.Is(err, ErrMalformed), errors.Is(err, ErrFrameTooLarge), errors.Is(err, ErrUnknownKey),
			errors.Is(err, ErrUnsupportedVersion), errors.Is(err, ErrUnroutable):
			c.log.Info("closing client connection: bad request", "reason", err)
			c.s.metrics.closed("bad_request")
		case errors.Is(err, ErrBackendMismatch):
			c.log.Warn("closing client connection: backend answered out of order", "reason", err)
			c.s.metrics.closed("backend_mismatch")
		default:
			c.log.Info("closing client connection", "reason", err)
			c.s.metrics.closed("error")
		}
	})
}

func (c *clientConn) serve() {
	c.s.metrics.connections.Inc()
	defer c.s.metrics.connections.Dec()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.writeLoop()
	}()
	err := c.readLoop()
	c.closeWith(err)
	for _, u := range c.ups {
		u.nc.Close()
	}
	wg.Wait()
	// Drain: release buffers of responses that will never be written.
	for {
		select {
		case p := <-c.queue:
			select {
			case <-p.done:
				putBuffer(p.out)
			default:
			}
		default:
			return
		}
	}
}

func (c *clientConn) readLoop() error {
	for {
		if !c.frameBuffered() {
			if err := c.flushUpstreams(); err != nil {
				return err
			}
		}
		buf, err := readFrame(c.br, c.s.cfg.MaxFrameBytes)
		if err != nil {
			return err
		}
		start := time.Now()
		h, err := parseRequestHeader(buf.b[4:])
		if err != nil {
			putBuffer(buf)
			return err
		}
		r := &request{requestHeader: h, buf: buf, body: buf.b[4+h.bodyOff:]}
		c.s.metrics.request(h.key, len(buf.b))
		handler := c.s.handlers[h.key]
		if handler == nil {
			putBuffer(buf)
			return fmt.Errorf("%w: %s (key %d)", ErrUnroutable, kmsg.NameForKey(h.key), h.key)
		}
		err = handler(c, r, start)
		putBuffer(buf)
		if err != nil {
			return err
		}
	}
}

// frameBuffered reports whether a whole next frame is already buffered, so
// reading it cannot block and upstream flushes can wait to be batched.
func (c *clientConn) frameBuffered() bool {
	n := c.br.Buffered()
	if n < 4 {
		return false
	}
	hdr, _ := c.br.Peek(4)
	return n >= 4+int(binary.BigEndian.Uint32(hdr))
}

func (c *clientConn) writeLoop() {
	for {
		var p *pending
		select {
		case p = <-c.queue:
		case <-c.closing:
			return
		}
		select {
		case <-p.done:
		case <-c.closing:
			return
		}
		if p.err != nil {
			c.closeWith(p.err)
			return
		}
		n := len(p.out.b)
		_, err := c.bw.Write(p.out.b)
		putBuffer(p.out)
		p.out = nil
		if err == nil && len(c.queue) == 0 {
			err = c.bw.Flush()
		}
		if err != nil {
			c.closeWith(err)
			return
		}
		c.s.metrics.response(p.key, n, time.Since(p.start))
	}
}

// newPending reserves the next response slot.
func (c *clientConn) newPending(r *request, start time.Time) (*pending, error) {
	p := &pending{done: make(chan struct{}), key: r.key, start: start}
	select {
	case c.queue <- p:
		return p, nil
	default:
	}
	// Full: make sure what we sent is on the wire before waiting for room.
	if err := c.flushUpstreams(); err != nil {
		return nil, err
	}
	select {
	case c.queue <- p:
		return p, nil
	case <-c.closing:
		return nil, ErrClosed
	}
}

// respond answers r locally.
func (c *clientConn) respond(r *request, start time.Time, resp kmsg.Response) error {
	p, err := c.newPending(r, start)
	if err != nil {
		return err
	}
	p.finish(encodeResponse(resp, r.corr), nil)
	return nil
}

// upstream is one backend broker connection owned by a client connection.
type upstream struct {
	c        *clientConn
	broker   int32
	nc       net.Conn
	bw       *bufio.Writer
	inflight chan upCall
	dirty    bool
}

// upCall is a request sent upstream that awaits its response.
type upCall struct {
	corr int32
	// cb receives the response frame (size prefix included), which it owns,
	// or an error.
	cb func(resp *buffer, err error)
}

// upstream returns the connection to broker, dialing it if needed.
func (c *clientConn) upstream(broker int32) (*upstream, error) {
	if u, ok := c.ups[broker]; ok {
		return u, nil
	}
	addr, ok := c.s.backend.brokerAddr(broker)
	if !ok {
		c.s.backend.TriggerRefresh()
		return nil, fmt.Errorf("%w: broker %d of %s is not in the metadata", ErrNoBroker, broker, c.s.backend.Name())
	}
	// Dialing blocks this reader; let what is already queued leave first.
	if err := c.flushUpstreams(); err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: c.s.backend.cfg.DialTimeout}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		c.s.backend.TriggerRefresh()
		c.s.metrics.upstreamDialErrors.Inc()
		return nil, fmt.Errorf("dial backend broker %d at %s: %w", broker, addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	u := &upstream{
		c:        c,
		broker:   broker,
		nc:       nc,
		bw:       bufio.NewWriterSize(nc, 64<<10),
		inflight: make(chan upCall, c.s.cfg.MaxInFlight),
	}
	c.ups[broker] = u
	go u.readLoop()
	return u, nil
}

// send writes frame (size prefix included) upstream. With cb nil the
// request expects no response (acks=0 produce).
func (u *upstream) send(frame []byte, corr int32, cb func(*buffer, error)) error {
	if cb != nil {
		call := upCall{corr: corr, cb: cb}
		select {
		case u.inflight <- call:
		default:
			if err := u.c.flushUpstreams(); err != nil {
				return err
			}
			select {
			case u.inflight <- call:
			case <-u.c.closing:
				return ErrClosed
			}
		}
	}
	if _, err := u.bw.Write(frame); err != nil {
		return fmt.Errorf("write to backend broker %d: %w", u.broker, err)
	}
	if !u.dirty {
		u.dirty = true
		u.c.dirty = append(u.c.dirty, u)
	}
	return nil
}

func (c *clientConn) flushUpstreams() error {
	for _, u := range c.dirty {
		u.dirty = false
		if err := u.bw.Flush(); err != nil {
			return fmt.Errorf("write to backend broker %d: %w", u.broker, err)
		}
	}
	c.dirty = c.dirty[:0]
	return nil
}

func (u *upstream) readLoop() {
	br := bufio.NewReaderSize(u.nc, 64<<10)
	for {
		var call upCall
		select {
		case call = <-u.inflight:
		case <-u.c.closing:
			return
		}
		buf, err := readFrame(br, 1<<30)
		if err != nil {
			select {
			case <-u.c.closing:
			default:
				err = fmt.Errorf("read from backend broker %d: %w", u.broker, err)
				call.cb(nil, err)
				u.c.closeWith(err)
			}
			return
		}
		if len(buf.b) < 8 {
			putBuffer(buf)
			err := fmt.Errorf("%w: %d-byte response from broker %d", ErrBackendMismatch, len(buf.b)-4, u.broker)
			call.cb(nil, err)
			u.c.closeWith(err)
			return
		}
		if corr := be32(buf.b[4:]); corr != call.corr {
			putBuffer(buf)
			err := fmt.Errorf("%w: broker %d answered correlation id %d, expected %d", ErrBackendMismatch, u.broker, corr, call.corr)
			call.cb(nil, err)
			u.c.closeWith(err)
			return
		}
		call.cb(buf, nil)
	}
}
