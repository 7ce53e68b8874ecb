package main

// switchyard broker: a small Kafka-compatible dev broker (franz-go's kfake),
// so that a container demo (deploy/compose) or a test can run a backend
// cluster from the same static binary. It is not a Kafka replacement: no
// replication between processes, data kept in memory unless --data-dir is
// given.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kversion"
)

// brokerMaxBrokers bounds --brokers: a dev cluster in one process.
const brokerMaxBrokers = 16

type brokerConfig struct {
	listen, advertise string
	brokers           int
	dataDir           string
	clusterID         string
	partitions        int
	autoCreate        bool
	logLevel          string
	// maxVersion is a Kafka release ("3.0", "3.9.1", "v4.0"; kversion's
	// names) whose request versions cap what the brokers advertise and
	// accept; "" is kfake's newest.
	maxVersion string
}

// brokerAddrs is one broker's listen and advertised address.
type brokerAddrs struct{ listen, advertise string }

// plan checks the flags and answers each broker's addresses: broker i
// listens on the listen port + i and is advertised on the advertised port
// + i. A port of 0 (tests, benchmarks) is allowed without --advertise: each
// broker then listens on a free port of its own and is advertised on the
// address it got (printed on stdout).
func (c brokerConfig) plan() ([]brokerAddrs, error) {
	if c.brokers < 1 || c.brokers > brokerMaxBrokers {
		return nil, fmt.Errorf("broker: --brokers %d: want 1 to %d", c.brokers, brokerMaxBrokers)
	}
	if c.partitions < 1 || c.partitions > 10000 {
		return nil, fmt.Errorf("broker: --partitions %d: want 1 to 10000", c.partitions)
	}
	if _, err := c.versions(); err != nil {
		return nil, err
	}
	lhost, lport, err := splitPort("--listen", c.listen)
	if err != nil {
		return nil, err
	}
	adv := c.advertise
	if adv == "" {
		if ip := net.ParseIP(lhost); lhost == "" || (ip != nil && ip.IsUnspecified()) {
			return nil, fmt.Errorf("broker: --listen %s is every interface: give --advertise HOST:PORT, the address clients (and the peers) dial", c.listen)
		}
		adv = c.listen
	}
	ahost, aport, err := splitPort("--advertise", adv)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(ahost); ahost == "" || (ip != nil && ip.IsUnspecified()) {
		return nil, fmt.Errorf("broker: --advertise %s: give a host clients can dial, not every interface", adv)
	}
	if lport == 0 && c.advertise != "" {
		return nil, errors.New("broker: --listen port 0 (any free ports) works without --advertise only: each broker is advertised on the port it got")
	}
	if lport+c.brokers-1 > 65535 || aport+c.brokers-1 > 65535 {
		return nil, fmt.Errorf("broker: %d brokers from port %d (listen) or %d (advertised) run past 65535", c.brokers, lport, aport)
	}
	out := make([]brokerAddrs, c.brokers)
	for i := range out {
		out[i].listen = net.JoinHostPort(lhost, strconv.Itoa(lport+i))
		if lport == 0 {
			continue // advertised as bound
		}
		out[i].advertise = net.JoinHostPort(ahost, strconv.Itoa(aport+i))
	}
	return out, nil
}

// versions is the --max-version cap, nil for none.
func (c brokerConfig) versions() (*kversion.Versions, error) {
	if c.maxVersion == "" {
		return nil, nil
	}
	v := kversion.FromString(c.maxVersion)
	if v == nil {
		return nil, fmt.Errorf("broker: --max-version %q: want a Kafka release such as 3.0 or 3.9.1 (known: %s)", c.maxVersion, strings.Join(kversion.VersionStrings(), ", "))
	}
	return v, nil
}

func splitPort(flagName, addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("broker: %s %q: want HOST:PORT: %v", flagName, addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("broker: %s %q: port %q is not 0-65535", flagName, addr, p)
	}
	return host, port, nil
}

// advertisedListener is a listener whose Addr is the advertised address:
// kfake presents each broker at its listener's Addr.
type advertisedListener struct {
	net.Listener
	addr net.Addr
}

func (l advertisedListener) Addr() net.Addr { return l.addr }

type hostPortAddr string

func (a hostPortAddr) Network() string { return "tcp" }
func (a hostPortAddr) String() string  { return string(a) }

func runBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: switchyard broker [flags]

Runs a small Kafka-compatible development broker cluster in this process
(franz-go's kfake): a backend for demos and tests (deploy/compose), not for
production. Broker i listens on the --listen port + i and is advertised on the
--advertise port + i. Topics are created on first use unless --auto-create=false.
--max-version 3.0 makes the brokers advertise and accept only the request
versions of that Kafka release, so that a backend upgrade can be rehearsed by
restarting the process on its --data-dir with a newer release; it applies to
every broker of the process at once.

`)
		fs.PrintDefaults()
	}
	c := brokerConfig{}
	fs.StringVar(&c.listen, "listen", "127.0.0.1:9092", "address of the first broker (HOST:PORT; the next brokers take the next ports; with port 0 each broker takes a free port, printed on stdout)")
	fs.StringVar(&c.advertise, "advertise", "", "address clients are told for the first broker (default: --listen; required when --listen is 0.0.0.0)")
	fs.IntVar(&c.brokers, "brokers", 1, fmt.Sprintf("brokers in the cluster (1 to %d)", brokerMaxBrokers))
	fs.StringVar(&c.dataDir, "data-dir", "", "directory that keeps topics, records and groups across restarts (default: memory only)")
	fs.StringVar(&c.clusterID, "cluster-id", "switchyard-dev", "cluster id the broker reports in Metadata")
	fs.IntVar(&c.partitions, "partitions", 3, "partitions of an auto-created topic")
	fs.BoolVar(&c.autoCreate, "auto-create", true, "create a topic when a client asks for it in Metadata with auto-creation on (kcat, librdkafka and most producers do)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.maxVersion, "max-version", "", "a Kafka release (3.0, 3.9.1, 4.0, ...) whose request versions cap what the brokers advertise and accept (default: kfake's newest)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("broker: unexpected argument %q", fs.Arg(0))
	}
	log, err := newLogger(stderr, c.logLevel)
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	addrs, err := c.plan()
	if err != nil {
		return err
	}
	return serveBroker(ctx, c, addrs, log.With("component", "broker"), stdout)
}

func serveBroker(ctx context.Context, c brokerConfig, addrs []brokerAddrs, log *slog.Logger, stdout io.Writer) error {
	// kfake asks for 127.0.0.1:PORT; the port says which broker it is. With
	// port 0 every broker asks for 127.0.0.1:0, and kfake opens the brokers'
	// listeners one after another in broker order, so the call order does.
	byPort := map[int]brokerAddrs{}
	ports := make([]int, len(addrs))
	for i, a := range addrs {
		_, p, _ := splitPort("--listen", a.listen)
		ports[i] = p
		byPort[p] = a
	}
	anyPort := 0 // listeners opened on port 0 so far
	listen := func(network, address string) (net.Listener, error) {
		_, p, err := splitPort("--listen", address)
		if err != nil {
			return nil, err
		}
		a, ok := byPort[p]
		if p == 0 {
			if anyPort >= len(addrs) {
				return nil, fmt.Errorf("broker: %d brokers planned, asked for another listener", len(addrs))
			}
			a, ok = addrs[anyPort], true
			anyPort++
		}
		if !ok {
			return nil, fmt.Errorf("broker: no broker planned on port %d", p)
		}
		ln, err := net.Listen(network, a.listen)
		if err != nil {
			return nil, fmt.Errorf("broker: listen on %s: %w", a.listen, err)
		}
		if a.advertise == "" {
			return ln, nil
		}
		return advertisedListener{Listener: ln, addr: hostPortAddr(a.advertise)}, nil
	}
	opts := []kfake.Opt{
		kfake.Ports(ports...), kfake.ListenFn(listen), kfake.ClusterID(c.clusterID),
		kfake.DefaultNumPartitions(c.partitions),
	}
	if c.autoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if c.dataDir != "" {
		opts = append(opts, kfake.DataDir(c.dataDir))
	}
	if v, _ := c.versions(); v != nil { // checked by plan
		opts = append(opts, kfake.MaxVersions(v))
	}
	cl, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("broker: start: %w", err)
	}
	for i, a := range cl.ListenAddrs() {
		fmt.Fprintf(stdout, "broker %d: listening on %s, advertised as %s\n", i, addrs[i].listen, a)
	}
	log.Info("dev broker cluster running", "brokers", len(addrs), "cluster_id", c.clusterID, "data_dir", c.dataDir, "max_version", c.maxVersion)
	<-ctx.Done()
	cl.Close()
	fmt.Fprintln(stdout, "broker: stopped")
	return nil
}
