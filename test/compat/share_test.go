package compat

// Share groups (KIP-932) through the proxy with franz-go's share consumer.
// Where one peer presents all three brokers, every ShareFetch and
// ShareAcknowledge the client sends fans out to three backend share
// sessions (kafka/share_sessions.go): the path with the most to get
// wrong.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/sandbox"
)

// shareConsumer is a franz-go share-group member through bootstrap.
func shareConsumer(t *testing.T, bootstrap []string, topic, group string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap...),
		kgo.ShareGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.FetchMaxWait(time.Second),
	)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// shareTally counts, per record value, how often it was delivered and
// accepted.
type shareTally struct {
	mu        sync.Mutex
	delivered map[string]int
	accepted  map[string]int
	by        map[string]int // accepted per consumer
}

func newShareTally() *shareTally {
	return &shareTally{delivered: map[string]int{}, accepted: map[string]int{}, by: map[string]int{}}
}

func (s *shareTally) acceptedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accepted)
}

// consumeShare polls cl until ctx ends, acknowledging each record with
// decide's answer.
func consumeShare(ctx context.Context, t *testing.T, cl *kgo.Client, name string, tally *shareTally, decide func(value string, delivery int) kgo.AckStatus) {
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(topic string, p int32, err error) {
			if ctx.Err() == nil {
				t.Logf("%s: fetch error %s/%d: %v", name, topic, p, err)
			}
		})
		for _, r := range fs.Records() {
			v := string(r.Value)
			tally.mu.Lock()
			tally.delivered[v]++
			st := decide(v, tally.delivered[v])
			if st == kgo.AckAccept {
				tally.accepted[v]++
				tally.by[name]++
			}
			tally.mu.Unlock()
			r.Ack(st)
		}
		if err := cl.FlushAcks(ctx); err != nil && ctx.Err() == nil {
			t.Logf("%s: flush acks: %v", name, err)
		}
	}
}

// checkAcceptedOnce verifies every record 0..n-1 was accepted exactly once.
func checkAcceptedOnce(t *testing.T, tally *shareTally, n int) {
	t.Helper()
	tally.mu.Lock()
	defer tally.mu.Unlock()
	if len(tally.accepted) != n {
		t.Errorf("accepted %d distinct records, want %d", len(tally.accepted), n)
	}
	for i := range n {
		v := recordValue(i)
		if c := tally.accepted[v]; c != 1 {
			t.Errorf("record %s accepted %d times, want once", v, c)
			return
		}
	}
}

// startShareSandbox starts three brokers behind peers peers, with group
// reading from the earliest offset.
func startShareSandbox(t *testing.T, peers int, group string) *sandbox.Sandbox {
	sb := startSandboxWith(t, sandbox.Config{Brokers: 3, Peers: peers})
	// Share groups start at the latest offset by default; the records
	// are produced before the consumers start.
	sb.Backend.SetGroupConfigs(group, map[string]string{"share.auto.offset.reset": "earliest"})
	return sb
}

// TestFranzGoShareGroupAcceptRelease: one share consumer through the
// proxy accepts every record once, except that it releases each
// even-numbered record the first time it sees it: those must be
// delivered again (with a higher delivery count) and then accepted, and
// no record may be accepted twice. The group's share offsets then reach
// each partition's end, as the proxy's DescribeShareGroupOffsets and
// kadm's DescribeShareGroups (whose assignments name topics by virtual
// id) report.
func TestFranzGoShareGroupAcceptRelease(t *testing.T) {
	const topic, group, n = "share-accept", "share-accept-g", 2000
	sb := startShareSandbox(t, 1, group)
	createTopic(t, sb.Bootstrap, topic, numPartitions)
	produceFranz(t, sb.Bootstrap, topic, 0, n)

	cl := shareConsumer(t, sb.Bootstrap, topic, group)
	tally := newShareTally()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		consumeShare(ctx, t, cl, "c1", tally, func(v string, delivery int) kgo.AckStatus {
			i, _ := strconv.Atoi(v)
			if i%2 == 0 && delivery == 1 {
				return kgo.AckRelease
			}
			return kgo.AckAccept
		})
	}()
	waitFor(t, 90*time.Second, "every record accepted", func() bool { return tally.acceptedCount() == n })

	// The share group as operators see it, while its member is live.
	adm := kadm.NewClient(cl)
	actx, acancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer acancel()
	var assigned int
	waitFor(t, 30*time.Second, "the share group described with its assignment", func() bool {
		gs, err := adm.DescribeShareGroups(actx, group)
		if err != nil || gs.Error() != nil {
			return false
		}
		assigned = len(gs.AssignedPartitions()[topic])
		return assigned == numPartitions
	})
	cancel()
	<-done
	cl.Close()

	checkAcceptedOnce(t, tally, n)
	tally.mu.Lock()
	for i := 0; i < n; i += 2 {
		if d := tally.delivered[recordValue(i)]; d < 2 {
			t.Errorf("released record %d delivered %d times, want again after its release", i, d)
			break
		}
	}
	tally.mu.Unlock()

	// Every record acknowledged: the share-partition start offsets reach
	// the end offsets.
	_, dadm := direct(t, sb)
	ends, err := dadm.ListEndOffsets(actx, topic)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newProxyClient(t, sb)
	waitFor(t, 30*time.Second, "share offsets at the end offsets", func() bool {
		offs, err := describeShareOffsets(actx, proxy, group, topic)
		if err != nil {
			return false
		}
		ok := true
		ends.Each(func(o kadm.ListedOffset) {
			if offs[o.Partition] != o.Offset {
				ok = false
			}
		})
		return ok
	})
}

// TestFranzGoShareGroupTwoConsumers: two members of one share group share
// the partitions: between them every record is accepted exactly once.
// Here each broker has its own peer, each consumer bootstraps on another,
// and each share session maps to one backend broker: the path of the
// normal deployment.
func TestFranzGoShareGroupTwoConsumers(t *testing.T) {
	const topic, group, n = "share-two", "share-two-g", 3000
	sb := startShareSandbox(t, 3, group)
	createTopic(t, sb.Bootstrap, topic, numPartitions)

	tally := newShareTally()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var cls []*kgo.Client
	for i := range 2 {
		cl := shareConsumer(t, sb.Bootstrap[i:i+1], topic, group)
		cls = append(cls, cl)
		wg.Add(1)
		go func() {
			defer wg.Done()
			consumeShare(ctx, t, cl, fmt.Sprintf("c%d", i), tally, func(string, int) kgo.AckStatus { return kgo.AckAccept })
		}()
	}
	// Both members hold partitions (as kadm describes the group through
	// the proxy) before anything is produced, so both get records.
	adm := kadm.NewClient(newProxyClient(t, sb))
	actx, acancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer acancel()
	waitFor(t, 60*time.Second, "both members assigned partitions", func() bool {
		gs, err := adm.DescribeShareGroups(actx, group)
		if err != nil || gs.Error() != nil || len(gs[group].Members) != 2 {
			return false
		}
		for _, m := range gs[group].Members {
			if len(m.Assignment[topic]) == 0 {
				return false
			}
		}
		return true
	})
	produceFranz(t, sb.Bootstrap, topic, 0, n)
	waitFor(t, 90*time.Second, "every record accepted", func() bool { return tally.acceptedCount() == n })
	cancel()
	wg.Wait()
	var cw sync.WaitGroup
	for _, cl := range cls {
		cw.Add(1)
		go func() { defer cw.Done(); cl.Close() }()
	}
	cw.Wait()
	checkAcceptedOnce(t, tally, n)
	if tally.by["c0"] == 0 || tally.by["c1"] == 0 {
		t.Errorf("accepted per consumer %v: both members hold partitions, both should get records", tally.by)
	}
}

// TestShareGroupOffsetAdmin: DescribeShareGroupOffsets,
// AlterShareGroupOffsets and DeleteShareGroupOffsets through the proxy,
// as kmsg requests, on a group with no live member.
func TestShareGroupOffsetAdmin(t *testing.T) {
	const topic, group, n = "share-admin", "share-admin-g", 300
	sb := startShareSandbox(t, 1, group)
	createTopic(t, sb.Bootstrap, topic, 3)
	produceFranz(t, sb.Bootstrap, topic, 0, n)

	// Initialise the group's share partitions: consume everything once.
	cl := shareConsumer(t, sb.Bootstrap, topic, group)
	tally := newShareTally()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		consumeShare(ctx, t, cl, "c1", tally, func(string, int) kgo.AckStatus { return kgo.AckAccept })
	}()
	waitFor(t, 60*time.Second, "every record accepted", func() bool { return tally.acceptedCount() == n })
	cancel()
	<-done
	cl.Close()

	proxy := newProxyClient(t, sb)
	actx, acancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer acancel()

	// The topic id in the answers is the virtual one the proxy's metadata
	// gives, never the backend's.
	md := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	md.Topics = append(md.Topics, mt)
	mresp, err := md.RequestWith(actx, proxy)
	if err != nil || len(mresp.Topics) != 1 {
		t.Fatalf("metadata: %v", err)
	}
	vid := mresp.Topics[0].TopicID

	// Alter needs the group empty: wait for the member's leave.
	alter := kmsg.NewPtrAlterShareGroupOffsetsRequest()
	alter.GroupID = group
	at := kmsg.NewAlterShareGroupOffsetsRequestTopic()
	at.Topic = topic
	for p := range int32(3) {
		ap := kmsg.NewAlterShareGroupOffsetsRequestTopicPartition()
		ap.Partition, ap.StartOffset = p, 0
		at.Partitions = append(at.Partitions, ap)
	}
	alter.Topics = append(alter.Topics, at)
	waitFor(t, 30*time.Second, "AlterShareGroupOffsets accepted", func() bool {
		resp, err := alter.RequestWith(actx, proxy)
		if err != nil || resp.ErrorCode != 0 || len(resp.Topics) != 1 {
			if resp != nil {
				t.Logf("alter: %v", kerr.ErrorForCode(resp.ErrorCode))
			}
			return false
		}
		if resp.Topics[0].TopicID != vid {
			t.Fatalf("alter answer topic id %x, want the virtual %x", resp.Topics[0].TopicID, vid)
		}
		for _, p := range resp.Topics[0].Partitions {
			if p.ErrorCode != 0 {
				t.Logf("alter partition %d: %v", p.Partition, kerr.ErrorForCode(p.ErrorCode))
				return false
			}
		}
		return true
	})
	offs, err := describeShareOffsets(actx, proxy, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		if offs[p] != 0 {
			t.Errorf("partition %d share start offset %d after altering to 0", p, offs[p])
		}
	}

	del := kmsg.NewPtrDeleteShareGroupOffsetsRequest()
	del.GroupID = group
	dt := kmsg.NewDeleteShareGroupOffsetsRequestTopic()
	dt.Topic = topic
	del.Topics = append(del.Topics, dt)
	dresp, err := del.RequestWith(actx, proxy)
	if err != nil {
		t.Fatal(err)
	}
	if dresp.ErrorCode != 0 || len(dresp.Topics) != 1 || dresp.Topics[0].ErrorCode != 0 {
		t.Fatalf("delete share group offsets: %+v", dresp)
	}
	if dresp.Topics[0].TopicID != vid {
		t.Errorf("delete answer topic id %x, want the virtual %x", dresp.Topics[0].TopicID, vid)
	}
	offs, err = describeShareOffsets(actx, proxy, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	for p, o := range offs {
		if o != -1 {
			t.Errorf("partition %d share start offset %d after deleting the group's offsets, want -1", p, o)
		}
	}
}

// newProxyClient is a plain franz-go client through the proxy.
func newProxyClient(t *testing.T, sb *sandbox.Sandbox) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// describeShareOffsets asks the proxy for group's share start offsets on
// topic, by partition; it checks the answer names the topic by its
// virtual id (the proxy's metadata's).
func describeShareOffsets(ctx context.Context, cl *kgo.Client, group, topic string) (map[int32]int64, error) {
	req := kmsg.NewPtrDescribeShareGroupOffsetsRequest()
	g := kmsg.NewDescribeShareGroupOffsetsRequestGroup()
	g.GroupID = group
	gt := kmsg.NewDescribeShareGroupOffsetsRequestGroupTopic()
	gt.Topic = topic
	for p := range int32(numPartitions) {
		gt.Partitions = append(gt.Partitions, p)
	}
	g.Topics = append(g.Topics, gt)
	req.Groups = append(req.Groups, g)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, rg := range resp.Groups {
		if err := kerr.ErrorForCode(rg.ErrorCode); err != nil {
			return nil, fmt.Errorf("group %s: %w", rg.GroupID, err)
		}
		for _, rt := range rg.Topics {
			for _, p := range rt.Partitions {
				if p.ErrorCode == 0 {
					out[p.Partition] = p.StartOffset
				}
			}
		}
	}
	return out, nil
}

// TestFranzGoShareGroupHomeCluster: with two clusters, a share group whose
// home is west (a group route) consumes a west topic through the proxy,
// every record accepted once; a share group at home on east subscribing
// to that west topic is refused with INVALID_REQUEST and a message, as
// one coordinator cannot assign another cluster's partitions.
func TestFranzGoShareGroupHomeCluster(t *testing.T) {
	const topic, group, n = westPrefix + "shared", westPrefix + "sg", 1000
	sb := startTwoClusters(t, &fsm.PutGroupRoute{Prefix: westPrefix, Cluster: "west"})
	sb.Backends["west"].SetGroupConfigs(group, map[string]string{"share.auto.offset.reset": "earliest"})
	createTopic(t, sb.Bootstrap, topic, numPartitions)
	produceFranz(t, sb.Bootstrap, topic, 0, n)

	cl := shareConsumer(t, sb.Bootstrap, topic, group)
	tally := newShareTally()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		consumeShare(ctx, t, cl, "c1", tally, func(string, int) kgo.AckStatus { return kgo.AckAccept })
	}()
	waitFor(t, 90*time.Second, "every record accepted", func() bool { return tally.acceptedCount() == n })
	cancel()
	<-done
	cl.Close()
	checkAcceptedOnce(t, tally, n)

	proxy := newProxyClient(t, sb)
	hb := kmsg.NewPtrShareGroupHeartbeatRequest()
	hb.GroupID, hb.MemberID, hb.MemberEpoch = "east-sg", "member-1", 0
	hb.SubscribedTopicNames = []string{topic}
	actx, acancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer acancel()
	resp, err := hb.RequestWith(actx, proxy)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.InvalidRequest.Code || resp.ErrorMessage == nil || !strings.Contains(*resp.ErrorMessage, topic) {
		t.Errorf("spanning share group heartbeat: error %v, message %v; want INVALID_REQUEST naming %s", kerr.ErrorForCode(resp.ErrorCode), resp.ErrorMessage, topic)
	}
}
