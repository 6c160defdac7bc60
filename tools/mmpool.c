// mmpool.c: the mmpool command-line tool.
//
// `mmpool run` starts a program under the preload library of this very
// build or installation, so users need not know where it lives; `--explain`
// shows what the configuration means without running anything. The tool
// links the engine and the configuration parser statically and never the
// preload library (STYLE: tools -> core): it is an ordinary program with
// glibc's malloc, so it may use stdio and the heap freely.
//
// Exit status: bad usage 2 (one line on stderr); `run --explain` 0 when
// the configuration is valid, else 2; `run` the program's own status (it
// replaces the tool), or 125 when mmpool itself fails (no preload library),
// 126 when PROG cannot be executed, 127 when it is not found (as env(1)).
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "mmpool.h"

// Set by tools/CMakeLists.txt.
#ifndef MMPOOL_PRELOAD_NAME
#define MMPOOL_PRELOAD_NAME "libmmpool-preload.so"
#endif
#ifndef MMPOOL_LIBDIR // CMAKE_INSTALL_LIBDIR: relative to the prefix, or ""
#define MMPOOL_LIBDIR "lib"
#endif
#ifndef MMPOOL_FULL_LIBDIR // CMAKE_INSTALL_FULL_LIBDIR
#define MMPOOL_FULL_LIBDIR "/usr/local/lib"
#endif

enum {
  EXIT_USAGE = 2,
  EXIT_INVALID = 2,  // run --explain: the configuration has errors
  EXIT_TOOL = 125,   // mmpool failed before running the program
  EXIT_NOEXEC = 126, // PROG found but not executable
  EXIT_NOTFOUND = 127
};

#define RUN_USAGE "mmpool run [-c FILE] [--explain] [--] PROG [ARGS...]"

// ---------------------------------------------------------------------------
// Messages

static _Noreturn void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static _Noreturn void usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("mmpool: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs(" (try 'mmpool --help')\n", stderr);
  va_end(ap);
  exit(EXIT_USAGE);
}

// ---------------------------------------------------------------------------
// Finding the preload library

// The directory of the running tool, from /proc/self/exe; "" if unknown.
static void self_dir(char *out, size_t n) {
  char exe[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  out[0] = 0;
  if (len <= 0) return;
  exe[len] = 0;
  char *slash = strrchr(exe, '/');
  if (!slash) return;
  *slash = 0;
  snprintf(out, n, "%s", exe[0] ? exe : "/");
}

// The places searched, in order (help text and search share this list):
// the build tree (the tool in <build>/tools, the library in <build>/shim),
// an installed tree wherever it was moved (<prefix>/bin and <prefix>/LIBDIR),
// then the library directory of the configured install prefix.
static unsigned candidates(char out[3][PATH_MAX], int for_help) {
  char dir[PATH_MAX];
  unsigned n = 0;
  if (for_help)
    snprintf(dir, sizeof dir, "%s", "<directory of mmpool>");
  else
    self_dir(dir, sizeof dir);
  if (dir[0]) {
    snprintf(out[n++], PATH_MAX, "%s/../shim/%s", dir, MMPOOL_PRELOAD_NAME);
    if (MMPOOL_LIBDIR[0] && MMPOOL_LIBDIR[0] != '/')
      snprintf(out[n++], PATH_MAX, "%s/../%s/%s", dir, MMPOOL_LIBDIR,
               MMPOOL_PRELOAD_NAME);
  }
  snprintf(out[n++], PATH_MAX, "%s/%s", MMPOOL_FULL_LIBDIR,
           MMPOOL_PRELOAD_NAME);
  return n;
}

// The first candidate that is a readable regular file, as an absolute path
// without "..", or NULL.
static const char *find_library(char *out) {
  char cand[3][PATH_MAX];
  unsigned n = candidates(cand, 0);
  for (unsigned i = 0; i < n; i++) {
    struct stat st;
    if (stat(cand[i], &st) != 0 || !S_ISREG(st.st_mode) ||
        access(cand[i], R_OK) != 0)
      continue;
    if (!realpath(cand[i], out)) continue;
    return out;
  }
  return NULL;
}

// ---------------------------------------------------------------------------
// Help

static void help(FILE *f) {
  char cand[3][PATH_MAX];
  unsigned n = candidates(cand, 1);
  fprintf(f,
          "Usage: mmpool COMMAND [ARGS...]\n"
          "\n"
          "mmpool %d.%d.%d: heaps made of named, mmap-backed memory pools.\n"
          "\n"
          "Commands:\n"
          "  " RUN_USAGE "\n"
          "      Run PROG with the mmpool preload library (LD_PRELOAD, put\n"
          "      before any value it already has), so that its malloc family\n"
          "      allocates from the pools of the configuration.\n"
          "      -c FILE, --config FILE, --config=FILE\n"
          "                  read the statements of FILE\n"
          "                  (sets MMPOOL_CONFIG_FILE=FILE)\n"
          "      --explain   do not run PROG: print the effective pools,\n"
          "                  routes and default (on stdout) and the\n"
          "                  configuration errors (on stderr); exit status 0\n"
          "                  when the configuration is valid, 2 when not\n"
          "      PROG is looked up in PATH. Exit status: PROG's own, or 125\n"
          "      when mmpool fails (no preload library), 126 when PROG\n"
          "      cannot be executed, 127 when it is not found.\n"
          "  help, -h, --help\n"
          "      This text.\n"
          "  version, --version\n"
          "      The version of mmpool.\n"
          "Coming later: info, check, map, relocate and snapshot.\n"
          "Bad usage prints one line on stderr and exits with status 2.\n"
          "\n"
          "The preload library is the first of these that exists:\n",
          MMPOOL_VERSION_MAJOR, MMPOOL_VERSION_MINOR, MMPOOL_VERSION_PATCH);
  for (unsigned i = 0; i < n; i++)
    fprintf(f, "  %s\n", cand[i]);
  fprintf(f, "\nEnvironment (read by the preload library; "
             "see docs/configuration.md):\n");
  for (unsigned i = 0; i < config_noptions; i++) {
    const struct config_option *o = &config_options[i];
    fprintf(f, "  %-19s %s", o->name, o->help);
    if (o->dflt[0] != '(') fprintf(f, " [default %s]", o->dflt);
    fputc('\n', f);
  }
}

// ---------------------------------------------------------------------------
// run

// Prints the configuration the program would get; the exit status.
static int explain(void) {
  static struct mmpool_config cfg; // about 270 KiB: not on the stack
  static struct config_errors errs;
  extern char **environ;
  config_load(&cfg, environ, &errs);
  for (unsigned i = 0; i < errs.count; i++)
    fprintf(stderr, "mmpool: %s\n", errs.line[i]);
  if (errs.total > errs.count)
    fprintf(stderr, "mmpool: %u more configuration errors\n",
            errs.total - errs.count);
  if (errs.total && cfg.strict)
    fprintf(stderr, "mmpool: MMPOOL_STRICT is set: the program would stop "
                    "before main\n");
  size_t len = config_describe(&cfg, NULL, 0);
  char *text = malloc(len + 1);
  if (!text) {
    fprintf(stderr, "mmpool: out of memory\n");
    return EXIT_TOOL;
  }
  config_describe(&cfg, text, len + 1);
  char lib[PATH_MAX];
  if (find_library(lib))
    printf("# preload library: %s\n", lib);
  else
    printf("# preload library: not found\n");
  fputs(text, stdout);
  free(text);
  if (fflush(stdout) != 0) return EXIT_TOOL;
  return errs.total ? EXIT_INVALID : 0;
}

static int run(int argc, char **argv) {
  const char *file = NULL;
  int do_explain = 0, i = 2;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
      if (i + 1 >= argc) usage_error("run: option '%s' needs a FILE", a);
      file = argv[++i];
    } else if (strncmp(a, "--config=", 9) == 0) {
      file = a + 9;
    } else if (strncmp(a, "-c", 2) == 0) {
      file = a + 2;
    } else if (strcmp(a, "--explain") == 0) {
      do_explain = 1;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      help(stdout);
      return 0;
    } else if (a[0] == '-' && a[1]) {
      usage_error("run: unknown option '%s'", a);
    } else {
      break; // PROG
    }
  }
  if (file && !*file) usage_error("run: empty configuration FILE");
  if (i >= argc && !do_explain)
    usage_error("run: missing PROG; usage: " RUN_USAGE);

  if (file && setenv("MMPOOL_CONFIG_FILE", file, 1) != 0) {
    fprintf(stderr, "mmpool: cannot set MMPOOL_CONFIG_FILE: %s\n",
            strerror(errno));
    return EXIT_TOOL;
  }
  if (do_explain) return explain(); // PROG, if any, is not run

  char lib[PATH_MAX];
  if (!find_library(lib)) {
    char cand[3][PATH_MAX];
    unsigned n = candidates(cand, 0);
    fprintf(stderr,
            "mmpool: cannot find the preload library %s (looked "
            "for",
            MMPOOL_PRELOAD_NAME);
    for (unsigned k = 0; k < n; k++)
      fprintf(stderr, "%s %s", k ? "," : "", cand[k]);
    fputs(")\n", stderr);
    return EXIT_TOOL;
  }
  if (strpbrk(lib, " :\t\n")) {
    fprintf(stderr,
            "mmpool: the preload library's path '%s' holds a blank "
            "or ':', which LD_PRELOAD cannot carry\n",
            lib);
    return EXIT_TOOL;
  }
  const char *old = getenv("LD_PRELOAD");
  char *val;
  if (old && *old) {
    if (asprintf(&val, "%s:%s", lib, old) < 0) val = NULL;
  } else {
    val = strdup(lib);
  }
  if (!val || setenv("LD_PRELOAD", val, 1) != 0) {
    fprintf(stderr, "mmpool: cannot set LD_PRELOAD: %s\n", strerror(errno));
    return EXIT_TOOL;
  }
  free(val);
  execvp(argv[i], argv + i);
  int e = errno;
  fprintf(stderr, "mmpool: cannot run '%s': %s\n", argv[i], strerror(e));
  return e == ENOENT || e == ENOTDIR ? EXIT_NOTFOUND : EXIT_NOEXEC;
}

// ---------------------------------------------------------------------------

int main(int argc, char **argv) {
  if (argc < 2) usage_error("no command given");
  const char *cmd = argv[1];
  if (strcmp(cmd, "run") == 0) return run(argc, argv);
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
      strcmp(cmd, "-h") == 0) {
    help(stdout);
    return fflush(stdout) == 0 ? 0 : EXIT_TOOL;
  }
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
    printf("mmpool %d.%d.%d\n", MMPOOL_VERSION_MAJOR, MMPOOL_VERSION_MINOR,
           MMPOOL_VERSION_PATCH);
    return fflush(stdout) == 0 ? 0 : EXIT_TOOL;
  }
  static const char *const coming[] = {"info", "check", "map", "relocate",
                                       "snapshot"};
  for (unsigned k = 0; k < sizeof coming / sizeof *coming; k++)
    if (strcmp(cmd, coming[k]) == 0)
      usage_error("'%s' is not available in this version yet", cmd);
  usage_error("unknown command '%s'", cmd);
}
