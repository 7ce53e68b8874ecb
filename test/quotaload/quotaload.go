// Package quotaload is the load generator and meter of the quota tests
// (test/e2e, test/cluster): producers offering a set rate per partition,
// and the stored-bytes rate of a topic sampled straight from the backend.
package quotaload

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// RecordSize is the value size of every record the producers write.
const RecordSize = 1 << 10

// Stored samples how many record bytes the backend holds for a topic.
// Each sample was read by the broker at some moment between its request's
// send (sent) and its answer's arrival; at is the midpoint. On a loaded
// machine a ListOffsets round trip takes up to seconds, so a rate computed
// from the midpoints can be off by that much: MinWindows gives the rate
// the samples prove, for asserting an upper bound.
type Stored struct {
	mu   sync.Mutex
	at   []time.Time
	sent []time.Time
	recv []time.Time
	val  []int64
}

func (s *Stored) sample(sent, recv time.Time, v int64) {
	s.mu.Lock()
	s.at, s.val = append(s.at, sent.Add(recv.Sub(sent)/2)), append(s.val, v)
	s.sent, s.recv = append(s.sent, sent), append(s.recv, recv)
	s.mu.Unlock()
}

// rate is the byte rate stored between from and to (nearest samples):
// over their midpoints, or, proven, over the longest interval the two
// reads may have been apart (the lowest rate the samples allow).
func (s *Stored) rate(from, to time.Time, proven bool) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, j := s.nearest(from), s.nearest(to)
	if j <= i {
		return 0
	}
	d := s.at[j].Sub(s.at[i])
	if proven {
		d = s.recv[j].Sub(s.sent[i])
	}
	return float64(s.val[j]-s.val[i]) / d.Seconds()
}

// nearest is the index of the first sample at or after t (the last one
// if none). The caller holds s.mu.
func (s *Stored) nearest(t time.Time) int {
	i, _ := slices.BinarySearchFunc(s.at, t, func(a, b time.Time) int { return a.Compare(b) })
	return min(i, len(s.at)-1)
}

// Rate is the byte rate stored between from and to (nearest samples).
func (s *Stored) Rate(from, to time.Time) float64 { return s.rate(from, to, false) }

// Series renders the 1 s rates from from on, as fractions of Q.
func (s *Stored) Series(q float64, from time.Time, n int) string {
	var b strings.Builder
	for i := range n {
		t := from.Add(time.Duration(i) * time.Second)
		fmt.Fprintf(&b, "%.2f ", s.Rate(t, t.Add(time.Second))/q)
	}
	return b.String()
}

// Windows returns the min and max rate over windows of length w stepping
// by 1 s between from and to, as fractions of q.
func (s *Stored) Windows(from, to time.Time, w time.Duration, q float64) (lo, hi float64) {
	return s.windows(from, to, w, q, false)
}

// MinWindows is Windows with each window's rate the lowest its samples
// allow: a window over a bound here is over it whatever the round trips
// of its samples took.
func (s *Stored) MinWindows(from, to time.Time, w time.Duration, q float64) (lo, hi float64) {
	return s.windows(from, to, w, q, true)
}

func (s *Stored) windows(from, to time.Time, w time.Duration, q float64, proven bool) (lo, hi float64) {
	lo, hi = 1e9, 0
	for t := from; !t.Add(w).After(to); t = t.Add(time.Second) {
		r := s.rate(t, t.Add(w), proven) / q
		lo, hi = min(lo, r), max(hi, r)
	}
	return lo, hi
}

// Watch samples the topic's stored bytes every 100 ms until ctx ends.
func Watch(ctx context.Context, t testing.TB, adm *kadm.Client, topic string) *Stored {
	s := &Stored{}
	go func() {
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			sent := time.Now()
			ends, err := adm.ListEndOffsets(ctx, topic)
			if err == nil {
				var n int64
				ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
				s.sample(sent, time.Now(), n*RecordSize)
			}
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	}()
	return s
}

// Offer produces to partition p at *rate bytes/s (changeable) until ctx
// ends, counting acknowledged records.
func Offer(ctx context.Context, t testing.TB, seeds []string, topic string, p int32, rate *atomic.Int64, acked *atomic.Int64) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond),
		// Quotas count bytes on the wire: uncompressed, the stored bytes
		// measured on the backend are the charged ones.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordRetries(1000), kgo.RecordDeliveryTimeout(2*time.Minute))
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	value := make([]byte, RecordSize)
	rand.Read(value)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var debt float64
	for {
		select {
		case <-ctx.Done():
			cl.Flush(context.Background())
			return
		case <-tick.C:
		}
		debt += float64(rate.Load()) / 100
		for ; debt >= RecordSize; debt -= RecordSize {
			cl.Produce(ctx, &kgo.Record{Partition: p, Value: value}, func(_ *kgo.Record, err error) {
				if err == nil {
					acked.Add(1)
				}
			})
		}
	}
}

// Convergence is how long after from the first 2 s window (sliding by
// 250 ms) with a rate within ±5 % of q ends (to-from when none does).
// Single 1 s windows swing past ±5 % even at steady state (a throttled
// client sends in bursts, as it does against Kafka), so 2 s is the shortest
// window the figure means something on.
func Convergence(s *Stored, from, to time.Time, q float64) time.Duration {
	for t := from; !t.Add(2 * time.Second).After(to); t = t.Add(250 * time.Millisecond) {
		if r := s.Rate(t, t.Add(2*time.Second)) / q; r >= 0.95 && r <= 1.05 {
			return t.Add(2 * time.Second).Sub(from)
		}
	}
	return to.Sub(from)
}

// CreateSpread creates topic with partition i led by broker i, so partition
// i is presented by peer i (the peer co-located with broker i).
func CreateSpread(ctx context.Context, t testing.TB, kc *kfake.Cluster, cl *kgo.Client, topic string, n int32) {
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	for p := range n {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = p, []int32{p}
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	}
	req.Topics = []kmsg.CreateTopicsRequestTopic{rt}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].ErrorCode; code != 0 {
		t.Fatalf("create %s: error %d", topic, code)
	}
	// kfake picks leaders at random whatever the assignment: move them.
	for p := range n {
		if err := kc.MoveTopicPartition(topic, p, p); err != nil {
			t.Fatalf("move %s/%d to broker %d: %v", topic, p, p, err)
		}
	}
}
