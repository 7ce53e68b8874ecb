package kafka

// ConsumerGroupHeartbeat (key 68): v0–v1 (KIP-848), as kmsg and every
// backend support.
//
// In the KIP-848 protocol the coordinator assigns partitions, by topic id,
// to the topics it knows. A group whose subscribed topics live on several
// clusters therefore cannot be one backend group: the proxy keeps one
// backend membership per cluster holding subscribed topics (a "leg"), all
// under the member id the client knows, and presents their union.
//
//   - The legs are the clusters the subscribed topic names route to (the
//     group's home cluster when none route; every cluster for a regex
//     subscription, keeping from each the topics routed to it). Each leg
//     gets the heartbeat with the subscribed names routed to it, the owned
//     partitions of its topics with their ids translated to its own, and
//     its own member epoch; it is sent to the group's coordinator on that
//     cluster. A cluster newly subscribed is joined (epoch 0, full fields
//     as last sent), one no longer subscribed is left (epoch -1).
//   - The answer merges the legs': the error of any (a fencing error
//     first), the shortest heartbeat interval, and, when any leg changed
//     it or an id could not be presented before, the full assignment
//     (every leg's, ids made virtual).
//   - With one leg the member epoch is the leg's, so a single-cluster
//     group is the backend's group as it is. Once a member has had two
//     legs the proxy presents its own epoch (from 2^30, bumped whenever a
//     leg's epoch moves) and keeps the last few presented epochs with the
//     leg epochs they stood for: OffsetCommit and OffsetFetch v9 name the
//     member epoch, and their hooks (commitMember848, fetchMember848) send
//     each cluster the leg epoch of the epoch the client names.
//
// The member table lives on the peer that serves the group's heartbeats
// and commits (the presented coordinator): one bounded LRU per server,
// entries expiring member848TTL after their last heartbeat (longer than
// any session timeout Kafka allows), dropped on a leave or a fencing
// error. A member this peer does not know (another peer served it, or the
// peer restarted) is answered FENCED_MEMBER_EPOCH and rejoins. When one
// leg forgets the member (UNKNOWN_MEMBER_ID) the client rejoins under a
// new id, and the proxy leaves the other legs itself (leaveOthers).
//
// While an offset reset holds the group, a join (epoch 0) is answered
// COORDINATOR_LOAD_IN_PROGRESS (group_reset.go).
//
// v0 has the coordinator choose the member id; the proxy chooses it then
// (every leg must share it), as v1 clients do themselves.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	// member848TTL drops a member not heard from for this long; Kafka's
	// largest session timeout (group.consumer.max.session.timeout.ms) is
	// one minute by default, so its legs are gone by then too.
	member848TTL = 5 * time.Minute
	// member848Protect keeps a full table from evicting a member that
	// heartbeated this recently: a flood of joins is refused instead
	// (GROUP_MAX_SIZE_REACHED).
	member848Protect = time.Minute
	// epoch848Base is the first epoch the proxy presents for a member with
	// several legs: above what a backend gives, so the epoch a client sees
	// never goes back when a member gains its second leg.
	epoch848Base = 1 << 30
	// epoch848History bounds the presented epochs a member remembers for
	// commits that race a heartbeat.
	epoch848History = 16
	// epoch848Unmapped is sent for an epoch the proxy no longer knows:
	// larger than any member's, so the backend answers STALE_MEMBER_EPOCH
	// and the client heartbeats before it commits again.
	epoch848Unmapped = math.MaxInt32
)

// member848Key names a member of a KIP-848 group.
type member848Key struct{ group, member string }

// leg848 is one backend membership of a member.
type leg848 struct {
	be    *Backend
	epoch int32 // the backend's member epoch, 0 until it joined
	// assigned is the leg's last full assignment, by the cluster's ids.
	assigned map[[16]byte][]int32
}

// epochs848 is a presented epoch and the leg epochs it stands for.
type epochs848 struct {
	presented int32
	legs      map[string]int32 // by cluster name
}

// member848 is the proxy's side of one member.
type member848 struct {
	mu   sync.Mutex
	id   string
	host string
	// What the client last sent in full: a joining leg needs it, and the
	// client may leave it out of later heartbeats (KIP-848 keepalives).
	subscribed []string
	regex      *string
	instanceID *string
	rackID     *string
	assignor   *string
	rebalance  int32

	legs      map[string]*leg848 // by cluster name
	multi     bool               // ever had two legs: the epoch is the proxy's
	presented int32
	history   []epochs848 // oldest first
	// sent is the assignment last presented, by virtual ids.
	sent []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic
}

// newMembers848 is the member table of a server.
func newMembers848(size int) *lru[member848Key, *member848] {
	return newLRU[member848Key, *member848](size, member848TTL, member848Protect, nil)
}

// legPlan is one part of a heartbeat: the request for a leg and whether
// it leaves that leg.
type legPlan struct {
	be      *Backend
	req     *kmsg.ConsumerGroupHeartbeatRequest
	leaving bool
}

func handleConsumerGroupHeartbeat(r *request) error {
	kreq, err := decodeRequest(r)
	if err != nil {
		return err
	}
	req := kreq.(*kmsg.ConsumerGroupHeartbeatRequest)
	if len(r.set.sorted) == 0 {
		return errNoCluster
	}
	if req.MemberEpoch == 0 && r.held(req.Group) {
		// An offset reset holds the group: joins wait (group_reset.go).
		return r.c.respond(r, r.start, heartbeatError(req, kerr.CoordinatorLoadInProgress.Code, heldMessage))
	}
	s := r.c.s
	key := member848Key{req.Group, req.MemberID}
	var m *member848
	switch {
	case req.MemberEpoch == 0:
		if req.MemberID == "" {
			key.member = newMemberID()
		}
		m = &member848{id: key.member, host: r.c.clientHost, legs: map[string]*leg848{}}
		old, _ := s.kip848.get(key)
		if !s.kip848.put(key, m) {
			return r.c.respond(r, r.start, heartbeatError(req, kerr.GroupMaxSizeReached.Code, "too many consumer group members on this proxy peer"))
		}
		if old != nil {
			// A rejoin: legs it drops are left below.
			old.mu.Lock()
			for n, l := range old.legs {
				m.legs[n] = &leg848{be: l.be, epoch: l.epoch}
			}
			old.mu.Unlock()
		}
	case req.MemberEpoch < 0:
		m, _ = s.kip848.get(key)
		s.kip848.remove(key)
		if m == nil {
			// Unknown here: the home cluster answers for it.
			m = &member848{id: req.MemberID, legs: map[string]*leg848{}}
			be := r.home(req.Group)
			if be == nil {
				return errNoCluster
			}
			m.legs[be.Name()] = &leg848{be: be}
		}
	default:
		m, _ = s.kip848.get(key)
		if m == nil {
			return r.c.respond(r, r.start, heartbeatError(req, kerr.FencedMemberEpoch.Code, "this proxy peer does not know the member; rejoin"))
		}
	}

	m.mu.Lock()
	plans, code := m.plan(r, req)
	m.mu.Unlock()
	if code != 0 {
		s.kip848.remove(key)
		return r.c.respond(r, r.start, heartbeatError(req, code, "member epoch unknown to this proxy peer; rejoin"))
	}
	parts := make([]part, len(plans))
	for i, p := range plans {
		parts[i] = part{t: r.coordinator(p.be, coordinatorGroup, req.Group), req: p.req}
	}
	return r.c.scatter(r, r.start, parts, func(resps []kmsg.Response) kmsg.Response {
		m.mu.Lock()
		defer m.mu.Unlock()
		out, fenced := m.merge(r, req, plans, resps)
		if fenced {
			s.kip848.remove(key)
		}
		return out
	})
}

// plan builds the leg requests for req. Called with m.mu held. A non-zero
// code refuses the heartbeat.
func (m *member848) plan(r *request, req *kmsg.ConsumerGroupHeartbeatRequest) ([]legPlan, int16) {
	if req.MemberEpoch < 0 {
		var plans []legPlan
		for _, l := range m.sortedLegs(r) {
			sub := *req
			sub.Topics, sub.SubscribedTopicNames = nil, nil
			plans = append(plans, legPlan{be: l.be, req: &sub, leaving: true})
		}
		return plans, 0
	}
	if req.MemberEpoch > 0 && !m.knows(req.MemberEpoch) {
		return nil, kerr.FencedMemberEpoch.Code
	}
	// What the client sends in full is kept for legs that join later.
	if req.SubscribedTopicNames != nil || req.SubscribedTopicRegex != nil {
		m.subscribed = slices.Clone(req.SubscribedTopicNames)
		m.regex = req.SubscribedTopicRegex
	}
	if req.InstanceID != nil {
		m.instanceID = req.InstanceID
	}
	if req.RackID != nil {
		m.rackID = req.RackID
	}
	if req.ServerAssignor != nil {
		m.assignor = req.ServerAssignor
	}
	if req.RebalanceTimeoutMillis >= 0 {
		m.rebalance = req.RebalanceTimeoutMillis
	}

	want := m.legsWanted(r, req.Group)
	var plans []legPlan
	for _, be := range want {
		l := m.legs[be.Name()]
		sub := *req
		sub.MemberID = m.id
		sub.SubscribedTopicNames = m.namesOn(r, be, req.SubscribedTopicNames)
		if l == nil || l.epoch == 0 || req.MemberEpoch == 0 {
			// (Re)joining this leg: full fields, no owned partitions.
			sub.MemberEpoch = 0
			sub.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
			sub.SubscribedTopicNames = m.namesOn(r, be, m.subscribed)
			if sub.SubscribedTopicNames == nil {
				sub.SubscribedTopicNames = []string{}
			}
			if r.version >= 1 {
				sub.SubscribedTopicRegex = m.regex
			}
			sub.InstanceID, sub.RackID, sub.ServerAssignor = m.instanceID, m.rackID, m.assignor
			sub.RebalanceTimeoutMillis = m.rebalance
			if l == nil {
				if req.MemberEpoch != 0 {
					// A leg added to a live member: its epoch is the
					// proxy's from now on, so it never goes back.
					m.multi = true
				}
				l = &leg848{be: be}
				m.legs[be.Name()] = l
			}
			l.epoch, l.assigned = 0, nil
		} else {
			sub.MemberEpoch = l.epoch
			sub.Topics = ownedOn(r, be, req.Topics)
		}
		plans = append(plans, legPlan{be: be, req: &sub})
	}
	// Legs no longer subscribed through are left.
	for _, l := range m.sortedLegs(r) {
		if slices.Contains(want, l.be) {
			continue
		}
		sub := *req
		sub.MemberID, sub.MemberEpoch = m.id, -1
		sub.Topics, sub.SubscribedTopicNames, sub.SubscribedTopicRegex = nil, nil, nil
		plans = append(plans, legPlan{be: l.be, req: &sub, leaving: true})
	}
	if len(want) > 1 {
		m.multi = true
	}
	return plans, 0
}

// knows reports whether epoch is one this member was presented recently.
func (m *member848) knows(epoch int32) bool {
	if epoch == m.presented {
		return true
	}
	for _, h := range m.history {
		if h.presented == epoch {
			return true
		}
	}
	return false
}

// legsWanted are the clusters the member's subscription needs, in the
// backend set's order: those its topic names route to, every cluster for
// a regex, else the group's home cluster.
func (m *member848) legsWanted(r *request, group string) []*Backend {
	var out []*Backend
	for _, be := range r.set.sorted {
		if m.regex != nil && *m.regex != "" {
			out = append(out, be)
			continue
		}
		for _, n := range m.subscribed {
			if r.route(n) == be {
				out = append(out, be)
				break
			}
		}
	}
	if len(out) == 0 {
		if be := r.home(group); be != nil {
			out = append(out, be)
		}
	}
	return out
}

// sortedLegs lists m's legs in the backend set's order (legs on clusters
// no longer defined last, by name).
func (m *member848) sortedLegs(r *request) []*leg848 {
	out := make([]*leg848, 0, len(m.legs))
	for _, l := range m.legs {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b *leg848) int {
		ia, ib := slices.Index(r.set.sorted, a.be), slices.Index(r.set.sorted, b.be)
		if ia != ib {
			if ia < 0 {
				return 1
			}
			if ib < 0 {
				return -1
			}
			return ia - ib
		}
		return bytes.Compare([]byte(a.be.Name()), []byte(b.be.Name()))
	})
	return out
}

// namesOn keeps the topic names routed to be; nil stays nil ("unchanged").
func (m *member848) namesOn(r *request, be *Backend, names []string) []string {
	if names == nil {
		return nil
	}
	out := []string{}
	for _, n := range names {
		if r.route(n) == be {
			out = append(out, n)
		}
	}
	return out
}

// ownedOn keeps the owned partitions of topics routed to be, their virtual
// ids swapped for be's; nil stays nil ("unchanged"). An id the proxy
// cannot place is left out.
func ownedOn(r *request, be *Backend, topics []kmsg.ConsumerGroupHeartbeatRequestTopic) []kmsg.ConsumerGroupHeartbeatRequestTopic {
	if topics == nil {
		return nil
	}
	out := []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	for _, t := range topics {
		tbe, name := r.resolveVID(t.TopicID)
		if tbe != be {
			continue
		}
		real, ok := be.topicID(name)
		if !ok {
			be.TriggerRefresh()
			continue
		}
		t.TopicID = real
		out = append(out, t)
	}
	return out
}

// fencing reports whether code means the member must rejoin.
func fencing(code int16) bool {
	return code == kerr.FencedMemberEpoch.Code || code == kerr.UnknownMemberID.Code ||
		code == kerr.UnreleasedInstanceID.Code || code == kerr.FencedInstanceID.Code
}

// merge folds the legs' answers into the client's. Called with m.mu held.
// fenced reports that the member is gone (a leave, or a fencing error).
func (m *member848) merge(r *request, req *kmsg.ConsumerGroupHeartbeatRequest, plans []legPlan, resps []kmsg.Response) (kmsg.Response, bool) {
	out := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	out.MemberID = kmsg.StringPtr(m.id)
	var code int16
	var msg *string
	changed := false
	for i, x := range resps {
		resp := x.(*kmsg.ConsumerGroupHeartbeatResponse)
		p := plans[i]
		out.ThrottleMillis = max(out.ThrottleMillis, resp.ThrottleMillis)
		if p.leaving {
			// Left, or given up on: the cluster expires a member that
			// failed to leave after its session timeout.
			delete(m.legs, p.be.Name())
			if resp.ErrorCode == kerr.UnknownMemberID.Code {
				continue // already gone from that cluster
			}
		}
		if resp.ErrorCode != 0 {
			if code == 0 || fencing(resp.ErrorCode) && !fencing(code) {
				code, msg = resp.ErrorCode, resp.ErrorMessage
			}
			if resp.ErrorCode == kerr.NotCoordinator.Code || resp.ErrorCode == kerr.CoordinatorNotAvailable.Code {
				r.c.s.setCoordinator(p.be, coordinatorGroup, req.Group, -1)
			}
			continue
		}
		if p.leaving {
			continue
		}
		if resp.HeartbeatIntervalMillis > 0 && (out.HeartbeatIntervalMillis == 0 || resp.HeartbeatIntervalMillis < out.HeartbeatIntervalMillis) {
			out.HeartbeatIntervalMillis = resp.HeartbeatIntervalMillis
		}
		l := m.legs[p.be.Name()]
		if l == nil || resp.MemberEpoch < 0 {
			continue
		}
		l.epoch = resp.MemberEpoch
		if resp.Assignment != nil {
			l.assigned = map[[16]byte][]int32{}
			for _, t := range resp.Assignment.Topics {
				l.assigned[t.TopicID] = append(l.assigned[t.TopicID], t.Partitions...)
			}
			changed = true
		}
	}
	if req.MemberEpoch < 0 {
		out.MemberEpoch = req.MemberEpoch
		if code != 0 && !fencing(code) {
			out.ErrorCode, out.ErrorMessage = code, msg
		}
		return out, true
	}
	m.present()
	if code != 0 {
		out.ErrorCode, out.ErrorMessage = code, msg
		if code == kerr.UnknownMemberID.Code {
			m.leaveOthers(r.c.s, req.Group, plans, resps)
		}
		return out, fencing(code)
	}
	out.MemberEpoch = m.presented
	if a := m.assignment(r); changed || req.MemberEpoch == 0 || !sameAssignment(a, m.sent) {
		m.sent = a
		out.Assignment = &kmsg.ConsumerGroupHeartbeatResponseAssignment{Topics: a}
	}
	return out, false
}

// present sets the epoch the client sees from the legs' and remembers it.
// Called with m.mu held.
func (m *member848) present() {
	legs := make(map[string]int32, len(m.legs))
	for n, l := range m.legs {
		legs[n] = l.epoch
	}
	switch {
	case !m.multi:
		for _, e := range legs {
			m.presented = e
		}
	case len(m.history) > 0 && sameEpochs(m.history[len(m.history)-1].legs, legs):
		return
	default:
		m.presented = max(m.presented+1, epoch848Base)
	}
	if n := len(m.history); n > 0 && m.history[n-1].presented == m.presented {
		m.history[n-1].legs = legs
		return
	}
	if len(m.history) >= epoch848History {
		m.history = slices.Delete(m.history, 0, 1)
	}
	m.history = append(m.history, epochs848{presented: m.presented, legs: legs})
}

func sameEpochs(a, b map[string]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// assignment is the union of the legs' assignments by virtual ids, sorted.
// A topic whose id the proxy cannot name yet is left out (its cluster's
// metadata is refreshed) and presented once it can. Called with m.mu held.
func (m *member848) assignment(r *request) []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic {
	out := []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{}
	for _, l := range m.legs {
		for id, ps := range l.assigned {
			name, ok := l.be.topicName(id)
			if !ok {
				l.be.TriggerRefresh()
				continue
			}
			if r.route(name) != l.be {
				continue // a regex leg's topic routed elsewhere
			}
			vid := id
			r.c.s.presentTopicID(name, &vid)
			t := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
			t.TopicID, t.Partitions = vid, slices.Sorted(slices.Values(ps))
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic) int {
		return bytes.Compare(a.TopicID[:], b.TopicID[:])
	})
	return out
}

func sameAssignment(a, b []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic) bool {
	return slices.EqualFunc(a, b, func(x, y kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic) bool {
		return x.TopicID == y.TopicID && slices.Equal(x.Partitions, y.Partitions)
	})
}

// legEpoch is the epoch to send cluster be for the epoch the client named:
// ok false when the member has no leg there. Called with m.mu held.
func (m *member848) legEpoch(be *Backend, epoch int32) (int32, bool) {
	l := m.legs[be.Name()]
	if l == nil {
		return 0, false
	}
	if !m.multi {
		return epoch, true // the leg's own epoch
	}
	for i := len(m.history) - 1; i >= 0; i-- {
		if h := m.history[i]; h.presented == epoch {
			if e, ok := h.legs[be.Name()]; ok {
				return e, true
			}
			break
		}
	}
	return epoch848Unmapped, true
}

// leaveOthers takes the member out of the legs that still hold it after
// another leg forgot it (UNKNOWN_MEMBER_ID): the client rejoins under a
// new member id (KIP-848), and those legs would otherwise keep the old
// one's partitions, unconsumed, until its session times out there. The
// leaves go on the proxy's own connections, in the background, bounded by
// coordinatorTimeout. (A fenced member keeps its id and rejoins every leg
// itself, so no leave may race that rejoin.) Called with m.mu held.
func (m *member848) leaveOthers(s *Server, group string, plans []legPlan, resps []kmsg.Response) {
	for i, x := range resps {
		p := plans[i]
		if p.leaving || fencing(x.(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode) {
			continue
		}
		be := p.be
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Group, req.MemberID, req.MemberEpoch = group, m.id, -1
		if m.instanceID != nil {
			req.MemberEpoch = -2
			req.InstanceID = m.instanceID
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), coordinatorTimeout)
			defer cancel()
			node, err := s.coordinator(ctx, be, coordinatorGroup, group)
			if err == nil {
				_, err = be.request(ctx, node, req)
			}
			if err != nil {
				s.log.Debug("leaving a KIP-848 member's other cluster failed", "cluster", be.Name(), "group", group, "err", err)
			}
		}()
	}
}

// heartbeatError is the proxy's own error answer to req.
func heartbeatError(req *kmsg.ConsumerGroupHeartbeatRequest, code int16, msg string) *kmsg.ConsumerGroupHeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	resp.ErrorCode, resp.ErrorMessage = code, kmsg.StringPtr(msg)
	resp.MemberEpoch = -1
	return resp
}

// newMemberID chooses a member id as a coordinator does (v0 clients).
func newMemberID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// member848 is the KIP-848 member a commit or offset fetch names, or nil.
func (s *Server) member848(group string, member *string) *member848 {
	if member == nil || *member == "" {
		return nil
	}
	m, _ := s.kip848.get(member848Key{group, *member})
	return m
}

// commit848 is what OffsetCommit's hooks need of a KIP-848 member.
type commit848 struct {
	m     *member848
	epoch int32 // the epoch the client named
}

// keeps reports whether the commit may go to be as the client sent it.
func (c commit848) keeps(be *Backend) bool {
	if c.m == nil {
		return true
	}
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	e, ok := c.m.legEpoch(be, c.epoch)
	return ok && e == c.epoch
}

// rewrite sets the member and epoch of a commit part for be: the leg's
// epoch where the member has a leg, a simple commit elsewhere. It reports
// false for a commit of no KIP-848 member (the caller decides).
func (c commit848) rewrite(be *Backend, sub *kmsg.OffsetCommitRequest) bool {
	if c.m == nil {
		return false
	}
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	if e, ok := c.m.legEpoch(be, c.epoch); ok {
		sub.MemberID, sub.Generation = c.m.id, e
		return true
	}
	sub.Generation, sub.MemberID, sub.InstanceID = -1, "", nil
	return true
}

// fetchMember848 sets the member epoch of an OffsetFetch group sent to
// be: the leg's epoch where the member has a leg, an admin fetch (no
// member) elsewhere. It reports whether it changed g.
func (r *request) fetchMember848(be *Backend, g kmsg.OffsetFetchRequestGroup) (kmsg.OffsetFetchRequestGroup, bool) {
	m := r.c.s.member848(g.Group, g.MemberID)
	if m == nil || be == nil {
		return g, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.legEpoch(be, g.MemberEpoch)
	if !ok {
		g.MemberID, g.MemberEpoch = nil, -1
		return g, true
	}
	if e == g.MemberEpoch {
		return g, false
	}
	g.MemberEpoch = e
	return g, true
}
