package kafka

// Transactions follow their partitions.
//
// A transactional id has no home cluster any more: each transaction runs
// on the cluster of the partitions it touches, and only a single
// transaction that spans clusters is refused. The pieces:
//
//   - One virtual producer id per transactional id, derived from the id
//     (txnVPID: bit 56 set, a hash of the id below it), so every peer
//     presents and recognises the same one without coordinating.
//   - InitProducerId with a transactional id goes to the transaction
//     coordinator of every cluster (initTxn). Each cluster issues its own
//     producer id; their epochs are levelled (a cluster behind is bumped
//     with KIP-360 re-inits until it reaches the others) so the client
//     sees one (virtual id, epoch) whose epoch is the real epoch on every
//     cluster. A second producer with the same transactional id therefore
//     bumps every cluster, and the first is fenced wherever it writes: the
//     broker compares the epoch, which the proxy never changes.
//   - Requests carrying the virtual id have it swapped for the cluster's
//     real one: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit
//     (re-encoded, they are small) and the transactional record batches of
//     Produce (in place, the CRC recomputed, as for idempotent producers).
//     A peer that did not see the InitProducerId learns the real id from
//     the cluster (DescribeTransactions), so the mapping is derived from
//     the backends, not held by one peer.
//   - The first partition added (AddPartitionsToTxn) fixes the
//     transaction's cluster; the peer that serves the transaction's
//     coordinator keeps it (txnPlace) and sends AddOffsetsToTxn and EndTxn
//     there. A partition of another cluster in the same transaction is
//     answered INVALID_PRODUCER_ID_MAPPING (txnSpanCode says why). When
//     the peer has no record of the transaction (it did not serve its
//     start), it asks the other clusters whether one of them has it
//     ongoing.
//   - KIP-890 part 2 (transaction.version 2: partitions added implicitly by
//     Produce, EndTxn v5 bumping the epoch on one cluster only) would fix
//     a transaction's cluster on whichever peer leads its first partition
//     and break the epoch levelling, so it is not advertised: the feature
//     level is capped at 1 and EndTxn at v4 (route.go versionCaps).
//     TxnOffsetCommit v5+ lets a broker start a transaction implicitly:
//     the proxy checks the cluster itself before (txnOffsetsOn).
//
// A producer id a client got before this scheme (a real id, not virtual)
// is forwarded as it is to the transactional id's home cluster, as before.

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnVPIDBit marks a transactional virtual producer id: idempotent virtual
// ids use bits 40-55 (producer_ids.go). A request's producer id is taken
// for the virtual one only when it equals txnVPID of the request's own
// transactional id, never by its range, so a real id (some brokers hash
// the transactional id into one) is not mistaken for it.
const txnVPIDBit = 56

// txnVPID is the virtual producer id every peer presents for txn.
func txnVPID(txn string) int64 {
	h := fnv.New64a()
	h.Write([]byte(txn))
	return 1<<txnVPIDBit | int64(h.Sum64()&(1<<txnVPIDBit-1))
}

// txnPIDKey is a transactional id on one cluster.
type txnPIDKey struct{ txn, cluster string }

// txnPlace is where this peer saw a transactional id's current
// transaction run: its cluster, open until an EndTxn succeeded.
type txnPlace struct {
	cluster string
	epoch   int16
	open    bool
}

// txnTable is what a peer knows about transactional ids; both maps are
// bounded LRUs (Config.ProducerIDMappings, ProducerIDIdle). Losing an
// entry costs a DescribeTransactions, never a wrong answer.
type txnTable struct {
	pids   *lru[txnPIDKey, int64] // the real producer id of txn on a cluster
	places *lru[string, txnPlace]
}

func (t *txnTable) init(cfg Config) {
	t.pids = newLRU[txnPIDKey, int64](cfg.ProducerIDMappings, cfg.ProducerIDIdle, 0, nil)
	t.places = newLRU[string, txnPlace](cfg.ProducerIDMappings, cfg.ProducerIDIdle, 0, nil)
}

// ongoingTxn reports whether a DescribeTransactions state means a
// transaction is running (or ending) on that cluster.
func ongoingTxn(state string) bool {
	switch state {
	case "Ongoing", "PrepareCommit", "PrepareAbort":
		return true
	}
	return false
}

// errTxnUnknown: the cluster has no producer id for a transactional id
// (it was added after the producer initialised, or the id expired there).
var errTxnUnknown = errors.New("transactional id unknown on the cluster")

// describeTxn asks be's coordinator of txn for its state.
func (s *Server) describeTxn(ctx context.Context, be *Backend, txn string) (kmsg.DescribeTransactionsResponseTransactionState, error) {
	var st kmsg.DescribeTransactionsResponseTransactionState
	node, err := s.coordinator(ctx, be, coordinatorTxn, txn)
	if err != nil {
		return st, err
	}
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{txn}
	resp, err := be.request(ctx, node, req)
	if err != nil {
		return st, err
	}
	r := resp.(*kmsg.DescribeTransactionsResponse)
	if len(r.TransactionStates) != 1 {
		return st, fmt.Errorf("describe transaction %q on %s: %d states in the answer", txn, be.Name(), len(r.TransactionStates))
	}
	st = r.TransactionStates[0]
	switch {
	case st.ErrorCode == kerr.TransactionalIDNotFound.Code:
		return st, fmt.Errorf("%w: %q on %s", errTxnUnknown, txn, be.Name())
	case isCoordinatorError(st.ErrorCode):
		s.setCoordinator(be, coordinatorTxn, txn, -1)
		fallthrough
	case st.ErrorCode != 0:
		return st, fmt.Errorf("describe transaction %q on %s: %w", txn, be.Name(), kerr.ErrorForCode(st.ErrorCode))
	}
	return st, nil
}

// txnLookup runs fn with a bounded context after flushing what this
// client has queued upstream: the lookup blocks its reader.
func (c *clientConn) txnLookup(fn func(ctx context.Context) error) error {
	c.flushUpstreams() // an error resurfaces on the next write
	ctx, cancel := context.WithTimeout(context.Background(), coordinatorTimeout)
	defer cancel()
	return fn(ctx)
}

// txnPID is the real producer id of txn on be: cached, else asked of be
// (DescribeTransactions), blocking this client's reader.
func (c *clientConn) txnPID(be *Backend, txn string) (int64, error) {
	key := txnPIDKey{txn, be.Name()}
	if id, ok := c.s.txns.pids.get(key); ok {
		return id, nil
	}
	var st kmsg.DescribeTransactionsResponseTransactionState
	err := c.txnLookup(func(ctx context.Context) (err error) {
		st, err = c.s.describeTxn(ctx, be, txn)
		return err
	})
	if err != nil {
		c.log.Debug("no producer id for a transactional id", "cluster", be.Name(), "txn", txn, "err", err)
		return -1, err
	}
	c.s.txns.pids.put(key, st.ProducerID)
	return st.ProducerID, nil
}

// txnPIDCode is the error a client gets when the real producer id of its
// transaction on a cluster cannot be had: INVALID_PRODUCER_ID_MAPPING when
// the cluster does not know the id (the client re-initialises, KIP-360,
// which reaches every cluster), else COORDINATOR_NOT_AVAILABLE (retried).
func txnPIDCode(err error) int16 {
	if errors.Is(err, errTxnUnknown) {
		return kerr.InvalidProducerIDMapping.Code
	}
	return kerr.CoordinatorNotAvailable.Code
}

// txnCluster is the cluster txn's current transaction runs on, for a
// request that would put it on want; nil when want is nil and no cluster
// runs it. The record of this peer is trusted when it agrees with want or
// says the transaction is over; when it names another cluster, that
// cluster is asked whether the transaction is still running there (it may
// have ended through another peer). Without a record, or while the
// transaction has no partitions yet (AddOffsetsToTxn answered here), the
// other clusters are asked whether one of them runs it.
func (c *clientConn) txnCluster(r *request, txn string, want *Backend) *Backend {
	p, known := c.s.txns.places.get(txn)
	if known && p.open && p.cluster != "" {
		if be := r.set.byName[p.cluster]; be != nil {
			if want == nil || be == want {
				return be
			}
			st, err := c.describeTxnBlocking(be, txn)
			if err != nil || ongoingTxn(st.State) {
				return be
			}
			return want
		}
	}
	if known && !p.open {
		return want // this peer saw the last transaction end
	}
	for _, be := range r.set.sorted {
		if be == want {
			continue
		}
		if st, err := c.describeTxnBlocking(be, txn); err == nil && ongoingTxn(st.State) {
			return be
		}
	}
	return want
}

// describeTxnBlocking is describeTxn from a client's reader.
func (c *clientConn) describeTxnBlocking(be *Backend, txn string) (st kmsg.DescribeTransactionsResponseTransactionState, err error) {
	err = c.txnLookup(func(ctx context.Context) error {
		st, err = c.s.describeTxn(ctx, be, txn)
		return err
	})
	return st, err
}

// placeTxn records that txn's transaction at epoch runs on be (open) or
// has ended there.
func (s *Server) placeTxn(txn string, be *Backend, epoch int16, open bool) {
	if be == nil {
		return
	}
	s.txns.places.put(txn, txnPlace{cluster: be.Name(), epoch: epoch, open: open})
}

// txnSpanCode answers a partition of a second cluster in one transaction:
// INVALID_PRODUCER_ID_MAPPING. The Java client (AddPartitionsToTxn) and
// franz-go treat it as abortable: the records fail with it, and aborting
// re-initialises the producer (KIP-360), which here aborts the transaction
// on its cluster and bumps the epoch on every cluster, after which the
// producer goes on. INVALID_TXN_STATE, the plainer name, is fatal to those
// clients: the producer would have to be closed for one refused partition.
// librdkafka also bumps the epoch for it from 1.8 on. The proxy logs the
// refusal with both clusters (refuseSpan).
var txnSpanCode = kerr.InvalidProducerIDMapping.Code

// refuseSpan logs why a partition was refused from a transaction.
func (c *clientConn) refuseSpan(txn, topic string, on, txnOn *Backend) {
	c.log.Info("refused a partition in a transaction that spans clusters",
		"txn", txn, "topic", topic, "cluster", on.Name(), "transaction_cluster", txnOn.Name())
}

// initTxnResult is one cluster's answer to the proxy's InitProducerId.
type initTxnResult struct {
	pid   int64
	epoch int16
}

// initTxnOn sends InitProducerId for txn to be's coordinator: a fresh one
// (pid < 0) or a KIP-360 bump of (pid, epoch).
func (s *Server) initTxnOn(ctx context.Context, be *Backend, txn string, timeout int32, pid int64, epoch int16) (initTxnResult, int16, error) {
	node, err := s.coordinator(ctx, be, coordinatorTxn, txn)
	if err != nil {
		return initTxnResult{}, 0, err
	}
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = &txn
	req.TransactionTimeoutMillis = timeout
	req.ProducerID, req.ProducerEpoch = pid, epoch
	resp, err := be.request(ctx, node, req)
	if err != nil {
		return initTxnResult{}, 0, err
	}
	r := resp.(*kmsg.InitProducerIDResponse)
	if isCoordinatorError(r.ErrorCode) {
		s.setCoordinator(be, coordinatorTxn, txn, -1)
	}
	return initTxnResult{r.ProducerID, r.ProducerEpoch}, r.ErrorCode, nil
}

// initTxnLevelling bounds how long InitProducerId may spend bringing the
// clusters' epochs level; past it the client is answered
// CONCURRENT_TRANSACTIONS and retries, which continues from where it
// stopped (each cluster keeps its bumps).
const initTxnLevelling = 20 * time.Second

// initTxn answers InitProducerId with a transactional id: every cluster's
// coordinator initialises (or, KIP-360, bumps) the id, the epochs are
// levelled and the client gets the virtual id with the common epoch.
func (c *clientConn) initTxn(r *request, req *kmsg.InitProducerIDRequest) error {
	txn := *req.TransactionalID
	vpid := txnVPID(txn)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.SetVersion(r.version)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	answer := func(code int16) error {
		resp.ErrorCode = code
		return c.respond(r, r.start, resp)
	}
	if txn == "" {
		return answer(kerr.InvalidRequest.Code)
	}
	if req.ProducerID >= 0 && req.ProducerID != vpid {
		// A real id from before virtual transactional ids: the home
		// cluster issued it and bumps it as Kafka would.
		return c.toCoordinator(r, r.start, r.home(txn), coordinatorTxn, txn)
	}
	clusters := r.set.sorted
	if len(clusters) == 0 {
		return errNoCluster
	}
	got := make([]initTxnResult, len(clusters))
	code := int16(0)
	err := c.txnLookup(func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, initTxnLevelling)
		defer cancel()
		for i, be := range clusters {
			pid, epoch := int64(-1), int16(-1)
			if req.ProducerID >= 0 {
				// KIP-360: bump the client's epoch on every cluster.
				var err error
				if pid, err = c.txnPID(be, txn); err != nil {
					code = txnPIDCode(err)
					return nil
				}
				epoch = req.ProducerEpoch
			}
			res, ec, err := c.s.initTxnOn(ctx, be, txn, req.TransactionTimeoutMillis, pid, epoch)
			if err != nil {
				return err
			}
			if ec != 0 {
				code = ec
				return nil
			}
			got[i] = res
		}
		// Level the epochs: bump each cluster that is behind until none is.
		for {
			top := got[0].epoch
			for _, g := range got[1:] {
				top = max(top, g.epoch)
			}
			level := true
			for i, be := range clusters {
				if got[i].epoch == top {
					continue
				}
				level = false
				if ctx.Err() != nil {
					code = kerr.ConcurrentTransactions.Code
					return nil
				}
				res, ec, err := c.s.initTxnOn(ctx, be, txn, req.TransactionTimeoutMillis, got[i].pid, got[i].epoch)
				if err != nil {
					return err
				}
				if ec != 0 {
					code = ec
					return nil
				}
				got[i] = res
			}
			if level {
				return nil
			}
		}
	})
	if err != nil {
		c.log.Debug("init transactional producer id failed", "txn", txn, "err", err)
		return answer(kerr.CoordinatorNotAvailable.Code)
	}
	if code != 0 {
		return answer(code)
	}
	for i, be := range clusters {
		c.s.txns.pids.put(txnPIDKey{txn, be.Name()}, got[i].pid)
	}
	// A fresh epoch has no transaction yet.
	c.s.placeTxn(txn, r.home(txn), got[0].epoch, false)
	resp.ProducerID, resp.ProducerEpoch = vpid, got[0].epoch
	return answer(0)
}

// toTxnCluster forwards a transaction request whose producer id is *pid
// to txn's coordinator on be, the virtual id swapped for be's real one;
// post sees the answer (nil: none).
func (c *clientConn) toTxnCluster(r *request, req kmsg.Request, be *Backend, txn string, pid *int64, fail func(code int16) kmsg.Response, post func(kmsg.Response)) error {
	if be == nil {
		return errNoCluster
	}
	if *pid != txnVPID(txn) {
		return c.toCoordinator(r, r.start, r.home(txn), coordinatorTxn, txn)
	}
	real, err := c.txnPID(be, txn)
	if err != nil {
		resp := fail(txnPIDCode(err))
		resp.SetVersion(r.version)
		return c.respond(r, r.start, resp)
	}
	*pid = real
	t := c.coordinatorTarget(be, coordinatorTxn, txn)
	return c.scatter(r, r.start, []part{{t: t, req: req}}, func(resps []kmsg.Response) kmsg.Response {
		if post != nil {
			post(resps[0])
		}
		return resps[0]
	})
}

// addOffsetsToTxn sends AddOffsetsToTxn to the cluster the transaction
// runs on (its partitions'). Before any partition is added the cluster is
// not known (librdkafka may send it first): the proxy answers it itself,
// and the peer serving the TxnOffsetCommit that follows adds the group on
// the cluster of the committed topics (txnOffsetsOn), where the broker
// checks the epoch.
func (c *clientConn) addOffsetsToTxn(r *request, req *kmsg.AddOffsetsToTxnRequest) error {
	txn := req.TransactionalID
	if req.ProducerID != txnVPID(txn) {
		return c.toCoordinator(r, r.start, r.home(txn), coordinatorTxn, txn)
	}
	be := c.txnCluster(r, txn, nil)
	if be == nil {
		c.s.txns.places.put(txn, txnPlace{epoch: req.ProducerEpoch, open: true})
		resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
		resp.SetVersion(r.version)
		return c.respond(r, r.start, resp)
	}
	c.s.placeTxn(txn, be, req.ProducerEpoch, true)
	return c.toTxnCluster(r, req, be, txn, &req.ProducerID, func(code int16) kmsg.Response {
		return &kmsg.AddOffsetsToTxnResponse{ErrorCode: code}
	}, nil)
}

// endTxn sends EndTxn to the cluster the transaction runs on; an EndTxn
// that succeeds closes this peer's record of it. A transaction that no
// cluster runs and that this peer saw only an AddOffsetsToTxn of (nothing
// was committed in it) ends here; one this peer knows nothing of goes to
// the transactional id's home cluster, which answers as Kafka does.
func (c *clientConn) endTxn(r *request, req *kmsg.EndTxnRequest) error {
	txn := req.TransactionalID
	if req.ProducerID != txnVPID(txn) {
		return c.toCoordinator(r, r.start, r.home(txn), coordinatorTxn, txn)
	}
	epoch := req.ProducerEpoch
	be := c.txnCluster(r, txn, nil)
	if be == nil {
		if p, ok := c.s.txns.places.get(txn); ok && p.open && p.cluster == "" && p.epoch == epoch {
			c.s.txns.places.put(txn, txnPlace{epoch: epoch})
			resp := req.ResponseKind().(*kmsg.EndTxnResponse)
			resp.SetVersion(r.version)
			resp.ProducerID, resp.ProducerEpoch = -1, -1
			return c.respond(r, r.start, resp)
		}
		be = r.home(txn)
	}
	return c.toTxnCluster(r, req, be, txn, &req.ProducerID, func(code int16) kmsg.Response {
		return &kmsg.EndTxnResponse{ErrorCode: code, ProducerID: -1, ProducerEpoch: -1}
	}, func(resp kmsg.Response) {
		if resp.(*kmsg.EndTxnResponse).ErrorCode == 0 {
			c.s.placeTxn(txn, be, epoch, false)
		}
	})
}

// txnOffsetsOn readies be for a TxnOffsetCommit of the virtual producer
// of txn: the transaction must not run on another cluster (asked of the
// others when be does not run it yet: refused with txnSpanCode), and the
// group is added to it on be (an AddOffsetsToTxn, which Kafka answers at
// once when the group is in already), since the client's AddOffsetsToTxn
// may have been answered by the proxy before the transaction's cluster
// was known. It returns the partition error for the commit, else 0.
func (c *clientConn) txnOffsetsOn(r *request, req *kmsg.TxnOffsetCommitRequest, be *Backend) int16 {
	txn := req.TransactionalID
	pid, err := c.txnPID(be, txn)
	if err != nil {
		return txnPIDCode(err)
	}
	var code int16
	err = c.txnLookup(func(ctx context.Context) error {
		if len(r.set.sorted) > 1 {
			if code = c.txnOnOther(ctx, r, req, be); code != 0 {
				return nil
			}
		}
		node, err := c.s.coordinator(ctx, be, coordinatorTxn, txn)
		if err != nil {
			return err
		}
		add := kmsg.NewPtrAddOffsetsToTxnRequest()
		add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = txn, pid, req.ProducerEpoch, req.Group
		resp, err := be.request(ctx, node, add)
		if err != nil {
			return err
		}
		code = resp.(*kmsg.AddOffsetsToTxnResponse).ErrorCode
		if isCoordinatorError(code) {
			c.s.setCoordinator(be, coordinatorTxn, txn, -1)
		}
		return nil
	})
	if err != nil {
		c.log.Debug("adding offsets to a transaction failed", "cluster", be.Name(), "txn", txn, "err", err)
		return kerr.CoordinatorNotAvailable.Code
	}
	return code
}

// txnOnOther returns txnSpanCode when the transaction of a TxnOffsetCommit
// for be does not run on be but on another cluster; else 0.
func (c *clientConn) txnOnOther(ctx context.Context, r *request, req *kmsg.TxnOffsetCommitRequest, be *Backend) int16 {
	txn := req.TransactionalID
	if st, err := c.s.describeTxn(ctx, be, txn); err != nil || ongoingTxn(st.State) {
		return 0 // runs here; or the commit finds out from be itself
	}
	for _, o := range r.set.sorted {
		if o == be {
			continue
		}
		if st, err := c.s.describeTxn(ctx, o, txn); err == nil && ongoingTxn(st.State) {
			c.refuseSpan(txn, "offsets of group "+req.Group, be, o)
			return txnSpanCode
		}
	}
	return 0
}

// mapTxnProducers rewrites the batches of txn's virtual producer id in
// records to be's real id for txn, keeping the epoch (levelled, so the
// broker fences a stale one itself). It returns a partition error code:
// CORRUPT_MESSAGE for a batch whose CRC is wrong, INVALID_PRODUCER_ID_MAPPING
// when be does not know txn (the client re-initialises, which reaches
// every cluster), REQUEST_TIMED_OUT when be could not be asked (retried);
// else 0. A miss blocks this client's reader for one DescribeTransactions.
// Which cluster the transaction runs on is checked by the Produce topic
// hook (txnElsewhere) only where this peer has a record of it: the peer
// that leads a partition need not be the one that saw AddPartitionsToTxn.
// Clients add a partition before they write to it, and that is where a
// transaction spanning clusters is refused.
//
// On a migrated topic's segment (part set, scope its pidScope) the
// sequences are rebased, as for idempotent producers (mapProducers): the
// client continues the sequences it had on the previous segment, which a
// partition that never saw the real id refuses (KAFKA-15591). The real id
// of a transactional id is one per cluster, so a partition the topic
// comes back to may hold the id's state from its earlier segment there:
// the first batch then continues from the sequence the partition last
// wrote for it at that epoch (DescribeProducers, txnSeqStart), else from 0.
func (c *clientConn) mapTxnProducers(r *request, be *Backend, txn, scope string, part *seqPart, records []byte) int16 {
	vpid := txnVPID(txn)
	var code int16
	batchesOf(records, func(batch []byte) bool {
		pid, epoch := batchProducer(batch)
		if pid != vpid {
			return true
		}
		if !batchRewritable(batch) {
			c.s.metrics.corruptBatches.Inc()
			code = kerr.CorruptMessage.Code
			return false
		}
		real, err := c.txnPID(be, txn)
		if err != nil {
			code = kerr.RequestTimedOut.Code
			if errors.Is(err, errTxnUnknown) {
				code = kerr.InvalidProducerIDMapping.Code
			}
			return false
		}
		if part != nil {
			start := func() (int32, int16) { return c.txnSeqStart(be, part, real, epoch) }
			if code = c.s.pids.rebase(scope, vpid, epoch, part, batch, start); code != 0 {
				return false
			}
			if k := (seqBaseKey{scope, vpid, epoch, part.topic, part.partition}); c.s.pids.guessed(k) {
				r.split.seqGuesses = append(r.split.seqGuesses, k)
			}
		}
		setBatchProducer(batch, real, epoch)
		return true
	})
	return code
}

// txnSeqStart is the sequence the real producer id pid at epoch continues
// with on part of be: one past the last the partition's leader holds for
// it at that epoch (DescribeProducers, KIP-664), else 0 (a new epoch, or a
// producer the partition has no state for, starts at 0). A failure is
// REQUEST_TIMED_OUT: the client retries. A cluster without DescribeProducers
// (before Kafka 2.8) is taken to have no state for it.
func (c *clientConn) txnSeqStart(be *Backend, part *seqPart, pid int64, epoch int16) (int32, int16) {
	if _, ok := be.versionsFor(kmsg.DescribeProducers.Int16()); !ok {
		return 0, 0 // before Kafka 2.8 (KIP-664): nothing to ask; start at 0
	}
	req := kmsg.NewPtrDescribeProducersRequest()
	rt := kmsg.NewDescribeProducersRequestTopic()
	rt.Topic, rt.Partitions = part.topic, []int32{part.partition}
	req.Topics = append(req.Topics, rt)
	var resp *kmsg.DescribeProducersResponse
	err := c.txnLookup(func(ctx context.Context) error {
		kr, err := be.request(ctx, be.leader(part.topic, part.partition), req)
		if err == nil {
			resp = kr.(*kmsg.DescribeProducersResponse)
		}
		return err
	})
	if err != nil {
		c.log.Debug("describe producers failed", "cluster", be.Name(), "topic", part.topic, "partition", part.partition, "err", err)
		return 0, kerr.RequestTimedOut.Code
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.Partition != part.partition {
				continue
			}
			if p.ErrorCode != 0 {
				if isLeadershipError(p.ErrorCode) {
					return 0, p.ErrorCode
				}
				return 0, kerr.RequestTimedOut.Code
			}
			for _, a := range p.ActiveProducers {
				if a.ProducerID == pid && a.ProducerEpoch == int32(epoch) && a.LastSequence >= 0 {
					return int32((int64(a.LastSequence) + 1) % math.MaxInt32), 0
				}
			}
		}
	}
	return 0, 0
}

// txnHoldsFenced reports whether txn's transaction, with the virtual
// producer id, may go on with topic on be, its source, while the topic's
// migration is fenced, so that it can end: it runs on be and already
// holds the topic (some partition added), and, for a write (parts, the
// partitions written, all of which it must hold), it has already written
// some partition of the topic in this transaction (DescribeProducers: a
// transaction start offset). Such a transaction keeps the topic's last
// stable offset below its high watermark, so the driver cannot record the
// bases before it ends, and the client ends it only after its writes are
// answered: every write let through lands before the bases. Any other
// transaction is refused until the switch (AddPartitionsToTxn for a
// transaction that does not hold the topic yet, every write of one that
// wrote none of it), so the fence ends. The lookups block this client's
// reader: only a fenced topic's transactional requests pay them, for the
// fence's short duration. Any doubt (be cannot be asked) is a refusal,
// which the client retries.
func (c *clientConn) txnHoldsFenced(txn string, pid int64, be *Backend, topic string, parts []int32) bool {
	if txn == "" || pid != txnVPID(txn) {
		return false
	}
	st, err := c.describeTxnBlocking(be, txn)
	if err != nil || !ongoingTxn(st.State) {
		return false
	}
	var held []int32
	for _, t := range st.Topics {
		if t.Topic == topic {
			held = append(held, t.Partitions...)
		}
	}
	if len(held) == 0 {
		return false
	}
	if parts == nil {
		return true
	}
	for _, p := range parts {
		if !slices.Contains(held, p) {
			return false
		}
	}
	real, err := c.txnPID(be, txn)
	if err != nil {
		return false
	}
	return c.txnWroteOn(be, topic, held, real)
}

// txnWroteOn reports whether the real producer id pid has a transaction
// start offset (it wrote in its current transaction) on one of topic's
// partitions parts of be, asking each partition's leader with
// DescribeProducers (KIP-664).
func (c *clientConn) txnWroteOn(be *Backend, topic string, parts []int32, pid int64) bool {
	if _, ok := be.versionsFor(kmsg.DescribeProducers.Int16()); !ok {
		return false // before Kafka 2.8: the transaction waits for the switch
	}
	byLeader := map[int32][]int32{}
	for _, p := range parts {
		l := be.leader(topic, p)
		byLeader[l] = append(byLeader[l], p)
	}
	wrote := false
	err := c.txnLookup(func(ctx context.Context) error {
		for l, ps := range byLeader {
			req := kmsg.NewPtrDescribeProducersRequest()
			rt := kmsg.NewDescribeProducersRequestTopic()
			rt.Topic, rt.Partitions = topic, ps
			req.Topics = append(req.Topics, rt)
			kr, err := be.request(ctx, l, req)
			if err != nil {
				return err
			}
			for _, t := range kr.(*kmsg.DescribeProducersResponse).Topics {
				for _, p := range t.Partitions {
					for _, a := range p.ActiveProducers {
						if p.ErrorCode == 0 && a.ProducerID == pid && a.CurrentTxnStartOffset >= 0 {
							wrote = true
							return nil
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		c.log.Debug("describe producers failed", "cluster", be.Name(), "topic", topic, "err", err)
		return false
	}
	return wrote
}

// txnElsewhere reports the cluster txn's transaction runs on when this
// peer's record says it is open on another cluster than be and that
// cluster confirms it; nil otherwise (no record here is no refusal: the
// transaction's partitions were checked when they were added). On a
// migrated topic whose previous segment is on prev (nil: none), a write
// of a transaction this peer has no open record of is checked against
// prev even so: a transaction that added the topic's partitions there
// through another peer before the switch, and wrote nothing, would
// otherwise write here outside any transaction of be (a broker that does
// not verify transactions keeps it, one that adds partitions implicitly
// takes its sequences for a gap). The answer is recorded, so this costs
// one DescribeTransactions per peer and transactional id after a switch.
func (c *clientConn) txnElsewhere(r *request, txn string, be, prev *Backend, epoch int16) *Backend {
	p, ok := c.s.txns.places.get(txn)
	if ok && p.open && p.cluster == be.Name() {
		return nil
	}
	if !ok || !p.open {
		if prev == nil || prev == be {
			return nil
		}
		if st, err := c.describeTxnBlocking(prev, txn); err == nil && ongoingTxn(st.State) {
			c.s.placeTxn(txn, prev, epoch, true)
			return prev
		}
		c.s.placeTxn(txn, be, epoch, true)
		return nil
	}
	if on := c.txnCluster(r, txn, be); on != be {
		return on
	}
	return nil
}
