package node

// The admin API's SASL users (issue 12 "Interface", docs/security.md):
// PUT /v1/users/{name} {"mechanism": "SCRAM-SHA-512", "password": "...",
// "iterations": 8192}, GET /v1/users, GET /v1/users/{name} and
// DELETE /v1/users/{name}[?mechanism=M]. The password is salted here, on
// the peer that received it, with a salt drawn from crypto/rand: only the
// derived credential (RFC 5802 keys) is proposed, forwarded and logged, so
// the password never leaves this process. Answers never carry keys or
// salts, only each credential's mechanism and iterations.

import (
	"crypto/rand"
	"fmt"
	"net/http"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

const (
	// defaultUserIterations is the PBKDF2 iteration count of a credential
	// when the request names none: twice Kafka's minimum, a few
	// milliseconds per SCRAM login.
	defaultUserIterations = 8192
	// userSaltLen is the salt drawn for each credential.
	userSaltLen = 32
	// maxUserPasswordLen bounds a password: PBKDF2 hashes it once per
	// iteration, so an unbounded one would let a request burn CPU.
	maxUserPasswordLen = 1024
)

// viewUser is a user as the API shows it: no salts, no keys.
func viewUser(u fsm.User) adminapi.User {
	v := adminapi.User{Name: u.Name, Mechanisms: make([]adminapi.UserMechanism, 0, len(u.Credentials))}
	for _, c := range u.Credentials {
		v.Mechanisms = append(v.Mechanisms, adminapi.UserMechanism{Mechanism: c.Mechanism, Iterations: c.Iterations})
	}
	return v
}

func (n *Node) getUsers(w http.ResponseWriter, r *http.Request) error {
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	out := make([]adminapi.User, 0, len(st.Users))
	for _, u := range st.Users {
		out = append(out, viewUser(u))
	}
	writeJSON(w, http.StatusOK, adminapi.UserList{Users: out})
	return nil
}

func (n *Node) getUser(w http.ResponseWriter, r *http.Request) error {
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	u, ok := st.User(name)
	if !ok {
		return notFound("user %q does not exist", name)
	}
	writeJSON(w, http.StatusOK, viewUser(u))
	return nil
}

func (n *Node) putUser(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := fsm.ValidUserName(name); err != nil {
		return err
	}
	var b adminapi.UserBody
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	if b.Mechanism == "" {
		return badRequest("user %q: mechanism is missing; use one of %s, %s, %s", name, fsm.SASLPlain, fsm.SASLScramSHA256, fsm.SASLScramSHA512)
	}
	if _, err := fsm.CredentialHash(b.Mechanism); err != nil {
		return err
	}
	if b.Password == "" || len(b.Password) > maxUserPasswordLen {
		return badRequest("user %q: the password is %d bytes, it must be 1 to %d", name, len(b.Password), maxUserPasswordLen)
	}
	if b.Iterations == 0 {
		b.Iterations = defaultUserIterations
	}
	if b.Iterations < fsm.MinScramIterations || b.Iterations > fsm.MaxScramIterations {
		return badRequest("user %q: %d iterations, must be %d to %d", name, b.Iterations, fsm.MinScramIterations, fsm.MaxScramIterations)
	}
	salt := make([]byte, userSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return fmt.Errorf("draw a salt: %w", err)
	}
	cred, err := fsm.DeriveCredential(b.Mechanism, b.Password, salt, b.Iterations)
	if err != nil {
		return err
	}
	cmd := &fsm.PutUserCredential{Name: name, Credential: cred}
	return n.write(w, r, cmd, http.StatusOK, func(fsm.Applied) any {
		if u, ok := n.fsm.State().User(name); ok {
			return viewUser(u)
		}
		// Deleted again between the commit and this read.
		return adminapi.User{Name: name, Mechanisms: []adminapi.UserMechanism{{Mechanism: cred.Mechanism, Iterations: cred.Iterations}}}
	})
}

func (n *Node) deleteUser(w http.ResponseWriter, r *http.Request) error {
	return n.write(w, r, &fsm.DeleteUserCredential{Name: r.PathValue("name"), Mechanism: r.URL.Query().Get("mechanism")}, http.StatusNoContent, nil)
}
