// test_api_current.c: roots and the current pool (include/mmpool.h): keys
// and pointers a root refuses, roots per pool; the current pool of each
// thread, which a NULL pool argument means (allocation, statistics, roots),
// pushed and popped 16 deep, and a last error per thread.
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
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
// Roots

static void test_roots(void **state) {
  (void)state;
  mmpool_t *p = itest_open("roots", "size=64M");
  mmpool_t *q = itest_open("roots2", "size=64M");
  void *b = mmpool_malloc(p, 100), *qb = mmpool_malloc(q, 100);
  ITEST_FAILS_INT(mmpool_set_root(p, MMPOOL_ROOTS, b), EINVAL);
  ITEST_FAILS_INT(mmpool_set_root(p, UINT_MAX, b), EINVAL);
  ITEST_FAILS_PTR(mmpool_get_root(p, MMPOOL_ROOTS), EINVAL);
  ITEST_FAILS_PTR(mmpool_get_root(p, 1000), EINVAL);
  int local;
  ITEST_FAILS_INT(mmpool_set_root(p, 0, &local), EINVAL);
  ITEST_FAILS_INT(mmpool_set_root(p, 0, qb), EINVAL);
  void *g = malloc(10);
  ITEST_FAILS_INT(mmpool_set_root(p, 0, g), EINVAL);
  free(g);
  ITEST_FAILS_INT(mmpool_set_root(p, 0, (char *)mmpool_base(p) + 64 * MiB),
                  EINVAL);
  ITEST_FAILS_INT(mmpool_set_root(p, 0, (char *)mmpool_base(p) - 16), EINVAL);
  for (unsigned k = 0; k < MMPOOL_ROOTS; k++) {
    errno = 0;
    assert_null(mmpool_get_root(p, k)); // unset
  }
  for (unsigned k = 0; k < MMPOOL_ROOTS; k++)
    assert_int_equal(mmpool_set_root(p, k, (char *)b + k), 0);
  for (unsigned k = 0; k < MMPOOL_ROOTS; k++)
    assert_ptr_equal(mmpool_get_root(p, k), (char *)b + k);
  assert_null(mmpool_get_root(q, 0)); // roots are per pool
  assert_int_equal(mmpool_set_root(p, 5, NULL), 0);
  assert_null(mmpool_get_root(p, 5));
  assert_int_equal(mmpool_set_root(q, 0, qb), 0);
  assert_ptr_equal(mmpool_get_root(q, 0), qb);
  // NULL pool: the current pool.
  assert_ptr_equal(mmpool_push(q), q);
  assert_ptr_equal(mmpool_get_root(NULL, 0), qb);
  assert_int_equal(mmpool_set_root(NULL, 1, qb), 0);
  ITEST_FAILS_INT(mmpool_set_root(NULL, 2, b), EINVAL);
  assert_ptr_equal(mmpool_pop(), NULL);
  assert_ptr_equal(mmpool_get_root(q, 1), qb);
  mmpool_free(b);
  mmpool_free(qb);
  itest_close(q);
  itest_close(p);
}

// A root must lead into a block handed out (issue 11): not into the
// header, free pages, or pages past the committed data (which were accepted,
// and whose first use after a re-attach faulted).
static void test_roots_live_blocks(void **state) {
  (void)state;
  mmpool_t *p = itest_open("roots3", "size=64M");
  char *base = mmpool_base(p);
  char *big = mmpool_malloc(p, MiB), *after = mmpool_malloc(p, 100);
  char *large = mmpool_malloc(p, 300000);
  assert_non_null(big);
  assert_non_null(after);
  assert_non_null(large);
  assert_int_equal(mmpool_set_root(p, 0, big + MiB - 1), 0); // last byte
  assert_int_equal(mmpool_set_root(p, 1, after + 99), 0);
  assert_int_equal(mmpool_set_root(p, 2, large), 0);
  mmpool_free(big);  // its pages are a free span now
  ITEST_FAILS_INT(mmpool_set_root(p, 3, big), EINVAL);
  ITEST_FAILS_INT(mmpool_set_root(p, 3, big + 4096), EINVAL);
  ITEST_FAILS_INT(mmpool_set_root(p, 3, large + 300000), EINVAL); // past req
  ITEST_FAILS_INT(mmpool_set_root(p, 3, base + 64), EINVAL);      // header
  ITEST_FAILS_INT(mmpool_set_root(p, 3, base + 8192), EINVAL);    // descs
  ITEST_FAILS_INT(mmpool_set_root(p, 3, base + 48 * MiB), EINVAL); // unused
  assert_non_null(strstr(mmpool_last_error(), "roots3"));
  assert_null(mmpool_get_root(p, 3));
  itest_close(p);
}

// ---------------------------------------------------------------------------
// The current pool

struct thread_view {
  mmpool_t *current;
  mmpool_t *owner;
  char err_before[8];
  int err_after_nonempty;
};

static void *thread_current(void *arg) {
  struct thread_view *v = arg;
  snprintf(v->err_before, sizeof v->err_before, "%s", mmpool_last_error());
  v->current = mmpool_current();
  void *b = mmpool_malloc(NULL, 10);
  v->owner = mmpool_of(b);
  mmpool_free(b);
  (void)mmpool_get("thread-failure-only");
  v->err_after_nonempty = mmpool_last_error()[0] != '\0';
  return NULL;
}

static void test_push_pop(void **state) {
  (void)state;
  mmpool_t *d = itest_default_pool();
  mmpool_t *a = itest_open("pa", "size=64M");
  mmpool_t *b = itest_open("pb", "size=64M");
  assert_null(mmpool_pop()); // nothing pushed
  assert_ptr_equal(mmpool_current(), d);
  assert_ptr_equal(mmpool_push(a), a);
  assert_ptr_equal(mmpool_current(), a);
  void *x = mmpool_malloc(NULL, 10);
  assert_ptr_equal(mmpool_of(x), a);
  mmpool_free(x);
  x = mmpool_calloc(NULL, 2, 10);
  assert_ptr_equal(mmpool_of(x), a);
  mmpool_free(x);
  x = mmpool_memalign(NULL, 4096, 10);
  assert_ptr_equal(mmpool_of(x), a);
  mmpool_free(x);
  x = mmpool_realloc(NULL, NULL, 10);
  assert_ptr_equal(mmpool_of(x), a);
  mmpool_free(x);
  mmpool_stats_t s1, s2;
  itest_stats(NULL, &s1);
  itest_stats(a, &s2);
  assert_int_equal(s1.capacity, s2.capacity);
  assert_int_equal(s1.capacity, 64 * MiB);

  assert_ptr_equal(mmpool_push(b), b);
  assert_ptr_equal(mmpool_current(), b);
  x = mmpool_malloc(NULL, 10);
  assert_ptr_equal(mmpool_of(x), b);
  mmpool_free(x);

  // Another thread does not see this thread's pushes; its last error is
  // its own.
  (void)mmpool_get("main-thread-failure");
  char mine[256];
  snprintf(mine, sizeof mine, "%s", mmpool_last_error());
  assert_true(mine[0] != '\0');
  struct thread_view v;
  memset(&v, 0, sizeof v);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, thread_current, &v), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_ptr_equal(v.current, d);
  assert_ptr_equal(v.owner, d);
  assert_string_equal(v.err_before, "");
  assert_true(v.err_after_nonempty);
  assert_string_equal(mmpool_last_error(), mine);

  assert_ptr_equal(mmpool_pop(), a);
  assert_ptr_equal(mmpool_current(), a);
  assert_ptr_equal(mmpool_pop(), NULL);
  assert_ptr_equal(mmpool_current(), d);
  x = mmpool_malloc(NULL, 10);
  assert_ptr_equal(mmpool_of(x), d);
  mmpool_free(x);

  // 16 deep works, the 17th push fails.
  for (int i = 0; i < 16; i++)
    assert_ptr_equal(mmpool_push(i % 2 ? a : b), i % 2 ? a : b);
  ITEST_FAILS_PTR(mmpool_push(a), EOVERFLOW);
  assert_ptr_equal(mmpool_current(), a); // the 16th push stays
  for (int i = 15; i > 0; i--)
    assert_ptr_equal(mmpool_pop(), (i - 1) % 2 ? a : b);
  assert_ptr_equal(mmpool_pop(), NULL);
  assert_null(mmpool_pop());
  assert_ptr_equal(mmpool_current(), d);
  // Push the default explicitly.
  assert_ptr_equal(mmpool_push(d), d);
  assert_ptr_equal(mmpool_current(), d);
  assert_ptr_equal(mmpool_pop(), NULL);
  itest_close(b);
  itest_close(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_roots, itest_teardown),
      cmocka_unit_test_teardown(test_roots_live_blocks, itest_teardown),
      cmocka_unit_test_teardown(test_push_pop, itest_teardown),
  };
  return cmocka_run_group_tests(tests, itest_group_setup, NULL);
}
