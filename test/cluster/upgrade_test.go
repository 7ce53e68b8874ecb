package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/node"
)

// TestVersionGatingRollingUpgrade: two builds in one cluster. The newer
// build's command table puts PutQuota in command set 2; peer-2 still runs
// a build that applies set 1. The leader refuses PutQuota (409 through the
// admin API, naming peer-2) while older types still commit, keeps refusing
// while peer-2 is down for its upgrade, and accepts it once peer-2 is back
// gossiping set 2.
func TestVersionGatingRollingUpgrade(t *testing.T) {
	c := newCluster(t, clusterOpts{
		peers:       3,
		commandSets: []uint16{2, 2, 1},
		introduced:  map[fsm.CommandType]uint16{fsm.TypePutQuota: 2},
	})
	c.leader(20 * time.Second)
	setupMain(c)
	quota := &fsm.PutQuota{Quota: fsm.Quota{Topic: "gated", ProduceBytesPerSec: 1 << 20}}

	refused := func(via int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.peers[via].n.Apply(ctx, quota)
		if !errors.Is(err, node.ErrUpgradeRequired) {
			return fmt.Errorf("PutQuota via %s: got %v, want ErrUpgradeRequired", c.peers[via].name, err)
		}
		if !strings.Contains(err.Error(), "peer-2") {
			return fmt.Errorf("PutQuota via %s: %v does not name peer-2", c.peers[via].name, err)
		}
		return nil
	}
	for i := range c.peers {
		if err := refused(i); err != nil {
			t.Fatal(err)
		}
		idx := c.apply(i, route(fmt.Sprintf("old-type-%d", i)), 20*time.Second)
		c.waitApplied(idx, 10*time.Second)
	}
	code, body := put(c.peers[0].admin, "/v1/quotas/gated", `{"produce_bytes_per_sec": 1048576}`)
	if code != http.StatusConflict || !strings.Contains(body, "peer-2") || !strings.Contains(body, "upgrade") {
		t.Fatalf("PUT /v1/quotas/gated with peer-2 on set 1: %d %s, want 409 naming peer-2", code, body)
	}

	// peer-2 goes down for its upgrade: it still holds its Raft seat and
	// would replay the log on return, so the gate stays shut.
	c.stop(2)
	waitFor(t, 30*time.Second, "a leader among the upgraded peers", func() error {
		for _, i := range c.running() {
			if c.peers[i].n.IsLeader() {
				return nil
			}
		}
		return errors.New("no leader yet")
	})
	if err := refused(0); err != nil {
		t.Fatalf("with peer-2 down on set 1: %v", err)
	}

	c.peers[2].commandSet = 2
	c.start(2, 0)
	var idx uint64
	waitFor(t, 60*time.Second, "PutQuota accepted once peer-2 gossips set 2", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := c.peers[0].n.Apply(ctx, quota)
		if err != nil {
			if errors.Is(err, node.ErrUpgradeRequired) || errors.Is(err, node.ErrNoLeader) {
				return err
			}
			t.Fatalf("PutQuota after the upgrade: %v", err)
		}
		idx = res.Index
		return nil
	})
	c.waitApplied(idx, 20*time.Second)
	for _, i := range c.running() {
		if _, ok := c.peers[i].n.State().QuotaFor("gated"); !ok {
			t.Fatalf("%s has no quota for gated after it was accepted", c.peers[i].name)
		}
	}
}

// TestWritesAcrossLeaderTransfers: while leadership moves around the
// cluster again and again, writes sent through every peer all succeed
// (a write forwarded to, or proposed on, a peer that just stepped down is
// retried against the new leader) and each lands in the log exactly once.
func TestWritesAcrossLeaderTransfers(t *testing.T) {
	timing := testTiming()
	// Keep every entry in the log, so the exactly-once check can read it.
	timing.SnapshotThreshold = 1 << 30
	timing.TrailingLogs = 1 << 30
	c := newCluster(t, clusterOpts{peers: 3, timing: &timing})
	c.leader(20 * time.Second)
	setupMain(c)

	const transfers = 4
	const minPer = 10
	var done atomic.Bool
	transferred := make(chan error, 1)
	go func() {
		var err error
		defer func() { done.Store(true); transferred <- err }()
		failed := 0
		for k := 0; k < transfers; {
			l := -1
			for _, i := range c.running() {
				if c.peers[i].n.IsLeader() {
					l = i
				}
			}
			if l < 0 {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			if e := c.peers[l].n.TransferLeadership(); e != nil {
				// A transfer can time out on a busy machine (the target
				// must catch up within an election timeout); only one
				// that never succeeds is a failure.
				if failed++; failed > 50 {
					err = e
					return
				}
				t.Logf("leadership transfer from %s: %v; trying again", c.peers[l].name, e)
				continue
			}
			k++
			// Let writes flow under the new leader before the next move.
			time.Sleep(200 * time.Millisecond)
		}
	}()

	var mu sync.Mutex
	indexes := map[uint64]string{}
	written := map[string]bool{}
	var wg sync.WaitGroup
	for i := range c.peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < minPer || !done.Load(); k++ {
				topic := fmt.Sprintf("t-%d-%d", i, k)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				res, err := c.peers[i].n.Apply(ctx, route(topic))
				cancel()
				if err != nil {
					t.Errorf("write %s via %s: %v", topic, c.peers[i].name, err)
					return
				}
				mu.Lock()
				if other, dup := indexes[res.Index]; dup {
					t.Errorf("writes %s and %s acknowledged at the same index %d", other, topic, res.Index)
				}
				indexes[res.Index] = topic
				written[topic] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := <-transferred; err != nil {
		t.Fatalf("leadership transfer: %v", err)
	}
	if t.Failed() {
		return
	}
	// A marker written after every write returned: the log up to it is
	// committed on every peer, and an entry of ours beyond it could only be
	// an uncommitted leftover of a deposed leader.
	last := c.apply(0, route("marker"), 20*time.Second)
	c.waitApplied(last, 20*time.Second)
	for _, i := range c.running() {
		st := c.peers[i].n.State()
		for topic := range written {
			if cl, m := st.RouteFor(topic); m.Kind != fsm.MatchExact || cl != "main" {
				t.Fatalf("%s: acknowledged route %s missing", c.peers[i].name, topic)
			}
		}
	}
	t.Logf("%d writes through 3 peers across %d leadership transfers", len(written), transfers)

	// Exactly once: every peer's log holds one PutRoute per acknowledged
	// write and none for a write that was not acknowledged.
	c.stopAll()
	for _, p := range c.peers {
		counts := logRoutes(t, p.dir, last)
		for topic := range written {
			if counts[topic] != 1 {
				t.Errorf("%s's log holds %d entries for %s, want exactly 1", p.name, counts[topic], topic)
			}
		}
		for topic, n := range counts {
			if strings.HasPrefix(topic, "t-") && !written[topic] {
				t.Errorf("%s's log holds %d entries for %s, which no write acknowledged", p.name, n, topic)
			}
		}
	}
}

// logRoutes counts the PutRoute entries per topic in a stopped peer's
// Raft log up to index upto.
func logRoutes(t *testing.T, dir string, upto uint64) map[string]int {
	t.Helper()
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft", "raft.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	first, err := store.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	lastIdx, err := store.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for i := first; i <= min(lastIdx, upto) && i > 0; i++ {
		var l raft.Log
		if err := store.GetLog(i, &l); err != nil {
			t.Fatalf("log entry %d: %v", i, err)
		}
		if l.Type != raft.LogCommand {
			continue
		}
		cmd, err := fsm.Decode(l.Data)
		if err != nil {
			t.Fatalf("log entry %d: %v", i, err)
		}
		if r, ok := cmd.(*fsm.PutRoute); ok {
			counts[r.Topic]++
		}
	}
	return counts
}
