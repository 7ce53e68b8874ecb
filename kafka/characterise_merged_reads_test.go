package kafka

// Characterisation of the merged security and quota reads across two
// clusters (DescribeACLs 29, DescribeClientQuotas 48,
// DescribeUserSCRAMCredentials 50): the request goes as sent to a broker
// of every cluster (this host's), the answer is the union of what they
// hold, an entry they disagree on is answered as the default cluster (east)
// has it, else as the first that has it, and is named in the top-level
// ErrorMessage with ErrorCode 0 and counted; a whole-request error is the
// first any cluster gave. With one cluster, as sent.

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// cxDisagreements is the disagreement counter of key.
func cxDisagreements(t testing.TB, f *cx, key int16) float64 {
	t.Helper()
	var m dto.Metric
	if err := f.srv.metrics.readDisagreements.WithLabelValues(kmsg.NameForKey(key)).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// cxMergedRead runs req at v through two clusters, each answering with
// answers[cluster], checks that it went as sent to this host's broker of
// each, and returns the client's answer.
func cxMergedRead(t *testing.T, f *cx, req kmsg.Request, v int16, answers map[string]kmsg.Response) kmsg.Response {
	t.Helper()
	h := f.conn(t)
	ex, resp := h.answered(req, v, func(a cxAt, _ kmsg.Request) kmsg.Response {
		out := answers[a.cluster]
		out.(kmsg.SetThrottleResponse).SetThrottle(cxThrottle(a))
		return out
	})
	cxWantTargets(t, ex, cxE100, cxW201)
	for _, a := range []cxAt{cxE100, cxW201} {
		cxSentAsIs(t, ex, a, cxFrame(req, v))
	}
	if th, _ := resp.(kmsg.ThrottleResponse).Throttle(); th != 1201 {
		t.Fatalf("throttle %d, want the largest, 1201", th)
	}
	return resp
}

// cxNoteNames fails unless note is set and names each of want and none of
// notWant.
func cxNoteNames(t testing.TB, note *string, want, notWant []string) {
	t.Helper()
	if note == nil {
		t.Fatal("no ErrorMessage marks the disagreement")
	}
	for _, w := range want {
		if !strings.Contains(*note, w) {
			t.Fatalf("ErrorMessage %q does not name %q", *note, w)
		}
	}
	for _, w := range notWant {
		if strings.Contains(*note, w) {
			t.Fatalf("ErrorMessage %q names %q, which the clusters agree on", *note, w)
		}
	}
}

func cxACLs(resources ...kmsg.DescribeACLsResponseResource) *kmsg.DescribeACLsResponse {
	resp := kmsg.NewPtrDescribeACLsResponse()
	resp.Resources = resources
	return resp
}

func cxACLResource(typ kmsg.ACLResourceType, name string, pattern kmsg.ACLResourcePatternType, acls ...kmsg.DescribeACLsResponseResourceACL) kmsg.DescribeACLsResponseResource {
	return kmsg.DescribeACLsResponseResource{ResourceType: typ, ResourceName: name, ResourcePatternType: pattern, ACLs: acls}
}

func cxACL(principal string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) kmsg.DescribeACLsResponseResourceACL {
	return kmsg.DescribeACLsResponseResourceACL{Principal: principal, Host: "*", Operation: op, PermissionType: perm}
}

// TestCharacteriseMergedDescribeACLs: the union of the bindings, grouped by
// resource in the order first seen; a binding on one cluster only is
// listed and named.
func TestCharacteriseMergedDescribeACLs(t *testing.T) {
	read, write := kmsg.ACLOperationRead, kmsg.ACLOperationWrite
	allow, deny := kmsg.ACLPermissionTypeAllow, kmsg.ACLPermissionTypeDeny
	topic, group := kmsg.ACLResourceTypeTopic, kmsg.ACLResourceTypeGroup
	literal, prefixed := kmsg.ACLResourcePatternTypeLiteral, kmsg.ACLResourcePatternTypePrefixed
	req := &kmsg.DescribeACLsRequest{ResourceType: kmsg.ACLResourceTypeAny, Operation: kmsg.ACLOperationAny, PermissionType: kmsg.ACLPermissionTypeAny, ResourcePatternType: kmsg.ACLResourcePatternTypeAny}
	for _, v := range []int16{0, 1, 2, 3} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newCx(t, true)
			resp := cxMergedRead(t, f, req, v, map[string]kmsg.Response{
				cxEast: cxACLs(
					cxACLResource(topic, "orders", literal, cxACL("User:a", read, allow), cxACL("User:b", write, allow)),
					cxACLResource(group, "g", prefixed, cxACL("User:a", read, allow))),
				cxWest: cxACLs(
					cxACLResource(group, "g", prefixed, cxACL("User:a", read, allow)),
					cxACLResource(topic, "w.clicks", literal, cxACL("User:c", read, deny)),
					cxACLResource(topic, "orders", literal, cxACL("User:a", read, allow))),
			}).(*kmsg.DescribeACLsResponse)
			var got []string
			for _, res := range resp.Resources {
				for _, a := range res.ACLs {
					got = append(got, fmt.Sprintf("%s/%s:%s/%s/%s", res.ResourceType, res.ResourceName, a.Principal, a.Operation, a.PermissionType))
				}
			}
			want := []string{"TOPIC/orders:User:a/READ/ALLOW", "TOPIC/orders:User:b/WRITE/ALLOW", "GROUP/g:User:a/READ/ALLOW", "TOPIC/w.clicks:User:c/READ/DENY"}
			if !slices.Equal(got, want) || len(resp.Resources) != 3 {
				t.Fatalf("bindings %v in %d resources, want %v in 3", got, len(resp.Resources), want)
			}
			if v >= 1 && resp.Resources[1].ResourcePatternType != prefixed {
				t.Fatalf("group g pattern %v, want PREFIXED", resp.Resources[1].ResourcePatternType)
			}
			if resp.ErrorCode != 0 {
				t.Fatalf("error code %d, want 0", resp.ErrorCode)
			}
			cxNoteNames(t, resp.ErrorMessage, []string{"2 entries", `"orders" User:b`, "(east: present; west: absent)", `"w.clicks" User:c`, "(east: absent; west: present)"}, []string{"User:a"})
			if n := cxDisagreements(t, f, 29); n != 2 {
				t.Fatalf("%v disagreements counted, want 2", n)
			}
		})
	}
}

func cxQuota(values map[string]float64, entity ...string) kmsg.DescribeClientQuotasResponseEntry {
	var en kmsg.DescribeClientQuotasResponseEntry
	for i := 0; i < len(entity); i += 2 {
		c := kmsg.DescribeClientQuotasResponseEntryEntity{Type: entity[i]}
		if entity[i+1] != "" {
			c.Name = kmsg.StringPtr(entity[i+1])
		}
		en.Entity = append(en.Entity, c)
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		en.Values = append(en.Values, kmsg.DescribeClientQuotasResponseEntryValue{Key: k, Value: values[k]})
	}
	return en
}

func cxQuotas(entries ...kmsg.DescribeClientQuotasResponseEntry) *kmsg.DescribeClientQuotasResponse {
	resp := kmsg.NewPtrDescribeClientQuotasResponse()
	resp.Entries = entries
	return resp
}

// cxQuotaView is "entity → values" of an answer.
func cxQuotaView(resp *kmsg.DescribeClientQuotasResponse) []string {
	var out []string
	for _, en := range resp.Entries {
		var ents, vals []string
		for _, c := range en.Entity {
			name := "<default>"
			if c.Name != nil {
				name = *c.Name
			}
			ents = append(ents, c.Type+"="+name)
		}
		for _, v := range en.Values {
			vals = append(vals, fmt.Sprintf("%s=%g", v.Key, v.Value))
		}
		slices.Sort(vals)
		out = append(out, strings.Join(ents, ",")+": "+strings.Join(vals, ","))
	}
	return out
}

// TestCharacteriseMergedDescribeClientQuotas: the union of the entities; an
// entity held with other values is answered as east has it, one held by
// one cluster only as that cluster has it; components and values compare
// in any order.
func TestCharacteriseMergedDescribeClientQuotas(t *testing.T) {
	req := &kmsg.DescribeClientQuotasRequest{Components: []kmsg.DescribeClientQuotasRequestComponent{{EntityType: "user", MatchType: 2}}}
	for _, v := range []int16{0, 1} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			f := newCx(t, true)
			pb, cb := "producer_byte_rate", "consumer_byte_rate"
			resp := cxMergedRead(t, f, req, v, map[string]kmsg.Response{
				cxEast: cxQuotas(
					cxQuota(map[string]float64{pb: 1024}, "user", "u1"),
					cxQuota(map[string]float64{cb: 5, pb: 6}, "user", "u2", "client-id", "c"),
					cxQuota(map[string]float64{"request_percentage": 50}, "user", "")),
				cxWest: cxQuotas(
					cxQuota(map[string]float64{pb: 1}, "user", "u3"),
					cxQuota(map[string]float64{pb: 2048}, "user", "u1"),
					func() kmsg.DescribeClientQuotasResponseEntry {
						// u2/c as east has it, components and values in the other order
						en := cxQuota(map[string]float64{cb: 5, pb: 6}, "client-id", "c", "user", "u2")
						slices.Reverse(en.Values)
						return en
					}()),
			}).(*kmsg.DescribeClientQuotasResponse)
			got := cxQuotaView(resp)
			want := []string{"user=u1: producer_byte_rate=1024", "user=u2,client-id=c: consumer_byte_rate=5,producer_byte_rate=6", "user=<default>: request_percentage=50", "user=u3: producer_byte_rate=1"}
			if !slices.Equal(got, want) {
				t.Fatalf("entries\n got %v\nwant %v", got, want)
			}
			if resp.ErrorCode != 0 {
				t.Fatalf("error code %d, want 0", resp.ErrorCode)
			}
			cxNoteNames(t, resp.ErrorMessage, []string{
				`user="u1" (east: producer_byte_rate=1024; west: producer_byte_rate=2048)`,
				"user=<default> (east: request_percentage=50; west: absent)",
				`user="u3" (east: absent; west: producer_byte_rate=1)`,
			}, []string{"u2"})
			if n := cxDisagreements(t, f, 48); n != 3 {
				t.Fatalf("%v disagreements counted, want 3", n)
			}
		})
	}
	t.Run("agree", func(t *testing.T) {
		f := newCx(t, true)
		same := func() kmsg.Response {
			return cxQuotas(cxQuota(map[string]float64{"producer_byte_rate": 1}, "user", "u1"))
		}
		resp := cxMergedRead(t, f, req, 1, map[string]kmsg.Response{cxEast: same(), cxWest: same()}).(*kmsg.DescribeClientQuotasResponse)
		if got := cxQuotaView(resp); len(got) != 1 || resp.ErrorMessage != nil || resp.ErrorCode != 0 {
			t.Fatalf("entries %v, message %v, code %d: want one entry and no message", got, resp.ErrorMessage, resp.ErrorCode)
		}
		if n := cxDisagreements(t, f, 48); n != 0 {
			t.Fatalf("%v disagreements counted, want 0", n)
		}
	})
	t.Run("many", func(t *testing.T) {
		// The note names a bounded number of entries; the counter has all.
		f := newCx(t, true)
		west := cxQuotas()
		for i := range 20 {
			west.Entries = append(west.Entries, cxQuota(map[string]float64{"producer_byte_rate": 1}, "user", fmt.Sprintf("w%02d", i)))
		}
		resp := cxMergedRead(t, f, req, 1, map[string]kmsg.Response{cxEast: cxQuotas(), cxWest: west}).(*kmsg.DescribeClientQuotasResponse)
		if len(resp.Entries) != 20 {
			t.Fatalf("%d entries, want 20", len(resp.Entries))
		}
		cxNoteNames(t, resp.ErrorMessage, []string{"20 entries", `"w07"`, "and 12 more"}, []string{`"w08"`})
		if n := cxDisagreements(t, f, 48); n != 20 {
			t.Fatalf("%v disagreements counted, want 20", n)
		}
	})
}

func cxSCRAM(user string, code int16, creds ...[2]int32) kmsg.DescribeUserSCRAMCredentialsResponseResult {
	r := kmsg.DescribeUserSCRAMCredentialsResponseResult{User: user, ErrorCode: code}
	for _, c := range creds {
		r.CredentialInfos = append(r.CredentialInfos, kmsg.DescribeUserSCRAMCredentialsResponseResultCredentialInfo{Mechanism: int8(c[0]), Iterations: c[1]})
	}
	return r
}

// TestCharacteriseMergedDescribeUserSCRAMCredentials: one result per user;
// a user one cluster lacks (RESOURCE_NOT_FOUND) is answered as the other
// has it, one held with other iterations as east has it, one no cluster
// has is RESOURCE_NOT_FOUND, and another error for a user is answered.
func TestCharacteriseMergedDescribeUserSCRAMCredentials(t *testing.T) {
	notFound, dup := kerr.ResourceNotFound.Code, kerr.DuplicateResource.Code
	req := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	for _, u := range []string{"u1", "u2", "u3", "u4", "u5"} {
		req.Users = append(req.Users, kmsg.DescribeUserSCRAMCredentialsRequestUser{Name: u})
	}
	mk := func(results ...kmsg.DescribeUserSCRAMCredentialsResponseResult) kmsg.Response {
		resp := kmsg.NewPtrDescribeUserSCRAMCredentialsResponse()
		resp.Results = results
		return resp
	}
	f := newCx(t, true)
	resp := cxMergedRead(t, f, req, 0, map[string]kmsg.Response{
		cxEast: mk(cxSCRAM("u1", 0, [2]int32{1, 4096}), cxSCRAM("u2", notFound), cxSCRAM("u3", notFound),
			cxSCRAM("u4", 0, [2]int32{2, 8192}, [2]int32{1, 4096}), cxSCRAM("u5", 0, [2]int32{1, 4096})),
		cxWest: mk(cxSCRAM("u2", 0, [2]int32{2, 4096}), cxSCRAM("u1", 0, [2]int32{1, 8192}), cxSCRAM("u3", notFound),
			cxSCRAM("u4", 0, [2]int32{1, 4096}, [2]int32{2, 8192}), cxSCRAM("u5", dup)),
	}).(*kmsg.DescribeUserSCRAMCredentialsResponse)
	var got []string
	for _, r := range resp.Results {
		var creds []string
		for _, ci := range r.CredentialInfos {
			creds = append(creds, fmt.Sprintf("%d/%d", ci.Mechanism, ci.Iterations))
		}
		got = append(got, fmt.Sprintf("%s:%d:%v", r.User, r.ErrorCode, creds))
	}
	want := []string{
		"u1:0:[1/4096]",                   // east's
		"u2:0:[2/4096]",                   // west's: east lacks it
		fmt.Sprintf("u3:%d:[]", notFound), // nowhere
		"u4:0:[2/8192 1/4096]",            // the same, in another order
		fmt.Sprintf("u5:%d:[]", dup),      // west's error
	}
	if !slices.Equal(got, want) {
		t.Fatalf("results\n got %v\nwant %v", got, want)
	}
	if resp.ErrorCode != 0 {
		t.Fatalf("error code %d, want 0", resp.ErrorCode)
	}
	cxNoteNames(t, resp.ErrorMessage, []string{
		`"u1" (east: SCRAM-SHA-256/4096; west: SCRAM-SHA-256/8192)`,
		`"u2" (east: absent; west: SCRAM-SHA-512/4096)`,
	}, []string{"u3", "u4", "u5"})
	if n := cxDisagreements(t, f, 50); n != 2 {
		t.Fatalf("%v disagreements counted, want 2", n)
	}
}

// TestCharacteriseMergedReadErrors: a whole-request error is the answer,
// the first any cluster gave (default cluster first), with nothing
// counted; with one cluster each key goes as sent and comes back as is.
func TestCharacteriseMergedReadErrors(t *testing.T) {
	denied := kerr.ClusterAuthorizationFailed.Code
	keys := []struct {
		name string
		v    int16
		req  kmsg.Request
		resp func(code int16, from string) kmsg.Response
		code func(kmsg.Response) (int16, *string, int)
	}{
		{"DescribeACLs", 3, &kmsg.DescribeACLsRequest{ResourceType: kmsg.ACLResourceTypeAny, Operation: kmsg.ACLOperationAny, PermissionType: kmsg.ACLPermissionTypeAny, ResourcePatternType: kmsg.ACLResourcePatternTypeAny},
			func(code int16, from string) kmsg.Response {
				resp := cxACLs(cxACLResource(kmsg.ACLResourceTypeTopic, "of-"+from, kmsg.ACLResourcePatternTypeLiteral, cxACL("User:"+from, kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow)))
				resp.ErrorCode, resp.ErrorMessage = code, kmsg.StringPtr("from "+from)
				return resp
			}, func(x kmsg.Response) (int16, *string, int) {
				r := x.(*kmsg.DescribeACLsResponse)
				return r.ErrorCode, r.ErrorMessage, len(r.Resources)
			}},
		{"DescribeClientQuotas", 1, &kmsg.DescribeClientQuotasRequest{},
			func(code int16, from string) kmsg.Response {
				resp := cxQuotas(cxQuota(map[string]float64{"producer_byte_rate": 1}, "user", from))
				resp.ErrorCode, resp.ErrorMessage = code, kmsg.StringPtr("from "+from)
				return resp
			}, func(x kmsg.Response) (int16, *string, int) {
				r := x.(*kmsg.DescribeClientQuotasResponse)
				return r.ErrorCode, r.ErrorMessage, len(r.Entries)
			}},
		{"DescribeUserSCRAMCredentials", 0, &kmsg.DescribeUserSCRAMCredentialsRequest{},
			func(code int16, from string) kmsg.Response {
				resp := kmsg.NewPtrDescribeUserSCRAMCredentialsResponse()
				resp.Results = []kmsg.DescribeUserSCRAMCredentialsResponseResult{cxSCRAM(from, 0, [2]int32{1, 4096})}
				resp.ErrorCode, resp.ErrorMessage = code, kmsg.StringPtr("from "+from)
				return resp
			}, func(x kmsg.Response) (int16, *string, int) {
				r := x.(*kmsg.DescribeUserSCRAMCredentialsResponse)
				return r.ErrorCode, r.ErrorMessage, len(r.Results)
			}},
	}
	for _, k := range keys {
		key := k.req.Key()
		for _, c := range []struct {
			name       string
			east, west int16
			want       string
		}{{"west fails", 0, denied, cxWest}, {"both fail", kerr.InvalidRequest.Code, denied, cxEast}} {
			t.Run(k.name+" "+c.name, func(t *testing.T) {
				f := newCx(t, true)
				resp := cxMergedRead(t, f, k.req, k.v, map[string]kmsg.Response{cxEast: k.resp(c.east, cxEast), cxWest: k.resp(c.west, cxWest)})
				code, msg, n := k.code(resp)
				wantCode := c.west
				if c.want == cxEast {
					wantCode = c.east
				}
				if code != wantCode || msg == nil || *msg != "from "+c.want || n != 1 {
					t.Fatalf("answered code %d message %v with %d entries, want %s's answer (code %d)", code, msg, n, c.want, wantCode)
				}
				if n := cxDisagreements(t, f, key); n != 0 {
					t.Fatalf("%v disagreements counted for an error", n)
				}
			})
		}
		t.Run(k.name+" one cluster", func(t *testing.T) {
			f := newCx(t, false)
			h := f.conn(t)
			resp := k.resp(0, cxEast)
			ex, _ := h.answered(k.req, k.v, cxAnswerWith(resp))
			cxWantTargets(t, ex, cxE100)
			cxSentAsIs(t, ex, cxE100, cxFrame(k.req, k.v))
			cxPassedThrough(t, ex, resp, k.v)
		})
	}
}
