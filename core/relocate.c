// relocate.c: moving pool images to other base addresses (relocate.h).
#include "relocate.h"

#include <errno.h>
#include <string.h>

#include "fmt.h"
#include "os.h"
#include "poolfile.h"
#include "sizeclass.h"
#include "vmmap.h"

RARE static void no_problem(void *arg, int64_t page, uint64_t addr,
                            const char *line) {
  (void)page, (void)addr;
  char *why = arg;
  if (!why[0]) fmt_format(why, 200, "%s", line);
}

RARE int reloc_check(struct inspect *in, uint64_t new_base, char *why,
                     size_t why_len) {
  const struct poolfile_header *h = &in->hdr;
  if (new_base % POOL_BASE_ALIGN || new_base < POOL_BASE_ALIGN) {
    fmt_format(why, why_len, "the new base 0x%llx is not a multiple of 1 GiB "
               "(0x40000000) above 0", (unsigned long long)new_base);
    return -EINVAL;
  }
  if (new_base >= POOL_USER_ADDR_END ||
      h->capacity > POOL_USER_ADDR_END - new_base) {
    fmt_format(why, why_len, "0x%llx plus the capacity (%llu bytes) passes "
               "the end of the user address space",
               (unsigned long long)new_base,
               (unsigned long long)h->capacity);
    return -EINVAL;
  }
  uint64_t delta = new_base - h->base;  // modulo 2^64: fine for the test
  if (h->st.align_max && delta % h->st.align_max) {
    fmt_format(why, why_len, "it holds a block aligned to %llu bytes: the "
               "base may only move by a multiple of that",
               (unsigned long long)h->st.align_max);
    return -EINVAL;
  }
  if (in->version != POOLFILE_VERSION) {
    fmt_format(why, why_len, "format version 1: convert it with 'mmpool "
               "upgrade FILE' first");
    return -EINVAL;
  }
  if (!(h->flags & POOLFILE_CLEAN)) {
    fmt_format(why, why_len, "not closed cleanly: attach it with 'recover' "
               "(and close it) first");
    return -EUCLEAN;
  }
  char first[200] = "";
  struct inspect_cb cb = {no_problem, NULL, first};
  unsigned n = inspect_walk(in, &cb, NULL);
  if (n) {
    fmt_format(why, why_len, "not sound (%u problems; the first: %s): "
               "'mmpool check' says more", n, first);
    return -EUCLEAN;
  }
  return 0;
}

// ---------------------------------------------------------------------------
// The copy

struct writer {
  struct inspect *in;
  const struct reloc_range *set;
  unsigned nset;
  int fd;
  uint64_t changed;
  int err;
  char *buf;         // RELOC_CHUNK bytes of scratch
  int still;         // nothing of the set moves: the bytes are copied
};

#define RELOC_CHUNK ((size_t)4 << 20)  // the largest slab fits

RARE static uint64_t moved(struct writer *w, uint64_t v) {
  for (unsigned i = 0; i < w->nset; i++) {
    const struct reloc_range *r = &w->set[i];
    if (v - r->old_base < r->old_end - r->old_base) {
      w->changed++;
      return v - r->old_base + r->new_base;
    }
  }
  return v;
}

RARE static void move_words(struct writer *w, char *p, size_t len) {
  for (size_t k = 0; k + 8 <= len; k += 8) {
    uint64_t v;
    memcpy(&v, p + k, 8);
    uint64_t m = moved(w, v);
    if (m != v) memcpy(p + k, &m, 8);
  }
}

RARE static void out(struct writer *w, const void *p, size_t len,
                     uint64_t off) {
  if (w->err) return;
  int r = os_pwrite_all(w->fd, p, len, off);
  if (r) w->err = r;
}

RARE static void span(void *arg, const struct inspect_span *s) {
  struct writer *w = arg;
  if (w->err) return;
  struct inspect *in = w->in;
  const struct poolfile_header *h = &in->hdr;
  uint64_t off = h->data_off + ((uint64_t)s->page << PAGE_SHIFT);
  uint64_t len = (uint64_t)s->npages << PAGE_SHIFT;
  const char *src = (const char *)in->map + off;
  if (w->still && (s->kind == INSPECT_SPAN_LARGE ||
                   s->kind == INSPECT_SPAN_SLAB)) {
    out(w, src, len, off);
  } else if (s->kind == INSPECT_SPAN_LARGE) {
    uint64_t blk, req;
    if (!inspect_block_at(in, off, &blk, &req)) req = 0;
    for (uint64_t at = 0; at < len && !w->err; at += RELOC_CHUNK) {
      size_t n = len - at < RELOC_CHUNK ? (size_t)(len - at) : RELOC_CHUNK;
      memcpy(w->buf, src + at, n);
      if (at < req) move_words(w, w->buf, req - at < n ? req - at : n);
      out(w, w->buf, n, off + at);
    }
  } else if (s->kind == INSPECT_SPAN_SLAB) {
    if (len > RELOC_CHUNK) {
      w->err = -EFBIG;
      return;
    }
    uint64_t bm[INSPECT_BM_WORDS];
    uint32_t inited = 0;
    if (inspect_slab_free(in, s->page, bm, &inited)) {
      w->err = -EUCLEAN;
      return;
    }
    memcpy(w->buf, src, len);
    uint32_t bsize = sc_table[s->cls].bsize;
    for (uint32_t b = 0; b < inited && b < s->nblocks; b++) {
      char *blk = w->buf + (size_t)b * bsize;
      int is_free = (bm[b / 64] >> (b % 64)) & 1;
      // A free block's first word links its list by offset: not an
      // address, whatever it looks like.
      if (is_free) move_words(w, blk + 8, bsize - 8);
      else move_words(w, blk, bsize);
    }
    out(w, w->buf, len, off);
  }
  // Free spans: holes in the copy.
}

RARE int reloc_write(struct inspect *in, const struct reloc_range *set,
                     unsigned nset, uint64_t new_base, int fd, int durable,
                     uint64_t *changed, char *why, size_t why_len) {
  char eb[32];
  struct writer w = {in, set, nset, fd, 0, 0, NULL, new_base == in->hdr.base};
  // A copy that moves nothing (an image with its deltas applied, at
  // restore) copies the spans in use as they are: no word is read.
  for (unsigned i = 0; i < nset; i++)
    if (set[i].new_base != set[i].old_base) w.still = 0;
  w.buf = vmmap_scratch(RELOC_CHUNK);
  if (!w.buf) {
    fmt_format(why, why_len, "no memory for a %zu-byte buffer", RELOC_CHUNK);
    return -ENOMEM;
  }
  struct poolfile_header h = in->hdr;
  uint64_t len = h.st.length;
  int r = os_truncate(fd, len);
  if (r) w.err = r;
  // The descriptors as they are, then the data.
  uint64_t meta = h.st.meta_committed;
  if (h.desc_off + meta > len) meta = len - h.desc_off;
  out(&w, (const char *)in->map + h.desc_off, meta, h.desc_off);
  struct inspect_cb cb = {NULL, span, &w};  // reloc_check saw no problem
  if (!w.err) inspect_walk(in, &cb, NULL);
  // The header last: moved roots, the new base, sealed.
  for (unsigned k = 0; k < MMPOOL_ROOTS; k++)
    if (h.roots[k]) h.roots[k] = moved(&w, h.roots[k]);
  h.base = new_base;
  poolfile_seal(&h);
  out(&w, &h, sizeof h, 0);
  if (!w.err && durable) w.err = os_fsync(fd);
  vmmap_scratch_release(w.buf);
  *changed = w.changed;
  if (w.err) {
    fmt_format(why, why_len, "cannot write the moved copy: %s",
               os_strerror(-w.err, eb, sizeof eb));
    return w.err;
  }
  return 0;
}
