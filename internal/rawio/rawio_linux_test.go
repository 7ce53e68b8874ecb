//go:build linux

package rawio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		done <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-done
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func TestClippedWrapsOnlyTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := Clipped(a); got != a {
		t.Fatalf("Clipped(net.Pipe end) = %T, want the connection itself", got)
	}
	c, _ := tcpPair(t)
	if _, ok := Clipped(c).(*Conn); !ok {
		t.Fatalf("Clipped(*net.TCPConn) = %T, want *rawio.Conn", Clipped(c))
	}
}

// TestClippedReadsAtMostMax: with more than Max bytes queued, a read into a
// larger buffer returns at most Max (the raw path); New's connection hands
// such a read to the ordinary path, which may return more.
func TestClippedReadsAtMostMax(t *testing.T) {
	c, s := tcpPair(t)
	msg := bytes.Repeat([]byte("0123456789abcdef"), (3*Max)/16)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	r := Clipped(s)
	buf := make([]byte, 4*Max)
	var got []byte
	deadline := time.Now().Add(10 * time.Second)
	_ = r.SetReadDeadline(deadline)
	for len(got) < len(msg) {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatalf("read after %d bytes: %v", len(got), err)
		}
		if n > Max {
			t.Fatalf("clipped read returned %d bytes, more than Max %d", n, Max)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("bytes read differ from bytes written")
	}
}

func TestReadAndWriteBothPaths(t *testing.T) {
	c, s := tcpPair(t)
	w, ok := New(c)
	if !ok {
		t.Fatal("New failed on a TCP connection")
	}
	r, _ := New(s)
	for _, size := range []int{1, 100, Max - 1, Max, Max + 1, 3*Max + 7} {
		msg := make([]byte, size)
		for i := range msg {
			msg[i] = byte(i*7 + size)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := w.Write(msg)
			errc <- err
		}()
		got := make([]byte, size)
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatalf("size %d: read: %v", size, err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("size %d: write: %v", size, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("size %d: bytes differ", size)
		}
	}
}

func TestReadDeadlineAndEOF(t *testing.T) {
	c, s := tcpPair(t)
	r := Clipped(s)
	_ = r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, 16)
	if _, err := r.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	_ = r.SetReadDeadline(time.Time{})
	c.Close()
	if _, err := r.Read(buf); err != io.EOF {
		t.Fatalf("read after the far end closed: %v, want io.EOF", err)
	}
}

// TestConcurrentWriters: writers on several goroutines, as net.Conn allows;
// every length-prefixed message arrives whole (the race detector checks the
// per-direction state).
func TestConcurrentWriters(t *testing.T) {
	c, s := tcpPair(t)
	w := Clipped(c)
	r := Clipped(s)
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				body := bytes.Repeat([]byte{byte(g)}, 1+(g*131+i*17)%2000)
				msg := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
				if _, err := w.Write(append(msg, body...)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	counts := make([]int, writers)
	hdr := make([]byte, 4)
	for range writers * each {
		if _, err := io.ReadFull(r, hdr); err != nil {
			t.Fatal(err)
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr))
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatal(err)
		}
		g := body[0]
		if int(g) >= writers || !bytes.Equal(body, bytes.Repeat([]byte{g}, len(body))) {
			t.Fatalf("a message was interleaved with another: first byte %d, %d bytes", g, len(body))
		}
		counts[g]++
	}
	wg.Wait()
	for g, n := range counts {
		if n != each {
			t.Fatalf("writer %d: %d messages arrived, want %d", g, n, each)
		}
	}
}
