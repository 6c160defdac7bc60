// test_tool.c: the mmpool command-line tool, run as a user runs it.
//
// `test_tool usage`: help (every command of the contract, each command's
// usage), version, bad usage, `run --explain` (no program runs under the
// preload library). `test_tool run`: `mmpool run` itself, with tool_probe
// reporting whether the preload library is loaded, which configuration
// file it got and what LD_PRELOAD became; `run --stats` and its report; and
// the search for the library in a build tree and in an installed tree
// (copies in a scratch directory). Every child gets the test's environment
// without LD_PRELOAD and MMPOOL_*, plus what the case sets; its stdout and
// stderr are kept apart and compared whole where the output is fixed.
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "scratch.h"
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mmpool.h"

// TOOL, PROBE, PRELOAD, LIBMMPOOL, PRELOAD_NAME, LIBDIR, FULL_LIBDIR,
// PROJECT_VERSION: from tests/tool/CMakeLists.txt.

// The commands of the product contract (DESIGN.md), and whether this
// version has them.
static const struct {
  const char *name;
  int available;
} commands[] = {{"run", 1},     {"info", 1},     {"check", 1},
                {"map", 1},     {"relocate", 1}, {"snapshot", 1},
                {"upgrade", 1}, {"help", 1},     {"version", 1}};
#define NCOMMANDS (sizeof commands / sizeof *commands)

// ---------------------------------------------------------------------------
// Helpers

static int group_setup(void **state) {
  (void)state;
  return scratch_setup("tool");
}

static int group_teardown(void **state) {
  (void)state;
  return scratch_teardown();
}

static void write_file(const char *path, const char *text, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  assert_true(fd >= 0);
  size_t n = strlen(text);
  assert_int_equal(write(fd, text, n), (ssize_t)n);
  close(fd);
}

static void copy_file(const char *from, const char *to, mode_t mode) {
  char *cmd;
  assert_true(asprintf(&cmd, "cp '%s' '%s' && chmod %o '%s'", from, to,
                       (unsigned)mode, to) > 0);
  assert_int_equal(system(cmd), 0);
  free(cmd);
}

static void mkdirs(const char *path) {
  char *cmd;
  assert_true(asprintf(&cmd, "mkdir -p '%s'", path) > 0);
  assert_int_equal(system(cmd), 0);
  free(cmd);
}

// Runs argv[0] with argv, the test's environment less LD_PRELOAD and
// MMPOOL_*, plus env (NULL-terminated "VAR=VALUE" strings, may be NULL).
static struct child_res run_env(const char *const *argv,
                                const char *const *env) {
  return child_capture(argv, env, "child");
}

#define TOOL_ARGS(...) ((const char *const[]){TOOL, __VA_ARGS__, NULL})
#define ENV(...) ((const char *const[]){__VA_ARGS__, NULL})

static struct child_res tool(const char *const *argv) {
  return run_env(argv, NULL);
}

// Exactly one line, starting "mmpool: ".
static void assert_one_line(const char *s) {
  assert_true(strncmp(s, "mmpool: ", 8) == 0);
  char *nl = strchr(s, '\n');
  assert_non_null(nl);
  assert_int_equal(nl[1], 0);
}

static void assert_contains(const char *hay, const char *needle) {
  if (!strstr(hay, needle)) {
    print_error("'%s' not found in:\n%s\n", needle, hay);
    fail();
  }
}

static void assert_prefix(const char *s, const char *prefix) {
  if (strncmp(s, prefix, strlen(prefix)) != 0) {
    print_error("'%s' does not start with '%s'\n", s, prefix);
    fail();
  }
}

static void real(const char *path, char *out) {
  assert_non_null(realpath(path, out));
}

// ---------------------------------------------------------------------------
// usage group

// The line of the help's command list that starts with "  NAME ", or NULL.
static const char *command_line(const char *help, const char *name) {
  char key[32];
  snprintf(key, sizeof key, "\n  %s ", name);
  const char *at = strstr(help, key);
  return at ? at + 1 : NULL;
}

static void assert_same_output(const char *const *const *forms, unsigned n,
                               const char *want) {
  for (unsigned i = 0; i < n; i++) {
    struct child_res r = tool(forms[i]);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, want);
    assert_string_equal(r.err, "");
    child_res_free(&r);
  }
}

static void test_help(void **state) {
  (void)state;
  struct child_res first = tool(TOOL_ARGS("help"));
  assert_int_equal(first.status, 0);
  assert_string_equal(first.err, "");
  assert_true(strncmp(first.out, "Usage: mmpool COMMAND [ARGS...]\n", 32) == 0);
  assert_contains(first.out, "mmpool " PROJECT_VERSION ": ");
  // Every command, one line each with a description; those not built yet
  // say so.
  for (unsigned i = 0; i < NCOMMANDS; i++) {
    const char *line = command_line(first.out, commands[i].name);
    if (!line) {
      print_error("no line for '%s' in:\n%s\n", commands[i].name, first.out);
      fail();
    }
    size_t len = strcspn(line, "\n");
    char *l = strndup(line, len);
    assert_true(len > strlen(commands[i].name) + 10);
    assert_true(len <= 80);
    if (commands[i].available)
      assert_null(strstr(l, "not available"));
    else
      assert_non_null(strstr(l, "(not available yet)"));
    free(l);
  }
  assert_contains(first.out, "'mmpool help COMMAND' shows a command's usage");
  // It fits a terminal of 80 columns.
  for (const char *l = first.out; *l;) {
    size_t len = strcspn(l, "\n");
    if (len > 79) {
      print_error("line longer than 79 columns: %.*s\n", (int)len, l);
      fail();
    }
    l += len + (l[len] == '\n');
  }
  const char *const vars[] = {"MMPOOL_CONFIG ", "MMPOOL_CONFIG_FILE ",
                              "MMPOOL_STATS ", "MMPOOL_LOG ", "MMPOOL_STRICT "};
  for (unsigned i = 0; i < 5; i++)
    assert_contains(first.out, vars[i]);
  // Every spelling prints the same text.
  const char *const *forms[] = {TOOL_ARGS("--help"), TOOL_ARGS("-h")};
  assert_same_output(forms, 2, first.out);
  child_res_free(&first);
}

static void test_help_run(void **state) {
  (void)state;
  struct child_res first = tool(TOOL_ARGS("help", "run"));
  assert_int_equal(first.status, 0);
  assert_string_equal(first.err, "");
  assert_prefix(first.out,
                "Usage: mmpool run [-c FILE] [--stats] [--from DIR] "
                "[--explain] [--] PROG [ARGS...]\n"
                "       mmpool run [-c FILE] [--stats] --explain\n");
  assert_contains(first.out, "-c FILE, --config FILE, --config=FILE, -cFILE");
  assert_contains(first.out, "(sets MMPOOL_CONFIG_FILE=FILE)");
  assert_contains(first.out, "  --stats ");
  assert_contains(first.out, "(sets MMPOOL_STATS=1)");
  assert_contains(first.out, "  --explain ");
  assert_contains(first.out, "  --from DIR, --from=DIR");
  assert_contains(first.out, "(sets MMPOOL_RESTORE=PID:DIR;");
  assert_contains(first.out, "  -h, --help ");
  assert_contains(first.out, "125 when mmpool fails");
  // The search order, with this build's names.
  assert_contains(first.out, "<directory of mmpool>/../shim/" PRELOAD_NAME);
  assert_contains(first.out, FULL_LIBDIR "/" PRELOAD_NAME);
  assert_contains(first.out, "MMPOOL_STATS ");
  const char *const *forms[] = {
      TOOL_ARGS("run", "--help"), TOOL_ARGS("run", "-h"),
      TOOL_ARGS("--help", "run"), TOOL_ARGS("-h", "run"),
      TOOL_ARGS("run", "--stats", "-c", "x.conf", "--help")};
  assert_same_output(forms, 5, first.out);
  child_res_free(&first);
}

// `mmpool help NAME` for every other command: its usage, what it does, and
// whether it is available; `mmpool NAME --help` is the same.
static void test_help_commands(void **state) {
  (void)state;
  for (unsigned i = 0; i < NCOMMANDS; i++) {
    const char *name = commands[i].name;
    if (strcmp(name, "run") == 0) continue;
    struct child_res r = tool(TOOL_ARGS("help", name));
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    char want[64];
    snprintf(want, sizeof want, "Usage: mmpool %s", name);
    assert_true(strncmp(r.out, want, strlen(want)) == 0);
    if (commands[i].available)
      assert_null(strstr(r.out, "not available"));
    else
      assert_contains(r.out, "Not available in this version yet");
    const char *const *forms[] = {TOOL_ARGS(name, "--help"),
                                  TOOL_ARGS(name, "-h")};
    assert_same_output(forms, 2, r.out);
    child_res_free(&r);
  }
  struct child_res v = tool(TOOL_ARGS("help", "version"));
  assert_contains(v.out, "mmpool --version\n");
  child_res_free(&v);
  struct child_res h = tool(TOOL_ARGS("help", "help"));
  assert_contains(h.out, "mmpool -h | --help\n");
  child_res_free(&h);
}

static void test_version(void **state) {
  (void)state;
  // CMake's project(VERSION), which the header's macros repeat.
  char want[64];
  snprintf(want, sizeof want, "mmpool %d.%d.%d\n", MMPOOL_VERSION_MAJOR,
           MMPOOL_VERSION_MINOR, MMPOOL_VERSION_PATCH);
  assert_string_equal(want, "mmpool " PROJECT_VERSION "\n");
  const char *const *forms[] = {TOOL_ARGS("version"), TOOL_ARGS("--version")};
  for (unsigned i = 0; i < 2; i++) {
    struct child_res r = tool(forms[i]);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, want);
    assert_string_equal(r.err, "");
    child_res_free(&r);
  }
}

static void test_bad_usage(void **state) {
  (void)state;
  struct {
    const char *const *argv;
    const char *says;
  } cases[] = {
      {(const char *const[]){TOOL, NULL}, "no command"},
      {TOOL_ARGS("frobnicate"), "unknown command 'frobnicate'"},
      {TOOL_ARGS("relocate", "x.pool"), "relocate: missing ADDR"},
      {TOOL_ARGS("relocate", "x.pool", "300000000000"),
       "relocate: bad ADDR '300000000000'"},
      {TOOL_ARGS("snapshot"), "snapshot: missing PID"},
      {TOOL_ARGS("snapshot", "x1"), "snapshot: bad PID 'x1'"},
      {TOOL_ARGS("snapshot", "1", "-t", "0"), "snapshot: bad SECONDS '0'"},
      {TOOL_ARGS("info"), "info: missing FILE"},
      {TOOL_ARGS("check", "a.pool", "b.pool"), "check: one FILE only"},
      {TOOL_ARGS("map", "x.pool"), "map: missing -o MAP.svg"},
      {TOOL_ARGS("map", "x.pool", "-o"), "map: option '-o' needs a FILE"},
      {TOOL_ARGS("upgrade", "--json", "x.pool"),
       "upgrade: unknown option '--json'"},
      {TOOL_ARGS("help", "frobnicate"), "help: unknown command 'frobnicate'"},
      {TOOL_ARGS("help", "run", "info"), "help: too many arguments"},
      {TOOL_ARGS("--stats"), "unknown command '--stats'"},
      {TOOL_ARGS("run"), "missing PROG"},
      {TOOL_ARGS("run", "--"), "missing PROG"},
      {TOOL_ARGS("run", "-c", "x.conf"), "missing PROG"},
      {TOOL_ARGS("run", "--stats"), "missing PROG"},
      {TOOL_ARGS("run", "--stats=1", "/bin/true"), "unknown option"},
      {TOOL_ARGS("run", "-x", "/bin/true"), "unknown option '-x'"},
      {TOOL_ARGS("run", "--explian", "/bin/true"), "unknown option"},
      {TOOL_ARGS("run", "-c"), "needs a FILE"},
      {TOOL_ARGS("run", "--config"), "needs a FILE"},
      {TOOL_ARGS("run", "--config=", "/bin/true"), "empty"},
  };
  for (unsigned i = 0; i < sizeof cases / sizeof *cases; i++) {
    struct child_res r = tool(cases[i].argv);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.out, "");
    assert_one_line(r.err);
    assert_contains(r.err, cases[i].says);
    child_res_free(&r);
  }
}

static const char good_conf[] = "# three pools by size\n"
                                "pool small size=1G\n"
                                "pool big size=4G full=null\n"
                                "route size<=256 -> small\n"
                                "route size>=1M -> big\n";

static void test_explain_good(void **state) {
  (void)state;
  char *conf = path_in("good.conf");
  write_file(conf, good_conf, 0644);
  struct child_res r = tool(TOOL_ARGS("run", "--explain", "-c", conf));
  assert_int_equal(r.status, 0);
  assert_string_equal(r.err, "");
  char lib[PATH_MAX], want[PATH_MAX + 64];
  real(PRELOAD, lib);
  snprintf(want, sizeof want, "# preload library: %s\n", lib);
  assert_true(strncmp(r.out, want, strlen(want)) == 0);
  const char *body = r.out + strlen(want);
  assert_string_equal(body, "# MMPOOL_STATS=0 MMPOOL_LOG=warn MMPOOL_STRICT=0 "
                            "MMPOOL_CHECK=fast\n"
                            "pool small anon size=1G base=auto full=fallback\n"
                            "pool big anon size=4G base=auto full=null\n"
                            "pool default anon size=64G base=auto full=null\n"
                            "route size<257 -> small\n"
                            "route size>=1M -> big\n"
                            "default default\n");
  // What it prints is a configuration: it reads back to the same.
  char *again = path_in("again.conf");
  write_file(again, r.out, 0644);
  struct child_res r2 = tool(TOOL_ARGS("run", "--explain", "--config", again));
  assert_int_equal(r2.status, 0);
  assert_string_equal(r2.out, r.out);
  child_res_free(&r2);
  // A program after --explain is not run; the file and the variable
  // combine (file first, variable after); the options show.
  char opt[PATH_MAX + 16];
  snprintf(opt, sizeof opt, "--config=%s", conf);
  struct child_res r3 =
      run_env(TOOL_ARGS("run", "--explain", opt, "--", "/bin/echo", "RAN"),
              ENV("MMPOOL_CONFIG=route size=4K..8K -> big\ndefault small",
                  "MMPOOL_STATS=1", "MMPOOL_LOG=info"));
  assert_int_equal(r3.status, 0);
  assert_string_equal(r3.err, "");
  assert_null(strstr(r3.out, "RAN"));
  assert_contains(
      r3.out,
      "# MMPOOL_STATS=1 MMPOOL_LOG=info MMPOOL_STRICT=0 MMPOOL_CHECK=fast\n");
  assert_contains(r3.out, "route size>=1M -> big\nroute size=4K..8K -> big\n"
                          "default small\n");
  assert_null(strstr(r3.out, "pool default"));
  child_res_free(&r3);
  // --stats is MMPOOL_STATS=1, whatever the variable said.
  struct child_res r4 =
      run_env(TOOL_ARGS("run", "--stats", "--explain", "-c", conf),
              ENV("MMPOOL_STATS=0"));
  assert_int_equal(r4.status, 0);
  assert_string_equal(r4.err, "");
  assert_contains(
      r4.out,
      "# MMPOOL_STATS=1 MMPOOL_LOG=warn MMPOOL_STRICT=0 MMPOOL_CHECK=fast\n");
  child_res_free(&r4);
  child_res_free(&r);
}

static void test_explain_bad(void **state) {
  (void)state;
  char *conf = path_in("bad.conf");
  write_file(conf, "pool a size=2G\nfrobnicate now\nroute size>=1M -> a\n",
             0644);
  struct child_res r = tool(TOOL_ARGS("run", "--explain", "-c", conf));
  assert_int_equal(r.status, 2);
  char want[PATH_MAX + 128];
  snprintf(want, sizeof want,
           "mmpool: %s:2: statement 'frobnicate now': unknown statement "
           "'frobnicate' (pool, route or default)\n",
           conf);
  assert_string_equal(r.err, want);
  // The built-in default is what the program would get.
  assert_contains(r.out, "# the configuration had errors: the built-in "
                         "default is used\n"
                         "pool default anon size=64G base=auto full=null\n"
                         "default default\n");
  child_res_free(&r);

  // An unreadable file, a bad option value, a bad statement in the
  // variable: each its line, status 2.
  struct child_res m =
      tool(TOOL_ARGS("run", "--explain", "-c", "/nonexistent/mmpool.conf"));
  assert_int_equal(m.status, 2);
  assert_string_equal(m.err,
                      "mmpool: MMPOOL_CONFIG_FILE: cannot open "
                      "'/nonexistent/mmpool.conf': ENOENT: no such file or "
                      "directory\n");
  child_res_free(&m);
  struct child_res l =
      run_env(TOOL_ARGS("run", "--explain"), ENV("MMPOOL_LOG=loud"));
  assert_int_equal(l.status, 2);
  assert_string_equal(l.err, "mmpool: MMPOOL_LOG: bad value 'loud' (error, "
                             "warn, info or debug)\n");
  child_res_free(&l);
  struct child_res v =
      run_env(TOOL_ARGS("run", "--explain"),
              ENV("MMPOOL_CONFIG=pool big size=12Q", "MMPOOL_STRICT=1"));
  assert_int_equal(v.status, 2);
  assert_contains(v.err, "mmpool: MMPOOL_CONFIG: statement 1 'pool big "
                         "size=12Q': bad size in 'size=12Q'");
  assert_contains(v.err, "MMPOOL_STRICT is set");
  child_res_free(&v);
  // No configuration at all is valid.
  struct child_res d = tool(TOOL_ARGS("run", "--explain"));
  assert_int_equal(d.status, 0);
  assert_string_equal(d.err, "");
  assert_contains(d.out, "pool default anon size=64G base=auto full=null\n"
                         "default default\n");
  child_res_free(&d);
}

// What only fails when the program starts is tried by --explain too (issue
// 12, item 6): three pools of 16T cannot all be reserved in the 32T window
// of base=auto (the third, and then the default, are reported with the
// reason), a pool file in a missing directory names ENOENT, a fixed base
// that is taken names what holds it; each a line on stderr, status 2, and
// the configuration still printed. Under MMPOOL_STRICT the program would
// stop, which is said.
static void test_explain_unopenable(void **state) {
  (void)state;
  struct child_res r = run_env(TOOL_ARGS("run", "--explain"),
                         ENV("MMPOOL_CONFIG=pool a size=16T\npool b size=16T\n"
                             "pool c size=16T"));
  assert_int_equal(r.status, 2);
  assert_contains(r.err, "mmpool: pool 'c': cannot reserve its address range "
                         "(17592186044416 bytes): no free");
  assert_true(strstr(r.err, "pool 'a'") == NULL);
  assert_contains(r.out, "pool c anon size=16T base=auto full=fallback\n");
  child_res_free(&r);
  struct child_res f =
      run_env(TOOL_ARGS("run", "--explain"),
              ENV("MMPOOL_CONFIG=pool a file=/nonexistent/dir/x.pool",
                  "MMPOOL_STRICT=1"));
  assert_int_equal(f.status, 2);
  assert_contains(f.err, "mmpool: pool 'a': /nonexistent/dir/x.pool: ENOENT: "
                         "no such file or directory\n");
  assert_contains(f.err, "MMPOOL_STRICT is set");
  child_res_free(&f);
  // A fixed base taken (by pool a, which base=auto put at the start of its
  // window): the line names what holds it.
  struct child_res b = run_env(TOOL_ARGS("run", "--explain"),
                         ENV("MMPOOL_CONFIG=pool a size=4G\n"
                             "pool b base=0x200000000000 size=1G"));
  assert_int_equal(b.status, 2);
  assert_contains(b.err, "mmpool: pool 'b': cannot reserve its address range");
  assert_contains(b.err, "is occupied by");
  child_res_free(&b);
  // Pools that can be reserved: nothing on stderr, status 0.
  struct child_res g = run_env(TOOL_ARGS("run", "--explain"),
                         ENV("MMPOOL_CONFIG=pool a size=1G\npool b size=8T"));
  assert_int_equal(g.status, 0);
  assert_string_equal(g.err, "");
  child_res_free(&g);
}

// ---------------------------------------------------------------------------
// run group

static void test_run_echo(void **state) {
  (void)state;
  const char *const *forms[] = {TOOL_ARGS("run", "--", "/bin/echo", "hi"),
                                TOOL_ARGS("run", "/bin/echo", "hi"),
                                TOOL_ARGS("run", "--", "echo", "hi")};
  for (unsigned i = 0; i < 3; i++) {
    struct child_res r = tool(forms[i]);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "hi\n");
    assert_string_equal(r.err, "");
    child_res_free(&r);
  }
}

static void test_run_preloads(void **state) {
  (void)state;
  char lib[PATH_MAX], want[3 * PATH_MAX + 128];
  real(PRELOAD, lib);
  // Control: the probe alone sees glibc's malloc and no library.
  struct child_res c = tool((const char *const[]){PROBE, NULL});
  assert_int_equal(c.status, 0);
  assert_string_equal(c.out, "pool=(none)\npreload=none\nLD_PRELOAD=(unset)\n"
                             "MMPOOL_CONFIG_FILE=(unset)\n");
  child_res_free(&c);
  struct child_res r = tool(TOOL_ARGS("run", "--", PROBE));
  assert_int_equal(r.status, 0);
  snprintf(want, sizeof want,
           "pool=default\npreload=%s\nLD_PRELOAD=%s\n"
           "MMPOOL_CONFIG_FILE=(unset)\n",
           lib, lib);
  assert_string_equal(r.out, want);
  assert_string_equal(r.err, "");
  child_res_free(&r);
  // An existing LD_PRELOAD is kept, after ours.
  struct child_res p =
      run_env(TOOL_ARGS("run", PROBE), ENV("LD_PRELOAD=" LIBMMPOOL));
  assert_int_equal(p.status, 0);
  snprintf(want, sizeof want, "pool=default\npreload=%s\nLD_PRELOAD=%s:%s\n",
           lib, lib, LIBMMPOOL);
  assert_true(strncmp(p.out, want, strlen(want)) == 0);
  child_res_free(&p);
}

static void test_run_config(void **state) {
  (void)state;
  char *conf = path_in("run.conf");
  write_file(conf, good_conf, 0644);
  char eq[PATH_MAX + 16], glued[PATH_MAX + 16], want[PATH_MAX + 64];
  snprintf(eq, sizeof eq, "--config=%s", conf);
  snprintf(glued, sizeof glued, "-c%s", conf);
  const char *const *forms[] = {
      TOOL_ARGS("run", "-c", conf, "--", PROBE, "2097152"),
      TOOL_ARGS("run", "--config", conf, PROBE, "2097152"),
      TOOL_ARGS("run", eq, "--", PROBE, "2097152"),
      TOOL_ARGS("run", glued, "--", PROBE, "2097152")};
  snprintf(want, sizeof want, "MMPOOL_CONFIG_FILE=%s\n", conf);
  for (unsigned i = 0; i < 4; i++) {
    struct child_res r = tool(forms[i]);
    assert_int_equal(r.status, 0);
    assert_true(strncmp(r.out, "pool=big\n", 9) == 0);
    assert_contains(r.out, want);
    assert_string_equal(r.err, "");
    child_res_free(&r);
  }
  // The other routes of the file, and the default.
  struct child_res s = tool(TOOL_ARGS("run", "-c", conf, "--", PROBE, "200"));
  assert_true(strncmp(s.out, "pool=small\n", 11) == 0);
  child_res_free(&s);
  struct child_res d = tool(TOOL_ARGS("run", "-c", conf, "--", PROBE, "4096"));
  assert_true(strncmp(d.out, "pool=default\n", 13) == 0);
  child_res_free(&d);
  // -c replaces a MMPOOL_CONFIG_FILE of the environment.
  struct child_res o =
      run_env(TOOL_ARGS("run", "-c", conf, "--", PROBE, "2097152"),
              ENV("MMPOOL_CONFIG_FILE=/nonexistent.conf"));
  assert_int_equal(o.status, 0);
  assert_true(strncmp(o.out, "pool=big\n", 9) == 0);
  assert_string_equal(o.err, "");
  child_res_free(&o);
}

static void test_run_status(void **state) {
  (void)state;
  struct child_res r = tool(TOOL_ARGS("run", "--", "/bin/sh", "-c", "exit 7"));
  assert_int_equal(r.status, 7);
  child_res_free(&r);
  struct child_res n = tool(TOOL_ARGS("run", "--", "/nonexistent/prog"));
  assert_int_equal(n.status, 127);
  assert_string_equal(n.out, "");
  assert_one_line(n.err);
  assert_contains(n.err, "cannot run '/nonexistent/prog'");
  child_res_free(&n);
  char *plain = path_in("not-executable");
  write_file(plain, "#!/bin/sh\necho no\n", 0644);
  struct child_res x = tool(TOOL_ARGS("run", "--", plain));
  assert_int_equal(x.status, 126);
  assert_one_line(x.err);
  child_res_free(&x);
}

// The report's first line: "mmpool: stats of pid N (tool_probe) at exit: ".
static void assert_report_header(const char *err, const char *rest) {
  assert_true(strncmp(err, "mmpool: stats of pid ", 21) == 0);
  const char *p = err + 21;
  assert_true(*p >= '1' && *p <= '9');
  while (*p >= '0' && *p <= '9')
    p++;
  char want[128];
  snprintf(want, sizeof want, " (tool_probe) at exit: %s\n", rest);
  assert_true(strncmp(p, want, strlen(want)) == 0);
}

static void test_run_stats(void **state) {
  (void)state;
  char lib[PATH_MAX], want[2 * PATH_MAX + 64];
  real(PRELOAD, lib);
  snprintf(want, sizeof want, "pool=default\npreload=%s\n", lib);
  // The default configuration: one pool, every allocation through no route.
  // MMPOOL_STATS=0 in the environment does not matter.
  const char *const *const envs[] = {NULL, ENV("MMPOOL_STATS=0")};
  for (unsigned i = 0; i < 2; i++) {
    struct child_res r =
        run_env(TOOL_ARGS("run", "--stats", "--", PROBE), envs[i]);
    assert_int_equal(r.status, 0);
    assert_true(strncmp(r.out, want, strlen(want)) == 0);
    assert_report_header(r.err, "1 configured pools, 0 routes");
    assert_contains(r.err, "\nmmpool: pool default (default pool): anon\n");
    assert_contains(r.err, "\nmmpool:   allocated since start: ");
    assert_contains(r.err, "\nmmpool:   live at exit: ");
    assert_contains(r.err, "\nmmpool:   no route matched: ");
    child_res_free(&r);
  }
  // With a configuration: each pool, and the route that took the probe's
  // 2 MiB block.
  char *conf = path_in("stats.conf");
  write_file(conf, good_conf, 0644);
  struct child_res c =
      tool(TOOL_ARGS("run", "-c", conf, "--stats", "--", PROBE, "2097152"));
  assert_int_equal(c.status, 0);
  assert_true(strncmp(c.out, "pool=big\n", 9) == 0);
  assert_report_header(c.err, "3 configured pools, 2 routes");
  assert_contains(c.err, "\nmmpool: pool small: anon\n");
  assert_contains(c.err, "\nmmpool: pool big: anon\n");
  assert_contains(c.err, "\nmmpool: pool default (default pool): anon\n");
  assert_contains(c.err, "\nmmpool:   route size>=1M -> big: 1 allocations, "
                         "2097152 bytes (2.0 MiB)\n");
  child_res_free(&c);
  // Without --stats, no report.
  struct child_res n = tool(TOOL_ARGS("run", "--", PROBE));
  assert_int_equal(n.status, 0);
  assert_string_equal(n.err, "");
  child_res_free(&n);
}

// The tool copied with the library into a layout; the library it loads.
static void loaded_from(const char *tool_path, struct child_res *r) {
  *r = tool((const char *const[]){tool_path, "run", "--", PROBE, NULL});
}

static void test_run_finds_library(void **state) {
  (void)state;
  char want[PATH_MAX + 64], lib[PATH_MAX];
  // An installed tree, wherever it is: <prefix>/bin and <prefix>/LIBDIR.
  if (LIBDIR[0] != '/') {
    char bin[PATH_MAX], libdir[PATH_MAX], t[PATH_MAX + 16], l[PATH_MAX + 64];
    snprintf(bin, sizeof bin, "%s", path_in("inst/bin"));
    snprintf(libdir, sizeof libdir, "%s/inst/%s", scratch, LIBDIR);
    mkdirs(bin), mkdirs(libdir);
    snprintf(t, sizeof t, "%s/mmpool", bin);
    snprintf(l, sizeof l, "%s/%s", libdir, PRELOAD_NAME);
    copy_file(TOOL, t, 0755);
    copy_file(PRELOAD, l, 0644);
    struct child_res r;
    loaded_from(t, &r);
    assert_int_equal(r.status, 0);
    real(l, lib);
    snprintf(want, sizeof want, "pool=default\npreload=%s\n", lib);
    assert_true(strncmp(r.out, want, strlen(want)) == 0);
    child_res_free(&r);
    // A build tree comes first: <build>/tools and <build>/shim.
    char tools[PATH_MAX], shim[PATH_MAX], l2[PATH_MAX + 64], l3[PATH_MAX + 64];
    snprintf(tools, sizeof tools, "%s", path_in("tree/tools"));
    snprintf(shim, sizeof shim, "%s", path_in("tree/shim"));
    snprintf(libdir, sizeof libdir, "%s/tree/%s", scratch, LIBDIR);
    mkdirs(tools), mkdirs(shim), mkdirs(libdir);
    snprintf(t, sizeof t, "%s/mmpool", tools);
    snprintf(l2, sizeof l2, "%s/%s", shim, PRELOAD_NAME);
    snprintf(l3, sizeof l3, "%s/%s", libdir, PRELOAD_NAME);
    copy_file(TOOL, t, 0755);
    copy_file(PRELOAD, l2, 0644);
    copy_file(PRELOAD, l3, 0644);
    loaded_from(t, &r);
    assert_int_equal(r.status, 0);
    real(l2, lib);
    snprintf(want, sizeof want, "pool=default\npreload=%s\n", lib);
    assert_true(strncmp(r.out, want, strlen(want)) == 0);
    child_res_free(&r);
  }
  // Nothing next to the tool: the configured prefix's library, if any.
  char alone[PATH_MAX], t[PATH_MAX + 16];
  snprintf(alone, sizeof alone, "%s", path_in("alone/bin"));
  mkdirs(alone);
  snprintf(t, sizeof t, "%s/mmpool", alone);
  copy_file(TOOL, t, 0755);
  struct child_res r;
  loaded_from(t, &r);
  const char *prefix_lib = FULL_LIBDIR "/" PRELOAD_NAME;
  if (access(prefix_lib, R_OK) == 0) {
    assert_int_equal(r.status, 0);
    real(prefix_lib, lib);
    snprintf(want, sizeof want, "pool=default\npreload=%s\n", lib);
    assert_true(strncmp(r.out, want, strlen(want)) == 0);
  } else {
    assert_int_equal(r.status, 125);
    assert_string_equal(r.out, "");
    assert_one_line(r.err);
    assert_contains(r.err, "cannot find the preload library");
    assert_contains(r.err, prefix_lib);
  }
  child_res_free(&r);
}

int main(int argc, char **argv) {
  const struct CMUnitTest usage[] = {
      cmocka_unit_test(test_help),          cmocka_unit_test(test_help_run),
      cmocka_unit_test(test_help_commands), cmocka_unit_test(test_version),
      cmocka_unit_test(test_bad_usage),     cmocka_unit_test(test_explain_good),
      cmocka_unit_test(test_explain_bad),
      cmocka_unit_test(test_explain_unopenable),
  };
  const struct CMUnitTest run[] = {
      cmocka_unit_test(test_run_echo),
      cmocka_unit_test(test_run_preloads),
      cmocka_unit_test(test_run_config),
      cmocka_unit_test(test_run_status),
      cmocka_unit_test(test_run_stats),
      cmocka_unit_test(test_run_finds_library),
  };
  if (argc > 1 && strcmp(argv[1], "run") == 0)
    return cmocka_run_group_tests_name("tool_run", run, group_setup,
                                       group_teardown);
  return cmocka_run_group_tests_name("tool_usage", usage, group_setup,
                                     group_teardown);
}
