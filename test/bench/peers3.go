package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The peers3 scenario is the deployment users run: one `switchyard serve`
// per broker host (peer i co-located with broker i), with Raft, gossip,
// quota reports and the metadata refresh running beside the data path, in
// front of a 3-broker backend that is a process of its own (`switchyard
// broker --brokers 3`), so that the backend's CPU is measured apart from the
// load generator's. Each round runs every phase directly and through the
// peers, alternating which goes first; the table shows medians.
//
// Phases: latency (-rate records/s, linger 0, acks=all), produce (acks=all
// as fast as it goes, -peers3-bytes per round) and metadata (all-topics
// Metadata with -peers3-topics topics of 12 partitions present, created
// before the first round so that every phase runs with them, as in an
// estate with thousands of topics).

// peers3Partitions is the partition count of each metadata topic.
const peers3Partitions = 12

var peers3Phases = []string{"latency", "produce", "metadata"}

// brokerLine is how `switchyard broker` prints each broker's address.
var brokerLine = regexp.MustCompile(`broker (\d+): listening on \S+, advertised as (\S+)`)

// startPeers3Env starts the backend process and three peers in front of it.
func (h *harness) startPeers3Env(ctx context.Context) (*env, error) {
	if h.o.proxyMode != "process" {
		return nil, fmt.Errorf("needs -proxy process (the peers and the backend are processes)")
	}
	e := &env{}
	logPath := filepath.Join(h.dir, fmt.Sprintf("broker-%d.log", time.Now().UnixNano()))
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(h.binary, "broker", "--brokers", "3", "--listen", "127.0.0.1:0",
		"--auto-create=false", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start the backend: %w", err)
	}
	p := &proxyProc{cmd: cmd, logf: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); lf.Close(); close(p.done) }()
	e.backend = p
	addrs, err := brokerAddrsFromLog(ctx, p)
	if err != nil {
		e.close()
		return nil, err
	}
	e.direct = addrs
	spec := peerSpec{binary: h.binary, peers: 3, brokers: 3, gomaxprocs: h.o.proxyProcs, profileDir: h.o.peers3Profile}
	if err := h.startProxies(ctx, e, &e.proxy, spec); err != nil {
		e.close()
		return nil, err
	}
	if h.o.baseline != "" {
		// A second set of three peers in front of the same brokers, for
		// an A/B in one run: its background runs throughout, as the
		// measured set's does.
		bspec := peerSpec{binary: h.o.baseline, peers: 3, brokers: 3, gomaxprocs: h.o.baselineProcs}
		if err := h.startProxies(ctx, e, &e.baseline, bspec); err != nil {
			e.close()
			return nil, fmt.Errorf("baseline: %w", err)
		}
	}
	if h.o.peers3Relays {
		// The floor under the same load: a relay per broker that only
		// copies bytes, which clients reach through modeOpts' dialer (the
		// brokers advertise their own addresses).
		e.relays, e.relayOf = &proxySet{}, map[string]string{}
		for _, b := range e.direct {
			p, addr, err := startRelay(b)
			if err != nil {
				e.close()
				return nil, err
			}
			e.relays.procs = append(e.relays.procs, p)
			e.relays.addrs = append(e.relays.addrs, addr)
			e.relayOf[b] = addr
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.direct...))
	if err != nil {
		e.close()
		return nil, err
	}
	e.adminCl, e.adm = cl, kadm.NewClient(cl)
	return e, nil
}

// brokerAddrsFromLog waits for the backend to print its three brokers'
// addresses.
func brokerAddrsFromLog(ctx context.Context, p *proxyProc) ([]string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(p.logf)
		addrs := make([]string, 3)
		found := 0
		for _, m := range brokerLine.FindAllStringSubmatch(string(b), -1) {
			if i, _ := strconv.Atoi(m[1]); i < 3 && addrs[i] == "" {
				addrs[i] = m[2]
				found++
			}
		}
		if found == 3 {
			return addrs, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("backend exited (%v): %s", p.err, tail(p.logf))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("backend printed no addresses within 30s: %s", tail(p.logf))
}

// peers3Scenario runs the rounds and returns one result per phase.
func (h *harness) peers3Scenario(ctx context.Context) ([]scenarioResult, error) {
	load0 := readLoad()
	e, err := h.startPeers3Env(ctx)
	if err != nil {
		return nil, err
	}
	defer e.close()
	if h.o.peers3Profile != "" {
		h.logf("bench: peers3: the peers write CPU profiles to %s/peer-{0,1,2}.pprof when they stop", h.o.peers3Profile)
	}
	if h.o.peers3Topics > 0 {
		t0 := time.Now()
		if err := e.createMetadataTopics(ctx, h.o.peers3Topics); err != nil {
			return nil, err
		}
		h.logf("bench: peers3: created %d topics of %d partitions in %.1fs", h.o.peers3Topics, peers3Partitions, time.Since(t0).Seconds())
	}
	idle, err := h.peers3Idle(ctx, e)
	if err != nil {
		return nil, err
	}
	value := make([]byte, h.o.recordSize)
	for i := range value {
		value[i] = byte(i * 7)
	}
	results := map[string]*scenarioResult{}
	for _, ph := range h.o.peers3Phases {
		results[ph] = &scenarioResult{name: "peers3-" + ph}
	}
	rounds := h.o.peers3Rounds
	through := "direct and through 3 peers"
	if e.relays != nil {
		through = "direct, through 3 peers and through 3 relays"
	}
	h.logf("bench: peers3: %d rounds of %v, %s in turn", rounds, h.o.peers3Phases, through)
	for r := range rounds {
		// The modes rotate through the positions, so each holds each one
		// equally over a multiple of their number of rounds. (An earlier
		// order kept the measured build in the middle every round; with
		// 1 GiB rounds the middle slot ran 1.4× slower than the
		// baseline's, whichever build was there.)
		all := []mode{modeDirect, modeProxy}
		if e.baseline != nil {
			all = append(all, modeBaseline)
		}
		if e.relays != nil {
			all = append(all, modeRelay)
		}
		k := r % len(all)
		order := append(all[k:len(all):len(all)], all[:k]...)
		for _, ph := range h.o.peers3Phases {
			res := results[ph]
			for _, md := range order {
				settle()
				rctx, cancel := context.WithTimeout(ctx, h.o.roundTimeout)
				topic := fmt.Sprintf("bench-peers3-%s-%d-%s", ph, r, md)
				mt := &meter{e: e, mode: md}
				var err error
				switch ph {
				case "latency":
					err = h.latencyRound(rctx, mt, topic, value)
				case "produce":
					err = h.produceRound(rctx, mt, topic, value, int(h.o.peers3Bytes/int64(h.o.recordSize)), false)
				case "metadata":
					err = h.metadataRound(rctx, mt, h.o.peers3Topics)
				}
				cancel()
				if err != nil {
					return nil, fmt.Errorf("round %d %s %s: %w", r+1, ph, md, err)
				}
				m := mt.m
				m.mode, m.round = md, r
				h.logf("bench:   round %d %-8s %-6s %s", r+1, ph, md, describe(res.name, m))
				switch md {
				case modeProxy:
					res.proxy = append(res.proxy, m)
				case modeBaseline:
					res.baseline = append(res.baseline, m)
				case modeRelay:
					res.relay = append(res.relay, m)
				default:
					res.direct = append(res.direct, m)
				}
			}
		}
	}
	note := loadNote(load0, readLoad())
	out := []scenarioResult{idle}
	for _, ph := range h.o.peers3Phases {
		out = append(out, *results[ph])
	}
	for i := range out {
		out[i].note = note
	}
	return out, nil
}

// peers3IdleTime is how long the peers' background cost is measured: one
// metadata refresh period (serve's default --metadata-refresh), so each
// window holds one refresh of each peer whatever its phase.
const peers3IdleTime = 10 * time.Second

// peers3IdleWait is how long the idle measurement waits first, so the
// refreshes that decode the topics just created (each later one digests the
// same answer and is skipped) fall before either set's window. Measured
// without it, the set measured second showed 0.057 cores against 0.034 for
// the same build measured first.
const peers3IdleWait = 12 * time.Second

// peers3Idle measures what the peers cost with no client at all: Raft,
// gossip, quota reports and the metadata refresh (whose cost to the
// backend shows in the backend's CPU).
func (h *harness) peers3Idle(ctx context.Context, e *env) (scenarioResult, error) {
	res := scenarioResult{name: "peers3-idle"}
	h.logf("bench: peers3: waiting %v for the refreshes after the topics' creation", peers3IdleWait)
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(peers3IdleWait):
	}
	modes := []mode{modeProxy}
	if e.baseline != nil {
		modes = append(modes, modeBaseline)
	}
	for _, md := range modes {
		settle()
		mt := &meter{e: e, mode: md}
		if err := mt.start(ctx); err != nil {
			return res, err
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(peers3IdleTime):
		}
		if err := mt.stop(ctx); err != nil {
			return res, err
		}
		m := mt.m
		m.mode = md
		h.logf("bench: peers3: idle for %v: %s peers (summed) %.3f cores, backend %.3f cores", peers3IdleTime, md,
			m.proxyCPU.Seconds()/m.wall.Seconds(), m.backendCPU.Seconds()/m.wall.Seconds())
		if md == modeBaseline {
			res.baseline = append(res.baseline, m)
		} else {
			res.proxy = append(res.proxy, m)
		}
	}
	return res, nil
}

// createMetadataTopics creates n topics of peers3Partitions partitions,
// a few hundred per request.
func (e *env) createMetadataTopics(ctx context.Context, n int) error {
	const batch = 250
	for i := 0; i < n; i += batch {
		var names []string
		for j := i; j < min(n, i+batch); j++ {
			names = append(names, fmt.Sprintf("bench-meta-%05d", j))
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		resps, err := e.adm.CreateTopics(cctx, peers3Partitions, 1, nil, names...)
		cancel()
		if err != nil {
			return fmt.Errorf("create metadata topics: %w", err)
		}
		if err := resps.Error(); err != nil {
			return fmt.Errorf("create metadata topics: %w", err)
		}
	}
	return nil
}

// metadataRound sends -peers3-metadata-requests all-topics Metadata
// requests one after another, to each broker (or peer) in turn, and keeps
// the p50 time per request and the CPU per request of the backend and of
// the peers.
func (h *harness) metadataRound(ctx context.Context, mt *meter, topics int) error {
	cl, err := kgo.NewClient(h.modeOpts(mt.e, mt.mode)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	// Warm up: connections, ApiVersions, and the client's own metadata.
	if err := cl.Ping(ctx); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if _, err := kadm.NewClient(cl).BrokerMetadata(ctx); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	brokers := cl.DiscoveredBrokers()
	if len(brokers) == 0 {
		return fmt.Errorf("no brokers discovered")
	}
	n := h.o.peers3MetaReqs
	lat := make([]time.Duration, 0, n)
	if err := mt.start(ctx); err != nil {
		return err
	}
	for i := range n {
		req := kmsg.NewPtrMetadataRequest() // Topics nil: every topic
		t := time.Now()
		// Sent to one broker by hand: kgo's Client.Request would answer
		// some metadata requests from its own cache.
		resp, err := brokers[i%len(brokers)].Request(ctx, req)
		if err != nil {
			return fmt.Errorf("metadata %d: %w", i, err)
		}
		lat = append(lat, time.Since(t))
		if got := len(resp.(*kmsg.MetadataResponse).Topics); got < topics {
			return fmt.Errorf("metadata %d: %d topics, want at least %d", i, got, topics)
		}
	}
	if err := mt.stop(ctx); err != nil {
		return err
	}
	slices.Sort(lat)
	mt.m.value = ms(percentile(lat, 0.50))
	mt.m.p99 = ms(percentile(lat, 0.99))
	mt.m.requests = n
	return nil
}

// loadSample is the machine's load at one moment.
type loadSample struct {
	loadavg string  // /proc/loadavg's first three fields
	cpu     []int64 // /proc/stat's "cpu" line: user nice system idle iowait irq softirq steal
}

func readLoad() loadSample {
	var s loadSample
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			s.loadavg = strings.Join(f[:3], " ")
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		if len(f) >= 9 && f[0] == "cpu" {
			for _, x := range f[1:9] {
				v, _ := strconv.ParseInt(x, 10, 64)
				s.cpu = append(s.cpu, v)
			}
		}
	}
	return s
}

// loadNote says how busy the machine was between two samples: load
// averages, and the share of CPU time that was busy and stolen by the
// hypervisor.
func loadNote(a, b loadSample) string {
	note := fmt.Sprintf("load average %s at the start, %s at the end", a.loadavg, b.loadavg)
	if len(a.cpu) == 8 && len(b.cpu) == 8 {
		var total, idle int64
		for i := range 8 {
			d := b.cpu[i] - a.cpu[i]
			total += d
			if i == 3 || i == 4 {
				idle += d
			}
		}
		if total > 0 {
			steal := b.cpu[7] - a.cpu[7]
			note += fmt.Sprintf("; over the scenario the CPUs were %.0f%% busy, %.0f%% stolen by the hypervisor",
				100*float64(total-idle-steal)/float64(total), 100*float64(steal)/float64(total))
		}
	}
	return note
}
