package compat

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/sandbox"
)

// TestSplitAcrossBrokers puts one peer in front of three brokers, so every
// partition-keyed request the client sends spans several backend brokers
// and takes the split/merge path.
func TestSplitAcrossBrokers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sb := startSandboxWith(t, sandbox.Config{Brokers: 3, Peers: 1})
	const topic, group = "split", "split-g"
	createTopic(t, sb.Bootstrap, topic, numPartitions)
	produceFranz(t, sb.Bootstrap, topic, 0, numRecords)
	recs := consumeGroup(t, sb, topic, group, 2, numRecords,
		kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.BlockRebalanceOnPoll())
	checkConsumed(t, recs, numRecords)
	checkBackend(t, sb, topic, group, numRecords)

	// ListOffsets and DeleteRecords across brokers, checked on the backend.
	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ends[topic]); n != numPartitions {
		t.Fatalf("ListOffsets through one peer answered %d partitions, want %d", n, numPartitions)
	}
	del := kadm.Offsets{}
	ends.Each(func(o kadm.ListedOffset) {
		del.Add(kadm.Offset{Topic: topic, Partition: o.Partition, At: o.Offset / 2})
	})
	dr, err := adm.DeleteRecords(ctx, del)
	if err != nil {
		t.Fatal(err)
	}
	if err := dr.Error(); err != nil {
		t.Fatal(err)
	}
	_, dadm := direct(t, sb)
	starts, err := dadm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	starts.Each(func(o kadm.ListedOffset) {
		e, _ := ends.Lookup(topic, o.Partition)
		if o.Offset != e.Offset/2 {
			t.Errorf("partition %d starts at %d on the backend, want %d", o.Partition, o.Offset, e.Offset/2)
		}
	})
}

// TestLeaderMovesUnderLoad moves partition leadership between backend
// brokers while an idempotent producer runs through the peers: the proxy
// follows the new leaders and every acknowledged record is on the backend
// exactly once.
func TestLeaderMovesUnderLoad(t *testing.T) {
	sb := startSandbox(t)
	const topic = "moving"
	createTopic(t, sb.Bootstrap[:1], topic, 3)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(sb.Bootstrap[0]),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.MetadataMinAge(100*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var acked atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	const total = 6000
	moved := make(chan struct{})
	go func() {
		defer close(moved)
		// Move each partition to the next broker three times, once a
		// share of the records has been acknowledged.
		for round := int64(1); round <= 3; round++ {
			waitFor(t, 30*time.Second, "records acknowledged before a move", func() bool { return acked.Load() >= round*total/4 })
			for p := int32(0); p < 3; p++ {
				to := (sb.Backend.LeaderFor(topic, p) + 1) % 3
				if err := sb.Backend.MoveTopicPartition(topic, p, to); err != nil {
					t.Errorf("move %s/%d to %d: %v", topic, p, to, err)
				}
			}
		}
	}()
	for i := 0; i < total; i++ {
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Key: []byte(recordKey(i)), Value: []byte(recordValue(i))}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			acked.Add(1)
		})
		if i%500 == 0 {
			// Pace the producer so the moves land mid-stream.
			if err := cl.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	<-moved
	if err, _ := firstErr.Load().(error); err != nil {
		t.Fatalf("produce failed across leader moves: %v", err)
	}
	dcl, _ := direct(t, sb)
	dcl.AddConsumeTopics(topic)
	var recs []consumed
	for len(recs) < total && ctx.Err() == nil {
		fs := dcl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, consumed{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), Value: string(r.Value)})
		})
	}
	checkConsumed(t, recs, total)
}
