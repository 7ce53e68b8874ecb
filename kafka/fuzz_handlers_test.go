package kafka

// Fuzz targets for the request side and the merge side of every split
// handler that fuzz_test.go does not cover (it has Produce and Fetch):
//
//   - FuzzXxxRequest feeds arbitrary bytes as a client body of key Xxx at
//     any version the proxy serves. When they decode, the handler must
//     route them (whole, or split per leader, coordinator or cluster)
//     without panicking or failing, send only requests that decode
//     upstream, and answer the client with a response that decodes.
//   - FuzzSplitResponse sends a real request that splits across brokers
//     (these keys, Produce and Fetch too)
//     and answers every part with the same arbitrary bytes: the merge must
//     not panic, and the client gets a response that decodes (a part that
//     does not parse is answered with retriable errors, partfail.go).
//
// Seeds are real kmsg encodings at every version. Nothing touches the
// network: upstreams are in memory (harness_test.go) and coordinator
// lookups fail at once (FindCoordinator is unsupported by the fixture's
// control path), which routes to any broker, as a failed lookup does.
//
//	go test -run '^$' -fuzz '^FuzzOffsetCommitRequest$' -fuzztime 30s ./kafka/

import (
	"bytes"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fuzzFixture is a fixture whose control path cannot look coordinators
// up, so handlers never dial.
func fuzzFixture(t testing.TB, reg *prometheus.Registry, m *Metrics, opts ...fxOpt) *fx {
	fix := newFxMetrics(t, reg, m, opts...)
	vs := fxVersions()
	vs.keys[10] = versionRange{0, -1}
	fix.backend.versions.Store(vs)
	return fix
}

// servedRange is the versions of key the proxy may be asked at.
func servedRange(key int16) (int16, int16) {
	hi := kmsg.RequestForKey(key).MaxVersion()
	if c, ok := versionCaps[key]; ok {
		hi = min(hi, c)
	}
	return 0, hi
}

// emptyAnswer answers any request with the empty response of its key.
func emptyAnswer(t testing.TB) answerFunc {
	return func(_ int32, frame []byte) []byte {
		hdr, _ := decodeFrame(t, frame)
		resp := kmsg.ResponseForKey(hdr.key)
		return respFrame(resp, hdr.version, hdr.corr)
	}
}

// fuzzRequest is the body of every FuzzXxxRequest target.
func fuzzRequest(f *testing.F, key int16, seeds ...kmsg.Request) {
	lo, hi := servedRange(key)
	for _, req := range seeds {
		for v := lo; v <= hi; v++ {
			req.SetVersion(v)
			f.Add(uint8(v), req.AppendTo(nil))
		}
	}
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, 10)
	f.Fuzz(func(t *testing.T, version uint8, body []byte) {
		defer catchPanic(t)
		v := lo + fuzzVersion(version, hi-lo)
		r := fuzzReq(key, v, 51)
		r.body = body
		if _, err := decodeRequest(r); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode error is not ErrMalformed: %v", err)
			}
			return
		}
		fix := fuzzFixture(t, reg, metrics)
		ex := fix.conn(t).run(fix.srv.handlers[key], clientFrame(key, v, 51, body), emptyAnswer(t))
		if ex.err != nil {
			t.Fatalf("%s v%d: handler error for a decodable request: %v", kmsg.NameForKey(key), v, ex.err)
		}
		if ex.slots != 1 || !ex.done || ex.outErr != nil {
			t.Fatalf("%s v%d: %d slots, finished %v, error %v", kmsg.NameForKey(key), v, ex.slots, ex.done, ex.outErr)
		}
		if corr, _ := decodeOut(t, ex.out, key, v); corr != 51 {
			t.Fatalf("correlation id %d", corr)
		}
	})
}

// Seed requests: topics whose partitions have different leaders (orders),
// one leader (events) and no route (nope); groups and ids of any home.

func seedListOffsets() kmsg.Request {
	req := kmsg.NewPtrListOffsetsRequest()
	for _, tp := range []struct {
		name  string
		parts []int32
	}{{"orders", []int32{0, 1, 2, 3}}, {"events", []int32{0}}, {"nope", []int32{1}}} {
		t := kmsg.NewListOffsetsRequestTopic()
		t.Topic = tp.name
		for _, p := range tp.parts {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp = p, -1
			t.Partitions = append(t.Partitions, rp)
		}
		req.Topics = append(req.Topics, t)
	}
	return req
}

func seedDeleteRecords() kmsg.Request {
	req := kmsg.NewPtrDeleteRecordsRequest()
	t := kmsg.NewDeleteRecordsRequestTopic()
	t.Topic = "orders"
	for p := int32(0); p < 4; p++ {
		t.Partitions = append(t.Partitions, kmsg.DeleteRecordsRequestTopicPartition{Partition: p, Offset: 10})
	}
	req.Topics = append(req.Topics, t, kmsg.DeleteRecordsRequestTopic{Topic: "nope", Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: 0}}})
	return req
}

func seedOffsetForLeaderEpoch() kmsg.Request {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.ReplicaID = -1
	t := kmsg.NewOffsetForLeaderEpochRequestTopic()
	t.Topic = "orders"
	for p := int32(0); p < 4; p++ {
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.LeaderEpoch = p, 7
		t.Partitions = append(t.Partitions, rp)
	}
	req.Topics = append(req.Topics, t)
	return req
}

func seedDescribeProducers() kmsg.Request {
	req := kmsg.NewPtrDescribeProducersRequest()
	req.Topics = []kmsg.DescribeProducersRequestTopic{{Topic: "orders", Partitions: []int32{0, 1, 2}}, {Topic: "nope", Partitions: []int32{0}}}
	return req
}

func seedFindCoordinator() kmsg.Request {
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKey = "g-1"
	req.CoordinatorKeys = []string{"g-1", "g-2", "txn-3"}
	return req
}

func seedOffsetCommit() kmsg.Request {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation, req.MemberID = "g-1", 3, "m-1"
	for _, name := range []string{"orders", "events", "nope"} {
		t := kmsg.NewOffsetCommitRequestTopic()
		t.Topic, t.TopicID = name, virtualTopicID(name) // by id from v10
		for p := int32(0); p < 2; p++ {
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset = p, 99
			t.Partitions = append(t.Partitions, rp)
		}
		req.Topics = append(req.Topics, t)
	}
	return req
}

func seedOffsetFetch(all bool) kmsg.Request {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = "g-1"
	if !all {
		req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "orders", Partitions: []int32{0, 1}}, {Topic: "nope", Partitions: []int32{0}}}
	}
	g := kmsg.NewOffsetFetchRequestGroup()
	g.Group = "g-1"
	if !all {
		g.Topics = []kmsg.OffsetFetchRequestGroupTopic{ // by id from v10
			{Topic: "orders", TopicID: virtualTopicID("orders"), Partitions: []int32{0, 1}},
			{Topic: "events", TopicID: virtualTopicID("events"), Partitions: []int32{0}},
			{Topic: "nope", TopicID: virtualTopicID("nope"), Partitions: []int32{0}},
		}
	}
	g2 := kmsg.NewOffsetFetchRequestGroup()
	g2.Group = "g-2"
	req.Groups = []kmsg.OffsetFetchRequestGroup{g, g2}
	return req
}

func seedOffsetDelete() kmsg.Request {
	req := kmsg.NewPtrOffsetDeleteRequest()
	req.Group = "g-1"
	req.Topics = []kmsg.OffsetDeleteRequestTopic{
		{Topic: "orders", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}, {Partition: 3}}},
		{Topic: "nope", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}},
	}
	return req
}

func seedTxnOffsetCommit() kmsg.Request {
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID = "txn-1", "g-1", 4
	t := kmsg.NewTxnOffsetCommitRequestTopic()
	t.Topic, t.TopicID = "orders", virtualTopicID("orders") // by id from v6
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = 1, 5
	t.Partitions = append(t.Partitions, rp)
	req.Topics = append(req.Topics, t)
	return req
}

func seedAddPartitionsToTxn() kmsg.Request {
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.TransactionalID, req.ProducerID = "txn-1", 4
	req.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "orders", Partitions: []int32{0, 1}}, {Topic: "nope", Partitions: []int32{2}}}
	return req
}

func seedGroups(key int16) kmsg.Request {
	groups := []string{"g-1", "g-2", "other-3"}
	if key == 15 {
		req := kmsg.NewPtrDescribeGroupsRequest()
		req.Groups = groups
		return req
	}
	req := kmsg.NewPtrDeleteGroupsRequest()
	req.Groups = groups
	return req
}

func seedDescribeTransactions() kmsg.Request {
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{"txn-1", "txn-2"}
	return req
}

// seedDescribeTopicPartitions lists topics (one unrouted) from a cursor,
// or, with all, asks for every topic.
func seedDescribeTopicPartitions(all bool) kmsg.Request {
	req := kmsg.NewPtrDescribeTopicPartitionsRequest()
	req.ResponsePartitionLimit = 2
	if all {
		return req
	}
	for _, n := range []string{"orders", "events", "nope"} {
		req.Topics = append(req.Topics, kmsg.DescribeTopicPartitionsRequestTopic{Topic: n})
	}
	req.Cursor = &kmsg.DescribeTopicPartitionsRequestCursor{Topic: "events", Partition: 1}
	return req
}

func FuzzDescribeTopicPartitionsRequest(f *testing.F) {
	fuzzRequest(f, 75, seedDescribeTopicPartitions(false), seedDescribeTopicPartitions(true))
}

func FuzzListOffsetsRequest(f *testing.F)   { fuzzRequest(f, 2, seedListOffsets()) }
func FuzzDeleteRecordsRequest(f *testing.F) { fuzzRequest(f, 21, seedDeleteRecords()) }
func FuzzOffsetForLeaderEpochRequest(f *testing.F) {
	fuzzRequest(f, 23, seedOffsetForLeaderEpoch())
}
func FuzzDescribeProducersRequest(f *testing.F) { fuzzRequest(f, 61, seedDescribeProducers()) }
func FuzzFindCoordinatorRequest(f *testing.F)   { fuzzRequest(f, 10, seedFindCoordinator()) }
func FuzzOffsetCommitRequest(f *testing.F)      { fuzzRequest(f, 8, seedOffsetCommit()) }
func FuzzOffsetFetchRequest(f *testing.F) {
	fuzzRequest(f, 9, seedOffsetFetch(false), seedOffsetFetch(true))
}
func FuzzOffsetDeleteRequest(f *testing.F) { fuzzRequest(f, 47, seedOffsetDelete()) }
func FuzzTxnOffsetCommitRequest(f *testing.F) {
	virtual := seedTxnOffsetCommit().(*kmsg.TxnOffsetCommitRequest)
	virtual.ProducerID = txnVPID(virtual.TransactionalID) // txn_clusters.go
	fuzzRequest(f, 28, seedTxnOffsetCommit(), virtual)
}
func FuzzAddPartitionsToTxnRequest(f *testing.F) {
	virtual := seedAddPartitionsToTxn().(*kmsg.AddPartitionsToTxnRequest)
	virtual.ProducerID = txnVPID(virtual.TransactionalID)
	fuzzRequest(f, 24, seedAddPartitionsToTxn(), virtual)
}
func FuzzDescribeGroupsRequest(f *testing.F) { fuzzRequest(f, 15, seedGroups(15)) }
func FuzzDeleteGroupsRequest(f *testing.F)   { fuzzRequest(f, 42, seedGroups(42)) }
func FuzzDescribeTransactionsRequest(f *testing.F) {
	fuzzRequest(f, 65, seedDescribeTransactions())
}

// splitSeeds are requests that split across brokers in the fixture (with
// the coordinators of splitCoordinators cached).
var splitSeeds = []struct {
	key int16
	req func() kmsg.Request
}{
	{2, seedListOffsets},
	{21, seedDeleteRecords},
	{23, seedOffsetForLeaderEpoch},
	{61, seedDescribeProducers},
	{10, seedFindCoordinator},
	{8, seedOffsetCommit},
	{9, func() kmsg.Request { return seedOffsetFetch(false) }},
	{47, seedOffsetDelete},
	{28, seedTxnOffsetCommit},
	{24, seedAddPartitionsToTxn},
	{15, func() kmsg.Request { return seedGroups(15) }},
	{42, func() kmsg.Request { return seedGroups(42) }},
	{65, seedDescribeTransactions},
	{75, func() kmsg.Request { return seedDescribeTopicPartitions(false) }},
	{0, func() kmsg.Request {
		return produceReq(1, fxPart{"orders", fxOrdersID, 0, []byte("a")}, fxPart{"orders", fxOrdersID, 1, []byte("b")}, fxPart{"orders", fxOrdersID, 2, nil})
	}},
	{1, func() kmsg.Request {
		return fetchReq(fxPart{"orders", fxOrdersID, 0, nil}, fxPart{"orders", fxOrdersID, 1, nil}, fxPart{"events", fxEventsID, 0, nil})
	}},
}

var splitCoordinators = map[string]int32{"g-1": 100, "g-2": 101, "other-3": 102, "txn-1": 100, "txn-2": 103}

// FuzzSplitResponse answers every part of a split request with the same
// arbitrary bytes (the backend's response after its correlation id).
func FuzzSplitResponse(f *testing.F) {
	for i, s := range splitSeeds {
		lo, hi := servedRange(s.key)
		for v := lo; v <= hi; v++ {
			req := s.req()
			req.SetVersion(v)
			f.Add(uint8(i), uint8(v), respFrame(kmsg.ResponseForKey(s.key), v, 1)[8:])
			if full := failedAnswer(req); full != nil {
				f.Add(uint8(i), uint8(v), respFrame(full, v, 1)[8:])
			}
		}
	}
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, 10)
	f.Fuzz(func(t *testing.T, sel, version uint8, raw []byte) {
		defer catchPanic(t)
		s := splitSeeds[int(sel)%len(splitSeeds)]
		lo, hi := servedRange(s.key)
		v := lo + fuzzVersion(version, hi-lo)
		fix := fuzzFixture(t, reg, metrics)
		for k, b := range splitCoordinators {
			fix.srv.setCoordinator(fix.backend, coordinatorGroup, k, b)
			fix.srv.setCoordinator(fix.backend, coordinatorTxn, k, b)
		}
		req := s.req()
		ex := fix.conn(t).run(fix.srv.handlers[s.key], reqFrame(req, v, 52), func(_ int32, frame []byte) []byte {
			return backendFrame(be32(frame[8:]), raw)
		})
		if ex.err != nil {
			t.Fatalf("%s v%d: handler error: %v", kmsg.NameForKey(s.key), v, ex.err)
		}
		if ex.slots != 1 || !ex.done {
			t.Fatalf("%s v%d: %d slots, finished %v: the client would wait forever", kmsg.NameForKey(s.key), v, ex.slots, ex.done)
		}
		if ex.outErr != nil {
			// Only a request forwarded whole fails on a bad answer.
			if !errors.Is(ex.outErr, ErrMalformed) {
				t.Fatalf("%s v%d: response error is not ErrMalformed: %v", kmsg.NameForKey(s.key), v, ex.outErr)
			}
			return
		}
		if bytes.Equal(ex.out, backendFrame(52, raw)) {
			return // forwarded whole, as the broker sent it: not ours to parse
		}
		if corr, _ := decodeOut(t, ex.out, s.key, v); corr != 52 {
			t.Fatalf("correlation id %d", corr)
		}
	})
}

// The topic admin keys (controller families) and the config keys.

func FuzzCreateTopicsRequest(f *testing.F) {
	req := kmsg.NewPtrCreateTopicsRequest()
	for _, name := range []string{"orders", "events", "nope"} {
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic, t.NumPartitions, t.ReplicationFactor = name, 3, 1
		req.Topics = append(req.Topics, t)
	}
	fuzzRequest(f, 19, req)
}

func FuzzCreatePartitionsRequest(f *testing.F) {
	req := kmsg.NewPtrCreatePartitionsRequest()
	for _, name := range []string{"orders", "nope"} {
		t := kmsg.NewCreatePartitionsRequestTopic()
		t.Topic, t.Count = name, 6
		req.Topics = append(req.Topics, t)
	}
	fuzzRequest(f, 37, req)
}

func FuzzElectLeadersRequest(f *testing.F) {
	req := kmsg.NewPtrElectLeadersRequest()
	for _, name := range []string{"orders", "nope"} {
		req.Topics = append(req.Topics, kmsg.ElectLeadersRequestTopic{Topic: name, Partitions: []int32{0, 1}})
	}
	fuzzRequest(f, 43, req, kmsg.NewPtrElectLeadersRequest())
}

func FuzzAlterPartitionAssignmentsRequest(f *testing.F) {
	req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	for _, name := range []string{"orders", "nope"} {
		t := kmsg.NewAlterPartitionAssignmentsRequestTopic()
		t.Topic = name
		t.Partitions = []kmsg.AlterPartitionAssignmentsRequestTopicPartition{{Partition: 0, Replicas: []int32{100}}}
		req.Topics = append(req.Topics, t)
	}
	fuzzRequest(f, 45, req)
}

func FuzzListPartitionReassignmentsRequest(f *testing.F) {
	req := kmsg.NewPtrListPartitionReassignmentsRequest()
	for _, name := range []string{"orders", "nope"} {
		req.Topics = append(req.Topics, kmsg.ListPartitionReassignmentsRequestTopic{Topic: name, Partitions: []int32{0}})
	}
	fuzzRequest(f, 46, req, kmsg.NewPtrListPartitionReassignmentsRequest())
}

func FuzzDescribeConfigsRequest(f *testing.F) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	for _, res := range []struct {
		typ  kmsg.ConfigResourceType
		name string
	}{{kmsg.ConfigResourceTypeTopic, "orders"}, {kmsg.ConfigResourceTypeTopic, "nope"}, {kmsg.ConfigResourceTypeBroker, "0"}, {kmsg.ConfigResourceTypeBroker, "1"}, {kmsg.ConfigResourceTypeGroupConfig, "g-1"}} {
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = res.typ, res.name
		req.Resources = append(req.Resources, rr)
	}
	fuzzRequest(f, 32, req)
}
