// Package verifier checks what Kafka clients saw through Switchyard while a
// fault happened. Idempotent producers (franz-go in this process, librdkafka
// through Debian's python3-confluent-kafka in a child process) write
// sequence-numbered records "NAME:SEQ"; the members of one consumer group
// read them. Every acknowledgement and every delivery goes into a Log, and
// Analyze turns the Log into a Report:
//
//   - acknowledged: distinct records a producer was told were written;
//   - lost: acknowledged, never delivered to the group;
//   - duplicated: records the group was given more than once, split into
//     stored twice (the record sits at two or more offsets: a producer
//     retry that idempotence did not catch) and redelivered (the same
//     offset handed out again: the group's at-least-once delivery across a
//     rebalance or a failed commit, which a proxy cannot prevent);
//   - out of order: per partition and producer, in offset order, a record
//     whose sequence number is below one stored before it (copies of a
//     record already stored count as duplicates, not here);
//   - stalls (recovery time): the longest interval on one partition
//     without an acknowledgement (per producer) or without a delivery (the
//     group) that ends after the fault began and begins before traffic
//     stopped. Per partition, because a fault that stops the partitions
//     one peer presents leaves the others flowing.
//
// A route change moves clients, not data or offsets: records written
// before it stay on the old cluster and the two clusters' offsets overlap.
// Audit reads a topic on a backend cluster directly; with audits in the
// Log, lost means stored on no audited cluster, stored twice and out of
// order are counted on the clusters' own positions, and the acknowledged
// records the group was never given are reported (unread).
//
// The package is used in-process by the fault cases of test/chaos and by
// the chaos-verifier command (cmd/chaos-verifier), which runs the same
// clients against any bootstrap address while an operator injects faults.
package verifier

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Ack is one acknowledgement a producer received. Offset is -1 when the
// client did not report it (librdkafka does so for some records of a
// batch that was retried).
type Ack struct {
	Producer  string
	Seq       int64
	Partition int32
	Offset    int64
	At        time.Time
}

// Delivery is one record handed to a member of the group.
type Delivery struct {
	Producer  string
	Seq       int64
	Partition int32
	Offset    int64
	Member    string
	At        time.Time
}

type recordKey struct {
	producer string
	seq      int64
}

// maxNotes bounds the client errors a Log keeps (the count goes on).
const maxNotes = 200

// Log records what the clients saw. It is safe for concurrent use.
type Log struct {
	mu         sync.Mutex
	acks       []Ack
	fails      []string       // the first maxNotes failures
	failCount  map[string]int // failures per producer
	deliveries []Delivery
	foreign    int // consumed records that are not "NAME:SEQ"
	notes      []string
	noteCount  int
	delivered  map[recordKey]bool
	acked      map[recordKey]bool
	stored     []Stored // what Audit found on the backend clusters
}

// NewLog returns an empty log.
func NewLog() *Log {
	return &Log{delivered: map[recordKey]bool{}, acked: map[recordKey]bool{}, failCount: map[string]int{}}
}

func (l *Log) ack(a Ack) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acks = append(l.acks, a)
	l.acked[recordKey{a.Producer, a.Seq}] = true
}

func (l *Log) fail(producer string, seq int64, err string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failCount[producer]++
	if len(l.fails) < maxNotes {
		l.fails = append(l.fails, fmt.Sprintf("%s:%d: %s", producer, seq, err))
	}
	l.noteLocked(fmt.Sprintf("%s: record %d failed: %s", producer, seq, err))
}

func (l *Log) deliver(d Delivery) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.deliveries = append(l.deliveries, d)
	l.delivered[recordKey{d.Producer, d.Seq}] = true
}

func (l *Log) store(s Stored) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stored = append(l.stored, s)
}

func (l *Log) foreignRecord() {
	l.mu.Lock()
	l.foreign++
	l.mu.Unlock()
}

// Note records a client-level event (an error a client reported, a
// failed commit); the first 200 are kept.
func (l *Log) Note(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.noteLocked(s)
}

func (l *Log) noteLocked(s string) {
	l.noteCount++
	if len(l.notes) < maxNotes {
		l.notes = append(l.notes, time.Now().Format("15:04:05.000")+" "+s)
	}
}

// Notes returns the client events kept and how many there were.
func (l *Log) Notes() ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.notes...), l.noteCount
}

// Fails returns the first producer failures kept, each as
// "producer:seq: error".
func (l *Log) Fails() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.fails...)
}

// Counts returns the acknowledgements and deliveries recorded so far.
func (l *Log) Counts() (acks, deliveries int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks), len(l.deliveries)
}

// DeliveredAny counts the distinct records the group was given that keep
// selects.
func (l *Log) DeliveredAny(keep func(producer string, seq int64) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for k := range l.delivered {
		if keep(k.producer, k.seq) {
			n++
		}
	}
	return n
}

// StoredOn returns, per record (as Value names it), the clusters Audit
// found it on.
func (l *Log) StoredOn() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]string{}
	for _, s := range l.stored {
		v := Value(s.Producer, s.Seq)
		out[v] = append(out[v], s.Cluster)
	}
	return out
}

// Undelivered returns how many acknowledged records the group has not
// been given yet.
func (l *Log) Undelivered() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for k := range l.acked {
		if !l.delivered[k] {
			n++
		}
	}
	return n
}

// WaitDelivered waits until the group was given every acknowledged
// record, or ctx ends (then it returns how many are still missing).
func (l *Log) WaitDelivered(ctx context.Context) error {
	for {
		n := l.Undelivered()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d acknowledged records not delivered: %w", n, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Value is the record value a producer writes for seq.
func Value(producer string, seq int64) string {
	return producer + ":" + strconv.FormatInt(seq, 10)
}

// parseValue reads a Value back.
func parseValue(v []byte) (string, int64, bool) {
	s := string(v)
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", 0, false
	}
	seq, err := strconv.ParseInt(s[i+1:], 10, 64)
	if err != nil || seq < 0 {
		return "", 0, false
	}
	return s[:i], seq, true
}
