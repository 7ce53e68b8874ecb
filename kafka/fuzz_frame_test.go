package kafka

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// FuzzReadFrameIncremental reads a stream of frames through each reader
// the proxy uses (plain, bufio, connReader), each fed a few bytes per read,
// and checks every frame against a by-hand split of the input. Claimed
// sizes are not bounded by the target: the frame buffer grows only with
// bytes that arrive, so a claim of a gigabyte followed by ten bytes must
// cost no more than those bytes (and a first chunk).
func FuzzReadFrameIncremental(f *testing.F) {
	frame := func(n int) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(n))
		return append(b, bytes.Repeat([]byte{0xab}, n)...)
	}
	f.Add(frame(10), uint16(3), int32(100))
	f.Add(append(frame(0), frame(5)...), uint16(1), int32(100))
	f.Add(frame(5000), uint16(700), int32(1<<20))
	f.Add(append(binary.BigEndian.AppendUint32(nil, 1<<30), 1, 2, 3), uint16(7), int32(1<<30))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint16(2), int32(100))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint16, maxSize int32) {
		if maxSize < 0 {
			maxSize = -(maxSize + 1)
		}
		step := int(chunk)%8192 + 1
		want, wantErr := splitByHand(data, maxSize)
		readers := map[string]func() io.Reader{
			"plain": func() io.Reader { return &trickle{r: bytes.NewReader(data), n: step} },
			"bufio": func() io.Reader { return bufio.NewReaderSize(&trickle{r: bytes.NewReader(data), n: step}, 4096) },
			"connReader": func() io.Reader {
				cr := newConnReader(&trickle{r: bytes.NewReader(data), n: step})
				return &cr
			},
		}
		for name, mk := range readers {
			r := mk()
			for i := 0; ; i++ {
				buf, err := readFrame(r, maxSize)
				if err != nil {
					if i < len(want) {
						t.Fatalf("%s: frame %d: %v, want %d bytes", name, i, err, len(want[i]))
					}
					if !errors.Is(err, wantErr) {
						t.Fatalf("%s: after %d frames: %v, want %v", name, i, err, wantErr)
					}
					if buf != nil {
						t.Fatalf("%s: buffer returned with an error", name)
					}
					break
				}
				if i >= len(want) {
					t.Fatalf("%s: frame %d read, input holds %d", name, i, len(want))
				}
				if !bytes.Equal(buf.b, want[i]) {
					t.Fatalf("%s: frame %d differs", name, i)
				}
				// The buffer is at most twice the frame, or one chunk.
				if c := cap(buf.b); c > max(2*len(buf.b), 2*frameChunk) {
					t.Fatalf("%s: frame %d of %d bytes in a %d-byte buffer", name, i, len(buf.b), c)
				}
				putBuffer(buf)
			}
		}
	})
}

// splitByHand splits data into size-prefixed frames and names the error
// that ends the stream.
func splitByHand(data []byte, maxSize int32) ([][]byte, error) {
	var out [][]byte
	for {
		switch {
		case len(data) == 0:
			return out, io.EOF
		case len(data) < 4:
			return out, io.ErrUnexpectedEOF
		}
		n := int32(binary.BigEndian.Uint32(data))
		switch {
		case n < 0 || n > maxSize:
			return out, ErrFrameTooLarge
		case len(data) == 4 && n > 0:
			return out, io.EOF // as io.ReadFull reports a body with no byte
		case len(data) < 4+int(n):
			return out, io.ErrUnexpectedEOF
		}
		out = append(out, data[:4+n])
		data = data[4+n:]
	}
}
