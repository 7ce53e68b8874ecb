package kafka

// Fetch (key 1): every version kmsg and the backend share.
//
// Fetch sessions (KIP-227) are turned off at the proxy: requests from v7 on
// are rewritten in place to session id 0, epoch -1 (a full fetch that opens
// no session), so the backend answers session id 0 and the client keeps
// sending full fetches. This is the protocol's own sessionless mode (what a
// broker with no session slots does), and it stays correct when one
// client-visible broker (a peer) maps to several backend brokers or when
// presented leadership moves. Requests whose partitions have several leader
// brokers are split and the answers merged.
//
// Responses are decoded (record batches aliased, not copied) to count bytes
// per topic, to spot leadership errors, and to present the KIP-951
// CurrentLeader and NodeEndpoints as peers; PreferredReadReplica (KIP-392)
// is cleared so clients fetch from the leader's peer. A response is
// re-encoded only when one of those fields had to change.

import (
	"encoding/binary"
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

func handleFetch(c *clientConn, r *request, start time.Time) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.FetchRequest)
	if r.version >= 7 {
		off := fetchSessionOffset(r.version)
		binary.BigEndian.PutUint32(r.body[off:], 0)
		binary.BigEndian.PutUint32(r.body[off+4:], 0xffffffff)
		req.SessionID, req.SessionEpoch = 0, -1
	}
	st := c.s.view.State()
	// ForgottenTopics only matter to a session, and sessions are off.
	var ttBuf [4]topicTarget
	tts := ttBuf[:0]
	one, single, seen := target{}, true, false
	maxBytes := req.MaxBytes
	for _, t := range req.Topics {
		tt := c.resolveTopic(st, t.Topic, t.TopicID, r.version >= 13)
		tts = append(tts, tt)
		if lim := c.s.cfg.Limiter; lim != nil && tt.be != nil && r.version >= 3 {
			maxBytes = lim.FetchCap(quota.Key{Topic: tt.name, Dir: quota.Fetch}, maxBytes, start)
		}
		for _, p := range t.Partitions {
			tg := target{}
			if tt.be != nil {
				tg = target{tt.be, tt.be.leader(tt.name, p.Partition)}
			} else {
				single = false
			}
			if !seen {
				one, seen = tg, true
			} else if tg != one {
				single = false
			}
		}
	}
	if maxBytes < req.MaxBytes {
		// A topic's share allows less soon: cap the whole fetch (Kafka
		// caps at its quota window the same way), in place.
		binary.BigEndian.PutUint32(r.body[fetchMaxBytesOffset(r.version):], uint32(maxBytes))
		req.MaxBytes = maxBytes
	}
	if single {
		if one.be == nil {
			// No partitions (or only forgotten topics): the default
			// cluster answers the empty fetch.
			one = target{be: c.s.defaultBackend(), broker: -1}
		}
		u, err := c.upstreamOrAny(one)
		if err != nil {
			return err
		}
		return c.forwardTo(u, r, start, func(resp *buffer) (*buffer, error) {
			return rewrite(resp, r, func(kr kmsg.Response) bool {
				return c.fixFetch(one.be, kr.(*kmsg.FetchResponse))
			})
		})
	}
	by := map[target]*kmsg.FetchRequest{}
	local := &kmsg.FetchResponse{Version: req.Version}
	for i, t := range req.Topics {
		tt := tts[i]
		for _, p := range t.Partitions {
			if tt.be == nil {
				addFetchPartitionError(local, t, p.Partition, tt.code)
				continue
			}
			tg := target{tt.be, tt.be.leader(tt.name, p.Partition)}
			sub := by[tg]
			if sub == nil {
				s := *req
				s.Topics = nil
				sub = &s
				by[tg] = sub
			}
			if n := len(sub.Topics); n == 0 || sub.Topics[n-1].Topic != t.Topic || sub.Topics[n-1].TopicID != t.TopicID {
				sub.Topics = append(sub.Topics, kmsg.FetchRequestTopic{Topic: t.Topic, TopicID: t.TopicID})
			}
			st := &sub.Topics[len(sub.Topics)-1]
			st.Partitions = append(st.Partitions, p)
		}
	}
	parts := partsOf(by)
	if len(local.Topics) > 0 {
		parts = append(parts, part{local: local})
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		for i, x := range resps {
			if parts[i].local == nil {
				c.fixFetch(parts[i].t.be, x.(*kmsg.FetchResponse))
			}
		}
		out := resps[0].(*kmsg.FetchResponse)
		idx := map[topicKey]int{}
		for i, t := range out.Topics {
			idx[topicKey{t.Topic, t.TopicID}] = i
		}
		for _, x := range resps[1:] {
			o := x.(*kmsg.FetchResponse)
			out.ThrottleMillis = max(out.ThrottleMillis, o.ThrottleMillis)
			if out.ErrorCode == 0 {
				out.ErrorCode = o.ErrorCode
			}
			out.Brokers = append(out.Brokers, o.Brokers...)
			for _, t := range o.Topics {
				k := topicKey{t.Topic, t.TopicID}
				if i, ok := idx[k]; ok {
					out.Topics[i].Partitions = append(out.Topics[i].Partitions, t.Partitions...)
					continue
				}
				idx[k] = len(out.Topics)
				out.Topics = append(out.Topics, t)
			}
		}
		out.SessionID = 0
		out.Brokers = dedupeBy(out.Brokers, func(b kmsg.FetchResponseBroker) int32 { return b.NodeID })
		return out
	})
}

func addFetchPartitionError(resp *kmsg.FetchResponse, t kmsg.FetchRequestTopic, partition int32, code int16) {
	if n := len(resp.Topics); n == 0 || resp.Topics[n-1].Topic != t.Topic || resp.Topics[n-1].TopicID != t.TopicID {
		resp.Topics = append(resp.Topics, kmsg.FetchResponseTopic{Topic: t.Topic, TopicID: t.TopicID})
	}
	p := kmsg.NewFetchResponseTopicPartition()
	p.Partition, p.ErrorCode = partition, code
	p.HighWatermark, p.LastStableOffset, p.LogStartOffset = -1, -1, -1
	rt := &resp.Topics[len(resp.Topics)-1]
	rt.Partitions = append(rt.Partitions, p)
}

// fixFetch accounts fetched bytes per topic and presents be's leaders and
// endpoints as peers; it reports whether the response changed.
func (c *clientConn) fixFetch(be *Backend, resp *kmsg.FetchResponse) bool {
	changed := false
	var pr *presenter
	for i := range resp.Topics {
		t := &resp.Topics[i]
		name := t.Topic
		if resp.Version >= 13 {
			name, _ = be.topicName(t.TopicID)
		}
		n := 0
		for j := range t.Partitions {
			p := &t.Partitions[j]
			n += len(p.RecordBatches)
			if p.ErrorCode != 0 {
				be.metrics.errorCode(p.ErrorCode).Inc()
			}
			if isLeadershipError(p.ErrorCode) {
				be.TriggerRefresh()
			}
			if p.PreferredReadReplica >= 0 && resp.Version >= 11 {
				p.PreferredReadReplica = -1
				changed = true
			}
			if p.CurrentLeader.LeaderID >= 0 && resp.Version >= 12 {
				if pr == nil {
					pr = c.s.presenter(be)
				}
				p.CurrentLeader.LeaderID = pr.peerFor(p.CurrentLeader.LeaderID)
				changed = true
			}
		}
		tt := topicTarget{be: be, name: name}
		c.s.metrics.fetched(be, tt.metricName(), n)
		th := c.charge(tt, quota.Fetch, n, time.Now())
		c.mute.set(th)
		// Clients wait on the advertised throttle from v8 (KIP-219).
		if ms := th.Millis(); ms > resp.ThrottleMillis && resp.Version >= 8 {
			resp.ThrottleMillis, changed = ms, true
		}
	}
	if resp.SessionID != 0 {
		// The backend opened a session we did not ask for; never let the
		// client use it.
		resp.SessionID = 0
		changed = true
	}
	if len(resp.Brokers) > 0 {
		if pr == nil {
			pr = c.s.presenter(be)
		}
		resp.Brokers = presentEndpoints(pr, resp.Brokers, func(b presentedBroker) kmsg.FetchResponseBroker {
			return kmsg.FetchResponseBroker{NodeID: b.id, Host: b.host, Port: b.port, Rack: b.rack}
		}, func(b kmsg.FetchResponseBroker) int32 { return b.NodeID })
		changed = true
	}
	return changed
}
