package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestServeKafkaSecurity: the Kafka listener's TLS and SASL settings come
// from the config file and from flags, reach node.Config, and contradictory
// ones are refused with the flag to fix named.
func TestServeKafkaSecurity(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "peer.json")
	conf := `{"name": "a1", "data_dir": "` + dir + `", "bootstrap_expect": 1,
		"kafka_tls_cert_file": "/etc/s/kafka.pem", "kafka_tls_key_file": "/etc/s/kafka-key.pem",
		"kafka_tls_client_ca_file": "/etc/s/clients-ca.pem", "kafka_sasl_mechanisms": "scram-sha-512, OAUTHBEARER",
		"kafka_oauth_jwks_file": "/etc/s/jwks.json", "kafka_oauth_issuer": "https://idp", "kafka_oauth_audience": "kafka",
		"kafka_session_lifetime": "1h"}`
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := defaultServeConfig()
	if err := loadConfigFile(file, &cfg); err != nil {
		t.Fatal(err)
	}
	nc, err := cfg.nodeConfig()
	if err != nil {
		t.Fatal(err)
	}
	s := nc.KafkaSecurity
	if s.TLSCertFile != "/etc/s/kafka.pem" || s.TLSKeyFile != "/etc/s/kafka-key.pem" || s.TLSClientCAFile != "/etc/s/clients-ca.pem" ||
		!slices.Equal(s.SASLMechanisms, []string{"SCRAM-SHA-512", "OAUTHBEARER"}) || s.OAuthJWKSFile != "/etc/s/jwks.json" ||
		s.OAuthIssuer != "https://idp" || s.OAuthAudience != "kafka" || s.SessionLifetime != time.Hour || !s.Authenticating() {
		t.Fatalf("from the file: %+v", s)
	}

	for _, tc := range []struct{ args, want string }{
		{"--kafka-tls-client-ca-file /ca.pem", "--kafka-tls-cert-file"},
		{"--kafka-tls-cert-file /c.pem", "key file"},
		{"--kafka-sasl-mechanisms OAUTHBEARER", "--kafka-oauth-jwks-file"},
		{"--kafka-sasl-mechanisms GSSAPI", "unknown mechanism"},
		{"--kafka-session-lifetime 1h", "--kafka-sasl-mechanisms"},
		{"--kafka-sasl-mechanisms PLAIN --kafka-session-lifetime soon", "--kafka-session-lifetime"},
		{"--kafka-oauth-issuer x --kafka-sasl-mechanisms PLAIN", "OAUTHBEARER"},
	} {
		cfg := defaultServeConfig()
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		serveFlags(fs, &cfg)
		if err := fs.Parse(append([]string{"--name", "a1", "--data-dir", dir, "--bootstrap-expect", "1"}, strings.Fields(tc.args)...)); err != nil {
			t.Fatal(err)
		}
		if _, err := cfg.nodeConfig(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", tc.args, err, tc.want)
		}
	}
}
