package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// backendFetches counts, at kfake, the Fetch requests it is sent by kind
// (sessionless: epoch -1; full: epoch 0; incremental: epoch > 0; close:
// epoch -1 naming a session), the partitions they list and the partitions
// they forget.
type backendFetches struct {
	mu        sync.Mutex
	n, parts  map[string]int
	forgotten int
	// inject, when set, answers the next incremental fetch itself (and is
	// then cleared): a response, or an error that closes the connection.
	inject func(req *kmsg.FetchRequest) (kmsg.Response, error)
}

// watch installs b's control on kc (again after a restart).
func (b *backendFetches) watch(kc *kfake.Cluster) {
	kc.ControlKey(1, func(kr kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		req := kr.(*kmsg.FetchRequest)
		kind := fetchKindIncremental
		switch {
		case req.SessionEpoch == -1 && req.SessionID > 0:
			kind = "close" // the proxy ending its session there
		case req.SessionEpoch == -1:
			kind = fetchKindSessionless
		case req.SessionEpoch == 0:
			kind = fetchKindFull
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.n == nil {
			b.n, b.parts = map[string]int{}, map[string]int{}
		}
		b.n[kind]++
		for _, t := range req.Topics {
			b.parts[kind] += len(t.Partitions)
		}
		for _, t := range req.ForgottenTopics {
			b.forgotten += len(t.Partitions)
		}
		if kind == fetchKindIncremental && b.inject != nil {
			fn := b.inject
			b.inject = nil
			resp, err := fn(req)
			return resp, err, true
		}
		return nil, nil, false
	})
}

// get is the count of kind: fetches and their partitions.
func (b *backendFetches) get(kind string) (fetches, parts int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n[kind], b.parts[kind]
}

func (b *backendFetches) forgot() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.forgotten
}

func (b *backendFetches) setInject(fn func(req *kmsg.FetchRequest) (kmsg.Response, error)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inject = fn
}

func (b *backendFetches) injected() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inject == nil
}

// sessTrickle writes n records to a few partitions of topics and adds them to
// want (topic/partition → values in order).
func sessTrickle(t *testing.T, ctx context.Context, prod *kgo.Client, topics []string, want map[string][]string, round, n int) {
	t.Helper()
	var recs []*kgo.Record
	for i := range n {
		topic, part := topics[(i%3)*7%len(topics)], int32(i%2)
		v := fmt.Sprintf("r%d-%d", round, i)
		recs = append(recs, &kgo.Record{Topic: topic, Partition: part, Value: []byte(v)})
		k := fmt.Sprintf("%s/%d", topic, part)
		want[k] = append(want[k], v)
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestFetchSessionBackendIncremental: a consumer group owning 500
// partitions reads every record once, in order, through the proxy; with
// backend sessions on, kfake is sent incremental fetches listing a few
// partitions each (the proxy's session there holds all 500), and none
// sessionless; with them off, every fetch kfake sees is sessionless and
// lists all 500, as it is for a client without a session.
func TestFetchSessionBackendIncremental(t *testing.T) {
	for _, tc := range []struct {
		name           string
		slots, backend int
	}{{"on", 0, 0}, {"off", 0, -1}, {"client-sessionless", -1, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			topics := sessTopics(50)
			kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(10, topics...))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(kc.Close)
			seen := &backendFetches{}
			seen.watch(kc)
			p := startSessProxy(t, kc, 1, Config{Limits: Limits{FetchSessionSlots: tc.slots, BackendFetchSessions: tc.backend}}, time.Minute)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			prod, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			want := map[string][]string{}
			sessTrickle(t, ctx, prod, topics, want, 0, 60)
			cons, err := kgo.NewClient(kgo.SeedBrokers(p.addrs...), kgo.ConsumeTopics(topics...), kgo.ConsumerGroup("g-backend"),
				kgo.FetchMaxWait(200*time.Millisecond), kgo.WithLogger(kgo.BasicLogger(tWriter{t}, kgo.LogLevelWarn, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			consumeAll(t, ctx, cons, want)

			inc0, incParts0 := seen.get(fetchKindIncremental)
			less0, lessParts0 := seen.get(fetchKindSessionless)
			for round := 1; round <= 3; round++ {
				sessTrickle(t, ctx, prod, topics, want, round, 6)
				consumeAll(t, ctx, cons, want)
			}
			sessWaitFor(t, 30*time.Second, "fetches at the backend after the trickle", func() bool {
				inc, _ := seen.get(fetchKindIncremental)
				less, _ := seen.get(fetchKindSessionless)
				return inc-inc0+less-less0 >= 10
			})
			inc, incParts := seen.get(fetchKindIncremental)
			less, lessParts := seen.get(fetchKindSessionless)
			inc, incParts, less, lessParts = inc-inc0, incParts-incParts0, less-less0, lessParts-lessParts0
			full, fullParts := seen.get(fetchKindFull)
			t.Logf("backend saw %d incremental fetches (%d partitions), %d sessionless (%d), %d full in all (%d)",
				inc, incParts, less, lessParts, full, fullParts)
			if tc.backend < 0 || tc.slots < 0 {
				if inc != 0 || full != 0 || lessParts < less*450 {
					t.Fatalf("backend sessions off or a sessionless client: kfake saw %d incremental and %d full fetches, and %d sessionless listing %d partitions; want only sessionless ones of about 500",
						inc, full, less, lessParts)
				}
				return
			}
			if less != 0 || inc < 10 {
				t.Fatalf("kfake saw %d sessionless and %d incremental fetches: the proxy did not fetch in backend sessions", less, inc)
			}
			// The session at kfake holds 500; a fetch lists what the
			// client resent (the few partitions read from).
			if incParts > inc*20 {
				t.Fatalf("%d incremental fetches listed %d partitions at the backend, more than 20 a fetch of 500", inc, incParts)
			}
			// The proxy counts a fetch as it sends it: once idle fetches
			// list nothing, its totals are kfake's.
			sessWaitFor(t, 30*time.Second, "switchyard_kafka_backend_fetch_request_partitions_total to be what kfake counted", func() bool {
				for _, kind := range []string{fetchKindIncremental, fetchKindFull} {
					_, parts := seen.get(kind)
					if p.metric(t, "switchyard_kafka_backend_fetch_request_partitions_total", "kind", kind) != float64(parts) {
						return false
					}
				}
				return true
			})
		})
	}
}

// TestFetchSessionBackendLost: the proxy's session at the backend is lost
// three ways while a consumer reads through it, and every record is still
// read once, in order: the broker answers FETCH_SESSION_ID_NOT_FOUND (it
// evicted the session), the upstream connection breaks under a fetch, and
// the broker restarts (same ports and data, no sessions). Each time the
// proxy opens a new session there with a full fetch, and goes back to
// incremental ones.
func TestFetchSessionBackendLost(t *testing.T) {
	topics := sessTopics(20)
	dir := t.TempDir()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir), kfake.SeedTopics(10, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kc.Close() })
	var ports []int
	for _, a := range kc.ListenAddrs() {
		_, ps, _ := net.SplitHostPort(a)
		port, _ := strconv.Atoi(ps)
		ports = append(ports, port)
	}
	seen := &backendFetches{}
	seen.watch(kc)
	p := startSessProxy(t, kc, 1, Config{}, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	newProducer := func() *kgo.Client {
		prod, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		return prod
	}
	prod := newProducer()
	defer func() { prod.Close() }()
	want := map[string][]string{}
	sessTrickle(t, ctx, prod, topics, want, 0, 30)
	// No group: the client keeps its offsets itself, so a broker restart
	// cannot rewind it to a commit; what it reads is what the proxy gave.
	cons, err := kgo.NewClient(kgo.SeedBrokers(p.addrs...), kgo.ConsumeTopics(topics...),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.WithLogger(kgo.BasicLogger(tWriter{t}, kgo.LogLevelWarn, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	consumeAll(t, ctx, cons, want)
	round := 1
	// settled waits until the proxy fetches incrementally again after a
	// new full fetch, then checks a trickle is read once, in order.
	settled := func(what string, full0 int) {
		t.Helper()
		sessWaitFor(t, 60*time.Second, what+": a new backend session and incremental fetches in it", func() bool {
			full, _ := seen.get(fetchKindFull)
			return full > full0
		})
		inc0, _ := seen.get(fetchKindIncremental)
		sessWaitFor(t, 60*time.Second, what+": incremental fetches again", func() bool {
			inc, _ := seen.get(fetchKindIncremental)
			return inc > inc0+2
		})
		sessTrickle(t, ctx, prod, topics, want, round, 12)
		round++
		consumeAll(t, ctx, cons, want)
	}

	for _, fault := range []struct {
		name string
		fn   func(req *kmsg.FetchRequest) (kmsg.Response, error)
	}{
		{"evicted", func(req *kmsg.FetchRequest) (kmsg.Response, error) {
			resp := req.ResponseKind().(*kmsg.FetchResponse)
			resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
			return resp, nil
		}},
		{"connection broken", func(*kmsg.FetchRequest) (kmsg.Response, error) {
			return nil, errors.New("test: the connection breaks under this fetch")
		}},
	} {
		sessTrickle(t, ctx, prod, topics, want, round, 6)
		round++
		consumeAll(t, ctx, cons, want)
		full0, _ := seen.get(fetchKindFull)
		seen.setInject(fault.fn)
		sessWaitFor(t, 30*time.Second, fault.name+": fault injected", seen.injected)
		settled(fault.name, full0)
	}

	// The broker restarts on its ports with its data: no sessions.
	full0, _ := seen.get(fetchKindFull)
	prod.Close()
	kc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		kc, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(ports...), kfake.DataDir(dir), kfake.SeedTopics(10, topics...))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restart kfake on %v: %v", ports, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	seen.watch(kc)
	prod = newProducer()
	settled("restarted", full0)
	t.Logf("forgotten partitions sent: %d; proxy client sessions: %v", seen.forgot(), p.metric(t, "switchyard_kafka_fetch_sessions"))
}

// TestFetchSessionBackendMoves: one peer in front of two kfake brokers,
// so one client session's fetches go to both; every partition's leader
// moves to the other broker while the consumer reads. The proxy's
// backend sessions follow, and every record is read once, in order. (TestFetchSessionBackendForgets
// checks the ForgottenTopics one by one.)
func TestFetchSessionBackendMoves(t *testing.T) {
	topics := sessTopics(8)
	kc, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(4, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	seen := &backendFetches{}
	seen.watch(kc)
	// kfake answers OffsetForLeaderEpoch for the old epoch with offset 0
	// while the new epoch has no batch (a real broker answers the old
	// epoch's end offset), which makes any client reset the partition to
	// 0. The client's validation after the move waits here until records
	// are written at the new epochs.
	var gateMu sync.Mutex
	gate := make(chan struct{})
	close(gate)
	kc.ControlKey(23, func(kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		gateMu.Lock()
		g := gate
		gateMu.Unlock()
		kc.SleepControl(func() { <-g })
		return nil, nil, false
	})
	p := startSessProxy(t, kc, 1, Config{}, time.Second)
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
	cons, err := kgo.NewClient(kgo.SeedBrokers(p.addrs...), kgo.ConsumeTopics(topics...),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.WithLogger(kgo.BasicLogger(tWriter{t}, kgo.LogLevelWarn, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	produce(0)
	consumeAll(t, ctx, cons, want)
	sessWaitFor(t, 30*time.Second, "incremental fetches at kfake before the move", func() bool {
		n, _ := seen.get(fetchKindIncremental)
		return n > 2
	})
	forgot0 := seen.forgot()
	gateMu.Lock()
	gate = make(chan struct{})
	gateMu.Unlock()
	for _, topic := range topics {
		for part := range int32(4) {
			if err := kc.MoveTopicPartition(topic, part, 1-kc.LeaderFor(topic, part)); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(1)
	gateMu.Lock()
	close(gate)
	gateMu.Unlock()
	consumeAll(t, ctx, cons, want)
	produce(2)
	consumeAll(t, ctx, cons, want)
	// The client reopened its session after the leadership errors
	// (kgo does), so the brokers got full fetches opening new backend
	// sessions, and incremental ones in them after.
	inc1, _ := seen.get(fetchKindIncremental)
	sessWaitFor(t, 30*time.Second, "incremental fetches at kfake after the move", func() bool {
		n, _ := seen.get(fetchKindIncremental)
		return n > inc1+2
	})
	produce(3)
	consumeAll(t, ctx, cons, want)
	inc, incParts := seen.get(fetchKindIncremental)
	full, _ := seen.get(fetchKindFull)
	t.Logf("after the moves: %d forgotten, %d incremental fetches (%d partitions), %d full", seen.forgot()-forgot0, inc, incParts, full)
}

// TestFetchSessionBackendForgets: a partition of a session moves to the
// other backend broker; once the proxy's metadata knows, its next fetch
// forgets the partition at the broker it left and adds it at the other,
// and the session reads it there.
func TestFetchSessionBackendForgets(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(4, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	// t/2's broker leads another partition too, so its backend session
	// lives on after t/2 leaves (a broker left with nothing to fetch has
	// its session dropped instead).
	from := kc.LeaderFor("t", 2)
	if kc.LeaderFor("t", 0) != from {
		if err := kc.MoveTopicPartition("t", 0, from); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	forgot := map[int32][]int32{} // broker → partitions forgotten there
	added := map[int32][]int32{}  // broker → partitions listed in incremental fetches
	kc.ControlKey(1, func(kr kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		req := kr.(*kmsg.FetchRequest)
		if req.SessionEpoch <= 0 {
			return nil, nil, false
		}
		mu.Lock()
		defer mu.Unlock()
		n := kc.CurrentNode()
		for _, ft := range req.ForgottenTopics {
			forgot[n] = append(forgot[n], ft.Partitions...)
		}
		for _, rt := range req.Topics {
			for _, p := range rt.Partitions {
				added[n] = append(added[n], p.Partition)
			}
		}
		return nil, nil, false
	})
	p := startSessProxy(t, kc, 1, Config{}, time.Minute)
	c := dialRaw(t, p.addrs[0])
	full := c.fetch(t, rawFetch(12, 0, 0, "t", [16]byte{}, 0, 1, 2, 3))
	id := full.SessionID
	if id == 0 || len(answeredParts(full)) != 4 {
		t.Fatalf("full fetch: session %d, partitions %v", id, answeredParts(full))
	}
	if err := kc.MoveTopicPartition("t", 2, 1-from); err != nil {
		t.Fatal(err)
	}
	readMovedPartition(t, kc, c, id, 1)
	mu.Lock()
	defer mu.Unlock()
	if len(forgot[from]) != 1 || forgot[from][0] != 2 {
		t.Fatalf("partitions forgotten at broker %d, which t/2 left: %v, want [2]", from, forgot[from])
	}
	if len(added[from]) != 0 {
		t.Fatalf("broker %d was sent partitions %v in incremental fetches; nothing changed for them", from, added[from])
	}
	t.Logf("forgotten: %v; listed incrementally: %v", forgot, added)
}

// TestFetchSessionBackendNarrow drives one client session's backend
// sessions by hand: what each broker is sent as the session's parts change,
// and what its answers do to the state.
func TestFetchSessionBackendNarrow(t *testing.T) {
	r := &request{c: &clientConn{s: &Server{}}}
	c := newFetchSessionCache(10, nil)
	c.backend = true
	s := c.open("p", true, nil)
	a, b := target{broker: 1}, target{broker: 2}
	idX, idY := [16]byte{1}, [16]byte{2}
	part := func(p int32, off int64) kmsg.FetchRequestTopicPartition {
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p, off, 1<<20
		return fp
	}
	sub := func(topics ...kmsg.FetchRequestTopic) *kmsg.FetchRequest {
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.SessionID, req.SessionEpoch = 13, 0, -1
		req.Topics = topics
		return req
	}
	topic := func(id [16]byte, ps ...kmsg.FetchRequestTopicPartition) kmsg.FetchRequestTopic {
		return kmsg.FetchRequestTopic{TopicID: id, Partitions: ps}
	}
	listed := func(req *kmsg.FetchRequest) (out []string) {
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				out = append(out, fmt.Sprintf("%d/%d@%d", t.TopicID[0], p.Partition, p.FetchOffset))
			}
		}
		for _, t := range req.ForgottenTopics {
			for _, p := range t.Partitions {
				out = append(out, fmt.Sprintf("-%d/%d", t.TopicID[0], p))
			}
		}
		slices.Sort(out)
		return out
	}
	answer := func(u *fetchUse, tg target, id int32, code int16) {
		resp := kmsg.NewPtrFetchResponse()
		resp.SessionID, resp.ErrorCode = id, code
		u.backendAnswer(tg, resp)
	}
	type step struct {
		name   string
		parts  map[target]*kmsg.FetchRequest
		want   map[target]string // id.epoch: listed
		answer map[target]int32  // the broker's SessionID (-1: a request error)
	}
	for _, st := range []step{
		{"opens both", map[target]*kmsg.FetchRequest{
			a: sub(topic(idX, part(0, 5), part(1, 7))),
			b: sub(topic(idY, part(0, 3))),
		}, map[target]string{a: "0.0: [1/0@5 1/1@7]", b: "0.0: [2/0@3]"}, map[target]int32{a: 11, b: 22}},
		{"nothing changed", map[target]*kmsg.FetchRequest{
			a: sub(topic(idX, part(0, 5), part(1, 7))),
			b: sub(topic(idY, part(0, 3))),
		}, map[target]string{a: "11.1: []", b: "22.1: []"}, map[target]int32{a: 11, b: 22}},
		{"an offset moves, x/1 moves to b", map[target]*kmsg.FetchRequest{
			a: sub(topic(idX, part(0, 9))),
			b: sub(topic(idX, part(1, 7)), topic(idY, part(0, 3))),
		}, map[target]string{a: "11.2: [-1/1 1/0@9]", b: "22.2: [1/1@7]"}, map[target]int32{a: 11, b: -1}},
		{"b lost its session: full again", map[target]*kmsg.FetchRequest{
			a: sub(topic(idX, part(0, 9))),
			b: sub(topic(idX, part(1, 7)), topic(idY, part(0, 3))),
		}, map[target]string{a: "11.3: []", b: "0.0: [1/1@7 2/0@3]"}, map[target]int32{a: 11, b: 0}},
		{"b had no slot: full again; a left out: dropped", map[target]*kmsg.FetchRequest{
			b: sub(topic(idX, part(0, 9), part(1, 7)), topic(idY, part(0, 3))),
		}, map[target]string{b: "0.0: [1/0@9 1/1@7 2/0@3]"}, map[target]int32{b: 33}},
		{"a again: full", map[target]*kmsg.FetchRequest{
			a: sub(topic(idX, part(0, 10))),
			b: sub(topic(idX, part(1, 8)), topic(idY, part(0, 3))),
		}, map[target]string{a: "0.0: [1/0@10]", b: "33.1: [-1/0 1/1@8]"}, nil},
	} {
		u := c.use(s, false)
		for tg, req := range st.parts {
			out := u.narrow(r, tg, req)
			if got := fmt.Sprintf("%d.%d: %v", out.SessionID, out.SessionEpoch, listed(out)); got != st.want[tg] {
				t.Fatalf("%s: broker %d sent %s, want %s", st.name, tg.broker, got, st.want[tg])
			}
			if req.SessionEpoch != -1 || len(req.ForgottenTopics) != 0 {
				t.Fatalf("%s: narrow changed the part it narrowed", st.name)
			}
		}
		for tg, id := range st.answer {
			if id < 0 {
				answer(u, tg, 0, 0) // a failed part: answered by the proxy, no session
				continue
			}
			answer(u, tg, id, 0)
		}
		s.mu.Lock()
		s.dropIdleBackends(c, u.gen)
		s.mu.Unlock()
	}
	// A request-level error from a broker ends its backend session too.
	u := c.use(s, false)
	u.narrow(r, b, sub(topic(idY, part(0, 3))))
	answer(u, b, 33, kerr.FetchSessionIDNotFound.Code)
	if s.backends[b] != nil {
		t.Fatal("a broker's FETCH_SESSION_ID_NOT_FOUND left its backend session in place")
	}
}

// TestFetchSessionBackendClosed: when a consumer closes its session
// through the proxy, the proxy closes its own session at the broker (a
// fetch with the session's id and epoch -1, no partitions), so the broker
// no longer holds it: fetching in it answers FETCH_SESSION_ID_NOT_FOUND.
// Before, the broker kept it until it evicted it, one of its session slots
// per consumer that ever came and went.
func TestFetchSessionBackendClosed(t *testing.T) {
	topics := sessTopics(5)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	var (
		mu     sync.Mutex
		closes []int32 // session ids closed at kfake
	)
	kc.ControlKey(1, func(kr kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		if req := kr.(*kmsg.FetchRequest); req.SessionEpoch == -1 && req.SessionID > 0 && len(req.Topics) == 0 {
			mu.Lock()
			closes = append(closes, req.SessionID)
			mu.Unlock()
		}
		return nil, nil, false
	})
	p := startSessProxy(t, kc, 1, Config{}, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prod := sessProducer(t, kc)
	want := map[string][]string{}
	sessTrickle(t, ctx, prod, topics, want, 0, 20)
	cons, err := kgo.NewClient(kgo.SeedBrokers(p.addrs...), kgo.ConsumeTopics(topics...), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	consumeAll(t, ctx, cons, want)
	sessWaitFor(t, 10*time.Second, "an incremental fetch at the backend", func() bool {
		return p.metric(t, "switchyard_kafka_backend_fetch_request_partitions_total", "kind", fetchKindFull) > 0
	})
	cons.Close() // franz-go ends its fetch session (epoch -1) as it closes
	sessWaitFor(t, 20*time.Second, "the proxy's session closed at kfake", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(closes) > 0
	})
	mu.Lock()
	id := closes[0]
	mu.Unlock()
	// kfake tells a session it holds (wrong epoch) from one it does not.
	direct, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.SessionID, req.SessionEpoch, req.MaxWaitMillis = -1, id, 1000, 0
	resp, err := req.RequestWith(ctx, direct)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("a fetch in the closed session %d answered %v, want FETCH_SESSION_ID_NOT_FOUND", id, kerr.ErrorForCode(resp.ErrorCode))
	}
	if got := p.metric(t, "switchyard_kafka_backend_fetch_sessions_closed_total", "result", closeSent); got < 1 {
		t.Fatalf("switchyard_kafka_backend_fetch_sessions_closed_total{result=closed} = %v, want at least 1", got)
	}
}
