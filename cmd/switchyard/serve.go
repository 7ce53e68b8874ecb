package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/node"
)

// serveConfig is the peer's configuration; every field is a flag and a key
// of the JSON config file (flags given on the command line win).
type serveConfig struct {
	NodeID          int32    `json:"node_id"`
	Name            string   `json:"name"`
	Region          string   `json:"region"`
	KafkaListen     string   `json:"kafka_listen"`
	KafkaAdvertise  string   `json:"kafka_advertise"`
	AdminListen     string   `json:"admin_listen"`
	Cluster         string   `json:"cluster"`
	Backend         []string `json:"backend"`
	LocalBrokers    []string `json:"local_brokers"`
	Peers           []string `json:"peers"`
	ClusterID       string   `json:"cluster_id"`
	MetadataRefresh string   `json:"metadata_refresh"`
	MaxFrameBytes   int32    `json:"max_frame_bytes"`
	MaxTopicSeries  int      `json:"max_topic_series"`
	LogLevel        string   `json:"log_level"`
}

type listFlag struct{ v *[]string }

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}
func (l listFlag) Set(s string) error {
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			*l.v = append(*l.v, x)
		}
	}
	return nil
}

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	cfg := serveConfig{
		KafkaListen:     "127.0.0.1:9092",
		AdminListen:     "127.0.0.1:18080",
		Cluster:         "default",
		MetadataRefresh: "10s",
		LogLevel:        "info",
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "JSON config file; its keys are the flag names with _ for -")
	var cli serveConfig
	fs.Func("node-id", "this peer's broker id (an integer >= 0)", func(s string) error {
		v, err := strconv.ParseInt(s, 10, 32)
		cli.NodeID = int32(v)
		return err
	})
	fs.StringVar(&cli.Name, "name", "", "peer name (default peer-<node-id>)")
	fs.StringVar(&cli.Region, "region", "", "region/AZ, presented to clients as the broker rack")
	fs.StringVar(&cli.KafkaListen, "kafka-listen", "", "Kafka listen address (default 127.0.0.1:9092)")
	fs.StringVar(&cli.KafkaAdvertise, "kafka-advertise", "", "Kafka address clients use (default: the listen address)")
	fs.StringVar(&cli.AdminListen, "admin-listen", "", "admin HTTP address (default 127.0.0.1:18080)")
	fs.StringVar(&cli.Cluster, "cluster", "", "backend cluster name (default \"default\")")
	fs.Var(listFlag{&cli.Backend}, "backend", "backend bootstrap host:port (repeatable or comma-separated)")
	fs.Var(listFlag{&cli.LocalBrokers}, "local-broker", "CLUSTER:BROKER_ID of a backend broker on this host (repeatable)")
	fs.Var(listFlag{&cli.Peers}, "peer", "ID=host:port of another peer's advertised Kafka address (repeatable); until the control plane lands, peers are static")
	fs.StringVar(&cli.ClusterID, "cluster-id", "", "cluster id presented to clients (default: the backend's)")
	fs.StringVar(&cli.MetadataRefresh, "metadata-refresh", "", "backend metadata refresh period (default 10s)")
	fs.Func("max-frame-bytes", "largest client request accepted (default 104857600)", func(s string) error {
		v, err := strconv.ParseInt(s, 10, 32)
		cli.MaxFrameBytes = int32(v)
		return err
	})
	fs.Func("max-topic-series", "per-topic metric series cap (default 1000)", func(s string) error {
		v, err := strconv.Atoi(s)
		cli.MaxTopicSeries = v
		return err
	})
	fs.StringVar(&cli.LogLevel, "log-level", "", "debug, info, warn or error (default info)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if *configFile != "" {
		if err := loadConfigFile(*configFile, &cfg); err != nil {
			return err
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	overlay(&cfg, &cli, set)

	log, err := newLogger(stderr, cfg.LogLevel)
	if err != nil {
		return err
	}
	ncfg, err := cfg.nodeConfig()
	if err != nil {
		return err
	}
	ncfg.Logger = log
	n, err := node.New(ncfg)
	if err != nil {
		return err
	}
	log.Info("switchyard peer starting", "version", version, "node", cfg.NodeID, "kafka", n.KafkaAddr(), "admin", n.AdminAddr())
	return n.Run(ctx)
}

// loadConfigFile reads a JSON config over cfg; unknown keys are errors so a
// typo never silently falls back to a default.
func loadConfigFile(path string, cfg *serveConfig) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("serve: read config: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return fmt.Errorf("serve: config %s: %w", path, err)
	}
	return nil
}

func overlay(cfg, cli *serveConfig, set map[string]bool) {
	if set["node-id"] {
		cfg.NodeID = cli.NodeID
	}
	str := map[string][2]*string{
		"name": {&cfg.Name, &cli.Name}, "region": {&cfg.Region, &cli.Region},
		"kafka-listen": {&cfg.KafkaListen, &cli.KafkaListen}, "kafka-advertise": {&cfg.KafkaAdvertise, &cli.KafkaAdvertise},
		"admin-listen": {&cfg.AdminListen, &cli.AdminListen}, "cluster": {&cfg.Cluster, &cli.Cluster},
		"cluster-id": {&cfg.ClusterID, &cli.ClusterID}, "metadata-refresh": {&cfg.MetadataRefresh, &cli.MetadataRefresh},
		"log-level": {&cfg.LogLevel, &cli.LogLevel},
	}
	for name, p := range str {
		if set[name] {
			*p[0] = *p[1]
		}
	}
	lists := map[string][2]*[]string{
		"backend": {&cfg.Backend, &cli.Backend}, "local-broker": {&cfg.LocalBrokers, &cli.LocalBrokers}, "peer": {&cfg.Peers, &cli.Peers},
	}
	for name, p := range lists {
		if set[name] {
			*p[0] = *p[1]
		}
	}
	if set["max-frame-bytes"] {
		cfg.MaxFrameBytes = cli.MaxFrameBytes
	}
	if set["max-topic-series"] {
		cfg.MaxTopicSeries = cli.MaxTopicSeries
	}
}

// nodeConfig turns the flat serve configuration into a static cluster view.
func (c *serveConfig) nodeConfig() (node.Config, error) {
	var nc node.Config
	if len(c.Backend) == 0 {
		return nc, errors.New("serve: no backend brokers: pass --backend host:port")
	}
	refresh, err := time.ParseDuration(c.MetadataRefresh)
	if err != nil {
		return nc, fmt.Errorf("serve: metadata refresh %q: %w", c.MetadataRefresh, err)
	}
	adv := c.KafkaAdvertise
	if adv == "" {
		adv = c.KafkaListen
	}
	name := c.Name
	if name == "" {
		name = "peer-" + strconv.Itoa(int(c.NodeID))
	}
	self := fsm.Peer{ID: c.NodeID, Name: name, Region: c.Region, KafkaAddr: adv, AdminAddr: c.AdminListen}
	for _, lb := range c.LocalBrokers {
		cl, id, ok := strings.Cut(lb, ":")
		if !ok {
			// A bare broker id names a broker of the one backend cluster.
			cl, id = c.Cluster, lb
		}
		v, err := strconv.ParseInt(id, 10, 32)
		if err != nil || v < 0 {
			return nc, fmt.Errorf("serve: local broker %q: want CLUSTER:BROKER_ID", lb)
		}
		self.LocalBrokers = append(self.LocalBrokers, fsm.BrokerRef{Cluster: cl, BrokerID: int32(v)})
	}
	st := &fsm.State{
		Clusters: []fsm.Cluster{{Name: c.Cluster, Bootstrap: c.Backend}},
		Peers:    []fsm.Peer{self},
	}
	for _, p := range c.Peers {
		ids, addr, ok := strings.Cut(p, "=")
		v, err := strconv.ParseInt(ids, 10, 32)
		if !ok || err != nil || v < 0 || addr == "" {
			return nc, fmt.Errorf("serve: peer %q: want ID=host:port", p)
		}
		if int32(v) == c.NodeID {
			continue
		}
		st.Peers = append(st.Peers, fsm.Peer{ID: int32(v), Name: "peer-" + ids, KafkaAddr: addr})
	}
	slices.SortFunc(st.Peers, func(a, b fsm.Peer) int { return int(a.ID) - int(b.ID) })
	nc = node.Config{
		NodeID:          c.NodeID,
		KafkaListen:     c.KafkaListen,
		AdminListen:     c.AdminListen,
		State:           st,
		ClusterID:       c.ClusterID,
		MetadataRefresh: refresh,
		MaxFrameBytes:   c.MaxFrameBytes,
		MaxTopicSeries:  c.MaxTopicSeries,
	}
	return nc, nil
}
