package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// startParkingProxy is one peer over a kfake cluster with topic t, its
// idle connections parked after park (and closed after maxIdle, 0: the
// default). It returns the server, its address and a stop function that
// ends Serve and waits for it (the test's cleanup does too).
func startParkingProxy(t *testing.T, park, maxIdle time.Duration) (*Server, string, func()) {
	t.Helper()
	return startParkingProxyLimits(t, Limits{ParkIdleAfter: park, ConnectionsMaxIdle: maxIdle})
}

// startParkingProxyLimits is startParkingProxy with the limits given.
func startParkingProxyLimits(t *testing.T, l Limits) (*Server, string, func()) {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	be := newTestBackend(t, BackendConfig{Name: "k", Bootstrap: kc.ListenAddrs(), MetadataRefresh: time.Second})
	view := &benchView{}
	srv := listenServer(t, Config{Limits: l}, view, nil, be)
	view.st = &fsm.State{
		Clusters: []fsm.Cluster{{Name: "k", Bootstrap: kc.ListenAddrs()}},
		Routes:   fsm.Routes{DefaultCluster: "k"},
		Peers:    []fsm.Peer{{ID: 0, Name: "peer-0", KafkaAddr: srv.Addr().String()}},
	}
	stop := serveServer(t, srv, be)
	waitReady(t, be)
	return srv, srv.Addr().String(), stop
}

// metricValue reads a gauge or counter.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Gauge != nil {
		return d.GetGauge().GetValue()
	}
	return d.GetCounter().GetValue()
}

// waitGauge waits until f reports want, failing the test after 30 s.
func waitGauge(t *testing.T, what string, f func() float64, want float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for f() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s is %v, want %v", what, f(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestParkedConnectionResumes: a connection silent past ParkIdleAfter is
// parked (no reader goroutine), and its next request is answered as if
// nothing had happened, on the same connection, many times over; the
// connection keeps its state (a Metadata of the topic it asked before).
func TestParkedConnectionResumes(t *testing.T) {
	srv, addr, _ := startParkingProxy(t, 100*time.Millisecond, 0)
	parked := func() float64 { return metricValue(srv.metrics.parked) }
	c := dialRaw(t, addr)
	ask := func() {
		t.Helper()
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("t")}}
		resp, err := c.do(req, 30*time.Second)
		if err != nil {
			t.Fatalf("metadata on a parked connection: %v", err)
		}
		if m := resp.(*kmsg.MetadataResponse); len(m.Topics) != 1 || m.Topics[0].ErrorCode != 0 {
			t.Fatalf("metadata answer %+v", m.Topics)
		}
	}
	ask()
	before := runtime.NumGoroutine()
	for range 5 {
		waitGauge(t, "parked connections", parked, 1)
		ask() // wakes it: answered on the same connection
	}
	waitGauge(t, "parked connections", parked, 1)
	if n := runtime.NumGoroutine(); n >= before {
		t.Logf("goroutines %d parked vs %d before parking (other goroutines come and go)", n, before)
	}
	if got := metricValue(srv.metrics.connections); got != 1 {
		t.Fatalf("%v connections open, want 1", got)
	}
}

// TestParkedConnectionClosedByClient: a client that closes a parked
// connection has it closed and forgotten at the proxy (the parker wakes
// it, its reader reads the end).
func TestParkedConnectionClosedByClient(t *testing.T) {
	srv, addr, _ := startParkingProxy(t, 100*time.Millisecond, 0)
	c := dialRaw(t, addr)
	if _, err := c.do(kmsg.NewPtrApiVersionsRequest(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	waitGauge(t, "parked connections", func() float64 { return metricValue(srv.metrics.parked) }, 1)
	c.nc.Close()
	waitGauge(t, "open connections", func() float64 { return metricValue(srv.metrics.connections) }, 0)
	waitGauge(t, "parked connections", func() float64 { return metricValue(srv.metrics.parked) }, 0)
	srv.mu.Lock()
	n := len(srv.conns)
	srv.mu.Unlock()
	if n != 0 {
		t.Fatalf("the server still tracks %d connections", n)
	}
}

// TestParkedConnectionIdleLimit: a parked connection is still closed when
// ConnectionsMaxIdle passes with no request, as an unparked one is.
func TestParkedConnectionIdleLimit(t *testing.T) {
	srv, addr, _ := startParkingProxy(t, 100*time.Millisecond, 1500*time.Millisecond)
	c := dialRaw(t, addr)
	if _, err := c.do(kmsg.NewPtrApiVersionsRequest(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	waitGauge(t, "parked connections", func() float64 { return metricValue(srv.metrics.parked) }, 1)
	c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	var b [1]byte
	if _, err := c.br.Read(b[:]); !errors.Is(err, io.EOF) {
		t.Fatalf("read on a parked idle connection: %v, want the proxy's close (EOF)", err)
	}
	waitGauge(t, "connections closed as idle", func() float64 { return metricValue(srv.metrics.closedConns.WithLabelValues("idle")) }, 1)
}

// TestServerStopsWithParkedConnections: Serve returns, every connection
// closed, while some are parked; and a client keeps producing and
// consuming through a connection that parks between its bursts.
func TestServerStopsWithParkedConnections(t *testing.T) {
	srv, addr, stop := startParkingProxy(t, 100*time.Millisecond, 0)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("t"), kgo.ConsumeTopics("t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := 0
	for i := range 3 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		for got <= i {
			fs := cl.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				t.Fatalf("fetch: %v", err)
			}
			got += fs.NumRecords()
		}
		// Idle between bursts: wait until one of its connections parks.
		waitGauge(t, "parked connections", func() float64 { return min(metricValue(srv.metrics.parked), 1) }, 1)
	}
	for range 3 {
		dialRaw(t, addr).do(kmsg.NewPtrApiVersionsRequest(), 30*time.Second)
	}
	waitGauge(t, "parked connections at least 3", func() float64 { return min(metricValue(srv.metrics.parked), 3) }, 3)
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return with connections parked")
	}
	if got := metricValue(srv.metrics.connections); got != 0 {
		t.Fatalf("%v connections open after Serve returned", got)
	}
}

// TestIdleWait: how long a silent connection's reader waits before it
// decides again, for each mix of idle limit and parking; 0 (no deadline
// at all) only when neither applies, as after a failed park with no idle
// limit, where a deadline of now would spin the reader.
func TestIdleWait(t *testing.T) {
	s := &Server{cfg: Config{Limits: Limits{ConnectionsMaxIdle: time.Minute, ParkIdleAfter: 10 * time.Second}}, parker: &parker{}}
	c := &clientConn{s: s, nc: &net.TCPConn{}}
	for _, tc := range []struct {
		name   string
		idle   time.Duration
		noPark bool
		since  time.Duration
		want   time.Duration
	}{
		{"park first", time.Minute, false, 0, 10 * time.Second},
		{"park soon", time.Minute, false, 9 * time.Second, time.Second},
		{"past park (a request in flight)", time.Minute, false, 30 * time.Second, time.Second},
		{"no parking: the idle limit", time.Minute, true, 20 * time.Second, 40 * time.Second},
		{"no idle limit: parking", -1, false, 0, 10 * time.Second},
		{"neither", -1, true, 0, 0},
	} {
		s.cfg.ConnectionsMaxIdle, c.noPark = tc.idle, tc.noPark
		if got := c.idleWait(tc.since); got != tc.want {
			t.Errorf("%s: idleWait(%v) = %v, want %v", tc.name, tc.since, got, tc.want)
		}
	}
}

// TestParkedConnectionClosesIdleUpstreams: a client's connections that
// stay parked past UpstreamIdleClose close their backend connections
// (their readers end with them), and the client's next requests dial them
// again: produce and consume go on, every record read once.
func TestParkedConnectionClosesIdleUpstreams(t *testing.T) {
	srv, addr, _ := startParkingProxyLimits(t, Limits{ParkIdleAfter: 100 * time.Millisecond, UpstreamIdleClose: 500 * time.Millisecond})
	closed := func() float64 { return metricValue(srv.metrics.upstreamsClosedIdle) }
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("t"), kgo.ConsumeTopics("t"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []string
	for i := range 3 {
		v := fmt.Sprintf("r-%d", i)
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		for len(got) <= i {
			fs := cl.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				t.Fatalf("fetch: %v", err)
			}
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		if i < 2 {
			// The producing connection parks and then closes its backend
			// connection; the next round dials it again.
			want := closed() + 1
			waitGauge(t, "backend connections closed as idle", func() float64 { return min(closed(), want) }, want)
		}
	}
	if want := []string{"r-0", "r-1", "r-2"}; !slices.Equal(got, want) {
		t.Fatalf("records %v, want %v", got, want)
	}
	if n := metricValue(srv.metrics.upstreamDialErrors); n != 0 {
		t.Fatalf("%v backend dials failed", n)
	}
}
