package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-proxy/switchyard/internal/rawio"
)

// Mux is one peer's peer port: a single listener whose connections carry
// Raft (RaftLayer) or peer RPC (HandleRPC, Client) after a handshake that
// names the connection type and the dialing peer.
type Mux struct {
	cfg    Config
	log    *slog.Logger
	ln     net.Listener
	advert peerAddr

	// ctx ends when the Mux closes: every connection closes with it
	// (context.AfterFunc) and every handler context derives from it.
	ctx    context.Context
	cancel context.CancelFunc

	handler atomic.Pointer[RPCHandler]
	raft    *raftLayer
	client  *Client

	// identityRefused counts accepted TLS connections refused because the
	// certificate does not name the peer the handshake claims.
	identityRefused atomic.Uint64

	mu        sync.Mutex
	closed    bool
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Listen validates cfg, binds the peer port and starts accepting.
func Listen(cfg Config) (*Mux, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("peer port on %s: %w", cfg.BindAddr, err)
	}
	advert := cfg.AdvertiseAddr
	if advert == "" {
		// Validate made sure the bind host is concrete; the listener's
		// address also carries the real port when BindAddr asked for 0.
		advert = ln.Addr().String()
	}
	cfg.Faults.Register(cfg.Name, advert, ln.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mux{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "transport", "peer", cfg.Name),
		ln:     ln,
		advert: peerAddr(advert),
		ctx:    ctx,
		cancel: cancel,
	}
	m.raft = &raftLayer{m: m, ch: make(chan net.Conn), done: make(chan struct{})}
	m.client = &Client{m: m, conns: map[string]*clientConn{}}
	m.spawn(m.acceptLoop)
	m.log.Info("peer port listening", "bind", ln.Addr().String(), "advertise", advert, "tls", cfg.ServerTLS != nil)
	return m, nil
}

// Addr is the advertised address: what other peers dial and what Raft
// records as this server's address.
func (m *Mux) Addr() net.Addr { return m.advert }

// Name is this peer's name, as sent in every handshake.
func (m *Mux) Name() string { return m.cfg.Name }

// IdentityRefused is how many accepted connections were refused because,
// with TLS on, the dialer's certificate does not name the peer its
// handshake claims (or it sent none).
func (m *Mux) IdentityRefused() uint64 { return m.identityRefused.Load() }

// Client returns the peer RPC client that dials from this Mux (its name,
// TLS and faults). It is closed with the Mux.
func (m *Mux) Client() *Client { return m.client }

// Close stops the listener, closes every connection the Mux accepted or
// dialed (Raft's included) and waits for its goroutines and RPC handlers
// to return. Handlers must honour their context for Close to finish.
func (m *Mux) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		m.cancel()
		if err := m.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			m.closeErr = fmt.Errorf("close peer port %s: %w", m.ln.Addr(), err)
		}
		m.wg.Wait()
		m.log.Info("peer port closed")
	})
	return m.closeErr
}

// spawn runs fn in a goroutine that Close waits for; it reports false (and
// runs nothing) once the Mux is closed, so no goroutine starts after Close
// began waiting.
func (m *Mux) spawn(fn func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		fn()
	}()
	return true
}

func (m *Mux) acceptLoop() {
	var backoff time.Duration
	for {
		nc, err := m.ln.Accept()
		if err != nil {
			if m.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Accept errors such as EMFILE pass; the listener must not die
			// of them. Back off so a persistent one does not spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			m.log.Warn("accept failed", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-m.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		if !m.spawn(func() { m.handleAccepted(nc) }) {
			_ = nc.Close()
			return
		}
	}
}

// handleAccepted runs TLS and the handshake under HandshakeTimeout, then
// hands the connection to Raft or serves RPC on it. Any failure closes
// this connection only.
func (m *Mux) handleAccepted(nc net.Conn) {
	remote := nc.RemoteAddr().String()
	nc = rawio.Clipped(nc)
	// Until the handshake is done nothing else owns nc: close it with the
	// Mux so Close does not wait out a silent client's deadline.
	stop := context.AfterFunc(m.ctx, func() { _ = nc.Close() })
	deadline := time.Now().Add(m.cfg.HandshakeTimeout)
	_ = nc.SetDeadline(deadline)
	var c net.Conn = nc
	var tc *tls.Conn
	if m.cfg.ServerTLS != nil {
		tc = tls.Server(nc, m.cfg.ServerTLS)
		ctx, cancel := context.WithDeadline(m.ctx, deadline)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			stop()
			m.log.Debug("closing peer connection: tls handshake failed", "remote", remote, "err", err)
			_ = nc.Close()
			return
		}
		c = tc
	}
	h, err := readHandshake(c)
	if !stop() {
		_ = nc.Close()
		return
	}
	if err != nil {
		m.log.Debug("closing peer connection: bad handshake", "remote", remote, "err", err)
		_ = nc.Close()
		return
	}
	if tc != nil {
		// The CA proved cluster membership; the name must be proven too, or
		// any peer could speak as any other (as the leader, say).
		if err := CheckPeerName(leafCert(tc), h.Name); err != nil {
			m.identityRefused.Add(1)
			m.log.Warn("refusing peer connection: certificate does not name the claimed peer", "remote", remote, "claimed", h.Name, "type", h.Type, "err", err)
			_ = nc.Close()
			return
		}
	}
	if m.cfg.Faults.linkCut(m.cfg.Name, h.Name) {
		m.log.Debug("refusing peer connection: partitioned", "remote", remote, "from", h.Name, "type", h.Type)
		_ = nc.Close()
		return
	}
	_ = nc.SetDeadline(time.Time{})
	pc := m.adopt(c, nc, h.Name)
	m.log.Debug("peer connection accepted", "remote", remote, "from", h.Name, "type", h.Type)
	switch h.Type {
	case TypeRaft:
		m.raft.deliver(pc)
	case TypeRPC:
		m.serveRPC(pc)
	}
}

// adopt wraps an established connection so that Faults apply to it and it
// closes with the Mux.
func (m *Mux) adopt(c, raw net.Conn, remote string) *peerConn {
	// onClose is set before the AfterFunc exists, since the Mux may be
	// closing right now and run Close at once; a Close that wins that race
	// leaves the AfterFunc registered, and its later Close is a no-op. It is
	// set before the connection is tracked for faults, which may close it
	// from another goroutine (a race the detector caught in TestRaftOverMux).
	var stop atomic.Pointer[func() bool]
	pc := newPeerConn(c, raw, m.cfg.Name, remote, m.cfg.Faults, func() {
		if s := stop.Load(); s != nil {
			(*s)()
		}
	})
	s := context.AfterFunc(m.ctx, func() { _ = pc.Close() })
	stop.Store(&s)
	return pc
}

// dial opens a connection of type typ to the peer port at addr and sends
// the handshake. DialTimeout bounds the whole of it.
func (m *Mux) dial(ctx context.Context, addr string, typ ConnType) (*peerConn, error) {
	if m.ctx.Err() != nil {
		return nil, ErrClosed
	}
	remote := m.cfg.Faults.nameOf(addr)
	if m.cfg.Faults.linkCut(m.cfg.Name, remote) {
		return nil, fmt.Errorf("dial %s at %s: %w", remote, addr, ErrPartitioned)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.DialTimeout)
	defer cancel()
	stop := context.AfterFunc(m.ctx, cancel)
	defer stop()

	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if m.ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("dial peer %s: %w", addr, err)
	}
	nc = rawio.Clipped(nc)
	fail := func(what string, err error) (*peerConn, error) {
		_ = nc.Close()
		if m.ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("%s with peer %s: %w", what, addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	var c net.Conn = nc
	if m.cfg.ClientTLS != nil {
		tc := tls.Client(nc, m.clientTLS(addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail("tls handshake", err)
		}
		c = tc
	}
	if _, err := c.Write(handshake{Type: typ, Name: m.cfg.Name}.appendTo(nil)); err != nil {
		return fail("handshake", err)
	}
	_ = nc.SetDeadline(time.Time{})
	return m.adopt(c, nc, remote), nil
}

// servedNames are the names the serving peer's certificate proves on a
// dialed connection, and whether TLS is on at all.
func servedNames(pc *peerConn) ([]string, bool) {
	tc, ok := pc.Conn.(*tls.Conn)
	if !ok {
		return nil, false
	}
	return CertNames(leafCert(tc)), true
}

// leafCert is the certificate the far end of tc presented, or nil.
func leafCert(tc *tls.Conn) *x509.Certificate {
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		return certs[0]
	}
	return nil
}

// clientTLS fills in ServerName from the dialed host when the config
// leaves it empty, so one ClientTLS serves every peer. A dial knows only
// the address, so what it checks is the chain (a cluster certificate) and
// the address (an IP or DNS SAN for the dialed host, as any TLS client
// would); which peer serves it is checked by the caller that knows the
// name it meant (Client.CallPeer against the certificate's names).
func (m *Mux) clientTLS(addr string) *tls.Config {
	cfg := m.cfg.ClientTLS
	if cfg.ServerName != "" || cfg.InsecureSkipVerify {
		return cfg
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return cfg
	}
	cfg = cfg.Clone()
	cfg.ServerName = host
	return cfg
}
