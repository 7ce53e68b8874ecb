package kafka

// Admin access to a backend for the node's control plane (the leader's
// migration driver, node/migrate.go, and the admin API): exported wrappers
// over the backend's control connections, its metadata and its
// coordinator lookup. Nothing here goes through the client pipeline: these
// are the proxy's own requests, sent with its own correlation ids on the
// control connections, bounded by BrokerTimeout and MaxResponseBytes like
// every other lookup.

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Request sends req to broker (any reachable broker when broker < 0) at
// the highest version both kmsg and every broker of the backend support,
// capped at maxVersion when maxVersion ≥ 0 (for keys whose newer versions
// name topics by id, which the caller does not want to resolve).
func (b *Backend) Request(ctx context.Context, broker int32, req kmsg.Request, maxVersion int16) (kmsg.Response, error) {
	vs := b.versions.Load()
	if vs == nil {
		return nil, fmt.Errorf("%w: versions of %s not loaded", ErrNoBroker, b.cfg.Name)
	}
	r := vs.keys[req.Key()]
	v := min(req.MaxVersion(), r.max)
	if maxVersion >= 0 {
		v = min(v, maxVersion)
	}
	if v < r.min || v < 0 {
		return nil, fmt.Errorf("backend %s does not support %s at version %d or below", b.cfg.Name, kmsg.NameForKey(req.Key()), maxVersion)
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

// Admin sends a topic-administration request (CreateTopics,
// DescribeConfigs) to the controller, or to any broker when the controller
// is unknown (it answers NOT_CONTROLLER and the caller retries).
func (b *Backend) Admin(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	return b.Request(ctx, b.controller(), req, -1)
}

// Brokers returns the sorted ids of the backend's known brokers.
func (b *Backend) Brokers() []int32 { return slices.Clone(b.brokerIDs()) }

// Leader returns the leader broker of a partition as last seen in the
// metadata, or -1.
func (b *Backend) Leader(topic string, partition int32) int32 { return b.leader(topic, partition) }

// Partitions returns the partition count of topic as last seen in the
// metadata.
func (b *Backend) Partitions(topic string) (int, bool) {
	v, ok := b.topics.Load(topic)
	if !ok {
		return 0, false
	}
	return len(v.(*topicMeta).leaders), true
}

// TopicPartitions returns every topic in the backend's metadata as last
// refreshed, with its partition count (internal topics included). It reads
// the cache only; nothing is asked of the brokers.
func (b *Backend) TopicPartitions() map[string]int {
	out := map[string]int{}
	b.topics.Range(func(k, v any) bool {
		out[k.(string)] = len(v.(*topicMeta).leaders)
		return true
	})
	return out
}

// TopicMetadata asks the backend for topic's metadata now (any broker)
// and records what it learns, so Leader follows it. It returns
// kerr.UnknownTopicOrPartition (errors.Is) for a topic the cluster does
// not have.
func (b *Backend) TopicMetadata(ctx context.Context, topic string) (*kmsg.MetadataResponseTopic, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = []kmsg.MetadataRequestTopic{rt}
	req.AllowAutoTopicCreation = false
	resp, err := b.Request(ctx, -1, req, -1)
	if err != nil {
		return nil, err
	}
	mr := resp.(*kmsg.MetadataResponse)
	b.updateMetadata(mr, false)
	for i := range mr.Topics {
		t := &mr.Topics[i]
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if t.ErrorCode != 0 {
			return nil, fmt.Errorf("metadata of topic %q on %s: %w", topic, b.cfg.Name, kerr.ErrorForCode(t.ErrorCode))
		}
		return t, nil
	}
	return nil, fmt.Errorf("metadata of topic %q on %s: %w (not in the answer)", topic, b.cfg.Name, kerr.UnknownTopicOrPartition)
}

// Coordinator returns the broker coordinating group on the backend, asked
// now (no cache: the driver's lookups are rare and must follow a moved
// coordinator at once).
func (b *Backend) Coordinator(ctx context.Context, group string) (int32, error) {
	return b.findCoordinator(ctx, coordinatorGroup, group)
}

// CoordinatorRequest sends req to the coordinator of group, capped at
// maxVersion as Request.
func (b *Backend) CoordinatorRequest(ctx context.Context, group string, req kmsg.Request, maxVersion int16) (kmsg.Response, error) {
	id, err := b.Coordinator(ctx, group)
	if err != nil {
		return nil, err
	}
	return b.Request(ctx, id, req, maxVersion)
}
