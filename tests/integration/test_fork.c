// test_fork.c: fork while other threads allocate from an anonymous pool.
//
// Worker threads keep rings of live blocks, replacing them at random: a new
// block is allocated and filled before it is published in its slot with an
// atomic exchange, and the block it displaces is verified and freed after,
// so a slot holds a complete, live block at every instant, including the
// instant of a fork. The child verifies and frees every slot's block (frees
// of blocks whose owner thread does not exist in the child), allocates and
// frees on its own, checks the pool, opens and closes a pool, and exits;
// alarm() turns a hang into a failure. The parent goes on allocating.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "itest.h"
#include "mmpool.h"

#define NTHREADS 4
#define RING 256
#define BLOCK_MAGIC 0x6d6d706f6f6c4b42ull

// Every block starts with this header; the rest is a pattern of tag.
struct blkhdr {
  uint64_t magic;
  uint64_t size;
  uint64_t tag;
  uint64_t pad;
};

struct worker {
  pthread_t tid;
  int index;
  mmpool_t *pool;
  _Atomic(struct blkhdr *) ring[RING];
  atomic_ulong ops;
  atomic_int bad; // a block found damaged
  atomic_int oom;
};

static mmpool_t *pool;
static atomic_int stop;
static struct worker workers[NTHREADS];

static size_t pick_size(uint64_t *rng) {
  uint64_t r = itest_rand(rng);
  if (r % 64 == 0)
    return 20000 + (size_t)(r >> 8) % 300000; // large blocks now and then
  return sizeof(struct blkhdr) + (size_t)(r >> 8) % 2000;
}

static struct blkhdr *blk_new(mmpool_t *p, size_t size, uint64_t tag) {
  struct blkhdr *b = mmpool_malloc(p, size);
  if (b == NULL)
    return NULL;
  b->magic = BLOCK_MAGIC;
  b->size = size;
  b->tag = tag;
  b->pad = 0;
  itest_fill_pattern(b + 1, size - sizeof *b, tag);
  return b;
}

// 1 when b is intact.
static int blk_ok(const struct blkhdr *b) {
  return b->magic == BLOCK_MAGIC && mmpool_usable_size(b) == b->size &&
         itest_check_pattern(b + 1, b->size - sizeof *b, b->tag);
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  uint64_t rng = 1000 + (uint64_t)w->index;
  uint64_t tag = (uint64_t)w->index << 40;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    unsigned k = (unsigned)(itest_rand(&rng) % RING);
    // Alternate between the test's pool and the default pool.
    tag++;
    mmpool_t *p = (tag & 1) ? w->pool : NULL;
    struct blkhdr *n = blk_new(p, pick_size(&rng), tag);
    if (n == NULL) {
      atomic_store(&w->oom, 1);
      continue;
    }
    struct blkhdr *old = atomic_exchange(&w->ring[k], n);
    if (old != NULL) {
      if (!blk_ok(old))
        atomic_store(&w->bad, 1);
      mmpool_free(old);
    }
    atomic_fetch_add_explicit(&w->ops, 1, memory_order_relaxed);
  }
  return NULL;
}

static void start_workers(mmpool_t *p) {
  atomic_store(&stop, 0);
  for (int i = 0; i < NTHREADS; i++) {
    struct worker *w = &workers[i];
    memset(w, 0, sizeof *w);
    w->index = i;
    w->pool = p;
    assert_int_equal(pthread_create(&w->tid, NULL, worker_main, w), 0);
  }
  // Wait until every worker has filled some of its ring.
  for (int i = 0; i < NTHREADS; i++)
    while (atomic_load(&workers[i].ops) < RING)
      usleep(1000);
}

static void stop_workers(void) {
  atomic_store(&stop, 1);
  for (int i = 0; i < NTHREADS; i++) {
    struct worker *w = &workers[i];
    assert_int_equal(pthread_join(w->tid, NULL), 0);
    assert_int_equal(atomic_load(&w->bad), 0);
    assert_int_equal(atomic_load(&w->oom), 0);
    for (int k = 0; k < RING; k++) {
      struct blkhdr *b = atomic_load(&w->ring[k]);
      if (b != NULL) {
        assert_true(blk_ok(b));
        mmpool_free(b);
      }
    }
  }
}

static void say(const char *msg) {
  ssize_t r = write(2, msg, strlen(msg));
  (void)r;
}

// The child after a fork from a multithreaded parent. Exit codes say what
// failed.
static int child_main(unsigned seed) {
  alarm(MMPOOL_SANITIZED ? 60 : 20);
  // Blocks the workers held at the fork: intact, and freeable here.
  for (int i = 0; i < NTHREADS; i++)
    for (int k = 0; k < RING; k++) {
      struct blkhdr *b = atomic_load(&workers[i].ring[k]);
      if (b == NULL)
        continue;
      if (!blk_ok(b)) {
        say("child: a worker's block is damaged\n");
        return 10;
      }
      if (mmpool_of(b) != (b->tag & 1 ? pool : mmpool_get("default")))
        return 11;
      mmpool_free(b);
    }
  // Allocate and free on our own, from both pools.
  enum { N = 1500 };
  static struct blkhdr *mine[N];
  uint64_t rng = seed;
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < N; i++) {
      mine[i] = blk_new(i % 2 ? pool : NULL, pick_size(&rng), seed * N + i);
      if (mine[i] == NULL) {
        say("child: allocation failed\n");
        return 12;
      }
    }
    for (int i = 0; i < N; i++) {
      if (!blk_ok(mine[i]))
        return 13;
      mmpool_free(mine[i]);
    }
  }
  // Alone in the process, the child may check the pools.
  if (mmpool_check(pool) != 0) {
    say("child: mmpool_check(pool): ");
    say(mmpool_last_error());
    say("\n");
    return 14;
  }
  if (mmpool_check(NULL) != 0) {
    say("child: mmpool_check(default): ");
    say(mmpool_last_error());
    say("\n");
    return 15;
  }
  // The pool table works: open, use, close a pool.
  mmpool_t *q = mmpool_open("child-pool", "size=16M");
  if (q == NULL)
    return 16;
  void *x = mmpool_malloc(q, 5000);
  if (x == NULL || mmpool_of(x) != q)
    return 17;
  mmpool_free(x);
  if (mmpool_close(q) != 0)
    return 18;
  return 0;
}

static int wait_child(pid_t pid) {
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      return -1;
  return st;
}

static void expect_clean_exit(int st, int round) {
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    print_error("fork %d: child %s %d\n", round,
                WIFEXITED(st) ? "exited with" : "killed by signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

// Forks `forks` times while the workers run; each child must exit 0.
static void fork_rounds(int forks) {
  pool = mmpool_open("forkpool", "size=1G");
  if (pool == NULL)
    print_error("mmpool_open: \"%s\"\n", mmpool_last_error());
  assert_non_null(pool);
  start_workers(pool);
  uint64_t rng = 99;
  for (int i = 0; i < forks; i++) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
      _exit(child_main((unsigned)i + 1));
    assert_true(pid > 0);
    // The parent goes on allocating while the child runs.
    enum { M = 200 };
    struct blkhdr *mine[M];
    for (int j = 0; j < M; j++) {
      mine[j] = blk_new(j % 2 ? pool : NULL, pick_size(&rng),
                        ((uint64_t)i << 20) + (uint64_t)j);
      assert_non_null(mine[j]);
    }
    for (int j = 0; j < M; j++) {
      assert_true(blk_ok(mine[j]));
      mmpool_free(mine[j]);
    }
    expect_clean_exit(wait_child(pid), i);
  }
  stop_workers();
  assert_int_equal(mmpool_check(pool), 0);
  assert_int_equal(mmpool_check(NULL), 0);
  mmpool_stats_t st;
  assert_int_equal(mmpool_stats(pool, &st), 0);
  assert_int_equal(st.in_use_blocks, 0);
  assert_int_equal(mmpool_close(pool), 0);
  pool = NULL;
}

static void test_fork_once(void **state) {
  (void)state;
  fork_rounds(1);
}

static void test_fork_loop(void **state) {
  (void)state;
  fork_rounds(50);
}

// A child's stores and frees do not reach the parent's anonymous pool.
static void test_fork_isolation(void **state) {
  (void)state;
  mmpool_t *p = mmpool_open("isolated", "size=256M");
  assert_non_null(p);
  enum { N = 1000 };
  struct blkhdr *blk[N];
  uint64_t rng = 5;
  for (int i = 0; i < N; i++) {
    blk[i] = blk_new(p, pick_size(&rng), (uint64_t)i + 1);
    assert_non_null(blk[i]);
  }
  mmpool_stats_t before, after;
  assert_int_equal(mmpool_stats(p, &before), 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(MMPOOL_SANITIZED ? 60 : 20);
    for (int i = 0; i < N; i++) {
      if (!blk_ok(blk[i]))
        _exit(10);
      memset(blk[i], 0xee, blk[i]->size);
      mmpool_free(blk[i]);
    }
    // New blocks, likely at the same addresses, with other contents.
    uint64_t r2 = 6;
    for (int i = 0; i < N; i++)
      if (blk_new(p, pick_size(&r2), 0xc0ffee00u + (uint64_t)i) == NULL)
        _exit(11);
    _exit(mmpool_check(p) == 0 ? 0 : 12);
  }
  assert_true(pid > 0);
  expect_clean_exit(wait_child(pid), 0);
  for (int i = 0; i < N; i++)
    assert_true(blk_ok(blk[i]));
  assert_int_equal(mmpool_stats(p, &after), 0);
  assert_int_equal(after.in_use_blocks, before.in_use_blocks);
  assert_int_equal(after.in_use, before.in_use);
  for (int i = 0; i < N; i++)
    mmpool_free(blk[i]);
  assert_int_equal(mmpool_check(p), 0);
  assert_int_equal(mmpool_close(p), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fork_isolation),
      cmocka_unit_test(test_fork_once),
      cmocka_unit_test(test_fork_loop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
