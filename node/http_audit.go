package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The audit trail of admin writes (docs/admin-api.md, "Audit log"). Every
// request that is not a GET or HEAD is recorded once answered, refused ones
// included: who (token name, or role and fingerprint; never the token),
// from where, what (method, route pattern, path, the body with secrets
// redacted), the status and, for an applied change, its Raft index. It goes
// to the peer's log at info (msg "audit") and, with --admin-audit-log, as
// one JSON object per line appended to that file. The record is written by
// the peer that took the request; a follower that forwarded a write to the
// leader records it, the leader does not.

// auditBodyMax caps the redacted body kept in one record.
const auditBodyMax = 8 << 10

// redacted replaces the value of a secret-bearing field.
const redacted = "[redacted]"

// secretKeyWords: a JSON key containing any of these (case-insensitive)
// has its value redacted, wherever it sits in the body.
var secretKeyWords = []string{"password", "secret", "token", "key", "credential"}

func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, w := range secretKeyWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// redactBody turns a request body into what the audit log may keep: the
// JSON with the value of every secret-bearing key replaced, compacted. A
// body that is not one JSON value is never kept (it might hold a secret
// redaction cannot find): note says why it is left out. Empty gives nil, "".
func redactBody(b []byte) (body json.RawMessage, note string) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, ""
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Sprintf("%d bytes that are not JSON", len(b))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Sprintf("%d bytes that are not one JSON value", len(b))
	}
	out, err := json.Marshal(redactValue(v))
	if err != nil {
		return nil, fmt.Sprintf("%d bytes that could not be re-encoded", len(b))
	}
	if len(out) > auditBodyMax {
		return nil, fmt.Sprintf("%d bytes of JSON, over the %d-byte audit cap", len(out), auditBodyMax)
	}
	return out, ""
}

func redactValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if secretKey(k) {
				x[k] = redacted
			} else {
				x[k] = redactValue(e)
			}
		}
	case []any:
		for i, e := range x {
			x[i] = redactValue(e)
		}
	}
	return v
}

// auditRecord is one line of the audit log.
type auditRecord struct {
	Time        string          `json:"time"`
	Peer        string          `json:"peer"`
	Remote      string          `json:"remote"`
	Token       string          `json:"token,omitempty"`
	Role        string          `json:"role"`
	Fingerprint string          `json:"fingerprint,omitempty"`
	Method      string          `json:"method"`
	Route       string          `json:"route"`
	Path        string          `json:"path"`
	Status      int             `json:"status"`
	Index       string          `json:"index,omitempty"`
	Error       string          `json:"error,omitempty"`
	Body        json.RawMessage `json:"body,omitempty"`
	BodyOmitted string          `json:"body_omitted,omitempty"`
}

// isWrite: the requests the audit log records.
func isWrite(method string) bool { return method != http.MethodGet && method != http.MethodHead }

// auditFile appends records to --admin-audit-log. It reopens the path when
// it no longer names the open file (logrotate moved it away), so rotation
// needs no signal.
type auditFile struct {
	path   string
	log    *slog.Logger
	errors prometheus.Counter

	mu      sync.Mutex
	f       *os.File
	lastErr string
}

func openAuditFile(path string, reg prometheus.Registerer, log *slog.Logger) (*auditFile, error) {
	a := &auditFile{path: path, log: log,
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_admin_audit_write_errors_total",
			Help: "Audit records that could not be appended to --admin-audit-log (each is still in the peer's log).",
		})}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("node: --admin-audit-log: %w", err)
	}
	a.f = f
	if reg != nil {
		reg.MustRegister(a.errors)
	}
	return a, nil
}

func (a *auditFile) write(line []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	err := a.reopenIfMoved()
	if err == nil {
		_, err = a.f.Write(line)
	}
	if err != nil {
		a.errors.Inc()
		if msg := err.Error(); msg != a.lastErr {
			a.lastErr = msg
			a.log.Warn("cannot append to the admin audit log; records stay in the peer's log", "file", a.path, "err", err)
		}
		return
	}
	a.lastErr = ""
}

func (a *auditFile) reopenIfMoved() error {
	cur, err := os.Stat(a.path)
	if err == nil && a.f != nil {
		if open, err2 := a.f.Stat(); err2 == nil && os.SameFile(cur, open) {
			return nil
		}
	}
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if a.f != nil {
		a.f.Close()
	}
	a.f = f
	return nil
}

func (a *auditFile) close() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	return err
}

// readAuditedBody reads a write's body ahead of its handler, so the audit
// log has it even when the request is refused before the handler reads it.
// r.Body is already capped by AdminLimits.MaxBodyBytes; the handler reads
// the same bytes (and the same error) afterwards.
// complete is false when the body could not be read whole (over the limit,
// or the client stopped sending): the record then keeps no body.
func readAuditedBody(r *http.Request) (body []byte, complete bool) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true
	}
	b, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	if err != nil && !errors.As(err, &tooLarge) {
		err = fmt.Errorf("read request body: %w", err)
	}
	r.Body = &bodyReplay{r: bytes.NewReader(b), err: err}
	if err != nil {
		return nil, false
	}
	return b, true
}

// audit records one answered write.
func (n *Node) audit(r *http.Request, route string, id adminIdentity, status int, index string, reqErr error, body []byte, complete bool) {
	rec := auditRecord{
		Time:        time.Now().UTC().Format(time.RFC3339Nano),
		Peer:        n.cfg.Name,
		Remote:      r.RemoteAddr,
		Token:       id.name,
		Role:        id.role.String(),
		Fingerprint: id.fingerprint,
		Method:      r.Method,
		Route:       route,
		Path:        r.URL.Path,
		Status:      status,
		Index:       index,
	}
	if reqErr != nil {
		rec.Error = reqErr.Error()
	}
	rec.Body, rec.BodyOmitted = redactBody(body)
	if !complete {
		rec.BodyOmitted = "the body was not read whole (over the size limit, or the client stopped sending)"
	}
	if n.log != nil {
		n.log.Info("audit", "remote", rec.Remote, "token", rec.Token, "role", rec.Role,
			"fingerprint", rec.Fingerprint, "method", rec.Method, "route", rec.Route, "path", rec.Path, "status", rec.Status,
			"index", rec.Index, "error", rec.Error, "body", string(rec.Body), "body_omitted", rec.BodyOmitted)
	}
	if n.auditFile != nil {
		line, err := json.Marshal(rec)
		if err != nil {
			return
		}
		n.auditFile.write(append(line, '\n'))
	}
}
