//go:build linux

package kafka

import (
	"bytes"
	"encoding/binary"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestReadLowWaterLargeFrame: a large frame that arrives in pieces, with
// pauses, is read whole although the socket's low-water mark was raised
// for it (never above what the frame still lacks), and the mark is back at
// one byte afterwards, so a small frame that follows, with nothing after
// it, is read at once.
func TestReadLowWaterLargeFrame(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	body := bytes.Repeat([]byte("switchyard"), 300_000) // 3 MB: above lowWaterMax
	big := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	big = append(big, body...)
	small := []byte{0, 0, 0, 3, 'e', 'n', 'd'}
	go func() {
		// Pieces that end short of the low-water marks the reader sets,
		// with pauses longer than any wake-up would take.
		for _, cut := range [][2]int{{0, 4}, {4, 200_000}, {200_000, 1_500_000}, {1_500_000, len(big) - 10}, {len(big) - 10, len(big)}} {
			client.Write(big[cut[0]:cut[1]])
			time.Sleep(50 * time.Millisecond)
		}
		client.Write(small)
	}()

	raw := rawIO(server).(*rawConn)
	cr := newConnReader(raw)
	server.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf, err := readFrame(&cr, 16<<20)
	if err != nil {
		t.Fatalf("large frame: %v", err)
	}
	if !bytes.Equal(buf.b, big) {
		t.Fatalf("large frame: %d bytes read, not what was sent (%d)", len(buf.b), len(big))
	}
	if raw.lowatOff {
		t.Fatal("SO_RCVLOWAT could not be set")
	}
	// An accepted socket starts at 0, which the kernel treats as 1; 1 is
	// what setReadLowWater puts back.
	if got := rcvLowat(t, server); got != 1 || raw.lowat != 1 {
		t.Fatalf("after the frame SO_RCVLOWAT is %d (recorded %d), want 1 (0 if it was never raised)", got, raw.lowat)
	}
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf, err = readFrame(&cr, 16<<20)
	if err != nil || !bytes.Equal(buf.b, small) {
		t.Fatalf("small frame after it: %q, %v", buf.b, err)
	}
}

func rcvLowat(t *testing.T, nc net.Conn) int {
	rc, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}
