package node

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/kafka"
)

// TestBackendConfigCarriesLimits: the backend limits set on the peer reach
// every backend it starts (they used to stay at kafka's defaults whatever
// was configured), and out-of-range values are refused.
func TestBackendConfigCarriesLimits(t *testing.T) {
	n := &Node{cfg: Config{MetadataRefresh: 3 * time.Second, BackendBrokerTimeout: 1500 * time.Millisecond, BackendMaxResponseBytes: 4 << 20}}
	bc := n.backendConfig(fsm.Cluster{Name: "main", Bootstrap: []string{"127.0.0.1:9093"}})
	if bc.Name != "main" || len(bc.Bootstrap) != 1 || bc.MetadataRefresh != 3*time.Second ||
		bc.BrokerTimeout != 1500*time.Millisecond || bc.MaxResponseBytes != 4<<20 {
		t.Fatalf("backend config %+v", bc)
	}
	if err := bc.Validate(); err != nil {
		t.Fatal(err)
	}
	base := Config{Name: "p", DataDir: "d", KafkaListen: "a", RaftListen: "b", GossipListen: "c", BootstrapExpect: 1}
	for _, c := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"negative broker timeout", func(c *Config) { c.BackendBrokerTimeout = -time.Second }, "backend broker timeout"},
		{"negative response bound", func(c *Config) { c.BackendMaxResponseBytes = -1 }, "backend max response bytes"},
		{"response bound over the limit", func(c *Config) { c.BackendMaxResponseBytes = kafka.MaxResponseLimit + 1 }, "backend max response bytes"},
		{"admin body over the backstop", func(c *Config) { c.Admin.MaxBodyBytes = maxBody + 1 }, "admin max body bytes"},
		{"negative admin timeout", func(c *Config) { c.Admin.IdleTimeout = -time.Second }, "admin timeouts"},
	} {
		cfg := base
		c.edit(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %s", c.name, err, c.want)
		}
	}
	if err := base.Validate(); err != nil {
		t.Fatalf("the base config: %v", err)
	}
}
