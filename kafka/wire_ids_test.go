package kafka

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// idsFound runs walk over msg encoded at v and reports the ids at the
// offsets it gives.
func idsFound(t testing.TB, msg interface{ AppendTo([]byte) []byte }, walk func([]byte, int16, func(int)) bool, v int16) ([][16]byte, bool) {
	body := msg.AppendTo(nil)
	var ids [][16]byte
	ok := walk(body, v, func(off int) {
		var id [16]byte
		copy(id[:], body[off:off+16])
		ids = append(ids, id)
	})
	return ids, ok
}

func wantIDs(t *testing.T, what string, got [][16]byte, ok bool, want ...[16]byte) {
	t.Helper()
	if !ok || len(got) != len(want) {
		t.Fatalf("%s: ok %v, ids %x, want %x", what, ok, got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: id %d is %x, want %x", what, i, got[i], want[i])
		}
	}
}

// TestTopicIDWalkers: each walker finds every topic id of its message, at
// every version that carries ids, with tagged fields and records present.
func TestTopicIDWalkers(t *testing.T) {
	a, b := [16]byte{1, 2, 3}, [16]byte{9, 8, 7}
	batch := benchRecordBatch(300)
	for v := int16(13); v <= kmsg.NewPtrProduceRequest().MaxVersion(); v++ {
		req := kmsg.NewPtrProduceRequest()
		req.Version, req.Acks, req.TransactionID = v, -1, kmsg.StringPtr("txn")
		for _, id := range [][16]byte{a, b} {
			rt := kmsg.NewProduceRequestTopic()
			rt.TopicID = id
			rt.Partitions = []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch}, {Partition: 1, Records: batch}}
			req.Topics = append(req.Topics, rt)
		}
		ids, ok := idsFound(t, req, produceRequestIDs, v)
		wantIDs(t, "produce request", ids, ok, a, b)

		resp := kmsg.NewPtrProduceResponse()
		resp.Version = v
		for _, id := range [][16]byte{a, b} {
			rt := kmsg.NewProduceResponseTopic()
			rt.TopicID = id
			p := kmsg.NewProduceResponseTopicPartition()
			p.ErrorCode, p.ErrorMessage = 6, kmsg.StringPtr("not leader")
			p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = 3, 4
			p.ErrorRecords = []kmsg.ProduceResponseTopicPartitionErrorRecord{{RelativeOffset: 1}}
			rt.Partitions = []kmsg.ProduceResponseTopicPartition{p}
			resp.Topics = append(resp.Topics, rt)
		}
		resp.Brokers = []kmsg.ProduceResponseBroker{{NodeID: 3, Host: "h", Port: 1}}
		ids, ok = idsFound(t, resp, produceResponseIDs, v)
		wantIDs(t, "produce response", ids, ok, a, b)
	}
	for v := int16(13); v <= kmsg.NewPtrFetchRequest().MaxVersion(); v++ {
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.Rack = v, "rack-1"
		for _, id := range [][16]byte{a, b} {
			rt := kmsg.NewFetchRequestTopic()
			rt.TopicID = id
			rt.Partitions = []kmsg.FetchRequestTopicPartition{kmsg.NewFetchRequestTopicPartition()}
			req.Topics = append(req.Topics, rt)
		}
		req.ForgottenTopics = []kmsg.FetchRequestForgottenTopic{{TopicID: b, Partitions: []int32{4}}}
		ids, ok := idsFound(t, req, fetchRequestIDs, v)
		wantIDs(t, "fetch request", ids, ok, a, b, b)

		resp := kmsg.NewPtrFetchResponse()
		resp.Version = v
		for _, id := range [][16]byte{a, b} {
			rt := kmsg.NewFetchResponseTopic()
			rt.TopicID = id
			p := kmsg.NewFetchResponseTopicPartition()
			p.RecordBatches = batch
			p.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{{ProducerID: 5, FirstOffset: 6}}
			p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = 3, 4
			p.DivergingEpoch.Epoch, p.DivergingEpoch.EndOffset = 2, 10
			rt.Partitions = []kmsg.FetchResponseTopicPartition{p, kmsg.NewFetchResponseTopicPartition()}
			resp.Topics = append(resp.Topics, rt)
		}
		resp.Brokers = []kmsg.FetchResponseBroker{{NodeID: 3, Host: "h", Port: 1}}
		ids, ok = idsFound(t, resp, fetchResponseIDs, v)
		wantIDs(t, "fetch response", ids, ok, a, b)
	}
	for v := int16(10); v <= kmsg.NewPtrOffsetCommitRequest().MaxVersion(); v++ {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Version, req.Group, req.Generation, req.MemberID, req.InstanceID = v, "g", 3, "m", kmsg.StringPtr("i")
		resp := kmsg.NewPtrOffsetCommitResponse()
		resp.Version = v
		for _, id := range [][16]byte{a, b} {
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.TopicID = id
			p := kmsg.NewOffsetCommitRequestTopicPartition()
			p.Offset, p.LeaderEpoch, p.Metadata = 9, 2, kmsg.StringPtr("meta")
			rt.Partitions = []kmsg.OffsetCommitRequestTopicPartition{p, kmsg.NewOffsetCommitRequestTopicPartition()}
			req.Topics = append(req.Topics, rt)
			resp.Topics = append(resp.Topics, kmsg.OffsetCommitResponseTopic{TopicID: id, Partitions: []kmsg.OffsetCommitResponseTopicPartition{{Partition: 1, ErrorCode: 27}, {}}})
		}
		ids, ok := idsFound(t, req, offsetCommitRequestIDs, v)
		wantIDs(t, "offset commit request", ids, ok, a, b)
		ids, ok = idsFound(t, resp, commitResponseIDs, v)
		wantIDs(t, "offset commit response", ids, ok, a, b)
	}
	for v := int16(6); v <= kmsg.NewPtrTxnOffsetCommitRequest().MaxVersion(); v++ {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.Version, req.TransactionalID, req.Group, req.ProducerID, req.MemberID = v, "t", "g", 7, "m"
		resp := kmsg.NewPtrTxnOffsetCommitResponse()
		resp.Version, resp.ThrottleMillis = v, 5
		for _, id := range [][16]byte{a, b} {
			rt := kmsg.NewTxnOffsetCommitRequestTopic()
			rt.TopicID = id
			p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			p.Offset, p.Metadata = 9, kmsg.StringPtr("meta")
			rt.Partitions = []kmsg.TxnOffsetCommitRequestTopicPartition{p}
			req.Topics = append(req.Topics, rt)
			resp.Topics = append(resp.Topics, kmsg.TxnOffsetCommitResponseTopic{TopicID: id, Partitions: []kmsg.TxnOffsetCommitResponseTopicPartition{{Partition: 1}}})
		}
		ids, ok := idsFound(t, req, txnOffsetCommitRequestIDs, v)
		wantIDs(t, "transactional offset commit request", ids, ok, a, b)
		ids, ok = idsFound(t, resp, commitResponseIDs, v)
		wantIDs(t, "transactional offset commit response", ids, ok, a, b)
	}
}

// FuzzTopicIDWalkers: arbitrary bytes never make a walker report an offset
// outside the body or succeed on bytes kmsg cannot read.
func FuzzTopicIDWalkers(f *testing.F) {
	seed := func(msg interface {
		AppendTo([]byte) []byte
		SetVersion(int16)
	}, which uint8) {
		msg.SetVersion(13)
		f.Add(which, uint8(0), msg.AppendTo(nil))
	}
	pr := kmsg.NewPtrProduceRequest()
	pr.Topics = []kmsg.ProduceRequestTopic{{TopicID: [16]byte{1}, Partitions: []kmsg.ProduceRequestTopicPartition{{Records: benchRecordBatch(10)}}}}
	seed(pr, 0)
	fr := kmsg.NewPtrFetchRequest()
	fr.Topics = []kmsg.FetchRequestTopic{{TopicID: [16]byte{2}, Partitions: []kmsg.FetchRequestTopicPartition{kmsg.NewFetchRequestTopicPartition()}}}
	seed(fr, 1)
	seed(kmsg.NewPtrProduceResponse(), 2)
	seed(kmsg.NewPtrFetchResponse(), 3)
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Version, oc.Group, oc.InstanceID = 10, "g", kmsg.StringPtr("i")
	oc.Topics = []kmsg.OffsetCommitRequestTopic{{TopicID: [16]byte{3}, Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Offset: 5, Metadata: kmsg.StringPtr("m")}}}}
	f.Add(uint8(4), uint8(0), oc.AppendTo(nil))
	tc := kmsg.NewPtrTxnOffsetCommitRequest()
	tc.Version, tc.TransactionalID, tc.Group = 6, "t", "g"
	tc.Topics = []kmsg.TxnOffsetCommitRequestTopic{{TopicID: [16]byte{4}, Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Offset: 5}}}}
	f.Add(uint8(5), uint8(0), tc.AppendTo(nil))
	ocr := kmsg.NewPtrOffsetCommitResponse()
	ocr.Version = 10
	ocr.Topics = []kmsg.OffsetCommitResponseTopic{{TopicID: [16]byte{5}, Partitions: []kmsg.OffsetCommitResponseTopicPartition{{Partition: 1, ErrorCode: 27}}}}
	f.Add(uint8(6), uint8(0), ocr.AppendTo(nil))
	f.Fuzz(func(t *testing.T, which, version uint8, body []byte) {
		type walker struct {
			walk func([]byte, int16, func(int)) bool
			msg  func() kmsgReader
			from int16 // the first version naming topics by id
		}
		ws := []walker{
			{produceRequestIDs, func() kmsgReader { return kmsg.NewPtrProduceRequest() }, 13},
			{fetchRequestIDs, func() kmsgReader { return kmsg.NewPtrFetchRequest() }, 13},
			{produceResponseIDs, func() kmsgReader { return kmsg.NewPtrProduceResponse() }, 13},
			{fetchResponseIDs, func() kmsgReader { return kmsg.NewPtrFetchResponse() }, 13},
			{offsetCommitRequestIDs, func() kmsgReader { return kmsg.NewPtrOffsetCommitRequest() }, 10},
			{txnOffsetCommitRequestIDs, func() kmsgReader { return kmsg.NewPtrTxnOffsetCommitRequest() }, 6},
			{commitResponseIDs, func() kmsgReader { return kmsg.NewPtrOffsetCommitResponse() }, 10},
			{commitResponseIDs, func() kmsgReader { return kmsg.NewPtrTxnOffsetCommitResponse() }, 6},
		}
		w := ws[int(which)%len(ws)]
		v := w.from + int16(version)%(w.msg().MaxVersion()-w.from+1)
		orig := bytes.Clone(body)
		ok := w.walk(body, v, func(off int) {
			if off < 0 || off+16 > len(body) {
				t.Fatalf("offset %d outside a %d-byte body", off, len(body))
			}
		})
		if !bytes.Equal(body, orig) {
			t.Fatal("a walker changed the bytes")
		}
		if ok {
			m := w.msg()
			m.SetVersion(v)
			if err := m.ReadFrom(body); err != nil {
				t.Fatalf("walker accepted bytes kmsg cannot read at v%d: %v", v, err)
			}
		}
	})
}

// kmsgReader is a kmsg request or response, as the walker fuzz reads one.
type kmsgReader interface {
	ReadFrom([]byte) error
	SetVersion(int16)
	MaxVersion() int16
}
