// Package rawio reads and writes TCP connections with raw read(2) and
// write(2) calls on their non-blocking sockets, through syscall.RawConn, so
// the runtime's netpoller still parks a goroutine until its socket is ready.
//
// Why: a read or write through net.Conn enters the runtime's syscall state,
// and the first such call after the process went idle wakes sysmon, which
// then polls every 20 µs until every P is idle again (golang/go#18236). A
// process that wakes a few thousand times a second for a little work each
// time (a proxy forwarding small requests; a peer's Raft heartbeats and RPCs
// between them) pays that polling on every wake, and on a virtualised host
// each poll is a context switch. Calls on a non-blocking socket return at
// once, which is what RawSyscall asks of its callers; the goroutine keeps
// its P for those microseconds.
//
// Only calls of up to Max bytes go raw: a larger one may copy for long
// enough that the goroutine should give up its P, and it is a bulk transfer
// whose sysmon cost does not matter, so it takes the ordinary path (the same
// poll.FD, so the two mix safely), or with Clipped reads at most Max raw.
// Off Linux, Clipped returns its argument.
package rawio

// Max is the largest read or write done with a raw system call.
const Max = 64 << 10
