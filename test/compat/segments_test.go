package compat

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/sandbox"
)

// switchByHand drives a migration of topic from east to west through the
// FSM commands alone (what the driver does, without its checks): start,
// fence, create the topic on west, switch at east's high watermarks with
// epochBase. It returns the bases.
func switchByHand(t *testing.T, sb *sandbox.Sandbox, topic string, partitions int32, epochBase int32) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := time.Now().UnixMilli()
	apply := func(cmd fsm.Command) {
		t.Helper()
		if _, err := sb.Apply(ctx, cmd); err != nil {
			t.Fatalf("apply %T: %v", cmd, err)
		}
	}
	apply(&fsm.StartMigration{Topic: topic, From: "east", To: "west", Partitions: partitions, Started: now})
	_, westAdm := directTo(t, sb, "west")
	if _, err := westAdm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatalf("create %s on west: %v", topic, err)
	}
	apply(&fsm.UpdateMigration{Topic: topic, State: fsm.MigrationRunning, Phase: fsm.PhaseFence, At: now + 1})
	_, eastAdm := directTo(t, sb, "east")
	ends, err := eastAdm.ListEndOffsets(ctx, topic)
	if err != nil || ends.Error() != nil {
		t.Fatalf("east end offsets: %v %v", err, ends.Error())
	}
	starts := make([]int64, partitions)
	ends.Each(func(o kadm.ListedOffset) { starts[o.Partition] = o.Offset })
	apply(&fsm.SwitchMigration{Topic: topic, Starts: starts, Physical: make([]int64, partitions), EpochBase: epochBase, At: now + 2})
	return starts
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
	const epochBase = 100
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
	bases := switchByHand(t, sb, topic, parts, epochBase)
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
	if _, err := sb.Apply(ctx, &fsm.FinishMigration{Topic: topic, At: time.Now().UnixMilli()}); err != nil {
		t.Fatal(err)
	}
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
	var code int16
	for _, sr := range prod.RequestSharded(ctx, fr) {
		if sr.Err == nil {
			for _, tp := range sr.Resp.(*kmsg.FetchResponse).Topics {
				for _, p := range tp.Partitions {
					code = p.ErrorCode
				}
			}
		}
	}
	if bases[0] > 0 && code != kerr.OffsetOutOfRange.Code {
		t.Errorf("fetch at 0 after finish: code %d, want OFFSET_OUT_OF_RANGE", code)
	}
}
