package kafka

import (
	"fmt"
	"slices"
	"testing"

	"github.com/switchyard-proxy/switchyard/fsm"
)

func livenessOf(live map[int32]bool) func(int32) bool {
	return func(id int32) bool { return live[id] }
}

// rendezvousWinner is the reference choice: the live peer with the highest
// score, the lowest id on a tie.
func rendezvousWinner(cluster string, broker int32, live []int32) int32 {
	best, bestScore := int32(-1), uint64(0)
	for _, p := range live {
		s := rendezvous(cluster, broker, p)
		if best < 0 || s > bestScore || (s == bestScore && p < best) {
			best, bestScore = p, s
		}
	}
	return best
}

// manyPeers is a state of n peers, peer i co-located with broker 1000+i
// of fxCluster.
func manyPeers(n int) *fsm.State {
	st := &fsm.State{Clusters: []fsm.Cluster{{Name: fxCluster, Bootstrap: []string{"x:1"}}}}
	for i := range int32(n) {
		st.Peers = append(st.Peers, fsm.Peer{
			ID:           i,
			KafkaAddr:    fmt.Sprintf("peer%d.test:%d", i, 9000+i),
			LocalBrokers: []fsm.BrokerRef{{Cluster: fxCluster, BrokerID: 1000 + i}},
		})
	}
	return st
}

func TestPresenterPeerFor(t *testing.T) {
	st := fxState()
	live := fxLive() // 0, 1, 3
	liveIDs := []int32{0, 1, 3}
	pr := newPresenter(st, livenessOf(live), fxCluster)
	tests := []struct {
		name   string
		broker int32
		want   int32
	}{
		{"co-located with peer 0", 100, 0},
		{"co-located with peer 1", 101, 1},
		{"co-located in another cluster only", 102, rendezvousWinner(fxCluster, 102, liveIDs)},
		{"co-located with a dead peer", 103, rendezvousWinner(fxCluster, 103, liveIDs)},
		{"no co-located peer", 104, rendezvousWinner(fxCluster, 104, liveIDs)},
		{"broker unknown to the state", 7, rendezvousWinner(fxCluster, 7, liveIDs)},
		{"broker 0", 0, rendezvousWinner(fxCluster, 0, liveIDs)},
		{"unknown leader", -1, -1},
		{"other negative", -2, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pr.peerFor(tt.broker); got != tt.want {
				t.Fatalf("peerFor(%d) = %d, want %d", tt.broker, got, tt.want)
			}
			// Cached answers are the same answers.
			if got := pr.peerFor(tt.broker); got != tt.want {
				t.Fatalf("second peerFor(%d) = %d, want %d", tt.broker, got, tt.want)
			}
		})
	}
	// The same broker in another cluster is scored independently.
	other := newPresenter(st, livenessOf(live), "other")
	if got := other.peerFor(102); got != 1 {
		t.Fatalf("other cluster: broker 102 presented by %d, want its co-located peer 1", got)
	}
	if got, want := other.peerFor(104), rendezvousWinner("other", 104, liveIDs); got != want {
		t.Fatalf("other cluster: broker 104 presented by %d, want %d", got, want)
	}
}

func TestPresenterColocatedTwice(t *testing.T) {
	// Two live peers on the host of broker 100: the lower id presents it,
	// whatever the order of the peers.
	st := fxState()
	st.Peers[3].LocalBrokers = []fsm.BrokerRef{{Cluster: fxCluster, BrokerID: 100}, {Cluster: fxCluster, BrokerID: 101}}
	live := fxLive()
	if got := newPresenter(st, livenessOf(live), fxCluster).peerFor(100); got != 0 {
		t.Fatalf("broker 100 presented by %d, want 0", got)
	}
	reversed := *st
	reversed.Peers = slices.Clone(st.Peers)
	slices.Reverse(reversed.Peers)
	if got := newPresenter(&reversed, livenessOf(live), fxCluster).peerFor(101); got != 1 {
		t.Fatalf("broker 101 presented by %d, want 1", got)
	}
	live[0] = false
	if got := newPresenter(st, livenessOf(live), fxCluster).peerFor(100); got != 3 {
		t.Fatalf("peer 0 dead: broker 100 presented by %d, want the other co-located peer 3", got)
	}
}

func TestPresenterNoLivePeers(t *testing.T) {
	pr := newPresenter(fxState(), func(int32) bool { return false }, fxCluster)
	for _, b := range []int32{-1, 0, 100, 104} {
		if got := pr.peerFor(b); got != -1 {
			t.Fatalf("peerFor(%d) with no live peer = %d, want -1", b, got)
		}
	}
	if got := pr.mapIDs([]int32{100, 101, -1}); len(got) != 0 {
		t.Fatalf("mapIDs with no live peer = %v, want empty", got)
	}
	if got := pr.brokers(); len(got) != 0 {
		t.Fatalf("brokers with no live peer = %v", got)
	}
}

// TestPresenterAgreement checks that every peer gives the same answer: the
// presentation depends on state and liveness only, not on which peer (node
// id) computes it, nor on a presenter's cache history.
func TestPresenterAgreement(t *testing.T) {
	var servers []*Server
	view := &fxView{st: fxState(), live: fxLive()}
	for id := range int32(4) {
		f := newFx(t, withNodeID(id))
		f.srv.view = view
		servers = append(servers, f.srv)
	}
	brokers := []int32{-1, 0, 1, 100, 101, 102, 103, 104, 555, 1 << 30}
	for _, b := range brokers {
		want := servers[0].testPresenter(servers[0].defaultBackend()).peerFor(b)
		for _, s := range servers[1:] {
			if got := s.testPresenter(s.defaultBackend()).peerFor(b); got != want {
				t.Fatalf("broker %d: node %d presents it as %d, node 0 as %d", b, s.cfg.NodeID, got, want)
			}
		}
		// A presenter queried in another order agrees too.
		pr := servers[0].testPresenter(servers[0].defaultBackend())
		for _, x := range slices.Backward(brokers) {
			pr.peerFor(x)
		}
		if got := pr.peerFor(b); got != want {
			t.Fatalf("broker %d: answer depends on query order: %d vs %d", b, got, want)
		}
	}
}

// TestPresenterDeadPeersNeverChosen tries every liveness subset of six
// peers over a range of brokers.
func TestPresenterDeadPeersNeverChosen(t *testing.T) {
	const n = 6
	st := manyPeers(n)
	for mask := range 1 << n {
		live := map[int32]bool{}
		var liveIDs []int32
		for i := range int32(n) {
			if mask&(1<<i) != 0 {
				live[i] = true
				liveIDs = append(liveIDs, i)
			}
		}
		pr := newPresenter(st, livenessOf(live), fxCluster)
		for b := int32(0); b < 1100; b += 7 {
			got := pr.peerFor(b)
			if len(liveIDs) == 0 {
				if got != -1 {
					t.Fatalf("mask %b broker %d: %d with no live peer", mask, b, got)
				}
				continue
			}
			if !live[got] {
				t.Fatalf("mask %b broker %d: presented by dead or unknown peer %d", mask, b, got)
			}
			want := rendezvousWinner(fxCluster, b, liveIDs)
			if local := b - 1000; local >= 0 && local < n && live[local] {
				want = local
			}
			if got != want {
				t.Fatalf("mask %b broker %d: presented by %d, want %d", mask, b, got, want)
			}
		}
	}
}

// TestPresenterStability: when a peer dies only the brokers it presented
// move; when it comes back, only brokers move to it.
func TestPresenterStability(t *testing.T) {
	const n = 5
	st := manyPeers(n)
	brokers := make([]int32, 0, 600)
	for b := range int32(500) {
		brokers = append(brokers, b)
	}
	for i := range int32(n) {
		brokers = append(brokers, 1000+i)
	}
	all := map[int32]bool{}
	for i := range int32(n) {
		all[i] = true
	}
	mapping := func(live map[int32]bool) map[int32]int32 {
		pr := newPresenter(st, livenessOf(live), fxCluster)
		m := map[int32]int32{}
		for _, b := range brokers {
			m[b] = pr.peerFor(b)
		}
		return m
	}
	before := mapping(all)
	for dead := range int32(n) {
		live := map[int32]bool{}
		for id := range all {
			live[id] = id != dead
		}
		after := mapping(live)
		moved := 0
		for _, b := range brokers {
			switch {
			case before[b] == dead:
				moved++
				if after[b] == dead || !live[after[b]] {
					t.Fatalf("peer %d died: broker %d moved to %d", dead, b, after[b])
				}
			case after[b] != before[b]:
				t.Fatalf("peer %d died: broker %d moved from live peer %d to %d", dead, b, before[b], after[b])
			}
		}
		if moved == 0 {
			t.Fatalf("peer %d presented no broker", dead)
		}
		// And back: brokers only move to the returning peer.
		back := mapping(all)
		for _, b := range brokers {
			if after[b] != back[b] && back[b] != dead {
				t.Fatalf("peer %d returned: broker %d moved from %d to %d", dead, b, after[b], back[b])
			}
		}
	}
}

// TestPresenterSpread: rendezvous spreads brokers over peers rather than
// piling them on one.
func TestPresenterSpread(t *testing.T) {
	st := manyPeers(4)
	for i := range st.Peers {
		st.Peers[i].LocalBrokers = nil
	}
	pr := newPresenter(st, func(int32) bool { return true }, fxCluster)
	count := map[int32]int{}
	for b := range int32(1000) {
		count[pr.peerFor(b)]++
	}
	for id := range int32(4) {
		if count[id] < 150 {
			t.Fatalf("peer %d presents %d of 1000 brokers: %v", id, count[id], count)
		}
	}
}

func TestPresenterMapIDs(t *testing.T) {
	pr := newPresenter(fxState(), livenessOf(fxLive()), fxCluster)
	r := func(b int32) int32 { return pr.peerFor(b) }
	tests := []struct {
		name string
		in   []int32
		want []int32
	}{
		{"nil", nil, []int32{}},
		{"one", []int32{100}, []int32{0}},
		{"order kept", []int32{101, 100}, []int32{1, 0}},
		{"duplicate broker", []int32{100, 100}, []int32{0}},
		{"two brokers one peer", []int32{100, 100, 101, 101}, []int32{0, 1}},
		{"unknown dropped", []int32{-1, 100, -1}, []int32{0}},
		{"all unknown", []int32{-1, -1}, []int32{}},
		{"rendezvous dedup", []int32{102, 103, 104, 100, 101}, dedup([]int32{r(102), r(103), r(104), 0, 1})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pr.mapIDs(tt.in)
			if got == nil || !slices.Equal(got, tt.want) {
				t.Fatalf("mapIDs(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func dedup(ids []int32) []int32 {
	out := []int32{}
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func TestPresenterBrokers(t *testing.T) {
	st := fxState()
	st.Peers = append(st.Peers, fsm.Peer{ID: 4, KafkaAddr: "no-port"}, fsm.Peer{ID: 5, KafkaAddr: "[::1]:9096"})
	live := fxLive()
	live[4], live[5] = true, true
	pr := newPresenter(st, livenessOf(live), fxCluster)
	got := pr.brokers()
	want := []struct {
		id   int32
		host string
		port int32
		rack string
	}{
		{0, "p0.proxy.test", 9092, "east"},
		{1, "p1.proxy.test", 9093, ""},
		{3, "p3.proxy.test", 9095, "west"},
		{5, "::1", 9096, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("brokers = %+v, want %d entries", got, len(want))
	}
	for i, w := range want {
		b := got[i]
		rack := ""
		if b.rack != nil {
			rack = *b.rack
		}
		if b.id != w.id || b.host != w.host || b.port != w.port || rack != w.rack || (w.rack == "" && b.rack != nil) {
			t.Fatalf("broker %d = %+v (rack %q), want %+v", i, b, rack, w)
		}
		if one, ok := pr.broker(w.id); !ok || one.id != w.id || one.host != w.host {
			t.Fatalf("broker(%d) = %+v, %v", w.id, one, ok)
		}
	}
	for _, id := range []int32{2, 4, -1, 99} {
		if _, ok := pr.broker(id); ok {
			t.Fatalf("broker(%d) found; dead, unparsable or unknown peers are not brokers", id)
		}
	}
}

func TestSplitHostPort(t *testing.T) {
	tests := []struct {
		in   string
		host string
		port int32
		err  bool
	}{
		{"h:1", "h", 1, false},
		{"proxy.example.com:9092", "proxy.example.com", 9092, false},
		{"[::1]:65535", "::1", 65535, false},
		{":9092", "", 9092, false},
		{"h", "", 0, true},
		{"h:", "", 0, true},
		{"h:65536", "", 0, true},
		{"h:-1", "", 0, true},
		{"h:port", "", 0, true},
		{"", "", 0, true},
	}
	for _, tt := range tests {
		host, port, err := splitHostPort(tt.in)
		if (err != nil) != tt.err || host != tt.host || port != tt.port {
			t.Fatalf("splitHostPort(%q) = %q, %d, %v", tt.in, host, port, err)
		}
	}
}

func TestRendezvousScores(t *testing.T) {
	first := rendezvous("c", 1, 2)
	for range 3 {
		if got := rendezvous("c", 1, 2); got != first {
			t.Fatalf("rendezvous is not a function of its inputs: %d then %d", first, got)
		}
	}
	seen := map[uint64]bool{}
	for _, in := range []struct {
		cluster     string
		broker, pid int32
	}{{"c", 1, 2}, {"c", 2, 1}, {"d", 1, 2}, {"c", 1, 3}, {"c", -1, 2}, {"", 1, 2}} {
		s := rendezvous(in.cluster, in.broker, in.pid)
		if seen[s] {
			t.Fatalf("rendezvous%v collides", in)
		}
		seen[s] = true
	}
}

// TestPresenterOnlyPresentsListedPeers: every id peerFor returns must be a
// broker that brokers() lists, or clients are told of a leader they cannot
// find. A live peer whose KafkaAddr does not parse as host:port is left
// out of brokers() but still wins rendezvous (and co-location) in peerFor.
// fsm.State.Validate only checks the address is non-empty.
func TestPresenterOnlyPresentsListedPeers(t *testing.T) {
	st := fxState()
	st.Peers[3].KafkaAddr = "p3.proxy.test" // no port
	st.Peers[0].KafkaAddr = "p0.proxy.test:http"
	pr := newPresenter(st, livenessOf(fxLive()), fxCluster)
	listed := map[int32]bool{}
	for _, b := range pr.brokers() {
		listed[b.id] = true
	}
	for b := int32(0); b < 200; b++ {
		for _, broker := range []int32{b, 100 + b%5} {
			if p := pr.peerFor(broker); p >= 0 && !listed[p] {
				t.Fatalf("broker %d presented by peer %d, which is not among the brokers %v", broker, p, pr.brokers())
			}
		}
	}
}

// TestRegionPresenter: with regions defined, a client is shown only its
// region's live peers (else its fallback region's, else all), and a broker
// whose co-located peer is elsewhere is presented by a rendezvous choice
// among the region's peers; with no regions, everyone sees every peer.
func TestRegionPresenter(t *testing.T) {
	st := fxState() // live 0 (east), 1 (no region), 3 (west); 2 (west) dead
	live := livenessOf(fxLive())
	ids := func(pr *presenter) []int32 {
		var out []int32
		for _, b := range pr.brokers() {
			out = append(out, b.id)
		}
		return out
	}
	// No regions defined: the region is ignored.
	if got := ids(newRegionPresenter(st, live, fxCluster, "west")); !slices.Equal(got, []int32{0, 1, 3}) {
		t.Fatalf("no regions: brokers %v, want every live peer", got)
	}
	st.Regions = []fsm.Region{
		{Name: "east", Networks: []string{"10.1.0.0/16"}},
		{Name: "north", Fallback: []string{"west", "east"}},
		{Name: "south"},
		{Name: "west", Networks: []string{"10.2.0.0/16"}, Fallback: []string{"east"}},
	}
	cases := []struct {
		region string
		want   []int32
	}{
		{"west", []int32{3}},
		{"east", []int32{0}},
		{"north", []int32{3}},         // its own has none: first fallback with a live peer
		{"south", []int32{0, 1, 3}},   // none and no fallback: every live peer
		{"", []int32{0, 1, 3}},        // region unknown
		{"nowhere", []int32{0, 1, 3}}, // not a defined region, no peers
	}
	for _, tc := range cases {
		pr := newRegionPresenter(st, live, fxCluster, tc.region)
		if got := ids(pr); !slices.Equal(got, tc.want) {
			t.Errorf("region %q: brokers %v, want %v", tc.region, got, tc.want)
		}
		// Every leader is one of the shown peers.
		for b := int32(100); b <= 104; b++ {
			if p := pr.peerFor(b); !slices.Contains(tc.want, p) {
				t.Errorf("region %q: broker %d presented by peer %d, not one shown", tc.region, b, p)
			}
		}
	}
	// East's broker 100 stays with its co-located peer 0 for east; for west
	// it moves to west's only live peer.
	if got := newRegionPresenter(st, live, fxCluster, "east").peerFor(100); got != 0 {
		t.Errorf("east: broker 100 presented by %d, want its co-located peer 0", got)
	}
	if got := newRegionPresenter(st, live, fxCluster, "west").peerFor(100); got != 3 {
		t.Errorf("west: broker 100 presented by %d, want 3", got)
	}
}
