// snapcmd.c: the tool on snapshots: `mmpool info DIR`, `mmpool check DIR`
// (a snapshot directory: its manifest and the images it names) and
// `mmpool snapshot PID` (ask a running program for one).
//
// The manifest is read with pread into a fixed struct and checked by the
// engine's own snap_manifest_check before any field is used; each image is
// a pool file, read by poolcmd.c (inspect.c) like any other, and then held
// against what the manifest says of it. The pointers between pools are
// counted by reading every live block of each image, word by word.
#define _GNU_SOURCE
#include "snapcmd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "inspect.h"
#include "log.h"
#include "poolcmd.h"
#include "dirty.h"
#include "snapshot.h"

static struct snap_manifest man;
static struct inspect img;  // 8 KiB aligned: static

int snapcmd_is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

// Reads and checks DIR/manifest into man (snapshot_read): 0, or -1 after
// one line unless quiet: on stdout when the manifest is not a sound one (a
// problem, as check reports them), else on stderr.
static int read_manifest(const char *dir, int quiet) {
  int r = snapshot_read(dir, &man);
  if (!r) return 0;
  if (quiet) return -1;
  if (r == -EUCLEAN || r == -ENOEXEC)
    printf("%s\n", log_last_error());
  else
    fprintf(stderr, "mmpool: %s\n", log_last_error());
  return -1;
}

static const char *kind_name(uint32_t k) {
  return k == SNAP_POOL_ANON     ? "anon"
         : k == SNAP_POOL_SHARED ? "file, mode=shared"
                                 : "file, mode=private";
}

static void image_path(const char *dir, const struct snap_entry *e,
                       char *out, size_t n) {
  snprintf(out, n, "%s/%s", dir, e->file);
}

// Opens image i (with its deltas) and holds it against the manifest: 0,
// or -1 with one problem line on stdout.
static int open_image(const char *dir, uint32_t i) {
  char why[4800];
  if (snapshot_image_open(&img, dir, &man, i, why, sizeof why) != 0) {
    printf("%s\n", why);
    return -1;
  }
  return 0;
}

// ---------------------------------------------------------------------------
// Pointers between the pools

// Counts, for the open image (pool `from`), the aligned words of its live
// blocks that point into each pool of the manifest (by the recorded base
// and length).
struct walk_ptrs {
  uint64_t count[MMPOOL_MAX_POOLS];
  uint64_t words;
};

static void count_words(const uint64_t *w, uint64_t n, struct walk_ptrs *o) {
  for (uint64_t k = 0; k < n; k++) {
    uint64_t v = w[k];
    if (!v) continue;
    for (uint32_t j = 0; j < man.npools; j++)
      if (v - man.pool[j].base < man.pool[j].length) {
        o->count[j]++;
        break;
      }
  }
  o->words += n;
}

static void span_ptrs(void *arg, const struct inspect_span *s) {
  struct walk_ptrs *o = arg;
  if (s->kind != INSPECT_SPAN_SLAB && s->kind != INSPECT_SPAN_LARGE) return;
  const struct poolfile_header *h = &img.hdr;
  uint64_t start = h->data_off + ((uint64_t)s->page << PAGE_SHIFT);
  uint64_t len = (uint64_t)s->npages << PAGE_SHIFT;
  if (start + len > img.map_len) return;
  const char *base = (const char *)img.map;
  if (s->kind == INSPECT_SPAN_LARGE) {
    uint64_t blk, bl;
    if (inspect_block_at(&img, start, &blk, &bl) && blk + bl <= img.map_len)
      count_words((const uint64_t *)(base + blk), bl / 8, o);
    return;
  }
  const struct sizeclass *sc = &sc_table[s->cls < SC_COUNT ? s->cls : 0];
  for (uint64_t off = start; off + sc->bsize <= start + len;
       off += sc->bsize) {
    uint64_t blk, bl;
    if (inspect_block_at(&img, off, &blk, &bl) && blk == off &&
        blk + bl <= img.map_len)
      count_words((const uint64_t *)(base + blk), bl / 8, o);
  }
}

static void no_problem(void *arg, int64_t page, uint64_t addr,
                       const char *line) {
  (void)arg, (void)page, (void)addr, (void)line;
}

// ---------------------------------------------------------------------------
// info

static const char *when(uint64_t t, char *buf, size_t n) {
  time_t tt = (time_t)t;
  struct tm tm;
  if (!gmtime_r(&tt, &tm)) return "?";
  strftime(buf, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// How an image was written (struct snap_entry's how): "incremental",
// "full", or "" in manifests of builds before incremental snapshots; the
// reason for a full one in *why (NULL when none).
static const char *how_name(uint32_t how, const char **why) {
  *why = NULL;
  if ((how & 0xff) == SNAP_HOW_INCREMENTAL) return "incremental";
  if ((how & 0xff) != SNAP_HOW_FULL) return "";
  *why = dirty_why_text((int)(how >> 8));
  return "full";
}

// The snapshot as a whole: "incremental", "full", or "" (not recorded).
static const char *snap_kind(void) {
  if (man.incremental) return "incremental";
  for (uint32_t i = 0; i < man.npools; i++)
    if (!man.pool[i].how) return "";
  return "full";
}

int snapcmd_info(const char *dir, int json) {
  if (read_manifest(dir, 0)) return POOLCMD_BAD;
  char tb[64];
  static struct walk_ptrs ptrs[MMPOOL_MAX_POOLS];
  int bad = 0;
  for (uint32_t i = 0; i < man.npools; i++) {
    memset(&ptrs[i], 0, sizeof ptrs[i]);
    if (open_image(dir, i)) {
      bad = 1;
      continue;
    }
    struct inspect_cb cb = {no_problem, span_ptrs, &ptrs[i]};
    inspect_walk(&img, &cb, NULL);
    inspect_close(&img);
  }
  if (json) {
    printf("{\"snapshot\": {\"serial\": %" PRIu64 ", \"taken\": %" PRIu64
           ", \"pid\": %u, \"program\": \"%.16s\", \"pause_ns\": %" PRIu64
           ", \"bytes\": %" PRIu64 ", \"written\": \"%s\", "
           "\"incremental_pools\": %u, \"image_bytes\": %" PRIu64
           ", \"why_full\": \"%s\"}, \"pools\": [",
           man.serial, man.taken, man.pid, man.program, man.pause_ns,
           man.bytes, snap_kind(), man.incremental, man.image_bytes,
           man.incremental == man.npools ? ""
                                         : dirty_why_text((int)man.why_full));
    for (uint32_t i = 0; i < man.npools; i++) {
      const struct snap_entry *e = &man.pool[i];
      // how_name sets why: called before the printf, whose arguments C
      // evaluates in no set order (GCC read why first in one build).
      const char *why, *how = how_name(e->how, &why);
      printf("%s{\"name\": \"%s\", \"file\": \"%s\", \"kind\": \"%s\", "
             "\"base\": %" PRIu64 ", \"length\": %" PRIu64
             ", \"generation\": %" PRIu64 ", \"written\": \"%s\", "
             "\"why\": \"%s\", \"deltas\": %u, \"delta_bytes\": %" PRIu64
             ", \"pointers_to\": {",
             i ? ", " : "", e->name, e->file,
             e->kind == SNAP_POOL_ANON ? "anon"
             : e->kind == SNAP_POOL_SHARED ? "shared" : "private",
             e->base, e->length, e->generation, how, why ? why : "",
             man.chain[i].n, man.chain[i].bytes);
      int first = 1;
      for (uint32_t j = 0; j < man.npools; j++)
        if (ptrs[i].count[j]) {
          printf("%s\"%s\": %" PRIu64, first ? "" : ", ", man.pool[j].name,
                 ptrs[i].count[j]);
          first = 0;
        }
      printf("}}");
    }
    printf("]}\n");
  } else {
    printf("snapshot    %s\n", dir);
    printf("serial      %" PRIu64 "\n", man.serial);
    printf("taken       %s, of %.16s (pid %u)\n",
           when(man.taken, tb, sizeof tb), man.program, man.pid);
    printf("pause       %" PRIu64 " us (the program was held this long)\n",
           man.pause_ns / 1000);
    const char *kind = snap_kind();
    if (!*kind)
      printf("written     %" PRIu64 " bytes\n", man.bytes);
    else if (man.incremental)
      printf("written     %" PRIu64 " bytes, incremental (%u of %u pools; "
             "a full snapshot writes %" PRIu64 ")\n", man.bytes,
             man.incremental, man.npools, man.image_bytes);
    else
      printf("written     %" PRIu64 " bytes, full: %s\n", man.bytes,
             dirty_why_text((int)man.why_full));
    printf("pools       %u\n", man.npools);
    for (uint32_t i = 0; i < man.npools; i++) {
      const struct snap_entry *e = &man.pool[i];
      const char *why, *how = how_name(e->how, &why);
      char chain[96] = "";
      if (man.chain[i].n)
        snprintf(chain, sizeof chain, " + %u delta%s (%" PRIu64 " bytes)",
                 man.chain[i].n, man.chain[i].n == 1 ? "" : "s",
                 man.chain[i].bytes);
      printf("  %-16s %s, base 0x%" PRIx64 ", %" PRIu64 " bytes, "
             "generation %" PRIu64 ": %s%s%s%s%s%s%s\n",
             e->name, kind_name(e->kind), e->base, e->length, e->generation,
             e->file, chain, *how ? " (" : "", how, why ? ": " : "",
             why ? why : "", *how ? ")" : "");
    }
    printf("pointers between pools (aligned words of live blocks)\n");
    int any = 0;
    for (uint32_t i = 0; i < man.npools; i++)
      for (uint32_t j = 0; j < man.npools; j++)
        if (ptrs[i].count[j]) {
          printf("  %-16s -> %-16s %" PRIu64 "%s\n", man.pool[i].name,
                 man.pool[j].name, ptrs[i].count[j],
                 i == j ? " (within the pool)" : "");
          any = 1;
        }
    if (!any) printf("  none\n");
    printf("(each image is a pool file: mmpool info %s/FILE shows it as it "
           "was when written whole; its deltas, applied in order by "
           "mmpool_restore, run --from, info, check and map on the "
           "snapshot, bring it to this one)\n", dir);
  }
  if (fflush(stdout) != 0) return POOLCMD_TOOL;
  return bad ? POOLCMD_BAD : POOLCMD_OK;
}

// ---------------------------------------------------------------------------
// check

int snapcmd_check(const char *dir) {
  if (read_manifest(dir, 0)) return POOLCMD_BAD;
  int bad = 0;
  for (uint32_t i = 0; i < man.npools; i++) {
    if (open_image(dir, i)) {
      bad = 1;
      continue;
    }
    inspect_close(&img);
    char path[4200];
    image_path(dir, &man.pool[i], path, sizeof path);
    if (poolcmd_check_image(path, dir, &man, i) != POOLCMD_OK) bad = 1;
  }
  fprintf(stderr, "mmpool: snapshot %s (serial %" PRIu64 ", %u pools): %s\n",
          dir, man.serial, man.npools, bad ? "NOT sound" : "sound");
  return bad ? POOLCMD_BAD : POOLCMD_OK;
}

// ---------------------------------------------------------------------------
// map

int snapcmd_map(const char *dir, const char *out) {
  if (read_manifest(dir, 0)) return POOLCMD_BAD;
  static char paths[MMPOOL_MAX_POOLS][4200];
  const char *p[MMPOOL_MAX_POOLS];
  for (uint32_t i = 0; i < man.npools; i++) {
    if (open_image(dir, i)) return POOLCMD_BAD;
    inspect_close(&img);
    image_path(dir, &man.pool[i], paths[i], sizeof paths[i]);
    p[i] = paths[i];
  }
  char title[200], tb[64];
  snprintf(title, sizeof title, "snapshot %" PRIu64 " of %.16s (pid %u), "
           "%s: %u pools", man.serial, man.program, man.pid,
           when(man.taken, tb, sizeof tb), man.npools);
  // The program's name is its own: keep only what needs no escaping.
  for (char *c = title; *c; c++)
    if (*c == '<' || *c == '>' || *c == '&') *c = '_';
  return poolcmd_map_many(p, man.npools, title, out, dir, &man);
}

// ---------------------------------------------------------------------------
// snapshot PID

// The environment of process pid, as an envp array (malloc'd), or NULL.
static char **environ_of(int pid, char **buf) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/environ", pid);
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t len = 0, cap = 0;
  char *b = NULL;
  int c;
  while ((c = fgetc(f)) != EOF) {
    if (len + 2 > cap) {
      cap = cap ? cap * 2 : 4096;
      char *nb = realloc(b, cap);
      if (!nb) break;
      b = nb;
    }
    b[len++] = (char)c;
  }
  fclose(f);
  if (!b) return NULL;
  b[len] = 0;
  size_t n = 0;
  for (size_t i = 0; i < len; i++) n += b[i] == 0;
  char **env = calloc(n + 2, sizeof *env);
  size_t k = 0;
  for (size_t i = 0; env && i < len; i += strlen(b + i) + 1) env[k++] = b + i;
  *buf = b;
  return env;
}

int snapcmd_snapshot(int pid, int wait_s) {
  char *buf = NULL;
  char **env = environ_of(pid, &buf);
  if (!env) {
    fprintf(stderr, "mmpool: snapshot: cannot read the environment of "
            "process %d: %s\n", pid, strerror(errno));
    return POOLCMD_BAD;
  }
  static struct mmpool_config cfg;
  config_load_from(&cfg, env, 0, NULL);
  free(env);
  free(buf);
  const struct pool_spec *sp = NULL;
  for (unsigned i = 0; i < cfg.npools; i++)
    if (cfg.pools[i].spec.snap_dir[0]) sp = &cfg.pools[i].spec;
  if (!sp || !(sp->snap_on & SPEC_SNAP_ON_SIGNAL)) {
    fprintf(stderr, "mmpool: snapshot: process %d's configuration takes no "
            "snapshot on a signal (it needs snapshot=DIR "
            "snapshot-on=signal:SIG in MMPOOL_CONFIG): nothing sent\n", pid);
    return POOLCMD_BAD;
  }
  // Its directory, seen from here: a relative one is the process's.
  char dir[4200];
  if (sp->snap_dir[0] == '/')
    snprintf(dir, sizeof dir, "%s", sp->snap_dir);
  else
    snprintf(dir, sizeof dir, "/proc/%d/cwd/%s", pid, sp->snap_dir);
  uint64_t before = 0;
  if (snapcmd_is_dir(dir) && read_manifest(dir, 1) == 0) before = man.serial;
  if (kill(pid, sp->snap_signal) != 0) {
    fprintf(stderr, "mmpool: snapshot: cannot signal process %d: %s\n", pid,
            strerror(errno));
    return POOLCMD_BAD;
  }
  for (int t = 0; t < wait_s * 20; t++) {
    struct timespec ts = {0, 50000000};
    nanosleep(&ts, NULL);
    // A manifest being replaced reads whole or not at all (rename).
    if (read_manifest(dir, 1) == 0 && man.serial > before) {
      printf("snapshot %" PRIu64 " of process %d in %s: %u pools, %" PRIu64
             " bytes%s%s, pause %" PRIu64 " us\n",
             man.serial, pid, sp->snap_dir, man.npools, man.bytes,
             *snap_kind() ? " " : "", snap_kind(), man.pause_ns / 1000);
      return fflush(stdout) == 0 ? POOLCMD_OK : POOLCMD_TOOL;
    }
    if (kill(pid, 0) != 0) {
      fprintf(stderr, "mmpool: snapshot: process %d ended before its "
              "snapshot was written\n", pid);
      return POOLCMD_BAD;
    }
  }
  fprintf(stderr, "mmpool: snapshot: no new snapshot in %s after %d s "
          "(SIG%s was sent to process %d; its log says why)\n",
          sp->snap_dir, wait_s, spec_signal_name(sp->snap_signal), pid);
  return POOLCMD_BAD;
}
