package kafka

import (
	"fmt"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }
func lruKeys(l *lru[string, int]) (ks []string) {
	for el := l.ll.Front(); el != nil; el = el.Next() {
		ks = append(ks, el.Value.(*lruEntry[string, int]).key)
	}
	return ks
}

func TestLRUEvictsLeastRecentlyUsed(t *testing.T) {
	clk := newFakeClock()
	l := newLRU[string, int](3, 0, 0, clk.now)
	for i, k := range []string{"a", "b", "c"} {
		l.put(k, i)
	}
	if _, ok := l.get("a"); !ok { // a is now the most recent
		t.Fatal("a missing")
	}
	if !l.put("d", 3) {
		t.Fatal("put refused with no protect window")
	}
	if _, ok := l.get("b"); ok {
		t.Fatalf("b, the least recently used, survived: %v", lruKeys(l))
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := l.get(k); !ok {
			t.Fatalf("%s evicted: %v", k, lruKeys(l))
		}
	}
	if l.len() != 3 {
		t.Fatalf("len %d, want 3", l.len())
	}
	l.remove("c")
	if _, ok := l.get("c"); ok || l.len() != 2 {
		t.Fatalf("remove left %v", lruKeys(l))
	}
}

func TestLRUExpiresIdleEntries(t *testing.T) {
	clk := newFakeClock()
	l := newLRU[string, int](100, time.Minute, 0, clk.now)
	l.put("old", 1)
	l.put("busy", 2)
	for range 3 {
		clk.add(40 * time.Second)
		if _, ok := l.get("busy"); !ok {
			t.Fatal("an entry in use expired")
		}
	}
	if _, ok := l.get("old"); ok {
		t.Fatal("an entry idle for 2 minutes did not expire")
	}
	// Expired entries at the cold end go on the next put, unread.
	l.put("x", 3)
	clk.add(2 * time.Minute)
	l.put("y", 4)
	if got := lruKeys(l); len(got) != 1 || got[0] != "y" {
		t.Fatalf("entries after expiry: %v", got)
	}
}

func TestLRUProtectRefusesInsteadOfEvictingRecent(t *testing.T) {
	clk := newFakeClock()
	l := newLRU[string, int](2, 0, time.Minute, clk.now)
	l.put("a", 1)
	l.put("b", 2)
	if l.put("c", 3) {
		t.Fatalf("put evicted an entry used within the protect window: %v", lruKeys(l))
	}
	clk.add(2 * time.Minute)
	l.get("b")
	if !l.put("c", 3) {
		t.Fatal("put refused though a was idle past the protect window")
	}
	if _, ok := l.get("a"); ok {
		t.Fatal("a survived")
	}
	if !l.put("b", 9) { // an update needs no room
		t.Fatal("update refused")
	}
}

func TestLRUBoundHolds(t *testing.T) {
	l := newLRU[string, int](50, time.Hour, 0, nil)
	for i := range 10_000 {
		l.put(fmt.Sprint(i), i)
	}
	if l.len() != 50 || len(l.m) != 50 {
		t.Fatalf("len %d, map %d, want 50", l.len(), len(l.m))
	}
}
