// Command kbackend is the backend Kafka cluster of one site in the two-site
// container test (test/sites): a kfake cluster of N brokers on fixed ports
// of one address, keeping its state in a data directory so that the
// container can be killed (docker kill, no chance to flush) and started
// again with what it had acknowledged.
//
// kfake advertises the host of each broker's listener, and listens on
// 127.0.0.1 unless told otherwise; -advertise makes every broker listen on
// that address (the container's address in its site's network), so the
// brokers name themselves by an address the peers can dial.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kbackend:", err)
		os.Exit(1)
	}
}

func run() error {
	advertise := flag.String("advertise", "", "address every broker listens on and advertises (required)")
	ports := flag.String("ports", "9092,9093,9094", "comma-separated broker ports, one broker each")
	dataDir := flag.String("data-dir", "/data", "directory the cluster persists its state in and reloads it from")
	clusterID := flag.String("cluster-id", "", "cluster id (default: kfake's)")
	partitions := flag.Int("partitions", 3, "partitions of each -topic")
	var topics stringList
	flag.Var(&topics, "topic", "topic to create if it does not exist (repeatable)")
	flag.Parse()
	if net.ParseIP(*advertise) == nil {
		return fmt.Errorf("-advertise must be an IP address, got %q", *advertise)
	}
	var ps []int
	for _, s := range strings.Split(*ports, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || p <= 0 || p > 65535 {
			return fmt.Errorf("bad port %q in -ports", s)
		}
		ps = append(ps, p)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(len(ps)),
		kfake.Ports(ps...),
		kfake.DataDir(*dataDir),
		// Each acknowledged batch is on disk before the ack: the test kills
		// the container and counts a lost acknowledged record as a failure.
		kfake.SyncWrites(),
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return net.Listen(network, net.JoinHostPort(*advertise, port))
		}),
	}
	if *clusterID != "" {
		opts = append(opts, kfake.ClusterID(*clusterID))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return err
	}
	for _, t := range topics {
		// After a restart the topic was reloaded from the data directory.
		if c.TopicInfo(t) == nil {
			if err := c.CreateTopic(t, int32(*partitions), nil); err != nil {
				c.Close()
				return fmt.Errorf("create topic %s: %w", t, err)
			}
		}
	}
	fmt.Printf("kbackend: brokers %s, data in %s\n", strings.Join(c.ListenAddrs(), ","), *dataDir)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	c.Close()
	return nil
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }
