package migration

// The acceptance flow reduced to one franz-go producer and one franz-go
// group, against three real `switchyard serve` processes, with the Raft
// leader SIGKILLed while the migration is in its fence phase.

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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/switchyard-proxy/switchyard/test/serveproc"
	"github.com/switchyard-proxy/switchyard/test/testnet"
)

// build makes the switchyard binary the process tests run.
var build = serveproc.NewBuilder(false)

func TestMain(m *testing.M) {
	code := m.Run()
	build.Close()
	os.Exit(code)
}

// proc is one `switchyard serve` process.
type proc = serveproc.Proc

// procCluster is three serve processes in front of two in-process kfake
// clusters, east (the default) and west.
type procCluster struct {
	t         *testing.T
	bin       string
	procs     []*proc
	backends  map[string]*kfake.Cluster
	bootstrap []string
	api       *adminAPI
}

func startProcCluster(t *testing.T, n int) *procCluster {
	t.Helper()
	c := &procCluster{t: t, bin: build.Path(t), backends: map[string]*kfake.Cluster{}}
	for _, name := range []string{"east", "west"} {
		kc, err := kfake.NewCluster(kfake.NumBrokers(n), kfake.AllowAutoTopicCreation())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(kc.Close)
		c.backends[name] = kc
	}
	dir := t.TempDir()
	gossip := make([]string, n)
	for i := range gossip {
		gossip[i] = testnet.Addr(t)
	}
	var urls []string
	for i := range n {
		p := &proc{Name: "peer-" + strconv.Itoa(i), Kafka: testnet.Addr(t), Admin: testnet.Addr(t)}
		p.Args = []string{"serve",
			"--name", p.Name,
			"--data-dir", filepath.Join(dir, p.Name),
			"--kafka-listen", p.Kafka,
			"--admin-listen", p.Admin,
			"--raft-listen", testnet.Addr(t),
			"--gossip-listen", gossip[i],
			"--bootstrap-expect", strconv.Itoa(n),
			"--admit-unproven-peers", // loopback, no peer TLS
			"--local-broker", "east:" + strconv.Itoa(i),
			"--local-broker", "west:" + strconv.Itoa(i),
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
		c.bootstrap = append(c.bootstrap, p.Kafka)
		urls = append(urls, "http://"+p.Admin)
	}
	c.api = newAdminAPI(urls)
	for _, p := range c.procs {
		p.Start(t, c.bin)
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
	c.mustCtl(0, time.Minute, "clusters", "set", "east", "--bootstrap", strings.Join(c.backends["east"].ListenAddrs(), ","))
	c.mustCtl(1, 20*time.Second, "clusters", "set", "west", "--bootstrap", strings.Join(c.backends["west"].ListenAddrs(), ","))
	c.mustCtl(2, 20*time.Second, "routes", "default", "east")
	return c
}

// ctl runs `switchyard ctl` against peer i.
func (c *procCluster) ctl(i int, args ...string) (int, string, string) {
	all := append([]string{"ctl", "--server", c.procs[i].Admin, "--timeout", "10s"}, args...)
	cmd := exec.Command(c.bin, all...)
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

func (c *procCluster) mustCtl(i int, timeout time.Duration, args ...string) string {
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

// leader returns the index of the Raft leader as peer i sees it.
func (c *procCluster) leader(i int) int {
	c.t.Helper()
	idx := -1
	waitFor(c.t, time.Minute, "a leader", func() error {
		code, out, errb := c.ctl(i, "-o", "json", "status")
		if code != 0 {
			return fmt.Errorf("ctl status: %d %s", code, errb)
		}
		var s struct{ Leader *struct{ Name string } }
		if err := json.Unmarshal([]byte(out), &s); err != nil {
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
		return fmt.Errorf("leader %s is not a peer", s.Leader.Name)
	})
	return idx
}

// TestMigrationLeaderKilledInFence: a producer and a group run through
// three serve processes while the topic migrates east → west; the Raft
// leader is SIGKILLed as soon as a peer shows the migration fenced. The
// migration must still switch (or fail with nothing changed, the topic on
// east, and then succeed when retried), and the group must see every
// acknowledged record once, in order, at contiguous offsets.
func TestMigrationLeaderKilledInFence(t *testing.T) {
	const (
		preloaded = 20_000
		rate      = 2000
		group     = "mig-kill"
	)
	c := startProcCluster(t, 3)
	createTopic(t, c.bootstrap, topic, partitions)
	pre := preload(t, c.backends["east"].ListenAddrs(), topic, preloaded)

	fg := startFranzGroup(t, c.bootstrap, topic, group)
	defer fg.close()
	fp := startFranzProducer(t, c.bootstrap, topic, rate)
	progress(t, []*ackLog{fp.log}, []*recLog{fg.log})
	waitFor(t, 3*time.Minute, "the group through the backlog", func() error {
		if n := fg.log.count(); n < preloaded {
			return fmt.Errorf("%d of %d", n, preloaded)
		}
		return nil
	})
	time.Sleep(2 * time.Second)

	// The fence may be too short to see on some attempt: then the
	// migration is finished and the topic moved back, and we try again.
	from, to := "east", "west"
	killed := -1
	var last switched
	firstOnTarget := false // the last switch made the target's first segment
	for attempt := 1; attempt <= 3 && killed < 0; attempt++ {
		l := c.leader(0)
		watch := (l + 1) % len(c.procs) // a follower: it survives the kill
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		s := switched{startedAt: time.Now()}
		job, err := c.api.start(ctx, watch, topic, to)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if job.From != from || job.To != to {
			t.Fatalf("POST /v1/migrations answered %+v; want from %s to %s", job, from, to)
		}
		sawFence := false
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			m, err := c.api.get(ctx, watch, topic)
			cancel()
			if err != nil {
				// The follower may not have applied the start yet.
				time.Sleep(2 * time.Millisecond)
				continue
			}
			if m.State == "running" && m.Phase == "fence" {
				sawFence = true
				c.procs[l].Stop(t, syscall.SIGKILL)
				killed = l
				t.Logf("attempt %d: SIGKILLed the leader %s %v after the start, in phase fence", attempt, c.procs[l].Name, time.Since(s.startedAt).Round(time.Millisecond))
				break
			}
			if m.State != "running" {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		s.m = c.api.waitState(t, watch, topic, 3*time.Minute, "switched")
		s.switchedAt = time.Now()
		switch {
		case s.m.State == "failed" && sawFence:
			// Rolled back: nothing changed, the topic is still on east.
			t.Logf("migration failed after the kill: %s; checking it changed nothing, then retrying", s.m.Error)
			if s.m.From != from {
				t.Fatalf("failed migration: %+v", s.m)
			}
			checkStillOn(t, c, from, fp.log)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			s.startedAt = time.Now()
			if _, err := c.api.start(ctx, watch, topic, to); err != nil {
				cancel()
				t.Fatalf("retry after the failure: %v", err)
			}
			cancel()
			s.m = c.api.waitState(t, watch, topic, 3*time.Minute, "switched")
			s.switchedAt = time.Now()
			if s.m.State != "switched" {
				t.Fatalf("retried migration ended %s: %s", s.m.State, s.m.Error)
			}
		case s.m.State != "switched":
			t.Fatalf("migration %s → %s ended %s: %s", from, to, s.m.State, s.m.Error)
		}
		t.Logf("attempt %d: %s → %s switched %v after the start", attempt, from, to, s.switchedAt.Sub(s.startedAt).Round(time.Millisecond))
		last, firstOnTarget = s, attempt == 1
		if killed >= 0 {
			break
		}
		t.Logf("attempt %d: the fence was never seen; finishing and moving back to try again", attempt)
		waitPastBase(t, s.m, nil, fg.log)
		finishMigration(t, c.api, s.m)
		from, to = to, from
	}
	if killed < 0 {
		t.Fatalf("never saw the fence phase in 3 attempts: cannot kill the leader in it")
	}
	pauseStats(t, "migration with the leader killed", fp.log, last.startedAt, last.switchedAt.Add(time.Second))
	checkAfterSwitchOn(t, c.backends[to], to, firstOnTarget, last, fp.log)
	time.Sleep(2 * time.Second)

	fp.close(t)
	acked, n := ackIndex(t, pre, fp.log)
	t.Logf("acknowledged: %d records (%d preloaded)", n, preloaded)
	checkAcked(t, acked)
	waitCaughtUp(t, fg.log, acked, 5*time.Minute)
	fg.close()
	dups, losses := checkGroup(t, fg.log, acked)
	t.Logf("duplicates %d, losses %d (goal 0 and 0)", dups, losses)
	if dups != 0 || losses != 0 {
		t.Errorf("%d duplicates and %d losses", dups, losses)
	}
}

// checkStillOn checks that records acknowledged from now on land on
// cluster (read directly from its backend).
func checkStillOn(t *testing.T, c *procCluster, cluster string, l *ackLog) {
	t.Helper()
	s := switched{switchedAt: time.Now()}
	checkAfterSwitchOn(t, c.backends[cluster], cluster, false, s, l)
}

// lockedWriter writes into a buffer under a lock its owner also reads
// it under (the kafka-python group's stderr).
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}
