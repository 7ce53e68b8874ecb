package kafka

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A test proxy is started in three steps because its state names its own
// address: listenServer binds the listener, the caller writes the state
// (its peer's KafkaAddr is srv.Addr()), then serveServer runs it, and
// waitReady, where the test wants it, waits for the backends' metadata.
// Several peers all listen before any of them serves, so each peer's state
// can name every other one.

// newTestBackend is NewBackend(cfg), failing the test on error.
func newTestBackend(t testing.TB, cfg BackendConfig) *Backend {
	t.Helper()
	be, err := NewBackend(cfg)
	if err != nil {
		t.Fatalf("backend %s: %v", cfg.Name, err)
	}
	return be
}

// listenServer builds a Server with cfg over view, serving bes, and binds
// its listener (on a port the kernel picks unless cfg.ListenAddr is set).
// m nil: metrics on a registry of its own that no one reads.
func listenServer(t testing.TB, cfg Config, view View, m *Metrics, bes ...*Backend) *Server {
	t.Helper()
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	if m == nil {
		m = NewMetrics(prometheus.NewRegistry(), 0)
	}
	srv, err := NewServer(cfg, view, m)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetBackends(bes)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	return srv
}

// serveServer runs srv and bes until the test ends, or until the stop
// it returns is called; either stops them and waits until they have
// returned.
func serveServer(t testing.TB, srv *Server, bes ...*Backend) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, be := range bes {
		wg.Add(1)
		go func() { defer wg.Done(); be.Run(ctx) }()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ctx); err != nil {
			t.Error(err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// waitReady waits until every backend of bes has loaded its first
// metadata, failing the test after 30 s.
func waitReady(t testing.TB, bes ...*Backend) {
	t.Helper()
	for _, be := range bes {
		select {
		case <-be.Ready():
		case <-time.After(30 * time.Second):
			t.Fatalf("backend %s metadata not loaded", be.Name())
		}
	}
}
