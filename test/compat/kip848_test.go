package compat

// KIP-848 consumer groups (ConsumerGroupHeartbeat, ConsumerGroupDescribe)
// through the proxy, with franz-go's ServerSideBalancer: the backend's
// coordinator assigns partitions by topic id, the proxy presents virtual
// ids and, for a group whose topics live on two clusters, one membership
// per cluster merged into one.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/sandbox"
)

// run848 is one consumer-protocol group run: members consume topics until
// n records are seen, committing what each poll returned before it lets a
// revocation through (BlockRebalanceOnPoll), so a partition's next owner
// starts after them. While the members are still in the group, running is
// called (to check the group as the proxy and the backends describe it).
type run848 struct {
	topics  []string
	group   string
	n       int
	members [][]kgo.Opt // one entry per member: its own options
	running func(cls []*kgo.Client)
}

func consume848(t *testing.T, sb *sandbox.Sandbox, run run848) []consumed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var (
		mu   sync.Mutex
		recs []consumed
		done = make(chan struct{})
		once sync.Once
		wg   sync.WaitGroup
		stop = make(chan struct{})
		cls  []*kgo.Client
	)
	for m, own := range run.members {
		cl, err := kgo.NewClient(append([]kgo.Opt{
			kgo.SeedBrokers(sb.Bootstrap[m%len(sb.Bootstrap)]),
			kgo.ConsumerGroup(run.group),
			kgo.ConsumeTopics(run.topics...),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(),
			kgo.BlockRebalanceOnPoll(),
			kgo.ServerSideBalancer(),
			kgo.FetchMaxWait(200 * time.Millisecond),
		}, own...)...)
		if err != nil {
			t.Fatal(err)
		}
		cls = append(cls, cl)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
				fs := cl.PollFetches(pctx)
				pcancel()
				if ctx.Err() != nil {
					cl.AllowRebalance()
					return
				}
				fs.EachError(func(topic string, p int32, err error) {
					if err != context.DeadlineExceeded {
						t.Logf("member %d fetch error %s/%d: %v", m, topic, p, err)
					}
				})
				var got []consumed
				fs.EachRecord(func(r *kgo.Record) {
					got = append(got, consumed{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), Value: string(r.Value)})
				})
				if len(got) > 0 {
					if err := cl.CommitUncommittedOffsets(ctx); err != nil {
						t.Logf("member %d commit: %v", m, err)
					}
				}
				cl.AllowRebalance()
				mu.Lock()
				recs = append(recs, got...)
				if len(recs) >= run.n {
					once.Do(func() { close(done) })
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	if run.running != nil && ctx.Err() == nil {
		run.running(cls)
	}
	close(stop)
	wg.Wait()
	var cwg sync.WaitGroup
	for _, cl := range cls {
		cwg.Go(cl.Close) // at once: no member waits on one about to leave
	}
	cwg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(recs)
}

// describe848 describes group with ConsumerGroupDescribe through adm.
func describe848(t *testing.T, adm *kadm.Client, group string) kadm.DescribedConsumerGroup {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ds, err := adm.DescribeConsumerGroups(ctx, group)
	if err != nil {
		t.Fatalf("describe consumer group %s: %v", group, err)
	}
	return ds[group]
}

// checkGroup848 checks, through the proxy, that group is a consumer-
// protocol group whose members hold every partition of topics (with
// parts partitions each) exactly once, named by the topics' names
// (the proxy's virtual ids resolved), and that each cluster in clusters
// has a backend group of its own with the same members.
func checkGroup848(t *testing.T, sb *sandbox.Sandbox, cls []*kgo.Client, group string, topics []string, parts int32, clusters ...string) {
	t.Helper()
	adm := kadm.NewClient(cls[0])
	var last string
	ok := false
	deadline := time.Now().Add(30 * time.Second)
	for !ok && time.Now().Before(deadline) {
		d := describe848(t, adm, group)
		last = fmt.Sprintf("err=%v state=%s members=%d", d.Err, d.State, len(d.Members))
		owners := map[string]int{}
		for _, m := range d.Members {
			for topic, ps := range m.Assignment {
				for p := range ps {
					owners[fmt.Sprintf("%s/%d", topic, p)]++
				}
			}
		}
		ok = d.Err == nil && len(d.Members) == len(cls)
		for _, topic := range topics {
			for p := range parts {
				if owners[fmt.Sprintf("%s/%d", topic, p)] != 1 {
					ok = false
				}
			}
		}
		if len(owners) != len(topics)*int(parts) {
			ok = false
		}
		last += fmt.Sprintf(" owners=%v", owners)
		if !ok {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !ok {
		t.Fatalf("group %s through the proxy never showed every partition owned once: %s", group, last)
	}
	for _, cluster := range clusters {
		_, badm := directTo(t, sb, cluster)
		d := describe848(t, badm, group)
		if d.Err != nil || len(d.Members) != len(cls) {
			t.Fatalf("cluster %s: group %s err=%v with %d members, want %d consumer-protocol members", cluster, group, d.Err, len(d.Members), len(cls))
		}
	}
}

// TestFranzGoConsumerProtocol: consumer-protocol groups (range and
// uniform assignors, then static members) of two members share a topic
// through the proxy: every record is consumed exactly once, the group is
// a KIP-848 group on the backend, and the committed offsets are the end
// offsets.
func TestFranzGoConsumerProtocol(t *testing.T) {
	sb := startSandbox(t)
	const n = 4000
	for _, tc := range []struct {
		name    string
		members [][]kgo.Opt
	}{
		{"range", [][]kgo.Opt{{kgo.Balancers(kgo.RangeBalancer())}, {kgo.Balancers(kgo.RangeBalancer())}}},
		{"uniform", [][]kgo.Opt{{kgo.Balancers(kgo.StickyBalancer())}, {kgo.Balancers(kgo.StickyBalancer())}}},
		{"static", [][]kgo.Opt{
			{kgo.Balancers(kgo.StickyBalancer()), kgo.InstanceID("static-a")},
			{kgo.Balancers(kgo.StickyBalancer()), kgo.InstanceID("static-b")},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic, group := "kip848-"+tc.name, "kip848-"+tc.name+"-g"
			createTopic(t, sb.Bootstrap[:1], topic, numPartitions)
			produceFranz(t, sb.Bootstrap[:1], topic, 0, n)
			recs := consume848(t, sb, run848{
				topics: []string{topic}, group: group, n: n, members: tc.members,
				running: func(cls []*kgo.Client) {
					checkGroup848(t, sb, cls, group, []string{topic}, numPartitions, sb.ClusterName)
				},
			})
			checkConsumed(t, recs, n)
			checkBackend(t, sb, topic, group, n)

			// The group resumes where it committed: a member started again
			// sees only new records. Static members come back as the same
			// instances (a static member that left keeps its partitions
			// until its session times out, KIP-345).
			produceFranz(t, sb.Bootstrap[1:2], topic, n, n+100)
			again := tc.members[:1]
			if tc.name == "static" {
				again = tc.members
			}
			more := consume848(t, sb, run848{topics: []string{topic}, group: group, n: 100, members: again})
			if len(more) != 100 {
				t.Fatalf("restarted member saw %d records, want the 100 new ones", len(more))
			}
			for _, r := range more {
				if r.Value < recordValue(n) {
					t.Fatalf("restarted member re-read %s", r.Value)
				}
			}
		})
	}
}

// TestConsumerProtocolAcrossClusters: a consumer-protocol group of two
// members over a topic on each of two clusters. Each cluster holds a
// KIP-848 group of its own with both members; the members see one
// assignment covering both topics, consume every record exactly once and
// commit the end offsets on each cluster (checked directly).
func TestConsumerProtocolAcrossClusters(t *testing.T) {
	sb := startTwoClusters(t)
	const east, west, group = "kip848-east", "west.kip848", "kip848-cross-g"
	const n = 3000
	createTopic(t, sb.Bootstrap, east, numPartitions)
	createTopic(t, sb.Bootstrap, west, numPartitions)
	produceFranz(t, sb.Bootstrap, east, 0, n)
	produceFranz(t, sb.Bootstrap, west, n, 2*n)
	members := [][]kgo.Opt{{kgo.Balancers(kgo.RangeBalancer())}, {kgo.Balancers(kgo.RangeBalancer())}}
	recs := consume848(t, sb, run848{
		topics: []string{east, west}, group: group, n: 2 * n, members: members,
		running: func(cls []*kgo.Client) {
			checkGroup848(t, sb, cls, group, []string{east, west}, numPartitions, "east", "west")
		},
	})
	checkConsumed(t, recs, 2*n)
	waitCommittedOn(t, sb, "east", east, group)
	waitCommittedOn(t, sb, "west", west, group)

	// A member started again resumes at the commits on both clusters.
	produceFranz(t, sb.Bootstrap, east, 2*n, 2*n+50)
	produceFranz(t, sb.Bootstrap, west, 2*n+50, 2*n+100)
	more := consume848(t, sb, run848{topics: []string{east, west}, group: group, n: 100, members: members[:1]})
	if len(more) != 100 {
		t.Fatalf("restarted member saw %d records, want the 100 new ones", len(more))
	}
	for _, r := range more {
		if r.Value < recordValue(2*n) {
			t.Fatalf("restarted member re-read %s", r.Value)
		}
	}
}

// TestConsumerProtocolGainsCluster: a consumer-protocol member on a topic
// of one cluster adds a topic of another (kgo AddConsumeTopics): it then
// consumes both, every record once, and commits on both clusters.
func TestConsumerProtocolGainsCluster(t *testing.T) {
	sb := startTwoClusters(t)
	const east, west, group = "kip848-gain", "west.kip848-gain", "kip848-gain-g"
	const n = 500
	createTopic(t, sb.Bootstrap, east, 3)
	createTopic(t, sb.Bootstrap, west, 3)
	produceFranz(t, sb.Bootstrap, east, 0, n)
	produceFranz(t, sb.Bootstrap, west, n, 2*n)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(sb.Bootstrap...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(east),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ServerSideBalancer(),
		kgo.Balancers(kgo.StickyBalancer()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var recs []consumed
	added := false
	for len(recs) < 2*n && ctx.Err() == nil {
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := cl.PollFetches(pctx)
		pcancel()
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, consumed{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), Value: string(r.Value)})
		})
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Logf("commit: %v", err)
		}
		cl.AllowRebalance()
		if !added && len(recs) >= n {
			cl.AddConsumeTopics(west)
			added = true
		}
	}
	checkConsumed(t, recs, 2*n)
	waitCommittedOn(t, sb, "east", east, group)
	waitCommittedOn(t, sb, "west", west, group)
}
