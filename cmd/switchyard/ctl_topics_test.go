package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
	"github.com/switchyard-proxy/switchyard/sandbox"
)

// TestParseCtlTopics: topics list sends GET /v1/topics with the prefix and
// a limit other than the default, refuses limits the API refuses, and
// renders the table with its truncation note.
func TestParseCtlTopics(t *testing.T) {
	for _, tc := range []struct{ args, query string }{
		{"topics list", ""},
		{"topics list --prefix west.", "prefix=west."},
		{"topics list --limit 5 --prefix a", "limit=5&prefix=a"},
		{"topics list --limit 1000", ""},
	} {
		_, call, err := parseCtl(strings.Fields(tc.args), noEnv)
		if err != nil {
			t.Fatalf("%s: %v", tc.args, err)
		}
		if call.method != "GET" || call.path != "/v1/topics" || call.query.Encode() != tc.query {
			t.Errorf("%s: %s %s ?%s, want GET /v1/topics ?%s", tc.args, call.method, call.path, call.query.Encode(), tc.query)
		}
	}
	for _, args := range []string{"topics list --limit 0", "topics list --limit 10001", "topics list --prefix", "topics list orders"} {
		if _, _, err := parseCtl(strings.Fields(args), noEnv); err == nil {
			t.Errorf("%s: accepted", args)
		}
	}
	_, call, _ := parseCtl([]string{"topics", "list"}, noEnv)
	var b strings.Builder
	raw := `{"topics":[{"name":"orders","cluster":"east","partitions":12,"present_on":["east","west"],"migrating":true},` +
		`{"name":"stray","cluster":"","partitions":0,"present_on":["west"],"migrating":false}],"truncated":true}`
	if err := call.show(&b, []byte(raw), ""); err != nil {
		t.Fatal(err)
	}
	want := "NAME    CLUSTER  PARTITIONS  PRESENT-ON  MIGRATING\n" +
		"orders  east     12          east,west   yes\n" +
		"stray   -        -           west        no\n" +
		"(more topics match: raise --limit or narrow --prefix)\n"
	if b.String() != want {
		t.Fatalf("rendered\n%s\nwant\n%s", b.String(), want)
	}
}

// TestCtlTopicsOnSandbox: `ctl topics list` against a two-peer sandbox
// with two real backend clusters: a topic on each, a prefix route sending
// west.* to west, a topic on the wrong cluster for its route, and -o json
// giving the API's document.
func TestCtlTopicsOnSandbox(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb, err := sandbox.Start(ctx, sandbox.Config{
		Clusters: []sandbox.ClusterSpec{
			{Name: "east", Brokers: 1, KfakeOpts: []kfake.Opt{kfake.SeedTopics(3, "orders")}},
			{Name: "west", Brokers: 1, KfakeOpts: []kfake.Opt{kfake.SeedTopics(2, "west.logs", "stray")}},
		},
		Setup:         []fsm.Command{&fsm.PutPrefixRoute{Prefix: "west.", Cluster: "west"}},
		Peers:         2,
		KafkaBasePort: 0,
		AdminBasePort: 0,
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	ctl := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(ctx, append([]string{"ctl", "--server", sb.AdminURLs[1], "--timeout", "20s"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	want := adminapi.TopicList{Topics: []adminapi.Topic{
		{Name: "orders", Cluster: "east", Partitions: 3, PresentOn: []string{"east"}},
		{Name: "stray", Cluster: "east", PresentOn: []string{"west"}},
		{Name: "west.logs", Cluster: "west", Partitions: 2, PresentOn: []string{"west"}},
	}}
	var code int
	var out, errOut string
	var got adminapi.TopicList
	waitUntil(t, 30*time.Second, "ctl -o json topics list shows both clusters' topics", func() bool {
		code, out, errOut = ctl("-o", "json", "topics", "list")
		got = adminapi.TopicList{}
		return code == 0 && json.Unmarshal([]byte(out), &got) == nil && reflect.DeepEqual(got, want)
	})
	code, out, errOut = ctl("topics", "list", "--prefix", "west.")
	if code != 0 || !regexpLine(out, `^west\.logs\s+west\s+2\s+west\s+no$`) || strings.Contains(out, "orders") {
		t.Fatalf("topics list --prefix west.: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = ctl("topics", "list", "--limit", "1")
	if code != 0 || !regexpLine(out, `^orders\s+east\s+3\s+east\s+no$`) || !strings.Contains(out, "more topics match") || strings.Contains(out, "stray") {
		t.Fatalf("topics list --limit 1: exit %d\n%s%s", code, out, errOut)
	}
}
