// snapshot.c: snapshots of all the pools of a process at one instant (see
// snapshot.h for the scheme and docs/snapshots.md for what users see).
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>

#include "delta.h"
#include "dirty.h"
#include "fmt.h"
#include "hash.h"
#include "heap.h"
#include "lock.h"
#include "log.h"
#include "os.h"
#include "pool.h"
#include "inspect.h"
#include "poolfile.h"
#include "relocate.h"
#include "spec.h"
#include "vmmap.h"

// One snapshot at a time in a process: the pid of the process taking one,
// or 0. A fork child inherits its parent's value, which is not its own pid:
// it takes such a stale mark over.
static int busy_pid;
static struct snap_stats stats;  // under busy_pid
static int last_err;             // the last failure's errno, said once
// The directory being written, locked (flock): a fork child of the
// program closes its copy, or the lock would stay while the child lives
// and refuse the next snapshot (EBUSY).
static int snap_dfd = -1;

// The directory this process has claimed for its snapshots
// (snapshot_claim): open and locked for the life of the process. A
// program that this one starts with exec does not inherit the descriptor
// (close-on-exec) and finds the directory locked; a fork child closes its
// copy (the lock is the open file's: the parent's copy keeps it).
static int claim_fd = -1;
static char claim_dir[4096];

static void state_forget(void);
// Writers that said their word and were not waited for (take): their
// exit tears down a copy of the address space, which takes a while.
#define WRITERS_LEFT 8
static int writer_left[WRITERS_LEFT];
static int writer_owner;  // the process whose children they are

static void snap_fork_child(void) {
  state_forget();
  memset(writer_left, 0, sizeof writer_left);  // the parent's children
  int fd = __atomic_exchange_n(&snap_dfd, -1, __ATOMIC_ACQ_REL);
  if (fd >= 0 && fd != claim_fd) os_close(fd);
  if (claim_fd >= 0) os_close(claim_fd);
  claim_fd = -1;
}

__attribute__((constructor)) static void snap_ctor(void) {
  pthread_atfork(NULL, NULL, snap_fork_child);
}

RARE static int snap_begin(void) {
  int me = os_getpid();
  int cur = __atomic_load_n(&busy_pid, __ATOMIC_ACQUIRE);
  for (;;) {
    if (cur == me) return -EBUSY;
    if (__atomic_compare_exchange_n(&busy_pid, &cur, me, 0, __ATOMIC_ACQUIRE,
                                    __ATOMIC_ACQUIRE))
      return 0;
  }
}

RARE static void snap_end(void) {
  __atomic_store_n(&busy_pid, 0, __ATOMIC_RELEASE);
}

RARE void snapshot_stats(struct snap_stats *out) { *out = stats; }

// ---------------------------------------------------------------------------
// The manifest

RARE static uint64_t manifest_hash(const struct snap_manifest *m) {
  return hash_bytes(m, offsetof(struct snap_manifest, checksum), 0x736e6170);
}

RARE void snap_manifest_seal(struct snap_manifest *m) {
  m->checksum = manifest_hash(m);
}

RARE int snap_manifest_install(int dfd, const struct snap_manifest *m,
                               int *placed) {
  *placed = 0;
  os_unlink_at(dfd, SNAP_MANIFEST_TMP);
  int fd = os_open_at(dfd, SNAP_MANIFEST_TMP, O_WRONLY | O_CREAT | O_EXCL,
                      0600);
  if (fd < 0) return fd;
  int r = os_write_all(fd, m, sizeof *m);
  if (!r) r = os_fsync(fd);
  os_close(fd);
  if (!r) r = os_rename_at(dfd, SNAP_MANIFEST_TMP, SNAP_MANIFEST);
  if (r) {
    os_unlink_at(dfd, SNAP_MANIFEST_TMP);
    return r;
  }
  // The rename is durable once the directory is.
  *placed = 1;
  return os_fsync(dfd);
}

RARE const char *snap_entry_differs(const struct snap_entry *e,
                                    const struct poolfile_header *h,
                                    uint64_t file_size, int moved) {
  return !moved && h->base != e->base ? "base"
         : h->capacity != e->capacity ? "capacity"
         : h->uuid[0] != e->uuid[0] || h->uuid[1] != e->uuid[1] ? "uuid"
         : !file_size                 ? NULL
         : file_size != e->length     ? "length"
         : h->generation != e->generation ? "generation"
         : h->checksum != e->header_checksum ? "header checksum"
                                             : NULL;
}

RARE static int name_ok(const char *s, size_t max) {
  size_t n = strnlen(s, max);
  if (n == 0 || n == max) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return 0;
  }
  return s[0] != '.';
}

// 1 when name is NAME.SERIAL followed by suffix (any serial).
RARE static int serial_name(const char *name, const char *suffix) {
  size_t n = strlen(name), k = strlen(suffix);
  if (n < k + 3 || memcmp(name + n - k, suffix, k) != 0) return 0;
  size_t d = n - k, e = d;
  while (d > 0 && name[d - 1] >= '0' && name[d - 1] <= '9') d--;
  return d < e && d >= 2 && name[d - 1] == '.';
}

// An image's file name: NAME.SERIAL.pool.
RARE static int image_name(const char *name) {
  return serial_name(name, ".pool");
}

// A delta's: NAME.SERIAL.delta.
RARE static int delta_name(const char *name) {
  return serial_name(name, ".delta");
}

RARE void snap_delta_name(char *out, size_t len, const char *name,
                          uint64_t serial) {
  fmt_format(out, len, "%s.%llu.delta", name, (unsigned long long)serial);
}

// 1 when the name of delta serial of pool name fits SNAP_FILE_MAX.
RARE static int delta_fits(const char *name, uint64_t serial) {
  char buf[SNAP_FILE_MAX + 32];
  snap_delta_name(buf, sizeof buf, name, serial);
  return strlen(buf) < SNAP_FILE_MAX;
}

#define WHY(...)                                                              \
  do {                                                                        \
    fmt_format(why, why_len, __VA_ARGS__);                                    \
    return -EUCLEAN;                                                          \
  } while (0)

RARE int snap_manifest_check(struct snap_manifest *m, uint64_t file_size,
                             char *why, size_t why_len) {
  if ((file_size != sizeof *m && file_size != SNAP_V1_SIZE) ||
      memcmp(m->magic, SNAP_MAGIC, sizeof m->magic) != 0) {
    fmt_format(why, why_len, "not an mmpool snapshot manifest");
    return -ENOEXEC;
  }
  int v1 = file_size == SNAP_V1_SIZE;
  if (v1) {
    // Version 1: its checksum ends the entries; no chains.
    uint64_t sum;
    memcpy(&sum, (const char *)m + SNAP_V1_SIZE - 8, sizeof sum);
    if (m->version != 1 || m->size != SNAP_V1_SIZE) {
      fmt_format(why, why_len, "manifest version %u of %u bytes (this build "
                 "reads 1 and %u)", m->version, m->size, SNAP_VERSION);
      return -ENOEXEC;
    }
    if (sum != hash_bytes(m, SNAP_V1_SIZE - 8, 0x736e6170))
      WHY("manifest checksum mismatch");
    memset(m->chain, 0, sizeof m->chain);
    m->version = SNAP_VERSION;
    m->size = sizeof *m;
    snap_manifest_seal(m);
  }
  if (m->version != SNAP_VERSION || m->size != sizeof *m) {
    fmt_format(why, why_len, "manifest version %u (this build reads %u)",
               m->version, SNAP_VERSION);
    return -ENOEXEC;
  }
  if (m->checksum != manifest_hash(m)) WHY("manifest checksum mismatch");
  if (m->npools > MMPOOL_MAX_POOLS)
    WHY("manifest names %u pools (at most %u)", m->npools, MMPOOL_MAX_POOLS);
  if (m->serial == 0) WHY("manifest serial 0");
  if (m->incremental > m->npools || m->why_full >= DIRTY_WHY_COUNT)
    WHY("manifest says %u pools incremental of %u (reason %u)",
        m->incremental, m->npools, m->why_full);
  for (uint32_t i = 0; i < m->npools; i++) {
    const struct snap_entry *e = &m->pool[i];
    if (!name_ok(e->name, sizeof e->name))
      WHY("manifest entry %u: bad pool name", i);
    if (!name_ok(e->file, sizeof e->file) || !image_name(e->file))
      WHY("manifest entry %u ('%s'): bad image file name", i, e->name);
    if (e->kind < SNAP_POOL_ANON || e->kind > SNAP_POOL_PRIVATE)
      WHY("manifest entry %u ('%s'): bad kind %u", i, e->name, e->kind);
    // 0: written by a build before incremental snapshots.
    if (e->how && ((e->how & 0xff) < SNAP_HOW_FULL ||
                   (e->how & 0xff) > SNAP_HOW_INCREMENTAL ||
                   (e->how >> 8) >= DIRTY_WHY_COUNT ||
                   ((e->how & 0xff) == SNAP_HOW_INCREMENTAL && e->how >> 8)))
      WHY("manifest entry %u ('%s'): bad how 0x%x", i, e->name, e->how);
    for (uint32_t j = 0; j < i; j++)
      if (!strcmp(m->pool[j].name, e->name) ||
          !strcmp(m->pool[j].file, e->file))
        WHY("manifest entries %u and %u name the same pool or file", j, i);
    // Its deltas: a chain ends at this snapshot (each snapshot writes an
    // image whole or adds a delta), serials in order; none for a file
    // pool. Version 1 images said "incremental" without a chain.
    const struct snap_chain *c = &m->chain[i];
    int incr = (e->how & 0xff) == SNAP_HOW_INCREMENTAL;
    if (c->n > SNAP_CHAIN_MAX || c->reserved ||
        (c->n && e->kind != SNAP_POOL_ANON) ||
        (!v1 && incr != (c->n > 0)) ||
        (c->n && c->serial[c->n - 1] != m->serial))
      WHY("manifest entry %u ('%s'): bad chain of %u deltas", i, e->name,
          c->n);
    for (uint32_t j = 0; j < SNAP_CHAIN_MAX; j++)
      if (j < c->n ? c->serial[j] == 0 || (j && c->serial[j] <= c->serial[j - 1]) ||
                         !delta_fits(e->name, c->serial[j])
                   : c->serial[j] != 0)
        WHY("manifest entry %u ('%s'): bad delta serial %llu", i, e->name,
            (unsigned long long)c->serial[j]);
  }
  for (uint32_t i = m->npools; i < MMPOOL_MAX_POOLS; i++)
    if (m->chain[i].n) WHY("manifest: a chain for no entry (%u)", i);
  return 0;
}

// ---------------------------------------------------------------------------
// The writer: a quiet child of the process, with the pools as they were at
// the instant it was made. Raw system calls only, no lock, no allocation.

// A file as its writer left it: inode, modification time, size.
struct file_id {
  uint64_t ino, mtime, size;
};

struct snap_msg {
  int err;          // 0 or an errno value
  uint32_t pools;
  uint64_t bytes;
  int placed;       // the new manifest is in place (even on failure)
  char why[256];
  // Incremental snapshots: the pools written as deltas, why the others
  // were not, what the images hold, and by manifest entry the file written
  // (the image, or the delta) as it was left.
  uint32_t incremental, why_full;
  uint64_t image_bytes;
  struct file_id id[MMPOOL_MAX_POOLS];
  int captured;     // taken by the process itself (capture)
};
_Static_assert(sizeof(struct snap_msg) <= 4096, "one atomic pipe write");
_Static_assert(SNAP_CHAIN_MAX <= SPEC_DELTAS_MAX, "a chain fits a pool_spec");

// What this process knows of the directory it writes its snapshots to
// (docs/snapshots.md, "Incremental snapshots"). Under busy_pid; a fork
// child forgets it (dirty.c forgets the maps).
struct spare {
  char name[MMPOOL_NAME_MAX + 1];   // the pool's
  char file[SNAP_FILE_MAX];         // hidden as SNAP_KEPT_PREFIX file
  struct file_id id;
};
static struct snap_state {
  int valid;                // the directory's manifest is m, this process's
  int tracked;              // the dirty maps count from m's instant
  struct snap_manifest m;
  // By entry of m: its image, and the last file of its chain (the image
  // when it has no delta), as their writer left them.
  struct file_id image[MMPOOL_MAX_POOLS], last[MMPOOL_MAX_POOLS];
  // Hidden images, one per pool at most: what the pool's next whole image
  // overwrites in place.
  uint32_t nspare;
  struct spare spare[2 * MMPOOL_MAX_POOLS];
} state;
static uint64_t set_dev, set_ino;  // that directory
static int incremental_on = 1;
void (*snapshot_at_hold)(void);

// A fork child's copy of the process takes its own snapshots: whole at
// first (dirty.c forgets its maps too).
RARE static void state_forget(void) {
  state.valid = 0;
  state.tracked = 0;
  state.nspare = 0;
}

RARE void snapshot_set_incremental(int on) {
  __atomic_store_n(&incremental_on, on != 0, __ATOMIC_RELAXED);
}

struct writer {
  int dfd, res_fd, go_fd;
  const char *dir;
  uint64_t serial;
  struct snap_manifest m;     // the new one
  struct snap_msg msg;
  int synced_dir_failed;      // the manifest was renamed into place
  char program[16];           // the parent's name (the child's is a thread's)
  int why_all;                // DIRTY_* for every pool (DIRTY_OK: look)
  const struct snap_state *st;       // the parent's, as of the copy
  const struct snap_manifest *prev;  // the manifest replaced; NULL: none
  int ours;                   // ... which is st->m (its images are kept)
  // A capture (the process itself under the hold, no copy: take): the
  // deltas made, in the capture buffer, written after the hold by
  // writer_finish.
  int capture;
  uint32_t npend;
  struct pending {
    int fd;
    uint32_t ix;              // the manifest entry
    const char *area;         // the delta's bytes from DELTA_DATA_OFF on
    uint64_t len;
    struct delta_header dh;
  } pend[MMPOOL_MAX_POOLS];
};

RARE static int writer_fail(struct writer *w, int err, const char *what,
                            const char *name) {
  char eb[32];
  w->msg.err = err;
  fmt_format(w->msg.why, sizeof w->msg.why, "%s %s/%s: %s", what, w->dir,
             name, os_strerror(err, eb, sizeof eb));
  return -err;
}

// The weightier of two reasons for a full image, for the manifest's one:
// a failure first, then the kernel, the option, the first snapshots.
RARE static int weightier(int a, int b) {
  // By DIRTY_*: a pool kind that never can is said last.
  static const uint8_t rank[DIRTY_WHY_COUNT] = {0, 2, 3, 1, 4, 1, 5, 5, 1};
  return rank[b] > rank[a] ? b : a;
}

// 1 when fd is the file id says its writer left: a regular file of that
// inode, modification time and size, and, when it is to be overwritten
// (alone), with no other name (a hard link the user made to keep a
// snapshot is left alone: rewriting the file would change the copy too).
RARE static int file_is(int fd, const struct file_id *id, int alone) {
  struct os_stat st;
  uint64_t ino = 0, mtime = 0;
  return !os_file_stat(fd, &st) && st.is_regular &&
         (!alone || st.nlink == 1) && st.size == id->size &&
         !os_file_stamp(fd, &ino, &mtime) && ino == id->ino &&
         mtime == id->mtime;
}

// ---------------------------------------------------------------------------
// Deltas (the writer)

// The previous state's spans, read from its file page by page in order.
static struct old_spans {
  int fd;
  uint64_t desc_off;
  uint32_t top;
  uint32_t lo, n;             // descs [lo, lo+n) are in buf
  uint32_t end;               // the current span ends here
  int free;                   // ... and is free
  struct pdesc buf[256];
} olds;

// Whether page i (ascending calls, i < olds.top) lay in a free span.
RARE static int old_free(uint32_t i, int *is_free) {
  while (i >= olds.end) {
    uint32_t hd = olds.end;
    if (hd < olds.lo || hd >= olds.lo + olds.n) {
      uint32_t n = olds.top - hd;
      if (n > 256) n = 256;
      int r = os_pread_full(olds.fd, olds.buf, (size_t)n * sizeof *olds.buf,
                            olds.desc_off + (uint64_t)hd * sizeof *olds.buf);
      if (r) return r;
      olds.lo = hd;
      olds.n = n;
    }
    const struct pdesc *d = &olds.buf[hd - olds.lo];
    uint32_t n = d->npages;
    if (n == 0 || n > olds.top - hd) n = olds.top - hd;  // as write_image
    olds.end = hd + n;
    olds.free = d->kind == PD_FREE;
  }
  *is_free = olds.free;
  return 0;
}

enum { ACT_SKIP = 0, ACT_WRITE = 1, ACT_PUNCH = 2 };
// What zero_range writes where the file system has no holes. Not const:
// in .bss, whose pages nobody maps until this writer reads them (and then
// the kernel's zero page), rather than 64 KiB of .rodata in the library
// file, which the kernel maps around every fault near it into every
// program (docs/performance.md, "The library's own memory").
static char zeros[1 << 16];

// Bytes of data written to the image at hand since the device was last
// started on it (image_put). The writer is a process of its own with one
// thread.
static uint64_t unkicked;
#define SNAP_KICK (8u << 20)

// Writes data to a whole image: os_pwrite_all, and every SNAP_KICK bytes
// the device is started on what the image holds so far (os_writeback), so
// that the disk works while the copy goes on and the fsync at the end waits
// for the last few MiB only, not for all of them (1 GiB: 1.43-1.49 s ->
// 0.85-1.01 s; bench/snapshot_time).
RARE static int image_put(int fd, const char *buf, uint64_t len,
                          uint64_t off) {
  int r = 0;
  while (!r && len) {
    // 64 KiB a write: the page cache makes its folios as large as the
    // writes (ext4 on 6.x); measured with the in-place incremental
    // rewrites of earlier builds, whole images in 4 KiB writes took 0.94-1.02
    // s at 1 GiB instead of 0.75.
    uint64_t n = len < PAGE_BYTES ? len : PAGE_BYTES;
    r = os_pwrite_all(fd, buf, n, off);
    buf += n, off += n, len -= n;
    if (!r && (unkicked += n) >= SNAP_KICK) {
      unkicked = 0;
      os_writeback(fd);
    }
  }
  return r;
}

// [off, off+len) of fd reads as zeros: a hole, or zeros written on a file
// system without holes.
RARE static int zero_range(int fd, uint64_t off, uint64_t len) {
  int r = os_punch_hole(fd, off, len);
  for (uint64_t k = 0; r == -EOPNOTSUPP && k < len;) {
    uint64_t n = len - k < sizeof zeros ? len - k : sizeof zeros;
    r = os_pwrite_all(fd, zeros, n, off + k);
    k += n;
    if (!r && k < len) r = -EOPNOTSUPP;
  }
  return r;
}

// One run of pages [lo, hi) (DIRTY_SHIFT units from data) into the delta.
RARE static int act(int what, const char *data, uint64_t data_off,
                    uint64_t lo, uint64_t hi) {
  uint64_t off = lo << DIRTY_SHIFT, bytes = (hi - lo) << DIRTY_SHIFT;
  if (what == ACT_WRITE)
    return delta_out_data(data_off + off, data + off, bytes);
  return what == ACT_PUNCH ? delta_out_zero(data_off + off, bytes) : 0;
}

// The previous state of pool p's image (entry k of the manifest replaced,
// this process's): the last file of its chain, open, checked to be the
// file its writer left, with the image's header then in *oh and the
// offset in that file where the image's bytes [0, 4096 + descriptors)
// begin in *at (0 in an image; a delta's first record holds them). fd, or
// -1 (not ours to trust: the image is written whole).
RARE static int old_state(const struct writer *w, uint32_t k,
                          const struct poolfile_header *h,
                          struct poolfile_header *oh, uint64_t *at) {
  const struct snap_entry *old = &w->prev->pool[k];
  const struct snap_chain *c = &w->prev->chain[k];
  char last[SNAP_FILE_MAX];
  if (c->n)
    snap_delta_name(last, sizeof last, old->name, c->serial[c->n - 1]);
  else
    fmt_format(last, sizeof last, "%s", old->file);
  int fd = os_open_at(w->dfd, last, O_RDONLY, 0);
  if (fd < 0) return -1;
  *at = c->n ? DELTA_DATA_OFF : 0;
  int ok = file_is(fd, &w->st->last[k], 0) &&
           !os_pread_full(fd, oh, sizeof *oh, *at) &&
           oh->checksum == old->header_checksum;
  struct delta_rec first;
  if (ok && c->n) {
    struct delta_header dh;
    char why[8];
    ok = !os_pread_full(fd, &dh, sizeof dh, 0) &&
         !delta_check_header(&dh, w->st->last[k].size, why, sizeof why) &&
         dh.nrec > 0 && dh.to_checksum == old->header_checksum &&
         !os_pread_full(fd, &first, sizeof first,
                        DELTA_DATA_OFF + dh.data_bytes) &&
         first.kind == DELTA_REC_DATA && first.off == 0;
  }
  struct poolfile_header sealed = *oh;
  poolfile_seal(&sealed);
  ok = ok && sealed.checksum == oh->checksum &&
       oh->desc_size == sizeof(struct pdesc) && oh->base == h->base &&
       oh->capacity == h->capacity && oh->uuid[0] == h->uuid[0] &&
       oh->uuid[1] == h->uuid[1] && oh->desc_off == h->desc_off &&
       oh->data_off == h->data_off &&
       oh->data_off + ((uint64_t)oh->st.top << PAGE_SHIFT) == old->length &&
       oh->desc_off + (uint64_t)oh->st.top * sizeof(struct pdesc) <=
           oh->data_off &&
       (!c->n || first.len >= oh->desc_off + (uint64_t)oh->st.top *
                                                 sizeof(struct pdesc));
  if (!ok) {
    os_close(fd);
    return -1;
  }
  return fd;
}

// A long chain costs every reader: pool p's image (entry k of the manifest
// replaced) is to be written whole instead of a delta after it.
RARE static int chain_cut(const struct writer *w, const struct mmpool *p,
                          uint32_t k) {
  const struct snap_chain *c = &w->prev->chain[k];
  return c->n >= SNAP_CHAIN_MAX || c->bytes > w->prev->pool[k].length / 4 ||
         !delta_fits(p->name, w->serial);
}

// Writes pool p's delta as file: what differs between the image of the
// manifest replaced (entry k, with its chain) and this copy's image (header
// h, descriptors descs of meta bytes, data). A page is written when it is
// in use and was free or past the end in the old image, or was written
// since the old image's instant (the dirty map, dirty_late); a page of the
// old image that is free now or has no page in this copy (purged since:
// zeros) becomes a zero record; the rest is the old image's already. No
// file but the new one is touched. 0 with *fd_out open on the delta
// (written, not synced), a DIRTY_* reason (> 0) to write the image whole
// instead (nothing left behind), or a negative errno (said by
// writer_fail; the delta removed).
RARE static int delta(struct writer *w, struct mmpool *p, const char *file,
                      const struct poolfile_header *h, const char *descs,
                      const char *data, uint64_t meta, uint32_t k,
                      int *fd_out, uint64_t *written) {
  const struct snap_entry *old = &w->prev->pool[k];
  uint32_t top = h->st.top;
  uint64_t top4k = (uint64_t)top << (PAGE_SHIFT - DIRTY_SHIFT);
  uint64_t len = h->data_off + ((uint64_t)top << PAGE_SHIFT);
  if (chain_cut(w, p, k)) return DIRTY_CHAIN;
  // The writes since this snapshot's scan (before the hold; other threads
  // run through the hold too). A capture has them (capture).
  if (!w->capture &&
      dirty_late(p->id, 0, p->data, p->data + ((uint64_t)top << PAGE_SHIFT)) !=
          0)
    return DIRTY_LOST;
  struct poolfile_header oh;
  uint64_t at;
  int ofd = old_state(w, k, h, &oh, &at);
  if (ofd < 0) return DIRTY_CHANGED;
  // This copy's pages that read as zeros, found as the walk goes.
  if (dirty_holes_start(p->data, p->data + (top4k << DIRTY_SHIFT),
                        w->capture) != 0) {
    os_close(ofd);
    return DIRTY_LOST;
  }
  os_unlink_at(w->dfd, file);  // left by a writer that died
  int fd = os_open_at(w->dfd, file, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    os_close(ofd);
    return writer_fail(w, -fd, "cannot create", file);
  }
  uint32_t old_top = oh.st.top;
  uint64_t old4k = (uint64_t)old_top << (PAGE_SHIFT - DIRTY_SHIFT);
  olds.fd = ofd;
  olds.desc_off = at + oh.desc_off;
  olds.top = old_top;
  olds.lo = olds.n = olds.end = 0;
  // The header and descriptors first (their bytes are the image's first),
  // then the old descriptors past the new ones as zeros, then the data.
  // The header from a page of its own: aligned, so that the batch it
  // starts can go to the device directly (core/delta.c).
  static struct poolfile_header hpage __attribute__((aligned(4096)));
  hpage = *h;
  int r = delta_out_begin(fd);
  if (!r) r = delta_out_data(0, &hpage, sizeof hpage);
  if (!r && meta) r = delta_out_data(h->desc_off, descs, meta);
  uint64_t old_meta = oh.st.meta_committed;
  if (old_meta > oh.data_off - oh.desc_off) old_meta = oh.data_off - oh.desc_off;
  if (!r && old_meta > meta)
    r = delta_out_zero(h->desc_off + meta, old_meta - meta);
  const struct pdesc *d = (const struct pdesc *)descs;
  uintptr_t hlo = 0, hhi = 0;  // the current hole of this copy
  int holes_left = 1;
  int run = ACT_SKIP;
  uint64_t run_lo = 0;
  for (uint32_t i = 0; !r && i < top;) {
    uint32_t n = d[i].npages;
    if (n == 0 || n > top - i) n = top - i;
    int in_use = d[i].kind != PD_FREE;
    for (uint32_t j = i; !r && j < i + n; j++) {
      int was_free = 1;
      if (j < old_top) r = old_free(j, &was_free);
      uint64_t q0 = (uint64_t)j << (PAGE_SHIFT - DIRTY_SHIFT);
      // The common case first, 64 KiB at a time: in use now and before, no
      // page written since and none without a page in this copy.
      uintptr_t a0 = p->data + ((uint64_t)j << PAGE_SHIFT);
      while (!r && holes_left && a0 >= hhi) {
        int hr = dirty_holes_next(&hlo, &hhi);
        if (hr < 0) r = hr;
        if (hr <= 0) holes_left = 0;
      }
      if (!r && in_use && j < old_top && !was_free &&
          !(holes_left && hlo < a0 + PAGE_BYTES) &&
          !dirty_any16(p->id, 0, q0)) {
        if (run != ACT_SKIP) {
          r = act(run, data, h->data_off, run_lo, q0);
          run = ACT_SKIP;
          run_lo = q0;
        }
        continue;
      }
      for (uint64_t q = q0, qe = q + (1u << (PAGE_SHIFT - DIRTY_SHIFT));
           !r && q < qe; q++) {
        uintptr_t a = p->data + (q << DIRTY_SHIFT);
        while (holes_left && a >= hhi) {
          int hr = dirty_holes_next(&hlo, &hhi);
          if (hr < 0) r = hr;
          if (hr <= 0) holes_left = 0;
        }
        int held = q < old4k && !was_free;  // the old image has bytes here
        int what;
        if (!in_use || (holes_left && a >= hlo && a < hhi))
          what = held ? ACT_PUNCH : ACT_SKIP;
        else
          what = !held || dirty_test(p->id, 0, q) ? ACT_WRITE : ACT_SKIP;
        if (what != run) {
          if (!r) r = act(run, data, h->data_off, run_lo, q);
          run = what;
          run_lo = q;
        }
      }
    }
    i += n;
  }
  if (!r) r = act(run, data, h->data_off, run_lo, top4k);
  os_close(ofd);
  struct delta_header dh;
  memset(&dh, 0, sizeof dh);
  dh.serial = w->serial;
  dh.uuid[0] = h->uuid[0];
  dh.uuid[1] = h->uuid[1];
  dh.from_length = old->length;
  dh.from_checksum = old->header_checksum;
  dh.length = len;
  dh.to_checksum = h->checksum;
  if (!r) r = delta_out_end(&dh);
  if (r) {
    os_close(fd);
    os_unlink_at(w->dfd, file);
    if (r == -E2BIG) return DIRTY_CHAIN;  // too scattered for a delta
    return writer_fail(w, -r, "cannot write", file);
  }
  if (w->capture) {
    struct pending *pd = &w->pend[w->npend++];
    pd->fd = fd;
    pd->ix = w->m.npools;
    pd->area = delta_captured(&pd->len);
    pd->dh = dh;
  }
  *written = DELTA_DATA_OFF + dh.data_bytes + dh.nrec * sizeof(struct delta_rec);
  *fd_out = fd;
  return 0;
}

// The entry of the manifest replaced for pool p (same name, base and
// uuid, an anonymous pool), or -1.
RARE static int old_entry(const struct writer *w, const struct mmpool *p,
                          const struct poolfile_header *h) {
  const struct snap_manifest *m = w->prev;
  for (uint32_t k = 0; m && k < m->npools && k < MMPOOL_MAX_POOLS; k++) {
    const struct snap_entry *e = &m->pool[k];
    if (!strcmp(e->name, p->name) && e->kind == SNAP_POOL_ANON &&
        e->base == h->base && e->capacity == h->capacity &&
        e->uuid[0] == h->uuid[0] && e->uuid[1] == h->uuid[1])
      return (int)k;
  }
  return -1;
}

// The hidden image of pool p (by name, of any kind), when it is the file
// its writer left, renamed to file and open for writing: fd, or -1 (none,
// or not ours to rewrite: a new file is made). Overwriting a file in place
// costs half of making a new one and removing the old (16 MiB: 6.4-7.6 ms
// against 13.5-15.6 here: no blocks to free and allocate, no pages of the
// cache to drop and fill; docs/snapshots.md).
RARE static int reuse_kept(const struct writer *w, const struct mmpool *p,
                           const char *file) {
  for (uint32_t k = 0; w->st->valid && k < w->st->nspare; k++) {
    const struct spare *s = &w->st->spare[k];
    if (strcmp(s->name, p->name) != 0) continue;
    char from[SNAP_FILE_MAX + sizeof SNAP_KEPT_PREFIX];
    fmt_format(from, sizeof from, "%s%s", SNAP_KEPT_PREFIX, s->file);
    int fd = os_open_at(w->dfd, from, O_RDWR, 0);
    if (fd < 0) return -1;
    if (!file_is(fd, &s->id, 1) || os_rename_at(w->dfd, from, file) != 0) {
      os_close(fd);
      return -1;
    }
    return fd;
  }
  return -1;
}

// ---------------------------------------------------------------------------
// The writer

// Writes pool p's image: a delta after the manifest replaced's (delta),
// or whole as NAME.SERIAL.pool, overwriting the pool's hidden image in
// place when there is one. The sources: the pool itself (anonymous and
// private pools: this process is a copy), or the copy the parent made of
// a shared file pool while the set was held. Fills entry e and chain c.
RARE static int write_image(struct writer *w, struct mmpool *p,
                            struct snap_entry *e, struct snap_chain *c) {
  const struct poolfile_header *src =
      p->fork_meta ? (const struct poolfile_header *)p->fork_meta : p->hdr;
  const char *data = p->fork_meta ? (const char *)p->fork_data
                                  : (const char *)p->data;
  const char *descs = (const char *)src + src->desc_off;
  struct poolfile_header h;
  memcpy(&h, src, sizeof h);
  uint32_t top = h.st.top;
  uint64_t len = h.data_off + ((uint64_t)top << PAGE_SHIFT);
  uint64_t meta = h.st.meta_committed;
  if (meta > p->meta_mapped) meta = p->meta_mapped;
  // What a clean close says, for this copy: attachable without recover.
  h.st.length = len;
  h.st.hiwater = top;
  h.feature_compat |= POOLFILE_COMPAT_META_DESC;  // as mark_clean (pool.c)
  // A root left on a block freed since, past the top now, would make the
  // image unattachable (roots must lie in its data): it is dropped.
  for (unsigned k = 0; k < MMPOOL_ROOTS; k++)
    if (h.roots[k] && (h.roots[k] < h.base + h.data_off ||
                       h.roots[k] >= h.base + len))
      h.roots[k] = 0;
  h.meta_checksum = poolfile_meta_hash_at(&h, descs, data);
  h.closed = os_time();
  h.flags |= POOLFILE_CLEAN;
  poolfile_seal(&h);

  const struct pdesc *d = (const struct pdesc *)descs;
  uint64_t image = sizeof h + meta;  // what a full image writes
  for (uint32_t i = 0; i < top;) {
    uint32_t n = d[i].npages;
    if (n == 0 || n > top - i) n = top - i;  // not a span: write it all
    if (d[i].kind != PD_FREE) image += (uint64_t)n << PAGE_SHIFT;
    i += n;
  }
  char file[SNAP_FILE_MAX], dfile[SNAP_FILE_MAX];
  fmt_format(file, sizeof file, "%s.%llu.pool", p->name,
             (unsigned long long)w->serial);
  snap_delta_name(dfile, sizeof dfile, p->name, w->serial);
  int why = w->why_all, k = -1, fd = -1, r = 0;
  uint64_t written = 0;
  if (why != DIRTY_ASKED) {
    // What holds for the pool for good (its kind, the kernel) first.
    int u = dirty_usable(p->id, 0);
    if (!why || u == DIRTY_FILE || u == DIRTY_KERNEL) why = u;
  }
  if (!why && (k = old_entry(w, p, &h)) < 0) why = DIRTY_NEW;
  if (!why) {
    why = delta(w, p, dfile, &h, descs, data, meta, (uint32_t)k, &fd,
                &written);
    if (why < 0) return why;
  }
  // A capture makes deltas only: a whole image is a copy's to write.
  if (why && w->capture) return -EAGAIN;
  if (why) {
    // The pool's hidden image, overwritten whole (every byte below is
    // written or made zeros), or a new file, whose free spans are holes
    // from the start.
    fd = reuse_kept(w, p, file);
    int reused = fd >= 0;
    if (!reused)
      fd = os_open_at(w->dfd, file, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd == -EEXIST) {  // left by a writer that died before its manifest
      os_unlink_at(w->dfd, file);
      fd = os_open_at(w->dfd, file, O_WRONLY | O_CREAT | O_EXCL, 0600);
    }
    if (fd < 0) return writer_fail(w, -fd, "cannot create", file);
    // A reused file is overwritten through the page cache, whose pages it
    // has (image_put); a new one has none, and goes through the stage
    // (core/delta.c: each new page of the cache would cost more than the
    // copy; the first snapshot of 16 MiB at 0.73-0.96 of cp that way).
    static struct poolfile_header hpage __attribute__((aligned(4096)));
    hpage = h;
    r = os_truncate(fd, len);
    if (!reused) {
      stage_begin(fd, 0);
      if (!r) r = stage_put(&hpage, sizeof hpage, 0);
      if (!r && meta) r = stage_put(descs, meta, h.desc_off);
    } else {
      if (!r) r = os_pwrite_all(fd, &h, sizeof h, 0);
      if (!r && h.desc_off > sizeof h)
        r = zero_range(fd, sizeof h, h.desc_off - sizeof h);
      if (!r && meta) r = os_pwrite_all(fd, descs, meta, h.desc_off);
      if (!r && h.data_off > h.desc_off + meta)
        r = zero_range(fd, h.desc_off + meta, h.data_off - h.desc_off - meta);
    }
    written = sizeof h + meta;
    // Runs of spans in use, runs of free spans as holes (zero_range in a
    // reused file).
    uint32_t run = 0;  // the first page of the run at hand
    int run_free = 0;  // ... which is of free spans
    for (uint32_t i = 0; !r && i <= top;) {
      uint32_t n = i < top ? d[i].npages : 0;
      if (i < top && (n == 0 || n > top - i)) n = top - i;  // not a span
      int is_free = i < top && d[i].kind == PD_FREE;
      if ((i == top || is_free != run_free) && run < i) {
        uint64_t off = (uint64_t)run << PAGE_SHIFT,
                 bytes = (uint64_t)(i - run) << PAGE_SHIFT;
        if (!run_free) {
          r = reused ? image_put(fd, data + off, bytes, h.data_off + off)
                     : stage_put(data + off, bytes, h.data_off + off);
          written += bytes;
        } else if (reused) {
          r = zero_range(fd, h.data_off + off, bytes);
        }
        run = i;
      }
      run_free = is_free;
      if (i == top) break;
      i += n;
    }
    if (!reused) {
      int e = stage_end();
      if (!r) r = e;
    }
  }
  const char *made = why ? file : dfile;
  uint32_t ix = w->m.npools;  // this entry's index
  struct file_id *id = &w->msg.id[ix];
  id->size = why ? len : written;
  if (!w->capture) {  // else writer_finish writes and syncs it
    if (!r) r = os_fsync(fd);
    if (!r) r = os_file_stamp(fd, &id->ino, &id->mtime);
    os_close(fd);
  }
  if (r) {
    os_unlink_at(w->dfd, made);
    return writer_fail(w, -r, "cannot write", made);
  }
  memset(e, 0, sizeof *e);
  memset(c, 0, sizeof *c);
  memcpy(e->name, p->name, sizeof e->name);
  if (why) {
    memcpy(e->file, file, strlen(file) + 1);
  } else {
    // The image and the chain it had, and this delta.
    const struct snap_chain *oc = &w->prev->chain[k];
    memcpy(e->file, w->prev->pool[k].file, sizeof e->file);
    *c = *oc;
    c->serial[c->n++] = w->serial;
    c->bytes += written;
  }
  e->base = h.base;
  e->capacity = h.capacity;
  e->length = len;
  e->generation = h.generation;
  e->uuid[0] = h.uuid[0];
  e->uuid[1] = h.uuid[1];
  e->header_checksum = h.checksum;
  e->kind = !p->is_file ? SNAP_POOL_ANON
            : p->shared ? SNAP_POOL_SHARED
                        : SNAP_POOL_PRIVATE;
  if (why) {
    e->how = SNAP_HOW_FULL | (uint32_t)why << 8;
    w->msg.why_full = (uint32_t)weightier((int)w->msg.why_full, why);
  } else {
    e->how = SNAP_HOW_INCREMENTAL;
    w->msg.incremental++;
  }
  w->msg.bytes += written;
  w->msg.image_bytes += image;
  return 0;
}

RARE static int named_by(const struct snap_manifest *m, const char *name) {
  for (uint32_t i = 0; m && i < m->npools; i++)
    if (!strcmp(m->pool[i].file, name)) return 1;
  return 0;
}

// 1 when m names delta file name in a chain.
RARE static int delta_named_by(const struct snap_manifest *m,
                               const char *name) {
  char buf[SNAP_FILE_MAX];
  for (uint32_t i = 0; m && i < m->npools; i++)
    for (uint32_t j = 0; j < m->chain[i].n && j < SNAP_CHAIN_MAX; j++) {
      snap_delta_name(buf, sizeof buf, m->pool[i].name, m->chain[i].serial[j]);
      if (!strcmp(buf, name)) return 1;
    }
  return 0;
}

// m's entry for pool name is a delta (its image is the one before).
RARE static int delta_in(const struct snap_manifest *m, const char *name) {
  for (uint32_t i = 0; i < m->npools; i++)
    if (!strcmp(m->pool[i].name, name))
      return (m->pool[i].how & 0xff) == SNAP_HOW_INCREMENTAL;
  return 0;
}

// The hidden images that stay, once new names the images (SNAP_KEPT_PREFIX
// FILE), one per pool at most, for the pool's next whole image to
// overwrite in place (reuse_kept): the images of the manifest replaced
// (ours) that new does not name, hidden now; and the spares of pools whose
// image new still names (written as a delta). The parent keeps the same
// list (state_written), the sweep removes every other hidden image. 1 when
// name (without the prefix) is one of those.
RARE static int spare_stays(const struct snap_state *st,
                            const struct snap_manifest *prev, int ours,
                            const struct snap_manifest *new,
                            const char *name) {
  for (uint32_t i = 0; ours && prev && i < prev->npools &&
                       i < MMPOOL_MAX_POOLS; i++)
    if (!strcmp(prev->pool[i].file, name) && !named_by(new, name)) return 1;
  for (uint32_t k = 0; st->valid && k < st->nspare; k++)
    if (!strcmp(st->spare[k].file, name) && delta_in(new, st->spare[k].name))
      return 1;
  return 0;
}

// Hides the previous snapshot's images that the new manifest does not
// name (see spare_stays). Once the new manifest is in place, so no
// manifest names them: a crash half way leaves files the next sweep
// removes.
RARE static void hide_prev(struct writer *w) {
  char to[SNAP_FILE_MAX + sizeof SNAP_KEPT_PREFIX];
  for (uint32_t i = 0; w->ours && w->prev && i < w->prev->npools &&
                       i < MMPOOL_MAX_POOLS; i++) {
    const struct snap_entry *e = &w->prev->pool[i];
    if (named_by(&w->m, e->file)) continue;
    fmt_format(to, sizeof to, "%s%s", SNAP_KEPT_PREFIX, e->file);
    os_rename_at(w->dfd, e->file, to);
  }
}

// After the new manifest is in place: every image and delta it does not
// name (the previous snapshot's unless kept, a dead writer's, the deltas
// of a chain cut), hidden images that are no spare, and a stale temporary
// manifest.
RARE static int sweep_one(void *arg, const char *name) {
  struct writer *w = arg;
  size_t n = sizeof SNAP_KEPT_PREFIX - 1;
  int hidden = !strncmp(name, SNAP_KEPT_PREFIX, n);
  if ((image_name(name) && !named_by(&w->m, name) &&
       !(hidden && spare_stays(w->st, w->prev, w->ours, &w->m, name + n))) ||
      (delta_name(name) && !delta_named_by(&w->m, name)) ||
      !strcmp(name, SNAP_MANIFEST_TMP) ||
      !strncmp(name, ".relocated-", 11))
    os_unlink_at(w->dfd, name);
  return 0;
}

// A failed snapshot: the files it made (never the previous one's).
RARE static void remove_new_images(struct writer *w) {
  char buf[SNAP_FILE_MAX];
  for (uint32_t i = 0; i < w->m.npools; i++) {
    const struct snap_entry *e = &w->m.pool[i];
    if ((e->how & 0xff) == SNAP_HOW_INCREMENTAL) {
      snap_delta_name(buf, sizeof buf, e->name, w->serial);
      os_unlink_at(w->dfd, buf);
    } else {
      os_unlink_at(w->dfd, e->file);
    }
  }
}

RARE static int write_manifest(struct writer *w) {
  int placed = 0;
  int r = snap_manifest_install(w->dfd, &w->m, &placed);
  if (!r) return 0;
  // A failed sync of the directory after the rename: the new manifest is in
  // place all the same (a reader sees it), so its images stay.
  w->synced_dir_failed = placed;
  return writer_fail(w, -r, placed ? "renamed, but cannot sync the "
                                     "directory of"
                                   : "cannot write",
                     SNAP_MANIFEST);
}
// The images of every pool, into w->m (a copy's, or a capture's deltas).
// 0 or a negative errno (said in w->msg).
RARE static int writer_images(struct writer *w) {
  struct snap_manifest *m = &w->m;
  memset(m, 0, sizeof *m);
  memcpy(m->magic, SNAP_MAGIC, sizeof m->magic);
  m->version = SNAP_VERSION;
  m->size = sizeof *m;
  m->serial = w->serial;
  m->taken = os_time();
  memcpy(m->program, w->program, sizeof m->program);
  int r = 0;
  for (unsigned i = 1; i <= MMPOOL_MAX_POOLS && !r; i++) {
    struct mmpool *p = &pool_table[i];
    if (p->state != POOL_OPEN || p->frozen) continue;
    r = write_image(w, p, &m->pool[m->npools], &m->chain[m->npools]);
    if (!r) m->npools++;
  }
  return r;
}

// A capture's deltas, written and synced (the buffer holds them). 0 or a
// negative errno (said in w->msg); their descriptors are closed.
RARE static int write_pending(struct writer *w, int r) {
  for (uint32_t k = 0; k < w->npend; k++) {
    struct pending *pd = &w->pend[k];
    struct file_id *id = &w->msg.id[pd->ix];
    int e = r ? 0 : delta_capture_write(pd->fd, &pd->dh, pd->area, pd->len);
    if (!r && !e) e = os_fsync(pd->fd);
    if (!r && !e) e = os_file_stamp(pd->fd, &id->ino, &id->mtime);
    if (!r && e) {
      char name[SNAP_FILE_MAX];
      snap_delta_name(name, sizeof name, w->m.pool[pd->ix].name, w->serial);
      r = writer_fail(w, -e, "cannot write", name);
    }
    os_close(pd->fd);
  }
  w->npend = 0;
  return r;
}

// After the images (r: how they went): a capture's deltas written, the
// manifest (with the pause and the program's pid) in place, what it does
// not name swept; or, on failure, the new files removed. Says in w->msg.
RARE static int writer_finish(struct writer *w, int r, uint64_t pause,
                              uint64_t pid) {
  struct snap_manifest *m = &w->m;
  r = write_pending(w, r);
  m->pause_ns = pause;
  m->pid = (uint32_t)pid;
  m->bytes = w->msg.bytes;
  m->incremental = w->msg.incremental;
  m->why_full = w->msg.why_full;
  m->image_bytes = w->msg.image_bytes;
  if (!r) {
    snap_manifest_seal(m);
    r = write_manifest(w);
  }
  if (r && !w->synced_dir_failed) {
    remove_new_images(w);
  } else {
    hide_prev(w);
    os_list_dir(w->dfd, sweep_one, w);
    w->msg.pools = m->npools;
    w->msg.placed = 1;
  }
  return r;
}

RARE static _Noreturn void writer_run(struct writer *w) {
  os_signals_default();
  int r = writer_images(w);
  // The parent says how long the program was held, once it runs again,
  // and its pid (this copy's is its own).
  uint64_t pause = 0, ppid = (uint64_t)os_getpid(), got = 0;
  if (os_read(w->go_fd, &got, sizeof got) == sizeof got) pause = got;
  if (os_read(w->go_fd, &got, sizeof got) == sizeof got) ppid = got;
  r = writer_finish(w, r, pause, ppid);
  // Every descriptor but the result's goes before the word: the parent
  // does not wait for the exit (take), and the directory's lock, and the
  // program's files, pipes and sockets, must not stay open in this copy
  // while its address space is torn down.
  os_close(w->dfd);
  os_close_all_but(w->res_fd);
  os_write_all(w->res_fd, &w->msg, sizeof w->msg);
  os_exit(r ? 1 : 0);
}

// ---------------------------------------------------------------------------
// The parent

// Opens dir, making it when missing; it must be a directory of the
// effective user that group and others cannot write. Locked exclusively
// (flock) for the snapshot.
RARE static int open_dir(const char *dir) {
  char eb[32];
  int fd = os_open_nolinks(dir, O_RDONLY | O_DIRECTORY, 0);
  if (fd == -ENOENT) {
    int r = os_mkdir(dir, 0700);
    if (r && r != -EEXIST)
      return log_fail(-r, "snapshot: cannot make the directory %s: %s", dir,
                      os_strerror(-r, eb, sizeof eb));
    fd = os_open_nolinks(dir, O_RDONLY | O_DIRECTORY, 0);
  }
  if (fd < 0)
    return log_fail(-fd, "snapshot: cannot open the directory %s: %s", dir,
                    fd == -ELOOP ? "a component of the path is a symbolic "
                                   "link"
                                 : os_strerror(-fd, eb, sizeof eb));
  struct os_stat st;
  int r = os_file_stat(fd, &st);
  if (!r && st.uid != os_geteuid()) {
    r = log_fail(EACCES, "snapshot: the directory %s belongs to uid %u, not "
                 "to this process's user (uid %u)", dir, st.uid,
                 os_geteuid());
  } else if (!r && (st.mode & 022)) {
    r = log_fail(EACCES, "snapshot: the directory %s may be written by "
                 "group or others (mode %o): refused", dir,
                 st.mode & 07777);
  } else if (r) {
    r = log_fail(-r, "snapshot: cannot stat %s: %s", dir,
                 os_strerror(-r, eb, sizeof eb));
  } else if (os_lock_file(fd, 1) != 0) {
    r = log_fail(EBUSY, "snapshot: %s is in use by another process (a "
                 "snapshot being written, or the process that takes its "
                 "snapshots there)", dir);
  }
  if (r) {
    os_close(fd);
    return r;
  }
  return fd;
}

// The directory's current manifest into *m: 1 when there is one, 0 when
// there is none, or a negative errno (a file that is not a sound manifest
// is refused: the directory is not ours, or was damaged).
RARE static int read_manifest_as(int dfd, const char *dir,
                                 struct snap_manifest *m, const char *advice) {
  char eb[32], why[160];
  int fd = os_open_at(dfd, SNAP_MANIFEST, O_RDONLY, 0);
  if (fd == -ENOENT) return 0;
  if (fd < 0)
    return log_fail(-fd, "snapshot: cannot open %s/%s: %s", dir,
                    SNAP_MANIFEST, os_strerror(-fd, eb, sizeof eb));
  struct os_stat st;
  int r = os_file_stat(fd, &st);
  if (!r && (!st.is_regular ||
             (st.size != sizeof *m && st.size != SNAP_V1_SIZE))) {
    r = -ENOEXEC;
    fmt_format(why, sizeof why, "not an mmpool snapshot manifest");
  } else if (!r) {
    memset(m, 0, sizeof *m);
    r = os_pread_full(fd, m, st.size, 0);
    if (!r) r = snap_manifest_check(m, st.size, why, sizeof why);
    else os_strerror(-r, why, sizeof why);
  } else {
    os_strerror(-r, why, sizeof why);
  }
  os_close(fd);
  if (r)
    return log_fail(-r, "snapshot: %s/%s: %s%s", dir, SNAP_MANIFEST, why,
                    advice);
  return 1;
}

RARE static int read_manifest(int dfd, const char *dir,
                              struct snap_manifest *m) {
  return read_manifest_as(dfd, dir, m,
                          "; remove it or choose another directory");
}

RARE int snapshot_read(const char *dir, struct snap_manifest *m) {
  char eb[32];
  if (!dir || !*dir) return log_fail(EINVAL, "snapshot: no directory given");
  int dfd = os_open_nolinks(dir, O_RDONLY | O_DIRECTORY, 0);
  if (dfd < 0)
    return log_fail(-dfd, "snapshot: cannot open the directory %s: %s", dir,
                    dfd == -ELOOP ? "a component of the path is a symbolic "
                                    "link"
                                  : os_strerror(-dfd, eb, sizeof eb));
  int r = read_manifest_as(dfd, dir, m, "");
  os_close(dfd);
  if (r == 0)
    return log_fail(ENOENT, "snapshot: %s holds no snapshot (no %s)", dir,
                    SNAP_MANIFEST);
  return r < 0 ? r : 0;
}

// ---------------------------------------------------------------------------
// Captures: snapshots without a copy of the process
//
// A copy of the process costs, in the pause, the copy of its page tables
// (7 ms at 1 GiB of 4 KiB pages here: the tracking of written pages splits
// huge pages), and its writer then takes pages of its own. When every pool
// is written as a delta and the changes are small against the heap, the
// process copies them itself under the hold instead, into a buffer it keeps
// (capture), and writes them after the hold, from this thread: no copy of
// the process, and a pause of the copy of the pages changed (0.4 ms per MiB
// of scattered pages here, against 6.8 us per MiB of heap for the page
// tables: CAPTURE_PER_HEAP).
//
// The instant. The hold stops the allocator, not the program's threads
// that do not call it: they may write to their blocks during the copy. A
// copy of the process is one instant for them too (the kernel protects each
// page as it copies the tables, and a write to a page already protected
// waits for the end). A capture gets the same by checking: first the pages
// written since the scan are added and protected again (dirty_rescan), so
// that from then on every write shows; after the copies a second rescan
// must find nothing written. Then every page copied is as it was at the
// first rescan, and so is every page not copied (unchanged since the
// previous snapshot's instant). When something was written, the capture is
// dropped and the process is copied after all, in the same hold (the pages
// found are in the maps).

#define CAPTURE_MAX ((uint64_t)32 << 20)
#define CAPTURE_PER_HEAP 64
static char *cbuf;     // the capture buffer (vmmap_scratch), kept
static uint64_t ccap;  // its bytes
static uint64_t climit;  // what this snapshot's capture may take of them
// A capture dropped because the program wrote during it cost the pause its
// copies for nothing: the next captures are skipped, 1, 2, 4 ... 64 of
// them (a program whose threads write all the time is copied), until one
// succeeds.
static unsigned cskip, cbackoff;
void (*snapshot_at_capture)(void);

// The bytes a capture of this snapshot is expected to take (the deltas'
// data and records), or 0 when it cannot be one: a pool is not tracked (a
// file pool, a new one), or the changes are too large for their copy to
// beat the copy of the process (1/CAPTURE_PER_HEAP of the heap: *limit,
// at most CAPTURE_MAX). A capture may take more than expected (pages put
// in use since the last snapshot that were written before it, of which
// the maps know nothing): up to *limit. None where the kernel refused a
// capture's copies. Right after dirty_scan, under the registry lock.
RARE static uint64_t capture_need(uint64_t *limit) {
  uint64_t need = 0, heap = 0;
  if (!delta_capture_usable()) return 0;
  for (unsigned i = 1; i <= MMPOOL_MAX_POOLS; i++) {
    const struct mmpool *p = &pool_table[i];
    if (p->state != POOL_OPEN || p->frozen) continue;
    if (p->is_file || dirty_usable(i, 0) != DIRTY_OK) return 0;
    uint64_t pages = dirty_present(i);
    uint64_t meta = __atomic_load_n(&p->hdr->st.meta_committed,
                                    __ATOMIC_RELAXED);
    if (meta > p->meta_mapped) meta = p->meta_mapped;
    need += 2 * 4096 + meta + (pages << DIRTY_SHIFT) +
            (2 * pages + 64) * sizeof(struct delta_rec);
    heap += __atomic_load_n(&p->data_len, __ATOMIC_RELAXED);
  }
  *limit = heap / CAPTURE_PER_HEAP;
  if (*limit > CAPTURE_MAX) *limit = CAPTURE_MAX;
  *limit &= ~(uint64_t)4095;
  return need <= *limit ? need : 0;
}

// The buffer spans limit bytes, the pages of the first need of them taken
// now rather than in the pause (a new page costs a fault of the hypervisor
// here: 5 us). Between snapshots its pages are lazily free (MADV_FREE): the
// kernel takes them when it needs memory; until then they cost nothing to
// take again. 0 or -ENOMEM.
RARE static int capture_room(uint64_t need, uint64_t limit) {
  if (limit > ccap) {
    uint64_t cap = (limit + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
    char *b = vmmap_scratch(cap);
    if (!b) return -ENOMEM;
    if (cbuf) vmmap_scratch_release(cbuf);
    cbuf = b;
    ccap = cap;
  }
  for (uint64_t o = 0; o < need; o += 4096) ((volatile char *)cbuf)[o] = 0;
  return 0;
}

// Whether every pool is to be written as a delta, as far as is known
// before its walk (write_image decides the same way): a capture that meets
// a pool to write whole is dropped, with what it did in vain.
RARE static int all_deltas(const struct writer *w) {
  for (unsigned i = 1; i <= MMPOOL_MAX_POOLS; i++) {
    const struct mmpool *p = &pool_table[i];
    if (p->state != POOL_OPEN || p->frozen) continue;
    int k = old_entry(w, p, p->hdr);
    if (dirty_usable(i, 0) != DIRTY_OK || k < 0 || chain_cut(w, p, (uint32_t)k))
      return 0;
  }
  return 1;
}

// Under the hold: the snapshot's deltas made in the capture buffer (w's
// pending ones), at an instant checked as above. 1, or 0 with nothing left
// of the try (its files removed): the process is to be copied.
RARE static int capture(struct writer *w) {
  if (!all_deltas(w)) return 0;
  for (unsigned i = 1; i <= MMPOOL_MAX_POOLS; i++) {
    const struct mmpool *p = &pool_table[i];
    if (p->state != POOL_OPEN || p->frozen) continue;
    if (dirty_usable(i, 0) != DIRTY_OK ||  // opened since the scan
        dirty_rescan(i) < 0)
      return 0;
  }
  w->capture = 1;
  w->npend = 0;
  delta_capture_begin(cbuf, climit);
  int r = writer_images(w);
  delta_capture_end();
  if (snapshot_at_capture) snapshot_at_capture();
  for (unsigned i = 1; !r && i <= MMPOOL_MAX_POOLS; i++) {
    const struct mmpool *p = &pool_table[i];
    if (p->state != POOL_OPEN || p->frozen) continue;
    if (dirty_rescan(i) != 0) r = -EBUSY;
  }
  if (r == -EBUSY) {  // written meanwhile
    cbackoff = cbackoff ? (cbackoff < 64 ? 2 * cbackoff : 64) : 1;
    cskip = cbackoff;
  }
  if (!r) {
    cbackoff = 0;
    return 1;
  }
  for (uint32_t k = 0; k < w->npend; k++) os_close(w->pend[k].fd);
  w->npend = 0;
  remove_new_images(w);
  w->capture = 0;
  memset(&w->msg, 0, sizeof w->msg);
  return 0;
}

// A shared file pool whose copy could not be made (no memory) cannot be
// in the snapshot as it was. pre: pool_hold_all.
RARE static struct mmpool *missing_copy(void) {
  for (unsigned i = 1; i <= MMPOOL_MAX_POOLS; i++) {
    struct mmpool *p = &pool_table[i];
    if (p->state == POOL_OPEN && !p->frozen && p->is_file && p->shared &&
        !p->fork_meta)
      return p;
  }
  return NULL;
}

// What the writer said: 0, or its failure.
RARE static int said_by_writer(struct snap_msg *msg) {
  msg->why[sizeof msg->why - 1] = 0;
  if (msg->err && msg->placed)
    return log_fail(msg->err, "snapshot: %s: the new snapshot is in place "
                    "but may not survive a crash of the system", msg->why);
  if (msg->err)
    return log_fail(msg->err, "snapshot: %s; the previous snapshot stands",
                    msg->why);
  return 0;
}

RARE static int take(const char *dir, int dfd, uint64_t serial,
                     const struct snap_manifest *prev, int why_all,
                     uint64_t *pause_out, struct snap_msg *msg) {
  char eb[32];
  int res[2], go[2];
  int r = os_pipe(res);
  if (r) return log_fail(-r, "snapshot: pipe: %s",
                         os_strerror(-r, eb, sizeof eb));
  // The pause and the pid go to the writer through a socket: if it died
  // already (a fault, the OOM killer), the send fails instead of raising
  // SIGPIPE in the program.
  r = os_socket_pair(go);
  if (r) {
    os_close(res[0]);
    os_close(res[1]);
    return log_fail(-r, "snapshot: socketpair: %s",
                    os_strerror(-r, eb, sizeof eb));
  }
  // Earlier writers that have ended are reaped; when all the places are
  // taken, the oldest is waited for.
  int slot = -1;
  for (int k = 0; k < WRITERS_LEFT; k++) {
    if (writer_left[k] > 0 && os_reap_quiet(writer_left[k]))
      writer_left[k] = 0;
    if (!writer_left[k] && slot < 0) slot = k;
  }
  if (slot < 0) {
    int st = 0;
    os_wait_quiet(writer_left[0], &st);
    writer_left[0] = 0;
    slot = 0;
  }
  static struct writer w;  // the child's; its copy is its own
  memset(&w.msg, 0, sizeof w.msg);
  w.capture = 0;
  w.npend = 0;
  w.synced_dir_failed = 0;
  w.dfd = dfd;
  w.res_fd = res[1];
  w.go_fd = go[0];
  w.dir = dir;
  w.serial = serial;
  w.prev = prev;
  w.st = &state;
  w.why_all = why_all;
  memset(w.program, 0, sizeof w.program);
  os_program_name(w.program, sizeof w.program);

  // The pages written since the last scan, protected again. Before the
  // hold, so that the pause does not grow with the heap: what is written
  // from the scan to the copy of the process, the writer finds itself
  // (dirty_late). The registry lock keeps the pools from opening and
  // closing meanwhile.
  uint64_t need = 0;
  if (why_all != DIRTY_ASKED) {
    heap_registry_lock();
    dirty_scan();
    if (why_all == DIRTY_OK && !cskip) need = capture_need(&climit);
    else if (why_all == DIRTY_OK) cskip--;
    heap_registry_unlock();
  }
  if (need && capture_room(need, climit) != 0) need = 0;
  uint64_t t0 = os_now_ns();
  pool_hold_all();
  if (snapshot_at_hold) snapshot_at_hold();
  // The replaced manifest is this process's: its images that the new one
  // does not name are kept hidden, for whole rewrites in place.
  w.ours = state.valid;
  if (need && capture(&w)) {
    pool_unhold_all();
    uint64_t pause = os_now_ns() - t0;
    *pause_out = pause;
    os_close(res[0]);
    os_close(res[1]);
    os_close(go[0]);
    os_close(go[1]);
    writer_finish(&w, 0, pause, (uint64_t)os_getpid());
    vmmap_purge_lazy((uintptr_t)cbuf, ccap);
    *msg = w.msg;
    msg->captured = 1;
    return said_by_writer(msg);
  }
  struct mmpool *nocopy = missing_copy();
  int pid = nocopy ? -ENOMEM : os_spawn_quiet();
  if (pid == 0) {
    os_close(res[0]);
    os_close(go[1]);
    writer_run(&w);
  }
  pool_unhold_all();
  uint64_t pause = os_now_ns() - t0;
  *pause_out = pause;
  os_close(res[1]);
  os_close(go[0]);
  if (pid < 0) {
    os_close(res[0]);
    os_close(go[1]);
    if (nocopy)
      return log_fail(ENOMEM, "snapshot: no memory to copy the shared file "
                      "pool '%s' at the snapshot's instant", nocopy->name);
    return log_fail(-pid, "snapshot: cannot start the writer: %s",
                    os_strerror(-pid, eb, sizeof eb));
  }
  uint64_t ppid = (uint64_t)os_getpid();
  os_send_all(go[1], &pause, sizeof pause);
  os_send_all(go[1], &ppid, sizeof ppid);
  os_close(go[1]);
  long n = os_read(res[0], msg, sizeof *msg);
  os_close(res[0]);
  int status = 0;
  // A writer that said its word has synced everything and only exits: the
  // teardown of its copy of the address space (19 ms at 1 GiB of 4 KiB
  // pages) is not waited for; the next snapshot reaps it.
  if (n == (long)sizeof *msg)
    writer_left[slot] = pid, writer_owner = os_getpid();
  else
    os_wait_quiet(pid, &status);
  if (n != (long)sizeof *msg) {
    // Killed (or it died) before it could say: nothing was renamed unless
    // it got that far, and either way a manifest and its images stand.
    int sig = status & 0x7f;
    if (sig)
      return log_fail(EIO, "snapshot into %s: the writer was killed by "
                      "signal %d; the previous snapshot stands", dir, sig);
    return log_fail(EIO, "snapshot into %s: the writer ended without a "
                    "word (status %d); the previous snapshot stands", dir,
                    (status >> 8) & 0xff);
  }
  return said_by_writer(msg);
}

// Why this snapshot cannot write deltas (a DIRTY_* reason for every
// pool), or DIRTY_OK. The directory's manifest must be the one this
// process put there last, in the same directory; otherwise what is known
// of it is forgotten and the next snapshot is whole. pre: busy_pid.
RARE static int pick(int dfd, const struct snap_manifest *old) {
  int on = __atomic_load_n(&incremental_on, __ATOMIC_RELAXED);
  struct os_stat st;
  if (os_file_stat(dfd, &st) != 0) st.dev = st.ino = 0;
  if (!state.valid || !old || st.dev != set_dev || st.ino != set_ino ||
      old->serial != state.m.serial || old->checksum != state.m.checksum) {
    state_forget();
    set_dev = st.dev;
    set_ino = st.ino;
    return on ? DIRTY_NO_SET : DIRTY_ASKED;
  }
  if (!on) return DIRTY_ASKED;
  return state.tracked ? DIRTY_OK : DIRTY_NO_SET;
}

// After a snapshot was written over old (this process's when state is
// valid) and its manifest put in place: the state follows it (the files
// as written, the spares as the writer's sweep left them: spare_stays),
// and the dirty maps start empty. With snapshot-incremental=no nothing is
// tracked (the next snapshot after it is back on is whole), but the
// spares are kept, for whole rewrites in place. pre: busy_pid.
RARE static void state_written(int dfd, const char *dir, int why_all,
                               const struct snap_manifest *old,
                               const struct snap_msg *msg) {
  static struct snap_manifest nm;
  static struct snap_state next;
  if (read_manifest(dfd, dir, &nm) != 1 || nm.npools != msg->pools) {
    state_forget();  // not what was written: start over
    return;
  }
  int ours = state.valid;
  memset(&next, 0, sizeof next);
  for (uint32_t i = 0; ours && old && i < old->npools; i++)
    if (spare_stays(&state, old, ours, &nm, old->pool[i].file)) {
      struct spare *s = &next.spare[next.nspare++];
      memcpy(s->name, old->pool[i].name, sizeof s->name);
      memcpy(s->file, old->pool[i].file, sizeof s->file);
      s->id = state.image[i];
    }
  for (uint32_t k = 0; ours && k < state.nspare; k++)
    if (spare_stays(&state, old, ours, &nm, state.spare[k].file) &&
        next.nspare < 2 * MMPOOL_MAX_POOLS)
      next.spare[next.nspare++] = state.spare[k];
  for (uint32_t i = 0; i < nm.npools; i++) {
    next.last[i] = msg->id[i];
    next.image[i] = msg->id[i];
    if ((nm.pool[i].how & 0xff) != SNAP_HOW_INCREMENTAL) continue;
    // A delta: the image is the one the manifest replaced named.
    for (uint32_t k = 0; ours && old && k < old->npools; k++)
      if (!strcmp(old->pool[k].file, nm.pool[i].file))
        next.image[i] = state.image[k];
  }
  memcpy(&next.m, &nm, sizeof nm);
  next.valid = 1;
  next.tracked = why_all != DIRTY_ASKED;
  memcpy(&state, &next, sizeof state);
  if (state.tracked) dirty_taken(0);
}

// A failed snapshot touched no file of the manifest in place, so what is
// known stays (a spare it consumed is found missing next time), and so do
// the dirty maps (they still count from that manifest's instant). When the
// new manifest is in place all the same (only the directory's sync
// failed), everything is forgotten. pre: busy_pid.
RARE static void state_lost(int placed) {
  if (placed) {
    state_forget();
    dirty_lost(0);
  }
}

// The line a snapshot leaves: at info level, unless an incremental
// snapshot was possible and the writer had to write an image whole (a
// failure of the tracking, an image changed behind our back), or the
// kernel refuses the tracking (said once): then a warning.
RARE static void said(const char *dir, uint64_t serial,
                      const struct snap_msg *msg, uint64_t pause) {
  static int kernel_said;
  char sz[32], all[32], how[200];
  fmt_size(sz, sizeof sz, msg->bytes);
  fmt_size(all, sizeof all, msg->image_bytes);
  int why = (int)msg->why_full;
  if (msg->incremental && msg->incremental == msg->pools)
    fmt_format(how, sizeof how, "incremental: %s written of %s", sz, all);
  else if (msg->incremental)
    fmt_format(how, sizeof how, "incremental for %u of %u pools: %s written "
               "of %s; the others whole: %s", msg->incremental, msg->pools,
               sz, all, dirty_why_text(why));
  else
    fmt_format(how, sizeof how, "full, %s: %s", sz, dirty_why_text(why));
  int level = LOG_INFO;
  if (why == DIRTY_LOST || why == DIRTY_CHANGED) level = LOG_WARN;
  if (why == DIRTY_KERNEL && !kernel_said) level = LOG_WARN, kernel_said = 1;
  log_print(level, "snapshot %llu of %u pools written to %s (%s; pause %llu "
            "us)", (unsigned long long)serial, msg->pools, dir, how,
            (unsigned long long)(pause / 1000));
}

RARE int snapshot_take(const char *dir) {
  if (!dir || !*dir) return log_fail(EINVAL, "snapshot: no directory given");
  // From a signal handler that interrupted the allocator in this thread:
  // the instant cannot be had (this thread's own operation is half done,
  // or it holds a lock the hold needs).
  if (tl_fast.inside || tl_locks)
    return log_fail(EDEADLK, "snapshot: called from inside the allocator "
                    "(a signal handler?): no snapshot");
  if (snap_begin())
    return log_fail(EBUSY, "snapshot: another snapshot of this process is "
                    "being taken");
  static struct snap_manifest old;  // under busy_pid
  int r = 0;
  int claimed = claim_fd >= 0 && strcmp(dir, claim_dir) == 0;
  int dfd = claimed ? claim_fd : open_dir(dir);
  if (dfd < 0) r = dfd;
  else if (!claimed) __atomic_store_n(&snap_dfd, dfd, __ATOMIC_RELEASE);
  int have_old = 0;
  if (!r) {
    have_old = read_manifest(dfd, dir, &old);
    if (have_old < 0) r = have_old;
  }
  uint64_t pause = 0;
  static struct snap_msg msg;  // under busy_pid
  memset(&msg, 0, sizeof msg);
  uint64_t serial = have_old > 0 ? old.serial + 1 : 1;
  int why_all = DIRTY_OK;
  if (!r) why_all = pick(dfd, have_old > 0 ? &old : NULL);
  if (!r)
    r = take(dir, dfd, serial, have_old > 0 ? &old : NULL, why_all, &pause,
             &msg);
  if (!r) state_written(dfd, dir, why_all, have_old > 0 ? &old : NULL, &msg);
  else state_lost(msg.placed);
  if (!claimed && dfd >= 0 &&
      __atomic_exchange_n(&snap_dfd, -1, __ATOMIC_ACQ_REL) >= 0)
    os_close(dfd);
  if (r) {
    stats.failed++;
  } else {
    stats.taken++;
    stats.bytes += msg.bytes;
    stats.pause_last_ns = pause;
    stats.pause_total_ns += pause;
    if (pause > stats.pause_max_ns) stats.pause_max_ns = pause;
    stats.last_incremental = msg.incremental != 0;
    stats.last_bytes = msg.bytes;
    stats.last_image_bytes = msg.image_bytes;
    if (msg.captured) stats.captured++;
    if (msg.incremental) {
      stats.incremental++;
      stats.bytes_incremental += msg.bytes;
    }
    last_err = 0;
    said(dir, serial, &msg, pause);
  }
  snap_end();
  return r;
}

RARE int snapshot_entry_check(const struct snap_entry *e, struct mmpool *p,
                              int moved) {
  // Attached: its generation and header checksum are this open's.
  const char *bad = snap_entry_differs(e, p->hdr, 0, moved);
  if (bad)
    return log_fail(EUCLEAN, "snapshot: the image %s of pool '%s' is not "
                    "the one its manifest names (its %s differs)", e->file,
                    e->name, bad);
  return 0;
}

// ---------------------------------------------------------------------------
// Reading an image of a snapshot

RARE int snapshot_image_open(struct inspect *in, const char *dir,
                             const struct snap_manifest *m, uint32_t i,
                             char *why, size_t why_len) {
  return snapshot_image_open_as(in, dir, m, i, 0, why, why_len);
}

RARE int snapshot_image_open_as(struct inspect *in, const char *dir,
                                const struct snap_manifest *m, uint32_t i,
                                unsigned flags, char *why, size_t why_len) {
  static char paths[1 + SNAP_CHAIN_MAX][4200];
  static const char *dp[SNAP_CHAIN_MAX];
  const struct snap_entry *e = &m->pool[i];
  const struct snap_chain *c = &m->chain[i];
  uint32_t n = c->n <= SNAP_CHAIN_MAX ? c->n : SNAP_CHAIN_MAX;
  fmt_format(paths[0], sizeof paths[0], "%s/%s", dir, e->file);
  for (uint32_t j = 0; j < n; j++) {
    char name[SNAP_FILE_MAX];
    snap_delta_name(name, sizeof name, e->name, c->serial[j]);
    fmt_format(paths[1 + j], sizeof paths[1 + j], "%s/%s", dir, name);
    dp[j] = paths[1 + j];
  }
  char w[400];
  int r = inspect_open_deltas(in, paths[0], n, dp, flags, w, sizeof w);
  if (r) {
    fmt_format(why, why_len, "%s: %s", paths[0], w);
    return r;
  }
  const char *bad = snap_entry_differs(e, &in->hdr, in->file_size, 0);
  if (bad) {
    fmt_format(why, why_len, "%s%s: its %s is not what the manifest says: "
               "the image is not the one of this snapshot", paths[0],
               n ? " with its deltas" : "", bad);
    inspect_close(in);
    return -EUCLEAN;
  }
  return 0;
}

// ---------------------------------------------------------------------------
// Restore with relocation

// 1 when no mapping of this process overlaps [base, base + len).
RARE static int range_free(uint64_t base, uint64_t len) {
  for (uint64_t a = base; a < base + len; a += POOL_BASE_ALIGN)
    if (vmmap_pool_id(a)) return 0;
  return os_find_mapping(base, len, NULL, NULL, 0) == 0;
}

RARE static uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) & ~(a - 1);
}

// A free range of len bytes, aligned to align, in the window base=auto
// uses, not overlapping the ranges [lo[i], hi[i]): its base, or 0.
RARE static uint64_t free_base(uint64_t len, uint64_t align, const uint64_t *lo,
                               const uint64_t *hi, unsigned n) {
  uint64_t b = align_up(VM_AUTO_START, align);
  while (b + len <= VM_AUTO_END) {
    uint64_t next = 0;
    for (unsigned i = 0; i < n && !next; i++)
      if (b < hi[i] && lo[i] < b + len) next = align_up(hi[i], align);
    for (uint64_t a = b; !next && a < b + len; a += POOL_BASE_ALIGN)
      if (vmmap_pool_id(a)) next = align_up(a + POOL_BASE_ALIGN, align);
    uintptr_t end = 0;
    if (!next && os_find_mapping(b, len, &end, NULL, 0) == 1)
      next = align_up(end, align);
    if (!next) return b;
    b = next;
  }
  return 0;
}

// Whether entry i's deltas can be applied at attach (pool.c,
// attach_chain): the image and each delta after it never shorter than the
// one before. Only a look at their sizes: attach checks them whole.
RARE static int chain_attachable(int dfd, const struct snap_manifest *m,
                                 uint32_t i) {
  const struct snap_chain *c = &m->chain[i];
  char name[SNAP_FILE_MAX];
  struct os_stat st;
  int fd = os_open_at(dfd, m->pool[i].file, O_RDONLY, 0);
  int ok = fd >= 0 && !os_file_stat(fd, &st) && c->n <= SPEC_DELTAS_MAX;
  uint64_t len = ok ? st.size : 0;
  if (fd >= 0) os_close(fd);
  for (uint32_t j = 0; ok && j < c->n; j++) {
    struct delta_header dh;
    snap_delta_name(name, sizeof name, m->pool[i].name, c->serial[j]);
    fd = os_open_at(dfd, name, O_RDONLY, 0);
    ok = fd >= 0 && !os_pread_full(fd, &dh, sizeof dh, 0) && dh.length >= len;
    len = dh.length;
    if (fd >= 0) os_close(fd);
  }
  return ok;
}

RARE void snapshot_deltas(const char *dir, const struct snap_manifest *m,
                          uint32_t i, struct pool_deltas *d,
                          char (*names)[SNAP_FILE_MAX]) {
  const struct snap_chain *c = &m->chain[i];
  d->dir = dir;
  d->n = c->n <= SPEC_DELTAS_MAX ? c->n : 0;
  for (uint32_t j = 0; j < d->n; j++) {
    snap_delta_name(names[j], SNAP_FILE_MAX, m->pool[i].name, c->serial[j]);
    d->names[j] = names[j];
  }
}

RARE int snapshot_relocated(const char *dir, const struct snap_manifest *m,
                            int relocate, int trust_any,
                            char (*files)[SNAP_FILE_MAX], uint64_t *changed) {
  // What is copied is attached: the files are held to the attach rules.
  unsigned tf = INSPECT_TRUSTED | (trust_any ? INSPECT_ANY_OWNER : 0);
  static struct inspect in;  // 8 KiB aligned
  static struct reloc_range set[MMPOOL_MAX_POOLS];
  static uint64_t lo[MMPOOL_MAX_POOLS], hi[MMPOOL_MAX_POOLS];
  char why[400], path[4200], eb[32];
  unsigned moved = 0, chained = 0;
  *changed = 0;
  for (uint32_t i = 0; i < MMPOOL_MAX_POOLS; i++) files[i][0] = 0;
  // New bases: a pool whose range is free stays; another goes to a free
  // range (away from every range kept or chosen).
  for (uint32_t i = 0; i < m->npools; i++) {
    const struct snap_entry *e = &m->pool[i];
    set[i].old_base = e->base;
    set[i].old_end = e->base + e->length;
    set[i].new_base = e->base;
    lo[i] = e->base;
    hi[i] = e->base + e->capacity;
  }
  for (uint32_t i = 0; i < m->npools; i++) {
    const struct snap_entry *e = &m->pool[i];
    chained += m->chain[i].n > 0;
    if (!relocate || range_free(e->base, e->capacity)) continue;
    int r = snapshot_image_open_as(&in, dir, m, i, tf, why, sizeof why);
    if (r) return log_fail(-r, "relocate: %s", why);
    uint64_t align = in.hdr.st.align_max > POOL_BASE_ALIGN
                         ? in.hdr.st.align_max
                         : POOL_BASE_ALIGN;
    inspect_close(&in);
    uint64_t nb = free_base(e->capacity, align, lo, hi, m->npools);
    if (!nb)
      return log_fail(ENOMEM, "relocate: no free range of %llu bytes for "
                      "pool '%s'", (unsigned long long)e->capacity, e->name);
    set[i].new_base = nb;
    lo[i] = nb;
    hi[i] = nb + e->capacity;
    moved++;
  }
  if (!moved && !chained) return 0;
  int dfd = os_open_nolinks(dir, O_RDONLY | O_DIRECTORY, 0);
  if (dfd < 0)
    return log_fail(-dfd, "relocate: cannot open %s: %s", dir,
                    os_strerror(-dfd, eb, sizeof eb));
  int r = 0;
  uint32_t made = 0;
  for (uint32_t i = 0; i < m->npools && !r; i++) {
    const struct snap_entry *e = &m->pool[i];
    // Every pool when some moved (their pointers into the moved ones
    // change); else the images with deltas that attach cannot apply.
    if (!moved && (!m->chain[i].n || chain_attachable(dfd, m, i))) continue;
    fmt_format(path, sizeof path, "%s/%s", dir, e->file);
    r = snapshot_image_open_as(&in, dir, m, i, tf, why, sizeof why);
    if (r) {
      r = log_fail(-r, "%s: %s", moved ? "relocate" : "restore", why);
      break;
    }
    r = reloc_check(&in, set[i].new_base, why, sizeof why);
    if (r) {
      inspect_close(&in);
      r = log_fail(-r, "relocate: %s: %s", path, why);
      break;
    }
    fmt_format(files[i], SNAP_FILE_MAX, ".relocated-%d-%u.pool", os_getpid(),
               i);
    os_unlink_at(dfd, files[i]);
    int fd = os_open_at(dfd, files[i], O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
      inspect_close(&in);
      r = log_fail(-fd, "relocate: cannot create %s/%s: %s", dir, files[i],
                   os_strerror(-fd, eb, sizeof eb));
      break;
    }
    made = i + 1;
    uint64_t n = 0;
    // Not moved at all: the words stay (new_base is the old one, and so is
    // every other pool's).
    // A temporary copy, attached and removed: no fsync.
    r = reloc_write(&in, set, m->npools, set[i].new_base, fd, 0, &n, why,
                    sizeof why);
    os_close(fd);
    inspect_close(&in);
    if (r) r = log_fail(-r, "relocate: %s/%s: %s", dir, files[i], why);
    *changed += n;
  }
  if (r)
    for (uint32_t i = 0; i < made; i++)
      if (files[i][0]) os_unlink_at(dfd, files[i]);
  if (r)
    for (uint32_t i = 0; i < MMPOOL_MAX_POOLS; i++) files[i][0] = 0;
  os_close(dfd);
  return r ? r : (int)moved;
}

RARE void snapshot_relocated_drop(const char *dir, uint32_t n,
                                  char (*files)[SNAP_FILE_MAX]) {
  if (n > MMPOOL_MAX_POOLS) n = MMPOOL_MAX_POOLS;
  uint32_t any = 0;
  for (uint32_t i = 0; i < n; i++) any |= files[i][0] != 0;
  if (!any || !dir) return;
  int dfd = os_open_nolinks(dir, O_RDONLY | O_DIRECTORY, 0);
  if (dfd < 0) return;
  for (uint32_t i = 0; i < n && i < MMPOOL_MAX_POOLS; i++)
    if (files[i][0]) os_unlink_at(dfd, files[i]);
  os_close(dfd);
}

RARE int snapshot_claim(const char *dir) {
  if (!dir || !*dir) return log_fail(EINVAL, "snapshot: no directory given");
  if (strlen(dir) >= sizeof claim_dir)
    return log_fail(ENAMETOOLONG, "snapshot: directory path too long");
  if (snap_begin())
    return log_fail(EBUSY, "snapshot: a snapshot is being taken");
  int fd = open_dir(dir);
  if (fd >= 0) {
    if (claim_fd >= 0) os_close(claim_fd);
    memcpy(claim_dir, dir, strlen(dir) + 1);
    claim_fd = fd;
  }
  snap_end();
  return fd < 0 ? fd : 0;
}

RARE void snapshot_reap_writers(void) {
  // A vfork child shares these words with its parent, whose children
  // they are; a snapshot being taken is left alone.
  if (writer_owner != os_getpid() || snap_begin()) return;
  for (int k = 0; k < WRITERS_LEFT; k++)
    if (writer_left[k] > 0) {
      int st = 0;
      os_wait_quiet(writer_left[k], &st);
      writer_left[k] = 0;
    }
  snap_end();
}

RARE int snapshot_failed_once(int err) {
  int was = last_err;
  last_err = err;
  return was != err;
}
