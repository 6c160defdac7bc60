// fuzz_attach.c: libFuzzer target for the checks a pool file passes on
// attach and on first use (poolfile_validate, page_verify, page_slab_sound,
// page_check, page_repair, page_detach_all).
//
// The seeds are small valid pool files made with the API at start-up (a
// 1 MiB pool: its image is about 1 MiB, mostly zero data pages), so no
// binary corpus is committed. An input is an edit of a seed:
//
//   byte 0      seed (of NSEEDS) and attach variant: bit 4 mode=shared (else
//               private), bit 5 clears the clean flag and attaches with
//               `recover`, bit 6 skips the re-sealing (so the checksums are
//               exercised too, now and then), bit 7 fuzzes a snapshot
//               instead: a manifest naming the seed as its one image (see
//               fuzz_manifest below)
//   then edits  of 12 bytes each: u32 offset, u8 width (1, 2, 4 or 8 bytes),
//               u8 region, u8 op (set, xor, add), u8 spare, u32 value;
//               region 0-2 the header and the descriptors below top + 2,
//               3 the whole image (data pages: free-list links, slack)
//
// After the edits both checksums are recomputed (when the header is in
// range), so what is fuzzed is the validation behind them. The image is
// written to a file and attached; an accepted pool is then used: its live
// blocks walked and some freed, root 0's block freed, blocks allocated and
// written, the pool checked, closed. Attach checks the header; each span's
// descriptors are checked on their first use (core/page.c, page_verify),
// and a slab's free lists and slack entries on the slab's first use
// (page_slab_sound), which the walk, frees and allocations reach. A crash,
// a sanitizer report, or a pool that mmpool_check calls damaged after use
// when it was sound before is a finding; damage that was in the file (what
// attach leaves to the first use) is not.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delta.h"
#include "heap.h"
#include "log.h"
#include "mmpool.h"
#include "poolfile.h"
#include "snapshot.h"
#include <sys/stat.h>

#define NSEEDS 3
#define SEED_BASE 0x340000000000ull

static unsigned char *seed[NSEEDS];
static size_t seed_len[NSEEDS];
static unsigned char *img;
static char path[256];
static char snapdir[256];  // fuzz_manifest's snapshot directory

static void die(const char *what) {
  fprintf(stderr, "fuzz_attach: %s: %s\n", what, mmpool_last_error());
  abort();
}

static int read_file(const char *p, unsigned char **buf, size_t *len) {
  int fd = open(p, O_RDONLY);
  if (fd < 0) return -1;
  off_t n = lseek(fd, 0, SEEK_END);
  *buf = malloc((size_t)n);
  *len = (size_t)n;
  ssize_t r = pread(fd, *buf, (size_t)n, 0);
  close(fd);
  return r == n ? 0 : -1;
}

// Seed k: a file pool with small blocks of several classes (some freed), a
// large block, a free span between live blocks, and a root.
static void make_seed(int k) {
  char opts[400];
  snprintf(opts, sizeof opts, "file=%s size=2M base=0x%llx", path,
           (unsigned long long)SEED_BASE);
  unlink(path);
  mmpool_t *p = mmpool_open("seed", opts);
  if (!p) die("seed open");
  void *b[200];
  for (int i = 0; i < 200; i++)
    if (!(b[i] = mmpool_malloc(p, 8 + (size_t)((i * 37 + k * 11) % 200))))
      die("seed malloc");
  for (int i = k % 2; i < 200; i += 2 + k) mmpool_free(b[i]);
  void *big = mmpool_malloc(p, 100000 + 70000 * (size_t)k);
  void *large = mmpool_malloc(p, 140000);
  if (!big || !large) die("seed large");
  if (k != 1) mmpool_free(big);
  if (k == 2) mmpool_free(large);
  if (mmpool_set_root(p, 0, b[199]) || mmpool_check(p)) die("seed root");
  if (mmpool_close(p)) die("seed close");
  if (read_file(path, &seed[k], &seed_len[k])) abort();
}

static void cleanup(void) {
  char p[300];
  unlink(path);
  snprintf(p, sizeof p, "%s/snapfz.1.pool", snapdir);
  unlink(p);
  snprintf(p, sizeof p, "%s/snapfz.2.delta", snapdir);
  unlink(p);
  snprintf(p, sizeof p, "%s/manifest", snapdir);
  unlink(p);
  rmdir(snapdir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  log_set_level(-1);  // refusals are the normal outcome: keep stderr quiet
  const char *tmp = getenv("TMPDIR");
  snprintf(path, sizeof path, "%s/fuzz_attach.%d.pool",
           tmp && *tmp ? tmp : "/tmp", (int)getpid());
  for (int k = 0; k < NSEEDS; k++) make_seed(k);
  // The snapshot directory of fuzz_manifest: seed 0 as its image.
  snprintf(snapdir, sizeof snapdir, "%s/fuzz_snap.%d",
           tmp && *tmp ? tmp : "/tmp", (int)getpid());
  mkdir(snapdir, 0700);
  char ip[300];
  snprintf(ip, sizeof ip, "%s/snapfz.1.pool", snapdir);
  int fd = open(ip, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || write(fd, seed[0], seed_len[0]) != (ssize_t)seed_len[0])
    abort();
  close(fd);
  size_t max = 0;
  for (int k = 0; k < NSEEDS; k++)
    if (seed_len[k] > max) max = seed_len[k];
  img = malloc(max);
  return 0;
}

static uint64_t rd(const uint8_t *p, int n) {
  uint64_t v = 0;
  memcpy(&v, p, (size_t)n);
  return v;
}

static void edit(unsigned char *m, size_t len, const uint8_t *e) {
  const struct poolfile_header *h = (const void *)m;
  uint32_t off = (uint32_t)rd(e, 4), val = (uint32_t)rd(e + 8, 4);
  int w = 1 << (e[4] & 3);
  size_t at;
  if (e[5] % 4 != 3) {
    // The header, and the descriptors up to two past the top.
    size_t top = h->st.top < 64 ? h->st.top : 64;
    size_t nd = (top + 2) * sizeof(struct pdesc);
    size_t desc_off = h->desc_off < len ? (size_t)h->desc_off : 4096;
    size_t span = POOLFILE_HEADER_SIZE + nd;
    at = off % span;
    if (at >= POOLFILE_HEADER_SIZE) at = desc_off + at - POOLFILE_HEADER_SIZE;
  } else {
    at = off % len;
  }
  if (at + (size_t)w > len) return;
  uint64_t old = rd(m + at, w), v = val;
  if (w == 8) v = (uint64_t)val | (uint64_t)(val & 0x80000000u ? ~0u : 0) << 32;
  switch (e[6] % 3) {
  case 0: break;
  case 1: v ^= old; break;
  case 2: v += old; break;
  }
  memcpy(m + at, &v, (size_t)w);
}

// mmpool_check after `when`: sound, unless the pool had damage from its
// file (pre), which stays.
static void check_after(mmpool_t *p, int pre, const char *when) {
  if (mmpool_check(p) == 0 || pre) return;
  fprintf(stderr, "fuzz_attach: attached pool unsound %s: %s\n", when,
          mmpool_last_error());
  abort();
}

static void use_pool(mmpool_t *p, int pre) {
  // Roots lead into committed data: read them.
  volatile unsigned char sink = 0;
  for (unsigned k = 0; k < MMPOOL_ROOTS; k++) {
    const unsigned char *r = mmpool_get_root(p, k);
    if (r) sink ^= *r;
  }
  (void)sink;
  void *blk[64];
  static const size_t sizes[] = {16, 24, 100, 1000, 5000, 70000};
  for (int i = 0; i < 64; i++) {
    size_t s = sizes[i % 6];
    blk[i] = mmpool_malloc(p, s);
    if (blk[i]) memset(blk[i], 0xa5, s);
  }
  check_after(p, pre, "after use");
  for (int i = 0; i < 64; i += 2) mmpool_free(blk[i]);
  for (int i = 0; i < 64; i += 3) {
    void *q = mmpool_realloc(p, blk[i | 1], 300);
    if (q) blk[i | 1] = q;
  }
  for (int i = 1; i < 64; i += 2) mmpool_free(blk[i]);
}

// The file's own live blocks: some are freed through the public free.
struct walked {
  void *b[16];
  int n;
};
static int walk_cb(void *b, size_t n, void *arg) {
  struct walked *w = arg;
  (void)n;
  if (w->n < 16) w->b[w->n++] = b;
  return 0;
}

// With bit 3: a delta after the image (seed 0's header page, the same
// again: the image it makes is the image), the manifest naming it;
// edits at odd places go to the delta's header and records.
static struct {
  struct delta_header h;
  struct delta_rec recs[1];
} dbuf;

static void make_delta(void) {
  char dp[300];
  snprintf(dp, sizeof dp, "%s/snapfz.2.delta", snapdir);
  unlink(dp);
  int fd = open(dp, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) abort();
  const struct poolfile_header *h0 = (const void *)seed[0];
  delta_out_begin(fd);
  if (delta_out_data(0, seed[0], 4096)) abort();
  memset(&dbuf, 0, sizeof dbuf);
  dbuf.h.serial = 2;
  dbuf.h.uuid[0] = h0->uuid[0];
  dbuf.h.uuid[1] = h0->uuid[1];
  dbuf.h.from_length = dbuf.h.length = seed_len[0];
  dbuf.h.from_checksum = dbuf.h.to_checksum = h0->checksum;
  if (delta_out_end(&dbuf.h)) abort();
  if (pread(fd, dbuf.recs, sizeof dbuf.recs, DELTA_DATA_OFF + 4096) !=
      (ssize_t)sizeof dbuf.recs)
    abort();
  close(fd);
}

static void put_delta(int seal) {
  char dp[300];
  snprintf(dp, sizeof dp, "%s/snapfz.2.delta", snapdir);
  int fd = open(dp, O_RDWR);
  if (fd < 0) abort();
  // A count that is not the file's is refused by its size first.
  if (seal && dbuf.h.nrec <= 1) delta_seal(&dbuf.h, dbuf.recs);
  if (pwrite(fd, &dbuf.h, sizeof dbuf.h, 0) != (ssize_t)sizeof dbuf.h ||
      pwrite(fd, dbuf.recs, sizeof dbuf.recs, DELTA_DATA_OFF + 4096) !=
          (ssize_t)sizeof dbuf.recs)
    abort();
  close(fd);
}

// A snapshot directory whose manifest names seed k as its one image, the
// manifest edited (each edit's offset taken modulo the manifest's size),
// resealed unless bit 6, then restored with mmpool_restore: a refusal is
// fine; a restored pool must be sound and usable, then closed. With bit 3,
// a delta follows the image (make_delta).
static void fuzz_manifest(const uint8_t *data, size_t size, int k) {
  static struct snap_manifest m;
  int with_delta = data[0] & 0x08;
  if (with_delta) k = 0;
  const struct poolfile_header *h = (const void *)seed[k];
  memset(&m, 0, sizeof m);
  memcpy(m.magic, SNAP_MAGIC, sizeof m.magic);
  m.version = SNAP_VERSION;
  m.size = sizeof m;
  m.npools = 1;
  m.serial = 1;
  struct snap_entry *e = &m.pool[0];
  snprintf(e->name, sizeof e->name, "snapfz");
  snprintf(e->file, sizeof e->file, "snapfz.1.pool");
  e->base = h->base;
  e->capacity = h->capacity;
  e->length = seed_len[k];
  e->generation = h->generation;
  e->uuid[0] = h->uuid[0];
  e->uuid[1] = h->uuid[1];
  e->header_checksum = h->checksum;
  e->kind = SNAP_POOL_ANON;
  if (with_delta) {
    make_delta();
    m.serial = 2;
    e->how = SNAP_HOW_INCREMENTAL;
    m.chain[0].n = 1;
    m.chain[0].serial[0] = 2;
    m.chain[0].bytes = sizeof dbuf;
  }
  for (size_t i = 1; i + 12 <= size; i += 12) {
    uint8_t ed[12];
    memcpy(ed, data + i, 12);
    ed[5] = 3;  // the whole record
    if (with_delta && (i / 12) % 2) {
      // The delta's header and its one record, which lie apart in the
      // file (put_delta writes them back).
      uint32_t off = (uint32_t)rd(ed, 4) % (uint32_t)(sizeof dbuf);
      memcpy(ed, &off, 4);
      edit((unsigned char *)&dbuf, sizeof dbuf, ed);
      continue;
    }
    uint32_t off = (uint32_t)rd(ed, 4) % (uint32_t)(sizeof m - 8);
    memcpy(ed, &off, 4);
    edit((unsigned char *)&m, sizeof m, ed);
  }
  if (with_delta) put_delta(!(data[0] & 0x40));
  if (!(data[0] & 0x40)) snap_manifest_seal(&m);
  char mp[300];
  snprintf(mp, sizeof mp, "%s/manifest", snapdir);
  int fd = open(mp, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || write(fd, &m, sizeof m) != (ssize_t)sizeof m) abort();
  close(fd);
  char why[300];
  int ok = snap_manifest_check(&m, sizeof m, why, sizeof why) == 0;
  int n = mmpool_restore(snapdir, NULL);
  if (n > 0 && !ok) {
    fprintf(stderr, "fuzz_attach: a manifest refused by its check was "
            "restored\n");
    abort();
  }
  for (uint32_t i = 0; n > 0 && i < m.npools; i++) {
    mmpool_t *p = mmpool_get(m.pool[i].name);
    if (!p) continue;
    use_pool(p, 1);
    mmpool_close(p);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  if (data[0] & 0x80) {
    fuzz_manifest(data, size, data[0] % NSEEDS);
    return 0;
  }
  int k = data[0] % NSEEDS;
  size_t len = seed_len[k];
  memcpy(img, seed[k], len);
  for (size_t i = 1; i + 12 <= size; i += 12) edit(img, len, data + i);
  struct poolfile_header *h = (struct poolfile_header *)img;
  if (data[0] & 0x20) h->flags &= ~POOLFILE_CLEAN;
  if (!(data[0] & 0x40)) {
    char why[256];
    poolfile_seal(h);  // first: the checks below need the identity intact
    if (poolfile_validate(h, len, why, sizeof why) == 0)
      h->meta_checksum = poolfile_meta_hash(h);
    poolfile_seal(h);
  }
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || write(fd, img, len) != (ssize_t)len) abort();
  close(fd);
  char opts[400];
  snprintf(opts, sizeof opts, "file=%s%s%s", path,
           data[0] & 0x10 ? "" : " mode=private",
           data[0] & 0x20 ? " recover" : "");
  mmpool_t *p = mmpool_open("fz", opts);
  if (!p) return 0;  // refused: fine, as long as nothing crashed
  int pre = mmpool_check(p) != 0;
  // Root 0's block, live in every seed, freed while its slab is unchecked
  // (a damaged slab refuses it): when the root and the block's free mark
  // are as the seed left them and the engine's own test of a free finds a
  // live block there, so that the free is not a misuse (which aborts).
  const struct poolfile_header *sh = (const void *)seed[k];
  uint64_t *r0 = mmpool_get_root(p, 0);
  const char *why;
  if (r0 && (uintptr_t)r0 == sh->roots[0] && r0[1] == 0 &&
      heap_block(pool_of_addr((uintptr_t)r0), (uintptr_t)r0, &why))
    mmpool_free(r0);
  struct walked w = {.n = 0};
  mmpool_walk(p, walk_cb, &w);
  for (int i = 0; i < w.n; i += 2)
    if (w.b[i] != r0) mmpool_free(w.b[i]);
  use_pool(p, pre);
  check_after(p, pre, "at the end");
  mmpool_close(p);
  return 0;
}
