package kafka

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

const maxKey = kmsg.MaxKey

// handler serves one client request. It must reserve exactly one response
// slot (newPending) unless the request expects no response, and must not
// keep r's bytes after it returns. An error closes the connection.
type handler func(r *request) error

// versionCaps lowers the maximum version advertised for a key below what
// kmsg and the backend support, where later versions change routing.
var versionCaps = map[int16]int16{
	// AddPartitionsToTxn v4+ batches several transactions and is for
	// brokers only (KIP-890); clients use v3 and below.
	24: 3,
	// These versions name topics by id, which differ per cluster; clients
	// see virtual ids and use names in the data path (topicids.go).
	0:  12, // Produce v13
	1:  12, // Fetch v13
	8:  9,  // OffsetCommit v10
	9:  9,  // OffsetFetch v10
	28: 5,  // TxnOffsetCommit v6 (KIP-1319)
}

// handlerTable maps every API key the proxy serves to its handler. Keys
// without a handler are not advertised in ApiVersions and close the
// connection if sent, as a broker does for an unknown key.
//
// Routing classes (clusters.go: topics route to a cluster, groups and
// transactional ids have a home cluster):
//   - local answer: ApiVersions (18), InitProducerID without a
//     transactional id (22, virtual producer ids, producer_ids.go)
//   - merged across clusters: Metadata (3), FindCoordinator (10),
//     DescribeCluster (60, default cluster)
//   - split by topic cluster, then partition leader: Produce (0), Fetch
//     (1), ListOffsets (2), DeleteRecords (21), OffsetForLeaderEpoch (23),
//     DescribeProducers (61)
//   - group coordinator on the home cluster: JoinGroup (11), Heartbeat
//     (12), LeaveGroup (13), SyncGroup (14), DescribeGroups (15); offsets split by
//     topic cluster: OffsetCommit (8), OffsetFetch (9), OffsetDelete (47);
//     DeleteGroups (42) on every cluster (coordinators.go)
//   - transaction coordinator on the home cluster: InitProducerID (22),
//     AddPartitionsToTxn (24), AddOffsetsToTxn (25), EndTxn (26),
//     TxnOffsetCommit (28), DescribeTransactions (65); other clusters'
//     partitions are refused with INVALID_TXN_STATE
//   - every broker of every cluster, merged, keeping what the brokers
//     this peer presents coordinate: ListGroups (16), ListTransactions (66)
//   - controller of the topic's cluster: CreateTopics (19), DeleteTopics
//     (20), CreatePartitions (37), ElectLeaders (43),
//     AlterPartitionAssignments (45), ListPartitionReassignments (46);
//     UpdateFeatures (57) only with one cluster (admin.go)
//   - by config resource: DescribeConfigs (32), AlterConfigs (33),
//     IncrementalAlterConfigs (44) (configs.go)
//   - written to every cluster: CreateACLs (30), DeleteACLs (31),
//     AlterClientQuotas (49), AlterUserSCRAMCredentials (51)
//   - the default cluster: DescribeACLs (29), DescribeClientQuotas (48),
//     DescribeUserSCRAMCredentials (50), GetTelemetrySubscriptions (71),
//     PushTelemetry (72)
//
// Not served: broker-to-broker and controller keys, SASL (the proxy does
// not authenticate clients yet), log-dir keys (they name real brokers),
// DescribeTopicPartitions (75, clients fall back to Metadata), the KIP-848
// consumer group protocol (68, 69: clients fall back to the classic one;
// see topicids.go) and share groups.
func handlerTable() [maxKey + 1]handler {
	var t [maxKey + 1]handler
	t[0] = handleProduce
	t[1] = handleFetch
	t[2] = handleListOffsets
	t[3] = handleMetadata
	t[10] = handleFindCoordinator
	t[18] = handleApiVersions
	t[21] = handleDeleteRecords
	t[23] = handleOffsetForLeaderEpoch
	t[60] = handleDescribeCluster
	t[61] = handleDescribeProducers
	for _, k := range []int16{11, 12, 13, 14} {
		t[k] = toGroupCoordinator
	}
	t[8] = handleOffsetCommit
	t[9] = handleOffsetFetch
	t[28] = handleTxnOffsetCommit
	t[47] = handleOffsetDelete
	for _, k := range []int16{15, 42} {
		t[k] = handleGroupBatch
	}
	for _, k := range []int16{22, 25, 26} {
		t[k] = toTxnCoordinator
	}
	t[24] = handleAddPartitionsToTxn
	t[65] = handleDescribeTransactions
	t[16] = toEveryBroker
	t[66] = toEveryBroker
	t[19] = handleCreateTopics
	t[20] = handleDeleteTopics
	t[37] = handleCreatePartitions
	t[43] = handleElectLeaders
	t[45] = handleAlterPartitionAssignments
	t[46] = handleListPartitionReassignments
	t[57] = handleUpdateFeatures
	for _, k := range []int16{32, 33, 44} {
		t[k] = handleConfigs
	}
	for _, k := range []int16{30, 31, 49, 51} {
		t[k] = toEveryCluster
	}
	for _, k := range []int16{29, 48, 50, 71, 72} {
		t[k] = toAny
	}
	return t
}

func toAny(r *request) error {
	c, start := r.c, r.start
	return c.forwardAny(r, start, r.defaultBackend(), nil)
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
		return err
	}
	return c.forwardTo(u, r, start, post)
}

// toGroupCoordinator sends a group's membership requests (JoinGroup,
// Heartbeat, LeaveGroup, SyncGroup) to its
// coordinator on its home cluster.
func toGroupCoordinator(r *request) error {
	c, start := r.c, r.start
	req, err := decodeRequest(r)
	if err != nil {
		return err
	}
	var group string
	switch v := req.(type) {
	case *kmsg.JoinGroupRequest:
		group = v.Group
	case *kmsg.HeartbeatRequest:
		group = v.Group
	case *kmsg.LeaveGroupRequest:
		group = v.Group
	case *kmsg.SyncGroupRequest:
		group = v.Group
	}
	be := r.home(group)
	if _, join := req.(*kmsg.JoinGroupRequest); join {
		return c.toCoordinatorPost(r, start, be, coordinatorGroup, group, c.joinedPost(be, group, r.key, r.version))
	}
	c.s.memberSeen(be, req)
	return c.toCoordinator(r, start, be, coordinatorGroup, group)
}

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

const (
	coordinatorGroup int8 = 0
	coordinatorTxn   int8 = 1
)

// toEveryBroker serves the lists (ListGroups, ListTransactions) as the
// brokers this peer presents would: a broker lists only what it
// coordinates, and tools that ask every broker (librdkafka, kadm) take the
// broker that listed a group for its coordinator. So every broker of every
// cluster is asked, each key gets one lister (its home cluster's
// coordinator, else the first cluster that knows it: a group with offsets
// only), and a peer keeps the keys whose lister it presents, the peer
// FindCoordinator names. The union over the peers lists each key once.
// Errors and throttles come from every broker, as before: any of them may
// have left a key out.
func toEveryBroker(r *request) error {
	c, start := r.c, r.start
	req, err := decodeRequest(r)
	if err != nil {
		return err
	}
	var parts []part
	for _, be := range r.set.sorted {
		for _, id := range be.brokerIDs() {
			parts = append(parts, part{t: target{be, id}, req: req})
		}
	}
	if len(parts) == 0 {
		return c.forwardAny(r, start, r.defaultBackend(), nil)
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		l := newLister(r, parts)
		switch first := resps[0].(type) {
		case *kmsg.ListGroupsResponse:
			for i, x := range resps {
				o := x.(*kmsg.ListGroupsResponse)
				if first.ErrorCode == 0 {
					first.ErrorCode = o.ErrorCode
				}
				for _, g := range o.Groups {
					l.offer(g.Group, i)
				}
			}
			var groups []kmsg.ListGroupsResponseGroup
			for i, x := range resps {
				for _, g := range x.(*kmsg.ListGroupsResponse).Groups {
					if l.keep(g.Group, i) {
						groups = append(groups, g)
					}
				}
			}
			first.Groups = groups
			return first
		case *kmsg.ListTransactionsResponse:
			for i, x := range resps {
				o := x.(*kmsg.ListTransactionsResponse)
				if first.ErrorCode == 0 {
					first.ErrorCode = o.ErrorCode
				}
				for _, ts := range o.TransactionStates {
					l.offer(ts.TransactionalID, i)
				}
			}
			var states []kmsg.ListTransactionsResponseTransactionState
			for i, x := range resps {
				for _, ts := range x.(*kmsg.ListTransactionsResponse).TransactionStates {
					if l.keep(ts.TransactionalID, i) {
						states = append(states, ts)
					}
				}
			}
			first.TransactionStates = states
			return first
		}
		return resps[0]
	})
}

// lister picks, for each key of a merged list, the one part (backend
// broker) whose listing stands, and whether this peer presents it.
type lister struct {
	r     *request
	parts []part
	by    map[string]int // key → index of the part whose listing stands
	prs   map[*Backend]*presenter
}

func newLister(r *request, parts []part) *lister {
	return &lister{r: r, parts: parts, by: map[string]int{}, prs: map[*Backend]*presenter{}}
}

// offer records that part i listed key. The first listing by the key's
// home cluster wins, else the first listing at all, in part order (every
// peer orders parts the same way, so every peer picks the same one).
func (l *lister) offer(key string, i int) {
	j, ok := l.by[key]
	if !ok || l.r.home(key) == l.parts[i].t.be && l.r.home(key) != l.parts[j].t.be {
		l.by[key] = i
	}
}

// keep reports whether part i's listing of key is the one that stands and
// its broker is presented by this peer. When no peer is live to present
// it, the key is kept rather than lost.
func (l *lister) keep(key string, i int) bool {
	if l.by[key] != i {
		return false
	}
	l.by[key] = -1 // once, if a broker listed it twice
	t := l.parts[i].t
	pr := l.prs[t.be]
	if pr == nil {
		pr = l.r.presenter(t.be)
		l.prs[t.be] = pr
	}
	p := pr.peerFor(t.broker)
	return p < 0 || p == l.r.c.s.cfg.NodeID
}

// toController sends r to the default cluster's controller.
func toController(r *request) error {
	c, start := r.c, r.start
	be := r.defaultBackend()
	if be == nil {
		return errNoCluster
	}
	u, err := c.upstreamOrAny(target{be, be.controller()})
	if err != nil {
		return err
	}
	return c.forwardTo(u, r, start, nil)
}
