package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard-proxy/switchyard/fsm"
)

// The admin API takes and returns a backend cluster's nested tls and sasl
// objects, checks on the receiving peer that the files they name exist,
// and refuses bad combinations with a 400 that changes nothing.
func TestAdminClusterTLSSASL(t *testing.T) {
	n := startSolo(t, "tok")
	dir := t.TempDir()
	files := map[string]string{}
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem", "proxy.pw", "token.jwt", "client.secret"} {
		p := filepath.Join(dir, f)
		if err := os.WriteFile(p, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		files[f] = p
	}
	missing := filepath.Join(dir, "missing.pw")
	body := fmt.Sprintf(`{"bootstrap":["127.0.0.1:1"],"tls":{"ca_file":%q,"cert_file":%q,"key_file":%q,"server_name":"kafka.internal"},`+
		`"sasl":{"mechanism":"SCRAM-SHA-512","username":"proxy","password_file":%q}}`,
		files["ca.pem"], files["cert.pem"], files["key.pem"], files["proxy.pw"])

	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		says                     string
	}{
		{"missing password file", "PUT", "/v1/clusters/sec", strings.Replace(body, files["proxy.pw"], missing, 1), 400, missing},
		{"relative ca", "PUT", "/v1/clusters/sec", `{"bootstrap":["127.0.0.1:1"],"tls":{"ca_file":"ca.pem"}}`, 400, "absolute"},
		{"cert without key", "PUT", "/v1/clusters/sec", fmt.Sprintf(`{"bootstrap":["127.0.0.1:1"],"tls":{"cert_file":%q}}`, files["cert.pem"]), 400, "key_file"},
		{"directory as ca", "PUT", "/v1/clusters/sec", fmt.Sprintf(`{"bootstrap":["127.0.0.1:1"],"tls":{"ca_file":%q}}`, dir), 400, "not a regular file"},
		{"unknown mechanism", "PUT", "/v1/clusters/sec", `{"bootstrap":["127.0.0.1:1"],"sasl":{"mechanism":"GSSAPI"}}`, 400, "GSSAPI"},
		{"password in body", "PUT", "/v1/clusters/sec", `{"bootstrap":["127.0.0.1:1"],"sasl":{"mechanism":"PLAIN","username":"u","password":"p"}}`, 400, "unknown field"},
		{"flat fields of old builds", "PUT", "/v1/clusters/sec", `{"bootstrap":["127.0.0.1:1"],"sasl_mechanism":"PLAIN"}`, 400, "unknown field"},
		{"oauth both", "PUT", "/v1/clusters/sec", fmt.Sprintf(`{"bootstrap":["127.0.0.1:1"],"sasl":{"mechanism":"OAUTHBEARER","token_file":%q,"token_endpoint":"https://idp/t","client_id":"p","client_secret_file":%q}}`, files["token.jwt"], files["client.secret"]), 400, "not both"},
		{"oauth plain http", "PUT", "/v1/clusters/sec", fmt.Sprintf(`{"bootstrap":["127.0.0.1:1"],"sasl":{"mechanism":"OAUTHBEARER","token_endpoint":"http://idp.example/t","client_id":"p","client_secret_file":%q}}`, files["client.secret"]), 400, "loopback"},
		{"nothing stored", "GET", "/v1/clusters/sec", "", 404, "does not exist"},
		{"put", "PUT", "/v1/clusters/sec", body, 200, `"server_name": "kafka.internal"`},
		{"tls with system roots", "PUT", "/v1/clusters/roots", `{"bootstrap":["127.0.0.1:2"],"tls":{}}`, 200, `"tls": {}`},
		{"oauth client credentials", "PUT", "/v1/clusters/oauth", fmt.Sprintf(`{"bootstrap":["127.0.0.1:3"],"sasl":{"mechanism":"OAUTHBEARER","token_endpoint":"https://idp.example/token","client_id":"proxy","client_secret_file":%q,"scope":"kafka"}}`, files["client.secret"]), 200, `"token_endpoint"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, got := call(t, n, tc.method, tc.path, "tok", tc.body)
			if status != tc.status || !strings.Contains(got, tc.says) {
				t.Fatalf("%s %s: %d %s, want %d saying %q", tc.method, tc.path, status, got, tc.status, tc.says)
			}
		})
	}
	status, _, got := call(t, n, "GET", "/v1/clusters/sec", "tok", "")
	if status != http.StatusOK {
		t.Fatalf("GET: %d %s", status, got)
	}
	var c fsm.Cluster
	if err := json.Unmarshal([]byte(got), &c); err != nil {
		t.Fatal(err)
	}
	want := fsm.Cluster{Name: "sec", Bootstrap: []string{"127.0.0.1:1"},
		TLS:  &fsm.ClusterTLS{CAFile: files["ca.pem"], CertFile: files["cert.pem"], KeyFile: files["key.pem"], ServerName: "kafka.internal"},
		SASL: &fsm.ClusterSASL{Mechanism: fsm.SASLScramSHA512, Username: "proxy", PasswordFile: files["proxy.pw"]}}
	if c.TLS == nil || c.SASL == nil || *c.TLS != *want.TLS || *c.SASL != *want.SASL {
		t.Fatalf("GET gives %s, want %+v %+v", got, *want.TLS, *want.SASL)
	}
	if st := n.fsm.State(); len(st.Clusters) != 3 {
		t.Fatalf("state holds %d clusters, want 3", len(st.Clusters))
	}
	if strings.Contains(got, "x\\n") {
		t.Fatalf("a secret's contents reached the state: %s", got)
	}
}

// A backend cluster that takes only mutual TLS and SCRAM-SHA-512, defined through
// the admin API, is served by the peer's data plane: a client produces and
// consumes through the peer.
func TestDataPlaneServesSecureCluster(t *testing.T) {
	ca := newTestCA(t)
	server, _ := ca.peerTLS(t, "broker")
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(server), kfake.EnableSASL(),
		kfake.Superuser(fsm.SASLScramSHA512, "proxy", "scram-secret"), kfake.SeedTopics(1, "secure"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	dir := t.TempDir()
	caFile, pw := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "proxy.pw")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pw, []byte("scram-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The broker requires a client certificate (mutual TLS): the proxy
	// presents the one its cert_file and key_file name.
	certFile, keyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	leaf := server.Certificates[0]
	keyDER, err := x509.MarshalECPrivateKey(leaf.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startSolo(t, "")
	body := fmt.Sprintf(`{"bootstrap":[%q],"tls":{"ca_file":%q,"cert_file":%q,"key_file":%q},"sasl":{"mechanism":"SCRAM-SHA-512","username":"proxy","password_file":%q}}`,
		kc.ListenAddrs()[0], caFile, certFile, keyFile, pw)
	if code, _, got := call(t, n, "PUT", "/v1/clusters/secure", "", body); code != 200 {
		t.Fatalf("put cluster: %d %s", code, got)
	}
	if code, _, got := call(t, n, "PUT", "/v1/default-cluster", "", `{"cluster":"secure"}`); code != 200 {
		t.Fatalf("default cluster: %d %s", code, got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.KafkaAddr()), kgo.DefaultProduceTopic("secure"), kgo.ConsumeTopics("secure"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("through tls and scram")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	fs := cl.PollFetches(ctx)
	if fs.NumRecords() != 1 || string(fs.Records()[0].Value) != "through tls and scram" {
		t.Fatalf("consumed %d records (%v)", fs.NumRecords(), fs.Errors())
	}
}
