package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// quietProduceFixture is a two-topic success answer at version v.
func quietProduceFixture(v int16) *kmsg.ProduceResponse {
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = v
	resp.ThrottleMillis = 7
	for ti, name := range []string{"orders", "payments"} {
		t := kmsg.NewProduceResponseTopic()
		t.Topic = name
		t.TopicID[0] = byte(ti + 1)
		for p := range int32(3) {
			pp := kmsg.NewProduceResponseTopicPartition()
			pp.Partition = p
			pp.BaseOffset = 1000 + int64(p)
			pp.LogAppendTime = -1
			t.Partitions = append(t.Partitions, pp)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp
}

// produceMaxVersion is the newest Produce version kmsg knows.
var produceMaxVersion = kmsg.NewPtrProduceRequest().MaxVersion()

func TestQuietProduceResponse(t *testing.T) {
	for v := int16(0); v <= produceMaxVersion; v++ {
		quiet := respFrame(quietProduceFixture(v), v, 42)[4:]
		if !quietProduceResponse(quiet, v) {
			t.Errorf("v%d: a plain success answer is not quiet", v)
		}
		// Every truncation is malformed and must take the decoding path.
		for n := range len(quiet) {
			if quietProduceResponse(quiet[:n], v) {
				t.Errorf("v%d: truncated to %d of %d bytes, still quiet", v, n, len(quiet))
			}
		}

		loud := map[string]func(*kmsg.ProduceResponse){
			"partition error": func(r *kmsg.ProduceResponse) { r.Topics[1].Partitions[2].ErrorCode = 6 },
			"non-leadership error": func(r *kmsg.ProduceResponse) {
				r.Topics[0].Partitions[0].ErrorCode = 87 // INVALID_RECORD: no refresh, but not quiet either
			},
		}
		if v >= 8 {
			loud["record errors"] = func(r *kmsg.ProduceResponse) {
				r.Topics[0].Partitions[1].ErrorCode = 87
				r.Topics[0].Partitions[1].ErrorRecords = []kmsg.ProduceResponseTopicPartitionErrorRecord{{RelativeOffset: 3}}
			}
		}
		if v >= 9 {
			loud["unknown partition tag"] = func(r *kmsg.ProduceResponse) {
				r.Topics[0].Partitions[0].UnknownTags.Set(9, []byte{1})
			}
			loud["unknown topic tag"] = func(r *kmsg.ProduceResponse) { r.Topics[1].UnknownTags.Set(9, []byte{1}) }
			loud["unknown top-level tag"] = func(r *kmsg.ProduceResponse) { r.UnknownTags.Set(9, []byte{1}) }
		}
		if v >= 10 {
			loud["current leader"] = func(r *kmsg.ProduceResponse) {
				r.Topics[0].Partitions[2].CurrentLeader = kmsg.ProduceResponseTopicPartitionCurrentLeader{LeaderID: 3, LeaderEpoch: 5}
			}
			loud["node endpoints"] = func(r *kmsg.ProduceResponse) {
				r.Brokers = []kmsg.ProduceResponseBroker{{NodeID: 3, Host: "b3", Port: 9092}}
			}
		}
		for name, mutate := range loud {
			resp := quietProduceFixture(v)
			mutate(resp)
			if quietProduceResponse(respFrame(resp, v, 42)[4:], v) {
				t.Errorf("v%d %s: quiet, want the decoding path", v, name)
			}
		}
	}
}

// FuzzQuietProduceResponse: what the scan accepts, kmsg
// decodes into a response that fixProduce would leave alone.
func FuzzQuietProduceResponse(f *testing.F) {
	for v := int16(0); v <= produceMaxVersion; v++ {
		f.Add(v, respFrame(quietProduceFixture(v), v, 1)[4:])
	}
	f.Fuzz(func(t *testing.T, v int16, frame []byte) {
		if v < 0 || v > produceMaxVersion || !quietProduceResponse(frame, v) {
			return
		}
		buf := &buffer{b: append([]byte{0, 0, 0, 0}, frame...)}
		kr, err := decodeResponse(buf, 0, v)
		if err != nil {
			t.Fatalf("v%d: quiet but kmsg rejects it: %v", v, err)
		}
		resp := kr.(*kmsg.ProduceResponse)
		if len(resp.Brokers) > 0 || resp.UnknownTags.Len() > 0 {
			t.Fatalf("v%d: quiet but has endpoints or tags", v)
		}
		for _, tp := range resp.Topics {
			if tp.UnknownTags.Len() > 0 {
				t.Fatalf("v%d: quiet but topic %q has tags", v, tp.Topic)
			}
			for _, p := range tp.Partitions {
				if p.ErrorCode != 0 || p.CurrentLeader.LeaderID != -1 || p.UnknownTags.Len() > 0 {
					t.Fatalf("v%d: quiet but partition %d has error %d, leader %d or tags", v, p.Partition, p.ErrorCode, p.CurrentLeader.LeaderID)
				}
			}
		}
	})
}
