package node

// Fuzz target for the bodies of peer RPC requests, the node's parser of
// peer-port bytes. Under plain `go test` it runs its seeds.
//
//	go test -run '^$' -fuzz '^FuzzPeerRPCBodies$' -fuzztime 30s ./node/

import (
	"errors"
	"reflect"
	"testing"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/quota"
	"github.com/switchyard-proxy/switchyard/transport"
)

var fuzzMethods = []string{rpcApply, rpcState, rpcQuotaReport, rpcQuotaGrants, rpcQuotaStatus, rpcMigrationFenced, rpcGroupHeld, rpcLeaseGrant,
	rpcHealthReport, rpcHealthStatus, rpcResumeCommits, "nope"}

func FuzzPeerRPCBodies(f *testing.F) {
	put, err := fsm.Encode(&fsm.PutCluster{Cluster: fsm.Cluster{Name: "east", Bootstrap: []string{"a:1"}}})
	if err != nil {
		f.Fatal(err)
	}
	seed := func(i int, v any) {
		b, err := marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
	}
	seed(0, applyRequest{Command: put})
	seed(0, applyRequest{Command: []byte{0xff, 1, '{', '}'}})
	f.Add(uint8(0), []byte(`{"command":"AQF7fQ==","x":1}`))
	seed(1, struct{}{})
	seed(2, quotaReportRequest{Peer: 2, Report: quota.Report{Boot: 1, Seq: 3, Epoch: 4}})
	seed(3, quota.Grants{Epoch: 2, Seq: 9, LeaseMs: 1000})
	seed(4, quotaStatusRequest{Topic: "orders"})
	seed(5, migrationFencedRequest{Topic: "orders", Index: 42})
	f.Add(uint8(5), []byte(`{"topic":"","index":1}`))
	f.Add(uint8(2), []byte(`{"peer":1}{"peer":2}`))
	f.Add(uint8(3), []byte(`null`))
	f.Add(uint8(4), []byte(``))
	seed(8, healthReportRequest{Verdicts: []healthVerdict{{Cluster: "east", Up: true}, {Cluster: "west"}}})
	f.Add(uint8(8), []byte(`{"verdicts":[{"cluster":"west","up":true},{"cluster":"east","up":false}]}`))
	f.Add(uint8(8), []byte(`{"verdicts":[{"cluster":"","up":true}]}`))
	seed(9, struct{}{})
	seed(10, resumeCommitsRequest{Cluster: "east"})
	f.Add(uint8(10), []byte(`{"cluster":""}`))
	f.Fuzz(func(t *testing.T, m uint8, body []byte) {
		method := fuzzMethods[int(m)%len(fuzzMethods)]
		req, err := decodeRPC(method, body)
		if err != nil {
			// Every refusal crosses the wire with a code, never "internal".
			var re *transport.RPCError
			if !errors.As(toRPCError(err), &re) {
				t.Fatalf("%s: error %v maps to no rpc code", method, err)
			}
			return
		}
		// What was accepted encodes back and decodes to the same value:
		// nothing the sender meant was dropped.
		var again any
		switch v := req.(type) {
		case nil:
			return
		case fsm.Command:
			b, err := fsm.Encode(v)
			if err != nil {
				t.Fatalf("re-encode %T: %v", v, err)
			}
			body, _ := marshal(applyRequest{Command: b})
			if again, err = decodeRPC(method, body); err != nil {
				t.Fatalf("re-decode %T: %v", v, err)
			}
		default:
			b, err := marshal(v)
			if err != nil {
				t.Fatalf("re-encode %T: %v", v, err)
			}
			if again, err = decodeRPC(method, b); err != nil {
				t.Fatalf("re-decode %T %s: %v", v, b, err)
			}
		}
		if !reflect.DeepEqual(req, again) {
			t.Fatalf("%s: %#v decoded again as %#v", method, req, again)
		}
	})
}
