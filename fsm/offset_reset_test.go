package fsm

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func resetStart(group string, at int64) *StartOffsetReset {
	return &StartOffsetReset{Group: group, Topics: []string{"a", "b"}, To: ResetTo{Kind: ResetToShift, Value: -100},
		Targets: []ResetTarget{{"a", 0, 500, 400}, {"a", 1, 90, 0}, {"b", 0, -1, 0}}, At: at}
}

func TestOffsetResetLifecycle(t *testing.T) {
	f := New(nil)
	applyOK(t, f, resetStart("g", 10))
	if r, _ := f.State().OffsetReset("g"); r.State != ResetPending || r.Holding() || r.RemovedClassic("x") {
		t.Fatalf("started reset %+v, want pending and holding nothing", r)
	}
	// A second reset of the same group waits for the first to end.
	if err := f.State().Check(resetStart("g", 11)); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "pending") {
		t.Fatalf("second start = %v, want a conflict naming the pending one", err)
	}
	// Another group is independent.
	applyOK(t, f, resetStart("h", 11))
	applyOK(t, f, &UpdateOffsetReset{Group: "g", Created: 10, State: ResetFencing, At: 12})
	r, _ := f.State().OffsetReset("g")
	if !r.Holding() || r.Fenced != 12 {
		t.Fatalf("fencing reset %+v, want holding since 12", r)
	}
	members := []ResetMember{{ID: "c-1", Protocol: ProtocolClassic, InstanceID: "i1"}, {ID: "k-1", Protocol: ProtocolConsumer, Epoch: 4}}
	applyOK(t, f, &UpdateOffsetReset{Group: "g", Created: 10, State: ResetFencing, Members: members, At: 13})
	applyOK(t, f, &UpdateOffsetReset{Group: "g", Created: 10, State: ResetApplied, At: 14})
	// Retried: no-op. Moving an ended job: conflict.
	applyOK(t, f, &UpdateOffsetReset{Group: "g", Created: 10, State: ResetApplied, At: 15})
	if err := f.State().Check(&UpdateOffsetReset{Group: "g", Created: 10, State: ResetFailed, At: 16}); !errors.Is(err, ErrConflict) {
		t.Fatalf("failing an applied reset = %v, want conflict", err)
	}
	r, _ = f.State().OffsetReset("g")
	if r.State != ResetApplied || r.Ended != 14 || !r.RemovedClassic("c-1") {
		t.Fatalf("applied reset %+v", r)
	}
	// The next reset of g may start now, and replaces the last.
	applyOK(t, f, resetStart("g", 20))
	if r, _ := f.State().OffsetReset("g"); r.Created != 20 || r.Members != nil || r.RemovedClassic("c-1") {
		t.Fatalf("new reset %+v, want a fresh pending job", r)
	}
	// A pending reset can fail without ever fencing.
	applyOK(t, f, &UpdateOffsetReset{Group: "h", Created: 11, State: ResetFailed, Error: "no such topic", At: 21})
	if r, _ := f.State().OffsetReset("h"); r.State != ResetFailed || r.Error != "no such topic" || r.Fenced != 0 {
		t.Fatalf("failed reset %+v", r)
	}
	if err := f.State().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestOffsetResetRejects(t *testing.T) {
	f := New(nil)
	applyOK(t, f, resetStart("g", 10))
	long := strings.Repeat("x", 1025)
	cases := []struct {
		name string
		cmd  Command
		err  error
		msg  string
	}{
		{"empty group", &StartOffsetReset{Topics: []string{"a"}, To: ResetTo{Kind: ResetToEarliest}, Targets: []ResetTarget{{"a", 0, 0, 0}}, At: 1}, ErrInvalid, "group id"},
		{"long group", &StartOffsetReset{Group: long, Topics: []string{"a"}, To: ResetTo{Kind: ResetToEarliest}, Targets: []ResetTarget{{"a", 0, 0, 0}}, At: 1}, ErrInvalid, "group id"},
		{"no topics", &StartOffsetReset{Group: "x", To: ResetTo{Kind: ResetToEarliest}, Targets: []ResetTarget{{"a", 0, 0, 0}}, At: 1}, ErrInvalid, "0 topics"},
		{"unsorted topics", &StartOffsetReset{Group: "x", Topics: []string{"b", "a"}, To: ResetTo{Kind: ResetToEarliest}, Targets: []ResetTarget{{"a", 0, 0, 0}}, At: 1}, ErrInvalid, "not sorted"},
		{"unknown kind", &StartOffsetReset{Group: "x", Topics: []string{"a"}, To: ResetTo{Kind: "middle"}, Targets: []ResetTarget{{"a", 0, 0, 0}}, At: 1}, ErrInvalid, "unknown reset target"},
		{"earliest with a value", &StartOffsetReset{Group: "x", Topics: []string{"a"}, To: ResetTo{Kind: ResetToEarliest, Value: 3}, Targets: []ResetTarget{{"a", 0, 0, 0}}, At: 1}, ErrInvalid, "takes no value"},
		{"negative offset", &StartOffsetReset{Group: "x", Topics: []string{"a"}, To: ResetTo{Kind: ResetToOffset, Value: -1}, Targets: []ResetTarget{{"a", 0, 0, 0}}, At: 1}, ErrInvalid, "negative"},
		{"no targets", &StartOffsetReset{Group: "x", Topics: []string{"a"}, To: ResetTo{Kind: ResetToLatest}, At: 1}, ErrInvalid, "0 partitions"},
		{"stray target", &StartOffsetReset{Group: "x", Topics: []string{"a"}, To: ResetTo{Kind: ResetToLatest}, Targets: []ResetTarget{{"b", 0, 0, 0}}, At: 1}, ErrInvalid, "not one of its topics"},
		{"negative target", &StartOffsetReset{Group: "x", Topics: []string{"a"}, To: ResetTo{Kind: ResetToLatest}, Targets: []ResetTarget{{"a", 0, 0, -2}}, At: 1}, ErrInvalid, "out of range"},
		{"unsorted targets", &StartOffsetReset{Group: "x", Topics: []string{"a"}, To: ResetTo{Kind: ResetToLatest}, Targets: []ResetTarget{{"a", 1, 0, 0}, {"a", 0, 0, 0}}, At: 1}, ErrInvalid, "not sorted"},
		{"no time", &StartOffsetReset{Group: "x", Topics: []string{"a"}, To: ResetTo{Kind: ResetToLatest}, Targets: []ResetTarget{{"a", 0, 0, 0}}}, ErrInvalid, "unix time"},
		{"update to pending", &UpdateOffsetReset{Group: "g", Created: 10, State: ResetPending, At: 11}, ErrInvalid, "cannot set state"},
		{"update of another job", &UpdateOffsetReset{Group: "g", Created: 9, State: ResetFencing, At: 11}, ErrNotFound, "started 9"},
		{"update of an unknown group", &UpdateOffsetReset{Group: "q", Created: 10, State: ResetFencing, At: 11}, ErrNotFound, `"q"`},
		{"applied before fencing", &UpdateOffsetReset{Group: "g", Created: 10, State: ResetApplied, At: 11}, ErrConflict, "only a fencing reset"},
		{"member without id", &UpdateOffsetReset{Group: "g", Created: 10, State: ResetFencing, Members: []ResetMember{{Protocol: ProtocolClassic}}, At: 11}, ErrInvalid, "member id"},
		{"member protocol", &UpdateOffsetReset{Group: "g", Created: 10, State: ResetFencing, Members: []ResetMember{{ID: "m", Protocol: "share"}}, At: 11}, ErrInvalid, `protocol "share"`},
		{"too many members", &UpdateOffsetReset{Group: "g", Created: 10, State: ResetFencing, Members: make([]ResetMember, MaxResetMembers+1), At: 11}, ErrInvalid, "members, at most"},
	}
	before := f.State()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := f.State().Check(tc.cmd)
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Check = %v, want %v containing %q", err, tc.err, tc.msg)
			}
		})
	}
	if f.State() != before {
		t.Fatal("a refused command changed the state")
	}
}

func TestOffsetResetsBounded(t *testing.T) {
	f := New(nil)
	for i := 0; i < MaxOffsetResets+5; i++ {
		g := fmt.Sprintf("g%05d", i)
		applyOK(t, f, resetStart(g, int64(100+i)))
		if i%2 == 0 || i < 10 {
			applyOK(t, f, &UpdateOffsetReset{Group: g, Created: int64(100 + i), State: ResetFailed, Error: "x", At: int64(100 + i)})
		}
	}
	st := f.State()
	if len(st.OffsetResets) != MaxOffsetResets {
		t.Fatalf("%d jobs kept, want %d", len(st.OffsetResets), MaxOffsetResets)
	}
	// The oldest ended jobs went first; live ones stay.
	if _, ok := st.OffsetReset("g00000"); ok {
		t.Fatal("the oldest ended job was kept")
	}
	if r, ok := st.OffsetReset(fmt.Sprintf("g%05d", MaxOffsetResets+3)); !ok || r.State != ResetPending {
		t.Fatal("a live job was dropped")
	}
	if err := st.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestOffsetResetCommandsAreSet4(t *testing.T) {
	for _, typ := range []CommandType{TypeStartOffsetReset, TypeUpdateOffsetReset} {
		if typ.Introduced() != 4 || CommandSetVersion < 4 {
			t.Fatalf("%s introduced in set %d (build set %d), want 4", typ, typ.Introduced(), CommandSetVersion)
		}
	}
}
