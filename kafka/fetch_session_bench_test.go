package kafka

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The fetch session benchmark: a consumer group owning 5,000 partitions
// (500 topics × 10), nearly all idle, with a trickle of records on a few,
// read directly from kfake and through the proxy with client sessions on
// and off. kfake and the proxy each run in a process of their own (this
// test binary, re-run as TestFetchSessionBenchHelper), so their CPU is
// read apart from each other's and the client's: /proc/<pid>/stat, over
// the measured window only. Request bytes are what the client wrote in
// Fetch requests (kgo's broker-write hook); backend request bytes are what
// kfake was sent as Fetch (by the client directly, or by the proxy),
// request bodies as kmsg encodes them, counted by a kfake control hook.
//
//	go test -run '^$' -bench BenchmarkFetchSessions -benchtime=1x ./kafka/
//
// SWITCHYARD_FETCHSESS_PROXY_CPUPROFILE=/tmp/p writes the proxy process's
// CPU profile to /tmp/p.<slots> (0: sessions, -1: sessionless).

const (
	benchSessTopics     = 500
	benchSessPartitions = 10
	benchSessWindow     = 15 * time.Second
	benchSessTrickle    = 50 * time.Millisecond // one record each
)

// TestFetchSessionBenchHelper is the benchmark's kfake or proxy process;
// it does nothing unless the benchmark started it.
func TestFetchSessionBenchHelper(t *testing.T) {
	switch os.Getenv("SWITCHYARD_FETCHSESS_HELPER") {
	case "kfake":
		topics := make([]string, benchSessTopics)
		for i := range topics {
			topics[i] = fmt.Sprintf("bench-%03d", i)
		}
		kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(benchSessPartitions, topics...))
		if err != nil {
			t.Fatal(err)
		}
		defer kc.Close()
		// What kfake is sent as Fetch, whoever sends it (the client
		// directly, or the proxy): request bodies as kmsg encodes them
		// (no frame or header), requests, partitions listed. Printed
		// for the benchmark to read.
		var bytes, n, parts atomic.Int64
		kc.ControlKey(1, func(kr kmsg.Request) (kmsg.Response, error, bool) {
			kc.KeepControl()
			req := kr.(*kmsg.FetchRequest)
			bytes.Add(int64(len(req.AppendTo(nil))))
			n.Add(1)
			for _, t := range req.Topics {
				parts.Add(int64(len(t.Partitions)))
			}
			return nil, nil, false
		})
		go func() {
			for {
				time.Sleep(100 * time.Millisecond)
				fmt.Printf("FETCH %d %d %d\n", bytes.Load(), n.Load(), parts.Load())
			}
		}()
		fmt.Printf("ADDR %s\n", kc.ListenAddrs()[0])
	case "proxy":
		slots, _ := strconv.Atoi(os.Getenv("SWITCHYARD_FETCHSESS_SLOTS"))
		backend, _ := strconv.Atoi(os.Getenv("SWITCHYARD_FETCHSESS_BACKEND"))
		kc := kfakeAt(os.Getenv("SWITCHYARD_FETCHSESS_BROKER"))
		p := startSessProxy(t, kc, 1, Config{Limits: Limits{FetchSessionSlots: slots, BackendFetchSessions: backend}}, time.Minute)
		if path := os.Getenv("SWITCHYARD_FETCHSESS_PROXY_CPUPROFILE"); path != "" {
			// The proxy's profile, for "where does its CPU go".
			f, err := os.Create(path + "." + strconv.Itoa(slots) + "." + strconv.Itoa(backend))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				t.Fatal(err)
			}
			defer pprof.StopCPUProfile()
		}
		fmt.Printf("ADDR %s\n", p.addrs[0])
	default:
		t.Skip("run by BenchmarkFetchSessions")
	}
	io.Copy(io.Discard, os.Stdin) // until the benchmark closes it
}

// kfakeAt wraps a broker address as startSessProxy wants it.
type kfakeAddr struct{ addr string }

func kfakeAt(addr string) *kfakeAddr { return &kfakeAddr{addr} }

func (k *kfakeAddr) ListenAddrs() []string { return []string{k.addr} }

// helperProc is a helper process and the address it printed.
type helperProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
	// What the kfake helper last printed it was sent as Fetch: bytes,
	// requests, partitions.
	fetchBytes, fetches, fetchParts atomic.Int64
}

func startHelper(b *testing.B, env ...string) *helperProc {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFetchSessionBenchHelper$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	h := &helperProc{cmd: cmd, stdin: stdin}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			h.addr = a
			go func() {
				for sc.Scan() {
					var by, n, parts int64
					if _, err := fmt.Sscanf(sc.Text(), "FETCH %d %d %d", &by, &n, &parts); err == nil {
						h.fetchBytes.Store(by)
						h.fetches.Store(n)
						h.fetchParts.Store(parts)
					}
				}
				io.Copy(io.Discard, out)
			}()
			return h
		}
	}
	b.Fatalf("helper %v printed no address", env)
	return nil
}

// cpu is the process's user+system CPU so far, from /proc (Linux).
func (h *helperProc) cpu(b *testing.B) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", h.cmd.Process.Pid))
	if err != nil {
		b.Skipf("process CPU needs /proc: %v", err)
	}
	// Fields after the command name (which is in parentheses).
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ 100
}

func BenchmarkFetchSessions(b *testing.B) {
	kf := startHelper(b, "SWITCHYARD_FETCHSESS_HELPER=kfake")
	topics := make([]string, benchSessTopics)
	for i := range topics {
		topics[i] = fmt.Sprintf("bench-%03d", i)
	}
	for _, mode := range []struct {
		name           string
		slots, backend string // slots "": direct to kfake
	}{
		{"direct", "", ""},
		{"proxy-sessions", "0", "0"},              // client and backend sessions
		{"proxy-sessions-backend-off", "0", "-1"}, // client sessions only (before backend sessions)
		{"proxy-sessionless", "-1", "-1"},         // no sessions at all
	} {
		b.Run(mode.name, func(b *testing.B) {
			seed := kf.addr
			var px *helperProc
			if mode.slots != "" {
				px = startHelper(b, "SWITCHYARD_FETCHSESS_HELPER=proxy", "SWITCHYARD_FETCHSESS_BROKER="+kf.addr,
					"SWITCHYARD_FETCHSESS_SLOTS="+mode.slots, "SWITCHYARD_FETCHSESS_BACKEND="+mode.backend)
				seed = px.addr
			}
			var fetchBytes, fetches atomic.Int64
			cons, err := kgo.NewClient(kgo.SeedBrokers(seed), kgo.ConsumeTopics(topics...),
				kgo.ConsumerGroup("bench-"+mode.name+strconv.Itoa(b.N)), kgo.WithHooks(fetchWrites{&fetchBytes, &fetches}))
			if err != nil {
				b.Fatal(err)
			}
			defer cons.Close()
			prod, err := kgo.NewClient(kgo.SeedBrokers(kf.addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err != nil {
				b.Fatal(err)
			}
			defer prod.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var produced, consumed atomic.Int64
			go func() {
				tick := time.NewTicker(benchSessTrickle)
				defer tick.Stop()
				for i := 0; ctx.Err() == nil; i++ {
					<-tick.C
					r := &kgo.Record{Topic: topics[(i%5)*97], Partition: int32(i % 3), Value: []byte("trickle")}
					if prod.ProduceSync(ctx, r).FirstErr() == nil {
						produced.Add(1)
					}
				}
			}()
			go func() {
				for ctx.Err() == nil {
					fs := cons.PollFetches(ctx)
					consumed.Add(int64(fs.NumRecords()))
				}
			}()
			// Warm up: the group assigned and records flowing.
			deadline := time.Now().Add(2 * time.Minute)
			for consumed.Load() < 20 {
				if time.Now().After(deadline) {
					b.Fatal("no records consumed within 2 minutes")
				}
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(2 * time.Second)
			for i := 0; i < b.N; i++ {
				bytes0, fetches0, cons0 := fetchBytes.Load(), fetches.Load(), consumed.Load()
				bb0, bn0, bp0 := kf.fetchBytes.Load(), kf.fetches.Load(), kf.fetchParts.Load()
				kcpu0, pcpu0 := kf.cpu(b), time.Duration(0)
				if px != nil {
					pcpu0 = px.cpu(b)
				}
				start := time.Now()
				time.Sleep(benchSessWindow)
				secs := time.Since(start).Seconds()
				b.ReportMetric(float64(fetchBytes.Load()-bytes0)/secs, "req-bytes/s")
				b.ReportMetric(float64(fetches.Load()-fetches0)/secs, "fetches/s")
				b.ReportMetric(float64(consumed.Load()-cons0)/secs, "records/s")
				// kfake prints its counts every 100 ms: a window of 15 s
				// reads them within 1%.
				bn := kf.fetches.Load() - bn0
				b.ReportMetric(float64(kf.fetchBytes.Load()-bb0)/secs, "backend-req-bytes/s")
				b.ReportMetric(float64(bn)/secs, "backend-fetches/s")
				if bn > 0 {
					b.ReportMetric(float64(kf.fetchParts.Load()-bp0)/float64(bn), "backend-parts/fetch")
				}
				b.ReportMetric(float64((kf.cpu(b)-kcpu0).Milliseconds())/secs, "backend-cpu-ms/s")
				if px != nil {
					b.ReportMetric(float64((px.cpu(b)-pcpu0).Milliseconds())/secs, "proxy-cpu-ms/s")
				}
			}
			b.StopTimer()
		})
	}
}

// fetchWrites counts the bytes and requests a client writes as Fetch.
type fetchWrites struct{ bytes, n *atomic.Int64 }

func (h fetchWrites) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, bytesWritten int, _, _ time.Duration, err error) {
	if key == 1 && err == nil {
		h.bytes.Add(int64(bytesWritten))
		h.n.Add(1)
	}
}

var _ kgo.HookBrokerWrite = fetchWrites{}
