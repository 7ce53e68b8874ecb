package kafka

// BenchmarkIdleConns measures what an idle client connection costs the
// proxy: N connections (10,000; 1,000 with -short; SWITCHYARD_IDLE_CONNS
// overrides) each do a Metadata and a Fetch through a real proxy Server,
// then sit idle. The fake broker and the clients run in a child process
// (this test binary, re-run as TestIdleConnsHelper), so the heap, stacks and
// RSS measured here are the proxy's alone: its client connections and the
// backend connections it opened for them.
//
// Run: go test -run '^$' -bench IdleConns -benchtime 1x ./kafka/

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

const idleHelperEnv = "SWITCHYARD_IDLE_CONNS_HELPER"

func BenchmarkIdleConns(b *testing.B) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	if s := os.Getenv("SWITCHYARD_IDLE_CONNS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("SWITCHYARD_IDLE_CONNS=%q: want a positive count", s)
		}
		n = v
	}
	// Each idle connection holds two descriptors here: the client's and
	// its backend connection.
	if lim := raiseFDLimit(); uint64(2*n+256) > lim {
		b.Logf("descriptor limit %d: measuring %d connections instead of %d", lim, (lim-256)/2, n)
		n = int(lim-256) / 2
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleConnsHelper$", "-test.v")
	cmd.Env = append(os.Environ(), idleHelperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// Registered before the proxy's cleanup, so it runs after it: the
	// helper's broker waits for the proxy's connections to end.
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	next := func(prefix string) string {
		for lines.Scan() {
			if v, ok := strings.CutPrefix(lines.Text(), prefix); ok {
				return v
			}
		}
		b.Fatalf("helper ended before %q: %v", prefix, lines.Err())
		return ""
	}
	broker := next("broker ")
	proxy := startBenchProxy(b, broker)
	heap0, stack0, rss0, g0 := idleMem()
	gc0 := gcCycleCPU()
	fmt.Fprintf(stdin, "%s %d\n", proxy, n)
	next("ready")
	// Let per-connection goroutines that outlive a burst (the writer)
	// go idle, and the connections park (park.go), as they would on a
	// real idle connection.
	time.Sleep(DefaultParkIdleAfter + 3*time.Second)
	heap1, stack1, rss1, g1 := idleMem()
	gc1 := gcCycleCPU()
	if path := os.Getenv("SWITCHYARD_IDLE_HEAP_PROFILE"); path != "" {
		// What the idle connections hold: go tool pprof -sample_index=inuse_space.
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	per := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(n) }
	b.ReportMetric(per(heap0+stack0, heap1+stack1), "heap+stack-B/conn")
	b.ReportMetric(per(heap0, heap1), "heap-B/conn")
	b.ReportMetric(per(stack0, stack1), "stack-B/conn")
	b.ReportMetric(per(rss0, rss1), "rss-B/conn")
	b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/conn")
	b.ReportMetric(float64(n), "conns")
	// What every GC cycle pays for them (marking their goroutines' stacks
	// and what they hold), whatever the active clients allocate.
	b.ReportMetric(gc0.Seconds()*1e6, "gc-cpu-us/cycle-before")
	b.ReportMetric(gc1.Seconds()*1e6, "gc-cpu-us/cycle-after")
	b.ReportMetric(float64(gc1-gc0)/float64(n), "gc-cpu-ns/conn/cycle")
	// Past DefaultUpstreamIdleClose the parked connections' backend
	// connections close too (park.go): their reader goroutines and
	// buffers go. SWITCHYARD_IDLE_UPSTREAM_CLOSE=0 skips this minute.
	if os.Getenv("SWITCHYARD_IDLE_UPSTREAM_CLOSE") != "0" {
		time.Sleep(DefaultUpstreamIdleClose - DefaultParkIdleAfter + 2*parkSweep)
		heap2, stack2, rss2, g2 := idleMem()
		gc2 := gcCycleCPU()
		b.ReportMetric(per(heap0+stack0, heap2+stack2), "heap+stack-B/conn-upclosed")
		b.ReportMetric(per(rss0, rss2), "rss-B/conn-upclosed")
		b.ReportMetric(float64(g2-g0)/float64(n), "goroutines/conn-upclosed")
		b.ReportMetric(gc2.Seconds()*1e6, "gc-cpu-us/cycle-upclosed")
	}
	for i := 0; i < b.N; i++ {
		// One measurement per run: -benchtime 1x.
	}
}

// idleMem returns heap and stack in use, RSS and goroutines after a GC
// that also empties the buffer pools.
func idleMem() (heap, stack, rss uint64, goroutines int) {
	runtime.GC()
	runtime.GC() // sync.Pool keeps a victim cache for one cycle
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.StackInuse, rssBytes(), runtime.NumGoroutine()
}

// gcCycleCPU is the CPU time one full GC cycle takes now (the runtime's
// own account, /cpu/classes/gc/total), the median of 15 forced cycles.
func gcCycleCPU() time.Duration {
	sample := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	read := func() float64 {
		metrics.Read(sample)
		return sample[0].Value.Float64()
	}
	var cycles []time.Duration
	for range 15 {
		before := read()
		runtime.GC()
		cycles = append(cycles, time.Duration((read()-before)*float64(time.Second)))
	}
	slices.Sort(cycles)
	return cycles[len(cycles)/2]
}

// rssBytes is the process's resident set (Linux; 0 elsewhere).
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// raiseFDLimit raises the soft descriptor limit to the hard one and
// returns it.
func raiseFDLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	want := lim
	want.Cur, want.Max = max(lim.Max, 1<<17), max(lim.Max, 1<<17)
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
		return want.Cur
	}
	lim.Cur = lim.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Cur
}

// TestIdleConnsHelper is BenchmarkIdleConns's child process: it runs the
// fake broker, prints its address, reads the proxy's address and a count,
// opens that many client connections that each do a Metadata and a Fetch,
// prints "ready", and holds them until its stdin closes.
func TestIdleConnsHelper(t *testing.T) {
	if os.Getenv(idleHelperEnv) == "" {
		t.Skip("run by BenchmarkIdleConns")
	}
	raiseFDLimit()
	fb := startBenchBroker(t)
	fmt.Printf("broker %s\n", fb.addr())
	in := bufio.NewReader(os.Stdin)
	var proxy string
	var n int
	if _, err := fmt.Fscanf(in, "%s %d\n", &proxy, &n); err != nil {
		t.Fatal(err)
	}
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 12
	topic := benchTopic
	meta.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
	id := "idle"
	metaFrame := appendRequest(nil, meta, 1, &id)
	fetchFrame := benchFetchFrame(fb.topicID, 100)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for i := range n {
		nc, err := net.Dial("tcp", proxy)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, nc)
		for _, frame := range [][]byte{metaFrame, fetchFrame} {
			if _, err := nc.Write(frame); err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			buf, err := readFrame(nc, 64<<20)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			putBuffer(buf)
		}
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
}
