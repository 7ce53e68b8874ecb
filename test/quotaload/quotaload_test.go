package quotaload

import (
	"math"
	"testing"
	"time"
)

// TestStoredRates: midpoint rates use the samples' midpoints; proven
// rates divide by the longest interval the reads may have been apart, so
// a slow round trip lowers them and never raises them.
func TestStoredRates(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := &Stored{}
	// Quick round trips, then one that took a second (read at some
	// moment within it).
	s.sample(t0, t0.Add(10*time.Millisecond), 0)
	s.sample(t0.Add(time.Second), t0.Add(time.Second+10*time.Millisecond), 1000)
	s.sample(t0.Add(2*time.Second), t0.Add(3*time.Second), 3000)
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-6 }
	if got := s.Rate(t0, t0.Add(time.Second)); !near(got, 1000) {
		t.Errorf("midpoint rate over the quick samples %v, want 1000", got)
	}
	if got := s.rate(t0, t0.Add(time.Second), true); !near(got, 1000/1.01) {
		t.Errorf("proven rate over the quick samples %v, want %v", got, 1000/1.01)
	}
	// From the second sample (midpoint 1.005 s) to the slow one
	// (midpoint 2.5 s): 2000 bytes over 1.495 s; proven over 3 - 1 = 2 s.
	from, to := t0.Add(time.Second), t0.Add(2500*time.Millisecond)
	if got := s.Rate(from, to); !near(got, 2000/1.495) {
		t.Errorf("midpoint rate %v, want %v", got, 2000/1.495)
	}
	if got := s.rate(from, to, true); !near(got, 1000) {
		t.Errorf("proven rate %v, want 1000", got)
	}
	_, hi := s.Windows(t0, t0.Add(3*time.Second), 2*time.Second, 1000)
	_, proven := s.MinWindows(t0, t0.Add(3*time.Second), 2*time.Second, 1000)
	if proven > hi {
		t.Errorf("proven window %v above the midpoint one %v", proven, hi)
	}
}
