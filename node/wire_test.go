package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/kafka"
	"github.com/switchyard-proxy/switchyard/transport"
)

// TestBackendConfigCarriesLimits: the backend limits set on the peer reach
// every backend it starts (they used to stay at kafka's defaults whatever
// was configured), and out-of-range values are refused.
func TestBackendConfigCarriesLimits(t *testing.T) {
	n := &Node{cfg: Config{MetadataRefresh: 3 * time.Second, BackendBrokerTimeout: 1500 * time.Millisecond, BackendMaxResponseBytes: 4 << 20}}
	bc := n.backendConfig(fsm.Cluster{Name: "main", Bootstrap: []string{"127.0.0.1:9093"}})
	if bc.Name != "main" || len(bc.Bootstrap) != 1 || bc.MetadataRefresh != 3*time.Second ||
		bc.BrokerTimeout != 1500*time.Millisecond || bc.MaxResponseBytes != 4<<20 {
		t.Fatalf("backend config %+v", bc)
	}
	if err := bc.Validate(); err != nil {
		t.Fatal(err)
	}
	base := Config{Name: "p", DataDir: "d", KafkaListen: "a", RaftListen: "b", GossipListen: "c", BootstrapExpect: 1}
	for _, c := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"negative broker timeout", func(c *Config) { c.BackendBrokerTimeout = -time.Second }, "backend broker timeout"},
		{"negative response bound", func(c *Config) { c.BackendMaxResponseBytes = -1 }, "backend max response bytes"},
		{"response bound over the limit", func(c *Config) { c.BackendMaxResponseBytes = kafka.MaxResponseLimit + 1 }, "backend max response bytes"},
		{"admin body over the backstop", func(c *Config) { c.Admin.MaxBodyBytes = maxBody + 1 }, "admin max body bytes"},
		{"negative admin timeout", func(c *Config) { c.Admin.IdleTimeout = -time.Second }, "admin timeouts"},
	} {
		cfg := base
		c.edit(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %s", c.name, err, c.want)
		}
	}
	if err := base.Validate(); err != nil {
		t.Fatalf("the base config: %v", err)
	}
}

// forwarder is a stand-in for a follower: a peer port named name (with
// mutual TLS for a certificate naming certName when pki is set) and what
// forwardApply and forwardState need of a Node.
func forwarder(t *testing.T, pki *testCA, name, certName string) *Node {
	t.Helper()
	cfg := transport.Config{Name: name, BindAddr: "127.0.0.1:0", DialTimeout: 5 * time.Second}
	if pki != nil {
		cfg.ServerTLS, cfg.ClientTLS = pki.peerTLS(t, certName)
	}
	m, err := transport.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return &Node{cfg: Config{Name: name}, rpc: m.Client()}
}

// TestForwardChecksLeaderIdentity: with peer TLS, a write or consistent
// read forwarded to the leader goes only to a peer whose certificate names
// that leader. The address Raft last heard for the leader may now serve
// another member; the write used to be handed to it (and applied, here,
// since that member leads a configuration the sender is in).
func TestForwardChecksLeaderIdentity(t *testing.T) {
	pki := newTestCA(t)
	n := startSoloWith(t, func(c *Config) { c.PeerServerTLS, c.PeerClientTLS = pki.peerTLS(t, "solo") })
	f := forwarder(t, pki, "solo", "solo")
	cmd, err := fsm.Encode(&fsm.PutCluster{Cluster: fsm.Cluster{Name: "misrouted", Bootstrap: []string{"127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = f.forwardApply(ctx, "p1", n.RaftAddr(), cmd)
	if !errors.Is(err, transport.ErrIdentity) {
		t.Fatalf("a write forwarded to leader p1 at an address serving solo: %v, want ErrIdentity", err)
	}
	if notProposed(err) {
		t.Fatalf("an identity refusal would be retried: %v", err)
	}
	if got := statusOf(err); got != 503 {
		t.Fatalf("status %d for %v, want 503", got, err)
	}
	if !strings.Contains(err.Error(), `"p1"`) || !strings.Contains(err.Error(), "nothing sent") {
		t.Fatalf("the error does not say which leader was expected and that nothing was sent: %v", err)
	}
	if _, err := f.forwardState(ctx, "p1", n.RaftAddr()); !errors.Is(err, transport.ErrIdentity) {
		t.Fatalf("a consistent read through leader p1 at an address serving solo: %v, want ErrIdentity", err)
	}
	// The leader it names: served.
	res, err := f.forwardApply(ctx, "solo", n.RaftAddr(), cmd)
	if err != nil {
		t.Fatalf("a write forwarded to the leader its certificate names: %v", err)
	}
	st, err := f.forwardState(ctx, "solo", n.RaftAddr())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Cluster("misrouted"); !ok || st.Index < res.Index {
		t.Fatalf("the consistent read misses the write at index %d: state at %d, clusters %v", res.Index, st.Index, st.Clusters)
	}
}

// TestForwardFromNonMember: a forwarded write from a peer outside the
// leader's Raft configuration (one gossip knows and Raft has not admitted
// yet) answers 503 and says why, instead of a bare 500.
func TestForwardFromNonMember(t *testing.T) {
	n := startSolo(t, "")
	f := forwarder(t, nil, "newcomer", "")
	cmd, err := fsm.Encode(&fsm.PutCluster{Cluster: fsm.Cluster{Name: "early", Bootstrap: []string{"127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range []struct {
		what string
		err  error
	}{
		{"write", func() error { _, err := f.forwardApply(ctx, "solo", n.RaftAddr(), cmd); return err }()},
		{"consistent read", func() error { _, err := f.forwardState(ctx, "solo", n.RaftAddr()); return err }()},
	} {
		if !errors.Is(c.err, ErrUnauthorized) {
			t.Fatalf("forwarded %s from a non-member: %v, want ErrUnauthorized", c.what, c.err)
		}
		if got := statusOf(c.err); got != 503 {
			t.Errorf("forwarded %s from a non-member: status %d, want 503 (%v)", c.what, got, c.err)
		}
		if !strings.Contains(c.err.Error(), "not (yet) a member of the raft configuration") {
			t.Errorf("forwarded %s from a non-member: the error does not say why: %v", c.what, c.err)
		}
	}
	if _, ok := n.State().Cluster("early"); ok {
		t.Fatal("the refused write changed the state")
	}
	// Crossing the wire keeps the sentinel: 503 on the follower too.
	back := fromRPCError(toRPCError(fmt.Errorf("%w: solo refuses apply", ErrUnauthorized)))
	if got := statusOf(back); got != 503 {
		t.Fatalf("ErrUnauthorized after the round trip: status %d, want 503", got)
	}
	if got := statusOf(ErrUpgradeRequired); got != 409 {
		t.Fatalf("ErrUpgradeRequired: status %d, want 409", got)
	}
}

// TestIdentityRefusedMetric: a peer-port connection whose certificate
// does not name the peer it claims to be is counted on /metrics.
func TestIdentityRefusedMetric(t *testing.T) {
	pki := newTestCA(t)
	n := startSoloWith(t, func(c *Config) { c.PeerServerTLS, c.PeerClientTLS = pki.peerTLS(t, "solo") })
	const series = "\nswitchyard_peer_identity_refused_total "
	if _, _, body := call(t, n, "GET", "/metrics", "", ""); !strings.Contains(body, series+"0\n") {
		t.Fatalf("before any refusal, /metrics lacks%s0", series)
	}
	// Claims to be solo with a certificate naming mallory.
	f := forwarder(t, pki, "solo", "mallory")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.rpc.Call(ctx, n.RaftAddr(), rpcState, struct{}{}, nil); !errors.Is(err, transport.ErrConnLost) {
		t.Fatalf("a call claiming another peer's name: %v, want the connection refused", err)
	}
	waitUntil(t, 10*time.Second, "the refusal counted on /metrics", func() bool {
		_, _, body := call(t, n, "GET", "/metrics", "", "")
		return strings.Contains(body, series+"1\n")
	})
}

// TestOpenAPIDescribesTheAPI: every operation docs/openapi.yaml describes
// is served with that method and path pattern, and every write documents
// the answers every write can give: 409 (a conflict, or version gating's
// upgrade_required), 503, and 413 when it takes a body.
func TestOpenAPIDescribesTheAPI(t *testing.T) {
	b, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type op struct {
		method, path string
		body         bool
		codes        map[string]bool
	}
	var ops []*op
	var path string
	var cur *op
	inPaths := false
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case l == "paths:":
			inPaths = true
		case inPaths && l != "" && !strings.HasPrefix(l, " "):
			inPaths = false
		case !inPaths:
		case strings.HasPrefix(l, "  /") && strings.HasSuffix(l, ":"):
			path, cur = strings.TrimSuffix(strings.TrimSpace(l), ":"), nil
		case len(l) > 4 && strings.HasPrefix(l, "    ") && l[4] != ' ' && strings.HasSuffix(l, ":"):
			m := strings.TrimSuffix(strings.TrimSpace(l), ":")
			cur = nil
			if m != "parameters" {
				cur = &op{method: strings.ToUpper(m), path: path, codes: map[string]bool{}}
				ops = append(ops, cur)
			}
		case cur != nil && l == "      requestBody:":
			cur.body = true
		case cur != nil && strings.HasPrefix(l, `        "`) && strings.HasSuffix(l, `":`):
			cur.codes[strings.Trim(strings.TrimSpace(l), `":`)] = true
		}
	}
	if len(ops) < 20 {
		t.Fatalf("read only %d operations from openapi.yaml", len(ops))
	}
	n := &Node{reg: prometheus.NewRegistry()}
	mux, ok := n.adminHandler().(*http.ServeMux)
	if !ok {
		t.Fatalf("admin handler is a %T", n.adminHandler())
	}
	for _, o := range ops {
		req := httptest.NewRequest(o.method, regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(o.path, "x"), nil)
		if _, pattern := mux.Handler(req); pattern != o.method+" "+o.path {
			t.Errorf("%s %s is described but served by %q", o.method, o.path, pattern)
		}
		if o.method != http.MethodPut && o.method != http.MethodDelete {
			continue
		}
		for _, code := range []string{"409", "503"} {
			if !o.codes[code] {
				t.Errorf("%s %s does not document %s", o.method, o.path, code)
			}
		}
		if o.body && !o.codes["413"] {
			t.Errorf("%s %s takes a body and does not document 413", o.method, o.path)
		}
	}
}
