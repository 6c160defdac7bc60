// test_large.c: freed large blocks are kept for reuse, and given back to the
// kernel later (issue 16, item 1).
//
// A freed span keeps its pages (core/page.c, "Purging"): the steady state
// of a malloc/free loop of large blocks makes no system call, counted by the
// os layer's own count (os_syscalls: every mmap, mprotect and madvise of the
// engine goes through it). Pages go back once free for page_purge_delay_ms,
// on a later slow-path call, and at once on heap_trim (malloc_trim); which
// pages are resident is read with mincore. No assertion depends on time:
// each case sets the delay to 0 (due at once) or to a day (never due).
// Links the static core (os.h, page.h, heap.h).
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "itest.h"
#include "heap.h"
#include "os.h"
#include "page.h"
#include "pooltable.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define DAY_MS (24u * 3600 * 1000)

ITEST_SCRATCH_DIR("large")

// page_kept's running count against the descriptors: the dirty free spans
// below the top, and the pages from the top to hiwater.
static void kept_is_exact(mmpool_t *h) {
  struct mmpool *p = pool_from_handle(h);
  engine_lock(&p->lock);
  struct pool_state *st = &p->hdr->st;
  uint64_t n = st->hiwater > st->top ? st->hiwater - st->top : 0;
  for (uint32_t i = 0; i < st->top; i += p->desc[i].npages)
    if (p->desc[i].kind == PD_FREE && (p->desc[i].flags & PDF_DIRTY))
      n += p->desc[i].npages;
  uint64_t kept = page_kept(p);
  engine_unlock(&p->lock);
  assert_int_equal(kept, n);
}

static void touch(void *a, size_t len, unsigned char c) {
  for (size_t o = 0; o < len; o += 4096) ((unsigned char *)a)[o] = c;
}

static long minor_faults(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

// A ring of 8 live blocks of 300 KiB to 12 MiB, each replaced in turn, as
// bench/workloads/large.c does: frees land in the middle of the used pages
// (spans of 4 MiB and more were given back at once before issue 16) and at
// the top. After a warm-up, no system call, and (nearly) no page fault.
static void steady_state_makes_no_system_call(void **state) {
  (void)state;
  static const size_t sizes[] = {5 * MiB, 300 * KiB, 12 * MiB, 1536 * KiB,
                                 8 * MiB, 200 * KiB};
  enum { NSIZES = sizeof sizes / sizeof sizes[0], RING = 8, ITERS = 3000 };
  page_purge_delay_ms = DAY_MS;
  mmpool_t *h = mmpool_open("lg.steady", "size=4G");
  assert_non_null(h);
  void *ring[RING] = {0};
  unsigned long calls = 0;
  long faults = 0;
  for (int i = 0; i < 2 * ITERS; i++) {
    if (i == ITERS) {  // warmed up: from here, count
      calls = os_syscalls();
      faults = minor_faults();
    }
    int k = i % RING;
    mmpool_free(ring[k]);
    size_t n = sizes[i % NSIZES];
    ring[k] = mmpool_malloc(h, n);
    assert_non_null(ring[k]);
    touch(ring[k], n, (unsigned char)i);
  }
  unsigned long made = os_syscalls() - calls;
  long faulted = minor_faults() - faults;
  print_message("steady state: %lu system calls, %ld minor faults in %d "
                "iterations\n", made, faulted, ITERS);
  assert_int_equal(made, 0);
  // Each iteration touches 50 to 3072 pages: a loop that gave them back
  // would fault at least 50 a time. A few may come from elsewhere (NUMA
  // balancing's hinting faults).
  assert_true(faulted < ITERS / 10);
  kept_is_exact(h);
  for (int k = 0; k < RING; k++) mmpool_free(ring[k]);
  kept_is_exact(h);
  assert_int_equal(mmpool_check(h), 0);
  assert_int_equal(mmpool_close(h), 0);
}

// A span kept for reuse is dirty: calloc zeroes it; a purged one is clean.
static void kept_span_is_dirty_purged_is_clean(void **state) {
  (void)state;
  page_purge_delay_ms = DAY_MS;
  mmpool_t *h = mmpool_open("lg.dirty", "size=1G");
  assert_non_null(h);
  struct mmpool *p = pool_from_handle(h);
  size_t n = 8 * MiB;
  unsigned char *a = mmpool_malloc(h, n);
  void *guard = mmpool_malloc(h, 1 * MiB);  // a is not at the top
  assert_non_null(a);
  assert_non_null(guard);
  memset(a, 0xab, n);
  mmpool_free(a);
  assert_int_equal(itest_resident(a, n), n / 4096);  // kept
  int dirty = -1;
  unsigned char *b = heap_alloc_large(p, n, 0, &dirty);
  assert_ptr_equal(b, a);  // the same span, reused
  assert_int_equal(dirty, 1);
  mmpool_free(b);
  unsigned char *c = mmpool_calloc(h, 1, n);
  assert_ptr_equal(c, a);
  for (size_t i = 0; i < n; i++)
    if (c[i]) fail_msg("calloc left byte %zu at 0x%x", i, c[i]);
  memset(c, 0xcd, n);
  mmpool_free(c);
  assert_true(heap_trim(p) >= n / PAGE_BYTES);
  assert_int_equal(itest_resident(a, n), 0);
  b = heap_alloc_large(p, n, 0, &dirty);
  assert_ptr_equal(b, a);
  assert_int_equal(dirty, 0);  // purged: reads as zeros, calloc skips
  for (size_t i = 0; i < n; i += 4096) assert_int_equal(b[i], 0);
  mmpool_free(b);
  mmpool_free(guard);
  assert_int_equal(mmpool_check(h), 0);
  assert_int_equal(mmpool_close(h), 0);
}

// Whether this kernel has madvise(MADV_POPULATE_WRITE) (Linux 5.14).
static int kernel_populates(void) {
  void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(m != MAP_FAILED);
  int ok = madvise(m, 4096, 23 /* MADV_POPULATE_WRITE */) == 0;
  munmap(m, 4096);
  return ok;
}

// calloc of pages the kernel has not given yet: up to 4 MiB of an anonymous
// pool they are made present at once (a read before the first write would
// otherwise map the zero page, and the write replace it: core/api.c,
// calloc_fresh), where the kernel can; a larger block stays lazy, and so
// does a file pool's.
static void calloc_populates_fresh_pages(void **state) {
  (void)state;
  page_purge_delay_ms = DAY_MS;
  size_t want = kernel_populates() ? 1 : 0;
  mmpool_t *h = mmpool_open("lg.calloc", "size=1G");
  assert_non_null(h);
  unsigned char *a = mmpool_calloc(h, 1, 1 * MiB);
  unsigned char *b = mmpool_calloc(h, 4, 1 * MiB);
  unsigned char *c = mmpool_calloc(h, 1, 16 * MiB);
  assert_true(a && b && c);
  assert_int_equal(itest_resident(a, 1 * MiB), want * MiB / 4096);
  assert_int_equal(itest_resident(b, 4 * MiB), want * 4 * MiB / 4096);
  // Its middle: with transparent huge pages always on, the 2 MiB page that
  // b's last pages fault in may reach into c's first ones.
  assert_int_equal(itest_resident(c + 4 * MiB, 8 * MiB), 0);
  for (size_t i = 0; i < 4 * MiB; i++)
    if ((i < MiB && a[i]) || b[i] || c[i * 4]) fail_msg("not zero at %zu", i);
  mmpool_free(a);
  mmpool_free(b);
  mmpool_free(c);
  assert_int_equal(mmpool_check(h), 0);
  assert_int_equal(mmpool_close(h), 0);
  char opts[600];
  snprintf(opts, sizeof opts, "file=%s/calloc.pool size=64M", dir);
  h = mmpool_open("lg.calloc.file", opts);
  assert_non_null(h);
  a = mmpool_calloc(h, 1, 1 * MiB);
  assert_non_null(a);
  assert_int_equal(itest_resident(a, 1 * MiB), 0);  // holes of the file
  mmpool_free(a);
  assert_int_equal(mmpool_close(h), 0);
}

// Pages go back once free for the delay, on a later call: with a delay of
// a day nothing goes; with 0, the next slow-path call gives back every
// span due, the pages above the top included.
static void purged_when_due_on_a_later_call(void **state) {
  (void)state;
  page_purge_delay_ms = DAY_MS;
  mmpool_t *h = mmpool_open("lg.decay", "size=1G");
  assert_non_null(h);
  size_t n = 6 * MiB;
  void *a = mmpool_malloc(h, n), *guard = mmpool_malloc(h, 64 * KiB * 3);
  void *top = mmpool_malloc(h, n);
  assert_true(a && guard && top);
  touch(a, n, 1);
  touch(top, n, 2);
  mmpool_free(a);    // a free span in the middle
  mmpool_free(top);  // the top comes down: pages above it
  void *x = mmpool_malloc(h, 256 * KiB);  // a later call: nothing is due
  assert_non_null(x);
  mmpool_free(x);
  assert_int_equal(itest_resident(a, n), n / 4096);
  assert_true(itest_resident(top, n) >= n / 4096 - 256 * KiB / 4096);
  unsigned long calls = os_syscalls();
  page_purge_delay_ms = 0;  // everything waiting is due now
  x = mmpool_malloc(h, 256 * KiB);
  assert_non_null(x);
  assert_true(os_syscalls() > calls);  // the madvise calls
  assert_int_equal(itest_resident(a, n), 0);
  // x came from a's span or the top; what is left of both is given back.
  size_t left = itest_resident(top, n);
  assert_true(left <= 256 * KiB / 4096);
  mmpool_free(x);
  mmpool_free(guard);
  assert_int_equal(mmpool_check(h), 0);
  assert_int_equal(mmpool_close(h), 0);
  page_purge_delay_ms = DAY_MS;
}

// heap_trim (malloc_trim) gives back every free page at once, whatever its
// size, and says how many; a second call finds nothing.
static void trim_gives_back_everything(void **state) {
  (void)state;
  page_purge_delay_ms = DAY_MS;
  mmpool_t *h = mmpool_open("lg.trim", "size=1G");
  assert_non_null(h);
  struct mmpool *p = pool_from_handle(h);
  size_t small = 192 * KiB;  // 3 pages: never due by the delay
  void *a = mmpool_malloc(h, small), *g1 = mmpool_malloc(h, 200 * KiB);
  void *b = mmpool_malloc(h, 20 * MiB), *g2 = mmpool_malloc(h, 200 * KiB);
  void *c = mmpool_malloc(h, 3 * MiB);
  assert_true(a && g1 && b && g2 && c);
  touch(a, small, 1);
  touch(b, 20 * MiB, 1);
  touch(c, 3 * MiB, 1);
  mmpool_free(a);
  mmpool_free(b);
  mmpool_free(c);
  assert_int_equal(itest_resident(a, small), small / 4096);
  assert_int_equal(itest_resident(b, 20 * MiB), 20 * MiB / 4096);
  uint64_t pages = heap_trim(p);
  assert_true(pages >= (small + 20 * MiB + 3 * MiB) / PAGE_BYTES);
  kept_is_exact(h);
  assert_int_equal(page_kept(p), 0);
  assert_int_equal(itest_resident(a, small), 0);
  assert_int_equal(itest_resident(b, 20 * MiB), 0);
  assert_int_equal(itest_resident(c, 3 * MiB), 0);
  assert_int_equal(heap_trim(p), 0);
  mmpool_free(g1);
  mmpool_free(g2);
  assert_int_equal(mmpool_check(h), 0);
  assert_int_equal(mmpool_close(h), 0);
}

// Past the budget (1 GiB, or as many pages as are in use), the pages kept
// go back at once, due or not. The blocks are touched on one page only:
// what is counted is pages kept free, resident or not.
static void budget_bounds_what_is_kept(void **state) {
  (void)state;
  page_purge_delay_ms = DAY_MS;
  mmpool_t *h = mmpool_open("lg.budget", "size=8G");
  assert_non_null(h);
  struct mmpool *p = pool_from_handle(h);
  size_t n = 600 * MiB;
  void *a = mmpool_malloc(h, n), *b = mmpool_malloc(h, n);
  void *guard = mmpool_malloc(h, 1 * MiB);
  assert_true(a && b && guard);
  touch(a, 4096, 1);
  touch(b, 4096, 1);
  unsigned long calls = os_syscalls();
  mmpool_free(a);  // 600 MiB kept: under the budget
  assert_int_equal(os_syscalls(), calls);
  assert_int_equal(page_kept(p), n / PAGE_BYTES);
  kept_is_exact(h);
  mmpool_free(b);  // 1200 MiB: over it, all go back
  assert_true(os_syscalls() > calls);
  assert_int_equal(page_kept(p), 0);
  kept_is_exact(h);
  int dirty = -1;
  void *c = heap_alloc_large(p, n, 0, &dirty);
  assert_non_null(c);
  assert_int_equal(dirty, 0);
  mmpool_free(c);
  mmpool_free(guard);
  assert_int_equal(mmpool_check(h), 0);
  assert_int_equal(mmpool_close(h), 0);
}

// A file pool keeps its free pages (a hole punched in a shared file would
// be a SIGBUS on a full disk when refilled): trim gives back nothing, the
// kept spans are ordinary free spans, and the file checks after a close.
static void file_pool_keeps_its_pages(void **state) {
  (void)state;
  page_purge_delay_ms = 0;
  char opts[600];
  snprintf(opts, sizeof opts, "file=%s/keep.pool size=256M", dir);
  mmpool_t *h = mmpool_open("lg.file", opts);
  assert_non_null(h);
  struct mmpool *p = pool_from_handle(h);
  void *a = mmpool_malloc(h, 8 * MiB), *g = mmpool_malloc(h, 1 * MiB);
  assert_true(a && g);
  touch(a, 8 * MiB, 7);
  unsigned long calls = os_syscalls();
  mmpool_free(a);
  void *b = mmpool_malloc(h, 8 * MiB);
  assert_ptr_equal(b, a);
  assert_int_equal(os_syscalls(), calls);
  assert_int_equal(((unsigned char *)b)[4096], 7);  // the file's bytes
  mmpool_free(b);
  assert_int_equal(heap_trim(p), 0);
  assert_int_equal(mmpool_check(h), 0);
  assert_int_equal(mmpool_close(h), 0);
  h = mmpool_open("lg.file", opts);
  assert_non_null(h);
  assert_int_equal(mmpool_check(h), 0);
  mmpool_stats_t st;
  assert_int_equal(mmpool_stats(h, &st), 0);
  assert_int_equal(st.large_blocks, 1);  // g, not the kept span
  assert_true(st.free_bytes >= 8 * MiB);
  assert_int_equal(mmpool_close(h), 0);
  page_purge_delay_ms = DAY_MS;
}

// Threads replacing large blocks in one pool, spans kept (a delay of a
// day) and then purges due all along (delay 0): the heap checks sound, and
// the count of pages kept is exact, after each.
struct worker {
  mmpool_t *h;
  unsigned seed;
};

static void *work(void *arg) {
  struct worker *w = arg;
  void *ring[4] = {0};
  size_t sz[4] = {0};
  unsigned s = w->seed;
  for (int i = 0; i < 400; i++) {
    int k = i % 4;
    if (ring[k]) {
      if (((unsigned char *)ring[k])[sz[k] - 1] != (unsigned char)k)
        return "content";
      mmpool_free(ring[k]);
    }
    s = s * 1103515245u + 12345u;
    sz[k] = 129 * KiB + (s >> 8) % (6 * MiB);
    ring[k] = mmpool_malloc(w->h, sz[k]);
    if (!ring[k]) return "malloc";
    ((unsigned char *)ring[k])[sz[k] - 1] = (unsigned char)k;
  }
  for (int k = 0; k < 4; k++) mmpool_free(ring[k]);
  return NULL;
}

static void threads_share_the_spans(void **state) {
  (void)state;
  mmpool_t *h = mmpool_open("lg.mt", "size=4G");
  assert_non_null(h);
  enum { NT = 4 };
  for (int round = 0; round < 2; round++) {
    page_purge_delay_ms = round ? 0 : DAY_MS;
    pthread_t t[NT];
    struct worker w[NT];
    for (int i = 0; i < NT; i++) {
      w[i] = (struct worker){h, 7u + (unsigned)(i + NT * round)};
      assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
      void *r;
      assert_int_equal(pthread_join(t[i], &r), 0);
      if (r) fail_msg("round %d, thread %d: %s", round, i, (char *)r);
    }
    kept_is_exact(h);
    assert_int_equal(mmpool_check(h), 0);
    mmpool_stats_t st;
    assert_int_equal(mmpool_stats(h, &st), 0);
    assert_int_equal(st.large_blocks, 0);
  }
  assert_int_equal(mmpool_close(h), 0);
  page_purge_delay_ms = DAY_MS;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(steady_state_makes_no_system_call),
      cmocka_unit_test(kept_span_is_dirty_purged_is_clean),
      cmocka_unit_test(purged_when_due_on_a_later_call),
      cmocka_unit_test(trim_gives_back_everything),
      cmocka_unit_test(budget_bounds_what_is_kept),
      cmocka_unit_test(file_pool_keeps_its_pages),
      cmocka_unit_test(calloc_populates_fresh_pages),
      cmocka_unit_test(threads_share_the_spans),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
