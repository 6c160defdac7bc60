// test_api_stats.c: statistics and walking (include/mmpool.h): what
// mmpool_stats reports before, during and after allocations of every class,
// and mmpool_walk: every live block once, in address order, with its size,
// stopping at the callback's first non-zero result.
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "itest.h"
#include "mmpool.h"

static void test_stats(void **state) {
  (void)state;
  mmpool_t *p = itest_open("st", "size=256M");
  mmpool_stats_t s0, s1;
  itest_stats(p, &s0);
  assert_int_equal(s0.capacity, 256 * MiB);
  assert_true(s0.mapped <= s0.capacity);
  assert_true(s0.metadata > 0);
  assert_true(s0.metadata <= s0.capacity);
  assert_int_equal(s0.in_use, 0);
  assert_int_equal(s0.in_use_blocks, 0);
  assert_int_equal(s0.large_blocks, 0);
  assert_true(s0.free_bytes <= s0.mapped);
  assert_true(s0.nclasses >= 1 && s0.nclasses <= MMPOOL_STATS_CLASSES);
  size_t prev = 0, largest = 0;
  for (unsigned i = 0; i < s0.nclasses; i++) {
    size_t bs = s0.classes[i].block_size;
    if (bs == 0) continue;
    assert_true(bs > prev);
    assert_int_equal(bs % 16 == 0 || bs < 16, 1);
    prev = largest = bs;
  }
  assert_true(largest >= 1024);
  ITEST_FAILS_INT(mmpool_stats(p, NULL), EINVAL);

  static const size_t sizes[] = {1,    16,    17,     100, 1000,
                                 4000, 20000, 100000, MiB, 5 * MiB};
  void *blk[sizeof sizes / sizeof sizes[0]];
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    itest_stats(p, &s0);
    blk[i] = mmpool_malloc(p, sizes[i]);
    assert_non_null(blk[i]);
    memset(blk[i], 1, sizes[i]);
    itest_stats(p, &s1);
    assert_int_equal(s1.in_use_blocks, s0.in_use_blocks + 1);
    assert_true(s1.in_use >= s0.in_use + sizes[i]);
    assert_true(s1.mapped <= s1.capacity);
    assert_true(s1.in_use + s1.free_bytes <= s1.mapped);
    assert_true(s1.free_bytes <= s1.mapped);
    assert_int_equal(s1.large_blocks,
                     s0.large_blocks + (sizes[i] > largest ? 1 : 0));
    size_t used = 0;
    for (unsigned c = 0; c < s1.nclasses; c++)
      used += s1.classes[c].blocks_used;
    assert_int_equal(used + s1.large_blocks, s1.in_use_blocks);
  }
  // A block of each class's size lands in that class.
  itest_stats(p, &s0);
  for (unsigned c = 0; c < s0.nclasses; c++) {
    size_t bs = s0.classes[c].block_size;
    if (bs == 0) continue;
    void *b = mmpool_malloc(p, bs);
    assert_non_null(b);
    itest_stats(p, &s1);
    assert_int_equal(s1.classes[c].blocks_used, s0.classes[c].blocks_used + 1);
    assert_true(s1.classes[c].pages >= 1);
    mmpool_free(b);
    itest_stats(p, &s1);
    assert_int_equal(s1.classes[c].blocks_used, s0.classes[c].blocks_used);
  }
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    mmpool_free(blk[i]);
  itest_stats(p, &s1);
  assert_int_equal(s1.in_use_blocks, 0);
  assert_int_equal(s1.in_use, 0);
  assert_int_equal(s1.large_blocks, 0);
  assert_int_equal(mmpool_check(p), 0);
  itest_close(p);
}

static int cmp_uptr(const void *a, const void *b) {
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}

static void test_walk(void **state) {
  (void)state;
  mmpool_t *p = itest_open("walk", "size=256M");
  enum { N = 3000 };
  static uintptr_t live[N];
  static size_t lsize[N];
  static uintptr_t saddr[N + 10];
  static size_t ssize[N + 10];
  uint64_t rng = 11;
  for (int i = 0; i < N; i++) {
    uint64_t r = itest_rand(&rng);
    size_t n = i % 100 == 0 ? 100000 + r % 900000 : r % 3000;
    void *b = mmpool_malloc(p, n);
    assert_non_null(b);
    live[i] = (uintptr_t)b;
    lsize[i] = n;
  }
  // Free a third of them.
  for (int i = 0; i < N; i += 3) {
    mmpool_free((void *)live[i]);
    live[i] = 0;
  }
  struct itest_seen s = {0, N + 10, saddr, ssize, 0, 0};
  assert_int_equal(mmpool_walk(p, itest_record, &s), 0);
  size_t expect = 0;
  for (int i = 0; i < N; i++)
    expect += live[i] != 0;
  assert_int_equal(s.n, expect);
  for (size_t i = 1; i < s.n; i++)
    assert_true(saddr[i] > saddr[i - 1]); // address order
  for (int i = 0; i < N; i++) {
    if (!live[i]) continue;
    uintptr_t *hit = bsearch(&live[i], saddr, s.n, sizeof saddr[0], cmp_uptr);
    assert_non_null(hit);
    assert_int_equal(ssize[hit - saddr], lsize[i]);
  }
  // Stops when fn returns non-zero, and returns that value.
  struct itest_seen s2 = {0, N + 10, saddr, ssize, 5, 0};
  assert_int_equal(mmpool_walk(p, itest_record, &s2), 7);
  assert_int_equal(s2.calls, 5);
  struct itest_seen s3 = {0, N + 10, saddr, ssize, 1, 0};
  assert_int_equal(mmpool_walk(p, itest_record, &s3), 7);
  assert_int_equal(s3.calls, 1);
  for (int i = 0; i < N; i++)
    if (live[i]) mmpool_free((void *)live[i]);
  struct itest_seen s4 = {0, N + 10, saddr, ssize, 0, 0};
  assert_int_equal(mmpool_walk(p, itest_record, &s4), 0);
  assert_int_equal(s4.n, 0);
  itest_close(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_stats, itest_teardown),
      cmocka_unit_test_teardown(test_walk, itest_teardown),
  };
  return cmocka_run_group_tests(tests, itest_group_setup, NULL);
}
