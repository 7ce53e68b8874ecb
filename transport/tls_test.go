package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestTLS(t *testing.T) {
	srvTLS, cliTLS := testTLS(t)
	otherCert, otherPool := selfSigned(t, "other-cluster")
	tests := []struct {
		name       string
		server     func(*Config)
		client     func(*Config)
		wantOK     bool
		wantErrMsg string
	}{
		{
			name:   "mutual tls",
			server: func(c *Config) { c.ServerTLS, c.ClientTLS = srvTLS, cliTLS },
			client: func(c *Config) { c.ServerTLS, c.ClientTLS = srvTLS, cliTLS },
			wantOK: true,
		},
		{
			name:   "plaintext dialer to tls port",
			server: func(c *Config) { c.ServerTLS, c.ClientTLS = srvTLS, cliTLS },
			client: func(*Config) {},
		},
		{
			name:   "tls dialer to plaintext port",
			server: func(*Config) {},
			client: func(c *Config) { c.ServerTLS, c.ClientTLS = srvTLS, cliTLS },
		},
		{
			name:   "server cert from another ca",
			server: func(c *Config) { c.ServerTLS, c.ClientTLS = srvTLS, cliTLS },
			client: func(c *Config) {
				c.ServerTLS = srvTLS
				c.ClientTLS = &tls.Config{Certificates: []tls.Certificate{otherCert}, RootCAs: otherPool, MinVersion: tls.VersionTLS13}
			},
		},
		{
			name:   "client cert from another ca",
			server: func(c *Config) { c.ServerTLS, c.ClientTLS = srvTLS, cliTLS },
			client: func(c *Config) {
				c.ServerTLS = srvTLS
				c.ClientTLS = &tls.Config{Certificates: []tls.Certificate{otherCert}, RootCAs: srvTLS.ClientCAs, MinVersion: tls.VersionTLS13}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newMux(t, "srv", nil, tt.server)
			srv.HandleRPC(echoHandler)
			cli := newMux(t, "cli", nil, tt.client)
			var r echoReply
			err := cli.Client().Call(callCtx(t, 5*time.Second), srv.Addr().String(), "ping", nil, &r)
			if tt.wantOK {
				if err != nil || r.From != "cli" {
					t.Fatalf("call over tls: %+v %v", r, err)
				}
				return
			}
			if err == nil {
				t.Fatal("call succeeded across mismatched tls")
			}
			var uae x509.UnknownAuthorityError
			t.Logf("refused as expected: %v (unknown authority: %v)", err, errors.As(err, &uae))
			// The server still serves good peers.
			good := newMux(t, "good", nil, tt.server)
			if err := good.Client().Call(callCtx(t, 5*time.Second), srv.Addr().String(), "ping", nil, nil); err != nil {
				t.Fatalf("good peer after a refused one: %v", err)
			}
		})
	}
}

func TestTLSRaftDial(t *testing.T) {
	srvTLS, cliTLS := testTLS(t)
	withTLS := func(c *Config) { c.ServerTLS, c.ClientTLS = srvTLS, cliTLS }
	a := newMux(t, "a", nil, withTLS)
	b := newMux(t, "b", nil, withTLS)
	accepted := make(chan error, 1)
	go func() {
		c, err := b.RaftLayer().Accept()
		if err == nil {
			buf := make([]byte, 5)
			_, err = c.Read(buf)
			if err == nil && string(buf) != "hello" {
				err = errors.New("wrong bytes: " + string(buf))
			}
			if err == nil && c.(*peerConn).Peer() != "a" {
				err = errors.New("accepted conn names peer " + c.(*peerConn).Peer())
			}
			c.Close()
		}
		accepted <- err
	}()
	c, err := a.RaftLayer().Dial(raft.ServerAddress(b.Addr().String()), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-accepted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("raft layer never accepted")
	}
}
