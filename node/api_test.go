package node

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/transport"
)

// startSolo runs a one-peer cluster (bootstrap-expect 1) with an admin API
// and waits until it leads.
func startSolo(t *testing.T, token string) *Node {
	t.Helper()
	n, err := New(Config{
		Name:            "solo",
		DataDir:         filepath.Join(t.TempDir(), "solo"),
		KafkaListen:     "127.0.0.1:0",
		AdminListen:     "127.0.0.1:0",
		AdminToken:      token,
		RaftListen:      "127.0.0.1:0",
		GossipListen:    "127.0.0.1:0",
		BootstrapExpect: 1,
		Timing:          FastTiming(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !n.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("solo peer never led")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

func call(t *testing.T, n *Node, method, path, token, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.AdminAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestAdminAPI walks the endpoints in order against a real one-peer
// cluster: each step's status, and that refused input changes nothing.
func TestAdminAPI(t *testing.T) {
	n := startSolo(t, "tok")
	steps := []struct {
		name, method, path, token, body string
		status                          int
		contains                        string
	}{
		{"no token", "GET", "/v1/status", "", "", 401, "bearer token"},
		{"wrong token", "GET", "/v1/status", "nope", "", 401, "not valid"},
		{"health is open", "GET", "/healthz", "", "", 200, "ok"},
		{"metrics are open", "GET", "/metrics", "", "", 200, "switchyard_raft_state"},
		{"not ready without a cluster", "GET", "/readyz", "", "", 503, "no backend cluster"},
		{"status", "GET", "/v1/status", "tok", "", 200, `"name": "solo"`},
		{"route to an unknown cluster", "PUT", "/v1/routes/orders", "tok", `{"cluster":"east"}`, 400, "unknown cluster"},
		{"malformed json", "PUT", "/v1/clusters/east", "tok", `{"bootstrap":`, 400, "request body"},
		{"unknown field", "PUT", "/v1/clusters/east", "tok", `{"bootstrap":["a:1"],"bootstrp":1}`, 400, "unknown field"},
		{"empty body", "PUT", "/v1/clusters/east", "tok", ``, 400, "empty"},
		{"bad bootstrap", "PUT", "/v1/clusters/east", "tok", `{"bootstrap":["nohost"]}`, 400, "host:port"},
		{"name mismatch", "PUT", "/v1/clusters/east", "tok", `{"name":"west","bootstrap":["a:1"]}`, 400, "path names"},
		{"flat tls bool", "PUT", "/v1/clusters/east", "tok", `{"bootstrap":["a:1"],"tls":true}`, 400, "tls"},
		{"nothing changed", "GET", "/v1/clusters", "tok", "", 200, `"clusters": []`},
		{"put cluster", "PUT", "/v1/clusters/east", "tok", `{"bootstrap":["127.0.0.1:1"],"region":"eu"}`, 200, `"region": "eu"`},
		{"get cluster", "GET", "/v1/clusters/east", "tok", "", 200, `"127.0.0.1:1"`},
		{"unknown cluster", "GET", "/v1/clusters/west", "tok", "", 404, "does not exist"},
		{"put route", "PUT", "/v1/routes/orders", "tok", `{"cluster":"east"}`, 200, `"cluster": "east"`},
		{"bad topic name", "PUT", "/v1/routes/bad%20topic", "tok", `{"cluster":"east"}`, 400, "topic"},
		{"resolve exact", "GET", "/v1/routes/orders", "tok", "", 200, `"match": "exact"`},
		{"resolve nothing", "GET", "/v1/routes/other", "tok", "", 404, "no route"},
		{"put prefix route", "PUT", "/v1/prefix-routes/logs.", "tok", `{"cluster":"east"}`, 200, `"prefix": "logs."`},
		{"resolve prefix", "GET", "/v1/routes/logs.app", "tok", "", 200, `"rule": "logs."`},
		{"put group route", "PUT", "/v1/group-routes/billing%2F", "tok", `{"cluster":"east"}`, 200, `"prefix": "billing/"`},
		{"get group route", "GET", "/v1/group-routes/billing%2F", "tok", "", 200, `"cluster": "east"`},
		{"default cluster", "PUT", "/v1/default-cluster", "tok", `{"cluster":"east"}`, 200, `"cluster": "east"`},
		{"resolve default", "GET", "/v1/routes/other", "tok", "", 200, `"match": "default"`},
		{"cluster in use", "DELETE", "/v1/clusters/east", "tok", "", 409, "used by"},
		{"negative quota", "PUT", "/v1/quotas/orders", "tok", `{"produce_bytes_per_sec":-1}`, 400, "negative"},
		{"put quota", "PUT", "/v1/quotas/orders", "tok", `{"produce_bytes_per_sec":1048576}`, 200, `"produce_bytes_per_sec": 1048576`},
		{"put prefix quota", "PUT", "/v1/prefix-quotas/logs.", "tok", `{"fetch_bytes_per_sec":10}`, 200, `"prefix": true`},
		{"quota governs by prefix", "GET", "/v1/quotas/logs.app", "tok", "", 200, `"fetch_bytes_per_sec": 10`},
		{"list quotas", "GET", "/v1/quotas", "tok", "", 200, `"logs."`},
		{"consistent read on the leader", "GET", "/v1/routes?consistent=1", "tok", "", 200, `"default_cluster": "east"`},
		{"delete quota", "DELETE", "/v1/quotas/orders", "tok", "", 204, ""},
		{"delete it again", "DELETE", "/v1/quotas/orders", "tok", "", 404, "not found"},
		{"delete route", "DELETE", "/v1/routes/orders", "tok", "", 204, ""},
		{"no such endpoint", "GET", "/v1/nothing", "tok", "", 404, "no such endpoint"},
		{"wrong method", "POST", "/v1/routes/x", "tok", "", 405, "use GET, PUT, DELETE"},
		{"peers", "GET", "/v1/peers", "tok", "", 200, `"raft": "voter"`},
		{"no regions", "GET", "/v1/regions", "tok", "", 200, `[]`},
		{"bad CIDR", "PUT", "/v1/regions/dc1", "tok", `{"networks":["10.1.0.0/40"]}`, 400, "not a CIDR"},
		{"unknown fallback region", "PUT", "/v1/regions/dc1", "tok", `{"networks":["10.1.0.0/16"],"fallback":["dc2"]}`, 400, "not defined"},
		{"region unknown field", "PUT", "/v1/regions/dc1", "tok", `{"nets":[]}`, 400, "unknown field"},
		{"nothing changed by refusals", "GET", "/v1/regions", "tok", "", 200, `[]`},
		{"put region", "PUT", "/v1/regions/dc2", "tok", `{"networks":["10.2.9.9/16"]}`, 200, `"10.2.0.0/16"`},
		{"put region with fallback", "PUT", "/v1/regions/dc1", "tok", `{"networks":["10.1.0.0/16"],"fallback":["dc2"]}`, 200, `"dc2"`},
		{"network of another region", "PUT", "/v1/regions/dc3", "tok", `{"networks":["10.2.0.0/16"]}`, 409, "already belongs"},
		{"list regions", "GET", "/v1/regions", "tok", "", 200, `"name": "dc1"`},
		{"delete a fallback region", "DELETE", "/v1/regions/dc2", "tok", "", 409, "fallback"},
		{"route with region targets", "PUT", "/v1/routes/orders", "tok", `{"cluster":"east","regions":{"dc1":"east"},"failback":"manual"}`, 200, `"failback": "manual"`},
		{"route with a bad resume", "PUT", "/v1/routes/orders", "tok", `{"cluster":"east","resume":"soon"}`, 400, "resume"},
		{"route targets an unknown cluster", "PUT", "/v1/prefix-routes/x.", "tok", `{"cluster":"east","fallback":["west"]}`, 400, "west"},
		{"resolve for a region", "GET", "/v1/routes/orders?region=dc1", "tok", "", 200, `"region": "dc1"`},
		{"default with targets", "PUT", "/v1/default-cluster", "tok", `{"cluster":"east","regions":{"dc2":"east"}}`, 200, `"dc2": "east"`},
		{"default shows targets", "GET", "/v1/default-cluster", "tok", "", 200, `"dc2": "east"`},
		{"delete region", "DELETE", "/v1/regions/dc1", "tok", "", 204, ""},
		{"delete it again", "DELETE", "/v1/regions/dc1", "tok", "", 404, "not found"},
	}
	for _, s := range steps {
		code, hdr, body := call(t, n, s.method, s.path, s.token, s.body)
		if code != s.status || !strings.Contains(body, s.contains) {
			t.Fatalf("%s: %s %s answered %d %s; want %d containing %q", s.name, s.method, s.path, code, body, s.status, s.contains)
		}
		if code >= 400 {
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
				t.Fatalf("%s: error body %q is not {\"error\": ...}", s.name, body)
			}
		}
		if s.method == "PUT" && code == 200 && hdr.Get(indexHeader) == "" {
			t.Fatalf("%s: write without %s", s.name, indexHeader)
		}
	}
}

// TestNoAuthWithoutToken: a peer without a token serves /v1/ openly.
func TestNoAuthWithoutToken(t *testing.T) {
	n := startSolo(t, "")
	if code, _, body := call(t, n, "GET", "/v1/peers", "", ""); code != 200 {
		t.Fatalf("GET /v1/peers: %d %s", code, body)
	}
}

// TestRPCErrorsRoundTrip: an error the leader returns for a forwarded
// write keeps its sentinel, and so its HTTP status, on the follower.
func TestRPCErrorsRoundTrip(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
	}{
		{fmtErr(fsm.ErrInvalid), 400},
		{fmtErr(fsm.ErrUnknownCluster), 400},
		{fmtErr(fsm.ErrNotFound), 404},
		{fmtErr(fsm.ErrConflict), 409},
		{fmtErr(fsm.ErrInUse), 409},
		{fmtErr(fsm.ErrUnknownCommand), 400},
		{fmtErr(ErrNoLeader), 503},
		{fmtErr(ErrUnknownOutcome), 503},
		{fmtErr(ErrNotLeader), 503},
		{fmtErr(ErrUpgradeRequired), 409},
	} {
		wire := toRPCError(c.err)
		var re *transport.RPCError
		if !errors.As(wire, &re) {
			t.Fatalf("%v crossed as %T, not an RPCError", c.err, wire)
		}
		back := fromRPCError(wire)
		if back.Error() != c.err.Error() {
			t.Errorf("message %q came back as %q", c.err, back)
		}
		if got := statusOf(back); got != c.status {
			t.Errorf("%v: status %d after the round trip, want %d", c.err, got, c.status)
		}
	}
}

func fmtErr(sentinel error) error { return errors.Join(sentinel) }

func TestDesiredVoters(t *testing.T) {
	for n, want := range map[int]int{0: 0, 1: 1, 2: 2, 3: 3, 4: 3, 5: 5, 6: 5, 9: 5} {
		if got := desiredVoters(n); got != want {
			t.Errorf("desiredVoters(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestGossipMeta(t *testing.T) {
	m := peerMeta{Region: "eu-1a", Kafka: "10.0.0.1:9092", Raft: "10.0.0.1:17000", Expect: 3,
		Brokers: brokerRefStrings([]fsm.BrokerRef{{Cluster: "west", BrokerID: 2}, {Cluster: "east", BrokerID: 1}})}
	b, err := encodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	p := got.peer("a")
	if p.ID != fsm.AutoPeerID || p.KafkaAddr != m.Kafka || len(p.LocalBrokers) != 2 || p.LocalBrokers[0].Cluster != "east" {
		t.Fatalf("peer from meta: %+v", p)
	}
	for i := 0; i < 40; i++ {
		m.Brokers = append(m.Brokers, "a-rather-long-cluster-name:12345")
	}
	if _, err := encodeMeta(m); err == nil || !strings.Contains(err.Error(), "metadata") {
		t.Fatalf("oversized gossip metadata: %v", err)
	}
	for _, bad := range []string{"east", ":1", "east:-1", "east:x"} {
		if _, err := ParseBrokerRef(bad); err == nil {
			t.Errorf("ParseBrokerRef(%q) accepted", bad)
		}
	}
}

func TestReadyCluster(t *testing.T) {
	st := &fsm.State{Clusters: []fsm.Cluster{{Name: "west"}, {Name: "east"}}}
	if c, _ := readyCluster(st); c.Name != "east" {
		t.Fatalf("no default: readiness follows %q, want the first by name", c.Name)
	}
	st.Routes.DefaultCluster = "west"
	if c, _ := readyCluster(st); c.Name != "west" {
		t.Fatalf("default west: readiness follows %q", c.Name)
	}
	if _, ok := readyCluster(&fsm.State{}); ok {
		t.Fatal("a state without clusters has a cluster to be ready on")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Name: "a", DataDir: "/tmp/x", KafkaListen: ":9092", RaftListen: ":1", GossipListen: ":2", BootstrapExpect: 1}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"no name":      func(c *Config) { c.Name = "" },
		"no data dir":  func(c *Config) { c.DataDir = "" },
		"no raft":      func(c *Config) { c.RaftListen = "" },
		"no way in":    func(c *Config) { c.BootstrapExpect = 0 },
		"negative":     func(c *Config) { c.BootstrapExpect = -1 },
		"half tls":     func(c *Config) { c.PeerServerTLS = nil; c.PeerClientTLS = &tls.Config{} },
		"local broker": func(c *Config) { c.LocalBrokers = []fsm.BrokerRef{{Cluster: "", BrokerID: 1}} },
	} {
		c := ok
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
