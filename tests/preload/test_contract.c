// test_contract.c: glibc's malloc contract, run under the preload library.
//
// Ports the cases of glibc's own tests (tst-malloc, tst-calloc,
// tst-realloc, tst-reallocarray, tst-posix_memalign, tst-memalign,
// tst-valloc, tst-pvalloc, tst-malloc-usable, tst-free-errno,
// tst-mallocalign1; PITFALLS 1.16) as our own assertions, and checks that
// the blocks come from the pools: this program also links libmmpool.so,
// whose API the preload library's interposes (one engine).
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "mmpool.h"

// Keeps the compiler from folding malloc calls whose result is unused.
static void *volatile sink;

static void test_blocks_are_pool_blocks(void **state) {
  (void)state;
  void *p = malloc(100);
  assert_non_null(p);
  assert_non_null(mmpool_of(p));
  assert_string_equal(mmpool_name(mmpool_of(p)), "default");
  assert_int_equal(malloc_usable_size(p), 100);
  free(p);
}

static void test_huge_sizes(void **state) {
  (void)state;
  errno = 0;
  assert_null(sink = malloc(SIZE_MAX));
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_null(sink = malloc(SIZE_MAX - 4096));
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_null(sink = realloc(NULL, SIZE_MAX));
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_null(sink = valloc(SIZE_MAX));
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_null(sink = pvalloc(SIZE_MAX));
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_null(sink = memalign(8, SIZE_MAX));
  assert_int_equal(errno, ENOMEM);
}

static void test_calloc_rules(void **state) {
  (void)state;
  errno = 0;
  assert_null(sink = calloc(SIZE_MAX / 2 + 1, 2));
  assert_int_equal(errno, ENOMEM);
  void *z = calloc(0, 100);
  assert_non_null(z);
  free(z);
  // Zeroed, also when the memory was used before.
  for (int round = 0; round < 50; round++) {
    unsigned char *b = malloc(3000);
    memset(b, 0xab, 3000);
    free(b);
    unsigned char *c = calloc(1, 3000);
    for (int i = 0; i < 3000; i++) assert_int_equal(c[i], 0);
    free(c);
  }
}

static void test_realloc_rules(void **state) {
  (void)state;
  char *p = malloc(10);
  strcpy(p, "abcdefghi");
  p = realloc(p, 100000);
  assert_string_equal(p, "abcdefghi");
  assert_int_equal(malloc_usable_size(p), 100000);
  // realloc(p, 0) frees p and returns NULL (glibc).
  assert_null(realloc(p, 0));
  char *q = malloc(32);
  errno = 0;
  assert_null(realloc(q, SIZE_MAX));  // failure leaves q intact
  assert_int_equal(errno, ENOMEM);
  free(q);
  errno = 0;
  assert_null(reallocarray(NULL, SIZE_MAX / 2 + 1, 2));
  assert_int_equal(errno, ENOMEM);
  void *r = reallocarray(NULL, 10, 10);
  assert_non_null(r);
  assert_int_equal(malloc_usable_size(r), 100);
  free(r);
}

static void test_posix_memalign(void **state) {
  (void)state;
  void *p = (void *)0x1234;
  errno = 4321;
  assert_int_equal(posix_memalign(&p, 0x300, 10), EINVAL);  // not 2^k
  assert_ptr_equal(p, (void *)0x1234);  // untouched on failure
  assert_int_equal(posix_memalign(&p, SIZE_MAX, 10), EINVAL);
  assert_int_equal(posix_memalign(&p, 4, 10), EINVAL);  // < sizeof(void *)
  assert_ptr_equal(p, (void *)0x1234);
  assert_int_equal(posix_memalign(&p, 256, SIZE_MAX), ENOMEM);
  assert_int_equal(errno, 4321);  // errno left alone
  assert_int_equal(posix_memalign(&p, 8, 0), 0);
  assert_non_null(p);
  free(p);
  for (size_t a = 8; a <= (1u << 22); a <<= 1) {
    assert_int_equal(posix_memalign(&p, a, 100), 0);
    assert_int_equal((uintptr_t)p % a, 0);
    free(p);
  }
}

static void test_aligned_variants(void **state) {
  (void)state;
  // glibc 2.36 rounds a non-power-of-two alignment up.
  void *p = memalign(48, 100);
  assert_non_null(p);
  assert_int_equal((uintptr_t)p % 64, 0);
  free(p);
  p = aligned_alloc(4096, 5000);
  assert_int_equal((uintptr_t)p % 4096, 0);
  free(p);
  p = valloc(10);
  assert_int_equal((uintptr_t)p % 4096, 0);
  free(p);
  p = pvalloc(10);
  assert_int_equal((uintptr_t)p % 4096, 0);
  assert_int_equal(malloc_usable_size(p), 4096);
  free(p);
  errno = 0;
  assert_null(sink = memalign(SIZE_MAX / 2 + 2, 10));
  assert_int_equal(errno, EINVAL);
}

static void test_small_facts(void **state) {
  (void)state;
  void *a = malloc(0), *b = malloc(0);
  assert_non_null(a);
  assert_non_null(b);
  assert_ptr_not_equal(a, b);
  free(a);
  free(b);
  assert_int_equal(malloc_usable_size(NULL), 0);
  for (size_t n = 1; n < 5000; n += 7) {  // tst-mallocalign1
    void *p = malloc(n);
    assert_int_equal((uintptr_t)p % 16, 0);
    free(p);
  }
  errno = 1234;
  free(malloc(10));
  free(NULL);
  free(malloc(1 << 22));
  assert_int_equal(errno, 1234);  // tst-free-errno
}

static void test_introspection(void **state) {
  (void)state;
  void *p = malloc(1 << 20);
  struct mallinfo2 m = mallinfo2();
  assert_true(m.uordblks >= (1 << 20));
  assert_true(m.arena >= m.uordblks);
  assert_int_equal(mallopt(M_ARENA_MAX, 1), 1);
  // 1 when it gave memory back (the earlier cases freed some), then 0:
  // nothing was freed since.
  int r = malloc_trim(0);
  assert_true(r == 0 || r == 1);
  assert_int_equal(malloc_trim(0), 0);
  free(p);
}

// A freed large block's pages stay for reuse until the purge delay, or
// until malloc_trim gives them back at once (issue 16, item 1).
static void test_malloc_trim_gives_back(void **state) {
  (void)state;
  size_t n = (size_t)8 << 20, pages = n / 4096;
  unsigned char *p = malloc(n), *guard = malloc((size_t)1 << 20);
  assert_non_null(p);
  assert_non_null(guard);
  memset(p, 1, n);
  unsigned char *v = malloc(pages);
  assert_non_null(v);
  free(p);
  assert_int_equal(malloc_trim(0), 1);
  assert_int_equal(mincore(p, n, v), 0);
  size_t k = 0;
  for (size_t i = 0; i < pages; i++) k += v[i] & 1;
  assert_int_equal(k, 0);
  assert_int_equal(malloc_trim(0), 0);
  free(v);
  free(guard);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_blocks_are_pool_blocks),
      cmocka_unit_test(test_huge_sizes),
      cmocka_unit_test(test_calloc_rules),
      cmocka_unit_test(test_realloc_rules),
      cmocka_unit_test(test_posix_memalign),
      cmocka_unit_test(test_aligned_variants),
      cmocka_unit_test(test_small_facts),
      cmocka_unit_test(test_introspection),
      cmocka_unit_test(test_malloc_trim_gives_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
