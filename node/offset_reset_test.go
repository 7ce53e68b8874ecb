package node

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// resetConsumer is one group member consuming through the proxy and
// logging every record it gets.
type resetConsumer struct {
	cl   *kgo.Client
	mu   sync.Mutex
	recs []resetRec
	// owned counts the partitions the member holds (assigned, not yet
	// revoked or lost).
	owned int
	stop  chan struct{}
	done  chan struct{}
}

type resetRec struct {
	topic     string
	partition int32
	offset    int64
	at        time.Time
}

func startResetConsumer(t *testing.T, addr, group string, topics []string, opts ...kgo.Opt) *resetConsumer {
	t.Helper()
	c := &resetConsumer{stop: make(chan struct{}), done: make(chan struct{})}
	count := func(m map[string][]int32) (n int) {
		for _, ps := range m {
			n += len(ps)
		}
		return n
	}
	gone := func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
		c.mu.Lock()
		c.owned -= count(m)
		c.mu.Unlock()
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			c.mu.Lock()
			c.owned += count(m)
			c.mu.Unlock()
		}),
		kgo.OnPartitionsRevoked(gone),
		kgo.OnPartitionsLost(gone),
		kgo.SeedBrokers(addr),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitInterval(200 * time.Millisecond),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
	}, append(opts, debugLogger()...)...)...)
	if err != nil {
		t.Fatal(err)
	}
	c.cl = cl
	_ = os.Getenv
	go func() {
		defer close(c.done)
		for {
			select {
			case <-c.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			fs := cl.PollFetches(ctx)
			cancel()
			now := time.Now()
			c.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				c.recs = append(c.recs, resetRec{r.Topic, r.Partition, r.Offset, now})
			})
			c.mu.Unlock()
		}
	}()
	t.Cleanup(c.close)
	return c
}

func (c *resetConsumer) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	<-c.done
	c.cl.Close()
}

func (c *resetConsumer) since(t time.Time) []resetRec {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []resetRec
	for _, r := range c.recs {
		if !r.at.Before(t) {
			out = append(out, r)
		}
	}
	return out
}

// holds reports how many partitions the member holds.
func (c *resetConsumer) holds() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.owned
}

func (c *resetConsumer) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.recs)
}

func debugLogger() []kgo.Opt {
	if os.Getenv("RESET_DEBUG") == "" {
		return nil
	}
	return []kgo.Opt{kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return time.Now().Format("15:04:05.000 ") }))}
}

// startReset proposes a reset with explicit targets, as the API does after
// resolving them.
func startReset(t *testing.T, n *Node, group string, targets []fsm.ResetTarget) int64 {
	t.Helper()
	seen := map[string]bool{}
	for _, tg := range targets {
		seen[tg.Topic] = true
	}
	at := nowMS()
	cmd := &fsm.StartOffsetReset{Group: group, Topics: sortedNames(seen), To: fsm.ResetTo{Kind: fsm.ResetToOffset, Value: 1}, Targets: targets, At: at}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.applyLocal(ctx, cmd); err != nil {
		t.Fatalf("start reset: %v", err)
	}
	return at
}

func waitReset(t *testing.T, n *Node, group string, created int64) fsm.OffsetReset {
	t.Helper()
	var j fsm.OffsetReset
	waitUntil(t, 60*time.Second, "the reset of "+group+" ends", func() bool {
		r, ok := n.fsm.State().OffsetReset(group)
		if ok && r.Created == created && r.State.Terminal() {
			j = *r
			return true
		}
		return false
	})
	return j
}

// TestOffsetResetLiveGroup: a two-member franz-go group (cooperative
// classic, eager classic, KIP-848) consuming a topic on east (its home)
// and one on west keeps running while its offsets are reset; both members
// rejoin by themselves and read again from exactly the targets, every
// record from there at least once (once, but for what a rebalance after
// the reset hands to the other member before its owner committed), and the
// targets are what the group committed before it resumed.
func TestOffsetResetLiveGroup(t *testing.T) {
	for _, tc := range []struct {
		name     string
		protocol string
		opt      kgo.Opt
	}{
		{"cooperative", fsm.ProtocolClassic, kgo.Balancers(kgo.CooperativeStickyBalancer())},
		{"eager", fsm.ProtocolClassic, kgo.Balancers(kgo.RangeBalancer())},
		{"kip848", fsm.ProtocolConsumer, kgo.ServerSideBalancer()},
	} {
		t.Run(tc.name, func(t *testing.T) { testOffsetResetLive(t, tc.protocol, tc.opt) })
	}
}

func testOffsetResetLive(t *testing.T, protocol string, balancer kgo.Opt) {
	env := startMigrationEnv(t)
	n := env.n
	n.resets.cfg.Poll = 50 * time.Millisecond
	ctx := context.Background()
	if _, err := env.westAdm.CreateTopic(ctx, 2, 1, nil, "pay"); err != nil {
		t.Fatal(err)
	}
	if code, _, body := call(t, n, "PUT", "/v1/routes/pay", "", `{"cluster":"west"}`); code != 200 {
		t.Fatalf("route pay: %d %s", code, body)
	}
	produce(t, env.east, "orders", []int{40, 40, 40, 40})
	produce(t, env.west, "pay", []int{30, 30})
	end := map[string]int64{"orders": 40, "pay": 30}

	addr := n.KafkaAddr()
	group := "live"
	ms := []*resetConsumer{
		startResetConsumer(t, addr, group, []string{"orders", "pay"}, balancer),
		startResetConsumer(t, addr, group, []string{"orders", "pay"}, balancer),
	}
	waitUntil(t, 60*time.Second, "the group consumes everything", func() bool {
		return ms[0].count()+ms[1].count() >= 4*40+2*30
	})
	// One member can consume everything before the other has joined: the
	// reset must find both in the group, each holding partitions.
	waitUntil(t, 60*time.Second, "both members hold partitions", func() bool {
		return ms[0].holds() > 0 && ms[1].holds() > 0 && ms[0].holds()+ms[1].holds() == 6
	})
	// And quiet: the end committed on every partition and nothing read for
	// a second. A member handed a partition before its first owner's
	// autocommit re-reads it from the last commit, and in a loaded run that
	// re-read landed 13 ms after the reset started and was counted as the
	// reset's.
	quietAdm := kadm.NewClient(ms[0].cl)
	read := -1
	waitUntil(t, 60*time.Second, "the group committed the end and went quiet", func() bool {
		before := ms[0].count() + ms[1].count()
		if before != read {
			read = before
			return false
		}
		os, err := quietAdm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		for topic, e := range end {
			for p := range map[string]int32{"orders": 4, "pay": 2}[topic] {
				if o, ok := os.Lookup(topic, p); !ok || o.At != e {
					return false
				}
			}
		}
		time.Sleep(time.Second)
		return ms[0].count()+ms[1].count() == read
	})

	var targets []fsm.ResetTarget
	for _, tp := range []struct {
		topic string
		parts int32
		to    int64
	}{{"orders", 4, 10}, {"pay", 2, 5}} {
		for p := range tp.parts {
			targets = append(targets, fsm.ResetTarget{Topic: tp.topic, Partition: p, Old: end[tp.topic], New: tp.to + int64(p)})
		}
	}
	began := time.Now()
	created := startReset(t, n, group, targets)
	j := waitReset(t, n, group, created)
	if j.State != fsm.ResetApplied || len(j.Members) < 2 {
		t.Fatalf("reset ended %s (%s) with %d members removed, want applied with 2", j.State, j.Error, len(j.Members))
	}
	for _, m := range j.Members {
		if m.Protocol != protocol {
			t.Fatalf("removed member %+v, want protocol %s", m, protocol)
		}
	}
	t.Logf("reset applied %v after it started; members removed: %+v", time.Since(began).Round(time.Millisecond), j.Members)

	// Both members go on by themselves and re-read from the targets.
	want := 0
	for _, tg := range targets {
		want += int(end[tg.Topic] - tg.New)
	}
	var got []resetRec
	waitUntil(t, 60*time.Second, "the group re-reads from the targets", func() bool {
		got = append(ms[0].since(began), ms[1].since(began)...)
		return len(got) >= want
	})
	t.Logf("the group re-read from the targets %v after the reset started", time.Since(began).Round(time.Millisecond))
	time.Sleep(time.Second) // anything extra would show now
	got = append(ms[0].since(began), ms[1].since(began)...)
	by := map[string][]int64{}
	for _, r := range got {
		k := fmt.Sprintf("%s/%d", r.topic, r.partition)
		by[k] = append(by[k], r.offset)
	}
	for _, tg := range targets {
		k := fmt.Sprintf("%s/%d", tg.Topic, tg.Partition)
		offs := by[k]
		sort.Slice(offs, func(a, b int) bool { return offs[a] < offs[b] })
		// A partition that moves between the members after the reset (the
		// removed members rejoin one after the other) is read again from
		// its last commit by its new owner, as in any rebalance: at least
		// once. The reset's promise is that reading starts at the target
		// and skips nothing; duplicates past the target are the group's.
		if uniq := slices.Compact(slices.Clone(offs)); len(uniq) != len(offs) {
			t.Logf("%s: %d records read again after the reset (a rebalance moved the partition before its owner committed)", k, len(offs)-len(uniq))
			offs = uniq
		}
		if int64(len(offs)) != end[tg.Topic]-tg.New || len(offs) == 0 || offs[0] != tg.New {
			for i, m := range ms {
				for _, r := range m.since(began) {
					if r.topic == tg.Topic && r.partition == tg.Partition && (r.offset < tg.New+2 || r.offset > end[tg.Topic]-2) {
						t.Logf("member %d: %s/%d@%d at +%v", i, r.topic, r.partition, r.offset, r.at.Sub(began))
					}
				}
			}
			t.Fatalf("%s after the reset: %v, want each of %d..%d, from the target on", k, offs, tg.New, end[tg.Topic]-1)
		}
		for i := 1; i < len(offs); i++ {
			if offs[i] != offs[i-1]+1 {
				t.Fatalf("%s after the reset: %v, want %d..%d contiguous and once", k, offs, tg.New, end[tg.Topic]-1)
			}
		}
	}
	// The group's commits go on as before: through the proxy it is at the end again.
	adm := kadm.NewClient(ms[0].cl)
	waitUntil(t, 30*time.Second, "the group commits the end again", func() bool {
		os, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		for _, tg := range targets {
			o, ok := os.Lookup(tg.Topic, tg.Partition)
			if !ok || o.At != end[tg.Topic] {
				return false
			}
		}
		return true
	})
}

// TestOffsetResetEmptyGroup: a group without members gets the targets
// committed, as Kafka's tool does, on each topic's cluster.
func TestOffsetResetEmptyGroup(t *testing.T) {
	env := startMigrationEnv(t)
	n := env.n
	ctx := context.Background()
	produce(t, env.east, "orders", []int{20, 20, 20, 20})
	if _, err := env.eastAdm.CommitOffsets(ctx, "idle", kadm.OffsetsFromRecords(kgo.Record{Topic: "orders", Partition: 0, Offset: 14})); err != nil {
		t.Fatal(err)
	}
	targets := []fsm.ResetTarget{{Topic: "orders", Partition: 0, Old: 15, New: 3}, {Topic: "orders", Partition: 1, Old: -1, New: 20}}
	created := startReset(t, n, "idle", targets)
	if j := waitReset(t, n, "idle", created); j.State != fsm.ResetApplied || len(j.Members) != 0 {
		t.Fatalf("reset %+v, want applied with no members", j)
	}
	os, err := env.eastAdm.FetchOffsets(ctx, "idle")
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if o, ok := os.Lookup("orders", tg.Partition); !ok || o.At != tg.New {
			t.Fatalf("orders/%d committed %+v, want %d", tg.Partition, o, tg.New)
		}
	}
	b, _ := json.Marshal(n.fsm.State().OffsetResets)
	t.Logf("jobs: %s", b)
}
