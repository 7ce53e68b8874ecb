package kafka

// OAUTHBEARER (RFC 7628, Kafka's KIP-255): the client's initial response
// carries a JWT ("auth=Bearer <token>"), verified here against the keys of
// a JSON Web Key Set file (RS256/384/512, PS256, ES256/384; the file is
// re-read when it changes) and its claims: exp (required), nbf, iss and aud
// when configured, with a small clock skew. The principal is "User:" + the
// sub claim, Kafka's default; the session ends when the token expires, at
// the latest. A failure is answered SASL_AUTHENTICATION_FAILED at once
// (rather than RFC 7628's error challenge, which Kafka's clients turn into
// the same error).

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"time"
)

// oauthSkew is the clock skew allowed on exp and nbf.
const oauthSkew = 30 * time.Second

// maxJWTTime bounds exp and nbf (seconds; the year 5138), so a claim
// converts to a time without overflow.
const maxJWTTime = 1e11

// maxOAuthToken bounds a bearer token; maxOAuthPairs the key-value pairs of
// an initial response.
const (
	maxOAuthToken = 64 << 10
	maxOAuthPairs = 64
)

type oauthValidator struct {
	keys     *fileCache[[]jwk]
	issuer   string
	audience string
}

func newOAuthValidator(sec *Security, log *slog.Logger) (*oauthValidator, error) {
	keys, err := newFileCache("kafka oauth jwks", log, parseJWKS, sec.OAuthJWKSFile)
	if err != nil {
		return nil, err
	}
	return &oauthValidator{keys: keys, issuer: sec.OAuthIssuer, audience: sec.OAuthAudience}, nil
}

type oauthStep struct {
	v   *oauthValidator
	now time.Time
}

func (o *oauthStep) next(in []byte) ([]byte, *saslResult, error) {
	token, err := parseOAuthInitial(in)
	if err != nil {
		return nil, nil, authFail("malformed OAUTHBEARER initial response: "+err.Error(), "%v", err)
	}
	claims, err := o.v.verify(token, o.now)
	if err != nil {
		return nil, nil, authFail("invalid token: "+err.Error(), "token of subject %q: %v", claims.Sub, err)
	}
	return []byte{}, &saslResult{user: claims.Sub, expires: time.Unix(int64(claims.Exp), 0)}, nil
}

// parseOAuthInitial returns the bearer token of an initial client response:
// gs2-header %x01 *(key "=" value %x01) %x01, with "auth=Bearer TOKEN".
func parseOAuthInitial(in []byte) (string, error) {
	s := string(in)
	hdr, rest, ok := strings.Cut(s, "\x01")
	if !ok {
		return "", errors.New("no key-value separator")
	}
	switch {
	case strings.HasPrefix(hdr, "p=") || strings.HasPrefix(hdr, "y,"):
		return "", errors.New("channel binding is not supported")
	case hdr != "n,," && !strings.HasPrefix(hdr, "n,a="):
		return "", errors.New(`gs2 header must be "n,," or "n,a=ID,"`)
	case strings.HasPrefix(hdr, "n,a=") && !strings.HasSuffix(hdr, ","):
		return "", errors.New("gs2 header must end with ','")
	}
	if !strings.HasSuffix(rest, "\x01") {
		return "", errors.New("must end with two key-value separators")
	}
	pairs := strings.Split(rest[:len(rest)-1], "\x01")
	if len(pairs) == 0 || pairs[len(pairs)-1] != "" {
		return "", errors.New("must end with two key-value separators")
	}
	pairs = pairs[:len(pairs)-1]
	if len(pairs) > maxOAuthPairs {
		return "", fmt.Errorf("%d key-value pairs (max %d)", len(pairs), maxOAuthPairs)
	}
	var token string
	found := false
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return "", errors.New("malformed key-value pair")
		}
		for i := 0; i < len(k); i++ {
			if c := k[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return "", errors.New("key must be letters only")
			}
		}
		if k != "auth" {
			continue // extensions (KIP-342) are not used
		}
		if found {
			return "", errors.New("auth given twice")
		}
		scheme, tok, ok := strings.Cut(v, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", errors.New(`auth must be "Bearer TOKEN"`)
		}
		token, found = strings.TrimSpace(tok), true
	}
	switch {
	case !found:
		return "", errors.New("no auth=Bearer TOKEN")
	case token == "":
		return "", errors.New("empty token")
	case len(token) > maxOAuthToken:
		return "", fmt.Errorf("token of %d bytes (max %d)", len(token), maxOAuthToken)
	}
	return token, nil
}

// jwtClaims are the claims the validator reads.
type jwtClaims struct {
	Sub string          `json:"sub"`
	Iss string          `json:"iss"`
	Aud json.RawMessage `json:"aud"`
	Exp float64         `json:"exp"`
	Nbf float64         `json:"nbf"`
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// verify checks token's signature and claims at now.
func (v *oauthValidator) verify(token string, now time.Time) (jwtClaims, error) {
	var claims jwtClaims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return claims, errors.New("not a signed JWT (want three dot-separated parts)")
	}
	hdrJSON, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return claims, errors.New("header is not base64url")
	}
	var hdr jwtHeader
	if err := json.Unmarshal(hdrJSON, &hdr); err != nil {
		return claims, errors.New("header is not JSON")
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return claims, errors.New("payload is not base64url")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return claims, errors.New("signature is not base64url")
	}
	alg, ok := jwtAlgs[hdr.Alg]
	if !ok {
		return claims, fmt.Errorf("algorithm %q is not accepted (RS256, RS384, RS512, PS256, ES256, ES384)", truncate(hdr.Alg, 16))
	}
	h := alg.hash.New()
	h.Write([]byte(parts[0]))
	h.Write([]byte{'.'})
	h.Write([]byte(parts[1]))
	digest := h.Sum(nil)
	verified, candidates := false, 0
	for _, k := range v.keys.get() {
		if hdr.Kid != "" && k.kid != hdr.Kid || k.alg != "" && k.alg != hdr.Alg || !alg.fits(k) {
			continue
		}
		candidates++
		if alg.verify(k, digest, sig) {
			verified = true
			break
		}
	}
	switch {
	case candidates == 0:
		return claims, fmt.Errorf("no key in the key set for kid %q and %s", truncate(hdr.Kid, 64), hdr.Alg)
	case !verified:
		return claims, errors.New("signature does not verify")
	}
	if err := json.Unmarshal(body, &claims); err != nil {
		return claims, errors.New("claims are not a JSON object with the registered claim types")
	}
	switch {
	case claims.Exp == 0:
		return claims, errors.New("no exp claim")
	case claims.Exp < 0 || claims.Exp > maxJWTTime || claims.Nbf < 0 || claims.Nbf > maxJWTTime:
		return claims, errors.New("exp or nbf claim out of range")
	case now.After(time.Unix(int64(claims.Exp), 0).Add(oauthSkew)):
		return claims, fmt.Errorf("expired at %s", time.Unix(int64(claims.Exp), 0).UTC().Format(time.RFC3339))
	case claims.Nbf != 0 && now.Add(oauthSkew).Before(time.Unix(int64(claims.Nbf), 0)):
		return claims, fmt.Errorf("not valid before %s", time.Unix(int64(claims.Nbf), 0).UTC().Format(time.RFC3339))
	case claims.Sub == "":
		return claims, errors.New("no sub claim")
	case len(claims.Sub) > maxSASLName:
		return claims, fmt.Errorf("sub claim longer than %d bytes", maxSASLName)
	case v.issuer != "" && claims.Iss != v.issuer:
		return claims, fmt.Errorf("issuer %q is not the expected one", truncate(claims.Iss, 128))
	case v.audience != "" && !hasAudience(claims.Aud, v.audience):
		return claims, errors.New("the expected audience is not among the token's")
	}
	return claims, nil
}

func hasAudience(raw json.RawMessage, want string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		for _, a := range many {
			if a == want {
				return true
			}
		}
	}
	return false
}

// jwk is one verification key of the key set.
type jwk struct {
	kid, alg string
	rsa      *rsa.PublicKey
	ec       *ecdsa.PublicKey
}

type jwtAlg struct {
	hash   crypto.Hash
	fits   func(jwk) bool
	verify func(k jwk, digest, sig []byte) bool
}

var jwtAlgs = map[string]jwtAlg{
	"RS256": rsaPKCS1(crypto.SHA256),
	"RS384": rsaPKCS1(crypto.SHA384),
	"RS512": rsaPKCS1(crypto.SHA512),
	"PS256": {hash: crypto.SHA256, fits: func(k jwk) bool { return k.rsa != nil }, verify: func(k jwk, d, sig []byte) bool {
		return rsa.VerifyPSS(k.rsa, crypto.SHA256, d, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	}},
	"ES256": ecdsaAlg(crypto.SHA256, elliptic.P256()),
	"ES384": ecdsaAlg(crypto.SHA384, elliptic.P384()),
}

// The hashes must be linked in for crypto.Hash.New.
var _, _ = sha256.New, sha512.New

func rsaPKCS1(h crypto.Hash) jwtAlg {
	return jwtAlg{hash: h, fits: func(k jwk) bool { return k.rsa != nil }, verify: func(k jwk, d, sig []byte) bool {
		return rsa.VerifyPKCS1v15(k.rsa, h, d, sig) == nil
	}}
}

func ecdsaAlg(h crypto.Hash, curve elliptic.Curve) jwtAlg {
	size := (curve.Params().BitSize + 7) / 8
	return jwtAlg{hash: h, fits: func(k jwk) bool { return k.ec != nil && k.ec.Curve == curve }, verify: func(k jwk, d, sig []byte) bool {
		// JWS signatures are r||s, each padded to the curve's size.
		if len(sig) != 2*size {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k.ec, d, r, s)
	}}
}

// minRSABits is the least RSA key size accepted in the key set.
const minRSABits = 2048

// parseJWKS parses a JSON Web Key Set, keeping the RSA and EC (P-256,
// P-384) signing keys; a set with none is an error.
func parseJWKS(data [][]byte) ([]jwk, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Alg string `json:"alg"`
			Use string `json:"use"`
			N   string `json:"n"`
			E   string `json:"e"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data[0], &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	var out []jwk
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		key := jwk{kid: k.Kid, alg: k.Alg}
		switch k.Kty {
		case "RSA":
			n, err1 := base64.RawURLEncoding.DecodeString(k.N)
			e, err2 := base64.RawURLEncoding.DecodeString(k.E)
			if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
				return nil, fmt.Errorf("key %d (kid %q): malformed RSA n or e", i, k.Kid)
			}
			pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
			if pub.N.BitLen() < minRSABits || pub.E < 3 || pub.E%2 == 0 {
				return nil, fmt.Errorf("key %d (kid %q): RSA key of %d bits or exponent %d refused (want at least %d bits, an odd exponent)", i, k.Kid, pub.N.BitLen(), pub.E, minRSABits)
			}
			key.rsa = pub
		case "EC":
			var curve elliptic.Curve
			switch k.Crv {
			case "P-256":
				curve = elliptic.P256()
			case "P-384":
				curve = elliptic.P384()
			default:
				return nil, fmt.Errorf("key %d (kid %q): curve %q not supported (P-256, P-384)", i, k.Kid, k.Crv)
			}
			x, err1 := base64.RawURLEncoding.DecodeString(k.X)
			y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
			size := (curve.Params().BitSize + 7) / 8
			if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
				return nil, fmt.Errorf("key %d (kid %q): malformed EC x or y", i, k.Kid)
			}
			pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
			if err != nil {
				return nil, fmt.Errorf("key %d (kid %q): %w", i, k.Kid, err)
			}
			key.ec = pub
		default:
			continue
		}
		out = append(out, key)
	}
	if len(out) == 0 {
		return nil, errors.New("no RSA or EC signing key in the key set")
	}
	return out, nil
}
