package adminapi

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// openAPISchemas reads the top-level property names of every schema under
// components/schemas of docs/openapi.yaml, following allOf members and
// their $refs. It reads the file's own layout (two-space indents, one key
// a line), which TestOpenAPIDescribesTheAPI in node relies on too.
func openAPISchemas(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string][]string{}
	var cur string
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case l == "  schemas:":
			in = true
		case in && l != "" && !strings.HasPrefix(l, "    "):
			in = false
		case !in:
		case len(l) > 4 && l[4] != ' ' && strings.HasSuffix(l, ":"):
			cur = strings.TrimSuffix(strings.TrimSpace(l), ":")
			blocks[cur] = nil
		case cur != "":
			blocks[cur] = append(blocks[cur], l)
		}
	}
	var props func(name string, depth int) []string
	props = func(name string, depth int) []string {
		lines, ok := blocks[name]
		if !ok || depth > 8 {
			t.Fatalf("openapi.yaml has no schema %q", name)
		}
		var out []string
		indent := -1 // the indent of the keys of the properties block being read
		allOf := false
		for _, l := range lines {
			trimmed := strings.TrimLeft(l, " ")
			lead := len(l) - len(trimmed)
			switch {
			case l == "      allOf:":
				allOf = true
			case l == "      properties:" || (allOf && l == "          properties:"):
				indent = lead + 2
				continue
			case indent >= 0 && trimmed != "" && lead < indent:
				indent = -1
			}
			if indent >= 0 && lead == indent {
				if key, _, ok := strings.Cut(trimmed, ":"); ok {
					out = append(out, key)
				}
			}
			if ref, ok := strings.CutPrefix(l, `        - $ref: "#/components/schemas/`); ok {
				out = append(out, props(strings.TrimSuffix(ref, `"`), depth+1)...)
			}
		}
		return out
	}
	out := map[string][]string{}
	for name := range blocks {
		out[name] = props(name, 0)
	}
	return out
}

// jsonFields lists the JSON names of a struct's fields, embedded structs
// without a tag flattened as encoding/json does.
func jsonFields(typ reflect.Type) []string {
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

// TestWireTypesMatchOpenAPI: every wire type has exactly the properties
// its schema in docs/openapi.yaml documents, so the server, ctl and the
// document cannot drift apart.
func TestWireTypesMatchOpenAPI(t *testing.T) {
	schemas := openAPISchemas(t)
	for _, tc := range []struct {
		schema string
		v      any
	}{
		{"Status", Status{}},
		{"Peer", Peer{}},
		{"PeerList", PeerList{}},
		{"PeerAllowList", AllowList{}},
		{"Routes", Routes{}},
		{"RouteTarget", RouteBody{}},
		{"DefaultCluster", RouteBody{}},
		{"RouteResolution", RouteResolution{}},
		{"QuotaList", QuotaList{}},
		{"QuotaView", QuotaView{}},
		{"QuotaShare", QuotaShare{}},
		{"QuotaRates", QuotaBody{}},
		{"Topic", Topic{}},
		{"TopicList", TopicList{}},
		{"Cluster", fsm.Cluster{}},
		{"Cluster", ClusterBody{}},
		{"ClusterTLS", fsm.ClusterTLS{}},
		{"ClusterSASL", fsm.ClusterSASL{}},
		{"ClusterList", ClusterList{}},
		{"ClusterHealth", ClusterHealth{}},
		{"FailoverEntry", FailoverEntry{}},
		{"Region", fsm.Region{}},
		{"RegionBody", RegionBody{}},
		{"User", User{}},
		{"UserList", UserList{}},
		{"UserBody", UserBody{}},
		{"ACL", ACL{}},
		{"ACL", fsm.ACL{}},
		{"ACLFilter", fsm.ACLFilter{}},
		{"MigrationStart", MigrationStart{}},
		{"Migration", Migration{}},
		{"MigrationList", MigrationList{}},
		{"MigrationBehind", MigrationBehind{}},
		{"GroupList", GroupList{}},
		{"GroupListing", GroupListing{}},
		{"Group", Group{}},
		{"GroupMember", GroupMember{}},
		{"GroupTopic", GroupTopic{}},
		{"OffsetResetRequest", OffsetResetRequest{}},
		{"OffsetResetTarget", fsm.ResetTarget{}},
		{"OffsetResetTo", fsm.ResetTo{}},
		{"OffsetResetDryRun", OffsetResetDryRun{}},
		{"OffsetReset", fsm.OffsetReset{}},
		{"RestoreReport", RestoreReport{}},
	} {
		doc := slices.Sorted(slices.Values(schemas[tc.schema]))
		doc = slices.Compact(doc)
		// Compacted: a field that shadows an embedded one (ClusterBody's
		// name) is listed twice by jsonFields but encoded once.
		goNames := slices.Compact(slices.Sorted(slices.Values(jsonFields(reflect.TypeOf(tc.v)))))
		if !slices.Equal(doc, goNames) {
			t.Errorf("schema %s documents %v; Go type %T encodes %v", tc.schema, doc, tc.v, goNames)
		}
	}
}
