// test_stats.c: the MMPOOL_STATS=1 report at exit.
//
// Runs stats_probe (see its header) under the preload library with a
// three-pool configuration routed by size, its stderr in a file, and reads
// the report: one block per pool naming it, its live blocks and the routes
// to it; present also when the program closed fd 2 or reused the numbers of
// the report's descriptors, and never written into a file the program
// opened; no crash when a pool was closed before exit; nothing without
// MMPOOL_STATS=1. This program itself runs under the preload library (its
// LD_PRELOAD is passed on) but without MMPOOL_STATS.
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "scratch.h"
#include "child.h"

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

// PROBE: from CMakeLists.txt.

#define CONFIG                                                                 \
  "MMPOOL_CONFIG=pool small size=1G\npool mid size=1G\npool big size=4G\n"     \
  "route size<=256 -> small\nroute size>=1M -> big\ndefault mid"


static int group_setup(void **state) {
  (void)state;
  return scratch_setup("stats");
}

static int group_teardown(void **state) {
  (void)state;
  return scratch_teardown();
}

// The file's text; "" when it does not exist.
static char *read_all(const char *path) {
  char *t = slurp(path);
  return t ? t : strdup("");
}

struct res {
  int status;
  pid_t pid;
  char *err; // the child's stderr: where the report goes
};

// Runs argv under this process's LD_PRELOAD with env added to the
// environment (less every MMPOOL_* variable of ours).
static struct res run(const char *const *argv, const char *const *env) {
  assert_non_null(getenv("LD_PRELOAD"));
  char err[600];
  snprintf(err, sizeof err, "%s/child.err", scratch);
  struct res r;
  r.status = child_run(argv, env, 1, NULL, err, &r.pid);
  r.err = read_all(err);
  return r;
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define STATS_ENV ARGS(CONFIG, "MMPOOL_STATS=1")

static void fail_in(const char *what, const char *text) {
  print_error("%s in:\n%s\n", what, text);
  fail();
}

static void assert_contains(const char *hay, const char *needle) {
  if (!strstr(hay, needle)) fail_in(needle, hay);
}

// The block of pool name: from its "mmpool: pool NAME" line to the next
// line of the report that is not indented. A new string, or NULL.
static char *block(const char *report, const char *name) {
  char head[128];
  int hl = snprintf(head, sizeof head, "mmpool: pool %s", name);
  for (const char *s = report; (s = strstr(s, head)) != NULL; s++) {
    if (s != report && s[-1] != '\n') continue;
    if (s[hl] != ':' && s[hl] != ' ') continue;
    const char *e = strchr(s, '\n');
    while (e && strncmp(e + 1, "mmpool:   ", 10) == 0)
      e = strchr(e + 1, '\n');
    return strndup(s, e ? (size_t)(e + 1 - s) : strlen(s));
  }
  return NULL;
}

// A number after key in text (the first occurrence), or fails.
static unsigned long long number_after(const char *text, const char *key) {
  const char *s = strstr(text, key);
  if (!s) fail_in(key, text);
  return strtoull(s + strlen(key), NULL, 10);
}

// The live figures of a pool's block: at least blocks live blocks of
// which at least large are large, and at least bytes bytes.
static void assert_live(const char *b, unsigned long long blocks,
                        unsigned long long large, unsigned long long bytes) {
  const char *s = strstr(b, "live at exit: ");
  if (!s) fail_in("live at exit", b);
  char *end;
  unsigned long long nb = strtoull(s + 14, &end, 10);
  assert_true(strncmp(end, " blocks, ", 9) == 0);
  unsigned long long nbytes = strtoull(end + 9, &end, 10);
  assert_true(strncmp(end, " bytes", 6) == 0);
  unsigned long long nl = number_after(s, nbytes < 1024 ? "bytes, " : "), ");
  assert_true(nb >= blocks);
  assert_true(nl >= large);
  assert_true(nbytes >= bytes);
  assert_true(nl <= nb);
}

// The report of a run of stats_probe with pid; api: it opened "extra".
static void assert_report(const char *err, pid_t pid, int api) {
  char head[128];
  snprintf(head, sizeof head,
           "mmpool: stats of pid %ld (stats_probe) at exit: 3 configured "
           "pools, 2 routes\n",
           (long)pid);
  assert_contains(err, head);
  assert_contains(err, "mmpool: allocated: blocks handed out by malloc and "
                       "co.");

  char *small = block(err, "small");
  if (!small) fail_in("pool small", err);
  assert_contains(small, "mmpool: pool small: anon\n");
  assert_contains(small, "capacity 1073741824 bytes (1.0 GiB)");
  assert_live(small, 100, 0, 6400);
  // 100 blocks of 64 bytes, in the 64-byte class.
  assert_true(number_after(small, " 64:") >= 100);
  // At least the probe's 100 blocks (the C library allocates small blocks
  // too), all through the one route to the pool; its peak is a slab.
  assert_true(number_after(small, "allocated since start: ") >= 100);
  assert_true(number_after(small, "mmpool:   route size<257 -> small: ") >=
              100);
  assert_true(number_after(small, "peak held by blocks ") >= 65536);
  free(small);

  char *mid = block(err, "mid");
  if (!mid) fail_in("pool mid", err);
  assert_contains(mid, "mmpool: pool mid (default pool): anon\n");
  assert_live(mid, 10, 0, 81920);
  assert_true(number_after(mid, " 8192:") >= 10);
  assert_true(number_after(mid, "allocated since start: ") >= 10);
  assert_true(number_after(mid, "mmpool:   no route matched: ") >= 10);
  assert_true(number_after(mid, "peak held by blocks ") >= 81920);
  free(mid);

  char *big = block(err, "big");
  if (!big) fail_in("pool big", err);
  assert_contains(big, "mmpool: pool big: anon\n");
  assert_contains(big, "capacity 4294967296 bytes (4.0 GiB)");
  assert_live(big, 3, 3, 3ull << 21);
  // Exactly the probe's three blocks of 2 MiB, counted in whole pages.
  assert_int_equal(number_after(big, "allocated since start: "), 3);
  assert_contains(big, "mmpool:   route size>=1M -> big: 3 allocations, "
                       "6291456 bytes (6.0 MiB)\n");
  assert_true(number_after(big, "peak held by blocks ") >= 3ull << 21);
  free(big);
  // The three pools, and "extra" only when the program opened it.
  assert_null(block(err, "default"));
  char *x = block(err, "extra");
  assert_int_equal(x != NULL, api);
  free(x);
}

// ---------------------------------------------------------------------------

static void test_report(void **state) {
  (void)state;
  struct res r = run(ARGS(PROBE, "keep"), STATS_ENV);
  assert_int_equal(r.status, 0);
  assert_report(r.err, r.pid, 0);
  free(r.err);
}

// Threads that exit leave their counts to the report once: the small
// route counts their 8 x 50 blocks on top of what a run without them
// counts (the C library's own small blocks for each thread, a few at most,
// aside), neither lost with the thread nor counted twice.
static void test_exited_threads(void **state) {
  (void)state;
  struct res k = run(ARGS(PROBE, "keep"), STATS_ENV);
  struct res r = run(ARGS(PROBE, "threads"), STATS_ENV);
  assert_int_equal(k.status, 0);
  assert_int_equal(r.status, 0);
  assert_report(r.err, r.pid, 0);
  char *ks = block(k.err, "small"), *rs = block(r.err, "small");
  if (!ks) fail_in("pool small", k.err);
  if (!rs) fail_in("pool small", r.err);
  const char *route = "mmpool:   route size<257 -> small: ";
  unsigned long long base = number_after(ks, route);
  unsigned long long got = number_after(rs, route);
  assert_true(got >= base + 8 * 50);
  assert_true(got <= base + 8 * 50 + 8 * 8);
  free(ks);
  free(rs);
  free(k.err);
  free(r.err);
}

static void test_closed_stderr(void **state) {
  (void)state;
  struct res r = run(ARGS(PROBE, "close2"), STATS_ENV);
  assert_int_equal(r.status, 0);
  assert_report(r.err, r.pid, 0);
  free(r.err);
}

static void test_reused_stderr(void **state) {
  (void)state;
  char *file = path_in("reuse2.txt");
  struct res r = run(ARGS(PROBE, "reuse2", file), STATS_ENV);
  assert_int_equal(r.status, 0);
  assert_report(r.err, r.pid, 0);
  char *f = read_all(file);
  assert_string_equal(f, ""); // the program's file got none of it
  free(f), free(r.err);
}

static void test_reused_private_fd(void **state) {
  (void)state;
  char *file = path_in("closeall.txt");
  struct res r = run(ARGS(PROBE, "closeall", file), STATS_ENV);
  assert_int_equal(r.status, 0);
  assert_report(r.err, r.pid, 0); // through fd 2, still the same stderr
  char *f = read_all(file);
  assert_string_equal(f, "");
  free(f), free(r.err);
}

static void test_no_stderr_left(void **state) {
  (void)state;
  char *file = path_in("closeall2.txt");
  struct res r = run(ARGS(PROBE, "closeall2", file), STATS_ENV);
  assert_int_equal(r.status, 0);
  // Neither descriptor is the stderr of the start: no report anywhere.
  assert_null(strstr(r.err, "mmpool: stats"));
  char *f = read_all(file);
  assert_null(strstr(f, "mmpool"));
  free(f), free(r.err);
}

static void test_closed_pool(void **state) {
  (void)state;
  struct res r = run(ARGS(PROBE, "closepool"), STATS_ENV);
  assert_int_equal(r.status, 0);
  char *big = block(r.err, "big");
  if (!big) fail_in("pool big", r.err);
  assert_contains(big, "mmpool:   closed by the program before exit\n");
  assert_int_equal(number_after(big, "allocated since start: "), 3);
  assert_null(strstr(big, "live at exit"));
  char *small = block(r.err, "small");
  assert_non_null(small);
  assert_live(small, 100, 0, 6400);
  free(small), free(big), free(r.err);
}

static void test_api_pool(void **state) {
  (void)state;
  struct res r = run(ARGS(PROBE, "api"), STATS_ENV);
  assert_int_equal(r.status, 0);
  assert_report(r.err, r.pid, 1);
  char *x = block(r.err, "extra");
  if (!x) fail_in("pool extra", r.err);
  assert_contains(x, "mmpool: pool extra: anon, not in the configuration\n");
  assert_live(x, 5, 0, 5000);
  free(x), free(r.err);
}

static void test_fallback(void **state) {
  (void)state;
  // A bad configuration: the report shows the built-in default it used.
  struct res r = run(ARGS("/bin/true"),
                     ARGS("MMPOOL_CONFIG=pool big size=12Q", "MMPOOL_STATS=1"));
  assert_int_equal(r.status, 0);
  assert_contains(r.err, "(true) at exit: 1 configured pools, 0 routes (the "
                         "built-in default: the configuration had errors)\n");
  char *d = block(r.err, "default");
  if (!d) fail_in("pool default", r.err);
  assert_contains(d, "mmpool: pool default (default pool): anon\n");
  assert_contains(d, "capacity 68719476736 bytes (64.0 GiB)");
  assert_contains(d, "live at exit: ");
  free(d), free(r.err);
}

static void test_off(void **state) {
  (void)state;
  const char *const *envs[] = {ARGS(CONFIG), ARGS(CONFIG, "MMPOOL_STATS=0")};
  for (unsigned i = 0; i < 2; i++) {
    struct res r = run(ARGS(PROBE, "keep"), envs[i]);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    free(r.err);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_report),
      cmocka_unit_test(test_exited_threads),
      cmocka_unit_test(test_closed_stderr),
      cmocka_unit_test(test_reused_stderr),
      cmocka_unit_test(test_reused_private_fd),
      cmocka_unit_test(test_no_stderr_left),
      cmocka_unit_test(test_closed_pool),
      cmocka_unit_test(test_api_pool),
      cmocka_unit_test(test_fallback),
      cmocka_unit_test(test_off),
  };
  return cmocka_run_group_tests_name("preload_stats", tests, group_setup,
                                     group_teardown);
}
