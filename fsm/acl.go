package fsm

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Authorization rules (issue 12): the commands that add and remove ACLs,
// Kafka's filter semantics for finding them, and the validation of one rule
// and of the state's acls section. The data plane evaluates them
// (kafka/acl.go); this file only keeps them.

// MaxACLs bounds the rules the state holds (and one CreateACLs or
// DeleteACLs carries): every peer keeps them all in memory and the data
// plane indexes them on every state change.
const MaxACLs = 100_000

// ClusterResourceName is the one name of the cluster resource, Kafka's.
const ClusterResourceName = "kafka-cluster"

// Filter-only values of ACLFilter (Kafka's ANY and MATCH).
const (
	// FilterAny matches every resource type, pattern type, operation or
	// permission.
	FilterAny = "any"
	// PatternMatch, in a filter with a resource name, finds the rules that
	// apply to that name: literal rules of the name or of "*", and
	// prefixed rules whose prefix starts it.
	PatternMatch = "match"
	// WildcardPrincipal and WildcardResource are Kafka's wildcards: every
	// user, every resource of a type (literal pattern only).
	WildcardPrincipal = "User:*"
	WildcardResource  = "*"
	// WildcardHost matches every client address.
	WildcardHost = "*"
	// PrincipalPrefix starts every principal: the proxy knows users only.
	PrincipalPrefix = "User:"
)

// Command type numbers of the ACL commands (command set 6).
const (
	TypeCreateACLs CommandType = 30
	TypeDeleteACLs CommandType = 31
)

// CreateACLs adds rules. A rule identical to one the state holds is not
// added twice, so re-running a CreateACLs changes nothing.
type CreateACLs struct {
	ACLs []ACL `json:"acls"`
}

// DeleteACLs removes every rule that matches any of Filters (Kafka's
// DeleteAcls). A filter that matches nothing is not an error.
type DeleteACLs struct {
	Filters []ACLFilter `json:"filters"`
}

func (*CreateACLs) Type() CommandType { return TypeCreateACLs }
func (*DeleteACLs) Type() CommandType { return TypeDeleteACLs }
func (*CreateACLs) isCommand()        {}
func (*DeleteACLs) isCommand()        {}

func (c *CreateACLs) Validate() error {
	if len(c.ACLs) == 0 {
		return fmt.Errorf("%w: create acls: no rules given", ErrInvalid)
	}
	if len(c.ACLs) > MaxACLs {
		return fmt.Errorf("%w: create acls: %d rules, at most %d in one request", ErrInvalid, len(c.ACLs), MaxACLs)
	}
	for _, a := range c.ACLs {
		if err := ValidateACL(a); err != nil {
			return err
		}
	}
	return nil
}

func (c *DeleteACLs) Validate() error {
	if len(c.Filters) == 0 {
		return fmt.Errorf("%w: delete acls: no filters given", ErrInvalid)
	}
	if len(c.Filters) > MaxACLs {
		return fmt.Errorf("%w: delete acls: %d filters, at most %d in one request", ErrInvalid, len(c.Filters), MaxACLs)
	}
	for _, f := range c.Filters {
		if err := ValidateACLFilter(f); err != nil {
			return err
		}
	}
	return nil
}

func (s *State) applyCreateACLs(c *CreateACLs) error {
	add := make([]ACL, 0, len(c.ACLs))
	for _, a := range c.ACLs {
		if _, found := slices.BinarySearchFunc(s.ACLs, a, CompareACLs); !found {
			add = append(add, a)
		}
	}
	slices.SortFunc(add, CompareACLs)
	add = slices.Compact(add)
	if len(add) == 0 {
		return nil
	}
	if n := len(s.ACLs) + len(add); n > MaxACLs {
		return fmt.Errorf("%w: create acls: the state would hold %d rules, at most %d; delete some first", ErrInvalid, n, MaxACLs)
	}
	merged := make([]ACL, 0, len(s.ACLs)+len(add))
	merged = append(merged, s.ACLs...)
	merged = append(merged, add...)
	slices.SortFunc(merged, CompareACLs)
	s.ACLs = merged
	return nil
}

func (s *State) applyDeleteACLs(c *DeleteACLs) error {
	var keep []ACL
	removed := false
	for i, a := range s.ACLs {
		match := slices.ContainsFunc(c.Filters, func(f ACLFilter) bool { return f.Matches(a) })
		if match && !removed {
			removed = true
			keep = append(make([]ACL, 0, len(s.ACLs)-1), s.ACLs[:i]...)
		}
		if !match && removed {
			keep = append(keep, a)
		}
	}
	if removed {
		s.ACLs = nilIfEmpty(keep)
	}
	return nil
}

// CompareACLs orders rules as the state keeps them: by resource type,
// pattern, resource name, principal, host, operation, permission.
func CompareACLs(a, b ACL) int {
	return cmp.Or(
		strings.Compare(a.ResourceType, b.ResourceType),
		strings.Compare(a.Pattern, b.Pattern),
		strings.Compare(a.ResourceName, b.ResourceName),
		strings.Compare(a.Principal, b.Principal),
		strings.Compare(a.Host, b.Host),
		strings.Compare(a.Operation, b.Operation),
		strings.Compare(a.Permission, b.Permission),
	)
}

// ACLFilter selects rules with Kafka's AclBindingFilter semantics. An empty
// field matches anything, as does "any" in ResourceType, Pattern, Operation
// and Permission. Principal and Host, when set, match exactly (the filter
// "User:*" finds the wildcard rules, not every rule). ResourceName, when
// set, matches exactly, except under Pattern "match", which finds every rule
// that applies to that name: literal rules naming it or "*", and prefixed
// rules whose prefix starts it.
type ACLFilter struct {
	Principal    string `json:"principal,omitempty"`
	Host         string `json:"host,omitempty"`
	ResourceType string `json:"resource_type,omitempty"`
	ResourceName string `json:"resource_name,omitempty"`
	Pattern      string `json:"pattern,omitempty"`
	Operation    string `json:"operation,omitempty"`
	Permission   string `json:"permission,omitempty"`
}

// ExactFilter is the filter that matches a and nothing else.
func ExactFilter(a ACL) ACLFilter { return ACLFilter(a) }

func anyOr(filter, v string) bool { return filter == "" || filter == FilterAny || filter == v }

// Matches reports whether a is one of the rules f selects.
func (f ACLFilter) Matches(a ACL) bool {
	if !anyOr(f.ResourceType, a.ResourceType) || !anyOr(f.Operation, a.Operation) || !anyOr(f.Permission, a.Permission) {
		return false
	}
	if f.Principal != "" && f.Principal != a.Principal || f.Host != "" && f.Host != a.Host {
		return false
	}
	if f.Pattern != "" && f.Pattern != FilterAny && f.Pattern != PatternMatch && f.Pattern != a.Pattern {
		return false
	}
	if f.ResourceName == "" {
		return true
	}
	if f.Pattern != PatternMatch {
		return f.ResourceName == a.ResourceName
	}
	switch a.Pattern {
	case PatternLiteral:
		return a.ResourceName == f.ResourceName || a.ResourceName == WildcardResource
	case PatternPrefixed:
		return strings.HasPrefix(f.ResourceName, a.ResourceName)
	}
	return false
}

// Filter returns the rules of s that f selects, in the state's order.
func (s *State) Filter(f ACLFilter) []ACL {
	var out []ACL
	for _, a := range s.ACLs {
		if f.Matches(a) {
			out = append(out, a)
		}
	}
	return out
}

// aclOperations is, per resource type, the operations Kafka defines for it
// (AclEntry.supportedOperations), "all" included.
var aclOperations = map[string][]string{
	ResourceTopic:           {OpAll, OpRead, OpWrite, OpCreate, OpDescribe, OpDelete, OpAlter, OpDescribeConfigs, OpAlterConfigs},
	ResourceGroup:           {OpAll, OpRead, OpDescribe, OpDelete},
	ResourceCluster:         {OpAll, OpCreate, OpClusterAction, OpDescribeConfigs, OpAlterConfigs, OpIdempotentWrite, OpAlter, OpDescribe},
	ResourceTransactionalID: {OpAll, OpDescribe, OpWrite},
}

// ACLOperations is the operations a rule on resourceType may name; nil for
// an unknown resource type.
func ACLOperations(resourceType string) []string { return slices.Clone(aclOperations[resourceType]) }

// ValidateACL checks one rule: principal "User:NAME" or "User:*"; host "*"
// or an IP address in its canonical form; resource type topic, group,
// transactional_id or cluster; pattern literal or prefixed; a resource name
// valid for its type ("*" for every resource with pattern literal, and
// "kafka-cluster" for the cluster); an operation Kafka defines for the
// resource type; permission allow or deny.
func ValidateACL(a ACL) error {
	if err := validPrincipal(a.Principal); err != nil {
		return err
	}
	if err := validACLHost(a.Host); err != nil {
		return err
	}
	ops, ok := aclOperations[a.ResourceType]
	if !ok {
		return fmt.Errorf("%w: acl resource type %q is not one of topic, group, transactional_id, cluster", ErrInvalid, a.ResourceType)
	}
	if a.Pattern != PatternLiteral && a.Pattern != PatternPrefixed {
		return fmt.Errorf("%w: acl pattern %q is not literal or prefixed", ErrInvalid, a.Pattern)
	}
	if err := validACLResource(a.ResourceType, a.Pattern, a.ResourceName); err != nil {
		return err
	}
	if !slices.Contains(ops, a.Operation) {
		return fmt.Errorf("%w: acl operation %q is not one Kafka defines for a %s (%s)", ErrInvalid, a.Operation, a.ResourceType, strings.Join(ops, ", "))
	}
	if a.Permission != PermissionAllow && a.Permission != PermissionDeny {
		return fmt.Errorf("%w: acl permission %q is not allow or deny", ErrInvalid, a.Permission)
	}
	return nil
}

// ValidateACLFilter checks a filter: each field empty (any) or a value a
// rule may hold, "any" where Kafka allows it, pattern "match" too.
func ValidateACLFilter(f ACLFilter) error {
	if f.Principal != "" {
		if err := validPrincipal(f.Principal); err != nil {
			return err
		}
	}
	if f.Host != "" {
		if err := validACLHost(f.Host); err != nil {
			return err
		}
	}
	ops := allOperations
	if f.ResourceType != "" && f.ResourceType != FilterAny {
		var ok bool
		if ops, ok = aclOperations[f.ResourceType]; !ok {
			return fmt.Errorf("%w: acl filter resource type %q is not one of any, topic, group, transactional_id, cluster", ErrInvalid, f.ResourceType)
		}
	}
	switch f.Pattern {
	case "", FilterAny, PatternMatch, PatternLiteral, PatternPrefixed:
	default:
		return fmt.Errorf("%w: acl filter pattern %q is not one of any, match, literal, prefixed", ErrInvalid, f.Pattern)
	}
	if err := validText("acl filter resource name", f.ResourceName, maxTextLen); err != nil {
		return err
	}
	if f.Operation != "" && f.Operation != FilterAny && !slices.Contains(ops, f.Operation) {
		return fmt.Errorf("%w: acl filter operation %q is not any or one of %s", ErrInvalid, f.Operation, strings.Join(ops, ", "))
	}
	switch f.Permission {
	case "", FilterAny, PermissionAllow, PermissionDeny:
	default:
		return fmt.Errorf("%w: acl filter permission %q is not one of any, allow, deny", ErrInvalid, f.Permission)
	}
	return nil
}

var allOperations = []string{OpAll, OpRead, OpWrite, OpCreate, OpDelete, OpAlter, OpDescribe, OpClusterAction, OpDescribeConfigs, OpAlterConfigs, OpIdempotentWrite}

func validPrincipal(p string) error {
	name, ok := strings.CutPrefix(p, PrincipalPrefix)
	if !ok || name == "" {
		return fmt.Errorf("%w: acl principal %q is not User:NAME or User:*", ErrInvalid, p)
	}
	return validText("acl principal", p, maxTextLen)
}

func validACLHost(h string) error {
	if h == WildcardHost {
		return nil
	}
	ip, err := netip.ParseAddr(h)
	if err != nil || ip.Zone() != "" {
		return fmt.Errorf("%w: acl host %q is not * or an IP address", ErrInvalid, h)
	}
	if ip.Unmap().String() != h {
		return fmt.Errorf("%w: acl host %q: write the address as %s", ErrInvalid, h, ip.Unmap())
	}
	return nil
}

func validACLResource(typ, pattern, name string) error {
	if name == "" {
		return fmt.Errorf("%w: acl on a %s has an empty resource name", ErrInvalid, typ)
	}
	if name == WildcardResource {
		if pattern != PatternLiteral {
			return fmt.Errorf("%w: acl resource name * (every %s) needs pattern literal", ErrInvalid, typ)
		}
		if typ != ResourceCluster {
			return nil
		}
	}
	switch typ {
	case ResourceCluster:
		if name != ClusterResourceName || pattern != PatternLiteral {
			return fmt.Errorf("%w: the cluster resource is named %q with pattern literal, not %q (%s)", ErrInvalid, ClusterResourceName, name, pattern)
		}
	case ResourceTopic:
		return validTopic("acl topic", name, pattern == PatternPrefixed)
	default:
		return validText("acl "+typ, name, maxTextLen)
	}
	return nil
}

// validateACLs checks the acls section of a state: at most MaxACLs valid
// rules, sorted and unique.
func validateACLs(acls []ACL) error {
	if len(acls) > MaxACLs {
		return fmt.Errorf("%w: %d acls, at most %d allowed", ErrInvalid, len(acls), MaxACLs)
	}
	for i, a := range acls {
		if err := ValidateACL(a); err != nil {
			return err
		}
		if i > 0 && CompareACLs(acls[i-1], a) >= 0 {
			return fmt.Errorf("%w: acls not sorted or repeated at %+v", ErrInvalid, a)
		}
	}
	return nil
}
