package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/test/quotaload"
)

// TestQuotaPeerPartitionedFromLeader: a peer cut off from the Raft leader
// (its clients still connected, the other peers still reaching it) loses
// its lease, falls back to a safe share and then towards zero, while the
// leader keeps its share reserved: the aggregate never runs far past the
// quota. The figures are printed; docs/benchmarks.md has them.
func TestQuotaPeerPartitionedFromLeader(t *testing.T) {
	const q = 2 << 20
	c := newCluster(t, clusterOpts{peers: 3, brokers: 3})
	l := c.leader(20 * time.Second)
	idx := c.putBackend(0)
	c.waitApplied(idx, 10*time.Second)
	for _, i := range c.running() {
		waitFor(t, 20*time.Second, "ready", c.peers[i].n.Ready)
	}
	const topic = "quota-partition"
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.backend.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	quotaload.CreateSpread(ctx, t, c.backend, cl, topic, 3)
	c.apply(0, &fsm.PutQuota{Quota: fsm.Quota{Topic: topic, ProduceBytesPerSec: q}}, 10*time.Second)

	// The cut-off peer carries 70 % of 2Q.
	victim := (l + 1) % 3
	var rates [3]atomic.Int64
	for p := range 3 {
		share := int64(10)
		if p == victim {
			share = 70
		} else if p != l {
			share = 20
		}
		rates[p].Store(2 * q * share / 100)
	}
	s := quotaload.Watch(ctx, t, adm, topic)
	var acked atomic.Int64
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for p := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			quotaload.Offer(lctx, t, c.kafkaAddrs(0, 1, 2), topic, int32(p), &rates[p], &acked)
		}()
	}
	time.Sleep(6 * time.Second) // warm-up under load: the measured interval starts after it
	cut := time.Now()
	c.faults.Partition(c.peers[victim].name, c.peers[l].name)
	time.Sleep(20 * time.Second) // the partition lasts 20 s under load
	c.faults.Heal()
	healed := time.Now()
	time.Sleep(8 * time.Second)
	stop()
	wg.Wait()
	lo, hi := s.Windows(cut, healed, 10*time.Second, q)
	_, afterHi := s.Windows(healed, time.Now(), 5*time.Second, q)
	back := quotaload.Convergence(s, healed, time.Now(), q)
	t.Logf("peer %s cut off from the leader for 20 s while carrying 70%% of 2Q: 10 s windows %.3f–%.3f of Q; after healing: 5 s windows up to %.3f, back within ±5%% after %v; 1 s rates during: %s",
		c.peers[victim].name, lo, hi, afterHi, back, s.Series(q, cut, 20))
	// Asserted on the rate the samples prove (quotaload.MinWindows), not
	// their midpoints: a loaded machine's slow ListOffsets round trips
	// move a window's edges by up to a second.
	if _, proven := s.MinWindows(cut, healed, 10*time.Second, q); proven > 1.10 {
		t.Errorf("during the partition a 10 s window reached %.3f of Q (%.3f at the samples' midpoints)", proven, hi)
	}
}
