// Command bench is the harness behind `make bench`: it drives the same
// Kafka load straight at an in-process kfake cluster and through Switchyard,
// interleaved round by round in one run, and prints the medians as a
// markdown table with the proxy/direct ratio and the proxy's CPU cost.
//
// The proxy runs as a child process (`switchyard serve`, one peer per kfake
// broker) so that its CPU time can be read from /proc apart from the load
// generator and kfake, which share this process. docs/benchmarks.md
// explains each scenario and keeps the latest table.
//
//	go run ./test/bench                  # full run, a few minutes
//	go run ./test/bench -quick           # ~30 s smoke run
//	go run ./test/bench -scenarios latency -rounds 3 -out /tmp/bench.md
//	go run ./test/bench -baseline /tmp/switchyard.old   # A/B against another build
//	go run ./test/bench -scenarios peers3  # three peers, one per broker host, ~2.5 min
//	go run ./test/bench -scenarios idle    # one peer without and with 10,000 idle connections, ~3 min
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the harness's flags.
type options struct {
	rounds       int
	bytes        int64
	recordSize   int
	partitions   int
	brokers      int
	peers        int
	scenarios    []string
	rate         int
	latencyDur   time.Duration
	out          string
	quick        bool
	proxyMode    string
	switchyard   string
	roundTimeout time.Duration
	cpuProfile   string
	debug        bool
	proxyProcs   int
	peers3Relays bool
	// baseline is a second switchyard binary run as its own peers and
	// measured in the same rounds (an A/B comparison on a noisy machine).
	baseline      string
	baselineProcs int

	// The peers3 scenario (peers3.go).
	peers3Rounds   int
	peers3Bytes    int64
	peers3Topics   int
	peers3MetaReqs int
	peers3Phases   []string
	peers3Profile  string
	idleProfile    string

	// The idle scenario (idle.go).
	idleConns  int
	idleRounds int
	idleBytes  int64
}

// allScenarios lists the scenarios in the order they run and print.
var allScenarios = []string{"produce", "consume", "acks0", "latency", "floor"}

// separateScenarios are run only when named: peers3 and idle have their
// own processes and rounds, and `make bench` runs each as an invocation of
// its own with its own table.
var separateScenarios = []string{"peers3", "idle"}

func main() {
	maybeRelay()      // the floor scenario re-runs this binary as its relay
	maybeIdleHolder() // and the idle scenario as the holder of its idle connections
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	h, err := newHarness(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer h.cleanup()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rep := newReport(o)
	for _, name := range o.scenarios {
		if err := ctx.Err(); err != nil {
			return err
		}
		if name == "peers3" {
			res, err := h.peers3Scenario(ctx)
			if err != nil {
				return fmt.Errorf("scenario %s: %w", name, err)
			}
			for _, r := range res {
				rep.add(r)
			}
			continue
		}
		if name == "idle" {
			res, err := h.idleScenario(ctx)
			if err != nil {
				return fmt.Errorf("scenario %s: %w", name, err)
			}
			for _, r := range res {
				rep.add(r)
			}
			continue
		}
		res, err := h.runScenario(ctx, name)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", name, err)
		}
		rep.add(res)
	}
	text := rep.markdown()
	fmt.Fprint(stdout, text)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(text), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", o.out, err)
		}
		fmt.Fprintf(stderr, "bench: table written to %s\n", o.out)
	}
	return nil
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.rounds, "rounds", 7, "direct/proxy round pairs per scenario (the table shows medians; the machine is shared, so odd and not too few)")
	bytesFlag := fs.String("bytes", "256MiB", "record value bytes per round for produce, consume and acks0 (kfake keeps them in memory)")
	fs.IntVar(&o.recordSize, "record-size", 1024, "record value size in bytes")
	fs.IntVar(&o.partitions, "partitions", 6, "partitions of each benchmark topic")
	fs.IntVar(&o.brokers, "brokers", 1, "kfake brokers")
	fs.IntVar(&o.peers, "peers", 0, "proxy peers (default: one per broker); peer i is co-located with broker i")
	scen := fs.String("scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios: "+strings.Join(allScenarios, ", ")+" (all: these), or "+strings.Join(separateScenarios, ", ")+" (peers3: three peers in front of a 3-broker backend process; idle: one peer without and with -idle-conns idle connections)")
	fs.IntVar(&o.peers3Rounds, "peers3-rounds", 4, "peers3: direct/peers round pairs per phase")
	p3Bytes := fs.String("peers3-bytes", "128MiB", "peers3: record value bytes per produce round (the backend keeps them in memory)")
	fs.IntVar(&o.peers3Topics, "peers3-topics", 2000, "peers3: topics of 12 partitions created before the first round, listed by the metadata phase")
	fs.IntVar(&o.peers3MetaReqs, "peers3-metadata-requests", 10, "peers3: all-topics Metadata requests per metadata round")
	p3Phases := fs.String("peers3-phases", strings.Join(peers3Phases, ","), "peers3: comma-separated phases: "+strings.Join(peers3Phases, ", "))
	fs.BoolVar(&o.peers3Relays, "peers3-relays", true, "peers3: also measure every phase through three byte-copying relays, one per broker: the floor the peers are held to, under the same load")
	fs.StringVar(&o.peers3Profile, "peers3-profile", "", "peers3: directory where each peer writes a Go CPU profile of its whole run (peer-N.pprof, via $SWITCHYARD_CPUPROFILE)")
	fs.StringVar(&o.idleProfile, "idle-profile", "", "idle: directory where the peer writes a Go CPU profile of its whole run, both modes (peer-0.pprof, via $SWITCHYARD_CPUPROFILE)")
	fs.IntVar(&o.idleConns, "idle-conns", 10000, "idle: connections held open against the peer in the rounds with them")
	fs.IntVar(&o.idleRounds, "idle-rounds", 4, "idle: without/with round pairs (the first mode alternates)")
	idleBytes := fs.String("idle-bytes", "64MiB", "idle: record value bytes per produce round and of the consume backlog")
	fs.IntVar(&o.rate, "rate", 20000, "records per second in the latency scenario")
	fs.DurationVar(&o.latencyDur, "latency-duration", 5*time.Second, "length of each latency round")
	fs.StringVar(&o.out, "out", "", "also write the markdown table to this file")
	fs.BoolVar(&o.quick, "quick", false, "smoke run (~30 s): 2 rounds, 64 MiB, 2 s latency rounds, unless set explicitly")
	fs.StringVar(&o.proxyMode, "proxy", "process", "process: the proxy is a `switchyard serve` child (its CPU is measured apart); inproc: peers run in this process (no separate CPU figure)")
	fs.StringVar(&o.switchyard, "switchyard", "", "prebuilt switchyard binary for -proxy process (default: go build ./cmd/switchyard into a temp dir)")
	fs.DurationVar(&o.roundTimeout, "round-timeout", 2*time.Minute, "give up on a round after this long")
	fs.IntVar(&o.proxyProcs, "proxy-gomaxprocs", 0, "GOMAXPROCS of each proxy process (default: the Go default, all CPUs)")
	fs.StringVar(&o.baseline, "baseline", "", "also measure this switchyard binary (e.g. one built from the previous commit; or the same binary with -baseline-gomaxprocs) as a third mode in every round, for an A/B comparison in one run; -proxy process only")
	fs.IntVar(&o.baselineProcs, "baseline-gomaxprocs", 0, "GOMAXPROCS of each baseline proxy process (default: the Go default)")
	fs.BoolVar(&o.debug, "debug", false, "log the benchmark clients at debug level (with timestamps) to stderr, run the proxies at debug log level and keep their logs")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the bench process (load generator, kfake, and the proxy with -proxy inproc) to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		if !set["rounds"] {
			o.rounds = 2
		}
		if !set["bytes"] {
			*bytesFlag = "64MiB"
		}
		if !set["latency-duration"] {
			o.latencyDur = 2 * time.Second
		}
	}
	if o.peers == 0 {
		o.peers = o.brokers
	}
	if o.quick {
		if !set["peers3-rounds"] {
			o.peers3Rounds = 2
		}
		if !set["peers3-bytes"] {
			*p3Bytes = "16MiB"
		}
		if !set["peers3-topics"] {
			o.peers3Topics = 200
		}
		if !set["idle-rounds"] {
			o.idleRounds = 2
		}
		if !set["idle-bytes"] {
			*idleBytes = "16MiB"
		}
	}
	var err error
	if o.bytes, err = parseSize(*bytesFlag); err != nil {
		return o, err
	}
	if o.peers3Bytes, err = parseSize(*p3Bytes); err != nil {
		return o, err
	}
	if o.idleBytes, err = parseSize(*idleBytes); err != nil {
		return o, err
	}
	for _, ph := range strings.Split(*p3Phases, ",") {
		if ph = strings.TrimSpace(ph); ph == "" {
			continue
		}
		if !slices.Contains(peers3Phases, ph) {
			return o, fmt.Errorf("-peers3-phases: unknown phase %q (have %s)", ph, strings.Join(peers3Phases, ", "))
		}
		o.peers3Phases = append(o.peers3Phases, ph)
	}
	for _, s := range strings.Split(*scen, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if s == "all" {
			o.scenarios = append(o.scenarios, allScenarios...)
			continue
		}
		if !slices.Contains(allScenarios, s) && !slices.Contains(separateScenarios, s) {
			return o, fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(append(slices.Clone(allScenarios), separateScenarios...), ", "))
		}
		o.scenarios = append(o.scenarios, s)
	}
	switch {
	case len(o.scenarios) == 0:
		return o, errors.New("no scenarios selected")
	case o.rounds < 1:
		return o, fmt.Errorf("-rounds %d: need at least 1", o.rounds)
	case o.recordSize < 1:
		return o, fmt.Errorf("-record-size %d: need at least 1 byte", o.recordSize)
	case o.bytes < int64(o.recordSize):
		return o, fmt.Errorf("-bytes %d is less than one record", o.bytes)
	case o.partitions < 1:
		return o, fmt.Errorf("-partitions %d: need at least 1", o.partitions)
	case o.brokers < 1:
		return o, fmt.Errorf("-brokers %d: need at least 1", o.brokers)
	case o.peers < 0:
		return o, fmt.Errorf("-peers %d: need at least 1", o.peers)
	case o.rate < 1:
		return o, fmt.Errorf("-rate %d: need at least 1 record/s", o.rate)
	case o.proxyMode != "process" && o.proxyMode != "inproc":
		return o, fmt.Errorf("-proxy %q: use process or inproc", o.proxyMode)
	case o.baseline != "" && o.proxyMode != "process":
		return o, errors.New("-baseline needs -proxy process")
	case o.peers3Rounds < 1:
		return o, fmt.Errorf("-peers3-rounds %d: need at least 1", o.peers3Rounds)
	case o.peers3Bytes < int64(o.recordSize):
		return o, fmt.Errorf("-peers3-bytes %d is less than one record", o.peers3Bytes)
	case o.peers3Topics < 0:
		return o, fmt.Errorf("-peers3-topics %d: need 0 or more", o.peers3Topics)
	case o.peers3MetaReqs < 1:
		return o, fmt.Errorf("-peers3-metadata-requests %d: need at least 1", o.peers3MetaReqs)
	case len(o.peers3Phases) == 0:
		return o, errors.New("-peers3-phases: no phase selected")
	case o.idleConns < 1:
		return o, fmt.Errorf("-idle-conns %d: need at least 1", o.idleConns)
	case o.idleRounds < 1:
		return o, fmt.Errorf("-idle-rounds %d: need at least 1", o.idleRounds)
	case o.idleBytes < int64(o.recordSize):
		return o, fmt.Errorf("-idle-bytes %d is less than one record", o.idleBytes)
	}
	for _, d := range []struct {
		flag string
		dir  *string
	}{{"-peers3-profile", &o.peers3Profile}, {"-idle-profile", &o.idleProfile}} {
		if *d.dir == "" {
			continue
		}
		abs, err := filepath.Abs(*d.dir)
		if err != nil {
			return o, err
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return o, fmt.Errorf("%s: %w", d.flag, err)
		}
		*d.dir = abs
	}
	return o, nil
}

// parseSize reads a byte count such as 256MiB, 1GiB, 500MB or 1048576.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number with an optional B, KiB, MiB, GiB, KB, MB or GB suffix", s)
	}
	return int64(v * float64(mult)), nil
}
