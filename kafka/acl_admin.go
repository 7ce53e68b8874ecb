package kafka

// DescribeACLs (29), CreateACLs (30), DeleteACLs (31) when the listener
// authenticates: all versions kmsg shares (v0 has no pattern type: literal).
//
// The proxy then owns authorization, so these keys manage its own rules,
// replicated through the node (Config.Proposer), and never reach a
// backend: kafka-acls-style tooling sees the rules the proxy enforces.
// They need Describe (29) or Alter (30, 31) on the cluster, checked before
// (acl_requests.go). Without authentication the keys are forwarded to
// every cluster as before (30_cluster_wide_writes.go, 29_describe_acls.go).

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// aclProposeTimeout bounds how long CreateACLs and DeleteACLs wait for the
// change to be committed and applied here.
const aclProposeTimeout = 30 * time.Second

// ownACLs serves key 29, 30 or 31 from the proxy's own rules when the
// listener authenticates, else with forward.
func ownACLs(forward handler) handler {
	return func(r *request) error {
		if !r.c.s.cfg.Authenticates {
			return forward(r)
		}
		req, err := decodeRequest(r)
		if err != nil {
			return err
		}
		var resp kmsg.Response
		switch q := req.(type) {
		case *kmsg.DescribeACLsRequest:
			resp = describeOwnACLs(r, q)
		case *kmsg.CreateACLsRequest:
			resp = createOwnACLs(r, q)
		case *kmsg.DeleteACLsRequest:
			resp = deleteOwnACLs(r, q)
		default:
			return forward(r)
		}
		resp.SetVersion(r.version)
		return r.c.respond(r, r.start, resp)
	}
}

var (
	aclResTypes = map[kmsg.ACLResourceType]string{
		kmsg.ACLResourceTypeAny: fsm.FilterAny, kmsg.ACLResourceTypeTopic: fsm.ResourceTopic, kmsg.ACLResourceTypeGroup: fsm.ResourceGroup,
		kmsg.ACLResourceTypeCluster: fsm.ResourceCluster, kmsg.ACLResourceTypeTransactionalId: fsm.ResourceTransactionalID,
	}
	aclPatterns = map[kmsg.ACLResourcePatternType]string{
		kmsg.ACLResourcePatternTypeAny: fsm.FilterAny, kmsg.ACLResourcePatternTypeMatch: fsm.PatternMatch,
		kmsg.ACLResourcePatternTypeLiteral: fsm.PatternLiteral, kmsg.ACLResourcePatternTypePrefixed: fsm.PatternPrefixed,
	}
	aclOps = map[kmsg.ACLOperation]string{
		kmsg.ACLOperationAny: fsm.FilterAny, kmsg.ACLOperationAll: fsm.OpAll, kmsg.ACLOperationRead: fsm.OpRead,
		kmsg.ACLOperationWrite: fsm.OpWrite, kmsg.ACLOperationCreate: fsm.OpCreate, kmsg.ACLOperationDelete: fsm.OpDelete,
		kmsg.ACLOperationAlter: fsm.OpAlter, kmsg.ACLOperationDescribe: fsm.OpDescribe, kmsg.ACLOperationClusterAction: fsm.OpClusterAction,
		kmsg.ACLOperationDescribeConfigs: fsm.OpDescribeConfigs, kmsg.ACLOperationAlterConfigs: fsm.OpAlterConfigs,
		kmsg.ACLOperationIdempotentWrite: fsm.OpIdempotentWrite,
	}
	aclPerms = map[kmsg.ACLPermissionType]string{
		kmsg.ACLPermissionTypeAny: fsm.FilterAny, kmsg.ACLPermissionTypeAllow: fsm.PermissionAllow, kmsg.ACLPermissionTypeDeny: fsm.PermissionDeny,
	}
)

func reverse[K, V comparable](m map[K]V) map[V]K {
	out := make(map[V]K, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

var (
	kmsgResTypes = reverse(aclResTypes)
	kmsgPatterns = reverse(aclPatterns)
	kmsgOps      = reverse(aclOps)
	kmsgPerms    = reverse(aclPerms)
)

// word maps a kmsg enum to fsm's word; "?" (refused by validation) for a
// value the proxy does not keep rules for (delegation tokens, users).
func word[K comparable](m map[K]string, k K) string {
	if w, ok := m[k]; ok {
		return w
	}
	return "?"
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func invalidMessage(err error) *string {
	msg := err.Error()
	return &msg
}

func describeOwnACLs(r *request, q *kmsg.DescribeACLsRequest) kmsg.Response {
	resp := kmsg.NewPtrDescribeACLsResponse()
	pattern := kmsg.ACLResourcePatternTypeLiteral
	if r.version >= 1 {
		pattern = q.ResourcePatternType
	}
	f := fsm.ACLFilter{Principal: deref(q.Principal), Host: deref(q.Host), ResourceType: word(aclResTypes, q.ResourceType),
		ResourceName: deref(q.ResourceName), Pattern: word(aclPatterns, pattern), Operation: word(aclOps, q.Operation), Permission: word(aclPerms, q.PermissionType)}
	if err := fsm.ValidateACLFilter(f); err != nil {
		resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, invalidMessage(err)
		return resp
	}
	type resKey struct{ typ, name, pattern string }
	at := map[resKey]int{}
	for _, a := range r.st.Filter(f) {
		k := resKey{a.ResourceType, a.ResourceName, a.Pattern}
		i, ok := at[k]
		if !ok {
			i = len(resp.Resources)
			at[k] = i
			res := kmsg.NewDescribeACLsResponseResource()
			res.ResourceType, res.ResourceName, res.ResourcePatternType = kmsgResTypes[a.ResourceType], a.ResourceName, kmsgPatterns[a.Pattern]
			resp.Resources = append(resp.Resources, res)
		}
		acl := kmsg.NewDescribeACLsResponseResourceACL()
		acl.Principal, acl.Host, acl.Operation, acl.PermissionType = a.Principal, a.Host, kmsgOps[a.Operation], kmsgPerms[a.Permission]
		resp.Resources[i].ACLs = append(resp.Resources[i].ACLs, acl)
	}
	return resp
}

func createOwnACLs(r *request, q *kmsg.CreateACLsRequest) kmsg.Response {
	resp := kmsg.NewPtrCreateACLsResponse()
	var acls []fsm.ACL
	var at []int // acls[i] answers result at[i]
	for _, c := range q.Creations {
		pattern := kmsg.ACLResourcePatternTypeLiteral
		if r.version >= 1 {
			pattern = c.ResourcePatternType
		}
		a := fsm.ACL{Principal: c.Principal, Host: c.Host, ResourceType: word(aclResTypes, c.ResourceType), ResourceName: c.ResourceName,
			Pattern: word(aclPatterns, pattern), Operation: word(aclOps, c.Operation), Permission: word(aclPerms, c.PermissionType)}
		res := kmsg.NewCreateACLsResponseResult()
		if err := fsm.ValidateACL(a); err != nil {
			res.ErrorCode, res.ErrorMessage = kerr.InvalidRequest.Code, invalidMessage(err)
		} else {
			acls, at = append(acls, a), append(at, len(resp.Results))
		}
		resp.Results = append(resp.Results, res)
	}
	if len(acls) == 0 {
		return resp
	}
	if err := r.propose(&fsm.CreateACLs{ACLs: acls}); err != nil {
		code, msg := proposeError(err)
		for _, i := range at {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = code, msg
		}
	}
	return resp
}

func deleteOwnACLs(r *request, q *kmsg.DeleteACLsRequest) kmsg.Response {
	resp := kmsg.NewPtrDeleteACLsResponse()
	var exact []fsm.ACLFilter
	seen := map[fsm.ACL]bool{}
	for _, qf := range q.Filters {
		pattern := kmsg.ACLResourcePatternTypeLiteral
		if r.version >= 1 {
			pattern = qf.ResourcePatternType
		}
		f := fsm.ACLFilter{Principal: deref(qf.Principal), Host: deref(qf.Host), ResourceType: word(aclResTypes, qf.ResourceType),
			ResourceName: deref(qf.ResourceName), Pattern: word(aclPatterns, pattern), Operation: word(aclOps, qf.Operation), Permission: word(aclPerms, qf.PermissionType)}
		res := kmsg.NewDeleteACLsResponseResult()
		if err := fsm.ValidateACLFilter(f); err != nil {
			res.ErrorCode, res.ErrorMessage = kerr.InvalidRequest.Code, invalidMessage(err)
			resp.Results = append(resp.Results, res)
			continue
		}
		for _, a := range r.st.Filter(f) {
			m := kmsg.NewDeleteACLsResponseResultMatchingACL()
			m.ResourceType, m.ResourceName, m.ResourcePatternType = kmsgResTypes[a.ResourceType], a.ResourceName, kmsgPatterns[a.Pattern]
			m.Principal, m.Host, m.Operation, m.PermissionType = a.Principal, a.Host, kmsgOps[a.Operation], kmsgPerms[a.Permission]
			res.MatchingACLs = append(res.MatchingACLs, m)
			if !seen[a] {
				seen[a] = true
				exact = append(exact, fsm.ExactFilter(a))
			}
		}
		resp.Results = append(resp.Results, res)
	}
	if len(exact) == 0 {
		return resp
	}
	// The rules matched under this request's state are deleted exactly,
	// so the answer lists what was deleted.
	if err := r.propose(&fsm.DeleteACLs{Filters: exact}); err != nil {
		code, msg := proposeError(err)
		for i := range resp.Results {
			if len(resp.Results[i].MatchingACLs) > 0 {
				resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = code, msg
				resp.Results[i].MatchingACLs = nil
			}
		}
	}
	return resp
}

// errNoProposer: this listener was built without the node's write path.
var errNoProposer = errors.New("this peer cannot commit changes to the replicated state (no proposer)")

// propose commits cmd through Config.Proposer.
func (r *request) propose(cmd fsm.Command) error {
	p := r.c.s.cfg.Proposer
	if p == nil {
		return errNoProposer
	}
	ctx, cancel := context.WithTimeout(context.Background(), aclProposeTimeout)
	defer cancel()
	_, err := p.Apply(ctx, cmd)
	return err
}

// proposeError is the Kafka error a failed proposal answers with: an
// invalid rule is INVALID_REQUEST, anything else (no leader, a timeout)
// UNKNOWN_SERVER_ERROR, with the reason as the message.
func proposeError(err error) (int16, *string) {
	if errors.Is(err, fsm.ErrInvalid) {
		return kerr.InvalidRequest.Code, invalidMessage(err)
	}
	return kerr.UnknownServerError.Code, invalidMessage(err)
}
