package main

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Targets from the issue that asked for this benchmark.
const (
	targetRatio     = 0.97 // proxy/direct throughput, produce and consume
	targetAddedP50  = 0.1  // ms at 20k records/s
	targetAddedP99  = 0.5  // ms at 20k records/s
	targetCPUPerMB  = 2.0  // proxy CPU-ms per MB forwarded
	bytesPerMB      = 1e6
	scenarioHeading = "scenario"
)

type report struct {
	o       options
	started time.Time
	results []scenarioResult
}

func newReport(o options) *report { return &report{o: o, started: time.Now()} }

func (r *report) add(res scenarioResult) { r.results = append(r.results, res) }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func values(ms []measurement, f func(measurement) float64) []float64 {
	out := make([]float64, len(ms))
	for i, m := range ms {
		out[i] = f(m)
	}
	return out
}

// cpuPerMB is proxy CPU-ms per MB (10^6 bytes) through the proxy's client
// side; ok is false when the proxy's CPU is not separable.
func cpuPerMB(m measurement) (float64, bool) {
	if !m.cpuOK || m.proxyBytes <= 0 {
		return 0, false
	}
	return ms(m.proxyCPU) / (float64(m.proxyBytes) / bytesPerMB), true
}

// selfPerMB is this process's CPU-ms (load generator + kfake, and the proxy
// with -proxy inproc) per MB of record values.
func selfPerMB(m measurement) float64 {
	if m.payload <= 0 {
		return 0
	}
	return ms(m.selfCPU) / (float64(m.payload) / bytesPerMB)
}

// proxyCPUSummary is the median CPU-ms/MB and cores of a scenario's proxy
// rounds, as table text.
func proxyCPUSummary(ms []measurement) string {
	var per, cores, perReq, reqRate []float64
	for _, m := range ms {
		if v, ok := cpuPerMB(m); ok {
			per = append(per, v)
			cores = append(cores, m.proxyCPU.Seconds()/m.wall.Seconds())
			if m.proxyReqs > 0 {
				perReq = append(perReq, float64(m.proxyCPU.Microseconds())/float64(m.proxyReqs))
				reqRate = append(reqRate, float64(m.proxyReqs)/m.wall.Seconds())
			}
		}
	}
	if len(per) == 0 {
		return "proxy CPU not separable (-proxy inproc)"
	}
	return fmt.Sprintf("proxy CPU %.2f ms/MB, %.2f cores, %.0f µs/req at %.0f req/s", median(per), median(cores), median(perReq), median(reqRate))
}

// phase is a scenario's name without its peers3- or idle- prefix.
func phase(name string) string {
	return strings.TrimPrefix(strings.TrimPrefix(name, "peers3-"), "idle-")
}

func describe(name string, m measurement) string {
	var b strings.Builder
	switch phase(name) {
	case "quiet":
		fmt.Fprintf(&b, "no client for %.1fs: peer %.4f cores", m.wall.Seconds(), m.proxyCPU.Seconds()/m.wall.Seconds())
		return b.String()
	case "metadata":
		fmt.Fprintf(&b, "p50 %.1f ms  p99 %.1f ms  backend %.1f CPU-ms/req", m.value, m.p99, perReqMS(m.backendCPU, m))
		if m.cpuOK {
			fmt.Fprintf(&b, "  peers %.1f CPU-ms/req", perReqMS(m.proxyCPU, m))
		}
		return b.String()
	case "latency":
		fmt.Fprintf(&b, "p50 %.3f ms  p99 %.3f ms  (%.0f rec/s)", m.value, m.p99, m.rate)
	case "acks0":
		fmt.Fprintf(&b, "%.1f MiB/s at producer, %.1f MiB/s stored", m.value, m.stored)
	default:
		fmt.Fprintf(&b, "%.1f MiB/s", m.value)
	}
	fmt.Fprintf(&b, "  in %.2fs", m.wall.Seconds())
	if v, ok := cpuPerMB(m); ok {
		fmt.Fprintf(&b, "  proxy %.2f CPU-ms/MB (%.2f cores, %d req)", v, m.proxyCPU.Seconds()/m.wall.Seconds(), m.proxyReqs)
	}
	fmt.Fprintf(&b, "  bench process %.2f CPU-ms/MB", selfPerMB(m))
	if m.backendCPU > 0 {
		fmt.Fprintf(&b, "  backend %.2f cores", m.backendCPU.Seconds()/m.wall.Seconds())
	}
	return b.String()
}

// perReqMS is CPU-ms per timed request of a metadata round.
func perReqMS(d time.Duration, m measurement) float64 {
	if m.requests == 0 {
		return 0
	}
	return ms(d) / float64(m.requests)
}

func ratio(direct, proxy float64) string {
	if direct == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f", proxy/direct)
}

func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Switchyard benchmark — %s\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"))
	var main, peers3, idle []scenarioResult
	for _, res := range r.results {
		switch {
		case strings.HasPrefix(res.name, "peers3-"):
			peers3 = append(peers3, res)
		case strings.HasPrefix(res.name, "idle-"):
			idle = append(idle, res)
		default:
			main = append(main, res)
		}
	}
	if len(main) > 0 {
		r.mainTable(&b, main)
	}
	if len(peers3) > 0 {
		floor := math.NaN() // the relay's added p50, when the floor scenario ran too
		for _, res := range main {
			if res.name == "floor" {
				v := func(m measurement) float64 { return m.value }
				floor = median(values(res.proxy, v)) - median(values(res.direct, v))
			}
		}
		r.peers3Table(&b, peers3, floor)
	}
	if len(idle) > 0 {
		r.idleTable(&b, idle)
	}
	return b.String()
}

func (r *report) mainTable(b *strings.Builder, results []scenarioResult) {
	o := r.o
	fmt.Fprintf(b, "%s/%s, %d CPUs (GOMAXPROCS %d), %s. ", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	fmt.Fprintf(b, "kfake: %d broker(s) in the bench process with the franz-go load generator. ", o.brokers)
	if o.proxyMode == "process" {
		fmt.Fprintf(b, "Proxy: %d `switchyard serve` child process(es), peer i co-located with broker i", o.peers)
		if o.proxyProcs > 0 {
			fmt.Fprintf(b, ", GOMAXPROCS=%d", o.proxyProcs)
		}
		b.WriteString(".\n")
	} else {
		fmt.Fprintf(b, "Proxy: %d peer(s) in the bench process (sandbox), peer i co-located with broker i; its CPU is not separable.\n", o.peers)
	}
	if o.brokers > o.peers {
		fmt.Fprintf(b, "\n**Note:** %d brokers behind %d peer(s): brokers without a co-located peer are presented by rendezvous, so requests that span brokers are split and merged (the fallback path).\n", o.brokers, o.peers)
	}
	fmt.Fprintf(b, "%d rounds per scenario, interleaved direct then proxy; medians shown. %d-byte values, %d partitions, no compression; %s per throughput round.\n\n",
		o.rounds, o.recordSize, o.partitions, sizeText(o.bytes))

	fmt.Fprintf(b, "| %s | direct (median) | proxy (median) | ratio | extra |\n|---|---:|---:|---:|---|\n", scenarioHeading)
	var allCPU time.Duration
	var allBytes int64
	for _, res := range results {
		for _, m := range res.proxy {
			// The latency scenario's small requests cost far more per MB;
			// it reports its own figure.
			if m.cpuOK && res.name != "latency" {
				allCPU += m.proxyCPU
				allBytes += m.proxyBytes
			}
		}
		primary := func(m measurement) float64 { return m.value }
		d, p := median(values(res.direct, primary)), median(values(res.proxy, primary))
		cpu := proxyCPUSummary(res.proxy)
		// base is the -baseline figure for a row, as extra text.
		base := func(f func(measurement) float64, unit string) string {
			if len(res.baseline) == 0 {
				return ""
			}
			bv := median(values(res.baseline, f))
			return fmt.Sprintf("; **baseline** %.3f%s (ratio %s), %s", bv, unit, ratio(d, bv), proxyCPUSummary(res.baseline))
		}
		switch res.name {
		case "produce":
			fmt.Fprintf(b, "| produce acks=all, max rate (MiB/s) | %.1f | %.1f | %s | target ≥ %.2f; %s%s |\n", d, p, ratio(d, p), targetRatio, cpu, base(primary, " MiB/s"))
		case "consume":
			fmt.Fprintf(b, "| consume from start (MiB/s) | %.1f | %.1f | %s | target ≥ %.2f; %s%s |\n", d, p, ratio(d, p), targetRatio, cpu, base(primary, " MiB/s"))
		case "acks0":
			st := func(m measurement) float64 { return m.stored }
			sd, sp := median(values(res.direct, st)), median(values(res.proxy, st))
			fmt.Fprintf(b, "| produce acks=0, at the producer (MiB/s) | %.1f | %.1f | %s | promises complete on socket write; until stored in kfake: %.1f vs %.1f MiB/s (ratio %s); %s%s |\n",
				d, p, ratio(d, p), sd, sp, ratio(sd, sp), cpu, base(primary, " MiB/s"))
		case "latency":
			p99 := func(m measurement) float64 { return m.p99 }
			d99, p99v := median(values(res.direct, p99)), median(values(res.proxy, p99))
			rate := func(m measurement) float64 { return m.rate }
			fmt.Fprintf(b, "| produce %d rec/s, linger 0, acks=all: p50 latency (ms) | %.3f | %.3f | %s | added p50 %+.3f ms (target ≤ %.1f)%s |\n",
				o.rate, d, p, ratio(d, p), p-d, targetAddedP50, base(primary, " ms"))
			d = d99 // base() compares with the row's direct figure
			fmt.Fprintf(b, "| produce %d rec/s, linger 0, acks=all: p99 latency (ms) | %.3f | %.3f | %s | added p99 %+.3f ms (target ≤ %.1f); achieved %.0f / %.0f rec/s; %s%s |\n",
				o.rate, d99, p99v, ratio(d99, p99v), p99v-d99, targetAddedP99,
				median(values(res.direct, rate)), median(values(res.proxy, rate)), cpu, base(p99, " ms"))
		case "floor":
			p99 := func(m measurement) float64 { return m.p99 }
			d99, p99v := median(values(res.direct, p99)), median(values(res.proxy, p99))
			fmt.Fprintf(b, "| floor: %d-byte ping round trip, %d/s, through a relay process that only copies bytes: p50 / p99 (ms) | %.3f / %.3f | %.3f / %.3f | %s | what two loopback hops and process wake-ups add on this machine: %+.3f ms p50, %+.3f ms p99; no proxy can add less |\n",
				floorMessage, int(time.Second/floorPeriod), d, d99, p, p99v, ratio(d, p), p-d, p99v-d99)
		}
	}
	if allBytes > 0 {
		per := ms(allCPU) / (float64(allBytes) / bytesPerMB)
		fmt.Fprintf(b, "| proxy CPU per MB forwarded, throughput scenarios (all their proxy rounds) | | %.2f ms/MB | | %.2f CPU-s/GiB; target ≤ %.1f ms/MB; %.1f CPU-s over %.0f MB |\n",
			per, per*float64(1<<30)/bytesPerMB/1000, targetCPUPerMB, allCPU.Seconds(), float64(allBytes)/bytesPerMB)
	}

	b.WriteString("\nMB = 10^6 bytes read from plus written to the proxy's clients (request and response frames, as the proxy counts them); " +
		"proxy CPU is the on-CPU time of the proxy process(es), summed over their threads from /proc/PID/task/*/schedstat (user+system, ns), read at both ends of each measured interval. " +
		"Load generator and kfake share the bench process and the same cores as the proxy, so ratios also reflect CPU contention.\n\n")

	if o.baseline != "" {
		fmt.Fprintf(b, "Baseline: `%s`", o.baseline)
		if o.baselineProcs > 0 {
			fmt.Fprintf(b, " with GOMAXPROCS=%d", o.baselineProcs)
		}
		b.WriteString(", measured in the same rounds (its figures follow each proxy figure below).\n\n")
	}
	b.WriteString("Per round (direct / proxy); bench-process CPU is load generator + kfake")
	if o.proxyMode == "inproc" {
		b.WriteString(" + proxy")
	}
	b.WriteString(", per MB of record values:\n\n")
	for _, res := range results {
		fmt.Fprintf(b, "- %s:", res.name)
		for i := range res.direct {
			fmt.Fprintf(b, " [%s / %s", short(res.name, res.direct[i]), short(res.name, res.proxy[i]))
			if i < len(res.baseline) {
				fmt.Fprintf(b, " / base %s", short(res.name, res.baseline[i]))
			}
			b.WriteString("]")
		}
		if res.name == "floor" {
			b.WriteString("\n")
			continue
		}
		self := func(m measurement) float64 { return selfPerMB(m) }
		fmt.Fprintf(b, "; bench-process CPU %.2f / %.2f ms/MB\n", median(values(res.direct, self)), median(values(res.proxy, self)))
	}
}

func short(name string, m measurement) string {
	switch phase(name) {
	case "quiet":
		return fmt.Sprintf("%.4f cores", m.proxyCPU.Seconds()/m.wall.Seconds())
	case "metadata":
		return fmt.Sprintf("%.1f ms, backend %.1f CPU-ms/req", m.value, perReqMS(m.backendCPU, m))
	case "latency", "floor":
		return fmt.Sprintf("%.3f/%.3f ms", m.value, m.p99)
	case "acks0":
		return fmt.Sprintf("%.0f (%.0f stored)", m.value, m.stored)
	}
	return fmt.Sprintf("%.0f", m.value)
}

func sizeText(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d B", n)
}

// Targets of issue 14 for the three-peer deployment.
const (
	targetPeers3CPUPerGiB = 0.7 // proxy CPU-s per GiB forwarded, summed over peers
)

// cpuPerGiB is the peers' CPU-seconds (summed) per GiB read from and
// written to their clients.
func cpuPerGiB(m measurement) (float64, bool) {
	if !m.cpuOK || m.proxyBytes <= 0 {
		return 0, false
	}
	return m.proxyCPU.Seconds() / (float64(m.proxyBytes) / (1 << 30)), true
}

// peers3Table writes the three-peer section; floor is the relay's added
// p50 in ms measured in the same run, or NaN.
func (r *report) peers3Table(b *strings.Builder, results []scenarioResult, floor float64) {
	o := r.o
	fmt.Fprintf(b, "### Three peers, one per broker host\n\n")
	fmt.Fprintf(b, "%s/%s, %d CPUs, %s. Backend: a `switchyard broker --brokers 3` process (kfake); three `switchyard serve` processes, peer i co-located with broker i (`--local-broker default:i`), Raft, gossip, quota reports and the metadata refresh running; the load generator is the bench process. %d topics of %d partitions exist throughout. %d rounds per phase, direct, through the peers (and, with `-peers3-relays`, through three byte-copying relays; with a baseline, through its peers) in turn, the modes rotating through the positions; medians shown.\n\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), o.peers3Topics, peers3Partitions, o.peers3Rounds)
	fmt.Fprintf(b, "| figure | direct (median) | 3 peers (median) | ratio | extra |\n|---|---:|---:|---:|---|\n")
	var note string
	for _, res := range results {
		note = res.note
		val := func(m measurement) float64 { return m.value }
		p99 := func(m measurement) float64 { return m.p99 }
		backendCores := func(m measurement) float64 { return m.backendCPU.Seconds() / m.wall.Seconds() }
		d, p := median(values(res.direct, val)), median(values(res.proxy, val))
		// cpuOf is the peers' CPU figures of one build's rounds.
		cpuOf := func(ms []measurement) (gibMed, coresMed, perReqMed float64) {
			var gib, cores, perReq []float64
			for _, m := range ms {
				if v, ok := cpuPerGiB(m); ok {
					gib = append(gib, v)
					cores = append(cores, m.proxyCPU.Seconds()/m.wall.Seconds())
					if m.proxyReqs > 0 {
						perReq = append(perReq, float64(m.proxyCPU.Microseconds())/float64(m.proxyReqs))
					}
				}
			}
			return median(gib), median(cores), median(perReq)
		}
		gib, cores, perReq := cpuOf(res.proxy)
		peersCPU := fmt.Sprintf("peers (summed) %.2f CPU-s/GiB (target ≤ %.1f), %.2f cores, %.0f µs/req; backend %.2f vs %.2f cores",
			gib, targetPeers3CPUPerGiB, cores, perReq,
			median(values(res.direct, backendCores)), median(values(res.proxy, backendCores)))
		if len(res.baseline) > 0 && res.name != "peers3-idle" {
			bg, bc, bq := cpuOf(res.baseline)
			bv := median(values(res.baseline, val))
			peersCPU += fmt.Sprintf("; **baseline** %.3f (ratio to direct %s), peers %.2f CPU-s/GiB, %.2f cores, %.0f µs/req", bv, ratio(d, bv), bg, bc, bq)
		}
		switch res.name {
		case "peers3-idle":
			for _, m := range res.proxy {
				fmt.Fprintf(b, "| no clients, %.0f s: CPU (cores) | | %.3f | | peers summed: Raft, gossip, quota reports, metadata refresh; backend %.3f cores meanwhile |\n",
					m.wall.Seconds(), m.proxyCPU.Seconds()/m.wall.Seconds(), backendCores(m))
			}
			for _, m := range res.baseline {
				fmt.Fprintf(b, "| no clients, %.0f s: **baseline** CPU (cores) | | %.3f | | the baseline build's peers, measured next |\n",
					m.wall.Seconds(), m.proxyCPU.Seconds()/m.wall.Seconds())
			}
		case "peers3-latency":
			rate := func(m measurement) float64 { return m.rate }
			d99, p99v := median(values(res.direct, p99)), median(values(res.proxy, p99))
			vsFloor := "target: the relays' + 0.1 ms; run with -peers3-relays or `-scenarios floor,peers3` to measure it"
			if len(res.relay) > 0 {
				rl := median(values(res.relay, val))
				vsFloor = fmt.Sprintf("the three relays add %+.3f ms under the same load: %+.3f ms above them (target ≤ +0.1)", rl-d, p-rl)
				if !math.IsNaN(floor) {
					vsFloor += fmt.Sprintf("; the floor scenario's ping relay adds %+.3f ms", floor)
				}
			} else if !math.IsNaN(floor) {
				vsFloor = fmt.Sprintf("the byte-copying relay adds %+.3f ms in this run: %+.3f ms above it (target ≤ +0.1)", floor, p-d-floor)
			}
			fmt.Fprintf(b, "| produce %d rec/s, linger 0, acks=all: p50 latency (ms) | %.3f | %.3f | %s | added p50 %+.3f ms; %s |\n",
				o.rate, d, p, ratio(d, p), p-d, vsFloor)
			fmt.Fprintf(b, "| produce %d rec/s, linger 0, acks=all: p99 latency (ms) | %.3f | %.3f | %s | added p99 %+.3f ms; achieved %.0f / %.0f rec/s; %s |\n",
				o.rate, d99, p99v, ratio(d99, p99v), p99v-d99, median(values(res.direct, rate)), median(values(res.proxy, rate)), peersCPU)
			if len(res.relay) > 0 {
				rl, rl99 := median(values(res.relay, val)), median(values(res.relay, p99))
				_, rc, rq := cpuOf(res.relay)
				fmt.Fprintf(b, "| produce %d rec/s through 3 byte-copying relays: p50 / p99 (ms) | %.3f / %.3f | %.3f / %.3f | %s | relays (summed) %.2f cores, %.0f µs/req |\n",
					o.rate, d, d99, rl, rl99, ratio(d, rl), rc, rq)
			}
		case "peers3-produce":
			fmt.Fprintf(b, "| produce acks=all, max rate, %s per round (MiB/s) | %.1f | %.1f | %s | %s |\n",
				sizeText(o.peers3Bytes), d, p, ratio(d, p), peersCPU)
			if len(res.relay) > 0 {
				rg, rc, _ := cpuOf(res.relay)
				rv := median(values(res.relay, val))
				fmt.Fprintf(b, "| produce, max rate, through 3 byte-copying relays (MiB/s) | %.1f | %.1f | %s | relays (summed) %.2f CPU-s/GiB, %.2f cores: the peers use %.2f× the relays' CPU per GiB |\n",
					d, rv, ratio(d, rv), rg, rc, gib/rg)
			}
		case "peers3-metadata":
			back := func(m measurement) float64 { return perReqMS(m.backendCPU, m) }
			bd, bp := median(values(res.direct, back)), median(values(res.proxy, back))
			var peerReq []float64
			for _, m := range res.proxy {
				if m.cpuOK {
					peerReq = append(peerReq, perReqMS(m.proxyCPU, m))
				}
			}
			fmt.Fprintf(b, "| all-topics Metadata, %d × %d, %d requests per round: p50 (ms) | %.1f | %.1f | %s | p99 %.1f vs %.1f ms |\n",
				o.peers3Topics, peers3Partitions, o.peers3MetaReqs, d, p, ratio(d, p), median(values(res.direct, p99)), median(values(res.proxy, p99)))
			fmt.Fprintf(b, "| all-topics Metadata: backend CPU per request (ms) | %.1f | %.1f | %s | target: nothing beyond the direct cost (the peers' periodic refreshes fall in both modes' rounds); peers (summed) %.1f CPU-ms/req |\n",
				bd, bp, ratio(bd, bp), median(peerReq))
			if len(res.relay) > 0 {
				rv := median(values(res.relay, val))
				fmt.Fprintf(b, "| all-topics Metadata through 3 byte-copying relays: p50 (ms) | %.1f | %.1f | %s | what carrying the answer costs without building it |\n", d, rv, ratio(d, rv))
			}
		}
	}
	fmt.Fprintf(b, "\nMachine: %s. GiB = 2^30 bytes read from plus written to the peers' clients, as the peers count them; CPU is on-CPU time from /proc/PID/task/*/schedstat, read at both ends of each measured interval, summed over the three peer processes (backend: the broker process).\n\n", note)
	b.WriteString("Per round (direct / 3 peers [/ base] [/ relays]):\n\n")
	for _, res := range results {
		if res.name == "peers3-idle" {
			continue
		}
		fmt.Fprintf(b, "- %s:", res.name)
		for i := range min(len(res.direct), len(res.proxy)) {
			fmt.Fprintf(b, " [%s / %s", short(res.name, res.direct[i]), short(res.name, res.proxy[i]))
			if i < len(res.baseline) {
				fmt.Fprintf(b, " / base %s", short(res.name, res.baseline[i]))
			}
			if i < len(res.relay) {
				fmt.Fprintf(b, " / relays %s", short(res.name, res.relay[i]))
			}
			b.WriteString("]")
		}
		b.WriteString("\n")
	}
	if o.baseline != "" {
		fmt.Fprintf(b, "\nBaseline: `%s`, three more peers in front of the same brokers, measured in the same rounds.\n", o.baseline)
	}
	if o.peers3Relays {
		b.WriteString("\nRelays: three processes that only copy bytes (a read/write loop each way, 1 MiB buffers), one in front of each broker; the clients of their rounds dial a broker's relay wherever they would dial the broker, and their bytes are counted by the client.\n")
	}
}

// idleTable writes the idle-connections section: each result's direct
// rounds ran without the idle connections, its proxy rounds with them,
// both through the same peer.
func (r *report) idleTable(b *strings.Builder, results []scenarioResult) {
	o := r.o
	fmt.Fprintf(b, "### Idle connections beside active clients\n\n")
	fmt.Fprintf(b, "%s/%s, %d CPUs, %s. One `switchyard serve` peer (co-located with broker 0) in front of a 1-broker kfake in the bench process, which is also the load generator. "+
		"In the rounds *with*, a child process holds %d client connections open against the peer, each having done ApiVersions and a Metadata (no topics) and then sent nothing. "+
		"%d rounds, the first mode alternating; medians shown; the ratio is with / without.\n\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), o.idleConns, o.idleRounds)
	fmt.Fprintf(b, "| figure | without (median) | with %d idle (median) | ratio | extra |\n|---|---:|---:|---:|---|\n", o.idleConns)
	val := func(m measurement) float64 { return m.value }
	p99 := func(m measurement) float64 { return m.p99 }
	rss := func(m measurement) float64 { return float64(m.rss) / mib }
	fds := func(m measurement) float64 { return float64(m.fds) }
	cores := func(m measurement) float64 { return m.proxyCPU.Seconds() / m.wall.Seconds() }
	var note string
	for _, res := range results {
		note = res.note
		d, p := median(values(res.direct, val)), median(values(res.proxy, val))
		gcRate := func(m measurement) float64 { return float64(m.proxyGCs) / m.wall.Seconds() }
		cpu := fmt.Sprintf("peer %.2f vs %.2f cores, %.1f vs %.1f GC cycles/s", median(values(res.direct, cores)), median(values(res.proxy, cores)),
			median(values(res.direct, gcRate)), median(values(res.proxy, gcRate)))
		switch res.name {
		case "idle-quiet":
			dc, pc := median(values(res.direct, cores)), median(values(res.proxy, cores))
			fmt.Fprintf(b, "| no active client, %.0f s: peer CPU (cores) | %.4f | %.4f | %s | what holding the idle connections costs on its own (measured %.0f s after they opened); %s |\n",
				idleQuiet.Seconds(), dc, pc, ratio(dc, pc), idleSettle.Seconds(), cpu)
			dr, pr := median(values(res.direct, rss)), median(values(res.proxy, rss))
			perConn := func(m measurement) float64 { return float64(m.rss-m.rssBefore) / 1024 / float64(o.idleConns) }
			fmt.Fprintf(b, "| peer RSS, no active client (MiB) | %.1f | %.1f | %s | RSS growth when they opened: %.1f KiB per connection (median; low when the peer reuses memory freed in earlier rounds: BenchmarkIdleConns measures it in process); open descriptors %.0f vs %.0f |\n",
				dr, pr, ratio(dr, pr), median(values(res.proxy, perConn)), median(values(res.direct, fds)), median(values(res.proxy, fds)))
		case "idle-latency":
			rate := func(m measurement) float64 { return m.rate }
			d99, p99v := median(values(res.direct, p99)), median(values(res.proxy, p99))
			fmt.Fprintf(b, "| produce %d rec/s, linger 0, acks=all: p50 latency (ms) | %.3f | %.3f | %s | %+.3f ms |\n", o.rate, d, p, ratio(d, p), p-d)
			fmt.Fprintf(b, "| produce %d rec/s, linger 0, acks=all: p99 latency (ms) | %.3f | %.3f | %s | %+.3f ms; achieved %.0f / %.0f rec/s; %s |\n",
				o.rate, d99, p99v, ratio(d99, p99v), p99v-d99, median(values(res.direct, rate)), median(values(res.proxy, rate)), cpu)
		case "idle-produce":
			fmt.Fprintf(b, "| produce acks=all, max rate, %s per round (MiB/s) | %.1f | %.1f | %s | %s |\n", sizeText(o.idleBytes), d, p, ratio(d, p), cpu)
			dr, pr := median(values(res.direct, rss)), median(values(res.proxy, rss))
			fmt.Fprintf(b, "| peer RSS after the produce phase (MiB) | %.1f | %.1f | %s | |\n", dr, pr, ratio(dr, pr))
		case "idle-consume":
			fmt.Fprintf(b, "| consume a %s backlog from the start (MiB/s) | %.1f | %.1f | %s | %s |\n", sizeText(o.idleBytes), d, p, ratio(d, p), cpu)
		}
	}
	fmt.Fprintf(b, "\nMachine: %s. Peer CPU is on-CPU time from /proc/PID/task/*/schedstat over each measured interval; RSS (VmRSS) and descriptors are read at the end of each round.\n\n", note)
	b.WriteString("Per round (without / with):\n\n")
	for _, res := range results {
		fmt.Fprintf(b, "- %s:", res.name)
		for i := range min(len(res.direct), len(res.proxy)) {
			fmt.Fprintf(b, " [%s / %s", short(res.name, res.direct[i]), short(res.name, res.proxy[i]))
			if i < len(res.baseline) {
				fmt.Fprintf(b, " / base %s", short(res.name, res.baseline[i]))
			}
			b.WriteString("]")
		}
		b.WriteString("\n")
	}
	if o.baseline != "" {
		fmt.Fprintf(b, "\nBaseline: `%s`, three more peers in front of the same brokers, measured in the same rounds.\n", o.baseline)
	}
}
