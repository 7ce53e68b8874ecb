package compat

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/sandbox"
)

// The exactly-once consume-transform-produce loop: a read_committed group
// consumer whose offsets are committed inside the producer's transaction
// (TxnOffsetCommit), the shape Kafka Streams and every "EOS" pipeline use.

const txnLoopRecords = 2000

// transformed is what the loop writes for input value v.
func transformed(v string) string { return "out-" + v }

// runFranzTxnLoop runs one franz-go GroupTransactSession over bootstrap
// until it has committed transactions covering want input records: it
// consumes in with read_committed, writes each record transformed to out
// and commits the consumed offsets in the same transaction.
func runFranzTxnLoop(t *testing.T, bootstrap []string, in, out, group, txnID string, want int) {
	t.Helper()
	s, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(bootstrap...),
		kgo.TransactionalID(txnID),
		kgo.DefaultProduceTopic(out),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	done, aborted := 0, 0
	for done < want {
		fs := s.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("loop committed %d of %d input records (%d transactions aborted) before the deadline", done, want, aborted)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Logf("fetch %s/%d: %v", topic, p, err)
		})
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		if err := s.Begin(); err != nil {
			t.Fatalf("begin: %v", err)
		}
		for _, r := range recs {
			s.Produce(ctx, &kgo.Record{Key: r.Key, Value: []byte(transformed(string(r.Value)))}, nil)
		}
		committed, err := s.End(ctx, kgo.TryCommit)
		switch {
		case err != nil:
			t.Fatalf("end transaction after %d committed records: %v", done, err)
		case committed:
			done += len(recs)
		default:
			// Aborted (a rebalance, or a failed offset commit): the session
			// rewinds to the committed offsets and the records come again.
			aborted++
			if aborted > 20 {
				t.Fatalf("%d transactions aborted, %d of %d records committed: offsets are not committed in the transaction", aborted, done, want)
			}
		}
	}
	if done != want {
		t.Fatalf("loop committed %d input records, want %d (it re-read committed input)", done, want)
	}
}

// checkExactlyOnce consumes out with read_committed through bootstrap and
// checks that each of the n input records appears transformed exactly once.
func checkExactlyOnce(t *testing.T, bootstrap []string, out string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap...),
		kgo.ConsumeTopics(out),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seen := map[string]int{}
	total := 0
	for total < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Value)]++
			total++
		})
	}
	// Anything beyond n (a duplicate) arrives with the records; a short
	// wait for stragglers keeps the check honest without a sleep.
	extra, xcancel := context.WithTimeout(context.Background(), time.Second)
	cl.PollFetches(extra).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++; total++ })
	xcancel()
	var bad []string
	for i := range n {
		v := transformed(recordValue(i))
		if seen[v] != 1 {
			bad = append(bad, fmt.Sprintf("%s×%d", v, seen[v]))
		}
		delete(seen, v)
	}
	for v, c := range seen {
		bad = append(bad, fmt.Sprintf("unexpected %s×%d", v, c))
	}
	if len(bad) > 0 || total != n {
		if len(bad) > 10 {
			bad = append(bad[:10], "…")
		}
		t.Fatalf("output holds %d records, want each of %d exactly once: %s", total, n, strings.Join(bad, ", "))
	}
}

// testFranzTxnLoop produces the input in two halves, each processed by a
// fresh session: the second must start where the first one's transactional
// offset commits left off, so a lost offset commit shows as duplicates.
func testFranzTxnLoop(t *testing.T, sb *sandbox.Sandbox, bootstrap []string, prefix string) {
	in, out, group, txnID := prefix+"-in", prefix+"-out", prefix+"-g", prefix+"-txn"
	createTopic(t, sb.Bootstrap[:1], in, numPartitions)
	createTopic(t, sb.Bootstrap[:1], out, numPartitions)
	half := txnLoopRecords / 2
	produceFranz(t, bootstrap, in, 0, half)
	runFranzTxnLoop(t, bootstrap, in, out, group, txnID, half)
	produceFranz(t, bootstrap, in, half, txnLoopRecords)
	runFranzTxnLoop(t, bootstrap, in, out, group, txnID, txnLoopRecords-half)
	checkExactlyOnce(t, bootstrap, out, txnLoopRecords)
}

// TestFranzGoTxnLoopDirect runs the loop against the kfake backend itself:
// the baseline the proxy must match.
func TestFranzGoTxnLoopDirect(t *testing.T) {
	sb := startSandboxWith(t, sandbox.Config{Brokers: 3, Peers: 1})
	testFranzTxnLoop(t, sb, sb.Backend.ListenAddrs(), "eos-direct")
}

// TestFranzGoTxnLoop runs the loop through the proxy (three peers). It
// failed with UNKNOWN_TOPIC_ID while the proxy advertised TxnOffsetCommit
// v6, which names topics by (virtual) id.
func TestFranzGoTxnLoop(t *testing.T) {
	sb := startSandbox(t)
	testFranzTxnLoop(t, sb, sb.Bootstrap, "eos-proxy")
}

// runRdkafkaTxnLoop runs testdata/eosloop.py (librdkafka through Debian's
// python3-confluent-kafka) over bootstrap until transactions covering want
// input records committed.
func runRdkafkaTxnLoop(t *testing.T, bootstrap []string, in, out, group, txnID string, want int) {
	t.Helper()
	py := needCommand(t, pythonPath)
	script, err := filepath.Abs(filepath.Join("testdata", "eosloop.py"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, script, strings.Join(bootstrap, ","), in, out, group, txnID, strconv.Itoa(want), "90")
	cmd.Dir = "/" // our kafka/ folder must not shadow a Python module
	cmd.Env = append(cmd.Environ(), "PYTHONUNBUFFERED=1")
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	t.Logf("eosloop: %s", strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatalf("eosloop: %v (context: %v)\n%s", err, ctx.Err(), stderr.String())
	}
	var done, aborted int
	if _, err := fmt.Sscanf(stdout.String(), "committed %d aborted %d", &done, &aborted); err != nil || done != want {
		t.Fatalf("eosloop printed %q, want %d records committed\n%s", stdout.String(), want, stderr.String())
	}
}

// testRdkafkaTxnLoop is testFranzTxnLoop with librdkafka's loop.
func testRdkafkaTxnLoop(t *testing.T, sb *sandbox.Sandbox, bootstrap []string, prefix string) {
	in, out, group, txnID := prefix+"-in", prefix+"-out", prefix+"-g", prefix+"-txn"
	createTopic(t, sb.Bootstrap[:1], in, numPartitions)
	createTopic(t, sb.Bootstrap[:1], out, numPartitions)
	half := txnLoopRecords / 2
	produceFranz(t, bootstrap, in, 0, half)
	runRdkafkaTxnLoop(t, bootstrap, in, out, group, txnID, half)
	produceFranz(t, bootstrap, in, half, txnLoopRecords)
	runRdkafkaTxnLoop(t, bootstrap, in, out, group, txnID, txnLoopRecords-half)
	checkExactlyOnce(t, bootstrap, out, txnLoopRecords)
}

// TestRdkafkaTxnLoopDirect: librdkafka's send_offsets_to_transaction loop
// against the kfake backend itself.
func TestRdkafkaTxnLoopDirect(t *testing.T) {
	sb := startSandboxWith(t, sandbox.Config{Brokers: 3, Peers: 1})
	testRdkafkaTxnLoop(t, sb, sb.Backend.ListenAddrs(), "rdk-eos-direct")
}

// TestRdkafkaTxnLoop: the same loop through the proxy.
func TestRdkafkaTxnLoop(t *testing.T) {
	sb := startSandbox(t)
	testRdkafkaTxnLoop(t, sb, sb.Bootstrap, "rdk-eos-proxy")
}
