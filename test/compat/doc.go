// Package compat holds the real-client compatibility tests: franz-go,
// sarama, segmentio/kafka-go, kcat (librdkafka) and kafka-python produce
// and consume through Switchyard peers in front of a kfake cluster.
package compat

import (
	_ "github.com/IBM/sarama"
	_ "github.com/segmentio/kafka-go"
	_ "github.com/twmb/franz-go/pkg/kadm"
)
