package node

// The leader-side driver of live topic migrations (issue 9; fsm/migration.go
// holds the replicated record). While this peer leads, one goroutine per
// migration not yet finished, aborted or failed moves it through its
// phases: prepare (create the target topic), fence (every live peer
// refuses Produce to the topic; the source's high watermarks settle),
// switch (one Raft command flips the route and appends the chain segment),
// copy (group offsets to the target) and serving (groups behind are
// tracked until finish). Every step is idempotent and reads only the
// replicated state and the backends, so a new leader resumes a migration
// wherever its predecessor stopped; soft state (the fence's Raft index and
// start time) is rebuilt conservatively from the current state.
//
// A step that cannot succeed (the target topic holds data, the fence or
// the drain times out) ends a running migration as failed with the reason;
// an error that may pass (a broker unreachable, a leader moving) is logged
// and the step retried after Retry.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/kafka"
)

// rpcMigrationFenced asks a peer whether it enforces a migration's fence:
// it has applied the fence's Raft index and no Produce to the topic is in
// flight on it.
const rpcMigrationFenced = "migration.fenced"

type migrationFencedRequest struct {
	Topic string `json:"topic"`
	Index uint64 `json:"index"`
}

type migrationFencedResponse struct {
	Fenced bool `json:"fenced"`
}

// MigrationConfig times the migration driver.
type MigrationConfig struct {
	// FenceTimeout bounds waiting for every live peer to confirm the fence.
	FenceTimeout time.Duration
	// DrainTimeout bounds waiting for the source's high watermarks to
	// settle and its open transactions on the topic to end.
	DrainTimeout time.Duration
	// PrepareTimeout bounds waiting for the target topic's partitions to
	// have leaders.
	PrepareTimeout time.Duration
	// Poll is how often the fence and leader waits ask again.
	Poll time.Duration
	// Settle is the gap between the two equal offset reads of the drain.
	Settle time.Duration
	// ServingInterval is how often a switched migration's groups behind
	// are recomputed.
	ServingInterval time.Duration
	// Retry is the wait before a step that failed transiently runs again.
	Retry time.Duration
	// RequestTimeout bounds one backend or peer exchange of the driver.
	RequestTimeout time.Duration
}

// DefaultMigrationConfig is the driver's production timing.
func DefaultMigrationConfig() MigrationConfig {
	return MigrationConfig{
		FenceTimeout:    20 * time.Second,
		DrainTimeout:    30 * time.Second,
		PrepareTimeout:  30 * time.Second,
		Poll:            50 * time.Millisecond,
		Settle:          100 * time.Millisecond,
		ServingInterval: 5 * time.Second,
		Retry:           time.Second,
		RequestTimeout:  10 * time.Second,
	}
}

// Validate reports a timing the driver cannot run with, for peers holding
// write leases of lease (0: disabled): the fence must outlast a lease and
// its margin, or a migration with a registered peer down always fails.
func (c MigrationConfig) Validate(lease time.Duration) error {
	if lease > 0 && c.FenceTimeout <= lease+leaseMargin(lease) {
		return fmt.Errorf("migration fence timeout %v: want more than the write lease %v plus its margin %v", c.FenceTimeout, lease, leaseMargin(lease))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"fence timeout", c.FenceTimeout}, {"drain timeout", c.DrainTimeout}, {"prepare timeout", c.PrepareTimeout},
		{"poll", c.Poll}, {"settle", c.Settle}, {"serving interval", c.ServingInterval}, {"retry", c.Retry}, {"request timeout", c.RequestTimeout}} {
		if d.v <= 0 {
			return fmt.Errorf("migration %s %v: want a positive duration", d.name, d.v)
		}
	}
	return nil
}

// maxMigrationSeries bounds the phase gauge's topics; further migrations
// in flight are not shown (a fleet moving more topics than this at once is
// not expected).
const maxMigrationSeries = 200

var descMigrationPhase = prometheus.NewDesc("switchyard_migration_phase",
	"1 for the current phase (prepare, fence, copy, serving) of each migration in flight, by topic (at most 200 topics).",
	[]string{"topic", "phase"}, nil)

// migrator is the driver; it runs only while this peer leads.
type migrator struct {
	n     *Node
	cfg   MigrationConfig
	fence prometheus.Histogram

	mu sync.Mutex
	// fenced remembers, per topic, the Raft index and time at which this
	// leader saw the fence apply.
	fenced map[string]fenceMark
}

type fenceMark struct {
	index uint64
	at    time.Time
}

func newMigrator(n *Node, reg prometheus.Registerer) *migrator {
	m := &migrator{
		n:   n,
		cfg: DefaultMigrationConfig(),
		fence: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchyard_migration_fence_seconds",
			Help:    "How long migrations kept Produce fenced: from the fence applied to the switch applied, on the leader that drove it.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}),
		fenced: map[string]fenceMark{},
	}
	reg.MustRegister(m.fence, &migrationCollector{n: n})
	return m
}

// migrationCollector reports the phase gauge from the applied state at
// scrape time, on every peer.
type migrationCollector struct{ n *Node }

func (c *migrationCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descMigrationPhase }

func (c *migrationCollector) Collect(ch chan<- prometheus.Metric) {
	k := 0
	for _, m := range c.n.fsm.State().Migrations {
		if m.State.Terminal() {
			continue
		}
		if k++; k > maxMigrationSeries {
			return
		}
		ch <- prometheus.MustNewConstMetric(descMigrationPhase, prometheus.GaugeValue, 1, m.Topic, m.Phase)
	}
}

// errMigrationFailed marks an error that ends a running migration as
// failed (it would fail the same way again).
var errMigrationFailed = errors.New("migration failed")

func failMigration(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMigrationFailed, fmt.Sprintf(format, args...))
}

// run starts a driver for every migration in flight and for each one
// started later, until ctx (the leadership term) ends; it returns once
// every driver has stopped.
func (m *migrator) run(ctx context.Context) {
	// A fence mark from an earlier term of this peer is not kept: a leader
	// in between may have granted write leases after it (before applying
	// the fence), so the wait for silent peers restarts from this term's
	// resume time (node/DESIGN.md, the write lease).
	m.mu.Lock()
	clear(m.fenced)
	m.mu.Unlock()
	if err := m.cfg.Validate(m.n.lease.l); err != nil {
		m.n.log.Error("migration timing does not fit the write lease; a migration with a registered peer down will fail its fence", "component", "migration", "err", err)
	}
	m.n.runDrivers(ctx, m.cfg.Retry, func(st *fsm.State) []string {
		var live []string
		for _, mg := range st.Migrations {
			if !mg.State.Terminal() {
				live = append(live, mg.Topic)
			}
		}
		return live
	}, m.drive)
}

// drive moves one topic's migration through its phases until it is
// terminal or the term ends.
func (m *migrator) drive(ctx context.Context, topic string) {
	log := m.n.log.With("component", "migration", "topic", topic)
	lastErr := ""
	for ctx.Err() == nil {
		st := m.n.fsm.State()
		mg, ok := st.Migration(topic)
		if !ok || mg.State.Terminal() {
			m.mu.Lock()
			delete(m.fenced, topic)
			m.mu.Unlock()
			return
		}
		cur := *mg
		var err error
		switch {
		case cur.State == fsm.MigrationRunning && cur.Phase == fsm.PhasePrepare:
			err = m.prepare(ctx, st, &cur)
		case cur.State == fsm.MigrationRunning && cur.Phase == fsm.PhaseFence:
			err = m.fenceAndSwitch(ctx, &cur)
		case cur.State == fsm.MigrationSwitched && cur.Phase == fsm.PhaseCopy:
			err = m.copyOffsets(ctx, &cur)
		case cur.State == fsm.MigrationSwitched && cur.Phase == fsm.PhaseServing:
			err = m.serve(ctx, &cur)
			if err == nil {
				err = sleep(ctx, m.cfg.ServingInterval)
			}
		default:
			err = fmt.Errorf("migration of %q is %s/%s, which the driver does not know", topic, cur.State, cur.Phase)
		}
		if err == nil || ctx.Err() != nil {
			lastErr = ""
			continue
		}
		if errors.Is(err, errMigrationFailed) {
			log.Warn("migration failed", "err", err)
			reason := strings.TrimPrefix(err.Error(), errMigrationFailed.Error()+": ")
			if _, aerr := m.n.applyLocal(ctx, &fsm.UpdateMigration{Topic: topic, State: fsm.MigrationFailed, Phase: cur.Phase, Error: truncate(reason, 4096), At: nowMS()}); aerr != nil && !errors.Is(aerr, fsm.ErrConflict) {
				log.Warn("cannot record the migration's failure; retrying", "err", aerr)
				sleep(ctx, m.cfg.Retry)
			}
			continue
		}
		if errors.Is(err, fsm.ErrConflict) {
			// The record moved under the driver (an abort, a retried
			// proposal): read it again at once.
			continue
		}
		if msg := err.Error(); msg != lastErr {
			lastErr = msg
			log.Warn("migration step failed; retrying", "state", cur.State, "phase", cur.Phase, "err", err)
		}
		sleep(ctx, m.cfg.Retry)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func nowMS() int64 { return time.Now().UnixMilli() }

// truncate makes s fit a replicated text field of n bytes: valid UTF-8,
// no control characters (group ids and broker messages are the clients'
// and brokers' bytes), cut at a rune boundary.
func truncate(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// backends returns the running backends of a migration's two clusters.
func (n *Node) migrationBackend(name string) (*kafka.Backend, error) {
	dp := n.dp.Load()
	if dp == nil {
		return nil, fmt.Errorf("%w: this peer's data plane is not running, so it cannot reach cluster %q", ErrNoLeader, name)
	}
	be, ok := dp.backend(name)
	if !ok {
		return nil, fmt.Errorf("cluster %q is not served on this peer (see the log)", name)
	}
	select {
	case <-be.Ready():
	default:
		return nil, fmt.Errorf("cluster %q: metadata not loaded yet", name)
	}
	return be, nil
}

func (m *migrator) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, m.cfg.RequestTimeout)
}

// prepare creates the topic on the target with the source's partition
// count and dynamic configs, or checks the one already there, waits for
// its leaders and moves the migration to fence.
func (m *migrator) prepare(ctx context.Context, st *fsm.State, mg *fsm.Migration) error {
	src, err := m.n.migrationBackend(mg.From)
	if err != nil {
		return err
	}
	dst, err := m.n.migrationBackend(mg.To)
	if err != nil {
		return err
	}
	rctx, cancel := m.reqCtx(ctx)
	defer cancel()
	smd, err := src.TopicMetadata(rctx, mg.Topic)
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return failMigration("topic %q no longer exists on the source cluster %q", mg.Topic, mg.From)
	}
	if err != nil {
		return err
	}
	if int32(len(smd.Partitions)) != mg.Partitions {
		return failMigration("topic %q has %d partitions on %q, %d when the migration started; start it again", mg.Topic, len(smd.Partitions), mg.From, mg.Partitions)
	}
	tmd, err := dst.TopicMetadata(rctx, mg.Topic)
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		configs, err := dynamicTopicConfigs(rctx, src, mg.Topic)
		if err != nil {
			return err
		}
		if err := createTopic(rctx, dst, mg.Topic, mg.Partitions, configs); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		if int32(len(tmd.Partitions)) != mg.Partitions {
			return failMigration("topic %q already exists on the target cluster %q with %d partitions, the source has %d; delete it there or give it %d partitions",
				mg.Topic, mg.To, len(tmd.Partitions), mg.Partitions, mg.Partitions)
		}
		if !retiredSegmentOf(st, mg.Topic, mg.To) {
			ends, err := listOffsets(rctx, dst, mg.Topic, mg.Partitions, -1, 0)
			if err != nil {
				return err
			}
			var full []string
			for p, end := range ends {
				if end > 0 {
					full = append(full, fmt.Sprintf("%d (%d records)", p, end))
				}
			}
			if len(full) > 0 {
				return failMigration("topic %q already exists on the target cluster %q and holds data in partitions %s; delete the topic there (or migrate to another cluster)",
					mg.Topic, mg.To, strings.Join(capList(full, 20), ", "))
			}
		}
	}
	if err := m.waitLeaders(ctx, dst, mg.Topic, mg.Partitions); err != nil {
		return err
	}
	res, err := m.n.applyLocal(ctx, &fsm.UpdateMigration{Topic: mg.Topic, State: fsm.MigrationRunning, Phase: fsm.PhaseFence, At: nowMS()})
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.fenced[mg.Topic] = fenceMark{index: res.Index, at: time.Now()}
	m.mu.Unlock()
	return nil
}

// retiredSegmentOf reports whether cluster holds a retired segment of
// topic's chain: its old data there is never read again.
func retiredSegmentOf(st *fsm.State, topic, cluster string) bool {
	c := st.Chain(topic)
	if c == nil {
		return false
	}
	for _, g := range c.Segments {
		if g.Retired && g.Cluster == cluster {
			return true
		}
	}
	return false
}

func capList(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(slices.Clone(s[:n]), fmt.Sprintf("and %d more", len(s)-n))
}

// dynamicTopicConfigs are the configs set on topic itself (not broker or
// default values), which the target copy gets.
func dynamicTopicConfigs(ctx context.Context, be *kafka.Backend, topic string) ([]kmsg.CreateTopicsRequestTopicConfig, error) {
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType = kmsg.ConfigResourceTypeTopic
	rr.ResourceName = topic
	req.Resources = []kmsg.DescribeConfigsRequestResource{rr}
	resp, err := be.Admin(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("describe configs of %q on %s: %w", topic, be.Name(), err)
	}
	r := resp.(*kmsg.DescribeConfigsResponse)
	var out []kmsg.CreateTopicsRequestTopicConfig
	for _, res := range r.Resources {
		if res.ErrorCode != 0 {
			return nil, fmt.Errorf("describe configs of %q on %s: %w", topic, be.Name(), kerr.ErrorForCode(res.ErrorCode))
		}
		for _, c := range res.Configs {
			if c.Source != kmsg.ConfigSourceDynamicTopicConfig || c.IsSensitive {
				continue
			}
			tc := kmsg.NewCreateTopicsRequestTopicConfig()
			tc.Name, tc.Value = c.Name, c.Value
			out = append(out, tc)
		}
	}
	return out, nil
}

// createTopic creates topic on be; one that exists already is success
// (prepare runs again and checks it).
func createTopic(ctx context.Context, be *kafka.Backend, topic string, partitions int32, configs []kmsg.CreateTopicsRequestTopicConfig) error {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30_000
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic = topic
	t.NumPartitions = partitions
	t.ReplicationFactor = -1 // the cluster's default (KIP-464)
	t.Configs = configs
	req.Topics = []kmsg.CreateTopicsRequestTopic{t}
	resp, err := be.Admin(ctx, req)
	if err != nil {
		return fmt.Errorf("create topic %q on %s: %w", topic, be.Name(), err)
	}
	for _, rt := range resp.(*kmsg.CreateTopicsResponse).Topics {
		if rt.Topic != topic || rt.ErrorCode == 0 || rt.ErrorCode == kerr.TopicAlreadyExists.Code {
			continue
		}
		kerrv := kerr.ErrorForCode(rt.ErrorCode)
		msg := ""
		if rt.ErrorMessage != nil {
			msg = ": " + *rt.ErrorMessage
		}
		if kerr.IsRetriable(kerrv) || rt.ErrorCode == kerr.NotController.Code {
			be.TriggerRefresh()
			return fmt.Errorf("create topic %q on %s: %w%s", topic, be.Name(), kerrv, msg)
		}
		return failMigration("cannot create topic %q on the target cluster %s: %v%s", topic, be.Name(), kerrv, msg)
	}
	return nil
}

// waitLeaders polls the target's metadata until every partition of topic
// has a leader.
func (m *migrator) waitLeaders(ctx context.Context, be *kafka.Backend, topic string, partitions int32) error {
	deadline := time.Now().Add(m.cfg.PrepareTimeout)
	for {
		rctx, cancel := m.reqCtx(ctx)
		md, err := be.TopicMetadata(rctx, topic)
		cancel()
		missing := []string{}
		if err == nil {
			have := map[int32]bool{}
			for _, p := range md.Partitions {
				if p.ErrorCode == 0 && p.Leader >= 0 {
					have[p.Partition] = true
				}
			}
			for p := range partitions {
				if !have[p] {
					missing = append(missing, fmt.Sprint(p))
				}
			}
			if len(missing) == 0 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				return failMigration("topic %q on the target cluster %s: no metadata within %v: %v", topic, be.Name(), m.cfg.PrepareTimeout, err)
			}
			return failMigration("topic %q on the target cluster %s: partitions %s have no leader after %v", topic, be.Name(), strings.Join(capList(missing, 20), ", "), m.cfg.PrepareTimeout)
		}
		if err := sleep(ctx, m.cfg.Poll); err != nil {
			return err
		}
	}
}

// listOffsets reads every partition's offset at timestamp (-1 latest, -2
// earliest) with isolation (0 read uncommitted: the high watermark; 1
// read committed: the last stable offset), asking each partition's leader.
func listOffsets(ctx context.Context, be *kafka.Backend, topic string, partitions int32, timestamp int64, isolation int8) ([]int64, error) {
	byLeader := map[int32][]int32{}
	for p := range partitions {
		l := be.Leader(topic, p)
		if l < 0 {
			be.TriggerRefresh()
			return nil, fmt.Errorf("partition %d of %q on %s has no known leader", p, topic, be.Name())
		}
		byLeader[l] = append(byLeader[l], p)
	}
	out := make([]int64, partitions)
	for leader, ps := range byLeader {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		req.IsolationLevel = isolation
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		for _, p := range ps {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p
			rp.Timestamp = timestamp
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = []kmsg.ListOffsetsRequestTopic{rt}
		resp, err := be.Request(ctx, leader, req, -1)
		if err != nil {
			return nil, fmt.Errorf("list offsets of %q on broker %d of %s: %w", topic, leader, be.Name(), err)
		}
		got := map[int32]bool{}
		for _, t := range resp.(*kmsg.ListOffsetsResponse).Topics {
			if t.Topic != topic {
				continue
			}
			for _, p := range t.Partitions {
				if p.Partition < 0 || p.Partition >= partitions {
					continue
				}
				if p.ErrorCode != 0 {
					be.TriggerRefresh()
					return nil, fmt.Errorf("list offsets of %q partition %d on %s: %w", topic, p.Partition, be.Name(), kerr.ErrorForCode(p.ErrorCode))
				}
				out[p.Partition] = p.Offset
				got[p.Partition] = true
			}
		}
		for _, p := range ps {
			if !got[p] {
				return nil, fmt.Errorf("list offsets of %q on %s: no answer for partition %d", topic, be.Name(), p)
			}
		}
	}
	return out, nil
}

// fenceAndSwitch waits for every live peer to enforce the fence and for the
// source to settle, then proposes the switch.
func (m *migrator) fenceAndSwitch(ctx context.Context, mg *fsm.Migration) error {
	m.mu.Lock()
	mark, ok := m.fenced[mg.Topic]
	m.mu.Unlock()
	if !ok {
		// Resumed by a new leader: the fence applied at or before the
		// index applied here, which every peer must reach.
		mark = fenceMark{index: m.n.fsm.State().Index, at: time.Now()}
		m.mu.Lock()
		m.fenced[mg.Topic] = mark
		m.mu.Unlock()
	}
	if err := m.waitFenced(ctx, mg.Topic, mark); err != nil {
		return err
	}
	src, err := m.n.migrationBackend(mg.From)
	if err != nil {
		return err
	}
	dst, err := m.n.migrationBackend(mg.To)
	if err != nil {
		return err
	}
	hw, err := m.drain(ctx, src, mg)
	if err != nil {
		return err
	}
	rctx, cancel := m.reqCtx(ctx)
	defer cancel()
	physical, err := listOffsets(rctx, dst, mg.Topic, mg.Partitions, -1, 0)
	if err != nil {
		return err
	}
	smd, err := src.TopicMetadata(rctx, mg.Topic)
	if err != nil {
		return err
	}
	st := m.n.fsm.State()
	var live *fsm.Segment
	if c := st.Chain(mg.Topic); c != nil {
		live = c.Live()
	}
	starts := make([]int64, mg.Partitions)
	liveBase := int32(0)
	if live != nil {
		liveBase = live.EpochBase
	}
	epochBase := liveBase + 1
	for p := range mg.Partitions {
		var delta int64
		if live != nil {
			delta = live.Delta(p)
		}
		starts[p] = hw[p] + delta
	}
	for _, p := range smd.Partitions {
		if p.LeaderEpoch >= 0 {
			epochBase = max(epochBase, p.LeaderEpoch+liveBase+1)
		}
	}
	if _, err := m.n.applyLocal(ctx, &fsm.SwitchMigration{Topic: mg.Topic, Starts: starts, Physical: physical, EpochBase: epochBase, At: nowMS()}); err != nil {
		return err
	}
	m.fence.Observe(time.Since(mark.at).Seconds())
	m.mu.Lock()
	delete(m.fenced, mg.Topic)
	m.mu.Unlock()
	m.n.log.Info("migration switched", "component", "migration", "topic", mg.Topic, "from", mg.From, "to", mg.To, "fenced_for", time.Since(mark.at).Round(time.Millisecond))
	return nil
}

// waitFenced polls every registered peer until each has applied the
// fence's index and has no Produce to topic in flight, or, for a peer that
// does not answer, until its write lease has certainly run out.
func (m *migrator) waitFenced(ctx context.Context, topic string, mark fenceMark) error {
	deadline := time.Now().Add(m.cfg.FenceTimeout)
	lease := m.n.lease.l
	// A peer that has not applied the fence holds at most a lease granted
	// before it applied here (or before this leader resumed the
	// migration): it runs out by mark.at + L, on a clock that may run
	// slower than this one (node/DESIGN.md).
	expired := time.Time{}
	if lease > 0 {
		expired = mark.at.Add(lease + leaseMargin(lease))
	}
	for {
		waiting := m.unfencedPeers(ctx, topic, mark.index, expired)
		if len(waiting) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return failMigration("fence of %q: peers %s did not confirm it within %v (Produce still in flight, or the fence not applied there); the topic stays on its source", topic, strings.Join(capList(waiting, 20), ", "), m.cfg.FenceTimeout)
		}
		if err := sleep(ctx, m.cfg.Poll); err != nil {
			return err
		}
	}
}

// unfencedPeers asks every registered peer in parallel and lists those not
// fenced yet. A peer that does not answer (stopped, cut off, no peer
// address) is listed until expired, when its write lease has certainly
// run out. With the lease disabled (expired zero) nothing bounds how long a
// cut-off peer keeps writing, so every registered peer must answer: one
// that is down or cut off holds the fence until it is back or removed
// (`switchyard ctl peers remove`), and the migration fails at its fence
// timeout otherwise. A peer that answers "not fenced" is always listed: it
// may hold a lease and Produce in flight.
func (m *migrator) unfencedPeers(ctx context.Context, topic string, index uint64, expired time.Time) []string {
	st := m.n.fsm.State()
	var mu sync.Mutex
	var out []string
	var wg sync.WaitGroup
	lapsed := !expired.IsZero() && !time.Now().Before(expired)
	silent := func(name, why string) {
		if lapsed {
			return
		}
		if !expired.IsZero() {
			why = fmt.Sprintf("%s; its write lease runs out in %v at the latest", why, time.Until(expired).Round(time.Second))
		}
		mu.Lock()
		out = append(out, fmt.Sprintf("%s (%s)", name, why))
		mu.Unlock()
	}
	for _, p := range st.Peers {
		if p.Name == m.n.cfg.Name {
			if !m.n.fencedHere(topic, index) {
				mu.Lock() // goroutines for earlier peers may be appending
				out = append(out, p.Name)
				mu.Unlock()
			}
			continue
		}
		live := m.n.gossip.isLive(p.Name)
		if p.RaftAddr == "" {
			silent(p.Name, "no peer address")
			continue
		}
		wg.Add(1)
		go func(p fsm.Peer) {
			defer wg.Done()
			rctx, cancel := m.reqCtx(ctx)
			defer cancel()
			if !live {
				// Most likely stopped: do not hold every poll for long.
				rctx, cancel = context.WithTimeout(rctx, time.Second)
				defer cancel()
			}
			var resp migrationFencedResponse
			err := m.n.rpc.CallPeer(rctx, p.Name, p.RaftAddr, rpcMigrationFenced, migrationFencedRequest{Topic: topic, Index: index}, &resp)
			switch {
			case err != nil:
				silent(p.Name, err.Error())
			case !resp.Fenced:
				mu.Lock()
				out = append(out, fmt.Sprintf("%s (not yet)", p.Name))
				mu.Unlock()
			}
		}(p)
	}
	wg.Wait()
	sort.Strings(out)
	return out
}

// fencedHere reports whether this peer enforces topic's fence: it has
// applied the fence's index and none of its Produce requests to the topic
// is still in flight.
func (n *Node) fencedHere(topic string, index uint64) bool {
	if n.fsm.State().Index < index {
		return false
	}
	dp := n.dp.Load()
	if dp == nil {
		return true // no data plane, no Produce
	}
	return dp.srv.ProduceInFlight(topic) == 0
}

// handleMigrationFenced answers rpcMigrationFenced.
func (n *Node) handleMigrationFenced(req migrationFencedRequest) ([]byte, error) {
	return marshal(migrationFencedResponse{Fenced: n.fencedHere(req.Topic, req.Index)})
}

// drain waits until two reads of the source's high watermarks Settle apart
// are equal and every partition's last stable offset equals its high
// watermark (no transaction open on the topic), and returns them.
func (m *migrator) drain(ctx context.Context, be *kafka.Backend, mg *fsm.Migration) ([]int64, error) {
	deadline := time.Now().Add(m.cfg.DrainTimeout)
	read := func() (hw, lso []int64, err error) {
		rctx, cancel := m.reqCtx(ctx)
		defer cancel()
		if hw, err = listOffsets(rctx, be, mg.Topic, mg.Partitions, -1, 0); err != nil {
			return nil, nil, err
		}
		lso, err = listOffsets(rctx, be, mg.Topic, mg.Partitions, -1, 1)
		return hw, lso, err
	}
	var prev []int64
	var lastErr error
	for {
		hw, lso, err := read()
		var moving, open []string
		if err == nil {
			for p := range hw {
				if lso[p] != hw[p] {
					open = append(open, fmt.Sprintf("%d (stable %d, high watermark %d)", p, lso[p], hw[p]))
				}
				if prev != nil && prev[p] != hw[p] {
					moving = append(moving, fmt.Sprint(p))
				}
			}
			if prev != nil && len(moving) == 0 && len(open) == 0 {
				return hw, nil
			}
			prev = hw
		} else {
			lastErr = err
			prev = nil
		}
		if time.Now().After(deadline) {
			switch {
			case len(open) > 0:
				return nil, failMigration("drain of %q on %s: transactions still open after %v in partitions %s; the migration is aborted, not the transactions", mg.Topic, mg.From, m.cfg.DrainTimeout, strings.Join(capList(open, 20), ", "))
			case len(moving) > 0:
				return nil, failMigration("drain of %q on %s: high watermarks still moving after %v in partitions %s", mg.Topic, mg.From, m.cfg.DrainTimeout, strings.Join(capList(moving, 20), ", "))
			default:
				return nil, failMigration("drain of %q on %s: offsets not readable within %v: %v", mg.Topic, mg.From, m.cfg.DrainTimeout, lastErr)
			}
		}
		if err := sleep(ctx, m.cfg.Settle); err != nil {
			return nil, err
		}
	}
}

// groupOffset is one committed offset.
type groupOffset struct {
	offset   int64
	epoch    int32
	metadata *string
}

// maxMigrationGroups bounds the groups one backend's ListGroups answers
// may contribute.
const maxMigrationGroups = 100_000

// listGroups asks every broker of be for its groups.
func listGroups(ctx context.Context, be *kafka.Backend) ([]string, error) {
	seen := map[string]bool{}
	for _, id := range be.Brokers() {
		resp, err := be.Request(ctx, id, kmsg.NewPtrListGroupsRequest(), -1)
		if err != nil {
			return nil, fmt.Errorf("list groups on broker %d of %s: %w", id, be.Name(), err)
		}
		r := resp.(*kmsg.ListGroupsResponse)
		if r.ErrorCode != 0 {
			return nil, fmt.Errorf("list groups on broker %d of %s: %w", id, be.Name(), kerr.ErrorForCode(r.ErrorCode))
		}
		for _, g := range r.Groups {
			if len(seen) >= maxMigrationGroups {
				return nil, fmt.Errorf("list groups on %s: more than %d groups", be.Name(), maxMigrationGroups)
			}
			seen[g.Group] = true
		}
	}
	return sortedNames(seen), nil
}

// Group offset requests stay at versions that name topics (OffsetFetch v8+
// batches groups, v10+ and OffsetCommit v10+ name topics by id).
const (
	offsetFetchMaxVersion  = 7
	offsetCommitMaxVersion = 9
)

// fetchOffsets reads group's committed offsets of topic on be; partitions
// without one are absent.
func fetchOffsets(ctx context.Context, be *kafka.Backend, group, topic string, partitions int32) (map[int32]groupOffset, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	for p := range partitions {
		rt.Partitions = append(rt.Partitions, p)
	}
	req.Topics = []kmsg.OffsetFetchRequestTopic{rt}
	resp, err := be.CoordinatorRequest(ctx, group, req, offsetFetchMaxVersion)
	if err != nil {
		return nil, fmt.Errorf("offsets of group %q on %s: %w", group, be.Name(), err)
	}
	r := resp.(*kmsg.OffsetFetchResponse)
	if r.ErrorCode != 0 {
		if r.ErrorCode == kerr.GroupIDNotFound.Code {
			return nil, nil // kfake: a cluster with no offsets for the group
		}
		return nil, fmt.Errorf("offsets of group %q on %s: %w", group, be.Name(), kerr.ErrorForCode(r.ErrorCode))
	}
	out := map[int32]groupOffset{}
	for _, t := range r.Topics {
		if t.Topic != topic {
			continue
		}
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				if p.ErrorCode == kerr.UnknownTopicOrPartition.Code {
					continue
				}
				return nil, fmt.Errorf("offset of group %q partition %d on %s: %w", group, p.Partition, be.Name(), kerr.ErrorForCode(p.ErrorCode))
			}
			if p.Offset >= 0 && p.Partition >= 0 && p.Partition < partitions {
				out[p.Partition] = groupOffset{offset: p.Offset, epoch: p.LeaderEpoch, metadata: p.Metadata}
			}
		}
	}
	return out, nil
}

// errMembersActive: the target refused a simple commit because the group
// has members there.
var errMembersActive = errors.New("group has active members")

// commitOffsets commits offsets for group as a simple (memberless)
// commit, generation -1.
func commitOffsets(ctx context.Context, be *kafka.Backend, group, topic string, offs map[int32]groupOffset) error {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group = group
	req.Generation = -1
	req.MemberID = ""
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	for _, p := range sortedKeys(offs) {
		o := offs[p]
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = p, o.offset, o.epoch, o.metadata
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = []kmsg.OffsetCommitRequestTopic{rt}
	resp, err := be.CoordinatorRequest(ctx, group, req, offsetCommitMaxVersion)
	if err != nil {
		return fmt.Errorf("commit offsets of group %q on %s: %w", group, be.Name(), err)
	}
	for _, t := range resp.(*kmsg.OffsetCommitResponse).Topics {
		for _, p := range t.Partitions {
			switch p.ErrorCode {
			case 0:
			case kerr.UnknownMemberID.Code, kerr.IllegalGeneration.Code, kerr.RebalanceInProgress.Code:
				return errMembersActive
			default:
				return fmt.Errorf("commit offsets of group %q partition %d on %s: %w", group, p.Partition, be.Name(), kerr.ErrorForCode(p.ErrorCode))
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[int32]V) []int32 {
	out := make([]int32, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// copyOffsets copies every source group's committed offsets of the topic
// (virtual already) to the target, skipping groups that have committed
// there since, and moves the migration to serving.
func (m *migrator) copyOffsets(ctx context.Context, mg *fsm.Migration) error {
	src, err := m.n.migrationBackend(mg.From)
	if err != nil {
		return err
	}
	dst, err := m.n.migrationBackend(mg.To)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*m.cfg.RequestTimeout)
	defer cancel()
	groups, err := listGroups(rctx, src)
	if err != nil {
		return err
	}
	var refused []string
	copied := 0
	for _, g := range groups {
		offs, err := fetchOffsets(rctx, src, g, mg.Topic, mg.Partitions)
		if err != nil {
			return err
		}
		if len(offs) == 0 {
			continue
		}
		have, err := fetchOffsets(rctx, dst, g, mg.Topic, mg.Partitions)
		if err != nil {
			return err
		}
		// Keep what the target has at or past the source's value: a commit
		// since the switch (offsets only move forward between resets). A
		// lower value there is stale: left from before an earlier
		// migration of the topic away from this cluster.
		for p, o := range offs {
			if h, ok := have[p]; ok && h.offset >= o.offset {
				delete(offs, p)
			}
		}
		if len(offs) == 0 {
			continue
		}
		switch err := commitOffsets(rctx, dst, g, mg.Topic, offs); {
		case errors.Is(err, errMembersActive):
			refused = append(refused, g)
		case err != nil:
			return err
		default:
			copied++
		}
	}
	msg := ""
	if len(refused) > 0 {
		msg = fmt.Sprintf("offsets of groups [%s] not copied: members active on %s; they resume from their next commit", strings.Join(capList(refused, 50), " "), mg.To)
	}
	m.n.log.Info("migration group offsets copied", "component", "migration", "topic", mg.Topic, "groups", copied, "refused", len(refused))
	_, err = m.n.applyLocal(ctx, &fsm.UpdateMigration{Topic: mg.Topic, State: fsm.MigrationSwitched, Phase: fsm.PhaseServing, Error: truncate(msg, 4096), GroupsBehind: mg.GroupsBehind, At: nowMS()})
	return err
}

// serve recomputes the groups behind and records them when they changed.
func (m *migrator) serve(ctx context.Context, mg *fsm.Migration) error {
	behind, err := m.n.groupsBehind(ctx, mg)
	if err != nil {
		return err
	}
	if slices.Equal(behind, mg.GroupsBehind) {
		return nil
	}
	_, err = m.n.applyLocal(ctx, &fsm.UpdateMigration{Topic: mg.Topic, State: mg.State, Phase: mg.Phase, Error: mg.Error, GroupsBehind: behind, At: nowMS()})
	return err
}

// groupsBehind lists, sorted, the groups whose committed offset of some
// partition of the topic on the target is below that partition's start in
// the target segment: they still read from the source.
func (n *Node) groupsBehind(ctx context.Context, mg *fsm.Migration) ([]string, error) {
	c := n.fsm.State().Chain(mg.Topic)
	if c == nil || c.Live().Cluster != mg.To {
		return nil, fmt.Errorf("topic %q has no segment on %q", mg.Topic, mg.To)
	}
	live := *c.Live()
	dst, err := n.migrationBackend(mg.To)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	groups, err := listGroups(rctx, dst)
	if err != nil {
		return nil, err
	}
	behind := []string{}
	for _, g := range groups {
		offs, err := fetchOffsets(rctx, dst, g, mg.Topic, mg.Partitions)
		if err != nil {
			return nil, err
		}
		if len(g) > 1024 {
			continue // beyond what a migration record lists (fsm bound)
		}
		for p, o := range offs {
			if o.offset < live.Start(p) {
				behind = append(behind, g)
				break
			}
		}
		if len(behind) >= 1000 {
			break // fsm's bound on a migration's list
		}
	}
	slices.Sort(behind)
	return behind, nil
}
