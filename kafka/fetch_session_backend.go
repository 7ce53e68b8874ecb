package kafka

// Fetch sessions (KIP-227) towards the backends.
//
// A client session's fetch is split by backend broker as any fetch is
// (split.go); each part then goes to its broker in a session the proxy
// holds there for this client session (Limits.BackendFetchSessions):
// only the partitions added or changed since that broker's session last
// saw them (fetch offset, log start offset, partition max bytes, current
// leader epoch, last fetched epoch), and ForgottenTopics for those that
// left it (moved to another broker or cluster, answered by the proxy
// itself, or forgotten by the client). The broker answers only the
// partitions with something to say, which is what the client's
// incremental answer wants anyway (its filter, fetch_session.go, still
// runs on the merged answer).
//
//   - A broker with no session yet gets a full fetch with epoch 0, which
//     opens one; its answer's SessionID is kept (0: the broker had no
//     slot; the next fetch asks for one again with a full fetch, as
//     Kafka's own client does). A client's full fetch makes a new client
//     session, so every broker gets a full fetch and the answer lists
//     every partition.
//   - A broker's request-level error (FETCH_SESSION_ID_NOT_FOUND after a
//     restart or an eviction, INVALID_FETCH_SESSION_EPOCH) ends the
//     client's session like any request-level error: the client is
//     answered that error and full-fetches, opening fresh sessions on
//     both sides.
//   - A part that fails (not sent, connection broken before the answer,
//     an answer that does not parse) leaves the broker's epoch unknown:
//     that backend session is dropped and the next fetch to the broker is
//     full (epoch 0 with session id 0 is always valid). The failure is
//     answered NOT_LEADER_OR_FOLLOWER for every partition the part stood
//     for, not only those it listed.
//   - A broker none of a fetch's partitions went to has its backend
//     session dropped. Dropped sessions, and those of a client session
//     that closes (the client closed it, it was evicted, it outgrew the
//     cache), are closed at the broker: a fetch with the session's id,
//     epoch -1 (FINAL_EPOCH) and no partitions, which the broker answers
//     at once with nothing. Otherwise each would hold one of the broker's
//     session slots (max.incremental.fetch.session.cache.slots, 1,000 by
//     default) until the broker evicted it, and a peer that serves many
//     short-lived consumers would fill them: the broker then opens no new
//     session and every fetch lists every partition again. The closes go
//     out one at a time from one goroutine per peer (runCloser), on the
//     backend's control connection to the broker, so a burst of them
//     (a thousand consumers restarting) cannot crowd out client traffic;
//     past maxPendingCloses waiting, a close is dropped and left to the
//     broker's eviction.
//
// The state lives on the client's session, so it dies with it: per
// broker at most the session's partitions (a partition is held by the
// one broker its last fetch went to).

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// backendSession is the proxy's session at one backend broker for one
// client session.
type backendSession struct {
	id    int32 // 0: none yet (the next fetch is full, epoch 0)
	epoch int32 // the next incremental fetch's epoch
	// sent is what the broker's session holds: each partition as last
	// sent, by topic as the backend knows it (by name, or from v13 by the
	// cluster's topic id).
	sent map[backendTopicKey]map[int32]*backendSent
	used uint64 // the client session's fetch that last went here
	mark uint64 // numbers narrow's passes, to find what a fetch left out
}

type backendTopicKey struct {
	name string
	id   [16]byte
}

// backendSent is what a fetch told the broker about a partition: a
// change to any of it is sent again.
type backendSent struct {
	fetchOffset, logStart                   int64
	maxBytes, leaderEpoch, lastFetchedEpoch int32
	mark                                    uint64 // the pass that last listed it
}

func (b *backendSent) set(p *kmsg.FetchRequestTopicPartition, mark uint64) bool {
	was := *b
	b.fetchOffset, b.logStart, b.maxBytes = p.FetchOffset, p.LogStartOffset, p.PartitionMaxBytes
	b.leaderEpoch, b.lastFetchedEpoch, b.mark = p.CurrentLeaderEpoch, p.LastFetchedEpoch, mark
	was.mark = mark
	return was != *b
}

// Fetch request kinds towards the backends, the label of
// switchyard_kafka_backend_fetch_request_partitions_total (the client
// side's kinds, fetchKind*).
func newBackendFetchPartitions(reg prometheus.Registerer) map[string]prometheus.Counter {
	parts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_kafka_backend_fetch_request_partitions_total",
		Help: "Partitions listed in Fetch requests the proxy sends the backends, by kind: sessionless (every partition, every time), full (opening a backend session) and incremental (only what changed).",
	}, []string{"kind"})
	reg.MustRegister(parts)
	m := map[string]prometheus.Counter{}
	for _, k := range []string{fetchKindSessionless, fetchKindFull, fetchKindIncremental} {
		m[k] = parts.WithLabelValues(k)
	}
	return m
}

// countBackendFetch adds n partitions of kind sent to the backends.
func countBackendFetch(r *request, kind string, n int) {
	if m := r.c.s.metrics; m != nil && n > 0 {
		m.fetchSessions.backend[kind].Add(float64(n))
	}
}

// narrow is the request sent to t for the part sub of a fetch using
// backend sessions: sub itself as a full fetch opening a session, or an
// incremental fetch of what changed. sub stays as it is (a failure of the
// part answers all of it).
func (u *fetchUse) narrow(r *request, t target, sub *kmsg.FetchRequest) *kmsg.FetchRequest {
	s := u.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		// Closed meanwhile (evicted): its answer names no session, so
		// neither does this part.
		n := 0
		for i := range sub.Topics {
			n += len(sub.Topics[i].Partitions)
		}
		countBackendFetch(r, fetchKindSessionless, n)
		return sub
	}
	if s.backends == nil {
		s.backends = map[target]*backendSession{}
	}
	bs := s.backends[t]
	if bs == nil {
		bs = &backendSession{}
		s.backends[t] = bs
	}
	bs.used = u.gen
	bs.mark++
	if bs.id == 0 {
		// No session there yet (or it was lost): a full fetch opens one.
		bs.sent, bs.epoch = map[backendTopicKey]map[int32]*backendSent{}, 0
		n := 0
		for i := range sub.Topics {
			st := &sub.Topics[i]
			k := backendTopicKey{st.Topic, st.TopicID}
			ps := bs.sent[k]
			if ps == nil {
				ps = make(map[int32]*backendSent, len(st.Partitions))
				bs.sent[k] = ps
			}
			for j := range st.Partitions {
				p := &st.Partitions[j]
				sp := &backendSent{}
				sp.set(p, bs.mark)
				ps[p.Partition] = sp
				n++
			}
		}
		out := *sub
		out.SessionID, out.SessionEpoch = 0, 0
		countBackendFetch(r, fetchKindFull, n)
		return &out
	}
	out := *sub
	out.SessionID, out.SessionEpoch = bs.id, bs.epoch
	out.Topics = nil
	listed := 0
	for i := range sub.Topics {
		st := &sub.Topics[i]
		k := backendTopicKey{st.Topic, st.TopicID}
		ps := bs.sent[k]
		if ps == nil {
			ps = make(map[int32]*backendSent, len(st.Partitions))
			bs.sent[k] = ps
		}
		var t *kmsg.FetchRequestTopic
		for j := range st.Partitions {
			p := &st.Partitions[j]
			sp := ps[p.Partition]
			if sp == nil {
				sp = &backendSent{}
				ps[p.Partition] = sp
				sp.set(p, bs.mark)
			} else if !sp.set(p, bs.mark) {
				continue
			}
			if t == nil {
				out.Topics = append(out.Topics, kmsg.FetchRequestTopic{Topic: st.Topic, TopicID: st.TopicID})
				t = &out.Topics[len(out.Topics)-1]
			}
			t.Partitions = append(t.Partitions, *p)
			listed++
		}
	}
	// Partitions the broker's session holds that this fetch did not list:
	// forgotten there.
	for k, ps := range bs.sent {
		var ft *kmsg.FetchRequestForgottenTopic
		for p, sp := range ps {
			if sp.mark == bs.mark {
				continue
			}
			delete(ps, p)
			if ft == nil {
				out.ForgottenTopics = append(out.ForgottenTopics, kmsg.FetchRequestForgottenTopic{Topic: k.name, TopicID: k.id})
				ft = &out.ForgottenTopics[len(out.ForgottenTopics)-1]
			}
			ft.Partitions = append(ft.Partitions, p)
		}
		if len(ps) == 0 {
			delete(bs.sent, k)
		}
	}
	bs.epoch = nextFetchEpoch(bs.epoch)
	countBackendFetch(r, fetchKindIncremental, listed)
	return &out
}

// backendAnswer takes t's answer to a part that went in a backend
// session: a new session's id, or, on an error or an answer naming no
// session (the broker had no slot, or the part failed and was answered
// by the proxy), the end of that backend session. It runs before the
// answer's SessionID is cleared for the client (fixFetch).
func (u *fetchUse) backendAnswer(t target, resp *kmsg.FetchResponse) {
	s := u.s
	s.mu.Lock()
	defer s.mu.Unlock()
	bs := s.backends[t]
	switch {
	case bs == nil:
		if s.closed && resp.ErrorCode == 0 && resp.SessionID != 0 {
			// Opened by a fetch that was under way when the client's
			// session closed: nobody will use it.
			u.cache.queueClose(t, resp.SessionID)
		}
	case resp.ErrorCode != 0 || resp.SessionID == 0 || bs.id != 0 && resp.SessionID != bs.id:
		delete(s.backends, t)
	case bs.id == 0:
		bs.id, bs.epoch = resp.SessionID, 1
	}
}

// dropIdleBackends forgets the backend sessions no fetch since gen went
// to (s.mu held): their partitions now go elsewhere. Each is closed at its
// broker.
func (s *fetchSession) dropIdleBackends(c *fetchSessionCache, gen uint64) {
	for t, bs := range s.backends {
		if bs.used < gen {
			delete(s.backends, t)
			c.queueClose(t, bs.id)
		}
	}
}

// closeBackends closes every backend session of s at its broker (s.mu
// held): s has closed.
func (s *fetchSession) closeBackends(c *fetchSessionCache) {
	for t, bs := range s.backends {
		c.queueClose(t, bs.id)
	}
	s.backends = nil
}

// sessionClose is a backend session to close at its broker.
type sessionClose struct {
	t  target
	id int32
}

const (
	// maxPendingCloses bounds the closes waiting to be sent; past it a
	// close is dropped (the broker evicts the session in time).
	maxPendingCloses = 4096
	// sessionCloseTimeout bounds one close's round trip.
	sessionCloseTimeout = 5 * time.Second
)

// Results of a backend session close, the label of
// switchyard_kafka_backend_fetch_sessions_closed_total.
const (
	closeSent    = "closed"
	closeDropped = "dropped"
	closeFailed  = "failed"
)

// queueClose hands the backend session id at t to the closer; a session
// that never opened (id 0) needs none.
func (c *fetchSessionCache) queueClose(t target, id int32) {
	if c == nil || id == 0 || t.be == nil || c.closes == nil {
		return
	}
	select {
	case c.closes <- sessionClose{t, id}:
	default:
		c.countClose(closeDropped)
	}
}

func (c *fetchSessionCache) countClose(result string) {
	if c.metrics != nil {
		c.metrics.closed[result].Inc()
	}
}

// runCloser sends the queued closes, one at a time, until ctx ends.
func (c *fetchSessionCache) runCloser(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case sc := <-c.closes:
			c.closeAtBroker(ctx, sc)
		}
	}
}

// closeAtBroker ends one backend session: a fetch with its id, epoch -1
// (FINAL_EPOCH) and no partitions. The broker removes the session and
// answers the (empty) fetch at once.
func (c *fetchSessionCache) closeAtBroker(ctx context.Context, sc sessionClose) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.ReplicaState.ID = -1, -1
	req.SessionID, req.SessionEpoch = sc.id, -1
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 0, 0, 1
	rctx, cancel := context.WithTimeout(ctx, sessionCloseTimeout)
	defer cancel()
	// Sessions exist from Fetch v7; a backend that supports fetches at
	// all supports v7 by now, and an older one never opened a session.
	resp, err := sc.t.be.Request(rctx, sc.t.broker, req, -1)
	if err == nil {
		if code := resp.(*kmsg.FetchResponse).ErrorCode; code != 0 {
			err = kerr.ErrorForCode(code)
		}
	}
	if err != nil {
		// Already gone at the broker (restarted, evicted), or the broker
		// is unreachable: either way it holds no slot for long.
		c.countClose(closeFailed)
		return
	}
	c.countClose(closeSent)
}
