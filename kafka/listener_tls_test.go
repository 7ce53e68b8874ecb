package kafka

import (
	"crypto/tls"
	"net"
	"testing"
)

// TestRawIOFallsBackForTLS: the raw-syscall reads and writes and the
// buffer-free idle wait need the TCP socket itself; on a TLS connection
// they must step aside (the bytes on the socket are records, not Kafka
// frames).
func TestRawIOFallsBackForTLS(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	tc := tls.Server(a, &tls.Config{})
	if rw := rawIO(tc); rw != tc {
		t.Fatalf("rawIO of a *tls.Conn is %T, want the connection itself", rw)
	}
	if w := newIdleWaiter(tc); w != nil {
		t.Fatal("an idle waiter on a *tls.Conn")
	}
	cr := newConnReader(rawIO(tc))
	if cr.lazy != nil {
		t.Fatal("a TLS connection's reader waits on the raw socket")
	}
}
