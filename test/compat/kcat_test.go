package compat

// librdkafka through kcat (Debian package kcat), run as external processes
// against the in-process sandbox.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/sandbox"
)

// kcatLines collects the records a kcat consumer prints with the format
// "%p\t%o\t%k\t%s\n". It is the process's stdout, so exec copies into it
// and cmd.Wait returns only after the last line was parsed.
type kcatLines struct {
	mu      sync.Mutex
	partial []byte
	recs    []consumed
	bad     []string
	total   *kcatCounter
}

// kcatCounter counts records over every member of a group.
type kcatCounter struct {
	mu sync.Mutex
	n  int
}

func (c *kcatCounter) add(n int) {
	c.mu.Lock()
	c.n += n
	c.mu.Unlock()
}

func (c *kcatCounter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (l *kcatLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	added := 0
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		if r, ok := parseTabRecord(line); ok {
			l.recs = append(l.recs, r)
			added++
		} else {
			l.bad = append(l.bad, line)
		}
	}
	l.total.add(added)
	return len(p), nil
}

func (l *kcatLines) result() ([]consumed, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	bad := slices.Clone(l.bad)
	if len(l.partial) > 0 {
		bad = append(bad, string(l.partial))
	}
	return slices.Clone(l.recs), bad
}

// parseTabRecord parses "partition\toffset\tkey\tvalue".
func parseTabRecord(line string) (consumed, bool) {
	f := strings.Split(line, "\t")
	if len(f) != 4 {
		return consumed{}, false
	}
	p, err1 := strconv.ParseInt(f[0], 10, 32)
	o, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return consumed{}, false
	}
	return consumed{Partition: int32(p), Offset: o, Key: f[2], Value: f[3]}, true
}

// kcatLockedBuffer is a goroutine-safe stderr sink.
type kcatLockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *kcatLockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *kcatLockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// kcatMember is one running `kcat -G` consumer.
type kcatMember struct {
	name   string
	cmd    *exec.Cmd
	out    *kcatLines
	stderr *kcatLockedBuffer
	done   chan struct{}
	err    error // set before done is closed
}

// startKcatMember starts a balanced-consumer kcat bootstrapped on addr.
// Offsets are stored as records are handed to kcat (librdkafka's
// enable.auto.offset.store default) and committed by auto-commit; the
// interval is long so that the commit the test sees is the one librdkafka
// makes when kcat closes the consumer on SIGTERM.
func startKcatMember(ctx context.Context, t *testing.T, kcat, name, addr, group, topic string, total *kcatCounter) *kcatMember {
	t.Helper()
	m := &kcatMember{
		name:   name,
		out:    &kcatLines{total: total},
		stderr: &kcatLockedBuffer{},
		done:   make(chan struct{}),
	}
	m.cmd = exec.CommandContext(ctx, kcat,
		"-b", addr,
		"-G", group, topic,
		"-X", "client.id="+name,
		"-X", "auto.offset.reset=earliest",
		"-X", "enable.auto.commit=true",
		"-X", "auto.commit.interval.ms=60000",
		"-X", "session.timeout.ms=10000",
		"-u", // unbuffered output: lines reach the test as they are consumed
		"-f", `%p\t%o\t%k\t%s\n`,
	)
	m.cmd.Stdout = m.out
	m.cmd.Stderr = m.stderr
	m.cmd.WaitDelay = 5 * time.Second
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		m.err = m.cmd.Wait()
		close(m.done)
	}()
	t.Cleanup(func() {
		select {
		case <-m.done:
		default:
			_ = m.cmd.Process.Kill()
			<-m.done
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, m.stderr.String())
		}
	})
	return m
}

// stop asks kcat to close its consumer (which commits) and waits for it.
func (m *kcatMember) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-m.done:
		t.Errorf("%s exited before it was stopped: %v\n%s", m.name, m.err, m.stderr.String())
		return
	default:
	}
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("signal %s: %v", m.name, err)
	}
	select {
	case <-m.done:
		if m.err != nil {
			t.Errorf("%s exit: %v\n%s", m.name, m.err, m.stderr.String())
		}
	case <-time.After(timeout):
		_ = m.cmd.Process.Kill()
		<-m.done
		t.Errorf("%s did not exit within %v of SIGTERM\n%s", m.name, timeout, m.stderr.String())
	}
}

// TestKcatProduceConsumeGroup produces with an idempotent librdkafka
// producer through one peer and consumes in a consumer group of TWO
// concurrent `kcat -G` members, each bootstrapped on a different peer.
//
// The members join the (still empty) topic first and the test waits, on
// the backend, until the group is stable with all partitions assigned;
// only then is the data produced. Otherwise a member joining late would
// trigger a rebalance mid-consumption, and a partition handed over before
// its offsets were committed is legitimately read twice (at-least-once),
// which checkConsumed would flag.
func TestKcatProduceConsumeGroup(t *testing.T) {
	kcat := needCommand(t, "kcat")
	sb := startSandbox(t)
	const topic, group = "kcat-compat", "kcat-compat-group"
	createTopic(t, sb.Bootstrap, topic, numPartitions)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	total := &kcatCounter{}
	members := []*kcatMember{
		startKcatMember(ctx, t, kcat, "kcat-member-1", sb.Bootstrap[1], group, topic, total),
		startKcatMember(ctx, t, kcat, "kcat-member-2", sb.Bootstrap[2], group, topic, total),
	}
	kcatWaitGroupStable(t, sb, group, len(members), numPartitions)

	// Produce through peer 0 only.
	var in strings.Builder
	for i := range numRecords {
		fmt.Fprintf(&in, "%s:%s\n", recordKey(i), recordValue(i))
	}
	prod := exec.CommandContext(ctx, kcat,
		"-P",
		"-b", sb.Bootstrap[0],
		"-t", topic,
		"-K", ":",
		"-X", "acks=all",
		"-X", "enable.idempotence=true",
		"-X", "client.id=kcat-producer",
	)
	prod.Stdin = strings.NewReader(in.String())
	prod.WaitDelay = 5 * time.Second
	if out, err := prod.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, out)
	} else if len(bytes.TrimSpace(out)) > 0 {
		t.Logf("kcat -P output:\n%s", out)
	}

	waitFor(t, 45*time.Second, fmt.Sprintf("kcat group to consume %d records", numRecords), func() bool {
		return total.get() >= numRecords
	})
	// Stop both members at once: on SIGTERM kcat closes its consumer, which
	// commits the stored offsets and leaves the group (checkBackend then
	// sees those commits); a sequential stop would only add a rebalance.
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Go(func() { m.stop(t, 20*time.Second) })
	}
	wg.Wait()

	var recs []consumed
	for _, m := range members {
		rs, bad := m.out.result()
		if len(bad) > 0 {
			t.Errorf("%s printed %d unparsable lines, first %q", m.name, len(bad), bad[0])
		}
		t.Logf("%s consumed %d records", m.name, len(rs))
		recs = append(recs, rs...)
	}
	checkConsumed(t, recs, numRecords)
	checkBackend(t, sb, topic, group, numRecords)
}

// kcatWaitGroupStable waits, on the backend, until group is Stable with
// members members that between them were assigned partitions partitions.
func kcatWaitGroupStable(t *testing.T, sb *sandbox.Sandbox, group string, members, partitions int) {
	t.Helper()
	_, adm := direct(t, sb)
	var last string
	waitFor(t, 30*time.Second, fmt.Sprintf("group %s stable with %d members", group, members), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			last = err.Error()
			return false
		}
		g, ok := gs[group]
		if !ok || g.Err != nil {
			last = fmt.Sprintf("%v", g.Err)
			return false
		}
		n := 0
		for _, ps := range g.AssignedPartitions() {
			n += len(ps)
		}
		last = fmt.Sprintf("state %s, %d members, %d partitions assigned", g.State, len(g.Members), n)
		return g.State == "Stable" && len(g.Members) == members && n == partitions
	})
	t.Logf("group %s: %s", group, last)
}

// kcatMetadata is the part of `kcat -L -J` output the test reads.
type kcatMetadata struct {
	OriginatingBroker struct {
		ID   int32  `json:"id"`
		Name string `json:"name"`
	} `json:"originating_broker"`
	ControllerID int32 `json:"controllerid"`
	Brokers      []struct {
		ID   int32  `json:"id"`
		Name string `json:"name"`
	} `json:"brokers"`
	Topics []struct {
		Topic      string `json:"topic"`
		Partitions []struct {
			Partition int32 `json:"partition"`
			Leader    int32 `json:"leader"`
			Replicas  []struct {
				ID int32 `json:"id"`
			} `json:"replicas"`
			ISRs []struct {
				ID int32 `json:"id"`
			} `json:"isrs"`
		} `json:"partitions"`
	} `json:"topics"`
}

// TestKcatMetadata lists metadata with `kcat -L -J` and checks that the
// brokers are exactly the three peers and that no backend address leaks.
func TestKcatMetadata(t *testing.T) {
	kcat := needCommand(t, "kcat")
	sb := startSandbox(t)
	const topic = "kcat-metadata"
	createTopic(t, sb.Bootstrap, topic, numPartitions)

	backend := sb.Backend.ListenAddrs()
	// In the sandbox peer i shares a host with broker i, so the presented
	// leader of every partition must be the backend leader's own id.
	_, adm := direct(t, sb)
	mdCtx, mdCancel := context.WithTimeout(context.Background(), 10*time.Second)
	bmd, err := adm.Metadata(mdCtx, topic)
	mdCancel()
	if err != nil {
		t.Fatalf("backend metadata: %v", err)
	}
	backendLeader := map[int32]int32{}
	for _, p := range bmd.Topics[topic].Partitions {
		backendLeader[p.Partition] = p.Leader
	}
	for i, peer := range sb.Bootstrap {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, kcat, "-L", "-J", "-b", peer, "-m", "10")
		cmd.WaitDelay = 5 * time.Second
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		cancel()
		if err != nil {
			t.Fatalf("kcat -L via peer %d: %v\n%s", i, err, stderr.String())
		}
		for _, be := range backend {
			if strings.Contains(string(out), be) {
				t.Errorf("kcat -L via peer %d shows backend address %s:\n%s", i, be, out)
			}
		}
		var md kcatMetadata
		if err := json.Unmarshal(out, &md); err != nil {
			t.Fatalf("parse kcat -L -J output via peer %d: %v\n%s", i, err, out)
		}
		var names []string
		ids := map[int32]bool{}
		for _, b := range md.Brokers {
			names = append(names, b.Name)
			ids[b.ID] = true
		}
		slices.Sort(names)
		want := slices.Sorted(slices.Values(sb.Bootstrap))
		if !slices.Equal(names, want) {
			t.Errorf("kcat -L via peer %d lists brokers %v, want the peers %v", i, names, want)
		}
		if len(ids) != len(sb.Bootstrap) {
			t.Errorf("kcat -L via peer %d: %d distinct broker ids, want %d", i, len(ids), len(sb.Bootstrap))
		}
		if !ids[md.ControllerID] {
			t.Errorf("kcat -L via peer %d: controller %d is not a listed broker", i, md.ControllerID)
		}
		// librdkafka names the originating broker "host:port/id".
		if !strings.HasPrefix(md.OriginatingBroker.Name, peer+"/") {
			t.Errorf("kcat -L via peer %d: originating broker %q, want %s/<id>", i, md.OriginatingBroker.Name, peer)
		}
		found := false
		for _, tp := range md.Topics {
			if tp.Topic != topic {
				continue
			}
			found = true
			if len(tp.Partitions) != numPartitions {
				t.Errorf("kcat -L via peer %d: %s has %d partitions, want %d", i, topic, len(tp.Partitions), numPartitions)
			}
			for _, p := range tp.Partitions {
				if !ids[p.Leader] {
					t.Errorf("kcat -L via peer %d: %s[%d] leader %d is not a listed broker", i, topic, p.Partition, p.Leader)
				}
				if bl, ok := backendLeader[p.Partition]; !ok || bl != p.Leader {
					t.Errorf("kcat -L via peer %d: %s[%d] leader %d, want %d (the peer co-located with the backend leader)", i, topic, p.Partition, p.Leader, bl)
				}
				for _, r := range p.Replicas {
					if !ids[r.ID] {
						t.Errorf("kcat -L via peer %d: %s[%d] replica %d is not a listed broker", i, topic, p.Partition, r.ID)
					}
				}
			}
		}
		if !found {
			t.Errorf("kcat -L via peer %d does not list topic %s:\n%s", i, topic, out)
		}
		if t.Failed() {
			t.Logf("kcat -L -J via peer %d:\n%s", i, out)
		}
	}
}
