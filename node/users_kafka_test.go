package node

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha512"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/kafka"
)

// TestKafkaSCRAMKeysThroughNode: a Kafka listener that authenticates, with
// the real node as its View and Proposer, commits the users a client
// alters through Raft: the admin API then lists them, and the credential
// checks the client's password.
func TestKafkaSCRAMKeysThroughNode(t *testing.T) {
	n := startSolo(t, "")
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	m := kafka.NewMetrics(prometheus.NewRegistry(), 0)
	be, err := kafka.NewBackend(kafka.BackendConfig{Name: "main", Bootstrap: kc.ListenAddrs(), MetadataRefresh: time.Minute, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	// No SASL here, so the client is anonymous; with no rules at all,
	// AllowIfNoACL lets it manage the users (authorization is tested in
	// kafka and test/security).
	srv, err := kafka.NewServer(kafka.Config{ListenAddr: "127.0.0.1:0", Authenticates: true, Proposer: n,
		Authz: kafka.AuthzConfig{AllowIfNoACL: true}}, n, m)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetBackends([]*kafka.Backend{be})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); be.Run(ctx) }()
	go func() {
		defer wg.Done()
		if err := srv.Serve(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	select {
	case <-be.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("backend metadata not loaded")
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Straight to this listener (the seed): the node's own data plane,
	// which metadata presents, does not authenticate.
	seed := cl.SeedBrokers()[0]
	req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	up := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
	salt := []byte("a-salt-of-16-byt")
	up.Name, up.Mechanism, up.Iterations, up.Salt = "alice", 2, 4096, salt
	up.SaltedPassword, err = pbkdf2.Key(sha512.New, "pencil", salt, 4096, sha512.Size)
	if err != nil {
		t.Fatal(err)
	}
	req.Upsertions = append(req.Upsertions, up)
	kr, err := seed.Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	resp := kr.(*kmsg.AlterUserSCRAMCredentialsResponse)
	if len(resp.Results) != 1 || resp.Results[0].ErrorCode != 0 {
		t.Fatalf("alter: %+v", resp.Results)
	}
	u, ok := n.State().User("alice")
	if !ok || !u.Credentials[0].CheckPassword("pencil") {
		t.Fatalf("alice %+v", u)
	}
	if code, _, body := call(t, n, "GET", "/v1/users/alice", "", ""); code != 200 || !strings.Contains(body, `"mechanism": "SCRAM-SHA-512"`) {
		t.Fatalf("admin API: %d %s", code, body)
	}
	dreq := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	kr, err = seed.Request(ctx, dreq)
	if err != nil {
		t.Fatal(err)
	}
	dresp := kr.(*kmsg.DescribeUserSCRAMCredentialsResponse)
	if len(dresp.Results) != 1 || dresp.Results[0].User != "alice" || len(dresp.Results[0].CredentialInfos) != 1 ||
		dresp.Results[0].CredentialInfos[0].Iterations != 4096 {
		t.Fatalf("describe: %+v", dresp.Results)
	}
	// The backend holds nothing.
	direct, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if d, err := kadm.NewClient(direct).DescribeUserSCRAMs(ctx); err != nil || len(d) != 0 {
		t.Fatalf("the backend has SCRAM users %v (%v)", d, err)
	}
}
