package cluster

// Control-plane figures, measured (never asserted) with production timing
// (node.DefaultTiming) on loopback. `make bench` runs them once each:
//
//	go test -run '^$' -bench . -benchtime 1x ./test/cluster/

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/node"
)

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// propagation applies n route writes through leader l, one at a time, and
// returns for each the time from its acknowledgement until every peer's
// data plane reads a state that includes it.
func propagation(b *testing.B, c *testCluster, l, n int, prefix string) []time.Duration {
	lat := make([]time.Duration, 0, n)
	for k := range n {
		res, err := c.peers[l].n.Apply(context.Background(), route(fmt.Sprintf("%s-%d", prefix, k)))
		if err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		var mu sync.Mutex
		var worst time.Duration
		var wg sync.WaitGroup
		for _, p := range c.peers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := p.n.WaitIndex(ctx, res.Index); err != nil {
					b.Error(err)
				}
				d := time.Since(acked)
				mu.Lock()
				worst = max(worst, d)
				mu.Unlock()
			}()
		}
		wg.Wait()
		lat = append(lat, worst)
	}
	return lat
}

// BenchmarkWritePropagation: time from a write's acknowledgement (Apply
// returns on the leader) until every peer's data plane reads a state that
// includes it, over 1,000 writes to a 3-peer cluster.
func BenchmarkWritePropagation(b *testing.B) {
	timing := node.DefaultTiming()
	c := newCluster(b, clusterOpts{peers: 3, timing: &timing})
	l := c.leader(30 * time.Second)
	setupMain(c)
	for range b.N {
		lat := propagation(b, c, l, 1000, "prop")
		b.ReportMetric(ms(percentile(lat, 0.50)), "p50-ms")
		b.ReportMetric(ms(percentile(lat, 0.99)), "p99-ms")
		b.ReportMetric(ms(percentile(lat, 1)), "max-ms")
	}
}

// BenchmarkLeaderFailover: time from killing the leader of a 3-peer cluster
// to the first write another peer accepts, median of 5 kills.
func BenchmarkLeaderFailover(b *testing.B) {
	for range b.N {
		var times []time.Duration
		for range 5 {
			timing := node.DefaultTiming()
			c := newCluster(b, clusterOpts{peers: 3, timing: &timing})
			l := c.leader(30 * time.Second)
			setupMain(c)
			killed := time.Now()
			c.stop(l)
			c.apply((l+1)%3, route("after"), 30*time.Second)
			times = append(times, time.Since(killed))
			c.stopAll()
		}
		b.ReportMetric(percentile(times, 0.5).Seconds(), "median-s")
		b.ReportMetric(percentile(times, 1).Seconds(), "max-s")
	}
}

// BenchmarkJoinToServing: time from starting a fourth peer with --join to
// its data plane serving clients (registered by the leader, state caught
// up, backend metadata loaded).
func BenchmarkJoinToServing(b *testing.B) {
	for range b.N {
		timing := node.DefaultTiming()
		c := newCluster(b, clusterOpts{peers: 3, brokers: 3, timing: &timing})
		c.leader(30 * time.Second)
		idx := c.putBackend(0)
		c.waitApplied(idx, 30*time.Second)
		c.peers = append(c.peers, c.newPeer(b.TempDir(), 3, 0))
		start := time.Now()
		c.start(3, 0)
		waitFor(b, 60*time.Second, "the new peer serving", c.peers[3].n.Ready)
		b.ReportMetric(time.Since(start).Seconds(), "join-to-serving-s")
	}
}
