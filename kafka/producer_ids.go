package kafka

// Idempotent producers across clusters.
//
// A producer id is valid only on the cluster that issued it, and clusters
// issue the same small ids, so an id from one cluster must never reach
// another. The proxy therefore issues idempotent (non-transactional)
// producers a virtual producer id itself: InitProducerId without a
// transactional id is answered locally, and a KIP-360 epoch bump on a
// virtual id is answered locally too. Before a batch of a virtual id goes
// to a cluster, the peer maps (virtual id, epoch, cluster) to a real id
// that the cluster issued to the proxy (one InitProducerId on first use)
// and rewrites the batch's producer id and epoch, recomputing its CRC-32C
// (the batch's baseOffset is outside the CRC, the producer fields inside).
// Sequence numbers are the client's and stay per partition, so every
// partition keeps Kafka's idempotence guarantee as long as its batches go
// out under one real id.
//
// Peers share the mapping of a cluster's plain scope (a topic that is not
// rebased, below): the first peer to map a (virtual id, epoch) on a cluster
// claims its real id in the replicated table (Config.SharedProducerIDs,
// fsm/producer_ids.go; the first claim wins), and the others look it up
// and use it. So when a partition moves to another peer (its presenting
// peer died or its leader moved host) the new peer continues with the same
// real id: a batch the client retries across the switch is a duplicate to
// the broker, and a partition that comes back to a peer that served it
// before continues in sequence. Each peer's LRU stays in front; the table
// is read on a miss only, and a mapping in use is claimed again every 6
// hours (refreshClaim), since the table drops a claim a day after its last.
//
// Without the table (no proposer, a claim that failed or timed out, a peer
// of an older build in the cluster) each peer maps on its own, as before
// it: the new peer maps to a new real id; the broker accepts it as a
// producer it has no state for (Kafka 2.5+), so production goes on, but a
// batch retried across the switch may be stored twice. When the partition
// comes back to a peer that served it before, that peer's real id is
// behind on it and the broker refuses the next batch
// OUT_OF_ORDER_SEQUENCE_NUMBER, which librdkafka treats as fatal. The peer
// must not hide it by taking a new real id: it cannot tell sequences
// another peer wrote from sequences a refusal left unwritten while a later
// batch was in flight to it, and in the second case the client would take
// the unwritten batch as written (TestProducerMovesAwayAndBack).
// Transactional producers keep their real id from their home cluster's
// coordinator: a transaction never leaves that cluster.
//
// Where a producer's partitions can arrive with sequences another cluster
// saw (a migrated topic's segment, a topic whose route moved, a topic two
// clusters hold) the peer rebases them: the first batch it sends a
// partition goes out at sequence 0 under the real id, the rest follow
// (rebase, pidTarget). It costs one entry per producer and partition, so
// topics on one cluster only, the common case, are not rebased.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Virtual producer ids: the peer id + 1 in bits 40-55, so peers never
// collide, and a counter seeded from the clock in the low 40 bits, so a
// restarted peer does not reissue ids (it would take more than 16 ids per
// millisecond, sustained, to catch up with its own past).
const (
	vpidPeerShift = 40
	vpidLowMask   = 1<<vpidPeerShift - 1
)

type pidKey struct {
	vpid    int64
	vepoch  int16
	cluster string
}

type realPID struct {
	id    int64
	epoch int16
	// claimed is when (unix ms) the shared table's claim of this mapping
	// was made or last refreshed; 0: not shared.
	claimed int64
}

// producerIDs issues virtual producer ids and maps them to real ones per
// cluster. It is shared by every connection of a peer.
//
// The mapping table is an LRU (Config.ProducerIDMappings) in which every
// batch's lookup refreshes its mapping: evicting a mapping still in use
// would give its producer a new real id mid-stream, and a retried batch
// could then be stored twice. So a mapping used within
// Config.ProducerIDProtect is never evicted; while the table is full of
// such mappings a new one is refused (THROTTLING_QUOTA_EXCEEDED, which
// clients retry) rather than taken from another producer. Each connection
// may use at most Config.MaxProducerIDsPerConn virtual (id, epoch) pairs,
// so one client minting ids cannot fill the table by itself.
type producerIDs struct {
	counter atomic.Int64
	m       *lru[pidKey, realPID]
	// seqBases: per migrated segment, producer and partition, the first
	// sequence the proxy sent there (rebase).
	seqBases *lru[seqBaseKey, seqBase]
	mu       sync.Mutex
	// inflight coalesces concurrent lookups of one key.
	inflight map[pidKey]chan struct{}
	// moves: the topics whose route this peer saw move (pidTarget).
	moves routeMoves
	// claimFailed: a claim in the shared table failed (sharedRealID logs
	// the first only).
	claimFailed atomic.Bool
	// refreshing: the shared claims being refreshed (refreshClaim), under mu.
	refreshing map[pidKey]bool
}

func (p *producerIDs) init(now time.Time, cfg Config) {
	p.counter.Store(now.UnixMilli() << 4)
	p.m = newLRU[pidKey, realPID](cfg.ProducerIDMappings, cfg.ProducerIDIdle, cfg.ProducerIDProtect, nil)
	p.seqBases = newLRU[seqBaseKey, seqBase](cfg.ProducerIDMappings, cfg.ProducerIDIdle, cfg.ProducerIDProtect, nil)
	// A base evicted while its producer's real id stays would start over
	// at the next batch, sending the real id a sequence behind the one the
	// partition holds for it (OUT_OF_ORDER_SEQUENCE_NUMBER, fatal to
	// librdkafka): the real id goes with it, and the next batch takes a
	// new one, which the partition has no state for.
	p.seqBases.dropped = func(k seqBaseKey, _ seqBase) { p.m.remove(pidKey{k.vpid, k.vepoch, k.scope}) }
	p.inflight = map[pidKey]chan struct{}{}
	p.refreshing = map[pidKey]bool{}
	p.moves.m = map[routeMoveKey]routeMove{}
}

// issue returns a new virtual producer id for peer.
func (p *producerIDs) issue(peer int32) int64 {
	low := p.counter.Add(1) & vpidLowMask
	return int64(peer+1)<<vpidPeerShift | low
}

// seqPart names the partition of a batch whose sequences are rebased.
type seqPart struct {
	topic     string
	partition int32
}

type seqBaseKey struct {
	scope     string
	vpid      int64
	vepoch    int16
	topic     string
	partition int32
}

// seqBase is where a producer's sequences start on a segment's partition:
// first, the client's first sequence sent there, goes out as start. guess:
// start came from the cluster (txnSeqStart) and no batch from it has been
// accepted yet (fixSeqGuesses may still set it to 0).
type seqBase struct {
	first, start int32
	guess        bool
}

// rebase rewrites batch's first sequence relative to the first one sent
// to this segment's partition by this producer (the CRC is brought up to date with
// the producer id right after). The first one goes out as the sequence
// start returns (called once, on the first batch; nil: 0), which is where
// the cluster expects the producer's real id to continue on the
// partition. A batch from before that first one cannot be placed: it is
// refused, retriably; so is the first one when start fails.
func (p *producerIDs) rebase(scope string, vpid int64, vepoch int16, part *seqPart, batch []byte, start func() (int32, int16)) int16 {
	k := seqBaseKey{scope, vpid, vepoch, part.topic, part.partition}
	seq := int32(binary.BigEndian.Uint32(batch[batchSeqOff:]))
	base, ok := p.seqBases.get(k)
	if !ok {
		base = seqBase{first: seq}
		if start != nil {
			var code int16
			if base.start, code = start(); code != 0 {
				return code
			}
			base.guess = base.start != 0
		}
		if !p.seqBases.put(k, base) {
			return kerr.ThrottlingQuotaExceeded.Code
		}
	}
	if seq < base.first && base.first-seq < 1<<30 {
		return kerr.NotLeaderForPartition.Code
	}
	out := int64(seq) - int64(base.first)
	if out < 0 {
		out += math.MaxInt32 // the sequence wrapped past MaxInt32 since the base
	}
	out = (out + int64(base.start)) % math.MaxInt32
	setBatchSeq(batch, int32(out))
	return 0
}

// firstSeq is the client's first sequence of k's rebase.
func (p *producerIDs) firstSeq(k seqBaseKey) int32 {
	b, _ := p.seqBases.get(k)
	return b.first
}

// guessed reports whether k's rebase started from a start the cluster
// suggested that no accepted batch has confirmed yet.
func (p *producerIDs) guessed(k seqBaseKey) bool {
	b, ok := p.seqBases.get(k)
	return ok && b.guess
}

// settleGuess records the cluster's answer to a batch rebased from a
// guessed start of k: accepted, the start stands; refused as out of order,
// the start becomes 0 (the cluster holds the producer's state from an
// older epoch, which kfake's DescribeProducers does not tell apart). It
// reports whether the start changed.
func (p *producerIDs) settleGuess(k seqBaseKey, accepted bool) bool {
	p.mu.Lock() // one answer settles a guess
	defer p.mu.Unlock()
	b, ok := p.seqBases.get(k)
	if !ok || !b.guess {
		return false
	}
	b.guess = false
	if accepted {
		p.seqBases.put(k, b)
		return false
	}
	b.start = 0
	p.seqBases.put(k, b)
	return true
}

// pidScope is the producer-id mapping scope of tt's partitions: its
// cluster, and the live segment for a migrated topic (mapProducers).
func pidScope(tt topicTarget) string {
	if tt.chain == nil {
		return tt.be.Name()
	}
	return tt.be.Name() + "\x00segment " + strconv.Itoa(int(tt.chain.Live().EpochBase))
}

// pidTarget is how the batches of idempotent producers on tt's partitions
// are mapped: the scope of their real ids (pidScope) and whether their
// sequences are rebased (rebase). A migrated topic's segment rebases
// (mapProducers). So does a topic whose route this peer saw move to
// another cluster (a route change, a failover, a failback): its producers
// continue their sequences, which the new cluster's partitions refuse when
// they never held a record (KAFKA-15591, fatal to librdkafka); the scope
// then names the move, so a topic that comes back to a cluster it left
// gets real ids there that its partitions hold no sequences for, rather
// than the ones it had, which the continued sequences would leave a gap
// behind. A topic the peer did not see move (the peer started after the
// route changed) is rebased when another cluster also holds it, as a
// route change's source and target both do; a topic on one cluster only,
// the common case, keeps the client's sequences and costs no base.
//
// Whether a scope rebases never changes: the scope says it. A real id that
// wrote a partition unrebased and then went on rebased would send the
// partition a sequence back at the start, refused as out of order; so when
// the answer changes (the topic was created on a second cluster while its
// producers ran) the producers take new real ids.
func (r *request) pidTarget(tt topicTarget) (scope string, rebase bool) {
	if tt.chain != nil {
		return pidScope(tt), true
	}
	m := r.c.s.pids.moves.observe(r.region, tt.name, tt.be.Name(), tt.be.knows(tt.name))
	if m.moves > 0 {
		return m.scope, true
	}
	for _, b := range r.set.sorted {
		if b != tt.be && b.knows(tt.name) {
			return m.rebased, true
		}
	}
	return m.scope, false
}

// routeMoves remembers, per client region and topic, the cluster this
// peer last routed the topic's producers to, and how many times that
// changed: the route's moves as this peer saw them (pidTarget).
type routeMoves struct {
	mu sync.RWMutex
	m  map[routeMoveKey]routeMove
}

type routeMoveKey struct{ region, topic string }

// routeMove: the scopes are built once per move, not per batch.
type routeMove struct {
	cluster string
	moves   int
	// scope is the real-id scope: the cluster, then the move count once
	// the route moved; rebased, the cluster's scope for rebased sequences.
	scope, rebased string
}

func newRouteMove(cluster string, moves int) routeMove {
	m := routeMove{cluster: cluster, moves: moves, scope: cluster, rebased: cluster + "\x00rebased"}
	if moves > 0 {
		m.scope = cluster + "\x00route move " + strconv.Itoa(moves)
		m.rebased = m.scope
	}
	return m
}

// maxRouteMoves bounds the topics remembered; past it the memory starts
// over (the moved topics' producers then take new real ids once, and keep
// being rebased where the topic is on two clusters).
const maxRouteMoves = 1 << 18

// observe records that topic is routed to cluster for region's clients and
// returns the route's moves as this peer saw them. Only topics the cluster
// holds (known) are remembered, so names clients make up take no room.
func (rm *routeMoves) observe(region, topic, cluster string, known bool) routeMove {
	k := routeMoveKey{region, topic}
	rm.mu.RLock()
	m, ok := rm.m[k]
	rm.mu.RUnlock()
	if ok && m.cluster == cluster {
		return m
	}
	if !ok && !known {
		return newRouteMove(cluster, 0)
	}
	rm.mu.Lock()
	defer rm.mu.Unlock()
	m, ok = rm.m[k]
	switch {
	case ok && m.cluster == cluster: // another request recorded it meanwhile
	case ok:
		m = newRouteMove(cluster, m.moves+1)
		rm.m[k] = m
	default:
		if len(rm.m) >= maxRouteMoves {
			clear(rm.m)
		}
		m = newRouteMove(cluster, 0)
		rm.m[k] = m
	}
	return m
}

// isVirtual reports whether id was issued by a proxy peer.
func isVirtual(id int64) bool { return id>>vpidPeerShift > 0 }

// cached returns the real producer id and epoch mapped to (vpid, vepoch)
// on cluster, without asking the cluster.
func (p *producerIDs) cached(cluster string, vpid int64, vepoch int16) (realPID, bool) {
	return p.m.get(pidKey{vpid, vepoch, cluster})
}

// real returns the real producer id and epoch for (vpid, vepoch) on
// cluster, asking the cluster for one (ask: its initProducerID) on first use.
func (p *producerIDs) real(ctx context.Context, cluster string, vpid int64, vepoch int16, ask func(context.Context) (realPID, error)) (int64, int16, error) {
	key := pidKey{vpid, vepoch, cluster}
	for {
		if r, ok := p.m.get(key); ok {
			return r.id, r.epoch, nil
		}
		p.mu.Lock()
		wait, busy := p.inflight[key]
		if !busy {
			wait = make(chan struct{})
			p.inflight[key] = wait
			p.mu.Unlock()
			break
		}
		p.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
	r, err := ask(ctx)
	if err == nil && !p.m.put(key, r) {
		err = fmt.Errorf("%w: %d producer id mappings, all in use", ErrProducerIDLimit, p.m.len())
	}
	p.mu.Lock()
	close(p.inflight[key])
	delete(p.inflight, key)
	p.mu.Unlock()
	if err != nil {
		return 0, 0, err
	}
	return r.id, r.epoch, nil
}

// askCluster is real's ask for a mapping the cluster alone issues.
func askCluster(be *Backend) func(context.Context) (realPID, error) {
	return func(ctx context.Context) (realPID, error) {
		id, epoch, err := be.initProducerID(ctx)
		return realPID{id: id, epoch: epoch}, err
	}
}

// Results of a first use's real id on a cluster's plain scope
// (switchyard_kafka_producer_id_claims_total).
const (
	claimShared = "shared" // another peer's, from the table
	claimWon    = "won"    // this peer's, now in the table
	claimLocal  = "local"  // this peer's, unshared (the claim failed)
	// Refreshes of a claim in use (refreshClaim): the table holds it
	// again for a day; or it failed (tried again at a later batch); or
	// the table holds another real id (it dropped this one), which this
	// peer does not switch to and stops refreshing.
	claimRefreshed      = "refreshed"
	claimRefreshFailed  = "refresh_failed"
	claimRefreshDiffers = "refresh_differs"
)

// claimTimeout bounds a first use's claim in the shared table: the
// producer's batch (and the connection's reader) waits for it, so a Raft
// group without a leader for longer (an election takes 1-2 s) costs a
// batch at most this, after which the peer maps on its own.
const claimTimeout = 3 * time.Second

// claimRefreshAfter is how old a shared claim in use may grow before this
// peer claims it again: a quarter of the table's day (fsm.ProducerIDClaimTTL),
// so a producer that runs for weeks keeps its entry, and every peer using
// it refreshes it about four times a day.
const claimRefreshAfter = 6 * time.Hour

// sharedRealID is the real id for (vpid, vepoch) on be's plain scope
// through the replicated table: the one it holds, else one be issues now,
// claimed in the table; when another peer claimed the key first, its id
// (the one issued here is left unused; the cluster expires it). A claim
// that fails or takes longer than claimTimeout (no leader, a peer of
// an older build refusing the command) leaves the id issued here, unshared,
// as before the table: the failure is logged once per peer, then at debug.
// It runs within real's coalescing, so a peer claims a key once at a time,
// and without p.mu.
func (s *Server) sharedRealID(ctx context.Context, sh SharedProducerIDs, be *Backend, vpid int64, vepoch int16) (realPID, error) {
	if c, ok := sh.Lookup(be.Name(), vpid, vepoch); ok {
		s.metrics.producerIDClaims.WithLabelValues(claimShared).Inc()
		return realPID{c.ID, c.Epoch, c.At}, nil
	}
	id, epoch, err := be.initProducerID(ctx)
	if err != nil {
		return realPID{}, err
	}
	cctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	defer cancel()
	held, err := sh.Claim(cctx, be.Name(), vpid, vepoch, id, epoch)
	switch {
	case err != nil:
		s.metrics.producerIDClaims.WithLabelValues(claimLocal).Inc()
		if s.pids.claimFailed.CompareAndSwap(false, true) {
			s.log.Warn("a producer id could not be shared with the other peers; this peer uses its own until claims succeed (logged once)",
				"cluster", be.Name(), "err", err)
		} else {
			s.log.Debug("a producer id could not be shared with the other peers", "cluster", be.Name(), "err", err)
		}
		return realPID{id: id, epoch: epoch}, nil
	case held.ID == id && held.Epoch == epoch:
		s.metrics.producerIDClaims.WithLabelValues(claimWon).Inc()
	default:
		s.metrics.producerIDClaims.WithLabelValues(claimShared).Inc()
	}
	return realPID{held.ID, held.Epoch, held.At}, nil
}

// refreshClaim claims m, the shared mapping of (vpid, vepoch) on cluster
// this peer is using, again once it is claimRefreshAfter old, so the table
// keeps it past its day while the producer runs. It runs aside (a batch
// never waits for it), one at a time per key. When the table holds another
// real id (it dropped this one: a day without a refresh from any peer, a
// restore) this peer keeps its own, as it would without the table:
// switching mid-stream would send that id sequences out of order on the
// partitions this peer writes.
func (s *Server) refreshClaim(sh SharedProducerIDs, cluster string, vpid int64, vepoch int16, m realPID) {
	p := &s.pids
	if time.Now().UnixMilli()-m.claimed < claimRefreshAfter.Milliseconds() {
		return
	}
	key := pidKey{vpid, vepoch, cluster}
	p.mu.Lock()
	if p.refreshing[key] {
		p.mu.Unlock()
		return
	}
	p.refreshing[key] = true
	p.mu.Unlock()
	go func() {
		defer func() {
			p.mu.Lock()
			delete(p.refreshing, key)
			p.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), coordinatorTimeout)
		defer cancel()
		held, err := sh.Claim(ctx, cluster, vpid, vepoch, m.id, m.epoch)
		claimed := int64(0) // another id holds: stop refreshing
		switch {
		case err != nil:
			s.metrics.producerIDClaims.WithLabelValues(claimRefreshFailed).Inc()
			s.log.Debug("a shared producer id claim could not be refreshed; trying again at a later batch", "cluster", cluster, "err", err)
			return
		case held.ID == m.id && held.Epoch == m.epoch:
			s.metrics.producerIDClaims.WithLabelValues(claimRefreshed).Inc()
			claimed = held.At
		default:
			s.metrics.producerIDClaims.WithLabelValues(claimRefreshDiffers).Inc()
			s.log.Debug("the shared table holds another real id for a producer this peer maps; keeping this peer's", "cluster", cluster)
		}
		p.m.update(key, func(r realPID) realPID {
			if r.id == m.id && r.epoch == m.epoch {
				r.claimed = claimed
			}
			return r
		})
	}()
}

// connPIDs are the virtual (id, epoch) pairs one connection used; owned by
// its reader goroutine.
type connPIDs map[[2]int64]struct{}

// use records (vpid, vepoch) for c, refusing a new pair past the cap.
func (c *clientConn) usePID(vpid int64, vepoch int16) bool {
	k := [2]int64{vpid, int64(vepoch)}
	if _, ok := c.vpids[k]; ok {
		return true
	}
	if len(c.vpids) >= c.s.cfg.MaxProducerIDsPerConn {
		return false
	}
	if c.vpids == nil {
		c.vpids = connPIDs{}
	}
	c.vpids[k] = struct{}{}
	return true
}

// initProducerID asks the cluster for a producer id for the proxy's own
// use (non-transactional).
func (b *Backend) initProducerID(ctx context.Context) (int64, int16, error) {
	req := kmsg.NewPtrInitProducerIDRequest()
	req.ProducerID, req.ProducerEpoch = -1, -1
	resp, err := b.request(ctx, -1, req)
	if err != nil {
		return 0, 0, err
	}
	r := resp.(*kmsg.InitProducerIDResponse)
	if r.ErrorCode != 0 {
		return 0, 0, fmt.Errorf("init producer id on %s: %w", b.Name(), kerr.ErrorForCode(r.ErrorCode))
	}
	return r.ProducerID, r.ProducerEpoch, nil
}

// handleIdempotentInit answers InitProducerId without a transactional id:
// a new virtual id, or the next epoch of the client's virtual id (KIP-360).
// Past the connection's cap it answers THROTTLING_QUOTA_EXCEEDED (KIP-599's
// error for a quota on creating resources): clients retry it with backoff
// and then report it, where an error meaning "no coordinator" would have
// them retry forever.
func handleIdempotentInit(c *clientConn, r *request, start time.Time, req *kmsg.InitProducerIDRequest) error {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.SetVersion(r.version)
	if req.ProducerID >= 0 && isVirtual(req.ProducerID) && req.ProducerEpoch >= 0 && req.ProducerEpoch < 32767 {
		resp.ProducerID, resp.ProducerEpoch = req.ProducerID, req.ProducerEpoch+1
	} else {
		resp.ProducerID, resp.ProducerEpoch = c.s.pids.issue(c.s.cfg.NodeID), 0
	}
	if !c.usePID(resp.ProducerID, resp.ProducerEpoch) {
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		resp.ErrorCode = kerr.ThrottlingQuotaExceeded.Code
	}
	return c.respond(r, start, resp)
}

// mapProducers rewrites every batch of a virtual producer in records to
// the real id be issued for it. It returns a partition error code when the
// mapping failed (the client retries) or a batch is corrupt
// (CORRUPT_MESSAGE, as the broker answers a CRC mismatch; clients do not
// retry it), else 0. A virtual id's first batch to a cluster blocks this
// client's reader while the cluster is asked for a real id (an
// InitProducerId, within coordinatorTimeout), after what is queued
// upstream has been flushed; later batches find the mapping cached.
//
// scope names the mapping: the cluster's name, and for a migrated topic
// also its live segment (pidScope), so a producer whose partitions came
// back to a cluster it wrote them on before gets a real id that cluster
// has not seen for them: the sequences it continues with (from the other
// cluster) would be a gap for the old one (KAFKA-15591's refusal), which
// librdkafka takes for lost messages.
//
// On a migrated topic's segment (part set) the sequences are rebased too:
// the first batch the proxy sends a partition there starts at 0, the
// rest follow from it. A partition that never held a record refuses an
// unknown producer's first sequence unless it is 0 (KAFKA-15591), and a
// producer moving with its topic onto a fresh partition continues the
// sequences it had on the source.
func (c *clientConn) mapProducers(be *Backend, scope string, part *seqPart, records []byte) int16 {
	var code int16
	batchesOf(records, func(batch []byte) bool {
		vpid, vepoch := batchProducer(batch)
		if vpid < 0 || !isVirtual(vpid) {
			return true
		}
		if !batchRewritable(batch) {
			c.s.metrics.corruptBatches.Inc()
			code = kerr.CorruptMessage.Code
			return false
		}
		if !c.usePID(vpid, vepoch) {
			code = kerr.ThrottlingQuotaExceeded.Code
			return false
		}
		if part != nil {
			// After the CRC check: the rewrite below may recompute it.
			if code = c.s.pids.rebase(scope, vpid, vepoch, part, batch, nil); code != 0 {
				return false
			}
		}
		if m, ok := c.s.pids.cached(scope, vpid, vepoch); ok {
			if m.claimed != 0 {
				c.s.refreshClaim(c.s.cfg.SharedProducerIDs, scope, vpid, vepoch, m)
			}
			setBatchProducer(batch, m.id, m.epoch)
			return true
		}
		ctx, cancel := context.WithTimeout(context.Background(), coordinatorTimeout)
		defer cancel()
		// A lookup on a miss blocks this reader; send what is queued first.
		if err := c.flushUpstreams(); err != nil {
			code = kerr.RequestTimedOut.Code
			return false
		}
		ask := askCluster(be)
		if sh := c.s.cfg.SharedProducerIDs; sh != nil && part == nil && scope == be.Name() {
			// The cluster's plain scope only: a rebased scope's sequences
			// start over per peer (its bases are not shared), so a shared
			// real id would send a partition it already wrote sequence 0.
			ask = func(ctx context.Context) (realPID, error) {
				return c.s.sharedRealID(ctx, sh, be, vpid, vepoch)
			}
		}
		id, epoch, err := c.s.pids.real(ctx, scope, vpid, vepoch, ask)
		if err != nil {
			c.log.Debug("no producer id from the backend", "cluster", be.Name(), "err", err)
			code = kerr.RequestTimedOut.Code
			if errors.Is(err, ErrProducerIDLimit) {
				code = kerr.ThrottlingQuotaExceeded.Code
			}
			return false
		}
		setBatchProducer(batch, id, epoch)
		return true
	})
	return code
}
