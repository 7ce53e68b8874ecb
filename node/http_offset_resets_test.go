package node

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

func TestParseResetTo(t *testing.T) {
	good := map[string]fsm.ResetTo{
		`"earliest"`:                   {Kind: fsm.ResetToEarliest},
		`"latest"`:                     {Kind: fsm.ResetToLatest},
		`{"timestamp": 1700000000000}`: {Kind: fsm.ResetToTimestamp, Value: 1700000000000},
		`{"offset": 0}`:                {Kind: fsm.ResetToOffset},
		`{"shift": -100}`:              {Kind: fsm.ResetToShift, Value: -100},
	}
	for in, want := range good {
		if got, err := parseResetTo(json.RawMessage(in)); err != nil || got != want {
			t.Errorf("parseResetTo(%s) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{``, `null`, `"middle"`, `{}`, `{"shift": 1, "offset": 2}`, `{"offset": -1}`, `{"timestamp": 1.5}`, `{"when": 3}`, `[1]`, `7`} {
		if _, err := parseResetTo(json.RawMessage(in)); err == nil || !strings.Contains(err.Error(), `"to"`) && !strings.Contains(err.Error(), "must not be negative") && !strings.Contains(err.Error(), "integer") {
			t.Errorf("parseResetTo(%s) = %v, want a 400 naming \"to\"", in, err)
		}
	}
}

// TestOffsetResetAPI: a dry run answers the resolved targets and changes
// nothing; a reset answers 202 with the job, which ends applied with the
// group's offsets at the targets; bad requests are 4xx and change nothing.
func TestOffsetResetAPI(t *testing.T) {
	env := startMigrationEnv(t)
	n := env.n
	ctx := context.Background()
	produce(t, env.east, "orders", []int{50, 50, 50, 50})
	if _, err := env.eastAdm.CommitOffsets(ctx, "api", kadm.OffsetsFromRecords(
		kgo.Record{Topic: "orders", Partition: 0, Offset: 39}, kgo.Record{Topic: "orders", Partition: 1, Offset: 9})); err != nil {
		t.Fatal(err)
	}
	before := n.fsm.State().Index

	for _, bad := range []struct {
		body string
		code int
	}{
		{`{"topics": ["orders"], "to": "middle"}`, 400},
		{`{"topics": [], "to": "earliest"}`, 400},
		{`{"to": "earliest"}`, 400},
		{`{"topics": ["orders"]}`, 400},
		{`{"topics": ["nope"], "to": "earliest"}`, 404},
		{`{"topics": ["orders"], "partitions": {"orders": [9]}, "to": "earliest"}`, 404},
		{`{"topics": ["orders"], "to": {"shift": -5}}`, 400}, // partitions 2 and 3 have no committed offset
		{`{"topics": ["orders"], "to": "earliest", "extra": 1}`, 400},
	} {
		code, _, body := call(t, n, "POST", "/v1/groups/api/offset-resets", "", bad.body)
		if code != bad.code {
			t.Errorf("POST %s = %d %s, want %d", bad.body, code, body, bad.code)
		}
	}
	if n.fsm.State().Index != before {
		t.Fatal("a refused request changed the state")
	}
	if code, _, body := call(t, n, "GET", "/v1/groups/api/offset-resets", "", ""); code != 404 {
		t.Fatalf("GET before any reset = %d %s, want 404", code, body)
	}

	code, _, body := call(t, n, "POST", "/v1/groups/api/offset-resets", "", `{"topics": ["orders"], "partitions": {"orders": [0, 1]}, "to": {"shift": -5}, "dry_run": true}`)
	if code != 200 {
		t.Fatalf("dry run = %d %s", code, body)
	}
	var dry struct {
		DryRun  bool              `json:"dry_run"`
		Targets []fsm.ResetTarget `json:"targets"`
	}
	if err := json.Unmarshal([]byte(body), &dry); err != nil {
		t.Fatal(err)
	}
	want := []fsm.ResetTarget{{Topic: "orders", Partition: 0, Old: 40, New: 35}, {Topic: "orders", Partition: 1, Old: 10, New: 5}}
	if !dry.DryRun || len(dry.Targets) != 2 || dry.Targets[0] != want[0] || dry.Targets[1] != want[1] {
		t.Fatalf("dry run answered %s, want targets %+v", body, want)
	}
	if n.fsm.State().Index != before {
		t.Fatal("a dry run changed the state")
	}

	code, _, body = call(t, n, "POST", "/v1/groups/api/offset-resets", "", `{"topics": ["orders"], "partitions": {"orders": [0, 1]}, "to": {"shift": -5}}`)
	if code != 202 {
		t.Fatalf("reset = %d %s", code, body)
	}
	var job fsm.OffsetReset
	if err := json.Unmarshal([]byte(body), &job); err != nil || job.Group != "api" || len(job.Targets) != 2 || job.Targets[0] != want[0] {
		t.Fatalf("reset answered %s (%v)", body, err)
	}
	waitUntil(t, 30*time.Second, "the reset applies", func() bool {
		code, _, body := call(t, n, "GET", "/v1/groups/api/offset-resets", "", "")
		var j fsm.OffsetReset
		return code == 200 && json.Unmarshal([]byte(body), &j) == nil && j.State == fsm.ResetApplied
	})
	os, err := env.eastAdm.FetchOffsets(ctx, "api")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if o, ok := os.Lookup(w.Topic, w.Partition); !ok || o.At != w.New {
			t.Fatalf("%s/%d committed %+v, want %d", w.Topic, w.Partition, o, w.New)
		}
	}
}

// TestResetToWire: every target ctl sends (adminapi.ResetToJSON) is read
// back as itself by the handler's parser.
func TestResetToWire(t *testing.T) {
	for _, to := range []fsm.ResetTo{
		{Kind: fsm.ResetToEarliest}, {Kind: fsm.ResetToLatest},
		{Kind: fsm.ResetToTimestamp, Value: 1764813600000}, {Kind: fsm.ResetToOffset, Value: 42},
		{Kind: fsm.ResetToShift, Value: -3},
	} {
		got, err := parseResetTo(adminapi.ResetToJSON(to))
		if err != nil || got != to {
			t.Errorf("%+v: encoded %s, parsed back %+v, %v", to, adminapi.ResetToJSON(to), got, err)
		}
	}
}
