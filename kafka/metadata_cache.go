package kafka

// The metadata snapshot: how a client's Metadata is answered without
// asking a backend (03_metadata.go decides when).
//
// Each Backend keeps the last all-topics answer of its refresh loop
// (metaSnapshot), as the backend sent it. The snapshot is fresh while
// nothing has asked for a refresh since its request was sent (metaGen):
// TriggerRefresh (a leadership error, a broken connection, a topic created,
// deleted or given partitions through this peer, a topic a named Metadata
// found that the snapshot lacks) makes it stale until the refresh it asked
// for lands, and a stale snapshot is not served: those requests go to the
// backend as before.
//
// All-topics Metadata is assembled from pre-encoded blocks: per snapshot,
// one block per (state, client region, version, presentation), holding the
// encoded entries of the cluster's topics that route to it, already
// presented (peers as leaders, virtual ids, chain epochs). A request copies
// the blocks of every cluster after a small per-request head (brokers,
// cluster id, controller) into one buffer: no decode, no per-topic
// allocation, and a cluster's refresh rebuilds only its own blocks. With
// authorization on, the entries are copied one by one, leaving out those
// the principal cannot describe. Named topics are answered from the
// snapshot's index when it holds them without error: their cost does not
// depend on how many topics the clusters have.

import (
	"encoding/binary"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// metaBlocksPerSnapshot bounds the blocks a snapshot keeps: one per state,
// region, version and presentation in use. A new state drops nothing at
// once (the refresh replaces the snapshot and its blocks); past the bound
// the oldest block goes.
const metaBlocksPerSnapshot = 8

// noAuthorizedOps is Kafka's "not asked" value of the authorized
// operations fields.
const noAuthorizedOps = math.MinInt32

// metaSnapshot is one all-topics Metadata answer of a backend, never
// modified once stored but for gen, which a later refresh that got the
// same answer advances (Backend.refresh, metadata_digest.go).
type metaSnapshot struct {
	resp  *kmsg.MetadataResponse
	index map[string]int // topic name → its entry in resp.Topics
	gen   atomic.Uint64  // the backend's metaGen when the (last same) request was sent

	// digest is resp's metadataDigest (when hasDigest), and updates the
	// backend's metaUpdates once resp was applied: a refresh whose answer
	// has the same digest, with no other update since, changes nothing.
	digest    uint64
	hasDigest bool
	updates   uint64

	mu     sync.Mutex // guards blocks; held while one is built
	blocks []*metaBlock
}

// metaBlockKey is what a block's bytes depend on besides the snapshot.
type metaBlockKey struct {
	st      *fsm.State // routes (with the client's region), chains
	region  string
	version int16
	present string // presenter.fingerprint
}

// metaBlock holds the encoded topic entries of one snapshot under one key.
type metaBlock struct {
	key   metaBlockKey
	elems []byte
	ends  []int    // end of entry i in elems
	names []string // name of entry i ("" for a nameless entry)
}

func newMetaSnapshot(resp *kmsg.MetadataResponse, gen uint64) *metaSnapshot {
	s := &metaSnapshot{resp: resp, index: make(map[string]int, len(resp.Topics))}
	s.gen.Store(gen)
	for i, t := range resp.Topics {
		if t.Topic != nil {
			s.index[*t.Topic] = i
		}
	}
	return s
}

// setSnapshot stores resp, an all-topics answer whose request was sent at
// gen, unless a newer one is stored already.
func (b *Backend) setSnapshot(resp *kmsg.MetadataResponse, gen uint64) {
	b.storeSnapshot(newMetaSnapshot(resp, gen))
}

func (b *Backend) storeSnapshot(s *metaSnapshot) {
	gen := s.gen.Load()
	for {
		old := b.snap.Load()
		if old != nil && old.gen.Load() > gen {
			return
		}
		if b.snap.CompareAndSwap(old, s) {
			return
		}
	}
}

// restamp marks the snapshot as the answer to a request sent at gen, which
// answered the same.
func (s *metaSnapshot) restamp(gen uint64) {
	for {
		g := s.gen.Load()
		if g >= gen || s.gen.CompareAndSwap(g, gen) {
			return
		}
	}
}

// freshSnapshot is the backend's snapshot when nothing asked for a refresh
// since its request was sent, else nil.
func (b *Backend) freshSnapshot() *metaSnapshot {
	s := b.snap.Load()
	if s == nil || s.gen.Load() != b.metaGen.Load() {
		return nil
	}
	return s
}

// cachedTopic is the snapshot's entry for name when it can answer a named
// request: present, without a topic or partition error.
func (s *metaSnapshot) cachedTopic(name string) (*kmsg.MetadataResponseTopic, bool) {
	i, ok := s.index[name]
	if !ok {
		return nil, false
	}
	t := &s.resp.Topics[i]
	if t.ErrorCode != 0 {
		return nil, false
	}
	for j := range t.Partitions {
		if t.Partitions[j].ErrorCode != 0 {
			return nil, false
		}
	}
	return t, true
}

// copyTopic copies t deep enough for presentTopic to rewrite the copy
// (it replaces the replica slices, never writes into them).
func copyTopic(t *kmsg.MetadataResponseTopic) kmsg.MetadataResponseTopic {
	c := *t
	c.Partitions = slices.Clone(t.Partitions)
	return c
}

// fingerprint identifies what peerFor answers: the live peers shown and
// the co-located brokers (rendezvous depends only on the ids).
func (pr *presenter) fingerprint() string {
	var sb strings.Builder
	for _, p := range pr.live {
		sb.WriteString(strconv.Itoa(int(p.ID)))
		sb.WriteByte(',')
	}
	sb.WriteByte('|')
	for _, b := range slices.Sorted(mapKeys(pr.local)) {
		sb.WriteString(strconv.Itoa(int(b)))
		sb.WriteByte('=')
		sb.WriteString(strconv.Itoa(int(pr.local[b])))
		sb.WriteByte(',')
	}
	return sb.String()
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// metaSplice gives the lengths around the topics array of an encoded
// Metadata response body of version v: the array's length prefix when it
// is empty, and what follows the array (ClusterAuthorizedOperations in
// v8-v10, the top-level ErrorCode from v13 on, the tagged-field count from
// v9 on). TestCachedAllTopicsEncoding checks it against kmsg's encoding of
// every version kmsg knows.
func metaSplice(v int16) (emptyArr, suffix int) {
	emptyArr = 4
	if v >= 9 {
		emptyArr = 1
	}
	if v >= 8 && v <= 10 {
		suffix += 4
	}
	if v >= 13 {
		suffix += 2
	}
	if v >= 9 {
		suffix++
	}
	return emptyArr, suffix
}

// block returns the snapshot's block for r's request against be, building
// it on first use.
func (s *metaSnapshot) block(r *request, be *Backend, pr *presenter) *metaBlock {
	key := metaBlockKey{st: r.st, region: r.region, version: r.version, present: pr.fingerprint()}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, bl := range s.blocks {
		if bl.key == key {
			return bl
		}
	}
	bl := buildMetaBlock(r, be, pr, s.resp, key)
	if len(s.blocks) >= metaBlocksPerSnapshot {
		s.blocks = slices.Delete(s.blocks, 0, 1)
	}
	s.blocks = append(s.blocks, bl)
	return bl
}

// buildMetaBlock encodes the presented entries of resp's topics that route
// to be, one at a time, so each entry's end is known.
func buildMetaBlock(r *request, be *Backend, pr *presenter, resp *kmsg.MetadataResponse, key metaBlockKey) *metaBlock {
	bl := &metaBlock{key: key}
	one := kmsg.NewPtrMetadataResponse()
	one.Version = key.version
	emptyArr, suffix := metaSplice(key.version)
	head := len(one.AppendTo(nil)) - emptyArr - suffix
	oneArr := emptyArr // a one-entry array's prefix is as long as an empty one's
	var scratch []byte
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if t.Topic != nil && r.route(*t.Topic) != be {
			continue
		}
		c := copyTopic(t)
		presentTopic(r, be, pr, &c)
		one.Topics = append(one.Topics[:0], c)
		scratch = one.AppendTo(scratch[:0])
		bl.elems = append(bl.elems, scratch[head+oneArr:len(scratch)-suffix]...)
		bl.ends = append(bl.ends, len(bl.elems))
		name := ""
		if t.Topic != nil {
			name = *t.Topic
		}
		bl.names = append(bl.names, name)
	}
	return bl
}

// cachedAllTopics answers an all-topics Metadata from the snapshots (one
// per cluster of r's set, in its order) as one encoded frame.
func cachedAllTopics(r *request, snaps []*metaSnapshot) *buffer {
	set := r.set
	def := r.defaultBackend()
	hdr := snaps[0]
	for i, be := range set.sorted {
		if be == def {
			hdr = snaps[i]
		}
	}
	head := kmsg.NewPtrMetadataResponse()
	head.Version = r.version
	head.AuthorizedOperations = noAuthorizedOps
	head.Brokers = presentedBrokers(r)
	if def != nil {
		head.ControllerID = r.presenter(def).peerFor(hdr.resp.ControllerID)
	} else {
		head.ControllerID = -1
	}
	head.ClusterID = r.clusterID(hdr.resp.ClusterID)

	blocks := make([]*metaBlock, len(snaps))
	size := 0
	for i, be := range set.sorted {
		blocks[i] = snaps[i].block(r, be, r.presenter(be))
		size += len(blocks[i].elems)
	}
	emptyArr, suffix := metaSplice(r.version)
	buf := getBuffer(0)
	b := appendResponse(buf.b[:0], head, r.corr)
	tail := append([]byte(nil), b[len(b)-suffix:]...)
	b = b[:len(b)-suffix-emptyArr]
	if need := len(b) + 5 + size + suffix; cap(b) < need {
		b = append(make([]byte, 0, need), b...)
	}
	authz := r.authzOn()
	n := 0
	for _, bl := range blocks {
		n += len(bl.ends)
	}
	arrAt := len(b)
	b = appendArrayLen(b, r.version >= 9, n)
	if !authz {
		for _, bl := range blocks {
			b = append(b, bl.elems...)
		}
	} else {
		// Leave out the topics the principal cannot Describe (Kafka).
		kept := 0
		for _, bl := range blocks {
			from := 0
			for i, end := range bl.ends {
				if name := bl.names[i]; name == "" || r.allowsQuiet(opDescribe, resTopic, name) {
					b = append(b, bl.elems[from:end]...)
					kept++
				}
				from = end
			}
		}
		if kept != n {
			// Rewrite the count; its width may shrink, so move the entries.
			var cnt [binary.MaxVarintLen64]byte
			w := appendArrayLen(cnt[:0], r.version >= 9, kept)
			old := arrayLenWidth(r.version >= 9, n)
			copy(b[arrAt:], w)
			if old != len(w) {
				b = append(b[:arrAt+len(w)], b[arrAt+old:]...)
			}
		}
	}
	b = append(b, tail...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	buf.b = b
	return buf
}

// appendArrayLen appends an array length: a compact (uvarint n+1) one in
// flexible versions, else an int32.
func appendArrayLen(b []byte, flexible bool, n int) []byte {
	if flexible {
		return binary.AppendUvarint(b, uint64(n)+1)
	}
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// arrayLenWidth is how many bytes appendArrayLen writes for n.
func arrayLenWidth(flexible bool, n int) int {
	if !flexible {
		return 4
	}
	var tmp [binary.MaxVarintLen64]byte
	return binary.PutUvarint(tmp[:], uint64(n)+1)
}

// topicsChanged passes on that a client changed the topics of these
// backends through this peer (Config.TopicsChanged), once per cluster
// however many topics one request named, so the other peers refresh their
// snapshot.
func (s *Server) topicsChanged(bes ...*Backend) {
	if s.cfg.TopicsChanged == nil {
		return
	}
	for i, be := range bes {
		if !slices.Contains(bes[:i], be) {
			s.cfg.TopicsChanged(be.Name())
		}
	}
}

// partFailure is the answer to a split part whose broker failed or could
// not be dialed: the family's retriable failure (failedAnswer), or, for
// Metadata, the cluster's last snapshot however old (staleMetadata).
func partFailure(pt part) kmsg.Response {
	if fa := failedAnswer(pt.failReq()); fa != nil {
		return fa
	}
	return staleMetadata(pt)
}

// staleMetadata answers a Metadata part whose cluster cannot be reached
// from the cluster's last snapshot, even a stale one, instead of closing
// the client's connection: its clients keep the leaders they knew (their
// requests to them are answered retriably until the cluster is back), a
// named topic the snapshot lacks is LEADER_NOT_AVAILABLE (retriable), and
// a client that was about to produce does not take a closed connection for
// a fatal error (franz-go fails buffered records when a metadata load
// meets one). The snapshot is copied: the merge rewrites what it is given.
// nil when the part is not Metadata or the cluster has no snapshot yet.
func staleMetadata(pt part) kmsg.Response {
	req, ok := pt.req.(*kmsg.MetadataRequest)
	if !ok || pt.t.be == nil {
		return nil
	}
	snap := pt.t.be.snap.Load()
	if snap == nil {
		return nil
	}
	src := snap.resp
	resp := kmsg.NewPtrMetadataResponse()
	resp.Brokers = slices.Clone(src.Brokers)
	resp.ClusterID, resp.ControllerID = src.ClusterID, src.ControllerID
	copyTopic := func(t *kmsg.MetadataResponseTopic) kmsg.MetadataResponseTopic {
		c := *t
		c.Partitions = slices.Clone(t.Partitions)
		for j := range c.Partitions {
			p := &c.Partitions[j]
			p.Replicas, p.ISR, p.OfflineReplicas = slices.Clone(p.Replicas), slices.Clone(p.ISR), slices.Clone(p.OfflineReplicas)
		}
		return c
	}
	if req.Topics == nil || (req.GetVersion() == 0 && len(req.Topics) == 0) {
		for i := range src.Topics {
			resp.Topics = append(resp.Topics, copyTopic(&src.Topics[i]))
		}
		return resp
	}
	for _, t := range req.Topics {
		if t.Topic != nil {
			if i, ok := snap.index[*t.Topic]; ok {
				resp.Topics = append(resp.Topics, copyTopic(&src.Topics[i]))
				continue
			}
		}
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic, mt.TopicID, mt.ErrorCode = t.Topic, t.TopicID, kerr.LeaderNotAvailable.Code
		resp.Topics = append(resp.Topics, mt)
	}
	return resp
}
