// Package security holds the real-client tests of the Kafka listener's TLS
// and SASL (kafka.Security; docs/security.md): sarama with SCRAM, kcat
// (librdkafka) with SASL_SSL and SCRAM-SHA-512, kafka-python with SASL_SSL
// and PLAIN, each producing, consuming in a group and committing through an
// in-process kafka.Server in front of a kfake cluster, with the users in a
// hand-built replicated state. Certificates are generated at test time
// (internal/testpki). franz-go's SCRAM, OAUTHBEARER, mutual TLS and
// re-authentication tests are in kafka/sasl_test.go.
package security
