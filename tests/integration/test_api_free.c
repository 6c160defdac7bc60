// test_api_free.c: freeing through include/mmpool.h: free keeps errno,
// pointers that are no block of any pool are reported and ignored, pointers
// inside a pool that are no block there abort, a block freed twice by
// another thread aborts, and blocks freed by a thread that does not own
// them are counted at once and reused. (test_misuse.c checks each misuse
// and its message.)
//
// Cases that could take the whole process down if the engine got them wrong
// (frees of foreign pointers) run in a forked child.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
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

static void test_free_errno(void **state) {
  (void)state;
  mmpool_t *p = itest_open("fe", "size=64M");
  errno = 1234;
  mmpool_free(NULL);
  assert_int_equal(errno, 1234);
  static const size_t sizes[] = {0, 10, 5000, 100000, 3 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *b = mmpool_malloc(p, sizes[i]);
    assert_non_null(b);
    errno = 1234;
    mmpool_free(b);
    assert_int_equal(errno, 1234);
  }
  mmpool_stats_t st;
  itest_stats(p, &st);
  assert_int_equal(st.in_use_blocks, 0);
  assert_int_equal(mmpool_usable_size(NULL), 0);
  int local;
  assert_int_equal(mmpool_usable_size(&local), 0);
  void *g = malloc(64);
  assert_int_equal(mmpool_usable_size(g), 0);
  free(g);
  itest_close(p);
}

// Pointers that are no block of any pool, by kind. Those of no pool are
// reported and ignored; those inside the pool abort (misuse_from below).
enum { misuse_from = 2, misuse_to = 8 };  // kinds [from, to] abort
static const char *const foreign_kinds[] = {
    "a stack address",
    "a glibc malloc block",
    "inside a small block (block + 8)",
    "inside a large block (block + 4096)",
    "a large block's second page",
    "the pool's header (its base)",
    "the pool's page descriptors (base + 4096)",
    "the pool's never used data area (base + 48M)",
    "the last bytes of the pool's range",
    "address 16",
    "an address in the pool window where no pool is",
};

// Run in a child: frees the pointer of kind `which`, then checks that
// nothing changed. 0 when all is well, another code says what went wrong.
static int foreign_free(int which) {
  mmpool_t *p = mmpool_open("ff", "size=64M");
  if (p == NULL) return 10;
  unsigned char *b = mmpool_malloc(p, 100);
  unsigned char *big = mmpool_malloc(p, 200000);
  if (b == NULL || big == NULL) return 11;
  memset(b, 0x11, 100);
  memset(big, 0x22, 200000);
  mmpool_stats_t before, after;
  if (mmpool_stats(p, &before) != 0) return 12;
  int local = 5;
  unsigned char *g = malloc(100);
  if (g == NULL) return 13;
  memset(g, 0x33, 100);
  char *base = mmpool_base(p);
  void *bad[] = {&local,
                 g,
                 b + 8,
                 big + 4096,
                 big + 65536,
                 base,
                 base + 4096,
                 base + 48 * MiB,
                 base + 64 * MiB - 16,
                 (void *)(uintptr_t)16,
                 (void *)(uintptr_t)0x3e0000000000ull};
  errno = 1234;
  mmpool_free(bad[which]);
  if (errno != 1234) return 20;
  if (local != 5 || g[99] != 0x33) return 21;
  free(g);
  if (mmpool_stats(p, &after) != 0) return 22;
  if (after.in_use_blocks != before.in_use_blocks ||
      after.in_use != before.in_use)
    return 23;
  if (mmpool_usable_size(b) != 100 || mmpool_usable_size(big) != 200000)
    return 24;
  for (int i = 0; i < 100; i++)
    if (b[i] != 0x11) return 25;
  if (mmpool_check(p) != 0) return 26;
  mmpool_free(b);
  mmpool_free(big);
  if (mmpool_check(p) != 0 || mmpool_close(p) != 0) return 27;
  return 0;
}

// "A pointer that no pool owns is reported (one line on stderr) and
// ignored; a pointer inside a pool that is no live block there stops the
// program (SIGABRT, one line)": each kind in its own child, so one abort
// hides no other.
static void test_free_foreign(void **state) {
  (void)state;
  int failed = 0;
  for (size_t i = 0; i < sizeof foreign_kinds / sizeof foreign_kinds[0]; i++) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      // The expected abort's line would clutter the test's output.
      if (i >= misuse_from && i <= misuse_to) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) dup2(fd, 2);
      }
      _exit(foreign_free((int)i));
    }
    assert_true(pid > 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    int stop = i >= misuse_from && i <= misuse_to;
    int ok = stop ? WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT
                  : WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!ok) {
      print_error("mmpool_free(%s): child %s %d (expected %s)\n",
                  foreign_kinds[i],
                  WIFEXITED(st) ? "exited with code" : "killed by signal",
                  WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                  stop ? "SIGABRT" : "exit 0");
      failed++;
    }
  }
  assert_int_equal(failed, 0);
}

// In a forked child: a crash ends the child with its signal (cmocka's
// handlers would otherwise resume the test runner inside the child).
static void child_default_signals(void) {
  static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    signal(sigs[i], SIG_DFL);
}

// Run in a child: committed data above the pool's top. Large blocks grow the
// committed data ahead of the pages in use; the engine used to commit page
// descriptors only for the pages in use (rounded up), so a free or
// usable_size of an address in the committed data beyond them read an
// unmapped descriptor (SIGSEGV) or a garbage one (abort). Such a free is a
// misuse now: it stops the program with SIGABRT and a message, never a
// SIGSEGV. which = 0: usable_size only, 0 when all is well, another code
// says what went wrong; which = 1..3: frees one of three addresses.
static int free_above_top(int which) {
  mmpool_t *p = mmpool_open("top", "size=1G");
  if (p == NULL) return 10;
  char *base = mmpool_base(p);
  enum { MAXB = 200 };
  static unsigned char *blk[MAXB];
  int n = 0;
  uintptr_t end = 0, committed = 0;
  // About 60 MiB at least, until the committed data reaches 3 pages past
  // the last block. Every byte below base + mapped is committed: the
  // header, the descriptors and the gap before the data come first.
  do {
    if (n == MAXB) return 11;
    blk[n] = mmpool_malloc(p, MiB);
    if (blk[n] == NULL) return 12;
    memset(blk[n], n & 0xff, MiB);
    if ((uintptr_t)blk[n] + MiB > end) end = (uintptr_t)blk[n] + MiB;
    n++;
    mmpool_stats_t st;
    if (mmpool_stats(p, &st) != 0) return 13;
    committed = (uintptr_t)base + st.mapped;
  } while (n < 60 || committed < end + 3 * 65536);
  mmpool_stats_t before, after;
  if (mmpool_stats(p, &before) != 0) return 13;
  // Two pages past the last block, then every page up to the committed
  // end (the last 16 bytes of it too).
  unsigned char *q = (unsigned char *)end + 2 * 65536;
  void *victim[] = {q, (void *)end, (void *)(committed - 16)};
  if (which >= 1 && which <= 3) {
    int fd = open("/dev/null", O_WRONLY);  // the expected abort's line
    if (fd >= 0) dup2(fd, 2);
    mmpool_free(victim[which - 1]);
    return 15;  // not stopped
  }
  if (mmpool_usable_size(q) != 0) return 14;
  for (uintptr_t a = end; a < committed; a += 65536)
    if (mmpool_usable_size((void *)a) != 0) return 16;
  if (mmpool_usable_size((void *)(committed - 16)) != 0) return 16;
  // Nothing changed.
  if (mmpool_stats(p, &after) != 0) return 17;
  if (after.in_use_blocks != before.in_use_blocks ||
      after.in_use != before.in_use || after.in_use_blocks != (size_t)n)
    return 18;
  for (int i = 0; i < n; i++)
    if (mmpool_usable_size(blk[i]) != MiB || blk[i][0] != (i & 0xff) ||
        blk[i][MiB - 1] != (i & 0xff))
      return 19;
  if (mmpool_check(p) != 0) return 20;
  for (int i = 0; i < n; i++)
    mmpool_free(blk[i]);
  if (mmpool_check(p) != 0 || mmpool_close(p) != 0) return 21;
  return 0;
}

static void test_free_above_top(void **state) {
  (void)state;
  for (int which = 0; which <= 3; which++) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      child_default_signals();
      alarm(MMPOOL_SANITIZED ? 60 : 20);
      _exit(free_above_top(which));
    }
    assert_true(pid > 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    int ok = which == 0 ? WIFEXITED(st) && WEXITSTATUS(st) == 0
                        : WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
    if (!ok)
      print_error("free/usable_size above the top (%d): child %s %d\n", which,
                  WIFEXITED(st) ? "exited with code" : "killed by signal",
                  WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    assert_true(ok);
  }
}

static void *free_twice(void *arg) {
  mmpool_free(arg);
  mmpool_free(arg);
  return NULL;
}

// "A block freed twice aborts the program when it is detected": a block
// freed twice in a row by a thread that does not own it used to put a loop
// in the owner's list of remote frees, and the owner then hung.
static void test_remote_double_free(void **state) {
  (void)state;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    child_default_signals();
    alarm(10);
    mmpool_t *p = mmpool_open("df", "size=64M");
    if (p == NULL) _exit(10);
    void *x = mmpool_malloc(p, 64);
    if (x == NULL) _exit(11);
    pthread_t t;
    if (pthread_create(&t, NULL, free_twice, x) != 0) _exit(12);
    pthread_join(t, NULL);
    // The owner collects the remote frees.
    for (int i = 0; i < 2000; i++)
      if (mmpool_malloc(p, 64) == NULL) _exit(13);
    _exit(0);
  }
  assert_true(pid > 0);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT)
    print_error("remote double free: child %s %d, expected SIGABRT (%d)\n",
                WIFEXITED(st) ? "exited with code" : "killed by signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), SIGABRT);
  assert_true(WIFSIGNALED(st));
  assert_int_not_equal(WTERMSIG(st), SIGALRM); // a hang
  assert_int_equal(WTERMSIG(st), SIGABRT);
}

// Frees from another thread are counted at once.
struct xfree {
  void **blk;
  int n;
};

static void *free_all(void *arg) {
  struct xfree *x = arg;
  for (int i = 0; i < x->n; i++)
    mmpool_free(x->blk[i]);
  return NULL;
}

struct xalloc {
  mmpool_t *pool;
  void **blk;
  int n;
};

static void *alloc_all(void *arg) {
  struct xalloc *x = arg;
  for (int i = 0; i < x->n; i++) {
    x->blk[i] = mmpool_malloc(x->pool, 1 + (size_t)(i * 37) % 3000);
    if (x->blk[i] == NULL) return (void *)1;
    memset(x->blk[i], 0x3c, 1);
  }
  return NULL;
}

static void test_cross_thread_free(void **state) {
  (void)state;
  mmpool_t *p = itest_open("xt", "size=64M");
  enum { N = 2000 };
  void *blk[N];
  uint64_t rng = 3;
  for (int i = 0; i < N; i++) {
    blk[i] = mmpool_malloc(p, 1 + itest_rand(&rng) % 2000);
    assert_non_null(blk[i]);
  }
  struct xfree x = {blk, N};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, free_all, &x), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  mmpool_stats_t st;
  itest_stats(p, &st);
  assert_int_equal(st.in_use_blocks, 0);
  assert_int_equal(st.in_use, 0);
  struct itest_seen s = {0, 0, NULL, NULL, 0, 0};
  assert_int_equal(mmpool_walk(p, itest_record, &s), 0);
  assert_int_equal(s.n, 0);
  assert_int_equal(mmpool_check(p), 0);
  // The blocks are reusable by the thread that allocated them.
  for (int i = 0; i < N; i++) {
    blk[i] = mmpool_malloc(p, 100);
    assert_non_null(blk[i]);
  }
  for (int i = 0; i < N; i++)
    mmpool_free(blk[i]);
  assert_int_equal(mmpool_check(p), 0);
  // Blocks of a thread that has exited, freed here, then reused.
  for (int round = 0; round < 3; round++) {
    struct xalloc xa = {p, blk, N};
    void *ret = (void *)2;
    assert_int_equal(pthread_create(&t, NULL, alloc_all, &xa), 0);
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_null(ret);
    itest_stats(p, &st);
    assert_int_equal(st.in_use_blocks, N);
    for (int i = 0; i < N; i++) {
      assert_ptr_equal(mmpool_of(blk[i]), p);
      assert_int_equal(mmpool_usable_size(blk[i]), 1 + (size_t)(i * 37) % 3000);
      mmpool_free(blk[i]);
    }
    itest_stats(p, &st);
    assert_int_equal(st.in_use_blocks, 0);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(mmpool_check(p), 0);
  }
  itest_close(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_free_errno, itest_teardown),
      cmocka_unit_test_teardown(test_free_foreign, itest_teardown),
      cmocka_unit_test_teardown(test_free_above_top, itest_teardown),
      cmocka_unit_test_teardown(test_remote_double_free, itest_teardown),
      cmocka_unit_test_teardown(test_cross_thread_free, itest_teardown),
  };
  return cmocka_run_group_tests(tests, itest_group_setup, NULL);
}
