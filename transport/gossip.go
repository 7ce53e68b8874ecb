package transport

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// GossipConfig configures one peer's memberlist. Zero tuning knobs keep
// memberlist's LAN defaults; tests shorten them to detect failures in
// well under a second.
type GossipConfig struct {
	// Name is the memberlist node name; it must be the peer's Config.Name,
	// since Faults rules and RPC "from" use the same names.
	Name string
	// BindAddr is ip:port for gossip (UDP and TCP on the same port); port
	// 0 picks a free one. An empty host binds every interface.
	BindAddr string
	// AdvertiseAddr is the ip:port other members reach this one on. Empty
	// means the bound address, which needs a concrete bind IP.
	AdvertiseAddr string
	// Faults, when set, drops gossip packets and refuses gossip streams
	// between cut peers.
	Faults *Faults
	Logger *slog.Logger
	// Keys, when not empty, encrypt and authenticate all gossip with AES-GCM
	// (memberlist's keyring): Keys[0] encrypts, every key decrypts, and
	// unencrypted or undecryptable packets and streams are refused in both
	// directions. The returned Config's Keyring takes later rotations
	// (InstallGossipKeys). Empty: gossip is plain text and any process that
	// can reach the port can join.
	Keys [][]byte

	ProbeInterval       time.Duration // LAN default 1s
	ProbeTimeout        time.Duration // LAN default 500ms
	SuspicionMult       int           // LAN default 4
	GossipInterval      time.Duration // LAN default 200ms
	TCPTimeout          time.Duration // LAN default 10s
	PushPullInterval    time.Duration // LAN default 30s
	GossipToTheDeadTime time.Duration // LAN default 30s
}

// Validate reports a configuration that cannot work.
func (gc *GossipConfig) Validate() error {
	if err := validName(gc.Name); err != nil {
		return fmt.Errorf("%w: gossip name: %w", ErrInvalidConfig, err)
	}
	host, _, err := splitHostPort(gc.BindAddr, true)
	if err != nil {
		return fmt.Errorf("%w: gossip bind address %q: %w", ErrInvalidConfig, gc.BindAddr, err)
	}
	// memberlist binds and advertises IP literals only.
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%w: gossip bind address %q: host must be an IP address", ErrInvalidConfig, gc.BindAddr)
		}
	}
	if gc.AdvertiseAddr == "" {
		if isWildcardHost(host) {
			return fmt.Errorf("%w: gossip bind address %q listens on every interface: set a gossip advertise address", ErrInvalidConfig, gc.BindAddr)
		}
	} else {
		if err := validDialAddr(gc.AdvertiseAddr); err != nil {
			return fmt.Errorf("%w: gossip advertise address %q: %w", ErrInvalidConfig, gc.AdvertiseAddr, err)
		}
		ah, _, _ := net.SplitHostPort(gc.AdvertiseAddr)
		if _, err := netip.ParseAddr(ah); err != nil {
			return fmt.Errorf("%w: gossip advertise address %q: host must be an IP address", ErrInvalidConfig, gc.AdvertiseAddr)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"probe interval", gc.ProbeInterval}, {"probe timeout", gc.ProbeTimeout},
		{"gossip interval", gc.GossipInterval}, {"tcp timeout", gc.TCPTimeout},
		{"push/pull interval", gc.PushPullInterval}, {"gossip-to-the-dead time", gc.GossipToTheDeadTime},
	} {
		if d.v < 0 {
			return fmt.Errorf("%w: gossip %s %v is negative", ErrInvalidConfig, d.name, d.v)
		}
	}
	for i, k := range gc.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return fmt.Errorf("%w: gossip key %d: %w", ErrInvalidConfig, i+1, err)
		}
	}
	if gc.SuspicionMult < 0 {
		return fmt.Errorf("%w: gossip suspicion multiplier %d is negative", ErrInvalidConfig, gc.SuspicionMult)
	}
	if gc.ProbeInterval > 0 && gc.ProbeTimeout > 0 && gc.ProbeTimeout >= gc.ProbeInterval {
		return fmt.Errorf("%w: gossip probe timeout %v must be shorter than the probe interval %v", ErrInvalidConfig, gc.ProbeTimeout, gc.ProbeInterval)
	}
	return nil
}

// NewMemberlistConfig returns memberlist's LAN configuration for this peer,
// with its name, addresses, tuning knobs and a logger that routes
// memberlist's lines to slog (component=gossip). The caller adds its
// delegates (Delegate, Events, ...) and passes it to memberlist.Create.
//
// The gossip port is bound here, not in memberlist.Create, so that port 0
// resolves to the real port before anything advertises it (BindPort and
// AdvertisePort hold it) and Faults can map it to Name. The returned
// Config therefore owns open sockets through its Transport: memberlist's
// Shutdown closes them, and a caller that does not get as far as a
// successful memberlist.Create must call Transport.Shutdown itself.
func NewMemberlistConfig(gc GossipConfig) (*memberlist.Config, error) {
	if err := gc.Validate(); err != nil {
		return nil, err
	}
	lg := gc.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	lg = lg.With("component", "gossip", "peer", gc.Name)
	stdLogger := log.New(memberlistLogWriter{log: lg}, "", 0)

	mc := memberlist.DefaultLANConfig()
	mc.Name = gc.Name
	mc.Logger = stdLogger
	mc.LogOutput = nil
	setIf(&mc.ProbeInterval, gc.ProbeInterval)
	setIf(&mc.ProbeTimeout, gc.ProbeTimeout)
	setIf(&mc.GossipInterval, gc.GossipInterval)
	setIf(&mc.TCPTimeout, gc.TCPTimeout)
	setIf(&mc.PushPullInterval, gc.PushPullInterval)
	setIf(&mc.GossipToTheDeadTime, gc.GossipToTheDeadTime)
	if gc.SuspicionMult > 0 {
		mc.SuspicionMult = gc.SuspicionMult
	}

	if len(gc.Keys) > 0 {
		kr, err := memberlist.NewKeyring(gc.Keys[1:], gc.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("%w: gossip keyring: %v", ErrInvalidConfig, err)
		}
		mc.Keyring = kr
		// Both on: a peer must neither accept plain-text gossip (a keyless
		// process joining) nor send it (leaking membership and metadata).
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}

	host, port, _ := splitHostPort(gc.BindAddr, true)
	if host == "" {
		host = "0.0.0.0"
	}
	nt, err := newNetTransport(host, port, stdLogger)
	if err != nil {
		return nil, fmt.Errorf("gossip port on %s: %w", gc.BindAddr, err)
	}
	bound := nt.GetAutoBindPort()
	mc.BindAddr, mc.BindPort = host, bound
	mc.AdvertiseAddr, mc.AdvertisePort = host, bound
	if gc.AdvertiseAddr != "" {
		ah, ap, _ := splitHostPort(gc.AdvertiseAddr, false)
		mc.AdvertiseAddr, mc.AdvertisePort = ah, ap
	}
	advert := net.JoinHostPort(mc.AdvertiseAddr, strconv.Itoa(mc.AdvertisePort))
	if gc.Faults != nil {
		boundAddr := ""
		if !isWildcardHost(host) {
			boundAddr = net.JoinHostPort(host, strconv.Itoa(bound))
		}
		gc.Faults.Register(gc.Name, advert, boundAddr)
	}
	mc.Transport = &gossipTransport{NetTransport: nt, self: gc.Name, faults: gc.Faults}
	lg.Info("gossip port bound", "bind", net.JoinHostPort(host, strconv.Itoa(bound)), "advertise", advert, "faults", gc.Faults != nil, "encrypted", len(gc.Keys) > 0)
	return mc, nil
}

func setIf(dst *time.Duration, v time.Duration) {
	if v > 0 {
		*dst = v
	}
}

// newNetTransport binds memberlist's UDP+TCP transport. With port 0 the
// kernel picks the TCP port and UDP must then get the same number, which
// another process can hold; memberlist retries that race in Create, so
// this does too.
func newNetTransport(host string, port int, lg *log.Logger) (*memberlist.NetTransport, error) {
	tries := 1
	if port == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{host},
			BindPort:  port,
			Logger:    lg,
		})
		if err == nil {
			return nt, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, err
}

// gossipTransport is memberlist's NetTransport with a Shutdown that cannot
// hang and, when faults is set, Faults applied on the sending side.
//
// Incoming UDP packets and TCP streams carry only addresses (a stream's
// source port is ephemeral), so the sender is where a rule can be matched;
// every in-process peer of a test shares one Faults, so each direction is
// enforced by the peer that sends it.
type gossipTransport struct {
	*memberlist.NetTransport
	self   string
	faults *Faults // nil: no faults
}

var _ memberlist.NodeAwareTransport = (*gossipTransport)(nil)

// Shutdown drains the transport's channels while it stops. NetTransport's
// listener goroutines hand each packet and stream to an unbuffered channel
// and its Shutdown waits for them, so with no memberlist reading (Create
// never called or failed, or memberlist already past its listen loops) a
// single inbound connection would block Shutdown forever.
func (t *gossipTransport) Shutdown() error {
	done := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case c := <-t.NetTransport.StreamCh():
				_ = c.Close()
			case <-t.NetTransport.PacketCh():
			case <-done:
				return
			}
		}
	}()
	err := t.NetTransport.Shutdown()
	close(done)
	<-drained
	return err
}

func (t *gossipTransport) peer(a memberlist.Address) string {
	if a.Name != "" {
		return a.Name
	}
	return t.faults.nameOf(a.Addr)
}

func (t *gossipTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress drops a packet to a cut peer silently, as a lossy network
// would: memberlist must find out through missing acks.
func (t *gossipTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	to := t.peer(a)
	if t.faults.IsCut(t.self, to) {
		return time.Now(), nil
	}
	if d := t.faults.delay(t.self, to); d > 0 {
		// Send later rather than block memberlist's probe or gossip loop,
		// which would skew its own timing rather than the network's.
		buf := append([]byte(nil), b...)
		time.AfterFunc(d, func() { _, _ = t.NetTransport.WriteToAddress(buf, a) })
		return time.Now(), nil
	}
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *gossipTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout refuses a stream to a cut peer and wraps the others so
// that a later partition closes them at once.
func (t *gossipTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	to := t.peer(a)
	if t.faults.linkCut(t.self, to) {
		return nil, fmt.Errorf("gossip dial %s at %s: %w", to, a.Addr, ErrPartitioned)
	}
	c, err := t.NetTransport.DialAddressTimeout(a, timeout)
	if err != nil || t.faults == nil || to == "" {
		return c, err
	}
	return newPeerConn(c, c, t.self, to, t.faults, nil), nil
}

// memberlistLogWriter turns memberlist's standard-library log lines, which
// carry their level as a "[DEBUG]"-style prefix, into slog records.
type memberlistLogWriter struct{ log *slog.Logger }

func (w memberlistLogWriter) Write(p []byte) (int, error) {
	level, msg := parseMemberlistLine(string(p))
	if w.log.Enabled(context.Background(), level) {
		w.log.Log(context.Background(), level, msg)
	}
	return len(p), nil
}

// parseMemberlistLine splits "[WARN] memberlist: message" into a level and
// "message". A line without a known prefix logs at info, whole.
func parseMemberlistLine(line string) (slog.Level, string) {
	line = strings.TrimRight(line, "\r\n")
	level := slog.LevelInfo
	if strings.HasPrefix(line, "[") {
		if i := strings.IndexByte(line, ']'); i > 0 {
			known := true
			switch line[1:i] {
			case "TRACE", "DEBUG":
				level = slog.LevelDebug
			case "INFO":
				level = slog.LevelInfo
			case "WARN", "WARNING":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			default:
				known = false
			}
			if known {
				line = strings.TrimSpace(line[i+1:])
			}
		}
	}
	return level, strings.TrimPrefix(line, "memberlist: ")
}
