// test_sizeclass.c: the size-class table (core/sizeclass.h).
//
// The table is fixed data and part of the file format, so this test derives
// it again from the rules the header states and compares row by row; then it
// checks the lookups: every size 0..128 KiB gets the smallest class that
// holds it, aligned lookups give blocks with that alignment, and the slack
// array can record every slack a lookup can produce.
#include <stdio.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "hash.h"
#include "poolfile.h"
#include "sizeclass.h"

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static unsigned floor_log2(size_t n) {
  return 63u - (unsigned)__builtin_clzl(n);
}

// Bytes of the slack array of a slab of n blocks of bsize bytes.
static size_t slack_bytes(size_t n, size_t bsize, unsigned gshift) {
  return round16((((n - 1) * bsize >> gshift) + 1) * sizeof(uint16_t));
}

static size_t lowbit(size_t n) { return n & (~n + 1); }

// The class sizes by the rule: 16..128 step 16, then 4 per doubling.
static size_t rule_bsize(unsigned c) {
  if (c < 8) return 16 * (c + 1);
  unsigned k = 7 + (c - 8) / 4, j = (c - 8) % 4;
  return ((size_t)1 << k) + (((size_t)1 << k) / 4) * (j + 1);
}

static void test_table_follows_rules(void **state) {
  (void)state;
  assert_int_equal(SC_COUNT, 48);
  assert_true(SC_COUNT <= POOL_NCLASSES_MAX);
  assert_true(SC_COUNT <= MMPOOL_STATS_CLASSES);
  for (unsigned c = 0; c < SC_COUNT; c++) {
    const struct sizeclass *s = &sc_table[c];
    if (s->bsize != rule_bsize(c))
      fail_msg("class %u: bsize %u, the rule gives %zu", c, s->bsize,
               rule_bsize(c));
    if (s->gshift != (floor_log2(s->bsize) < 16 ? floor_log2(s->bsize) : 16))
      fail_msg("class %u: gshift %u", c, s->gshift);
    // The fewest of 1/2/4/8/16 pages holding at least 8 blocks and wasting
    // at most 1/16 of the slab, or 16 pages.
    unsigned want_np = 0;
    size_t want_n = 0, want_side = 0;
    for (unsigned np = 1; np <= 16; np *= 2) {
      size_t slab = np * PAGE_BYTES, n = 0;
      while ((n + 1) * s->bsize + slack_bytes(n + 1, s->bsize, s->gshift) <=
             slab)
        n++;
      size_t side = slab - slack_bytes(n, s->bsize, s->gshift);
      if (n > 0 &&
          ((n >= 8 && (side - n * s->bsize) * 16 <= slab) || np == 16)) {
        want_np = np, want_n = n, want_side = side;
        break;
      }
    }
    if (s->npages != want_np || s->nblocks != want_n ||
        s->slack_rel != want_side)
      fail_msg("class %u (%u bytes): {%u pages, %u blocks, side %u}, the "
               "rule gives {%u, %zu, %zu}",
               c, s->bsize, s->npages, s->nblocks, s->slack_rel, want_np, want_n,
               want_side);
  }
  assert_int_equal(sc_table[0].bsize, 16);
  assert_int_equal(sc_table[SC_COUNT - 1].bsize, SC_SMALL_MAX);
}

static void test_table_shape(void **state) {
  (void)state;
  for (unsigned c = 0; c < SC_COUNT; c++) {
    const struct sizeclass *s = &sc_table[c];
    // Ascending, multiples of 16 (every block 16-aligned).
    assert_int_equal(s->bsize % 16, 0);
    if (c > 0) assert_true(s->bsize > sc_table[c - 1].bsize);
    // The slab holds its blocks, then the slack array, within its pages.
    assert_true(s->npages >= 1 && s->npages <= 16);
    assert_int_equal(s->npages & (s->npages - 1), 0);
    assert_true(s->nblocks >= 1);
    assert_true((size_t)s->nblocks * s->bsize <= s->slack_rel);
    assert_int_equal(s->slack_rel % 16, 0);
    assert_true(s->slack_rel + slack_bytes(s->nblocks, s->bsize, s->gshift) <=
                s->npages * PAGE_BYTES);
    // One slack entry per block at least: blocks map to distinct granules
    // inside the array.
    size_t entries = slack_bytes(s->nblocks, s->bsize, s->gshift) / 2;
    size_t prev = 0;
    for (size_t i = 0; i < s->nblocks; i++) {
      size_t g = i * s->bsize >> s->gshift;
      assert_true(g < entries);
      if (i > 0) assert_true(g > prev);
      prev = g;
    }
    // The granule is no larger than a block.
    assert_true(((size_t)1 << s->gshift) <= s->bsize);
    // Slab fits a descriptor's fields.
    assert_true(s->nblocks < UINT32_MAX);
  }
}

// For every size 0..SC_SMALL_MAX: the class holds it and is the smallest
// that does; the direct table agrees up to SC_DIRECT_MAX.
static void test_lookup_every_size(void **state) {
  (void)state;
  unsigned prev = 0;
  for (size_t n = 0; n <= SC_SMALL_MAX; n++) {
    unsigned c = n ? sc_of(n) : sc_direct[0];
    if (c >= SC_COUNT) {
      fail_msg("sc_of(%zu) = %u", n, c);
      return;
    }
    if (sc_table[c].bsize < n)
      fail_msg("sc_of(%zu) = class %u of %u bytes: too small", n, c,
               sc_table[c].bsize);
    if (c > 0 && sc_table[c - 1].bsize >= n)
      fail_msg("sc_of(%zu) = class %u of %u bytes: class %u (%u) fits", n, c,
               sc_table[c].bsize, c - 1, sc_table[c - 1].bsize);
    if (c < prev) fail_msg("sc_of is not monotonic at %zu", n);
    prev = c;
    if (n <= SC_DIRECT_MAX && sc_direct[(n + 15) >> 4] != c)
      fail_msg("sc_direct for %zu gives %u, sc_of %u", n,
               sc_direct[(n + 15) >> 4], c);
    // The slack (block size - requested size) fits the uint16_t array.
    if (sc_table[c].bsize - n > UINT16_MAX)
      fail_msg("size %zu in class %u: slack %zu does not fit uint16_t", n, c,
               sc_table[c].bsize - n);
  }
  assert_int_equal(sc_direct[0], 0);
  assert_int_equal(sc_of(1), 0);
  assert_int_equal(sc_of(16), 0);
  assert_int_equal(sc_of(17), 1);
  assert_int_equal(sc_of(SC_SMALL_MAX), SC_COUNT - 1);
  // The computed branch starts right after the direct table.
  assert_int_equal(sc_of(SC_DIRECT_MAX + 1), sc_of(1280));
  assert_int_equal(sc_table[sc_of(SC_DIRECT_MAX + 1)].bsize, 1280);
}

// Power-of-two classes give blocks aligned to their size; in general a
// block is aligned to the lowest set bit of its class size (slabs start on
// a 64 KiB page).
static void test_alignment(void **state) {
  (void)state;
  for (unsigned c = 0; c < SC_COUNT; c++) {
    size_t b = sc_table[c].bsize;
    size_t a = lowbit(b) < PAGE_BYTES ? lowbit(b) : PAGE_BYTES;
    for (size_t i = 0; i < sc_table[c].nblocks; i++)
      assert_int_equal((i * b) % a, 0);
    if ((b & (b - 1)) == 0 && b <= PAGE_BYTES) assert_int_equal(a, b);
  }
}

static void test_lookup_aligned(void **state) {
  (void)state;
  for (size_t align = 1; align <= PAGE_BYTES; align *= 2) {
    unsigned prev = 0;
    for (size_t n = 0; n <= SC_SMALL_MAX; n++) {
      unsigned c = sc_of_aligned(n, align);
      unsigned base = sc_of(n ? n : 1);
      // The expected answer: the first class from sc_of(n) on whose size
      // is a multiple of align.
      unsigned want = base;
      while (want < SC_COUNT && sc_table[want].bsize % align != 0)
        want++;
      // ...unless its slack for n would not fit 16 bits (a page run then).
      if (want < SC_COUNT && sc_table[want].bsize - n > UINT16_MAX)
        want = SC_COUNT;
      if (c != want)
        fail_msg("sc_of_aligned(%zu, %zu) = %u, expected %u", n, align, c,
                 want);
      if (c == SC_COUNT) continue;
      if (c < prev)
        fail_msg("sc_of_aligned(., %zu) not monotonic at %zu", align, n);
      prev = c;
      assert_true(sc_table[c].bsize >= n);
      // Every block of the class is aligned.
      assert_int_equal(sc_table[c].bsize % align, 0);
      // The slack of the block must fit the uint16_t slack array, or the
      // usable size of the block cannot be exact.
      if (sc_table[c].bsize - n > UINT16_MAX)
        fail_msg("sc_of_aligned(%zu, %zu) = class %u of %u bytes: slack "
                 "%zu does not fit the uint16_t slack array",
                 n, align, c, sc_table[c].bsize, sc_table[c].bsize - n);
    }
  }
  // Alignments above a page, and sizes above the largest class: none.
  assert_int_equal(sc_of_aligned(16, 2 * PAGE_BYTES), SC_COUNT);
  assert_int_equal(sc_of_aligned(SC_SMALL_MAX + 1, 16), SC_COUNT);
  assert_int_equal(sc_of_aligned(1, 16), 0);
  // 64 KiB alignment: the 64 KiB class, then 128 KiB.
  assert_int_equal(sc_table[sc_of_aligned(100, PAGE_BYTES)].bsize, 65536);
  assert_int_equal(sc_table[sc_of_aligned(65537, PAGE_BYTES)].bsize, 131072);
  // Size 0 at 64 KiB alignment would leave a slack of 65536: no class.
  assert_int_equal(sc_of_aligned(0, PAGE_BYTES), SC_COUNT);
  assert_int_equal(sc_table[sc_of_aligned(1, PAGE_BYTES)].bsize, 65536);
}

static void test_layout_hash(void **state) {
  (void)state;
  uint64_t h = sc_layout_hash();
  assert_int_equal(sc_layout_hash(), h);
  assert_int_not_equal(h, 0);
  // It covers the table: the same hash over a changed copy differs.
  struct sizeclass copy[SC_COUNT];
  memcpy(copy, sc_table, sizeof copy);
  uint64_t t0 = hash_bytes(copy, sizeof copy, SC_COUNT);
  copy[20].nblocks++;
  assert_int_not_equal(hash_bytes(copy, sizeof copy, SC_COUNT), t0);
}

// realloc's fast path divides by a block size with sc_recip: exact for
// every offset of every slab.
static void test_reciprocals(void **state) {
  (void)state;
  for (unsigned c = 0; c < SC_COUNT; c++) {
    const struct sizeclass *sc = &sc_table[c];
    uint64_t end = (uint64_t)sc->npages << PAGE_SHIFT;
    assert_true(end <= (uint64_t)1 << 20);
    for (uint64_t o = 0; o < end; o++) {
      uint64_t x = o * sc_recip[c];
      if ((x >> 40) != o / sc->bsize)
        fail_msg("class %u (%u bytes): offset %llu", c, sc->bsize,
                 (unsigned long long)o);
      // The start test of heap_block_start, from the same product.
      if (((x & SC_RECIP_FRAC) < SC_START_BELOW) != (o % sc->bsize == 0))
        fail_msg("class %u (%u bytes): offset %llu: start test says %d",
                 c, sc->bsize, (unsigned long long)o,
                 (x & SC_RECIP_FRAC) < SC_START_BELOW);
    }
  }
}

// The resize rule by one compare (heap_try_resize, resize): a block keeps
// n bytes exactly when n fits and the block is at most twice what is
// needed, or it is a 16-byte block; sc_keep follows sc_table's sizes.
static void test_keep(void **state) {
  (void)state;
  for (unsigned c = 0; c < SC_COUNT; c++) {
    uint32_t b = sc_table[c].bsize;
    for (uint64_t n = 1; n <= (uint64_t)b + 64; n++) {
      int rule = n <= b && (n > b / 2 || b <= 16);
      if (((uint64_t)b - n < sc_keep[c]) != rule)
        fail_msg("class %u (%u bytes): %llu bytes: keep says %d", c, b,
                 (unsigned long long)n, !rule);
    }
  }
}

// extend's chunks (heap.c): 4 KiB of blocks, at least one. sc_extend is
// built from the SC_BSIZES list (sizeclass.c), not from sc_table: this
// fails when the two lists disagree for a class.
static void test_extend_chunks(void **state) {
  (void)state;
  for (unsigned c = 0; c < SC_COUNT; c++) {
    uint32_t b = sc_table[c].bsize;
    assert_int_equal(sc_extend[c], b >= 4096 ? 1 : 4096 / b);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table_follows_rules),
      cmocka_unit_test(test_table_shape),
      cmocka_unit_test(test_lookup_every_size),
      cmocka_unit_test(test_alignment),
      cmocka_unit_test(test_lookup_aligned),
      cmocka_unit_test(test_layout_hash),
      cmocka_unit_test(test_reciprocals),
      cmocka_unit_test(test_keep),
      cmocka_unit_test(test_extend_chunks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
