package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// rawBatch is a valid v2 record batch of producer (id, epoch) at seq.
func rawBatch(id int64, epoch int16, seq int32, values ...string) []byte {
	b := kmsg.RecordBatch{Magic: 2, ProducerID: id, ProducerEpoch: epoch, FirstSequence: seq, NumRecords: int32(len(values)), LastOffsetDelta: int32(len(values) - 1)}
	for i, v := range values {
		r := kmsg.Record{OffsetDelta: int32(i), Value: []byte(v)}
		r.Length = int32(len(r.AppendTo(nil)[1:]))
		b.Records = r.AppendTo(b.Records)
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// rawPeer sends requests to one peer's Kafka port.
func rawPeer(t *testing.T, addr string) *kgo.Broker {
	t.Helper()
	// Produce by topic name (v13 names topics by id): kgo sends the
	// highest version both sides support, within these.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.MaxVersions(kversion.V3_0_0()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl.SeedBrokers()[0]
}

// produceRaw sends one batch to partition 0 of topic and answers the
// partition's code and base offset.
func produceRaw(t *testing.T, b *kgo.Broker, topic string, batch []byte) (int16, int64) {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := b.Request(ctx, req)
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	p := resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	return p.ErrorCode, p.BaseOffset
}

// produceSettled is produceRaw sent again while the answer is retriable
// (a peer whose write lease is not granted yet answers NOT_LEADER), as a
// client would; a batch sent again is the same batch, so the broker
// stores it once.
func produceSettled(t *testing.T, b *kgo.Broker, topic string, batch []byte) (int16, int64) {
	t.Helper()
	var code int16
	var off int64
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, off = produceRaw(t, b, topic, batch)
		if err := kerr.ErrorForCode(code); err == nil || !kerr.IsRetriable(err) || time.Now().After(deadline) {
			return code, off
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProducerIDSharedBetweenPeers: two peers with Raft in front of one
// kfake cluster. An idempotent producer writes a batch through peer 0; the
// same batch (the same sequence: a client's retry after its partition
// moved) sent through peer 1 is answered as a duplicate and not stored
// again, and the producer goes on through peer 1 and back through peer 0
// in sequence. Peer 1 found the real id peer 0 claimed in the replicated
// table; without it, it took its own and the broker stored the batch twice.
func TestProducerIDSharedBetweenPeers(t *testing.T) {
	c := newCluster(t, clusterOpts{peers: 2, brokers: 1})
	c.leader(30 * time.Second)
	c.waitApplied(c.putBackend(0), 20*time.Second)
	adm := kadmClient(t, c.backend.ListenAddrs()[0])
	if _, err := adm.CreateTopic(context.Background(), 1, 1, nil, "pids"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "both peers serve clients", func() error {
		for _, i := range []int{0, 1} {
			if err := c.peers[i].n.Ready(); err != nil {
				return err
			}
		}
		return nil
	})
	p0, p1 := rawPeer(t, c.peers[0].kafka), rawPeer(t, c.peers[1].kafka)

	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionTimeoutMillis = -1
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := p0.Request(ctx, init)
	if err != nil {
		t.Fatal(err)
	}
	ir := resp.(*kmsg.InitProducerIDResponse)
	if ir.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v", kerr.ErrorForCode(ir.ErrorCode))
	}
	id, epoch := ir.ProducerID, ir.ProducerEpoch

	if code, off := produceSettled(t, p0, "pids", rawBatch(id, epoch, 0, "v-0", "v-1")); code != 0 || off != 0 {
		t.Fatalf("the first batch through peer 0: %v at %d", kerr.ErrorForCode(code), off)
	}
	if code, off := produceSettled(t, p1, "pids", rawBatch(id, epoch, 0, "v-0", "v-1")); code != 0 && code != kerr.DuplicateSequenceNumber.Code {
		t.Fatalf("the same batch through peer 1: %v at %d, want a duplicate", kerr.ErrorForCode(code), off)
	}
	for i, step := range []struct {
		b    *kgo.Broker
		seq  int32
		want int64
	}{{p1, 2, 2}, {p0, 3, 3}, {p1, 4, 4}} {
		if code, off := produceSettled(t, step.b, "pids", rawBatch(id, epoch, step.seq, "v")); code != 0 || off != step.want {
			t.Fatalf("step %d at seq %d: %v at offset %d, want offset %d", i, step.seq, kerr.ErrorForCode(code), off, step.want)
		}
	}
	// A forwarded claim does not wait for its proposer to apply it.
	waitFor(t, 20*time.Second, "both peers' tables hold the claim", func() error {
		for _, i := range []int{0, 1} {
			if _, ok := c.peers[i].n.ProducerID("main", id, epoch); !ok {
				return fmt.Errorf("peer %d's table has no claim for the producer", i)
			}
		}
		return nil
	})
}
