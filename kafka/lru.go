package kafka

import (
	"container/list"
	"sync"
	"time"
)

// lru is a bounded map with least-recently-used eviction and an idle
// expiry, for caches whose keys come from clients (coordinator keys,
// producer ids): whatever a client sends, it holds at most max entries.
// An entry expires ttl after its last use (get or put); expired entries
// are dropped when met and from the cold end on every put. It is safe for
// concurrent use.
type lru[K comparable, V any] struct {
	mu  sync.Mutex
	max int
	ttl time.Duration // 0: no expiry
	// protect: when the table is full and its least recently used entry
	// was used within protect, put refuses the new entry instead of
	// evicting it (0: always evict).
	protect time.Duration
	now     func() time.Time
	ll      *list.List // front: most recently used
	m       map[K]*list.Element
	// dropped, when set, is called (under l's lock: it must not call back
	// into l) with every entry evicted or expired; not with one removed.
	dropped func(K, V)
}

type lruEntry[K comparable, V any] struct {
	key  K
	val  V
	used time.Time
}

func newLRU[K comparable, V any](max int, ttl, protect time.Duration, now func() time.Time) *lru[K, V] {
	if max < 1 {
		max = 1
	}
	if now == nil {
		now = time.Now
	}
	return &lru[K, V]{max: max, ttl: ttl, protect: protect, now: now, ll: list.New(), m: map[K]*list.Element{}}
}

// get returns the value of k and marks it used.
func (l *lru[K, V]) get(k K) (V, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var zero V
	el, ok := l.m[k]
	if !ok {
		return zero, false
	}
	e := el.Value.(*lruEntry[K, V])
	now := l.now()
	if l.expired(e, now) {
		l.drop(el)
		return zero, false
	}
	e.used = now
	l.ll.MoveToFront(el)
	return e.val, true
}

// put stores v under k as the most recently used entry, evicting the least
// recently used when full. It reports false, storing nothing, when the
// table is full of entries used within the protect window.
func (l *lru[K, V]) put(k K, v V) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if el, ok := l.m[k]; ok {
		e := el.Value.(*lruEntry[K, V])
		e.val, e.used = v, now
		l.ll.MoveToFront(el)
		return true
	}
	for back := l.ll.Back(); back != nil && l.expired(back.Value.(*lruEntry[K, V]), now); back = l.ll.Back() {
		l.drop(back)
	}
	if l.ll.Len() >= l.max {
		back := l.ll.Back()
		if l.protect > 0 && now.Sub(back.Value.(*lruEntry[K, V]).used) < l.protect {
			return false
		}
		l.drop(back)
	}
	l.m[k] = l.ll.PushFront(&lruEntry[K, V]{key: k, val: v, used: now})
	return true
}

// update sets k's value to f of it when k is held (not expired), and
// reports whether it was; it does not count as a use.
func (l *lru[K, V]) update(k K, f func(V) V) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.m[k]
	if !ok {
		return false
	}
	e := el.Value.(*lruEntry[K, V])
	if l.expired(e, l.now()) {
		return false
	}
	e.val = f(e.val)
	return true
}

// remove deletes k.
func (l *lru[K, V]) remove(k K) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.m[k]; ok {
		l.ll.Remove(el)
		delete(l.m, k)
	}
}

// len is the number of entries held, expired ones not yet dropped included.
func (l *lru[K, V]) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ll.Len()
}

func (l *lru[K, V]) expired(e *lruEntry[K, V], now time.Time) bool {
	return l.ttl > 0 && now.Sub(e.used) >= l.ttl
}

func (l *lru[K, V]) drop(el *list.Element) {
	l.ll.Remove(el)
	e := el.Value.(*lruEntry[K, V])
	delete(l.m, e.key)
	if l.dropped != nil {
		l.dropped(e.key, e.val)
	}
}

// each calls f with every unexpired entry, most recently used first, under
// the lock: f must not call back into l.
func (l *lru[K, V]) each(f func(K, V)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for el := l.ll.Front(); el != nil; el = el.Next() {
		if e := el.Value.(*lruEntry[K, V]); !l.expired(e, now) {
			f(e.key, e.val)
		}
	}
}
