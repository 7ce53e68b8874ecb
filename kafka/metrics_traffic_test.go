package kafka

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// startMeteredProxy is startProxy with the metrics given (and so readable
// by the test).
func startMeteredProxy(t *testing.T, kc *kfake.Cluster, name string, m *Metrics) (*Backend, string) {
	t.Helper()
	be := newTestBackend(t, BackendConfig{Name: name, Bootstrap: kc.ListenAddrs(), MetadataRefresh: time.Minute, Metrics: m})
	view := &benchView{}
	srv := listenServer(t, Config{}, view, m, be)
	addr := srv.Addr().String()
	// Loopback clients are in region dc-local (the client region label);
	// the peer's own region is dc-a.
	view.st = &fsm.State{
		Clusters: []fsm.Cluster{{Name: name, Bootstrap: kc.ListenAddrs()}},
		Routes:   fsm.Routes{DefaultCluster: name},
		Peers:    []fsm.Peer{{ID: 0, Name: "peer-0", KafkaAddr: addr, Region: "dc-a"}},
		Regions:  []fsm.Region{{Name: "dc-local", Networks: []string{"127.0.0.0/8"}}},
	}
	serveServer(t, srv, be)
	return be, addr
}

func waitMetric(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTrafficMetrics drives franz-go clients through the proxy to kfake
// and reads every new data-plane series from the registry: records per
// topic from batch headers, error codes per topic, per-client bytes,
// requests and connections with the cap's "(other)" bucket, and the
// backend broker's latency, connection errors and up/down.
func TestTrafficMetrics(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t1"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	// The first produce answer carries NOT_LEADER_FOR_PARTITION; the
	// client retries and the second goes through.
	var once sync.Once
	kc.ControlKey(0, func(req kmsg.Request) (kmsg.Response, error, bool) {
		handled := false
		var resp kmsg.Response
		once.Do(func() {
			pr := req.(*kmsg.ProduceRequest)
			r := pr.ResponseKind().(*kmsg.ProduceResponse)
			for _, tp := range pr.Topics {
				rt := kmsg.NewProduceResponseTopic()
				rt.Topic, rt.TopicID = tp.Topic, tp.TopicID
				for _, p := range tp.Partitions {
					rp := kmsg.NewProduceResponseTopicPartition()
					rp.Partition = p.Partition
					rp.ErrorCode = kerr.NotLeaderForPartition.Code
					rt.Partitions = append(rt.Partitions, rp)
				}
				r.Topics = append(r.Topics, rt)
			}
			resp, handled = r, true
		})
		if !handled {
			kc.KeepControl()
		}
		return resp, nil, handled
	})
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, 0)
	m.SetMaxClientSeries(2)
	be, addr := startMeteredProxy(t, kc, "c1", m)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	client := func(id string, opts ...kgo.Opt) *kgo.Client {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ClientID(id), kgo.DefaultProduceTopic("t1")}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	// 10 records in one batch (linger holds them together), then 5 more.
	prod := client("app-a", kgo.ProducerLinger(50*time.Millisecond))
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Value: []byte("v" + strconv.Itoa(i))})
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	for i := range 5 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("w" + strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	records := func(dir string) float64 {
		return gatherMetric(t, reg, "switchyard_kafka_topic_records_total", "topic", "t1", "cluster", "c1", "direction", dir)
	}
	// Records sent: the refused batch of 10 counts again when retried.
	if got := records("produce"); got != 25 {
		t.Errorf("produced records = %v, want 25 (10, their retry, 5)", got)
	}
	// Produce requests naming t1: the batch of 10, its retry, then 5.
	if got := gatherMetric(t, reg, "switchyard_kafka_topic_requests_total", "topic", "t1", "cluster", "c1", "direction", "produce"); got != 7 {
		t.Errorf("produce requests naming t1 = %v, want 7", got)
	}
	if got := gatherMetric(t, reg, "switchyard_kafka_topic_errors_total", "topic", "t1", "cluster", "c1", "code", "NOT_LEADER_OR_FOLLOWER"); got != 1 {
		t.Errorf("topic errors NOT_LEADER_OR_FOLLOWER = %v, want 1", got)
	}

	cons := client("app-b", kgo.ConsumeTopics("t1"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := 0
	for seen < 15 {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of 15: %v", seen, err)
		}
		seen += len(fs.Records())
	}
	waitMetric(t, "15 fetched records", func() bool { return records("fetch") >= 15 })
	if got := gatherMetric(t, reg, "switchyard_kafka_topic_requests_total", "topic", "t1", "cluster", "c1", "direction", "fetch"); got < 1 {
		t.Errorf("fetch answers carrying t1 = %v, want at least 1", got)
	}

	// The cap is 2 pairs: a third client id is counted as "(other)".
	third := client("app-c")
	if err := third.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	anon := AnonymousPrincipal
	for _, id := range []string{"app-a", "app-b"} {
		if got := gatherMetric(t, reg, "switchyard_kafka_client_requests_total", "client_id", id, "principal", anon, "family", FamilyIPv4, "region", "dc-local"); got == 0 {
			t.Errorf("requests of %s from ipv4 in region dc-local = 0", id)
		}
		in := gatherMetric(t, reg, "switchyard_kafka_client_bytes_total", "client_id", id, "principal", anon, "direction", "in")
		waitMetric(t, id+" response bytes", func() bool {
			return gatherMetric(t, reg, "switchyard_kafka_client_bytes_total", "client_id", id, "principal", anon, "direction", "out") > 0
		})
		if in == 0 {
			t.Errorf("request bytes of %s = 0", id)
		}
	}
	if got := gatherMetric(t, reg, "switchyard_kafka_client_requests_total", "client_id", OtherClient, "principal", OtherClient, "family", OtherClient, "region", OtherClient); got == 0 {
		t.Errorf("requests of (other) = 0: the third client was not capped")
	}
	if n := seriesCount(t, reg, "switchyard_kafka_client_requests_total"); n != 3 {
		t.Errorf("client request series = %d, want 3 (two pairs and (other))", n)
	}
	if got := gatherMetric(t, reg, "switchyard_kafka_client_connections", "principal", anon, "family", FamilyIPv4, "region", "dc-local"); got < 3 {
		t.Errorf("open anonymous connections = %v, want at least 3", got)
	}
	prod.Close()
	cons.Close()
	third.Close()
	waitMetric(t, "connections closed", func() bool {
		return gatherMetric(t, reg, "switchyard_kafka_client_connections", "principal", anon) == 0
	})

	broker := kc.ListenAddrs()[0]
	if n := gatherMetric(t, reg, "switchyard_backend_request_seconds", "cluster", "c1", "broker", broker); n <= 0 {
		t.Errorf("no backend latency observed for %s", broker)
	}
	if got := gatherMetric(t, reg, "switchyard_backend_broker_up", "cluster", "c1", "broker", broker); got != 1 {
		t.Errorf("broker_up = %v, want 1", got)
	}
	errs := func() float64 {
		return gatherMetric(t, reg, "switchyard_backend_connection_errors_total", "cluster", "c1", "broker", broker)
	}
	if got := errs(); got != 0 {
		t.Errorf("connection errors before the broker stops = %v", got)
	}
	// The broker stops: the next refresh fails, the broker is marked
	// suspect (down) and its errors counted.
	kc.Close()
	be.TriggerRefresh()
	waitMetric(t, "the broker down", func() bool {
		return gatherMetric(t, reg, "switchyard_backend_broker_up", "cluster", "c1", "broker", broker) == 0 && errs() > 0
	})
}

// seriesCount counts the series of name.
func seriesCount(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// TestRecordCount: records from batch headers; control batches and a
// truncated tail do not count.
func TestRecordCount(t *testing.T) {
	batch := func(records int32, control bool) []byte {
		b := make([]byte, batchHeaderLen+3)
		be32put(b[batchLengthOff:], uint32(len(b)-batchLengthOff-4))
		b[batchMagicOff] = 2
		if control {
			b[batchAttrOff+1] = 0x20
		}
		be32put(b[57:], uint32(records))
		return b
	}
	var all []byte
	all = append(all, batch(3, false)...)
	all = append(all, batch(1, true)...)
	all = append(all, batch(4, false)...)
	for _, c := range []struct {
		name string
		b    []byte
		want int
	}{
		{"empty", nil, 0},
		{"batches", all, 7},
		{"truncated tail", append(append([]byte{}, all...), batch(9, false)[:20]...), 7},
		{"negative count", batch(-5, false), 0},
		{"short header", batch(2, false)[:40], 0},
	} {
		if got := recordCount(c.b); got != c.want {
			t.Errorf("%s: %d records, want %d", c.name, got, c.want)
		}
	}
}

func be32put(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

// FuzzRecordCount: any bytes, no panic and a count that is not negative.
func FuzzRecordCount(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 70))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n := recordCount(b); n < 0 {
			t.Fatalf("count %d", n)
		}
	})
}

// TestClientFamily: the family label of each kind of client address.
func TestClientFamily(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	for _, c := range []struct {
		name string
		nc   net.Conn
		want string
	}{
		{"ipv4", fakeAddrConn{c1, &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 1}}, FamilyIPv4},
		{"ipv4-mapped ipv6", fakeAddrConn{c1, &net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 1}}, FamilyIPv4},
		{"ipv6", fakeAddrConn{c1, &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}}, FamilyIPv6},
		{"unix", fakeAddrConn{c1, &net.UnixAddr{Name: "/run/kafka.sock", Net: "unix"}}, FamilyUnix},
		{"in-process", InternalConn(c1), FamilyInproc},
		{"pipe", c1, FamilyInproc},
	} {
		if got := addrFamily(c.nc, remoteIP(c.nc)); got != c.want {
			t.Errorf("%s: family %q, want %q", c.name, got, c.want)
		}
	}
}

// TestClientSeriesCap: the cap counts (client id, principal, family,
// region) tuples, so the same client id from two regions takes two series,
// and every tuple past the cap shares the one "(other)" series.
func TestClientSeriesCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, 0)
	m.SetMaxClientSeries(2)
	id := "app"
	a := m.client(&id, AnonymousPrincipal, FamilyIPv4, "dc1")
	b := m.client(&id, AnonymousPrincipal, FamilyIPv4, "dc2")
	if a == b {
		t.Fatal("two regions share one series")
	}
	c := m.client(&id, AnonymousPrincipal, FamilyIPv6, "dc1")
	d := m.client(nil, "User:bob", FamilyUnix, "")
	if c != d {
		t.Error("tuples past the cap do not share the (other) series")
	}
	c.requests.Inc()
	if got := gatherMetric(t, reg, "switchyard_kafka_client_requests_total", "client_id", OtherClient, "principal", OtherClient, "family", OtherClient, "region", OtherClient); got != 1 {
		t.Errorf("(other) requests = %v, want 1", got)
	}
	if n := seriesCount(t, reg, "switchyard_kafka_client_requests_total"); n != 3 {
		t.Errorf("client request series = %d, want 3 (two tuples and (other))", n)
	}
	g1 := m.connGauge(AnonymousPrincipal, FamilyIPv4, "dc1")
	g2 := m.connGauge(AnonymousPrincipal, FamilyIPv4, "dc2")
	g3 := m.connGauge(AnonymousPrincipal, FamilyIPv6, "dc1")
	if g1 == g2 || g3 != m.connGauge("User:bob", FamilyUnix, "dc9") {
		t.Error("connection gauge: tuples not kept apart below the cap or not shared past it")
	}
}

// TestClientMetricsAuthenticated: over a SASL listener, a connection's
// series move to its principal once it authenticates (the requests before
// it, ApiVersions and the handshake, are the anonymous principal's), and
// leave the connection gauge when it closes.
func TestClientMetricsAuthenticated(t *testing.T) {
	p := startSecureProxy(t, Security{SASLMechanisms: []string{MechScramSHA512}},
		testUser(t, "alice", "alice-secret", fsm.SASLScramSHA512))
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr), kgo.ClientID("alice-app"), kgo.SASL(scramMech("alice", "alice-secret", true)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	const alice = "User:alice"
	if got := gatherMetric(t, p.reg, "switchyard_kafka_client_connections", "principal", alice); got < 1 {
		t.Errorf("alice's open connections = %v, want at least 1", got)
	}
	if got := gatherMetric(t, p.reg, "switchyard_kafka_client_connections", "principal", AnonymousPrincipal); got > 0 {
		t.Errorf("anonymous open connections = %v after authentication, want 0", got)
	}
	if got := gatherMetric(t, p.reg, "switchyard_kafka_client_requests_total", "client_id", "alice-app", "principal", alice); got <= 0 {
		t.Errorf("alice-app's authenticated requests = %v", got)
	}
	if got := gatherMetric(t, p.reg, "switchyard_kafka_client_requests_total", "client_id", "alice-app", "principal", AnonymousPrincipal); got <= 0 {
		t.Errorf("alice-app's requests before authenticating = %v, want some (ApiVersions, SaslHandshake)", got)
	}
	cl.Close()
	waitMetric(t, "alice's connections closed", func() bool {
		return gatherMetric(t, p.reg, "switchyard_kafka_client_connections", "principal", alice) == 0
	})
}
