package kafka

// Share sessions (KIP-932) held by the proxy for ShareFetch (78) and
// ShareAcknowledge (79).
//
// A broker keeps one share session per (group, member): the partitions
// the member fetches from that broker and an epoch every request must
// carry, bumped by each answered request. A peer may present several
// backend brokers (every broker without a co-located peer is presented by
// rendezvous, present.go) and leadership moves under the client, so the
// client's session cannot be passed through. The proxy holds it instead:
//
//   - the client's session, per client connection and (group, member):
//     its partitions by virtual topic id and the epoch the client must
//     send next. Per connection because franz-go sends ShareFetch and
//     ShareAcknowledge on one connection, and a broker drops a member's
//     sessions (releasing what they acquired) when that connection
//     closes: closing the client's connection closes its upstreams, so
//     the backends do the same;
//   - one backend session per backend broker the client's session fans
//     out to: the partitions that broker has been told of and the epoch
//     it expects next.
//
// Each request resolves every partition of the client's session to its
// leader now (the virtual id to the routed cluster's own, pipeline.go)
// and sends each leader only the difference to its backend session
// (partitions added, partitions forgotten), with the acknowledgements of
// its partitions. A backend session left with no partitions is closed
// (epoch -1), which releases what it acquired, as a broker does when a
// partition leaves a session. Epochs are advanced when a part is sent:
// each upstream connection is this client's alone and answers in order.
//
// Failures stay within the session they break. A backend that answers a
// session error (SHARE_SESSION_NOT_FOUND, INVALID_SHARE_SESSION_EPOCH)
// has its backend session forgotten and reopened by the next request;
// the acknowledgements that part carried are answered with that error,
// so the client knows they were not applied. Any other request-level
// error is the client's answer, and its session is dropped: the client's
// next request gets SHARE_SESSION_NOT_FOUND and opens a new one, as
// against a broker that lost its session.

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	// maxShareSessions bounds the share sessions one client connection
	// holds (a client has one per group member it runs; Kafka answers
	// SHARE_SESSION_LIMIT_REACHED past its cache size the same way).
	maxShareSessions = 16
	// maxSharePartitions bounds the partitions the share sessions of one
	// connection hold together: clients grow them request by request,
	// each bounded by the frame size only.
	maxSharePartitions = 1 << 16
	// shareSplitMaxWait caps the long poll of each part of a share fetch
	// that fans out to several brokers: records one broker acquired at
	// once must not wait for an idle broker's full MaxWait while their
	// acquisition locks run.
	shareSplitMaxWait = 500
)

// shareKey names a client's share session on a connection.
type shareKey struct{ group, member string }

// shareTP is a partition of a share session, by the virtual topic id the
// client knows.
type shareTP struct {
	vid  [16]byte
	part int32
}

func compareShareTP(a, b shareTP) int {
	if c := bytes.Compare(a.vid[:], b.vid[:]); c != 0 {
		return c
	}
	return int(a.part) - int(b.part)
}

// shareSessions are one client connection's share sessions. The reader
// goroutine plans requests under mu; the merges, on upstream readers,
// take it to forget what a backend answered with an error.
type shareSessions struct {
	mu sync.Mutex
	m  map[shareKey]*shareSession
}

// shareSession is a client's session.
type shareSession struct {
	epoch    int32             // the epoch the client's next request carries
	parts    map[shareTP]int32 // partition → its PartitionMaxBytes (v0)
	backends map[target]*backendShare
}

// backendShare is the proxy's session with one backend broker.
type backendShare struct {
	epoch int32 // the epoch the next request to the broker carries
	parts map[shareTP]bool
}

// nextShareEpoch follows epoch as Kafka does: MaxInt32 wraps to 1.
func nextShareEpoch(epoch int32) int32 {
	if epoch == math.MaxInt32 {
		return 1
	}
	return epoch + 1
}

// shareAcks are one partition's acknowledgement batches (ShareFetch's
// type; ShareAcknowledge's has the same fields).
type shareAcks = []kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch

// shareEntry is a partition sent to a backend: added to its session, or
// carrying acknowledgements, or forgotten.
type shareEntry struct {
	tp       shareTP
	real     [16]byte // the cluster's topic id
	maxBytes int32
	acks     shareAcks
}

// sharePart is what one backend broker is sent.
type sharePart struct {
	t      target
	bs     *backendShare // nil when closing
	epoch  int32
	add    []shareEntry
	forget []shareEntry
	// closing: a backend session closed because nothing routes to it
	// any more; its errors concern no one.
	closing bool
}

// acked lists the partitions whose acknowledgements sp carries.
func (sp *sharePart) acked() []shareTP {
	var out []shareTP
	for _, e := range sp.add {
		if len(e.acks) > 0 {
			out = append(out, e.tp)
		}
	}
	return out
}

// shareFailure is a partition the proxy answers itself: code as its error
// (a fetch error in ShareFetch), ackCode as its acknowledgement's.
type shareFailure struct {
	tp            shareTP
	code, ackCode int16
}

// sharePlan is how one request is served: parts to send, partitions
// answered here, or a request-level error (code) with nothing sent.
type sharePlan struct {
	sess   *shareSession
	parts  []sharePart
	failed []shareFailure
	code   int16
	msg    string
}

// shareRoute is where a session partition is served now: t with the
// cluster's id for its topic, or nowhere (code).
type shareRoute struct {
	t    target
	real [16]byte
	code int16
}

// shareRoute resolves tp through the request's resolver (by id).
func (r *request) shareRoute(tp shareTP) shareRoute {
	r.split.byID = true
	tt := r.topic("", tp.vid)
	if tt.be == nil {
		if tt.code == 0 {
			tt.code = kerr.UnknownTopicID.Code
		}
		return shareRoute{code: tt.code}
	}
	tg := tt.leader(tp.part)
	if tg.broker < 0 {
		tt.be.TriggerRefresh()
		return shareRoute{code: kerr.NotLeaderForPartition.Code}
	}
	return shareRoute{t: tg, real: tt.id}
}

// session returns key's session under mu, or nil.
func (ss *shareSessions) session(key shareKey) *shareSession {
	if ss.m == nil {
		ss.m = map[shareKey]*shareSession{}
	}
	return ss.m[key]
}

// drop forgets key's session if it is still sess.
func (ss *shareSessions) drop(key shareKey, sess *shareSession) {
	ss.mu.Lock()
	if ss.m[key] == sess {
		delete(ss.m, key)
	}
	ss.mu.Unlock()
}

// forgetBackend forgets sess's backend session with sp's broker, if it is
// still the one sp was sent on: the next request reopens it.
func (ss *shareSessions) forgetBackend(sess *shareSession, sp *sharePart) {
	ss.mu.Lock()
	if bs := sess.backends[sp.t]; bs != nil && bs == sp.bs {
		delete(sess.backends, sp.t)
	}
	ss.mu.Unlock()
}

// planFetch applies a ShareFetch to key's session and plans its parts.
// acks are the request's acknowledgements by partition. Called under mu.
func (ss *shareSessions) planFetch(r *request, key shareKey, req *kmsg.ShareFetchRequest, acks map[shareTP]shareAcks) sharePlan {
	sess := ss.session(key)
	switch epoch := req.ShareSessionEpoch; {
	case epoch == -1:
		if sess == nil {
			return sharePlan{code: kerr.ShareSessionNotFound.Code}
		}
		delete(ss.m, key)
		return closeShare(r, sess, acks)
	case epoch == 0:
		if len(acks) > 0 {
			// KIP-932: a new session carries no acknowledgements.
			return sharePlan{code: kerr.InvalidRequest.Code, msg: "a share session opened with epoch 0 cannot carry acknowledgements"}
		}
		if sess == nil && len(ss.m) >= maxShareSessions {
			return sharePlan{code: kerr.ShareSessionLimitReached.Code}
		}
		// A new session replaces the old; so do its backend sessions
		// (reopened with epoch 0, which replaces a broker's).
		sess = &shareSession{parts: map[shareTP]int32{}, backends: map[target]*backendShare{}}
		ss.m[key] = sess
	case sess == nil:
		return sharePlan{code: kerr.ShareSessionNotFound.Code}
	case epoch != sess.epoch:
		return sharePlan{code: kerr.InvalidShareSessionEpoch.Code}
	}
	sess.epoch = nextShareEpoch(req.ShareSessionEpoch)
	for i := range req.Topics {
		t := &req.Topics[i]
		for j := range t.Partitions {
			sess.parts[shareTP{t.TopicID, t.Partitions[j].Partition}] = t.Partitions[j].PartitionMaxBytes
		}
	}
	for _, f := range req.ForgottenTopicsData {
		for _, p := range f.Partitions {
			delete(sess.parts, shareTP{f.TopicID, p})
		}
	}
	total := 0
	for _, other := range ss.m {
		total += len(other.parts)
	}
	if total > maxSharePartitions {
		delete(ss.m, key)
		return sharePlan{code: kerr.InvalidRequest.Code, msg: fmt.Sprintf("the share sessions of this connection hold more than %d partitions", maxSharePartitions)}
	}
	if req.Version >= 2 && req.IsRenewAck {
		return routeAcks(r, sess, acks)
	}
	plan := sharePlan{sess: sess}
	tps := make([]shareTP, 0, len(sess.parts))
	for tp := range sess.parts {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, compareShareTP)
	byT := map[target]int{} // target → index in plan.parts
	routed := map[target]map[shareTP]bool{}
	for _, tp := range tps {
		a := acks[tp]
		rt := r.shareRoute(tp)
		if rt.code != 0 {
			f := shareFailure{tp: tp, code: rt.code}
			if len(a) > 0 {
				f.ackCode = rt.code
			}
			plan.failed = append(plan.failed, f)
			continue
		}
		bs := sess.backends[rt.t]
		if bs == nil {
			bs = &backendShare{parts: map[shareTP]bool{}}
			sess.backends[rt.t] = bs
		}
		i, ok := byT[rt.t]
		if !ok {
			i = len(plan.parts)
			byT[rt.t] = i
			plan.parts = append(plan.parts, sharePart{t: rt.t, bs: bs, epoch: bs.epoch})
			routed[rt.t] = map[shareTP]bool{}
		}
		if bs.epoch == 0 && len(a) > 0 {
			// The records were acquired under a backend session that is
			// gone (reset, or the leader moved): they cannot be
			// acknowledged on a session opening now.
			plan.failed = append(plan.failed, shareFailure{tp: tp, ackCode: kerr.InvalidShareSessionEpoch.Code})
			a = nil
		}
		if !bs.parts[tp] || len(a) > 0 {
			plan.parts[i].add = append(plan.parts[i].add, shareEntry{tp: tp, real: rt.real, maxBytes: sess.parts[tp], acks: a})
		}
		routed[rt.t][tp] = true
	}
	for _, t := range targetOrder(sess.backends) {
		bs := sess.backends[t]
		i, ok := byT[t]
		if !ok {
			if bs.epoch != 0 {
				plan.parts = append(plan.parts, sharePart{t: t, epoch: -1, closing: true})
			}
			delete(sess.backends, t)
			continue
		}
		if bs.epoch != 0 {
			for tp := range bs.parts {
				if !routed[t][tp] {
					plan.parts[i].forget = append(plan.parts[i].forget, shareEntry{tp: tp, real: realIDOf(r, tp)})
				}
			}
			slices.SortFunc(plan.parts[i].forget, func(a, b shareEntry) int { return compareShareTP(a.tp, b.tp) })
		}
		bs.parts = routed[t]
		bs.epoch = nextShareEpoch(bs.epoch)
	}
	return plan
}

// realIDOf is the routed cluster's id for a forgotten partition's topic
// (zero when it no longer resolves: the broker ignores it then).
func realIDOf(r *request, tp shareTP) [16]byte {
	r.split.byID = true
	return r.topic("", tp.vid).id
}

// closeShare plans closing sess (epoch -1): every backend session it
// opened is closed, carrying the acknowledgements of its partitions.
func closeShare(r *request, sess *shareSession, acks map[shareTP]shareAcks) sharePlan {
	plan := sharePlan{sess: sess}
	byT := map[target]int{}
	for _, t := range targetOrder(sess.backends) {
		if sess.backends[t].epoch == 0 {
			continue
		}
		byT[t] = len(plan.parts)
		plan.parts = append(plan.parts, sharePart{t: t, epoch: -1})
	}
	tps := make([]shareTP, 0, len(acks))
	for tp := range acks {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, compareShareTP)
	for _, tp := range tps {
		rt := r.shareRoute(tp)
		i, ok := byT[rt.t]
		switch {
		case rt.code != 0:
			plan.failed = append(plan.failed, shareFailure{tp: tp, code: rt.code, ackCode: rt.code})
		case !ok:
			plan.failed = append(plan.failed, shareFailure{tp: tp, code: kerr.InvalidShareSessionEpoch.Code, ackCode: kerr.InvalidShareSessionEpoch.Code})
		default:
			plan.parts[i].add = append(plan.parts[i].add, shareEntry{tp: tp, real: rt.real, acks: acks[tp]})
		}
	}
	return plan
}

// planAck applies a ShareAcknowledge to key's session and plans its
// parts: each partition's acknowledgements go to its leader's backend
// session. Called under mu.
func (ss *shareSessions) planAck(r *request, key shareKey, epoch int32, acks map[shareTP]shareAcks) sharePlan {
	sess := ss.session(key)
	switch {
	case epoch == 0:
		// Epoch 0 opens a session, which only ShareFetch does.
		return sharePlan{code: kerr.InvalidShareSessionEpoch.Code}
	case sess == nil:
		return sharePlan{code: kerr.ShareSessionNotFound.Code}
	case epoch == -1:
		delete(ss.m, key)
		return closeShare(r, sess, acks)
	case epoch != sess.epoch:
		return sharePlan{code: kerr.InvalidShareSessionEpoch.Code}
	}
	sess.epoch = nextShareEpoch(epoch)
	return routeAcks(r, sess, acks)
}

// routeAcks plans sending acks, and nothing else, to the backend sessions
// of sess: ShareAcknowledge, and a ShareFetch that only renews locks
// (KIP-1222: it may carry no partition without acknowledgements, so what
// the backend sessions lack waits for the next fetch).
func routeAcks(r *request, sess *shareSession, acks map[shareTP]shareAcks) sharePlan {
	plan := sharePlan{sess: sess}
	tps := make([]shareTP, 0, len(acks))
	for tp := range acks {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, compareShareTP)
	byT := map[target]int{}
	for _, tp := range tps {
		rt := r.shareRoute(tp)
		if rt.code != 0 {
			plan.failed = append(plan.failed, shareFailure{tp: tp, code: rt.code, ackCode: rt.code})
			continue
		}
		bs := sess.backends[rt.t]
		if bs == nil || bs.epoch == 0 {
			// Never fetched from this broker in this session: nothing
			// it could acknowledge was acquired there.
			plan.failed = append(plan.failed, shareFailure{tp: tp, code: kerr.InvalidShareSessionEpoch.Code, ackCode: kerr.InvalidShareSessionEpoch.Code})
			continue
		}
		i, ok := byT[rt.t]
		if !ok {
			i = len(plan.parts)
			byT[rt.t] = i
			plan.parts = append(plan.parts, sharePart{t: rt.t, bs: bs, epoch: bs.epoch})
			bs.epoch = nextShareEpoch(bs.epoch)
		}
		plan.parts[i].add = append(plan.parts[i].add, shareEntry{tp: tp, real: rt.real, acks: acks[tp]})
	}
	return plan
}

// isShareSessionError reports the errors that mean the proxy's backend
// session is not the broker's.
func isShareSessionError(code int16) bool {
	return code == kerr.ShareSessionNotFound.Code || code == kerr.InvalidShareSessionEpoch.Code
}

// presentShareTopic turns a backend's topic id into the virtual one.
func presentShareTopic(r *request, be *Backend, id *[16]byte) {
	if name, ok := be.topicName(*id); ok {
		r.c.s.presentTopicID(name, id)
		return
	}
	be.TriggerRefresh()
}
