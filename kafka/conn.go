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
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// request is one client request, valid until its handler returns.
type request struct {
	requestHeader
	buf  *buffer // the whole frame, size prefix included
	body []byte  // the body, after the header
}

// pending is a response slot in a connection's response order. Once
// queued, its fields are guarded by the connection's wmu.
type pending struct {
	// done is nil until the slot is finished, then closedChan: a select on
	// it tells whether the slot is finished, and no slot needs a channel of
	// its own (nothing waits on it; the finisher writes, see writeReady).
	done  chan struct{}
	out   *buffer // the response frame, size prefix included
	err   error
	key   int16
	start time.Time
}

// closedChan is the done channel of every finished slot.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// clientConn is one client connection. Its reader goroutine parses requests
// and sends them upstream in arrival order, reserving a response slot for
// each. Whichever goroutine finishes the slot at the head of that order (in
// the normal case the upstream reader that read the backend's answer)
// writes it and every finished slot after it to the client, so a forwarded
// response reaches the client without a hand-off to another goroutine.
// One goroutine at a time holds that writer role (wmu, writing), so
// responses leave in request order and bw has one user. Each client
// connection has its own backend connections, so a slow or failing backend
// stalls or closes only it.
type clientConn struct {
	s   *Server
	nc  net.Conn
	br  *bufio.Reader
	bw  *bufio.Writer // used only by the writer-role holder
	log *slog.Logger

	// queue holds reserved slots in request order; its capacity bounds
	// requests in flight. The writer-role holder takes slots from it.
	queue chan *pending
	// kick wakes the writer goroutine: for slots finished by the reader
	// goroutine (local answers), which must not block on client writes, and
	// for an upstream reader that has more answers to read.
	kick chan struct{}

	wmu     sync.Mutex
	head    *pending   // taken from queue, not finished yet (wmu)
	writing bool       // a goroutine holds the writer role (wmu)
	batch   []*pending // the writer-role holder's scratch

	// mute holds the reader while a quota throttle runs (throttle.go).
	mute mute

	// ups, dirty, clientID and routes are owned by the reader goroutine.
	routes   routeMemory
	ups      map[target]*upstream
	dirty    []*upstream
	clientID *string // the last request's, reused while it repeats

	// vpids: the virtual producer ids this connection used (producer_ids.go).
	vpids connPIDs

	// wg counts the writer goroutine and the upstream readers.
	wg sync.WaitGroup

	closeOnce sync.Once
	closing   chan struct{}
	reason    error
}

func newClientConn(s *Server, nc net.Conn) *clientConn {
	rw := rawIO(nc)
	return &clientConn{
		s:       s,
		nc:      nc,
		br:      bufio.NewReaderSize(rw, 64<<10),
		bw:      bufio.NewWriterSize(rw, 64<<10),
		log:     s.log.With("client", nc.RemoteAddr().String()),
		queue:   make(chan *pending, s.cfg.MaxInFlight),
		kick:    make(chan struct{}, 1),
		ups:     map[target]*upstream{},
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
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.writeLoop()
	}()
	err := c.readLoop()
	c.closeWith(err)
	for _, u := range c.ups {
		u.nc.Close()
	}
	// Every goroutine that could finish or write a slot has stopped.
	c.wg.Wait()
	// Drain: release buffers of responses that will never be written.
	if c.head != nil {
		putBuffer(c.head.out)
	}
	for {
		select {
		case p := <-c.queue:
			putBuffer(p.out)
		default:
			return
		}
	}
}

func (c *clientConn) readLoop() error {
	for {
		if err := c.waitMute(); err != nil {
			return err
		}
		if !frameBuffered(c.br) {
			if err := c.flushUpstreams(); err != nil {
				return err
			}
		}
		buf, err := readFrame(c.br, c.s.cfg.MaxFrameBytes)
		if err != nil {
			return err
		}
		start := time.Now()
		h, err := parseHeader(buf.b[4:], c.clientID)
		if err != nil {
			putBuffer(buf)
			return err
		}
		c.clientID = h.clientID
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

// frameBuffered reports whether a whole next frame is already buffered in
// br, so reading it cannot block: flushes can wait to be batched.
func frameBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < 4 {
		return false
	}
	hdr, _ := br.Peek(4)
	return n >= 4+int(binary.BigEndian.Uint32(hdr))
}

// writeLoop writes when kicked: for slots finished by the reader goroutine
// (local answers), and for upstream readers in the middle of a burst.
func (c *clientConn) writeLoop() {
	for {
		select {
		case <-c.kick:
			c.writeReady()
		case <-c.closing:
			return
		}
	}
}

// finish fills slot p. It does not write: the finisher calls writeReady
// once it has finished what it has in hand (or kicks the writer goroutine).
func (c *clientConn) finish(p *pending, out *buffer, err error) {
	c.wmu.Lock()
	p.out, p.err, p.done = out, err, closedChan
	c.wmu.Unlock()
}

// kickWriter has the writer goroutine call writeReady.
func (c *clientConn) kickWriter() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// writeReady writes the finished slots at the head of the response order
// to the client, then flushes. If another goroutine holds the writer role it
// returns at once: the holder looks for finished slots again before it lets
// go of the role, under the same lock that finish takes.
func (c *clientConn) writeReady() {
	c.wmu.Lock()
	if c.writing {
		c.wmu.Unlock()
		return
	}
	c.writing = true
	var err error
	for err == nil {
		batch := c.takeReady()
		if len(batch) == 0 {
			if c.bw.Buffered() == 0 {
				break
			}
			c.wmu.Unlock()
			err = c.bw.Flush()
			c.wmu.Lock()
			continue
		}
		c.wmu.Unlock()
		err = c.writeSlots(batch)
		clear(batch) // keep no finished slots reachable
		c.wmu.Lock()
	}
	c.writing = false
	c.wmu.Unlock()
	if err != nil {
		c.closeWith(err)
	}
}

// takeReady removes the finished slots at the head of the order, under wmu.
func (c *clientConn) takeReady() []*pending {
	batch := c.batch[:0]
	for {
		if c.head == nil {
			select {
			case c.head = <-c.queue:
			default:
				c.batch = batch
				return batch
			}
		}
		if c.head.done == nil {
			c.batch = batch
			return batch
		}
		batch = append(batch, c.head)
		c.head = nil
	}
}

// writeSlots writes finished slots to bw in order and releases their
// buffers. A slot that failed ends the connection, once the responses
// before it are written.
func (c *clientConn) writeSlots(batch []*pending) error {
	now := time.Now()
	for i, p := range batch {
		if p.err != nil {
			for _, q := range batch[i:] {
				putBuffer(q.out)
			}
			c.bw.Flush() // what came before the failure still goes out
			return p.err
		}
		n := len(p.out.b)
		_, err := c.bw.Write(p.out.b)
		putBuffer(p.out)
		p.out = nil
		if err != nil {
			for _, q := range batch[i+1:] {
				putBuffer(q.out)
			}
			return err
		}
		c.s.metrics.response(p.key, n, now.Sub(p.start))
	}
	return nil
}

// newPending reserves the next response slot.
func (c *clientConn) newPending(r *request, start time.Time) (*pending, error) {
	p := &pending{key: r.key, start: start}
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
	c.finish(p, encodeResponse(resp, r.corr), nil)
	c.kickWriter()
	return nil
}

// upstream is one backend broker connection owned by a client connection.
// bw is nil while nothing waits to be flushed; bwPooled says it came from
// upWriters (upstream_mem.go) and goes back after each flush.
type upstream struct {
	c        *clientConn
	be       *Backend
	broker   int32
	nc       net.Conn
	rw       io.ReadWriter // nc, or its raw-syscall form (rawIO)
	bw       *bufio.Writer
	bwPooled bool
	idle     *idleWaiter // nil: the read buffer is kept while idle
	inflight chan upCall
	dirty    bool

	// broken is set by readLoop when the broker connection fails: its
	// calls are failed one by one (a split request answers that part with
	// retriable errors, forward.go) and the reader goroutine replaces it
	// on next use, closing retired once it sends on it no more.
	broken  atomic.Bool
	retired chan struct{}
}

// upCall is a request sent upstream that awaits its response.
type upCall struct {
	corr int32
	// cb receives the response frame (size prefix included), which it owns,
	// or an error.
	cb func(resp *buffer, err error)
}

// upstream returns the connection to broker of be, dialing it if needed.
func (c *clientConn) upstream(be *Backend, broker int32) (*upstream, error) {
	key := target{be, broker}
	if u, ok := c.ups[key]; ok {
		if !u.broken.Load() {
			return u, nil
		}
		c.retire(u)
	}
	addr, ok := be.brokerAddr(broker)
	if !ok {
		be.TriggerRefresh()
		return nil, fmt.Errorf("%w: broker %d of %s is not in the metadata", ErrNoBroker, broker, be.Name())
	}
	// Dialing blocks this reader; let what is already queued leave first.
	if err := c.flushUpstreams(); err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: be.cfg.DialTimeout}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		be.TriggerRefresh()
		c.s.metrics.upstreamDialErrors.Inc()
		be.metrics.errors("dial").Inc()
		return nil, fmt.Errorf("dial broker %d of %s at %s: %w", broker, be.Name(), addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	rw := rawIO(nc)
	u := &upstream{
		c:        c,
		be:       be,
		broker:   broker,
		nc:       nc,
		rw:       rw,
		idle:     newIdleWaiter(nc),
		inflight: make(chan upCall, min(c.s.cfg.MaxInFlight, maxUpstreamCalls)),
		retired:  make(chan struct{}),
	}
	c.ups[key] = u
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		u.readLoop()
	}()
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
	if u.bw == nil {
		u.bw, u.bwPooled = getUpWriter(u.rw), true
	}
	if _, err := u.bw.Write(frame); err != nil {
		return fmt.Errorf("write to broker %d of %s: %w", u.broker, u.be.Name(), err)
	}
	u.be.metrics.requests.Inc()
	u.be.metrics.bytesOut.Add(float64(len(frame)))
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
			if u.broken.Load() {
				// Its calls are failed by its readLoop; nothing more to send.
				u.releaseWriter()
				continue
			}
			return fmt.Errorf("write to broker %d of %s: %w", u.broker, u.be.Name(), err)
		}
		if u.bwPooled {
			putUpWriter(u.bw)
			u.bw = nil
		}
	}
	c.dirty = c.dirty[:0]
	return nil
}

// releaseWriter drops what is buffered for a broken upstream: a pooled
// writer goes back to its pool, a test's own writer writes nowhere.
func (u *upstream) releaseWriter() {
	switch {
	case u.bw == nil:
	case u.bwPooled:
		putUpWriter(u.bw)
		u.bw = nil
	default:
		u.bw.Reset(io.Discard)
	}
}

// retire drops a broken upstream from the connection's set; the reader
// goroutine sends on it no more.
func (c *clientConn) retire(u *upstream) {
	delete(c.ups, target{u.be, u.broker})
	u.releaseWriter()
	if u.retired != nil {
		close(u.retired)
	}
}

// failCalls fails every call sent on a broken upstream, those sent after
// it broke included, until the reader goroutine retires it.
func (u *upstream) failCalls(err error) {
	fail := func(call upCall) {
		call.cb(nil, err)
		u.c.writeReady()
	}
	for {
		select {
		case call := <-u.inflight:
			fail(call)
		case <-u.retired:
			for {
				select {
				case call := <-u.inflight:
					fail(call)
				default:
					return
				}
			}
		case <-u.c.closing:
			return
		}
	}
}

// readLoop reads the backend's responses, hands each to the call that
// awaits it (in FIFO order), and writes what is ready to the client itself
// once no further response is already buffered (while more are, the writer
// goroutine writes, so reading and writing overlap). It waits on the socket, not on the
// calls: a call is queued before its request is written, so it is there by
// the time its response arrives, and an idle connection costs no wake-up
// per request.
func (u *upstream) readLoop() {
	var br *bufio.Reader // nil while idle (upstream_mem.go)
	defer func() {
		if br != nil {
			putUpReader(br)
		}
	}()
	for {
		var buf *buffer
		var err error
		if br == nil {
			if u.idle != nil {
				err = u.idle.wait()
			}
			if err == nil {
				br = getUpReader(u.rw)
			}
		}
		if err == nil {
			buf, err = readBackendFrame(br, u.be.cfg.MaxResponseBytes)
		}
		var call upCall
		have := false
		select {
		case call = <-u.inflight:
			have = true
		default:
		}
		if err != nil {
			select {
			case <-u.c.closing:
			default:
				// The calls awaiting an answer fail: a request forwarded
				// whole ends the client's connection once the answers
				// before it are written, as the broker's own close would;
				// a split request answers that part with retriable
				// errors (forward.go). The client's connection stays.
				err = fmt.Errorf("read from broker %d of %s: %w", u.broker, u.be.Name(), err)
				u.be.metrics.errors("connection").Inc()
				u.broken.Store(true)
				u.be.TriggerRefresh()
				if u.nc != nil {
					u.nc.Close()
				}
				if have {
					call.cb(nil, err)
					u.c.writeReady()
				}
				u.failCalls(err)
			}
			return
		}
		if !have {
			putBuffer(buf)
			u.c.closeWith(fmt.Errorf("%w: broker %d of %s sent a response to no request", ErrBackendMismatch, u.broker, u.be.Name()))
			return
		}
		if len(buf.b) < 8 {
			putBuffer(buf)
			err := fmt.Errorf("%w: %d-byte response from broker %d of %s", ErrBackendMismatch, len(buf.b)-4, u.broker, u.be.Name())
			call.cb(nil, err)
			u.c.closeWith(err)
			return
		}
		if corr := be32(buf.b[4:]); corr != call.corr {
			putBuffer(buf)
			err := fmt.Errorf("%w: broker %d of %s answered correlation id %d, expected %d", ErrBackendMismatch, u.broker, u.be.Name(), corr, call.corr)
			call.cb(nil, err)
			u.c.closeWith(err)
			return
		}
		u.be.metrics.bytesIn.Add(float64(len(buf.b)))
		call.cb(buf, nil)
		more := frameBuffered(br)
		if !more && u.idle != nil && br.Buffered() == 0 && len(u.inflight) == 0 {
			// Nothing buffered and nothing awaited: idle until the next
			// answer, without a buffer.
			putUpReader(br)
			br = nil
		}
		if more {
			// More answers are here already (a pipelining client): the
			// writer goroutine writes what is ready while this one reads
			// on. The kick coalesces, so a burst wakes it at most once.
			u.c.kickWriter()
		} else {
			// The burst is over: write now, with no hand-off, so a lone
			// response pays no goroutine wake-up.
			u.c.writeReady()
		}
	}
}
