package compat

// Topic ids across two clusters: the keys that name topics by id
// (OffsetCommit and OffsetFetch v10, DescribeTopicPartitions) through the
// proxy with franz-go, against east and west (multicluster_test.go). Every
// id a client sees is the proxy's virtual one, each cluster receives its
// own, and a route change keeps the id the client knows.

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/sandbox"
)

// proxyClient is a franz-go client and admin client on the proxy.
func proxyClient(t *testing.T, sb *sandbox.Sandbox) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

// wantVersionsAtLeast fails unless every peer advertises key at v or more.
func wantVersionsAtLeast(t *testing.T, ctx context.Context, adm *kadm.Client, key int16, v int16) {
	t.Helper()
	vs, err := adm.ApiVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range vs {
		if b.Err != nil {
			t.Fatalf("ApiVersions from peer %d: %v", b.NodeID, b.Err)
		}
		if _, hi, ok := b.KeyVersions(key); !ok || hi < v {
			t.Fatalf("peer %d advertises %s up to v%d (advertised: %v), want v%d", b.NodeID, kmsg.NameForKey(key), hi, ok, v)
		}
	}
}

// virtualIDs is every topic's id as the proxy's Metadata shows it.
func virtualIDs(t *testing.T, ctx context.Context, adm *kadm.Client, topics ...string) map[string][16]byte {
	t.Helper()
	td, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][16]byte{}
	for _, d := range td {
		if d.Err != nil {
			t.Fatalf("metadata for %s: %v", d.Topic, d.Err)
		}
		out[d.Topic] = d.ID
	}
	return out
}

// TestOffsetsByTopicIDAcrossClusters: a franz-go group consumer over a
// topic on each cluster commits with OffsetCommit v10 (topic ids only)
// through the proxy; each cluster holds the offsets of its own topic
// (checked directly), and kadm reads them back through the proxy. Raw v10
// commits and fetches naming topics only by their virtual ids commit and
// read on the right cluster and answer with the same ids.
func TestOffsetsByTopicIDAcrossClusters(t *testing.T) {
	sb := startTwoClusters(t)
	const east, west, group = "ids-east", "west.ids", "ids-group"
	const n = 1200
	createTopic(t, sb.Bootstrap, east, 3)
	createTopic(t, sb.Bootstrap, west, 3)
	produceFranz(t, sb.Bootstrap, east, 0, n)
	produceFranz(t, sb.Bootstrap, west, n, 2*n)

	cl, adm := proxyClient(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	wantVersionsAtLeast(t, ctx, adm, 8, 10)
	wantVersionsAtLeast(t, ctx, adm, 9, 10)

	recs := consumeGroupTopics(t, sb, []string{east, west}, group, 2, 2*n)
	checkConsumed(t, recs, 2*n)
	waitCommittedOn(t, sb, "east", east, group)
	waitCommittedOn(t, sb, "west", west, group)

	// kadm through the proxy: every partition's offset is the end offset,
	// as each cluster has it.
	fetched, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	for cluster, topic := range map[string]string{"east": east, "west": west} {
		_, dadm := directTo(t, sb, cluster)
		ends, err := dadm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		ends.Each(func(o kadm.ListedOffset) {
			c, ok := fetched.Lookup(topic, o.Partition)
			if !ok || c.Err != nil || c.At != o.Offset {
				t.Fatalf("%s/%d through the proxy: %+v (found %v), want %d", topic, o.Partition, c, ok, o.Offset)
			}
		})
	}

	// Raw v10: commit offset 7 for partition 1 of each topic by virtual id
	// only, then read it back by id.
	ids := virtualIDs(t, ctx, adm, east, west)
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group, commit.Generation = "ids-raw", -1
	for _, topic := range []string{east, west} {
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.TopicID = ids[topic]
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 1, 7
		rt.Partitions = append(rt.Partitions, rp)
		commit.Topics = append(commit.Topics, rt)
	}
	unknown := kmsg.NewOffsetCommitRequestTopic()
	unknown.TopicID = [16]byte{0xde, 0xad}
	unknown.Partitions = []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1, LeaderEpoch: -1}}
	commit.Topics = append(commit.Topics, unknown)
	var cresp *kmsg.OffsetCommitResponse
	waitFor(t, 30*time.Second, "a raw v10 commit", func() bool {
		kr, err := cl.Request(ctx, commit)
		if err != nil {
			t.Logf("raw commit: %v", err)
			return false
		}
		cresp = kr.(*kmsg.OffsetCommitResponse)
		// A coordinator still loading answers a retriable error.
		for _, rt := range cresp.Topics {
			for _, p := range rt.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && kerr.IsRetriable(err) && rt.TopicID != unknown.TopicID {
					t.Logf("raw commit: %x/%d: %v", rt.TopicID, p.Partition, err)
					return false
				}
			}
		}
		return true
	})
	if cresp.Version < 10 {
		t.Fatalf("commit went out at v%d, want v10", cresp.Version)
	}
	codes := map[[16]byte]int16{}
	for _, rt := range cresp.Topics {
		for _, p := range rt.Partitions {
			codes[rt.TopicID] = p.ErrorCode
		}
	}
	if len(codes) != 3 || codes[ids[east]] != 0 || codes[ids[west]] != 0 || codes[unknown.TopicID] != kerr.UnknownTopicID.Code {
		t.Fatalf("commit answered %v, want 0 for %x and %x, UNKNOWN_TOPIC_ID for the unknown id", codes, ids[east], ids[west])
	}
	for cluster, topic := range map[string]string{"east": east, "west": west} {
		_, dadm := directTo(t, sb, cluster)
		got, err := dadm.FetchOffsetsForTopics(ctx, "ids-raw", topic)
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := got.Lookup(topic, 1); !ok || o.At != 7 {
			t.Fatalf("%s on %s directly: %+v (found %v), want offset 7", topic, cluster, o, ok)
		}
	}

	fetch := kmsg.NewPtrOffsetFetchRequest()
	g := kmsg.NewOffsetFetchRequestGroup()
	g.Group = "ids-raw"
	for _, topic := range []string{east, west} {
		g.Topics = append(g.Topics, kmsg.OffsetFetchRequestGroupTopic{TopicID: ids[topic], Partitions: []int32{1}})
	}
	fetch.Groups = []kmsg.OffsetFetchRequestGroup{g}
	kr, err := cl.Request(ctx, fetch)
	if err != nil {
		t.Fatal(err)
	}
	fresp := kr.(*kmsg.OffsetFetchResponse)
	if fresp.Version < 10 || len(fresp.Groups) != 1 || fresp.Groups[0].ErrorCode != 0 {
		t.Fatalf("fetch v%d answered %+v", fresp.Version, fresp.Groups)
	}
	offsets := map[[16]byte]int64{}
	for _, rt := range fresp.Groups[0].Topics {
		for _, p := range rt.Partitions {
			if p.ErrorCode != 0 {
				t.Fatalf("fetch %x/%d: %v", rt.TopicID, p.Partition, kerr.ErrorForCode(p.ErrorCode))
			}
			offsets[rt.TopicID] = p.Offset
		}
	}
	if len(offsets) != 2 || offsets[ids[east]] != 7 || offsets[ids[west]] != 7 {
		t.Fatalf("fetched %v, want offset 7 under %x and %x", offsets, ids[east], ids[west])
	}
}

// describePage is one DescribeTopicPartitions page from peer.
func describePage(t *testing.T, ctx context.Context, cl *kgo.Client, peer int32, req *kmsg.DescribeTopicPartitionsRequest) *kmsg.DescribeTopicPartitionsResponse {
	t.Helper()
	kr, err := cl.Broker(int(peer)).Request(ctx, req)
	if err != nil {
		t.Fatalf("DescribeTopicPartitions from peer %d: %v", peer, err)
	}
	return kr.(*kmsg.DescribeTopicPartitionsResponse)
}

// describeEvery pages through DescribeTopicPartitions for topics (none:
// all) with limit partitions a page, each page from the next peer, and
// returns every partition described ("topic/partition" → leader) and each
// topic's id, failing on anything described twice.
func describeEvery(t *testing.T, ctx context.Context, cl *kgo.Client, peers []int32, topics []string, limit int32) (map[string]int32, map[string][16]byte, int) {
	t.Helper()
	req := kmsg.NewPtrDescribeTopicPartitionsRequest()
	req.ResponsePartitionLimit = limit
	for _, topic := range topics {
		req.Topics = append(req.Topics, kmsg.DescribeTopicPartitionsRequestTopic{Topic: topic})
	}
	leaders, ids := map[string]int32{}, map[string][16]byte{}
	for page := 0; page < 1000; page++ {
		resp := describePage(t, ctx, cl, peers[page%len(peers)], req)
		n := 0
		for _, rt := range resp.Topics {
			if rt.Topic == nil || rt.ErrorCode != 0 {
				t.Fatalf("page %d: topic %v: %v", page, rt.Topic, kerr.ErrorForCode(rt.ErrorCode))
			}
			ids[*rt.Topic] = rt.TopicID
			for _, p := range rt.Partitions {
				k := fmt.Sprintf("%s/%d", *rt.Topic, p.Partition)
				if _, dup := leaders[k]; dup {
					t.Fatalf("page %d: %s described twice", page, k)
				}
				leaders[k] = p.LeaderID
				n++
			}
		}
		if int32(n) > limit {
			t.Fatalf("page %d: %d partitions, limit %d", page, n, limit)
		}
		if resp.NextCursor == nil {
			return leaders, ids, page + 1
		}
		req.Cursor = &kmsg.DescribeTopicPartitionsRequestCursor{Topic: resp.NextCursor.Topic, Partition: resp.NextCursor.Partition}
	}
	t.Fatal("DescribeTopicPartitions never reached its last page")
	return nil, nil, 0
}

// metadataLeaders is what the proxy's Metadata says of topics (none: all):
// "topic/partition" → leader, and each topic's id.
func metadataLeaders(t *testing.T, ctx context.Context, adm *kadm.Client, topics ...string) (map[string]int32, map[string][16]byte) {
	t.Helper()
	td, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	leaders, ids := map[string]int32{}, map[string][16]byte{}
	for _, d := range td {
		ids[d.Topic] = d.ID
		for _, p := range d.Partitions {
			leaders[fmt.Sprintf("%s/%d", d.Topic, p.Partition)] = p.Leader
		}
	}
	return leaders, ids
}

// TestDescribeTopicPartitionsAcrossClusters: raw DescribeTopicPartitions
// through the proxy, over topics on both clusters, paged with small
// partition limits and each page asked of another peer: every partition
// is described exactly once, with the leaders and virtual ids the proxy's
// Metadata gives, whether all topics or a list are asked for.
func TestDescribeTopicPartitionsAcrossClusters(t *testing.T) {
	sb := startTwoClusters(t)
	topics := map[string]int32{"dtp-a": 3, "dtp-c": 1, "west.dtp-b": 4, "west.dtp-d": 2, "dtp-e": 5}
	for topic, parts := range topics {
		createTopic(t, sb.Bootstrap, topic, parts)
	}
	cl, adm := proxyClient(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	wantVersionsAtLeast(t, ctx, adm, 75, 0)
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	peers := brokers.NodeIDs()
	if len(peers) < 2 {
		t.Fatalf("peers %v, want several", peers)
	}

	wantLeaders, wantIDs := metadataLeaders(t, ctx, adm)
	for _, limit := range []int32{1, 2, 3, 1000} {
		leaders, ids, pages := describeEvery(t, ctx, cl, peers, nil, limit)
		if len(leaders) != len(wantLeaders) {
			t.Fatalf("limit %d: described %d partitions, metadata lists %d: %v vs %v", limit, len(leaders), len(wantLeaders), leaders, wantLeaders)
		}
		for k, l := range wantLeaders {
			if got, ok := leaders[k]; !ok || got != l {
				t.Fatalf("limit %d: %s leader %d (described %v), metadata says %d", limit, k, got, ok, l)
			}
		}
		for topic, id := range wantIDs {
			if ids[topic] != id {
				t.Fatalf("limit %d: %s id %x, metadata says %x", limit, topic, ids[topic], id)
			}
		}
		if limit == 1 && pages < len(wantLeaders) {
			t.Fatalf("limit 1: %d pages for %d partitions", pages, len(wantLeaders))
		}
	}

	listed := []string{"west.dtp-d", "dtp-e", "dtp-a", "west.dtp-b"}
	wantLeaders, _ = metadataLeaders(t, ctx, adm, listed...)
	leaders, _, _ := describeEvery(t, ctx, cl, peers, listed, 2)
	if len(leaders) != 5+3+4+2 || len(leaders) != len(wantLeaders) {
		t.Fatalf("listed topics: described %v, metadata %v", leaders, wantLeaders)
	}
	for k, l := range wantLeaders {
		if leaders[k] != l {
			t.Fatalf("listed topics: %s leader %d, metadata says %d", k, leaders[k], l)
		}
	}
}

// TestTopicIDSurvivesRouteChange: a topic on both clusters, re-pointed
// from east to west, keeps the id clients know in Metadata and
// DescribeTopicPartitions, and a commit by that id lands on west after
// the move (the connection's one bounce retried).
func TestTopicIDSurvivesRouteChange(t *testing.T) {
	sb := startTwoClusters(t)
	const topic = "ids-moving"
	onBothClusters(t, sb, topic)
	cl, adm := proxyClient(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	before := virtualIDs(t, ctx, adm, topic)[topic]
	dtp := kmsg.NewPtrDescribeTopicPartitionsRequest()
	dtp.ResponsePartitionLimit = 100
	dtp.Topics = []kmsg.DescribeTopicPartitionsRequestTopic{{Topic: topic}}
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	peer := brokers.NodeIDs()[0]
	if d := describePage(t, ctx, cl, peer, dtp); len(d.Topics) != 1 || d.Topics[0].TopicID != before {
		t.Fatalf("DescribeTopicPartitions before the move: %+v, want id %x", d.Topics, before)
	}

	if _, err := sb.Apply(ctx, &fsm.PutRoute{Topic: topic, Cluster: "west"}); err != nil {
		t.Fatal(err)
	}
	// Every peer applies the route; then the id must not have moved.
	_, west := directTo(t, sb, "west")
	westTopics, err := west.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	westID := westTopics[topic].ID
	waitFor(t, 30*time.Second, "every peer to route the topic west", func() bool {
		for _, p := range brokers.NodeIDs() {
			req := kmsg.NewPtrDescribeTopicPartitionsRequest()
			req.ResponsePartitionLimit = 100
			req.Topics = dtp.Topics
			d := describePage(t, ctx, cl, p, req)
			if len(d.Topics) != 1 || len(d.Topics[0].Partitions) != 3 {
				return false
			}
			if d.Topics[0].TopicID != before {
				t.Fatalf("peer %d: id %x after the move, was %x", p, d.Topics[0].TopicID, before)
			}
		}
		return true
	})
	if after := virtualIDs(t, ctx, adm, topic)[topic]; after != before {
		t.Fatalf("Metadata id %x after the move, was %x", after, before)
	}
	if before == [16]byte(westID) {
		t.Fatalf("west's own id %x reached the client", westID)
	}

	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group, commit.Generation = "ids-moving-group", -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.TopicID = before
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = 2, 11
	rt.Partitions = append(rt.Partitions, rp)
	commit.Topics = append(commit.Topics, rt)
	waitFor(t, 30*time.Second, "a commit by id after the move", func() bool {
		kr, err := cl.Request(ctx, commit)
		if err != nil {
			return false
		}
		resp := kr.(*kmsg.OffsetCommitResponse)
		return len(resp.Topics) == 1 && resp.Topics[0].TopicID == before &&
			len(resp.Topics[0].Partitions) == 1 && resp.Topics[0].Partitions[0].ErrorCode == 0
	})
	got, err := west.FetchOffsetsForTopics(ctx, "ids-moving-group", topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := got.Lookup(topic, 2); !ok || o.At != 11 {
		t.Fatalf("west directly: %+v (found %v), want offset 11", o, ok)
	}
	if !slices.Contains(topicsOn(t, west), topic) {
		t.Fatal("the topic left west")
	}
}
