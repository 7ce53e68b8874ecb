package cluster

// BenchmarkHundredPeers: the control plane of a large fleet, in process.
//
//	go test -run '^$' -bench HundredPeers -benchtime 1x -timeout 30m ./test/cluster/
//	SWITCHYARD_SCALE_PEERS=30 SWITCHYARD_SCALE_QUIET=10s go test ...   # smaller and quicker
//
// SWITCHYARD_SCALE_WRITES sets the writes timed for propagation (200);
// SWITCHYARD_SCALE_HEAP_PROFILE=FILE writes a heap profile after the quiet
// period, SWITCHYARD_SCALE_CPU_PROFILE=FILE a CPU profile of it.
//
// Three peers bootstrap (--bootstrap-expect 3); once they have a leader the
// other peers start at once, each joining gossip through the three seeds,
// as a fleet rolled out host by host would. Production timing
// (node.DefaultTiming). No backend cluster is configured, so no peer loads
// Kafka metadata: what runs is gossip, Raft, the leader's reconcile loop,
// the quota and lease loops and each peer's idle listeners (Kafka, admin,
// peer port).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/node"
)

// envInt reads a positive integer knob, or returns def.
func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

// envDuration reads a positive duration knob, or returns def.
func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		b.Fatalf("%s=%q: want a positive duration", name, s)
	}
	return v
}

func BenchmarkHundredPeers(b *testing.B) {
	peers := envInt(b, "SWITCHYARD_SCALE_PEERS", 100)
	quiet := envDuration(b, "SWITCHYARD_SCALE_QUIET", time.Minute)
	writes := envInt(b, "SWITCHYARD_SCALE_WRITES", 200)
	const seeds = 3
	if peers < seeds+1 {
		b.Fatalf("SWITCHYARD_SCALE_PEERS=%d: want more than the %d seeds", peers, seeds)
	}
	voters := 5
	if peers < 5 {
		voters = 3
	}
	for range b.N {
		heap0, stack0, g0 := memNow()
		timing := node.DefaultTiming()
		c := &testCluster{t: b, log: testLogger(b), faults: nil, timing: timing}
		base := b.TempDir()
		for i := range peers {
			c.peers = append(c.peers, c.newPeer(base, i, 0))
		}
		b.Cleanup(c.stopAll)
		var seedAddrs []string
		for i := range seeds {
			seedAddrs = append(seedAddrs, c.peers[i].gossipA)
		}
		formed := time.Now()
		for i := range seeds {
			startScalePeer(c, i, seeds, seedAddrs)
		}
		l := c.leader(60 * time.Second)
		b.ReportMetric(time.Since(formed).Seconds(), "seeds-leader-s")

		// The rest of the fleet starts at once.
		start := time.Now()
		for i := seeds; i < peers; i++ {
			startScalePeer(c, i, 0, seedAddrs)
		}
		b.Logf("%d peers started in %v", peers-seeds, time.Since(start).Round(time.Millisecond))

		// Registered: the leader's peer table names every peer (gossip
		// reached the leader, which applied a RegisterPeer for each).
		waitFor(b, 10*time.Minute, "every peer registered by the leader", func() error {
			if got := len(c.peers[c.leaderNow(l)].n.State().Peers); got < peers {
				return fmt.Errorf("%d of %d peers registered", got, peers)
			}
			return nil
		})
		registered := time.Since(start)
		// Presented: every peer's data plane presents every peer as live
		// (the peer table replicated to it, and its own gossip view has
		// every member alive) — what a client's Metadata would list.
		waitFor(b, 10*time.Minute, "every peer presenting all peers live", func() error {
			for _, p := range c.peers {
				st := p.n.State()
				if len(st.Peers) < peers {
					return fmt.Errorf("%s knows %d of %d peers", p.name, len(st.Peers), peers)
				}
				for _, q := range st.Peers {
					if !p.n.Live(q.ID) {
						return fmt.Errorf("%s does not see %s live", p.name, q.Name)
					}
				}
			}
			return nil
		})
		presented := time.Since(start)
		// In Raft: the configuration holds every peer, 5 voters and the
		// rest non-voters (node/leader.go desiredVoters).
		var lastStatus string
		waitFor(b, 10*time.Minute, fmt.Sprintf("%d voters and %d non-voters", voters, peers-voters), func() error {
			var st struct {
				Raft struct{ Voters, Nonvoters int }
			}
			if err := getJSON(c.peers[c.leaderNow(l)].admin, "/v1/status", &st); err != nil {
				return err
			}
			lastStatus = fmt.Sprintf("%d voters, %d non-voters", st.Raft.Voters, st.Raft.Nonvoters)
			if st.Raft.Voters != voters || st.Raft.Nonvoters != peers-voters {
				return errors.New(lastStatus)
			}
			return nil
		})
		inRaft := time.Since(start)
		b.ReportMetric(registered.Seconds(), "registered-s")
		b.ReportMetric(presented.Seconds(), "all-live-everywhere-s")
		b.ReportMetric(inRaft.Seconds(), "raft-config-s")
		b.Logf("joined: %d peers registered %v, presented live by every peer %v, raft configuration %s %v after the fleet started",
			peers, registered.Round(time.Millisecond), presented.Round(time.Millisecond), lastStatus, inRaft.Round(time.Millisecond))

		// A quiet period: nothing but the control plane's own traffic.
		l = c.leaderNow(l)
		terms0 := c.peers[l].n.RaftStats()["term"]
		var prof *os.File
		if path := os.Getenv("SWITCHYARD_SCALE_CPU_PROFILE"); path != "" {
			// Where the quiet period's CPU goes (go test's -cpuprofile
			// would cover the join and the writes too).
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				b.Fatal(err)
			}
			prof = f
		}
		cpu0, t0 := processCPU(), time.Now()
		time.Sleep(quiet)
		cpu1, wall := processCPU(), time.Since(t0)
		if prof != nil {
			pprof.StopCPUProfile()
			prof.Close()
		}
		heap1, stack1, g1 := memNow()
		if path := os.Getenv("SWITCHYARD_SCALE_HEAP_PROFILE"); path != "" {
			// What the peers hold: go tool pprof -sample_index=inuse_space.
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			pprof.WriteHeapProfile(f)
			f.Close()
		}
		per := func(a, z uint64) float64 { return (float64(z) - float64(a)) / float64(peers) }
		b.ReportMetric(1000*(cpu1-cpu0).Seconds()/wall.Seconds()/float64(peers), "quiet-millicores/peer")
		b.ReportMetric(per(heap0, heap1)/(1<<20), "heap-MiB/peer")
		b.ReportMetric(per(stack0, stack1)/(1<<20), "stack-MiB/peer")
		b.ReportMetric(float64(g1-g0)/float64(peers), "goroutines/peer")
		lnow := c.leaderNow(l)
		terms1 := c.peers[lnow].n.RaftStats()["term"]
		t0n, _ := strconv.Atoi(terms0)
		t1n, _ := strconv.Atoi(terms1)
		b.ReportMetric(float64(t1n-t0n), "quiet-new-terms")
		if lnow != l || terms1 != terms0 {
			b.Logf("leadership changed during the quiet period: %s (term %s) to %s (term %s)", c.peers[l].name, terms0, c.peers[lnow].name, terms1)
		}
		b.Logf("quiet %v: process CPU %.2f s (%.3f cores) for %d peers; heap in use +%.1f MiB, stacks +%.1f MiB, goroutines +%d",
			wall.Round(time.Millisecond), (cpu1 - cpu0).Seconds(), (cpu1-cpu0).Seconds()/wall.Seconds(), peers,
			float64(heap1-heap0)/(1<<20), float64(stack1-stack0)/(1<<20), g1-g0)

		// Propagation: from Apply on the leader until every peer's FSM has
		// applied the write (WaitIndex), one write at a time. A write that
		// fails (a leadership change) is counted, not timed, and the next
		// one goes to the leader of the moment; a fleet that cannot keep a
		// leader shows here.
		fromApply := make([]time.Duration, 0, writes)
		afterAck := make([]time.Duration, 0, writes)
		failed := 0
		for k := 0; len(fromApply) < writes; k++ {
			if failed > writes {
				b.Fatalf("%d writes failed for %d timed: no stable leader", failed, len(fromApply))
			}
			l = c.leaderNow(l)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			t := time.Now()
			res, err := c.peers[l].n.Apply(ctx, &fsm.AllowPeer{Name: fmt.Sprintf("scale-%d", k)})
			cancel()
			if err != nil {
				failed++
				b.Logf("write %d via %s failed (not timed): %v", k, c.peers[l].name, err)
				continue
			}
			acked := time.Now()
			var mu sync.Mutex
			var last time.Time
			var wg sync.WaitGroup
			for _, p := range c.peers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					if err := p.n.WaitIndex(ctx, res.Index); err != nil {
						b.Error(err)
					}
					now := time.Now()
					mu.Lock()
					if now.After(last) {
						last = now
					}
					mu.Unlock()
				}()
			}
			wg.Wait()
			fromApply = append(fromApply, last.Sub(t))
			afterAck = append(afterAck, last.Sub(acked))
		}
		b.ReportMetric(ms(percentile(fromApply, 0.50)), "prop-p50-ms")
		b.ReportMetric(ms(percentile(fromApply, 0.99)), "prop-p99-ms")
		b.ReportMetric(ms(percentile(afterAck, 0.99)), "after-ack-p99-ms")
		b.ReportMetric(float64(failed), "failed-writes")
		b.Logf("propagation of %d writes to all %d peers, from Apply: p50 %.1f ms p99 %.1f ms max %.1f ms; after the leader's ack: p50 %.1f ms p99 %.1f ms",
			writes, peers, ms(percentile(fromApply, 0.5)), ms(percentile(fromApply, 0.99)), ms(percentile(fromApply, 1)),
			ms(percentile(afterAck, 0.5)), ms(percentile(afterAck, 0.99)))
		c.stopAll()
	}
}

// leaderNow returns the running leader's index, or prev when none leads at
// this instant (an election in progress).
func (c *testCluster) leaderNow(prev int) int {
	for _, i := range c.running() {
		if c.peers[i].n.IsLeader() {
			return i
		}
	}
	return prev
}

// startScalePeer runs peer i joining gossip through join (not through every
// other peer, as testCluster.start does: a fleet's peers are given a few
// seed addresses).
func startScalePeer(c *testCluster, i, expect int, join []string) {
	c.t.Helper()
	p := c.peers[i]
	var others []string
	for _, a := range join {
		if a != p.gossipA {
			others = append(others, a)
		}
	}
	n, err := node.New(node.Config{
		Name:            p.name,
		DataDir:         p.dir,
		Version:         "test",
		KafkaListen:     p.kafka,
		AdminListen:     p.admin,
		RaftListen:      p.raftA,
		GossipListen:    p.gossipA,
		Join:            others,
		BootstrapExpect: expect,
		AdmitUnproven:   true, // loopback, no peer TLS
		Timing:          c.timing,
		Logger:          c.log.With("peer", p.name),
	})
	if err != nil {
		c.t.Fatalf("start %s: %v", p.name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.n, p.cancel, p.done = n, cancel, make(chan error, 1)
	go func() { p.done <- n.Run(ctx) }()
}

// memNow returns heap and stacks in use and the goroutine count after a
// full collection.
func memNow() (heap, stack uint64, goroutines int) {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.StackInuse, runtime.NumGoroutine()
}

// processCPU is this process's user+system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
