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
