package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

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
	// client: the series its response bytes count in (metrics_traffic.go).
	client *clientCounters
	// inflight are the migrating topics a Produce is counted for
	// (segments.go), released when the slot is finished.
	inflight []string
	s        *Server
	// amend rewrites the answer before it is written (request.amend).
	amend   func(kmsg.Response)
	version int16
	corr    int32
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
	cr  connReader // owned by the reader goroutine
	bw  connWriter // used only by the writer-role holder
	log *slog.Logger

	// kick wakes the writer goroutine: for slots finished by the reader
	// goroutine (local answers), which must not block on client writes, and
	// for an upstream reader that has more answers to read. The writer
	// goroutine runs only while kicked recently (writerUp), so an idle
	// connection does not keep one parked.
	kick     chan struct{}
	writerUp atomic.Bool
	// room wakes the reader waiting for a free slot (roomWait).
	room chan struct{}

	wmu sync.Mutex
	// queue[qhead:] are the reserved slots in request order, at most
	// MaxInFlight; the writer-role holder takes slots from it. It is a
	// slice, not a channel, so an idle connection holds no MaxInFlight-slot
	// array.
	queue    []*pending
	qhead    int
	roomWait bool       // the reader waits for room (wmu)
	head     *pending   // taken from queue, not finished yet (wmu)
	writing  bool       // a goroutine holds the writer role (wmu)
	batch    []*pending // the writer-role holder's scratch

	// Owned by the reader goroutine: the read deadline in force, when the
	// last request arrived, and the budget bytes the current request holds.
	deadline  deadlineKind
	lastFrame time.Time
	held      int64

	// mute holds the reader while a quota throttle runs (throttle.go).
	mute mute

	// deadTarget and deadErr carry a dial failure of the single-target
	// path to the split path of the same request (split.go, scatter), so
	// the unreachable broker is not dialed twice. Reader-owned.
	deadTarget target
	deadErr    error

	// openLogged: the access log's opening line is written (logOpened).
	openLogged bool

	// opened is when the connection was accepted; done, the server's
	// bookkeeping once it has closed (parked or not in between: park.go).
	opened time.Time
	done   func()
	// noPark: parking this connection failed once; it keeps its reader.
	noPark bool

	// lostProduce names the targets whose broker connection broke with a
	// Produce in flight, or to which a Produce was answered unsent (the
	// broker could not be dialed): produceGap. A Produce to one of them
	// on a new broker connection ends the client connection
	// (upstream.send). Owned by the reader goroutine.
	lostProduce map[target]bool
	// producePlaces is the broker of the last Produce to each partition
	// (produce_order.go). Owned by the reader goroutine. produceErrs
	// counts the Produce answers that may have refused a batch.
	producePlaces map[placeKey]producePlace
	produceErrs   atomic.Uint32

	// ups, dirty, clientID and routes are owned by the reader goroutine.
	routes   routeMemory
	ups      map[target]*upstream
	dirty    []*upstream
	clientID *string // the last request's, reused while it repeats

	// clientIP is the client's address; clientHost is the same as a broker
	// reports a group member's host (members.go).
	clientIP   netip.Addr
	clientHost string
	// region is the client's region under the state regionSt
	// (clientRegion); owned by the reader goroutine.
	region   string
	regionSt *fsm.State
	// peerRegion is this peer's region under regionSt (the region label
	// of the traffic this connection moves).
	peerRegion string

	// principal is the client's Kafka principal ("User:alice"): set by the
	// listener's authentication (SASL, or a client certificate's subject)
	// before any other request is served, and on re-authentication;
	// "User:ANONYMOUS" when the listener does not authenticate. Owned by
	// the reader goroutine; authorization (acl.go) reads it per request.
	principal string
	// stats: the connection's client series (metrics_traffic.go), reader
	// goroutine's.
	stats clientStats
	// sasl: the connection's SASL state (sasl.go), reader goroutine's.
	sasl saslConn

	// replicas: the read replicas backends named for this connection's
	// fetches (01_fetch.go).
	replicas readReplicas

	// vpids: the virtual producer ids this connection used (producer_ids.go).
	vpids connPIDs

	// share: the client's share sessions on this connection (share_sessions.go).
	share shareSessions

	// wg counts the writer goroutine and the upstream readers.
	wg sync.WaitGroup

	closeOnce sync.Once
	closing   chan struct{}
	reason    error
}

func newClientConn(s *Server, nc net.Conn) *clientConn {
	rw := rawIO(nc)
	c := &clientConn{
		s:         s,
		nc:        nc,
		cr:        newConnReader(rw),
		bw:        connWriter{w: rw},
		log:       s.log.With("client", nc.RemoteAddr().String()),
		kick:      make(chan struct{}, 1),
		room:      make(chan struct{}, 1),
		ups:       map[target]*upstream{},
		closing:   make(chan struct{}),
		lastFrame: time.Now(),
	}
	c.clientIP = remoteIP(nc)
	c.clientHost = kafkaHost(c.clientIP)
	c.principal = AnonymousPrincipal
	return c
}

// AnonymousPrincipal is the principal of a client the listener did not
// authenticate, Kafka's name for it.
const AnonymousPrincipal = "User:ANONYMOUS"

// closeWith closes the connection and its upstreams once, logging why.
func (c *clientConn) closeWith(err error) {
	c.closeOnce.Do(func() {
		c.reason = err
		close(c.closing)
		if p := c.s.parker; p != nil {
			p.unpark(c) // its new reader finds it closed and finishes it
		}
		c.nc.Close()
		switch cat := closeCategory(err); cat {
		case "bad_request", "frame_timeout", "error":
			// The access line (serve) says it at info, with the client.
			c.log.Debug("closing client connection", "category", cat, "reason", err)
		case "backend_mismatch":
			c.log.Warn("closing client connection: backend answered out of order", "reason", err)
		}
		c.s.metrics.closed(closeCategory(err))
	})
}

// closeCategory is why a connection closed, in the words of the closed
// connections metric and the access log.
func closeCategory(err error) string {
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, ErrClosed):
		return "normal"
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrFrameTooLarge), errors.Is(err, ErrUnknownKey),
		errors.Is(err, ErrUnsupportedVersion), errors.Is(err, ErrUnroutable):
		return "bad_request"
	case errors.Is(err, ErrBackendMismatch):
		return "backend_mismatch"
	case errors.Is(err, ErrPanic):
		return "panic" // recoverPanic logged it, with the stack
	case errors.Is(err, ErrIdle):
		return "idle"
	case errors.Is(err, ErrAuthentication), errors.Is(err, ErrUnauthenticated), errors.Is(err, ErrSessionExpired),
		errors.Is(err, ErrIllegalSASLState), errors.Is(err, ErrTLSHandshake):
		return "auth"
	case errors.Is(err, ErrFrameTimeout):
		return "frame_timeout"
	}
	return "error"
}

// The access log: one info line when a client connection opens and one
// when it closes, with what the proxy knows of the client by then (client
// id, principal) and why it closed. Logged by serve, the reader goroutine,
// which owns those fields. The opening line waits for the first request
// (or the TLS handshake's end): a connection that closes normally without
// one (a load balancer's TCP check, the peers' liveness probe of each
// other's Kafka port) leaves a single debug line, so probes do not flood
// the log; one that fails before a request (a TLS or frame error) is
// logged at info as any other.
func (c *clientConn) logOpened() {
	if c.openLogged {
		return
	}
	c.openLogged = true
	_, isTLS := c.nc.(*tlsConn)
	c.log.Info("client connection opened", "component", "access", "tls", isTLS)
}

func (c *clientConn) logClosed(opened time.Time) {
	clientID := ""
	if c.clientID != nil {
		clientID = *c.clientID
	}
	attrs := []any{"component", "access", "client_id", clientID, "principal", c.principal,
		"duration", time.Since(opened).Round(time.Millisecond), "reason", closeCategory(c.reason)}
	cat := closeCategory(c.reason)
	if !c.openLogged && cat == "normal" {
		c.log.Debug("client connection closed without a request", attrs...)
		return
	}
	c.logOpened()
	if cat != "normal" && c.reason != nil {
		attrs = append(attrs, "error", c.reason.Error())
	}
	c.log.Info("client connection closed", attrs...)
}

// serve is the connection's reader goroutine from its accept: the TLS
// handshake, then requests until it closes (end) or parks (park.go).
func (c *clientConn) serve() {
	c.s.metrics.connections.Inc()
	c.opened = time.Now()
	var err error
	if tc, ok := c.nc.(*tlsConn); ok {
		err = c.handshakeTLS(tc)
		if err == nil {
			c.logOpened()
		}
	}
	if err == nil {
		c.notePrincipal()
		if err = c.readUntilParked(); err == nil {
			return // parked: resume takes over
		}
	}
	c.end(err)
}

// resume is a parked connection's new reader goroutine. The read deadline
// the old reader left has passed: the next wait arms a new one, so the
// reader reads what woke it before it can think of parking again.
func (c *clientConn) resume() {
	c.deadline = deadlineNone
	if err := c.readUntilParked(); err != nil {
		c.end(err)
	}
}

// readUntilParked serves requests until the connection fails (its error)
// or is parked (nil: this goroutine must end without touching c again).
// A connection that cannot be parked goes on being read.
func (c *clientConn) readUntilParked() error {
	for {
		err := c.safeReadLoop()
		if !errors.Is(err, errParked) {
			return err
		}
		if c.s.parker.park(c, c.idleLimit()) {
			return nil
		}
		c.noPark = true
	}
}

// end ends a closed connection: its upstreams, goroutines, buffers and
// budget, the access log's closing line and the server's bookkeeping.
func (c *clientConn) end(err error) {
	defer c.s.metrics.connections.Dec()
	c.connClosed()
	c.closeWith(err)
	for _, u := range c.ups {
		u.nc.Close()
	}
	// Every goroutine that could finish or write a slot has stopped.
	c.wg.Wait()
	c.logClosed(c.opened)
	c.s.budget.release(c.held)
	c.held = 0
	c.cr.close()
	// Drain: release buffers of responses that will never be written.
	if c.head != nil {
		putBuffer(c.head.out)
	}
	for _, p := range c.queue[c.qhead:] {
		putBuffer(p.out)
	}
	c.queue, c.qhead = nil, 0
	if c.bw.buf != nil {
		putBuffer(c.bw.buf)
		c.bw.buf = nil
	}
	if c.done != nil {
		c.done()
	}
}

// safeReadLoop is readLoop with a handler's panic turned into an error
// that closes this connection alone.
func (c *clientConn) safeReadLoop() (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = c.panicked("request handler", v)
		}
	}()
	return c.readLoop()
}

// recoverPanic, deferred by each goroutine of the connection, closes the
// connection alone when that goroutine panics (a merge or response rewrite
// on an upstream reader, a write on the writer goroutine): one bad request
// must not kill the peer and every other client's connection.
func (c *clientConn) recoverPanic(where string) {
	if v := recover(); v != nil {
		c.closeWith(c.panicked(where, v))
	}
}

// panicked logs a recovered panic with its stack and returns the error the
// connection is closed with.
func (c *clientConn) panicked(where string, v any) error {
	c.log.Error("panic serving client connection; closing it", "in", where, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	return fmt.Errorf("%w in %s: %v", ErrPanic, where, v)
}

func (c *clientConn) readLoop() error {
	for {
		if err := c.waitMute(); err != nil {
			return err
		}
		if !frameBuffered(&c.cr) {
			if err := c.flushUpstreams(); err != nil {
				return err
			}
		}
		buf, err := c.readRequest()
		if err != nil {
			return err
		}
		c.logOpened()
		start := time.Now()
		c.lastFrame = start
		if c.sasl.raw {
			// SaslHandshake v0: this frame is a raw SASL token (sasl.go).
			err = c.saslRawToken(buf.b[4:], start)
			putBuffer(buf)
			c.s.budget.release(c.held)
			c.held = 0
			if err != nil {
				return err
			}
			continue
		}
		h, err := parseHeader(buf.b[4:], c.clientID)
		if err != nil {
			putBuffer(buf)
			return err
		}
		if c.s.sasl != nil {
			if err := c.admitSASL(h.key, start); err != nil {
				putBuffer(buf)
				return err
			}
		}
		c.clientID = h.clientID
		r := c.newRequest(h, buf, start)
		c.s.metrics.request(h.key, len(buf.b))
		c.noteRequest(len(buf.b))
		handler := c.s.handlers[h.key]
		if handler == nil {
			putBuffer(buf)
			return fmt.Errorf("%w: %s (key %d)", ErrUnroutable, kmsg.NameForKey(h.key), h.key)
		}
		err = authorizeThen(r, handler)
		c.notePrincipal() // authentication may have changed it
		if r.inflight != nil {
			// Counted, but never given a response slot.
			c.s.releaseInflight(r.inflight)
		}
		putBuffer(buf)
		// The request was answered or written upstream: its bytes leave
		// the budget.
		c.s.budget.release(c.held)
		c.held = 0
		if err != nil {
			return err
		}
	}
}

// deadlineKind is the read deadline a client connection has in force.
type deadlineKind uint8

const (
	deadlineNone  deadlineKind = iota
	deadlineIdle               // between requests: ConnectionsMaxIdle, or ParkIdleAfter first (idleWait)
	deadlineFrame              // a request has started: FrameReadTimeout
)

// setDeadline puts kind's read deadline in force from now.
func (c *clientConn) setDeadline(kind deadlineKind) {
	var d time.Duration
	switch kind {
	case deadlineIdle:
		d = c.idleWait(time.Since(c.lastFrame))
	case deadlineFrame:
		d = c.s.cfg.FrameReadTimeout
	}
	if d <= 0 {
		kind = deadlineNone
	}
	if kind == deadlineNone {
		if c.deadline != deadlineNone {
			c.nc.SetReadDeadline(time.Time{})
		}
	} else {
		c.nc.SetReadDeadline(time.Now().Add(d))
	}
	c.deadline = kind
}

// readRequest reads the next request frame. Between requests the
// connection may stay silent for ConnectionsMaxIdle, as long as nothing is
// in flight; once a request has started it must arrive whole within
// FrameReadTimeout. Its claimed size is reserved in the server's request
// byte budget first (waiting, not reading, while it does not fit), and its
// buffer grows only as bytes arrive. Deadlines are set only when a read
// may block, so a pipelining client costs no timer updates.
func (c *clientConn) readRequest() (*buffer, error) {
	if c.cr.Buffered() == 0 {
		if err := c.awaitRequest(); err != nil {
			return nil, err
		}
	}
	if !frameBuffered(&c.cr) {
		c.setDeadline(deadlineFrame)
	}
	hdr, err := c.cr.Peek(4)
	if err != nil {
		return nil, c.frameErr(err, 0)
	}
	n := int32(binary.BigEndian.Uint32(hdr))
	if limit := c.frameLimit(); n < 0 || n > limit {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrFrameTooLarge, n, limit)
	}
	c.cr.Discard(4)
	waited, err := c.s.budget.acquire(int64(n)+4, c.closing)
	if err != nil {
		return nil, err
	}
	c.held = int64(n) + 4
	if waited {
		c.s.metrics.budgetWaits.Inc()
		if c.cr.Buffered() < int(n) {
			c.setDeadline(deadlineFrame) // the wait was the proxy's, not the client's
		}
	}
	buf, err := readFrameBody(&c.cr, n, frameChunk)
	if err != nil {
		return nil, c.frameErr(err, n)
	}
	return buf, nil
}

// awaitRequest waits for the first byte of the next request. A connection
// silent for ConnectionsMaxIdle with no request in flight is idle and
// closed; one waiting for its answers is not.
func (c *clientConn) awaitRequest() error {
	if c.deadline != deadlineIdle {
		c.setDeadline(deadlineIdle)
	}
	for {
		_, err := c.cr.Peek(1)
		if err == nil {
			return nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || c.deadline != deadlineIdle {
			return err
		}
		idle := c.s.cfg.ConnectionsMaxIdle
		since := time.Since(c.lastFrame)
		if idle > 0 && since >= idle && c.outstanding() == 0 {
			return fmt.Errorf("%w: no request for %s", ErrIdle, idle)
		}
		if c.parkable(since) {
			return errParked
		}
		if d := c.idleWait(since); d > 0 {
			c.nc.SetReadDeadline(time.Now().Add(d))
		} else {
			// Nothing left to wait for (no idle limit, and parking failed
			// once): wait for the client with no deadline.
			c.setDeadline(deadlineNone)
		}
	}
}

// frameErr names a read deadline that expired inside a request.
func (c *clientConn) frameErr(err error, n int32) error {
	if errors.Is(err, os.ErrDeadlineExceeded) && c.deadline == deadlineFrame {
		return fmt.Errorf("%w: %d-byte request not received within %s", ErrFrameTimeout, n, c.s.cfg.FrameReadTimeout)
	}
	return err
}

// outstanding is how many requests await their response.
func (c *clientConn) outstanding() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n := len(c.queue) - c.qhead
	if c.head != nil {
		n++
	}
	return n
}

// frameBuffered reports whether a whole next frame is already buffered in
// br, so reading it cannot block: flushes can wait to be batched.
func frameBuffered(br peekReader) bool {
	n := br.Buffered()
	if n < 4 {
		return false
	}
	hdr, _ := br.Peek(4)
	return n >= 4+int(binary.BigEndian.Uint32(hdr))
}

// writerIdle is how long the writer goroutine waits for a kick before it
// exits; the next kick starts another.
const writerIdle = 2 * time.Second

// writeLoop writes when kicked: for slots finished by the reader goroutine
// (local answers), and for upstream readers in the middle of a burst.
func (c *clientConn) writeLoop() {
	defer c.recoverPanic("response writer")
	t := time.NewTimer(writerIdle)
	defer t.Stop()
	for {
		select {
		case <-c.kick:
			c.writeReady()
			t.Reset(writerIdle)
		case <-t.C:
			c.writerUp.Store(false)
			// A kick sent before the flag dropped found the goroutine up and
			// started none: serve it, unless a new goroutine took over.
			if len(c.kick) == 0 || !c.writerUp.CompareAndSwap(false, true) {
				return
			}
			t.Reset(writerIdle)
		case <-c.closing:
			return
		}
	}
}

// finish fills slot p. It does not write: the finisher calls writeReady
// once it has finished what it has in hand (or kicks the writer goroutine).
func (c *clientConn) finish(p *pending, out *buffer, err error) {
	if p.inflight != nil {
		p.s.releaseInflight(p.inflight)
		p.inflight = nil
	}
	if p.amend != nil && err == nil && out != nil {
		out = amendResponse(out, p.key, p.version, p.corr, p.amend)
	}
	c.wmu.Lock()
	p.out, p.err, p.done = out, err, closedChan
	c.wmu.Unlock()
}

// kickWriter has the writer goroutine call writeReady, starting it if it
// is not running. Its callers (the reader goroutine and upstream readers)
// run while serve has not yet waited on wg, so the Add is safe.
func (c *clientConn) kickWriter() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
	if c.writerUp.Load() || !c.writerUp.CompareAndSwap(false, true) {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.writeLoop()
	}()
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
	if cap(batch) > 64 {
		batch = nil // a burst's scratch is not kept while idle
	}
	for {
		if c.head == nil {
			if c.head = c.dequeue(); c.head == nil {
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

// dequeue takes the oldest reserved slot, or nil, under wmu.
func (c *clientConn) dequeue() *pending {
	if c.qhead == len(c.queue) {
		return nil
	}
	p := c.queue[c.qhead]
	c.queue[c.qhead] = nil
	c.qhead++
	if c.qhead == len(c.queue) {
		// Empty: reuse the array from its start, unless a burst grew it.
		c.queue, c.qhead = c.queue[:0], 0
		if cap(c.queue) > 64 {
			c.queue = nil
		}
	}
	if c.roomWait {
		c.roomWait = false
		select {
		case c.room <- struct{}{}:
		default:
		}
	}
	return p
}

// enqueue reserves p's place in the response order if fewer than
// MaxInFlight slots are queued, under wmu.
func (c *clientConn) enqueue(p *pending) bool {
	if len(c.queue)-c.qhead >= c.s.cfg.MaxInFlight {
		c.roomWait = true
		return false
	}
	if len(c.queue) == cap(c.queue) && c.qhead > len(c.queue)/2 {
		// Never drained (a client pipelining without pause): slide down
		// rather than grow.
		n := copy(c.queue, c.queue[c.qhead:])
		clear(c.queue[n:])
		c.queue, c.qhead = c.queue[:n], 0
	}
	c.queue = append(c.queue, p)
	return true
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
		if p.client != nil {
			p.client.out.Add(float64(n))
		}
	}
	return nil
}

// newPending reserves the next response slot.
func (c *clientConn) newPending(r *request, start time.Time) (*pending, error) {
	p := &pending{key: r.key, start: start, client: c.stats.counters}
	if r.amend != nil {
		p.amend, p.version, p.corr = r.amend, r.version, r.corr
	}
	if r.inflight != nil {
		p.inflight, p.s, r.inflight = r.inflight, c.s, nil
	}
	c.wmu.Lock()
	ok := c.enqueue(p)
	c.wmu.Unlock()
	if ok {
		return p, nil
	}
	// Full: make sure what we sent is on the wire before waiting for room.
	if err := c.flushUpstreams(); err != nil {
		return nil, err
	}
	for {
		select {
		case <-c.room:
		case <-c.closing:
			return nil, ErrClosed
		}
		c.wmu.Lock()
		ok := c.enqueue(p)
		c.wmu.Unlock()
		if ok {
			return p, nil
		}
	}
}

// respond answers r locally.
func (c *clientConn) respond(r *request, start time.Time, resp kmsg.Response) error {
	if r.key != 18 {
		// An answer is read at its request's version, whoever built it
		// (failedAnswer's are version 0); only ApiVersions answers an
		// unsupported version at v0 (KIP-511).
		resp.SetVersion(r.version)
	}
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
	bm       *brokerMetrics // the broker's latency and error series
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
	// renew is when the connection's SASL session nears its end (zero:
	// never); the reader goroutine replaces it at its next use after that
	// with nothing in flight, and sets renewed so readLoop ends quietly.
	renew   time.Time
	renewed atomic.Bool
	// produceInflight counts the Produce calls awaiting an answer. When
	// the connection breaks with one of them in flight, readLoop sets
	// produceLost before broken, and the reader, replacing it, records its
	// target in clientConn.lostProduce: a replacement connection never
	// carries a later Produce (noProduce).
	produceInflight atomic.Int32
	produceLost     atomic.Bool
	noProduce       bool // set before the upstream is used; read by send
}

// upCall is a request sent upstream that awaits its response.
type upCall struct {
	corr    int32
	produce bool
	version int16     // a Produce's, to read its answer (produceErrs)
	sent    time.Time // when it was written (buffered) upstream
	// cb receives the response frame (size prefix included), which it owns,
	// or an error.
	cb func(resp *buffer, err error)
}

// upstream returns the connection to broker of be, dialing it if needed.
func (c *clientConn) upstream(be *Backend, broker int32) (*upstream, error) {
	key := target{be, broker}
	if u, ok := c.ups[key]; ok {
		switch {
		case u.broken.Load():
			if u.produceLost.Load() {
				c.produceGap(key)
			}
			c.retire(u)
		case !u.renew.IsZero() && !u.dirty && len(u.inflight) == 0 && time.Now().After(u.renew):
			// Its SASL session is about to end (KIP-368) and nothing is
			// in flight or buffered, so no request can overtake another:
			// replace it.
			u.renewed.Store(true)
			u.nc.Close()
			c.retire(u)
		default:
			return u, nil
		}
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
	nc, renew, err := be.dialSession(context.Background(), addr)
	if err != nil {
		be.TriggerRefresh()
		c.s.metrics.upstreamDialErrors.Inc()
		be.metrics.errors("dial").Inc()
		be.metrics.broker(addr).failed()
		return nil, fmt.Errorf("dial broker %d of %s at %s: %w", broker, be.Name(), addr, err)
	}
	rw := rawIO(nc)
	u := &upstream{
		c:         c,
		be:        be,
		broker:    broker,
		bm:        be.metrics.broker(addr),
		nc:        nc,
		rw:        rw,
		idle:      newIdleWaiter(nc),
		inflight:  make(chan upCall, min(c.s.cfg.MaxInFlight, maxUpstreamCalls)),
		retired:   make(chan struct{}),
		renew:     renew,
		noProduce: c.lostProduce[key],
	}
	c.ups[key] = u
	be.trackUpstream(u, true)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer be.trackUpstream(u, false)
		defer c.recoverPanic("upstream reader")
		u.readLoop()
	}()
	return u, nil
}

// produceGap records that a Produce to t may be missing from the broker
// while the client goes on: its broker connection broke with the Produce
// in flight, or it (or a split Produce's part) was answered unsent because
// t's broker could not be dialed. A later Produce the client pipelined
// behind it must not reach the broker on a new connection: it would
// overtake the batch the client is about to retry (send), and a broker
// that came back without the producer's state (a crash: test/chaos
// TestFaultBackendRestarted) would store it. So the next Produce to t on a
// new broker connection ends the client connection unsent, as the
// broker's crash ended a direct client's.
func (c *clientConn) produceGap(t target) {
	if t.be == nil || t.broker < 0 {
		return // no broker was chosen, so none was dialed
	}
	if c.lostProduce == nil {
		c.lostProduce = map[target]bool{}
	}
	c.lostProduce[t] = true
}

// send writes frame (size prefix included) upstream. With cb nil the
// request expects no response (acks=0 produce).
//
// A Produce is refused (ErrProduceInterrupted, which closes the client's
// connection) on a connection that replaced one that broke with a Produce
// in flight. Sent on the replacement connection, a later batch of the same
// idempotent producer could overtake the interrupted one: a broker that
// kept the producer's state refuses it (OUT_OF_ORDER_SEQUENCE_NUMBER, and
// the client retries), but one that lost that state (a crash of a broker
// that rebuilds none, an expired producer) stores it, and the interrupted
// batch, retried, is then refused as out of order; librdkafka takes that as
// "already written" and acknowledges a record that is nowhere, franz-go
// fails it. Closing the client connection is what the broker's own crash
// does to a direct client: every request after the break fails together,
// and the client resends its batches in order on a new connection. Other
// brokers' connections, and other keys, are not affected.
func (u *upstream) send(frame []byte, corr int32, cb func(*buffer, error)) error {
	produce := len(frame) >= 6 && int16(binary.BigEndian.Uint16(frame[4:])) == int16(kmsg.Produce)
	if produce && u.noProduce {
		return fmt.Errorf("%w: a produce to broker %d of %s was in flight when a broker connection of this client broke; closing so the client resends its batches in order",
			ErrProduceInterrupted, u.broker, u.be.Name())
	}
	if cb != nil {
		call := upCall{corr: corr, produce: produce, cb: cb, sent: time.Now()}
		if produce {
			call.version = int16(binary.BigEndian.Uint16(frame[6:]))
			u.produceInflight.Add(1)
		}
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
// once no further whole response is already buffered: the answers of a
// burst leave in one write, with no goroutine hand-off (reading a buffered
// frame cannot block, so there is nothing to overlap the write with). It
// waits on the socket, not on the calls: a call is queued before its
// request is written, so it is there by the time its response arrives, and
// an idle connection costs no wake-up per request.
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
				if u.renewed.Load() && !have {
					break // replaced on purpose, nothing in flight
				}
				// The calls awaiting an answer fail: a request forwarded
				// whole ends the client's connection once the answers
				// before it are written, as the broker's own close would;
				// a split request answers that part with retriable
				// errors (forward.go). The client's connection stays.
				err = fmt.Errorf("read from broker %d of %s: %w", u.broker, u.be.Name(), err)
				u.be.metrics.errors("connection").Inc()
				u.bm.failed()
				if u.produceInflight.Load() > 0 {
					// Before broken: the reader replaces the connection only
					// after it sees broken (upstream, send).
					u.produceLost.Store(true)
				}
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
		u.bm.observeSince(call.sent)
		if call.produce {
			// An answer that may hold a refused batch is counted before
			// the Produce stops counting as in flight: producePlace reads
			// them in the other order.
			if !quietProduceResponse(buf.b[4:], call.version) {
				u.c.produceErrs.Add(1)
			}
			u.produceInflight.Add(-1)
		}
		call.cb(buf, nil)
		more := frameBuffered(br)
		if !more && u.idle != nil && br.Buffered() == 0 && len(u.inflight) == 0 {
			// Nothing buffered and nothing awaited: idle until the next
			// answer, without a buffer.
			putUpReader(br)
			br = nil
		}
		if !more {
			// The burst is over: write what is ready now, with no
			// hand-off. While more whole answers are buffered (a
			// pipelining client), they are read first, so the burst
			// leaves in one write and wakes no other goroutine; handing
			// it to the writer goroutine cost a thread wake-up per burst.
			u.c.writeReady()
		}
	}
}
