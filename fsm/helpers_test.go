package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

// bufferSink is a raft.SnapshotSink over a bytes.Buffer.
type bufferSink struct {
	bytes.Buffer
	closed, cancelled bool
	failWrites        bool
}

func (s *bufferSink) ID() string { return "test" }
func (s *bufferSink) Cancel() error {
	s.cancelled = true
	return nil
}
func (s *bufferSink) Close() error {
	s.closed = true
	return nil
}
func (s *bufferSink) Write(p []byte) (int, error) {
	if s.failWrites {
		return 0, errors.New("disk full")
	}
	return s.Buffer.Write(p)
}

var _ raft.SnapshotSink = (*bufferSink)(nil)

func mustEncode(t testing.TB, cmd Command) []byte {
	t.Helper()
	b, err := Encode(cmd)
	if err != nil {
		t.Fatalf("encode %T: %v", cmd, err)
	}
	return b
}

// applyLog applies cmd to f as the entry at index and returns the response.
func applyLog(t testing.TB, f *FSM, index uint64, cmd Command) any {
	t.Helper()
	return f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: mustEncode(t, cmd)})
}

// applyOK applies cmds in order after the FSM's current index, failing the
// test on any rejection.
func applyOK(t testing.TB, f *FSM, cmds ...Command) {
	t.Helper()
	for _, cmd := range cmds {
		idx := f.State().Index + 1
		if res := applyLog(t, f, idx, cmd); res != nil {
			if err, ok := res.(error); ok {
				t.Fatalf("apply %s %+v: %v", cmd.Type(), cmd, err)
			}
		}
	}
}

// snapshotBytes is st in the snapshot format.
func snapshotBytes(t testing.TB, st *State) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteSnapshot(&b, st); err != nil {
		t.Fatalf("write snapshot: %v", err)
	}
	return b.Bytes()
}

// stateJSON is a deep rendering of st, to check it did not change.
func stateJSON(t testing.TB, st *State) string {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func peer(name string, id int32, kafka string) Peer {
	return Peer{ID: id, Name: name, KafkaAddr: kafka}
}

func cluster(name string, bootstrap ...string) Cluster {
	if len(bootstrap) == 0 {
		bootstrap = []string{name + ".kafka.test:9092"}
	}
	return Cluster{Name: name, Bootstrap: bootstrap}
}

func job(id, kind string, state JobState, created, updated int64, spec string) Job {
	j := Job{ID: id, Kind: kind, State: state, CreatedAt: created, UpdatedAt: updated}
	if spec != "" {
		j.Spec = json.RawMessage(spec)
	}
	return j
}

// fullLog populates every section.
func fullLog() []Command {
	return []Command{
		&PutCluster{Cluster: Cluster{Name: "east", Bootstrap: []string{"e1:9092", "e2:9092"}, Region: "eu-1",
			TLS:  &ClusterTLS{CAFile: "/etc/ssl/ca.pem", ServerName: "kafka.east"},
			SASL: &ClusterSASL{Mechanism: SASLScramSHA512, Username: "proxy", PasswordFile: "/etc/switchyard/east.pw"}}},
		&PutCluster{Cluster: cluster("west")},
		&RegisterPeer{Peer: Peer{ID: AutoPeerID, Name: "a1", Region: "eu-1a", KafkaAddr: "a1:9092", AdminAddr: "a1:18080",
			RaftAddr: "a1:7000", GossipAddr: "a1:7001", Version: "0.1.0",
			LocalBrokers: []BrokerRef{{"west", 4}, {"east", 1}}}},
		&RegisterPeer{Peer: Peer{ID: AutoPeerID, Name: "a2", KafkaAddr: "a2:9092", RaftAddr: "a2:7000"}},
		&PutRegion{Region: Region{Name: "dc2", Networks: []string{"10.2.0.0/16"}}},
		&PutRegion{Region: Region{Name: "dc1", Networks: []string{"10.1.0.0/16", "fd00:1::/32"}, Fallback: []string{"dc2"}}},
		&PutRoute{Topic: "orders", Cluster: "east"},
		&PutRoute{Topic: "events", Cluster: "east", RouteTargets: RouteTargets{Regions: map[string]string{"dc2": "west"},
			Fallback: []string{"east", "west"}, Resume: ResumeTimestamp, Failback: FailbackManual}},
		&PutPrefixRoute{Prefix: "logs.", Cluster: "west", RouteTargets: RouteTargets{Regions: map[string]string{"dc1": "east"}}},
		&PutGroupRoute{Prefix: "billing-", Cluster: "east", RouteTargets: RouteTargets{Regions: map[string]string{"dc2": "west"}}},
		&SetDefaultCluster{Cluster: "west", RouteTargets: RouteTargets{Fallback: []string{"east"}}},
		&SetClusterID{ID: "sw-Zm9vYmFyYmF6cXV4"},
		&PutQuota{Quota: Quota{Topic: "orders", ProduceBytesPerSec: 1 << 20, FetchBytesPerSec: 2 << 20}},
		&PutQuota{Quota: Quota{Topic: "logs.", Prefix: true, ProduceBytesPerSec: 5 << 20}},
		&PutJob{Job: job("mig-1", "migrate-topic", JobRunning, 1700000000000, 1700000001000, `{"topic": "orders", "to": "west"}`)},
		&AllowPeer{Name: "a3"},
		// A migration left switched: the migrations and chains sections.
		&PutRoute{Topic: "payments", Cluster: "east"},
		&StartMigration{Topic: "payments", From: "east", To: "west", Partitions: 2, Started: 1700000002000},
		&UpdateMigration{Topic: "payments", State: MigrationRunning, Phase: PhaseFence, At: 1700000003000},
		&SwitchMigration{Topic: "payments", Starts: []int64{100, 250}, Physical: []int64{0, 0}, EpochBase: 40, At: 1700000004000},
		&UpdateMigration{Topic: "payments", State: MigrationSwitched, Phase: PhaseServing, GroupsBehind: []string{"billing-1"}, At: 1700000005000},
		// A failover: the failover section.
		&PutRoute{Topic: "carts", Cluster: "east", RouteTargets: RouteTargets{Fallback: []string{"west"}, Resume: ResumeTimestamp, Failback: FailbackManual}},
		&SetFailover{Entry: ClusterFailover{Cluster: "east", State: FailoverMoved, Since: 1700000006000, RoutesMoved: 1}},
		// The users section.
		&PutUserCredential{Name: "alice", Credential: testCredential(SASLScramSHA512, "alice-secret")},
		&PutUserCredential{Name: "alice", Credential: testCredential(SASLPlain, "alice-plain")},
		&PutUserCredential{Name: "bob@example.com", Credential: testCredential(SASLScramSHA256, "bob-secret")},
		// Authorization rules: the acls section.
		&CreateACLs{ACLs: []ACL{
			{Principal: "User:alice", Host: "*", ResourceType: ResourceTopic, ResourceName: "orders", Pattern: PatternLiteral, Operation: OpWrite, Permission: PermissionAllow},
			{Principal: "User:*", Host: "10.1.2.3", ResourceType: ResourceGroup, ResourceName: "billing-", Pattern: PatternPrefixed, Operation: OpRead, Permission: PermissionDeny},
			{Principal: "User:ops", Host: "*", ResourceType: ResourceCluster, ResourceName: ClusterResourceName, Pattern: PatternLiteral, Operation: OpAlter, Permission: PermissionAllow},
		}},
		// Shared producer ids: the producer_ids section (beside the State).
		&ClaimProducerID{ClaimedProducerID{Cluster: "east", VirtualID: 1<<40 | 7, VirtualEpoch: 2, RealID: 4001, RealEpoch: 0, At: 1700000007000}},
		&ClaimProducerID{ClaimedProducerID{Cluster: "west", VirtualID: 1<<40 | 7, VirtualEpoch: 2, RealID: 12, RealEpoch: 3, At: 1700000007001}},
	}
}

// oneOfEach is one command of every type, valid in this order on a fresh FSM.
func oneOfEach() []Command {
	return []Command{
		&PutCluster{Cluster: cluster("c1")},
		&PutCluster{Cluster: cluster("c2")},
		&RegisterPeer{Peer: Peer{ID: 3, Name: "p3", KafkaAddr: "p3:9092", LocalBrokers: []BrokerRef{{"c1", 1}}}},
		&RegisterPeer{Peer: Peer{ID: AutoPeerID, Name: "p4", KafkaAddr: "p4:9092"}},
		&RemovePeer{ID: 4},
		&PutRoute{Topic: "t1", Cluster: "c2"},
		&DeleteRoute{Topic: "t1"},
		&PutPrefixRoute{Prefix: "pre", Cluster: "c2"},
		&DeletePrefixRoute{Prefix: "pre"},
		&PutGroupRoute{Prefix: "g", Cluster: "c2"},
		&DeleteGroupRoute{Prefix: "g"},
		&SetDefaultCluster{Cluster: "c2"},
		&SetDefaultCluster{Cluster: ""},
		&PutQuota{Quota: Quota{Topic: "t1", ProduceBytesPerSec: 100}},
		&DeleteQuota{Topic: "t1"},
		&PutJob{Job: job("j1", "reset-offsets", JobPending, 10, 10, `{"group":"g"}`)},
		&DeleteJob{ID: "j1"},
		&DeleteCluster{Name: "c2"},
		&SetClusterID{ID: "virtual-1"},
		&AllowPeer{Name: "p5"},
		&DisallowPeer{Name: "p5"},
		&PutCluster{Cluster: cluster("c2")},
		&PutRoute{Topic: "t2", Cluster: "c1"},
		&StartMigration{Topic: "t2", From: "c1", To: "c2", Partitions: 1, Started: 20},
		&UpdateMigration{Topic: "t2", State: MigrationRunning, Phase: PhaseFence, At: 21},
		&SwitchMigration{Topic: "t2", Starts: []int64{7}, Physical: []int64{0}, EpochBase: 5, At: 22},
		&FinishMigration{Topic: "t2", At: 23},
		&StartOffsetReset{Group: "g1", Topics: []string{"t2"}, To: ResetTo{Kind: ResetToShift, Value: -5}, Targets: []ResetTarget{{Topic: "t2", Partition: 0, Old: 9, New: 4}}, At: 24},
		&UpdateOffsetReset{Group: "g1", Created: 24, State: ResetFencing, Members: []ResetMember{{ID: "m1", Protocol: ProtocolClassic}}, At: 25},
		&PutRegion{Region: Region{Name: "r1", Networks: []string{"10.0.0.0/8"}}},
		&DeleteRegion{Name: "r1"},
		&SetFailover{Entry: ClusterFailover{Cluster: "c1", State: FailoverDown, Since: 26}},
		&PutUserCredential{Name: "u1", Credential: testCredential(SASLScramSHA256, "pw")},
		&DeleteUserCredential{Name: "u1"},
		&CreateACLs{ACLs: []ACL{{Principal: "User:a", Host: "*", ResourceType: ResourceTopic, ResourceName: "t2", Pattern: PatternLiteral, Operation: OpRead, Permission: PermissionAllow}}},
		&DeleteACLs{Filters: []ACLFilter{{Principal: "User:a"}}},
		&ClaimProducerID{ClaimedProducerID{Cluster: "c1", VirtualID: 2<<40 | 1, RealID: 0, At: 27}},
	}
}
