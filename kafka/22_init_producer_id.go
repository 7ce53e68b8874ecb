package kafka

import "github.com/twmb/franz-go/pkg/kmsg"

// InitProducerID (22), AddOffsetsToTxn (25): all versions kmsg and the
// backend share. EndTxn (26): v0–v4 (v5 bumps the epoch on one cluster,
// KIP-890 part 2: route.go versionCaps).
//
// InitProducerID without a transactional id (an idempotent producer) is
// answered by the proxy with a virtual producer id, mapped per cluster on
// first use (producer_ids.go). With a transactional id it goes to the
// transaction coordinator of every cluster, and the client gets the
// transactional id's virtual producer id with the clusters' levelled epoch
// (txn_clusters.go). AddOffsetsToTxn and EndTxn go to the coordinator on
// the cluster the transaction runs on (its partitions' cluster, else the
// transactional id's home cluster), the virtual producer id swapped for
// that cluster's real one.

// toTxnCoordinator serves the transaction coordinator keys 22, 25, 26.
func toTxnCoordinator(r *request) error {
	c := r.c
	req, err := decodeRequest(r)
	if err != nil {
		return err
	}
	switch v := req.(type) {
	case *kmsg.InitProducerIDRequest:
		if v.TransactionalID == nil {
			return handleIdempotentInit(c, r, r.start, v)
		}
		return c.initTxn(r, v)
	case *kmsg.AddOffsetsToTxnRequest:
		return c.addOffsetsToTxn(r, v)
	case *kmsg.EndTxnRequest:
		return c.endTxn(r, v)
	}
	return c.forwardAny(r, r.start, r.defaultBackend(), nil)
}
