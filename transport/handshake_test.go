package transport

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestHandshakeRoundTrip(t *testing.T) {
	for _, h := range []handshake{
		{Type: TypeRaft, Name: "n1"},
		{Type: TypeRPC, Name: "peer-2.dc_a"},
		{Type: TypeRPC, Name: strings.Repeat("x", MaxNameLen)},
	} {
		b := h.appendTo(nil)
		got, err := readHandshake(bytes.NewReader(append(b, "raft bytes follow"...)))
		if err != nil {
			t.Fatalf("read %+v: %v", h, err)
		}
		if got != h {
			t.Fatalf("round trip %+v = %+v", h, got)
		}
	}
}

func TestReadHandshakeRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "magic"},
		{"http", []byte("GET / HTTP/1.1\r\n"), "HTTP"},
		{"tls", []byte{0x16, 0x03, 0x01, 0x00}, "TLS"},
		{"raw raft rpc", []byte{0x00, 0x01}, "protocol v1"},
		{"header cut", []byte{handshakeV1, 1}, "header"},
		{"type zero", []byte{handshakeV1, 0, 2, 'n', '1'}, "connection type 0"},
		{"type unknown", []byte{handshakeV1, 9, 2, 'n', '1'}, "connection type 9"},
		{"name length zero", []byte{handshakeV1, 1, 0}, "length 0"},
		{"name too long", []byte{handshakeV1, 1, MaxNameLen + 1}, "length"},
		{"name cut", []byte{handshakeV1, 2, 5, 'n', '1'}, "peer name"},
		{"name bad byte", []byte{handshakeV1, 2, 3, 'n', ' ', '1'}, "peer name"},
		{"name nul", []byte{handshakeV1, 2, 2, 'n', 0}, "peer name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readHandshake(bytes.NewReader(tt.in))
			if !errors.Is(err, ErrHandshake) {
				t.Fatalf("err = %v, want ErrHandshake", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// TestBadHandshakeClosesOnlyThatConnection sends the peer port what other
// clients might, and checks each is closed while the listener keeps
// serving real peers.
func TestBadHandshakeClosesOnlyThatConnection(t *testing.T) {
	srv := newMux(t, "srv", nil, func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	srv.HandleRPC(echoHandler)
	cli := newMux(t, "cli", nil, nil)
	call := func() {
		t.Helper()
		var r echoReply
		if err := cli.Client().Call(callCtx(t, 5*time.Second), srv.Addr().String(), "ping", nil, &r); err != nil {
			t.Fatalf("call after bad handshakes: %v", err)
		}
	}
	call()
	tests := []struct {
		name string
		send []byte
	}{
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"tls client hello", []byte{0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5}},
		{"unknown type", []byte{handshakeV1, 7, 2, 'n', '1'}},
		{"bad name", []byte{handshakeV1, 2, 3, 'a', '/', 'b'}},
		{"cut short", []byte{handshakeV1, 2}},
		{"silent", nil}, // closed after HandshakeTimeout
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rawDial(t, srv)
			if len(tt.send) > 0 {
				if _, err := c.Write(tt.send); err != nil {
					t.Fatal(err)
				}
			}
			if !closedByPeer(c, 5*time.Second) {
				t.Fatal("server kept a connection with a bad handshake open")
			}
			call()
		})
	}
}

func TestParseMemberlistLine(t *testing.T) {
	tests := []struct {
		in    string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1\n", slog.LevelDebug, "Stream connection from=127.0.0.1:1"},
		{"[INFO] memberlist: Marking n3 as failed\n", slog.LevelInfo, "Marking n3 as failed"},
		{"[WARN] memberlist: Was able to connect to n2 over TCP but UDP probes failed\n", slog.LevelWarn, "Was able to connect to n2 over TCP but UDP probes failed"},
		{"[ERR] memberlist: Failed to send ping: boom\n", slog.LevelError, "Failed to send ping: boom"},
		{"[ERROR] memberlist: x", slog.LevelError, "x"},
		{"Err: Could not set the deadline: x\n", slog.LevelInfo, "Err: Could not set the deadline: x"},
		{"[weird] memberlist: y", slog.LevelInfo, "[weird] memberlist: y"},
	}
	for _, tt := range tests {
		level, msg := parseMemberlistLine(tt.in)
		if level != tt.level || msg != tt.msg {
			t.Errorf("parse(%q) = %v %q, want %v %q", tt.in, level, msg, tt.level, tt.msg)
		}
	}
}

var _ io.Writer = memberlistLogWriter{}
