package kafka

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAnsweredWhileClusterDown: with no broker of the cluster reachable,
// the keys forwarded to any broker (and the coordinator and cluster-wide
// keys whose single part cannot be sent) are answered here with the
// retriable error Kafka gives for an unavailable coordinator or an
// unanswered forward, on every entry the request names, and the client's
// connection stays open: each request is sent on the same connection after
// the previous one was answered, and an ApiVersions ends the run. A
// DescribeTopicPartitions for every topic, whose answer could only be an
// empty list, still closes its connection.
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
		{"DeleteTopics v5", 5, &kmsg.DeleteTopicsRequest{TopicNames: []string{"t", "u"}}, timedOut, func(r kmsg.Response) []int16 {
			var out []int16
			for i, x := range r.(*kmsg.DeleteTopicsResponse).Topics {
				if x.Topic == nil || *x.Topic != []string{"t", "u"}[i] {
					t.Errorf("DeleteTopics v5 topic %d named %v, want %s", i, x.Topic, []string{"t", "u"}[i])
				}
				out = append(out, x.ErrorCode)
			}
			return out
		}, 2},
		{"DeleteTopics v6", 6, &kmsg.DeleteTopicsRequest{Topics: []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr("t")}}}, timedOut, func(r kmsg.Response) []int16 {
			var out []int16
			for _, x := range r.(*kmsg.DeleteTopicsResponse).Topics {
				if x.Topic == nil || *x.Topic != "t" {
					t.Errorf("DeleteTopics v6 topic named %v, want t", x.Topic)
				}
				out = append(out, x.ErrorCode)
			}
			return out
		}, 1},
		{"DescribeConfigs", 4, &kmsg.DescribeConfigsRequest{Resources: []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "t"}}}, timedOut, func(r kmsg.Response) []int16 {
			var out []int16
			for _, x := range r.(*kmsg.DescribeConfigsResponse).Resources {
				if x.ResourceType != kmsg.ConfigResourceTypeTopic || x.ResourceName != "t" {
					t.Errorf("DescribeConfigs resource %v %q, want TOPIC t", x.ResourceType, x.ResourceName)
				}
				out = append(out, x.ErrorCode)
			}
			return out
		}, 1},
		{"AlterConfigs", 2, &kmsg.AlterConfigsRequest{Resources: []kmsg.AlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "t"}}}, timedOut, func(r kmsg.Response) []int16 {
			var out []int16
			for _, x := range r.(*kmsg.AlterConfigsResponse).Resources {
				out = append(out, x.ErrorCode)
			}
			return out
		}, 1},
		{"IncrementalAlterConfigs", 1, &kmsg.IncrementalAlterConfigsRequest{Resources: []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "t"}}}, timedOut, func(r kmsg.Response) []int16 {
			var out []int16
			for _, x := range r.(*kmsg.IncrementalAlterConfigsResponse).Resources {
				out = append(out, x.ErrorCode)
			}
			return out
		}, 1},
		{"ListPartitionReassignments all", 0, &kmsg.ListPartitionReassignmentsRequest{}, timedOut, func(r kmsg.Response) []int16 {
			return []int16{r.(*kmsg.ListPartitionReassignmentsResponse).ErrorCode}
		}, 1},
		{"ListPartitionReassignments named", 0, &kmsg.ListPartitionReassignmentsRequest{Topics: []kmsg.ListPartitionReassignmentsRequestTopic{{Topic: "t", Partitions: []int32{0}}}}, timedOut, func(r kmsg.Response) []int16 {
			// The splitter's single-target path: the family has no
			// per-partition code, so the table answers.
			return []int16{r.(*kmsg.ListPartitionReassignmentsResponse).ErrorCode}
		}, 1},
		{"UpdateFeatures v1", 1, &kmsg.UpdateFeaturesRequest{FeatureUpdates: []kmsg.UpdateFeaturesRequestFeatureUpdate{{Feature: "f", MaxVersionLevel: 1}}}, timedOut, func(r kmsg.Response) []int16 {
			m := r.(*kmsg.UpdateFeaturesResponse)
			out := []int16{m.ErrorCode}
			for _, x := range m.Results {
				if x.Feature != "f" {
					t.Errorf("UpdateFeatures result for %q, want f", x.Feature)
				}
				out = append(out, x.ErrorCode)
			}
			return out
		}, 2},
		{"UpdateFeatures v2", 2, &kmsg.UpdateFeaturesRequest{FeatureUpdates: []kmsg.UpdateFeaturesRequestFeatureUpdate{{Feature: "f", MaxVersionLevel: 1}}}, timedOut, func(r kmsg.Response) []int16 {
			return []int16{r.(*kmsg.UpdateFeaturesResponse).ErrorCode}
		}, 1},
		{"DescribeTopicPartitions", 0, &kmsg.DescribeTopicPartitionsRequest{Topics: []kmsg.DescribeTopicPartitionsRequestTopic{{Topic: "t"}}, ResponsePartitionLimit: 100}, timedOut, func(r kmsg.Response) []int16 {
			m := r.(*kmsg.DescribeTopicPartitionsResponse)
			if m.NextCursor != nil {
				t.Errorf("DescribeTopicPartitions answers a cursor %+v", m.NextCursor)
			}
			var out []int16
			for _, x := range m.Topics {
				if x.Topic == nil || *x.Topic != "t" {
					t.Errorf("DescribeTopicPartitions topic named %v, want t", x.Topic)
				}
				out = append(out, x.ErrorCode)
			}
			return out
		}, 1},
		{"AlterShareGroupOffsets", 0, &kmsg.AlterShareGroupOffsetsRequest{GroupID: "s", Topics: []kmsg.AlterShareGroupOffsetsRequestTopic{{Topic: "t", Partitions: []kmsg.AlterShareGroupOffsetsRequestTopicPartition{{Partition: 0}, {Partition: 1}}}}}, notCoord, func(r kmsg.Response) []int16 {
			m := r.(*kmsg.AlterShareGroupOffsetsResponse)
			out := []int16{m.ErrorCode}
			for _, x := range m.Topics {
				for _, p := range x.Partitions {
					out = append(out, p.ErrorCode)
				}
			}
			return out
		}, 3},
		{"DeleteShareGroupOffsets", 0, &kmsg.DeleteShareGroupOffsetsRequest{GroupID: "s", Topics: []kmsg.DeleteShareGroupOffsetsRequestTopic{{Topic: "t"}}}, notCoord, func(r kmsg.Response) []int16 {
			m := r.(*kmsg.DeleteShareGroupOffsetsResponse)
			out := []int16{m.ErrorCode}
			for _, x := range m.Topics {
				out = append(out, x.ErrorCode)
			}
			return out
		}, 2},
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

	// A DescribeTopicPartitions for every topic is not answered: its
	// answer has no request-level error, and one with none of the
	// cluster's topics would read as a cluster without topics.
	rc := dialRaw(t, nc.RemoteAddr().String())
	rc.nc.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := rc.nc.Write(reqFrame(&kmsg.DescribeTopicPartitionsRequest{ResponsePartitionLimit: 100}, 0, 1)); err != nil {
		t.Fatal(err)
	}
	if buf, err := readFrame(rc.br, 1<<20); err == nil {
		_, resp := decodeOut(t, buf.b, kmsg.DescribeTopicPartitions.Int16(), 0)
		t.Errorf("DescribeTopicPartitions for every topic with the cluster down answered %+v, want the connection closed", resp)
	}
}

// TestUnavailableTable: every key's unreachable answer, built from a
// default request and from one with an entry in every list (so that each
// fill runs) at each version kmsg knows, is at that version and encodes
// into a frame that decodes again. Every error code in the decoded answer
// is the table's (or 0 where the answer leaves one unset), and the answer
// to the filled request carries the table's code somewhere: an entry whose
// fill writes nothing the version encodes would answer as a success. An
// entry that declines a request (answers) gives no answer to it.
func TestUnavailableTable(t *testing.T) {
	for key, u := range unavailableAnswers {
		name := kmsg.NameForKey(key)
		for v := int16(0); v <= kmsg.RequestForKey(key).MaxVersion(); v++ {
			for _, filled := range []bool{false, true} {
				req := kmsg.RequestForKey(key)
				defaults(reflect.ValueOf(req))
				if filled {
					fillEntries(reflect.ValueOf(req).Elem())
				}
				req.SetVersion(v)
				what := fmt.Sprintf("%s v%d (entries filled: %v)", name, v, filled)
				resp, code := unavailableAnswer(req, "k")
				if u.answers != nil && !u.answers(req) {
					if resp != nil {
						t.Fatalf("%s: answered %+v, but the entry declines the request", what, resp)
					}
					continue
				}
				if resp == nil || code != u.code {
					t.Fatalf("%s: answer %v with code %d, want one with %d", what, resp, code, u.code)
				}
				if resp.GetVersion() != v {
					t.Fatalf("%s: answer at v%d", what, resp.GetVersion())
				}
				buf := encodeResponse(resp, 7)
				_, back := decodeOut(t, buf.b, key, v)
				putBuffer(buf)
				codes := errorCodes(reflect.ValueOf(back).Elem(), nil)
				carried := false
				for _, c := range codes {
					if c != 0 && c != u.code {
						t.Fatalf("%s: error code %d in the answer %+v, want %d", what, c, back, u.code)
					}
					carried = carried || c == u.code
				}
				if filled && !carried {
					t.Fatalf("%s: no error code %d in the answer %+v", what, u.code, back)
				}
			}
		}
	}
}

// fillEntries gives every list in the kmsg struct v one entry, itself
// filled (kmsg's defaults, then its own lists), and every empty string a
// value, so that a request names something in every field a fill reads.
func fillEntries(v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		if !f.CanSet() {
			continue
		}
		switch f.Kind() {
		case reflect.String:
			if f.String() == "" {
				f.SetString("x")
			}
		case reflect.Slice:
			e := reflect.New(f.Type().Elem())
			switch e.Elem().Kind() {
			case reflect.Struct:
				defaults(e)
				fillEntries(e.Elem())
			case reflect.String:
				e.Elem().SetString("x")
			}
			f.Set(reflect.Append(reflect.MakeSlice(f.Type(), 0, 1), e.Elem()))
		case reflect.Struct:
			fillEntries(f)
		}
	}
}

// errorCodes appends every ErrorCode field in the kmsg struct v, its
// lists' entries included.
func errorCodes(v reflect.Value, out []int16) []int16 {
	for i := range v.NumField() {
		f := v.Field(i)
		switch {
		case v.Type().Field(i).Name == "ErrorCode" && f.Kind() == reflect.Int16:
			out = append(out, int16(f.Int()))
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			for j := range f.Len() {
				out = errorCodes(f.Index(j), out)
			}
		case f.Kind() == reflect.Struct && f.CanInterface():
			out = errorCodes(f, out)
		}
	}
	return out
}

// TestAdminWhileClusterDown: franz-go's admin client against a proxy whose
// cluster is down gets Kafka's retriable errors, not a connection closed
// before its first answer (kgo's ErrFirstReadEOF, which it reports as a
// possible SASL mismatch), and none of its connections closes: the
// config, topic and feature keys (sent to one cluster's controller or any
// broker) are answered as the coordinator and cluster-wide ones.
func TestAdminWhileClusterDown(t *testing.T) {
	_, nc := proxyOfDownCluster(t)
	var closed disconnects
	cl, err := kgo.NewClient(kgo.SeedBrokers(nc.RemoteAddr().String()), kgo.RetryTimeout(5*time.Second),
		kgo.ConnIdleTimeout(10*time.Minute), kgo.WithHooks(&closed))
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

	rcs, err := adm.DescribeTopicConfigs(ctx, "t")
	check("DescribeTopicConfigs", entryErr(err, len(rcs), func() error { return rcs[0].Err }), kerr.RequestTimedOut)
	set := []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kmsg.StringPtr("60000")}}
	acs, err := adm.AlterTopicConfigs(ctx, set, "t")
	check("AlterTopicConfigs (IncrementalAlterConfigs)", entryErr(err, len(acs), func() error { return acs[0].Err }), kerr.RequestTimedOut)
	acs, err = adm.AlterTopicConfigsState(ctx, set, "t")
	check("AlterTopicConfigsState (AlterConfigs)", entryErr(err, len(acs), func() error { return acs[0].Err }), kerr.RequestTimedOut)
	dts, err := adm.DeleteTopics(ctx, "t")
	check("DeleteTopics", entryErr(err, len(dts), func() error { return dts["t"].Err }), kerr.RequestTimedOut)
	ufs, err := adm.UpdateFeatures(ctx, true, kadm.FeatureUpdate{Feature: "f", MaxVersionLevel: 1})
	check("UpdateFeatures", entryErr(err, len(ufs), func() error { return ufs["f"].Err }), kerr.RequestTimedOut)
	if n := closed.n.Load(); n != 0 {
		t.Errorf("%d of the client's connections closed while its cluster was down, want none", n)
	}
}

// TestAdminClusterDownThenBack: a franz-go admin client answered
// REQUEST_TIMED_OUT while its cluster was down is served on the same
// connection once the cluster is back (restarted on its ports): its
// connections to the proxy never closed.
func TestAdminClusterDownThenBack(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "t"))
	if err != nil {
		t.Fatal(err)
	}
	var ports []int
	for _, a := range kc.ListenAddrs() {
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, port)
	}
	be, addr := startProxy(t, kc, BackendConfig{Name: "k"})
	waitReady(t, be)
	kc.Close()

	var closed disconnects
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RetryTimeout(5*time.Second),
		kgo.ConnIdleTimeout(10*time.Minute), kgo.WithHooks(&closed))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rcs, err := adm.DescribeTopicConfigs(ctx, "t")
	if err := entryErr(err, len(rcs), func() error { return rcs[0].Err }); !errors.Is(err, kerr.RequestTimedOut) {
		t.Fatalf("DescribeTopicConfigs with the cluster down: %v, want %v", err, kerr.RequestTimedOut)
	}

	// The cluster comes back on the same ports (the old listeners' ports
	// may take a moment to free).
	deadline := time.Now().Add(30 * time.Second)
	for {
		kc, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(ports...), kfake.SeedTopics(2, "t"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restart the cluster on %v: %v", ports, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(kc.Close)

	var last error
	waitUntil(t, time.Minute, "DescribeTopicConfigs answered once the cluster is back", func() bool {
		rcs, err := adm.DescribeTopicConfigs(ctx, "t")
		last = entryErr(err, len(rcs), func() error { return rcs[0].Err })
		return last == nil
	})
	dts, err := adm.DeleteTopics(ctx, "t")
	if err := entryErr(err, len(dts), func() error { return dts["t"].Err }); err != nil {
		t.Errorf("DeleteTopics once the cluster is back: %v", err)
	}
	if n := closed.n.Load(); n != 0 {
		t.Errorf("%d of the client's connections closed through the outage, want none", n)
	}
}

// disconnects counts the connections a kgo client saw close.
type disconnects struct{ n atomic.Int64 }

func (d *disconnects) OnBrokerDisconnect(kgo.BrokerMetadata, net.Conn) { d.n.Add(1) }

// entryErr is a kadm call's error, else its first entry's (first), else
// an error saying the answer had no entry.
func entryErr(err error, entries int, first func() error) error {
	switch {
	case err != nil:
		return err
	case entries == 0:
		return errors.New("no entry in the answer")
	}
	return first()
}
