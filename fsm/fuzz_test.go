package fsm

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecodeCommand: no input makes Decode panic; whatever decodes
// re-encodes to a canonical form that decodes to the same command; and
// applying it to an empty or a populated state neither panics nor yields a
// State that breaks an invariant or fails to round-trip through a snapshot.
func FuzzDecodeCommand(f *testing.F) {
	for _, cmd := range append(oneOfEach(), fullLog()...) {
		f.Add(mustEncode(f, cmd))
	}
	f.Add([]byte{})
	f.Add([]byte{byte(TypePutJob), 1})
	f.Add([]byte("\x0e\x01{\"job\":{\"id\":\"j\",\"kind\":\"k\",\"state\":\"pending\",\"spec\":\"\\u003c\\ud800\",\"created_at\":1,\"updated_at\":1}}"))
	f.Add([]byte("\x01\x01{\"peer\":{\"id\":-1,\"name\":\"n\",\"kafka_addr\":\"\\u00ff:1\",\"region\":\"\\ufffd\"}} \n"))
	f.Add([]byte("\x05\x01{\"TOPIC\":\"a\",\"topic\":\"b\",\"cluster\":\"east\"}"))
	// PutCluster version 3: nested tls and sasl, and an older version
	// claiming them.
	f.Add([]byte("\x03\x03{\"cluster\":{\"name\":\"c\",\"bootstrap\":[\"b:1\"],\"tls\":{\"ca_file\":\"/ca\",\"server_name\":\"k\"},\"sasl\":{\"mechanism\":\"OAUTHBEARER\",\"token_endpoint\":\"http://[::1]:1/t\",\"client_id\":\"p\",\"client_secret_file\":\"/s\"}}}"))
	f.Add([]byte("\x03\x02{\"cluster\":{\"name\":\"c\",\"bootstrap\":[\"b:1\"],\"tls\":{}}}"))
	f.Add([]byte("\x1b\x01{\"entry\":{\"cluster\":\"east\",\"state\":\"failed-over\",\"since\":-1,\"routes_moved\":1e3}}"))
	// Migration commands: the lifecycle on the populated state's topic
	// "orders" (routed to east), and payloads near their limits.
	for _, cmd := range append(migrate("orders", "east", "west", 1700000010000, []int64{5, 9}, []int64{0, 0}, 41),
		&UpdateMigration{Topic: "orders", State: MigrationSwitched, Phase: PhaseServing, GroupsBehind: []string{"billing-1", "billing-2"}, At: 1700000010005},
		&UpdateMigration{Topic: "orders", State: MigrationAborted, Phase: PhasePrepare, Error: "stopped by the operator", At: 1700000010001},
		&FinishMigration{Topic: "payments", At: 1700000010009},
		&SwitchMigration{Topic: "payments", Starts: []int64{100, 250}, Physical: []int64{0, 0}, EpochBase: 40, At: 1700000004000},
	) {
		f.Add(mustEncode(f, cmd))
	}
	f.Add([]byte("\x15\x01{\"topic\":\"orders\",\"starts\":[1,2],\"physical\":[0],\"epoch_base\":1,\"at\":1}"))
	f.Add([]byte("\x15\x01{\"topic\":\"orders\",\"starts\":[-1],\"physical\":[0],\"epoch_base\":-1,\"at\":1}"))
	f.Add([]byte("\x13\x01{\"topic\":\"orders\",\"from\":\"east\",\"to\":\"east\",\"partitions\":2147483647,\"started\":1}"))
	f.Add([]byte("\x14\x01{\"topic\":\"orders\",\"state\":\"finished\",\"phase\":\"done\",\"at\":1}"))
	f.Add([]byte("\x16\x01{\"topic\":\"payments\",\"at\":-5}"))
	f.Add([]byte("\x1e\x01{\"acls\":[{\"principal\":\"User:*\",\"host\":\"::ffff:1.2.3.4\",\"resource_type\":\"topic\",\"resource_name\":\"*\",\"pattern\":\"prefixed\",\"operation\":\"all\",\"permission\":\"deny\"}]}"))
	f.Add([]byte("\x1f\x01{\"filters\":[{\"resource_name\":\"orders\",\"pattern\":\"match\"},{}]}"))

	populated := New(nil)
	applyOK(f, populated, fullLog()...)
	// fenced adds a migration of "orders" in the fence phase, so fuzzed
	// switches and aborts reach the code past their state checks.
	fenced := New(nil)
	applyOK(f, fenced, fullLog()...)
	applyOK(f, fenced, migrate("orders", "east", "west", 1700000010000, []int64{5, 9}, []int64{0, 0}, 41)[:2]...)
	states := []*State{{}, populated.State(), fenced.State()}

	f.Fuzz(func(t *testing.T, data []byte) {
		c1, err := Decode(data)
		if err != nil {
			if c1 != nil {
				t.Fatalf("Decode returned a command and an error: %v", err)
			}
			return
		}
		e1, err := Encode(c1)
		if err != nil {
			t.Fatalf("a decoded %s does not encode: %v", c1.Type(), err)
		}
		c2, err := Decode(e1)
		if err != nil {
			t.Fatalf("re-encoded %s does not decode: %v\n%q", c1.Type(), err, e1)
		}
		e2, err := Encode(c2)
		if err != nil || !bytes.Equal(e1, e2) {
			t.Fatalf("encoding is not stable: %v\n%q\n%q", err, e1, e2)
		}
		if c3, _ := Decode(e2); !reflect.DeepEqual(c2, c3) {
			t.Fatalf("decode of the canonical form is not stable:\n%+v\n%+v", c2, c3)
		}
		for _, st := range states {
			before := stateJSON(t, st)
			next, err := st.Next(c1, st.Index+1)
			if stateJSON(t, st) != before {
				t.Fatal("Next modified its receiver")
			}
			if err != nil {
				if !isSentinel(err) {
					t.Fatalf("rejection without a sentinel: %v", err)
				}
				continue
			}
			if err := next.validate(true); err != nil {
				t.Fatalf("%s produced an invalid state: %v", c1.Type(), err)
			}
			back, err := ReadSnapshot(bytes.NewReader(snapshotBytes(t, next)))
			if err != nil {
				t.Fatalf("%s produced a state whose snapshot does not restore: %v", c1.Type(), err)
			}
			if !reflect.DeepEqual(back, next) {
				t.Fatalf("%s produced a state that does not round-trip:\n%+v\n%+v", c1.Type(), back, next)
			}
		}
	})
}

func isSentinel(err error) bool {
	for _, s := range []error{ErrInvalid, ErrNotFound, ErrConflict, ErrUnknownCluster, ErrInUse} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// FuzzRestore: no input makes Restore panic; a failed Restore leaves the old
// State in place; a successful one yields a valid State that persists and
// restores to itself.
func FuzzRestore(f *testing.F) {
	empty := New(nil)
	full := New(nil)
	applyOK(f, full, fullLog()...)
	for _, fsm := range []*FSM{empty, full} {
		b := snapshotBytes(f, fsm.State())
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(append(bytes.Clone(b), '{'))
	}
	f.Add([]byte(`{"format":"switchyard-fsm-snapshot","version":1,"index":1}` + "\n" + `{"section":"acls","data":[]}`))
	f.Add([]byte(`{"format":"switchyard-fsm-snapshot","version":1}{"section":"peers","data":[{"id":1,"kafka_addr":"a:1","local_brokers":[{"cluster":"c","broker_id":1}]}]}`))
	f.Add([]byte(`{"format":"switchyard-fsm-snapshot","version":4,"index":3}
{"section":"peers","data":[]}
{"section":"clusters","data":[{"name":"e","bootstrap":["e:1"]},{"name":"w","bootstrap":["w:1"]}]}
{"section":"routes","data":{"topics":[{"topic":"t","cluster":"w"}]}}
{"section":"quotas","data":[]}
{"section":"failover","data":{}}
{"section":"jobs","data":[]}
{"section":"meta","data":{"cluster_id":""}}
{"section":"peer_allow_list","data":[]}
{"section":"migrations","data":[{"topic":"t","from":"e","to":"w","state":"switched","phase":"copy","partitions":1,"started":1,"switched":2,"groups_behind":[]}]}
{"section":"chains","data":[{"topic":"t","segments":[{"cluster":"e","epoch_base":0},{"cluster":"w","epoch_base":3,"starts":[4],"physical":[0]}]}]}
`))

	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := New(nil)
		applyOK(t, fsm, &PutCluster{Cluster: cluster("old")})
		before := fsm.State()
		if err := restore(fsm, data); err != nil {
			if fsm.State() != before {
				t.Fatalf("failed restore (%v) replaced the state", err)
			}
			return
		}
		st := fsm.State()
		if err := st.validate(true); err != nil {
			t.Fatalf("restored an invalid state: %v", err)
		}
		back, err := ReadSnapshot(bytes.NewReader(snapshotBytes(t, st)))
		if err != nil {
			t.Fatalf("restored state does not persist and restore: %v", err)
		}
		if !reflect.DeepEqual(back, st) {
			t.Fatalf("restored state does not round-trip:\n%+v\n%+v", back, st)
		}
	})
}

// FuzzProducerIDsSection: no producer_ids section data makes Restore
// panic; a failed Restore leaves the table as it was; a table it accepts
// is valid, within its bound, and persists and restores to itself.
func FuzzProducerIDsSection(f *testing.F) {
	empty := strings.TrimSuffix(string(snapshotBytes(f, &State{})), `{"section":"producer_ids","data":[]}`+"\n")
	seed := `[{"cluster":"east","virtual_id":1099511627783,"virtual_epoch":2,"real_id":4001,"real_epoch":0,"at":1700000007000}]`
	if g := New(nil); restore(g, []byte(empty+`{"section":"producer_ids","data":`+seed+"}\n")) != nil || g.ProducerIDs() != 1 {
		f.Fatal("the seed snapshot does not restore its claim")
	}
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[{"cluster":"east","virtual_id":1099511627783,"virtual_epoch":2,"real_id":4001,"real_epoch":0,"at":1700000007000}]`))
	f.Add([]byte(`[{"cluster":"e","virtual_id":1,"virtual_epoch":0,"real_id":1,"real_epoch":0,"at":1},{"cluster":"e","virtual_id":1,"virtual_epoch":0,"real_id":2,"real_epoch":0,"at":1}]`))
	f.Add([]byte(`[{"cluster":"e","virtual_id":1,"virtual_epoch":32768,"real_id":1,"real_epoch":0,"at":1}]`))
	f.Add([]byte(`[{"cluster":"e","virtual_id":1e3,"virtual_epoch":0,"real_id":-1,"real_epoch":0,"at":1,"x":1}]`))
	f.Add([]byte(`{"cluster":"e"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		in := empty + `{"section":"producer_ids","data":` + string(data) + "}\n"
		fsm := New(nil)
		applyOK(t, fsm, &ClaimProducerID{ClaimedProducerID{Cluster: "old", VirtualID: 1, RealID: 1, At: 1}})
		before := fsm.pids.list()
		if err := restore(fsm, []byte(in)); err != nil {
			if !reflect.DeepEqual(fsm.pids.list(), before) {
				t.Fatalf("failed restore (%v) replaced the table", err)
			}
			return
		}
		list := fsm.pids.list()
		if err := validateProducerIDs(list); err != nil || fsm.ProducerIDs() != len(list) {
			t.Fatalf("restored an invalid table (%v): %d listed, %d held", err, len(list), fsm.ProducerIDs())
		}
		for _, c := range list {
			if got, ok := fsm.ProducerID(c.Cluster, c.VirtualID, c.VirtualEpoch); !ok || got != c {
				t.Fatalf("claim %+v listed but looked up as %+v", c, got)
			}
		}
		b := persist(t, fsm)
		back := New(nil)
		if err := restore(back, b); err != nil {
			t.Fatalf("restored table does not persist and restore: %v", err)
		}
		if !reflect.DeepEqual(back.pids.list(), list) {
			t.Fatalf("restored table does not round-trip:\n%v\n%v", back.pids.list(), list)
		}
	})
}
