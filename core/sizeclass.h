// sizeclass.h: the size classes of small blocks and the slabs that hold them.
//
// Classes are 16..128 bytes in steps of 16, then four per doubling up to
// 128 KiB (160, 192, 224, 256, 320, ...). A slab is 1 to 16 data pages of one
// class; its blocks start at the slab's first byte, so a class whose size is a
// multiple of A gives blocks aligned to A (A <= 64 KiB). The end of the slab
// holds the "slack array": one uint16_t per granule of 2^gshift bytes
// (gshift = min(floor(log2(block size)), 16)), recording block size - requested size,
// so usable_size is exactly the requested size without a division.
// The table is fixed: it is part of the pool file format (layout_hash).
#ifndef MMPOOL_SIZECLASS_H
#define MMPOOL_SIZECLASS_H

#include <stddef.h>
#include <stdint.h>

// Data pages ("slab pages") of 64 KiB: the unit of the page allocator, of
// slabs and of large blocks. Part of the pool file format.
#define PAGE_SHIFT 16
#define PAGE_BYTES ((size_t)1 << PAGE_SHIFT)

#define SC_COUNT 48
#define SC_SMALL_MAX ((size_t)128 << 10)  // largest class: 128 KiB
#define SC_DIRECT_MAX 1024                 // sizes served by a direct lookup

struct sizeclass {
  uint32_t bsize;     // bytes per block
  uint32_t npages;    // 64 KiB pages per slab
  uint32_t nblocks;   // blocks per slab
  uint32_t gshift;    // slack-array granule shift
  uint32_t slack_rel;  // offset of the slack array from the slab's start
};

extern const struct sizeclass sc_table[SC_COUNT];
// (o * sc_recip[c]) >> 40 == o / sc_table[c].bsize for o < 2^20.
extern const uint64_t sc_recip[SC_COUNT];
// ... and o is a multiple of the block size exactly when the low 40 bits
// of that product are below SC_START_BELOW: a multiple leaves there only
// o times the reciprocal's rounding (under 1), so less than 2^20; any other
// offset leaves its remainder over the block size, at least 2^40 / 2^17.
// One multiply tells both (heap_block_start); test_sizeclass tries every
// offset of every class.
#define SC_RECIP_FRAC (((uint64_t)1 << 40) - 1)
// A block of class c stays in place on a resize to n > 0 bytes exactly
// when (uint64_t)bsize - n < sc_keep[c] (heap_try_resize, resize): n fits,
// and the block is at most twice what is needed (a 16-byte block, the
// smallest, keeps every n). The subtraction is the slack to record when it
// stays, and wraps around when n does not fit: one compare tells both.
extern const uint32_t sc_keep[SC_COUNT];
#define SC_START_BELOW ((uint64_t)1 << 20)
// Blocks a slab threads onto its free list at a time (heap.c, extend):
// 4 KiB of them, at least one (a load instead of a division).
extern const uint16_t sc_extend[SC_COUNT];

// pdesc.slack_off of a slab of class sc at pool offset so: the slack
// array's offset, biased so that a block's entry is found from the block's
// own offset (poolfile.h, pdesc_slack) without the slab's start.
static inline uint64_t sc_slack_off(const struct sizeclass *sc, uint64_t so) {
  return so + sc->slack_rel - ((so >> sc->gshift) << 1);
}
// Class of size n for n <= SC_DIRECT_MAX: sc_direct[(n + 15) >> 4].
extern const uint8_t sc_direct[SC_DIRECT_MAX / 16 + 1];
// Class of size SC_DIRECT_MAX < n <= SC_SMALL_MAX: sc_upper[(n - 1) >> 8]
// (the classes above 1 KiB are multiples of 256 bytes). A load instead of
// the arithmetic of four classes per doubling: the preload library's
// first lane computes it on every allocation of 1-128 KiB.
#define SC_UPPER_SHIFT 8
extern const uint8_t sc_upper[SC_SMALL_MAX >> SC_UPPER_SHIFT];

// The class of a size 0 < n <= SC_SMALL_MAX.
static inline unsigned sc_of(size_t n) {
  if (n <= SC_DIRECT_MAX) return sc_direct[(n + 15) >> 4];
  return sc_upper[(n - 1) >> SC_UPPER_SHIFT];
}

// The smallest class >= sc_of(n) whose blocks are aligned to align (a power
// of two <= 64 KiB), or SC_COUNT if none, or if its slack for n would not
// fit 16 bits (then the block is a page run).
unsigned sc_of_aligned(size_t n, size_t align);

// Hash of the table, recorded in pool files.
uint64_t sc_layout_hash(void);

#endif
