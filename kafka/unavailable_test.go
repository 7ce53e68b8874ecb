package kafka

import (
	"bufio"
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAnsweredWhileClusterDown: with no broker of the cluster reachable,
// the keys forwarded to any broker (and the coordinator and cluster-wide
// keys whose single part cannot be sent) are answered here with the
// retriable error Kafka gives for an unavailable coordinator or an
// unanswered forward, on every entry the request names, and the client's
// connection stays open: each request is sent on the same connection after
// the previous one was answered, and an ApiVersions ends the run.
func TestAnsweredWhileClusterDown(t *testing.T) {
	be, nc := proxyOfDownCluster(t)
	br := bufio.NewReader(nc)
	noCoord, notCoord, timedOut := kerr.CoordinatorNotAvailable.Code, kerr.NotCoordinator.Code, kerr.RequestTimedOut.Code
	txn := "tx"
	cases := []struct {
		name    string
		version int16
		req     kmsg.Request
		want    int16
		// codes lists the answer's error codes that must all be want:
		// the request-level one and one per entry the request named.
		codes func(kmsg.Response) []int16
		n     int // how many codes
	}{
		{"FindCoordinator v3", 3, &kmsg.FindCoordinatorRequest{CoordinatorKey: "g"}, noCoord, func(r kmsg.Response) []int16 {
			m := r.(*kmsg.FindCoordinatorResponse)
			if m.NodeID != -1 || m.Port != -1 {
				t.Errorf("FindCoordinator v3 names node %d port %d, want -1", m.NodeID, m.Port)
			}
			return []int16{m.ErrorCode}
		}, 1},
		{"FindCoordinator v4", 4, &kmsg.FindCoordinatorRequest{CoordinatorKeys: []string{"g", "h"}}, noCoord, func(r kmsg.Response) []int16 {
			var out []int16
			for i, co := range r.(*kmsg.FindCoordinatorResponse).Coordinators {
				if co.Key != []string{"g", "h"}[i] || co.NodeID != -1 {
					t.Errorf("FindCoordinator v4 coordinator %d: %+v", i, co)
				}
				out = append(out, co.ErrorCode)
			}
			return out
		}, 2},
		{"InitProducerID transactional", 4, &kmsg.InitProducerIDRequest{TransactionalID: &txn, TransactionTimeoutMillis: 60000, ProducerID: -1, ProducerEpoch: -1}, noCoord, func(r kmsg.Response) []int16 {
			m := r.(*kmsg.InitProducerIDResponse)
			if m.ProducerID != -1 || m.ProducerEpoch != -1 {
				t.Errorf("InitProducerID gives producer %d epoch %d, want -1", m.ProducerID, m.ProducerEpoch)
			}
			return []int16{m.ErrorCode}
		}, 1},
		{"AddOffsetsToTxn", 1, &kmsg.AddOffsetsToTxnRequest{TransactionalID: "tx", ProducerID: 7, ProducerEpoch: 0, Group: "g"}, noCoord, func(r kmsg.Response) []int16 {
			return []int16{r.(*kmsg.AddOffsetsToTxnResponse).ErrorCode}
		}, 1},
		{"EndTxn", 1, &kmsg.EndTxnRequest{TransactionalID: "tx", ProducerID: 7, ProducerEpoch: 0, Commit: true}, noCoord, func(r kmsg.Response) []int16 {
			return []int16{r.(*kmsg.EndTxnResponse).ErrorCode}
		}, 1},
		{"DescribeCluster", 1, &kmsg.DescribeClusterRequest{EndpointType: 1}, timedOut, func(r kmsg.Response) []int16 {
			return []int16{r.(*kmsg.DescribeClusterResponse).ErrorCode}
		}, 1},
		{"ListGroups", 4, &kmsg.ListGroupsRequest{}, noCoord, func(r kmsg.Response) []int16 {
			return []int16{r.(*kmsg.ListGroupsResponse).ErrorCode}
		}, 1},
		{"ListTransactions", 0, &kmsg.ListTransactionsRequest{}, noCoord, func(r kmsg.Response) []int16 {
			return []int16{r.(*kmsg.ListTransactionsResponse).ErrorCode}
		}, 1},
		{"DescribeGroups", 5, &kmsg.DescribeGroupsRequest{Groups: []string{"g", "h"}}, notCoord, func(r kmsg.Response) []int16 {
			var out []int16
			for _, g := range r.(*kmsg.DescribeGroupsResponse).Groups {
				out = append(out, g.ErrorCode)
			}
			return out
		}, 2},
		{"DeleteGroups", 2, &kmsg.DeleteGroupsRequest{Groups: []string{"g"}}, notCoord, func(r kmsg.Response) []int16 {
			var out []int16
			for _, g := range r.(*kmsg.DeleteGroupsResponse).Groups {
				out = append(out, g.ErrorCode)
			}
			return out
		}, 1},
		{"OffsetFetch v7 all topics", 7, &kmsg.OffsetFetchRequest{Group: "g"}, notCoord, func(r kmsg.Response) []int16 {
			return []int16{r.(*kmsg.OffsetFetchResponse).ErrorCode}
		}, 1},
		{"OffsetFetch v8", 8, &kmsg.OffsetFetchRequest{Groups: []kmsg.OffsetFetchRequestGroup{{Group: "g"}, {Group: "h"}}}, notCoord, func(r kmsg.Response) []int16 {
			var out []int16
			for _, g := range r.(*kmsg.OffsetFetchResponse).Groups {
				out = append(out, g.ErrorCode)
			}
			return out
		}, 2},
		{"DescribeTransactions", 0, &kmsg.DescribeTransactionsRequest{TransactionalIDs: []string{"tx"}}, notCoord, func(r kmsg.Response) []int16 {
			var out []int16
			for _, s := range r.(*kmsg.DescribeTransactionsResponse).TransactionStates {
				out = append(out, s.ErrorCode)
			}
			return out
		}, 1},
		{"CreateACLs", 2, &kmsg.CreateACLsRequest{Creations: []kmsg.CreateACLsRequestCreation{
			{ResourceType: 2, ResourceName: "t", ResourcePatternType: 3, Principal: "User:a", Host: "*", Operation: 3, PermissionType: 3},
			{ResourceType: 2, ResourceName: "u", ResourcePatternType: 3, Principal: "User:a", Host: "*", Operation: 3, PermissionType: 3},
		}}, timedOut, func(r kmsg.Response) []int16 {
			var out []int16
			for _, x := range r.(*kmsg.CreateACLsResponse).Results {
				out = append(out, x.ErrorCode)
			}
			return out
		}, 2},
		{"DeleteACLs", 2, &kmsg.DeleteACLsRequest{Filters: []kmsg.DeleteACLsRequestFilter{{ResourceType: 1, ResourcePatternType: 1, Operation: 1, PermissionType: 1}}}, timedOut, func(r kmsg.Response) []int16 {
			var out []int16
			for _, x := range r.(*kmsg.DeleteACLsResponse).Results {
				out = append(out, x.ErrorCode)
			}
			return out
		}, 1},
		{"DescribeACLs", 2, &kmsg.DescribeACLsRequest{ResourceType: 1, ResourcePatternType: 1, Operation: 1, PermissionType: 1}, timedOut, func(r kmsg.Response) []int16 {
			return []int16{r.(*kmsg.DescribeACLsResponse).ErrorCode}
		}, 1},
		{"AlterClientQuotas", 1, &kmsg.AlterClientQuotasRequest{Entries: []kmsg.AlterClientQuotasRequestEntry{{
			Entity: []kmsg.AlterClientQuotasRequestEntryEntity{{Type: "client-id", Name: kmsg.StringPtr("c")}},
			Ops:    []kmsg.AlterClientQuotasRequestEntryOp{{Key: "producer_byte_rate", Value: 1024}},
		}}}, timedOut, func(r kmsg.Response) []int16 {
			var out []int16
			for _, x := range r.(*kmsg.AlterClientQuotasResponse).Entries {
				if len(x.Entity) != 1 || x.Entity[0].Type != "client-id" || x.Entity[0].Name == nil || *x.Entity[0].Name != "c" {
					t.Errorf("AlterClientQuotas entry names %+v, want client-id c", x.Entity)
				}
				out = append(out, x.ErrorCode)
			}
			return out
		}, 1},
		{"DescribeClientQuotas", 1, &kmsg.DescribeClientQuotasRequest{}, timedOut, func(r kmsg.Response) []int16 {
			return []int16{r.(*kmsg.DescribeClientQuotasResponse).ErrorCode}
		}, 1},
		{"DescribeUserSCRAMCredentials", 0, &kmsg.DescribeUserSCRAMCredentialsRequest{}, timedOut, func(r kmsg.Response) []int16 {
			return []int16{r.(*kmsg.DescribeUserSCRAMCredentialsResponse).ErrorCode}
		}, 1},
		{"AlterUserSCRAMCredentials", 0, &kmsg.AlterUserSCRAMCredentialsRequest{Deletions: []kmsg.AlterUserSCRAMCredentialsRequestDeletion{{Name: "alice", Mechanism: 1}}}, timedOut, func(r kmsg.Response) []int16 {
			var out []int16
			for _, x := range r.(*kmsg.AlterUserSCRAMCredentialsResponse).Results {
				if x.User != "alice" {
					t.Errorf("AlterUserSCRAMCredentials result for %q, want alice", x.User)
				}
				out = append(out, x.ErrorCode)
			}
			return out
		}, 1},
		{"GetTelemetrySubscriptions", 0, &kmsg.GetTelemetrySubscriptionsRequest{}, timedOut, func(r kmsg.Response) []int16 {
			return []int16{r.(*kmsg.GetTelemetrySubscriptionsResponse).ErrorCode}
		}, 1},
		{"PushTelemetry", 0, &kmsg.PushTelemetryRequest{}, timedOut, func(r kmsg.Response) []int16 {
			return []int16{r.(*kmsg.PushTelemetryResponse).ErrorCode}
		}, 1},
		{"ListConfigResources", 0, &kmsg.ListConfigResourcesRequest{}, timedOut, func(r kmsg.Response) []int16 {
			return []int16{r.(*kmsg.ListConfigResourcesResponse).ErrorCode}
		}, 1},
		{"ShareGroupDescribe", 1, &kmsg.ShareGroupDescribeRequest{GroupIDs: []string{"s"}}, notCoord, func(r kmsg.Response) []int16 {
			var out []int16
			for _, g := range r.(*kmsg.ShareGroupDescribeResponse).Groups {
				out = append(out, g.ErrorCode)
			}
			return out
		}, 1},
		{"DescribeShareGroupOffsets", 0, &kmsg.DescribeShareGroupOffsetsRequest{Groups: []kmsg.DescribeShareGroupOffsetsRequestGroup{{GroupID: "s"}}}, notCoord, func(r kmsg.Response) []int16 {
			var out []int16
			for _, g := range r.(*kmsg.DescribeShareGroupOffsetsResponse).Groups {
				out = append(out, g.ErrorCode)
			}
			return out
		}, 1},
	}
	corr := int32(0)
	ask := func(req kmsg.Request, version int16) (kmsg.Response, error) {
		corr++
		nc.SetDeadline(time.Now().Add(60 * time.Second))
		if _, err := nc.Write(reqFrame(req, version, corr)); err != nil {
			return nil, err
		}
		buf, err := readFrame(br, 1<<20)
		if err != nil {
			return nil, err
		}
		got, resp := decodeOut(t, buf.b, req.Key(), version)
		if got != corr {
			t.Fatalf("%s: correlation id %d, want %d", kmsg.NameForKey(req.Key()), got, corr)
		}
		return resp, nil
	}
	for _, tc := range cases {
		counted := be.metrics.errorCode(tc.want)
		before := counterValue(counted)
		resp, err := ask(tc.req, tc.version)
		if err != nil {
			t.Fatalf("%s with the cluster down: %v (connection closed instead of an answer)", tc.name, err)
		}
		codes := tc.codes(resp)
		if len(codes) != tc.n {
			t.Errorf("%s: %d error codes in the answer %+v, want %d", tc.name, len(codes), resp, tc.n)
		}
		for _, c := range codes {
			if c != tc.want {
				t.Errorf("%s: error code %d (%v), want %d (%v)", tc.name, c, kerr.ErrorForCode(c), tc.want, kerr.ErrorForCode(tc.want))
			}
		}
		// Each answer given for an unreachable cluster counts its code once
		// (switchyard_kafka_cluster_errors_total), as a failed split
		// part's partitions count theirs; a transactional InitProducerID
		// answers from its own path (txn_clusters.go), which does not.
		want := 1.0
		if tc.req.Key() == kmsg.InitProducerID.Int16() {
			want = 0
		}
		if got := counterValue(counted) - before; got != want {
			t.Errorf("%s: cluster errors %v counted %v times, want %v", tc.name, kerr.ErrorForCode(tc.want), got, want)
		}
	}
	if _, err := ask(kmsg.NewPtrApiVersionsRequest(), 3); err != nil {
		t.Fatalf("ApiVersions after the answers: %v (connection closed)", err)
	}
}

// TestUnavailableTable: every key's unreachable answer, built from a
// default request at each version kmsg knows, is at that version and
// encodes into a frame that decodes again; the request-level code, where
// the answer has one at that version, is the table's.
func TestUnavailableTable(t *testing.T) {
	for key, u := range unavailableAnswers {
		req := kmsg.RequestForKey(key)
		for v := int16(0); v <= req.MaxVersion(); v++ {
			req := kmsg.RequestForKey(key)
			defaults(reflect.ValueOf(req))
			req.SetVersion(v)
			resp, code := unavailableAnswer(req, "k")
			if resp == nil || code != u.code {
				t.Fatalf("%s v%d: answer %v with code %d, want one with %d", kmsg.NameForKey(key), v, resp, code, u.code)
			}
			if resp.GetVersion() != v {
				t.Fatalf("%s v%d: answer at v%d", kmsg.NameForKey(key), v, resp.GetVersion())
			}
			buf := encodeResponse(resp, 7)
			_, back := decodeOut(t, buf.b, key, v)
			putBuffer(buf)
			if f := reflect.ValueOf(back).Elem().FieldByName("ErrorCode"); f.IsValid() && f.Int() != 0 && f.Int() != int64(u.code) {
				t.Fatalf("%s v%d: request-level code %d, want %d", kmsg.NameForKey(key), v, f.Int(), u.code)
			}
		}
	}
}

// TestAdminWhileClusterDown: franz-go's admin client against a proxy whose
// cluster is down gets Kafka's retriable errors, not a connection closed
// before its first answer (kgo's ErrFirstReadEOF, which it reports as a
// possible SASL mismatch).
func TestAdminWhileClusterDown(t *testing.T) {
	_, nc := proxyOfDownCluster(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(nc.RemoteAddr().String()), kgo.RetryTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	check := func(what string, err error, want *kerr.Error) {
		t.Helper()
		var eof *kgo.ErrFirstReadEOF
		switch {
		case errors.As(err, &eof):
			t.Errorf("%s: %v (connection closed before an answer)", what, err)
		case !errors.Is(err, want) || !kerr.IsRetriable(err):
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}
	_, err = adm.ListGroups(ctx)
	check("ListGroups", err, kerr.CoordinatorNotAvailable)
	acls, err := adm.DescribeACLs(ctx, anyACL())
	if err == nil && len(acls) > 0 {
		err = acls[0].Err
	}
	check("DescribeACLs", err, kerr.RequestTimedOut)
	_, err = adm.DescribeClientQuotas(ctx, false, nil)
	check("DescribeClientQuotas", err, kerr.RequestTimedOut)
}
