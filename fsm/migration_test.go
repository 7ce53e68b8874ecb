package fsm

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// migrate is the commands that take topic from one cluster to another up to
// the switch: start, fence, switch. at is the first time used; the
// following commands use at+1, at+2.
func migrate(topic, from, to string, at int64, starts, physical []int64, epochBase int32) []Command {
	return []Command{
		&StartMigration{Topic: topic, From: from, To: to, Partitions: int32(len(starts)), Started: at},
		&UpdateMigration{Topic: topic, State: MigrationRunning, Phase: PhaseFence, At: at + 1},
		&SwitchMigration{Topic: topic, Starts: starts, Physical: physical, EpochBase: epochBase, At: at + 2},
	}
}

func mustMigration(t *testing.T, s *State, topic string) Migration {
	t.Helper()
	m, ok := s.Migration(topic)
	if !ok {
		t.Fatalf("no migration of %q", topic)
	}
	return *m
}

// TestMigrationLifecycle drives a topic east → west through every phase,
// finishes, and migrates it back, checking the route, the migration and the
// chain after each step.
func TestMigrationLifecycle(t *testing.T) {
	f := New(nil)
	applyOK(t, f, &PutCluster{Cluster: cluster("east")}, &PutCluster{Cluster: cluster("west")},
		&PutRoute{Topic: "orders", Cluster: "east"})

	applyOK(t, f, &StartMigration{Topic: "orders", From: "east", To: "west", Partitions: 2, Started: 1000})
	if m := mustMigration(t, f.State(), "orders"); m.State != MigrationRunning || m.Phase != PhasePrepare || m.Fenced() {
		t.Fatalf("after start: %+v", m)
	}

	applyOK(t, f, &UpdateMigration{Topic: "orders", State: MigrationRunning, Phase: PhaseFence, At: 1001})
	st := f.State()
	if m := mustMigration(t, st, "orders"); !m.Fenced() {
		t.Fatalf("after fence: %+v, want fenced", m)
	}
	if r, _ := st.RouteFor("orders"); r != "east" || st.Chain("orders") != nil {
		t.Fatalf("fencing moved the route to %q or made a chain", r)
	}

	applyOK(t, f, &SwitchMigration{Topic: "orders", Starts: []int64{500, 0}, Physical: []int64{0, 0}, EpochBase: 12, At: 1002})
	st = f.State()
	m := mustMigration(t, st, "orders")
	if m.State != MigrationSwitched || m.Phase != PhaseCopy || m.Switched != 1002 || m.Fenced() {
		t.Fatalf("after switch: %+v", m)
	}
	if r, _ := st.RouteFor("orders"); r != "west" {
		t.Fatalf("after switch the topic routes to %q, want west", r)
	}
	c := st.Chain("orders")
	if c == nil || len(c.Segments) != 2 || c.Live().Cluster != "west" || c.Previous() == nil || c.Previous().Cluster != "east" {
		t.Fatalf("after switch chain %+v", c)
	}
	if c.Live().Delta(0) != 500 || c.Live().Start(0) != 500 || c.Previous().Delta(0) != 0 || c.Previous().Start(1) != 0 {
		t.Fatalf("after switch offsets: live delta %d start %d, previous delta %d", c.Live().Delta(0), c.Live().Start(0), c.Previous().Delta(0))
	}

	applyOK(t, f, &UpdateMigration{Topic: "orders", State: MigrationSwitched, Phase: PhaseServing, GroupsBehind: []string{"g2", "g1"}, At: 1003})
	if m := mustMigration(t, f.State(), "orders"); m.Phase != PhaseServing || !reflect.DeepEqual(m.GroupsBehind, []string{"g2", "g1"}) {
		t.Fatalf("after serving: %+v", m)
	}
	applyOK(t, f, &UpdateMigration{Topic: "orders", State: MigrationSwitched, Phase: PhaseServing, At: 1004})
	applyOK(t, f, &FinishMigration{Topic: "orders", At: 1005})
	st = f.State()
	m = mustMigration(t, st, "orders")
	if m.State != MigrationFinished || m.Phase != PhaseDone || m.Ended != 1005 || m.GroupsBehind != nil {
		t.Fatalf("after finish: %+v", m)
	}
	c = st.Chain("orders")
	if !c.Segments[0].Retired || c.Previous() != nil || c.Live().Cluster != "west" {
		t.Fatalf("after finish chain %+v", c)
	}
	// Once finished, the route may be named again by hand, to the live
	// segment's cluster only (TestMigrationRejects covers another).
	applyOK(t, f, &PutRoute{Topic: "orders", Cluster: "west"})

	// Back west → east: a third segment, on east again, starting where
	// west's high watermarks are, with a higher epoch base.
	applyOK(t, f, migrate("orders", "west", "east", 2000, []int64{900, 40}, []int64{500, 0}, 30)...)
	st = f.State()
	c = st.Chain("orders")
	if len(c.Segments) != 3 || c.Live().Cluster != "east" || c.Previous() == nil || c.Previous().Cluster != "west" || !c.Segments[0].Retired {
		t.Fatalf("after the way back chain %+v", c)
	}
	// East continues from its own log end (500): virtual 900 is physical 500.
	if d := c.Live().Delta(0); d != 400 {
		t.Fatalf("live delta %d, want 400", d)
	}
	if r, _ := st.RouteFor("orders"); r != "east" {
		t.Fatalf("after the way back the topic routes to %q", r)
	}
	if m := mustMigration(t, st, "orders"); m.From != "west" || m.To != "east" || m.Started != 2000 || m.State != MigrationSwitched {
		t.Fatalf("second migration %+v", m)
	}
	applyOK(t, f, &FinishMigration{Topic: "orders", At: 2003})
	c = f.State().Chain("orders")
	if !c.Segments[0].Retired || !c.Segments[1].Retired || c.Segments[2].Retired || c.Previous() != nil {
		t.Fatalf("after the second finish chain %+v", c)
	}
	if err := f.State().Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestMigrationAbortAndFail: before the switch a migration can end aborted
// or failed, leaving the route and chain as they were, and the topic can
// start a new one.
func TestMigrationAbortAndFail(t *testing.T) {
	for _, end := range []MigrationState{MigrationAborted, MigrationFailed} {
		for _, phase := range []string{PhasePrepare, PhaseFence} {
			t.Run(string(end)+" in "+phase, func(t *testing.T) {
				f := New(nil)
				applyOK(t, f, &PutCluster{Cluster: cluster("east")}, &PutCluster{Cluster: cluster("west")},
					&PutRoute{Topic: "orders", Cluster: "east"},
					&StartMigration{Topic: "orders", From: "east", To: "west", Partitions: 1, Started: 10},
					&UpdateMigration{Topic: "orders", State: MigrationRunning, Phase: phase, At: 11})
				before := f.State()
				applyOK(t, f, &UpdateMigration{Topic: "orders", State: end, Phase: phase, Error: "high watermark did not settle", At: 12})
				st := f.State()
				m := mustMigration(t, st, "orders")
				if m.State != end || m.Ended != 12 || m.Error != "high watermark did not settle" || m.Fenced() || !m.State.Terminal() {
					t.Fatalf("ended migration %+v", m)
				}
				if !reflect.DeepEqual(st.Routes, before.Routes) || st.Chains != nil {
					t.Fatalf("ending a migration changed routes %+v or chains %+v", st.Routes, st.Chains)
				}
				// The route is free again, and a new migration may start.
				if err := st.Check(&PutRoute{Topic: "orders", Cluster: "west"}); err != nil {
					t.Fatalf("route after %s: %v", end, err)
				}
				applyOK(t, f, &StartMigration{Topic: "orders", From: "east", To: "west", Partitions: 1, Started: 20})
				if m := mustMigration(t, f.State(), "orders"); m.State != MigrationRunning || m.Started != 20 || m.Error != "" || m.Ended != 0 {
					t.Fatalf("restarted migration %+v", m)
				}
			})
		}
	}
}

// TestMigrationChainTrimmed: moving a topic back and forth keeps at most
// MaxChainSegments segments, dropping the oldest retired ones; virtual
// offsets keep rising.
func TestMigrationChainTrimmed(t *testing.T) {
	f := New(nil)
	applyOK(t, f, &PutCluster{Cluster: cluster("a")}, &PutCluster{Cluster: cluster("b")},
		&PutRoute{Topic: "t", Cluster: "a"})
	from, to := "a", "b"
	at := int64(100)
	for i := range 2*MaxChainSegments + 3 {
		base := int64(1000 * (i + 1))
		applyOK(t, f, migrate("t", from, to, at, []int64{base}, []int64{int64(i)}, int32(10*(i+1)))...)
		applyOK(t, f, &FinishMigration{Topic: "t", At: at + 3})
		c := f.State().Chain("t")
		if len(c.Segments) > MaxChainSegments {
			t.Fatalf("after migration %d the chain has %d segments, at most %d", i+1, len(c.Segments), MaxChainSegments)
		}
		if want := min(i+2, MaxChainSegments); len(c.Segments) != want {
			t.Fatalf("after migration %d the chain has %d segments, want %d", i+1, len(c.Segments), want)
		}
		if c.Live().Cluster != to || c.Live().Start(0) != base || c.Live().EpochBase != int32(10*(i+1)) {
			t.Fatalf("after migration %d live segment %+v", i+1, *c.Live())
		}
		for j, g := range c.Segments[:len(c.Segments)-1] {
			if !g.Retired {
				t.Fatalf("after migration %d segment %d is not retired: %+v", i+1, j, g)
			}
		}
		for j := 1; j < len(c.Segments); j++ {
			if c.Segments[j].Start(0) <= c.Segments[j-1].Start(0) {
				t.Fatalf("starts do not rise: %+v", c.Segments)
			}
		}
		if err := f.State().Validate(); err != nil {
			t.Fatal(err)
		}
		from, to = to, from
		at += 10
	}
}

// TestMigrationRejects: every invalid or conflicting migration command is
// refused with its sentinel by Check and Apply and changes nothing.
func TestMigrationRejects(t *testing.T) {
	base := []Command{
		&PutCluster{Cluster: cluster("c1")}, &PutCluster{Cluster: cluster("c2")}, &PutCluster{Cluster: cluster("c3")},
		&PutRoute{Topic: "t", Cluster: "c1"},
	}
	with := func(cmds ...Command) []Command { return append(slices.Clone(base), cmds...) }
	started := with(&StartMigration{Topic: "t", From: "c1", To: "c2", Partitions: 2, Started: 10})
	fenced := append(slices.Clone(started), &UpdateMigration{Topic: "t", State: MigrationRunning, Phase: PhaseFence, At: 11})
	switched := append(slices.Clone(fenced), &SwitchMigration{Topic: "t", Starts: []int64{5, 6}, Physical: []int64{0, 0}, EpochBase: 3, At: 12})
	finished := append(slices.Clone(switched), &FinishMigration{Topic: "t", At: 13})
	// Back to c1, fenced: the live segment on c2 starts at 5 and 6, epoch base 3.
	backFenced := append(slices.Clone(finished),
		&StartMigration{Topic: "t", From: "c2", To: "c1", Partitions: 2, Started: 20},
		&UpdateMigration{Topic: "t", State: MigrationRunning, Phase: PhaseFence, At: 21})
	aborted := append(slices.Clone(started), &UpdateMigration{Topic: "t", State: MigrationAborted, Phase: PhasePrepare, At: 11})
	// c3 is used only by a running migration's target.
	toC3 := with(&StartMigration{Topic: "t", From: "c1", To: "c3", Partitions: 1, Started: 10})

	cases := []struct {
		name  string
		setup []Command
		cmd   Command
		err   error
		msg   string
	}{
		// Stateless.
		{"start from = to", base, &StartMigration{Topic: "t", From: "c1", To: "c1", Partitions: 1, Started: 1}, ErrInvalid, "already on cluster"},
		{"start no partitions", base, &StartMigration{Topic: "t", From: "c1", To: "c2", Started: 1}, ErrInvalid, "0 partitions"},
		{"start too many partitions", base, &StartMigration{Topic: "t", From: "c1", To: "c2", Partitions: MaxMigrationPartitions + 1, Started: 1}, ErrInvalid, "partitions"},
		{"start no time", base, &StartMigration{Topic: "t", From: "c1", To: "c2", Partitions: 1}, ErrInvalid, "started 0"},
		{"start bad topic", base, &StartMigration{Topic: "a b", From: "c1", To: "c2", Partitions: 1, Started: 1}, ErrInvalid, "migration topic"},
		{"start no target", base, &StartMigration{Topic: "t", From: "c1", Partitions: 1, Started: 1}, ErrInvalid, "target cluster"},
		{"update unknown state", started, &UpdateMigration{Topic: "t", State: MigrationFinished, Phase: PhaseDone, At: 1}, ErrInvalid, `cannot set state "finished"`},
		{"update unknown phase", started, &UpdateMigration{Topic: "t", State: MigrationRunning, Phase: "drain", At: 1}, ErrInvalid, `unknown phase "drain"`},
		{"update no time", started, &UpdateMigration{Topic: "t", State: MigrationRunning, Phase: PhaseFence}, ErrInvalid, "time 0"},
		{"update too many groups", switched, &UpdateMigration{Topic: "t", State: MigrationSwitched, Phase: PhaseServing, GroupsBehind: make([]string, maxGroupsBehind+1), At: 1}, ErrInvalid, "groups behind"},
		{"update empty group", switched, &UpdateMigration{Topic: "t", State: MigrationSwitched, Phase: PhaseServing, GroupsBehind: []string{""}, At: 1}, ErrInvalid, "group id of 0 bytes"},
		{"switch uneven offsets", fenced, &SwitchMigration{Topic: "t", Starts: []int64{1, 2}, Physical: []int64{0}, EpochBase: 1, At: 1}, ErrInvalid, "2 starts and 1 physical"},
		{"switch negative offset", fenced, &SwitchMigration{Topic: "t", Starts: []int64{1, -2}, Physical: []int64{0, 0}, EpochBase: 1, At: 1}, ErrInvalid, "partition 1 has a negative offset"},
		{"switch negative epoch base", fenced, &SwitchMigration{Topic: "t", Starts: []int64{1, 2}, Physical: []int64{0, 0}, EpochBase: -1, At: 1}, ErrInvalid, "negative epoch base"},
		{"finish no time", switched, &FinishMigration{Topic: "t"}, ErrInvalid, "time 0"},

		// Against the state.
		{"start unknown target", base, &StartMigration{Topic: "t", From: "c1", To: "nope", Partitions: 1, Started: 1}, ErrUnknownCluster, `"nope"`},
		{"start unknown source", base, &StartMigration{Topic: "t", From: "nope", To: "c2", Partitions: 1, Started: 1}, ErrUnknownCluster, `"nope"`},
		{"start from a cluster the topic is not on", base, &StartMigration{Topic: "t", From: "c3", To: "c2", Partitions: 1, Started: 1}, ErrConflict, `routes to cluster "c1", not "c3"`},
		{"start while running", started, &StartMigration{Topic: "t", From: "c1", To: "c3", Partitions: 2, Started: 30}, ErrConflict, "already has a running migration"},
		{"start while fenced", fenced, &StartMigration{Topic: "t", From: "c1", To: "c2", Partitions: 2, Started: 10}, ErrConflict, "already has a running migration"},
		{"start while switched", switched, &StartMigration{Topic: "t", From: "c2", To: "c1", Partitions: 2, Started: 30}, ErrConflict, "already has a switched migration"},
		{"start back from the old source after finish", finished, &StartMigration{Topic: "t", From: "c1", To: "c3", Partitions: 2, Started: 30}, ErrConflict, `routes to cluster "c2"`},
		{"update unknown migration", base, &UpdateMigration{Topic: "t", State: MigrationRunning, Phase: PhaseFence, At: 1}, ErrNotFound, `"t"`},
		{"update a finished migration", finished, &UpdateMigration{Topic: "t", State: MigrationSwitched, Phase: PhaseServing, At: 30}, ErrConflict, "already finished"},
		{"update an aborted migration", aborted, &UpdateMigration{Topic: "t", State: MigrationRunning, Phase: PhaseFence, At: 30}, ErrConflict, "already aborted"},
		{"running to copy", fenced, &UpdateMigration{Topic: "t", State: MigrationRunning, Phase: PhaseCopy, At: 30}, ErrConflict, "cannot go to running/copy"},
		{"switched by an update", fenced, &UpdateMigration{Topic: "t", State: MigrationSwitched, Phase: PhaseCopy, At: 30}, ErrConflict, "cannot go to switched/copy"},
		{"switched back to fence", switched, &UpdateMigration{Topic: "t", State: MigrationRunning, Phase: PhaseFence, At: 30}, ErrConflict, "cannot go to running/fence"},
		{"abort after switch", switched, &UpdateMigration{Topic: "t", State: MigrationAborted, Phase: PhaseCopy, At: 30}, ErrConflict, "finish it, or migrate the topic back"},
		{"fail after switch", switched, &UpdateMigration{Topic: "t", State: MigrationFailed, Phase: PhaseCopy, Error: "x", At: 30}, ErrConflict, "clients already use"},
		{"switch unknown migration", base, &SwitchMigration{Topic: "t", Starts: []int64{1}, Physical: []int64{0}, EpochBase: 1, At: 1}, ErrNotFound, `"t"`},
		{"switch in prepare", started, &SwitchMigration{Topic: "t", Starts: []int64{1, 2}, Physical: []int64{0, 0}, EpochBase: 1, At: 30}, ErrConflict, "only a fenced migration switches"},
		{"switch an aborted migration", aborted, &SwitchMigration{Topic: "t", Starts: []int64{1, 2}, Physical: []int64{0, 0}, EpochBase: 1, At: 30}, ErrConflict, "only a fenced migration switches"},
		{"switch twice at another time", switched, &SwitchMigration{Topic: "t", Starts: []int64{5, 6}, Physical: []int64{0, 0}, EpochBase: 3, At: 99}, ErrConflict, "only a fenced migration switches"},
		{"switch wrong partition count", fenced, &SwitchMigration{Topic: "t", Starts: []int64{1, 2, 3}, Physical: []int64{0, 0, 0}, EpochBase: 1, At: 30}, ErrInvalid, "names 3 partitions, the migration has 2"},
		{"switch back with epoch base not rising", backFenced, &SwitchMigration{Topic: "t", Starts: []int64{5, 6}, Physical: []int64{0, 0}, EpochBase: 3, At: 30}, ErrInvalid, "epoch base 3 does not rise above 3"},
		{"switch back starting before the live start", backFenced, &SwitchMigration{Topic: "t", Starts: []int64{5, 4}, Physical: []int64{0, 0}, EpochBase: 9, At: 30}, ErrInvalid, "partition 1 starts at 4, before the live segment's start 6"},
		{"finish unknown migration", base, &FinishMigration{Topic: "t", At: 1}, ErrNotFound, `"t"`},
		{"finish a running migration", fenced, &FinishMigration{Topic: "t", At: 30}, ErrConflict, "only a switched migration finishes"},
		{"finish twice at another time", finished, &FinishMigration{Topic: "t", At: 99}, ErrConflict, "is finished"},
		{"finish an aborted migration", aborted, &FinishMigration{Topic: "t", At: 30}, ErrConflict, "is aborted"},

		// Routes and clusters a migration holds.
		{"put route while running", started, &PutRoute{Topic: "t", Cluster: "c2"}, ErrConflict, "its route moves with the migration"},
		{"put same route while running", fenced, &PutRoute{Topic: "t", Cluster: "c1"}, ErrConflict, "its route moves with the migration"},
		{"delete route while running", fenced, &DeleteRoute{Topic: "t"}, ErrConflict, "its route moves with the migration"},
		{"put route while switched", switched, &PutRoute{Topic: "t", Cluster: "c1"}, ErrConflict, "switched migration"},
		{"put route of a migrated topic", finished, &PutRoute{Topic: "t", Cluster: "c3"}, ErrConflict, "offsets are virtual"},
		{"delete route of a migrated topic", finished, &DeleteRoute{Topic: "t"}, ErrConflict, "offsets are virtual"},
		{"delete a running migration's target", toC3, &DeleteCluster{Name: "c3"}, ErrInUse, `the migration of topic "t"`},
		{"delete a switched migration's source", switched, &DeleteCluster{Name: "c1"}, ErrInUse, `the migration of topic "t"`},
		{"delete the live segment's cluster", finished, &DeleteCluster{Name: "c2"}, ErrInUse, `topic "t"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			f := New(func(*State) { calls++ })
			applyOK(t, f, tc.setup...)
			calls = 0
			before := f.State()
			beforeJSON := stateJSON(t, before)
			if err := before.Check(tc.cmd); !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Check = %v, want %v containing %q", err, tc.err, tc.msg)
			}
			res := applyLog(t, f, before.Index+1, tc.cmd)
			if err, ok := res.(error); !ok || !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Apply = %v, want %v containing %q", res, tc.err, tc.msg)
			}
			if f.State() != before || stateJSON(t, before) != beforeJSON || calls != 0 {
				t.Fatal("a rejected command changed the state")
			}
		})
	}
}

// TestMigrationSegmentHoldsCluster: a cluster a chain's unretired segment
// is on cannot be deleted even with no route or migration naming it; a
// retired segment does not hold its cluster.
func TestMigrationSegmentHoldsCluster(t *testing.T) {
	st := &State{
		Clusters: []Cluster{cluster("a"), cluster("b"), cluster("c")},
		Chains: []TopicChain{{Topic: "t", Segments: []Segment{
			{Cluster: "a", Retired: true},
			{Cluster: "b", Starts: []int64{1}, Physical: []int64{0}},
			{Cluster: "c", EpochBase: 2, Starts: []int64{5}, Physical: []int64{0}},
		}}},
	}
	for _, name := range []string{"b", "c"} {
		if err := st.Check(&DeleteCluster{Name: name}); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), `segment of migrated topic "t"`) {
			t.Errorf("delete %s: %v, want ErrInUse naming the segment", name, err)
		}
	}
	if err := st.Check(&DeleteCluster{Name: "a"}); err != nil {
		t.Errorf("delete the retired segment's cluster: %v", err)
	}
}

// TestMigrationRetriesAreNoOps: a proposal applied twice (its reply was
// lost and the driver proposed it again) changes nothing the second time.
func TestMigrationRetriesAreNoOps(t *testing.T) {
	setup := []Command{&PutCluster{Cluster: cluster("c1")}, &PutCluster{Cluster: cluster("c2")}, &PutRoute{Topic: "t", Cluster: "c1"}}
	steps := []Command{
		&StartMigration{Topic: "t", From: "c1", To: "c2", Partitions: 2, Started: 10},
		&UpdateMigration{Topic: "t", State: MigrationRunning, Phase: PhaseFence, At: 11},
		&SwitchMigration{Topic: "t", Starts: []int64{3, 4}, Physical: []int64{0, 1}, EpochBase: 2, At: 12},
		&UpdateMigration{Topic: "t", State: MigrationSwitched, Phase: PhaseServing, GroupsBehind: []string{"g"}, At: 13},
		&FinishMigration{Topic: "t", At: 14},
	}
	f := New(nil)
	applyOK(t, f, setup...)
	for _, cmd := range steps {
		applyOK(t, f, cmd)
		once := *f.State()
		applyOK(t, f, cmd)
		twice := *f.State()
		once.Index, twice.Index = 0, 0
		if !reflect.DeepEqual(once, twice) {
			t.Fatalf("%s applied twice:\n%+v\nonce:\n%+v", cmd.Type(), twice, once)
		}
	}
	// The chain got one target segment, not two.
	if c := f.State().Chain("t"); len(c.Segments) != 2 {
		t.Fatalf("chain %+v, want 2 segments", c)
	}
	// A start retried after the migration moved on is no longer a retry.
	f = New(nil)
	applyOK(t, f, setup...)
	applyOK(t, f, steps[:2]...)
	if err := f.State().Check(steps[0]); !errors.Is(err, ErrConflict) {
		t.Fatalf("start retried after the fence: %v, want ErrConflict", err)
	}
}

func TestSegmentHelpers(t *testing.T) {
	g := Segment{Cluster: "w", EpochBase: 4, Starts: []int64{100, 7}, Physical: []int64{10, 7}}
	for _, tc := range []struct {
		p            int32
		delta, start int64
	}{{0, 90, 100}, {1, 0, 7}, {2, 0, 0}, {-1, 0, 0}} {
		if d, s := g.Delta(tc.p), g.Start(tc.p); d != tc.delta || s != tc.start {
			t.Errorf("partition %d: delta %d start %d, want %d %d", tc.p, d, s, tc.delta, tc.start)
		}
	}
	var src Segment
	if src.Delta(0) != 0 || src.Start(3) != 0 {
		t.Error("the first segment of a chain is not the identity")
	}

	c := TopicChain{Topic: "t", Segments: []Segment{{Cluster: "e"}}}
	if c.Live().Cluster != "e" || c.Previous() != nil {
		t.Fatalf("one segment: live %q previous %v", c.Live().Cluster, c.Previous())
	}
	c.Segments = append(c.Segments, g)
	if c.Live().Cluster != "w" || c.Previous() == nil || c.Previous().Cluster != "e" {
		t.Fatal("two segments: wrong live or previous")
	}
	c.Segments[0].Retired = true
	if c.Previous() != nil {
		t.Fatal("a retired segment is still previous")
	}

	for st, terminal := range map[MigrationState]bool{MigrationRunning: false, MigrationSwitched: false,
		MigrationFinished: true, MigrationAborted: true, MigrationFailed: true} {
		if st.Terminal() != terminal {
			t.Errorf("%s.Terminal() = %v", st, !terminal)
		}
	}
	for _, m := range []Migration{
		{State: MigrationRunning, Phase: PhasePrepare},
		{State: MigrationSwitched, Phase: PhaseCopy},
		{State: MigrationAborted, Phase: PhaseFence},
	} {
		if m.Fenced() {
			t.Errorf("%s/%s is fenced", m.State, m.Phase)
		}
	}
	if m := (Migration{State: MigrationRunning, Phase: PhaseFence}); !m.Fenced() {
		t.Error("running/fence is not fenced")
	}

	s := &State{}
	if _, ok := s.Migration("t"); ok || s.Chain("t") != nil {
		t.Fatal("an empty state has a migration or chain")
	}
	s = &State{
		Migrations: []Migration{{Topic: "a"}, {Topic: "c"}},
		Chains:     []TopicChain{{Topic: "b"}, {Topic: "d"}},
	}
	for _, topic := range []string{"a", "c"} {
		if m, ok := s.Migration(topic); !ok || m.Topic != topic {
			t.Errorf("Migration(%q) = %v %v", topic, m, ok)
		}
	}
	if _, ok := s.Migration("b"); ok {
		t.Error("Migration(b) found one")
	}
	if c := s.Chain("d"); c == nil || c.Topic != "d" {
		t.Errorf("Chain(d) = %v", c)
	}
	if s.Chain("a") != nil {
		t.Error("Chain(a) found one")
	}
}

// TestMigrationCommandsAreSet3: the migration commands are gated on
// command set 3, so a leader never proposes them while an older peer runs.
func TestMigrationCommandsAreSet3(t *testing.T) {
	if CommandSetVersion < 3 {
		t.Fatalf("CommandSetVersion %d, want at least 3", CommandSetVersion)
	}
	for _, ct := range []CommandType{TypeStartMigration, TypeUpdateMigration, TypeSwitchMigration, TypeFinishMigration} {
		if got := ct.Introduced(); got != 3 {
			t.Errorf("%s introduced in set %d, want 3", ct, got)
		}
	}
	for _, ct := range []CommandType{TypeDeleteRoute, TypeSetClusterID} {
		if got := ct.Introduced(); got != 1 {
			t.Errorf("%s introduced in set %d, want 1", ct, got)
		}
	}
	if got := fmt.Sprint(TypeSwitchMigration); got != "SwitchMigration" {
		t.Errorf("type 21 prints %q", got)
	}
}

// TestMigrationPinsItsTopic: a topic routed by the default cluster (or a
// prefix) gets an exact route to its source when its migration starts, so
// changing the default or a prefix rule during the migration cannot move
// it before the switch.
func TestMigrationPinsItsTopic(t *testing.T) {
	f := New(nil)
	applyOK(t, f, &PutCluster{Cluster: cluster("east")}, &PutCluster{Cluster: cluster("west")},
		&SetDefaultCluster{Cluster: "east"},
		&StartMigration{Topic: "orders", From: "east", To: "west", Partitions: 1, Started: 10})
	applyOK(t, f, &SetDefaultCluster{Cluster: "west"}, &PutPrefixRoute{Prefix: "ord", Cluster: "west"})
	if c, m := f.State().RouteFor("orders"); c != "east" || m.Kind != MatchExact {
		t.Fatalf("orders routes to %s (%s) during its migration, want east by its exact route", c, m)
	}
	if err := f.State().Check(&DeleteRoute{Topic: "orders"}); err == nil {
		t.Fatal("the pinned route was deletable during the migration")
	}
}
