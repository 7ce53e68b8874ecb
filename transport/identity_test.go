package transport

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"slices"
	"testing"
)

func TestCertNames(t *testing.T) {
	tests := []struct {
		name string
		cert *x509.Certificate
		want []string
	}{
		{"nil", nil, nil},
		{"cn only", &x509.Certificate{Subject: pkix.Name{CommonName: "peer-1"}}, []string{"peer-1"}},
		{"cn and sans", &x509.Certificate{Subject: pkix.Name{CommonName: "peer-1"}, DNSNames: []string{"peer-1.example", "peer-1"}}, []string{"peer-1", "peer-1.example"}},
		{"sans only", &x509.Certificate{DNSNames: []string{"a", "b"}}, []string{"a", "b"}},
		{"wildcard skipped", &x509.Certificate{Subject: pkix.Name{CommonName: "*.peers"}, DNSNames: []string{"*.peers.example", "p"}}, []string{"p"}},
		{"cn with a space skipped", &x509.Certificate{Subject: pkix.Name{CommonName: "Switchyard CA"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CertNames(tt.cert); !slices.Equal(got, tt.want) {
				t.Fatalf("CertNames = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckPeerName(t *testing.T) {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "peer-1"}, DNSNames: []string{"peer-1.dc_a", "*.dc_a"}}
	tests := []struct {
		name  string
		cert  *x509.Certificate
		claim string
		ok    bool
	}{
		{"common name", cert, "peer-1", true},
		{"dns san", cert, "peer-1.dc_a", true},
		{"another peer", cert, "peer-2", false},
		{"case differs", cert, "Peer-1", false},
		{"wildcard does not match", cert, "x.dc_a", false},
		{"literal wildcard claim", cert, "*.dc_a", false},
		{"no certificate", nil, "peer-1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPeerName(tt.cert, tt.claim)
			if tt.ok != (err == nil) {
				t.Fatalf("CheckPeerName(%q) = %v, want ok=%v", tt.claim, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrIdentity) {
				t.Fatalf("error %v does not wrap ErrIdentity", err)
			}
		})
	}
}
