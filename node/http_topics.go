package node

// GET /v1/topics (/work contract "topics", docs/admin-api.md): every topic
// this peer's metadata knows, as clients see it, from this peer's own view
// (no leader round trip): the cluster its route resolves to now (failover
// included), that cluster's partition count, the clusters whose metadata
// holds it, and whether a live migration moves it. Internal topics ("__")
// are left out. ?prefix=P filters by name prefix; ?limit=N (default 1000,
// at most 10000) caps the list and "truncated" says whether more matched.

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

const (
	defaultTopicsLimit = 1000
	maxTopicsLimit     = 10000
)

// topicView is one topic of GET /v1/topics.
type topicView struct {
	Name       string   `json:"name"`
	Cluster    string   `json:"cluster"`
	Partitions int      `json:"partitions"`
	PresentOn  []string `json:"present_on"`
	Migrating  bool     `json:"migrating"`
}

func (n *Node) getTopics(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for k := range q {
		if k != "prefix" && k != "limit" {
			return badRequest("unknown query parameter %q; use prefix and limit", k)
		}
	}
	limit := defaultTopicsLimit
	if s := q.Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > maxTopicsLimit {
			return badRequest("limit %q: give a whole number from 1 to %d", s, maxTopicsLimit)
		}
		limit = v
	}
	prefix := q.Get("prefix")
	st := n.fsm.State()
	out := []topicView{}
	truncated := false
	if dp := n.dp.Load(); dp != nil {
		names := dp.srv.Topics()
		slices.Sort(names)
		for _, name := range names {
			if strings.HasPrefix(name, "__") || !strings.HasPrefix(name, prefix) {
				continue
			}
			if len(out) == limit {
				truncated = true
				break
			}
			cluster, _ := st.RouteFor(name)
			v := topicView{Name: name, Cluster: cluster, PresentOn: []string{}}
			for _, c := range st.Clusters {
				be, ok := dp.backend(c.Name)
				if !ok {
					continue
				}
				if p, ok := be.Partitions(name); ok {
					v.PresentOn = append(v.PresentOn, c.Name)
					if c.Name == cluster {
						v.Partitions = p
					}
				}
			}
			slices.Sort(v.PresentOn)
			if m, ok := st.Migration(name); ok && !m.State.Terminal() {
				v.Migrating = true
			}
			out = append(out, v)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"topics": out, "truncated": truncated})
	return nil
}
