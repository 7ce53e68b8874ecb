package kafka

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestKafkaHost(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1":             "/127.0.0.1",
		"::ffff:10.1.2.3":       "/10.1.2.3",
		"::1":                   "/0:0:0:0:0:0:0:1",
		"2001:db8::12:ab":       "/2001:db8:0:0:0:0:12:ab",
		"fe80::1%eth0":          "/fe80:0:0:0:0:0:0:1%eth0",
		"2001:db8:1:2:3:4:5:67": "/2001:db8:1:2:3:4:5:67",
	} {
		if got := kafkaHost(netip.MustParseAddr(in)); got != want {
			t.Errorf("kafkaHost(%s) = %q, want %q", in, got, want)
		}
	}
	if got := kafkaHost(netip.Addr{}); got != "" {
		t.Errorf("no address: %q", got)
	}
}

// cxJoin joins group through h; the coordinator answers with member id
// and code.
func cxJoin(t *testing.T, h *cxConn, group, member string, code int16) {
	t.Helper()
	req := kmsg.NewPtrJoinGroupRequest()
	req.Group, req.ProtocolType = group, "consumer"
	req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{1}}}
	h.answered(req, 9, func(cxAt, kmsg.Request) kmsg.Response {
		return &kmsg.JoinGroupResponse{ErrorCode: code, Generation: 1, MemberID: member, LeaderID: member}
	})
}

// cxDescribe describes groups through h; every coordinator answers with
// members m-1 and m-2 whose client host is the proxy's upstream socket.
func cxDescribe(t *testing.T, h *cxConn, groups ...string) map[string]string {
	t.Helper()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = groups
	_, kr := h.answered(req, 5, func(_ cxAt, kr kmsg.Request) kmsg.Response {
		resp := kmsg.NewPtrDescribeGroupsResponse()
		for _, g := range kr.(*kmsg.DescribeGroupsRequest).Groups {
			dg := kmsg.NewDescribeGroupsResponseGroup()
			dg.Group, dg.State = g, "Stable"
			dg.Members = []kmsg.DescribeGroupsResponseGroupMember{
				{MemberID: "m-1", ClientID: "cid-1", ClientHost: "/10.0.0.9"},
				{MemberID: "m-2", ClientID: "cid-2", ClientHost: "/10.0.0.9"},
			}
			resp.Groups = append(resp.Groups, dg)
		}
		return resp
	})
	out := map[string]string{}
	for _, g := range kr.(*kmsg.DescribeGroupsResponse).Groups {
		for _, m := range g.Members {
			out[g.Group+"/"+m.MemberID] = m.ClientID + "@" + m.ClientHost
		}
	}
	return out
}

// TestDescribeGroupsMemberHost: a member that joined through this peer is
// described with the address of the client connection that joined, not
// the proxy's upstream socket the backend saw; other members, failed
// joins and members that left keep the backend's value. Client ids are
// the backend's (the client's own, forwarded as sent).
func TestDescribeGroupsMemberHost(t *testing.T) {
	f := newCx(t, true)
	a, b := f.conn(t), f.conn(t)
	a.c.clientHost, b.c.clientHost = "/192.0.2.7", "/192.0.2.8"
	cxJoin(t, a, "g1", "m-1", 0)
	cxJoin(t, b, "wg-1", "m-2", 0)
	cxJoin(t, b, "g1", "m-2", kerr.RebalanceInProgress.Code) // failed: not recorded

	// One coordinator: the answer is rewritten in place.
	got := cxDescribe(t, b, "g1")
	want := map[string]string{"g1/m-1": "cid-1@/192.0.2.7", "g1/m-2": "cid-2@/10.0.0.9"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("one coordinator: %v, want %v", got, want)
	}
	// Two homes: the merged answer is rewritten per cluster.
	got = cxDescribe(t, a, "g1", "wg-1")
	want = map[string]string{"g1/m-1": "cid-1@/192.0.2.7", "g1/m-2": "cid-2@/10.0.0.9", "wg-1/m-1": "cid-1@/10.0.0.9", "wg-1/m-2": "cid-2@/192.0.2.8"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("two homes: %v, want %v", got, want)
	}
	// Another peer did not see the joins: the backend's value stays.
	other := newCxAt(t, true, 1).conn(t)
	if got := cxDescribe(t, other, "g1")["g1/m-1"]; got != "cid-1@/10.0.0.9" {
		t.Fatalf("peer 1 describes m-1 as %s", got)
	}
	// LeaveGroup forgets the member.
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group, leave.Members = "g1", []kmsg.LeaveGroupRequestMember{{MemberID: "m-1"}}
	a.answered(leave, 4, cxAnswerWith(kmsg.NewPtrLeaveGroupResponse()))
	if got := cxDescribe(t, a, "g1")["g1/m-1"]; got != "cid-1@/10.0.0.9" {
		t.Fatalf("after leaving, m-1 described as %s", got)
	}
}

// TestMemberHostsBounded: the table is an LRU sized like the coordinator
// cache, however many members join.
func TestMemberHostsBounded(t *testing.T) {
	f := newCx(t, true)
	h := f.conn(t)
	h.c.clientHost = "/192.0.2.7"
	if f.srv.members.max != f.srv.cfg.CoordinatorCacheSize {
		t.Fatalf("member table holds %d, want the coordinator cache size %d", f.srv.members.max, f.srv.cfg.CoordinatorCacheSize)
	}
	f.srv.members = newLRU[memberKey, string](3, f.srv.cfg.CoordinatorCacheTTL, 0, nil)
	for i := range 10 {
		cxJoin(t, h, "g1", fmt.Sprintf("m-%d", i), 0)
	}
	if n := f.srv.members.len(); n != 3 {
		t.Fatalf("%d entries, want 3", n)
	}
}

// TestMemberHostHeartbeatKeepsFresh: a member's heartbeats keep its entry
// past the idle expiry; an entry nobody uses expires.
func TestMemberHostHeartbeatKeepsFresh(t *testing.T) {
	f := newCx(t, true)
	h := f.conn(t)
	h.c.clientHost = "/192.0.2.7"
	now := time.Unix(1_000_000, 0)
	f.srv.members = newLRU[memberKey, string](10, 5*time.Minute, 0, func() time.Time { return now })
	cxJoin(t, h, "g1", "m-1", 0)
	cxJoin(t, h, "g1", "m-2", 0)
	for range 3 {
		now = now.Add(4 * time.Minute)
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.Group, hb.Generation, hb.MemberID = "g1", 1, "m-1"
		h.answered(hb, 4, cxAnswerWith(kmsg.NewPtrHeartbeatResponse()))
	}
	got := cxDescribe(t, h, "g1")
	if got["g1/m-1"] != "cid-1@/192.0.2.7" || got["g1/m-2"] != "cid-2@/10.0.0.9" {
		t.Fatalf("after 12m with heartbeats from m-1 only: %v", got)
	}
}
