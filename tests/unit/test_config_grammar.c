// test_config_grammar.c: the statements of the configuration grammar
// (config/config.h) parsed into the struct: no configuration at all, each
// statement kind, default pools, comments and separators in the variable
// and in a file; and the description, which renders the struct back as
// statements that parse to the same configuration.
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config.h"
#include "config_test.h"
#include "log.h"

// ---------------------------------------------------------------------------
// No configuration

static void test_no_config(void **state) {
  (void)state;
  OK(load_env(NULL));
  expect_builtin();
  assert_int_equal(cfg.stats, 0);
  assert_int_equal(cfg.log_level, LOG_WARN);
  assert_int_equal(cfg.strict, 0);

  // Names that only look alike are not ours.
  char *env[] = {"PATH=/bin",
                 "MMPOOL_CONFIGX=pool a",
                 "XMMPOOL_CONFIG=bad",
                 "MMPOOL_CONFIG",
                 "MMPOOL_STATS",
                 "MMPOOL_CONFIG_FILE=",
                 NULL};
  OK(load_env(env));
  expect_builtin();

  // An empty or blank variable, or only comments, is no configuration.
  OK(load(""));
  expect_builtin();
  OK(load(" ;\n ; # nothing here\n\t"));
  expect_builtin();

  // errs may be NULL.
  char *env2[] = {"MMPOOL_CONFIG=pool a size=1G", NULL};
  assert_int_equal(config_load_from(&cfg, env2, 0, NULL), 0);
  assert_int_equal(cfg.npools, 2);
  char *env3[] = {"MMPOOL_CONFIG=bogus", NULL};
  assert_int_equal(config_load_from(&cfg, env3, 0, NULL), 0);
  assert_int_equal(cfg.fallback, 1);
  expect_builtin();

  config_default(&cfg);
  expect_builtin();
  assert_int_equal(cfg.fallback, 0);
}

// ---------------------------------------------------------------------------
// Statements

static void test_pool_statement(void **state) {
  (void)state;
  OK(load("pool big file=/tmp/x.pool mode=private size=8G "
          "base=0x300000000000 full=abort recover;"
          "pool small anon size=1M brk\n"
          "pool Mixed_1.2-3 full=null"));
  assert_int_equal(cfg.npools, 4);
  assert_string_equal(cfg.pools[0].name, "big");
  assert_string_equal(cfg.pools[1].name, "small");
  assert_string_equal(cfg.pools[2].name, "Mixed_1.2-3");
  assert_string_equal(cfg.pools[3].name, "default");
  for (int i = 0; i < 3; i++)
    assert_int_equal(cfg.pools[i].implicit, 0);
  assert_int_equal(cfg.pools[3].implicit, 1);
  assert_int_equal(cfg.default_pool, 3);

  const struct pool_spec *b = &cfg.pools[0].spec;
  assert_int_equal(b->file, 1);
  assert_string_equal(b->path, "/tmp/x.pool");
  assert_int_equal(b->mode, SPEC_PRIVATE);
  assert_int_equal(b->size, 8 * GiB);
  assert_int_equal(b->size_set, 1);
  assert_int_equal(b->base, 0x300000000000ull);
  assert_int_equal(b->full, SPEC_FULL_ABORT);
  assert_int_equal(b->recover, 1);
  assert_int_equal(b->brk, 0);

  const struct pool_spec *s = &cfg.pools[1].spec;
  assert_int_equal(s->file, 0);
  assert_int_equal(s->size, 1 * MiB);
  assert_int_equal(s->brk, 1);
  assert_int_equal(s->full, SPEC_FULL_FALLBACK); // not the default pool

  const struct pool_spec *m = &cfg.pools[2].spec;
  assert_int_equal(m->size, 64 * GiB);
  assert_int_equal(m->size_set, 0);
  assert_int_equal(m->full, SPEC_FULL_NULL);

  // A name of 47 characters is the longest.
  char text[128];
  snprintf(text, sizeof text, "pool %.47s size=2M",
           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
  OK(load(text));
  assert_int_equal(strlen(cfg.pools[0].name), 47);
  assert_int_equal(cfg.pools[0].spec.size, 2 * MiB);
}

static void test_route_statements(void **state) {
  (void)state;
  OK(load("pool a size=1G; pool b size=1G\n"
          "route size>=1M -> a\n"                 // 0
          "route size<64 -> b\n"                  // 1
          "route size=1K..4K -> a\n"              // 2
          "route size = 100 -> b\n"               // 3
          "route size>2G -> a\n"                  // 4
          "route size<=16->b\n"                   // 5
          "route lib=libpython3*.so* -> a\n"      // 6
          "route thread=worker-? -> b\n"          // 7
          "route lib=/usr/lib/*/libz.so.1 -> a\n" // 8
          "route thread = Web Content -> b\n"     // 9
          "route size=0x10..0x20 -> default\n"    // 10
          "route size>=0 -> a\n"                  // 11
          "route thread=a->b -> a\n"));           // 12
  assert_int_equal(cfg.nroutes, 13);
  assert_int_equal(cfg.npools, 3);
  unsigned a = 0, b = 1, d = 2;
  assert_int_equal(cfg.default_pool, d);
  const struct config_route *r = cfg.routes;
  struct {
    int cond;
    uint64_t lo, hi;
    unsigned pool;
    const char *glob;
    int glob_path;
  } want[] = {
      {CONFIG_SIZE, 1 * MiB, UINT64_MAX, a, NULL, 0},
      {CONFIG_SIZE, 0, 63, b, NULL, 0},
      {CONFIG_SIZE, 1 * KiB, 4 * KiB, a, NULL, 0},
      {CONFIG_SIZE, 100, 100, b, NULL, 0},
      {CONFIG_SIZE, 2 * GiB + 1, UINT64_MAX, a, NULL, 0},
      {CONFIG_SIZE, 0, 16, b, NULL, 0},
      {CONFIG_LIB, 0, 0, a, "libpython3*.so*", 0},
      {CONFIG_THREAD, 0, 0, b, "worker-?", 0},
      {CONFIG_LIB, 0, 0, a, "/usr/lib/*/libz.so.1", 1},
      {CONFIG_THREAD, 0, 0, b, "Web Content", 0},
      {CONFIG_SIZE, 16, 32, d, NULL, 0},
      {CONFIG_SIZE, 0, UINT64_MAX, a, NULL, 0},
      {CONFIG_THREAD, 0, 0, a, "a->b", 0},
  };
  for (unsigned i = 0; i < sizeof want / sizeof *want; i++) {
    int same = r[i].cond == want[i].cond && r[i].pool == want[i].pool;
    if (want[i].cond == CONFIG_SIZE)
      same = same && r[i].lo == want[i].lo && r[i].hi == want[i].hi;
    else
      same = same && strcmp(r[i].glob, want[i].glob) == 0 &&
             r[i].glob_path == want[i].glob_path;
    if (!same)
      fail_msg("route %u: cond %d pool %u lo %llu hi %llu glob '%s' (%d)", i,
               r[i].cond, r[i].pool, (unsigned long long)r[i].lo,
               (unsigned long long)r[i].hi, r[i].glob, r[i].glob_path);
  }
  assert_int_equal(cfg.lib_routes, 2);
  assert_int_equal(cfg.thread_routes, 3);

  // The longest pattern.
  char text[300];
  memset(big, 'x', CONFIG_GLOB_MAX - 1);
  big[CONFIG_GLOB_MAX - 1] = 0;
  snprintf(text, sizeof text, "route lib=%.200s -> default", big);
  OK(load(text));
  assert_int_equal(strlen(cfg.routes[0].glob), CONFIG_GLOB_MAX - 1);
}

static void test_default_statement(void **state) {
  (void)state;
  // default NAME: no implicit pool; the default pool's full= becomes null.
  OK(load("pool a; pool b size=2G; default b"));
  assert_int_equal(cfg.npools, 2);
  assert_int_equal(cfg.default_pool, 1);
  assert_int_equal(cfg.pools[1].spec.full, SPEC_FULL_NULL);
  assert_int_equal(cfg.pools[0].spec.full, SPEC_FULL_FALLBACK);

  // An explicit pool named default is the default.
  OK(load("pool x; pool default size=1G"));
  assert_int_equal(cfg.npools, 2);
  assert_int_equal(cfg.default_pool, 1);
  assert_int_equal(cfg.pools[1].implicit, 0);
  assert_int_equal(cfg.pools[1].spec.size, 1 * GiB);
  assert_int_equal(cfg.pools[1].spec.full, SPEC_FULL_NULL);
  OK(load("pool default size=1G full=abort"));
  assert_int_equal(cfg.npools, 1);
  assert_int_equal(cfg.pools[0].spec.full, SPEC_FULL_ABORT);

  // `default default` names the implicit pool.
  OK(load("pool a; default default"));
  assert_int_equal(cfg.npools, 2);
  assert_int_equal(cfg.default_pool, 1);
  assert_int_equal(cfg.pools[1].implicit, 1);

  // "default" in a route means the default pool when no pool has the name.
  OK(load("pool a; default a; route size<16 -> default"));
  assert_int_equal(cfg.npools, 1);
  assert_int_equal(cfg.routes[0].pool, 0);
  OK(load("pool a; route size<16 -> default"));
  assert_int_equal(cfg.npools, 2);
  assert_int_equal(cfg.routes[0].pool, 1);

  // The last default wins.
  OK(load("pool a; pool b; default a; default b"));
  assert_int_equal(cfg.default_pool, 1);

  // Names may be used before their pool statement.
  OK(load("route size>=1M -> late; default late; pool late size=4G"));
  assert_int_equal(cfg.npools, 1);
  assert_int_equal(cfg.default_pool, 0);
  assert_int_equal(cfg.routes[0].pool, 0);
}

static void test_comments_and_separators(void **state) {
  (void)state;
  // In the variable a comment ends at the end of its statement.
  OK(load("  ;; # just a comment\n pool a size=1G # the a ; pool b\n\n"
          ";route size<16 -> b # to b\r\n\t; ;"));
  assert_int_equal(cfg.npools, 3);
  assert_int_equal(pool_index("a"), 0);
  assert_int_equal(pool_index("b"), 1);
  assert_int_equal(cfg.pools[0].spec.size, 1 * GiB);
  assert_int_equal(cfg.nroutes, 1);
  assert_int_equal(cfg.routes[0].pool, 1);
  assert_int_equal(cfg.routes[0].hi, 15);

  // Statements are counted without the empty ones and the comments.
  var_error("  ; # c ; pool a;\n\n bogus",
            "MMPOOL_CONFIG: statement 2 'bogus': unknown statement 'bogus' "
            "(pool, route or default)");

  // In the file a comment runs to the end of the line.
  const char *f = write_text("c.conf", "# header; pool x size=1G\n"
                                       "pool a # comment; pool b\n"
                                       "\n"
                                       "  route size<16 -> a ; "
                                       "route size>=1G -> a\r\n"
                                       "pool c;pool d\n");
  char *env[] = {var(0, "MMPOOL_CONFIG_FILE", f), NULL};
  OK(load_env(env));
  assert_int_equal(cfg.npools, 4); // a c d default
  assert_int_equal(pool_index("x"), -1);
  assert_int_equal(pool_index("b"), -1);
  assert_int_equal(pool_index("c"), 1);
  assert_int_equal(pool_index("d"), 2);
  assert_int_equal(cfg.nroutes, 2);
}

// ---------------------------------------------------------------------------
// The description

static void test_describe(void **state) {
  (void)state;
  char *env[] = {"MMPOOL_STATS=1", "MMPOOL_LOG=info",
                 "MMPOOL_CONFIG=pool f file=/tmp/f.pool mode=private "
                 "base=0x300000000000 full=abort recover;"
                 "pool g file=/tmp/g.pool;"
                 "pool small size=1536M brk full=null;"
                 "pool odd size=1048577;"
                 "route size>=1M -> f; route size<4K -> small;"
                 "route size=16..32 -> odd; route size=100 -> odd;"
                 "route size>0 -> g; route size<=64 -> g;"
                 "route lib=libpython3* -> default;"
                 "route thread=net-? -> small",
                 NULL};
  OK(load_env(env));
  static const char want[] =
      "# MMPOOL_STATS=1 MMPOOL_LOG=info MMPOOL_STRICT=0 MMPOOL_CHECK=fast\n"
      "pool f file=/tmp/f.pool mode=private base=0x300000000000 full=abort "
      "recover\n"
      "pool g file=/tmp/g.pool base=auto full=fallback\n"
      "pool small anon size=1536M base=auto full=null brk\n"
      "pool odd anon size=1048577 base=auto full=fallback\n"
      "pool default anon size=64G base=auto full=null\n"
      "route size>=1M -> f\n"
      "route size<4K -> small\n"
      "route size=16..32 -> odd\n"
      "route size=100 -> odd\n"
      "route size>=1 -> g\n"
      "route size<65 -> g\n"
      "route lib=libpython3* -> default\n"
      "route thread=net-? -> small\n"
      "default default\n";
  char buf[2048];
  size_t n = config_describe(&cfg, buf, sizeof buf);
  assert_string_equal(buf, want);
  assert_int_equal(n, strlen(want));

  // The description parses back to the same configuration.
  static char again[2048];
  memcpy(again, buf, n + 1);
  OK(load(again));
  n = config_describe(&cfg, buf, sizeof buf);
  assert_string_equal(buf + strlen("# MMPOOL_STATS=1 MMPOOL_LOG=info "
                                   "MMPOOL_STRICT=0 MMPOOL_CHECK=fast\n"),
                      want + strlen("# MMPOOL_STATS=1 MMPOOL_LOG=info "
                                    "MMPOOL_STRICT=0 MMPOOL_CHECK=fast\n"));
  assert_memory_equal(buf, "# MMPOOL_STATS=0 MMPOOL_LOG=warn MMPOOL_STRICT=0 "
                      "MMPOOL_CHECK=fast\n", 67);

  // A small buffer: cut, NUL-terminated, and the whole length returned.
  char small[40];
  memset(small, 'Z', sizeof small);
  assert_int_equal(config_describe(&cfg, small, sizeof small), n);
  assert_int_equal(strlen(small), sizeof small - 1);
  assert_memory_equal(small, buf, sizeof small - 1);
  assert_int_equal(config_describe(&cfg, NULL, 0), n);
  char one[1] = {'Z'};
  assert_int_equal(config_describe(&cfg, one, 1), n);
  assert_int_equal(one[0], 0);

  // One line at a time.
  char line[256];
  assert_int_equal(config_describe_pool(&cfg, 2, line, sizeof line),
                   strlen("pool small anon size=1536M base=auto full=null "
                          "brk"));
  assert_string_equal(line, "pool small anon size=1536M base=auto full=null "
                            "brk");
  config_describe_route(&cfg, 7, line, sizeof line);
  assert_string_equal(line, "route thread=net-? -> small");
  assert_int_equal(config_describe_route(&cfg, 8, line, sizeof line), 0);
  assert_string_equal(line, "");
  assert_int_equal(config_describe_pool(&cfg, 5, line, sizeof line), 0);

  // The built-in default, and the fallback note.
  config_default(&cfg);
  config_describe(&cfg, buf, sizeof buf);
  assert_string_equal(buf, "# MMPOOL_STATS=0 MMPOOL_LOG=warn "
                           "MMPOOL_STRICT=0 MMPOOL_CHECK=fast\n"
                           "pool default anon size=64G base=auto full=null\n"
                           "default default\n");
  char *env2[] = {"MMPOOL_STRICT=1", "MMPOOL_CONFIG=bogus", NULL};
  assert_int_equal(load_env(env2), -EINVAL);
  config_describe(&cfg, buf, sizeof buf);
  assert_string_equal(buf, "# MMPOOL_STATS=0 MMPOOL_LOG=warn "
                           "MMPOOL_STRICT=1 MMPOOL_CHECK=fast\n"
                           "# the configuration had errors: the built-in "
                           "default is used\n"
                           "pool default anon size=64G base=auto full=null\n"
                           "default default\n");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_config),
      cmocka_unit_test(test_pool_statement),
      cmocka_unit_test(test_route_statements),
      cmocka_unit_test(test_default_statement),
      cmocka_unit_test(test_comments_and_separators),
      cmocka_unit_test(test_describe),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
