// test_api_alloc.c: allocation through include/mmpool.h: sizes too large for
// the pool or for size_t (ENOMEM, the pool left whole), alignments, blocks
// of size 0, realloc's contract (growing, shrinking, moving to another
// pool, failing without touching the block), calloc's zeroes over dirty
// memory, and a pool filled up, emptied and filled again.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "itest.h"
#include "mmpool.h"

static void test_malloc_limits(void **state) {
  (void)state;
  mmpool_t *p = itest_open("lim", "size=64M");
  ITEST_FAILS_PTR(mmpool_malloc(p, SIZE_MAX), ENOMEM);
  ITEST_FAILS_PTR(mmpool_malloc(p, SIZE_MAX / 2), ENOMEM);
  ITEST_FAILS_PTR(mmpool_malloc(p, SIZE_MAX - 4095), ENOMEM);
  ITEST_FAILS_PTR(mmpool_malloc(p, 64 * MiB + 1), ENOMEM);
  ITEST_FAILS_PTR(mmpool_malloc(p, 64 * MiB), ENOMEM); // metadata needs room
  ITEST_FAILS_PTR(mmpool_malloc(NULL, SIZE_MAX), ENOMEM);
  ITEST_FAILS_PTR(mmpool_malloc(NULL, 65 * GiB), ENOMEM);
  ITEST_FAILS_PTR(mmpool_calloc(p, SIZE_MAX / 2 + 1, 2), ENOMEM);
  ITEST_FAILS_PTR(mmpool_calloc(p, 2, SIZE_MAX), ENOMEM);
  ITEST_FAILS_PTR(mmpool_calloc(p, (size_t)1 << 33, (size_t)1 << 33), ENOMEM);
  ITEST_FAILS_PTR(mmpool_calloc(p, 1 << 20, 1 << 7), ENOMEM); // 128M > 64M
  ITEST_FAILS_PTR(mmpool_memalign(p, 64, SIZE_MAX), ENOMEM);
  ITEST_FAILS_PTR(mmpool_memalign(p, 4096, 64 * MiB + 1), ENOMEM);
  // The failures left the pool whole.
  char *b = mmpool_malloc(p, 32 * MiB);
  assert_non_null(b);
  memset(b, 1, 32 * MiB);
  mmpool_stats_t st;
  itest_stats(p, &st);
  assert_int_equal(st.in_use_blocks, 1);
  ITEST_FAILS_PTR(mmpool_realloc(p, b, SIZE_MAX), ENOMEM);
  ITEST_FAILS_PTR(mmpool_realloc(p, b, 64 * MiB), ENOMEM);
  assert_int_equal(mmpool_usable_size(b), 32 * MiB);
  assert_true(b[0] == 1 && b[32 * MiB - 1] == 1);
  mmpool_free(b);
  assert_int_equal(mmpool_check(p), 0);
  itest_close(p);
}

static void test_memalign(void **state) {
  (void)state;
  mmpool_t *p = itest_open("align", "size=256M");
  ITEST_FAILS_PTR(mmpool_memalign(p, 3, 10), EINVAL);
  ITEST_FAILS_PTR(mmpool_memalign(p, 0, 10), EINVAL);
  ITEST_FAILS_PTR(mmpool_memalign(p, 48, 10), EINVAL);
  ITEST_FAILS_PTR(mmpool_memalign(p, SIZE_MAX, 10), EINVAL);
  ITEST_FAILS_PTR(mmpool_memalign(p, (1u << 20) + 16, 10), EINVAL);
  static const size_t sizes[] = {0, 1, 100, 5000, 100000, 3 * MiB};
  for (size_t a = 1; a <= 4 * MiB; a <<= 1) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      size_t n = sizes[i];
      unsigned char *b = mmpool_memalign(p, a, n);
      if (b == NULL)
        print_error("memalign(%zu, %zu): errno %d \"%s\"\n", a, n, errno,
                    mmpool_last_error());
      assert_non_null(b);
      assert_int_equal((uintptr_t)b % a, 0);
      assert_int_equal((uintptr_t)b % 16, 0);
      assert_ptr_equal(mmpool_of(b), p);
      assert_int_equal(mmpool_usable_size(b), n);
      memset(b, 0xab, n);
      mmpool_free(b);
    }
  }
  // Several at once, kept live, do not overlap.
  unsigned char *m1 = mmpool_memalign(p, MiB, 10);
  unsigned char *m4 = mmpool_memalign(p, 4 * MiB, 4 * MiB);
  unsigned char *m2 = mmpool_memalign(p, MiB, 2 * MiB);
  assert_non_null(m1);
  assert_non_null(m4);
  assert_non_null(m2);
  assert_int_equal((uintptr_t)m1 % MiB, 0);
  assert_int_equal((uintptr_t)m4 % (4 * MiB), 0);
  assert_int_equal((uintptr_t)m2 % MiB, 0);
  memset(m4, 4, 4 * MiB);
  memset(m2, 2, 2 * MiB);
  memset(m1, 1, 10);
  assert_true(m4[0] == 4 && m4[4 * MiB - 1] == 4 && m2[0] == 2 &&
              m2[2 * MiB - 1] == 2 && m1[9] == 1);
  mmpool_free(m1);
  mmpool_free(m2);
  mmpool_free(m4);
  assert_int_equal(mmpool_check(p), 0);
  itest_close(p);
  // Any power of two up to half the capacity.
  p = itest_open("align2", "size=64M");
  void *h = mmpool_memalign(p, 32 * MiB, 100);
  if (h == NULL)
    print_error("memalign(32M) in a 64M pool: \"%s\"\n", mmpool_last_error());
  assert_non_null(h);
  assert_int_equal((uintptr_t)h % (32 * MiB), 0);
  mmpool_free(h);
  assert_int_equal(mmpool_check(p), 0);
  itest_close(p);
}

static void test_malloc_zero(void **state) {
  (void)state;
  mmpool_t *p = itest_open("zero", "size=64M");
  enum { N = 200 };
  void *z[N];
  for (int i = 0; i < N; i++) {
    z[i] = mmpool_malloc(p, 0);
    assert_non_null(z[i]);
    assert_int_equal((uintptr_t)z[i] % 16, 0);
    assert_ptr_equal(mmpool_of(z[i]), p);
    assert_int_equal(mmpool_usable_size(z[i]), 0);
    for (int j = 0; j < i; j++)
      assert_ptr_not_equal(z[i], z[j]);
  }
  mmpool_stats_t st;
  itest_stats(p, &st);
  assert_int_equal(st.in_use_blocks, N);
  for (int i = 0; i < N; i++)
    mmpool_free(z[i]);
  itest_stats(p, &st);
  assert_int_equal(st.in_use_blocks, 0);
  void *c = mmpool_calloc(p, 0, 10);
  assert_non_null(c);
  mmpool_free(c);
  itest_close(p);
}

static void test_realloc_contract(void **state) {
  (void)state;
  mmpool_t *p = itest_open("re", "size=256M");
  mmpool_t *q = itest_open("re2", "size=256M");
  mmpool_stats_t st;

  // realloc(NULL, n) allocates, in pool or in the current/default pool.
  void *a = mmpool_realloc(p, NULL, 100);
  assert_non_null(a);
  assert_ptr_equal(mmpool_of(a), p);
  assert_int_equal(mmpool_usable_size(a), 100);
  void *d = mmpool_realloc(NULL, NULL, 100);
  assert_non_null(d);
  assert_ptr_equal(mmpool_of(d), itest_default_pool());
  mmpool_free(d);

  // realloc(p, 0) frees and returns NULL.
  itest_stats(p, &st);
  size_t before = st.in_use_blocks;
  errno = 0;
  assert_null(mmpool_realloc(p, a, 0));
  itest_stats(p, &st);
  assert_int_equal(st.in_use_blocks, before - 1);
  void *a2 = mmpool_malloc(p, 5000);
  assert_null(mmpool_realloc(NULL, a2, 0));
  itest_stats(p, &st);
  assert_int_equal(st.in_use_blocks, before - 1);

  // Content and usable size through growth and shrinking across classes.
  static const size_t steps[] = {
      1, 10,    100,   1000,  10000, 100000, MiB,   3 * MiB, 500000,  50,
      7, 20000, 20001, 20000, 16384, 16385,  65536, 65537,   2 * MiB, 1};
  unsigned char *b = mmpool_malloc(p, steps[0]);
  assert_non_null(b);
  itest_fill_pattern(b, steps[0], 77);
  for (size_t i = 1; i < sizeof steps / sizeof steps[0]; i++) {
    size_t old = steps[i - 1], n = steps[i];
    unsigned char *nb = mmpool_realloc(NULL, b, n);
    if (nb == NULL)
      print_error("realloc %zu -> %zu: \"%s\"\n", old, n, mmpool_last_error());
    assert_non_null(nb);
    assert_ptr_equal(mmpool_of(nb), p);
    assert_int_equal(mmpool_usable_size(nb), n);
    assert_true(itest_check_pattern(nb, old < n ? old : n, 77));
    itest_fill_pattern(nb, n, 77);
    b = nb;
  }
  itest_stats(p, &st);
  assert_int_equal(st.in_use_blocks, before);

  // With a pool argument the block moves to that pool.
  unsigned char *m = mmpool_realloc(q, b, 30000);
  assert_non_null(m);
  assert_ptr_equal(mmpool_of(m), q);
  assert_int_equal(mmpool_usable_size(m), 30000);
  assert_true(itest_check_pattern(m, 1, 77));
  itest_stats(p, &st);
  assert_int_equal(st.in_use_blocks, before - 1); // freed in p
  itest_fill_pattern(m, 30000, 78);
  unsigned char *m2 = mmpool_realloc(NULL, m, 60000); // stays in q
  assert_non_null(m2);
  assert_ptr_equal(mmpool_of(m2), q);
  assert_true(itest_check_pattern(m2, 30000, 78));
  unsigned char *m3 = mmpool_realloc(q, m2, 10); // in q already
  assert_non_null(m3);
  assert_ptr_equal(mmpool_of(m3), q);
  assert_true(itest_check_pattern(m3, 10, 78));
  unsigned char *m4 = mmpool_realloc(p, m3, 10); // back to p
  assert_ptr_equal(mmpool_of(m4), p);
  assert_true(itest_check_pattern(m4, 10, 78));
  itest_stats(q, &st);
  assert_int_equal(st.in_use_blocks, 0);
  mmpool_free(m4);

  // On failure the block is untouched.
  unsigned char *k = mmpool_malloc(p, 1000);
  itest_fill_pattern(k, 1000, 79);
  ITEST_FAILS_PTR(mmpool_realloc(NULL, k, SIZE_MAX), ENOMEM);
  ITEST_FAILS_PTR(mmpool_realloc(NULL, k, 300 * MiB), ENOMEM);
  assert_int_equal(mmpool_usable_size(k), 1000);
  assert_true(itest_check_pattern(k, 1000, 79));
  mmpool_free(k);
  assert_int_equal(mmpool_check(p), 0);
  assert_int_equal(mmpool_check(q), 0);
  itest_close(q);
  itest_close(p);
}

static int all_zero(const unsigned char *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (b[i]) return 0;
  return 1;
}

static void test_calloc_zeroes(void **state) {
  (void)state;
  mmpool_t *p = itest_open("cal", "size=256M");
  static const size_t sizes[] = {1,     24,     200,         3000,   16384,
                                 40000, 200000, 1536 * 1024, 5 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    for (int round = 0; round < (MMPOOL_SANITIZED ? 10 : 25); round++) {
      unsigned char *d = mmpool_malloc(p, n);
      assert_non_null(d);
      memset(d, 0xab, n);
      mmpool_free(d);
      unsigned char *c = mmpool_calloc(p, 1, n);
      assert_non_null(c);
      assert_int_equal(mmpool_usable_size(c), n);
      if (!all_zero(c, n))
        print_error("calloc(%zu) round %d returned dirty memory\n", n, round);
      assert_true(all_zero(c, n));
      memset(c, 0xcd, n);
      mmpool_free(c);
      unsigned char *c2 = mmpool_calloc(p, n, 1);
      assert_non_null(c2);
      assert_true(all_zero(c2, n));
      memset(c2, 0xef, n);
      mmpool_free(c2);
    }
  }
  // Many dirty blocks of one class freed, then calloc'ed back.
  enum { N = 500 };
  void *blk[N];
  for (int i = 0; i < N; i++) {
    blk[i] = mmpool_malloc(p, 96);
    memset(blk[i], 0xff, 96);
  }
  for (int i = 0; i < N; i++)
    mmpool_free(blk[i]);
  for (int i = 0; i < N; i++) {
    blk[i] = mmpool_calloc(p, 12, 8);
    assert_non_null(blk[i]);
    assert_true(all_zero(blk[i], 96));
  }
  for (int i = 0; i < N; i++)
    mmpool_free(blk[i]);
  unsigned char *c = mmpool_calloc(NULL, 100, 3);
  assert_non_null(c);
  assert_true(all_zero(c, 300));
  assert_ptr_equal(mmpool_of(c), itest_default_pool());
  mmpool_free(c);
  itest_close(p);
}

// ---------------------------------------------------------------------------
// A full pool

static size_t fill(mmpool_t *p, size_t size, void **out, size_t max) {
  size_t n = 0;
  for (;;) {
    errno = 0;
    void *b = mmpool_malloc(p, size);
    if (b == NULL) {
      assert_int_equal(errno, ENOMEM);
      assert_true(mmpool_last_error()[0] != '\0');
      break;
    }
    assert_true(n < max);
    memset(b, 0x5a, size < 256 ? size : 256);
    out[n++] = b;
  }
  return n;
}

static void test_full_pool(void **state) {
  (void)state;
  enum { MAX = 1 << 16 };
  void **blk = malloc(MAX * sizeof *blk);
  assert_non_null(blk);
  mmpool_t *p = itest_open("full", "size=4M");
  size_t n1 = fill(p, 1000, blk, MAX);
  assert_true(n1 > 1000); // most of 4 MiB holds 1000-byte blocks
  assert_true(n1 < 4200);
  ITEST_FAILS_PTR(mmpool_malloc(p, 1000), ENOMEM);
  mmpool_stats_t st;
  itest_stats(p, &st);
  assert_int_equal(st.in_use_blocks, n1);
  assert_true(st.mapped <= 4 * MiB);
  assert_int_equal(mmpool_check(p), 0);
  // After frees allocation succeeds again: one freed block, then all.
  mmpool_free(blk[n1 / 2]);
  blk[n1 / 2] = mmpool_malloc(p, 1000);
  assert_non_null(blk[n1 / 2]);
  for (size_t i = 0; i < n1; i++)
    mmpool_free(blk[i]);
  size_t n2 = fill(p, 1000, blk, MAX);
  assert_int_equal(n2, n1);
  for (size_t i = 0; i < n2; i++)
    mmpool_free(blk[i]);
  // The freed small-block pages serve large blocks, and back again.
  size_t n3 = fill(p, 300000, blk, MAX);
  assert_true(n3 >= 8);
  for (size_t i = 0; i < n3; i++)
    mmpool_free(blk[i]);
  void *one = mmpool_malloc(p, 2 * MiB);
  if (one == NULL)
    print_error("2 MiB in an emptied 4 MiB pool: \"%s\"\n",
                mmpool_last_error());
  assert_non_null(one);
  mmpool_free(one);
  size_t n4 = fill(p, 100, blk, MAX);
  assert_true(n4 > 10000);
  for (size_t i = 0; i < n4; i++)
    mmpool_free(blk[i]);
  itest_stats(p, &st);
  assert_int_equal(st.in_use_blocks, 0);
  assert_int_equal(mmpool_check(p), 0);
  itest_close(p);
  free(blk);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_malloc_limits, itest_teardown),
      cmocka_unit_test_teardown(test_memalign, itest_teardown),
      cmocka_unit_test_teardown(test_malloc_zero, itest_teardown),
      cmocka_unit_test_teardown(test_realloc_contract, itest_teardown),
      cmocka_unit_test_teardown(test_calloc_zeroes, itest_teardown),
      cmocka_unit_test_teardown(test_full_pool, itest_teardown),
  };
  return cmocka_run_group_tests(tests, itest_group_setup, NULL);
}
