package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestParseCtlACLs: acls add posts the rule, list and delete send the
// filters as query parameters, delete needs a filter, and the answers
// print as tables.
func TestParseCtlACLs(t *testing.T) {
	_, call, err := parseCtl(strings.Fields("acls add --principal User:alice --resource-type topic --resource-name orders --pattern prefixed --operation write"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(call.body)
	if call.method != "POST" || call.path != "/v1/acls" ||
		string(body) != `{"principal":"User:alice","resource_type":"topic","resource_name":"orders","pattern":"prefixed","operation":"write"}` {
		t.Fatalf("add: %s %s %s", call.method, call.path, body)
	}
	var b strings.Builder
	if err := call.show(&b, []byte(`[{"principal":"User:alice","host":"*","resource_type":"topic","resource_name":"orders","pattern":"prefixed","operation":"write","permission":"allow"}]`), "7"); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "1 rules added\nPRINCIPAL") || !strings.Contains(b.String(), "User:alice  *     topic          prefixed  orders") {
		t.Fatalf("rendered\n%s", b.String())
	}
	if _, _, err := parseCtl(strings.Fields("acls add --principal User:alice --resource-type topic --operation write"), noEnv); err == nil || !strings.Contains(err.Error(), "--resource-name") {
		t.Fatalf("add without a name: %v", err)
	}

	_, call, err = parseCtl(strings.Fields("acls list --principal User:alice --operation read"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if call.method != "GET" || call.query.Encode() != "operation=read&principal=User%3Aalice" {
		t.Fatalf("list: %s ?%s", call.method, call.query.Encode())
	}
	b.Reset()
	if err := call.show(&b, []byte(`[]`), ""); err != nil || b.String() != "no acls\n" {
		t.Fatalf("empty list rendered %q (%v)", b.String(), err)
	}

	_, call, err = parseCtl(strings.Fields("acls delete --resource-type group"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if call.method != "DELETE" || call.query.Encode() != "resource_type=group" {
		t.Fatalf("delete: %s ?%s", call.method, call.query.Encode())
	}
	if _, _, err := parseCtl(strings.Fields("acls delete"), noEnv); err == nil || !strings.Contains(err.Error(), "at least one filter") {
		t.Fatalf("delete without a filter: %v", err)
	}
}
