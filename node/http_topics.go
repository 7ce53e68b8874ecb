package node

// GET /v1/topics: every topic this peer's data plane knows, with the
// cluster its route resolves to, where it exists and whether a migration
// moves it. Served by any peer from its own view: the routes and
// migrations of the state it reads (local, or the leader's with
// ?consistent=1) and the metadata its backends last refreshed (no broker
// is asked on the request's path).

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// topicsLimit reads ?limit=N: TopicsDefaultLimit when absent, else an
// integer in 1..TopicsMaxLimit.
func topicsLimit(r *http.Request) (int, error) {
	v, ok := r.URL.Query()["limit"]
	if !ok {
		return adminapi.TopicsDefaultLimit, nil
	}
	if len(v) != 1 {
		return 0, badRequest("give limit once")
	}
	n, err := strconv.Atoi(v[0])
	if err != nil || n < 1 || n > adminapi.TopicsMaxLimit {
		return 0, badRequest("limit must be an integer from 1 to %d, not %q", adminapi.TopicsMaxLimit, v[0])
	}
	return n, nil
}

func (n *Node) getTopics(w http.ResponseWriter, r *http.Request) error {
	limit, err := topicsLimit(r)
	if err != nil {
		return err
	}
	prefix := r.URL.Query().Get("prefix")
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n.topicList(st, prefix, limit))
	return nil
}

// topicList builds the answer from st and the backends' cached metadata.
// A topic is listed when some cluster of st holds it; internal topics
// ("__" prefix) are left out.
func (n *Node) topicList(st *fsm.State, prefix string, limit int) adminapi.TopicList {
	present := map[string][]string{}
	parts := map[string]map[string]int{} // cluster → topic → partitions
	if dp := n.dp.Load(); dp != nil {
		for _, cl := range st.Clusters { // sorted by name, so present_on is too
			be, ok := dp.backend(cl.Name)
			if !ok {
				continue
			}
			tp := be.TopicPartitions()
			parts[cl.Name] = tp
			for name := range tp {
				if strings.HasPrefix(name, "__") || !strings.HasPrefix(name, prefix) {
					continue
				}
				present[name] = append(present[name], cl.Name)
			}
		}
	}
	names := make([]string, 0, len(present))
	for name := range present {
		names = append(names, name)
	}
	slices.Sort(names)
	out := adminapi.TopicList{Topics: []adminapi.Topic{}}
	if len(names) > limit {
		names, out.Truncated = names[:limit], true
	}
	for _, name := range names {
		t := adminapi.Topic{Name: name, PresentOn: present[name]}
		slices.Sort(t.PresentOn)
		t.Cluster, _ = st.RouteFor(name)
		t.Partitions = parts[t.Cluster][name]
		if m, ok := st.Migration(name); ok && !m.State.Terminal() {
			t.Migrating = true
		}
		out.Topics = append(out.Topics, t)
	}
	return out
}
