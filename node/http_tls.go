package node

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// TLS on the admin listener (--admin-tls-cert-file, --admin-tls-key-file).
// The key pair is re-read when either file changes (checked at most every
// Timing.AdminFileReload, on a handshake), so a renewed certificate is
// served without a restart; a pair that does not load keeps the one in
// force and is logged once per distinct error.

// certReloader serves a certificate from files, reloading it on change.
type certReloader struct {
	certFile, keyFile string
	every             time.Duration
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	checked time.Time
	stamps  [2]fileStamp
	lastErr string
}

func newCertReloader(certFile, keyFile string, every time.Duration, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, every: every, log: log}
	stamps, err := c.stat()
	if err == nil {
		c.cert, err = c.load()
	}
	if err != nil {
		return nil, fmt.Errorf("node: admin TLS (--admin-tls-cert-file %s, --admin-tls-key-file %s): %w", certFile, keyFile, err)
	}
	c.stamps, c.checked = stamps, time.Now()
	return c, nil
}

func (c *certReloader) stat() ([2]fileStamp, error) {
	var s [2]fileStamp
	for i, f := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return s, err
		}
		s[i] = fileStamp{fi}
	}
	return s, nil
}

func (c *certReloader) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return nil, err
	}
	return &cert, nil
}

// GetCertificate is tls.Config.GetCertificate.
func (c *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.checked) >= c.every {
		c.checked = time.Now()
		c.reloadLocked()
	}
	return c.cert, nil
}

func (c *certReloader) reloadLocked() {
	stamps, err := c.stat()
	if err == nil && c.stamps[0].same(stamps[0].info) && c.stamps[1].same(stamps[1].info) {
		return
	}
	var cert *tls.Certificate
	if err == nil {
		cert, err = c.load()
	}
	if err != nil {
		// The two files are often written one after the other: the next
		// check tries again, and the certificate in force stays.
		if msg := err.Error(); msg != c.lastErr {
			c.lastErr = msg
			c.log.Warn("admin TLS certificate not reloaded; the one loaded before stays in force", "cert", c.certFile, "key", c.keyFile, "err", err)
		}
		return
	}
	c.cert, c.stamps, c.lastErr = cert, stamps, ""
	c.log.Info("admin TLS certificate reloaded", "cert", c.certFile)
}

// adminTLSConfig is the admin listener's TLS configuration.
func (c *certReloader) adminTLSConfig() *tls.Config {
	return &tls.Config{GetCertificate: c.GetCertificate, MinVersion: tls.VersionTLS12}
}
