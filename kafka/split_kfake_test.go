package kafka

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestSplitProduceBrokerConnBreaks: a real proxy in front of a two-broker
// kfake cluster; a produce split over both leaders, whose request to one
// broker kills that broker connection. The healthy partition is written
// exactly once and reported successful; the other comes back
// NOT_LEADER_OR_FOLLOWER. The client's connection stays open for what
// is not a Produce (a ListOffsets is answered on it), but a broker
// connection broke with a Produce in flight, so the client's next Produce
// on it closes it unsent (ErrProduceInterrupted: a later batch must not
// overtake one whose fate is unknown); the retry on a new connection
// succeeds and each partition holds its record once.
func TestSplitProduceBrokerConnBreaks(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(8, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close) // after the proxy's cleanup, which runs first
	be, addr := startProxy(t, kc, BackendConfig{Name: "k"})
	waitReady(t, be)
	// Two partitions led by different brokers: pg on the healthy one, pb
	// on the one whose connection breaks.
	pg, pb := int32(0), int32(-1)
	good, bad := be.leader("t", 0), int32(-1)
	for p := int32(1); p < 8; p++ {
		if l := be.leader("t", p); l >= 0 && l != good {
			pb, bad = p, l
			break
		}
	}
	if good < 0 || bad < 0 {
		t.Fatalf("no two partitions of t with different leaders")
	}
	kc.ControlKey(0, func(kmsg.Request) (kmsg.Response, error, bool) {
		if kc.CurrentNode() != bad {
			return nil, nil, false
		}
		return nil, errors.New("broker connection breaks"), true // once: handled drops it
	})

	var nc net.Conn
	var br *bufio.Reader
	dial := func() {
		t.Helper()
		if nc != nil {
			nc.Close()
		}
		var err error
		if nc, err = net.Dial("tcp", addr); err != nil {
			t.Fatal(err)
		}
		br = bufio.NewReader(nc)
	}
	dial()
	defer func() { nc.Close() }()
	corr := int32(0)
	roundTrip := func(req kmsg.Request, v int16) kmsg.Response {
		t.Helper()
		corr++
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := nc.Write(reqFrame(req, v, corr)); err != nil {
			t.Fatalf("write: %v", err)
		}
		buf, err := readFrame(br, 1<<20)
		if err != nil {
			t.Fatalf("read response %d: %v (the proxy closed the client's connection?)", corr, err)
		}
		got, resp := decodeOut(t, buf.b, req.Key(), v)
		if got != corr {
			t.Fatalf("correlation id %d, want %d", got, corr)
		}
		return resp
	}
	produce := func(partitions ...int32) map[int32]int16 {
		req := produceOne("t", partitions...)
		codes := map[int32]int16{}
		for _, t := range roundTrip(req, 7).(*kmsg.ProduceResponse).Topics {
			for _, p := range t.Partitions {
				codes[p.Partition] = p.ErrorCode
			}
		}
		return codes
	}
	endOffsets := func() map[int32]int64 {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "t"
		for _, p := range []int32{pg, pb} {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp = p, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		out := map[int32]int64{}
		for _, t := range roundTrip(req, 4).(*kmsg.ListOffsetsResponse).Topics {
			for _, p := range t.Partitions {
				out[p.Partition] = p.Offset
			}
		}
		return out
	}

	if codes := produce(pg, pb); codes[pg] != 0 || codes[pb] != kerr.NotLeaderForPartition.Code || len(codes) != 2 {
		t.Fatalf("split produce with one broken broker: codes %v, want t/%d ok and t/%d NOT_LEADER_OR_FOLLOWER", codes, pg, pb)
	}
	if offs := endOffsets(); offs[pg] != 1 || offs[pb] != 0 {
		t.Fatalf("end offsets %v: want t/%d written once, t/%d not at all", offs, pg, pb)
	}
	// The client retries the failed partition alone, on the same
	// connection: the proxy closes it without sending the batch.
	corr++
	req := produceOne("t", pb)
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := nc.Write(reqFrame(req, 7, corr)); err != nil {
		t.Fatalf("write: %v", err)
	}
	if buf, err := readFrame(br, 1<<20); err == nil {
		t.Fatalf("a produce after a broker connection broke with a produce in flight was answered (%d bytes); want the connection closed", len(buf.b))
	}
	dial()
	if offs := endOffsets(); offs[pg] != 1 || offs[pb] != 0 {
		t.Fatalf("end offsets %v after the refused retry: want t/%d once, t/%d not at all", offs, pg, pb)
	}
	// On a new connection the retry goes through.
	if codes := produce(pb); codes[pb] != 0 {
		t.Fatalf("retry of t/%d: codes %v", pb, codes)
	}
	if offs := endOffsets(); offs[pg] != 1 || offs[pb] != 1 {
		t.Fatalf("end offsets after the retry %v: want one record each", offs)
	}
}

// TestSingleTargetBrokerUnreachable: a produce whose one broker cannot be
// dialed (its cluster is down) is answered NOT_LEADER_OR_FOLLOWER for its
// partitions, as a split part whose broker failed, and the client's
// connection stays open (closing it right after the request made
// franz-go fail the records as if SASL were missing).
func TestSingleTargetBrokerUnreachable(t *testing.T) {
	_, nc := proxyOfDownCluster(t)
	br := bufio.NewReader(nc)
	for corr := int32(1); corr <= 2; corr++ {
		req := produceOne("t", 0)
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := nc.Write(reqFrame(req, 7, corr)); err != nil {
			t.Fatalf("write: %v", err)
		}
		buf, err := readFrame(br, 1<<20)
		if err != nil {
			t.Fatalf("produce %d to an unreachable broker: %v (connection closed instead of an answer)", corr, err)
		}
		got, resp := decodeOut(t, buf.b, kmsg.Produce.Int16(), 7)
		if got != corr {
			t.Fatalf("correlation id %d, want %d", got, corr)
		}
		pr := resp.(*kmsg.ProduceResponse)
		if len(pr.Topics) != 1 || len(pr.Topics[0].Partitions) != 1 || pr.Topics[0].Partitions[0].ErrorCode != kerr.NotLeaderForPartition.Code {
			t.Fatalf("produce %d answer %+v, want t/0 NOT_LEADER_OR_FOLLOWER", corr, pr.Topics)
		}
	}
}

// TestMetadataWhileClusterDown: with its cluster unreachable and its
// snapshot stale, Metadata is answered from the last snapshot (all topics
// and by name; a name the snapshot lacks is LEADER_NOT_AVAILABLE) instead
// of closing the client's connection.
func TestMetadataWhileClusterDown(t *testing.T) {
	be, nc := proxyOfDownCluster(t)
	be.TriggerRefresh() // the snapshot is stale from here on
	br := bufio.NewReader(nc)
	ask := func(corr int32, topics ...string) *kmsg.MetadataResponse {
		t.Helper()
		req := kmsg.NewPtrMetadataRequest()
		if topics != nil {
			for _, name := range topics {
				rt := kmsg.NewMetadataRequestTopic()
				rt.Topic = kmsg.StringPtr(name)
				req.Topics = append(req.Topics, rt)
			}
		}
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := nc.Write(reqFrame(req, 9, corr)); err != nil {
			t.Fatalf("write: %v", err)
		}
		buf, err := readFrame(br, 1<<20)
		if err != nil {
			t.Fatalf("metadata %d with the cluster down: %v (connection closed instead of an answer)", corr, err)
		}
		_, resp := decodeOut(t, buf.b, kmsg.Metadata.Int16(), 9)
		return resp.(*kmsg.MetadataResponse)
	}
	all := ask(1)
	if len(all.Topics) != 1 || *all.Topics[0].Topic != "t" || len(all.Topics[0].Partitions) != 2 || len(all.Brokers) == 0 {
		t.Fatalf("all-topics answer %+v, want t with 2 partitions and the peers", all)
	}
	named := ask(2, "t", "nope")
	codes := map[string]int16{}
	for _, tp := range named.Topics {
		codes[*tp.Topic] = tp.ErrorCode
	}
	if codes["t"] != 0 || codes["nope"] != kerr.LeaderNotAvailable.Code {
		t.Fatalf("named answer codes %v, want t ok and nope LEADER_NOT_AVAILABLE", codes)
	}
}

// proxyOfDownCluster starts a proxy in front of a one-broker kfake cluster
// holding topic t (2 partitions), waits for its metadata, closes the
// cluster (the proxy keeps its metadata; every dial is now refused) and
// returns the backend and a client connection to the proxy.
func proxyOfDownCluster(t *testing.T) (*Backend, net.Conn) {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "t"))
	if err != nil {
		t.Fatal(err)
	}
	be, addr := startProxy(t, kc, BackendConfig{Name: "k"})
	waitReady(t, be)
	kc.Close()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return be, nc
}

// TestProduceAfterUnsentProduceClosesConn: a produce whose broker cannot
// be dialed is answered NOT_LEADER_OR_FOLLOWER unsent; once the broker is
// back, the next produce on the same client connection (which a client
// may have pipelined behind the failed one, so it would overtake the
// retry) ends the connection unsent, and the retry on a new connection is
// written once. Before, the later produce was sent: a broker that came
// back from a crash without its producers' state stored it, refused the
// retried earlier batch as out of order, and librdkafka acknowledged that
// batch as already written (test/chaos TestFaultBackendRestarted).
func TestProduceAfterUnsentProduceClosesConn(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	_, portStr, _ := net.SplitHostPort(kc.ListenAddrs()[0])
	port, _ := strconv.Atoi(portStr)
	be, addr := startProxy(t, kc, BackendConfig{Name: "k"})
	waitReady(t, be)
	kc.Close()

	c := dialRaw(t, addr)
	produce := func(c *rawClient) (int16, error) {
		t.Helper()
		req := produceOne("t", 0)
		req.SetVersion(7)
		resp, err := c.do(req, 30*time.Second)
		if err != nil {
			return 0, err
		}
		pr := resp.(*kmsg.ProduceResponse)
		if len(pr.Topics) != 1 || len(pr.Topics[0].Partitions) != 1 {
			t.Fatalf("produce answer %+v, want t/0 alone", pr.Topics)
		}
		return pr.Topics[0].Partitions[0].ErrorCode, nil
	}
	endOffset := func(c *rawClient) int64 {
		t.Helper()
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = 0, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		req.SetVersion(4)
		resp, err := c.do(req, 30*time.Second)
		if err != nil {
			t.Fatalf("list offsets: %v", err)
		}
		lr := resp.(*kmsg.ListOffsetsResponse)
		if len(lr.Topics) != 1 || len(lr.Topics[0].Partitions) != 1 || lr.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("list offsets answer %+v", lr.Topics)
		}
		return lr.Topics[0].Partitions[0].Offset
	}
	if code, err := produce(c); err != nil || code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("produce with the broker down: code %d, err %v; want NOT_LEADER_OR_FOLLOWER", code, err)
	}

	// The broker comes back on its address, without the producers' state.
	kc, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatalf("restart the broker on port %d: %v", port, err)
	}
	t.Cleanup(kc.Close)
	if code, err := produce(c); err == nil {
		t.Fatalf("a produce behind one answered unsent was answered (code %d); want the connection closed unsent", code)
	}
	// Nothing was written; on a new connection the retry is.
	c = dialRaw(t, addr)
	if end := endOffset(c); end != 0 {
		t.Fatalf("t/0 ends at %d after the refused produce, want 0", end)
	}
	if code, err := produce(c); err != nil || code != 0 {
		t.Fatalf("retry on a new connection: code %d, err %v", code, err)
	}
	if end := endOffset(c); end != 1 {
		t.Fatalf("t/0 ends at %d after the retry, want 1", end)
	}
}

// TestProduceByIDOfNewTopic: a topic created on the cluster after the
// proxy loaded its metadata (as through another peer) is named by its
// virtual id in a Produce v13 (and another in a Metadata v12); the proxy, which does not know the id yet,
// refreshes its metadata and forwards the produce, rather than answering
// UNKNOWN_TOPIC_ID, which made clients back off and retry (a quarter of a
// second and more per peer, measured by the bench's short produce rounds).
func TestProduceByIDOfNewTopic(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "old"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	be, addr := startProxy(t, kc, BackendConfig{Name: "k"}) // refreshes every minute
	waitReady(t, be)
	direct, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	// createBehind creates topic on the cluster, not through the proxy.
	createBehind := func(topic string) {
		t.Helper()
		create := kmsg.NewPtrCreateTopicsRequest()
		ct := kmsg.NewCreateTopicsRequestTopic()
		ct.Topic, ct.NumPartitions, ct.ReplicationFactor = topic, 1, 1
		create.Topics = append(create.Topics, ct)
		if resp, err := create.RequestWith(context.Background(), direct); err != nil || resp.Topics[0].ErrorCode != 0 {
			t.Fatalf("create %s on the cluster: %v %+v", topic, err, resp)
		}
		if _, ok := be.topicID(topic); ok {
			t.Fatalf("the proxy knows %s before any refresh: the test tests nothing", topic)
		}
	}
	createBehind("fresh")

	c := dialRaw(t, addr)
	req := produceOne("", 0)
	req.SetVersion(13)
	req.Topics[0].TopicID = virtualTopicID("fresh")
	resp, err := c.do(req, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	pr := resp.(*kmsg.ProduceResponse)
	if len(pr.Topics) != 1 || len(pr.Topics[0].Partitions) != 1 {
		t.Fatalf("produce answer %+v, want fresh/0 alone", pr.Topics)
	}
	if got := pr.Topics[0]; got.TopicID != virtualTopicID("fresh") || got.Partitions[0].ErrorCode != 0 {
		t.Fatalf("produce to the new topic by id: id %x code %d, want its virtual id and no error", got.TopicID, got.Partitions[0].ErrorCode)
	}

	// Metadata by id finds a new topic the same way.
	createBehind("fresh2")
	mreq := kmsg.NewPtrMetadataRequest()
	mreq.SetVersion(12)
	mt := kmsg.NewMetadataRequestTopic()
	mt.TopicID = virtualTopicID("fresh2")
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := c.do(mreq, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if mts := mresp.(*kmsg.MetadataResponse).Topics; len(mts) != 1 || mts[0].ErrorCode != 0 || mts[0].Topic == nil || *mts[0].Topic != "fresh2" {
		t.Fatalf("metadata by the new topic's id: %+v, want fresh2 without error", mts)
	}

	// An id no cluster has is still UNKNOWN_TOPIC_ID, after one refresh.
	req.Topics[0].TopicID = virtualTopicID("nowhere")
	if resp, err = c.do(req, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownTopicID.Code {
		t.Fatalf("produce by an unknown id: code %d, want UNKNOWN_TOPIC_ID", code)
	}
}

// produceOne is an acks=all Produce of one idempotent-format record (no
// producer id) to each of partitions of topic.
func produceOne(topic string, partitions ...int32) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	for _, p := range partitions {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = p, idempotentBatch(-1, -1, -1, "v")
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}
