// test_live.c: the memory a pool holds follows its live set (issue 16,
// item 2): slabs left empty go back to the page allocator, whoever emptied
// them and whichever class comes next.
//
// - A thread that only frees (a consumer) adopts the full slabs of the
//   thread that allocates (a producer) when it frees into them
//   (core/heap.c, free_detached); the blocks another consumer frees into
//   those slabs must still be collected and the slabs given back (sweep).
// - Blocks grown through every size class by realloc leave each class's
//   current slab empty behind them: a class that needs fresh pages takes
//   those slabs' pages instead (release_idle).
// - A slab left empty gives its page back to the kernel after the purge
//   delay.
// - malloc_trim (heap_trim) gives back every slab that holds no block, of
//   every thread, then every free page (checked with mincore).
// Each case asserts what the pool holds (pages_used, the peak, resident
// pages), never a time. Links the static core (heap.h, page.h).
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/mman.h>

#include "itest.h"
#include "heap.h"
#include "page.h"
#include "pooltable.h"

#define DAY_MS (24u * 3600 * 1000)

// Resident 4 KiB pages of [a, a+len).
static size_t resident(uintptr_t a, size_t len) {
  return itest_resident((const void *)a, len);
}

static uint64_t pages_used(mmpool_t *h) {
  struct mmpool *p = pool_from_handle(h);
  engine_lock(&p->lock);
  uint64_t n = p->pages_used;
  engine_unlock(&p->lock);
  return n;
}

// ---------------------------------------------------------------------------
// A producer and two consumers

// Four slabs' worth of 256-byte blocks (254 a slab): the producer fills its
// slabs, which are detached full when it needs the next one.
enum { BATCH = 4 * 254, ROUNDS = 60, BSIZE = 256 };

static mmpool_t *pc_pool;
static void *batch[BATCH];
static pthread_barrier_t pc_bar;  // producer, two consumers

static void *producer(void *arg) {
  (void)arg;
  for (int r = 0; r < ROUNDS; r++) {
    for (int i = 0; i < BATCH; i++) {
      batch[i] = mmpool_malloc(pc_pool, BSIZE);
      if (!batch[i]) return "malloc";
      memset(batch[i], r, BSIZE);
    }
    pthread_barrier_wait(&pc_bar);  // 1: the batch is made
    pthread_barrier_wait(&pc_bar);  // 2: the first consumer freed
    pthread_barrier_wait(&pc_bar);  // 3: the second consumer freed
  }
  return NULL;
}

// Consumer k frees the blocks i with i % 2 == k, the first before the
// second: the first adopts each detached slab it frees into, and the
// second's frees land on those slabs' lists of remote frees, which the
// first, never allocating, would not collect.
static void *consumer(void *arg) {
  int k = (int)(intptr_t)arg;
  for (int r = 0; r < ROUNDS; r++) {
    pthread_barrier_wait(&pc_bar);  // 1
    if (k == 1) pthread_barrier_wait(&pc_bar);  // 2
    for (int i = k; i < BATCH; i += 2) {
      if (((unsigned char *)batch[i])[BSIZE - 1] != (unsigned char)r)
        return "content";
      mmpool_free(batch[i]);
    }
    if (k == 0) pthread_barrier_wait(&pc_bar);  // 2
    pthread_barrier_wait(&pc_bar);  // 3
  }
  return NULL;
}

static void consumers_give_back_adopted_slabs(void **state) {
  (void)state;
  page_purge_delay_ms = DAY_MS;
  pc_pool = mmpool_open("live.pc", "size=1G");
  assert_non_null(pc_pool);
  assert_int_equal(pthread_barrier_init(&pc_bar, NULL, 3), 0);
  pthread_t t[3];
  assert_int_equal(pthread_create(&t[0], NULL, producer, NULL), 0);
  assert_int_equal(pthread_create(&t[1], NULL, consumer, (void *)0), 0);
  assert_int_equal(pthread_create(&t[2], NULL, consumer, (void *)1), 0);
  for (int i = 0; i < 3; i++) {
    void *r;
    assert_int_equal(pthread_join(t[i], &r), 0);
    if (r) fail_msg("thread %d: %s", i, (char *)r);
  }
  pthread_barrier_destroy(&pc_bar);
  mmpool_stats_t st;
  assert_int_equal(mmpool_stats(pc_pool, &st), 0);
  assert_int_equal(st.in_use_blocks, 0);
  // The live set is one batch (4 slabs): what was held at once may be a
  // few batches (a round's slabs wait for the next round's sweep), not one
  // batch per round (240 pages before).
  print_message("peak %zu KiB for %d KiB live\n", st.peak >> 10,
                BATCH * BSIZE >> 10);
  assert_true(st.peak <= (size_t)16 * PAGE_BYTES);
  assert_int_equal(mmpool_check(pc_pool), 0);
  assert_int_equal(mmpool_close(pc_pool), 0);
}

// ---------------------------------------------------------------------------
// Blocks grown through the classes

// 16 blocks grown by realloc, 24 to 64 bytes at a time, from 16 bytes to
// about 7 KiB (the classes of one-page slabs), then freed; 20 times.
static void grown_blocks_reuse_empty_slabs(void **state) {
  (void)state;
  page_purge_delay_ms = DAY_MS;
  mmpool_t *h = mmpool_open("live.grow", "size=1G");
  assert_non_null(h);
  uint64_t s = 1;
  for (int r = 0; r < 20; r++) {
    unsigned char *b[16] = {0};
    size_t len[16] = {0};
    for (int step = 0; step < 200; step++)
      for (int i = 0; i < 16; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        size_t n = len[i] + 24 + (size_t)(s >> 33) % 41;
        if (n > 7000) continue;
        unsigned char *nb = mmpool_realloc(h, b[i], n);
        assert_non_null(nb);
        memset(nb + len[i], (int)i, n - len[i]);
        b[i] = nb, len[i] = n;
      }
    for (int i = 0; i < 16; i++) {
      assert_int_equal(b[i][len[i] - 1], i);
      mmpool_free(b[i]);
    }
  }
  mmpool_stats_t st;
  assert_int_equal(mmpool_stats(h, &st), 0);
  assert_int_equal(st.in_use_blocks, 0);
  // 31 classes passed through, each kept a slab before (peak 32 pages);
  // now about the classes live at once (10).
  print_message("peak %zu KiB, %llu pages held at the end\n", st.peak >> 10,
                (unsigned long long)pages_used(h));
  assert_true(st.peak <= (size_t)12 * PAGE_BYTES);
  assert_int_equal(mmpool_check(h), 0);
  assert_int_equal(mmpool_close(h), 0);
}

// ---------------------------------------------------------------------------
// Purging

// A slab left empty goes back to the page allocator, and its page to the
// kernel once free for the delay, as a large block's span does (it stayed
// resident before: only spans of 1 MiB and more were purged).
static void empty_slab_is_purged(void **state) {
  (void)state;
  for (int delayed = 0; delayed < 2; delayed++) {
    page_purge_delay_ms = delayed ? DAY_MS : 0;
    mmpool_t *h = mmpool_open("live.purge", "size=1G");
    assert_non_null(h);
    enum { N = 3 * 63 };  // three slabs of the 1 KiB class
    unsigned char *b[N];
    for (int i = 0; i < N; i++) {
      b[i] = mmpool_malloc(h, 1000);
      assert_non_null(b[i]);
      memset(b[i], i, 1000);
    }
    // A live slab of another class above them: the freed slabs do not
    // merge with the top (whose pages went back after the delay before).
    void *guard = mmpool_malloc(h, 5000);
    assert_non_null(guard);
    uintptr_t second = (uintptr_t)b[63] & ~(uintptr_t)(PAGE_BYTES - 1);
    assert_int_equal(resident(second, PAGE_BYTES), PAGE_BYTES / 4096);
    // The first slab, emptied, becomes the current one (slab_empty); the
    // second and third go back to the page allocator. A large block's
    // malloc and free then pass the purge's clock.
    for (int i = 0; i < N; i++) mmpool_free(b[i]);
    mmpool_free(mmpool_malloc(h, 1 << 20));
    size_t left = resident(second, PAGE_BYTES);
    if (delayed) assert_true(left > 0);
    else assert_int_equal(left, 0);
    mmpool_free(guard);
    assert_int_equal(mmpool_check(h), 0);
    assert_int_equal(mmpool_close(h), 0);
  }
  page_purge_delay_ms = DAY_MS;
}

// ---------------------------------------------------------------------------
// malloc_trim

static void **trim_blocks;
enum { TRIM_N = 3000 };

static void *free_all(void *arg) {
  (void)arg;
  for (int i = 0; i < TRIM_N; i++) mmpool_free(trim_blocks[i]);
  return NULL;
}

// The main thread makes blocks of 20 classes, another thread frees them
// all: each class's last slab stays the main thread's current one, its
// blocks on its list of remote frees, until heap_trim collects them.
static void trim_collects_every_thread(void **state) {
  (void)state;
  page_purge_delay_ms = DAY_MS;
  mmpool_t *h = mmpool_open("live.trim", "size=1G");
  assert_non_null(h);
  struct mmpool *p = pool_from_handle(h);
  trim_blocks = malloc(TRIM_N * sizeof *trim_blocks);
  assert_non_null(trim_blocks);
  for (int i = 0; i < TRIM_N; i++) {
    size_t n = 16 + (size_t)(i % 20) * 50;
    trim_blocks[i] = mmpool_malloc(h, n);
    assert_non_null(trim_blocks[i]);
    memset(trim_blocks[i], 1, n);
  }
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, free_all, NULL), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_true(pages_used(h) > 0);  // the current slabs, not collected
  assert_true(heap_trim(p) > 0);
  assert_int_equal(pages_used(h), 0);
  assert_int_equal(page_kept(p), 0);
  size_t len = __atomic_load_n(&p->data_len, __ATOMIC_RELAXED);
  assert_int_equal(resident(p->data, len), 0);
  mmpool_stats_t st;
  assert_int_equal(mmpool_stats(h, &st), 0);
  assert_int_equal(st.in_use_blocks, 0);
  assert_int_equal(mmpool_check(h), 0);
  // The thread's heap still works: its current slabs were taken away.
  for (int i = 0; i < TRIM_N; i++) {
    trim_blocks[i] = mmpool_malloc(h, 16 + (size_t)(i % 20) * 50);
    assert_non_null(trim_blocks[i]);
  }
  for (int i = 0; i < TRIM_N; i++) mmpool_free(trim_blocks[i]);
  assert_int_equal(mmpool_check(h), 0);
  free(trim_blocks);
  assert_int_equal(mmpool_close(h), 0);
}

// ---------------------------------------------------------------------------
// Batches of remote frees

enum { BT_N = 200 };
static mmpool_t *bt_pool;
static void *bt_blocks[BT_N];
static pthread_barrier_t bt_bar;

// Allocates a block of its own (so that it has a heap in the pool, and
// batches), frees the main thread's blocks, then (with wait) stays alive
// across two barriers.
static void *bt_freer(void *arg) {
  if (!mmpool_malloc(bt_pool, 64)) return "malloc";
  for (int i = 0; i < BT_N; i++)
    mmpool_free(bt_blocks[i]);
  if (arg) {
    pthread_barrier_wait(&bt_bar);
    pthread_barrier_wait(&bt_bar);
  }
  return NULL;
}

// Blocks in use as the API reports them (every thread's batches pushed
// first), and as the pool's descriptors hold them without that push.
static uint64_t in_use(mmpool_t *h) {
  mmpool_stats_t st;
  assert_int_equal(mmpool_stats(h, &st), 0);
  return st.in_use_blocks;
}
static uint64_t in_use_held(mmpool_t *h) {
  struct mmpool *p = pool_from_handle(h);
  mmpool_stats_t st;
  engine_lock(&p->lock);
  page_stats(p, &st);
  engine_unlock(&p->lock);
  return st.in_use_blocks;
}
static int count_block(void *blk, size_t size, void *arg) {
  (void)blk, (void)size;
  ++*(uint64_t *)arg;
  return 0;
}

// Fills bt_blocks from bt_pool and starts bt_freer on them; with wait, it
// returns once the thread has freed them all and waits at bt_bar.
static pthread_t bt_start(int wait) {
  uint64_t had = in_use_held(bt_pool);
  for (int i = 0; i < BT_N; i++)
    assert_non_null(bt_blocks[i] = mmpool_malloc(bt_pool, 64));
  assert_int_equal(in_use_held(bt_pool), had + BT_N);
  pthread_t t;
  assert_int_equal(
      pthread_create(&t, NULL, bt_freer, wait ? (void *)"wait" : NULL), 0);
  if (wait) pthread_barrier_wait(&bt_bar);
  return t;
}

// Lets thread t (bt_start's, with the same wait) end, and joins it.
static void bt_end(pthread_t t, int wait) {
  if (wait) pthread_barrier_wait(&bt_bar);
  void *ret;
  assert_int_equal(pthread_join(t, &ret), 0);
  assert_null(ret);
}

// A thread that frees blocks of another thread's slab keeps them in a
// batch of its own (core/heap.c, "Batches of remote frees"), still live to
// their slab. A freeze (here malloc_trim's, as a snapshot's, a fork's or a
// close's) pushes every thread's batches, a living thread's included, and
// so does the thread's exit: the pool then counts the blocks free. Before
// batches, each block went to its slab at once.
static void batched_frees_reach_their_slab(void **state) {
  (void)state;
  bt_pool = mmpool_open("live.batch", "size=64M");
  assert_non_null(bt_pool);
  struct mmpool *p = pool_from_handle(bt_pool);
  pthread_barrier_init(&bt_bar, NULL, 2);
  pthread_t t = bt_start(1);
  uint64_t before = in_use_held(bt_pool);  // the thread's block + its batch
  print_message("in use with the batches held: %llu\n",
                (unsigned long long)before);
  assert_true(before > 1);
  heap_trim(p);
  assert_int_equal(in_use_held(bt_pool), 1);  // the thread's own block
  assert_int_equal(mmpool_check(bt_pool), 0);
  bt_end(t, 1);
  // The exit: the thread's block stays live (its slab detached).
  bt_end(bt_start(0), 0);
  assert_int_equal(in_use_held(bt_pool), 2);
  assert_int_equal(mmpool_check(bt_pool), 0);
  pthread_barrier_destroy(&bt_bar);
  assert_int_equal(mmpool_close(bt_pool), 0);
}

// mmpool_walk and mmpool_stats while another thread, alive and idle, holds
// blocks it freed in its batches: both see them free (a walk that listed
// them would hand a program blocks it had freed as live ones).
static void walk_and_stats_see_batched_blocks_free(void **state) {
  (void)state;
  bt_pool = mmpool_open("live.batchwalk", "size=64M");
  assert_non_null(bt_pool);
  pthread_barrier_init(&bt_bar, NULL, 2);
  pthread_t t = bt_start(1);
  assert_true(in_use_held(bt_pool) > 1);  // a batch holds some
  uint64_t walked = 0;
  assert_int_equal(mmpool_walk(bt_pool, count_block, &walked), 0);
  assert_int_equal(walked, 1);  // the thread's own block
  assert_int_equal(in_use_held(bt_pool), 1);
  bt_end(t, 1);
  // The same through mmpool_stats.
  t = bt_start(1);
  assert_true(in_use_held(bt_pool) > 2);
  assert_int_equal(in_use(bt_pool), 2);  // the two threads' own blocks
  bt_end(t, 1);
  assert_int_equal(mmpool_check(bt_pool), 0);
  pthread_barrier_destroy(&bt_bar);
  assert_int_equal(mmpool_close(bt_pool), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(consumers_give_back_adopted_slabs),
      cmocka_unit_test(grown_blocks_reuse_empty_slabs),
      cmocka_unit_test(empty_slab_is_purged),
      cmocka_unit_test(trim_collects_every_thread),
      cmocka_unit_test(batched_frees_reach_their_slab),
      cmocka_unit_test(walk_and_stats_see_batched_blocks_free),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
