package kafka

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gatherMetric reads metric name from g as a scrape does: the sum over
// every series whose labels include labels (name, value pairs; a label
// not named may have any value) of a counter's or gauge's value or a
// histogram's sample count, 0 when no series matches. Gathering creates
// no series, so the reading cannot be what makes a series appear.
func gatherMetric(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	if len(labels)%2 != 0 {
		t.Fatalf("gatherMetric %s: labels %q are not name, value pairs", name, labels)
	}
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather %s: %v", name, err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			default:
				t.Fatalf("gatherMetric %s: a %s, not a counter, gauge or histogram", name, mf.GetType())
			}
		}
	}
	return sum
}

// hasLabels reports whether m carries every (name, value) pair of labels.
func hasLabels(m *dto.Metric, labels []string) bool {
	for k := 0; k+1 < len(labels); k += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == labels[k] && l.GetValue() == labels[k+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
