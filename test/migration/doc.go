// Package migration is the acceptance test of issue 9, live topic
// migration: a topic moves from one backend cluster to another and back
// while real clients (franz-go, librdkafka, sarama, kafka-python) keep
// producing and consuming through the proxy, and nothing is lost,
// duplicated, reordered or renumbered. The same flow, reduced, runs
// against real `switchyard serve` processes with the Raft leader killed in
// the fence phase. The package holds tests only.
//
// make test runs it without the race detector (the Makefile says why:
// under it, a loaded two-core machine starved the in-process peers);
// `go test -race` still works for a quiet machine.
//
// To see what a client did in a failed run: SY_SARAMA_LOG=FILE writes
// sarama's log to FILE; SY_RDK_LOG=FILE sends the librdkafka producer's
// stderr to FILE, and RDK_DEBUG=eos,broker,msg (librdkafka's debug
// contexts) makes it verbose. A failing run prints the librdkafka
// producer's errors and stderr tail and the groups' problems by itself.
package migration
