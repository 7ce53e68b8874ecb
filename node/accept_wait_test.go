package node

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestClientHeldUntilDataPlaneRuns: a client that connects to a peer
// before it is registered (no data plane yet, as a restarted peer replaying
// its state) is held, not closed, and its first request is answered once
// the peer has joined and its data plane runs. Before, the connection was
// closed at once, which franz-go reports as "broker closed the connection
// immediately during api versions negotiation" and fails the records
// waiting on that broker (test/chaos, rolling restart under load).
func TestClientHeldUntilDataPlaneRuns(t *testing.T) {
	w := &testSink{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	base := t.TempDir()
	cfg := func(i int, join []string) Config {
		name := fmt.Sprintf("p%d", i)
		return Config{Name: name, DataDir: filepath.Join(base, name), Version: "test",
			KafkaListen: "127.0.0.1:0", RaftListen: "127.0.0.1:0", GossipListen: "127.0.0.1:0",
			Join: join, BootstrapExpect: 3, AdmitUnproven: true, Timing: FastTiming(), Logger: log.With("peer", name)}
	}
	p0, _ := runPeer(t, cfg(0, nil))
	c, err := net.Dial("tcp", p0.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// ApiVersions v0, correlation id 7, no client id.
	req := []byte{0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff}
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	// Alone, p0 cannot register: the connection waits.
	c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || !isTimeout(err) {
		t.Fatalf("a client of an unregistered peer: read %v, want to be kept waiting", err)
	}
	for i := 1; i < 3; i++ {
		runPeer(t, cfg(i, []string{p0.GossipAddr()}))
	}
	c.SetReadDeadline(time.Now().Add(dataPlaneWait))
	head := make([]byte, 8)
	if _, err := io.ReadFull(c, head); err != nil {
		t.Fatalf("the held client's ApiVersions was not answered once the peer joined: %v", err)
	}
	if corr := binary.BigEndian.Uint32(head[4:]); corr != 7 {
		t.Fatalf("answered correlation id %d, want 7", corr)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
