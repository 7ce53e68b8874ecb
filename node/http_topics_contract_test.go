package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// TestTopicsListContract checks GET /v1/topics against the contract the
// console's Topics page is written to: every topic of the peer's metadata
// but internal ones, sorted, with its routed cluster, partitions and the
// clusters holding it; prefix and limit filter, truncated says more
// matched, a bad limit is a 400 with a reason.
func TestTopicsListContract(t *testing.T) {
	east, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "a1", "a2", "shared"), kfake.SeedTopics(1, "b1"))
	if err != nil {
		t.Fatal(err)
	}
	defer east.Close()
	west, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "shared"))
	if err != nil {
		t.Fatal(err)
	}
	defer west.Close()
	n := startSolo(t, "")
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/v1/clusters/east", fmt.Sprintf(`{"bootstrap":[%q]}`, east.ListenAddrs()[0])},
		{"PUT", "/v1/clusters/west", fmt.Sprintf(`{"bootstrap":[%q]}`, west.ListenAddrs()[0])},
		{"PUT", "/v1/default-cluster", `{"cluster":"east"}`},
		{"PUT", "/v1/routes/shared", `{"cluster":"west"}`},
	} {
		if code, _, body := call(t, n, c.method, c.path, "", c.body); code != http.StatusOK {
			t.Fatalf("%s %s: %d %s", c.method, c.path, code, body)
		}
	}
	type topic struct {
		Name       string
		Cluster    string
		Partitions int
		PresentOn  []string `json:"present_on"`
		Migrating  bool
	}
	type answer struct {
		Topics    []topic
		Truncated bool
	}
	get := func(q string) (int, answer, string) {
		code, _, body := call(t, n, "GET", "/v1/topics"+q, "", "")
		var a answer
		if code == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &a); err != nil {
				t.Fatalf("GET /v1/topics%s: %v: %s", q, err, body)
			}
		}
		return code, a, body
	}
	want := []topic{
		{"a1", "east", 2, []string{"east"}, false},
		{"a2", "east", 2, []string{"east"}, false},
		{"b1", "east", 1, []string{"east"}, false},
		{"shared", "west", 4, []string{"east", "west"}, false},
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, a, body := get("")
		if code == http.StatusOK && slices.EqualFunc(a.Topics, want, func(x, y topic) bool {
			return x.Name == y.Name && x.Cluster == y.Cluster && x.Partitions == y.Partitions && slices.Equal(x.PresentOn, y.PresentOn) && x.Migrating == y.Migrating
		}) && !a.Truncated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/topics: %d %s, want %+v", code, body, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, a, body := get("?prefix=a&limit=1"); code != http.StatusOK || len(a.Topics) != 1 || a.Topics[0].Name != "a1" || !a.Truncated {
		t.Errorf("prefix a, limit 1: %d %s; want a1 and truncated", code, body)
	}
	if code, a, body := get("?prefix=a&limit=2"); code != http.StatusOK || len(a.Topics) != 2 || a.Truncated {
		t.Errorf("prefix a, limit 2: %d %s; want a1, a2, not truncated", code, body)
	}
	for _, bad := range []string{"0", "-1", "x", "10001"} {
		if code, _, body := get("?limit=" + bad); code != http.StatusBadRequest || !json.Valid([]byte(body)) {
			t.Errorf("limit %s: %d %s; want 400 with a reason", bad, code, body)
		}
	}
}
