package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
)

// ctlTransport is ctl's HTTP transport for an admin API served over TLS
// with a certificate from a private CA (--ca-file, $SWITCHYARD_CA_FILE):
// only that CA's certificates are trusted, and the server's name must
// match --server's host as usual.
func ctlTransport(caFile string) (*http.Transport, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w; check --ca-file or $SWITCHYARD_CA_FILE", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate; give the CA that signs the admin API's certificate", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return tr, nil
}

// tlsHint says what to do about a failed TLS handshake with the admin API.
func tlsHint(err error) string {
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var host x509.HostnameError
	switch {
	case errors.As(err, &host):
		return "the admin API's certificate does not name the host in --server; use a name or address it was issued for"
	case errors.As(err, &unknown), errors.As(err, &verify):
		return "the admin API's certificate is not signed by a CA ctl trusts; pass --ca-file (or $SWITCHYARD_CA_FILE) with the CA that signs it"
	}
	return ""
}
