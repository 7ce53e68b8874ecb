package kafka

// Record batches on the wire: walking the batches of a partition's records
// and rewriting the header fields the proxy owns (the producer id and
// epoch, with the CRC-32C recomputed), and skimming responses without
// decoding them. Every reader here bounds what it reads by the bytes it
// was given; the fuzz targets drive them.

import (
	"encoding/binary"
	"hash/crc32"
)

// Record batch v2 layout (the fields the rewrite touches).
const (
	batchLengthOff = 8  // int32: bytes after this field
	batchMagicOff  = 16 // int8
	batchCRCOff    = 17 // uint32 over [batchAttrOff, end)
	batchAttrOff   = 21
	batchPIDOff    = 43 // int64
	batchEpochOff  = 51 // int16
	batchHeaderLen = 61
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// batchesOf calls fn with each record batch in records (the Records field
// of one produce partition). It stops and reports false at anything that is
// not a whole v2 batch; the broker then rejects the request itself.
func batchesOf(records []byte, fn func(batch []byte) bool) bool {
	for len(records) > 0 {
		if len(records) < batchHeaderLen || records[batchMagicOff] != 2 {
			return false
		}
		n := int(int32(binary.BigEndian.Uint32(records[batchLengthOff:]))) + batchLengthOff + 4
		if n < batchHeaderLen || n > len(records) {
			return false
		}
		if !fn(records[:n]) {
			return false
		}
		records = records[n:]
	}
	return true
}

// batchProducer reads a v2 batch's producer id and epoch.
func batchProducer(batch []byte) (int64, int16) {
	return int64(binary.BigEndian.Uint64(batch[batchPIDOff:])), int16(binary.BigEndian.Uint16(batch[batchEpochOff:]))
}

// batchCRCValid reports whether a v2 batch's CRC-32C matches its bytes.
func batchCRCValid(batch []byte) bool {
	return binary.BigEndian.Uint32(batch[batchCRCOff:]) == crc32.Checksum(batch[batchAttrOff:], castagnoli)
}

// batchRewritable reports whether the header of a client's batch may be
// rewritten (setBatchHeader) without hiding a corruption. A small batch's
// CRC is recomputed by the rewrite, so a batch corrupted on its way from
// the client would reach the broker as a valid one: it is checked first,
// as the broker would check it. A large batch's CRC is patched, which
// keeps a wrong CRC wrong (the patch adds the same difference to the
// stored CRC and to the bytes' own), so the broker still refuses it with
// CORRUPT_MESSAGE and reading it here would be a second full pass over
// every produced byte (5% of the peers' CPU in the three-peer benchmark).
func batchRewritable(batch []byte) bool {
	return len(batch)-batchHeaderLen >= crcPatchMin || batchCRCValid(batch)
}

// setBatchProducer rewrites a v2 batch's producer id and epoch in place and
// brings its CRC-32C up to date (setBatchHeader).
func setBatchProducer(batch []byte, id int64, epoch int16) {
	setBatchHeader(batch, func(h []byte) {
		binary.BigEndian.PutUint64(h[batchPIDOff:], uint64(id))
		binary.BigEndian.PutUint16(h[batchEpochOff:], uint16(epoch))
	})
}

// setBatchSeq rewrites a v2 batch's first sequence in place and brings its
// CRC-32C up to date (setBatchHeader).
func setBatchSeq(batch []byte, seq int32) {
	setBatchHeader(batch, func(h []byte) { binary.BigEndian.PutUint32(h[batchSeqOff:], uint32(seq)) })
}

// crcPatchMin: below this many bytes after the header, recomputing the CRC
// over the batch costs less than patching it (about 20 carry-less
// multiplications, bit by bit).
const crcPatchMin = 4 << 10

// setBatchHeader lets set rewrite fields of a v2 batch's header (the bytes
// up to batchHeaderLen, in batch's own offsets) and updates the batch's
// CRC-32C. A large batch's CRC is patched rather than recomputed: a CRC is
// linear, so the CRC of the new bytes is the old one XOR the raw CRC of the
// difference, which is zero past the header; the header's difference is
// carried through the rest of the batch as a multiplication by x^(8*rest)
// mod the polynomial. The patch carries a wrong CRC over as wrong, so a
// large batch is never read past its header; a small one's CRC is
// recomputed and must have been right before (batchRewritable).
func setBatchHeader(batch []byte, set func(h []byte)) {
	var old [batchHeaderLen]byte
	copy(old[:], batch[:batchHeaderLen])
	set(batch[:batchHeaderLen])
	rest := len(batch) - batchHeaderLen
	if rest < crcPatchMin {
		binary.BigEndian.PutUint32(batch[batchCRCOff:], crc32.Checksum(batch[batchAttrOff:], castagnoli))
		return
	}
	var diff [batchHeaderLen - batchAttrOff]byte
	for i := range diff {
		diff[i] = old[batchAttrOff+i] ^ batch[batchAttrOff+i]
	}
	// crc32.Update with ^0 in and out is the raw CRC (no pre- or
	// post-inversion): Update inverts both ends itself.
	raw := ^crc32.Update(^uint32(0), castagnoli, diff[:])
	crc := binary.BigEndian.Uint32(batch[batchCRCOff:]) ^ crcShift(raw, rest)
	binary.BigEndian.PutUint32(batch[batchCRCOff:], crc)
}

// castagnoliReflected is CRC-32C's polynomial, bit-reflected as
// hash/crc32 uses it: bit 31 is x^0.
const castagnoliReflected = 0x82f63b78

// crcMulMod multiplies a and b, polynomials over GF(2) in the reflected
// representation, modulo CRC-32C's polynomial.
func crcMulMod(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0 && a != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
			a &^= m
		}
		if b&1 != 0 {
			b = b>>1 ^ castagnoliReflected
		} else {
			b >>= 1
		}
	}
	return p
}

// crcPow2 holds x^(2^k) mod CRC-32C's polynomial for k = 3..34: shifting a
// CRC through 2^j zero bytes multiplies it by crcPow2[j] (x^(8*2^j)).
var crcPow2 = func() (t [32]uint32) {
	x := uint32(1) << 30 // x^1
	for range 3 {
		x = crcMulMod(x, x) // up to x^8
	}
	for j := range t {
		t[j] = x
		x = crcMulMod(x, x)
	}
	return t
}()

// crcShift carries a raw CRC-32C through n zero bytes.
func crcShift(crc uint32, n int) uint32 {
	for j := 0; n > 0; j, n = j+1, n>>1 {
		if n&1 != 0 {
			crc = crcMulMod(crcPow2[j], crc)
		}
	}
	return crc
}

// skim walks Kafka's wire encoding without decoding into structs. Any
// malformed or unexpected input clears ok; later calls then do nothing.
type skim struct {
	b        []byte
	flexible bool
	ok       bool
}

func (s *skim) fail() { s.ok, s.b = false, nil }

func (s *skim) skip(n int) {
	if n < 0 || n > len(s.b) {
		s.fail()
		return
	}
	s.b = s.b[n:]
}

func (s *skim) int16() int16 {
	if len(s.b) < 2 {
		s.fail()
		return 0
	}
	x := int16(binary.BigEndian.Uint16(s.b))
	s.b = s.b[2:]
	return x
}

func (s *skim) int32() int32 {
	if len(s.b) < 4 {
		s.fail()
		return 0
	}
	x := int32(binary.BigEndian.Uint32(s.b))
	s.b = s.b[4:]
	return x
}

func (s *skim) uvarint() uint64 {
	x, n := binary.Uvarint(s.b)
	if n <= 0 {
		s.fail()
		return 0
	}
	s.b = s.b[n:]
	return x
}

// length reads a compact (uvarint N+1) or classic length (int32 for
// arrays, int16 for strings); -1 is null.
func (s *skim) length(array bool) int {
	switch {
	case s.flexible:
		n := s.uvarint()
		if n > uint64(len(s.b))+1 {
			s.fail()
			return 0
		}
		return int(n) - 1
	case array:
		return int(s.int32())
	}
	return int(s.int16())
}

// arrayLen reads a non-null array length, failing on null or on a count
// the remaining bytes cannot hold.
func (s *skim) arrayLen() int {
	n := s.length(true)
	if n < 0 || n > len(s.b) {
		s.fail()
		return 0
	}
	return n
}

func (s *skim) str() {
	n := s.length(false)
	if n < 0 {
		s.fail()
		return
	}
	s.skip(n)
}

func (s *skim) nullableStr() {
	n := s.length(false)
	if n < -1 {
		s.fail()
		return
	}
	if n > 0 {
		s.skip(n)
	}
}

// noTags requires an empty tagged-field section in flexible versions.
func (s *skim) noTags() {
	if s.flexible && s.uvarint() != 0 {
		s.fail()
	}
}

// Topic ids on the wire (Produce v13+, Fetch v13+, OffsetCommit v10+,
// TxnOffsetCommit v6+). Clients know virtual
// topic ids (topicids.go), brokers their own; the walkers below find each
// topic's id in a frame so it can be swapped in place, which keeps the
// forward-as-is path for requests and answers that name topics by id.
// Each returns false when the bytes do not parse as the version (the
// caller then decodes and re-encodes, or lets the client judge them).

// produceRequestIDs calls fn with the offset in body of each topic's id, in
// request order, of a Produce request body at version v (13+).
func produceRequestIDs(body []byte, v int16, fn func(off int)) bool {
	s := skim{b: body, flexible: true, ok: true}
	s.nullableStr() // transactional id
	s.skip(2 + 4)   // acks, timeout
	for range s.arrayLen() {
		if !s.ok {
			return false
		}
		s.id(body, fn)
		for range s.arrayLen() {
			s.skip(4)         // partition
			s.nullableBytes() // records
			s.tags()
		}
		s.tags()
	}
	s.tags()
	return s.ok && len(s.b) == 0
}

// fetchRequestIDs is produceRequestIDs for a Fetch request body at v
// (13+): the fetched topics' ids, then the forgotten topics'.
func fetchRequestIDs(body []byte, v int16, fn func(off int)) bool {
	s := skim{b: body, flexible: true, ok: true}
	if v < 15 {
		s.skip(4) // replica id
	}
	s.skip(4 + 4 + 4 + 1 + 4 + 4) // max wait, min bytes, max bytes, isolation, session id, epoch
	for range s.arrayLen() {
		if !s.ok {
			return false
		}
		s.id(body, fn)
		for range s.arrayLen() {
			s.skip(4 + 4 + 8 + 4 + 8 + 4) // partition, leader epoch, offset, last fetched epoch, log start, max bytes
			s.tags()                      // v17's replica directory id is one
		}
		s.tags()
	}
	for range s.arrayLen() { // forgotten topics
		if !s.ok {
			return false
		}
		s.id(body, fn)
		for range s.arrayLen() {
			s.skip(4)
		}
		s.tags()
	}
	s.str() // rack id
	s.tags()
	return s.ok && len(s.b) == 0
}

// produceResponseIDs calls fn with the offset in body of each topic's id
// in a Produce response body at v (13+).
func produceResponseIDs(body []byte, v int16, fn func(off int)) bool {
	s := skim{b: body, flexible: true, ok: true}
	for range s.arrayLen() {
		if !s.ok {
			return false
		}
		s.id(body, fn)
		for range s.arrayLen() {
			s.skip(4 + 2 + 8 + 8 + 8) // partition, error, base offset, log append time, log start
			for range s.arrayLen() {  // record errors
				s.skip(4)
				s.nullableStr()
				s.tags()
			}
			s.nullableStr() // error message
			s.tags()
		}
		s.tags()
	}
	s.skip(4) // throttle
	s.tags()
	return s.ok && len(s.b) == 0
}

// fetchResponseIDs calls fn with the offset in body of each topic's id in
// a Fetch response body at v (13+).
func fetchResponseIDs(body []byte, v int16, fn func(off int)) bool {
	s := skim{b: body, flexible: true, ok: true}
	s.skip(4 + 2 + 4) // throttle, error, session id
	for range s.arrayLen() {
		if !s.ok {
			return false
		}
		s.id(body, fn)
		for range s.arrayLen() {
			s.skip(4 + 2 + 8 + 8 + 8)       // partition, error, high watermark, last stable, log start
			if n := s.length(true); n > 0 { // aborted transactions, nullable
				for range n {
					s.skip(8 + 8)
					s.tags()
				}
			} else if n < -1 {
				s.fail()
			}
			s.skip(4)         // preferred read replica
			s.nullableBytes() // records
			s.tags()
		}
		s.tags()
	}
	s.tags()
	return s.ok && len(s.b) == 0
}

// offsetCommitRequestIDs calls fn with the offset in body of each topic's
// id, in request order, of an OffsetCommit request body at v (10+).
func offsetCommitRequestIDs(body []byte, v int16, fn func(off int)) bool {
	s := skim{b: body, flexible: true, ok: true}
	s.str()         // group
	s.skip(4)       // generation or member epoch
	s.str()         // member id
	s.nullableStr() // group instance id
	return s.commitTopics(body, fn)
}

// txnOffsetCommitRequestIDs is offsetCommitRequestIDs for a
// TxnOffsetCommit request body at v (6+, KIP-1319).
func txnOffsetCommitRequestIDs(body []byte, v int16, fn func(off int)) bool {
	s := skim{b: body, flexible: true, ok: true}
	s.str()         // transactional id
	s.str()         // group
	s.skip(8 + 2)   // producer id, epoch
	s.skip(4)       // generation
	s.str()         // member id
	s.nullableStr() // group instance id
	return s.commitTopics(body, fn)
}

// commitTopics walks the topics of an OffsetCommit (v10+) or
// TxnOffsetCommit (v6+) request to the end of body: the two share them.
func (s *skim) commitTopics(body []byte, fn func(off int)) bool {
	for range s.arrayLen() {
		if !s.ok {
			return false
		}
		s.id(body, fn)
		for range s.arrayLen() {
			s.skip(4 + 8 + 4) // partition, offset, leader epoch
			s.nullableStr()   // metadata
			s.tags()
		}
		s.tags()
	}
	s.tags()
	return s.ok && len(s.b) == 0
}

// commitResponseIDs calls fn with the offset in body of each topic's id in
// an OffsetCommit (v10+) or TxnOffsetCommit (v6+) response body: both
// answer a throttle and each partition's error.
func commitResponseIDs(body []byte, v int16, fn func(off int)) bool {
	s := skim{b: body, flexible: true, ok: true}
	s.skip(4) // throttle
	for range s.arrayLen() {
		if !s.ok {
			return false
		}
		s.id(body, fn)
		for range s.arrayLen() {
			s.skip(4 + 2) // partition, error
			s.tags()
		}
		s.tags()
	}
	s.tags()
	return s.ok && len(s.b) == 0
}

// id passes the offset in body of the 16-byte topic id that s is at to fn,
// and skips it; too few bytes fail s and call nothing.
func (s *skim) id(body []byte, fn func(off int)) {
	if len(s.b) < 16 {
		s.fail()
		return
	}
	fn(len(body) - len(s.b))
	s.b = s.b[16:]
}

// nullableBytes skips compact nullable bytes.
func (s *skim) nullableBytes() {
	n := s.length(true)
	switch {
	case n < -1:
		s.fail()
	case n > 0:
		s.skip(n)
	}
}

// tags skips a flexible version's tagged fields, whatever they hold.
func (s *skim) tags() {
	n := s.uvarint()
	if n > uint64(len(s.b)) {
		s.fail()
		return
	}
	for range n {
		s.uvarint() // tag
		size := s.uvarint()
		if size > uint64(len(s.b)) {
			s.fail()
			return
		}
		s.skip(int(size))
	}
}
