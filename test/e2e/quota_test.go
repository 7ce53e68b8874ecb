package e2e

// Cluster-wide topic quotas through three serve processes: franz-go
// producers offer 2×Q split 70/20/10 across the peers (each peer leads one
// partition), the split moves, a peer is killed; what the backend stores
// per second is measured directly on kfake. The test prints the figures
// and asserts bounds wide enough for a shared machine (docs/benchmarks.md
// has the acceptance figures).

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/test/quotaload"
)

// quotaRate is Q, bytes/s.
const quotaRate = 2 << 20

// TestProduceQuotaAcrossPeers: 2×Q offered 70/20/10, then 10/20/70, then
// with the peer carrying the most traffic killed.
func TestProduceQuotaAcrossPeers(t *testing.T) {
	c := startCluster(t, 3)
	c.mustCtl(0, 60*time.Second, "clusters", "set", "main", "--bootstrap", strings.Join(c.backend.ListenAddrs(), ","))
	c.mustCtl(0, 20*time.Second, "routes", "default", "main")
	const topic = "quota-produce"
	dcl, adm := directAdmin(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	quotaload.CreateSpread(ctx, t, c.backend, dcl, topic, 3)
	c.mustCtl(1, 20*time.Second, "quotas", "set", topic, "--produce", fmt.Sprint(quotaRate))
	// Each partition is led by the peer on its broker's host: partition i
	// by peer i, so the partition rates are the per-peer offered loads.
	leaders := partitionLeaders(t, adm, topic)
	t.Logf("partition leaders (backend brokers): %v", leaders)

	s := quotaload.Watch(ctx, t, adm, topic)
	var rates [3]atomic.Int64
	var acked atomic.Int64
	split := func(a, b, c int) {
		rates[0].Store(int64(2 * quotaRate * a / 100))
		rates[1].Store(int64(2 * quotaRate * b / 100))
		rates[2].Store(int64(2 * quotaRate * c / 100))
	}
	split(70, 20, 10)
	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for p := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			quotaload.Offer(lctx, t, c.addrs(), topic, int32(p), &rates[p], &acked)
		}()
	}
	start := time.Now()
	time.Sleep(16 * time.Second) // the load runs; this is the measured interval, not a wait for a condition
	steadyLo, steadyHi := s.Windows(start.Add(2*time.Second), time.Now(), 10*time.Second, quotaRate)
	t.Logf("70/20/10 at 2Q: 10 s windows %.3f–%.3f of Q", steadyLo, steadyHi)

	split(10, 20, 70)
	shifted := time.Now()
	time.Sleep(12 * time.Second)
	conv := quotaload.Convergence(s, shifted, time.Now(), quotaRate)
	shiftLo, shiftHi := s.Windows(shifted, time.Now(), 10*time.Second, quotaRate)
	t.Logf("shift to 10/20/70: 2 s windows back within ±5%% after %v; 10 s windows %.3f–%.3f; 1 s rates: %s", conv, shiftLo, shiftHi, s.Series(quotaRate, shifted, 8))

	// Kill the peer that now carries 70 % (partition 2's).
	victim := 2
	killed := time.Now()
	c.procs[victim].Stop(t, syscall.SIGKILL)
	time.Sleep(15 * time.Second)
	back := quotaload.Convergence(s, killed, time.Now(), quotaRate)
	_, killHi := s.Windows(killed, time.Now(), 10*time.Second, quotaRate)
	t.Logf("peer %d killed: 2 s windows back within ±5%% after %v; 10 s windows up to %.3f; 1 s rates: %s", victim, back, killHi, s.Series(quotaRate, killed, 12))
	stopLoad()
	wg.Wait()

	// The quota holds: offered 2Q, no 10 s window admits more than Q plus
	// the headroom. How close to Q the windows come, and how fast the rate
	// converges after the shift and the kill, depend on the machine having
	// cores to spare (the load generator shares them with three peers and
	// the backend): those figures are logged above and measured by make
	// bench (docs/benchmarks.md), not asserted here. The bounds are
	// asserted on the rates the samples prove (MinWindows): a loaded CI
	// run's ListOffsets round trips of up to a second made the midpoint
	// figure of one window 1.117 Q (1 s rates 3.50, 0.14, 0.42, 2.75: the
	// samples' timing, not the admission).
	_, steadyMin := s.MinWindows(start.Add(2*time.Second), shifted, 10*time.Second, quotaRate)
	_, shiftMin := s.MinWindows(shifted, killed, 10*time.Second, quotaRate)
	_, killMin := s.MinWindows(killed, time.Now(), 10*time.Second, quotaRate)
	t.Logf("10 s windows at most, as the samples prove: steady %.3f, after the shift %.3f, after the kill %.3f of Q", steadyMin, shiftMin, killMin)
	if steadyMin > 1.10 || shiftMin > 1.10 {
		t.Errorf("a 10 s window admitted more than 1.10 Q: steady %.3f, after the shift %.3f", steadyMin, shiftMin)
	}
	// Across the kill the bound is looser: the dead peer's producer moves
	// to a survivor with a backlog while the survivors still hold their
	// grants, and when the dead peer was also the Raft leader, the new
	// leader's allocator only echoes reported shares for its first lease
	// (quota/allocator.go, learning mode). Measured: up to 1.085 Q on a
	// quiet machine; 1.21 Q in a loaded CI run (three suites on two
	// cores) in which peer 2 led. An over-admission past 1.5 Q would be a
	// broken handover, not a slow one.
	if killMin > 1.5 {
		t.Errorf("a 10 s window after the kill admitted %.3f Q (bound 1.5 Q across a handover)", killMin)
	}
	if acked.Load() == 0 {
		t.Error("nothing was admitted: the quota blocked the topic")
	}
	// Nothing acknowledged is lost: the backend holds at least every
	// acknowledged record. It may hold a few more: batches in flight
	// through peer 2 when it was killed were written without their answer
	// reaching the producer, which gave up on them (a retry through
	// another peer is a duplicate to the broker: the peers share real
	// producer ids, kafka/producer_ids.go, unless the claim failed). A
	// systematic duplication would be far more than that.
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var held int64
	ends.Each(func(o kadm.ListedOffset) { held += o.Offset })
	switch n := acked.Load(); {
	case held < n:
		t.Errorf("backend holds %d records, %d were acknowledged: %d lost", held, n, n-held)
	case held > n+n/20:
		t.Errorf("backend holds %d records, %d were acknowledged: %d more, over 5%%", held, n, held-n)
	case held > n:
		t.Logf("backend holds %d records, %d were acknowledged: %d written around the kill without an answer", held, n, held-n)
	}
}

// TestQuotaLibrdkafkaAndFetch: a librdkafka producer (kcat), which ignores
// throttle_time_ms and is held back by the mute alone, stays at the produce
// quota; a consumer group reading a backlog stays at the fetch quota.
func TestQuotaLibrdkafkaAndFetch(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat not installed (make deps installs it): %v", err)
	}
	c := startCluster(t, 3)
	c.mustCtl(0, 60*time.Second, "clusters", "set", "main", "--bootstrap", strings.Join(c.backend.ListenAddrs(), ","))
	c.mustCtl(0, 20*time.Second, "routes", "default", "main")
	const topic = "quota-kcat"
	_, adm := directAdmin(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	c.mustCtl(0, 20*time.Second, "quotas", "set", topic, "--produce", fmt.Sprint(quotaRate), "--fetch", fmt.Sprint(quotaRate))

	// kcat writes as fast as it can for ~12 s worth of quota.
	n := 12 * quotaRate / quotaload.RecordSize
	line := strings.Repeat("x", quotaload.RecordSize-1) + "\n"
	s := quotaload.Watch(ctx, t, adm, topic)
	cmd := exec.CommandContext(ctx, kcat, "-b", strings.Join(c.addrs(), ","), "-P", "-t", topic,
		"-X", "enable.idempotence=true", "-X", "linger.ms=5", "-X", "compression.codec=none")
	cmd.Stdin = strings.NewReader(strings.Repeat(line, n))
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v: %s", err, out)
	}
	took := time.Since(start)
	lo, hi := s.Windows(start.Add(2*time.Second), time.Now().Add(-time.Second), 5*time.Second, quotaRate)
	avg := float64(n*quotaload.RecordSize) / took.Seconds() / quotaRate
	t.Logf("kcat (mute only): %d records in %v, %.3f of Q on average; 5 s windows %.3f–%.3f", n, took.Round(time.Millisecond), avg, lo, hi)
	// Only the upper bound is the feature (a busy machine only slows kcat
	// down); the rate itself is a benchmark figure, logged above.
	if avg > 1.15 {
		t.Errorf("kcat produced at %.3f of the quota, over 1.15", avg)
	}

	// A consumer group reads the backlog through the peers at the fetch
	// quota.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addrs()...), kgo.ConsumerGroup("quota-readers"), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got, first := 0, time.Time{}
	for got < n && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(*kgo.Record) {
			if first.IsZero() {
				first = time.Now()
			}
			got++
		})
	}
	if got != n {
		t.Fatalf("consumed %d of %d", got, n)
	}
	fetchRate := float64(n*quotaload.RecordSize) / time.Since(first).Seconds() / quotaRate
	t.Logf("consumer group read the backlog at %.3f of the fetch quota", fetchRate)
	// As for produce: the group read everything (checked above) and not
	// faster than the quota allows; how close to Q is a benchmark figure.
	if fetchRate > 1.2 {
		t.Errorf("fetch ran at %.3f of the quota, over 1.2", fetchRate)
	}
}

func (c *cluster) addrs() []string {
	var out []string
	for _, p := range c.procs {
		out = append(out, p.Kafka)
	}
	return out
}

func directAdmin(t *testing.T, c *cluster) (*kgo.Client, *kadm.Client) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.backend.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

func partitionLeaders(t *testing.T, adm *kadm.Client, topic string) []int32 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []int32
	for _, p := range md.Topics[topic].Partitions.Sorted() {
		out = append(out, p.Leader)
	}
	return out
}
