package kafka

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// idempotentBatch is a valid v2 record batch of producer (id, epoch).
func idempotentBatch(id int64, epoch int16, seq int32, values ...string) []byte {
	b := kmsg.RecordBatch{Magic: 2, ProducerID: id, ProducerEpoch: epoch, FirstSequence: seq, NumRecords: int32(len(values)), LastOffsetDelta: int32(len(values) - 1)}
	for i, v := range values {
		r := kmsg.Record{OffsetDelta: int32(i), Value: []byte(v)}
		body := r.AppendTo(nil)[1:]
		r.Length = int32(len(body))
		b.Records = r.AppendTo(b.Records)
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[batchLengthOff:], uint32(len(raw)-batchLengthOff-4))
	binary.BigEndian.PutUint32(raw[batchCRCOff:], crc32.Checksum(raw[batchAttrOff:], castagnoli))
	return raw
}

func TestSetBatchProducerKeepsTheBatchValid(t *testing.T) {
	raw := idempotentBatch(7<<40|3, 2, 41, "a", "bb", "ccc")
	two := append(append([]byte{}, raw...), idempotentBatch(7<<40|3, 2, 44, "d")...)
	n := 0
	ok := batchesOf(two, func(batch []byte) bool {
		id, epoch := batchProducer(batch)
		if id != 7<<40|3 || epoch != 2 {
			t.Fatalf("batch %d producer %d/%d", n, id, epoch)
		}
		setBatchProducer(batch, 12345, 0)
		n++
		return true
	})
	if !ok || n != 2 {
		t.Fatalf("walked %d batches, ok %v", n, ok)
	}
	for len(two) > 0 {
		var b kmsg.RecordBatch
		if err := b.ReadFrom(two); err != nil {
			t.Fatal(err)
		}
		if b.ProducerID != 12345 || b.ProducerEpoch != 0 {
			t.Fatalf("rewritten batch has producer %d/%d", b.ProducerID, b.ProducerEpoch)
		}
		if got := crc32.Checksum(two[batchAttrOff:int(b.Length)+12], castagnoli); uint32(b.CRC) != got {
			t.Fatalf("crc %x, computed %x", uint32(b.CRC), got)
		}
		if b.FirstSequence != 41 && b.FirstSequence != 44 {
			t.Fatalf("sequence changed to %d", b.FirstSequence)
		}
		two = two[int(b.Length)+12:]
	}
}

func TestBatchesOfRefusesGarbage(t *testing.T) {
	raw := idempotentBatch(1, 0, 0, "x")
	for name, in := range map[string][]byte{
		"short":         raw[:20],
		"magic 1":       append(append([]byte{}, raw[:16]...), append([]byte{1}, raw[17:]...)...),
		"length beyond": append(append([]byte{}, raw...), raw[:batchHeaderLen]...),
	} {
		calls := 0
		if batchesOf(in, func([]byte) bool { calls++; return true }) {
			t.Errorf("%s: accepted", name)
		}
		_ = calls
	}
}

func TestVirtualProducerIDs(t *testing.T) {
	var p producerIDs
	p.init(time.Now(), Config{Limits: Limits{ProducerIDMappings: 8}})
	a, b := p.issue(0), p.issue(0)
	c := p.issue(5)
	if a == b || !isVirtual(a) || !isVirtual(c) || c>>vpidPeerShift != 6 {
		t.Fatalf("issued %x %x %x", a, b, c)
	}
	if isVirtual(42) || isVirtual(-1) {
		t.Fatal("a broker's producer id looked virtual")
	}
	// A restart a millisecond later starts past the ids already issued.
	var q producerIDs
	q.init(time.Now().Add(time.Millisecond), Config{Limits: Limits{ProducerIDMappings: 8}})
	if next := q.issue(0); next <= b {
		t.Fatalf("restarted peer issued %x, not past %x", next, b)
	}
}

func FuzzBatchesOf(f *testing.F) {
	f.Add(idempotentBatch(1<<40|1, 0, 0, "v"))
	f.Add(append(idempotentBatch(1, 0, 0, "a"), idempotentBatch(2, 1, 5, "b", "c")...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		total := 0
		batchesOf(in, func(batch []byte) bool {
			if len(batch) < batchHeaderLen {
				t.Fatalf("a %d-byte batch was handed out", len(batch))
			}
			total += len(batch)
			setBatchProducer(batch, 9, 9)
			return true
		})
		if total > len(orig) {
			t.Fatalf("batches of %d bytes from %d", total, len(orig))
		}
	})
}

// TestProducerMovesAwayAndBack: an idempotent producer's partition is
// served by peer A, then by peer B (its presenting peer moved), then by A
// again, with no shared producer id table (no proposer, or claims failing:
// TestSharedProducerMovesAwayAndBack is the same with the table, where
// nothing is refused). Each peer maps the virtual producer id to its own real one, so
// when the partition comes back A's real id is behind on it and the
// cluster refuses the next batch as OUT_OF_ORDER_SEQUENCE_NUMBER. That is
// the documented limit without the table (producer_ids.go); what must never happen is the
// proxy hiding it by writing the batch under a fresh real id: A cannot
// tell "B wrote the sequences in between" from "nobody did" (a batch
// refused elsewhere while a later one was in flight to A), and in the
// second case a client that sees the later batch succeed takes the
// refused one as written (librdkafka's implicit ack): silent loss, which
// the migration acceptance test caught when a remap was tried.
func TestProducerMovesAwayAndBack(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close) // after the proxies' cleanups, which run first
	beA, addrA := startProxy(t, kc, BackendConfig{Name: "k"})
	beB, addrB := startProxy(t, kc, BackendConfig{Name: "k"})
	for _, be := range []*Backend{beA, beB} {
		select {
		case <-be.Ready():
		case <-time.After(30 * time.Second):
			t.Fatal("backend metadata not loaded")
		}
	}
	a, b := dialRaw(t, addrA), dialRaw(t, addrB)
	p := newRawProducer(t, a)
	for _, step := range []struct {
		c    *rawClient
		via  string
		want int16
	}{
		{a, "a", 0}, {a, "a", 0}, {b, "b", 0}, {b, "b", 0},
		// Back on A: its real id last wrote seq 3 here.
		{a, "a", kerr.OutOfOrderSequenceNumber.Code},
		{b, "b", 0}, // and B, whose id is current, goes on
	} {
		p.step(step.c, step.via, step.want)
	}
	// Every record once, in order.
	got := consumeTopicT(t, kc, int(p.seq))
	want := []string{"a-0", "a-1", "a-2", "a-3", "b-4", "b-5", "b-6", "b-7", "b-8", "b-9"}
	if !slices.Equal(got, want) {
		t.Fatalf("records %v, want %v", got, want)
	}
}
