package chaos

// The real-process harness of the fault cases: each backend cluster run
// as `switchyard broker --data-dir` (three kfake brokers in one process
// that keep their data on disk, so the process can be SIGKILLed, or
// restarted at another --max-version, with everything it acknowledged),
// and peers run as `switchyard serve` processes with their own data dirs,
// each co-located with one backend broker of each cluster
// (--local-broker), on loopback ports that survive a restart
// (test/testnet).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/test/serveproc"
	"github.com/switchyard-proxy/switchyard/test/testnet"
)

// build is the switchyard binary the process cases run (no race
// detector: the cases measure clients, and -race would slow every peer
// several times over on a shared 2-core machine).
var build = serveproc.NewBuilder(false)

// backendBrokers is the size of the backend cluster.
const backendBrokers = 3

// boundedLog keeps the first 4 MiB a process writes.
type boundedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *boundedLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.b.Len() < 4<<20 {
		w.b.Write(p)
	}
	return len(p), nil
}

func (w *boundedLog) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// procCluster is one backend process per backend cluster and n peer
// processes.
type procCluster struct {
	t        *testing.T
	bin      string   // the binary under test: the backends', ctl's, restarted peers'
	peerBin  []string // the binary each peer runs now
	clusters []*backendProc
	backend  *serveproc.Proc // clusters[0]'s process
	brokers  []string        // clusters[0]'s broker addresses
	peers    []*serveproc.Proc
	http     *http.Client
}

// backendSpec is one backend cluster to start.
type backendSpec struct {
	name       string
	maxVersion string // broker --max-version ("": kfake's newest)
}

// backendProc is one backend cluster: backendBrokers kfake brokers in one
// `switchyard broker` process.
type backendProc struct {
	name    string
	proc    *serveproc.Proc
	brokers []string
}

// startProcCluster starts the backend and n peers, defines the backend
// as cluster "main", routes everything there and waits for n voters (n is
// 3 or 5) and every peer ready. The peers run peerBin ("": the binary
// under test).
func startProcCluster(t *testing.T, n int, peerBin string) *procCluster {
	t.Helper()
	return startProcClusters(t, n, peerBin, backendSpec{name: "main"})
}

// startProcClusters is startProcCluster with one backend process per
// spec, each defined as a cluster of that name; peer i is co-located with
// broker i of every cluster, and the default route is the first cluster.
func startProcClusters(t *testing.T, n int, peerBin string, specs ...backendSpec) *procCluster {
	t.Helper()
	c := &procCluster{t: t, bin: build.Path(t), http: &http.Client{Timeout: 3 * time.Second}}
	if peerBin == "" {
		peerBin = c.bin
	}
	dir := t.TempDir()
	for _, spec := range specs {
		b := &backendProc{name: spec.name}
		first := testnet.Consecutive(t, backendBrokers)
		for i := range backendBrokers {
			b.brokers = append(b.brokers, net.JoinHostPort("127.0.0.1", strconv.Itoa(first+i)))
		}
		data, id := filepath.Join(dir, "backend"), "chaos"
		if spec.name != "main" {
			data, id = filepath.Join(dir, "backend-"+spec.name), "chaos-"+spec.name
		}
		b.proc = &serveproc.Proc{Name: "backend " + spec.name, Out: &boundedLog{}, Args: []string{"broker",
			"--listen", b.brokers[0], "--brokers", strconv.Itoa(backendBrokers),
			"--data-dir", data, "--cluster-id", id,
			// Only topics created explicitly survive a restart of kfake.
			"--auto-create=false", "--log-level", "warn"}}
		if spec.maxVersion != "" {
			b.proc.Args = append(b.proc.Args, "--max-version", spec.maxVersion)
		}
		b.proc.Start(t, c.bin)
		c.clusters = append(c.clusters, b)
	}
	c.backend, c.brokers = c.clusters[0].proc, c.clusters[0].brokers

	gossip := make([]string, n)
	for i := range gossip {
		gossip[i] = testnet.Addr(t)
	}
	for i := range n {
		p := &serveproc.Proc{Name: "p" + strconv.Itoa(i), Kafka: testnet.Addr(t), Admin: testnet.Addr(t), Out: &boundedLog{}}
		p.Args = []string{"serve",
			"--name", p.Name,
			"--data-dir", filepath.Join(dir, p.Name),
			"--kafka-listen", p.Kafka,
			"--admin-listen", p.Admin,
			"--raft-listen", testnet.Addr(t),
			"--gossip-listen", gossip[i],
			"--bootstrap-expect", strconv.Itoa(n),
			"--admit-unproven-peers", // loopback, no peer TLS
			"--dead-peer-timeout", "1h",
			"--metadata-refresh", "1s",
			"--log-level", "info",
		}
		if i < backendBrokers {
			for _, b := range c.clusters {
				p.Args = append(p.Args, "--local-broker", b.name+":"+strconv.Itoa(i))
			}
		}
		for j, g := range gossip {
			if j != i {
				p.Args = append(p.Args, "--join", g)
			}
		}
		c.peers = append(c.peers, p)
		c.peerBin = append(c.peerBin, peerBin)
	}
	for i, p := range c.peers {
		p.Start(t, c.peerBin[i])
	}
	t.Cleanup(func() {
		for _, p := range c.peers {
			p.Stop(t, syscall.SIGTERM)
		}
		for _, b := range c.clusters {
			b.proc.Stop(t, syscall.SIGTERM)
		}
		if t.Failed() {
			for _, b := range c.clusters {
				t.Logf("--- %s log:\n%s", b.proc.Name, tail(b.proc.Out.(*boundedLog).String(), 8<<10))
			}
			for _, p := range c.peers {
				t.Logf("--- %s log:\n%s", p.Name, tail(p.Out.(*boundedLog).String(), 16<<10))
			}
		}
	})
	for k, b := range c.clusters {
		c.waitBrokers(b.brokers)
		c.mustCtl(k%n, time.Minute, "clusters", "set", b.name, "--bootstrap", strings.Join(b.brokers, ","))
	}
	c.mustCtl(1, 20*time.Second, "routes", "default", c.clusters[0].name)
	waitFor(t, time.Minute, fmt.Sprintf("%d voters", n), func() error {
		s, err := c.status(0)
		if err != nil {
			return err
		}
		if s.Leader == nil || s.Raft.Voters != n {
			return fmt.Errorf("leader %v, voters %d", s.Leader, s.Raft.Voters)
		}
		return nil
	})
	for i := range c.peers {
		c.waitReady(i, time.Minute)
	}
	return c
}

// waitBackend waits until every broker of the first backend accepts
// connections.
func (c *procCluster) waitBackend() {
	c.t.Helper()
	c.waitBrokers(c.brokers)
}

// waitBrokers waits until every one of brokers accepts connections.
func (c *procCluster) waitBrokers(brokers []string) {
	c.t.Helper()
	waitFor(c.t, time.Minute, "the backend brokers", func() error {
		for _, a := range brokers {
			conn, err := net.DialTimeout("tcp", a, time.Second)
			if err != nil {
				return err
			}
			conn.Close()
		}
		return nil
	})
}

// cluster is the backend cluster named name.
func (c *procCluster) cluster(name string) *backendProc {
	c.t.Helper()
	for _, b := range c.clusters {
		if b.name == name {
			return b
		}
	}
	c.t.Fatalf("no backend cluster %q", name)
	return nil
}

// upgradeCluster stops cluster name's process (SIGTERM: a planned
// upgrade), starts it again on its data dir with --max-version release
// ("": kfake's newest) and waits for its brokers. kfake runs every broker
// of a cluster in one process, so the whole cluster is upgraded at once,
// not broker by broker.
func (c *procCluster) upgradeCluster(name, release string) {
	c.t.Helper()
	b := c.cluster(name)
	b.proc.Stop(c.t, syscall.SIGTERM)
	var args []string
	for i := 0; i < len(b.proc.Args); i++ {
		if b.proc.Args[i] == "--max-version" {
			i++
			continue
		}
		args = append(args, b.proc.Args[i])
	}
	if release != "" {
		args = append(args, "--max-version", release)
	}
	b.proc.Args = args
	b.proc.Start(c.t, c.bin)
	c.waitBrokers(b.brokers)
}

// restartBackend starts the backend process again on its data dir.
func (c *procCluster) restartBackend() {
	c.t.Helper()
	c.backend.Start(c.t, c.bin)
	c.waitBackend()
}

// createTopic creates topic on the first backend directly (kfake persists
// only topics created explicitly).
func (c *procCluster) createTopic(topic string, partitions int32) {
	c.t.Helper()
	c.createTopicOn(c.clusters[0].name, topic, partitions)
}

// createTopicOn creates topic on backend cluster name directly.
func (c *procCluster) createTopicOn(name, topic string, partitions int32) {
	c.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.cluster(name).brokers...))
	if err != nil {
		c.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		c.t.Fatalf("create topic %s on backend %s: %v", topic, name, err)
	}
}

// bootstrap is every peer's Kafka address.
func (c *procCluster) bootstrap() []string {
	var out []string
	for _, p := range c.peers {
		out = append(out, p.Kafka)
	}
	return out
}

func (c *procCluster) ctl(i int, args ...string) (string, error) {
	all := append([]string{"ctl", "--server", c.peers[i].Admin, "--timeout", "5s"}, args...)
	cmd := exec.Command(c.bin, all...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("ctl %s via %s: %v: %s", strings.Join(args, " "), c.peers[i].Name, err, errb.String())
	}
	return out.String(), nil
}

func (c *procCluster) mustCtl(i int, timeout time.Duration, args ...string) {
	c.t.Helper()
	waitFor(c.t, timeout, "ctl "+strings.Join(args, " "), func() error {
		_, err := c.ctl(i, args...)
		return err
	})
}

func (c *procCluster) status(i int) (status, error) {
	var s status
	out, err := c.ctl(i, "-o", "json", "status")
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal([]byte(out), &s)
}

// leader is the index of the Raft leader as peer via sees it.
func (c *procCluster) leader(via int) int {
	c.t.Helper()
	idx := -1
	waitFor(c.t, time.Minute, "a leader", func() error {
		s, err := c.status(via)
		if err != nil {
			return err
		}
		if s.Leader == nil {
			return fmt.Errorf("no leader")
		}
		for i, p := range c.peers {
			if p.Name == s.Leader.Name {
				idx = i
				return nil
			}
		}
		return fmt.Errorf("leader %q is none of ours", s.Leader.Name)
	})
	return idx
}

// waitReady waits for peer i's /readyz.
func (c *procCluster) waitReady(i int, timeout time.Duration) {
	c.t.Helper()
	waitFor(c.t, timeout, c.peers[i].Name+" ready", func() error {
		resp, err := c.http.Get("http://" + c.peers[i].Admin + "/readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	})
}

// kill SIGKILLs peer i.
func (c *procCluster) kill(i int) {
	c.t.Helper()
	c.peers[i].Stop(c.t, syscall.SIGKILL)
	c.t.Logf("%s killed", c.peers[i].Name)
}

// restart starts peer i again with the binary it ran and waits until it
// is ready.
func (c *procCluster) restart(i int) {
	c.t.Helper()
	c.restartWith(i, c.peerBin[i])
}

// restartWith starts peer i again with binary bin and waits until it is
// ready.
func (c *procCluster) restartWith(i int, bin string) {
	c.t.Helper()
	c.peerBin[i] = bin
	c.peers[i].Start(c.t, bin)
	c.waitReady(i, time.Minute)
	c.t.Logf("%s restarted and ready", c.peers[i].Name)
}
