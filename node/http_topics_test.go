package node

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// TestTopicsAPI: GET /v1/topics against two real clusters (kfake), east
// holding orders (4 partitions) and west holding west.logs, stray (a topic
// the default route sends to east, where it does not exist) and an
// internal topic: the route's cluster and its partition count, where each
// topic is, the prefix filter, the limit and its refusals, and a live
// migration moving orders to west.
func TestTopicsAPI(t *testing.T) {
	e := startMigrationEnv(t, kfake.SeedTopics(2, "west.logs", "stray", "__internal"))
	if code, _, body := call(t, e.n, "PUT", "/v1/prefix-routes/west.", "", `{"cluster":"west"}`); code != 200 {
		t.Fatalf("prefix route: %d %s", code, body)
	}
	list := func(query string) adminapi.TopicList {
		t.Helper()
		code, _, body := call(t, e.n, "GET", "/v1/topics"+query, "", "")
		if code != http.StatusOK {
			t.Fatalf("GET /v1/topics%s: %d %s", query, code, body)
		}
		var l adminapi.TopicList
		if err := json.Unmarshal([]byte(body), &l); err != nil {
			t.Fatalf("GET /v1/topics%s: %v in %s", query, err, body)
		}
		return l
	}
	want := adminapi.TopicList{Topics: []adminapi.Topic{
		{Name: "orders", Cluster: "east", Partitions: migParts, PresentOn: []string{"east"}},
		{Name: "stray", Cluster: "east", Partitions: 0, PresentOn: []string{"west"}},
		{Name: "west.logs", Cluster: "west", Partitions: 2, PresentOn: []string{"west"}},
	}}
	var got adminapi.TopicList
	waitUntil(t, 30*time.Second, "both clusters' topics are listed", func() bool {
		got = list("")
		return reflect.DeepEqual(got, want)
	})

	// The raw answer has every field, lists as [] (never null).
	code, _, body := call(t, e.n, "GET", "/v1/topics?prefix=nothing", "", "")
	if code != 200 || strings.Join(strings.Fields(body), "") != `{"topics":[],"truncated":false}` {
		t.Fatalf("empty list: %d %s", code, body)
	}
	if l := list("?prefix=west."); !reflect.DeepEqual(l.Topics, want.Topics[2:]) || l.Truncated {
		t.Fatalf("prefix west.: %+v", l)
	}
	if l := list("?limit=2"); !reflect.DeepEqual(l.Topics, want.Topics[:2]) || !l.Truncated {
		t.Fatalf("limit 2: %+v", l)
	}
	if l := list("?limit=3"); len(l.Topics) != 3 || l.Truncated {
		t.Fatalf("limit 3 of 3: %+v", l)
	}
	if l := list("?prefix=s&limit=1"); len(l.Topics) != 1 || l.Topics[0].Name != "stray" || l.Truncated {
		t.Fatalf("prefix s, limit 1: %+v", l)
	}
	for _, q := range []string{"?limit=0", "?limit=-1", "?limit=10001", "?limit=ten", "?limit=", "?limit=1&limit=2"} {
		code, _, body := call(t, e.n, "GET", "/v1/topics"+q, "", "")
		if code != http.StatusBadRequest || !strings.Contains(body, "limit") {
			t.Errorf("GET /v1/topics%s: %d %s, want 400 about the limit", q, code, body)
		}
	}

	// A live migration: once switched, orders routes to west, which holds
	// it with the source's partition count, and it is still on east.
	if code, _, body := call(t, e.n, "POST", "/v1/migrations", "", `{"topic":"orders","to":"west"}`); code != http.StatusAccepted {
		t.Fatalf("start migration: %d %s", code, body)
	}
	e.waitMigration(t, "orders", fsm.MigrationSwitched, "")
	wantMoving := adminapi.Topic{Name: "orders", Cluster: "west", Partitions: migParts, PresentOn: []string{"east", "west"}, Migrating: true}
	waitUntil(t, 30*time.Second, "orders shows on west, migrating", func() bool {
		got = list("?prefix=orders")
		return len(got.Topics) == 1 && reflect.DeepEqual(got.Topics[0], wantMoving)
	})
	waitUntil(t, 30*time.Second, "the migration finishes", func() bool {
		code, _, _ := call(t, e.n, "POST", "/v1/migrations/orders/finish?force=1", "", "")
		return code == 200
	})
	if got = list("?prefix=orders"); len(got.Topics) != 1 || got.Topics[0].Migrating || got.Topics[0].Cluster != "west" {
		t.Fatalf("after finish: %+v", got)
	}
}
