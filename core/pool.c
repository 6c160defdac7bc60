// pool.c: pool lifecycle: open, create and attach files, close, fork.
//
// The handle table is process-local; a pool's own state is in its mapping.
// Opening a file pool is the one place where outside bytes enter the engine:
// the header is read with pread and validated field by field before the file
// is mapped; a clean file's descriptors are then checked one span at a time,
// on first use (page.c, "Lazy attach"), and each slab's blocks before this
// process first uses the slab (page_slab_sound), so that attach costs the
// same for any size of file. A pool file is locked (flock) while
// attached: exclusively for mode=shared, shared for mode=private.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/single_threaded.h>
#include <sys/stat.h>

#include "delta.h"
#include "fmt.h"
#include "heap.h"
#include "log.h"
#include "os.h"
#include "page.h"
#include "pool.h"
#include "vmmap.h"

static unsigned default_id;
static unsigned last_id;
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;

static int name_valid(const char *name) {
  if (!name) return 0;
  size_t i = 0;
  for (; name[i]; i++) {
    char c = name[i];
    if (i >= MMPOOL_NAME_MAX ||
        !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return 0;
  }
  return i > 0;
}

// pre: registry lock.
static struct mmpool *find_name(const char *name) {
  for (unsigned i = 1; i <= MMPOOL_MAX_POOLS; i++)
    if (pool_table[i].state == POOL_OPEN &&
        strcmp(pool_table[i].name, name) == 0)
      return &pool_table[i];
  return NULL;
}

struct mmpool *pool_by_name(const char *name) {
  heap_registry_lock();
  struct mmpool *p = name ? find_name(name) : NULL;
  heap_registry_unlock();
  return p;
}

static uint64_t round_cap(uint64_t size) {
  return (size + PAGE_BYTES - 1) & ~(uint64_t)(PAGE_BYTES - 1);
}

// Points the handle's fast fields at a mapped pool.
static void bind(struct mmpool *p, uintptr_t base) {
  struct poolfile_header *h = (struct poolfile_header *)base;
  p->hdr = h;
  p->base = base;
  p->capacity = h->capacity;
  p->data = base + h->data_off;
  p->desc = (struct pdesc *)(base + h->desc_off);
  p->meta_mapped = h->st.meta_committed;
  // fast_len stays 0 until the caller says what may be trusted.
  __atomic_store_n(&p->data_len, h->st.length - h->data_off, __ATOMIC_RELEASE);
}

// Reserves the start of a pool's range (docs/engine.md, "Address space"):
// its header and page descriptors, what is mapped at once (up to `end`
// bytes from the base) and 2 MiB to grow into, or VM_FIRST when that is
// more; never more than the capacity.
// When the kernel refuses (RLIMIT_AS), less is taken, down to end, and one
// warning says so.
static int reserve(struct mmpool *p, uintptr_t base, uint64_t cap,
                   uint64_t end, uintptr_t *got, const char *what) {
  char why[384];
  // A pool of our own in the way: name it (the maps line would not).
  for (unsigned i = 1; base && i <= MMPOOL_MAX_POOLS; i++) {
    struct mmpool *q = &pool_table[i];
    if (q->state == POOL_OPEN && base < q->base + q->capacity &&
        q->base < base + cap)
      return log_fail(EEXIST, "pool '%s': cannot %s: the range 0x%lx-0x%lx "
                      "is occupied by pool '%s' (0x%lx-0x%lx) of this "
                      "process", p->name, what, (unsigned long)base,
                      (unsigned long)(base + cap), q->name,
                      (unsigned long)q->base,
                      (unsigned long)(q->base + q->capacity));
  }
  uint64_t hdr_off, data_off, npages;
  poolfile_layout(cap, &hdr_off, &data_off, &npages);
  if (end < data_off + PAGE_BYTES) end = data_off + PAGE_BYTES;
  // At least: what is mapped, and room for a first growth (2 MiB).
  uint64_t min = (end + ((uint64_t)2 << 20) + PAGE_BYTES - 1) &
                 ~(uint64_t)(PAGE_BYTES - 1);
  if (min > cap) min = cap;
  uint64_t first = min > VM_FIRST ? min : VM_FIRST;
  if (first > cap) first = cap;
  size_t len = 0;
  int r = vmmap_reserve_pool(p->id, base, cap, first, min, got, &len, why,
                             sizeof why);
  if (r) return log_fail(-r, "pool '%s': cannot %s: %s", p->name, what, why);
  __atomic_store_n(&p->reserved, len, __ATOMIC_RELEASE);
  if (p->thp) vmmap_advise_huge(*got, len);
  if (len < first) {
    char a[32], b[32], c[32];
    uint64_t as = os_as_limit();
    fmt_size(a, sizeof a, len);
    fmt_size(b, sizeof b, cap);
    fmt_size(c, sizeof c, first);
    if (as)
      log_print(LOG_WARN, "pool '%s': RLIMIT_AS is %llu KiB: reserved %s of "
                "its %s", p->name, (unsigned long long)(as >> 10), a, b);
    else
      log_print(LOG_WARN, "pool '%s': the kernel refused %s of address "
                "space: reserved %s of its %s", p->name, c, a, b);
  }
  return 0;
}

// ---------------------------------------------------------------------------
// Anonymous pools

// The fields of a new header that poolfile_init leaves to the caller: the
// first generation, the creation time and the lineage's uuid.
static void stamp_new(struct poolfile_header *h) {
  h->generation = 1;
  h->created = os_time();
  os_random(h->uuid, sizeof h->uuid);
  h->st.length = h->data_off;
  poolfile_seal(h);
}

// The clean mark, with what it vouches for: the metadata checksum and the
// time. pre: no thread changes the pool's metadata. The checksum covers
// the descriptors only (POOLFILE_COMPAT_META_DESC): hashing the slabs'
// slack arrays too made a close cost in proportion to the heap, read every
// slab, and kept the other threads frozen meanwhile.
static void mark_clean(struct poolfile_header *h) {
  h->feature_compat |= POOLFILE_COMPAT_META_DESC;
  h->meta_checksum = poolfile_meta_hash(h);
  h->closed = os_time();
  h->flags |= POOLFILE_CLEAN;
  poolfile_seal(h);
}

static int open_anon(struct mmpool *p, const struct pool_spec *sp) {
  uint64_t cap = round_cap(sp->size);
  uintptr_t base;
  int r = reserve(p, sp->base, cap, 0, &base, "reserve its address range");
  if (r) return r;
  r = vmmap_commit(base, POOLFILE_HEADER_SIZE);
  if (r) {
    vmmap_release(base);
    return log_fail(-r, "pool '%s': cannot commit its header", p->name);
  }
  char label[64];
  fmt_format(label, sizeof label, "mmpool:%s", p->name);
  os_name_range(base, p->reserved, label);
  struct poolfile_header *h = (struct poolfile_header *)base;
  poolfile_init(h, p->name, base, cap);
  stamp_new(h);
  bind(p, base);
  page_fast_sync(p);
  return 0;
}

// ---------------------------------------------------------------------------
// File pools

static int file_fail(struct mmpool *p, int err, const char *why) {
  return log_fail(err, "pool '%s': %s: %s", p->name, p->path, why);
}

// A new pool in an empty file: header page, and a size that covers the
// (sparse, never touched) descriptor range up to the first data page.
RARE static int create_file(struct mmpool *p, const struct pool_spec *sp) {
  uint64_t cap = round_cap(sp->size);
  uintptr_t base;
  int r = reserve(p, sp->base, cap, 0, &base, "reserve its address range");
  if (r) return r;
  struct poolfile_header tmp;
  poolfile_init(&tmp, p->name, base, cap);
  char eb[32];
  if ((r = os_allocate(p->fd, 0, POOLFILE_HEADER_SIZE)) ||
      (r = os_truncate(p->fd, tmp.data_off)) ||
      (r = vmmap_map_file(base, POOLFILE_HEADER_SIZE, p->fd, 0, 1))) {
    vmmap_release(base);
    os_truncate(p->fd, 0);
    return file_fail(p, -r, os_strerror(-r, eb, sizeof eb));
  }
  struct poolfile_header *h = (struct poolfile_header *)base;
  *h = tmp;
  stamp_new(h);
  bind(p, base);
  page_fast_sync(p);
  return 0;
}

// Maps a validated file's header and descriptors, and its data, over the
// pool's reservation (replacing an earlier mapping of the same range).
static int map_file_pool(struct mmpool *p, uintptr_t base,
                         const struct poolfile_header *hb, int shared) {
  uint64_t meta = hb->desc_off + hb->st.meta_committed;
  uint64_t data = hb->st.length - hb->data_off;
  int r;
  if (shared) {
    // Blocks for every page a store may reach: a copied file may be sparse,
    // and a write fault into a hole on a full disk is SIGBUS (page_grow
    // allocates before it maps, for the same reason). Allocated ranges cost
    // nothing; a file system without fallocate is left as it is.
    r = os_allocate(p->fd, 0, meta);
    if (!r && data) r = os_allocate(p->fd, hb->data_off, data);
    if (r && r != -EOPNOTSUPP) return r;
  }
  r = vmmap_map_file(base, meta, p->fd, 0, shared);
  if (!r && data)
    r = vmmap_map_file(base + hb->data_off, data, p->fd, hb->data_off, shared);
  return r;
}

// The checks of a mapped file's metadata (docs/pool-file-format.md, "What
// attach validates"). A clean file's descriptors are checked when this
// process first uses each span, and each slab's blocks when it first uses
// the slab (page.c, "Lazy attach"), so that attach reads no descriptor and
// no data page; nor is the metadata checksum verified: 'mmpool check FILE'
// does that. A file not closed cleanly is repaired, then checked whole
// (*lazy 0).
static int check_mapped(struct mmpool *p, int unclean, int *lazy, char *why,
                        size_t why_len) {
  int r;
  *lazy = 0;
  if (unclean) {
    r = page_repair(p, why, why_len);
    return r ? r : page_check(p, why, why_len);
  }
  if (page_lazy_begin(p) == 0) {
    *lazy = 1;
    return 0;
  }
  // No memory for the record of checked pages: all of them now.
  return page_check(p, why, why_len);
}

// Why a file (its stat) may not be attached: the trust model of
// check_trust below, for the image's deltas too. NULL when it may.
static const char *distrust(const struct pool_spec *sp,
                            const struct os_stat *st) {
  return poolfile_distrust(st->uid, st->mode, os_geteuid(),
                           sp->trust == SPEC_TRUST_ANY);
}

// A snapshot's image with its deltas (sp->deltas, docs/snapshots.md
// "Restart"): the image mapped copy-on-write at its base, anonymous memory
// past its end, and each delta applied there in order (each checked whole
// before a byte of it is, delta_apply). Attach then costs the deltas, not
// a copy of the image. The header the last one wrote is checked as a
// file's of the length it makes. hb: the image's header, validated. 0 with
// the pool bound at *base_out and *lazy set, or a negative errno (said).
RARE static int attach_chain(struct mmpool *p, const struct pool_spec *sp,
                             const struct poolfile_header *hb, uint64_t size,
                             uintptr_t *base_out, int *lazy) {
  const struct pool_deltas *ds = sp->deltas;
  struct delta_header dh[SPEC_DELTAS_MAX];  // 2 KiB
  int fds[SPEC_DELTAS_MAX];
  uint32_t n = ds->n, opened = 0;
  char why[384], w[300], eb[32];
  if (n > SPEC_DELTAS_MAX || sp->mode != SPEC_PRIVATE || size < hb->data_off)
    return file_fail(p, EINVAL, "deltas apply to an image attached with "
                     "mode=private");
  int dfd = os_open_nolinks(ds->dir, O_RDONLY | O_DIRECTORY, 0);
  if (dfd < 0) {
    fmt_format(why, sizeof why, "cannot open %s: %s", ds->dir,
               os_strerror(-dfd, eb, sizeof eb));
    return file_fail(p, -dfd, why);
  }
  // Every delta's header first: the length the chain makes, never shorter
  // along it (the image's file maps the start, memory the rest).
  uint64_t final = size;
  int r = 0;
  for (uint32_t k = 0; k < n && !r; k++) {
    int fd = os_open_at(dfd, ds->names[k], O_RDONLY, 0);
    struct os_stat st;
    r = fd < 0 ? fd : os_file_stat(fd, &st);
    if (fd >= 0) fds[opened++] = fd;
    w[0] = 0;
    const char *bad = r ? NULL : distrust(sp, &st);  // as the image's
    if (!r && !st.is_regular)
      r = -EINVAL, fmt_format(w, sizeof w, "not a regular file");
    else if (bad)
      r = -EACCES, fmt_format(w, sizeof w, "owner uid %u, mode %04o: %s",
                              (unsigned)st.uid, (unsigned)(st.mode & 07777),
                              bad);
    if (!r && st.size < sizeof dh[k])
      r = -ENOEXEC, fmt_format(w, sizeof w, "not an mmpool snapshot delta");
    if (!r) r = os_pread_full(fd, &dh[k], sizeof dh[k], 0);
    if (!r) r = delta_check_header(&dh[k], st.size, w, sizeof w);
    if (!r && (dh[k].length < final || dh[k].length > hb->capacity))
      r = -EUCLEAN, fmt_format(w, sizeof w, "makes an image of %llu bytes, "
                               "after one of %llu (capacity %llu)",
                               (unsigned long long)dh[k].length,
                               (unsigned long long)final,
                               (unsigned long long)hb->capacity);
    if (!r) final = dh[k].length;
    if (r && !w[0])
      fmt_format(w, sizeof w, "%s", os_strerror(-r, eb, sizeof eb));
    if (r) fmt_format(why, sizeof why, "delta %s/%s: %s", ds->dir,
                      ds->names[k], w);
  }
  os_close(dfd);
  uintptr_t base = 0;
  if (!r) {
    fmt_format(w, sizeof w, "attach %s at its base", p->path);
    r = reserve(p, hb->base, hb->capacity, final, &base, w);
    if (r) {
      while (opened) os_close(fds[--opened]);
      return r;
    }
    // The header and every descriptor the file has room for, the data it
    // holds, memory past its end.
    r = vmmap_map_file(base, hb->data_off, p->fd, 0, 0);
    if (!r && size > hb->data_off)
      r = vmmap_map_file(base + hb->data_off, size - hb->data_off, p->fd,
                         hb->data_off, 0);
    if (!r && final > size) r = vmmap_commit(base + size, final - size);
    if (r) fmt_format(why, sizeof why, "cannot map it: %s",
                      os_strerror(-r, eb, sizeof eb));
  }
  uint64_t len = size;
  for (uint32_t k = 0; k < n && !r; k++) {
    r = delta_apply(fds[k], &dh[k], (char *)base, final, &len, w, sizeof w);
    if (r) fmt_format(why, sizeof why, "delta %s/%s: %s", ds->dir,
                      ds->names[k], w);
  }
  while (opened) os_close(fds[--opened]);
  const struct poolfile_header *h = (const struct poolfile_header *)base;
  if (!r) {
    r = poolfile_validate(h, final, w, sizeof w);
    if (!r && (h->base != hb->base || h->capacity != hb->capacity ||
               h->uuid[0] != hb->uuid[0] || h->uuid[1] != hb->uuid[1] ||
               h->desc_off != hb->desc_off || h->data_off != hb->data_off ||
               h->st.length != final))
      r = -EUCLEAN, fmt_format(w, sizeof w, "its deltas make a header of "
                               "another pool, or of another length");
    if (!r && !(h->flags & POOLFILE_CLEAN))
      r = -EUCLEAN, fmt_format(w, sizeof w, "its deltas make an image not "
                               "closed cleanly");
    if (r) fmt_format(why, sizeof why, "with its deltas applied: %s", w);
  }
  if (!r) {
    bind(p, base);
    if ((r = check_mapped(p, 0, lazy, w, sizeof w)) != 0)
      fmt_format(why, sizeof why, "with its deltas applied, damaged "
                 "metadata: %s", w);
  }
  if (r) {
    if (base) vmmap_release(base);
    p->hdr = NULL;
    p->data_len = 0;
    p->fast_len = 0;
    return file_fail(p, -r, why);
  }
  *base_out = base;
  return 0;
}

RARE static int attach_file(struct mmpool *p, const struct pool_spec *sp,
                            uint64_t size) {
  struct poolfile_header hb;
  char why[384];
  memset(&hb, 0, sizeof hb);
  int r = os_pread_full(p->fd, &hb, size < sizeof hb ? size : sizeof hb, 0);
  if (r) return file_fail(p, -r, "cannot read its header");
  r = poolfile_validate(&hb, size, why, sizeof why);
  if (r) return file_fail(p, -r, why);
  if (sp->size_set && round_cap(sp->size) != hb.capacity) {
    fmt_format(why, sizeof why, "its capacity is %llu bytes, not the size=%llu "
               "asked for", (unsigned long long)hb.capacity,
               (unsigned long long)sp->size);
    return file_fail(p, EINVAL, why);
  }
  if (sp->base && sp->base != hb.base) {
    fmt_format(why, sizeof why, "it is recorded at base 0x%llx, not 0x%llx "
               "(move it first: mmpool relocate FILE ADDR)",
               (unsigned long long)hb.base, (unsigned long long)sp->base);
    return file_fail(p, EINVAL, why);
  }
  if (poolfile_ro_unknown(&hb) && sp->mode != SPEC_PRIVATE) {
    fmt_format(why, sizeof why, "it uses features this build may read but "
               "not write (read-only-compatible bits 0x%x): open it with "
               "mode=private", poolfile_ro_unknown(&hb));
    return file_fail(p, EROFS, why);
  }
  if (!(hb.flags & POOLFILE_CLEAN) && !sp->recover)
    return file_fail(p, EUCLEAN, "not closed cleanly (did its process die?); "
                     "open it with the option 'recover' to check and attach "
                     "it");
  uintptr_t base;
  struct poolfile_header *h;
  int lazy = 0;
  if (sp->deltas) {
    r = attach_chain(p, sp, &hb, size, &base, &lazy);
    if (r) return r;
    h = (struct poolfile_header *)base;
    goto attached;
  }
  fmt_format(why, sizeof why, "attach %s at its base", p->path);
  uint64_t end = hb.st.length > hb.desc_off + hb.st.meta_committed
                     ? hb.st.length
                     : hb.desc_off + hb.st.meta_committed;
  r = reserve(p, hb.base, hb.capacity, end, &base, why);
  if (r) return r;
  // A file not closed cleanly is repaired before it is checked. The repair
  // first runs on a private (copy-on-write) mapping, so a file that is then
  // refused is left as it was; only a file that passes is mapped shared and
  // repaired for real (the repair is deterministic).
  int shared = sp->mode != SPEC_PRIVATE;
  int unclean = !(hb.flags & POOLFILE_CLEAN);
  h = (struct poolfile_header *)base;
  for (int pass = unclean && shared ? 0 : 1; pass < 2 && !r; pass++) {
    r = map_file_pool(p, base, &hb, pass == 0 ? 0 : shared);
    if (r) {
      r = file_fail(p, -r, "cannot map it");
      break;
    }
    bind(p, base);
    if (memcmp(h, &hb, sizeof hb) != 0) {
      r = file_fail(p, EAGAIN, "changed while it was being attached");
    } else if ((r = check_mapped(p, unclean, &lazy, why, sizeof why))) {
      char msg[420];
      fmt_format(msg, sizeof msg, "damaged metadata: %s", why);
      r = file_fail(p, EUCLEAN, msg);
    }
  }
  if (r) {
    vmmap_release(base);
    p->hdr = NULL;
    p->data_len = 0;
    p->fast_len = 0;
    return r;
  }
  if (!(h->flags & POOLFILE_CLEAN))
    log_print(LOG_WARN, "pool '%s': %s was not closed cleanly; its metadata "
              "checked sound, attached", p->name, p->path);
attached:
  if (!lazy) {
    page_detach_all(p);
    page_fast_sync(p);
  }
  h->generation++;
  h->flags &= ~POOLFILE_CLEAN;
  memset(h->name, 0, sizeof h->name);
  memcpy(h->name, p->name, strlen(p->name));
  poolfile_seal(h);
  return 0;
}

// The attach checks of the file's owner and mode (docs/pool-file-format.md,
// "Trust model"), made on the open descriptor before a byte is read: a file
// that others may write, or (unless trust=any) that another user owns, can
// hold anything, and attaching it would let its author steer this
// process's allocator. Root is no exception: it attaches root's files only.
static int check_trust(struct mmpool *p, const struct pool_spec *sp,
                       const struct os_stat *st) {
  uint32_t me = os_geteuid();
  const char *why = distrust(sp, st);
  if (!why) return 0;
  return log_fail(EACCES, "pool '%s': %s: owner uid %u, mode %04o, "
                  "effective uid %u: %s", p->name, p->path,
                  (unsigned)st->uid, (unsigned)(st->mode & 07777),
                  (unsigned)me, why);
}

// Opens the pool file, never through a symbolic link. A new file is made
// only by an O_EXCL open (mode 0600: the umask can only remove bits), so
// "created" means this open made it: an existing file, even an empty one,
// is attached, never initialised.
static int open_pool_fd(struct mmpool *p, int priv, int *created) {
  *created = 0;
  int fd = -EEXIST;
  if (!priv) {
    fd = os_open_nolinks(p->path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd >= 0) *created = 1;
  }
  if (fd == -EEXIST)
    fd = os_open_nolinks(p->path, priv ? O_RDONLY : O_RDWR, 0);
  return fd;
}

// The file's path from the pattern of file=: %p the process id, %e the
// program's name (/proc/self/comm), %% a '%', as in core_pattern; so that
// processes that inherit one configuration can each have their own file.
static int expand_path(struct mmpool *p, const char *in) {
  char *out = p->path;
  size_t n = 0, cap = sizeof p->path;
  for (; *in; in++) {
    char tmp[32];
    const char *add = tmp;
    if (*in != '%') {
      tmp[0] = *in, tmp[1] = 0;
    } else if (in[1] == 'p') {
      fmt_format(tmp, sizeof tmp, "%d", os_getpid());
      in++;
    } else if (in[1] == 'e') {
      if (os_program_name(tmp, sizeof tmp) <= 0)
        fmt_format(tmp, sizeof tmp, "unknown");
      for (char *c = tmp; *c; c++)  // a name is one path component
        if (*c == '/') *c = '_';
      in++;
    } else if (in[1] == '%') {
      tmp[0] = '%', tmp[1] = 0;
      in++;
    } else {
      return log_fail(EINVAL, "pool '%s': file=: unknown '%%%c' in the path "
                      "(%%p, %%e or %%%%)", p->name, in[1] ? in[1] : ' ');
    }
    size_t l = strlen(add);
    if (n + l >= cap)
      return log_fail(ENAMETOOLONG, "pool '%s': file=: the expanded path is "
                      "longer than %zu bytes", p->name, cap - 1);
    memcpy(out + n, add, l);
    n += l;
  }
  out[n] = 0;
  return 0;
}

static int open_file(struct mmpool *p, const struct pool_spec *sp) {
  int priv = sp->mode == SPEC_PRIVATE;
  char eb[32];
  int er = expand_path(p, sp->path);
  if (er) return er;
  int created, fd = open_pool_fd(p, priv, &created);
  if (fd == -ELOOP)
    return file_fail(p, ELOOP, "a component of the path is a symbolic link "
                     "(refused: pool files are opened without following "
                     "links)");
  if (fd < 0) return file_fail(p, -fd, os_strerror(-fd, eb, sizeof eb));
  p->fd = fd;
  p->is_file = 1;
  p->shared = !priv;
  struct os_stat st;
  memset(&st, 0, sizeof st);
  int r = os_file_stat(fd, &st);
  p->dev = st.dev;
  p->ino = st.ino;
  struct mmpool *twin = NULL;
  for (unsigned i = 1; !r && i <= MMPOOL_MAX_POOLS; i++)
    if (pool_table[i].state == POOL_OPEN && pool_table[i].is_file &&
        pool_table[i].dev == p->dev && pool_table[i].ino == p->ino)
      twin = &pool_table[i];
  if (r) {
    r = file_fail(p, -r, os_strerror(-r, eb, sizeof eb));
  } else if (!st.is_regular) {
    r = file_fail(p, EINVAL, "not a regular file");
  } else if ((r = check_trust(p, sp, &st)) != 0) {
  } else if (twin) {
    char msg[96];
    fmt_format(msg, sizeof msg, "is already attached in this process as "
               "pool '%s'", twin->name);
    r = file_fail(p, EBUSY, msg);
  } else if ((r = os_lock_file(fd, !priv)) != 0) {
    r = r == -EWOULDBLOCK
            ? file_fail(p, EBUSY, "is in use by another process")
            : file_fail(p, -r, os_strerror(-r, eb, sizeof eb));
  } else if (st.size == 0 && !created) {
    // Not ours to initialise: it may be another process's pool being
    // created, or a file someone placed there for us to fill.
    r = file_fail(p, priv ? ENOENT : EINVAL,
                  priv ? "is empty (mode=private attaches an existing pool "
                         "file)"
                       : "is empty and was not created by this open "
                         "(refused: an existing file is attached, never "
                         "initialised; remove it to create the pool)");
  } else {
    r = created ? create_file(p, sp) : attach_file(p, sp, st.size);
  }
  if (r) {
    // A file this open created and could not make a pool of goes again,
    // so that the next open creates it afresh instead of refusing it as
    // an empty file.
    if (created) os_unlink(p->path);
    os_close(fd);  // also drops the lock
    p->fd = -1;
  }
  return r;
}

// ---------------------------------------------------------------------------
// Open and close

int pool_open(const char *name, const struct pool_spec *sp,
              struct mmpool **out) {
  if (!name_valid(name))
    return log_fail(EINVAL, "bad pool name '%.60s' (1..%d characters of "
                    "[A-Za-z0-9_.-])", name ? name : "(null)",
                    MMPOOL_NAME_MAX);
  heap_init_once();
  heap_registry_lock();
  int r;
  unsigned id = 0;
  if (find_name(name)) {
    r = log_fail(EEXIST, "pool '%s' is already open", name);
    goto out;
  }
  // Round robin, so that a closed pool's slot is reused as late as possible.
  for (unsigned k = 1; k <= MMPOOL_MAX_POOLS && !id; k++) {
    unsigned i = (last_id + k - 1) % MMPOOL_MAX_POOLS + 1;
    if (pool_table[i].state == POOL_CLOSED) id = i;
  }
  if (!id) {
    r = log_fail(EMFILE, "too many pools open (at most %d)", MMPOOL_MAX_POOLS);
    goto out;
  }
  struct mmpool *p = &pool_table[id];
  uint32_t gen = p->gen;
  memset(p, 0, sizeof *p);
  pthread_mutex_init(&p->lock, NULL);
  p->id = id;
  p->gen = gen + 1;
  p->fd = -1;
  p->spec_full = sp->full;
  p->spec_brk = sp->brk;
  p->thp = sp->thp;
  memcpy(p->name, name, strlen(name) + 1);
  r = sp->file ? open_file(p, sp) : open_anon(p, sp);
  if (r == 0) {
    last_id = id;
    __atomic_store_n(&p->state, POOL_OPEN, __ATOMIC_RELEASE);
    __atomic_store_n(&p->handle, pool_handle_make(id, p->gen),
                     __ATOMIC_RELEASE);
    *out = p;
    log_print(LOG_INFO, "pool '%s' open at 0x%lx, capacity %llu%s%s", name,
              (unsigned long)p->base, (unsigned long long)p->capacity,
              p->is_file ? ", file " : "", p->is_file ? p->path : "");
  } else {
    p->base = p->data = 0;
    p->capacity = 0;
    p->reserved = 0;
  }
out:
  heap_registry_unlock();
  return r;
}

// Writes a shared file pool out. pre: p->lock.
static int sync_locked(struct mmpool *p) {
  if (!p->is_file || !p->shared || p->frozen) return 0;
  int r = vmmap_sync(p->base, p->hdr->desc_off + p->meta_mapped);
  if (!r && p->data_len) r = vmmap_sync(p->data, p->data_len);
  if (!r) r = os_fsync(p->fd);
  if (r) {
    char eb[32];
    return log_fail(-r, "pool '%s': cannot write %s: %s", p->name, p->path,
                    os_strerror(-r, eb, sizeof eb));
  }
  return 0;
}

int pool_sync(struct mmpool *p) {
  // Most dirty pages are written while the program runs on; then, at one
  // instant (no thread inside the allocator), what was dirtied meanwhile,
  // and the fsync. The pause is the second pass, not the whole write.
  // (A failure of the first pass shows again in the second, which says it.)
  engine_lock(&p->lock);
  if (p->is_file && p->shared && !p->frozen && p->data_len)
    (void)vmmap_sync(p->data, p->data_len);
  engine_unlock(&p->lock);
  heap_freeze();
  engine_lock(&p->lock);
  int r = sync_locked(p);
  engine_unlock(&p->lock);
  heap_thaw();
  return r;
}

void pool_seal(struct mmpool *p) { poolfile_seal(p->hdr); }

// At one instant: no thread is inside the allocator while the heaps are
// forgotten and the file is marked clean.
static int close_frozen(struct mmpool *p);

int pool_close(struct mmpool *p) {
  heap_freeze();
  int r = close_frozen(p);
  heap_thaw();
  return r;
}

static int close_frozen(struct mmpool *p) {
  heap_registry_lock();
  if (p->state != POOL_OPEN) {
    heap_registry_unlock();
    return log_fail(EINVAL, "pool is not open");
  }
  if (p->id == default_id) {
    heap_registry_unlock();
    return log_fail(EBUSY, "the default pool '%s' cannot be closed", p->name);
  }
  engine_lock(&p->lock);
  heap_forget_pool(p);
  __atomic_store_n(&p->handle, 0, __ATOMIC_RELEASE);  // stale from here on
  __atomic_store_n(&p->state, POOL_CLOSED, __ATOMIC_RELEASE);
  int r = 0;
  if (p->is_file && p->shared && !p->frozen) {
    struct poolfile_header *h = p->hdr;
    page_lazy_hold(p);
    mark_clean(h);
    r = sync_locked(p);
    page_lazy_release(p);
  }
  vmmap_release(p->base);
  if (p->fd >= 0) {
    // A fork child shares the parent's open file description (and so its
    // lock): it closes its descriptor without unlocking.
    if (!p->frozen) os_unlock_file(p->fd);
    os_close(p->fd);
  }
  __atomic_store_n(&p->fast_len, 0, __ATOMIC_RELEASE);
  __atomic_store_n(&p->data_len, 0, __ATOMIC_RELEASE);
  p->base = p->data = 0;
  p->capacity = 0;
  p->hdr = NULL;
  p->fd = -1;
  engine_unlock(&p->lock);
  heap_registry_unlock();
  return r;
}

void pool_set_default(struct mmpool *p) {
  engine_lock(&default_lock);
  __atomic_store_n(&default_id, p->id, __ATOMIC_RELEASE);
  engine_unlock(&default_lock);
}

struct mmpool *pool_default(void) {
  unsigned id = __atomic_load_n(&default_id, __ATOMIC_ACQUIRE);
  if (likely(id)) return &pool_table[id];
  engine_lock(&default_lock);
  if (!default_id) {
    struct pool_spec sp;
    char why[128];
    struct mmpool *p = NULL;
    spec_parse(NULL, &sp, why, sizeof why);
    if (pool_open("default", &sp, &p) == 0)
      __atomic_store_n(&default_id, p->id, __ATOMIC_RELEASE);
  }
  engine_unlock(&default_lock);
  id = default_id;
  return id ? &pool_table[id] : NULL;
}

// ---------------------------------------------------------------------------
// fork: every engine lock is taken in prepare (when any is), so no slow
// path is half done in the child. The fast paths (heap.h) take no lock: a
// parent thread that was inside one at the fork, popping or pushing a block
// of its own slab, can leave that slab's free list and count half updated
// in the child; heap_fork_child recounts those slabs from their lists.
//
// A fork child never shares pool memory with its parent. Anonymous and
// mode=private pools are private mappings: fork copies them on write. A
// shared file pool's mapping is MAP_SHARED, so the child replaces it with
// a private anonymous copy of its committed bytes and from then on uses it
// as an anonymous pool: it allocates and frees normally, and neither its
// stores nor the parent's later ones reach the other. The file, its lock
// and its consistency stay the parent's. The copy costs the committed size
// of the pool, in time and memory, in every fork child (docs/engine.md).

static int owner_pid;  // the process that owns the pools' files

static int fork_locked;

// glibc's stdio list lock (exported since 2.2.5). Its fork takes this lock
// after the atfork prepare handlers and before its own malloc locks,
// because stdio allocates while holding it; once our locks are the malloc
// locks (the preload library), they must come after it too, or a thread in
// fflush(NULL) and one in getline deadlock the fork (PITFALLS 4.2).
extern void _IO_list_lock(void);
extern void _IO_list_unlock(void);
extern void _IO_list_resetlock(void);

// The copies the child of this fork takes over (see above). They are
// made in the parent before the fork: a child copying the shared pages
// itself would race with the parent, which goes on changing them.
// pre: the pools' locks, when other threads run.
static void fork_copies_make(void) {
  for (unsigned i = 1; i <= MMPOOL_MAX_POOLS; i++) {
    struct mmpool *p = &pool_table[i];
    p->fork_meta = p->fork_data = 0;
    if (p->state != POOL_OPEN || !p->is_file || !p->shared || p->frozen)
      continue;
    size_t meta = p->hdr->desc_off + p->meta_mapped;
    if (vmmap_copy_out(p->base, meta, &p->fork_meta) != 0) {
      p->fork_meta = 0;
      continue;
    }
    if (p->data_len &&
        vmmap_copy_out(p->data, p->data_len, &p->fork_data) != 0) {
      vmmap_copy_drop(p->fork_meta, meta);
      p->fork_meta = p->fork_data = 0;
    }
  }
}

static void fork_copies_drop(void) {
  for (unsigned i = 1; i <= MMPOOL_MAX_POOLS; i++) {
    struct mmpool *p = &pool_table[i];
    if (!p->fork_meta) continue;
    vmmap_copy_drop(p->fork_meta, p->hdr->desc_off + p->meta_mapped);
    if (p->fork_data) vmmap_copy_drop(p->fork_data, p->data_len);
    p->fork_meta = p->fork_data = 0;
  }
}

void pool_fork_prepare(void) {
  // No lock when the process is single-threaded (fork from a signal
  // handler, as glibc does), nor when this thread is inside one of our
  // critical sections (then only a signal handler can be forking here,
  // and it makes no copy either: the child's shared file pools freeze).
  fork_locked = !__libc_single_threaded && tl_locks == 0;
  if (!fork_locked) {
    if (tl_locks == 0) fork_copies_make();
    return;
  }
  // One instant: no other thread is inside the allocator from here until
  // the fork is done, so the child's pools (and the copies of shared file
  // pools made below) hold no half-done operation. After the stdio lock: a
  // thread that holds it may be about to allocate.
  _IO_list_lock();
  pool_hold_all();
  vmmap_lock();
}

void pool_hold_all(void) {
  heap_freeze();
  heap_registry_lock();
  for (unsigned i = 1; i <= MMPOOL_MAX_POOLS; i++)
    if (pool_table[i].state == POOL_OPEN) {
      engine_lock(&pool_table[i].lock);
      page_lazy_hold(&pool_table[i]);
    }
  fork_copies_make();
}

void pool_unhold_all(void) {
  fork_copies_drop();
  for (unsigned i = MMPOOL_MAX_POOLS; i >= 1; i--)
    if (pool_table[i].state == POOL_OPEN) {
      page_lazy_release(&pool_table[i]);
      engine_unlock(&pool_table[i].lock);
    }
  heap_registry_unlock();
  heap_thaw();
}

void pool_fork_parent(void) {
  if (!fork_locked) {
    fork_copies_drop();
    return;
  }
  vmmap_unlock();
  pool_unhold_all();
  _IO_list_unlock();
}

// The child's own copy of shared file pool p (see above); on failure the
// pool is frozen here: readable, serving nothing.
static void fork_copy(struct mmpool *p) {
  int r = -ENOMEM;  // no copy was made (see fork_copies_make)
  if (p->fork_meta) {
    r = vmmap_copy_in(p->fork_meta, p->hdr->desc_off + p->meta_mapped,
                      p->base);
    if (p->fork_data) {
      if (!r)
        r = vmmap_copy_in(p->fork_data, p->data_len, p->data);
      else
        vmmap_copy_drop(p->fork_data, p->data_len);
    }
    p->fork_meta = p->fork_data = 0;
  }
  if (r) {
    char eb[32];
    log_print(LOG_WARN, "pool '%s': this fork child cannot copy %s (%s): "
              "it is read-only here", p->name, p->path,
              os_strerror(-r, eb, sizeof eb));
    p->frozen = FROZEN_FORK;
    p->frozen_len = p->data_len;
    __atomic_store_n(&p->fast_len, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->data_len, 0, __ATOMIC_RELAXED);
    return;
  }
  // An anonymous pool from now on. The descriptor is the parent's open
  // file description, and with it the parent's lock: closed, not unlocked.
  p->is_file = 0;
  p->shared = 0;
  p->fork_copy = 1;
  os_close(p->fd);
  p->fd = -1;
}

void pool_fork_child(void) {
  if (fork_locked) {
    _IO_list_resetlock();
    tl_locks = 0;  // every lock the prepare handler took is made anew below
  }
  vmmap_child_reset();
  page_lazy_fork_child();
  pthread_mutex_init(&default_lock, NULL);
  owner_pid = os_getpid();
  for (unsigned i = 1; i <= MMPOOL_MAX_POOLS; i++) {
    struct mmpool *p = &pool_table[i];
    if (p->state != POOL_OPEN) continue;
    pthread_mutex_init(&p->lock, NULL);
    if (p->is_file && p->shared && !p->frozen) fork_copy(p);
    else if (p->is_file && p->fd >= 0 && p->frozen == FROZEN_RELEASED) {
      os_close(p->fd);  // let go by the parent: never this child's
      p->fd = -1;
      p->is_file = 0;
    }
  }
  heap_fork_child(fork_locked);
}

// ---------------------------------------------------------------------------
// Exit and exec

unsigned pool_release_files(const char *when) {
  if (!owner_pid || os_getpid() != owner_pid) return 0;  // vfork child
  unsigned n = 0;
  // Exit (or exec) from a signal handler that interrupted the allocator in
  // this very thread: its operation is half done, and stays so.
  int interrupted = tl_fast.inside != 0 || tl_locks != 0;
  // Otherwise the pools are let go at one instant: other threads may run
  // on, but none is inside the allocator until they are.
  if (!interrupted) {
    heap_freeze();
    heap_registry_lock();
  }
  for (unsigned i = 1; i <= MMPOOL_MAX_POOLS; i++) {
    struct mmpool *p = &pool_table[i];
    if (p->state != POOL_OPEN || !p->is_file || !p->shared || p->frozen)
      continue;
    if (interrupted) {
      log_print(LOG_WARN, "pool '%s': %s stays marked unclean at %s: it "
                "was called from inside the allocator (a signal handler?); "
                "attach it with 'recover'", p->name, p->path, when);
      continue;
    }
    engine_lock(&p->lock);
    heap_release_pool(p);
    struct poolfile_header *h = p->hdr;
    page_lazy_hold(p);
    mark_clean(h);
    int r = sync_locked(p);
    page_lazy_release(p);
    if (r) {
      h->flags &= ~POOLFILE_CLEAN;
      poolfile_seal(h);
      log_print(LOG_WARN, "%s; it stays marked unclean at %s",
                log_last_error(), when);
    } else {
      p->frozen = FROZEN_RELEASED;
      p->frozen_len = p->data_len;
      __atomic_store_n(&p->fast_len, 0, __ATOMIC_RELEASE);
      __atomic_store_n(&p->data_len, 0, __ATOMIC_RELEASE);
      os_unlock_file(p->fd);
      n++;
    }
    engine_unlock(&p->lock);
  }
  if (!interrupted) {
    heap_registry_unlock();
    heap_thaw();
  }
  return n;
}

void pool_reclaim_files(void) {
  heap_registry_lock();
  for (unsigned i = 1; i <= MMPOOL_MAX_POOLS; i++) {
    struct mmpool *p = &pool_table[i];
    if (p->state != POOL_OPEN || p->frozen != FROZEN_RELEASED) continue;
    engine_lock(&p->lock);
    if (os_lock_file(p->fd, 1) == 0) {
      p->hdr->flags &= ~POOLFILE_CLEAN;
      poolfile_seal(p->hdr);
      p->frozen = FROZEN_NONE;
      __atomic_store_n(&p->data_len, p->frozen_len, __ATOMIC_RELEASE);
      page_fast_sync(p);
    } else {
      log_print(LOG_WARN, "pool '%s': %s was taken by another process while "
                "this one tried to exec: it is read-only here", p->name,
                p->path);
    }
    engine_unlock(&p->lock);
  }
  heap_registry_unlock();
}

__attribute__((constructor)) static void pool_ctor(void) {
  owner_pid = os_getpid();
  heap_init_once();
  pthread_atfork(pool_fork_prepare, pool_fork_parent, pool_fork_child);
}

size_t pool_room(struct mmpool *p) {
  size_t r = 0;
  engine_lock(&p->lock);
  if (p->state == POOL_OPEN) r = (size_t)page_room(p) << PAGE_SHIFT;
  engine_unlock(&p->lock);
  return r;
}
