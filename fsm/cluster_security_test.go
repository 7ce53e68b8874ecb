package fsm

import (
	"errors"
	"strings"
	"testing"
)

// PutCluster is written in the oldest payload version that carries it, and
// a leader needs command set 6 on every peer only for a cluster with TLS or
// SASL, set 8 only for one with a failback drain.
func TestPutClusterSecurityVersions(t *testing.T) {
	tlsSASL := Cluster{Name: "c", Bootstrap: []string{"b:1"}, TLS: &ClusterTLS{CAFile: "/ca"},
		SASL: &ClusterSASL{Mechanism: SASLScramSHA512, Username: "u", PasswordFile: "/pw"}}
	for _, tc := range []struct {
		name    string
		cluster Cluster
		version uint8
		needs   uint16
	}{
		{"plain", Cluster{Name: "c", Bootstrap: []string{"b:1"}}, 1, 1},
		{"down after", Cluster{Name: "c", Bootstrap: []string{"b:1"}, DownAfterMS: 5000}, 2, 5},
		{"tls only, system roots", Cluster{Name: "c", Bootstrap: []string{"b:1"}, TLS: &ClusterTLS{}}, 3, 6},
		{"sasl only", Cluster{Name: "c", Bootstrap: []string{"b:1"}, SASL: &ClusterSASL{Mechanism: SASLPlain, Username: "u", PasswordFile: "/pw"}}, 3, 6},
		{"tls and sasl", tlsSASL, 3, 6},
		{"failback drain", Cluster{Name: "c", Bootstrap: []string{"b:1"}, FailbackDrainMS: 30_000}, 4, 8},
		{"failback drain and tls", Cluster{Name: "c", Bootstrap: []string{"b:1"}, TLS: &ClusterTLS{}, FailbackDrainMS: 1}, 4, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := &PutCluster{Cluster: tc.cluster}
			b := mustEncode(t, cmd)
			if b[1] != tc.version {
				t.Errorf("encoded in version %d, want %d", b[1], tc.version)
			}
			if got := Needs(cmd); got != tc.needs {
				t.Errorf("Needs = %d, want %d", got, tc.needs)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if c := got.(*PutCluster).Cluster; (c.TLS == nil) != (tc.cluster.TLS == nil) || (c.SASL == nil) != (tc.cluster.SASL == nil) ||
				c.FailbackDrainMS != tc.cluster.FailbackDrainMS {
				t.Fatalf("decoded %+v, want %+v", c, tc.cluster)
			}
		})
	}
	if TypePutCluster.Introduced() != 8 || TypePutCluster.Version() != 4 || CommandSetVersion < 8 {
		t.Fatalf("PutCluster introduced in set %d at version %d (build %d), want 8 and 4", TypePutCluster.Introduced(), TypePutCluster.Version(), CommandSetVersion)
	}

	// An older payload version that claims TLS or SASL is refused: no
	// build that wrote it knew these fields.
	b := mustEncode(t, &PutCluster{Cluster: tlsSASL})
	for _, v := range []byte{1, 2} {
		old := append([]byte{b[0], v}, b[2:]...)
		if _, err := Decode(old); !errors.Is(err, ErrBadPayload) || !strings.Contains(err.Error(), "version 3") {
			t.Errorf("version %d with tls and sasl: %v, want a bad payload naming version 3", v, err)
		}
	}
	// Nor one before version 4 that claims a failback drain.
	b = mustEncode(t, &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"}, FailbackDrainMS: 5000}})
	for _, v := range []byte{1, 2, 3} {
		old := append([]byte{b[0], v}, b[2:]...)
		if _, err := Decode(old); !errors.Is(err, ErrBadPayload) || !strings.Contains(err.Error(), "version 4") {
			t.Errorf("version %d with failback_drain_ms: %v, want a bad payload naming version 4", v, err)
		}
	}
	// The flat fields of earlier builds are not this shape.
	if _, err := Decode([]byte("\x03\x02{\"cluster\":{\"name\":\"c\",\"bootstrap\":[\"b:1\"],\"tls\":true}}")); err == nil {
		t.Errorf("a flat tls bool decoded")
	}
	if _, err := Decode([]byte("\x03\x03{\"cluster\":{\"name\":\"c\",\"bootstrap\":[\"b:1\"],\"sasl\":{\"mechanism\":\"PLAIN\",\"password\":\"x\"}}}")); err == nil {
		t.Errorf("a password in the log decoded")
	}
}

// The secrets are never in the command: only their paths.
func TestPutClusterCarriesNoSecrets(t *testing.T) {
	b := string(mustEncode(t, &PutCluster{Cluster: Cluster{Name: "c", Bootstrap: []string{"b:1"},
		SASL: &ClusterSASL{Mechanism: SASLOAuthBearer, TokenEndpoint: "https://idp/t", ClientID: "p", ClientSecretFile: "/run/secret"}}}))
	for _, want := range []string{`"client_secret_file":"/run/secret"`, `"token_endpoint":"https://idp/t"`} {
		if !strings.Contains(b, want) {
			t.Errorf("payload %s lacks %s", b, want)
		}
	}
}
