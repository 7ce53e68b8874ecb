package kafka

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/switchyard-proxy/switchyard/fsm"
)

func rule(principal, host, res, name, pattern, op, perm string) fsm.ACL {
	return fsm.ACL{Principal: principal, Host: host, ResourceType: res, ResourceName: name, Pattern: pattern, Operation: op, Permission: perm}
}

// TestAuthorizerSemantics: Kafka's rules of evaluation.
func TestAuthorizerSemantics(t *testing.T) {
	const (
		allow, deny = fsm.PermissionAllow, fsm.PermissionDeny
		lit, pre    = fsm.PatternLiteral, fsm.PatternPrefixed
		topic       = fsm.ResourceTopic
	)
	acls := []fsm.ACL{
		rule("User:alice", "*", topic, "orders", lit, fsm.OpWrite, allow),
		rule("User:alice", "*", topic, "logs.", pre, fsm.OpRead, allow),
		rule("User:alice", "*", topic, "logs.secret", lit, fsm.OpRead, deny),
		rule("User:*", "*", topic, "public", lit, fsm.OpRead, allow),
		rule("User:bob", "*", topic, "*", lit, fsm.OpAll, allow),
		rule("User:bob", "10.0.0.9", topic, "orders", lit, fsm.OpAll, deny),
		rule("User:carol", "10.0.0.1", topic, "orders", lit, fsm.OpAlterConfigs, allow),
		rule("User:dave", "*", fsm.ResourceGroup, "g", lit, fsm.OpRead, allow),
		rule("User:dave", "*", fsm.ResourceGroup, "g", lit, fsm.OpDescribe, deny),
	}
	a := newAuthorizer(acls)
	any4, ten1, ten9 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.9")
	cases := []struct {
		principal string
		host      netip.Addr
		op        aclOp
		res       aclRes
		name      string
		want      verdict
	}{
		{"User:alice", any4, opWrite, resTopic, "orders", allowed},
		{"User:alice", any4, opDescribe, resTopic, "orders", allowed}, // Write implies Describe
		{"User:alice", any4, opRead, resTopic, "orders", denied},
		{"User:alice", any4, opRead, resTopic, "logs.app", allowed},        // prefix
		{"User:alice", any4, opRead, resTopic, "logs.secret", denied},      // deny wins
		{"User:alice", any4, opDescribe, resTopic, "logs.secret", allowed}, // a deny of Read leaves Describe
		{"User:alice", any4, opRead, resTopic, "public", allowed},          // User:*
		{"User:eve", any4, opRead, resTopic, "public", allowed},
		{"User:eve", any4, opWrite, resTopic, "public", denied},
		{"User:bob", any4, opDelete, resTopic, "anything", allowed}, // * and All
		{"User:bob", ten9, opRead, resTopic, "orders", denied},      // host deny
		{"User:bob", ten1, opRead, resTopic, "orders", allowed},
		{"User:carol", ten1, opDescribeConfigs, resTopic, "orders", allowed}, // AlterConfigs implies DescribeConfigs
		{"User:carol", ten9, opDescribeConfigs, resTopic, "orders", denied},  // other host
		{"User:carol", ten1, opDescribe, resTopic, "orders", denied},
		{"User:dave", any4, opRead, resGroup, "g", allowed},
		{"User:dave", any4, opDescribe, resGroup, "g", denied},
		{"User:dave", any4, opRead, resGroup, "h", noRule},
		{"User:alice", any4, opRead, resTxn, "t", noRule},
	}
	for _, tc := range cases {
		if got := a.check(tc.principal, tc.host, tc.op, tc.res, tc.name); got != tc.want {
			t.Errorf("%s at %s %s %s %q: %d, want %d", tc.principal, tc.host, opNames[tc.op], resNames[tc.res], tc.name, got, tc.want)
		}
	}
	if !a.anyAllowed("User:alice", any4, opWrite, resTopic) || a.anyAllowed("User:dave", any4, opWrite, resTopic) {
		t.Error("anyAllowed: alice may write some topic, dave none")
	}

	// The server's view: super users, allow-if-no-acl, the cache.
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, 0)
	for _, allowNoACL := range []bool{false, true} {
		z := newAuthz(AuthzConfig{SuperUsers: []string{"User:root", " "}, AllowIfNoACL: allowNoACL}, m, slog.New(slog.DiscardHandler))
		c := &clientConn{principal: "User:dave", clientIP: any4}
		st := &fsm.State{ACLs: acls}
		if got := z.allows(c, st, opRead, resGroup, "h"); got != allowNoACL {
			t.Errorf("allow-if-no-acl %v: a group without rules gives %v", allowNoACL, got)
		}
		if z.allows(c, st, opDescribe, resGroup, "g") {
			t.Error("dave's Describe on g is denied")
		}
		c.principal = "User:root"
		if !z.allows(c, st, opDescribe, resGroup, "g") {
			t.Error("a super user is allowed everything")
		}
		if z.index(st) != z.index(&fsm.State{ACLs: st.ACLs}) {
			t.Error("a state sharing the ACL list rebuilt the index")
		}
	}
	if got := counterValue(m.authzDenied.WithLabelValues(fsm.OpDescribe, fsm.ResourceGroup)); got != 2 {
		t.Errorf("denied{describe,group} = %v, want 2", got)
	}
}

// BenchmarkAuthorize: the per-request check with 10,000 rules, the common
// case (allowed by a literal rule) and a prefix match.
func BenchmarkAuthorize(b *testing.B) {
	var acls []fsm.ACL
	for i := range 5000 {
		n := "topic-" + itoaTest(i)
		acls = append(acls, rule("User:u"+itoaTest(i%50), "*", fsm.ResourceTopic, n, fsm.PatternLiteral, fsm.OpWrite, fsm.PermissionAllow))
		acls = append(acls, rule("User:u"+itoaTest(i%50), "*", fsm.ResourceGroup, "g"+n, fsm.PatternLiteral, fsm.OpRead, fsm.PermissionAllow))
	}
	for i := range 20 {
		acls = append(acls, rule("User:u7", "*", fsm.ResourceTopic, "pre"+itoaTest(i)+".", fsm.PatternPrefixed, fsm.OpRead, fsm.PermissionAllow))
	}
	slices.SortFunc(acls, fsm.CompareACLs)
	z := newAuthz(AuthzConfig{}, nil, slog.New(slog.DiscardHandler))
	st := &fsm.State{ACLs: acls}
	c := &clientConn{principal: "User:u7", clientIP: netip.MustParseAddr("10.1.2.3")}
	z.index(st)
	b.Run("literal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !z.allows(c, st, opWrite, resTopic, "topic-7") {
				b.Fatal("denied")
			}
		}
	})
	b.Run("prefixed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !z.allows(c, st, opRead, resTopic, "pre19.x") {
				b.Fatal("denied")
			}
		}
	})
}

func itoaTest(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// aclView is a View whose state a test proposer changes.
type aclView struct {
	mu sync.Mutex
	st *fsm.State
}

func (v *aclView) State() *fsm.State {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.st
}
func (v *aclView) Live(int32) bool { return true }

// Apply is the Proposer: the command applied to the state at once, as the
// node does once Raft committed it.
func (v *aclView) Apply(_ context.Context, cmd fsm.Command) (fsm.Applied, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	next, err := v.st.Next(cmd, v.st.Index+1)
	if err != nil {
		return fsm.Applied{}, err
	}
	v.st = next
	return fsm.Applied{Index: next.Index}, nil
}

// startAuthzProxy runs an authenticating proxy in front of kc whose
// connections' principal is "User:" + their client id.
func startAuthzProxy(t *testing.T, kc *kfake.Cluster) (string, *aclView, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, 0)
	be := newTestBackend(t, BackendConfig{Name: "a", Bootstrap: kc.ListenAddrs(), MetadataRefresh: time.Second, Metrics: m})
	view := &aclView{}
	srv := listenServer(t, Config{Authenticates: true, Proposer: view,
		Authz: AuthzConfig{SuperUsers: []string{"User:admin"}}}, view, m, be)
	srv.authz.testPrincipal = func(id string) string { return "User:" + id }
	addr := srv.Addr().String()
	view.st = &fsm.State{
		Clusters: []fsm.Cluster{{Name: "a", Bootstrap: kc.ListenAddrs()}},
		Routes:   fsm.Routes{DefaultCluster: "a"},
		Peers:    []fsm.Peer{{ID: 0, Name: "peer-0", KafkaAddr: addr}},
	}
	serveServer(t, srv, be)
	return addr, view, reg
}

func aclClient(t *testing.T, addr, principal string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ClientID(principal), kgo.RetryTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestAuthorizationThroughProxy: franz-go clients against an
// authenticating proxy whose rules are managed with kadm (Kafka's
// CreateAcls, DescribeAcls, DeleteAcls): a topic without Write is refused
// in its own entry and nothing of it is written while the allowed topic of
// the same request is; a topic without Describe is not in Metadata;
// groups, transactional ids and idempotent producers are checked.
func TestAuthorizationThroughProxy(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "allowed", "secret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	addr, view, reg := startAuthzProxy(t, kc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	admin := kadm.NewClient(aclClient(t, addr, "admin"))
	b := kadm.NewACLs().Allow("User:alice").Topics("allowed").Operations(kadm.OpWrite).
		ResourcePatternType(kadm.ACLPatternLiteral)
	created, err := admin.CreateACLs(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range created {
		if c.Err != nil {
			t.Fatalf("create acl: %v", c.Err)
		}
	}
	grp := kadm.NewACLs().Allow("User:alice").Groups("g1").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral)
	if _, err := admin.CreateACLs(ctx, grp); err != nil {
		t.Fatal(err)
	}
	if n := len(view.State().ACLs); n != 2 {
		t.Fatalf("the state holds %d rules, want 2: %+v", n, view.State().ACLs)
	}
	described, err := admin.DescribeACLs(ctx, anyACL())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range described {
		if d.Err != nil {
			t.Fatalf("describe acls: %v", d.Err)
		}
		n += len(d.Described)
	}
	if n != 2 {
		t.Fatalf("describe acls found %d rules, want 2: %+v", n, described)
	}

	// Kafka 3.9's versions: Produce names topics (v13 names them by id).
	alice := aclClient(t, addr, "alice", kgo.MaxVersions(kversion.V3_9_0()))
	// One Produce naming both topics.
	produce := kmsg.NewPtrProduceRequest()
	produce.Acks, produce.TimeoutMillis = -1, 10000
	for _, topic := range []string{"allowed", "secret"} {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = cxBatch(-1, -1, "v-"+topic)
		rt.Partitions = append(rt.Partitions, rp)
		produce.Topics = append(produce.Topics, rt)
	}
	kr, err := alice.Broker(0).Request(ctx, produce)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]int16{}
	for _, rt := range kr.(*kmsg.ProduceResponse).Topics {
		codes[rt.Topic] = rt.Partitions[0].ErrorCode
	}
	if codes["allowed"] != 0 || codes["secret"] != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("produce codes %v, want allowed 0 and secret %d", codes, kerr.TopicAuthorizationFailed.Code)
	}
	ends, err := admin.ListEndOffsets(ctx, "allowed", "secret")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup("allowed", 0); o.Offset != 1 {
		t.Fatalf("allowed holds %d records, want 1", o.Offset)
	}
	if o, _ := ends.Lookup("secret", 0); o.Offset != 0 {
		t.Fatalf("secret holds %d records, want 0: a denied write reached the backend", o.Offset)
	}

	// Metadata: all topics leave out secret; naming it is refused.
	aliceAdm := kadm.NewClient(alice)
	topics, err := aliceAdm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if topics.Has("secret") || !topics.Has("allowed") {
		t.Fatalf("alice sees %v, want allowed without secret", topics.Names())
	}
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("secret")
	meta.Topics = append(meta.Topics, mt)
	kr, err = alice.Request(ctx, meta)
	if err != nil {
		t.Fatal(err)
	}
	if m := kr.(*kmsg.MetadataResponse); len(m.Topics) != 1 || m.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("metadata for secret: %+v", m.Topics)
	}

	// Groups: g1 may be joined (Read), g2 not; DescribeGroups answers
	// each group on its own.
	join := func(group string) int16 {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.ProtocolType, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = group, "consumer", 10000, 10000
		req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
		kr, err := alice.Request(ctx, req)
		if errorIs(err, kerr.GroupAuthorizationFailed) {
			return kerr.GroupAuthorizationFailed.Code // FindCoordinator refused it first
		}
		if err != nil {
			t.Fatal(err)
		}
		return kr.(*kmsg.JoinGroupResponse).ErrorCode
	}
	if code := join("g2"); code != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("join g2: %d, want GROUP_AUTHORIZATION_FAILED", code)
	}
	if code := join("g1"); code == kerr.GroupAuthorizationFailed.Code {
		t.Fatal("join g1 was refused")
	}
	dreq := kmsg.NewPtrDescribeGroupsRequest()
	dreq.Groups = []string{"g2", "g1", "g3"}
	kr, err = alice.Broker(0).Request(ctx, dreq)
	if err != nil {
		t.Fatal(err)
	}
	dcodes := map[string]int16{}
	for _, g := range kr.(*kmsg.DescribeGroupsResponse).Groups {
		dcodes[g.Group] = g.ErrorCode
	}
	gaf := kerr.GroupAuthorizationFailed.Code
	if len(dcodes) != 3 || dcodes["g1"] != 0 || dcodes["g2"] != gaf || dcodes["g3"] != gaf {
		t.Fatalf("describe groups codes %v, want g1 0 and g2, g3 %d", dcodes, gaf)
	}
	// A group only the super user joined is not listed for alice.
	adminJoin := kmsg.NewPtrJoinGroupRequest()
	adminJoin.Group, adminJoin.ProtocolType, adminJoin.SessionTimeoutMillis, adminJoin.RebalanceTimeoutMillis = "g3", "consumer", 10000, 10000
	adminJoin.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
	if _, err := aclClient(t, addr, "admin").Request(ctx, adminJoin); err != nil {
		t.Fatal(err)
	}
	if all, err := admin.ListGroups(ctx); err != nil || !slices.Contains(all.Groups(), "g3") {
		t.Fatalf("the super user lists %v (%v), want g3 among them", all.Groups(), err)
	}
	lg, err := aliceAdm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(lg.Groups(), []string{"g1"}) {
		t.Fatalf("alice lists groups %v, want only g1", lg.Groups())
	}

	// A commit to a group without Read: every partition refused, nothing
	// forwarded; a fetch of a topic without Read: that topic refused.
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group, commit.Generation = "g2", -1
	cmt := kmsg.NewOffsetCommitRequestTopic()
	cmt.Topic = "allowed"
	cp := kmsg.NewOffsetCommitRequestTopicPartition()
	cp.Offset = 1
	cmt.Partitions = append(cmt.Partitions, cp)
	commit.Topics = append(commit.Topics, cmt)
	kr, err = alice.Broker(0).Request(ctx, commit)
	if err != nil {
		t.Fatal(err)
	}
	if rt := kr.(*kmsg.OffsetCommitResponse).Topics; len(rt) != 1 || rt[0].Partitions[0].ErrorCode != gaf {
		t.Fatalf("commit to g2: %+v", rt)
	}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.MaxWaitMillis, fetch.MaxBytes, fetch.SessionEpoch = 10, 1<<20, -1
	for _, topic := range []string{"allowed", "secret"} {
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = topic
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes = 1 << 20
		ft.Partitions = append(ft.Partitions, fp)
		fetch.Topics = append(fetch.Topics, ft)
	}
	// Kafka 2.8's Fetch (v12) names topics; alice may Read "allowed"
	// and nothing on "secret".
	if _, err := admin.CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").Topics("allowed").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral)); err != nil {
		t.Fatal(err)
	}
	alice28 := aclClient(t, addr, "alice", kgo.MaxVersions(kversion.V2_8_0()))
	kr, err = alice28.Broker(0).Request(ctx, fetch)
	if err != nil {
		t.Fatal(err)
	}
	fcodes := map[string]int16{}
	for _, rt := range kr.(*kmsg.FetchResponse).Topics {
		fcodes[rt.Topic] = rt.Partitions[0].ErrorCode
	}
	if len(fcodes) != 2 || fcodes["allowed"] != 0 || fcodes["secret"] != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("fetch codes %v, want allowed 0 and secret TOPIC_AUTHORIZATION_FAILED", fcodes)
	}

	// Transactional ids and idempotence (KIP-679).
	ipid := func(cl *kgo.Client, txn *string) int16 {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis = txn, 10000
		kr, err := cl.Broker(0).Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return kr.(*kmsg.InitProducerIDResponse).ErrorCode
	}
	if code := ipid(alice, kmsg.StringPtr("tx1")); code != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Fatalf("init producer id tx1: %d", code)
	}
	if code := ipid(alice, nil); code != 0 {
		t.Fatalf("idempotent init producer id for a principal with Write on a topic: %d", code)
	}
	bob := aclClient(t, addr, "bob")
	if code := ipid(bob, nil); code != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("idempotent init producer id for a principal without Write: %d", code)
	}
	// Cluster keys: alice may not manage ACLs.
	if res, err := aliceAdm.DescribeACLs(ctx, anyACL()); err != nil || len(res) == 0 || !errorIs(res[0].Err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("alice's describe acls: %v %+v", err, res)
	}
	if got := gatherMetric(t, reg, "switchyard_kafka_authz_denied_total", "operation", fsm.OpWrite, "resource_type", fsm.ResourceTopic); got < 1 {
		t.Fatalf("denied writes counted %v", got)
	}

	// Topic administration: CreateTopics needs Create, and the
	// cluster-wide partition keys Alter on the cluster.
	ct, err := aliceAdm.CreateTopics(ctx, 1, 1, nil, "newtopic")
	if err != nil {
		t.Fatal(err)
	}
	if r := ct["newtopic"]; !errorIs(r.Err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("create topic without Create: %v", r.Err)
	}
	if all, _ := admin.ListTopics(ctx); all.Has("newtopic") {
		t.Fatal("a denied CreateTopics created the topic")
	}
	elect := kmsg.NewPtrElectLeadersRequest()
	kr, err = alice.Broker(0).Request(ctx, elect)
	if err != nil {
		t.Fatal(err)
	}
	if code := kr.(*kmsg.ElectLeadersResponse).ErrorCode; code != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("elect leaders: %d, want CLUSTER_AUTHORIZATION_FAILED", code)
	}
	// A transactional Produce needs Write on its transactional id.
	txnProduce := *produce
	txnProduce.TransactionID = kmsg.StringPtr("tx1")
	txnProduce.Topics = txnProduce.Topics[:1] // "allowed" only
	kr, err = alice.Broker(0).Request(ctx, &txnProduce)
	if err != nil {
		t.Fatal(err)
	}
	if code := kr.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Fatalf("transactional produce without Write on its id: %d", code)
	}

	// DeleteAcls answers what it deleted; alice loses Write.
	deleted, err := admin.DeleteACLs(ctx, kadm.NewACLs().Allow("User:alice").AllowHosts().Topics("allowed").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral))
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 1 || deleted[0].Err != nil || len(deleted[0].Deleted) != 1 {
		t.Fatalf("delete acls: %+v", deleted)
	}
	kr, err = alice.Broker(0).Request(ctx, produce)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range kr.(*kmsg.ProduceResponse).Topics {
		if rt.Partitions[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
			t.Fatalf("after delete, %s: %d", rt.Topic, rt.Partitions[0].ErrorCode)
		}
	}
}

// anyACL is the filter that matches every rule.
func anyACL() *kadm.ACLBuilder {
	return kadm.NewACLs().AnyResource().Allow().AllowHosts().Deny().DenyHosts().Operations(kadm.OpAny).ResourcePatternType(kadm.ACLPatternAny)
}

func errorIs(err error, want *kerr.Error) bool {
	for err != nil {
		if err == want {
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}
