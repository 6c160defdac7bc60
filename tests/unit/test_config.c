// test_config.c: the configuration module (config/config.h): every statement
// kind parsed into the struct, comments and separators, the file read before
// the variable, each error with its exact one-line message, the fallback to
// the built-in default and MMPOOL_STRICT, secure mode, glob matching, the
// patterns of lib= and thread= routes, the description, and that loading
// never allocates or leaks its scratch mapping.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config.h"
#include "log.h"

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)
#define TiB ((uint64_t)1 << 40)

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
// Helpers

static struct mmpool_config cfg;
static struct config_errors errs;
static char dir[64];
static char big[3 * CONFIG_TEXT_MAX]; // long variables and files
static char envbuf[4][3 * CONFIG_TEXT_MAX + 64];

static int setup(void **state) {
  (void)state;
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/tcfg.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (strlen(dir) > 40) snprintf(dir, sizeof dir, "/tmp/tcfg.XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

// "NAME=VALUE" in envbuf[slot].
static char *var(int slot, const char *name, const char *value) {
  snprintf(envbuf[slot], sizeof envbuf[slot], "%s=%s", name, value);
  return envbuf[slot];
}

static int load_env(char **envp) {
  memset(&errs, 0x5a, sizeof errs);
  return config_load_from(&cfg, envp, 0, &errs);
}

// Loads MMPOOL_CONFIG=text (and nothing else).
static int load(const char *text) {
  char *env[] = {var(0, "MMPOOL_CONFIG", text), NULL};
  return load_env(env);
}

static const char *write_file(const char *name, const char *text, size_t n) {
  static char path[4][256];
  static int k;
  char *p = path[k++ % 4];
  snprintf(p, 256, "%s/%s", dir, name);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, n), (ssize_t)n);
  close(fd);
  return p;
}

static const char *write_text(const char *name, const char *text) {
  return write_file(name, text, strlen(text));
}

static void print_errors(void) {
  for (unsigned i = 0; i < errs.count && i < CONFIG_MAX_ERRORS; i++)
    print_message("  error %u: %s\n", i, errs.line[i]);
}

// Loaded without a single error, not the fallback.
#define OK(call)                                                               \
  do {                                                                         \
    int r_ = (call);                                                           \
    if (r_ != 0 || errs.count != 0 || errs.total != 0 || cfg.fallback) {       \
      print_errors();                                                          \
      fail_msg("%s = %d with %u errors, fallback %d", #call, r_, errs.total,   \
               cfg.fallback);                                                  \
    }                                                                          \
  } while (0)

static void expect_builtin(void) {
  assert_int_equal(cfg.npools, 1);
  assert_int_equal(cfg.nroutes, 0);
  assert_int_equal(cfg.default_pool, 0);
  assert_int_equal(cfg.lib_routes, 0);
  assert_int_equal(cfg.thread_routes, 0);
  assert_string_equal(cfg.pools[0].name, "default");
  assert_int_equal(cfg.pools[0].implicit, 1);
  const struct pool_spec *sp = &cfg.pools[0].spec;
  assert_int_equal(sp->file, 0);
  assert_int_equal(sp->size, 64 * GiB);
  assert_int_equal(sp->base, 0);
  assert_int_equal(sp->full, SPEC_FULL_NULL);
  assert_int_equal(sp->brk, 0);
}

// Exactly one error, this line; the statements were discarded.
static void expect_error(int r, const char *line) {
  if (r != 0 || errs.count != 1 || errs.total != 1 ||
      strcmp(errs.line[0], line) != 0) {
    print_errors();
    fail_msg("r = %d, %u errors; expected the single line\n  %s", r, errs.total,
             line);
  }
  assert_null(strchr(errs.line[0], '\n'));
  assert_int_equal(cfg.fallback, 1);
  expect_builtin();
}

// MMPOOL_CONFIG=text gives exactly this error line.
static void var_error(const char *text, const char *line) {
  expect_error(load(text), line);
}

static int pool_index(const char *name) {
  for (unsigned i = 0; i < cfg.npools; i++)
    if (strcmp(cfg.pools[i].name, name) == 0) return (int)i;
  return -1;
}

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
}

// ---------------------------------------------------------------------------
// Errors, each with its exact line

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
           "MMPOOL_CONFIG_FILE: cannot open '%s': no such file or directory",
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
           "MMPOOL_CONFIG_FILE: cannot open '%s': is a symbolic link", path);
  expect_error(load_env(env), line);
  // Unreadable: root reads it all the same.
  const char *locked = write_text("locked.conf", "pool l\n");
  assert_int_equal(chmod(locked, 0), 0);
  var(0, "MMPOOL_CONFIG_FILE", locked);
  if (geteuid() != 0) {
    snprintf(line, sizeof line,
             "MMPOOL_CONFIG_FILE: cannot open '%s': permission denied", locked);
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
           "MMPOOL_CONFIG_FILE: cannot open '...%s': no such file or "
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
           "MMPOOL_CONFIG_FILE: cannot open '%s': no such file or directory",
           path);
  expect_error(load_env(env2), line);
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
                                    "'/nonexistent/x': no such file or "
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

// ---------------------------------------------------------------------------
// Glob, route patterns, description

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
      "# MMPOOL_STATS=1 MMPOOL_LOG=info MMPOOL_STRICT=0\n"
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
                                   "MMPOOL_STRICT=0\n"),
                      want + strlen("# MMPOOL_STATS=1 MMPOOL_LOG=info "
                                    "MMPOOL_STRICT=0\n"));
  assert_memory_equal(buf, "# MMPOOL_STATS=0 MMPOOL_LOG=warn MMPOOL_STRICT=0\n",
                      49);

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
                           "MMPOOL_STRICT=0\n"
                           "pool default anon size=64G base=auto full=null\n"
                           "default default\n");
  char *env2[] = {"MMPOOL_STRICT=1", "MMPOOL_CONFIG=bogus", NULL};
  assert_int_equal(load_env(env2), -EINVAL);
  config_describe(&cfg, buf, sizeof buf);
  assert_string_equal(buf, "# MMPOOL_STATS=0 MMPOOL_LOG=warn "
                           "MMPOOL_STRICT=1\n"
                           "# the configuration had errors: the built-in "
                           "default is used\n"
                           "pool default anon size=64G base=auto full=null\n"
                           "default default\n");
}

// ---------------------------------------------------------------------------
// Never allocates; leaves no mapping behind

// The process's mapped size in pages (/proc/self/statm), read without
// stdio: a scratch mapping left behind would grow it (a line count of
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

// No address space for the scratch mapping: one line, the default.
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
                      "MMPOOL_CONFIG: cannot parse it: out of memory");
  assert_int_equal(r2, -EINVAL);
  assert_int_equal(errs.count, 1);
  assert_string_equal(errs.line[0],
                      "MMPOOL_CONFIG_FILE: cannot parse it: out of memory");
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
      cmocka_unit_test(test_no_config),
      cmocka_unit_test(test_pool_statement),
      cmocka_unit_test(test_route_statements),
      cmocka_unit_test(test_default_statement),
      cmocka_unit_test(test_comments_and_separators),
      cmocka_unit_test(test_file_then_variable),
      cmocka_unit_test(test_options),
      cmocka_unit_test(test_errors_statements),
      cmocka_unit_test(test_errors_routes),
      cmocka_unit_test(test_errors_limits),
      cmocka_unit_test(test_errors_checks),
      cmocka_unit_test(test_errors_file),
      cmocka_unit_test(test_fallback_and_strict),
      cmocka_unit_test(test_secure),
      cmocka_unit_test(test_glob),
      cmocka_unit_test(test_route_patterns),
      cmocka_unit_test(test_describe),
      cmocka_unit_test(test_errors_no_memory),
      cmocka_unit_test(test_no_allocation),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
