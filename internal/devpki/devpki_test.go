package devpki

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"testing"
)

// TestHandshake: a server certificate issued for 127.0.0.1 is accepted by a
// client trusting only the CA, with a client certificate verified the other
// way; a client trusting another CA refuses it.
func TestHandshake(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	srvLeaf, err := ca.Issue("server", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cliLeaf, err := ca.Issue("alice")
	if err != nil {
		t.Fatal(err)
	}
	srvCert, _ := srvLeaf.TLS()
	cliCert, _ := cliLeaf.TLS()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	subject := make(chan string, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() == nil {
				subject <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
				io.WriteString(tc, "ok")
			}
			tc.Close()
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cliCert}})
	if err != nil {
		t.Fatalf("trusted handshake: %v", err)
	}
	io.ReadAll(c)
	c.Close()
	if got := <-subject; got != "alice" {
		t.Fatalf("client subject %q", got)
	}
	other, _ := NewCA("other")
	if c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: other.Pool(), Certificates: []tls.Certificate{cliCert}}); err == nil {
		c.Close()
		t.Fatal("a client trusting another CA accepted the server")
	}
	dir := t.TempDir()
	f, err := ca.WriteFiles(dir, "server", srvLeaf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(f.Cert, f.Key); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.CA)
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		t.Fatal("ca.crt does not parse")
	}
	if fi, _ := os.Stat(f.Key); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", fi.Mode().Perm())
	}
}
