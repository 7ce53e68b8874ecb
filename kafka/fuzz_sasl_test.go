package kafka

// Fuzz targets for the SASL parsers: each must refuse or accept without a
// panic, never accept what does not verify, and bound what it keeps.

import (
	"crypto/sha512"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/testpki"
)

func FuzzParsePlain(f *testing.F) {
	f.Add([]byte("\x00alice\x00secret"))
	f.Add([]byte("alice\x00alice\x00secret"))
	f.Add([]byte("\x00\x00"))
	f.Add([]byte("a\x00b\x00c\x00d"))
	f.Add([]byte("\x00\xff\xfe\x00pw"))
	f.Fuzz(func(t *testing.T, in []byte) {
		authzid, user, pass, err := parsePlain(in)
		if err != nil {
			return
		}
		if user == "" || pass == "" || len(user) > maxSASLName || len(authzid) > maxSASLName {
			t.Fatalf("accepted %q: user %q authzid %q", in, user, authzid)
		}
		if got := authzid + "\x00" + user + "\x00" + pass; got != string(in) {
			t.Fatalf("fields %q do not rebuild the message %q", got, in)
		}
	})
}

func FuzzScramClientFirst(f *testing.F) {
	f.Add("n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL")
	f.Add("n,,n=al=2Cice=3D,r=abc,tokenauth=true")
	f.Add("y,,n=alice,r=abc")
	f.Add("p=tls-unique,,n=alice,r=abc")
	f.Add("n,a=bob,n=alice,r=abc")
	f.Add("n,,m=ext,n=alice,r=abc")
	f.Add("n,,n=a=ZZ,r=abc")
	f.Fuzz(func(t *testing.T, msg string) {
		cf, err := parseScramClientFirst(msg)
		if err != nil {
			return
		}
		if !strings.HasPrefix(msg, "n,,") || cf.bare != msg[3:] {
			t.Fatalf("accepted %q with bare %q", msg, cf.bare)
		}
		if cf.user == "" || len(cf.nonce) == 0 || len(cf.nonce) > maxScramNonce || strings.ContainsRune(cf.nonce, ',') {
			t.Fatalf("accepted %q: user %q nonce %q", msg, cf.user, cf.nonce)
		}
	})
}

func FuzzScramClientFinal(f *testing.F) {
	f.Add("c=biws,r=abcdef,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	f.Add("c=biws,r=abc,ext=1,p=AAAA")
	f.Add("c=eSws,r=abc,p=AAAA")
	f.Add("c=biws,p=AAAA")
	f.Add(",p=")
	f.Fuzz(func(t *testing.T, msg string) {
		cf, err := parseScramClientFinal(msg)
		if err != nil {
			return
		}
		if !strings.HasPrefix(cf.withoutProof, "c=biws,r=") || !strings.HasPrefix(msg, cf.withoutProof+",p=") {
			t.Fatalf("accepted %q: without proof %q", msg, cf.withoutProof)
		}
	})
}

// FuzzScramExchange runs the server side over two arbitrary client
// messages: whatever they are, without the password no exchange succeeds.
func FuzzScramExchange(f *testing.F) {
	st := &fsm.State{Users: []fsm.User{testUser(f, "alice", "secret", fsm.SASLScramSHA512)}}
	var secret [32]byte
	sc := &testpki.ScramClient{H: sha512.New}
	sc.Begin("alice", "wrong", "")
	first, _ := sc.Step("")
	f.Add(first, "c=biws,r=x,p=AAAA")
	f.Add("n,,n=bob,r=abc", "c=biws,r=abc,p=AAAA")
	f.Fuzz(func(t *testing.T, first, final string) {
		s := newScramStep(MechScramSHA512, st, &secret)
		out, res, err := s.next([]byte(first))
		if err != nil {
			return
		}
		if res != nil {
			t.Fatal("exchange done after the client-first message")
		}
		if !strings.HasPrefix(string(out), "r=") {
			t.Fatalf("server-first %q", out)
		}
		// Put the server's nonce in, so the proof is what is checked.
		nonce := strings.TrimPrefix(strings.SplitN(string(out), ",", 2)[0], "r=")
		final = strings.Replace(final, "r=x", "r="+nonce, 1)
		if _, res, err := s.next([]byte(final)); err == nil || res != nil {
			t.Fatalf("exchange succeeded without the password: first %q final %q", first, final)
		}
	})
}

func FuzzOAuthInitial(f *testing.F) {
	dir := f.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	signer := testpki.NewECSigner(f, "k1")
	testpki.WriteJWKS(f, jwks, signer)
	v, err := newOAuthValidator(&Security{OAuthJWKSFile: jwks, OAuthIssuer: "iss", OAuthAudience: "aud"}, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	good := signer.Token(f, map[string]any{"sub": "x", "iss": "iss", "aud": "aud", "exp": time.Now().Add(time.Hour).Unix()})
	f.Add([]byte("n,,\x01auth=Bearer " + good + "\x01\x01"))
	f.Add([]byte("n,a=x,\x01host=h\x01auth=bearer abc.def.ghi\x01\x01"))
	f.Add([]byte("n,,\x01auth=Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.\x01\x01"))
	f.Add([]byte("n,,\x01\x01"))
	f.Add([]byte("y,,\x01auth=Bearer x\x01\x01"))
	f.Fuzz(func(t *testing.T, in []byte) {
		tok, err := parseOAuthInitial(in)
		if err != nil {
			return
		}
		if tok == "" || len(tok) > maxOAuthToken {
			t.Fatalf("accepted a token of %d bytes", len(tok))
		}
		claims, err := v.verify(tok, time.Now())
		if err == nil && tok != good {
			// Only a token the signer made can verify.
			t.Fatalf("verified a token the test did not sign: %q (sub %q)", tok, claims.Sub)
		}
	})
}

// FuzzSASLRawFrames sends a SaslHandshake v0 for PLAIN, then arbitrary
// bytes as the raw token stream, to a live listener: it answers or closes
// the connection, never reads a frame over saslMaxReceive, and keeps
// serving other clients.
func FuzzSASLRawFrames(f *testing.F) {
	p := startSecureProxy(f, Security{SASLMechanisms: []string{MechPlain}}, testUser(f, "bob", "pw", fsm.SASLPlain))
	tok := plainToken("bob", "pw")
	f.Add(append(binary.BigEndian.AppendUint32(nil, uint32(len(tok))), tok...))
	f.Add(binary.BigEndian.AppendUint32(nil, 1<<30))
	f.Add(append(binary.BigEndian.AppendUint32(nil, saslMaxReceive+1), 1, 2, 3))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 3, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		nc, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		id := "fuzz"
		req := handshakeV0(MechPlain)
		if _, err := nc.Write(appendRequest(nil, req, 1, &id)); err != nil {
			t.Fatal(err)
		}
		if _, err := readFrame(nc, 1<<20); err != nil {
			t.Fatalf("handshake answer: %v", err)
		}
		nc.Write(data)
		if len(data) >= 4 && binary.BigEndian.Uint32(data) > saslMaxReceive {
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := nc.Read(make([]byte, 1)); err != io.EOF && !isReset(err) {
				t.Fatalf("oversized raw token: read %v, want the connection closed", err)
			}
		}
		// The listener still serves a new client.
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(appendRequest(nil, req, 1, &id))
		if _, err := readFrame(c, 1<<20); err != nil {
			t.Fatalf("listener stopped serving: %v", err)
		}
	})
}

func handshakeV0(mech string) *kmsg.SASLHandshakeRequest {
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.Version, req.Mechanism = 0, mech
	return req
}
