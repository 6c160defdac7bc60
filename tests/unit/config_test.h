// config_test.h: what the unit tests of the configuration module
// (test_config_*.c) share: the loaded struct and its error lines, an
// environment built in place, files in a scratch directory (the group
// fixtures setup and teardown), and the checks of a load: OK, expect_error,
// expect_builtin.
//
// Each test program includes it once and gets its own copy of the buffers
// (about 1 MiB of text for long variables and files).
#ifndef MMPOOL_CONFIG_TEST_H
#define MMPOOL_CONFIG_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config.h"

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)
#define TiB ((uint64_t)1 << 40)

// The last load's result and lines; dir is the scratch directory.
static struct mmpool_config cfg;
static struct config_errors errs;
static char dir[64];
// Room for long variables and files (not every program uses it).
static char big[3 * CONFIG_TEXT_MAX] __attribute__((unused));
static char envbuf[4][3 * CONFIG_TEXT_MAX + 64];

// Group fixtures: a scratch directory for the files a test writes, its
// path kept short so that the paths built in it fit their buffers.
static inline int setup(void **state) {
  (void)state;
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/tcfg.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (strlen(dir) > 40) snprintf(dir, sizeof dir, "/tmp/tcfg.XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

static inline int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

// "NAME=VALUE" in envbuf[slot].
static inline char *var(int slot, const char *name, const char *value) {
  snprintf(envbuf[slot], sizeof envbuf[slot], "%s=%s", name, value);
  return envbuf[slot];
}

// Loads envp (not secure); errs is poisoned first.
static inline int load_env(char **envp) {
  memset(&errs, 0x5a, sizeof errs);
  return config_load_from(&cfg, envp, 0, &errs);
}

// Loads MMPOOL_CONFIG=text (and nothing else).
static inline int load(const char *text) {
  char *env[] = {var(0, "MMPOOL_CONFIG", text), NULL};
  return load_env(env);
}

// Writes n bytes of text to dir/name; the path returned stays valid for
// the next three calls.
static inline const char *write_file(const char *name, const char *text,
                                     size_t n) {
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

static inline const char *write_text(const char *name, const char *text) {
  return write_file(name, text, strlen(text));
}

static inline void print_errors(void) {
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

// The built-in default: one implicit anonymous pool of 64G, full=null.
static inline void expect_builtin(void) {
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
static inline void expect_error(int r, const char *line) {
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
static inline void var_error(const char *text, const char *line) {
  expect_error(load(text), line);
}

// The index of the pool called name, or -1.
static inline int pool_index(const char *name) {
  for (unsigned i = 0; i < cfg.npools; i++)
    if (strcmp(cfg.pools[i].name, name) == 0) return (int)i;
  return -1;
}

#endif // MMPOOL_CONFIG_TEST_H
