package kafka

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// pipeConn is a client connection over net.Pipe: the test reads what the
// proxy writes to the client from the returned end.
func pipeConn(t *testing.T) (*clientConn, net.Conn) {
	t.Helper()
	s := &Server{
		cfg:     Config{MaxInFlight: 1024},
		log:     slog.New(slog.DiscardHandler),
		metrics: NewMetrics(prometheus.NewRegistry(), 0),
	}
	proxySide, clientSide := net.Pipe()
	t.Cleanup(func() { proxySide.Close(); clientSide.Close() })
	return newClientConn(s, proxySide), clientSide
}

// respBuf is a pooled response frame with correlation id corr.
func respBuf(corr int32, bodyLen int) *buffer {
	buf := getBuffer(8 + bodyLen)
	binary.BigEndian.PutUint32(buf.b, uint32(4+bodyLen))
	binary.BigEndian.PutUint32(buf.b[4:], uint32(corr))
	return buf
}

// readCorrs reads n response frames and returns their correlation ids.
func readCorrs(t *testing.T, r io.Reader, n int) []int32 {
	t.Helper()
	br := bufio.NewReader(r)
	var out []int32
	for range n {
		buf, err := readFrame(br, 1<<20)
		if err != nil {
			t.Fatalf("after %d responses: %v", len(out), err)
		}
		out = append(out, be32(buf.b[4:]))
		putBuffer(buf)
	}
	return out
}

// TestWriteReadyOrder finishes slots in random order from many goroutines,
// each taking the writer role when it can, as upstream readers do: the
// client still gets every response once, in request order.
func TestWriteReadyOrder(t *testing.T) {
	c, client := pipeConn(t)
	const n = 500
	slots := make([]*pending, n)
	for i := range slots {
		p, err := c.newPending(&request{requestHeader: requestHeader{key: 0, corr: int32(i)}}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		slots[i] = p
	}
	order := rand.New(rand.NewPCG(1, 2)).Perm(n)
	var wg sync.WaitGroup
	const workers = 8
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := w; j < n; j += workers {
				i := order[j]
				c.finish(slots[i], respBuf(int32(i), i%40), nil)
				c.writeReady()
			}
		}()
	}
	got := readCorrs(t, client, n)
	wg.Wait()
	for i, corr := range got {
		if corr != int32(i) {
			t.Fatalf("response %d has correlation id %d", i, corr)
		}
	}
}

// TestWriteReadyStopsAtFailedSlot: the responses before a failed slot are
// written, then the connection closes with the slot's error.
func TestWriteReadyStopsAtFailedSlot(t *testing.T) {
	c, client := pipeConn(t)
	var slots []*pending
	for i := range 3 {
		p, err := c.newPending(&request{requestHeader: requestHeader{corr: int32(i)}}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		slots = append(slots, p)
	}
	boom := errors.New("backend broker 7 went away")
	c.finish(slots[2], respBuf(2, 0), nil)
	c.finish(slots[1], nil, boom)
	c.finish(slots[0], respBuf(0, 3), nil)
	done := make(chan struct{})
	go func() { defer close(done); c.writeReady() }()
	if got := readCorrs(t, client, 1); got[0] != 0 {
		t.Fatalf("first response has correlation id %d", got[0])
	}
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Fatal("read more after the failed slot; want the connection closed")
	}
	<-done
	<-c.closing
	if !errors.Is(c.reason, boom) {
		t.Fatalf("closed with %v, want %v", c.reason, boom)
	}
}

// TestLocalAnswerWrittenByWriter: a slot the reader goroutine finishes
// (respond) is written by the writer goroutine.
func TestLocalAnswerWrittenByWriter(t *testing.T) {
	c, client := pipeConn(t)
	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.writeLoop() }()
	p, err := c.newPending(&request{requestHeader: requestHeader{corr: 9}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c.finish(p, respBuf(9, 1), nil)
	c.kickWriter()
	if got := readCorrs(t, client, 1); got[0] != 9 {
		t.Fatalf("got correlation id %d, want 9", got[0])
	}
	c.closeWith(ErrClosed)
	c.wg.Wait()
}

// upstreamPair is an upstream whose backend end the test drives.
func upstreamPair(t *testing.T, c *clientConn) (*upstream, net.Conn) {
	t.Helper()
	proxySide, broker := net.Pipe()
	t.Cleanup(func() { proxySide.Close(); broker.Close() })
	be, err := NewBackend(BackendConfig{Name: "pipe", Bootstrap: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{c: c, be: be, broker: 7, nc: proxySide, rw: proxySide, bw: bufio.NewWriter(proxySide), inflight: make(chan upCall, 16)}
	c.wg.Add(1)
	go func() { defer c.wg.Done(); u.readLoop() }()
	return u, broker
}

// TestUpstreamAnswersInOrder: the upstream reader hands each response to
// the call queued first and writes it to the client itself.
func TestUpstreamAnswersInOrder(t *testing.T) {
	c, client := pipeConn(t)
	u, broker := upstreamPair(t, c)
	for i := range 3 {
		r := &request{requestHeader: requestHeader{corr: int32(100 + i)}}
		p, err := c.newPending(r, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		u.inflight <- upCall{corr: r.corr, cb: func(resp *buffer, err error) { c.finish(p, resp, err) }}
	}
	go func() {
		for i := range 3 {
			broker.Write(respBuf(int32(100+i), 5).b)
		}
	}()
	got := readCorrs(t, client, 3)
	for i, corr := range got {
		if corr != int32(100+i) {
			t.Fatalf("response %d has correlation id %d", i, corr)
		}
	}
	c.closeWith(ErrClosed)
	u.nc.Close() // as serve does once the reader stops
	c.wg.Wait()
}

// TestUpstreamMismatchClosesClient: a response with the wrong correlation
// id, or one no request awaits, closes the client connection.
func TestUpstreamMismatchClosesClient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pending bool
	}{{"wrong correlation id", true}, {"no request outstanding", false}} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := pipeConn(t)
			u, broker := upstreamPair(t, c)
			if tc.pending {
				u.inflight <- upCall{corr: 1, cb: func(*buffer, error) {}}
			}
			go broker.Write(respBuf(2, 0).b)
			<-c.closing
			if !errors.Is(c.reason, ErrBackendMismatch) {
				t.Fatalf("closed with %v, want ErrBackendMismatch", c.reason)
			}
			c.wg.Wait()
		})
	}
}

// TestUpstreamCloseKeepsClient: a backend closing an idle connection
// leaves the client's open (other brokers' answers may be on their way);
// the broken upstream is replaced on next use.
func TestUpstreamCloseKeepsClient(t *testing.T) {
	c, _ := pipeConn(t)
	u, broker := upstreamPair(t, c)
	broker.Close()
	waitUntil(t, 10*time.Second, "the upstream to break", u.broken.Load)
	select {
	case <-c.closing:
		t.Fatalf("client closed with %v", c.reason)
	default:
	}
	c.closeWith(ErrClosed)
	c.wg.Wait()
}
