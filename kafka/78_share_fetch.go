package kafka

// ShareFetch (78) and ShareAcknowledge (79): every version kmsg and the
// backend share (KIP-932; KIP-1206 batch sizes in v1, KIP-1222 lock
// renewal in v2).
//
// The client's share session is held by the proxy and fanned out to one
// backend share session per leader broker (share_sessions.go). Each
// request is split by partition leader: topic ids virtual → the routed
// cluster's in the parts, back to virtual in the answers; partitions
// whose topic or leader is unknown are answered here (UNKNOWN_TOPIC_ID,
// NOT_LEADER_OR_FOLLOWER), acknowledgements that cannot reach the session
// that acquired their records with INVALID_SHARE_SESSION_EPOCH. The
// answers are merged: CurrentLeader and NodeEndpoints (KIP-951) presented
// as peers, the shortest acquisition lock kept, fetched bytes counted and
// charged to the topic's fetch quota as Fetch's are. A fetch that fans out
// to several brokers waits at most shareSplitMaxWait on each. MaxBytes and
// a soft MaxRecords go to every part: the proxy may then return more than
// asked when the session spans brokers, as the limits allow; a strict
// MaxRecords (record-limit mode, KIP-1206) is divided among the parts. A
// fetch that only renews locks (KIP-1222) carries acknowledgements only.
//
// A part whose broker connection fails closes the client's connection
// (no per-partition answer could say which records were acquired): the
// client reopens its session, and the backends release what the closed
// connection's sessions held.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/quota"
)

func handleShareFetch(r *request) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.ShareFetchRequest)
	key, ok := shareKeyOf(req.GroupID, req.MemberID)
	if !ok {
		resp := kmsg.NewPtrShareFetchResponse()
		resp.SetVersion(r.version)
		resp.ErrorCode = kerr.InvalidRequest.Code
		return r.c.respond(r, r.start, resp)
	}
	acks := map[shareTP]shareAcks{}
	for i := range req.Topics {
		t := &req.Topics[i]
		for j := range t.Partitions {
			if p := &t.Partitions[j]; len(p.AcknowledgementBatches) > 0 {
				tp := shareTP{t.TopicID, p.Partition}
				acks[tp] = append(acks[tp], p.AcknowledgementBatches...)
			}
		}
	}
	ss := &r.c.share
	ss.mu.Lock()
	plan := ss.planFetch(r, key, req, acks)
	ss.mu.Unlock()
	if plan.code != 0 {
		resp := kmsg.NewPtrShareFetchResponse()
		resp.SetVersion(r.version)
		resp.ErrorCode = plan.code
		if plan.msg != "" {
			resp.ErrorMessage = kmsg.StringPtr("switchyard: " + plan.msg)
		}
		return r.c.respond(r, r.start, resp)
	}
	remote := 0
	for _, sp := range plan.parts {
		if !sp.closing {
			remote++
		}
	}
	parts := make([]part, 0, len(plan.parts)+1)
	nth := 0
	for i := range plan.parts {
		sp := &plan.parts[i]
		sub := sp.fetchRequest(req, remote > 1)
		if !sp.closing {
			sub.MaxRecords = shareMaxRecords(req, nth, remote)
			nth++
		}
		parts = append(parts, part{t: sp.t, req: sub})
	}
	local := kmsg.NewPtrShareFetchResponse()
	for _, f := range plan.failed {
		p := shareFetchPartition(local, f.tp)
		p.ErrorCode, p.AcknowledgeErrorCode = f.code, f.ackCode
	}
	parts = append(parts, part{local: local})
	return r.c.scatter(r, r.start, parts, func(resps []kmsg.Response) kmsg.Response {
		return mergeShareFetch(r, key, plan, resps)
	})
}

// shareKeyOf is the session key of a request; false when it names no
// group or member (INVALID_REQUEST, as a broker answers).
func shareKeyOf(group, member *string) (shareKey, bool) {
	if group == nil || member == nil || *group == "" || *member == "" {
		return shareKey{}, false
	}
	return shareKey{*group, *member}, true
}

// shareMaxRecords is the MaxRecords of the nth of n fetching parts. In
// record-limit mode (KIP-1206, ShareAcquireMode 1) the client's limit is
// strict, so it is divided among the parts (each gets at least one: a
// broker takes 0 as its default); otherwise it is a soft limit, as a
// broker treats it, and every part gets it whole.
func shareMaxRecords(req *kmsg.ShareFetchRequest, nth, n int) int32 {
	if n < 2 || req.Version < 2 || req.ShareAcquireMode != 1 || req.MaxRecords <= 0 {
		return req.MaxRecords
	}
	share := req.MaxRecords / int32(n)
	if int32(nth) < req.MaxRecords%int32(n) {
		share++
	}
	return max(share, 1)
}

// fetchRequest is the ShareFetch sent to sp's broker: req's request-level
// fields, sp's epoch and partitions (the cluster's topic ids).
func (sp *sharePart) fetchRequest(req *kmsg.ShareFetchRequest, split bool) *kmsg.ShareFetchRequest {
	sub := *req
	sub.Topics, sub.ForgottenTopicsData = nil, nil
	sub.ShareSessionEpoch = sp.epoch
	if split && sub.MaxWaitMillis > shareSplitMaxWait {
		sub.MaxWaitMillis = shareSplitMaxWait
	}
	for _, e := range sp.add {
		if n := len(sub.Topics); n == 0 || sub.Topics[n-1].TopicID != e.real {
			t := kmsg.NewShareFetchRequestTopic()
			t.TopicID = e.real
			sub.Topics = append(sub.Topics, t)
		}
		p := kmsg.NewShareFetchRequestTopicPartition()
		p.Partition, p.PartitionMaxBytes, p.AcknowledgementBatches = e.tp.part, e.maxBytes, e.acks
		t := &sub.Topics[len(sub.Topics)-1]
		t.Partitions = append(t.Partitions, p)
	}
	for _, e := range sp.forget {
		if n := len(sub.ForgottenTopicsData); n == 0 || sub.ForgottenTopicsData[n-1].TopicID != e.real {
			f := kmsg.NewShareFetchRequestForgottenTopicsData()
			f.TopicID = e.real
			sub.ForgottenTopicsData = append(sub.ForgottenTopicsData, f)
		}
		f := &sub.ForgottenTopicsData[len(sub.ForgottenTopicsData)-1]
		f.Partitions = append(f.Partitions, e.tp.part)
	}
	return &sub
}

// shareFetchPartition finds or adds partition tp in resp.
func shareFetchPartition(resp *kmsg.ShareFetchResponse, tp shareTP) *kmsg.ShareFetchResponseTopicPartition {
	ti := -1
	for i := range resp.Topics {
		if resp.Topics[i].TopicID == tp.vid {
			ti = i
			break
		}
	}
	if ti < 0 {
		t := kmsg.NewShareFetchResponseTopic()
		t.TopicID = tp.vid
		resp.Topics = append(resp.Topics, t)
		ti = len(resp.Topics) - 1
	}
	t := &resp.Topics[ti]
	for j := range t.Partitions {
		if t.Partitions[j].Partition == tp.part {
			return &t.Partitions[j]
		}
	}
	p := kmsg.NewShareFetchResponseTopicPartition()
	p.Partition = tp.part
	p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = -1, -1
	t.Partitions = append(t.Partitions, p)
	return &t.Partitions[len(t.Partitions)-1]
}

// mergeShareFetch merges the answers of plan's parts (the last response
// is the proxy's own) into the client's answer.
func mergeShareFetch(r *request, key shareKey, plan sharePlan, resps []kmsg.Response) kmsg.Response {
	out := kmsg.NewPtrShareFetchResponse()
	out.SetVersion(r.version)
	ss := &r.c.share
	var ackFails []shareFailure
	for i, x := range resps[:len(plan.parts)] {
		sp := &plan.parts[i]
		resp := x.(*kmsg.ShareFetchResponse)
		if resp.ErrorCode != 0 {
			if sp.closing {
				continue
			}
			ss.forgetBackend(plan.sess, sp)
			if isShareSessionError(resp.ErrorCode) {
				for _, tp := range sp.acked() {
					ackFails = append(ackFails, shareFailure{tp: tp, ackCode: resp.ErrorCode})
				}
				continue
			}
			if out.ErrorCode == 0 {
				out.ErrorCode, out.ErrorMessage = resp.ErrorCode, resp.ErrorMessage
			}
			ss.drop(key, plan.sess)
			continue
		}
		fixShareFetch(r, sp.t.be, resp)
		if resp.AcquisitionLockTimeoutMillis > 0 && (out.AcquisitionLockTimeoutMillis == 0 || resp.AcquisitionLockTimeoutMillis < out.AcquisitionLockTimeoutMillis) {
			out.AcquisitionLockTimeoutMillis = resp.AcquisitionLockTimeoutMillis
		}
		out.Topics = mergeShareTopics(out.Topics, resp.Topics, func(t kmsg.ShareFetchResponseTopic) [16]byte { return t.TopicID },
			func(dst *kmsg.ShareFetchResponseTopic, src kmsg.ShareFetchResponseTopic) {
				dst.Partitions = append(dst.Partitions, src.Partitions...)
			})
		out.NodeEndpoints = append(out.NodeEndpoints, resp.NodeEndpoints...)
	}
	if out.ErrorCode != 0 {
		// A request-level error: the client ignores the partitions.
		out.Topics, out.NodeEndpoints = nil, nil
		return out
	}
	local := resps[len(resps)-1].(*kmsg.ShareFetchResponse)
	for _, t := range local.Topics {
		for _, p := range t.Partitions {
			q := shareFetchPartition(out, shareTP{t.TopicID, p.Partition})
			if p.ErrorCode != 0 {
				q.ErrorCode = p.ErrorCode
			}
			if p.AcknowledgeErrorCode != 0 {
				q.AcknowledgeErrorCode = p.AcknowledgeErrorCode
			}
		}
	}
	for _, f := range ackFails {
		shareFetchPartition(out, f.tp).AcknowledgeErrorCode = f.ackCode
	}
	out.NodeEndpoints = dedupeBy(out.NodeEndpoints, func(b kmsg.ShareFetchResponseNodeEndpoint) int32 { return b.NodeID })
	return out
}

// mergeShareTopics appends src's topics to dst, joining a topic dst has.
func mergeShareTopics[T any](dst, src []T, id func(T) [16]byte, join func(*T, T)) []T {
	for _, t := range src {
		joined := false
		for i := range dst {
			if id(dst[i]) == id(t) {
				join(&dst[i], t)
				joined = true
				break
			}
		}
		if !joined {
			dst = append(dst, t)
		}
	}
	return dst
}

// fixShareFetch makes be's answer the client's: virtual topic ids, peers
// for leaders and endpoints, bytes counted and charged.
func fixShareFetch(r *request, be *Backend, resp *kmsg.ShareFetchResponse) {
	var pr *presenter
	for i := range resp.Topics {
		t := &resp.Topics[i]
		name, _ := be.topicName(t.TopicID)
		presentShareTopic(r, be, &t.TopicID)
		n, recs := 0, 0
		for j := range t.Partitions {
			p := &t.Partitions[j]
			n += len(p.Records)
			recs += recordCount(p.Records)
			if p.ErrorCode != 0 {
				be.metrics.errorCode(p.ErrorCode).Inc()
				r.c.s.metrics.topicError(be, topicTarget{be: be, name: name}.metricName(), p.ErrorCode)
				if isLeadershipError(p.ErrorCode) {
					be.TriggerRefresh()
				}
			}
			if p.CurrentLeader.LeaderID >= 0 {
				if pr == nil {
					pr = r.presenter(be)
				}
				p.CurrentLeader.LeaderID = pr.peerFor(p.CurrentLeader.LeaderID)
			}
		}
		if n > 0 {
			tt := topicTarget{be: be, name: name}
			r.c.s.metrics.fetched(be, tt.metricName(), n, recs)
			th := r.c.charge(tt, quota.Fetch, n, time.Now())
			r.c.mute.set(th)
			if ms := th.Millis(); ms > resp.ThrottleMillis {
				resp.ThrottleMillis = ms
			}
		}
	}
	if len(resp.NodeEndpoints) > 0 {
		if pr == nil {
			pr = r.presenter(be)
		}
		resp.NodeEndpoints = presentEndpoints(pr, resp.NodeEndpoints, func(b presentedBroker) kmsg.ShareFetchResponseNodeEndpoint {
			return kmsg.ShareFetchResponseNodeEndpoint{NodeID: b.id, Host: b.host, Port: b.port, Rack: b.rack}
		}, func(b kmsg.ShareFetchResponseNodeEndpoint) int32 { return b.NodeID })
	}
}

func handleShareAcknowledge(r *request) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.ShareAcknowledgeRequest)
	key, ok := shareKeyOf(req.GroupID, req.MemberID)
	if !ok {
		resp := kmsg.NewPtrShareAcknowledgeResponse()
		resp.SetVersion(r.version)
		resp.ErrorCode = kerr.InvalidRequest.Code
		return r.c.respond(r, r.start, resp)
	}
	acks := map[shareTP]shareAcks{}
	for i := range req.Topics {
		t := &req.Topics[i]
		for j := range t.Partitions {
			p := &t.Partitions[j]
			tp := shareTP{t.TopicID, p.Partition}
			for _, b := range p.AcknowledgementBatches {
				acks[tp] = append(acks[tp], kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch(b))
			}
		}
	}
	ss := &r.c.share
	ss.mu.Lock()
	plan := ss.planAck(r, key, req.ShareSessionEpoch, acks)
	ss.mu.Unlock()
	if plan.code != 0 {
		resp := kmsg.NewPtrShareAcknowledgeResponse()
		resp.SetVersion(r.version)
		resp.ErrorCode = plan.code
		return r.c.respond(r, r.start, resp)
	}
	parts := make([]part, 0, len(plan.parts)+1)
	for i := range plan.parts {
		sp := &plan.parts[i]
		parts = append(parts, part{t: sp.t, req: sp.ackRequest(req)})
	}
	local := kmsg.NewPtrShareAcknowledgeResponse()
	for _, f := range plan.failed {
		shareAckPartition(local, f.tp).ErrorCode = f.ackCode
	}
	parts = append(parts, part{local: local})
	return r.c.scatter(r, r.start, parts, func(resps []kmsg.Response) kmsg.Response {
		return mergeShareAck(r, key, plan, resps)
	})
}

// ackRequest is the ShareAcknowledge sent to sp's broker.
func (sp *sharePart) ackRequest(req *kmsg.ShareAcknowledgeRequest) *kmsg.ShareAcknowledgeRequest {
	sub := *req
	sub.Topics = nil
	sub.ShareSessionEpoch = sp.epoch
	for _, e := range sp.add {
		if n := len(sub.Topics); n == 0 || sub.Topics[n-1].TopicID != e.real {
			t := kmsg.NewShareAcknowledgeRequestTopic()
			t.TopicID = e.real
			sub.Topics = append(sub.Topics, t)
		}
		p := kmsg.NewShareAcknowledgeRequestTopicPartition()
		p.Partition = e.tp.part
		for _, b := range e.acks {
			p.AcknowledgementBatches = append(p.AcknowledgementBatches, kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch(b))
		}
		t := &sub.Topics[len(sub.Topics)-1]
		t.Partitions = append(t.Partitions, p)
	}
	return &sub
}

// shareAckPartition finds or adds partition tp in resp.
func shareAckPartition(resp *kmsg.ShareAcknowledgeResponse, tp shareTP) *kmsg.ShareAcknowledgeResponseTopicPartition {
	ti := -1
	for i := range resp.Topics {
		if resp.Topics[i].TopicID == tp.vid {
			ti = i
			break
		}
	}
	if ti < 0 {
		t := kmsg.NewShareAcknowledgeResponseTopic()
		t.TopicID = tp.vid
		resp.Topics = append(resp.Topics, t)
		ti = len(resp.Topics) - 1
	}
	t := &resp.Topics[ti]
	for j := range t.Partitions {
		if t.Partitions[j].Partition == tp.part {
			return &t.Partitions[j]
		}
	}
	p := kmsg.NewShareAcknowledgeResponseTopicPartition()
	p.Partition = tp.part
	p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = -1, -1
	t.Partitions = append(t.Partitions, p)
	return &t.Partitions[len(t.Partitions)-1]
}

// mergeShareAck merges the answers of plan's parts (the last response is
// the proxy's own) into the client's answer.
func mergeShareAck(r *request, key shareKey, plan sharePlan, resps []kmsg.Response) kmsg.Response {
	out := kmsg.NewPtrShareAcknowledgeResponse()
	out.SetVersion(r.version)
	ss := &r.c.share
	for i, x := range resps[:len(plan.parts)] {
		sp := &plan.parts[i]
		resp := x.(*kmsg.ShareAcknowledgeResponse)
		be := sp.t.be
		if resp.ErrorCode != 0 {
			ss.forgetBackend(plan.sess, sp)
			if isShareSessionError(resp.ErrorCode) {
				for _, tp := range sp.acked() {
					shareAckPartition(out, tp).ErrorCode = resp.ErrorCode
				}
				continue
			}
			if out.ErrorCode == 0 {
				out.ErrorCode, out.ErrorMessage = resp.ErrorCode, resp.ErrorMessage
			}
			ss.drop(key, plan.sess)
			continue
		}
		var pr *presenter
		for j := range resp.Topics {
			t := &resp.Topics[j]
			presentShareTopic(r, be, &t.TopicID)
			for k := range t.Partitions {
				p := &t.Partitions[k]
				if isLeadershipError(p.ErrorCode) {
					be.TriggerRefresh()
				}
				if p.CurrentLeader.LeaderID >= 0 {
					if pr == nil {
						pr = r.presenter(be)
					}
					p.CurrentLeader.LeaderID = pr.peerFor(p.CurrentLeader.LeaderID)
				}
			}
		}
		if len(resp.NodeEndpoints) > 0 {
			if pr == nil {
				pr = r.presenter(be)
			}
			out.NodeEndpoints = append(out.NodeEndpoints, presentEndpoints(pr, resp.NodeEndpoints, func(b presentedBroker) kmsg.ShareAcknowledgeResponseNodeEndpoint {
				return kmsg.ShareAcknowledgeResponseNodeEndpoint{NodeID: b.id, Host: b.host, Port: b.port, Rack: b.rack}
			}, func(b kmsg.ShareAcknowledgeResponseNodeEndpoint) int32 { return b.NodeID })...)
		}
		if resp.AcquisitionLockTimeoutMillis > 0 && (out.AcquisitionLockTimeoutMillis == 0 || resp.AcquisitionLockTimeoutMillis < out.AcquisitionLockTimeoutMillis) {
			out.AcquisitionLockTimeoutMillis = resp.AcquisitionLockTimeoutMillis
		}
		out.Topics = mergeShareTopics(out.Topics, resp.Topics, func(t kmsg.ShareAcknowledgeResponseTopic) [16]byte { return t.TopicID },
			func(dst *kmsg.ShareAcknowledgeResponseTopic, src kmsg.ShareAcknowledgeResponseTopic) {
				dst.Partitions = append(dst.Partitions, src.Partitions...)
			})
	}
	if out.ErrorCode != 0 {
		out.Topics, out.NodeEndpoints = nil, nil
		return out
	}
	local := resps[len(resps)-1].(*kmsg.ShareAcknowledgeResponse)
	for _, t := range local.Topics {
		for _, p := range t.Partitions {
			shareAckPartition(out, shareTP{t.TopicID, p.Partition}).ErrorCode = p.ErrorCode
		}
	}
	out.NodeEndpoints = dedupeBy(out.NodeEndpoints, func(b kmsg.ShareAcknowledgeResponseNodeEndpoint) int32 { return b.NodeID })
	return out
}
