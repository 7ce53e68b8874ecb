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
//
// What is answered: a failure to reach any broker (none known, every dial
// refused, a backend TLS/SASL handshake failing: secrets re-read on
// rotation heal the next dial, so the client should keep trying). Not: a
// client connection that is closing (nothing to answer), and
// errNoCluster — no cluster is configured at all, which Metadata refuses
// the same way (03_metadata.go): an operator's mistake no retry heals.
// Keys with no entry below keep their own handling: the split families
// answer their own parts, Metadata from the snapshot (partfail.go,
// metadata_cache.go); the keys sent to a controller through admin.go
// still close (kafka/DESIGN.md lists them).

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

// answersUnreachable reports whether a failure to reach a broker is
// answered with a retriable error rather than by closing the connection:
// not when the client's connection is closing or no cluster is configured.
func answersUnreachable(err error) bool {
	return !errors.Is(err, ErrClosed) && !errors.Is(err, errNoCluster)
}

// unavailableAnswer returns the answer to req (at its version) while
// cluster is unreachable, and the code it carries; nil for a key with no
// such answer.
func unavailableAnswer(req kmsg.Request, cluster string) (kmsg.Response, int16) {
	u, ok := unavailableAnswers[req.Key()]
	if !ok {
		return nil, 0
	}
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
	resp, code := unavailableAnswer(pt.req, be.Name())
	if resp != nil {
		be.metrics.errorCode(code).Inc()
	}
	return resp
}
