package kafka

import (
	"bufio"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// startLeanBroker is the bench broker answering through small buffers of
// its own, so that what a test measures on the heap is the proxy's share.
func startLeanBroker(t *testing.T) *benchBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := splitHostPort(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	f := &benchBroker{ln: ln, host: host, port: port, batches: map[int32][]byte{}}
	var mu sync.Mutex
	var conns []net.Conn
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer nc.Close()
				br := bufio.NewReaderSize(nc, 16)
				for {
					buf, err := readFrame(br, 1<<24)
					if err != nil {
						return
					}
					h, err := parseRequestHeader(buf.b[4:])
					if err != nil {
						return
					}
					resp, err := f.answer(h, buf.b[4+h.bodyOff:])
					putBuffer(buf)
					if err != nil {
						return
					}
					if resp != nil {
						if _, err := nc.Write(appendResponse(nil, resp, h.corr)); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC() // and the pools' victim caches
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestUpstreamIdleMemory: a backend connection that has answered and is
// idle holds no read or write buffer: opening one per client connection
// costs a few KiB, not 64 KiB + 64 KiB + a MaxInFlight-slot FIFO.
func TestUpstreamIdleMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("idle read buffers are released on Linux only")
	}
	f := startLeanBroker(t)
	proxy := startBenchProxy(t, f.addr())
	const n = 32
	clients := make([]*rawClient, n)
	for i := range clients {
		clients[i] = dialRaw(t, proxy)
		av := kmsg.NewPtrApiVersionsRequest()
		av.Version = 3
		if _, err := clients[i].do(av, 15*time.Second); err != nil {
			t.Fatalf("ApiVersions: %v", err)
		}
	}
	before := heapAfterGC()
	frame := benchProduceFrame(100)
	for _, c := range clients {
		// The bench frame's correlation id is 0; the raw client expects
		// its own, so it is patched in.
		c.corr++
		out := append([]byte(nil), frame...)
		out[8], out[9], out[10], out[11] = byte(c.corr>>24), byte(c.corr>>16), byte(c.corr>>8), byte(c.corr)
		c.nc.SetDeadline(time.Now().Add(15 * time.Second))
		if _, err := c.nc.Write(out); err != nil {
			t.Fatal(err)
		}
		buf, err := readFrame(c.br, 1<<24)
		if err != nil {
			t.Fatalf("produce: %v", err)
		}
		if be32(buf.b[4:]) != c.corr {
			t.Fatalf("produce answered correlation id %d", be32(buf.b[4:]))
		}
		putBuffer(buf)
	}
	after := heapAfterGC()
	per := (int64(after) - int64(before)) / n
	t.Logf("heap per idle backend connection (proxy and lean broker side): %d bytes", per)
	if per > 16<<10 {
		t.Fatalf("each idle backend connection holds %d bytes of heap, want at most 16 KiB", per)
	}
}
