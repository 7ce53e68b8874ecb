package transport

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// Faults is a table of fault rules between named peers, shared by every
// in-process peer of a test. Its methods are safe for concurrent use, and
// on a nil *Faults they do nothing and report no faults, so production
// wiring passes nil.
//
// Rules are directed links from one peer name to another. A stream
// connection (peer port, gossip TCP) needs both directions, so it is cut
// when either direction is; gossip packets (UDP) are dropped per direction.
// Peers whose name is not known (an address nobody registered) are never
// cut. The zero value is an empty table, like NewFaults.
type Faults struct {
	mu       sync.RWMutex
	isolated map[string]bool
	blocked  map[link]bool
	delays   map[link]time.Duration
	names    map[string]string // canonical address → peer name
	conns    map[*peerConn]struct{}
}

// link is one direction between two peers.
type link struct{ from, to string }

// NewFaults returns an empty table: no faults.
func NewFaults() *Faults {
	f := &Faults{}
	f.initLocked()
	return f
}

// initLocked makes the zero value usable; reads of nil maps are fine, so
// only writers call it.
func (f *Faults) initLocked() {
	if f.names != nil {
		return
	}
	f.isolated = map[string]bool{}
	f.blocked = map[link]bool{}
	f.delays = map[link]time.Duration{}
	f.names = map[string]string{}
	f.conns = map[*peerConn]struct{}{}
}

// Register maps addresses (host:port, peer port or gossip) to a peer name,
// so that traffic addressed by address can be matched to the rules. Listen
// and NewMemberlistConfig register their own addresses.
func (f *Faults) Register(name string, addrs ...string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.initLocked()
	defer f.mu.Unlock()
	for _, a := range addrs {
		if a != "" {
			f.names[canonicalAddr(a)] = name
		}
	}
}

// Partition cuts both directions between a and b.
func (f *Faults) Partition(a, b string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.initLocked()
	f.blocked[link{a, b}] = true
	f.blocked[link{b, a}] = true
	f.mu.Unlock()
	f.killCut()
}

// Isolate cuts name from every other peer, including peers that appear
// later.
func (f *Faults) Isolate(name string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.initLocked()
	f.isolated[name] = true
	f.mu.Unlock()
	f.killCut()
}

// Drop cuts the direction from → to. Gossip packets from `from` to `to`
// are lost while the other direction still flows; stream connections
// between the two fail, since TCP cannot work one way.
func (f *Faults) Drop(from, to string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.initLocked()
	f.blocked[link{from, to}] = true
	f.mu.Unlock()
	f.killCut()
}

// Delay holds every write from → to (stream writes and gossip packets) for
// d before passing it on; d <= 0 removes the delay.
func (f *Faults) Delay(from, to string, d time.Duration) {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.initLocked()
	defer f.mu.Unlock()
	if d <= 0 {
		delete(f.delays, link{from, to})
		return
	}
	f.delays[link{from, to}] = d
}

// Heal removes every partition, isolation, drop and delay. Registered
// addresses stay. Connections cut earlier stay closed; peers redial.
func (f *Faults) Heal() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.isolated)
	clear(f.blocked)
	clear(f.delays)
}

// IsCut reports whether traffic from → to is cut (one direction).
func (f *Faults) IsCut(from, to string) bool {
	if f == nil {
		return false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.cutLocked(from, to)
}

func (f *Faults) cutLocked(from, to string) bool {
	if from == "" || to == "" || from == to {
		return false
	}
	return f.isolated[from] || f.isolated[to] || f.blocked[link{from, to}]
}

// linkCut reports whether a stream between a and b is cut: either
// direction suffices.
func (f *Faults) linkCut(a, b string) bool {
	if f == nil {
		return false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.cutLocked(a, b) || f.cutLocked(b, a)
}

func (f *Faults) delay(from, to string) time.Duration {
	if f == nil {
		return 0
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.delays[link{from, to}]
}

// nameOf returns the peer registered for addr, or "".
func (f *Faults) nameOf(addr string) string {
	if f == nil {
		return ""
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.names[canonicalAddr(addr)]
}

func (f *Faults) track(c *peerConn) {
	f.mu.Lock()
	f.initLocked()
	f.conns[c] = struct{}{}
	f.mu.Unlock()
}

func (f *Faults) untrack(c *peerConn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

// killCut closes every tracked connection whose link is now cut. Checking
// on each Read and Write alone would leave a connection blocked in Read
// (an idle Raft follower, a pooled RPC connection) alive until its next
// byte; closing it makes a partition take effect at once.
func (f *Faults) killCut() {
	f.mu.RLock()
	var victims []*peerConn
	for c := range f.conns {
		if f.cutLocked(c.local, c.remote) || f.cutLocked(c.remote, c.local) {
			victims = append(victims, c)
		}
	}
	f.mu.RUnlock()
	for _, c := range victims {
		c.kill()
	}
}

// peerConn is a connection between two named peers. It applies Faults on
// every Read and Write and runs onClose once when closed.
type peerConn struct {
	net.Conn          // what the owner reads and writes (TLS or raw TCP)
	raw      net.Conn // the socket under it
	local    string
	remote   string // "" when the far end is not known by name
	faults   *Faults

	closeOnce sync.Once
	closeErr  error
	onClose   func()
}

// newPeerConn wraps c; onClose (may be nil) runs once when it closes. It is
// set before the connection is tracked: from then on a fault (Isolate) may
// close it from another goroutine.
func newPeerConn(c, raw net.Conn, local, remote string, faults *Faults, onClose func()) *peerConn {
	pc := &peerConn{Conn: c, raw: raw, local: local, remote: remote, faults: faults, onClose: onClose}
	if faults != nil && remote != "" {
		faults.track(pc)
	}
	return pc
}

// Peer is the remote peer's name, "" if unknown.
func (c *peerConn) Peer() string { return c.remote }

func (c *peerConn) cutErr(op string) error {
	return fmt.Errorf("%s %s → %s: %w", op, c.local, c.remote, ErrPartitioned)
}

func (c *peerConn) Read(p []byte) (int, error) {
	if c.faults == nil {
		return c.Conn.Read(p)
	}
	if c.faults.linkCut(c.local, c.remote) {
		c.kill()
		return 0, c.cutErr("read")
	}
	n, err := c.Conn.Read(p)
	if err != nil && c.faults.linkCut(c.local, c.remote) {
		// The read failed because killCut closed the socket: report why.
		return n, c.cutErr("read")
	}
	return n, err
}

func (c *peerConn) Write(p []byte) (int, error) {
	if c.faults == nil {
		return c.Conn.Write(p)
	}
	if d := c.faults.delay(c.local, c.remote); d > 0 {
		// The one sleep that is the feature: an injected link latency.
		time.Sleep(d)
	}
	if c.faults.linkCut(c.local, c.remote) {
		c.kill()
		return 0, c.cutErr("write")
	}
	n, err := c.Conn.Write(p)
	if err != nil && c.faults.linkCut(c.local, c.remote) {
		return n, c.cutErr("write")
	}
	return n, err
}

// kill drops the socket the way a partition would: no TLS close_notify,
// which could block on a peer that no longer reads.
func (c *peerConn) kill() {
	_ = c.raw.Close()
	_ = c.Close()
}

func (c *peerConn) Close() error {
	c.closeOnce.Do(func() {
		if c.faults != nil && c.remote != "" {
			c.faults.untrack(c)
		}
		c.closeErr = c.Conn.Close()
		if c.onClose != nil {
			c.onClose()
		}
	})
	return c.closeErr
}
