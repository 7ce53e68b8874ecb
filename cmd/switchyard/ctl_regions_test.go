package main

import (
	"strings"
	"testing"
)

// TestParseCtlRouteRegion: routes get TOPIC --region asks the resolution
// for that region's clients; --region is refused for a prefix rule.
func TestParseCtlRouteRegion(t *testing.T) {
	_, call, err := parseCtl(strings.Fields("routes get orders --region dc2"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if call.method != "GET" || call.path != "/v1/routes/orders" || call.query.Encode() != "region=dc2" {
		t.Fatalf("call %s %s ?%s, want GET /v1/routes/orders ?region=dc2", call.method, call.path, call.query.Encode())
	}
	var b strings.Builder
	if err := call.show(&b, []byte(`{"topic":"orders","region":"dc2","cluster":"west","match":"exact","rule":"orders"}`), ""); err != nil {
		t.Fatal(err)
	}
	if want := "TOPIC   REGION  CLUSTER  MATCH  RULE\norders  dc2     west     exact  orders\n"; b.String() != want {
		t.Fatalf("rendered\n%s\nwant\n%s", b.String(), want)
	}
	if _, _, err := parseCtl(strings.Fields("routes get --prefix logs. --region dc2"), noEnv); err == nil || !strings.Contains(err.Error(), "--region resolves a TOPIC") {
		t.Fatalf("--region with --prefix: %v", err)
	}
}
