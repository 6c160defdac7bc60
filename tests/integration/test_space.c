// test_space.c: a pool's address range is reserved as it grows (issue 12,
// item 5; docs/engine.md, "Address space").
//
// A pool reserves only the first part of its capacity at open and extends
// the reservation in place as it grows; addresses past the reserved part
// belong to no pool. A mapping right after the reserved part (here a page
// the test maps with a raw mmap) is never replaced: the pool is full there
// (ENOMEM, the message naming the mapping) and stays usable. When the
// kernel refuses the first reservation (RLIMIT_AS), a smaller one is taken
// and one warning says so. Links the static core: the test reads the
// reserved length from the pool table, and captures the log.
#define _GNU_SOURCE
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "itest.h"
#include "log.h"
#include "pooltable.h"

#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

static size_t reserved_of(mmpool_t *p) { return pool_from_handle(p)->reserved; }

ITEST_SCRATCH_DIR("space")

// Allocates blocks of n bytes until the pool is full; returns how many.
static size_t fill(mmpool_t *p, void **blk, size_t max, size_t n) {
  size_t k = 0;
  while (k < max && (blk[k] = mmpool_malloc(p, n)) != NULL) {
    memset(blk[k], 0x5a, 64);
    k++;
  }
  return k;
}

// Growth past the first part: in place, every block owned by its pool.
static void grows_in_place(const char *name, const char *opts) {
  mmpool_t *p = mmpool_open(name, opts);
  if (p == NULL) fail_msg("mmpool_open(%s): %s", opts, mmpool_last_error());
  uintptr_t base = (uintptr_t)mmpool_base(p);
  size_t first = reserved_of(p);
  assert_true(first >= 32 * MiB && first <= 64 * MiB);
  assert_true(first < mmpool_capacity(p));
  static void *blk[64];
  for (int i = 0; i < 40; i++) {  // 320 MiB
    blk[i] = mmpool_malloc(p, 8 * MiB);
    if (blk[i] == NULL) fail_msg("block %d: %s", i, mmpool_last_error());
    uintptr_t a = (uintptr_t)blk[i];
    assert_true(a > base && a + 8 * MiB <= base + reserved_of(p));
    memset(blk[i], i, 4096);
    ((char *)blk[i])[8 * MiB - 1] = (char)i;
    assert_ptr_equal(mmpool_of(blk[i]), p);
    assert_ptr_equal(mmpool_of((char *)blk[i] + 8 * MiB - 1), p);
  }
  size_t res = reserved_of(p);
  assert_true(res > first + 256 * MiB);
  assert_ptr_equal(mmpool_base(p), (void *)base);
  assert_ptr_equal(mmpool_of((void *)(base + res - 1)), p);
  assert_null(mmpool_of((void *)(base + res)));
  assert_int_equal(mmpool_check(p), 0);
  for (int i = 0; i < 40; i++) mmpool_free(blk[i]);
  assert_int_equal(mmpool_close(p), 0);
}

static void test_grows_in_place(void **state) {
  (void)state;
  grows_in_place("sp.anon", "size=4G");
  char opts[512];
  snprintf(opts, sizeof opts, "file=%s/grow.pool size=4G", dir);
  grows_in_place("sp.file", opts);
  // Attached again: the reservation covers what the file maps.
  mmpool_t *p = mmpool_open("sp.file", opts);
  if (p == NULL) fail_msg("reopen: %s", mmpool_last_error());
  assert_true(reserved_of(p) >= 320 * MiB);
  assert_int_equal(mmpool_check(p), 0);
  void *b = mmpool_malloc(p, 100);
  assert_non_null(b);
  mmpool_free(b);
  assert_int_equal(mmpool_close(p), 0);
}

// A page mapped right after the reserved part: never replaced; the pool
// reports full, names the page, and stays usable.
static void stops_at(const char *name, const char *opts) {
  mmpool_t *p = mmpool_open(name, opts);
  if (p == NULL) fail_msg("mmpool_open(%s): %s", opts, mmpool_last_error());
  uintptr_t base = (uintptr_t)mmpool_base(p);
  uintptr_t at = base + reserved_of(p);
  unsigned char *page = mmap((void *)at, 4096, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                             -1, 0);
  assert_ptr_equal(page, (void *)at);
  itest_fill_pattern(page, 4096, 77);
  static void *blk[1024];
  size_t k = fill(p, blk, 1024, MiB);
  assert_true(k > 0 && k < 1024);
  assert_int_equal(errno, ENOMEM);
  const char *msg = mmpool_last_error();
  char hex[32];
  snprintf(hex, sizeof hex, "0x%lx", (unsigned long)at);
  if (strstr(msg, "is full") == NULL || strstr(msg, hex) == NULL ||
      strchr(msg, '\n') != NULL)
    fail_msg("the message does not say full at %s: \"%s\"", hex, msg);
  assert_true(itest_check_pattern(page, 4096, 77));
  assert_int_equal(reserved_of(p), at - base);
  assert_null(mmpool_of(page));
  assert_int_equal(mmpool_usable_size(page), 0);
  // Small blocks still come from the free parts; frees make room again.
  assert_int_equal(mmpool_check(p), 0);
  for (size_t i = 0; i < k; i++) mmpool_free(blk[i]);
  void *b = mmpool_malloc(p, 4 * MiB);
  assert_non_null(b);
  mmpool_free(b);
  assert_int_equal(mmpool_check(p), 0);
  assert_true(itest_check_pattern(page, 4096, 77));
  assert_int_equal(mmpool_close(p), 0);
  assert_true(itest_check_pattern(page, 4096, 77));
  // Once the page is gone the pool grows past it.
  assert_int_equal(munmap(page, 4096), 0);
}

static void test_stops_at_foreign_mapping(void **state) {
  (void)state;
  stops_at("sp.stop", "size=4G");
  char opts[512];
  snprintf(opts, sizeof opts, "file=%s/stop.pool size=4G", dir);
  stops_at("sp.stopfile", opts);
}

// VmSize of this process in bytes, from /proc/self/status.
static size_t vmsize(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  size_t kb = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmSize: %zu kB", &kb) == 1) break;
  if (f) fclose(f);
  return kb << 10;
}

// Under an RLIMIT_AS that leaves less than the first part (64 MiB; a 4 GiB
// pool's header and page descriptors take 4 MiB of it): a smaller first
// reservation, one warning naming the limit; the pool works.
static void test_rlimit_first_part(void **state) {
  (void)state;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    log_set_fd(fds[1]);
    log_set_level(LOG_WARN);
    struct rlimit rl = {vmsize() + 40 * MiB, RLIM_INFINITY};
    if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(2);
    mmpool_t *p = mmpool_open("sp.limited", "size=4G");
    if (p == NULL) {
      dprintf(fds[1], "open: %s\n", mmpool_last_error());
      _exit(3);
    }
    void *b = mmpool_malloc(p, MiB);
    if (b == NULL) _exit(4);
    memset(b, 1, MiB);
    mmpool_free(b);
    if (mmpool_check(p) != 0) _exit(5);
    _exit(0);
  }
  close(fds[1]);
  char out[1024] = "";
  size_t n = itest_read_all(fds[0], out, sizeof out - 1);
  out[n] = 0;
  close(fds[0]);
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail_msg("child status %#x, log: %s", st, out);
  if (strstr(out, "mmpool: pool 'sp.limited': RLIMIT_AS is ") == NULL ||
      strstr(out, " KiB: reserved ") == NULL ||
      strstr(out, " of its 4 GiB\n") == NULL)
    fail_msg("no warning naming RLIMIT_AS: \"%s\"", out);
  // One line.
  assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_grows_in_place),
      cmocka_unit_test(test_stops_at_foreign_mapping),
      cmocka_unit_test(test_rlimit_first_part),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
