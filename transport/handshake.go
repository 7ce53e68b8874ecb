package transport

import (
	"fmt"
	"io"
)

// ConnType says what a peer-port connection carries after its handshake.
type ConnType byte

// Connection types. Numbers are wire values: append only.
const (
	TypeRaft ConnType = 1
	TypeRPC  ConnType = 2
)

func (t ConnType) String() string {
	switch t {
	case TypeRaft:
		return "raft"
	case TypeRPC:
		return "rpc"
	default:
		return fmt.Sprintf("type(%d)", byte(t))
	}
}

// handshakeV1 opens every peer-port connection: "Switchyard peer protocol,
// version 1". It is chosen to be none of the first bytes another client
// might send to this port by mistake: not ASCII (HTTP, Kafka's size
// prefix of a small frame starts 0x00), not a TLS record type (0x14-0x18,
// so a TLS dialer hitting a plaintext port is told apart), not a raw
// hashicorp/raft rpc type (0-3) or a memberlist message type. A future
// incompatible handshake takes another value, and an old peer refuses it
// cleanly.
const handshakeV1 byte = 0xF1

// handshake is what the dialer tells the acceptor before anything else:
//
//	[0xF1][conn type][name length 1..MaxNameLen][name]
type handshake struct {
	Type ConnType
	Name string
}

func (h handshake) appendTo(b []byte) []byte {
	b = append(b, handshakeV1, byte(h.Type), byte(len(h.Name)))
	return append(b, h.Name...)
}

// readHandshake reads exactly one handshake from r. It checks each fixed
// byte before reading further, so garbage fails on its first byte rather
// than waiting for more input.
func readHandshake(r io.Reader) (handshake, error) {
	var hdr [3]byte
	if _, err := io.ReadFull(r, hdr[:1]); err != nil {
		return handshake{}, fmt.Errorf("%w: reading magic byte: %w", ErrHandshake, err)
	}
	if hdr[0] != handshakeV1 {
		return handshake{}, fmt.Errorf("%w: first byte %#02x is not the switchyard peer protocol v1 (%#02x)%s", ErrHandshake, hdr[0], handshakeV1, firstByteHint(hdr[0]))
	}
	if _, err := io.ReadFull(r, hdr[1:]); err != nil {
		return handshake{}, fmt.Errorf("%w: reading header: %w", ErrHandshake, err)
	}
	h := handshake{Type: ConnType(hdr[1])}
	if h.Type != TypeRaft && h.Type != TypeRPC {
		return handshake{}, fmt.Errorf("%w: unknown connection type %d", ErrHandshake, hdr[1])
	}
	n := int(hdr[2])
	if n == 0 || n > MaxNameLen {
		return handshake{}, fmt.Errorf("%w: peer name length %d outside 1..%d", ErrHandshake, n, MaxNameLen)
	}
	name := make([]byte, n)
	if _, err := io.ReadFull(r, name); err != nil {
		return handshake{}, fmt.Errorf("%w: reading peer name: %w", ErrHandshake, err)
	}
	h.Name = string(name)
	if err := validName(h.Name); err != nil {
		return handshake{}, fmt.Errorf("%w: peer name: %w", ErrHandshake, err)
	}
	return h, nil
}

// firstByteHint names the likely mistake behind a wrong first byte, for
// the operator reading the log.
func firstByteHint(b byte) string {
	switch {
	case b >= 0x14 && b <= 0x18:
		return " (a TLS client on a plaintext peer port?)"
	case b >= 'A' && b <= 'Z':
		return " (an HTTP or text client on the peer port?)"
	default:
		return ""
	}
}
