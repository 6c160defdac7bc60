// test_freeze.c: one instant (issue 13, item 1). heap_freeze must return
// only when no other thread is inside the allocator, and hold every thread
// that tries to enter until heap_thaw: while frozen, the pool's metadata is
// consistent (page_check, which counts every slab's free lists against its
// live count) and does not change. Eight threads allocate, free their own
// blocks and each other's (remote frees) and take large blocks, while the
// main thread freezes 10,000 times and checks the heap at each.
//
// Links the static core: it calls heap_freeze and page_check directly.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "itest.h"

#include "hash.h"
#include "heap.h"
#include "page.h"
#include "poolfile.h"
#include "pooltable.h"

enum { NTHREADS = 8, RING = 256, SWAP = 1024 };

static mmpool_t *pool;
static atomic_int stop;
static atomic_long ops;
static _Atomic(void *) swap[SWAP];  // blocks passed between threads

static size_t pick(uint64_t *rng) {
  *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
  uint64_t r = *rng >> 33;
  if (r % 200 == 0) return 70000 + r % 300000;  // a large block now and then
  return 16 + r % 3000;
}

static void *worker(void *arg) {
  uint64_t rng = (uintptr_t)arg * 7919 + 1;
  void *ring[RING] = {0};
  long n = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    unsigned k = (unsigned)(rng >> 20) % RING;
    mmpool_free(ring[k]);
    size_t sz = pick(&rng);
    ring[k] = mmpool_malloc(pool, sz);
    if (ring[k]) memset(ring[k], (int)k, sz < 64 ? sz : 64);
    // Every fourth block goes to another thread, which frees it.
    if ((rng & 3) == 0 && ring[k]) {
      void *old = atomic_exchange(&swap[(rng >> 40) % SWAP], ring[k]);
      ring[k] = NULL;
      mmpool_free(old);
    }
    if (++n % 64 == 0) atomic_fetch_add_explicit(&ops, 64, memory_order_relaxed);
  }
  for (unsigned k = 0; k < RING; k++) mmpool_free(ring[k]);
  return NULL;
}

// A hash of what the allocator keeps in the pool: the header's state and
// every descriptor up to the top.
static uint64_t meta_hash(struct mmpool *p) {
  const struct poolfile_header *h = p->hdr;
  uint64_t s = hash_bytes(&h->st, sizeof h->st, 0);
  return hash_bytes(p->desc, (size_t)h->st.top * sizeof(struct pdesc), s);
}

static void test_freeze_under_threads(void **state) {
  (void)state;
  pool = mmpool_open("freeze", "size=1G");
  assert_non_null(pool);
  struct mmpool *p = pool_from_handle(pool);
  assert_non_null(p);
  pthread_t t[NTHREADS];
  for (long i = 0; i < NTHREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)i), 0);
  int rounds = MMPOOL_SANITIZED ? 2000 : 10000;
  if (getenv("FREEZE_ROUNDS")) rounds = atoi(getenv("FREEZE_ROUNDS"));
  long last = 0, moved = 0, wait_us[3] = {0, 0, 0};
  char why[256];
  for (int i = 0; i < rounds; i++) {
    // Let the workers run between two freezes (a freeze in a tight loop
    // would starve them): until they have done some work, or 2 ms.
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    for (long waited = 0; atomic_load(&ops) < last + 64 * NTHREADS &&
                          waited < 2000000;) {
      // A sleep, not a yield: on a loaded machine a yield may hand the CPU
      // to another process for a whole time slice.
      nanosleep(&(struct timespec){0, 20000}, NULL);
      clock_gettime(CLOCK_MONOTONIC, &w1);
      waited = (w1.tv_sec - w0.tv_sec) * 1000000000L + w1.tv_nsec - w0.tv_nsec;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    heap_freeze();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long us = (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
    wait_us[us < 1000 ? 0 : us < 10000 ? 1 : 2]++;
    long now = atomic_load(&ops);
    moved += now != last;
    last = now;
    pthread_mutex_lock(&p->lock);
    int r = page_check(p, why, sizeof why);
    uint64_t before = meta_hash(p);
    pthread_mutex_unlock(&p->lock);
    // Frozen: the workers change nothing, even given time to (a sleep: a
    // yield on a loaded machine hands the CPU away for a whole slice).
    nanosleep(&(struct timespec){0, 50000}, NULL);
    pthread_mutex_lock(&p->lock);
    uint64_t after = meta_hash(p);
    pthread_mutex_unlock(&p->lock);
    // (The workers' operation counter is no witness: a worker may count
    // an operation it finished before the freeze.)
    const char *bad = r != 0            ? why
                      : before != after ? "the metadata changed"
                                        : NULL;
    if (bad) {
      heap_thaw();  // first: the workers and the next test need it
      atomic_store(&stop, 1);
      for (int k = 0; k < NTHREADS; k++) pthread_join(t[k], NULL);
      fail_msg("freeze %d: %s", i, bad);
    }
    heap_thaw();
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
  for (unsigned k = 0; k < SWAP; k++) mmpool_free(atomic_exchange(&swap[k], NULL));
  // The workers ran between many freezes (not a freeze of an idle heap;
  // how many depends on the machine's load).
  print_message("%d freezes, %ld operations, workers ran before %ld of "
                "them; freezes that waited <1 ms: %ld, 1-10 ms: %ld, more: "
                "%ld\n", rounds, atomic_load(&ops), moved, wait_us[0],
                wait_us[1], wait_us[2]);
  assert_true(moved > rounds / 10);
  assert_int_equal(mmpool_check(pool), 0);
  mmpool_stats_t st;
  assert_int_equal(mmpool_stats(pool, &st), 0);
  assert_int_equal(st.in_use_blocks, 0);
  assert_int_equal(mmpool_close(pool), 0);
}

// mmpool_sync of a shared file pool while threads allocate: each sync
// waits for an instant; after the last, the file closes cleanly and the
// next open attaches it without `recover`.
static void test_sync_under_threads(void **state) {
  (void)state;
  char *dir = itest_mkdtemp("freeze");
  assert_non_null(dir);
  char opts[512];
  snprintf(opts, sizeof opts, "file=%s/f.pool,size=256M", dir);
  atomic_store(&stop, 0);
  pool = mmpool_open("fsync", opts);
  assert_non_null(pool);
  pthread_t t[4];
  for (long i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)i), 0);
  for (int i = 0; i < (MMPOOL_SANITIZED ? 20 : 100); i++) {
    sched_yield();
    assert_int_equal(mmpool_sync(pool), 0);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  for (unsigned k = 0; k < SWAP; k++) mmpool_free(atomic_exchange(&swap[k], NULL));
  assert_int_equal(mmpool_close(pool), 0);
  pool = mmpool_open("fsync", opts);
  if (pool == NULL) fail_msg("reopen: %s", mmpool_last_error());
  assert_int_equal(mmpool_check(pool), 0);
  assert_int_equal(mmpool_close(pool), 0);
  itest_rmtree(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_freeze_under_threads),
      cmocka_unit_test(test_sync_under_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
