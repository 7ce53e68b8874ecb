package kafka

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawHeader builds a request header by hand: key, version, correlation id,
// a nullable int16-length client id, and for flexible headers the raw
// tagged-field section tags (nil for a v1 header).
func rawHeader(key, version int16, corr int32, clientID *string, tags []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	if clientID == nil {
		b = binary.BigEndian.AppendUint16(b, 0xffff)
	} else {
		b = binary.BigEndian.AppendUint16(b, uint16(len(*clientID)))
		b = append(b, *clientID...)
	}
	return append(b, tags...)
}

func TestParseRequestHeader(t *testing.T) {
	cid := "client-1"
	empty := ""
	body := []byte("BODY")
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	// Two tagged fields: tag 0 with 3 bytes, tag 5 with none.
	twoTags := []byte{2, 0, 3, 'a', 'b', 'c', 5, 0}
	// One tag whose number and size both need two varint bytes.
	bigTag := append([]byte{1, 0x80, 0x01, 0x81, 0x01}, bytes.Repeat([]byte{'t'}, 129)...)

	type want struct {
		key, version int16
		corr         int32
		clientID     *string
		flexible     bool
		bodyOff      int
	}
	tests := []struct {
		name  string
		frame []byte
		want  want
		err   error
	}{
		{name: "v1 header", frame: cat(rawHeader(0, 3, 7, &cid, nil), body),
			want: want{0, 3, 7, &cid, false, 10 + len(cid)}},
		{name: "v1 header null client id", frame: cat(rawHeader(0, 8, 1, nil, nil), body),
			want: want{0, 8, 1, nil, false, 10}},
		{name: "v1 header empty client id", frame: cat(rawHeader(2, 1, 1, &empty, nil), body),
			want: want{2, 1, 1, &empty, false, 10}},
		{name: "v2 header no tags", frame: cat(rawHeader(3, 9, 8, &cid, []byte{0}), body),
			want: want{3, 9, 8, &cid, true, 11 + len(cid)}},
		{name: "v2 header null client id", frame: cat(rawHeader(1, 12, -5, nil, []byte{0}), body),
			want: want{1, 12, -5, nil, true, 11}},
		{name: "v2 header tagged fields", frame: cat(rawHeader(3, 12, 9, &cid, twoTags), body),
			want: want{3, 12, 9, &cid, true, 10 + len(cid) + len(twoTags)}},
		{name: "v2 header multi-byte tag varints", frame: cat(rawHeader(0, 9, 9, &cid, bigTag), body),
			want: want{0, 9, 9, &cid, true, 10 + len(cid) + len(bigTag)}},
		{name: "v2 header without body", frame: rawHeader(3, 12, 1, nil, []byte{0}),
			want: want{3, 12, 1, nil, true, 11}},
		{name: "api versions v2 is v1 header", frame: cat(rawHeader(18, 2, 1, &cid, nil), body),
			want: want{18, 2, 1, &cid, false, 10 + len(cid)}},
		{name: "api versions v3 is v2 header", frame: cat(rawHeader(18, 3, 1, &cid, []byte{0}), body),
			want: want{18, 3, 1, &cid, true, 11 + len(cid)}},
		// KIP-511: a client newer than the proxy must still get an answer,
		// so the header parses with the flexible layout of v3+.
		{name: "api versions newer than kmsg", frame: cat(rawHeader(18, 99, 4, &cid, twoTags), body),
			want: want{18, 99, 4, &cid, true, 10 + len(cid) + len(twoTags)}},
		{name: "api versions max int16", frame: cat(rawHeader(18, 32767, 4, nil, []byte{0}), body),
			want: want{18, 32767, 4, nil, true, 11}},

		{name: "empty", frame: nil, err: ErrMalformed},
		{name: "seven bytes", frame: rawHeader(0, 3, 7, nil, nil)[:7], err: ErrMalformed},
		{name: "no client id length", frame: rawHeader(0, 3, 7, nil, nil)[:8], err: ErrMalformed},
		{name: "half a client id length", frame: rawHeader(0, 3, 7, nil, nil)[:9], err: ErrMalformed},
		{name: "client id past end", frame: rawHeader(0, 3, 7, &cid, nil)[:10+len(cid)-1], err: ErrMalformed},
		{name: "client id length -2", frame: cat(rawHeader(0, 3, 7, nil, nil)[:8], []byte{0xff, 0xfe}, body), err: ErrMalformed},
		{name: "client id length min int16", frame: cat(rawHeader(0, 3, 7, nil, nil)[:8], []byte{0x80, 0x00}, body), err: ErrMalformed},
		{name: "flexible header missing tags", frame: rawHeader(3, 12, 1, &cid, nil), err: ErrMalformed},
		{name: "flexible header tag past end", frame: rawHeader(3, 12, 1, &cid, twoTags[:5]), err: ErrMalformed},
		{name: "api versions v3 missing tags", frame: rawHeader(18, 3, 1, &cid, nil), err: ErrMalformed},
		{name: "unknown key", frame: cat(rawHeader(9999, 0, 1, nil, nil), body), err: ErrUnknownKey},
		{name: "negative key", frame: cat(rawHeader(-1, 0, 1, nil, nil), body), err: ErrUnknownKey},
		{name: "key past kmsg", frame: cat(rawHeader(kmsg.MaxKey+1, 0, 1, nil, nil), body), err: ErrUnknownKey},
		{name: "version past kmsg", frame: cat(rawHeader(0, 14, 1, nil, nil), body), err: ErrUnsupportedVersion},
		{name: "negative version", frame: cat(rawHeader(1, -1, 1, nil, nil), body), err: ErrUnsupportedVersion},
		{name: "api versions negative version", frame: cat(rawHeader(18, -1, 1, nil, []byte{0}), body), err: ErrUnsupportedVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parseRequestHeader(tt.frame)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			got := want(h)
			if (got.clientID == nil) != (tt.want.clientID == nil) || (got.clientID != nil && *got.clientID != *tt.want.clientID) {
				t.Fatalf("client id = %v, want %v", strp(got.clientID), strp(tt.want.clientID))
			}
			got.clientID = tt.want.clientID
			if got != tt.want {
				t.Fatalf("header = %+v, want %+v", got, tt.want)
			}
			if h.bodyOff < len(tt.frame) && !bytes.Equal(tt.frame[h.bodyOff:], body) {
				t.Fatalf("body = %q, want %q", tt.frame[h.bodyOff:], body)
			}
		})
	}
}

func strp(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return "\"" + *s + "\""
}

// TestAppendRequestMatchesKmsg checks appendRequest against kmsg's own
// request formatter, and parseRequestHeader against both, for every key
// and version kmsg knows.
func TestAppendRequestMatchesKmsg(t *testing.T) {
	cid := "kgo-client"
	n := 0
	for k := int16(0); k <= kmsg.MaxKey; k++ {
		req := kmsg.RequestForKey(k)
		if req == nil {
			continue
		}
		for v := int16(0); v <= req.MaxVersion(); v++ {
			if k == 7 && v == 0 {
				// ControlledShutdown v0 has no client id in its header; it is
				// broker-to-controller and not served.
				continue
			}
			req.SetVersion(v)
			for _, clientID := range []*string{nil, &cid} {
				corr := int32(k)<<16 | int32(v)
				var opts []kmsg.RequestFormatterOpt
				if clientID != nil {
					opts = append(opts, kmsg.FormatterClientID(*clientID))
				}
				want := kmsg.NewRequestFormatter(opts...).AppendRequest(nil, req, corr)
				got := appendRequest(nil, req, corr, clientID)
				if !bytes.Equal(got, want) {
					t.Fatalf("%s v%d: appendRequest differs from kmsg:\n got %x\nwant %x", kmsg.NameForKey(k), v, got, want)
				}
				enc := encodeRequest(req, corr, clientID)
				if !bytes.Equal(enc.b, want) {
					t.Fatalf("%s v%d: encodeRequest differs from appendRequest", kmsg.NameForKey(k), v)
				}
				putBuffer(enc)
				h, err := parseRequestHeader(got[4:])
				if err != nil {
					t.Fatalf("%s v%d: %v", kmsg.NameForKey(k), v, err)
				}
				if h.key != k || h.version != v || h.corr != corr || h.flexible != req.IsFlexible() ||
					(h.clientID == nil) != (clientID == nil) || (h.clientID != nil && *h.clientID != cid) {
					t.Fatalf("%s v%d: parsed %+v", kmsg.NameForKey(k), v, h)
				}
				if b := got[4+h.bodyOff:]; !bytes.Equal(b, req.AppendTo(nil)) {
					t.Fatalf("%s v%d: body at offset %d is not the encoded request", kmsg.NameForKey(k), v, h.bodyOff)
				}
				n++
			}
		}
	}
	if n < 500 {
		t.Fatalf("only %d key/version pairs checked", n)
	}
}

// TestAppendRequestRoundTrip decodes populated requests back with kmsg.
func TestAppendRequestRoundTrip(t *testing.T) {
	records := []byte("not really a record batch, but opaque bytes all the same")
	produce := func() kmsg.Request {
		r := kmsg.NewPtrProduceRequest()
		r.Acks, r.TimeoutMillis = -1, 1500
		r.TransactionID = kmsg.StringPtr("txn")
		t := kmsg.NewProduceRequestTopic()
		t.Topic, t.TopicID = "orders", fxOrdersID
		p := kmsg.NewProduceRequestTopicPartition()
		p.Partition, p.Records = 3, records
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
		return r
	}
	fetch := func() kmsg.Request {
		r := kmsg.NewPtrFetchRequest()
		r.MaxWaitMillis, r.MinBytes, r.MaxBytes, r.SessionID, r.SessionEpoch = 500, 1, 1<<20, 42, 3
		t := kmsg.NewFetchRequestTopic()
		t.Topic, t.TopicID = "orders", fxOrdersID
		p := kmsg.NewFetchRequestTopicPartition()
		p.Partition, p.FetchOffset, p.PartitionMaxBytes = 1, 1234, 1<<20
		t.Partitions = append(t.Partitions, p)
		r.Topics = append(r.Topics, t)
		return r
	}
	metadata := func() kmsg.Request {
		r := kmsg.NewPtrMetadataRequest()
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr("orders")
		r.Topics = append(r.Topics, mt)
		return r
	}
	findCoordinator := func() kmsg.Request {
		r := kmsg.NewPtrFindCoordinatorRequest()
		r.CoordinatorKey, r.CoordinatorKeys = "g1", []string{"g1", "g2"}
		return r
	}
	apiVersions := func() kmsg.Request {
		r := kmsg.NewPtrApiVersionsRequest()
		r.ClientSoftwareName, r.ClientSoftwareVersion = "fx", "1.0"
		return r
	}
	for _, tc := range []struct {
		mk       func() kmsg.Request
		versions []int16
	}{
		{produce, []int16{3, 8, 9, 12, 13}},
		{fetch, []int16{4, 7, 11, 12, 13, 15, 18}},
		{metadata, []int16{0, 4, 9, 12, 13}},
		{findCoordinator, []int16{0, 3, 4, 6}},
		{apiVersions, []int16{0, 2, 3, 4, 5}},
	} {
		for _, v := range tc.versions {
			req := tc.mk()
			frame := reqFrame(req, v, 77)
			if got := int(be32(frame)); got != len(frame)-4 {
				t.Fatalf("%s v%d: size prefix %d, %d bytes follow", kmsg.NameForKey(req.Key()), v, got, len(frame)-4)
			}
			h, back := decodeFrame(t, frame)
			if h.corr != 77 || h.key != req.Key() || h.version != v {
				t.Fatalf("%s v%d: header %+v", kmsg.NameForKey(req.Key()), v, h)
			}
			if !bytes.Equal(back.AppendTo(nil), req.AppendTo(nil)) {
				t.Fatalf("%s v%d: request does not survive a round trip", kmsg.NameForKey(req.Key()), v)
			}
			if p, ok := back.(*kmsg.ProduceRequest); ok && !bytes.Equal(p.Topics[0].Partitions[0].Records, records) {
				t.Fatalf("produce v%d: records changed", v)
			}
		}
	}
}

func TestSkipTags(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		n    int
		err  bool
	}{
		{name: "none", b: []byte{0}, n: 1},
		{name: "none, body follows", b: []byte{0, 'x', 'y'}, n: 1},
		{name: "one tag", b: []byte{1, 0, 2, 'a', 'b', 'x'}, n: 5},
		{name: "empty tag", b: []byte{1, 7, 0}, n: 3},
		{name: "two tags", b: []byte{2, 0, 1, 'a', 3, 2, 'b', 'c'}, n: 8},
		{name: "multi-byte varints", b: append([]byte{1, 0x80, 0x01, 0x80, 0x01}, make([]byte, 128)...), n: 5 + 128},
		{name: "empty input", b: nil, err: true},
		{name: "unterminated count", b: []byte{0x80}, err: true},
		{name: "count without tags", b: []byte{1}, err: true},
		{name: "tag without size", b: []byte{1, 0}, err: true},
		{name: "unterminated tag", b: []byte{1, 0x80}, err: true},
		{name: "unterminated size", b: []byte{1, 0, 0x80}, err: true},
		{name: "size past end", b: []byte{1, 0, 5, 'a'}, err: true},
		{name: "size one past end", b: []byte{1, 0, 2, 'a'}, err: true},
		{name: "huge size", b: []byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, err: true},
		{name: "size 1<<63", b: []byte{1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, err: true},
		{name: "overflowing count", b: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, err: true},
		{name: "huge count", b: []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0}, err: true},
		{name: "second tag missing", b: []byte{2, 0, 1, 'a'}, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := skipTags(tt.b)
			if tt.err {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || n != tt.n {
				t.Fatalf("skipTags = %d, %v; want %d", n, err, tt.n)
			}
		})
	}
}

func TestResponseBody(t *testing.T) {
	corr := []byte{0, 0, 0, 42}
	body := []byte{0, 0, 1, 2, 3}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name     string
		frame    []byte
		key      int16
		flexible bool
		body     []byte
		err      bool
	}{
		{name: "not flexible", frame: cat(corr, body), key: 0, body: body},
		{name: "not flexible, empty body", frame: corr, key: 3, body: []byte{}},
		{name: "flexible, no tags", frame: cat(corr, []byte{0}, body), key: 3, flexible: true, body: body},
		{name: "flexible, tags", frame: cat(corr, []byte{2, 0, 1, 'z', 9, 0}, body), key: 1, flexible: true, body: body},
		// KIP-511: the ApiVersions response header is v0 even when the body
		// is flexible, so the leading zero is the body's error code.
		{name: "api versions flexible keeps all bytes", frame: cat(corr, body), key: 18, flexible: true, body: body},
		{name: "api versions not flexible", frame: cat(corr, body), key: 18, body: body},
		{name: "short", frame: corr[:3], key: 0, err: true},
		{name: "empty", frame: nil, key: 18, err: true},
		{name: "flexible, no tag section", frame: corr, key: 3, flexible: true, err: true},
		{name: "flexible, tag past end", frame: cat(corr, []byte{1, 0, 9, 'a'}), key: 3, flexible: true, err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, b, err := responseBody(tt.frame, tt.key, tt.flexible)
			if tt.err {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if c != 42 || !bytes.Equal(b, tt.body) {
				t.Fatalf("responseBody = %d, %x; want 42, %x", c, b, tt.body)
			}
		})
	}
}

// TestAppendResponseRoundTrip encodes every response kmsg knows at every
// version and decodes it back, as a client and decodeResponse would.
func TestAppendResponseRoundTrip(t *testing.T) {
	for k := int16(0); k <= kmsg.MaxKey; k++ {
		resp := kmsg.ResponseForKey(k)
		if resp == nil {
			continue
		}
		for v := int16(0); v <= resp.MaxVersion(); v++ {
			resp.SetVersion(v)
			corr := int32(-1000 - int32(k))
			frame := appendResponse([]byte("junk"), resp, corr)[4:]
			if got := int(be32(frame)); got != len(frame)-4 {
				t.Fatalf("%s v%d: size prefix %d, %d bytes follow", kmsg.NameForKey(k), v, got, len(frame)-4)
			}
			if got := be32(frame[4:]); got != corr {
				t.Fatalf("%s v%d: correlation id %d", kmsg.NameForKey(k), v, got)
			}
			want := resp.AppendTo(nil)
			switch {
			case k == 18 || !resp.IsFlexible():
				if !bytes.Equal(frame[8:], want) {
					t.Fatalf("%s v%d: header is not just the correlation id", kmsg.NameForKey(k), v)
				}
			default:
				if frame[8] != 0 || !bytes.Equal(frame[9:], want) {
					t.Fatalf("%s v%d: flexible header is not correlation id + empty tags", kmsg.NameForKey(k), v)
				}
			}
			back, err := decodeResponse(&buffer{b: frame}, k, v)
			if err != nil {
				t.Fatalf("%s v%d: %v", kmsg.NameForKey(k), v, err)
			}
			if !bytes.Equal(back.AppendTo(nil), want) {
				t.Fatalf("%s v%d: response does not survive a round trip", kmsg.NameForKey(k), v)
			}
			enc := encodeResponse(resp, corr)
			if !bytes.Equal(enc.b, frame) {
				t.Fatalf("%s v%d: encodeResponse differs from appendResponse", kmsg.NameForKey(k), v)
			}
			putBuffer(enc)
		}
	}
}

// TestAppendResponsePopulated round-trips responses with content.
func TestAppendResponsePopulated(t *testing.T) {
	av := kmsg.NewPtrApiVersionsResponse()
	av.ApiKeys = []kmsg.ApiVersionsResponseApiKey{{ApiKey: 0, MinVersion: 3, MaxVersion: 11}, {ApiKey: 18, MaxVersion: 4}}
	av.FinalizedFeaturesEpoch = 9
	for _, tc := range []struct {
		resp     kmsg.Response
		versions []int16
	}{
		{fxMetadata(), []int16{0, 1, 7, 9, 12, 13}},
		{av, []int16{0, 3, 4}},
	} {
		for _, v := range tc.versions {
			frame := respFrame(tc.resp, v, 5)
			corr, back := decodeOut(t, frame, tc.resp.Key(), v)
			if corr != 5 || !bytes.Equal(back.AppendTo(nil), tc.resp.AppendTo(nil)) {
				t.Fatalf("%s v%d: response does not survive a round trip", kmsg.NameForKey(tc.resp.Key()), v)
			}
		}
	}
	// And what a client library decodes matches: brokers and topic names.
	m := fxMetadata()
	_, back := decodeOut(t, respFrame(m, 12, 1), 3, 12)
	bm := back.(*kmsg.MetadataResponse)
	if len(bm.Brokers) != 5 || bm.Brokers[2].Host != "b102.kafka.internal" || *bm.Topics[1].Topic != "events" {
		t.Fatalf("decoded metadata = %+v", bm)
	}
}

func TestReadFrame(t *testing.T) {
	frame := func(n int) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(n))
		return append(b, bytes.Repeat([]byte{0xab}, n)...)
	}
	tests := []struct {
		name string
		in   []byte
		max  int32
		want []byte // the frame, prefix included
		err  error
	}{
		{name: "small", in: frame(10), max: 100, want: frame(10)},
		{name: "empty frame", in: frame(0), max: 100, want: frame(0)},
		{name: "exactly max", in: frame(100), max: 100, want: frame(100)},
		{name: "trailing bytes stay unread", in: append(frame(3), 1, 2, 3), max: 100, want: frame(3)},
		{name: "pool class boundary", in: frame(4096 - 4), max: 1 << 20, want: frame(4096 - 4)},
		{name: "larger than a pool class", in: frame(5000), max: 1 << 20, want: frame(5000)},
		{name: "one over max", in: frame(101), max: 100, err: ErrFrameTooLarge},
		{name: "size over max, no body", in: binary.BigEndian.AppendUint32(nil, 1<<30), max: 100 << 20, err: ErrFrameTooLarge},
		{name: "negative size", in: []byte{0xff, 0xff, 0xff, 0xff}, max: 100, err: ErrFrameTooLarge},
		{name: "min int32 size", in: []byte{0x80, 0, 0, 0}, max: 100, err: ErrFrameTooLarge},
		{name: "max zero", in: frame(1), max: 0, err: ErrFrameTooLarge},
		{name: "no input", in: nil, max: 100, err: io.EOF},
		{name: "truncated prefix", in: []byte{0, 0}, max: 100, err: io.ErrUnexpectedEOF},
		{name: "truncated body", in: frame(10)[:9], max: 100, err: io.ErrUnexpectedEOF},
		{name: "no body", in: frame(10)[:4], max: 100, err: io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf, err := readFrame(bytes.NewReader(tt.in), tt.max)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				if buf != nil {
					t.Fatalf("buffer returned with error")
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !bytes.Equal(buf.b, tt.want) {
				t.Fatalf("frame = %x, want %x", buf.b, tt.want)
			}
			putBuffer(buf)
		})
	}
}

func TestReadFrameErrorNamesSize(t *testing.T) {
	_, err := readFrame(bytes.NewReader(binary.BigEndian.AppendUint32(nil, 2000)), 1000)
	if !errors.Is(err, ErrFrameTooLarge) || !strings.Contains(err.Error(), "2000") || !strings.Contains(err.Error(), "1000") {
		t.Fatalf("err = %v, want ErrFrameTooLarge naming size and max", err)
	}
}

func TestReadFrameSequence(t *testing.T) {
	var stream []byte
	var want [][]byte
	for i, n := range []int{0, 1, 4096, 3, 70000, 12} {
		f := binary.BigEndian.AppendUint32(nil, uint32(n))
		f = append(f, bytes.Repeat([]byte{byte(i)}, n)...)
		want = append(want, f)
		stream = append(stream, f...)
	}
	r := bytes.NewReader(stream)
	for i, w := range want {
		buf, err := readFrame(r, 1<<20)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(buf.b, w) {
			t.Fatalf("frame %d differs", i)
		}
		putBuffer(buf)
	}
	if _, err := readFrame(r, 1<<20); err != io.EOF {
		t.Fatalf("after last frame: err = %v, want io.EOF", err)
	}
}

// TestFetchSessionOffset checks, against kmsg's encoding, that SessionID
// and SessionEpoch sit at fetchSessionOffset for every version that has
// them, and that the in-place patch handleFetch applies yields a
// sessionless full fetch (KIP-227: session id 0, epoch -1) and changes
// nothing else.
func TestFetchSessionOffset(t *testing.T) {
	maxV := kmsg.NewPtrFetchRequest().MaxVersion()
	if maxV < 15 {
		t.Fatalf("kmsg Fetch max version %d; the v15 layout change is untested", maxV)
	}
	for v := int16(7); v <= maxV; v++ {
		req := kmsg.NewPtrFetchRequest()
		req.Version = v
		req.ReplicaID = -1
		req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.IsolationLevel = 0x01020304, 0x05060708, 0x090a0b0c, 1
		req.SessionID, req.SessionEpoch = 0x11223344, 0x55667788
		req.ClusterID = kmsg.StringPtr("cluster")
		req.ReplicaState.ID, req.ReplicaState.Epoch = -1, -1
		req.Rack = "rack-a"
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic, ft.TopicID = "orders", fxOrdersID
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset = 2, 99
		ft.Partitions = []kmsg.FetchRequestTopicPartition{fp}
		req.Topics = []kmsg.FetchRequestTopic{ft}
		req.ForgottenTopics = []kmsg.FetchRequestForgottenTopic{{Topic: "old", TopicID: fxEventsID, Partitions: []int32{1}}}

		body := req.AppendTo(nil)
		off := fetchSessionOffset(v)
		if len(body) < off+8 {
			t.Fatalf("v%d: body of %d bytes, session fields at %d", v, len(body), off)
		}
		if got := uint32(be32(body[off:])); got != 0x11223344 {
			t.Fatalf("v%d: session id at offset %d reads %#x", v, off, got)
		}
		if got := uint32(be32(body[off+4:])); got != 0x55667788 {
			t.Fatalf("v%d: session epoch at offset %d reads %#x", v, off+4, got)
		}

		patched := slices.Clone(body)
		binary.BigEndian.PutUint32(patched[off:], 0)
		binary.BigEndian.PutUint32(patched[off+4:], 0xffffffff)
		back := kmsg.NewPtrFetchRequest()
		back.Version = v
		if err := back.ReadFrom(patched); err != nil {
			t.Fatalf("v%d: patched request: %v", v, err)
		}
		if back.SessionID != 0 || back.SessionEpoch != -1 {
			t.Fatalf("v%d: patched session = %d/%d, want 0/-1", v, back.SessionID, back.SessionEpoch)
		}
		req.SessionID, req.SessionEpoch = 0, -1
		if !bytes.Equal(back.AppendTo(nil), req.AppendTo(nil)) {
			t.Fatalf("v%d: patch changed more than the session fields", v)
		}
	}
}
