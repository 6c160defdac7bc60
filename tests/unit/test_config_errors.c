// test_config_errors.c: each error of the configuration (config/config.h)
// with its exact one-line message: statements, routes, the limits (pools,
// routes, kept lines, text sizes), the checks across pools, and the file
// (missing, not regular, a link, unreadable, too large, a NUL byte, its
// statements named by line).
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config.h"
#include "config_test.h"

static void test_errors_statements(void **state) {
  (void)state;
  var_error("pool a; frobnicate 3",
            "MMPOOL_CONFIG: statement 2 'frobnicate 3': unknown statement "
            "'frobnicate' (pool, route or default)");
  var_error("Pool a", "MMPOOL_CONFIG: statement 1 'Pool a': unknown "
                      "statement 'Pool' (pool, route or default)");
  // Pool words: spec_parse's message.
  var_error("pool a sise=1G", "MMPOOL_CONFIG: statement 1 'pool a sise=1G': "
                              "unknown option 'sise=1G'");
  var_error("pool a size=12Q",
            "MMPOOL_CONFIG: statement 1 'pool a size=12Q': bad size in "
            "'size=12Q' (digits with K, M, G or T)");
  var_error("pool a base=0x1234",
            "MMPOOL_CONFIG: statement 1 'pool a base=0x1234': base in "
            "'base=0x1234' is not a multiple of 1 GiB (0x40000000)");
  var_error("pool", "MMPOOL_CONFIG: statement 1 'pool': a pool needs a "
                    "name (pool NAME WORDS)");
  var_error("pool a/b", "MMPOOL_CONFIG: statement 1 'pool a/b': bad pool "
                        "name 'a/b' (1 to 47 of A-Z a-z 0-9 _ . -)");
  var_error("pool abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV",
            "MMPOOL_CONFIG: statement 1 'pool abcdefghijklmnopqrstuvwxyzABCDE"
            "FGHIJKLMNOPQRSTUV': bad pool name 'abcdefghijklmnopqrstuvwxyzAB"
            "CDEFGHIJKLMNOPQRSTUV' (1 to 47 of A-Z a-z 0-9 _ . -)");
  // Duplicates.
  var_error("pool a; pool a size=1G", "MMPOOL_CONFIG: statement 2 "
                                      "'pool a size=1G': pool 'a' is "
                                      "defined twice");
  // Unknown pools.
  var_error("route size<16 -> nowhere",
            "MMPOOL_CONFIG: statement 1 'route size<16 -> nowhere': unknown "
            "pool 'nowhere'");
  var_error("pool a; default b",
            "MMPOOL_CONFIG: statement 2 'default b': unknown pool 'b'");
  var_error("pool a; default", "MMPOOL_CONFIG: statement 2 'default': "
                               "default takes one pool name (default NAME)");
  var_error("pool a; default a b",
            "MMPOOL_CONFIG: statement 2 'default a b': default takes one "
            "pool name (default NAME)");
  // A bad pool statement still defines its name: no second message.
  var_error("pool a sise=1G; route size<16 -> a; default a",
            "MMPOOL_CONFIG: statement 1 'pool a sise=1G': unknown option "
            "'sise=1G'");
}

static void test_errors_routes(void **state) {
  (void)state;
  var_error("pool big; route size>=1Q -> big",
            "MMPOOL_CONFIG: statement 2 'route size>=1Q -> big': bad size "
            "'1Q'");
  var_error("route size>=99999999999999999999 -> default",
            "MMPOOL_CONFIG: statement 1 'route size>=99999999999999999999 -> "
            "default': size too large '99999999999999999999'");
  var_error("route size=1K..x -> default",
            "MMPOOL_CONFIG: statement 1 'route size=1K..x -> default': bad "
            "size 'x'");
  var_error("route size=..1K -> default",
            "MMPOOL_CONFIG: statement 1 'route size=..1K -> default': bad "
            "size ''");
  var_error("route colour=red -> default",
            "MMPOOL_CONFIG: statement 1 'route colour=red -> default': bad "
            "condition 'colour=red' (size>=N, size<N, size=A..B, lib=GLOB or "
            "thread=GLOB)");
  var_error("route size -> default",
            "MMPOOL_CONFIG: statement 1 'route size -> default': bad "
            "condition 'size' (size>=N, size<N, size=A..B, lib=GLOB or "
            "thread=GLOB)");
  var_error("route size=>1 -> default",
            "MMPOOL_CONFIG: statement 1 'route size=>1 -> default': bad "
            "condition 'size=>1' (size>=N, size<N, size=A..B, lib=GLOB or "
            "thread=GLOB)");
  var_error("route size<0 -> default",
            "MMPOOL_CONFIG: statement 1 'route size<0 -> default': "
            "condition 'size<0' matches no size");
  var_error("route size=4K..1K -> default",
            "MMPOOL_CONFIG: statement 1 'route size=4K..1K -> default': "
            "condition 'size=4K..1K' matches no size");
  var_error("route size>0xffffffffffffffff -> default",
            "MMPOOL_CONFIG: statement 1 'route size>0xffffffffffffffff -> "
            "default': condition 'size>0xffffffffffffffff' matches no size");
  var_error("route lib -> default",
            "MMPOOL_CONFIG: statement 1 'route lib -> default': bad "
            "condition 'lib' (lib=GLOB)");
  var_error("route thread:x -> default",
            "MMPOOL_CONFIG: statement 1 'route thread:x -> default': bad "
            "condition 'thread:x' (thread=GLOB)");
  var_error("route lib= -> default",
            "MMPOOL_CONFIG: statement 1 'route lib= -> default': empty "
            "pattern in 'lib='");
  var_error("route size>=1M default",
            "MMPOOL_CONFIG: statement 1 'route size>=1M default': a route "
            "needs 'COND -> POOL'");
  var_error("route -> default", "MMPOOL_CONFIG: statement 1 'route -> "
                                "default': a route needs a condition "
                                "before '->'");
  var_error("route size<1 ->", "MMPOOL_CONFIG: statement 1 'route size<1 "
                               "->': a route needs a pool name after '->'");
  var_error("route size<1 -> a b",
            "MMPOOL_CONFIG: statement 1 'route size<1 -> a b': bad pool name "
            "'a b' (1 to 47 of A-Z a-z 0-9 _ . -)");
  char text[300], line[400];
  memset(big, 'y', CONFIG_GLOB_MAX);
  big[CONFIG_GLOB_MAX] = 0;
  snprintf(text, sizeof text, "route thread=%.200s -> default", big);
  snprintf(line, sizeof line,
           "MMPOOL_CONFIG: statement 1 '%.57s...': pattern longer than 127 "
           "characters in '%.60s'",
           text,
           "thread=yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
           "yyyyyyyyyyyyyyyy");
  var_error(text, line);
}

// Writes n statements "FMT" (with %u the index) separated by ';' into big.
static const char *many(unsigned n, const char *fmt, const char *tail) {
  size_t len = 0;
  for (unsigned i = 0; i < n; i++) {
    len += (size_t)snprintf(big + len, sizeof big - len, fmt, i);
    big[len++] = ';';
  }
  snprintf(big + len, sizeof big - len, "%s", tail);
  return big;
}

static void test_errors_limits(void **state) {
  (void)state;
  // 63 pools are the most, default included.
  OK(load(many(63, "pool p%u size=1M", "default p0")));
  assert_int_equal(cfg.npools, 63);
  var_error(many(63, "pool p%u size=1M", ""),
            "MMPOOL_CONFIG: statement 63 'pool p62 size=1M': 63 pools and no "
            "default: the implicit pool 'default' would be one more (add "
            "'default NAME')");
  var_error(many(64, "pool p%u size=1M", "default p0"),
            "MMPOOL_CONFIG: statement 64 'pool p63 size=1M': too many pools "
            "(at most 63)");
  // 64 routes are the most.
  OK(load(many(64, "route size=%u -> default", "")));
  assert_int_equal(cfg.nroutes, 64);
  assert_int_equal(cfg.routes[63].lo, 63);
  var_error(many(65, "route size=%u -> default", ""),
            "MMPOOL_CONFIG: statement 65 'route size=64 -> default': too "
            "many routes (at most 64)");

  // More than 8 errors: 8 lines kept, all counted.
  assert_int_equal(load(many(11, "bad%u", "")), 0);
  assert_int_equal(errs.count, CONFIG_MAX_ERRORS);
  assert_int_equal(errs.total, 11);
  assert_string_equal(errs.line[7], "MMPOOL_CONFIG: statement 8 'bad7': "
                                    "unknown statement 'bad7' (pool, route "
                                    "or default)");
  expect_builtin();

  // A long statement is cut in the message.
  var_error("pool a file=/a/very/long/path/that/goes/on/and/on/and/on/"
            "until/it/is/cut.pool sise=1",
            "MMPOOL_CONFIG: statement 1 'pool a file=/a/very/long/path/that/"
            "goes/on/and/on/and/on/...': unknown option 'sise=1'");

  // The variable's size limit.
  memset(big, ' ', CONFIG_TEXT_MAX + 1);
  big[CONFIG_TEXT_MAX + 1] = 0;
  var_error(big, "MMPOOL_CONFIG: longer than 64 KiB (65537 bytes)");
  memcpy(big, "pool at_the_limit", 17);
  big[CONFIG_TEXT_MAX] = 0;
  OK(load(big));
  assert_int_equal(pool_index("at_the_limit"), 0);
}

static void test_errors_checks(void **state) {
  (void)state;
  // A fallback cycle: the default pool cannot fall back to itself.
  var_error("pool big size=1G full=fallback; default big",
            "MMPOOL_CONFIG: statement 1 'pool big size=1G full=fallback': "
            "full=fallback on the default pool 'big' is a fallback cycle "
            "(use full=null or full=abort)");
  var_error("pool default full=fallback",
            "MMPOOL_CONFIG: statement 1 'pool default full=fallback': "
            "full=fallback on the default pool 'default' is a fallback cycle "
            "(use full=null or full=abort)");
  // full=fallback on another pool is fine.
  OK(load("pool big size=1G full=fallback; pool d; default d"));
  assert_int_equal(cfg.pools[0].spec.full, SPEC_FULL_FALLBACK);
  // One brk pool at most.
  var_error("pool a brk; pool b brk",
            "MMPOOL_CONFIG: statement 2 'pool b brk': pool 'a' serves brk "
            "already (at most one pool may)");
  // One pool per file.
  var_error("pool a file=/tmp/x.pool; pool b file=/tmp/x.pool mode=private",
            "MMPOOL_CONFIG: statement 2 'pool b file=/tmp/x.pool "
            "mode=private': file '/tmp/x.pool' is already the file of pool "
            "'a'");
  // Fixed ranges must not overlap.
  var_error("pool a base=0x300000000000 size=2G; "
            "pool b base=0x300040000000 size=1G",
            "MMPOOL_CONFIG: statement 2 'pool b base=0x300040000000 "
            "size=1G': range 0x300040000000..0x300080000000 overlaps pool "
            "'a' (0x300000000000..0x300080000000)");
  OK(load("pool a base=0x300000000000 size=1G; "
          "pool b base=0x300040000000 size=1G"));
  // A file pool without size= has its file's capacity: no check.
  OK(load("pool a base=0x300000000000 file=/tmp/a.pool; "
          "pool b base=0x300040000000 file=/tmp/b.pool"));
}

static void test_errors_file(void **state) {
  (void)state;
  char path[256], line[600];
  // Missing.
  snprintf(path, sizeof path, "%s/missing.conf", dir);
  char *env[] = {var(0, "MMPOOL_CONFIG_FILE", path), NULL};
  snprintf(line, sizeof line,
           "MMPOOL_CONFIG_FILE: cannot open '%s': ENOENT: no such file or directory",
           path);
  expect_error(load_env(env), line);
  // A directory.
  var(0, "MMPOOL_CONFIG_FILE", dir);
  snprintf(line, sizeof line, "MMPOOL_CONFIG_FILE: '%s' is not a regular file",
           dir);
  expect_error(load_env(env), line);
  // A symbolic link (refused by os_open).
  const char *target = write_text("target.conf", "pool t\n");
  snprintf(path, sizeof path, "%s/link.conf", dir);
  assert_int_equal(symlink(target, path), 0);
  var(0, "MMPOOL_CONFIG_FILE", path);
  snprintf(line, sizeof line,
           "MMPOOL_CONFIG_FILE: cannot open '%s': ELOOP: is a symbolic link", path);
  expect_error(load_env(env), line);
  // Unreadable: root reads it all the same.
  const char *locked = write_text("locked.conf", "pool l\n");
  assert_int_equal(chmod(locked, 0), 0);
  var(0, "MMPOOL_CONFIG_FILE", locked);
  if (geteuid() != 0) {
    snprintf(line, sizeof line,
             "MMPOOL_CONFIG_FILE: cannot open '%s': EACCES: permission denied", locked);
    expect_error(load_env(env), line);
  } else {
    OK(load_env(env));
    assert_int_equal(pool_index("l"), 0);
  }
  // Too large, and exactly at the limit.
  memset(big, '\n', CONFIG_TEXT_MAX + 1);
  memcpy(big, "pool z", 6);
  const char *large = write_file("large.conf", big, CONFIG_TEXT_MAX + 1);
  var(0, "MMPOOL_CONFIG_FILE", large);
  snprintf(line, sizeof line,
           "MMPOOL_CONFIG_FILE: '%s' is larger than 64 KiB (65537 bytes)",
           large);
  expect_error(load_env(env), line);
  const char *limit = write_file("limit.conf", big, CONFIG_TEXT_MAX);
  var(0, "MMPOOL_CONFIG_FILE", limit);
  OK(load_env(env));
  assert_int_equal(pool_index("z"), 0);
  // A NUL byte.
  const char *bin = write_file("bin.conf", "pool a\0pool b\n", 14);
  var(0, "MMPOOL_CONFIG_FILE", bin);
  snprintf(line, sizeof line,
           "MMPOOL_CONFIG_FILE: '%s' holds a NUL byte (not a text file)", bin);
  expect_error(load_env(env), line);
  // An empty file is an empty configuration.
  var(0, "MMPOOL_CONFIG_FILE", write_text("empty.conf", ""));
  OK(load_env(env));
  expect_builtin();

  // Statements of a file are named by file and line.
  const char *f = write_text("lines.conf", "pool a\n"
                                           "\n"
                                           "# comment\n"
                                           "pool a size=1G; route size>=1Q "
                                           "-> a\n"
                                           "route lib=* -> gone\n");
  var(0, "MMPOOL_CONFIG_FILE", f);
  assert_int_equal(load_env(env), 0);
  assert_int_equal(errs.count, 3);
  assert_int_equal(errs.total, 3);
  snprintf(line, sizeof line,
           "%s:4: statement 'pool a size=1G': pool 'a' is defined twice", f);
  assert_string_equal(errs.line[0], line);
  snprintf(line, sizeof line,
           "%s:4: statement 'route size>=1Q -> a': bad size '1Q'", f);
  assert_string_equal(errs.line[1], line);
  snprintf(line, sizeof line,
           "%s:5: statement 'route lib=* -> gone': unknown pool 'gone'", f);
  assert_string_equal(errs.line[2], line);
  assert_int_equal(cfg.fallback, 1);
  expect_builtin();

  // A long path is shown by its tail.
  char longp[300];
  int n = snprintf(longp, sizeof longp, "%s/", dir);
  while (n < 200)
    longp[n++] = 'd';
  snprintf(longp + n, sizeof longp - (size_t)n, "/cfg.conf");
  var(0, "MMPOOL_CONFIG_FILE", longp);
  snprintf(line, sizeof line,
           "MMPOOL_CONFIG_FILE: cannot open '...%s': ENOENT: no such file or "
           "directory",
           longp + strlen(longp) - 117);
  expect_error(load_env(env), line);

  // The file failed: the variable's names of its pools add no message.
  snprintf(path, sizeof path, "%s/missing.conf", dir);
  char *env2[] = {var(0, "MMPOOL_CONFIG_FILE", path),
                  var(1, "MMPOOL_CONFIG",
                      "route size<16 -> from_file; "
                      "default from_file"),
                  NULL};
  snprintf(line, sizeof line,
           "MMPOOL_CONFIG_FILE: cannot open '%s': ENOENT: no such file or directory",
           path);
  expect_error(load_env(env2), line);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_errors_statements),
      cmocka_unit_test(test_errors_routes),
      cmocka_unit_test(test_errors_limits),
      cmocka_unit_test(test_errors_checks),
      cmocka_unit_test(test_errors_file),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
