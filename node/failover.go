package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// The failover driver (docs/regions.md, "Failover and failback") runs on
// the leader. Every health interval it compares the leader's health view
// (health.go) with the failover section of the replicated state and
// commits the one SetFailover that closes the gap, per cluster:
//
//   - health down, entry active (automatic): failed-over when some route of
//     the cluster has a fallback (after the routes' resume policies are
//     prepared on the fallback, resume.go), else down (nothing to move, but
//     operators see it). failing-back goes back to failed-over.
//   - health up (a majority of fresh reports), entry down: active.
//   - health up for the cluster's up_after, entry failed-over and automatic,
//     no moved route asks for manual failback: failing-back (Produce goes
//     back), then, once the groups on the fallback have read what was
//     written there or the cluster's failback drain has passed, active
//     (consumers go back; failback_drain.go).
//   - a manual entry (POST /v1/failover|failback) is left alone, except that
//     a manual active entry turns automatic again once health says up.
//
// Each change is one Raft command, so a leader killed mid-failover leaves
// the old routing or the new one, never a mix; the next leader's driver
// carries on from what was committed (its health view starts empty, so it
// waits for fresh reports, and for down_after, before acting again).
type failoverDriver struct {
	n *Node

	failovers *prometheus.CounterVec
	failbacks *prometheus.CounterVec
	// resumeFailed counts group/topic resume commits that failed.
	resumeFailed prometheus.Counter

	// drains are the failbacks draining, by cluster; only the run
	// goroutine (step) touches them.
	drains       map[string]*failbackDrain
	drainMetrics drainMetrics
}

var descFailoverSeconds = prometheus.NewDesc("switchyard_failover_seconds",
	"Seconds a backend cluster has been failed over (its routes on their fallbacks); 0 when active.", []string{"cluster"}, nil)

func newFailoverDriver(n *Node, reg prometheus.Registerer) *failoverDriver {
	d := &failoverDriver{
		n: n,
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_failover_failovers_total",
			Help: "Failovers this peer committed as leader (automatic or manual), by cluster.",
		}, []string{"cluster", "mode"}),
		failbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_failover_failbacks_total",
			Help: "Failbacks this peer committed as leader (automatic or manual), by cluster.",
		}, []string{"cluster", "mode"}),
	}
	d.resumeFailed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchyard_failover_resume_failures_total",
		Help: "Group offsets a failover's resume policy could not commit on the fallback (the group keeps its offsets there; see the log).",
	})
	reg.MustRegister(d.failovers, d.failbacks, d.resumeFailed)
	d.drains = map[string]*failbackDrain{}
	d.drainMetrics = newDrainMetrics(reg)
	return d
}

// collect exports every cluster's failover state and time in failover.
func (d *failoverDriver) collect(st *fsm.State, gauge func(*prometheus.Desc, float64, ...string)) {
	now := time.Now().UnixMilli()
	for _, c := range st.Clusters {
		e := st.ClusterFailover(c.Name)
		for _, s := range []fsm.FailoverState{fsm.FailoverActive, fsm.FailoverDown, fsm.FailoverMoved, fsm.FailoverFailingBack} {
			v := 0.0
			if e.State == s {
				v = 1
			}
			gauge(descFailoverState, v, c.Name, string(s))
		}
		secs := 0.0
		if e.State.Moved() && e.Since > 0 {
			secs = float64(max(now-e.Since, 0)) / 1000
		}
		gauge(descFailoverSeconds, secs, c.Name)
	}
}

// run drives failover until ctx (the leadership term) ends.
func (d *failoverDriver) run(ctx context.Context) {
	t := time.NewTicker(d.n.health.cfg.Interval)
	defer t.Stop()
	defer func() {
		for c := range d.drains {
			d.endDrain(c, "") // a next term starts its drains over
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.step(ctx)
	}
}

// step commits at most one change per cluster.
func (d *failoverDriver) step(ctx context.Context) {
	for _, h := range d.n.health.status(time.Now()) {
		st := d.n.fsm.State()
		c, ok := st.Cluster(h.Cluster)
		if !ok {
			continue
		}
		e := st.ClusterFailover(c.Name)
		if _, draining := d.drains[c.Name]; draining && e.State != fsm.FailoverFailingBack {
			d.endDrain(c.Name, "") // down again, or failed back by the operator
		}
		next, ok := d.decide(st, c, e, h)
		if !ok {
			continue
		}
		drain := ""
		if e.State == fsm.FailoverFailingBack && next.State == fsm.FailoverActive {
			var ok bool
			if ok, drain = d.drained(ctx, st, c, e); !ok {
				continue
			}
		}
		if next.State == fsm.FailoverMoved && e.State != fsm.FailoverFailingBack {
			// Prepare where groups resume before the routes move: a
			// failure leaves the routes where they are until the next
			// step retries.
			if err := d.n.prepareResume(ctx, st, c.Name); err != nil {
				d.n.log.Warn("failover: resume policies not applied; retrying", "cluster", c.Name, "err", err)
				continue
			}
		}
		if err := d.commit(ctx, next, false); err != nil {
			level := slog.LevelWarn
			if errors.Is(err, ErrUpgradeRequired) {
				level = slog.LevelDebug // a rolling upgrade: every step would say so
			}
			d.n.log.Log(ctx, level, "failover: commit failed", "cluster", c.Name, "state", next.State, "err", err)
			continue
		}
		if drain != "" {
			d.endDrain(c.Name, drain)
		}
	}
}

// decide returns the entry the driver wants for c, if it differs.
func (d *failoverDriver) decide(st *fsm.State, c fsm.Cluster, e fsm.ClusterFailover, h adminapi.ClusterHealth) (fsm.ClusterFailover, bool) {
	now := time.Now().UnixMilli()
	entry := func(s fsm.FailoverState) (fsm.ClusterFailover, bool) {
		return fsm.ClusterFailover{Cluster: c.Name, State: s, Since: now, RoutesMoved: st.FailoverRoutes(c.Name)}, true
	}
	// "Up" counts only with reports behind it: a new leader's empty view
	// says up for every cluster.
	up := h.State == healthUp && h.UpForMS > 0
	if e.Manual {
		if e.State == fsm.FailoverActive && up {
			return entry(fsm.FailoverActive) // automatic again
		}
		return fsm.ClusterFailover{}, false
	}
	switch {
	case h.State == healthDown && e.State == fsm.FailoverActive:
		if st.FailoverRoutes(c.Name) > 0 {
			return entry(fsm.FailoverMoved)
		}
		return entry(fsm.FailoverDown)
	case h.State == healthDown && e.State == fsm.FailoverFailingBack:
		return entry(fsm.FailoverMoved)
	case h.State == healthDown && e.State == fsm.FailoverDown && st.FailoverRoutes(c.Name) > 0:
		// A route gained a fallback while the cluster was down.
		return entry(fsm.FailoverMoved)
	case up && e.State == fsm.FailoverDown:
		return entry(fsm.FailoverActive)
	case up && e.State == fsm.FailoverMoved && h.UpForMS >= c.UpAfter() && !st.FailbackManual(c.Name):
		return entry(fsm.FailoverFailingBack)
	case e.State == fsm.FailoverFailingBack && h.State == healthUp:
		// Once drained (step asks drained): groups resume on the
		// recovered cluster from their offsets there.
		return entry(fsm.FailoverActive)
	}
	return fsm.ClusterFailover{}, false
}

// commit applies one entry and counts it.
func (d *failoverDriver) commit(ctx context.Context, e fsm.ClusterFailover, manual bool) error {
	prev := d.n.fsm.State().ClusterFailover(e.Cluster)
	if _, err := d.n.Apply(ctx, &fsm.SetFailover{Entry: e}); err != nil {
		return err
	}
	mode := "auto"
	if manual {
		mode = "manual"
	}
	switch {
	case e.State == fsm.FailoverMoved && !prev.State.Moved():
		d.failovers.WithLabelValues(e.Cluster, mode).Inc()
		d.n.log.Warn("failover: routes moved to their fallbacks", "cluster", e.Cluster, "routes", e.RoutesMoved, "mode", mode)
	case e.State == fsm.FailoverActive && prev.State.Moved():
		d.failbacks.WithLabelValues(e.Cluster, mode).Inc()
		d.n.log.Info("failback: routes back on their cluster", "cluster", e.Cluster, "mode", mode)
	}
	return nil
}

// cutFailedOver closes this peer's client upstreams to each cluster that
// failed over automatically (health found it down), once per failover
// (cut holds the entries' Since): a request sent to it just before it
// stopped answering is answered at once, and the client retries where the
// route now points, instead of waiting for its own timeout
// (kafka.Backend.CutClientTraffic). A manual failover of a cluster that
// still answers is not cut: what is in flight there finishes there.
func (n *Node) cutFailedOver(dp *dataPlane, st *fsm.State, cut map[string]int64) {
	for name, since := range cut {
		if e := st.ClusterFailover(name); e.State != fsm.FailoverMoved || e.Since != since {
			delete(cut, name)
		}
	}
	for _, e := range st.Failover.Clusters {
		if e.State != fsm.FailoverMoved || e.Manual {
			continue
		}
		if since, done := cut[e.Cluster]; done && since == e.Since {
			continue
		}
		cut[e.Cluster] = e.Since
		if be, ok := dp.backend(e.Cluster); ok {
			if k := be.CutClientTraffic(); k > 0 {
				n.log.Info("failover: cut client connections to the failed cluster; their waiting requests are answered and retried on the fallback", "cluster", e.Cluster, "connections", k)
			}
		}
	}
}

// getFailover lists every cluster's failover state from this peer's
// replicated state (like the other configuration reads).
func (n *Node) getFailover(w http.ResponseWriter, r *http.Request) error {
	st := n.fsm.State()
	out := make([]adminapi.FailoverEntry, 0, len(st.Clusters))
	for _, c := range st.Clusters {
		e := st.ClusterFailover(c.Name)
		out = append(out, adminapi.FailoverEntry{Cluster: c.Name, State: e.State, Since: e.Since, RoutesMoved: e.RoutesMoved, Manual: e.Manual})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getHealth answers with the leader's health view, fetched from the
// leader by any peer.
func (n *Node) getHealth(w http.ResponseWriter, r *http.Request) error {
	out, err := n.healthStatus(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// postFailover is POST /v1/failover/{cluster} (over) and POST
// /v1/failback/{cluster}: the operator's override, committed as a manual
// entry the automatic driver leaves alone.
func (n *Node) postFailover(over bool) apiHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		name := r.PathValue("cluster")
		st := n.fsm.State()
		if _, ok := st.Cluster(name); !ok {
			return notFound("no cluster %q; see GET /v1/clusters", name)
		}
		moved := st.FailoverRoutes(name)
		if moved == 0 {
			return &httpError{http.StatusConflict, fmt.Sprintf("no route that targets cluster %q has a fallback; give one a fallback first (PUT /v1/routes/{topic} with \"fallback\")", name)}
		}
		e := st.ClusterFailover(name)
		next := fsm.ClusterFailover{Cluster: name, State: fsm.FailoverMoved, Since: time.Now().UnixMilli(), RoutesMoved: moved, Manual: true}
		if !over {
			if e.State == fsm.FailoverActive {
				return &httpError{http.StatusConflict, fmt.Sprintf("cluster %q is not failed over", name)}
			}
			next.State = fsm.FailoverActive
		} else if e.State == fsm.FailoverMoved && e.Manual {
			return &httpError{http.StatusConflict, fmt.Sprintf("cluster %q is already failed over by the operator", name)}
		} else if e.State == fsm.FailoverFailingBack {
			next.State = fsm.FailoverMoved // failing-back → failed-over is the way back
		}
		if over && next.State == fsm.FailoverMoved && !e.State.Moved() {
			if err := n.prepareResume(r.Context(), st, name); err != nil {
				return fmt.Errorf("failover of %q: preparing where consumer groups resume: %w", name, err)
			}
		}
		if err := n.failover.commit(r.Context(), next, true); err != nil {
			if errors.Is(err, fsm.ErrConflict) {
				return &httpError{http.StatusConflict, err.Error()}
			}
			return err
		}
		writeJSON(w, http.StatusOK, adminapi.FailoverEntry{Cluster: name, State: next.State, Since: next.Since, RoutesMoved: next.RoutesMoved, Manual: true})
		return nil
	}
}
