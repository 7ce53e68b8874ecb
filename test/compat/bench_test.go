package compat

// Figures for metadata sharing, measured (never asserted):
//
//	go test -run '^$' -bench MergedMetadata -benchtime 20x ./test/compat/

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/sandbox"
)

// BenchmarkMergedMetadata: Metadata across two clusters through one peer,
// against the same requests sent straight to both clusters at once (what
// the proxy would wait for if it asked them) in the same run. topics=N is
// the total over both clusters, 12 partitions each; "all" asks for every
// topic, "one" for one topic by name (its cost must not depend on N).
// ms/op is through the proxy, direct-ms the slower of the direct answers,
// ratio their quotient, and backend-reqs/op the Metadata requests the
// backends received per client request through the proxy (counted at
// kfake, so exact: 0 when the peer answers from its snapshot; the
// periodic refresh, every 10 s, is counted too when it falls in the run).
func BenchmarkMergedMetadata(b *testing.B) {
	for _, total := range []int{10, 10000} {
		b.Run(fmt.Sprintf("topics=%d", total), func(b *testing.B) { benchMergedMetadata(b, total/2) })
	}
}

func benchMergedMetadata(b *testing.B, perCluster int) {
	const partitions = 12
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
	var backendReqs atomic.Int64
	for _, kc := range sb.Backends {
		kc.ControlKey(3, func(kmsg.Request) (kmsg.Response, error, bool) {
			kc.KeepControl()
			backendReqs.Add(1)
			return nil, nil, false
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	client := func(addr string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(cl.Close)
		return cl
	}
	proxyCl := client(sb.Bootstrap[0])
	directCl := map[string]*kgo.Client{"east": client(sb.Backends["east"].ListenAddrs()[0]), "west": client(sb.Backends["west"].ListenAddrs()[0])}
	oneOf := map[string]string{"east": "e-00000", "west": "west.00000"}
	ask := func(cl *kgo.Client, topic string, want int) time.Duration {
		req := kmsg.NewPtrMetadataRequest()
		if topic != "" {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(topic)
			req.Topics = append(req.Topics, rt)
		}
		start := time.Now()
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		if n := len(resp.Topics); n < want {
			b.Fatalf("metadata lists %d topics, want %d", n, want)
		}
		return d
	}
	both := func(one bool) time.Duration {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var slowest time.Duration
		for _, name := range []string{"east", "west"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				topic, want := "", perCluster
				if one {
					topic, want = oneOf[name], 1
				}
				d := ask(directCl[name], topic, want)
				mu.Lock()
				slowest = max(slowest, d)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return slowest
	}
	for _, mode := range []string{"all", "one"} {
		one := mode == "one"
		topic, want := "", 2*perCluster
		if one {
			topic, want = oneOf["west"], 1
		}
		// Warm the connections (and the peer's blocks for this version).
		ask(proxyCl, topic, want)
		both(one)
		b.Run(mode, func(b *testing.B) {
			var proxy, direct time.Duration
			var reqs int64
			for range b.N {
				before := backendReqs.Load()
				proxy += ask(proxyCl, topic, want)
				reqs += backendReqs.Load() - before
				direct += both(one)
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(ms(proxy), "ms/op")
			b.ReportMetric(ms(direct), "direct-ms")
			b.ReportMetric(float64(proxy)/float64(max(direct, 1)), "ratio")
			b.ReportMetric(float64(reqs)/float64(b.N), "backend-reqs/op")
			b.ReportMetric(0, "ns/op")
		})
	}
}
