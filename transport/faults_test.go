package transport

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestFaultsRules(t *testing.T) {
	type pair struct{ from, to string }
	peers := []string{"a", "b", "c"}
	tests := []struct {
		name  string
		apply func(f *Faults)
		cut   []pair // every other directed pair is open
	}{
		{"none", func(*Faults) {}, nil},
		{"partition", func(f *Faults) { f.Partition("a", "b") }, []pair{{"a", "b"}, {"b", "a"}}},
		{"isolate", func(f *Faults) { f.Isolate("c") }, []pair{{"a", "c"}, {"c", "a"}, {"b", "c"}, {"c", "b"}}},
		{"drop one way", func(f *Faults) { f.Drop("a", "c") }, []pair{{"a", "c"}}},
		{"delay is not a cut", func(f *Faults) { f.Delay("a", "b", time.Second) }, nil},
		{"heal", func(f *Faults) { f.Partition("a", "b"); f.Isolate("c"); f.Drop("b", "a"); f.Heal() }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFaults()
			tt.apply(f)
			want := map[pair]bool{}
			for _, p := range tt.cut {
				want[p] = true
			}
			for _, from := range peers {
				for _, to := range peers {
					if from == to {
						continue
					}
					if got := f.IsCut(from, to); got != want[pair{from, to}] {
						t.Errorf("IsCut(%s, %s) = %v, want %v", from, to, got, !got)
					}
				}
			}
			if f.IsCut("a", "") || f.IsCut("", "a") || f.IsCut("c", "c") {
				t.Error("unknown or self peers must never be cut")
			}
		})
	}

	f := NewFaults()
	f.Isolate("late")
	if !f.IsCut("newcomer", "late") {
		t.Error("isolation must cover peers that appear later")
	}
	f.Delay("a", "b", time.Second)
	f.Delay("a", "b", 0)
	if d := f.delay("a", "b"); d != 0 {
		t.Errorf("Delay 0 left %v", d)
	}
}

func TestZeroFaults(t *testing.T) {
	var f Faults
	if f.IsCut("a", "b") {
		t.Fatal("zero Faults cuts")
	}
	f.Partition("a", "b")
	f.Register("b", "127.0.0.1:2")
	if !f.IsCut("a", "b") || f.nameOf("127.0.0.1:2") != "b" {
		t.Fatal("zero Faults did not take rules")
	}
	f.Heal()
	if f.IsCut("a", "b") {
		t.Fatal("heal left a cut")
	}
}

func TestNilFaults(t *testing.T) {
	var f *Faults
	f.Register("a", "127.0.0.1:1")
	f.Partition("a", "b")
	f.Isolate("a")
	f.Drop("a", "b")
	f.Delay("a", "b", time.Second)
	f.Heal()
	if f.IsCut("a", "b") || f.linkCut("a", "b") || f.delay("a", "b") != 0 || f.nameOf("127.0.0.1:1") != "" {
		t.Fatal("a nil *Faults must report no faults")
	}
}

func TestRPCPartition(t *testing.T) {
	f := NewFaults()
	a := newMux(t, "a", f, nil)
	b := newMux(t, "b", f, nil)
	c := newMux(t, "c", f, nil)
	started := make(chan struct{}, 1)
	handler := func(ctx context.Context, _, method string, _ []byte) ([]byte, error) {
		if method == "block" {
			started <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return []byte(`"ok"`), nil
	}
	for _, m := range []*Mux{a, b, c} {
		m.HandleRPC(handler)
	}
	call := func(from, to *Mux, method string) error {
		return from.Client().Call(callCtx(t, 20*time.Second), to.Addr().String(), method, nil, nil)
	}
	if err := call(a, b, "ping"); err != nil {
		t.Fatal(err)
	}

	// A call in flight when the partition starts fails at once.
	done := make(chan error, 1)
	go func() { done <- call(a, b, "block") }()
	<-started
	f.Partition("a", "b")
	select {
	case err := <-done:
		if !errors.Is(err, ErrPartitioned) {
			t.Fatalf("in-flight call = %v, want ErrPartitioned", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight call outlived the partition")
	}

	// New calls fail fast, both ways, however long their deadline.
	for _, dir := range [][2]*Mux{{a, b}, {b, a}} {
		start := time.Now()
		if err := call(dir[0], dir[1], "ping"); !errors.Is(err, ErrPartitioned) {
			t.Fatalf("%s → %s = %v, want ErrPartitioned", dir[0].Name(), dir[1].Name(), err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("partitioned call took %v", el)
		}
	}
	// Other pairs are untouched.
	if err := call(a, c, "ping"); err != nil {
		t.Fatalf("a → c during a/b partition: %v", err)
	}
	if err := call(c, b, "ping"); err != nil {
		t.Fatalf("c → b during a/b partition: %v", err)
	}

	// Isolation cuts c from both, drop cuts the stream both ways.
	f.Heal()
	f.Isolate("c")
	if err := call(a, c, "ping"); !errors.Is(err, ErrPartitioned) {
		t.Fatalf("a → isolated c = %v", err)
	}
	f.Heal()
	f.Drop("b", "c")
	if err := call(c, b, "ping"); !errors.Is(err, ErrPartitioned) {
		t.Fatalf("c → b with b → c dropped = %v, want ErrPartitioned", err)
	}

	// Heal: everyone talks again, over fresh connections.
	f.Heal()
	for _, dir := range [][2]*Mux{{a, b}, {b, a}, {a, c}, {c, b}} {
		if err := call(dir[0], dir[1], "ping"); err != nil {
			t.Fatalf("%s → %s after heal: %v", dir[0].Name(), dir[1].Name(), err)
		}
	}
}

// TestAcceptRefusesCutPeer dials around the dialer's own check (the
// dialer's address is unknown to Faults) and sees the acceptor refuse.
func TestAcceptRefusesCutPeer(t *testing.T) {
	f := NewFaults()
	a := newMux(t, "a", nil, nil) // a's Faults is nil: it dials anything
	b := newMux(t, "b", f, nil)
	b.HandleRPC(echoHandler)
	f.Isolate("a")
	err := a.Client().Call(callCtx(t, 5*time.Second), b.Addr().String(), "ping", nil, nil)
	if !errors.Is(err, ErrConnLost) {
		t.Fatalf("call from a cut peer = %v, want the acceptor to drop it (ErrConnLost)", err)
	}
	f.Heal()
	if err := a.Client().Call(callCtx(t, 5*time.Second), b.Addr().String(), "ping", nil, nil); err != nil {
		t.Fatalf("after heal: %v", err)
	}
}

func TestDelay(t *testing.T) {
	f := NewFaults()
	a := newMux(t, "a", f, nil)
	b := newMux(t, "b", f, nil)
	b.HandleRPC(echoHandler)
	call := func() time.Duration {
		start := time.Now()
		if err := a.Client().Call(callCtx(t, 10*time.Second), b.Addr().String(), "ping", nil, nil); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	call() // dial outside the measured calls
	const d = 150 * time.Millisecond
	f.Delay("a", "b", d)
	if el := call(); el < d {
		t.Fatalf("delayed call took %v, want at least %v", el, d)
	}
	f.Delay("b", "a", d)
	if el := call(); el < 2*d {
		t.Fatalf("call delayed both ways took %v, want at least %v", el, 2*d)
	}
}
