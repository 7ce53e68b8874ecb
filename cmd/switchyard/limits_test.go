package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/kafka"
	"github.com/switchyard-proxy/switchyard/node"
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
		QueuedMaxRequestBytes: kafka.DefaultQueuedMaxRequestBytes, FetchSessionSlots: kafka.DefaultFetchSessionSlots,
		ParkIdleAfter: kafka.DefaultParkIdleAfter, UpstreamIdleClose: kafka.DefaultUpstreamIdleClose}
	if def != want {
		t.Fatalf("defaults %+v, want %+v", def, want)
	}
	got, err := parse(`{"kafka_max_connections": 100, "kafka_connections_max_idle": "1m"}`,
		"--kafka-max-connections-per-ip", "10", "--kafka-max-connection-creation-rate", "2.5",
		"--kafka-frame-read-timeout", "0", "--kafka-queued-max-request-bytes", "-1", "--kafka-connections-max-idle", "2m",
		"--kafka-park-idle-after", "0", "--kafka-upstream-idle-close", "5m")
	if err != nil {
		t.Fatal(err)
	}
	want = kafka.Limits{MaxConnections: 100, MaxConnectionsPerIP: 10, MaxConnectionCreationRate: 2.5,
		ConnectionsMaxIdle: 2 * time.Minute, FrameReadTimeout: -1, QueuedMaxRequestBytes: -1, FetchSessionSlots: kafka.DefaultFetchSessionSlots,
		ParkIdleAfter: -1, UpstreamIdleClose: 5 * time.Minute}
	if got != want {
		t.Fatalf("limits %+v, want %+v", got, want)
	}
	for _, bad := range [][]string{
		{"--kafka-max-connections", "-1"},
		{"--kafka-max-connections-per-ip", "-3"},
		{"--kafka-max-connection-creation-rate", "-1"},
		{"--kafka-connections-max-idle", "soon"},
		{"--kafka-park-idle-after", "-1s"},
		{"--kafka-upstream-idle-close", "later"},
		{"--kafka-frame-read-timeout", "-5s"},
		{"--kafka-queued-max-request-bytes", "0"},
	} {
		if _, err := parse("", bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// serveNodeConfig builds node.Config from a config file's text (none when
// empty) and flags, as serve does.
func serveNodeConfig(t *testing.T, file string, args ...string) (node.Config, error) {
	t.Helper()
	dir := t.TempDir()
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
	return cfg.nodeConfig()
}

// TestServeTableLimits: the bounds of the tables clients grow (coordinator
// cache, producer id mappings) reach kafka.Limits from the file and from
// flags; 0 keeps kafka's default and a negative bound is refused.
func TestServeTableLimits(t *testing.T) {
	nc, err := serveNodeConfig(t, "")
	if err != nil {
		t.Fatal(err)
	}
	l := nc.KafkaLimits
	if l.CoordinatorCacheSize != 0 || l.CoordinatorCacheTTL != 0 || l.ProducerIDMappings != 0 || l.ProducerIDIdle != 0 ||
		l.ProducerIDProtect != 0 || l.MaxProducerIDsPerConn != 0 {
		t.Fatalf("defaults %+v: want zeros (kafka's defaults)", l)
	}
	nc, err = serveNodeConfig(t, `{"kafka_coordinator_cache_size": 500, "kafka_coordinator_cache_ttl": "1m",
		"kafka_producer_id_mappings": 1000, "kafka_max_producer_ids_per_connection": 8}`,
		"--kafka-producer-id-idle", "10m", "--kafka-producer-id-protect", "5s", "--kafka-coordinator-cache-size", "700")
	if err != nil {
		t.Fatal(err)
	}
	l = nc.KafkaLimits
	if l.CoordinatorCacheSize != 700 || l.CoordinatorCacheTTL != time.Minute || l.ProducerIDMappings != 1000 ||
		l.ProducerIDIdle != 10*time.Minute || l.ProducerIDProtect != 5*time.Second || l.MaxProducerIDsPerConn != 8 {
		t.Fatalf("limits %+v", l)
	}
	for _, bad := range [][]string{
		{"--kafka-coordinator-cache-size", "-1"},
		{"--kafka-coordinator-cache-ttl", "-1s"},
		{"--kafka-producer-id-mappings", "-5"},
		{"--kafka-producer-id-idle", "later"},
		{"--kafka-producer-id-protect", "-1m"},
		{"--kafka-max-producer-ids-per-connection", "-1"},
	} {
		if _, err := serveNodeConfig(t, "", bad...); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: %v, want an error naming the flag", bad, err)
		}
	}
}

// TestServeBackendLimits: the backend broker timeout and response bound
// reach node.Config from the file and from flags, and out-of-range values
// are refused.
func TestServeBackendLimits(t *testing.T) {
	nc, err := serveNodeConfig(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if nc.BackendBrokerTimeout != 0 || nc.BackendMaxResponseBytes != 0 {
		t.Fatalf("defaults: timeout %v, max response %d; want 0 (kafka's defaults)", nc.BackendBrokerTimeout, nc.BackendMaxResponseBytes)
	}
	nc, err = serveNodeConfig(t, `{"backend_broker_timeout": "2s", "backend_max_response_bytes": 1048576}`)
	if err != nil {
		t.Fatal(err)
	}
	if nc.BackendBrokerTimeout != 2*time.Second || nc.BackendMaxResponseBytes != 1<<20 {
		t.Fatalf("from the file: timeout %v, max response %d", nc.BackendBrokerTimeout, nc.BackendMaxResponseBytes)
	}
	nc, err = serveNodeConfig(t, `{"backend_broker_timeout": "2s"}`, "--backend-broker-timeout", "750ms", "--backend-max-response-bytes", "2097152")
	if err != nil {
		t.Fatal(err)
	}
	if nc.BackendBrokerTimeout != 750*time.Millisecond || nc.BackendMaxResponseBytes != 2<<20 {
		t.Fatalf("from flags: timeout %v, max response %d", nc.BackendBrokerTimeout, nc.BackendMaxResponseBytes)
	}
	for _, bad := range [][]string{
		{"--backend-broker-timeout", "-1s"},
		{"--backend-broker-timeout", "soon"},
		{"--backend-max-response-bytes", "-1"},
		{"--backend-max-response-bytes", fmt.Sprint(kafka.MaxResponseLimit + 1)},
	} {
		if _, err := serveNodeConfig(t, "", bad...); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: %v, want an error naming the flag", bad, err)
		}
	}
}

// TestServeAdminLimits: the admin listener's limits default to
// node.DefaultAdminLimits and are set from the file and from flags; a
// limit cannot be turned off, and a body cap above what the API reads is
// refused.
func TestServeAdminLimits(t *testing.T) {
	nc, err := serveNodeConfig(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if nc.Admin != node.DefaultAdminLimits() {
		t.Fatalf("defaults %+v, want %+v", nc.Admin, node.DefaultAdminLimits())
	}
	nc, err = serveNodeConfig(t, `{"admin_read_header_timeout": "2s", "admin_read_timeout": "5s", "admin_max_header_bytes": 8192}`,
		"--admin-write-timeout", "90s", "--admin-idle-timeout", "30s", "--admin-max-body-bytes", "4096", "--admin-read-timeout", "7s")
	if err != nil {
		t.Fatal(err)
	}
	want := node.AdminLimits{ReadHeaderTimeout: 2 * time.Second, ReadTimeout: 7 * time.Second, WriteTimeout: 90 * time.Second,
		IdleTimeout: 30 * time.Second, MaxHeaderBytes: 8192, MaxBodyBytes: 4096}
	if nc.Admin != want {
		t.Fatalf("admin limits %+v, want %+v", nc.Admin, want)
	}
	for _, bad := range [][]string{
		{"--admin-read-header-timeout", "0"},
		{"--admin-read-timeout", "-1s"},
		{"--admin-write-timeout", "never"},
		{"--admin-idle-timeout", "0s"},
		{"--admin-max-header-bytes", "0"},
		{"--admin-max-body-bytes", "-1"},
	} {
		if _, err := serveNodeConfig(t, "", bad...); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: %v, want an error naming the flag", bad, err)
		}
	}
	if _, err := serveNodeConfig(t, "", "--admin-max-body-bytes", "1048577"); err == nil || !strings.Contains(err.Error(), "admin max body bytes") {
		t.Errorf("a body cap above 1 MiB: %v", err)
	}
}
