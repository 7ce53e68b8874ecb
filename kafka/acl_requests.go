package kafka

// Where requests are authorized, as Kafka's KafkaApis does it, once the
// listener authenticates (acl.go has the rules' semantics):
//
//   - per topic, in the resolver (pipeline.go request.topic, topicOp): a
//     topic the principal may not use gets TOPIC_AUTHORIZATION_FAILED in
//     its own entry while the rest of the request proceeds (Produce Write,
//     Fetch Read, ListOffsets, OffsetForLeaderEpoch and OffsetFetch
//     Describe, DeleteRecords Delete, OffsetCommit, TxnOffsetCommit,
//     OffsetDelete, DescribeProducers and share fetches Read,
//     AddPartitionsToTxn Write, CreateTopics Create on the topic or the
//     cluster, CreatePartitions Alter; a transactional Produce also needs
//     Write on its transactional id, else every topic is
//     TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
//   - per request, before the handler (authorizeThen): the group, the
//     transactional id or the cluster a request acts on; a denial answers
//     the whole request with GROUP_, TRANSACTIONAL_ID_ or
//     CLUSTER_AUTHORIZATION_FAILED and nothing is forwarded;
//   - per entry of batch requests (DescribeGroups, DeleteGroups,
//     FindCoordinator v4+, DeleteTopics, the config keys,
//     DescribeTransactions, ConsumerGroupDescribe, ShareGroupDescribe,
//     DescribeShareGroupOffsets, OffsetFetch v8+): the denied entries are taken out of the request
//     before it is forwarded and answered with their error in the
//     response (amend);
//   - listings keep what the principal may Describe: Metadata and
//     DescribeTopicPartitions for all topics (03_metadata.go,
//     75_describe_topic_partitions.go), ListGroups, ListTransactions.
//
// Not checked, as in Kafka: ApiVersions, the SASL keys, and the telemetry
// keys (GetTelemetrySubscriptions, PushTelemetry).

import (
	"reflect"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

const clusterName = fsm.ClusterResourceName

// topicOp is the operation a topic named by a request of key needs, checked
// in the resolver; opUnknown for keys checked elsewhere.
func topicOp(key int16) aclOp {
	switch key {
	case 0, 24: // Produce, AddPartitionsToTxn
		return opWrite
	case 1, 8, 28, 47, 61, 78, 79: // Fetch, OffsetCommit, TxnOffsetCommit, OffsetDelete, DescribeProducers, ShareFetch, ShareAcknowledge
		return opRead
	case 2, 9, 23: // ListOffsets, OffsetFetch, OffsetForLeaderEpoch
		return opDescribe
	case 21: // DeleteRecords
		return opDelete
	case 37: // CreatePartitions
		return opAlter
	case 19: // CreateTopics: Create on the topic or the cluster (topicAllowed)
		return opCreate
	}
	return opUnknown
}

// topicAllowed is the resolver's check of one topic of r (topicOp gives op);
// the code answers a denied topic.
func (r *request) topicAllowed(op aclOp, name string) (bool, int16) {
	if !r.authzOn() {
		return true, 0
	}
	switch r.key {
	case 19:
		return r.allowsQuiet(opCreate, resCluster, clusterName) || r.allows(opCreate, resTopic, name), kerr.TopicAuthorizationFailed.Code
	}
	return r.allows(op, resTopic, name), kerr.TopicAuthorizationFailed.Code
}

// mayCreateTopic: Kafka lets a principal create a topic with Create on the
// cluster or on the topic. For Metadata's auto-creation, so not counted as
// a denial: the topic is then looked up only.
func (r *request) mayCreateTopic(name string) bool {
	return r.allowsQuiet(opCreate, resCluster, clusterName) || r.allowsQuiet(opCreate, resTopic, name)
}

// allowsQuiet is allows without counting or logging a denial: for
// listings, which leave out what the principal may not see, and for the
// first of two alternatives.
func (r *request) allowsQuiet(op aclOp, res aclRes, name string) bool {
	if !r.authzOn() {
		return true
	}
	z := r.c.s.authz
	principal := z.principalOf(r.c)
	if z.super[principal] {
		return true
	}
	switch z.index(r.st).check(principal, r.c.clientIP.Unmap(), op, res, name) {
	case allowed:
		return true
	case noRule:
		return z.allowIfNoACL
	}
	return false
}

// need is one authorization a whole request needs, and the error code that
// answers its denial.
type need struct {
	op   aclOp
	res  aclRes
	name string
	code int16
}

var (
	groupCode   = kerr.GroupAuthorizationFailed.Code
	txnCode     = kerr.TransactionalIDAuthorizationFailed.Code
	clusterCode = kerr.ClusterAuthorizationFailed.Code
	topicCode   = kerr.TopicAuthorizationFailed.Code
)

// wholeNeeds is what a request of r's key needs as a whole (nil: nothing
// beyond its entries).
func wholeNeeds(r *request, req kmsg.Request) []need {
	group := func(op aclOp, g string) need { return need{op, resGroup, g, groupCode} }
	txn := func(id string) need { return need{opWrite, resTxn, id, txnCode} }
	cluster := func(op aclOp) []need { return []need{{op, resCluster, clusterName, clusterCode}} }
	switch q := req.(type) {
	case *kmsg.JoinGroupRequest:
		return []need{group(opRead, q.Group)}
	case *kmsg.HeartbeatRequest:
		return []need{group(opRead, q.Group)}
	case *kmsg.LeaveGroupRequest:
		return []need{group(opRead, q.Group)}
	case *kmsg.SyncGroupRequest:
		return []need{group(opRead, q.Group)}
	case *kmsg.ConsumerGroupHeartbeatRequest:
		return []need{group(opRead, q.Group)}
	case *kmsg.ShareGroupHeartbeatRequest:
		return []need{group(opRead, q.GroupID)}
	case *kmsg.ShareFetchRequest:
		if q.GroupID != nil {
			return []need{group(opRead, *q.GroupID)}
		}
	case *kmsg.ShareAcknowledgeRequest:
		if q.GroupID != nil {
			return []need{group(opRead, *q.GroupID)}
		}
	case *kmsg.OffsetCommitRequest:
		return []need{group(opRead, q.Group)}
	case *kmsg.OffsetDeleteRequest:
		return []need{group(opDelete, q.Group)}
	case *kmsg.OffsetFetchRequest:
		if r.version < 8 {
			return []need{group(opDescribe, q.Group)}
		}
	case *kmsg.TxnOffsetCommitRequest:
		return []need{txn(q.TransactionalID), group(opRead, q.Group)}
	case *kmsg.AddOffsetsToTxnRequest:
		return []need{txn(q.TransactionalID), group(opRead, q.Group)}
	case *kmsg.EndTxnRequest:
		return []need{txn(q.TransactionalID)}
	case *kmsg.AddPartitionsToTxnRequest:
		if r.version < 4 {
			return []need{txn(q.TransactionalID)}
		}
		return cluster(opClusterAction) // v4+ is broker to broker
	case *kmsg.InitProducerIDRequest:
		if q.TransactionalID != nil {
			return []need{txn(*q.TransactionalID)}
		}
		// KIP-679: an idempotent producer needs IdempotentWrite on the
		// cluster or Write on some topic.
		if r.allowsQuiet(opIdempotentWrite, resCluster, clusterName) || r.allowsAnyTopicWrite() {
			return nil
		}
		return cluster(opIdempotentWrite)
	case *kmsg.FindCoordinatorRequest:
		if r.version < 4 {
			if q.CoordinatorType == 1 {
				return []need{{opDescribe, resTxn, q.CoordinatorKey, txnCode}}
			}
			return []need{group(opDescribe, q.CoordinatorKey)}
		}
	case *kmsg.DescribeClusterRequest:
		return cluster(opDescribe)
	case *kmsg.DescribeACLsRequest:
		return cluster(opDescribe)
	case *kmsg.CreateACLsRequest, *kmsg.DeleteACLsRequest:
		return cluster(opAlter)
	case *kmsg.DescribeUserSCRAMCredentialsRequest:
		return cluster(opDescribe)
	case *kmsg.AlterUserSCRAMCredentialsRequest:
		return cluster(opAlter)
	case *kmsg.DescribeClientQuotasRequest:
		return cluster(opDescribeConfigs)
	case *kmsg.AlterClientQuotasRequest:
		return cluster(opAlterConfigs)
	case *kmsg.UpdateFeaturesRequest, *kmsg.ElectLeadersRequest, *kmsg.AlterPartitionAssignmentsRequest:
		return cluster(opAlter)
	case *kmsg.ListPartitionReassignmentsRequest:
		return cluster(opDescribe)
	case *kmsg.ListConfigResourcesRequest:
		return cluster(opDescribeConfigs)
	case *kmsg.AlterShareGroupOffsetsRequest:
		return []need{group(opRead, q.GroupID)}
	case *kmsg.DeleteShareGroupOffsetsRequest:
		return []need{group(opDelete, q.GroupID)}
	}
	return nil
}

// authorizeThen runs h for r once r passed its whole-request checks, and
// takes the denied entries out of a batch request first; a request denied
// as a whole is answered here and never forwarded.
func authorizeThen(r *request, h handler) error {
	if !r.authzOn() || !checkedKey(r.key) {
		return h(r)
	}
	req, err := decodeRequest(r)
	if err != nil {
		return err
	}
	for _, n := range wholeNeeds(r, req) {
		if !r.allows(n.op, n.res, n.name) {
			return r.c.respond(r, r.start, denyAll(r, req, n.code))
		}
	}
	if b, ok := batchKeys[r.key]; ok {
		return authorizeBatch(r, req, b, h)
	}
	if filter, ok := listFilters[r.key]; ok {
		r.amend = func(resp kmsg.Response) { filter(r, resp) }
	}
	return h(r)
}

// checkedKey reports whether authorizeThen decodes key's requests: the
// keys with whole-request, batch or listing checks. Produce, Fetch and
// the other topic-only keys are checked in the resolver, without a decode
// here.
func checkedKey(key int16) bool {
	switch key {
	case 0, 1, 2, 3, 17, 18, 19, 21, 23, 36, 37, 61, 71, 72, 75:
		return false
	}
	return true
}

// denyAll answers every entry of req with code: a partition-keyed key's
// partitions, else the answer's request-level error.
func denyAll(r *request, req kmsg.Request, code int16) kmsg.Response {
	if f, ok := partitionFamilies[r.key].(interface{ shape() *shape }); ok {
		if sh := f.shape(); sh.uCode >= 0 {
			resp := sh.answerAll(req, code)
			if sh.rCode >= 0 {
				reflect.ValueOf(resp).Elem().Field(sh.rCode).SetInt(int64(code))
			}
			resp.SetVersion(r.version)
			return resp
		}
	}
	resp := req.ResponseKind()
	if d, ok := resp.(interface{ Default() }); ok {
		d.Default()
	}
	resp.SetVersion(r.version)
	v := reflect.ValueOf(resp).Elem()
	if f := v.FieldByName("ErrorCode"); f.IsValid() {
		f.SetInt(int64(code))
	}
	switch q := req.(type) {
	case *kmsg.OffsetFetchRequest: // v0-v1 carry errors per partition only
		out := resp.(*kmsg.OffsetFetchResponse)
		for _, t := range q.Topics {
			rt := kmsg.OffsetFetchResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.ErrorCode = p, -1, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			out.Topics = append(out.Topics, rt)
		}
	case *kmsg.JoinGroupRequest:
		resp.(*kmsg.JoinGroupResponse).MemberID = q.MemberID
	}
	return resp
}

// batch describes a key whose request lists resources checked one by one.
type batch struct {
	req, resp string // the list fields of the request and the response
	// check gives an entry's authorization (ok false: nothing to check).
	check func(r *request, req kmsg.Request, e reflect.Value) (n need, ok bool)
}

func strEntry(res aclRes, op aclOp, code int16) func(*request, kmsg.Request, reflect.Value) (need, bool) {
	return func(_ *request, _ kmsg.Request, e reflect.Value) (need, bool) {
		if e.Kind() == reflect.Struct {
			e = e.Field(0) // the entry's name (OffsetFetch v8+ groups)
		}
		return need{op, res, e.String(), code}, true
	}
}

func configEntry(op aclOp) func(*request, kmsg.Request, reflect.Value) (need, bool) {
	return func(_ *request, _ kmsg.Request, e reflect.Value) (need, bool) {
		name := e.FieldByName("ResourceName").String()
		if kmsg.ConfigResourceType(e.FieldByName("ResourceType").Int()) == kmsg.ConfigResourceTypeTopic {
			return need{op, resTopic, name, topicCode}, true
		}
		// Brokers, broker loggers, client metrics and group configs: the
		// cluster (Kafka checks brokers against the cluster resource).
		return need{op, resCluster, clusterName, clusterCode}, true
	}
}

var batchKeys = map[int16]batch{
	15: {"Groups", "Groups", strEntry(resGroup, opDescribe, groupCode)},
	42: {"Groups", "Groups", strEntry(resGroup, opDelete, groupCode)},
	9:  {"Groups", "Groups", strEntry(resGroup, opDescribe, groupCode)}, // v8+
	90: {"Groups", "Groups", strEntry(resGroup, opDescribe, groupCode)}, // DescribeShareGroupOffsets
	69: {"Groups", "Groups", strEntry(resGroup, opDescribe, groupCode)},
	77: {"GroupIDs", "Groups", strEntry(resGroup, opDescribe, groupCode)},
	65: {"TransactionalIDs", "TransactionStates", strEntry(resTxn, opDescribe, txnCode)},
	10: {"CoordinatorKeys", "Coordinators", func(_ *request, req kmsg.Request, e reflect.Value) (need, bool) { // v4+
		if req.(*kmsg.FindCoordinatorRequest).CoordinatorType == 1 {
			return need{opDescribe, resTxn, e.String(), txnCode}, true
		}
		return need{opDescribe, resGroup, e.String(), groupCode}, true
	}},
	20: {"Topics", "Topics", func(r *request, _ kmsg.Request, e reflect.Value) (need, bool) {
		if e.Kind() == reflect.String { // v0-v5 name topics only
			return need{opDelete, resTopic, e.String(), topicCode}, true
		}
		t := e.Addr().Interface().(*kmsg.DeleteTopicsRequestTopic)
		if t.Topic != nil {
			return need{opDelete, resTopic, *t.Topic, topicCode}, true
		}
		if _, name := r.topicOfVID(t.TopicID); name != "" {
			return need{opDelete, resTopic, name, topicCode}, true
		}
		return need{}, false
	}},
	32: {"Resources", "Resources", configEntry(opDescribeConfigs)},
	33: {"Resources", "Resources", configEntry(opAlterConfigs)},
	44: {"Resources", "Resources", configEntry(opAlterConfigs)},
}

// authorizeBatch takes the entries of req the principal may not use out of
// the request, answers them in the response (amend), and serves the rest;
// with nothing left, it answers the denied entries alone.
func authorizeBatch(r *request, req kmsg.Request, b batch, h handler) error {
	reqField := b.req
	if r.key == 20 && r.version < 6 {
		reqField = "TopicNames"
	}
	if r.key == 9 && r.version < 8 || r.key == 10 && r.version < 4 {
		return h(r)
	}
	list := reflect.ValueOf(req).Elem().FieldByName(reqField)
	keep := reflect.MakeSlice(list.Type(), 0, list.Len())
	var denied []reflect.Value
	var codes []int16
	for i := range list.Len() {
		e := list.Index(i)
		if n, ok := b.check(r, req, e); ok && !r.allows(n.op, n.res, n.name) {
			denied, codes = append(denied, e), append(codes, n.code)
			continue
		}
		keep = reflect.Append(keep, e)
	}
	if len(denied) == 0 {
		return h(r)
	}
	addDenied := func(resp kmsg.Response) {
		out := reflect.ValueOf(resp).Elem().FieldByName(b.resp)
		for i, e := range denied {
			out.Set(reflect.Append(out, deniedEntry(out.Type().Elem(), e, codes[i])))
		}
	}
	if keep.Len() == 0 {
		resp := req.ResponseKind()
		if d, ok := resp.(interface{ Default() }); ok {
			d.Default()
		}
		resp.SetVersion(r.version)
		addDenied(resp)
		return r.c.respond(r, r.start, resp)
	}
	list.Set(keep)
	r.reencode(req)
	r.amend = addDenied
	return h(r)
}

// deniedEntry is the answer entry of type typ for request entry e, with
// code: e's identifying fields (or, for a name, the entry's name field)
// copied and "none" ids set to -1.
func deniedEntry(typ reflect.Type, e reflect.Value, code int16) reflect.Value {
	out := reflect.New(typ)
	if d, ok := out.Interface().(interface{ Default() }); ok {
		d.Default()
	}
	o := out.Elem()
	o.FieldByName("ErrorCode").SetInt(int64(code))
	for _, f := range []string{"NodeID", "Port"} {
		if x := o.FieldByName(f); x.IsValid() {
			x.SetInt(-1)
		}
	}
	if e.Kind() == reflect.String {
		for _, f := range []string{"Group", "GroupID", "TransactionalID", "Key", "Topic"} {
			if x := o.FieldByName(f); x.IsValid() {
				setName(x, e.String())
				break
			}
		}
		return o
	}
	for i := range e.NumField() {
		name := e.Type().Field(i).Name
		if name == "UnknownTags" {
			continue
		}
		if x := o.FieldByName(name); x.IsValid() && x.Type() == e.Field(i).Type() && e.Field(i).Kind() != reflect.Slice {
			x.Set(e.Field(i))
		}
	}
	return o
}

func setName(x reflect.Value, s string) {
	if x.Kind() == reflect.Pointer {
		x.Set(reflect.ValueOf(&s))
		return
	}
	x.SetString(s)
}

// listFilters leave out of a listing what the principal may not Describe.
var listFilters = map[int16]func(r *request, resp kmsg.Response){
	16: func(r *request, resp kmsg.Response) {
		m := resp.(*kmsg.ListGroupsResponse)
		keep := m.Groups[:0]
		for _, g := range m.Groups {
			if r.allowsQuiet(opDescribe, resGroup, g.Group) {
				keep = append(keep, g)
			}
		}
		m.Groups = keep
	},
	66: func(r *request, resp kmsg.Response) {
		m := resp.(*kmsg.ListTransactionsResponse)
		keep := m.TransactionStates[:0]
		for _, t := range m.TransactionStates {
			if r.allowsQuiet(opDescribe, resTxn, t.TransactionalID) {
				keep = append(keep, t)
			}
		}
		m.TransactionStates = keep
	},
}

// amendResponse applies amend to a response frame for key at version: the
// denied entries a batch request answers, a listing's filter.
func amendResponse(out *buffer, key, version int16, corr int32, amend func(kmsg.Response)) *buffer {
	resp, err := decodeResponse(out, key, version)
	if err != nil {
		return out // the client gets the backend's answer as it is
	}
	amend(resp)
	nb := encodeResponse(resp, corr)
	putBuffer(out)
	return nb
}
