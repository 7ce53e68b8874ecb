package kafka

// Parking idle client connections.
//
// Every client connection has a reader goroutine, and every garbage
// collection cycle scans every goroutine's stack: with 10,000 idle
// connections a cycle cost about 80 ms of CPU instead of 0.5 ms
// (BenchmarkIdleConns, gc-cpu-ns/conn/cycle), and the active clients beside
// them lost a fifth of their consume throughput (docs/benchmarks.md, "Idle
// connections beside active clients"). So a plaintext TCP connection that
// has sent no request for Limits.ParkIdleAfter (10 s by default), with
// nothing in flight, gives up its reader goroutine: its socket goes into
// the server's parker (park_linux.go), an epoll set that one goroutine
// waits on, and the connection's first readable byte (its next request, or
// its client closing it), its idle limit (ConnectionsMaxIdle) or a close
// from elsewhere (closeWith, the server stopping) starts a reader again
// (resume), which goes on exactly where the old one stopped: the
// connection's state, its upstreams, its session and its read buffer
// (released while idle: connio.go) are untouched. The writer goroutine
// already ends on its own after 2 s idle (conn.go). Once parked for
// Limits.UpstreamIdleClose, its idle backend connections are closed too
// (closeIdleUpstreams), ending their readers; the next request dials again.
//
// Not parked: TLS connections (crypto/tls may hold decrypted bytes the
// socket no longer shows as readable), connections that are not a
// *net.TCPConn (in-process ones), and everything where epoll is not
// available (park_other.go): they keep their reader, as before.

import (
	"errors"
	"net"
	"time"
)

// errParked ends a reader goroutine whose connection is to be parked
// (awaitRequest); never an error the connection closes with.
var errParked = errors.New("connection parked")

// mayPark reports whether this connection can be parked at all.
func (c *clientConn) mayPark() bool {
	if c.s.parker == nil || c.noPark || c.s.cfg.ParkIdleAfter <= 0 {
		return false
	}
	_, ok := c.nc.(*net.TCPConn)
	return ok
}

// parkable reports whether the reader, its connection silent for since
// with nothing buffered, should park it now.
func (c *clientConn) parkable(since time.Duration) bool {
	return c.mayPark() && since >= c.s.cfg.ParkIdleAfter && c.cr.Buffered() == 0 && c.outstanding() == 0
}

// idleWait is how long the reader may wait silent, silent for since
// already, before it decides again: until the connection's idle limit or
// the time to park it, whichever comes first, at least a second once
// either has passed (a request still in flight holds both off); 0: no
// limit at all.
func (c *clientConn) idleWait(since time.Duration) time.Duration {
	var d time.Duration
	if idle := c.s.cfg.ConnectionsMaxIdle; idle > 0 {
		d = max(idle-since, time.Second)
	}
	if c.mayPark() {
		p := c.s.cfg.ParkIdleAfter - since
		if p <= 0 {
			p = time.Second
		}
		if d == 0 || p < d {
			d = p
		}
	}
	return d
}

// upstreamsIdle reports whether this parked connection has been silent long
// enough for its backend connections to be closed (Limits.UpstreamIdleClose).
func (c *clientConn) upstreamsIdle(now time.Time) bool {
	d := c.s.cfg.UpstreamIdleClose
	return d > 0 && len(c.ups) > 0 && now.Sub(c.lastFrame) >= d
}

// closeIdleUpstreams closes the backend connections of a parked client
// connection (the parker calls it, which owns the connection while it is
// parked): each has nothing in flight or buffered, since the connection
// parked with nothing outstanding, so, as when a SASL session is renewed,
// its reader ends quietly and the next request to that broker dials a new
// one. An idle client then holds no goroutine and no broker connection;
// its next request pays one dial per broker it uses.
func (c *clientConn) closeIdleUpstreams() {
	for _, u := range c.ups {
		if u.dirty || len(u.inflight) > 0 || u.broken.Load() {
			continue
		}
		u.renewed.Store(true)
		u.nc.Close()
		c.retire(u)
		c.s.metrics.upstreamsClosedIdle.Inc()
	}
}

// idleLimit is when this connection, parked, is to be closed as idle
// (zero: never).
func (c *clientConn) idleLimit() time.Time {
	if idle := c.s.cfg.ConnectionsMaxIdle; idle > 0 {
		return c.lastFrame.Add(idle)
	}
	return time.Time{}
}
