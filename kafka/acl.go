package kafka

// Authorization: the replicated ACLs (fsm/acl.go) evaluated per request,
// with Kafka's semantics (AclAuthorizer / StandardAuthorizer), once the
// listener authenticates its clients (Config.Authenticates):
//
//   - a super user (AuthzConfig.SuperUsers, Kafka's super.users) is
//     allowed everything;
//   - a rule applies to a request when its principal is the client's or
//     User:*, its host the client's address or *, and its resource
//     matches: literal by exact name or the wildcard "*", prefixed by
//     prefix;
//   - a deny rule that applies wins over every allow rule;
//   - an allow rule for the operation, or for one that implies it,
//     allows: All implies everything, Read, Write, Delete and Alter imply
//     Describe, AlterConfigs implies DescribeConfigs;
//   - a resource with no rule at all (for anyone) is allowed only with
//     AuthzConfig.AllowIfNoACL (Kafka's allow.everyone.if.no.acl.found),
//     denied otherwise.
//
// The rules are indexed once per distinct ACL list (the FSM shares the
// list between states that did not change it), so a check is a map lookup
// and a short scan, without allocation. Where a request is checked and
// what a denial answers: acl_requests.go.

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// AuthzConfig configures authorization; it applies only when the listener
// authenticates (Config.Authenticates).
type AuthzConfig struct {
	// SuperUsers are principals ("User:admin") allowed everything,
	// whatever the rules say (Kafka's super.users).
	SuperUsers []string
	// AllowIfNoACL allows a request on a resource no rule names at all
	// (Kafka's allow.everyone.if.no.acl.found); false denies it.
	AllowIfNoACL bool
}

// Validate reports a super user that is not a principal ("User:NAME").
func (a AuthzConfig) Validate() error {
	for _, p := range a.SuperUsers {
		if name, ok := strings.CutPrefix(strings.TrimSpace(p), fsm.PrincipalPrefix); !ok || name == "" || name == "*" {
			return fmt.Errorf("super user %q is not a principal User:NAME", p)
		}
	}
	return nil
}

// aclOp is an ACL operation, indexed for the hot path.
type aclOp uint8

const (
	opUnknown aclOp = iota
	opAll
	opRead
	opWrite
	opCreate
	opDelete
	opAlter
	opDescribe
	opClusterAction
	opDescribeConfigs
	opAlterConfigs
	opIdempotentWrite
	numOps
)

var opNames = [numOps]string{"", fsm.OpAll, fsm.OpRead, fsm.OpWrite, fsm.OpCreate, fsm.OpDelete, fsm.OpAlter,
	fsm.OpDescribe, fsm.OpClusterAction, fsm.OpDescribeConfigs, fsm.OpAlterConfigs, fsm.OpIdempotentWrite}

func parseOp(s string) aclOp {
	for i, n := range opNames {
		if i > 0 && n == s {
			return aclOp(i)
		}
	}
	return opUnknown
}

// aclRes is an ACL resource type, indexed for the hot path.
type aclRes uint8

const (
	resUnknown aclRes = iota
	resTopic
	resGroup
	resTxn
	resCluster
	numRes
)

var resNames = [numRes]string{"", fsm.ResourceTopic, fsm.ResourceGroup, fsm.ResourceTransactionalID, fsm.ResourceCluster}

func parseRes(s string) aclRes {
	for i, n := range resNames {
		if i > 0 && n == s {
			return aclRes(i)
		}
	}
	return resUnknown
}

// implies reports whether a rule for operation rule covers a request for
// op (Kafka's implied operations).
func implies(rule, op aclOp) bool {
	if rule == op || rule == opAll {
		return true
	}
	switch op {
	case opDescribe:
		return rule == opRead || rule == opWrite || rule == opDelete || rule == opAlter
	case opDescribeConfigs:
		return rule == opAlterConfigs
	}
	return false
}

// aclRule is one rule as the authorizer keeps it.
type aclRule struct {
	principal string     // "User:alice" or "User:*"
	host      netip.Addr // the zero Addr for "*"
	op        aclOp
	deny      bool
}

type prefixRules struct {
	prefix string
	rules  []aclRule
}

// aclIndex holds one resource type's rules.
type aclIndex struct {
	literal  map[string][]aclRule // by exact name, "*" included
	prefixed []prefixRules
}

// authorizer is the index of one ACL list.
type authorizer struct {
	byRes [numRes]aclIndex
}

func newAuthorizer(acls []fsm.ACL) *authorizer {
	a := &authorizer{}
	prefixAt := [numRes]map[string]int{}
	for _, r := range acls {
		res, op := parseRes(r.ResourceType), parseOp(r.Operation)
		if res == resUnknown || op == opUnknown {
			continue // the FSM validates rules: unreachable
		}
		rule := aclRule{principal: r.Principal, op: op, deny: r.Permission == fsm.PermissionDeny}
		if r.Host != fsm.WildcardHost {
			h, err := netip.ParseAddr(r.Host)
			if err != nil {
				continue
			}
			rule.host = h.Unmap()
		}
		ix := &a.byRes[res]
		if r.Pattern == fsm.PatternPrefixed {
			if prefixAt[res] == nil {
				prefixAt[res] = map[string]int{}
			}
			i, ok := prefixAt[res][r.ResourceName]
			if !ok {
				i = len(ix.prefixed)
				prefixAt[res][r.ResourceName] = i
				ix.prefixed = append(ix.prefixed, prefixRules{prefix: r.ResourceName})
			}
			ix.prefixed[i].rules = append(ix.prefixed[i].rules, rule)
			continue
		}
		if ix.literal == nil {
			ix.literal = map[string][]aclRule{}
		}
		ix.literal[r.ResourceName] = append(ix.literal[r.ResourceName], rule)
	}
	return a
}

// verdict of the rules on one request.
type verdict uint8

const (
	noRule verdict = iota // no rule names the resource
	denied                // rules name it; none allows, or one denies
	allowed
)

// check evaluates the rules for principal at host doing op on the resource
// (res, name).
func (a *authorizer) check(principal string, host netip.Addr, op aclOp, res aclRes, name string) verdict {
	ix := &a.byRes[res]
	seen, allow := false, false
	scan := func(rules []aclRule) bool { // false: a deny applies
		for i := range rules {
			r := &rules[i]
			seen = true
			if r.principal != principal && r.principal != fsm.WildcardPrincipal {
				continue
			}
			if r.host.IsValid() && r.host != host {
				continue
			}
			if r.deny {
				// Kafka: a deny for All or for the operation itself
				// (a deny of Read does not deny Describe).
				if r.op == op || r.op == opAll {
					return false
				}
				continue
			}
			if implies(r.op, op) {
				allow = true
			}
		}
		return true
	}
	if ix.literal != nil {
		if !scan(ix.literal[name]) || !scan(ix.literal[fsm.WildcardResource]) {
			return denied
		}
	}
	for i := range ix.prefixed {
		if strings.HasPrefix(name, ix.prefixed[i].prefix) && !scan(ix.prefixed[i].rules) {
			return denied
		}
	}
	switch {
	case allow:
		return allowed
	case seen:
		return denied
	}
	return noRule
}

// anyAllowed reports whether some rule allows principal at host op on any
// resource of type res that no deny for the same resource pattern takes
// back (KIP-679: an idempotent producer needs Write on some topic).
func (a *authorizer) anyAllowed(principal string, host netip.Addr, op aclOp, res aclRes) bool {
	ix := &a.byRes[res]
	ok := func(rules []aclRule) bool {
		allow := false
		for _, r := range rules {
			if r.principal != principal && r.principal != fsm.WildcardPrincipal || r.host.IsValid() && r.host != host {
				continue
			}
			if r.deny && (r.op == op || r.op == opAll) {
				return false
			}
			allow = allow || !r.deny && implies(r.op, op)
		}
		return allow
	}
	for _, rules := range ix.literal {
		if ok(rules) {
			return true
		}
	}
	for _, p := range ix.prefixed {
		if ok(p.rules) {
			return true
		}
	}
	return false
}

// authz is a server's authorization state: its configuration, the index
// of the last ACL list seen, the denial counters and log limiter.
type authz struct {
	super        map[string]bool
	allowIfNoACL bool
	cache        atomic.Pointer[authzCache]
	build        sync.Mutex // serializes index builds
	denied       [numOps][numRes]prometheus.Counter
	log          *slog.Logger
	lastLog      atomic.Int64 // unix nanos of the last denial logged
	quiet        atomic.Int64 // denials not logged since
	// testPrincipal, set by tests only, gives a connection its principal
	// by client id, where a real listener authenticates.
	testPrincipal func(clientID string) string
}

type authzCache struct {
	first *fsm.ACL // the list's first element: its identity
	n     int
	a     *authorizer
}

// denyLogEvery is how often at most a denial is logged; the ones between
// are counted in the next line.
const denyLogEvery = time.Second

func newAuthz(cfg AuthzConfig, m *Metrics, log *slog.Logger) *authz {
	// The peer's own in-process clients (offset resets, group views;
	// internal_conn.go) act for the operator, who is authorized by the
	// admin API: they pass like super users. No network client can hold
	// this principal.
	z := &authz{super: map[string]bool{InternalPrincipal: true}, allowIfNoACL: cfg.AllowIfNoACL, log: log}
	for _, p := range cfg.SuperUsers {
		if p = strings.TrimSpace(p); p != "" {
			z.super[p] = true
		}
	}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "unregistered"}, []string{"operation", "resource_type"})
	if m != nil && m.authzDenied != nil {
		vec = m.authzDenied
	}
	for op := opAll; op < numOps; op++ {
		for res := resTopic; res < numRes; res++ {
			z.denied[op][res] = vec.WithLabelValues(opNames[op], resNames[res])
		}
	}
	return z
}

// index is the authorizer for st's ACLs, built once per ACL list.
func (z *authz) index(st *fsm.State) *authorizer {
	var first *fsm.ACL
	if len(st.ACLs) > 0 {
		first = &st.ACLs[0]
	}
	if c := z.cache.Load(); c != nil && c.first == first && c.n == len(st.ACLs) {
		return c.a
	}
	// One build per change: the connections that see it at once wait for
	// it rather than each indexing up to MaxACLs rules.
	z.build.Lock()
	defer z.build.Unlock()
	if c := z.cache.Load(); c != nil && c.first == first && c.n == len(st.ACLs) {
		return c.a
	}
	c := &authzCache{first: first, n: len(st.ACLs), a: newAuthorizer(st.ACLs)}
	z.cache.Store(c)
	return c.a
}

// principalOf is the connection's principal.
func (z *authz) principalOf(c *clientConn) string {
	if z.testPrincipal != nil && c.clientID != nil {
		return z.testPrincipal(*c.clientID)
	}
	return c.principal
}

// allows decides one operation of c's request under st, counting and
// logging a denial.
func (z *authz) allows(c *clientConn, st *fsm.State, op aclOp, res aclRes, name string) bool {
	principal := z.principalOf(c)
	if z.super[principal] {
		return true
	}
	switch z.index(st).check(principal, c.clientIP.Unmap(), op, res, name) {
	case allowed:
		return true
	case noRule:
		if z.allowIfNoACL {
			return true
		}
	}
	z.deny(principal, c, op, res, name)
	return false
}

func (z *authz) deny(principal string, c *clientConn, op aclOp, res aclRes, name string) {
	z.denied[op][res].Inc()
	now := time.Now().UnixNano()
	last := z.lastLog.Load()
	if now-last < int64(denyLogEvery) || !z.lastLog.CompareAndSwap(last, now) {
		z.quiet.Add(1)
		return
	}
	z.log.Info("kafka request denied by acls", "principal", principal, "client", c.clientIP.String(),
		"operation", opNames[op], "resource_type", resNames[res], "resource", name, "not_logged_since", z.quiet.Swap(0))
}

// authorized reports whether the request's principal may do op on the
// resource (resourceType, name), with fsm's spelling of operations and
// resource types ("describe", "cluster", fsm.ClusterResourceName). Always
// true when the listener does not authenticate. A denial is counted and
// logged.
func (r *request) authorized(op, resourceType, name string) bool {
	return r.allows(parseOp(op), parseRes(resourceType), name)
}

// allows is authorized for the indexed operation and resource type.
func (r *request) allows(op aclOp, res aclRes, name string) bool {
	z := r.c.s.authz
	if !r.c.s.cfg.Authenticates || z == nil {
		return true
	}
	if op == opUnknown || res == resUnknown {
		return false
	}
	return z.allows(r.c, r.st, op, res, name)
}

// authzOn reports whether requests are authorized at all.
func (r *request) authzOn() bool { return r.c.s.cfg.Authenticates && r.c.s.authz != nil }

// allowsAnyTopicWrite: KIP-679, Write on some topic (for an idempotent
// producer without IdempotentWrite on the cluster).
func (r *request) allowsAnyTopicWrite() bool {
	z := r.c.s.authz
	principal := z.principalOf(r.c)
	return z.super[principal] || z.index(r.st).anyAllowed(principal, r.c.clientIP.Unmap(), opWrite, resTopic)
}
