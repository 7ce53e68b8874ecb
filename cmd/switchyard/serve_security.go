package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/switchyard-proxy/switchyard/kafka"
)

// kafkaSecurityFlags are the Kafka listener's TLS and SASL settings
// (kafka.Security; docs/security.md). Embedded in serveConfig, so each is a
// flag and a config-file key (the flag name with _ for -).
type kafkaSecurityFlags struct {
	KafkaTLSCertFile     string `json:"kafka_tls_cert_file"`
	KafkaTLSKeyFile      string `json:"kafka_tls_key_file"`
	KafkaTLSClientCAFile string `json:"kafka_tls_client_ca_file"`
	KafkaSASLMechanisms  string `json:"kafka_sasl_mechanisms"`
	KafkaOAuthJWKSFile   string `json:"kafka_oauth_jwks_file"`
	KafkaOAuthIssuer     string `json:"kafka_oauth_issuer"`
	KafkaOAuthAudience   string `json:"kafka_oauth_audience"`
	KafkaSessionLifetime string `json:"kafka_session_lifetime"`
}

func addKafkaSecurityFlags(fs *flag.FlagSet, f *kafkaSecurityFlags) {
	fs.StringVar(&f.KafkaTLSCertFile, "kafka-tls-cert-file", f.KafkaTLSCertFile, "Kafka listener: TLS certificate (chain) PEM file; with --kafka-tls-key-file turns TLS on (re-read when it changes)")
	fs.StringVar(&f.KafkaTLSKeyFile, "kafka-tls-key-file", f.KafkaTLSKeyFile, "Kafka listener: TLS private key PEM file")
	fs.StringVar(&f.KafkaTLSClientCAFile, "kafka-tls-client-ca-file", f.KafkaTLSClientCAFile, "Kafka listener: require client certificates signed by these CA certificates (PEM); the principal is User:<subject DN> unless SASL authenticates")
	fs.StringVar(&f.KafkaSASLMechanisms, "kafka-sasl-mechanisms", f.KafkaSASLMechanisms, "Kafka listener: comma-separated SASL mechanisms clients must authenticate with: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER (empty: no SASL)")
	fs.StringVar(&f.KafkaOAuthJWKSFile, "kafka-oauth-jwks-file", f.KafkaOAuthJWKSFile, "Kafka listener: JSON Web Key Set file OAUTHBEARER tokens are verified with (re-read when it changes)")
	fs.StringVar(&f.KafkaOAuthIssuer, "kafka-oauth-issuer", f.KafkaOAuthIssuer, "Kafka listener: required iss claim of OAUTHBEARER tokens (empty: not checked)")
	fs.StringVar(&f.KafkaOAuthAudience, "kafka-oauth-audience", f.KafkaOAuthAudience, "Kafka listener: required aud claim value of OAUTHBEARER tokens (empty: not checked)")
	fs.StringVar(&f.KafkaSessionLifetime, "kafka-session-lifetime", f.KafkaSessionLifetime, "Kafka listener: SASL session lifetime after which clients must re-authenticate (KIP-368, Kafka's connections.max.reauth.ms; 0: until the token expires, or forever)")
}

// kafkaSecurity checks the listener's TLS and SASL settings.
func (f *kafkaSecurityFlags) kafkaSecurity() (kafka.Security, error) {
	sec := kafka.Security{
		TLSCertFile:     f.KafkaTLSCertFile,
		TLSKeyFile:      f.KafkaTLSKeyFile,
		TLSClientCAFile: f.KafkaTLSClientCAFile,
		SASLMechanisms:  kafka.ParseMechanisms(f.KafkaSASLMechanisms),
		OAuthJWKSFile:   f.KafkaOAuthJWKSFile,
		OAuthIssuer:     f.KafkaOAuthIssuer,
		OAuthAudience:   f.KafkaOAuthAudience,
	}
	if f.KafkaSessionLifetime != "" {
		d, err := time.ParseDuration(f.KafkaSessionLifetime)
		if err != nil || d < 0 {
			return sec, fmt.Errorf("serve: --kafka-session-lifetime %q: want a duration such as 1h, or 0 for none", f.KafkaSessionLifetime)
		}
		sec.SessionLifetime = d
	}
	if err := sec.Validate(); err != nil {
		return sec, fmt.Errorf("serve: %w", err)
	}
	return sec, nil
}
