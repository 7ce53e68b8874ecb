package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// sessProxy is one or more peers (Servers) in front of one kfake cluster
// named "k", each peer co-located with the kfake broker of its index.
type sessProxy struct {
	addrs []string
	regs  []*prometheus.Registry
	srvs  []*Server
	bes   []*Backend
}

// startSessProxy starts peers in front of kc with cfg (ListenAddr and
// Logger are set here); metadataRefresh is each backend's.
func startSessProxy(t *testing.T, kc interface{ ListenAddrs() []string }, peers int, cfg Config, metadataRefresh time.Duration) *sessProxy {
	t.Helper()
	view := &benchView{}
	p := &sessProxy{}
	st := &fsm.State{
		Clusters: []fsm.Cluster{{Name: "k", Bootstrap: kc.ListenAddrs()}},
		Routes:   fsm.Routes{DefaultCluster: "k"},
	}
	for i := range peers {
		reg := prometheus.NewRegistry()
		m := NewMetrics(reg, 0)
		be := newTestBackend(t, BackendConfig{Name: "k", Bootstrap: kc.ListenAddrs(), MetadataRefresh: metadataRefresh, Metrics: m})
		c := cfg
		c.ListenAddr, c.NodeID = "127.0.0.1:0", int32(i)
		c.Logger = testLogger(t)
		srv := listenServer(t, c, view, m, be)
		addr := srv.Addr().String()
		st.Peers = append(st.Peers, fsm.Peer{ID: int32(i), Name: fmt.Sprintf("peer-%d", i), KafkaAddr: addr,
			LocalBrokers: []fsm.BrokerRef{{Cluster: "k", BrokerID: int32(i)}}})
		p.addrs, p.regs, p.srvs, p.bes = append(p.addrs, addr), append(p.regs, reg), append(p.srvs, srv), append(p.bes, be)
	}
	view.st = st // every peer's address known, before any serves
	for i, srv := range p.srvs {
		serveServer(t, srv, p.bes[i])
	}
	waitReady(t, p.bes...)
	return p
}

// testLogger routes component logs to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// metric is gatherMetric summed over every peer's registry.
func (p *sessProxy) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	sum := 0.0
	for _, reg := range p.regs {
		sum += gatherMetric(t, reg, name, labels...)
	}
	return sum
}

// sessWaitFor polls cond until it holds or timeout passes.
func sessWaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sessTopics names n topics of the many-partitions tests.
// sessProducer is a client that writes straight to kc, to the partition
// each record names; closed when the test ends.
func sessProducer(t testing.TB, kc interface{ ListenAddrs() []string }) *kgo.Client {
	t.Helper()
	prod, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	return prod
}

func sessTopics(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("idle-%03d", i)
	}
	return out
}

// consumeAll reads through cl until every record of want (topic/partition
// → values in order) has been read, and fails on a record read twice, out
// of order or not produced.
func consumeAll(t *testing.T, ctx context.Context, cl *kgo.Client, want map[string][]string) {
	t.Helper()
	total := 0
	for _, v := range want {
		total += len(v)
	}
	got := map[string][]string{}
	n := 0
	for n < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records before the deadline", n, total)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Logf("fetch error %s/%d: %v (the client retries)", topic, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			k := fmt.Sprintf("%s/%d", r.Topic, r.Partition)
			i := len(got[k])
			if i >= len(want[k]) || string(r.Value) != want[k][i] {
				t.Fatalf("%s: record %d is %q at offset %d, want %v[%d] (read twice, out of order, or never produced)", k, i, r.Value, r.Offset, want[k], i)
			}
			got[k] = append(got[k], string(r.Value))
			n++
		})
	}
	clear(want) // read: the next call waits for new records only
}

// TestFetchSessionGroupManyPartitions: a consumer group owning 500
// partitions (50 topics × 10), a few of them written to, reads every
// record exactly once through the proxy with sessions on and off. With
// sessions on, the client's fetches are incremental: once the records
// are read, the proxy counts a handful of partitions per fetch where a
// sessionless client lists all 500 every time.
func TestFetchSessionGroupManyPartitions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		slots int
	}{{"sessions", 0}, {"sessionless", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			topics := sessTopics(50)
			kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(10, topics...))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(kc.Close)
			p := startSessProxy(t, kc, 1, Config{Limits: Limits{FetchSessionSlots: tc.slots}}, time.Minute)

			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			prod, err := kgo.NewClient(kgo.SeedBrokers(p.addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			want := map[string][]string{}
			produce := func(round, n int) {
				t.Helper()
				var recs []*kgo.Record
				for i := range n {
					// A trickle on a few partitions of a few topics.
					topic, part := topics[(i%3)*7], int32(i%2)
					v := fmt.Sprintf("r%d-%d", round, i)
					recs = append(recs, &kgo.Record{Topic: topic, Partition: part, Value: []byte(v)})
					k := fmt.Sprintf("%s/%d", topic, part)
					want[k] = append(want[k], v)
				}
				if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			produce(0, 60)

			cons, err := kgo.NewClient(kgo.SeedBrokers(p.addrs...), kgo.ConsumeTopics(topics...), kgo.ConsumerGroup("g-many"),
				kgo.FetchMaxWait(200*time.Millisecond), kgo.WithLogger(kgo.BasicLogger(tWriter{t}, kgo.LogLevelWarn, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			consumeAll(t, ctx, cons, want)

			// A window of fetches with a trickle of records.
			fetches := func() float64 { return p.metric(t, "switchyard_kafka_requests_total", "api", "Fetch") }
			listed := func(kind string) float64 {
				return p.metric(t, "switchyard_kafka_fetch_request_partitions_total", "kind", kind)
			}
			f0, inc0, less0 := fetches(), listed(fetchKindIncremental), listed(fetchKindSessionless)
			for round := 1; round <= 3; round++ {
				produce(round, 6)
				consumeAll(t, ctx, cons, want)
			}
			sessWaitFor(t, 30*time.Second, "fetches after the trickle", func() bool { return fetches()-f0 >= 10 })
			n := fetches() - f0
			inc, less := listed(fetchKindIncremental)-inc0, listed(fetchKindSessionless)-less0
			t.Logf("%v fetches listed %v partitions incrementally, %v sessionless", n, inc, less)
			sessions := p.metric(t, "switchyard_kafka_fetch_sessions")
			if tc.slots < 0 {
				if sessions != 0 || inc != 0 || listed(fetchKindFull) != 0 {
					t.Fatalf("sessions off: %v sessions, %v incremental and %v full partitions listed, want none", sessions, inc, listed(fetchKindFull))
				}
				// All 500 each but the few with records buffered in the
				// client (it leaves those out) and one the reader may hold
				// counted but not yet listed.
				if less < (n-1)*450 {
					t.Fatalf("sessions off: %v fetches listed %v partitions, want about 500 each", n, less)
				}
				return
			}
			if sessions < 1 || less != 0 {
				t.Fatalf("%v sessions held and %v partitions listed sessionless: the consumer did not use a session", sessions, less)
			}
			// Every fetch sessionless would list 500; allow the client's
			// resends of partitions it read from and the odd full fetch.
			if inc > n*50 {
				t.Fatalf("%v fetches listed %v partitions incrementally, more than 50 a fetch", n, inc)
			}
		})
	}
}

// rawFetch is a Fetch of the partitions of topic from offset 0.
func rawFetch(v int16, id, epoch int32, topic string, tid [16]byte, parts ...int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.ReplicaID, req.MaxWaitMillis, req.MaxBytes = v, -1, 10, 1<<20
	req.SessionID, req.SessionEpoch = id, epoch
	if len(parts) > 0 {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, tid
		for _, p := range parts {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.PartitionMaxBytes = p, 1<<20
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

func (c *rawClient) fetch(t *testing.T, req *kmsg.FetchRequest) *kmsg.FetchResponse {
	t.Helper()
	resp, err := c.do(req, 30*time.Second)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return resp.(*kmsg.FetchResponse)
}

// answeredParts lists an answer's partitions as topic/partition → error code.
func answeredParts(resp *kmsg.FetchResponse) map[string]int16 {
	out := map[string]int16{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out[fmt.Sprintf("%s/%d", t.Topic, p.Partition)] = p.ErrorCode
		}
	}
	return out
}

// TestFetchSessionProtocol drives the session protocol by hand (v12, by
// name): a full fetch opens a session and is answered whole; incremental
// fetches are answered only the partitions with news; a wrong epoch,
// an unknown id and a v13 fetch on a by-name session are refused as a
// broker refuses them; ForgottenTopics leave the session; epoch -1 closes it.
func TestFetchSessionProtocol(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	p := startSessProxy(t, kc, 1, Config{}, time.Minute)
	c := dialRaw(t, p.addrs[0])
	produce := func(part int32, v string) {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "t", Partition: part, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, "a")

	full := c.fetch(t, rawFetch(12, 0, 0, "t", [16]byte{}, 0, 1, 2, 3))
	id := full.SessionID
	if full.ErrorCode != 0 || id == 0 || len(answeredParts(full)) != 4 {
		t.Fatalf("full fetch: error %d, session %d, partitions %v: want a session and all four", full.ErrorCode, id, answeredParts(full))
	}
	// The client moves t/0 past its record; nothing new: an empty
	// answer, same session.
	req := rawFetch(12, id, 1, "t", [16]byte{}, 0)
	req.Topics[0].Partitions[0].FetchOffset = 1
	inc := c.fetch(t, req)
	if inc.ErrorCode != 0 || inc.SessionID != id || len(inc.Topics) != 0 {
		t.Fatalf("incremental fetch with no news: error %d, session %d, partitions %v", inc.ErrorCode, inc.SessionID, answeredParts(inc))
	}
	// A record on partition 2: only it is answered, though the fetch
	// named no partition (the session's offsets are the full fetch's).
	produce(2, "b")
	inc = c.fetch(t, rawFetch(12, id, 2, "t", [16]byte{}))
	if got := answeredParts(inc); len(got) != 1 || len(inc.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatalf("incremental fetch after a record on t/2: partitions %v, want t/2 with its record", got)
	} else if _, ok := got["t/2"]; !ok {
		t.Fatalf("incremental fetch after a record on t/2: partitions %v", got)
	}
	// The client moves partition 2 past the record and forgets 0.
	req = rawFetch(12, id, 3, "t", [16]byte{}, 2)
	req.Topics[0].Partitions[0].FetchOffset = 1
	req.ForgottenTopics = []kmsg.FetchRequestForgottenTopic{{Topic: "t", Partitions: []int32{0}}}
	if inc = c.fetch(t, req); inc.ErrorCode != 0 || len(inc.Topics) != 0 {
		t.Fatalf("incremental fetch moving t/2 on: error %d, partitions %v, want none", inc.ErrorCode, answeredParts(inc))
	}
	produce(0, "c") // forgotten: not answered
	produce(1, "d")
	inc = c.fetch(t, rawFetch(12, id, 4, "t", [16]byte{}))
	if got := answeredParts(inc); len(got) != 1 {
		t.Fatalf("after t/0 was forgotten and t/1 written: partitions %v, want t/1 only", got)
	} else if _, ok := got["t/1"]; !ok {
		t.Fatalf("after t/0 was forgotten and t/1 written: partitions %v, want t/1 only", got)
	}

	// Refusals, as a broker gives them.
	for _, x := range []struct {
		what string
		req  *kmsg.FetchRequest
		code int16
	}{
		{"a repeated epoch", rawFetch(12, id, 4, "t", [16]byte{}), kerr.InvalidFetchSessionEpoch.Code},
		{"an epoch ahead", rawFetch(12, id, 9, "t", [16]byte{}), kerr.InvalidFetchSessionEpoch.Code},
		{"an unknown session", rawFetch(12, id+1, 1, "t", [16]byte{}), kerr.FetchSessionIDNotFound.Code},
		{"topic ids on a by-name session", rawFetch(13, id, 5, "", [16]byte{}), kerr.FetchSessionTopicIDError.Code},
	} {
		if got := c.fetch(t, x.req); got.ErrorCode != x.code || got.SessionID != 0 || len(got.Topics) != 0 {
			t.Errorf("%s: error %d, session %d, %d topics; want error %d and nothing else", x.what, got.ErrorCode, got.SessionID, len(got.Topics), x.code)
		}
	}
	// The refusals did not consume the epoch.
	if inc = c.fetch(t, rawFetch(12, id, 5, "t", [16]byte{})); inc.ErrorCode != 0 || inc.SessionID != id {
		t.Fatalf("incremental fetch after the refusals: error %d, session %d", inc.ErrorCode, inc.SessionID)
	}
	// Epoch -1 closes it and is served sessionless (every partition named).
	closing := c.fetch(t, rawFetch(12, id, -1, "t", [16]byte{}, 0, 1))
	if closing.ErrorCode != 0 || closing.SessionID != 0 || len(answeredParts(closing)) != 2 {
		t.Fatalf("closing fetch: error %d, session %d, partitions %v", closing.ErrorCode, closing.SessionID, answeredParts(closing))
	}
	if got := c.fetch(t, rawFetch(12, id, 6, "t", [16]byte{})); got.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("fetch on a closed session: error %d, want FETCH_SESSION_ID_NOT_FOUND", got.ErrorCode)
	}
	if n := p.srvs[0].fetchSessions.len(); n != 0 {
		t.Fatalf("%d sessions held after the close", n)
	}
}

// TestFetchSessionOtherPrincipal: a session belongs to the principal that
// opened it; another principal naming its id is answered
// FETCH_SESSION_ID_NOT_FOUND, and the owner's session is untouched.
func TestFetchSessionOtherPrincipal(t *testing.T) {
	p := startSecureProxy(t, Security{SASLMechanisms: []string{MechPlain}},
		testUser(t, "alice", "alice-secret", fsm.SASLScramSHA512), testUser(t, "bob", "bob-secret", fsm.SASLScramSHA512))
	login := func(user string) *rawClient {
		c := dialRaw(t, p.addr)
		c.handshake(t, MechPlain, 1)
		if resp := c.authenticate(t, plainToken(user, user+"-secret")); resp.ErrorCode != 0 {
			t.Fatalf("%s: authentication error %d", user, resp.ErrorCode)
		}
		return c
	}
	alice, bob := login("alice"), login("bob")
	full := alice.fetch(t, rawFetch(12, 0, 0, "t", [16]byte{}, 0, 1, 2))
	if full.SessionID == 0 {
		t.Fatalf("alice's full fetch opened no session (error %d)", full.ErrorCode)
	}
	if got := bob.fetch(t, rawFetch(12, full.SessionID, 1, "t", [16]byte{})); got.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("bob using alice's session: error %d, want FETCH_SESSION_ID_NOT_FOUND", got.ErrorCode)
	}
	// Nor can bob close it.
	bob.fetch(t, rawFetch(12, full.SessionID, -1, "t", [16]byte{}, 0))
	if got := alice.fetch(t, rawFetch(12, full.SessionID, 1, "t", [16]byte{})); got.ErrorCode != 0 || got.SessionID != full.SessionID {
		t.Fatalf("alice's own incremental fetch: error %d, session %d", got.ErrorCode, got.SessionID)
	}
}

// TestFetchSessionSlots: with every slot taken by a recently used session
// a full fetch is served sessionless (whole, session 0); once the least
// recently used session has been idle past the minimum it is evicted for
// the new one (counted), and its owner is told FETCH_SESSION_ID_NOT_FOUND.
func TestFetchSessionSlots(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	p := startSessProxy(t, kc, 1, Config{Limits: Limits{FetchSessionSlots: 1}}, time.Minute)
	fc := p.srvs[0].fetchSessions
	a, b := dialRaw(t, p.addrs[0]), dialRaw(t, p.addrs[0])
	first := a.fetch(t, rawFetch(12, 0, 0, "t", [16]byte{}, 0, 1))
	if first.SessionID == 0 {
		t.Fatal("first full fetch opened no session")
	}
	second := b.fetch(t, rawFetch(12, 0, 0, "t", [16]byte{}, 0, 1))
	if second.SessionID != 0 || second.ErrorCode != 0 || len(answeredParts(second)) != 2 {
		t.Fatalf("full fetch with no free slot: session %d, error %d, partitions %v; want served whole, sessionless",
			second.SessionID, second.ErrorCode, answeredParts(second))
	}
	if got := p.metric(t, "switchyard_kafka_fetch_session_evictions_total"); got != 0 {
		t.Fatalf("%v evictions of a session in use", got)
	}
	// Idle past the minimum: evictable.
	fc.mu.Lock()
	fc.minIdle = 50 * time.Millisecond
	fc.mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	third := b.fetch(t, rawFetch(12, 0, 0, "t", [16]byte{}, 0, 1))
	if third.SessionID == 0 || third.SessionID == first.SessionID {
		t.Fatalf("full fetch after the first session idled: session %d", third.SessionID)
	}
	if got := p.metric(t, "switchyard_kafka_fetch_session_evictions_total"); got != 1 {
		t.Fatalf("%v evictions, want 1", got)
	}
	if got := a.fetch(t, rawFetch(12, first.SessionID, 1, "t", [16]byte{})); got.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("evicted session's incremental fetch: error %d, want FETCH_SESSION_ID_NOT_FOUND", got.ErrorCode)
	}
}

// TestFetchSessionLeaderMoves: two peers, each co-located with one of two
// kfake brokers, so a partition is presented as led by the peer of its
// real leader. A group consumer reads through sessions while every
// partition's leader moves to the other broker twice mid-stream: each
// fetch that reaches a broker no longer leading is answered
// NOT_LEADER_OR_FOLLOWER for that partition in the incremental answer,
// the client follows the presented leader to the other peer (a session
// there), and every record is read exactly once, in order.
func TestFetchSessionLeaderMoves(t *testing.T) {
	topics := sessTopics(8)
	kc, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(4, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	p := startSessProxy(t, kc, 2, Config{}, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	prod := sessProducer(t, kc)
	want := map[string][]string{}
	produce := func(round int) {
		t.Helper()
		var recs []*kgo.Record
		for i, topic := range topics {
			for part := range int32(4) {
				v := fmt.Sprintf("r%d-%d-%d", round, i, part)
				recs = append(recs, &kgo.Record{Topic: topic, Partition: part, Value: []byte(v)})
				k := fmt.Sprintf("%s/%d", topic, part)
				want[k] = append(want[k], v)
			}
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(p.addrs...), kgo.ConsumeTopics(topics...), kgo.ConsumerGroup("g-moves"),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.MetadataMinAge(100*time.Millisecond), kgo.WithLogger(kgo.BasicLogger(tWriter{t}, kgo.LogLevelWarn, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	moves := func() {
		for _, topic := range topics {
			for part := range int32(4) {
				to := 1 - kc.LeaderFor(topic, part)
				if err := kc.MoveTopicPartition(topic, part, to); err != nil {
					t.Fatalf("move %s/%d to %d: %v", topic, part, to, err)
				}
			}
		}
	}
	notLeader := func() float64 {
		return p.metric(t, "switchyard_kafka_cluster_errors_total", "error", kerr.NotLeaderForPartition.Message)
	}
	produce(0)
	consumeAll(t, ctx, cons, want)
	// The move happens while the consumer does not fetch, and records are
	// written at the new leader epoch before it fetches again: kfake
	// answers OffsetForLeaderEpoch for the old epoch with offset 0 while
	// the new epoch has no batch yet, which makes any client (this one
	// reading kfake directly too) reset the partition to 0. A real broker
	// answers the old epoch's end offset. Fetches in flight when the
	// topics are paused end within FetchMaxWait.
	cons.PauseFetchTopics(topics...)
	time.Sleep(time.Second)
	moves()
	produce(1)
	cons.ResumeFetchTopics(topics...)
	consumeAll(t, ctx, cons, want)
	produce(2)
	consumeAll(t, ctx, cons, want)
	if got := p.metric(t, "switchyard_kafka_fetch_sessions"); got < 1 {
		t.Fatalf("%v sessions held: the consumer did not use sessions", got)
	}
	t.Logf("NOT_LEADER answers from the backends: %v; incremental partitions listed: %v", notLeader(),
		p.metric(t, "switchyard_kafka_fetch_request_partitions_total", "kind", fetchKindIncremental))
}

// TestFetchSessionLeaderErrorAnswered: a partition whose backend leader
// moved under a session is answered NOT_LEADER_OR_FOLLOWER in the next
// incremental fetch (the proxy still sent it to the old leader), though
// nothing else changed for it; after the proxy's metadata refresh the
// session reads the partition from its new leader.
func TestFetchSessionLeaderErrorAnswered(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(4, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	p := startSessProxy(t, kc, 1, Config{}, time.Minute)
	c := dialRaw(t, p.addrs[0])
	full := c.fetch(t, rawFetch(12, 0, 0, "t", [16]byte{}, 0, 1, 2, 3))
	id := full.SessionID
	if id == 0 || len(answeredParts(full)) != 4 {
		t.Fatalf("full fetch: session %d, partitions %v", id, answeredParts(full))
	}
	to := 1 - kc.LeaderFor("t", 2)
	if err := kc.MoveTopicPartition("t", 2, to); err != nil {
		t.Fatal(err)
	}
	inc := c.fetch(t, rawFetch(12, id, 1, "t", [16]byte{}))
	if got := answeredParts(inc); got["t/2"] != kerr.NotLeaderForPartition.Code || len(got) != 1 {
		t.Fatalf("incremental fetch after t/2 moved: partitions %v, want t/2 answered NOT_LEADER_OR_FOLLOWER only", got)
	}
	readMovedPartition(t, kc, c, id, 2)
}

// readMovedPartition writes a record to t/2 directly and fetches session
// id incrementally through c from epoch on until t/2 answers it (from the
// partition's new leader, after a move).
func readMovedPartition(t *testing.T, kc *kfake.Cluster, c *rawClient, id, epoch int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "t", Partition: 2, Value: []byte("moved")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	sessWaitFor(t, 30*time.Second, "t/2's record through the session from its new leader", func() bool {
		inc := c.fetch(t, rawFetch(12, id, epoch, "t", [16]byte{}))
		epoch++
		if inc.ErrorCode != 0 || inc.SessionID != id {
			t.Fatalf("incremental fetch: error %d, session %d", inc.ErrorCode, inc.SessionID)
		}
		for _, tp := range inc.Topics {
			for _, pp := range tp.Partitions {
				if pp.Partition == 2 && pp.ErrorCode == 0 && len(pp.RecordBatches) > 0 {
					return true
				}
			}
		}
		return false
	})
}

// sessTopicsReq is one by-name topic with partitions 0..n-1.
func sessTopicsReq(name string, n int) []kmsg.FetchRequestTopic {
	t := kmsg.NewFetchRequestTopic()
	t.Topic = name
	for p := range n {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = int32(p)
		t.Partitions = append(t.Partitions, rp)
	}
	return []kmsg.FetchRequestTopic{t}
}

// TestFetchSessionCacheBounds: a session never holds more than the
// cache's per-session bound, nor the cache more than its total; a session
// that would is not opened (the fetch goes sessionless), and evicting
// idle sessions makes room. (Small bounds; the real ones are constants.)
func TestFetchSessionCacheBounds(t *testing.T) {
	const per, total = 100, 1000
	now := time.Unix(1000, 0)
	c := newFetchSessionCache(1000, nil)
	c.now = func() time.Time { return now }
	c.perSession, c.total = per, total
	if s := c.open("User:a", false, sessTopicsReq("t", per+1)); s != nil {
		t.Fatalf("a session of %d partitions was opened", per+1)
	}
	var first *fetchSession
	for i := range total / per {
		s := c.open("User:a", false, sessTopicsReq(fmt.Sprintf("t%d", i), per))
		if s == nil {
			t.Fatalf("session %d of %d not opened", i, total/per)
		}
		if first == nil {
			first = s
		}
	}
	if s := c.open("User:a", false, sessTopicsReq("more", 1)); s != nil {
		t.Fatal("a session past the cache's partition bound was opened while every session was in use")
	}
	// The least recently used idles past the minimum: it makes room.
	now = now.Add(fetchSessionMinIdle)
	s := c.open("User:a", false, sessTopicsReq("more", 1))
	if s == nil {
		t.Fatal("no session opened once an idle one could be evicted")
	}
	if _, code := c.lookup(first.id, "User:a"); code != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("evicted session looked up: code %d", code)
	}
	if c.len() != total/per || c.parts != total-per+1 {
		t.Fatalf("%d sessions holding %d partitions after the eviction", c.len(), c.parts)
	}
	// Growing a session past the total is refused; up to it is not.
	if c.resized(s, per+1) {
		t.Fatal("a session grew past the cache's partition bound")
	}
	if !c.resized(s, per) || c.parts != total {
		t.Fatalf("a session grew to the bound: %d partitions held, want %d", c.parts, total)
	}
}

// TestFetchSessionByTopicID: from v13 a session names topics by the
// virtual ids the proxy presents; its incremental answers are filtered by
// them too: after a record on one partition only that partition is
// answered, under the id the client knows.
func TestFetchSessionByTopicID(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	p := startSessProxy(t, kc, 1, Config{}, time.Minute)
	c := dialRaw(t, p.addrs[0])
	mreq := kmsg.NewPtrMetadataRequest()
	mreq.Version = 12
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("t")
	mreq.Topics = append(mreq.Topics, mt)
	mresp, err := c.do(mreq, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	md := mresp.(*kmsg.MetadataResponse)
	if len(md.Topics) != 1 || md.Topics[0].TopicID == ([16]byte{}) {
		t.Fatalf("metadata for t: %+v", md.Topics)
	}
	vid := md.Topics[0].TopicID
	full := c.fetch(t, rawFetch(16, 0, 0, "", vid, 0, 1, 2, 3))
	if full.SessionID == 0 || len(full.Topics) != 1 || full.Topics[0].TopicID != vid || len(full.Topics[0].Partitions) != 4 {
		t.Fatalf("full fetch by id: session %d, topics %+v", full.SessionID, full.Topics)
	}
	if inc := c.fetch(t, rawFetch(16, full.SessionID, 1, "", vid)); inc.ErrorCode != 0 || len(inc.Topics) != 0 {
		t.Fatalf("incremental fetch by id with no news: error %d, %d topics", inc.ErrorCode, len(inc.Topics))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "t", Partition: 1, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	inc := c.fetch(t, rawFetch(16, full.SessionID, 2, "", vid))
	if inc.ErrorCode != 0 || len(inc.Topics) != 1 || inc.Topics[0].TopicID != vid || len(inc.Topics[0].Partitions) != 1 ||
		inc.Topics[0].Partitions[0].Partition != 1 || len(inc.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatalf("incremental fetch by id after a record on t/1: error %d, topics %+v", inc.ErrorCode, inc.Topics)
	}
	// A by-id session refuses a by-name fetch.
	if got := c.fetch(t, rawFetch(12, full.SessionID, 3, "t", [16]byte{})); got.ErrorCode != kerr.FetchSessionTopicIDError.Code {
		t.Fatalf("by-name fetch on a by-id session: error %d, want FETCH_SESSION_TOPIC_ID_ERROR", got.ErrorCode)
	}
}
