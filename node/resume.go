package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/kafka"
)

// Resume policies (docs/regions.md, "Failover and failback"). Before a
// failover moves a cluster's routes, the leader sets where consumer groups
// resume on each route's fallback cluster, per the route's Resume:
//
//   - committed (the default): nothing; groups resume from their offsets on
//     the fallback (kept there by MirrorMaker 2 or cluster linking).
//   - latest / earliest: the group's offsets of the moved topics are
//     committed at the fallback's end / start offsets.
//   - timestamp: at the first offset whose timestamp is at or after the
//     group's last commit on the failed cluster minus resumeSafetyWindow
//     (at least once: records since then may be read twice, none skipped);
//     the end offset when no record is that recent.
//
// The groups are those the proxy saw committing the moved topics: every
// peer remembers, per group and cluster, its last forwarded commit and its
// topics (kafka/commit_log.go, soft state); the leader gathers them from
// every live peer at failover time. Commits are "simple" (generation -1),
// which the fallback accepts while the group has no members there; a group
// that already has members there, or a cluster that does not answer, is
// logged and counted and keeps its offsets (the failover is not held back:
// moving the clients matters more).

const (
	rpcResumeCommits = "resume.commits" // leader → peer: groups' last commits to a cluster

	// resumeSafetyWindow is subtracted from a group's last commit time
	// for the timestamp policy.
	resumeSafetyWindow = 60 * time.Second
	// maxResumeGroups bounds the groups a peer answers with.
	maxResumeGroups = 10_000
)

type resumeCommitsRequest struct {
	Cluster string `json:"cluster"`
}

type resumeCommitsResponse struct {
	Commits []kafka.GroupCommit `json:"commits"`
}

// groupCommits is this peer's record of groups committing to cluster.
func (n *Node) groupCommits(cluster string) []kafka.GroupCommit {
	dp := n.dp.Load()
	if dp == nil {
		return nil
	}
	out := dp.srv.GroupCommits(cluster)
	if len(out) > maxResumeGroups {
		out = out[:maxResumeGroups]
	}
	return out
}

func (n *Node) handleResumeCommits(req resumeCommitsRequest) ([]byte, error) {
	return marshal(resumeCommitsResponse{Commits: n.groupCommits(req.Cluster)})
}

// gatherCommits merges every live peer's record of groups committing to
// cluster: per group, the latest commit time and every topic.
func (n *Node) gatherCommits(ctx context.Context, st *fsm.State, cluster string) map[string]kafka.GroupCommit {
	var (
		mu  sync.Mutex
		all []kafka.GroupCommit
		wg  sync.WaitGroup
	)
	all = append(all, n.groupCommits(cluster)...)
	for _, p := range st.Peers {
		if p.Name == n.cfg.Name || p.RaftAddr == "" || !n.gossip.isLive(p.Name) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			var resp resumeCommitsResponse
			if err := n.rpc.CallPeer(rctx, p.Name, p.RaftAddr, rpcResumeCommits, resumeCommitsRequest{Cluster: cluster}, &resp); err != nil {
				n.log.Warn("failover: a peer's group commits are unknown; its groups may resume from their committed offsets", "peer", p.Name, "err", err)
				return
			}
			mu.Lock()
			all = append(all, resp.Commits...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	out := map[string]kafka.GroupCommit{}
	for _, c := range all {
		m := out[c.Group]
		m.Group = c.Group
		m.At = max(m.At, c.At)
		for _, t := range c.Topics {
			if !slices.Contains(m.Topics, t) {
				m.Topics = append(m.Topics, t)
			}
		}
		out[c.Group] = m
	}
	return out
}

// hasResumeWork reports whether some movable route of cluster has a
// policy other than committed.
func hasResumeWork(st *fsm.State, cluster string) bool {
	work := func(c string, t fsm.RouteTargets) bool {
		return t.Targets(c, cluster) && len(t.Fallback) > 0 && t.Resume != "" && t.Resume != fsm.ResumeCommitted
	}
	for _, r := range st.Routes.Topics {
		if work(r.Cluster, r.RouteTargets) {
			return true
		}
	}
	for _, r := range st.Routes.Prefixes {
		if work(r.Cluster, r.RouteTargets) {
			return true
		}
	}
	return work(st.Routes.DefaultCluster, st.Routes.Default)
}

// prepareResume applies the resume policies of cluster's movable routes on
// their fallback clusters, before a failover moves them. Failures are
// logged and counted, not returned, except a cancelled ctx.
func (n *Node) prepareResume(ctx context.Context, st *fsm.State, cluster string) error {
	if !hasResumeWork(st, cluster) {
		return nil
	}
	commits := n.gatherCommits(ctx, st, cluster)
	var errs []error
	for _, group := range sortedGroupKeys(commits) {
		gc := commits[group]
		slices.Sort(gc.Topics)
		for _, topic := range gc.Topics {
			err := n.resumeTopic(ctx, st, cluster, gc, topic)
			if err != nil {
				n.failover.resumeFailed.Inc()
				n.log.Warn("failover: group keeps its committed offsets on the fallback", "cluster", cluster, "group", group, "topic", topic, "err", err)
				errs = append(errs, err)
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(errs) > 0 {
		n.log.Warn("failover: some resume policies were not applied", "cluster", cluster, "errors", len(errs), "first", errors.Join(errs...))
	}
	return nil
}

func sortedGroupKeys(m map[string]kafka.GroupCommit) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// resumeTopic commits group's offsets of topic on the fallback its route
// moves to, per the route's policy.
func (n *Node) resumeTopic(ctx context.Context, st *fsm.State, cluster string, gc kafka.GroupCommit, topic string) error {
	routed, t := st.ConfiguredRouteTargets(topic)
	if !t.Targets(routed, cluster) || t.Resume == "" || t.Resume == fsm.ResumeCommitted {
		return nil
	}
	fallback := st.FallbackFor(t, cluster)
	if fallback == "" {
		return nil
	}
	be, err := n.migrationBackend(fallback)
	if err != nil {
		return err
	}
	parts, ok := be.Partitions(topic)
	if !ok || parts <= 0 {
		return fmt.Errorf("topic %q is not on the fallback cluster %s", topic, fallback)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var ts int64
	switch t.Resume {
	case fsm.ResumeLatest:
		ts = -1
	case fsm.ResumeEarliest:
		ts = -2
	case fsm.ResumeTimestamp:
		ts = max(gc.At-resumeSafetyWindow.Milliseconds(), 0)
	default:
		return fmt.Errorf("route of %q has resume policy %q, not one this peer knows", topic, t.Resume)
	}
	offs, err := listOffsets(rctx, be, topic, int32(parts), ts, 0)
	if err != nil {
		return err
	}
	if ts >= 0 && slices.Contains(offs, -1) {
		// No record that recent in a partition: its end.
		ends, err := listOffsets(rctx, be, topic, int32(parts), -1, 0)
		if err != nil {
			return err
		}
		for p, o := range offs {
			if o < 0 {
				offs[p] = ends[p]
			}
		}
	}
	commit := make(map[int32]groupOffset, len(offs))
	for p, o := range offs {
		commit[int32(p)] = groupOffset{offset: o, epoch: -1}
	}
	if err := commitOffsets(rctx, be, gc.Group, topic, commit); err != nil {
		return err
	}
	n.log.Info("failover: group resumes on the fallback per its route's policy", "group", gc.Group, "topic", topic, "fallback", fallback, "policy", t.Resume, "offsets", offs)
	return nil
}
