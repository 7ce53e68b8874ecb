package offsetreset

import (
	"testing"
	"time"
)

// TestJumpAnalysis checks the checker the acceptance tests rely on, on
// made-up consumption of one partition whose position was 20 when a reset
// to 10 was POSTed: a jump on the target is found, and a jump elsewhere, a
// skip, a record behind the target, a member left on the old position and
// a re-read are each told apart.
func TestJumpAnalysis(t *testing.T) {
	at := time.Unix(1000, 0)
	recs := func(member int, offsets ...int64) []consumedRec {
		var out []consumedRec
		for i, o := range offsets {
			out = append(out, consumedRec{partition: 0, offset: o, member: member, at: at.Add(time.Duration(i) * time.Millisecond)})
		}
		return out
	}
	cat := func(parts ...[]consumedRec) []consumedRec {
		var out []consumedRec
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	for _, tc := range []struct {
		name                    string
		recs                    []consumedRec
		jumped, wrong, below    bool
		holes, zombies, rereads int
		landed                  int64
	}{
		{name: "on target", recs: recs(0, 20, 21, 10, 11, 12, 13), jumped: true, landed: 10},
		{name: "no jump yet", recs: recs(0, 20, 21, 22)},
		{name: "jump elsewhere", recs: recs(0, 20, 12, 13), jumped: true, wrong: true, landed: 12},
		{name: "skip after the jump", recs: recs(0, 10, 11, 13, 14), jumped: true, landed: 10, holes: 1},
		{name: "behind the target", recs: recs(0, 10, 11, 9), jumped: true, landed: 10, below: true},
		{name: "removed member on the old position", recs: cat(recs(0, 20, 10, 11), recs(1, 21, 22), recs(0, 12)), jumped: true, landed: 10, zombies: 2},
		{name: "re-read after a rebalance", recs: recs(0, 10, 11, 12, 11, 12, 13), jumped: true, landed: 10, rereads: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := analyse(tc.recs, 0, -1, map[int32]int64{0: 20}, map[int32]int64{0: 10}, at)
			if got := !s.jumpAt[0].IsZero(); got != tc.jumped {
				t.Fatalf("jumped %v, want %v (%+v)", got, tc.jumped, s)
			}
			if !tc.jumped {
				return
			}
			holes, _ := s.holes(0, s.maxCover[0]+1)
			if s.landed[0] != tc.landed || (len(s.wrong) > 0) != tc.wrong || (len(s.below) > 0) != tc.below ||
				holes != tc.holes || s.zombies != tc.zombies || s.rereads != tc.rereads {
				t.Errorf("landed %d wrong %v below %v holes %d zombies %d rereads %d; want landed %d wrong %v below %v holes %d zombies %d rereads %d",
					s.landed[0], s.wrong, s.below, holes, s.zombies, s.rereads, tc.landed, tc.wrong, tc.below, tc.holes, tc.zombies, tc.rereads)
			}
		})
	}
	// A group's first segment (no reset) must cover from offset 0.
	s := analyse(recs(0, 1, 2, 3), 0, -1, nil, nil, at)
	if n, first := s.holes(0, 4); n != 1 || first[0] != 0 {
		t.Errorf("first segment from 1: holes %d %v, want offset 0 missing", n, first)
	}
}

// TestOfTopic: a group's records of one topic, and where an index into
// all of them falls among those.
func TestOfTopic(t *testing.T) {
	recs := []consumedRec{{topic: "a", offset: 0}, {topic: "b", offset: 0}, {topic: "a", offset: 1}, {topic: "b", offset: 1}, {topic: "a", offset: 2}}
	got, idx := ofTopic(recs, "a", 3)
	if len(got) != 3 || idx != 2 || got[2].offset != 2 {
		t.Errorf("ofTopic a before 3: %d records, index %d; want 3 and 2", len(got), idx)
	}
	if got, idx := ofTopic(recs, "b", 5); len(got) != 2 || idx != 2 {
		t.Errorf("ofTopic b before 5: %d records, index %d; want 2 and 2", len(got), idx)
	}
}

// TestLockedWriter: a process's output keeps its latest bytes, without
// the lines filtered out.
func TestLockedWriter(t *testing.T) {
	w := &lockedWriter{max: 12, drop: "noise"}
	for _, s := range []string{"first\n", "noise 1\n", "sec", "ond\nnoise 2\n", "third\n"} {
		w.Write([]byte(s))
	}
	if got, want := w.String(), "[7 earlier bytes not kept]\necond\nthird\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
