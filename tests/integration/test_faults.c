// test_faults.c: operating-system failures injected at every step of a
// file pool's life (issue 12, item 7).
//
// os_fault_arm (core/os.h) makes the Nth call of one kind (mmap, mprotect,
// ftruncate, fallocate, open, fsync) fail with a chosen errno. For each
// kind, the test sweeps N from 1 until the scenario runs without reaching
// the Nth call: open a file pool at a fixed base, allocate enough to grow
// it several times (its reservation too), close it, attach it again,
// allocate and free, close. At every N, each step either works or fails
// cleanly (NULL or -1, errno set, a one-line mmpool_last_error); nothing
// crashes; and once the seam is disarmed the heap is usable: a pool that
// did open passes mmpool_check and closes, nothing of the pool stays
// mapped, and the file attaches again (with `recover` when it was left
// unclean) at the same base. Each N runs in a child process of its own,
// so that a crash names its kind and N. Links the static core (os.h).
#define _GNU_SOURCE
#include <sys/wait.h>

#include "itest.h"
#include "os.h"

#define MiB ((size_t)1 << 20)
#define BASE 0x3e8000000000ul
#define NBLK 14  // 8 MiB each: past the first 64 MiB reserved

static char *dir;
static char path[512], opts[600], ropts[640];

static int setup(void **state) {
  (void)state;
  dir = itest_mkdtemp("faults");
  if (!dir) return -1;
  snprintf(path, sizeof path, "%s/f.pool", dir);
  snprintf(opts, sizeof opts, "file=%s size=1G base=%#lx", path, BASE);
  snprintf(ropts, sizeof ropts, "%s recover", opts);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  itest_rmtree(dir);
  free(dir);
  return 0;
}

// A failed call: errno set, one line of error. Exits the child otherwise.
static void clean_failure(const char *what, int line) {
  int e = errno;
  const char *m = mmpool_last_error();
  if (e == 0 || m == NULL || m[0] == 0 || strchr(m, '\n') != NULL) {
    fprintf(stderr, "line %d: %s failed unclean: errno %d, message \"%s\"\n",
            line, what, e, m ? m : "(null)");
    _exit(10);
  }
}
#define FAILED(what) clean_failure(what, __LINE__)

// Whether anything is mapped in the pool's capacity.
static int mapped_in_range(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[512];
  int n = 0;
  while (f && fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo < BASE + (1ul << 30) &&
        hi > BASE)
      n++;
  }
  if (f) fclose(f);
  return n;
}

// The scenario; returns with the pool closed or still open in *pp.
static void scenario(mmpool_t **pp, void **blk) {
  errno = 0;
  mmpool_t *p = *pp = mmpool_open("faults", opts);
  if (!p) return FAILED("open (create)");
  for (int i = 0; i < NBLK; i++) {
    errno = 0;
    blk[i] = mmpool_malloc(p, 8 * MiB);
    if (!blk[i]) return FAILED("malloc");
    memset(blk[i], i + 1, 4096);
  }
  for (int i = 0; i < 100; i++) {
    void *s = mmpool_malloc(p, 40 + i);
    if (!s) return FAILED("small malloc");
    mmpool_free(s);
  }
  errno = 0;
  *pp = NULL;
  if (mmpool_close(p) != 0) return FAILED("close");
  memset(blk, 0, NBLK * sizeof *blk);
  errno = 0;
  p = *pp = mmpool_open("faults", opts);
  if (!p) return FAILED("open (attach)");
  for (int i = 0; i < NBLK; i++) {
    errno = 0;
    blk[i] = mmpool_malloc(p, 8 * MiB);
    if (!blk[i]) return FAILED("malloc after attach");
    memset(blk[i], i + 1, 4096);
  }
  for (int i = 0; i < NBLK; i += 2) {
    mmpool_free(blk[i]);
    blk[i] = NULL;
  }
  errno = 0;
  *pp = NULL;
  if (mmpool_close(p) != 0) return FAILED("close after attach");
}

// One N of one kind, in this (child) process: 0 when the fault did not
// fire (the sweep of this kind is over), 1 when it did; exits on a fault.
static int one(unsigned kind, unsigned n, int err) {
  unlink(path);
  mmpool_t *p = NULL;
  void *blk[NBLK] = {0};
  os_fault_arm(kind, n, err);
  scenario(&p, blk);
  unsigned fired = os_fault_fired();
  os_fault_arm(0, 0, 0);
  if (p) {
    if (mmpool_check(p) != 0) {
      fprintf(stderr, "mmpool_check after the fault: %s\n",
              mmpool_last_error());
      _exit(11);
    }
    void *b = mmpool_malloc(p, 3 * MiB);
    if (!b) {
      fprintf(stderr, "malloc after the fault: %s\n", mmpool_last_error());
      _exit(12);
    }
    mmpool_free(b);
    for (int i = 0; i < NBLK; i++) mmpool_free(blk[i]);
    if (mmpool_close(p) != 0) {
      fprintf(stderr, "close after the fault: %s\n", mmpool_last_error());
      _exit(13);
    }
  }
  if (mapped_in_range()) {
    fprintf(stderr, "the pool's range is still mapped after close\n");
    _exit(14);
  }
  // The file attaches again (recover when it was left unclean), at the
  // same base: nothing leaked is in the way.
  if (itest_file_size(path) > 0) {
    mmpool_t *q = mmpool_open("faults", opts);
    if (!q && errno == EUCLEAN) q = mmpool_open("faults", ropts);
    if (!q) {
      fprintf(stderr, "reattach after the fault: %s\n", mmpool_last_error());
      _exit(15);
    }
    if (mmpool_check(q) != 0) _exit(16);
    void *b = mmpool_malloc(q, 5 * MiB);
    if (!b) _exit(17);
    mmpool_free(b);
    if (mmpool_close(q) != 0) _exit(18);
  } else {
    // No pool file left (or an empty one): a new pool can be made there.
    unlink(path);
    mmpool_t *q = mmpool_open("faults", opts);
    if (!q) {
      fprintf(stderr, "create after the fault: %s\n", mmpool_last_error());
      _exit(19);
    }
    if (mmpool_close(q) != 0) _exit(20);
  }
  if (mapped_in_range()) _exit(21);
  return fired != 0;
}

static void sweep(unsigned kind, const char *name, int err) {
  unsigned n = 1;
  for (; n < 400; n++) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(one(kind, n, err) ? 1 : 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) > 1)
      fail_msg("%s fault at call %u: child %s %d", name, n,
               WIFEXITED(st) ? "exited with" : "killed by signal",
               WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    if (WEXITSTATUS(st) == 0) break;  // the scenario has no nth call
  }
  print_message("%s: %u calls swept\n", name, n - 1);
  assert_true(n > 1);  // the scenario makes such calls at all
}

static void test_mmap(void **s) { (void)s; sweep(OS_FAULT_MMAP, "mmap", ENOMEM); }
static void test_mprotect(void **s) {
  (void)s;
  sweep(OS_FAULT_MPROTECT, "mprotect", ENOMEM);
}
static void test_ftruncate(void **s) {
  (void)s;
  sweep(OS_FAULT_FTRUNCATE, "ftruncate", EIO);
}
static void test_fallocate(void **s) {
  (void)s;
  sweep(OS_FAULT_FALLOCATE, "fallocate", ENOSPC);
}
static void test_open(void **s) { (void)s; sweep(OS_FAULT_OPEN, "open", EACCES); }
static void test_fsync(void **s) { (void)s; sweep(OS_FAULT_FSYNC, "fsync", EIO); }

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mmap),      cmocka_unit_test(test_mprotect),
      cmocka_unit_test(test_ftruncate), cmocka_unit_test(test_fallocate),
      cmocka_unit_test(test_open),      cmocka_unit_test(test_fsync),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
