package node

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// drainConsumer is a group consumer of orders through the proxy that can
// be held (it stops polling; its session and autocommits go on).
type drainConsumer struct {
	cl   *kgo.Client
	held atomic.Bool

	mu  sync.Mutex
	got map[string]int
}

func startDrainConsumer(t *testing.T, e *failoverEnv, group string) *drainConsumer {
	t.Helper()
	var seeds []string
	for _, p := range e.peers {
		seeds = append(seeds, p.n.KafkaAddr())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumerGroup(group), kgo.ConsumeTopics("orders"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AutoCommitInterval(300*time.Millisecond),
		kgo.MetadataMinAge(100*time.Millisecond), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c := &drainConsumer{cl: cl, got: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if c.held.Load() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			fs := cl.PollFetches(pctx)
			pcancel()
			c.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { c.got[string(r.Value)]++ })
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		cl.Close()
	})
	return c
}

func (c *drainConsumer) has(vs ...string) (missing []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range vs {
		if c.got[v] == 0 {
			missing = append(missing, v)
		}
	}
	return missing
}

// TestFailbackDrainsGroups: records written to the fallback that a group
// had not read when its cluster recovered are still delivered. The failback
// brings Produce back first (records land on the recovered east while the
// group still reads west) and moves the group only once it has committed
// west's end. Before the draining failback, Produce and consumption moved
// back in one step and the group never read what it had left on west.
func TestFailbackDrainsGroups(t *testing.T) {
	e := startFailoverEnv(t, fsm.RouteTargets{Fallback: []string{"west"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, cmd := range []fsm.Command{
		// The group's home fails over with the topic (the default route).
		&fsm.SetDefaultCluster{Cluster: "east", RouteTargets: fsm.RouteTargets{Fallback: []string{"west"}}},
		&fsm.PutCluster{Cluster: fsm.Cluster{Name: "east", Bootstrap: e.east.ListenAddrs(), DownAfterMS: 2000, UpAfterMS: 3000, FailbackDrainMS: 120_000}},
	} {
		if _, err := e.leader(t).Apply(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	pcl := e.client(t)
	var produced []string
	produce := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			v := fmt.Sprintf("%s-%d", prefix, i)
			produceOne(t, pcl, v)
			produced = append(produced, v)
		}
	}
	c := startDrainConsumer(t, e, "drainers")
	produce("east", 5)
	waitUntil(t, 60*time.Second, "the group reads east", func() bool { return len(c.has(produced...)) == 0 })

	e.east.Close()
	e.waitState(t, 60*time.Second, fsm.FailoverMoved)
	produce("west", 3)
	waitUntil(t, 90*time.Second, "the group reads west and commits there", func() bool {
		if len(c.has(produced...)) > 0 {
			return false
		}
		return committedOn(t, e, "drainers") >= 3
	})
	// The group falls behind on west.
	c.held.Store(true)
	produce("lag", 10)
	westEnd := endOffset(t, e.west)

	e.restoreEast(t)
	t.Cleanup(func() { e.east.Close() })
	e.waitState(t, 60*time.Second, fsm.FailoverFailingBack)
	// Produce is back on east while the group still has west to read.
	before := endOffset(t, e.east)
	produce("back", 5)
	if got := endOffset(t, e.east); got != before+5 {
		t.Fatalf("east end offset %d after 5 records produced while failing back, want %d", got, before+5)
	}
	if got := endOffset(t, e.west); got != westEnd {
		t.Fatalf("west end offset %d after failback began, want %d (nothing more written there)", got, westEnd)
	}
	// The group is waited for: held, it cannot have read west's end.
	time.Sleep(drainSettle + 2*drainCheckEvery)
	if st := e.leader(t).State().ClusterFailover("east"); st.State != fsm.FailoverFailingBack {
		t.Fatalf("east is %s while its group has not read west's end, want failing-back", st.State)
	}
	c.held.Store(false)
	e.waitState(t, 90*time.Second, fsm.FailoverActive)
	produce("after", 5)
	waitUntil(t, 90*time.Second, "the group reads every record", func() bool { return len(c.has(produced...)) == 0 })
	if m := c.has(produced...); len(m) > 0 {
		t.Fatalf("never consumed: %v", m)
	}
	var drained float64
	for _, n := range e.nodes() {
		drained += counterValue(n.failover.drainMetrics.drains.WithLabelValues("east", "drained"))
	}
	if drained != 1 {
		t.Fatalf("%v failbacks counted drained, want 1", drained)
	}
}

// committedOn is the group's committed offset of orders/0 on west, -1
// without one.
func committedOn(t *testing.T, e *failoverEnv, group string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.west.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		return -1
	}
	o, ok := offs.Lookup("orders", 0)
	if !ok || o.Err != nil {
		return -1
	}
	return o.At
}

// TestFailbackLiveClients: a producer and a group consumer run through a
// failover and a failback with franz-go's defaults (cooperative-sticky,
// autocommit every 5 s, reset to the start); every acknowledged record is
// consumed.
func TestFailbackLiveClients(t *testing.T) {
	t.Run("east-restarts-empty", func(t *testing.T) { failbackLiveClients(t, false) })
	// As test/sites' backend after docker kill: its records, groups and
	// committed offsets come back, its members do not.
	t.Run("east-keeps-its-data", func(t *testing.T) { failbackLiveClients(t, true) })
}

func failbackLiveClients(t *testing.T, keepData bool) {
	var eastOpts []kfake.Opt
	dir := t.TempDir()
	if keepData {
		eastOpts = append(eastOpts, kfake.DataDir(dir))
	}
	e := startFailoverEnv(t, fsm.RouteTargets{Fallback: []string{"west"}}, eastOpts...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := e.leader(t).Apply(ctx, &fsm.SetDefaultCluster{Cluster: "east", RouteTargets: fsm.RouteTargets{Fallback: []string{"west"}}}); err != nil {
		t.Fatal(err)
	}
	var seeds []string
	for _, p := range e.peers {
		seeds = append(seeds, p.n.KafkaAddr())
	}
	pcl := e.client(t)
	var (
		mu    sync.Mutex
		acked = map[string]string{}
		got   = map[string]int{}
	)
	pctx, pstop := context.WithCancel(context.Background())
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() {
		defer pwg.Done()
		for i := 0; pctx.Err() == nil; i++ {
			v := fmt.Sprintf("r-%d", i)
			pcl.Produce(pctx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
				if err == nil {
					mu.Lock()
					acked[v] = fmt.Sprintf("%d@%d", r.Partition, r.Offset)
					mu.Unlock()
				}
			})
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var malformed atomic.Int64 // answers the client could not decode
	ccl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumerGroup("live"), kgo.ConsumeTopics("orders"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.WithLogger(kgo.BasicLogger(malformedCounter{&malformed}, kgo.LogLevelInfo, nil)))
	if err != nil {
		t.Fatal(err)
	}
	cctx, cstop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for cctx.Err() == nil {
			fs := ccl.PollFetches(cctx)
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)]++ })
			mu.Unlock()
			fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch error %s/%d: %v", topic, p, err) })
		}
	}()
	defer func() { cstop(); <-done; ccl.Close() }()
	time.Sleep(5 * time.Second)
	e.east.Close()
	if keepData {
		// A crash saves no session state: the members are gone.
		if err := os.Remove(filepath.Join(dir, "session_state.json")); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	e.waitState(t, 60*time.Second, fsm.FailoverMoved)
	time.Sleep(5 * time.Second)
	e.restoreEast(t)
	t.Cleanup(func() { e.east.Close() })
	e.waitState(t, 60*time.Second, fsm.FailoverFailingBack)
	t.Logf("failing back")
	e.waitState(t, 90*time.Second, fsm.FailoverActive)
	t.Logf("active")
	time.Sleep(5 * time.Second)
	pstop()
	pwg.Wait()
	pcl.Flush(context.Background())
	var missing []string
	waitFor := time.Now().Add(60 * time.Second)
	for {
		missing = missing[:0]
		mu.Lock()
		for v, at := range acked {
			if got[v] == 0 {
				missing = append(missing, v+" "+at)
			}
		}
		mu.Unlock()
		if len(missing) == 0 || time.Now().After(waitFor) {
			break
		}
		time.Sleep(time.Second)
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Fatalf("%d of %d acknowledged records never consumed: %v", len(missing), len(acked), missing[:min(len(missing), 30)])
	}
	if n := malformed.Load(); n > 0 {
		// The route-change bounce of OffsetFetch was once encoded at
		// version 0: the group loop failed after every switch.
		t.Errorf("the consumer logged %d answers it could not decode", n)
	}
	t.Logf("%d records acknowledged, all consumed", len(acked))
}

// malformedCounter counts the franz-go log lines that report an answer
// too short for its version.
type malformedCounter struct{ n *atomic.Int64 }

func (m malformedCounter) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte("did not contain enough data")) {
		m.n.Add(1)
	}
	return len(b), nil
}
