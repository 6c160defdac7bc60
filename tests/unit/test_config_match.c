// test_config_match.c: the matching the preload library does with the
// routes it is given (config/config.h): glob patterns, and lib= patterns
// against a module's file name or, with a '/', its whole path.
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config.h"
#include "config_test.h"

static void test_glob(void **state) {
  (void)state;
  static const struct {
    const char *p, *t;
    int m;
  } cases[] = {
      {"", "", 1},
      {"", "a", 0},
      {"a", "", 0},
      {"*", "", 1},
      {"*", "anything/at all", 1},
      {"**", "x", 1},
      {"?", "", 0},
      {"?", "x", 1},
      {"?", "xy", 0},
      {"abc", "abc", 1},
      {"abc", "abd", 0},
      {"abc", "ab", 0},
      {"abc", "abcd", 0},
      {"ABC", "abc", 0},
      {"lib*.so", "libc.so", 1},
      {"lib*.so", "libc.so.6", 0},
      {"lib*.so*", "libc.so.6", 1},
      {"libpython3*.so*", "libpython3.11.so.1.0", 1},
      {"libpython3*.so*", "libpython2.7.so", 0},
      {"*.so.?", "libz.so.1", 1},
      {"*.so.?", "libz.so.12", 0},
      {"a*b*c", "aXXbYYc", 1},
      {"a*b*c", "abc", 1},
      {"a*b*c", "acb", 0},
      {"a*b*c", "aXbXbXc", 1},
      {"a*b", "aXbXbX", 0},
      {"*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0},
      {"*aab", "aaaab", 1},
      {"worker-?", "worker-1", 1},
      {"worker-?", "worker-12", 0},
      {"worker-*", "worker-", 1},
      {"/usr/lib/*/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1", 1},
      {"Web Content", "Web Content", 1},
      {"a\\*", "a\\xyz", 1}, // no escapes: '\' is a literal
      {"[ab]", "a", 0},      // no classes: '[' is a literal
      {"[ab]", "[ab]", 1},
  };
  for (unsigned i = 0; i < sizeof cases / sizeof *cases; i++) {
    int m = config_glob_match(cases[i].p, cases[i].t);
    if (m != cases[i].m)
      fail_msg("config_glob_match(\"%s\", \"%s\") = %d, expected %d",
               cases[i].p, cases[i].t, m, cases[i].m);
  }
}

// The patterns of lib= and thread= routes, parsed and matched as the
// preload library matches them (shim/route.c evaluates the routes).
static void test_route_patterns(void **state) {
  (void)state;
  OK(load("pool small; pool big; pool py; pool net; pool any\n"
          "route thread=net-* -> net\n"
          "route size>=1M -> big\n"
          "route lib=libpython3* -> py\n"
          "route lib=/opt/*/libz.so -> small\n"
          "route size=1..16 -> small\n"
          "route size<1 -> any\n"
          "default any"));
  unsigned small = 0, bigp = 1, py = 2, net = 3, any = 4;
  assert_int_equal(cfg.default_pool, any);
  // In their order, each with its pool.
  const struct {
    int cond;
    unsigned pool;
  } want[] = {{CONFIG_THREAD, net}, {CONFIG_SIZE, bigp},  {CONFIG_LIB, py},
              {CONFIG_LIB, small},  {CONFIG_SIZE, small}, {CONFIG_SIZE, any}};
  assert_int_equal(cfg.nroutes, sizeof want / sizeof *want);
  for (unsigned i = 0; i < sizeof want / sizeof *want; i++) {
    assert_int_equal(cfg.routes[i].cond, want[i].cond);
    assert_int_equal(cfg.routes[i].pool, want[i].pool);
  }
  assert_int_equal(cfg.lib_routes, 2);
  assert_int_equal(cfg.thread_routes, 1);

  // A pattern without '/' sees the file name, one with '/' the path.
  const struct config_route *pyr = &cfg.routes[2], *zr = &cfg.routes[3];
  assert_int_equal(pyr->glob_path, 0);
  assert_int_equal(zr->glob_path, 1);
  assert_true(config_route_lib_match(pyr, "/usr/lib/libpython3.11.so.1.0"));
  assert_true(config_route_lib_match(pyr, "libpython3.11.so"));
  assert_true(config_route_lib_match(pyr, "/opt/libpython3.so"));
  assert_false(config_route_lib_match(pyr, "/usr/libpython3/x.so"));
  assert_false(config_route_lib_match(pyr, "libc.so.6"));
  assert_true(config_route_lib_match(zr, "/opt/x/libz.so"));
  assert_false(config_route_lib_match(zr, "libz.so"));
  // A thread= pattern is matched against the whole name.
  assert_true(config_glob_match(cfg.routes[0].glob, "net-rx"));
  assert_true(config_glob_match(cfg.routes[0].glob, "net-tx"));
  assert_false(config_glob_match(cfg.routes[0].glob, "main"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_glob),
      cmocka_unit_test(test_route_patterns),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
