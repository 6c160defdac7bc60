// test_api_pools.c: opening and closing pools (include/mmpool.h): names and
// option words, accepted and refused with their errno and message; what an
// opened pool reports; finding pools by name and by address; closing,
// reopening under the same name, a closed handle; MMPOOL_MAX_POOLS at once.
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

// ---------------------------------------------------------------------------
// Opening

static void test_names(void **state) {
  (void)state;
  ITEST_FAILS_PTR(mmpool_open("", NULL), EINVAL);
  char longname[MMPOOL_NAME_MAX + 2];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0'; // 48 characters
  ITEST_FAILS_PTR(mmpool_open(longname, NULL), EINVAL);
  const char *bad[] = {"a b",  "a/b", "x\xc3\xa9", "tab\tx", "semi;colon",
                       "eq=1", "q\"", "new\nline", "star*",  "sl\\ash"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ITEST_FAILS_PTR(mmpool_open(bad[i], "size=4M"), EINVAL);
    assert_null(mmpool_get(bad[i]));
  }
  longname[MMPOOL_NAME_MAX] = '\0'; // 47 characters: the longest
  mmpool_t *p = itest_open(longname, "size=4M");
  assert_string_equal(mmpool_name(p), longname);
  assert_ptr_equal(mmpool_get(longname), p);
  itest_close(p);
  p = itest_open("Az09_.-", "size=4M");
  assert_string_equal(mmpool_name(p), "Az09_.-");
  itest_close(p);
  p = itest_open("x", NULL); // one character, default options
  assert_int_equal(mmpool_capacity(p), 64 * GiB);
  itest_close(p);
}

static void test_duplicate_name(void **state) {
  (void)state;
  mmpool_t *p = itest_open("dup", "size=4M");
  ITEST_FAILS_PTR(mmpool_open("dup", "size=4M"), EEXIST);
  ITEST_FAILS_PTR(mmpool_open("dup", NULL), EEXIST);
  ITEST_FAILS_PTR(mmpool_open("default", "size=4M"), EEXIST);
  assert_ptr_equal(mmpool_get("dup"), p);
  void *b = mmpool_malloc(p, 10);
  assert_non_null(b); // the first pool is untouched by the failures
  mmpool_free(b);
  itest_close(p);
}

static void test_bad_options(void **state) {
  (void)state;
  ITEST_FAILS_PTR(mmpool_open("o", "frobnicate"), EINVAL);
  assert_non_null(strstr(mmpool_last_error(), "frobnicate"));
  ITEST_FAILS_PTR(mmpool_open("o", "size=4M wibble=3"), EINVAL);
  assert_non_null(strstr(mmpool_last_error(), "wibble"));
  const char *bad[] = {"size=12Q",
                       "size=",
                       "size=abc",
                       "size=-5M",
                       "size=4MM",
                       "size=99999999999999T",
                       "base=0x310000001000",
                       "base=0x310000100000",
                       "base=zzz",
                       "base=",
                       "mode=weird",
                       "full=bogus",
                       "anon=1",
                       "relocate=maybe"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ITEST_FAILS_PTR(mmpool_open("o", bad[i]), EINVAL);
    assert_null(mmpool_get("o"));
  }
  // relocate=yes is for mmpool_restore: a plain open accepts and ignores it.
  mmpool_t *o = mmpool_open("o", "relocate=yes");
  assert_non_null(o);
  assert_int_equal(mmpool_close(o), 0);
  // Words the API accepts.
  const char *good[] = {"anon",
                        "size=4M",
                        "  size=4M   anon  ",
                        "relocate=no size=8M",
                        "full=null size=4M",
                        "full=fallback size=4M",
                        "full=abort size=4M",
                        "brk size=4M",
                        "base=auto size=4M",
                        "size=1G",
                        "size=1048576",
                        "size=65536K",
                        "base=0x330000000000 size=4M"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    mmpool_t *p = itest_open("o", good[i]);
    void *b = mmpool_malloc(p, 100);
    assert_non_null(b);
    mmpool_free(b);
    itest_close(p);
  }
}

static void test_facts(void **state) {
  (void)state;
  mmpool_t *p = itest_open("facts", "size=64M base=0x330000000000");
  assert_string_equal(mmpool_name(p), "facts");
  assert_ptr_equal(mmpool_base(p), (void *)(uintptr_t)0x330000000000ull);
  assert_int_equal(mmpool_capacity(p), 64 * MiB);
  mmpool_t *q = itest_open("facts2", "size=1G");
  uintptr_t b = (uintptr_t)mmpool_base(q);
  assert_int_equal(b % GiB, 0);
  assert_true(b >= 0x200000000000ull && b + GiB <= 0x400000000000ull);
  assert_int_equal(mmpool_capacity(q), GiB);
  assert_true(b != 0x330000000000ull);
  // A fixed base already taken by a pool fails with EEXIST.
  ITEST_FAILS_PTR(mmpool_open("facts3", "size=64M base=0x330000000000"),
                  EEXIST);
  itest_close(q);
  itest_close(p);
  // The default pool: anonymous, called "default", 64G by default.
  mmpool_t *d = itest_default_pool();
  assert_string_equal(mmpool_name(d), "default");
  assert_int_equal(mmpool_capacity(d), 64 * GiB);
  assert_int_equal((uintptr_t)mmpool_base(d) % GiB, 0);
  assert_int_equal(mmpool_sync(d), 0); // no-op for anonymous pools
  assert_int_equal(mmpool_sync(NULL), 0);
}

static void test_get_and_of(void **state) {
  (void)state;
  ITEST_FAILS_PTR(mmpool_get("no-such-pool"), ENOENT);
  ITEST_FAILS_PTR(mmpool_get(""), ENOENT);
  mmpool_t *p = itest_open("of", "size=64M base=0x340000000000");
  assert_ptr_equal(mmpool_get("of"), p);
  int local = 0;
  ITEST_FAILS_PTR(mmpool_of(&local), ENOENT);
  ITEST_FAILS_PTR(mmpool_of(NULL), ENOENT);
  void *g = malloc(100);
  assert_non_null(g);
  ITEST_FAILS_PTR(mmpool_of(g), ENOENT);
  free(g);
  ITEST_FAILS_PTR(mmpool_of((const void *)(uintptr_t)&test_names), ENOENT);
  char *base = mmpool_base(p);
  void *b = mmpool_malloc(p, 100);
  assert_ptr_equal(mmpool_of(b), p);
  assert_ptr_equal(mmpool_of((char *)b + 99), p);
  assert_ptr_equal(mmpool_of(base), p);
  assert_ptr_equal(mmpool_of(base + 64 * MiB - 1), p);
  ITEST_FAILS_PTR(mmpool_of(base + 64 * MiB), ENOENT); // past the range
  ITEST_FAILS_PTR(mmpool_of(base - 1), ENOENT);
  void *d = mmpool_malloc(NULL, 100);
  assert_ptr_equal(mmpool_of(d), itest_default_pool());
  mmpool_free(d);
  mmpool_free(b);
  itest_close(p);
  ITEST_FAILS_PTR(mmpool_get("of"), ENOENT);
  ITEST_FAILS_PTR(mmpool_of(base), ENOENT); // a closed pool owns nothing
}

// ---------------------------------------------------------------------------
// Closing and reopening

static void test_close(void **state) {
  (void)state;
  mmpool_t *p = itest_open("cl", "size=64M");
  assert_ptr_equal(mmpool_push(p), p);
  ITEST_FAILS_INT(mmpool_close(NULL), EINVAL);
  assert_ptr_equal(mmpool_get("cl"), p); // not closed by close(NULL)
  assert_ptr_equal(mmpool_pop(), NULL);
  mmpool_t *d = itest_default_pool();
  ITEST_FAILS_INT(mmpool_close(d), EBUSY);
  void *x = mmpool_malloc(d, 10); // still open
  assert_non_null(x);
  assert_ptr_equal(mmpool_of(x), d);
  mmpool_free(x);
  assert_ptr_equal(mmpool_get("default"), d);

  // Close and reopen under the same name: a new, empty pool.
  for (int i = 0; i < 5; i++) {
    void *b = mmpool_malloc(p, 1000);
    assert_non_null(b);
    itest_close(p);
    ITEST_FAILS_PTR(mmpool_get("cl"), ENOENT);
    p = itest_open("cl", "size=64M");
    mmpool_stats_t st;
    itest_stats(p, &st);
    assert_int_equal(st.in_use_blocks, 0);
    assert_int_equal(st.in_use, 0);
  }
  // A closed pool cannot be pushed.
  mmpool_t *c = itest_open("cl2", "size=4M");
  itest_close(c);
  ITEST_FAILS_PTR(mmpool_push(c), EBADF);
  assert_ptr_equal(mmpool_current(), itest_default_pool());
  itest_close(p);
}

// A handle of a closed pool allocates nothing: every function refuses it
// with EBADF.
static void test_closed_handle(void **state) {
  (void)state;
  mmpool_t *p = itest_open("gone", "size=64M");
  void *b = mmpool_malloc(p, 64);
  assert_non_null(b);
  itest_close(p);
  ITEST_FAILS_PTR(mmpool_malloc(p, 64), EBADF);
  assert_non_null(strstr(mmpool_last_error(), "stale or invalid pool handle"));
  ITEST_FAILS_PTR(mmpool_malloc(p, 100000), EBADF);
  ITEST_FAILS_PTR(mmpool_malloc(p, 64), EBADF); // still, after the failures
  // The other allocators of the family fail the same way.
  ITEST_FAILS_PTR(mmpool_calloc(p, 1, 64), EBADF);
  ITEST_FAILS_PTR(mmpool_memalign(p, 4096, 64), EBADF);
}

// A stale handle never reaches the pool that reuses its entry (issue 11,
// item 4). After a is closed, pools are opened until none more can be: one
// of them has taken a's entry, whatever the order of reuse. The old handle
// fails with EBADF everywhere, and every new pool is untouched.
static void test_stale_handle_reused_slot(void **state) {
  (void)state;
  mmpool_t *a = itest_open("stale-a", "size=64M");
  void *ab = mmpool_malloc(a, 16);
  assert_non_null(ab);
  mmpool_free(ab);
  itest_close(a);
  static mmpool_t *b[MMPOOL_MAX_POOLS];
  int nb = 0;
  for (; nb < MMPOOL_MAX_POOLS; nb++) {
    char name[32];
    snprintf(name, sizeof name, "stale-b%d", nb);
    b[nb] = mmpool_open(name, "size=4M");
    if (b[nb] == NULL) break;
    itest_track(b[nb]);
    assert_true(b[nb] != a);
    assert_non_null(mmpool_set_root(b[nb], 0, mmpool_malloc(b[nb], 24)) == 0
                        ? b[nb] : NULL);
  }
  assert_int_equal(errno, EMFILE);
  assert_true(nb > 0);
  mmpool_stats_t st;
  ITEST_FAILS_PTR(mmpool_malloc(a, 16), EBADF);
  assert_non_null(strstr(mmpool_last_error(), "stale or invalid pool handle"));
  ITEST_FAILS_PTR(mmpool_malloc(a, 1 << 20), EBADF);
  ITEST_FAILS_PTR(mmpool_calloc(a, 4, 4), EBADF);
  ITEST_FAILS_PTR(mmpool_memalign(a, 64, 16), EBADF);
  void *bb = mmpool_get_root(b[0], 0);
  ITEST_FAILS_PTR(mmpool_realloc(a, bb, 64), EBADF);
  ITEST_FAILS_INT(mmpool_close(a), EBADF);
  ITEST_FAILS_INT(mmpool_sync(a), EBADF);
  ITEST_FAILS_INT(mmpool_set_root(a, 0, NULL), EBADF);
  ITEST_FAILS_PTR(mmpool_get_root(a, 0), EBADF);
  ITEST_FAILS_INT(mmpool_stats(a, &st), EBADF);
  ITEST_FAILS_INT(mmpool_check(a), EBADF);
  ITEST_FAILS_INT(mmpool_walk(a, itest_record, NULL), EBADF);
  ITEST_FAILS_PTR(mmpool_push(a), EBADF);
  errno = 0;
  assert_null(mmpool_name(a));
  assert_int_equal(errno, EBADF);
  errno = 0;
  assert_null(mmpool_base(a));
  assert_int_equal(errno, EBADF);
  errno = 0;
  assert_int_equal(mmpool_capacity(a), 0);
  assert_int_equal(errno, EBADF);
  // Values that were never a handle fail the same way, without a fault.
  ITEST_FAILS_PTR(mmpool_malloc((mmpool_t *)(uintptr_t)0x1000, 16), EBADF);
  ITEST_FAILS_INT(mmpool_close((mmpool_t *)&st), EBADF);
  // Every new pool is untouched: one block (its root), sound, and still
  // open under its name.
  for (int i = 0; i < nb; i++) {
    char name[32];
    snprintf(name, sizeof name, "stale-b%d", i);
    assert_string_equal(mmpool_name(b[i]), name);
    assert_ptr_equal(mmpool_get(name), b[i]);
    itest_stats(b[i], &st);
    assert_int_equal(st.in_use_blocks, 1);
    assert_int_equal(mmpool_check(b[i]), 0);
    assert_ptr_equal(mmpool_of(mmpool_get_root(b[i], 0)), b[i]);
  }
  for (int i = 0; i < nb; i++) itest_close(b[i]);
}

// ---------------------------------------------------------------------------
// The most pools at once

// MMPOOL_MAX_POOLS pools at once, the default included.
static void test_many_pools(void **state) {
  (void)state;
  (void)itest_default_pool();
  mmpool_t *pools[MMPOOL_MAX_POOLS + 1];
  int n = 0;
  for (; n <= MMPOOL_MAX_POOLS; n++) {
    char name[32];
    snprintf(name, sizeof name, "many%d", n);
    errno = 0;
    pools[n] = mmpool_open(name, "size=1M");
    if (pools[n] == NULL) break;
    itest_track(pools[n]);
    void *b = mmpool_malloc(pools[n], 100);
    assert_non_null(b);
    assert_ptr_equal(mmpool_of(b), pools[n]);
  }
  int e = errno;
  assert_int_equal(n, MMPOOL_MAX_POOLS - 1); // the default is one of them
  assert_true(e != 0);
  assert_true(mmpool_last_error()[0] != '\0');
  for (int i = 0; i < n; i++)
    itest_close(pools[i]);
  mmpool_t *again = itest_open("many-again", "size=1M");
  itest_close(again);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_names, itest_teardown),
      cmocka_unit_test_teardown(test_duplicate_name, itest_teardown),
      cmocka_unit_test_teardown(test_bad_options, itest_teardown),
      cmocka_unit_test_teardown(test_facts, itest_teardown),
      cmocka_unit_test_teardown(test_get_and_of, itest_teardown),
      cmocka_unit_test_teardown(test_close, itest_teardown),
      cmocka_unit_test_teardown(test_closed_handle, itest_teardown),
      cmocka_unit_test_teardown(test_stale_handle_reused_slot, itest_teardown),
      cmocka_unit_test_teardown(test_many_pools, itest_teardown),
  };
  return cmocka_run_group_tests(tests, itest_group_setup, NULL);
}
