package kafka

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// TestCommitLog: per (group, cluster) the latest commit time and the union
// of topics, bounded in topics and entries, listed per cluster by group.
func TestCommitLog(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newCommitLog(func() time.Time { return now })
	s := &Server{commits: l}
	l.record("g1", "east", []string{"orders", "carts"}, now)
	l.record("g1", "east", []string{"orders", ""}, now.Add(time.Second))
	l.record("g0", "east", []string{"logs"}, now)
	l.record("g1", "west", []string{"orders"}, now)
	l.record("", "east", []string{"x"}, now) // no group: ignored
	got := s.GroupCommits("east")
	want := []GroupCommit{
		{Group: "g0", Topics: []string{"logs"}, At: now.UnixMilli()},
		{Group: "g1", Topics: []string{"carts", "orders"}, At: now.Add(time.Second).UnixMilli()},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GroupCommits(east) = %+v, want %+v", got, want)
	}
	for i := range maxCommitLogTopics + 10 {
		l.record("big", "east", []string{fmt.Sprintf("t%03d", i)}, now)
	}
	for _, gc := range s.GroupCommits("east") {
		if gc.Group == "big" && len(gc.Topics) != maxCommitLogTopics {
			t.Fatalf("big holds %d topics, want the cap %d", len(gc.Topics), maxCommitLogTopics)
		}
	}
	for i := range maxCommitLogGroups + 5 {
		l.record(fmt.Sprintf("g-%d", i), "south", []string{"t"}, now)
	}
	if n := l.m.len(); n > maxCommitLogGroups {
		t.Fatalf("%d entries, want at most %d", n, maxCommitLogGroups)
	}
	// A day idle: gone.
	now = now.Add(commitLogTTL)
	if got := s.GroupCommits("west"); len(got) != 0 {
		t.Fatalf("expired entries listed: %+v", got)
	}
}
