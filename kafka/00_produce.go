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
// only when something changed. Without a write lease (Config.Writes) every
// routed partition is answered NOT_LEADER_OR_FOLLOWER and nothing is sent.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/quota"
)

func handleProduce(r *request) error { return produceFamily.serve(r) }

var produceFamily = &family[*kmsg.ProduceRequest, *kmsg.ProduceResponse]{
	seg:      produceSeg,
	minusOne: []string{"BaseOffset"},
	idsFrom:  13,
	reqIDs:   produceRequestIDs,
	respIDs:  produceResponseIDs,
	prepare: func(r *request, req *kmsg.ProduceRequest) error {
		r.split.txn, r.split.txnDenied = "", false
		if req.TransactionID != nil {
			r.split.txn = *req.TransactionID
			// Kafka: a transactional Produce needs Write on its
			// transactional id (acl_requests.go).
			if !r.allows(opWrite, resTxn, r.split.txn) {
				r.split.txnDenied = true
			}
		}
		return nil
	},
	// Each topic: a transaction this peer knows runs on another cluster
	// cannot write here (txn_clusters.go); account its bytes and charge
	// its quota.
	topic: func(r *request, req *kmsg.ProduceRequest, i int, tt topicTarget) topicTarget {
		if tt.be != nil && tt.meta == nil && r.awaitMetadata(tt.be) {
			// A topic this peer has not seen (created through another
			// peer or on the cluster): its leaders come with a refresh,
			// and no broker is picked blindly (produce_order.go).
			tt.meta = tt.be.meta(tt.name)
		}
		if tt.be != nil && r.split.txnDenied {
			tt = topicTarget{name: tt.name, code: kerr.TransactionalIDAuthorizationFailed.Code}
		}
		if tt.be != nil && r.split.noWrite {
			// No write lease: this peer may be cut off from the control
			// plane and miss a migration's fence; the client refreshes its
			// metadata and retries, through another peer if this one is
			// gone from it (Config.Writes).
			tt = topicTarget{name: tt.name, code: noLeaseCode}
		}
		if tt.be != nil && len(r.st.Migrations) > 0 {
			// A migration's fence refuses the topic's writes; until the
			// switch, the ones let through are counted (segments.go).
			if fenced(r.st, tt.name) && !r.c.txnHoldsFenced(r.split.txn, firstProducer(req.Topics[i].Partitions), tt.be, tt.name, partitionsOf(req.Topics[i].Partitions)) {
				// A transaction that wrote the topic before the fence
				// writes on: the fence waits for it to end.
				tt = topicTarget{name: tt.name, code: fencedCode}
			}
			if tt.be != nil && req.Acks != 0 && migrating(r.st, tt.name) {
				r.inflight = append(r.inflight, tt.name)
				r.c.s.produceInflight.add(tt.name, 1)
			}
		}
		if tt.be == nil && tt.code == kerr.NotLeaderForPartition.Code {
			// Refused here (a fence, a route-change bounce): later batches
			// of the same producers wait for these (seq_gaps.go).
			for _, p := range req.Topics[i].Partitions {
				r.c.s.seqGaps.refused(tt.name, p.Partition, p.Records)
			}
		}
		if r.split.txn != "" && tt.be != nil {
			var prev *Backend
			if tt.chain != nil {
				prev = tt.prev
			}
			_, epoch := firstProducerEpoch(req.Topics[i].Partitions)
			if on := r.c.txnElsewhere(r, r.split.txn, tt.be, prev, epoch); on != nil {
				r.c.refuseSpan(r.split.txn, tt.name, tt.be, on)
				tt = topicTarget{name: tt.name, code: txnSpanCode}
			}
		}
		n, recs := 0, 0
		for _, p := range req.Topics[i].Partitions {
			n += len(p.Records)
			recs += recordCount(p.Records)
		}
		r.c.s.metrics.produced(tt.be, tt.metricName(), n, recs)
		r.c.s.metrics.regionTraffic(r.st, r.region, r.c.peerRegion, tt.be, "produce", n)
		r.split.throttle = r.split.throttle.Max(r.c.charge(tt, quota.Produce, n, r.start))
		return tt
	},
	// Each partition: idempotent and transactional producers' virtual ids
	// become the cluster's real ones, in place (producer_ids.go,
	// txn_clusters.go).
	partition: func(r *request, req *kmsg.ProduceRequest, i, j int, tt topicTarget) int16 {
		p := &req.Topics[i].Partitions[j]
		if code := r.c.s.seqGaps.admit(tt.name, p.Partition, p.Records); code != 0 {
			r.presentLeader(tt, p.Partition)
			return code
		}
		if tt.leader(p.Partition).broker < 0 && r.awaitMetadata(tt.be) {
			// A partition just added, or one whose leader was being
			// elected at the last refresh: look again after one.
			tt.meta = tt.be.meta(tt.name)
		}
		if code, moved := r.c.producePlace(tt, p.Partition); code != 0 {
			// Its broker changed under batches that may not be written,
			// or it has none (produce_order.go): later batches of the
			// same producer wait for this one's retry.
			r.c.s.seqGaps.refused(tt.name, p.Partition, p.Records)
			if moved {
				r.presentLeader(tt, p.Partition)
			}
			return code
		}
		if req.TransactionID != nil {
			var part *seqPart
			if tt.chain != nil {
				part = &seqPart{tt.name, p.Partition}
			}
			return r.c.mapTxnProducers(r, tt.be, r.split.txn, pidScope(tt), part, p.Records)
		}
		if pid := firstProducer(req.Topics[i].Partitions[j : j+1]); tt.chain == nil && (pid < 0 || !isVirtual(pid)) {
			return r.c.mapProducers(tt.be, pidScope(tt), nil, p.Records)
		}
		scope, rebase := r.pidTarget(tt)
		var part *seqPart
		if rebase {
			part = &seqPart{tt.name, p.Partition}
		}
		return r.c.mapProducers(tt.be, scope, part, p.Records)
	},
	// KIP-219: the answer advertises the throttle (clients from v6 wait on
	// it) and the connection is muted; acks=0 and older versions get the
	// mute alone.
	routed: func(r *request, req *kmsg.ProduceRequest) {
		r.c.mute.set(r.split.throttle)
		r.split.advertise = 0
		if req.Acks != 0 && r.version >= 6 {
			r.split.advertise = r.split.throttle.Millis()
		}
	},
	oneWay: func(req *kmsg.ProduceRequest) bool { return req.Acks == 0 },
	quiet: func(r *request, resp *buffer) bool {
		// A guessed sequence start is settled by the answer, even a
		// successful one (fixSeqGuesses).
		return r.split.advertise == 0 && len(r.split.seqGuesses) == 0 && quietProduceResponse(resp.b[4:], r.version)
	},
	fix: func(r *request, t target, resp *kmsg.ProduceResponse) bool {
		changed := len(r.split.seqGuesses) > 0 && fixSeqGuesses(r, t.be, resp)
		return fixProduce(r, t.be, resp) || changed
	},
	merge: func(out, in *kmsg.ProduceResponse) {
		out.Brokers = append(out.Brokers, in.Brokers...)
	},
	done: func(r *request, out *kmsg.ProduceResponse) bool {
		changed := presentLeaders(r, out)
		if len(out.Brokers) > 1 {
			n := len(out.Brokers)
			out.Brokers = dedupeBy(out.Brokers, func(b kmsg.ProduceResponseBroker) int32 { return b.NodeID })
			changed = len(out.Brokers) != n
		}
		if r.split.advertise > out.ThrottleMillis {
			out.ThrottleMillis, changed = r.split.advertise, true
		}
		return changed
	},
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

// fixProduce presents be's leaders and endpoints as peers; it reports
// whether the response changed.
func fixProduce(r *request, be *Backend, resp *kmsg.ProduceResponse) bool {
	changed := false
	var pr *presenter
	for i := range resp.Topics {
		name := resp.Topics[i].Topic
		if resp.Version >= 13 {
			// The client knows the virtual id; not a change by itself (an
			// answer going as it is gets it in place: split.go).
			var ok bool
			if name, ok = be.topicName(resp.Topics[i].TopicID); ok {
				r.c.s.presentTopicID(name, &resp.Topics[i].TopicID)
			}
		}
		for j := range resp.Topics[i].Partitions {
			p := &resp.Topics[i].Partitions[j]
			if p.ErrorCode != 0 {
				be.metrics.errorCode(p.ErrorCode).Inc()
				r.c.s.metrics.topicError(be, topicTarget{be: be, name: name}.metricName(), p.ErrorCode)
			}
			if isLeadershipError(p.ErrorCode) {
				be.TriggerRefresh()
			}
			if p.CurrentLeader.LeaderID >= 0 && resp.Version >= 10 {
				if pr == nil {
					pr = r.presenter(be)
				}
				p.CurrentLeader.LeaderID = pr.peerFor(p.CurrentLeader.LeaderID)
				changed = true
			}
		}
	}
	if len(resp.Brokers) > 0 {
		if pr == nil {
			pr = r.presenter(be)
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

// firstProducer is the producer id of the first batch of parts, -1 when
// there is none.
func firstProducer(parts []kmsg.ProduceRequestTopicPartition) int64 {
	pid, _ := firstProducerEpoch(parts)
	return pid
}

// firstProducerEpoch is the producer id and epoch of the first batch of
// parts, -1 when there is none.
func firstProducerEpoch(parts []kmsg.ProduceRequestTopicPartition) (int64, int16) {
	pid, epoch := int64(-1), int16(-1)
	for _, p := range parts {
		batchesOf(p.Records, func(b []byte) bool {
			pid, epoch = batchProducer(b)
			return false
		})
		if pid >= 0 {
			break
		}
	}
	return pid, epoch
}

// partitionsOf lists the partitions of a Produce topic.
func partitionsOf(parts []kmsg.ProduceRequestTopicPartition) []int32 {
	out := make([]int32, len(parts))
	for i, p := range parts {
		out[i] = p.Partition
	}
	return out
}

// fixSeqGuesses settles the guessed sequence starts of r's transactional
// batches (txnSeqStart) from the cluster's answer: a batch refused
// OUT_OF_ORDER_SEQUENCE_NUMBER from a guessed start is answered with the
// retriable NOT_LEADER_OR_FOLLOWER instead (the cluster wrote nothing),
// and the start becomes 0, so the client's retry is accepted. Batches of
// the same producer in flight behind it are refused out of order by the
// cluster too and answered the same way. Kafka's DescribeProducers
// reports the epoch of the producer's last batch on the partition, so its
// guess is right; kfake reports the current epoch, so after an epoch bump
// its guess is one the partition refuses. It reports whether resp changed.
func fixSeqGuesses(r *request, be *Backend, resp *kmsg.ProduceResponse) bool {
	changed := false
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		name := rt.Topic
		if name == "" && be != nil {
			name, _ = be.topicName(rt.TopicID) // v13+: by the cluster's id
		}
		for j := range rt.Partitions {
			p := &rt.Partitions[j]
			for _, k := range r.split.seqGuesses {
				if k.partition != p.Partition || k.topic != name {
					continue
				}
				ooo := p.ErrorCode == kerr.OutOfOrderSequenceNumber.Code
				flipped := r.c.s.pids.settleGuess(k, p.ErrorCode == 0)
				if ooo && (flipped || !r.c.s.pids.guessed(k)) {
					p.ErrorCode = kerr.NotLeaderForPartition.Code
					changed = true
					// Later batches sent before the client sees this
					// wait for its retry (seq_gaps.go).
					r.c.s.seqGaps.refusedAt(k.topic, k.partition, k.vpid, k.vepoch, r.c.s.pids.firstSeq(k))
				}
			}
		}
	}
	return changed
}
