package kafka

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFetchRackRewrite: a Fetch v11+ from a client whose region is known
// goes to the backend with rack_id = the region, whatever the client sent;
// the rewritten frame keeps the key, version, correlation and client id,
// and the in-place rewrites that follow (sessions, the byte cap) land in
// the new body. Without a region, or before v11, the bytes are untouched.
func TestFetchRackRewrite(t *testing.T) {
	f := newFx(t)
	for _, tc := range []struct {
		version      int16
		region, rack string
		want         string
		rewritten    bool
	}{
		{12, "dc1", "", "dc1", true},
		{11, "dc1", "client-rack", "dc1", true},
		{16, "a", "a", "a", false},
		{12, "", "client-rack", "client-rack", false},
		{10, "dc1", "", "", false},
	} {
		c := &clientConn{s: f.srv}
		req := kmsg.NewPtrFetchRequest()
		req.Version = tc.version
		req.SessionID, req.SessionEpoch, req.MaxBytes = 9, -1, 1<<20 // closing session 9: a full fetch
		req.Rack = tc.rack
		tp := kmsg.NewFetchRequestTopic()
		tp.Topic, tp.TopicID = "orders", fxOrdersID
		tp.Partitions = []kmsg.FetchRequestTopicPartition{kmsg.NewFetchRequestTopicPartition()}
		req.Topics = []kmsg.FetchRequestTopic{tp}
		id := "cli"
		frame := appendRequest(nil, req, 77, &id)
		h, err := parseHeader(frame[4:], nil)
		if err != nil {
			t.Fatal(err)
		}
		r := c.newRequest(h, &buffer{b: frame}, time.Now())
		r.region = tc.region
		before := string(r.buf.b)
		decoded, err := decodeRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := fetchFamily.prepare(r, decoded.(*kmsg.FetchRequest)); err != nil {
			t.Fatal(err)
		}
		r.split.maxBytes = 1000
		fetchFamily.routed(r, decoded.(*kmsg.FetchRequest))
		h2, err := parseHeader(r.buf.b[4:], nil)
		if err != nil {
			t.Fatalf("v%d: rewritten frame: %v", tc.version, err)
		}
		if h2.key != 1 || h2.version != tc.version || h2.corr != 77 || h2.clientID == nil || *h2.clientID != "cli" {
			t.Fatalf("v%d: rewritten header %+v", tc.version, h2)
		}
		got := kmsg.NewPtrFetchRequest()
		got.Version = tc.version
		if err := got.ReadFrom(r.buf.b[4+h2.bodyOff:]); err != nil {
			t.Fatalf("v%d: rewritten body: %v", tc.version, err)
		}
		if got.Rack != tc.want {
			t.Fatalf("v%d region %q: rack %q reaches the backend, want %q", tc.version, tc.region, got.Rack, tc.want)
		}
		if got.MaxBytes != 1000 || got.SessionID != 0 || got.SessionEpoch != -1 || len(got.Topics) != 1 {
			t.Fatalf("v%d: the other rewrites did not land in the body: %+v", tc.version, got)
		}
		// The racks in these cases differ in length: a rewrite shows.
		if rewritten := len(r.buf.b) != len(before); rewritten != tc.rewritten {
			t.Fatalf("v%d region %q rack %q: frame re-encoded = %v, want %v", tc.version, tc.region, tc.rack, rewritten, tc.rewritten)
		}
	}
}

// TestFetchReadReplica: a preferred read replica (KIP-392) the backend
// names is hidden from the client, and this connection's next fetches of
// that partition go to that broker, until it answers with an error.
func TestFetchReadReplica(t *testing.T) {
	f := newFx(t)
	c := &clientConn{s: f.srv}
	leader := target{f.backend, 100}
	tt := topicTarget{be: f.backend, name: "orders"}
	route := func() target { return fetchFamily.replica(reqOn(c, 1, 12), tt, 0, leader) }
	if got := route(); got != leader {
		t.Fatalf("before any answer: %+v, want the leader", got)
	}
	resp := fetchResp(12)
	orders := kmsg.NewFetchResponseTopic()
	orders.Topic, orders.TopicID = "orders", fxOrdersID
	orders.Partitions = []kmsg.FetchResponseTopicPartition{fetchPart(0, 0, 100, 102, nil)}
	resp.Topics = []kmsg.FetchResponseTopic{orders}
	resp = roundTrip(t, resp).(*kmsg.FetchResponse)
	if !fixFetch(reqOn(c, 1, 12), leader, resp) || resp.Topics[0].Partitions[0].PreferredReadReplica != -1 {
		t.Fatal("the preferred read replica reached the client")
	}
	if got := route(); got != (target{f.backend, 102}) {
		t.Fatalf("after the answer: %+v, want broker 102", got)
	}
	// Another partition still goes to its leader.
	if got := fetchFamily.replica(reqOn(c, 1, 12), tt, 1, leader); got != leader {
		t.Fatalf("partition 1: %+v, want the leader", got)
	}
	resp = fetchResp(12)
	orders.Partitions = []kmsg.FetchResponseTopicPartition{fetchPart(0, kerr.OffsetOutOfRange.Code, -1, -1, nil)}
	resp.Topics = []kmsg.FetchResponseTopic{orders}
	resp = roundTrip(t, resp).(*kmsg.FetchResponse)
	fixFetch(reqOn(c, 1, 12), target{f.backend, 102}, resp)
	if got := route(); got != leader {
		t.Fatalf("after the replica's error: %+v, want the leader again", got)
	}
}
