package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const composeFile = "../../deploy/compose/compose.yaml"

// composeCmd is `docker compose` when the plugin is there, else the
// standalone docker-compose.
func composeCmd() ([]string, error) {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}, nil
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}, nil
	}
	return nil, fmt.Errorf("neither `docker compose` nor docker-compose is installed")
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// buildImages builds the two demo images the way `make image` and `make
// prometheus-image` do, under unique tags, and removes them at the end.
func buildImages(t *testing.T) (peer, prom string) {
	t.Helper()
	tag := randHex(4)
	peer, prom = "switchyard-compose-test:"+tag, "switchyard-prometheus-compose-test:"+tag
	dir := t.TempDir()
	ctx := filepath.Join(dir, "peer")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(ctx, "switchyard"), "../../cmd/switchyard")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build static switchyard: %v\n%s", err, out)
	}
	copyFile(t, "../../deploy/docker/Dockerfile", filepath.Join(ctx, "Dockerfile"))
	dockerRun(t, "build", "-q", "-t", peer, ctx)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", peer).Run() })

	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not found (%v): `make deps` installs Debian's prometheus package", err)
	}
	pctx := filepath.Join(dir, "prometheus")
	files := []string{bin}
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "not a dynamic executable") {
		t.Fatalf("ldd %s: %v\n%s", bin, err, out)
	}
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "/") {
			files = append(files, f)
		}
	}
	for _, f := range files {
		copyFile(t, f, filepath.Join(pctx, "root", f))
	}
	copyFile(t, "../../deploy/compose/prometheus.Dockerfile", filepath.Join(pctx, "Dockerfile"))
	dockerRun(t, "build", "-q", "-t", prom, pctx)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", prom).Run() })
	return peer, prom
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func dockerRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestComposeDemo builds the demo's images, brings deploy/compose up under
// a unique project name on free host ports and a random subnet, produces
// through one peer and consumes through another with franz-go from the
// host, checks that Prometheus scrapes all three peers and loaded the
// alert rules, and tears everything down (also on failure).
func TestComposeDemo(t *testing.T) {
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("Docker is not reachable (%v: %s): the compose demo test needs it", err, strings.TrimSpace(string(out)))
	}
	compose, err := composeCmd()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	peerImage, promImage := buildImages(t)

	project := "sy-compose-" + randHex(4)
	env := append(os.Environ(), "IMAGE="+peerImage, "PROMETHEUS_IMAGE="+promImage)
	kafka := make([]string, 3)
	var promPort int
	// Free host ports, chosen again when one was taken before docker bound
	// it (another job on the machine): later values of a key win in env.
	assignPorts := func() {
		for i := range 3 {
			kp := freePort(t)
			kafka[i] = fmt.Sprintf("127.0.0.1:%d", kp)
			env = append(env, fmt.Sprintf("SY_KAFKA_PORT_%d=%d", i, kp), fmt.Sprintf("SY_ADMIN_PORT_%d=%d", i, freePort(t)))
		}
		promPort = freePort(t)
		env = append(env, fmt.Sprintf("SY_PROMETHEUS_PORT=%d", promPort))
	}
	assignPorts()
	run := func(args ...string) ([]byte, error) {
		all := append(append(compose[1:], "-p", project, "-f", composeFile), args...)
		cmd := exec.CommandContext(ctx, compose[0], all...)
		cmd.Env = env
		return cmd.CombinedOutput()
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := run("logs", "--tail", "40")
			t.Logf("compose logs:\n%s", out)
		}
		cmd := exec.Command(compose[0], append(append(compose[1:], "-p", project, "-f", composeFile), "down", "-v", "--remove-orphans")...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})
	// A random private /24, tried until one does not overlap the host's
	// networks (docker refuses an overlapping subnet); host ports taken
	// meanwhile are chosen again.
	var up []byte
	for range 8 {
		n, _ := rand.Int(rand.Reader, big.NewInt(200))
		subnet := fmt.Sprintf("172.31.%d", n.Int64()+20)
		env = append(env, "SY_SUBNET="+subnet)
		if up, err = run("up", "-d"); err == nil {
			break
		}
		switch {
		case strings.Contains(string(up), "overlap"):
		case strings.Contains(string(up), "address already in use"):
			assignPorts()
		default:
			t.Fatalf("compose up: %v\n%s", err, up)
		}
		run("down", "-v", "--remove-orphans")
	}
	if err != nil {
		t.Fatalf("compose up: %v\n%s", err, up)
	}

	topic := "compose-demo"
	var values []string
	for i := range 20 {
		values = append(values, fmt.Sprintf("record-%d", i))
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(kafka[0]), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	// The setup services define the backend and the default route once
	// the peers have a leader; until then produce fails and is retried.
	waitFor(t, ctx, "produce the first record through peer-0", func() error {
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		defer pcancel()
		return prod.ProduceSync(pctx, &kgo.Record{Value: []byte(values[0])}).FirstErr()
	})
	for _, v := range values[1:] {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(kafka[2]), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := map[string]bool{}
	for len(got) < len(values) && ctx.Err() == nil {
		fs := cons.PollFetches(ctx)
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = true })
	}
	for _, v := range values {
		if !got[v] {
			t.Fatalf("consumed %d of %d records through peer-2; %q missing", len(got), len(values), v)
		}
	}

	prom := fmt.Sprintf("http://127.0.0.1:%d", promPort)
	waitFor(t, ctx, "Prometheus scrapes the three peers up", func() error {
		var r struct {
			Data struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
					Value  [2]any            `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := getJSON(ctx, prom+"/api/v1/query?query="+url.QueryEscape(`up{job="switchyard"} == 1`), &r); err != nil {
			return err
		}
		up := map[string]bool{}
		for _, s := range r.Data.Result {
			up[s.Metric["instance"]] = true
		}
		for i := range 3 {
			if !up[fmt.Sprintf("peer-%d:18080", i)] {
				return fmt.Errorf("peers up: %v", up)
			}
		}
		return nil
	})
	var rules struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name string `json:"name"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := getJSON(ctx, prom+"/api/v1/rules", &rules); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, g := range rules.Data.Groups {
		for _, r := range g.Rules {
			names[r.Name] = true
		}
	}
	if !names["SwitchyardPeerDown"] || !names["SwitchyardNoRaftLeader"] {
		t.Fatalf("Prometheus did not load deploy/prometheus's rules: %v", names)
	}
}

func getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
