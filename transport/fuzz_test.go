package transport

// Fuzz targets for the two parsers of peer-port bytes: the connection
// handshake and the RPC frame. Under plain `go test` each runs its seeds
// (and any crasher kept in testdata/fuzz).
//
//	go test -run '^$' -fuzz '^FuzzHandshake$' -fuzztime 30s ./transport/
//	go test -run '^$' -fuzz '^FuzzFrame$' -fuzztime 30s ./transport/

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func FuzzHandshake(f *testing.F) {
	f.Add(handshake{Type: TypeRaft, Name: "n1"}.appendTo(nil))
	f.Add(handshake{Type: TypeRPC, Name: "peer-2.dc_a"}.appendTo(nil))
	f.Add(append(handshake{Type: TypeRaft, Name: "n1"}.appendTo(nil), 0, 1, 2))
	f.Add([]byte{handshakeV1, 2, 0})
	f.Add([]byte{handshakeV1, 2, 200, 'a'})
	f.Add([]byte{handshakeV1, 3, 1, 'a'})
	f.Add([]byte{0x16, 3, 1})
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		h, err := readHandshake(r)
		if err != nil {
			if !errors.Is(err, ErrHandshake) {
				t.Fatalf("error %v does not wrap ErrHandshake", err)
			}
			return
		}
		if h.Type != TypeRaft && h.Type != TypeRPC {
			t.Fatalf("accepted type %d", h.Type)
		}
		if err := validName(h.Name); err != nil {
			t.Fatalf("accepted name %q: %v", h.Name, err)
		}
		// It read exactly the handshake, and the handshake encodes back
		// to those bytes: nothing of Raft's stream was swallowed.
		consumed := len(in) - r.Len()
		if enc := h.appendTo(nil); !bytes.Equal(enc, in[:consumed]) {
			t.Fatalf("re-encoded %x, read %x", enc, in[:consumed])
		}
	})
}

func FuzzFrame(f *testing.F) {
	for _, fr := range []frame{
		{Kind: frameRequest, ID: 1, Timeout: 250, Str: "forward", Body: []byte(`{"cmd":"x"}`)},
		{Kind: frameResponse, ID: 2, Body: []byte(`{"ok":true}`)},
		{Kind: frameError, ID: 3, Str: "not_leader", Body: []byte("leader is n2")},
	} {
		b := appendFrame(nil, &fr)
		f.Add(b)
		f.Add(append(b, b...))
		f.Add(b[:len(b)-1])
	}
	f.Add(binary.BigEndian.AppendUint32(nil, 1<<31))
	f.Add([]byte{0, 0, 0, 2, 1, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 4096
		br := bufio.NewReader(bytes.NewReader(in))
		for {
			fr, err := readFrame(br, max)
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrMalformedFrame) && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			if fr.frameLen() > max {
				t.Fatalf("accepted a %d-byte frame over the %d limit", fr.frameLen(), max)
			}
			enc := appendFrame(nil, &fr)
			again, err := parseFrame(enc[4:])
			if err != nil {
				t.Fatalf("re-encoded frame does not parse: %v", err)
			}
			if again.Kind != fr.Kind || again.ID != fr.ID || again.Timeout != fr.Timeout || again.Str != fr.Str || !bytes.Equal(again.Body, fr.Body) {
				t.Fatalf("round trip changed the frame: %+v → %+v", fr, again)
			}
		}
	})
}

// FuzzCertNames: whatever certificate a peer presents, the names taken
// from it are valid peer names, each once, and each passes CheckPeerName.
//
//	go test -run '^$' -fuzz '^FuzzCertNames$' -fuzztime 30s ./transport/
func FuzzCertNames(f *testing.F) {
	ca := newTestCA(f)
	f.Add(ca.issue(f, "peer-1", "peer-1.example", "*.example", "peer-1").Certificate[0])
	f.Add(ca.issue(f, "Switchyard CA").Certificate[0])
	f.Add(ca.cert.Raw)
	f.Fuzz(func(t *testing.T, der []byte) {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		names := CertNames(cert)
		seen := map[string]bool{}
		for _, n := range names {
			if err := validName(n); err != nil {
				t.Fatalf("CertNames returned %q: %v", n, err)
			}
			if seen[n] {
				t.Fatalf("CertNames returned %q twice", n)
			}
			seen[n] = true
			if err := CheckPeerName(cert, n); err != nil {
				t.Fatalf("CheckPeerName(%q) on its own name: %v", n, err)
			}
		}
		if err := CheckPeerName(cert, "not-a-name-in-any-seed-9f3"); err == nil && !seen["not-a-name-in-any-seed-9f3"] {
			t.Fatal("CheckPeerName accepted a name the certificate does not carry")
		}
	})
}
