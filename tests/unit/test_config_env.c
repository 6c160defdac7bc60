// test_config_env.c: the environment the configuration is read from
// (config/config.h): the file before the variable, the option variables
// and their bad values, the fallback to the built-in default after an
// error, MMPOOL_STRICT, and secure execution, which ignores it all.
#define _GNU_SOURCE
#include <errno.h>
#include <sys/auxv.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config.h"
#include "config_test.h"
#include "log.h"

// ---------------------------------------------------------------------------
// Sources and options

static void test_file_then_variable(void **state) {
  (void)state;
  const char *f = write_text("fv.conf", "pool f size=1G\n"
                                        "route size>=1M -> f\n"
                                        "route thread=t* -> v\n"
                                        "default f\n");
  char *env[] = {"HOME=/",
                 var(0, "MMPOOL_CONFIG",
                     "pool v size=2G; "
                     "route size<16 -> v; "
                     "route lib=x -> f; "
                     "default v"),
                 var(1, "MMPOOL_CONFIG_FILE", f), NULL};
  OK(load_env(env));
  assert_int_equal(cfg.npools, 2);
  assert_string_equal(cfg.pools[0].name, "f");
  assert_string_equal(cfg.pools[1].name, "v");
  assert_int_equal(cfg.nroutes, 4);
  assert_int_equal(cfg.routes[0].cond, CONFIG_SIZE);
  assert_int_equal(cfg.routes[0].lo, 1 * MiB);
  assert_int_equal(cfg.routes[0].pool, 0);
  assert_int_equal(cfg.routes[1].cond, CONFIG_THREAD);
  assert_int_equal(cfg.routes[1].pool, 1); // named before the variable
  assert_int_equal(cfg.routes[2].hi, 15);
  assert_int_equal(cfg.routes[2].pool, 1);
  assert_int_equal(cfg.routes[3].cond, CONFIG_LIB);
  assert_int_equal(cfg.routes[3].pool, 0);
  assert_int_equal(cfg.default_pool, 1); // the variable's default wins
  assert_int_equal(cfg.pools[1].spec.full, SPEC_FULL_NULL);
  assert_int_equal(cfg.pools[0].spec.full, SPEC_FULL_FALLBACK);

  // A pool defined in both is defined twice; the variable's statement is
  // the one named.
  const char *f2 = write_text("f2.conf", "pool f size=1G\n");
  char *env2[] = {var(0, "MMPOOL_CONFIG", "pool f size=4G"),
                  var(1, "MMPOOL_CONFIG_FILE", f2), NULL};
  expect_error(load_env(env2), "MMPOOL_CONFIG: statement 1 'pool f size=4G': "
                               "pool 'f' is defined twice");

  // The first of two equal variables counts, as with getenv.
  char *env3[] = {"MMPOOL_CONFIG=pool first", "MMPOOL_CONFIG=pool second",
                  NULL};
  OK(load_env(env3));
  assert_int_equal(pool_index("first"), 0);
  assert_int_equal(pool_index("second"), -1);
}

static void test_options(void **state) {
  (void)state;
  char *env[] = {"MMPOOL_STATS=1", "MMPOOL_LOG=debug", "MMPOOL_STRICT=1", NULL};
  OK(load_env(env));
  assert_int_equal(cfg.stats, 1);
  assert_int_equal(cfg.log_level, LOG_DEBUG);
  assert_int_equal(cfg.strict, 1);
  expect_builtin();

  static const struct {
    const char *v;
    int level;
  } lv[] = {{"error", LOG_ERROR},
            {"warn", LOG_WARN},
            {"info", LOG_INFO},
            {"debug", LOG_DEBUG},
            {"", LOG_WARN}};
  for (unsigned i = 0; i < sizeof lv / sizeof *lv; i++) {
    char *e[] = {var(0, "MMPOOL_LOG", lv[i].v), NULL};
    OK(load_env(e));
    assert_int_equal(cfg.log_level, lv[i].level);
  }
  static const struct {
    const char *v;
    int on;
  } bv[] = {{"1", 1},  {"yes", 1}, {"on", 1},    {"true", 1}, {"0", 0},
            {"no", 0}, {"off", 0}, {"false", 0}, {"", 0}};
  for (unsigned i = 0; i < sizeof bv / sizeof *bv; i++) {
    char *e[] = {var(0, "MMPOOL_STATS", bv[i].v), NULL};
    OK(load_env(e));
    assert_int_equal(cfg.stats, bv[i].on);
  }

  // A bad value: one line, the option keeps its default, the statements
  // stand.
  char *e1[] = {"MMPOOL_STATS=2", "MMPOOL_CONFIG=pool a", NULL};
  assert_int_equal(load_env(e1), 0);
  assert_int_equal(errs.count, 1);
  assert_string_equal(errs.line[0], "MMPOOL_STATS: bad value '2' (0 or 1)");
  assert_int_equal(cfg.stats, 0);
  assert_int_equal(cfg.fallback, 0);
  assert_int_equal(cfg.npools, 2);
  char *e2[] = {"MMPOOL_LOG=loud", NULL};
  assert_int_equal(load_env(e2), 0);
  assert_int_equal(errs.count, 1);
  assert_string_equal(errs.line[0], "MMPOOL_LOG: bad value 'loud' "
                                    "(error, warn, info or debug)");
  assert_int_equal(cfg.log_level, LOG_WARN);
  char *e3[] = {"MMPOOL_STRICT=maybe", NULL};
  assert_int_equal(load_env(e3), 0);
  assert_int_equal(errs.count, 1);
  assert_string_equal(errs.line[0],
                      "MMPOOL_STRICT: bad value 'maybe' (0 or 1)");
  assert_int_equal(cfg.strict, 0);
  char *e4[] = {"MMPOOL_CHECK=paranoid", NULL};
  assert_int_equal(load_env(e4), 0);
  assert_int_equal(errs.count, 1);
  assert_string_equal(errs.line[0],
                      "MMPOOL_CHECK: bad value 'paranoid' (fast or full)");
  assert_int_equal(cfg.check_full, 0);
  char *e5[] = {"MMPOOL_CHECK=full", NULL};
  assert_int_equal(load_env(e5), 0);
  assert_int_equal(errs.count, 0);
  assert_int_equal(cfg.check_full, 1);
  char *e6[] = {"MMPOOL_CHECK=fast", NULL};
  assert_int_equal(load_env(e6), 0);
  assert_int_equal(cfg.check_full, 0);
}

// ---------------------------------------------------------------------------
// Fallback, strict, secure

static void test_fallback_and_strict(void **state) {
  (void)state;
  // Without strict: the built-in default, the options kept, return 0.
  char *env[] = {"MMPOOL_STATS=1", "MMPOOL_LOG=info",
                 "MMPOOL_CONFIG=pool a size=1G; route size<16 -> a; bogus",
                 NULL};
  assert_int_equal(load_env(env), 0);
  assert_int_equal(errs.count, 1);
  expect_builtin();
  assert_int_equal(cfg.fallback, 1);
  assert_int_equal(cfg.stats, 1);
  assert_int_equal(cfg.log_level, LOG_INFO);
  assert_int_equal(cfg.strict, 0);

  // Strict: -EINVAL, the same default and lines.
  char *env2[] = {"MMPOOL_STRICT=1",
                  "MMPOOL_CONFIG=pool a size=1G; route size<16 -> a; bogus",
                  NULL};
  assert_int_equal(load_env(env2), -EINVAL);
  assert_int_equal(errs.count, 1);
  assert_string_equal(errs.line[0], "MMPOOL_CONFIG: statement 3 'bogus': "
                                    "unknown statement 'bogus' (pool, route "
                                    "or default)");
  expect_builtin();
  assert_int_equal(cfg.fallback, 1);
  assert_int_equal(cfg.strict, 1);

  // Strict and no error: 0.
  char *env3[] = {"MMPOOL_STRICT=1", "MMPOOL_CONFIG=pool a size=1G", NULL};
  OK(load_env(env3));
  assert_int_equal(cfg.npools, 2);

  // Strict and a bad option value: -EINVAL, the statements stand.
  char *env4[] = {"MMPOOL_STRICT=1", "MMPOOL_LOG=chatty",
                  "MMPOOL_CONFIG=pool a size=1G", NULL};
  assert_int_equal(load_env(env4), -EINVAL);
  assert_int_equal(errs.count, 1);
  assert_int_equal(cfg.fallback, 0);
  assert_int_equal(cfg.npools, 2);

  // Strict with a missing file.
  char *env5[] = {"MMPOOL_STRICT=1", "MMPOOL_CONFIG_FILE=/nonexistent/x", NULL};
  assert_int_equal(load_env(env5), -EINVAL);
  assert_string_equal(errs.line[0], "MMPOOL_CONFIG_FILE: cannot open "
                                    "'/nonexistent/x': ENOENT: no such file or "
                                    "directory");
  expect_builtin();
}

static void test_secure(void **state) {
  (void)state;
  char *env[] = {"MMPOOL_STATS=1",
                 "MMPOOL_LOG=debug",
                 "MMPOOL_STRICT=1",
                 "MMPOOL_CONFIG=pool a; bogus",
                 "MMPOOL_CONFIG_FILE=/nonexistent/x",
                 NULL};
  memset(&errs, 0x5a, sizeof errs);
  assert_int_equal(config_load_from(&cfg, env, 1, &errs), 0);
  assert_int_equal(errs.count, 0);
  assert_int_equal(errs.total, 0);
  expect_builtin();
  assert_int_equal(cfg.fallback, 0);
  assert_int_equal(cfg.stats, 0);
  assert_int_equal(cfg.log_level, LOG_WARN);
  assert_int_equal(cfg.strict, 0);
  // A good configuration is ignored too.
  char *env2[] = {"MMPOOL_CONFIG=pool a; default a", NULL};
  assert_int_equal(config_load_from(&cfg, env2, 1, &errs), 0);
  expect_builtin();

  // config_load decides with getauxval(AT_SECURE), 0 for this test.
  assert_int_equal(getauxval(AT_SECURE), 0);
  char *env3[] = {"MMPOOL_STRICT=1", "MMPOOL_CONFIG=pool a; bogus", NULL};
  assert_int_equal(config_load(&cfg, env3, &errs), -EINVAL);
  assert_int_equal(errs.count, 1);
  assert_int_equal(config_load(&cfg, env2, &errs), 0);
  assert_int_equal(cfg.npools, 1);
  assert_string_equal(cfg.pools[0].name, "a");
  assert_int_equal(cfg.pools[0].implicit, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_file_then_variable),
      cmocka_unit_test(test_options),
      cmocka_unit_test(test_fallback_and_strict),
      cmocka_unit_test(test_secure),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
