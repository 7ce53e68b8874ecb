package kafka

import (
	"math/bits"
	"sync"
	"time"
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
	if shift >= bigMinShift {
		if buf := bigFree.get(shift); buf != nil {
			buf.b = buf.b[:n]
			return buf
		}
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
	if shift >= bigMinShift && bigFree.put(shift, buf) {
		return
	}
	pools[shift-minPoolShift].Put(buf)
}

// bigMinShift is the smallest class kept by bigFree (256 KiB): the sizes
// of produce requests and fetch answers.
const bigMinShift = 18

// bigRetainMax bounds the bytes bigFree keeps, and bigTrimEvery is how
// often it gives back what was not reused in the meantime.
const (
	bigRetainMax = 32 << 20
	bigTrimEvery = 10 * time.Second
)

// bigFree keeps buffers of the large classes across garbage collections.
// A sync.Pool is emptied by every second collection, and a proxy forwarding
// 1 MiB produce requests collects often, so a pool-only scheme kept
// allocating: the runtime zeroed each new buffer and, once its scavenger
// had returned the freed pages to the kernel, the first read into the
// buffer page-faulted them back (a tenth of the three-peer benchmark's CPU
// in the kernel's page-fault path). What bigFree holds is bounded by
// bigRetainMax (beyond it puts go to the sync.Pool) and trimmed: every
// bigTrimEvery it frees the buffers of each class that stayed unused since
// the last trim (the stack's low-water mark), so an idle peer keeps none.
var bigFree bigStacks

type bigStacks struct {
	mu     sync.Mutex
	stacks [maxPoolShift - bigMinShift + 1][]*buffer
	low    [maxPoolShift - bigMinShift + 1]int // each stack's least depth since the last trim
	bytes  int
	armed  bool // a trim is scheduled
}

func (f *bigStacks) get(shift int) *buffer {
	i := shift - bigMinShift
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.stacks[i]
	if len(st) == 0 {
		return nil
	}
	buf := st[len(st)-1]
	st[len(st)-1] = nil
	f.stacks[i] = st[:len(st)-1]
	f.low[i] = min(f.low[i], len(f.stacks[i]))
	f.bytes -= cap(buf.b)
	return buf
}

// put keeps buf unless that would exceed bigRetainMax.
func (f *bigStacks) put(shift int, buf *buffer) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bytes+cap(buf.b) > bigRetainMax {
		return false
	}
	i := shift - bigMinShift
	f.stacks[i] = append(f.stacks[i], buf)
	f.bytes += cap(buf.b)
	if !f.armed {
		f.armed = true
		time.AfterFunc(bigTrimEvery, f.trim)
	}
	return true
}

// trim frees, from the bottom of each stack (the longest unused), as many
// buffers as the stack never went below since the last trim.
func (f *bigStacks) trim() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, st := range f.stacks {
		drop := min(f.low[i], len(st))
		for j := range drop {
			f.bytes -= cap(st[j].b)
		}
		rest := copy(st, st[drop:])
		clear(st[rest:])
		f.stacks[i] = st[:rest]
		f.low[i] = rest
	}
	if f.bytes > 0 {
		time.AfterFunc(bigTrimEvery, f.trim)
	} else {
		f.armed = false
	}
}
