package node

// Consumer groups as the admin API sees them (issue 10): the group views
// (http_groups.go) and the resolution of an offset reset's targets.
//
// The proxy presents one virtual cluster: virtual offsets for migrated
// topics (fsm/migration.go, kafka/segments.go), groups whose topics live on
// several clusters, KIP-848 groups with legs. Rather than re-implement that
// here, the peer talks Kafka to its own data plane through a loopback admin
// client (franz-go + kadm) seeded with its own Kafka listener; metadata then
// points it at every peer, exactly like a client. Everything here is
// read-only: nothing writes to the Raft log or commits offsets.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/kafka"
)

// Bounds of the loopback client: every call it makes ends.
const (
	// loopbackTimeout bounds one admin operation (several Kafka requests).
	loopbackTimeout = 15 * time.Second
	// loopbackOffsetsTimeout bounds the committed-offset read of a group
	// view: while a reset fences the group every peer answers its
	// OffsetFetch with COORDINATOR_LOAD_IN_PROGRESS, which the client
	// retries; the view answers without the offsets rather than wait.
	loopbackOffsetsTimeout = 5 * time.Second
	loopbackDialTimeout    = 5 * time.Second
	loopbackRetryTimeout   = 10 * time.Second
)

// loopback is the peer's lazily built Kafka admin client of its own data
// plane. It is closed when the peer stops.
type loopback struct {
	mu     sync.Mutex
	cl     *kgo.Client
	adm    *kadm.Client
	closed bool
}

// errLoopbackClosed: the peer is stopping.
var errLoopbackClosed = errors.New("node: the peer is stopping; its loopback Kafka client is closed")

// loopbackAddr is an address of this peer's Kafka listener that reaches
// this process: the bound address, with a wildcard host replaced by
// loopback.
func (n *Node) loopbackAddr() string {
	addr := n.kafkaLn.Addr().String()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// loopbackCredentials are the client options that authenticate the
// loopback client to this peer's Kafka listener. With TLS or SASL on the
// listener, the client does not go through it: every dial is an in-process
// pipe handed straight to this peer's data plane, marked as the peer's own
// (kafka.InternalConn, principal kafka.InternalPrincipal), so the peer
// needs no credentials of its own and nothing on the network can pose as
// it. Any broker the client dials is served by this peer's data plane,
// which forwards to the backends as for any client.
func (n *Node) loopbackCredentials() []kgo.Opt {
	sec := n.cfg.KafkaSecurity
	if sec.TLSCertFile == "" && len(sec.SASLMechanisms) == 0 {
		return nil
	}
	return []kgo.Opt{kgo.Dialer(func(ctx context.Context, _, _ string) (conn net.Conn, err error) {
		dp := n.dp.Load()
		if dp == nil {
			return nil, errors.New("node: loopback kafka client: the data plane is not running")
		}
		client, server := net.Pipe()
		select {
		case dp.ln.conns <- kafka.InternalConn(server):
			return client, nil
		case <-dp.ln.done:
			err = net.ErrClosed
		case <-ctx.Done():
			err = ctx.Err()
		}
		client.Close()
		server.Close()
		return nil, fmt.Errorf("node: loopback kafka client: %w", err)
	})}
}

// loopbackAdmin answers the loopback admin client, building it on first
// use.
func (n *Node) loopbackAdmin() (*kadm.Client, error) {
	_, adm, err := n.loopbackClients()
	return adm, err
}

// loopbackClients answers the loopback client and its admin client.
func (n *Node) loopbackClients() (*kgo.Client, *kadm.Client, error) {
	lb := &n.loopback
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.closed {
		return nil, nil, errLoopbackClosed
	}
	if lb.adm != nil {
		return lb.cl, lb.adm, nil
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(n.loopbackAddr()),
		kgo.ClientID("switchyard-admin-" + n.cfg.Name),
		kgo.DialTimeout(loopbackDialTimeout),
		kgo.RetryTimeout(loopbackRetryTimeout),
		kgo.RequestRetries(5),
		kgo.MetadataMinAge(time.Second),
	}
	opts = append(opts, n.loopbackCredentials()...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("node: loopback kafka client: %w", err)
	}
	lb.cl, lb.adm = cl, kadm.NewClient(cl)
	lb.adm.SetTimeoutMillis(int32(loopbackTimeout / time.Millisecond))
	return lb.cl, lb.adm, nil
}

// closeLoopback closes the loopback client; later uses fail.
func (n *Node) closeLoopback() {
	lb := &n.loopback
	lb.mu.Lock()
	cl := lb.cl
	lb.cl, lb.adm, lb.closed = nil, nil, true
	lb.mu.Unlock()
	if cl != nil {
		cl.Close()
	}
}

// resolveResetTargets resolves an offset reset of group over topics (all
// their partitions, or those partitions lists per topic) to per-partition
// offsets, as kafka-consumer-groups.sh --reset-offsets does: earliest,
// latest, the first offset at or after a timestamp (latest when none), an
// offset clamped into [earliest, latest], or the committed offset shifted
// by N and clamped likewise (an error where the group has committed
// nothing). Old is the group's committed offset, -1 when none. Offsets are
// the virtual ones clients see. The result is sorted by topic, then
// partition.
//
// Errors: unknown topics and partitions wrap fsm.ErrNotFound, bad input
// fsm.ErrInvalid; anything else is backend trouble.
func (n *Node) resolveResetTargets(ctx context.Context, group string, topics []string,
	partitions map[string][]int32, to fsm.ResetTo) ([]fsm.ResetTarget, error) {
	topics, partitions, err := checkResetInput(group, topics, partitions, to)
	if err != nil {
		return nil, err
	}
	adm, err := n.loopbackAdmin()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, loopbackTimeout)
	defer cancel()

	tds, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("read the metadata of %v: %w", topics, err)
	}
	type tp struct {
		topic string
		p     int32
	}
	var want []tp
	for _, t := range topics {
		td, ok := tds[t]
		if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("%w: topic %q does not exist", fsm.ErrNotFound, t)
		}
		if td.Err != nil {
			return nil, fmt.Errorf("read the metadata of topic %q: %w", t, td.Err)
		}
		if ps, listed := partitions[t]; listed {
			for _, p := range ps {
				if _, ok := td.Partitions[p]; !ok {
					return nil, fmt.Errorf("%w: topic %q has no partition %d (it has %d)", fsm.ErrNotFound, t, p, len(td.Partitions))
				}
				want = append(want, tp{t, p})
			}
			continue
		}
		for _, p := range td.Partitions.Numbers() {
			want = append(want, tp{t, p})
		}
	}
	if len(want) > fsm.MaxResetTargets {
		return nil, fmt.Errorf("%w: the reset covers %d partitions, over the limit of %d; reset fewer topics at a time", fsm.ErrInvalid, len(want), fsm.MaxResetTargets)
	}

	committed, err := adm.FetchOffsetsForTopics(ctx, group, topics...)
	if err != nil {
		return nil, fmt.Errorf("read the committed offsets of group %q: %w", group, err)
	}
	starts, err := listedOffsets(adm.ListStartOffsets(ctx, topics...))
	if err != nil {
		return nil, fmt.Errorf("list the earliest offsets of %v: %w", topics, err)
	}
	ends, err := listedOffsets(adm.ListEndOffsets(ctx, topics...))
	if err != nil {
		return nil, fmt.Errorf("list the latest offsets of %v: %w", topics, err)
	}
	var atTime kadm.ListedOffsets
	if to.Kind == fsm.ResetToTimestamp {
		if atTime, err = listedOffsets(adm.ListOffsetsAfterMilli(ctx, to.Value, topics...)); err != nil {
			return nil, fmt.Errorf("list the offsets of %v at %d: %w", topics, to.Value, err)
		}
	}

	out := make([]fsm.ResetTarget, 0, len(want))
	for _, w := range want {
		old := int64(-1)
		if o, ok := committed.Lookup(w.topic, w.p); ok {
			if o.Err != nil && !errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
				return nil, fmt.Errorf("read the committed offset of group %q on %s/%d: %w", group, w.topic, w.p, o.Err)
			}
			if o.Err == nil && o.At >= 0 {
				old = o.At
			}
		}
		s, okS := starts.Lookup(w.topic, w.p)
		e, okE := ends.Lookup(w.topic, w.p)
		if !okS || !okE {
			return nil, fmt.Errorf("no earliest or latest offset listed for %s/%d", w.topic, w.p)
		}
		lo, hi := s.Offset, e.Offset
		var target int64
		switch to.Kind {
		case fsm.ResetToEarliest:
			target = lo
		case fsm.ResetToLatest:
			target = hi
		case fsm.ResetToTimestamp:
			o, ok := atTime.Lookup(w.topic, w.p)
			if !ok {
				return nil, fmt.Errorf("no offset listed for %s/%d at %d", w.topic, w.p, to.Value)
			}
			// kadm lists the end offset where no record is at or after
			// the time, as the tool does.
			target = o.Offset
			if target < 0 {
				target = hi
			}
		case fsm.ResetToOffset:
			target = clamp(to.Value, lo, hi)
		case fsm.ResetToShift:
			if old < 0 {
				return nil, fmt.Errorf("%w: cannot shift %s/%d by %d: group %q has no committed offset there; reset it to an offset, a time, earliest or latest instead",
					fsm.ErrInvalid, w.topic, w.p, to.Value, group)
			}
			target = clamp(addSat(old, to.Value), lo, hi)
		}
		out = append(out, fsm.ResetTarget{Topic: w.topic, Partition: w.p, Old: old, New: target})
	}
	return out, nil
}

// checkResetInput checks a reset's request and answers its topics sorted
// and unique and a copy of its partition lists, sorted.
func checkResetInput(group string, topics []string, partitions map[string][]int32, to fsm.ResetTo) ([]string, map[string][]int32, error) {
	if group == "" {
		return nil, nil, fmt.Errorf("%w: the group is empty", fsm.ErrInvalid)
	}
	if len(topics) == 0 {
		return nil, nil, fmt.Errorf("%w: name at least one topic to reset", fsm.ErrInvalid)
	}
	topics = slices.Clone(topics)
	slices.Sort(topics)
	topics = slices.Compact(topics)
	for _, t := range topics {
		if t == "" {
			return nil, nil, fmt.Errorf("%w: a topic name is empty", fsm.ErrInvalid)
		}
	}
	parts := make(map[string][]int32, len(partitions))
	for t, ps := range partitions {
		if _, ok := slices.BinarySearch(topics, t); !ok {
			return nil, nil, fmt.Errorf("%w: partitions are listed for topic %q, which the reset does not name", fsm.ErrInvalid, t)
		}
		if len(ps) == 0 {
			return nil, nil, fmt.Errorf("%w: the partition list of topic %q is empty; leave it out to reset every partition", fsm.ErrInvalid, t)
		}
		sorted := slices.Clone(ps)
		slices.Sort(sorted)
		if sorted[0] < 0 {
			return nil, nil, fmt.Errorf("%w: topic %q: partition %d is negative", fsm.ErrInvalid, t, sorted[0])
		}
		if len(slices.Compact(sorted)) != len(ps) {
			return nil, nil, fmt.Errorf("%w: topic %q: a partition is listed twice", fsm.ErrInvalid, t)
		}
		parts[t] = sorted
	}
	// The names and the target as the fsm will check them, before any
	// backend is asked (the targets here are placeholders).
	probe := fsm.StartOffsetReset{Group: group, Topics: topics, To: to, At: 1}
	for _, t := range topics {
		probe.Targets = append(probe.Targets, fsm.ResetTarget{Topic: t, Old: -1})
	}
	if err := probe.Validate(); err != nil {
		return nil, nil, err
	}
	switch to.Kind {
	case fsm.ResetToEarliest, fsm.ResetToLatest, fsm.ResetToShift:
	case fsm.ResetToTimestamp:
		if to.Value < 0 {
			return nil, nil, fmt.Errorf("%w: timestamp %d is negative; give unix milliseconds", fsm.ErrInvalid, to.Value)
		}
	case fsm.ResetToOffset:
		if to.Value < 0 {
			return nil, nil, fmt.Errorf("%w: offset %d is negative", fsm.ErrInvalid, to.Value)
		}
	default:
		return nil, nil, fmt.Errorf("%w: unknown reset target %q; use earliest, latest, timestamp, offset or shift", fsm.ErrInvalid, to.Kind)
	}
	return topics, parts, nil
}

// listedOffsets checks a listing: a topic that vanished is not found, a
// partition that failed is backend trouble.
func listedOffsets(l kadm.ListedOffsets, err error) (kadm.ListedOffsets, error) {
	if err != nil {
		return nil, err
	}
	for t, ps := range l {
		for p, o := range ps {
			if o.Err == nil {
				continue
			}
			if errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
				return nil, fmt.Errorf("%w: topic %q partition %d: %v", fsm.ErrNotFound, t, p, o.Err)
			}
			return nil, fmt.Errorf("%s/%d: %w", t, p, o.Err)
		}
	}
	return l, nil
}

func clamp(v, lo, hi int64) int64 { return max(lo, min(v, hi)) }

// addSat adds without wrapping around.
func addSat(a, b int64) int64 {
	switch {
	case b > 0 && a > math.MaxInt64-b:
		return math.MaxInt64
	case b < 0 && a < math.MinInt64-b:
		return math.MinInt64
	}
	return a + b
}
