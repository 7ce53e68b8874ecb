package compat

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/sandbox"
)

// produceFranz writes records from..to-1 through bootstrap with an
// idempotent acks=all producer.
func produceFranz(t *testing.T, bootstrap []string, topic string, from, to int, opts ...kgo.Opt) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(bootstrap...),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := from; i < to; i++ {
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Key: []byte(recordKey(i)), Value: []byte(recordValue(i))}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("produce: %v", firstErr)
	}
}

// consumeGroup runs members group members (member i bootstrapped on peer
// i mod peers) until n records arrived, committing as it goes, and returns
// what they saw.
func consumeGroup(t *testing.T, sb *sandbox.Sandbox, topic, group string, members, n int, opts ...kgo.Opt) []consumed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var (
		mu   sync.Mutex
		recs []consumed
		done = make(chan struct{})
		once sync.Once
		wg   sync.WaitGroup
	)
	for m := range members {
		cl, err := kgo.NewClient(append([]kgo.Opt{
			kgo.SeedBrokers(sb.Bootstrap[m%len(sb.Bootstrap)]),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(),
			kgo.FetchMaxWait(200 * time.Millisecond),
		}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cl.Close()
			for {
				select {
				case <-done:
					return
				default:
				}
				pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
				fs := cl.PollFetches(pctx)
				pcancel()
				if ctx.Err() != nil {
					cl.AllowRebalance()
					return
				}
				fs.EachError(func(topic string, p int32, err error) {
					if err != context.DeadlineExceeded {
						t.Logf("member %d fetch error %s/%d: %v", m, topic, p, err)
					}
				})
				var got []consumed
				fs.EachRecord(func(r *kgo.Record) {
					got = append(got, consumed{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), Value: string(r.Value)})
				})
				if len(got) == 0 {
					cl.AllowRebalance()
					continue
				}
				// Commit before allowing a rebalance (BlockRebalanceOnPoll),
				// so the next owner of a partition starts after these records.
				if err := cl.CommitUncommittedOffsets(ctx); err != nil {
					t.Logf("member %d commit: %v", m, err)
				}
				cl.AllowRebalance()
				mu.Lock()
				recs = append(recs, got...)
				if len(recs) >= n {
					once.Do(func() { close(done) })
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	once.Do(func() { close(done) })
	wg.Wait()
	return recs
}

func TestFranzGoGroup(t *testing.T) {
	sb := startSandbox(t)
	const topic, group = "franz-group", "franz-group-g"
	createTopic(t, sb.Bootstrap[:1], topic, numPartitions)
	produceFranz(t, sb.Bootstrap[:1], topic, 0, numRecords)
	// The cooperative-sticky balancer keeps partitions owned through a
	// rebalance, so members joining one by one do not re-read records.
	recs := consumeGroup(t, sb, topic, group, 3, numRecords,
		kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.BlockRebalanceOnPoll())
	checkConsumed(t, recs, numRecords)
	checkBackend(t, sb, topic, group, numRecords)

	// A restarted member resumes at the committed offsets: it sees only
	// records produced after the group's commits.
	produceFranz(t, sb.Bootstrap[1:2], topic, numRecords, numRecords+100)
	more := consumeGroup(t, sb, topic, group, 1, 100)
	if len(more) != 100 {
		t.Fatalf("restarted member saw %d records, want the 100 new ones", len(more))
	}
	for _, r := range more {
		if r.Value < recordValue(numRecords) {
			t.Fatalf("restarted member re-read %s", r.Value)
		}
	}
}

func TestFranzGoTransactions(t *testing.T) {
	sb := startSandbox(t)
	const topic, group = "franz-txn", "franz-txn-g"
	createTopic(t, sb.Bootstrap[:1], topic, numPartitions)

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(sb.Bootstrap[0]),
		kgo.DefaultProduceTopic(topic),
		kgo.TransactionalID("switchyard-txn"),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Ten committed transactions of 1,000 records; between them, one
	// aborted transaction whose records a read_committed consumer must
	// never see.
	const perTxn = 1000
	next := 0
	for txn := 0; txn < 11; txn++ {
		abort := txn == 5
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < perTxn; i++ {
			v := recordValue(next)
			k := recordKey(next)
			if abort {
				v, k = "aborted", "aborted"
			} else {
				next++
			}
			cl.Produce(ctx, &kgo.Record{Key: []byte(k), Value: []byte(v)}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(!abort)); err != nil {
			t.Fatalf("end transaction %d: %v", txn, err)
		}
	}
	if next != numRecords {
		t.Fatalf("produced %d committed records, want %d", next, numRecords)
	}
	recs := consumeGroup(t, sb, topic, group, 2, numRecords,
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.BlockRebalanceOnPoll())
	for _, r := range recs {
		if r.Value == "aborted" {
			t.Fatalf("read_committed consumer saw an aborted record at %d/%d", r.Partition, r.Offset)
		}
	}
	checkConsumed(t, recs, numRecords)

	// Committed offsets reach the end (past the last commit marker).
	_, adm := direct(t, sb)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	// The last record of each partition is a commit marker the consumer
	// never returns: the committed offset is the end or one before it.
	waitCommitted(t, adm, topic, group, ends, 1)
}

// TestClientConnectsOnlyToPeers bootstraps on one peer and checks that the
// client ends up connected to every peer and never dials a backend broker.
func TestClientConnectsOnlyToPeers(t *testing.T) {
	sb := startSandbox(t)
	const topic = "peers-only"
	createTopic(t, sb.Bootstrap[:1], topic, 12)
	var mu sync.Mutex
	dialed := map[string]bool{}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	dial := kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
		mu.Lock()
		dialed[host] = true
		mu.Unlock()
		return dialer.DialContext(ctx, network, host)
	})
	produceFranz(t, sb.Bootstrap[:1], topic, 0, 2000, dial)
	recs := consumeGroup(t, sb, topic, "peers-only-g", 1, 2000, dial)
	checkConsumed(t, recs, 2000)

	mu.Lock()
	defer mu.Unlock()
	for _, b := range sb.Backend.ListenAddrs() {
		if dialed[b] {
			t.Errorf("client dialed backend broker %s", b)
		}
	}
	for _, p := range sb.Bootstrap {
		if !dialed[p] {
			t.Errorf("client never connected to peer %s (dialed %v)", p, dialed)
		}
	}
	for a := range dialed {
		if !slices.Contains(sb.Bootstrap, a) {
			t.Errorf("client dialed %s, which is not a peer", a)
		}
	}
}
