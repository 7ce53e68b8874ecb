package kafka

// Sequence gaps: an idempotent producer's ordering across the proxy's own
// refusals.
//
// A broker keeps an idempotent producer's batches of a partition in
// sequence: after it refuses one, it refuses every later one
// (OUT_OF_ORDER_SEQUENCE_NUMBER) until the refused one is retried, and
// clients rely on it: librdkafka, seeing a later batch succeed, takes the
// earlier ones it had been refused for written ("implicitly acked"). When
// the proxy itself refuses a batch (a migration's fence, the route-change
// bounce) the broker never sees it, and after a switch the batches go to
// a producer id the target cluster has not seen, which it accepts at any
// sequence. So the proxy keeps the rule itself: once it refuses a batch of
// (virtual producer id, epoch, topic, partition) at sequence s, it refuses
// (retriably) every later batch there until one starting at or before s
// goes through, or for seqGapTTL. Pipelined requests sent before the
// client saw the first refusal are refused with it, and the client retries
// them all in order. The gap is only for those: a client retries the
// refused batch before it sends later ones, perhaps to another peer (the
// partition's leader moved), so a gap this peer never sees closed must not
// outlive the requests that were in flight with it; otherwise the
// producer's batches to this peer would be refused for good when the
// partition's leader comes back here.

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// batchSeqOff is where a v2 batch's first sequence number is.
const batchSeqOff = 53

// maxSeqGaps bounds the gaps a peer remembers; past it they are forgotten
// all at once (at worst one ordering across a refusal is not enforced).
const maxSeqGaps = 100_000

// seqGapTTL is how long a gap holds later batches: pipelined requests
// arrive within milliseconds of the refused one.
const seqGapTTL = 2 * time.Second

type seqGapKey struct {
	vpid      int64
	topic     string
	partition int32
}

type seqGap struct {
	epoch int16
	seq   int32
	at    time.Time
}

// seqGaps are the refused sequences of one peer.
type seqGaps struct {
	open atomic.Int64 // len(m), read without the lock on every batch
	mu   sync.Mutex
	m    map[seqGapKey]seqGap
}

// firstBatch is the producer id, epoch and first sequence of the first v2
// batch of records; ok is false when there is none or it has no producer.
func firstBatch(records []byte) (pid int64, epoch int16, seq int32, ok bool) {
	batchesOf(records, func(b []byte) bool {
		pid, epoch = batchProducer(b)
		seq = int32(binary.BigEndian.Uint32(b[batchSeqOff:]))
		ok = pid >= 0 && isVirtual(pid)
		return false
	})
	return
}

// refused records that the proxy answered records of topic's partition
// with a retriable error.
func (g *seqGaps) refused(topic string, partition int32, records []byte) {
	pid, epoch, seq, ok := firstBatch(records)
	if !ok {
		return
	}
	g.refusedAt(topic, partition, pid, epoch, seq)
}

// refusedAt records that the batch of producer pid at epoch starting at
// seq (the client's sequence) for topic's partition was answered with a
// retriable error that the cluster did not write.
func (g *seqGaps) refusedAt(topic string, partition int32, pid int64, epoch int16, seq int32) {
	k := seqGapKey{pid, topic, partition}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	if old, had := g.m[k]; had && old.epoch == epoch && old.seq <= seq && now.Sub(old.at) < seqGapTTL {
		old.at = now // an earlier refusal still stands
		g.m[k] = old
		return
	}
	if g.m == nil || len(g.m) >= maxSeqGaps {
		g.m = make(map[seqGapKey]seqGap)
	}
	g.m[k] = seqGap{epoch, seq, now}
	g.open.Store(int64(len(g.m)))
}

// admit reports the code to refuse records of topic's partition with: a
// retriable error when an earlier batch of their producer was refused and
// has not been retried yet, else 0 (and a batch that fills the gap closes
// it).
func (g *seqGaps) admit(topic string, partition int32, records []byte) int16 {
	if g.open.Load() == 0 {
		return 0
	}
	pid, epoch, seq, ok := firstBatch(records)
	if !ok {
		return 0
	}
	k := seqGapKey{pid, topic, partition}
	g.mu.Lock()
	defer g.mu.Unlock()
	gap, had := g.m[k]
	switch {
	case !had:
		return 0
	case gap.epoch != epoch || seq <= gap.seq || time.Since(gap.at) >= seqGapTTL:
		// A new epoch restarts the sequences; the refused batch (or one
		// before it) is back: the order is kept from here on. Or the
		// gap outlived the requests in flight with the refused one.
		delete(g.m, k)
		g.open.Store(int64(len(g.m)))
		return 0
	}
	return kerr.NotLeaderForPartition.Code
}
