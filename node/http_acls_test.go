package node

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestACLsAPI walks POST, GET and DELETE /v1/acls against a real one-peer
// cluster: defaults, filters, refusals that change nothing, and a delete
// that answers what it deleted.
func TestACLsAPI(t *testing.T) {
	n := startSolo(t, "tok")
	steps := []struct {
		name, method, path, body string
		status                   int
		contains                 string
	}{
		{"none yet", "GET", "/v1/acls", "", 200, `[]`},
		{"bad principal", "POST", "/v1/acls", `{"principal":"alice","resource_type":"topic","resource_name":"orders","operation":"write"}`, 400, "not User:NAME"},
		{"operation not for a group", "POST", "/v1/acls", `{"principal":"User:alice","resource_type":"group","resource_name":"g","operation":"write"}`, 400, "not one Kafka defines for a group"},
		{"unknown field", "POST", "/v1/acls", `{"principal":"User:alice","resource":"topic"}`, 400, "unknown field"},
		{"one and a list", "POST", "/v1/acls", `{"principal":"User:alice","acls":[]}`, 400, "not both"},
		{"empty", "POST", "/v1/acls", `{}`, 400, "no rule given"},
		{"a list with one bad rule", "POST", "/v1/acls", `{"acls":[{"principal":"User:a","resource_type":"topic","resource_name":"t","operation":"read"},{"principal":"User:b","resource_type":"cluster","resource_name":"c","operation":"alter"}]}`, 400, "kafka-cluster"},
		{"nothing changed", "GET", "/v1/acls", "", 200, `[]`},
		{"one rule with defaults", "POST", "/v1/acls", `{"principal":"User:alice","resource_type":"topic","resource_name":"orders","operation":"write"}`, 200, `"permission": "allow"`},
		{"a list", "POST", "/v1/acls", `{"acls":[{"principal":"User:alice","resource_type":"topic","resource_name":"logs.","pattern":"prefixed","operation":"read"},{"principal":"User:*","host":"10.0.0.1","resource_type":"group","resource_name":"g","operation":"read","permission":"deny"}]}`, 200, `"logs."`},
		{"list", "GET", "/v1/acls", "", 200, `"User:*"`},
		{"filter by principal", "GET", "/v1/acls?principal=User:*", "", 200, `"group"`},
		{"match filter", "GET", "/v1/acls?resource_type=topic&resource_name=logs.app&pattern=match", "", 200, `"logs."`},
		{"bad filter", "GET", "/v1/acls?pattern=exact", "", 400, "pattern"},
		{"unknown parameter", "GET", "/v1/acls?user=alice", "", 400, "unknown query parameter"},
		{"empty delete", "DELETE", "/v1/acls", "", 400, "resource_type=any"},
		{"delete by query", "DELETE", "/v1/acls?principal=User:alice&resource_name=orders", "", 200, `"orders"`},
		{"delete by body", "DELETE", "/v1/acls", `{"resource_type":"group"}`, 200, `"deny"`},
		{"delete matching nothing", "DELETE", "/v1/acls?principal=User:nobody", "", 200, `[]`},
	}
	for _, s := range steps {
		code, _, body := call(t, n, s.method, s.path, "tok", s.body)
		if code != s.status || !strings.Contains(body, s.contains) {
			t.Fatalf("%s: %s %s answered %d %s; want %d containing %q", s.name, s.method, s.path, code, body, s.status, s.contains)
		}
	}
	_, _, body := call(t, n, "GET", "/v1/acls", "tok", "")
	var left []map[string]string
	if err := json.Unmarshal([]byte(body), &left); err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0]["resource_name"] != "logs." || left[0]["host"] != "*" {
		t.Fatalf("left after deletes: %s", body)
	}
}
