package kafka

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// fsmProposer commits commands to a real fsm.FSM, as the node's Apply does
// after Raft: one entry at a time, answered with the FSM's response.
type fsmProposer struct {
	mu    sync.Mutex
	f     *fsm.FSM
	calls int
}

func (p *fsmProposer) Apply(_ context.Context, cmd fsm.Command) (fsm.Applied, error) {
	b, err := fsm.Encode(cmd)
	if err != nil {
		return fsm.Applied{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	switch v := p.f.Apply(&raft.Log{Index: p.f.State().Index + 1, Term: 1, Type: raft.LogCommand, Data: b}).(type) {
	case fsm.Applied:
		return v, nil
	case error:
		return fsm.Applied{}, v
	default:
		return fsm.Applied{}, errors.New("unexpected FSM response")
	}
}

// fsmView is a View over a real FSM: what the node hands the data plane.
type fsmView struct{ f *fsm.FSM }

// count is how many commands were proposed.
func (p *fsmProposer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

func (v fsmView) State() *fsm.State { return v.f.State() }
func (fsmView) Live(int32) bool     { return true }

// startUsersProxy runs a proxy over kc whose state is a real FSM that the
// proxy's Proposer writes to, and returns its address and the FSM.
func startUsersProxy(t *testing.T, kc *kfake.Cluster, authenticates bool) (string, *fsmProposer) {
	return startUsersProxyWith(t, kc, authenticates, nil)
}

// startUsersProxyWith is startUsersProxy with the Proposer the server uses
// wrapped by wrap (nil: the FSM's own).
func startUsersProxyWith(t *testing.T, kc *kfake.Cluster, authenticates bool, wrap func(Proposer) Proposer) (string, *fsmProposer) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry(), 0)
	be := newTestBackend(t, BackendConfig{Name: "main", Bootstrap: kc.ListenAddrs(), MetadataRefresh: time.Minute, Metrics: m})
	prop := &fsmProposer{f: fsm.New(nil)}
	var used Proposer = prop
	if wrap != nil {
		used = wrap(prop)
	}
	// The client is anonymous (no SASL here); with no rules at all,
	// AllowIfNoACL lets it manage the users (authorization: acl*_test.go).
	srv := listenServer(t, Config{Authenticates: authenticates, Proposer: used,
		Authz: AuthzConfig{AllowIfNoACL: true}}, fsmView{prop.f}, m, be)
	addr := srv.Addr().String()
	for _, cmd := range []fsm.Command{
		&fsm.PutCluster{Cluster: fsm.Cluster{Name: "main", Bootstrap: kc.ListenAddrs()}},
		&fsm.SetDefaultCluster{Cluster: "main"},
		&fsm.RegisterPeer{Peer: fsm.Peer{ID: 0, Name: "peer-0", KafkaAddr: addr}},
	} {
		if _, err := prop.Apply(context.Background(), cmd); err != nil {
			t.Fatal(err)
		}
	}
	prop.calls = 0
	serveServer(t, srv, be)
	waitReady(t, be)
	return addr, prop
}

func adminOn(t *testing.T, addr string) (*kadm.Client, *kgo.Client) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl), cl
}

// TestProxySCRAMUsers: with an authenticating listener, kadm's
// AlterUserSCRAMs and DescribeUserSCRAMs manage the proxy's own users in
// the replicated state (the backend never sees them), with Kafka's
// per-user answers for every refusal, and nothing of a refused user
// committed.
func TestProxySCRAMUsers(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	addr, prop := startUsersProxy(t, kc, true)
	adm, cl := adminOn(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: "alice", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "alice-256"},
		{User: "alice", Mechanism: kadm.ScramSha512, Iterations: 8192, Password: "alice-512"},
		{User: "bob", Mechanism: kadm.ScramSha512, Password: "bob-512"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range altered.Sorted() {
		if a.Err != nil {
			t.Fatalf("upsert %s: %v %s", a.User, a.Err, a.ErrMessage)
		}
	}
	st := prop.f.State()
	alice, _ := st.User("alice")
	c256, _ := alice.Credential(fsm.SASLScramSHA256)
	c512, _ := alice.Credential(fsm.SASLScramSHA512)
	if !c256.CheckPassword("alice-256") || !c512.CheckPassword("alice-512") || c512.Iterations != 8192 || c512.CheckPassword("alice-256") {
		t.Fatalf("alice's stored credentials do not check her passwords: %+v", alice)
	}
	if bob, ok := st.User("bob"); !ok || !bob.Credentials[0].CheckPassword("bob-512") {
		t.Fatalf("bob %+v", bob)
	}

	// The backend holds none of it: the key was answered by the proxy.
	direct, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if d, err := kadm.NewClient(direct).DescribeUserSCRAMs(ctx); err != nil || len(d) != 0 {
		t.Fatalf("the backend has SCRAM users %v (%v)", d, err)
	}

	// A PLAIN-only user (admin API) is not a SCRAM user.
	plain, _ := fsm.DeriveCredential(fsm.SASLPlain, "pw", []byte("saltsalt"), 4096)
	if _, err := prop.Apply(ctx, &fsm.PutUserCredential{Name: "carol", Credential: plain}); err != nil {
		t.Fatal(err)
	}
	described, err := adm.DescribeUserSCRAMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(described) != 2 || described["carol"].User != "" {
		t.Fatalf("described %+v, want alice and bob", described)
	}
	da := described["alice"]
	if da.Err != nil || len(da.CredInfos) != 2 || da.CredInfos[0] != (kadm.CredInfo{Mechanism: kadm.ScramSha256, Iterations: 4096}) ||
		da.CredInfos[1] != (kadm.CredInfo{Mechanism: kadm.ScramSha512, Iterations: 8192}) {
		t.Fatalf("alice described as %+v", da)
	}
	named, err := adm.DescribeUserSCRAMs(ctx, "bob", "carol", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	if named["bob"].Err != nil || !errors.Is(named["carol"].Err, kerr.ResourceNotFound) || !errors.Is(named["nobody"].Err, kerr.ResourceNotFound) {
		t.Fatalf("named describe %+v", named)
	}
	dup := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	for _, n := range []string{"bob", "bob"} {
		u := kmsg.NewDescribeUserSCRAMCredentialsRequestUser()
		u.Name = n
		dup.Users = append(dup.Users, u)
	}
	dresp, err := dup.RequestWith(ctx, cl)
	if err != nil || len(dresp.Results) != 1 || dresp.Results[0].ErrorCode != kerr.DuplicateResource.Code {
		t.Fatalf("describing bob twice: %+v (%v)", dresp, err)
	}

	// Refusals, each for its user only; dave's upsert is not committed
	// because his deletion fails.
	salt := []byte("0123456789abcdef")
	salted, _ := pbkdf2.Key(sha256.New, "pw", salt, 4096, sha256.Size)
	req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	del := func(name string, mech int8) {
		d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
		d.Name, d.Mechanism = name, mech
		req.Deletions = append(req.Deletions, d)
	}
	up := func(name string, mech int8, iterations int32, saltedPw []byte) {
		u := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
		u.Name, u.Mechanism, u.Iterations, u.Salt, u.SaltedPassword = name, mech, iterations, salt, saltedPw
		req.Upsertions = append(req.Upsertions, u)
	}
	del("alice", 1)             // ok
	del("nobody", 1)            // RESOURCE_NOT_FOUND
	del("dave", 2)              // RESOURCE_NOT_FOUND, so ...
	up("dave", 1, 4096, salted) // ... this is not committed
	up("erin", 3, 4096, salted) // UNSUPPORTED_SASL_MECHANISM
	up("frank", 1, 100, salted) // UNACCEPTABLE_CREDENTIAL
	up("gina", 1, 4096, salted[:5])
	up("hal", 1, 4096, salted)
	up("hal", 1, 4096, salted) // DUPLICATE_RESOURCE
	up("", 1, 4096, salted)    // UNACCEPTABLE_CREDENTIAL
	up("ivy", 1, 4096, salted) // ok
	calls := prop.count()
	aresp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		user string
		code int16
	}{
		{"alice", 0}, {"nobody", kerr.ResourceNotFound.Code}, {"dave", kerr.ResourceNotFound.Code},
		{"erin", kerr.UnsupportedSaslMechanism.Code}, {"frank", kerr.UnacceptableCredential.Code},
		{"gina", kerr.UnacceptableCredential.Code}, {"hal", kerr.DuplicateResource.Code},
		{"", kerr.UnacceptableCredential.Code}, {"ivy", 0},
	}
	if len(aresp.Results) != len(want) {
		t.Fatalf("%d results %+v, want %d", len(aresp.Results), aresp.Results, len(want))
	}
	for i, w := range want {
		r := aresp.Results[i]
		if r.User != w.user || r.ErrorCode != w.code || (w.code != 0) != (r.ErrorMessage != nil) {
			t.Errorf("result %d: %q %d %v, want %q %d", i, r.User, r.ErrorCode, r.ErrorMessage, w.user, w.code)
		}
	}
	if got := prop.count() - calls; got != 2 {
		t.Fatalf("%d proposals, want 2 (alice's deletion, ivy's upsertion)", got)
	}
	st = prop.f.State()
	if a, _ := st.User("alice"); len(a.Credentials) != 1 || a.Credentials[0].Mechanism != fsm.SASLScramSHA512 {
		t.Fatalf("alice after deleting SCRAM-SHA-256: %+v", a)
	}
	for _, n := range []string{"dave", "erin", "frank", "gina", "hal"} {
		if _, ok := st.User(n); ok {
			t.Fatalf("refused user %s was created", n)
		}
	}
	if ivy, ok := st.User("ivy"); !ok || !ivy.Credentials[0].CheckPassword("pw") {
		t.Fatalf("ivy %+v", ivy)
	}
}

// TestSCRAMKeysForwardedWithoutAuthentication: a listener that does not
// authenticate leaves SCRAM credentials to the backends, as before.
func TestSCRAMKeysForwardedWithoutAuthentication(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	addr, prop := startUsersProxy(t, kc, false)
	adm, _ := adminOn(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "alice", Mechanism: kadm.ScramSha256, Password: "pw"}})
	if err != nil || altered["alice"].Err != nil {
		t.Fatalf("alter: %v %+v", err, altered)
	}
	if prop.count() != 0 || prop.f.State().Users != nil {
		t.Fatalf("the proxy's users changed: %d proposals, %+v", prop.calls, prop.f.State().Users)
	}
	direct, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	d, err := kadm.NewClient(direct).DescribeUserSCRAMs(ctx, "alice")
	if err != nil || d["alice"].Err != nil || len(d["alice"].CredInfos) != 1 {
		t.Fatalf("the backend does not hold alice: %+v (%v)", d, err)
	}
	if d, err := adm.DescribeUserSCRAMs(ctx); err != nil || len(d["alice"].CredInfos) != 1 {
		t.Fatalf("describe through the proxy: %+v (%v)", d, err)
	}
}

// FuzzSCRAMUserKeys: any DescribeUserSCRAMCredentials or
// AlterUserSCRAMCredentials body a client sends is answered without
// panicking: one result per distinct user, in order, and only valid
// commands planned, for users answered without an error.
func FuzzSCRAMUserKeys(f *testing.F) {
	salt := []byte("0123456789abcdef")
	salted, _ := pbkdf2.Key(sha256.New, "pw", salt, 4096, sha256.Size)
	alter := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
	d.Name, d.Mechanism = "alice", 2
	alter.Deletions = append(alter.Deletions, d)
	u := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
	u.Name, u.Mechanism, u.Iterations, u.Salt, u.SaltedPassword = "bob", 1, 4096, salt, salted
	alter.Upsertions = append(alter.Upsertions, u, u)
	describe := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	du := kmsg.NewDescribeUserSCRAMCredentialsRequestUser()
	du.Name = "alice"
	describe.Users = append(describe.Users, du, du)
	for v := int16(0); v <= alter.MaxVersion(); v++ {
		alter.SetVersion(v)
		f.Add(int16(51), v, alter.AppendTo(nil))
	}
	for v := int16(0); v <= describe.MaxVersion(); v++ {
		describe.SetVersion(v)
		f.Add(int16(50), v, describe.AppendTo(nil))
		f.Add(int16(50), v, kmsg.NewPtrDescribeUserSCRAMCredentialsRequest().AppendTo(nil))
	}
	cred, _ := fsm.CredentialFromSaltedPassword(fsm.SASLScramSHA512, make([]byte, 64), salt, 4096)
	base, err := (&fsm.State{}).Next(&fsm.PutUserCredential{Name: "alice", Credential: cred}, 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, key, version int16, body []byte) {
		switch key {
		case 50:
			req := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
			if version < 0 || version > req.MaxVersion() {
				return
			}
			req.SetVersion(version)
			if req.ReadFrom(body) != nil {
				return
			}
			resp := describeProxySCRAM(base, req)
			distinct := map[string]bool{}
			for _, u := range req.Users {
				distinct[u.Name] = true
			}
			if len(req.Users) > 0 && len(resp.Results) != len(distinct) {
				t.Fatalf("%d results for %d distinct users", len(resp.Results), len(distinct))
			}
			var out kmsg.DescribeUserSCRAMCredentialsResponse
			out.SetVersion(version)
			if err := out.ReadFrom(resp.AppendTo(nil)); err != nil {
				t.Fatalf("answer does not decode: %v", err)
			}
		case 51:
			req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
			if version < 0 || version > req.MaxVersion() {
				return
			}
			req.SetVersion(version)
			if req.ReadFrom(body) != nil {
				return
			}
			resp, plans := planSCRAMAlter(base, req)
			distinct := map[string]bool{}
			for _, d := range req.Deletions {
				distinct[d.Name] = true
			}
			for _, u := range req.Upsertions {
				distinct[u.Name] = true
			}
			if len(resp.Results) != len(distinct) {
				t.Fatalf("%d results for %d distinct users", len(resp.Results), len(distinct))
			}
			ok := map[string]bool{}
			for _, r := range resp.Results {
				if r.ErrorCode == 0 {
					ok[r.User] = true
				}
			}
			st := base
			for _, p := range plans {
				if !ok[p.user] {
					t.Fatalf("commands planned for refused user %q", p.user)
				}
				for _, cmd := range p.cmds {
					next, err := st.Next(cmd, st.Index+1)
					if err != nil {
						t.Fatalf("planned command refused: %v", err)
					}
					st = next
				}
			}
			var out kmsg.AlterUserSCRAMCredentialsResponse
			out.SetVersion(version)
			if err := out.ReadFrom(resp.AppendTo(nil)); err != nil {
				t.Fatalf("answer does not decode: %v", err)
			}
		}
	})
}

// heldProposer holds every proposal until a token arrives on release (or
// its context ends), reporting each start and each context error.
type heldProposer struct {
	next    Proposer
	entered chan struct{}
	release chan struct{}
	ended   chan error
}

func (h *heldProposer) Apply(ctx context.Context, cmd fsm.Command) (fsm.Applied, error) {
	h.entered <- struct{}{}
	select {
	case <-h.release:
		return h.next.Apply(ctx, cmd)
	case <-ctx.Done():
		h.ended <- ctx.Err()
		return fsm.Applied{}, ctx.Err()
	}
}

// TestSCRAMAlterOffTheReadLoop: while a proposal is in flight, a request
// pipelined after the AlterUserSCRAMCredentials is read and its answer
// waits its turn (answers stay in request order); closing the connection
// cancels the proposal.
func TestSCRAMAlterOffTheReadLoop(t *testing.T) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	held := &heldProposer{entered: make(chan struct{}, 4), release: make(chan struct{}, 4), ended: make(chan error, 4)}
	addr, prop := startUsersProxyWith(t, kc, true, func(p Proposer) Proposer { held.next = p; return held })

	salt := []byte("0123456789abcdef")
	salted, _ := pbkdf2.Key(sha256.New, "pw", salt, 4096, sha256.Size)
	alter := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	up := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
	up.Name, up.Mechanism, up.Iterations, up.Salt, up.SaltedPassword = "alice", 1, 4096, salt, salted
	alter.Upsertions = append(alter.Upsertions, up)
	versions := kmsg.NewPtrApiVersionsRequest()

	c := dialRaw(t, addr)
	c.nc.SetDeadline(time.Now().Add(time.Minute))
	id := "raw-test"
	frames := appendRequest(nil, alter, 1, &id)
	frames = appendRequest(frames, versions, 2, &id)
	if _, err := c.nc.Write(frames); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the alteration was never proposed")
	}
	held.release <- struct{}{}
	for i, req := range []kmsg.Request{alter, versions} {
		buf, err := readFrame(c.br, 1<<24)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := decodeCtlResponse(req, int32(i+1), buf.b[4:])
		if err != nil {
			t.Fatalf("answer %d: %v (answers out of order?)", i+1, err)
		}
		if a, ok := resp.(*kmsg.AlterUserSCRAMCredentialsResponse); ok && (len(a.Results) != 1 || a.Results[0].ErrorCode != 0) {
			t.Fatalf("alter answered %+v", a.Results)
		}
	}
	if _, ok := prop.f.State().User("alice"); !ok {
		t.Fatal("alice was not committed")
	}

	// A client that goes away cancels its pending proposal (no token:
	// it is held until then).
	c2 := dialRaw(t, addr)
	up.Name = "bob"
	if _, err := c2.nc.Write(appendRequest(nil, alter, 1, &id)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("bob's alteration was never proposed")
	}
	c2.nc.Close()
	select {
	case err := <-held.ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("proposal ended with %v, want canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("closing the connection did not cancel the proposal")
	}
	if _, ok := prop.f.State().User("bob"); ok {
		t.Fatal("bob was committed after his client went away")
	}
}
