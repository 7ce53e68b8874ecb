package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestCoordinatorCacheBounded: ten batched FindCoordinator requests of
// 5,000 client-chosen keys each leave at most the configured bound cached
// (the unbounded cache held all 50,000).
func TestCoordinatorCacheBounded(t *testing.T) {
	f := newFx(t)
	h := f.conn(t)
	answer := func(_ int32, frame []byte) []byte {
		hdr, kreq := decodeFrame(t, frame)
		resp := kmsg.NewPtrFindCoordinatorResponse()
		for _, k := range kreq.(*kmsg.FindCoordinatorRequest).CoordinatorKeys {
			co := kmsg.NewFindCoordinatorResponseCoordinator()
			co.Key, co.NodeID, co.Host, co.Port = k, 101, "b101.kafka.internal", 19101
			resp.Coordinators = append(resp.Coordinators, co)
		}
		return respFrame(resp, hdr.version, hdr.corr)
	}
	for i := range 10 {
		req := kmsg.NewPtrFindCoordinatorRequest()
		for j := range 5000 {
			req.CoordinatorKeys = append(req.CoordinatorKeys, fmt.Sprintf("g-%d-%d", i, j))
		}
		ex := h.run(handleFindCoordinator, reqFrame(req, 4, int32(i)), answer)
		if ex.err != nil || !ex.done || ex.outErr != nil {
			t.Fatalf("request %d: exchange %+v", i, ex)
		}
	}
	if n, bound := f.srv.coords.len(), f.srv.cfg.CoordinatorCacheSize; n > bound || bound != 10_000 {
		t.Fatalf("coordinator cache holds %d entries, bound %d", n, bound)
	}
	// The most recent keys are the ones kept.
	if id, ok := f.srv.cachedCoordinator(f.backend, coordinatorGroup, "g-9-4999"); !ok || id != 101 {
		t.Fatalf("latest key: cached %d %v", id, ok)
	}
}

// TestProducerIDMappingKeepsRecentlyUsed: a client minting virtual ids
// cannot evict another producer's mapping that is in use, whether the
// table evicts (it takes the least recently used) or refuses.
func TestProducerIDMappingKeepsRecentlyUsed(t *testing.T) {
	for _, protect := range []time.Duration{0, time.Minute} {
		t.Run(fmt.Sprintf("protect %v", protect), func(t *testing.T) {
			var p producerIDs
			p.init(time.Now(), Config{Limits: Limits{ProducerIDMappings: 64, ProducerIDIdle: time.Hour, ProducerIDProtect: protect}})
			next := int64(1000)
			asked := map[int64]int{}
			ask := func(vpid int64) func(context.Context) (realPID, error) {
				return func(context.Context) (realPID, error) {
					asked[vpid]++
					next++
					return realPID{id: next}, nil
				}
			}
			ctx := context.Background()
			victim := p.issue(0)
			want, _, err := p.real(ctx, "c1", victim, 0, ask(victim))
			if err != nil {
				t.Fatal(err)
			}
			refused := 0
			for i := range 10_000 {
				vpid := p.issue(1)
				if _, _, err := p.real(ctx, "c1", vpid, 0, ask(vpid)); err != nil {
					if !errors.Is(err, ErrProducerIDLimit) {
						t.Fatalf("mint %d: %v", i, err)
					}
					refused++
				}
				if i%16 == 0 { // the victim keeps producing
					got, _, err := p.real(ctx, "c1", victim, 0, ask(victim))
					if err != nil || got != want {
						t.Fatalf("after %d minted ids the victim maps to %d (%v), want %d", i, got, err, want)
					}
				}
			}
			if asked[victim] != 1 {
				t.Fatalf("the victim's mapping was evicted and asked for %d times", asked[victim])
			}
			if n := p.m.len(); n > 64 {
				t.Fatalf("table holds %d mappings, bound 64", n)
			}
			if protect > 0 && refused == 0 {
				t.Fatal("a table full of mappings in use took new ones")
			}
		})
	}
}

// TestInitProducerIDPerConnCap: one connection may mint only so many
// virtual producer ids; past that InitProducerId answers
// THROTTLING_QUOTA_EXCEEDED, and another connection is unaffected.
func TestInitProducerIDPerConnCap(t *testing.T) {
	f := newFx(t, func(c *Config) { c.MaxProducerIDsPerConn = 3 })
	h := f.conn(t)
	init := func(h *fxConn, id int64, epoch int16) *kmsg.InitProducerIDResponse {
		t.Helper()
		req := kmsg.NewPtrInitProducerIDRequest()
		req.ProducerID, req.ProducerEpoch = id, epoch
		ex := h.run(toTxnCoordinator, reqFrame(req, 4, 1), nil)
		if ex.err != nil || !ex.done {
			t.Fatalf("exchange %+v", ex)
		}
		_, resp := decodeOut(t, ex.out, 22, 4)
		return resp.(*kmsg.InitProducerIDResponse)
	}
	var last *kmsg.InitProducerIDResponse
	for i := range 3 {
		if last = init(h, -1, -1); last.ErrorCode != 0 || !isVirtual(last.ProducerID) {
			t.Fatalf("init %d: %+v", i, last)
		}
	}
	if r := init(h, -1, -1); r.ErrorCode != kerr.ThrottlingQuotaExceeded.Code || r.ProducerID != -1 {
		t.Fatalf("init past the cap: %+v", r)
	}
	if r := init(h, last.ProducerID, last.ProducerEpoch); r.ErrorCode != kerr.ThrottlingQuotaExceeded.Code {
		t.Fatalf("epoch bump past the cap: %+v", r)
	}
	if r := init(f.conn(t), -1, -1); r.ErrorCode != 0 {
		t.Fatalf("another connection refused: %+v", r)
	}
}

// TestProduceRefusesCorruptVirtualBatch: a batch whose CRC does not match
// is answered CORRUPT_MESSAGE and not forwarded (the rewrite would have
// given it a valid CRC); the request's other partition goes through.
func TestProduceRefusesCorruptVirtualBatch(t *testing.T) {
	f := newFx(t)
	h := f.conn(t)
	vpid := f.srv.pids.issue(0)
	f.srv.pids.m.put(pidKey{vpid, 0, fxCluster}, realPID{id: 555, epoch: 3})
	good := idempotentBatch(vpid, 0, 0, "ok")
	bad := idempotentBatch(vpid, 0, 0, "flipped")
	bad[len(bad)-2] ^= 0x20 // one bit of the record value
	req := produceReq(-1,
		fxPart{"events", fxEventsID, 0, bad},
		fxPart{"events", fxEventsID, 1, good},
	)
	req.TransactionID = nil
	ex := h.run(handleProduce, reqFrame(req, 9, 5), produceAnswer(t))
	if ex.err != nil || !ex.done || ex.outErr != nil {
		t.Fatalf("exchange %+v", ex)
	}
	if len(ex.sent[100]) != 1 {
		t.Fatalf("sent %v", ex.sent)
	}
	_, kreq := decodeFrame(t, ex.sent[100][0])
	sub := kreq.(*kmsg.ProduceRequest)
	if len(sub.Topics) != 1 || len(sub.Topics[0].Partitions) != 1 || sub.Topics[0].Partitions[0].Partition != 1 {
		t.Fatalf("forwarded %+v, want events/1 alone", sub.Topics)
	}
	fwd := sub.Topics[0].Partitions[0].Records
	if id, epoch := batchProducer(fwd); id != 555 || epoch != 3 || !batchCRCValid(fwd) {
		t.Fatalf("forwarded batch producer %d/%d, crc valid %v", id, epoch, batchCRCValid(fwd))
	}
	_, resp := decodeOut(t, ex.out, 0, 9)
	codes := map[int32]int16{}
	for _, rt := range resp.(*kmsg.ProduceResponse).Topics {
		for _, rp := range rt.Partitions {
			codes[rp.Partition] = rp.ErrorCode
		}
	}
	if codes[0] != kerr.CorruptMessage.Code || codes[1] != 0 || len(codes) != 2 {
		t.Fatalf("partition codes %v", codes)
	}
	if n := counterValue(f.srv.metrics.corruptBatches); n != 1 {
		t.Fatalf("corrupt batches counted %v, want 1", n)
	}
}

func TestBatchCRCValid(t *testing.T) {
	raw := idempotentBatch(1<<40|1, 0, 0, "a", "b")
	if !batchCRCValid(raw) {
		t.Fatal("a valid batch failed the check")
	}
	for _, off := range []int{batchAttrOff, batchPIDOff, len(raw) - 1} {
		c := append([]byte(nil), raw...)
		c[off] ^= 1
		if batchCRCValid(c) {
			t.Fatalf("flipped byte %d passed", off)
		}
	}
	// The base offset and length are outside the CRC (the broker assigns
	// offsets).
	c := append([]byte(nil), raw...)
	binary.BigEndian.PutUint64(c, 77)
	if !batchCRCValid(c) || crc32.Checksum(c[batchAttrOff:], castagnoli) != binary.BigEndian.Uint32(c[batchCRCOff:]) {
		t.Fatal("base offset is covered")
	}
}
