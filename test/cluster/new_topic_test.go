package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// produceWatch is a franz-go logger that counts the Produce v13 requests
// the client wrote and keeps the log lines that name UNKNOWN_TOPIC_ID.
type produceWatch struct {
	v13     atomic.Int64
	mu      sync.Mutex
	unknown []string
}

func (*produceWatch) Level() kgo.LogLevel { return kgo.LogLevelDebug }

func (w *produceWatch) Log(_ kgo.LogLevel, msg string, keyvals ...any) {
	if strings.HasPrefix(msg, "wrote Produce v13") {
		w.v13.Add(1)
	}
	if line := strings.TrimSpace(fmt.Sprintln(append([]any{msg}, keyvals...)...)); strings.Contains(line, "UNKNOWN_TOPIC_ID") {
		w.mu.Lock()
		w.unknown = append(w.unknown, line)
		w.mu.Unlock()
	}
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

	var watch produceWatch
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.peers[0].kafka),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.WithLogger(&watch),
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
	if watch.v13.Load() == 0 {
		t.Fatal("the client never sent Produce v13, which names topics by id: the test tests nothing")
	}
	watch.mu.Lock()
	defer watch.mu.Unlock()
	if n := len(watch.unknown); n > 0 {
		t.Fatalf("the client was answered UNKNOWN_TOPIC_ID for a topic just created (%d log lines), first: %s", n, watch.unknown[0])
	}
}
