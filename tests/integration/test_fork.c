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
  if (b == NULL) return NULL;
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
      if (!blk_ok(old)) atomic_store(&w->bad, 1);
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
static int child_rounds = 2, child_blocks = 1500;  // fork_many: fewer
// A shared file pool is copied for the child before the fork, while the
// workers run (docs/engine.md, "fork"): their blocks may hold older bytes
// there, or be ones the copy does not know yet; the child leaves them.
static int child_skip_workers;

static int child_main(unsigned seed) {
  alarm(MMPOOL_SANITIZED ? 60 : 20);
  // Blocks the workers held at the fork: intact, and freeable here.
  for (int i = 0; i < NTHREADS && !child_skip_workers; i++)
    for (int k = 0; k < RING; k++) {
      struct blkhdr *b = atomic_load(&workers[i].ring[k]);
      if (b == NULL) continue;
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
  for (int round = 0; round < child_rounds; round++) {
    for (int i = 0; i < child_blocks; i++) {
      mine[i] = blk_new(i % 2 ? pool : NULL, pick_size(&rng), seed * N + i);
      if (mine[i] == NULL) {
        say("child: allocation failed\n");
        return 12;
      }
    }
    for (int i = 0; i < child_blocks; i++) {
      if (!blk_ok(mine[i])) return 13;
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
  if (q == NULL) return 16;
  void *x = mmpool_malloc(q, 5000);
  if (x == NULL || mmpool_of(x) != q) return 17;
  mmpool_free(x);
  if (mmpool_close(q) != 0) return 18;
  return 0;
}

static int wait_child(pid_t pid) {
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
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

// Forks `forks` times while the workers run (in the pool opened with opts
// and the default pool); each child must exit 0.
static void fork_rounds_in(int forks, const char *opts) {
  pool = mmpool_open("forkpool", opts);
  if (pool == NULL) print_error("mmpool_open: \"%s\"\n", mmpool_last_error());
  assert_non_null(pool);
  start_workers(pool);
  uint64_t rng = 99;
  for (int i = 0; i < forks; i++) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(child_main((unsigned)i + 1));
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

static void fork_rounds(int forks) { fork_rounds_in(forks, "size=1G"); }

// A thousand forks while 4 threads allocate and free (in an anonymous pool
// and the default pool): each child finds the workers' blocks intact, frees
// them, allocates, and passes mmpool_check on both pools, whatever the
// threads were doing at the fork (heap_fork_child recounts their slabs).
// (test_fork_file_threads: the same in a shared file pool.)
static int fork_count(void) {
  const char *e = getenv("MMPOOL_TEST_FORKS");
  return e && atoi(e) > 0 ? atoi(e) : 1000;
}

static void test_fork_thousand(void **state) {
  (void)state;
  child_rounds = 1, child_blocks = 20;
  fork_rounds_in(MMPOOL_SANITIZED ? 200 : fork_count(), "size=1G");
  child_rounds = 2, child_blocks = 1500;
}

// The same with the workers in a shared file pool: each child's own copy
// of it passes mmpool_check and serves the child (the workers' blocks are
// left alone: see child_skip_workers).
static void test_fork_file_threads(void **state) {
  (void)state;
  char *dir = itest_mkdtemp("forkfile");
  assert_non_null(dir);
  if (dir == NULL) return;
  char opts[4200];
  snprintf(opts, sizeof opts, "file=%s/workers.pool size=1G", dir);
  child_rounds = 1, child_blocks = 200, child_skip_workers = 1;
  fork_rounds_in(MMPOOL_SANITIZED ? 50 : 200, opts);
  child_rounds = 2, child_blocks = 1500, child_skip_workers = 0;
  itest_rmtree(dir);
  free(dir);
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
      if (!blk_ok(blk[i])) _exit(10);
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

// ---------------------------------------------------------------------------
// A mode=shared file pool across fork: the child gets its own copy of the
// pool (core/pool.c: an anonymous pool from then on). It reads what the
// parent had, allocates, frees and grows normally, and nothing it does
// reaches the parent or the file; nothing the parent does after the fork
// reaches the child. (Before, the child's allocations failed with EBUSY,
// its frees were ignored, and its stores showed in the parent.)

// In a forked child: a crash ends the child with its signal (cmocka's
// handlers would otherwise resume the test runner inside the child).
static void child_default_signals(void) {
  static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    signal(sigs[i], SIG_DFL);
}

// What a fork child of a shared file pool found wrong, as exit status bits.
enum {
  SH_READ = 1,   // an inherited block does not hold the parent's data
  SH_ALLOC = 2,  // an allocation failed
  SH_FREE = 4,   // a block handed out twice, or a bad free
  SH_PARENT = 8, // a store the parent made after the fork shows here
  SH_GRAND = 16, // the grandchild did not exit 0
  SH_CHECK = 32, // mmpool_check failed or closing failed
};

#define SH_KEEP "kept by the parent"
#define SH_INH "inherited by the child"
#define SH_BIG ((size_t)4 << 20)

struct shared_blocks {
  mmpool_t *pool;
  char *keep, *x, *inh;
  unsigned char *big;
};

// 1 when the parent's blocks hold what the parent wrote.
static int shared_intact(const struct shared_blocks *s) {
  return strcmp(s->keep, SH_KEEP) == 0 && strcmp(s->inh, SH_INH) == 0 &&
         itest_check_pattern(s->big, SH_BIG, 41);
}

static int shared_grandchild(const struct shared_blocks *s,
                             const unsigned char *grown, size_t grown_len) {
  alarm(MMPOOL_SANITIZED ? 60 : 20);
  if (!shared_intact(s)) return 1;
  for (size_t i = 0; i < grown_len; i += 4096)
    if (grown[i] != 7) return 2;
  return 0;
}

static int shared_child(const struct shared_blocks *s) {
  child_default_signals(); // the grandchild inherits them
  alarm(MMPOOL_SANITIZED ? 60 : 20);
  int bad = 0;
  if (!shared_intact(s)) bad |= SH_READ;
  // The parent frees x and writes into keep meanwhile: neither shows here.
  usleep(200000);
  if (strcmp(s->x, "freed by the parent after the fork") != 0) bad |= SH_PARENT;
  if (!shared_intact(s)) bad |= SH_PARENT;
  // Allocations of every kind, small to large, and frees.
  static const size_t sizes[] = {64, 48, 0, 1000, 100000, 200000, 4 << 20};
  void *got[64];
  int n = 0;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    got[n] = mmpool_malloc(s->pool, sizes[i]);
    if (got[n] == NULL) bad |= SH_ALLOC;
    else memset(got[n], 0x5c, sizes[i]), n++;
    got[n] = mmpool_calloc(s->pool, 1, sizes[i] + 1);
    if (got[n] == NULL) bad |= SH_ALLOC;
    else n++;
  }
  for (int i = 0; i < 50 && n < 64; i++) {
    got[n] = mmpool_malloc(s->pool, 64);
    if (got[n] == NULL) bad |= SH_ALLOC;
    else if (got[n] == s->x || got[n] == s->inh || got[n] == s->keep)
      bad |= SH_FREE;  // a live block handed out again
    else strcpy(got[n], "child's"), n++;
  }
  // Its own stores stay its own (checked by the parent), and a free of an
  // inherited block frees it here only.
  strcpy(s->keep, "written by the child");
  mmpool_free(s->x);  // live here: the parent's free did not reach us
  // Growth: a large block past the inherited data.
  unsigned char *grown = mmpool_malloc(s->pool, 32u << 20);
  size_t grown_len = 0;
  if (grown == NULL) bad |= SH_ALLOC;
  else memset(grown, 7, grown_len = 32u << 20);
  if (mmpool_check(s->pool) != 0) {
    say("child: mmpool_check: ");
    say(mmpool_last_error());
    say("\n");
    bad |= SH_CHECK;
  }
  for (int i = 0; i < n; i++) mmpool_free(got[i]);
  // A grandchild reads the inherited and the grown blocks.
  strcpy(s->keep, SH_KEEP);
  fflush(NULL);
  pid_t g = fork();
  if (g == 0) _exit(shared_grandchild(s, grown, grown_len));
  if (g < 0) {
    bad |= SH_GRAND;
  } else {
    int st;
    while (waitpid(g, &st, 0) < 0)
      if (errno != EINTR) break;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad |= SH_GRAND;
  }
  if (mmpool_check(s->pool) != 0 || mmpool_close(s->pool) != 0) {
    say("child: check or close: ");
    say(mmpool_last_error());
    say("\n");
    bad |= SH_CHECK;
  }
  return bad;
}

static char *shared_dir; // removed by the teardown, even after a failure

static int shared_teardown(void **state) {
  (void)state;
  mmpool_t *p = mmpool_get("forkshared");
  if (p != NULL) mmpool_close(p);
  itest_rmtree(shared_dir);
  free(shared_dir);
  shared_dir = NULL;
  return 0;
}

static void test_fork_shared_file(void **state) {
  (void)state;
  char *dir = shared_dir = itest_mkdtemp("fork");
  assert_non_null(dir);
  char path[4096], opts[4200];
  snprintf(path, sizeof path, "%s/shared.pool", dir);
  snprintf(opts, sizeof opts, "file=%s size=256M", path);
  struct shared_blocks s;
  s.pool = mmpool_open("forkshared", opts);
  if (s.pool == NULL)
    print_error("mmpool_open(%s): \"%s\"\n", opts, mmpool_last_error());
  assert_non_null(s.pool);
  mmpool_t *p = s.pool;
  s.keep = mmpool_malloc(p, 64); // keeps the slab of x non-empty
  s.x = mmpool_malloc(p, 64);
  s.inh = mmpool_malloc(p, 64);
  s.big = mmpool_malloc(p, SH_BIG);
  assert_non_null(s.keep);
  assert_non_null(s.x);
  assert_non_null(s.inh);
  assert_non_null(s.big);
  strcpy(s.keep, SH_KEEP);
  strcpy(s.x, "freed by the parent after the fork");
  memset(s.inh, 0, 64);
  strcpy(s.inh, SH_INH);
  itest_fill_pattern(s.big, SH_BIG, 41);
  assert_int_equal(mmpool_set_root(p, 0, s.inh), 0);
  mmpool_stats_t before, after;
  assert_int_equal(mmpool_stats(p, &before), 0);

  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) _exit(shared_child(&s));
  assert_true(pid > 0);
  // The parent goes on managing the pool: frees x, allocates.
  memset(s.x, 'P', 32);
  mmpool_free(s.x);
  char *y = mmpool_malloc(p, 200);
  assert_non_null(y);
  strcpy(y, "allocated by the parent while the child runs");
  int st = wait_child(pid);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    print_error("shared-pool child %s %d (bits: 1 read, 2 allocation, 4 "
                "block handed out twice, 8 saw the parent's stores, 16 "
                "grandchild, 32 check or close)\n",
                WIFEXITED(st) ? "exited with" : "killed by signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
  // (The child's status is asserted at the end, after the parent's side.)

  // The child's stores, frees and close changed nothing of the parent's.
  assert_true(shared_intact(&s));
  assert_int_equal(mmpool_usable_size(s.inh), 64);
  assert_int_equal(mmpool_usable_size(s.keep), 64);
  assert_int_equal(mmpool_usable_size(s.big), SH_BIG);
  assert_ptr_equal(mmpool_of(s.inh), p);
  assert_ptr_equal(mmpool_get("forkshared"), p);
  assert_int_equal(mmpool_stats(p, &after), 0);
  assert_int_equal(after.in_use_blocks, before.in_use_blocks); // -x +y
  if (mmpool_check(p) != 0)
    print_error("parent: mmpool_check: \"%s\"\n", mmpool_last_error());
  assert_int_equal(mmpool_check(p), 0);
  void *z = mmpool_malloc(p, 5000);
  assert_non_null(z);
  assert_ptr_equal(mmpool_of(z), p);
  mmpool_free(z);
  mmpool_free(y);
  assert_int_equal(mmpool_check(p), 0);
  assert_int_equal(mmpool_close(p), 0);

  // The file re-attaches cleanly, with the parent's blocks.
  snprintf(opts, sizeof opts, "file=%s", path);
  p = mmpool_open("forkshared", opts);
  if (p == NULL) print_error("re-attach: \"%s\"\n", mmpool_last_error());
  assert_non_null(p);
  assert_int_equal(mmpool_check(p), 0);
  char *r = mmpool_get_root(p, 0);
  assert_ptr_equal(r, s.inh);
  assert_string_equal(r, SH_INH);
  assert_int_equal(mmpool_usable_size(r), 64);
  assert_int_equal(mmpool_stats(p, &after), 0);
  assert_int_equal(after.in_use_blocks, before.in_use_blocks - 1); // x
  assert_int_equal(mmpool_close(p), 0);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fork_isolation),
      cmocka_unit_test(test_fork_once),
      cmocka_unit_test(test_fork_loop),
      cmocka_unit_test(test_fork_thousand),
      cmocka_unit_test(test_fork_file_threads),
      cmocka_unit_test_teardown(test_fork_shared_file, shared_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
