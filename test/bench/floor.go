package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// The floor scenario calibrates the machine: the round trip of a small
// message between the bench process and an echo server in it, directly and
// through a relay child process that only copies bytes (a read/write loop
// each way, no protocol work). What the relay adds is what two extra loopback hops
// and process wake-ups cost here, the least any proxy process can add; the
// latency scenario's added p50 is best read against it.

// relayEnv, when set to "LISTEN>TARGET", makes this binary a relay.
const relayEnv = "SWITCHYARD_BENCH_RELAY"

const (
	floorMessage = 64                     // bytes per ping
	floorPeriod  = 250 * time.Microsecond // one ping per period, 4k/s
	floorRound   = time.Second
)

// maybeRelay runs the relay and exits when this process was started as one.
func maybeRelay() {
	spec := os.Getenv(relayEnv)
	if spec == "" {
		return
	}
	listen, target, ok := strings.Cut(spec, ">")
	if !ok {
		fmt.Fprintf(os.Stderr, "bench relay: %s=%q: want LISTEN>TARGET\n", relayEnv, spec)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench relay:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(0)
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer u.Close()
			go pump(u, c)
			pump(c, u)
		}()
	}
}

// startRelay starts this binary as a relay in front of target, on a free
// port, and waits until it listens.
func startRelay(target string) (*proxyProc, string, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), relayEnv+"="+addr+">"+target)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start relay: %w", err)
	}
	p := &proxyProc{cmd: cmd, done: make(chan struct{})}
	ready := make([]byte, len("ready\n"))
	if _, err := io.ReadFull(out, ready); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, "", fmt.Errorf("relay did not start: %w", err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, addr, nil
}

// stopRelay kills a relay (it keeps no state) and waits for it.
func stopRelay(p *proxyProc) {
	p.cmd.Process.Kill()
	<-p.done
}

// pump copies src to dst with plain reads and writes: the simplest relay
// (io.Copy between TCP connections would splice instead). The buffer is as
// large as the peers' largest reads (a produce request's body is read
// whole), so the peers3 scenario's relays pay no more system calls per
// byte than the peers do.
func pump(dst, src net.Conn) {
	buf := make([]byte, 1<<20)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// floorScenario measures the round trip direct and through the relay,
// interleaved round by round like the others.
func (h *harness) floorScenario(ctx context.Context) (scenarioResult, error) {
	res := scenarioResult{name: "floor"}
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	relay, relayAddr, err := startRelay(echo.Addr().String())
	if err != nil {
		return res, err
	}
	defer stopRelay(relay)
	n := int(floorRound / floorPeriod)
	h.logf("bench: floor: %d rounds of %d pings, direct then through a plain relay process", h.o.rounds, n)
	for r := range h.o.rounds {
		for _, md := range []mode{modeDirect, modeProxy} {
			addr := echo.Addr().String()
			if md == modeProxy {
				addr = relayAddr
			}
			m, err := pingRound(ctx, addr, n)
			if err != nil {
				return res, fmt.Errorf("round %d %s: %w", r+1, md, err)
			}
			m.mode, m.round = md, r
			h.logf("bench:   round %d %-6s p50 %.3f ms  p99 %.3f ms", r+1, md, m.value, m.p99)
			if md == modeProxy {
				res.proxy = append(res.proxy, m)
			} else {
				res.direct = append(res.direct, m)
			}
		}
	}
	return res, nil
}

// pingRound sends n pings on one connection, one at a time.
func pingRound(ctx context.Context, addr string, n int) (measurement, error) {
	var m measurement
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return m, err
	}
	defer c.Close()
	buf := make([]byte, floorMessage)
	rtts := make([]time.Duration, 0, n)
	t0 := time.Now()
	for i := range n {
		if err := ctx.Err(); err != nil {
			return m, err
		}
		t := time.Now()
		if _, err := c.Write(buf); err != nil {
			return m, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return m, err
		}
		rtts = append(rtts, time.Since(t))
		// Paced like the latency scenario: against the schedule.
		if d := time.Until(t0.Add(time.Duration(i+1) * floorPeriod)); d > 0 {
			time.Sleep(d)
		}
	}
	m.wall = time.Since(t0)
	slices.Sort(rtts)
	m.value = ms(percentile(rtts, 0.50))
	m.p99 = ms(percentile(rtts, 0.99))
	return m, nil
}
