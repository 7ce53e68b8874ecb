package offsetreset

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// ledger is the second topic, routed to the second cluster.
const ledger = "ledger"

// TestOffsetResetTwoClusters: groups consuming two topics that live on
// two backend clusters (payments on east, the default; ledger routed to
// west) are reset on both topics in one job, to the earliest offset and
// then by a shift of -100: a franz-go cooperative-sticky group and a
// KIP-848 group (one membership per cluster behind the proxy). Each
// topic's partitions must jump to their targets, with nothing skipped to
// the live end.
func TestOffsetResetTwoClusters(t *testing.T) {
	sb := startSandbox(t, []string{"east", "west"}, &fsm.PutRoute{Topic: ledger, Cluster: "west"})
	api := newAdminAPI(sb.AdminURLs)
	topics := []string{ledger, topic} // sorted, as the job lists them
	for _, tp := range topics {
		createTopic(t, sb.Bootstrap, tp, parts)
	}
	onWest(t, sb.Backends["west"].ListenAddrs(), ledger)

	// Different rates, so the two topics' offsets (and targets) differ: a
	// target applied to the wrong topic shows.
	prods := map[string]*producer{}
	for _, tp := range topics {
		r := rate / 2
		if tp == ledger {
			r = rate / 3
		}
		prods[tp] = startProducer(t, sb.Bootstrap, tp, r)
		defer prods[tp].close(t)
	}
	groups := []*group{
		startFranzGroup(t, "franz-go cooperative-sticky", sb.Bootstrap, 0, topics, "reset-2c-coop", 2,
			kgo.Balancers(kgo.CooperativeStickyBalancer())),
		startFranzGroup(t, "franz-go KIP-848", sb.Bootstrap, 1, topics, "reset-2c-848", 2,
			kgo.ServerSideBalancer()),
	}
	for _, g := range groups {
		defer g.close(t)
	}
	progress(t, prods[topic], groups)
	waitFor(t, 2*time.Minute, "150 records per partition of each topic", func() error {
		for _, tp := range topics {
			ends := prods[tp].ends()
			for p := range parts {
				if ends[p] < 150 {
					return fmt.Errorf("%s/%d ends at %d", tp, p, ends[p])
				}
			}
		}
		return nil
	})
	caughtUp := func(t *testing.T, g *group) {
		for _, tp := range topics {
			waitCaughtUp(t, g, prods[tp], parts, 2*time.Minute)
		}
	}

	var runs []*resetRun
	failed := map[*group]bool{}
	k := 0
	for _, g := range groups {
		failed[g] = !t.Run(g.id, func(t *testing.T) {
			caughtUp(t, g)
			runs = append(runs, reset(t, sb, api, k%3, g, topics, "earliest", toEarliest, func(targetJSON) int64 { return 0 })...)
			k++
			caughtUp(t, g)
			runs = append(runs, reset(t, sb, api, k%3, g, topics, "shift", toShift(shiftBy), func(tg targetJSON) int64 { return max(tg.Old+shiftBy, 0) })...)
			k++
		})
	}

	for _, tp := range topics {
		prods[tp].close(t)
	}
	for _, g := range groups {
		if failed[g] {
			t.Logf("%s: final checks skipped: its resets failed (above)", g)
			continue
		}
		caughtUp(t, g)
		if n := g.constructions.Load(); n != int64(len(g.members)) {
			t.Errorf("%s: %d client constructions for %d members", g, n, len(g.members))
		}
		for _, tp := range topics {
			checkSegments(t, g, tp, runs, prods[tp].ends(), prods[tp].values(t), false)
		}
	}
	for _, r := range runs {
		t.Logf("  %-16s %-9s %-8s applied %-8v at target %-8v fencing seen %-5v members removed %d; after the jump %d re-read, %d from the old position",
			r.g.id, r.topic, r.name, r.toApplied, r.toTarget, r.sawFencing, len(r.job.Members), r.rereads, r.zombies)
	}
}

// onWest checks that topic exists on the west cluster itself: the group
// really spans two clusters.
func onWest(t *testing.T, west []string, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(west...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	waitFor(t, 30*time.Second, topic+" on west", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ts, err := kadm.NewClient(cl).ListTopics(ctx)
		if err != nil {
			return err
		}
		if !slices.Contains(ts.Names(), topic) {
			return fmt.Errorf("west holds %v", ts.Names())
		}
		return nil
	})
}
