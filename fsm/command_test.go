package fsm

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestCommandTable keeps the table, the structs and the numbering in step.
func TestCommandTable(t *testing.T) {
	seen := map[CommandType]bool{}
	for _, cmd := range oneOfEach() {
		seen[cmd.Type()] = true
	}
	for i, info := range commandTable {
		ct := CommandType(i)
		if i == 0 {
			if info.new != nil {
				t.Fatal("type 0 must stay unused")
			}
			continue
		}
		if info.new == nil && info.name == "" {
			continue // a number not (or no longer) in use
		}
		if info.new == nil || info.name == "" || info.version == 0 {
			t.Fatalf("type %d has an incomplete table row %+v", i, info)
		}
		if got := info.new().Type(); got != ct {
			t.Errorf("row %d (%s) builds a %s", i, info.name, got)
		}
		if ct.String() != info.name {
			t.Errorf("String() = %q, want %q", ct.String(), info.name)
		}
		if !seen[ct] {
			t.Errorf("%s has no example in oneOfEach", ct)
		}
	}
	if s := CommandType(200).String(); s != "CommandType(200)" {
		t.Errorf("unknown type prints %q", s)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, cmd := range append(oneOfEach(), fullLog()...) {
		t.Run(cmd.Type().String(), func(t *testing.T) {
			b := mustEncode(t, cmd)
			want := cmd.Type().Version()
			if Needs(cmd) == 1 && cmd.Type().Introduced() > 1 {
				want = 1 // a route command without targets (Needs)
			}
			if c, ok := cmd.(*PutCluster); ok {
				want = clusterPayloadVersion(c) // the oldest that carries it (Needs)
			}
			if b[0] != byte(cmd.Type()) || b[1] != want {
				t.Fatalf("header bytes %d %d, want version %d", b[0], b[1], want)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			// Decode compacts nothing: Spec whitespace survives until
			// Apply canonicalises it, so compare encodings.
			if b2 := mustEncode(t, got); !bytes.Equal(b, b2) {
				t.Fatalf("re-encoded\n%s\nwant\n%s", b2, b)
			}
			if reflect.TypeOf(got) != reflect.TypeOf(cmd) {
				t.Fatalf("decoded a %T, want %T", got, cmd)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	v := TypePutRoute.Version()
	hdr := func(t CommandType, v byte, payload string) []byte { return append([]byte{byte(t), v}, payload...) }
	cases := []struct {
		name string
		in   []byte
		err  error
		msg  string
	}{
		{"empty", nil, ErrShortCommand, "0 bytes"},
		{"one byte", []byte{5}, ErrShortCommand, "1 bytes"},
		{"type 0", hdr(0, 1, `{}`), ErrUnknownCommand, "0"},
		{"type from the future", hdr(250, 1, `{}`), ErrUnknownCommand, "250"},
		{"version 0", hdr(TypePutRoute, 0, `{}`), ErrUnknownVersion, "PutRoute version 0"},
		{"version from the future", hdr(TypePutRoute, v+1, `{}`), ErrUnknownVersion, "reads version"},
		{"no payload", hdr(TypePutRoute, v, ``), ErrBadPayload, "JSON object"},
		{"null payload", hdr(TypePutRoute, v, `null`), ErrBadPayload, "JSON object"},
		{"array payload", hdr(TypePutRoute, v, `[1]`), ErrBadPayload, "JSON object"},
		{"leading space", hdr(TypePutRoute, v, ` {}`), ErrBadPayload, "JSON object"},
		{"truncated", hdr(TypePutRoute, v, `{"topic":"a"`), ErrBadPayload, "PutRoute"},
		{"unknown field", hdr(TypePutRoute, v, `{"topic":"a","cluster":"b","weight":3}`), ErrBadPayload, "weight"},
		{"wrong field type", hdr(TypePutRoute, v, `{"topic":7}`), ErrBadPayload, "PutRoute"},
		{"int overflow", hdr(TypeRemovePeer, 1, `{"id":4294967296}`), ErrBadPayload, "RemovePeer"},
		{"trailing garbage", hdr(TypePutRoute, v, `{"topic":"a"}x`), ErrTrailingData, "after its JSON object"},
		{"two objects", hdr(TypePutRoute, v, `{"topic":"a"}{"topic":"b"}`), ErrTrailingData, "after its JSON object"},
		{"trailing brace", hdr(TypePutRoute, v, `{"topic":"a"}}`), ErrTrailingData, "after its JSON object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd, err := Decode(tc.in)
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Decode = %v, %v; want %v containing %q", cmd, err, tc.err, tc.msg)
			}
		})
	}
	// Trailing white space is not garbage.
	if _, err := Decode(hdr(TypePutRoute, v, "{\"topic\":\"a\"}\n ")); err != nil {
		t.Fatalf("trailing white space: %v", err)
	}
}

func TestEncodeRejects(t *testing.T) {
	if _, err := Encode(nil); !errors.Is(err, ErrBadPayload) {
		t.Errorf("Encode(nil) = %v", err)
	}
	var nilRoute *PutRoute
	if _, err := Encode(nilRoute); !errors.Is(err, ErrBadPayload) {
		t.Errorf("Encode(typed nil) = %v", err)
	}
	if _, err := Encode(&PutJob{Job: Job{ID: "j", Spec: []byte("{not json")}}); !errors.Is(err, ErrBadPayload) {
		t.Errorf("Encode(bad spec) = %v", err)
	}
}

// TestCommandValidate covers the stateless checks the admin API runs before
// proposing; Apply runs the same ones (TestApplyRejects).
func TestCommandValidate(t *testing.T) {
	long := strings.Repeat("a", 250)
	cases := []struct {
		name string
		cmd  Command
		msg  string // "" = valid
	}{
		{"peer ok", &RegisterPeer{Peer: peer("a", AutoPeerID, "a:1")}, ""},
		{"peer no name", &RegisterPeer{Peer: Peer{ID: 1, KafkaAddr: "a:1"}}, "needs a name"},
		{"peer bad name", &RegisterPeer{Peer: peer("a b", 1, "a:1")}, `has " "`},
		{"peer id -2", &RegisterPeer{Peer: peer("a", -2, "a:1")}, "negative id"},
		{"peer no port", &RegisterPeer{Peer: peer("a", 1, "a")}, "not host:port"},
		{"peer bad raft addr", &RegisterPeer{Peer: Peer{ID: 1, Name: "a", KafkaAddr: "a:1", RaftAddr: "a"}}, "raft address"},
		{"peer control char region", &RegisterPeer{Peer: Peer{ID: 1, Name: "a", KafkaAddr: "a:1", Region: "eu\n"}}, "control character"},
		{"peer negative broker", &RegisterPeer{Peer: Peer{ID: 1, Name: "a", KafkaAddr: "a:1", LocalBrokers: []BrokerRef{{"c", -1}}}}, "negative id"},
		{"peer broker twice", &RegisterPeer{Peer: Peer{ID: 1, Name: "a", KafkaAddr: "a:1", LocalBrokers: []BrokerRef{{"c", 1}, {"c", 1}}}}, "twice"},
		{"remove negative", &RemovePeer{ID: -1}, "negative id"},
		{"cluster ok", &PutCluster{Cluster: cluster("c")}, ""},
		{"cluster no bootstrap", &PutCluster{Cluster: Cluster{Name: "c"}}, "no bootstrap"},
		{"cluster bad bootstrap", &PutCluster{Cluster: cluster("c", "b")}, "not host:port"},
		{"cluster tls system roots", &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, TLS: &ClusterTLS{}}}, ""},
		{"cluster relative ca", &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, TLS: &ClusterTLS{CAFile: "ca.pem"}}}, "absolute"},
		{"cluster cert without key", &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, TLS: &ClusterTLS{CertFile: "/c"}}}, "both"},
		{"cluster sasl ok", &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, SASL: &ClusterSASL{Mechanism: SASLPlain, Username: "u", PasswordFile: "/pw"}}}, ""},
		{"cluster sasl no password", &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, SASL: &ClusterSASL{Mechanism: SASLPlain, Username: "u"}}}, "password_file"},
		{"cluster sasl unknown", &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, SASL: &ClusterSASL{Mechanism: "GSSAPI", Username: "u", PasswordFile: "/pw"}}}, "GSSAPI"},
		{"cluster sasl without mechanism", &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, SASL: &ClusterSASL{Username: "u"}}}, "needs a mechanism"},
		{"cluster scram with token", &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, SASL: &ClusterSASL{Mechanism: SASLScramSHA512, Username: "u", PasswordFile: "/pw", TokenFile: "/t"}}}, "password_file only"},
		{"cluster oauth token file", &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, SASL: &ClusterSASL{Mechanism: SASLOAuthBearer, TokenFile: "/t"}}}, ""},
		{"cluster oauth client credentials", &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, SASL: &ClusterSASL{Mechanism: SASLOAuthBearer, TokenEndpoint: "https://idp.example/token", ClientID: "proxy", ClientSecretFile: "/s", Scope: "kafka"}}}, ""},
		{"cluster oauth both", &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, SASL: &ClusterSASL{Mechanism: SASLOAuthBearer, TokenFile: "/t", TokenEndpoint: "https://idp/t", ClientID: "p", ClientSecretFile: "/s"}}}, "not both"},
		{"cluster oauth nothing", &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, SASL: &ClusterSASL{Mechanism: SASLOAuthBearer}}}, "needs a token_file"},
		{"cluster oauth no secret", &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, SASL: &ClusterSASL{Mechanism: SASLOAuthBearer, TokenEndpoint: "https://idp/t", ClientID: "p"}}}, "client_secret_file"},
		{"cluster oauth password", &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, SASL: &ClusterSASL{Mechanism: SASLOAuthBearer, Username: "u", TokenFile: "/t"}}}, "no username"},
		{"cluster oauth plain http", &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, SASL: &ClusterSASL{Mechanism: SASLOAuthBearer, TokenEndpoint: "http://idp.example/t", ClientID: "p", ClientSecretFile: "/s"}}}, "loopback"},
		{"cluster oauth loopback http", &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, SASL: &ClusterSASL{Mechanism: SASLOAuthBearer, TokenEndpoint: "http://127.0.0.1:8080/t", ClientID: "p", ClientSecretFile: "/s"}}}, ""},
		{"cluster oauth ftp", &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, SASL: &ClusterSASL{Mechanism: SASLOAuthBearer, TokenEndpoint: "ftp://idp/t", ClientID: "p", ClientSecretFile: "/s"}}}, "scheme"},
		{"cluster oauth relative secret", &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, SASL: &ClusterSASL{Mechanism: SASLOAuthBearer, TokenEndpoint: "https://idp/t", ClientID: "p", ClientSecretFile: "s"}}}, "absolute"},
		{"delete cluster empty", &DeleteCluster{}, "empty name"},
		{"route ok", &PutRoute{Topic: "a.b_c-1", Cluster: "c"}, ""},
		{"route topic too long", &PutRoute{Topic: long, Cluster: "c"}, "at most 249"},
		{"route topic dot", &PutRoute{Topic: "..", Cluster: "c"}, "not a legal"},
		{"route topic slash", &PutRoute{Topic: "a/b", Cluster: "c"}, `"/"`},
		{"route no cluster", &PutRoute{Topic: "a"}, "empty name"},
		{"delete route empty", &DeleteRoute{}, "empty"},
		{"prefix dot ok", &PutPrefixRoute{Prefix: ".", Cluster: "c"}, ""},
		{"prefix empty", &PutPrefixRoute{Cluster: "c"}, "empty"},
		{"delete prefix empty", &DeletePrefixRoute{}, "empty"},
		{"group prefix any text", &PutGroupRoute{Prefix: "grüppe/1 ", Cluster: "c"}, ""},
		{"group prefix empty", &PutGroupRoute{Cluster: "c"}, "default cluster instead"},
		{"delete group empty", &DeleteGroupRoute{}, "empty"},
		{"default clear", &SetDefaultCluster{}, ""},
		{"default bad", &SetDefaultCluster{Cluster: "a b"}, "default cluster"},
		{"quota ok", &PutQuota{Quota: Quota{Topic: "t", ProduceBytesPerSec: 1}}, ""},
		{"quota zero ok", &PutQuota{Quota: Quota{Topic: "t"}}, ""},
		{"quota negative produce", &PutQuota{Quota: Quota{Topic: "t", ProduceBytesPerSec: -1}}, "negative rate"},
		{"quota negative fetch", &PutQuota{Quota: Quota{Topic: "t", Prefix: true, FetchBytesPerSec: -5}}, "negative rate"},
		{"delete quota bad", &DeleteQuota{Topic: "a b"}, "quota topic"},
		{"job ok", &PutJob{Job: job("j", "k", JobPending, 1, 1, "")}, ""},
		{"job no kind", &PutJob{Job: job("j", "", JobPending, 1, 1, "")}, "kind"},
		{"job bad state", &PutJob{Job: job("j", "k", "paused", 1, 1, "")}, `"paused"`},
		{"job bad spec", &PutJob{Job: Job{ID: "j", Kind: "k", State: JobPending, CreatedAt: 1, UpdatedAt: 1, Spec: []byte("{")}}, "not valid JSON"},
		{"job huge spec", &PutJob{Job: job("j", "k", JobPending, 1, 1, `"`+strings.Repeat("x", maxJobSpecBytes)+`"`)}, "at most"},
		{"job huge canonical spec", &PutJob{Job: job("j", "k", JobPending, 1, 1, `"`+strings.Repeat("<", maxJobSpecBytes/2)+`"`)}, "at most"},
		{"job no created", &PutJob{Job: job("j", "k", JobPending, 0, 1, "")}, "created_at"},
		{"job updated before created", &PutJob{Job: job("j", "k", JobPending, 5, 4, "")}, "before created_at"},
		{"delete job empty", &DeleteJob{}, "empty name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cmd.Validate()
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Validate = %v, want ErrInvalid containing %q", err, tc.msg)
			}
		})
	}
}
