package transport

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// RaftLayer returns the raft.StreamLayer over the peer port, for
// raft.NewNetworkTransportWithConfig. Every call returns the same layer.
// Closing it (raft's NetworkTransport does on Close) stops Accept and
// Dial but leaves the Mux and its RPC serving; the Mux's Close closes it
// too.
func (m *Mux) RaftLayer() raft.StreamLayer { return m.raft }

type raftLayer struct {
	m    *Mux
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

var _ raft.StreamLayer = (*raftLayer)(nil)

func (l *raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, ErrClosed
	case <-l.m.ctx.Done():
		return nil, ErrClosed
	}
}

func (l *raftLayer) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the advertised address, which raft stores as this server's.
func (l *raftLayer) Addr() net.Addr { return l.m.Addr() }

func (l *raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	select {
	case <-l.done:
		return nil, ErrClosed
	default:
	}
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return l.m.dial(ctx, string(address), TypeRaft)
}

// deliver hands an accepted Raft connection to Accept, or closes it when
// no one will accept it any more.
func (l *raftLayer) deliver(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		_ = c.Close()
	case <-l.m.ctx.Done():
		_ = c.Close()
	}
}
