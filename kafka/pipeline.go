package kafka

// The request pipeline: what every client request passes through.
//
//  1. The connection's reader parses the header and builds the request
//     (newRequest): the replicated state and the backend set are read once
//     here, so every decision about one request (routes, homes, the
//     presented brokers) is made under one state, even when a route flips
//     while it is being served. Through its connection (r.c) the request
//     also carries the client: its address (clientIP), later its region
//     and principal.
//  2. The key's handler (one file per key, NN_name.go) declares what it
//     needs: the resolver below turns each topic into a cluster (with the
//     route-change bounce), a group or transactional id into its home
//     cluster; partition-keyed keys hand a family to the splitter
//     (split.go), which routes every partition to its leader or
//     coordinator, forwards the original bytes when one target serves them
//     all, and otherwise splits and merges.
//  3. Answers are rewritten by the family's hooks on every exit: the
//     single-target path, each part of a split, and the merged answer.
//     A hook that can tell from the bytes that nothing needs changing
//     (quiet) keeps the zero-decode path.
//
// Later features plug in here once: offset translation and epoch fencing
// in the resolver and the family hooks, region-aware presentation in the
// connection's presenter, authorization per resolved topic.

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/quota"
)

// request is one client request on its way through the proxy. Its bytes
// (buf, body) are valid until its handler returns; the rest may be read by
// the hooks that rewrite its answer later.
type request struct {
	requestHeader
	buf  *buffer // the whole frame, size prefix included
	body []byte  // the body, after the header

	c     *clientConn
	start time.Time   // when the frame was read
	st    *fsm.State  // the replicated state this request is served under
	set   *backendSet // the backends this request is served by
	// region is the client's region under st (clientConn.clientRegion):
	// what it is presented (near serving) and routed by (RouteForRegion).
	region string

	// split is the scratch of the key's hooks between the routing pass and
	// the answer (split.go), kept here so a request allocates it once.
	split splitState

	// inflight are the topics under migration this Produce is counted
	// for (segments.go): handed to its response slot, released when the
	// slot is finished, or when the request ends without one.
	inflight []string

	// amend, when set, changes the answer before it is written
	// (acl_requests.go: denied entries of a batch, filtered listings).
	amend func(kmsg.Response)
}

// splitState is what a family's hooks keep between routing a request and
// rewriting its answer.
type splitState struct {
	home      *Backend       // the transaction's or group's home cluster
	throttle  quota.Throttle // quota throttle charged so far (Produce)
	advertise int32          // throttle the answer advertises (KIP-219)
	maxBytes  int32          // the fetch's byte cap so far (Fetch)
	// byID: the key translates topic ids at this version (split.go); the
	// resolver refuses ids otherwise.
	byID bool
	// metaWaited: the request has waited once for fresh metadata on an
	// unknown topic id (awaitMetadata).
	metaWaited bool
	// chained: a topic of the request has a segment chain (segments.go);
	// the request is split and its parts and answers translated.
	chained bool
	// noWrite: the write gate refused this write request (Produce,
	// AddPartitionsToTxn; newRequest asks it); the handler answers every
	// routed topic with a retriable error and forwards nothing. Here, in
	// the padding after the flags above, the request keeps its size class.
	noWrite bool
	// txnDenied: the principal may not Write the transactional id of
	// this Produce (acl_requests.go); every topic is refused.
	txnDenied bool
	// req is the client's decoded request.
	req kmsg.Request
	// fetch: the client fetch session this Fetch uses (fetch_session.go).
	fetch *fetchUse
	// g848: the KIP-848 member an OffsetCommit names (68_consumer_group_heartbeat.go).
	g848 commit848
	// txn and txnPID: the transactional id of AddPartitionsToTxn and
	// TxnOffsetCommit when the client sent its virtual producer id, and
	// the real one on home (txn_clusters.go); -1 when nothing is swapped.
	txn    string
	txnPID int64
	// TxnOffsetCommit: its group's home cluster, and the error adding the
	// group to the transaction gave (txnOffsetsOn).
	groupHome *Backend
	// memberGone: the commit comes from a member an offset reset removed
	// (group_reset.go); every partition is refused.
	memberGone bool
	txnCode    int16
	// seqGuesses: Produce partitions whose transactional batches were
	// rebased from a start the cluster's DescribeProducers suggested
	// (txnSeqStart); an OUT_OF_ORDER_SEQUENCE_NUMBER answer for them
	// falls back to 0 (fixSeqGuesses).
	seqGuesses []seqBaseKey
	// leaders: Produce partitions the peer refused while knowing their
	// leader, whose answers name it (KIP-951; produce_order.go).
	leaders []leaderPart
}

// newRequest builds the request for a frame whose header is h: the state
// and the backend set are read here, once.
func (c *clientConn) newRequest(h requestHeader, buf *buffer, start time.Time) *request {
	// The write gate is asked before the state is read: the node extends
	// its lease only once it has applied the index the lease was granted
	// at, so a request that found the lease valid is served under a state
	// at least that recent (a fence applied by then is enforced).
	noWrite := false
	if gatedKey(h.key) && c.s.cfg.Writes != nil {
		noWrite = !c.s.cfg.Writes.WriteAllowed()
	}
	st := c.s.view.State()
	return &request{
		requestHeader: h,
		buf:           buf,
		body:          buf.b[4+h.bodyOff:],
		c:             c,
		start:         start,
		st:            st,
		set:           c.s.backends.Load(),
		region:        c.clientRegion(st),
		split:         splitState{noWrite: noWrite},
	}
}

// reencode replaces the request's bytes with req encoded (same key,
// version, correlation and client id; header tags are dropped): for the
// rare rewrite that changes a field's length (Fetch's rack_id). The frame
// is rewritten in the request's own buffer when it fits.
func (r *request) reencode(req kmsg.Request) {
	// Sized once: the frame as it came plus room for a longer field, so
	// the encode does not grow its buffer step by step.
	nb := appendRequest(make([]byte, 0, len(r.buf.b)+64), req, r.corr, r.clientID)
	if cap(r.buf.b) >= len(nb) {
		r.buf.b = append(r.buf.b[:0], nb...)
	} else {
		r.buf.b = nb
	}
	off := 8 + 2
	if r.clientID != nil {
		off += len(*r.clientID)
	}
	if req.IsFlexible() {
		off++
	}
	r.bodyOff = off
	r.body = r.buf.b[4+off:]
}

// gatedKey reports whether the write gate is asked for key: Produce and
// AddPartitionsToTxn (writes to topics), and the group keys an offset
// reset relies on every peer for (group_reset.go): commits, joins and
// offset fetches, which a peer without a lease holds as if every group's
// offsets were being reset.
func gatedKey(key int16) bool {
	switch key {
	case 0, 24, 8, 28, 9, 11, 68:
		return true
	}
	return false
}

// defaultBackend serves what names no topic or group: the default cluster
// (for this client's region), else the first by name; nil when there is
// none.
func (r *request) defaultBackend() *Backend { return r.set.fallback(r.st, r.region) }

// route is the cluster topic routes to (exact route, longest prefix, the
// default cluster), or nil. It applies no bounce: for merges and admin
// keys, which hold no client-cached leader. The keys that write records
// (writesRecords) resolve where records are written, which differs from
// where they are read while a cluster fails back (fsm.ProduceRouteForRegion).
func (r *request) route(topic string) *Backend {
	return r.set.route(r.st, topic, r.region, writesRecords(r.key))
}

// writesRecords reports whether key writes records to the topics it names:
// Produce and AddPartitionsToTxn. During a draining failback they go to the
// recovered cluster while every other key stays on the fallback.
func writesRecords(key int16) bool { return key == 0 || key == 24 }

// home is the home cluster of a consumer group or transactional id for
// this request's client's region.
func (r *request) home(key string) *Backend { return r.set.home(r.st, key, r.region) }

// presenter presents be's brokers as peers to this request's client (only
// its region's peers: near serving).
func (r *request) presenter(be *Backend) *presenter { return r.c.presenter(r.st, r.region, be.Name()) }

// presenterOf is presenter for a cluster by name ("" for no cluster: the
// broker list only).
func (r *request) presenterOf(cluster string) *presenter {
	return r.c.presenter(r.st, r.region, cluster)
}

// topicTarget is how one topic of a request is served: by be, or, with be
// nil, answered by the proxy with code for every partition.
type topicTarget struct {
	be   *Backend
	name string
	code int16
	// id is be's own id for the topic when the client named it by its
	// virtual id (topicids.go); zero when it named it by name.
	id [16]byte
	// chain is the topic's segment chain when it migrated, and prev the
	// backend of its previous segment while that still serves reads
	// (segments.go).
	chain *fsm.TopicChain
	prev  *Backend
	// meta is be's metadata of the topic as the request resolved it (nil
	// when be did not know it then): its partitions' leaders are read from
	// it, so a request naming many partitions of a topic looks the topic up
	// once rather than once per partition.
	meta *topicMeta
}

// metricName is the topic's per-topic series name: only topics the backend
// knows get a series of their own, so made-up names cannot use up the cap.
func (tt topicTarget) metricName() string {
	if tt.be == nil || tt.meta == nil && !tt.be.knows(tt.name) {
		return OtherTopic
	}
	return tt.name
}

// Route-change bounce classes. After a route is re-pointed, the first
// request of each class naming the topic on a connection is answered with
// the class's retriable error instead of being forwarded, so the client
// drops what it cached about the old cluster and retries against the new
// one: a partition leader (NOT_LEADER_OR_FOLLOWER: refresh metadata) or a
// group/transaction coordinator (NOT_COORDINATOR: look the coordinator up
// again; coordinator keys are bounced whole, as a coordinator move looks).
//
// The keys that write records have classes of their own, because during a
// draining failback they route elsewhere than the reads of the same topic:
// one connection that both produces and fetches a topic would otherwise
// be bounced on every request, each undoing the other's memory.
const (
	bounceNone uint8 = iota
	bounceLeader
	bounceCoordinator
	bounceProduce
	bounceTxnAdd
)

// bounceOf is key's bounce class and the error it answers with.
func bounceOf(key int16) (uint8, int16) {
	switch key {
	case 0: // Produce
		return bounceProduce, kerr.NotLeaderForPartition.Code
	case 24: // AddPartitionsToTxn
		return bounceTxnAdd, kerr.NotCoordinator.Code
	case 1, 2, 21, 23, 61: // Fetch, ListOffsets, DeleteRecords, OffsetForLeaderEpoch, DescribeProducers
		return bounceLeader, kerr.NotLeaderForPartition.Code
	case 8, 9, 28, 47: // OffsetCommit, OffsetFetch, TxnOffsetCommit, OffsetDelete
		return bounceCoordinator, kerr.NotCoordinator.Code
	}
	return bounceNone, 0
}

// topic resolves one topic a request names, by name or, with name empty,
// by the virtual id the client knows (topicids.go): then, for a key that
// translates ids (r.split.byID), the target carries the routed cluster's
// own id for it, and an id the proxy does not know (or whose cluster has
// not reported one yet) is UNKNOWN_TOPIC_ID; a key that does not refuses
// every id so, as no broker knows a virtual one. A
// topic no rule routes is UNKNOWN_TOPIC_OR_PARTITION; a topic whose route
// moved since this connection last named it in a request of this key's
// class is answered with the class's bounce once.
func (r *request) topic(name string, id [16]byte) topicTarget {
	var real [16]byte
	if name == "" && id != ([16]byte{}) {
		if !r.split.byID {
			return topicTarget{code: kerr.UnknownTopicID.Code}
		}
		be, n := r.resolveVID(id)
		if be == nil {
			return topicTarget{name: n, code: kerr.UnknownTopicID.Code}
		}
		var ok bool
		if real, ok = be.topicID(n); !ok && r.awaitMetadata(be) {
			real, ok = be.topicID(n)
		}
		if !ok {
			return topicTarget{name: n, code: kerr.UnknownTopicID.Code}
		}
		name = n
	}
	if op := topicOp(r.key); op != opUnknown {
		// Kafka answers an unauthorized topic, existing or not, in its
		// own entry; nothing of it is forwarded (acl_requests.go).
		if ok, code := r.topicAllowed(op, name); !ok {
			return topicTarget{name: name, code: code}
		}
	}
	be := r.route(name)
	if be == nil {
		return topicTarget{name: name, code: kerr.UnknownTopicOrPartition.Code}
	}
	if class, code := bounceOf(r.key); class != bounceNone && r.c.routes.moved(class, name, be.Name()) {
		return topicTarget{name: name, code: code}
	}
	tt := topicTarget{be: be, name: name, id: real, meta: be.meta(name)}
	r.chainOf(&tt)
	return tt
}

// resolveVID is topicOfVID (topicids.go), waiting once for fresh
// metadata when the id is unknown (awaitMetadata): a topic created
// through another peer, or on the cluster itself, is not in this peer's
// metadata until a refresh or a client's Metadata through this peer
// brings it.
func (r *request) resolveVID(vid [16]byte) (*Backend, string) {
	be, name := r.topicOfVID(vid)
	if name == "" && r.awaitMetadata(r.set.sorted...) {
		be, name = r.topicOfVID(vid)
	}
	return be, name
}

// metadataWait bounds how long a request naming a topic id this peer does
// not know waits for its backends' metadata (awaitMetadata).
const metadataWait = 2 * time.Second

// awaitMetadata refreshes the metadata of bes and waits for it, bounded
// by metadataWait, once per request: a topic id this peer does not know
// is most often a topic just created, whose metadata the client had from
// another peer. Answered UNKNOWN_TOPIC_ID at once, the client would back
// off (a quarter of a second and more) and refresh before retrying, and
// might meet the same answer again if this peer's refresh had not ended
// by then. It reports whether a refresh ended meanwhile, so the caller
// looks again; an id still unknown after that is answered
// UNKNOWN_TOPIC_ID. The wait blocks this client's reader, as a
// coordinator lookup does; what is already queued upstream is flushed
// first.
func (r *request) awaitMetadata(bes ...*Backend) bool {
	if r.split.metaWaited || len(bes) == 0 {
		return false
	}
	r.split.metaWaited = true
	r.c.flushUpstreams() // an error resurfaces on the next write
	ctx, cancel := context.WithTimeout(context.Background(), metadataWait)
	defer cancel()
	var (
		wg        sync.WaitGroup
		refreshed atomic.Bool
	)
	for _, be := range bes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if be.awaitRefresh(ctx) {
				refreshed.Store(true)
			}
		}()
	}
	wg.Wait()
	return refreshed.Load()
}

// leader is the target for partition of a routed topic: its leader broker
// (-1, any broker, when the leader is unknown).
func (tt topicTarget) leader(partition int32) target {
	if tt.meta != nil {
		return target{tt.be, tt.meta.leader(partition)}
	}
	return target{tt.be, tt.be.leader(tt.name, partition)}
}

// metaNow is the topic's metadata as the request resolved it, or as be
// knows it now when it did not then (nil when be does not know it).
func (tt topicTarget) metaNow() *topicMeta {
	if tt.meta != nil {
		return tt.meta
	}
	return tt.be.meta(tt.name)
}

// leaderEpoch is the epoch of partition's leader (-1 when unknown).
func (tt topicTarget) leaderEpoch(partition int32) int32 {
	if m := tt.metaNow(); m != nil {
		return m.leaderEpoch(partition)
	}
	return -1
}

// coordinator is the target for key's coordinator on be. On a cache miss
// it asks be and blocks this client's reader until the answer (bounded by
// coordinatorTimeout); what is already queued upstream is flushed first.
func (r *request) coordinator(be *Backend, typ int8, key string) target {
	return r.c.coordinatorTarget(be, typ, key)
}

// routeMemory remembers, per connection and bounce class, which cluster
// each topic was last routed to (see bounceOf).
type routeMemory struct {
	m map[routeKey]string
}

type routeKey struct {
	class uint8
	topic string
}

// maxRouteMemory bounds the topics a connection remembers; past it the
// memory starts over (at worst a bounce is missed, never a wrong route).
const maxRouteMemory = 4096

// moved records that topic now routes to cluster for class and reports
// whether it routed elsewhere before on this connection.
func (rm *routeMemory) moved(class uint8, topic, cluster string) bool {
	if rm.m == nil {
		rm.m = make(map[routeKey]string)
	}
	k := routeKey{class, topic}
	prev, seen := rm.m[k]
	if seen && prev == cluster {
		return false
	}
	if len(rm.m) >= maxRouteMemory {
		clear(rm.m)
	}
	rm.m[k] = cluster
	return seen
}
