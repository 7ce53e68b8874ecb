package kafka

import (
	"runtime"
	"testing"
)

// sync.Pool may drop what is put (always possibly under GC, and at random
// under the race detector), so these tests assert what holds whether or not
// a buffer is reused: lengths, size classes, and which buffers putBuffer
// accepts (it truncates those it pools, and leaves the others alone).

func TestGetBufferSizeClasses(t *testing.T) {
	tests := []struct {
		n       int
		wantCap int // 0: exactly n, unpooled
	}{
		{0, 1 << 12},
		{1, 1 << 12},
		{4095, 1 << 12},
		{4096, 1 << 12},
		{4097, 1 << 13},
		{8192, 1 << 13},
		{8193, 1 << 14},
		{100_000, 1 << 17},
		{1 << 20, 1 << 20},
		{1<<20 + 1, 1 << 21},
		{1<<24 - 1, 1 << 24},
		{1 << 24, 1 << 24},
		{1<<24 + 1, 0},
		{100 << 20, 0},
	}
	for _, tt := range tests {
		// Twice: the second call may be served by the pool.
		for i := range 2 {
			buf := getBuffer(tt.n)
			if len(buf.b) != tt.n {
				t.Fatalf("getBuffer(%d) #%d: len %d", tt.n, i, len(buf.b))
			}
			want := tt.wantCap
			if want == 0 {
				want = tt.n
			}
			if cap(buf.b) != want {
				t.Fatalf("getBuffer(%d) #%d: cap %d, want %d", tt.n, i, cap(buf.b), want)
			}
			putBuffer(buf)
		}
	}
}

func TestPutBufferAcceptsOnlyPoolClasses(t *testing.T) {
	tests := []struct {
		name   string
		cap    int
		pooled bool
	}{
		{"smallest class", 1 << 12, true},
		{"middle class", 1 << 18, true},
		{"largest class", 1 << 24, true},
		{"below smallest class", 1 << 11, false},
		{"tiny", 16, false},
		{"not a power of two", 5000, false},
		{"one under a class", 1<<13 - 1, false},
		{"above largest class", 1 << 25, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := min(tt.cap, 10)
			buf := &buffer{b: make([]byte, n, tt.cap)}
			putBuffer(buf)
			if pooled := len(buf.b) == 0 && n > 0; pooled != tt.pooled {
				t.Fatalf("cap %d: pooled = %v, want %v", tt.cap, pooled, tt.pooled)
			}
		})
	}
	putBuffer(nil) // must not panic
}

// TestPutBufferZeroCapacity: a buffer with no backing array (&buffer{}, or
// one whose slice was set to nil) must be dropped, not panic. putBuffer
// computes 1<<(bits.Len(0)-1), a negative shift, before its range check.
func TestPutBufferZeroCapacity(t *testing.T) {
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("putBuffer(&buffer{}) panicked: %v", r)
		}
	}()
	putBuffer(&buffer{})
}

// TestGetBufferResizesPooled checks that a pooled buffer put back at length
// zero (or any length) comes out at the requested length.
func TestGetBufferResizesPooled(t *testing.T) {
	for i := range 50 {
		b := &buffer{b: make([]byte, 0, 1<<13)}
		pools[13-minPoolShift].Put(b)
		got := getBuffer(5000 + i)
		if len(got.b) != 5000+i || cap(got.b) != 1<<13 {
			t.Fatalf("getBuffer(%d): len %d cap %d", 5000+i, len(got.b), cap(got.b))
		}
		putBuffer(got)
	}
}

// TestEncodedBuffersReturnToPool checks that buffers grown by append (the
// encode path) are either pooled in the class of their capacity or dropped.
func TestEncodedBuffersReturnToPool(t *testing.T) {
	for _, n := range []int{10, 4096, 4097, 9000, 70000} {
		buf := getBuffer(0)
		buf.b = append(buf.b, make([]byte, n)...)
		c := cap(buf.b)
		putBuffer(buf)
		again := getBuffer(n)
		if len(again.b) != n || cap(again.b) < n {
			t.Fatalf("after pooling a cap-%d buffer, getBuffer(%d): len %d cap %d", c, n, len(again.b), cap(again.b))
		}
		putBuffer(again)
	}
}

// TestBigBuffersKeptAcrossGC: a large buffer given back is handed out
// again after garbage collections (a sync.Pool would have dropped it),
// and the trim frees what stayed unused for a whole trim period.
func TestBigBuffersKeptAcrossGC(t *testing.T) {
	var f bigStacks
	const shift = 20
	a := &buffer{b: make([]byte, 0, 1<<shift)}
	b := &buffer{b: make([]byte, 0, 1<<shift)}
	if !f.put(shift, a) || !f.put(shift, b) {
		t.Fatal("put refused under the cap")
	}
	runtime.GC()
	runtime.GC()
	if got := f.get(shift); got != b {
		t.Fatalf("get after GC: %p, want the last buffer put %p", got, b)
	}
	// Since the last trim (none), the stack went down to 1: the first
	// trim keeps what was put afterwards, the second frees what stayed.
	f.put(shift, b)
	f.low[shift-bigMinShift] = 1
	f.trim()
	if n, bytes := len(f.stacks[shift-bigMinShift]), f.bytes; n != 1 || bytes != 1<<shift {
		t.Fatalf("after the first trim: %d buffers, %d bytes; want 1 (b, in use since), %d", n, bytes, 1<<shift)
	}
	if got := f.get(shift); got != b {
		t.Fatalf("the trim kept %p, want b %p", got, b)
	}
	f.put(shift, b)
	f.trim() // low was 0 after the get: b was used, nothing goes
	if len(f.stacks[shift-bigMinShift]) != 1 {
		t.Fatal("a buffer used in the period was freed")
	}
	f.trim() // unused for a whole period: freed
	if len(f.stacks[shift-bigMinShift]) != 0 || f.bytes != 0 {
		t.Fatalf("after an idle period: %d buffers, %d bytes kept", len(f.stacks[shift-bigMinShift]), f.bytes)
	}

	var g bigStacks
	for range bigRetainMax >> shift {
		if !g.put(shift, &buffer{b: make([]byte, 0, 1<<shift)}) {
			t.Fatal("put refused under the cap")
		}
	}
	if g.put(shift, &buffer{b: make([]byte, 0, 1<<shift)}) {
		t.Fatalf("kept more than bigRetainMax (%d bytes)", bigRetainMax)
	}
}
