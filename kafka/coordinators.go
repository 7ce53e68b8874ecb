package kafka

// Consumer groups and transactions across clusters.
//
// A group has a home cluster (group prefix rules, else the default
// cluster): its membership (JoinGroup, SyncGroup, Heartbeat, LeaveGroup)
// lives there; a KIP-848 group's lives on the clusters its subscribed
// topics route to (68_consumer_group_heartbeat.go). Its offsets live with the topics:
// OffsetCommit, OffsetFetch and OffsetDelete are split by the cluster each
// topic routes to and the answers merged. On the home cluster a commit is
// forwarded as the client sent it; on another cluster, where the group has
// no members, it is sent as a "simple" commit (generation -1, no member
// id), which Kafka accepts for a group without members. A cluster that has
// no offsets for the group answers GROUP_ID_NOT_FOUND on some brokers
// (kfake); the proxy answers as Kafka does, with no committed offset.
//
// A transaction runs on the cluster of its partitions (txn_clusters.go):
// its producer id is virtual, initialised on every cluster; a partition
// (AddPartitionsToTxn) or offset (TxnOffsetCommit) of a second cluster in
// one transaction is refused with INVALID_PRODUCER_ID_MAPPING, which makes
// the client abort the transaction.
//
// Batched keys (OffsetFetch v8+, DescribeGroups, DeleteGroups,
// DescribeTransactions) are split per coordinator and the per-key answers
// concatenated. This file holds the coordinator cache and the helpers the
// group and transaction keys share; each key has its own NN_name.go file.

import (
	"context"
	"time"
)

// coordKey is a cached coordinator: of a group (0) or transactional id
// (1) on one backend. The cache is one bounded LRU for every cluster
// (Config.CoordinatorCacheSize, CoordinatorCacheTTL): the keys are the
// client's, so a client naming thousands of groups must not grow it
// without bound. A coordinator evicted or expired is asked again.
type coordKey struct {
	be  *Backend
	typ int8
	key string
}

// cachedCoordinator returns a cached coordinator without asking the backend.
func (s *Server) cachedCoordinator(be *Backend, typ int8, key string) (int32, bool) {
	return s.coords.get(coordKey{be, typ, key})
}

// setCoordinator records a coordinator seen in a FindCoordinator answer;
// node < 0 forgets it.
func (s *Server) setCoordinator(be *Backend, typ int8, key string, node int32) {
	if node < 0 {
		s.coords.remove(coordKey{be, typ, key})
		return
	}
	s.coords.put(coordKey{be, typ, key}, node)
}

// coordinator returns the broker coordinating key on be, asking be when
// it is not cached.
func (s *Server) coordinator(ctx context.Context, be *Backend, typ int8, key string) (int32, error) {
	if id, ok := s.cachedCoordinator(be, typ, key); ok {
		return id, nil
	}
	id, err := be.findCoordinator(ctx, typ, key)
	if err != nil {
		return -1, err
	}
	s.setCoordinator(be, typ, key, id)
	return id, nil
}

// coordinatorsOf resolves each key's coordinator on its home cluster
// (every cluster with all).
func (r *request) coordinatorsOf(typ int8, keys []string, all bool) map[target][]string {
	out := map[target][]string{}
	for _, k := range keys {
		if all {
			for _, be := range r.set.sorted {
				t := r.coordinator(be, typ, k)
				out[t] = append(out[t], k)
			}
			continue
		}
		if be := r.home(k); be != nil {
			t := r.coordinator(be, typ, k)
			out[t] = append(out[t], k)
		}
	}
	return out
}

// setHome records the home cluster of a group or transactional id for the
// family hooks; a request needs one.
func (r *request) setHome(key string) error {
	r.split.home = r.home(key)
	if r.split.home == nil {
		return errNoCluster
	}
	return nil
}

// coordinatorTimeout bounds a coordinator lookup on a cache miss.
const coordinatorTimeout = 10 * time.Second

// coordinatorTarget finds the broker coordinating key on be. When the
// lookup fails the broker is -1 (any broker), which answers with a
// coordinator error the client retries on, as it would against Kafka.
func (c *clientConn) coordinatorTarget(be *Backend, typ int8, key string) target {
	if id, ok := c.s.cachedCoordinator(be, typ, key); ok {
		return target{be, id}
	}
	// The lookup blocks this reader; let what is already queued leave first.
	c.flushUpstreams() // an error resurfaces on the next write
	ctx, cancel := context.WithTimeout(context.Background(), coordinatorTimeout)
	defer cancel()
	id, err := c.s.coordinator(ctx, be, typ, key)
	if err != nil {
		c.log.Debug("coordinator lookup failed", "cluster", be.Name(), "key", key, "err", err)
		return target{be, -1}
	}
	return target{be, id}
}

// toCoordinator forwards r as it is to the coordinator of key on be.
func (c *clientConn) toCoordinator(r *request, start time.Time, be *Backend, typ int8, key string) error {
	return c.toCoordinatorPost(r, start, be, typ, key, nil)
}

// toCoordinatorPost is toCoordinator with post applied to the answer.
func (c *clientConn) toCoordinatorPost(r *request, start time.Time, be *Backend, typ int8, key string, post postFunc) error {
	if be == nil {
		return errNoCluster
	}
	u, err := c.upstreamOrAny(c.coordinatorTarget(be, typ, key))
	if err != nil {
		return c.answerUnreachable(r, start, be, err) // unavailable.go
	}
	return c.forwardTo(u, r, start, post)
}

const (
	coordinatorGroup int8 = 0
	coordinatorTxn   int8 = 1
)
