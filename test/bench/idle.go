package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The idle scenario asks whether idle client connections cost the active
// ones anything: one `switchyard serve` peer in front of kfake, the same
// active load (latency, produce, consume) run through it without and with
// -idle-conns connections held open against it. The idle connections
// belong to a child process (this binary re-run as a holder): each does
// ApiVersions and Metadata, as a client that connected and then had
// nothing to send, and then sits. Rounds alternate which mode goes first;
// the table shows medians and the with/without ratio, and the peer's RSS
// and descriptors in each mode.

// idleHolderEnv, when set to "ADDR N", makes this binary an idle holder.
const idleHolderEnv = "SWITCHYARD_BENCH_IDLE_HOLDER"

// idleQuiet is how long each round also measures the peer with no active
// client: what the idle connections cost on their own.
const idleQuiet = 3 * time.Second

// idleSettle is the pause before each mode's phases: the peer's writer
// goroutines of a connection burst exit after 2 s idle, the connections
// park after 10 s (serve's --kafka-park-idle-after default) and its
// runtime returns memory, which should not count against either mode.
const idleSettle = 12 * time.Second

// idleMaxFrame bounds a response the holder reads: ApiVersions and a
// Metadata of no topics are a few hundred bytes.
const idleMaxFrame = 1 << 20

// idleDialers is how many connections the holder opens at once.
const idleDialers = 32

// maybeIdleHolder runs the holder and exits when this process was started
// as one: it opens the connections, prints "ready N" (or "error ..."), and
// holds them until its stdin closes.
func maybeIdleHolder() {
	spec := os.Getenv(idleHolderEnv)
	if spec == "" {
		return
	}
	addr, ns, ok := strings.Cut(spec, " ")
	n, err := strconv.Atoi(ns)
	if !ok || err != nil || n < 1 {
		fmt.Printf("error %s=%q: want \"ADDR N\"\n", idleHolderEnv, spec)
		os.Exit(2)
	}
	raiseNoFile(uint64(n) + 256)
	conns, err := openIdle(addr, n)
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("ready %d\n", len(conns))
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	os.Exit(0)
}

// raiseNoFile raises the soft descriptor limit towards want, up to the
// hard limit.
func raiseNoFile(want uint64) {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil || lim.Cur >= want {
		return
	}
	lim.Cur = min(want, lim.Max)
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// openIdle opens n connections to addr, each after an ApiVersions and a
// Metadata exchange.
func openIdle(addr string, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	var next atomic.Int64
	var first error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range idleDialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := idleConn(addr)
				mu.Lock()
				if err != nil && first == nil {
					first = fmt.Errorf("connection %d: %w", i, err)
				}
				stop := first != nil
				mu.Unlock()
				if err != nil || stop {
					if c != nil {
						c.Close()
					}
					next.Store(int64(n)) // the others stop too
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if first != nil {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		return nil, first
	}
	return conns, nil
}

// idleConn dials addr and does what a client does before it has anything
// to send: ApiVersions, then a Metadata of no topics (the brokers).
func idleConn(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("bench-idle"))
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 3
	av.ClientSoftwareName, av.ClientSoftwareVersion = "switchyard-bench", "1"
	avr := kmsg.NewPtrApiVersionsResponse()
	if err := exchange(c, f, av, avr, 1); err != nil {
		return c, fmt.Errorf("ApiVersions: %w", err)
	}
	if avr.ErrorCode != 0 {
		return c, fmt.Errorf("ApiVersions: error code %d", avr.ErrorCode)
	}
	metaVersion := int16(-1)
	for _, k := range avr.ApiKeys {
		if k.ApiKey == kmsg.Metadata.Int16() {
			metaVersion = min(k.MaxVersion, 12)
		}
	}
	if metaVersion < 1 {
		return c, errors.New("the peer offers no Metadata v1 or later")
	}
	md := kmsg.NewPtrMetadataRequest()
	md.Version = metaVersion
	md.Topics = []kmsg.MetadataRequestTopic{} // empty, not null: no topics
	mdr := kmsg.NewPtrMetadataResponse()
	if err := exchange(c, f, md, mdr, 2); err != nil {
		return c, fmt.Errorf("Metadata v%d: %w", metaVersion, err)
	}
	if len(mdr.Brokers) == 0 {
		return c, fmt.Errorf("Metadata v%d: no brokers", metaVersion)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// exchange writes req and reads its response into resp. The frame size is
// bounded before anything is allocated for it.
func exchange(c net.Conn, f *kmsg.RequestFormatter, req kmsg.Request, resp kmsg.Response, corr int32) error {
	if _, err := c.Write(f.AppendRequest(nil, req, corr)); err != nil {
		return err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return err
	}
	size := int32(binary.BigEndian.Uint32(hdr[:]))
	if size < 4 || size > idleMaxFrame {
		return fmt.Errorf("response frame of %d bytes (want 4 to %d)", size, idleMaxFrame)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(c, body); err != nil {
		return err
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != corr {
		return fmt.Errorf("correlation id %d, want %d", got, corr)
	}
	body = body[4:]
	resp.SetVersion(req.GetVersion())
	// Flexible response headers carry tagged fields, except ApiVersions'
	// (KIP-511: a client must read it before it knows the version).
	if resp.IsFlexible() && req.Key() != kmsg.ApiVersions.Int16() {
		tags, n := binary.Uvarint(body)
		if n <= 0 || tags != 0 {
			return fmt.Errorf("response header: %d tagged fields (%d)", tags, n)
		}
		body = body[n:]
	}
	return resp.ReadFrom(body)
}

// idleHolder is a running holder process.
type idleHolder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
}

// holdIdle starts a holder with n connections to addr and waits until it
// holds them all.
func holdIdle(ctx context.Context, addr string, n int) (*idleHolder, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", idleHolderEnv, addr, n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the idle holder: %w", err)
	}
	h := &idleHolder{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		} else {
			line <- "error: the holder printed nothing"
		}
		io.Copy(io.Discard, out)
	}()
	go func() { cmd.Wait(); close(h.done) }()
	select {
	case l := <-line:
		if want := fmt.Sprintf("ready %d", n); l != want {
			h.close()
			return nil, fmt.Errorf("idle holder: %s", l)
		}
		return h, nil
	case <-ctx.Done():
		h.close()
		return nil, ctx.Err()
	}
}

// close ends the holder, which closes its connections.
func (h *idleHolder) close() {
	h.stdin.Close()
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		h.cmd.Process.Kill()
		<-h.done
	}
}

// procRSS is a process's resident set in bytes, from /proc/PID/status.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("/proc/%d/status: VmRSS %q", pid, v)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// procFDs is how many descriptors a process has open.
func procFDs(pid int) (int, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	return len(ents), err
}

// idleScenario runs the rounds; direct holds the rounds without idle
// connections, proxy those with them (both through the same peer).
func (h *harness) idleScenario(ctx context.Context) ([]scenarioResult, error) {
	if h.o.proxyMode != "process" {
		return nil, errors.New("needs -proxy process (the peer's RSS and CPU are measured apart)")
	}
	load0 := readLoad()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return nil, fmt.Errorf("start kfake: %w", err)
	}
	e := &env{cluster: c, direct: c.ListenAddrs()}
	defer e.close()
	if err := h.startProxies(ctx, e, &e.proxy, peerSpec{binary: h.binary, peers: 1, brokers: 1, gomaxprocs: h.o.proxyProcs, profileDir: h.o.idleProfile}); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.direct...))
	if err != nil {
		return nil, err
	}
	e.adminCl, e.adm = cl, kadm.NewClient(cl)
	pid := e.proxy.procs[0].cmd.Process.Pid

	value := make([]byte, h.o.recordSize)
	for i := range value {
		value[i] = byte(i * 13)
	}
	n := int(h.o.idleBytes / int64(h.o.recordSize))
	const backlog = "bench-idle-consume"
	h.logf("bench: idle: writing a %d MiB backlog to kfake", int64(n)*int64(h.o.recordSize)/mib)
	if err := h.backlog(ctx, e, backlog, value, n); err != nil {
		return nil, err
	}
	fds0, err := procFDs(pid)
	if err != nil {
		return nil, err
	}
	phases := []string{"quiet", "latency", "produce", "consume"}
	results := map[string]*scenarioResult{}
	for _, ph := range phases {
		results[ph] = &scenarioResult{name: "idle-" + ph}
	}
	h.logf("bench: idle: %d rounds of %v through one peer, without and with %d idle connections in turn", h.o.idleRounds, phases[1:], h.o.idleConns)
	for r := range h.o.idleRounds {
		// "without" is stored as direct, "with" as proxy; both go through
		// the peer.
		order := []bool{false, true}
		if r%2 == 1 {
			order = []bool{true, false}
		}
		for _, with := range order {
			var holder *idleHolder
			label := "without"
			var rssBefore int64
			if with {
				label = "with"
				settle()
				if rssBefore, err = procRSS(pid); err != nil {
					return nil, err
				}
				t0 := time.Now()
				holder, err = holdIdle(ctx, e.proxy.addrs[0], h.o.idleConns)
				if err != nil {
					return nil, err
				}
				h.logf("bench:   round %d: %d idle connections open in %.1fs", r+1, h.o.idleConns, time.Since(t0).Seconds())
			}
			select {
			case <-ctx.Done():
				if holder != nil {
					holder.close()
				}
				return nil, ctx.Err()
			case <-time.After(idleSettle):
			}
			err := h.idleRound(ctx, e, pid, r, with, phases, results, value, n, backlog)
			if err == nil && with {
				// The quiet phase runs first: its RSS less the RSS just
				// before the holder connected is what the connections hold.
				q := results["quiet"]
				q.proxy[len(q.proxy)-1].rssBefore = rssBefore
			}
			if holder != nil {
				holder.close()
			}
			if err != nil {
				return nil, fmt.Errorf("round %d %s idle connections: %w", r+1, label, err)
			}
			if with {
				// The next "without" round starts once the peer has let
				// the idle connections go.
				if err := waitFDs(ctx, pid, fds0+64); err != nil {
					return nil, err
				}
			}
		}
	}
	note := loadNote(load0, readLoad())
	var out []scenarioResult
	for _, ph := range phases {
		results[ph].note = note
		out = append(out, *results[ph])
	}
	return out, nil
}

// idleRound runs every phase once in one mode and files the measurements.
func (h *harness) idleRound(ctx context.Context, e *env, pid, r int, with bool, phases []string, results map[string]*scenarioResult,
	value []byte, n int, backlog string) error {
	label := "without"
	if with {
		label = "with"
	}
	for _, ph := range phases {
		settle()
		rctx, cancel := context.WithTimeout(ctx, h.o.roundTimeout)
		mt := &meter{e: e, mode: modeProxy}
		topic := fmt.Sprintf("bench-idle-%s-%d-%s", ph, r, label)
		var err error
		switch ph {
		case "quiet":
			err = mt.start(rctx)
			if err == nil {
				select {
				case <-rctx.Done():
					err = rctx.Err()
				case <-time.After(idleQuiet):
					err = mt.stop(rctx)
				}
			}
		case "latency":
			err = h.latencyRound(rctx, mt, topic, value)
		case "produce":
			err = h.produceRound(rctx, mt, topic, value, n, false)
		case "consume":
			err = h.consumeRound(rctx, mt, backlog, n)
		}
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", ph, err)
		}
		m := mt.m
		m.round = r
		if m.rss, err = procRSS(pid); err != nil {
			return err
		}
		if m.fds, err = procFDs(pid); err != nil {
			return err
		}
		res := results[ph]
		if with {
			m.mode = modeProxy
			res.proxy = append(res.proxy, m)
		} else {
			m.mode = modeDirect
			res.direct = append(res.direct, m)
		}
		h.logf("bench:   round %d %-8s %-7s %s  peer RSS %.0f MiB, %d fds, %d GCs", r+1, ph, label, describe(res.name, m), float64(m.rss)/mib, m.fds, m.proxyGCs)
	}
	return nil
}

// waitFDs waits until the peer holds at most max descriptors.
func waitFDs(ctx context.Context, pid, max int) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, err := procFDs(pid)
		if err != nil {
			return err
		}
		if n <= max {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the peer still holds %d descriptors 60s after the idle connections closed (want at most %d)", n, max)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
