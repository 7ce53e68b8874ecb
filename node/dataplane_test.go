package node

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/kafka"
)

// TestSyncBackendsStopsOutsideLock: a backend whose stop blocks (its loop
// still finishing a lookup) must not block readiness and the admin API,
// which read the running backends under dp.mu, nor keep the server on the
// old set.
func TestSyncBackendsStopsOutsideLock(t *testing.T) {
	n := &Node{log: slog.New(slog.DiscardHandler)}
	srv, err := kafka.NewServer(kafka.Config{ListenAddr: "127.0.0.1:0"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	be, err := kafka.NewBackend(kafka.BackendConfig{Name: "gone", Bootstrap: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	stopped := make(chan struct{})
	dp := &dataPlane{srv: srv, running: map[string]*backendRun{
		"gone": {def: fsm.Cluster{Name: "gone"}, be: be, cancel: func() {}, done: release},
	}}
	srv.SetBackends([]*kafka.Backend{be})
	go func() {
		defer close(stopped)
		n.syncBackends(context.Background(), dp, &fsm.State{})
	}()
	read := make(chan bool, 1)
	go func() {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if _, ok := dp.backend("gone"); !ok {
				read <- true
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		read <- false
	}()
	select {
	case ok := <-read:
		if !ok {
			t.Fatal("the deleted backend is still listed")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("reading the running backends blocked behind a backend's stop")
	}
	select {
	case <-stopped:
		t.Fatal("syncBackends returned before the deleted backend stopped")
	default:
	}
	close(release)
	<-stopped
}
