package kafka

// Answers for a request no broker of its cluster can take.
//
// When a backend cluster is down (an upgrade, a network cut), the keys the
// proxy forwards to any broker of a cluster, and the coordinator and
// cluster-wide keys whose one target cannot be dialed, are answered here
// with the error Kafka itself gives when what serves them is temporarily
// unavailable, set on every entry the request names, instead of closing
// the client's connection. A closed connection right after a request is
// the worse answer: franz-go takes a connection closed before its first
// reply for a SASL mismatch (ErrFirstReadEOF) and fails the records or
// the group behind it; other clients reconnect in a loop. The codes:
//
//   - Keys the split path already answers for a failed part (partfail.go:
//     FindCoordinator COORDINATOR_NOT_AVAILABLE, per key from v4;
//     OffsetFetch, DescribeGroups, DeleteGroups, DescribeTransactions
//     NOT_COORDINATOR per group or id) get the same answer, whichever path
//     failed.
//   - Keys a transaction coordinator serves (AddOffsetsToTxn, EndTxn,
//     InitProducerId with a real producer id): COORDINATOR_NOT_AVAILABLE,
//     on which clients look the coordinator up again and retry. Not the
//     group membership keys: see the table.
//   - Coordinator keys that name no group (ListGroups, ListTransactions):
//     COORDINATOR_NOT_AVAILABLE, which the Java admin client retries there
//     (NOT_COORDINATOR it would not); share-group keys (KIP-932) NOT_COORDINATOR per
//     group, as ConsumerGroupDescribe.
//   - Cluster-wide keys a KRaft broker forwards to its controller, and the
//     default cluster's (DescribeCluster, ACLs, quotas, SCRAM users,
//     telemetry, ListConfigResources): REQUEST_TIMED_OUT, what a broker
//     answers a forwarded request its controller did not take in time
//     (Kafka's ForwardingManager), retriable in every client.
//   - Topic and config admin keys sent to one cluster's controller or any
//     broker (admin.go, 32_configs.go): DeleteTopics, AlterConfigs,
//     IncrementalAlterConfigs, UpdateFeatures and ListPartitionReassignments,
//     which a KRaft broker forwards, REQUEST_TIMED_OUT for the same reason,
//     per topic, resource or feature; DescribeConfigs and
//     DescribeTopicPartitions, which a broker serves itself, the same code
//     (see their entries). CreateTopics, CreatePartitions, ElectLeaders and
//     AlterPartitionAssignments have no entry: the splitter answers their
//     parts NOT_CONTROLLER per topic or partition (partfail.go), on which
//     kgo and the Java admin client look the controller up again and
//     retry within their own timeouts.
//   - AlterShareGroupOffsets and DeleteShareGroupOffsets (KIP-932):
//     NOT_COORDINATOR on the request and on each topic or partition, as
//     DescribeShareGroupOffsets per group.
//
// What is answered: a failure to reach any broker (none known, every dial
// refused, a backend TLS/SASL handshake failing: secrets re-read on
// rotation heal the next dial, so the client should keep trying). Not: a
// client connection that is closing (nothing to answer), and
// errNoCluster — no cluster is configured at all, which Metadata refuses
// the same way (03_metadata.go): an operator's mistake no retry heals.
// Keys with no entry below keep their own handling: the split families
// answer their own parts, Metadata from the snapshot (partfail.go,
// metadata_cache.go). Still closing (kafka/DESIGN.md): the group
// membership keys (on purpose, see the table), and a DescribeTopicPartitions
// for every topic, whose answer has nowhere to carry an error.

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// unavailable is how one key is answered while its cluster is
// unreachable: code on the request-level error, where the key has one,
// and on every entry fill echoes from the request.
type unavailable struct {
	code int16
	// fill adds an answer entry with code for each entry of req; nil when
	// the request-level error is all there is.
	fill func(req kmsg.Request, resp kmsg.Response, code int16, msg *string)
	// build makes the whole answer instead (partfail.go's failedAnswer,
	// whose code is code).
	build func(req kmsg.Request) kmsg.Response
	// answers reports whether req can be answered so; nil: always. A
	// request whose answer would have no entry to carry the code, and no
	// request-level error, is not: an empty answer reads as "nothing
	// there", which is worse than a closed connection.
	answers func(req kmsg.Request) bool
}

// unavailableAnswers are the keys answered while their cluster is
// unreachable (TestAnsweredWhileClusterDown sends each; TestUnavailableTable
// encodes each answer at every version).
var unavailableAnswers = map[int16]unavailable{
	// Coordinator keys: as a failed split part (partfail.go).
	9:  {code: kerr.NotCoordinator.Code, build: failedAnswer},
	10: {code: kerr.CoordinatorNotAvailable.Code, build: failedAnswer},
	15: {code: kerr.NotCoordinator.Code, build: failedAnswer},
	42: {code: kerr.NotCoordinator.Code, build: failedAnswer},
	65: {code: kerr.NotCoordinator.Code, build: failedAnswer},

	// Keys a transaction coordinator serves (toCoordinatorPost): its
	// top-level error, as a coordinator that is not available answers.
	// The group membership keys (JoinGroup, Heartbeat, LeaveGroup,
	// SyncGroup, ShareGroupHeartbeat) are left out on purpose: answered
	// so, franz-go members kept heartbeating in a generation that a
	// crashed backend no longer had, and after a kfake crash 400-1,100
	// records were delivered again per run, against 0 when the connection
	// closes (TestFaultBackendRestarted; kafka/DESIGN.md).
	22: {code: kerr.CoordinatorNotAvailable.Code}, // InitProducerId with a real producer id
	25: {code: kerr.CoordinatorNotAvailable.Code}, // AddOffsetsToTxn
	26: {code: kerr.CoordinatorNotAvailable.Code}, // EndTxn

	16: {code: kerr.CoordinatorNotAvailable.Code}, // ListGroups
	66: {code: kerr.CoordinatorNotAvailable.Code}, // ListTransactions
	77: {code: kerr.NotCoordinator.Code, fill: func(req kmsg.Request, resp kmsg.Response, code int16, msg *string) {
		m := resp.(*kmsg.ShareGroupDescribeResponse)
		for _, g := range req.(*kmsg.ShareGroupDescribeRequest).GroupIDs {
			e := kmsg.NewShareGroupDescribeResponseGroup()
			e.GroupID, e.ErrorCode, e.ErrorMessage = g, code, msg
			m.Groups = append(m.Groups, e)
		}
	}},
	90: {code: kerr.NotCoordinator.Code, fill: func(req kmsg.Request, resp kmsg.Response, code int16, msg *string) {
		m := resp.(*kmsg.DescribeShareGroupOffsetsResponse)
		for _, g := range req.(*kmsg.DescribeShareGroupOffsetsRequest).Groups {
			e := kmsg.NewDescribeShareGroupOffsetsResponseGroup()
			e.GroupID, e.ErrorCode, e.ErrorMessage = g.GroupID, code, msg
			m.Groups = append(m.Groups, e)
		}
	}},

	// Cluster-wide and default-cluster keys: a forward that timed out.
	60: {code: kerr.RequestTimedOut.Code}, // DescribeCluster
	29: {code: kerr.RequestTimedOut.Code}, // DescribeACLs
	48: {code: kerr.RequestTimedOut.Code}, // DescribeClientQuotas
	50: {code: kerr.RequestTimedOut.Code}, // DescribeUserSCRAMCredentials
	71: {code: kerr.RequestTimedOut.Code}, // GetTelemetrySubscriptions
	72: {code: kerr.RequestTimedOut.Code}, // PushTelemetry
	74: {code: kerr.RequestTimedOut.Code}, // ListConfigResources
	30: {code: kerr.RequestTimedOut.Code, fill: func(req kmsg.Request, resp kmsg.Response, code int16, msg *string) {
		m := resp.(*kmsg.CreateACLsResponse)
		for range req.(*kmsg.CreateACLsRequest).Creations {
			e := kmsg.NewCreateACLsResponseResult()
			e.ErrorCode, e.ErrorMessage = code, msg
			m.Results = append(m.Results, e)
		}
	}},
	31: {code: kerr.RequestTimedOut.Code, fill: func(req kmsg.Request, resp kmsg.Response, code int16, msg *string) {
		m := resp.(*kmsg.DeleteACLsResponse)
		for range req.(*kmsg.DeleteACLsRequest).Filters {
			e := kmsg.NewDeleteACLsResponseResult()
			e.ErrorCode, e.ErrorMessage = code, msg
			m.Results = append(m.Results, e)
		}
	}},
	49: {code: kerr.RequestTimedOut.Code, fill: func(req kmsg.Request, resp kmsg.Response, code int16, msg *string) {
		m := resp.(*kmsg.AlterClientQuotasResponse)
		for _, in := range req.(*kmsg.AlterClientQuotasRequest).Entries {
			e := kmsg.NewAlterClientQuotasResponseEntry()
			e.ErrorCode, e.ErrorMessage = code, msg
			for _, en := range in.Entity {
				e.Entity = append(e.Entity, kmsg.AlterClientQuotasResponseEntryEntity{Type: en.Type, Name: en.Name})
			}
			m.Entries = append(m.Entries, e)
		}
	}},
	// Topic and config admin keys. A KRaft broker forwards DeleteTopics,
	// AlterConfigs, IncrementalAlterConfigs, UpdateFeatures and
	// ListPartitionReassignments to its controller: a forward that timed
	// out, per entry.
	20: {code: kerr.RequestTimedOut.Code, fill: func(req kmsg.Request, resp kmsg.Response, code int16, msg *string) {
		m := resp.(*kmsg.DeleteTopicsResponse)
		q := req.(*kmsg.DeleteTopicsRequest)
		if q.GetVersion() < 6 { // by name only; Topics from v6
			for _, n := range q.TopicNames {
				e := kmsg.NewDeleteTopicsResponseTopic()
				e.Topic, e.ErrorCode, e.ErrorMessage = kmsg.StringPtr(n), code, msg
				m.Topics = append(m.Topics, e)
			}
			return
		}
		for _, t := range q.Topics {
			e := kmsg.NewDeleteTopicsResponseTopic()
			e.Topic, e.TopicID, e.ErrorCode, e.ErrorMessage = t.Topic, t.TopicID, code, msg
			m.Topics = append(m.Topics, e)
		}
	}},
	// DescribeConfigs is served by any broker from its own metadata, so
	// no forward times out there; it gets the same code as the two alter
	// keys all the same. Neither kgo (its DescribeConfigs sharder retries
	// nothing per resource) nor the Java admin client (it completes each
	// resource's future with the resource's error) retries a resource
	// error itself: what matters is that the caller's check sees a
	// retriable error, and REQUEST_TIMED_OUT is one in both (kerr, Java's
	// TimeoutException is a RetriableException). LEADER_NOT_AVAILABLE
	// would be retriable too but says something false of a BROKER or
	// GROUP resource; UNKNOWN_SERVER_ERROR is retriable in neither.
	32: {code: kerr.RequestTimedOut.Code, fill: fillConfigs},
	33: {code: kerr.RequestTimedOut.Code, fill: fillConfigs},
	44: {code: kerr.RequestTimedOut.Code, fill: fillConfigs},
	46: {code: kerr.RequestTimedOut.Code}, // ListPartitionReassignments
	57: {code: kerr.RequestTimedOut.Code, fill: func(req kmsg.Request, resp kmsg.Response, code int16, msg *string) {
		if req.GetVersion() >= 2 {
			return // v2 dropped the per-feature results
		}
		m := resp.(*kmsg.UpdateFeaturesResponse)
		for _, u := range req.(*kmsg.UpdateFeaturesRequest).FeatureUpdates {
			e := kmsg.NewUpdateFeaturesResponseResult()
			e.Feature, e.ErrorCode, e.ErrorMessage = u.Feature, code, msg
			m.Results = append(m.Results, e)
		}
	}},
	// DescribeTopicPartitions: served by a broker from its metadata, as
	// DescribeConfigs, and answered with the same code for the same
	// reason (the Java admin client completes each topic's future with
	// its error; kgo does not send the key). Only for named topics: the
	// answer has no request-level error, and an answer for every topic
	// with none of the cluster's topics in it would read as a cluster
	// with no topics, so that request still closes.
	75: {code: kerr.RequestTimedOut.Code, answers: func(req kmsg.Request) bool {
		return len(req.(*kmsg.DescribeTopicPartitionsRequest).Topics) > 0
	}, fill: func(req kmsg.Request, resp kmsg.Response, code int16, _ *string) {
		m := resp.(*kmsg.DescribeTopicPartitionsResponse)
		for _, t := range req.(*kmsg.DescribeTopicPartitionsRequest).Topics {
			m.Topics = append(m.Topics, dtpTopicError(t.Topic, code))
		}
	}},

	// Share-group offset writes (KIP-932): NOT_COORDINATOR on the request,
	// on which the Java admin client looks the coordinator up again and
	// retries, and on each entry named.
	91: {code: kerr.NotCoordinator.Code, fill: func(req kmsg.Request, resp kmsg.Response, code int16, msg *string) {
		m := resp.(*kmsg.AlterShareGroupOffsetsResponse)
		for _, t := range req.(*kmsg.AlterShareGroupOffsetsRequest).Topics {
			e := kmsg.NewAlterShareGroupOffsetsResponseTopic()
			e.Topic = t.Topic
			for _, p := range t.Partitions {
				ep := kmsg.NewAlterShareGroupOffsetsResponseTopicPartition()
				ep.Partition, ep.ErrorCode, ep.ErrorMessage = p.Partition, code, msg
				e.Partitions = append(e.Partitions, ep)
			}
			m.Topics = append(m.Topics, e)
		}
	}},
	92: {code: kerr.NotCoordinator.Code, fill: func(req kmsg.Request, resp kmsg.Response, code int16, msg *string) {
		m := resp.(*kmsg.DeleteShareGroupOffsetsResponse)
		for _, t := range req.(*kmsg.DeleteShareGroupOffsetsRequest).Topics {
			e := kmsg.NewDeleteShareGroupOffsetsResponseTopic()
			e.Topic, e.ErrorCode, e.ErrorMessage = t.Topic, code, msg
			m.Topics = append(m.Topics, e)
		}
	}},

	51: {code: kerr.RequestTimedOut.Code, fill: func(req kmsg.Request, resp kmsg.Response, code int16, msg *string) {
		// One result per user, as Kafka answers: deletions first, then
		// upsertions, each user once.
		m := resp.(*kmsg.AlterUserSCRAMCredentialsResponse)
		q := req.(*kmsg.AlterUserSCRAMCredentialsRequest)
		seen := map[string]bool{}
		add := func(user string) {
			if seen[user] {
				return
			}
			seen[user] = true
			e := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
			e.User, e.ErrorCode, e.ErrorMessage = user, code, msg
			m.Results = append(m.Results, e)
		}
		for _, d := range q.Deletions {
			add(d.Name)
		}
		for _, u := range q.Upsertions {
			add(u.Name)
		}
	}},
}

// fillConfigs answers each resource of a DescribeConfigs, AlterConfigs or
// IncrementalAlterConfigs request (one layout, read by reflection as
// 32_configs.go reads it) with code and msg.
func fillConfigs(req kmsg.Request, resp kmsg.Response, code int16, msg *string) {
	res := reflect.ValueOf(req).Elem().FieldByName(cfgResources)
	out := reflect.ValueOf(resp).Elem()
	for i := range res.Len() {
		x := res.Index(i)
		addConfigError(out, kmsg.ConfigResourceType(x.FieldByName(cfgType).Int()), x.FieldByName(cfgName).String(), code, msg)
	}
}

// answersUnreachable reports whether a failure to reach a broker is
// answered with a retriable error rather than by closing the connection:
// not when the client's connection is closing or no cluster is configured.
func answersUnreachable(err error) bool {
	return !errors.Is(err, ErrClosed) && !errors.Is(err, errNoCluster)
}

// hasUnavailableAnswer reports whether req has an answer while its cluster
// is unreachable (unavailableAnswer gives it).
func hasUnavailableAnswer(req kmsg.Request) bool {
	u, ok := unavailableAnswers[req.Key()]
	return ok && (u.answers == nil || u.answers(req))
}

// unavailableAnswer returns the answer to req (at its version) while
// cluster is unreachable, and the code it carries; nil for a key with no
// such answer, or a request of it that its entry does not answer.
func unavailableAnswer(req kmsg.Request, cluster string) (kmsg.Response, int16) {
	if !hasUnavailableAnswer(req) {
		return nil, 0
	}
	u := unavailableAnswers[req.Key()]
	var resp kmsg.Response
	if u.build != nil {
		resp = u.build(req)
	} else {
		resp = kmsg.ResponseForKey(req.Key())
		defaults(reflect.ValueOf(resp))
		resp.SetVersion(req.GetVersion())
		msg := kmsg.StringPtr(fmt.Sprintf("switchyard: no broker of cluster %s can be reached; retry", cluster))
		v := reflect.ValueOf(resp).Elem()
		if f := v.FieldByName("ErrorCode"); f.IsValid() && f.Kind() == reflect.Int16 {
			f.SetInt(int64(u.code))
		}
		if f := v.FieldByName("ErrorMessage"); f.IsValid() && f.Type() == reflect.TypeOf(msg) {
			f.Set(reflect.ValueOf(msg))
		}
		if u.fill != nil {
			u.fill(req, resp, u.code, msg)
		}
	}
	resp.SetVersion(req.GetVersion())
	return resp, u.code
}

// answerUnreachable answers r, whose cluster be has no broker that could
// be reached (err), with the key's retriable error; it returns err, which
// closes the connection, when err is not such a failure or the key has no
// such answer. The answer counts its code in be's error series
// (switchyard_kafka_cluster_errors_total), as a failed split part's
// partitions count theirs.
func (c *clientConn) answerUnreachable(r *request, start time.Time, be *Backend, err error) error {
	if be == nil || !answersUnreachable(err) {
		return err
	}
	req, derr := decodeRequest(r)
	if derr != nil {
		return derr
	}
	resp, code := unavailableAnswer(req, be.Name())
	if resp == nil {
		return err
	}
	c.log.Debug("answered locally: cluster unreachable", "api", kmsg.NameForKey(r.key), "cluster", be.Name(), "code", code, "err", err)
	be.metrics.errorCode(code).Inc()
	return c.respond(r, start, resp)
}

// unreachablePart answers pt, a part of a split request that could not be
// sent (err), as its key is while its cluster is unreachable; nil when
// err is not such a failure or the key has no such answer (the split
// path's own failure answers then apply: partfail.go). The answer counts
// its code as answerUnreachable's does.
func unreachablePart(pt part, err error) kmsg.Response {
	be := pt.t.be
	if be == nil || !answersUnreachable(err) {
		return nil
	}
	resp, code := unavailableAnswer(pt.failReq(), be.Name())
	if resp != nil {
		be.metrics.errorCode(code).Inc()
	}
	return resp
}
