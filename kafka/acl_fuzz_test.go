package kafka

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// authzFuzzKeys are the keys authorization decodes before the handler
// (whole-request, batch and listing checks) and the ACL keys it serves.
var authzFuzzKeys = []int16{8, 9, 10, 11, 12, 13, 14, 15, 16, 20, 22, 24, 25, 26, 28, 29, 30, 31, 32, 33, 42, 43, 44, 45, 46, 47, 60, 65, 66, 68, 69, 77, 90}

// FuzzAuthorizedRequest: with authorization on and rules that allow some
// resources and deny others, any decodable body of a checked key is
// answered exactly once with a response that decodes at its version
// (denied entries answered by the proxy, the rest forwarded and the answer
// amended), and nothing panics.
//
//	go test -run '^$' -fuzz '^FuzzAuthorizedRequest$' -fuzztime 30s ./kafka/
func FuzzAuthorizedRequest(f *testing.F) {
	for i, key := range authzFuzzKeys {
		lo, hi := servedRange(key)
		for v := lo; v <= hi; v++ {
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			f.Add(uint8(i), uint8(v), req.AppendTo(nil))
		}
	}
	for _, seed := range []struct {
		key int16
		req kmsg.Request
	}{{15, seedGroups(15)}, {42, seedGroups(42)}, {8, seedOffsetCommit()}, {65, seedDescribeTransactions()}, {10, seedFindCoordinator()}} {
		i := 0
		for j, k := range authzFuzzKeys {
			if k == seed.key {
				i = j
			}
		}
		lo, hi := servedRange(seed.key)
		for v := lo; v <= hi; v++ {
			seed.req.SetVersion(v)
			f.Add(uint8(i), uint8(v), seed.req.AppendTo(nil))
		}
	}
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, 10)
	acls := []fsm.ACL{
		rule("User:alice", "*", fsm.ResourceTopic, "orders", fsm.PatternLiteral, fsm.OpAll, fsm.PermissionAllow),
		rule("User:alice", "*", fsm.ResourceGroup, "g", fsm.PatternPrefixed, fsm.OpRead, fsm.PermissionAllow),
		rule("User:alice", "*", fsm.ResourceTransactionalID, "t", fsm.PatternPrefixed, fsm.OpWrite, fsm.PermissionAllow),
		rule("User:alice", "*", fsm.ResourceCluster, fsm.ClusterResourceName, fsm.PatternLiteral, fsm.OpDescribe, fsm.PermissionAllow),
	}
	f.Fuzz(func(t *testing.T, ki, version uint8, body []byte) {
		defer catchPanic(t)
		key := authzFuzzKeys[int(ki)%len(authzFuzzKeys)]
		lo, hi := servedRange(key)
		v := lo + fuzzVersion(version, hi-lo)
		r := fuzzReq(key, v, 51)
		r.body = body
		if _, err := decodeRequest(r); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode error is not ErrMalformed: %v", err)
			}
			return
		}
		fix := fuzzFixture(t, reg, metrics, func(c *Config) { c.Authenticates = true })
		st := *fix.view.st
		st.ACLs = acls
		fix.view.st = &st
		h := fix.conn(t)
		h.c.principal = "User:alice"
		hf := func(r *request) error { return authorizeThen(r, fix.srv.handlers[key]) }
		ex := h.run(hf, clientFrame(key, v, 51, body), emptyAnswer(t))
		if ex.err != nil {
			t.Fatalf("%s v%d: handler error for a decodable request: %v", kmsg.NameForKey(key), v, ex.err)
		}
		if ex.slots != 1 || !ex.done || ex.outErr != nil {
			t.Fatalf("%s v%d: %d slots, finished %v, error %v", kmsg.NameForKey(key), v, ex.slots, ex.done, ex.outErr)
		}
		if corr, _ := decodeOut(t, ex.out, key, v); corr != 51 {
			t.Fatalf("correlation id %d", corr)
		}
	})
}
