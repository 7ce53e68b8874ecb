package node

// The admin API's authorization rules (issue 12 "Interface",
// docs/security.md): POST /v1/acls (one rule, or {"acls": [...]}),
// GET /v1/acls (filters in the query), DELETE /v1/acls (filters in the
// query or the body; answers the rules it deleted). Fields are Kafka's:
// principal "User:alice", host, resource_type
// topic|group|transactional_id|cluster, resource_name, pattern
// literal|prefixed, operation, permission allow|deny. A new rule's host
// defaults to "*", its pattern to literal and its permission to allow; a
// bad rule or filter is refused (400) and nothing changes.

import (
	"net/http"
	"net/url"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// aclDefaults fills what a new rule may leave out.
func aclDefaults(a fsm.ACL) fsm.ACL {
	if a.Host == "" {
		a.Host = fsm.WildcardHost
	}
	if a.Pattern == "" {
		a.Pattern = fsm.PatternLiteral
	}
	if a.Permission == "" {
		a.Permission = fsm.PermissionAllow
	}
	return a
}

func (n *Node) postACLs(w http.ResponseWriter, r *http.Request) error {
	var b adminapi.ACLsBody
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	var acls []fsm.ACL
	for _, a := range b.ACLs {
		acls = append(acls, fsm.ACL(a))
	}
	if b.ACL != (adminapi.ACL{}) {
		if b.ACLs != nil {
			return badRequest("send one rule's fields or a list under \"acls\", not both")
		}
		acls = []fsm.ACL{fsm.ACL(b.ACL)}
	}
	if len(acls) == 0 {
		return badRequest("no rule given; send {\"principal\": \"User:alice\", \"resource_type\": \"topic\", \"resource_name\": \"orders\", \"operation\": \"write\"} or {\"acls\": [...]}")
	}
	for i := range acls {
		acls[i] = aclDefaults(acls[i])
	}
	cmd := &fsm.CreateACLs{ACLs: acls}
	if err := cmd.Validate(); err != nil {
		return err
	}
	return n.write(w, r, cmd, http.StatusOK, func(fsm.Applied) any { return acls })
}

// aclFilterOf reads a filter from query values.
func aclFilterOf(q url.Values) (fsm.ACLFilter, error) {
	known := map[string]bool{"principal": true, "host": true, "resource_type": true, "resource_name": true, "pattern": true,
		"operation": true, "permission": true, "consistent": true, "redirect": true}
	for k, v := range q {
		if !known[k] {
			return fsm.ACLFilter{}, badRequest("unknown query parameter %q; filter with principal, host, resource_type, resource_name, pattern, operation, permission", k)
		}
		if len(v) > 1 {
			return fsm.ACLFilter{}, badRequest("query parameter %q given %d times, once allowed", k, len(v))
		}
	}
	f := fsm.ACLFilter{Principal: q.Get("principal"), Host: q.Get("host"), ResourceType: q.Get("resource_type"),
		ResourceName: q.Get("resource_name"), Pattern: q.Get("pattern"), Operation: q.Get("operation"), Permission: q.Get("permission")}
	return f, fsm.ValidateACLFilter(f)
}

func (n *Node) getACLs(w http.ResponseWriter, r *http.Request) error {
	f, err := aclFilterOf(r.URL.Query())
	if err != nil {
		return err
	}
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(st.Filter(f)))
	return nil
}

// deleteACLs deletes the rules the filter matches on this peer's state,
// each by its exact value, and answers them: what the answer lists is what
// was deleted (a rule added meanwhile that the filter would match stays).
func (n *Node) deleteACLs(w http.ResponseWriter, r *http.Request) error {
	f, err := aclFilterOf(r.URL.Query())
	if err != nil {
		return err
	}
	if r.ContentLength != 0 {
		if f != (fsm.ACLFilter{}) {
			return badRequest("give the filter in the query or in the body, not both")
		}
		if err := decodeBody(r, &f); err != nil {
			return err
		}
		if err := fsm.ValidateACLFilter(f); err != nil {
			return err
		}
	}
	if f == (fsm.ACLFilter{}) {
		return badRequest("an empty filter would delete every rule; say resource_type=any to mean that")
	}
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	matched := st.Filter(f)
	if len(matched) == 0 {
		writeJSON(w, http.StatusOK, []fsm.ACL{})
		return nil
	}
	exact := make([]fsm.ACLFilter, len(matched))
	for i, a := range matched {
		exact[i] = fsm.ExactFilter(a)
	}
	return n.write(w, r, &fsm.DeleteACLs{Filters: exact}, http.StatusOK, func(fsm.Applied) any { return matched })
}
