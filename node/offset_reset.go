package node

// The offset reset driver (issue 10; the replicated job is
// fsm/offset_reset.go, the data-plane hold kafka/group_reset.go). While
// this peer leads, one goroutine per reset not yet applied or failed
// moves it along:
//
//  1. pending → fencing (one Raft command). From the moment a peer applies
//     it, that peer answers the group's joins and offset fetches
//     COORDINATOR_LOAD_IN_PROGRESS.
//  2. Wait until every live peer has applied the fence (peer RPC
//     group.held), so no member can join or read offsets anywhere.
//  3. Find the group's members on every cluster that holds it (its home
//     cluster and the clusters of its topics, the previous segment of a
//     migrated topic included): classic members by DescribeGroups, KIP-848
//     members by ConsumerGroupDescribe. Record them in the job (every peer
//     then refuses their commits) and wait for the peers to apply that,
//     then remove them on the backends (LeaveGroup by member and instance
//     id; a KIP-848 leave heartbeat, epoch -1). Repeat until no cluster
//     lists a member (a join forwarded just before the fence may land).
//  4. Commit the targets as the group's offsets on every cluster that
//     holds each topic's offsets (simple commits: the group is empty
//     there now), the previous segment's cluster too while it serves
//     reads, since OffsetFetch answers the higher of the two.
//  5. Wait until every removed classic member has been told it is gone by
//     some peer (its next heartbeat, commit or sync after the removal is
//     answered UNKNOWN_MEMBER_ID, which ends its session), at most
//     resetNoticeTimeout: a session that began before the reset must not
//     be the one that receives the targets, or its refused commits would
//     make it read them twice. KIP-848 members need no wait: their
//     OffsetFetch names their member epoch, which the coordinator checks.
//  6. fencing → applied. The hold lifts; every member joins again and
//     fetches the targets.
//
// Every step is idempotent and reads only the replicated state and the
// backends, so a new leader resumes a job where its predecessor stopped.
// A job fails (the hold lifts, nothing changed) when a step before the
// first commit cannot finish within resetFenceTimeout; once this driver
// has begun committing, it retries until every target is committed, so a
// group is never left half reset by a backend that went away mid-commit.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/kafka"
)

// rpcGroupHeld asks a peer whether it has applied a group's reset fence
// (a Raft index): from then on it holds the group.
const rpcGroupHeld = "group.held"

type groupHeldRequest struct {
	Group string `json:"group"`
	Index uint64 `json:"index"`
}

type groupHeldResponse struct {
	Held bool `json:"held"`
	// Noticed are the removed members this peer told they are gone.
	Noticed []string `json:"noticed,omitempty"`
}

// handleGroupHeld answers rpcGroupHeld.
func (n *Node) handleGroupHeld(req groupHeldRequest) ([]byte, error) {
	return marshal(groupHeldResponse{Held: n.fsm.State().Index >= req.Index, Noticed: n.noticedRemoved(req.Group)})
}

func (n *Node) noticedRemoved(group string) []string {
	if dp := n.dp.Load(); dp != nil {
		return dp.srv.NoticedRemoved(group)
	}
	return nil
}

// resetFenceTimeout bounds the steps before the first commit: waiting for
// the peers to hold the group and for its members to be gone.
const resetFenceTimeout = 60 * time.Second

// resetNoticeTimeout bounds waiting for removed classic members to learn
// they are gone (their next heartbeat, seconds apart): a member that
// crashed never asks, and one that does not ask within this cannot be
// consuming.
const resetNoticeTimeout = 20 * time.Second

// errResetFailed marks an error that ends a reset as failed.
var errResetFailed = errors.New("offset reset failed")

func failReset(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errResetFailed, fmt.Sprintf(format, args...))
}

// resetter is the driver; it runs only while this peer leads.
type resetter struct {
	n   *Node
	cfg *MigrationConfig // request timeout, retry and poll intervals

	took     prometheus.Histogram
	outcomes *prometheus.CounterVec
}

func newResetter(n *Node, cfg *MigrationConfig, reg prometheus.Registerer) *resetter {
	r := &resetter{
		n: n, cfg: cfg,
		took: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchyard_offset_reset_seconds",
			Help:    "How long offset resets held their group: from the fence applied to the reset applied, on the leader that drove it.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60},
		}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_offset_resets_total",
			Help: "Offset resets this peer drove to an end, by outcome (applied, failed).",
		}, []string{"outcome"}),
	}
	reg.MustRegister(r.took, r.outcomes)
	return r
}

// run starts a driver for every reset in flight and for each one started
// later, until ctx (the leadership term) ends.
func (r *resetter) run(ctx context.Context) {
	r.n.runDrivers(ctx, r.cfg.Retry, func(st *fsm.State) []string {
		var live []string
		for _, j := range st.OffsetResets {
			if !j.State.Terminal() {
				live = append(live, j.Group)
			}
		}
		return live
	}, r.drive)
}

// drive moves one group's reset along until it ends or the term does.
func (r *resetter) drive(ctx context.Context, group string) {
	log := r.n.log.With("component", "offset-reset", "group", group)
	var committing bool    // this driver has sent a target commit
	var deadline time.Time // for the steps before the first commit
	var fencedAt time.Time // when this driver saw the fence
	lastErr := ""
	for ctx.Err() == nil {
		st := r.n.fsm.State()
		j, ok := st.OffsetReset(group)
		if !ok || j.State.Terminal() {
			return
		}
		cur := *j
		var err error
		switch cur.State {
		case fsm.ResetPending:
			_, err = r.n.applyLocal(ctx, &fsm.UpdateOffsetReset{Group: group, Created: cur.Created, State: fsm.ResetFencing, At: nowMS()})
		case fsm.ResetFencing:
			if deadline.IsZero() {
				deadline, fencedAt = time.Now().Add(resetFenceTimeout), time.Now()
			}
			err = r.fence(ctx, &cur, fencedAt, deadline, &committing)
			if err == nil {
				_, err = r.n.applyLocal(ctx, &fsm.UpdateOffsetReset{Group: group, Created: cur.Created, State: fsm.ResetApplied, At: nowMS()})
				if err == nil {
					r.took.Observe(time.Since(fencedAt).Seconds())
					r.outcomes.WithLabelValues("applied").Inc()
					log.Info("offset reset applied", "to", cur.To.String(), "partitions", len(cur.Targets), "members_removed", len(cur.Members), "held_for", time.Since(fencedAt).Round(time.Millisecond))
				}
			}
		}
		if err == nil || ctx.Err() != nil {
			lastErr = ""
			continue
		}
		if errors.Is(err, errResetFailed) && !committing {
			log.Warn("offset reset failed", "err", err)
			reason := strings.TrimPrefix(err.Error(), errResetFailed.Error()+": ")
			if _, aerr := r.n.applyLocal(ctx, &fsm.UpdateOffsetReset{Group: group, Created: cur.Created, State: fsm.ResetFailed, Error: truncate(reason, 4096), At: nowMS()}); aerr != nil && !errors.Is(aerr, fsm.ErrConflict) {
				log.Warn("cannot record the reset's failure; retrying", "err", aerr)
				sleep(ctx, r.cfg.Retry)
			} else if aerr == nil {
				r.outcomes.WithLabelValues("failed").Inc()
			}
			continue
		}
		if errors.Is(err, fsm.ErrConflict) {
			continue // the record moved under the driver: read it again
		}
		if msg := err.Error(); msg != lastErr {
			lastErr = msg
			log.Warn("offset reset step failed; retrying", "state", cur.State, "err", err)
		}
		sleep(ctx, r.cfg.Retry)
	}
}

// fence runs steps 2–4 for a fencing job.
func (r *resetter) fence(ctx context.Context, j *fsm.OffsetReset, fencedAt, deadline time.Time, committing *bool) error {
	// A peer that cannot answer holds every group once its write lease
	// has lapsed (kafka/group_reset.go), which is certain by expired: any
	// lease it holds was granted before this driver saw the fence.
	var expired time.Time
	if l := r.n.lease.l; l > 0 {
		expired = fencedAt.Add(l + leaseMargin(l))
	}
	if err := r.waitHeld(ctx, j.Group, r.n.fsm.State().Index, deadline, expired); err != nil {
		return err
	}
	st := r.n.fsm.State()
	clusters := resetClusters(st, j)
	bes := make(map[string]*kafka.Backend, len(clusters))
	for _, c := range clusters {
		be, err := r.n.migrationBackend(c)
		if err != nil {
			return r.beforeCommit(deadline, *committing, err)
		}
		bes[c] = be
	}
	for {
		if err := r.removeMembers(ctx, j, clusters, bes, deadline, expired, *committing); err != nil {
			return err
		}
		*committing = true
		err := r.commitTargets(ctx, st, j, bes)
		if err == nil {
			return r.waitNoticed(ctx, j)
		}
		if !errors.Is(err, errMembersActive) {
			return err
		}
		// A member joined between the last look and the commit: remove it
		// too (it cannot have read offsets: the group is held).
		if err := sleep(ctx, r.cfg.Poll); err != nil {
			return err
		}
	}
}

// beforeCommit turns err into a failure once the deadline has passed and
// nothing was committed yet; otherwise it is retried.
func (r *resetter) beforeCommit(deadline time.Time, committing bool, err error) error {
	if !committing && time.Now().After(deadline) {
		return failReset("%v (gave up after %v; nothing was committed, the group resumes from its old offsets)", err, resetFenceTimeout)
	}
	return err
}

// waitNoticed keeps the group held until every classic member the reset
// removed has been told so by some peer (kafka/group_reset.go: a session
// that began before the reset must end before the targets are handed
// out), or resetNoticeTimeout passes.
func (r *resetter) waitNoticed(ctx context.Context, j *fsm.OffsetReset) error {
	want := map[string]bool{}
	for _, m := range j.Members {
		if m.Protocol == fsm.ProtocolClassic {
			want[m.ID] = true
		}
	}
	deadline := time.Now().Add(resetNoticeTimeout)
	for len(want) > 0 {
		for _, m := range r.n.noticedRemoved(j.Group) {
			delete(want, m)
		}
		for _, p := range r.peerHeld(ctx, j.Group, 0, false) {
			for _, m := range p.Noticed {
				delete(want, m)
			}
		}
		if len(want) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			r.n.log.Info("offset reset: removed members never came back; applying", "component", "offset-reset", "group", j.Group, "members", sortedNames(want))
			return nil
		}
		if err := sleep(ctx, r.cfg.Poll); err != nil {
			return err
		}
	}
	return nil
}

// resetClusters lists the clusters holding the group or its targets'
// offsets: its home cluster, each topic's cluster, and the previous
// segment's cluster of a migrated topic that still serves reads.
func resetClusters(st *fsm.State, j *fsm.OffsetReset) []string {
	seen := map[string]bool{}
	if home, _ := st.GroupHome(j.Group); home != "" {
		seen[home] = true
	}
	for _, c := range offsetClusters(st, j.Topics) {
		seen[c] = true
	}
	return sortedNames(seen)
}

// offsetClusters lists the clusters that keep committed offsets of topics.
func offsetClusters(st *fsm.State, topics []string) []string {
	seen := map[string]bool{}
	for _, t := range topics {
		if c, _ := st.RouteFor(t); c != "" {
			seen[c] = true
		}
		if ch := st.Chain(t); ch != nil {
			if prev := ch.Previous(); prev != nil {
				seen[prev.Cluster] = true
			}
		}
	}
	return sortedNames(seen)
}

// waitHeld waits until every peer has applied index (and so holds the
// group). With the write lease on (expired set), every registered peer is
// asked, and one that cannot answer passes once expired is past: its
// lease has lapsed and it holds every group. With the lease off only
// live peers are asked (unsafe for a peer cut off from gossip that still
// serves clients; docs/offset-reset.md).
func (r *resetter) waitHeld(ctx context.Context, group string, index uint64, deadline, expired time.Time) error {
	for {
		waiting := r.unheldPeers(ctx, group, index, expired)
		if len(waiting) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return failReset("peers %s did not confirm holding group %q", strings.Join(capList(waiting, 20), ", "), group)
		}
		if err := sleep(ctx, r.cfg.Poll); err != nil {
			return err
		}
	}
}

func (r *resetter) unheldPeers(ctx context.Context, group string, index uint64, expired time.Time) []string {
	var out []string
	lapsed := !expired.IsZero() && !time.Now().Before(expired)
	// Every registered peer is asked: one that cannot answer passes once
	// its write lease has lapsed, and never with the lease disabled (a
	// cut-off peer keeps serving the group then, so the reset waits for it
	// and fails at its fence timeout).
	for _, p := range r.peerHeld(ctx, group, index, true) {
		if p.err != nil && lapsed {
			continue // its write lease has run out: it holds every group
		}
		if p.err != nil || !p.Held {
			why := "not yet"
			if p.err != nil {
				why = p.err.Error()
			}
			out = append(out, fmt.Sprintf("%s (%s)", p.name, why))
		}
	}
	sort.Strings(out)
	return out
}

// peerAnswer is one live peer's answer to rpcGroupHeld.
type peerAnswer struct {
	groupHeldResponse
	name string
	err  error
}

// peerHeld asks every other live peer (every registered one when all),
// in parallel, whether it holds group at index and which removed members
// it told so.
func (r *resetter) peerHeld(ctx context.Context, group string, index uint64, all bool) []peerAnswer {
	st := r.n.fsm.State()
	var mu sync.Mutex
	var out []peerAnswer
	var wg sync.WaitGroup
	for _, p := range st.Peers {
		if p.Name == r.n.cfg.Name {
			continue // the leader applied it: it proposed it
		}
		live := r.n.gossip.isLive(p.Name)
		if !live && !all {
			continue
		}
		if p.RaftAddr == "" {
			mu.Lock() // goroutines for earlier peers may be appending
			out = append(out, peerAnswer{name: p.Name, err: errors.New("no peer address")})
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func(p fsm.Peer) {
			defer wg.Done()
			timeout := r.cfg.RequestTimeout
			if !live {
				timeout = min(timeout, time.Second) // most likely stopped
			}
			rctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			a := peerAnswer{name: p.Name}
			a.err = r.n.rpc.CallPeer(rctx, p.Name, p.RaftAddr, rpcGroupHeld, groupHeldRequest{Group: group, Index: index}, &a.groupHeldResponse)
			mu.Lock()
			out = append(out, a)
			mu.Unlock()
		}(p)
	}
	wg.Wait()
	return out
}

// removeMembers records and removes the group's members on every cluster
// until none lists one.
func (r *resetter) removeMembers(ctx context.Context, j *fsm.OffsetReset, clusters []string, bes map[string]*kafka.Backend, deadline, expired time.Time, committing bool) error {
	for {
		var found []resetMemberAt
		for _, c := range clusters {
			rctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
			ms, err := describeMembers(rctx, bes[c], j.Group)
			cancel()
			if err != nil {
				return r.beforeCommit(deadline, committing, err)
			}
			found = append(found, ms...)
		}
		if len(found) == 0 {
			return nil
		}
		// Record them first, so every peer refuses their commits before
		// the backend forgets them.
		all := slices.Clone(j.Members)
		added := false
		for _, m := range found {
			if !slices.ContainsFunc(all, func(o fsm.ResetMember) bool { return o.ID == m.ID && o.Protocol == m.Protocol }) {
				all = append(all, m.ResetMember)
				added = true
			} else if m.Protocol == fsm.ProtocolConsumer {
				for i := range all {
					if all[i].ID == m.ID && all[i].Protocol == m.Protocol && m.Epoch > all[i].Epoch {
						all[i].Epoch, added = m.Epoch, true
					}
				}
			}
		}
		if len(all) > fsm.MaxResetMembers {
			return r.beforeCommit(time.Time{}, committing, failReset("group %q has more than %d members", j.Group, fsm.MaxResetMembers))
		}
		if added {
			res, err := r.n.applyLocal(ctx, &fsm.UpdateOffsetReset{Group: j.Group, Created: j.Created, State: fsm.ResetFencing, Members: all, At: nowMS()})
			if err != nil {
				return err
			}
			j.Members = all
			if err := r.waitHeld(ctx, j.Group, res.Index, deadline, expired); err != nil {
				return r.beforeCommit(deadline, committing, err)
			}
		}
		// One LeaveGroup per cluster for its classic members (a batch
		// leaves the group empty at once, with no rebalance that would
		// tell a remaining member to rejoin first); a KIP-848 member is
		// left on every cluster, since its legs may be on any.
		classic := map[*kafka.Backend][]fsm.ResetMember{}
		for _, m := range found {
			if m.Protocol == fsm.ProtocolClassic {
				classic[m.be] = append(classic[m.be], m.ResetMember)
				continue
			}
			for _, c := range clusters {
				rctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
				err := leaveConsumer(rctx, bes[c], j.Group, m.ResetMember)
				cancel()
				if err != nil {
					return r.beforeCommit(deadline, committing, err)
				}
			}
		}
		for be, ms := range classic {
			rctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
			err := leaveClassic(rctx, be, j.Group, ms)
			cancel()
			if err != nil {
				return r.beforeCommit(deadline, committing, err)
			}
		}
		if time.Now().After(deadline) && !committing {
			return failReset("group %q still lists members after removing them (%s)", j.Group, memberNames(found))
		}
		if err := sleep(ctx, r.cfg.Poll); err != nil {
			return err
		}
	}
}

func memberNames(ms []resetMemberAt) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.ID+"@"+m.be.Name())
	}
	return strings.Join(capList(s, 10), ", ")
}

// resetMemberAt is a member and the cluster that lists it.
type resetMemberAt struct {
	fsm.ResetMember
	be *kafka.Backend
}

// describeMembers lists group's members on be: KIP-848 members when the
// cluster knows it as a consumer-protocol group, else classic members.
func describeMembers(ctx context.Context, be *kafka.Backend, group string) ([]resetMemberAt, error) {
	cd := kmsg.NewPtrConsumerGroupDescribeRequest()
	cd.Groups = []string{group}
	if resp, err := be.CoordinatorRequest(ctx, group, cd, -1); err == nil {
		for _, g := range resp.(*kmsg.ConsumerGroupDescribeResponse).Groups {
			if g.Group != group || g.ErrorCode != 0 {
				continue
			}
			var out []resetMemberAt
			for _, m := range g.Members {
				rm := fsm.ResetMember{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost, Protocol: fsm.ProtocolConsumer, Epoch: m.MemberEpoch}
				if m.InstanceID != nil {
					rm.InstanceID = *m.InstanceID
				}
				out = append(out, resetMemberAt{rm, be})
			}
			return out, nil
		}
	}
	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Groups = []string{group}
	resp, err := be.CoordinatorRequest(ctx, group, dg, -1)
	if err != nil {
		return nil, fmt.Errorf("describe group %q on %s: %w", group, be.Name(), err)
	}
	var out []resetMemberAt
	for _, g := range resp.(*kmsg.DescribeGroupsResponse).Groups {
		if g.Group != group {
			continue
		}
		switch {
		case g.ErrorCode == kerr.GroupIDNotFound.Code:
			continue
		case g.ErrorCode != 0:
			return nil, fmt.Errorf("describe group %q on %s: %w", group, be.Name(), kerr.ErrorForCode(g.ErrorCode))
		}
		for _, m := range g.Members {
			rm := fsm.ResetMember{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost, Protocol: fsm.ProtocolClassic}
			if m.InstanceID != nil {
				rm.InstanceID = *m.InstanceID
			}
			out = append(out, resetMemberAt{rm, be})
		}
	}
	return out, nil
}

// leaveConsumer takes a KIP-848 member out of group on be with a leave
// heartbeat (epoch -1). A member already gone is success.
func leaveConsumer(ctx context.Context, be *kafka.Backend, group string, m fsm.ResetMember) error {
	hb := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	hb.Group, hb.MemberID, hb.MemberEpoch = group, m.ID, -1
	resp, err := be.CoordinatorRequest(ctx, group, hb, -1)
	if err != nil {
		return fmt.Errorf("remove member %q of group %q on %s: %w", m.ID, group, be.Name(), err)
	}
	switch code := resp.(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode; code {
	case 0, kerr.UnknownMemberID.Code, kerr.FencedMemberEpoch.Code, kerr.GroupIDNotFound.Code:
		return nil
	default:
		return fmt.Errorf("remove member %q of group %q on %s: %w", m.ID, group, be.Name(), kerr.ErrorForCode(code))
	}
}

// leaveClassic takes classic members out of group on be with one
// LeaveGroup (KIP-345: by member and instance id, static members too). A
// member already gone is success.
func leaveClassic(ctx context.Context, be *kafka.Backend, group string, ms []fsm.ResetMember) error {
	lg := kmsg.NewPtrLeaveGroupRequest()
	lg.Group = group
	for _, m := range ms {
		lm := kmsg.NewLeaveGroupRequestMember()
		lm.MemberID = m.ID
		if m.InstanceID != "" {
			lm.InstanceID = kmsg.StringPtr(m.InstanceID)
		}
		lm.Reason = kmsg.StringPtr("switchyard offset reset")
		lg.Members = append(lg.Members, lm)
	}
	resp, err := be.CoordinatorRequest(ctx, group, lg, -1)
	if err != nil {
		return fmt.Errorf("remove %d members of group %q on %s: %w", len(ms), group, be.Name(), err)
	}
	r := resp.(*kmsg.LeaveGroupResponse)
	ok := func(code int16) bool {
		return code == 0 || code == kerr.UnknownMemberID.Code || code == kerr.FencedInstanceID.Code || code == kerr.GroupIDNotFound.Code
	}
	if !ok(r.ErrorCode) {
		return fmt.Errorf("remove %d members of group %q on %s: %w", len(ms), group, be.Name(), kerr.ErrorForCode(r.ErrorCode))
	}
	for _, mr := range r.Members {
		if !ok(mr.ErrorCode) {
			return fmt.Errorf("remove member %q of group %q on %s: %w", mr.MemberID, group, be.Name(), kerr.ErrorForCode(mr.ErrorCode))
		}
	}
	return nil
}

// commitTargets commits every target on each cluster that keeps the
// topic's offsets.
func (r *resetter) commitTargets(ctx context.Context, st *fsm.State, j *fsm.OffsetReset, bes map[string]*kafka.Backend) error {
	byTopic := map[string]map[int32]groupOffset{}
	for _, t := range j.Targets {
		if byTopic[t.Topic] == nil {
			byTopic[t.Topic] = map[int32]groupOffset{}
		}
		byTopic[t.Topic][t.Partition] = groupOffset{offset: t.New, epoch: -1}
	}
	for _, topic := range j.Topics {
		offs := byTopic[topic]
		if len(offs) == 0 {
			continue
		}
		for _, c := range offsetClusters(st, []string{topic}) {
			be := bes[c]
			if be == nil {
				return fmt.Errorf("cluster %q of topic %q is not served on this peer", c, topic)
			}
			rctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
			err := commitOffsets(rctx, be, j.Group, topic, offs)
			cancel()
			if err != nil {
				return err
			}
		}
	}
	return nil
}
