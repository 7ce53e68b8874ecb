package kafka

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// peekReader is a buffered reader: *bufio.Reader or *connReader.
type peekReader interface {
	io.Reader
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
	Buffered() int
}

// frameChunk is the most readFrameBody commits to a client's frame before
// that much of it has arrived.
const frameChunk = 64 << 10

// readFrame reads one size-prefixed frame into a pooled buffer whose bytes
// include the 4-byte prefix.
func readFrame(r io.Reader, maxSize int32) (*buffer, error) {
	var n int32
	if br, ok := r.(peekReader); ok {
		// Peek, so the prefix needs no buffer of its own (a local array
		// passed to an io.Reader escapes: one allocation per frame).
		hdr, err := br.Peek(4)
		if err != nil {
			if len(hdr) > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF // as io.ReadFull reports it
			}
			return nil, err
		}
		n = int32(binary.BigEndian.Uint32(hdr))
		if n >= 0 && n <= maxSize {
			br.Discard(4)
		}
	} else {
		var sz [4]byte
		if _, err := io.ReadFull(r, sz[:]); err != nil {
			return nil, err
		}
		n = int32(binary.BigEndian.Uint32(sz[:]))
	}
	if n < 0 || n > maxSize {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrFrameTooLarge, n, maxSize)
	}
	return readFrameBody(r, n, frameChunk)
}

// readFrameBody reads the n-byte body of a frame whose size prefix was
// consumed. The size is the peer's claim, so the buffer starts at what is
// already buffered or first: a claim that is never sent (a silent or slow
// connection) commits little memory. Once first bytes have arrived the
// sender is really sending, and the buffer grows to the claimed size in one
// step: growing geometrically instead copied a 1 MiB produce about a third
// of its size again (13% of the proxy's CPU in BenchmarkForwardProduce);
// one step copies first bytes. What the claims add up to is bounded by the
// request byte budget (Kafka's queued.max.request.bytes, which Kafka
// allocates at once from the size prefix).
func readFrameBody(r io.Reader, n int32, first int) (*buffer, error) {
	total := int(n) + 4
	size := min(total, first)
	if br, ok := r.(peekReader); ok {
		size = max(size, min(total, br.Buffered()+4))
	}
	buf := getBuffer(size)
	binary.BigEndian.PutUint32(buf.b, uint32(n))
	got := 4
	lw, _ := r.(readLowWater)
	waited := false
	for got < total {
		if got == len(buf.b) {
			grown := getBuffer(total)
			copy(grown.b, buf.b[:got])
			putBuffer(buf)
			buf = grown
		}
		if lw != nil && lw.Buffered() == 0 {
			// This read reaches the socket: wake once what is missing is
			// there (up to lowWaterMax), not at each segment.
			want := 1
			if rest := total - got; rest >= lowWaterMin {
				want = min(rest, lowWaterMax)
				waited = true
			}
			if waited {
				lw.setReadLowWater(want)
			}
		}
		m, err := r.Read(buf.b[got:])
		got += m
		if err != nil && got < total {
			if waited {
				lw.setReadLowWater(1)
			}
			putBuffer(buf)
			if err == io.EOF && got > 4 {
				err = io.ErrUnexpectedEOF // as io.ReadFull reports it
			}
			return nil, err
		}
	}
	if waited {
		lw.setReadLowWater(1)
	}
	return buf, nil
}

// readLowWater is a buffered reader whose socket can be asked to wake it
// only once n bytes are queued (connReader over rawConn, rawio_linux.go).
type readLowWater interface {
	Buffered() int
	setReadLowWater(n int)
}

// A frame body with at least lowWaterMin bytes still to come is read with
// the socket's low-water mark at what is missing, up to lowWaterMax.
const (
	lowWaterMin = 128 << 10
	lowWaterMax = 1 << 20
)

// keyInfo is what parsing a request header needs to know about an API key:
// whether kmsg knows it, its highest version, and which versions are
// flexible (v2 header). Looked up per request, built once.
type keyInfo struct {
	known    bool
	max      int16
	flexible []bool // by version
}

var keyInfos = func() (t [maxKey + 1]keyInfo) {
	for k := range t {
		req := kmsg.RequestForKey(int16(k))
		if req == nil {
			continue
		}
		ki := keyInfo{known: true, max: req.MaxVersion(), flexible: make([]bool, req.MaxVersion()+1)}
		for v := range ki.flexible {
			req.SetVersion(int16(v))
			ki.flexible[v] = req.IsFlexible()
		}
		t[k] = ki
	}
	return t
}()

// requestHeader is the parsed header of a client request.
type requestHeader struct {
	key      int16
	version  int16
	corr     int32
	clientID *string
	flexible bool
	// bodyOff is where the body starts in the frame (after the size prefix).
	bodyOff int
}

// parseRequestHeader parses a request header (v1, or v2 for flexible
// versions) from frame, which excludes the size prefix. It rejects keys and
// versions kmsg does not know, since their header layout is unknown.
func parseRequestHeader(frame []byte) (requestHeader, error) {
	return parseHeader(frame, nil)
}

// parseHeader is parseRequestHeader that reuses prevID when the client id
// is the same (a connection sends the same one with every request), so the
// common case allocates nothing.
func parseHeader(frame []byte, prevID *string) (requestHeader, error) {
	var h requestHeader
	if len(frame) < 8 {
		return h, fmt.Errorf("%w: request header needs 8 bytes, have %d", ErrMalformed, len(frame))
	}
	h.key = int16(binary.BigEndian.Uint16(frame))
	h.version = int16(binary.BigEndian.Uint16(frame[2:]))
	h.corr = int32(binary.BigEndian.Uint32(frame[4:]))
	if h.key < 0 || h.key > maxKey || !keyInfos[h.key].known {
		return h, fmt.Errorf("%w: api key %d", ErrUnknownKey, h.key)
	}
	ki := &keyInfos[h.key]
	switch {
	case h.key == 18 && h.version > ki.max:
		// A client newer than us: answer with our versions (KIP-511). Every
		// ApiVersions version from v3 on has a v2 (flexible) header.
		h.flexible = ki.flexible[ki.max]
	case h.version < 0 || h.version > ki.max:
		return h, fmt.Errorf("%w: %s v%d (max v%d)", ErrUnsupportedVersion, kmsg.NameForKey(h.key), h.version, ki.max)
	default:
		h.flexible = ki.flexible[h.version]
	}
	off := 8
	if len(frame) < off+2 {
		return h, fmt.Errorf("%w: truncated client id", ErrMalformed)
	}
	l := int(int16(binary.BigEndian.Uint16(frame[off:])))
	off += 2
	if l >= 0 {
		if len(frame) < off+l {
			return h, fmt.Errorf("%w: client id length %d past frame end", ErrMalformed, l)
		}
		if id := frame[off : off+l]; prevID != nil && *prevID == string(id) {
			h.clientID = prevID
		} else {
			s := string(id)
			h.clientID = &s
		}
		off += l
	} else if l != -1 {
		return h, fmt.Errorf("%w: client id length %d", ErrMalformed, l)
	}
	// ApiVersions v3+ is flexible, but brokers must parse its header even
	// when they do not support the version (KIP-511); the header is v2.
	if h.flexible {
		n, err := skipTags(frame[off:])
		if err != nil {
			return h, err
		}
		off += n
	}
	h.bodyOff = off
	return h, nil
}

// skipTags skips a tagged-field section and returns the bytes it spans.
func skipTags(b []byte) (int, error) {
	num, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad tagged field count", ErrMalformed)
	}
	off := n
	for i := uint64(0); i < num; i++ {
		_, n := binary.Uvarint(b[off:])
		if n <= 0 {
			return 0, fmt.Errorf("%w: bad tag", ErrMalformed)
		}
		off += n
		sz, n := binary.Uvarint(b[off:])
		if n <= 0 || sz > uint64(len(b)) {
			return 0, fmt.Errorf("%w: bad tag size", ErrMalformed)
		}
		off += n
		if off+int(sz) > len(b) {
			return 0, fmt.Errorf("%w: tag past end", ErrMalformed)
		}
		off += int(sz)
	}
	return off, nil
}

// responseBody strips the response header (correlation id, and tagged fields
// for flexible versions other than ApiVersions) from frame, which excludes
// the size prefix.
func responseBody(frame []byte, key int16, flexible bool) (corr int32, body []byte, err error) {
	if len(frame) < 4 {
		return 0, nil, fmt.Errorf("%w: response shorter than its header", ErrMalformed)
	}
	corr = int32(binary.BigEndian.Uint32(frame))
	off := 4
	// ApiVersions responses never carry a tagged-field header (KIP-511).
	if flexible && key != 18 {
		n, err := skipTags(frame[off:])
		if err != nil {
			return corr, nil, err
		}
		off += n
	}
	return corr, frame[off:], nil
}

// appendRequest encodes a request frame with its size prefix.
func appendRequest(dst []byte, req kmsg.Request, corr int32, clientID *string) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(req.Key()))
	dst = binary.BigEndian.AppendUint16(dst, uint16(req.GetVersion()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(corr))
	if clientID == nil {
		dst = binary.BigEndian.AppendUint16(dst, 0xffff)
	} else {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(*clientID)))
		dst = append(dst, *clientID...)
	}
	if req.IsFlexible() {
		dst = append(dst, 0)
	}
	dst = req.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// appendResponse encodes a response frame with its size prefix.
func appendResponse(dst []byte, resp kmsg.Response, corr int32) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(corr))
	if resp.IsFlexible() && resp.Key() != 18 {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// encodeResponse encodes resp into a pooled buffer.
func encodeResponse(resp kmsg.Response, corr int32) *buffer {
	return encodeResponseSized(resp, corr, 0)
}

// reencodeSlack is room beyond the backend's bytes for what a rewrite may
// add (KIP-951 endpoints, a leader, an error message).
const reencodeSlack = 512

// encodeResponseSized encodes resp into a pooled buffer that can hold
// about size bytes: the answer a rewritten backend response becomes is
// seldom larger than the backend's, so sized from it the encoding does not
// grow the buffer, and the buffer goes back to its pool afterwards (a
// grown one would not: putBuffer keeps only its own sizes). A fetch
// answer rewritten this way allocated about twice its size before.
func encodeResponseSized(resp kmsg.Response, corr int32, size int) *buffer {
	if size > 0 {
		size += reencodeSlack
	}
	buf := getBuffer(size)
	buf.b = appendResponse(buf.b[:0], resp, corr)
	return buf
}

// encodeRequest encodes req into a pooled buffer.
func encodeRequest(req kmsg.Request, corr int32, clientID *string) *buffer {
	buf := getBuffer(0)
	buf.b = appendRequest(buf.b[:0], req, corr, clientID)
	return buf
}
