package adminapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// Live topic migrations: GET|POST /v1/migrations, GET
// /v1/migrations/{topic}, POST .../finish and .../abort (docs/admin-api.md
// "Live migrations", docs/migration.md).

// Migration is a topic's move from cluster From to cluster To.
type Migration struct {
	Topic          string             `json:"topic"`
	From           string             `json:"from"`
	To             string             `json:"to"`
	State          fsm.MigrationState `json:"state"`
	Phase          string             `json:"phase"`
	PartitionCount int32              `json:"partition_count"`
	// Partitions are the bases (virtual offsets where the target segment
	// starts), once switched; empty before.
	Partitions   []MigrationBase `json:"partitions"`
	GroupsBehind []string        `json:"groups_behind"`
	Started      UnixMilli       `json:"started"`
	Switched     UnixMilli       `json:"switched,omitempty"`
	Ended        UnixMilli       `json:"ended,omitempty"`
	Error        string          `json:"error,omitempty"`
}

// MigrationBase is one partition and its base. A server always sends the
// base; a reader takes an absent (nil) or negative one as not known yet.
type MigrationBase struct {
	Partition int32  `json:"partition"`
	Base      *int64 `json:"base"`
}

// MigrationList is GET /v1/migrations. It also decodes a bare list, as
// ctl always has.
type MigrationList struct {
	Migrations []Migration `json:"migrations"`
}

// UnmarshalJSON reads {"migrations": [...]} or [...].
func (l *MigrationList) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '[' {
		return json.Unmarshal(t, &l.Migrations)
	}
	type plain MigrationList // without this method
	return json.Unmarshal(b, (*plain)(l))
}

// MigrationStart is the body of POST /v1/migrations.
type MigrationStart struct {
	Topic string `json:"topic"`
	To    string `json:"to"`
}

// MigrationBehind is the 409 answer of a finish refused because groups
// are behind the base.
type MigrationBehind struct {
	Error        string   `json:"error"`
	GroupsBehind []string `json:"groups_behind,omitempty"`
}

// UnixMilli is a time in an answer: unix milliseconds, 0 for none, which
// is how servers send it. It decodes leniently: an RFC 3339 string too,
// and null or "" as none, so a reader keeps working against a server that
// sends either.
type UnixMilli int64

// UnmarshalJSON reads unix milliseconds, an RFC 3339 string, null or "".
func (t *UnixMilli) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	switch {
	case s == "null" || s == `""`:
		*t = 0
	case strings.HasPrefix(s, `"`):
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		v, err := time.Parse(time.RFC3339Nano, str)
		if err != nil {
			return fmt.Errorf("time %q is not RFC 3339", str)
		}
		*t = UnixMilli(v.UnixMilli())
	default:
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("time %s is neither unix milliseconds nor RFC 3339", s)
		}
		*t = UnixMilli(ms)
	}
	return nil
}

// Time is t as a time.Time; the zero Time for 0.
func (t UnixMilli) Time() time.Time {
	if t == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(t))
}

// String is t in RFC 3339 (UTC, seconds), "-" for none.
func (t UnixMilli) String() string {
	if t == 0 {
		return "-"
	}
	return t.Time().UTC().Format(time.RFC3339)
}
