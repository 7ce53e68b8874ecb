package kafka

import (
	"io"
	"sync"
)

// connBufSize is the size of a client connection's read and write buffers
// while it has bytes buffered: rawMax, so every buffered call is raw.
const connBufSize = rawMax

// lazyReader is an io.Reader that can wait for data without holding a
// buffer: readFresh parks until the source is readable, then takes a pooled
// buffer of connBufSize bytes and reads into it (rawio_linux.go).
type lazyReader interface {
	readFresh() (*buffer, int, error)
}

// connReader is a client connection's read buffer. It holds a pooled
// buffer only while bytes are buffered, so an idle connection holds none:
// thousands of idle clients would otherwise pin a 64 KiB buffer each. Where
// the source can wait for data without a buffer (lazyReader), the wait
// holds none either; elsewhere the blocking read holds one.
type connReader struct {
	rd   io.Reader
	lazy lazyReader // rd's buffer-free wait, or nil
	buf  *buffer    // nil while nothing is buffered
	r, w int
}

func newConnReader(rd io.Reader) connReader {
	cr := connReader{rd: rd}
	cr.lazy, _ = rd.(lazyReader)
	return cr
}

// Buffered is how many bytes can be read without blocking.
func (cr *connReader) Buffered() int { return cr.w - cr.r }

// release returns the buffer to its pool once every byte was consumed.
func (cr *connReader) release() {
	if cr.buf != nil && cr.r == cr.w {
		putBuffer(cr.buf)
		cr.buf, cr.r, cr.w = nil, 0, 0
	}
}

// fill reads once, appending to what is buffered.
func (cr *connReader) fill() error {
	cr.release()
	if cr.buf == nil {
		if cr.lazy != nil {
			buf, n, err := cr.lazy.readFresh()
			if buf != nil && n == 0 {
				putBuffer(buf)
				buf = nil
			}
			cr.buf, cr.r, cr.w = buf, 0, n
			return err
		}
		cr.buf = getBuffer(connBufSize)
	}
	if cr.r > 0 && cr.w == len(cr.buf.b) {
		cr.w = copy(cr.buf.b, cr.buf.b[cr.r:cr.w])
		cr.r = 0
	}
	n, err := cr.rd.Read(cr.buf.b[cr.w:])
	cr.w += n
	if n == 0 {
		cr.release()
	}
	return err
}

// Peek returns the next n bytes (n ≤ connBufSize) without consuming them;
// with fewer, it also returns the error that stopped it.
func (cr *connReader) Peek(n int) ([]byte, error) {
	for cr.w-cr.r < n {
		if err := cr.fill(); err != nil {
			if cr.buf == nil {
				return nil, err
			}
			return cr.buf.b[cr.r:cr.w], err
		}
	}
	return cr.buf.b[cr.r : cr.r+n], nil
}

// Discard skips n buffered bytes (n ≤ Buffered).
func (cr *connReader) Discard(n int) (int, error) {
	n = min(n, cr.w-cr.r)
	cr.r += n
	cr.release()
	return n, nil
}

// Read reads what is buffered, else reads once: into p directly when p is
// at least a buffer long, as bufio.Reader does.
func (cr *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if cr.r == cr.w {
		if len(p) >= connBufSize {
			return cr.rd.Read(p)
		}
		if err := cr.fill(); cr.r == cr.w {
			if err == nil {
				err = io.ErrNoProgress
			}
			return 0, err
		}
	}
	n := copy(p, cr.buf.b[cr.r:cr.w])
	cr.r += n
	cr.release()
	return n, nil
}

// setReadLowWater passes a frame's missing byte count on to a source that
// can wait for that many at once (readLowWater).
func (cr *connReader) setReadLowWater(n int) {
	if lw, ok := cr.rd.(interface{ setReadLowWater(int) }); ok {
		lw.setReadLowWater(n)
	}
}

// close drops the buffer; the reader must not be used afterwards.
func (cr *connReader) close() {
	putBuffer(cr.buf)
	cr.buf, cr.r, cr.w = nil, 0, 0
}

// connWriter is a client connection's write buffer, held only between a
// write and the flush that follows it, so an idle connection holds none.
// Its user is the writer-role holder (clientConn.writeReady).
type connWriter struct {
	w   io.Writer
	buf *buffer
}

// Buffered is how many bytes await a flush.
func (cw *connWriter) Buffered() int {
	if cw.buf == nil {
		return 0
	}
	return len(cw.buf.b)
}

func (cw *connWriter) Write(p []byte) (int, error) {
	if cw.buf != nil && len(cw.buf.b)+len(p) > cap(cw.buf.b) {
		if err := cw.Flush(); err != nil {
			return 0, err
		}
	}
	if cw.buf == nil && len(p) >= connBufSize {
		return cw.w.Write(p)
	}
	if cw.buf == nil {
		cw.buf = getBuffer(connBufSize)
		cw.buf.b = cw.buf.b[:0]
	}
	cw.buf.b = append(cw.buf.b, p...)
	return len(p), nil
}

// Flush writes what is buffered and gives the buffer back to its pool.
func (cw *connWriter) Flush() error {
	if cw.buf == nil {
		return nil
	}
	_, err := cw.w.Write(cw.buf.b)
	putBuffer(cw.buf)
	cw.buf = nil
	return err
}

// byteBudget bounds the request bytes a server holds in memory at once
// (Kafka's queued.max.request.bytes). A reader reserves a frame's claimed
// size before it reads the body and releases it once the request was
// handled (answered or forwarded upstream); a reader that does not fit
// waits, so the client is back-pressured by TCP, never failed. Waiters are
// served in order, so a large request is not starved by small ones. A
// request larger than the whole budget is admitted when nothing else is
// held, so every request the frame limit allows can complete.
type byteBudget struct {
	mu      sync.Mutex
	max     int64 // ≤ 0: unbounded
	used    int64
	waiters []*budgetWaiter
}

type budgetWaiter struct {
	n     int64
	ready chan struct{}
}

func (b *byteBudget) fits(n int64) bool {
	return b.max <= 0 || b.used == 0 || b.used+n <= b.max
}

// acquire reserves n bytes, waiting while they do not fit. It reports
// whether it waited; it fails only when cancel closes first.
func (b *byteBudget) acquire(n int64, cancel <-chan struct{}) (bool, error) {
	b.mu.Lock()
	if len(b.waiters) == 0 && b.fits(n) {
		b.used += n
		b.mu.Unlock()
		return false, nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return true, nil
	case <-cancel:
	}
	b.mu.Lock()
	select {
	case <-w.ready:
		// Granted meanwhile: hand the bytes back.
		b.used -= n
	default:
		for i, x := range b.waiters {
			if x == w {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				break
			}
		}
	}
	b.grant()
	b.mu.Unlock()
	return true, ErrClosed
}

// release gives back n reserved bytes.
func (b *byteBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.grant()
	b.mu.Unlock()
}

// grant admits waiters in order while they fit; b.mu is held.
func (b *byteBudget) grant() {
	for len(b.waiters) > 0 && b.fits(b.waiters[0].n) {
		w := b.waiters[0]
		b.waiters[0] = nil
		b.waiters = b.waiters[1:]
		b.used += w.n
		close(w.ready)
	}
	if len(b.waiters) == 0 {
		b.waiters = nil
	}
}

// held is the reserved byte count.
func (b *byteBudget) held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
