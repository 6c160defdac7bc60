// test_config_memory.c: the memory the configuration module
// (config/config.h) uses: loading never allocates (the allocating libc
// functions are wrapped at link time and counted) and leaves no mapping
// behind, and without address space for its work area a load reports one
// line and gives the built-in default.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config.h"
#include "config_test.h"

// ---------------------------------------------------------------------------
// Allocation watch: the test links with -Wl,--wrap for these, so any call
// from config.c (or the core code it uses) goes through the counters.

static int watching;
static unsigned allocs;

void *__real_malloc(size_t);
void *__real_calloc(size_t, size_t);
void *__real_realloc(void *, size_t);
void __real_free(void *);
char *__real_strdup(const char *);
FILE *__real_fopen(const char *, const char *);
char *__real_getenv(const char *);
char *__real_secure_getenv(const char *);

void *__wrap_malloc(size_t n) {
  allocs += watching;
  return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t s) {
  allocs += watching;
  return __real_calloc(n, s);
}
void *__wrap_realloc(void *p, size_t n) {
  allocs += watching;
  return __real_realloc(p, n);
}
void __wrap_free(void *p) {
  allocs += watching;
  __real_free(p);
}
char *__wrap_strdup(const char *s) {
  allocs += watching;
  return __real_strdup(s);
}
FILE *__wrap_fopen(const char *p, const char *m) {
  allocs += watching;
  return __real_fopen(p, m);
}
char *__wrap_getenv(const char *n) {
  allocs += watching;
  return __real_getenv(n);
}
char *__wrap_secure_getenv(const char *n) {
  allocs += watching;
  return __real_secure_getenv(n);
}

// ---------------------------------------------------------------------------
// Never allocates; leaves no mapping behind

// The process's mapped size in pages (/proc/self/statm), read without
// stdio: a work area (core/vmmap.c scratch memory) left behind would grow it (a line count of
// /proc/self/maps would not see it, merged with a neighbour).
static unsigned long vm_pages(void) {
  char buf[256];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  ssize_t r = read(fd, buf, sizeof buf - 1);
  close(fd);
  assert_true(r > 0);
  buf[r] = 0;
  return strtoul(buf, NULL, 10);
}

// No address space for the work area (vmmap_scratch): one line, the default.
static void test_errors_no_memory(void **state) {
  (void)state;
  struct rlimit old, low;
  assert_int_equal(getrlimit(RLIMIT_AS, &old), 0);
  low = old;
  low.rlim_cur = (rlim_t)vm_pages() * (rlim_t)sysconf(_SC_PAGESIZE) + 4096;
  char *env[] = {"MMPOOL_STATS=1", "MMPOOL_CONFIG=pool a", NULL};
  char *env2[] = {"MMPOOL_STRICT=1", "MMPOOL_CONFIG_FILE=/x.conf", NULL};
  assert_int_equal(setrlimit(RLIMIT_AS, &low), 0);
  int r1 = load_env(env);
  struct config_errors first = errs;
  int r2 = load_env(env2);
  assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);

  assert_int_equal(r1, 0);
  assert_int_equal(first.count, 1);
  assert_string_equal(first.line[0],
                      "MMPOOL_CONFIG: cannot parse it: ENOMEM: out of memory");
  assert_int_equal(r2, -EINVAL);
  assert_int_equal(errs.count, 1);
  assert_string_equal(errs.line[0],
                      "MMPOOL_CONFIG_FILE: cannot parse it: ENOMEM: out of memory");
  expect_builtin();
  assert_int_equal(cfg.fallback, 1);
  assert_int_equal(cfg.strict, 1);
}

static void test_no_allocation(void **state) {
  (void)state;
  const char *f = write_text("alloc.conf", "pool f file=/tmp/f.pool size=1G\n"
                                           "route lib=libz* -> f\n"
                                           "route thread=t? -> f\n");
  const char *g = write_text("bad.conf", "pool f sise=1\nbogus\n");
  char *good[] = {"MMPOOL_STATS=1", "MMPOOL_LOG=debug",
                  var(0, "MMPOOL_CONFIG_FILE", f),
                  "MMPOOL_CONFIG=pool v size=2G; route size<16 -> v; "
                  "default v",
                  NULL};
  char *bad[] = {"MMPOOL_STRICT=1", "MMPOOL_LOG=bad",
                 var(1, "MMPOOL_CONFIG_FILE", g),
                 "MMPOOL_CONFIG=route size<1Q -> nowhere; pool a brk; "
                 "pool b brk",
                 NULL};
  char *missing[] = {"MMPOOL_CONFIG_FILE=/nonexistent/x", NULL};
  char buf[1024];

  // Warm up (first-use costs of the test harness, not ours).
  assert_int_equal(load_env(good), 0);
  unsigned long pages = vm_pages();
  allocs = 0;
  watching = 1;
  int r1 = 0, r2 = 0, r3 = 0;
  for (int i = 0; i < 20; i++) {
    r1 |= config_load_from(&cfg, good, 0, &errs);
    config_describe(&cfg, buf, sizeof buf);
    (void)config_route_lib_match(&cfg.routes[0], "/usr/lib/libz.so.1");
    (void)config_glob_match(cfg.routes[1].glob, "t1");
    r2 |= config_load_from(&cfg, bad, 0, &errs);
    r3 |= config_load_from(&cfg, missing, 0, NULL);
    (void)config_load(&cfg, good, NULL);
  }
  watching = 0;
  assert_int_equal(allocs, 0);
  assert_int_equal(r1, 0);
  assert_int_equal(r2, -EINVAL);
  assert_int_equal(r3, 0);
  assert_int_equal(vm_pages(), pages);
  // The last bad load reported its lines.
  assert_true(errs.total >= 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_errors_no_memory),
      cmocka_unit_test(test_no_allocation),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
