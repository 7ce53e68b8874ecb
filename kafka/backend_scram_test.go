package kafka

import (
	"context"
	"strings"
	"testing"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// rfc7677 is the SCRAM-SHA-256 example exchange of RFC 7677 section 3.
var rfc7677 = struct{ user, pass, nonce, clientFirst, serverFirst, clientFinal, serverFinal string }{
	"user", "pencil", "rOprNGfwEbeRWgbNEkqO",
	"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
}

func rfcSession(t *testing.T, cache *saltedCache, pass string) *scramSession {
	t.Helper()
	m := newScramMechanism(fsm.SASLScramSHA256, rfc7677.user, pass, cache).(scramClient)
	m.nonce = rfc7677.nonce
	sess, first, err := m.Authenticate(context.Background(), "")
	if err != nil || string(first) != rfc7677.clientFirst {
		t.Fatalf("client-first %q, %v; want %q", first, err, rfc7677.clientFirst)
	}
	return sess.(*scramSession)
}

// The client reproduces the RFC's exchange, checks the server's signature,
// and derives the salted password once for any number of exchanges.
func TestSCRAMClientRFC7677(t *testing.T) {
	var cache saltedCache
	for range 3 {
		s := rfcSession(t, &cache, rfc7677.pass)
		done, final, err := s.Challenge([]byte(rfc7677.serverFirst))
		if err != nil || done || string(final) != rfc7677.clientFinal {
			t.Fatalf("client-final %q (done %v, %v), want %q", final, done, err, rfc7677.clientFinal)
		}
		if done, out, err := s.Challenge([]byte(rfc7677.serverFinal)); err != nil || !done || len(out) != 0 {
			t.Fatalf("server-final: done %v, %q, %v", done, out, err)
		}
	}
	if cache.derived != 1 {
		t.Fatalf("PBKDF2 ran %d times for three exchanges with one salt, want 1", cache.derived)
	}
	// Another password is derived again, and the RFC's server signature
	// does not verify for it.
	s := rfcSession(t, &cache, "not-pencil")
	if _, _, err := s.Challenge([]byte(rfc7677.serverFirst)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Challenge([]byte(rfc7677.serverFinal)); err == nil || !strings.Contains(err.Error(), "signature does not match") {
		t.Fatalf("server-final for another password: %v", err)
	}
	if cache.derived != 2 {
		t.Fatalf("PBKDF2 ran %d times, want 2", cache.derived)
	}
}

func TestSCRAMClientRefuses(t *testing.T) {
	var cache saltedCache
	for _, tc := range []struct{ serverFirst, says string }{
		{"r=other-nonce,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "nonce"},
		{"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "nonce"},
		{"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=2147483647", "outside"},
		{"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1", "outside"},
		{"r=rOprNGfwEbeRWgbNEkqOx,s=!!,i=4096", "base64"},
		{"r=rOprNGfwEbeRWgbNEkqOx,i=4096", "malformed"},
		{"m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "extension"},
	} {
		s := rfcSession(t, &cache, rfc7677.pass)
		if _, _, err := s.Challenge([]byte(tc.serverFirst)); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want an error saying %q", tc.serverFirst, err, tc.says)
		}
	}
	s := rfcSession(t, &cache, rfc7677.pass)
	s.Challenge([]byte(rfc7677.serverFirst))
	if _, _, err := s.Challenge([]byte("e=invalid-proof")); err == nil || !strings.Contains(err.Error(), "invalid-proof") {
		t.Errorf("server-final error: %v", err)
	}
}

// FuzzSCRAMServerMessages: no server-first or server-final message makes
// the client panic, and a made-up server-final never verifies.
func FuzzSCRAMServerMessages(f *testing.F) {
	f.Add(rfc7677.serverFirst, rfc7677.serverFinal)
	f.Add("r=rOprNGfwEbeRWgbNEkqOx,s=AA==,i=4096,ext=1", "v=AA==,x")
	f.Add("r=,s=,i=", "e=")
	f.Fuzz(func(t *testing.T, serverFirst, serverFinal string) {
		var cache saltedCache
		m := newScramMechanism(fsm.SASLScramSHA512, "u=,", "p", &cache).(scramClient)
		m.nonce = rfc7677.nonce
		sess, _, _ := m.Authenticate(context.Background(), "")
		if _, _, err := sess.Challenge([]byte(serverFirst)); err != nil {
			return
		}
		if _, _, err := sess.Challenge([]byte(serverFinal)); err == nil {
			t.Fatalf("server-final %q verified without the server knowing the password", serverFinal)
		}
	})
}
