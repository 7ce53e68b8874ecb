// Package e2e runs real `switchyard serve` processes on loopback in front
// of a kfake cluster and drives them only through `switchyard ctl` and real
// Kafka clients, as an operator would.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/test/serveproc"
	"github.com/switchyard-proxy/switchyard/test/testnet"
)

// build makes the race-enabled switchyard binary the processes run.
var build = serveproc.NewBuilder(true)

func TestMain(m *testing.M) {
	if err := build.Build(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		build.Close()
		os.Exit(1)
	}
	code := m.Run()
	build.Close()
	os.Exit(code)
}

func freeAddr(t *testing.T) string { return testnet.Addr(t) }

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
		time.Sleep(50 * time.Millisecond)
	}
}

// proc is one `switchyard serve` process with fixed addresses.
type proc = serveproc.Proc

type cluster struct {
	t       *testing.T
	token   string
	procs   []*proc
	backend *kfake.Cluster
}

func startCluster(t *testing.T, n int) *cluster {
	be, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(be.Close)
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("e2e-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, token: token, backend: be}
	gossip := make([]string, n)
	for i := range gossip {
		gossip[i] = freeAddr(t)
	}
	for i := range n {
		p := &proc{Name: "peer-" + strconv.Itoa(i), Kafka: freeAddr(t), Admin: freeAddr(t)}
		p.Args = []string{"serve",
			"--name", p.Name,
			"--data-dir", filepath.Join(dir, p.Name),
			"--kafka-listen", p.Kafka,
			"--admin-listen", p.Admin,
			"--admin-token-file", token,
			"--raft-listen", freeAddr(t),
			"--gossip-listen", gossip[i],
			"--bootstrap-expect", strconv.Itoa(n),
			"--admit-unproven-peers", // loopback, no peer TLS
			"--local-broker", "main:" + strconv.Itoa(i),
			"--dead-peer-timeout", "1h",
			"--metadata-refresh", "1s",
			"--log-level", "info",
		}
		for j, g := range gossip {
			if j != i {
				p.Args = append(p.Args, "--join", g)
			}
		}
		c.procs = append(c.procs, p)
	}
	for _, p := range c.procs {
		p.Start(t, build.Path(t))
	}
	t.Cleanup(func() {
		for _, p := range c.procs {
			p.Stop(t, syscall.SIGTERM)
		}
		if t.Failed() {
			for _, p := range c.procs {
				t.Logf("--- %s log:\n%s", p.Name, p.Output())
			}
		}
	})
	return c
}

// ctl runs `switchyard ctl` against peer i and returns its exit code,
// stdout and stderr.
func (c *cluster) ctl(i int, args ...string) (int, string, string) {
	all := append([]string{"ctl", "--server", c.procs[i].Admin, "--token-file", c.token, "--timeout", "10s"}, args...)
	cmd := exec.Command(build.Path(c.t), all...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return code, out.String(), errb.String()
}

// mustCtl retries a ctl command until it succeeds (the cluster may still be
// electing).
func (c *cluster) mustCtl(i int, timeout time.Duration, args ...string) string {
	c.t.Helper()
	var out string
	waitFor(c.t, timeout, "ctl "+strings.Join(args, " "), func() error {
		code, o, e := c.ctl(i, args...)
		if code != 0 {
			return fmt.Errorf("exit %d: %s%s", code, o, e)
		}
		out = o
		return nil
	})
	return out
}

type statusJSON struct {
	Node       struct{ Name string }
	Leader     *struct{ Name string }
	StateIndex uint64 `json:"state_index"`
	Raft       struct{ Voters, Nonvoters int }
	Peers      []struct {
		Name   string
		Gossip string
		Raft   string
		Live   bool
	}
}

func (c *cluster) status(i int) (statusJSON, error) {
	var s statusJSON
	code, out, errb := c.ctl(i, "-o", "json", "status")
	if code != 0 {
		return s, fmt.Errorf("ctl status: %d %s", code, errb)
	}
	return s, json.Unmarshal([]byte(out), &s)
}

func (c *cluster) leaderIndex(timeout time.Duration, among ...int) int {
	c.t.Helper()
	idx := -1
	waitFor(c.t, timeout, "a leader", func() error {
		for _, i := range among {
			s, err := c.status(i)
			if err != nil {
				return err
			}
			if s.Leader == nil {
				return fmt.Errorf("%s knows no leader", c.procs[i].Name)
			}
			for j, p := range c.procs {
				if p.Name == s.Leader.Name {
					idx = j
					return nil
				}
			}
		}
		return fmt.Errorf("leader not among the peers")
	})
	return idx
}

// TestProcessesDrivenByCtl: three serve processes form a cluster, are
// configured with ctl only, carry real produce/consume traffic, refuse bad
// input without changing anything, survive the leader's SIGKILL, and a
// restarted peer comes back with every acknowledged write.
func TestProcessesDrivenByCtl(t *testing.T) {
	c := startCluster(t, 3)
	c.mustCtl(0, 60*time.Second, "clusters", "set", "main", "--bootstrap", strings.Join(c.backend.ListenAddrs(), ","))
	c.mustCtl(1, 20*time.Second, "routes", "default", "main")
	c.mustCtl(2, 20*time.Second, "routes", "set", "orders", "main")
	waitFor(t, 30*time.Second, "three live voters", func() error {
		s, err := c.status(0)
		if err != nil {
			return err
		}
		live := 0
		for _, p := range s.Peers {
			if p.Live && p.Raft == "voter" && p.Gossip == "alive" {
				live++
			}
		}
		if live != 3 || s.Raft.Voters != 3 {
			return fmt.Errorf("%d live voters, raft voters %d", live, s.Raft.Voters)
		}
		return nil
	})
	table := c.mustCtl(0, 5*time.Second, "peers")
	for _, p := range c.procs {
		if !strings.Contains(table, p.Name) || !strings.Contains(table, p.Kafka) {
			t.Fatalf("ctl peers does not list %s at %s:\n%s", p.Name, p.Kafka, table)
		}
	}

	// Bad input: a route to a cluster that does not exist is refused with
	// 400 and changes nothing.
	before := c.mustCtl(0, 5*time.Second, "-o", "json", "routes", "list")
	code, _, errb := c.ctl(1, "routes", "set", "payments", "nowhere")
	if code != 1 || !strings.Contains(errb, "400") || !strings.Contains(errb, "nowhere") {
		t.Fatalf("route to an unknown cluster: exit %d, %q", code, errb)
	}
	if after := c.mustCtl(0, 5*time.Second, "-o", "json", "--consistent", "routes", "list"); after != before {
		t.Fatalf("a refused write changed the routes:\n%s\nthen\n%s", before, after)
	}

	// Real traffic through every peer.
	for i, p := range c.procs {
		produceConsume(t, p.Kafka, "e2e-"+strconv.Itoa(i), 200)
	}

	// SIGKILL the leader: the others elect a new one and accept writes.
	l := c.leaderIndex(20*time.Second, 0)
	others := []int{}
	for i := range c.procs {
		if i != l {
			others = append(others, i)
		}
	}
	killed := time.Now()
	c.procs[l].Stop(t, syscall.SIGKILL)
	c.mustCtl(others[0], 30*time.Second, "routes", "set", "after-kill", "main")
	t.Logf("leader SIGKILLed → write accepted through %s in %v", c.procs[others[0]].Name, time.Since(killed).Round(time.Millisecond))
	produceConsume(t, c.procs[others[1]].Kafka, "after-kill", 200)

	// The killed peer restarts on its data dir and catches up.
	c.procs[l].Start(t, build.Path(t))
	want := c.mustCtl(others[0], 10*time.Second, "-o", "json", "--consistent", "routes", "list")
	waitFor(t, 30*time.Second, "restarted peer caught up", func() error {
		code, got, e := c.ctl(l, "-o", "json", "routes", "list")
		if code != 0 {
			return fmt.Errorf("exit %d %s", code, e)
		}
		if got != want {
			return fmt.Errorf("routes differ:\n%s", got)
		}
		return nil
	})
	out := c.mustCtl(l, 5*time.Second, "routes", "get", "after-kill")
	if !strings.Contains(out, "main") {
		t.Fatalf("ctl routes get after-kill on the restarted peer: %s", out)
	}
	produceConsume(t, c.procs[l].Kafka, "after-restart", 200)
}

func produceConsume(t *testing.T, addr, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	recs := make([]*kgo.Record, n)
	for k := range recs {
		recs[k] = &kgo.Record{Value: []byte(strconv.Itoa(k))}
	}
	if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s via %s: %v", topic, addr, err)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]bool{}
	for len(seen) < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d from %s via %s", len(seen), n, topic, addr)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
}
