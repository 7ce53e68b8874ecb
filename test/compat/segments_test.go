package compat

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/sandbox"
)

// migrationView is the part of GET /v1/migrations/{topic} the tests read.
type migrationView struct {
	To         string `json:"to"`
	State      string `json:"state"`
	Phase      string `json:"phase"`
	Error      string `json:"error"`
	Partitions []struct {
		Partition int32 `json:"partition"`
		Base      int64 `json:"base"`
	} `json:"partitions"`
}

// getMigration reads topic's migration from peer i's admin API.
func getMigration(t *testing.T, sb *sandbox.Sandbox, i int, topic string) (migrationView, bool) {
	t.Helper()
	resp, err := http.Get(sb.AdminURLs[i] + "/v1/migrations/" + topic + "?consistent=1")
	if err != nil {
		return migrationView{}, false
	}
	defer resp.Body.Close()
	var m migrationView
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&m) != nil {
		return migrationView{}, false
	}
	return m, true
}

// mustGetMigration is getMigration retried for up to 30 s: a consistent
// read answers 503 while the peers elect a leader (a loaded machine).
func mustGetMigration(t *testing.T, sb *sandbox.Sandbox, i int, topic string) migrationView {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m, ok := getMigration(t, sb, i, topic); ok {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("migration of %s not readable from peer %d within 30s", topic, i)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startMigration asks peer i to move topic to cluster to.
func startMigration(t *testing.T, sb *sandbox.Sandbox, i int, topic, to string) {
	t.Helper()
	postRetrying(t, sb.AdminURLs[i]+"/v1/migrations", fmt.Sprintf(`{"topic":%q,"to":%q}`, topic, to), http.StatusAccepted,
		func() bool {
			// An earlier attempt whose answer was lost may have started it.
			m, ok := getMigration(t, sb, i, topic)
			return ok && m.To == to && m.State != "failed" && m.State != "aborted" && m.State != "finished"
		})
}

// postRetrying POSTs body to url until it is answered want. A 503 (no
// leader while a loaded machine's peers elect one) is retried for a
// minute; after one, applied tells whether an earlier attempt took effect
// (its answer lost), and an answer other than want then counts as done.
func postRetrying(t *testing.T, url, body string, want int, applied func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	retried := false
	for {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		resp, err := http.Post(url, "application/json", rd)
		code, answer := 0, ""
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			code, answer = resp.StatusCode, string(b)
		}
		switch {
		case code == want:
			return
		case retried && applied():
			t.Logf("POST %s: %d %s after a retry; an earlier attempt applied", url, code, answer)
			return
		case (err != nil || code == http.StatusServiceUnavailable) && time.Now().Before(deadline):
			t.Logf("POST %s: %d %s %v; retrying", url, code, answer, err)
			retried = true
			time.Sleep(time.Second)
		default:
			t.Fatalf("POST %s: %d %s %v", url, code, answer, err)
		}
	}
}

// migrate moves topic to cluster to through the admin API and the
// leader's driver, waits until clients are switched, and returns each
// partition's base.
func migrate(t *testing.T, sb *sandbox.Sandbox, topic, to string, partitions int32) []int64 {
	t.Helper()
	startMigration(t, sb, 1, topic, to)
	var m migrationView
	waitFor(t, time.Minute, "the migration of "+topic+" switched", func() bool {
		var ok bool
		m, ok = getMigration(t, sb, 0, topic)
		if ok && (m.State == "failed" || m.State == "aborted") {
			t.Fatalf("migration of %s: %s: %s", topic, m.State, m.Error)
		}
		return ok && m.State == "switched"
	})
	bases := make([]int64, partitions)
	if len(m.Partitions) != int(partitions) {
		t.Fatalf("migration lists %d partitions, want %d", len(m.Partitions), partitions)
	}
	for _, p := range m.Partitions {
		bases[p.Partition] = p.Base
	}
	return bases
}

// finishMigration retires topic's source segment.
func finishMigration(t *testing.T, sb *sandbox.Sandbox, topic string) {
	t.Helper()
	postRetrying(t, sb.AdminURLs[2]+"/v1/migrations/"+topic+"/finish?force=1", "", http.StatusOK, func() bool {
		m, ok := getMigration(t, sb, 2, topic)
		return ok && m.State == "finished"
	})
}

// TestChainedOffsets: a topic switched from east to west keeps one
// continuous offset space through the proxy. Records produced after the
// switch land on west at physical offsets from 0 and are consumed at
// virtual offsets continuing east's; a consumer from the start reads east
// then west (chained reads) with contiguous offsets; ListOffsets,
// OffsetForLeaderEpoch and the presented leader epochs are virtual; once
// the source segment is retired, a fetch below the base is out of range.
func TestChainedOffsets(t *testing.T) {
	sb := startTwoClusters(t)
	const topic, parts, before, after = "chained", 3, 300, 300
	const epochBase = 1 // the target's epochs are presented from at least 1
	proxy := sb.Bootstrap
	createTopic(t, proxy, topic, parts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	prod, err := kgo.NewClient(kgo.SeedBrokers(proxy...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	produce := func(from, n int) map[int32][]int64 {
		offs := map[int32][]int64{}
		for i := from; i < from+n; i++ {
			r, err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(recordValue(i))}).First()
			if err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
			offs[r.Partition] = append(offs[r.Partition], r.Offset)
		}
		return offs
	}
	produce(0, before)
	// A group that committed on east before the switch (nothing copies its
	// offsets here): while east serves reads, the proxy answers its
	// offsets from there.
	adm0 := kadm.NewClient(prod)
	early := kadm.Offsets{}
	for p := range int32(parts) {
		early.AddOffset(topic, p, int64(10+p), -1)
	}
	if _, err := adm0.CommitOffsets(ctx, "early", early); err != nil {
		t.Fatal(err)
	}
	bases := migrate(t, sb, topic, "west", parts)
	fetched, err := adm0.FetchOffsets(ctx, "early")
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(parts) {
		if o, ok := fetched.Lookup(topic, p); !ok || o.At != int64(10+p) {
			t.Errorf("group early, partition %d after the switch: %+v, want the offset committed on east, %d", p, o, 10+p)
		}
	}
	offs := produce(before, after)
	for p, os := range offs {
		for k, o := range os {
			if want := bases[p] + int64(k); o != want {
				t.Fatalf("partition %d: record %d acknowledged at offset %d, want %d (base %d)", p, k, o, want, bases[p])
			}
		}
	}

	// On west, the new records sit at physical offsets from 0.
	_, westAdm := directTo(t, sb, "west")
	westEnds, err := westAdm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var onWest int64
	westEnds.Each(func(o kadm.ListedOffset) { onWest += o.Offset })
	if onWest != after {
		t.Fatalf("west holds %d records, want %d", onWest, after)
	}

	// ListOffsets through the proxy: earliest 0 (east), latest base+n.
	adm := kadm.NewClient(prod)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(parts) {
		s, _ := starts.Lookup(topic, p)
		e, _ := ends.Lookup(topic, p)
		if s.Offset != 0 || e.Offset != bases[p]+int64(len(offs[p])) {
			t.Errorf("partition %d: proxy lists [%d, %d), want [0, %d)", p, s.Offset, e.Offset, bases[p]+int64(len(offs[p])))
		}
		if e.LeaderEpoch < epochBase {
			t.Errorf("partition %d: latest offset's leader epoch %d, want ≥ %d", p, e.LeaderEpoch, epochBase)
		}
	}

	// Metadata presents the live segment's epochs raised.
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range md.Topics[topic].Partitions {
		if p.LeaderEpoch < epochBase {
			t.Errorf("metadata: partition %d leader epoch %d, want ≥ %d", p.Partition, p.LeaderEpoch, epochBase)
		}
	}

	// A consumer from the start reads everything, offsets contiguous.
	consumeAll := func(group string) map[int32][]int64 {
		t.Helper()
		opts := []kgo.Opt{kgo.SeedBrokers(proxy...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
		if group != "" {
			opts = append(opts, kgo.ConsumerGroup(group))
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		got := map[int32][]int64{}
		n := 0
		for n < before+after {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("consumed %d of %d", n, before+after)
			}
			fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
			fs.EachRecord(func(r *kgo.Record) {
				got[r.Partition] = append(got[r.Partition], r.Offset)
				n++
			})
		}
		if group != "" {
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				t.Fatalf("commit: %v", err)
			}
		}
		return got
	}
	got := consumeAll("chained-g")
	for p, os := range got {
		for k, o := range os {
			if o != int64(k) {
				t.Fatalf("partition %d: record %d at offset %d, want contiguous offsets from 0", p, k, o)
			}
		}
		if want := bases[p] + int64(len(offs[p])); int64(len(os)) != want {
			t.Fatalf("partition %d: consumed %d records, want %d", p, len(os), want)
		}
	}

	// The group's commits are virtual, on west.
	_, westAdmin := directTo(t, sb, "west")
	committed, err := westAdmin.FetchOffsets(ctx, "chained-g")
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(parts) {
		o, ok := committed.Lookup(topic, p)
		if want := bases[p] + int64(len(offs[p])); !ok || o.At != want {
			t.Errorf("partition %d: west holds commit %+v, want %d", p, o, want)
		}
	}

	// OffsetForLeaderEpoch for an east epoch ends at most at the base; the
	// live epoch at the end.
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.ReplicaID = -1
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = topic
	for p := range int32(parts) {
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.LeaderEpoch, rp.CurrentLeaderEpoch = p, 0, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resps := prod.RequestSharded(ctx, req)
	for _, sr := range resps {
		if sr.Err != nil {
			t.Fatalf("OffsetForLeaderEpoch: %v", sr.Err)
		}
		for _, tp := range sr.Resp.(*kmsg.OffsetForLeaderEpochResponse).Topics {
			for _, p := range tp.Partitions {
				if p.ErrorCode != 0 || p.EndOffset > bases[p.Partition] || p.LeaderEpoch >= epochBase {
					t.Errorf("OffsetForLeaderEpoch(0) partition %d: %+v, want an east epoch ending ≤ %d", p.Partition, p, bases[p.Partition])
				}
			}
		}
	}

	// Finished: the east segment is retired; a fetch below the base is
	// out of range, the earliest offset is the base.
	finishMigration(t, sb, topic)
	waitFor(t, 30*time.Second, "earliest offsets at the bases", func() bool {
		starts, err := adm.ListStartOffsets(ctx, topic)
		if err != nil {
			return false
		}
		ok := true
		starts.Each(func(o kadm.ListedOffset) { ok = ok && o.Err == nil && o.Offset == bases[o.Partition] })
		return ok
	})
	fr := kmsg.NewPtrFetchRequest()
	fr.MaxWaitMillis, fr.MaxBytes = 100, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = topic, md.Topics[topic].ID
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch = 0, 0, 1<<20, -1
	ft.Partitions = append(ft.Partitions, fp)
	fr.Topics = append(fr.Topics, ft)
	if bases[0] > 0 {
		// Every peer applies the finish on its own; the fetch goes to the
		// partition's presented leader.
		var code int16
		waitFor(t, 30*time.Second, "a fetch below the base out of range", func() bool {
			for _, sr := range prod.RequestSharded(ctx, fr) {
				if sr.Err == nil {
					for _, tp := range sr.Resp.(*kmsg.FetchResponse).Topics {
						for _, p := range tp.Partitions {
							code = p.ErrorCode
						}
					}
				}
			}
			return code == kerr.OffsetOutOfRange.Code
		})
	}
}

// checkFenced waits until every peer answers a Produce to topic with the
// fence's retriable NOT_LEADER_OR_FOLLOWER.
func checkFenced(ctx context.Context, t *testing.T, proxy []string, topic string) {
	t.Helper()
	// Fenced: every peer refuses the topic's Produce with a
	// retriable error (applied on each peer shortly after the leader).
	for _, addr := range proxy {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
		if err != nil {
			t.Fatal(err)
		}
		md, err := kadm.NewClient(cl).Metadata(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "the fence on "+addr, func() bool {
			req := kmsg.NewPtrProduceRequest()
			req.Acks, req.TimeoutMillis = -1, 5000
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic, rt.TopicID = topic, md.Topics[topic].ID
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition, rp.Records = 0, rawBatch([]byte("fenced"))
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			kr, err := cl.SeedBrokers()[0].Request(ctx, req)
			if err != nil {
				t.Logf("produce to %s: %v", addr, err)
				return false
			}
			code := int16(-1)
			for _, tp := range kr.(*kmsg.ProduceResponse).Topics {
				for _, p := range tp.Partitions {
					code = p.ErrorCode
				}
			}
			if code != kerr.NotLeaderForPartition.Code {
				t.Logf("produce to %s while fenced: code %d", addr, code)
			}
			return code == kerr.NotLeaderForPartition.Code
		})
		cl.Close()
	}
}

// TestMigrationFence: while a migration's fence holds (here: an open
// transaction on the topic keeps the source's last stable offset below
// its high watermark), every peer refuses the topic's Produce with a
// retriable error; a producer's record sent meanwhile is acknowledged
// after the switch, on the target, at an offset at or past the base; the
// transaction commits and is read whole.
func TestMigrationFence(t *testing.T) {
	sb := startTwoClusters(t)
	const topic = "fenced"
	proxy := sb.Bootstrap
	createTopic(t, proxy, topic, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	txn, err := kgo.NewClient(kgo.SeedBrokers(proxy...), kgo.TransactionalID("hold-fence"), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, kgo.StringRecord("in-txn")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	startMigration(t, sb, 0, topic, "west")
	waitFor(t, 30*time.Second, "the fence", func() bool {
		m, ok := getMigration(t, sb, 0, topic)
		return ok && m.Phase == "fence"
	})
	checkFenced(ctx, t, proxy, topic)

	prod, err := kgo.NewClient(kgo.SeedBrokers(proxy...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	acked := make(chan *kgo.Record, 1)
	go func() {
		r, err := prod.ProduceSync(ctx, kgo.StringRecord("during-fence")).First()
		if err != nil {
			t.Errorf("produce during the fence: %v", err)
		}
		acked <- r
	}()
	time.Sleep(500 * time.Millisecond)
	if m := mustGetMigration(t, sb, 0, topic); m.State != "running" {
		t.Fatalf("migration is %s before the transaction ended, want running (held by it)", m.State)
	}
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	r := <-acked
	m := mustGetMigration(t, sb, 0, topic)
	if m.State != "switched" || len(m.Partitions) != 1 {
		t.Fatalf("after the transaction: migration %+v, want switched", m)
	}
	if r == nil || r.Offset < m.Partitions[0].Base {
		t.Fatalf("record produced during the fence acknowledged at %+v, want at or past the base %d", r, m.Partitions[0].Base)
	}
	west, _ := directTo(t, sb, "west")
	west.AddConsumeTopics(topic)
	fs := west.PollFetches(ctx)
	var got []string
	fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	if len(got) != 1 || got[0] != "during-fence" {
		t.Fatalf("west holds %q, want just the record produced during the fence", got)
	}
}

// rawBatch is a v2 record batch of one record with value v.
func rawBatch(v []byte) []byte {
	rec := kmsg.Record{Value: v}
	body := rec.AppendTo(nil)[1:]
	rec.Length = int32(len(body))
	recs := rec.AppendTo(nil)
	b := kmsg.RecordBatch{
		FirstOffset: 0, PartitionLeaderEpoch: -1, Magic: 2, LastOffsetDelta: 0,
		FirstTimestamp: time.Now().UnixMilli(), MaxTimestamp: time.Now().UnixMilli(),
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: 1, Records: recs,
	}
	raw := b.AppendTo(nil)
	b.Length = int32(len(raw) - 12)
	raw = b.AppendTo(nil)
	b.CRC = int32(crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b.AppendTo(nil)
}
