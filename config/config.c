// config.c: the configuration of the preload library (see config.h).
//
// Invariant: nothing here allocates or touches global state. The texts are
// copied into one work area (struct work, scratch memory of the address-space
// ledger, core/vmmap.c), split there in
// place, and every statement lands directly in the caller's struct; names a
// statement refers to are resolved once all sources are read, so messages
// found late still quote their statement from the work area. The area is
// released before config_load returns, and on any error in the statements
// the caller's struct is rewritten to the built-in default.
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/auxv.h>

#include "compiler.h"
#include "fmt.h"
#include "log.h"
#include "os.h"
#include "vmmap.h"

// clang-format off
const struct config_option config_options[] = {
  {"MMPOOL_CONFIG", "(none)",
   "statements: pool, route, default, separated by ';' or newlines"},
  {"MMPOOL_CONFIG_FILE", "(none)",
   "a file of statements, read before MMPOOL_CONFIG (at most 64 KiB)"},
  {"MMPOOL_STATS", "0", "1: a per-pool report on stderr at exit"},
  {"MMPOOL_LOG", "warn", "verbosity: error, warn, info or debug"},
  {"MMPOOL_STRICT", "0", "1: a configuration error stops the program"},
  {"MMPOOL_CHECK", "fast",
   "misuse checks of free: fast (double frees, cheap), or full (every "
   "free checked exactly)"},
  {"MMPOOL_RESTORE", "(none)",
   "PID:DIR, set by 'mmpool run --from DIR': process PID opens its pools "
   "from the snapshot in DIR"},
};
// clang-format on
const unsigned config_noptions =
    sizeof config_options / sizeof config_options[0];
enum { OPT_CONFIG, OPT_FILE, OPT_STATS, OPT_LOG, OPT_STRICT, OPT_CHECK,
       OPT_RESTORE };

enum { SRC_FILE, SRC_VAR };

// Where a statement is, to quote it in messages.
struct origin {
  const char *text; // the statement, trimmed and NUL-terminated
  unsigned src;     // SRC_FILE or SRC_VAR
  unsigned num;     // line (file) or statement number (variable)
};

// What was reported so far.
struct report {
  struct config_errors *errs; // may be NULL
  unsigned nerr;              // every error, options included
  int bad;                    // an error in the statements or sources
};

// Everything parsing needs besides the caller's structs; lives in a private
// mapping (about 140 KiB: too much for the stack of an arbitrary thread).
struct work {
  struct mmpool_config *c;
  struct report *rep;
  const char *path; // MMPOOL_CONFIG_FILE's value
  int lost;         // a source could not be read: unknown names are no news
  struct origin pool_at[CONFIG_MAX_POOLS];
  unsigned char pool_ok[CONFIG_MAX_POOLS];     // its words parsed
  unsigned char pool_fullfb[CONFIG_MAX_POOLS]; // says full=fallback
  struct origin route_at[CONFIG_MAX_ROUTES];
  char route_name[CONFIG_MAX_ROUTES][MMPOOL_NAME_MAX + 1];
  struct origin default_at;
  int default_set;
  char default_name[MMPOOL_NAME_MAX + 1];
  char file[CONFIG_TEXT_MAX + 1];
  char var[CONFIG_TEXT_MAX + 1];
};

// ---------------------------------------------------------------------------
// Small helpers

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

static int word_is(const char *w, size_t n, const char *s) {
  return strlen(s) == n && memcmp(w, s, n) == 0;
}

// The next blank-separated word of *p: its start, length in *n.
static const char *next_word(const char **p, size_t *n) {
  const char *s = *p;
  while (is_blank(*s))
    s++;
  const char *w = s;
  while (*s && !is_blank(*s))
    s++;
  *n = (size_t)(s - w);
  *p = s;
  return w;
}

static void trim(const char **s, size_t *n) {
  while (*n && is_blank(**s))
    (*s)++, (*n)--;
  while (*n && is_blank((*s)[*n - 1]))
    (*n)--;
}

static int name_ok(const char *s, size_t n) {
  if (n == 0 || n > MMPOOL_NAME_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return 0;
  }
  return 1;
}

static int find_pool(const struct mmpool_config *c, const char *name) {
  for (unsigned i = 0; i < c->npools; i++)
    if (strcmp(c->pools[i].name, name) == 0) return (int)i;
  return -1;
}

// Whether the blank-separated words hold exactly w.
static int has_word(const char *words, const char *w) {
  const char *p = words;
  size_t n;
  for (const char *s = next_word(&p, &n); n; s = next_word(&p, &n))
    if (word_is(s, n, w)) return 1;
  return 0;
}

// ---------------------------------------------------------------------------
// Errors

static void add_line(struct report *rep, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
RARE static void add_line(struct report *rep, const char *fmt, ...) {
  rep->nerr++;
  struct config_errors *e = rep->errs;
  if (!e) return;
  e->total++;
  if (e->count == CONFIG_MAX_ERRORS) return;
  // The line quotes the user's text (statements, paths): escaped, so a
  // control byte in it reaches no terminal (fmt_escape).
  char raw[CONFIG_ERROR_LEN];
  va_list ap;
  va_start(ap, fmt);
  size_t n = fmt_vformat(raw, sizeof raw, fmt, ap);
  va_end(ap);
  fmt_escape(e->line[e->count++], CONFIG_ERROR_LEN, raw, n);
}

// A long path is shown by its tail, the part that tells files apart.
RARE static void show_path(const char *path, char *out, size_t n) {
  size_t len = strlen(path);
  if (len < n) {
    memcpy(out, path, len + 1);
    return;
  }
  fmt_format(out, n, "...%s", path + len - (n - 4));
}

RARE static void show_text(const char *s, size_t len, char *out) {
  if (len > CONFIG_STMT_SHOWN)
    fmt_format(out, CONFIG_STMT_SHOWN + 1, "%.*s...", CONFIG_STMT_SHOWN - 3, s);
  else
    fmt_format(out, CONFIG_STMT_SHOWN + 1, "%.*s", (int)len, s);
}

static void stmt_error(struct work *x, const struct origin *at, const char *fmt,
                       ...) __attribute__((format(printf, 3, 4)));
RARE static void stmt_error(struct work *x, const struct origin *at,
                            const char *fmt, ...) {
  char fault[CONFIG_ERROR_LEN], shown[CONFIG_STMT_SHOWN + 1];
  va_list ap;
  va_start(ap, fmt);
  fmt_vformat(fault, sizeof fault, fmt, ap);
  va_end(ap);
  show_text(at->text, strlen(at->text), shown);
  x->rep->bad = 1;
  if (at->src == SRC_VAR) {
    add_line(x->rep, "MMPOOL_CONFIG: statement %u '%s': %s", at->num, shown,
             fault);
  } else {
    char path[121];
    show_path(x->path, path, sizeof path);
    add_line(x->rep, "%s:%u: statement '%s': %s", path, at->num, shown, fault);
  }
}

// ---------------------------------------------------------------------------
// Statements

#define NAME_RULE "1 to 47 of A-Z a-z 0-9 _ . -"

RARE static void st_pool(struct work *x, const struct origin *at,
                         const char *p) {
  struct mmpool_config *c = x->c;
  size_t n;
  const char *name = next_word(&p, &n);
  if (!n) return stmt_error(x, at, "a pool needs a name (pool NAME WORDS)");
  if (!name_ok(name, n))
    return stmt_error(x, at, "bad pool name '%.*s' (" NAME_RULE ")",
                      (int)(n > 60 ? 60 : n), name);
  char nm[MMPOOL_NAME_MAX + 1];
  memcpy(nm, name, n);
  nm[n] = 0;
  if (find_pool(c, nm) >= 0)
    return stmt_error(x, at, "pool '%s' is defined twice", nm);
  if (c->npools == CONFIG_MAX_POOLS)
    return stmt_error(x, at, "too many pools (at most %u)",
                      (unsigned)CONFIG_MAX_POOLS);
  unsigned i = c->npools++;
  struct config_pool *cp = &c->pools[i];
  memcpy(cp->name, nm, n + 1);
  cp->implicit = 0;
  x->pool_at[i] = *at;
  char why[200];
  // The name stays defined even when the words are bad, so that the routes
  // naming it do not add a second, misleading message.
  if (spec_parse(p, &cp->spec, why, sizeof why)) {
    x->pool_ok[i] = 0;
    return stmt_error(x, at, "%s", why);
  }
  x->pool_ok[i] = 1;
  x->pool_fullfb[i] = (unsigned char)has_word(p, "full=fallback");
}

#define COND_RULE "size>=N, size<N, size=A..B, lib=GLOB or thread=GLOB"

// A size of a condition; 0 or -1 after reporting.
RARE static int cond_size(struct work *x, const struct origin *at,
                          const char *s, size_t n, uint64_t *v) {
  trim(&s, &n);
  int r = spec_parse_size(s, n, v);
  if (r == -ERANGE)
    stmt_error(x, at, "size too large '%.*s'", (int)n, s);
  else if (r)
    stmt_error(x, at, "bad size '%.*s'", (int)n, s);
  return r ? -1 : 0;
}

// Parses cond (n bytes, trimmed) into r; 0 or -1 after reporting.
RARE static int parse_cond(struct work *x, const struct origin *at,
                           const char *cond, size_t n, struct config_route *r) {
  int shown = (int)(n > 60 ? 60 : n);
  size_t k = 0;
  while (k < n && cond[k] >= 'a' && cond[k] <= 'z')
    k++;
  const char *s = cond + k;
  size_t rest = n - k;
  trim(&s, &rest);
  if (word_is(cond, k, "size")) {
    size_t ol = 0;
    while (ol < rest && ol < 2 &&
           (s[ol] == '<' || s[ol] == '>' || s[ol] == '='))
      ol++;
    const char *v = s + ol;
    size_t vl = rest - ol;
    uint64_t a, b;
    r->cond = CONFIG_SIZE;
    if (word_is(s, ol, ">=") || word_is(s, ol, ">")) {
      if (cond_size(x, at, v, vl, &a)) return -1;
      if (ol == 1 && a == UINT64_MAX) goto empty;
      r->lo = ol == 1 ? a + 1 : a;
      r->hi = UINT64_MAX;
    } else if (word_is(s, ol, "<") || word_is(s, ol, "<=")) {
      if (cond_size(x, at, v, vl, &b)) return -1;
      if (ol == 1 && b == 0) goto empty;
      r->lo = 0;
      r->hi = ol == 1 ? b - 1 : b;
    } else if (word_is(s, ol, "=")) {
      size_t d = 0;
      while (d + 1 < vl && !(v[d] == '.' && v[d + 1] == '.'))
        d++;
      if (d + 1 < vl) {
        if (cond_size(x, at, v, d, &a)) return -1;
        if (cond_size(x, at, v + d + 2, vl - d - 2, &b)) return -1;
        if (b < a) goto empty;
      } else {
        if (cond_size(x, at, v, vl, &a)) return -1;
        b = a;
      }
      r->lo = a;
      r->hi = b;
    } else {
      stmt_error(x, at, "bad condition '%.*s' (" COND_RULE ")", shown, cond);
      return -1;
    }
    return 0;
  empty:
    stmt_error(x, at, "condition '%.*s' matches no size", shown, cond);
    return -1;
  }
  if (!word_is(cond, k, "lib") && !word_is(cond, k, "thread")) {
    stmt_error(x, at, "bad condition '%.*s' (" COND_RULE ")", shown, cond);
    return -1;
  }
  if (!rest || *s != '=') {
    stmt_error(x, at, "bad condition '%.*s' (%.*s=GLOB)", shown, cond, (int)k,
               cond);
    return -1;
  }
  s++, rest--;
  trim(&s, &rest);
  if (!rest) {
    stmt_error(x, at, "empty pattern in '%.*s'", shown, cond);
    return -1;
  }
  if (rest >= CONFIG_GLOB_MAX) {
    stmt_error(x, at, "pattern longer than %u characters in '%.*s'",
               (unsigned)CONFIG_GLOB_MAX - 1, shown, cond);
    return -1;
  }
  r->cond = cond[0] == 'l' ? CONFIG_LIB : CONFIG_THREAD;
  memcpy(r->glob, s, rest);
  r->glob[rest] = 0;
  r->glob_path = memchr(s, '/', rest) != NULL;
  r->lo = r->hi = 0;
  return 0;
}

RARE static void st_route(struct work *x, const struct origin *at,
                          const char *p) {
  struct mmpool_config *c = x->c;
  // The last "->": a pool name cannot hold '>', a pattern may.
  const char *arrow = NULL;
  for (const char *q = p; *q; q++)
    if (q[0] == '-' && q[1] == '>') arrow = q;
  if (!arrow) return stmt_error(x, at, "a route needs 'COND -> POOL'");
  const char *cond = p, *name = arrow + 2;
  size_t cn = (size_t)(arrow - p), nn = strlen(name);
  trim(&cond, &cn);
  trim(&name, &nn);
  if (!cn) return stmt_error(x, at, "a route needs a condition before '->'");
  if (!nn) return stmt_error(x, at, "a route needs a pool name after '->'");
  if (!name_ok(name, nn))
    return stmt_error(x, at, "bad pool name '%.*s' (" NAME_RULE ")",
                      (int)(nn > 60 ? 60 : nn), name);
  if (c->nroutes == CONFIG_MAX_ROUTES)
    return stmt_error(x, at, "too many routes (at most %u)",
                      (unsigned)CONFIG_MAX_ROUTES);
  unsigned i = c->nroutes;
  if (parse_cond(x, at, cond, cn, &c->routes[i])) return;
  c->nroutes++;
  memcpy(x->route_name[i], name, nn);
  x->route_name[i][nn] = 0;
  x->route_at[i] = *at;
}

RARE static void st_default(struct work *x, const struct origin *at,
                            const char *p) {
  size_t n, extra;
  const char *name = next_word(&p, &n);
  next_word(&p, &extra);
  if (!n || extra)
    return stmt_error(x, at, "default takes one pool name (default NAME)");
  if (!name_ok(name, n))
    return stmt_error(x, at, "bad pool name '%.*s' (" NAME_RULE ")",
                      (int)(n > 60 ? 60 : n), name);
  memcpy(x->default_name, name, n);
  x->default_name[n] = 0;
  x->default_at = *at;
  x->default_set = 1;
}

RARE static void statement(struct work *x, const struct origin *at) {
  const char *p = at->text;
  size_t n;
  const char *w = next_word(&p, &n);
  if (word_is(w, n, "pool"))
    st_pool(x, at, p);
  else if (word_is(w, n, "route"))
    st_route(x, at, p);
  else if (word_is(w, n, "default"))
    st_default(x, at, p);
  else
    stmt_error(x, at, "unknown statement '%.*s' (pool, route or default)",
               (int)(n > 40 ? 40 : n), w);
}

// Splits s[0..n) (with s[n] == 0, ours to write) into statements.
RARE static void parse_text(struct work *x, char *s, size_t n, unsigned src) {
  size_t i = 0;
  unsigned line = 1, num = 0;
  while (i < n) {
    size_t start = i;
    unsigned at_line = line;
    while (i < n && s[i] != ';' && s[i] != '\n' && s[i] != '#')
      i++;
    size_t end = i;
    if (i < n && s[i] == '#') // to the end of the line, or of the statement
      while (i < n && s[i] != '\n' && (src == SRC_FILE || s[i] != ';'))
        i++;
    if (i < n && s[i] == '\n') line++;
    i++;
    s[end] = 0;
    const char *t = s + start;
    size_t tl = end - start;
    trim(&t, &tl);
    if (!tl) continue;
    ((char *)t)[tl] = 0;
    num++;
    struct origin at = {t, src, src == SRC_FILE ? at_line : num};
    statement(x, &at);
  }
}

// ---------------------------------------------------------------------------
// Sources

RARE static void load_file(struct work *x, const char *path) {
  char shown[121], ebuf[24];
  show_path(path, shown, sizeof shown);
  x->path = path;
  int fd = os_open(path, O_RDONLY | O_NONBLOCK, 0);
  struct report *rep = x->rep;
  if (fd < 0) {
    rep->bad = x->lost = 1;
    return add_line(rep, "MMPOOL_CONFIG_FILE: cannot open '%s': %s", shown,
                    os_strerror(-fd, ebuf, sizeof ebuf));
  }
  uint64_t size, dev, ino;
  int regular, r = os_file_size(fd, &size, &regular, &dev, &ino), ok = 0;
  if (r < 0)
    add_line(rep, "MMPOOL_CONFIG_FILE: cannot read '%s': %s", shown,
             os_strerror(-r, ebuf, sizeof ebuf));
  else if (!regular)
    add_line(rep, "MMPOOL_CONFIG_FILE: '%s' is not a regular file", shown);
  else if (size > CONFIG_TEXT_MAX)
    add_line(rep, "MMPOOL_CONFIG_FILE: '%s' is larger than 64 KiB (%llu bytes)",
             shown, (unsigned long long)size);
  else if ((r = os_pread_full(fd, x->file, (size_t)size, 0)) < 0)
    add_line(rep, "MMPOOL_CONFIG_FILE: cannot read '%s': %s", shown,
             os_strerror(-r, ebuf, sizeof ebuf));
  else if (memchr(x->file, 0, (size_t)size))
    add_line(rep, "MMPOOL_CONFIG_FILE: '%s' holds a NUL byte (not a text file)",
             shown);
  else
    ok = 1;
  os_close(fd);
  if (!ok) {
    rep->bad = x->lost = 1;
    return;
  }
  x->file[size] = 0;
  parse_text(x, x->file, (size_t)size, SRC_FILE);
}

static void load_var(struct work *x, const char *v) {
  size_t n = strlen(v);
  if (n > CONFIG_TEXT_MAX) {
    x->rep->bad = x->lost = 1;
    return add_line(x->rep, "MMPOOL_CONFIG: longer than 64 KiB (%zu bytes)", n);
  }
  memcpy(x->var, v, n + 1);
  parse_text(x, x->var, n, SRC_VAR);
}

static int parse_bool(const char *v, int *out) {
  static const char *const on[] = {"1", "yes", "on", "true"};
  static const char *const off[] = {"", "0", "no", "off", "false"};
  for (unsigned i = 0; i < sizeof on / sizeof *on; i++)
    if (strcmp(v, on[i]) == 0) return *out = 1, 0;
  for (unsigned i = 0; i < sizeof off / sizeof *off; i++)
    if (strcmp(v, off[i]) == 0) return *out = 0, 0;
  return -1;
}

static void bool_option(struct report *rep, unsigned k, const char *v,
                        int *out) {
  if (!v || parse_bool(v, out) == 0) return;
  char shown[CONFIG_STMT_SHOWN + 1];
  show_text(v, strlen(v), shown);
  add_line(rep, "%s: bad value '%s' (0 or 1)", config_options[k].name, shown);
}

static void load_options(struct mmpool_config *c, struct report *rep,
                         const char *const *val) {
  bool_option(rep, OPT_STATS, val[OPT_STATS], &c->stats);
  bool_option(rep, OPT_STRICT, val[OPT_STRICT], &c->strict);
  static const char *const lv[] = {"error", "warn", "info", "debug"};
  const char *ck = val[OPT_CHECK];
  if (ck && *ck) {
    // Applied by the engine itself (core/heap.c reads the variable before
    // the first thread heap); here it is checked and shown.
    if (strcmp(ck, "full") == 0 || strcmp(ck, "fast") == 0) {
      c->check_full = ck[1] == 'u';
    } else {
      char shown[CONFIG_STMT_SHOWN + 1];
      show_text(ck, strlen(ck), shown);
      add_line(rep, "MMPOOL_CHECK: bad value '%s' (fast or full)", shown);
    }
  }
  const char *rs = val[OPT_RESTORE];
  if (rs && *rs) {
    // PID:DIR. Only that process restores: the programs it starts inherit
    // the variable and must not take its heap for theirs.
    uint64_t pid = 0;
    const char *q = rs;
    while (*q >= '0' && *q <= '9' && pid < 0x7fffffff)
      pid = pid * 10 + (uint64_t)(*q++ - '0');
    size_t dl = *q == ':' ? strlen(q + 1) : 0;
    if (q == rs || *q != ':' || pid == 0 || pid > 0x7fffffff || dl == 0 ||
        dl >= sizeof c->restore_dir) {
      char shown[CONFIG_STMT_SHOWN + 1];
      show_text(rs, strlen(rs), shown);
      add_line(rep, "MMPOOL_RESTORE: bad value '%s' (PID:DIR, as 'mmpool "
               "run --from DIR' sets it)", shown);
    } else {
      c->restore_pid = (int)pid;
      memcpy(c->restore_dir, q + 1, dl + 1);
    }
  }
  const char *v = val[OPT_LOG];
  if (!v || !*v) return;
  for (int l = LOG_ERROR; l <= LOG_DEBUG; l++)
    if (strcmp(v, lv[l]) == 0) {
      c->log_level = l;
      return;
    }
  char shown[CONFIG_STMT_SHOWN + 1];
  show_text(v, strlen(v), shown);
  add_line(rep, "MMPOOL_LOG: bad value '%s' (error, warn, info or debug)",
           shown);
}

// ---------------------------------------------------------------------------
// Resolution and the checks that need every pool

static int known_size(const struct pool_spec *sp) {
  return sp->size_set || !sp->file;
}

static const struct origin *last_pool_at(struct work *x) {
  return &x->pool_at[x->c->npools - 1];
}

static void resolve(struct work *x) {
  struct mmpool_config *c = x->c;
  int def = -1;
  if (x->default_set) {
    def = find_pool(c, x->default_name);
    if (def < 0 && strcmp(x->default_name, "default") != 0 && !x->lost)
      stmt_error(x, &x->default_at, "unknown pool '%s'", x->default_name);
  } else {
    def = find_pool(c, "default");
  }
  if (def < 0 && !(x->default_set && strcmp(x->default_name, "default"))) {
    // The implicit default pool.
    if (c->npools == CONFIG_MAX_POOLS) {
      stmt_error(x, last_pool_at(x),
                 "%u pools and no default: the implicit pool 'default' "
                 "would be one more (add 'default NAME')",
                 (unsigned)CONFIG_MAX_POOLS);
    } else {
      def = (int)c->npools++;
      struct config_pool *cp = &c->pools[def];
      char why[8];
      memcpy(cp->name, "default", 8);
      cp->implicit = 1;
      spec_parse(NULL, &cp->spec, why, sizeof why);
      cp->spec.full = SPEC_FULL_NULL;
      x->pool_ok[def] = 1;
      x->pool_fullfb[def] = 0;
    }
  }
  if (def >= 0) c->default_pool = (unsigned)def;

  for (unsigned i = 0; i < c->nroutes; i++) {
    int p = find_pool(c, x->route_name[i]);
    if (p < 0 && strcmp(x->route_name[i], "default") == 0) p = def;
    // (a route to "default" when the default itself is unknown was said)
    if (p < 0 && !x->lost &&
        (def >= 0 || strcmp(x->route_name[i], "default") != 0))
      stmt_error(x, &x->route_at[i], "unknown pool '%s'", x->route_name[i]);
    c->routes[i].pool = p < 0 ? 0 : (unsigned)p;
    c->lib_routes += c->routes[i].cond == CONFIG_LIB;
    c->thread_routes += c->routes[i].cond == CONFIG_THREAD;
  }

  if (def >= 0 && x->pool_ok[def] && !c->pools[def].implicit) {
    struct pool_spec *sp = &c->pools[def].spec;
    if (x->pool_fullfb[def])
      stmt_error(x, &x->pool_at[def],
                 "full=fallback on the default pool '%s' is a fallback "
                 "cycle (use full=null or full=abort)",
                 c->pools[def].name);
    else if (sp->full == SPEC_FULL_FALLBACK)
      sp->full = SPEC_FULL_NULL;
  }

  // Snapshots copy the process: with huge pages, the copy of the page
  // tables is 512 times shorter (docs/snapshots.md, "Costs"). Every pool
  // gets them when snapshots are asked for, unless its statement says thp=.
  int snapshots = 0;
  for (unsigned j = 0; j < c->npools; j++)
    snapshots |= c->pools[j].spec.snap_dir[0] != 0;
  for (unsigned j = 0; snapshots && j < c->npools; j++)
    if (!c->pools[j].spec.thp_set) c->pools[j].spec.thp = 1;

  for (unsigned j = 0; j < c->npools; j++) {
    const struct pool_spec *b = &c->pools[j].spec;
    if (!x->pool_ok[j] || c->pools[j].implicit) continue;
    for (unsigned i = 0; i < j; i++) {
      const struct pool_spec *a = &c->pools[i].spec;
      const char *an = c->pools[i].name;
      if (!x->pool_ok[i] || c->pools[i].implicit) continue;
      if (a->brk && b->brk)
        stmt_error(x, &x->pool_at[j],
                   "pool '%s' serves brk already (at most one pool may)", an);
      if (a->snap_dir[0] && b->snap_dir[0])
        stmt_error(x, &x->pool_at[j],
                   "pool '%s' gives snapshot= already (a snapshot is of "
                   "every pool: give it once)", an);
      if (a->file && b->file && strcmp(a->path, b->path) == 0) {
        char shown[61];
        show_path(b->path, shown, sizeof shown);
        stmt_error(x, &x->pool_at[j],
                   "file '%s' is already the file of pool '%s'", shown, an);
      }
      // A file pool without size= takes its file's capacity: unknown here.
      if (a->base && b->base && known_size(a) && known_size(b) &&
          a->base < b->base + b->size && b->base < a->base + a->size)
        stmt_error(x, &x->pool_at[j],
                   "range 0x%llx..0x%llx overlaps pool '%s' "
                   "(0x%llx..0x%llx)",
                   (unsigned long long)b->base,
                   (unsigned long long)(b->base + b->size), an,
                   (unsigned long long)a->base,
                   (unsigned long long)(a->base + a->size));
    }
  }
}

// ---------------------------------------------------------------------------
// Loading

void config_default(struct mmpool_config *out) {
  char why[8];
  out->npools = 1;
  out->nroutes = 0;
  out->default_pool = 0;
  out->lib_routes = out->thread_routes = 0;
  out->fallback = 0;
  out->stats = 0;
  out->log_level = LOG_WARN;
  out->strict = 0;
  out->check_full = 0;
  out->restore_pid = 0;
  out->restore_dir[0] = 0;
  struct config_pool *cp = &out->pools[0];
  memcpy(cp->name, "default", 8);
  cp->implicit = 1;
  spec_parse(NULL, &cp->spec, why, sizeof why);
  cp->spec.full = SPEC_FULL_NULL;
}

int config_load_from(struct mmpool_config *out, char **envp, int secure,
                     struct config_errors *errs) {
  if (errs) errs->count = errs->total = 0;
  config_default(out);
  if (secure) return 0;

  const char *val[OPT_RESTORE + 1] = {0};
  _Static_assert(sizeof config_options / sizeof config_options[0] ==
                     OPT_RESTORE + 1,
                 "one value per option");
  for (char **e = envp; e && *e; e++) {
    const char *s = *e;
    if (strncmp(s, "MMPOOL_", 7) != 0) continue;
    for (unsigned k = 0; k <= OPT_RESTORE; k++) {
      size_t l = strlen(config_options[k].name);
      if (!val[k] && strncmp(s, config_options[k].name, l) == 0 && s[l] == '=')
        val[k] = s + l + 1;
    }
  }

  struct report rep = {errs, 0, 0};
  load_options(out, &rep, val);
  int have_file = val[OPT_FILE] && *val[OPT_FILE];
  if (have_file || val[OPT_CONFIG]) {
    // The work area comes from the address-space ledger, like every
    // mapping of the library.
    struct work *x = vmmap_scratch(sizeof(struct work));
    if (!x) { // out of memory or address space
      rep.bad = 1;
      add_line(&rep, "%s: cannot parse it: ENOMEM: out of memory",
               have_file ? "MMPOOL_CONFIG_FILE" : "MMPOOL_CONFIG");
    } else { // zeroed by the kernel
      x->c = out;
      x->rep = &rep;
      out->npools = 0;
      if (have_file) load_file(x, val[OPT_FILE]);
      if (val[OPT_CONFIG]) load_var(x, val[OPT_CONFIG]);
      resolve(x);
      vmmap_scratch_release(x);
    }
    if (rep.bad) {
      int stats = out->stats, level = out->log_level, strict = out->strict;
      int check = out->check_full, rpid = out->restore_pid;
      static char rdir[SPEC_PATH_MAX];  // not on the stack: 4 KiB
      memcpy(rdir, out->restore_dir, sizeof rdir);
      config_default(out);
      out->stats = stats, out->log_level = level, out->strict = strict;
      out->check_full = check;
      out->restore_pid = rpid;
      memcpy(out->restore_dir, rdir, sizeof rdir);
      out->fallback = 1;
    }
  }
  return out->strict && rep.nerr ? -EINVAL : 0;
}

int config_load(struct mmpool_config *out, char **envp,
                struct config_errors *errs) {
  return config_load_from(out, envp, getauxval(AT_SECURE) != 0, errs);
}

// ---------------------------------------------------------------------------
// Matching the patterns of lib= and thread= routes

int config_glob_match(const char *p, const char *t) {
  const char *star = NULL, *resume = NULL;
  while (*t) {
    if (*p == '*') {
      while (*p == '*')
        p++;
      star = p;
      resume = t;
    } else if (*p && (*p == '?' || *p == *t)) {
      p++, t++;
    } else if (star) {
      p = star; // the last '*' takes one more character
      t = ++resume;
    } else {
      return 0;
    }
  }
  while (*p == '*')
    p++;
  return *p == 0;
}

int config_route_lib_match(const struct config_route *r, const char *path) {
  if (r->glob_path) return config_glob_match(r->glob, path);
  const char *slash = strrchr(path, '/');
  return config_glob_match(r->glob, slash ? slash + 1 : path);
}

// ---------------------------------------------------------------------------
// Describing: an appender that counts what it could not write.

struct out {
  char *buf;
  size_t n, len;
};

RARE static void putn(struct out *o, const char *s, size_t l) {
  if (o->len + 1 < o->n) {
    size_t room = o->n - 1 - o->len;
    memcpy(o->buf + o->len, s, l < room ? l : room);
  }
  o->len += l;
  if (o->n) o->buf[o->len < o->n ? o->len : o->n - 1] = 0;
}

RARE static void put(struct out *o, const char *s) { putn(o, s, strlen(s)); }

// The user's text (a path, a pattern), its control bytes escaped as \xNN:
// the description is printed (mmpool run --explain, MMPOOL_DEBUG).
RARE static void put_text(struct out *o, const char *s) {
  for (; *s; s++) {
    char esc[8];
    size_t l = fmt_escape(esc, sizeof esc, s, 1);
    putn(o, esc, l);
  }
}

RARE static void put_num(struct out *o, uint64_t v, unsigned radix) {
  char tmp[24];
  int i = sizeof tmp;
  do
    tmp[--i] = "0123456789abcdef"[v % radix];
  while ((v /= radix) != 0);
  putn(o, tmp + i, sizeof tmp - (size_t)i);
}

// A size in the largest unit that divides it, as spec_parse_size reads it.
RARE static void put_size(struct out *o, uint64_t v) {
  static const char units[] = "KMGT";
  int u = -1;
  while (u < 3 && v && v % 1024 == 0)
    v /= 1024, u++;
  put_num(o, v, 10);
  if (u >= 0) putn(o, &units[u], 1);
}

RARE static void pool_line(struct out *o, const struct config_pool *p) {
  const struct pool_spec *sp = &p->spec;
  put(o, "pool ");
  put(o, p->name);
  if (sp->file) {
    put(o, " file=");
    put_text(o, sp->path);
    if (sp->mode_set)
      put(o, sp->mode == SPEC_PRIVATE ? " mode=private" : " mode=shared");
  } else {
    put(o, " anon");
  }
  // A file pool without size= takes its file's capacity: say nothing then.
  if (sp->size_set || !sp->file) {
    put(o, " size=");
    put_size(o, sp->size);
  }
  if (sp->base) {
    put(o, " base=0x");
    put_num(o, sp->base, 16);
  } else {
    put(o, " base=auto");
  }
  static const char *const full[] = {" full=fallback", " full=null",
                                     " full=abort"};
  put(o, full[sp->full >= 0 && sp->full <= 2 ? sp->full : 0]);
  if (sp->brk) put(o, " brk");
  if (sp->recover) put(o, " recover");
  if (sp->trust == SPEC_TRUST_ANY) put(o, " trust=any");
  if (sp->thp) put(o, " thp=yes");
  if (sp->snap_dir[0]) {
    put(o, " snapshot=");
    put_text(o, sp->snap_dir);
    const char *sep = " snapshot-on=";
    if (sp->snap_on & SPEC_SNAP_ON_EXIT) {
      put(o, sep);
      put(o, "exit");
      sep = ",";
    }
    if (sp->snap_on & SPEC_SNAP_ON_SIGNAL) {
      put(o, sep);
      put(o, "signal:");
      put(o, spec_signal_name(sp->snap_signal));
      sep = ",";
    }
    if (sp->snap_on & SPEC_SNAP_ON_INTERVAL) {
      put(o, sep);
      put(o, "interval:");
      put_num(o, sp->snap_interval, 10);
      put(o, "s");
    }
    if (sp->snap_full) put(o, " snapshot-incremental=no");
  }
}

RARE static void route_line(struct out *o, const struct mmpool_config *c,
                            const struct config_route *r) {
  put(o, "route ");
  if (r->cond == CONFIG_SIZE) {
    if (r->hi == UINT64_MAX) {
      put(o, "size>=");
      put_size(o, r->lo);
    } else if (r->lo == 0) {
      put(o, "size<");
      put_size(o, r->hi + 1);
    } else {
      put(o, "size=");
      put_size(o, r->lo);
      if (r->hi != r->lo) {
        put(o, "..");
        put_size(o, r->hi);
      }
    }
  } else {
    put(o, r->cond == CONFIG_LIB ? "lib=" : "thread=");
    put_text(o, r->glob);
  }
  put(o, " -> ");
  put(o, r->pool < c->npools ? c->pools[r->pool].name : "?");
}

RARE size_t config_describe_pool(const struct mmpool_config *c, unsigned i,
                                 char *buf, size_t n) {
  struct out o = {buf, n, 0};
  if (n) buf[0] = 0;
  if (i < c->npools) pool_line(&o, &c->pools[i]);
  return o.len;
}

RARE size_t config_describe_route(const struct mmpool_config *c, unsigned i,
                                  char *buf, size_t n) {
  struct out o = {buf, n, 0};
  if (n) buf[0] = 0;
  if (i < c->nroutes) route_line(&o, c, &c->routes[i]);
  return o.len;
}

RARE size_t config_describe(const struct mmpool_config *c, char *buf,
                            size_t n) {
  static const char *const lv[] = {"error", "warn", "info", "debug"};
  struct out o = {buf, n, 0};
  if (n) buf[0] = 0;
  put(&o, "# MMPOOL_STATS=");
  put(&o, c->stats ? "1" : "0");
  put(&o, " MMPOOL_LOG=");
  put(&o, lv[c->log_level >= 0 && c->log_level <= 3 ? c->log_level : 1]);
  put(&o, " MMPOOL_STRICT=");
  put(&o, c->strict ? "1" : "0");
  put(&o, " MMPOOL_CHECK=");
  put(&o, c->check_full ? "full" : "fast");
  put(&o, "\n");
  if (c->fallback)
    put(&o, "# the configuration had errors: the built-in default is used\n");
  for (unsigned i = 0; i < c->npools; i++) {
    pool_line(&o, &c->pools[i]);
    put(&o, "\n");
  }
  for (unsigned i = 0; i < c->nroutes; i++) {
    route_line(&o, c, &c->routes[i]);
    put(&o, "\n");
  }
  put(&o, "default ");
  put(&o, c->default_pool < c->npools ? c->pools[c->default_pool].name : "?");
  put(&o, "\n");
  return o.len;
}
