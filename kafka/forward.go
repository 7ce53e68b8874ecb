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

// forwardAny sends r to any reachable broker of be, this host's first.
func (c *clientConn) forwardAny(r *request, start time.Time, be *Backend, post postFunc) error {
	u, err := c.anyUpstream(be)
	if err != nil {
		// No broker of be can be reached: a retriable answer where the
		// key has one (unavailable.go), not a closed connection.
		return c.answerUnreachable(r, start, be, err)
	}
	return c.forwardTo(u, r, start, post)
}

// errNoCluster is the error for a request that needs a backend cluster
// when none is configured.
var errNoCluster = fmt.Errorf("%w: no backend cluster is configured", ErrNoBroker)

// anyUpstream returns a connection to any reachable broker of be, this
// host's first. For a cluster whose metadata has not arrived yet (just
// defined) it blocks this client's reader until it does, within
// DialTimeout, after flushing what is queued upstream.
func (c *clientConn) anyUpstream(be *Backend) (*upstream, error) {
	if be == nil {
		return nil, errNoCluster
	}
	ids := be.brokersByHealth() // one that hangs, last
	if len(ids) == 0 {
		// A cluster just put (or unreachable so far): wait a moment for its
		// first metadata rather than fail the connection at once.
		if err := c.flushUpstreams(); err != nil {
			return nil, err
		}
		select {
		case <-be.Ready():
		case <-time.After(be.cfg.DialTimeout):
		case <-c.closing:
			return nil, ErrClosed
		}
		ids = be.brokersByHealth()
	}
	local := c.s.localBrokers(be)
	for _, id := range local {
		if u, ok := c.ups[target{be, id}]; ok && !u.broken.Load() {
			return u, nil
		}
	}
	candidates := append(slices.Clone(local), ids...)
	if len(local) == 0 {
		// No broker on this host: keep using any connection we have.
		for _, id := range ids {
			if u, ok := c.ups[target{be, id}]; ok && !u.broken.Load() {
				return u, nil
			}
		}
	}
	var lastErr error = fmt.Errorf("%w: cluster %s has no known brokers", ErrNoBroker, be.Name())
	for _, id := range candidates {
		u, err := c.upstream(be, id)
		if err == nil {
			return u, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// upstreamOrAny returns the connection to t, or to any broker of t's
// backend when the broker is unknown (-1: the backend then answers with
// the error that makes the client refresh its metadata, and the proxy
// refreshes its own) or any will do (anyBroker: no refresh).
func (c *clientConn) upstreamOrAny(t target) (*upstream, error) {
	if t.broker < 0 {
		if t.be != nil && t.broker != anyBroker {
			t.be.TriggerRefresh()
		}
		return c.anyUpstream(t.be)
	}
	return c.upstream(t.be, t.broker)
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
	out := encodeResponseSized(resp, r.corr, len(buf.b))
	putBuffer(buf)
	return out, nil
}

// part is one piece of a split request: req for a broker of a backend,
// or, with local set, an answer the proxy gives itself (partitions no
// cluster serves, routes that moved) that the merge takes like the others.
type part struct {
	t     target
	req   kmsg.Request
	local kmsg.Response
	// whole, when set, is the part req stands for when req lists less
	// (a backend fetch session's incremental Fetch): a failure of the
	// part answers every unit of whole.
	whole kmsg.Request
}

// failReq is the request a failure of the part answers.
func (pt part) failReq() kmsg.Request {
	if pt.whole != nil {
		return pt.whole
	}
	return pt.req
}

// scatter sends each part to its broker and answers with merge of the
// responses, in part order. The client's correlation id is reused upstream:
// each upstream connection is this client's alone and answers in order.
// A part whose broker cannot be reached, whose connection breaks before it
// answers or which answers garbage is answered with retriable errors for
// its partitions (partfail.go), so the client retries only those. A part
// of another key that could not be sent at all is answered as its key is
// while its cluster is unreachable (unavailable.go).
func (c *clientConn) scatter(r *request, start time.Time, parts []part, merge func([]kmsg.Response) kmsg.Response) error {
	if len(parts) == 0 {
		// Nothing to split (an empty request): any broker answers it as is.
		return c.forwardAny(r, start, r.defaultBackend(), nil)
	}
	resps := make([]kmsg.Response, len(parts))
	remote := 0
	for i, pt := range parts {
		if pt.local != nil {
			pt.local.SetVersion(r.version)
			resps[i] = pt.local
		} else {
			remote++
		}
	}
	merge = throttled(merge)
	if remote == 0 {
		return c.respond(r, start, merge(resps))
	}
	p, err := c.newPending(r, start)
	if err != nil {
		return err
	}
	var (
		mu        sync.Mutex
		bufs      = make([]*buffer, 0, remote)
		remaining = remote
		failed    bool
	)
	// done records part i's answer under mu, or its failure err: answered
	// with fa, the part's retriable errors, when there is one, else the
	// request fails as a whole. With the last part it merges and finishes
	// the slot.
	done := func(i int, decoded kmsg.Response, err error, fa kmsg.Response) {
		if err != nil && !failed && fa != nil {
			c.log.Debug("split request part failed", "api", kmsg.NameForKey(r.key), "cluster", parts[i].t.be.Name(), "broker", parts[i].t.broker, "err", err)
			parts[i].t.be.TriggerRefresh()
			fa.SetVersion(r.version)
			decoded, err = fa, nil
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
		size := 0
		for _, b := range bufs {
			if b != nil {
				size += len(b.b)
			}
		}
		merged := merge(resps)
		merged.SetVersion(r.version) // a merge may build its answer afresh
		out := encodeResponseSized(merged, r.corr, size)
		for _, b := range bufs {
			putBuffer(b)
		}
		c.finish(p, out, nil)
	}
	// fail answers part i, which could not be sent, locally; the reader
	// goroutine then kicks the writer, which no upstream reader will do
	// for it.
	fail := func(i int, err error) error {
		if r.key == kmsg.Produce.Int16() {
			c.produceGap(parts[i].t)
		}
		fa := unreachablePart(parts[i], err)
		if fa == nil {
			fa = partFailure(parts[i])
		}
		if fa == nil {
			return err
		}
		mu.Lock()
		done(i, nil, err, fa)
		mu.Unlock()
		c.kickWriter()
		return nil
	}
	dead, deadErr := c.deadTarget, c.deadErr
	c.deadTarget, c.deadErr = target{}, nil
	for i, pt := range parts {
		if pt.local != nil {
			continue
		}
		pt.req.SetVersion(r.version)
		var u *upstream
		var err error
		if deadErr != nil && pt.t == dead {
			err = deadErr // just failed to dial for this very request (split.go)
		} else {
			u, err = c.upstreamOrAny(pt.t)
		}
		if err != nil {
			if err := fail(i, err); err != nil {
				return err
			}
			continue
		}
		frame := encodeRequest(pt.req, r.corr, r.clientID)
		err = u.send(frame.b, r.corr, func(resp *buffer, err error) {
			var decoded, fa kmsg.Response
			if err == nil {
				decoded, err = decodeResponse(resp, r.key, r.version)
			}
			if err != nil {
				fa = partFailure(parts[i])
			}
			mu.Lock()
			defer mu.Unlock()
			if resp != nil {
				bufs = append(bufs, resp)
			}
			done(i, decoded, err, fa)
		})
		putBuffer(frame)
		if err != nil {
			return err
		}
	}
	return nil
}

// throttled wraps merge so the merged answer carries the largest throttle
// of its parts.
func throttled(merge func([]kmsg.Response) kmsg.Response) func([]kmsg.Response) kmsg.Response {
	return func(resps []kmsg.Response) kmsg.Response {
		out := merge(resps)
		keepMaxThrottle(out, resps)
		return out
	}
}

// scatterOneWay sends parts that expect no response (acks=0 produce).
func (c *clientConn) scatterOneWay(r *request, parts []part) error {
	for _, pt := range parts {
		if pt.local != nil {
			continue // no answer is owed: nothing to say
		}
		u, err := c.upstreamOrAny(pt.t)
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

// partsOf turns requests keyed by target into parts, in target order.
func partsOf[R kmsg.Request](by map[target]R) []part {
	parts := make([]part, 0, len(by))
	for _, t := range targetOrder(by) {
		parts = append(parts, part{t: t, req: by[t]})
	}
	return parts
}
