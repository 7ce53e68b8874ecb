package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRPCConcurrentCalls(t *testing.T) {
	a := newMux(t, "a", nil, nil)
	b := newMux(t, "b", nil, nil)
	a.HandleRPC(echoHandler)
	b.HandleRPC(echoHandler)

	type req struct {
		Caller int `json:"caller"`
		Seq    int `json:"seq"`
	}
	const callers, perCaller = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, 2*callers)
	for i := range callers {
		for _, dir := range []struct {
			from, to *Mux
		}{{a, b}, {b, a}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := range perCaller {
					var r echoReply
					if err := dir.from.Client().Call(callCtx(t, 10*time.Second), dir.to.Addr().String(), "echo", req{i, seq}, &r); err != nil {
						errs <- err
						return
					}
					var back req
					if err := json.Unmarshal(r.Body, &back); err != nil || back != (req{i, seq}) || r.From != dir.from.Name() || r.Method != "echo" {
						errs <- fmt.Errorf("caller %d seq %d: got %+v / %s (%v)", i, seq, r, r.Body, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// All of it went over one pooled connection per direction.
	a.client.mu.Lock()
	n := len(a.client.conns)
	a.client.mu.Unlock()
	if n != 1 {
		t.Fatalf("a pools %d connections, want 1", n)
	}
}

// TestRPCServedConcurrently makes the handler wait until four requests are
// in it at once: served one by one, the calls would time out.
func TestRPCServedConcurrently(t *testing.T) {
	a := newMux(t, "a", nil, nil)
	b := newMux(t, "b", nil, nil)
	const n = 4
	var inside atomic.Int32
	all := make(chan struct{})
	b.HandleRPC(func(ctx context.Context, _, _ string, _ []byte) ([]byte, error) {
		if inside.Add(1) == n {
			close(all)
		}
		select {
		case <-all:
			return []byte(`"ok"`), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var s string
			if err := a.Client().Call(callCtx(t, 5*time.Second), b.Addr().String(), "barrier", nil, &s); err != nil || s != "ok" {
				t.Errorf("call: %q %v", s, err)
			}
		}()
	}
	wg.Wait()
}

func TestRPCErrorCodes(t *testing.T) {
	a := newMux(t, "a", nil, nil)
	b := newMux(t, "b", nil, func(c *Config) { c.MaxFrameBytes = 1024 })
	b.HandleRPC(func(_ context.Context, _, method string, _ []byte) ([]byte, error) {
		switch method {
		case "rpc-error":
			return nil, &RPCError{Code: "not_leader", Message: "leader is c"}
		case "wrapped":
			return nil, fmt.Errorf("apply route: %w", &RPCError{Code: "conflict", Message: "route exists"})
		case "plain":
			return nil, errors.New("disk on fire")
		case "panic":
			panic("handler bug")
		case "huge":
			return json.Marshal(strings.Repeat("x", 2048))
		case "empty":
			return nil, nil
		}
		return nil, &RPCError{Code: "unknown_method", Message: method}
	})
	tests := []struct {
		method   string
		wantCode string
		wantMsg  string
	}{
		{"rpc-error", "not_leader", "leader is c"},
		{"wrapped", "conflict", "route exists"},
		{"plain", CodeInternal, "disk on fire"},
		{"panic", CodeInternal, "panicked"},
		{"huge", CodeTooLarge, "exceeds"},
		{"nope", "unknown_method", "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			err := a.Client().Call(callCtx(t, 5*time.Second), b.Addr().String(), tt.method, nil, nil)
			var re *RPCError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v, want an *RPCError", err)
			}
			if re.Code != tt.wantCode || !strings.Contains(re.Message, tt.wantMsg) {
				t.Fatalf("got %q %q, want %q containing %q", re.Code, re.Message, tt.wantCode, tt.wantMsg)
			}
			if !errors.Is(err, &RPCError{Code: tt.wantCode}) {
				t.Fatalf("errors.Is by code failed for %v", err)
			}
		})
	}
	// An empty response leaves resp alone and is not an error.
	resp := map[string]int{"kept": 1}
	if err := a.Client().Call(callCtx(t, 5*time.Second), b.Addr().String(), "empty", nil, &resp); err != nil || resp["kept"] != 1 {
		t.Fatalf("empty response: %v %v", resp, err)
	}

	// Before HandleRPC a peer answers unavailable.
	c := newMux(t, "c", nil, nil)
	err := a.Client().Call(callCtx(t, 5*time.Second), c.Addr().String(), "x", nil, nil)
	if !errors.Is(err, &RPCError{Code: CodeUnavailable}) {
		t.Fatalf("call before HandleRPC = %v, want code %s", err, CodeUnavailable)
	}
}

func TestRPCContextDeadline(t *testing.T) {
	a := newMux(t, "a", nil, nil)
	b := newMux(t, "b", nil, nil)
	handlerSaw := make(chan error, 1)
	b.HandleRPC(func(ctx context.Context, _, method string, _ []byte) ([]byte, error) {
		if method == "ping" {
			return []byte(`"pong"`), nil
		}
		if _, ok := ctx.Deadline(); !ok {
			handlerSaw <- errors.New("handler context has no deadline")
			return nil, nil
		}
		<-ctx.Done()
		handlerSaw <- ctx.Err()
		return nil, ctx.Err()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := a.Client().Call(ctx, b.Addr().String(), "slow", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("call returned after %v, long past its deadline", el)
	}
	select {
	case err := <-handlerSaw:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("handler context ended with %v, want the caller's deadline", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler context never ended")
	}
	// The connection survived the abandoned call.
	var s string
	if err := a.Client().Call(callCtx(t, 5*time.Second), b.Addr().String(), "ping", nil, &s); err != nil || s != "pong" {
		t.Fatalf("call after deadline: %q %v", s, err)
	}
	// A context already past its deadline fails without a round trip.
	past, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	if err := a.Client().Call(past, b.Addr().String(), "ping", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expired ctx: %v", err)
	}
}

func TestRPCServerCloseMidCall(t *testing.T) {
	a := newMux(t, "a", nil, nil)
	b := newMux(t, "b", nil, nil)
	started := make(chan struct{})
	b.HandleRPC(func(ctx context.Context, _, _ string, _ []byte) ([]byte, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	done := make(chan error, 1)
	go func() { done <- a.Client().Call(callCtx(t, 30*time.Second), b.Addr().String(), "block", nil, nil) }()
	<-started
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrConnLost) {
			t.Fatalf("err = %v, want ErrConnLost", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("call still waiting after the server closed")
	}
	// The broken connection left the pool; the next call dials and fails
	// because nobody listens.
	err := a.Client().Call(callCtx(t, 5*time.Second), b.Addr().String(), "block", nil, nil)
	if err == nil || errors.Is(err, ErrConnLost) {
		t.Fatalf("call to a closed peer = %v, want a dial error", err)
	}
	// Calls from a closed Mux fail with ErrClosed.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Client().Call(callCtx(t, time.Second), b.Addr().String(), "x", nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("call on closed mux = %v, want ErrClosed", err)
	}
}

func TestRPCOversizeFrame(t *testing.T) {
	a := newMux(t, "a", nil, nil) // default 16 MiB limit
	c := newMux(t, "c", nil, nil)
	small := newMux(t, "small", nil, func(cfg *Config) { cfg.MaxFrameBytes = 1024 })
	b := newMux(t, "b", nil, func(cfg *Config) { cfg.MaxFrameBytes = 1024 })
	b.HandleRPC(echoHandler)
	addr := b.Addr().String()
	ping := func(m *Mux) error { return m.Client().Call(callCtx(t, 5*time.Second), addr, "ping", nil, nil) }
	if err := ping(a); err != nil {
		t.Fatal(err)
	}
	if err := ping(c); err != nil {
		t.Fatal(err)
	}
	pooled := func(m *Mux) *clientConn {
		m.client.mu.Lock()
		defer m.client.mu.Unlock()
		return m.client.conns[addr]
	}
	cBefore := pooled(c)

	// A raw frame announcing more than b allows: b closes that connection.
	raw := rawDial(t, b)
	msg := handshake{Type: TypeRPC, Name: "raw"}.appendTo(nil)
	msg = binary.BigEndian.AppendUint32(msg, 1<<20)
	if _, err := raw.Write(msg); err != nil {
		t.Fatal(err)
	}
	if !closedByPeer(raw, 5*time.Second) {
		t.Fatal("oversize frame did not close the connection")
	}

	// a sends a request b will not take: a's connection is lost, its call
	// fails and is not retried.
	big := strings.Repeat("x", 4096)
	if err := a.Client().Call(callCtx(t, 5*time.Second), addr, "echo", big, nil); !errors.Is(err, ErrConnLost) {
		t.Fatalf("oversize request = %v, want ErrConnLost", err)
	}
	// Only those connections: c's pooled connection still serves.
	if err := ping(c); err != nil {
		t.Fatalf("other connection after oversize frames: %v", err)
	}
	if pooled(c) != cBefore {
		t.Fatal("c's pooled connection was replaced")
	}
	// a redials for its next call.
	if err := ping(a); err != nil {
		t.Fatalf("a after its connection was closed: %v", err)
	}

	// A caller that knows its own limit refuses before sending anything.
	if err := ping(small); err != nil {
		t.Fatal(err)
	}
	before := pooled(small)
	if err := small.Client().Call(callCtx(t, 5*time.Second), addr, "echo", big, nil); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("local oversize = %v, want ErrFrameTooLarge", err)
	}
	if err := ping(small); err != nil || pooled(small) != before {
		t.Fatalf("local oversize broke the pooled connection: %v", err)
	}
}

func TestRPCResponseFrameFromCallerClosesConnection(t *testing.T) {
	b := newMux(t, "b", nil, nil)
	b.HandleRPC(echoHandler)
	raw := rawDial(t, b)
	msg := handshake{Type: TypeRPC, Name: "raw"}.appendTo(nil)
	msg = appendFrame(msg, &frame{Kind: frameRequest, ID: 5, Str: "echo", Body: []byte(`1`)})
	msg = appendFrame(msg, &frame{Kind: frameResponse, ID: 6, Body: []byte(`2`)})
	if _, err := raw.Write(msg); err != nil {
		t.Fatal(err)
	}
	// The request before the bad frame may or may not be answered; the
	// connection must end either way.
	if !closedByPeer(raw, 5*time.Second) {
		t.Fatal("response frame from a caller did not close the connection")
	}
}

func TestRPCRawRequest(t *testing.T) {
	// Speaks the wire format by hand, as DESIGN.md documents it.
	b := newMux(t, "b", nil, nil)
	b.HandleRPC(func(_ context.Context, from, method string, body []byte) ([]byte, error) {
		return []byte(fmt.Sprintf("%q", from+" "+method+" "+string(body))), nil
	})
	raw := rawDial(t, b)
	msg := handshake{Type: TypeRPC, Name: "hand"}.appendTo(nil)
	msg = appendFrame(msg, &frame{Kind: frameRequest, ID: 42, Timeout: 5000, Str: "hello", Body: []byte(`{}`)})
	if _, err := raw.Write(msg); err != nil {
		t.Fatal(err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	var pre [4]byte
	if _, err := io.ReadFull(raw, pre[:]); err != nil {
		t.Fatal(err)
	}
	rest := make([]byte, binary.BigEndian.Uint32(pre[:]))
	if _, err := io.ReadFull(raw, rest); err != nil {
		t.Fatal(err)
	}
	f, err := parseFrame(rest)
	if err != nil {
		t.Fatal(err)
	}
	if f.Kind != frameResponse || f.ID != 42 || !bytes.Equal(f.Body, []byte(`"hand hello {}"`)) {
		t.Fatalf("response %+v %s", f, f.Body)
	}
}
