package kafka

// TLS on the Kafka listener. The certificate, its key and the client CA are
// files re-read when they change (fileCache), so a renewed certificate is
// served from the next handshake on without a restart. With a client CA,
// every client must present a certificate it signed (Kafka's
// ssl.client.auth=required), and the certificate's subject is the
// connection's principal until SASL authenticates it (SASL wins, as in
// Kafka's SASL_SSL listeners).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// listenerTLS serves the listener's TLS configuration.
type listenerTLS struct {
	cert     *fileCache[*tls.Certificate]
	clientCA *fileCache[*x509.CertPool] // nil: no client certificates
	timeout  time.Duration
	base     *tls.Config
}

func newListenerTLS(sec *Security, log *slog.Logger) (*listenerTLS, error) {
	if sec.TLSCertFile == "" {
		return nil, nil
	}
	cert, err := newFileCache("kafka tls certificate", log, parseKeyPair, sec.TLSCertFile, sec.TLSKeyFile)
	if err != nil {
		return nil, err
	}
	lt := &listenerTLS{cert: cert, timeout: sec.TLSHandshakeTimeout}
	if lt.timeout <= 0 {
		lt.timeout = DefaultTLSHandshakeTimeout
	}
	if sec.TLSClientCAFile != "" {
		if lt.clientCA, err = newFileCache("kafka tls client CA", log, parseCAPool, sec.TLSClientCAFile); err != nil {
			return nil, err
		}
	}
	lt.base = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return lt.cert.get(), nil
		},
	}
	if lt.clientCA != nil {
		// The pool is taken per handshake, so a changed CA file applies to
		// the next client.
		lt.base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cfg := lt.base.Clone()
			cfg.GetConfigForClient = nil
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
			cfg.ClientCAs = lt.clientCA.get()
			return cfg, nil
		}
	}
	return lt, nil
}

func parseKeyPair(data [][]byte) (*tls.Certificate, error) {
	c, err := tls.X509KeyPair(data[0], data[1])
	if err != nil {
		return nil, err
	}
	return &c, nil
}

func parseCAPool(data [][]byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data[0]) {
		return nil, errors.New("no PEM certificate found")
	}
	return pool, nil
}

// ErrTLSHandshake is what a connection whose TLS handshake failed is closed
// with.
var ErrTLSHandshake = errors.New("tls handshake failed")

// handshakeTLS completes a TLS client's handshake within the timeout and
// takes the principal from its certificate, if it sent one.
func (c *clientConn) handshakeTLS(tc *tlsConn) error {
	lt := c.s.tls
	ctx, cancel := context.WithTimeout(context.Background(), lt.timeout)
	defer cancel() // closing the server closes nc, which ends the handshake too
	if err := tc.HandshakeContext(ctx); err != nil {
		if errors.Is(err, io.EOF) {
			// Closed before a ClientHello: a TCP check (a load balancer's,
			// the peers' liveness probe), not a failed handshake.
			return io.EOF
		}
		if lt.clientCA != nil {
			c.s.metrics.auth.count("TLS", authFailed)
		}
		return fmt.Errorf("%w: %v", ErrTLSHandshake, err)
	}
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		c.principal = certPrincipal(certs[0])
		c.s.metrics.auth.count("TLS", authOK)
	}
	return nil
}

type tlsConn = tls.Conn

// certPrincipal is Kafka's default principal for a client certificate:
// "User:" + the subject's distinguished name in RFC 2253 form, which is
// what Java's X500Principal.getName() gives and Go's pkix.Name.String()
// also writes (most specific attribute first, "CN=alice,O=acme").
func certPrincipal(cert *x509.Certificate) string {
	return "User:" + cert.Subject.String()
}
