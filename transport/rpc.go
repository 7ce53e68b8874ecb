package transport

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"runtime/debug"
	"slices"
	"sync"
	"time"
)

// RPCHandler serves one peer RPC request. from is the calling peer's name
// from its handshake: with TLS on, a name its certificate proves (the
// connection is refused otherwise); without TLS, only what it claims. body
// is the JSON request. The returned bytes are the
// JSON response (empty: no result). An error that is, or wraps, an
// *RPCError reaches the caller with its Code and Message; any other error
// reaches it as CodeInternal with the error's text. Requests on one
// connection run concurrently; ctx ends when the caller's deadline passes
// (it travels with the request) or the connection closes.
type RPCHandler func(ctx context.Context, from string, method string, body []byte) ([]byte, error)

// HandleRPC sets the handler for incoming peer RPC; it may be called at any
// time, and replaces any earlier handler. Until it is called, requests are
// answered with CodeUnavailable.
func (m *Mux) HandleRPC(h RPCHandler) {
	if h == nil {
		m.handler.Store(nil)
		return
	}
	m.handler.Store(&h)
}

// frameWriter serialises whole frames onto one connection. The lock is a
// channel so a caller waiting behind a large write can give up when its
// context ends.
type frameWriter struct {
	conn    net.Conn
	timeout time.Duration
	lock    chan struct{}
}

func newFrameWriter(c net.Conn, timeout time.Duration) *frameWriter {
	return &frameWriter{conn: c, timeout: timeout, lock: make(chan struct{}, 1)}
}

// errLockWait marks a write that never started because ctx ended while
// waiting for the connection: the connection is still good.
var errLockWait = errors.New("gave up waiting to write")

func (w *frameWriter) write(ctx context.Context, f *frame) error {
	select {
	case w.lock <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", errLockWait, ctx.Err())
	}
	defer func() { <-w.lock }()
	buf := appendFrame(make([]byte, 0, 4+f.frameLen()), f)
	// WriteTimeout, not the caller's deadline: a write cut off mid-frame
	// breaks the stream for every call sharing the connection.
	_ = w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	_, err := w.conn.Write(buf)
	return err
}

// serveRPC reads requests from one connection until it fails, running each
// in its own goroutine (at most MaxInFlight at once).
func (m *Mux) serveRPC(pc *peerConn) {
	ctx, cancel := context.WithCancel(m.ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		_ = pc.Close()
		wg.Wait()
	}()
	log := m.log.With("from", pc.remote, "remote", pc.RemoteAddr().String())
	br := bufio.NewReader(pc)
	w := newFrameWriter(pc, m.cfg.WriteTimeout)
	sem := make(chan struct{}, m.cfg.MaxInFlight)
	for {
		f, err := readFrame(br, m.cfg.MaxFrameBytes)
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, ErrPartitioned), ctx.Err() != nil:
			log.Debug("rpc connection closed", "err", err)
			return
		case errors.Is(err, ErrFrameTooLarge):
			// Worth an operator's attention: the peers' limits differ, or
			// a caller sends what it should not.
			log.Warn("closing rpc connection: frame too large", "err", err)
			return
		default:
			log.Debug("closing rpc connection: bad frame", "err", err)
			return
		}
		if f.Kind != frameRequest {
			log.Debug("closing rpc connection: response frame from a caller", "kind", f.Kind, "id", f.ID)
			return
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp := m.serveOne(ctx, pc.remote, &f)
			if resp == nil || ctx.Err() != nil {
				// Nobody waits for this answer (see serveOne), or the
				// connection is going away (peer gone, Mux closing) and the
				// handler most likely stopped because of it: the caller
				// must see its own deadline or a lost connection, not a
				// handler error.
				return
			}
			if err := w.write(ctx, resp); err != nil {
				log.Debug("closing rpc connection: response write failed", "id", f.ID, "err", err)
				_ = pc.Close()
			}
		}()
	}
}

// serveOne runs the handler for one request and builds its response
// frame; nil when the caller's deadline passed meanwhile. The request's
// timeout is the caller's remaining time rounded up, so by then the caller
// has returned its own DeadlineExceeded and a late answer would only race
// it.
func (m *Mux) serveOne(ctx context.Context, from string, req *frame) *frame {
	hp := m.handler.Load()
	if hp == nil {
		return errorFrame(req.ID, &RPCError{Code: CodeUnavailable, Message: fmt.Sprintf("peer %s serves no rpc yet", m.cfg.Name)}, m.cfg.MaxFrameBytes)
	}
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.Timeout)*time.Millisecond)
		defer cancel()
	}
	body, err := m.runHandler(ctx, *hp, from, req)
	if req.Timeout > 0 && ctx.Err() != nil {
		return nil
	}
	if err != nil {
		var re *RPCError
		if !errors.As(err, &re) {
			re = &RPCError{Code: CodeInternal, Message: err.Error()}
		}
		return errorFrame(req.ID, re, m.cfg.MaxFrameBytes)
	}
	resp := &frame{Kind: frameResponse, ID: req.ID, Body: body}
	if resp.frameLen() > m.cfg.MaxFrameBytes {
		return errorFrame(req.ID, &RPCError{Code: CodeTooLarge, Message: fmt.Sprintf("%s response of %d bytes exceeds the %d-byte frame limit", req.Str, len(body), m.cfg.MaxFrameBytes)}, m.cfg.MaxFrameBytes)
	}
	return resp
}

// runHandler calls h, turning a panic into CodeInternal: one bad request
// must not take the peer (and its Raft membership) down.
func (m *Mux) runHandler(ctx context.Context, h RPCHandler, from string, req *frame) (body []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("rpc handler panicked", "method", req.Str, "from", from, "panic", r, "stack", string(debug.Stack()))
			body, err = nil, &RPCError{Code: CodeInternal, Message: fmt.Sprintf("handler for %s panicked", req.Str)}
		}
	}()
	return h(ctx, from, req.Str, req.Body)
}

// errorFrame encodes re, trimming what does not fit the wire: a code is at
// most 255 bytes, the whole frame at most max.
func errorFrame(id uint64, re *RPCError, max int) *frame {
	code, msg := re.Code, re.Message
	if code == "" {
		code = CodeInternal
	}
	if len(code) > math.MaxUint8 {
		code, msg = CodeInternal, "code "+code[:64]+"...: "+msg
	}
	if room := max - frameHeaderLen - len(code); len(msg) > room {
		msg = msg[:room]
	}
	return &frame{Kind: frameError, ID: id, Str: code, Body: []byte(msg)}
}

// Client calls peer RPC on other peers' Muxes. It keeps one pipelined
// connection per address: concurrent calls share it, each waiting for the
// response that carries its request id.
type Client struct {
	m     *Mux
	mu    sync.Mutex
	conns map[string]*clientConn
}

type clientConn struct {
	addr  string
	ready chan struct{} // closed when the dial finished
	err   error         // dial error, set before ready closes

	pc     *peerConn
	w      *frameWriter
	nextID uint64 // guarded by mu
	// names the serving peer's certificate proves; tls says whether the
	// connection has TLS at all (set before ready closes).
	names []string
	tls   bool

	mu      sync.Mutex
	pending map[uint64]chan frame
	broken  error         // why the connection failed, wraps ErrConnLost
	done    chan struct{} // closed when broken is set
}

// Call sends method with req (JSON-encoded) to the peer whose peer port is
// addr and decodes the response into resp (nil, or an empty response body:
// resp is left alone). ctx's deadline travels with the request and bounds
// the handler's context. It returns an
// *RPCError (wrapped) for an error the handler sent, an error wrapping
// ErrPartitioned, ErrConnLost, ErrFrameTooLarge or ErrClosed for transport
// failures, or ctx's error when ctx ends first. Calls are never retried:
// after ErrConnLost the request may or may not have run.
func (c *Client) Call(ctx context.Context, addr, method string, req, resp any) error {
	return c.call(ctx, "", addr, method, req, resp)
}

// CallPeer is Call to the peer named name, whose peer port is addr. With
// TLS on, the serving certificate must name that peer, else it fails with
// ErrIdentity before sending anything: the address alone (which is all a
// dial checks) may since have been taken by another cluster member. Without
// TLS nothing can be proven and it is Call.
func (c *Client) CallPeer(ctx context.Context, name, addr, method string, req, resp any) error {
	if name == "" {
		return fmt.Errorf("rpc %s to %s: %w: no peer name to check", method, addr, ErrIdentity)
	}
	return c.call(ctx, name, addr, method, req, resp)
}

func (c *Client) call(ctx context.Context, name, addr, method string, req, resp any) error {
	if method == "" || len(method) > math.MaxUint8 {
		return fmt.Errorf("rpc method %q: must be 1 to 255 bytes", method)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("rpc %s to %s: encode request: %w", method, addr, err)
	}
	f := frame{Kind: frameRequest, Str: method, Body: body}
	if n := f.frameLen(); n > c.m.cfg.MaxFrameBytes {
		return fmt.Errorf("rpc %s to %s: %w: request of %d bytes, maximum %d", method, addr, ErrFrameTooLarge, n, c.m.cfg.MaxFrameBytes)
	}
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return fmt.Errorf("rpc %s to %s: %w", method, addr, context.DeadlineExceeded)
		}
		// Round up so the handler never gets less time than the caller.
		f.Timeout = uint32(min((left+time.Millisecond-1)/time.Millisecond, math.MaxUint32))
	}
	cc, err := c.conn(ctx, addr)
	if err != nil {
		return fmt.Errorf("rpc %s to %s: %w", method, addr, err)
	}
	if name != "" && cc.tls && !slices.Contains(cc.names, name) {
		// The connection stays pooled: it is good, just not that peer's.
		return fmt.Errorf("rpc %s to %s: %w: expected peer %q, its certificate names %q", method, addr, ErrIdentity, name, cc.names)
	}
	ch := make(chan frame, 1)
	id, err := cc.register(ch)
	if err != nil {
		return fmt.Errorf("rpc %s to %s: %w", method, addr, err)
	}
	defer cc.unregister(id)
	f.ID = id
	if err := cc.w.write(ctx, &f); err != nil {
		if errors.Is(err, errLockWait) {
			return fmt.Errorf("rpc %s to %s: %w", method, addr, ctx.Err())
		}
		c.fail(cc, err)
		return fmt.Errorf("rpc %s to %s: %w", method, addr, cc.broken)
	}
	var r frame
	select {
	case r = <-ch:
	case <-cc.done:
		// A response that raced the failure still counts.
		select {
		case r = <-ch:
		default:
			return fmt.Errorf("rpc %s to %s: %w", method, addr, cc.broken)
		}
	case <-ctx.Done():
		return fmt.Errorf("rpc %s to %s: %w", method, addr, ctx.Err())
	}
	if r.Kind == frameError {
		return fmt.Errorf("rpc %s to %s: %w", method, addr, &RPCError{Code: r.Str, Message: string(r.Body)})
	}
	if resp != nil && len(r.Body) > 0 {
		if err := json.Unmarshal(r.Body, resp); err != nil {
			return fmt.Errorf("rpc %s to %s: decode response: %w", method, addr, err)
		}
	}
	return nil
}

// conn returns the pooled connection to addr, dialing it once for every
// caller that waits on it. The dial runs on the Mux's context, so one
// caller's short deadline does not fail the dial for the others.
func (c *Client) conn(ctx context.Context, addr string) (*clientConn, error) {
	c.mu.Lock()
	cc := c.conns[addr]
	if cc == nil {
		cc = &clientConn{addr: addr, ready: make(chan struct{}), pending: map[uint64]chan frame{}, done: make(chan struct{})}
		c.conns[addr] = cc
		if !c.m.spawn(func() { c.dial(cc) }) {
			delete(c.conns, addr)
			c.mu.Unlock()
			return nil, ErrClosed
		}
	}
	c.mu.Unlock()
	select {
	case <-cc.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if cc.err != nil {
		return nil, cc.err
	}
	return cc, nil
}

func (c *Client) dial(cc *clientConn) {
	pc, err := c.m.dial(c.m.ctx, cc.addr, TypeRPC)
	if err == nil {
		cc.pc = pc
		cc.names, cc.tls = servedNames(pc)
		cc.w = newFrameWriter(pc, c.m.cfg.WriteTimeout)
		if !c.m.spawn(func() { c.readLoop(cc) }) {
			_ = pc.Close()
			err = ErrClosed
		}
	}
	if err != nil {
		cc.err = err
		c.drop(cc)
	}
	close(cc.ready)
}

// drop removes cc from the pool if it is still the entry for its address.
func (c *Client) drop(cc *clientConn) {
	c.mu.Lock()
	if c.conns[cc.addr] == cc {
		delete(c.conns, cc.addr)
	}
	c.mu.Unlock()
}

// readLoop delivers responses to their callers until the connection fails.
func (c *Client) readLoop(cc *clientConn) {
	br := bufio.NewReader(cc.pc)
	for {
		f, err := readFrame(br, c.m.cfg.MaxFrameBytes)
		if err == nil && f.Kind == frameRequest {
			err = fmt.Errorf("%w: request frame from the serving peer", ErrMalformedFrame)
		}
		if err != nil {
			if c.m.ctx.Err() != nil {
				err = fmt.Errorf("%w: %w", ErrClosed, err)
			}
			c.fail(cc, err)
			c.m.log.Debug("rpc client connection lost", "addr", cc.addr, "err", err)
			return
		}
		cc.mu.Lock()
		ch := cc.pending[f.ID]
		delete(cc.pending, f.ID)
		cc.mu.Unlock()
		if ch != nil {
			ch <- f // buffered, one response per id
		}
		// No waiter: its caller gave up (context); drop the late response.
	}
}

func (cc *clientConn) register(ch chan frame) (uint64, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.broken != nil {
		return 0, cc.broken
	}
	cc.nextID++
	cc.pending[cc.nextID] = ch
	return cc.nextID, nil
}

func (cc *clientConn) unregister(id uint64) {
	cc.mu.Lock()
	delete(cc.pending, id)
	cc.mu.Unlock()
}

// fail takes cc out of the pool, then marks it broken, once, and closes
// it; every waiting call returns cc.broken. The pool goes first so that a
// caller who saw the failure and calls again dials afresh.
func (c *Client) fail(cc *clientConn, cause error) {
	c.drop(cc)
	cc.mu.Lock()
	if cc.broken != nil {
		cc.mu.Unlock()
		return
	}
	cc.broken = fmt.Errorf("%w to %s: %w", ErrConnLost, cc.addr, cause)
	close(cc.done)
	cc.mu.Unlock()
	_ = cc.pc.Close()
}
