// test_threads.c: many threads allocating from two pools at once.
//
// Each thread mixes malloc/calloc/memalign/realloc/free of random sizes
// (mostly small, some large) and writes a pattern into every block. Threads
// hand blocks to each other through a mutex-protected ring: the receiver
// checks the pattern, the usable size and the owner pool, then frees the
// block or reallocs it (a realloc of a block another thread allocated,
// possibly into the other pool). Some threads exit while still owning blocks,
// which later threads free ("orphans": their pages are abandoned); new
// threads started after others exited allocate from the same classes, so
// abandoned pages get adopted. After joining everything, every block has
// been freed exactly once, the pools count no live block and mmpool_check
// passes. A last case checks that mmpool_push/mmpool_pop are per thread.
//
// Failures inside worker threads print one line and abort (cmocka's
// assertions are for the main thread only).
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "mmpool.h"
#include "pattern.h"
#include "../common/smaps.h"

#ifdef MMPOOL_SANITIZED
#define SCALE 4
#else
#define SCALE 1
#endif

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

#define OWN_MAX 128    // blocks a thread holds at most
#define RING_SLOTS 512 // blocks in transit between threads at most
#define ORPHANS_MAX 8192

// ---------------------------------------------------------------------------
// Failure reporting from any thread

static char tmpdir[256];
static char poolpath[300];

// Removes the scratch directory, also on the way to abort().
static void scratch_cleanup(void) {
  if (poolpath[0]) unlink(poolpath);
  if (tmpdir[0]) rmdir(tmpdir);
  poolpath[0] = tmpdir[0] = 0;
}

__attribute__((format(printf, 1, 2), noreturn)) static void
tfail(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "test_threads: FAILED: %s (last error: %s)\n", buf,
          mmpool_last_error());
  fflush(stderr);
  scratch_cleanup();
  abort();
}

// ---------------------------------------------------------------------------
// Generator (pattern.h)

static uint64_t rnd(uint64_t *s) { return rnd_next(s); }

static size_t rnd_range(uint64_t *s, size_t lo, size_t hi) {
  return lo + (size_t)(rnd(s) % (uint64_t)(hi - lo + 1));
}

// ---------------------------------------------------------------------------
// Shared state

struct blk {
  uint8_t *p;
  size_t size;
  uint64_t seed;
  unsigned pool; // index into tp[]
};

static mmpool_t *tp[2];
static const char *tp_name[2] = {"thr.anon", "thr.file"};

static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static struct blk ring[RING_SLOTS];
static size_t ring_head, ring_count;

// Orphans: blocks whose allocating thread exited. Early leavers' orphans
// go to the shared list, which any thread takes from; late leavers' go to
// the legacy list, which only threads started after them take from, so the
// second wave is sure to free blocks of threads that are gone.
struct orphan_list {
  pthread_mutex_t lock;
  struct blk b[ORPHANS_MAX];
  size_t n;
};
static struct orphan_list orphans = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0};
static struct orphan_list legacy = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0};

static atomic_ulong n_alloc, n_free, n_xfree, n_xrealloc, n_orphan_freed;

static int ring_put(const struct blk *b) {
  int ok = 0;
  pthread_mutex_lock(&ring_lock);
  if (ring_count < RING_SLOTS) {
    ring[(ring_head + ring_count++) % RING_SLOTS] = *b;
    ok = 1;
  }
  pthread_mutex_unlock(&ring_lock);
  return ok;
}

static int ring_get(struct blk *b) {
  int ok = 0;
  pthread_mutex_lock(&ring_lock);
  if (ring_count > 0) {
    *b = ring[ring_head];
    ring_head = (ring_head + 1) % RING_SLOTS;
    ring_count--;
    ok = 1;
  }
  pthread_mutex_unlock(&ring_lock);
  return ok;
}

static int orphan_put(struct orphan_list *l, const struct blk *b) {
  int ok = 0;
  pthread_mutex_lock(&l->lock);
  if (l->n < ORPHANS_MAX) {
    l->b[l->n++] = *b;
    ok = 1;
  }
  pthread_mutex_unlock(&l->lock);
  return ok;
}

static int orphan_get(struct orphan_list *l, struct blk *b, uint64_t *rs) {
  int ok = 0;
  pthread_mutex_lock(&l->lock);
  if (l->n > 0) {
    size_t i = (size_t)(rnd(rs) % l->n);
    *b = l->b[i];
    l->b[i] = l->b[--l->n];
    ok = 1;
  }
  pthread_mutex_unlock(&l->lock);
  return ok;
}

static size_t orphan_count(struct orphan_list *l) {
  pthread_mutex_lock(&l->lock);
  size_t n = l->n;
  pthread_mutex_unlock(&l->lock);
  return n;
}

// ---------------------------------------------------------------------------
// Block operations (any thread)

static void check_block(const struct blk *b, const char *when) {
  size_t bad = check_range(b->p, b->seed, b->size);
  if (bad != b->size)
    tfail("%s: block %p (%zu bytes, %s): byte %zu is %#x, expected %#x", when,
          (void *)b->p, b->size, tp_name[b->pool], bad, b->p[bad],
          pat_byte(b->seed, bad));
  size_t us = mmpool_usable_size(b->p);
  if (us != b->size)
    tfail("%s: mmpool_usable_size(%p) = %zu, expected %zu", when, (void *)b->p,
          us, b->size);
  if (mmpool_of(b->p) != tp[b->pool])
    tfail("%s: mmpool_of(%p) is not %s", when, (void *)b->p, tp_name[b->pool]);
}

static void check_new(const char *what, const void *p, unsigned pool,
                      size_t size, size_t align) {
  if (p == NULL)
    tfail("%s(%s, %zu, align %zu) returned NULL", what, tp_name[pool], size,
          align);
  if (((uintptr_t)p & (align - 1)) != 0 || ((uintptr_t)p & 15) != 0)
    tfail("%s(%s, %zu) = %p: not aligned to %zu", what, tp_name[pool], size, p,
          align);
  size_t us = mmpool_usable_size(p);
  if (us != size)
    tfail("%s(%s, %zu) = %p: usable size %zu", what, tp_name[pool], size, p,
          us);
  if (mmpool_of(p) != tp[pool])
    tfail("%s(%s, %zu) = %p: owned by another pool", what, tp_name[pool], size,
          p);
}

// Mostly small, some medium, a few large.
static size_t rnd_size(uint64_t *rs) {
  unsigned r = (unsigned)(rnd(rs) % 1000);
  if (r < 850) return rnd_range(rs, 0, 512);
  if (r < 980) return rnd_range(rs, 513, 16 * KiB);
  if (r < 998) return rnd_range(rs, 16 * KiB + 1, 256 * KiB);
  return rnd_range(rs, 256 * KiB + 1, 2 * MiB);
}

static void blk_alloc(struct blk *b, uint64_t *rs) {
  unsigned pool = (unsigned)(rnd(rs) & 1);
  size_t size = rnd_size(rs);
  unsigned how = (unsigned)(rnd(rs) % 10);
  void *p;
  if (how < 7) {
    p = mmpool_malloc(tp[pool], size);
    check_new("mmpool_malloc", p, pool, size, 16);
  } else if (how < 8) {
    p = mmpool_calloc(tp[pool], 1, size);
    check_new("mmpool_calloc", p, pool, size, 16);
    for (size_t j = 0; j < size; j++)
      if (((uint8_t *)p)[j] != 0)
        tfail("mmpool_calloc(%s, 1, %zu) = %p: byte %zu not zero",
              tp_name[pool], size, p, j);
  } else {
    size_t align = (size_t)16 << (rnd(rs) % 13); // 16 .. 64 KiB
    p = mmpool_memalign(tp[pool], align, size);
    check_new("mmpool_memalign", p, pool, size, align);
  }
  *b = (struct blk){p, size, rnd(rs), pool};
  fill_range(p, b->seed, 0, size);
  atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
}

static void blk_free(struct blk *b, const char *when) {
  check_block(b, when);
  int e = errno = 777;
  mmpool_free(b->p);
  if (errno != e) tfail("mmpool_free changed errno");
  atomic_fetch_add_explicit(&n_free, 1, memory_order_relaxed);
}

// Reallocs b (to either pool), checking the preserved prefix.
static void blk_realloc(struct blk *b, uint64_t *rs, const char *when) {
  check_block(b, when);
  unsigned to = (unsigned)(rnd(rs) % 3);
  mmpool_t *arg = to == 2 ? NULL : tp[to]; // NULL: stays where it is
  if (to == 2) to = b->pool;
  size_t size;
  switch (rnd(rs) % 3) {
  case 0:
    size = b->size * 2 + 1;
    break;
  case 1:
    size = b->size / 2 + 1;
    break;
  default:
    size = rnd_size(rs) + 1;
  }
  if (size > 4 * MiB) size = rnd_size(rs) + 1;
  uint8_t *q = mmpool_realloc(arg, b->p, size);
  check_new("mmpool_realloc", q, to, size, 16);
  size_t keep = b->size < size ? b->size : size;
  size_t bad = check_range(q, b->seed, keep);
  if (bad != keep)
    tfail("%s: mmpool_realloc(%s -> %s, %zu -> %zu): byte %zu of the "
          "preserved prefix is %#x, expected %#x",
          when, tp_name[b->pool], tp_name[to], b->size, size, bad, q[bad],
          pat_byte(b->seed, bad));
  fill_range(q, b->seed, keep, size);
  b->p = q;
  b->size = size;
  b->pool = to;
}

// ---------------------------------------------------------------------------
// Workers

struct worker {
  pthread_t tid;
  unsigned id;
  unsigned long iters;
  struct orphan_list *leave_to; // exits owning blocks, left there; or NULL
  int takes_legacy;             // started after the late leavers exited
  uint64_t seed;
};

static void *worker_main(void *arg) {
  struct worker *w = arg;
  uint64_t rs = w->seed;
  struct blk own[OWN_MAX];
  size_t nown = 0;
  struct blk b;

  for (unsigned long it = 0; it < w->iters; it++) {
    unsigned r = (unsigned)(rnd(&rs) % 100);
    if (r < 32) {
      if (nown == OWN_MAX) {
        size_t i = (size_t)(rnd(&rs) % nown);
        blk_free(&own[i], "free (own, full)");
        own[i] = own[--nown];
      }
      blk_alloc(&own[nown++], &rs);
    } else if (r < 45) {
      if (nown > 0) {
        size_t i = (size_t)(rnd(&rs) % nown);
        blk_free(&own[i], "free (own)");
        own[i] = own[--nown];
      }
    } else if (r < 53) {
      if (nown > 0) blk_realloc(&own[rnd(&rs) % nown], &rs, "realloc (own)");
    } else if (r < 73) {
      if (nown > 0) {
        size_t i = (size_t)(rnd(&rs) % nown);
        if (!ring_put(&own[i])) blk_free(&own[i], "free (ring full)");
        own[i] = own[--nown];
      }
    } else if (r < 96) {
      if (!ring_get(&b)) continue;
      unsigned how = (unsigned)(rnd(&rs) % 10);
      if (how < 5) {
        blk_free(&b, "free (received)");
        atomic_fetch_add_explicit(&n_xfree, 1, memory_order_relaxed);
      } else if (how < 8 || nown == OWN_MAX) {
        blk_realloc(&b, &rs, "realloc (received)");
        atomic_fetch_add_explicit(&n_xrealloc, 1, memory_order_relaxed);
        blk_free(&b, "free (received, reallocated)");
      } else {
        check_block(&b, "received, kept");
        own[nown++] = b;
      }
    } else {
      if (!orphan_get(&orphans, &b, &rs) &&
          !(w->takes_legacy && orphan_get(&legacy, &b, &rs)))
        continue;
      if (rnd(&rs) & 1) blk_realloc(&b, &rs, "realloc (orphan)");
      blk_free(&b, "free (orphan)");
      atomic_fetch_add_explicit(&n_orphan_freed, 1, memory_order_relaxed);
    }
  }
  // A leaver exits owning its blocks (a few fresh ones at least, so there
  // always are some); the others clean up after themselves.
  for (int k = 0; w->leave_to != NULL && k < 8 && nown < OWN_MAX; k++)
    blk_alloc(&own[nown++], &rs);
  while (nown > 0) {
    nown--;
    if (w->leave_to == NULL || !orphan_put(w->leave_to, &own[nown]))
      blk_free(&own[nown], "free (exit)");
  }
  return NULL;
}

static void run_workers(struct worker *ws, unsigned n) {
  for (unsigned i = 0; i < n; i++) {
    int e = pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]);
    if (e != 0) fail_msg("pthread_create: %s", strerror(e));
  }
}

static void join_workers(struct worker *ws, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    assert_int_equal(pthread_join(ws[i].tid, NULL), 0);
}

// ---------------------------------------------------------------------------
// Set-up

static int setup(void **state) {
  (void)state;
  const char *t = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/mmpool-threads-XXXXXX",
           t && *t ? t : "/tmp");
  if (mkdtemp(tmpdir) == NULL) return -1;
  snprintf(poolpath, sizeof poolpath, "%s/threads.pool", tmpdir);
  char opts[400];
  snprintf(opts, sizeof opts, "file=%s size=2G", poolpath);
  tp[0] = mmpool_open(tp_name[0], "size=4G");
  tp[1] = mmpool_open(tp_name[1], opts);
  if (tp[0] == NULL || tp[1] == NULL) {
    fprintf(stderr, "mmpool_open: %s\n", mmpool_last_error());
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  int rc = 0;
  for (unsigned i = 0; i < 2; i++)
    if (tp[i] != NULL && mmpool_close(tp[i]) != 0) {
      fprintf(stderr, "mmpool_close(%s): %s\n", tp_name[i],
              mmpool_last_error());
      rc = -1;
    }
  scratch_cleanup();
  return rc;
}

static int count_fn(void *block, size_t size, void *arg) {
  (void)block;
  (void)size;
  ++*(size_t *)arg;
  return 0;
}

static void check_pools_empty(void) {
  for (unsigned i = 0; i < 2; i++) {
    mmpool_stats_t st;
    assert_int_equal(mmpool_stats(tp[i], &st), 0);
    if (st.in_use_blocks != 0 || st.in_use != 0)
      fail_msg("%s: %zu blocks (%zu bytes) still in use after every block "
               "was freed",
               tp_name[i], st.in_use_blocks, st.in_use);
    if (mmpool_check(tp[i]) != 0)
      fail_msg("mmpool_check(%s): %s", tp_name[i], mmpool_last_error());
    size_t live = 0;
    assert_int_equal(mmpool_walk(tp[i], count_fn, &live), 0);
    if (live != 0)
      fail_msg("mmpool_walk(%s) still finds %zu blocks", tp_name[i], live);
  }
}

// n threads, half of them leaving blocks behind when they exit (half of
// those early, while the others run, half at the end); then n/2 fresh threads
// that take over the orphans and abandoned pages; then the main thread frees
// whatever is still in transit.
static void stress(unsigned n, unsigned long iters, uint64_t seed) {
  atomic_store(&n_alloc, 0);
  atomic_store(&n_free, 0);
  atomic_store(&n_xfree, 0);
  atomic_store(&n_xrealloc, 0);
  atomic_store(&n_orphan_freed, 0);
  struct worker ws[32];
  assert_true(n <= 32);
  for (unsigned i = 0; i < n; i++)
    ws[i] = (struct worker){.id = i,
                            .iters = i % 4 == 1 ? iters / 4 : iters,
                            .leave_to = i % 4 == 1   ? &orphans
                                        : i % 4 == 3 ? &legacy
                                                     : NULL,
                            .seed = seed * 1000003u + i};
  run_workers(ws, n);
  join_workers(ws, n);
  size_t orphans_after_1 = orphan_count(&orphans) + orphan_count(&legacy);

  unsigned n2 = n / 2;
  for (unsigned i = 0; i < n2; i++)
    ws[i] = (struct worker){.id = n + i,
                            .iters = iters / 2,
                            .leave_to = i == 0 ? &orphans : NULL,
                            .takes_legacy = 1,
                            .seed = seed * 1000003u + n + i};
  run_workers(ws, n2);
  join_workers(ws, n2);

  // Whatever is left: in the ring, or orphaned by the last leaver.
  struct blk b;
  uint64_t rs = seed;
  size_t left = 0;
  while (ring_get(&b)) {
    blk_free(&b, "free (main, ring)");
    left++;
  }
  while (orphan_get(&orphans, &b, &rs) || orphan_get(&legacy, &b, &rs)) {
    blk_free(&b, "free (main, orphan)");
    left++;
  }
  unsigned long na = atomic_load(&n_alloc), nf = atomic_load(&n_free);
  printf("%u threads: %lu allocated, %lu freed (%lu received and freed, "
         "%lu received and reallocated, %lu orphans freed by others, "
         "%zu orphans after the first wave, %zu freed by main)\n",
         n, na, nf, atomic_load(&n_xfree), atomic_load(&n_xrealloc),
         atomic_load(&n_orphan_freed), orphans_after_1, left);
  assert_int_equal(na, nf);
  assert_true(atomic_load(&n_xfree) > 0);
  assert_true(atomic_load(&n_xrealloc) > 0);
  assert_true(atomic_load(&n_orphan_freed) > 0);
  assert_true(orphans_after_1 > 0); // the second wave had some to take over
  check_pools_empty();
}

static void test_threads_8(void **state) {
  (void)state;
  stress(8, 400000 / SCALE, 8);
}

static void test_threads_16(void **state) {
  (void)state;
  stress(16, 200000 / SCALE, 16);
}

// Threads that do nothing but free what others allocated, and many short
// threads, each allocating a little and exiting with its pages abandoned.
static void *short_lived(void *arg) {
  uint64_t rs = (uint64_t)(uintptr_t)arg;
  struct blk b;
  for (int i = 0; i < 200; i++) {
    blk_alloc(&b, &rs);
    if (i % 3 == 0 || !orphan_put(&orphans, &b))
      blk_free(&b, "free (short-lived)");
  }
  return NULL;
}

static void test_thread_churn(void **state) {
  (void)state;
  atomic_store(&n_alloc, 0);
  atomic_store(&n_free, 0);
  unsigned waves = 40 / (SCALE > 1 ? 4 : 1);
  for (unsigned w = 0; w < waves; w++) {
    pthread_t t[4];
    for (unsigned i = 0; i < 4; i++)
      assert_int_equal(pthread_create(&t[i], NULL, short_lived,
                                      (void *)(uintptr_t)(w * 4 + i + 1)),
                       0);
    for (unsigned i = 0; i < 4; i++)
      assert_int_equal(pthread_join(t[i], NULL), 0);
  }
  struct blk b;
  uint64_t rs = 5;
  while (orphan_get(&orphans, &b, &rs))
    blk_free(&b, "free (main, churn)");
  assert_int_equal(atomic_load(&n_alloc), atomic_load(&n_free));
  check_pools_empty();
}

// ---------------------------------------------------------------------------
// A server whose threads free each other's blocks (larson): a shared array
// of slots, each swap puts a new block in a random slot and frees the one
// it held, mostly another thread's. Blocks freed by other threads wait on
// their slab's thread-free list until its owner collects them; a thread
// that only looked at its newest slabs, and took blocks never handed out
// before those others had freed, kept slab after slab and touched page
// after page (wl-larson with 4 threads: 85 MiB resident after 100 M swaps
// for 2 MiB live). With the live set steady, the pool's resident memory
// must be steady too: the second half of the run may not add more than a
// tenth (and 1 MiB) to what the first half left.

#define SLOT_THREADS 4
#define SLOTS (1024 * SLOT_THREADS)

struct slot_arg {
  mmpool_t *pool;
  _Atomic(uint32_t *) *slots;
  unsigned seed;
  long n;
};

static pthread_barrier_t half;  // workers and main, at the half-way mark

static uint32_t *slot_block(mmpool_t *pool, uint64_t *rs) {
  *rs = *rs * 6364136223846793005ull + 1442695040888963407ull;
  uint32_t size = 16 + (uint32_t)((*rs >> 33) % 1009);
  uint32_t *b = mmpool_malloc(pool, size);
  if (!b) {
    fprintf(stderr, "slots: mmpool_malloc(%u): %s\n", size,
            mmpool_last_error());
    abort();
  }
  b[0] = size;
  b[1] = size * 2654435761u;
  ((unsigned char *)b)[size - 1] = (unsigned char)size;
  return b;
}

static void slot_check(const uint32_t *b) {
  if (b[1] != b[0] * 2654435761u ||
      ((const unsigned char *)b)[b[0] - 1] != (unsigned char)b[0]) {
    fprintf(stderr, "slots: block %p changed under its owner\n",
            (const void *)b);
    abort();
  }
}

static void *slot_worker(void *arg) {
  struct slot_arg *a = arg;
  uint64_t rs = a->seed;
  for (long i = 0; i < a->n; i++) {
    if (i == a->n / 2) {
      pthread_barrier_wait(&half);  // main reads the pool's memory
      pthread_barrier_wait(&half);
    }
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    size_t k = (size_t)(rs >> 33) % SLOTS;
    uint32_t *old = atomic_exchange(&a->slots[k], slot_block(a->pool, &rs));
    slot_check(old);
    mmpool_free(old);
  }
  return NULL;
}

static void test_remote_frees_return(void **state) {
  (void)state;
  mmpool_t *pool = mmpool_open("slots", "size=1G");
  assert_non_null(pool);
  static _Atomic(uint32_t *) slots[SLOTS];
  uint64_t rs = 99;
  for (size_t i = 0; i < SLOTS; i++) atomic_store(&slots[i], slot_block(pool, &rs));
  mmpool_stats_t st;
  assert_int_equal(mmpool_stats(pool, &st), 0);
  uintptr_t base = (uintptr_t)mmpool_base(pool);
  pthread_t t[SLOT_THREADS];
  struct slot_arg a[SLOT_THREADS];
  assert_int_equal(pthread_barrier_init(&half, NULL, SLOT_THREADS + 1), 0);
  // MMPOOL_TEST_SWAPS: fewer swaps per thread (valgrind).
  const char *env = getenv("MMPOOL_TEST_SWAPS");
  long swaps = env ? atol(env) : 2000000 / SCALE;
  for (unsigned i = 0; i < SLOT_THREADS; i++) {
    a[i] = (struct slot_arg){pool, slots, 7 + i * 31, swaps};
    assert_int_equal(pthread_create(&t[i], NULL, slot_worker, &a[i]), 0);
  }
  long kib[2] = {0, 0};
  pthread_barrier_wait(&half);
  assert_int_equal(smaps_range(base, base + st.capacity, &kib[0], NULL), 0);
  pthread_barrier_wait(&half);
  for (unsigned i = 0; i < SLOT_THREADS; i++)
    assert_int_equal(pthread_join(t[i], NULL), 0);
  assert_int_equal(smaps_range(base, base + st.capacity, &kib[1], NULL), 0);
  pthread_barrier_destroy(&half);
  assert_int_equal(mmpool_check(pool), 0);
  for (size_t i = 0; i < SLOTS; i++) slot_check(atomic_load(&slots[i]));
  if (kib[1] > kib[0] + kib[0] / 10 + 1024)
    fail_msg("the pool's resident memory grew from %ld KiB to %ld KiB with "
             "a steady live set", kib[0], kib[1]);
  for (size_t i = 0; i < SLOTS; i++) mmpool_free(atomic_load(&slots[i]));
  assert_int_equal(mmpool_stats(pool, &st), 0);
  assert_int_equal(st.in_use_blocks, 0);
  assert_int_equal(mmpool_check(pool), 0);
  assert_int_equal(mmpool_close(pool), 0);
}

// ---------------------------------------------------------------------------
// mmpool_push / mmpool_pop are per thread

static pthread_barrier_t bar;
static mmpool_t *def_pool;
static mmpool_t *thread_saw[8];

static void *pusher(void *arg) {
  (void)arg;
  thread_saw[0] = mmpool_current(); // main's push is not ours
  void *p = mmpool_malloc(NULL, 24);
  thread_saw[1] = mmpool_of(p);
  mmpool_free(p);
  thread_saw[2] = mmpool_push(tp[1]);
  thread_saw[3] = mmpool_current();
  pthread_barrier_wait(&bar); // 1: main checks its own current pool
  p = mmpool_malloc(NULL, 24);
  thread_saw[4] = mmpool_of(p);
  mmpool_free(p);
  pthread_barrier_wait(&bar);       // 2: main pops
  pthread_barrier_wait(&bar);       // 3
  thread_saw[5] = mmpool_current(); // main's pop did not pop ours
  thread_saw[6] = mmpool_pop();
  thread_saw[7] = mmpool_current();
  return NULL;
}

static void test_push_per_thread(void **state) {
  (void)state;
  void *p = mmpool_malloc(NULL, 8);
  assert_non_null(p);
  def_pool = mmpool_of(p);
  mmpool_free(p);
  assert_non_null(def_pool);
  assert_ptr_equal(mmpool_current(), def_pool);
  assert_ptr_equal(mmpool_push(tp[0]), tp[0]);
  assert_ptr_equal(mmpool_current(), tp[0]);

  assert_int_equal(pthread_barrier_init(&bar, NULL, 2), 0);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, pusher, NULL), 0);
  pthread_barrier_wait(&bar);                // 1
  assert_ptr_equal(mmpool_current(), tp[0]); // the thread's push is not ours
  p = mmpool_malloc(NULL, 24);
  assert_ptr_equal(mmpool_of(p), tp[0]);
  mmpool_free(p);
  pthread_barrier_wait(&bar); // 2
  // Nested: push, pop gives back the outer one; then pop to nothing.
  assert_ptr_equal(mmpool_push(tp[1]), tp[1]);
  assert_ptr_equal(mmpool_pop(), tp[0]);
  assert_null(mmpool_pop());
  assert_ptr_equal(mmpool_current(), def_pool);
  pthread_barrier_wait(&bar); // 3
  assert_int_equal(pthread_join(t, NULL), 0);
  pthread_barrier_destroy(&bar);

  assert_ptr_equal(thread_saw[0], def_pool);
  assert_ptr_equal(thread_saw[1], def_pool);
  assert_ptr_equal(thread_saw[2], tp[1]);
  assert_ptr_equal(thread_saw[3], tp[1]);
  assert_ptr_equal(thread_saw[4], tp[1]);
  assert_ptr_equal(thread_saw[5], tp[1]);
  assert_null(thread_saw[6]);
  assert_ptr_equal(thread_saw[7], def_pool);
  assert_ptr_equal(mmpool_current(), def_pool);

  // Pushes nest 16 deep, not 17; pop with nothing pushed stays at NULL.
  for (int i = 0; i < 16; i++)
    assert_ptr_equal(mmpool_push(tp[i & 1]), tp[i & 1]);
  errno = 0;
  assert_null(mmpool_push(tp[0]));
  assert_int_equal(errno, EOVERFLOW);
  assert_ptr_equal(mmpool_current(), tp[1]);
  for (int i = 15; i > 0; i--)
    assert_ptr_equal(mmpool_pop(), tp[(i - 1) & 1]);
  assert_null(mmpool_pop());
  assert_null(mmpool_pop());
  assert_ptr_equal(mmpool_current(), def_pool);
  // A closed pool cannot be pushed.
  mmpool_t *c = mmpool_open("thr.closed", "size=1M");
  assert_non_null(c);
  assert_int_equal(mmpool_close(c), 0);
  errno = 0;
  assert_null(mmpool_push(c));
  assert_int_equal(errno, EBADF);  // a stale handle
  assert_ptr_equal(mmpool_current(), def_pool);
}

// ---------------------------------------------------------------------------
// Pools closed and opened again while threads that used them live on: a
// thread's heap for a closed pool must never serve the pool that takes its
// slot next, even at the very same base.

static pthread_barrier_t rbar;
static mmpool_t *volatile rpool; // the pool the helper thread works in now

static void churn_in(mmpool_t *p, uint64_t seed, const char *who) {
  uint8_t *b[200];
  size_t n[200];
  uint64_t rs = seed;
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 200; i++) {
      n[i] = rnd_size(&rs);
      b[i] = mmpool_malloc(p, n[i]);
      if (b[i] == NULL)
        tfail("%s: mmpool_malloc(%s, %zu) = NULL", who, mmpool_name(p), n[i]);
      if (mmpool_of(b[i]) != p || mmpool_usable_size(b[i]) != n[i])
        tfail("%s: block %p of %zu bytes: not of pool %s, or usable size "
              "%zu",
              who, (void *)b[i], n[i], mmpool_name(p),
              mmpool_usable_size(b[i]));
      fill_range(b[i], seed + (uint64_t)i, 0, n[i]);
    }
    for (int i = 0; i < 200; i++) {
      if (check_range(b[i], seed + (uint64_t)i, n[i]) != n[i])
        tfail("%s: block %p of %zu bytes in %s overwritten", who, (void *)b[i],
              n[i], mmpool_name(p));
      // Keep half of the blocks of the last round: the pool is closed
      // with live blocks, which is allowed.
      if (round < 2 || i % 2 == 0) mmpool_free(b[i]);
    }
  }
}

static void *reopen_helper(void *arg) {
  (void)arg;
  for (int phase = 0; phase < 3; phase++) {
    pthread_barrier_wait(&rbar); // main opened rpool
    churn_in(rpool, 100 + (uint64_t)phase, "helper");
    pthread_barrier_wait(&rbar); // main closes rpool
  }
  return NULL;
}

static void test_reopen_with_live_threads(void **state) {
  (void)state;
  assert_int_equal(pthread_barrier_init(&rbar, NULL, 2), 0);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, reopen_helper, NULL), 0);
  void *first_base = NULL;
  for (int phase = 0; phase < 3; phase++) {
    char opts[64] = "size=1G";
    if (phase == 2) // the same base as the first one
      snprintf(opts, sizeof opts, "size=1G base=%p", first_base);
    mmpool_t *p = mmpool_open(phase == 1 ? "re.b" : "re.a", opts);
    if (p == NULL) fail_msg("mmpool_open(%s): %s", opts, mmpool_last_error());
    if (phase == 0) first_base = mmpool_base(p);
    if (phase == 2) assert_ptr_equal(mmpool_base(p), first_base);
    rpool = p;
    pthread_barrier_wait(&rbar);
    churn_in(p, 200 + (uint64_t)phase, "main");
    pthread_barrier_wait(&rbar);
    // A fresh pool: only this phase's blocks (half of the last round of
    // each thread) are live.
    mmpool_stats_t st;
    assert_int_equal(mmpool_stats(p, &st), 0);
    assert_int_equal(st.in_use_blocks, 200);
    if (mmpool_check(p) != 0)
      fail_msg("mmpool_check(%s): %s", mmpool_name(p), mmpool_last_error());
    assert_int_equal(mmpool_close(p), 0);
  }
  assert_int_equal(pthread_join(t, NULL), 0);
  pthread_barrier_destroy(&rbar);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_push_per_thread),
      cmocka_unit_test(test_threads_8),
      cmocka_unit_test(test_threads_16),
      cmocka_unit_test(test_thread_churn),
      cmocka_unit_test(test_remote_frees_return),
      cmocka_unit_test(test_reopen_with_live_threads),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
