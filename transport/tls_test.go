package transport

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestTLS(t *testing.T) {
	ca := newTestCA(t)
	withTLS := ca.peerTLS(t)
	other := newTestCA(t)
	tests := []struct {
		name         string
		server       func(*Config)
		client       func(*Config)
		wantOK       bool
		wantIdentity bool // refused by the name check, counted
	}{
		{
			name:   "mutual tls",
			server: withTLS,
			client: withTLS,
			wantOK: true,
		},
		{
			name:   "plaintext dialer to tls port",
			server: withTLS,
			client: func(*Config) {},
		},
		{
			name:   "tls dialer to plaintext port",
			server: func(*Config) {},
			client: withTLS,
		},
		{
			name:   "server cert from another ca",
			server: withTLS,
			client: func(c *Config) {
				c.ServerTLS, c.ClientTLS = tlsConfigs(other.issue(t, c.Name), other.pool)
			},
		},
		{
			name:   "client cert from another ca",
			server: withTLS,
			client: func(c *Config) {
				c.ServerTLS, _ = tlsConfigs(ca.issue(t, c.Name), ca.pool)
				_, c.ClientTLS = tlsConfigs(other.issue(t, c.Name), ca.pool)
			},
		},
		{
			// A cluster member's valid certificate, but it claims to be
			// someone else: the CA alone used to let it through.
			name:   "client cert names another peer",
			server: withTLS,
			client: func(c *Config) {
				c.ServerTLS, c.ClientTLS = tlsConfigs(ca.issue(t, "mallory"), ca.pool)
			},
			wantIdentity: true,
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
				if n := srv.IdentityRefused(); n != 0 {
					t.Fatalf("IdentityRefused = %d after a good peer", n)
				}
				return
			}
			if err == nil {
				t.Fatalf("call succeeded (as %q) across mismatched tls", r.From)
			}
			var uae x509.UnknownAuthorityError
			t.Logf("refused as expected: %v (unknown authority: %v)", err, errors.As(err, &uae))
			if tt.wantIdentity {
				waitFor(t, 5*time.Second, "identity refusal counted", func() bool { return srv.IdentityRefused() == 1 })
			}
			// The server still serves good peers.
			good := newMux(t, "good", nil, tt.server)
			if err := good.Client().Call(callCtx(t, 5*time.Second), srv.Addr().String(), "ping", nil, nil); err != nil {
				t.Fatalf("good peer after a refused one: %v", err)
			}
		})
	}
}

// TestTLSRaftIdentity: a Raft connection claiming another peer's name is
// refused too; Raft and RPC share the acceptor's check.
func TestTLSRaftIdentity(t *testing.T) {
	ca := newTestCA(t)
	b := newMux(t, "b", nil, ca.peerTLS(t))
	liar := newMux(t, "a", nil, func(c *Config) { c.ServerTLS, c.ClientTLS = tlsConfigs(ca.issue(t, "not-a"), ca.pool) })
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := b.RaftLayer().Accept(); err == nil {
			accepted <- c
		}
	}()
	c, err := liar.RaftLayer().Dial(raft.ServerAddress(b.Addr().String()), 2*time.Second)
	if err == nil {
		defer c.Close()
		if !closedByPeer(c, 5*time.Second) {
			t.Fatal("raft connection with a certificate for another name stayed open")
		}
	}
	waitFor(t, 5*time.Second, "identity refusal counted", func() bool { return b.IdentityRefused() == 1 })
	select {
	case c := <-accepted:
		t.Fatalf("raft layer accepted a connection from %q", c.(*peerConn).Peer())
	default:
	}
}

// TestCallPeer: a caller that names the peer it means to reach gets
// ErrIdentity when the serving certificate names another, before its
// request runs; without TLS there is nothing to prove.
func TestCallPeer(t *testing.T) {
	ca := newTestCA(t)
	calls := 0
	var mu sync.Mutex
	count := func(ctx context.Context, from, method string, body []byte) ([]byte, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		return echoHandler(ctx, from, method, body)
	}
	srv := newMux(t, "srv", nil, ca.peerTLS(t))
	srv.HandleRPC(count)
	cli := newMux(t, "cli", nil, ca.peerTLS(t))
	addr := srv.Addr().String()
	if err := cli.Client().CallPeer(callCtx(t, 5*time.Second), "srv", addr, "ping", nil, nil); err != nil {
		t.Fatalf("CallPeer to the named peer: %v", err)
	}
	err := cli.Client().CallPeer(callCtx(t, 5*time.Second), "leader", addr, "ping", nil, nil)
	if !errors.Is(err, ErrIdentity) || !strings.Contains(err.Error(), `"leader"`) {
		t.Fatalf("CallPeer to the wrong peer: %v, want ErrIdentity naming it", err)
	}
	mu.Lock()
	if calls != 1 {
		t.Fatalf("handler ran %d times, want 1: a refused call must not be sent", calls)
	}
	mu.Unlock()
	if err := cli.Client().CallPeer(callCtx(t, 5*time.Second), "", addr, "ping", nil, nil); !errors.Is(err, ErrIdentity) {
		t.Fatalf("CallPeer without a name: %v", err)
	}
	// Plaintext: nothing to prove, the call goes through.
	p := newMux(t, "p", nil, nil)
	p.HandleRPC(echoHandler)
	q := newMux(t, "q", nil, nil)
	if err := q.Client().CallPeer(callCtx(t, 5*time.Second), "anyone", p.Addr().String(), "ping", nil, nil); err != nil {
		t.Fatalf("plaintext CallPeer: %v", err)
	}
}

func TestTLSRaftDial(t *testing.T) {
	withTLS := newTestCA(t).peerTLS(t)
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
