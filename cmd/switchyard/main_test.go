package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeFromConfigFile runs `switchyard serve` from a JSON config file
// with one flag overriding it, in front of a kfake cluster, and drives it
// with a real client.
func TestServeFromConfigFile(t *testing.T) {
	be, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "served"))
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	kafkaAddr, adminAddr := freeAddr(t), freeAddr(t)
	cfg := map[string]any{
		"node_id":       0,
		"kafka_listen":  "127.0.0.1:1", // overridden by the flag below
		"admin_listen":  adminAddr,
		"cluster":       "main",
		"backend":       be.ListenAddrs(),
		"local_brokers": []string{"main:0"},
		"log_level":     "warn",
	}
	b, _ := json.Marshal(cfg)
	file := filepath.Join(t.TempDir(), "peer.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	var wg sync.WaitGroup
	var code int
	wg.Add(1)
	go func() {
		defer wg.Done()
		code = run(ctx, []string{"serve", "--config", file, "--kafka-listen", kafkaAddr}, os.Stdout, &stderr)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("peer not ready: %v; stderr: %s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.DefaultProduceTopic("served"), kgo.ConsumeTopics("served"))
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer pcancel()
	if err := cl.ProduceSync(pctx, &kgo.Record{Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatalf("produce through serve: %v", err)
	}
	fs := cl.PollRecords(pctx, 1)
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "hello" {
		t.Fatalf("consume through serve: %v %v", recs, fs.Errors())
	}
	cl.Close()
	cancel()
	wg.Wait()
	if code != 0 {
		t.Fatalf("serve exited %d: %s", code, stderr.String())
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	cases := map[string][]string{
		"no backend":        {"serve", "--kafka-listen", "127.0.0.1:0", "--admin-listen", ""},
		"bad local broker":  {"serve", "--backend", "127.0.0.1:1", "--local-broker", "main:x"},
		"bad peer":          {"serve", "--backend", "127.0.0.1:1", "--peer", "one=host:1"},
		"bad log level":     {"serve", "--backend", "127.0.0.1:1", "--log-level", "loud"},
		"unknown flag":      {"serve", "--nope"},
		"unknown command":   {"frobnicate"},
		"missing config":    {"serve", "--config", "/nonexistent/peer.json"},
		"stray argument":    {"serve", "extra"},
		"bad refresh":       {"serve", "--backend", "127.0.0.1:1", "--metadata-refresh", "soon"},
		"node not a number": {"serve", "--node-id", "zero"},
	}
	for name, args := range cases {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), args, &out, &errb)
			if code == 0 {
				t.Fatalf("exit 0 for %v", args)
			}
			if errb.Len() == 0 {
				t.Fatalf("no error message for %v", args)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDevSandbox runs `switchyard dev` on free ports, waits for its ready
// line, and lists the cluster with kcat (librdkafka) at the printed
// bootstrap address: three brokers, all of them peers.
func TestDevSandbox(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat not installed (make deps installs it): %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int)
	go func() { done <- run(ctx, []string{"dev", "--kafka-port", "0", "--admin-port", "0"}, &out, &errb) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "ready") {
		if time.Now().After(deadline) {
			t.Fatalf("no ready line; stdout: %s stderr: %s", out.String(), errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var bootstrap []string
	for _, line := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "bootstrap: "); ok {
			bootstrap = strings.Split(rest, ",")
		}
	}
	if len(bootstrap) != 3 {
		t.Fatalf("bootstrap line lists %v", bootstrap)
	}
	kctx, kcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer kcancel()
	listing, err := exec.CommandContext(kctx, kcat, "-b", bootstrap[0], "-L", "-J").Output()
	if err != nil {
		t.Fatalf("kcat -L: %v", err)
	}
	var md struct {
		Brokers []struct {
			ID   int32  `json:"id"`
			Name string `json:"name"`
		} `json:"brokers"`
	}
	if err := json.Unmarshal(listing, &md); err != nil {
		t.Fatalf("kcat -L -J output: %v: %s", err, listing)
	}
	var names []string
	for _, b := range md.Brokers {
		name, _, _ := strings.Cut(b.Name, "/")
		names = append(names, name)
	}
	slices.Sort(names)
	want := slices.Clone(bootstrap)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("kcat lists brokers %v, want the peers %v", names, want)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("dev exited %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "stopping") {
		t.Errorf("dev did not say it was stopping: %s", out.String())
	}
}

// TestExampleConfigIsValid keeps deploy/config/peer.example.json loadable.
func TestExampleConfigIsValid(t *testing.T) {
	var cfg serveConfig
	if err := loadConfigFile("../../deploy/config/peer.example.json", &cfg); err != nil {
		t.Fatal(err)
	}
	nc, err := cfg.nodeConfig()
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if err := nc.Validate(); err != nil {
		t.Fatalf("example config: %v", err)
	}
	if len(nc.State.Peers) != 3 {
		t.Fatalf("example config describes %d peers, want 3", len(nc.State.Peers))
	}
}
