package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, f := range []frame{
		{Kind: frameRequest, ID: 1, Timeout: 1500, Str: "forward", Body: []byte(`{"a":1}`)},
		{Kind: frameRequest, ID: 1<<64 - 1, Str: strings.Repeat("m", 255), Body: []byte{}},
		{Kind: frameResponse, ID: 7, Body: []byte(`null`)},
		{Kind: frameResponse, ID: 8, Body: []byte{}},
		{Kind: frameError, ID: 9, Str: "not_leader", Body: []byte("leader is n2")},
		{Kind: frameRequest, ID: 10, Str: "big", Body: bytes.Repeat([]byte{'x'}, eagerReadLimit+10)},
	} {
		b := appendFrame(nil, &f)
		got, err := readFrame(bufio.NewReader(bytes.NewReader(b)), 1<<20)
		if err != nil {
			t.Fatalf("read %d/%q: %v", f.Kind, f.Str, err)
		}
		if !reflect.DeepEqual(got, f) {
			t.Fatalf("round trip %d/%q: got %+v", f.Kind, f.Str, got.Str)
		}
	}
}

func TestReadFrameRejects(t *testing.T) {
	hdr := func(n uint32, kind byte, timeout uint32, str string, body string) []byte {
		b := binary.BigEndian.AppendUint32(nil, n)
		b = append(b, kind)
		b = binary.BigEndian.AppendUint64(b, 1)
		b = binary.BigEndian.AppendUint32(b, timeout)
		b = append(b, byte(len(str)))
		return append(append(b, str...), body...)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"too large", binary.BigEndian.AppendUint32(nil, 2048), ErrFrameTooLarge},
		{"too large max uint32", binary.BigEndian.AppendUint32(nil, 1<<32-1), ErrFrameTooLarge},
		{"shorter than header", hdr(3, frameRequest, 0, "", ""), ErrMalformedFrame},
		{"prefix cut", []byte{0, 0}, ErrMalformedFrame},
		{"body cut", hdr(100, frameRequest, 0, "m", "x"), ErrMalformedFrame},
		{"string overruns", hdr(frameHeaderLen+1, frameRequest, 0, "mm", "")[:4+frameHeaderLen+1], ErrMalformedFrame},
		{"unknown kind", hdr(frameHeaderLen+1, 9, 0, "m", ""), ErrMalformedFrame},
		{"request without method", hdr(frameHeaderLen, frameRequest, 0, "", ""), ErrMalformedFrame},
		{"response with method", hdr(frameHeaderLen+1, frameResponse, 0, "m", ""), ErrMalformedFrame},
		{"response with timeout", hdr(frameHeaderLen, frameResponse, 5, "", ""), ErrMalformedFrame},
		{"error without code", hdr(frameHeaderLen, frameError, 0, "", ""), ErrMalformedFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readFrame(bufio.NewReader(bytes.NewReader(tt.in)), 1024)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := readFrame(bufio.NewReader(bytes.NewReader(nil)), 1024); err != io.EOF {
		t.Fatalf("empty stream: err = %v, want io.EOF", err)
	}
}

func TestErrorFrameFits(t *testing.T) {
	long := strings.Repeat("c", 300)
	f := errorFrame(1, &RPCError{Code: long, Message: strings.Repeat("m", 5000)}, 1024)
	if f.Str != CodeInternal || f.frameLen() > 1024 {
		t.Fatalf("errorFrame: code %q, %d bytes", f.Str, f.frameLen())
	}
	if _, err := parseFrame(appendFrame(nil, f)[4:]); err != nil {
		t.Fatalf("errorFrame does not parse: %v", err)
	}
	if f := errorFrame(2, &RPCError{}, 1024); f.Str != CodeInternal {
		t.Fatalf("empty code sent as %q", f.Str)
	}
}
