package compat

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// runMembers starts one franz-go consumer per group, each bootstrapped on
// a different peer, polling until the test ends.
func runMembers(t *testing.T, bootstrap []string, topic, clientID string, groups []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var cls []*kgo.Client
	for i, g := range groups {
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(bootstrap[i%len(bootstrap)]),
			kgo.ClientID(clientID),
			kgo.ConsumerGroup(g),
			kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxWait(200*time.Millisecond),
		)
		if err != nil {
			t.Fatal(err)
		}
		cls = append(cls, cl)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				cl.PollFetches(ctx)
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		var cw sync.WaitGroup
		for _, cl := range cls {
			cw.Add(1)
			go func() { defer cw.Done(); cl.Close() }()
		}
		cw.Wait()
	})
}

// TestFranzGoListDescribeGroups: operator tooling sees one coherent
// cluster. Asked of every peer (as kadm and librdkafka do), ListGroups
// lists each group exactly once, by the peer FindCoordinator names, and
// DescribeGroups reports each member's client id and the client's own
// address, not the proxy's upstream socket.
func TestFranzGoListDescribeGroups(t *testing.T) {
	sb := startSandbox(t)
	const topic, clientID = "list-groups", "list-groups-client"
	createTopic(t, sb.Bootstrap[:1], topic, numPartitions)
	produceFranz(t, sb.Bootstrap[:1], topic, 0, 100)
	var groups []string
	for i := range 6 {
		groups = append(groups, fmt.Sprintf("list-groups-g%d", i))
	}
	runMembers(t, sb.Bootstrap, topic, clientID, groups)

	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var described kadm.DescribedGroups
	waitFor(t, 45*time.Second, "every group stable with its member", func() bool {
		d, err := adm.DescribeGroups(ctx, groups...)
		if err != nil {
			return false
		}
		for _, g := range groups {
			if dg, ok := d[g]; !ok || dg.Err != nil || dg.State != "Stable" || len(dg.Members) != 1 {
				return false
			}
		}
		described = d
		return true
	})
	for _, g := range groups {
		m := described[g].Members[0]
		if m.ClientHost != "/127.0.0.1" || m.ClientID != clientID {
			t.Errorf("group %s member %s: client %q host %q, want %q from /127.0.0.1", g, m.MemberID, m.ClientID, m.ClientHost, clientID)
		}
	}

	// Every peer asked as a broker: each group once, by its coordinator.
	// Each peer presents coordinators by its own view of which peers are
	// live; on a loaded machine gossip can suspect a peer for a moment and
	// two views differ, so the check is repeated until the views agree.
	var mismatch []string
	var coords kadm.FindCoordinatorResponses
	deadline := time.Now().Add(45 * time.Second)
	for agreed := false; !agreed && time.Now().Before(deadline); {
		agreed = func() bool {
			shards := cl.RequestSharded(ctx, kmsg.NewPtrListGroupsRequest())
			if len(shards) != len(sb.Bootstrap) {
				t.Fatalf("ListGroups asked %d brokers, want the %d peers", len(shards), len(sb.Bootstrap))
			}
			listedBy := map[string][]int32{}
			for _, s := range shards {
				if s.Err != nil {
					mismatch = []string{fmt.Sprintf("ListGroups on peer %d: %v", s.Meta.NodeID, s.Err)}
					return false
				}
				for _, g := range s.Resp.(*kmsg.ListGroupsResponse).Groups {
					listedBy[g.Group] = append(listedBy[g.Group], s.Meta.NodeID)
				}
			}
			coords = adm.FindGroupCoordinators(ctx, groups...)
			mismatch = nil
			for _, g := range groups {
				c, ok := coords[g]
				if !ok || c.Err != nil {
					mismatch = append(mismatch, fmt.Sprintf("FindCoordinator %s: %+v", g, c))
					continue
				}
				if got := listedBy[g]; len(got) != 1 || got[0] != c.NodeID {
					mismatch = append(mismatch, fmt.Sprintf("group %s listed by peers %v, want only its coordinator %d", g, got, c.NodeID))
				}
			}
			return len(mismatch) == 0
		}()
		if !agreed {
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, m := range mismatch {
		t.Error(m) // the views never agreed within the deadline
	}
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("kadm ListGroups: %v", err)
	}
	for _, g := range groups {
		if lg, ok := listed[g]; !ok || lg.Coordinator != coords[g].NodeID {
			t.Errorf("kadm ListGroups %s: %+v, want coordinator %d", g, lg, coords[g].NodeID)
		}
	}
}

// TestPythonListDescribeGroups: kafka-python's KafkaAdminClient, asking
// each peer on its own, finds each group listed once, by its coordinator,
// and describes its member with the client's id and address.
func TestPythonListDescribeGroups(t *testing.T) {
	needCommand(t, pythonPath)
	sb := startSandbox(t)
	const topic, clientID = "py-list-groups", "py-list-groups-client"
	createTopic(t, sb.Bootstrap[:1], topic, numPartitions)
	produceFranz(t, sb.Bootstrap[:1], topic, 0, 100)
	groups := []string{"py-list-groups-g0", "py-list-groups-g1", "py-list-groups-g2"}
	runMembers(t, sb.Bootstrap, topic, clientID, groups)
	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	waitFor(t, 45*time.Second, "every group stable with its member", func() bool {
		d, err := adm.DescribeGroups(context.Background(), groups...)
		if err != nil {
			return false
		}
		for _, g := range groups {
			if dg, ok := d[g]; !ok || dg.Err != nil || dg.State != "Stable" || len(dg.Members) != 1 {
				return false
			}
		}
		return true
	})

	out, _ := runPyclient(t, 45*time.Second, append([]string{"groups", sb.Bootstrap[1]}, groups...)...)
	listed, coord, members := map[string][]string{}, map[string]string{}, map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\t")
		switch {
		case f[0] == "listed" && len(f) == 3:
			listed[f[2]] = append(listed[f[2]], f[1])
		case f[0] == "coordinator" && len(f) == 3:
			coord[f[1]] = f[2]
		case f[0] == "member" && len(f) == 4:
			members[f[1]] = append(members[f[1]], f[2]+"@"+f[3])
		default:
			t.Fatalf("pyclient groups: unexpected line %q", line)
		}
	}
	for _, g := range groups {
		if got := listed[g]; len(got) != 1 || got[0] != coord[g] {
			t.Errorf("group %s listed by brokers %v, want only its coordinator %s", g, got, coord[g])
		}
		if got := members[g]; len(got) != 1 || got[0] != clientID+"@/127.0.0.1" {
			t.Errorf("group %s members %v, want %s@/127.0.0.1", g, got, clientID)
		}
	}
}
