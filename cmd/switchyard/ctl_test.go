package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
	"github.com/switchyard-proxy/switchyard/sandbox"
)

func noEnv(string) string { return "" }

// bodyJSON encodes a call's body as do would send it ("" for none).
func bodyJSON(t *testing.T, body any) string {
	t.Helper()
	if body == nil {
		return ""
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestParseCtlCommands checks the API call every command line makes,
// including flags after positional arguments and escaped path segments.
func TestParseCtlCommands(t *testing.T) {
	cases := []struct {
		args   string
		method string
		path   string
		body   string
	}{
		{"status", "GET", "/v1/status", ""},
		{"peers", "GET", "/v1/peers", ""},
		{"peers allow-list", "GET", "/v1/peers/allow-list", ""},
		{"peers allow kafka-a4", "PUT", "/v1/peers/allow-list/kafka-a4", ""},
		{"peers disallow kafka-a4", "DELETE", "/v1/peers/allow-list/kafka-a4", ""},
		{"peers remove kafka-b1", "DELETE", "/v1/peers/kafka-b1", ""},

		{"clusters list", "GET", "/v1/clusters", ""},
		{"clusters get east", "GET", "/v1/clusters/east", ""},
		{"clusters set east --bootstrap 10.0.0.1:9093,10.0.0.2:9093 --region east", "PUT", "/v1/clusters/east",
			`{"bootstrap":["10.0.0.1:9093","10.0.0.2:9093"],"region":"east"}`},
		{"clusters set --bootstrap a:1 east --bootstrap b:2", "PUT", "/v1/clusters/east", `{"bootstrap":["a:1","b:2"]}`},
		{"clusters set east --bootstrap a:1 --tls --tls-ca-file /ca.pem --tls-cert-file /c.pem --tls-key-file /k.pem " +
			"--tls-server-name kafka.internal --tls-insecure-skip-verify --sasl-mechanism SCRAM-SHA-512 " +
			"--sasl-username svc --sasl-password-file /pw", "PUT", "/v1/clusters/east",
			`{"bootstrap":["a:1"],"tls":{"ca_file":"/ca.pem","cert_file":"/c.pem","key_file":"/k.pem",` +
				`"server_name":"kafka.internal","insecure_skip_verify":true},` +
				`"sasl":{"mechanism":"SCRAM-SHA-512","username":"svc","password_file":"/pw"}}`},
		{"clusters set east --bootstrap a:1 --tls-ca-file /ca.pem", "PUT", "/v1/clusters/east",
			`{"bootstrap":["a:1"],"tls":{"ca_file":"/ca.pem"}}`},
		{"clusters set east --bootstrap a:1 --tls", "PUT", "/v1/clusters/east", `{"bootstrap":["a:1"],"tls":{}}`},
		{"clusters set east --bootstrap a:1 --sasl-mechanism OAUTHBEARER --sasl-token-endpoint https://idp/t " +
			"--sasl-client-id proxy --sasl-client-secret-file /s --sasl-scope kafka", "PUT", "/v1/clusters/east",
			`{"bootstrap":["a:1"],"sasl":{"mechanism":"OAUTHBEARER","token_endpoint":"https://idp/t","client_id":"proxy",` +
				`"client_secret_file":"/s","scope":"kafka"}}`},
		{"clusters set east --bootstrap a:1 --sasl-mechanism OAUTHBEARER --sasl-token-file /jwt", "PUT", "/v1/clusters/east",
			`{"bootstrap":["a:1"],"sasl":{"mechanism":"OAUTHBEARER","token_file":"/jwt"}}`},
		{"clusters delete east", "DELETE", "/v1/clusters/east", ""},

		{"routes list", "GET", "/v1/routes", ""},
		{"routes get orders", "GET", "/v1/routes/orders", ""},
		{"routes get --prefix logs.", "GET", "/v1/prefix-routes/logs.", ""},
		{"routes get --group billing-", "GET", "/v1/group-routes/billing-", ""},
		{"routes set orders east", "PUT", "/v1/routes/orders", `{"cluster":"east"}`},
		{"routes set --prefix logs. west", "PUT", "/v1/prefix-routes/logs.", `{"cluster":"west"}`},
		{"routes set west --prefix logs.", "PUT", "/v1/prefix-routes/logs.", `{"cluster":"west"}`},
		{"routes set --group billing- west", "PUT", "/v1/group-routes/billing-", `{"cluster":"west"}`},
		{"routes set orders east --region dc1=east --region dc2=west --fallback east,west --resume timestamp --failback manual", "PUT", "/v1/routes/orders",
			`{"cluster":"east","regions":{"dc1":"east","dc2":"west"},"fallback":["east","west"],"resume":"timestamp","failback":"manual"}`},
		{"routes set --prefix logs. west --region a=east", "PUT", "/v1/prefix-routes/logs.", `{"cluster":"west","regions":{"a":"east"}}`},
		{"routes default east --fallback west", "PUT", "/v1/default-cluster", `{"cluster":"east","fallback":["west"]}`},
		{"regions list", "GET", "/v1/regions", ""},
		{"regions set dc1 --network 10.1.0.0/16 --network 10.3.0.0/16,10.4.0.0/16 --fallback dc2", "PUT", "/v1/regions/dc1",
			`{"networks":["10.1.0.0/16","10.3.0.0/16","10.4.0.0/16"],"fallback":["dc2"]}`},
		{"regions set dc2", "PUT", "/v1/regions/dc2", `{"networks":[],"fallback":[]}`},
		{"regions delete dc1", "DELETE", "/v1/regions/dc1", ""},
		{"routes set west --group=billing-", "PUT", "/v1/group-routes/billing-", `{"cluster":"west"}`},
		{"routes delete orders", "DELETE", "/v1/routes/orders", ""},
		{"routes delete --prefix logs.", "DELETE", "/v1/prefix-routes/logs.", ""},
		{"routes delete --group billing-", "DELETE", "/v1/group-routes/billing-", ""},
		{"routes default", "GET", "/v1/default-cluster", ""},
		{"routes default east", "PUT", "/v1/default-cluster", `{"cluster":"east"}`},
		{"routes default --clear", "DELETE", "/v1/default-cluster", ""},

		{"quotas list", "GET", "/v1/quotas", ""},
		{"quotas get orders", "GET", "/v1/quotas/orders", ""},
		{"quotas get --prefix logs.", "GET", "/v1/prefix-quotas/logs.", ""},
		{"quotas set orders --produce 1MiB --fetch 500KB", "PUT", "/v1/quotas/orders",
			`{"produce_bytes_per_sec":1048576,"fetch_bytes_per_sec":500000}`},
		{"quotas set --produce 10MB/s orders", "PUT", "/v1/quotas/orders",
			`{"produce_bytes_per_sec":10000000,"fetch_bytes_per_sec":0}`},
		{"quotas set orders", "PUT", "/v1/quotas/orders", `{"produce_bytes_per_sec":0,"fetch_bytes_per_sec":0}`},
		{"quotas set --prefix logs. --fetch 2GiB", "PUT", "/v1/prefix-quotas/logs.",
			`{"produce_bytes_per_sec":0,"fetch_bytes_per_sec":2147483648}`},
		{"quotas delete orders", "DELETE", "/v1/quotas/orders", ""},
		{"quotas delete --prefix logs.", "DELETE", "/v1/prefix-quotas/logs.", ""},

		// Escaping: group ids are any text, and "." and ".." are legal
		// prefixes that must not become relative paths.
		{"routes set --group a/b?c%d#e_f west", "PUT", "/v1/group-routes/a%2Fb%3Fc%25d%23e_f", `{"cluster":"west"}`},
		{"routes set --group .. west", "PUT", "/v1/group-routes/%2E%2E", `{"cluster":"west"}`},
		{"quotas get --prefix .", "GET", "/v1/prefix-quotas/%2E", ""},
		// "--" ends the flags: a topic may start with '-'.
		{"routes set -- -odd east", "PUT", "/v1/routes/-odd", `{"cluster":"east"}`},
		{"routes get -- -odd", "GET", "/v1/routes/-odd", ""},
	}
	for _, tc := range cases {
		t.Run(tc.args, func(t *testing.T) {
			_, call, err := parseCtl(strings.Fields(tc.args), noEnv)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if call.method != tc.method || call.path != tc.path {
				t.Errorf("call %s %s, want %s %s", call.method, call.path, tc.method, tc.path)
			}
			if got := bodyJSON(t, call.body); got != tc.body {
				t.Errorf("body %s\nwant %s", got, tc.body)
			}
			if call.query != nil {
				t.Errorf("query %v, want none", call.query)
			}
			if call.show == nil {
				t.Error("no show function")
			}
		})
	}
}

func TestParseCtlGlobalFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want ctlOptions
	}{
		{"defaults", []string{"status"}, nil,
			ctlOptions{server: "http://127.0.0.1:18080", output: "table", timeout: 10 * time.Second}},
		{"env", []string{"status"}, map[string]string{"SWITCHYARD_SERVER": "10.0.0.1:18080", "SWITCHYARD_TOKEN_FILE": "/etc/tok"},
			ctlOptions{server: "http://10.0.0.1:18080", tokenFile: "/etc/tok", output: "table", timeout: 10 * time.Second}},
		{"flags win over env", []string{"--server", "https://admin.example:8443/switchyard/", "--token-file", "/t", "status"},
			map[string]string{"SWITCHYARD_SERVER": "10.0.0.1:18080", "SWITCHYARD_TOKEN_FILE": "/etc/tok"},
			ctlOptions{server: "https://admin.example:8443/switchyard", tokenFile: "/t", output: "table", timeout: 10 * time.Second}},
		{"json timeout consistent", []string{"-o", "json", "--timeout", "3s", "--consistent", "status"}, nil,
			ctlOptions{server: "http://127.0.0.1:18080", output: "json", timeout: 3 * time.Second, consistent: true}},
		{"ca file from env", []string{"--server", "https://10.0.0.1:18443", "status"}, map[string]string{"SWITCHYARD_CA_FILE": "/etc/ca.pem"},
			ctlOptions{server: "https://10.0.0.1:18443", caFile: "/etc/ca.pem", output: "table", timeout: 10 * time.Second}},
		{"ca file flag wins over env", []string{"--ca-file", "/ca2.pem", "status"}, map[string]string{"SWITCHYARD_CA_FILE": "/etc/ca.pem"},
			ctlOptions{server: "http://127.0.0.1:18080", caFile: "/ca2.pem", output: "table", timeout: 10 * time.Second}},
		{"long output flag, ipv6", []string{"--output=json", "--server=[::1]:18081", "status"}, nil,
			ctlOptions{server: "http://[::1]:18081", output: "json", timeout: 10 * time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts, _, err := parseCtl(tc.args, env(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if opts != tc.want {
				t.Errorf("options %+v\nwant %+v", opts, tc.want)
			}
		})
	}
}

// TestParseCtlUsageErrors: bad command lines are usage errors that carry
// the usage of the command being parsed.
func TestParseCtlUsageErrors(t *testing.T) {
	cases := []struct {
		args  []string
		err   string // in the error
		usage string // in the usage text
	}{
		{nil, "no command given", "usage: switchyard ctl [flags] COMMAND"},
		{[]string{"frob"}, `unknown command "frob"`, "usage: switchyard ctl [flags] COMMAND"},
		{[]string{"--bogus", "status"}, "flag provided but not defined: -bogus", "-server"},
		{[]string{"-o", "yaml", "status"}, `-o "yaml": use table or json`, "usage: switchyard ctl [flags]"},
		{[]string{"--server", "ftp://h:1", "status"}, "scheme must be http or https", "-server"},
		{[]string{"--server", "", "status"}, "--server is empty", "-server"},
		{[]string{"--server", "http://h:1/?x=1", "status"}, "no user, query or fragment", "-server"},
		{[]string{"--timeout", "-1s", "status"}, "--timeout -1s is negative", "-timeout"},
		{[]string{"--timeout", "soon", "status"}, "invalid value", "-timeout"},
		{[]string{"status", "extra"}, `status: unexpected argument "extra"`, "usage: switchyard ctl status"},
		{[]string{"peers", "list"}, `peers: unexpected argument "list"`, "usage: switchyard ctl peers"},
		{[]string{"clusters"}, "clusters: no subcommand given", "usage: switchyard ctl clusters SUBCOMMAND"},
		{[]string{"clusters", "frob"}, `clusters: unknown subcommand "frob"`, "clusters set NAME --bootstrap"},
		{[]string{"clusters", "get"}, "clusters get: missing NAME", "usage: switchyard ctl clusters get NAME"},
		{[]string{"regions", "set"}, "regions set: missing REGION", "-network"},
		{[]string{"routes", "set", "t", "c", "--region", "dc1"}, "is not REGION=CLUSTER", "-region"},
		{[]string{"routes", "set", "t", "c", "--region", "a=x", "--region", "a=y"}, `region "a" given twice`, "-fallback"},
		{[]string{"routes", "default", "--clear", "--resume", "latest"}, "--clear takes no", "-clear"},
		{[]string{"clusters", "get", "a", "b"}, `clusters get: unexpected argument "b"`, "clusters get NAME"},
		{[]string{"clusters", "delete"}, "clusters delete: missing NAME", "clusters delete NAME"},
		{[]string{"clusters", "set", "east"}, "clusters set: --bootstrap is required", "-tls-ca-file"},
		{[]string{"clusters", "set", "east", "--bootstrap", "a:1", "--tls", "--tls-cert-file", "/c"}, "--tls-cert-file and --tls-key-file go together", "-tls-key-file"},
		{[]string{"clusters", "set", "east", "--bootstrap", "a:1", "--sasl-mechanism", "PLAIN"}, "--sasl-mechanism PLAIN needs --sasl-username and --sasl-password-file", "-sasl-username"},
		{[]string{"clusters", "set", "east", "--bootstrap", "a:1", "--sasl-username", "u"}, "need --sasl-mechanism", "-sasl-mechanism"},
		{[]string{"clusters", "set", "east", "--bootstrap", "a:1", "--sasl-mechanism", "OAUTHBEARER", "--sasl-client-id", "p"}, "OAUTHBEARER needs --sasl-token-file", "-sasl-token-endpoint"},
		{[]string{"clusters", "set", "--bootstrap", "a:1"}, "clusters set: missing NAME", "clusters set NAME"},
		{[]string{"routes"}, "routes: no subcommand given", "routes default [CLUSTER] | --clear"},
		{[]string{"routes", "set", "orders"}, "routes set: missing CLUSTER", "usage: switchyard ctl routes set TOPIC CLUSTER"},
		{[]string{"routes", "set"}, "routes set: missing TOPIC and CLUSTER", "routes set TOPIC CLUSTER"},
		{[]string{"routes", "set", "a", "b", "c"}, `unexpected argument "c"`, "routes set"},
		{[]string{"routes", "set", "--prefix", "logs.", "--group", "x", "west"}, "give --prefix or --group, not both", "-group"},
		{[]string{"routes", "set", "--prefix", "", "west"}, "must not be empty", "-prefix"},
		{[]string{"routes", "set", "--prefix", "logs."}, "routes set: missing CLUSTER", "-prefix"},
		{[]string{"routes", "get", "--prefix", "logs.", "extra"}, `unexpected argument "extra"`, "routes get TOPIC"},
		{[]string{"routes", "delete"}, "routes delete: missing TOPIC", "routes delete TOPIC"},
		{[]string{"routes", "default", "--clear", "east"}, `--clear takes no CLUSTER: unexpected argument "east"`, "-clear"},
		{[]string{"routes", "default", "a", "b"}, `unexpected argument "b"`, "routes default"},
		{[]string{"quotas", "set", "orders", "--produce", "fast"}, `rate "fast" is not a number`, "RATE is bytes per second"},
		{[]string{"quotas", "set", "orders", "--fetch", "-1"}, `rate "-1" is negative`, "-fetch"},
		{[]string{"quotas", "set", "orders", "--nope"}, "flag provided but not defined: -nope", "-produce"},
		{[]string{"quotas", "set", "--produce", "1MB"}, "quotas set: missing TOPIC", "quotas set TOPIC"},
		{[]string{"quotas", "get", "--prefix", "logs.", "orders"}, `unexpected argument "orders"`, "quotas get TOPIC"},
		{[]string{"quotas", "delete"}, "quotas delete: missing TOPIC", "quotas delete TOPIC"},
		{[]string{"quotas", "list", "x"}, `unexpected argument "x"`, "quotas list"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			_, _, err := parseCtl(tc.args, noEnv)
			var ue *ctlUsageError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v, want a usage error", err)
			}
			if ue.help {
				t.Fatal("help requested, want an error")
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q does not say %q", err, tc.err)
			}
			if !strings.Contains(ue.usage, tc.usage) {
				t.Errorf("usage does not show %q:\n%s", tc.usage, ue.usage)
			}
		})
	}
}

func TestParseCtlHelp(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"ctl":           {[]string{"-h"}, "routes set TOPIC CLUSTER | --prefix PREFIX CLUSTER"},
		"help":          {[]string{"help"}, "quotas set TOPIC | --prefix PREFIX"},
		"group":         {[]string{"quotas", "--help"}, "RATE is bytes per second"},
		"command":       {[]string{"clusters", "set", "-h"}, "-sasl-password-file path"},
		"after an arg":  {[]string{"routes", "set", "orders", "-h"}, "-group PREFIX"},
		"quotas set -h": {[]string{"quotas", "set", "-h"}, "-produce RATE"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := parseCtl(tc.args, noEnv)
			var ue *ctlUsageError
			if !errors.As(err, &ue) || !ue.help {
				t.Fatalf("error %v, want help", err)
			}
			if !strings.Contains(ue.usage, tc.want) {
				t.Errorf("usage lacks %q:\n%s", tc.want, ue.usage)
			}
		})
	}
}

func TestParseRate(t *testing.T) {
	good := map[string]int64{
		"0":          0,
		"unlimited":  0,
		"Unlimited":  0,
		"1048576":    1048576,
		"1048576/s":  1048576,
		"500B":       500,
		"500KB":      500000,
		"500kb":      500000,
		"500 KB/s":   500000,
		"10MB":       10000000,
		"1.5MiB":     1572864,
		"1.5mib/s":   1572864,
		"2GiB":       2147483648,
		"2GiB/s":     2147483648,
		"1.1MB":      1100000,
		"0.5KiB":     512,
		"3TB":        3000000000000,
		"1TiB":       1 << 40,
		"007":        7,
		" 64KiB ":    65536,
		"1.000001MB": 1000001,
	}
	for in, want := range good {
		got, err := parseRate(in)
		if err != nil || got != want {
			t.Errorf("parseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":                      "is not a number",
		"fast":                  "is not a number",
		"MB":                    "is not a number",
		"-1":                    "is negative",
		"-1MB":                  "is negative",
		"1.":                    "is not a number",
		".5MB":                  "is not a number",
		"1.2.3":                 "is not a number",
		"1e6":                   `unknown unit "e6"`,
		"10Mbit":                `unknown unit "Mbit"`,
		"10 furlongs":           `unknown unit "furlongs"`,
		"1.3KiB":                "is not a whole number of bytes",
		"0.5":                   "is not a whole number of bytes",
		"9223372036854775808":   "is too large",
		"99999999999TiB":        "is too large",
		"1/3":                   "unknown unit",
		"1MB/s/s":               "unknown unit",
		"0x10":                  `unknown unit "x10"`,
		"١٠":                    "is not a number",
		"10MB per second":       "unknown unit",
		"9223372036854775807KB": "is too large",
	}
	for in, want := range bad {
		_, err := parseRate(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseRate(%q) error %v, want one saying %q", in, err, want)
		}
		if err != nil && !strings.Contains(err.Error(), "give bytes per second") {
			t.Errorf("parseRate(%q) error %q does not say what to give", in, err)
		}
	}
}

func TestFormatRate(t *testing.T) {
	cases := map[int64]string{
		0:             "unlimited",
		1:             "1 B/s",
		999:           "999 B/s",
		1000:          "1 KB/s",
		1024:          "1 KiB/s",
		1536:          "1.5 KiB/s",
		500000:        "500 KB/s",
		1048576:       "1 MiB/s",
		1572864:       "1.5 MiB/s",
		10000000:      "10 MB/s",
		2147483648:    "2 GiB/s",
		1234567:       "1234567 B/s",
		1100000:       "1.1 MB/s",
		1310720:       "1.25 MiB/s",
		1234567000:    "1234567 KB/s",
		1001:          "1001 B/s",
		1 << 40:       "1 TiB/s",
		5000000000000: "5 TB/s",
	}
	for n, want := range cases {
		if got := formatRate(n); got != want {
			t.Errorf("formatRate(%d) = %q, want %q", n, got, want)
		}
		if n != 0 {
			if back, err := parseRate(strings.ReplaceAll(formatRate(n), " ", "")); err != nil || back != n {
				t.Errorf("parseRate(formatRate(%d)) = %d, %v", n, back, err)
			}
		}
	}
}

// Fixtures: the examples of docs/admin-api.md.
const (
	peer0Fixture = `{"id": 0, "name": "peer-0", "region": "east-1a", "kafka_addr": "10.0.0.1:9092",
 "admin_addr": "10.0.0.1:18080", "raft_addr": "10.0.0.1:17000", "gossip_addr": "10.0.0.1:17946",
 "version": "v0.3.0", "local_brokers": [{"cluster": "east", "broker_id": 1}],
 "gossip": "alive", "raft": "voter", "live": true}`
	peer1Fixture = `{"id": 1, "name": "peer-1", "kafka_addr": "10.0.0.2:9092",
 "admin_addr": "10.0.0.2:18080", "raft_addr": "10.0.0.2:17000", "gossip_addr": "10.0.0.2:17946",
 "version": "v0.3.0", "gossip": "suspect", "raft": "nonvoter", "live": true}`
	peer2Fixture = `{"id": 2, "name": "peer-2", "region": "west-1a", "kafka_addr": "10.0.0.3:9092",
 "gossip": "unknown", "raft": "none", "live": false}`
	statusFixture = `{
  "node": {"id": 0, "name": "peer-0", "region": "east-1a", "version": "v0.3.0"},
  "leader": {"name": "peer-1", "raft_addr": "10.0.0.2:17000", "admin_addr": "10.0.0.2:18080"},
  "raft": {"state": "Follower", "term": 3, "last_log_index": 57, "commit_index": 57,
           "applied_index": 57, "last_contact_ms": 12, "voters": 3, "nonvoters": 0},
  "state_index": 57,
  "peers": [` + peer0Fixture + `]
}`
	peersTable = `ID  NAME    REGION   KAFKA          ADMIN           RAFT      GOSSIP   LIVE
0   peer-0  east-1a  10.0.0.1:9092  10.0.0.1:18080  voter     alive    yes
1   peer-1  -        10.0.0.2:9092  10.0.0.2:18080  nonvoter  suspect  yes
2   peer-2  west-1a  10.0.0.3:9092  -               none      unknown  no
`
	clusterEastFixture = `{"name": "east", "bootstrap": ["10.0.0.1:9093", "10.0.0.2:9093"], "region": "east"}`
	clusterWestFixture = `{"name": "west", "bootstrap": ["w1:9093"], "tls": {"ca_file": "/etc/ca.pem"},
 "sasl": {"mechanism": "SCRAM-SHA-512", "username": "svc", "password_file": "/etc/kafka.pw"}}`
	clusterOAuthFixture = `{"name": "idp", "bootstrap": ["o1:9093"], "tls": {},
 "sasl": {"mechanism": "OAUTHBEARER", "token_endpoint": "https://idp.example/token", "client_id": "proxy",
 "client_secret_file": "/etc/idp.secret", "scope": "kafka"}}`
	routesFixture = `{"topics": [{"topic": "orders", "cluster": "east"}], "prefixes": [{"prefix": "logs.", "cluster": "west"}],
  "group_prefixes": [{"prefix": "billing-", "cluster": "west"}], "default_cluster": "east"}`
	quotasFixture = `{"quotas": [{"topic": "orders", "prefix": false, "produce_bytes_per_sec": 1048576,
  "fetch_bytes_per_sec": 0}, {"topic": "logs.", "prefix": true, "produce_bytes_per_sec": 500000,
  "fetch_bytes_per_sec": 2147483648}]}`
)

// TestRenderTables renders the answers of docs/admin-api.md's examples
// through each read command's own show function.
func TestRenderTables(t *testing.T) {
	cases := []struct {
		args    string
		fixture string
		want    string
	}{
		{"status", statusFixture, `node:         peer-0 (id 0), region east-1a, version v0.3.0
leader:       peer-1, raft 10.0.0.2:17000, admin 10.0.0.2:18080
raft:         Follower, term 3, 3 voters, 0 nonvoters, last contact 12ms
log:          last 57, commit 57, applied 57
state index:  57

ID  NAME    REGION   KAFKA          ADMIN           RAFT   GOSSIP  LIVE
0   peer-0  east-1a  10.0.0.1:9092  10.0.0.1:18080  voter  alive   yes
`},
		{"status", `{"node": {"id": 4, "name": "peer-4"}, "leader": null, "raft": {"state": "Candidate", "term": 9}, "peers": []}`,
			`node:         peer-4 (id 4), region -, version -
leader:       none known (no quorum?)
raft:         Candidate, term 9, 0 voters, 0 nonvoters, last contact 0ms
log:          last 0, commit 0, applied 0
state index:  0

ID  NAME  REGION  KAFKA  ADMIN  RAFT  GOSSIP  LIVE
`},
		{"peers", `{"peers": [` + peer0Fixture + `,` + peer1Fixture + `,` + peer2Fixture + `]}`, peersTable},
		{"peers allow-list", `{"allow_list": ["kafka-a4", "kafka-a5"], "static": ["kafka-a1"], "unproven": [{"name": "rogue", "reason": "no certificate"}]}`,
			`ALLOWED   SOURCE
kafka-a4  replicated
kafka-a5  replicated
kafka-a1  --allow-peer (this peer)

UNPROVEN  REASON
rogue     no certificate
`},
		{"peers allow-list", `{"allow_list": [], "static": [], "unproven": []}`, "ALLOWED  SOURCE\n"},
		{"clusters list", `{"clusters": [` + clusterEastFixture + `,` + clusterWestFixture + `]}`,
			`NAME  REGION  BOOTSTRAP                    TLS  SASL
east  east    10.0.0.1:9093,10.0.0.2:9093  no   -
west  -       w1:9093                      yes  SCRAM-SHA-512 (svc)
`},
		{"clusters list", `{"clusters": []}`, "NAME  REGION  BOOTSTRAP  TLS  SASL\n"},
		{"clusters get east", clusterEastFixture, `name:       east
bootstrap:  10.0.0.1:9093,10.0.0.2:9093
region:     east
tls:        no
sasl:       -
`},
		{"clusters get west", clusterWestFixture, `name:                west
bootstrap:           w1:9093
region:              -
tls:                 yes
tls ca file:         /etc/ca.pem
sasl:                SCRAM-SHA-512 (svc)
sasl password file:  /etc/kafka.pw
`},
		{"clusters get idp", clusterOAuthFixture, `name:                     idp
bootstrap:                o1:9093
region:                   -
tls:                      yes
tls ca file:              (system roots)
sasl:                     OAUTHBEARER (client proxy)
sasl token endpoint:      https://idp.example/token
sasl client secret file:  /etc/idp.secret
sasl scope:               kafka
`},
		{"routes list", routesFixture, `TOPIC   CLUSTER
orders  east

PREFIX  CLUSTER
logs.   west

GROUP PREFIX  CLUSTER
billing-      west

default cluster: east
`},
		{"routes list", `{}`, "no topic routes\n\nno prefix routes\n\nno group routes\n\nno default cluster\n"},
		{"routes get logs.app", `{"topic": "logs.app", "cluster": "west", "match": "prefix", "rule": "logs."}`,
			"TOPIC     CLUSTER  MATCH   RULE\nlogs.app  west     prefix  logs.\n"},
		{"routes get orders", `{"topic": "orders", "cluster": "east", "match": "exact"}`,
			"TOPIC   CLUSTER  MATCH  RULE\norders  east     exact  -\n"},
		{"routes get orders", `{"topic": "orders", "cluster": "west", "match": "exact", "produce_cluster": "east"}`,
			"TOPIC   CLUSTER  MATCH  RULE\norders  west     exact  -\nproduce: east (failing back; consumers stay on west until their groups have read it)\n"},
		{"routes get --prefix logs.", `{"prefix": "logs.", "cluster": "west"}`, "PREFIX  CLUSTER\nlogs.   west\n"},
		{"routes get --group billing-", `{"prefix": "billing-", "cluster": "west"}`, "GROUP PREFIX  CLUSTER\nbilling-      west\n"},
		{"routes default", `{"cluster": "east"}`, "default cluster: east\n"},
		{"routes default", `{"cluster": ""}`, "no default cluster\n"},
		{"routes list", `{"topics": [{"topic": "orders", "cluster": "east", "regions": {"dc2": "west", "dc1": "east"},
  "fallback": ["east", "west"], "resume": "timestamp", "failback": "manual"}, {"topic": "plain", "cluster": "east"}],
  "default_cluster": "east", "default": {"fallback": ["west"]}}`, `TOPIC   CLUSTER  TARGETS
orders  east     dc1=east,dc2=west fallback=east,west resume=timestamp failback=manual
plain   east     -

no prefix routes

no group routes

default cluster: east (fallback=west)
`},
		{"routes default", `{"cluster": "east", "regions": {"b": "west"}}`, "default cluster: east (b=west)\n"},
		{"regions list", `[{"name": "dc1", "networks": ["10.1.0.0/16", "10.3.0.0/16"], "fallback": ["dc2"]}, {"name": "dc2"}]`,
			"REGION  NETWORKS                 FALLBACK\ndc1     10.1.0.0/16,10.3.0.0/16  dc2\ndc2     -                        -\n"},
		{"regions list", `[]`, "no regions: clients are served by every peer and routed by their peer's region\n"},
		{"quotas list", quotasFixture, `TOPIC   KIND    PRODUCE   FETCH
orders  exact   1 MiB/s   unlimited
logs.   prefix  500 KB/s  2 GiB/s
`},
		{"clusters get south", `{"name": "south", "bootstrap": ["s:1"], "down_after_ms": 2500}`,
			"name:            south\nbootstrap:       s:1\nregion:          -\ntls:             no\nsasl:            -\ndown after:      2.5s\nup after:        60s (default)\nfailback drain:  2m0s (default)\n"},
		{"health", `[{"cluster": "east", "state": "down", "peers": {"p1": "down", "p0": "down"}, "since": 1700000000000}, {"cluster": "west", "state": "up", "peers": {}, "since": 0}]`,
			"CLUSTER  STATE  SINCE                 PEERS\neast     down   2023-11-14T22:13:20Z  p0=down p1=down\nwest     up     -                     -\n"},
		{"failover list", `[{"cluster": "east", "state": "failed-over", "since": 1700000000000, "routes_moved": 2, "manual": true}]`,
			"CLUSTER  STATE        SINCE                 ROUTES MOVED  MODE\neast     failed-over  2023-11-14T22:13:20Z  2             manual\n"},
		{"quotas get logs.app", `{"topic": "logs.", "prefix": true, "produce_bytes_per_sec": 0, "fetch_bytes_per_sec": 1572864}`,
			"TOPIC  KIND    PRODUCE    FETCH\nlogs.  prefix  unlimited  1.5 MiB/s\n"},
	}
	for _, tc := range cases {
		t.Run(tc.args, func(t *testing.T) {
			_, call, err := parseCtl(strings.Fields(tc.args), noEnv)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := call.show(&out, []byte(tc.fixture), ""); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", out.String(), tc.want)
			}
		})
	}
}

func TestRenderRejectsNonJSON(t *testing.T) {
	_, call, err := parseCtl([]string{"peers"}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := call.show(io.Discard, []byte("<html>"), ""); err == nil || !strings.Contains(err.Error(), "not the expected JSON") {
		t.Fatalf("show of HTML: %v", err)
	}
}

// TestWriteConfirmations: each write prints one line, with the Raft index
// when the server sent one.
func TestWriteConfirmations(t *testing.T) {
	cases := map[string]string{
		"clusters set east --bootstrap a:1":      "cluster east stored",
		"clusters delete east":                   "cluster east deleted",
		"routes set orders east":                 "route orders -> east",
		"routes set --prefix logs. west":         "prefix route logs. -> west",
		"routes set --group billing- west":       "group route billing- -> west",
		"routes delete orders":                   "route orders deleted",
		"routes delete --prefix logs.":           "prefix route logs. deleted",
		"routes delete --group billing-":         "group route billing- deleted",
		"routes default east":                    "default cluster -> east",
		"routes default --clear":                 "default cluster cleared",
		"quotas set orders --produce 1MiB":       "quota orders: produce 1 MiB/s, fetch unlimited",
		"quotas set --prefix logs. --fetch 10MB": "prefix quota logs.: produce unlimited, fetch 10 MB/s",
		"quotas delete orders":                   "quota orders deleted",
		"quotas delete --prefix logs.":           "prefix quota logs. deleted",
		"peers allow kafka-a4":                   "peer kafka-a4 allowed",
		"peers disallow kafka-a4":                "peer kafka-a4 disallowed",
		"peers remove kafka-b1":                  "peer kafka-b1 removed",
	}
	for args, want := range cases {
		t.Run(args, func(t *testing.T) {
			_, call, err := parseCtl(strings.Fields(args), noEnv)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := call.show(&out, nil, "42"); err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != want+" (index 42)\n" {
				t.Errorf("got %q, want %q", got, want+" (index 42)\n")
			}
			out.Reset()
			if err := call.show(&out, nil, ""); err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != want+"\n" {
				t.Errorf("without an index: got %q, want %q", got, want+"\n")
			}
		})
	}
}

func TestPrintJSON(t *testing.T) {
	cases := map[string]string{
		"":                            "{}\n",
		"  \n":                        "{}\n",
		`{"cluster":"east"}`:          "{\n  \"cluster\": \"east\"\n}\n",
		`{"peers":[{"id":0}]}` + "\n": "{\n  \"peers\": [\n    {\n      \"id\": 0\n    }\n  ]\n}\n",
	}
	for in, want := range cases {
		var out bytes.Buffer
		if err := printJSON(&out, []byte(in)); err != nil {
			t.Fatalf("printJSON(%q): %v", in, err)
		}
		if out.String() != want {
			t.Errorf("printJSON(%q) = %q, want %q", in, out.String(), want)
		}
	}
	if err := printJSON(io.Discard, []byte("not json")); err == nil {
		t.Error("printJSON accepted text")
	}
}

func TestAPIErrorFormatting(t *testing.T) {
	long := strings.Repeat("x", 300)
	cases := []struct {
		status int
		body   string
		want   string
	}{
		{404, `{"error": "cluster \"x\" does not exist; list them with GET /v1/clusters"}`,
			`404 cluster "x" does not exist; list them with GET /v1/clusters`},
		{409, `{"error":"cluster east is used by route orders"}` + "\n", "409 cluster east is used by route orders"},
		{503, `{"error": "no raft leader known"}`, "503 no raft leader known"},
		{502, "<html>\n<body>Bad   Gateway</body>\n</html>", "502 <html> <body>Bad Gateway</body> </html>"},
		{401, "", "401 Unauthorized"},
		{403, `{"error": ""}`, `403 {"error": ""}`},
		{500, long, "500 " + long[:200] + "..."},
		{599, "", "599 error"},
	}
	for _, tc := range cases {
		if got := apiErrorFrom(tc.status, []byte(tc.body)).Error(); got != tc.want {
			t.Errorf("apiErrorFrom(%d, %q) = %q, want %q", tc.status, tc.body, got, tc.want)
		}
	}
}

func TestAPIPathEscaping(t *testing.T) {
	cases := map[string]string{
		"orders":     "/v1/routes/orders",
		"logs.":      "/v1/routes/logs.",
		".":          "/v1/routes/%2E",
		"..":         "/v1/routes/%2E%2E",
		"...":        "/v1/routes/...",
		"a/b":        "/v1/routes/a%2Fb",
		"a b":        "/v1/routes/a%20b",
		"q?x=1#f":    "/v1/routes/q%3Fx=1%23f",
		"100%":       "/v1/routes/100%25",
		"grüße":      "/v1/routes/gr%C3%BC%C3%9Fe",
		"../../evil": "/v1/routes/..%2F..%2Fevil",
	}
	for seg, want := range cases {
		if got := apiPath("/v1/routes", seg); got != want {
			t.Errorf("apiPath(%q) = %q, want %q", seg, got, want)
		}
	}
}

func TestNormalizeServer(t *testing.T) {
	good := map[string]string{
		"127.0.0.1:18080":           "http://127.0.0.1:18080",
		"localhost:18081":           "http://localhost:18081",
		"http://10.0.0.1:18080/":    "http://10.0.0.1:18080",
		"https://admin.example":     "https://admin.example",
		"https://lb.example/sy/":    "https://lb.example/sy",
		" http://127.0.0.1:18080  ": "http://127.0.0.1:18080",
	}
	for in, want := range good {
		got, err := normalizeServer(in)
		if err != nil || got != want {
			t.Errorf("normalizeServer(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "ftp://h:1", "http://", "http://u:p@h:1", "http://h:1#x", "http://h:1/?a=b", "http://[::1"} {
		if got, err := normalizeServer(in); err == nil {
			t.Errorf("normalizeServer(%q) = %q, want an error", in, got)
		}
	}
}

// wireRequest is what the recording server saw.
type wireRequest struct {
	method, uri, body, auth, contentType, accept string
}

// TestCtlWire runs each command through run against a server that only
// records the request, and checks the exact method, escaped path, query,
// body and headers ctl sends.
func TestCtlWire(t *testing.T) {
	var got wireRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = wireRequest{r.Method, r.RequestURI, string(b), r.Header.Get("Authorization"),
			r.Header.Get("Content-Type"), r.Header.Get("Accept")}
		w.Header().Set("X-Switchyard-Index", "7")
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("  s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want wireRequest
	}{
		{[]string{"status"}, wireRequest{"GET", "/v1/status", "", "Bearer s3cret", "", "application/json"}},
		{[]string{"--consistent", "peers"}, wireRequest{"GET", "/v1/peers?consistent=1", "", "Bearer s3cret", "", "application/json"}},
		{[]string{"--consistent", "routes", "get", "--group", "a/b c"}, wireRequest{"GET", "/v1/group-routes/a%2Fb%20c?consistent=1", "", "Bearer s3cret", "", "application/json"}},
		{[]string{"--consistent", "routes", "set", "--group", "..", "west"}, wireRequest{"PUT", "/v1/group-routes/%2E%2E", `{"cluster":"west"}`, "Bearer s3cret", "application/json", "application/json"}},
		{[]string{"clusters", "set", "east", "--bootstrap", "a:1", "--region", "r1"}, wireRequest{"PUT", "/v1/clusters/east", `{"bootstrap":["a:1"],"region":"r1"}`, "Bearer s3cret", "application/json", "application/json"}},
		{[]string{"clusters", "delete", "east"}, wireRequest{"DELETE", "/v1/clusters/east", "", "Bearer s3cret", "", "application/json"}},
		{[]string{"quotas", "set", "--prefix", "logs.", "--produce", "1.5MiB"}, wireRequest{"PUT", "/v1/prefix-quotas/logs.", `{"produce_bytes_per_sec":1572864,"fetch_bytes_per_sec":0}`, "Bearer s3cret", "application/json", "application/json"}},
		{[]string{"routes", "default", "--clear"}, wireRequest{"DELETE", "/v1/default-cluster", "", "Bearer s3cret", "", "application/json"}},
		{[]string{"migrations", "start", "orders", "--to", "west"}, wireRequest{"POST", "/v1/migrations", `{"topic":"orders","to":"west"}`, "Bearer s3cret", "application/json", "application/json"}},
		{[]string{"--consistent", "migrations", "get", "orders"}, wireRequest{"GET", "/v1/migrations/orders?consistent=1", "", "Bearer s3cret", "", "application/json"}},
		{[]string{"migrations", "finish", "orders", "--force"}, wireRequest{"POST", "/v1/migrations/orders/finish?force=1", "", "Bearer s3cret", "", "application/json"}},
		{[]string{"migrations", "abort", "orders"}, wireRequest{"DELETE", "/v1/migrations/orders", "", "Bearer s3cret", "", "application/json"}},
		{[]string{"clusters", "set", "east", "--bootstrap", "a:1", "--down-after", "10s", "--up-after", "1m"}, wireRequest{"PUT", "/v1/clusters/east", `{"bootstrap":["a:1"],"down_after_ms":10000,"up_after_ms":60000}`, "Bearer s3cret", "application/json", "application/json"}},
		{[]string{"clusters", "set", "east", "--bootstrap", "a:1", "--failback-drain", "5m"}, wireRequest{"PUT", "/v1/clusters/east", `{"bootstrap":["a:1"],"failback_drain_ms":300000}`, "Bearer s3cret", "application/json", "application/json"}},
		{[]string{"health"}, wireRequest{"GET", "/v1/health", "", "Bearer s3cret", "", "application/json"}},
		{[]string{"topics", "list", "--prefix", "a b", "--limit", "20"}, wireRequest{"GET", "/v1/topics?limit=20&prefix=a+b", "", "Bearer s3cret", "", "application/json"}},
		{[]string{"failover", "east"}, wireRequest{"POST", "/v1/failover/east", "", "Bearer s3cret", "", "application/json"}},
		{[]string{"failback", "east"}, wireRequest{"POST", "/v1/failback/east", "", "Bearer s3cret", "", "application/json"}},
		{[]string{"failover", "list"}, wireRequest{"GET", "/v1/failover", "", "Bearer s3cret", "", "application/json"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			got = wireRequest{}
			args := append([]string{"ctl", "--server", srv.URL, "--token-file", tokenFile, "-o", "json"}, tc.args...)
			var out, errb bytes.Buffer
			if code := run(context.Background(), args, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if got != tc.want {
				t.Errorf("sent   %+v\nwant   %+v", got, tc.want)
			}
			want := "{\n  \"ok\": true\n}\n"
			if tc.want.method == "DELETE" {
				want = "{}\n"
			}
			if out.String() != want {
				t.Errorf("stdout %q, want %q", out.String(), want)
			}
		})
	}

	t.Run("no token, base path, table output", func(t *testing.T) {
		got = wireRequest{}
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"ctl", "--server", srv.URL + "/admin/", "routes", "set", "orders", "east"}, &out, &errb)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		want := wireRequest{"PUT", "/admin/v1/routes/orders", `{"cluster":"east"}`, "", "application/json", "application/json"}
		if got != want {
			t.Errorf("sent %+v\nwant %+v", got, want)
		}
		if out.String() != "route orders -> east (index 7)\n" {
			t.Errorf("stdout %q", out.String())
		}
	})
}

// TestCtlErrorExits checks what run prints and exits for an error answer,
// an unreachable server, a bad token file and a usage error.
func TestCtlErrorExits(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error": "cluster \"nope\" does not exist"}`+"\n")
	}))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	cases := []struct {
		name   string
		args   []string
		code   int
		stderr []string // each in stderr
	}{
		{"api error", []string{"ctl", "--server", srv.URL, "clusters", "get", "nope"}, 1,
			[]string{"switchyard ctl: 404 cluster \"nope\" does not exist\n"}},
		{"api error with json output", []string{"ctl", "--server", srv.URL, "-o", "json", "clusters", "delete", "nope"}, 1,
			[]string{"switchyard ctl: 404 cluster \"nope\" does not exist\n"}},
		{"unreachable", []string{"ctl", "--server", closed, "status"}, 1,
			[]string{"cannot reach http://" + closed + "/v1/status", "--server"}},
		{"missing token file", []string{"ctl", "--server", srv.URL, "--token-file", "/nonexistent/token", "status"}, 1,
			[]string{"switchyard ctl: read token file", "--token-file"}},
		{"usage error", []string{"ctl", "clusters", "get"}, 2,
			[]string{"switchyard ctl: clusters get: missing NAME\n", "usage: switchyard ctl clusters get NAME"}},
		{"unknown command", []string{"ctl", "frobnicate"}, 2,
			[]string{`switchyard ctl: unknown command "frobnicate"`, "commands:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errb)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			for _, s := range tc.stderr {
				if !strings.Contains(errb.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, errb.String())
				}
			}
			if strings.Contains(errb.String(), "switchyard: ") {
				t.Errorf("run printed the error again:\n%s", errb.String())
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q, want nothing", out.String())
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
		defer slow.Close()
		var errb bytes.Buffer
		code := run(context.Background(), []string{"ctl", "--server", slow.URL, "--timeout", "50ms", "peers"}, io.Discard, &errb)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		if want := "no answer from " + slow.URL + "/v1/peers within 50ms; raise --timeout"; !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q: %s", want, errb.String())
		}
	})
	t.Run("empty token file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(f, []byte(" \n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var errb bytes.Buffer
		if code := run(context.Background(), []string{"ctl", "--server", srv.URL, "--token-file", f, "status"}, io.Discard, &errb); code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		if !strings.Contains(errb.String(), "is empty") {
			t.Errorf("stderr: %s", errb.String())
		}
	})
	t.Run("help", func(t *testing.T) {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"ctl", "-h"}, &out, &errb); code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
		if !strings.Contains(out.String(), "usage: switchyard ctl") || errb.Len() != 0 {
			t.Errorf("stdout %q stderr %q", out.String(), errb.String())
		}
	})
}

// TestRenderQuotaView: a topic's rule, then how the peers share it.
func TestRenderQuotaView(t *testing.T) {
	var v adminapi.QuotaView
	body := `{"topic":"orders","produce_bytes_per_sec":2097152,"fetch_bytes_per_sec":0,
		"shares":[{"peer":"peer-0","id":0,"direction":"produce","share_bytes_per_sec":1048576,"rate_bytes_per_sec":0,"mode":"leased","saturated":true}],
		"produce_rate_bytes_per_sec":0,"fetch_rate_bytes_per_sec":0}`
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := renderQuotaView(&b, v); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"orders", "exact", "2 MiB/s", "measured: produce 0, fetch 0", "peer-0", "produce", "1 MiB/s", "leased", "true"} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("rendering lacks %q:\n%s", want, b.String())
		}
	}
}

// TestParseCtlMigrations: the API call of every migrations command line.
func TestParseCtlMigrations(t *testing.T) {
	cases := []struct {
		args   string
		method string
		path   string
		query  string
		body   string
		follow bool
	}{
		{"migrations list", "GET", "/v1/migrations", "", "", false},
		{"migrations get orders", "GET", "/v1/migrations/orders", "", "", false},
		{"migrations get a/b", "GET", "/v1/migrations/a%2Fb", "", "", false},
		{"migrations start orders --to west", "POST", "/v1/migrations", "", `{"topic":"orders","to":"west"}`, false},
		{"migrations start --to=west orders --wait", "POST", "/v1/migrations", "", `{"topic":"orders","to":"west"}`, true},
		{"migrations start --wait -- -odd --to", "POST", "/v1/migrations", "", "", false}, // --to after "--" is a topic: an error below
		{"migrations finish orders", "POST", "/v1/migrations/orders/finish", "", "", false},
		{"migrations finish orders --force", "POST", "/v1/migrations/orders/finish", "force=1", "", false},
		{"migrations finish .. --force", "POST", "/v1/migrations/%2E%2E/finish", "force=1", "", false},
		{"migrations abort orders", "DELETE", "/v1/migrations/orders", "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.args, func(t *testing.T) {
			_, call, err := parseCtl(strings.Fields(tc.args), noEnv)
			if strings.Contains(tc.args, "-- -odd") {
				if err == nil {
					t.Fatal("a start with two topics and no --to parsed")
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if call.method != tc.method || call.path != tc.path || call.query.Encode() != tc.query {
				t.Errorf("call %s %s ?%s, want %s %s ?%s", call.method, call.path, call.query.Encode(), tc.method, tc.path, tc.query)
			}
			if got := bodyJSON(t, call.body); got != tc.body {
				t.Errorf("body %s\nwant %s", got, tc.body)
			}
			if (call.follow != nil) != tc.follow || call.show == nil {
				t.Errorf("follow set %v, want %v; show set %v", call.follow != nil, tc.follow, call.show != nil)
			}
		})
	}
	for _, tc := range []struct{ args, msg string }{
		{"migrations start orders", "--to CLUSTER is required"},
		{"migrations start --to west", "missing TOPIC"},
		{"migrations start orders --to", "flag needs an argument"},
		{"migrations start orders --to=", "must not be empty"},
		{"migrations start orders extra --to west", `unexpected argument "extra"`},
		{"migrations get", "missing TOPIC"},
		{"migrations finish", "missing TOPIC"},
		{"migrations finish orders --force=maybe", "invalid boolean"},
		{"migrations abort orders west", `unexpected argument "west"`},
		{"migrations pause orders", `unknown subcommand "pause"`},
	} {
		_, _, err := parseCtl(strings.Fields(tc.args), noEnv)
		var ue *ctlUsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want a usage error containing %q", tc.args, err, tc.msg)
		}
	}
	if usage := groupUsage("migrations"); !strings.Contains(usage, "migrations start TOPIC --to CLUSTER [--wait]") || !strings.Contains(usage, "migrations abort TOPIC") {
		t.Errorf("group usage:\n%s", usage)
	}
}

const testMigrationJSON = `{"topic":"orders","from":"east","to":"west","state":"switched","phase":"copy",
	"partitions":[{"partition":0,"base":1200},{"partition":1,"base":0},{"partition":2}],
	"groups_behind":["billing","audit"],"started":1764812400000,"switched":"2025-12-04T01:40:02Z"}`

func TestRenderMigrations(t *testing.T) {
	var m adminapi.Migration
	if err := json.Unmarshal([]byte(testMigrationJSON), &m); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := renderMigration(&b, m); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"topic:", "orders", "east", "west", "switched", "copy", "2025-12-04T01:40:00Z",
		"2025-12-04T01:40:02Z", "billing, audit", "PARTITION", "1200"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("get rendering lacks %q:\n%s", want, b.String())
		}
	}
	if !regexpLine(b.String(), `^2\s+-$`) {
		t.Errorf("partition 2 without a base is not shown as -:\n%s", b.String())
	}

	// The list, wrapped or bare.
	for _, body := range []string{`{"migrations":[` + testMigrationJSON + `]}`, `[` + testMigrationJSON + `]`} {
		var l adminapi.MigrationList
		if err := json.Unmarshal([]byte(body), &l); err != nil {
			t.Fatal(err)
		}
		b.Reset()
		if err := renderMigrations(&b, l.Migrations); err != nil {
			t.Fatal(err)
		}
		if !regexpLine(b.String(), `^orders\s+east\s+west\s+switched\s+copy\s+2/3\s+2025-12-04T01:40:00Z\s+2025-12-04T01:40:02Z\s+2$`) {
			t.Errorf("list rendering:\n%s", b.String())
		}
	}
	b.Reset()
	if err := renderMigrations(&b, nil); err != nil || b.String() != "no migrations\n" {
		t.Errorf("empty list: %q %v", b.String(), err)
	}
	var bad adminapi.UnixMilli
	if err := json.Unmarshal([]byte(`"yesterday"`), &bad); err == nil {
		t.Error("a time that is not RFC 3339 decoded")
	}
	if err := json.Unmarshal([]byte(`0`), &bad); err != nil || bad.String() != "-" {
		t.Errorf("time 0: %v %q", err, bad.String())
	}
}

// regexpLine reports whether some line of s matches the pattern.
func regexpLine(s, pattern string) bool {
	re := regexp.MustCompile(pattern)
	for _, l := range strings.Split(s, "\n") {
		if re.MatchString(strings.TrimRight(l, " ")) {
			return true
		}
	}
	return false
}

// TestMigrationFinishConflict: a refused finish says which groups are
// behind and what to do; other errors pass through.
func TestMigrationFinishConflict(t *testing.T) {
	_, call, err := parseCtl([]string{"migrations", "finish", "orders"}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	e := apiErrorFrom(409, []byte(`{"error":"2 groups have not consumed up to the base","groups_behind":["billing","audit"]}`))
	got := call.apiError(e).Error()
	for _, want := range []string{"409 2 groups have not consumed up to the base", "groups behind the base: billing, audit",
		"switchyard ctl migrations get orders", "--force"} {
		if !strings.Contains(got, want) {
			t.Errorf("error lacks %q:\n%s", want, got)
		}
	}
	for _, e := range []*ctlAPIError{apiErrorFrom(409, []byte(`{"error":"not switched"}`)), apiErrorFrom(404, []byte(`{"error":"no migration"}`))} {
		if got := call.apiError(e); got != e {
			t.Errorf("error %v rewritten to %v", e, got)
		}
	}
	// A forced finish that left groups behind warns.
	var b bytes.Buffer
	if err := call.show(&b, []byte(`{"topic":"orders","from":"east","to":"west","state":"finished","groups_behind":["billing"]}`), "12"); err != nil {
		t.Fatal(err)
	}
	if want := "warning: finished with groups behind the base (they can no longer read the rest of the source): billing\n" +
		"migration of orders finished; the segment on east is retired (its data stays there) (index 12)\n"; b.String() != want {
		t.Errorf("finish output %q\nwant %q", b.String(), want)
	}
}

// TestMigrationWatch: --wait prints a line per phase change (not per read)
// off a terminal, redraws one line on a terminal, measures the producer
// pause from the fence, and fails with the migration's error.
func TestMigrationWatch(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	mig := func(state, phase string, done int) adminapi.Migration {
		m := adminapi.Migration{Topic: "orders", From: "east", To: "west", State: fsm.MigrationState(state), Phase: phase}
		for p := range 4 {
			m.Partitions = append(m.Partitions, adminapi.MigrationBase{Partition: int32(p)})
			if p < done {
				v := int64(100 * p)
				m.Partitions[p].Base = &v
			}
		}
		return m
	}
	reads := []struct {
		m  adminapi.Migration
		ms int
	}{
		{mig("running", "prepare", 0), 0},
		{mig("running", "prepare", 0), 200},
		{mig("running", "fence", 1), 400},
		{mig("running", "fence", 3), 600},
		{mig("switched", "copy", 4), 750},
	}

	var out bytes.Buffer
	mw := newMigrationWatch(&out, false)
	for _, r := range reads {
		mw.observe(r.m, at(r.ms))
	}
	if err := mw.finish(reads[len(reads)-1].m, at(800)); err != nil {
		t.Fatal(err)
	}
	want := "orders east -> west: running, phase prepare, partitions 0/4\n" +
		"orders east -> west: running, phase fence, partitions 1/4, producer pause 0s\n" +
		"orders east -> west: switched, phase copy, partitions 4/4, producer pause 350ms\n" +
		"orders is switched: clients use west (waited 800ms, producer pause about 350ms); finish it with: switchyard ctl migrations finish orders\n"
	if out.String() != want {
		t.Errorf("plain output:\n%s\nwant:\n%s", out.String(), want)
	}

	out.Reset()
	mw = newMigrationWatch(&out, true)
	for _, r := range reads {
		mw.observe(r.m, at(r.ms))
	}
	if err := mw.finish(reads[len(reads)-1].m, at(800)); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\r\033[K"); n != len(reads) {
		t.Errorf("terminal output redraws %d times, want %d: %q", n, len(reads), out.String())
	}
	if !strings.Contains(out.String(), "phase fence, partitions 3/4, producer pause 200ms") || strings.Count(out.String(), "\n") != 2 {
		t.Errorf("terminal output %q", out.String())
	}

	out.Reset()
	mw = newMigrationWatch(&out, false)
	mw.observe(mig("running", "prepare", 0), at(0))
	failed := mig("failed", "fence", 2)
	failed.Error = "open transactions on partition 3 after 30s"
	mw.observe(failed, at(300))
	err := mw.finish(failed, at(300))
	if err == nil || err.Error() != "migration of orders failed: open transactions on partition 3 after 30s; the topic stays on east" {
		t.Errorf("failed migration: %v", err)
	}
}

// TestMigrationWaitPolls runs `migrations start --wait` against a server
// that plays a migration's answers: the start, a 404 from a peer that has
// not applied it yet, then the phases. It checks the requests, the plain
// lines, and that -o json prints one document, the last read.
func TestMigrationWaitPolls(t *testing.T) {
	answers := []string{
		`{"topic":"orders","from":"east","to":"west","state":"running","phase":"prepare","partitions":[{"partition":0}]}`,
		``, // 404
		`{"topic":"orders","from":"east","to":"west","state":"running","phase":"prepare","partitions":[{"partition":0}]}`,
		`{"topic":"orders","from":"east","to":"west","state":"running","phase":"fence","partitions":[{"partition":0}]}`,
		`{"topic":"orders","from":"east","to":"west","state":"switched","phase":"copy","partitions":[{"partition":0,"base":42}]}`,
	}
	for _, asJSON := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", asJSON), func(t *testing.T) {
			var mu sync.Mutex
			var uris []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				i := len(uris)
				uris = append(uris, r.Method+" "+r.RequestURI)
				mu.Unlock()
				if i >= len(answers) {
					i = len(answers) - 1
				}
				w.Header().Set("Content-Type", "application/json")
				switch {
				case r.Method == http.MethodPost:
					w.WriteHeader(http.StatusAccepted)
				case answers[i] == "":
					w.WriteHeader(http.StatusNotFound)
					io.WriteString(w, `{"error":"no migration of topic \"orders\""}`)
					return
				}
				io.WriteString(w, answers[i])
			}))
			defer srv.Close()
			args := []string{"ctl", "--server", srv.URL, "migrations", "start", "orders", "--to", "west", "--wait"}
			if asJSON {
				args = append(args[:3], append([]string{"-o", "json"}, args[3:]...)...)
			}
			var out, errb bytes.Buffer
			if code := run(context.Background(), args, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			mu.Lock()
			got := slices.Clone(uris)
			mu.Unlock()
			want := []string{"POST /v1/migrations"}
			for range len(answers) - 1 {
				want = append(want, "GET /v1/migrations/orders?consistent=1")
			}
			if !slices.Equal(got, want) {
				t.Errorf("requests %q\nwant %q", got, want)
			}
			if asJSON {
				var m adminapi.Migration
				if err := json.Unmarshal(out.Bytes(), &m); err != nil || m.State != "switched" {
					t.Fatalf("json output is not the last read: %v\n%s", err, out.String())
				}
				return
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) != 5 || lines[0] != "migration of orders started: east -> west, prepare" ||
				!strings.HasSuffix(lines[1], "phase prepare, partitions 0/1") || !strings.Contains(lines[2], "phase fence") ||
				!strings.Contains(lines[3], "switched, phase copy, partitions 1/1, producer pause") ||
				!strings.HasPrefix(lines[4], "orders is switched: clients use west") {
				t.Errorf("output:\n%s", out.String())
			}
		})
	}
}

// TestCtlMigrationsOnSandbox drives a real migration with ctl against a
// sandbox of two peers and two backend clusters (what `switchyard dev`
// runs), sending every command to the follower so the writes are
// forwarded: start --wait (the plain-line path), get, list, finish, the
// way back with -o json, and the errors of commands that cannot apply.
// It needs the migration endpoints (node/http_migrations.go) and the
// leader's migration driver.
func TestCtlMigrationsOnSandbox(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb, err := sandbox.Start(ctx, sandbox.Config{
		Clusters:      []sandbox.ClusterSpec{{Name: "east", Brokers: 1}, {Name: "west", Brokers: 1}},
		Peers:         2,
		KafkaBasePort: 0,
		AdminBasePort: 0,
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	follower := -1
	waitUntil(t, 20*time.Second, "a follower", func() bool {
		for i, n := range sb.Nodes {
			if !n.IsLeader() && n.Leader() != "" {
				follower = i
				return true
			}
		}
		return false
	})
	admin := sb.AdminURLs[follower]
	ctl := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(ctx, append([]string{"ctl", "--server", admin, "--timeout", "20s"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}

	// 30 records over 3 partitions of "orders", on east.
	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...), kgo.DefaultProduceTopic("orders"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 1, nil, "orders"); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	for i := range 30 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: int32(i % 3), Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}

	code, out, errOut := ctl("migrations", "start", "orders", "--to", "west", "--wait")
	if code != 0 {
		t.Fatalf("start --wait: exit %d\n%s%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	// The lines between are the phases the polls saw: the fence lasts
	// milliseconds and a poll may fall on either side of it, so which
	// phases show is not asserted, only their form.
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "migration of orders started: east -> west") ||
		!strings.HasPrefix(lines[len(lines)-1], "orders is switched: clients use west") {
		t.Fatalf("start --wait output:\n%s", out)
	}
	for _, l := range lines[1 : len(lines)-1] {
		if !strings.HasPrefix(l, "orders east -> west: ") {
			t.Fatalf("start --wait printed %q; want one status line per phase:\n%s", l, out)
		}
	}

	code, out, errOut = ctl("-o", "json", "migrations", "get", "orders")
	var m adminapi.Migration
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil {
		t.Fatalf("get -o json: exit %d\n%s%s", code, out, errOut)
	}
	var sum int64
	for _, p := range m.Partitions {
		if p.Base != nil {
			sum += *p.Base
		}
	}
	if m.From != "east" || m.To != "west" || m.State != "switched" || len(m.Partitions) != 3 || sum != 30 || m.Started == 0 || m.Switched == 0 {
		t.Fatalf("migration after the switch: %+v (bases sum to %d, want 30)\n%s", m, sum, out)
	}
	if code, out, errOut = ctl("migrations", "get", "orders"); code != 0 || !strings.Contains(out, "PARTITION") || !strings.Contains(out, "switched") {
		t.Fatalf("get: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut = ctl("migrations", "list"); code != 0 || !regexpLine(out, `^orders\s+east\s+west\s+switched\s`) {
		t.Fatalf("list: exit %d\n%s%s", code, out, errOut)
	}

	// Refused while switched: another start, an abort.
	if code, _, errOut = ctl("migrations", "start", "orders", "--to", "east"); code != 1 || !strings.Contains(errOut, "409") {
		t.Fatalf("second start while switched: exit %d: %s", code, errOut)
	}
	if code, _, errOut = ctl("migrations", "abort", "orders"); code != 1 || !strings.Contains(errOut, "409") {
		t.Fatalf("abort after the switch: exit %d: %s", code, errOut)
	}

	// No group has committed on the topic, so none is behind; finish goes
	// through once the offset copy is done.
	waitUntil(t, 30*time.Second, "finish", func() bool {
		code, out, errOut = ctl("migrations", "finish", "orders")
		return code == 0
	})
	if !strings.Contains(out, "migration of orders finished") {
		t.Fatalf("finish output %q %s", out, errOut)
	}

	// The way back, -o json: one document, the migration switched.
	code, out, errOut = ctl("-o", "json", "migrations", "start", "orders", "--to", "east", "--wait")
	m = adminapi.Migration{}
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil || m.State != "switched" || m.From != "west" || m.To != "east" {
		t.Fatalf("start back -o json --wait: exit %d\n%s%s", code, out, errOut)
	}

	// Errors: an unknown cluster, an unknown topic's migration.
	if code, _, errOut = ctl("migrations", "start", "payments", "--to", "north"); code != 1 || !(strings.Contains(errOut, "400") || strings.Contains(errOut, "404")) {
		t.Fatalf("start to an unknown cluster: exit %d: %s", code, errOut)
	}
	if code, _, errOut = ctl("migrations", "get", "nothing-here"); code != 1 || !strings.Contains(errOut, "404") {
		t.Fatalf("get of a topic never migrated: exit %d: %s", code, errOut)
	}
}

// TestCtlRetriesReadsThrough503: a read answered 503 (an election) is
// asked again until it is answered, within --timeout; a write answered 503
// is not repeated (its outcome may be unknown).
func TestCtlRetriesReadsThrough503(t *testing.T) {
	var gets, puts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			if gets.Add(1) <= 2 {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, `{"error": "no raft leader known"}`)
				return
			}
			fmt.Fprint(w, `{"clusters": []}`)
		default:
			puts.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error": "no raft leader known"}`)
		}
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"ctl", "--server", srv.URL, "--timeout", "30s", "-o", "json", "clusters", "list"}, &out, &errb); code != 0 {
		t.Fatalf("clusters list through two 503s: exit %d: %s", code, errb.String())
	}
	if n := gets.Load(); n != 3 {
		t.Fatalf("%d GETs, want 3 (two 503s, then the answer)", n)
	}
	out.Reset()
	errb.Reset()
	code := run(context.Background(), []string{"ctl", "--server", srv.URL, "--timeout", "30s", "routes", "default", "east"}, &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), "503") {
		t.Fatalf("a write answered 503: exit %d: %s", code, errb.String())
	}
	if n := puts.Load(); n != 1 {
		t.Fatalf("the write was sent %d times, want once", n)
	}
}
