package kafka

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var errFxBroken = errors.New("fx: broker connection broke")

// runBroken is fxConn.run with some brokers' connections breaking: their
// calls fail with errFxBroken instead of being answered.
func (h *fxConn) runBroken(hf handler, frame []byte, answer answerFunc, broken map[int32]bool) exchange {
	h.t.Helper()
	buf := &buffer{b: slices.Clone(frame)}
	hdr, err := parseRequestHeader(buf.b[4:])
	if err != nil {
		h.t.Fatalf("request header: %v", err)
	}
	r := h.c.newRequest(hdr, buf, time.Now())
	ex := exchange{sent: map[int32][][]byte{}}
	ex.err = hf(r)
	if err := h.c.flushUpstreams(); err != nil {
		h.t.Fatalf("flush upstreams: %v", err)
	}
	be := h.c.s.backendSet().sorted[0]
	for _, id := range brokerOrder(h.wires) {
		frames := splitFrames(h.t, h.wires[id].Bytes())
		h.wires[id].Reset()
		if len(frames) > 0 {
			ex.sent[id] = frames
		}
		for i := range frames {
			call := <-h.c.ups[target{be, id}].inflight
			if broken[id] {
				call.cb(nil, errFxBroken)
				continue
			}
			call.cb(&buffer{b: answer(id, frames[i])}, nil)
		}
	}
	for p := h.c.dequeue(); p != nil; p = h.c.dequeue() {
		ex.slots++
		select {
		case <-p.done:
			ex.done = true
			ex.outErr = p.err
			if p.out != nil {
				ex.out = slices.Clone(p.out.b)
			}
		default:
		}
	}
	return ex
}

// TestSplitProduceBrokenBroker: a produce split over three leaders whose
// middle broker's connection breaks is answered: the healthy brokers'
// partitions, each sent once, succeed; the broken one's come back
// NOT_LEADER_OR_FOLLOWER, which clients retry for those partitions alone.
// The whole request used to fail, and the client to retry every partition.
func TestSplitProduceBrokenBroker(t *testing.T) {
	for _, v := range []int16{3, 9, 12} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newFx(t)
			h := f.conn(t)
			req := produceReq(1,
				fxPart{"orders", fxOrdersID, 0, []byte("a")},
				fxPart{"orders", fxOrdersID, 1, []byte("bb")},
				fxPart{"orders", fxOrdersID, 2, []byte("ccc")},
				fxPart{"events", fxEventsID, 1, []byte("dddd")},
			)
			req.TransactionID = nil
			f.refreshRequested()
			ex := h.runBroken(handleProduce, reqFrame(req, v, 10), produceAnswer(t), map[int32]bool{101: true})
			if ex.err != nil || !ex.done || ex.outErr != nil || ex.slots != 1 {
				t.Fatalf("exchange = %+v", ex)
			}
			for b, n := range map[int32]int{100: 1, 101: 1, 102: 1} {
				if len(ex.sent[b]) != n {
					t.Fatalf("broker %d got %d requests, want %d", b, len(ex.sent[b]), n)
				}
			}
			_, resp := decodeOut(t, ex.out, 0, v)
			got := map[string]int16{}
			for _, rt := range resp.(*kmsg.ProduceResponse).Topics {
				for _, rp := range rt.Partitions {
					got[fmt.Sprintf("%s/%d", rt.Topic, rp.Partition)] = rp.ErrorCode
				}
			}
			want := map[string]int16{"orders/0": 0, "orders/1": kerr.NotLeaderForPartition.Code, "orders/2": 0, "events/1": 0}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("partition codes %v, want %v", got, want)
			}
			if !f.refreshRequested() {
				t.Fatal("a broken broker connection did not refresh the metadata")
			}
		})
	}
}

// TestSplitFetchAndListOffsetsBrokenBroker: the same for a fetch and a
// ListOffsets split over leaders.
func TestSplitFetchAndListOffsetsBrokenBroker(t *testing.T) {
	f := newFx(t)
	h := f.conn(t)
	lo := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "orders"
	for p := int32(0); p < 3; p++ {
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Partition = p
		lt.Partitions = append(lt.Partitions, lp)
	}
	lo.Topics = append(lo.Topics, lt)
	answer := func(_ int32, frame []byte) []byte {
		hdr, kreq := decodeFrame(t, frame)
		resp := kmsg.NewPtrListOffsetsResponse()
		for _, t := range kreq.(*kmsg.ListOffsetsRequest).Topics {
			rt := kmsg.ListOffsetsResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rp := kmsg.NewListOffsetsResponseTopicPartition()
				rp.Partition, rp.Offset = p.Partition, 42
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return respFrame(resp, hdr.version, hdr.corr)
	}
	ex := h.runBroken(handleListOffsets, reqFrame(lo, 4, 3), answer, map[int32]bool{102: true})
	if ex.err != nil || !ex.done || ex.outErr != nil {
		t.Fatalf("exchange = %+v", ex)
	}
	_, resp := decodeOut(t, ex.out, 2, 4)
	codes := map[int32]int16{}
	for _, rt := range resp.(*kmsg.ListOffsetsResponse).Topics {
		for _, rp := range rt.Partitions {
			codes[rp.Partition] = rp.ErrorCode
		}
	}
	if codes[0] != 0 || codes[1] != 0 || codes[2] != kerr.NotLeaderForPartition.Code || len(codes) != 3 {
		t.Fatalf("list offsets codes %v", codes)
	}

	fr := kmsg.NewPtrFetchRequest()
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "orders"
	for p := int32(0); p < 2; p++ {
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition = p
		ft.Partitions = append(ft.Partitions, fp)
	}
	fr.Topics = append(fr.Topics, ft)
	fetchAnswer := func(_ int32, frame []byte) []byte {
		hdr, kreq := decodeFrame(t, frame)
		resp := fetchFamily.shape().answerAll(kreq, 0)
		return respFrame(resp, hdr.version, hdr.corr)
	}
	ex = h.runBroken(handleFetch, reqFrame(fr, 11, 4), fetchAnswer, map[int32]bool{100: true})
	if ex.err != nil || !ex.done || ex.outErr != nil {
		t.Fatalf("fetch exchange = %+v", ex)
	}
	_, resp = decodeOut(t, ex.out, 1, 11)
	codes = map[int32]int16{}
	for _, rt := range resp.(*kmsg.FetchResponse).Topics {
		for _, rp := range rt.Partitions {
			codes[rp.Partition] = rp.ErrorCode
		}
	}
	if codes[0] != kerr.NotLeaderForPartition.Code || codes[1] != 0 || len(codes) != 2 {
		t.Fatalf("fetch codes %v", codes)
	}
}

// TestUpstreamBreakKeepsClient: a backend connection that breaks fails
// every call awaiting it, those sent after the break included, and leaves
// the client's connection open; the broken upstream is retired on next use.
func TestUpstreamBreakKeepsClient(t *testing.T) {
	f := newFx(t)
	cli, srvSide := net.Pipe()
	defer cli.Close()
	go io.Copy(io.Discard, cli)
	c := newClientConn(f.srv, srvSide)
	upCli, upSrv := net.Pipe()
	u := &upstream{c: c, be: f.backend, broker: 100, nc: upCli, rw: upCli, bw: bufio.NewWriter(upCli),
		inflight: make(chan upCall, 8), retired: make(chan struct{})}
	c.ups[target{f.backend, 100}] = u
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		u.readLoop()
	}()
	errs := make(chan error, 3)
	cb := func(b *buffer, err error) {
		if b != nil {
			putBuffer(b)
		}
		errs <- err
	}
	// The broker reads two requests and hangs up without answering.
	go func() {
		br := bufio.NewReader(upSrv)
		for range 2 {
			if b, err := readFrame(br, 1<<20); err == nil {
				putBuffer(b)
			}
		}
		upSrv.Close()
	}()
	frame := reqFrame(kmsg.NewPtrMetadataRequest(), 4, 1)
	for range 2 {
		if err := u.send(frame, 1, cb); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.flushUpstreams(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		select {
		case err := <-errs:
			if err == nil {
				t.Fatalf("call %d answered", i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("call %d never failed", i)
		}
	}
	waitUntil(t, 10*time.Second, "the condition", u.broken.Load)
	// A call that raced with the break fails too.
	if err := u.send(frame, 1, cb); err != nil {
		t.Fatal(err)
	}
	if err := c.flushUpstreams(); err != nil {
		t.Fatalf("flushing a broken upstream: %v", err)
	}
	select {
	case err := <-errs:
		if err == nil {
			t.Fatal("late call answered")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("late call never failed")
	}
	select {
	case <-c.closing:
		t.Fatalf("client connection closed: %v", c.reason)
	default:
	}
	c.retire(u)
	if _, ok := c.ups[target{f.backend, 100}]; ok {
		t.Fatal("retired upstream still in use")
	}
	c.wg.Wait() // its reader ends once retired
}
