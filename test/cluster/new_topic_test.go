package cluster

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// lockedBuffer is a bytes.Buffer safe for the client's logger goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestNewTopicThroughOtherPeers: three peers, each presenting one broker
// of a three-broker kfake cluster, refreshing their metadata only every
// minute. A topic is created on the cluster, and a franz-go client that
// knows only peer 0 produces to every partition at once: its Metadata
// through peer 0 names the topic, and its Produce v13 (topics by id)
// reaches peers 1 and 2 before they have seen it. They wait
// for their metadata instead of answering UNKNOWN_TOPIC_ID, which made
// the client back off and retry (docs/benchmarks.md, "A new topic through
// the other peers"): every record is written and the client's log shows
// no such answer.
func TestNewTopicThroughOtherPeers(t *testing.T) {
	c := newCluster(t, clusterOpts{peers: 3, brokers: 3, metadataRefresh: time.Minute})
	c.leader(30 * time.Second)
	c.waitApplied(c.putBackend(0), 20*time.Second)
	waitFor(t, 60*time.Second, "every peer serves clients", func() error {
		for i := range c.peers {
			if err := c.peers[i].n.Ready(); err != nil {
				return err
			}
		}
		return nil
	})

	var log lockedBuffer
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.peers[0].kafka),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.WithLogger(kgo.BasicLogger(&log, kgo.LogLevelDebug, nil)),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic, partitions = "fresh", 6
	// Created on the cluster, as through another peer or another tool:
	// only the peers that pass a Metadata answer naming it learn of it
	// before their next refresh.
	if _, err := kadmClient(t, c.backend.ListenAddrs()[0]).CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatalf("create %s on the cluster: %v", topic, err)
	}
	var recs []*kgo.Record
	for p := range int32(partitions) {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte("v")})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to every partition of %s: %v", topic, err)
	}
	out := log.String()
	if !strings.Contains(out, "Produce v13") {
		t.Fatalf("the client never sent Produce v13, which names topics by id: the test tests nothing\n%s", out)
	}
	if n := strings.Count(out, "UNKNOWN_TOPIC_ID"); n > 0 {
		t.Fatalf("the client was answered UNKNOWN_TOPIC_ID %d times for a topic just created\n%s", n, out)
	}
}
