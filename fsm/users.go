package fsm

import (
	"crypto/hmac"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The proxy's SASL users (issue 12, docs/security.md): commands 28
// PutUserCredential and 29 DeleteUserCredential (command set 6) and the
// rules of the `users` snapshot section. A user holds at most one
// credential per mechanism; a password never reaches the log, only the
// salted keys that verify it (RFC 5802), fixed by the proposer (the admin
// API draws the salt, a Kafka client sends its own salted password).

// Command types of the users (the numbering is commandTable's; they sit
// here so the shared const block keeps its alignment).
const (
	TypePutUserCredential    CommandType = 28
	TypeDeleteUserCredential CommandType = 29
)

// Bounds on the users section. A user is a few hundred bytes in every
// snapshot and every peer's memory, so MaxUsers keeps both bounded.
const (
	MaxUsers       = 100_000
	MaxUserNameLen = 255
	MinSaltLen     = 8
	MaxSaltLen     = 128
)

// PutUserCredential sets one mechanism's credential of the user Name,
// creating the user when it has none yet, and replacing the credential the
// user had for that mechanism.
type PutUserCredential struct {
	Name       string     `json:"name"`
	Credential Credential `json:"credential"`
}

// DeleteUserCredential removes the credential of Mechanism from the user
// Name; the user goes when it has no credential left. An empty Mechanism
// removes the user with all its credentials.
type DeleteUserCredential struct {
	Name      string `json:"name"`
	Mechanism string `json:"mechanism,omitempty"`
}

func (*PutUserCredential) Type() CommandType    { return TypePutUserCredential }
func (*DeleteUserCredential) Type() CommandType { return TypeDeleteUserCredential }
func (*PutUserCredential) isCommand()           {}
func (*DeleteUserCredential) isCommand()        {}

func (c *PutUserCredential) Validate() error {
	if err := ValidUserName(c.Name); err != nil {
		return err
	}
	return validateCredential(fmt.Sprintf("user %q", c.Name), c.Credential)
}

func (c *DeleteUserCredential) Validate() error {
	if err := ValidUserName(c.Name); err != nil {
		return err
	}
	if c.Mechanism != "" {
		if _, err := CredentialHash(c.Mechanism); err != nil {
			return err
		}
	}
	return nil
}

// ValidUserName accepts a SASL user name: 1 to MaxUserNameLen bytes of
// printable UTF-8 (no control characters, no invisible separators). The
// admin API and the Kafka handler check names with it before proposing.
func ValidUserName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: user name is empty", ErrInvalid)
	}
	if len(name) > MaxUserNameLen {
		return fmt.Errorf("%w: user name is %d bytes, at most %d allowed", ErrInvalid, len(name), MaxUserNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: user name %q is not valid UTF-8", ErrInvalid, name)
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }); i >= 0 {
		return fmt.Errorf("%w: user name %q has a character that is not printable at byte %d", ErrInvalid, name, i)
	}
	return nil
}

// validateCredential checks a credential on its own: a known mechanism,
// iterations within Kafka's bounds, a salt of MinSaltLen to MaxSaltLen
// bytes and keys of the mechanism's hash size.
func validateCredential(what string, c Credential) error {
	h, err := CredentialHash(c.Mechanism)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if c.Iterations < MinScramIterations || c.Iterations > MaxScramIterations {
		return fmt.Errorf("%w: %s %s credential has %d iterations, must be %d to %d", ErrInvalid, what, c.Mechanism, c.Iterations, MinScramIterations, MaxScramIterations)
	}
	if len(c.Salt) < MinSaltLen || len(c.Salt) > MaxSaltLen {
		return fmt.Errorf("%w: %s %s credential has a %d-byte salt, must be %d to %d bytes", ErrInvalid, what, c.Mechanism, len(c.Salt), MinSaltLen, MaxSaltLen)
	}
	size := h().Size()
	if len(c.StoredKey) != size || len(c.ServerKey) != size {
		return fmt.Errorf("%w: %s %s credential has keys of %d and %d bytes, want %d", ErrInvalid, what, c.Mechanism, len(c.StoredKey), len(c.ServerKey), size)
	}
	return nil
}

// CredentialFromSaltedPassword builds the credential of mechanism from a
// salted password (SaltedPassword of RFC 5802, what a Kafka client sends in
// AlterUserScramCredentials) with the salt and iterations it was salted
// with. salted must be the mechanism's hash size.
func CredentialFromSaltedPassword(mechanism string, salted, salt []byte, iterations int) (Credential, error) {
	h, err := CredentialHash(mechanism)
	if err != nil {
		return Credential{}, err
	}
	if iterations < MinScramIterations || iterations > MaxScramIterations {
		return Credential{}, fmt.Errorf("%w: %d iterations, must be %d to %d", ErrInvalid, iterations, MinScramIterations, MaxScramIterations)
	}
	if len(salted) != h().Size() {
		return Credential{}, fmt.Errorf("%w: %s salted password is %d bytes, want %d", ErrInvalid, mechanism, len(salted), h().Size())
	}
	if len(salt) < MinSaltLen || len(salt) > MaxSaltLen {
		return Credential{}, fmt.Errorf("%w: %d-byte salt, must be %d to %d bytes", ErrInvalid, len(salt), MinSaltLen, MaxSaltLen)
	}
	clientKey := scramHMAC(h, salted, "Client Key")
	stored := h()
	stored.Write(clientKey)
	return Credential{
		Mechanism:  mechanism,
		Iterations: iterations,
		Salt:       slices.Clone(salt),
		StoredKey:  stored.Sum(nil),
		ServerKey:  scramHMAC(h, salted, "Server Key"),
	}, nil
}

// Equal reports whether c and o are the same credential (constant time in
// the keys).
func (c Credential) Equal(o Credential) bool {
	return c.Mechanism == o.Mechanism && c.Iterations == o.Iterations &&
		hmac.Equal(c.Salt, o.Salt) && hmac.Equal(c.StoredKey, o.StoredKey) && hmac.Equal(c.ServerKey, o.ServerKey)
}

// clone gives c fresh byte slices, so a stored credential never shares
// memory with the command that carried it.
func (c Credential) clone() Credential {
	c.Salt, c.StoredKey, c.ServerKey = slices.Clone(c.Salt), slices.Clone(c.StoredKey), slices.Clone(c.ServerKey)
	return c
}

func (s *State) applyPutUserCredential(c *PutUserCredential) error {
	i, found := slices.BinarySearchFunc(s.Users, c.Name, cmpUserName)
	if !found && len(s.Users) >= MaxUsers {
		return fmt.Errorf("%w: %d users are defined, the most allowed; delete one first", ErrInvalid, MaxUsers)
	}
	u := User{Name: c.Name}
	if found {
		u.Credentials = s.Users[i].Credentials
	}
	j, has := slices.BinarySearchFunc(u.Credentials, c.Credential.Mechanism, cmpCredentialMechanism)
	u.Credentials = upsert(u.Credentials, j, has, c.Credential.clone())
	s.Users = upsert(s.Users, i, found, u)
	return nil
}

func (s *State) applyDeleteUserCredential(c *DeleteUserCredential) error {
	i, found := slices.BinarySearchFunc(s.Users, c.Name, cmpUserName)
	if !found {
		return fmt.Errorf("%w: user %q", ErrNotFound, c.Name)
	}
	if c.Mechanism == "" {
		s.Users = removeAt(s.Users, i)
		return nil
	}
	u := s.Users[i]
	j, has := slices.BinarySearchFunc(u.Credentials, c.Mechanism, cmpCredentialMechanism)
	if !has {
		return fmt.Errorf("%w: user %q has no %s credential", ErrNotFound, c.Name, c.Mechanism)
	}
	if len(u.Credentials) == 1 {
		s.Users = removeAt(s.Users, i)
		return nil
	}
	u.Credentials = removeAt(u.Credentials, j)
	s.Users = upsert(s.Users, i, true, u)
	return nil
}

// validateUsers checks the users section of a state: at most MaxUsers,
// sorted by unique valid name, each with one to three valid credentials
// sorted by unique mechanism.
func validateUsers(users []User) error {
	if len(users) > MaxUsers {
		return fmt.Errorf("%w: %d users, at most %d allowed", ErrInvalid, len(users), MaxUsers)
	}
	for i, u := range users {
		if err := ValidUserName(u.Name); err != nil {
			return err
		}
		if i > 0 && users[i-1].Name >= u.Name {
			return fmt.Errorf("%w: users not sorted by unique name at %q", ErrInvalid, u.Name)
		}
		if len(u.Credentials) == 0 {
			return fmt.Errorf("%w: user %q has no credential", ErrInvalid, u.Name)
		}
		what := fmt.Sprintf("user %q", u.Name)
		for j, c := range u.Credentials {
			if err := validateCredential(what, c); err != nil {
				return err
			}
			if j > 0 && u.Credentials[j-1].Mechanism >= c.Mechanism {
				return fmt.Errorf("%w: %s credentials not sorted by unique mechanism at %s", ErrInvalid, what, c.Mechanism)
			}
		}
	}
	return nil
}

func cmpUserName(u User, name string) int { return strings.Compare(u.Name, name) }

func cmpCredentialMechanism(c Credential, m string) int { return strings.Compare(c.Mechanism, m) }
