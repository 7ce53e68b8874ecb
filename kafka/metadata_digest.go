package kafka

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The refresh loop's unchanged answers: every MetadataRefresh (10 s) each
// peer asks each cluster for all its topics. With thousands of topics,
// decoding that answer, storing each topic's leaders and building a new
// snapshot cost a tenth of a peer's CPU in the three-peer benchmark
// (2,000 topics of 12 partitions), and most answers repeat the previous
// one. So the answer's bytes are digested first (metadataDigest); when the
// digest matches the one the current snapshot was built from and nothing
// else changed the backend's topics since, the answer is not decoded: the
// snapshot is re-stamped as fresh and kept, with its pre-encoded blocks.
//
// The digest does not depend on the order of brokers, topics or partitions
// (kfake lists them in map order, so the same metadata arrives in a
// different order each time); it covers every other byte.

// digestSeed is this process's seed: digests are compared only within it.
var digestSeed = maphash.MakeSeed()

// metadataDigest digests the body of a MetadataResponse at version v (1
// through 13). It reports false for other versions and for bytes that do
// not parse as v; the caller then decodes the answer as usual, and the
// decode judges the bytes.
func metadataDigest(body []byte, v int16) (uint64, bool) {
	if v < 1 || v > 13 {
		return 0, false
	}
	s := skim{b: body, flexible: v >= 9, ok: true}
	var h maphash.Hash
	h.SetSeed(digestSeed)
	// since returns the bytes consumed since mark was s.b.
	since := func(mark []byte) []byte { return mark[:len(mark)-len(s.b)] }
	mark := s.b
	if v >= 3 {
		s.skip(4) // throttle
	}
	h.Write(since(mark))
	var brokers uint64
	for range s.arrayLen() {
		if !s.ok {
			return 0, false
		}
		mark := s.b
		s.skip(4) // node id
		s.str()   // host
		s.skip(4) // port
		s.nullableStr()
		if s.flexible {
			s.tags()
		}
		brokers += maphash.Bytes(digestSeed, since(mark))
	}
	writeUint64(&h, brokers)
	mark = s.b
	if v >= 2 {
		s.nullableStr() // cluster id
	}
	s.skip(4) // controller id
	h.Write(since(mark))
	var topics uint64
	for range s.arrayLen() {
		if !s.ok {
			return 0, false
		}
		var th maphash.Hash
		th.SetSeed(digestSeed)
		mark := s.b
		s.skip(2)       // error code
		s.nullableStr() // name (nullable from v12; null is refused below v12 by the decode)
		if v >= 10 {
			s.skip(16) // topic id
		}
		s.skip(1) // is internal
		th.Write(since(mark))
		var parts uint64
		for range s.arrayLen() {
			if !s.ok {
				return 0, false
			}
			mark := s.b
			s.skip(2 + 4 + 4) // error code, partition, leader
			if v >= 7 {
				s.skip(4) // leader epoch
			}
			s.int32s() // replicas
			s.int32s() // in-sync replicas
			if v >= 5 {
				s.int32s() // offline replicas
			}
			if s.flexible {
				s.tags()
			}
			parts += maphash.Bytes(digestSeed, since(mark))
		}
		writeUint64(&th, parts)
		mark = s.b
		if v >= 8 {
			s.skip(4) // authorized operations
		}
		if s.flexible {
			s.tags()
		}
		th.Write(since(mark))
		topics += th.Sum64()
	}
	writeUint64(&h, topics)
	if !s.ok {
		return 0, false
	}
	// The rest as it is: cluster authorized operations (v8-10), the error
	// code (v13), tagged fields.
	h.Write(s.b)
	return h.Sum64(), true
}

// int32s skips an array of int32.
func (s *skim) int32s() {
	n := s.arrayLen()
	s.skip(4 * n)
}

func writeUint64(h *maphash.Hash, x uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], x)
	h.Write(b[:])
}

// refreshMetadata is the refresh loop's all-topics request. Its answer
// (refreshAnswer) digests the bytes before it decodes them, and does not
// decode them when the digest is skip.
type refreshMetadata struct {
	*kmsg.MetadataRequest
	skip    uint64
	useSkip bool
}

func (r *refreshMetadata) ResponseKind() kmsg.Response {
	return &refreshAnswer{MetadataResponse: r.MetadataRequest.ResponseKind().(*kmsg.MetadataResponse), skip: r.skip, useSkip: r.useSkip}
}

// refreshAnswer is the answer to refreshMetadata: decoded unless
// unchanged, which says its digest was the one to skip.
type refreshAnswer struct {
	*kmsg.MetadataResponse
	skip      uint64
	useSkip   bool
	digest    uint64
	hasDigest bool
	unchanged bool
	body      []byte // the undecoded bytes of an unchanged answer
}

func (a *refreshAnswer) ReadFrom(b []byte) error {
	a.digest, a.hasDigest = metadataDigest(b, a.GetVersion())
	if a.hasDigest && a.useSkip && a.digest == a.skip {
		a.unchanged, a.body = true, b
		return nil
	}
	return a.MetadataResponse.ReadFrom(b)
}

// decode decodes an unchanged answer after all.
func (a *refreshAnswer) decode() error {
	a.unchanged = false
	if err := a.MetadataResponse.ReadFrom(a.body); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}
