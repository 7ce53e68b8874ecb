package transport

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Defaults for Config fields left zero.
const (
	DefaultDialTimeout      = 5 * time.Second
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultMaxFrameBytes    = 16 << 20
	DefaultMaxInFlight      = 256
)

// MaxNameLen bounds a peer name; it travels in every handshake behind a
// one-byte length.
const MaxNameLen = 128

// Config configures one peer's peer port.
type Config struct {
	// Name identifies this peer to the others (the handshake carries it,
	// RPC handlers see it as "from", Faults rules name it). It must be
	// unique in the cluster: letters, digits, '.', '_' and '-', at most
	// MaxNameLen bytes.
	Name string
	// BindAddr is the host:port to listen on; port 0 picks a free port.
	BindAddr string
	// AdvertiseAddr is the host:port other peers dial (and Raft stores as
	// this server's address). Empty means the bound address, which needs
	// a concrete BindAddr host (not 0.0.0.0, :: or empty).
	AdvertiseAddr string
	// ServerTLS, when set, wraps accepted connections in TLS; ClientTLS is
	// then required and used for dialing. Both or neither: every peer both
	// accepts and dials, so a half-TLS peer could not talk to its own kind.
	// ServerTLS must require and verify client certificates: the acceptor
	// holds the name a dialer claims to its certificate's common name or
	// DNS SANs (see identity.go), so every peer's certificate must name it.
	ServerTLS, ClientTLS *tls.Config
	// Faults, when set, applies test fault rules to this peer's traffic.
	Faults *Faults
	Logger *slog.Logger
	// DialTimeout bounds dialing a peer, TLS and handshake included
	// (default 5s).
	DialTimeout time.Duration
	// HandshakeTimeout bounds how long an accepted connection may take to
	// complete TLS and the handshake (default 5s); a silent connection is
	// closed after it.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds one frame write on an RPC connection
	// (default 10s); a peer that stops reading loses the connection
	// rather than blocking its callers forever.
	WriteTimeout time.Duration
	// MaxFrameBytes bounds one RPC frame, header included, in both
	// directions (default 16 MiB). A larger request fails at the caller;
	// a larger incoming frame closes that connection.
	MaxFrameBytes int
	// MaxInFlight bounds the requests served at once on one RPC
	// connection (default 256); further requests wait unread, which pushes
	// back on the caller through TCP.
	MaxInFlight int
}

func (c *Config) setDefaults() {
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a configuration that cannot work. Zero durations and
// sizes are valid: they take the defaults.
func (c *Config) Validate() error {
	if err := validName(c.Name); err != nil {
		return fmt.Errorf("%w: peer name: %w", ErrInvalidConfig, err)
	}
	bindHost, _, err := splitHostPort(c.BindAddr, true)
	if err != nil {
		return fmt.Errorf("%w: bind address %q: %w", ErrInvalidConfig, c.BindAddr, err)
	}
	if c.AdvertiseAddr == "" {
		if isWildcardHost(bindHost) {
			return fmt.Errorf("%w: bind address %q listens on every interface: set an advertise address other peers can dial", ErrInvalidConfig, c.BindAddr)
		}
	} else if err := validDialAddr(c.AdvertiseAddr); err != nil {
		return fmt.Errorf("%w: advertise address %q: %w", ErrInvalidConfig, c.AdvertiseAddr, err)
	}
	if (c.ServerTLS == nil) != (c.ClientTLS == nil) {
		return fmt.Errorf("%w: set both server and client TLS or neither", ErrInvalidConfig)
	}
	if c.ServerTLS != nil && c.ServerTLS.ClientAuth != tls.RequireAndVerifyClientCert {
		return fmt.Errorf("%w: server TLS must require and verify client certificates (tls.RequireAndVerifyClientCert): a dialer's name is proven by its certificate", ErrInvalidConfig)
	}
	if c.MaxFrameBytes > 0 && c.MaxFrameBytes < minFrameBytes {
		return fmt.Errorf("%w: max frame bytes %d is below the %d-byte minimum", ErrInvalidConfig, c.MaxFrameBytes, minFrameBytes)
	}
	return nil
}

// validName accepts peer names that are safe in logs, metrics labels and
// the one-byte-length handshake field.
func validName(name string) error {
	if name == "" {
		return fmt.Errorf("empty")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%d bytes, more than %d", len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return fmt.Errorf("%q has byte %q at %d: use letters, digits, '.', '_' or '-'", name, name[i], i)
		}
	}
	return nil
}

func nameByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '.' || b == '_' || b == '-'
}

// splitHostPort splits a host:port and checks the port; zeroOK allows port
// 0 (bind: pick one).
func splitHostPort(addr string, zeroOK bool) (host string, port int, err error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q is not a number from 0 to 65535", ps)
	}
	if p == 0 && !zeroOK {
		return "", 0, fmt.Errorf("port 0 cannot be dialed")
	}
	return host, int(p), nil
}

// validDialAddr checks that addr names one host and a real port.
func validDialAddr(addr string) error {
	host, _, err := splitHostPort(addr, false)
	if err != nil {
		return err
	}
	if isWildcardHost(host) {
		return fmt.Errorf("host %q is not dialable: name this peer's own address", host)
	}
	return nil
}

func isWildcardHost(host string) bool {
	if host == "" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsUnspecified()
}

// canonicalAddr normalises an address for Faults lookups, so that
// "127.0.0.1:7000", "[::ffff:127.0.0.1]:7000" and a *net.UDPAddr's String
// all map to one key. Host names are only lower-cased: resolving them
// here would make a fault lookup do DNS.
func canonicalAddr(addr string) string {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
	}
	return strings.ToLower(addr)
}

// peerAddr is an advertised address as a net.Addr. Advertised addresses
// may be host names, which *net.TCPAddr cannot hold.
type peerAddr string

func (a peerAddr) Network() string { return "tcp" }
func (a peerAddr) String() string  { return string(a) }
