package node

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/kafka"
)

// Shared producer ids (fsm/producer_ids.go, kafka/producer_ids.go): the
// data plane maps an idempotent producer's virtual id to a real one per
// backend cluster; the replicated table lets every peer use the same real
// id, so a partition that changes presenting peer keeps the broker's
// deduplication. The data plane reads the table only on a producer's first
// batch to a cluster (its own cache is in front), and claims through the
// one write path (Apply), which forwards to the leader.

// ProducerID is the claim the replicated table holds for (cluster, vpid,
// vepoch), as this peer has applied it. A claim older than
// fsm.ProducerIDClaimTTL by this peer's clock counts as none (Apply drops it
// at the next claim; until then it is only not used).
func (n *Node) ProducerID(cluster string, vpid int64, vepoch int16) (fsm.ClaimedProducerID, bool) {
	c, ok := n.fsm.ProducerID(cluster, vpid, vepoch)
	if !ok || c.At < time.Now().UnixMilli()-fsm.ProducerIDClaimTTL {
		return fsm.ClaimedProducerID{}, false
	}
	return c, true
}

// ClaimProducerID proposes that (cluster, vpid, vepoch) is the real id
// (id, epoch) and answers the claim that holds once it is committed: this
// one, or the one another peer made first, which the caller must use
// instead. It fails as Apply does (ErrUpgradeRequired while a peer of an
// older build remains, ErrNoLeader, ErrUnknownOutcome, ...); the caller
// then keeps its own id.
func (n *Node) ClaimProducerID(ctx context.Context, cluster string, vpid int64, vepoch int16, id int64, epoch int16) (fsm.ClaimedProducerID, error) {
	cmd := &fsm.ClaimProducerID{ClaimedProducerID: fsm.ClaimedProducerID{
		Cluster: cluster, VirtualID: vpid, VirtualEpoch: vepoch, RealID: id, RealEpoch: epoch, At: time.Now().UnixMilli(),
	}}
	res, err := n.Apply(ctx, cmd)
	if err != nil {
		return fsm.ClaimedProducerID{}, err
	}
	if res.ProducerID == nil {
		return fsm.ClaimedProducerID{}, fmt.Errorf("claim producer id on %s: the leader committed it at index %d but answered no claim", cluster, res.Index)
	}
	return *res.ProducerID, nil
}

// sharedProducerIDs is the node's kafka.SharedProducerIDs.
type sharedProducerIDs struct{ n *Node }

func (s sharedProducerIDs) Lookup(cluster string, vpid int64, vepoch int16) (kafka.SharedProducerID, bool) {
	c, ok := s.n.ProducerID(cluster, vpid, vepoch)
	return kafka.SharedProducerID{ID: c.RealID, Epoch: c.RealEpoch, At: c.At}, ok
}

func (s sharedProducerIDs) Claim(ctx context.Context, cluster string, vpid int64, vepoch int16, id int64, epoch int16) (kafka.SharedProducerID, error) {
	c, err := s.n.ClaimProducerID(ctx, cluster, vpid, vepoch, id, epoch)
	return kafka.SharedProducerID{ID: c.RealID, Epoch: c.RealEpoch, At: c.At}, err
}
