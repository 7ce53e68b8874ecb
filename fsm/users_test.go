package fsm

import (
	"bytes"
	"crypto/pbkdf2"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
)

var testCredentials sync.Map // mechanism+"\x00"+password → Credential

// testCredential is the credential of password under mechanism with a
// fixed salt (so logs that carry it are deterministic), memoized: PBKDF2 is
// slow on purpose and the shared logs are built many times.
func testCredential(mechanism, password string) Credential {
	key := mechanism + "\x00" + password
	if c, ok := testCredentials.Load(key); ok {
		return c.(Credential).clone()
	}
	c, err := DeriveCredential(mechanism, password, []byte("fixed-salt-"+mechanism), MinScramIterations)
	if err != nil {
		panic(err)
	}
	testCredentials.Store(key, c)
	return c.clone()
}

func TestUserCredentialLifecycle(t *testing.T) {
	f := New(nil)
	plain := testCredential(SASLPlain, "p1")
	s256 := testCredential(SASLScramSHA256, "p2")
	s512 := testCredential(SASLScramSHA512, "p3")
	applyOK(t, f,
		&PutUserCredential{Name: "zed", Credential: s512},
		&PutUserCredential{Name: "alice", Credential: s512},
		&PutUserCredential{Name: "alice", Credential: plain},
		&PutUserCredential{Name: "alice", Credential: s256},
	)
	st := f.State()
	if names := userNames(st); names != "alice,zed" {
		t.Fatalf("users %s, want sorted alice,zed", names)
	}
	a, ok := st.User("alice")
	if !ok || mechanisms(a) != "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512" {
		t.Fatalf("alice %+v, want three credentials sorted by mechanism", a)
	}
	if c, _ := a.Credential(SASLPlain); !c.CheckPassword("p1") {
		t.Fatal("alice's PLAIN credential does not check its password")
	}

	// Replacing a mechanism's credential keeps the others; the old
	// state is untouched (copy on write).
	before := stateJSON(t, st)
	applyOK(t, f, &PutUserCredential{Name: "alice", Credential: testCredential(SASLScramSHA256, "new")})
	if stateJSON(t, st) != before {
		t.Fatal("applying changed a published state")
	}
	a, _ = f.State().User("alice")
	if c, _ := a.Credential(SASLScramSHA256); !c.CheckPassword("new") || mechanisms(a) != "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512" {
		t.Fatalf("after replacing SCRAM-SHA-256: %+v", a)
	}

	// Deleting one mechanism, then the last one, removes the user.
	applyOK(t, f, &DeleteUserCredential{Name: "alice", Mechanism: SASLPlain})
	a, _ = f.State().User("alice")
	if mechanisms(a) != "SCRAM-SHA-256,SCRAM-SHA-512" {
		t.Fatalf("after deleting PLAIN: %s", mechanisms(a))
	}
	applyOK(t, f, &DeleteUserCredential{Name: "alice", Mechanism: SASLScramSHA256},
		&DeleteUserCredential{Name: "alice", Mechanism: SASLScramSHA512})
	if _, ok := f.State().User("alice"); ok {
		t.Fatal("a user without credentials remains")
	}
	// An empty mechanism deletes the whole user; the state is then
	// deep-equal to one that never had users.
	applyOK(t, f, &DeleteUserCredential{Name: "zed"})
	if f.State().Users != nil {
		t.Fatalf("users %+v, want nil", f.State().Users)
	}
}

func TestUserCredentialRefusals(t *testing.T) {
	f := New(nil)
	applyOK(t, f, &PutUserCredential{Name: "alice", Credential: testCredential(SASLScramSHA512, "pw")})
	st := f.State()
	good := testCredential(SASLScramSHA256, "pw")
	with := func(mod func(*Credential)) Credential {
		c := good.clone()
		mod(&c)
		return c
	}
	cases := []struct {
		name string
		cmd  Command
		want error
		msg  string
	}{
		{"empty name", &PutUserCredential{Name: "", Credential: good}, ErrInvalid, "empty"},
		{"long name", &PutUserCredential{Name: strings.Repeat("a", MaxUserNameLen+1), Credential: good}, ErrInvalid, "at most 255"},
		{"control character", &PutUserCredential{Name: "a\nb", Credential: good}, ErrInvalid, "not printable"},
		{"invisible separator", &PutUserCredential{Name: "a\u2028b", Credential: good}, ErrInvalid, "not printable"},
		{"bad utf-8", &PutUserCredential{Name: "a\xffb", Credential: good}, ErrInvalid, "UTF-8"},
		{"unknown mechanism", &PutUserCredential{Name: "bob", Credential: with(func(c *Credential) { c.Mechanism = "GSSAPI" })}, ErrInvalid, "GSSAPI"},
		{"few iterations", &PutUserCredential{Name: "bob", Credential: with(func(c *Credential) { c.Iterations = MinScramIterations - 1 })}, ErrInvalid, "iterations"},
		{"many iterations", &PutUserCredential{Name: "bob", Credential: with(func(c *Credential) { c.Iterations = MaxScramIterations + 1 })}, ErrInvalid, "iterations"},
		{"short salt", &PutUserCredential{Name: "bob", Credential: with(func(c *Credential) { c.Salt = c.Salt[:MinSaltLen-1] })}, ErrInvalid, "salt"},
		{"long salt", &PutUserCredential{Name: "bob", Credential: with(func(c *Credential) { c.Salt = make([]byte, MaxSaltLen+1) })}, ErrInvalid, "salt"},
		{"short stored key", &PutUserCredential{Name: "bob", Credential: with(func(c *Credential) { c.StoredKey = c.StoredKey[:5] })}, ErrInvalid, "keys"},
		{"sha-512 size keys for sha-256", &PutUserCredential{Name: "bob", Credential: with(func(c *Credential) {
			o := testCredential(SASLScramSHA512, "pw")
			c.StoredKey, c.ServerKey = o.StoredKey, o.ServerKey
		})}, ErrInvalid, "want 32"},
		{"delete unknown user", &DeleteUserCredential{Name: "bob"}, ErrNotFound, `user "bob"`},
		{"delete missing mechanism", &DeleteUserCredential{Name: "alice", Mechanism: SASLPlain}, ErrNotFound, "no PLAIN credential"},
		{"delete unknown mechanism", &DeleteUserCredential{Name: "alice", Mechanism: "GSSAPI"}, ErrInvalid, "GSSAPI"},
		{"delete bad name", &DeleteUserCredential{Name: "a\x00"}, ErrInvalid, "not printable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := st.Check(tc.cmd)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Check = %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
			if tc.name == "bad utf-8" {
				return // JSON cannot carry it: the log never sees such a name
			}
			// Apply refuses it the same and changes nothing.
			before := stateJSON(t, f.State())
			if res := applyLog(t, f, f.State().Index+1, tc.cmd); !errors.Is(res.(error), tc.want) {
				t.Fatalf("Apply = %v", res)
			}
			if stateJSON(t, f.State()) != before {
				t.Fatal("a refused command changed the state")
			}
		})
	}
}

// TestMaxUsers: a new user past MaxUsers is refused with a reason; an
// existing user's credentials can still change.
func TestMaxUsers(t *testing.T) {
	c := testCredential(SASLScramSHA256, "pw")
	users := make([]User, MaxUsers)
	for i := range users {
		users[i] = User{Name: fmt.Sprintf("u%06d", i), Credentials: []Credential{c}}
	}
	st := &State{Users: users}
	if err := validateUsers(st.Users); err != nil {
		t.Fatalf("a full users section is refused: %v", err)
	}
	err := st.Check(&PutUserCredential{Name: "zz", Credential: c})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "delete one first") {
		t.Fatalf("user past the bound: %v", err)
	}
	if err := st.Check(&PutUserCredential{Name: "u000001", Credential: testCredential(SASLPlain, "pw")}); err != nil {
		t.Fatalf("changing an existing user at the bound: %v", err)
	}
	if err := validateUsers(append(users, User{Name: "zz", Credentials: []Credential{c}})); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a users section past the bound: %v", err)
	}
}

// TestCredentialFromSaltedPassword: the credential built from a salted
// password (what a Kafka client sends) is the one DeriveCredential builds
// from the password, for every mechanism, and bad input is refused.
func TestCredentialFromSaltedPassword(t *testing.T) {
	salt := []byte("0123456789abcdef")
	for _, mech := range []string{SASLPlain, SASLScramSHA256, SASLScramSHA512} {
		h, _ := CredentialHash(mech)
		salted, err := pbkdf2.Key(h, "pencil", salt, 4096, h().Size())
		if err != nil {
			t.Fatal(err)
		}
		got, err := CredentialFromSaltedPassword(mech, salted, salt, 4096)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := DeriveCredential(mech, "pencil", salt, 4096)
		if !reflect.DeepEqual(got, want) || !got.Equal(want) || !got.CheckPassword("pencil") {
			t.Fatalf("%s: %+v, want %+v", mech, got, want)
		}
		if got.Equal(testCredential(mech, "pencil")) {
			t.Fatalf("%s: Equal ignores the salt", mech)
		}
		if _, err := CredentialFromSaltedPassword(mech, salted[:10], salt, 4096); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s: short salted password: %v", mech, err)
		}
		if _, err := CredentialFromSaltedPassword(mech, salted, salt[:3], 4096); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s: short salt: %v", mech, err)
		}
		if _, err := CredentialFromSaltedPassword(mech, salted, salt, 100); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s: few iterations: %v", mech, err)
		}
	}
	if _, err := CredentialFromSaltedPassword("GSSAPI", make([]byte, 32), []byte("01234567"), 4096); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown mechanism: %v", err)
	}
}

// TestUsersSnapshotRejections: Restore refuses a users section that
// breaks an invariant Apply keeps.
func TestUsersSnapshotRejections(t *testing.T) {
	c256 := testCredential(SASLScramSHA256, "pw")
	c512 := testCredential(SASLScramSHA512, "pw")
	bad := c256.clone()
	bad.ServerKey = bad.ServerKey[:1]
	cases := []struct {
		name  string
		users []User
		msg   string
	}{
		{"unsorted", []User{{Name: "b", Credentials: []Credential{c256}}, {Name: "a", Credentials: []Credential{c256}}}, "not sorted"},
		{"repeated", []User{{Name: "a", Credentials: []Credential{c256}}, {Name: "a", Credentials: []Credential{c256}}}, "not sorted"},
		{"no credential", []User{{Name: "a"}}, "no credential"},
		{"credentials unsorted", []User{{Name: "a", Credentials: []Credential{c512, c256}}}, "not sorted by unique mechanism"},
		{"credential repeated", []User{{Name: "a", Credentials: []Credential{c256, c256}}}, "not sorted by unique mechanism"},
		{"bad key", []User{{Name: "a", Credentials: []Credential{bad}}}, "keys"},
		{"bad name", []User{{Name: "a\tb", Credentials: []Credential{c256}}}, "not printable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := New(nil)
			applyOK(t, f, &PutUserCredential{Name: "keep", Credential: c256})
			before := stateJSON(t, f.State())
			err := restore(f, snapshotBytes(t, &State{Users: tc.users}))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("restore = %v, want ErrInvalid mentioning %q", err, tc.msg)
			}
			if stateJSON(t, f.State()) != before {
				t.Fatal("a refused snapshot changed the state")
			}
		})
	}
	// The good section round-trips, byte for byte.
	f := New(nil)
	applyOK(t, f, &PutUserCredential{Name: "a", Credential: c512}, &PutUserCredential{Name: "a", Credential: c256})
	b := persist(t, f)
	g := New(nil)
	if err := restore(g, b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g.State(), f.State()) || !bytes.Equal(persist(t, g), b) {
		t.Fatal("users section does not round-trip")
	}
}

func userNames(s *State) string {
	var n []string
	for _, u := range s.Users {
		n = append(n, u.Name)
	}
	return strings.Join(n, ",")
}

func mechanisms(u User) string {
	var m []string
	for _, c := range u.Credentials {
		m = append(m, c.Mechanism)
	}
	return strings.Join(m, ",")
}
