package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestServeAuthzSettings: --kafka-super-users and --kafka-allow-if-no-acl
// come from flags and the config file and reach node.Config; a super user
// that is not User:NAME is refused.
func TestServeAuthzSettings(t *testing.T) {
	dir := t.TempDir()
	cfg := defaultServeConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	serveFlags(fs, &cfg)
	if err := fs.Parse(strings.Fields("--name a1 --bootstrap-expect 1 --data-dir " + dir + " --kafka-super-users User:admin,User:ops --kafka-super-users User:root --kafka-allow-if-no-acl")); err != nil {
		t.Fatal(err)
	}
	nc, err := cfg.nodeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(nc.KafkaAuthz.SuperUsers, []string{"User:admin", "User:ops", "User:root"}) || !nc.KafkaAuthz.AllowIfNoACL {
		t.Fatalf("from flags: %+v", nc.KafkaAuthz)
	}

	file := filepath.Join(dir, "peer.json")
	conf := `{"name": "a1", "bootstrap_expect": 1, "data_dir": "` + dir + `", "kafka_super_users": ["User:admin"], "kafka_allow_if_no_acl": false}`
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
	if !slices.Equal(nc.KafkaAuthz.SuperUsers, []string{"User:admin"}) || nc.KafkaAuthz.AllowIfNoACL {
		t.Fatalf("from the file: %+v", nc.KafkaAuthz)
	}
	if nc.KafkaAuthz.AllowIfNoACL != defaultServeConfig().KafkaAllowIfNoACL {
		t.Fatal("allow-if-no-acl must default to false")
	}

	cfg.KafkaSuperUsers = []string{"admin"}
	if _, err := cfg.nodeConfig(); err == nil || !strings.Contains(err.Error(), "super") {
		t.Fatalf("a super user without User:: %v", err)
	}
}
