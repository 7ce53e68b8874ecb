package compat

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// TestSarama produces through one peer with an idempotent IBM/sarama
// producer and consumes with a three-member sarama consumer group, each
// member bootstrapped on a different peer, at an old and a recent
// protocol version.
func TestSarama(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version sarama.KafkaVersion
	}{
		{"V2_1_0_0", sarama.V2_1_0_0},
		{"V3_6_0_0", sarama.V3_6_0_0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testSarama(t, tc.version, "sarama-"+tc.name)
		})
	}
}

func saramaConfig(version sarama.KafkaVersion, clientID string) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = version
	cfg.ClientID = clientID
	cfg.Metadata.Retry.Max = 10
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	return cfg
}

// saramaGroupConfig is the configuration of a consumer group member that
// starts at the oldest offset and auto-commits what its handler marks.
func saramaGroupConfig(version sarama.KafkaVersion, clientID string) *sarama.Config {
	cfg := saramaConfig(version, clientID)
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = true
	cfg.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = 10 * time.Second
	cfg.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	cfg.Consumer.Group.Rebalance.Retry.Backoff = 200 * time.Millisecond
	cfg.Consumer.MaxWaitTime = 250 * time.Millisecond
	return cfg
}

func testSarama(t *testing.T, version sarama.KafkaVersion, name string) {
	sb := startSandbox(t)
	topic, group := name+"-topic", name+"-group"
	createTopic(t, sb.Bootstrap, topic, numPartitions)

	saramaProduce(t, version, sb.Bootstrap[0], topic)

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	// Members process nothing until the group is stable with all three of
	// them: otherwise the first member to join may take every record
	// before the others arrive, and the test would not show several
	// members sharing the work.
	h := &saramaHandler{gate: make(chan struct{}), done: make(chan struct{}), byMember: map[string]int{}}
	var (
		wg     sync.WaitGroup
		groups []sarama.ConsumerGroup
		once   sync.Once
	)
	// Closing a member ends its session: the handler's Cleanup commits and
	// sarama flushes the marked offsets before the member leaves the group.
	shutdown := func() {
		once.Do(func() {
			cancel()
			closeConcurrently(t, groups)
			wg.Wait()
		})
	}
	defer shutdown()
	for i, addr := range sb.Bootstrap {
		cfg := saramaGroupConfig(version, fmt.Sprintf("%s-consumer-%d", name, i))
		g, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
		if err != nil {
			t.Fatalf("consumer group member %d on %s: %v", i, addr, err)
		}
		groups = append(groups, g)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for err := range g.Errors() {
				t.Logf("member %d: consumer group error: %v", i, err)
			}
		}()
		go func() {
			defer wg.Done()
			// Each rebalance ends a session (eager range assignor); keep
			// rejoining until every record is in.
			for ctx.Err() == nil {
				if err := g.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
					if errors.Is(err, sarama.ErrClosedConsumerGroup) {
						return
					}
					t.Logf("member %d: consume: %v", i, err)
				}
			}
		}()
	}

	waitGroupStable(t, sb, group, topic, len(groups))
	close(h.gate)

	select {
	case <-h.done:
	case <-ctx.Done():
	}
	// Members close concurrently: one that is still in JoinGroup gets its
	// answer only once the others leave or the rebalance times out.
	shutdown()

	h.mu.Lock()
	recs, byMember := h.recs, h.byMember
	h.mu.Unlock()
	t.Logf("records per member: %v", byMember)
	if len(recs) < numRecords {
		t.Fatalf("timed out: consumed %d of %d records", len(recs), numRecords)
	}
	if len(byMember) != len(groups) {
		t.Errorf("%d of %d members consumed records: %v", len(byMember), len(groups), byMember)
	}
	checkConsumed(t, recs, numRecords)
	checkBackend(t, sb, topic, group, numRecords)
}

// saramaProducerConfig is the configuration of an idempotent acks=all
// producer hashing keys to partitions that returns every success and error.
func saramaProducerConfig(version sarama.KafkaVersion, clientID string) *sarama.Config {
	cfg := saramaConfig(version, clientID)
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Retry.Max = 10
	cfg.Producer.Retry.Backoff = 100 * time.Millisecond
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Partitioner = sarama.NewHashPartitioner
	return cfg
}

// saramaProduce writes records 0..numRecords-1 in order with an idempotent
// async producer bootstrapped on one peer only.
func saramaProduce(t *testing.T, version sarama.KafkaVersion, bootstrap, topic string) {
	t.Helper()
	cfg := saramaProducerConfig(version, "sarama-producer")
	cfg.Producer.Flush.Messages = 200
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	p, err := sarama.NewAsyncProducer([]string{bootstrap}, cfg)
	if err != nil {
		t.Fatalf("new producer: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results := make(chan error, 1)
	go func() {
		var acked, failed int
		var first error
		for acked+failed < numRecords {
			select {
			case <-p.Successes():
				acked++
			case perr := <-p.Errors():
				failed++
				if first == nil {
					first = perr
				}
			case <-ctx.Done():
				results <- fmt.Errorf("%d acked, %d failed: %w", acked, failed, ctx.Err())
				return
			}
		}
		if first != nil {
			results <- fmt.Errorf("%d of %d records failed, first: %w", failed, numRecords, first)
			return
		}
		results <- nil
	}()
send:
	for i := range numRecords {
		select {
		case p.Input() <- &sarama.ProducerMessage{
			Topic: topic,
			Key:   sarama.StringEncoder(recordKey(i)),
			Value: sarama.StringEncoder(recordValue(i)),
		}:
		case <-ctx.Done():
			break send
		}
	}
	err = <-results
	// AsyncClose drains; the result loop above has already consumed every
	// success and error, so nothing is left to block on.
	if cerr := p.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// saramaHandler collects records across all members of a group.
type saramaHandler struct {
	gate     chan struct{} // closed once the group is stable
	mu       sync.Mutex
	recs     []consumed
	byMember map[string]int // records per member id
	done     chan struct{}  // closed once want (default numRecords) are in
	want     int
}

func (h *saramaHandler) Setup(sarama.ConsumerGroupSession) error { return nil }

// Cleanup commits what this session marked before the member rejoins or
// leaves, so the next owner of a partition starts right after it.
func (h *saramaHandler) Cleanup(s sarama.ConsumerGroupSession) error {
	s.Commit()
	return nil
}

func (h *saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	select {
	case <-s.Context().Done():
		return nil
	case <-h.gate:
	}
	for {
		select {
		case <-s.Context().Done():
			return nil
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.mu.Lock()
			h.recs = append(h.recs, consumed{
				Topic:     m.Topic,
				Partition: m.Partition,
				Offset:    m.Offset,
				Key:       string(m.Key),
				Value:     string(m.Value),
			})
			h.byMember[s.MemberID()]++
			if want := cmp.Or(h.want, numRecords); len(h.recs) == want {
				close(h.done)
			}
			h.mu.Unlock()
			s.MarkMessage(m, "")
		}
	}
}
