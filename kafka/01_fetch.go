package kafka

// Fetch (key 1): every version kmsg and the backend share.
//
// Fetch sessions (KIP-227) are served towards clients by the proxy
// (fetch_session.go): a full fetch opens a session in the peer's bounded
// cache, an incremental fetch is checked against it and replaced by the
// session's full partition list, and the answer to it keeps only the
// partitions KIP-227 says to answer (records, errors, changed offsets).
// Towards the backends a fetch of a client session goes, per backend
// broker, in a session the proxy holds there for that client session
// (fetch_session_backend.go, Limits.BackendFetchSessions): it is always
// split per broker (even to one broker) and each part lists only what
// changed for its broker. Any other fetch from v7 on is sessionless:
// session id 0, epoch -1 (a full fetch that opens no session), rewritten
// in place in the client's bytes, or encoded again for an incremental
// fetch with backend sessions off. That stays correct when one
// client-visible broker (a peer) maps to several backend brokers or when
// presented leadership moves. With sessions off (Limits.FetchSessionSlots
// negative) the client's own session fields are rewritten the same way, so
// it keeps sending full fetches. Requests whose partitions have several
// leader brokers are split and the answers merged.
//
// Responses are decoded (record batches aliased, not copied) to count bytes
// per topic, to spot leadership errors, and to present the KIP-951
// CurrentLeader and NodeEndpoints as peers. A response is re-encoded only
// when one of those fields had to change.
//
// Rack (KIP-392, v11+): when the client's region is known (regions.md), the
// proxy sends the fetch with rack_id set to that region, replacing what the
// client sent (the client's rack names a broker rack of the virtual
// cluster, whose brokers are peers; the region is what the backend's racks
// mean). A backend with a rack-aware replica selector may then answer a
// PreferredReadReplica: the proxy clears it in the answer (the client
// must keep fetching from the peer it was given) and sends this
// connection's later fetches of that partition to that replica broker
// itself (readReplicas), until that broker answers the partition with an
// error.

import (
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/quota"
)

// fetchMaxBytesOffset is where MaxBytes (v3+) starts in a Fetch body: after
// ReplicaID (dropped in v15), MaxWaitMillis and MinBytes.
func fetchMaxBytesOffset(version int16) int {
	if version >= 15 {
		return 8
	}
	return 12
}

// fetchSessionOffset is where SessionID starts in a Fetch body: after
// ReplicaID (dropped in v15), MaxWaitMillis, MinBytes, MaxBytes and
// IsolationLevel.
func fetchSessionOffset(version int16) int {
	if version >= 15 {
		return 13
	}
	return 17
}

func handleFetch(r *request) error {
	if err := fetchFamily.serve(r); !errors.Is(err, errFetchAnswered) {
		return err
	}
	return nil
}

var fetchFamily = &family[*kmsg.FetchRequest, *kmsg.FetchResponse]{
	seg:      fetchSeg,
	minusOne: []string{"HighWatermark"},
	idsFrom:  13,
	reqIDs:   fetchRequestIDs,
	respIDs:  fetchResponseIDs,
	// The client's session (fetch_session.go) is applied first: an
	// incremental fetch becomes its session's full list. req is then
	// sessionless (a full fetch that opens none), as the client's bytes
	// are made (rewritten in place, or encoded again); a fetch in backend
	// sessions gets each broker's session fields in narrow.
	// ForgottenTopics only matter to a session.
	prepare: func(r *request, req *kmsg.FetchRequest) error {
		rebuilt := false
		if r.version >= 7 {
			var err error
			if rebuilt, err = beginFetchSession(r.c.s.fetchSessions, r, req); err != nil {
				return err
			}
			if u := r.split.fetch; u != nil && u.backend {
				// Each part is encoded from req (narrow): the client's
				// bytes, which go nowhere, need not list the session.
				rebuilt = false
			}
			if !rebuilt {
				off := fetchSessionOffset(r.version)
				binary.BigEndian.PutUint32(r.body[off:], 0)
				binary.BigEndian.PutUint32(r.body[off+4:], 0xffffffff)
			}
			req.SessionID, req.SessionEpoch = 0, -1
		}
		r.split.maxBytes = req.MaxBytes
		if r.version >= 11 && r.region != "" && req.Rack != r.region {
			req.Rack = r.region
			rebuilt = true
		}
		if rebuilt {
			r.reencode(req)
		}
		return nil
	},
	replica: func(r *request, tt topicTarget, partition int32, leader target) target {
		if id, ok := r.c.replicas.get(replicaKey{tt.be.Name(), tt.name, partition}); ok && tt.chain == nil {
			return target{tt.be, id}
		}
		return leader
	},
	// A topic's fetch quota may allow less than the client asks for soon.
	topic: func(r *request, req *kmsg.FetchRequest, i int, tt topicTarget) topicTarget {
		if lim := r.c.s.cfg.Limiter; lim != nil && tt.be != nil && r.version >= 3 {
			r.split.maxBytes = lim.FetchCap(quota.Key{Topic: tt.name, Dir: quota.Fetch}, r.split.maxBytes, r.start)
		}
		return tt
	},
	// Cap the whole fetch (Kafka caps at its quota window the same way),
	// in place.
	routed: func(r *request, req *kmsg.FetchRequest) {
		if r.split.maxBytes < req.MaxBytes {
			binary.BigEndian.PutUint32(r.body[fetchMaxBytesOffset(r.version):], uint32(r.split.maxBytes))
			req.MaxBytes = r.split.maxBytes
		}
		if u := r.split.fetch; u == nil || !u.backend {
			n := 0
			for i := range req.Topics {
				n += len(req.Topics[i].Partitions)
			}
			countBackendFetch(r, fetchKindSessionless, n)
		}
	},
	// A fetch in backend sessions (fetch_session_backend.go) is encoded
	// per broker, even when one broker serves it all: each broker's
	// session is asked only what changed for it.
	keeps: func(r *request, _ target) bool {
		u := r.split.fetch
		return u == nil || !u.backend
	},
	narrow: func(r *request, t target, sub *kmsg.FetchRequest) *kmsg.FetchRequest {
		if u := r.split.fetch; u != nil && u.backend {
			return u.narrow(r, t, sub)
		}
		return sub
	},
	fix: func(r *request, t target, resp *kmsg.FetchResponse) bool {
		if u := r.split.fetch; u != nil && u.backend {
			u.backendAnswer(t, resp)
		}
		return fixFetch(r, t, resp)
	},
	merge: func(out, in *kmsg.FetchResponse) {
		out.Brokers = append(out.Brokers, in.Brokers...)
	},
	// The client's session answers last, on the whole answer: every exit
	// (one backend, a split's merge, the proxy's own refusals) passes here.
	done: func(r *request, out *kmsg.FetchResponse) bool {
		changed := false
		if n := len(out.Brokers); n >= 2 {
			out.Brokers = dedupeBy(out.Brokers, func(b kmsg.FetchResponseBroker) int32 { return b.NodeID })
			changed = len(out.Brokers) != n
		}
		if u := r.split.fetch; u != nil && u.answer(r.c.s.fetchSessions, out) {
			changed = true
		}
		return changed
	},
}

// fixFetch accounts fetched bytes per topic and presents be's leaders and
// endpoints as peers; it reports whether the response changed.
// replicaKey names one partition of one cluster.
type replicaKey struct {
	cluster, topic string
	partition      int32
}

// readReplicas are the preferred read replicas (KIP-392) backends named for
// one connection's fetches. The reader routes by them and the answer path
// writes them, hence the lock; bounded like routeMemory.
type readReplicas struct {
	mu sync.Mutex
	m  map[replicaKey]int32
}

// maxReadReplicas bounds the partitions a connection remembers a read
// replica for; past it the memory starts over (fetches go to leaders,
// which name the replica again).
const maxReadReplicas = 4096

func (rr *readReplicas) get(k replicaKey) (int32, bool) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	id, ok := rr.m[k]
	return id, ok
}

func (rr *readReplicas) set(k replicaKey, broker int32) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if rr.m == nil || len(rr.m) >= maxReadReplicas {
		rr.m = map[replicaKey]int32{}
	}
	rr.m[k] = broker
}

func (rr *readReplicas) drop(k replicaKey) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	delete(rr.m, k)
}

func fixFetch(r *request, t target, resp *kmsg.FetchResponse) bool {
	be := t.be
	changed := false
	var pr *presenter
	for i := range resp.Topics {
		t := &resp.Topics[i]
		name := t.Topic
		if resp.Version >= 13 {
			// By id: the cluster's, which the client knows by its virtual
			// id. Not a change by itself (an answer going as it is gets
			// it in place: split.go).
			name, _ = be.topicName(t.TopicID)
			r.c.s.presentTopicID(name, &t.TopicID)
		}
		n, recs := 0, 0
		for j := range t.Partitions {
			p := &t.Partitions[j]
			n += len(p.RecordBatches)
			recs += recordCount(p.RecordBatches)
			if p.ErrorCode != 0 {
				be.metrics.errorCode(p.ErrorCode).Inc()
				r.c.s.metrics.topicError(be, topicTarget{be: be, name: name}.metricName(), p.ErrorCode)
			}
			if isLeadershipError(p.ErrorCode) {
				be.TriggerRefresh()
			}
			if p.PreferredReadReplica >= 0 && resp.Version >= 11 {
				r.c.replicas.set(replicaKey{be.Name(), name, p.Partition}, p.PreferredReadReplica)
				p.PreferredReadReplica = -1
				changed = true
			} else if p.ErrorCode != 0 {
				// Whatever the broker was, the next fetch goes to the
				// leader again (Kafka's consumer does the same).
				r.c.replicas.drop(replicaKey{be.Name(), name, p.Partition})
			}
			if p.CurrentLeader.LeaderID >= 0 && resp.Version >= 12 {
				if pr == nil {
					pr = r.presenter(be)
				}
				p.CurrentLeader.LeaderID = pr.peerFor(p.CurrentLeader.LeaderID)
				changed = true
			}
		}
		tt := topicTarget{be: be, name: name}
		r.c.s.metrics.fetched(be, tt.metricName(), n, recs)
		r.c.s.metrics.regionTraffic(r.st, r.region, r.c.peerRegion, be, "fetch", n)
		th := r.c.charge(tt, quota.Fetch, n, time.Now())
		r.c.mute.set(th)
		// Clients wait on the advertised throttle from v8 (KIP-219).
		if ms := th.Millis(); ms > resp.ThrottleMillis && resp.Version >= 8 {
			resp.ThrottleMillis, changed = ms, true
		}
	}
	if resp.SessionID != 0 {
		// The backend's session is the proxy's (backendAnswer took it),
		// never the client's.
		resp.SessionID = 0
		changed = true
	}
	if len(resp.Brokers) > 0 {
		if pr == nil {
			pr = r.presenter(be)
		}
		resp.Brokers = presentEndpoints(pr, resp.Brokers, func(b presentedBroker) kmsg.FetchResponseBroker {
			return kmsg.FetchResponseBroker{NodeID: b.id, Host: b.host, Port: b.port, Rack: b.rack}
		}, func(b kmsg.FetchResponseBroker) int32 { return b.NodeID })
		changed = true
	}
	return changed
}
