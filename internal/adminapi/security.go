package adminapi

// SASL users and authorization rules: /v1/users and /v1/acls
// (docs/admin-api.md "Users and ACLs", docs/security.md). Answers never
// carry a credential's salt or keys.

// UserList is GET /v1/users.
type UserList struct {
	Users []User `json:"users"`
}

// User is a user as the API shows it: its mechanisms, no salts, no keys.
type User struct {
	Name       string          `json:"name"`
	Mechanisms []UserMechanism `json:"mechanisms"`
}

// UserMechanism is one credential of a user.
type UserMechanism struct {
	Mechanism  string `json:"mechanism"`
	Iterations int    `json:"iterations"`
}

// UserBody is the PUT body of /v1/users/{name}; the name comes from the
// path. Iterations 0 (left out) is the server's default.
type UserBody struct {
	Mechanism  string `json:"mechanism"`
	Password   string `json:"password"`
	Iterations int    `json:"iterations,omitempty"`
}

// ACL is one rule as a request gives it: host, pattern and permission may
// be left out (the server fills *, literal and allow). It has fsm.ACL's
// fields in fsm.ACL's order, so each converts to the other; answers are
// []fsm.ACL, every field set.
type ACL struct {
	Principal    string `json:"principal"`
	Host         string `json:"host,omitempty"`
	ResourceType string `json:"resource_type"`
	ResourceName string `json:"resource_name"`
	Pattern      string `json:"pattern,omitempty"`
	Operation    string `json:"operation"`
	Permission   string `json:"permission,omitempty"`
}

// ACLsBody is POST /v1/acls: one rule's fields inline, or a list under
// "acls", not both.
type ACLsBody struct {
	ACL
	ACLs []ACL `json:"acls,omitempty"`
}
