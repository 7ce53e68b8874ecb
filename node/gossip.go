package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/transport"
)

// peerMeta is what a peer gossips about itself (memberlist node metadata,
// at most memberlist.MetaMaxSize bytes). The leader turns it into the
// peer's entry in the replicated state; bootstrap reads Expect and HasState.
type peerMeta struct {
	Region  string `json:"r,omitempty"`
	Kafka   string `json:"k"`
	Admin   string `json:"a,omitempty"`
	Raft    string `json:"p"`
	Gossip  string `json:"g,omitempty"`
	Version string `json:"v,omitempty"`
	// Expect is the peer's --bootstrap-expect (0: join only).
	Expect int `json:"e,omitempty"`
	// HasState: the peer has Raft state (it is or was in a cluster), so a
	// new cluster must not be bootstrapped around it.
	HasState bool `json:"s,omitempty"`
	// Brokers are the local brokers as CLUSTER:ID.
	Brokers []string `json:"lb,omitempty"`
	// Commands is the newest fsm command set the peer's build applies
	// (fsm.CommandSetVersion); absent, from builds before version gating,
	// means set 1. The leader proposes no command some peer cannot apply.
	Commands uint16 `json:"c,omitempty"`
}

func encodeMeta(m peerMeta) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("node: gossip metadata is %d bytes, over memberlist's %d (too many local brokers or very long addresses)", len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// decodeMeta reads another member's metadata. memberlist bounds what it
// sends at MetaMaxSize, but the bytes come from whoever joined gossip, so
// the bound is checked here too.
func decodeMeta(b []byte) (peerMeta, error) {
	var m peerMeta
	if len(b) > memberlist.MetaMaxSize {
		return m, fmt.Errorf("gossip metadata is %d bytes, over memberlist's %d", len(b), memberlist.MetaMaxSize)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("gossip metadata: %w", err)
	}
	return m, nil
}

func brokerRefStrings(refs []fsm.BrokerRef) []string {
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, r.Cluster+":"+strconv.Itoa(int(r.BrokerID)))
	}
	return out
}

// ParseBrokerRef reads CLUSTER:BROKER_ID.
func ParseBrokerRef(s string) (fsm.BrokerRef, error) {
	cl, id, ok := strings.Cut(s, ":")
	v, err := strconv.ParseInt(id, 10, 32)
	if !ok || cl == "" || err != nil || v < 0 {
		return fsm.BrokerRef{}, fmt.Errorf("local broker %q: want CLUSTER:BROKER_ID, e.g. east:1", s)
	}
	return fsm.BrokerRef{Cluster: cl, BrokerID: int32(v)}, nil
}

// peer is the replicated peer entry that this gossip metadata describes.
func (m peerMeta) peer(name string) fsm.Peer {
	p := fsm.Peer{ID: fsm.AutoPeerID, Name: name, Region: m.Region, KafkaAddr: m.Kafka, AdminAddr: m.Admin,
		RaftAddr: m.Raft, GossipAddr: m.Gossip, Version: m.Version}
	for _, s := range m.Brokers {
		if b, err := ParseBrokerRef(s); err == nil {
			p.LocalBrokers = append(p.LocalBrokers, b)
		}
	}
	slices.SortFunc(p.LocalBrokers, func(a, b fsm.BrokerRef) int {
		if c := strings.Compare(a.Cluster, b.Cluster); c != 0 {
			return c
		}
		return int(a.BrokerID - b.BrokerID)
	})
	return p
}

// memberState is a peer's gossip state as Switchyard reports it.
type memberState string

const (
	memberAlive   memberState = "alive"
	memberSuspect memberState = "suspect"
	memberDead    memberState = "dead"
	memberLeft    memberState = "left"
	memberUnknown memberState = "unknown"
)

// member is one peer as gossip knows it.
type member struct {
	name  string
	addr  string
	meta  peerMeta
	state memberState
	// since is when the peer entered its current state (as seen here).
	since time.Time
}

// gossip wraps memberlist: it keeps this peer's metadata, tracks the other
// peers' states from memberlist's events, and publishes the set of live
// peer names for the data plane. Event callbacks never block.
type gossip struct {
	log  *slog.Logger
	name string
	ml   *memberlist.Memberlist

	metaMu sync.Mutex
	meta   []byte

	mu      sync.Mutex
	members map[string]*member
	// live is the set of names the data plane presents: alive, less those
	// whose Kafka port refuses connections (refused).
	live atomic.Pointer[map[string]struct{}]
	// refused holds the peers whose Kafka port refused a connection
	// (watchRefused): their process is gone though their host answers, so
	// they are not presented before memberlist's dead verdict.
	refused map[string]bool
	// changed is notified on every membership change.
	changed *notifier
	// bq queues this peer's broadcasts (set before memberlist starts);
	// onTopicsChanged handles a peer's topics-changed broadcast.
	bq              *memberlist.TransmitLimitedQueue
	onTopicsChanged func(cluster string)
	now             func() time.Time
}

func newGossip(name string, meta peerMeta, changed *notifier, log *slog.Logger) (*gossip, error) {
	b, err := encodeMeta(meta)
	if err != nil {
		return nil, err
	}
	g := &gossip{log: log, name: name, meta: b, members: map[string]*member{}, refused: map[string]bool{}, changed: changed, now: time.Now}
	g.publishLive()
	return g, nil
}

// setMeta changes this peer's metadata and gossips it.
func (g *gossip) setMeta(m peerMeta) error {
	b, err := encodeMeta(m)
	if err != nil {
		return err
	}
	g.metaMu.Lock()
	g.meta = b
	g.metaMu.Unlock()
	if g.ml != nil {
		return g.ml.UpdateNode(5 * time.Second)
	}
	return nil
}

// memberlist.Delegate

func (g *gossip) NodeMeta(limit int) []byte {
	g.metaMu.Lock()
	defer g.metaMu.Unlock()
	if len(g.meta) > limit {
		// encodeMeta already refused this; never hand memberlist more.
		return nil
	}
	return slices.Clone(g.meta)
}

// NotifyMsg receives a peer's broadcast (gossipMsg). It never blocks: a
// refresh request only bumps the backend's generation and nudges its loop.
func (g *gossip) NotifyMsg(b []byte) {
	kind, cluster, err := decodeGossipMsg(b)
	if err != nil {
		g.log.Debug("ignoring a gossip message", "err", err)
		return
	}
	if kind == gossipTopicsChanged && g.onTopicsChanged != nil {
		g.onTopicsChanged(cluster)
	}
}

func (g *gossip) GetBroadcasts(overhead, limit int) [][]byte {
	if g.bq == nil {
		return nil
	}
	return g.bq.GetBroadcasts(overhead, limit)
}
func (g *gossip) LocalState(join bool) []byte            { return nil }
func (g *gossip) MergeRemoteState(buf []byte, join bool) {}

// Gossip broadcasts: one byte of kind, then the kind's payload. Peers
// ignore kinds they do not know, so a kind can be added without a
// version gate (a broadcast is a hint, never state).
const (
	// gossipTopicsChanged: [kind][len][cluster name]: a client created,
	// deleted or grew topics of that cluster through the sender; refresh
	// its metadata (kafka.Config.TopicsChanged).
	gossipTopicsChanged byte = 1
	maxGossipCluster         = 255
)

var errGossipMsg = errors.New("malformed gossip message")

func encodeTopicsChanged(cluster string) []byte {
	if len(cluster) > maxGossipCluster {
		return nil
	}
	return append([]byte{gossipTopicsChanged, byte(len(cluster))}, cluster...)
}

// decodeGossipMsg parses a broadcast. The bytes come from the network
// (from a member, encrypted when the cluster has a gossip key).
func decodeGossipMsg(b []byte) (kind byte, cluster string, err error) {
	if len(b) < 1 {
		return 0, "", fmt.Errorf("%w: empty", errGossipMsg)
	}
	switch b[0] {
	case gossipTopicsChanged:
		if len(b) < 2 || int(b[1]) != len(b)-2 || b[1] == 0 {
			return 0, "", fmt.Errorf("%w: topics-changed of %d bytes", errGossipMsg, len(b))
		}
		return b[0], string(b[2:]), nil
	}
	return 0, "", fmt.Errorf("%w: unknown kind %d", errGossipMsg, b[0])
}

// topicsChangedBroadcast is queued once per cluster: a newer one for the
// same cluster replaces it.
type topicsChangedBroadcast struct {
	cluster string
	msg     []byte
}

func (b *topicsChangedBroadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*topicsChangedBroadcast)
	return ok && ob.cluster == b.cluster
}
func (b *topicsChangedBroadcast) Message() []byte { return b.msg }
func (b *topicsChangedBroadcast) Finished()       {}

// topicsChangedWait bounds how long a CreateTopics, DeleteTopics or
// CreatePartitions answer waits for the other peers to be told.
const topicsChangedWait = time.Second

// broadcastTopicsChanged tells the other peers to refresh cluster's
// metadata. It sends the message to every live peer over memberlist's TCP
// stream (SendReliable) and returns once each send is done, or after
// topicsChangedWait: it runs before the client has its answer, so the
// client's next listing, on whichever peer, sees the change (a receiver
// marks its snapshot stale as it reads the message, well within the
// client's next round trip). It also queues the message as a gossip
// broadcast, which reaches a peer the direct send missed within a few
// gossip rounds.
func (g *gossip) broadcastTopicsChanged(cluster string) {
	msg := encodeTopicsChanged(cluster)
	if g.ml == nil || msg == nil {
		return
	}
	if g.bq != nil {
		g.bq.QueueBroadcast(&topicsChangedBroadcast{cluster: cluster, msg: msg})
	}
	// The targets come from this peer's own table, as copies: the
	// *memberlist.Node values Members returns are memberlist's, which
	// rewrites their address fields under its lock when a member
	// refutes or moves, and reading them here raced with that (the race
	// detector caught it in a loaded CI run).
	var others []*memberlist.Node
	g.mu.Lock()
	for name, m := range g.members {
		if name == g.name || m.state != memberAlive {
			continue
		}
		host, port, err := net.SplitHostPort(m.addr)
		ip := net.ParseIP(host)
		p, perr := strconv.ParseUint(port, 10, 16)
		if err != nil || ip == nil || perr != nil {
			continue
		}
		others = append(others, &memberlist.Node{Name: name, Addr: ip, Port: uint16(p)})
	}
	g.mu.Unlock()
	if len(others) == 0 {
		return
	}
	done := make(chan struct{}, len(others))
	for _, n := range others {
		go func() {
			if err := g.ml.SendReliable(n, msg); err != nil {
				g.log.Debug("telling a peer that topics changed failed; the gossip broadcast follows", "peer", n.Name, "err", err)
			}
			done <- struct{}{}
		}()
	}
	deadline := time.NewTimer(topicsChangedWait)
	defer deadline.Stop()
	for range others {
		select {
		case <-done:
		case <-deadline.C:
			return
		}
	}
}

// memberlist.EventDelegate

func (g *gossip) NotifyJoin(n *memberlist.Node)   { g.update(n, memberAlive) }
func (g *gossip) NotifyUpdate(n *memberlist.Node) { g.update(n, memberAlive) }
func (g *gossip) NotifyLeave(n *memberlist.Node) {
	st := memberDead
	if n.State == memberlist.StateLeft {
		st = memberLeft
	}
	g.update(n, st)
}

func (g *gossip) update(n *memberlist.Node, st memberState) {
	meta, err := decodeMeta(n.Meta)
	if err != nil {
		g.log.Warn("ignoring a peer with unreadable gossip metadata", "peer", n.Name, "err", err)
		return
	}
	g.mu.Lock()
	m, ok := g.members[n.Name]
	if !ok {
		m = &member{name: n.Name}
		g.members[n.Name] = m
	}
	if !ok || m.state != st {
		m.since = g.now()
		if ok {
			g.log.Info("peer gossip state changed", "peer", n.Name, "from", m.state, "to", st)
		}
	}
	m.state, m.meta, m.addr = st, meta, n.Address()
	g.mu.Unlock()
	g.publishLive()
	g.changed.notify()
}

func (g *gossip) publishLive() {
	g.mu.Lock()
	live := map[string]struct{}{g.name: {}}
	for name, m := range g.members {
		if m.state == memberAlive && !g.refused[name] {
			live[name] = struct{}{}
		}
	}
	g.mu.Unlock()
	g.live.Store(&live)
}

// watchRefused shortens the time a killed peer stays presented. memberlist
// declares a peer dead only after its suspicion timeout (about 5 s with
// the default timing; memberlist v0.5 does not expose the suspect state in
// between), and until then the other peers present it as the leader of its
// partitions, so its clients, refused, find it again in every Metadata
// answer. Every interval this dials the Kafka port of up to probeBudget
// other peers in turn (all of them in a cluster of that size or less): a
// peer whose port refuses the connection (its host answers and nothing
// listens: its process is gone; a partition makes the dial time out
// instead, which changes nothing) stops being presented at once, and is
// presented again once a dial succeeds. Raft and membership are untouched.
// A probe connects and closes; the Kafka listener logs such a connection at
// debug only (kafka/conn.go logOpened).
func (g *gossip) watchRefused(ctx context.Context, interval, dialTimeout time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	next := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next = g.probeKafkaPorts(ctx, next, dialTimeout)
	}
}

// probeBudget bounds the dials of one watchRefused round.
const probeBudget = 16

// probeKafkaPorts dials up to probeBudget peers from position next in name
// order and returns the position to start the next round from.
func (g *gossip) probeKafkaPorts(ctx context.Context, next int, dialTimeout time.Duration) int {
	type cand struct{ name, addr string }
	var all []cand
	g.mu.Lock()
	for name, m := range g.members {
		if name == g.name || m.meta.Kafka == "" || m.state != memberAlive {
			if g.refused[name] && m.state != memberAlive {
				delete(g.refused, name) // dead or left: memberlist's verdict rules again
			}
			continue
		}
		all = append(all, cand{name, m.meta.Kafka})
	}
	g.mu.Unlock()
	if len(all) == 0 {
		return 0
	}
	slices.SortFunc(all, func(a, b cand) int { return strings.Compare(a.name, b.name) })
	n := min(len(all), probeBudget)
	results := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		c := all[(next+i)%len(all)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			// No keep-alive: the connection closes at once, so its four
			// setsockopt calls would be work for nothing, every interval.
			d := net.Dialer{Timeout: dialTimeout, KeepAlive: -1}
			nc, err := d.DialContext(ctx, "tcp", c.addr)
			if nc != nil {
				nc.Close()
			}
			results[i] = err
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return next
	}
	changed := false
	g.mu.Lock()
	for i := range n {
		c, err := all[(next+i)%len(all)], results[i]
		switch {
		case errors.Is(err, syscall.ECONNREFUSED) && !g.refused[c.name]:
			g.refused[c.name] = true
			changed = true
			g.log.Info("peer's Kafka port refuses connections; not presenting it until it accepts again", "peer", c.name, "kafka", c.addr)
		case err == nil && g.refused[c.name]:
			delete(g.refused, c.name)
			changed = true
			g.log.Info("peer's Kafka port accepts connections again; presenting it", "peer", c.name, "kafka", c.addr)
		}
	}
	g.mu.Unlock()
	if changed {
		g.publishLive()
		g.changed.notify()
	}
	return (next + n) % len(all)
}

// isLive reports whether the data plane presents the named peer.
func (g *gossip) isLive(name string) bool {
	_, ok := (*g.live.Load())[name]
	return ok
}

// snapshot returns every peer gossip has seen, this one included. A peer
// memberlist holds alive whose Kafka port refuses connections (watchRefused)
// is reported suspect: memberlist's own suspect state cannot be read
// (memberlist.Node.State is never updated from Alive in v0.5), and a
// refused port is the one sign this peer has that another's process may
// be gone before memberlist's dead verdict.
func (g *gossip) snapshot() map[string]member {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]member, len(g.members))
	for name, m := range g.members {
		c := *m
		if c.state == memberAlive && g.refused[name] {
			c.state = memberSuspect
		}
		out[name] = c
	}
	return out
}

// raftAddr is the peer-port address the named peer gossips, looked up
// alone: Raft asks for it on every RPC it sends (the leader's own address
// goes in each request header), so building a snapshot of every member
// here made each heartbeat cost O(peers) — at 100 peers a sixth of the
// fleet's CPU, and the garbage behind most of its GC work.
func (g *gossip) raftAddr(name string) (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.members[name]
	if !ok || m.meta.Raft == "" {
		return "", false
	}
	return m.meta.Raft, true
}

// aliveCount is how many peers (this one included) are alive.
func (g *gossip) aliveCount() int {
	n := 0
	for _, m := range g.snapshot() {
		if m.state == memberAlive || m.state == memberSuspect {
			n++
		}
	}
	return n
}

// watchGossipKeys re-reads GossipKeyFile every GossipKeyReload and installs
// a changed key list (transport.InstallGossipKeys). Polling rather than a
// signal works the same for a file an orchestrator rewrites (a mounted
// secret) and one an operator edits. A file that does not parse keeps the
// current keys and logs once per distinct error.
func (n *Node) watchGossipKeys(ctx context.Context) {
	if n.keyring == nil || n.cfg.GossipKeyFile == "" {
		return
	}
	t := time.NewTicker(n.cfg.Timing.GossipKeyReload)
	defer t.Stop()
	lastErr := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := n.ReloadGossipKeys()
		switch {
		case err != nil && err.Error() != lastErr:
			lastErr = err.Error()
			n.log.Error("gossip key file unusable; keeping the current keys", "file", n.cfg.GossipKeyFile, "err", err)
		case err == nil:
			lastErr = ""
			if changed {
				n.log.Info("gossip keys reloaded", "file", n.cfg.GossipKeyFile, "keys", len(n.keyring.GetKeys()))
			}
		}
	}
}

// ReloadGossipKeys reads GossipKeyFile and installs its keys when they
// differ from the keyring's, reporting whether they did.
func (n *Node) ReloadGossipKeys() (bool, error) {
	if n.keyring == nil {
		return false, fmt.Errorf("node: gossip is not encrypted (no --gossip-key-file at start); a restart is needed to turn it on")
	}
	keys, err := transport.ReadGossipKeyFile(n.cfg.GossipKeyFile)
	if err != nil {
		return false, err
	}
	// Same primary and same set: nothing to do (the ring's order of the
	// secondary keys need not follow the file's).
	have := n.keyring.GetKeys()
	same := bytes.Equal(n.keyring.GetPrimaryKey(), keys[0]) && len(have) == len(keys)
	for _, k := range keys {
		same = same && slices.ContainsFunc(have, func(h []byte) bool { return bytes.Equal(h, k) })
	}
	if same {
		return false, nil
	}
	if err := transport.InstallGossipKeys(n.keyring, keys); err != nil {
		return false, err
	}
	return true, nil
}
