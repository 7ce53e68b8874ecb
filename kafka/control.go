package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ctlConn is a serialized request/response connection to one backend broker,
// used by the proxy's own lookups (metadata, coordinators, versions). Client
// traffic never shares it.
type ctlConn struct {
	// sem serializes exchanges. It is a channel, not a mutex, so a caller
	// queued behind an exchange with a hung broker gives up when its own
	// context ends instead of waiting out the other caller's timeout.
	sem  chan struct{}
	addr string
	dial dialFunc
	nc   net.Conn
	br   *bufio.Reader
	corr int32
	// ncMu guards nc against close, which does not wait for sem.
	ncMu sync.Mutex
	// closed is set when the backend stops.
	closed atomic.Bool

	// dialSession, when set, dials instead of dial and says when the
	// connection's SASL session ends; it is replaced before then (KIP-368).
	dialSession func(ctx context.Context, addr string) (net.Conn, time.Time, error)
	renew       time.Time
}

var ctlClientID = "switchyard"

func newCtlConn(addr string, dial dialFunc) *ctlConn {
	return &ctlConn{addr: addr, dial: dial, sem: make(chan struct{}, 1)}
}

// lock takes the connection, or fails when ctx ends first.
func (c *ctlConn) lock(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the control connection to %s: %w", c.addr, ctx.Err())
	}
}

func (c *ctlConn) unlock() { <-c.sem }

// roundTrip sends req (whose version must be set) and decodes the answer.
// timeout bounds the exchange with this one broker (dial included), within
// ctx; maxResp bounds the answer's size.
func (c *ctlConn) roundTrip(ctx context.Context, req kmsg.Request, timeout time.Duration, maxResp int32) (kmsg.Response, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := c.lock(ctx); err != nil {
		return nil, err
	}
	defer c.unlock()
	if c.closed.Load() {
		return nil, fmt.Errorf("%s to backend %s: %w", kmsg.NameForKey(req.Key()), c.addr, ErrClosed)
	}
	if c.nc != nil && !c.renew.IsZero() && time.Now().After(c.renew) {
		// Its SASL session is about to end: the broker would close it
		// at the next request after the end.
		c.ncMu.Lock()
		c.nc.Close()
		c.nc, c.br = nil, nil
		c.ncMu.Unlock()
	}
	if c.nc == nil {
		var nc net.Conn
		var err error
		if c.dialSession != nil {
			nc, c.renew, err = c.dialSession(ctx, c.addr)
		} else {
			nc, err = c.dial(ctx, c.addr)
		}
		if err != nil {
			return nil, fmt.Errorf("dial backend %s: %w", c.addr, err)
		}
		c.ncMu.Lock()
		c.nc = nc
		c.ncMu.Unlock()
		if c.closed.Load() { // closed while dialing
			nc.Close()
		}
		// Small: control answers are read through it, and a metadata
		// answer larger than this is read straight into its frame.
		c.br = bufio.NewReaderSize(nc, 4<<10)
	}
	resp, err := c.exchange(ctx, req, maxResp)
	if err != nil {
		c.ncMu.Lock()
		c.nc.Close()
		c.nc, c.br = nil, nil
		c.ncMu.Unlock()
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			// The deadline or cancellation surfaced as an i/o timeout.
			err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		return nil, fmt.Errorf("%s to backend %s: %w", kmsg.NameForKey(req.Key()), c.addr, err)
	}
	return resp, nil
}

func (c *ctlConn) exchange(ctx context.Context, req kmsg.Request, maxResp int32) (kmsg.Response, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	c.nc.SetDeadline(deadline)
	// A cancelled ctx (a parallel lookup got its answer elsewhere) must
	// not leave this exchange waiting for its deadline.
	nc := c.nc
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c.corr++
	out := appendRequest(nil, req, c.corr, &ctlClientID)
	if _, err := c.nc.Write(out); err != nil {
		return nil, err
	}
	buf, err := readBackendFrame(c.br, maxResp)
	if err != nil {
		return nil, err
	}
	// The decoded response aliases the frame, so the frame is not returned
	// to the pool: it lives as long as the response (copying a full
	// metadata answer out instead costs an encode and a decode).
	return decodeCtlResponse(req, c.corr, buf.b[4:])
}

// decodeCtlResponse decodes frame (size prefix excluded), the answer to req
// sent with correlation id corr. The response aliases frame.
func decodeCtlResponse(req kmsg.Request, corr int32, frame []byte) (kmsg.Response, error) {
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	got, body, err := responseBody(frame, req.Key(), resp.IsFlexible())
	if err != nil {
		return nil, err
	}
	if got != corr {
		return nil, fmt.Errorf("%w: correlation id %d, sent %d", ErrBackendMismatch, got, corr)
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return resp, nil
}

// close closes the connection without waiting for an exchange in
// progress, which then fails: stopping a backend never waits for a hung
// broker.
func (c *ctlConn) close() {
	c.closed.Store(true)
	c.ncMu.Lock()
	defer c.ncMu.Unlock()
	if c.nc != nil {
		c.nc.Close()
	}
}

// be32 reads a big-endian int32.
func be32(b []byte) int32 { return int32(binary.BigEndian.Uint32(b)) }
