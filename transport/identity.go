package transport

import (
	"crypto/x509"
	"fmt"
	"slices"
)

// Peer identity under TLS. The CA proves a certificate belongs to the
// cluster; the names in it say which peer it belongs to. A peer's name is
// its Raft server id, so a certificate that only proved membership would
// let any peer speak as any other (as the leader, say, or report quota
// demand for another peer). The acceptor therefore holds the name a dialer
// claims in its handshake to the names of the certificate it presented,
// and a caller that knows which peer it means to reach holds the serving
// certificate to that name (Client.CallPeer).
//
// Names match exactly, case included: peer names are case-sensitive Raft
// ids, so "A" and "a" are two peers. Wildcard DNS names never match: "*.x"
// names no peer.

// CertNames returns the peer names cert proves: its subject common name,
// then its DNS SANs, each once, skipping names that are not valid peer
// names (wildcards, empty). IP SANs are not names: they only serve the
// dialer's address check.
func CertNames(cert *x509.Certificate) []string {
	if cert == nil {
		return nil
	}
	var out []string
	add := func(n string) {
		if validName(n) == nil && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	add(cert.Subject.CommonName)
	for _, n := range cert.DNSNames {
		add(n)
	}
	return out
}

// CheckPeerName reports nil when cert names the peer name, else an error
// wrapping ErrIdentity that lists what the certificate does name.
func CheckPeerName(cert *x509.Certificate, name string) error {
	if cert == nil {
		return fmt.Errorf("%w: no certificate presented for peer %q", ErrIdentity, name)
	}
	names := CertNames(cert)
	if slices.Contains(names, name) {
		return nil
	}
	return fmt.Errorf("%w: peer %q presented a certificate naming %q (common name or DNS SAN must equal the peer name)", ErrIdentity, name, names)
}
