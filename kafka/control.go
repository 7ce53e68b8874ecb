package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ctlConn is a serialized request/response connection to one backend broker,
// used by the proxy's own lookups (metadata, coordinators, versions). Client
// traffic never shares it.
type ctlConn struct {
	mu   sync.Mutex
	addr string
	nc   net.Conn
	br   *bufio.Reader
	corr int32
}

var ctlClientID = "switchyard"

// roundTrip sends req (whose version must be set) and decodes the answer.
func (c *ctlConn) roundTrip(ctx context.Context, req kmsg.Request, dialTimeout time.Duration) (kmsg.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc == nil {
		d := net.Dialer{Timeout: dialTimeout}
		nc, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return nil, fmt.Errorf("dial backend %s: %w", c.addr, err)
		}
		c.nc = nc
		c.br = bufio.NewReaderSize(nc, 64<<10)
	}
	resp, err := c.exchange(ctx, req)
	if err != nil {
		c.nc.Close()
		c.nc = nil
		return nil, fmt.Errorf("%s to backend %s: %w", kmsg.NameForKey(req.Key()), c.addr, err)
	}
	return resp, nil
}

func (c *ctlConn) exchange(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	c.nc.SetDeadline(deadline)
	c.corr++
	out := appendRequest(nil, req, c.corr, &ctlClientID)
	if _, err := c.nc.Write(out); err != nil {
		return nil, err
	}
	buf, err := readFrame(c.br, 1<<30)
	if err != nil {
		return nil, err
	}
	// The decoded response aliases the frame, so the frame is not returned
	// to the pool: it lives as long as the response (copying a full
	// metadata answer out instead costs an encode and a decode).
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	corr, body, err := responseBody(buf.b[4:], req.Key(), resp.IsFlexible())
	if err != nil {
		return nil, err
	}
	if corr != c.corr {
		return nil, fmt.Errorf("%w: correlation id %d, sent %d", ErrBackendMismatch, corr, c.corr)
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return resp, nil
}

func (c *ctlConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

// be32 reads a big-endian int32.
func be32(b []byte) int32 { return int32(binary.BigEndian.Uint32(b)) }
