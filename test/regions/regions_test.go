// Package regions_test is issue 11's acceptance 1, in-process: six peers,
// three in region "a" and three in region "b", regions a = 127.0.0.2/32
// and b = 127.0.0.3/32, and franz-go clients dialing from 127.0.0.2 and
// 127.0.0.3. Each client is only ever handed, and only ever connects to,
// its region's peers; its fetches reach the backend with its region as
// rack id; and a region-aware route sends each region's writes to its own
// cluster.
package regions_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/node"
	"github.com/switchyard-proxy/switchyard/test/testnet"
)

// waitFor polls cond until it returns nil or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testLogger sends component logs to t.Log at SWITCHYARD_TEST_LOG (warn).
func testLogger(t testing.TB) *slog.Logger {
	lv := slog.LevelWarn
	if s := os.Getenv("SWITCHYARD_TEST_LOG"); s != "" {
		_ = lv.UnmarshalText([]byte(strings.ToUpper(s)))
	}
	w := &tWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lv}))
}

type tWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// site is the test's deployment: two kfake clusters, east (brokers on the
// hosts of region a's peers) and west (region b's), and six peers.
type site struct {
	t          testing.TB
	east, west *kfake.Cluster
	peers      []*peerProc
	// racks are the rack ids of the Fetch requests east received.
	rackMu sync.Mutex
	racks  map[string]int
}

type peerProc struct {
	name, region string
	kafka, admin string
	n            *node.Node
}

// regionOf is peer i's region: 0-2 are "a", 3-5 "b".
func regionOf(i int) string {
	if i < 3 {
		return "a"
	}
	return "b"
}

func newSite(t *testing.T) *site {
	s := &site{t: t, racks: map[string]int{}}
	var err error
	if s.east, err = kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, "events", "orders")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.east.Close)
	if s.west, err = kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, "orders")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.west.Close)
	// kfake ignores rack_id; this hook only looks at what reaches it.
	s.east.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		s.east.KeepControl()
		// A fetch with a session id and epoch -1 is the proxy closing its
		// own backend session (kafka/fetch_session_backend.go): no client's
		// fetch, so no client's rack.
		if f, ok := req.(*kmsg.FetchRequest); ok && f.Version >= 11 && !(f.SessionEpoch == -1 && f.SessionID > 0) {
			s.rackMu.Lock()
			s.racks[f.Rack]++
			s.rackMu.Unlock()
		}
		return nil, nil, false
	})

	log := testLogger(t)
	timing := node.FastTiming()
	d := node.DefaultTiming()
	timing.RaftHeartbeat, timing.RaftElection, timing.RaftLeaderLease = d.RaftHeartbeat, d.RaftElection, d.RaftLeaderLease
	timing.GossipProbeInterval, timing.GossipProbeTimeout, timing.GossipSuspicionMult = 500*time.Millisecond, 300*time.Millisecond, 3
	base := t.TempDir()
	type addrs struct{ kafka, admin, raft, gossip string }
	all := make([]addrs, 6)
	for i := range all {
		all[i] = addrs{testnet.Addr(t), testnet.Addr(t), testnet.Addr(t), testnet.Addr(t)}
	}
	for i := range all {
		var join []string
		for j, o := range all {
			if j != i {
				join = append(join, o.gossip)
			}
		}
		// East's broker i is on peer i's host (region a), west's on
		// peer 3+i's (region b).
		cluster, broker := "east", int32(i)
		if i >= 3 {
			cluster, broker = "west", int32(i-3)
		}
		p := &peerProc{name: fmt.Sprintf("peer-%d", i), region: regionOf(i), kafka: all[i].kafka, admin: all[i].admin}
		n, err := node.New(node.Config{
			Name:            p.name,
			Region:          p.region,
			DataDir:         fmt.Sprintf("%s/%s", base, p.name),
			Version:         "test",
			KafkaListen:     all[i].kafka,
			AdminListen:     all[i].admin,
			RaftListen:      all[i].raft,
			GossipListen:    all[i].gossip,
			Join:            join,
			BootstrapExpect: len(all),
			LocalBrokers:    []fsm.BrokerRef{{Cluster: cluster, BrokerID: broker}},
			MetadataRefresh: 500 * time.Millisecond,
			AdmitUnproven:   true,
			Timing:          timing,
			Logger:          log.With("peer", p.name),
		})
		if err != nil {
			t.Fatalf("start %s: %v", p.name, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s stopped with: %v", p.name, err)
			}
		})
		p.n = n
		s.peers = append(s.peers, p)
	}
	// Every peer registered and known to every other one.
	waitFor(t, 90*time.Second, "six registered peers on every peer", func() error {
		for _, p := range s.peers {
			if n := len(p.n.State().Peers); n != 6 {
				return fmt.Errorf("%s knows %d peers", p.name, n)
			}
		}
		return nil
	})
	return s
}

// admin sends one admin API request to peer 0 (any peer forwards writes),
// retrying while the cluster has no leader.
func (s *site) admin(method, path, body string) (int, string) {
	s.t.Helper()
	var code int
	var out string
	waitFor(s.t, 60*time.Second, method+" "+path, func() error {
		req, err := http.NewRequest(method, "http://"+s.peers[0].admin+path, strings.NewReader(body))
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		code, out = resp.StatusCode, string(b)
		if code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout {
			return fmt.Errorf("%d %s", code, out)
		}
		return nil
	})
	return code, out
}

func (s *site) mustAdmin(method, path, body string) {
	s.t.Helper()
	if code, out := s.admin(method, path, body); code >= 300 {
		s.t.Fatalf("%s %s %s: %d %s", method, path, body, code, out)
	}
}

// setup defines the clusters (east the default), the regions, and waits
// until every peer has applied them.
func (s *site) setup() {
	s.t.Helper()
	s.mustAdmin("PUT", "/v1/clusters/east", fmt.Sprintf(`{"bootstrap":[%q],"region":"a"}`, s.east.ListenAddrs()[0]))
	s.mustAdmin("PUT", "/v1/clusters/west", fmt.Sprintf(`{"bootstrap":[%q],"region":"b"}`, s.west.ListenAddrs()[0]))
	s.mustAdmin("PUT", "/v1/default-cluster", `{"cluster":"east"}`)
	s.mustAdmin("PUT", "/v1/regions/b", `{"networks":["127.0.0.3/32"]}`)
	s.mustAdmin("PUT", "/v1/regions/a", `{"networks":["127.0.0.2/32"],"fallback":["b"]}`)
	waitFor(s.t, 30*time.Second, "regions on every peer", func() error {
		for _, p := range s.peers {
			if len(p.n.State().Regions) != 2 {
				return fmt.Errorf("%s has %d regions", p.name, len(p.n.State().Regions))
			}
		}
		return nil
	})
}

// regionAddrs are the Kafka addresses of region's peers.
func (s *site) regionAddrs(region string) []string {
	var out []string
	for _, p := range s.peers {
		if p.region == region {
			out = append(out, p.kafka)
		}
	}
	return out
}

func (s *site) regionIDs(region string) []int32 {
	var out []int32
	for _, p := range s.peers {
		if id, ok := p.n.ID(); ok && p.region == region {
			out = append(out, id)
		}
	}
	return out
}

// dialLog records every address a client dials, dialing from a local
// address (its "site").
type dialLog struct {
	from  net.IP
	mu    sync.Mutex
	addrs map[string]int
}

func (d *dialLog) dial(ctx context.Context, network, host string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs[host]++
	d.mu.Unlock()
	nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: d.from}, Timeout: 10 * time.Second}
	return nd.DialContext(ctx, network, host)
}

func (d *dialLog) dialed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for a := range d.addrs {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// client is a franz-go client dialing from ip through log, seeded with
// seeds.
func client(t testing.TB, log *dialLog, seeds []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.Dialer(log.dial),
		kgo.RecordRetries(20), kgo.RetryTimeout(30 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestNearServing: clients of region a (127.0.0.2) and b (127.0.0.3)
// produce and consume through six peers; each is only ever shown, and only
// ever dials, its region's peers, even for partitions whose leader broker
// is on another region's peer's host; their fetches reach the backend with
// their region as rack id.
func TestNearServing(t *testing.T) {
	s := newSite(t)
	s.setup()
	for _, region := range []string{"a", "b"} {
		t.Run(region, func(t *testing.T) {
			ip := net.ParseIP("127.0.0.2")
			if region == "b" {
				ip = net.ParseIP("127.0.0.3")
			}
			own, ids := s.regionAddrs(region), s.regionIDs(region)

			// Metadata asked of the other region's peer still names only
			// this client's region: the region is the client's network's.
			other := s.regionAddrs(map[string]string{"a": "b", "b": "a"}[region])
			probe := &dialLog{from: ip, addrs: map[string]int{}}
			adm := kadm.NewClient(client(t, probe, other[:1]))
			waitFor(t, 30*time.Second, "metadata naming only region "+region, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				md, err := adm.Metadata(ctx, "events")
				if err != nil {
					return err
				}
				for _, b := range md.Brokers {
					if !slices.Contains(ids, b.NodeID) {
						return fmt.Errorf("broker %d (%s:%d) is not region %s's (%v)", b.NodeID, b.Host, b.Port, region, ids)
					}
				}
				for _, p := range md.Topics["events"].Partitions {
					if !slices.Contains(ids, p.Leader) {
						return fmt.Errorf("events/%d led by %d, not a region %s peer", p.Partition, p.Leader, region)
					}
				}
				return nil
			})

			log := &dialLog{from: ip, addrs: map[string]int{}}
			const n = 60
			prod := client(t, log, own, kgo.DefaultProduceTopic("events"))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			for k := range n {
				v := region + "-" + strconv.Itoa(k)
				if err := prod.ProduceSync(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}).FirstErr(); err != nil {
					t.Fatalf("produce %s: %v", v, err)
				}
			}
			// A group consumer: FindCoordinator too must name a peer of
			// its region.
			cons := client(t, log, own, kgo.ConsumeTopics("events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.ConsumerGroup("near-"+region), kgo.FetchMaxWait(500*time.Millisecond))
			seen := map[string]bool{}
			for len(seen) < n {
				fs := cons.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Fatalf("consumed %d of %d of region %s's records", len(seen), n, region)
				}
				fs.EachError(func(tp string, p int32, err error) { t.Logf("fetch %s/%d: %v", tp, p, err) })
				fs.EachRecord(func(r *kgo.Record) {
					if strings.HasPrefix(string(r.Value), region+"-") {
						seen[string(r.Value)] = true
					}
				})
			}
			dialed := log.dialed()
			for _, a := range dialed {
				if !slices.Contains(own, a) {
					t.Fatalf("region %s's clients dialed %s, not one of its peers %v (dialed %v)", region, a, own, dialed)
				}
			}
			t.Logf("region %s: clients dialed %v (its peers %v)", region, dialed, own)
		})
	}
	// Cross-region traffic: region b's clients produced to east (region
	// a), region a's to their own.
	traffic := s.regionTraffic()
	t.Logf("record bytes by client region → cluster region: %v", traffic)
	if traffic["b→a produce"] <= 0 || traffic["a→a produce"] <= 0 || traffic["a→a fetch"] <= 0 {
		t.Fatalf("switchyard_kafka_region_bytes_total %v: want produce from a and b to a's cluster, and a's fetches", traffic)
	}
	s.rackMu.Lock()
	racks := maps(s.racks)
	s.rackMu.Unlock()
	t.Logf("fetch rack ids at the backend: %v", racks)
	if racks["a"] == 0 || racks["b"] == 0 {
		t.Fatalf("fetches by rack %v, want some from rack a and some from rack b", racks)
	}
	for r := range racks {
		if r != "a" && r != "b" {
			t.Fatalf("a fetch reached the backend with rack %q (all %v), want only the clients' regions", r, racks)
		}
	}
}

// regionTraffic sums switchyard_kafka_region_bytes_total over every peer,
// keyed "client→cluster direction".
func (s *site) regionTraffic() map[string]float64 {
	s.t.Helper()
	out := map[string]float64{}
	// The peer's own region is a label too (peer_region); summed over here.
	re := regexp.MustCompile(`^switchyard_kafka_region_bytes_total\{client_region="([^"]*)",cluster_region="([^"]*)",direction="([^"]*)",peer_region="[^"]*"\} (\S+)$`)
	for _, p := range s.peers {
		resp, err := http.Get("http://" + p.admin + "/metrics")
		if err != nil {
			s.t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, l := range strings.Split(string(b), "\n") {
			if m := re.FindStringSubmatch(l); m != nil {
				v, _ := strconv.ParseFloat(m[4], 64)
				out[m[1]+"→"+m[2]+" "+m[3]] += v
			}
		}
	}
	return out
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestRegionRoute: topic orders routed {a: east, b: west}: region a's
// producer writes land in east, region b's in west, read from each kfake
// directly; and the admin API refuses bad regions with a reason, changing
// nothing.
func TestRegionRoute(t *testing.T) {
	s := newSite(t)
	s.setup()

	// Refusals first: nothing changes.
	for _, tc := range []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"PUT", "/v1/regions/c", `{"networks":["10.0.0.0/33"]}`, 400, "not a CIDR"},
		{"PUT", "/v1/regions/c", `{"networks":["10.0.0.0/8"],"fallback":["z"]}`, 400, "which is not defined"},
		{"PUT", "/v1/regions/c", `{"networks":["127.0.0.2/32"]}`, 409, "already belongs"},
		{"DELETE", "/v1/regions/b", "", 409, "fallback"},
		{"PUT", "/v1/routes/orders", `{"cluster":"east","regions":{"b":"north"}}`, 400, "north"},
		{"PUT", "/v1/routes/orders", `{"cluster":"east","resume":"soon"}`, 400, "resume"},
	} {
		code, out := s.admin(tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(out, tc.msg) {
			t.Fatalf("%s %s %s: %d %s, want %d containing %q", tc.method, tc.path, tc.body, code, out, tc.code, tc.msg)
		}
	}
	var regions []fsm.Region
	if code, out := s.admin("GET", "/v1/regions", ""); code != 200 || json.Unmarshal([]byte(out), &regions) != nil ||
		!reflect.DeepEqual(regions, []fsm.Region{{Name: "a", Networks: []string{"127.0.0.2/32"}, Fallback: []string{"b"}}, {Name: "b", Networks: []string{"127.0.0.3/32"}}}) {
		t.Fatalf("GET /v1/regions after refusals: %d %s", code, out)
	}

	s.mustAdmin("PUT", "/v1/routes/orders", `{"cluster":"east","regions":{"a":"east","b":"west"},"fallback":["west"],"resume":"timestamp"}`)
	var routes struct{ Topics []fsm.TopicRoute }
	want := fsm.TopicRoute{Topic: "orders", Cluster: "east", RouteTargets: fsm.RouteTargets{
		Regions: map[string]string{"a": "east", "b": "west"}, Fallback: []string{"west"}, Resume: fsm.ResumeTimestamp}}
	if code, out := s.admin("GET", "/v1/routes?consistent=1", ""); code != 200 || json.Unmarshal([]byte(out), &routes) != nil ||
		len(routes.Topics) != 1 || !reflect.DeepEqual(routes.Topics[0], want) {
		t.Fatalf("GET /v1/routes: %d %s", code, out)
	}
	var res struct{ Cluster, Match string }
	if code, out := s.admin("GET", "/v1/routes/orders?region=b&consistent=1", ""); code != 200 || json.Unmarshal([]byte(out), &res) != nil ||
		res.Cluster != "west" || res.Match != "exact" {
		t.Fatalf("GET /v1/routes/orders?region=b: %d %s", code, out)
	}
	waitFor(t, 30*time.Second, "the route on every peer", func() error {
		for _, p := range s.peers {
			if c, _ := p.n.State().RouteForRegion("orders", "b"); c != "west" {
				return fmt.Errorf("%s routes orders for b to %q", p.name, c)
			}
		}
		return nil
	})

	const n = 30
	for _, region := range []string{"a", "b"} {
		ip := net.ParseIP("127.0.0.2")
		if region == "b" {
			ip = net.ParseIP("127.0.0.3")
		}
		log := &dialLog{from: ip, addrs: map[string]int{}}
		prod := client(t, log, s.regionAddrs(region), kgo.DefaultProduceTopic("orders"))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		for k := range n {
			v := region + "-" + strconv.Itoa(k)
			if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				cancel()
				t.Fatalf("produce %s: %v", v, err)
			}
		}
		cancel()
	}
	// Each kfake holds exactly its region's records.
	for _, tc := range []struct {
		name string
		be   *kfake.Cluster
		want string
	}{{"east", s.east, "a-"}, {"west", s.west, "b-"}} {
		got := readAll(t, tc.be.ListenAddrs(), "orders", n)
		for _, v := range got {
			if !strings.HasPrefix(v, tc.want) {
				t.Fatalf("cluster %s holds %q; want only %s* records (all: %v)", tc.name, v, tc.want, got)
			}
		}
		t.Logf("cluster %s holds %d records of orders, all %s*", tc.name, len(got), tc.want)
	}
}

// readAll reads topic from a backend directly until it has n distinct
// values (or 30 s pass), and returns them.
func readAll(t *testing.T, seeds []string, topic string, n int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := map[string]bool{}
	for len(seen) < n {
		fs := cl.PollFetches(ctx)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("read %d of %d records of %s from %v", len(seen), n, topic, seeds)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	// A little more, in case records of the wrong region follow.
	more, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	cl.PollFetches(more).EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}
