package kafka

import (
	"reflect"

	"github.com/twmb/franz-go/pkg/kmsg"
)

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
	field, key := listFields(r.key)
	return c.scatter(r, start, parts, func(resps []kmsg.Response) kmsg.Response {
		l := newLister(r, parts)
		lists := make([]reflect.Value, len(resps))
		for i, x := range resps {
			lists[i] = reflect.ValueOf(x).Elem().FieldByName(field)
			for j := range lists[i].Len() {
				l.offer(lists[i].Index(j).FieldByName(key).String(), i)
			}
		}
		kept := reflect.MakeSlice(lists[0].Type(), 0, lists[0].Len())
		for i, list := range lists {
			for j := range list.Len() {
				if e := list.Index(j); l.keep(e.FieldByName(key).String(), i) {
					kept = reflect.Append(kept, e)
				}
			}
		}
		out := resps[0]
		ov := reflect.ValueOf(out).Elem()
		ov.FieldByName(field).Set(kept)
		code := ov.FieldByName("ErrorCode")
		for _, x := range resps[1:] {
			if code.Int() == 0 {
				code.Set(reflect.ValueOf(x).Elem().FieldByName("ErrorCode"))
			}
		}
		return out
	})
}

// listFields names the list in a ListGroups or ListTransactions answer and
// the key field of its entries.
func listFields(key int16) (list, id string) {
	if key == 66 {
		return "TransactionStates", "TransactionalID"
	}
	return "Groups", "Group"
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
