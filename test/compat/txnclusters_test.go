package compat

// Transactions follow their partitions: two kfake clusters, east (the
// default) and west ("west." topics), and no group or transactional-id
// route. A transaction runs on the cluster of the partitions it writes;
// only one that spans clusters is refused (INVALID_PRODUCER_ID_MAPPING,
// which clients answer by aborting the transaction and going on).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// txnProducer is a franz-go transactional producer through bootstrap.
func txnProducer(t *testing.T, bootstrap []string, txnID string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap...),
		kgo.TransactionalID(txnID),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// txnWrite runs one transaction writing values to topic and ends it with
// commit or abort; it fails the test on any error.
func txnWrite(t *testing.T, cl *kgo.Client, topic string, commit bool, values ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatalf("begin: %v", err)
	}
	for _, v := range values {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce %s to %s in a transaction: %v", v, topic, err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("end transaction on %s (commit %v): %v", topic, commit, err)
	}
}

// committedValues reads topics from the start with read_committed through
// bootstrap until want values arrived (then a second more, for anything
// that should not be there) and returns them sorted.
func committedValues(t *testing.T, bootstrap []string, want int, topics ...string) []string {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap...),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	for len(got) < want && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	extra, xcancel := context.WithTimeout(context.Background(), time.Second)
	cl.PollFetches(extra).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	xcancel()
	slices.Sort(got)
	return got
}

func values(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%04d", prefix, i))
	}
	return out
}

// TestTxnOnSecondCluster: a transactional producer writing only to west
// topics (no route for its transactional id, which would home it on east)
// commits; a read_committed consumer sees exactly the committed records,
// an aborted transaction stays invisible, and the records are on west.
func TestTxnOnSecondCluster(t *testing.T) {
	sb := startTwoClusters(t)
	const topic = "west.txn-only"
	createTopic(t, sb.Bootstrap, topic, 3)
	cl := txnProducer(t, sb.Bootstrap, "txn-west-only")
	txnWrite(t, cl, topic, true, values("a", 0, 30)...)
	txnWrite(t, cl, topic, false, values("b", 0, 20)...)
	txnWrite(t, cl, topic, true, values("c", 0, 30)...)

	want := append(values("a", 0, 30), values("c", 0, 30)...)
	if got := committedValues(t, sb.Bootstrap, len(want), topic); !slices.Equal(got, want) {
		t.Fatalf("read_committed through the proxy: %d records %v, want the %d committed ones", len(got), got, len(want))
	}
	// On west itself (not through the proxy) the same: the transaction
	// ran there, markers included.
	if got := committedValues(t, sb.Backends["west"].ListenAddrs(), len(want), topic); !slices.Equal(got, want) {
		t.Fatalf("read_committed on west directly: %d records, want %d", len(got), len(want))
	}
	_, east := directTo(t, sb, "east")
	if slices.Contains(topicsOn(t, east), topic) {
		t.Fatalf("%s exists on east", topic)
	}
}

// TestTxnSpanningClustersRefused: a transaction that writes west and then
// east is refused on the second cluster with
// INVALID_PRODUCER_ID_MAPPING and aborts cleanly (nothing of it visible); the same producer's next
// transaction may run on east.
func TestTxnSpanningClustersRefused(t *testing.T) {
	sb := startTwoClusters(t)
	const west, east = "west.span", "span-east"
	createTopic(t, sb.Bootstrap, west, 2)
	createTopic(t, sb.Bootstrap, east, 2)
	cl := txnProducer(t, sb.Bootstrap, "txn-span")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: west, Value: []byte("spanned-west")}).FirstErr(); err != nil {
		t.Fatalf("first partition of the transaction (west): %v", err)
	}
	// Described through the proxy: running, on west's partition, with the
	// producer id the client knows.
	d, err := kadm.NewClient(cl).DescribeTransactions(ctx, "txn-span")
	if err != nil {
		t.Fatal(err)
	}
	id, _, _ := cl.ProducerID(ctx)
	if st := d["txn-span"]; st.State != "Ongoing" || st.ProducerID != id || len(st.Topics[west]) != 1 {
		t.Fatalf("described through the proxy: %+v, want Ongoing on %s with producer id %#x", st, west, id)
	}
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: east, Value: []byte("spanned-east")}).FirstErr()
	if !errors.Is(err, kerr.InvalidProducerIDMapping) {
		t.Fatalf("a partition on a second cluster in one transaction: %v, want INVALID_PRODUCER_ID_MAPPING", err)
	}
	if err := cl.AbortBufferedRecords(ctx); err != nil {
		t.Logf("abort buffered: %v", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatalf("abort the refused transaction: %v", err)
	}
	// The next transactions: on east, then on west again.
	txnWrite(t, cl, east, true, values("east", 0, 10)...)
	txnWrite(t, cl, west, true, values("west", 0, 10)...)

	want := append(values("east", 0, 10), values("west", 0, 10)...)
	slices.Sort(want)
	if got := committedValues(t, sb.Bootstrap, len(want), west, east); !slices.Equal(got, want) {
		t.Fatalf("read_committed: %v, want %v (the spanning transaction aborted)", got, want)
	}
}

// TestTxnFencedOnEveryCluster: a second producer with the same
// transactional id fences the first, on the cluster both wrote to and on
// the other one; the second commits.
func TestTxnFencedOnEveryCluster(t *testing.T) {
	sb := startTwoClusters(t)
	const west, east = "west.fence", "fence-east"
	createTopic(t, sb.Bootstrap, west, 2)
	createTopic(t, sb.Bootstrap, east, 2)
	first := txnProducer(t, sb.Bootstrap, "txn-fence")
	txnWrite(t, first, west, true, "first-0")

	second := txnProducer(t, sb.Bootstrap, "txn-fence")
	txnWrite(t, second, west, true, "second-0")

	fenced := func(err error) bool {
		return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := first.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	err := first.ProduceSync(ctx, &kgo.Record{Topic: east, Value: []byte("zombie-east")}).FirstErr()
	if !fenced(err) {
		t.Fatalf("the fenced producer writing east (where it never wrote): %v, want PRODUCER_FENCED", err)
	}
	_ = first.EndTransaction(ctx, kgo.TryAbort)
	txnWrite(t, second, east, true, "second-1")

	want := []string{"first-0", "second-0", "second-1"}
	if got := committedValues(t, sb.Bootstrap, len(want), west, east); !slices.Equal(got, want) {
		t.Fatalf("read_committed: %v, want %v", got, want)
	}
}

// TestFranzGoTxnLoopOnSecondCluster: the exactly-once consume-transform-
// produce loop (GroupTransactSession) with its input and output on west;
// the group's membership lives on east (its home), its offsets on west,
// committed in the transaction.
func TestFranzGoTxnLoopOnSecondCluster(t *testing.T) {
	sb := startTwoClusters(t)
	testFranzTxnLoop(t, sb, sb.Bootstrap, westPrefix+"eos")
}

// TestRdkafkaTxnLoopOnSecondCluster: librdkafka's loop, the same way.
func TestRdkafkaTxnLoopOnSecondCluster(t *testing.T) {
	sb := startTwoClusters(t)
	testRdkafkaTxnLoop(t, sb, sb.Bootstrap, westPrefix+"rdk-eos")
}

// TestTxnEpochsLevelled: a transactional id already used on east (its
// epoch there ahead) gets one epoch through the proxy: west is bumped up
// to east's, the client sees that epoch and the proxy's virtual producer
// id, and a transaction on west commits.
func TestTxnEpochsLevelled(t *testing.T) {
	sb := startTwoClusters(t)
	const txnID, topic = "txn-level", "west.level"
	createTopic(t, sb.Bootstrap, topic, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	eastCl, eastAdm := directTo(t, sb, "east")
	for range 4 {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = kmsg.StringPtr(txnID), 30000
		resp, err := req.RequestWith(ctx, eastCl)
		if err != nil || resp.ErrorCode != 0 {
			t.Fatalf("init on east directly: %v %v", err, resp)
		}
	}
	cl := txnProducer(t, sb.Bootstrap, txnID)
	txnWrite(t, cl, topic, true, "levelled")
	id, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, westAdm := directTo(t, sb, "west")
	var real []kadm.DescribedTransaction
	for _, adm := range []*kadm.Client{eastAdm, westAdm} {
		d, err := adm.DescribeTransactions(ctx, txnID)
		if err != nil {
			t.Fatal(err)
		}
		real = append(real, d[txnID])
	}
	t.Logf("client sees producer %#x epoch %d; east %d/%d, west %d/%d", id, epoch,
		real[0].ProducerID, real[0].ProducerEpoch, real[1].ProducerID, real[1].ProducerEpoch)
	if real[0].ProducerEpoch != epoch || real[1].ProducerEpoch != epoch || epoch < 4 {
		t.Fatalf("epochs: client %d, east %d, west %d: want one epoch, at least east's 4", epoch, real[0].ProducerEpoch, real[1].ProducerEpoch)
	}
	if id>>56 != 1 {
		t.Fatalf("client producer id %#x is not the proxy's virtual one", id)
	}
	if got := committedValues(t, sb.Bootstrap, 1, topic); !slices.Equal(got, []string{"levelled"}) {
		t.Fatalf("read_committed: %v", got)
	}
}

// TestTxnOffsetsOnOtherClusterRefused: a consume-transform-produce session
// reading east and writing west would commit its offsets on east and its
// records on west, which no single transaction can hold: the offset
// commit is refused, the transaction does not commit, and nothing of it is
// visible.
func TestTxnOffsetsOnOtherClusterRefused(t *testing.T) {
	sb := startTwoClusters(t)
	const in, out = "cross-in", "west.cross-out"
	createTopic(t, sb.Bootstrap, in, 1)
	createTopic(t, sb.Bootstrap, out, 1)
	produceFranz(t, sb.Bootstrap, in, 0, 10)
	s, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(sb.Bootstrap...),
		kgo.TransactionalID("txn-cross"),
		kgo.DefaultProduceTopic(out),
		kgo.ConsumerGroup("cross-g"),
		kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) == 0 && ctx.Err() == nil {
		recs = s.PollFetches(ctx).Records()
	}
	if len(recs) == 0 {
		t.Fatal("no input records")
	}
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		s.Produce(ctx, &kgo.Record{Value: r.Value}, nil)
	}
	committed, err := s.End(ctx, kgo.TryCommit)
	t.Logf("end: committed %v, err %v", committed, err)
	if committed {
		t.Fatal("a transaction with records on west and offsets on east committed")
	}
	// A committed marker after it: read_committed reads up to it, so
	// anything of the refused transaction would show before it.
	txnWrite(t, txnProducer(t, sb.Bootstrap, "txn-cross-marker"), out, true, "marker")
	if got := committedValues(t, sb.Bootstrap, 1, out); !slices.Equal(got, []string{"marker"}) {
		t.Fatalf("read_committed on %s: %v, want only the marker", out, got)
	}
}

// TestTxnFollowsMovedTopic: a transactional producer keeps going when its
// topic's route moves to the other cluster: the transactions after the
// move run on west, with no route for the transactional id.
func TestTxnFollowsMovedTopic(t *testing.T) {
	sb := startTwoClusters(t)
	const topic = "moving-txn"
	createTopic(t, sb.Bootstrap, topic, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	westCl, west := directTo(t, sb, "west")
	if _, err := west.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	// West's partition holds a record already, as after a migration: a
	// broker refuses a producer's continued sequence into a partition
	// that never held one (KAFKA-15591), transactions or not.
	if err := westCl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("copied")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl := txnProducer(t, sb.Bootstrap, "txn-moving")
	txnWrite(t, cl, topic, true, "before")
	if _, err := sb.Apply(ctx, &fsm.PutRoute{Topic: topic, Cluster: "west"}); err != nil {
		t.Fatal(err)
	}
	// Every peer applies the route; a transaction begun on a peer that
	// has not yet would still run on east, which is right for that peer.
	waitFor(t, 20*time.Second, "west holds a committed record written after the move", func() bool {
		txnWrite(t, cl, topic, true, "after")
		got := committedValues(t, sb.Backends["west"].ListenAddrs(), 1, topic)
		return slices.Contains(got, "after")
	})
}
