package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startSoloWith runs a one-peer cluster whose config edit adjusts, and
// waits until it leads.
func startSoloWith(t *testing.T, edit func(*Config)) *Node {
	t.Helper()
	cfg := Config{
		Name:            "solo",
		DataDir:         filepath.Join(t.TempDir(), "solo"),
		KafkaListen:     "127.0.0.1:0",
		AdminListen:     "127.0.0.1:0",
		RaftListen:      "127.0.0.1:0",
		GossipListen:    "127.0.0.1:0",
		BootstrapExpect: 1,
		Timing:          FastTiming(),
	}
	edit(&cfg)
	n, err := New(cfg)
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
	deadline := time.Now().Add(20 * time.Second)
	for !n.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("solo peer never led")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

// adminSeries counts the admin request histogram's series in a /metrics
// scrape, and returns the scrape's size.
func adminSeries(t *testing.T, n *Node) (series, size int) {
	t.Helper()
	resp, err := http.Get("http://" + n.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "switchyard_admin_request_duration_seconds_count{") {
			series++
		}
	}
	return series, len(b)
}

// TestAdminMetricsBoundedUnderMadeUpRequests reproduces the report: an
// unauthenticated client sending made-up methods and paths grew /metrics
// by a series per method. Labels now come from fixed sets, so 2,000 such
// requests add at most a handful of series.
func TestAdminMetricsBoundedUnderMadeUpRequests(t *testing.T) {
	n := startSoloWith(t, func(c *Config) { c.AdminToken = "tok" })
	rng := rand.New(rand.NewPCG(1, 2))
	word := func(k int) string {
		const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		b := make([]byte, k)
		for i := range b {
			b[i] = letters[rng.IntN(len(letters))]
		}
		return string(b)
	}
	before, sizeBefore := adminSeries(t, n)
	cl := &http.Client{Timeout: 10 * time.Second}
	for i := range 2000 {
		path := "/v1/" + strings.ToLower(word(8)) + "/" + word(6)
		if i%3 == 0 {
			path = "/" + strings.ToLower(word(10))
		}
		req, err := http.NewRequest(word(3+rng.IntN(8)), "http://"+n.AdminAddr()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	after, sizeAfter := adminSeries(t, n)
	t.Logf("admin request series %d → %d, /metrics %d → %d bytes", before, after, sizeBefore, sizeAfter)
	// At most one series per (fixed method label, fixed route, status).
	if after-before > 4 {
		t.Errorf("2,000 made-up requests added %d admin request series, want at most 4", after-before)
	}
	if sizeAfter-sizeBefore > 16<<10 {
		t.Errorf("2,000 made-up requests grew /metrics by %d bytes", sizeAfter-sizeBefore)
	}
}

// TestAdminSlowHeaderClosed: a client that sends half a request header and
// stalls (slowloris) is disconnected after ReadHeaderTimeout instead of
// holding the connection.
func TestAdminSlowHeaderClosed(t *testing.T) {
	n := startSoloWith(t, func(c *Config) { c.Admin.ReadHeaderTimeout = 200 * time.Millisecond })
	conn, err := net.Dial("tcp", n.AdminAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	// Generous for a busy machine, and well under the old fixed 10 s.
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(bufio.NewReader(conn))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server still held a half-sent request open after 5 s (ReadHeaderTimeout 200ms)")
	}
}

// TestAdminBodyTooLarge: a body over MaxBodyBytes is refused with 413 and
// a reason, and changes nothing.
func TestAdminBodyTooLarge(t *testing.T) {
	n := startSoloWith(t, func(c *Config) { c.Admin.MaxBodyBytes = 1024 })
	body := fmt.Sprintf(`{"cluster": %q}`, strings.Repeat("x", 4096))
	code, _, resp := call(t, n, http.MethodPut, "/v1/routes/big", "", body)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(resp, "over 1024 bytes") {
		t.Fatalf("PUT with a 4 KiB body: %d %s, want 413 naming the 1024-byte limit", code, resp)
	}
	if _, m := n.State().RouteFor("big"); m.Kind.String() == "exact" {
		t.Fatal("a refused body changed the state")
	}
}

func TestMetricMethod(t *testing.T) {
	for in, want := range map[string]string{"GET": "GET", "PUT": "PUT", "OPTIONS": "OPTIONS", "get": "other", "FOO": "other", "": "other"} {
		if got := metricMethod(in); got != want {
			t.Errorf("metricMethod(%q) = %q, want %q", in, got, want)
		}
	}
}
