// page.h: the page allocator of one pool (page.c).
//
// A pool's data is cut into 64 KiB pages, each with a descriptor (struct
// pdesc, poolfile.h) in the pool itself. page.c hands out spans of pages
// for slabs and large blocks, keeps free spans in size bins, grows the
// committed part of the pool, and owns every whole-pool pass over the
// descriptors: check, walk, statistics, repair after a crash, detach on
// attach; and the checks, on first use, of an attached file's descriptors.
// It knows nothing of threads: heap.c sits above it.
//
// pre for every function below, unless it says otherwise: the pool's lock
// is held.
#ifndef MMPOOL_PAGE_H
#define MMPOOL_PAGE_H

#include <stddef.h>
#include <stdint.h>

#include "compiler.h"
#include "mmpool.h"
#include "poolfile.h"
#include "pooltable.h"

// Index of a free span of n pages aligned to align_pages (a power of two),
// taken from the free spans or the top. *dirty: the pages may be non-zero.
// -ENOMEM when the pool is full.
int64_t page_span_alloc(struct mmpool *p, uint32_t n, uint32_t align_pages,
                        int *dirty) HIDDEN;
// Returns pages [idx, idx+n) to the free spans, merged with free neighbours.
// Their pages are kept for reuse; in an anonymous pool they go back to the
// kernel once free for page_purge_delay_ms, on a later call of
// page_span_alloc or page_span_free (page.c, "Purging").
void page_span_free(struct mmpool *p, uint32_t idx, uint32_t n) HIDDEN;
// Gives every free page of an anonymous pool back to the kernel now (free
// spans, and the pages above the top); the number of pages. 0 for a file
// pool, whose free pages stay with the file.
uint64_t page_trim(struct mmpool *p) HIDDEN;
// Free pages of an anonymous pool kept for reuse, not given back yet: its
// dirty free spans and the pages between the top and hiwater (the figure
// the budget bounds). 0 for a file pool.
uint64_t page_kept(struct mmpool *p) HIDDEN;
// How long free pages wait before page_span_alloc or page_span_free gives
// them back (ms); tests change it.
extern uint32_t page_purge_delay_ms HIDDEN;
// Takes pages [idx+n, idx+n+extra) for the block at idx if they are free
// (or the top); 0 on success.
int page_span_extend(struct mmpool *p, uint32_t idx, uint32_t n,
                     uint32_t extra) HIDDEN;
// Marks [idx, idx+n) as a slab or large block (head and tails).
void page_set_span(struct mmpool *p, uint32_t idx, uint32_t n,
                   uint8_t kind) HIDDEN;
// Data pages above the top, never used: a span of that many is sure to
// fit (free spans below the top are not counted).
uint64_t page_room(struct mmpool *p) HIDDEN;
// Lists through descriptors (heads and links: page index + 1).
void page_list_push(struct mmpool *p, uint32_t *head, uint32_t idx) HIDDEN;
void page_list_remove(struct mmpool *p, uint32_t *head, uint32_t idx) HIDDEN;
// avail lists: detached slabs with room, per class.
void page_avail_push(struct mmpool *p, struct pdesc *d) HIDDEN;
void page_avail_remove(struct mmpool *p, struct pdesc *d) HIDDEN;
// Commits memory and descriptors so that pages below top are usable.
int page_grow(struct mmpool *p, uint64_t top) HIDDEN;
// Verifies every invariant; 0 or -EUCLEAN with a reason in why.
int page_check(struct mmpool *p, char *why, size_t why_len) HIDDEN;
// Lazy attach (page.c): a clean file's descriptors are checked on first
// use, not at attach. page_lazy_begin starts it (after the header checks;
// fast_len 0): -ENOMEM when the process-local record of checked pages
// cannot be made (then check everything now: page_check, page_detach_all).
int page_lazy_begin(struct mmpool *p) HIDDEN;
// 0 when descriptor idx may be trusted (checked now or before, made here,
// or no lazy attach); 1 when it says it lies inside a free span (nothing
// may follow it); -EUCLEAN when it is in a damaged span, said once and left
// unused from then on. Any lock or none may be held (it takes a lock of
// its own, after the pool's).
//
// Until a pool of this process is attached lazily (page_lazy_any, set for
// good by page_lazy_begin), no descriptor waits for its check: the answer
// is 0 without a call (heap_block, the slow free, runs it on every call).
extern int page_lazy_any HIDDEN;
int page_verify_lazy(struct mmpool *p, uint32_t idx) HIDDEN;
static inline int page_verify(struct mmpool *p, uint32_t idx) {
  if (likely(!__atomic_load_n(&page_lazy_any, __ATOMIC_RELAXED))) return 0;
  return page_verify_lazy(p, idx);
}
// heap_block's reason for a block in a damaged span: a free of it is
// ignored (the span's blocks leak; the warning was said).
extern const char page_damaged_why[] HIDDEN;
#define PAGE_DAMAGED page_damaged_why
// Grows fast_len towards data_len by a bounded number of checked pages.
// Called by the slow paths while fast_len < data_len; no lock needed.
void page_lazy_advance(struct mmpool *p) HIDDEN;
// fast_len after data_len changed: data_len, or less while pages of a
// lazily attached file are still unchecked.
void page_fast_sync(struct mmpool *p) HIDDEN;
// In a fork child: the lazy locks made anew.
// The lazy attach's first checks write descriptors (page_verify), also
// from outside the allocator (usable_size, realloc, set_root): a copy or
// a checksum of the pool's metadata holds this lock around it, after its
// last call into this file. Lock order: after the pool's lock.
void page_lazy_hold(struct mmpool *p) HIDDEN;
void page_lazy_release(struct mmpool *p) HIDDEN;
void page_lazy_fork_child(void) HIDDEN;
// 1 when detached slab d may be adopted or freed into: made by this
// process, or checked (page_check's slab checks) on its first use here.
// A damaged one gives 0 from then on (it is never used again: its blocks
// leak), said once with its page and the fault. pre: d checked
// (page_verify). 1 without a call before any lazy attach (page_verify).
int page_slab_sound_lazy(struct mmpool *p, struct pdesc *d) HIDDEN;
static inline int page_slab_sound(struct mmpool *p, struct pdesc *d) {
  if (likely(!__atomic_load_n(&page_lazy_any, __ATOMIC_RELAXED))) return 1;
  return page_slab_sound_lazy(p, d);
}
// The first slab of avail[c] that is sound; damaged ones on the way leave
// the list. NULL when none.
struct pdesc *page_avail_first(struct mmpool *p, unsigned c) HIDDEN;
// Live blocks in address order (see mmpool_walk). No lock: see api.c.
int page_walk(struct mmpool *p, int (*fn)(void *, size_t, void *),
              void *arg) HIDDEN;
void page_stats(struct mmpool *p, mmpool_stats_t *out) HIDDEN;
// After a crash: rebuilds spans, bins and slab counts from the live heads.
// -EUCLEAN (reason in why) when a descriptor is damaged, not half-written.
int page_repair(struct mmpool *p, char *why, size_t why_len) HIDDEN;
// On attach, after page_check (not lazily): every slab becomes
// detached, and is on its class's avail list iff its descriptor says it has
// room; every descriptor that is not a slab head gets owner OWNER_NONE,
// those inside free spans and above the top (up to meta_committed) are
// made inert (no head_delta), so that no free, stray ones included,
// reaches a slab through a descriptor the file chose. A field is written
// only when it changes.
void page_detach_all(struct mmpool *p) HIDDEN;
// 1 when a lies inside a block handed out: a slab block below inited (any
// byte of its block size) or a large block (any of its requested bytes).
// A block already freed back to its slab is not told apart.
int page_block_at(struct mmpool *p, uintptr_t a) HIDDEN;

static inline uint32_t page_index(const struct mmpool *p,
                                  const struct pdesc *d) {
  return (uint32_t)(d - p->desc);
}
static inline uintptr_t page_addr(const struct mmpool *p, uint32_t idx) {
  return p->data + ((uintptr_t)idx << PAGE_SHIFT);
}

#endif
