package kafka

// Produce (key 0): v3 and up (what kfake and Kafka 4 accept; older
// versions are capped by the backend's range).
//
// The request is decoded (record batches stay aliased, never copied) to
// count bytes per topic and to find each partition's leader. When every
// partition has one leader broker, the original bytes are forwarded;
// otherwise the request is split per leader and the answers merged. acks=0
// gets no response, split or not. A response is first scanned without
// decoding (quietProduceResponse): when every partition succeeded and no
// tagged field is present (so no KIP-951 CurrentLeader or NodeEndpoints,
// which brokers send only with NOT_LEADER_OR_FOLLOWER-type errors), the
// backend's bytes go to the client as they are. Otherwise it is decoded to
// spot leadership errors (which trigger a metadata refresh) and, from v10
// on, to present CurrentLeader and NodeEndpoints as peers, and re-encoded
// only when something changed.

import (
	"encoding/binary"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/quota"
)

func handleProduce(c *clientConn, r *request, start time.Time) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.ProduceRequest)
	st := c.s.view.State()
	var home *Backend
	if req.TransactionID != nil {
		home = c.s.homeOf(st, *req.TransactionID)
	}
	// First pass: route each topic, account its bytes, map virtual
	// producer ids in place, and find whether one broker leads every
	// partition (the normal deployment), without building anything.
	var ttBuf [4]topicTarget
	tts := ttBuf[:0]
	var failed map[[2]int]int16 // (topic, partition) index → error, rare
	var th quota.Throttle
	one, single, seen := target{}, true, false
	for i := range req.Topics {
		t := &req.Topics[i]
		tt := c.resolveTopic(st, t.Topic, t.TopicID, r.version >= 13)
		if tt.be != nil && home != nil && tt.be != home {
			// A transaction lives on its transactional id's home cluster
			// and cannot write to another one.
			tt = topicTarget{name: tt.name, code: kerr.InvalidTxnState.Code}
		}
		tts = append(tts, tt)
		n := 0
		for j := range t.Partitions {
			p := &t.Partitions[j]
			n += len(p.Records)
			tg := target{}
			if tt.be != nil {
				if home == nil {
					if code := c.mapProducers(tt.be, p.Records); code != 0 {
						if failed == nil {
							failed = map[[2]int]int16{}
						}
						failed[[2]int{i, j}] = code
						single = false
					}
				}
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
		c.s.metrics.produced(tt.be, tt.metricName(), n)
		th = th.Max(c.charge(tt, quota.Produce, n, start))
	}
	// KIP-219: the answer advertises the throttle (clients from v6 wait on
	// it) and the connection is muted; acks=0 and older versions get the
	// mute alone.
	c.mute.set(th)
	var advertise int32
	if req.Acks != 0 && r.version >= 6 {
		advertise = th.Millis()
	}
	if single && one.be != nil {
		u, err := c.upstreamOrAny(one)
		if err != nil {
			return err
		}
		if req.Acks == 0 {
			return u.send(r.buf.b, r.corr, nil)
		}
		return c.forwardTo(u, r, start, func(resp *buffer) (*buffer, error) {
			if advertise == 0 && quietProduceResponse(resp.b[4:], r.version) {
				return resp, nil
			}
			return rewrite(resp, r, func(kr kmsg.Response) bool {
				pr := kr.(*kmsg.ProduceResponse)
				changed := c.fixProduce(one.be, pr)
				if advertise > pr.ThrottleMillis {
					pr.ThrottleMillis, changed = advertise, true
				}
				return changed
			})
		})
	}
	by := map[target]*kmsg.ProduceRequest{}
	local := &kmsg.ProduceResponse{Version: req.Version}
	for i, t := range req.Topics {
		tt := tts[i]
		for j, p := range t.Partitions {
			code := tt.code
			if c, ok := failed[[2]int{i, j}]; ok {
				code = c
			}
			if tt.be == nil || code != 0 {
				addProducePartitionError(local, t, p.Partition, code)
				continue
			}
			tg := target{tt.be, tt.be.leader(tt.name, p.Partition)}
			sub := by[tg]
			if sub == nil {
				sub = &kmsg.ProduceRequest{Version: req.Version, TransactionID: req.TransactionID, Acks: req.Acks, TimeoutMillis: req.TimeoutMillis}
				by[tg] = sub
			}
			if n := len(sub.Topics); n == 0 || sub.Topics[n-1].Topic != t.Topic || sub.Topics[n-1].TopicID != t.TopicID {
				sub.Topics = append(sub.Topics, kmsg.ProduceRequestTopic{Topic: t.Topic, TopicID: t.TopicID})
			}
			st := &sub.Topics[len(sub.Topics)-1]
			st.Partitions = append(st.Partitions, p)
		}
	}
	parts := partsOf(by)
	if len(local.Topics) > 0 {
		parts = append(parts, part{local: local})
	}
	if req.Acks == 0 {
		return c.scatterOneWay(r, parts)
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		for i, x := range resps {
			if parts[i].local == nil {
				c.fixProduce(parts[i].t.be, x.(*kmsg.ProduceResponse))
			}
		}
		out := resps[0].(*kmsg.ProduceResponse)
		idx := map[topicKey]int{}
		for i, t := range out.Topics {
			idx[topicKey{t.Topic, t.TopicID}] = i
		}
		for _, x := range resps[1:] {
			o := x.(*kmsg.ProduceResponse)
			out.ThrottleMillis = max(out.ThrottleMillis, o.ThrottleMillis)
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
		out.Brokers = dedupeBy(out.Brokers, func(b kmsg.ProduceResponseBroker) int32 { return b.NodeID })
		out.ThrottleMillis = max(out.ThrottleMillis, advertise)
		return out
	})
}

func addProducePartitionError(resp *kmsg.ProduceResponse, t kmsg.ProduceRequestTopic, partition int32, code int16) {
	if n := len(resp.Topics); n == 0 || resp.Topics[n-1].Topic != t.Topic || resp.Topics[n-1].TopicID != t.TopicID {
		resp.Topics = append(resp.Topics, kmsg.ProduceResponseTopic{Topic: t.Topic, TopicID: t.TopicID})
	}
	p := kmsg.NewProduceResponseTopicPartition()
	p.Partition, p.ErrorCode, p.BaseOffset = partition, code, -1
	rt := &resp.Topics[len(resp.Topics)-1]
	rt.Partitions = append(rt.Partitions, p)
}

// dedupeBy keeps the first element of each id.
func dedupeBy[T any](in []T, id func(T) int32) []T {
	if len(in) < 2 {
		return in
	}
	seen := map[int32]bool{}
	out := in[:0]
	for _, x := range in {
		if k := id(x); !seen[k] {
			seen[k] = true
			out = append(out, x)
		}
	}
	return out
}

// topicKey identifies a topic by name (and id from the versions that carry one).
type topicKey struct {
	name string
	id   [16]byte
}

// fixProduce presents be's leaders and endpoints as peers; it reports
// whether the response changed.
func (c *clientConn) fixProduce(be *Backend, resp *kmsg.ProduceResponse) bool {
	changed := false
	var pr *presenter
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			p := &resp.Topics[i].Partitions[j]
			if p.ErrorCode != 0 {
				be.metrics.errorCode(p.ErrorCode).Inc()
			}
			if isLeadershipError(p.ErrorCode) {
				be.TriggerRefresh()
			}
			if p.CurrentLeader.LeaderID >= 0 && resp.Version >= 10 {
				if pr == nil {
					pr = c.s.presenter(be)
				}
				p.CurrentLeader.LeaderID = pr.peerFor(p.CurrentLeader.LeaderID)
				changed = true
			}
		}
	}
	if len(resp.Brokers) > 0 {
		if pr == nil {
			pr = c.s.presenter(be)
		}
		resp.Brokers = presentEndpoints(pr, resp.Brokers, func(b presentedBroker) kmsg.ProduceResponseBroker {
			return kmsg.ProduceResponseBroker{NodeID: b.id, Host: b.host, Port: b.port, Rack: b.rack}
		}, func(b kmsg.ProduceResponseBroker) int32 { return b.NodeID })
		changed = true
	}
	return changed
}

// presentEndpoints replaces KIP-951 node endpoints with the peers that
// present those brokers.
func presentEndpoints[T any](pr *presenter, in []T, mk func(presentedBroker) T, id func(T) int32) []T {
	var out []T
	seen := map[int32]bool{}
	for _, b := range in {
		p := pr.peerFor(id(b))
		if p < 0 || seen[p] {
			continue
		}
		seen[p] = true
		if pb, ok := pr.broker(p); ok {
			out = append(out, mk(pb))
		}
	}
	return out
}

// isLeadershipError reports partition errors that mean our view of
// leadership may be stale.
func isLeadershipError(code int16) bool {
	switch code {
	case kerr.NotLeaderForPartition.Code, kerr.LeaderNotAvailable.Code, kerr.FencedLeaderEpoch.Code,
		kerr.UnknownLeaderEpoch.Code, kerr.UnknownTopicOrPartition.Code, kerr.UnknownTopicID.Code:
		return true
	}
	return false
}

// quietProduceResponse reports whether a Produce response frame (without
// its size prefix) needs nothing from the proxy: it parses as version v,
// every partition has error code 0, and it carries no tagged fields. Then
// fixProduce would change nothing and trigger no refresh, so the frame can
// be forwarded without decoding it. Anything else, malformed input
// included, reports false and takes the decoding path, which handles it.
// It is stricter than kmsg, never laxer.
func quietProduceResponse(frame []byte, v int16) bool {
	flexible := v >= 9
	_, body, err := responseBody(frame, 0, flexible)
	if err != nil {
		return false
	}
	s := skim{b: body, flexible: flexible, ok: true}
	for range s.arrayLen() {
		if v >= 13 {
			s.skip(16) // topic id
		} else {
			s.str()
		}
		for range s.arrayLen() {
			s.skip(4) // partition
			if s.int16() != 0 {
				return false
			}
			s.skip(8) // base offset
			if v >= 2 {
				s.skip(8) // log append time
			}
			if v >= 5 {
				s.skip(8) // log start offset
			}
			if v >= 8 {
				for range s.arrayLen() { // record errors
					s.skip(4)
					s.nullableStr()
					s.noTags()
				}
				s.nullableStr() // error message
			}
			s.noTags() // CurrentLeader is tag 0 (v10+)
		}
		s.noTags()
	}
	if v >= 1 {
		s.skip(4) // throttle
	}
	s.noTags() // NodeEndpoints is tag 0 (v10+)
	return s.ok
}

// skim walks Kafka's wire encoding without decoding into structs. Any
// malformed or unexpected input clears ok; later calls then do nothing.
type skim struct {
	b        []byte
	flexible bool
	ok       bool
}

func (s *skim) fail() { s.ok, s.b = false, nil }

func (s *skim) skip(n int) {
	if n < 0 || n > len(s.b) {
		s.fail()
		return
	}
	s.b = s.b[n:]
}

func (s *skim) int16() int16 {
	if len(s.b) < 2 {
		s.fail()
		return 0
	}
	x := int16(binary.BigEndian.Uint16(s.b))
	s.b = s.b[2:]
	return x
}

func (s *skim) int32() int32 {
	if len(s.b) < 4 {
		s.fail()
		return 0
	}
	x := int32(binary.BigEndian.Uint32(s.b))
	s.b = s.b[4:]
	return x
}

func (s *skim) uvarint() uint64 {
	x, n := binary.Uvarint(s.b)
	if n <= 0 {
		s.fail()
		return 0
	}
	s.b = s.b[n:]
	return x
}

// length reads a compact (uvarint N+1) or classic length (int32 for
// arrays, int16 for strings); -1 is null.
func (s *skim) length(array bool) int {
	switch {
	case s.flexible:
		n := s.uvarint()
		if n > uint64(len(s.b))+1 {
			s.fail()
			return 0
		}
		return int(n) - 1
	case array:
		return int(s.int32())
	}
	return int(s.int16())
}

// arrayLen reads a non-null array length, failing on null or on a count
// the remaining bytes cannot hold.
func (s *skim) arrayLen() int {
	n := s.length(true)
	if n < 0 || n > len(s.b) {
		s.fail()
		return 0
	}
	return n
}

func (s *skim) str() {
	n := s.length(false)
	if n < 0 {
		s.fail()
		return
	}
	s.skip(n)
}

func (s *skim) nullableStr() {
	n := s.length(false)
	if n < -1 {
		s.fail()
		return
	}
	if n > 0 {
		s.skip(n)
	}
}

// noTags requires an empty tagged-field section in flexible versions.
func (s *skim) noTags() {
	if s.flexible && s.uvarint() != 0 {
		s.fail()
	}
}
