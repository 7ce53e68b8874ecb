package node

import (
	"context"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// prepareResume applies the resume policies of cluster's movable routes on
// their fallback clusters before a failover moves them.
func (n *Node) prepareResume(ctx context.Context, st *fsm.State, cluster string) error {
	return nil
}
