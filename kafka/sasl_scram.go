package kafka

// SCRAM-SHA-256 and SCRAM-SHA-512, server side (RFC 5802, RFC 7677), with
// the users' credentials from the replicated state (fsm.Credential: salt,
// iterations, StoredKey, ServerKey; the password is never stored).
//
// Only the GS2 header "n,," is accepted: no channel binding (the client must
// not ask for it, "p=...", and "y" would mean it thinks we lack it) and no
// authorization identity, which is what Kafka's clients send. Extensions
// after the nonce are accepted and ignored, except Kafka's tokenauth=true
// (delegation tokens, which the proxy does not issue). A credential whose
// iterations are outside Kafka's bounds (4096–16384) is refused. An unknown
// user is answered with a fake salt and fails only at the proof, so a
// client cannot tell it from a wrong password; the proof is compared in
// constant time. As in Kafka, the client-final nonce must end with the
// combined nonce (librdkafka repeats its own part in front).

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/switchyard-proxy/switchyard/fsm"
)

type scramStep struct {
	mech   string
	h      func() hash.Hash
	st     *fsm.State
	secret *[32]byte
	// serverNonce, when set, replaces the random server nonce (tests of
	// RFC 7677's example exchange).
	serverNonce string

	first           bool // the client-first message was taken
	user            string
	cred            fsm.Credential
	known           bool
	nonce           string
	clientFirstBare string
	serverFirst     string
}

func newScramStep(mech string, st *fsm.State, secret *[32]byte) *scramStep {
	h, _ := fsm.CredentialHash(mech)
	return &scramStep{mech: mech, h: h, st: st, secret: secret}
}

func (s *scramStep) failed() string {
	return "Authentication failed during authentication due to invalid credentials with SASL mechanism " + s.mech
}

func (s *scramStep) next(in []byte) ([]byte, *saslResult, error) {
	if !s.first {
		s.first = true
		return s.clientFirst(in)
	}
	return s.clientFinal(in)
}

func (s *scramStep) clientFirst(in []byte) ([]byte, *saslResult, error) {
	cf, err := parseScramClientFirst(string(in))
	if err != nil {
		return nil, nil, authFail("malformed SCRAM client-first message: "+err.Error(), "%v", err)
	}
	if cf.tokenAuth {
		return nil, nil, authFail("delegation tokens are not supported", "user %q asked for delegation token authentication", cf.user)
	}
	s.user, s.clientFirstBare = cf.user, cf.bare
	if u, ok := s.st.User(cf.user); ok {
		s.cred, s.known = u.Credential(s.mech)
	}
	if s.known && (s.cred.Iterations < fsm.MinScramIterations || s.cred.Iterations > fsm.MaxScramIterations) {
		return nil, nil, authFail(s.failed(), "credential of %q has %d iterations, outside %d–%d",
			cf.user, s.cred.Iterations, fsm.MinScramIterations, fsm.MaxScramIterations)
	}
	if !s.known {
		s.cred = fsm.Credential{Mechanism: s.mech, Iterations: fsm.MinScramIterations, Salt: fakeSalt(s.secret, cf.user)}
	}
	snonce := s.serverNonce
	if snonce == "" {
		var rnd [24]byte
		rand.Read(rnd[:])
		snonce = base64.RawURLEncoding.EncodeToString(rnd[:])
	}
	s.nonce = cf.nonce + snonce
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(s.cred.Salt) + ",i=" + strconv.Itoa(s.cred.Iterations)
	return []byte(s.serverFirst), nil, nil
}

func (s *scramStep) clientFinal(in []byte) ([]byte, *saslResult, error) {
	cf, err := parseScramClientFinal(string(in))
	if err != nil {
		return nil, nil, authFail("malformed SCRAM client-final message: "+err.Error(), "%v", err)
	}
	// Kafka checks that the nonce ends with the server's (ScramSaslServer),
	// not equality: librdkafka sends its own nonce followed by the whole
	// combined nonce. The proof still covers the message as sent.
	if !strings.HasSuffix(cf.nonce, s.nonce) {
		return nil, nil, authFail("SCRAM nonce mismatch", "user %q sent another nonce", s.user)
	}
	if !s.known {
		return nil, nil, authFail(s.failed(), "unknown user %q", s.user)
	}
	size := s.h().Size()
	if len(cf.proof) != size {
		return nil, nil, authFail(s.failed(), "user %q sent a %d-byte proof, want %d", s.user, len(cf.proof), size)
	}
	authMsg := s.clientFirstBare + "," + s.serverFirst + "," + cf.withoutProof
	clientSig := scramHMAC(s.h, s.cred.StoredKey, authMsg)
	clientKey := make([]byte, size)
	subtle.XORBytes(clientKey, cf.proof, clientSig)
	stored := s.h()
	stored.Write(clientKey)
	if subtle.ConstantTimeCompare(stored.Sum(nil), s.cred.StoredKey) != 1 {
		return nil, nil, authFail(s.failed(), "wrong password for user %q", s.user)
	}
	serverSig := scramHMAC(s.h, s.cred.ServerKey, authMsg)
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSig)), &saslResult{user: s.user}, nil
}

func scramHMAC(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// maxScramNonce bounds the client's nonce.
const maxScramNonce = 1024

type scramClientFirst struct {
	user, nonce string
	bare        string // client-first-message-bare
	tokenAuth   bool
}

// parseScramClientFirst parses "n,,n=USER,r=NONCE[,ext=value...]".
func parseScramClientFirst(msg string) (scramClientFirst, error) {
	var cf scramClientFirst
	switch {
	case strings.HasPrefix(msg, "p="):
		return cf, errors.New("channel binding is not supported")
	case strings.HasPrefix(msg, "y,"):
		return cf, errors.New("channel binding is not supported (gs2 header y)")
	case strings.HasPrefix(msg, "n,a="):
		return cf, errors.New("an authorization identity is not supported")
	case !strings.HasPrefix(msg, "n,,"):
		return cf, errors.New(`gs2 header must be "n,,"`)
	}
	cf.bare = msg[3:]
	fields := strings.Split(cf.bare, ",")
	if len(fields) < 2 {
		return cf, errors.New("want n=USER,r=NONCE")
	}
	if strings.HasPrefix(fields[0], "m=") {
		return cf, errors.New("mandatory extensions are not supported")
	}
	user, ok := strings.CutPrefix(fields[0], "n=")
	if !ok {
		return cf, errors.New("first attribute must be n=USER")
	}
	var err error
	if cf.user, err = scramUnescape(user); err != nil {
		return cf, err
	}
	if cf.nonce, ok = strings.CutPrefix(fields[1], "r="); !ok {
		return cf, errors.New("second attribute must be r=NONCE")
	}
	if err := checkNonce(cf.nonce); err != nil {
		return cf, err
	}
	for _, ext := range fields[2:] {
		k, v, ok := strings.Cut(ext, "=")
		if !ok || k == "" {
			return cf, fmt.Errorf("malformed extension %q", truncate(ext, 32))
		}
		if k == "tokenauth" && strings.EqualFold(v, "true") {
			cf.tokenAuth = true
		}
	}
	return cf, nil
}

func checkNonce(n string) error {
	if n == "" || len(n) > maxScramNonce {
		return fmt.Errorf("nonce of %d bytes, want 1 to %d", len(n), maxScramNonce)
	}
	for i := 0; i < len(n); i++ {
		if n[i] < 0x21 || n[i] > 0x7e || n[i] == ',' {
			return errors.New("nonce has a character outside printable ASCII")
		}
	}
	return nil
}

// scramUnescape decodes a saslname: "=2C" is ',' and "=3D" is '='.
func scramUnescape(s string) (string, error) {
	if s == "" || len(s) > maxSASLName {
		return "", fmt.Errorf("user name of %d bytes, want 1 to %d", len(s), maxSASLName)
	}
	if !utf8.ValidString(s) {
		return "", errors.New("user name is not UTF-8")
	}
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", errors.New("user name has '=' not followed by 2C or 3D")
		}
		i += 2
	}
	return b.String(), nil
}

type scramClientFinal struct {
	nonce        string
	proof        []byte
	withoutProof string
}

// parseScramClientFinal parses "c=biws,r=NONCE[,ext...],p=PROOF".
func parseScramClientFinal(msg string) (scramClientFinal, error) {
	var cf scramClientFinal
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return cf, errors.New("no proof (p=)")
	}
	cf.withoutProof = msg[:i]
	proof, err := base64.StdEncoding.DecodeString(msg[i+3:])
	if err != nil {
		return cf, errors.New("proof is not base64")
	}
	cf.proof = proof
	fields := strings.Split(cf.withoutProof, ",")
	if len(fields) < 2 {
		return cf, errors.New("want c=BINDING,r=NONCE,p=PROOF")
	}
	cb, ok := strings.CutPrefix(fields[0], "c=")
	if !ok {
		return cf, errors.New("first attribute must be c=")
	}
	// base64("n,,"): the gs2 header of the client-first message, the only
	// one accepted.
	if cb != "biws" {
		return cf, errors.New(`channel binding must be "biws" (no channel binding)`)
	}
	if cf.nonce, ok = strings.CutPrefix(fields[1], "r="); !ok {
		return cf, errors.New("second attribute must be r=")
	}
	return cf, nil
}
