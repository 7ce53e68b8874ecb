package chaos

// The soak (`make soak`, not in CI): the verifier's clients run through
// three peers for SWITCHYARD_SOAK (a duration, 30m by default in the
// Makefile) while each peer's resident set and Go heap in use are sampled
// from its /metrics every 30 s. It fails when a peer's memory grows after
// the warm-up beyond the bound below, and, as the fault cases, when an
// acknowledged record is lost. The table it prints is docs/benchmarks.md's
// "Soak".

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	soakSample = 30 * time.Second
	// soakWarmup is left out of the bound: connection pools, buffer pools
	// and the producer id tables fill during it.
	soakWarmup = 2 * time.Minute
	// The bound, per peer and per figure, over the samples after the
	// warm-up split in thirds: the last third's median may be at most
	// soakGrowth times the first third's plus soakSlack. The peers hold
	// about 30 MiB resident and 4-7 MiB of Go heap in use under this
	// traffic, varying by under 3 MiB between samples (docs/benchmarks.md
	// "Soak"): past ×1.2 + 8 MiB a peer's resident set has grown from 30
	// to over 44 MiB, or its heap in use more than doubled. At 200
	// records/s the thirds' medians of a 30-minute run are about 19
	// minutes apart: a leak of about 40 bytes per record produced and
	// consumed fails it (about 120 in a 10-minute run).
	soakGrowth = 1.2
	soakSlack  = 8 << 20
)

// memSample is one peer's figures at one time.
type memSample struct {
	rss, heap float64 // bytes
}

// scrapeMem reads process_resident_memory_bytes and
// go_memstats_heap_inuse_bytes from a peer's /metrics.
func scrapeMem(hc *http.Client, admin string) (memSample, error) {
	var m memSample
	resp, err := hc.Get("http://" + admin + "/metrics")
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("/metrics: %s", resp.Status)
	}
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "process_resident_memory_bytes":
			m.rss, err = strconv.ParseFloat(strings.TrimSpace(val), 64)
			found++
		case "go_memstats_heap_inuse_bytes":
			m.heap, err = strconv.ParseFloat(strings.TrimSpace(val), 64)
			found++
		}
		if err != nil {
			return m, fmt.Errorf("/metrics %s: %w", name, err)
		}
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if found != 2 {
		return m, fmt.Errorf("/metrics of %s lacks process_resident_memory_bytes or go_memstats_heap_inuse_bytes", admin)
	}
	return m, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mib(b float64) string { return fmt.Sprintf("%.1f", b/(1<<20)) }

// soakBound checks one peer's series (samples after the warm-up): it
// returns the thirds' medians and whether the last is within the bound.
func soakBound(xs []float64) (first, last float64, ok bool) {
	n := len(xs) / 3
	first, last = median(xs[:n]), median(xs[len(xs)-n:])
	return first, last, last <= first*soakGrowth+soakSlack
}

func TestSoak(t *testing.T) {
	d := os.Getenv("SWITCHYARD_SOAK")
	if d == "" {
		t.Skip("the soak runs with SWITCHYARD_SOAK=DURATION (make soak)")
	}
	dur, err := time.ParseDuration(d)
	if err != nil || dur < soakWarmup+3*3*soakSample {
		t.Fatalf("SWITCHYARD_SOAK=%q: want a duration of at least %v (the warm-up and three samples per third)", d, soakWarmup+9*soakSample)
	}
	t.Setenv("SWITCHYARD_CHAOS", "1")
	needChaos(t)
	c := startProcCluster(t, 3, "")
	c.createTopic(faultTopic, faultPartitions)
	tr := startTraffic(t, c.bootstrap(), faultTopic)
	start := time.Now()
	hc := &http.Client{Timeout: 5 * time.Second}
	var at []time.Duration
	series := make([][]memSample, len(c.peers))
	var table []string
	head := "| min |"
	sep := "|---|"
	for _, p := range c.peers {
		head += fmt.Sprintf(" %s RSS | %s heap |", p.Name, p.Name)
		sep += "---|---|"
	}
	table = append(table, head+" acknowledged |", sep+"---|")
	for next := start.Add(soakSample); ; next = next.Add(soakSample) {
		time.Sleep(time.Until(next))
		row := fmt.Sprintf("| %.1f |", time.Since(start).Minutes())
		for i, p := range c.peers {
			m, err := scrapeMem(hc, p.Admin)
			if err != nil {
				t.Fatalf("%s: %v", p.Name, err)
			}
			series[i] = append(series[i], m)
			row += fmt.Sprintf(" %s | %s |", mib(m.rss), mib(m.heap))
		}
		acks, _ := tr.log.Counts()
		row += fmt.Sprintf(" %d |", acks)
		at = append(at, time.Since(start))
		table = append(table, row)
		t.Log(row)
		if time.Since(start) >= dur {
			break
		}
	}
	tr.stop()
	tr.check(checkOpts{label: "Soak", peers: 3, storedTwiceOK: "", faultAt: start, steps: 0})

	fmt.Printf("soak %v, MiB, sampled every %v:\n%s\n", dur, soakSample, strings.Join(table, "\n"))
	warm := 0
	for warm < len(at) && at[warm] < soakWarmup {
		warm++
	}
	for i, p := range c.peers {
		s := series[i][warm:]
		rss := make([]float64, len(s))
		heap := make([]float64, len(s))
		for k, m := range s {
			rss[k], heap[k] = m.rss, m.heap
		}
		for _, f := range []struct {
			what string
			xs   []float64
		}{{"RSS", rss}, {"Go heap in use", heap}} {
			first, last, ok := soakBound(f.xs)
			msg := fmt.Sprintf("%s %s after the warm-up: first third's median %s MiB, last third's %s MiB (bound: ×%.1f + %s MiB)",
				p.Name, f.what, mib(first), mib(last), soakGrowth, mib(soakSlack))
			fmt.Println(msg)
			if !ok {
				t.Errorf("memory grows: %s", msg)
			}
		}
	}
}
