package testnet

import (
	"testing"
)

// TestPortsNotHandedOutTwice: ports handed out stay reserved, so a second
// caller (here, the same process; in CI, another suite) never gets one of
// them while the reservation holds.
func TestPortsNotHandedOutTwice(t *testing.T) {
	seen := map[int]bool{}
	for range 300 {
		p := Port(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	for p := range seen {
		if reserve(p) {
			t.Fatalf("port %d reserved again while its reservation holds", p)
		}
	}
}

// TestConsecutive: the n ports are free and reserved, and Port never hands
// one of them out afterwards.
func TestConsecutive(t *testing.T) {
	first := Consecutive(t, 3)
	for i := range 3 {
		if reserve(first + i) {
			t.Fatalf("port %d of the run from %d is not reserved", first+i, first)
		}
	}
	for range 300 {
		if p := Port(t); p >= first && p < first+3 {
			t.Fatalf("Port handed out %d, reserved by Consecutive", p)
		}
	}
}
