package kafka

import (
	"math/bits"
	"sync"
)

// buffer is a pooled byte slice. Frames are read into buffers that carry
// their 4-byte size prefix, so a forwarded frame is written with one call.
type buffer struct {
	b []byte
}

const (
	minPoolShift = 12 // 4 KiB
	maxPoolShift = 24 // 16 MiB; larger buffers are left to the GC
)

var pools [maxPoolShift - minPoolShift + 1]sync.Pool

// getBuffer returns a buffer of length n.
func getBuffer(n int) *buffer {
	shift := minPoolShift
	if n > 1<<minPoolShift {
		shift = bits.Len(uint(n - 1))
	}
	if shift > maxPoolShift {
		return &buffer{b: make([]byte, n)}
	}
	if v := pools[shift-minPoolShift].Get(); v != nil {
		buf := v.(*buffer)
		buf.b = buf.b[:n]
		return buf
	}
	return &buffer{b: make([]byte, n, 1<<shift)}
}

// putBuffer returns buf to its pool. buf must not be used afterwards.
func putBuffer(buf *buffer) {
	if buf == nil {
		return
	}
	c := cap(buf.b)
	shift := bits.Len(uint(c)) - 1
	if shift < minPoolShift || shift > maxPoolShift || c != 1<<shift {
		return
	}
	buf.b = buf.b[:0]
	pools[shift-minPoolShift].Put(buf)
}
