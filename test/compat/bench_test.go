package compat

// Figures for metadata sharing, measured (never asserted):
//
//	go test -run '^$' -bench MergedMetadata -benchtime 20x ./test/compat/

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/sandbox"
)

// BenchmarkMergedMetadata: an all-topics Metadata request for 10,000
// topics × 12 partitions across two clusters (5,000 on each), through one
// peer, against the same requests sent straight to both clusters at once
// (what the proxy itself waits for) in the same run. ms/op is through the
// proxy, direct-ms is the slower of the two direct answers, added-ms the
// difference: the proxy's own merge (decode, filter, present, encode).
func BenchmarkMergedMetadata(b *testing.B) {
	const perCluster, partitions = 5000, 12
	seed := func(prefix string) kfake.Opt {
		names := make([]string, perCluster)
		for i := range names {
			names[i] = fmt.Sprintf("%s%05d", prefix, i)
		}
		return kfake.SeedTopics(partitions, names...)
	}
	sb := startSandboxWith(b, sandbox.Config{
		Clusters: []sandbox.ClusterSpec{
			{Name: "east", Brokers: 1, KfakeOpts: []kfake.Opt{seed("e-")}},
			{Name: "west", Brokers: 1, KfakeOpts: []kfake.Opt{seed("west.")}},
		},
		Setup: []fsm.Command{&fsm.PutPrefixRoute{Prefix: "west.", Cluster: "west"}},
		Peers: 1,
		// The production default: the peer's own full refresh must not
		// run every second beside the measured requests.
		MetadataRefresh: 10 * time.Second,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ask := func(addr string, want int) time.Duration {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = nil
		if _, err := req.RequestWith(ctx, cl); err != nil { // warm the connection
			b.Fatal(err)
		}
		start := time.Now()
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(resp.Topics); n < want {
			b.Fatalf("metadata lists %d topics, want %d", n, want)
		}
		return time.Since(start)
	}
	both := func() time.Duration {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var slowest time.Duration
		for _, name := range []string{"east", "west"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := ask(sb.Backends[name].ListenAddrs()[0], perCluster)
				mu.Lock()
				slowest = max(slowest, d)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return slowest
	}
	var proxy, direct time.Duration
	b.ResetTimer()
	for range b.N {
		proxy += ask(sb.Bootstrap[0], 2*perCluster)
		direct += both()
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(proxy), "ms/op")
	b.ReportMetric(ms(direct), "direct-ms")
	b.ReportMetric(ms(proxy-direct), "added-ms")
	b.ReportMetric(0, "ns/op")
}
