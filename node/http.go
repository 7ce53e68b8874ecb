package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
	"github.com/switchyard-proxy/switchyard/transport"
)

// The admin HTTP API (docs/admin-api.md, docs/openapi.yaml). Handlers
// return an error; one adapter turns it into a status and {"error": ...}.
// Handlers speak HTTP only: state comes from readState, changes go through
// Node.Apply (the one write chokepoint).

// maxBody bounds an admin request body whatever AdminLimits.MaxBodyBytes
// says (decodeBody's backstop).
const maxBody = 1 << 20

// Metric label values for requests whose method or route the API does not
// serve: labels come from fixed sets, never from client input, so a client
// inventing methods or paths cannot grow /metrics.
const (
	methodOther    = "other"
	routeUnmatched = "unmatched"
)

// metricMethod collapses a request method to a fixed label set.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodOptions:
		return m
	}
	return methodOther
}

// newAdminServer builds the admin HTTP server with AdminLimits' deadlines
// and size caps. No admin endpoint streams or long-polls; the longest
// handler is a write waiting for the leader, which WriteTimeout covers.
func (n *Node) newAdminServer() *http.Server {
	a := n.cfg.Admin
	var tlsCfg *tls.Config
	if n.adminTLS != nil {
		tlsCfg = n.adminTLS.adminTLSConfig()
	}
	return &http.Server{
		TLSConfig:         tlsCfg,
		Handler:           n.adminHandler(),
		ReadHeaderTimeout: a.ReadHeaderTimeout,
		ReadTimeout:       a.ReadTimeout,
		WriteTimeout:      a.WriteTimeout,
		IdleTimeout:       a.IdleTimeout,
		MaxHeaderBytes:    a.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(n.log.With("component", "admin-http").Handler(), slog.LevelDebug),
	}
}

// indexHeader carries the Raft log index of a write.
const indexHeader = "X-Switchyard-Index"

// httpError is an error with its HTTP status.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &httpError{http.StatusNotFound, fmt.Sprintf(format, args...)}
}

// statusOf maps an error to its HTTP status.
func statusOf(err error) int {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.Is(err, fsm.ErrInvalid), errors.Is(err, fsm.ErrUnknownCluster), errors.Is(err, fsm.ErrBadPayload),
		errors.Is(err, fsm.ErrUnknownCommand), errors.Is(err, fsm.ErrUnknownVersion),
		errors.Is(err, fsm.ErrShortCommand), errors.Is(err, fsm.ErrTrailingData):
		return http.StatusBadRequest
	case errors.Is(err, fsm.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, fsm.ErrConflict), errors.Is(err, fsm.ErrInUse), errors.Is(err, ErrUpgradeRequired):
		return http.StatusConflict
	case errors.Is(err, ErrNoLeader), errors.Is(err, ErrNotLeader), errors.Is(err, ErrUnknownOutcome):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrUnauthorized), errors.Is(err, transport.ErrIdentity):
		// The leader refused this peer's forwarded request (not yet a Raft
		// member), or the leader's address answered as another peer: this
		// peer cannot reach the leader for now; another peer may.
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// recheckRefusal runs a handler's check of a request against this peer's
// state, and when it refuses, again against the leader's (a consistent
// read): a follower's state can lag a write another peer answered a
// moment ago (a finish, then a new start), and a refusal must not rest on
// that. The happy path costs nothing; the consistent read's own failure
// leaves the first refusal standing.
func (n *Node) recheckRefusal(ctx context.Context, check func(*fsm.State) error) error {
	err := check(n.fsm.State())
	if err == nil {
		return nil
	}
	st, cerr := n.ConsistentState(ctx)
	if cerr != nil {
		return err
	}
	return check(st)
}

type apiHandler func(w http.ResponseWriter, r *http.Request) error

// adminHandler builds the admin API's routes.
func (n *Node) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}))
	mux.HandleFunc("GET /healthz", n.api("/healthz", false, n.getHealthz))
	mux.HandleFunc("GET /readyz", n.api("/readyz", false, n.getReadyz))
	mux.HandleFunc(consoleRoute, n.api(consoleRoute, false, n.consoleHandler()))
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	v1 := []struct {
		pattern string
		h       apiHandler
	}{
		{"GET /v1/status", n.getStatus},
		{"GET /v1/peers", n.getPeers},
		{"DELETE /v1/peers/{name}", n.deletePeer},
		{"GET /v1/peers/allow-list", n.getAllowList},
		{"PUT /v1/peers/allow-list/{name}", n.putAllowedPeer},
		{"DELETE /v1/peers/allow-list/{name}", n.deleteAllowedPeer},
		{"GET /v1/clusters", n.getClusters},
		{"GET /v1/clusters/{name}", n.getCluster},
		{"PUT /v1/clusters/{name}", n.putCluster},
		{"DELETE /v1/clusters/{name}", n.deleteCluster},
		{"GET /v1/topics", n.getTopics},
		{"GET /v1/routes", n.getRoutes},
		{"GET /v1/routes/{topic}", n.getRoute},
		{"PUT /v1/routes/{topic}", n.putRoute},
		{"DELETE /v1/routes/{topic}", n.deleteRoute},
		{"GET /v1/prefix-routes/{prefix}", n.getPrefixRoute(false)},
		{"PUT /v1/prefix-routes/{prefix}", n.putPrefixRoute(false)},
		{"DELETE /v1/prefix-routes/{prefix}", n.deletePrefixRoute(false)},
		{"GET /v1/group-routes/{prefix}", n.getPrefixRoute(true)},
		{"PUT /v1/group-routes/{prefix}", n.putPrefixRoute(true)},
		{"DELETE /v1/group-routes/{prefix}", n.deletePrefixRoute(true)},
		{"GET /v1/default-cluster", n.getDefaultCluster},
		{"PUT /v1/default-cluster", n.putDefaultCluster},
		{"DELETE /v1/default-cluster", n.deleteDefaultCluster},
		{"GET /v1/quotas", n.getQuotas},
		{"GET /v1/quotas/{topic}", n.getQuota(false)},
		{"PUT /v1/quotas/{topic}", n.putQuota(false)},
		{"DELETE /v1/quotas/{topic}", n.deleteQuota(false)},
		{"GET /v1/prefix-quotas/{prefix}", n.getQuota(true)},
		{"PUT /v1/prefix-quotas/{prefix}", n.putQuota(true)},
		{"DELETE /v1/prefix-quotas/{prefix}", n.deleteQuota(true)},
		{"POST /v1/migrations", n.postMigration},
		{"GET /v1/migrations", n.getMigrations},
		{"GET /v1/migrations/{topic}", n.getMigration},
		{"POST /v1/migrations/{topic}/finish", n.finishMigration},
		{"DELETE /v1/migrations/{topic}", n.abortMigration},
		{"GET /v1/health", n.getHealth},
		{"GET /v1/failover", n.getFailover},
		{"POST /v1/failover/{cluster}", n.postFailover(true)},
		{"POST /v1/failback/{cluster}", n.postFailover(false)},
		{"GET /v1/groups", n.getGroups},
		{"GET /v1/groups/{group}", n.getGroup},
		{"POST /v1/groups/{group}/offset-resets", n.postOffsetReset},
		{"GET /v1/groups/{group}/offset-resets", n.getOffsetReset},
		{"GET /v1/regions", n.getRegions},
		{"PUT /v1/regions/{region}", n.putRegion},
		{"DELETE /v1/regions/{region}", n.deleteRegion},
		{"GET /v1/users", n.getUsers},
		{"GET /v1/users/{name}", n.getUser},
		{"PUT /v1/users/{name}", n.putUser},
		{"DELETE /v1/users/{name}", n.deleteUser},
		{"POST /v1/acls", n.postACLs},
		{"GET /v1/acls", n.getACLs},
		{"DELETE /v1/acls", n.deleteACLs},
		{"GET /v1/snapshot", n.getSnapshot},
		{snapshotRoute, n.postSnapshot},
	}
	for _, e := range v1 {
		mux.HandleFunc(e.pattern, n.api(e.pattern, true, e.h))
	}
	// Everything else under /v1/ answers in JSON: 405 with Allow when the
	// path exists with other methods, else 404.
	mux.HandleFunc("/v1/", n.api(routeUnmatched, true, func(w http.ResponseWriter, r *http.Request) error {
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "/v1/" && pattern != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			return &httpError{http.StatusMethodNotAllowed, fmt.Sprintf("%s is not served on %s; use %s", r.Method, r.URL.Path, strings.Join(allow, ", "))}
		}
		return notFound("no such endpoint %s; see docs/admin-api.md", r.URL.Path)
	}))
	return mux
}

// api wraps a handler: the body cap, auth, the error adapter and request
// metrics. route is the matched pattern (or routeUnmatched), never the
// request's path.
func (n *Node) api(route string, auth bool, h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		limit := n.cfg.Admin.MaxBodyBytes
		if route == snapshotRoute {
			limit = MaxSnapshotBytes // a backup, not a small JSON object
		}
		r.Body = http.MaxBytesReader(rec, r.Body, limit)
		var body []byte
		complete := true
		if isWrite(r.Method) {
			body, complete = readAuditedBody(r)
		}
		var id adminIdentity
		var err error
		if auth {
			id, err = n.adminAuth.authorize(r, route)
		}
		if err == nil {
			err = h(rec, r)
		}
		if err != nil {
			status := statusOf(err)
			switch status {
			case http.StatusUnauthorized:
				rec.Header().Set("WWW-Authenticate", `Bearer realm="switchyard"`)
			case http.StatusForbidden:
				rec.Header().Set("WWW-Authenticate", `Bearer realm="switchyard", error="insufficient_scope"`)
			}
			if status >= 500 {
				n.log.Warn("admin request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
			}
			writeJSON(rec, status, map[string]string{"error": err.Error()})
		}
		n.metrics.admin.WithLabelValues(metricMethod(r.Method), route, strconv.Itoa(rec.status)).Observe(time.Since(start).Seconds())
		if auth && isWrite(r.Method) {
			n.audit(r, route, id, rec.status, rec.Header().Get(indexHeader), err, body, complete)
		}
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decodeBody reads one JSON object into v, refusing unknown fields,
// trailing data and bodies over maxBody.
func decodeBody(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over %d bytes; admin requests are small JSON objects", tooLarge.Limit)}
	}
	if err != nil {
		return badRequest("read request body: %v", err)
	}
	if len(body) > maxBody {
		return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over %d bytes; admin requests are small JSON objects", maxBody)}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("request body is empty; send a JSON object")
	}
	if err := unmarshalStrict(body, v); err != nil {
		return badRequest("request body: %v", err)
	}
	return nil
}

func unmarshalStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}

func marshal(v any) ([]byte, error) { return json.Marshal(v) }

func queryFlag(r *http.Request, name string) bool {
	v := r.URL.Query().Get(name)
	return v == "1" || v == "true"
}

// readState returns the state a read serves: this peer's applied state, or
// with ?consistent=1 the leader's confirmed state.
func (n *Node) readState(r *http.Request) (*fsm.State, error) {
	if queryFlag(r, "consistent") {
		return n.ConsistentState(r.Context())
	}
	return n.fsm.State(), nil
}

// write applies cmd and answers status with body(applied). With
// ?redirect=1 a follower answers 307 to the leader's admin API instead of
// forwarding.
func (n *Node) write(w http.ResponseWriter, r *http.Request, cmd fsm.Command, status int, body func(fsm.Applied) any) error {
	if queryFlag(r, "redirect") && n.raft.State() != raft.Leader {
		return n.redirectToLeader(w, r)
	}
	res, err := n.Apply(r.Context(), cmd)
	if err != nil {
		return err
	}
	w.Header().Set(indexHeader, strconv.FormatUint(res.Index, 10))
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return nil
	}
	writeJSON(w, status, body(res))
	return nil
}

func (n *Node) redirectToLeader(w http.ResponseWriter, r *http.Request) error {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return fmt.Errorf("%w: cannot redirect: this peer (%s) knows no leader", ErrNoLeader, n.cfg.Name)
	}
	admin := ""
	if m, ok := n.gossip.snapshot()[string(id)]; ok {
		admin = m.meta.Admin
	}
	if admin == "" {
		if p, ok := n.fsm.State().PeerByName(string(id)); ok {
			admin = p.AdminAddr
		}
	}
	if admin == "" {
		return fmt.Errorf("%w: the leader %s has no admin address to redirect to", ErrNoLeader, id)
	}
	scheme := "http"
	if n.adminTLS != nil {
		scheme = "https" // the peers of a cluster share the admin API's settings
	}
	u := url.URL{Scheme: scheme, Host: admin, Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	w.Header().Set("Location", u.String())
	w.WriteHeader(http.StatusTemporaryRedirect)
	return nil
}

// Health.

func (n *Node) getHealthz(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (n *Node) getReadyz(w http.ResponseWriter, _ *http.Request) error {
	if err := n.readiness(); err != nil {
		return &httpError{http.StatusServiceUnavailable, err.Error()}
	}
	_, leader := n.raft.LeaderWithID()
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "leader": string(leader), "state_index": n.fsm.State().Index})
	return nil
}

// Status and peers.

func (n *Node) getStatus(w http.ResponseWriter, r *http.Request) error {
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	s := adminapi.Status{
		Node:           adminapi.StatusNode{Name: n.cfg.Name, Region: n.cfg.Region, Version: n.cfg.Version},
		Raft:           n.raftStatus(),
		StateIndex:     st.Index,
		ClusterID:      st.ClusterID,
		Peers:          n.peerViews(st),
		Clusters:       []adminapi.ClusterStatus{},
		TopicConflicts: []adminapi.TopicConflict{},
	}
	dp := n.dp.Load()
	for _, cl := range st.Clusters {
		cs := adminapi.ClusterStatus{Name: cl.Name}
		if dp != nil {
			if be, ok := dp.backend(cl.Name); ok {
				cs.Served = true
				select {
				case <-be.Ready():
					cs.Loaded = true
				default:
				}
			}
		}
		s.Clusters = append(s.Clusters, cs)
	}
	if dp != nil {
		for _, c := range dp.srv.TopicConflicts() {
			s.TopicConflicts = append(s.TopicConflicts, adminapi.TopicConflict{Topic: c.Topic, Clusters: c.Clusters, RoutedTo: c.RoutedTo})
		}
	}
	if p, ok := st.PeerByName(n.cfg.Name); ok {
		id := p.ID
		s.Node.ID = &id
	}
	if addr, id := n.raft.LeaderWithID(); id != "" {
		l := &adminapi.StatusLeader{Name: string(id), RaftAddr: string(addr)}
		if p, ok := st.PeerByName(string(id)); ok {
			l.AdminAddr = p.AdminAddr
		}
		s.Leader = l
	}
	writeJSON(w, http.StatusOK, s)
	return nil
}

func (n *Node) raftStatus() adminapi.StatusRaft {
	stats := n.raft.Stats()
	u := func(k string) uint64 { v, _ := strconv.ParseUint(stats[k], 10, 64); return v }
	s := adminapi.StatusRaft{
		State:        n.raft.State().String(),
		Term:         u("term"),
		LastLogIndex: u("last_log_index"),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.raft.AppliedIndex(),
	}
	if n.raft.State() == raft.Leader {
		s.LastContactMS = 0
	} else if lc := n.raft.LastContact(); !lc.IsZero() {
		s.LastContactMS = time.Since(lc).Milliseconds()
	} else {
		s.LastContactMS = -1
	}
	if servers, _, err := n.raftServers(); err == nil {
		for _, sv := range servers {
			if sv.Suffrage == raft.Voter {
				s.Voters++
			} else {
				s.Nonvoters++
			}
		}
	}
	return s
}

func (n *Node) peerViews(st *fsm.State) []adminapi.Peer {
	members := n.gossip.snapshot()
	servers, _, _ := n.raftServers()
	out := make([]adminapi.Peer, 0, len(st.Peers))
	for _, p := range st.Peers {
		v := adminapi.Peer{Peer: p, Gossip: string(memberUnknown), Raft: "none"}
		if m, ok := members[p.Name]; ok {
			v.Gossip = string(m.state)
		}
		if s, ok := servers[p.Name]; ok {
			v.Raft = "nonvoter"
			if s.Suffrage == raft.Voter {
				v.Raft = "voter"
			}
		}
		v.Live = n.gossip.isLive(p.Name)
		out = append(out, v)
	}
	return out
}

func (n *Node) getPeers(w http.ResponseWriter, r *http.Request) error {
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, adminapi.PeerList{Peers: n.peerViews(st)})
	return nil
}

// deletePeer removes a dead peer's entry from the peer table: a peer lost
// for good (a lost site, a host retired) otherwise stays registered, and
// health's majority counts every registered peer. A peer gossip shows live
// is refused: the leader would register it again at once; stop it first.
// Raft membership is separate: the leader drops a dead server after
// --dead-peer-timeout, and a forced recovery (Recover) writes it out.
func (n *Node) deletePeer(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	p, ok := n.fsm.State().PeerByName(name)
	if !ok {
		return notFound("peer %q is not registered; GET /v1/peers lists them", name)
	}
	if n.gossip.isLive(name) {
		return &httpError{http.StatusConflict, fmt.Sprintf("peer %q is live in gossip: stop it first (a live peer registers again)", name)}
	}
	return n.write(w, r, &fsm.RemovePeer{ID: p.ID}, http.StatusNoContent, nil)
}

// Clusters.

func (n *Node) getClusters(w http.ResponseWriter, r *http.Request) error {
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, adminapi.ClusterList{Clusters: nonNil(st.Clusters)})
	return nil
}

func (n *Node) getCluster(w http.ResponseWriter, r *http.Request) error {
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	c, ok := st.Cluster(name)
	if !ok {
		return notFound("cluster %q does not exist; GET /v1/clusters lists them", name)
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (n *Node) putCluster(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	var b adminapi.ClusterBody
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	if b.Name != "" && b.Name != name {
		return badRequest("the body names cluster %q but the path names %q; leave name out of the body", b.Name, name)
	}
	c := b.Cluster
	c.Name = name
	if err := (&fsm.PutCluster{Cluster: c}).Validate(); err != nil {
		return err
	}
	if err := checkClusterFiles(c); err != nil {
		return err
	}
	return n.write(w, r, &fsm.PutCluster{Cluster: c}, http.StatusOK, func(fsm.Applied) any { return c })
}

func (n *Node) deleteCluster(w http.ResponseWriter, r *http.Request) error {
	return n.write(w, r, &fsm.DeleteCluster{Name: r.PathValue("name")}, http.StatusNoContent, nil)
}

// Routes.

func (n *Node) getRoutes(w http.ResponseWriter, r *http.Request) error {
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	rt := st.Routes
	writeJSON(w, http.StatusOK, adminapi.Routes{
		Topics:         nonNil(rt.Topics),
		Prefixes:       nonNil(rt.Prefixes),
		GroupPrefixes:  nonNil(rt.GroupPrefixes),
		DefaultCluster: rt.DefaultCluster,
		Default:        rt.Default,
	})
	return nil
}

func (n *Node) getRoute(w http.ResponseWriter, r *http.Request) error {
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	topic, region := r.PathValue("topic"), r.URL.Query().Get("region")
	cluster, m := st.RouteForRegion(topic, region)
	if m.Kind == fsm.MatchNone {
		return notFound("no route, prefix rule or default cluster routes topic %q", topic)
	}
	res := adminapi.RouteResolution{Topic: topic, Region: region, Cluster: cluster, Match: m.Kind.String(), Rule: m.Rule}
	if pc, _ := st.ProduceRouteForRegion(topic, region); pc != cluster {
		res.ProduceCluster = pc
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (n *Node) putRoute(w http.ResponseWriter, r *http.Request) error {
	var b adminapi.RouteBody
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	cmd := &fsm.PutRoute{Topic: r.PathValue("topic"), Cluster: b.Cluster, RouteTargets: b.RouteTargets}
	return n.write(w, r, cmd, http.StatusOK, func(fsm.Applied) any { return fsm.TopicRoute(*cmd) })
}

func (n *Node) deleteRoute(w http.ResponseWriter, r *http.Request) error {
	return n.write(w, r, &fsm.DeleteRoute{Topic: r.PathValue("topic")}, http.StatusNoContent, nil)
}

func (n *Node) getPrefixRoute(group bool) apiHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		st, err := n.readState(r)
		if err != nil {
			return err
		}
		prefix := r.PathValue("prefix")
		rules, what := st.Routes.Prefixes, "prefix route"
		if group {
			rules, what = st.Routes.GroupPrefixes, "group prefix route"
		}
		for _, p := range rules {
			if p.Prefix == prefix {
				writeJSON(w, http.StatusOK, p)
				return nil
			}
		}
		return notFound("no %s for %q", what, prefix)
	}
}

func (n *Node) putPrefixRoute(group bool) apiHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		var b adminapi.RouteBody
		if err := decodeBody(r, &b); err != nil {
			return err
		}
		rule := fsm.PrefixRoute{Prefix: r.PathValue("prefix"), Cluster: b.Cluster, RouteTargets: b.RouteTargets}
		var cmd fsm.Command = &fsm.PutPrefixRoute{Prefix: rule.Prefix, Cluster: rule.Cluster, RouteTargets: rule.RouteTargets}
		if group {
			cmd = &fsm.PutGroupRoute{Prefix: rule.Prefix, Cluster: rule.Cluster, RouteTargets: rule.RouteTargets}
		}
		return n.write(w, r, cmd, http.StatusOK, func(fsm.Applied) any { return rule })
	}
}

func (n *Node) deletePrefixRoute(group bool) apiHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		prefix := r.PathValue("prefix")
		var cmd fsm.Command = &fsm.DeletePrefixRoute{Prefix: prefix}
		if group {
			cmd = &fsm.DeleteGroupRoute{Prefix: prefix}
		}
		return n.write(w, r, cmd, http.StatusNoContent, nil)
	}
}

func (n *Node) getDefaultCluster(w http.ResponseWriter, r *http.Request) error {
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, adminapi.RouteBody{Cluster: st.Routes.DefaultCluster, RouteTargets: st.Routes.Default})
	return nil
}

func (n *Node) putDefaultCluster(w http.ResponseWriter, r *http.Request) error {
	var b adminapi.RouteBody
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	if b.Cluster == "" {
		return badRequest(`the body needs {"cluster": NAME}; DELETE /v1/default-cluster clears it`)
	}
	return n.write(w, r, &fsm.SetDefaultCluster{Cluster: b.Cluster, RouteTargets: b.RouteTargets}, http.StatusOK, func(fsm.Applied) any { return b })
}

func (n *Node) deleteDefaultCluster(w http.ResponseWriter, r *http.Request) error {
	return n.write(w, r, &fsm.SetDefaultCluster{}, http.StatusNoContent, nil)
}

// Quotas.

func (n *Node) getQuotas(w http.ResponseWriter, r *http.Request) error {
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, adminapi.QuotaList{Quotas: nonNil(st.Quotas)})
	return nil
}

func (n *Node) getQuota(prefix bool) apiHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		st, err := n.readState(r)
		if err != nil {
			return err
		}
		if prefix {
			p := r.PathValue("prefix")
			for _, q := range st.Quotas {
				if q.Prefix && q.Topic == p {
					writeJSON(w, http.StatusOK, q)
					return nil
				}
			}
			return notFound("no prefix quota rule for %q", p)
		}
		topic := r.PathValue("topic")
		q, ok := st.QuotaFor(topic)
		if !ok {
			return notFound("no quota rule governs topic %q", topic)
		}
		// The rule, and how the peers share it now: each live peer's
		// share, mode and measured rate (soft state, asked of each peer).
		shares := n.quotas.shares(r.Context(), topic)
		var rates [2]float64
		for _, s := range shares {
			if s.Direction == "fetch" {
				rates[1] += s.Rate
			} else {
				rates[0] += s.Rate
			}
		}
		writeJSON(w, http.StatusOK, adminapi.QuotaView{Quota: q, Shares: nonNil(shares), ProduceRate: rates[0], FetchRate: rates[1]})
		return nil
	}
}

func (n *Node) putQuota(prefix bool) apiHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		var b adminapi.QuotaBody
		if err := decodeBody(r, &b); err != nil {
			return err
		}
		name := r.PathValue("topic")
		if prefix {
			name = r.PathValue("prefix")
		}
		q := fsm.Quota{Topic: name, Prefix: prefix, ProduceBytesPerSec: b.ProduceBytesPerSec, FetchBytesPerSec: b.FetchBytesPerSec}
		return n.write(w, r, &fsm.PutQuota{Quota: q}, http.StatusOK, func(fsm.Applied) any { return q })
	}
}

func (n *Node) deleteQuota(prefix bool) apiHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		name := r.PathValue("topic")
		if prefix {
			name = r.PathValue("prefix")
		}
		return n.write(w, r, &fsm.DeleteQuota{Topic: name, Prefix: prefix}, http.StatusNoContent, nil)
	}
}

// nonNil makes an empty list encode as [] for API readers.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
