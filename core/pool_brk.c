// pool_brk.c: the program break recorded in a pool's header (pool_brk.h).
//
// The record is two pool offsets in the header's state, which the header
// checksum does not cover and poolfile_validate leaves alone (a damaged
// record must not cost the pool). Here it is held against the pool's
// descriptors, which the attach checked in full: the start must be exactly
// POOL_BRK_SKIP into a live large block, the break inside that block. A
// record that passes names memory of the pool that nothing else owns (a
// large block is handed out whole), so the break can move over it without
// reaching another block or the allocator's metadata.
#include <errno.h>

#include "fmt.h"
#include "heap.h"
#include "lock.h"
#include "page.h"
#include "pool_brk.h"

// pre: p->lock.
static int check(struct mmpool *p, uint64_t s, uint64_t c, struct pool_brk *out,
                 char *why, size_t why_len) {
  if (s == 0 && c == 0) return -ENOENT;
  // Offsets first, so that no sum below can wrap.
  if (s < POOL_BRK_SKIP || s > p->capacity || c > p->capacity) {
    fmt_format(why, why_len,
               "the break record 0x%llx-0x%llx lies outside "
               "the pool (capacity 0x%llx)",
               (unsigned long long)s, (unsigned long long)c,
               (unsigned long long)p->capacity);
    return -EUCLEAN;
  }
  uintptr_t blk = p->base + (uintptr_t)s - POOL_BRK_SKIP;
  const char *w = NULL;
  struct pdesc *d = heap_block(p, blk, &w);
  if (d && d->kind != PD_LARGE) w = "a small block, not a large block";
  if (!d || d->kind != PD_LARGE) {
    fmt_format(why, why_len,
               "the recorded start of the break, offset 0x%llx, "
               "is not %u bytes into a live large block (0x%lx: %s)",
               (unsigned long long)s, (unsigned)POOL_BRK_SKIP,
               (unsigned long)blk, w);
    return -EUCLEAN;
  }
  uintptr_t end = blk + ((uintptr_t)d->npages << PAGE_SHIFT);
  uintptr_t cur = p->base + (uintptr_t)c;
  if (cur < blk + POOL_BRK_SKIP || cur > end) {
    fmt_format(why, why_len,
               "the recorded break, offset 0x%llx, lies outside "
               "the region 0x%lx-0x%lx of its block",
               (unsigned long long)c, (unsigned long)(blk + POOL_BRK_SKIP),
               (unsigned long)end);
    return -EUCLEAN;
  }
  out->block = blk;
  out->start = blk + POOL_BRK_SKIP;
  out->cur = cur;
  out->end = end;
  return 0;
}

RARE int pool_brk_get(struct mmpool *p, struct pool_brk *out, char *why,
                      size_t why_len) {
  engine_lock(&p->lock);
  // Each field read once: in a shared file pool the header is the file.
  uint64_t s = __atomic_load_n(&p->hdr->st.brk_start, __ATOMIC_RELAXED);
  uint64_t c = __atomic_load_n(&p->hdr->st.brk_cur, __ATOMIC_RELAXED);
  int r = check(p, s, c, out, why, why_len);
  engine_unlock(&p->lock);
  return r;
}

// Two stores, not one. A move of the break changes brk_cur alone, so only
// the first record of a region (once per file, or after a damaged record)
// has an instant where a process killed by a signal would leave one field
// of the two set, which check() refuses (a warning and a fresh break).
void pool_brk_set(struct mmpool *p, uintptr_t start, uintptr_t cur) {
  if (p->frozen || !p->hdr) return;
  struct pool_state *st = &p->hdr->st;
  __atomic_store_n(&st->brk_start, start ? (uint64_t)(start - p->base) : 0,
                   __ATOMIC_RELAXED);
  __atomic_store_n(&st->brk_cur, cur ? (uint64_t)(cur - p->base) : 0,
                   __ATOMIC_RELAXED);
}
