package compat

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/switchyard-proxy/switchyard/sandbox"
)

// TestKafkaGo produces through one peer with a segmentio/kafka-go Writer
// and consumes with a three-member kafka-go consumer group, each reader
// bootstrapped on a different peer, committing synchronously.
func TestKafkaGo(t *testing.T) {
	sb := startSandbox(t)
	const topic, group = "kafkago-topic", "kafkago-group"
	createTopic(t, sb.Bootstrap, topic, numPartitions)

	// Generous: 10,000 synchronous commits through the proxy; a run with
	// two other CI suites on the machine had consumed 7,728 after 45 s
	// (kafka-go's reads timing out and redialling on the starved peers).
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The readers join first and the records are written only once the
	// group is stable with all three members. kafka-go delivers records
	// still buffered from a revoked generation and commits them afterwards
	// (see Reader.unsubscribe), so consuming across a rebalance may
	// legitimately redeliver records or move a committed offset backwards;
	// a stable group makes exactly-once delivery the only correct outcome.
	var (
		mu       sync.Mutex
		recs     []consumed
		byReader = map[int]int{}
		done     = make(chan struct{})
		wg       sync.WaitGroup
	)
	readers := make([]*kafka.Reader, len(sb.Bootstrap))
	for i, addr := range sb.Bootstrap {
		readers[i] = kafkaGoReader(t, addr, group, topic, fmt.Sprintf("reader %d", i))
	}
	// Readers close concurrently, so none sits in a JoinGroup waiting
	// for a member that is about to leave.
	var closeOnce sync.Once
	closeReaders := func() { closeOnce.Do(func() { closeConcurrently(t, readers) }) }
	defer closeReaders()

	waitGroupStable(t, sb, group, topic, len(readers))

	for i, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("reader %d: fetch: %v", i, err)
					}
					return
				}
				if err := r.CommitMessages(ctx, m); err != nil {
					if ctx.Err() == nil {
						t.Errorf("reader %d: commit offset %d of partition %d: %v", i, m.Offset, m.Partition, err)
					}
					return
				}
				// Counted only once committed, so when the last record is
				// in, every offset is committed.
				mu.Lock()
				recs = append(recs, consumed{
					Partition: int32(m.Partition),
					Offset:    m.Offset,
					Key:       string(m.Key),
					Value:     string(m.Value),
				})
				byReader[i]++
				if len(recs) == numRecords {
					close(done)
				}
				mu.Unlock()
			}
		}()
	}

	w := kafkaGoWriter(t, sb.Bootstrap[0], topic)
	msgs := make([]kafka.Message, numRecords)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte(recordKey(i)), Value: []byte(recordValue(i))}
	}
	werr := w.WriteMessages(ctx, msgs...)
	if cerr := w.Close(); cerr != nil && werr == nil {
		werr = cerr
	}
	if werr != nil {
		var we kafka.WriteErrors
		if errors.As(werr, &we) {
			werr = fmt.Errorf("%d of %d messages failed: %w", we.Count(), len(msgs), werr)
		}
		cancel()
		wg.Wait()
		t.Fatalf("write: %v", werr)
	}

	select {
	case <-done:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	closeReaders()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("records per reader: %v", byReader)
	if len(recs) < numRecords {
		t.Fatalf("timed out: consumed %d of %d records", len(recs), numRecords)
	}
	if len(byReader) != len(readers) {
		t.Errorf("%d of %d readers consumed records: %v", len(byReader), len(readers), byReader)
	}
	checkConsumed(t, recs, numRecords)
	checkBackend(t, sb, topic, group, numRecords)
}

// kafkaGoReader is a kafka-go consumer group member bootstrapped on addr,
// starting at the earliest offset when group has no commit and committing
// synchronously (CommitMessages), logging to t as name.
func kafkaGoReader(t testing.TB, addr, group, topic, name string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:           []string{addr},
		GroupID:           group,
		Topic:             topic,
		StartOffset:       kafka.FirstOffset,
		CommitInterval:    0, // synchronous commits: committed offsets are exact
		MinBytes:          1,
		MaxBytes:          1 << 20,
		MaxWait:           250 * time.Millisecond,
		HeartbeatInterval: 500 * time.Millisecond,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		JoinGroupBackoff:  200 * time.Millisecond,
		ReadBackoffMin:    50 * time.Millisecond,
		ReadBackoffMax:    250 * time.Millisecond,
		ErrorLogger: kafka.LoggerFunc(func(format string, args ...any) {
			t.Logf(name+": "+format, args...)
		}),
	})
}

// kafkaGoWriter is a kafka-go Writer to topic through addr, hashing keys
// to partitions. kafka-go's Writer has no idempotent mode: a retried batch
// whose first attempt did land would be written twice (checkConsumed would
// report it). Batches of one partition are written one at a time, in
// order, so per-partition order holds.
func kafkaGoWriter(t testing.TB, addr, topic string) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(addr),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    500,
		BatchTimeout: 10 * time.Millisecond,
		MaxAttempts:  10,
		ErrorLogger: kafka.LoggerFunc(func(format string, args ...any) {
			t.Logf("writer: "+format, args...)
		}),
	}
}

// waitGroupStable waits until group, as the backend sees it, is stable
// with members members that between them own every partition of topic.
func waitGroupStable(t testing.TB, sb *sandbox.Sandbox, group, topic string, members int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, adm := direct(t, sb)
	waitFor(t, 30*time.Second, fmt.Sprintf("group %s stable with %d members owning every partition", group, members), func() bool {
		described, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return false
		}
		g, ok := described[group]
		if !ok || g.Err != nil || g.State != "Stable" || len(g.Members) != members {
			return false
		}
		return len(g.AssignedPartitions()[topic]) == numPartitions
	})
}
