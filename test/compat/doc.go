// Package compat holds the real-client compatibility tests: franz-go,
// sarama, segmentio/kafka-go, kcat (librdkafka) and kafka-python produce
// and consume through Switchyard peers in front of a kfake cluster; franz-go
// and librdkafka (python3-confluent-kafka) run an exactly-once
// consume-transform-produce loop (txnloop_test.go); every client, at several
// versions, produces, consumes in a group, commits and resumes in the
// client-version matrix (matrix_test.go, docs/clients.md).
package compat
