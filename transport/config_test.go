package transport

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	srv, cli := testTLS(t)
	noClientCerts := srv.Clone()
	noClientCerts.ClientAuth = tls.VerifyClientCertIfGiven
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means valid
	}{
		{"loopback ephemeral", Config{Name: "n1", BindAddr: "127.0.0.1:0"}, ""},
		{"host name bind", Config{Name: "n1", BindAddr: "localhost:7000"}, ""},
		{"wildcard with advertise", Config{Name: "n1", BindAddr: "0.0.0.0:7000", AdvertiseAddr: "10.1.2.3:7000"}, ""},
		{"advertise host name", Config{Name: "n1", BindAddr: ":7000", AdvertiseAddr: "peer1.example:7000"}, ""},
		{"tls both", Config{Name: "n1", BindAddr: "127.0.0.1:0", ServerTLS: srv, ClientTLS: cli}, ""},
		{"empty name", Config{BindAddr: "127.0.0.1:0"}, "peer name: empty"},
		{"bad name byte", Config{Name: "n 1", BindAddr: "127.0.0.1:0"}, "peer name"},
		{"long name", Config{Name: strings.Repeat("a", MaxNameLen+1), BindAddr: "127.0.0.1:0"}, "peer name"},
		{"no port", Config{Name: "n1", BindAddr: "127.0.0.1"}, "bind address"},
		{"bad port", Config{Name: "n1", BindAddr: "127.0.0.1:http"}, "bind address"},
		{"port range", Config{Name: "n1", BindAddr: "127.0.0.1:70000"}, "bind address"},
		{"wildcard v4 no advertise", Config{Name: "n1", BindAddr: "0.0.0.0:7000"}, "advertise"},
		{"wildcard v6 no advertise", Config{Name: "n1", BindAddr: "[::]:7000"}, "advertise"},
		{"empty host no advertise", Config{Name: "n1", BindAddr: ":7000"}, "advertise"},
		{"advertise wildcard", Config{Name: "n1", BindAddr: ":7000", AdvertiseAddr: "0.0.0.0:7000"}, "not dialable"},
		{"advertise port 0", Config{Name: "n1", BindAddr: ":0", AdvertiseAddr: "10.1.2.3:0"}, "port 0"},
		{"advertise no port", Config{Name: "n1", BindAddr: ":0", AdvertiseAddr: "10.1.2.3"}, "advertise"},
		{"server tls only", Config{Name: "n1", BindAddr: "127.0.0.1:0", ServerTLS: srv}, "TLS"},
		{"client tls only", Config{Name: "n1", BindAddr: "127.0.0.1:0", ClientTLS: cli}, "TLS"},
		{"tls without client certs", Config{Name: "n1", BindAddr: "127.0.0.1:0", ServerTLS: noClientCerts, ClientTLS: cli}, "client certificates"},
		{"tiny frames", Config{Name: "n1", BindAddr: "127.0.0.1:0", MaxFrameBytes: 100}, "max frame bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want error containing %q", err, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want errors.Is ErrInvalidConfig", err)
			}
		})
	}
}

func TestListenAdvertise(t *testing.T) {
	f := NewFaults()
	m := newMux(t, "n1", f, nil)
	addr := m.Addr().String()
	if strings.HasSuffix(addr, ":0") || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("Addr = %q, want the bound loopback port", addr)
	}
	if got := f.nameOf(addr); got != "n1" {
		t.Fatalf("faults name of %s = %q, want n1", addr, got)
	}
	if got := m.RaftLayer().Addr().String(); got != addr {
		t.Fatalf("raft layer Addr = %q, want %q", got, addr)
	}

	m2 := newMux(t, "n2", f, func(c *Config) { c.AdvertiseAddr = "peer2.example:7100" })
	if got := m2.Addr().String(); got != "peer2.example:7100" {
		t.Fatalf("Addr = %q, want the advertise address", got)
	}
	if got := f.nameOf("PEER2.example:7100"); got != "n2" {
		t.Fatalf("faults name of advertise address = %q, want n2", got)
	}

	if _, err := Listen(Config{Name: "bad", BindAddr: "0.0.0.0:0"}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Listen on wildcard without advertise = %v, want ErrInvalidConfig", err)
	}
}

func TestCanonicalAddr(t *testing.T) {
	tests := []struct{ in, want string }{
		{"127.0.0.1:7000", "127.0.0.1:7000"},
		{"[::ffff:127.0.0.1]:7000", "127.0.0.1:7000"},
		{"[::1]:7000", "[::1]:7000"},
		{"Peer1.Example:7000", "peer1.example:7000"},
	}
	for _, tt := range tests {
		if got := canonicalAddr(tt.in); got != tt.want {
			t.Errorf("canonicalAddr(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
