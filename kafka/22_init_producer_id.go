package kafka

import "github.com/twmb/franz-go/pkg/kmsg"

// InitProducerID (22), AddOffsetsToTxn (25), EndTxn (26): all versions
// kmsg and the backend share.
//
// Transactional requests go as the client sent them to the transactional
// id's coordinator on its home cluster (coordinators.go). InitProducerID
// without a transactional id (an idempotent producer) is answered by the
// proxy with a virtual producer id, mapped per cluster on first use
// (producer_ids.go).

// toTxnCoordinator sends transaction requests to the transactional id's
// coordinator on its home cluster. InitProducerId without a transactional
// id is answered by the proxy (producer_ids.go).
func toTxnCoordinator(r *request) error {
	c, start := r.c, r.start
	req, err := decodeRequest(r)
	if err != nil {
		return err
	}
	var txn string
	switch v := req.(type) {
	case *kmsg.InitProducerIDRequest:
		if v.TransactionalID == nil {
			return handleIdempotentInit(c, r, start, v)
		}
		txn = *v.TransactionalID
	case *kmsg.AddOffsetsToTxnRequest:
		txn = v.TransactionalID
	case *kmsg.EndTxnRequest:
		txn = v.TransactionalID
	}
	return c.toCoordinator(r, start, r.home(txn), coordinatorTxn, txn)
}
