package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/node"
)

// BenchmarkCommitTimeout weighs Raft's commit timeout (node.Timing
// RaftCommitTimeout): for each value, a 3-peer cluster in this process
// (no backend) reports the CPU the process spends while the log is idle
// (Raft, gossip and the peers' loops, per second of wall time) and the
// p50/p99 of write propagation (a write's acknowledgement on the leader
// until every peer's data plane reads it) over 300 writes.
//
// Run: go test -run '^$' -bench CommitTimeout -benchtime 1x ./test/cluster/
func BenchmarkCommitTimeout(b *testing.B) {
	for _, ct := range []time.Duration{10 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond} {
		b.Run(fmt.Sprintf("commit=%v", ct), func(b *testing.B) {
			timing := node.DefaultTiming()
			timing.RaftCommitTimeout = ct
			c := newCluster(b, clusterOpts{peers: 3, timing: &timing})
			l := c.leader(30 * time.Second)
			setupMain(c)
			for range b.N {
				time.Sleep(2 * time.Second) // settle after the setup writes
				cpu0, wall0 := processCPU(), time.Now()
				time.Sleep(5 * time.Second)
				idle := (processCPU() - cpu0).Seconds() / time.Since(wall0).Seconds()

				lat := propagation(b, c, l, 300, "ct")
				b.ReportMetric(idle*100, "idle-cpu-%")
				b.ReportMetric(ms(percentile(lat, 0.50)), "prop-p50-ms")
				b.ReportMetric(ms(percentile(lat, 0.99)), "prop-p99-ms")
			}
		})
	}
}
