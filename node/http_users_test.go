package node

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// TestUsersAPI walks the users endpoints against a real one-peer cluster:
// refusals change nothing, answers never show salts or keys, the stored
// credential checks the password, and the password is nowhere on disk
// (Raft log, snapshots).
func TestUsersAPI(t *testing.T) {
	n := startSolo(t, "tok")
	const password = "correct horse battery staple"
	long := strings.Repeat("p", maxUserPasswordLen+1)
	steps := []struct {
		name, method, path, body string
		status                   int
		contains                 string
	}{
		{"no users", "GET", "/v1/users", "", 200, `"users": []`},
		{"control character in the name", "PUT", "/v1/users/a%0Ab", `{"mechanism":"PLAIN","password":"x"}`, 400, "not printable"},
		{"no mechanism", "PUT", "/v1/users/alice", `{"password":"x"}`, 400, "mechanism is missing"},
		{"unknown mechanism", "PUT", "/v1/users/alice", `{"mechanism":"GSSAPI","password":"x"}`, 400, "GSSAPI"},
		{"empty password", "PUT", "/v1/users/alice", `{"mechanism":"PLAIN","password":""}`, 400, "1 to 1024"},
		{"long password", "PUT", "/v1/users/alice", `{"mechanism":"PLAIN","password":"` + long + `"}`, 400, "1 to 1024"},
		{"few iterations", "PUT", "/v1/users/alice", `{"mechanism":"SCRAM-SHA-256","password":"x","iterations":100}`, 400, "4096 to 16384"},
		{"unknown field", "PUT", "/v1/users/alice", `{"mechanism":"PLAIN","password":"x","hash":"abc"}`, 400, "unknown field"},
		{"nothing changed by refusals", "GET", "/v1/users", "", 200, `"users": []`},
		{"put scram", "PUT", "/v1/users/alice", `{"mechanism":"SCRAM-SHA-512","password":"` + password + `"}`, 200, `"iterations": 8192`},
		{"put plain", "PUT", "/v1/users/alice", `{"mechanism":"PLAIN","password":"` + password + `","iterations":4096}`, 200, `"mechanism": "PLAIN"`},
		{"another user", "PUT", "/v1/users/bob%40example.com", `{"mechanism":"SCRAM-SHA-256","password":"b"}`, 200, `"name": "bob@example.com"`},
		{"get user", "GET", "/v1/users/alice", "", 200, `"mechanism": "SCRAM-SHA-512"`},
		{"list users", "GET", "/v1/users", "", 200, `"name": "bob@example.com"`},
		{"unknown user", "GET", "/v1/users/carol", "", 404, "does not exist"},
		{"delete a mechanism the user lacks", "DELETE", "/v1/users/alice?mechanism=SCRAM-SHA-256", "", 404, "no SCRAM-SHA-256 credential"},
		{"delete an unknown mechanism", "DELETE", "/v1/users/alice?mechanism=GSSAPI", "", 400, "GSSAPI"},
		{"delete one mechanism", "DELETE", "/v1/users/alice?mechanism=PLAIN", "", 204, ""},
		{"the other stays", "GET", "/v1/users/alice", "", 200, `"SCRAM-SHA-512"`},
		{"delete a user", "DELETE", "/v1/users/bob%40example.com", "", 204, ""},
		{"delete it again", "DELETE", "/v1/users/bob%40example.com", "", 404, "not found"},
		{"users without a token", "GET", "/v1/users", "", 401, "bearer token"},
	}
	for _, s := range steps {
		token := "tok"
		if strings.HasSuffix(s.name, "without a token") {
			token = ""
		}
		code, _, body := call(t, n, s.method, s.path, token, s.body)
		if code != s.status || !strings.Contains(body, s.contains) {
			t.Fatalf("%s: %s %s answered %d %s; want %d containing %q", s.name, s.method, s.path, code, body, s.status, s.contains)
		}
		for _, secret := range []string{"salt", "stored_key", "server_key", password} {
			if strings.Contains(body, secret) {
				t.Fatalf("%s: the answer shows %q: %s", s.name, secret, body)
			}
		}
	}
	_, _, body := call(t, n, "GET", "/v1/users", "tok", "")
	var list struct {
		Users []adminapi.User `json:"users"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Users) != 1 || list.Users[0].Name != "alice" ||
		len(list.Users[0].Mechanisms) != 1 || list.Users[0].Mechanisms[0] != (adminapi.UserMechanism{Mechanism: fsm.SASLScramSHA512, Iterations: 8192}) {
		t.Fatalf("final list %s (%v)", body, err)
	}
	u, _ := n.fsm.State().User("alice")
	c, ok := u.Credential(fsm.SASLScramSHA512)
	if !ok || !c.CheckPassword(password) || c.CheckPassword("wrong") || len(c.Salt) != userSaltLen {
		t.Fatalf("stored credential %+v does not check the password", c)
	}

	// The password reached no file: only the derived keys are proposed.
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	err := filepath.WalkDir(n.cfg.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(password)) {
			t.Errorf("%s holds the password", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
