// Package migration is the acceptance test of issue 9, live topic
// migration: a topic moves from one backend cluster to another and back
// while real clients (franz-go, librdkafka, sarama, kafka-python) keep
// producing and consuming through the proxy, and nothing is lost,
// duplicated, reordered or renumbered. The same flow, reduced, runs
// against real `switchyard serve` processes with the Raft leader killed in
// the fence phase. The package holds tests only.
package migration
