package node

import "sync"

// notifier wakes every waiter on each change: wait returns a channel that
// is closed at the next notify. Waiters re-read what they watch afterwards,
// so notifications coalesce and none is lost between a read and a wait.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func newNotifier() *notifier { return &notifier{ch: make(chan struct{})} }

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	close(n.ch)
	n.ch = make(chan struct{})
	n.mu.Unlock()
}
