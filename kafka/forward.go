package kafka

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// postFunc turns a backend response frame into the client's; it owns resp.
type postFunc func(resp *buffer) (*buffer, error)

// forward sends r's original bytes to broker.
func (c *clientConn) forward(r *request, start time.Time, broker int32, post postFunc) error {
	u, err := c.upstream(broker)
	if err != nil {
		return err
	}
	return c.forwardTo(u, r, start, post)
}

func (c *clientConn) forwardTo(u *upstream, r *request, start time.Time, post postFunc) error {
	p, err := c.newPending(r, start)
	if err != nil {
		return err
	}
	return u.send(r.buf.b, r.corr, func(resp *buffer, err error) {
		if err == nil && post != nil {
			resp, err = post(resp)
		}
		c.finish(p, resp, err)
	})
}

// forwardAny sends r to any reachable broker, this host's first.
func (c *clientConn) forwardAny(r *request, start time.Time, post postFunc) error {
	u, err := c.anyUpstream()
	if err != nil {
		return err
	}
	return c.forwardTo(u, r, start, post)
}

func (c *clientConn) anyUpstream() (*upstream, error) {
	ids := c.s.backend.brokerIDs()
	local := c.s.localBrokers()
	for _, id := range local {
		if u, ok := c.ups[id]; ok {
			return u, nil
		}
	}
	candidates := append(slices.Clone(local), ids...)
	if len(local) == 0 {
		// No broker on this host: keep using any connection we have.
		for _, id := range ids {
			if u, ok := c.ups[id]; ok {
				return u, nil
			}
		}
	}
	var lastErr error = fmt.Errorf("%w: cluster %s has no known brokers", ErrNoBroker, c.s.backend.Name())
	for _, id := range candidates {
		u, err := c.upstream(id)
		if err == nil {
			return u, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// upstreamOrAny returns the connection to broker, or any broker when the
// broker is unknown (-1): the backend then answers with the error that makes
// the client refresh its metadata.
func (c *clientConn) upstreamOrAny(broker int32) (*upstream, error) {
	if broker < 0 {
		c.s.backend.TriggerRefresh()
		return c.anyUpstream()
	}
	return c.upstream(broker)
}

// decodeResponse decodes a response frame of key at version. The result
// aliases buf.
func decodeResponse(buf *buffer, key, version int16) (kmsg.Response, error) {
	resp := kmsg.ResponseForKey(key)
	resp.SetVersion(version)
	_, body, err := responseBody(buf.b[4:], key, resp.IsFlexible())
	if err != nil {
		return nil, err
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("%w: backend %s v%d response: %v", ErrMalformed, kmsg.NameForKey(key), version, err)
	}
	return resp, nil
}

// rewrite decodes the response in buf, applies fn, and encodes the result
// when fn reports a change; otherwise the backend's bytes go through as is.
func rewrite(buf *buffer, r *request, fn func(kmsg.Response) bool) (*buffer, error) {
	resp, err := decodeResponse(buf, r.key, r.version)
	if err != nil {
		putBuffer(buf)
		return nil, err
	}
	if !fn(resp) {
		return buf, nil
	}
	out := encodeResponse(resp, r.corr)
	putBuffer(buf)
	return out, nil
}

// part is one piece of a split request, for one broker.
type part struct {
	broker int32
	req    kmsg.Request
}

// scatter sends each part to its broker and answers with merge of the
// responses, in part order. The client's correlation id is reused upstream:
// each upstream connection is this client's alone and answers in order.
func (c *clientConn) scatter(r *request, start time.Time, parts []part, merge func([]kmsg.Response) kmsg.Response) error {
	if len(parts) == 0 {
		// Nothing to split (an empty request): any broker answers it as is.
		return c.forwardAny(r, start, nil)
	}
	p, err := c.newPending(r, start)
	if err != nil {
		return err
	}
	var (
		mu        sync.Mutex
		resps     = make([]kmsg.Response, len(parts))
		bufs      = make([]*buffer, 0, len(parts))
		remaining = len(parts)
		failed    bool
	)
	for i, pt := range parts {
		u, err := c.upstreamOrAny(pt.broker)
		if err != nil {
			return err
		}
		pt.req.SetVersion(r.version)
		frame := encodeRequest(pt.req, r.corr, r.clientID)
		err = u.send(frame.b, r.corr, func(resp *buffer, err error) {
			var decoded kmsg.Response
			if err == nil {
				decoded, err = decodeResponse(resp, r.key, r.version)
			}
			mu.Lock()
			defer mu.Unlock()
			if resp != nil {
				bufs = append(bufs, resp)
			}
			if failed {
				return
			}
			if err != nil {
				failed = true
				for _, b := range bufs {
					putBuffer(b)
				}
				c.finish(p, nil, err)
				return
			}
			resps[i] = decoded
			remaining--
			if remaining > 0 {
				return
			}
			out := encodeResponse(merge(resps), r.corr)
			for _, b := range bufs {
				putBuffer(b)
			}
			c.finish(p, out, nil)
		})
		putBuffer(frame)
		if err != nil {
			return err
		}
	}
	return nil
}

// scatterOneWay sends parts that expect no response (acks=0 produce).
func (c *clientConn) scatterOneWay(r *request, parts []part) error {
	for _, pt := range parts {
		u, err := c.upstreamOrAny(pt.broker)
		if err != nil {
			return err
		}
		pt.req.SetVersion(r.version)
		frame := encodeRequest(pt.req, r.corr, r.clientID)
		err = u.send(frame.b, r.corr, nil)
		putBuffer(frame)
		if err != nil {
			return err
		}
	}
	return nil
}

// decodeRequest decodes r's body as its key and version. The result aliases
// r's buffer and must not outlive the handler.
func decodeRequest(r *request) (kmsg.Request, error) {
	req := kmsg.RequestForKey(r.key)
	req.SetVersion(r.version)
	if err := req.ReadFrom(r.body); err != nil {
		return nil, fmt.Errorf("%w: %s v%d request: %v", ErrMalformed, kmsg.NameForKey(r.key), r.version, err)
	}
	return req, nil
}

// brokerOrder returns the keys of m sorted, for deterministic part order.
func brokerOrder[V any](m map[int32]V) []int32 {
	ids := make([]int32, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
