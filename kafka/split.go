package kafka

// The partition-keyed splitter: one routing pass, split and merge for
// every key whose request lists topics holding partitions (Produce, Fetch,
// ListOffsets, DeleteRecords, OffsetForLeaderEpoch, DescribeProducers,
// OffsetCommit, OffsetDelete, TxnOffsetCommit, AddPartitionsToTxn).
//
// A key declares a family: whether its partitions go to their leader or to
// a coordinator, and hooks where it differs. The splitter does the rest:
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
// (Topics → Topic, TopicID → Partitions → Partition, ErrorCode), so it is
// read once per key by reflection into a shape (field indices) instead of
// being written out per key; TestFamilyShapes checks every family's.

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

// partitionFamilies are the partition-keyed keys.
var partitionFamilies = map[int16]partitioned{
	0:  produceFamily,
	1:  fetchFamily,
	2:  listOffsetsFamily,
	8:  offsetCommitFamily,
	21: deleteRecordsFamily,
	23: offsetForLeaderEpochFamily,
	24: addPartitionsToTxnFamily,
	28: txnOffsetCommitFamily,
	47: offsetDeleteFamily,
	61: describeProducersFamily,
}

// family is one partition-keyed key as the splitter sees it. Every hook is
// optional.
type family[Req kmsg.Request, Resp kmsg.Response] struct {
	// coordinator, when set, sends every partition to the coordinator of
	// the returned key on the partition's cluster (and an empty request to
	// the one on the home cluster) instead of to the partition's leader.
	coordinator func(Req) (typ int8, key string)
	// minusOne names answer partition fields that mean "none" as -1, set
	// in the answers the proxy gives itself.
	minusOne []string

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
	// oneWay reports that req expects no answer (acks=0 Produce).
	oneWay func(req Req) bool

	// quiet reports that an answer to the single-target path needs no
	// rewrite, judged from its bytes: it is not decoded.
	quiet func(r *request, resp *buffer) bool
	// fix rewrites t's answer in place and reports whether it changed.
	fix func(r *request, t target, resp Resp) bool
	// merge folds in's request-level fields (beyond topics and the
	// throttle, which the splitter merges) into out.
	merge func(out, in Resp)
	// done finishes the client's answer and reports whether it changed.
	done func(r *request, out Resp) bool

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

// retryCode is what a partition of a failed part is answered with.
func (f *family[Req, Resp]) retryCode() int16 {
	if f.coordinator != nil {
		return kerr.NotCoordinator.Code
	}
	return kerr.NotLeaderForPartition.Code
}

// failed answers every partition of sub, a part whose broker failed, with
// the family's retriable error.
func (f *family[Req, Resp]) failed(sub kmsg.Request) kmsg.Response {
	return f.shape().answerAll(sub, f.retryCode())
}

// target is where partition of tt goes.
func (f *family[Req, Resp]) target(r *request, req Req, tt topicTarget, partition int32) target {
	if f.coordinator != nil {
		typ, key := f.coordinator(req)
		return r.coordinator(tt.be, typ, key)
	}
	return tt.leader(partition)
}

// emptyTarget answers a request with no partitions: the coordinator on the
// home cluster, else any broker of the default cluster.
func (f *family[Req, Resp]) emptyTarget(r *request, req Req) target {
	if f.coordinator != nil && r.split.home != nil {
		typ, key := f.coordinator(req)
		return r.coordinator(r.split.home, typ, key)
	}
	return target{be: r.defaultBackend(), broker: -1}
}

// serve routes, forwards or splits r.
func (f *family[Req, Resp]) serve(r *request) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(Req)
	if f.prepare != nil {
		if err := f.prepare(r, req); err != nil {
			return err
		}
	}
	sh := f.shape()
	topics := reflect.ValueOf(req).Elem().Field(sh.topics)
	nt := topics.Len()
	var ttBuf [4]topicTarget
	tts := ttBuf[:0]
	var refused map[[2]int]int16 // (topic, partition) index → code, rare
	one, single, seen, bounced := target{}, true, false, false
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
		tts = append(tts, tt)
		ps := tv.Field(sh.parts)
		for j := range ps.Len() {
			if tt.be == nil {
				single = false
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
			tg := f.target(r, req, tt, sh.partitionOf(ps.Index(j)))
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
		if f.keeps == nil || f.keeps(r, one) {
			u, err := r.c.upstreamOrAny(one)
			if err != nil {
				return err
			}
			if oneWay {
				return u.send(r.buf.b, r.corr, nil)
			}
			return r.c.forwardTo(u, r, r.start, f.post(r, one))
		}
	}

	// Split: one sub-request per target, refused partitions answered here.
	by := map[target]Req{}
	var local reflect.Value // *Resp, made on first use
	for i := range nt {
		tv, tt := topics.Index(i), tts[i]
		ps := tv.Field(sh.parts)
		for j := range ps.Len() {
			pv := ps.Index(j)
			code := tt.code
			if c, ok := refused[[2]int{i, j}]; ok {
				code = c
			}
			if bounced {
				code = bounce
			}
			if tt.be == nil || code != 0 {
				if !local.IsValid() {
					local = reflect.New(sh.resp)
				}
				name, id := sh.topicOf(tv)
				sh.answer(local.Elem(), name, id, sh.partitionOf(pv), code)
				continue
			}
			tg := f.target(r, req, tt, sh.partitionOf(pv))
			sub, ok := by[tg]
			if !ok {
				sub = sh.sub(req).(Req)
				if f.rewrite != nil {
					f.rewrite(r, tg, sub)
				}
				by[tg] = sub
			}
			sh.add(reflect.ValueOf(sub).Elem(), tv, pv)
		}
	}
	parts := make([]part, 0, len(by)+1)
	for _, t := range targetOrder(by) {
		sub := by[t]
		parts = append(parts, part{t: t, req: sub})
	}
	if local.IsValid() {
		parts = append(parts, part{local: local.Interface().(kmsg.Response)})
	}
	if len(parts) == 0 {
		// Nothing routed and nothing refused: an empty request.
		parts = append(parts, part{t: f.emptyTarget(r, req), req: req})
	}
	if oneWay {
		return r.c.scatterOneWay(r, parts)
	}
	return r.c.scatter(r, r.start, parts, func(resps []kmsg.Response) kmsg.Response {
		for i, x := range resps {
			if parts[i].local == nil && f.fix != nil {
				f.fix(r, parts[i].t, x.(Resp))
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
	})
}

// post is the single-target path's rewrite of the answer from t: nil (the
// bytes go as they are) when the family rewrites nothing.
func (f *family[Req, Resp]) post(r *request, t target) postFunc {
	if f.fix == nil && f.done == nil {
		return nil
	}
	return func(resp *buffer) (*buffer, error) {
		if f.quiet != nil && f.quiet(r, resp) {
			return resp, nil
		}
		return rewrite(resp, r, func(kr kmsg.Response) bool {
			out := kr.(Resp)
			changed := f.fix != nil && f.fix(r, t, out)
			if f.done != nil && f.done(r, out) {
				changed = true
			}
			return changed
		})
	}
}

// shape is where a partition-keyed key keeps its topics and partitions, as
// field indices into its kmsg request and response structs. A field a key
// does not have is -1.
type shape struct {
	req, resp reflect.Type // the structs (not pointers)

	topics           int // Req.Topics
	topic, topicID   int // T.Topic, T.TopicID
	parts, partition int // T.Partitions, P.Partition (-1: P is the int32 itself)

	rTopics            int   // Resp.Topics
	rTopic, rTopicID   int   // RT.Topic, RT.TopicID
	rParts, rPartition int   // RT.Partitions, RP.Partition
	rCode              int   // RP.ErrorCode
	rMinusOne          []int // RP fields answered -1
	rtType, rpType     reflect.Type
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
	field := func(t reflect.Type, name string, kind reflect.Kind, need bool) (int, error) {
		f, ok := t.FieldByName(name)
		if !ok || len(f.Index) != 1 || f.Type.Kind() != kind {
			if need {
				return -1, fmt.Errorf("kafka: %s has no %s field of kind %s", t, name, kind)
			}
			return -1, nil
		}
		return f.Index[0], nil
	}
	var err error
	must := func(t reflect.Type, name string, kind reflect.Kind) int {
		i, e := field(t, name, kind, true)
		if e != nil && err == nil {
			err = e
		}
		return i
	}
	optional := func(t reflect.Type, name string, kind reflect.Kind) int {
		i, _ := field(t, name, kind, false)
		return i
	}
	sh.topics = must(sh.req, "Topics", reflect.Slice)
	if err != nil {
		return nil, err
	}
	tt := sh.req.Field(sh.topics).Type.Elem()
	sh.topic = must(tt, "Topic", reflect.String)
	sh.topicID = optional(tt, "TopicID", reflect.Array)
	sh.parts = must(tt, "Partitions", reflect.Slice)
	if err != nil {
		return nil, err
	}
	pt := tt.Field(sh.parts).Type.Elem()
	sh.partition = -1
	if pt.Kind() != reflect.Int32 {
		sh.partition = must(pt, "Partition", reflect.Int32)
	}
	sh.rTopics = must(sh.resp, "Topics", reflect.Slice)
	if err != nil {
		return nil, err
	}
	sh.rtType = sh.resp.Field(sh.rTopics).Type.Elem()
	sh.rTopic = must(sh.rtType, "Topic", reflect.String)
	sh.rTopicID = optional(sh.rtType, "TopicID", reflect.Array)
	sh.rParts = must(sh.rtType, "Partitions", reflect.Slice)
	if err != nil {
		return nil, err
	}
	sh.rpType = sh.rtType.Field(sh.rParts).Type.Elem()
	sh.rPartition = must(sh.rpType, "Partition", reflect.Int32)
	sh.rCode = must(sh.rpType, "ErrorCode", reflect.Int16)
	for _, name := range minusOne {
		sh.rMinusOne = append(sh.rMinusOne, must(sh.rpType, name, reflect.Int64))
	}
	return sh, err
}

// topicOf reads a request topic's name and id.
func (sh *shape) topicOf(t reflect.Value) (string, [16]byte) {
	var id [16]byte
	if sh.topicID >= 0 {
		copy(id[:], t.Field(sh.topicID).Bytes())
	}
	return t.Field(sh.topic).String(), id
}

func (sh *shape) partitionOf(p reflect.Value) int32 {
	if sh.partition < 0 {
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

// add appends partition p of request topic t to sub (a request struct),
// under sub's last topic when that is t.
func (sh *shape) add(sub, t, p reflect.Value) {
	ts := sub.Field(sh.topics)
	n := ts.Len()
	if n == 0 || !sh.sameTopic(ts.Index(n-1), t) {
		nt := reflect.New(t.Type()).Elem()
		nt.Set(t)
		nt.Field(sh.parts).SetZero()
		ts.Set(reflect.Append(ts, nt))
		n++
	}
	ps := ts.Index(n - 1).Field(sh.parts)
	ps.Set(reflect.Append(ps, p))
}

func (sh *shape) sameTopic(a, b reflect.Value) bool {
	if a.Field(sh.topic).String() != b.Field(sh.topic).String() {
		return false
	}
	return sh.topicID < 0 || bytes.Equal(a.Field(sh.topicID).Bytes(), b.Field(sh.topicID).Bytes())
}

// answer appends one partition's error to resp (a response struct), under
// its last topic when that is the same one.
func (sh *shape) answer(resp reflect.Value, name string, id [16]byte, partition int32, code int16) {
	ts := resp.Field(sh.rTopics)
	n := ts.Len()
	if n == 0 || !sh.isRespTopic(ts.Index(n-1), name, id) {
		nt := reflect.New(sh.rtType)
		defaults(nt)
		nt.Elem().Field(sh.rTopic).SetString(name)
		if sh.rTopicID >= 0 {
			reflect.Copy(nt.Elem().Field(sh.rTopicID), reflect.ValueOf(id[:]))
		}
		ts.Set(reflect.Append(ts, nt.Elem()))
		n++
	}
	p := reflect.New(sh.rpType)
	defaults(p)
	p.Elem().Field(sh.rPartition).SetInt(int64(partition))
	p.Elem().Field(sh.rCode).SetInt(int64(code))
	for _, i := range sh.rMinusOne {
		p.Elem().Field(i).SetInt(-1)
	}
	ps := ts.Index(n - 1).Field(sh.rParts)
	ps.Set(reflect.Append(ps, p.Elem()))
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

// answerAll answers every partition of sub with code.
func (sh *shape) answerAll(sub kmsg.Request, code int16) kmsg.Response {
	out := reflect.New(sh.resp)
	defaults(out)
	ts := reflect.ValueOf(sub).Elem().Field(sh.topics)
	for i := range ts.Len() {
		tv := ts.Index(i)
		name, id := sh.topicOf(tv)
		ps := tv.Field(sh.parts)
		for j := range ps.Len() {
			sh.answer(out.Elem(), name, id, sh.partitionOf(ps.Index(j)), code)
		}
	}
	return out.Interface().(kmsg.Response)
}

// merge moves in's topics into out (response structs): partitions of a
// topic out already has join it, other topics are appended.
func (sh *shape) merge(out, in reflect.Value) {
	ots := out.Field(sh.rTopics)
	its := in.Field(sh.rTopics)
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
