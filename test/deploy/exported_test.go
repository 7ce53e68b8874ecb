package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/node"
	"github.com/switchyard-proxy/switchyard/sandbox"
)

const (
	topicOrders  = "orders"  // routed to east with west as its fallback: failed over and back
	topicMetered = "metered" // a small produce quota: throttled
	topicMoving  = "moving"  // migrated east → west (left switched: its phase gauge shows)
	groupOrders  = "deploy-orders"
	meteredQuota = 2048 // bytes per second, cluster-wide
)

// TestMetricNamesExported starts a sandbox (clusters east and west, three
// peers), drives what makes each series appear — produce and fetch
// traffic with franz-go, a committing group, a fetch out of range, a
// producer above its topic's quota, a migration and a read of the migrated
// topic from its start, an offset reset, a failover and failback — scrapes every peer's /metrics along the way and
// checks that every switchyard_ metric the alert rules or the dashboard
// name was exported by some peer.
func TestMetricNamesExported(t *testing.T) {
	used := usedMetrics(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	timing := node.FastTiming()
	// Tolerant of a busy two-core machine (as test/migration).
	timing.RaftHeartbeat, timing.RaftElection, timing.RaftLeaderLease = 2*time.Second, 2*time.Second, time.Second
	sb, err := sandbox.Start(ctx, sandbox.Config{
		GroupLagInterval: 10 * time.Second, // switchyard_group_lag_records within a session
		Clusters:         []sandbox.ClusterSpec{{Name: "east", Brokers: 1}, {Name: "west", Brokers: 1}},
		Peers:            3,
		Setup: []fsm.Command{
			&fsm.PutRoute{Topic: topicOrders, Cluster: "east", RouteTargets: fsm.RouteTargets{Fallback: []string{"west"}, Failback: fsm.FailbackManual}},
			&fsm.PutQuota{Quota: fsm.Quota{Topic: topicMetered, ProduceBytesPerSec: meteredQuota}},
		},
		MetadataRefresh: time.Second,
		Timing:          &timing,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("start sandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := sb.Close(); err != nil {
			t.Errorf("sandbox close: %v", err)
		}
	})
	if len(sb.AdminURLs) != 3 {
		t.Fatalf("sandbox admin URLs %v", sb.AdminURLs)
	}
	seen := map[string]bool{}
	scrapeAll := func(step string) {
		t.Helper()
		for _, u := range sb.AdminURLs {
			if err := scrape(ctx, u, seen); err != nil {
				t.Fatalf("after %s: %v", step, err)
			}
		}
	}
	scrapeAll("start")

	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...), kgo.ClientID("deploy-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, tp := range []string{topicOrders, topicMetered, topicMoving} {
		createTopic(t, ctx, cl, tp)
	}

	// Traffic: produce, a committing group, a fetch out of range.
	produce(t, ctx, cl, topicOrders, 100, 100)
	produce(t, ctx, cl, topicMoving, 20, 100)
	consumeAndCommit(t, ctx, sb.Bootstrap, topicOrders, groupOrders, 100)
	produce(t, ctx, cl, topicOrders, 50, 100) // the group is behind again
	fetchOutOfRange(t, ctx, sb.Bootstrap, topicOrders)
	scrapeAll("traffic")

	// A producer above its quota until some peer throttles it.
	waitFor(t, ctx, "a throttled produce to "+topicMetered, func() error {
		produce(t, ctx, cl, topicMetered, 10, 1024)
		scrapeAll("produce above the quota")
		if !seen["switchyard_quota_throttled_requests_total"] {
			return errors.New("no throttled request counted yet")
		}
		return nil
	})

	api := &admin{urls: sb.AdminURLs}
	// A migration, left switched: its phase gauge stays at serving.
	api.must(t, ctx, http.MethodPost, "/v1/migrations", map[string]string{"topic": topicMoving, "to": "west"}, http.StatusAccepted)
	waitFor(t, ctx, "the migration of "+topicMoving+" switched", func() error {
		var m struct {
			State, Phase, Error string
		}
		if err := api.get(ctx, "/v1/migrations/"+topicMoving, &m); err != nil {
			return err
		}
		if m.State == "failed" || m.State == "aborted" {
			t.Fatalf("migration %s: %s (%s)", m.State, m.Phase, m.Error)
		}
		if m.State != "switched" {
			return fmt.Errorf("state %s, phase %s", m.State, m.Phase)
		}
		return nil
	})
	// Reading the migrated topic from its start reads the source segment.
	consumeFromStart(t, ctx, sb.Bootstrap, topicMoving, 20)
	scrapeAll("migration")

	// An offset reset of the (empty) group.
	api.must(t, ctx, http.MethodPost, "/v1/groups/"+groupOrders+"/offset-resets",
		map[string]any{"topics": []string{topicOrders}, "to": "earliest"}, http.StatusAccepted)
	waitFor(t, ctx, "the offset reset of "+groupOrders, func() error {
		var r struct{ State, Error string }
		if err := api.get(ctx, "/v1/groups/"+groupOrders+"/offset-resets", &r); err != nil {
			return err
		}
		switch r.State {
		case "applied":
			return nil
		case "failed":
			t.Fatalf("offset reset failed: %s", r.Error)
		}
		return fmt.Errorf("state %s", r.State)
	})
	scrapeAll("offset reset")

	// A manual failover of east, and the failback.
	api.must(t, ctx, http.MethodPost, "/v1/failover/east", nil, http.StatusOK)
	scrapeAll("failover")
	api.must(t, ctx, http.MethodPost, "/v1/failback/east", nil, http.StatusOK)
	produce(t, ctx, cl, topicOrders, 10, 100)
	scrapeAll("failback")

	// On the branch of the alerts part alone, the metrics part's series
	// are not in the tree: they are listed, not required. docs/metrics.md
	// (the metrics part's) or any one of them exported means the metrics
	// part is merged, and then every one is required.
	_, docErr := os.Stat(metricsDoc)
	metricsMerged := docErr == nil || slices.ContainsFunc(expectedFromMetricsHelper, func(n string) bool { return seen[n] })
	var missing, pending []string
	check := func() {
		missing, pending = nil, nil
		for _, n := range sortedKeys(used) {
			if seen[n] {
				continue
			}
			if !metricsMerged && slices.Contains(expectedFromMetricsHelper, n) {
				pending = append(pending, n)
				continue
			}
			missing = append(missing, fmt.Sprintf("%s (used by the %s)", n, strings.Join(used[n], " and the ")))
		}
	}
	// Series computed on a period (the leader's group-lag poll, every
	// --group-lag-interval, 30 s by default) may appear after the last
	// step: scrape again for up to 75 s before calling a name missing.
	// (The sandbox must turn that poll on: node.Config.GroupLagInterval.)
	check()
	for deadline := time.Now().Add(75 * time.Second); len(missing) > 0 && time.Now().Before(deadline); check() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", missing, ctx.Err())
		case <-time.After(time.Second):
		}
		scrapeAll("waiting for " + strings.Join(missing, ", "))
	}
	if len(pending) > 0 {
		t.Logf("expected from the metrics helper (issue 13's metrics part is not in this tree; not checked): %s", strings.Join(pending, ", "))
	}
	if len(missing) > 0 {
		t.Errorf("%d metric(s) the rules or the dashboard use are not exported by any peer:\n  %s", len(missing), strings.Join(missing, "\n  "))
	}
	t.Logf("%d metric names used by the rules and the dashboard; %d exported by the sandbox", len(used), len(used)-len(missing)-len(pending))
}

// waitFor retries f every 250 ms until it succeeds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, f func() error) {
	t.Helper()
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v (last: %v)", what, ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func createTopic(t *testing.T, ctx context.Context, cl *kgo.Client, topic string) {
	t.Helper()
	tried := false
	waitFor(t, ctx, "create topic "+topic, func() error {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		resp, err := kadm.NewClient(cl).CreateTopic(cctx, 3, 1, nil, topic)
		if err == nil {
			err = resp.Err
		}
		if tried && errors.Is(err, kerr.TopicAlreadyExists) {
			return nil // an earlier attempt created it
		}
		tried = true
		return err
	})
}

// produce writes n records of size bytes to topic and waits for them.
func produce(t *testing.T, ctx context.Context, cl *kgo.Client, topic string, n, size int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Value: bytes.Repeat([]byte{'x'}, size)}
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := cl.ProduceSync(pctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

// consumeAndCommit reads n records of topic in group and commits them.
func consumeAndCommit(t *testing.T, ctx context.Context, bootstrap []string, topic, group string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...), kgo.ClientID("deploy-consumer"), kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := 0
	for got < n {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			t.Fatalf("group %s read %d of %d records: %v", group, got, n, err)
		}
		fs.EachError(func(tp string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Logf("group %s fetch %s/%d: %v", group, tp, p, err)
			}
		})
		got += fs.NumRecords()
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := cl.CommitUncommittedOffsets(cctx); err != nil {
		t.Fatalf("group %s commit: %v", group, err)
	}
}

// consumeFromStart reads n records of topic from its start, without a
// group.
func consumeFromStart(t *testing.T, ctx context.Context, bootstrap []string, topic string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...), kgo.ClientID("deploy-reader"),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for got := 0; got < n; {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records of %s: %v", got, n, topic, err)
		}
		got += fs.NumRecords()
	}
}

// fetchOutOfRange fetches partition 0 of topic from far past its end: the
// backend answers OFFSET_OUT_OF_RANGE, a partition error.
func fetchOutOfRange(t *testing.T, ctx context.Context, bootstrap []string, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...), kgo.ClientID("deploy-out-of-range"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(1 << 40)}}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	cl.PollFetches(pctx) // the first fetch is out of range; franz-go resets to the end
}

// admin calls the sandbox's admin API (any peer; writes are forwarded to
// the leader).
type admin struct {
	urls []string
	next int
}

func (a *admin) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	url := a.urls[a.next%len(a.urls)]
	a.next++
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, url+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// must retries method path until it answers want (a 503 while the leader
// or the backends settle is retried; any other answer fails the test).
func (a *admin) must(t *testing.T, ctx context.Context, method, path string, body any, want int) {
	t.Helper()
	waitFor(t, ctx, method+" "+path, func() error {
		code, b, err := a.do(ctx, method, path, body)
		switch {
		case err != nil:
			return err
		case code == want:
			return nil
		case code == http.StatusServiceUnavailable:
			return fmt.Errorf("%d %s", code, b)
		}
		t.Fatalf("%s %s: %d %s, want %d", method, path, code, b, want)
		return nil
	})
}

func (a *admin) get(ctx context.Context, path string, v any) error {
	code, b, err := a.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, code, b)
	}
	return json.Unmarshal(b, v)
}
