package testpki

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// ScramClient is the client side of one SCRAM exchange (RFC 5802), written
// independently of the proxy's server side so tests check one against the
// other. Its Begin/Step/Done methods fit sarama's SCRAMClient.
type ScramClient struct {
	H        func() hash.Hash
	user     string
	password string
	nonce    string
	bare     string
	authMsg  string
	salted   []byte
	step     int
	done     bool
}

// Begin starts an exchange.
func (c *ScramClient) Begin(user, password, _ string) error {
	var b [18]byte
	rand.Read(b[:])
	c.user, c.password, c.nonce, c.step, c.done = user, password, base64.RawStdEncoding.EncodeToString(b[:]), 0, false
	return nil
}

// Step answers the server's message ("" for the first step).
func (c *ScramClient) Step(challenge string) (string, error) {
	c.step++
	switch c.step {
	case 1:
		name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(c.user)
		c.bare = "n=" + name + ",r=" + c.nonce
		return "n,," + c.bare, nil
	case 2:
		var nonce, salt string
		iters := 0
		for _, f := range strings.Split(challenge, ",") {
			switch {
			case strings.HasPrefix(f, "r="):
				nonce = f[2:]
			case strings.HasPrefix(f, "s="):
				salt = f[2:]
			case strings.HasPrefix(f, "i="):
				iters, _ = strconv.Atoi(f[2:])
			}
		}
		if !strings.HasPrefix(nonce, c.nonce) || iters <= 0 {
			return "", fmt.Errorf("bad server-first message %q", challenge)
		}
		s, err := base64.StdEncoding.DecodeString(salt)
		if err != nil {
			return "", err
		}
		if c.salted, err = pbkdf2.Key(c.H, c.password, s, iters, c.H().Size()); err != nil {
			return "", err
		}
		final := "c=biws,r=" + nonce
		c.authMsg = c.bare + "," + challenge + "," + final
		clientKey := mac(c.H, c.salted, "Client Key")
		h := c.H()
		h.Write(clientKey)
		sig := mac(c.H, h.Sum(nil), c.authMsg)
		proof := make([]byte, len(sig))
		for i := range sig {
			proof[i] = clientKey[i] ^ sig[i]
		}
		return final + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
	case 3:
		want := "v=" + base64.StdEncoding.EncodeToString(mac(c.H, mac(c.H, c.salted, "Server Key"), c.authMsg))
		if challenge != want {
			return "", errors.New("server signature does not verify")
		}
		c.done = true
		return "", nil
	}
	return "", errors.New("scram exchange already over")
}

// Done reports whether the exchange ended successfully.
func (c *ScramClient) Done() bool { return c.done }

func mac(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
