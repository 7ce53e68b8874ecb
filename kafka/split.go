package kafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// splitSpec describes a request whose topics hold partitions that must go
// to each partition's leader (ListOffsets, DeleteRecords,
// OffsetForLeaderEpoch, DescribeProducers): how to read its topics and
// partitions, build a sub-request for one target, and answer a partition
// the proxy serves itself. R is the request type, T its topic, P its
// partition and S the response.
type splitSpec[R kmsg.Request, T, P any, S kmsg.Response] struct {
	topics    []T
	topic     func(T) (string, []P)
	partition func(P) int32
	newSub    func() R
	add       func(sub R, topic string, p P)
	newLocal  func() S
	fail      func(local S, topic string, partition int32, code int16)
	merge     func([]kmsg.Response) kmsg.Response
}

// splitByLeader routes each partition to its leader broker in the cluster
// its topic routes to. When one target serves every partition the original
// bytes go there as they are; otherwise the request is split and the
// answers, with the proxy's own for partitions no cluster serves, merged.
func splitByLeader[R kmsg.Request, T, P any, S kmsg.Response](c *clientConn, r *request, start time.Time, sp splitSpec[R, T, P, S]) error {
	st := c.s.view.State()
	by := map[target]R{}
	var local S
	haveLocal := false
	for _, t := range sp.topics {
		name, ps := sp.topic(t)
		tt := c.resolveTopic(st, name, [16]byte{}, false)
		for _, p := range ps {
			if tt.be == nil {
				if !haveLocal {
					local, haveLocal = sp.newLocal(), true
				}
				sp.fail(local, name, sp.partition(p), tt.code)
				continue
			}
			tg := target{tt.be, tt.be.leader(name, sp.partition(p))}
			sub, ok := by[tg]
			if !ok {
				sub = sp.newSub()
				by[tg] = sub
			}
			sp.add(sub, name, p)
		}
	}
	if !haveLocal && len(by) <= 1 {
		tg := target{be: c.s.defaultBackend(), broker: -1}
		for t := range by {
			tg = t
		}
		u, err := c.upstreamOrAny(tg)
		if err != nil {
			return err
		}
		return c.forwardTo(u, r, start, nil)
	}
	parts := partsOf(by)
	if haveLocal {
		parts = append(parts, part{local: local})
	}
	return c.scatter(r, start, parts, sp.merge)
}

// mergeByTopic merges split answers whose topics hold partitions: the
// first answer collects every other's partitions under the same topic
// name, and the largest throttle.
func mergeByTopic[S kmsg.Response, T any](topics func(S) *[]T, name func(T) string, add func(dst *T, src T), throttle func(S) *int32) func([]kmsg.Response) kmsg.Response {
	return func(resps []kmsg.Response) kmsg.Response {
		out := resps[0].(S)
		ts := topics(out)
		idx := map[string]int{}
		for i, t := range *ts {
			idx[name(t)] = i
		}
		for _, x := range resps[1:] {
			o := x.(S)
			*throttle(out) = max(*throttle(out), *throttle(o))
			for _, t := range *topics(o) {
				if i, ok := idx[name(t)]; ok {
					add(&(*ts)[i], t)
					continue
				}
				idx[name(t)] = len(*ts)
				*ts = append(*ts, t)
			}
		}
		return out
	}
}
