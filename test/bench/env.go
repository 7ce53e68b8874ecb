package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/sandbox"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// harness holds what lives across scenarios: options, the temp dir and the
// proxy binary.
type harness struct {
	o      options
	log    io.Writer
	dir    string
	binary string
}

func newHarness(ctx context.Context, o options, log io.Writer) (*harness, error) {
	dir, err := os.MkdirTemp("", "switchyard-bench-")
	if err != nil {
		return nil, err
	}
	h := &harness{o: o, log: log, dir: dir, binary: o.switchyard}
	if o.proxyMode == "process" && h.binary == "" {
		h.binary = filepath.Join(dir, "switchyard")
		fmt.Fprintln(log, "bench: building switchyard for the proxy process")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", h.binary, "github.com/switchyard-proxy/switchyard/cmd/switchyard")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("build switchyard (or pass -switchyard PATH): %w", err)
		}
	}
	return h, nil
}

func (h *harness) cleanup() {
	if h.o.debug {
		h.logf("bench: proxy logs kept in %s", h.dir)
		return
	}
	os.RemoveAll(h.dir)
}

// clientOpts are the options every benchmark client gets.
func (h *harness) clientOpts(seeds []string) []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...)}
	if h.o.debug {
		stamp := func() string { return time.Now().Format("15:04:05.000000 ") }
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(h.log, kgo.LogLevelDebug, stamp)))
	}
	return opts
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, format+"\n", args...)
}

// modeOpts are a round's client options: seeded with the mode's brokers
// or peers; through the relays, seeded with the brokers, every connection
// dialed to the broker's relay and its bytes counted (a relay has no
// metrics of its own).
func (h *harness) modeOpts(e *env, m mode) []kgo.Opt {
	opts := h.clientOpts(e.addrs(m))
	if m != modeRelay {
		return opts
	}
	var d net.Dialer
	return append(opts,
		kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
			if to, ok := e.relayOf[host]; ok {
				host = to
			}
			return d.DialContext(ctx, network, host)
		}),
		kgo.WithHooks(&e.relayIO))
}

// relayIO counts what the clients of relay rounds write and read, as a
// peer's request and response byte counters do.
type relayIO struct {
	bytes, requests atomic.Int64
}

func (r *relayIO) OnBrokerWrite(_ kgo.BrokerMetadata, _ int16, n int, _, _ time.Duration, _ error) {
	r.bytes.Add(int64(n))
	r.requests.Add(1)
}

func (r *relayIO) OnBrokerRead(_ kgo.BrokerMetadata, _ int16, n int, _, _ time.Duration, _ error) {
	r.bytes.Add(int64(n))
}

// env is one scenario's deployment: a fresh kfake cluster and the proxy
// peers in front of it (and, with -baseline, a second set of peers running
// another binary or GOMAXPROCS, measured in the same rounds).
type env struct {
	cluster  *kfake.Cluster // nil when the backend is a process
	backend  *proxyProc     // the `switchyard broker` process, or nil
	sb       *sandbox.Sandbox
	direct   []string // kfake brokers
	proxy    *proxySet
	baseline *proxySet // nil without -baseline
	// relays are byte-copying relays, one per broker (peers3 unless
	// -peers3-relays=false); relayOf maps a broker's address to its relay's.
	relays  *proxySet
	relayOf map[string]string
	relayIO relayIO
	adminCl *kgo.Client
	adm     *kadm.Client
}

// proxySet is one set of peers in front of the cluster.
type proxySet struct {
	addrs  []string // Kafka listeners
	admins []string // admin base URLs, for /metrics
	procs  []*proxyProc
}

// proxyProc is one `switchyard serve` child.
type proxyProc struct {
	cmd  *exec.Cmd
	logf string
	// done is closed once the process has exited, with its Wait error in
	// err: closed rather than sent, so every waiter (a start-up check, then
	// close) sees it.
	done chan struct{}
	err  error
}

func (h *harness) startEnv(ctx context.Context) (*env, error) {
	e := &env{}
	if h.o.proxyMode == "inproc" {
		sb, err := sandbox.Start(ctx, sandbox.Config{Brokers: h.o.brokers, Peers: h.o.peers, ClusterName: "default"})
		if err != nil {
			return nil, err
		}
		e.sb, e.cluster = sb, sb.Backend
		e.direct = sb.Backend.ListenAddrs()
		e.proxy = &proxySet{addrs: sb.Bootstrap, admins: sb.AdminURLs}
	} else {
		c, err := kfake.NewCluster(kfake.NumBrokers(h.o.brokers))
		if err != nil {
			return nil, fmt.Errorf("start kfake: %w", err)
		}
		e.cluster = c
		e.direct = c.ListenAddrs()
		if err := h.startProxies(ctx, e, &e.proxy, peerSpec{binary: h.binary, peers: h.o.peers, brokers: h.o.brokers, gomaxprocs: h.o.proxyProcs}); err != nil {
			e.close()
			return nil, err
		}
		if h.o.baseline != "" {
			if err := h.startProxies(ctx, e, &e.baseline, peerSpec{binary: h.o.baseline, peers: h.o.peers, brokers: h.o.brokers, gomaxprocs: h.o.baselineProcs}); err != nil {
				e.close()
				return nil, fmt.Errorf("baseline: %w", err)
			}
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

// peerSpec says which peers startProxies runs.
type peerSpec struct {
	binary     string
	peers      int // processes
	brokers    int // peer i < brokers is co-located with broker i
	gomaxprocs int // 0: the Go default
	// env is added to each peer's environment; with profileDir set, peer i
	// also writes a CPU profile of its run to profileDir/peer-i.pprof.
	env        []string
	profileDir string
}

// startProxies runs the peers as one Raft cluster, peer i co-located with
// broker i, and puts the backend (e.direct) as the default cluster through
// the admin API. With one peer per broker this is the normal deployment: each
// request maps to one backend broker and is forwarded as is.
//
// The set is stored in *dst before any process starts, so that env.close
// stops whatever did start when a later step fails.
func (h *harness) startProxies(ctx context.Context, e *env, dst **proxySet, spec peerSpec) error {
	n, binary := spec.peers, spec.binary
	// One call, so the three lists cannot share a port: each call's
	// listeners are closed when it returns, and a later call could be
	// given one of them again.
	ports, err := freePorts(3 * n)
	if err != nil {
		return err
	}
	kafkaPorts, adminPorts, gossipPorts := ports[:n], ports[n:2*n], ports[2*n:]
	ps := &proxySet{}
	for i := range n {
		ps.addrs = append(ps.addrs, "127.0.0.1:"+strconv.Itoa(kafkaPorts[i]))
		ps.admins = append(ps.admins, "http://127.0.0.1:"+strconv.Itoa(adminPorts[i]))
	}
	*dst = ps
	logLevel := "warn"
	if h.o.debug {
		logLevel = "debug"
	}
	stamp := strconv.FormatInt(time.Now().UnixNano(), 10)
	for i := range n {
		args := []string{"serve",
			"--name", "peer-" + strconv.Itoa(i),
			"--data-dir", filepath.Join(h.dir, "data-"+stamp, strconv.Itoa(i)),
			"--kafka-listen", ps.addrs[i],
			"--admin-listen", strings.TrimPrefix(ps.admins[i], "http://"),
			"--raft-listen", "127.0.0.1:0",
			"--gossip-listen", "127.0.0.1:" + strconv.Itoa(gossipPorts[i]),
			"--bootstrap-expect", strconv.Itoa(n),
			"--log-level", logLevel,
		}
		if supportsFlag(binary, "admit-unproven-peers") {
			// Loopback, no peer TLS; a -baseline build from before peer
			// admission has no such flag and admits every member anyway.
			args = append(args, "--admit-unproven-peers")
		}
		if i < spec.brokers {
			args = append(args, "--local-broker", "default:"+strconv.Itoa(i))
		}
		for j := range n {
			if j != i {
				args = append(args, "--join", "127.0.0.1:"+strconv.Itoa(gossipPorts[j]))
			}
		}
		logPath := filepath.Join(h.dir, fmt.Sprintf("proxy-%d-%d.log", i, time.Now().UnixNano()))
		lf, err := os.Create(logPath)
		if err != nil {
			return err
		}
		cmd := exec.Command(binary, args...)
		cmd.Stdout, cmd.Stderr = lf, lf
		cmd.Env = append(os.Environ(), spec.env...)
		if spec.gomaxprocs > 0 {
			cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(spec.gomaxprocs))
		}
		if spec.profileDir != "" {
			cmd.Env = append(cmd.Env, "SWITCHYARD_CPUPROFILE="+filepath.Join(spec.profileDir, fmt.Sprintf("peer-%d.pprof", i)))
		}
		if err := cmd.Start(); err != nil {
			lf.Close()
			return fmt.Errorf("start proxy %d: %w", i, err)
		}
		p := &proxyProc{cmd: cmd, logf: logPath, done: make(chan struct{})}
		go func() { p.err = cmd.Wait(); lf.Close(); close(p.done) }()
		ps.procs = append(ps.procs, p)
	}
	bootstrap, _ := json.Marshal(map[string]any{"bootstrap": e.direct})
	for _, w := range []struct{ path, body string }{
		{"/v1/clusters/default", string(bootstrap)},
		{"/v1/default-cluster", `{"cluster":"default"}`},
	} {
		if err := putUntilOK(ctx, ps.admins[0]+w.path, w.body, ps.procs[0]); err != nil {
			// Peer 0 tells only what it saw; a peer that died (a port
			// taken, say) is why there was no group to join.
			for i, p := range ps.procs[1:] {
				select {
				case <-p.done:
					err = fmt.Errorf("%w; peer %d exited (%v): %s", err, i+1, p.err, tail(p.logf))
				default:
				}
			}
			return fmt.Errorf("configure the peers: %w", err)
		}
	}
	for i, p := range ps.procs {
		if err := waitReady(ctx, ps.admins[i], p); err != nil {
			return fmt.Errorf("proxy %d: %w", i, err)
		}
	}
	return nil
}

// supportsFlag reports whether binary's serve command knows --flag, so the
// harness can drive an older -baseline build too.
func supportsFlag(binary, flag string) bool {
	out, _ := exec.Command(binary, "serve", "-h").CombinedOutput()
	return strings.Contains(string(out), "-"+flag+" ") || strings.Contains(string(out), "-"+flag+"\n")
}

// putUntilOK PUTs body to url until it answers 200: the peers elect their
// first leader meanwhile.
func putUntilOK(ctx context.Context, url, body string, p *proxyProc) error {
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("exited (%v): %s", p.err, tail(p.logf))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, strings.NewReader(body))
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			last = err.Error()
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		last = fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	return fmt.Errorf("PUT %s: not accepted within 30s (last: %s): %s", url, last, tail(p.logf))
}

// waitReady polls the peer's /readyz until its backend metadata is loaded.
func waitReady(ctx context.Context, admin string, p *proxyProc) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("exited (%v): %s", p.err, tail(p.logf))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get(admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("not ready after 30s: %s", tail(p.logf))
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// freePorts reserves n loopback ports by binding and releasing them.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (e *env) close() {
	if e.adminCl != nil {
		e.adminCl.Close()
	}
	var procs []*proxyProc
	for _, ps := range []*proxySet{e.proxy, e.baseline} {
		if ps != nil {
			procs = append(procs, ps.procs...)
		}
	}
	for _, p := range procs {
		stopProc(p)
	}
	if e.relays != nil {
		for _, p := range e.relays.procs {
			stopRelay(p)
		}
	}
	if e.sb != nil {
		e.sb.Close()
	} else if e.cluster != nil {
		e.cluster.Close()
	}
	if e.backend != nil {
		stopProc(e.backend)
	}
}

// stopProc stops a child with SIGTERM (so a peer writes its CPU profile),
// killing it after 10 s.
func stopProc(p *proxyProc) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// set returns the peers a mode goes through; nil for direct.
func (e *env) set(m mode) *proxySet {
	switch m {
	case modeProxy:
		return e.proxy
	case modeBaseline:
		return e.baseline
	case modeRelay:
		return e.relays
	}
	return nil
}

// addrs returns the seed brokers for a mode (the relays' clients dial
// through modeOpts' dialer).
func (e *env) addrs(m mode) []string {
	if ps := e.set(m); ps != nil && m != modeRelay {
		return ps.addrs
	}
	return e.direct
}

// cpu is the set's processes' total user+system CPU time; ok is false
// when the proxy runs in this process and cannot be told apart.
func (ps *proxySet) cpu() (d time.Duration, ok bool, err error) {
	if len(ps.procs) == 0 {
		return 0, false, nil
	}
	for _, p := range ps.procs {
		t, err := procCPU(p.cmd.Process.Pid)
		if err != nil {
			return 0, false, err
		}
		d += t
	}
	return d, true, nil
}

// procCPU returns the CPU time of a process (all its threads): the sum of
// its threads' on-CPU nanoseconds from /proc/PID/task/*/schedstat, or, where
// that is unavailable, utime+stime from /proc/PID/stat, which counts in
// 10 ms ticks. Go threads live as long as the process, so the per-thread
// sum loses nothing between two readings in practice.
func procCPU(pid int) (time.Duration, error) {
	if d, err := schedstatCPU(pid); err == nil {
		return d, nil
	}
	return statCPU(pid)
}

func schedstatCPU(pid int) (time.Duration, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread exited since ReadDir
		}
		if err != nil {
			return 0, err
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, fmt.Errorf("%s/%s/schedstat is empty", dir, t.Name())
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, err
		}
		sum += ns
	}
	if sum == 0 {
		return 0, errors.New("schedstat reports no CPU time")
	}
	return time.Duration(sum), nil
}

func statCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after it are
	// counted from the closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// selfCPU is this process's user+system CPU time: the load generator and
// kfake (and the proxy with -proxy inproc).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// proxyCounters are the peers' totals of client-side traffic.
type proxyCounters struct {
	bytes    int64 // read from and written to clients
	requests int64 // client requests read
	gcs      int64 // garbage collections (go_gc_duration_seconds_count)
}

// counters sums the peers' own request/response byte counters and request
// counters, scraped from their /metrics.
func (ps *proxySet) counters(ctx context.Context) (proxyCounters, error) {
	var bytes, reqs, gcs float64
	for _, a := range ps.admins {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, a+"/metrics", nil)
		if err != nil {
			return proxyCounters{}, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return proxyCounters{}, fmt.Errorf("scrape %s: %w", a, err)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			var dst *float64
			switch {
			case strings.HasPrefix(line, "switchyard_kafka_request_bytes_total{"),
				strings.HasPrefix(line, "switchyard_kafka_response_bytes_total{"):
				dst = &bytes
			case strings.HasPrefix(line, "switchyard_kafka_requests_total{"):
				dst = &reqs
			case strings.HasPrefix(line, "go_gc_duration_seconds_count "):
				dst = &gcs
			default:
				continue
			}
			f := strings.Fields(line)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				*dst += v
			}
		}
		err = sc.Err()
		resp.Body.Close()
		if err != nil {
			return proxyCounters{}, err
		}
	}
	return proxyCounters{bytes: int64(bytes), requests: int64(reqs), gcs: int64(gcs)}, nil
}
