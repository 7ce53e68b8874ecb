package kafka

import "github.com/twmb/franz-go/pkg/kmsg"

// ListGroups (16), ListTransactions (66): all versions kmsg and the
// backend share.
//
// Every broker of every cluster is asked and the answers merged so the
// peers, together, list each group and transaction once, each by the peer
// presenting its coordinator, as brokers do (see toEveryBroker).

// toEveryBroker serves the lists (ListGroups, ListTransactions) as the
// brokers this peer presents would: a broker lists only what it
// coordinates, and tools that ask every broker (librdkafka, kadm) take the
// broker that listed a group for its coordinator. So every broker of every
// cluster is asked, each key gets one lister (its home cluster's
// coordinator, else the first cluster that knows it: a group with offsets
// only), and a peer keeps the keys whose lister it presents, the peer
// FindCoordinator names. The union over the peers lists each key once.
// Errors and throttles come from every broker, as before: any of them may
// have left a key out.
func toEveryBroker(r *request) error {
	c, start := r.c, r.start
	req, err := decodeRequest(r)
	if err != nil {
		return err
	}
	var parts []part
	for _, be := range r.set.sorted {
		for _, id := range be.brokerIDs() {
			parts = append(parts, part{t: target{be, id}, req: req})
		}
	}
	if len(parts) == 0 {
		return c.forwardAny(r, start, r.defaultBackend(), nil)
	}
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		l := newLister(r, parts)
		switch first := resps[0].(type) {
		case *kmsg.ListGroupsResponse:
			for i, x := range resps {
				o := x.(*kmsg.ListGroupsResponse)
				if first.ErrorCode == 0 {
					first.ErrorCode = o.ErrorCode
				}
				for _, g := range o.Groups {
					l.offer(g.Group, i)
				}
			}
			var groups []kmsg.ListGroupsResponseGroup
			for i, x := range resps {
				for _, g := range x.(*kmsg.ListGroupsResponse).Groups {
					if l.keep(g.Group, i) {
						groups = append(groups, g)
					}
				}
			}
			first.Groups = groups
			return first
		case *kmsg.ListTransactionsResponse:
			for i, x := range resps {
				o := x.(*kmsg.ListTransactionsResponse)
				if first.ErrorCode == 0 {
					first.ErrorCode = o.ErrorCode
				}
				for _, ts := range o.TransactionStates {
					l.offer(ts.TransactionalID, i)
				}
			}
			var states []kmsg.ListTransactionsResponseTransactionState
			for i, x := range resps {
				for _, ts := range x.(*kmsg.ListTransactionsResponse).TransactionStates {
					if l.keep(ts.TransactionalID, i) {
						states = append(states, ts)
					}
				}
			}
			first.TransactionStates = states
			return first
		}
		return resps[0]
	})
}

// lister picks, for each key of a merged list, the one part (backend
// broker) whose listing stands, and whether this peer presents it.
type lister struct {
	r     *request
	parts []part
	by    map[string]int // key → index of the part whose listing stands
	prs   map[*Backend]*presenter
}

func newLister(r *request, parts []part) *lister {
	return &lister{r: r, parts: parts, by: map[string]int{}, prs: map[*Backend]*presenter{}}
}

// offer records that part i listed key. The first listing by the key's
// home cluster wins, else the first listing at all, in part order (every
// peer orders parts the same way, so every peer picks the same one).
func (l *lister) offer(key string, i int) {
	j, ok := l.by[key]
	if !ok || l.r.home(key) == l.parts[i].t.be && l.r.home(key) != l.parts[j].t.be {
		l.by[key] = i
	}
}

// keep reports whether part i's listing of key is the one that stands and
// its broker is presented by this peer. When no peer is live to present
// it, the key is kept rather than lost.
func (l *lister) keep(key string, i int) bool {
	if l.by[key] != i {
		return false
	}
	l.by[key] = -1 // once, if a broker listed it twice
	t := l.parts[i].t
	pr := l.prs[t.be]
	if pr == nil {
		pr = l.r.presenter(t.be)
		l.prs[t.be] = pr
	}
	p := pr.peerFor(t.broker)
	return p < 0 || p == l.r.c.s.cfg.NodeID
}
