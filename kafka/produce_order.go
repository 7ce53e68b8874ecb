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
// each partition. A batch whose partition's broker changed is refused here
// with NOT_LEADER_OR_FOLLOWER when an earlier batch may not have been
// written: a Produce to the previous broker is unanswered, or was lost with
// its connection or answered unsent (produceGap), or some Produce answer
// on this connection carried an error since the partition went to that
// broker (an answer read a moment ago may not have reached the client
// yet). Its sequence is then held as a gap (seq_gaps.go), so the batches
// pipelined behind it wait for the retry of the earliest one the client
// has not had acknowledged, which goes to the new leader first. A direct
// client meets the same refusal from its old leader. When every earlier
// batch was written, the batch goes to the new leader at once. A partition
// whose leader this peer does not know is refused the same way, rather
// than sent to any broker: there is no broker to keep the order on, and
// the one picked could be the leader or not.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
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

// producePlace is where a partition's Produce went: its broker, and
// clientConn.produceErrs when it began to go there.
type producePlace struct {
	broker int32
	errs   uint32
}

// producePlace returns the code to refuse a Produce to tt's partition
// with, or 0 to send it to the partition's leader; either way it
// remembers the leader as the partition's broker. moved reports a refusal
// for a move, whose answer can name the new leader. Called on the reader
// goroutine.
func (c *clientConn) producePlace(tt topicTarget, partition int32) (code int16, moved bool) {
	t := tt.leader(partition)
	if t.broker < 0 {
		tt.be.TriggerRefresh()
		if m := tt.metaNow(); m == nil || int(partition) >= len(m.leaders) {
			// As the cluster answers a partition it does not have.
			return kerr.UnknownTopicOrPartition.Code, false
		}
		return kerr.NotLeaderForPartition.Code, false
	}
	k := placeKey{tt.be, tt.name, partition}
	prev, had := c.producePlaces[k]
	if had && prev.broker == t.broker {
		return 0, false
	}
	if c.producePlaces == nil || len(c.producePlaces) >= maxProducePlaces {
		c.producePlaces = make(map[placeKey]producePlace)
	}
	// In flight first, then the answers: an answer is counted before its
	// Produce stops counting as in flight (upstream.readLoop).
	unsettled := had && c.produceUnsettled(target{tt.be, prev.broker})
	errs := c.produceErrs.Load()
	c.producePlaces[k] = producePlace{t.broker, errs}
	if unsettled || had && errs != prev.errs {
		return kerr.NotLeaderForPartition.Code, true
	}
	return 0, false
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

// leaderPart is a Produce partition the peer refused while its leader is
// known: broker of be, at epoch.
type leaderPart struct {
	topic     string
	partition int32
	be        *Backend
	broker    int32
	epoch     int32
}

// presentLeader notes that the peer refuses tt's partition
// (NOT_LEADER_OR_FOLLOWER) while knowing its leader, whose answer then
// names it (presentLeaders). Not for a topic with segments, whose epochs
// are presented apart (segments.go).
func (r *request) presentLeader(tt topicTarget, partition int32) {
	if tt.be == nil || tt.chain != nil || r.version < 10 {
		return
	}
	t, epoch := tt.leader(partition), tt.leaderEpoch(partition)
	if t.broker >= 0 && epoch >= 0 {
		r.split.leaders = append(r.split.leaders, leaderPart{tt.name, partition, tt.be, t.broker, epoch})
	}
}

// presentLeaders names the leader in the answer of each partition the
// peer refused with NOT_LEADER_OR_FOLLOWER while knowing it: a leader
// move, and the batches held behind the refused one (KIP-951
// CurrentLeader, from v10, with the peer's endpoint). A client that sees a
// newer epoch than it knows retries there at once instead of waiting for
// its next metadata refresh (franz-go waits up to its 5 s metadata min
// age). It reports whether out changed.
func presentLeaders(r *request, out *kmsg.ProduceResponse) bool {
	if r.version < 10 || len(r.split.leaders) == 0 {
		return false
	}
	changed := false
	var (
		prs   = map[*Backend]*presenter{}
		peers = map[int32]*presenter{}
	)
	for _, m := range r.split.leaders {
		var id [16]byte
		if r.version >= 13 {
			r.c.s.presentTopicID(m.topic, &id)
		}
		for i := range out.Topics {
			t := &out.Topics[i]
			if r.version >= 13 && t.TopicID != id || r.version < 13 && t.Topic != m.topic {
				continue
			}
			for j := range t.Partitions {
				p := &t.Partitions[j]
				if p.Partition != m.partition || p.ErrorCode != kerr.NotLeaderForPartition.Code || p.CurrentLeader.LeaderID >= 0 {
					continue
				}
				pr := prs[m.be]
				if pr == nil {
					pr = r.presenter(m.be)
					prs[m.be] = pr
				}
				peer := pr.peerFor(m.broker)
				if peer < 0 {
					continue
				}
				p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = peer, m.epoch
				peers[peer] = pr
				changed = true
			}
		}
	}
	// The family's done hook drops an endpoint listed twice.
	for peer, pr := range peers {
		if b, ok := pr.broker(peer); ok {
			out.Brokers = append(out.Brokers, kmsg.ProduceResponseBroker{NodeID: b.id, Host: b.host, Port: b.port, Rack: b.rack})
		}
	}
	return changed
}
