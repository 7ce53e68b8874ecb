// Package compat holds the real-client compatibility tests: franz-go,
// sarama, segmentio/kafka-go, kcat (librdkafka) and kafka-python produce
// and consume through Switchyard peers in front of a kfake cluster.
package compat
