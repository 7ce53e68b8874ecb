package kafka

import (
	"hash/fnv"
	"net"
	"slices"
	"strconv"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// presenter maps backend brokers to the peers clients see. Every peer
// computes the same answer from the same state and liveness: a broker is
// presented by the live peer on its host, else by the live peer with the
// highest rendezvous score for (cluster, broker). Only a rendezvous choice
// moves when peers come and go, and only for brokers whose peer left.
//
// Near serving (docs/regions.md): when the state defines regions and the
// client's region is known, only the live peers of the client's region are
// presented (else those of its region's first fallback region that has
// one, else every live peer), so the client's connections stay in its
// site. A broker whose co-located peer is in another region is then
// presented by the rendezvous choice among the region's peers.
type presenter struct {
	cluster string
	live    []fsm.Peer
	local   map[int32]int32 // backend broker → co-located live peer
	cache   map[int32]int32
}

func newPresenter(st *fsm.State, live func(int32) bool, cluster string) *presenter {
	return newRegionPresenter(st, live, cluster, "")
}

// newRegionPresenter is the presenter for a client of region (see
// presenter); region "" presents every live peer.
func newRegionPresenter(st *fsm.State, live func(int32) bool, cluster, region string) *presenter {
	pr := &presenter{cluster: cluster, local: map[int32]int32{}, cache: map[int32]int32{}}
	for _, p := range st.Peers {
		// A peer clients could not be told the address of is never
		// presented, so it is never named leader either.
		if !live(p.ID) {
			continue
		}
		if _, _, err := splitHostPort(p.KafkaAddr); err != nil {
			continue
		}
		pr.live = append(pr.live, p)
	}
	pr.live = nearPeers(st, pr.live, region)
	for _, p := range pr.live {
		for _, b := range p.LocalBrokers {
			if b.Cluster != cluster {
				continue
			}
			if cur, ok := pr.local[b.BrokerID]; !ok || p.ID < cur {
				pr.local[b.BrokerID] = p.ID
			}
		}
	}
	return pr
}

// nearPeers narrows live to the peers a client of region is shown: those
// of its region, else of its region's first fallback region with a live
// peer, else all of them. With no regions defined, or no region known,
// every live peer is shown (the behaviour before regions).
func nearPeers(st *fsm.State, live []fsm.Peer, region string) []fsm.Peer {
	if region == "" || len(st.Regions) == 0 {
		return live
	}
	in := func(name string) []fsm.Peer {
		var out []fsm.Peer
		for _, p := range live {
			if p.Region == name {
				out = append(out, p)
			}
		}
		return out
	}
	if near := in(region); len(near) > 0 {
		return near
	}
	if r, ok := st.Region(region); ok {
		for _, f := range r.Fallback {
			if near := in(f); len(near) > 0 {
				return near
			}
		}
	}
	return live
}

// peerFor returns the peer presenting broker, or -1 for an unknown leader
// (-1) or when no peer is live.
func (pr *presenter) peerFor(broker int32) int32 {
	if broker < 0 || len(pr.live) == 0 {
		return -1
	}
	if id, ok := pr.local[broker]; ok {
		return id
	}
	if id, ok := pr.cache[broker]; ok {
		return id
	}
	best, bestScore := int32(-1), uint64(0)
	for _, p := range pr.live {
		if s := rendezvous(pr.cluster, broker, p.ID); best < 0 || s > bestScore {
			best, bestScore = p.ID, s
		}
	}
	pr.cache[broker] = best
	return best
}

// mapIDs maps backend broker ids to peer ids, dropping duplicates and
// unknown brokers, keeping first-seen order.
func (pr *presenter) mapIDs(ids []int32) []int32 {
	out := make([]int32, 0, len(ids))
	for _, id := range ids {
		if p := pr.peerFor(id); p >= 0 && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// presentedBroker is a peer as a broker entry.
type presentedBroker struct {
	id   int32
	host string
	port int32
	rack *string
}

// brokers lists the live peers as brokers.
func (pr *presenter) brokers() []presentedBroker {
	out := make([]presentedBroker, 0, len(pr.live))
	for _, p := range pr.live {
		host, port, err := splitHostPort(p.KafkaAddr)
		if err != nil {
			continue
		}
		b := presentedBroker{id: p.ID, host: host, port: port}
		if p.Region != "" {
			r := p.Region
			b.rack = &r
		}
		out = append(out, b)
	}
	return out
}

// broker returns the broker entry of peer id.
func (pr *presenter) broker(id int32) (presentedBroker, bool) {
	for _, b := range pr.brokers() {
		if b.id == id {
			return b, true
		}
	}
	return presentedBroker{}, false
}

func splitHostPort(addr string) (string, int32, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, err
	}
	return host, int32(port), nil
}

// rendezvous scores peer for (cluster, broker); the highest score wins.
func rendezvous(cluster string, broker, peer int32) uint64 {
	h := fnv.New64a()
	h.Write([]byte(cluster))
	var b [8]byte
	b[0], b[1], b[2], b[3] = byte(broker>>24), byte(broker>>16), byte(broker>>8), byte(broker)
	b[4], b[5], b[6], b[7] = byte(peer>>24), byte(peer>>16), byte(peer>>8), byte(peer)
	h.Write(b[:])
	// FNV alone mixes the last bytes poorly; finish with splitmix64.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
