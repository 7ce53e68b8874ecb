package chaos

// Faults combined with control-plane changes in flight (issue 14): a
// route change, a live migration and a quota change, each while a peer
// (the Raft leader) is SIGKILLed, with the verifier's clients running
// through the peers on the topic concerned.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/test/chaos/verifier"
)

// acrossRoute: what a route change may store twice, besides acrossPeers.
const acrossRoute = "a batch written to the old cluster whose answer was lost (its peer killed, or the connection bounced by the route change) is retried on the new cluster; and a batch in flight to a killed peer is retried through another (kafka/producer_ids.go)"

// TestFaultRouteChangeLeaderKilled: clusters a and b, the topic on both
// and routed to a; on b it never held a record, the harder case: a
// partition that never held a record refuses an unknown producer's first
// sequence unless it is 0 (KAFKA-15591), and librdkafka takes that refusal
// as fatal, so the peers rebase the producers' sequences on a topic two
// clusters hold (kafka/producer_ids.go pidTarget). With
// SWITCHYARD_CHAOS_SEEDED_TARGET=1, b holds 5 records per partition (not
// the verifier's) first, as a topic mirrored there ahead of a route change
// does. The Raft leader is SIGKILLed and the route is changed
// to b through another peer (which waits for the new leader), and the old
// leader is restarted 5 s after the kill. A route change moves clients,
// not data or offsets (docs/migration.md is the move that carries both),
// so the records acknowledged on a stay there and the group, whose
// positions carry over to b as numbers, does not read a's unread rest:
// the verifier reads both clusters directly (verifier.Audit) and counts a
// record lost only when it is stored on neither. Asserted besides: the
// group read records from b, i.e. it followed the topic. Measured: 0
// lost, 0 stored twice, stalls 7-12 s; the group never read 114-378
// acknowledged records (stored on b below the positions it carried over).
func TestFaultRouteChangeLeaderKilled(t *testing.T) {
	needChaos(t)
	c := startProcClusters(t, 3, "", backendSpec{name: "a"}, backendSpec{name: "b"})
	c.createTopicOn("a", faultTopic, faultPartitions)
	c.createTopicOn("b", faultTopic, faultPartitions)
	if os.Getenv("SWITCHYARD_CHAOS_SEEDED_TARGET") == "1" {
		c.seed("b", faultTopic, faultPartitions, 5)
	}
	c.mustCtl(0, 20*time.Second, "routes", "set", faultTopic, "a")
	tr := startTraffic(t, c.bootstrap(), faultTopic)
	time.Sleep(2 * time.Second)

	faultAt := time.Now()
	l := c.leader(0)
	c.kill(l)
	c.mustCtl((l+1)%len(c.peers), time.Minute, "routes", "set", faultTopic, "b")
	t.Logf("route %s → b set %v after the leader's kill", faultTopic, time.Since(faultAt).Round(100*time.Millisecond))
	time.Sleep(time.Until(faultAt.Add(5 * time.Second)))
	c.restart(l)
	steps := time.Since(faultAt)
	time.Sleep(afterFault)
	tr.stop()
	r, log := tr.check(checkOpts{peers: 3, storedTwiceOK: acrossRoute, faultAt: faultAt, steps: steps,
		audit: map[string][]string{"a": c.cluster("a").brokers, "b": c.cluster("b").brokers}})
	stored := log.StoredOn()
	onlyB := func(p string, s int64) bool {
		on := stored[verifier.Value(p, s)]
		return slices.Contains(on, "b") && !slices.Contains(on, "a")
	}
	nb := 0
	for _, on := range stored {
		if slices.Contains(on, "b") && !slices.Contains(on, "a") {
			nb++
		}
	}
	readB := log.DeliveredAny(onlyB)
	t.Logf("the group read %d of the %d records stored on b only; %d acknowledged records, stored, were never given to it (left on a, or on b below the positions the group carried over from a)", readB, nb, r.Unread)
	if nb == 0 || readB == 0 {
		t.Errorf("the group did not follow the topic to b: it read %d of the %d records stored on b only", readB, nb)
	}
}

// seed writes n records that are not the verifier's to every partition of
// topic on backend cluster name, directly.
func (c *procCluster) seed(name, topic string, partitions int32, n int) {
	c.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.cluster(name).brokers...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		c.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rs []*kgo.Record
	for p := range partitions {
		for i := range n {
			rs = append(rs, &kgo.Record{Partition: p, Value: []byte(fmt.Sprintf("mirrored record %d", i))})
		}
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		c.t.Fatalf("seed %s on %s: %v", topic, name, err)
	}
}

// migration is the part of `ctl -o json migrations get` the case reads.
type migration struct {
	State, Phase, Error string
}

// TestFaultMigrationLeaderKilled: the topic on cluster a, moved to b with
// `ctl migrations start` (docs/migration.md) while clients run; the Raft
// leader, which drives the migration, is SIGKILLed right after the start
// and restarted 5 s later, and the migration must reach `switched` (the
// new leader resumes its phase; the fence waits out the dead peer's write
// lease). Offsets stay continuous across the switch, so the group must
// get every acknowledged record, as in the other cases. Measured: 0 lost,
// 0 stored twice, switched 7-8 s after the start, producers stalled 12-17
// s.
func TestFaultMigrationLeaderKilled(t *testing.T) {
	needChaos(t)
	c := startProcClusters(t, 3, "", backendSpec{name: "a"}, backendSpec{name: "b"})
	c.createTopicOn("a", faultTopic, faultPartitions)
	tr := startTraffic(t, c.bootstrap(), faultTopic)
	time.Sleep(2 * time.Second)

	faultAt := time.Now()
	l := c.leader(0)
	via := (l + 1) % len(c.peers)
	c.mustCtl(via, 20*time.Second, "migrations", "start", faultTopic, "--to", "b")
	c.kill(l)
	var m migration
	if out, err := c.ctl(via, "-o", "json", "migrations", "get", faultTopic); err == nil && json.Unmarshal([]byte(out), &m) == nil {
		t.Logf("the leader killed with the migration %s, phase %s (as %s has it)", m.State, m.Phase, c.peers[via].Name)
	}
	time.Sleep(5 * time.Second)
	c.restart(l)
	waitFor(t, 2*time.Minute, "the migration switched", func() error {
		out, err := c.ctl(via, "-o", "json", "migrations", "get", faultTopic)
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if m.State == "failed" || m.State == "aborted" {
			t.Fatalf("migration %s: %s", m.State, m.Error)
		}
		if m.State != "switched" {
			return fmt.Errorf("state %s, phase %s", m.State, m.Phase)
		}
		return nil
	})
	steps := time.Since(faultAt)
	t.Logf("migration switched (phase %s) %v after its start", m.Phase, steps.Round(100*time.Millisecond))
	time.Sleep(afterFault)
	tr.stop()
	tr.check(checkOpts{peers: 3, storedTwiceOK: acrossPeers, faultAt: faultAt, steps: steps})
}

// quotaRate is the produce quota the quota case sets: under a third of
// what the two producers write (200 records/s in batches of one or a few:
// a 5 KB/s quota let 144 records/s through, so about 7 KB/s).
const quotaRate = "2KB"

// TestFaultQuotaLeaderKilled: a produce quota well below the producers'
// rate set on the topic, the Raft leader (which allocates the quota's
// shares to the peers, quota/DESIGN.md) SIGKILLed 3 s later and
// restarted 5 s after that, the quota removed 3 s later. Throttled
// producers fall behind and catch up once it is lifted: nothing may be
// lost or fail. The acknowledgement rate under the quota is reported,
// not asserted. Measured: 62-70 records/s acknowledged under the quota
// (200 offered), 0 lost, 0 stored twice.
func TestFaultQuotaLeaderKilled(t *testing.T) {
	needChaos(t)
	c := startProcCluster(t, 3, "")
	c.createTopic(faultTopic, faultPartitions)
	tr := startTraffic(t, c.bootstrap(), faultTopic)
	time.Sleep(2 * time.Second)

	faultAt := time.Now()
	c.mustCtl(0, 20*time.Second, "quotas", "set", faultTopic, "--produce", quotaRate)
	set := time.Now()
	acks0, _ := tr.log.Counts()
	time.Sleep(3 * time.Second)
	l := c.leader(0)
	c.kill(l)
	time.Sleep(5 * time.Second)
	c.restart(l)
	time.Sleep(3 * time.Second)
	c.mustCtl((l+1)%len(c.peers), time.Minute, "quotas", "delete", faultTopic)
	acks1, _ := tr.log.Counts()
	window := time.Since(set)
	t.Logf("under the %s/s quota for %v: %.0f acknowledgements/s (offered %d/s)", quotaRate, window.Round(100*time.Millisecond),
		float64(acks1-acks0)/window.Seconds(), 2*faultRate)
	steps := time.Since(faultAt)
	time.Sleep(afterFault)
	tr.stop()
	tr.check(checkOpts{peers: 3, faultAt: faultAt, steps: steps})
}
