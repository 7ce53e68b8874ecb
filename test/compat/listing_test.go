package compat

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/sandbox"
)

// TestListingsFollowTopicChangesAcrossPeers: all-topics Metadata is
// answered from each peer's snapshot (the default), and a topic created or
// deleted through the proxy shows in every peer's listing within seconds,
// though the peers' periodic refresh is 10 minutes away: the peer that
// served the change gossips it, and the others refresh
// (kafka.Config.TopicsChanged, node/gossip.go).
func TestListingsFollowTopicChangesAcrossPeers(t *testing.T) {
	sb := startSandboxWith(t, sandbox.Config{Brokers: 3, Peers: 3, MetadataRefresh: 10 * time.Minute})
	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// Every peer, asked directly (not through the client's choice).
	listed := func(topic string) map[int]bool {
		t.Helper()
		out := map[int]bool{}
		for i, b := range cl.DiscoveredBrokers() {
			req := kmsg.NewPtrMetadataRequest() // Topics nil: all topics
			resp, err := b.Request(ctx, req)
			if err != nil {
				t.Fatalf("metadata from broker %d: %v", i, err)
			}
			for _, tp := range resp.(*kmsg.MetadataResponse).Topics {
				if tp.Topic != nil && *tp.Topic == topic && tp.ErrorCode == 0 {
					out[i] = true
				}
			}
		}
		return out
	}
	// A peer still joining (a loaded machine) is presented once it has
	// registered: wait for the three.
	waitFor(t, 60*time.Second, "the 3 peers presented", func() bool {
		if len(cl.DiscoveredBrokers()) == 3 {
			return true
		}
		cl.ForceMetadataRefresh()
		return false
	})
	// Warm every peer's snapshot first, so the listing below is answered
	// from it.
	listed("none")

	const topic = "listed-everywhere"
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "every peer lists the new topic", func() bool { return len(listed(topic)) == 3 })

	if _, err := kadm.NewClient(cl).DeleteTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "no peer lists the deleted topic", func() bool { return len(listed(topic)) == 0 })
}
