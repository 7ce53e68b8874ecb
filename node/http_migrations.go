package node

// The admin API of live topic migrations (issue 9 "Interface"; the driver
// is migrate.go). Starts, finishes and aborts are writes through n.write
// like every other change; the checks that need a backend (the topic's
// partition count, the groups behind) run on the peer that took the
// request, which serves every backend cluster as the leader does.

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/switchyard-proxy/switchyard/fsm"
	"github.com/switchyard-proxy/switchyard/internal/adminapi"
)

// viewMigration is a migration as the API shows it.
func viewMigration(st *fsm.State, m fsm.Migration) adminapi.Migration {
	v := adminapi.Migration{
		Topic: m.Topic, From: m.From, To: m.To, State: m.State, Phase: m.Phase, PartitionCount: m.Partitions,
		Partitions: []adminapi.MigrationBase{}, GroupsBehind: nonNil(m.GroupsBehind),
		Started: adminapi.UnixMilli(m.Started), Switched: adminapi.UnixMilli(m.Switched), Ended: adminapi.UnixMilli(m.Ended), Error: m.Error,
	}
	if m.State == fsm.MigrationSwitched || m.State == fsm.MigrationFinished {
		if c := st.Chain(m.Topic); c != nil && c.Live().Cluster == m.To {
			live := c.Live()
			for p := range m.Partitions {
				base := live.Start(p)
				v.Partitions = append(v.Partitions, adminapi.MigrationBase{Partition: p, Base: &base})
			}
		}
	}
	return v
}

// migrationAfter answers with the topic's migration once this peer has
// applied the write at index (a follower learns it a moment after the
// leader answered).
func (n *Node) migrationAfter(r *http.Request, topic string) func(fsm.Applied) any {
	return func(a fsm.Applied) any {
		_ = n.WaitIndex(r.Context(), a.Index)
		st := n.fsm.State()
		if m, ok := st.Migration(topic); ok {
			return viewMigration(st, *m)
		}
		return map[string]string{"topic": topic}
	}
}

func (n *Node) postMigration(w http.ResponseWriter, r *http.Request) error {
	var b adminapi.MigrationStart
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	if b.Topic == "" || b.To == "" {
		return badRequest(`the body needs {"topic": TOPIC, "to": CLUSTER}`)
	}
	// Names are checked before any backend is asked about them.
	probe := fsm.StartMigration{Topic: b.Topic, From: "a", To: b.To, Partitions: 1, Started: 1}
	if b.To == probe.From {
		probe.From = "b"
	}
	if err := probe.Validate(); err != nil {
		return err
	}
	var from string
	if err := n.recheckRefusal(r.Context(), func(st *fsm.State) error {
		if _, ok := st.Cluster(b.To); !ok {
			return notFound("cluster %q does not exist; GET /v1/clusters lists them", b.To)
		}
		// The route's own cluster, failover aside (StartMigration checks it).
		var match fsm.RouteMatch
		from, match = st.ConfiguredRouteFor(b.Topic)
		if match.Kind == fsm.MatchNone {
			return notFound("topic %q is routed to no cluster (no route, prefix rule or default cluster)", b.Topic)
		}
		if from == b.To {
			return badRequest("topic %q is already on cluster %q", b.Topic, b.To)
		}
		if m, ok := st.Migration(b.Topic); ok && !m.State.Terminal() {
			return fmt.Errorf("%w: topic %q already has a %s migration to %q; finish or abort it first", fsm.ErrConflict, b.Topic, m.State, m.To)
		}
		return nil
	}); err != nil {
		return err
	}
	be, err := n.migrationBackend(from)
	if err != nil {
		return &httpError{http.StatusServiceUnavailable, err.Error()}
	}
	md, err := be.TopicMetadata(r.Context(), b.Topic)
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return notFound("topic %q does not exist on its cluster %q", b.Topic, from)
	}
	if err != nil {
		return &httpError{http.StatusServiceUnavailable, fmt.Sprintf("cannot read topic %q on cluster %q: %v", b.Topic, from, err)}
	}
	cmd := &fsm.StartMigration{Topic: b.Topic, From: from, To: b.To, Partitions: int32(len(md.Partitions)), Started: time.Now().UnixMilli()}
	return n.write(w, r, cmd, http.StatusAccepted, n.migrationAfter(r, b.Topic))
}

func (n *Node) getMigrations(w http.ResponseWriter, r *http.Request) error {
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	out := make([]adminapi.Migration, 0, len(st.Migrations))
	for _, m := range st.Migrations {
		out = append(out, viewMigration(st, m))
	}
	writeJSON(w, http.StatusOK, adminapi.MigrationList{Migrations: out})
	return nil
}

func (n *Node) getMigration(w http.ResponseWriter, r *http.Request) error {
	st, err := n.readState(r)
	if err != nil {
		return err
	}
	topic := r.PathValue("topic")
	m, ok := st.Migration(topic)
	if !ok {
		return notFound("topic %q has no migration; POST /v1/migrations starts one", topic)
	}
	writeJSON(w, http.StatusOK, viewMigration(st, *m))
	return nil
}

// finishMigration retires the source segment once no group is behind it,
// or with ?force=1 whatever the groups.
func (n *Node) finishMigration(w http.ResponseWriter, r *http.Request) error {
	topic := r.PathValue("topic")
	var m *fsm.Migration
	if err := n.recheckRefusal(r.Context(), func(st *fsm.State) error {
		var ok bool
		if m, ok = st.Migration(topic); !ok {
			return notFound("topic %q has no migration", topic)
		}
		if m.State != fsm.MigrationSwitched {
			return fmt.Errorf("%w: the migration of %q is %s; only a switched migration finishes", fsm.ErrConflict, topic, m.State)
		}
		return nil
	}); err != nil {
		return err
	}
	if !queryFlag(r, "force") {
		behind, err := n.groupsBehind(r.Context(), m)
		if err != nil {
			return &httpError{http.StatusServiceUnavailable, fmt.Sprintf("cannot check the groups of %q on %q: %v; retry, or finish with ?force=1", topic, m.To, err)}
		}
		if len(behind) > 0 {
			writeJSON(w, http.StatusConflict, adminapi.MigrationBehind{
				Error: fmt.Sprintf("%d groups of %q are still below the base of some partition and read from %q; finishing leaves their unread records on %q out of reach: wait for them, or finish with ?force=1",
					len(behind), topic, m.From, m.From),
				GroupsBehind: behind,
			})
			return nil
		}
	}
	return n.write(w, r, &fsm.FinishMigration{Topic: topic, At: time.Now().UnixMilli()}, http.StatusOK, n.migrationAfter(r, topic))
}

// abortMigration stops a migration before its switch; after it, the topic
// is on the target and only finish (or migrating back) moves on.
func (n *Node) abortMigration(w http.ResponseWriter, r *http.Request) error {
	topic := r.PathValue("topic")
	var m *fsm.Migration
	if err := n.recheckRefusal(r.Context(), func(st *fsm.State) error {
		var ok bool
		if m, ok = st.Migration(topic); !ok {
			return notFound("topic %q has no migration", topic)
		}
		if m.State != fsm.MigrationRunning {
			return fmt.Errorf("%w: the migration of %q is %s; only a running migration (before its switch) aborts: finish it, or migrate the topic back", fsm.ErrConflict, topic, m.State)
		}
		return nil
	}); err != nil {
		return err
	}
	cmd := &fsm.UpdateMigration{Topic: topic, State: fsm.MigrationAborted, Phase: m.Phase, Error: "aborted by the operator", At: time.Now().UnixMilli()}
	return n.write(w, r, cmd, http.StatusOK, n.migrationAfter(r, topic))
}
