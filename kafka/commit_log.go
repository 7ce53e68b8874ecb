package kafka

import (
	"slices"
	"sort"
	"sync"
	"time"
)

// commitLog remembers, per consumer group and backend cluster, when this
// peer last forwarded an offset commit of the group to the cluster and for
// which topics. It is soft state for failover's resume policies
// (docs/regions.md): the leader gathers it from every peer when a cluster
// fails over, to know which groups consumed the moved topics and, for the
// timestamp policy, from when they resume. Bounded: at most
// maxCommitLogGroups (group, cluster) pairs, least recently committed
// evicted, entries idle for a day dropped, maxCommitLogTopics topics each.
type commitLog struct {
	mu sync.Mutex // orders the read-modify-write of one entry
	m  *lru[commitKey, commitSeen]
}

const (
	maxCommitLogGroups = 10_000
	maxCommitLogTopics = 64
	commitLogTTL       = 24 * time.Hour
)

type commitKey struct{ group, cluster string }

type commitSeen struct {
	at     time.Time
	topics []string // sorted; never written once stored
}

func newCommitLog(now func() time.Time) *commitLog {
	return &commitLog{m: newLRU[commitKey, commitSeen](maxCommitLogGroups, commitLogTTL, 0, now)}
}

// record notes a commit of group's offsets for topics forwarded to cluster.
func (l *commitLog) record(group, cluster string, topics []string, at time.Time) {
	if group == "" || cluster == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := commitKey{group, cluster}
	old, _ := l.m.get(k)
	merged := old.topics
	for _, t := range topics {
		if t == "" || len(merged) >= maxCommitLogTopics {
			continue
		}
		if i, found := slices.BinarySearch(merged, t); !found {
			merged = slices.Insert(slices.Clone(merged), i, t)
		}
	}
	l.m.put(k, commitSeen{at: at, topics: merged})
}

// GroupCommit is a group's last offset commit this peer forwarded to one
// cluster.
type GroupCommit struct {
	Group  string   `json:"group"`
	Topics []string `json:"topics"`
	// At is when, unix milliseconds.
	At int64 `json:"at"`
}

// GroupCommits lists the groups this peer forwarded commits of to cluster,
// sorted by group.
func (s *Server) GroupCommits(cluster string) []GroupCommit {
	var out []GroupCommit
	s.commits.m.each(func(k commitKey, v commitSeen) {
		if k.cluster == cluster {
			out = append(out, GroupCommit{Group: k.group, Topics: slices.Clone(v.topics), At: v.at.UnixMilli()})
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out
}
