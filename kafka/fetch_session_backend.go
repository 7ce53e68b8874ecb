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
//     that closes, are not closed at the broker (no epoch -1 fetch): the
//     broker evicts them as it evicts any idle session, which costs a slot
//     there until then, as an abandoned client's session does.
//
// The state lives on the client's session, so it dies with it: per
// broker at most the session's partitions (a partition is held by the
// one broker its last fetch went to).

import (
	"github.com/prometheus/client_golang/prometheus"
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
	case resp.ErrorCode != 0 || resp.SessionID == 0 || bs.id != 0 && resp.SessionID != bs.id:
		delete(s.backends, t)
	case bs.id == 0:
		bs.id, bs.epoch = resp.SessionID, 1
	}
}

// dropIdleBackends forgets the backend sessions no fetch since gen went
// to (s.mu held): their partitions now go elsewhere.
func (s *fetchSession) dropIdleBackends(gen uint64) {
	for t, bs := range s.backends {
		if bs.used < gen {
			delete(s.backends, t)
		}
	}
}
