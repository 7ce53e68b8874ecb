package fsm

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// testACL is an allow rule on a literal topic from any host.
func testACL(principal, topic, op string) ACL {
	return ACL{Principal: principal, Host: WildcardHost, ResourceType: ResourceTopic, ResourceName: topic,
		Pattern: PatternLiteral, Operation: op, Permission: PermissionAllow}
}

func TestACLValidation(t *testing.T) {
	ok := testACL("User:alice", "orders", OpWrite)
	with := func(f func(*ACL)) ACL { a := ok; f(&a); return a }
	valid := []ACL{
		ok,
		with(func(a *ACL) { a.Principal = WildcardPrincipal }),
		with(func(a *ACL) { a.Host = "10.0.0.1" }),
		with(func(a *ACL) { a.Host = "fd00::1" }),
		with(func(a *ACL) { a.ResourceName = WildcardResource }),
		with(func(a *ACL) { a.Pattern = PatternPrefixed; a.ResourceName = "ord" }),
		with(func(a *ACL) { a.Permission = PermissionDeny; a.Operation = OpAll }),
		with(func(a *ACL) { a.ResourceType = ResourceGroup; a.ResourceName = "billing group/1"; a.Operation = OpRead }),
		with(func(a *ACL) {
			a.ResourceType = ResourceTransactionalID
			a.ResourceName = "tx-"
			a.Pattern = PatternPrefixed
		}),
		with(func(a *ACL) {
			a.ResourceType = ResourceCluster
			a.ResourceName = ClusterResourceName
			a.Operation = OpIdempotentWrite
		}),
	}
	for _, a := range valid {
		if err := ValidateACL(a); err != nil {
			t.Errorf("%+v: %v", a, err)
		}
	}
	invalid := []struct {
		acl  ACL
		want string
	}{
		{with(func(a *ACL) { a.Principal = "alice" }), "not User:NAME"},
		{with(func(a *ACL) { a.Principal = "User:" }), "not User:NAME"},
		{with(func(a *ACL) { a.Principal = "Group:x" }), "not User:NAME"},
		{with(func(a *ACL) { a.Principal = "User:a\nb" }), "control character"},
		{with(func(a *ACL) { a.Host = "" }), "not * or an IP"},
		{with(func(a *ACL) { a.Host = "example.com" }), "not * or an IP"},
		{with(func(a *ACL) { a.Host = "::ffff:10.0.0.1" }), "write the address as 10.0.0.1"},
		{with(func(a *ACL) { a.ResourceType = "delegation_token" }), "resource type"},
		{with(func(a *ACL) { a.Pattern = "match" }), "not literal or prefixed"},
		{with(func(a *ACL) { a.ResourceName = "" }), "empty resource name"},
		{with(func(a *ACL) { a.ResourceName = "a b" }), "Kafka topic names"},
		{with(func(a *ACL) { a.ResourceName = "*"; a.Pattern = PatternPrefixed }), "needs pattern literal"},
		{with(func(a *ACL) { a.Operation = OpIdempotentWrite }), "not one Kafka defines for a topic"},
		{with(func(a *ACL) { a.Operation = "any" }), "not one Kafka defines"},
		{with(func(a *ACL) { a.ResourceType = ResourceGroup; a.Operation = OpWrite }), "not one Kafka defines for a group"},
		{with(func(a *ACL) { a.ResourceType = ResourceCluster }), "cluster resource is named"},
		{with(func(a *ACL) {
			a.ResourceType = ResourceCluster
			a.ResourceName = ClusterResourceName
			a.Pattern = PatternPrefixed
			a.Operation = OpAlter
		}), "cluster resource is named"},
		{with(func(a *ACL) { a.Permission = "any" }), "not allow or deny"},
	}
	for _, tc := range invalid {
		err := ValidateACL(tc.acl)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.acl, err, tc.want)
		}
		if err := New(nil).State().Check(&CreateACLs{ACLs: []ACL{ok, tc.acl}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateACLs with %+v: %v, want ErrInvalid", tc.acl, err)
		}
	}
	for _, f := range []ACLFilter{{Pattern: "exact"}, {ResourceType: "user"}, {Operation: "fly"}, {Permission: "maybe"},
		{Principal: "bob"}, {Host: "h"}, {ResourceType: ResourceGroup, Operation: OpWrite}} {
		if err := ValidateACLFilter(f); !errors.Is(err, ErrInvalid) {
			t.Errorf("filter %+v: %v, want ErrInvalid", f, err)
		}
	}
	for _, cmd := range []Command{&CreateACLs{}, &DeleteACLs{}} {
		if err := cmd.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("empty %s: %v, want ErrInvalid", cmd.Type(), err)
		}
	}
}

// TestACLFilterMatches: Kafka's AclBindingFilter semantics.
func TestACLFilterMatches(t *testing.T) {
	lit := testACL("User:alice", "orders", OpWrite)
	wild := testACL("User:alice", "*", OpRead)
	pre := ACL{Principal: "User:*", Host: "10.0.0.1", ResourceType: ResourceTopic, ResourceName: "ord", Pattern: PatternPrefixed, Operation: OpRead, Permission: PermissionDeny}
	grp := ACL{Principal: "User:alice", Host: "*", ResourceType: ResourceGroup, ResourceName: "orders", Pattern: PatternLiteral, Operation: OpRead, Permission: PermissionAllow}
	all := []ACL{lit, wild, pre, grp}
	cases := []struct {
		f    ACLFilter
		want []ACL
	}{
		{ACLFilter{}, all},
		{ACLFilter{ResourceType: FilterAny, Pattern: FilterAny, Operation: FilterAny, Permission: FilterAny}, all},
		{ACLFilter{ResourceType: ResourceTopic}, []ACL{lit, wild, pre}},
		{ACLFilter{ResourceName: "orders"}, []ACL{lit, grp}},
		{ACLFilter{ResourceName: "orders", Pattern: PatternMatch}, all},
		{ACLFilter{ResourceName: "orders", Pattern: PatternMatch, ResourceType: ResourceTopic}, []ACL{lit, wild, pre}},
		{ACLFilter{ResourceName: "payments", Pattern: PatternMatch}, []ACL{wild}},
		{ACLFilter{ResourceName: "ord", Pattern: PatternPrefixed}, []ACL{pre}},
		{ACLFilter{ResourceName: "ord", Pattern: PatternLiteral}, nil},
		{ACLFilter{Pattern: PatternPrefixed}, []ACL{pre}},
		{ACLFilter{Principal: "User:*"}, []ACL{pre}},
		{ACLFilter{Principal: "User:alice", Operation: OpRead}, []ACL{wild, grp}},
		{ACLFilter{Host: "10.0.0.1"}, []ACL{pre}},
		{ACLFilter{Permission: PermissionDeny}, []ACL{pre}},
	}
	for _, tc := range cases {
		var got []ACL
		for _, a := range all {
			if tc.f.Matches(a) {
				got = append(got, a)
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("filter %+v matched %v, want %v", tc.f, got, tc.want)
		}
	}
	if !ExactFilter(lit).Matches(lit) || ExactFilter(lit).Matches(wild) {
		t.Error("ExactFilter must match its rule only")
	}
}

func TestACLCommands(t *testing.T) {
	f := New(nil)
	a, b := testACL("User:a", "t", OpRead), testACL("User:b", "t", OpRead)
	applyOK(t, f, &CreateACLs{ACLs: []ACL{b, a}})
	before := f.State()
	applyOK(t, f, &CreateACLs{ACLs: []ACL{a}})
	if !reflect.DeepEqual(f.State().ACLs, before.ACLs) {
		t.Fatalf("re-creating a rule changed the acls: %+v", f.State().ACLs)
	}
	applyOK(t, f, &DeleteACLs{Filters: []ACLFilter{{Principal: "User:nobody"}}})
	if len(f.State().ACLs) != 2 {
		t.Fatalf("a filter matching nothing deleted rules: %+v", f.State().ACLs)
	}
	applyOK(t, f, &DeleteACLs{Filters: []ACLFilter{{ResourceType: ResourceTopic}}})
	if st := f.State(); st.ACLs != nil {
		t.Fatalf("acls %+v, want nil after deleting all", st.ACLs)
	}
	if len(before.ACLs) != 2 {
		t.Fatal("an older State changed under its readers")
	}
}

func TestACLBound(t *testing.T) {
	st := &State{}
	many := make([]ACL, MaxACLs)
	for i := range many {
		many[i] = testACL("User:u"+strings.Repeat("x", i%7)+string(rune('a'+i%26)), "t"+itoa(i), OpRead)
	}
	next, err := st.Next(&CreateACLs{ACLs: many}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Validate(); err != nil {
		t.Fatal(err)
	}
	_, err = next.Next(&CreateACLs{ACLs: []ACL{testACL("User:z", "one-more", OpRead)}}, 2)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "at most 100000") {
		t.Fatalf("one rule past the bound: %v", err)
	}
	// Re-creating existing rules at the bound is not an error.
	if _, err := next.Next(&CreateACLs{ACLs: many[:3]}, 2); err != nil {
		t.Fatal(err)
	}
	unsorted := &State{ACLs: []ACL{testACL("User:b", "t", OpRead), testACL("User:a", "t", OpRead)}}
	if err := unsorted.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unsorted acls section: %v", err)
	}
	bad := &State{ACLs: []ACL{testACL("nobody", "t", OpRead)}}
	if err := bad.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid rule in the acls section: %v", err)
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}

func TestACLSnapshotRoundTrip(t *testing.T) {
	f := New(nil)
	applyOK(t, f, &CreateACLs{ACLs: []ACL{testACL("User:a", "t", OpRead),
		{Principal: "User:*", Host: "fd00::1", ResourceType: ResourceTransactionalID, ResourceName: "tx-", Pattern: PatternPrefixed, Operation: OpWrite, Permission: PermissionDeny}}})
	g := New(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f.State())))); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g.State().ACLs, f.State().ACLs) {
		t.Fatalf("restored acls %+v, want %+v", g.State().ACLs, f.State().ACLs)
	}
	if got := TypeCreateACLs.Introduced(); got != 6 {
		t.Fatalf("CreateACLs introduced in set %d, want 6", got)
	}
	if got := TypeDeleteACLs.Introduced(); got != 6 {
		t.Fatalf("DeleteACLs introduced in set %d, want 6", got)
	}
}
