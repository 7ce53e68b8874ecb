package kafka

// The splitter: one routing pass, split and merge for every key whose
// request lists topics (partitionFamilies): those whose topics hold
// partitions routed to their leader (Produce, Fetch, ListOffsets,
// DeleteRecords, OffsetForLeaderEpoch, DescribeProducers) or to a group or
// transaction coordinator on their cluster (OffsetCommit, OffsetDelete,
// TxnOffsetCommit, AddPartitionsToTxn), and the topic admin keys routed to
// the controller of each topic's cluster (CreateTopics, CreatePartitions,
// ElectLeaders, AlterPartitionAssignments, ListPartitionReassignments).
//
// A key declares a family: where its units go, and hooks where it differs.
// The splitter does the rest:
//   - each topic is resolved once (pipeline.go: route, bounce), then the
//     family's topic and partition hooks may refuse it or a partition;
//   - when one target serves every partition and nothing is answered
//     locally, the client's bytes go there as they are (the zero-copy,
//     zero-encode path); otherwise the request is split per target, each
//     part built from the original's fields, and the answers, with the
//     proxy's own for refused partitions, merged topic by topic;
//   - the family's fix hook rewrites every backend answer on every exit
//     (single target, each split part) and done finishes the client's
//     answer; quiet lets the single-target path skip decoding an answer
//     whose bytes say nothing needs changing;
//   - a part whose broker fails is answered with the family's retriable
//     error for just its partitions (partfail.go).
//
// The topic/partition layout of these keys is the same in every kmsg type
// (Topics → Topic, TopicID → Partitions → Partition, ErrorCode; a topic
// with no partitions is its own unit), so it is read once per key by
// reflection into a shape (field indices) instead of being written out per
// key; TestFamilyShapes checks every family's.

import (
	"bytes"
	"fmt"
	"reflect"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// partitioned is a family whatever its types: what the handler table and
// the failure answers need.
type partitioned interface {
	serve(r *request) error
	failed(sub kmsg.Request) kmsg.Response
	checkShape() error
}

// partitionFamilies are the keys the splitter serves.
var partitionFamilies = map[int16]partitioned{
	0:  produceFamily,
	1:  fetchFamily,
	2:  listOffsetsFamily,
	8:  offsetCommitFamily,
	19: createTopicsFamily,
	21: deleteRecordsFamily,
	23: offsetForLeaderEpochFamily,
	24: addPartitionsToTxnFamily,
	28: txnOffsetCommitFamily,
	37: createPartitionsFamily,
	43: electLeadersFamily,
	45: alterPartitionAssignmentsFamily,
	46: listPartitionReassignmentsFamily,
	47: offsetDeleteFamily,
	61: describeProducersFamily,
}

// family is one partition-keyed key as the splitter sees it. Every hook is
// optional.
type family[Req kmsg.Request, Resp kmsg.Response] struct {
	// Where a routed topic's partitions go: by default each partition's
	// leader; with coordinator, the coordinator of the returned key on the
	// partition's cluster (and an empty request to the one on the home
	// cluster); with controller, the controller of the topic's cluster.
	coordinator func(Req) (typ int8, key string)
	controller  bool
	// replica, when set, may send a partition to another broker of its
	// cluster than its leader (Fetch: the KIP-392 preferred read replica
	// the backend named for this client).
	replica func(r *request, tt topicTarget, partition int32, leader target) target
	// all reports that req's null topic list means every topic: the
	// request goes as it is to every cluster's controller, and each answer
	// keeps the topics routed to its cluster.
	all func(req Req) bool
	// omitRefused leaves refused topics out of the answer instead of
	// answering them with an error (nothing to list for them).
	omitRefused bool
	// minusOne names answer partition fields that mean "none" as -1, set
	// in the answers the proxy gives itself.
	minusOne []string
	// message is the error message of a refused topic, where the answer
	// carries one.
	message func(tt topicTarget) *string

	// prepare runs before routing: in-place rewrites of the client's
	// bytes and r.split (the home cluster, for coordinator families).
	prepare func(r *request, req Req) error
	// topic runs once per topic after it is resolved and returns how it is
	// served: as resolved, or refused (be nil, code set).
	topic func(r *request, req Req, i int, tt topicTarget) topicTarget
	// partition runs for each partition j of a routed topic i; a non-zero
	// code refuses that partition.
	partition func(r *request, req Req, i, j int, tt topicTarget) int16
	// routed runs after the routing pass, before anything is sent.
	routed func(r *request, req Req)
	// keeps reports whether the client's bytes may go to t as they are
	// (nil: always); rewrite changes the part of a split sent to t.
	keeps   func(r *request, t target) bool
	rewrite func(r *request, t target, sub Req)
	// narrow, when set, returns what is sent to t in place of the part
	// sub, once rewritten and translated (Fetch: a backend fetch
	// session's incremental request, only what changed); a failure of
	// the part is still answered for every unit of sub.
	narrow func(r *request, t target, sub Req) Req
	// oneWay reports that req expects no answer (acks=0 Produce).
	oneWay func(req Req) bool

	// From version idsFrom on (0: never) the key names topics by id: the
	// client's virtual ids are swapped for the cluster's in the request
	// and back in the answer, in place where the bytes go as they are
	// (reqIDs and respIDs find them, wire.go). A key without walkers has
	// its request rebuilt with the cluster's ids and every answer decoded
	// (shape.presentIDs).
	idsFrom         int16
	reqIDs, respIDs func(body []byte, v int16, fn func(off int)) bool

	// quiet reports that an answer to the single-target path needs no
	// rewrite, judged from its bytes: it is not decoded.
	quiet func(r *request, resp *buffer) bool
	// fix rewrites t's answer in place and reports whether it changed.
	fix func(r *request, t target, resp Resp) bool
	// merge folds in's request-level fields into out, beyond what the
	// splitter merges itself: topics, the throttle and the request-level
	// error (the first any part gave).
	merge func(out, in Resp)
	// done finishes the client's answer and reports whether it changed.
	done func(r *request, out Resp) bool

	// seg translates topics with a segment chain (segments.go).
	seg segmentHooks[Req, Resp]

	shapeOnce sync.Once
	sh        *shape
}

func (f *family[Req, Resp]) shape() *shape {
	f.shapeOnce.Do(func() {
		var req Req
		var resp Resp
		f.sh = mustShape(reflect.TypeOf(req), reflect.TypeOf(resp), f.minusOne)
	})
	return f.sh
}

// checkShape reports whether the key's kmsg types have the layout the
// splitter reads.
func (f *family[Req, Resp]) checkShape() error {
	var req Req
	var resp Resp
	_, err := shapeOf(reflect.TypeOf(req), reflect.TypeOf(resp), f.minusOne)
	return err
}

// retryCode is what a partition of a failed part is answered with: what
// makes a client look up the leader, coordinator or controller again.
func (f *family[Req, Resp]) retryCode() int16 {
	switch {
	case f.coordinator != nil:
		return kerr.NotCoordinator.Code
	case f.controller:
		return kerr.NotController.Code
	}
	return kerr.NotLeaderForPartition.Code
}

// failed answers every partition of sub, a part whose broker failed, with
// the family's retriable error; nil when the answer has no error to carry
// one (the request then fails as a whole).
func (f *family[Req, Resp]) failed(sub kmsg.Request) kmsg.Response {
	sh := f.shape()
	if sh.uCode < 0 {
		return nil
	}
	return sh.answerAll(sub, f.retryCode())
}

// target is where partition of tt goes.
func (f *family[Req, Resp]) target(r *request, req Req, tt topicTarget, partition int32) target {
	switch {
	case f.coordinator != nil:
		typ, key := f.coordinator(req)
		return r.coordinator(tt.be, typ, key)
	case f.controller:
		return controllerOf(tt.be)
	}
	if f.replica != nil {
		return f.replica(r, tt, partition, tt.leader(partition))
	}
	return tt.leader(partition)
}

// unitTarget is where unit j of topic i goes: its target, or its previous
// segment's leader when the family's older hook says so (segments.go).
func (f *family[Req, Resp]) unitTarget(r *request, req Req, tt topicTarget, i, j int, partition int32) target {
	if tt.chain != nil && tt.prev != nil && f.seg.older != nil && f.seg.older(r, req, i, j, tt) {
		return tt.prevTarget(partition)
	}
	return f.target(r, req, tt, partition)
}

// segLocalCode marks, among refused units, those the family's segment
// hooks answer themselves (never a Kafka error code).
const segLocalCode int16 = -32768

// emptyTarget answers a request with no partitions: the coordinator on the
// home cluster, the default cluster's controller, else any broker of the
// default cluster.
func (f *family[Req, Resp]) emptyTarget(r *request, req Req) target {
	def := r.defaultBackend()
	switch {
	case f.coordinator != nil && r.split.home != nil:
		typ, key := f.coordinator(req)
		return r.coordinator(r.split.home, typ, key)
	case f.controller && def != nil:
		return controllerOf(def)
	}
	return target{be: def, broker: -1}
}

// serve routes, forwards or splits r.
func (f *family[Req, Resp]) serve(r *request) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(Req)
	r.split.req = kreq
	if f.prepare != nil {
		if err := f.prepare(r, req); err != nil {
			return err
		}
	}
	if f.all != nil && f.all(req) {
		return f.serveAll(r, req)
	}
	r.split.byID = f.byID(r)
	r.split.chained = false
	sh := f.shape()
	topics := reflect.ValueOf(req).Elem().Field(sh.topics)
	nt := topics.Len()
	var ttBuf [4]topicTarget
	tts := ttBuf[:0]
	var refused map[[2]int]int16 // (topic, partition) index → code, rare
	one, single, seen, bounced, omitted := target{}, true, false, false, false
	_, bounce := bounceOf(r.key)
	for i := range nt {
		tv := topics.Index(i)
		tt := r.topic(sh.topicOf(tv))
		if f.coordinator != nil && tt.be == nil && tt.code == bounce {
			bounced = true
		}
		if f.topic != nil {
			tt = f.topic(r, req, i, tt)
		}
		if tt.be != nil && tt.chain != nil {
			// Virtual offsets: every part is rebuilt and translated.
			r.split.chained, single = true, false
		}
		tts = append(tts, tt)
		for j := range sh.units(tv) {
			if tt.be == nil {
				single = false
				omitted = omitted || f.omitRefused
				continue
			}
			if tt.chain != nil && f.seg.local != nil && f.seg.local(r, req, i, j, tt) {
				if refused == nil {
					refused = map[[2]int]int16{}
				}
				refused[[2]int{i, j}] = segLocalCode
				continue
			}
			if f.partition != nil {
				if code := f.partition(r, req, i, j, tt); code != 0 {
					if refused == nil {
						refused = map[[2]int]int16{}
					}
					refused[[2]int{i, j}] = code
					single = false
					continue
				}
			}
			tg := f.unitTarget(r, req, tt, i, j, sh.partitionOf(sh.unit(tv, j)))
			if !seen {
				one, seen = tg, true
			} else if tg != one {
				single = false
			}
		}
	}
	if f.routed != nil {
		f.routed(r, req)
	}
	oneWay := f.oneWay != nil && f.oneWay(req)
	if single && !bounced {
		if !seen {
			one = f.emptyTarget(r, req)
		}
		if (f.keeps == nil || f.keeps(r, one)) && (!f.byID(r) || f.reqIDs != nil && f.realIDs(r, idsOf(tts))) {
			u, err := r.c.upstreamOrAny(one)
			switch {
			case err == nil && oneWay:
				return u.send(r.buf.b, r.corr, nil)
			case err == nil:
				return r.c.forwardTo(u, r, r.start, f.post(r, one))
			case oneWay || failedAnswer(any(req).(kmsg.Request)) == nil && !hasUnavailableAnswer(any(req).(kmsg.Request)):
				return err
			}
			// The broker cannot be reached (nothing was sent): answer as a
			// split part whose broker failed, with the key's answer for an
			// unreachable cluster (unavailable.go) or else the family's
			// retriable code, rather than close the connection. A client told
			// NOT_LEADER_OR_FOLLOWER refreshes and retries; one whose
			// connection closes right after its request may take that for
			// a SASL mismatch and fail the records (franz-go did, while a
			// backend cluster was down for an upgrade: test/chaos
			// TestFaultBackendUpgrade). The split path below answers the
			// part from this failure without dialing again (deadTarget).
			r.c.deadTarget, r.c.deadErr = one, err
			defer func() { r.c.deadTarget, r.c.deadErr = target{}, nil }()
		}
	}

	// Split: one sub-request per target, refused partitions answered here.
	by := map[target]Req{}
	local := reflect.New(sh.resp) // the proxy's own answers
	defaults(local)
	answered := false
	for i := range nt {
		tv, tt := topics.Index(i), tts[i]
		for j := range sh.units(tv) {
			pv := sh.unit(tv, j)
			code := tt.code
			segLocal := false
			if c, ok := refused[[2]int{i, j}]; ok {
				code = c
				if c == segLocalCode {
					code, segLocal = 0, true
				}
			}
			if bounced {
				code, segLocal = bounce, false
			}
			if tt.be == nil || code != 0 || segLocal {
				if tt.be == nil && f.omitRefused {
					continue
				}
				name, id := sh.topicOf(tv)
				var msg *string
				if f.message != nil {
					msg = f.message(topicTarget{name: name, code: code})
				}
				sh.answer(local.Elem(), name, id, sh.partitionOf(pv), code, msg)
				if segLocal {
					f.seg.fill(r, req, i, j, tt, sh.lastAnswered(local.Elem()))
				}
				answered = true
				continue
			}
			tg := f.unitTarget(r, req, tt, i, j, sh.partitionOf(pv))
			id := tt.id
			if tg.be != tt.be && id != ([16]byte{}) {
				// A previous segment's cluster: its own id for the topic.
				// Not known there yet (its metadata is refreshing): the
				// unit is answered here with UNKNOWN_TOPIC_ID under the
				// id the client sent, which it retries after a metadata
				// refresh; sent with no id, the cluster's answer would
				// name no topic the client asked for.
				real, ok := tg.be.topicID(tt.name)
				if !ok {
					tg.be.TriggerRefresh()
					name, vid := sh.topicOf(tv)
					sh.answer(local.Elem(), name, vid, sh.partitionOf(pv), kerr.UnknownTopicID.Code, nil)
					answered = true
					continue
				}
				id = real
			}
			sub, ok := by[tg]
			if !ok {
				sub = sh.sub(req).(Req)
				by[tg] = sub
			}
			sh.add(reflect.ValueOf(sub).Elem(), tv, pv, id)
		}
	}
	// Each part's own fields, once it holds its partitions.
	for tg, sub := range by {
		if f.rewrite != nil {
			f.rewrite(r, tg, sub)
		}
		if r.split.chained && f.seg.req != nil {
			f.seg.req(r, tg, sub)
		}
	}
	parts := make([]part, 0, len(by)+1)
	for _, t := range targetOrder(by) {
		pt := part{t: t, req: by[t]}
		if f.narrow != nil {
			pt.req, pt.whole = f.narrow(r, t, by[t]), by[t]
		}
		parts = append(parts, pt)
	}
	if answered || (omitted && len(parts) == 0) {
		parts = append(parts, part{local: local.Interface().(kmsg.Response)})
	}
	if len(parts) == 0 {
		// Nothing routed and nothing refused: an empty request.
		parts = append(parts, part{t: f.emptyTarget(r, req), req: req})
	}
	if oneWay {
		return r.c.scatterOneWay(r, parts)
	}
	return r.c.scatter(r, r.start, parts, f.merger(r, parts, nil))
}

// serveAll sends req as it is to every cluster's controller and keeps from
// each answer the topics routed to that cluster.
func (f *family[Req, Resp]) serveAll(r *request, req Req) error {
	if len(r.set.sorted) == 0 {
		return errNoCluster
	}
	parts := make([]part, 0, len(r.set.sorted))
	for _, be := range r.set.sorted {
		parts = append(parts, part{t: controllerOf(be), req: req})
	}
	sh := f.shape()
	return r.c.scatter(r, r.start, parts, f.merger(r, parts, func(t target, resp reflect.Value) {
		sh.keepTopics(resp, func(name string) bool { return r.route(name) == t.be })
	}))
}

// merger is the merge of a split's answers: each backend answer fixed (and
// passed to keep first, when set), then topics, the request-level error
// and the family's own fields merged into the first, then done.
func (f *family[Req, Resp]) merger(r *request, parts []part, keep func(target, reflect.Value)) func([]kmsg.Response) kmsg.Response {
	sh := f.shape()
	return func(resps []kmsg.Response) kmsg.Response {
		for i, x := range resps {
			if parts[i].local != nil {
				continue
			}
			if keep != nil {
				keep(parts[i].t, reflect.ValueOf(x).Elem())
			}
			if r.split.chained && f.seg.resp != nil {
				f.seg.resp(r, parts[i].t, x.(Resp))
			}
			if f.fix != nil {
				f.fix(r, parts[i].t, x.(Resp))
			}
			if f.byID(r) {
				sh.presentIDs(r, parts[i].t.be, reflect.ValueOf(x).Elem())
			}
		}
		out := resps[0].(Resp)
		ov := reflect.ValueOf(out).Elem()
		for _, x := range resps[1:] {
			sh.merge(ov, reflect.ValueOf(x).Elem())
			if f.merge != nil {
				f.merge(out, x.(Resp))
			}
		}
		if f.done != nil {
			f.done(r, out)
		}
		return out
	}
}

// byID reports whether r names its topics by id.
func (f *family[Req, Resp]) byID(r *request) bool {
	return f.idsFrom > 0 && r.version >= f.idsFrom
}

// idsOf lists the cluster ids of tts. (A copy: the walker's callback
// would otherwise make every request's topic targets escape to the heap.)
func idsOf(tts []topicTarget) [][16]byte {
	ids := make([][16]byte, len(tts))
	for i, tt := range tts {
		ids[i] = tt.id
	}
	return ids
}

// realIDs swaps, in the client's bytes, each topic's virtual id for the
// cluster's (ids, in request order; ids the request names after its
// topics, Fetch's forgotten topics, are resolved here). It reports false
// when the bytes could not be walked: the request is then rebuilt.
func (f *family[Req, Resp]) realIDs(r *request, ids [][16]byte) bool {
	i := 0
	return f.reqIDs(r.body, r.version, func(off int) {
		id := (*[16]byte)(r.body[off : off+16])
		switch {
		case i < len(ids):
			if ids[i] != ([16]byte{}) {
				*id = ids[i]
			}
		default:
			if be, name := r.topicOfVID(*id); be != nil {
				if real, ok := be.topicID(name); ok {
					*id = real
				}
			}
		}
		i++
	})
}

// virtualIDs swaps, in an answer from t going to the client as it is, each
// topic's cluster id for the virtual one the client knows.
func (f *family[Req, Resp]) virtualIDs(r *request, t target, resp *buffer) (*buffer, error) {
	if !f.byID(r) || f.respIDs == nil {
		return resp, nil
	}
	_, body, err := responseBody(resp.b[4:], r.key, true)
	if err == nil && f.respIDs(body, r.version, func(off int) {
		id := (*[16]byte)(body[off : off+16])
		if name, ok := t.be.topicName(*id); ok {
			r.c.s.presentTopicID(name, id)
		}
	}) {
		return resp, nil
	}
	putBuffer(resp)
	return nil, fmt.Errorf("%w: backend %s v%d answer's topic ids do not parse", ErrMalformed, kmsg.NameForKey(r.key), r.version)
}

// post is the single-target path's rewrite of the answer from t: nil (the
// bytes go as they are) when the family rewrites nothing. A rewritten
// answer is encoded from its struct, whose ids the fix hook made virtual;
// one that goes as it is has its ids swapped in place.
func (f *family[Req, Resp]) post(r *request, t target) postFunc {
	if f.fix == nil && f.done == nil && !f.byID(r) {
		return nil
	}
	return func(resp *buffer) (*buffer, error) {
		if f.fix == nil && f.done == nil || f.quiet != nil && f.quiet(r, resp) {
			// Nothing to rewrite but the ids: swapped in the bytes.
			return f.virtualIDs(r, t, resp)
		}
		kr, err := decodeResponse(resp, r.key, r.version)
		if err != nil {
			putBuffer(resp)
			return nil, err
		}
		out := kr.(Resp)
		changed := f.fix != nil && f.fix(r, t, out)
		if f.done != nil && f.done(r, out) {
			changed = true
		}
		if f.byID(r) && f.respIDs == nil && f.shape().presentIDs(r, t.be, reflect.ValueOf(out).Elem()) {
			changed = true
		}
		if !changed {
			return f.virtualIDs(r, t, resp)
		}
		enc := encodeResponseSized(out, r.corr, len(resp.b))
		putBuffer(resp)
		return enc, nil
	}
}

// shape is where a partition-keyed key keeps its topics and partitions, as
// field indices into its kmsg request and response structs. A field a key
// does not have is -1. A key whose topics hold no partitions (CreateTopics)
// is split by topic: its unit is the topic, answered with the topic's
// error.
type shape struct {
	req, resp reflect.Type // the structs (not pointers)

	topics           int // Req.Topics
	topic, topicID   int // T.Topic, T.TopicID
	parts, partition int // T.Partitions (-1: none), P.Partition (-1: P is the int32 itself)

	rCode, rMsg        int          // Resp.ErrorCode, Resp.ErrorMessage: the request's error
	rTopics            int          // Resp.Topics
	rTopic, rTopicID   int          // RT.Topic, RT.TopicID
	rParts, rPartition int          // RT.Partitions, RP.Partition
	uCode, uMsg        int          // ErrorCode, ErrorMessage of the unit (RP, or RT by topic)
	rMinusOne          []int        // RP fields answered -1
	rtType, rpType     reflect.Type // RT, RP (nil by topic)
}

// mustShape reads a key's shape; a kmsg type without the layout is a
// programming error, caught by TestFamilyShapes.
func mustShape(reqPtr, respPtr reflect.Type, minusOne []string) *shape {
	sh, err := shapeOf(reqPtr, respPtr, minusOne)
	if err != nil {
		panic(err)
	}
	return sh
}

func shapeOf(reqPtr, respPtr reflect.Type, minusOne []string) (*shape, error) {
	sh := &shape{req: reqPtr.Elem(), resp: respPtr.Elem()}
	var err error
	field := func(t reflect.Type, name string, kind reflect.Kind, need bool) int {
		f, ok := t.FieldByName(name)
		if ok && len(f.Index) == 1 && f.Type.Kind() == kind {
			return f.Index[0]
		}
		if need && err == nil {
			err = fmt.Errorf("kafka: %s has no %s field of kind %s", t, name, kind)
		}
		return -1
	}
	sh.topics = field(sh.req, "Topics", reflect.Slice, true)
	sh.rTopics = field(sh.resp, "Topics", reflect.Slice, true)
	if err != nil {
		return nil, err
	}
	sh.rCode = field(sh.resp, "ErrorCode", reflect.Int16, false)
	sh.rMsg = field(sh.resp, "ErrorMessage", reflect.Pointer, false)
	tt := sh.req.Field(sh.topics).Type.Elem()
	sh.topic = field(tt, "Topic", reflect.String, true)
	sh.topicID = field(tt, "TopicID", reflect.Array, false)
	sh.parts = field(tt, "Partitions", reflect.Slice, false)
	sh.rtType = sh.resp.Field(sh.rTopics).Type.Elem()
	sh.rTopic = field(sh.rtType, "Topic", reflect.String, true)
	sh.rTopicID = field(sh.rtType, "TopicID", reflect.Array, false)
	if err != nil {
		return nil, err
	}
	unit := sh.rtType
	sh.partition, sh.rParts, sh.rPartition = -1, -1, -1
	if sh.parts >= 0 {
		if pt := tt.Field(sh.parts).Type.Elem(); pt.Kind() != reflect.Int32 {
			sh.partition = field(pt, "Partition", reflect.Int32, true)
		}
		sh.rParts = field(sh.rtType, "Partitions", reflect.Slice, true)
		if err != nil {
			return nil, err
		}
		sh.rpType = sh.rtType.Field(sh.rParts).Type.Elem()
		sh.rPartition = field(sh.rpType, "Partition", reflect.Int32, true)
		unit = sh.rpType
	}
	sh.uCode = field(unit, "ErrorCode", reflect.Int16, false)
	sh.uMsg = field(unit, "ErrorMessage", reflect.Pointer, false)
	for _, name := range minusOne {
		sh.rMinusOne = append(sh.rMinusOne, field(unit, name, reflect.Int64, true))
	}
	return sh, err
}

// units is how many units topic t holds: its partitions, or itself.
func (sh *shape) units(t reflect.Value) int {
	if sh.parts < 0 {
		return 1
	}
	return t.Field(sh.parts).Len()
}

// unit is t's unit j: a partition, or the zero Value by topic.
func (sh *shape) unit(t reflect.Value, j int) reflect.Value {
	if sh.parts < 0 {
		return reflect.Value{}
	}
	return t.Field(sh.parts).Index(j)
}

// topicOf reads a request topic's name and id.
func (sh *shape) topicOf(t reflect.Value) (string, [16]byte) {
	var id [16]byte
	if sh.topicID >= 0 {
		copy(id[:], t.Field(sh.topicID).Bytes())
	}
	return t.Field(sh.topic).String(), id
}

// partitionOf is a unit's partition (-1 by topic).
func (sh *shape) partitionOf(p reflect.Value) int32 {
	switch {
	case !p.IsValid():
		return -1
	case sh.partition < 0:
		return int32(p.Int())
	}
	return int32(p.Field(sh.partition).Int())
}

// sub returns a copy of req with no topics: the request-level fields of a
// part.
func (sh *shape) sub(req kmsg.Request) kmsg.Request {
	v := reflect.New(sh.req)
	v.Elem().Set(reflect.ValueOf(req).Elem())
	v.Elem().Field(sh.topics).SetZero()
	return v.Interface().(kmsg.Request)
}

// add appends unit p of request topic t to sub (a request struct): the
// topic itself by topic, else the partition under sub's last topic when
// that is t. A non-zero id replaces the topic's (the cluster's own for the
// client's virtual one).
func (sh *shape) add(sub, t, p reflect.Value, id [16]byte) {
	ts := sub.Field(sh.topics)
	if sh.parts < 0 {
		ts.Set(reflect.Append(ts, t))
		return
	}
	n := ts.Len()
	if n == 0 || !sh.sameTopic(ts.Index(n-1), t, id) {
		nt := reflect.New(t.Type()).Elem()
		nt.Set(t)
		// Room for every partition of t: most parts take a topic whole
		// (one broker leads it), and appending one by one through
		// reflect would grow the slice step by step.
		ps := t.Field(sh.parts)
		nt.Field(sh.parts).Set(reflect.MakeSlice(ps.Type(), 0, ps.Len()))
		if id != ([16]byte{}) && sh.topicID >= 0 {
			reflect.Copy(nt.Field(sh.topicID), reflect.ValueOf(id[:]))
		}
		ts.Set(reflect.Append(ts, nt))
		n++
	}
	ps := ts.Index(n - 1).Field(sh.parts)
	ps.Set(reflect.Append(ps, p))
}

// sameTopic reports whether sub's topic a is request topic b (whose id
// became id, when not zero).
func (sh *shape) sameTopic(a, b reflect.Value, id [16]byte) bool {
	if a.Field(sh.topic).String() != b.Field(sh.topic).String() {
		return false
	}
	if sh.topicID < 0 {
		return true
	}
	want := b.Field(sh.topicID).Bytes()
	if id != ([16]byte{}) {
		want = id[:]
	}
	return bytes.Equal(a.Field(sh.topicID).Bytes(), want)
}

// answer appends one unit's error to resp (a response struct): a topic by
// topic, else a partition under resp's last topic when that is the same.
func (sh *shape) answer(resp reflect.Value, name string, id [16]byte, partition int32, code int16, msg *string) {
	ts := resp.Field(sh.rTopics)
	n := ts.Len()
	if sh.parts < 0 || n == 0 || !sh.isRespTopic(ts.Index(n-1), name, id) {
		nt := reflect.New(sh.rtType)
		defaults(nt)
		nt.Elem().Field(sh.rTopic).SetString(name)
		if sh.rTopicID >= 0 {
			reflect.Copy(nt.Elem().Field(sh.rTopicID), reflect.ValueOf(id[:]))
		}
		if sh.parts < 0 {
			sh.setError(nt.Elem(), code, msg)
		}
		ts.Set(reflect.Append(ts, nt.Elem()))
		n++
	}
	if sh.parts < 0 {
		return
	}
	p := reflect.New(sh.rpType)
	defaults(p)
	p.Elem().Field(sh.rPartition).SetInt(int64(partition))
	sh.setError(p.Elem(), code, msg)
	ps := ts.Index(n - 1).Field(sh.rParts)
	ps.Set(reflect.Append(ps, p.Elem()))
}

// lastAnswered is a pointer to the partition answer sh.answer appended
// last to resp.
func (sh *shape) lastAnswered(resp reflect.Value) any {
	ts := resp.Field(sh.rTopics)
	ps := ts.Index(ts.Len() - 1).Field(sh.rParts)
	return ps.Index(ps.Len() - 1).Addr().Interface()
}

// setError sets a unit's error code, message and "none" fields.
func (sh *shape) setError(u reflect.Value, code int16, msg *string) {
	if sh.uCode >= 0 {
		u.Field(sh.uCode).SetInt(int64(code))
	}
	if sh.uMsg >= 0 && msg != nil {
		u.Field(sh.uMsg).Set(reflect.ValueOf(msg))
	}
	for _, i := range sh.rMinusOne {
		u.Field(i).SetInt(-1)
	}
}

func (sh *shape) isRespTopic(t reflect.Value, name string, id [16]byte) bool {
	if t.Field(sh.rTopic).String() != name {
		return false
	}
	if sh.rTopicID < 0 {
		return true
	}
	var have [16]byte
	copy(have[:], t.Field(sh.rTopicID).Bytes())
	return have == id
}

// answerAll answers every unit of sub with code.
func (sh *shape) answerAll(sub kmsg.Request, code int16) kmsg.Response {
	out := reflect.New(sh.resp)
	defaults(out)
	ts := reflect.ValueOf(sub).Elem().Field(sh.topics)
	for i := range ts.Len() {
		tv := ts.Index(i)
		name, id := sh.topicOf(tv)
		for j := range sh.units(tv) {
			sh.answer(out.Elem(), name, id, sh.partitionOf(sh.unit(tv, j)), code, nil)
		}
	}
	return out.Interface().(kmsg.Response)
}

// merge moves in's topics into out (response structs), partitions of a
// topic out already has joining it, and takes in's request-level error
// when out has none.
func (sh *shape) merge(out, in reflect.Value) {
	if sh.rCode >= 0 && out.Field(sh.rCode).Int() == 0 && in.Field(sh.rCode).Int() != 0 {
		out.Field(sh.rCode).Set(in.Field(sh.rCode))
		if sh.rMsg >= 0 {
			out.Field(sh.rMsg).Set(in.Field(sh.rMsg))
		}
	}
	ots := out.Field(sh.rTopics)
	its := in.Field(sh.rTopics)
	if sh.rParts < 0 {
		ots.Set(reflect.AppendSlice(ots, its))
		return
	}
	for i := range its.Len() {
		it := its.Index(i)
		name := it.Field(sh.rTopic).String()
		var id [16]byte
		if sh.rTopicID >= 0 {
			copy(id[:], it.Field(sh.rTopicID).Bytes())
		}
		joined := false
		for j := range ots.Len() {
			if ot := ots.Index(j); sh.isRespTopic(ot, name, id) {
				ps := ot.Field(sh.rParts)
				ps.Set(reflect.AppendSlice(ps, it.Field(sh.rParts)))
				joined = true
				break
			}
		}
		if !joined {
			ots.Set(reflect.Append(ots, it))
		}
	}
}

// presentIDs replaces, in resp (a response struct from be), each topic's
// cluster id by the virtual one the client knows (topicids.go); it reports
// whether any changed. The splitter runs it on every decoded answer of a
// key that names topics by id, after the family's fix hook (which may have
// presented them already: a virtual id is no cluster's, so it stays).
func (sh *shape) presentIDs(r *request, be *Backend, resp reflect.Value) bool {
	if sh.rTopicID < 0 || be == nil {
		return false
	}
	ts := resp.Field(sh.rTopics)
	changed := false
	for i := range ts.Len() {
		id := ts.Index(i).Field(sh.rTopicID).Addr().Interface().(*[16]byte)
		if name, ok := be.topicName(*id); ok {
			r.c.s.presentTopicID(name, id)
			changed = true
		}
	}
	return changed
}

// keepTopics drops from resp (a response struct) the topics keep refuses.
func (sh *shape) keepTopics(resp reflect.Value, keep func(name string) bool) {
	ts := resp.Field(sh.rTopics)
	kept := reflect.MakeSlice(ts.Type(), 0, ts.Len())
	for i := range ts.Len() {
		if t := ts.Index(i); keep(t.Field(sh.rTopic).String()) {
			kept = reflect.Append(kept, t)
		}
	}
	ts.Set(kept)
}

// defaults applies kmsg's defaults to the struct v points to.
func defaults(v reflect.Value) {
	if d, ok := v.Interface().(interface{ Default() }); ok {
		d.Default()
	}
}

// keepMaxThrottle sets out's throttle to the largest of resps' (and its
// own): a merged answer must make the client wait as long as the
// slowest part asked.
func keepMaxThrottle(out kmsg.Response, resps []kmsg.Response) {
	so, ok := out.(kmsg.SetThrottleResponse)
	if !ok {
		return
	}
	ms, _ := out.(kmsg.ThrottleResponse).Throttle()
	for _, x := range resps {
		if t, ok := x.(kmsg.ThrottleResponse); ok {
			if v, _ := t.Throttle(); v > ms {
				ms = v
			}
		}
	}
	so.SetThrottle(ms)
}
