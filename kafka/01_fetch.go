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
)

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
	be := c.s.backend
	// ForgottenTopics only matter to a session, and sessions are off.
	leader, split := int32(-1), false
	first := true
	for _, t := range req.Topics {
		name := t.Topic
		if r.version >= 13 {
			name, _ = be.topicName(t.TopicID)
		}
		for _, p := range t.Partitions {
			l := be.leader(name, p.Partition)
			if first {
				leader, first = l, false
			} else if l != leader {
				split = true
			}
		}
	}
	if !split {
		u, err := c.upstreamOrAny(leader)
		if err != nil {
			return err
		}
		return c.forwardTo(u, r, start, func(resp *buffer) (*buffer, error) {
			return rewrite(resp, r, func(kr kmsg.Response) bool {
				return c.fixFetch(kr.(*kmsg.FetchResponse))
			})
		})
	}
	by := map[int32]*kmsg.FetchRequest{}
	for _, t := range req.Topics {
		name := t.Topic
		if r.version >= 13 {
			name, _ = be.topicName(t.TopicID)
		}
		for _, p := range t.Partitions {
			leader := be.leader(name, p.Partition)
			sub := by[leader]
			if sub == nil {
				s := *req
				s.Topics = nil
				sub = &s
				by[leader] = sub
			}
			if n := len(sub.Topics); n == 0 || sub.Topics[n-1].Topic != t.Topic || sub.Topics[n-1].TopicID != t.TopicID {
				sub.Topics = append(sub.Topics, kmsg.FetchRequestTopic{Topic: t.Topic, TopicID: t.TopicID})
			}
			st := &sub.Topics[len(sub.Topics)-1]
			st.Partitions = append(st.Partitions, p)
		}
	}
	parts := make([]part, 0, len(by))
	for _, id := range brokerOrder(by) {
		parts = append(parts, part{broker: id, req: by[id]})
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
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
		c.fixFetch(out)
		return out
	})
}

// fixFetch accounts fetched bytes per topic and presents leaders and
// endpoints as peers; it reports whether the response changed.
func (c *clientConn) fixFetch(resp *kmsg.FetchResponse) bool {
	changed := false
	var pr *presenter
	be := c.s.backend
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
			if isLeadershipError(p.ErrorCode) {
				be.TriggerRefresh()
			}
			if p.PreferredReadReplica >= 0 && resp.Version >= 11 {
				p.PreferredReadReplica = -1
				changed = true
			}
			if p.CurrentLeader.LeaderID >= 0 && resp.Version >= 12 {
				if pr == nil {
					pr = c.s.presenter()
				}
				p.CurrentLeader.LeaderID = pr.peerFor(p.CurrentLeader.LeaderID)
				changed = true
			}
		}
		c.s.metrics.fetched(name, n)
	}
	if resp.SessionID != 0 {
		// The backend opened a session we did not ask for; never let the
		// client use it.
		resp.SessionID = 0
		changed = true
	}
	if len(resp.Brokers) > 0 {
		if pr == nil {
			pr = c.s.presenter()
		}
		resp.Brokers = presentEndpoints(pr, resp.Brokers, func(b presentedBroker) kmsg.FetchResponseBroker {
			return kmsg.FetchResponseBroker{NodeID: b.id, Host: b.host, Port: b.port, Rack: b.rack}
		}, func(b kmsg.FetchResponseBroker) int32 { return b.NodeID })
		changed = true
	}
	return changed
}
