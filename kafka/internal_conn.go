package kafka

import "net"

// InternalPrincipal is the principal of the peer's own in-process Kafka
// clients (the node's loopback admin client, node/groups.go): they reach
// the data plane through InternalConn, not through the listener, so they
// need no certificate or password of their own. Authorization must let it
// do anything (it acts on an operator's admin API request, which was
// authorized there). Its type is not "User", so no user name or
// certificate subject can produce it.
const InternalPrincipal = "Peer:switchyard"

// internalConn marks a connection made inside this process. Only code in
// this process can build one (InternalConn), so it cannot be forged from
// the network.
type internalConn struct{ net.Conn }

// InternalConn marks nc, one end of an in-process connection (net.Pipe)
// handed to the server's Listener, as the peer's own: it is served without
// TLS and authenticated as InternalPrincipal.
func InternalConn(nc net.Conn) net.Conn { return &internalConn{nc} }
