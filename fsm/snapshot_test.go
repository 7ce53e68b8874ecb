package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// persist snapshots f's state through FSM.Snapshot and Persist into a
// buffer-backed sink.
func persist(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink := &bufferSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed %v, cancelled %v", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

func restore(f *FSM, b []byte) error {
	return f.Restore(io.NopCloser(bytes.NewReader(b)))
}

// sectionLines maps each section name in a snapshot to its data.
func sectionLines(t *testing.T, b []byte) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	out := map[string]string{}
	for _, l := range lines[1:] {
		var s snapshotSection
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("section line %q: %v", l, err)
		}
		out[s.Section] = string(s.Data)
	}
	return out
}

// TestSnapshotRoundTripPerSection populates one section at a time (plus the
// clusters a section must refer to), persists it, restores it into a fresh
// FSM and compares.
func TestSnapshotRoundTripPerSection(t *testing.T) {
	cases := []struct {
		section string
		cmds    []Command
		check   func(t *testing.T, s *State)
	}{
		{"peers", []Command{
			&RegisterPeer{Peer: Peer{ID: 3, Name: "a", Region: "r1", KafkaAddr: "a:9092", AdminAddr: "a:18080", RaftAddr: "a:7000", GossipAddr: "a:7001", Version: "v1"}},
			&RegisterPeer{Peer: Peer{ID: AutoPeerID, Name: "b", KafkaAddr: "[::1]:9092"}},
		}, func(t *testing.T, s *State) { wantPeerIDs(t, s, 3, 4) }},
		{"peers with local brokers", []Command{
			&PutCluster{Cluster: cluster("c")},
			&RegisterPeer{Peer: Peer{ID: 1, Name: "a", KafkaAddr: "a:1", LocalBrokers: []BrokerRef{{"c", 2}, {"c", 1}}}},
		}, nil},
		{"clusters", []Command{
			&PutCluster{Cluster: Cluster{Name: "tls", Bootstrap: []string{"t1:9093", "t2:9093"}, Region: "eu", TLS: &ClusterTLS{ServerName: "kafka.internal",
				CAFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem", InsecureSkipVerify: true}}},
			&PutCluster{Cluster: Cluster{Name: "sasl", Bootstrap: []string{"s:9092"}, SASL: &ClusterSASL{Mechanism: SASLScramSHA256, Username: "u", PasswordFile: "/pw"}}},
			&PutCluster{Cluster: Cluster{Name: "oauth", Bootstrap: []string{"o:9093"}, TLS: &ClusterTLS{},
				SASL: &ClusterSASL{Mechanism: SASLOAuthBearer, TokenEndpoint: "https://idp/token", ClientID: "proxy", ClientSecretFile: "/s", Scope: "kafka"}}},
			&PutCluster{Cluster: cluster("plain")},
		}, func(t *testing.T, s *State) { wantClusters(t, s, "oauth", "plain", "sasl", "tls") }},
		{"routes", []Command{
			&PutCluster{Cluster: cluster("c")},
			&PutRoute{Topic: "orders", Cluster: "c"},
			&PutPrefixRoute{Prefix: "logs.", Cluster: "c"},
			&PutGroupRoute{Prefix: "billing-", Cluster: "c"},
			&SetDefaultCluster{Cluster: "c"},
		}, func(t *testing.T, s *State) { wantRoute(t, s, "logs.x", "c", RouteMatch{MatchPrefix, "logs."}) }},
		{"quotas", []Command{
			&PutQuota{Quota: Quota{Topic: "orders", ProduceBytesPerSec: 1 << 40, FetchBytesPerSec: 7}},
			&PutQuota{Quota: Quota{Topic: "orders", Prefix: true}},
		}, nil},
		{"failover", []Command{
			&PutCluster{Cluster: Cluster{Name: "east", Bootstrap: []string{"e:9092"}, DownAfterMS: 2000, UpAfterMS: 3000}},
			&PutCluster{Cluster: cluster("west")},
			&PutRoute{Topic: "orders", Cluster: "east", RouteTargets: RouteTargets{Fallback: []string{"west"}}},
			&SetFailover{Entry: ClusterFailover{Cluster: "west", State: FailoverDown, Since: 5}},
			&SetFailover{Entry: ClusterFailover{Cluster: "east", State: FailoverMoved, Since: 7, RoutesMoved: 1, Manual: true}},
		}, func(t *testing.T, s *State) {
			if e := s.ClusterFailover("east"); e.State != FailoverMoved || e.Since != 7 || !e.Manual || e.RoutesMoved != 1 {
				t.Fatalf("east failover after restore = %+v", e)
			}
			if c, _ := s.Cluster("east"); c.DownAfter() != 2000 || c.UpAfter() != 3000 {
				t.Fatalf("east delays after restore = %d/%d", c.DownAfter(), c.UpAfter())
			}
		}},
		{"jobs", []Command{
			&PutJob{Job: job("j1", "migrate-topic", JobRunning, 1, 2, `{"topics": ["a", "<b>"], "n": 1.5e3}`)},
			&PutJob{Job: job("j0", "reset-offsets", JobCancelled, 1, 1, "")},
		}, func(t *testing.T, s *State) {
			if j, _ := s.Job("j1"); !strings.Contains(string(j.Spec), `\u003cb\u003e`) {
				t.Fatalf("spec not canonical: %s", j.Spec)
			}
		}},
		{"peer_allow_list", []Command{
			&AllowPeer{Name: "p2"},
			&AllowPeer{Name: "p1"},
			&AllowPeer{Name: "p3"},
			&DisallowPeer{Name: "p3"},
		}, func(t *testing.T, s *State) {
			if !reflect.DeepEqual(s.PeerAllowList, []string{"p1", "p2"}) || !s.PeerAllowed("p1") || s.PeerAllowed("p3") {
				t.Fatalf("allow-list %v", s.PeerAllowList)
			}
		}},
		{"migrations", []Command{
			&PutCluster{Cluster: cluster("east")}, &PutCluster{Cluster: cluster("west")},
			&PutRoute{Topic: "a", Cluster: "east"}, &PutRoute{Topic: "b", Cluster: "east"}, &PutRoute{Topic: "c", Cluster: "east"},
			&StartMigration{Topic: "c", From: "east", To: "west", Partitions: 4, Started: 30},
			&StartMigration{Topic: "b", From: "east", To: "west", Partitions: 1, Started: 20},
			&UpdateMigration{Topic: "b", State: MigrationFailed, Phase: PhaseFence, Error: "open transactions after 30s", At: 21},
			&StartMigration{Topic: "a", From: "east", To: "west", Partitions: 2, Started: 10},
			&UpdateMigration{Topic: "a", State: MigrationRunning, Phase: PhaseFence, GroupsBehind: []string{"g"}, At: 11},
		}, func(t *testing.T, s *State) {
			if len(s.Migrations) != 3 || s.Migrations[0].Topic != "a" || !s.Migrations[0].Fenced() || s.Migrations[1].Error == "" {
				t.Fatalf("migrations %+v", s.Migrations)
			}
		}},
		{"chains", append(append(append([]Command{
			&PutCluster{Cluster: cluster("east")}, &PutCluster{Cluster: cluster("west")},
			&PutRoute{Topic: "orders", Cluster: "east"}},
			migrate("orders", "east", "west", 10, []int64{7, 0, 1 << 40}, []int64{0, 0, 0}, 5)...),
			&FinishMigration{Topic: "orders", At: 13}),
			migrate("orders", "west", "east", 20, []int64{9, 3, 1<<40 + 1}, []int64{7, 0, 5}, 50)...),
			func(t *testing.T, s *State) {
				c := s.Chain("orders")
				if c == nil || len(c.Segments) != 3 || !c.Segments[0].Retired || c.Previous() == nil || c.Live().Delta(2) != 1<<40-4 {
					t.Fatalf("chain %+v", c)
				}
			}},
		{"everything", fullLog(), nil},
	}
	for _, tc := range cases {
		t.Run(tc.section, func(t *testing.T) {
			src := New(nil)
			applyOK(t, src, tc.cmds...)
			b := persist(t, src)

			var hooked *State
			dst := New(func(s *State) { hooked = s })
			if err := restore(dst, b); err != nil {
				t.Fatalf("restore: %v\n%s", err, b)
			}
			got, want := dst.State(), src.State()
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("restored\n%+v\nwant\n%+v", got, want)
			}
			if hooked != got {
				t.Fatal("OnApply was not called with the restored state")
			}
			if tc.check != nil {
				tc.check(t, got)
			}
			// The same state persists to the same bytes.
			if b2 := persist(t, dst); !bytes.Equal(b, b2) {
				t.Fatalf("re-persisted snapshot differs:\n%s\n%s", b2, b)
			}
			// Every section is present, in order, whatever is populated.
			secs := sectionLines(t, b)
			if len(secs) != len(snapshotSections) {
				t.Fatalf("sections %v", secs)
			}
			name, _, _ := strings.Cut(tc.section, " ")
			if _, ok := secs[name]; !ok && name != "everything" {
				t.Fatalf("no section %q", name)
			}
		})
	}
}

func TestSnapshotFormat(t *testing.T) {
	f := New(nil)
	b := persist(t, f)
	want := `{"format":"switchyard-fsm-snapshot","version":8,"index":0}
{"section":"peers","data":[]}
{"section":"clusters","data":[]}
{"section":"routes","data":{"default":{}}}
{"section":"quotas","data":[]}
{"section":"failover","data":{}}
{"section":"jobs","data":[]}
{"section":"meta","data":{"cluster_id":""}}
{"section":"peer_allow_list","data":[]}
{"section":"migrations","data":[]}
{"section":"chains","data":[]}
{"section":"offset_resets","data":[]}
{"section":"regions","data":[]}
{"section":"users","data":[]}
{"section":"acls","data":[]}
{"section":"producer_ids","data":[]}
`
	if string(b) != want {
		t.Fatalf("empty snapshot\n%s\nwant\n%s", b, want)
	}
}

func TestPersistCancelsOnError(t *testing.T) {
	f := New(nil)
	applyOK(t, f, fullLog()...)
	snap, _ := f.Snapshot()
	sink := &bufferSink{failWrites: true}
	if err := snap.Persist(sink); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Persist = %v", err)
	}
	if !sink.cancelled || sink.closed {
		t.Fatalf("sink cancelled %v, closed %v; want cancelled only", sink.cancelled, sink.closed)
	}
}

// TestSnapshotSeesItsState: a snapshot taken before more commands persists
// the state as it was when taken.
func TestSnapshotSeesItsState(t *testing.T) {
	f := New(nil)
	applyOK(t, f, &PutCluster{Cluster: cluster("a")})
	snap, _ := f.Snapshot()
	want := snapshotBytes(t, f.State())
	applyOK(t, f, &PutCluster{Cluster: cluster("b")})
	sink := &bufferSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sink.Bytes(), want) {
		t.Fatalf("snapshot persisted\n%s\nwant\n%s", sink.Bytes(), want)
	}
}

// TestRestoreRejects: every bad snapshot fails with its sentinel and leaves
// the FSM's state in place.
func TestRestoreRejects(t *testing.T) {
	good := func() []string {
		src := New(nil)
		applyOK(t, src, fullLog()...)
		return strings.Split(strings.TrimSuffix(string(persist(t, src)), "\n"), "\n")
	}()
	join := func(lines ...string) []byte { return []byte(strings.Join(lines, "\n") + "\n") }
	if len(good) != 1+len(snapshotSections) {
		t.Fatalf("the full snapshot has %d lines, want a header and %d sections", len(good), len(snapshotSections))
	}
	hdr8, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets, regs, users, acls, pids := good[0], good[1], good[2], good[3], good[4], good[5], good[6], good[7], good[8], good[9], good[10], good[11], good[12], good[13], good[14], good[15]
	// Older headers: the sections of version N are those with since <= N.
	oldHdr := func(v int) string {
		return strings.Replace(hdr8, fmt.Sprintf(`"version":%d`, snapshotVersion), fmt.Sprintf(`"version":%d`, v), 1)
	}
	hdr7 := oldHdr(7)
	pidsLine := func(data string) string { return `{"section":"producer_ids","data":` + data + `}` }
	// Most cases below are version-6 snapshots, which end at regions.
	hdr := oldHdr(6)
	cases := []struct {
		name string
		in   []byte
		err  error
		msg  string
	}{
		{"empty", nil, ErrSnapshotHeader, "empty"},
		{"not json", []byte("PK\x03\x04"), ErrSnapshotHeader, "header"},
		{"other format", join(`{"format":"raft","version":1}`), ErrSnapshotHeader, `"raft"`},
		{"future version", join(`{"format":"switchyard-fsm-snapshot","version":9}`), ErrSnapshotVersion, "9"},
		{"version 8 without producer ids", join(hdr8, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets, regs, users, acls), ErrMissingSection, `"producer_ids"`},
		{"version 7 with producer ids", join(hdr7, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets, regs, users, acls, pids), ErrTrailingData, "last snapshot section"},
		{"producer id claimed twice", join(hdr8, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets, regs, users, acls,
			pidsLine(`[{"cluster":"east","virtual_id":5,"virtual_epoch":0,"real_id":1,"real_epoch":0,"at":1},{"cluster":"east","virtual_id":5,"virtual_epoch":0,"real_id":2,"real_epoch":0,"at":2}]`)), ErrInvalid, "appears twice"},
		{"producer id negative", join(hdr8, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets, regs, users, acls,
			pidsLine(`[{"cluster":"east","virtual_id":5,"virtual_epoch":0,"real_id":-1,"real_epoch":0,"at":1}]`)), ErrInvalid, "real producer id -1"},
		{"producer id bad cluster", join(hdr8, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets, regs, users, acls,
			pidsLine(`[{"cluster":"a b","virtual_id":5,"virtual_epoch":0,"real_id":1,"real_epoch":0,"at":1}]`)), ErrInvalid, "producer id claim cluster"},
		{"producer id epoch too big", join(hdr8, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets, regs, users, acls,
			pidsLine(`[{"cluster":"east","virtual_id":5,"virtual_epoch":40000,"real_id":1,"real_epoch":0,"at":1}]`)), ErrBadSection, "producer_ids"},
		{"producer id with an unknown field", join(hdr8, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets, regs, users, acls,
			pidsLine(`[{"cluster":"east","virtual_id":5,"virtual_epoch":0,"real_id":1,"real_epoch":0,"at":1,"sequence":3}]`)), ErrBadSection, "sequence"},
		{"version 7 without users", join(hdr7, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets, regs), ErrMissingSection, `"users"`},
		{"version 7 without acls", join(hdr7, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets, regs, users), ErrMissingSection, `"acls"`},
		{"version 7 acls before users", join(hdr7, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets, regs, acls, users), ErrSectionOrder, `"acls" where "users"`},
		{"version 0", join(`{"format":"switchyard-fsm-snapshot","version":0}`), ErrSnapshotVersion, "0"},
		{"header only", join(hdr), ErrMissingSection, `"peers"`},
		{"truncated after routes", join(hdr, peers, clusters, routes), ErrMissingSection, `"quotas"`},
		{"truncated mid-section", []byte(strings.Join([]string{hdr, peers, clusters[:len(clusters)/2]}, "\n")), ErrBadSection, `"clusters"`},
		{"unknown section", join(hdr, peers, clusters, routes, quotas, failover, `{"section":"tokens","data":[]}`, jobs), ErrUnknownSection, `"tokens"`},
		{"unknown section at the end", join(hdr8, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets, regs, users, acls, pids, `{"section":"tokens","data":[]}`), ErrTrailingData, "last snapshot section"},
		{"version 6 section after its last", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets, regs, users), ErrTrailingData, "last snapshot section"},
		{"version 3 section after its last", join(oldHdr(3), peers, clusters, routes, quotas, failover, jobs, meta, allow, migs), ErrTrailingData, "last snapshot section"},
		{"version 4 section after its last", join(oldHdr(4), peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets), ErrTrailingData, "last snapshot section"},
		{"version 5 section after its last", join(oldHdr(5), peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets, regs), ErrTrailingData, "last snapshot section"},
		{"version 6 without regions", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets), ErrMissingSection, `"regions"`},
		{"unsorted regions", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets,
			`{"section":"regions","data":[{"name":"b"},{"name":"a"}]}`), ErrInvalid, "regions not sorted"},
		{"region network not canonical", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets,
			`{"section":"regions","data":[{"name":"a","networks":["10.1.2.3/16"]}]}`), ErrInvalid, "canonical"},
		{"region network twice", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets,
			`{"section":"regions","data":[{"name":"a","networks":["10.1.0.0/16"]},{"name":"b","networks":["10.1.0.0/16"]}]}`), ErrInvalid, "belongs to regions"},
		{"region with an unknown fallback", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets,
			`{"section":"regions","data":[{"name":"a","fallback":["z"]}]}`), ErrInvalid, "unknown fallback"},
		{"route targets an unknown cluster", join(hdr, peers, clusters, `{"section":"routes","data":{"topics":[{"topic":"x","cluster":"east","regions":{"a":"north"}}]}}`,
			quotas, failover, jobs, meta, allow, migs, chains, resets, regs), ErrUnknownCluster, "north"},
		{"route with a bad resume", join(hdr, peers, clusters, `{"section":"routes","data":{"topics":[{"topic":"x","cluster":"east","resume":"soon"}]}}`,
			quotas, failover, jobs, meta, allow, migs, chains, resets, regs), ErrInvalid, "resume"},
		{"version 5 without offset resets", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains), ErrMissingSection, `"offset_resets"`},
		{"unsorted offset resets", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains,
			`{"section":"offset_resets","data":[{"group":"b","topics":["t"],"to":{"kind":"earliest"},"state":"applied","targets":[{"topic":"t","partition":0,"old":-1,"new":0}],"created":1},{"group":"a","topics":["t"],"to":{"kind":"earliest"},"state":"applied","targets":[{"topic":"t","partition":0,"old":-1,"new":0}],"created":1}]}`, regs), ErrInvalid, "offset resets not sorted"},
		{"offset reset with a stray target", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains,
			`{"section":"offset_resets","data":[{"group":"a","topics":["t"],"to":{"kind":"earliest"},"state":"applied","targets":[{"topic":"u","partition":0,"old":-1,"new":0}],"created":1}]}`, regs), ErrInvalid, "not one of its topics"},
		{"offset reset in an unknown state", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains,
			`{"section":"offset_resets","data":[{"group":"a","topics":["t"],"to":{"kind":"earliest"},"state":"paused","targets":[{"topic":"t","partition":0,"old":-1,"new":0}],"created":1}]}`, regs), ErrInvalid, `unknown state "paused"`},
		{"version 5 without meta", join(hdr, peers, clusters, routes, quotas, failover, jobs), ErrMissingSection, `"meta"`},
		{"version 5 without allow-list", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta), ErrMissingSection, `"peer_allow_list"`},
		{"version 5 without migrations", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow), ErrMissingSection, `"migrations"`},
		{"version 5 without chains", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs), ErrMissingSection, `"chains"`},
		{"chains before migrations", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow, chains, migs), ErrSectionOrder, `"chains" where "migrations"`},
		{"unsorted allow-list", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, `{"section":"peer_allow_list","data":["b","a"]}`, migs, chains, resets, regs), ErrInvalid, "not sorted"},
		{"bad allowed name", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, `{"section":"peer_allow_list","data":["a b"]}`, migs, chains, resets, regs), ErrInvalid, "allowed peer"},
		{"unsorted migrations", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow,
			`{"section":"migrations","data":[{"topic":"b","from":"east","to":"west","state":"aborted","phase":"prepare","partitions":1,"started":1},{"topic":"a","from":"east","to":"west","state":"aborted","phase":"prepare","partitions":1,"started":1}]}`, chains, resets, regs), ErrInvalid, "migrations not sorted"},
		{"migration in an unknown state", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow,
			`{"section":"migrations","data":[{"topic":"a","from":"east","to":"west","state":"paused","phase":"prepare","partitions":1,"started":1}]}`, chains, resets, regs), ErrInvalid, `unknown state "paused"`},
		{"running migration to an unknown cluster", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow,
			`{"section":"migrations","data":[{"topic":"a","from":"east","to":"north","state":"running","phase":"fence","partitions":1,"started":1}]}`, chains, resets, regs), ErrInvalid, "unknown cluster"},
		{"migration with an unknown field", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow,
			`{"section":"migrations","data":[{"topic":"a","from":"east","to":"west","state":"aborted","phase":"prepare","partitions":1,"started":1,"eta":5}]}`, chains, resets, regs), ErrBadSection, "eta"},
		{"chain without segments", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs,
			`{"section":"chains","data":[{"topic":"a","segments":[]}]}`, resets, regs), ErrInvalid, "0 segments"},
		{"segment with uneven offsets", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs,
			`{"section":"chains","data":[{"topic":"a","segments":[{"cluster":"east","epoch_base":0},{"cluster":"west","epoch_base":3,"starts":[1,2],"physical":[0]}]}]}`, resets, regs), ErrInvalid, "2 starts and 1 physical"},
		{"unsorted chains", join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs,
			`{"section":"chains","data":[{"topic":"b","segments":[{"cluster":"east","epoch_base":0}]},{"topic":"a","segments":[{"cluster":"east","epoch_base":0}]}]}`, resets, regs), ErrInvalid, "chains not sorted"},
		{"sections swapped", join(hdr, clusters, peers, routes, quotas, failover, jobs), ErrSectionOrder, `"clusters" where "peers"`},
		{"section twice", join(hdr, peers, peers, clusters, routes, quotas, failover, jobs), ErrSectionOrder, `"peers" where "clusters"`},
		{"section without data", join(hdr, `{"section":"peers"}`), ErrBadSection, "no data"},
		{"section with an unknown field", join(hdr, `{"section":"peers","data":[],"crc":1}`), ErrBadSection, "crc"},
		{"peer with an unknown field", join(hdr, `{"section":"peers","data":[{"id":1,"kafka_addr":"a:1","rack":"x"}]}`), ErrBadSection, "rack"},
		{"failover with a field", join(hdr, peers, clusters, routes, quotas, `{"section":"failover","data":{"active":"east"}}`, jobs), ErrBadSection, "active"},
		{"wrong data type", join(hdr, `{"section":"peers","data":{}}`), ErrBadSection, `"peers"`},
		{"trailing garbage", append(join(hdr, peers, clusters, routes, quotas, failover, jobs, meta, allow, migs, chains, resets, regs), "x"...), ErrTrailingData, "last snapshot section"},
		{"route to a missing cluster", join(hdr, peers, `{"section":"clusters","data":[]}`, routes, quotas, failover, jobs, meta, allow, migs, chains, resets, regs), ErrUnknownCluster, "snapshot state"},
		{"bad cluster id", join(hdr, peers, clusters, routes, quotas, failover, jobs, `{"section":"meta","data":{"cluster_id":"a b"}}`, allow, migs, chains, resets, regs), ErrInvalid, "cluster id"},
		{"unsorted clusters", join(hdr, `{"section":"peers","data":[]}`, `{"section":"clusters","data":[{"name":"b","bootstrap":["b:1"]},{"name":"a","bootstrap":["a:1"]}]}`,
			`{"section":"routes","data":{}}`, quotas, failover, jobs, meta, allow, `{"section":"migrations","data":[]}`, `{"section":"chains","data":[]}`, resets, regs), ErrInvalid, "not sorted"},
		{"negative quota", join(hdr, peers, clusters, routes, `{"section":"quotas","data":[{"topic":"t","produce_bytes_per_sec":-1,"fetch_bytes_per_sec":0}]}`, failover, jobs, meta, allow, migs, chains, resets, regs), ErrInvalid, "negative rate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			f := New(func(*State) { calls++ })
			applyOK(t, f, &PutCluster{Cluster: cluster("keep")})
			calls = 0
			before := f.State()
			err := restore(f, tc.in)
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Restore = %v, want %v containing %q", err, tc.err, tc.msg)
			}
			if f.State() != before || calls != 0 {
				t.Fatal("a failed restore replaced the state")
			}
		})
	}
	// The pieces put back together restore.
	if err := restore(New(nil), join(good...)); err != nil {
		t.Fatalf("good snapshot: %v", err)
	}
	// A version 1 snapshot (no meta section) from an older peer restores,
	// with no cluster id.
	v1 := oldHdr(1)
	f := New(nil)
	if err := restore(f, join(v1, peers, clusters, routes, quotas, failover, jobs)); err != nil {
		t.Fatalf("version 1 snapshot: %v", err)
	}
	if f.State().ClusterID != "" || len(f.State().Clusters) == 0 {
		t.Fatalf("version 1 snapshot restored to %+v", f.State())
	}
	// A version 2 snapshot (no allow-list section) restores with an empty
	// allow-list and everything else.
	f = New(nil)
	if err := restore(f, join(oldHdr(2), peers, clusters, routes, quotas, failover, jobs, meta)); err != nil {
		t.Fatalf("version 2 snapshot: %v", err)
	}
	if f.State().ClusterID == "" || f.State().PeerAllowList != nil || len(f.State().Peers) == 0 {
		t.Fatalf("version 2 snapshot restored to %+v", f.State())
	}
	// A version 3 snapshot (no migrations, no chains) restores with both
	// empty and the allow-list kept.
	f = New(nil)
	if err := restore(f, join(oldHdr(3), peers, clusters, routes, quotas, failover, jobs, meta, allow)); err != nil {
		t.Fatalf("version 3 snapshot: %v", err)
	}
	if st := f.State(); st.Migrations != nil || st.Chains != nil || !st.PeerAllowed("a3") || st.ClusterID == "" {
		t.Fatalf("version 3 snapshot restored to %+v", st)
	}
	// A version 5 snapshot (no regions section; its routes written before
	// route targets existed) restores with no regions and the rest kept.
	f = New(nil)
	v5routes := `{"section":"routes","data":{"topics":[{"topic":"orders","cluster":"east"}],"default_cluster":"west"}}`
	if err := restore(f, join(oldHdr(5), peers, clusters, v5routes, quotas, failover, jobs, meta, allow,
		`{"section":"migrations","data":[]}`, `{"section":"chains","data":[]}`, resets)); err != nil {
		t.Fatalf("version 5 snapshot: %v", err)
	}
	if st := f.State(); st.Regions != nil || len(st.Peers) == 0 || st.Routes.Topics[0].Regions != nil {
		t.Fatalf("version 5 snapshot restored to %+v", st)
	} else if c, _ := st.RouteForRegion("orders", "a"); c != "east" {
		t.Fatalf("version 5 route for region a = %q, want east", c)
	}
}

// TestRestoreNormalizes: a hand-written snapshot with empty lists, unsorted
// local brokers and a spaced job spec restores to the FSM's canonical form.
func TestRestoreNormalizes(t *testing.T) {
	in := `{"format":"switchyard-fsm-snapshot","version":1,"index":9}
{"section":"peers","data":[{"id":1,"kafka_addr":"a:1","local_brokers":[{"cluster":"c","broker_id":2},{"cluster":"c","broker_id":1}]}]}
{"section":"clusters","data":[{"name":"c","bootstrap":["c:1"]}]}
{"section":"routes","data":{"topics":[],"prefixes":null}}
{"section":"quotas","data":null}
{"section":"failover","data":{}}
{"section":"jobs","data":[{"id":"j","kind":"k","state":"pending","spec":{ "a" : 1 },"created_at":1,"updated_at":1},{"id":"k","kind":"k","state":"pending","spec":null,"created_at":1,"updated_at":1}]}
`
	st, err := ReadSnapshot(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := &State{
		Index:    9,
		Peers:    []Peer{{ID: 1, KafkaAddr: "a:1", LocalBrokers: []BrokerRef{{"c", 1}, {"c", 2}}}},
		Clusters: []Cluster{cluster("c", "c:1")},
		Jobs:     []Job{job("j", "k", JobPending, 1, 1, `{"a":1}`), job("k", "k", JobPending, 1, 1, "")},
	}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("restored\n%+v\nwant\n%+v", st, want)
	}
}
