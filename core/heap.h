// heap.h: thread heaps, and the one fast path of the engine.
//
// A thread has a small heap in each pool it uses (struct theap, in
// process-local memory, never in the pool): for each size class, the slab
// it allocates from. The slabs' own free lists, in the pool, hold all the
// state; the heap only names slabs. heap.c holds every slow path: finding
// or making a slab, large blocks, frees from other threads, thread exit,
// pool close and fork.
//
// The fast path is the inline functions at the end of this file, and only
// them: the control API (api.c) and the preload library's entry points
// (shim/preload.c) allocate and free small blocks through them, so a rule
// that every allocation must follow is written here once. They pop and push
// the calling thread's own slabs without a lock or an atomic operation.
#ifndef MMPOOL_HEAP_H
#define MMPOOL_HEAP_H

#include <stddef.h>
#include <stdint.h>

#include "compiler.h"
#include "lock.h"
#include "page.h"
#include "poolfile.h"
#include "pooltable.h"
#include "sizeclass.h"

// A batch of blocks this thread freed into one slab of another thread's
// (heap_free_other), linked through their first words, each with the free
// mark. This thread's mallocs of their class take them first whenever what
// the fast path pops from runs dry (alloc_class installs pd in direct[]):
// the block is in this core's cache already, where going back to its
// owner cost a transfer each way. A batch is pushed onto its slab's
// thread-free list with one compare-and-swap when it holds `max` blocks,
// when another slab needs its entry, when it got no block for a while,
// and at every freeze and thread exit (heap.c, "Batches of remote
// frees").
struct rbatch {
  // The fast path's view, as of a slab: free is the first block (0: the
  // batch is empty), used counts the pops; slack_off and gshift are the
  // slab's (its blocks' slack entries), bsize and cls its class's.
  struct pdesc pd;
  struct pdesc *d;         // the slab
  uint64_t tail;           // pool offset of the last block
  uint32_t in;             // blocks put in: the batch holds in - pd.used
  uint16_t max;            // pushed when it holds this many
  uint8_t hot;             // a block put in since the last rb_age
};
#define RB_SLOTS 128       // entries per heap, by the slab's page index
                           // (a multiple of 64)

struct theap {
  uintptr_t base;          // the pool's base
  uintptr_t handle;        // pool->handle when made; 0 once forgotten
  // The current slab by size, for sizes up to SC_DIRECT_MAX: the fast path
  // indexes it with the size itself (no rounding: two instructions fewer
  // than a table by 16-byte step, for 8 KiB per heap).
  struct pdesc *direct[SC_DIRECT_MAX + 1];
  // By size too: the slack of a block of that size (block size - size),
  // the same for every slab of its class. One load instead of the block
  // size's load and a subtraction, for 2 KiB per heap.
  uint16_t slack[SC_DIRECT_MAX + 1];
  struct pdesc *cur[SC_COUNT];                  // current slab by class
  struct mmpool *pool;
  uint32_t gen;            // pool->gen when made; stale when different
  uint32_t tid;            // owner thread id
  uint32_t list[SC_COUNT]; // owned slabs of each class: page index + 1
  uint32_t scan[SC_COUNT]; // where find_slab looks next in list: idem, 0:
                           // the head
  uint32_t nlist[SC_COUNT];// slabs in list
  struct theap *reg_next, *reg_prev;  // registry of live heaps
  int registered;
  // release_idle: looks for fresh pages in a row that found the class's
  // current slab empty, with this first free block.
  uint64_t idle_head[SC_COUNT];
  uint8_t idle[SC_COUNT];
  struct rbatch rb[RB_SLOTS];
  // By class, the batches that may hold its blocks (bit i: rb[i]), so that
  // alloc_class finds one without looking at every entry.
  uint64_t rb_mask[SC_COUNT][RB_SLOTS / 64];
  uint64_t rb_classes;     // bit c: rb_mask[c] may have a bit set
  uint32_t rb_tick;        // blocks put in batches, for rb_age
};

// The empty heap and slab: every thread starts with all its heaps the empty
// heap, whose slabs have no free block, so the fast path needs no NULL test.
// Pool id 0 names no pool: its heap stays the empty heap forever (the
// preload library's routing tables rely on it: id 0 there means "slow
// path").
extern struct theap empty_heap HIDDEN;
extern struct pdesc empty_desc HIDDEN;
// This thread's id as a slab owner; TID_NONE matches no slab.
#define TID_NONE 0xfffffffeu
extern __thread uint32_t tl_tid HIDDEN;

// What the fast path reads of its thread, in one TLS object (one address
// computation serves all its fields):
// - heap[id]: the thread's heap in pool id;
// - main: heap[main id], the heap of the pool that the preload library's
//   plain small mallocs of this thread go to (heap_set_main): malloc's
//   fast path loads it from a fixed place, where heap[id] needs the id
//   loaded first (one dependent load fewer; see heap_try_main);
// - fast_tid: the id the free fast path compares with a slab's owner:
//   tl_tid, or TID_NONE under MMPOOL_CHECK=full, so that every free takes
//   the slow path;
// - inside: more than 0 while the thread is inside the allocator (a count,
//   not a flag: a signal handler may allocate while its thread is inside).
// While the allocator is frozen (heap_freeze), another thread has replaced
// heap[] by the empty heap and fast_tid by TID_NONE ("poisoned"), so that
// every call goes to a slow path, which waits for the thaw; the thread
// restores its own fields from its private copy when it next passes there.
struct heap_tls {
  struct theap *heap[MMPOOL_MAX_POOLS + 1];
  struct theap *main;
  uint32_t fast_tid;
  uint8_t inside;
  uint8_t poisoned;
};
extern __thread struct heap_tls tl_fast HIDDEN;

// The fast path's "inside" mark: one add to thread-local memory on the way
// in and one on the way out, no fence and no atomic read-modify-write.
// heap_freeze pays for it: it stores the poison, then makes every running
// thread execute a full barrier (membarrier), then reads the marks. A thread
// whose mark it reads as 0 either had not entered yet (it will load the
// poison, since the barrier ordered its later loads after the poison
// store) or has left (its stores are visible before the mark's clear).
// Two stores per call is the least such a mark costs (docs/engine.md, "Why
// 4 and not 2").
static inline __attribute__((always_inline)) void heap_in(void) {
  tl_fast.inside++;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);  // for the compiler only
}

static inline __attribute__((always_inline)) void heap_out(void) {
#if defined(__x86_64__) || defined(__i386__)
  // TSO: no store passes an older one, so the clear is seen after the
  // stores of the operation; the compiler must keep them before it.
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  tl_fast.inside--;
#else
  __atomic_store_n(&tl_fast.inside, (uint8_t)(tl_fast.inside - 1),
                   __ATOMIC_RELEASE);
#endif
}

// ---------------------------------------------------------------------------
// One instant (heap.c): the freeze.
//
// heap_freeze returns when no other thread is inside the allocator, and
// holds every thread that tries to enter (fast or slow path) until
// heap_thaw; between the two, the pools' metadata does not change, except by
// the freezing thread itself. One freeze at a time (a lock); it may be
// taken with no engine lock held (lock order: the freeze, then the registry
// lock, then a pool's lock). Sync, close, exit and fork use it.
void heap_freeze(void) HIDDEN;
void heap_thaw(void) HIDDEN;
// Every slow path that reads or changes a pool's metadata runs between
// these two: the first waits while the allocator is frozen (unless this
// thread froze it, or is inside already) and restores a poisoned thread.
void heap_enter(void) HIDDEN;
void heap_leave(void) HIDDEN;

// ---------------------------------------------------------------------------
// Slow paths (heap.c). Failures return NULL with the reason left by
// log_fail (ENOMEM: full; EINVAL: closed; EBUSY: frozen in a fork child).

// A block of n bytes (n <= SC_SMALL_MAX) of class sc_of(n) from p.
void *heap_alloc_slow(struct mmpool *p, size_t n) HIDDEN;
// A block of class c (for memalign), n bytes requested.
void *heap_alloc_class(struct mmpool *p, unsigned c, size_t n) HIDDEN;
// A run of whole pages for n bytes, aligned to align (0: a page); *dirty = 1
// when it may hold old bytes.
void *heap_alloc_large(struct mmpool *p, size_t n, size_t align,
                       int *dirty) HIDDEN;
// Every free the fast path does not finish: other threads' slabs, large
// blocks, detached slabs, NULL, foreign and invalid pointers, blocks that
// bear the free mark. Keeps errno. A pointer inside an open pool that is not
// a live block there aborts the program with one line naming `call`, the
// address and the pool; one that no pool owns is reported and ignored.
void heap_free_slow(struct mmpool *p, struct pdesc *d, uintptr_t a,
                    const char *call) HIDDEN;
// free's path for a block of a page this thread does not own: d is the
// page's head descriptor, tid what heap_free_as read of fast_tid. A block
// of another thread's slab that checks out exactly (the start of a block
// handed out, without the free mark) goes into this thread's batch for
// that slab (struct rbatch), or, for a thread that has none to keep, onto
// the slab's thread-free list at once; anything else takes
// heap_free_slow. pre: inside (heap_in); returns outside.
void heap_free_other(struct mmpool *p, struct pdesc *d, uintptr_t a,
                     const char *call, uint32_t tid) HIDDEN;
// Aborts with "CALL(): double free of ADDR in pool 'NAME'" or "CALL():
// invalid pointer ADDR (WHY) in pool 'NAME'", as heap_block described it.
_Noreturn void heap_misuse(struct mmpool *p, uintptr_t a, const char *call,
                           const char *why) HIDDEN;
// MMPOOL_CHECK: 1 when every free is checked in full (set once, at start).
extern int heap_check_full HIDDEN;
// The last block of slab d was freed by its owner. pre: inside (heap_in);
// returns outside (heap_out).
void heap_slab_empty(struct mmpool *p, struct pdesc *d) HIDDEN;
// The head descriptor of a live block at a, or NULL with the reason in
// why; a block on its slab's free lists gives HEAP_FREED.
struct pdesc *heap_block(struct mmpool *p, uintptr_t a, const char **why)
    HIDDEN;
extern const char heap_freed_why[] HIDDEN;
#define HEAP_FREED heap_freed_why
size_t heap_usable(struct mmpool *p, struct pdesc *d, uintptr_t a) HIDDEN;
// malloc_trim for pool p: at one instant (heap_freeze), every thread's
// slabs that hold no block, once the blocks other threads freed into them
// are collected, go back to the pool's free pages; then every free page of
// an anonymous pool goes back to the kernel (page_trim). The number of
// pages given back to the kernel: 0 for a closed, frozen or file pool.
uint64_t heap_trim(struct mmpool *p) HIDDEN;
// Pushes every thread's batches of blocks freed into other threads' slabs
// (heap.c, "Batches of remote frees"), so that their slabs count them free:
// for the readers of a whole pool that run outside a freeze
// (mmpool_stats, mmpool_walk). A freeze and a thaw: every other thread
// leaves the allocator meanwhile. pre: no engine lock held, not inside.
void heap_flush_all(void) HIDDEN;
// Resizes in place if it can; 0 on success.
int heap_resize(struct mmpool *p, struct pdesc *d, uintptr_t a,
                size_t n) HIDDEN;

// ---------------------------------------------------------------------------
// Threads, pools, fork (heap.c)

// Pool close: neutralise every thread's heap of p. pre: registry lock.
void heap_forget_pool(struct mmpool *p) HIDDEN;
// Exit or exec: every thread's slabs of p left detached (as at thread
// exit), then the heaps forgotten. pre: registry and pool locks, and no
// other thread running.
void heap_release_pool(struct mmpool *p) HIDDEN;
void heap_init_once(void) HIDDEN;
// Called for a free of a pointer no pool owns; returns 1 when it knows the
// pointer (the preload library's bootstrap blocks), else it is reported.
extern int (*heap_foreign_free_hook)(void *ptr) HIDDEN;
// In a fork child; quiet: the parent froze the allocator for the fork.
void heap_fork_child(int quiet) HIDDEN;
// The preload library's per-thread routing state: told when a thread exits
// (before its heaps are given up; no lock held) and in a fork child (after
// the registry lock is re-initialised, before the other threads' heaps are
// dropped). NULL when unused.
extern void (*heap_thread_exit_hook)(void) HIDDEN;
extern void (*heap_fork_child_hook)(void) HIDDEN;
// The registry lock: the thread heaps, the threads below, and what the
// hooks above keep.
void heap_registry_lock(void) HIDDEN;
void heap_registry_unlock(void) HIDDEN;

// The process's one registry of threads. A thread's record lives in its
// own TLS; it is linked by heap_thread_join and unlinked when the thread
// exits (after heap_thread_exit_hook) and, for every thread but the
// forking one, in a fork child (after heap_fork_child_hook). Layers above
// keep their per-thread state in client instead of a list of their own.
struct heap_thread {
  struct heap_thread *next, *prev; // registry lock and the freeze's lock
  int linked;
  void *client;                    // the preload library's state, or NULL
  struct heap_tls *fast;           // the thread's tl_fast
};
// Links the calling thread's record with client (once; a later call only
// sets client), and arms the thread-exit hook. Takes the freeze's lock and
// the registry lock. (heap_enter links every thread that enters a slow
// path, with no client.)
void heap_thread_join(void *client) HIDDEN;
// The first linked thread (follow next). pre: registry lock.
struct heap_thread *heap_threads(void) HIDDEN;
// Process-local memory (thread heaps, the preload library's routing
// tables), 64-byte aligned, zeroed (fresh pages, never written before:
// what a caller does not write stays out of its resident memory), never
// given back; NULL when none is left.
// pre: registry lock.
void *heap_arena_alloc(size_t n) HIDDEN;

// ---------------------------------------------------------------------------
// The fast path

// Pops the free block at pool offset off of slab d (which has it) for a
// request of d->bsize - slack bytes.
static inline void *heap_slab_pop(uintptr_t base, struct pdesc *d,
                                  uint64_t off, uint16_t slack) {
  uintptr_t blk = base + off;
  // No block is at address 0: callers that test what heap_try_* returned
  // need no second test after a pop (the compiler drops it).
  if (blk == 0) __builtin_unreachable();
  d->free = *(uint64_t *)blk;
  ((uint64_t *)blk)[1] = 0;  // the free mark (see heap_free)
  d->used++;
  // The slack array is indexed by granule from a biased base (see
  // sizeclass.h), so usable_size needs neither a division nor the slab start.
  *pdesc_slack(base, d, off) = slack;
  return (void *)blk;
}

// A block for n <= SC_DIRECT_MAX bytes from the thread heap in *slot (a
// field of tl_fast, read once inside: a freeze may poison it until then),
// or NULL when the slab at hand has no free block. Table loads (the heap,
// the slab, its slack) and a pop.
static inline __attribute__((always_inline)) void *heap_try_slot(
    struct theap *const *slot, size_t n) {
  heap_in();
  struct theap *h = *slot;
  struct pdesc *d = h->direct[n];
  uint64_t off = d->free;
  void *b = NULL;
  if (likely(off != 0)) b = heap_slab_pop(h->base, d, off, h->slack[n]);
  heap_out();
  return b;
}

// A block for n <= SC_DIRECT_MAX bytes from this thread's heap in pool id,
// or NULL (the caller then takes a slow path: heap_alloc_slow, or a routing
// decision first). Id 0, a pool this thread has not used yet and a closed
// pool all give NULL: their heap is the empty heap.
static inline __attribute__((always_inline)) void *
heap_try_direct(unsigned id, size_t n) {
  return heap_try_slot(&tl_fast.heap[id], n);
}

// heap_try_direct from this thread's main heap (heap_set_main). The load
// chain of malloc's fast path is what a small-object loop waits on: heap,
// slab, free block, its link. Through heap[id] the id comes first; a loop
// of 32 mixed sizes (bench/workloads/small.c) ran 12 % faster without it
// (docs/performance.md, "The main heap").
static inline __attribute__((always_inline)) void *heap_try_main(size_t n) {
  return heap_try_slot(&tl_fast.main, n);
}

// This thread's main heap (heap_try_main) is its heap in pool id from now
// on, as that heap changes (0: the empty heap). For the preload library,
// whose routing decides it.
void heap_set_main(unsigned id) HIDDEN;

// heap_try_direct for the control API: NULL also when this thread's heap
// in pool id was not made for the open of `handle` (heap.handle: 0 for the
// empty heap and once its pool is closed), so a stale handle takes the slow
// path. One load serves both tests.
static inline __attribute__((always_inline)) void *
heap_try_direct_handle(unsigned id, uintptr_t handle, size_t n) {
  heap_in();
  struct theap *h = tl_fast.heap[id];
  struct pdesc *d = h->direct[n];
  uint64_t off = d->free;
  void *b = NULL;
  if (likely(h->handle == handle && off != 0))
    b = heap_slab_pop(h->base, d, off, h->slack[n]);
  heap_out();
  return b;
}

// The same for a size of class c, SC_DIRECT_MAX < n <= SC_SMALL_MAX.
static inline __attribute__((always_inline)) void *
heap_try_class(unsigned id, unsigned c, size_t n) {
  heap_in();
  struct theap *h = tl_fast.heap[id];
  struct pdesc *d = h->cur[c];
  uint64_t off = d->free;
  void *b = NULL;
  if (likely(off != 0))
    b = heap_slab_pop(h->base, d, off, (uint16_t)(d->bsize - n));
  heap_out();
  return b;
}

// malloc of any size from p; *dirty = 1 when the block may hold old bytes
// (calloc zeroes only then). NULL with the reason left by log_fail.
static inline void *heap_alloc(struct mmpool *p, size_t n, int *dirty) {
  *dirty = 1;
  if (n <= SC_SMALL_MAX) {
    void *b = n <= SC_DIRECT_MAX ? heap_try_direct(p->id, n)
                                 : heap_try_class(p->id, sc_of(n), n);
    return likely(b != NULL) ? b : heap_alloc_slow(p, n);
  }
  return heap_alloc_large(p, n, 0, dirty);
}

// The push of heap_free_as: block a of slab d, which this thread owns (the
// caller is inside, heap_in); returns outside.
static inline __attribute__((always_inline)) void heap_free_own(
    struct mmpool *p, struct pdesc *d, uintptr_t a, const char *call) {
  uint64_t *b = (uint64_t *)a;
  // Blocks are 16-aligned: a misaligned (interior) pointer goes to the
  // slow path, which checks and reports it.
  if (likely((a & 15) == 0 && b[1] != (uintptr_t)d)) {
    b[0] = d->free;
    // A relaxed atomic store is a plain mov, but keeps the compiler from
    // pairing the two stores through vector registers (4 instructions).
    __atomic_store_n(&b[1], (uintptr_t)d, __ATOMIC_RELAXED);
    d->free = a - p->base;
    // The slab's last block. The current slab of its class stays at hand
    // and never gets here: its count is pinned (PDESC_USED_PIN), so a
    // block allocated and freed in turn, or a batch freed whole, costs no
    // test of which slab it was (a branch on "emptied" alone is
    // mispredicted half the time when a batch of mixed sizes is freed).
    // heap_slab_empty leaves the allocator itself (a tail call: no
    // register is kept across a call here).
    if (unlikely(--d->used == 0)) return heap_slab_empty(p, d);
    heap_out();
    return;
  }
  heap_out();
  heap_free_slow(p, d, a, call);
}

// free, as called by `call` ("free", "realloc": named in the message of a
// misuse): the pool from the address table, the slab from the page index; a
// block of a slab this thread owns goes back on the slab's free list.
//
// Misuse checks (docs/engine.md, "Misuse"). A block on a free list holds
// its slab's descriptor address in its second word (the free mark: blocks
// are at least 16 bytes); heap_slab_pop clears it. A block that already
// bears the mark is freed twice, or is live and holds that address as data
// by chance: the slow path looks it up on the slab's free lists and aborts
// only when it is there. Misaligned pointers and everything outside a slab
// of this thread take the slow path, which checks exactly. Two cases pass
// this path unchecked: a 16-aligned interior pointer of a block, and a block
// of the slab never handed out; MMPOOL_CHECK=full sends every free to the
// slow path (tl_fast.fast_tid stays TID_NONE) and catches them too.
static inline __attribute__((always_inline)) void heap_free_as(
    void *ptr, const char *call) {
  uintptr_t a = (uintptr_t)ptr;
  struct mmpool *p = &pool_table[vmmap_pool_id(a)];
  uintptr_t rel = a - p->data;
  // Pool 0 has fast_len 0: NULL and foreign pointers take the slow path.
  // fast_len only grows while a pool is open, and an aligned size_t load is
  // atomic on every target we build for: a plain read, which the compiler
  // folds into the compare (an __atomic_load_n costs two more instructions).
  if (likely(rel < p->fast_len)) {
    struct pdesc *d = p->desc + (rel >> PAGE_SHIFT);
    // The mark goes before the load of fast_tid, which a freeze poisons
    // (heap_in); what was read before it is either still true or, after a
    // freeze that changed it, behind a poisoned fast_tid.
    heap_in();
    // Only slab heads carry thread ids (every other descriptor has
    // OWNER_NONE or OWNER_DETACHED), so a page whose owner is this thread
    // is the head of its slab: a one-page slab (blocks up to 7 KiB) needs
    // no head_delta. Any other page, a later page of a slab of bigger
    // blocks among them, finds its head first. (api.c and shim/preload.c
    // are built with -fno-crossjumping: the two pushes stay apart, and the
    // first keeps its registers.)
    uint32_t tid = tl_fast.fast_tid;
    if (likely(d->owner == tid)) return heap_free_own(p, d, a, call);
    d -= d->head_delta;
    if (likely(d->owner == tid)) return heap_free_own(p, d, a, call);
    return heap_free_other(p, d, a, call, tid);
  }
  heap_free_slow(p, NULL, a, call);
}

static inline __attribute__((always_inline)) void heap_free(void *ptr) {
  heap_free_as(ptr, "free");
}

// 1 when the address so bytes into slab d (its head descriptor) starts a
// block handed out once, as heap_block decides it, with the division by
// the block size done by one multiply (sizeclass.h, sc_recip): its high
// bits are the block's index, its low bits say whether so is a multiple
// (a second multiply, index times block size, made realloc's chain of
// dependent operations longer). For the paths that take a block without
// heap_block: realloc's, and free's of another thread's block (whose
// owner may raise inited meanwhile).
static inline __attribute__((always_inline)) int heap_block_start(
    const struct pdesc *d, uint64_t so) {
  uint64_t x = so * sc_recip[d->cls];
  return (x & SC_RECIP_FRAC) < SC_START_BELOW &&
         (x >> 40) < __atomic_load_n(&d->inited, __ATOMIC_RELAXED);
}

// The pool of a block heap_try_resize found (0: must move).
static inline struct mmpool *heap_pool_at(const void *ptr) {
  return &pool_table[vmmap_pool_id((uintptr_t)ptr)];
}

// realloc's fast path, for a block of a slab this thread owns or no
// thread owns (a full slab is detached: the blocks of a vector grown in
// step with others fill their slab), checked as heap_free_as checks a
// block (the free mark, a slab head) and also for being the start of a
// block handed out (so 16-byte aligned): 1 when n bytes
// stay in place (heap_resize's rule: the block is at most twice what is
// needed), its slack updated (the live block's own entry: no other thread
// writes it); 0 when the block must move, with *usable its usable size
// (its pool: heap_pool_at); -1 when only the slow path can tell (another
// thread's block, a large block, a pointer the checks refuse,
// MMPOOL_CHECK=full). n > 0. The pool is not returned: a pointer kept live
// for the rare move made GCC save three registers at entry, not one.
static inline __attribute__((always_inline)) int heap_try_resize(
    void *ptr, size_t n, size_t *usable) {
  uintptr_t a = (uintptr_t)ptr;
  struct mmpool *p = &pool_table[vmmap_pool_id(a)];
  uintptr_t rel = a - p->data;
  // No alignment test: a block start is a multiple of 16 from its slab's
  // start (heap_block_start), which comes before the free mark's read.
  if (!(rel < p->fast_len)) return -1;
  uintptr_t base = p->base;  // kept: the slack's address needs it
  struct pdesc *d = p->desc + (rel >> PAGE_SHIFT);
  uint64_t so = rel & ((1u << PAGE_SHIFT) - 1);  // a's offset in its slab
  heap_in();
  uint32_t tid = tl_fast.fast_tid;
  int r = -1;
  // This thread's slab head (the common case) is read once; any other page
  // finds its head and looks at its owner there.
  if (unlikely(__atomic_load_n(&d->owner, __ATOMIC_RELAXED) != tid)) {
    uint32_t delta = d->head_delta;
    d -= delta;
    so += (uint64_t)delta << PAGE_SHIFT;
    uint32_t o = __atomic_load_n(&d->owner, __ATOMIC_RELAXED);
    if (o != tid && (o != OWNER_DETACHED || d->kind != PD_SLAB ||
                     tid == TID_NONE)) {
      heap_out();
      return r;
    }
  }
  // The start of a block handed out: realloc copies the block and frees
  // it, so an interior pointer is sent to the slow path (which aborts),
  // not passed on as free's fast path would.
  if (likely(heap_block_start(d, so) &&
             ((uint64_t *)a)[1] != (uintptr_t)d)) {
    uint32_t b = d->bsize;
    uint16_t *slack = pdesc_slack(base, d, a - base);
    uint64_t keep = (uint64_t)b - n;  // the new slack if it stays
    if (keep < sc_keep[d->cls]) {
      *slack = (uint16_t)keep;
      r = 1;
    } else {
      uint32_t s = *slack;
      *usable = s <= b ? b - s : 0;
      r = 0;
    }
  }
  heap_out();
  return r;
}

#endif
