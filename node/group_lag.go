package node

// Consumer-group lag (issue 13): switchyard_group_lag_records{group,topic}.
//
// The Raft leader alone polls, every GroupLagInterval, through the peer's
// loopback Kafka client (groups.go): it lists the groups, reads their
// committed offsets and the log-end offsets as any client would, so the
// figures are in the virtual offsets clients see, across clusters and the
// segments of migrated topics. One peer polling keeps the load on the
// backends to one pass per interval for the whole fleet; the other peers
// export no lag series (a peer that loses leadership drops its series), so
// a query takes max() over peers. The GroupLagMaxGroups most lagging groups
// have series of their own; the others are summed per topic under group
// "(other)".

import (
	"context"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Group-lag defaults (serve's flags).
const (
	// DefaultGroupLagInterval: one pass over the groups every 30 s for
	// the whole fleet. (It was off for a while: a migration test's group
	// seemed to stall with it on; the stall was the test's own, see
	// docs/metrics.md.)
	DefaultGroupLagInterval  time.Duration = 30 * time.Second
	DefaultGroupLagMaxGroups               = 100
)

// OtherGroup is the group label of the groups past the cap.
const OtherGroup = "(other)"

type groupLagMetrics struct {
	lag *prometheus.GaugeVec
	// shown: the label pairs set by the last poll, to delete those the
	// next one does not set. Only groupLagLoop touches it.
	shown map[[2]string]bool
}

func newGroupLagMetrics(reg prometheus.Registerer) *groupLagMetrics {
	m := &groupLagMetrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_group_lag_records",
			Help: "Consumer-group lag in records (sum over the topic's partitions of log end offset minus committed offset), per group and topic, polled by the Raft leader only; groups past --group-lag-max-groups summed as \"(other)\".",
		}, []string{"group", "topic"}),
		shown: map[[2]string]bool{},
	}
	reg.MustRegister(m.lag)
	return m
}

// set replaces the series by lags (group → topic → records).
func (m *groupLagMetrics) set(lags map[string]map[string]int64) {
	next := map[[2]string]bool{}
	for g, topics := range lags {
		for t, v := range topics {
			m.lag.WithLabelValues(g, t).Set(float64(v))
			next[[2]string{g, t}] = true
		}
	}
	for k := range m.shown {
		if !next[k] {
			m.lag.DeleteLabelValues(k[0], k[1])
		}
	}
	m.shown = next
}

func (n *Node) groupLagLoop(ctx context.Context) {
	if n.cfg.GroupLagInterval <= 0 {
		return
	}
	t := time.NewTicker(n.cfg.GroupLagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !n.IsLeader() {
			n.groupLag.set(nil)
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, max(n.cfg.GroupLagInterval, loopbackTimeout))
		lags, err := n.pollGroupLag(pctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				n.log.Warn("consumer-group lag poll failed; keeping the last figures", "err", err)
			}
			continue
		}
		n.groupLag.set(lags)
	}
}

// pollGroupLag reads every group's lag per topic through the loopback
// client, capped at the most lagging groups.
func (n *Node) pollGroupLag(ctx context.Context) (map[string]map[string]int64, error) {
	adm, err := n.loopbackAdmin()
	if err != nil {
		return nil, err
	}
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	names := listed.Groups()
	if len(names) == 0 {
		return map[string]map[string]int64{}, nil
	}
	described, err := adm.Lag(ctx, names...)
	if err != nil {
		return nil, err
	}
	type groupTotal struct {
		name   string
		total  int64
		topics map[string]int64
	}
	var all []groupTotal
	for _, g := range described.Sorted() {
		if g.DescribeErr != nil || g.FetchErr != nil {
			continue // unknown now; the next poll tries again
		}
		gt := groupTotal{name: g.Group, topics: map[string]int64{}}
		for topic, parts := range g.Lag {
			for _, p := range parts {
				if p.Lag < 0 || p.Err != nil {
					continue // no commit or no end offset: no figure
				}
				gt.topics[topic] += p.Lag
				gt.total += p.Lag
			}
		}
		if len(gt.topics) > 0 {
			all = append(all, gt)
		}
	}
	slices.SortFunc(all, func(a, b groupTotal) int {
		if a.total != b.total {
			if a.total > b.total {
				return -1
			}
			return 1
		}
		if a.name < b.name {
			return -1
		}
		if a.name > b.name {
			return 1
		}
		return 0
	})
	maxGroups := n.cfg.GroupLagMaxGroups
	if maxGroups <= 0 {
		maxGroups = DefaultGroupLagMaxGroups
	}
	out := map[string]map[string]int64{}
	for i, g := range all {
		name := g.name
		if i >= maxGroups || name == OtherGroup {
			name = OtherGroup
		}
		if out[name] == nil {
			out[name] = map[string]int64{}
		}
		for t, v := range g.topics {
			out[name][t] += v
		}
	}
	return out, nil
}
