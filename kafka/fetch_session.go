package kafka

// Fetch sessions (KIP-227) served towards clients.
//
// A consumer owning thousands of partitions would otherwise list every one
// of them in every fetch; with a session it lists only what changed (a new
// fetch offset, a partition added) and the broker answers only partitions
// with something to say. The proxy plays the broker's part of that
// protocol for its clients, per peer (a peer is one broker to them). The
// session's full partition list goes through the usual routing and
// splitting (01_fetch.go, split.go), so the backend side stays correct
// whichever backend brokers the partitions map to now and however
// presented leadership moves; each broker's part then goes in a fetch
// session the proxy holds at that broker for this client session,
// listing only what changed there (fetch_session_backend.go,
// Limits.BackendFetchSessions), or, with those off, sessionless, at the
// proxy-to-backend cost of a sessionless client.
//
// The cache follows Kafka's FetchSessionCache and FetchManager:
//
//   - a full fetch (session id 0, epoch 0) opens a session when a slot is
//     free (max.incremental.fetch.session.cache.slots, Limits.
//     FetchSessionSlots), else is served sessionless; when every slot is
//     taken, the least recently used session idle for at least
//     fetchSessionMinIdle is evicted (counted in
//     switchyard_kafka_fetch_session_evictions_total), as Kafka evicts;
//   - an incremental fetch (id, epoch > 0) names a session of this peer
//     (FETCH_SESSION_ID_NOT_FOUND otherwise, also when another principal
//     opened it) with the epoch the session expects
//     (INVALID_FETCH_SESSION_EPOCH otherwise) and the topic naming it was
//     opened with (FETCH_SESSION_TOPIC_ID_ERROR, v13+ by id); its
//     partitions update or join the session, its ForgottenTopics leave it,
//     and the session's whole list is what is routed and split (each
//     backend broker's session then asked only what changed for it);
//   - epoch -1 with an id closes that session (and is served
//     sessionless); epoch 0 with an id closes it and opens a new one;
//   - the answer to an incremental fetch holds only the partitions with
//     records, an error, or a high watermark, last stable offset or log
//     start offset changed since the session last answered them (aborted
//     transactions, a diverging epoch, a KIP-951 current leader or a
//     snapshot id too): KIP-227's rule. Every partition error is in it,
//     whoever made it (a backend, or the proxy's own answers: refused
//     topics, route-change bounces, a chained read's UNKNOWN_TOPIC_ID, a
//     broken broker connection), so leadership moves reach the client as
//     they would from a broker.
//
// Bounds: slots sessions per peer; a session holds at most
// maxFetchSessionPartitions partitions and the cache
// maxFetchSessionPartitionsTotal over all sessions. A full fetch past
// either is served sessionless; an incremental one that would grow its
// session past them closes it and is answered FETCH_SESSION_ID_NOT_FOUND
// (the client falls back to a full fetch, as after an eviction).

import (
	"container/list"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	// DefaultFetchSessionSlots is Kafka's default for
	// max.incremental.fetch.session.cache.slots.
	DefaultFetchSessionSlots = 1000
	// fetchSessionMinIdle is how long a session must have been idle
	// before a new one may evict it (Kafka's
	// MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS).
	fetchSessionMinIdle = 2 * time.Minute
	// maxFetchSessionPartitions bounds one session's partitions (the share
	// sessions' bound, share_sessions.go: incremental fetches grow a
	// session request by request, each bounded by the frame size only).
	maxFetchSessionPartitions = 1 << 16
	// maxFetchSessionPartitionsTotal bounds the partitions all sessions of
	// a peer hold together (about 150 MB at most).
	maxFetchSessionPartitionsTotal = 1 << 20
	// maxFetchSessionSlots bounds the slots an operator may configure
	// (Kafka's own check is only that it is not negative).
	maxFetchSessionSlots = 1 << 20
)

// errFetchAnswered: the fetch was answered by the session logic itself
// (a session error); nothing is forwarded.
var errFetchAnswered = errors.New("fetch answered by the proxy's session cache")

// Fetch request kinds, the label of switchyard_kafka_fetch_request_partitions_total.
const (
	fetchKindSessionless = "sessionless"
	fetchKindFull        = "full"
	fetchKindIncremental = "incremental"
)

// fetchSessionMetrics are the session cache's series.
type fetchSessionMetrics struct {
	sessions   prometheus.Gauge
	evictions  prometheus.Counter
	partitions map[string]prometheus.Counter // by fetch kind
	backend    map[string]prometheus.Counter // by fetch kind, towards the backends
	closed     map[string]prometheus.Counter // backend sessions closed at their broker, by result
}

func newFetchSessionMetrics(reg prometheus.Registerer) *fetchSessionMetrics {
	m := &fetchSessionMetrics{
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_kafka_fetch_sessions",
			Help: "Client fetch sessions (KIP-227) the peer holds.",
		}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_kafka_fetch_session_evictions_total",
			Help: "Client fetch sessions evicted to make room for a new one (least recently used, idle at least 2 minutes).",
		}),
		partitions: map[string]prometheus.Counter{},
	}
	parts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_fetch_request_partitions_total",
		Help: "Partitions listed in client Fetch requests, by kind: sessionless (every partition, every time), full (opening a session) and incremental (only what changed).",
	}, []string{"kind"})
	for _, k := range []string{fetchKindSessionless, fetchKindFull, fetchKindIncremental} {
		m.partitions[k] = parts.WithLabelValues(k)
	}
	reg.MustRegister(m.sessions, m.evictions, parts)
	m.backend = newBackendFetchPartitions(reg)
	closed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_backend_fetch_sessions_closed_total",
		Help: "Backend fetch sessions the proxy stopped using (the client's session closed, or its partitions left a broker), by result: closed at the broker (epoch -1), failed (the broker did not answer or no longer had it), dropped (too many waiting; the broker evicts it in time).",
	}, []string{"result"})
	reg.MustRegister(closed)
	m.closed = map[string]prometheus.Counter{}
	for _, r := range []string{closeSent, closeDropped, closeFailed} {
		m.closed[r] = closed.WithLabelValues(r)
	}
	return m
}

// fetchSessionCache is one peer's client fetch sessions.
type fetchSessionCache struct {
	slots int
	// backend: the sessions' fetches reach the backends in sessions of
	// their own (Limits.BackendFetchSessions).
	backend bool
	minIdle time.Duration
	// perSession and total bound the partitions of one session and of
	// all (maxFetchSessionPartitions, maxFetchSessionPartitionsTotal).
	perSession, total int
	now               func() time.Time
	metrics           *fetchSessionMetrics // nil in tests that build a cache alone

	mu    sync.Mutex
	m     map[int32]*fetchSession
	lru   *list.List // of *fetchSession, front: most recently used
	parts int        // partitions over every session

	// closes are the backend sessions waiting to be closed at their
	// broker (runCloser); nil without backend sessions.
	closes chan sessionClose
}

func newFetchSessionCache(slots int, metrics *fetchSessionMetrics) *fetchSessionCache {
	return &fetchSessionCache{
		slots:      slots,
		minIdle:    fetchSessionMinIdle,
		perSession: maxFetchSessionPartitions,
		total:      maxFetchSessionPartitionsTotal,
		now:        time.Now,
		metrics:    metrics,
		m:          map[int32]*fetchSession{},
		lru:        list.New(),
	}
}

// fetchSession is one client's session: the partitions it fetches, with
// what it last asked and what it was last answered. mu guards everything
// below it; the cache's lock guards used, el and n.
type fetchSession struct {
	id        int32
	principal string
	byID      bool // opened at v13+: topics by id

	used time.Time
	el   *list.Element
	n    int // partitions, as the cache counts them

	mu     sync.Mutex
	epoch  int32 // the epoch the next incremental fetch must carry
	closed bool
	topics []*fetchSessionTopic // in the order they joined
	byKey  map[fetchTopicKey]*fetchSessionTopic
	count  int
	// backends: the backend sessions of this session's fetches, by
	// backend broker (Limits.BackendFetchSessions); gen numbers the
	// session's fetches, the last to use each backend session.
	backends map[target]*backendSession
	gen      uint64
}

// fetchTopicKey names a session topic: by name before v13, by the
// virtual id the client knows from v13.
type fetchTopicKey struct {
	name string
	id   [16]byte
}

type fetchSessionTopic struct {
	key   fetchTopicKey
	order []int32 // partitions in the order they joined
	parts map[int32]*fetchSessionPartition
}

// fetchSessionPartition is what the client last asked for a partition and
// what it was last answered (-1: never).
type fetchSessionPartition struct {
	req                kmsg.FetchRequestTopicPartition
	hwm, lso, logStart int64
}

func (s *fetchSession) key(name string, id [16]byte) fetchTopicKey {
	if s.byID {
		return fetchTopicKey{id: id}
	}
	return fetchTopicKey{name: name}
}

// upsert adds or updates the partitions of req topics; it reports false,
// having added nothing more, once the session would pass limit partitions.
func (s *fetchSession) upsert(topics []kmsg.FetchRequestTopic, limit int) bool {
	if s.byKey == nil {
		s.byKey = map[fetchTopicKey]*fetchSessionTopic{}
	}
	for i := range topics {
		t := &topics[i]
		k := s.key(t.Topic, t.TopicID)
		st := s.byKey[k]
		for _, p := range t.Partitions {
			if st != nil {
				if sp := st.parts[p.Partition]; sp != nil {
					sp.req = p
					continue
				}
			}
			if s.count >= limit {
				return false
			}
			if st == nil {
				st = &fetchSessionTopic{key: k, parts: map[int32]*fetchSessionPartition{}}
				s.byKey[k] = st
				s.topics = append(s.topics, st)
			}
			st.parts[p.Partition] = &fetchSessionPartition{req: p, hwm: -1, lso: -1, logStart: -1}
			st.order = append(st.order, p.Partition)
			s.count++
		}
	}
	return true
}

// forget removes the ForgottenTopics of an incremental fetch.
func (s *fetchSession) forget(topics []kmsg.FetchRequestForgottenTopic) {
	for _, f := range topics {
		st := s.byKey[s.key(f.Topic, f.TopicID)]
		if st == nil {
			continue
		}
		for _, p := range f.Partitions {
			if _, ok := st.parts[p]; !ok {
				continue
			}
			delete(st.parts, p)
			s.count--
			for i, q := range st.order {
				if q == p {
					st.order = append(st.order[:i], st.order[i+1:]...)
					break
				}
			}
		}
		if len(st.parts) == 0 {
			delete(s.byKey, st.key)
			for i, x := range s.topics {
				if x == st {
					s.topics = append(s.topics[:i], s.topics[i+1:]...)
					break
				}
			}
		}
	}
}

// request lists every partition of the session as a full fetch's topics.
func (s *fetchSession) request() []kmsg.FetchRequestTopic {
	out := make([]kmsg.FetchRequestTopic, 0, len(s.topics))
	for _, st := range s.topics {
		t := kmsg.NewFetchRequestTopic()
		t.Topic, t.TopicID = st.key.name, st.key.id
		t.Partitions = make([]kmsg.FetchRequestTopicPartition, 0, len(st.order))
		for _, p := range st.order {
			t.Partitions = append(t.Partitions, st.parts[p].req)
		}
		out = append(out, t)
	}
	return out
}

// nextFetchEpoch is the epoch after e (Kafka's FetchMetadata.nextEpoch:
// past MaxInt32 it wraps to 1, 0 being the opening epoch).
func nextFetchEpoch(e int32) int32 {
	if e == math.MaxInt32 {
		return 1
	}
	return e + 1
}

// fetchUse is one request's use of a session: what its answer must do.
type fetchUse struct {
	s     *fetchSession
	cache *fetchSessionCache
	full  bool // the fetch opened the session: answer every partition
	// backend: the fetch reaches the backends in backend sessions
	// (narrow), gen being its number among the session's fetches.
	backend bool
	gen     uint64
}

// open makes a session for a full fetch of principal's, with the request's
// partitions; nil when there is no room (the fetch is then sessionless).
func (c *fetchSessionCache) open(principal string, byID bool, topics []kmsg.FetchRequestTopic) *fetchSession {
	s := &fetchSession{principal: principal, byID: byID, epoch: 1}
	if !s.upsert(topics, c.perSession) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for len(c.m) >= c.slots || c.parts+s.count > c.total {
		back := c.lru.Back()
		if back == nil || now.Sub(back.Value.(*fetchSession).used) < c.minIdle {
			return nil
		}
		c.removeLocked(back.Value.(*fetchSession))
		if c.metrics != nil {
			c.metrics.evictions.Inc()
		}
	}
	for {
		s.id = rand.Int32N(math.MaxInt32) + 1 // never 0, the sessionless id
		if _, taken := c.m[s.id]; !taken {
			break
		}
	}
	s.used, s.n = now, s.count
	s.el = c.lru.PushFront(s)
	c.m[s.id] = s
	c.parts += s.n
	if c.metrics != nil {
		c.metrics.sessions.Set(float64(len(c.m)))
	}
	return s
}

// close removes session id if principal owns it.
func (c *fetchSessionCache) close(id int32, principal string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.m[id]; s != nil && s.principal == principal {
		c.removeLocked(s)
	}
}

func (c *fetchSessionCache) remove(s *fetchSession) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[s.id] == s {
		c.removeLocked(s)
	}
}

func (c *fetchSessionCache) removeLocked(s *fetchSession) {
	delete(c.m, s.id)
	c.lru.Remove(s.el)
	c.parts -= s.n
	if c.metrics != nil {
		c.metrics.sessions.Set(float64(len(c.m)))
	}
	// A fetch may still be using it: closed, its answer names no
	// session. (Lock order: the cache's, then a session's; nothing holds
	// a session's lock while taking the cache's.)
	s.mu.Lock()
	s.closed = true
	s.closeBackends(c) // fetch_session_backend.go
	s.mu.Unlock()
}

// lookup finds principal's session id for an incremental fetch and marks
// it used; the code is the fetch's error when it is not usable.
func (c *fetchSessionCache) lookup(id int32, principal string) (*fetchSession, int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.m[id]
	if s == nil || s.principal != principal {
		// Another principal's session is as good as unknown to this one
		// (a broker's sessions have no owner; one peer serves many
		// principals, and one must not read or end another's session).
		return nil, kerr.FetchSessionIDNotFound.Code
	}
	s.used = c.now()
	c.lru.MoveToFront(s.el)
	return s, 0
}

// resized records that s now holds n partitions; it reports false when
// the cache has no room for them (the caller closes s).
func (c *fetchSessionCache) resized(s *fetchSession, n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[s.id] != s {
		return true // removed meanwhile: nothing counted any more
	}
	if c.parts-s.n+n > c.total {
		return false
	}
	c.parts += n - s.n
	s.n = n
	return true
}

// len is the number of sessions held.
func (c *fetchSessionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// beginFetchSession applies the session part of a fetch (v7+) before it
// is routed: it reports whether req's topics were replaced by the
// session's full list (the client's bytes must then be encoded again,
// unless its parts go in backend sessions, each encoded from req), and
// answers a session error itself (errFetchAnswered). On return req is
// sessionless. With sessions off (c nil) every fetch is sessionless.
func beginFetchSession(c *fetchSessionCache, r *request, req *kmsg.FetchRequest) (bool, error) {
	kind, listed := fetchKindSessionless, 0
	for i := range req.Topics {
		listed += len(req.Topics[i].Partitions)
	}
	defer func() {
		if m := r.c.s.metrics; m != nil {
			m.fetchSessions.partitions[kind].Add(float64(listed))
		}
	}()
	if c == nil {
		req.SessionID, req.SessionEpoch = 0, -1
		return false, nil
	}
	return c.begin(r, req, &kind)
}

func (c *fetchSessionCache) begin(r *request, req *kmsg.FetchRequest, kind *string) (bool, error) {
	id, epoch := req.SessionID, req.SessionEpoch
	req.SessionID, req.SessionEpoch = 0, -1
	principal := r.c.principal
	byID := r.version >= 13
	switch {
	case epoch == -1:
		// Sessionless, closing the session it names if any (KIP-227's
		// FINAL epoch).
		if id != 0 {
			c.close(id, principal)
		}
		return false, nil
	case epoch == 0:
		// A full fetch: it replaces the session it names (Kafka does
		// the same) and opens one.
		if id != 0 {
			c.close(id, principal)
		}
		*kind = fetchKindFull
		if s := c.open(principal, byID, req.Topics); s != nil {
			r.split.fetch = c.use(s, true)
		}
		return false, nil
	}
	*kind = fetchKindIncremental
	s, code := c.lookup(id, principal)
	if s != nil {
		s.mu.Lock()
		switch {
		case s.closed:
			code = kerr.FetchSessionIDNotFound.Code
		case s.epoch != epoch:
			code = kerr.InvalidFetchSessionEpoch.Code
		case s.byID != byID:
			code = kerr.FetchSessionTopicIDError.Code
		}
	}
	if code != 0 {
		if s != nil {
			s.mu.Unlock()
		}
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.Default()
		resp.ErrorCode = code
		if err := r.c.respond(r, r.start, resp); err != nil {
			return false, err
		}
		return false, errFetchAnswered
	}
	fits := s.upsert(req.Topics, c.perSession)
	s.forget(req.ForgottenTopics)
	n := s.count
	if fits && n > 0 {
		s.epoch = nextFetchEpoch(s.epoch)
		req.Topics = s.request()
	}
	s.mu.Unlock()
	if !fits || !c.resized(s, n) {
		// Past its bounds: closed, and the client told so, as after an
		// eviction; its next full fetch is served sessionless if still
		// too large.
		c.remove(s)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.Default()
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		if err := r.c.respond(r, r.start, resp); err != nil {
			return false, err
		}
		return false, errFetchAnswered
	}
	if n == 0 {
		// Every partition forgotten: Kafka closes the session and serves
		// the (empty) fetch sessionless.
		c.remove(s)
		req.Topics = nil
	} else {
		r.split.fetch = c.use(s, false)
	}
	req.ForgottenTopics = nil
	return true, nil
}

// use is a fetch's use of s: a full one opened it.
func (c *fetchSessionCache) use(s *fetchSession, full bool) *fetchUse {
	u := &fetchUse{s: s, cache: c, full: full, backend: c.backend}
	s.mu.Lock()
	s.gen++
	u.gen = s.gen
	s.mu.Unlock()
	return u
}

// answer finishes the client's answer to a fetch that used a session: the
// session's id, and for an incremental fetch only the partitions KIP-227
// says to answer; the session remembers what it answered. It reports
// whether resp changed (always: the session id).
func (u *fetchUse) answer(c *fetchSessionCache, resp *kmsg.FetchResponse) bool {
	s := u.s
	if resp.ErrorCode != 0 {
		// A request-level error (a backend's): the session ends with it,
		// and the client opens a new one with its next full fetch. As a
		// broker's error answer, it carries no partitions: a split's
		// other parts must not advance the client half-way.
		c.remove(s)
		resp.SessionID, resp.Topics = 0, nil
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		resp.SessionID = 0
		return true
	}
	resp.SessionID = s.id
	if u.backend {
		s.dropIdleBackends(c, u.gen)
	}
	kept := resp.Topics[:0]
	for _, t := range resp.Topics {
		st := s.byKey[s.key(t.Topic, t.TopicID)]
		ps := t.Partitions[:0]
		for _, p := range t.Partitions {
			var sp *fetchSessionPartition
			if st != nil {
				sp = st.parts[p.Partition]
			}
			if sp == nil {
				// Not the session's (cannot happen from a backend asked
				// the session's partitions): answered, to be safe.
				ps = append(ps, p)
				continue
			}
			if sp.changed(&p) || u.full {
				ps = append(ps, p)
			}
		}
		if len(ps) > 0 {
			t.Partitions = ps
			kept = append(kept, t)
		}
	}
	resp.Topics = kept
	return true
}

// changed updates a session partition from its answer p and reports
// whether p must be in an incremental answer (Kafka's
// CachedPartition.maybeUpdateResponseData, and the fields KIPs added since).
func (sp *fetchSessionPartition) changed(p *kmsg.FetchResponseTopicPartition) bool {
	must := len(p.RecordBatches) > 0 || p.ErrorCode != 0 || len(p.AbortedTransactions) > 0 ||
		p.DivergingEpoch.EndOffset >= 0 || p.CurrentLeader.LeaderID >= 0 || p.CurrentLeader.LeaderEpoch >= 0 ||
		p.SnapshotID.EndOffset >= 0 || p.PreferredReadReplica >= 0
	if p.HighWatermark != sp.hwm || p.LastStableOffset != sp.lso || p.LogStartOffset != sp.logStart {
		must = true
		sp.hwm, sp.lso, sp.logStart = p.HighWatermark, p.LastStableOffset, p.LogStartOffset
	}
	return must
}
