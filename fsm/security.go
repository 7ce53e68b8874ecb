package fsm

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"slices"
	"strings"
)

// The proxy's own users and authorization rules (issue 12, docs/security.md):
// the identities the Kafka listener authenticates with SASL PLAIN and SCRAM,
// and the ACLs evaluated per request once a listener authenticates. Both are
// replicated so every peer authenticates and authorizes alike.

// SASL mechanisms a user credential is for. SASLPlain, SASLScramSHA256 and
// SASLScramSHA512 (state.go) name them.

// User is a client identity of the Kafka listener. Its name is the
// principal's ("User:" + Name).
type User struct {
	Name string `json:"name"`
	// Credentials holds at most one credential per mechanism, sorted by
	// mechanism. A password is never stored, only what verifies it.
	Credentials []Credential `json:"credentials"`
}

// Credential verifies a password (PLAIN) or a SCRAM exchange without holding
// the password (RFC 5802): SaltedPassword = PBKDF2(H, password, Salt,
// Iterations); StoredKey = H(HMAC(SaltedPassword, "Client Key")); ServerKey =
// HMAC(SaltedPassword, "Server Key"). A PLAIN credential is derived with
// SHA-512 and checked by deriving StoredKey from the password the client
// sends.
type Credential struct {
	Mechanism  string `json:"mechanism"`
	Iterations int    `json:"iterations"`
	Salt       []byte `json:"salt"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

// SCRAM iteration bounds: Kafka's minimum (4096) and maximum (16384).
const (
	MinScramIterations = 4096
	MaxScramIterations = 16384
)

// CredentialHash is the hash a credential of mechanism is derived with:
// SHA-256 for SCRAM-SHA-256, SHA-512 for SCRAM-SHA-512 and PLAIN.
func CredentialHash(mechanism string) (func() hash.Hash, error) {
	switch mechanism {
	case SASLScramSHA256:
		return sha256.New, nil
	case SASLScramSHA512, SASLPlain:
		return sha512.New, nil
	}
	return nil, fmt.Errorf("%w: mechanism %q is not one of %s, %s, %s", ErrInvalid, mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
}

// DeriveCredential computes the credential for password under mechanism,
// salt and iterations (RFC 5802 section 3). The caller draws the salt from
// crypto/rand.
func DeriveCredential(mechanism, password string, salt []byte, iterations int) (Credential, error) {
	h, err := CredentialHash(mechanism)
	if err != nil {
		return Credential{}, err
	}
	if iterations < MinScramIterations || iterations > MaxScramIterations {
		return Credential{}, fmt.Errorf("%w: %d iterations, must be %d to %d", ErrInvalid, iterations, MinScramIterations, MaxScramIterations)
	}
	salted, err := pbkdf2.Key(h, password, salt, iterations, h().Size())
	if err != nil {
		return Credential{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return CredentialFromSaltedPassword(mechanism, salted, salt, iterations)
}

// CheckPassword reports whether password matches c (constant time in the
// derived key).
func (c Credential) CheckPassword(password string) bool {
	d, err := DeriveCredential(c.Mechanism, password, c.Salt, c.Iterations)
	if err != nil {
		return false
	}
	return hmac.Equal(d.StoredKey, c.StoredKey)
}

func scramHMAC(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// Credential returns u's credential for mechanism.
func (u User) Credential(mechanism string) (Credential, bool) {
	for _, c := range u.Credentials {
		if c.Mechanism == mechanism {
			return c, true
		}
	}
	return Credential{}, false
}

// User returns the user named name.
func (s *State) User(name string) (User, bool) {
	i, ok := slices.BinarySearchFunc(s.Users, name, func(u User, n string) int { return strings.Compare(u.Name, n) })
	if !ok {
		return User{}, false
	}
	return s.Users[i], true
}

// ACL resource types, pattern types, operations and permissions: Kafka's,
// spelled as the admin API spells them (lower case, underscores).
const (
	ResourceTopic           = "topic"
	ResourceGroup           = "group"
	ResourceTransactionalID = "transactional_id"
	ResourceCluster         = "cluster"

	PatternLiteral  = "literal"
	PatternPrefixed = "prefixed"

	PermissionAllow = "allow"
	PermissionDeny  = "deny"
)

// ACL operations (Kafka's AclOperation).
const (
	OpAll             = "all"
	OpRead            = "read"
	OpWrite           = "write"
	OpCreate          = "create"
	OpDelete          = "delete"
	OpAlter           = "alter"
	OpDescribe        = "describe"
	OpClusterAction   = "cluster_action"
	OpDescribeConfigs = "describe_configs"
	OpAlterConfigs    = "alter_configs"
	OpIdempotentWrite = "idempotent_write"
)

// ACL is one authorization rule. Principal is "User:NAME" or "User:*";
// Host is "*" (any) or a client IP address. For resource type cluster the
// resource name is "kafka-cluster", as in Kafka.
type ACL struct {
	Principal    string `json:"principal"`
	Host         string `json:"host"`
	ResourceType string `json:"resource_type"`
	ResourceName string `json:"resource_name"`
	Pattern      string `json:"pattern"`
	Operation    string `json:"operation"`
	Permission   string `json:"permission"`
}
