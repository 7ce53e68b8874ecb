package node

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"
)

// TestProbeKafkaPortsRefused: a peer whose Kafka port refuses connections
// stops being presented at the next probe, without waiting for
// memberlist's dead verdict, and is presented again once its port
// accepts; a peer that accepts stays presented throughout.
func TestProbeKafkaPortsRefused(t *testing.T) {
	g, err := newGossip("self", peerMeta{}, newNotifier(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// A port nothing listens on: take one and close it.
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	goneAddr := gone.Addr().String()
	gone.Close()

	g.mu.Lock()
	g.members["up"] = &member{name: "up", state: memberAlive, meta: peerMeta{Kafka: up.Addr().String()}}
	g.members["gone"] = &member{name: "gone", state: memberAlive, meta: peerMeta{Kafka: goneAddr}}
	g.mu.Unlock()
	g.publishLive()
	if !g.isLive("gone") || !g.isLive("up") {
		t.Fatal("alive members not presented before any probe")
	}

	ctx := context.Background()
	next := g.probeKafkaPorts(ctx, 0, 2*time.Second)
	if g.isLive("gone") {
		t.Fatalf("peer whose Kafka port %s refuses is still presented", goneAddr)
	}
	if !g.isLive("up") || !g.isLive("self") {
		t.Fatal("a peer whose port accepts, or this peer, is no longer presented")
	}
	if st := g.snapshot()["gone"].state; st != memberSuspect {
		t.Fatalf("refused peer reported %q, want suspect", st)
	}
	if st := g.snapshot()["up"].state; st != memberAlive {
		t.Fatalf("accepting peer reported %q, want alive", st)
	}

	// The peer comes back on the same port.
	back, err := net.Listen("tcp", goneAddr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", goneAddr, err)
	}
	defer back.Close()
	go func() {
		for {
			c, err := back.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	g.probeKafkaPorts(ctx, next, 2*time.Second)
	if !g.isLive("gone") {
		t.Fatal("peer whose Kafka port accepts again is not presented")
	}

	// Dead per memberlist: the refusal is forgotten, memberlist rules.
	back.Close()
	g.probeKafkaPorts(ctx, 0, 2*time.Second)
	if g.isLive("gone") {
		t.Fatal("refused again but presented")
	}
	g.mu.Lock()
	g.members["gone"].state = memberDead
	g.mu.Unlock()
	g.probeKafkaPorts(ctx, 0, 2*time.Second)
	g.mu.Lock()
	stale := g.refused["gone"]
	g.mu.Unlock()
	if stale {
		t.Fatal("a dead peer's refusal is kept")
	}
}
