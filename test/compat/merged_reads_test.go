package compat

// Merged security and quota reads across two clusters, and
// ListConfigResources on the default cluster. ACLs, client quotas
// and SCRAM credentials written through the proxy land on every cluster
// and read back once; one written directly to a single cluster shows in
// the merged read, marked in the answer's ErrorMessage (ErrorCode 0) and
// counted, and neither kadm nor kafka-python fails on the marked answer.

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// mergedView is what one read of the three settings shows.
type mergedView struct {
	acls       []string           // "principal on resource", sorted
	quotas     map[string]float64 // "user key" → value
	users      []string           // users with SCRAM credentials, sorted
	scramIters string             // alice's iterations

	// The answers' ErrorMessage ("" when none).
	aclNote, quotaNote, scramNote string
}

// readSettings reads ACLs (kadm), client quotas and SCRAM users (kadm for
// the entries, the raw request for the ErrorMessage kadm does not keep).
func readSettings(ctx context.Context, t *testing.T, cl *kgo.Client) mergedView {
	t.Helper()
	adm := kadm.NewClient(cl)
	var v mergedView
	described, err := adm.DescribeACLs(ctx, kadm.NewACLs().AnyResource().Allow().AllowHosts().Operations(kadm.OpAny).ResourcePatternType(kadm.ACLPatternAny))
	if err != nil || len(described) != 1 || described[0].Err != nil {
		t.Fatalf("kadm DescribeACLs: %v %+v", err, described)
	}
	for _, d := range described[0].Described {
		v.acls = append(v.acls, d.Principal+" on "+d.Name)
	}
	slices.Sort(v.acls)
	v.aclNote = described[0].ErrMessage

	quotas, err := adm.DescribeClientQuotas(ctx, false, []kadm.DescribeClientQuotaComponent{{Type: "user", MatchType: kmsg.QuotasMatchTypeAny}})
	if err != nil {
		t.Fatalf("kadm DescribeClientQuotas: %v", err)
	}
	v.quotas = map[string]float64{}
	for _, q := range quotas {
		for _, val := range q.Values {
			v.quotas[*q.Entity[0].Name+" "+val.Key] = val.Value
		}
	}
	qreq := kmsg.NewPtrDescribeClientQuotasRequest()
	qreq.Components = []kmsg.DescribeClientQuotasRequestComponent{{EntityType: "user", MatchType: kmsg.QuotasMatchTypeAny}}
	qresp, err := qreq.RequestWith(ctx, cl)
	if err != nil || qresp.ErrorCode != 0 {
		t.Fatalf("DescribeClientQuotas: %v %+v", err, qresp)
	}
	if qresp.ErrorMessage != nil {
		v.quotaNote = *qresp.ErrorMessage
	}

	users, err := adm.DescribeUserSCRAMs(ctx)
	if err != nil || users.Error() != nil {
		t.Fatalf("kadm DescribeUserSCRAMs: %v %v", err, users.Error())
	}
	for u, d := range users {
		v.users = append(v.users, u)
		if u == "alice" && len(d.CredInfos) == 1 {
			v.scramIters = strconv.Itoa(int(d.CredInfos[0].Iterations))
		}
	}
	slices.Sort(v.users)
	sresp, err := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest().RequestWith(ctx, cl)
	if err != nil || sresp.ErrorCode != 0 {
		t.Fatalf("DescribeUserSCRAMCredentials: %v %+v", err, sresp)
	}
	if sresp.ErrorMessage != nil {
		v.scramNote = *sresp.ErrorMessage
	}
	return v
}

// writeSettings gives user an ACL (read on topic "orders"), a producer
// quota and a SCRAM-SHA-256 credential with iters iterations, through adm.
func writeSettings(ctx context.Context, t *testing.T, adm *kadm.Client, user string, rate float64, iters int32) {
	t.Helper()
	created, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:"+user).AllowHosts("*").Topics("orders").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	if err != nil || len(created) != 1 || created[0].Err != nil {
		t.Fatalf("CreateACLs for %s: %v %+v", user, err, created)
	}
	altered, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{
		Entity: kadm.ClientQuotaEntity{{Type: "user", Name: &user}},
		Ops:    []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: rate}},
	}})
	if err != nil || len(altered) != 1 || altered[0].Err != nil {
		t.Fatalf("AlterClientQuotas for %s: %v %+v", user, err, altered)
	}
	scram, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: user, Mechanism: kadm.ScramSha256, Iterations: iters, Password: "pw-" + user}})
	if err != nil || scram.Error() != nil {
		t.Fatalf("AlterUserSCRAMs for %s: %v %v", user, err, scram.Error())
	}
}

// disagreementsCounted sums switchyard_kafka_merged_read_disagreements_total
// over every peer, by API.
func disagreementsCounted(t *testing.T, adminURLs []string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	const name = "switchyard_kafka_merged_read_disagreements_total{api=\""
	for _, u := range adminURLs {
		resp, err := http.Get(u + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(body)))
		for sc.Scan() {
			rest, ok := strings.CutPrefix(sc.Text(), name)
			if !ok {
				continue
			}
			api, val, _ := strings.Cut(rest, "\"} ")
			f, err := strconv.ParseFloat(val, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", sc.Text(), err)
			}
			out[api] += f
		}
	}
	return out
}

// pyDescribeACLs lists every ACL with kafka-python's KafkaAdminClient
// through bootstrap: its error class name, then "principal on resource"
// lines.
const pyDescribeACLs = `
import sys
from kafka import KafkaAdminClient
from kafka.admin import ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourcePatternFilter, ResourceType
admin = KafkaAdminClient(bootstrap_servers=[sys.argv[1]], client_id="py-acls")
acls, err = admin.describe_acls(ACLFilter(principal=None, host="*", operation=ACLOperation.ANY,
    permission_type=ACLPermissionType.ANY, resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY)))
print(err.__name__)
for a in sorted(acls, key=lambda a: a.principal):
    print(a.principal + " on " + a.resource_pattern.resource_name)
admin.close()
`

func TestMergedSecurityReads(t *testing.T) {
	sb := startTwoClusters(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	writeSettings(ctx, t, kadm.NewClient(cl), "alice", 1024, 4096)
	for _, name := range []string{"east", "west"} {
		// Written to every cluster: each backend agrees on its own.
		direct, _ := directTo(t, sb, name)
		if v := readSettings(ctx, t, direct); !slices.Equal(v.acls, []string{"User:alice on orders"}) ||
			v.quotas["alice producer_byte_rate"] != 1024 || !slices.Equal(v.users, []string{"alice"}) {
			t.Fatalf("%s holds %+v, want alice's ACL, quota and credential", name, v)
		}
	}
	v := readSettings(ctx, t, cl)
	if !slices.Equal(v.acls, []string{"User:alice on orders"}) || len(v.quotas) != 1 || v.quotas["alice producer_byte_rate"] != 1024 ||
		!slices.Equal(v.users, []string{"alice"}) || v.aclNote != "" || v.quotaNote != "" || v.scramNote != "" {
		t.Fatalf("through the proxy: %+v, want alice's settings once and no disagreement", v)
	}
	if n := disagreementsCounted(t, sb.AdminURLs); n["DescribeACLs"]+n["DescribeClientQuotas"]+n["DescribeUserSCRAMCredentials"] != 0 {
		t.Fatalf("disagreements counted while the clusters agree: %v", n)
	}

	// Directly on west only: bob's settings, and alice's quota and
	// iterations changed.
	_, west := directTo(t, sb, "west")
	writeSettings(ctx, t, west, "bob", 7, 4096)
	writeSettings(ctx, t, west, "alice", 2048, 8192)

	v = readSettings(ctx, t, cl)
	if !slices.Equal(v.acls, []string{"User:alice on orders", "User:bob on orders"}) {
		t.Fatalf("ACLs through the proxy %v, want alice's and bob's", v.acls)
	}
	if v.quotas["alice producer_byte_rate"] != 1024 || v.quotas["bob producer_byte_rate"] != 7 {
		t.Fatalf("quotas through the proxy %v, want alice's as the default cluster has it (1024) and bob's (7)", v.quotas)
	}
	if !slices.Equal(v.users, []string{"alice", "bob"}) || v.scramIters != "4096" {
		t.Fatalf("SCRAM users through the proxy %v (alice with %s iterations), want alice (4096, as east has it) and bob", v.users, v.scramIters)
	}
	for what, c := range map[string]struct {
		note string
		want []string
	}{
		"DescribeACLs":                 {v.aclNote, []string{"1 entries", "User:bob", "east: absent; west: present"}},
		"DescribeClientQuotas":         {v.quotaNote, []string{"2 entries", `user="alice" (east: producer_byte_rate=1024; west: producer_byte_rate=2048)`, `user="bob" (east: absent; west: producer_byte_rate=7)`}},
		"DescribeUserSCRAMCredentials": {v.scramNote, []string{"2 entries", `"alice" (east: SCRAM-SHA-256/4096; west: SCRAM-SHA-256/8192)`, `"bob" (east: absent; west: SCRAM-SHA-256/4096)`}},
	} {
		for _, w := range c.want {
			if !strings.Contains(c.note, w) {
				t.Errorf("%s ErrorMessage %q does not name %q", what, c.note, w)
			}
		}
	}
	// Each answer counts its disagreeing entries; readSettings asked for
	// quotas and SCRAM users twice (kadm and the raw request).
	n := disagreementsCounted(t, sb.AdminURLs)
	if n["DescribeACLs"] != 1 || n["DescribeClientQuotas"] != 2*2 || n["DescribeUserSCRAMCredentials"] != 2*2 {
		t.Fatalf("disagreements counted %v, want 1 ACL, 2 quota entities twice and 2 users twice", n)
	}

	// kafka-python reads the marked answer as a success.
	py := needCommand(t, pythonPath)
	pctx, pcancel := context.WithTimeout(ctx, 60*time.Second)
	defer pcancel()
	out, err := exec.CommandContext(pctx, py, "-c", pyDescribeACLs, sb.Bootstrap[1]).CombinedOutput()
	if err != nil {
		t.Fatalf("kafka-python describe_acls: %v\n%s", err, out)
	}
	if got := strings.Fields(strings.ReplaceAll(string(out), " on ", "@")); !slices.Equal(got, []string{"NoError", "User:alice@orders", "User:bob@orders"}) {
		t.Fatalf("kafka-python describe_acls printed %q, want NoError and alice's and bob's ACLs", out)
	}
}

// TestListConfigResourcesDefaultCluster: a client-metrics subscription
// (KIP-714) set through the proxy lives on the default cluster, and
// ListConfigResources (v0, the version the proxy advertises) lists it
// through the proxy.
func TestListConfigResourcesDefaultCluster(t *testing.T) {
	sb := startTwoClusters(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// kadm has no call for client-metrics configs: the raw request.
	alter := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeClientMetrics, "all-clients"
	res.Configs = []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "interval.ms", Value: kmsg.StringPtr("60000")}}
	alter.Resources = append(alter.Resources, res)
	altered, err := alter.RequestWith(ctx, cl)
	if err != nil || len(altered.Resources) != 1 || altered.Resources[0].ErrorCode != 0 {
		t.Fatalf("altering client metrics: %v %+v", err, altered)
	}
	listed, err := kadm.NewClient(cl).ListConfigResources(ctx)
	if err != nil || listed.Err != nil || !slices.Equal(listed.Names(), []string{"all-clients"}) {
		t.Fatalf("ListConfigResources through the proxy: %v %+v, want all-clients", err, listed)
	}
	_, east := directTo(t, sb, "east")
	if onEast, err := east.ListConfigResources(ctx, kadm.ConfigResourceClientMetrics); err != nil || !slices.Equal(onEast.Names(), []string{"all-clients"}) {
		t.Fatalf("ListConfigResources on east: %v %+v, want the subscription on the default cluster", err, onEast)
	}
}
