package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
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
	return nil
}

// Backend tracks one backend cluster: its brokers, partition leaders,
// coordinators and supported versions. Lookups are lock-free reads of the
// latest snapshot; updates come from a refresh loop and from the metadata and
// coordinator responses that pass through the proxy.
type Backend struct {
	cfg     BackendConfig
	log     *slog.Logger
	metrics *clusterMetrics

	ctlMu sync.Mutex
	ctl   map[string]*ctlConn

	brokers  atomic.Pointer[brokerSet]
	topics   sync.Map // topic name → *topicMeta
	topicIDs sync.Map // [16]byte → topic name
	versions atomic.Pointer[versionSet]

	refreshCh chan struct{}
	readyOnce sync.Once
	ready     chan struct{}
}

type brokerSet struct {
	addrs      map[int32]string
	racks      map[int32]*string
	ids        []int32 // sorted
	controller int32
	clusterID  *string
}

type topicMeta struct {
	id       [16]byte
	leaders  []int32 // by partition id; -1 when unknown
	internal bool
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
		cfg:       cfg,
		metrics:   cfg.Metrics.forCluster(cfg.Name),
		log:       cfg.Logger.With("component", "backend", "cluster", cfg.Name),
		ctl:       map[string]*ctlConn{},
		refreshCh: make(chan struct{}, 1),
		ready:     make(chan struct{}),
	}
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

// TriggerRefresh asks for a metadata refresh soon; calls coalesce.
func (b *Backend) TriggerRefresh() {
	select {
	case b.refreshCh <- struct{}{}:
	default:
	}
}

func (b *Backend) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := b.loadVersions(ctx); err != nil {
		return err
	}
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = nil // all topics
	resp, err := b.request(ctx, -1, req)
	if err != nil {
		return err
	}
	b.updateMetadata(resp.(*kmsg.MetadataResponse), true)
	return nil
}

// loadVersions asks every known broker (or a bootstrap broker when none is
// known yet) for its versions and stores the intersection.
func (b *Backend) loadVersions(ctx context.Context) error {
	bs := b.brokers.Load()
	var targets []string
	for _, id := range bs.ids {
		targets = append(targets, bs.addrs[id])
	}
	if len(targets) == 0 {
		targets = b.cfg.Bootstrap
	}
	var vs *versionSet
	var lastErr error
	for _, addr := range targets {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = 3
		req.ClientSoftwareName = "switchyard"
		req.ClientSoftwareVersion = "0"
		resp, err := b.ctlConn(addr).roundTrip(ctx, req, b.cfg.DialTimeout)
		if err != nil {
			lastErr = err
			if len(bs.ids) > 0 {
				// A known broker that is down must not widen the set;
				// skip it and rely on the others.
				continue
			}
			continue
		}
		r := resp.(*kmsg.ApiVersionsResponse)
		if r.ErrorCode != 0 {
			lastErr = fmt.Errorf("api versions from %s: %w", addr, kerr.ErrorForCode(r.ErrorCode))
			continue
		}
		one := &versionSet{supported: r.SupportedFeatures, finalized: r.FinalizedFeatures, epoch: r.FinalizedFeaturesEpoch}
		for i := range one.keys {
			one.keys[i] = versionRange{0, -1}
		}
		for _, k := range r.ApiKeys {
			if k.ApiKey >= 0 && int(k.ApiKey) < len(one.keys) {
				one.keys[k.ApiKey] = versionRange{k.MinVersion, k.MaxVersion}
			}
		}
		if vs == nil {
			vs = one
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
	bs := b.brokers.Load()
	if broker >= 0 {
		addr, ok := bs.addrs[broker]
		if !ok {
			return nil, fmt.Errorf("%w: broker %d of %s", ErrNoBroker, broker, b.cfg.Name)
		}
		return b.ctlConn(addr).roundTrip(ctx, req, b.cfg.DialTimeout)
	}
	var targets []string
	for _, id := range bs.ids {
		targets = append(targets, bs.addrs[id])
	}
	targets = append(targets, b.cfg.Bootstrap...)
	var lastErr error
	for _, addr := range targets {
		resp, err := b.ctlConn(addr).roundTrip(ctx, req, b.cfg.DialTimeout)
		if err == nil {
			return resp, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func (b *Backend) ctlConn(addr string) *ctlConn {
	b.ctlMu.Lock()
	defer b.ctlMu.Unlock()
	c, ok := b.ctl[addr]
	if !ok {
		c = &ctlConn{addr: addr}
		b.ctl[addr] = c
	}
	return c
}

func (b *Backend) closeCtl() {
	b.ctlMu.Lock()
	defer b.ctlMu.Unlock()
	for _, c := range b.ctl {
		c.close()
	}
}

// updateMetadata records brokers and partition leaders from a metadata
// response. With full set, topics absent from resp are forgotten.
func (b *Backend) updateMetadata(resp *kmsg.MetadataResponse, full bool) {
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
		// Partitions are numbered 0..n-1; a number outside that is bad
		// input and must not size an allocation.
		n := len(t.Partitions)
		tm.leaders = make([]int32, n)
		for i := range tm.leaders {
			tm.leaders[i] = -1
		}
		for _, p := range t.Partitions {
			if p.Partition >= 0 && int(p.Partition) < n {
				tm.leaders[p.Partition] = p.Leader
			}
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
}

func (b *Backend) forgetTopic(name string) {
	if v, ok := b.topics.LoadAndDelete(name); ok {
		b.topicIDs.Delete(v.(*topicMeta).id)
	}
}

// leader returns the leader broker of a partition, or -1 when unknown.
func (b *Backend) leader(topic string, partition int32) int32 {
	v, ok := b.topics.Load(topic)
	if !ok {
		return -1
	}
	tm := v.(*topicMeta)
	if partition < 0 || int(partition) >= len(tm.leaders) {
		return -1
	}
	return tm.leaders[partition]
}

// knows reports whether topic is in the backend's metadata.
func (b *Backend) knows(topic string) bool {
	_, ok := b.topics.Load(topic)
	return ok
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
	r := resp.(*kmsg.FindCoordinatorResponse)
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
