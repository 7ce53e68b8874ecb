package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// Backup and restore of the replicated state (docs/operations.md, "Backup
// and restore").
//
// Save is a consistent read: the leader's state after a barrier (a
// follower reads it through the leader, like ?consistent=1), written in the
// FSM's own snapshot format, so a backup is exactly what a peer persists and
// any later build reads it.
//
// Restore is online and goes through Raft as one step: the leader builds
// the new state aside, checks that it decodes and validates the way every
// peer's FSM will decode it, and hands it to raft.Restore, which installs it
// as a snapshot at an index past the log (a hole), so every follower and
// every later joiner receives it by InstallSnapshot. The running cluster's
// own membership is kept: its Raft configuration (raft.Restore keeps the
// current one) and its peer table, so a backup from one cluster restores
// into another (a rebuilt one, after a disaster) without naming peers that
// do not exist there. Everything else — clusters, routes, quotas, failover
// state, jobs, migrations and chains, offset resets, regions, users, ACLs,
// the cluster id and the allow-list (joined with the current one) — comes
// from the backup.

// MaxSnapshotBytes bounds a snapshot uploaded to POST /v1/snapshot. A state
// of tens of thousands of routes and quotas is a few MiB.
const MaxSnapshotBytes = 256 << 20

// snapshotRoute is the restore route; its body cap is MaxSnapshotBytes, not
// the admin API's small-JSON cap.
const snapshotRoute = "POST /v1/snapshot"

// ErrSnapshotRejected: an uploaded snapshot cannot be restored (it does not
// decode, or the state it yields breaks an invariant).
var ErrSnapshotRejected = errors.New("snapshot rejected")

// SaveSnapshot writes a consistent copy of the replicated state to w in the
// FSM snapshot format and answers the state written.
func (n *Node) SaveSnapshot(ctx context.Context, w io.Writer) (*fsm.State, error) {
	st, err := n.ConsistentState(ctx)
	if err != nil {
		return nil, err
	}
	if err := n.fsm.WriteBackup(w, st); err != nil {
		return nil, err
	}
	return st, nil
}

// RestoreSnapshot replaces the replicated state with the one in r (a
// snapshot written by SaveSnapshot), keeping this cluster's membership. It
// runs on the leader only (ErrNotLeader elsewhere: the admin API redirects).
// The snapshot is decoded and the merged state validated before anything
// changes; a rejected one leaves the state as it was.
func (n *Node) RestoreSnapshot(ctx context.Context, r io.Reader) (adminapi.RestoreReport, error) {
	var rep adminapi.RestoreReport
	saved, claims, err := fsm.ReadSnapshotWithClaims(r)
	if err != nil {
		return rep, fmt.Errorf("%w: %w", ErrSnapshotRejected, err)
	}
	if n.raft.State() != raft.Leader {
		return rep, fmt.Errorf("%w: %s is not the raft leader; a restore runs on the leader", ErrNotLeader, n.cfg.Name)
	}
	cur, err := n.leaderState()
	if err != nil {
		return rep, err
	}
	next := *saved
	next.Peers = cur.Peers
	next.PeerAllowList = unionSorted(saved.PeerAllowList, cur.PeerAllowList)
	if next.ClusterID == "" {
		next.ClusterID = cur.ClusterID
	}
	// The index raft.Restore will install at (the log's last index plus
	// one, unless a write lands in between, which only makes this one
	// lower than the real index: never ahead of it).
	next.Index = n.raft.LastIndex() + 1
	var buf bytes.Buffer
	// The backup's shared producer ids go with it (an older backup has
	// none: producers then take new real ids once).
	if err := fsm.WriteSnapshotWithClaims(&buf, &next, claims); err != nil {
		return rep, err
	}
	// Every peer's FSM will decode exactly these bytes, and raft.Restore
	// panics if the leader's own FSM refuses them: decode them here first.
	if _, err := fsm.ReadSnapshot(bytes.NewReader(buf.Bytes())); err != nil {
		return rep, fmt.Errorf("%w: the backup merged with this cluster's peers: %w", ErrSnapshotRejected, err)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(buf.Len())}
	timeout := n.cfg.Timing.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(timeout, time.Until(dl))
	}
	if err := n.raft.Restore(meta, bytes.NewReader(buf.Bytes()), timeout); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return rep, fmt.Errorf("%w: %s lost leadership during the restore; retry", ErrNoLeader, n.cfg.Name)
		}
		return rep, fmt.Errorf("restore snapshot: %w", err)
	}
	st := n.fsm.State()
	n.log.Warn("replicated state restored from a snapshot", "index", st.Index, "saved_index", saved.Index,
		"clusters", len(st.Clusters), "routes", len(st.Routes.Topics), "quotas", len(st.Quotas), "users", len(st.Users))
	rep = adminapi.RestoreReport{
		Index: st.Index, SavedIndex: saved.Index, ClusterID: st.ClusterID,
		Clusters: len(st.Clusters), Routes: len(st.Routes.Topics) + len(st.Routes.Prefixes) + len(st.Routes.GroupPrefixes),
		Quotas: len(st.Quotas), Users: len(st.Users), ACLs: len(st.ACLs), Regions: len(st.Regions),
		Jobs: len(st.Jobs), Peers: len(st.Peers),
	}
	return rep, nil
}

func unionSorted(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// getSnapshot is GET /v1/snapshot: the state as a backup file. It needs the
// admin role (RequiredRole): a backup holds users' credentials and backend
// secrets.
func (n *Node) getSnapshot(w http.ResponseWriter, r *http.Request) error {
	var buf bytes.Buffer
	st, err := n.SaveSnapshot(r.Context(), &buf)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.Header().Set(indexHeader, strconv.FormatUint(st.Index, 10))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
	return nil
}

// postSnapshot is POST /v1/snapshot: restore a backup. A follower answers
// 307 to the leader's admin API: the snapshot is not forwarded over the
// peer port.
func (n *Node) postSnapshot(w http.ResponseWriter, r *http.Request) error {
	if n.raft.State() != raft.Leader {
		return n.redirectToLeader(w, r)
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("snapshot over %d bytes: not restored", MaxSnapshotBytes)}
		}
		return badRequest("read the snapshot: %v", err)
	}
	rep, err := n.RestoreSnapshot(r.Context(), bytes.NewReader(b))
	if err != nil {
		if errors.Is(err, ErrSnapshotRejected) {
			return badRequest("%v", err)
		}
		return err
	}
	w.Header().Set(indexHeader, strconv.FormatUint(rep.Index, 10))
	writeJSON(w, http.StatusOK, rep)
	return nil
}
