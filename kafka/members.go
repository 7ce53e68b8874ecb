package kafka

// Group member hosts. A broker reports each member's client host in
// DescribeGroups as the address the member's JoinGroup came from; behind
// the proxy that is the proxy's own upstream socket. The peer that
// forwards a successful JoinGroup remembers the joining client's address
// per (cluster, group, member id) and writes it back into the
// DescribeGroups answers it forwards. The table is one bounded LRU
// (sized and aged like the coordinator cache: Config.CoordinatorCacheSize,
// CoordinatorCacheTTL); a member's heartbeats keep its entry fresh and
// LeaveGroup drops it.
//
// Limit: a peer only knows the members that joined through it. A member
// that joined through another peer keeps the backend's value (that peer's
// upstream address); peers do not share the table.

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// memberKey names a group member on one backend cluster.
type memberKey struct {
	cluster, group, member string
}

// kafkaHost formats a client address as a broker reports it (Java's
// InetAddress.toString with no host name): "/1.2.3.4", or an IPv6 address
// in full, uncompressed hex groups. "" for no address.
func kafkaHost(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return "/" + ip.String()
	}
	b := ip.As16()
	var sb strings.Builder
	sb.WriteByte('/')
	for i := 0; i < 16; i += 2 {
		if i > 0 {
			sb.WriteByte(':')
		}
		fmt.Fprintf(&sb, "%x", uint16(b[i])<<8|uint16(b[i+1]))
	}
	if z := ip.Zone(); z != "" {
		sb.WriteString("%" + z)
	}
	return sb.String()
}

// joinedPost records the member id of a successful JoinGroup answer as
// joined from this connection's client. The answer goes to the client as
// the backend sent it.
func (c *clientConn) joinedPost(be *Backend, group string, key, version int16) postFunc {
	host := c.clientHost
	if be == nil || host == "" {
		return nil
	}
	cluster := be.Name()
	return func(resp *buffer) (*buffer, error) {
		kr, err := decodeResponse(resp, key, version)
		if err != nil {
			return resp, nil // the client judges the answer; nothing to learn
		}
		m := kr.(*kmsg.JoinGroupResponse)
		if m.ErrorCode == 0 && m.MemberID != "" {
			c.s.members.put(memberKey{cluster, group, m.MemberID}, host)
		}
		return resp, nil
	}
}

// memberSeen keeps a member's entry fresh (Heartbeat) or drops it
// (LeaveGroup).
func (s *Server) memberSeen(be *Backend, req kmsg.Request) {
	if be == nil {
		return
	}
	switch v := req.(type) {
	case *kmsg.HeartbeatRequest:
		s.members.get(memberKey{be.Name(), v.Group, v.MemberID})
	case *kmsg.LeaveGroupRequest:
		s.members.remove(memberKey{be.Name(), v.Group, v.MemberID})
		for _, m := range v.Members {
			s.members.remove(memberKey{be.Name(), v.Group, m.MemberID})
		}
	}
}

// fixMemberHosts replaces the backend's view of each member's client host
// with the client address the member joined from, where this peer saw the
// join. It reports whether anything changed.
func (s *Server) fixMemberHosts(be *Backend, groups []kmsg.DescribeGroupsResponseGroup) bool {
	if be == nil {
		return false
	}
	changed := false
	for i := range groups {
		g := &groups[i]
		for j := range g.Members {
			m := &g.Members[j]
			if h, ok := s.members.get(memberKey{be.Name(), g.Group, m.MemberID}); ok && h != m.ClientHost {
				m.ClientHost, changed = h, true
			}
		}
	}
	return changed
}
