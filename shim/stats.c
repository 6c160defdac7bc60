// stats.c: the MMPOOL_STATS=1 report, written to stderr when the program
// exits.
//
// Invariant: the report never allocates and never writes anywhere but the
// stderr the program started with. shim_stats_start takes a private
// duplicate of fd 2 (coreutils and daemons close stderr before exit), close
// to the descriptor limit (1008 under the usual limit of 1024) so that the
// program's own descriptors keep their numbers, and
// remembers the identity (device, inode) of what it refers to; the ELF
// destructor (not atexit: PITFALLS 3.14) writes through that duplicate only
// while it still refers to the same file, else through fd 2 if fd 2 still
// is that file, else nowhere: a program that closed our descriptor and
// opened something else under its number must not find our lines in it.
//
// Figures per pool: the blocks that malloc and co. handed out since start
// and their bytes (route.c counts them per route, in whole blocks of their
// size class), the peak of memory held by slabs and large blocks (the
// engine's high-water mark since the pool was opened), and what is live at
// exit. Then every route to the pool with the allocations it took. A fork
// child's report counts the blocks the child allocated; its live figures
// and peak are the pool's, inherited from the parent.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fmt.h"
#include "log.h"
#include "os.h"
#include "route.h"
#include "route_stats.h"
#include "shim.h"
#include "snapshot.h"

// ---------------------------------------------------------------------------
// State kept from start-up to exit

static int report_on;             // shim_stats_start ran
static int out_fd = -1;           // our duplicate of fd 2, or -1
static uint64_t out_dev, out_ino; // what fd 2 referred to at start
static int out_known;             // out_dev/out_ino are valid

static int identity(int fd, uint64_t *dev, uint64_t *ino) {
  uint64_t size;
  int regular;
  return os_file_size(fd, &size, &regular, dev, ino);
}

// The lowest number our duplicate of stderr may take: high, so that the
// program's own descriptors keep the numbers they would have without us
// (open() returns the lowest free one): 16 below the soft limit, at most
// 1008 (a larger number would grow the kernel's descriptor table).
static long dup_floor(void) {
  struct rlimit rl;
  if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl) != 0) return 3;
  uint64_t top = rl.rlim_cur < 1024 ? rl.rlim_cur : 1024;
  return top >= 300 + 16 ? (long)(top - 16) : 3;
}

RARE void shim_stats_start(void) {
  int saved = errno;
  long d = syscall(SYS_fcntl, 2, F_DUPFD_CLOEXEC, dup_floor());
  if (d < 0) d = syscall(SYS_fcntl, 2, F_DUPFD_CLOEXEC, 3);
  errno = saved;
  if (d >= 0) out_fd = (int)d;
  out_known = identity(2, &out_dev, &out_ino) == 0;
  __atomic_store_n(&report_on, 1, __ATOMIC_RELEASE);
}

// The descriptor to write the report to, or -1 (see the invariant above).
static int report_fd(void) {
  uint64_t dev, ino;
  if (!out_known) return out_fd; // fd 2 was not even fstat-able at start
  if (out_fd >= 0 && identity(out_fd, &dev, &ino) == 0 && dev == out_dev &&
      ino == out_ino)
    return out_fd;
  if (identity(2, &dev, &ino) == 0 && dev == out_dev && ino == out_ino)
    return 2;
  return -1;
}

// ---------------------------------------------------------------------------
// Output: lines formatted on the stack, written in chunks

struct rep {
  int fd;
  size_t len;
  char buf[2048];
};

static void flush(struct rep *r) {
  if (r->len) os_write_all(r->fd, r->buf, r->len);
  r->len = 0;
}

static void line(struct rep *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
RARE static void line(struct rep *r, const char *fmt, ...) {
  char l[512];
  size_t n = fmt_format(l, sizeof l, "mmpool: ");
  va_list ap;
  va_start(ap, fmt);
  n += fmt_vformat(l + n, sizeof l - n - 1, fmt, ap);
  va_end(ap);
  l[n++] = '\n';
  if (r->len + n > sizeof r->buf) flush(r);
  memcpy(r->buf + r->len, l, n);
  r->len += n;
}

// "1245184 bytes (1.2 MiB)": exact, and rounded down from 1 KiB on.
RARE static const char *bytes(char *b, size_t n, uint64_t v) {
  static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (v < 1024) {
    fmt_format(b, n, "%llu bytes", (unsigned long long)v);
    return b;
  }
  unsigned u = 0;
  while (u < 4 && v >> (10 * (u + 1)) >= 1024)
    u++;
  unsigned shift = 10 * (u + 1);
  uint64_t whole = v >> shift;
  uint64_t tenth = ((v - (whole << shift)) * 10) >> shift;
  fmt_format(b, n, "%llu bytes (%llu.%llu %s)", (unsigned long long)v,
             (unsigned long long)whole, (unsigned long long)tenth, unit[u]);
  return b;
}

// ---------------------------------------------------------------------------
// The report

static int pool_open_now(const struct mmpool *p) {
  return __atomic_load_n(&p->state, __ATOMIC_ACQUIRE) == POOL_OPEN;
}

// The figures of one open pool.
RARE static void figures(struct rep *r, struct mmpool *p) {
  char b1[48], b2[48], b3[48], b4[48];
  line(r, "  base %p, capacity %s", (void *)p->base,
       bytes(b1, sizeof b1, p->capacity));
  if (tl_locks) { // exit() called while this thread is inside the engine
    line(r, "  figures skipped: this thread holds an engine lock");
    return;
  }
  mmpool_stats_t st;
  int saved = errno;
  int rc = mmpool_stats(pool_handle(p), &st);
  errno = saved;
  if (rc != 0) {
    line(r, "  figures unavailable: %s", mmpool_last_error());
    return;
  }
  line(r, "  peak held by blocks %s; mapped %s, metadata %s, free in mapped "
       "data %s", bytes(b1, sizeof b1, st.peak),
       bytes(b2, sizeof b2, st.mapped), bytes(b3, sizeof b3, st.metadata),
       bytes(b4, sizeof b4, st.free_bytes));
  line(r, "  live at exit: %zu blocks, %s, %zu of them large blocks",
       st.in_use_blocks, bytes(b1, sizeof b1, st.in_use), st.large_blocks);
  // The classes holding live blocks, "size:blocks", a few per line.
  static const char first[] = "  classes in use (block size:live blocks):";
  const char *lead = first;
  char cl[160];
  size_t n = 0;
  for (unsigned c = 0; c < st.nclasses && c < MMPOOL_STATS_CLASSES; c++) {
    const mmpool_class_stats_t *k = &st.classes[c];
    if (!k->blocks_used) continue;
    if (n > 64) {
      line(r, "%s%s", lead, cl);
      lead = "   ", n = 0;
    }
    n += fmt_format(cl + n, sizeof cl - n, " %zu:%zu", k->block_size,
                    k->blocks_used);
  }
  if (n)
    line(r, "%s%s", lead, cl);
  else if (lead == first)
    line(r, "  classes in use: none (no live block below the large size)");
}

// The blocks the pool in slot id could not serve and sent elsewhere
// (full=fallback), by reason: "fallbacks: 12 (ENOSPC 10, EBUSY 2)". No
// line for a pool that never fell back.
RARE static void fallback_line(struct rep *r, const struct mmpool *p) {
  uint64_t total = route_stats_fallbacks(p->id, FB_REASONS);
  if (!total) return;
  char why[256];  // 9 reasons of at most 27 characters each
  size_t n = 0;
  for (unsigned k = 0; k < FB_REASONS; k++) {
    uint64_t c = route_stats_fallbacks(p->id, k);
    if (c)
      n += fmt_format(why + n, sizeof why - n, "%s%s %llu", n ? ", " : "",
                      route_fb_name[k], (unsigned long long)c);
  }
  line(r, "  fallbacks: %llu (%s)", (unsigned long long)total, why);
}

// Counts of route k, or of the default (k == ROUTE_DEFAULT).
RARE static void route_line(struct rep *r, const struct route_totals *t,
                            unsigned k, const char *what) {
  char b1[48], b2[48];
  if (!t->fb_n[k]) {
    line(r, "  %s: %llu allocations, %s", what,
         (unsigned long long)t->n[k], bytes(b1, sizeof b1, t->bytes[k]));
    return;
  }
  line(r, "  %s: %llu allocations, %s; %llu of them (%s) went to the "
       "default pool: this one was full", what, (unsigned long long)t->n[k],
       bytes(b1, sizeof b1, t->bytes[k]), (unsigned long long)t->fb_n[k],
       bytes(b2, sizeof b2, t->fb_bytes[k]));
}

// The blocks pool i (a configured pool) received through routes.
static void pool_counts(struct rep *r, const struct route_totals *t,
                        unsigned i, int have) {
  // Its routes' blocks, less those a full pool sent to the default; the
  // default pool gets those, and what no route took.
  int dflt = i == shim_cfg.default_pool;
  uint64_t n = dflt ? t->n[ROUTE_DEFAULT] : 0;
  uint64_t b = dflt ? t->bytes[ROUTE_DEFAULT] : 0;
  for (unsigned k = 0; k < shim_cfg.nroutes; k++) {
    if (shim_cfg.routes[k].pool == i)
      n += t->n[k] - t->fb_n[k], b += t->bytes[k] - t->fb_bytes[k];
    if (dflt) n += t->fb_n[k], b += t->fb_bytes[k];
  }
  char b1[48];
  line(r, "  allocated since start: %llu blocks, %s%s", (unsigned long long)n,
       bytes(b1, sizeof b1, b),
       have ? "" : " (this thread holds an engine lock: live threads' "
                   "counts are missing)");
}

static void pool_block(struct rep *r, unsigned i,
                       const struct route_totals *t, int have) {
  const struct config_pool *cp = &shim_cfg.pools[i];
  const struct pool_spec *sp = &cp->spec;
  struct mmpool *p = shim_cfg_pool[i];
  const char *role = i == shim_cfg.default_pool ? " (default pool)" : "";
  if (sp->file)
    line(r, "pool %s%s: file %s, mode=%s", cp->name, role, sp->path,
         sp->mode == SPEC_PRIVATE ? "private" : "shared");
  else
    line(r, "pool %s%s: anon", cp->name, role);
  if (!p && shim_cfg_open_error[i] == EBUSY) {
    line(r, "  not open: its file is in use by another process (the parent "
            "of a child that inherits the configuration?)");
  } else if (!p) {
    char eb[32];
    line(r, "  not open: it could not be opened at start-up (%s)",
         os_strerror(shim_cfg_open_error[i], eb, sizeof eb));
  } else {
    pool_counts(r, t, i, have);
    if (!route_pool_ok(p))
      line(r, "  closed by the program before exit");
    else
      figures(r, p);
    fallback_line(r, p);
  }
  unsigned routes = 0;
  for (unsigned k = 0; k < shim_cfg.nroutes; k++) {
    if (shim_cfg.routes[k].pool != i) continue;
    char d[CONFIG_GLOB_MAX + 128];
    config_describe_route(&shim_cfg, k, d, sizeof d);
    route_line(r, t, k, d);
    routes++;
  }
  if (i == shim_cfg.default_pool)
    route_line(r, t, ROUTE_DEFAULT, "no route matched");
  else if (!routes)
    line(r, "  no route leads here");
}

// Whether slot id is one of the configured pools, as opened at start-up.
static int configured(unsigned id) {
  for (unsigned i = 0; i < shim_cfg.npools && i < CONFIG_MAX_POOLS; i++)
    if (shim_cfg_pool[i] == &pool_table[id] && route_pool_ok(&pool_table[id]))
      return 1;
  return 0;
}

__attribute__((destructor)) static void stats_report(void) {
  if (!__atomic_load_n(&report_on, __ATOMIC_ACQUIRE)) return;
  int saved = errno;
  struct rep r;
  r.fd = report_fd();
  r.len = 0;
  if (r.fd < 0) goto out;
  line(&r, "stats of pid %ld (%s) at exit: %u configured pools, %u routes%s",
       (long)syscall(SYS_getpid), program_invocation_short_name,
       shim_cfg.npools, shim_cfg.nroutes,
       shim_cfg.fallback ? " (the built-in default: the configuration had "
                           "errors)"
                         : "");
  line(&r, "allocated: blocks handed out by malloc and co. (in whole blocks "
           "of their size class); peak: the most memory slabs and large "
           "blocks held at once; live: blocks not freed at exit");
  static struct route_totals tot; // exit: no other report runs at once
  int have = route_totals(&tot);
  for (unsigned i = 0; i < shim_cfg.npools && i < CONFIG_MAX_POOLS; i++)
    pool_block(&r, i, &tot, have);
  // Pools the configuration did not name: opened by the program through
  // the API, or the built-in default when the configured one failed.
  for (unsigned id = 1; id <= MMPOOL_MAX_POOLS; id++) {
    struct mmpool *p = &pool_table[id];
    if (!pool_open_now(p) || configured(id)) continue;
    if (p->is_file)
      line(&r, "pool %s: file %s, not in the configuration", p->name, p->path);
    else
      line(&r, "pool %s: anon, not in the configuration", p->name);
    figures(&r, p);
    fallback_line(&r, p);
  }
  struct snap_stats ss;
  snapshot_stats(&ss);
  if (ss.taken || ss.failed) {
    char b1[32], b2[32], b3[32], b4[32];
    line(&r, "snapshots: %llu taken, %llu failed (%llu incremental, %llu "
         "without a copy of the process); pause "
         "last %llu us, most %llu us, mean %llu us; %s written, %s by the "
         "incremental ones; the last %s, %s of %s (a snapshot at exit "
         "comes after this report)",
         (unsigned long long)ss.taken, (unsigned long long)ss.failed,
         (unsigned long long)ss.incremental,
         (unsigned long long)ss.captured,
         (unsigned long long)(ss.pause_last_ns / 1000),
         (unsigned long long)(ss.pause_max_ns / 1000),
         (unsigned long long)(ss.taken ? ss.pause_total_ns / ss.taken / 1000
                                       : 0),
         bytes(b1, sizeof b1, ss.bytes),
         bytes(b2, sizeof b2, ss.bytes_incremental),
         ss.last_incremental ? "incremental" : "full",
         bytes(b3, sizeof b3, ss.last_bytes),
         bytes(b4, sizeof b4, ss.last_image_bytes));
  }
  flush(&r);
out:
  errno = saved;
}
