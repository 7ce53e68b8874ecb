package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/kafka"
)

// The draining failback (docs/regions.md, "Failback"). In failing-back,
// Produce is back on the recovered cluster while consumers, their group
// coordinators and every other key stay on the fallback
// (fsm.ProduceRouteForRegion): nothing new is written to the fallback, so
// its end offsets stop moving for the failed-back topics, and the groups
// read what is left there. The driver moves the consumers back (active)
// once every group that commits the moved topics there has committed up to
// those ends, or once the cluster's failback drain (FailbackDrainMS) has
// passed. Before, Produce and consumption moved back in one step and what a
// group had not read on the fallback was never delivered to it.
//
// The ends are taken once per failback, drainSettle after it began: by
// then every peer serving writes has applied failing-back (a peer with a
// write lease has applied at least the index it was granted at; leases are
// renewed every few hundred milliseconds), so what is in flight towards the
// fallback has landed. Records other clients keep writing to the fallback
// afterwards (its own region's producers: in a two-site deployment the
// fallback is the other site's own cluster) are not the drain's business.
//
// The groups are those the peers saw committing the moved topics to the
// fallback (kafka/commit_log.go, gathered as for the resume policies)
// within drainGroupIdle: a group that stopped committing is not waited
// for (it cannot catch up), and resumes on the recovered cluster from its
// offsets there when it comes back, as before.
const (
	// drainSettle is how long after failing-back began the ends are taken.
	drainSettle = 3 * time.Second
	// drainCheckEvery spaces the checks (each asks every live peer for its
	// commits, and the fallback for each group's offsets).
	drainCheckEvery = 2 * time.Second
	// drainGroupIdle: a group whose last commit to the fallback is older
	// is not waited for.
	drainGroupIdle = 60 * time.Second
	// drainCheckTimeout bounds one check's backend requests.
	drainCheckTimeout = 10 * time.Second
)

// failbackDrain is the leader's progress on one cluster's failback. It is
// the leader's own (a new leader starts over: it takes the ends again,
// later, which can only make it wait for more).
type failbackDrain struct {
	since   int64 // the failing-back entry's Since this belongs to
	checked time.Time
	// ends are the fallback's end offsets of each moved topic, taken
	// drainSettle after the failback began.
	ends map[drainTopic][]int64
	// behind are the groups ("group on cluster") behind at the last check.
	behind []string
}

type drainTopic struct{ fallback, topic string }

type drainMetrics struct {
	behind *prometheus.GaugeVec
	drains *prometheus.CounterVec
}

func newDrainMetrics(reg prometheus.Registerer) drainMetrics {
	m := drainMetrics{
		behind: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_failover_failback_groups_behind",
			Help: "Consumer groups a draining failback waits for: they have not yet committed, on the fallback, what was written there before Produce came back (leader only; 0 when no failback drains).",
		}, []string{"cluster"}),
		drains: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_failover_failback_drains_total",
			Help: "Draining failbacks this peer ended as leader: drained (every group read the fallback to its end) or timeout (failback_drain_ms passed first; the groups behind skip what they had not read there).",
		}, []string{"cluster", "result"}),
	}
	reg.MustRegister(m.behind, m.drains)
	return m
}

// drained reports whether cluster's failback (entry e, failing-back) may
// move the consumers back, and why ("drained" or "timeout"): the groups on
// the fallbacks have read them to the ends, or the drain's time is up.
func (d *failoverDriver) drained(ctx context.Context, st *fsm.State, c fsm.Cluster, e fsm.ClusterFailover) (bool, string) {
	dr := d.drains[c.Name]
	if dr == nil || dr.since != e.Since {
		dr = &failbackDrain{since: e.Since}
		d.drains[c.Name] = dr
	}
	now := time.Now()
	elapsed := now.Sub(time.UnixMilli(e.Since))
	if elapsed >= time.Duration(c.FailbackDrain())*time.Millisecond {
		d.n.log.Warn("failback: drain timed out; consumers move back, and the groups behind skip what they had not read on the fallback",
			"cluster", c.Name, "failback_drain", time.Duration(c.FailbackDrain())*time.Millisecond, "groups_behind", dr.behind)
		return true, "timeout"
	}
	if elapsed < drainSettle || now.Sub(dr.checked) < drainCheckEvery {
		return false, ""
	}
	dr.checked = now
	behind, err := d.groupsBehind(ctx, st, c.Name, dr)
	if err != nil {
		d.n.log.Warn("failback: drain check failed; checking again", "cluster", c.Name, "err", err)
		return false, ""
	}
	if !slices.Equal(behind, dr.behind) {
		d.n.log.Info("failback: draining; consumers stay on the fallback until these groups have read it", "cluster", c.Name, "groups_behind", behind)
	}
	dr.behind = behind
	d.drainMetrics.behind.WithLabelValues(c.Name).Set(float64(len(behind)))
	if len(behind) > 0 {
		return false, ""
	}
	d.n.log.Info("failback: the groups have read the fallback; consumers move back", "cluster", c.Name, "after", elapsed.Round(time.Millisecond))
	return true, "drained"
}

// endDrain forgets cluster's drain once its failback committed active
// (counted with result) or the leadership term ended (result "").
func (d *failoverDriver) endDrain(cluster, result string) {
	delete(d.drains, cluster)
	d.drainMetrics.behind.WithLabelValues(cluster).Set(0)
	if result != "" {
		d.drainMetrics.drains.WithLabelValues(cluster, result).Inc()
	}
}

// groupsBehind lists, sorted, the groups committing cluster's moved topics
// on their fallbacks that have not committed up to dr's ends there.
func (d *failoverDriver) groupsBehind(ctx context.Context, st *fsm.State, cluster string, dr *failbackDrain) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, drainCheckTimeout)
	defer cancel()
	if dr.ends == nil {
		dr.ends = map[drainTopic][]int64{}
	}
	recent := time.Now().Add(-drainGroupIdle).UnixMilli()
	behind := []string{}
	for _, fb := range st.FailbackFallbacks(cluster) {
		be, err := d.n.migrationBackend(fb)
		if err != nil {
			return nil, err
		}
		commits := d.n.gatherCommits(ctx, st, fb)
		for _, group := range sortedGroupKeys(commits) {
			gc := commits[group]
			if gc.At < recent {
				continue
			}
			slices.Sort(gc.Topics)
			for _, topic := range gc.Topics {
				if !movedTo(st, cluster, fb, topic) {
					continue
				}
				ends, err := d.drainEnds(ctx, dr, be, fb, topic)
				if err != nil {
					return nil, err
				}
				lag, err := groupLagTo(ctx, be, gc, topic, ends)
				if err != nil {
					return nil, err
				}
				if lag {
					behind = append(behind, fmt.Sprintf("%s on %s", group, fb))
					break
				}
			}
		}
	}
	return behind, nil
}

// movedTo reports whether topic's route is one of cluster's that a
// failover moved to fb.
func movedTo(st *fsm.State, cluster, fb, topic string) bool {
	routed, t := st.ConfiguredRouteTargets(topic)
	return t.Targets(routed, cluster) && len(t.Fallback) > 0 && st.FallbackFor(t, cluster) == fb
}

// drainEnds are topic's end offsets on fb for this failback, taken the
// first time they are asked for.
func (d *failoverDriver) drainEnds(ctx context.Context, dr *failbackDrain, be *kafka.Backend, fb, topic string) ([]int64, error) {
	k := drainTopic{fb, topic}
	if ends, ok := dr.ends[k]; ok {
		return ends, nil
	}
	parts, ok := be.Partitions(topic)
	if !ok || parts <= 0 {
		dr.ends[k] = nil // not on the fallback: nothing to read there
		return nil, nil
	}
	ends, err := listOffsets(ctx, be, topic, int32(parts), -1, 0)
	if err != nil {
		return nil, err
	}
	dr.ends[k] = ends
	return ends, nil
}

// groupLagTo reports whether gc's group has not committed, on be, up to
// ends for some partition of topic that holds records.
func groupLagTo(ctx context.Context, be *kafka.Backend, gc kafka.GroupCommit, topic string, ends []int64) (bool, error) {
	if len(ends) == 0 {
		return false, nil
	}
	offs, err := fetchOffsets(ctx, be, gc.Group, topic, int32(len(ends)))
	if err != nil {
		return false, err
	}
	for p, end := range ends {
		if end <= 0 {
			continue
		}
		if o, ok := offs[int32(p)]; !ok || o.offset < end {
			return true, nil
		}
	}
	return false, nil
}
