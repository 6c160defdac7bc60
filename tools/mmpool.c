// mmpool.c: the mmpool command-line tool.
//
// `mmpool run` starts a program under the preload library of this very
// build or installation, so users need not know where it lives; `--stats`
// asks for the per-pool report at exit, `--explain` shows what the
// configuration means without running anything. `info`, `check`, `map` and
// `upgrade` read pool files (poolcmd.c, over core/inspect.c). The commands
// of the product contract that are not built yet are listed, with their
// usage, and answer that they are not available (status 2). The tool
// links the engine and the configuration parser statically and never the
// preload library (the layers: tools -> shim -> config -> core; it runs
// the shim in other programs, it does not link it): it is an ordinary
// program with glibc's malloc, so it may use stdio and the heap freely.
//
// Keep `commands[]`, the help texts, docs/man/mmpool.1 and
// docs/configuration.md's sections on the tool saying the same.
//
// Exit status: bad usage 2 (one line on stderr), and so a command that is
// not available yet; `check` 0 when the file is sound, 1 when not; `info`,
// `map` 0 when the file was read; `upgrade` 0 when converted or already
// version 2; each of these 1 when the file cannot be read as a pool file
// or (upgrade) is refused; `run --explain` 0 when
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
#include "os.h"
#include "poolcmd.h"
#include "relocmd.h"
#include "snapcmd.h"
#include "snapshot.h"
#include "log.h"
#include "vmmap.h"

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

// The version: CMake's project(VERSION), which tools/CMakeLists.txt passes
// in; include/mmpool.h must say the same (checked here, at compile time).
#ifdef MMPOOL_PROJECT_VERSION
_Static_assert(MMPOOL_PROJECT_VERSION_MAJOR == MMPOOL_VERSION_MAJOR &&
                   MMPOOL_PROJECT_VERSION_MINOR == MMPOOL_VERSION_MINOR &&
                   MMPOOL_PROJECT_VERSION_PATCH == MMPOOL_VERSION_PATCH,
               "MMPOOL_VERSION_* of include/mmpool.h differ from "
               "project(VERSION) of CMakeLists.txt");
#define VERSION MMPOOL_PROJECT_VERSION
#else
#define STR_(x) #x
#define STR(x) STR_(x)
#define VERSION                                                                \
  STR(MMPOOL_VERSION_MAJOR)                                                    \
  "." STR(MMPOOL_VERSION_MINOR) "." STR(MMPOOL_VERSION_PATCH)
#endif

#define RUN_USAGE                                                              \
  "mmpool run [-c FILE] [--stats] [--from DIR] [--explain] [--] PROG "         \
  "[ARGS...]"

// Every command of the product contract, in the order help lists them. A
// command that is not available yet is listed with the usage it will have.
struct command {
  const char *name;
  const char *usage;   // one or more lines, each "mmpool ..."
  const char *summary; // one line, for the list
  const char *text;    // what it does, for `mmpool help NAME`
  int available;
};

// clang-format off
static const struct command commands[] = {
  {"run", RUN_USAGE "\nmmpool run [-c FILE] [--stats] --explain",
   "run a program with its heap in mmpool's pools",
   NULL, 1}, // help_run()
  {"info", "mmpool info FILE [--json]", "describe a pool file in words",
   "Describe a pool file that no process has attached: its header\n"
   "(version, name, base, capacity, length, generation, clean or not,\n"
   "times, uuid, feature bits), its roots and whether each names a live\n"
   "block, the program-break record, the live blocks by size class, the\n"
   "bytes in use, free and in metadata, and two fragmentation figures:\n"
   "slabs (of the slab pages' bytes, the share not in live blocks) and\n"
   "free spans (1 - the largest free span / all free spans below the top).\n"
   "\n"
   "  --json      the same as one JSON object on stdout, for scripts\n"
   "\n"
   "FILE may be a snapshot directory (mmpool_snapshot, snapshot=DIR): then\n"
   "the manifest (serial, time, program, pause, bytes), each pool's image,\n"
   "and the pointers between the pools: how many aligned words of each\n"
   "pool's live blocks point into each pool of the snapshot.\n"
   "\n"
   "Exit status: 0 when described (a file with problems too: its count is\n"
   "shown), 1 when FILE cannot be read as a pool file (one line on\n"
   "stderr), 2 for bad usage.\n", 1},
  {"check", "mmpool check FILE", "verify every invariant of a pool file",
   "Verify every invariant of a pool file that no process has attached:\n"
   "the header (as attach checks it), the page descriptors, every slab's\n"
   "free lists and counts (a slab that cannot be scanned is a problem, not\n"
   "skipped), the free-span bins and avail lists, and for a clean file the\n"
   "metadata checksum. A file not closed cleanly is a problem (attaching it\n"
   "needs 'recover'); the rest is still checked. A version 1 file is a\n"
   "problem (convert it with 'mmpool upgrade'); its structure is checked.\n"
   "\n"
   "Each problem is one line on stdout, \"FILE: what\", naming the page\n"
   "index and address where there is one; a summary goes to stderr.\n"
   "\n"
   "FILE may be a snapshot directory (mmpool_snapshot, snapshot=DIR): its\n"
   "manifest is checked, then each image it names, against the manifest\n"
   "(base, length, generation, uuid, header checksum) and as above.\n"
   "\n"
   "Exit status: 0 when the file is sound, 1 when not (or it cannot be\n"
   "read), 2 for bad usage.\n", 1},
  {"map", "mmpool map FILE -o MAP.svg", "draw a pool file's ranges",
   "Draw a pool file by address as an SVG picture: metadata, slabs coloured\n"
   "by size class, large blocks, free spans, committed pages above the top\n"
   "and the capacity past the file, with a legend. Each cell is one 64 KiB\n"
   "page, or a run of pages when the pool has more than 4096 (a cell then\n"
   "takes the colour of what holds most of it).\n"
   "\n"
   "  -o FILE, --output FILE, --output=FILE, -oFILE\n"
   "              the SVG file to write (required)\n"
   "\n"
   "FILE may be a snapshot directory: its pools are drawn one under the\n"
   "other, under a line naming the snapshot.\n"
   "\n"
   "Exit status: 0 when written, 1 when FILE cannot be read or the picture\n"
   "cannot be written, 2 for bad usage.\n", 1},
  {"relocate", "mmpool relocate FILE|DIR ADDR",
   "move a pool file or a snapshot to another base address",
   "Move a pool file that no process has attached to the base address ADDR\n"
   "(hexadecimal, a multiple of 1 GiB), offline, or a snapshot directory as\n"
   "a whole (its pools keep their distances; the lowest base goes to ADDR).\n"
   "The file must be clean and sound (as 'mmpool check' says). Every\n"
   "aligned 8-byte word of the blocks handed out (large blocks up to their\n"
   "requested size) and every root that points into the old range of a\n"
   "pool of the set moves with it. This is conservative: an integer that\n"
   "happens to look like such an address changes too; the count of words\n"
   "changed is printed. A pool that holds a block aligned above 1 GiB\n"
   "moves only by a multiple of that alignment.\n"
   "\n"
   "The work is done on a copy (FILE.relocate-PID, or new images and a new\n"
   "manifest in the snapshot), synced and renamed into place: a crash\n"
   "leaves the original or the moved copy, whole.\n"
   "\n"
   "Exit status: 0 when moved, 1 when refused or it failed (one line on\n"
   "stderr), 2 for bad usage.\n", 1},
  {"snapshot", "mmpool snapshot PID [-t SECONDS]",
   "make a running program snapshot its pools",
   "Ask the running program PID to take a snapshot of all its pools now,\n"
   "and wait for it. The program must run under the preload library with\n"
   "snapshot=DIR snapshot-on=signal:SIG on one of its pool statements: the\n"
   "tool reads its configuration from /proc/PID/environ, sends it SIG, and\n"
   "waits until DIR holds a snapshot newer than the one before (60 seconds\n"
   "at most, or -t SECONDS), then prints its serial, pools, bytes and the\n"
   "pause. A program whose configuration takes no snapshot on a signal is\n"
   "sent nothing (the signal would end it).\n"
   "\n"
   "Exit status: 0 when the snapshot is written, 1 when nothing was sent or\n"
   "no new snapshot came, 2 for bad usage.\n", 1},
  {"upgrade", "mmpool upgrade FILE", "convert a pool file of an older format",
   "Convert a version 1 pool file to version 2. The whole file is checked\n"
   "first (its version 1 header checksum, then every invariant, and the\n"
   "metadata checksum of a clean file); anything that does not check is\n"
   "refused and the file left as it was. The new file is written as a copy\n"
   "in the same directory (FILE.upgrade-PID, made with O_EXCL), synced,\n"
   "read back, renamed over FILE, and the directory synced. It keeps the\n"
   "generation, roots, name and clean mark (the metadata checksum\n"
   "recomputed); its creation time is the file's modification time, its\n"
   "uuid new. A version 2 file is left alone.\n"
   "\n"
   "Exit status: 0 when converted or already version 2, 1 when refused or\n"
   "it failed, 2 for bad usage.\n", 1},
  {"help", "mmpool help [COMMAND]\nmmpool -h | --help",
   "list the commands, or show one command's usage",
   "Without COMMAND: list the commands, each in one line, and the\n"
   "environment variables. With COMMAND: that command's usage and what\n"
   "it does. 'mmpool COMMAND --help' (or -h) does the same.\n", 1},
  {"version", "mmpool version\nmmpool --version", "print mmpool's version",
   "Print \"mmpool " VERSION "\" on stdout.\n", 1},
};
// clang-format on
#define NCOMMANDS (sizeof commands / sizeof *commands)

static const struct command *find_command(const char *name) {
  for (unsigned i = 0; i < NCOMMANDS; i++)
    if (strcmp(name, commands[i].name) == 0) return &commands[i];
  return NULL;
}

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

// The directory of the running tool, from /proc/self/exe; "" if unknown,
// which is said in one line (the search then skips the tool's own tree).
static void self_dir(char *out, size_t n) {
  char exe[PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  out[0] = 0;
  if (len <= 0) {
    char eb[64];
    fprintf(stderr, "mmpool: cannot read /proc/self/exe: %s (the preload "
            "library is not looked for next to the tool)\n",
            os_strerror(len < 0 ? errno : ENOENT, eb, sizeof eb));
    return;
  }
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

// The usage lines of c, the first after "Usage: ", the others under it.
static void print_usage(FILE *f, const struct command *c) {
  fputs("Usage: ", f);
  for (const char *u = c->usage; *u;) {
    size_t n = strcspn(u, "\n");
    fprintf(f, "%s%.*s\n", u == c->usage ? "" : "       ", (int)n, u);
    u += n + (u[n] == '\n');
  }
}

// The variables the preload library reads (config_options[]).
static void print_environment(FILE *f) {
  fprintf(f, "Environment (read by the preload library, so by the programs "
             "that\n'mmpool run' starts; see mmpool(1)):\n");
  for (unsigned i = 0; i < config_noptions; i++) {
    const struct config_option *o = &config_options[i];
    char text[256];
    if (o->dflt[0] != '(')
      snprintf(text, sizeof text, "%s [default %s]", o->help, o->dflt);
    else
      snprintf(text, sizeof text, "%s", o->help);
    fprintf(f, "  %-19s", o->name);
    // The text in words, wrapped at 79 columns under its first line.
    unsigned col = 21;
    for (const char *w = text; *w;) {
      size_t n = strcspn(w, " ");
      if (col > 21 && col + 1 + n > 79) {
        fprintf(f, "\n%21s", "");
        col = 21;
      }
      fprintf(f, " %.*s", (int)n, w);
      col += 1 + (unsigned)n;
      w += n + (w[n] == ' ');
    }
    fputc('\n', f);
  }
}

static void help_overview(FILE *f) {
  fprintf(f, "Usage: mmpool COMMAND [ARGS...]\n"
             "\n"
             "mmpool " VERSION ": heaps made of named, mmap-backed memory "
             "pools.\n"
             "\n"
             "Commands:\n");
  for (unsigned i = 0; i < NCOMMANDS; i++)
    fprintf(f, "  %-9s %s%s\n", commands[i].name, commands[i].summary,
            commands[i].available ? "" : " (not available yet)");
  fprintf(f, "\n"
             "'mmpool help COMMAND' shows a command's usage. The commands "
             "marked\n"
             "(not available yet) are not built in this version: they print "
             "one\n"
             "line on stderr and exit with status 2, as bad usage does.\n"
             "\n");
  print_environment(f);
}

static void help_run(FILE *f) {
  char cand[3][PATH_MAX];
  unsigned n = candidates(cand, 1);
  print_usage(f, find_command("run"));
  fprintf(f, "\n"
             "Run PROG (looked up in PATH) with the mmpool preload library in\n"
             "LD_PRELOAD, put before any value it already has, so that its "
             "malloc\n"
             "family allocates from the pools of the configuration.\n"
             "\n"
             "Options:\n"
             "  -c FILE, --config FILE, --config=FILE, -cFILE\n"
             "              read the statements of FILE\n"
             "              (sets MMPOOL_CONFIG_FILE=FILE)\n"
             "  --stats     print a report of every pool on stderr when PROG\n"
             "              exits (sets MMPOOL_STATS=1)\n"
             "  --from DIR, --from=DIR\n"
             "              start PROG on the snapshot in DIR (mmpool_snapshot,\n"
             "              snapshot=DIR): each pool of the snapshot is opened\n"
             "              from its image, privately (the snapshot is never\n"
             "              written; an image with deltas is copied with\n"
             "              them applied first), in place of the configured\n"
             "              pool of its name (sets MMPOOL_RESTORE=PID:DIR;\n"
             "              only PROG restores, not the programs it starts)\n"
             "  --explain   do not run PROG: print the effective pools, "
             "routes\n"
             "              and default (on stdout) and the configuration\n"
             "              errors (on stderr)\n"
             "  -h, --help  this text\n"
             "\n"
             "Exit status: PROG's own; with --explain, 0 when the "
             "configuration\n"
             "is valid and 2 when not; 2 for bad usage; 125 when mmpool fails\n"
             "(no preload library), 126 when PROG cannot be executed, 127 when "
             "it\n"
             "is not found.\n"
             "\n"
             "The preload library is the first of these that exists:\n");
  for (unsigned i = 0; i < n; i++)
    fprintf(f, "  %s\n", cand[i]);
  fputc('\n', f);
  print_environment(f);
}

static void help_command(FILE *f, const struct command *c) {
  if (strcmp(c->name, "run") == 0) return help_run(f);
  print_usage(f, c);
  fprintf(f, "\n%s", c->text);
  if (!c->available)
    fprintf(f,
            "\nNot available in this version yet: 'mmpool %s' prints one "
            "line\non stderr and exits with status 2.\n",
            c->name);
}

// `mmpool help [COMMAND]`; args: what follows "help".
static int help(int argc, char **args) {
  if (argc > 1) usage_error("help: too many arguments (one COMMAND at most)");
  if (argc == 0) {
    help_overview(stdout);
  } else {
    const struct command *c = find_command(args[0]);
    if (!c) usage_error("help: unknown command '%s'", args[0]);
    help_command(stdout, c);
  }
  return fflush(stdout) == 0 ? 0 : EXIT_TOOL;
}

// ---------------------------------------------------------------------------
// run

// What can fail only when the program starts, tried here: each pool's
// address range is reserved through the engine's ledger (core/vmmap.c), all
// of them held at once as the program would hold them, then released; a
// file pool's file must be openable (an existing file readable and
// writable, a new one's directory writable). An attached file keeps the
// capacity and base its header records: reserved with the size= asked for,
// when there is one. One line per pool that would fail, on stderr; the
// number of them. (The program's own address space may differ: its
// libraries sit where the kernel put them, so this is a check, not a
// promise.)
static unsigned explain_open(const struct mmpool_config *cfg) {
  uintptr_t got[CONFIG_MAX_POOLS] = {0};
  unsigned bad = 0;
  char eb[64];
  for (unsigned i = 0; i < cfg->npools && i < CONFIG_MAX_POOLS; i++) {
    const struct config_pool *cp = &cfg->pools[i];
    const struct pool_spec *sp = &cp->spec;
    int reserve = 1;
    if (sp->file) {
      struct stat st;
      if (stat(sp->path, &st) == 0) {
        int want = sp->mode == SPEC_PRIVATE ? R_OK : R_OK | W_OK;
        if (access(sp->path, want) != 0) {
          fprintf(stderr, "mmpool: pool '%s': %s: %s\n", cp->name, sp->path,
                  os_strerror(errno, eb, sizeof eb));
          bad++;
          continue;
        }
        reserve = sp->size_set;  // else the file says how big
      } else {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", sp->path);
        char *slash = strrchr(dir, '/');
        if (slash == dir) slash[1] = 0;
        else if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
        if (errno != ENOENT || access(dir, W_OK | X_OK) != 0) {
          fprintf(stderr, "mmpool: pool '%s': %s: %s\n", cp->name, sp->path,
                  os_strerror(errno, eb, sizeof eb));
          bad++;
          continue;
        }
      }
    }
    if (!reserve) continue;
    char why[384];
    uint64_t cap = (sp->size + 65535) & ~(uint64_t)65535;
    // As the program will: the whole capacity must be free at its base,
    // the first part is reserved (pools reserve the rest as they grow).
    size_t first = cap < VM_FIRST ? cap : VM_FIRST, len = 0;
    int r = vmmap_reserve_pool(i + 1, sp->base, cap, first, 65536, &got[i],
                               &len, why, sizeof why);
    if (r) {
      fprintf(stderr, "mmpool: pool '%s': cannot reserve its address range "
              "(%llu bytes): %s\n", cp->name, (unsigned long long)cap, why);
      got[i] = 0;
      bad++;
    }
  }
  for (unsigned i = 0; i < cfg->npools && i < CONFIG_MAX_POOLS; i++)
    if (got[i]) vmmap_release(got[i]);
  return bad;
}

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
  unsigned unopenable = explain_open(&cfg);
  if ((errs.total || unopenable) && cfg.strict)
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
  return errs.total || unopenable ? EXIT_INVALID : 0;
}

static int run(int argc, char **argv) {
  const char *file = NULL, *from = NULL;
  int do_explain = 0, do_stats = 0, i = 2;
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
    } else if (strcmp(a, "--from") == 0) {
      if (i + 1 >= argc) usage_error("run: option '--from' needs a DIR");
      from = argv[++i];
    } else if (strncmp(a, "--from=", 7) == 0) {
      from = a + 7;
    } else if (strcmp(a, "--explain") == 0) {
      do_explain = 1;
    } else if (strcmp(a, "--stats") == 0) {
      do_stats = 1;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      help_run(stdout);
      return fflush(stdout) == 0 ? 0 : EXIT_TOOL;
    } else if (a[0] == '-' && a[1]) {
      usage_error("run: unknown option '%s'", a);
    } else {
      break; // PROG
    }
  }
  if (file && !*file) usage_error("run: empty configuration FILE");
  if (i >= argc && !do_explain)
    usage_error("run: missing PROG; usage: " RUN_USAGE);

  // What the options say goes into the environment, which --explain reads
  // as the preload library would.
  if ((file && setenv("MMPOOL_CONFIG_FILE", file, 1) != 0) ||
      (do_stats && setenv("MMPOOL_STATS", "1", 1) != 0)) {
    fprintf(stderr, "mmpool: cannot set the environment: %s\n",
            strerror(errno));
    return EXIT_TOOL;
  }
  if (from) {
    // Checked here, so that a bad snapshot stops before PROG starts; the
    // preload library of this very process (exec keeps the pid) restores.
    static struct snap_manifest m;
    char real[PATH_MAX], val[PATH_MAX + 32];
    if (!*from) usage_error("run: empty snapshot DIR");
    if (snapshot_read(from, &m) != 0) {
      fprintf(stderr, "mmpool: run --from: %s\n", log_last_error());
      return EXIT_TOOL;
    }
    if (!realpath(from, real)) {
      fprintf(stderr, "mmpool: run --from: %s: %s\n", from, strerror(errno));
      return EXIT_TOOL;
    }
    snprintf(val, sizeof val, "%d:%s", (int)getpid(), real);
    if (setenv("MMPOOL_RESTORE", val, 1) != 0) {
      fprintf(stderr, "mmpool: cannot set the environment: %s\n",
              strerror(errno));
      return EXIT_TOOL;
    }
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
// info, check, map, upgrade (poolcmd.c)

// Parses `mmpool NAME FILE [options]`: one FILE, --json for info, -o for
// map, -h/--help anywhere; "--" ends the options.
static int pool_command(const struct command *c, int argc, char **argv) {
  const char *file = NULL, *out = NULL;
  int json = 0, is_map = strcmp(c->name, "map") == 0, opts = 1;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (opts && strcmp(a, "--") == 0) {
      opts = 0;
    } else if (opts && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
      return help(1, (char *[]){(char *)c->name});
    } else if (opts && strcmp(c->name, "info") == 0 &&
               strcmp(a, "--json") == 0) {
      json = 1;
    } else if (opts && is_map &&
               (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0)) {
      if (i + 1 >= argc) usage_error("map: option '%s' needs a FILE", a);
      out = argv[++i];
    } else if (opts && is_map && strncmp(a, "--output=", 9) == 0) {
      out = a + 9;
    } else if (opts && is_map && strncmp(a, "-o", 2) == 0) {
      out = a + 2;
    } else if (opts && a[0] == '-' && a[1]) {
      usage_error("%s: unknown option '%s'", c->name, a);
    } else if (file) {
      usage_error("%s: one FILE only ('%s' and '%s'); usage: %s", c->name,
                  file, a, c->usage);
    } else {
      file = a;
    }
  }
  if (!file || !*file)
    usage_error("%s: missing FILE; usage: %s", c->name, c->usage);
  if (is_map && (!out || !*out))
    usage_error("map: missing -o MAP.svg; usage: %s", c->usage);
  int snap = snapcmd_is_dir(file);
  if (strcmp(c->name, "info") == 0)
    return snap ? snapcmd_info(file, json) : poolcmd_info(file, json);
  if (strcmp(c->name, "check") == 0)
    return snap ? snapcmd_check(file) : poolcmd_check(file);
  if (is_map) return snap ? snapcmd_map(file, out) : poolcmd_map(file, out);
  return poolcmd_upgrade(file);
}

// relocate FILE|DIR ADDR
static int relocate_command(const struct command *c, int argc, char **argv) {
  const char *path = NULL, *addr = NULL;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
      return help(1, (char *[]){(char *)c->name});
    if (!path) path = a;
    else if (!addr) addr = a;
    else usage_error("relocate: unexpected '%s'; usage: %s", a, c->usage);
  }
  if (!path || !addr)
    usage_error("relocate: missing %s; usage: %s", path ? "ADDR" : "FILE",
                c->usage);
  char *end;
  errno = 0;
  unsigned long long v = strtoull(addr, &end, 16);
  if (errno || *end || end == addr || strncmp(addr, "0x", 2) != 0)
    usage_error("relocate: bad ADDR '%s' (hexadecimal, like 0x300000000000)",
                addr);
  return relocmd_relocate(path, (uint64_t)v);
}

// snapshot PID [-t SECONDS]
static int snapshot_command(const struct command *c, int argc, char **argv) {
  int pid = 0, wait_s = 60;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    char *end;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
      return help(1, (char *[]){(char *)c->name});
    if (strcmp(a, "-t") == 0) {
      if (i + 1 >= argc) usage_error("snapshot: option -t needs SECONDS");
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 1 || v > 86400)
        usage_error("snapshot: bad SECONDS '%s' (1 to 86400)", argv[i]);
      wait_s = (int)v;
    } else if (!pid) {
      long v = strtol(a, &end, 10);
      if (*end || v < 1 || v > 0x3fffffff)
        usage_error("snapshot: bad PID '%s'; usage: %s", a, c->usage);
      pid = (int)v;
    } else {
      usage_error("snapshot: unexpected '%s'; usage: %s", a, c->usage);
    }
  }
  if (!pid) usage_error("snapshot: missing PID; usage: %s", c->usage);
  return snapcmd_snapshot(pid, wait_s);
}

// ---------------------------------------------------------------------------

int main(int argc, char **argv) {
  if (argc < 2) usage_error("no command given");
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)
    cmd = "help";
  else if (strcmp(cmd, "--version") == 0)
    cmd = "version";
  const struct command *c = find_command(cmd);
  if (!c) usage_error("unknown command '%s'", cmd);
  if (strcmp(cmd, "run") == 0) return run(argc, argv); // parses its -h
  if (strcmp(cmd, "info") == 0 || strcmp(cmd, "check") == 0 ||
      strcmp(cmd, "map") == 0 || strcmp(cmd, "upgrade") == 0)
    return pool_command(c, argc, argv); // parses its -h
  if (strcmp(cmd, "snapshot") == 0) return snapshot_command(c, argc, argv);
  if (strcmp(cmd, "relocate") == 0) return relocate_command(c, argc, argv);
  // `mmpool COMMAND --help` is `mmpool help COMMAND`, for every command,
  // also those not available yet.
  if (argc == 3 &&
      (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0))
    return help(1, (char *[]){(char *)c->name});
  if (strcmp(cmd, "help") == 0) return help(argc - 2, argv + 2);
  if (strcmp(cmd, "version") == 0) {
    printf("mmpool " VERSION "\n");
    return fflush(stdout) == 0 ? 0 : EXIT_TOOL;
  }
  usage_error("'%s' is not available in this version yet", cmd);
}
