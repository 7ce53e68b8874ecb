package compat

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/sandbox"
)

// warnLog collects what a franz-go client logs at warn level and above,
// and routes it to t.Log.
type warnLog struct {
	t  testing.TB
	mu sync.Mutex
	ls []string
}

func (w *warnLog) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	w.t.Log(line)
	w.mu.Lock()
	w.ls = append(w.ls, line)
	w.mu.Unlock()
	return len(p), nil
}

// matching returns the logged lines that contain s.
func (w *warnLog) matching(s string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, l := range w.ls {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// txnRec is one record a transactional producer wrote: its transaction,
// partition and value.
type txnRec struct {
	txn       int
	partition int32
	value     string
}

// txnRunner commits (and every third time aborts) small transactions
// over the partitions of topic until stop is closed, recording each
// transaction's records and whether it committed. A transaction whose
// produce fails (a refusal the client takes as abortable) is aborted.
type txnRunner struct {
	mu        sync.Mutex
	committed map[int]bool
	recs      []txnRec // in produce order
	errs      []string
	txns      int
}

func (tp *txnRunner) run(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, parts int32, stop <-chan struct{}) {
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		if ctx.Err() != nil {
			return
		}
		if err := cl.BeginTransaction(); err != nil {
			t.Errorf("begin transaction %d: %v", n, err)
			return
		}
		var recs []txnRec
		var perr error
		for k := 0; k < 4; k++ {
			p := int32(k) % parts
			v := fmt.Sprintf("t%05d-%d", n, k)
			recs = append(recs, txnRec{n, p, v})
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
				perr = err
				break
			}
		}
		commit := kgo.TryCommit
		if perr != nil || n%3 == 2 {
			commit = kgo.TryAbort
		}
		if perr != nil {
			// The records of a transaction whose produce failed are
			// aborted: they must never reach a read_committed reader.
			tp.mu.Lock()
			tp.errs = append(tp.errs, fmt.Sprintf("transaction %d: %v", n, perr))
			tp.mu.Unlock()
		}
		err := cl.EndTransaction(ctx, commit)
		tp.mu.Lock()
		tp.recs = append(tp.recs, recs...)
		tp.txns = n + 1
		if tp.committed == nil {
			tp.committed = map[int]bool{}
		}
		tp.committed[n] = err == nil && commit == kgo.TryCommit
		tp.mu.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("end transaction %d (commit %v): %v", n, commit == kgo.TryCommit, err)
			}
			return
		}
	}
}

// count returns how many transactions have ended.
func (tp *txnRunner) count() int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.txns
}

// readRecs is what a consumer read, per partition, in order.
type readRecs struct {
	mu  sync.Mutex
	got map[int32][]consumed
}

func (rr *readRecs) n(p int32) int {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return len(rr.got[p])
}

func (rr *readRecs) last(p int32) int64 {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if len(rr.got[p]) == 0 {
		return -1
	}
	return rr.got[p][len(rr.got[p])-1].Offset
}

// consumeInto polls cl into rr until ctx ends.
func consumeInto(ctx context.Context, t *testing.T, cl *kgo.Client, rr *readRecs) {
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(tp string, p int32, err error) {
			if ctx.Err() == nil {
				t.Logf("fetch %s/%d: %v", tp, p, err)
			}
		})
		rr.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			rr.got[r.Partition] = append(rr.got[r.Partition], consumed{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Value: string(r.Value)})
		})
		rr.mu.Unlock()
	}
}

// TestMigrationTransactions: a transactional producer commits (and
// aborts) transactions continuously through a switch east → west and
// back. A read_committed consumer, running throughout, reads every
// record of every committed transaction exactly once, in order, and none
// of an aborted one; a read_uncommitted consumer sees offsets that are
// contiguous apart from the transaction markers; the records written
// after the switch are on west. No franz-go client logs a fetch answer
// for a topic it did not ask for.
func TestMigrationTransactions(t *testing.T) {
	sb := startTwoClusters(t)
	const topic, parts = "txnmig", 2
	proxy := sb.Bootstrap
	createTopic(t, proxy, topic, parts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	logs := &warnLog{t: t}
	logger := kgo.WithLogger(kgo.BasicLogger(logs, kgo.LogLevelWarn, nil))
	prod, err := kgo.NewClient(kgo.SeedBrokers(proxy...), kgo.TransactionalID("txnmig-producer"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionTimeout(30*time.Second), logger)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	consumer := func(level kgo.IsolationLevel) (*kgo.Client, *readRecs) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(proxy...), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level),
			kgo.FetchMaxWait(200*time.Millisecond), logger)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl, &readRecs{got: map[int32][]consumed{}}
	}
	committedCl, committed := consumer(kgo.ReadCommitted())
	uncommittedCl, uncommitted := consumer(kgo.ReadUncommitted())
	cctx, ccancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, c := range []struct {
		cl *kgo.Client
		rr *readRecs
	}{{committedCl, committed}, {uncommittedCl, uncommitted}} {
		wg.Add(1)
		go func() { defer wg.Done(); consumeInto(cctx, t, c.cl, c.rr) }()
	}

	tp := &txnRunner{}
	stop := make(chan struct{})
	produced := make(chan struct{})
	go func() { defer close(produced); tp.run(ctx, t, prod, topic, parts, stop) }()
	progress := func(what string) {
		from := tp.count()
		waitFor(t, 30*time.Second, what, func() bool { return tp.count() >= from+6 || t.Failed() })
	}
	progress("transactions before the switch")
	bases := migrate(t, sb, topic, "west", parts)
	t.Logf("east → west bases %v", bases)
	progress("transactions after the switch to west")
	// Back to east: the live consumers read west's segment past its start
	// before east's first segment is retired.
	waitFor(t, 30*time.Second, "the consumers past the first bases", func() bool {
		for p := range int32(parts) {
			if uncommitted.last(p) < bases[p] || committed.last(p) < bases[p] {
				return false
			}
		}
		return true
	})
	finishMigration(t, sb, topic)
	waitFor(t, 30*time.Second, "the first migration finished", func() bool {
		m, ok := getMigration(t, sb, 1, topic)
		return ok && m.State == "finished"
	})
	backBases := migrate(t, sb, topic, "east", parts)
	t.Logf("west → east bases %v", backBases)
	progress("transactions after the switch back to east")
	close(stop)
	<-produced
	if t.Failed() {
		ccancel()
		wg.Wait()
		return
	}

	// What each partition must hold for a read_committed reader.
	tp.mu.Lock()
	want := map[int32][]string{}
	txnOf := map[string]int{}
	for _, r := range tp.recs {
		txnOf[r.value] = r.txn
		if tp.committed[r.txn] {
			want[r.partition] = append(want[r.partition], r.value)
		}
	}
	ntxn, nerr := tp.txns, len(tp.errs)
	tp.mu.Unlock()
	t.Logf("%d transactions, %d of them failed a produce and aborted", ntxn, nerr)
	waitFor(t, 30*time.Second, "the read_committed consumer to read every committed record", func() bool {
		for p := range int32(parts) {
			if committed.n(p) < len(want[p]) {
				return false
			}
		}
		return true
	})
	// The read_uncommitted consumer reaches the same end offsets.
	waitFor(t, 30*time.Second, "the read_uncommitted consumer to catch up", func() bool {
		for p := range int32(parts) {
			if uncommitted.last(p) < committed.last(p) {
				return false
			}
		}
		return true
	})
	time.Sleep(500 * time.Millisecond) // anything extra would show now
	ccancel()
	wg.Wait()

	onWest := map[int32]int{}
	for p := range int32(parts) {
		for _, c := range uncommitted.got[p] {
			if c.Offset >= bases[p] && c.Offset < backBases[p] {
				onWest[p]++
			}
		}
	}
	westByOffset := westRecords(t, sb, topic, onWest)
	for p := range int32(parts) {
		got := committed.got[p]
		vals := make([]string, len(got))
		for k, c := range got {
			vals[k] = c.Value
		}
		if strings.Join(vals, ",") != strings.Join(want[p], ",") {
			t.Errorf("partition %d: read_committed read %d records %v,\nwant the %d committed %v", p, len(vals), vals, len(want[p]), want[p])
		}
		// read_uncommitted: every record once; offsets contiguous within a
		// transaction; between two transactions one marker for each
		// transaction that may have ended on the partition.
		at := map[string]int64{}
		all := uncommitted.got[p]
		for k, c := range all {
			if _, dup := at[c.Value]; dup {
				t.Errorf("partition %d: read_uncommitted read %q twice", p, c.Value)
			}
			at[c.Value] = c.Offset
			if k == 0 {
				continue
			}
			prev := all[k-1]
			gap := c.Offset - prev.Offset - 1
			switch tA, tB := txnOf[prev.Value], txnOf[c.Value]; {
			case tA == tB && gap != 0:
				t.Errorf("partition %d: transaction %d's records at %d then %d, want contiguous", p, tA, prev.Offset, c.Offset)
			case tA != tB && (gap < 1 || gap > int64(tB-tA)):
				t.Errorf("partition %d: %d offsets between transaction %d (%d) and %d (%d), want 1 to %d markers", p, gap, tA, prev.Offset, tB, c.Offset, tB-tA)
			}
		}
		for _, c := range got {
			if o, ok := at[c.Value]; !ok || o != c.Offset {
				t.Errorf("partition %d: %q read_committed at %d, read_uncommitted at %d (seen %v)", p, c.Value, c.Offset, o, ok)
			}
		}
		// West's segment holds exactly the records between the two switches.
		for _, c := range all {
			onWest, ok := westByOffset[p][c.Offset-bases[p]]
			switch inWest := c.Offset >= bases[p] && c.Offset < backBases[p]; {
			case inWest && (!ok || onWest != c.Value):
				t.Errorf("partition %d: %q at %d, west holds %q at %d", p, c.Value, c.Offset, onWest, c.Offset-bases[p])
			case !inWest && ok && onWest == c.Value:
				t.Errorf("partition %d: %q at %d is on west, outside its segment [%d, %d)", p, c.Value, c.Offset, bases[p], backBases[p])
			}
		}
		if n := int64(len(westByOffset[p])); n == 0 {
			t.Errorf("partition %d: no record on west", p)
		}
	}
	if bad := logs.matching("did not ask for"); len(bad) > 0 {
		t.Errorf("franz-go logged %d fetch answers for topics it did not ask for, first: %s", len(bad), bad[0])
	}
}

// westRecords reads topic directly on west, read_uncommitted, until
// each partition p has at least n[p] records: the values by physical
// offset.
func westRecords(t *testing.T, sb *sandbox.Sandbox, topic string, n map[int32]int) map[int32]map[int64]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Backends["west"].ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[int32]map[int64]string{}
	for p := range n {
		out[p] = map[int64]string{}
	}
	done := func() bool {
		for p, want := range n {
			if len(out[p]) < want {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading west: got %d records per partition, want %v", len(out[0]), n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if out[r.Partition] == nil {
				out[r.Partition] = map[int64]string{}
			}
			out[r.Partition][r.Offset] = string(r.Value)
		})
	}
	return out
}
