package main

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

func TestBrokerFlags(t *testing.T) {
	ok := brokerConfig{listen: "0.0.0.0:9092", advertise: "broker:9092", brokers: 3, partitions: 3}
	addrs, err := ok.plan()
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 3 || addrs[2].listen != "0.0.0.0:9094" || addrs[2].advertise != "broker:9094" {
		t.Fatalf("plan: %+v", addrs)
	}
	for _, tc := range []struct {
		name string
		c    brokerConfig
		want string
	}{
		{"no brokers", brokerConfig{listen: "127.0.0.1:9092", brokers: 0, partitions: 1}, "--brokers 0"},
		{"too many", brokerConfig{listen: "127.0.0.1:9092", brokers: 17, partitions: 1}, "--brokers 17"},
		{"partitions", brokerConfig{listen: "127.0.0.1:9092", brokers: 1, partitions: 0}, "--partitions 0"},
		{"no port", brokerConfig{listen: "127.0.0.1", brokers: 1, partitions: 1}, "want HOST:PORT"},
		{"bad port", brokerConfig{listen: "127.0.0.1:x", brokers: 1, partitions: 1}, "is not 0-65535"},
		{"wildcard without advertise", brokerConfig{listen: "0.0.0.0:9092", brokers: 1, partitions: 1}, "give --advertise"},
		{"wildcard advertise", brokerConfig{listen: "0.0.0.0:9092", advertise: "0.0.0.0:9092", brokers: 1, partitions: 1}, "not every interface"},
		{"port 0 with advertise", brokerConfig{listen: "127.0.0.1:0", advertise: "127.0.0.1:9092", brokers: 2, partitions: 1}, "port 0"},
		{"past 65535", brokerConfig{listen: "127.0.0.1:65535", brokers: 2, partitions: 1}, "past 65535"},
		{"unknown release", brokerConfig{listen: "127.0.0.1:9092", brokers: 1, partitions: 1, maxVersion: "3.99"}, "--max-version \"3.99\""},
		{"not a release", brokerConfig{listen: "127.0.0.1:9092", brokers: 1, partitions: 1, maxVersion: "latest"}, "want a Kafka release"},
	} {
		if _, err := tc.c.plan(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"broker", "--listen", "0.0.0.0:9092"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "give --advertise") {
		t.Fatalf("broker with a wildcard listen: exit %d: %s", code, errb.String())
	}
}

// TestBrokerServes: `switchyard broker` on a free port takes a produce
// and serves the record back to a franz-go consumer, and stops on cancel.
func TestBrokerServes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bctx, stop := context.WithCancel(ctx)
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(bctx, []string{"broker", "--listen", "127.0.0.1:0", "--log-level", "warn"}, &out, &errb)
	}()
	re := regexp.MustCompile(`advertised as (127\.0\.0\.1:\d+)`)
	var addr string
	waitUntil(t, 20*time.Second, "the broker's address", func() bool {
		m := re.FindStringSubmatch(out.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("demo"), kgo.ConsumeTopics("demo"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	var got []string
	for len(got) == 0 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if len(got) != 1 || got[0] != "hello" {
		t.Fatalf("consumed %q", got)
	}
	stop()
	if code := <-done; code != 0 {
		t.Fatalf("broker exit %d: %s", code, errb.String())
	}
}

// TestBrokerFreePorts: `switchyard broker --brokers 3 --listen
// 127.0.0.1:0` gives each broker a free port of its own, prints them, and
// Metadata presents the three brokers at exactly those addresses.
func TestBrokerFreePorts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bctx, stop := context.WithCancel(ctx)
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(bctx, []string{"broker", "--brokers", "3", "--listen", "127.0.0.1:0", "--log-level", "warn"}, &out, &errb)
	}()
	re := regexp.MustCompile(`broker (\d): listening on \S+, advertised as (127\.0\.0\.1:\d+)`)
	var addrs map[string]string
	waitUntil(t, 20*time.Second, "three brokers' addresses", func() bool {
		addrs = map[string]string{}
		for _, m := range re.FindAllStringSubmatch(out.String(), -1) {
			addrs[m[1]] = m[2]
		}
		return len(addrs) == 3
	})
	if addrs["0"] == addrs["1"] || addrs["1"] == addrs["2"] || addrs["0"] == addrs["2"] {
		t.Fatalf("brokers share an address: %v", addrs)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs["1"]))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	got := map[string]string{}
	for _, b := range resp.Brokers {
		got[strconv.Itoa(int(b.NodeID))] = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
	}
	if len(got) != 3 || got["0"] != addrs["0"] || got["1"] != addrs["1"] || got["2"] != addrs["2"] {
		t.Fatalf("metadata presents %v, printed %v", got, addrs)
	}
	stop()
	if code := <-done; code != 0 {
		t.Fatalf("broker exit %d: %s", code, errb.String())
	}
}

// TestBrokerMaxVersion: `switchyard broker --max-version 3.0` advertises
// Produce and Fetch no newer than Kafka 3.0 does (v9 and v12), where the
// default advertises newer ones, and still serves a client.
func TestBrokerMaxVersion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	maxOf := func(args ...string) (produce, fetch int16) {
		t.Helper()
		bctx, stop := context.WithCancel(ctx)
		var out, errb syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- run(bctx, append([]string{"broker", "--listen", "127.0.0.1:0", "--log-level", "warn"}, args...), &out, &errb)
		}()
		defer func() {
			stop()
			if code := <-done; code != 0 {
				t.Errorf("broker %v exit %d: %s", args, code, errb.String())
			}
		}()
		re := regexp.MustCompile(`advertised as (127\.0\.0\.1:\d+)`)
		var addr string
		waitUntil(t, 20*time.Second, "the broker's address", func() bool {
			m := re.FindStringSubmatch(out.String())
			if m != nil {
				addr = m[1]
			}
			return m != nil
		})
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("v"))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("api versions: %v", err)
		}
		vs := kversion.FromApiVersionsResponse(resp)
		produce, _ = vs.LookupMaxKeyVersion(0)
		fetch, _ = vs.LookupMaxKeyVersion(1)
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatalf("produce with %v: %v", args, err)
		}
		return produce, fetch
	}
	if p, f := maxOf("--max-version", "3.0"); p != 9 || f != 12 {
		t.Fatalf("--max-version 3.0 advertises Produce v%d, Fetch v%d; want v9, v12", p, f)
	}
	if p, f := maxOf(); p <= 9 || f <= 12 {
		t.Fatalf("no --max-version advertises Produce v%d, Fetch v%d; want newer than 3.0's v9, v12", p, f)
	}
}
