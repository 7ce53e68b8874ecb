package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func claim(cluster string, vpid int64, vepoch int16, real int64, at int64) *ClaimProducerID {
	return &ClaimProducerID{ClaimedProducerID{Cluster: cluster, VirtualID: vpid, VirtualEpoch: vepoch, RealID: real, RealEpoch: 1, At: at}}
}

// claimHeld applies c and answers the claim Apply says holds its key.
func claimHeld(t *testing.T, f *FSM, c *ClaimProducerID) ClaimedProducerID {
	t.Helper()
	idx := f.State().Index + 1
	res := applyLog(t, f, idx, c)
	a, ok := res.(Applied)
	if !ok {
		t.Fatalf("claim %+v: Apply = %v", c.ClaimedProducerID, res)
	}
	if a.Index != idx || f.State().Index != idx {
		t.Fatalf("claim at index %d: answered %d, state at %d", idx, a.Index, f.State().Index)
	}
	if a.ProducerID == nil {
		t.Fatalf("claim %+v: Applied has no producer id", c.ClaimedProducerID)
	}
	return *a.ProducerID
}

// realOf is the real id the table holds for a key, -1 for none.
func realOf(f *FSM, cluster string, vpid int64, vepoch int16) int64 {
	c, ok := f.ProducerID(cluster, vpid, vepoch)
	if !ok {
		return -1
	}
	return c.RealID
}

// TestClaimProducerIDFirstWins: the first claim of a key holds; a later
// one is answered the first, and changes nothing; another epoch or cluster
// is another key.
func TestClaimProducerIDFirstWins(t *testing.T) {
	f := New(nil)
	first := claim("east", 1<<40|1, 0, 100, 1000)
	if got := claimHeld(t, f, first); got != first.ClaimedProducerID {
		t.Fatalf("first claim answered %+v", got)
	}
	if got := claimHeld(t, f, claim("east", 1<<40|1, 0, 200, 1001)); got != first.ClaimedProducerID {
		t.Fatalf("second claim of the key answered %+v, want the first %+v", got, first.ClaimedProducerID)
	}
	if got := claimHeld(t, f, claim("east", 1<<40|1, 1, 300, 1002)); got.RealID != 300 {
		t.Fatalf("another epoch answered %+v", got)
	}
	if got := claimHeld(t, f, claim("west", 1<<40|1, 0, 400, 1003)); got.RealID != 400 {
		t.Fatalf("another cluster answered %+v", got)
	}
	for _, tc := range []struct {
		cluster string
		vepoch  int16
		want    int64
	}{{"east", 0, 100}, {"east", 1, 300}, {"west", 0, 400}, {"north", 0, -1}, {"east", 2, -1}} {
		if got := realOf(f, tc.cluster, 1<<40|1, tc.vepoch); got != tc.want {
			t.Errorf("%s epoch %d holds real id %d, want %d", tc.cluster, tc.vepoch, got, tc.want)
		}
	}
	if n := f.ProducerIDs(); n != 3 {
		t.Fatalf("%d claims, want 3", n)
	}
}

// TestClaimProducerIDExpiry: a claim older than a day, by the time of the
// claim being applied, is dropped, oldest first and at most
// producerIDExpireScan per apply; a claim applied earlier is the one
// dropped even when its time is later (log order decides, so every peer
// drops the same ones).
func TestClaimProducerIDExpiry(t *testing.T) {
	f := New(nil)
	claimHeld(t, f, claim("c", 1, 0, 1, 1000))
	claimHeld(t, f, claim("c", 2, 0, 2, 5000))
	claimHeld(t, f, claim("c", 3, 0, 3, 2000))
	// One ms short of expiring the first.
	claimHeld(t, f, claim("c", 4, 0, 4, 1000+ProducerIDClaimTTL))
	if got := realOf(f, "c", 1, 0); got != 1 {
		t.Fatalf("a claim exactly a day old was dropped (holds %d)", got)
	}
	claimHeld(t, f, claim("c", 5, 0, 5, 4000+ProducerIDClaimTTL))
	if got := realOf(f, "c", 1, 0); got != -1 {
		t.Fatal("a claim more than a day old is still held")
	}
	// The second (5000) is not expired and stops the scan, so the third
	// (2000) stays behind it until the second goes.
	if realOf(f, "c", 2, 0) != 2 || realOf(f, "c", 3, 0) != 3 {
		t.Fatal("claims not expired were dropped")
	}
	claimHeld(t, f, claim("c", 6, 0, 6, 5001+ProducerIDClaimTTL))
	if realOf(f, "c", 2, 0) != -1 || realOf(f, "c", 3, 0) != -1 || realOf(f, "c", 4, 0) != 4 {
		t.Fatalf("after the second expired: %v", f.pids.list())
	}
	// An expired key claimed again takes the new claim.
	if got := claimHeld(t, f, claim("c", 1, 0, 11, 6000+ProducerIDClaimTTL)); got.RealID != 11 {
		t.Fatalf("an expired key claimed again answered %+v", got)
	}

	// One apply drops at most producerIDExpireScan claims.
	g := New(nil)
	n := producerIDExpireScan + 10
	for i := range n {
		claimHeld(t, g, claim("c", int64(i), 0, int64(i), 1))
	}
	claimHeld(t, g, claim("c", 1<<40, 0, 1, 2+ProducerIDClaimTTL))
	if got := g.ProducerIDs(); got != 11 {
		t.Fatalf("%d claims after one apply past their expiry, want 10 left and the new one", got)
	}
	claimHeld(t, g, claim("c", 1<<40+1, 0, 1, 2+ProducerIDClaimTTL))
	if got := g.ProducerIDs(); got != 2 {
		t.Fatalf("%d claims after a second apply, want the two new ones", got)
	}
}

// TestClaimProducerIDBound: past the bound, the oldest claim goes.
func TestClaimProducerIDBound(t *testing.T) {
	f := New(nil)
	f.pids.max = 3
	for i := range 5 {
		claimHeld(t, f, claim("c", int64(i), 0, int64(100+i), 10))
	}
	var held []int64
	for _, c := range f.pids.list() {
		held = append(held, c.VirtualID)
	}
	if !reflect.DeepEqual(held, []int64{2, 3, 4}) {
		t.Fatalf("held %v, want the newest three", held)
	}
	// A dropped key is free again; a held one still answers its claim.
	if got := claimHeld(t, f, claim("c", 0, 0, 7, 11)); got.RealID != 7 {
		t.Fatalf("dropped key claimed again answered %+v", got)
	}
	if got := claimHeld(t, f, claim("c", 4, 0, 8, 11)); got.RealID != 104 {
		t.Fatalf("held key answered %+v", got)
	}
	if f.ProducerIDs() != 3 || realOf(f, "c", 2, 0) != -1 {
		t.Fatalf("after the claim past the bound: %v", f.pids.list())
	}
	// The order list is compacted as claims go and still matches the map.
	g := New(nil)
	g.pids.max = 10
	for i := range 5000 {
		claimHeld(t, g, claim("c", int64(i), 0, 1, 10))
	}
	if len(g.pids.order)-g.pids.head != 10 || len(g.pids.order) > 2100 {
		t.Fatalf("order list of %d from %d for %d claims", len(g.pids.order), g.pids.head, g.ProducerIDs())
	}
	if l := g.pids.list(); len(l) != 10 || l[0].VirtualID != 4990 {
		t.Fatalf("list %v", l)
	}
}

// TestClaimProducerIDInvalid: bad claims are refused, change nothing and
// never reach the table.
func TestClaimProducerIDInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    ClaimedProducerID
		msg  string
	}{
		{"no cluster", ClaimedProducerID{VirtualID: 1, RealID: 1, At: 1}, "empty name"},
		{"bad cluster", ClaimedProducerID{Cluster: "a/b", VirtualID: 1, RealID: 1, At: 1}, "producer id claim cluster"},
		{"long cluster", ClaimedProducerID{Cluster: strings.Repeat("c", 300), VirtualID: 1, RealID: 1, At: 1}, "bytes"},
		{"negative virtual id", ClaimedProducerID{Cluster: "c", VirtualID: -1, RealID: 1, At: 1}, "virtual producer id -1"},
		{"negative virtual epoch", ClaimedProducerID{Cluster: "c", VirtualID: 1, VirtualEpoch: -1, RealID: 1, At: 1}, "epoch -1"},
		{"negative real id", ClaimedProducerID{Cluster: "c", VirtualID: 1, RealID: -1, At: 1}, "real producer id -1"},
		{"negative real epoch", ClaimedProducerID{Cluster: "c", VirtualID: 1, RealID: 1, RealEpoch: -1, At: 1}, "epoch -1"},
		{"no time", ClaimedProducerID{Cluster: "c", VirtualID: 1, RealID: 1}, "time 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := New(nil)
			before := f.State()
			res := applyLog(t, f, 1, &ClaimProducerID{tc.c})
			err, ok := res.(error)
			if !ok || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Apply = %v, want ErrInvalid containing %q", res, tc.msg)
			}
			if f.State() != before || f.ProducerIDs() != 0 {
				t.Fatal("a refused claim changed the FSM")
			}
		})
	}
}

// TestClaimProducerIDSnapshot: the table persists with the State, restores
// into a new FSM in the same order (so both drop the same claims next), a
// snapshot holds the table as it was when taken, and a snapshot from
// before the table (format 7) restores an empty one.
func TestClaimProducerIDSnapshot(t *testing.T) {
	src := New(nil)
	src.pids.max = 5
	applyOK(t, src, fullLog()...)
	for i := range 3 {
		claimHeld(t, src, claim("c", int64(i), int16(i), int64(50+i), int64(100-i)))
	}
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	want := src.pids.list()
	claimHeld(t, src, claim("c", 9, 0, 9, 200)) // after the snapshot was taken
	sink := &bufferSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sink.String(), `{"section":"producer_ids","data":[{"cluster":"east","virtual_id":1099511627783,"virtual_epoch":2,"real_id":4001,"real_epoch":0,"at":1700000007000},`) {
		t.Fatalf("snapshot section:\n%s", sink.String())
	}

	dst := New(nil)
	dst.pids.max = 5
	applyOK(t, dst, claim("other", 1, 0, 1, 1))
	if err := restore(dst, sink.Bytes()); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := dst.pids.list(); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored table\n%v\nwant\n%v", got, want)
	}
	if realOf(dst, "other", 1, 0) != -1 || realOf(dst, "c", 2, 2) != 52 {
		t.Fatal("the restored table is not the snapshot's")
	}
	if b := persist(t, dst); !bytes.Equal(b, sink.Bytes()) {
		t.Fatalf("re-persisted snapshot differs:\n%s\n%s", b, sink.Bytes())
	}
	// The restored FSM and one that applied the log go on alike: the same
	// claims are dropped past the bound.
	ref := New(nil)
	ref.pids.max = 5
	if err := restore(ref, sink.Bytes()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*FSM{dst, ref} {
		claimHeld(t, f, claim("c", 20, 0, 20, 300))
		claimHeld(t, f, claim("c", 21, 0, 21, 300))
	}
	if !reflect.DeepEqual(dst.pids.list(), ref.pids.list()) || realOf(dst, "east", 1<<40|7, 2) != -1 || realOf(dst, "c", 0, 0) != 50 {
		t.Fatalf("after the bound: %v", dst.pids.list())
	}

	// Format 7: the same sections but producer_ids.
	lines := strings.Split(strings.TrimSuffix(sink.String(), "\n"), "\n")
	v7 := strings.Replace(lines[0], fmt.Sprintf(`"version":%d`, snapshotVersion), `"version":7`, 1)
	old := strings.Join(append([]string{v7}, lines[1:len(lines)-1]...), "\n") + "\n"
	if err := restore(dst, []byte(old)); err != nil {
		t.Fatalf("version 7 snapshot: %v", err)
	}
	if dst.ProducerIDs() != 0 || len(dst.State().Clusters) == 0 {
		t.Fatalf("version 7 snapshot restored %d claims, %d clusters", dst.ProducerIDs(), len(dst.State().Clusters))
	}
	// WriteSnapshot (consistent reads) carries the State only; a backup
	// (WriteBackup) the table too, which ReadSnapshotWithClaims answers.
	if secs := sectionLines(t, snapshotBytes(t, src.State())); secs["producer_ids"] != "[]" {
		t.Fatalf("WriteSnapshot wrote producer ids %s", secs["producer_ids"])
	}
	var backup bytes.Buffer
	if err := src.WriteBackup(&backup, src.State()); err != nil {
		t.Fatal(err)
	}
	st, claims, err := ReadSnapshotWithClaims(&backup)
	if err != nil || st.Index != src.State().Index || !reflect.DeepEqual(claims, src.pids.list()) || len(claims) == 0 {
		t.Fatalf("backup read back: index %v, claims %v (want %v), err %v", st, claims, src.pids.list(), err)
	}
}

// TestClaimProducerIDVersionGate: the command needs command set 7, so the
// leader refuses it while a peer of an older build remains.
func TestClaimProducerIDVersionGate(t *testing.T) {
	c := claim("c", 1, 0, 1, 1)
	if got := TypeClaimProducerID.Introduced(); got != 7 || Needs(c) != 7 || CommandSetVersion < 7 {
		t.Fatalf("Introduced %d, Needs %d, CommandSetVersion %d; want 7, 7, >= 7", got, Needs(c), CommandSetVersion)
	}
	b := mustEncode(t, c)
	if b[0] != 32 || b[1] != 1 || string(b[2:]) != `{"cluster":"c","virtual_id":1,"virtual_epoch":0,"real_id":1,"real_epoch":1,"at":1}` {
		t.Fatalf("encoded %q", b)
	}
}

// TestClaimProducerIDRefresh: a claim naming the real id and epoch the
// table holds, at a later time, refreshes the entry, so a producer still
// in use outlives the day; one naming another real id, or an earlier
// time, changes nothing. The refreshed entry expires a day after its last
// refresh, behind entries claimed after it, and a table restored from a
// snapshot (no stale slots) drops the same entries as the one that
// applied the log.
func TestClaimProducerIDRefresh(t *testing.T) {
	day := ProducerIDClaimTTL
	f := New(nil)
	claimHeld(t, f, claim("c", 2, 0, 200, 1000))
	claimHeld(t, f, claim("c", 1, 0, 100, 2000))
	// Another real id does not refresh; an earlier time does not either.
	if got := claimHeld(t, f, claim("c", 1, 0, 999, 3000)); got.RealID != 100 || got.At != 2000 {
		t.Fatalf("a claim of another real id answered %+v", got)
	}
	if got := claimHeld(t, f, claim("c", 1, 0, 100, 500)); got.At != 2000 {
		t.Fatalf("an earlier claim moved the time to %d", got.At)
	}
	// The same real id later: refreshed.
	if got := claimHeld(t, f, claim("c", 1, 0, 100, 2000+day/2)); got.RealID != 100 || got.At != 2000+day/2 {
		t.Fatalf("a refresh answered %+v", got)
	}
	claimHeld(t, f, claim("c", 3, 0, 300, 3000+day/2))

	// A snapshot of this table restores into another FSM; both go on alike.
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &bufferSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	g := New(nil)
	if err := restore(g, sink.Bytes()); err != nil {
		t.Fatal(err)
	}
	if len(f.pids.order)-f.pids.head == len(g.pids.order)-g.pids.head {
		t.Fatal("the refresh left no stale slot: the test does not compare what it means to")
	}
	for _, x := range []*FSM{f, g} {
		// A day after 1000 and 2000: the second key (never refreshed)
		// goes, the first (refreshed at 2000+day/2) stays.
		claimHeld(t, x, claim("c", 4, 0, 400, 2001+day))
		if realOf(x, "c", 2, 0) != -1 || realOf(x, "c", 1, 0) != 100 || realOf(x, "c", 3, 0) != 300 {
			t.Fatalf("after a day: %v", x.pids.list())
		}
		// A day after the refresh: the first goes too, the third stays.
		claimHeld(t, x, claim("c", 5, 0, 500, 2001+day+day/2))
		if realOf(x, "c", 1, 0) != -1 || realOf(x, "c", 3, 0) != 300 {
			t.Fatalf("a day after the refresh: %v", x.pids.list())
		}
	}
	if !reflect.DeepEqual(f.pids.list(), g.pids.list()) {
		t.Fatalf("the restored table differs: %v vs %v", g.pids.list(), f.pids.list())
	}
}
