package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestServePeerAdmissionSettings: the gossip key file and the admission
// settings come from the config file and from flags, and reach node.Config.
func TestServePeerAdmissionSettings(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "peer.json")
	conf := `{"name": "a1", "data_dir": "` + dir + `", "bootstrap_expect": 3,
		"gossip_key_file": "/etc/switchyard/gossip.key", "allow_peer": ["a2", "a3"], "admit_unproven_peers": true}`
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := defaultServeConfig()
	if err := loadConfigFile(file, &cfg); err != nil {
		t.Fatal(err)
	}
	nc, err := cfg.nodeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if nc.GossipKeyFile != "/etc/switchyard/gossip.key" || !slices.Equal(nc.AllowPeers, []string{"a2", "a3"}) || !nc.AdmitUnproven {
		t.Fatalf("from the file: key file %q, allow %v, admit unproven %v", nc.GossipKeyFile, nc.AllowPeers, nc.AdmitUnproven)
	}

	cfg = defaultServeConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	serveFlags(fs, &cfg)
	args := "--name a1 --data-dir " + dir + " --bootstrap-expect 3 --gossip-key-file /k --allow-peer a2,a3 --allow-peer a4"
	if err := fs.Parse(strings.Fields(args)); err != nil {
		t.Fatal(err)
	}
	if nc, err = cfg.nodeConfig(); err != nil {
		t.Fatal(err)
	}
	if nc.GossipKeyFile != "/k" || !slices.Equal(nc.AllowPeers, []string{"a2", "a3", "a4"}) || nc.AdmitUnproven {
		t.Fatalf("from flags: key file %q, allow %v, admit unproven %v", nc.GossipKeyFile, nc.AllowPeers, nc.AdmitUnproven)
	}

	cfg.AllowPeers = []string{"bad name"}
	if _, err := cfg.nodeConfig(); err == nil || !strings.Contains(err.Error(), "allow-peer") {
		t.Fatalf("a bad --allow-peer name: %v", err)
	}
}

// TestServeMetadataAndLagSettings: listings from the metadata snapshot are
// off unless asked for (file key or flag), and the lag poll is on every
// 30 s unless turned off; both reach node.Config.
func TestServeMetadataAndLagSettings(t *testing.T) {
	dir := t.TempDir()
	cfg := defaultServeConfig()
	cfg.Name, cfg.DataDir, cfg.BootstrapExpect = "a1", dir, 1
	nc, err := cfg.nodeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if nc.MetadataListFromBackend || nc.GroupLagInterval != 30*time.Second {
		t.Fatalf("defaults: list from backend %v, lag interval %v; want false (from the snapshot), 30s", nc.MetadataListFromBackend, nc.GroupLagInterval)
	}

	file := filepath.Join(dir, "peer.json")
	conf := `{"name": "a1", "data_dir": "` + dir + `", "bootstrap_expect": 1, "metadata_list_from_snapshot": false, "group_lag_interval": "0"}`
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = defaultServeConfig()
	if err := loadConfigFile(file, &cfg); err != nil {
		t.Fatal(err)
	}
	if nc, err = cfg.nodeConfig(); err != nil {
		t.Fatal(err)
	}
	if !nc.MetadataListFromBackend || nc.GroupLagInterval != 0 {
		t.Fatalf("from the file: list from backend %v, lag interval %v; want true, 0", nc.MetadataListFromBackend, nc.GroupLagInterval)
	}

	cfg = defaultServeConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	serveFlags(fs, &cfg)
	if err := fs.Parse(strings.Fields("--name a1 --data-dir " + dir + " --bootstrap-expect 1 --metadata-list-from-snapshot=false --group-lag-interval 1m")); err != nil {
		t.Fatal(err)
	}
	if nc, err = cfg.nodeConfig(); err != nil {
		t.Fatal(err)
	}
	if !nc.MetadataListFromBackend || nc.GroupLagInterval != time.Minute {
		t.Fatalf("from flags: list from backend %v, lag interval %v; want true, 1m", nc.MetadataListFromBackend, nc.GroupLagInterval)
	}
}
