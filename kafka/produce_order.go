package kafka

// Produce order across a leader change the proxy sees first.
//
// A client pipelines Produce requests to the broker it believes leads a
// partition. Direct, every one of them reaches that broker, and after a
// leadership move each is refused (NOT_LEADER_OR_FOLLOWER) until the
// client refreshes and resends them, in order, to the new leader. Through
// the proxy, the peer picks each request's broker from its own metadata,
// which may learn of the move between two pipelined requests: the first
// goes to the old leader and is refused, the next to the new leader. A new
// leader that holds the producer's state refuses it as out of order, but
// one that holds none (a producer whose first batches these are, a broker
// that rebuilt no state, an expired producer) writes it at any sequence,
// and the first batch, retried, is then refused as out of order. librdkafka
// takes that for "already written" and acknowledges a record that is
// nowhere (the loss test/chaos TestFaultBackendRestarted found through
// another door: conn.go produceGap).
//
// So each client connection remembers the broker of its last Produce to
// each partition. A batch whose partition's broker changed while a Produce
// to the previous broker may still be unanswered (or was lost with its
// broker connection, or answered unsent) is refused here with
// NOT_LEADER_OR_FOLLOWER, and its sequence is held as a gap (seq_gaps.go),
// so the batches pipelined behind it wait for the retry of the first. A
// partition whose leader this peer does not know is refused the same way,
// rather than sent to any broker: there is no broker to keep the order
// on, and the one picked could be the leader or not.

import (
	"github.com/twmb/franz-go/pkg/kerr"
)

// maxProducePlaces bounds the partitions a connection remembers; past it
// the memory starts over (at worst one move's order is not enforced).
const maxProducePlaces = 4096

// placeKey is one partition of one cluster.
type placeKey struct {
	be        *Backend
	topic     string
	partition int32
}

// producePlace returns the code to refuse a Produce to tt's partition
// with, or 0 to send it to the partition's leader, which it then
// remembers as the partition's broker. Called on the reader goroutine.
func (c *clientConn) producePlace(tt topicTarget, partition int32) int16 {
	t := tt.leader(partition)
	if t.broker < 0 {
		tt.be.TriggerRefresh()
		m := tt.meta
		if m == nil {
			m = tt.be.meta(tt.name)
		}
		if m == nil || int(partition) >= len(m.leaders) {
			// As the cluster answers a partition it does not have.
			return kerr.UnknownTopicOrPartition.Code
		}
		return kerr.NotLeaderForPartition.Code
	}
	k := placeKey{tt.be, tt.name, partition}
	prev, had := c.producePlaces[k]
	if had && prev == t.broker {
		return 0
	}
	if c.producePlaces == nil || len(c.producePlaces) >= maxProducePlaces {
		c.producePlaces = make(map[placeKey]int32)
	}
	c.producePlaces[k] = t.broker
	if had && c.produceUnsettled(target{tt.be, prev}) {
		return kerr.NotLeaderForPartition.Code
	}
	return 0
}

// produceUnsettled reports whether a Produce this connection sent to t
// may not have reached it yet: one is unanswered, or one was lost with a
// broker connection or answered unsent (produceGap).
func (c *clientConn) produceUnsettled(t target) bool {
	if c.lostProduce[t] {
		return true
	}
	u, ok := c.ups[t]
	return ok && (u.produceInflight.Load() > 0 || u.produceLost.Load())
}
