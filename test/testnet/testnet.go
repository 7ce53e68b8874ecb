// Package testnet gives tests loopback ports for peers that must come back
// on the same addresses after a restart (so the port cannot be left to the
// kernel at bind time).
package testnet

import (
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
)

// Port returns a loopback port that is free for TCP and UDP now and that no
// other test process on this machine was handed in the last reservation
// window. It is drawn from below Linux's ephemeral range (32768 and up),
// so the outgoing connections of other tests running at the same time
// cannot take it between this check and the peer's bind, as they can a
// port the kernel handed out and took back. Checking that it is free is
// not enough when two suites run at once: both may check the same port
// before either binds it, so every port handed out is recorded in a
// machine-wide reservation file (reserve) and not handed out again while
// the reservation holds.
func Port(tb testing.TB) int {
	tb.Helper()
	for range 400 {
		p := 20000 + rand.IntN(12000)
		if !free(p) || !reserve(p) {
			continue
		}
		return p
	}
	tb.Fatal("no free loopback port below the ephemeral range")
	return 0
}

// Consecutive returns the first of n consecutive loopback ports, each free
// and reserved as Port's are (a dev broker cluster takes its first port and
// the next ones).
func Consecutive(tb testing.TB, n int) int {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("testnet.Consecutive: n %d", n)
	}
	for range 400 {
		p := 20000 + rand.IntN(12000-n)
		ok := true
		for i := range n {
			if !free(p + i) {
				ok = false
				break
			}
		}
		// Reserve all n; a port another reservation holds spoils the
		// run (the ones reserved meanwhile just expire unused).
		for i := 0; ok && i < n; i++ {
			ok = reserve(p + i)
		}
		if ok {
			return p
		}
	}
	tb.Fatalf("no %d consecutive free loopback ports below the ephemeral range", n)
	return 0
}

// free reports whether port p is free on loopback for TCP and UDP now.
func free(p int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

// Addr is 127.0.0.1:Port(tb).
func Addr(tb testing.TB) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(Port(tb)))
}
