// Package chaos is Switchyard's fault suite (`make chaos`).
//
// The fault cases (faults_test.go) run real processes on loopback: a
// backend as `switchyard broker --data-dir` and 3 or 5 peers as `switchyard
// serve`, with the verifier's clients (verifier/: idempotent franz-go and
// librdkafka producers, a franz-go consumer group) running through the
// peers while a peer, the Raft leader, two peers, the backend or every peer
// in turn is killed or restarted, and while every peer is upgraded in turn
// from the previous release's binary (upgrade_test.go); while two backend
// clusters are upgraded one after the other from Kafka 3.0 to 4.0, with
// clients offered a version only once both support it
// (backend_upgrade_test.go); while a route change, a live migration or a
// quota change is in flight with the Raft leader killed
// (control_test.go); and, in containers, while the peer serving the
// clients is cut off its network for 30 s (partition_test.go). The
// route-change case reads both clusters directly (verifier.Audit): a route
// change moves clients, not data. Each case prints
// what the verifier saw (acknowledged, lost, duplicated, out of order,
// stalls) and asserts that nothing acknowledged was lost; the figures and
// what they mean are in docs/benchmarks.md ("Faults"). They run only with
// SWITCHYARD_CHAOS=1 (set by `make chaos`, which CI runs after `make
// test`), so `make test` does not run them twice. `make soak` runs
// TestSoak (soak_test.go): the same clients for SOAK_DURATION with each
// peer's memory sampled; it is not part of CI.
//
// The container case (this file) runs peers as containers on a private
// Docker network and cuts them off with `docker network disconnect`, so a
// partition is a real one: the peer loses its interface, not a simulated
// drop. The image is built FROM scratch around a static binary (no base
// image can be pulled here); the test drives the peers with `switchyard
// ctl` from the host, which reaches the containers on the bridge network.
package chaos

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	ctlBinary string
	image     string
)

func TestMain(m *testing.M) {
	code := m.Run()
	printResults()
	imageOnce.cleanup()
	build.Close()
	if previous.dir != "" {
		os.RemoveAll(previous.dir)
	}
	os.Exit(code)
}

// imageOnce builds the host's ctl binary and the peer image on first use
// (only the container case needs them) and removes them after the run.
var imageOnce imageBuild

type imageBuild struct {
	sync.Once
	err error
	dir string
}

func (o *imageBuild) cleanup() {
	if image != "" {
		exec.Command("docker", "rmi", "-f", image).Run()
	}
	if o.dir != "" {
		os.RemoveAll(o.dir)
	}
}

// needImage builds the image once and fails t when it cannot.
func needImage(t *testing.T) {
	t.Helper()
	imageOnce.Do(func() { imageOnce.err = buildImage() })
	if imageOnce.err != nil {
		t.Fatal(imageOnce.err)
	}
}

func buildImage() error {
	if _, err := exec.LookPath("docker"); err != nil {
		return fmt.Errorf("docker is required for the container tests (the CI and development machines have it): %w", err)
	}
	dir, err := os.MkdirTemp("", "switchyard-chaos-")
	if err != nil {
		return err
	}
	imageOnce.dir = dir
	ctlBinary = filepath.Join(dir, "switchyard-ctl")
	if out, err := exec.Command("go", "build", "-o", ctlBinary, "../../cmd/switchyard").CombinedOutput(); err != nil {
		return fmt.Errorf("build switchyard: %v\n%s", err, out)
	}
	ctx := filepath.Join(dir, "image")
	if err := os.MkdirAll(ctx, 0o755); err != nil {
		return err
	}
	static := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(ctx, "switchyard"), "../../cmd/switchyard")
	static.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := static.CombinedOutput(); err != nil {
		return fmt.Errorf("build static switchyard: %v\n%s", err, out)
	}
	df, err := os.ReadFile("../../deploy/docker/Dockerfile")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), df, 0o644); err != nil {
		return err
	}
	tag := "switchyard-chaos:" + randHex(4)
	if out, err := exec.Command("docker", "build", "-q", "-t", tag, ctx).CombinedOutput(); err != nil {
		return fmt.Errorf("docker build: %v\n%s", err, out)
	}
	image = tag
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
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

// network is a private Docker network with peers at fixed addresses.
type network struct {
	t      *testing.T
	name   string
	prefix string // e.g. 172.29.17.
	peers  []string
}

// newNetwork creates a network on a random private /24, trying a few
// until one does not overlap the host's.
func newNetwork(t *testing.T) *network {
	t.Helper()
	name := "sy-chaos-" + randHex(4)
	var lastErr error
	for range 10 {
		n, _ := rand.Int(rand.Reader, big.NewInt(200))
		prefix := fmt.Sprintf("172.29.%d.", n.Int64()+20)
		out, err := exec.Command("docker", "network", "create", "--driver", "bridge", "--subnet", prefix+"0/24", name).CombinedOutput()
		if err == nil {
			nw := &network{t: t, name: name, prefix: prefix}
			t.Cleanup(func() {
				for _, p := range nw.peers {
					if t.Failed() {
						logs, _ := exec.Command("docker", "logs", "--tail", "60", p).CombinedOutput()
						t.Logf("--- %s log:\n%s", p, logs)
					}
					exec.Command("docker", "rm", "-f", p).Run()
				}
				exec.Command("docker", "network", "rm", name).Run()
			})
			return nw
		}
		lastErr = fmt.Errorf("%v: %s", err, out)
	}
	t.Fatalf("docker network create: %v", lastErr)
	return nil
}

func (nw *network) ip(i int) string { return fmt.Sprintf("%s%d", nw.prefix, 10+i) }

func (nw *network) container(i int) string { return fmt.Sprintf("%s-p%d", nw.name, i) }

// startPeers runs n peers that form one cluster; extra(i), when given,
// adds flags to peer i.
func (nw *network) startPeers(n int, extra ...func(i int) []string) {
	nw.t.Helper()
	for i := range n {
		ip := nw.ip(i)
		args := []string{"run", "-d", "--name", nw.container(i), "--network", nw.name, "--ip", ip, image,
			"serve", "--name", fmt.Sprintf("p%d", i), "--data-dir", "/data",
			"--kafka-listen", "0.0.0.0:9092", "--kafka-advertise", ip + ":9092",
			"--admin-listen", "0.0.0.0:18080",
			"--raft-listen", "0.0.0.0:17000", "--raft-advertise", ip + ":17000",
			"--gossip-listen", "0.0.0.0:17946", "--gossip-advertise", ip + ":17946",
			"--bootstrap-expect", fmt.Sprint(n), "--dead-peer-timeout", "10m", "--log-level", "info",
			// A private docker network of test containers: no TLS, no keys.
			"--insecure", "--admit-unproven-peers"}
		for j := range n {
			if j != i {
				args = append(args, "--join", nw.ip(j)+":17946")
			}
		}
		for _, f := range extra {
			args = append(args, f(i)...)
		}
		docker(nw.t, args...)
		nw.peers = append(nw.peers, nw.container(i))
	}
}

func (nw *network) ctl(i int, args ...string) (string, error) {
	all := append([]string{"ctl", "--server", nw.ip(i) + ":18080", "--timeout", "3s"}, args...)
	cmd := exec.Command(ctlBinary, all...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("ctl %s via p%d: %v: %s", strings.Join(args, " "), i, err, errb.String())
	}
	return out.String(), nil
}

type status struct {
	Node struct {
		Name string
	}
	Leader *struct {
		Name string
	}
	Raft struct {
		State   string
		Term    uint64
		Voters  int
		Applied uint64 `json:"applied_index"`
	}
	StateIndex uint64 `json:"state_index"`
}

func (nw *network) status(i int) (status, error) {
	var s status
	out, err := nw.ctl(i, "-o", "json", "status")
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal([]byte(out), &s)
}

// TestLeaderCutOffAndRejoins: three peers on a private network; the
// leader's container is disconnected from it; the majority elects a new
// leader and keeps accepting writes; the old leader, reconnected, rejoins as
// a follower and converges on every write.
func TestLeaderCutOffAndRejoins(t *testing.T) {
	needImage(t)
	nw := newNetwork(t)
	nw.startPeers(3)
	leader := -1
	waitFor(t, 60*time.Second, "a leader with 3 voters", func() error {
		s, err := nw.status(0)
		if err != nil {
			return err
		}
		if s.Leader == nil || s.Raft.Voters != 3 {
			return fmt.Errorf("leader %v, voters %d", s.Leader, s.Raft.Voters)
		}
		fmt.Sscanf(s.Leader.Name, "p%d", &leader)
		return nil
	})
	write := func(via int, topic string) error {
		_, err := nw.ctl(via, "routes", "set", topic, "main")
		return err
	}
	waitFor(t, 20*time.Second, "put a cluster", func() error {
		_, err := nw.ctl(leader, "clusters", "set", "main", "--bootstrap", nw.ip(0)+":9093")
		return err
	})
	for k := range 5 {
		if err := write((leader+k)%3, fmt.Sprintf("before-%d", k)); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := nw.status(leader)

	docker(t, "network", "disconnect", nw.name, nw.container(leader))
	cut := time.Now()
	majority := []int{(leader + 1) % 3, (leader + 2) % 3}
	waitFor(t, 30*time.Second, "a write accepted by the majority", func() error { return write(majority[0], "during-0") })
	t.Logf("leader p%d cut off → first write accepted by the majority in %v", leader, time.Since(cut).Round(time.Millisecond))
	for k := 1; k < 10; k++ {
		if err := write(majority[k%2], fmt.Sprintf("during-%d", k)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := nw.status(majority[1])
	if err != nil {
		t.Fatal(err)
	}
	if s.Leader == nil || s.Leader.Name == fmt.Sprintf("p%d", leader) || s.Raft.Term <= old.Raft.Term {
		t.Fatalf("majority status after the cut: leader %v, term %d (old term %d)", s.Leader, s.Raft.Term, old.Raft.Term)
	}

	docker(t, "network", "connect", "--ip", nw.ip(leader), nw.name, nw.container(leader))
	want, err := nw.ctl(majority[0], "-o", "json", "--consistent", "routes", "list")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the old leader converges", func() error {
		got, err := nw.ctl(leader, "-o", "json", "routes", "list")
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("routes on the old leader differ:\n%s", got)
		}
		st, err := nw.status(leader)
		if err != nil {
			return err
		}
		if st.Leader == nil {
			return fmt.Errorf("old leader (%s) knows no leader yet", st.Raft.State)
		}
		return nil
	})
	// And it takes writes again (forwarded to the new leader).
	if err := write(leader, "after-rejoin"); err != nil {
		t.Fatal(err)
	}
}
