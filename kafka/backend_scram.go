package kafka

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// The SCRAM client (RFC 5802, RFC 7677) the proxy authenticates to backend
// brokers with. It is franz-go's pkg/sasl/scram exchange plus one thing:
// the salted password, PBKDF2 over the password with the salt and
// iteration count the broker sends, is kept and reused while the password,
// salt and count stay the same. A Kafka broker keeps one salt per user, so
// every connection after the first skips the PBKDF2 (4096 rounds of
// HMAC-SHA-512: about 2 ms of CPU, most of what a SCRAM login costs the
// proxy; BenchmarkUpstreamDial). Each exchange still uses fresh nonces and
// checks the broker's signature. The cached value is worth the password
// itself, which the proxy already holds; it lives as long as the Backend.

const (
	// Kafka's own bounds on SCRAM iterations (ScramMechanism): a broker
	// that asks for more is refused rather than costing unbounded CPU.
	scramMinIterations = 4096
	scramMaxIterations = 16384
)

// saltedCache holds the salted password of the last exchange.
type saltedCache struct {
	mu     sync.Mutex
	key    string // mechanism, password, salt, iterations
	salted []byte
	// derived counts PBKDF2 computations (tests).
	derived int
}

func (c *saltedCache) get(mechanism string, h func() hash.Hash, size int, pass string, salt []byte, iters int) ([]byte, error) {
	key := mechanism + "\x00" + pass + "\x00" + string(salt) + "\x00" + strconv.Itoa(iters)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.key == key && c.salted != nil {
		return c.salted, nil
	}
	salted, err := pbkdf2.Key(h, pass, salt, iters, size)
	if err != nil {
		return nil, err
	}
	c.key, c.salted = key, salted
	c.derived++
	return salted, nil
}

// scramClient is a sasl.Mechanism for SCRAM-SHA-256 or SCRAM-SHA-512.
type scramClient struct {
	name  string
	hash  func() hash.Hash
	size  int
	user  string
	pass  string
	cache *saltedCache
	// nonce, when set, replaces the random client nonce (tests with the
	// RFC's vectors).
	nonce string
}

func newScramMechanism(mechanism, user, pass string, cache *saltedCache) sasl.Mechanism {
	m := scramClient{name: mechanism, user: user, pass: pass, cache: cache, hash: sha512.New, size: sha512.Size}
	if mechanism == fsm.SASLScramSHA256 {
		m.hash, m.size = sha256.New, sha256.Size
	}
	return m
}

func (m scramClient) Name() string { return m.name }

func (m scramClient) Authenticate(context.Context, string) (sasl.Session, []byte, error) {
	nonce := m.nonce
	if nonce == "" {
		var b [24]byte
		rand.Read(b[:])
		nonce = base64.RawStdEncoding.EncodeToString(b[:])
	}
	user := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(m.user)
	bare := "n=" + user + ",r=" + nonce
	return &scramSession{m: m, nonce: nonce, clientFirstBare: bare}, []byte("n,," + bare), nil
}

type scramSession struct {
	m               scramClient
	nonce           string
	clientFirstBare string
	step            int
	serverSignature []byte
}

func (s *scramSession) Challenge(in []byte) (bool, []byte, error) {
	s.step++
	switch s.step {
	case 1:
		final, sig, err := s.clientFinal(string(in))
		if err != nil {
			return false, nil, err
		}
		s.serverSignature = sig
		return false, []byte(final), nil
	case 2:
		return true, nil, s.verifyServerFinal(string(in))
	}
	return false, nil, errors.New("SCRAM: unexpected message after the exchange ended")
}

// parseServerFirst reads server-first-message: r=nonce,s=salt,i=iterations
// with optional extensions after (RFC 5802 section 7).
func parseServerFirst(msg string) (nonce string, salt []byte, iters int, err error) {
	if strings.HasPrefix(msg, "m=") {
		return "", nil, 0, errors.New("SCRAM: the broker requires an extension this client does not know")
	}
	parts := strings.Split(msg, ",")
	if len(parts) < 3 || !strings.HasPrefix(parts[0], "r=") || !strings.HasPrefix(parts[1], "s=") || !strings.HasPrefix(parts[2], "i=") {
		return "", nil, 0, fmt.Errorf("SCRAM: malformed server-first-message %q", clip(msg, 100))
	}
	nonce = parts[0][2:]
	salt, err = base64.StdEncoding.DecodeString(parts[1][2:])
	if err != nil || len(salt) == 0 {
		return "", nil, 0, fmt.Errorf("SCRAM: the broker's salt is not base64")
	}
	iters, err = strconv.Atoi(parts[2][2:])
	if err != nil {
		return "", nil, 0, fmt.Errorf("SCRAM: the broker's iteration count %q is not a number", clip(parts[2][2:], 20))
	}
	if iters < scramMinIterations || iters > scramMaxIterations {
		return "", nil, 0, fmt.Errorf("SCRAM: the broker's iteration count %d is outside %d to %d", iters, scramMinIterations, scramMaxIterations)
	}
	return nonce, salt, iters, nil
}

// clientFinal answers server-first with client-final-message and returns
// the server signature to expect.
func (s *scramSession) clientFinal(serverFirst string) (string, []byte, error) {
	nonce, salt, iters, err := parseServerFirst(serverFirst)
	if err != nil {
		return "", nil, err
	}
	if len(nonce) <= len(s.nonce) || !strings.HasPrefix(nonce, s.nonce) {
		return "", nil, errors.New("SCRAM: the broker's nonce does not extend this client's")
	}
	salted, err := s.m.cache.get(s.m.name, s.m.hash, s.m.size, s.m.pass, salt, iters)
	if err != nil {
		return "", nil, fmt.Errorf("SCRAM: %w", err)
	}
	withoutProof := "c=biws,r=" + nonce // biws: base64 of the gs2 header "n,,"
	authMessage := s.clientFirstBare + "," + serverFirst + "," + withoutProof
	clientKey := scramMAC(s.m.hash, salted, "Client Key")
	h := s.m.hash()
	h.Write(clientKey)
	storedKey := h.Sum(nil)
	proof := scramMAC(s.m.hash, storedKey, authMessage)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	serverKey := scramMAC(s.m.hash, salted, "Server Key")
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof), scramMAC(s.m.hash, serverKey, authMessage), nil
}

// verifyServerFinal checks server-final-message: v=signature, or e=error.
func (s *scramSession) verifyServerFinal(msg string) error {
	if e, ok := strings.CutPrefix(msg, "e="); ok {
		return fmt.Errorf("SCRAM: the broker refused: %s", clip(e, 200))
	}
	v, ok := strings.CutPrefix(msg, "v=")
	if !ok {
		return fmt.Errorf("SCRAM: malformed server-final-message %q", clip(msg, 100))
	}
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i] // extensions
	}
	sig, err := base64.StdEncoding.DecodeString(v)
	if err != nil || !hmac.Equal(sig, s.serverSignature) {
		return errors.New("SCRAM: the broker's signature does not match: it does not know this password (or is not the broker)")
	}
	return nil
}

func scramMAC(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
