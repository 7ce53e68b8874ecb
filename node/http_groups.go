package node

// The admin API's consumer groups (issue 10 "Interface"): GET /v1/groups
// and GET /v1/groups/{group}. Both read through the loopback Kafka client
// (groups.go), so they show the virtual cluster clients see: groups of
// every backend cluster merged, offsets virtual across a migration. The
// group's latest offset reset comes from the replicated state.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// backendUnavailable is the answer when the loopback client cannot read
// what a group view needs.
func backendUnavailable(format string, args ...any) error {
	return &httpError{http.StatusServiceUnavailable, fmt.Sprintf(format, args...)}
}

func (n *Node) getGroups(w http.ResponseWriter, r *http.Request) error {
	cl, _, err := n.loopbackClients()
	if err != nil {
		return backendUnavailable("%v", err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), loopbackTimeout)
	defer cancel()
	groups, errs := listVirtualGroups(ctx, cl)
	if len(groups) == 0 && len(errs) > 0 {
		return backendUnavailable("cannot list the groups: %s", strings.Join(errs, "; "))
	}
	// Errors: some brokers did not answer, the list may miss their groups
	// (left out when every one answered).
	writeJSON(w, http.StatusOK, adminapi.GroupList{Groups: groups, Errors: errs})
	return nil
}

// listVirtualGroups asks every broker the proxy presents (ListGroups; the proxy
// merges the backend clusters' lists) and answers the groups sorted by
// name and the brokers' errors. The request is built here rather than
// through kadm.ListGroups to keep the group type (v5+).
func listVirtualGroups(ctx context.Context, cl *kgo.Client) ([]adminapi.GroupListing, []string) {
	req := kmsg.NewPtrListGroupsRequest()
	seen := map[string]adminapi.GroupListing{}
	var errs []string
	for _, sh := range cl.RequestSharded(ctx, req) {
		err := sh.Err
		if err == nil {
			resp := sh.Resp.(*kmsg.ListGroupsResponse)
			err = kerr.ErrorForCode(resp.ErrorCode)
			if err == nil {
				for _, g := range resp.Groups {
					seen[g.Group] = adminapi.GroupListing{Group: g.Group, State: g.GroupState, ProtocolType: g.ProtocolType, Type: strings.ToLower(g.GroupType)}
				}
			}
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("broker %d: %v", sh.Meta.NodeID, err))
		}
	}
	out := make([]adminapi.GroupListing, 0, len(seen))
	for _, g := range seen {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b adminapi.GroupListing) int { return strings.Compare(a.Group, b.Group) })
	slices.Sort(errs)
	return out, errs
}

func (n *Node) getGroup(w http.ResponseWriter, r *http.Request) error {
	group := r.PathValue("group")
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	adm, err := n.loopbackAdmin()
	if err != nil {
		return backendUnavailable("%v", err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), loopbackTimeout)
	defer cancel()
	v, err := describeGroup(ctx, adm, group)
	if err != nil {
		return err
	}
	if reset, ok := st.OffsetReset(group); ok {
		v.OffsetReset = reset
	}
	if v.State == "Dead" && len(v.Members) == 0 && len(v.Topics) == 0 && v.OffsetsError == "" && v.OffsetReset == nil {
		return notFound("group %q does not exist (no members, no committed offsets); GET /v1/groups lists the groups", group)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// describeGroup reads one group through the loopback client: its state
// and members (ConsumerGroupDescribe for a KIP-848 group, DescribeGroups
// for a classic one), its committed offsets and the log end offsets of
// those partitions. The committed offsets may be unavailable for a moment
// (a reset fencing the group): the view then says why instead of failing.
func describeGroup(ctx context.Context, adm *kadm.Client, group string) (*adminapi.Group, error) {
	v := &adminapi.Group{Group: group, Members: []adminapi.GroupMember{}, Topics: []adminapi.GroupTopic{}}
	assigned := map[string][]int32{}
	// KIP-848 first: a classic group answers GROUP_ID_NOT_FOUND there
	// ("not a consumer group"), a broker without the API UNSUPPORTED_VERSION.
	cgs, err := adm.DescribeConsumerGroups(ctx, group)
	if cg, ok := cgs[group]; err == nil && ok && cg.Err == nil && cg.State != "" && cg.State != "Dead" {
		v.Type, v.State, v.Protocol = fsm.ProtocolConsumer, cg.State, cg.AssignorName
		v.ProtocolType = "consumer"
		for _, m := range cg.Members {
			gm := adminapi.GroupMember{MemberID: m.MemberID, InstanceID: deref(m.InstanceID), ClientID: m.ClientID, ClientHost: m.ClientHost, Assignment: []adminapi.TopicPartitions{}}
			for _, tp := range m.Assignment.Sorted() {
				gm.Assignment = append(gm.Assignment, adminapi.TopicPartitions{Topic: tp.Topic, Partitions: tp.Partitions})
				assigned[tp.Topic] = append(assigned[tp.Topic], tp.Partitions...)
			}
			v.Members = append(v.Members, gm)
		}
	} else {
		dgs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return nil, backendUnavailable("cannot describe group %q: %v", group, err)
		}
		dg, ok := dgs[group]
		if !ok {
			return nil, backendUnavailable("describing group %q answered nothing for it", group)
		}
		if dg.Err != nil && !errors.Is(dg.Err, kerr.GroupIDNotFound) {
			return nil, backendUnavailable("cannot describe group %q: %v", group, dg.Err)
		}
		v.Type, v.State, v.ProtocolType, v.Protocol = fsm.ProtocolClassic, dg.State, dg.ProtocolType, dg.Protocol
		if dg.Err != nil {
			v.State = "Dead"
		}
		for _, m := range dg.Members {
			gm := adminapi.GroupMember{MemberID: m.MemberID, InstanceID: deref(m.InstanceID), ClientID: m.ClientID, ClientHost: m.ClientHost, Assignment: []adminapi.TopicPartitions{}}
			if c, ok := m.Assigned.AsConsumer(); ok {
				for _, t := range c.Topics {
					ps := slices.Sorted(slices.Values(t.Partitions))
					gm.Assignment = append(gm.Assignment, adminapi.TopicPartitions{Topic: t.Topic, Partitions: ps})
					assigned[t.Topic] = append(assigned[t.Topic], ps...)
				}
				slices.SortFunc(gm.Assignment, func(a, b adminapi.TopicPartitions) int { return strings.Compare(a.Topic, b.Topic) })
			}
			v.Members = append(v.Members, gm)
		}
	}

	octx, cancel := context.WithTimeout(ctx, loopbackOffsetsTimeout)
	committed, err := adm.FetchOffsets(octx, group)
	cancel()
	if err != nil {
		v.OffsetsError = fmt.Sprintf("cannot read the committed offsets: %v", err)
		if r, ok := fencingHint(err); ok {
			v.OffsetsError += r
		}
		committed = nil
	}
	// The partitions shown: every committed one and every assigned one.
	parts := map[string]map[int32]*adminapi.GroupPartition{}
	at := func(t string, p int32) *adminapi.GroupPartition {
		if parts[t] == nil {
			parts[t] = map[int32]*adminapi.GroupPartition{}
		}
		gp := parts[t][p]
		if gp == nil {
			gp = &adminapi.GroupPartition{Partition: p, Committed: -1, LogEndOffset: -1}
			parts[t][p] = gp
		}
		return gp
	}
	committed.Each(func(o kadm.OffsetResponse) {
		gp := at(o.Topic, o.Partition)
		if o.Err != nil {
			gp.Error = o.Err.Error()
			return
		}
		if o.At >= 0 {
			gp.Committed, gp.Metadata = o.At, o.Metadata
		}
	})
	for t, ps := range assigned {
		for _, p := range ps {
			at(t, p)
		}
	}
	if len(parts) > 0 {
		topics := make([]string, 0, len(parts))
		for t := range parts {
			topics = append(topics, t)
		}
		ends, err := adm.ListEndOffsets(ctx, topics...)
		if err != nil && v.OffsetsError == "" {
			v.OffsetsError = fmt.Sprintf("cannot list the log end offsets: %v", err)
		}
		ends.Each(func(o kadm.ListedOffset) {
			gp, ok := parts[o.Topic][o.Partition]
			if !ok {
				return
			}
			if o.Err != nil {
				gp.Error = o.Err.Error()
				return
			}
			gp.LogEndOffset = o.Offset
		})
	}
	for t, ps := range parts {
		gt := adminapi.GroupTopic{Topic: t, Partitions: make([]adminapi.GroupPartition, 0, len(ps))}
		for _, gp := range ps {
			if gp.Committed >= 0 && gp.LogEndOffset >= 0 {
				lag := max(0, gp.LogEndOffset-gp.Committed)
				gp.Lag = &lag
				gt.Lag += lag
			}
			gt.Partitions = append(gt.Partitions, *gp)
		}
		slices.SortFunc(gt.Partitions, func(a, b adminapi.GroupPartition) int { return int(a.Partition) - int(b.Partition) })
		v.Topics = append(v.Topics, gt)
	}
	slices.SortFunc(v.Topics, func(a, b adminapi.GroupTopic) int { return strings.Compare(a.Topic, b.Topic) })
	return v, nil
}

// fencingHint explains an offset fetch refused while a reset fences the
// group.
func fencingHint(err error) (string, bool) {
	if errors.Is(err, kerr.CoordinatorLoadInProgress) || errors.Is(err, context.DeadlineExceeded) {
		return " (an offset reset may be fencing the group: retry in a few seconds)", true
	}
	return "", false
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
