// Package console tests the management console (node/ui, docs/console.md)
// in a real browser: headless Debian chromium driven by chromedp against a
// running sandbox. Each page is loaded and what it shows is checked against
// the admin API's JSON; a route and a quota are created through the UI's
// forms and read back from the API; an offset reset is previewed and a
// migration is started and followed to its switch. Screenshots go to
// $SWITCHYARD_ARTIFACTS (else a temporary directory), logged.
//
// SWITCHYARD_UPDATE_DOCS=1 also writes the overview's screenshot to
// docs/console-overview.png (the README shows it).
package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/node"
	"github.com/switchyard-proxy/switchyard/sandbox"
)

// tWriter routes component logs to t.Log.
type tWriter struct {
	mu sync.Mutex
	t  *testing.T
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.t != nil {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.t = nil; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// artifacts is where screenshots go.
func artifacts(t *testing.T) string {
	dir := os.Getenv("SWITCHYARD_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else {
		dir = filepath.Join(dir, "console")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("console screenshots in %s", dir)
	return dir
}

// browser starts headless chromium. A missing chromium is a setup failure
// (make deps installs it), not a reason to skip.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatal("chromium is not installed: run `make deps` (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in CI containers
		chromedp.DisableGPU,
		chromedp.WindowSize(1360, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium (%s): %v", path, err)
	}
	return ctx
}

// run runs browser actions under a generous deadline.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// clickRow clicks the button sel names in a table row. The pages redraw
// their tables every few seconds, and a redraw between finding the button
// and clicking it loses the node ("Could not find node with given id"):
// such a click is tried again, on the redrawn row.
func clickRow(t *testing.T, ctx context.Context, what, sel string) {
	t.Helper()
	var err error
	for range 5 {
		c, cancel := context.WithTimeout(ctx, 90*time.Second)
		err = chromedp.Do(c, chromedp.Click(chromedp.CSS(sel)))
		cancel()
		if err == nil || !strings.Contains(err.Error(), "Could not find node") {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// open loads a page and waits for its first refresh.
func open(t *testing.T, ctx context.Context, base, page string) {
	t.Helper()
	name, _, _ := strings.Cut(page, "/")
	run(t, ctx, "open "+page,
		chromedp.Navigate(base+"/ui/#"+page),
		chromedp.WaitVisible(chromedp.CSS(`main[data-loaded^="`+name+`:"]`)))
}

// rows reads a table the page shows as text, keyed by each row's data-key.
func rows(t *testing.T, ctx context.Context, id string) map[string][]string {
	t.Helper()
	return eval[map[string][]string](t, ctx, fmt.Sprintf(`(() => {
		const o = {};
		for (const tr of document.querySelectorAll('#%s tbody tr')) o[tr.dataset.key] = [...tr.cells].map((c) => c.textContent.trim());
		return o; })()`, id))
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return strings.TrimSpace(eval[string](t, ctx, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ''`, sel)))
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) []byte {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	buf, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", p)
	return buf
}

// getJSON reads an admin API path into v.
func getJSON(t *testing.T, base, path string, v any) int {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, b)
		}
	}
	return resp.StatusCode
}

func postJSON(t *testing.T, base, path, body string, v any) {
	t.Helper()
	resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("POST %s: %v: %s", path, err, b)
	}
}

// TestConsole drives every page of the console against a two-cluster
// sandbox with traffic, a consumer group with lag, a route and a quota.
func TestConsole(t *testing.T) {
	dir := artifacts(t)
	ctx := browser(t)

	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb, err := sandbox.Start(sctx, sandbox.Config{
		Clusters: []sandbox.ClusterSpec{
			{Name: "east", Brokers: 1, KfakeOpts: []kfake.Opt{kfake.DefaultNumPartitions(3)}},
			{Name: "west", Brokers: 1, KfakeOpts: []kfake.Opt{kfake.DefaultNumPartitions(3)}},
		},
		Peers:           3,
		MetadataRefresh: time.Second,
		Setup: []fsm.Command{
			&fsm.PutRoute{Topic: "orders", Cluster: "east", RouteTargets: fsm.RouteTargets{Fallback: []string{"west"}}},
			&fsm.PutPrefixRoute{Prefix: "logs.", Cluster: "west"},
			&fsm.PutQuota{Quota: fsm.Quota{Topic: "orders", ProduceBytesPerSec: 10 << 20}},
		},
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatalf("start sandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := sb.Close(); err != nil {
			t.Errorf("sandbox close: %v", err)
		}
	})
	base := sb.AdminURLs[0]

	// Traffic and a consumer group with lag: 20 records, 20 consumed and
	// committed, then 7 more.
	produce := func(n int, topic string) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...), kgo.DefaultProduceTopic(topic))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		for i := 0; i < n; i++ {
			if err := cl.ProduceSync(sctx, &kgo.Record{Key: []byte(fmt.Sprint(i % 3)), Value: []byte(fmt.Sprintf("record %d", i))}).FirstErr(); err != nil {
				t.Fatalf("produce to %s: %v", topic, err)
			}
		}
	}
	admin, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...))
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"orders", "logs.app"} {
		waitFor(t, time.Minute, "create topic "+topic, func() error {
			resp, err := kadm.NewClient(admin).CreateTopic(sctx, 3, 1, nil, topic)
			if err == nil {
				err = resp.Err
			}
			if errors.Is(err, kerr.TopicAlreadyExists) {
				return nil // an earlier attempt created it
			}
			return err
		})
	}
	admin.Close()
	produce(20, "orders")
	produce(5, "logs.app")
	consumer, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...), kgo.ConsumerGroup("billing"), kgo.ConsumeTopics("orders"),
		kgo.DisableAutoCommit(), kgo.ClientID("billing-app"))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	for got := 0; got < 20; {
		fs := consumer.PollFetches(sctx)
		if err := sctx.Err(); err != nil {
			t.Fatalf("consume: got %d of 20 records: %v", got, err)
		}
		got += fs.NumRecords()
	}
	if err := consumer.CommitUncommittedOffsets(sctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	produce(7, "orders")

	t.Run("overview", func(t *testing.T) {
		var st struct {
			Node   struct{ Name string }
			Leader *struct{ Name string }
			Raft   map[string]any
		}
		var peers struct {
			Peers []struct {
				Name, Gossip, Raft string
				Live               bool
			}
		}
		getJSON(t, base, "/v1/status", &st)
		getJSON(t, base, "/v1/peers", &peers)
		open(t, ctx, base, "overview")
		if got := text(t, ctx, "#tile-peer .v"); got != st.Node.Name {
			t.Errorf("this peer tile = %q, want %q", got, st.Node.Name)
		}
		// On a loaded machine the sandbox may be between leaders at the
		// moment of one read: compare again (the page refreshes every 3 s)
		// until both name the same leader.
		for deadline := time.Now().Add(30 * time.Second); ; {
			if st.Leader != nil && text(t, ctx, "#tile-leader .v") == st.Leader.Name {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("leader tile = %q, API leader %+v", text(t, ctx, "#tile-leader .v"), st.Leader)
				break
			}
			time.Sleep(500 * time.Millisecond)
			getJSON(t, base, "/v1/status", &st)
		}
		if got, want := text(t, ctx, `#raft-kv dd[data-key="voters"]`), fmt.Sprint(st.Raft["voters"]); got != want {
			t.Errorf("raft voters = %q, want %q", got, want)
		}
		shown := rows(t, ctx, "peers-table")
		if len(shown) != len(peers.Peers) {
			t.Errorf("peers shown %v, API %+v", shown, peers.Peers)
		}
		for _, p := range peers.Peers {
			r := shown[p.Name]
			if r == nil || r[6] != p.Gossip || r[7] != p.Raft || r[8] != fmt.Sprint(p.Live) {
				t.Errorf("peer %s shown as %q, API %+v", p.Name, r, p)
			}
		}
		var health []struct{ Cluster, State string }
		waitFor(t, 30*time.Second, "health of both clusters", func() error {
			if code := getJSON(t, base, "/v1/health", &health); code != 200 || len(health) != 2 {
				return fmt.Errorf("GET /v1/health: %d %+v", code, health)
			}
			return nil
		})
		waitFor(t, 30*time.Second, "health table", func() error {
			shown := rows(t, ctx, "health-table")
			for _, h := range health {
				if r := shown[h.Cluster]; r == nil || r[1] != h.State {
					return fmt.Errorf("cluster %s shown as %q, API %+v", h.Cluster, r, h)
				}
			}
			return nil
		})
		// Traffic through this peer: the clusters its /metrics counts, with
		// rates once two refreshes have passed.
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var counted []string
		for _, c := range []string{"east", "west"} {
			if strings.Contains(string(metrics), `switchyard_kafka_cluster_bytes_total{cluster="`+c+`",direction="in"}`) {
				counted = append(counted, c)
			}
		}
		if len(counted) == 0 {
			t.Fatalf("peer 0 counts no backend bytes:\n%s", metrics)
		}
		waitFor(t, 30*time.Second, "traffic rates per cluster", func() error {
			shown := rows(t, ctx, "traffic-clusters")
			for _, c := range counted {
				if r := shown[c]; r == nil || !strings.HasSuffix(r[1], "/s") || !strings.HasSuffix(r[2], "/s") {
					return fmt.Errorf("cluster %s shown as %q", c, r)
				}
			}
			return nil
		})
		png := screenshot(t, ctx, dir, "overview")
		if os.Getenv("SWITCHYARD_UPDATE_DOCS") == "1" {
			if err := os.WriteFile(filepath.Join("..", "..", "docs", "console-overview.png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("clusters", func(t *testing.T) {
		var cl struct {
			Clusters []struct {
				Name      string
				Bootstrap []string
			}
		}
		getJSON(t, base, "/v1/clusters", &cl)
		open(t, ctx, base, "clusters")
		shown := rows(t, ctx, "clusters-table")
		if len(shown) != len(cl.Clusters) || len(cl.Clusters) != 2 {
			t.Fatalf("clusters shown %v, API %+v", shown, cl.Clusters)
		}
		for _, c := range cl.Clusters {
			if r := shown[c.Name]; r == nil || r[1] != strings.Join(c.Bootstrap, ", ") {
				t.Errorf("cluster %s shown as %q, API %+v", c.Name, r, c)
			}
		}
		screenshot(t, ctx, dir, "clusters")
	})

	t.Run("routes", func(t *testing.T) {
		open(t, ctx, base, "routes")
		if r := rows(t, ctx, "routes-topics")["orders"]; r == nil || r[1] != "east" || r[3] != "west" {
			t.Errorf("route of orders shown as %q; want east with fallback west", r)
		}
		if r := rows(t, ctx, "routes-prefixes")["logs."]; r == nil || r[1] != "west" {
			t.Errorf("prefix logs. shown as %q", r)
		}
		if got := text(t, ctx, "#default-cluster"); got != "east" {
			t.Errorf("default cluster shown as %q", got)
		}
		// Create a route through the form; the API must have it as typed.
		run(t, ctx, "fill the route form",
			chromedp.WaitReady(chromedp.CSS(`#f-cluster option[value="west"]`)),
			chromedp.SetValue(chromedp.CSS(`#f-kind`), "topic"),
			chromedp.SetValue(chromedp.CSS(`#f-name`), "payments"),
			chromedp.SetValue(chromedp.CSS(`#f-cluster`), "west"),
			chromedp.SetValue(chromedp.CSS(`#f-fallback`), "east"),
			chromedp.SetValue(chromedp.CSS(`#f-failback`), "manual"),
			chromedp.Click(chromedp.CSS(`#route-submit`)))
		waitFor(t, 30*time.Second, "the form's route in the API", func() error {
			var r struct {
				Cluster  string
				Fallback []string
				Failback string
			}
			if code := getJSON(t, base, "/v1/routes/payments", &r); code != 200 || r.Cluster != "west" {
				return fmt.Errorf("GET /v1/routes/payments: %d %+v; form says %q", code, r, text(t, ctx, "#route-form-result"))
			}
			var all struct {
				Topics []struct {
					Topic    string
					Fallback []string
					Failback string
				}
			}
			getJSON(t, base, "/v1/routes", &all)
			for _, x := range all.Topics {
				if x.Topic == "payments" && len(x.Fallback) == 1 && x.Fallback[0] == "east" && x.Failback == "manual" {
					return nil
				}
			}
			return fmt.Errorf("routes %+v lack payments with fallback east, failback manual", all.Topics)
		})
		waitFor(t, 30*time.Second, "the new route on the page", func() error {
			if r := rows(t, ctx, "routes-topics")["payments"]; r == nil || r[1] != "west" || r[5] != "manual" {
				return fmt.Errorf("payments shown as %q", r)
			}
			return nil
		})
		// A bad route is refused with the API's reason, and nothing changes.
		run(t, ctx, "submit a route to an unknown cluster",
			chromedp.SetValue(chromedp.CSS(`#f-name`), "refused"),
			chromedp.SetValue(chromedp.CSS(`#f-fallback`), "nowhere"),
			chromedp.Click(chromedp.CSS(`#route-submit`)))
		waitFor(t, 30*time.Second, "the refusal on the form", func() error {
			if got := text(t, ctx, "#route-form-result.error"); !strings.Contains(got, "nowhere") {
				return fmt.Errorf("form result %q", got)
			}
			return nil
		})
		var all struct{ Topics []struct{ Topic string } }
		getJSON(t, base, "/v1/routes", &all)
		for _, x := range all.Topics {
			if x.Topic == "refused" {
				t.Errorf("a refused route was stored: %+v", all.Topics)
			}
		}
		screenshot(t, ctx, dir, "routes")
	})

	t.Run("quotas", func(t *testing.T) {
		open(t, ctx, base, "quotas")
		if r := rows(t, ctx, "quotas-table")["topic:orders"]; r == nil || r[2] != "10.0 MiB/s" || r[3] != "no limit" {
			t.Errorf("quota of orders shown as %q", r)
		}
		run(t, ctx, "fill the quota form",
			chromedp.SetValue(chromedp.CSS(`#f-kind`), "topic"),
			chromedp.SetValue(chromedp.CSS(`#f-name`), "payments"),
			chromedp.SetValue(chromedp.CSS(`#f-produce`), "1048576"),
			chromedp.SetValue(chromedp.CSS(`#f-fetch`), "2097152"),
			chromedp.Click(chromedp.CSS(`#quota-submit`)))
		waitFor(t, 30*time.Second, "the form's quota in the API", func() error {
			var q struct {
				Topic              string
				ProduceBytesPerSec int64 `json:"produce_bytes_per_sec"`
				FetchBytesPerSec   int64 `json:"fetch_bytes_per_sec"`
			}
			if code := getJSON(t, base, "/v1/quotas/payments", &q); code != 200 || q.ProduceBytesPerSec != 1048576 || q.FetchBytesPerSec != 2097152 {
				return fmt.Errorf("GET /v1/quotas/payments: %d %+v; form says %q", code, q, text(t, ctx, "#quota-form-result"))
			}
			return nil
		})
		waitFor(t, 30*time.Second, "the new quota on the page", func() error {
			if r := rows(t, ctx, "quotas-table")["topic:payments"]; r == nil || r[2] != "1.0 MiB/s" || r[3] != "2.0 MiB/s" {
				return fmt.Errorf("payments shown as %q", r)
			}
			return nil
		})
		screenshot(t, ctx, dir, "quotas")
	})

	t.Run("topics", func(t *testing.T) {
		// GET /v1/topics lists every topic this peer's metadata holds; the
		// page shows the same cluster, partitions and clusters holding it.
		type topicsAnswer struct {
			Topics []struct {
				Name       string
				Cluster    string
				Partitions int
				PresentOn  []string `json:"present_on"`
				Migrating  bool
			}
			Truncated bool
		}
		var api topicsAnswer
		waitFor(t, 30*time.Second, "orders and logs.app in GET /v1/topics", func() error {
			if code := getJSON(t, base, "/v1/topics", &api); code != 200 {
				return fmt.Errorf("GET /v1/topics: %d", code)
			}
			have := map[string]bool{}
			for _, x := range api.Topics {
				have[x.Name] = true
			}
			if !have["orders"] || !have["logs.app"] {
				return fmt.Errorf("GET /v1/topics: %+v", api.Topics)
			}
			return nil
		})
		open(t, ctx, base, "topics")
		if got := eval[string](t, ctx, `document.querySelector('#main section[data-source]').dataset.source`); got != "topics" {
			t.Errorf("the page lists %q topics, want all (GET /v1/topics)", got)
		}
		waitFor(t, 30*time.Second, "every topic of the API on the page", func() error {
			getJSON(t, base, "/v1/topics", &api)
			shown := rows(t, ctx, "topics-table")
			if len(shown) != len(api.Topics) {
				return fmt.Errorf("page shows %d topics %v, API %d %+v", len(shown), shown, len(api.Topics), api.Topics)
			}
			for _, x := range api.Topics {
				parts := "—"
				if x.Partitions > 0 {
					parts = fmt.Sprint(x.Partitions)
				}
				if s := shown[x.Name]; s == nil || s[1] != x.Cluster || s[2] != parts || s[3] != strings.Join(x.PresentOn, ", ") {
					return fmt.Errorf("topic %s shown as %q, API %+v", x.Name, s, x)
				}
			}
			return nil
		})
		if s := rows(t, ctx, "topics-table")["orders"]; s == nil || s[1] != "east" || s[2] != "3" {
			t.Errorf("orders shown as %q, want east with 3 partitions", s)
		}
		// The lookup resolves as the API does: logs.app by its prefix rule.
		run(t, ctx, "resolve logs.app",
			chromedp.SetValue(chromedp.CSS(`#topic-lookup [name="topic"]`), "logs.app"),
			chromedp.Click(chromedp.CSS(`#topic-lookup button`)))
		waitFor(t, 30*time.Second, "the lookup's answer", func() error {
			if got := text(t, ctx, "#topic-lookup-result"); got != "logs.app → west by prefix rule logs." {
				return fmt.Errorf("lookup says %q", got)
			}
			return nil
		})
		screenshot(t, ctx, dir, "topics")
	})

	t.Run("topics-fallback", func(t *testing.T) {
		// A peer without GET /v1/topics (an older version in a rolling
		// upgrade) answers 404: in front of peer 0, a proxy answers so.
		// The page falls back to the topics with a route, a quota, a
		// migration or traffic, resolved one by one.
		target, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		rp := httputil.NewSingleHostReverseProxy(target)
		old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/topics" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				io.WriteString(w, `{"error": "no route GET /v1/topics"}`)
				return
			}
			rp.ServeHTTP(w, r)
		}))
		defer old.Close()
		open(t, ctx, old.URL, "topics")
		if got := eval[string](t, ctx, `document.querySelector('#main section[data-source]').dataset.source`); got != "known" {
			t.Errorf("the page lists %q topics, want the known ones", got)
		}
		shown := rows(t, ctx, "topics-table")
		for _, topic := range []string{"orders", "payments"} {
			var r struct{ Cluster, Match string }
			if code := getJSON(t, base, "/v1/routes/"+topic, &r); code != 200 {
				t.Fatalf("GET /v1/routes/%s: %d", topic, code)
			}
			if s := shown[topic]; s == nil || s[1] != r.Cluster || !strings.HasPrefix(s[2], r.Match) {
				t.Errorf("topic %s shown as %q, API %+v", topic, s, r)
			}
		}
		if got := text(t, ctx, "#main .page-error"); got != "" {
			t.Errorf("the fallback shows an error: %q", got)
		}
		screenshot(t, ctx, dir, "topics-fallback")
	})

	// confirmAll makes the page's confirmation dialogs answer yes (the
	// test clicks destructive buttons the way an operator would).
	confirmAll := func() { eval[bool](t, ctx, `(window.confirm = () => true, true)`) }

	t.Run("users", func(t *testing.T) {
		const password = "console-secret-Pa55word"
		open(t, ctx, base, "users")
		run(t, ctx, "create a user through the form",
			chromedp.SetValue(chromedp.CSS(`#f-user-name`), "alice"),
			chromedp.SetValue(chromedp.CSS(`#f-user-mechanism`), "SCRAM-SHA-256"),
			chromedp.SetValue(chromedp.CSS(`#f-user-password`), password),
			chromedp.SetValue(chromedp.CSS(`#f-user-iterations`), "4096"),
			chromedp.Click(chromedp.CSS(`#user-submit`)))
		waitFor(t, 30*time.Second, "the form's user in the API", func() error {
			var u struct {
				Name       string
				Mechanisms []struct {
					Mechanism  string
					Iterations int
				}
			}
			if code := getJSON(t, base, "/v1/users/alice", &u); code != 200 || len(u.Mechanisms) != 1 ||
				u.Mechanisms[0].Mechanism != "SCRAM-SHA-256" || u.Mechanisms[0].Iterations != 4096 {
				return fmt.Errorf("GET /v1/users/alice: %d %+v; form says %q", code, u, text(t, ctx, "#user-form-result"))
			}
			return nil
		})
		waitFor(t, 30*time.Second, "alice on the page", func() error {
			if r := rows(t, ctx, "users-table")["alice"]; r == nil || r[1] != "SCRAM-SHA-256 (4096 iterations)" {
				return fmt.Errorf("alice shown as %q", r)
			}
			return nil
		})
		// The password is not echoed: not in the field, the page, the URL
		// or the session storage.
		if got := eval[string](t, ctx, `document.getElementById('f-user-password').value + '|' + document.documentElement.outerHTML + '|' + document.body.innerText + '|' + location.href + '|' + JSON.stringify(sessionStorage)`); strings.Contains(got, password) {
			t.Errorf("the password is still on the page after saving")
		}
		screenshot(t, ctx, dir, "users")
		confirmAll()
		clickRow(t, ctx, "delete alice", `#users-table tr[data-key="alice"] button.danger`)
		waitFor(t, 30*time.Second, "alice deleted in the API and on the page", func() error {
			if code := getJSON(t, base, "/v1/users/alice", nil); code != http.StatusNotFound {
				return fmt.Errorf("GET /v1/users/alice: %d", code)
			}
			if r := rows(t, ctx, "users-table")["alice"]; r != nil {
				return fmt.Errorf("alice still shown as %q", r)
			}
			return nil
		})
	})

	t.Run("acls", func(t *testing.T) {
		open(t, ctx, base, "acls")
		run(t, ctx, "add a rule through the form",
			chromedp.SetValue(chromedp.CSS(`#f-acl-principal`), "User:alice"),
			chromedp.SetValue(chromedp.CSS(`#f-acl-type`), "group"),
			chromedp.Evaluate[chromedp.Void](`document.getElementById('f-acl-type').dispatchEvent(new Event('change'))`),
			chromedp.SetValue(chromedp.CSS(`#f-acl-pattern`), "prefixed"),
			chromedp.SetValue(chromedp.CSS(`#f-acl-resource`), "billing-"),
			chromedp.SetValue(chromedp.CSS(`#f-acl-operation`), "read"),
			chromedp.Click(chromedp.CSS(`#acl-submit`)))
		type acl struct {
			Principal    string
			Host         string
			ResourceType string `json:"resource_type"`
			ResourceName string `json:"resource_name"`
			Pattern      string
			Operation    string
			Permission   string
		}
		want := acl{"User:alice", "*", "group", "billing-", "prefixed", "read", "allow"}
		waitFor(t, 30*time.Second, "the form's rule in the API", func() error {
			var got []acl
			if code := getJSON(t, base, "/v1/acls?principal=User:alice", &got); code != 200 || len(got) != 1 || got[0] != want {
				return fmt.Errorf("GET /v1/acls: %d %+v, want %+v; form says %q", code, got, want, text(t, ctx, "#acl-form-result"))
			}
			return nil
		})
		key := strings.Join([]string{want.Principal, want.Host, want.ResourceType, want.Pattern, want.ResourceName, want.Operation, want.Permission}, "|")
		waitFor(t, 30*time.Second, "the rule on the page", func() error {
			if r := rows(t, ctx, "acls-table")[key]; r == nil || r[0] != "User:alice" || r[4] != "billing-" || r[6] != "allow" {
				return fmt.Errorf("rule shown as %q", r)
			}
			return nil
		})
		// A rule Kafka does not define is refused with the API's reason.
		run(t, ctx, "submit a bad rule",
			chromedp.SetValue(chromedp.CSS(`#f-acl-principal`), "alice"),
			chromedp.Click(chromedp.CSS(`#acl-submit`)))
		waitFor(t, 30*time.Second, "the refusal on the form", func() error {
			if got := text(t, ctx, "#acl-form-result.error"); !strings.Contains(got, "alice") {
				return fmt.Errorf("form says %q", got)
			}
			return nil
		})
		screenshot(t, ctx, dir, "acls")
		confirmAll()
		clickRow(t, ctx, "delete the rule", `#acls-table tr[data-key="`+key+`"] button`)
		waitFor(t, 30*time.Second, "the rule deleted in the API and on the page", func() error {
			var got []acl
			if code := getJSON(t, base, "/v1/acls", &got); code != 200 || len(got) != 0 {
				return fmt.Errorf("GET /v1/acls: %d %+v", code, got)
			}
			if r := rows(t, ctx, "acls-table")[key]; r != nil {
				return fmt.Errorf("rule still shown as %q", r)
			}
			return nil
		})
	})

	t.Run("regions", func(t *testing.T) {
		open(t, ctx, base, "regions")
		run(t, ctx, "create a region through the form",
			chromedp.SetValue(chromedp.CSS(`#f-region-name`), "dc-test"),
			chromedp.SetValue(chromedp.CSS(`#f-region-networks`), "10.9.0.0/16, 10.10.0.0/16"),
			chromedp.Click(chromedp.CSS(`#region-submit`)))
		var regions []struct {
			Name     string
			Networks []string
			Fallback []string
		}
		waitFor(t, 30*time.Second, "the region in the API and on the page", func() error {
			if code := getJSON(t, base, "/v1/regions", &regions); code != 200 || len(regions) != 1 || regions[0].Name != "dc-test" ||
				strings.Join(regions[0].Networks, ", ") != "10.10.0.0/16, 10.9.0.0/16" {
				return fmt.Errorf("GET /v1/regions: %d %+v; form says %q", code, regions, text(t, ctx, "#region-form-result"))
			}
			if r := rows(t, ctx, "regions-table")["dc-test"]; r == nil || r[1] != strings.Join(regions[0].Networks, ", ") {
				return fmt.Errorf("dc-test shown as %q", r)
			}
			return nil
		})
		// A bad network is refused with the API's reason.
		run(t, ctx, "submit a bad network",
			chromedp.SetValue(chromedp.CSS(`#f-region-name`), "dc-bad"),
			chromedp.SetValue(chromedp.CSS(`#f-region-networks`), "10.300.0.0/16"),
			chromedp.Click(chromedp.CSS(`#region-submit`)))
		waitFor(t, 30*time.Second, "the refusal on the form", func() error {
			if got := text(t, ctx, "#region-form-result.error"); !strings.Contains(got, "10.300.0.0/16") {
				return fmt.Errorf("form says %q", got)
			}
			return nil
		})
		var peers struct {
			Peers []struct {
				Name, Region string
				Live         bool
			}
		}
		getJSON(t, base, "/v1/peers", &peers)
		shown := rows(t, ctx, "region-peers-table")
		if len(shown) != len(peers.Peers) {
			t.Errorf("peers shown %v, API %+v", shown, peers.Peers)
		}
		for _, p := range peers.Peers {
			region := p.Region
			if region == "" {
				region = "—"
			}
			if r := shown[p.Name]; r == nil || r[1] != region || r[3] != fmt.Sprint(p.Live) {
				t.Errorf("peer %s shown as %q, API %+v", p.Name, r, p)
			}
		}
		var fo []struct{ Cluster, State string }
		getJSON(t, base, "/v1/failover", &fo)
		fshown := rows(t, ctx, "region-failover-table")
		for _, f := range fo {
			if r := fshown[f.Cluster]; r == nil || r[3] != f.State {
				t.Errorf("failover of %s shown as %q, API %+v", f.Cluster, r, f)
			}
		}
		screenshot(t, ctx, dir, "regions")
		confirmAll()
		clickRow(t, ctx, "delete the region", `#regions-table tr[data-key="dc-test"] button`)
		waitFor(t, 30*time.Second, "the region deleted", func() error {
			if code := getJSON(t, base, "/v1/regions", &regions); code != 200 || len(regions) != 0 {
				return fmt.Errorf("GET /v1/regions: %d %+v", code, regions)
			}
			return nil
		})
	})

	t.Run("allowlist", func(t *testing.T) {
		open(t, ctx, base, "allowlist")
		run(t, ctx, "allow a peer through the form",
			chromedp.SetValue(chromedp.CSS(`#f-allow-name`), "peer-x"),
			chromedp.Click(chromedp.CSS(`#allow-submit`)))
		var al struct {
			AllowList []string `json:"allow_list"`
		}
		waitFor(t, 30*time.Second, "peer-x allowed in the API and on the page", func() error {
			if code := getJSON(t, base, "/v1/peers/allow-list", &al); code != 200 || strings.Join(al.AllowList, ",") != "peer-x" {
				return fmt.Errorf("GET /v1/peers/allow-list: %d %+v; form says %q", code, al, text(t, ctx, "#allow-form-result"))
			}
			if r := rows(t, ctx, "allow-table")["peer-x"]; r == nil {
				return errors.New("peer-x not shown")
			}
			return nil
		})
		screenshot(t, ctx, dir, "allowlist")
		confirmAll()
		clickRow(t, ctx, "remove peer-x", `#allow-table tr[data-key="peer-x"] button`)
		waitFor(t, 30*time.Second, "peer-x removed", func() error {
			if code := getJSON(t, base, "/v1/peers/allow-list", &al); code != 200 || len(al.AllowList) != 0 {
				return fmt.Errorf("GET /v1/peers/allow-list: %d %+v", code, al)
			}
			return nil
		})
	})

	t.Run("groups", func(t *testing.T) {
		var gs struct {
			Groups []struct{ Group, State string }
		}
		waitFor(t, 30*time.Second, "the group in the API", func() error {
			if code := getJSON(t, base, "/v1/groups", &gs); code != 200 || len(gs.Groups) == 0 {
				return fmt.Errorf("GET /v1/groups: %d %+v", code, gs)
			}
			return nil
		})
		open(t, ctx, base, "groups")
		shown := rows(t, ctx, "groups-table")
		for _, g := range gs.Groups {
			if r := shown[g.Group]; r == nil || r[0] != g.Group {
				t.Errorf("group %s shown as %q", g.Group, r)
			}
		}
		screenshot(t, ctx, dir, "groups")

		var g struct {
			Members []struct {
				MemberID string `json:"member_id"`
				ClientID string `json:"client_id"`
			}
			Topics []struct {
				Topic      string
				Lag        int64
				Partitions []struct {
					Partition int32
					Committed int64
					Lag       *int64
				}
			}
		}
		waitFor(t, 30*time.Second, "billing's lag of 7", func() error {
			getJSON(t, base, "/v1/groups/billing", &g)
			if len(g.Topics) != 1 || g.Topics[0].Lag != 7 {
				return fmt.Errorf("billing: %+v", g)
			}
			return nil
		})
		open(t, ctx, base, "groups/billing")
		if got := text(t, ctx, "#tile-lag .v"); got != "7" {
			t.Errorf("total lag shown %q, want 7", got)
		}
		members := rows(t, ctx, "members-table")
		for _, m := range g.Members {
			if r := members[m.MemberID]; r == nil || r[2] != m.ClientID {
				t.Errorf("member %s shown as %q", m.MemberID, r)
			}
		}
		lag := rows(t, ctx, "lag-table")
		for _, p := range g.Topics[0].Partitions {
			want := "—"
			if p.Lag != nil {
				want = fmt.Sprint(*p.Lag)
			}
			if r := lag[fmt.Sprintf("orders/%d", p.Partition)]; r == nil || r[4] != want {
				t.Errorf("partition %d shown as %q, want lag %s", p.Partition, r, want)
			}
		}
		screenshot(t, ctx, dir, "group-billing")
	})

	t.Run("jobs", func(t *testing.T) {
		open(t, ctx, base, "jobs")
		var fo []struct{ Cluster, State string }
		getJSON(t, base, "/v1/failover", &fo)
		shown := rows(t, ctx, "failover-table")
		for _, f := range fo {
			if r := shown[f.Cluster]; r == nil || r[2] != f.State {
				t.Errorf("failover of %s shown as %q, API %+v", f.Cluster, r, f)
			}
		}
		// The offset reset's dry run on the page equals the API's.
		run(t, ctx, "preview an offset reset",
			chromedp.SetValue(chromedp.CSS(`#reset-form [name="group"]`), "billing"),
			chromedp.SetValue(chromedp.CSS(`#reset-form [name="topics"]`), "orders"),
			chromedp.SetValue(chromedp.CSS(`#reset-form [name="to"]`), "earliest"),
			chromedp.Click(chromedp.CSS(`#reset-form button[value="preview"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#preview-table`)))
		var dry struct {
			Targets []struct {
				Topic     string
				Partition int32
				Old, New  int64
			}
		}
		postJSON(t, base, "/v1/groups/billing/offset-resets", `{"topics":["orders"],"to":"earliest","dry_run":true}`, &dry)
		preview := rows(t, ctx, "preview-table")
		if len(preview) != len(dry.Targets) {
			t.Errorf("preview %v, API %+v", preview, dry.Targets)
		}
		for _, x := range dry.Targets {
			if r := preview[fmt.Sprintf("%s/%d", x.Topic, x.Partition)]; r == nil || r[2] != fmt.Sprint(x.Old) || r[3] != fmt.Sprint(x.New) {
				t.Errorf("preview of %s/%d shown as %q, API %+v", x.Topic, x.Partition, r, x)
			}
		}
		var g struct {
			OffsetReset any `json:"offset_reset"`
		}
		getJSON(t, base, "/v1/groups/billing", &g)
		if g.OffsetReset != nil {
			t.Errorf("a dry run left a reset job: %+v", g.OffsetReset)
		}
		screenshot(t, ctx, dir, "jobs-reset-preview")

		// A migration started from the page, followed there to its switch.
		run(t, ctx, "start a migration",
			chromedp.WaitReady(chromedp.CSS(`#f-mig-to option[value="west"]`)),
			chromedp.SetValue(chromedp.CSS(`#f-mig-topic`), "logs.app"),
			chromedp.SetValue(chromedp.CSS(`#f-mig-to`), "east"),
			chromedp.Click(chromedp.CSS(`#migration-form button`)))
		waitFor(t, 90*time.Second, "the migration switched, in the API and on the page", func() error {
			var m struct{ State, Phase, From, To string }
			if code := getJSON(t, base, "/v1/migrations/logs.app", &m); code != 200 || m.State != "switched" {
				return fmt.Errorf("GET /v1/migrations/logs.app: %d %+v; form says %q", code, m, text(t, ctx, "#migration-form-result"))
			}
			if r := rows(t, ctx, "migrations-table")["logs.app"]; r == nil || r[1] != m.From || r[2] != m.To || r[3] != m.State || r[4] != m.Phase {
				return fmt.Errorf("migration shown as %q, API %+v", r, m)
			}
			return nil
		})
		screenshot(t, ctx, dir, "jobs")
	})

	t.Run("headers", func(t *testing.T) {
		resp, err := http.Get(base + "/ui/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for h, want := range map[string]string{
			"X-Frame-Options":        "DENY",
			"X-Content-Type-Options": "nosniff",
		} {
			if got := resp.Header.Get(h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("Content-Security-Policy = %q", csp)
		}
	})
}

const (
	readToken  = "read-console-0123456789abcdef"
	operToken  = "oper-console-0123456789abcdef"
	adminToken = "admin-console-0123456789abcdef"
)

// startSolo starts one peer whose admin API asks for tokens.
func startSolo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("read "+readToken+"\noperator "+operToken+"\nadmin "+adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(node.Config{
		Name: "solo", DataDir: filepath.Join(dir, "solo"),
		KafkaListen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", RaftListen: "127.0.0.1:0", GossipListen: "127.0.0.1:0",
		BootstrapExpect: 1, Timing: node.FastTiming(), AdminTokensFile: tokens, Logger: testLogger(t),
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
	waitFor(t, 30*time.Second, "the solo peer leads", func() error {
		if !n.IsLeader() {
			return errors.New("not leader")
		}
		return nil
	})
	return "http://" + n.AdminAddr()
}

// TestConsoleLogin: on a peer with tokens the console's assets load
// without one, the pages ask for a token, a read token reads but its
// writes are refused with the API's reason, an operator token writes, and
// the token never reaches a URL or a cookie.
func TestConsoleLogin(t *testing.T) {
	dir := artifacts(t)
	ctx := browser(t)
	base := startSolo(t)

	req, _ := http.NewRequest(http.MethodPut, base+"/v1/clusters/east", strings.NewReader(`{"bootstrap":["127.0.0.1:1"]}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /v1/clusters/east: %d", resp.StatusCode)
	}

	run(t, ctx, "open the console without a token",
		chromedp.Navigate(base+"/ui/#routes"),
		chromedp.WaitVisible(chromedp.CSS(`#login-form`)))
	if got := text(t, ctx, "#login-error"); !strings.Contains(got, "bearer token") {
		t.Errorf("login says %q; want the API's reason", got)
	}
	screenshot(t, ctx, dir, "login")

	login := func(token string) {
		run(t, ctx, "log in",
			chromedp.SetValue(chromedp.CSS(`#login-token`), token),
			chromedp.Click(chromedp.CSS(`#login-form button`)),
			chromedp.WaitNotVisible(chromedp.CSS(`#login-form`)),
			chromedp.WaitVisible(chromedp.CSS(`main[data-loaded^="routes:"]`)))
	}
	submitRoute := func(topic string) {
		run(t, ctx, "submit a route",
			chromedp.WaitReady(chromedp.CSS(`#f-cluster option[value="east"]`)),
			chromedp.SetValue(chromedp.CSS(`#f-name`), topic),
			chromedp.SetValue(chromedp.CSS(`#f-cluster`), "east"),
			chromedp.Click(chromedp.CSS(`#route-submit`)))
	}
	login(readToken)
	submitRoute("orders")
	waitFor(t, 30*time.Second, "the read token's write refused", func() error {
		if got := text(t, ctx, "#route-form-result.error"); !strings.Contains(got, "needs the operator role") {
			return fmt.Errorf("form says %q", got)
		}
		return nil
	})

	run(t, ctx, "log out", chromedp.Click(chromedp.CSS(`#logout`)), chromedp.WaitVisible(chromedp.CSS(`#login-form`)))
	if got := eval[string](t, ctx, `sessionStorage.getItem('switchyard.admin-token') || ''`); got != "" {
		t.Errorf("the token outlived the logout: %q", got)
	}
	login(operToken)
	submitRoute("orders")
	waitFor(t, 30*time.Second, "the operator's route in the API", func() error {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/routes/orders", nil)
		req.Header.Set("Authorization", "Bearer "+readToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"match": "exact"`) {
			return fmt.Errorf("GET /v1/routes/orders: %d %s; form says %q", resp.StatusCode, b, text(t, ctx, "#route-form-result"))
		}
		return nil
	})
	if got := eval[string](t, ctx, `location.href + ' ' + document.cookie`); strings.Contains(got, operToken) || strings.Contains(got, readToken) {
		t.Errorf("a token reached the URL or a cookie: %q", got)
	}
	screenshot(t, ctx, dir, "routes-operator")

	// Users need the admin role: the operator's attempt is refused with the
	// API's reason, nothing is stored, and the password is gone from the form.
	run(t, ctx, "submit a user as operator",
		chromedp.Navigate(base+"/ui/#users"),
		chromedp.WaitVisible(chromedp.CSS(`main[data-loaded^="users:"]`)),
		chromedp.SetValue(chromedp.CSS(`#f-user-name`), "mallory"),
		chromedp.SetValue(chromedp.CSS(`#f-user-password`), "operator-typed-secret"),
		chromedp.Click(chromedp.CSS(`#user-submit`)))
	waitFor(t, 30*time.Second, "the operator's user refused", func() error {
		if got := text(t, ctx, "#user-form-result.error"); !strings.Contains(got, "needs the admin role") {
			return fmt.Errorf("form says %q", got)
		}
		return nil
	})
	if got := eval[string](t, ctx, `document.getElementById('f-user-password').value`); got != "" {
		t.Errorf("the password field still holds %d characters after sending", len(got))
	}
	req, _ = http.NewRequest(http.MethodGet, base+"/v1/users/mallory", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v1/users/mallory after a refused write: %d, want 404", resp.StatusCode)
	}
}
