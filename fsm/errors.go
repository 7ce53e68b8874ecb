package fsm

import "errors"

// Errors callers test with errors.Is. Every error this package returns wraps
// one of them, so the admin API can map a rejected command to a status code
// (ErrInvalid and ErrUnknownCluster → 400, ErrNotFound → 404, ErrConflict
// and ErrInUse → 409) without parsing messages.
var (
	// ErrShortCommand: an encoded command shorter than its two header bytes.
	ErrShortCommand = errors.New("command too short")
	// ErrUnknownCommand: a command type byte this peer does not know.
	ErrUnknownCommand = errors.New("unknown command type")
	// ErrUnknownVersion: a known command type in a version this peer cannot read.
	ErrUnknownVersion = errors.New("unknown command version")
	// ErrBadPayload: a command payload that is not the JSON object its type needs.
	ErrBadPayload = errors.New("malformed command payload")
	// ErrTrailingData: bytes after a complete command payload or snapshot.
	ErrTrailingData = errors.New("trailing data")
	// ErrSkippedEntry: FSM.Apply skipped a committed entry that does not
	// decode; the state is unchanged. It wraps the decoding error too.
	ErrSkippedEntry = errors.New("skipped undecodable log entry")

	// ErrInvalid: a command or state that breaks a rule on its own, whatever
	// the current state (a bad name, a negative rate, a malformed address).
	ErrInvalid = errors.New("invalid")
	// ErrNotFound: a command names a peer, cluster, route, quota or job that
	// does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a command clashes with another entry (an id, name or
	// address another peer holds; a job changing its kind).
	ErrConflict = errors.New("conflict")
	// ErrUnknownCluster: a route or the default names a backend
	// cluster that does not exist.
	ErrUnknownCluster = errors.New("unknown cluster")
	// ErrInUse: a cluster cannot be deleted while something still refers to it.
	ErrInUse = errors.New("still in use")

	// ErrSnapshotHeader: the stream does not start with this package's
	// snapshot header.
	ErrSnapshotHeader = errors.New("not a switchyard fsm snapshot")
	// ErrSnapshotVersion: a snapshot format version this peer cannot read.
	ErrSnapshotVersion = errors.New("unsupported snapshot format version")
	// ErrUnknownSection: a snapshot section name this peer does not know.
	ErrUnknownSection = errors.New("unknown snapshot section")
	// ErrMissingSection: a snapshot that ends before all its sections.
	ErrMissingSection = errors.New("missing snapshot section")
	// ErrSectionOrder: a known section out of place (or repeated).
	ErrSectionOrder = errors.New("snapshot section out of order")
	// ErrBadSection: a section whose data does not decode.
	ErrBadSection = errors.New("malformed snapshot section")
)
