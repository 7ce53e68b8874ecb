package kafka

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// digestAt encodes m at version v and digests it.
func digestAt(t *testing.T, m *kmsg.MetadataResponse, v int16) uint64 {
	t.Helper()
	m.Version = v
	body := m.AppendTo(nil)
	d, ok := metadataDigest(body, v)
	if !ok {
		t.Fatalf("v%d: an answer kmsg encoded did not parse", v)
	}
	return d
}

// digestFixture is fxMetadata with a third topic of many partitions.
func digestFixture() *kmsg.MetadataResponse {
	m := fxMetadata()
	big := kmsg.NewMetadataResponseTopic()
	big.Topic = kmsg.StringPtr("big")
	big.TopicID = [16]byte{9, 9, 9}
	for p := range int32(40) {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition, mp.Leader, mp.LeaderEpoch = p, 100+p%5, p
		mp.Replicas, mp.ISR = []int32{100 + p%5, 100 + (p+1)%5}, []int32{100 + p%5}
		big.Partitions = append(big.Partitions, mp)
	}
	m.Topics = append(m.Topics, big)
	return m
}

// TestMetadataDigestIgnoresOrder: at every version the digest walks, the
// same metadata listed in another order of brokers, topics and partitions
// digests the same, and a change to any field that matters digests
// differently.
func TestMetadataDigestIgnoresOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for v := int16(1); v <= 13; v++ {
		want := digestAt(t, digestFixture(), v)
		for range 5 {
			m := digestFixture()
			rng.Shuffle(len(m.Brokers), func(i, j int) { m.Brokers[i], m.Brokers[j] = m.Brokers[j], m.Brokers[i] })
			rng.Shuffle(len(m.Topics), func(i, j int) { m.Topics[i], m.Topics[j] = m.Topics[j], m.Topics[i] })
			for _, tp := range m.Topics {
				rng.Shuffle(len(tp.Partitions), func(i, j int) { tp.Partitions[i], tp.Partitions[j] = tp.Partitions[j], tp.Partitions[i] })
			}
			if got := digestAt(t, m, v); got != want {
				t.Fatalf("v%d: reordered answer digests %x, want %x", v, got, want)
			}
		}
		changes := map[string]func(m *kmsg.MetadataResponse){
			"a leader":            func(m *kmsg.MetadataResponse) { m.Topics[2].Partitions[7].Leader++ },
			"an in-sync replica":  func(m *kmsg.MetadataResponse) { m.Topics[2].Partitions[7].ISR = m.Topics[2].Partitions[7].Replicas },
			"a replica":           func(m *kmsg.MetadataResponse) { m.Topics[0].Partitions[1].Replicas[0] = 104 },
			"a partition error":   func(m *kmsg.MetadataResponse) { m.Topics[0].Partitions[0].ErrorCode = 5 },
			"a partition dropped": func(m *kmsg.MetadataResponse) { m.Topics[2].Partitions = m.Topics[2].Partitions[1:] },
			"a topic dropped":     func(m *kmsg.MetadataResponse) { m.Topics = m.Topics[:2] },
			"a topic renamed":     func(m *kmsg.MetadataResponse) { m.Topics[1].Topic = kmsg.StringPtr("events2") },
			"a topic error":       func(m *kmsg.MetadataResponse) { m.Topics[1].ErrorCode = 3 },
			"a broker's port":     func(m *kmsg.MetadataResponse) { m.Brokers[2].Port++ },
			"a broker dropped":    func(m *kmsg.MetadataResponse) { m.Brokers = m.Brokers[1:] },
			"the controller":      func(m *kmsg.MetadataResponse) { m.ControllerID = 104 },
			"partitions swapped between topics": func(m *kmsg.MetadataResponse) {
				m.Topics[0].Partitions[0], m.Topics[2].Partitions[0] = m.Topics[2].Partitions[0], m.Topics[0].Partitions[0]
			},
		}
		if v >= 2 {
			changes["the cluster id"] = func(m *kmsg.MetadataResponse) { m.ClusterID = kmsg.StringPtr("other") }
		}
		if v >= 7 {
			changes["a leader epoch"] = func(m *kmsg.MetadataResponse) { m.Topics[2].Partitions[3].LeaderEpoch++ }
		}
		if v >= 10 {
			changes["a topic id"] = func(m *kmsg.MetadataResponse) { m.Topics[2].TopicID[5] = 1 }
		}
		for what, change := range changes {
			m := digestFixture()
			change(m)
			if got := digestAt(t, m, v); got == want {
				t.Errorf("v%d: %s changed, the digest did not", v, what)
			}
		}
	}
	if _, ok := metadataDigest(digestFixture().AppendTo(nil), 0); ok {
		t.Error("v0 digested: it is not walked")
	}
}

// FuzzMetadataDigest: the walk never panics, and every body kmsg decodes
// and encodes back to the same bytes is digested.
func FuzzMetadataDigest(f *testing.F) {
	for v := int16(1); v <= 13; v++ {
		m := digestFixture()
		m.Version = v
		f.Add(m.AppendTo(nil), v)
	}
	f.Add([]byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f}, int16(9))
	f.Fuzz(func(t *testing.T, body []byte, v int16) {
		_, ok := metadataDigest(body, v)
		if v < 1 || v > 13 {
			if ok {
				t.Fatalf("v%d digested", v)
			}
			return
		}
		m := kmsg.NewPtrMetadataResponse()
		m.Version = v
		if m.ReadFrom(body) != nil {
			return
		}
		if string(m.AppendTo(nil)) == string(body) && !ok {
			t.Fatalf("v%d: a canonical body kmsg decodes was not digested: %x", v, body)
		}
	})
}

// TestRefreshSkipsUnchangedMetadata: against a real cluster, a refresh
// whose answer is the snapshot's keeps the snapshot (not decoded) and
// makes it fresh again after a TriggerRefresh; a new topic, and an answer
// applied from elsewhere in between, make the next refresh decode.
func TestRefreshSkipsUnchangedMetadata(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, "a", "b", "c", "d"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	be, _ := startProxy(t, kc, BackendConfig{Name: "digest"})
	select {
	case <-be.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("backend not ready")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	refreshes := func(result string) float64 { return counterValue(be.metrics.metadataRefreshes(result)) }

	first := be.snap.Load()
	if first == nil || !first.hasDigest {
		t.Fatalf("snapshot after the first refresh: %+v", first)
	}
	// kfake lists topics and partitions in map order: the same metadata
	// arrives in other orders, and must still count as unchanged.
	for i := range 5 {
		be.TriggerRefresh()
		if be.freshSnapshot() != nil {
			t.Fatal("snapshot fresh right after TriggerRefresh")
		}
		if err := be.refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if s := be.snap.Load(); s != first {
			t.Fatalf("refresh %d: the snapshot was replaced although the metadata did not change", i)
		}
		if be.freshSnapshot() != first {
			t.Fatalf("refresh %d: the kept snapshot is not fresh", i)
		}
	}
	// The backend's own loop refreshes on TriggerRefresh too.
	if n := refreshes("unchanged"); n < 5 {
		t.Fatalf("%v refreshes counted unchanged, want at least 5", n)
	}

	// A topic created behind the proxy's back: decoded, and known.
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 1, nil, "e"); err != nil {
		t.Fatal(err)
	}
	decoded := refreshes("decoded")
	if err := be.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if be.snap.Load() == first || !be.knows("e") || refreshes("decoded") < decoded+1 {
		t.Fatalf("after a topic was created: snapshot kept %v, topic known %v", be.snap.Load() == first, be.knows("e"))
	}

	// An answer applied from elsewhere (a client's Metadata) between two
	// refreshes: the next one decodes although its answer is the same.
	second := be.snap.Load()
	one := kmsg.NewPtrMetadataResponse()
	be.updateMetadata(one, false)
	if err := be.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if be.snap.Load() == second {
		t.Fatal("an update applied in between did not make the refresh decode")
	}

	// An answer applied while the refresh's own request is out (here a
	// client's that found topic "a" unknown, as a lagging broker would
	// say): the refresh's answer digests the same as the snapshot's, but
	// it is applied after all, so "a" is known again.
	if err := be.refresh(ctx); err != nil { // a snapshot to skip against
		t.Fatal(err)
	}
	gone := kmsg.NewPtrMetadataResponse()
	ga := kmsg.NewMetadataResponseTopic()
	ga.Topic, ga.ErrorCode = kmsg.StringPtr("a"), kerr.UnknownTopicOrPartition.Code
	gone.Topics = append(gone.Topics, ga)
	kc.ControlKey(int16(kmsg.Metadata), func(kmsg.Request) (kmsg.Response, error, bool) {
		kc.DropControl()
		be.updateMetadata(gone, false)
		return nil, nil, false
	})
	if be.knows("a") == false {
		t.Fatal("topic a unknown before the refresh")
	}
	unchanged := refreshes("unchanged")
	if err := be.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if !be.knows("a") {
		t.Fatal("an answer applied during the refresh left topic a forgotten: the refresh skipped its own answer")
	}
	if refreshes("unchanged") != unchanged {
		t.Fatal("the refresh counted as unchanged although it had to apply its answer")
	}
}
