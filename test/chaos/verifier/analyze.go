package verifier

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Report is what Analyze found. The definitions are the package doc's.
type Report struct {
	Producers    []ProducerReport
	Acknowledged int // distinct records acknowledged
	Failed       int // records a producer was told failed
	Lost         int // acknowledged, never delivered (with audits: and stored on no audited cluster)
	LostSample   []string
	// Audited says the log holds audits of the backend clusters (Audit):
	// stored twice and out of order are then the clusters' own positions.
	Audited bool
	// Unread counts, with audits, acknowledged records stored on some
	// cluster that the group was never given (a route change leaves the
	// old cluster's unread records behind).
	Unread      int
	Delivered   int // distinct records delivered
	Duplicated  int // records delivered more than once: StoredTwice + Redelivered (a record can be both)
	StoredTwice int // records stored at two or more offsets
	// StoredTwiceSample names some of them with their positions.
	StoredTwiceSample []string
	Redelivered       int // records whose same offset was delivered more than once
	OutOfOrder        int
	// AckMoved counts acknowledged records whose acknowledged offset holds
	// no copy of them (the record was delivered from another offset).
	AckMoved int
	Foreign  int // consumed records that are not the verifier's
	// ConsumeStall is the longest interval, on any partition, with no
	// delivery to the group that ends after the fault and begins before
	// traffic stopped.
	ConsumeStall time.Duration
	// ProduceStall is the longest of the producers' stalls.
	ProduceStall time.Duration
}

// ProducerReport is one producer's share.
type ProducerReport struct {
	Name         string
	Acknowledged int
	Failed       int
	Lost         int
	// Stall is the longest interval, on any partition, with no
	// acknowledgement that ends after the fault and begins before traffic
	// stopped.
	Stall time.Duration
}

type position struct {
	cluster   string // "" for what the group was given (the proxy's view)
	partition int32
	offset    int64
}

// Analyze computes the report of the log for a fault that began at
// faultAt, with traffic stopped at stoppedAt (the producers' Stop).
func Analyze(l *Log, faultAt, stoppedAt time.Time) Report {
	l.mu.Lock()
	defer l.mu.Unlock()
	var r Report

	// Acknowledgements per producer.
	type pstate struct {
		acked map[int64]Ack
		times map[int32][]time.Time // per partition
		fails int
	}
	prods := map[string]*pstate{}
	get := func(name string) *pstate {
		p := prods[name]
		if p == nil {
			p = &pstate{acked: map[int64]Ack{}, times: map[int32][]time.Time{}}
			prods[name] = p
		}
		return p
	}
	for _, a := range l.acks {
		p := get(a.Producer)
		if _, ok := p.acked[a.Seq]; !ok {
			p.acked[a.Seq] = a
		}
		p.times[a.Partition] = append(p.times[a.Partition], a.At)
	}
	for name, n := range l.failCount {
		get(name).fails = n
	}

	// Deliveries: positions and counts per record.
	positions := map[recordKey]map[position]int{}
	atPos := map[position]recordKey{}
	dtimes := map[int32][]time.Time{}
	for _, d := range l.deliveries {
		k := recordKey{d.Producer, d.Seq}
		ps := positions[k]
		if ps == nil {
			ps = map[position]int{}
			positions[k] = ps
		}
		pos := position{partition: d.Partition, offset: d.Offset}
		ps[pos]++
		if _, ok := atPos[pos]; !ok {
			atPos[pos] = k
		}
		dtimes[d.Partition] = append(dtimes[d.Partition], d.At)
	}
	r.Delivered = len(positions)
	r.Foreign = l.foreign
	// Where each record is stored: the audited clusters' own positions
	// when the log has audits, else the positions the group was given.
	where := positions
	if len(l.stored) > 0 {
		r.Audited = true
		where = map[recordKey]map[position]int{}
		atPos = map[position]recordKey{}
		for _, s := range l.stored {
			k := recordKey{s.Producer, s.Seq}
			ps := where[k]
			if ps == nil {
				ps = map[position]int{}
				where[k] = ps
			}
			pos := position{s.Cluster, s.Partition, s.Offset}
			ps[pos]++
			if _, ok := atPos[pos]; !ok {
				atPos[pos] = k
			}
		}
	}
	for _, ps := range positions {
		total, twice := 0, false
		for _, n := range ps {
			total += n
			if n > 1 {
				twice = true
			}
		}
		if total > 1 {
			r.Duplicated++
		}
		if twice {
			r.Redelivered++
		}
	}
	for k, ps := range where {
		if len(ps) > 1 {
			r.StoredTwice++
			if len(r.StoredTwiceSample) < 20 {
				var at []string
				for p := range ps {
					at = append(at, p.String())
				}
				sort.Strings(at)
				r.StoredTwiceSample = append(r.StoredTwiceSample, fmt.Sprintf("%s:%d at %s", k.producer, k.seq, strings.Join(at, ", ")))
			}
		}
	}

	// Lost, per producer.
	names := make([]string, 0, len(prods))
	for n := range prods {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := prods[n]
		pr := ProducerReport{Name: n, Acknowledged: len(p.acked), Failed: p.fails, Stall: longestGapPerPartition(p.times, faultAt, stoppedAt)}
		seqs := make([]int64, 0, len(p.acked))
		for s := range p.acked {
			seqs = append(seqs, s)
		}
		slices.Sort(seqs)
		for _, s := range seqs {
			a := p.acked[s]
			ps, delivered := positions[recordKey{n, s}]
			if _, stored := where[recordKey{n, s}]; !delivered && !stored {
				pr.Lost++
				if len(r.LostSample) < 20 {
					r.LostSample = append(r.LostSample, fmt.Sprintf("%s:%d (acked p%d@%d at %s)", n, s, a.Partition, a.Offset, a.At.Format("15:04:05.000")))
				}
				continue
			}
			if !delivered {
				r.Unread++
				continue
			}
			// An ack does not say which cluster: with audits (records on
			// several clusters) it is not compared.
			if a.Offset >= 0 && !r.Audited {
				if _, ok := ps[position{partition: a.Partition, offset: a.Offset}]; !ok {
					r.AckMoved++
				}
			}
		}
		r.Producers = append(r.Producers, pr)
		r.Acknowledged += pr.Acknowledged
		r.Lost += pr.Lost
		r.Failed += pr.Failed
		r.ProduceStall = max(r.ProduceStall, pr.Stall)
	}
	r.ConsumeStall = longestGapPerPartition(dtimes, faultAt, stoppedAt)

	// Order: per (cluster and) partition, in offset order, per producer.
	type log struct {
		cluster   string
		partition int32
	}
	byPart := map[log][]int64{}
	for pos := range atPos {
		lg := log{pos.cluster, pos.partition}
		byPart[lg] = append(byPart[lg], pos.offset)
	}
	for lg, offs := range byPart {
		slices.Sort(offs)
		maxSeq := map[string]int64{}
		seen := map[recordKey]bool{}
		for _, o := range offs {
			k := atPos[position{lg.cluster, lg.partition, o}]
			if seen[k] {
				continue // a second copy: counted as stored twice
			}
			seen[k] = true
			if m, ok := maxSeq[k.producer]; ok && k.seq < m {
				r.OutOfOrder++
				continue
			}
			maxSeq[k.producer] = k.seq
		}
	}
	return r
}

func (p position) String() string {
	if p.cluster == "" {
		return fmt.Sprintf("p%d@%d", p.partition, p.offset)
	}
	return fmt.Sprintf("%s/p%d@%d", p.cluster, p.partition, p.offset)
}

// longestGapPerPartition is the longest of the partitions' gaps: a fault
// that stops a third of the partitions does not show in the gaps of all
// of them together.
func longestGapPerPartition(ts map[int32][]time.Time, from, to time.Time) time.Duration {
	var best time.Duration
	for _, t := range ts {
		best = max(best, longestGap(t, from, to))
	}
	return best
}

// longestGap is the longest interval between consecutive times (sorted
// here) that ends after from and begins before to.
func longestGap(ts []time.Time, from, to time.Time) time.Duration {
	ts = slices.Clone(ts)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	var best time.Duration
	for i := 1; i < len(ts); i++ {
		if ts[i].After(from) && ts[i-1].Before(to) {
			best = max(best, ts[i].Sub(ts[i-1]))
		}
	}
	return best
}

// String is the report in one paragraph.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "acknowledged %d, failed %d, lost %d, duplicated %d (stored twice %d, redelivered %d), out of order %d, produce stall %v, consume stall %v",
		r.Acknowledged, r.Failed, r.Lost, r.Duplicated, r.StoredTwice, r.Redelivered, r.OutOfOrder,
		r.ProduceStall.Round(10*time.Millisecond), r.ConsumeStall.Round(10*time.Millisecond))
	for _, p := range r.Producers {
		fmt.Fprintf(&b, "\n  %s: acknowledged %d, failed %d, lost %d, stall %v", p.Name, p.Acknowledged, p.Failed, p.Lost, p.Stall.Round(10*time.Millisecond))
	}
	if r.Audited {
		fmt.Fprintf(&b, "\n  audited on the backend clusters: %d acknowledged records stored but never given to the group", r.Unread)
	}
	if r.AckMoved > 0 {
		fmt.Fprintf(&b, "\n  %d acknowledged records delivered from another offset than acknowledged", r.AckMoved)
	}
	if r.Foreign > 0 {
		fmt.Fprintf(&b, "\n  %d consumed records were not the verifier's", r.Foreign)
	}
	if len(r.StoredTwiceSample) > 0 {
		sort.Strings(r.StoredTwiceSample)
		fmt.Fprintf(&b, "\n  stored twice (up to 20): %s", strings.Join(r.StoredTwiceSample, "; "))
	}
	if len(r.LostSample) > 0 {
		fmt.Fprintf(&b, "\n  lost (first %d): %s", len(r.LostSample), strings.Join(r.LostSample, ", "))
	}
	return b.String()
}
