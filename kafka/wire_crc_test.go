package kafka

import (
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// randomBatch is a v2 batch of random bytes, rest of them after the
// header, with its length and CRC-32C right.
func randomBatch(rng *rand.Rand, rest int) []byte {
	batch := make([]byte, batchHeaderLen+rest)
	for i := range batch {
		batch[i] = byte(rng.Uint32())
	}
	batch[batchMagicOff] = 2
	binary.BigEndian.PutUint32(batch[batchLengthOff:], uint32(len(batch)-batchLengthOff-4))
	binary.BigEndian.PutUint32(batch[batchCRCOff:], crc32.Checksum(batch[batchAttrOff:], castagnoli))
	return batch
}

// TestBatchHeaderCRCPatched: rewriting a batch's producer and sequence
// leaves the CRC-32C a full computation gives, for batches below and above
// crcPatchMin (the patch) and at the lengths where crcShift's bits change.
func TestBatchHeaderCRCPatched(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 100, crcPatchMin - 1, crcPatchMin, crcPatchMin + 1, 1 << 16, 1<<16 + 7, 1 << 20, 3<<20 + 5}
	for range 20 {
		sizes = append(sizes, rng.IntN(2<<20))
	}
	for _, rest := range sizes {
		batch := randomBatch(rng, rest)
		setBatchSeq(batch, int32(rng.Uint32()>>1))
		setBatchProducer(batch, int64(rng.Uint64()>>1), int16(rng.Uint32()))
		if !batchCRCValid(batch) {
			t.Fatalf("%d bytes after the header: CRC %08x, computed %08x", rest,
				binary.BigEndian.Uint32(batch[batchCRCOff:]), crc32.Checksum(batch[batchAttrOff:], castagnoli))
		}
	}
}

// TestCorruptBatchStaysCorrupt: a batch corrupted before the proxy
// rewrites its header is refused either way. One that batchRewritable lets
// through (a large batch, not read past its header) still fails the CRC
// check after the rewrite, wherever the flipped bit is, so the broker
// refuses it; a small one, whose CRC the rewrite recomputes, is caught by
// batchRewritable itself.
func TestCorruptBatchStaysCorrupt(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, rest := range []int{10, crcPatchMin - 1, crcPatchMin, 1 << 16, 1<<20 + 3} {
		for _, at := range []int{batchAttrOff, batchPIDOff + 2, batchHeaderLen, batchHeaderLen + rest/2, batchHeaderLen + rest - 1} {
			batch := randomBatch(rng, rest)
			if !batchRewritable(batch) {
				t.Fatalf("%d bytes: an intact batch is not rewritable", rest)
			}
			batch[at] ^= 1 << (rng.Uint32() % 8)
			if !batchRewritable(batch) {
				if rest >= crcPatchMin {
					t.Fatalf("%d bytes, flipped at %d: a large batch was read past its header", rest, at)
				}
				continue
			}
			if rest < crcPatchMin {
				t.Fatalf("%d bytes, flipped at %d: a small corrupt batch passed", rest, at)
			}
			setBatchSeq(batch, 17)
			setBatchProducer(batch, 1<<40|9, 3)
			if batchCRCValid(batch) {
				t.Fatalf("%d bytes, flipped at %d: the rewrite made a corrupt batch valid", rest, at)
			}
		}
	}
}

// TestCRCShift: carrying a raw CRC through n zero bytes is what computing
// it over those zeros gives.
func TestCRCShift(t *testing.T) {
	raw := func(crc uint32, p []byte) uint32 { return ^crc32.Update(^crc, castagnoli, p) }
	for _, n := range []int{0, 1, 2, 3, 8, 255, 4096, 65537} {
		start := raw(0, []byte("switchyard"))
		if got, want := crcShift(start, n), raw(start, make([]byte, n)); got != want {
			t.Errorf("%d zero bytes: %08x, want %08x", n, got, want)
		}
	}
}

// BenchmarkSetBatchProducer: the rewrite of a 1 MiB batch's header (the
// CRC patched) against recomputing its CRC.
func BenchmarkSetBatchProducer(b *testing.B) {
	batch := make([]byte, 1<<20)
	batch[batchMagicOff] = 2
	binary.BigEndian.PutUint32(batch[batchCRCOff:], crc32.Checksum(batch[batchAttrOff:], castagnoli))
	b.Run("patched", func(b *testing.B) {
		b.SetBytes(int64(len(batch)))
		for i := range b.N {
			setBatchProducer(batch, int64(i), 0)
		}
	})
	b.Run("recomputed", func(b *testing.B) {
		b.SetBytes(int64(len(batch)))
		for i := range b.N {
			binary.BigEndian.PutUint64(batch[batchPIDOff:], uint64(i))
			binary.BigEndian.PutUint32(batch[batchCRCOff:], crc32.Checksum(batch[batchAttrOff:], castagnoli))
		}
	})
}
