package offsetreset

// A reset against three real `switchyard serve` processes with the Raft
// leader (the reset's driver) SIGKILLed mid-reset, as in
// test/migration/leaderkill_test.go.

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

// build makes the switchyard binary the process test runs.
var build = serveproc.NewBuilder(false)

func TestMain(m *testing.M) {
	code := m.Run()
	build.Close()
	os.Exit(code)
}

// proc is one `switchyard serve` process.
type proc = serveproc.Proc

// procCluster is three serve processes in front of one in-process kfake
// cluster.
type procCluster struct {
	t         *testing.T
	bin       string
	procs     []*proc
	backend   *kfake.Cluster
	bootstrap []string
	api       *adminAPI
}

func startProcCluster(t *testing.T, n int) *procCluster {
	t.Helper()
	c := &procCluster{t: t, bin: build.Path(t)}
	kc, err := kfake.NewCluster(kfake.NumBrokers(n), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	c.backend = kc
	dir := t.TempDir()
	gossip := make([]string, n)
	for i := range gossip {
		gossip[i] = testnet.Addr(t)
	}
	var urls []string
	for i := range n {
		p := &proc{Name: "peer-" + strconv.Itoa(i), Kafka: testnet.Addr(t), Admin: testnet.Addr(t), Out: &lockedWriter{max: 4 << 20}}
		p.Args = []string{"serve",
			"--name", p.Name,
			"--data-dir", filepath.Join(dir, p.Name),
			"--kafka-listen", p.Kafka,
			"--admin-listen", p.Admin,
			"--raft-listen", testnet.Addr(t),
			"--gossip-listen", gossip[i],
			"--bootstrap-expect", strconv.Itoa(n),
			"--admit-unproven-peers", // loopback, no peer TLS
			"--local-broker", "local:" + strconv.Itoa(i),
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
				t.Logf("--- %s log:\n%s", p.Name, p.Out.(*lockedWriter).String())
			}
		}
	})
	c.mustCtl(0, time.Minute, "clusters", "set", "local", "--bootstrap", strings.Join(kc.ListenAddrs(), ","))
	c.mustCtl(1, 20*time.Second, "routes", "default", "local")
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

func (c *procCluster) mustCtl(i int, timeout time.Duration, args ...string) {
	c.t.Helper()
	waitFor(c.t, timeout, "ctl "+strings.Join(args, " "), func() error {
		code, o, e := c.ctl(i, args...)
		if code != 0 {
			return fmt.Errorf("exit %d: %s%s", code, o, e)
		}
		return nil
	})
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

// TestOffsetResetPeerKilled: a producer and a franz-go group (members on
// the two followers) run through three serve processes; a reset to the
// earliest offset is POSTed and the Raft leader, which drives it, is
// SIGKILLed as soon as a follower shows the job fencing. The job must end
// applied (and then the group consumes from every target) or failed with
// its error set (and then no partition moved: never half applied), the
// group must keep consuming, and a reset started afterwards must apply.
func TestOffsetResetPeerKilled(t *testing.T) {
	const id = "reset-kill"
	c := startProcCluster(t, 3)
	l := c.leader(0)
	var followers []string
	var fidx []int
	for i := range c.procs {
		if i != l {
			followers = append(followers, c.bootstrap[i])
			fidx = append(fidx, i)
		}
	}
	createTopic(t, followers, topic, parts)
	prod := startProducer(t, followers, topic, rate)
	defer prod.close(t)
	g := startFranzGroup(t, "franz-go cooperative-sticky", followers, 0, []string{topic}, id, 2, kgo.Balancers(kgo.CooperativeStickyBalancer()))
	defer g.close(t)
	progress(t, prod, []*group{g})
	waitFor(t, time.Minute, "300 records per partition", func() error {
		ends := prod.ends()
		for p := range parts {
			if ends[p] < 300 {
				return fmt.Errorf("partition %d ends at %d", p, ends[p])
			}
		}
		return nil
	})

	var runs []*resetRun
	watch := fidx[0]
	killed := false
	for attempt := 1; attempt <= 3 && !killed; attempt++ {
		waitCaughtUp(t, g, prod, parts, 2*time.Minute)
		if cur := c.leader(watch); cur != l {
			t.Fatalf("the leader moved from %s to %s before the kill", c.procs[l].Name, c.procs[cur].Name)
		}
		recs := g.log.recsSince(0)
		run := &resetRun{g: g, topic: topic, name: "earliest (leader killed)", idx: len(recs), posted: time.Now(), targets: map[int32]int64{}}
		base := positions(recs)
		job := c.api.start(t, watch, id, []string{topic}, parts, toEarliest)
		for p, tg := range job.targets(topic) {
			run.targets[p] = tg.New
		}
		// Kill the driver once the job fences (on the last attempt, at
		// whatever state the job is in when first seen).
		var state string
		deadline := time.Now().Add(jobDeadline)
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			got, found, err := c.api.get(ctx, watch, id)
			cancel()
			if err != nil || !found || got.Created != job.Created {
				time.Sleep(2 * time.Millisecond)
				continue
			}
			state = got.State
			if state == "fencing" || (attempt == 3 && !got.terminal()) {
				c.procs[l].Stop(t, syscall.SIGKILL)
				killed = true
				t.Logf("attempt %d: SIGKILLed the leader %s %v after the POST, job %s", attempt, c.procs[l].Name, time.Since(run.posted).Round(time.Millisecond), state)
				break
			}
			if got.terminal() {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		end := c.api.waitEnded(t, watch, id, job.Created, 3*time.Minute)
		run.job, run.applied = end, time.Now()
		t.Logf("attempt %d: job ended %s %v after the POST (error %q)", attempt, end.State, time.Since(run.posted).Round(time.Millisecond), end.Error)
		switch end.State {
		case "applied":
			waitJumped(t, g, run, base)
			runs = append(runs, run)
		case "failed":
			if end.Error == "" {
				t.Errorf("failed job without an error: %s", end.raw)
			}
			// Not held: the group keeps consuming, from where it was:
			// a job fails only before its first commit (node's driver),
			// so no partition moved — and certainly not some of them.
			time.Sleep(5 * time.Second)
			waitCaughtUp(t, g, prod, parts, 2*time.Minute)
			s := analyse(g.log.recsSince(0), run.idx, -1, base, run.targets, run.applied)
			moved := 0
			for p := range parts {
				if !s.jumpAt[p].IsZero() {
					moved++
				}
			}
			t.Logf("after the failure %d of %d partitions moved to their targets", moved, parts)
			if moved != 0 || len(s.wrong) > 0 {
				t.Errorf("the reset failed but %d of %d partitions moved to their targets (other jumps: %v)", moved, parts, s.wrong)
			}
		}
		if !killed {
			t.Logf("attempt %d: the job ended before it was seen fencing; again", attempt)
		}
	}
	if !killed {
		t.Fatalf("never saw the job in flight in 3 attempts: cannot kill the leader mid-reset")
	}

	// A reset after the kill applies: nothing was left dangling.
	waitCaughtUp(t, g, prod, parts, 2*time.Minute)
	recs := g.log.recsSince(0)
	run := &resetRun{g: g, topic: topic, name: "shift after the kill", idx: len(recs), posted: time.Now(), targets: map[int32]int64{}}
	base := positions(recs)
	job := c.api.start(t, watch, id, []string{topic}, parts, toShift(shiftBy))
	for p, tg := range job.targets(topic) {
		run.targets[p] = tg.New
		if tg.New != max(tg.Old+shiftBy, 0) {
			t.Errorf("shift after the kill: partition %d old %d new %d", p, tg.Old, tg.New)
		}
	}
	end := c.api.waitEnded(t, fidx[1], id, job.Created, jobDeadline)
	if end.State != "applied" {
		t.Fatalf("reset after the kill ended %s: %s", end.State, end.raw)
	}
	run.job, run.applied = end, time.Now()
	waitJumped(t, g, run, base)
	runs = append(runs, run)

	prod.close(t)
	values, ends := prod.values(t), prod.ends()
	waitCaughtUp(t, g, prod, parts, 2*time.Minute)
	if n := g.constructions.Load(); n != int64(len(g.members)) {
		t.Errorf("%s: %d client constructions for %d members", g, n, len(g.members))
	}
	checkSegments(t, g, topic, runs, ends, values, true)
	for _, r := range runs {
		t.Logf("  %s: ended %s %v after the POST; every partition at its target %v after it", r.name, r.job.State, r.applied.Sub(r.posted).Round(time.Millisecond), r.toTarget)
	}
}
