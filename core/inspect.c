// inspect.c: reading a pool file that no process has attached (inspect.h).
//
// The strict walk restates page_check's invariants (page.c) so that it can
// report every problem and go on, where page_check stops at the first one
// and page_walk skips a slab it cannot scan. Each value read from the file
// is checked before it is used as an offset, an index or a count: offsets
// stay inside the mapping, list walks are bounded by what they could hold.
// Its bitmaps are the ledger's scratch memory, not the heap, because the
// core may run where malloc is its own (the preload library); this file
// never runs there, but keeps the rule. The file's mapping is the ledger's
// too (vmmap_view), as every mapping is.
#include "inspect.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>

#include "delta.h"
#include "fmt.h"
#include "hash.h"
#include "os.h"
#include "page.h"
#include "poolfile_v1.h"
#include "vmmap.h"

#define MAX_BLOCKS 4096u  // the most blocks a slab holds (16-byte class)
#define BM_WORDS (MAX_BLOCKS / 64)
_Static_assert(BM_WORDS == INSPECT_BM_WORDS, "inspect.h says the size");

// ---------------------------------------------------------------------------
// Version 1 headers

RARE int inspect_v1_convert(const void *page, uint64_t file_size,
                            uint64_t ctime, struct poolfile_header *h,
                            char *why, size_t why_len) {
  const struct poolfile_header_v1 *o = page;
  if (memcmp(o->magic, POOLFILE_MAGIC, 8) != 0) {
    fmt_format(why, why_len, "not an mmpool pool file (bad magic)");
    return -ENOEXEC;
  }
  if (file_size < POOLFILE_HEADER_SIZE) {
    fmt_format(why, why_len, "truncated: %llu bytes, a pool file has at "
               "least %u", (unsigned long long)file_size,
               POOLFILE_HEADER_SIZE);
    return -EUCLEAN;
  }
  if (o->version != POOLFILE_V1_VERSION ||
      o->header_size != sizeof(struct poolfile_header_v1)) {
    fmt_format(why, why_len, "not a version 1 header (version %u, header "
               "size %u; version 1 has %zu)", o->version, o->header_size,
               sizeof(struct poolfile_header_v1));
    return -ENOEXEC;
  }
  const char *abi =
      poolfile_abi_differs(o->word_size, o->byte_order, o->page_shift, o->os_page_size,
                  o->desc_size, o->nclasses, o->layout_hash);
  if (abi) {
    fmt_format(why, why_len, "made for another machine or build (%s "
               "differs)", abi);
    return -ENOEXEC;
  }
  uint64_t sum = hash_bytes(o, offsetof(struct poolfile_header_v1, checksum),
                            0);
  if (sum != o->checksum) {
    fmt_format(why, why_len, "version 1 header checksum mismatch (stored "
               "%016llx, computed %016llx)", (unsigned long long)o->checksum,
               (unsigned long long)sum);
    return -EUCLEAN;
  }
  memset(h, 0, sizeof *h);
  memcpy(h->magic, POOLFILE_MAGIC, 8);
  h->version = POOLFILE_VERSION;
  h->header_size = POOLFILE_HEADER_SIZE;
  h->ident_size = POOLFILE_IDENT_SIZE;
  h->word_size = o->word_size;
  h->byte_order = o->byte_order;
  h->page_shift = o->page_shift;
  h->nclasses = o->nclasses;
  h->os_page_size = o->os_page_size;
  h->desc_size = o->desc_size;
  h->flags = o->flags & POOLFILE_CLEAN;
  h->layout_hash = o->layout_hash;
  h->base = o->base;
  h->capacity = o->capacity;
  h->generation = o->generation;
  h->desc_off = o->desc_off;
  h->data_off = o->data_off;
  h->npages = o->npages;
  h->meta_checksum = o->meta_checksum;
  h->created = ctime;
  h->closed = (h->flags & POOLFILE_CLEAN) ? ctime : 0;
  os_random(h->uuid, sizeof h->uuid);
  memcpy(h->roots, o->roots, sizeof h->roots);
  memcpy(h->name, o->name, sizeof h->name);
  h->st.length = o->st.length;
  h->st.meta_committed = o->st.meta_committed;
  h->st.top = o->st.top;
  h->st.hiwater = o->st.hiwater;
  memcpy(h->st.bins, o->st.bins, sizeof h->st.bins);
  memcpy(h->st.avail, o->st.avail, sizeof h->st.avail);
  poolfile_seal(h);
  // Every field of version 1 has the same range in version 2.
  return poolfile_validate(h, file_size, why, why_len);
}

// ---------------------------------------------------------------------------
// Open and close

RARE int inspect_open(struct inspect *in, const char *path, unsigned flags,
                      char *why, size_t why_len) {
  return inspect_open_deltas(in, path, 0, NULL, flags, why, why_len);
}

// With INSPECT_TRUSTED in flags: why st's file may not be attached, or
// NULL.
RARE static const char *untrusted(unsigned flags, const struct os_stat *st,
                                  char *w, size_t w_len) {
  const char *bad = !(flags & INSPECT_TRUSTED) ? NULL
                    : poolfile_distrust(st->uid, st->mode, os_geteuid(),
                                        (flags & INSPECT_ANY_OWNER) != 0);
  if (bad)
    fmt_format(w, w_len, "owner uid %u, mode %04o: %s", (unsigned)st->uid,
               (unsigned)(st->mode & 07777), bad);
  return bad;
}

// Opens delta k of dpaths, checks its header and, the first time (*dh
// zero), reads it into dh; later, the header must be the same. fd or a
// negative errno with one line in why (its path named).
RARE static int open_delta(const char *dpath, struct delta_header *dh,
                           unsigned flags, char *why, size_t why_len) {
  char eb[64], w[300];
  int fd = os_open_nolinks(dpath, O_RDONLY, 0);
  struct os_stat st;
  int r = fd < 0 ? fd : os_file_stat(fd, &st);
  struct delta_header h;
  if (!r && !st.is_regular) {
    r = -EINVAL;
    fmt_format(w, sizeof w, "not a regular file");
  } else if (!r && untrusted(flags, &st, w, sizeof w)) {
    r = -EACCES;
  } else if (!r && st.size < sizeof h) {
    r = -ENOEXEC;
    fmt_format(w, sizeof w, "not an mmpool snapshot delta");
  } else if (!r && (r = os_pread_full(fd, &h, sizeof h, 0)) == 0) {
    r = delta_check_header(&h, st.size, w, sizeof w);
    if (!r && dh->size && memcmp(&h, dh, sizeof h) != 0) {
      r = -EAGAIN;
      fmt_format(w, sizeof w, "changed while it was being read");
    }
  } else if (r) {
    fmt_format(w, sizeof w, "%s", os_strerror(-r, eb, sizeof eb));
  }
  if (r) {
    fmt_format(why, why_len, "delta %s: %s", dpath, w);
    if (fd >= 0) os_close(fd);
    return r;
  }
  *dh = h;
  return fd;
}

RARE int inspect_open_deltas(struct inspect *in, const char *path,
                             unsigned ndelta, const char *const *dpaths,
                             unsigned flags, char *why, size_t why_len) {
  char eb[64];
  memset(in, 0, sizeof *in);
  in->fd = -1;
  static struct delta_header dhs[INSPECT_DELTAS_MAX];
  if (ndelta > INSPECT_DELTAS_MAX) {
    fmt_format(why, why_len, "%u deltas (at most %u)", ndelta,
               INSPECT_DELTAS_MAX);
    return -EINVAL;
  }
  int fd = os_open_nolinks(path, O_RDONLY, 0);
  if (fd == -ELOOP) {
    fmt_format(why, why_len, "a component of the path is a symbolic link "
               "(refused: pool files are opened without following links)");
    return fd;
  }
  if (fd < 0) {
    fmt_format(why, why_len, "%s", os_strerror(-fd, eb, sizeof eb));
    return fd;
  }
  struct os_stat st;
  int r = os_file_stat(fd, &st);
  if (r) {
    fmt_format(why, why_len, "%s", os_strerror(-r, eb, sizeof eb));
    goto fail;
  }
  if (!st.is_regular) {
    fmt_format(why, why_len, "not a regular file");
    r = -EINVAL;
    goto fail;
  }
  if (untrusted(flags, &st, why, why_len)) {
    r = -EACCES;
    goto fail;
  }
  r = os_lock_file(fd, flags & INSPECT_EXCLUSIVE);
  if (r == -EWOULDBLOCK) {
    fmt_format(why, why_len, "is in use by another process (attached %s); "
               "read a copy, or wait until it is closed",
               flags & INSPECT_EXCLUSIVE ? "or being read"
                                         : "with mode=shared");
    r = -EBUSY;
    goto fail;
  }
  if (r) {
    fmt_format(why, why_len, "cannot lock it: %s",
               os_strerror(-r, eb, sizeof eb));
    goto fail;
  }
  in->file_size = st.size;
  if (st.size == 0) {
    fmt_format(why, why_len, "empty (0 bytes): not a pool file");
    r = -ENODATA;
    goto fail;
  }
  // The header page as read (bytes past the end of a short file are 0).
  unsigned char page[POOLFILE_HEADER_SIZE];
  memset(page, 0, sizeof page);
  size_t n = st.size < sizeof page ? (size_t)st.size : sizeof page;
  r = os_pread_full(fd, page, n, 0);
  if (r) {
    fmt_format(why, why_len, "cannot read its header: %s",
               os_strerror(-r, eb, sizeof eb));
    goto fail;
  }
  const struct poolfile_header *ph = (const void *)page;
  in->version = ph->version == POOLFILE_V1_VERSION ? 1 : POOLFILE_VERSION;
  if (in->version == 1 && st.size >= POOLFILE_HEADER_SIZE &&
      memcmp(ph->magic, POOLFILE_MAGIC, 8) == 0)
    r = inspect_v1_convert(page, st.size, 0, &in->hdr, why, why_len);
  else {
    in->version = POOLFILE_VERSION;
    memcpy(&in->hdr, page, sizeof in->hdr);
    r = poolfile_validate(&in->hdr, st.size, why, why_len);
  }
  if (r) goto fail;
  // Only a version 1 image is written to, in memory: its header page; and
  // an image with deltas, all of which are applied in memory, in a view
  // long enough for the longest image of the chain.
  uint64_t file_len = in->hdr.st.length, view_len = file_len;
  if (ndelta && in->version == 1) {
    fmt_format(why, why_len, "deltas on a version 1 image");
    r = -EUCLEAN;
    goto fail;
  }
  memset(dhs, 0, sizeof dhs);
  for (unsigned k = 0; k < ndelta; k++) {
    int dfd = open_delta(dpaths[k], &dhs[k], flags, why, why_len);
    if (dfd < 0) {
      r = dfd;
      goto fail;
    }
    os_close(dfd);
    if (dhs[k].length > in->hdr.capacity) {
      fmt_format(why, why_len, "delta %s makes an image of %llu bytes, "
                 "more than the pool's capacity (%llu)", dpaths[k],
                 (unsigned long long)dhs[k].length,
                 (unsigned long long)in->hdr.capacity);
      r = -EUCLEAN;
      goto fail;
    }
    if (dhs[k].length > view_len) view_len = dhs[k].length;
  }
  in->map_len = view_len;
  r = vmmap_view(fd, file_len, view_len, in->version == 1 || ndelta > 0,
                 &in->map);
  if (r) {
    fmt_format(why, why_len, "cannot map it: %s",
               os_strerror(-r, eb, sizeof eb));
    in->map = 0;
    goto fail;
  }
  if (memcmp((const void *)in->map, page, sizeof page) != 0) {
    fmt_format(why, why_len, "changed while it was being read");
    r = -EAGAIN;
    goto fail;
  }
  if (in->version == 1) memcpy((void *)in->map, &in->hdr, sizeof in->hdr);
  // The deltas in order; then the image they make is checked as a file of
  // its length would be.
  uint64_t len = file_len;
  for (unsigned k = 0; k < ndelta; k++) {
    char w[300];
    int dfd = open_delta(dpaths[k], &dhs[k], flags, why, why_len);
    if (dfd < 0) {
      r = dfd;
      goto fail;
    }
    r = delta_apply(dfd, &dhs[k], (char *)in->map, view_len, &len, w,
                    sizeof w);
    os_close(dfd);
    if (r) {
      fmt_format(why, why_len, "delta %s: %s", dpaths[k], w);
      goto fail;
    }
  }
  if (ndelta) {
    memcpy(&in->hdr, (const void *)in->map, sizeof in->hdr);
    in->file_size = len;
    char w[300];
    r = poolfile_validate(&in->hdr, len, w, sizeof w);
    if (r) {
      fmt_format(why, why_len, "with its deltas: %s", w);
      goto fail;
    }
  }
  in->fd = fd;
  struct mmpool *p = &in->pool;
  p->hdr = (struct poolfile_header *)in->map;
  p->base = in->map;
  p->data = in->map + in->hdr.data_off;
  p->data_len = in->hdr.st.length - in->hdr.data_off;
  p->reserved = in->map_len;
  p->desc = (struct pdesc *)(in->map + in->hdr.desc_off);
  p->capacity = in->hdr.capacity;
  p->meta_mapped = in->hdr.st.meta_committed;
  p->fd = -1;
  p->frozen = FROZEN_RELEASED;  // not a pool of this process: serves nothing
  memcpy(p->name, in->hdr.name, sizeof p->name);
  return 0;
fail:
  if (in->map) vmmap_view_release(in->map);
  in->map = 0;
  os_close(fd);  // also drops the lock
  return r;
}

RARE void inspect_close(struct inspect *in) {
  if (in->map) vmmap_view_release(in->map);
  in->map = 0;
  if (in->fd >= 0) os_close(in->fd);
  in->fd = -1;
}

// ---------------------------------------------------------------------------
// The strict walk

struct walker {
  struct inspect *in;
  const struct inspect_cb *cb;
  struct inspect_stats *st;
  unsigned problems;
  const struct pdesc *desc;
  uint32_t top;
  uint64_t *heads;   // bit per page below top: a valid span starts here
  uint64_t *listed;  // bit per page below top: met on a bin or avail list
  size_t bits_len;
};

RARE static uint64_t page_off(const struct inspect *in, uint32_t i) {
  return in->hdr.data_off + ((uint64_t)i << PAGE_SHIFT);
}

static void report(struct walker *w, int64_t page, uint64_t off,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
RARE static void report(struct walker *w, int64_t page, uint64_t off,
                        const char *fmt, ...) {
  char line[512];
  size_t n = 0;
  uint64_t base = w->in->hdr.base;
  if (page >= 0)
    n = fmt_format(line, sizeof line, "page %llu (0x%llx): ",
                   (unsigned long long)page,
                   (unsigned long long)(base + page_off(w->in,
                                                        (uint32_t)page)));
  va_list ap;
  va_start(ap, fmt);
  fmt_vformat(line + n, sizeof line - n, fmt, ap);
  va_end(ap);
  w->problems++;
  if (w->cb && w->cb->problem)
    w->cb->problem(w->cb->arg, page, off ? base + off : 0, line);
}

RARE static int bit(const uint64_t *bm, uint64_t i) {
  return bm[i / 64] >> (i % 64) & 1;
}
RARE static void set_bit(uint64_t *bm, uint64_t i) {
  bm[i / 64] |= (uint64_t)1 << (i % 64);
}

static unsigned bin_of(uint32_t n) {  // as page.c
  if (n <= 16) return n - 1;
  unsigned b = 16 + (31u - (unsigned)__builtin_clz(n)) - 4;
  return b < POOL_NBINS ? b : POOL_NBINS - 1;
}

// The slab fields that say where its blocks and slack array are; 0 when
// they agree with the class table (then every block offset below nblocks
// and every slack entry lies inside the slab).
RARE static int slab_fields_ok(const struct inspect *in, const struct pdesc *d,
                               uint32_t i) {
  if (d->cls >= SC_COUNT) return 0;
  const struct sizeclass *sc = &sc_table[d->cls];
  return d->bsize == sc->bsize && d->nblocks == sc->nblocks &&
         d->npages == sc->npages && d->gshift == sc->gshift &&
         d->nblocks <= MAX_BLOCKS && d->inited <= d->nblocks &&
         d->slack_off == sc_slack_off(sc, page_off(in, i));
}

// Marks the blocks of one free list of slab i in bm; their count, or -1
// with the fault in why (w may be NULL: no report).
RARE static int64_t mark_list(const struct inspect *in, const struct pdesc *d,
                              uint32_t i, uint64_t off, uint64_t *bm,
                              const char *which, char *why, size_t why_len,
                              uint64_t *where) {
  uint64_t slab = page_off(in, i);
  uint32_t n = 0;
  while (off) {
    *where = off;
    if (off < slab || (off - slab) % d->bsize != 0 ||
        (off - slab) / d->bsize >= d->nblocks) {
      fmt_format(why, why_len, "%s list holds 0x%llx, not a block of the "
                 "slab", which, (unsigned long long)(in->hdr.base + off));
      return -1;
    }
    uint64_t b = (off - slab) / d->bsize;
    if (b >= d->inited) {
      fmt_format(why, why_len, "%s list holds block %llu, never handed out "
                 "(inited %u)", which, (unsigned long long)b, d->inited);
      return -1;
    }
    if (bit(bm, b)) {
      fmt_format(why, why_len, "block %llu is on the free lists twice "
                 "(double free, or a loop in the %s list)",
                 (unsigned long long)b, which);
      return -1;
    }
    set_bit(bm, b);
    n++;
    off = *(const uint64_t *)(in->map + off);  // inside the slab: checked
  }
  return n;
}

// Scans slab i: its free blocks into bm; 0 when sound, else -1 (each fault
// reported when w is not NULL). *nfree, *nremote: blocks on its lists.
RARE static int slab_scan(struct walker *w, struct inspect *in,
                          const struct pdesc *d, uint32_t i, uint64_t *bm,
                          uint32_t *nfree, uint32_t *nremote) {
  char why[256];
  uint64_t where = 0;
  memset(bm, 0, BM_WORDS * 8);
  *nfree = *nremote = 0;
  if (!slab_fields_ok(in, d, i)) {
    if (!w) return -1;
    if (d->cls >= SC_COUNT)
      report(w, i, 0, "size class %u out of range (the table has %u)", d->cls,
             SC_COUNT);
    else if (d->inited > d->nblocks)
      report(w, i, 0, "inited %u out of range (%u blocks)", d->inited,
             d->nblocks);
    else if (d->slack_off != sc_slack_off(&sc_table[d->cls], page_off(in, i)))
      report(w, i, 0, "slack array offset 0x%llx out of range",
             (unsigned long long)d->slack_off);
    else
      report(w, i, 0, "slab fields disagree with class %u (block size %u, "
             "%u blocks, %u pages, granule shift %u; the class has %u, %u, "
             "%u, %u): its blocks cannot be told", d->cls, d->bsize,
             d->nblocks, d->npages, d->gshift, sc_table[d->cls].bsize,
             sc_table[d->cls].nblocks, sc_table[d->cls].npages,
             sc_table[d->cls].gshift);
    return -1;
  }
  int bad = 0;
  int64_t nf = mark_list(in, d, i, d->free, bm, "free", why, sizeof why,
                         &where);
  if (nf < 0) {
    if (w) report(w, i, where, "%s", why);
    bad = 1;
    nf = 0;
  }
  int64_t nr = mark_list(in, d, i, TF_HEAD(d->thread_free), bm,
                         "thread-free", why, sizeof why, &where);
  if (nr < 0) {
    if (w) report(w, i, where, "%s", why);
    bad = 1;
    nr = 0;
  }
  *nfree = (uint32_t)nf;
  *nremote = (uint32_t)nr;
  if (bad) return -1;
  uint32_t tc = TF_COUNT(d->thread_free);
  if (tc && tc != nr) {  // attach refuses it too (page.c, slab_scan)
    if (w)
      report(w, i, 0, "the thread-free list holds %u blocks, its count "
             "says %u", (unsigned)nr, tc);
    return -1;
  }
  // Blocks on the thread-free list count as used until the owner
  // collects them.
  uint32_t used = pdesc_used(d);  // the current slab's pin masked
  if ((uint64_t)used + (uint64_t)nf != d->inited || nr > used) {
    if (w)
      report(w, i, 0, "%u used + %u free blocks (%u freed by other "
             "threads), but %u handed out", used, (unsigned)nf,
             (unsigned)nr, d->inited);
    return -1;
  }
  // Every live block's slack: usable_size and realloc's copy trust it.
  uint32_t nbad = 0, first = 0;
  uint16_t firsts = 0;
  for (uint32_t b = 0; b < d->inited; b++) {
    if (bit(bm, b)) continue;
    uint64_t off = page_off(in, i) + (uint64_t)b * d->bsize;
    uint16_t s = *pdesc_slack(in->map, d, off);
    if (s > d->bsize) {
      if (!nbad++) first = b, firsts = s;
    }
  }
  if (nbad) {
    if (w)
      report(w, i, page_off(in, i) + (uint64_t)first * d->bsize,
             "%u live blocks record a slack larger than their %u bytes "
             "(first: block %u, %u bytes)", nbad, d->bsize, first, firsts);
    return -1;
  }
  return 0;
}

// Slab i is sound (fields, lists, counts): its live blocks into the stats.
RARE static void count_slab(struct walker *w, const struct pdesc *d, uint32_t i,
                            const uint64_t *bm) {
  struct inspect_class *c = &w->st->cls[d->cls];
  for (uint32_t b = 0; b < d->inited; b++) {
    if (bit(bm, b)) continue;
    uint64_t off = page_off(w->in, i) + (uint64_t)b * d->bsize;
    c->live++;
    c->req_bytes += d->bsize - *pdesc_slack(w->in->map, d, off);
  }
}

// Pages [i, i+n) whose kinds say no span starts there: one line.
RARE static uint32_t bad_run(struct walker *w, uint32_t i, const char *what) {
  uint32_t j = i + 1;
  while (j < w->top && w->desc[j].kind != PD_FREE &&
         w->desc[j].kind != PD_SLAB && w->desc[j].kind != PD_LARGE)
    j++;
  if (j - i > 1)
    report(w, i, 0, "%s; pages %u-%u belong to no valid span", what, i, j - 1);
  else
    report(w, i, 0, "%s", what);
  w->st->bad_pages += j - i;
  if (w->cb && w->cb->span)
    w->cb->span(w->cb->arg, &(struct inspect_span){
                                .page = i, .npages = j - i,
                                .kind = INSPECT_SPAN_BAD});
  return j;
}

RARE static void walk_spans(struct walker *w) {
  const struct pdesc *D = w->desc;
  uint32_t top = w->top;
  uint64_t bm[BM_WORDS];
  // free() resolves any page through head_delta: it must stay in the array.
  for (uint32_t i = 0; i < top; i++)
    if (D[i].head_delta > i)
      report(w, i, 0, "head_delta %u out of range (points before page 0)",
             D[i].head_delta);
  uint32_t prev_kind = PD_UNUSED;
  for (uint32_t i = 0; i < top;) {
    const struct pdesc *d = &D[i];
    if (d->kind != PD_FREE && d->kind != PD_SLAB && d->kind != PD_LARGE) {
      char what[96];
      fmt_format(what, sizeof what, "kind %u where a span should start",
                 d->kind);
      i = bad_run(w, i, what);
      prev_kind = PD_UNUSED;
      continue;
    }
    if (d->npages < 1 || d->npages > top - i) {
      char what[128];
      fmt_format(what, sizeof what, "span of %u pages passes the top (%u)",
                 d->npages, top);
      i = bad_run(w, i, what);
      prev_kind = PD_UNUSED;
      continue;
    }
    uint32_t n = d->npages;
    set_bit(w->heads, i);
    if (d->head_delta != 0)
      report(w, i, 0, "head with head_delta %u", d->head_delta);
    // Only slab heads may carry a thread id: heap_free's fast path pushes
    // onto any head whose owner is the caller's id.
    if (d->kind != PD_SLAB && d->owner != OWNER_NONE)
      report(w, i, 0, "owner %u on a head of kind %u (not a slab)", d->owner,
             d->kind);
    struct inspect_span sp = {.page = i, .npages = n};
    if (d->kind == PD_FREE) {
      sp.kind = INSPECT_SPAN_FREE;
      if (prev_kind == PD_FREE)
        report(w, i, 0, "two free spans touch (the one before ends here)");
      if (d->flags & ~PDF_DIRTY)
        report(w, i, 0, "free span with flags 0x%x", d->flags);
      if (n > 1 && (D[i + n - 1].kind != PD_FREE_LAST ||
                    D[i + n - 1].head_delta != n - 1))
        report(w, i, 0, "free span's last page %u does not point back "
               "(kind %u, head_delta %u)", i + n - 1, D[i + n - 1].kind,
               D[i + n - 1].head_delta);
      w->st->free_spans++;
      w->st->free_pages += n;
      if (n > w->st->largest_free) w->st->largest_free = n;
    } else {
      for (uint32_t t = 1; t < n; t++)
        if (D[i + t].kind != PD_TAIL || D[i + t].head_delta != t) {
          report(w, i, page_off(w->in, i + t), "tail page %u of the span is "
                 "wrong (kind %u, head_delta %u)", i + t, D[i + t].kind,
                 D[i + t].head_delta);
          break;
        }
      if (d->kind == PD_SLAB) {
        uint32_t nfree, nremote;
        sp.kind = INSPECT_SPAN_SLAB;
        sp.cls = d->cls;
        if (slab_scan(w, w->in, d, i, bm, &nfree, &nremote) == 0) {
          const struct sizeclass *sc = &sc_table[d->cls];
          w->st->cls[d->cls].slabs++;
          w->st->cls[d->cls].pages += n;
          w->st->slack_bytes += ((uint64_t)n << PAGE_SHIFT) - sc->slack_rel;
          count_slab(w, d, i, bm);
          sp.live = d->inited - nfree - nremote;
          sp.nblocks = d->nblocks;
        } else {
          sp.kind = INSPECT_SPAN_BAD;
          w->st->bad_pages += n;
        }
        if ((d->flags & PDF_LISTED) && d->owner != OWNER_DETACHED)
          report(w, i, 0, "on an avail list (flag) but owned by thread %u",
                 d->owner);
      } else {
        sp.kind = INSPECT_SPAN_LARGE;
        // It may be small (memalign), and need fewer pages than the block
        // has (a resize in place cut short by a crash, repaired).
        if (d->req > (uint64_t)n << PAGE_SHIFT)
          report(w, i, 0, "large block of %llu bytes in %u pages",
                 (unsigned long long)d->req, n);
        if (d->cls != 0 || d->flags != 0 || d->next != 0 || d->prev != 0)
          report(w, i, 0, "large block with class %u, flags 0x%x, links "
                 "%u/%u", d->cls, d->flags, d->next, d->prev);
        w->st->large_blocks++;
        w->st->large_pages += n;
        w->st->large_req += d->req;
      }
    }
    if (w->cb && w->cb->span) w->cb->span(w->cb->arg, &sp);
    prev_kind = d->kind;
    i += n;
  }
}

// The free-span bins and the avail lists: each member a head of the right
// kind, size or class, met once, back links right; every free span in its
// bin and every listed slab on its list.
RARE static void walk_lists(struct walker *w) {
  const struct pdesc *D = w->desc;
  const struct pool_state *st = &w->in->hdr.st;
  uint32_t top = w->top;
  for (unsigned b = 0; b < POOL_NBINS + SC_COUNT; b++) {
    int is_bin = b < POOL_NBINS;
    unsigned c = is_bin ? b : b - POOL_NBINS;
    const char *name = is_bin ? "bins" : "avail";
    uint32_t prev = 0;
    for (uint32_t l = is_bin ? st->bins[c] : st->avail[c]; l;
         l = D[l - 1].next) {
      if (l > top) {
        report(w, -1, 0, "%s[%u]: link to page %u, past the top (%u)", name,
               c, l - 1, top);
        break;
      }
      uint32_t i = l - 1;
      const struct pdesc *d = &D[i];
      if (bit(w->listed, i)) {
        report(w, i, 0, "%s[%u]: met twice (a loop, or on two lists)", name,
               c);
        break;
      }
      set_bit(w->listed, i);
      int ok = bit(w->heads, i) &&
               (is_bin ? d->kind == PD_FREE && bin_of(d->npages) == c
                       : d->kind == PD_SLAB && d->cls == c &&
                             (d->flags & PDF_LISTED));
      if (!ok) {
        report(w, i, 0, "%s[%u]: not a %s", name, c,
               is_bin ? "free span of this bin" : "listed slab of this class");
        break;
      }
      if (d->prev != prev) {
        report(w, i, 0, "%s[%u]: back link %u, the list came from %u", name,
               c, d->prev, prev);
        break;
      }
      prev = l;
    }
  }
  // Every free span in a bin, every listed slab on a list.
  for (uint32_t i = 0; i < top; i++) {
    if (!bit(w->heads, i) || bit(w->listed, i)) continue;
    if (D[i].kind == PD_FREE)
      report(w, i, 0, "free span of %u pages is in no bin", D[i].npages);
    else if (D[i].kind == PD_SLAB && (D[i].flags & PDF_LISTED))
      report(w, i, 0, "slab marked listed is on no avail list");
  }
}

RARE unsigned inspect_walk(struct inspect *in, const struct inspect_cb *cb,
                           struct inspect_stats *stats) {
  struct inspect_stats local;
  struct walker w = {.in = in, .cb = cb, .st = stats ? stats : &local};
  memset(w.st, 0, sizeof *w.st);
  w.desc = in->pool.desc;
  w.top = in->hdr.st.top;
  // Two bitmaps of a bit per page below top.
  size_t words = ((size_t)w.top + 63) / 64;
  w.bits_len = (2 * words * 8 + 4095) & ~(size_t)4095;
  uintptr_t bits = 0;
  if (w.bits_len && !(bits = (uintptr_t)vmmap_scratch(w.bits_len))) {
    report(&w, -1, 0, "cannot map %zu bytes for the walk", w.bits_len);
    return w.problems;
  }
  w.heads = (uint64_t *)bits;
  w.listed = w.heads + words;
  walk_spans(&w);
  walk_lists(&w);
  if (bits) vmmap_scratch_release((void *)bits);
  // A clean file vouches for its metadata with the checksum.
  if (in->hdr.flags & POOLFILE_CLEAN) {
    uint64_t sum = poolfile_meta_hash(in->pool.hdr);
    if (sum != in->hdr.meta_checksum)
      report(&w, -1, 0, "metadata checksum mismatch (stored %016llx, "
             "computed %016llx): the page descriptors or slack arrays "
             "changed after the pool was closed",
             (unsigned long long)in->hdr.meta_checksum,
             (unsigned long long)sum);
  }
  // The engine's own check, which attach runs: what it refuses, this walk
  // must have reported too.
  if (w.problems == 0) {
    char why[384];
    if (page_check(&in->pool, why, sizeof why) != 0)
      report(&w, -1, 0, "engine check: %s", why);
  }
  return w.problems;
}

RARE int inspect_slab_free(struct inspect *in, uint32_t head, uint64_t *bm,
                           uint32_t *inited) {
  const struct poolfile_header *h = &in->hdr;
  uint32_t top = h->st.top;
  if (head >= top) return -1;
  const struct pdesc *d = &in->pool.desc[head];
  if (d->kind != PD_SLAB || d->head_delta != 0 || d->npages < 1 ||
      d->npages > top - head)
    return -1;
  uint32_t nfree, nremote;
  if (slab_scan(NULL, in, d, head, bm, &nfree, &nremote) != 0) return -1;
  *inited = d->inited;
  return 0;
}

RARE int inspect_block_at(struct inspect *in, uint64_t off, uint64_t *blk,
                          uint64_t *len) {
  const struct poolfile_header *h = &in->hdr;
  if (off < h->data_off || off >= h->st.length) return 0;
  uint64_t i = (off - h->data_off) >> PAGE_SHIFT;
  uint32_t top = h->st.top;
  if (i >= top) return 0;
  const struct pdesc *D = in->pool.desc;
  if (D[i].head_delta > i) return 0;
  uint32_t head = (uint32_t)(i - D[i].head_delta);
  const struct pdesc *d = &D[head];
  if (d->npages < 1 || d->npages > top - head || i - head >= d->npages)
    return 0;
  uint64_t start = page_off(in, head);
  if (d->kind == PD_LARGE) {
    if (off - start >= d->req || d->req > (uint64_t)d->npages << PAGE_SHIFT)
      return 0;
    *blk = start;
    *len = d->req;
    return 1;
  }
  if (d->kind != PD_SLAB) return 0;
  uint64_t bm[BM_WORDS];
  uint32_t nfree, nremote;
  if (slab_scan(NULL, in, d, head, bm, &nfree, &nremote) != 0) return 0;
  uint64_t b = (off - start) / d->bsize;
  if (b >= d->inited || bit(bm, b)) return 0;
  *blk = start + b * d->bsize;
  *len = d->bsize;
  return 1;
}
