// config.h: MMPOOL_CONFIG, MMPOOL_CONFIG_FILE and the option variables,
// parsed into a plain struct before malloc works.
//
// Invariant: loading a configuration never allocates and has no side effect
// outside the caller's structs. No malloc, no stdio, no getenv: the
// environment is read by walking envp, the file through core/os.h's raw
// system calls, and the texts are parsed in a private anonymous mapping that
// is unmapped before config_load returns. A loaded struct mmpool_config is
// always usable: either everything the sources said, or (after any error in
// the statements) the built-in default, one anonymous pool named "default".
//
// Grammar (docs/configuration.md should mirror this):
//   Statements are separated by ';' or newlines; blanks around them are
//   ignored, and so are empty statements. '#' starts a comment, which runs
//   to the end of the line in MMPOOL_CONFIG_FILE and to the end of the
//   statement (the next ';' or newline) in MMPOOL_CONFIG, so a one-line
//   variable can hold a comment. A path or a pattern can therefore hold no
//   '#' or ';'.
//   pool NAME WORDS...   a pool; WORDS as core/spec.h (anon, file=PATH,
//                        mode=, size=, base=, relocate=, full=, brk,
//                        recover, trust=). NAME: 1..MMPOOL_NAME_MAX of
//                        [A-Za-z0-9_.-], defined once.
//   route COND -> NAME   routes are tried in order, the first match wins
//                        (the preload library evaluates them, in
//                        shim/route.c); COND is one of
//                          size>=N size>N size<N size<=N size=N
//                          size=A..B   (both ends included)
//                          lib=GLOB    the file name of the calling library
//                                      or executable (the whole path when
//                                      GLOB holds a '/')
//                          thread=GLOB the calling thread's name
//                        Sizes are spec_parse_size()'s: digits with K, M, G
//                        or T (powers of 1024), or 0x... hexadecimal. Blanks
//                        around the operator are allowed. GLOB: '*' any run
//                        of characters, '?' one character, anything else
//                        itself; at most CONFIG_GLOB_MAX - 1 characters.
//   default NAME         the pool of everything no route takes; the last
//                        default statement wins (the variable's, over the
//                        file's).
//   A route or default statement may name a pool defined after it, in the
//   same source or the other one; the name "default", when no pool has it,
//   means the default pool. Without a default statement the default
//   is the pool named "default": the one a `pool default ...` statement
//   defines, or else an implicit anonymous one of 64G.
//   The default pool has nowhere to fall back to: its full= policy is null
//   (malloc returns NULL with ENOMEM) unless it says full=abort, and an
//   explicit full=fallback on it is refused as a fallback cycle. Other pools
//   with full=fallback fall back to the default pool.
//   Further checks: at most one pool marked brk, no file used by two pools,
//   no two fixed bases overlapping.
//
// Sources, in order: MMPOOL_CONFIG_FILE (a file of statements, at most
// CONFIG_TEXT_MAX bytes, no NUL byte; an empty value means no file), then
// MMPOOL_CONFIG (at most CONFIG_TEXT_MAX bytes). The file is opened through
// os_open, which refuses symbolic links. The option variables are
// MMPOOL_STATS, MMPOOL_LOG and MMPOOL_STRICT (config_options[]). When a
// variable appears twice in envp the first one counts, as with getenv.
// Under secure execution (AT_SECURE) every MMPOOL_* variable is ignored and
// nothing is reported.
//
// Errors: each is one line without the "mmpool: " prefix (log_print adds
// it) and without a newline, naming the source, the statement and the fault:
//   MMPOOL_CONFIG: statement 2 'route size>=1Q -> big': bad size '1Q'
//   /etc/mmpool.conf:7: statement 'pool a sise=1G': unknown option 'sise=1G'
//   MMPOOL_CONFIG_FILE: cannot open '/x.conf': no such file or directory
//   MMPOOL_LOG: bad value 'loud' (error, warn, info or debug)
// Statements are counted from 1 without the empty ones; statement texts
// longer than CONFIG_STMT_SHOWN characters are cut and end in "...".
// An error in a statement or a source discards all statements (pools,
// routes, default): the built-in default is used and fallback is set. A bad
// option value only resets that option to its default. Under MMPOOL_STRICT
// any error makes config_load return -EINVAL (the shim prints the lines and
// exits).
#ifndef MMPOOL_CONFIG_H
#define MMPOOL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "mmpool.h"
#include "spec.h"

#define CONFIG_MAX_POOLS MMPOOL_MAX_POOLS
#define CONFIG_MAX_ROUTES 64
#define CONFIG_GLOB_MAX 128   // bytes of a route's pattern, with its NUL
#define CONFIG_TEXT_MAX 65536 // bytes of the file, and of MMPOOL_CONFIG
#define CONFIG_MAX_ERRORS 8   // lines kept in struct config_errors
#define CONFIG_ERROR_LEN 320  // bytes of one error line, with its NUL
#define CONFIG_STMT_SHOWN 60  // characters of a statement in a message

enum config_cond {
  CONFIG_SIZE = 0,  // lo <= size <= hi
  CONFIG_LIB = 1,   // glob against the calling module
  CONFIG_THREAD = 2 // glob against the thread's name
};

struct config_pool {
  char name[MMPOOL_NAME_MAX + 1];
  int implicit; // the built-in default pool: no pool statement made it
  struct pool_spec spec;
};

struct config_route {
  int cond;        // enum config_cond
  unsigned pool;   // index into mmpool_config.pools
  uint64_t lo, hi; // CONFIG_SIZE: the sizes taken, both included
  int glob_path;   // the glob holds a '/': it matches the whole path
  char glob[CONFIG_GLOB_MAX];
};

// Plain data; the shim keeps one as a static (about 270 KiB of BSS, mostly
// the 4 KiB path of each pool_spec; config_load writes only the entries it
// uses, so unused pool slots stay untouched zero pages).
struct mmpool_config {
  unsigned npools; // >= 1
  unsigned nroutes;
  unsigned default_pool; // index into pools
  unsigned lib_routes;   // routes with cond CONFIG_LIB
  unsigned thread_routes;
  int fallback;  // the statements had errors: this is the built-in default
  int stats;     // MMPOOL_STATS: 0 or 1
  int log_level; // MMPOOL_LOG: LOG_ERROR..LOG_DEBUG of core/log.h
  int strict;    // MMPOOL_STRICT: 0 or 1
  int check_full; // MMPOOL_CHECK=full (the engine reads it too)
  int restore_pid; // MMPOOL_RESTORE=PID:DIR: 0 when not set
  char restore_dir[SPEC_PATH_MAX];
  struct config_route routes[CONFIG_MAX_ROUTES];
  struct config_pool pools[CONFIG_MAX_POOLS]; // last: mostly untouched
};

struct config_errors {
  unsigned count; // lines in line[]
  unsigned total; // errors found (those past CONFIG_MAX_ERRORS not kept)
  char line[CONFIG_MAX_ERRORS][CONFIG_ERROR_LEN];
};

// The environment variables read, for help texts and the README's table.
struct config_option {
  const char *name; // "MMPOOL_CONFIG"
  const char *dflt; // default value, in words
  const char *help; // one line
};
extern const struct config_option config_options[];
extern const unsigned config_noptions;

// Loads the configuration of envp (environ; NULL is an empty environment)
// into *out, honouring secure execution (getauxval(AT_SECURE)). errs may be
// NULL. Returns 0, or -EINVAL when MMPOOL_STRICT=1 and there was an error;
// *out is a usable configuration either way (the built-in default after an
// error in the statements).
int config_load(struct mmpool_config *out, char **envp,
                struct config_errors *errs);
// The same with the secure-execution decision given: secure != 0 ignores
// every MMPOOL_* variable (the built-in default, no errors, returns 0).
int config_load_from(struct mmpool_config *out, char **envp, int secure,
                     struct config_errors *errs);

// The built-in default: one implicit anonymous pool "default" of 64G with
// full=null, no routes, default options. Never fails.
void config_default(struct mmpool_config *out);

// The matching of lib= and thread= patterns. This module only parses the
// routes; the preload library evaluates them (shim/route.c) with these two.

// Whether text matches pattern as a whole ('*', '?', literals). Iterative,
// no allocation, O(len(pattern) * len(text)) at worst.
int config_glob_match(const char *pattern, const char *text);

// Whether lib= route r matches the module at path: its file name, or the
// whole path when the pattern holds a '/'.
int config_route_lib_match(const struct config_route *r, const char *path);

// Renders the effective configuration as statements, one per line, that
// parse back to the same configuration: a comment line with the options
// (and a second one when fallback is set), every pool (`pool NAME WORDS`,
// all words explicit), every route in order, then `default NAME`. Writes at
// most n bytes, NUL-terminated when n > 0, and returns the length of the
// whole text (as snprintf does: larger than n - 1 means it was cut).
size_t config_describe(const struct mmpool_config *c, char *buf, size_t n);
// One line of it, without the newline: pool i, route i.
size_t config_describe_pool(const struct mmpool_config *c, unsigned i,
                            char *buf, size_t n);
size_t config_describe_route(const struct mmpool_config *c, unsigned i,
                             char *buf, size_t n);

#endif
