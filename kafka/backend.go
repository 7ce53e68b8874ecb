package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// BackendConfig configures the proxy's view of one backend Kafka cluster.
type BackendConfig struct {
	// Name is the cluster's name in the replicated state.
	Name string
	// Bootstrap lists host:port addresses of some of its brokers.
	Bootstrap []string
	// MetadataRefresh is how often the full metadata is reloaded. Client
	// metadata requests refresh the topics they name in between.
	MetadataRefresh time.Duration
	// DialTimeout bounds connecting to a backend broker.
	DialTimeout time.Duration
	// BrokerTimeout bounds one control exchange (versions, metadata,
	// coordinator and producer-id lookups) with one broker, dial included,
	// so a broker that accepts connections and never answers costs a
	// lookup at most this long, and usually far less: a lookup any broker
	// can answer asks the next broker after a fraction of it (hedgeDelay).
	BrokerTimeout time.Duration
	// MaxResponseBytes bounds a backend response. Memory follows the bytes
	// that arrive, not the size prefix, so a large bound costs nothing
	// until a broker actually sends that much.
	MaxResponseBytes int32
	// ListFromSnapshot lets all-topics Metadata be answered from the
	// refresh loop's snapshot (metadata_cache.go) instead of the backend.
	// A topic changed through this peer makes the snapshot stale at once
	// (TriggerRefresh); one changed through another peer reaches this one
	// through Config.TopicsChanged (node gossips it) and does the same; one
	// changed at the backend directly shows after the next refresh. node
	// turns it on unless told otherwise (serve --metadata-list-from-snapshot).
	ListFromSnapshot bool
	// TLS and SASL, when set, secure every connection to the brokers
	// (backend_auth.go). They name files, read when a connection is made.
	TLS  *fsm.ClusterTLS
	SASL *fsm.ClusterSASL
	// Metrics, when set, gets the cluster's request, byte and error series.
	Metrics *Metrics
	Logger  *slog.Logger
}

func (c *BackendConfig) setDefaults() {
	if c.MetadataRefresh <= 0 {
		c.MetadataRefresh = 10 * time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.BrokerTimeout <= 0 {
		c.BrokerTimeout = 5 * time.Second
	}
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a configuration that cannot work.
func (c *BackendConfig) Validate() error {
	if c.Name == "" {
		return errors.New("backend cluster needs a name")
	}
	if len(c.Bootstrap) == 0 {
		return fmt.Errorf("backend cluster %q needs at least one bootstrap address", c.Name)
	}
	if c.MaxResponseBytes < 0 || c.MaxResponseBytes > MaxResponseLimit {
		return fmt.Errorf("backend cluster %q: max response bytes %d: want 0 (default %d) up to %d", c.Name, c.MaxResponseBytes, DefaultMaxResponseBytes, MaxResponseLimit)
	}
	return nil
}

const (
	// DefaultMaxResponseBytes is five times the default fetch.max.bytes
	// of the Java client and franz-go (50 MiB): a broker may exceed a
	// fetch's bound by one record batch, and batches are at most
	// message.max.bytes, far below this.
	DefaultMaxResponseBytes = 256 << 20
	// MaxResponseLimit is the largest MaxResponseBytes accepted.
	MaxResponseLimit = 1 << 30
)

// Backend tracks one backend cluster: its brokers, partition leaders,
// coordinators and supported versions. Lookups are lock-free reads of the
// latest snapshot; updates come from a refresh loop and from the metadata and
// coordinator responses that pass through the proxy.
type Backend struct {
	cfg     BackendConfig
	log     *slog.Logger
	metrics *clusterMetrics
	// auth does TLS and SASL towards the brokers; nil for plaintext.
	auth *backendAuth

	ctlMu     sync.Mutex
	ctl       map[string]*ctlConn
	ctlClosed bool

	// healthMu guards suspect and brokerVersions.
	healthMu sync.Mutex
	// suspect holds the addresses whose last control exchange failed or
	// was overtaken by another broker's answer; lookups ask them last.
	suspect map[string]time.Time
	// brokerVersions is the last ApiVersions answer of each broker address
	// that ever answered (see loadVersions).
	brokerVersions map[string]*versionSet

	brokers  atomic.Pointer[brokerSet]
	topics   sync.Map // topic name → *topicMeta
	topicIDs sync.Map // [16]byte → topic name
	versions atomic.Pointer[versionSet]

	// snap is the last all-topics answer of the refresh loop, and metaGen
	// counts the refreshes asked for: a snapshot is served only while no
	// refresh was asked for since its request was sent (metadata_cache.go).
	snap    atomic.Pointer[metaSnapshot]
	metaGen atomic.Uint64
	// metaUpdates counts the answers applied to topics and brokers
	// (updateMetadata): the refresh skips an unchanged answer only when
	// its snapshot's answer was the last one applied.
	metaUpdates atomic.Uint64

	refreshCh chan struct{}
	// refreshed is closed, and replaced, whenever a refresh ends (with an
	// answer or not); refreshedGen is the largest metaGen a refresh that
	// ended had read as it began (awaitRefresh).
	refreshMu    sync.Mutex
	refreshed    chan struct{}
	refreshedGen uint64
	// running: Run's refresh loop is running, so a refresh asked for
	// happens (a Backend nothing runs never refreshes: awaitRefresh).
	running   atomic.Bool
	readyOnce sync.Once
	ready     chan struct{}

	// ups are the client connections' upstreams to this cluster's brokers
	// (conn.go), so that a failover can cut them (CutClientTraffic).
	upsMu sync.Mutex
	ups   map[*upstream]struct{}
}

type brokerSet struct {
	addrs      map[int32]string
	racks      map[int32]*string
	ids        []int32 // sorted
	controller int32
	clusterID  *string
}

// topicMeta is one topic's metadata as last stored; never changed once
// stored (a change stores a new one), so a request may hold it.
type topicMeta struct {
	id       [16]byte
	leaders  []int32 // by partition id; -1 when unknown
	epochs   []int32 // the leaders' epochs, by partition id; -1 when unknown
	internal bool
}

// leader is the partition's leader broker, or -1 when unknown.
func (tm *topicMeta) leader(partition int32) int32 {
	if partition < 0 || int(partition) >= len(tm.leaders) {
		return -1
	}
	return tm.leaders[partition]
}

// leaderEpoch is the partition's leader epoch, or -1 when unknown.
func (tm *topicMeta) leaderEpoch(partition int32) int32 {
	if partition < 0 || int(partition) >= len(tm.epochs) {
		return -1
	}
	return tm.epochs[partition]
}

// versionRange is an inclusive range of versions of one API key.
type versionRange struct{ min, max int16 }

// versionSet is what every broker of the backend supports.
type versionSet struct {
	keys      [kmsg.MaxKey + 1]versionRange // max < 0 when unsupported
	supported []kmsg.ApiVersionsResponseSupportedFeature
	finalized []kmsg.ApiVersionsResponseFinalizedFeature
	epoch     int64
}

// NewBackend returns a Backend; Run starts its refresh loop.
func NewBackend(cfg BackendConfig) (*Backend, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Backend{
		cfg:            cfg,
		metrics:        cfg.Metrics.forCluster(cfg.Name),
		log:            cfg.Logger.With("component", "backend", "cluster", cfg.Name),
		ctl:            map[string]*ctlConn{},
		suspect:        map[string]time.Time{},
		brokerVersions: map[string]*versionSet{},
		refreshCh:      make(chan struct{}, 1),
		refreshed:      make(chan struct{}),
		ready:          make(chan struct{}),
	}
	b.auth = newBackendAuth(cfg, cfg.Metrics.authFailures())
	b.brokers.Store(&brokerSet{addrs: map[int32]string{}, controller: -1})
	return b, nil
}

// Name is the cluster's name.
func (b *Backend) Name() string { return b.cfg.Name }

// Ready is closed once brokers, metadata and versions have been loaded.
func (b *Backend) Ready() <-chan struct{} { return b.ready }

// Run refreshes the backend's metadata until ctx ends.
func (b *Backend) Run(ctx context.Context) {
	defer b.closeCtl()
	b.running.Store(true)
	defer b.running.Store(false)
	if t := b.metrics.traffic; t != nil {
		// Its brokers' up/down is reported while it runs.
		t.brokerUp.track(b)
		defer t.brokerUp.untrack(b)
	}
	t := time.NewTicker(b.cfg.MetadataRefresh)
	defer t.Stop()
	backoff := 100 * time.Millisecond
	for {
		err := b.refresh(ctx)
		if err == nil {
			b.readyOnce.Do(func() { close(b.ready) })
			backoff = 100 * time.Millisecond
		} else if ctx.Err() == nil {
			b.log.Warn("metadata refresh failed", "err", err)
		}
		wait := t.C
		var retry <-chan time.Time
		if err != nil {
			retry = time.After(backoff)
			backoff = min(backoff*2, 5*time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-wait:
		case <-retry:
		case <-b.refreshCh:
		}
	}
}

// CutClientTraffic closes every client connection's upstream to this
// cluster's brokers and reports how many. A request waiting on one is
// answered at once as for a broken broker connection (a part of a split
// request with retriable errors, a request forwarded whole by closing the
// client's connection after the answers before it), so the client retries
// where its route now points. The failover calls it for a cluster that
// health found down: otherwise a request sent just before the cluster
// stopped answering waits for the client's own timeout (tens of seconds
// with franz-go's defaults) although its route moved within seconds.
func (b *Backend) CutClientTraffic() int {
	b.upsMu.Lock()
	defer b.upsMu.Unlock()
	for u := range b.ups {
		if u.nc != nil {
			u.nc.Close()
		}
	}
	return len(b.ups)
}

func (b *Backend) trackUpstream(u *upstream, on bool) {
	b.upsMu.Lock()
	defer b.upsMu.Unlock()
	if !on {
		delete(b.ups, u)
		return
	}
	if b.ups == nil {
		b.ups = map[*upstream]struct{}{}
	}
	b.ups[u] = struct{}{}
}

// TriggerRefresh asks for a metadata refresh soon; calls coalesce. Until
// a refresh asked for after this call lands, client Metadata is answered
// by the backend, not from the snapshot (metadata_cache.go).
func (b *Backend) TriggerRefresh() { b.triggerRefresh() }

// triggerRefresh is TriggerRefresh; it returns the generation a refresh
// must begin at (or after) to reflect the backend as of this call.
func (b *Backend) triggerRefresh() uint64 {
	gen := b.metaGen.Add(1)
	select {
	case b.refreshCh <- struct{}{}:
	default:
	}
	return gen
}

// awaitRefresh asks for a refresh and waits until one that began after
// the ask has ended, or until ctx ends (false). A refresh that failed
// ends the wait too: the caller looks again and finds what it found.
// Waiters share the refresh: calls coalesce as TriggerRefresh's do. It
// returns false at once when no refresh loop runs (Run).
func (b *Backend) awaitRefresh(ctx context.Context) bool {
	want := b.triggerRefresh()
	if !b.running.Load() {
		return false
	}
	for {
		b.refreshMu.Lock()
		done, ch := b.refreshedGen >= want, b.refreshed
		b.refreshMu.Unlock()
		if done {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// refreshEnded wakes awaitRefresh's waiters after a refresh that began at
// generation gen.
func (b *Backend) refreshEnded(gen uint64) {
	b.refreshMu.Lock()
	defer b.refreshMu.Unlock()
	b.refreshedGen = max(b.refreshedGen, gen)
	close(b.refreshed)
	b.refreshed = make(chan struct{})
}

func (b *Backend) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	defer b.refreshEnded(b.metaGen.Load())
	if err := b.loadVersions(ctx); err != nil {
		return err
	}
	req := &refreshMetadata{MetadataRequest: kmsg.NewPtrMetadataRequest()}
	req.Topics = nil // all topics
	gen := b.metaGen.Load()
	updates := b.metaUpdates.Load()
	snap := b.snap.Load()
	if snap != nil && snap.hasDigest && snap.updates == updates {
		req.skip, req.useSkip = snap.digest, true
	}
	resp, err := b.request(ctx, -1, req)
	if err != nil {
		return err
	}
	a := resp.(*refreshAnswer)
	if a.unchanged && b.metaUpdates.Load() != updates {
		// Another answer was applied meanwhile (a client's, perhaps from
		// another broker, which may have forgotten a topic): this one is
		// applied in full, as every refresh was before.
		if err := a.decode(); err != nil {
			return err
		}
	}
	if a.unchanged {
		// The same answer as the snapshot's, which the topics reflect
		// (metadata_digest.go).
		snap.restamp(gen)
		b.metrics.metadataRefreshes("unchanged").Inc()
		return nil
	}
	applied := b.updateMetadata(a.MetadataResponse, true)
	s := newMetaSnapshot(a.MetadataResponse, gen)
	s.digest, s.hasDigest, s.updates = a.digest, a.hasDigest, applied
	b.storeSnapshot(s)
	b.metrics.metadataRefreshes("decoded").Inc()
	return nil
}

// loadVersions asks every known broker (or every bootstrap broker when none
// is known yet), in parallel and each within BrokerTimeout, for its
// versions, and stores the intersection over the brokers that have ever
// answered. A broker that does not answer keeps the versions it last
// reported (a hang must not widen the set); one that never answered is left
// out until it does, and its first answer narrows the set at that refresh.
// So one hung broker delays a refresh by at most BrokerTimeout and never
// keeps the backend from becoming ready.
func (b *Backend) loadVersions(ctx context.Context) error {
	targets := b.knownAddrs()
	if len(targets) == 0 {
		targets = slices.Clone(b.cfg.Bootstrap)
	}
	type answer struct {
		addr string
		vs   *versionSet
		err  error
	}
	answers := make(chan answer, len(targets))
	for _, addr := range targets {
		go func() {
			vs, err := b.askVersions(ctx, addr)
			answers <- answer{addr, vs, err}
		}()
	}
	got := make([]answer, 0, len(targets))
	for range targets {
		got = append(got, <-answers)
	}
	keep := map[string]bool{}
	for _, addr := range append(targets, b.cfg.Bootstrap...) {
		keep[addr] = true
	}
	b.pruneCtl(keep)
	var lastErr error
	b.healthMu.Lock()
	defer b.healthMu.Unlock()
	for _, a := range got {
		if a.err != nil {
			lastErr = a.err
			continue
		}
		b.brokerVersions[a.addr] = a.vs
	}
	// Forget brokers that left the metadata, so they no longer narrow the
	// set (their control connections closed above).
	for addr := range b.brokerVersions {
		if !slices.Contains(targets, addr) {
			delete(b.brokerVersions, addr)
		}
	}
	for addr := range b.suspect {
		if !keep[addr] {
			delete(b.suspect, addr)
		}
	}
	var vs *versionSet
	for _, addr := range targets {
		one := b.brokerVersions[addr]
		if one == nil {
			continue
		}
		if vs == nil {
			c := *one
			vs = &c
			continue
		}
		for i := range vs.keys {
			vs.keys[i].min = max(vs.keys[i].min, one.keys[i].min)
			vs.keys[i].max = min(vs.keys[i].max, one.keys[i].max)
		}
	}
	if vs == nil {
		return fmt.Errorf("no backend broker of %s answered api versions: %w", b.cfg.Name, lastErr)
	}
	b.versions.Store(vs)
	return nil
}

// askVersions asks one broker for its versions.
func (b *Backend) askVersions(ctx context.Context, addr string) (*versionSet, error) {
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName = "switchyard"
	req.ClientSoftwareVersion = "0"
	resp, err := b.roundTripTo(ctx, addr, req)
	if err != nil {
		return nil, err
	}
	r := resp.(*kmsg.ApiVersionsResponse)
	if r.ErrorCode != 0 {
		return nil, fmt.Errorf("api versions from %s: %w", addr, kerr.ErrorForCode(r.ErrorCode))
	}
	return versionSetOf(r), nil
}

// versionSetOf is what one broker's ApiVersions answer says it supports.
func versionSetOf(r *kmsg.ApiVersionsResponse) *versionSet {
	one := &versionSet{supported: r.SupportedFeatures, finalized: r.FinalizedFeatures, epoch: r.FinalizedFeaturesEpoch}
	for i := range one.keys {
		one.keys[i] = versionRange{0, -1}
	}
	for _, k := range r.ApiKeys {
		if k.ApiKey >= 0 && int(k.ApiKey) < len(one.keys) {
			one.keys[k.ApiKey] = versionRange{k.MinVersion, k.MaxVersion}
		}
	}
	return one
}

// knownAddrs returns the addresses of the brokers in the metadata.
func (b *Backend) knownAddrs() []string {
	bs := b.brokers.Load()
	addrs := make([]string, 0, len(bs.ids))
	for _, id := range bs.ids {
		addrs = append(addrs, bs.addrs[id])
	}
	return addrs
}

// request sends req to broker (or, with broker < 0, to any reachable
// broker), choosing the highest version both sides support.
func (b *Backend) request(ctx context.Context, broker int32, req kmsg.Request) (kmsg.Response, error) {
	vs := b.versions.Load()
	if vs == nil {
		return nil, fmt.Errorf("%w: versions of %s not loaded", ErrNoBroker, b.cfg.Name)
	}
	r := vs.keys[req.Key()]
	v := min(req.MaxVersion(), r.max)
	if v < r.min || v < 0 {
		return nil, fmt.Errorf("backend %s does not support %s", b.cfg.Name, kmsg.NameForKey(req.Key()))
	}
	req.SetVersion(v)
	if broker >= 0 {
		addr, ok := b.brokerAddr(broker)
		if !ok {
			return nil, fmt.Errorf("%w: broker %d of %s", ErrNoBroker, broker, b.cfg.Name)
		}
		return b.roundTripTo(ctx, addr, req)
	}
	targets := b.knownAddrs()
	for _, addr := range b.cfg.Bootstrap {
		if !slices.Contains(targets, addr) {
			targets = append(targets, addr)
		}
	}
	return b.anyRoundTrip(ctx, b.healthFirst(targets), req)
}

// hedgeDelay is how long a lookup any broker can answer waits for one
// broker before it asks the next one as well.
func (b *Backend) hedgeDelay() time.Duration {
	return min(max(b.cfg.BrokerTimeout/5, 50*time.Millisecond), time.Second)
}

// anyRoundTrip asks targets in order for an answer any of them can give
// and returns the first good one. The next broker is asked at once when
// one fails, and after hedgeDelay when one is slow, so a broker that
// accepts connections and never answers delays a lookup by hedgeDelay, not
// by its timeout; once the answer is in, the exchanges still running are
// cancelled (their connections close). The requests it sends must be safe
// to repeat: at worst a hedged InitProducerId wastes a producer id.
func (b *Backend) anyRoundTrip(ctx context.Context, targets []string, req kmsg.Request) (kmsg.Response, error) {
	if len(targets) == 0 {
		return nil, fmt.Errorf("%w: %s has no brokers to ask", ErrNoBroker, b.cfg.Name)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		i    int
		resp kmsg.Response
		err  error
	}
	results := make(chan result, len(targets)) // no sender ever blocks
	pending := make([]bool, len(targets))
	next, running := 0, 0
	launch := func() {
		i := next
		next++
		running++
		pending[i] = true
		go func() {
			resp, err := b.roundTripTo(ctx, targets[i], req)
			results <- result{i, resp, err}
		}()
	}
	launch()
	hedge := time.NewTimer(b.hedgeDelay())
	defer hedge.Stop()
	var lastErr error
	for running > 0 {
		select {
		case r := <-results:
			running--
			pending[r.i] = false
			if r.err == nil {
				// Brokers asked earlier and still silent were overtaken:
				// ask them last next time.
				for j := range r.i {
					if pending[j] {
						b.markSuspect(targets[j])
					}
				}
				return r.resp, nil
			}
			lastErr = r.err
			if next < len(targets) && ctx.Err() == nil {
				launch()
				hedge.Reset(b.hedgeDelay())
			}
		case <-hedge.C:
			if next < len(targets) {
				launch()
				hedge.Reset(b.hedgeDelay())
			}
		}
	}
	return nil, lastErr
}

// dialFunc opens a connection to a broker address.
type dialFunc func(ctx context.Context, addr string) (net.Conn, error)

// dial opens a connection to the broker at addr, within DialTimeout and
// ctx. It is the one place every upstream connection is made, the clients'
// (conn.go) and the proxy's own lookups (control.go) alike, so it is where
// TLS and SASL towards the backend go.
func (b *Backend) dial(ctx context.Context, addr string) (net.Conn, error) {
	nc, _, err := b.dialSession(ctx, addr)
	return nc, err
}

// dialSession is dial that also says when the connection should be
// replaced because its SASL session ends (zero: never; backend_auth.go).
func (b *Backend) dialSession(ctx context.Context, addr string) (net.Conn, time.Time, error) {
	if b.auth != nil {
		return b.auth.dial(ctx, addr)
	}
	nc, err := dialTCP(ctx, addr, b.cfg.DialTimeout)
	return nc, time.Time{}, err
}

func dialTCP(ctx context.Context, addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true) // Go's default; said here because latency depends on it
	}
	return nc, nil
}

// roundTripTo is one control exchange with the broker at addr, within
// BrokerTimeout, recording whether it answered.
func (b *Backend) roundTripTo(ctx context.Context, addr string, req kmsg.Request) (kmsg.Response, error) {
	sent := time.Now()
	resp, err := b.ctlConn(addr).roundTrip(ctx, req, b.cfg.BrokerTimeout, b.cfg.MaxResponseBytes)
	switch {
	case err == nil:
		b.metrics.broker(addr).observeSince(sent)
		b.healthMu.Lock()
		delete(b.suspect, addr)
		b.healthMu.Unlock()
	case !errors.Is(ctx.Err(), context.Canceled):
		// This broker failed, or was still silent when its time or the
		// caller's ran out. (Cancelled: another broker answered first, or
		// the caller gave up; that says nothing about this one.)
		b.metrics.broker(addr).failed()
		b.markSuspect(addr)
	}
	return resp, err
}

func (b *Backend) markSuspect(addr string) {
	b.healthMu.Lock()
	if _, ok := b.suspect[addr]; !ok {
		b.suspect[addr] = time.Now()
	}
	b.healthMu.Unlock()
}

// healthFirst orders addrs with the brokers that answered their last
// control exchange first, keeping the order within each group.
func (b *Backend) healthFirst(addrs []string) []string {
	b.healthMu.Lock()
	defer b.healthMu.Unlock()
	if len(b.suspect) == 0 {
		return addrs
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if _, bad := b.suspect[a]; !bad {
			out = append(out, a)
		}
	}
	for _, a := range addrs {
		if _, bad := b.suspect[a]; bad {
			out = append(out, a)
		}
	}
	return out
}

// brokersByHealth returns the known broker ids, those whose last control
// exchange succeeded first (each group in id order): where any broker
// will do, a client request should not be sent to one that hangs.
func (b *Backend) brokersByHealth() []int32 {
	bs := b.brokers.Load()
	b.healthMu.Lock()
	defer b.healthMu.Unlock()
	if len(b.suspect) == 0 {
		return bs.ids
	}
	out := make([]int32, 0, len(bs.ids))
	for _, id := range bs.ids {
		if _, bad := b.suspect[bs.addrs[id]]; !bad {
			out = append(out, id)
		}
	}
	for _, id := range bs.ids {
		if _, bad := b.suspect[bs.addrs[id]]; bad {
			out = append(out, id)
		}
	}
	return out
}

func (b *Backend) ctlConn(addr string) *ctlConn {
	b.ctlMu.Lock()
	defer b.ctlMu.Unlock()
	c, ok := b.ctl[addr]
	if !ok {
		c = newCtlConn(addr, b.dial)
		c.dialSession = b.dialSession
		if b.ctlClosed {
			// A lookup on a stopped backend (a connection still finishing
			// on it) fails rather than open a connection nobody closes.
			c.closed.Store(true)
			return c
		}
		b.ctl[addr] = c
	}
	return c
}

// pruneCtl closes the control connections to addresses not in keep.
func (b *Backend) pruneCtl(keep map[string]bool) {
	b.ctlMu.Lock()
	defer b.ctlMu.Unlock()
	for addr, c := range b.ctl {
		if !keep[addr] {
			c.close()
			delete(b.ctl, addr)
		}
	}
}

func (b *Backend) closeCtl() {
	b.ctlMu.Lock()
	defer b.ctlMu.Unlock()
	b.ctlClosed = true
	for _, c := range b.ctl {
		c.close()
	}
}

// updateMetadata records brokers and partition leaders from a metadata
// response. With full set, topics absent from resp are forgotten.
func (b *Backend) updateMetadata(resp *kmsg.MetadataResponse, full bool) uint64 {
	bs := &brokerSet{addrs: map[int32]string{}, racks: map[int32]*string{}, controller: resp.ControllerID, clusterID: resp.ClusterID}
	for _, br := range resp.Brokers {
		bs.addrs[br.NodeID] = fmt.Sprintf("%s:%d", br.Host, br.Port)
		bs.racks[br.NodeID] = br.Rack
		bs.ids = append(bs.ids, br.NodeID)
	}
	slices.Sort(bs.ids)
	if len(bs.ids) > 0 {
		b.brokers.Store(bs)
	}
	seen := make(map[string]struct{}, len(resp.Topics))
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if t.Topic == nil {
			continue
		}
		name := *t.Topic
		if t.ErrorCode != 0 {
			if t.ErrorCode == kerr.UnknownTopicOrPartition.Code {
				b.forgetTopic(name)
			}
			continue
		}
		seen[name] = struct{}{}
		tm := &topicMeta{id: t.TopicID, internal: t.IsInternal}
		var old *topicMeta
		if v, ok := b.topics.Load(name); ok {
			old = v.(*topicMeta)
		}
		if tm.id == ([16]byte{}) && old != nil {
			// An answer at a version without topic ids (v9 and older: a
			// client's Metadata is sent at its own version) says nothing
			// about the id: keep the one known, or every request naming
			// the topic by id would be UNKNOWN_TOPIC_ID until the next
			// refresh.
			tm.id = old.id
		}
		// Partitions are numbered 0..n-1; a number outside that is bad
		// input and must not size an allocation.
		n := len(t.Partitions)
		tm.leaders, tm.epochs = make([]int32, n), make([]int32, n)
		for i := range tm.leaders {
			tm.leaders[i], tm.epochs[i] = -1, -1
		}
		for _, p := range t.Partitions {
			if p.Partition >= 0 && int(p.Partition) < n {
				tm.leaders[p.Partition], tm.epochs[p.Partition] = p.Leader, p.LeaderEpoch
			}
		}
		if old != nil && old.id == tm.id && old.internal == tm.internal && slices.Equal(old.leaders, tm.leaders) && slices.Equal(old.epochs, tm.epochs) {
			// Unchanged, as most topics are at a refresh: the stored
			// entry stays, and the new one is garbage at once.
			continue
		}
		b.topics.Store(name, tm)
		if t.TopicID != ([16]byte{}) {
			b.topicIDs.Store(t.TopicID, name)
		}
	}
	if full {
		b.topics.Range(func(k, _ any) bool {
			if _, ok := seen[k.(string)]; !ok {
				b.forgetTopic(k.(string))
			}
			return true
		})
	}
	return b.metaUpdates.Add(1)
}

func (b *Backend) forgetTopic(name string) {
	if v, ok := b.topics.LoadAndDelete(name); ok {
		b.topicIDs.Delete(v.(*topicMeta).id)
	}
}

// leader returns the leader broker of a partition, or -1 when unknown.
func (b *Backend) leader(topic string, partition int32) int32 {
	if tm := b.meta(topic); tm != nil {
		return tm.leader(partition)
	}
	return -1
}

// meta is topic's metadata, or nil when the backend does not know it.
func (b *Backend) meta(topic string) *topicMeta {
	if v, ok := b.topics.Load(topic); ok {
		return v.(*topicMeta)
	}
	return nil
}

// knows reports whether topic is in the backend's metadata.
func (b *Backend) knows(topic string) bool {
	_, ok := b.topics.Load(topic)
	return ok
}

// topicID is the cluster's id for topic, when its metadata has one.
func (b *Backend) topicID(topic string) ([16]byte, bool) {
	v, ok := b.topics.Load(topic)
	if !ok {
		return [16]byte{}, false
	}
	id := v.(*topicMeta).id
	return id, id != [16]byte{}
}

// topicName resolves a topic id (Fetch v13+, Produce v13+).
func (b *Backend) topicName(id [16]byte) (string, bool) {
	v, ok := b.topicIDs.Load(id)
	if !ok {
		return "", false
	}
	return v.(string), true
}

// brokerAddr returns the address of a backend broker.
func (b *Backend) brokerAddr(id int32) (string, bool) {
	a, ok := b.brokers.Load().addrs[id]
	return a, ok
}

// brokerIDs returns the sorted ids of the known backend brokers.
func (b *Backend) brokerIDs() []int32 { return b.brokers.Load().ids }

// controller returns the controller broker id, or -1.
func (b *Backend) controller() int32 {
	bs := b.brokers.Load()
	if _, ok := bs.addrs[bs.controller]; ok {
		return bs.controller
	}
	return -1
}

// anyBroker picks a broker for requests any broker can serve, preferring
// one of prefer (the brokers on this peer's host).
func (b *Backend) anyBroker(prefer []int32) int32 {
	bs := b.brokers.Load()
	for _, id := range prefer {
		if _, ok := bs.addrs[id]; ok {
			return id
		}
	}
	if len(bs.ids) == 0 {
		return -1
	}
	return bs.ids[0]
}

// versionsFor returns the range of key every backend broker supports.
func (b *Backend) versionsFor(key int16) (versionRange, bool) {
	vs := b.versions.Load()
	if vs == nil || key < 0 || int(key) >= len(vs.keys) {
		return versionRange{}, false
	}
	r := vs.keys[key]
	return r, r.max >= 0 && r.min <= r.max
}

// findCoordinator asks the backend for the broker coordinating key (0
// group, 1 transaction). The caller caches the answer (coordinators.go).
func (b *Backend) findCoordinator(ctx context.Context, typ int8, key string) (int32, error) {
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorType = typ
	req.CoordinatorKey = key
	req.CoordinatorKeys = []string{key}
	resp, err := b.request(ctx, -1, req)
	if err != nil {
		return -1, err
	}
	node, err := coordinatorOf(resp.(*kmsg.FindCoordinatorResponse), key)
	if err != nil {
		return -1, err
	}
	return node, nil
}

// coordinatorOf reads the one coordinator a lookup of key asked for.
func coordinatorOf(r *kmsg.FindCoordinatorResponse, key string) (int32, error) {
	node, code := r.NodeID, r.ErrorCode
	if r.Version >= 4 {
		if len(r.Coordinators) != 1 {
			return -1, fmt.Errorf("%w: %d coordinators for one key", ErrMalformed, len(r.Coordinators))
		}
		node, code = r.Coordinators[0].NodeID, r.Coordinators[0].ErrorCode
	}
	if code != 0 {
		return -1, fmt.Errorf("find coordinator %q: %w", key, kerr.ErrorForCode(code))
	}
	return node, nil
}

// backendFrameChunk is the largest backend answer allocated whole before
// its bytes arrive; answers up to it (nearly all) are read in one piece,
// with no copy.
const backendFrameChunk = 1 << 20

// readBackendFrame is readFrame for a backend's answers: the prefix alone
// sizes no allocation beyond backendFrameChunk, so a broker (or anything at
// its address) that announces a huge answer and stalls holds one 64 KiB
// chunk, not the announced size; once that has arrived the buffer grows to
// the announced size (at most MaxResponseBytes) in one step, copying the
// 64 KiB. (Until December 2026 the first chunk of a large answer was 1 MiB,
// and every fetch answer above 1 MiB paid a 1 MiB copy.)
func readBackendFrame(br *bufio.Reader, maxSize int32) (*buffer, error) {
	hdr, err := br.Peek(4)
	if err != nil {
		if len(hdr) > 0 && err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(hdr))
	if n < 0 || n > maxSize {
		return nil, fmt.Errorf("%w: backend response of %d bytes (max %d)", ErrFrameTooLarge, n, maxSize)
	}
	br.Discard(4)
	first := backendFrameChunk
	if int(n)+4 > backendFrameChunk {
		// A large answer (a big fetch): commit one client chunk until its
		// bytes flow, then its whole size in one step, so growing copies
		// 64 KiB of it, not 1 MiB.
		first = frameChunk
	}
	return readFrameBody(br, n, first)
}
