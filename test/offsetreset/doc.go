// Package offsetreset is the acceptance test of issue 10, online
// consumer-group offset resets: while a producer writes steadily, real
// consumer groups (franz-go cooperative-sticky and KIP-848, librdkafka
// through kcat, sarama) keep consuming through three peers, and each group
// in turn is reset to the earliest offset, to a timestamp in the middle of
// the data and by a shift of -100 through the admin API, with no member
// restarted. Checked per reset: the job is applied, every partition's
// first jump lands exactly on its target, nothing is skipped from the
// target to the live end, every member keeps consuming; a dry run changes
// nothing; a group with no members simply gets the offsets committed. The
// same job, reduced, runs against real `switchyard serve` processes with
// the Raft leader killed mid-reset: it ends applied or failed, never half
// applied. The package holds tests only.
//
// make test runs it without the race detector (the Makefile says why:
// under it, a loaded two-core machine starved the in-process peers);
// `go test -race` still works for a quiet machine.
package offsetreset
