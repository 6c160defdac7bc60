// test_brk.c: sbrk and brk under the preload library (shim/brk.c).
//
// Run as `test_brk MODE`, MODE naming the configuration the ctest gives it:
//   default  no pool is marked brk: the default break region (1 GiB, in no
//            pool)
//   pool     MMPOOL_CONFIG="pool legacy size=64M brk": the region is a block
//            of that pool, which serves no malloc, so it takes nearly all of
//            it
//   shared   "pool main size=256M brk" + "default main": malloc and the
//            break share the pool; the break gets about half of it
//   unsized  "pool legacy brk": a pool of the default 64G whose size= was not
//            given; its break is capped at 1 GiB
//   file     "pool legacy file=... size=64M brk", run twice on one file:
//            the second run resumes the first run's region, at its start,
//            over pages the first run dirtied (brk_persist.c and
//            persist.sh test what a break kept in a file holds)
// The cases run in one process, in order; each leaves the break where it
// found it. The first sbrk(0) of the process is the region's start.
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mmpool.h"

void *__sbrk(intptr_t increment);

#define MIB ((size_t)1 << 20)
#ifdef MMPOOL_SANITIZED
#define SCALE 4
#else
#define SCALE 1
#endif

static const char *mode = "default";
static char *start;     // the region's first byte
static size_t capacity; // bytes the break can grow from start
static int first_zero;  // the process's first growth read zeros

static char *cur(void) { return sbrk(0); }

static int all_zero(const char *p, size_t n) {
  // Word at a time where aligned; the region holds up to 1 GiB.
  size_t i = 0;
  for (; i < n && ((uintptr_t)(p + i) & 7); i++)
    if (p[i]) return 0;
  for (; i + 8 <= n; i += 8)
    if (*(const uint64_t *)(p + i)) return 0;
  for (; i < n; i++)
    if (p[i]) return 0;
  return 1;
}

static int all_byte(const char *p, size_t n, unsigned char c) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)p[i] != c) return 0;
  return 1;
}

// Finds the capacity: grows by 1 MiB, then by 4 KiB, until ENOMEM (the
// region's end is page aligned), then goes back to start.
static int probe_capacity(void **state) {
  (void)state;
  start = sbrk(0);
  if (start == (char *)-1) return -1;
  size_t total = 0;
  for (size_t step = MIB; step >= 4096; step /= 256) {
    while (sbrk((intptr_t)step) != (void *)-1)
      total += step;
    if (errno != ENOMEM) return -1;
  }
  capacity = total;
  if (brk(start) != 0 || sbrk(0) != start) return -1;
  return 0;
}

// Each case starts at the region's start, even after a failed one.
static int reset(void **state) {
  (void)state;
  return brk(start) == 0 && sbrk(0) == start ? 0 : -1;
}

// ---------------------------------------------------------------------------

static void test_where(void **state) {
  (void)state;
  assert_true(first_zero);
  assert_ptr_equal(cur(), start);
  assert_ptr_equal(sbrk(0), sbrk(0));
  assert_ptr_equal(__sbrk(0), sbrk(0));
  mmpool_t *owner = mmpool_of(start);
  if (strcmp(mode, "default") == 0) {
    assert_null(owner); // internal memory, in no pool
    assert_int_equal(capacity, (size_t)1 << 30);
  } else if (strcmp(mode, "shared") == 0) {
    mmpool_t *p = mmpool_get("main");
    assert_non_null(p);
    assert_ptr_equal(owner, p);
    // Half of what the pool had left when the region was made.
    assert_true(capacity <= mmpool_capacity(p) / 2);
    assert_true(capacity >= mmpool_capacity(p) / 4);
    assert_int_equal(mmpool_check(p), 0);
  } else if (strcmp(mode, "unsized") == 0) {
    mmpool_t *p = mmpool_get("legacy");
    assert_non_null(p);
    assert_ptr_equal(owner, p);
    // 1 GiB, less the page before the break's start.
    assert_int_equal(capacity, ((size_t)1 << 30) - 4096);
  } else {
    mmpool_t *p = mmpool_get("legacy");
    assert_non_null(p);
    assert_ptr_equal(owner, p);
    // All of the pool but its header and descriptors.
    assert_true(capacity <= mmpool_capacity(p));
    assert_true(capacity >= mmpool_capacity(p) - 2 * MIB);
    assert_int_equal(mmpool_check(p), 0); // the region is a sound block
  }
  // The kernel's break is not used.
  long kbrk = syscall(SYS_brk, 0);
  assert_ptr_not_equal(sbrk(4 * MIB), (void *)-1);
  assert_int_equal(syscall(SYS_brk, 0), kbrk);
  assert_ptr_not_equal(start, (char *)kbrk);
  assert_int_equal(brk(start), 0);
}

static void test_growth_reads_zero(void **state) {
  (void)state;
  // Odd sizes, so that the break leaves page boundaries.
  size_t sizes[] = {1, 15, 4095, 4097, 100000, 3 * MIB + 7, 17};
  char *expect = start;
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    char *p = sbrk((intptr_t)sizes[i]);
    assert_ptr_equal(p, expect); // the old break
    expect += sizes[i];
    assert_ptr_equal(cur(), expect);
    assert_true(all_zero(p, sizes[i]));
    memset(p, 0xA5, sizes[i]);
  }
  assert_true(all_byte(start, (size_t)(expect - start), 0xA5));
  assert_ptr_equal(sbrk(-(intptr_t)(expect - start)), expect);
  assert_ptr_equal(cur(), start);
}

static void test_shrink_regrow_reads_zero(void **state) {
  (void)state;
  // Keep some bytes, give the rest back, take it again: the kept part keeps
  // its contents, the retaken part reads zeros. Shrinks end inside a page
  // and across many pages.
  struct {
    size_t grow, keep;
  } c[] = {{8192, 100}, {4096, 4096},       {10 * MIB + 333, 4097},
           {65536, 0},  {70000, 65536 + 5}, {2 * MIB, MIB - 1}};
  for (int round = 0; round < 3; round++) {
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
      char *p = sbrk((intptr_t)c[i].grow);
      assert_ptr_equal(p, start);
      assert_true(all_zero(p, c[i].grow));
      memset(p, 0x5A + (int)i, c[i].grow);
      assert_ptr_equal(sbrk(-(intptr_t)(c[i].grow - c[i].keep)), p + c[i].grow);
      assert_ptr_equal(cur(), p + c[i].keep);
      char *q = sbrk((intptr_t)(c[i].grow - c[i].keep));
      assert_ptr_equal(q, p + c[i].keep);
      assert_true(all_byte(p, c[i].keep, 0x5A + (int)i));
      assert_true(all_zero(q, c[i].grow - c[i].keep));
      // Dirty it again and leave: the next case starts on dirty memory.
      memset(p, 0x33, c[i].grow);
      assert_int_equal(brk(start), 0);
    }
  }
  // Whole capacity dirtied at its end, given back, taken again.
  char *p = sbrk((intptr_t)capacity);
  assert_ptr_equal(p, start);
  memset(start + capacity - 3 * 4096 - 5, 0x77, 3 * 4096 + 5);
  assert_int_equal(brk(start + capacity - 3 * 4096 - 5 - 1), 0);
  assert_int_equal(brk(start + capacity), 0);
  assert_true(all_zero(start + capacity - 3 * 4096 - 5, 3 * 4096 + 5));
  assert_int_equal(brk(start), 0);
}

static void test_enomem_past_capacity(void **state) {
  (void)state;
  char *p = sbrk((intptr_t)capacity);
  assert_ptr_equal(p, start);
  assert_ptr_equal(cur(), start + capacity);
  errno = 0;
  assert_ptr_equal(sbrk(1), (void *)-1);
  assert_int_equal(errno, ENOMEM);
  assert_ptr_equal(cur(), start + capacity); // unchanged
  errno = 0;
  assert_ptr_equal(sbrk(INTPTR_MAX), (void *)-1);
  assert_int_equal(errno, ENOMEM);
  // The memory up to the end is usable.
  start[capacity - 1] = 1;
  assert_int_equal(brk(start), 0);
  // From the start: the whole capacity plus one, and below the start.
  errno = 0;
  assert_ptr_equal(sbrk((intptr_t)capacity + 1), (void *)-1);
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_ptr_equal(sbrk(-1), (void *)-1);
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_ptr_equal(sbrk(INTPTR_MIN), (void *)-1);
  assert_int_equal(errno, ENOMEM);
  assert_ptr_equal(cur(), start);
  // Failing calls leave the break usable.
  p = sbrk(4096);
  assert_ptr_equal(p, start);
  assert_true(all_zero(p, 4096));
  assert_int_equal(brk(start), 0);
  if (strcmp(mode, "default") != 0) {
    // The pool's limit, not an arbitrary one: twice the pool cannot fit.
    mmpool_t *pl = mmpool_of(start);
    assert_ptr_equal(sbrk((intptr_t)mmpool_capacity(pl)), (void *)-1);
    assert_int_equal(errno, ENOMEM);
  }
}

static void test_brk_semantics(void **state) {
  (void)state;
  assert_int_equal(brk(start), 0); // to the current break: no change
  assert_ptr_equal(cur(), start);
  assert_int_equal(brk(start + 12345), 0);
  assert_ptr_equal(cur(), start + 12345);
  assert_true(all_zero(start, 12345));
  memset(start, 0x11, 12345);
  assert_int_equal(brk(start + 100), 0); // shrink
  assert_ptr_equal(cur(), start + 100);
  assert_int_equal(brk(start + 12345), 0);
  assert_true(all_byte(start, 100, 0x11));
  assert_true(all_zero(start + 100, 12345 - 100));
  // sbrk returns the old break after brk moved it.
  assert_ptr_equal(sbrk(5), start + 12345);
  assert_ptr_equal(cur(), start + 12350);
  // Outside [start, start + capacity]: -1, ENOMEM, break unchanged.
  errno = 0;
  assert_int_equal(brk(start - 1), -1);
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_int_equal(brk(NULL), -1);
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_int_equal(brk(start + capacity + 1), -1);
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_int_equal(brk((void *)-4096), -1);
  assert_int_equal(errno, ENOMEM);
  assert_ptr_equal(cur(), start + 12350);
  // The end itself is allowed.
  assert_int_equal(brk(start + capacity), 0);
  assert_ptr_equal(cur(), start + capacity);
  assert_int_equal(brk(start), 0);
  assert_ptr_equal(cur(), start);
}

// Blocks of every kind of allocation never touch [start, start+capacity),
// and using them leaves the break's contents alone.
static int overlaps(const void *p, size_t n) {
  const char *c = p;
  return c < start + capacity && c + n > start;
}

static void test_malloc_disjoint(void **state) {
  (void)state;
  size_t half = capacity / 2;
  char *p = sbrk((intptr_t)half);
  assert_ptr_equal(p, start);
  memset(p, 0xC3, 4 * MIB < half ? 4 * MIB : half);
  // About 60 MiB in all: the "shared" pool has some 128 MiB for malloc.
  enum { N = 1500 };
  static void *blk[N];
  static size_t len[N];
  size_t sizes[] = {1, 16, 24, 100, 1000, 4000, 20000, 70000, 150000};
  for (int i = 0; i < N; i++) {
    size_t n = sizes[i % (sizeof sizes / sizeof *sizes)];
    if (i % 250 == 0) n = i % 500 ? 2 * MIB : 5 * MIB; // a few big ones
    switch (i % 4) {
    case 0:
      blk[i] = malloc(n);
      break;
    case 1:
      blk[i] = calloc(1, n);
      break;
    case 2:
      blk[i] = aligned_alloc(4096, n);
      break;
    default:
      blk[i] = malloc(n / 2 + 1);
      if (blk[i]) blk[i] = realloc(blk[i], n);
    }
    assert_non_null(blk[i]);
    len[i] = n;
    assert_false(overlaps(blk[i], n));
    memset(blk[i], 0x3C, n);
  }
  for (int i = 0; i < N; i += 2)
    free(blk[i]);
  for (int i = 0; i < N; i += 2) {
    blk[i] = malloc(len[i]);
    assert_non_null(blk[i]);
    assert_false(overlaps(blk[i], len[i]));
  }
  assert_true(all_byte(p, 4 * MIB < half ? 4 * MIB : half, 0xC3));
  // Growth after all that still reads zeros.
  char *q = sbrk(MIB);
  assert_ptr_equal(q, start + half);
  assert_true(all_zero(q, MIB));
  for (int i = 0; i < N; i++)
    free(blk[i]);
  assert_int_equal(brk(start), 0);
}

// A free() of a break address: in default mode (no pool) it is another
// allocator's pointer to us, reported and ignored, and the region stays; in
// a pool it points inside the region's live block, a misuse that stops the
// program (SIGABRT), as glibc's free stops it. Either way the region is
// never freed.
static void stray_free_child(char *a) {
  int fd = open("/dev/null", O_WRONLY);  // the expected line
  if (fd >= 0) dup2(fd, 2);
  free(a);
  _exit(strcmp(mode, "default") == 0 ? 0 : 3);
}

static void test_stray_free(void **state) {
  (void)state;
  char *p = sbrk(8192);
  assert_ptr_equal(p, start);
  memset(p, 0x42, 8192);
  for (int k = 0; k < 2; k++) {
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) stray_free_child(p + k * 4096);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (strcmp(mode, "default") == 0) {
      assert_true(WIFEXITED(st));
      assert_int_equal(WEXITSTATUS(st), 0);
    } else {
      assert_true(WIFSIGNALED(st));
      assert_int_equal(WTERMSIG(st), SIGABRT);
    }
  }
  if (strcmp(mode, "default") == 0) {  // ignored here too
    free(p);
    free(p + 4096);
  }
  assert_ptr_equal(cur(), start + 8192);
  assert_true(all_byte(p, 8192, 0x42));
  if (strcmp(mode, "default") != 0)
    assert_ptr_equal(mmpool_of(p), mmpool_of(start));
  char *q = malloc(100); // malloc is not handed the break either
  assert_false(overlaps(q, 100));
  free(q);
  assert_int_equal(brk(start), 0);
}

// ---------------------------------------------------------------------------
// A legacy program's own heap: a first-fit allocator over the break that
// grows it for each new chunk and gives the top back when it is free.

struct chunk {
  size_t size; // payload bytes, a multiple of 16
  size_t free;
};
#define HDR sizeof(struct chunk)

static char *lo, *hi;         // the chunks: [lo, hi) == [start, sbrk(0))
static size_t grows, shrinks; // sbrk calls of each kind

static struct chunk *next(struct chunk *c) {
  return (struct chunk *)((char *)(c + 1) + c->size);
}

static void *la_alloc(size_t n) {
  n = (n + 15) & ~(size_t)15;
  for (struct chunk *c = (struct chunk *)lo; (char *)c < hi; c = next(c)) {
    if (!c->free || c->size < n) continue;
    if (c->size >= n + HDR + 16) { // split
      struct chunk *rest = (struct chunk *)((char *)(c + 1) + n);
      rest->size = c->size - n - HDR;
      rest->free = 1;
      c->size = n;
    }
    c->free = 0;
    return c + 1;
  }
  struct chunk *c = sbrk((intptr_t)(HDR + n));
  grows++;
  if (c == (void *)-1) return NULL;
  if ((char *)c != hi || !all_zero((char *)c, HDR + n)) return NULL;
  hi = (char *)c + HDR + n;
  c->size = n;
  c->free = 0;
  return c + 1;
}

static void la_free(void *p) {
  struct chunk *c = (struct chunk *)p - 1, *last = NULL;
  c->free = 1;
  // Merge free neighbours, then give a free top chunk back.
  for (struct chunk *x = (struct chunk *)lo; (char *)x < hi; x = next(x)) {
    while (x->free && (char *)next(x) < hi && next(x)->free)
      x->size += HDR + next(x)->size;
    last = x;
  }
  if (last && last->free) {
    assert_ptr_equal(sbrk(-(intptr_t)(HDR + last->size)), hi);
    shrinks++;
    hi = (char *)last;
  }
}

static void fill(unsigned char *p, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char)(seed + i * 131);
}

static int check(const unsigned char *p, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(seed + i * 131)) return 0;
  return 1;
}

static void test_legacy_allocator(void **state) {
  (void)state;
  lo = hi = cur();
  assert_ptr_equal(lo, start);
  enum { SLOTS = 400 };
  static unsigned char *ptr[SLOTS];
  static size_t size[SLOTS];
  static uint32_t seed[SLOTS];
  uint32_t rng = 12345;
  int ops = 30000 / SCALE, live = 0, peak = 0;
  for (int op = 0; op < ops; op++) {
    rng = rng * 1103515245u + 12345u;
    unsigned s = (rng >> 8) % SLOTS;
    // Phases of 1500 operations fill the slots, then empty them, so that
    // the heap's top (and the break) moves both ways.
    int filling = (op / 1500) % 2 == 0, coin = (rng >> 28) == 0;
    if (ptr[s] && (filling ? coin : 1)) {
      assert_true(check(ptr[s], size[s], seed[s]));
      la_free(ptr[s]);
      ptr[s] = NULL;
      live--;
      continue;
    }
    if (ptr[s] || (!filling && !coin)) continue;
    size_t n = 1 + (rng >> 16) % 2000;
    if ((rng & 63) == 0) n = 8192 + (rng >> 12) % 60000;
    ptr[s] = la_alloc(n);
    assert_non_null(ptr[s]);
    size[s] = n;
    seed[s] = rng;
    fill(ptr[s], n, rng);
    if (++live > peak) peak = live;
    if (op % 1000 == 0) // everything live is intact
      for (int i = 0; i < SLOTS; i++)
        if (ptr[i]) assert_true(check(ptr[i], size[i], seed[i]));
  }
  assert_true(peak > SLOTS / 2);
  // The break really moved, both ways.
  assert_true(grows > 500 / SCALE);
  assert_true(shrinks > 20 / SCALE);
  for (int i = 0; i < SLOTS; i++)
    if (ptr[i]) {
      assert_true(check(ptr[i], size[i], seed[i]));
      la_free(ptr[i]);
      ptr[i] = NULL;
    }
  // All free: the heap gave everything back.
  assert_ptr_equal(hi, start);
  assert_ptr_equal(cur(), start);
}

// ---------------------------------------------------------------------------
// Threads moving the break at once get disjoint ranges.

enum { THREADS = 4, PER_THREAD = 2000 };
struct range {
  char *p;
  size_t n;
};
static struct range ranges[THREADS][PER_THREAD];

static void *grower(void *arg) {
  int t = (int)(intptr_t)arg;
  uint32_t rng = 777u * (uint32_t)(t + 1);
  for (int i = 0; i < PER_THREAD / SCALE; i++) {
    rng = rng * 1103515245u + 12345u;
    size_t n = 1 + (rng >> 16) % 300;
    char *p = sbrk((intptr_t)n);
    if (p == (void *)-1) return (void *)1;
    if (!all_zero(p, n)) return (void *)2;
    memset(p, 'A' + t, n);
    ranges[t][i] = (struct range){p, n};
  }
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  pthread_t th[THREADS];
  for (int t = 0; t < THREADS; t++)
    assert_int_equal(pthread_create(&th[t], NULL, grower, (void *)(intptr_t)t),
                     0);
  for (int t = 0; t < THREADS; t++) {
    void *r;
    assert_int_equal(pthread_join(th[t], &r), 0);
    assert_null(r);
  }
  size_t total = 0;
  for (int t = 0; t < THREADS; t++)
    for (int i = 0; i < PER_THREAD / SCALE; i++) {
      struct range *g = &ranges[t][i];
      assert_true(g->p >= start && g->p + g->n <= cur());
      assert_true(all_byte(g->p, g->n, 'A' + t)); // nobody overwrote it
      total += g->n;
    }
  assert_ptr_equal(cur(), start + total); // ranges tile the break exactly
  assert_int_equal(brk(start), 0);
}

// ---------------------------------------------------------------------------
// fork: the child's break is its own copy, in every mode (a mode=shared
// file pool included: the child has its own copy of the pool).

static int child(char *p) {
  if (!all_byte(p, 4096, 'P')) return 10;
  if (cur() != p + 4096) return 11;
  char *q = sbrk(8192);
  if (q != p + 4096 || !all_zero(q, 8192)) return 15;
  memset(q, 'C', 8192);
  memset(p, 'c', 4096);
  if (sbrk(-4096) != q + 8192) return 16;
  return 0;
}

static void test_fork(void **state) {
  (void)state;
  char *p = sbrk(4096);
  assert_ptr_equal(p, start);
  memset(p, 'P', 4096);
  for (int i = 0; i < 20; i++) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(child(p));
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    // The parent's break and bytes are its own.
    assert_ptr_equal(cur(), p + 4096);
    assert_true(all_byte(p, 4096, 'P'));
    char *q = sbrk(8192);
    assert_ptr_equal(q, p + 4096);
    assert_true(all_zero(q, 8192));
    assert_int_equal(brk(p + 4096), 0);
  }
  assert_int_equal(brk(start), 0);
}

int main(int argc, char **argv) {
  if (argc > 1) mode = argv[1];
  // Before anything else touches the break (in "file" mode, over what the
  // previous run left in the pool's pages).
  char *p = sbrk((intptr_t)(8 * MIB));
  first_zero = p != (void *)-1 && all_zero(p, 8 * MIB) && brk(p) == 0;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_where, reset),
      cmocka_unit_test_setup(test_growth_reads_zero, reset),
      cmocka_unit_test_setup(test_shrink_regrow_reads_zero, reset),
      cmocka_unit_test_setup(test_enomem_past_capacity, reset),
      cmocka_unit_test_setup(test_brk_semantics, reset),
      cmocka_unit_test_setup(test_malloc_disjoint, reset),
      cmocka_unit_test_setup(test_stray_free, reset),
      cmocka_unit_test_setup(test_legacy_allocator, reset),
      cmocka_unit_test_setup(test_threads, reset),
      cmocka_unit_test_setup(test_fork, reset),
  };
  return cmocka_run_group_tests(tests, probe_capacity, NULL);
}
