package node

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/kafka"
)

// startMetricsPeer runs one peer in front of one kfake cluster "c1" with
// the consumer-group lag poll on, and waits for its data plane.
func startMetricsPeer(t *testing.T, kc *kfake.Cluster, maxGroups int) *Node {
	t.Helper()
	n, err := New(Config{
		Name:              "solo",
		DataDir:           filepath.Join(t.TempDir(), "solo"),
		KafkaListen:       "127.0.0.1:0",
		AdminListen:       "127.0.0.1:0",
		RaftListen:        "127.0.0.1:0",
		GossipListen:      "127.0.0.1:0",
		BootstrapExpect:   1,
		MetadataRefresh:   500 * time.Millisecond,
		Timing:            FastTiming(),
		GroupLagInterval:  200 * time.Millisecond,
		GroupLagMaxGroups: maxGroups,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	waitUntil(t, 20*time.Second, "the peer leads", n.IsLeader)
	b, _ := json.Marshal(map[string]any{"bootstrap": kc.ListenAddrs()})
	if code, _, body := call(t, n, "PUT", "/v1/clusters/c1", "", string(b)); code != 200 {
		t.Fatalf("put cluster: %d %s", code, body)
	}
	if code, _, body := call(t, n, "PUT", "/v1/default-cluster", "", `{"cluster":"c1"}`); code != 200 {
		t.Fatalf("default cluster: %d %s", code, body)
	}
	waitUntil(t, 30*time.Second, "the backend loads", func() bool {
		_, err := n.migrationBackend("c1")
		return err == nil
	})
	return n
}

// gathered reads the series of name whose labels include want (name,
// value pairs) from reg: a counter's or gauge's value, a histogram's count;
// -1 when absent.
func gathered(t *testing.T, reg *prometheus.Registry, name string, want ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k := 0; k+1 < len(want); k += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == want[k] && l.GetValue() == want[k+1]
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// driveTraffic produces 10 records to each of orders' two partitions
// through the peer, consumes them as group g1 and commits, then commits
// for g1 and g2 at the offsets given (partition 0 and 1 each).
func driveTraffic(t *testing.T, n *Node, g1, g2 int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pc := proxyClient(t, n, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DefaultProduceTopic("orders"), kgo.ClientID("metrics-producer"))
	for p := range int32(2) {
		for i := range 10 {
			if err := pc.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
	}
	cc := proxyClient(t, n, kgo.ConsumeTopics("orders"), kgo.ConsumerGroup("g1"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	seen := 0
	for seen < 20 {
		fs := cc.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of 20: %v", seen, ctx.Err())
		}
		seen += len(fs.Records())
	}
	cc.Close()
	adm := kadm.NewClient(proxyClient(t, n))
	for g, at := range map[string]int64{"g1": g1, "g2": g2} {
		o := kadm.Offsets{}
		o.Add(kadm.Offset{Topic: "orders", Partition: 0, At: at, LeaderEpoch: -1})
		o.Add(kadm.Offset{Topic: "orders", Partition: 1, At: at, LeaderEpoch: -1})
		if err := adm.CommitAllOffsets(ctx, g, o); err != nil {
			t.Fatalf("commit %s: %v", g, err)
		}
	}
}

// TestGroupLagMetric: the leader polls committed offsets and log ends
// through its loopback client; the most lagging group has its series, the
// other is summed as "(other)" (cap 1).
func TestGroupLagMetric(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	n := startMetricsPeer(t, kc, 1)
	// g1 at 3 on both partitions: lag 7+7; g2 at 9: lag 1+1.
	driveTraffic(t, n, 3, 9)
	waitUntil(t, 30*time.Second, "g1's lag 14 and (other)'s 2", func() bool {
		return gathered(t, n.reg, "switchyard_group_lag_records", "group", "g1", "topic", "orders") == 14 &&
			gathered(t, n.reg, "switchyard_group_lag_records", "group", OtherGroup, "topic", "orders") == 2
	})
	if v := gathered(t, n.reg, "switchyard_group_lag_records", "group", "g2"); v != -1 {
		t.Errorf("g2 has a series of its own past the cap: %v", v)
	}
	// g1 catches up (lag 0): g2, now the most lagging, takes the one slot
	// and g1 is summed into "(other)" at 0.
	adm := kadm.NewClient(proxyClient(t, n))
	o := kadm.Offsets{}
	o.Add(kadm.Offset{Topic: "orders", Partition: 0, At: 10, LeaderEpoch: -1})
	o.Add(kadm.Offset{Topic: "orders", Partition: 1, At: 10, LeaderEpoch: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := adm.CommitAllOffsets(ctx, "g1", o); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "g2's lag 2 and (other)'s 0", func() bool {
		return gathered(t, n.reg, "switchyard_group_lag_records", "group", "g2", "topic", "orders") == 2 &&
			gathered(t, n.reg, "switchyard_group_lag_records", "group", OtherGroup, "topic", "orders") == 0 &&
			gathered(t, n.reg, "switchyard_group_lag_records", "group", "g1") == -1
	})
}

// TestMetricsDocumented: every metric a running peer exports after real
// traffic (produce, fetch, groups, the lag poll) is named in
// docs/metrics.md, and so is every metric the data plane registers even
// before it has a series (kafka.NewMetrics described through a recording
// registerer).
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`(switchyard_[a-z0-9_]+)`").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	n := startMetricsPeer(t, kc, 10)
	driveTraffic(t, n, 3, 9)
	waitUntil(t, 30*time.Second, "the lag poll", func() bool {
		return gathered(t, n.reg, "switchyard_group_lag_records", "group", "g1", "topic", "orders") == 14
	})
	names := map[string]bool{}
	mfs, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	rec := &recordingRegisterer{names: names}
	kafka.NewMetrics(rec, 0)
	for name := range names {
		if !isSwitchyard(name) {
			continue // Go runtime and process collectors
		}
		if !documented[name] {
			t.Errorf("metric %s is exported but not documented in docs/metrics.md (as `%s`)", name, name)
		}
	}
	for _, must := range []string{"switchyard_kafka_topic_records_total", "switchyard_kafka_client_connections", "switchyard_backend_broker_up", "switchyard_group_lag_records"} {
		if !names[must] {
			t.Errorf("%s is not exported by the running peer", must)
		}
	}
}

func isSwitchyard(name string) bool { return len(name) > 11 && name[:11] == "switchyard_" }

// recordingRegisterer records the fully-qualified names of the
// collectors registered on it.
type recordingRegisterer struct{ names map[string]bool }

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := descName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return nil
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		r.Register(c)
	}
}

func (r *recordingRegisterer) Unregister(prometheus.Collector) bool { return true }

// TestGroupLagKIP848: a group on the consumer protocol (KIP-848, the
// broker assigns) has its lag polled too, while its member is in it and
// after it leaves.
func TestGroupLagKIP848(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	n := startMetricsPeer(t, kc, 10)
	driveTraffic(t, n, 10, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cc := proxyClient(t, n, kgo.ConsumeTopics("orders"), kgo.ConsumerGroup("g848"), kgo.ServerSideBalancer(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	for seen := 0; seen < 20; {
		fs := cc.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of 20: %v", seen, ctx.Err())
		}
		seen += len(fs.Records())
	}
	// Committed 5 and 6 of 10: lag 5+4.
	var cerr error
	done := make(chan struct{})
	cc.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{"orders": {0: {Epoch: -1, Offset: 5}, 1: {Epoch: -1, Offset: 6}}},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			defer close(done)
			if err != nil {
				cerr = err
				return
			}
			for _, tp := range resp.Topics {
				for _, p := range tp.Partitions {
					if p.ErrorCode != 0 {
						cerr = kerr.ErrorForCode(p.ErrorCode)
					}
				}
			}
		})
	<-done
	if cerr != nil {
		t.Fatalf("commit: %v", cerr)
	}
	waitUntil(t, 30*time.Second, "g848's lag 9 with its member in", func() bool {
		return gathered(t, n.reg, "switchyard_group_lag_records", "group", "g848", "topic", "orders") == 9
	})
	cc.Close()
	waitUntil(t, 30*time.Second, "g848's lag 9 once empty", func() bool {
		return gathered(t, n.reg, "switchyard_group_lag_records", "group", "g848", "topic", "orders") == 9
	})
}
