package compat

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/switchyard-proxy/switchyard/sandbox"
)

// TestApiVersionsFollowOlderBackend puts the peers in front of a backend
// capped at Kafka 2.8's versions: the proxy advertises no more than both
// the backend and kmsg support, leaves out keys it does not serve, and
// clients negotiate down and work.
func TestApiVersionsFollowOlderBackend(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	backend := kversion.V2_8_0()
	sb := startSandboxWith(t, sandbox.Config{KfakeOpts: []kfake.Opt{kfake.MaxVersions(backend)}})

	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	kresp, err := cl.Request(ctx, kmsg.NewPtrApiVersionsRequest())
	if err != nil {
		t.Fatal(err)
	}
	resp := kresp.(*kmsg.ApiVersionsResponse)
	got := map[int16]kmsg.ApiVersionsResponseApiKey{}
	for _, k := range resp.ApiKeys {
		got[k.ApiKey] = k
		bmax, ok := backend.LookupMaxKeyVersion(k.ApiKey)
		if k.ApiKey == 18 {
			continue // ApiVersions is the proxy's own
		}
		if !ok {
			t.Errorf("key %d (%s) advertised but the backend lacks it", k.ApiKey, kmsg.NameForKey(k.ApiKey))
			continue
		}
		if k.MaxVersion > bmax || k.MaxVersion > kmsg.RequestForKey(k.ApiKey).MaxVersion() {
			t.Errorf("%s advertised up to v%d; backend v%d, kmsg v%d", kmsg.NameForKey(k.ApiKey), k.MaxVersion, bmax, kmsg.RequestForKey(k.ApiKey).MaxVersion())
		}
	}
	// Kafka 2.8 speaks Produce v9 and Fetch v12; the proxy must say so.
	if p := got[0]; p.MaxVersion != 9 {
		t.Errorf("Produce max v%d, want v9", p.MaxVersion)
	}
	if f := got[1]; f.MaxVersion != 12 {
		t.Errorf("Fetch max v%d, want v12", f.MaxVersion)
	}
	for _, k := range []int16{4, 5, 6, 7, 27} { // broker-to-broker keys
		if _, ok := got[k]; ok {
			t.Errorf("broker-internal key %s advertised", kmsg.NameForKey(k))
		}
	}

	// Real clients negotiate down through the proxy and work.
	const topic = "old-backend"
	createTopic(t, sb.Bootstrap[:1], topic, 3)
	produceFranz(t, sb.Bootstrap[:1], topic, 0, 1000)
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0 // newer than the backend: must negotiate down
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	c, err := sarama.NewConsumer(sb.Bootstrap[1:2], cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, adm := direct(t, sb)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for p := int32(0); p < 3; p++ {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		end, _ := ends.Lookup(topic, p)
		for next := int64(0); next < end.Offset; {
			select {
			case m := <-pc.Messages():
				n++
				next = m.Offset + 1
			case <-ctx.Done():
				t.Fatalf("sarama consume partition %d: %v", p, ctx.Err())
			}
		}
		pc.Close()
	}
	if n != 1000 {
		t.Fatalf("sarama read %d records through the proxy, want 1000", n)
	}
}
