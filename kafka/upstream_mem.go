package kafka

import (
	"bufio"
	"io"
	"sync"
)

// A client connection owns one backend connection per broker it uses, and
// most of them are idle most of the time (a consumer fetching from three
// brokers, a producer between batches). So a backend connection holds its
// 64 KiB write buffer only between a request and the flush that sends it,
// and its 64 KiB read buffer only while answers are awaited or buffered;
// in between both wait in these pools. Its call FIFO is small
// (maxUpstreamCalls): the client connection's response order already
// bounds what is in flight, and a broker works through one connection's
// requests one at a time anyway.

// upstreamBufSize is the size of a backend connection's buffers while in
// use: rawMax in rawio_linux.go, so every buffered read and write goes raw.
const upstreamBufSize = 64 << 10

// maxUpstreamCalls bounds the calls awaiting answers on one backend
// connection; a client pipelining more to one broker waits for answers.
const maxUpstreamCalls = 64

var (
	upReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, upstreamBufSize) }}
	upWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, upstreamBufSize) }}
)

func getUpReader(r io.Reader) *bufio.Reader {
	br := upReaders.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putUpReader(br *bufio.Reader) {
	br.Reset(nil)
	upReaders.Put(br)
}

func getUpWriter(w io.Writer) *bufio.Writer {
	bw := upWriters.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

func putUpWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	upWriters.Put(bw)
}
