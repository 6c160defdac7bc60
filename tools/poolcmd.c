// poolcmd.c: `mmpool info`, `check`, `map` and `upgrade`: the commands that
// read a pool file that no process has attached.
//
// All the reading is core/inspect.c's: it opens the file without following
// links, takes a shared flock (an exclusive one for upgrade) so that a file
// attached with mode=shared is refused rather than read while it changes,
// validates the header before mapping anything, and walks the mapping
// trusting no field. This file only turns what it finds into words, JSON,
// a picture, or a converted file. Problems go to stdout, one line each
// ("FILE: what, where"); failures to read go to stderr.
#define _GNU_SOURCE
#include "poolcmd.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "inspect.h"
#include "os.h"
#include "poolfile.h"
#include "sizeclass.h"
#include "snapshot.h"

// An open file and what the walk found; static: struct inspect holds a
// struct mmpool (8 KiB, 8 KiB aligned).
static struct inspect in;
static struct inspect_stats stats;

#define MAX_LINES 1000u  // problem lines printed; the rest are counted

// ---------------------------------------------------------------------------
// Words

// A byte count as a person reads it: "512 B", "64 KiB", "1.5 MiB".
static const char *hsize(char *buf, size_t n, uint64_t v) {
  static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  unsigned u = 0;
  double x = (double)v;
  while (x >= 1024 && u < 5) x /= 1024, u++;
  if (u == 0 || x >= 100 || x == (double)(uint64_t)x)
    snprintf(buf, n, "%.0f %s", x, unit[u]);
  else
    snprintf(buf, n, "%.1f %s", x, unit[u]);
  // "2.0 MiB" reads better as "2 MiB".
  char *dot = strstr(buf, ".0 ");
  if (dot) memmove(dot, dot + 2, strlen(dot + 2) + 1);
  return buf;
}
#define HS(v) hsize((char[32]){0}, 32, (v))

static const char *utc(char *buf, size_t n, uint64_t t) {
  if (!t) return "never";
  time_t tt = (time_t)t;
  struct tm tm;
  if (!gmtime_r(&tt, &tm) || !strftime(buf, n, "%Y-%m-%d %H:%M:%S UTC", &tm))
    snprintf(buf, n, "%" PRIu64 " (seconds since 1970)", t);
  return buf;
}
#define UTC(t) utc((char[48]){0}, 48, (t))

static void uuid_text(char *buf, size_t n, const uint64_t u[2]) {
  const unsigned char *b = (const unsigned char *)u;
  snprintf(buf, n, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
           "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
           b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

// A JSON string.
static void jstr(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    if (*c == '"' || *c == '\\')
      fprintf(f, "\\%c", *c);
    else if (*c < 0x20 || *c == 0x7f)
      fprintf(f, "\\u%04x", *c);
    else
      fputc(*c, f);
  }
  fputc('"', f);
}

// A path as it can be printed in one line: control bytes as \xNN. (Two
// buffers in turn: one message may show two paths.)
static const char *shown(const char *path) {
  static char bufs[2][PATH_MAX * 4 + 1];
  static unsigned turn;
  char *buf = bufs[turn++ % 2];
  size_t n = 0;
  for (const unsigned char *c = (const unsigned char *)path;
       *c && n + 5 < sizeof bufs[0]; c++) {
    if (*c < 0x20 || *c == 0x7f)
      n += (size_t)snprintf(buf + n, sizeof bufs[0] - n, "\\x%02x", *c);
    else
      buf[n++] = (char)*c;
  }
  buf[n] = 0;
  return buf;
}

// The file is read through a mapping of the length its header records,
// after checking that the file has it, and under a shared flock that every
// attach respects; only someone who ignores the lock can cut the file
// while it is read, and a read past the new end is SIGBUS. That is said in
// one line, not a core dump.
static void on_sigbus(int sig) {
  static const char msg[] = "mmpool: the pool file was cut short while it "
                            "was being read (by a process that ignores its "
                            "lock)\n";
  (void)sig;
  ssize_t w = write(2, msg, sizeof msg - 1);
  (void)w;
  _exit(POOLCMD_BAD);
}

// Opens path through inspect_open, or image i of snapshot m (read from
// dir) with its deltas when m is not NULL (path is then its image's).
static int open_in(const char *path, const char *dir,
                   const struct snap_manifest *m, uint32_t i, unsigned flags,
                   char *why, size_t why_len) {
  if (!m) return inspect_open(&in, path, flags, why, why_len);
  char w[4800];
  int r = snapshot_image_open(&in, dir, m, i, w, sizeof w);
  // Its reason begins with the image's path, which the caller says.
  size_t n = strlen(path);
  const char *rest = w;
  if (!strncmp(w, path, n) && w[n] == ':' && w[n + 1] == ' ') rest += n + 2;
  if (r) snprintf(why, why_len, "%s", rest);
  return r;
}

// Opens path (see open_in); on failure one line on stderr.
static int open_file(const char *path, const char *dir,
                     const struct snap_manifest *m, uint32_t i,
                     unsigned flags) {
  char why[4800];
  signal(SIGBUS, on_sigbus);
  int r = open_in(path, dir, m, i, flags, why, sizeof why);
  if (r) fprintf(stderr, "mmpool: %s: %s\n", shown(path), why);
  return r;
}

// ---------------------------------------------------------------------------
// The figures info shows and map draws

struct figures {
  uint64_t mapped;       // header + committed descriptors + committed data
  uint64_t in_use;       // live slab blocks (block size) + large blocks' pages
  uint64_t requested;    // what the live blocks were asked for
  uint64_t live_blocks;
  uint64_t meta;         // header page, committed descriptors, slack arrays
  uint64_t free;         // mapped - in_use - meta
  uint64_t free_spans;   // bytes of free spans below the top
  uint64_t above_top;    // committed data above the top
  uint64_t in_slabs;     // free bytes inside slab pages
  uint64_t not_in_file;  // capacity past the file's length
  uint64_t slab_bytes;   // bytes of slab pages
  double frag_slabs, frag_spans;
};

static void figures(struct figures *g) {
  const struct poolfile_header *h = &in.hdr;
  memset(g, 0, sizeof *g);
  uint64_t data = h->st.length - h->data_off;
  g->mapped = h->desc_off + h->st.meta_committed + data;
  uint64_t slab_live = 0;
  for (unsigned c = 0; c < SC_COUNT; c++) {
    const struct inspect_class *k = &stats.cls[c];
    g->live_blocks += k->live;
    slab_live += k->live * sc_table[c].bsize;
    g->requested += k->req_bytes;
    g->slab_bytes += (uint64_t)k->pages << PAGE_SHIFT;
  }
  g->live_blocks += stats.large_blocks;
  g->requested += stats.large_req;
  g->in_use = slab_live + (stats.large_pages << PAGE_SHIFT);
  g->meta = h->desc_off + h->st.meta_committed + stats.slack_bytes;
  g->free = g->mapped > g->in_use + g->meta ? g->mapped - g->in_use - g->meta
                                            : 0;
  g->free_spans = stats.free_pages << PAGE_SHIFT;
  uint64_t top_end = (uint64_t)h->st.top << PAGE_SHIFT;
  g->above_top = data > top_end ? data - top_end : 0;
  uint64_t slab_free = g->slab_bytes - slab_live - stats.slack_bytes;
  g->in_slabs = g->slab_bytes >= slab_live + stats.slack_bytes ? slab_free : 0;
  g->not_in_file = h->capacity - h->st.length;
  g->frag_slabs = g->slab_bytes
                      ? 1.0 - (double)slab_live / (double)g->slab_bytes
                      : 0.0;
  g->frag_spans = stats.free_pages ? 1.0 - (double)stats.largest_free /
                                               (double)stats.free_pages
                                   : 0.0;
}

static void count_problem(void *arg, int64_t page, uint64_t addr,
                          const char *line) {
  (void)page, (void)addr, (void)line;
  (*(unsigned *)arg)++;
}

// ---------------------------------------------------------------------------
// info

struct root {
  unsigned key;
  uint64_t addr;
  int live;
  uint64_t blk, len;
};

static unsigned roots(struct root *out) {
  unsigned n = 0;
  for (unsigned k = 0; k < MMPOOL_ROOTS; k++) {
    uint64_t a = in.hdr.roots[k];
    if (!a) continue;
    struct root *r = &out[n++];
    r->key = k;
    r->addr = a;
    r->live = inspect_block_at(&in, a - in.hdr.base, &r->blk, &r->len);
    r->blk += in.hdr.base;
  }
  return n;
}

static int brk_live(uint64_t *blk, uint64_t *len) {
  const struct pool_state *st = &in.hdr.st;
  if (!st->brk_start) return 0;
  if (!inspect_block_at(&in, st->brk_start, blk, len)) return 0;
  // The break lies in the block that holds its start.
  return st->brk_cur <= *blk + *len;
}

static void info_text(const char *path, unsigned problems) {
  const struct poolfile_header *h = &in.hdr;
  struct figures g;
  figures(&g);
  char uu[40];
  uuid_text(uu, sizeof uu, h->uuid);
  printf("file        %s\n", shown(path));
  if (in.version == 1)
    printf("format      version 1: this build does not attach it; convert "
           "it with 'mmpool upgrade FILE'\n");
  else
    printf("format      version %u\n", h->version);
  printf("name        %s\n", h->name);
  printf("base        0x%" PRIx64 "\n", h->base);
  printf("capacity    %s (%" PRIu64 " bytes; %" PRIu64 " data pages of "
         "64 KiB)\n", HS(h->capacity), h->capacity, h->npages);
  printf("on disk     %s (length %" PRIu64 " bytes; the file has %" PRIu64
         ")\n", HS(h->st.length), h->st.length, in.file_size);
  printf("generation  %" PRIu64 " (attaches so far)\n", h->generation);
  if (h->flags & POOLFILE_CLEAN)
    printf("state       clean (closed %s)\n", UTC(h->closed));
  else
    printf("state       not clean: its process died or it is attached; "
           "attaching it needs the option 'recover'\n");
  if (in.version == 1)
    printf("created     unknown (version 1 does not record it)\n");
  else
    printf("created     %s\n", UTC(h->created));
  if (in.version != 1) printf("uuid        %s\n", uu);
  printf("features    compat 0x%x, ro_compat 0x%x, incompat 0x%x%s\n",
         h->feature_compat, h->feature_ro_compat, h->feature_incompat,
         poolfile_ro_unknown(h) ? " (unknown read-only-compatible bits: "
                                  "attach with mode=private only)"
                                : "");
  struct root rs[MMPOOL_ROOTS];
  unsigned nr = roots(rs);
  printf("roots%s\n", nr ? "" : "       none");
  for (unsigned i = 0; i < nr; i++) {
    if (rs[i].live)
      printf("  %2u -> 0x%" PRIx64 " (in the live block of %s at 0x%" PRIx64
             ")\n", rs[i].key, rs[i].addr, HS(rs[i].len), rs[i].blk);
    else
      printf("  %2u -> 0x%" PRIx64 " (not a live block)\n", rs[i].key,
             rs[i].addr);
  }
  if (!h->st.brk_start) {
    printf("break       none\n");
  } else {
    uint64_t blk, len;
    int live = brk_live(&blk, &len);
    printf("break       0x%" PRIx64 "-0x%" PRIx64 " (%s), %s\n",
           h->base + h->st.brk_start, h->base + h->st.brk_cur,
           HS(h->st.brk_cur - h->st.brk_start),
           live ? "in a live block" : "not in a live block");
  }
  printf("\nlive blocks by size class\n");
  printf("  %8s %7s %7s %12s %12s %12s\n", "size", "slabs", "pages",
         "live blocks", "bytes", "requested");
  for (unsigned c = 0; c < SC_COUNT; c++) {
    const struct inspect_class *k = &stats.cls[c];
    if (!k->slabs) continue;
    printf("  %8s %7u %7u %12" PRIu64 " %12s %12s\n", HS(sc_table[c].bsize),
           k->slabs, k->pages, k->live, HS(k->live * sc_table[c].bsize),
           HS(k->req_bytes));
  }
  if (stats.large_blocks)
    printf("  %8s %7s %7" PRIu64 " %12" PRIu64 " %12s %12s\n", "large", "-",
           stats.large_pages, stats.large_blocks,
           HS(stats.large_pages << PAGE_SHIFT), HS(stats.large_req));
  printf("\nbytes\n");
  printf("  in use      %s in %" PRIu64 " live blocks (%s asked for)\n",
         HS(g.in_use), g.live_blocks, HS(g.requested));
  printf("  free        %s: %s in free spans, %s above the top, %s in "
         "slabs\n", HS(g.free), HS(g.free_spans), HS(g.above_top),
         HS(g.in_slabs));
  printf("  metadata    %s: header 4 KiB, descriptors %s, slack arrays %s\n",
         HS(g.meta), HS(h->st.meta_committed), HS(stats.slack_bytes));
  printf("  not in file %s of the capacity (reserved when attached)\n",
         HS(g.not_in_file));
  printf("\nfragmentation\n");
  printf("  slabs       %.1f%% (of the slab pages' bytes, the share not in "
         "live blocks)\n", 100 * g.frag_slabs);
  printf("  free spans  %.1f%% (1 - largest free span / all free spans below "
         "the top; %" PRIu64 " span%s, largest %s)\n", 100 * g.frag_spans,
         stats.free_spans, stats.free_spans == 1 ? "" : "s",
         HS(stats.largest_free << PAGE_SHIFT));
  if (problems)
    printf("\ncheck       %u problem%s: run 'mmpool check FILE'\n", problems,
           problems == 1 ? "" : "s");
  else
    printf("\ncheck       no problem found by the walk\n");
}

static void info_json(const char *path, unsigned problems) {
  const struct poolfile_header *h = &in.hdr;
  struct figures g;
  figures(&g);
  char uu[40];
  uuid_text(uu, sizeof uu, h->uuid);
  FILE *f = stdout;
  fputs("{\"file\": ", f);
  jstr(f, path);
  fprintf(f, ", \"version\": %u, \"name\": ", in.version);
  jstr(f, h->name);
  fprintf(f, ", \"base\": %" PRIu64 ", \"capacity\": %" PRIu64
          ", \"npages\": %" PRIu64 ", \"length\": %" PRIu64
          ", \"file_size\": %" PRIu64 ", \"generation\": %" PRIu64
          ", \"clean\": %s, \"created\": %" PRIu64 ", \"closed\": %" PRIu64
          ", \"uuid\": ", h->base, h->capacity, h->npages, h->st.length,
          in.file_size, h->generation,
          h->flags & POOLFILE_CLEAN ? "true" : "false",
          in.version == 1 ? 0 : h->created, h->closed);
  if (in.version == 1) fputs("null", f);
  else jstr(f, uu);
  fprintf(f, ", \"features\": {\"compat\": %u, \"ro_compat\": %u, "
          "\"incompat\": %u}, \"roots\": [", h->feature_compat,
          h->feature_ro_compat, h->feature_incompat);
  struct root rs[MMPOOL_ROOTS];
  unsigned nr = roots(rs);
  for (unsigned i = 0; i < nr; i++) {
    fprintf(f, "%s{\"key\": %u, \"address\": %" PRIu64 ", \"live\": %s",
            i ? ", " : "", rs[i].key, rs[i].addr,
            rs[i].live ? "true" : "false");
    if (rs[i].live)
      fprintf(f, ", \"block\": %" PRIu64 ", \"block_size\": %" PRIu64,
              rs[i].blk, rs[i].len);
    fputc('}', f);
  }
  fputs("], \"break\": ", f);
  if (!h->st.brk_start) {
    fputs("null", f);
  } else {
    uint64_t blk, len;
    fprintf(f, "{\"start\": %" PRIu64 ", \"current\": %" PRIu64
            ", \"live\": %s}", h->base + h->st.brk_start,
            h->base + h->st.brk_cur, brk_live(&blk, &len) ? "true" : "false");
  }
  fputs(", \"classes\": [", f);
  int first = 1;
  for (unsigned c = 0; c < SC_COUNT; c++) {
    const struct inspect_class *k = &stats.cls[c];
    if (!k->slabs) continue;
    fprintf(f, "%s{\"class\": %u, \"block_size\": %u, \"slabs\": %u, "
            "\"pages\": %u, \"live_blocks\": %" PRIu64 ", \"bytes\": %" PRIu64
            ", \"requested\": %" PRIu64 "}", first ? "" : ", ", c,
            sc_table[c].bsize, k->slabs, k->pages, k->live,
            k->live * sc_table[c].bsize, k->req_bytes);
    first = 0;
  }
  fprintf(f, "], \"large\": {\"blocks\": %" PRIu64 ", \"pages\": %" PRIu64
          ", \"bytes\": %" PRIu64 ", \"requested\": %" PRIu64 "}",
          stats.large_blocks, stats.large_pages,
          stats.large_pages << PAGE_SHIFT, stats.large_req);
  fprintf(f, ", \"bytes\": {\"mapped\": %" PRIu64 ", \"in_use\": %" PRIu64
          ", \"requested\": %" PRIu64 ", \"live_blocks\": %" PRIu64
          ", \"free\": %" PRIu64 ", \"free_spans\": %" PRIu64
          ", \"above_top\": %" PRIu64 ", \"in_slabs\": %" PRIu64
          ", \"metadata\": %" PRIu64 ", \"header\": %" PRIu64
          ", \"descriptors\": %" PRIu64 ", \"slack_arrays\": %" PRIu64
          ", \"not_in_file\": %" PRIu64 "}", g.mapped, g.in_use, g.requested,
          g.live_blocks, g.free, g.free_spans, g.above_top, g.in_slabs,
          g.meta, h->desc_off, h->st.meta_committed, stats.slack_bytes,
          g.not_in_file);
  fprintf(f, ", \"free_spans\": {\"count\": %" PRIu64 ", \"largest_pages\": "
          "%" PRIu64 ", \"pages\": %" PRIu64 "}", stats.free_spans,
          stats.largest_free, stats.free_pages);
  fprintf(f, ", \"fragmentation\": {\"slabs\": %.6f, \"free_spans\": %.6f}",
          g.frag_slabs, g.frag_spans);
  fprintf(f, ", \"problems\": %u}\n", problems);
}

int poolcmd_info(const char *path, int json) {
  if (open_file(path, NULL, NULL, 0, 0)) return POOLCMD_BAD;
  unsigned problems = 0;
  struct inspect_cb cb = {.problem = count_problem, .arg = &problems};
  inspect_walk(&in, &cb, &stats);
  if (json)
    info_json(path, problems);
  else
    info_text(path, problems);
  inspect_close(&in);
  return fflush(stdout) == 0 ? POOLCMD_OK : POOLCMD_TOOL;
}

// ---------------------------------------------------------------------------
// check

struct lines {
  const char *path;
  unsigned n;
};

static void print_problem(void *arg, int64_t page, uint64_t addr,
                          const char *line) {
  (void)page, (void)addr;
  struct lines *l = arg;
  if (l->n++ < MAX_LINES) printf("%s: %s\n", l->path, line);
}

int poolcmd_check(const char *path) {
  return poolcmd_check_image(path, NULL, NULL, 0);
}

int poolcmd_check_image(const char *path, const char *dir,
                        const struct snap_manifest *m, unsigned i) {
  char why[4800];
  signal(SIGBUS, on_sigbus);
  static char p[PATH_MAX * 4 + 1];  // shown() reuses its buffers
  snprintf(p, sizeof p, "%s", shown(path));
  int r = open_in(path, dir, m, i, 0, why, sizeof why);
  if (r) {
    // Not readable as a pool: that is the one problem (stdout, as the
    // others); a file that cannot be opened at all is said on stderr.
    if (r == -ENOEXEC || r == -EUCLEAN || r == -ENODATA)
      printf("%s: %s\n", p, why);
    else
      fprintf(stderr, "mmpool: %s: %s\n", p, why);
    return POOLCMD_BAD;
  }
  struct lines l = {p, 0};
  if (in.version == 1)
    print_problem(&l, -1, 0, "format version 1, which this build does not "
                  "attach: convert it with 'mmpool upgrade FILE' (its "
                  "structure is checked below)");
  if (!(in.hdr.flags & POOLFILE_CLEAN))
    print_problem(&l, -1, 0, "not closed cleanly (its process died, or it "
                  "is attached): attaching it needs the option 'recover'; "
                  "the checks below are of the file as it is");
  struct inspect_cb cb = {.problem = print_problem, .arg = &l};
  inspect_walk(&in, &cb, &stats);
  if (l.n > MAX_LINES)
    printf("%s: %u more problems not listed\n", p, l.n - MAX_LINES);
  if (poolfile_ro_unknown(&in.hdr))
    fprintf(stderr, "mmpool: %s: uses read-only-compatible features this "
            "build does not know (0x%x): it attaches with mode=private "
            "only\n", p, poolfile_ro_unknown(&in.hdr));
  if (l.n)
    fprintf(stderr, "mmpool: %s: not sound: %u problem%s\n", p, l.n,
            l.n == 1 ? "" : "s");
  else
    fprintf(stderr, "mmpool: %s: sound (version %u, clean, %u pages below "
            "the top checked)\n", p, in.version, in.hdr.st.top);
  inspect_close(&in);
  if (fflush(stdout) != 0) return POOLCMD_TOOL;
  return l.n ? POOLCMD_BAD : POOLCMD_OK;
}

// ---------------------------------------------------------------------------
// map

// What a 64 KiB unit of the pool's range holds, for the picture.
enum {
  K_META = 0,    // header and descriptors
  K_FREE,        // a free span below the top
  K_UNUSED,      // committed data above the top
  K_NOFILE,      // capacity past the file's length
  K_LARGE,
  K_BAD,         // no valid span
  K_CLASS0,      // + class: slab pages
  K_COUNT = K_CLASS0 + SC_COUNT
};

#define MAP_COLS 64u
#define MAP_CELLS 4096u
#define CELL 11  // pixels, with a 1-pixel gap

struct picture {
  uint64_t units, per_cell, ncells;
  uint32_t (*tally)[K_COUNT]; // units of each kind per cell (capped)
  uint64_t meta_units;
  uint64_t used_kinds[K_COUNT];
};

static void paint(struct picture *pc, uint64_t from, uint64_t n, int kind) {
  pc->used_kinds[kind] += n;
  while (n) {
    uint64_t cell = from / pc->per_cell;
    uint64_t end = (cell + 1) * pc->per_cell;
    uint64_t k = end - from < n ? end - from : n;
    if (cell < pc->ncells) {
      uint64_t t = pc->tally[cell][kind] + k;
      pc->tally[cell][kind] = t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
    }
    from += k, n -= k;
  }
}

static void map_span(void *arg, const struct inspect_span *s) {
  struct picture *pc = arg;
  int kind = s->kind == INSPECT_SPAN_FREE    ? K_FREE
             : s->kind == INSPECT_SPAN_LARGE ? K_LARGE
             : s->kind == INSPECT_SPAN_SLAB  ? K_CLASS0 + (int)s->cls
                                             : K_BAD;
  paint(pc, pc->meta_units + s->page, s->npages, kind);
}

static void rgb_of(int kind, char *out, size_t n) {
  static const char *fixed[] = {"#444444", "#e8e8e8", "#c8d8c8",
                                "#ffffff", "#d04040", "#000000"};
  if (kind < K_CLASS0) {
    snprintf(out, n, "%s", fixed[kind]);
    return;
  }
  // Neighbouring classes far apart on the hue circle (the golden angle),
  // in two lightnesses, away from the reds of large and damaged pages.
  int k = kind - K_CLASS0;
  double hue = 200.0 + 137.508 * k;
  hue -= 360.0 * (int)(hue / 360.0);
  if (hue < 20 || hue > 340) hue += hue < 20 ? 25 : -25;
  double s = 0.6, l = k % 2 ? 0.62 : 0.48;
  double c = (1 - (2 * l - 1 < 0 ? 1 - 2 * l : 2 * l - 1)) * s;
  double hp = hue / 60.0, x = c * (1 - (hp - 2 * (int)(hp / 2) - 1 < 0
                                            ? -(hp - 2 * (int)(hp / 2) - 1)
                                            : hp - 2 * (int)(hp / 2) - 1));
  double r = 0, g = 0, b = 0;
  if (hp < 1) r = c, g = x;
  else if (hp < 2) r = x, g = c;
  else if (hp < 3) g = c, b = x;
  else if (hp < 4) g = x, b = c;
  else if (hp < 5) r = x, b = c;
  else r = c, b = x;
  double m = l - c / 2;
  snprintf(out, n, "#%02x%02x%02x", (unsigned)((r + m) * 255 + 0.5),
           (unsigned)((g + m) * 255 + 0.5), (unsigned)((b + m) * 255 + 0.5));
}

static void kind_label(int kind, char *out, size_t n) {
  static const char *fixed[] = {
      "metadata (header, page descriptors)", "free spans",
      "committed, above the top",
      "not in the file (reserved when attached)", "large blocks",
      "damaged (no valid span)"};
  if (kind < K_CLASS0)
    snprintf(out, n, "%s", fixed[kind]);
  else
    snprintf(out, n, "slabs of %s blocks (class %d)",
             HS(sc_table[kind - K_CLASS0].bsize), kind - K_CLASS0);
}

// Draws the open file (in) as one <svg> element at (x, y) into f, its
// size in *w, *h; cells: the cell count and size, for the caller's line.
static int draw_pool(FILE *f, int nested, unsigned x, unsigned y,
                     unsigned *w, unsigned *hgt, uint64_t *cells, char *cellw,
                     size_t cellw_len) {
  const struct poolfile_header *h = &in.hdr;
  struct picture pc;
  memset(&pc, 0, sizeof pc);
  pc.meta_units = h->data_off >> PAGE_SHIFT;
  pc.units = pc.meta_units + h->npages;
  pc.per_cell = (pc.units + MAP_CELLS - 1) / MAP_CELLS;
  pc.ncells = (pc.units + pc.per_cell - 1) / pc.per_cell;
  pc.tally = calloc(pc.ncells, sizeof *pc.tally);
  if (!pc.tally) {
    fprintf(stderr, "mmpool: out of memory\n");
    return -1;
  }
  paint(&pc, 0, pc.meta_units, K_META);
  unsigned problems = 0;
  struct inspect_cb cb = {.problem = NULL, .span = map_span, .arg = &pc};
  problems = inspect_walk(&in, &cb, &stats);
  uint64_t committed = (h->st.length - h->data_off) >> PAGE_SHIFT;
  if (committed > h->st.top)
    paint(&pc, pc.meta_units + h->st.top, committed - h->st.top, K_UNUSED);
  if (h->npages > committed)
    paint(&pc, pc.meta_units + committed, h->npages - committed, K_NOFILE);

  unsigned rows = (unsigned)((pc.ncells + MAP_COLS - 1) / MAP_COLS);
  unsigned nlegend = 0;
  for (int k = 0; k < K_COUNT; k++) nlegend += pc.used_kinds[k] != 0;
  unsigned gw = MAP_COLS * CELL, top = 70;
  unsigned width = 20 + gw + 30 + 330;
  unsigned height = top + (rows * CELL > nlegend * 18 ? rows * CELL
                                                      : nlegend * 18) + 40;
  // Alone, the picture is the document's; in a snapshot's, each pool is
  // an <svg> of its own, its ids suffixed by the pool's name.
  const char *sep = nested ? "-" : "", *sfx = nested ? h->name : "";
  if (nested)
    fprintf(f, "<svg x=\"%u\" y=\"%u\" width=\"%u\" height=\"%u\">\n", x,
            y, width, height);
  fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"#fafafa\"/>\n");
  fprintf(f, "<text x=\"20\" y=\"24\" font-size=\"16\">pool ");
  // The name is [A-Za-z0-9_.-]: nothing to escape.
  fprintf(f, "%s at 0x%" PRIx64 ", capacity %s, %s in the file</text>\n",
          h->name, h->base, HS(h->capacity), HS(h->st.length));
  hsize(cellw, cellw_len, pc.per_cell << PAGE_SHIFT);
  fprintf(f, "<text x=\"20\" y=\"44\">by address, left to right and top to "
          "bottom from 0x%" PRIx64 "; each cell %s (%" PRIu64 " page%s); "
          "a cell's colour is what holds most of it%s</text>\n", h->base,
          cellw, pc.per_cell, pc.per_cell == 1 ? "" : "s",
          problems ? "; the file has problems: run mmpool check" : "");
  fprintf(f, "<g id=\"cells%s%s\">\n", sep, sfx);
  for (uint64_t c = 0; c < pc.ncells; c++) {
    int best = K_NOFILE;
    uint32_t most = 0;
    for (int k = 0; k < K_COUNT; k++)
      if (pc.tally[c][k] > most) most = pc.tally[c][k], best = k;
    char col[16], lab[96];
    rgb_of(best, col, sizeof col);
    kind_label(best, lab, sizeof lab);
    uint64_t a = h->base + ((c * pc.per_cell) << PAGE_SHIFT);
    fprintf(f, "<rect x=\"%u\" y=\"%u\" width=\"%d\" height=\"%d\" "
            "fill=\"%s\" stroke=\"#bbbbbb\" stroke-width=\"0.5\"><title>"
            "0x%" PRIx64 ": %s</title></rect>\n",
            20 + (unsigned)(c % MAP_COLS) * CELL,
            top + (unsigned)(c / MAP_COLS) * CELL, CELL - 1, CELL - 1, col, a,
            lab);
  }
  fprintf(f, "</g>\n<g id=\"legend%s%s\">\n", sep, sfx);
  unsigned ly = top;
  for (int k = 0; k < K_COUNT; k++) {
    if (!pc.used_kinds[k]) continue;
    char col[16], lab[96];
    rgb_of(k, col, sizeof col);
    kind_label(k, lab, sizeof lab);
    fprintf(f, "<rect x=\"%u\" y=\"%u\" width=\"12\" height=\"12\" "
            "fill=\"%s\" stroke=\"#888888\"/>\n<text x=\"%u\" y=\"%u\">%s: "
            "%s</text>\n", 20 + gw + 30, ly, col, 20 + gw + 50, ly + 11, lab,
            HS(pc.used_kinds[k] << PAGE_SHIFT));
    ly += 18;
  }
  fprintf(f, "</g>\n%s", nested ? "</svg>\n" : "");
  free(pc.tally);
  *w = width;
  *hgt = height;
  *cells = pc.ncells;
  return 0;
}

int poolcmd_map_many(const char *const *paths, unsigned n, const char *title,
                     const char *out, const char *dir,
                     const struct snap_manifest *m) {
  // Each pool's picture into memory first: the outer size needs them all.
  char *parts[64] = {0};
  size_t lens[64] = {0};
  unsigned w[64], h[64], width = 0, height = title ? 40 : 0;
  uint64_t cells = 0;
  char cellw[32] = "";
  int bad = n > 64;
  for (unsigned i = 0; i < n && !bad; i++) {
    if (open_file(paths[i], dir, m, i, 0)) {
      bad = 1;
      break;
    }
    FILE *mf = open_memstream(&parts[i], &lens[i]);
    uint64_t c = 0;
    bad = !mf || draw_pool(mf, n > 1 || title, 0, height, &w[i], &h[i], &c,
                           cellw, sizeof cellw) != 0;
    if (mf) fclose(mf);
    inspect_close(&in);
    cells += c;
    if (w[i] > width) width = w[i];
    height += h[i];
  }
  FILE *f = bad ? NULL : fopen(out, "w");
  if (!bad && !f) fprintf(stderr, "mmpool: %s: %s\n", shown(out),
                          strerror(errno));
  if (f) {
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%u\" "
            "height=\"%u\" viewBox=\"0 0 %u %u\" font-family=\"sans-serif\" "
            "font-size=\"12\">\n", width, height, width, height);
    if (title)
      fprintf(f, "<rect width=\"100%%\" height=\"40\" fill=\"#eeeeee\"/>\n"
              "<text x=\"20\" y=\"26\" font-size=\"16\">%s</text>\n",
              title);
    for (unsigned i = 0; i < n; i++) fwrite(parts[i], 1, lens[i], f);
    fprintf(f, "</svg>\n");
  }
  for (unsigned i = 0; i < n; i++) free(parts[i]);
  if (!f) return POOLCMD_BAD;
  if (fclose(f) != 0) {
    fprintf(stderr, "mmpool: %s: %s\n", shown(out), strerror(errno));
    return POOLCMD_BAD;
  }
  fprintf(stderr, "mmpool: %s: %" PRIu64 " cells%s%s written to %s\n",
          n == 1 ? shown(paths[0]) : "snapshot", cells, n == 1 ? " of " : "",
          n == 1 ? cellw : "", shown(out));
  return POOLCMD_OK;
}

int poolcmd_map(const char *path, const char *out) {
  return poolcmd_map_many(&path, 1, NULL, out, NULL, NULL);
}

// ---------------------------------------------------------------------------
// upgrade

// Copies [from, size) of fd to out at the same offsets, leaving holes where
// the source reads as zeros (pool files are sparse: the descriptors past
// meta_committed, pages never written).
static int copy_rest(int fd, int out, uint64_t from, uint64_t size) {
  static char buf[1 << 20];
  static const char zero[4096];
  for (uint64_t off = from; off < size;) {
    size_t n = size - off < sizeof buf ? (size_t)(size - off) : sizeof buf;
    ssize_t r = pread(fd, buf, n, (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r < 0 ? -errno : -EIO;
    for (size_t k = 0; k < (size_t)r; k += sizeof zero) {
      size_t m = (size_t)r - k < sizeof zero ? (size_t)r - k : sizeof zero;
      if (memcmp(buf + k, zero, m) == 0) continue;
      for (size_t w = 0; w < m;) {
        ssize_t q = pwrite(out, buf + k + w, m - w, (off_t)(off + k + w));
        if (q < 0 && errno == EINTR) continue;
        if (q <= 0) return q < 0 ? -errno : -EIO;
        w += (size_t)q;
      }
    }
    off += (uint64_t)r;
  }
  return ftruncate(out, (off_t)size) == 0 ? 0 : -errno;
}

int poolcmd_fsync_dir(const char *dir) {
  int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d < 0) return -errno;
  int r = fsync(d) == 0 ? 0 : -errno;
  close(d);
  return r;
}

int poolcmd_upgrade(const char *path) {
  static char p[PATH_MAX * 4 + 1];  // shown() reuses its buffers
  snprintf(p, sizeof p, "%s", shown(path));
  if (open_file(path, NULL, NULL, 0, INSPECT_EXCLUSIVE)) return POOLCMD_BAD;
  if (in.version != 1) {
    printf("%s: already version %u: nothing to do\n", p, in.version);
    inspect_close(&in);
    return fflush(stdout) == 0 ? POOLCMD_OK : POOLCMD_TOOL;
  }
  // Nothing is written unless the whole file checks.
  struct lines l = {p, 0};
  struct inspect_cb cb = {.problem = print_problem, .arg = &l};
  inspect_walk(&in, &cb, &stats);
  if (l.n) {
    if (l.n > MAX_LINES)
      printf("%s: %u more problems not listed\n", p, l.n - MAX_LINES);
    fprintf(stderr, "mmpool: %s: not converted: %u problem%s (a file its "
            "process left unclean can be attached with 'recover' by the "
            "build that wrote it, then converted)\n", p, l.n,
            l.n == 1 ? "" : "s");
    inspect_close(&in);
    return POOLCMD_BAD;
  }
  struct stat st;
  if (fstat(in.fd, &st) != 0) {
    fprintf(stderr, "mmpool: %s: %s\n", p, strerror(errno));
    inspect_close(&in);
    return POOLCMD_BAD;
  }
  // The version 2 header: inspect_open converted it; the times are the
  // file's, and the metadata checksum (verified by the walk for a clean
  // file) is recomputed over the converted image.
  struct poolfile_header h = in.hdr;
  h.created = (uint64_t)st.st_mtime;
  h.closed = (h.flags & POOLFILE_CLEAN) ? (uint64_t)st.st_mtime : 0;
  if (h.flags & POOLFILE_CLEAN)
    h.meta_checksum = poolfile_meta_hash(in.pool.hdr);
  poolfile_seal(&h);
  char why[512];
  if (poolfile_validate(&h, in.file_size, why, sizeof why) != 0) {
    fprintf(stderr, "mmpool: %s: not converted: the new header does not "
            "validate: %s\n", p, why);
    inspect_close(&in);
    return POOLCMD_BAD;
  }
  // A copy in the same directory, renamed over the original.
  char tmp[PATH_MAX], dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash == dir) slash[1] = 0;
  else if (slash) *slash = 0;
  else snprintf(dir, sizeof dir, ".");
  if (snprintf(tmp, sizeof tmp, "%s.upgrade-%d", path, (int)getpid()) >=
      (int)sizeof tmp) {
    fprintf(stderr, "mmpool: %s: the path is too long\n", p);
    inspect_close(&in);
    return POOLCMD_BAD;
  }
  int out = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                 0600);
  if (out < 0) {
    fprintf(stderr, "mmpool: %s: cannot make its copy %s: %s\n", p,
            shown(tmp), strerror(errno));
    inspect_close(&in);
    return POOLCMD_BAD;
  }
  const char *step = "write";
  int r = 0;
  if (pwrite(out, &h, sizeof h, 0) != (ssize_t)sizeof h)
    r = errno ? -errno : -EIO;
  if (!r) r = copy_rest(in.fd, out, POOLFILE_HEADER_SIZE, in.file_size);
  if (!r && fchmod(out, st.st_mode & 07777) != 0) step = "chmod", r = -errno;
  if (!r && st.st_uid != geteuid() && fchown(out, st.st_uid, st.st_gid) != 0)
    step = "chown", r = -errno;
  if (!r && fsync(out) != 0) step = "fsync", r = -errno;
  close(out);
  if (r) {
    fprintf(stderr, "mmpool: %s: not converted: cannot %s its copy %s: %s\n",
            p, step, shown(tmp), strerror(-r));
    unlink(tmp);
    inspect_close(&in);
    return POOLCMD_BAD;
  }
  // The copy is read back as any version 2 file is before it replaces the
  // original.
  unsigned gen = (unsigned)h.generation;
  int clean = !!(h.flags & POOLFILE_CLEAN);
  char uu[40];
  uuid_text(uu, sizeof uu, h.uuid);
  static struct inspect copy;
  r = inspect_open(&copy, tmp, 0, why, sizeof why);
  if (!r) {
    struct lines lc = {shown(tmp), 0};
    struct inspect_cb cc = {.problem = print_problem, .arg = &lc};
    if (inspect_walk(&copy, &cc, NULL) != 0) {
      snprintf(why, sizeof why, "its structure does not check");
      r = -EUCLEAN;
    }
    inspect_close(&copy);
  }
  if (r) {
    fprintf(stderr, "mmpool: %s: not converted: the copy %s does not read "
            "back: %s\n", p, shown(tmp), why);
    unlink(tmp);
    inspect_close(&in);
    return POOLCMD_BAD;
  }
  if (rename(tmp, path) != 0) {
    fprintf(stderr, "mmpool: %s: not converted: cannot rename %s over it: "
            "%s\n", p, shown(tmp), strerror(errno));
    unlink(tmp);
    inspect_close(&in);
    return POOLCMD_BAD;
  }
  inspect_close(&in);  // the old file's lock goes with it
  r = poolcmd_fsync_dir(dir);
  if (r)
    fprintf(stderr, "mmpool: %s: converted, but its directory could not be "
            "synced: %s\n", p, strerror(-r));
  printf("%s: converted from version 1 to version %u (generation %u, uuid "
         "%s, %s)\n", p, POOLFILE_VERSION, gen, uu,
         clean ? "clean" : "not clean: attach it with 'recover'");
  if (fflush(stdout) != 0) return POOLCMD_TOOL;
  return r ? POOLCMD_BAD : POOLCMD_OK;
}
