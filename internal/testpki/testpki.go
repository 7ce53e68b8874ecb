// Package testpki makes throwaway certificate authorities, certificates
// and JSON Web Keys for tests of the proxy's TLS and SASL: generated at test
// time and written to a test's temporary directory, never committed. It
// must not be imported by production code.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchyard-proxy/switchyard/internal/devpki"
)

// CA is a certificate authority (devpki's) whose files go to a test's
// directory.
type CA struct {
	*devpki.CA
	// File is the CA certificate's PEM file.
	File string
	dir  string
}

// NewCA makes a CA named name and writes its certificate to dir.
func NewCA(t testing.TB, dir, name string) *CA {
	t.Helper()
	ca, err := devpki.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{CA: ca, File: write(t, dir, name+"-ca.pem", ca.PEM), dir: dir}
}

// Pair is a certificate and its key as PEM files.
type Pair struct {
	CertFile, KeyFile string
	Cert              *x509.Certificate
}

// Server issues a server certificate for 127.0.0.1, ::1 and localhost,
// written to dir as name.pem and name-key.pem.
func (ca *CA) Server(t testing.TB, name string) Pair {
	t.Helper()
	return ca.issue(t, name, pkix.Name{CommonName: name}, "127.0.0.1", "::1", "localhost")
}

// Client issues a client certificate with subject.
func (ca *CA) Client(t testing.TB, name string, subject pkix.Name) Pair {
	t.Helper()
	return ca.issue(t, name, subject)
}

func (ca *CA) issue(t testing.TB, name string, subject pkix.Name, hosts ...string) Pair {
	t.Helper()
	l, err := ca.IssueFor(subject, hosts...)
	if err != nil {
		t.Fatal(err)
	}
	return Pair{
		CertFile: write(t, ca.dir, name+".pem", l.CertPEM),
		KeyFile:  write(t, ca.dir, name+"-key.pem", l.KeyPEM),
		Cert:     l.Cert,
	}
}

func write(t testing.TB, dir, name string, data []byte) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Signer signs JWTs with an RSA (RS256) or EC (ES256) key.
type Signer struct {
	Kid string
	Alg string
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
}

// NewRSASigner makes a 2048-bit RS256 signer.
func NewRSASigner(t testing.TB, kid string) *Signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &Signer{Kid: kid, Alg: "RS256", rsa: k}
}

// NewECSigner makes a P-256 ES256 signer.
func NewECSigner(t testing.TB, kid string) *Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Signer{Kid: kid, Alg: "ES256", ec: k}
}

// JWK is the signer's public key as a JSON Web Key.
func (s *Signer) JWK() map[string]string {
	b64 := base64.RawURLEncoding.EncodeToString
	if s.rsa != nil {
		return map[string]string{"kty": "RSA", "kid": s.Kid, "alg": s.Alg, "use": "sig",
			"n": b64(s.rsa.N.Bytes()), "e": b64(big.NewInt(int64(s.rsa.E)).Bytes())}
	}
	return map[string]string{"kty": "EC", "kid": s.Kid, "crv": "P-256",
		"x": b64(s.ec.X.FillBytes(make([]byte, 32))), "y": b64(s.ec.Y.FillBytes(make([]byte, 32)))}
}

// WriteJWKS writes a key set of the signers' public keys to path.
func WriteJWKS(t testing.TB, path string, signers ...*Signer) {
	t.Helper()
	var keys []map[string]string
	for _, s := range signers {
		keys = append(keys, s.JWK())
	}
	b, _ := json.Marshal(map[string]any{"keys": keys})
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Token signs claims as a compact JWS.
func (s *Signer) Token(t testing.TB, claims map[string]any) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	hdr, _ := json.Marshal(map[string]string{"alg": s.Alg, "typ": "JWT", "kid": s.Kid})
	body, _ := json.Marshal(claims)
	signing := b64(hdr) + "." + b64(body)
	d := sha256.Sum256([]byte(signing))
	var sig []byte
	var err error
	if s.rsa != nil {
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.rsa, crypto.SHA256, d[:])
	} else {
		var r, ss *big.Int
		r, ss, err = ecdsa.Sign(rand.Reader, s.ec, d[:])
		sig = append(r.FillBytes(make([]byte, 32)), ss.FillBytes(make([]byte, 32))...)
	}
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + b64(sig)
}
