package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/kafka"
)

// TestServeKafkaLimits: the client connection limits reach node.Config
// from flags and from the config file, 0 durations turn a limit off, and
// the defaults are kafka's.
func TestServeKafkaLimits(t *testing.T) {
	dir := t.TempDir()
	parse := func(file string, args ...string) (kafka.Limits, error) {
		t.Helper()
		cfg := defaultServeConfig()
		if file != "" {
			path := filepath.Join(dir, "peer.json")
			if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := loadConfigFile(path, &cfg); err != nil {
				t.Fatal(err)
			}
		}
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		serveFlags(fs, &cfg)
		base := []string{"--data-dir", dir, "--name", "p", "--bootstrap-expect", "1"}
		if err := fs.Parse(append(base, args...)); err != nil {
			t.Fatal(err)
		}
		nc, err := cfg.nodeConfig()
		return nc.KafkaLimits, err
	}
	def, err := parse("")
	if err != nil {
		t.Fatal(err)
	}
	want := kafka.Limits{ConnectionsMaxIdle: kafka.DefaultConnectionsMaxIdle, FrameReadTimeout: kafka.DefaultFrameReadTimeout,
		QueuedMaxRequestBytes: kafka.DefaultQueuedMaxRequestBytes}
	if def != want {
		t.Fatalf("defaults %+v, want %+v", def, want)
	}
	got, err := parse(`{"kafka_max_connections": 100, "kafka_connections_max_idle": "1m"}`,
		"--kafka-max-connections-per-ip", "10", "--kafka-max-connection-creation-rate", "2.5",
		"--kafka-frame-read-timeout", "0", "--kafka-queued-max-request-bytes", "-1", "--kafka-connections-max-idle", "2m")
	if err != nil {
		t.Fatal(err)
	}
	want = kafka.Limits{MaxConnections: 100, MaxConnectionsPerIP: 10, MaxConnectionCreationRate: 2.5,
		ConnectionsMaxIdle: 2 * time.Minute, FrameReadTimeout: -1, QueuedMaxRequestBytes: -1}
	if got != want {
		t.Fatalf("limits %+v, want %+v", got, want)
	}
	for _, bad := range [][]string{
		{"--kafka-max-connections", "-1"},
		{"--kafka-max-connections-per-ip", "-3"},
		{"--kafka-max-connection-creation-rate", "-1"},
		{"--kafka-connections-max-idle", "soon"},
		{"--kafka-frame-read-timeout", "-5s"},
		{"--kafka-queued-max-request-bytes", "0"},
	} {
		if _, err := parse("", bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
