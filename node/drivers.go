package node

import (
	"context"
	"sync"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// runDrivers is the loop the leader's job drivers share (migrations,
// offset resets): on every state change, and every retry interval, it
// starts drive for each key live lists that has no driver running, one
// goroutine per key, until ctx (the leadership term) ends; it returns once
// every driver has stopped. A driver returns when its job has ended or
// the term has.
func (n *Node) runDrivers(ctx context.Context, retry time.Duration, live func(*fsm.State) []string, drive func(context.Context, string)) {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		running = map[string]bool{}
	)
	defer wg.Wait()
	t := time.NewTicker(retry)
	defer t.Stop()
	for {
		changed := n.stateChanged.wait()
		for _, key := range live(n.fsm.State()) {
			mu.Lock()
			busy := running[key]
			running[key] = true
			mu.Unlock()
			if busy {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(running, key)
					mu.Unlock()
				}()
				drive(ctx, key)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}
