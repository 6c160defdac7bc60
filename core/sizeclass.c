// sizeclass.c: the class table (see sizeclass.h for its shape).
//
// The rows are fixed data, not computed at start-up, so the fast path reads
// constants and a pool file can record a hash of them. They follow from:
// classes 16..128 step 16, then 4 per doubling; a slab takes the fewest of
// 1/2/4/8/16 pages that holds at least 8 blocks and wastes at most 1/16 of
// it (besides the slack array), or 16 pages;
// nblocks is the most blocks that fit before a slack array of
// (((nblocks - 1) * bsize >> gshift) + 1) uint16_t entries, rounded up to 16
// bytes, at the slab's end (slack_rel).
#include "sizeclass.h"

#include "hash.h"

// Generated from the rules above; checked by
// tests/unit/test_sizeclass.c. {bsize, npages, nblocks, gshift, slack_rel}
const struct sizeclass sc_table[SC_COUNT] = {
    {16, 1, 3640, 4, 58256},
    {32, 1, 1927, 5, 61680},
    {48, 1, 1285, 5, 61680},
    {64, 1, 992, 6, 63552},
    {80, 1, 794, 6, 63552},
    {96, 1, 662, 6, 63552},
    {112, 1, 567, 6, 63552},
    {128, 1, 504, 7, 64528},
    {160, 1, 403, 7, 64528},
    {192, 1, 336, 7, 64528},
    {224, 1, 288, 7, 64528},
    {256, 1, 254, 8, 65024},
    {320, 1, 203, 8, 65024},
    {384, 1, 169, 8, 65024},
    {448, 1, 145, 8, 65024},
    {512, 1, 127, 9, 65280},
    {640, 1, 102, 9, 65280},
    {768, 1, 85, 9, 65280},
    {896, 1, 72, 9, 65280},
    {1024, 1, 63, 10, 65408},
    {1280, 1, 51, 10, 65408},
    {1536, 1, 42, 10, 65408},
    {1792, 1, 36, 10, 65408},
    {2048, 1, 31, 11, 65472},
    {2560, 1, 25, 11, 65472},
    {3072, 1, 21, 11, 65472},
    {3584, 1, 18, 11, 65472},
    {4096, 1, 15, 12, 65504},
    {5120, 1, 12, 12, 65504},
    {6144, 1, 10, 12, 65504},
    {7168, 1, 9, 12, 65504},
    {8192, 2, 15, 13, 131040},
    {10240, 2, 12, 13, 131040},
    {12288, 2, 10, 13, 131040},
    {14336, 2, 9, 13, 131040},
    {16384, 4, 15, 14, 262112},
    {20480, 4, 12, 14, 262112},
    {24576, 4, 10, 14, 262112},
    {28672, 4, 9, 14, 262112},
    {32768, 8, 15, 15, 524256},
    {40960, 8, 12, 15, 524256},
    {49152, 8, 10, 15, 524256},
    {57344, 8, 9, 15, 524256},
    {65536, 16, 15, 16, 1048544},
    {81920, 16, 12, 16, 1048544},
    {98304, 16, 10, 16, 1048544},
    {114688, 16, 9, 16, 1048544},
    {131072, 16, 7, 16, 1048544},
};
// Reciprocals of the block sizes, for an exact "start of a block" test
// without a division (realloc's fast path, heap.h): for an offset o in a
// slab (below 2^20: 16 pages), (o * sc_recip[c]) >> 40 is o / bsize: the
// reciprocal is rounded up by less than 1, which adds less than
// o / 2^40 < 2^-20 to the quotient, less than the 1 / bsize an offset short
// of the next multiple leaves below it (test_sizeclass tries every offset).
// The block sizes of sc_table in order, for the tables derived from them.
#define SC_BSIZES(X)                                                        \
  X(16) X(32) X(48) X(64) X(80) X(96) X(112) X(128) X(160) X(192) X(224)    \
  X(256) X(320) X(384) X(448) X(512) X(640) X(768) X(896) X(1024) X(1280)   \
  X(1536) X(1792) X(2048) X(2560) X(3072) X(3584) X(4096) X(5120) X(6144)   \
  X(7168) X(8192) X(10240) X(12288) X(14336) X(16384) X(20480) X(24576)     \
  X(28672) X(32768) X(40960) X(49152) X(57344) X(65536) X(81920) X(98304)   \
  X(114688) X(131072)
#define SC_RECIP(b) ((((uint64_t)1 << 40) + (b) - 1) / (b)),
const uint64_t sc_recip[SC_COUNT] = {SC_BSIZES(SC_RECIP)};
// A block of b bytes keeps a resize to n when b - n < SC_KEEP(b): n fits
// and the block is at most twice what is needed (n > b / 2); a 16-byte
// block keeps every n up to 16.
#define SC_KEEP(b) ((b) <= 16 ? (b) : (b) - (b) / 2),
const uint32_t sc_keep[SC_COUNT] = {SC_BSIZES(SC_KEEP)};
// Blocks a slab threads onto its free list at a time (heap.c, extend):
// 4 KiB of them, at least one.
#define SC_EXTEND(b) ((b) >= 4096 ? 1 : 4096 / (b)),
const uint16_t sc_extend[SC_COUNT] = {SC_BSIZES(SC_EXTEND)};

const uint8_t sc_direct[SC_DIRECT_MAX / 16 + 1] = {
    0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 10, 10, 11,
    11, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15,
    15, 16, 16, 16, 16, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17,
    17, 18, 18, 18, 18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19,
    19,
};

// Entry i: sizes (256 i, 256 (i + 1)], from i = 4 (entries 0-3, of sizes
// up to 1 KiB, which sc_direct serves, hold the class of their largest
// size). Checked against sc_table for every size by test_sizeclass.
const uint8_t sc_upper[SC_SMALL_MAX >> SC_UPPER_SHIFT] = {
    [0] = 11, [1] = 15, [2] = 17, [3] = 19, [4] = 20, [5] = 21, [6] = 22,
    [7] = 23, [8 ... 9] = 24, [10 ... 11] = 25, [12 ... 13] = 26,
    [14 ... 15] = 27, [16 ... 19] = 28, [20 ... 23] = 29, [24 ... 27] = 30,
    [28 ... 31] = 31, [32 ... 39] = 32, [40 ... 47] = 33, [48 ... 55] = 34,
    [56 ... 63] = 35, [64 ... 79] = 36, [80 ... 95] = 37, [96 ... 111] = 38,
    [112 ... 127] = 39, [128 ... 159] = 40, [160 ... 191] = 41,
    [192 ... 223] = 42, [224 ... 255] = 43, [256 ... 319] = 44,
    [320 ... 383] = 45, [384 ... 447] = 46, [448 ... 511] = 47,
};

unsigned sc_of_aligned(size_t n, size_t align) {
  if (n > SC_SMALL_MAX || align > PAGE_BYTES) return SC_COUNT;
  for (unsigned c = sc_of(n ? n : 1); c < SC_COUNT; c++)
    if ((sc_table[c].bsize & (align - 1)) == 0)
      // The slack (block size - n) must fit the uint16_t slack array.
      return sc_table[c].bsize - n <= 0xffff ? c : SC_COUNT;
  return SC_COUNT;
}

uint64_t sc_layout_hash(void) {
  uint64_t h = hash_bytes(sc_table, sizeof sc_table, SC_COUNT);
  return hash_bytes(sc_direct, sizeof sc_direct, h);
}
