// internal.h: the engine's shared structures and the fast paths.
//
// Process-local state (never in a pool): the table of open pool handles, the
// thread heaps, and the calling thread's identity. Pool-resident state is in
// poolfile.h. The fast paths at the end of this file are the whole cost of a
// small malloc/free pair; everything else is a call into heap.c.
#ifndef MMPOOL_INTERNAL_H
#define MMPOOL_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "mmpool.h"
#include "poolfile.h"
#include "sizeclass.h"
#include "spec.h"
#include "vmmap.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define HIDDEN __attribute__((visibility("hidden")))

enum { POOL_CLOSED = 0, POOL_OPEN = 1 };

// An open pool, process-local. pool_table[id]; id 0 is a permanent empty
// entry, so that an address no pool owns lands on bounds that fail.
struct mmpool {
  // --- read by the fast paths -----------------------------------------
  uintptr_t base;        // address of the header
  uintptr_t data;        // base + data_off
  size_t data_len;       // committed data bytes (grows; relaxed atomic)
  struct pdesc *desc;    // base + desc_off
  unsigned id;           // index in pool_table
  uint32_t gen;          // bumped at each open of this slot
  // --- everything else -------------------------------------------------
  int state;             // POOL_*
  struct poolfile_header *hdr;
  pthread_mutex_t lock;  // spans, avail lists, growth, roots
  int fd;                // file pools, else -1
  int is_file, shared;   // file pool; mapped MAP_SHARED
  int fork_frozen;       // a shared file pool seen from a fork child
  int spec_full, spec_brk;
  uint64_t capacity;
  uint64_t dev, ino;      // file pools: the file's identity
  size_t meta_mapped;    // descriptor bytes mapped, from desc_off
  // Data pages held by slabs and large blocks: now, and at most since the
  // pool was opened (pool lock).
  uint32_t pages_used, pages_peak;
  char name[MMPOOL_NAME_MAX + 1];
  char path[SPEC_PATH_MAX];
};

extern struct mmpool pool_table[MMPOOL_MAX_POOLS + 1] HIDDEN;

// A thread's heap in one pool: where it allocates each class from. Volatile
// (not in the pool): it only names slabs, whose lists hold all the state.
struct theap {
  struct pdesc *direct[SC_DIRECT_MAX / 16 + 1]; // current slab by (n+15)>>4
  struct pdesc *cur[SC_COUNT];                  // current slab by class
  uintptr_t base;          // the pool's base
  struct mmpool *pool;
  uint32_t gen;            // pool->gen when made; stale when different
  uint32_t tid;            // owner thread id
  uint32_t list[SC_COUNT]; // owned slabs of each class: page index + 1
  struct theap *reg_next, *reg_prev;  // registry of live heaps
  int registered;
};

// The empty heap and slab: every thread starts with tl_heap[i] = &empty_heap,
// whose slabs have no free block, so the fast path needs no NULL test.
// Pool id 0 names no pool: tl_heap[0] stays the empty heap forever (the
// preload library's routing tables rely on it: id 0 there means "slow
// path").
extern struct theap empty_heap HIDDEN;
extern struct pdesc empty_desc HIDDEN;
extern __thread struct theap *tl_heap[MMPOOL_MAX_POOLS + 1] HIDDEN;
// This thread's id as a slab owner; TID_NONE matches no slab.
#define TID_NONE 0xfffffffeu
extern __thread uint32_t tl_tid HIDDEN;

// ---------------------------------------------------------------------------
// page.c: the page allocator of a pool (spans of 64 KiB pages). pre: lock.

// Index of a free span of n pages aligned to align_pages (a power of two),
// taken from the free spans or the top. *dirty: the pages may be non-zero.
// -ENOMEM when the pool is full.
int64_t page_span_alloc(struct mmpool *p, uint32_t n, uint32_t align_pages,
                        int *dirty) HIDDEN;
// Returns pages [idx, idx+n) to the free spans, merged with free neighbours.
void page_span_free(struct mmpool *p, uint32_t idx, uint32_t n) HIDDEN;
// Takes pages [idx+n, idx+n+extra) for the block at idx if they are free
// (or the top); 0 on success.
int page_span_extend(struct mmpool *p, uint32_t idx, uint32_t n,
                     uint32_t extra) HIDDEN;
// Marks [idx, idx+n) as a slab or large block (head and tails).
void page_set_span(struct mmpool *p, uint32_t idx, uint32_t n,
                   uint8_t kind) HIDDEN;
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
// Live blocks in address order (see mmpool_walk).
int page_walk(struct mmpool *p, int (*fn)(void *, size_t, void *),
              void *arg) HIDDEN;
void page_stats(struct mmpool *p, mmpool_stats_t *out) HIDDEN;
// After a crash: rebuilds spans, bins and slab counts from the live heads.
// -EUCLEAN (reason in why) when a descriptor is damaged, not half-written.
int page_repair(struct mmpool *p, char *why, size_t why_len) HIDDEN;
// On attach: every slab becomes detached; avail lists are rebuilt.
void page_detach_all(struct mmpool *p) HIDDEN;

static inline uint32_t page_index(const struct mmpool *p,
                                  const struct pdesc *d) {
  return (uint32_t)(d - p->desc);
}
static inline uintptr_t page_addr(const struct mmpool *p, uint32_t idx) {
  return p->data + ((uintptr_t)idx << PAGE_SHIFT);
}

// ---------------------------------------------------------------------------
// heap.c: thread heaps and the slow paths.

void *heap_alloc_slow(struct mmpool *p, size_t n) HIDDEN;
// A block of class c (for memalign), n bytes requested.
void *heap_alloc_class(struct mmpool *p, unsigned c, size_t n) HIDDEN;
void *heap_alloc_large(struct mmpool *p, size_t n, size_t align,
                       int *dirty) HIDDEN;
void heap_free_slow(struct mmpool *p, struct pdesc *d, uintptr_t a) HIDDEN;
void heap_slab_empty(struct mmpool *p, struct pdesc *d) HIDDEN;
// The head descriptor of a live block at a, or NULL (message in why).
struct pdesc *heap_block(struct mmpool *p, uintptr_t a, const char **why)
    HIDDEN;
size_t heap_usable(struct mmpool *p, struct pdesc *d, uintptr_t a) HIDDEN;
// Resizes in place if it can; 0 on success.
int heap_resize(struct mmpool *p, struct pdesc *d, uintptr_t a,
                size_t n) HIDDEN;
// Pool close: neutralise every thread's heap of p. pre: registry lock.
void heap_forget_pool(struct mmpool *p) HIDDEN;
void heap_init_once(void) HIDDEN;
// Called for a free of a pointer no pool owns; returns 1 when it knows the
// pointer (the preload library's bootstrap blocks), else it is reported.
extern int (*heap_foreign_free_hook)(void *ptr) HIDDEN;
void heap_fork_child(void) HIDDEN;
// The preload library's per-thread routing state: told when a thread exits
// (before its heaps are given up; no lock held) and in a fork child (after
// the registry lock is re-initialised, before the other threads' heaps are
// dropped). NULL when unused.
extern void (*heap_thread_exit_hook)(void) HIDDEN;
extern void (*heap_fork_child_hook)(void) HIDDEN;
void heap_registry_lock(void) HIDDEN;
// Process-local memory (thread heaps, the preload library's routing
// tables), 64-byte aligned, never given back; NULL when none is left.
// pre: registry lock.
void *heap_arena_alloc(size_t n) HIDDEN;
// Every engine lock is taken through these, which count the locks this
// thread holds or is acquiring. fork's prepare handler can run in a signal
// handler that interrupted this very thread inside (or on the way into) a
// critical section; it then takes no lock at all, as glibc does for a
// single-threaded process (PITFALLS 4.3), instead of deadlocking on itself.
extern __thread unsigned tl_locks HIDDEN;
static inline void engine_lock(pthread_mutex_t *m) {
  tl_locks++;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);  // counted before the attempt
  pthread_mutex_lock(m);
}
static inline void engine_unlock(pthread_mutex_t *m) {
  pthread_mutex_unlock(m);
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  tl_locks--;
}
void heap_registry_unlock(void) HIDDEN;

// ---------------------------------------------------------------------------
// pool.c: lifecycle.

// Opens or attaches; the pool handle or a negative errno with the reason
// recorded by log_fail.
int pool_open(const char *name, const struct pool_spec *sp,
              struct mmpool **out) HIDDEN;
int pool_close(struct mmpool *p) HIDDEN;
int pool_sync(struct mmpool *p) HIDDEN;
struct mmpool *pool_default(void) HIDDEN;
// Makes p the default pool (the preload library's configured default).
void pool_set_default(struct mmpool *p) HIDDEN;
struct mmpool *pool_by_name(const char *name) HIDDEN;
// Root updates re-seal the header. pre: p->lock.
void pool_seal(struct mmpool *p) HIDDEN;
void pool_fork_prepare(void) HIDDEN;
void pool_fork_parent(void) HIDDEN;
void pool_fork_child(void) HIDDEN;

// The pool that owns address a (its slot), or NULL.
static inline struct mmpool *pool_of_addr(uintptr_t a) {
  struct mmpool *p = &pool_table[vmmap_pool_id(a)];
  return a - p->base < p->capacity && p->state == POOL_OPEN ? p : NULL;
}

// ---------------------------------------------------------------------------
// Fast paths

// Pops a block of d's class for a request of n bytes; d has a free block.
static inline void *slab_pop(uintptr_t base, struct pdesc *d, uint64_t off,
                             size_t n) {
  uintptr_t blk = base + off;
  d->free = *(uint64_t *)blk;
  d->used++;
  // The slack array is indexed by granule from a biased base (see
  // sizeclass.h), so usable_size needs neither a division nor the slab start.
  *(uint16_t *)(base + d->side + ((off >> d->gshift) << 1)) =
      (uint16_t)(d->bsize - n);
  return (void *)blk;
}

// malloc of n <= SC_DIRECT_MAX bytes from p: two table loads and a pop.
static inline void *heap_alloc_direct(struct mmpool *p, size_t n) {
  struct theap *h = tl_heap[p->id];
  struct pdesc *d = h->direct[(n + 15) >> 4];
  uint64_t off = d->free;
  if (unlikely(off == 0)) return heap_alloc_slow(p, n);
  return slab_pop(h->base, d, off, n);
}

// malloc of any size from p; *dirty = 1 when the block may hold old bytes
// (calloc zeroes only then). NULL with the reason left by log_fail.
static inline void *heap_alloc(struct mmpool *p, size_t n, int *dirty) {
  *dirty = 1;
  if (likely(n <= SC_DIRECT_MAX)) return heap_alloc_direct(p, n);
  if (n <= SC_SMALL_MAX) {
    unsigned c = sc_of(n);
    struct theap *h = tl_heap[p->id];
    struct pdesc *d = h->cur[c];
    uint64_t off = d->free;
    if (likely(off)) return slab_pop(h->base, d, off, n);
    return heap_alloc_class(p, c, n);
  }
  return heap_alloc_large(p, n, 0, dirty);
}

// free: the pool from the address table, the slab from the page index; a
// block of a slab this thread owns goes back on the slab's free list.
static inline void heap_free(void *ptr) {
  uintptr_t a = (uintptr_t)ptr;
  struct mmpool *p = &pool_table[vmmap_pool_id(a)];
  uintptr_t rel = a - p->data;
  // Pool 0 has data_len 0: NULL and foreign pointers take the slow path.
  if (unlikely(rel >= __atomic_load_n(&p->data_len, __ATOMIC_RELAXED)))
    return heap_free_slow(p, NULL, a);
  struct pdesc *d = p->desc + (rel >> PAGE_SHIFT);
  d -= d->head_delta;
  // Only slabs carry thread ids. Blocks are 16-aligned: a misaligned
  // (interior) pointer goes to the slow path, which checks and reports it.
  if (likely(d->owner == tl_tid && (a & 15) == 0)) {
    *(uint64_t *)a = d->free;
    d->free = a - p->base;
    if (unlikely(--d->used == 0)) heap_slab_empty(p, d);
    return;
  }
  heap_free_slow(p, d, a);
}

#endif
