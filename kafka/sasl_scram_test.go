package kafka

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// TestScramRFC7677: the example exchange of RFC 7677 section 3
// (SCRAM-SHA-256, user "user", password "pencil") byte for byte, with the
// server nonce and salt of the example.
func TestScramRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	cred, err := fsm.DeriveCredential(fsm.SASLScramSHA256, "pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	st := &fsm.State{Users: []fsm.User{{Name: "user", Credentials: []fsm.Credential{cred}}}}
	var secret [32]byte
	s := newScramStep(MechScramSHA256, st, &secret)
	s.serverNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	out, res, err := s.next([]byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
	if err != nil || res != nil {
		t.Fatalf("client-first: %v %v", res, err)
	}
	if want := "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"; string(out) != want {
		t.Fatalf("server-first %q, want %q", out, want)
	}
	out, res, err = s.next([]byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	if err != nil || res == nil || res.user != "user" {
		t.Fatalf("client-final: %v %v", res, err)
	}
	if want := "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="; string(out) != want {
		t.Fatalf("server-final %q, want %q", out, want)
	}

	// The same exchange with one bit of the proof flipped fails.
	s = newScramStep(MechScramSHA256, st, &secret)
	s.serverNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	s.next([]byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
	if _, _, err := s.next([]byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")); err == nil {
		t.Fatal("a wrong proof verified")
	}
}

func TestScramParsers(t *testing.T) {
	for _, tc := range []struct {
		msg, user, nonce string
		ok               bool
	}{
		{"n,,n=alice,r=abc", "alice", "abc", true},
		{"n,,n=a=2Cb=3Dc,r=x", "a,b=c", "x", true},
		{"n,,n=alice,r=abc,tokenauth=false", "alice", "abc", true},
		{"n,,n=a=2x,r=abc", "", "", false},
		{"n,,r=abc,n=alice", "", "", false},
		{"n,,n=,r=abc", "", "", false},
		{"n,,n=alice,r=", "", "", false},
		{"n,,n=alice", "", "", false},
		{"y,,n=alice,r=abc", "", "", false},
		{"p=tls-server-end-point,,n=alice,r=abc", "", "", false},
		{"n,a=alice,n=alice,r=abc", "", "", false},
		{"n,,m=x,n=alice,r=abc", "", "", false},
		{"n,,n=alice,r=a\x01b", "", "", false},
	} {
		cf, err := parseScramClientFirst(tc.msg)
		if (err == nil) != tc.ok || tc.ok && (cf.user != tc.user || cf.nonce != tc.nonce) {
			t.Errorf("%q: %+v %v", tc.msg, cf, err)
		}
	}
	if cf, err := parseScramClientFirst("n,,n=alice,r=abc,tokenauth=true"); err != nil || !cf.tokenAuth {
		t.Errorf("tokenauth not seen: %+v %v", cf, err)
	}
	for _, tc := range []struct {
		msg string
		ok  bool
	}{
		{"c=biws,r=abc,p=AAAA", true},
		{"c=biws,r=abc,ext=1,p=AAAA", true},
		{"c=eSws,r=abc,p=AAAA", false},
		{"c=biws,r=abc,p=!!", false},
		{"c=biws,r=abc", false},
		{"r=abc,c=biws,p=AAAA", false},
	} {
		if _, err := parseScramClientFinal(tc.msg); (err == nil) != tc.ok {
			t.Errorf("%q: %v", tc.msg, err)
		}
	}
}

func TestOAuthInitialParser(t *testing.T) {
	for _, tc := range []struct {
		in, tok string
	}{
		{"n,,\x01auth=Bearer abc\x01\x01", "abc"},
		{"n,a=svc,\x01host=h\x01port=9\x01auth=bearer abc\x01\x01", "abc"},
		{"n,,\x01auth=Bearer abc\x01", ""},
		{"n,,\x01auth=Basic abc\x01\x01", ""},
		{"n,,\x01auth=Bearer abc\x01auth=Bearer def\x01\x01", ""},
		{"n,,\x01host=h\x01\x01", ""},
		{"n,,\x01auth=Bearer \x01\x01", ""},
		{"y,,\x01auth=Bearer abc\x01\x01", ""},
		{"n,,\x01a1=x\x01auth=Bearer abc\x01\x01", ""},
		{"n,,auth=Bearer abc", ""},
	} {
		tok, err := parseOAuthInitial([]byte(tc.in))
		if tok != tc.tok || (err == nil) != (tc.tok != "") {
			t.Errorf("%q: token %q, %v; want %q", tc.in, tok, err, tc.tok)
		}
	}
}

// TestFailLogBounded: a flood of failed authentications logs a burst, then
// one line per window that says how many were not logged.
func TestFailLogBounded(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var f failLog
	now := time.Now()
	for range 25 {
		f.log(log, now, "reason", "wrong password")
	}
	if n := strings.Count(buf.String(), "sasl authentication failed"); n != failLogBurst {
		t.Fatalf("%d lines in one window, want %d", n, failLogBurst)
	}
	buf.Reset()
	f.log(log, now.Add(failLogEvery), "reason", "wrong password")
	if !strings.Contains(buf.String(), "not_logged_before=5") {
		t.Fatalf("next window's line %q does not count the 5 not logged", buf.String())
	}
}
