package kafka

// Migrated topics: virtual offsets and epochs over a chain of segments
// (fsm/migration.go, docs/migration.md).
//
// A migrated topic's partition is a chain of segments on several clusters.
// The live segment (the last; the topic's route points at its cluster) is
// written to; while its migration is switched and not finished, the one
// before it still serves reads below the live segment's start. On a
// segment, virtual offset = the cluster's offset + Delta(p), and presented
// leader epoch = the cluster's epoch + EpochBase, so offsets stay
// continuous and epochs never go backwards across a switch.
//
// The splitter (split.go) asks each family's segment hooks, for a topic
// with a chain (topicTarget.chain):
//   - older: whether a unit is served by the previous segment (a fetch
//     below the live start, an epoch older than the live segment's);
//   - local: whether the proxy answers it itself (an offset below the live
//     start when no previous segment serves reads any more), and with what;
//   - req: the part sent to a cluster, rewritten from virtual to that
//     cluster's offsets and epochs;
//   - resp: that cluster's answer, rewritten back to virtual.
// A request naming such a topic is always split (even with one target), so
// its bytes are rebuilt; plain topics keep the forwarding fast path.
//
// While a migration is fenced, Produce to its topic is refused on every
// peer with NOT_LEADER_OR_FOLLOWER (retriable: the client refreshes its
// metadata and retries, reaching the target once the route flips), and
// each peer counts the Produce requests it has in flight for topics under
// migration, so the driver can tell when the source has seen its last
// write (Server.ProduceInFlight).

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// segmentHooks are a family's translations for topics with a chain. Every
// hook is optional.
type segmentHooks[Req, Resp any] struct {
	older func(r *request, req Req, i, j int, tt topicTarget) bool
	// local reports that the unit is answered by the proxy; fill writes
	// the answer into the partition the splitter answered with code 0.
	local func(r *request, req Req, i, j int, tt topicTarget) bool
	fill  func(r *request, req Req, i, j int, tt topicTarget, rp any)
	req   func(r *request, t target, sub Req)
	resp  func(r *request, t target, resp Resp)
}

// segRef is one segment of a topic's chain as a request sees it: the
// segment, and where its reads end (the next segment's start; for the
// live segment, never).
type segRef struct {
	g    *fsm.Segment
	next *fsm.Segment // the segment after g, nil for the live one
}

// delta is what turns partition p's offsets on the segment's cluster into
// virtual ones.
func (s segRef) delta(p int32) int64 { return s.g.Delta(p) }

// end is the first virtual offset of partition p past this segment, or -1.
func (s segRef) end(p int32) int64 {
	if s.next == nil {
		return -1
	}
	return s.next.Start(p)
}

// toVirtual turns a cluster offset into a virtual one; negative values
// ("none") stay.
func (s segRef) toVirtual(p int32, off int64) int64 {
	if off < 0 {
		return off
	}
	if phys := s.physical(p); off < phys {
		// Below the segment: a retired segment's data the cluster still
		// holds, never presented.
		off = phys
	}
	v := off + s.delta(p)
	if e := s.end(p); e >= 0 && v > e {
		v = e
	}
	return v
}

// toPhysical turns a virtual offset into the cluster's; negative values
// stay.
func (s segRef) toPhysical(p int32, off int64) int64 {
	if off < 0 {
		return off
	}
	return off - s.delta(p)
}

// epochOut presents a cluster epoch; epochIn turns a presented one into
// the cluster's, -1 (no check) when it is older than the segment.
func (s segRef) epochOut(e int32) int32 {
	if e < 0 {
		return e
	}
	return e + s.g.EpochBase
}

// For the previous segment it is always -1: clients hold the live
// segment's epochs.
func (s segRef) epochIn(e int32) int32 {
	if s.next != nil || e < 0 || e < s.g.EpochBase {
		return -1
	}
	return e - s.g.EpochBase
}

// physical is the cluster's offset where partition p's segment starts.
func (s segRef) physical(p int32) int64 {
	if p < 0 || int(p) >= len(s.g.Physical) {
		return 0
	}
	return s.g.Physical[p]
}

// segmentOn is the segment of topic's chain served by cluster: the live
// one or the previous one while it still serves reads. ok is false for a
// topic without a chain, or when cluster serves neither.
func segmentOn(st *fsm.State, topic, cluster string) (segRef, bool) {
	ch := st.Chain(topic)
	if ch == nil {
		return segRef{}, false
	}
	live := ch.Live()
	if live.Cluster == cluster {
		return segRef{g: live}, true
	}
	if prev := ch.Previous(); prev != nil && prev.Cluster == cluster {
		return segRef{g: prev, next: live}, true
	}
	return segRef{}, false
}

// chainOf fills tt's chain when topic has one whose live segment is on the
// cluster tt routes to (the route moves with the switch, so they agree
// unless the state is being rewritten by hand), and the previous segment's
// backend while it serves reads.
func (r *request) chainOf(tt *topicTarget) {
	if len(r.st.Chains) == 0 || tt.be == nil {
		return
	}
	ch := r.st.Chain(tt.name)
	if ch == nil || ch.Live().Cluster != tt.be.Name() {
		return
	}
	tt.chain = ch
	if prev := ch.Previous(); prev != nil {
		tt.prev = r.set.byName[prev.Cluster]
	}
}

// live and previous are tt's segments (tt.chain set).
func (tt topicTarget) live() segRef { return segRef{g: tt.chain.Live()} }

func (tt topicTarget) previous() (segRef, bool) {
	prev := tt.chain.Previous()
	if prev == nil || tt.prev == nil {
		return segRef{}, false
	}
	return segRef{g: prev, next: tt.chain.Live()}, true
}

// prevTarget is where partition of tt goes on its previous segment.
func (tt topicTarget) prevTarget(partition int32) target {
	return target{tt.prev, tt.prev.leader(tt.name, partition)}
}

// fenced reports whether Produce to topic is refused now: its migration is
// in its fence phase.
func fenced(st *fsm.State, topic string) bool {
	if len(st.Migrations) == 0 {
		return false
	}
	m, ok := st.Migration(topic)
	return ok && m.Fenced()
}

// migrating reports whether topic has a migration that has not switched
// yet: its Produce requests are counted while in flight.
func migrating(st *fsm.State, topic string) bool {
	if len(st.Migrations) == 0 {
		return false
	}
	m, ok := st.Migration(topic)
	return ok && m.State == fsm.MigrationRunning
}

// inflight counts the Produce requests in flight per topic under
// migration, on this peer.
type inflight struct {
	m sync.Map // topic → *atomic.Int64
}

func (f *inflight) add(topic string, n int64) {
	v, ok := f.m.Load(topic)
	if !ok {
		v, _ = f.m.LoadOrStore(topic, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(n)
}

func (f *inflight) get(topic string) int64 {
	v, ok := f.m.Load(topic)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

// ProduceInFlight is the number of Produce requests naming topic that this
// peer has forwarded (or is forwarding) and not yet answered, counted for
// topics with a migration that has not switched. Requests with acks=0 are
// not counted (they have no answer).
func (s *Server) ProduceInFlight(topic string) int {
	return int(s.produceInflight.get(topic))
}

// releaseInflight ends the counting of a request's topics.
func (s *Server) releaseInflight(topics []string) {
	for _, t := range topics {
		s.produceInflight.add(t, -1)
	}
}

// fencedCode answers a fenced topic's Produce partitions.
var fencedCode = kerr.NotLeaderForPartition.Code

// noLeaseCode answers every Produce partition while the write lease is not
// valid (Config.Writes): retriable, and it sends the client to refresh its
// metadata.
var noLeaseCode = kerr.NotLeaderForPartition.Code

// shiftBatches rewrites, in place, the record batches of a fetched
// partition from segment s: each batch's base offset (outside the CRC)
// becomes virtual and, for v2 batches, its partition leader epoch (also
// outside the CRC) presented. Batches at or past the segment's end are
// cut off (none should exist: the source was fenced at that offset). It
// returns the (possibly shortened) batches.
func shiftBatches(b []byte, s segRef, p int32) []byte {
	d := s.delta(p)
	end := s.end(p)
	eb := s.g.EpochBase
	for off := 0; off+12 <= len(b); {
		base := int64(binary.BigEndian.Uint64(b[off:]))
		if end >= 0 && base+d >= end {
			return b[:off]
		}
		binary.BigEndian.PutUint64(b[off:], uint64(base+d))
		size := int(int32(binary.BigEndian.Uint32(b[off+8:])))
		if off+17 <= len(b) && b[off+16] >= 2 && eb != 0 {
			if e := int32(binary.BigEndian.Uint32(b[off+12:])); e >= 0 {
				binary.BigEndian.PutUint32(b[off+12:], uint32(e+eb))
			}
		}
		if size <= 0 {
			break
		}
		off += 12 + size
	}
	return b
}
