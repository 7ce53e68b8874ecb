package compat

// Metadata sharing: two kfake clusters, east (the default) and west (topics
// starting with "west."), behind three peers. Real clients see one
// cluster; the backends are checked directly.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/sandbox"
)

const westPrefix = "west."

func startTwoClusters(t *testing.T, setup ...fsm.Command) *sandbox.Sandbox {
	t.Helper()
	return startSandboxWith(t, sandbox.Config{
		Clusters: []sandbox.ClusterSpec{{Name: "east", Brokers: 3}, {Name: "west", Brokers: 3}},
		Setup:    append([]fsm.Command{&fsm.PutPrefixRoute{Prefix: westPrefix, Cluster: "west"}}, setup...),
		Peers:    3,
	})
}

// directTo returns an admin client on one backend cluster, bypassing the
// proxy.
func directTo(t testing.TB, sb *sandbox.Sandbox, cluster string) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Backends[cluster].ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

func topicsOn(t testing.TB, adm *kadm.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	td, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return td.Names()
}

// TestMergedMetadataAndCreation: topics created through the proxy land on
// the routed cluster (checked on each backend), and kcat, kafka-python and
// franz-go list the merged set with the peers as brokers. A topic that
// exists on both clusters shows only as its route says, and the conflict
// is reported in /v1/status.
func TestMergedMetadataAndCreation(t *testing.T) {
	sb := startTwoClusters(t)
	createTopic(t, sb.Bootstrap, "orders", 4)
	createTopic(t, sb.Bootstrap, "west.logs", 2)
	_, east := directTo(t, sb, "east")
	_, west := directTo(t, sb, "west")
	if e, w := topicsOn(t, east), topicsOn(t, west); !slices.Contains(e, "orders") || slices.Contains(e, "west.logs") ||
		!slices.Contains(w, "west.logs") || slices.Contains(w, "orders") {
		t.Fatalf("topics on east %v, on west %v: each topic must be only on its routed cluster", e, w)
	}
	// "dup" lives on both backends with different partition counts; the
	// route sends it to west.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := east.CreateTopic(ctx, 2, 1, nil, "dup"); err != nil {
		t.Fatal(err)
	}
	if _, err := west.CreateTopic(ctx, 5, 1, nil, "dup"); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Apply(ctx, &fsm.PutRoute{Topic: "dup", Cluster: "west"}); err != nil {
		t.Fatal(err)
	}

	kcat := needCommand(t, "kcat")
	waitFor(t, 20*time.Second, "kcat lists the merged topics", func() bool {
		out, err := exec.Command(kcat, "-b", sb.Bootstrap[1], "-L", "-J").Output()
		if err != nil {
			return false
		}
		var md struct {
			Brokers []struct{ ID int32 }
			Topics  []struct {
				Topic      string
				Partitions []struct{ Partition int32 }
			}
		}
		if json.Unmarshal(out, &md) != nil || len(md.Brokers) != 3 {
			return false
		}
		parts := map[string]int{}
		for _, tp := range md.Topics {
			parts[tp.Topic] = len(tp.Partitions)
		}
		return parts["orders"] == 4 && parts["west.logs"] == 2 && parts["dup"] == 5
	})
	// "dup" was created at the backends directly, not through the proxy:
	// a peer's listing shows it from its next metadata refresh (1 s here),
	// so peer 2 is asked until it does.
	var py []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		pyOut, _ := runPyclient(t, 60*time.Second, "topics", sb.Bootstrap[2])
		py = strings.Fields(pyOut)
		if slices.Contains(py, "orders") && slices.Contains(py, "west.logs") && slices.Contains(py, "dup") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kafka-python lists %v, want orders, west.logs and dup", py)
		}
		time.Sleep(500 * time.Millisecond)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	md, err := kadm.NewClient(cl).Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if md.Cluster == "" || len(md.Brokers) != 3 {
		t.Fatalf("metadata: cluster id %q, brokers %v", md.Cluster, md.Brokers.NodeIDs())
	}
	for _, b := range md.Brokers {
		if !slices.Contains(sb.Bootstrap, fmt.Sprintf("%s:%d", b.Host, b.Port)) {
			t.Fatalf("broker %s:%d is not a peer", b.Host, b.Port)
		}
	}
	// The virtual cluster id is the same through every peer.
	for _, addr := range sb.Bootstrap[1:] {
		c2, err := kgo.NewClient(kgo.SeedBrokers(addr))
		if err != nil {
			t.Fatal(err)
		}
		md2, err := kadm.NewClient(c2).Metadata(ctx)
		c2.Close()
		if err != nil || md2.Cluster != md.Cluster {
			t.Fatalf("peer %s presents cluster id %q, peer 0 %q (%v)", addr, md2.Cluster, md.Cluster, err)
		}
	}
	waitFor(t, 20*time.Second, "the dup conflict in /v1/status", func() bool {
		var st struct {
			TopicConflicts []struct {
				Topic    string   `json:"topic"`
				Clusters []string `json:"clusters"`
				RoutedTo string   `json:"routed_to"`
			} `json:"topic_conflicts"`
		}
		resp, err := http.Get(sb.AdminURLs[0] + "/v1/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if json.NewDecoder(resp.Body).Decode(&st) != nil {
			return false
		}
		for _, c := range st.TopicConflicts {
			if c.Topic == "dup" && c.RoutedTo == "west" && len(c.Clusters) == 2 {
				return true
			}
		}
		return false
	})
}

// TestGroupAcrossClusters: one franz-go group (3 members) and one sarama
// group consume topics on both clusters; each topic's offsets are
// committed on its own cluster (checked directly), and a restarted member
// resumes from them on both clusters without loss or duplicates.
func TestGroupAcrossClusters(t *testing.T) {
	sb := startTwoClusters(t)
	const east, west = "cross-east", "west.cross"
	const n = 3000
	createTopic(t, sb.Bootstrap, east, numPartitions)
	createTopic(t, sb.Bootstrap, west, numPartitions)
	produceFranz(t, sb.Bootstrap, east, 0, n)
	produceFranz(t, sb.Bootstrap, west, n, 2*n)

	// franz-go: 3 members on both topics.
	recs := consumeGroupTopics(t, sb, []string{east, west}, "cross-franz", 3, 2*n)
	checkConsumed(t, recs, 2*n)
	waitCommittedOn(t, sb, "east", east, "cross-franz")
	waitCommittedOn(t, sb, "west", west, "cross-franz")

	// More records, and one member restarting: it resumes where the group
	// committed, on both clusters.
	produceFranz(t, sb.Bootstrap, east, 2*n, 2*n+500)
	produceFranz(t, sb.Bootstrap, west, 2*n+500, 2*n+1000)
	again := consumeGroupTopics(t, sb, []string{east, west}, "cross-franz", 1, 1000)
	seen := map[string]bool{}
	for _, r := range again {
		v, _ := strconv.Atoi(r.Value)
		if v < 2*n {
			t.Fatalf("restarted member re-read record %s committed before", r.Value)
		}
		if seen[r.Value] {
			t.Fatalf("restarted member read %s twice", r.Value)
		}
		seen[r.Value] = true
	}
	if len(seen) != 1000 {
		t.Fatalf("restarted member read %d new records, want 1000", len(seen))
	}

	// sarama: one group over both topics.
	cfg := saramaConfig(sarama.V3_6_0_0, "cross-sarama")
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	group, err := sarama.NewConsumerGroup(sb.Bootstrap[1:2], "cross-sarama", cfg)
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	close(gate)
	h := &saramaHandler{gate: gate, want: 2*n + 1000, done: make(chan struct{}), byMember: map[string]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if err := group.Consume(ctx, []string{east, west}, h); err != nil && ctx.Err() == nil {
				t.Logf("sarama consume: %v", err)
			}
			select {
			case <-h.done:
				return
			default:
			}
		}
	}()
	select {
	case <-h.done:
	case <-ctx.Done():
		h.mu.Lock()
		got := len(h.recs)
		h.mu.Unlock()
		t.Fatalf("sarama consumed %d of %d", got, 2*n+1000)
	}
	cancel()
	if err := group.Close(); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	checkConsumed(t, h.recs, 2*n+1000)
	h.mu.Unlock()
	waitCommittedOn(t, sb, "east", east, "cross-sarama")
	waitCommittedOn(t, sb, "west", west, "cross-sarama")
}

// waitCommittedOn checks, directly on cluster, that group committed the
// end offset of every partition of topic.
func waitCommittedOn(t *testing.T, sb *sandbox.Sandbox, cluster, topic, group string) {
	t.Helper()
	_, adm := directTo(t, sb, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	waitCommitted(t, adm, topic, group, ends, 0)
}

// consumeGroupTopics is consumeGroup over several topics.
func consumeGroupTopics(t *testing.T, sb *sandbox.Sandbox, topics []string, group string, members, n int) []consumed {
	t.Helper()
	// BlockRebalanceOnPoll: a member commits what it polled before a
	// rebalance may revoke the partitions. Without it, a loaded run had a
	// member's last records counted while the rebalance dropped their
	// commit, and the committed offsets never reached the end
	// (TestGroupAcrossClusters).
	return consumeGroup(t, sb, topics[0], group, members, n, kgo.ConsumeTopics(topics...), kgo.BlockRebalanceOnPoll())
}

// TestIdempotentProducersAcrossClusters: an idempotent franz-go producer
// and an idempotent librdkafka producer (kcat) write 100,000 records to
// topics on both clusters; every record arrives exactly once. The
// producer ids on each backend are the cluster's own (the proxy maps its
// virtual ones).
func TestIdempotentProducersAcrossClusters(t *testing.T) {
	sb := startTwoClusters(t)
	const eastT, westT = "idem-east", "west.idem"
	createTopic(t, sb.Bootstrap, eastT, numPartitions)
	createTopic(t, sb.Bootstrap, westT, numPartitions)
	const n = 100000
	// franz-go: one producer, records alternating between the clusters.
	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range n / 2 {
		topic := eastT
		if i%2 == 1 {
			topic = westT
		}
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(recordKey(i)), Value: []byte("franz-" + recordValue(i))}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil && failed.Add(1) == 1 {
				t.Errorf("franz-go produce: %v", err)
			}
		})
	}
	wg.Wait()
	cl.Close()
	// kcat (librdkafka) with idempotence, the other half, to both topics.
	kcat := needCommand(t, "kcat")
	for _, topic := range []string{eastT, westT} {
		var in bytes.Buffer
		for i := n / 2; i < n; i++ {
			if (i%2 == 0) == (topic == eastT) {
				fmt.Fprintf(&in, "%s\tkcat-%s\n", recordKey(i), recordValue(i))
			}
		}
		cmd := exec.CommandContext(ctx, kcat, "-b", sb.Bootstrap[2], "-P", "-t", topic, "-K", "\t",
			"-X", "enable.idempotence=true", "-X", "acks=all", "-X", "linger.ms=5")
		cmd.Stdin = &in
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat produce to %s: %v: %s", topic, err, out)
		}
	}
	// Read both topics back directly from each backend: every value once.
	seen := map[string]int{}
	for cluster, topic := range map[string]string{"east": eastT, "west": westT} {
		c, err := kgo.NewClient(kgo.SeedBrokers(sb.Backends[cluster].ListenAddrs()...), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		want := n / 2
		got := 0
		for got < want && ctx.Err() == nil {
			fs := c.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				seen[string(r.Value)]++
				got++
			})
		}
		c.Close()
		if got != want {
			t.Fatalf("%s holds %d records, want %d", topic, got, want)
		}
	}
	for v, k := range seen {
		if k != 1 {
			t.Fatalf("record %s stored %d times", v, k)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct records stored, want %d", len(seen), n)
	}
}

// onBothClusters creates topic (3 partitions) through the proxy, where it
// routes to east, and directly on west, the cluster a test re-points it
// to; it returns west's admin client.
func onBothClusters(t *testing.T, sb *sandbox.Sandbox, topic string) *kadm.Client {
	t.Helper()
	createTopic(t, sb.Bootstrap, topic, 3)
	_, west := directTo(t, sb, "west")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := west.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	return west
}

// TestRouteRepointUnderProduction: a topic re-pointed from east to west
// while a producer writes to it: the producer moves to west within a
// metadata refresh and every acknowledged record is on one of the two
// clusters (the ones written before the switch stay on east).
// No produce fails: the proxy bounces the first request after the switch
// with NOT_LEADER_OR_FOLLOWER (retried), and the topic keeps its virtual
// id, so the client does not take the new cluster's copy for a recreated
// topic (franz-go would fail every record then).
func TestRouteRepointUnderProduction(t *testing.T) {
	sb := startTwoClusters(t)
	const topic = "moving"
	west := onBothClusters(t, sb, topic)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MetadataMinAge(250*time.Millisecond), kgo.MetadataMaxAge(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var acked sync.Map
	var ackedN, onWestN atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := "m-" + strconv.Itoa(i)
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Errorf("produce %s: %v", v, err)
				return
			}
			acked.Store(v, true)
			ackedN.Add(1)
		}
	}()
	waitFor(t, 20*time.Second, "records on east", func() bool { return ackedN.Load() > 200 })
	if _, err := sb.Apply(ctx, &fsm.PutRoute{Topic: topic, Cluster: "west"}); err != nil {
		t.Fatal(err)
	}
	switched := time.Now()
	waitFor(t, 30*time.Second, "production reaching west", func() bool {
		ends, err := west.ListEndOffsets(ctx, topic)
		if err != nil {
			return false
		}
		var total int64
		ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
		onWestN.Store(total)
		return total > 200
	})
	t.Logf("producer moved to west %v after the route change", time.Since(switched).Round(time.Millisecond))
	close(stop)
	<-done
	// Every acknowledged value is on east or west.
	stored := map[string]bool{}
	for _, cluster := range []string{"east", "west"} {
		c, err := kgo.NewClient(kgo.SeedBrokers(sb.Backends[cluster].ListenAddrs()...), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		_, adm := directTo(t, sb, cluster)
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		var want int64
		ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
		var got int64
		for got < want && ctx.Err() == nil {
			c.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				stored[string(r.Value)] = true
				got++
			})
		}
		c.Close()
	}
	missing := 0
	acked.Range(func(k, _ any) bool {
		if !stored[k.(string)] {
			missing++
		}
		return true
	})
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged records are on neither cluster", missing, ackedN.Load())
	}
}

// TestRouteRepointUnderConsumption: a consumer group committing after
// every poll while its topic is re-pointed from east to west. After the
// switch the proxy bounces the group's first fetch naming the topic with
// NOT_LEADER_OR_FOLLOWER and its first commit with NOT_COORDINATOR, which
// the client retries after finding the coordinator again: no commit
// fails, and the group reads what is produced after the switch. (Not all
// of it: the group's positions carry over to west as numbers, so west's
// records below them are skipped. A re-point moves clients, not data or
// offsets; the live migration keeps offsets continuous.)
func TestRouteRepointUnderConsumption(t *testing.T) {
	sb := startTwoClusters(t)
	const topic, group = "moving-c", "moving-c-group"
	onBothClusters(t, sb, topic)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...), kgo.DefaultProduceTopic(topic),
		kgo.MetadataMinAge(250*time.Millisecond), kgo.MetadataMaxAge(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	produce := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(prefix + strconv.Itoa(i))}).FirstErr(); err != nil {
				t.Fatalf("produce %s%d: %v", prefix, i, err)
			}
		}
	}
	produce("east-", 150)

	cons, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMinAge(250*time.Millisecond), kgo.MetadataMaxAge(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var east, westSeen atomic.Int64
	var commits atomic.Int64
	commitErr := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cons.PollFetches(ctx)
			fs.EachError(func(topic string, p int32, err error) {
				t.Logf("fetch %s[%d]: %v", topic, p, err)
			})
			fs.EachRecord(func(r *kgo.Record) {
				if strings.HasPrefix(string(r.Value), "west-") {
					westSeen.Add(1)
				} else {
					east.Add(1)
				}
			})
			if err := cons.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
				select {
				case commitErr <- err:
				default:
				}
				return
			}
			commits.Add(1)
		}
	}()
	waitFor(t, 30*time.Second, "the group consuming east", func() bool { return east.Load() >= 150 })
	if _, err := sb.Apply(ctx, &fsm.PutRoute{Topic: topic, Cluster: "west"}); err != nil {
		t.Fatal(err)
	}
	before := commits.Load()
	// Records produced after the switch, wherever they land (east until
	// this peer applies the route, west after); the group must read on
	// and go on committing.
	produce("west-", 600)
	defer func() {
		t.Logf("%d records from east, %d produced after the switch, %d commits (%d before it)", east.Load(), westSeen.Load(), commits.Load(), before)
	}()
	waitFor(t, 45*time.Second, "the group reading what was produced after the switch", func() bool {
		select {
		case err := <-commitErr:
			t.Fatalf("a commit failed after the route change: %v", err)
		default:
		}
		return westSeen.Load() > 0 && commits.Load() > before
	})
	cancel()
	<-done
	select {
	case err := <-commitErr:
		t.Fatalf("a commit failed: %v", err)
	default:
	}
}

// TestRouteToUnknownClusterRefused: the admin API refuses a route to a
// cluster that does not exist with 400 and changes nothing.
func TestRouteToUnknownClusterRefused(t *testing.T) {
	sb := startTwoClusters(t)
	get := func() string {
		resp, err := http.Get(sb.AdminURLs[0] + "/v1/routes?consistent=1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return b.String()
	}
	before := get()
	req, _ := http.NewRequest(http.MethodPut, sb.AdminURLs[1]+"/v1/routes/orders", strings.NewReader(`{"cluster":"north"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body.String(), "north") {
		t.Fatalf("PUT route to an unknown cluster: %d %s", resp.StatusCode, body.String())
	}
	if after := get(); after != before {
		t.Fatalf("a refused route changed the table:\n%s\n%s", before, after)
	}
}
