package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// RPC frames, both directions, after the handshake:
//
//	[length uint32: bytes that follow]
//	[kind byte][request id uint64][timeout ms uint32][str length byte][str][body]
//
// kind is frameRequest (str = method, body = JSON request, timeout = the
// caller's remaining deadline in milliseconds or 0 for none),
// frameResponse (str empty, body = JSON response) or frameError (str =
// error code, body = message). All integers are big-endian.
const (
	frameRequest  byte = 1
	frameResponse byte = 2
	frameError    byte = 3
)

const (
	// frameHeaderLen is the fixed part after the length prefix.
	frameHeaderLen = 1 + 8 + 4 + 1
	// minFrameBytes is the smallest MaxFrameBytes a Config may set: room
	// for a header with the longest method or code and a short body.
	minFrameBytes = 1 << 10
	// eagerReadLimit is the largest frame body allocated in one piece
	// before its bytes arrive; larger frames grow as they are read, so a
	// peer announcing 16 MiB and sending nothing costs little memory.
	eagerReadLimit = 64 << 10
)

type frame struct {
	Kind    byte
	ID      uint64
	Timeout uint32 // milliseconds; requests only
	Str     string // method (request) or code (error)
	Body    []byte
}

// frameLen is the value of f's length prefix.
func (f *frame) frameLen() int { return frameHeaderLen + len(f.Str) + len(f.Body) }

// appendFrame appends f, length prefix included. The caller has checked
// len(f.Str) <= 255 and the total against its maximum.
func appendFrame(b []byte, f *frame) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(f.frameLen()))
	b = append(b, f.Kind)
	b = binary.BigEndian.AppendUint64(b, f.ID)
	b = binary.BigEndian.AppendUint32(b, f.Timeout)
	b = append(b, byte(len(f.Str)))
	b = append(b, f.Str...)
	return append(b, f.Body...)
}

// readFrame reads one frame of at most max bytes (after the prefix). A
// clean end of stream before the first byte returns io.EOF itself. A frame
// over max returns ErrFrameTooLarge without reading its body: the stream
// cannot be resynchronised, so the caller closes the connection.
func readFrame(r *bufio.Reader, max int) (frame, error) {
	var pre [4]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return frame{}, fmt.Errorf("%w: length prefix cut short", ErrMalformedFrame)
		}
		return frame{}, err
	}
	n := int64(binary.BigEndian.Uint32(pre[:]))
	if n > int64(max) {
		return frame{}, fmt.Errorf("%w: %d bytes, maximum %d", ErrFrameTooLarge, n, max)
	}
	if n < frameHeaderLen {
		return frame{}, fmt.Errorf("%w: length %d is shorter than the %d-byte header", ErrMalformedFrame, n, frameHeaderLen)
	}
	var payload []byte
	if n <= eagerReadLimit {
		payload = make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return frame{}, fmt.Errorf("%w: %d-byte frame cut short: %w", ErrMalformedFrame, n, err)
		}
	} else {
		var buf bytes.Buffer
		buf.Grow(eagerReadLimit)
		if _, err := io.CopyN(&buf, r, n); err != nil {
			return frame{}, fmt.Errorf("%w: %d-byte frame cut short: %w", ErrMalformedFrame, n, err)
		}
		payload = buf.Bytes()
	}
	return parseFrame(payload)
}

// parseFrame parses the bytes after a length prefix. Body aliases payload.
func parseFrame(p []byte) (frame, error) {
	if len(p) < frameHeaderLen {
		return frame{}, fmt.Errorf("%w: %d bytes, header needs %d", ErrMalformedFrame, len(p), frameHeaderLen)
	}
	f := frame{
		Kind:    p[0],
		ID:      binary.BigEndian.Uint64(p[1:9]),
		Timeout: binary.BigEndian.Uint32(p[9:13]),
	}
	sl := int(p[13])
	rest := p[frameHeaderLen:]
	if sl > len(rest) {
		return frame{}, fmt.Errorf("%w: string of %d bytes in %d remaining", ErrMalformedFrame, sl, len(rest))
	}
	f.Str, f.Body = string(rest[:sl]), rest[sl:]
	switch f.Kind {
	case frameRequest:
		if f.Str == "" {
			return frame{}, fmt.Errorf("%w: request %d has no method", ErrMalformedFrame, f.ID)
		}
	case frameResponse:
		if f.Str != "" || f.Timeout != 0 {
			return frame{}, fmt.Errorf("%w: response %d carries request fields", ErrMalformedFrame, f.ID)
		}
	case frameError:
		if f.Str == "" || f.Timeout != 0 {
			return frame{}, fmt.Errorf("%w: error response %d without a code", ErrMalformedFrame, f.ID)
		}
	default:
		return frame{}, fmt.Errorf("%w: unknown frame kind %d", ErrMalformedFrame, f.Kind)
	}
	return f, nil
}
