// heap.c: thread heaps and every slow path of malloc and free (heap.h);
// the fast paths, which they back, are the inline functions of heap.h.
//
// Ownership (mimalloc's free-list sharding, with the state kept in the pool):
// - A slab is owned by one thread (pdesc.owner = its id) or detached (0).
// - The owner allocates from and frees to the slab's free list without any
//   atomic operation. Other threads push onto the slab's thread_free list
//   with a compare-and-swap; the owner collects that list when it runs dry.
// - An owner whose slab is full detaches it: under the pool lock, it swaps
//   thread_free from empty to TF_DETACHED. A thread that then frees into it
//   sees the bit, takes the pool lock and adopts the slab (or, when the
//   thread is exiting, frees into it under the lock and lists it in avail).
// - A thread that exits, and every slab of a re-attached pool, leave slabs
//   detached on the pool's avail list of their class; any thread needing a
//   slab of that class adopts one from there before taking fresh pages.
// - A slab whose last block its owner frees goes back to the page
//   allocator, unless it is, or can become, the thread's current slab of
//   its class (heap_slab_empty): one empty slab per class stays at hand,
//   until the thread needs fresh pages for another class and finds it idle
//   (release_idle), or malloc_trim (heap_trim) takes it.
// Locks are taken in lock.h's order (registry, then pool). Nothing here
// allocates: thread heaps come from the engine's arena (vmmap_internal).
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "heap.h"
#include "log.h"
#include "os.h"
#include "page.h"
#include "vmmap.h"

struct pdesc empty_desc;
struct theap empty_heap = {
    .direct = {[0 ... SC_DIRECT_MAX] = &empty_desc},
    .cur = {[0 ... SC_COUNT - 1] = &empty_desc},
};
__thread struct heap_tls tl_fast = {
    .heap = {[0 ... MMPOOL_MAX_POOLS] = &empty_heap},
    .main = &empty_heap,
    .fast_tid = TID_NONE,
};
__thread uint32_t tl_tid = TID_NONE;
// The thread's own heaps and fast id: what tl_fast holds when not poisoned
// (heap.h). Only the thread itself writes them.
static __thread struct theap *tl_own[MMPOOL_MAX_POOLS + 1] = {
    [0 ... MMPOOL_MAX_POOLS] = &empty_heap};
static __thread uint32_t tl_own_fast_tid = TID_NONE;
static __thread unsigned tl_main_id;  // heap_set_main's (0: none)
int heap_check_full;
const char heap_freed_why[] = "freed already";
static __thread int tl_exiting;    // the thread-exit destructor has run
static __thread int tl_key_set;    // pthread_setspecific done

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() ((void)0)
#endif

static uint32_t next_tid = 1;
static pthread_key_t exit_key;
static int init_done;
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
// The freeze (heap_freeze): held by the freezing thread from freeze to
// thaw; linking and unlinking a thread record also takes it, so the list
// of threads stands still while a freeze reads their marks.
static pthread_mutex_t freeze_lock = PTHREAD_MUTEX_INITIALIZER;
static int freezing;               // 1 from freeze to thaw
static __thread int tl_freezer;    // this thread holds the freeze
int (*heap_foreign_free_hook)(void *ptr);
void (*heap_thread_exit_hook)(void);
void (*heap_fork_child_hook)(void);
static struct theap *registry;   // live heaps of all threads
static struct heap_thread *threads; // linked thread records
static __thread struct heap_thread tl_thread;
static struct theap *free_heaps; // recycled heap memory (reg_next links)
static char *arena_next, *arena_end;

#define ARENA_CHUNK ((size_t)16 << 20)

void heap_registry_lock(void) { engine_lock(&reg_lock); }
void heap_registry_unlock(void) { engine_unlock(&reg_lock); }

static void thread_exit(void *arg);
static void set_own(unsigned id, struct theap *h);
static void rb_flush_all(void);

void heap_init_once(void) {
  if (__atomic_load_n(&init_done, __ATOMIC_ACQUIRE)) return;
  heap_registry_lock();
  if (!init_done) {
    // MMPOOL_CHECK=full: every free is checked exactly (see heap_free).
    // The preload library's configuration reports a bad value; a setuid
    // program's environment is not read (secure_getenv).
    const char *check = secure_getenv("MMPOOL_CHECK");
    heap_check_full = check && strcmp(check, "full") == 0;
    // pthread_key_create does not allocate; only the destructor matters.
    if (pthread_key_create(&exit_key, thread_exit) != 0)
      log_print(LOG_WARN, "no thread-exit hook: exiting threads keep their "
                "slabs until a re-attach");
    __atomic_store_n(&init_done, 1, __ATOMIC_RELEASE);
  }
  heap_registry_unlock();
}

// ---------------------------------------------------------------------------
// Heap objects. pre for the two helpers: registry lock held.

// A thread heap's memory, all zero: a heap given back before is cleared;
// the arena's fresh memory is zero already and is left untouched, so the
// pages of the batches (rb[], most of a heap) cost no resident memory
// until a thread batches (reading them maps the kernel's zero page).
static struct theap *heap_new_mem(void) {
  struct theap *h = free_heaps;
  if (h) {
    free_heaps = h->reg_next;
    memset(h, 0, sizeof *h);
    return h;
  }
  return heap_arena_alloc(sizeof(struct theap));
}

void *heap_arena_alloc(size_t n) {
  size_t sz = (n + 63) & ~(size_t)63;
  if (sz > ARENA_CHUNK) return NULL;
  if (!arena_next || (size_t)(arena_end - arena_next) < sz) {
    char *a = vmmap_internal(ARENA_CHUNK);
    if (!a) return NULL;
    arena_next = a, arena_end = a + ARENA_CHUNK;
  }
  void *r = arena_next;
  arena_next += sz;
  return r;
}

static void heap_unregister(struct theap *h) {
  if (!h->registered) return;
  if (h->reg_prev) h->reg_prev->reg_next = h->reg_next;
  else registry = h->reg_next;
  if (h->reg_next) h->reg_next->reg_prev = h->reg_prev;
  h->registered = 0;
}

static void heap_free_mem(struct theap *h) {
  heap_unregister(h);
  h->reg_next = free_heaps;
  free_heaps = h;
}

static void direct_set(struct theap *h, unsigned c, struct pdesc *d);

static void set_cur(struct theap *h, unsigned c, struct pdesc *d) {
  // The current slab is pinned (PDESC_USED_PIN): its count never falls to
  // 0, so the free fast path needs no test of which slab emptied. The
  // owner alone changes used (or the pool lock's holder, for a detached
  // slab): plain stores. Set and cleared, never added: idempotent.
  struct pdesc *old = h->cur[c];
  if (old != d) {
    if (old != &empty_desc) old->used &= ~PDESC_USED_PIN;
    if (d != &empty_desc) d->used |= PDESC_USED_PIN;
  }
  h->cur[c] = d;
  direct_set(h, c, d);
}

// What malloc's fast path pops from for the sizes of class c: its current
// slab (set_cur), or a batch of remote frees (alloc_class).
static void direct_set(struct theap *h, unsigned c, struct pdesc *d) {
  uint32_t b = sc_table[c].bsize;
  if (b > SC_DIRECT_MAX) return;
  // The direct slots of class c: sizes (previous class, b], and size 0 for
  // class 0. Classes are multiples of 16 bytes: the slots come 16 at a time
  // (up to 128 for a class near 1 KiB, at every change of slab).
  if (c == 0) h->direct[0] = d;
  struct pdesc **s = &h->direct[c ? sc_table[c - 1].bsize + 1 : 1];
  for (struct pdesc **e = &h->direct[b + 1]; s < e; s += 16)
    for (unsigned i = 0; i < 16; i++) s[i] = d;
}

// Makes sure thread_exit runs when this thread exits. May allocate (keys
// >= 32 in glibc): call with no lock of ours held. Set again by a thread
// whose destructor already ran, it asks glibc for another destructor pass
// (up to PTHREAD_DESTRUCTOR_ITERATIONS).
static void arm_exit(void) {
  if (tl_key_set || !__atomic_load_n(&init_done, __ATOMIC_ACQUIRE)) return;
  tl_key_set = 1;
  pthread_setspecific(exit_key, (void *)1);
}

static void *frozen_fail(struct mmpool *p) {
  if (p->frozen == FROZEN_FORK)
    log_fail(EBUSY, "pool '%s' is a shared file pool of the parent process "
             "that this fork child could not copy: it does not allocate "
             "from it", p->name);
  else
    log_fail(EBUSY, "pool '%s': its file was let go (exit or exec): it "
             "serves no allocation", p->name);
  return NULL;
}

// This thread's heap in p, made on first use; NULL if p is closed.
static struct theap *heap_get(struct mmpool *p) {
  struct theap *h = tl_own[p->id];
  if (likely(h != &empty_heap && h->gen == p->gen && h->pool == p)) return h;
  if (p->state != POOL_OPEN) {
    log_fail(EINVAL, "pool %u is closed", p->id);
    return NULL;
  }
  if (p->frozen) return frozen_fail(p);
  heap_init_once();
  if (tl_tid == TID_NONE) {  // ids are never reused (4 billion threads)
    tl_tid = __atomic_fetch_add(&next_tid, 1, __ATOMIC_RELAXED);
    tl_own_fast_tid = heap_check_full ? TID_NONE : tl_tid;
  }
  heap_registry_lock();
  if (h != &empty_heap) heap_free_mem(h);  // a heap of a closed pool
  // Closed meanwhile? (pool_close forgets heaps under this lock.)
  h = p->state == POOL_OPEN ? heap_new_mem() : NULL;
  if (h) {
    for (unsigned s = 0; s <= SC_DIRECT_MAX; s++) {
      h->direct[s] = &empty_desc;
      h->slack[s] = (uint16_t)(sc_table[sc_of(s ? s : 1)].bsize - s);
    }
    for (unsigned c = 0; c < SC_COUNT; c++) h->cur[c] = &empty_desc;
    h->base = p->base;
    h->pool = p;
    h->gen = p->gen;
    h->handle = p->handle;
    h->tid = tl_tid;
    h->reg_next = registry;
    if (registry) registry->reg_prev = h;
    registry = h;
    h->registered = 1;
  }
  heap_registry_unlock();
  if (!h) {
    log_fail(ENOMEM, "no memory for a thread heap");
    set_own(p->id, &empty_heap);
    return NULL;
  }
  set_own(p->id, h);
  arm_exit();
  return h;
}

// ---------------------------------------------------------------------------
// Threads

struct heap_thread *heap_threads(void) { return threads; }

// ---------------------------------------------------------------------------
// The freeze (heap.h)

static __thread int tl_freeze_depth;  // nested heap_freeze calls
static __thread int tl_exit_held;     // heap_enter took freeze_lock (below)

// Makes t's fast path fail into the slow paths. The stores race with the
// thread's own (publish): both sides are atomic, and see publish for who
// wins.
static void poison(struct heap_tls *t) {
  for (unsigned i = 0; i <= MMPOOL_MAX_POOLS; i++)
    __atomic_store_n(&t->heap[i], &empty_heap, __ATOMIC_RELAXED);
  __atomic_store_n(&t->main, &empty_heap, __ATOMIC_RELAXED);
  __atomic_store_n(&t->fast_tid, TID_NONE, __ATOMIC_RELAXED);
  __atomic_store_n(&t->poisoned, 1, __ATOMIC_RELAXED);
}

// Copies this thread's own heaps and id into tl_fast. pre: the thread is
// inside (a freeze that begins now waits for it to leave) or holds the
// freeze. A freeze may have poisoned tl_fast between the copy and now:
// the fence and the test after the copy make sure that this thread then
// poisons itself again before it leaves (a store-load pair, so a full
// fence; this runs once per thread after each thaw).
static void publish(void) {
  for (unsigned i = 0; i <= MMPOOL_MAX_POOLS; i++)
    __atomic_store_n(&tl_fast.heap[i], tl_own[i], __ATOMIC_RELAXED);
  __atomic_store_n(&tl_fast.main, tl_own[tl_main_id], __ATOMIC_RELAXED);
  __atomic_store_n(&tl_fast.fast_tid, tl_own_fast_tid, __ATOMIC_RELAXED);
  __atomic_store_n(&tl_fast.poisoned, 0, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (__atomic_load_n(&freezing, __ATOMIC_RELAXED) && !tl_freezer)
    poison(&tl_fast);
}

// This thread's heap in pool id is h from now on.
static void set_own(unsigned id, struct theap *h) {
  tl_own[id] = h;
  if (!__atomic_load_n(&tl_fast.poisoned, __ATOMIC_RELAXED)) publish();
}

void heap_set_main(unsigned id) {
  if (id > MMPOOL_MAX_POOLS) id = 0;
  if (id == tl_main_id) return;
  heap_enter();  // publish's condition: inside
  tl_main_id = id;
  if (!__atomic_load_n(&tl_fast.poisoned, __ATOMIC_RELAXED)) publish();
  heap_leave();
}

// Links the calling thread's record (the freeze reads the marks of the
// linked threads). pre: no engine lock held; not inside.
static void thread_link(void *client, int set_client) {
  struct heap_thread *t = &tl_thread;
  engine_lock(&freeze_lock);
  heap_registry_lock();
  if (set_client) t->client = client;
  // Not once its exit destructor unlinked it: it might not run again.
  if (!t->linked && !tl_exiting) {
    t->fast = &tl_fast;
    t->prev = NULL;
    t->next = threads;
    if (threads) threads->prev = t;
    threads = t;
    t->linked = 1;
  }
  heap_registry_unlock();
  engine_unlock(&freeze_lock);
  // A linked record must be unlinked before its thread's TLS goes away.
  arm_exit();
}

void heap_enter(void) {
  if (tl_fast.inside || tl_freezer) {
    // Inside already (a signal handler, or a nested slow path), or the
    // freezing thread: waiting would wait for ourselves.
    tl_fast.inside++;
    return;
  }
  if (unlikely(!tl_thread.linked)) {
    if (tl_exiting) {
      // Unlinked for good (a destructor that frees after ours ran): the
      // freeze cannot see this thread's mark, so it holds the freeze lock
      // instead while inside.
      engine_lock(&freeze_lock);
      tl_exit_held = 1;
      tl_fast.inside++;
      return;
    }
    heap_init_once();
    thread_link(NULL, 0);
  }
  for (;;) {
    // The same mark as the fast path's, and no fence either: a freeze
    // stores `freezing` before its membarrier, and reads the marks after.
    heap_in();
    if (likely(!__atomic_load_n(&freezing, __ATOMIC_RELAXED))) break;
    heap_out();
    while (__atomic_load_n(&freezing, __ATOMIC_ACQUIRE))
      os_wait_while(&freezing, 1);
  }
  if (unlikely(__atomic_load_n(&tl_fast.poisoned, __ATOMIC_RELAXED)))
    publish();
}

void heap_leave(void) {
  heap_out();
  if (unlikely(tl_exit_held) && tl_fast.inside == 0) {
    tl_exit_held = 0;
    engine_unlock(&freeze_lock);
  }
}

void heap_freeze(void) {
  if (tl_freezer) {
    tl_freeze_depth++;
    return;
  }
  heap_init_once();
  engine_lock(&freeze_lock);
  tl_freezer = 1;
  tl_freeze_depth = 1;
  __atomic_store_n(&freezing, 1, __ATOMIC_RELAXED);
  // The list stands still: linking and unlinking take freeze_lock.
  for (struct heap_thread *t = threads; t; t = t->next)
    if (t != &tl_thread) poison(t->fast);
  // Every thread of the process executes a full barrier: from here, a
  // thread that had not marked itself inside sees the poison and
  // `freezing`, and one that had is seen marked below.
  os_barrier_all();
  for (struct heap_thread *t = threads; t; t = t->next) {
    if (t == &tl_thread) continue;
    for (unsigned spin = 0; __atomic_load_n(&t->fast->inside,
                                            __ATOMIC_ACQUIRE); spin++) {
      // Inside for a few instructions, unless it was preempted there.
      if (spin < 64) cpu_relax();
      else os_yield();
    }
  }
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  rb_flush_all();  // no freed block stays counted live ("Batches")
}

void heap_thaw(void) {
  if (--tl_freeze_depth > 0) return;
  __atomic_store_n(&freezing, 0, __ATOMIC_RELEASE);
  os_wake_all(&freezing);
  tl_freezer = 0;
  engine_unlock(&freeze_lock);
}

// pre: registry lock.
static void thread_unlink(struct heap_thread *t) {
  if (!t->linked) return;
  if (t->prev) t->prev->next = t->next;
  else threads = t->next;
  if (t->next) t->next->prev = t->prev;
  t->next = t->prev = NULL;
  t->linked = 0;
}

void heap_thread_join(void *client) {
  heap_init_once();
  thread_link(client, 1);
}

// ---------------------------------------------------------------------------
// Slabs

static inline uint64_t slab_off(const struct mmpool *p, uint32_t idx) {
  return (uint64_t)(p->data - p->base) + ((uint64_t)idx << PAGE_SHIFT);
}

static void collect_list(struct mmpool *p, struct pdesc *d, uint64_t keep);

// Moves the blocks other threads freed onto the free list.
// pre: the calling thread owns d (or holds the pool lock for a detached d).
// Inline: most slabs looked at have no such block.
static inline __attribute__((always_inline)) void collect(struct mmpool *p,
                                                          struct pdesc *d,
                                                          uint64_t keep) {
  if (__atomic_load_n(&d->thread_free, __ATOMIC_RELAXED) == keep) return;
  collect_list(p, d, keep);
}

static void collect_list(struct mmpool *p, struct pdesc *d, uint64_t keep) {
  uint64_t tf = __atomic_exchange_n(&d->thread_free, keep, __ATOMIC_ACQUIRE);
  uint64_t head = TF_HEAD(tf), tail = head;
  if (!head) return;
  // The usual case, a current slab run dry: the list becomes the free list
  // whole, by its count. Walking it cost a cache miss per block, each a
  // line another core wrote last, one after the other (25 % of wl-larson
  // 2's time; docs/performance.md, "Remote frees in batches"); the pops take
  // those misses later, one per malloc, among the program's own work.
  uint32_t k = TF_COUNT(tf);
  if (!d->free && k && k <= pdesc_used(d)) {
    d->free = head;
    d->used -= k;
    return;
  }
  k = 1;
  for (uint64_t n; (n = *(uint64_t *)(p->base + tail)) != 0; k++) {
    // More blocks than are live: a block was freed twice (a loop).
    if (k > pdesc_used(d))
      log_fatal("pool '%s': a block of page %u was freed twice", p->name,
                page_index(p, d));
    tail = n;
  }
  *(uint64_t *)(p->base + tail) = d->free;
  d->free = head;
  d->used -= k;
}

// collect for a slab looked at in passing (find_slab, sweep): one that has
// free blocks keeps its counted thread-free list for when it runs dry
// (taken then without a walk), unless that list holds every live block:
// the slab is empty, and the caller gives it back.
static inline __attribute__((always_inline)) void collect_look(
    struct mmpool *p, struct pdesc *d) {
  uint64_t tf = __atomic_load_n(&d->thread_free, __ATOMIC_RELAXED);
  if (!tf) return;  // the usual case: nothing to take
  uint32_t k = TF_COUNT(tf);
  if (d->free && k && k < pdesc_used(d)) return;
  collect_list(p, d, 0);
}

// Threads never-used blocks onto the free list, a few KiB at a time so a
// fresh slab is not touched all at once (sc_extend). 1 if d has a free
// block after. Called through extend, when d has none.
static int extend_slab(struct mmpool *p, struct pdesc *d) {
  uint32_t left = d->nblocks - d->inited;
  if (!left) return 0;
  uint32_t k = sc_extend[d->cls];
  if (k > left) k = left;
  uint64_t bs = d->bsize;
  uint64_t first = slab_off(p, page_index(p, d)) + d->inited * bs;
  uintptr_t base = p->base;  // a local: the stores below may alias p
  // Each block gets its link and the free mark (heap.h, heap_free), so
  // that a free of a block never handed out is caught like a double free.
  uint64_t o = first;
  for (uint32_t i = 1; i < k; i++) {
    uint64_t *b = (uint64_t *)(base + o);
    o += bs;
    b[0] = o;
    b[1] = (uintptr_t)d;
  }
  uint64_t *b = (uint64_t *)(base + o);
  b[0] = 0;
  b[1] = (uintptr_t)d;
  // inited first: a fork (or a crash) between the two stores then leaks
  // the new blocks instead of threading them twice later.
  d->inited += k;
  __atomic_store_n(&d->free, first, __ATOMIC_RELEASE);
  return 1;
}

// Most calls find free blocks already (collected from other threads, or
// freed): no call then.
static inline int extend(struct mmpool *p, struct pdesc *d) {
  return d->free ? 1 : extend_slab(p, d);
}

static void slab_init(struct mmpool *p, uint32_t idx, unsigned c,
                      uint32_t owner) {
  const struct sizeclass *sc = &sc_table[c];
  page_set_span(p, idx, sc->npages, PD_SLAB);
  struct pdesc *d = &p->desc[idx];
  uint64_t so = slab_off(p, idx);
  d->cls = (uint8_t)c;
  d->gshift = (uint8_t)sc->gshift;
  d->bsize = sc->bsize;
  d->nblocks = sc->nblocks;
  d->inited = d->used = 0;
  d->free = 0;
  d->thread_free = 0;
  d->slack_off = sc_slack_off(sc, so);
  d->owner = owner;
}

// Takes slab d off h's list of its class; find_slab's place in that list
// moves on if it was d.
static void own_remove(struct mmpool *p, struct theap *h, struct pdesc *d) {
  uint32_t idx = page_index(p, d);
  if (h->scan[d->cls] == idx + 1) h->scan[d->cls] = d->next;
  page_list_remove(p, &h->list[d->cls], idx);
  h->nlist[d->cls]--;
}

static void own_push(struct mmpool *p, struct theap *h, struct pdesc *d) {
  page_list_push(p, &h->list[d->cls], page_index(p, d));
  h->nlist[d->cls]++;
}

// Takes slab d (detached) for heap h. pre: pool lock.
static void adopt(struct mmpool *p, struct theap *h, struct pdesc *d) {
  if (d->flags & PDF_LISTED) page_avail_remove(p, d);
  __atomic_store_n(&d->owner, h->tid, __ATOMIC_RELAXED);
  collect(p, d, 0);  // also clears TF_DETACHED
  own_push(p, h, d);
}

// Detaches a full slab d of h; 0 if a remote free made it non-full first.
static int detach_full(struct mmpool *p, struct theap *h, struct pdesc *d) {
  uint64_t expect = 0;
  int done;
  engine_lock(&p->lock);
  done = __atomic_compare_exchange_n(&d->thread_free, &expect, TF_DETACHED,
                                     0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
  if (done) {
    own_remove(p, h, d);
    __atomic_store_n(&d->owner, OWNER_DETACHED, __ATOMIC_RELAXED);
    if (h->cur[d->cls] == d) set_cur(h, d->cls, &empty_desc);
  }
  engine_unlock(&p->lock);
  return done;
}

// Gives back slab s of h, which holds no live block (so no other thread
// can free into it meanwhile).
static void slab_release(struct mmpool *p, struct theap *h, struct pdesc *s) {
  own_remove(p, h, s);
  engine_lock(&p->lock);
  page_span_free(p, page_index(p, s), s->npages);
  engine_unlock(&p->lock);
}

// How many of its own slabs of a class a thread looks at when its current
// one is spent (find_slab), or when a free adopts one (sweep).
#define FIND_SCAN 8

// A look at up to FIND_SCAN of h's slabs of class c (find_slab, sweep)
// goes round the list from where the last look stopped, so every slab is
// seen in turn, and once at most: slabs that leave the list on the way
// were seen already, so the ones not seen yet follow in the same order.
// scan_begin gives the first link and *todo; scan_step the slab at *l,
// moving *l and h's place on.
static uint32_t scan_begin(const struct theap *h, unsigned c,
                           uint32_t *todo) {
  *todo = h->nlist[c] < FIND_SCAN ? h->nlist[c] : FIND_SCAN;
  return h->scan[c] ? h->scan[c] : h->list[c];
}

static struct pdesc *scan_step(struct mmpool *p, struct theap *h, unsigned c,
                               uint32_t *l) {
  struct pdesc *s = &p->desc[*l - 1];
  *l = s->next ? s->next : h->list[c];
  h->scan[c] = *l;
  return s;
}

// Collects up to FIND_SCAN of h's slabs of class c (from where the last
// look stopped) and gives back those that hold no live block, but the
// current one. For a thread that frees into slabs of a class it does not
// allocate from (a consumer adopts its producer's full slabs,
// free_detached; it has no current slab of the class): find_slab never
// runs for it there, so the blocks that other threads free into those
// slabs were never collected, and the slabs never emptied (wl-prodcons 4:
// 118 MiB resident for 8 MiB live after 4 M messages). Not for a thread
// with a current slab of the class: its find_slab does the same, and the
// sweep cost a thread that frees its own detached slabs' blocks about 80
// instructions per adoption (bench/routes.sh, ws100 at 4096: +5 per
// pair).
static void sweep(struct mmpool *p, struct theap *h, unsigned c) {
  uint32_t todo, l = scan_begin(h, c, &todo);
  for (; l && todo; todo--) {
    struct pdesc *s = scan_step(p, h, c, &l);
    if (s == h->cur[c]) continue;
    collect_look(p, s);
    if (pdesc_used(s) == 0) slab_release(p, h, s);
  }
}

// Before a thread takes fresh pages for a slab of one page (classes up to
// 7 KiB): its current slabs of one page of the other classes go back to
// the page allocator, which gives their pages (resident already) to the
// new slab, when they held no block (their count is exactly the pin: no
// block live, none freed by another thread and not collected) at
// IDLE_LOOKS such looks in a row with the same first free block. Without
// it every class a thread ever passed through kept a slab's touched pages:
// strings and vectors grown through every class from 16 bytes to 7 KiB
// (wl-realloc) held 1.2 MiB of slabs for 166 KiB live, 4 threads twice
// their glibc RSS. A class used in between, even if empty at each look,
// is spared: taking its slab away and back reassigns pages between
// classes, which touch different parts of them (wl-aligned, whose 256
// blocks of random alignment keep classes empty in turns: 13 % more RSS
// when 2 looks, without the head, were enough; none with 4 looks and the
// head, for 11-35 % less than before on wl-realloc). Slabs of several
// pages, whose blocks are sparsely touched, stay. pre: pool lock.
#ifndef IDLE_LOOKS
#define IDLE_LOOKS 4
#endif
static void release_idle(struct mmpool *p, struct theap *h, unsigned c) {
  for (unsigned k = 0; k < SC_COUNT; k++) {
    struct pdesc *s = h->cur[k];
    if (k == c || s == &empty_desc || s->used != PDESC_USED_PIN ||
        s->npages != 1 || (h->idle[k] && h->idle_head[k] != s->free)) {
      h->idle[k] = 0;
      continue;
    }
    h->idle_head[k] = s->free;
    if (++h->idle[k] < IDLE_LOOKS) continue;
    h->idle[k] = 0;
    set_cur(h, k, &empty_desc);
    own_remove(p, h, s);
    page_span_free(p, page_index(p, s), s->npages);
  }
}

// A slab of class c with a free block, made current; NULL when p is full.
static struct pdesc *find_slab(struct mmpool *p, struct theap *h,
                               unsigned c) {
  struct pdesc *d = h->cur[c];
  if (d != &empty_desc) {
    collect(p, d, 0);
    if (extend(p, d)) return d;
  }
  // The other slabs this thread owns, FIND_SCAN at most, from where the
  // last search stopped (round the list: every slab is seen in turn): each
  // has the blocks other threads freed collected; one that holds no live
  // block any more goes back to the pool (blocks freed by other threads
  // would otherwise keep slab after slab of a thread's); a full one is
  // detached. The first with a free block becomes current; blocks never
  // handed out (memory not touched yet) are taken only when no slab seen
  // has a free one.
  struct pdesc *best = NULL, *fresh = NULL, *empty = NULL;
  uint32_t todo, l = scan_begin(h, c, &todo);
  for (; l && todo; todo--) {
    struct pdesc *s = scan_step(p, h, c, &l);
    collect_look(p, s);
    if (!s->free && s->inited == s->nblocks) {
      if (detach_full(p, h, s)) continue;
      collect(p, s, 0);  // a block came back meanwhile
    }
    if (s == d) continue;  // current and spent: seen above
    if (pdesc_used(s) == 0) {
      if (!empty) {
        empty = s;
        continue;
      }
      slab_release(p, h, s);
      continue;
    }
    if (s->free) {
      best = s;
      break;
    } else if (!fresh) {
      fresh = s;
    }
  }
  if (!best) best = fresh;
  if (best && empty) {
    slab_release(p, h, empty);
    empty = NULL;
  }
  if (!best) best = empty;
  if (best && extend(p, best)) {
    set_cur(h, c, best);
    return best;
  }
  // Slabs left by exited threads or an earlier process, then fresh pages.
  engine_lock(&p->lock);
  struct pdesc *s;
  while ((s = page_avail_first(p, c)) != NULL) {
    adopt(p, h, s);
    if (extend(p, s)) {
      engine_unlock(&p->lock);
      set_cur(h, c, s);
      return s;
    }
  }
  if (sc_table[c].npages == 1) release_idle(p, h, c);
  int dirty;
  int64_t idx = page_span_alloc(p, sc_table[c].npages, 1, &dirty);
  if (idx >= 0) {
    slab_init(p, (uint32_t)idx, c, h->tid);
    own_push(p, h, &p->desc[idx]);
  }
  engine_unlock(&p->lock);
  if (idx < 0) return NULL;
  d = &p->desc[idx];
  extend(p, d);
  set_cur(h, c, d);
  return d;
}

static struct rbatch *rb_take(struct theap *h, unsigned c);

// alloc_class's first step when class c may have batches (h->rb_classes):
// a block from a batch, installed where the fast path pops; or NULL, with
// the fast path given back to the current slab. Batches first: a thread
// that frees half its blocks into other threads' slabs takes them all
// back that way, and its own slab gets the other half (wl-larson 2: with
// the slab first, the batches filled, and 56 % of their blocks went back
// to their owners).
static __attribute__((noinline)) void *alloc_batch(struct theap *h,
                                                   unsigned c, size_t n) {
  uint32_t b = sc_table[c].bsize;
  struct rbatch *e = rb_take(h, c);
  if (e) {
    direct_set(h, c, &e->pd);
    return heap_slab_pop(h->base, &e->pd, e->pd.free, (uint16_t)(b - n));
  }
  if (b <= SC_DIRECT_MAX && h->direct[b] != h->cur[c])
    direct_set(h, c, h->cur[c]);
  return NULL;
}

// A block of class c, when what the fast path pops from is spent.
static void *alloc_class(struct mmpool *p, unsigned c, size_t n) {
  struct theap *h = heap_get(p);
  if (!h) return NULL;
  if (unlikely(h->rb_classes >> c & 1)) {
    void *blk = alloc_batch(h, c, n);
    if (blk) return blk;
  }
  struct pdesc *d = h->cur[c];
  if (!d->free && !(d = find_slab(p, h, c))) return NULL;
  return heap_slab_pop(h->base, d, d->free, (uint16_t)(d->bsize - n));
}

// The slow paths' entry points run between heap_enter and heap_leave.
void *heap_alloc_class(struct mmpool *p, unsigned c, size_t n) {
  heap_enter();
  if (unlikely(__atomic_load_n(&p->fast_len, __ATOMIC_RELAXED) !=
               __atomic_load_n(&p->data_len, __ATOMIC_RELAXED)))
    page_lazy_advance(p);
  void *b = alloc_class(p, c, n);
  heap_leave();
  return b;
}

void *heap_alloc_slow(struct mmpool *p, size_t n) {
  return heap_alloc_class(p, sc_of(n), n);
}

static void *alloc_large(struct mmpool *p, size_t n, size_t align,
                         int *dirty) {
  if (p->frozen) return frozen_fail(p);
  if (n > p->capacity) {
    log_fail(ENOMEM, "pool '%s': %zu bytes exceed its capacity (%llu)",
             p->name, n, (unsigned long long)p->capacity);
    return NULL;
  }
  uint32_t np = (uint32_t)((n + PAGE_BYTES - 1) >> PAGE_SHIFT);
  if (np == 0) np = 1;
  uint32_t ap = align > PAGE_BYTES ? (uint32_t)(align >> PAGE_SHIFT) : 1;
  // The pool lock, once per large malloc as once per large free
  // (free_slow): a freed span kept for reuse is an ordinary free span of
  // the pool (page.c, "Purging"), so taking it back changes descriptors.
  engine_lock(&p->lock);
  int64_t idx = page_span_alloc(p, np, ap, dirty);
  if (idx >= 0) {
    page_set_span(p, (uint32_t)idx, np, PD_LARGE);
    p->desc[idx].req = n;
    p->desc[idx].cls = 0;
  }
  engine_unlock(&p->lock);
  return idx >= 0 ? (void *)page_addr(p, (uint32_t)idx) : NULL;
}

void *heap_alloc_large(struct mmpool *p, size_t n, size_t align,
                       int *dirty) {
  heap_enter();
  void *b = alloc_large(p, n, align, dirty);
  heap_leave();
  return b;
}

// Gives back every slab of h that holds no block, its current ones too,
// once the blocks other threads freed into them are collected. pre: the
// freeze (h's thread is not inside: its slabs are ours meanwhile), pool
// lock.
static void trim_heap(struct mmpool *p, struct theap *h) {
  for (unsigned c = 0; c < SC_COUNT; c++) {
    for (uint32_t l = h->list[c]; l;) {
      struct pdesc *s = &p->desc[l - 1];
      l = s->next;
      collect(p, s, 0);
      if (pdesc_used(s) != 0) continue;
      if (h->cur[c] == s) set_cur(h, c, &empty_desc);
      own_remove(p, h, s);
      page_span_free(p, page_index(p, s), s->npages);
    }
  }
  memset(h->idle, 0, sizeof h->idle);
}

uint64_t heap_trim(struct mmpool *p) {
  uint64_t n = 0;
  // Frozen, so that every thread's slabs can be collected and given back:
  // a thread that never calls malloc again (one that only frees, or the
  // main thread that made the data its workers free) would otherwise keep
  // the slabs it owns, and the blocks freed into them, for good.
  heap_freeze();
  // The registry lock keeps the slot from being closed meanwhile.
  heap_registry_lock();
  if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) == POOL_OPEN &&
      !p->frozen) {
    engine_lock(&p->lock);
    for (struct theap *h = registry; h; h = h->reg_next)
      if (h->pool == p && h->gen == p->gen) trim_heap(p, h);
    n = page_trim(p);
    engine_unlock(&p->lock);
  }
  heap_registry_unlock();
  heap_thaw();
  return n;
}

// ---------------------------------------------------------------------------
// Free

static void slab_empty(struct mmpool *p, struct pdesc *d) {
  // tl_own, not tl_fast: a freeze may have poisoned the latter since this
  // thread entered.
  struct theap *h = tl_own[p->id];
  struct pdesc *cur = h->cur[d->cls];
  if (cur == d) return;  // keep one slab per class at hand (pinned: rare)
  if (cur != &empty_desc && pdesc_used(cur) != 0) {
    // Make the empty slab current instead of giving it back: a working set
    // that straddles two slabs would otherwise free and retake one slab
    // (under the pool lock) again and again. At most one empty slab per
    // class stays with the thread.
    set_cur(h, d->cls, d);
    return;
  }
  slab_release(p, h, d);
}

void heap_slab_empty(struct mmpool *p, struct pdesc *d) {
  slab_empty(p, d);
  heap_out();
}

// 1 if the block at pool offset off is on slab d's free list or its list of
// remote frees. The lists may belong to another thread, which changes them
// meanwhile: every link is checked to be a block of the slab before it is
// followed, and a walk stops after nblocks steps, so a racing or corrupt
// list can hide a block but never crash the walk.
static int slab_lists_hold(struct mmpool *p, struct pdesc *d, uint64_t off) {
  uint64_t slab = slab_off(p, page_index(p, d));
  uint64_t end = slab + (uint64_t)d->nblocks * d->bsize;
  uint64_t head[2] = {
      __atomic_load_n(&d->free, __ATOMIC_ACQUIRE),
      TF_HEAD(__atomic_load_n(&d->thread_free, __ATOMIC_ACQUIRE))};
  for (int k = 0; k < 2; k++) {
    uint64_t x = head[k];
    for (uint32_t n = 0; x && n <= d->nblocks; n++) {
      if (x < slab || x >= end || (x - slab) % d->bsize != 0) break;
      if (x == off) return 1;
      x = __atomic_load_n((uint64_t *)(p->base + x), __ATOMIC_RELAXED);
    }
  }
  return 0;
}

struct pdesc *heap_block(struct mmpool *p, uintptr_t a, const char **why) {
  if (!p) {
    *why = "not a block of any pool";
    return NULL;
  }
  uintptr_t rel = a - p->data;
  // A frozen pool's blocks stay readable: its length is kept aside.
  size_t len = p->frozen ? p->frozen_len
                         : __atomic_load_n(&p->data_len, __ATOMIC_RELAXED);
  if (a < p->data || rel >= len) {
    *why = "inside the pool's header or unused area, not a block";
    return NULL;
  }
  uint32_t idx = (uint32_t)(rel >> PAGE_SHIFT);
  // A lazily attached file's page is checked on its first use here.
  if (page_verify(p, idx) < 0) {
    *why = PAGE_DAMAGED;
    return NULL;
  }
  struct pdesc *d = &p->desc[idx];
  if (d->kind == PD_TAIL && d->head_delta <= idx) d -= d->head_delta;
  uint32_t head = page_index(p, d);
  uintptr_t start = page_addr(p, head);
  if (head >= p->hdr->st.top) {
    *why = "not a live block: above the pool's top (freed already?)";
  } else if (d->kind == PD_SLAB) {
    uintptr_t off = a - start;
    if (off % d->bsize != 0 || off / d->bsize >= d->inited) {
      *why = off / d->bsize >= d->inited ? "never handed out"
                                         : "not the start of a block";
    } else if (((uint64_t *)a)[1] == (uintptr_t)d &&
               slab_lists_hold(p, d, a - p->base)) {
      *why = HEAP_FREED;  // bears the free mark and is on a free list
    } else {
      return d;
    }
  } else if (d->kind == PD_LARGE) {
    if (a == start) return d;
    *why = "not the start of a block";
  } else {
    *why = "not a live block: in free pages (freed already?)";
  }
  return NULL;
}

size_t heap_usable(struct mmpool *p, struct pdesc *d, uintptr_t a) {
  if (d->kind == PD_LARGE) return d->req;
  uint32_t s = *pdesc_slack(p->base, d, a - p->base);
  return s <= d->bsize ? d->bsize - s : 0;  // checked on attach; cheap guard
}

// A pointer no pool owns: another allocator's block (a library bound to
// glibc's malloc by RTLD_DEEPBIND, PITFALLS 1.19), freed to the wrong one.
// Leaked, and said a few times at most.
static void report_foreign(uintptr_t a, const char *call) {
  static unsigned reported;
  if (__atomic_fetch_add(&reported, 1, __ATOMIC_RELAXED) < 16)
    log_print(LOG_WARN, "%s(%p) ignored: not a block of any pool", call,
              (void *)a);
}

void heap_misuse(struct mmpool *p, uintptr_t a, const char *call,
                 const char *why) {
  if (why == HEAP_FREED && strcmp(call, "free") == 0)
    log_fatal("free(): double free of %p in pool '%s'", (void *)a, p->name);
  log_fatal("%s(): invalid pointer %p (%s) in pool '%s'", call, (void *)a,
            why, p->name);
}

static int free_slow(struct mmpool *p, struct pdesc *d, uintptr_t a,
                     const char *call, int recheck);
static void free_again(struct mmpool *p, uintptr_t a, const char *call);

// Puts the chain head..tail of n blocks of detached slab d (linked, each
// with the free mark) on its free list; the slab then goes on its class's
// avail list, or back to the pages when it holds no block. pre: pool lock,
// d checked sound.
static void detached_put(struct mmpool *p, struct pdesc *d, uint64_t head,
                         uint64_t tail, uint32_t n) {
  *(uint64_t *)(p->base + tail) = d->free;
  d->free = head;
  d->used -= n;
  if (d->used == 0) {
    if (d->flags & PDF_LISTED) page_avail_remove(p, d);
    page_span_free(p, page_index(p, d), d->npages);
  } else if (!(d->flags & PDF_LISTED)) {
    page_avail_push(p, d);
  }
}

// A slab freed into while detached: adopt it, or (exiting thread) free
// into it under the lock.
static void free_detached(struct mmpool *p, struct pdesc *d, uintptr_t a,
                          const char *call) {
  struct theap *h = tl_exiting ? NULL : heap_get(p);
  uint64_t off = a - p->base;
  engine_lock(&p->lock);
  if (__atomic_load_n(&d->owner, __ATOMIC_RELAXED) != OWNER_DETACHED) {
    // Adopted by another thread meanwhile: back to the remote path.
    engine_unlock(&p->lock);
    free_slow(p, d, a, call, 0);
    return;
  }
  if (!page_slab_sound(p, d)) {  // damaged in its file: left as it is
    engine_unlock(&p->lock);
    return;
  }
  ((uint64_t *)a)[1] = (uintptr_t)d;  // the free mark
  if (h) {
    adopt(p, h, d);
    engine_unlock(&p->lock);
    *(uint64_t *)a = d->free;
    d->free = off;
    unsigned c = d->cls;  // d may go back to the pages below
    if (--d->used == 0) slab_empty(p, d);
    // A thread that allocates from the class sweeps in find_slab.
    if (h->cur[c] == &empty_desc) sweep(p, h, c);
    return;
  }
  detached_put(p, d, off, off, 1);
  engine_unlock(&p->lock);
}

// Pushes the chain head..tail of n blocks of slab d (linked through their
// first words, each with the free mark) onto its thread-free list, the
// count n up (poolfile.h, TF_COUNT): 1 done; 0 the slab is detached; -1
// head is at the list's head already (a double free).
static inline int tf_push(struct pdesc *d, uintptr_t base, uint64_t head,
                          uint64_t tail, uint32_t n) {
  uint64_t *t = (uint64_t *)(base + tail);
  uint64_t old = __atomic_load_n(&d->thread_free, __ATOMIC_RELAXED);
  for (;;) {
    if (old & TF_DETACHED) return 0;
    if (TF_HEAD(old) == head) return -1;
    *t = TF_HEAD(old);
    uint64_t nw = head | ((old & ~(TF_COUNT_ONE - 1)) +
                          ((uint64_t)n << TF_COUNT_SHIFT));
    if (__atomic_compare_exchange_n(&d->thread_free, &old, nw, 1,
                                    __ATOMIC_RELEASE, __ATOMIC_RELAXED))
      return 1;
  }
}

// ---------------------------------------------------------------------------
// Batches of remote frees
//
// A block freed by a thread that does not own its slab went onto the slab's
// thread-free list at once, with a compare-and-swap on the descriptor's
// line, which the owner writes on every malloc and free of the slab, and
// the owner then fetched the block back from the freeing core. The freeing
// thread now keeps such blocks, per slab, in its heap of the pool (struct
// rbatch: RB_SLOTS entries indexed by the slab's page), and its own mallocs
// of the class take them first (alloc_class installs a batch where the fast
// path pops, as a slab): the block is still in this core's cache. A batch
// goes to its slab with one compare-and-swap when it holds RB_BATCH blocks
// or RB_BYTES bytes, when another slab needs its entry, when it got no
// block for RB_AGE batched frees, at every freeze, and when the thread
// exits (docs/performance.md, "Remote frees in batches").
//
// A batched block is free to the program and still live to its slab (so
// the slab is never given back meanwhile). What must see the pools as they
// are empties the batches first: heap_freeze empties every thread's
// (snapshots, fork, malloc_trim, close and exit all freeze), so a snapshot
// never holds a block that was freed; mmpool_stats empties the caller's. A
// free that finds the free mark on a block that no list of its slab holds
// (a double free of a batched block, or data that looks like the mark)
// looks again under a freeze (heap_free_slow). Only a thread that
// allocates the class batches (a consumer that only frees would merely
// hold the blocks, and their slabs, longer), and only blocks of at most
// RB_BYTES / 2: a thread holds at most RB_SLOTS * RB_BYTES bytes of
// batched blocks per pool.
_Static_assert(SC_COUNT <= 64, "rb_classes has a bit per class");
_Static_assert(RB_SLOTS % 64 == 0, "rb_mask has a word per 64 entries");
#define RB_BATCH 16
#define RB_BYTES 4096
// Every RB_AGE blocks put in batches, those that got none since the last
// look are pushed (rb_age): a thread that frees into a slab, then into
// others, and allocates little of the class, would otherwise keep its last
// blocks of each slab, and the slab, for good. Each batch gets a block
// about once per RB_SLOTS when a thread frees into that many slabs at
// random (wl-larson 2: a look every 64 blocks pushed 45 % of the blocks
// back to their owners before they could be reused).
#define RB_AGE (8 * RB_SLOTS)

// Empties batch e (its blocks pushed or dropped by the caller).
static inline void rb_clear(struct rbatch *e) {
  e->pd.free = 0;
  e->pd.used = 0;
  e->in = 0;
}

// Pushes batch e, and empties it: onto its slab's thread-free list, or
// (detached slab) onto the slab's free list under the pool lock
// (detached_put, as free_detached for an exiting thread).
// pre: inside (heap_enter), no engine lock held.
static void rb_push_slow(struct mmpool *p, struct rbatch *e,
                         const char *call) {
  struct pdesc *d = e->d;
  uint64_t head = e->pd.free, tail = e->tail;
  uint32_t n = e->in - e->pd.used;
  rb_clear(e);
  // Pushed by a freeze meanwhile; or its pool was closed or let go since
  // (the freeze before that pushed it, or the bytes are not ours now).
  if (!head || p->state != POOL_OPEN || p->frozen) return;
  for (;;) {
    int r = tf_push(d, p->base, head, tail, n);
    if (r > 0) return;
    if (r < 0) heap_misuse(p, p->base + head, call, HEAP_FREED);
    engine_lock(&p->lock);
    if (__atomic_load_n(&d->owner, __ATOMIC_RELAXED) == OWNER_DETACHED)
      break;
    engine_unlock(&p->lock);  // adopted meanwhile: its list again
  }
  if (page_slab_sound(p, d)) detached_put(p, d, head, tail, n);
  engine_unlock(&p->lock);
}

// Every batch of h pushed. pre: as rb_push_slow; h's thread is this one,
// or is held by the freeze.
static void rb_flush(struct mmpool *p, struct theap *h) {
  for (unsigned i = 0; i < RB_SLOTS; i++)
    if (h->rb[i].pd.free) rb_push_slow(p, &h->rb[i], "free");
}

// Pushes h's batches that got no block since the last call; marks the
// others for the next. pre: as rb_push_slow.
static void rb_age(struct mmpool *p, struct theap *h) {
  for (unsigned i = 0; i < RB_SLOTS; i++) {
    struct rbatch *e = &h->rb[i];
    if (e->pd.free && !e->hot) rb_push_slow(p, e, "free");
    e->hot = 0;
  }
}

// A batch of h with blocks of class c, or NULL. Bits of batches emptied
// (or given to another class) since they were set are cleared on the way.
static struct rbatch *rb_take(struct theap *h, unsigned c) {
  for (unsigned w = 0; w < RB_SLOTS / 64; w++) {
    for (uint64_t m = h->rb_mask[c][w]; m; m &= m - 1) {
      struct rbatch *e = &h->rb[w * 64 + (unsigned)__builtin_ctzll(m)];
      if (e->pd.free && e->pd.cls == c) return e;
      h->rb_mask[c][w] &= ~(m & -m);
    }
  }
  h->rb_classes &= ~((uint64_t)1 << c);
  return NULL;
}

// Makes empty batch e slab d's, with block off in it. A batch the fast
// path pops from (installed in direct[] by alloc_class) is taken out of
// there first: its class may change.
static void rb_start(struct theap *h, struct rbatch *e, struct pdesc *d,
                     uint64_t off) {
  unsigned c = e->pd.cls;
  uint32_t cb = sc_table[c].bsize;
  if (cb <= SC_DIRECT_MAX && h->direct[cb] == &e->pd)
    direct_set(h, c, h->cur[c]);
  e->d = d;
  unsigned i = (unsigned)(e - h->rb);
  h->rb_mask[d->cls][i / 64] |= (uint64_t)1 << (i % 64);
  h->rb_classes |= (uint64_t)1 << d->cls;
  e->pd.cls = d->cls;
  e->pd.gshift = d->gshift;
  e->pd.bsize = d->bsize;
  e->pd.slack_off = d->slack_off;
  e->pd.owner = OWNER_NONE;
  e->pd.free = off;
  e->pd.used = 0;
  e->tail = off;
  e->in = 1;
  e->hot = 1;
  uint32_t k = RB_BYTES / d->bsize;  // 2 or more
  e->max = (uint16_t)(k < RB_BATCH ? k : RB_BATCH);
}

void heap_flush_all(void) {
  heap_freeze();  // pushes them (rb_flush_all)
  heap_thaw();
}

// At a freeze: every thread's batches pushed. The registry stands still
// without its lock: heaps are made and dropped inside the allocator (or by
// the freezing thread), and no thread is inside.
static void rb_flush_all(void) {
  for (struct theap *h = registry; h; h = h->reg_next) {
    struct mmpool *p = h->pool;
    if (h->handle && h->gen == p->gen && p->state == POOL_OPEN &&
        !p->frozen)
      rb_flush(p, h);
  }
}

// heap_free_other's batching: block a (at pool offset off) of slab d,
// checked, goes into h's batch of d. pre: inside; returns outside. Out of
// line: heap_free_other's other paths (a detached slab, a thread with no
// batches) keep their few registers.
static __attribute__((noinline)) void rb_put(struct mmpool *p,
                                             struct theap *h,
                                             struct pdesc *d, uintptr_t a,
                                             const char *call) {
  uint64_t *b = (uint64_t *)a, off = a - p->base;
  struct rbatch *e = &h->rb[page_index(p, d) % RB_SLOTS];
  // d's batch, not empty (so d is still the slab it was: the batch's
  // blocks keep it from being given back).
  if (likely(e->pd.free && e->d == d)) {
    b[0] = e->pd.free;
    b[1] = (uintptr_t)d;  // the free mark
    e->pd.free = off;
    e->hot = 1;
    if (likely(++e->in - e->pd.used < e->max)) {
      if (unlikely(++h->rb_tick % RB_AGE == 0)) goto age;
      heap_out();
      return;
    }
    if (tf_push(d, p->base, off, e->tail, e->in - e->pd.used) > 0) {
      rb_clear(e);
      heap_out();
      return;
    }
    heap_out();  // detached, or a double free: the slow path tells
    heap_enter();
    rb_push_slow(p, e, call);
    heap_leave();
    return;
  }
  // The entry becomes d's; another slab's batch is pushed first.
  if (e->pd.free &&
      tf_push(e->d, p->base, e->pd.free, e->tail, e->in - e->pd.used) <= 0) {
    heap_out();
    heap_enter();
    rb_push_slow(p, e, call);
    heap_leave();
    heap_free_slow(p, d, a, call);
    return;
  }
  b[0] = 0;
  b[1] = (uintptr_t)d;
  rb_start(h, e, d, off);
  if (likely(++h->rb_tick % RB_AGE != 0)) {
    heap_out();
    return;
  }
age:
  heap_out();
  heap_enter();
  if (p->state == POOL_OPEN && !p->frozen) rb_age(p, h);
  heap_leave();
}

// free's path for a block of a slab this thread does not own (heap.h).
void heap_free_other(struct mmpool *p, struct pdesc *d, uintptr_t a,
                     const char *call, uint32_t tid) {
  uint32_t o = __atomic_load_n(&d->owner, __ATOMIC_RELAXED);
  uint64_t *b = (uint64_t *)a;
  // Only slab heads carry thread ids; TID_NONE: poisoned by a freeze, or
  // MMPOOL_CHECK=full (every free checked by the slow path).
  if (tid != TID_NONE && o != OWNER_NONE && o != OWNER_DETACHED &&
      d->kind == PD_SLAB && (a & 15) == 0 && b[1] != (uintptr_t)d &&
      heap_block_start(d, a - page_addr(p, page_index(p, d)))) {
    // This thread's heap in p: the empty heap (handle 0) when it has none,
    // or one of a pool closed since (handle 0 too). Only for a class this
    // thread allocates (it has a current slab of it): a thread that only
    // frees a class (a consumer) would merely hold the blocks, and their
    // slabs, longer. The freezing thread batches nothing: the freeze
    // emptied the batches for its readers.
    struct theap *h = tl_fast.heap[p->id];
    if (likely(h->handle != 0) && h->cur[d->cls] != &empty_desc &&
        d->bsize <= RB_BYTES / 2 && !tl_freezer)
      return rb_put(p, h, d, a, call);
    // Alone. Detached (adopted by the slow path), or at the head of the
    // list already (a double free, which the slow path names): the mark
    // stays off.
    uint64_t off = a - p->base, keep = b[1];
    b[1] = (uintptr_t)d;
    if (tf_push(d, p->base, off, off, 1) > 0) {
      heap_out();
      return;
    }
    b[1] = keep;
  }
  heap_out();
  heap_free_slow(p, d, a, call);
}

// free keeps errno (glibc's tst-free-errno): the slow path saves it, since
// thread-heap creation and logging may set it.
void heap_free_slow(struct mmpool *p, struct pdesc *d, uintptr_t a,
                    const char *call) {
  if (a == 0) return;
  int saved = errno;
  heap_enter();
  // Pages of a lazily attached file still unchecked: a few more each time.
  if (unlikely(__atomic_load_n(&p->fast_len, __ATOMIC_RELAXED) !=
               __atomic_load_n(&p->data_len, __ATOMIC_RELAXED)))
    page_lazy_advance(p);
  // Frozen while this thread waited (its file let go at exit): d was read
  // before, and the pool's bytes are not ours to change any more.
  // free_slow asks for a second look when the block bears the free mark
  // and no list of its slab holds it: a batch of another thread may
  // ("Batches of remote frees"). A freeze empties every batch, and the
  // block is looked at again under it; a thread that cannot freeze here
  // (inside already: a signal handler, a nested call; or exiting, holding
  // the freeze's lock) takes the block as live, as it was before batches.
  int again = 0;
  if (!p->frozen) again = free_slow(p, d, a, call, 1);
  else if (!d) free_slow(p, NULL, a, call, 0);  // a foreign pointer's report
  heap_leave();
  if (unlikely(again)) free_again(p, a, call);
  errno = saved;
}

// heap_free_slow's second look, under a freeze. pre: outside.
static __attribute__((noinline)) void free_again(struct mmpool *p,
                                                 uintptr_t a,
                                                 const char *call) {
  heap_freeze();
  heap_enter();
  if (!p->frozen && p->state == POOL_OPEN) free_slow(p, NULL, a, call, 0);
  heap_leave();
  heap_thaw();
}

// 1 (nothing done) when recheck is set and the block needs the second
// look of heap_free_slow.
static int free_slow(struct mmpool *p, struct pdesc *d, uintptr_t a,
                     const char *call, int recheck) {
  const char *why = NULL;
  // Past fast_len but inside the committed data: a page of a lazily
  // attached file that the fast path may not read yet (heap_block checks).
  if (!d && !p->frozen && a - p->data < p->data_len) d = &empty_desc;
  if (!d) {
    // Outside the committed data of the pool of a's address-table entry.
    if (p->frozen) return 0;  // the file's bytes are not ours to change
    struct mmpool *q = pool_of_addr(a);
    if (q)
      heap_misuse(q, a, call, "not a block: in the pool's header or "
                  "unused area");
    if (heap_foreign_free_hook && heap_foreign_free_hook((void *)a))
      return 0;
    report_foreign(a, call);
    return 0;
  }
  // Checked exactly from the address (d came from an unchecked page).
  d = heap_block(p, a, &why);
  if (!d && why == PAGE_DAMAGED) return 0;  // leaked: see page_verify
  if (!d) heap_misuse(p, a, call, why);
  if (d->kind == PD_LARGE) {
    engine_lock(&p->lock);
    page_span_free(p, page_index(p, d), d->npages);
    engine_unlock(&p->lock);
    return 0;
  }
  uint64_t off = a - p->base;
  uint64_t *b = (uint64_t *)a;
  // The second look needs a freeze, which this thread cannot wait for when
  // it is inside already (a signal handler, a nested call) or exiting
  // (holding the freeze's lock), nor needs when it holds it.
  if (recheck && b[1] == (uintptr_t)d && tl_fast.inside == 1 &&
      !tl_freezer && !tl_exit_held)
    return 1;
  if (__atomic_load_n(&d->owner, __ATOMIC_RELAXED) == tl_tid) {
    // This thread's slab: MMPOOL_CHECK=full, the API's slow path, or a
    // block whose data looked like the free mark.
    b[0] = d->free;
    b[1] = (uintptr_t)d;
    d->free = off;
    if (--d->used == 0) slab_empty(p, d);
    return 0;
  }
  uint64_t old = __atomic_load_n(&d->thread_free, __ATOMIC_RELAXED);
  while (!(old & TF_DETACHED)) {
    if (TF_HEAD(old) == off) heap_misuse(p, a, call, HEAP_FREED);
    b[0] = TF_HEAD(old);
    b[1] = (uintptr_t)d;
    uint64_t nw = off | ((old & ~(TF_COUNT_ONE - 1)) + TF_COUNT_ONE);
    if (__atomic_compare_exchange_n(&d->thread_free, &old, nw, 1,
                                    __ATOMIC_RELEASE, __ATOMIC_RELAXED))
      return 0;
  }
  free_detached(p, d, a, call);
  return 0;
}

// ---------------------------------------------------------------------------
// Resize in place

static int resize(struct mmpool *p, struct pdesc *d, uintptr_t a, size_t n);

int heap_resize(struct mmpool *p, struct pdesc *d, uintptr_t a, size_t n) {
  heap_enter();
  int r = p->frozen ? -1 : resize(p, d, a, n);
  heap_leave();
  return r;
}

// n > 0 (mmpool_realloc frees for 0).
static int resize(struct mmpool *p, struct pdesc *d, uintptr_t a, size_t n) {
  if (d->kind == PD_SLAB) {
    // Stay while the block is not more than twice what is needed.
    if ((uint64_t)d->bsize - n >= sc_keep[d->cls]) return -1;
    *pdesc_slack(p->base, d, a - p->base) = (uint16_t)(d->bsize - n);
    return 0;
  }
  // A large block never shrinks to a small one; nor grows past the pool.
  if (n <= SC_SMALL_MAX || n > p->capacity) return -1;
  uint32_t np = (uint32_t)((n + PAGE_BYTES - 1) >> PAGE_SHIFT);
  uint32_t idx = page_index(p, d), have = d->npages;
  int r = 0;
  engine_lock(&p->lock);
  if (np < have) {
    page_set_span(p, idx, np, PD_LARGE);
    page_set_span(p, idx + np, have - np, PD_LARGE);
    page_span_free(p, idx + np, have - np);
  } else if (np > have) {
    r = page_span_extend(p, idx, have, np - have);
    if (r == 0) page_set_span(p, idx, np, PD_LARGE);
  }
  if (r == 0) d->req = n;
  engine_unlock(&p->lock);
  return r;
}

// ---------------------------------------------------------------------------
// Thread exit, pool close, fork

// A slab's live count from its free list (seal: after dropping its lists):
// inited less the blocks on it
// (blocks on the thread-free list count as live until collected). Each
// walk is bounded and a bad link ends its list. For a fork child, whose
// other threads may have stopped between a list store and the count's
// update. pre: no other thread touches d.
static void recount(struct mmpool *p, struct pdesc *d, int seal) {
  uint64_t slab = slab_off(p, page_index(p, d));
  uint64_t end = slab + (uint64_t)d->nblocks * d->bsize;
  uint64_t *link[2] = {&d->free, &d->thread_free};
  uint32_t n[2] = {0, 0};
  if (seal) {  // the lists are dropped: every block handed out is live
    d->free = 0;
    d->thread_free &= TF_DETACHED;
  }
  for (int k = 0; k < 2; k++) {
    uint64_t *at = link[k];
    uint64_t keep = k ? (*at & TF_DETACHED) : 0;
    for (;;) {
      uint64_t x = TF_HEAD(*at);
      if (!x) break;
      if (x < slab || x >= end || (x - slab) % d->bsize != 0 ||
          n[k] >= d->nblocks) {
        *at = keep;  // cut the list before the bad link
        break;
      }
      n[k]++;
      at = (uint64_t *)(p->base + x);
      keep = 0;
    }
  }
  uint32_t used = d->inited >= n[0] ? d->inited - n[0] : 0;
  if (used < n[1]) {  // cannot be: drop the remote list rather than trust it
    d->thread_free &= TF_DETACHED;
  } else {  // the count as walked (a cut list keeps its old count)
    d->thread_free = (d->thread_free & (TF_COUNT_ONE - 1)) |
                     ((uint64_t)n[1] << TF_COUNT_SHIFT);
  }
  d->used = used;
  // A pop cut short before its slack store leaves a block live with an old
  // slack entry (the block is lost: its thread is gone). Entries beyond the
  // block size are made harmless; a free block's entry means nothing.
  for (uint32_t b = 0; b < d->inited; b++) {
    uint16_t *e = pdesc_slack(p->base, d, slab + (uint64_t)b * d->bsize);
    if (*e > d->bsize) *e = 0;
  }
}

// Leaves every slab of h detached: on avail if it has room, freed if empty.
static void abandon(struct mmpool *p, struct theap *h) {
  for (unsigned c = 0; c < SC_COUNT; c++) {
    set_cur(h, c, &empty_desc);  // first: unpins the current slab
    for (uint32_t l = h->list[c]; l;) {
      struct pdesc *s = &p->desc[l - 1];
      l = s->next;
      collect(p, s, TF_DETACHED);
      __atomic_store_n(&s->owner, OWNER_DETACHED, __ATOMIC_RELAXED);
      s->next = s->prev = 0;
      if (s->used == 0)
        page_span_free(p, page_index(p, s), s->npages);
      else if (s->free || s->inited < s->nblocks)
        page_avail_push(p, s);
    }
    h->list[c] = h->scan[c] = h->nlist[c] = 0;
  }
}

static void thread_exit(void *arg) {
  (void)arg;
  tl_key_set = 0;
  if (heap_thread_exit_hook) heap_thread_exit_hook();
  tl_exiting = 1;
  heap_enter();
  for (unsigned id = 1; id <= MMPOOL_MAX_POOLS; id++) {
    struct theap *h = tl_own[id];
    if (h == &empty_heap) continue;
    set_own(id, &empty_heap);
    struct mmpool *p = h->pool;
    // The registry lock keeps the slot from being closed or reopened (its
    // mutex re-initialised) while we hold its pool lock.
    heap_registry_lock();
    if (p->state == POOL_OPEN && h->gen == p->gen && !p->frozen) {
      rb_flush(p, h);
      engine_lock(&p->lock);
      abandon(p, h);
      engine_unlock(&p->lock);
    }
    heap_free_mem(h);
    heap_registry_unlock();
  }
  heap_leave();
  // From here a free (a later destructor's) holds the freeze's lock while
  // inside: the freeze no longer sees this thread (heap_enter).
  engine_lock(&freeze_lock);
  heap_registry_lock();
  thread_unlink(&tl_thread);
  heap_registry_unlock();
  engine_unlock(&freeze_lock);
}

void heap_forget_pool(struct mmpool *p) {
  for (struct theap *h = registry, *next; h; h = next) {
    next = h->reg_next;
    if (h->pool != p) continue;
    // Its thread frees the memory when it next touches the pool's slot.
    for (unsigned c = 0; c < SC_COUNT; c++) set_cur(h, c, &empty_desc);
    h->gen = 0;
    h->handle = 0;
    heap_unregister(h);
  }
  if (tl_own[p->id] != &empty_heap && tl_own[p->id]->pool == p) {
    heap_free_mem(tl_own[p->id]);
    set_own(p->id, &empty_heap);
  }
}

void heap_fork_child(int quiet) {
  pthread_mutex_init(&reg_lock, NULL);
  // The freeze the parent took for the fork (pool.c) is over here: the
  // forking thread is the only one.
  pthread_mutex_init(&freeze_lock, NULL);
  freezing = 0;
  tl_freezer = 0;
  tl_freeze_depth = 0;
  if (heap_fork_child_hook) heap_fork_child_hook();
  // Only the forking thread lives on: the others' records (in their TLS,
  // which no thread uses any more) are dropped.
  struct heap_thread *me = &tl_thread;
  threads = me->linked ? me : NULL;
  me->next = me->prev = NULL;
  // Only the forking thread survives: the others' slabs become detached.
  for (struct theap *h = registry, *next; h; h = next) {
    next = h->reg_next;
    struct mmpool *p = h->pool;
    if (p->frozen) {
      // Not ours to change (see pool_fork_child): forget, write nothing.
      if (tl_own[p->id] == h) set_own(p->id, &empty_heap);
      heap_free_mem(h);
      continue;
    }
    // After a freeze (quiet) the batches are empty; without one, one may
    // have been cut in the middle of a change: its blocks are left live
    // (a bounded leak in the child).
    if (!quiet)
      for (unsigned i = 0; i < RB_SLOTS; i++) rb_clear(&h->rb[i]);
    if (tl_own[p->id] == h) continue;
    // After a freeze (quiet), no thread was inside the allocator at the
    // fork: the slabs are as their owners left them. Without one (a fork
    // from a signal handler that interrupted the allocator, pool.c), a
    // thread may have stopped between a list store and the count's
    // update: recount first. A shared file pool copied for this child
    // then went on changing while the copy was taken, so its free lists
    // may name blocks handed out meanwhile: they are not trusted at all
    // (every block counts as live, a bounded leak in the child).
    if (!quiet)
      for (unsigned c = 0; c < SC_COUNT; c++)
        for (uint32_t l = h->list[c]; l; l = p->desc[l - 1].next)
          recount(p, &p->desc[l - 1], p->fork_copy);
    abandon(p, h);
    heap_free_mem(h);
  }
}

void heap_release_pool(struct mmpool *p) {
  for (struct theap *h = registry; h; h = h->reg_next)
    if (h->pool == p && h->gen == p->gen) {
      abandon(p, h);
      h->gen = 0;  // heap_forget_pool below unregisters it
    }
  heap_forget_pool(p);
}
