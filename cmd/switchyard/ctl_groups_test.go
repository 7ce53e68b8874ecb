package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
	"github.com/switchyard-proxy/switchyard/sandbox"
)

// TestParseCtlGroups checks the call every groups command line makes,
// and the request body of a reset for each kind of target.
func TestParseCtlGroups(t *testing.T) {
	cases := []struct {
		args   string
		method string
		path   string
		body   string
		follow bool
	}{
		{"groups list", "GET", "/v1/groups", "", false},
		{"groups describe billing", "GET", "/v1/groups/billing", "", false},
		{"groups describe a/b?c", "GET", "/v1/groups/a%2Fb%3Fc", "", false},
		{"groups reset billing --topic orders --to-earliest", "POST", "/v1/groups/billing/offset-resets",
			`{"topics":["orders"],"to":"earliest","dry_run":false}`, false},
		{"groups reset --topic orders billing --to-latest --dry-run", "POST", "/v1/groups/billing/offset-resets",
			`{"topics":["orders"],"to":"latest","dry_run":true}`, false},
		{"groups reset billing --topic orders --topic payments,refunds --to-datetime 2026-12-01T10:00:00Z --wait", "POST", "/v1/groups/billing/offset-resets",
			`{"topics":["orders","payments","refunds"],"to":{"timestamp":1796119200000},"dry_run":false}`, true},
		{"groups reset billing --topic orders --partitions 0,2 --partitions 5 --to-offset 42", "POST", "/v1/groups/billing/offset-resets",
			`{"topics":["orders"],"partitions":{"orders":[0,2,5]},"to":{"offset":42},"dry_run":false}`, false},
		{"groups reset billing --topic orders --shift-by -100", "POST", "/v1/groups/billing/offset-resets",
			`{"topics":["orders"],"to":{"shift":-100},"dry_run":false}`, false},
		{"groups reset billing --topic orders --shift-by=7 --wait", "POST", "/v1/groups/billing/offset-resets",
			`{"topics":["orders"],"to":{"shift":7},"dry_run":false}`, true},
		{"groups reset .. --topic orders --to-earliest", "POST", "/v1/groups/%2E%2E/offset-resets",
			`{"topics":["orders"],"to":"earliest","dry_run":false}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.args, func(t *testing.T) {
			_, call, err := parseCtl(strings.Fields(tc.args), noEnv)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if call.method != tc.method || call.path != tc.path || call.query != nil {
				t.Errorf("call %s %s ?%s, want %s %s", call.method, call.path, call.query.Encode(), tc.method, tc.path)
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
		{"groups describe", "missing GROUP"},
		{"groups describe a b", `unexpected argument "b"`},
		{"groups list x", `unexpected argument "x"`},
		{"groups reset billing --to-earliest", "--topic TOPIC is required"},
		{"groups reset --topic orders --to-earliest", "missing GROUP"},
		{"groups reset billing --topic orders", "one of --to-earliest, --to-latest, --to-datetime, --to-offset, --shift-by"},
		{"groups reset billing --topic orders --to-earliest --to-latest", "--to-earliest and --to-latest: give exactly one"},
		{"groups reset billing --topic orders --to-offset 5 --shift-by 1", "--to-offset and --shift-by"},
		{"groups reset billing --topic orders --to-offset -5", "--to-offset -5 is negative"},
		{"groups reset billing --topic orders --to-offset five", "not an integer"},
		{"groups reset billing --topic orders --shift-by", "flag needs an argument"},
		{"groups reset billing --topic a --topic b --partitions 0 --to-earliest", "--partitions applies to a single --topic"},
		{"groups reset billing --topic a --partitions 0,x --to-earliest", `"x" is not a partition number`},
		{"groups reset billing --topic a --partitions -1 --to-earliest", `"-1" is not a partition number`},
		{"groups reset billing --topic a --to-datetime yesterday", `--to-datetime "yesterday": use RFC 3339`},
		{"groups reset billing --topic a --to-datetime=", "must not be empty"},
		{"groups reset billing --topic a --to-latest --dry-run --wait", "--dry-run starts none"},
		{"groups delete billing", `unknown subcommand "delete"`},
	} {
		_, _, err := parseCtl(strings.Fields(tc.args), noEnv)
		var ue *ctlUsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want a usage error containing %q", tc.args, err, tc.msg)
		}
	}
	if usage := groupUsage("groups"); !strings.Contains(usage, "groups describe GROUP") || !strings.Contains(usage, "--shift-by N) [--dry-run] [--wait]") {
		t.Errorf("group usage:\n%s", usage)
	}
}

func TestParseResetDatetime(t *testing.T) {
	plus2 := time.FixedZone("plus2", 2*3600)
	want := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).UnixMilli()
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"2026-12-01T10:00:00Z", want},
		{"2026-12-01T12:00:00+02:00", want},
		{"2026-12-01T10:00:00.250Z", want + 250},
		// Kafka's tool form: local time without a zone, or a ±hhmm zone.
		{"2026-12-01T12:00:00.000", want},
		{"2026-12-01T12:00:00", want},
		{"2026-12-01T11:00:00.500+0100", want + 500},
	} {
		got, err := parseResetDatetime(tc.in, plus2)
		if err != nil || got != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"2026-12-01", "10:00", "2026-13-01T10:00:00Z", "1969-12-31T23:59:59Z", "now"} {
		if _, err := parseResetDatetime(bad, plus2); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
}

const testGroupJSON = `{"group":"billing","type":"classic","state":"Stable","protocol_type":"consumer","protocol":"cooperative-sticky",
	"members":[{"member_id":"m-1","client_id":"svc","client_host":"/10.0.0.5","assignment":[{"topic":"orders","partitions":[0,1]}]}],
	"topics":[{"topic":"orders","lag":7,"partitions":[{"partition":0,"committed":10,"log_end_offset":17,"lag":7},
	{"partition":1,"committed":-1,"log_end_offset":3,"lag":null}]}],
	"offset_reset":{"group":"billing","topics":["orders"],"to":{"kind":"shift","value":-100},"state":"applied","targets":[],"created":5}}`

func TestRenderGroups(t *testing.T) {
	var g adminapi.Group
	if err := json.Unmarshal([]byte(testGroupJSON), &g); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := renderGroup(&b, g); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, pattern := range []string{
		`^state:\s+Stable$`,
		`^protocol:\s+consumer cooperative-sticky$`,
		`^last offset reset:\s+applied to shift -100$`,
		`^m-1\s+-\s+svc\s+/10\.0\.0\.5\s+orders\[0,1\]$`,
		`^orders\s+0\s+10\s+17\s+7$`,
		`^orders\s+1\s+-\s+3\s+-$`,
		`^orders\s+total\s+7$`,
	} {
		if !regexpLine(out, pattern) {
			t.Errorf("no line matching %s in:\n%s", pattern, out)
		}
	}

	b.Reset()
	if err := renderGroups(&b, adminapi.GroupList{Groups: []adminapi.GroupListing{{Group: "billing", State: "Stable", ProtocolType: "consumer", Type: "classic"}, {Group: "empty"}}}); err != nil {
		t.Fatal(err)
	}
	if !regexpLine(b.String(), `^billing\s+classic\s+Stable\s+consumer$`) || !regexpLine(b.String(), `^empty\s+-\s+-\s+-$`) {
		t.Errorf("groups table:\n%s", b.String())
	}

	b.Reset()
	r := fsm.OffsetReset{State: fsm.ResetPending, Targets: []fsm.ResetTarget{{Topic: "orders", Partition: 0, Old: 10, New: 0}, {Topic: "orders", Partition: 1, Old: -1, New: 0}}}
	r.To.Kind = "earliest"
	if err := renderReset(&b, "billing", r, false); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.HasPrefix(out, "offset reset of billing: pending, to earliest\n") ||
		!regexpLine(out, `^orders\s+0\s+10\s+->\s+0$`) || !regexpLine(out, `^orders\s+1\s+-\s+->\s+0$`) {
		t.Errorf("reset:\n%s", out)
	}
}

// TestGroupsResetWait: --wait polls the group's latest job until it is
// applied (exit 0) or failed (exit 1), skipping an older job a follower
// may still show, with a line per state.
func TestGroupsResetWait(t *testing.T) {
	const started = `{"group":"billing","topics":["orders"],"to":{"kind":"earliest"},"state":"pending","created":5,
		"targets":[{"topic":"orders","partition":0,"old":10,"new":0}]}`
	for _, tc := range []struct {
		name  string
		final string
		code  int
	}{
		{"applied", `{"group":"billing","state":"applied","created":5,"targets":[{"topic":"orders","partition":0,"old":10,"new":0}]}`, 0},
		{"failed", `{"group":"billing","state":"failed","created":5,"error":"peer p2 did not fence"}`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			answers := []string{
				`{"group":"billing","state":"applied","created":1}`, // the previous job
				`{"group":"billing","state":"fencing","created":5}`,
				tc.final,
			}
			var mu sync.Mutex
			var reqs []string
			var posted []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				reqs = append(reqs, r.Method+" "+r.RequestURI)
				w.Header().Set("Content-Type", "application/json")
				if r.Method == http.MethodPost {
					posted, _ = io.ReadAll(r.Body)
					w.WriteHeader(http.StatusAccepted)
					io.WriteString(w, started)
					return
				}
				i := min(len(reqs)-2, len(answers)-1)
				io.WriteString(w, answers[i])
			}))
			defer srv.Close()
			var out, errb bytes.Buffer
			code := run(context.Background(), []string{"ctl", "--server", srv.URL, "groups", "reset", "billing", "--topic", "orders", "--to-earliest", "--wait"}, &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s%s", code, tc.code, out.String(), errb.String())
			}
			mu.Lock()
			defer mu.Unlock()
			if string(posted) != `{"topics":["orders"],"to":"earliest","dry_run":false}` {
				t.Errorf("posted %s", posted)
			}
			want := []string{"POST /v1/groups/billing/offset-resets"}
			for range answers {
				want = append(want, "GET /v1/groups/billing/offset-resets?consistent=1")
			}
			if !slices.Equal(reqs, want) {
				t.Errorf("requests %q\nwant %q", reqs, want)
			}
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) < 4 || lines[0] != "offset reset of billing: pending, to earliest" || !slices.Contains(lines, "billing: fencing") {
				t.Errorf("output:\n%s", out.String())
			}
			switch tc.code {
			case 0:
				if !strings.HasPrefix(lines[len(lines)-1], "the offsets of billing are reset") || !slices.Contains(lines, "billing: applied") {
					t.Errorf("output:\n%s", out.String())
				}
			default:
				if !slices.Contains(lines, "billing: failed: peer p2 did not fence") || !strings.Contains(errb.String(), "the offset reset of billing failed: peer p2 did not fence") {
					t.Errorf("output:\n%s\nstderr: %s", out.String(), errb.String())
				}
			}
		})
	}
}

// TestGroupsResetDryRunWire: a dry run sends dry_run true once and prints
// the targets it was answered, saying nothing changed; -o json prints the
// answer as is.
func TestGroupsResetDryRunWire(t *testing.T) {
	const answer = `{"group":"billing","topics":["orders"],"to":{"kind":"timestamp","value":1796119200000},"targets":[{"topic":"orders","partition":3,"old":50,"new":20}]}`
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, r.Method+" "+r.URL.Path+" "+string(b))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer)
	}))
	defer srv.Close()
	for _, asJSON := range []bool{false, true} {
		args := []string{"ctl", "--server", srv.URL, "groups", "reset", "billing", "--topic", "orders", "--partitions", "3", "--to-datetime", "2026-12-01T10:00:00Z", "--dry-run"}
		if asJSON {
			args = append(args[:3], append([]string{"-o", "json"}, args[3:]...)...)
		}
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		if asJSON {
			var v map[string]any
			if err := json.Unmarshal(out.Bytes(), &v); err != nil || v["group"] != "billing" {
				t.Errorf("json output %s (%v)", out.String(), err)
			}
			continue
		}
		if o := out.String(); !strings.Contains(o, "nothing changed") || !regexpLine(o, `^orders\s+3\s+50\s+->\s+20$`) {
			t.Errorf("output:\n%s", o)
		}
	}
	want := `POST /v1/groups/billing/offset-resets {"topics":["orders"],"partitions":{"orders":[3]},"to":{"timestamp":1796119200000},"dry_run":true}`
	if len(bodies) != 2 || bodies[0] != want || bodies[1] != want {
		t.Errorf("requests %q\nwant twice %s", bodies, want)
	}
}

// TestCtlGroupsOnSandbox: `groups list` and `groups describe` against a
// sandbox of two peers in front of two clusters, asking each peer (each
// reads through its own Kafka listener): a group with commits only and a
// group with a live member, "payments" on west and "orders" on east.
func TestCtlGroupsOnSandbox(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb, err := sandbox.Start(ctx, sandbox.Config{
		Clusters: []sandbox.ClusterSpec{{Name: "east", Brokers: 1}, {Name: "west", Brokers: 1}},
		Setup:    []fsm.Command{&fsm.PutRoute{Topic: "payments", Cluster: "west"}},
		Peers:    2,
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()

	cl, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, topic := range []string{"orders", "payments"} {
		if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
			t.Fatalf("create %s: %v", topic, err)
		}
		for i := range 30 {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
				t.Fatalf("produce to %s: %v", topic, err)
			}
		}
	}
	commits := kadm.Offsets{}
	for p := range int32(3) {
		commits.Add(kadm.Offset{Topic: "orders", Partition: p, At: 4, LeaderEpoch: -1})
		commits.Add(kadm.Offset{Topic: "payments", Partition: p, At: int64(p), LeaderEpoch: -1})
	}
	// A peer may not know a just-created topic's id until its metadata
	// refresh (UNKNOWN_TOPIC_ID, retriable; kadm does not retry it).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := adm.CommitAllOffsets(ctx, "billing", commits)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("commit billing: %v", err)
		}
	}
	member, err := kgo.NewClient(kgo.SeedBrokers(sb.Bootstrap[1]), kgo.ConsumerGroup("live"), kgo.ConsumeTopics("orders"),
		kgo.ClientID("live-member"), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for mctx.Err() == nil {
			member.PollFetches(mctx)
		}
	}()
	defer func() { mcancel(); <-polled; member.Close() }()

	for i, admin := range sb.AdminURLs {
		ctl := func(args ...string) (int, string, string) {
			var out, errb bytes.Buffer
			code := run(ctx, append([]string{"ctl", "--server", admin, "--timeout", "20s"}, args...), &out, &errb)
			return code, out.String(), errb.String()
		}
		var out string
		waitUntil(t, 60*time.Second, fmt.Sprintf("peer %d lists both groups, live stable", i), func() bool {
			code, o, _ := ctl("groups", "list")
			out = o
			return code == 0 && regexpLine(o, `^billing\s+`) && regexpLine(o, `^live\s+\S+\s+Stable\s+consumer$`)
		})
		code, out, errOut := ctl("groups", "describe", "billing")
		if code != 0 {
			t.Fatalf("peer %d: describe billing: exit %d %s", i, code, errOut)
		}
		for _, pattern := range []string{
			`^no members$`,
			`^orders\s+0\s+4\s+10\s+6$`, `^orders\s+2\s+4\s+10\s+6$`, `^orders\s+total\s+18$`,
			`^payments\s+1\s+1\s+10\s+9$`, `^payments\s+total\s+27$`,
		} {
			if !regexpLine(out, pattern) {
				t.Errorf("peer %d: describe billing has no line matching %s:\n%s", i, pattern, out)
			}
		}
		var live adminapi.Group
		waitUntil(t, 30*time.Second, "live shows its member", func() bool {
			code, o, _ := ctl("-o", "json", "groups", "describe", "live")
			return code == 0 && json.Unmarshal([]byte(o), &live) == nil && live.State == "Stable" && len(live.Members) == 1
		})
		if m := live.Members[0]; m.ClientID != "live-member" || len(m.Assignment) != 1 || m.Assignment[0].Topic != "orders" || len(m.Assignment[0].Partitions) != 3 {
			t.Errorf("peer %d: live %+v", i, live)
		}
		if code, _, errOut := ctl("groups", "describe", "nobody"); code != 1 || !strings.Contains(errOut, `404 group "nobody" does not exist`) {
			t.Errorf("peer %d: describe nobody: exit %d %s", i, code, errOut)
		}
	}
}
