package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/node"
	"github.com/switchyard-proxy/switchyard/test/testnet"
	"github.com/switchyard-proxy/switchyard/transport"
)

// waitFor polls cond until it returns nil or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
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
		time.Sleep(10 * time.Millisecond)
	}
}

// freePort reserves a loopback port number for a peer that must come back
// on the same addresses after a restart.
func freePort(t testing.TB) int { return testnet.Port(t) }

// testLogger sends component logs to t.Log (at SWITCHYARD_TEST_LOG level,
// default warn) until the test ends.
func testLogger(t testing.TB) *slog.Logger {
	lv := slog.LevelWarn
	if s := os.Getenv("SWITCHYARD_TEST_LOG"); s != "" {
		_ = lv.UnmarshalText([]byte(strings.ToUpper(s)))
	}
	w := &tWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lv}))
}

type tWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// peer is one in-process Switchyard peer with fixed addresses, so it can
// be stopped and started again on its data dir.
type peer struct {
	name                         string
	dir                          string
	kafka, admin, raftA, gossipA string
	local                        []fsm.BrokerRef
	// commandSet stands in for the peer's build in rolling-upgrade tests
	// (node.Config.CommandSet; 0 is this build's).
	commandSet uint16

	n      *node.Node
	cancel context.CancelFunc
	done   chan error
}

// testCluster is a Switchyard cluster of in-process peers on loopback,
// optionally in front of a kfake backend, with fault injection between
// peers.
type testCluster struct {
	t       testing.TB
	log     *slog.Logger
	faults  *transport.Faults
	timing  node.Timing
	backend *kfake.Cluster
	peers   []*peer
	// introduced stands in for a newer build's command table
	// (node.Config.CommandIntroduced).
	introduced map[fsm.CommandType]uint16
	// refresh is the peers' metadata refresh period.
	refresh time.Duration
}

type clusterOpts struct {
	peers   int
	brokers int // kfake brokers; 0 runs no backend
	timing  *node.Timing
	// commandSets[i], when set, is peer i's command set; introduced is
	// every peer's command table override.
	commandSets []uint16
	introduced  map[fsm.CommandType]uint16
	// metadataRefresh is the peers' metadata refresh period; 0 is 500 ms.
	metadataRefresh time.Duration
}

// testTiming is node.SharedMachineTiming: with FastTiming's 250 ms lease
// and 100 ms probes a loaded machine kept five in-process peers in an
// election storm for over 20 s, and gossip declared live peers dead.
// Tests wait for outcomes with generous deadlines, so the slower
// detection costs seconds, not failures.
func testTiming() node.Timing { return node.SharedMachineTiming() }

func newCluster(t testing.TB, o clusterOpts) *testCluster {
	t.Helper()
	c := &testCluster{t: t, log: testLogger(t), faults: transport.NewFaults(), timing: testTiming(), introduced: o.introduced, refresh: o.metadataRefresh}
	if c.refresh == 0 {
		c.refresh = 500 * time.Millisecond
	}
	if o.timing != nil {
		c.timing = *o.timing
	}
	if o.brokers > 0 {
		be, err := kfake.NewCluster(kfake.NumBrokers(o.brokers), kfake.AllowAutoTopicCreation())
		if err != nil {
			t.Fatal(err)
		}
		c.backend = be
		t.Cleanup(be.Close)
	}
	base := t.TempDir()
	for i := range o.peers {
		c.peers = append(c.peers, c.newPeer(base, i, o.brokers))
		if i < len(o.commandSets) {
			c.peers[i].commandSet = o.commandSets[i]
		}
	}
	t.Cleanup(c.stopAll)
	for i := range c.peers {
		c.start(i, o.peers)
	}
	return c
}

func (c *testCluster) newPeer(base string, i, brokers int) *peer {
	addr := func() string { return "127.0.0.1:" + strconv.Itoa(freePort(c.t)) }
	p := &peer{
		name:    fmt.Sprintf("peer-%d", i),
		dir:     filepath.Join(base, fmt.Sprintf("peer-%d", i)),
		kafka:   addr(),
		admin:   addr(),
		raftA:   addr(),
		gossipA: addr(),
	}
	if i < brokers {
		p.local = []fsm.BrokerRef{{Cluster: "main", BrokerID: int32(i)}}
	}
	return p
}

// start runs peer i. expect > 0 bootstraps with that many peers; every peer
// also joins the gossip addresses of all the others, so any subset can
// restart.
func (c *testCluster) start(i, expect int) {
	c.t.Helper()
	p := c.peers[i]
	var join []string
	for j, o := range c.peers {
		if j != i {
			join = append(join, o.gossipA)
		}
	}
	n, err := node.New(node.Config{
		Name:              p.name,
		DataDir:           p.dir,
		Version:           "test",
		KafkaListen:       p.kafka,
		AdminListen:       p.admin,
		RaftListen:        p.raftA,
		GossipListen:      p.gossipA,
		Join:              join,
		BootstrapExpect:   expect,
		LocalBrokers:      p.local,
		MetadataRefresh:   c.refresh,
		AdmitUnproven:     true, // loopback, no peer TLS: the insecure admission mode
		Timing:            c.timing,
		CommandSet:        p.commandSet,
		CommandIntroduced: c.introduced,
		Faults:            c.faults,
		Logger:            c.log.With("peer", p.name),
	})
	if err != nil {
		c.t.Fatalf("start %s: %v", p.name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.n, p.cancel, p.done = n, cancel, make(chan error, 1)
	go func() { p.done <- n.Run(ctx) }()
}

// stop stops peer i as a crash would look to the others: no gossip leave.
func (c *testCluster) stop(i int) {
	c.t.Helper()
	p := c.peers[i]
	if p.cancel == nil {
		return
	}
	p.cancel()
	if err := <-p.done; err != nil {
		c.t.Errorf("%s stopped with: %v", p.name, err)
	}
	p.cancel, p.n = nil, nil
}

func (c *testCluster) stopAll() {
	for i := range c.peers {
		c.stop(i)
	}
}

func (c *testCluster) running() []int {
	var out []int
	for i, p := range c.peers {
		if p.n != nil {
			out = append(out, i)
		}
	}
	return out
}

// leader waits for a leader among the running peers and returns its index.
func (c *testCluster) leader(timeout time.Duration) int {
	c.t.Helper()
	idx := -1
	waitFor(c.t, timeout, "a raft leader", func() error {
		for _, i := range c.running() {
			if c.peers[i].n.IsLeader() {
				idx = i
				return nil
			}
		}
		return errors.New("no running peer leads")
	})
	return idx
}

// apply applies cmd through peer i and returns its index. Apply itself
// retries across a leader change within each attempt's 2 s; apply tries
// again while there is still no leader after that (a busy machine can take
// longer to elect one) or the outcome was unknown (the commands tests send
// this way are idempotent).
func (c *testCluster) apply(i int, cmd fsm.Command, timeout time.Duration) uint64 {
	c.t.Helper()
	var idx uint64
	waitFor(c.t, timeout, fmt.Sprintf("apply %s via %s", cmd.Type(), c.peers[i].name), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		res, err := c.peers[i].n.Apply(ctx, cmd)
		if err != nil {
			if errors.Is(err, node.ErrNoLeader) || errors.Is(err, node.ErrNotLeader) || errors.Is(err, node.ErrUnknownOutcome) {
				return err
			}
			c.t.Fatalf("apply %s via %s: %v", cmd.Type(), c.peers[i].name, err)
		}
		idx = res.Index
		return nil
	})
	return idx
}

// waitApplied waits until every running peer has applied idx.
func (c *testCluster) waitApplied(idx uint64, timeout time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, i := range c.running() {
		if err := c.peers[i].n.WaitIndex(ctx, idx); err != nil {
			c.t.Fatal(err)
		}
	}
}

// putBackend puts the kfake cluster as "main", the default cluster.
func (c *testCluster) putBackend(via int) uint64 {
	c.t.Helper()
	c.apply(via, &fsm.PutCluster{Cluster: fsm.Cluster{Name: "main", Bootstrap: c.backend.ListenAddrs()}}, 20*time.Second)
	return c.apply(via, &fsm.SetDefaultCluster{Cluster: "main"}, 20*time.Second)
}

func (c *testCluster) kafkaAddrs(idx ...int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, c.peers[i].kafka)
	}
	return out
}

// HTTP helpers for the admin API.

func get(addr, path string) (int, string) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func put(addr, path, body string) (int, string) {
	req, err := http.NewRequest(http.MethodPut, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func getJSON(addr, path string, v any) error {
	code, body := get(addr, path)
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, code, body)
	}
	return json.Unmarshal([]byte(body), v)
}
