// preload.c: the glibc allocation surface, forwarded to the pool engine.
//
// LD_PRELOAD=libmmpool-preload.so prog: every malloc, free, calloc,
// realloc, memalign... of the program and of its libraries lands here. This
// file holds no allocator logic (core/ does it all); it follows libc's
// contract to the letter (errno, NULL, EINVAL cases) and handles the
// process-level hazards: calls before our constructor (lazy, re-entrant
// initialisation with a static bootstrap area), frees of pointers we never
// handed out (never a crash), and fork (core/pool.c's handlers).
//
// Invariant: after shim_init, `shim_pool` is the open default pool and
// every block we hand out is in a pool or in the bootstrap area.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "fmt.h"
#include "route.h"
#include "shim.h"
#include "log.h"
#include "mmpool.h"
#include "os.h"
#include "route_stats.h"
#include "spec.h"

#define EXPORT __attribute__((visibility("default")))

// ---------------------------------------------------------------------------
// Initialisation

enum { INIT_NONE = 0, INIT_RUNNING = 1, INIT_DONE = 2, INIT_FAILED = 3 };
static int init_state;
static struct mmpool *shim_pool;
static __thread int tl_in_init;  // this thread is inside shim_init

// Allocations made while this thread initialises (or re-enters during it)
// come from here. Never freed; free, realloc and usable_size know them.
#define BOOT_BYTES ((size_t)1 << 20)
static char boot_area[BOOT_BYTES] __attribute__((aligned(64)));
static size_t boot_used;

static int in_boot(const void *p) {
  return (const char *)p >= boot_area && (const char *)p < boot_area + BOOT_BYTES;
}

static void *boot_alloc(size_t n, size_t align) {
  // A 16-byte header before the block holds its size.
  if (align < 16) align = 16;
  if (n > BOOT_BYTES) return NULL;
  size_t cur = __atomic_load_n(&boot_used, __ATOMIC_RELAXED), start, next;
  do {
    start = (cur + 16 + align - 1) & ~(align - 1);
    next = start + n;
    if (next > BOOT_BYTES) return NULL;
  } while (!__atomic_compare_exchange_n(&boot_used, &cur, next, 1,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  *(size_t *)(boot_area + start - 16) = n;
  return boot_area + start;
}

static size_t boot_size(const void *p) {
  return *(const size_t *)((const char *)p - 16);
}

// Frees of pointers no pool owns: bootstrap blocks are kept, anything else
// is reported by the engine (a few lines at most) and leaked.
static int foreign_free(void *p) { return in_boot(p); }

static const struct got_entries got_entries; // below, with the entries

// Opens the configured pools (settings.c) and prepares the routes; the
// configured default pool, or the built-in one.
static struct mmpool *open_configured(void) {
  settings_load();
  route_init(&got_entries);
  return pool_default();  // the configured default, or the built-in one
}

static void shim_init(void) {
  int expect = INIT_NONE;
  if (__atomic_compare_exchange_n(&init_state, &expect, INIT_RUNNING, 0,
                                  __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    tl_in_init = 1;
    heap_foreign_free_hook = foreign_free;
    struct mmpool *p = open_configured();
    if (p) {
      shim_pool = p;
      if (shim_cfg.stats) shim_stats_start();
    } else {
      log_print(LOG_ERROR, "cannot open the default pool: %s",
                log_last_error());
    }
    tl_in_init = 0;
    __atomic_store_n(&init_state, p ? INIT_DONE : INIT_FAILED,
                     __ATOMIC_RELEASE);
    return;
  }
  // Another thread initialises: wait for it (it takes no lock we hold).
  while (__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) == INIT_RUNNING)
    sched_yield();
}

// The pool for a new block, or NULL: then the bootstrap area serves.
static inline struct mmpool *pool_for(void) {
  struct mmpool *p = __atomic_load_n(&shim_pool, __ATOMIC_ACQUIRE);
  if (likely(p != NULL)) return p;
  if (!tl_in_init) shim_init();
  return __atomic_load_n(&shim_pool, __ATOMIC_ACQUIRE);
}

void shim_start(void) { (void)pool_for(); }

__attribute__((constructor)) static void shim_ctor(void) {
  (void)pool_for();
  snap_start();
}

// ---------------------------------------------------------------------------
// The slow path of every allocation: bootstrap, routes (route.c), and what
// a full pool does (fall back to the default pool, NULL, or abort). ra: the
// caller's return address, for lib= routes.

static void *alloc_in(struct mmpool *p, size_t n, size_t align, int zero) {
  // A pool closed meanwhile has handle 0, which the API would take for the
  // current pool: refused here as the stale handle it is.
  mmpool_t *h = pool_handle(p);
  if (unlikely(h == NULL)) {
    errno = EBADF;
    return NULL;
  }
  return align ? mmpool_memalign(h, align, n)
         : zero ? mmpool_calloc(h, 1, n)
                : mmpool_malloc(h, n);
}

// The emergency pool: an anonymous pool opened on demand when the pool a
// full=fallback sends blocks to (the default pool) cannot serve them either
// (full, a shared file pool frozen in a fork child, a full file system...).
// Opened once (the first thread to need it opens it, the others wait),
// never closed; its own full= is null. NULL when it cannot be opened.
#define EMERGENCY_NAME "mmpool.emergency"
static struct mmpool *emergency;
static int emergency_state;  // 0 none yet, 1 opening, 2 open, 3 failed
static int emergency_opener; // pid of the process whose thread opens it

RARE static struct mmpool *emergency_pool(const struct mmpool *def, int err) {
  int st = __atomic_load_n(&emergency_state, __ATOMIC_ACQUIRE);
  if (likely(st == 2)) return emergency;
  if (st == 3) return NULL;
  int expect = 0;
  // Every thread of the process stores the same pid, before the state
  // says "opening", so a fork child always finds the opener's pid.
  if (st == 0)
    __atomic_store_n(&emergency_opener, os_getpid(), __ATOMIC_RELEASE);
  if (__atomic_compare_exchange_n(&emergency_state, &expect, 1, 0,
                                  __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    struct pool_spec sp;
    char why[200], eb[64];
    struct mmpool *p = NULL;
    int saved = errno;
    if (spec_parse("anon size=64G full=null", &sp, why, sizeof why) == 0 &&
        pool_open(EMERGENCY_NAME, &sp, &p) == 0) {
      // A default pool let go at exit, while other threads still
      // allocate, is the normal end of a program: said at info level.
      log_print(def->frozen == FROZEN_RELEASED ? LOG_INFO : LOG_WARN,
                "the default pool '%s' cannot serve (%s): blocks "
                "of full=fallback pools go to the anonymous pool '%s' from "
                "now on", def->name, os_strerror(err, eb, sizeof eb),
                EMERGENCY_NAME);
      emergency = p;
    } else {
      log_print(LOG_ERROR, "cannot open the emergency pool '%s': %s",
                EMERGENCY_NAME, log_last_error());
    }
    errno = saved;
    __atomic_store_n(&emergency_state, p ? 2 : 3, __ATOMIC_RELEASE);
    return p;
  }
  while ((st = __atomic_load_n(&emergency_state, __ATOMIC_ACQUIRE)) == 1) {
    int opener = __atomic_load_n(&emergency_opener, __ATOMIC_ACQUIRE);
    if (opener && opener != os_getpid()) {
      // A fork child whose parent's opening thread did not come along
      // (the fork's locks kept pool_open itself whole): finish for it.
      struct mmpool *q = pool_by_name(EMERGENCY_NAME);
      emergency = q;
      __atomic_store_n(&emergency_state, q ? 2 : 0, __ATOMIC_RELEASE);
      return q ? q : emergency_pool(def, err);
    }
    sched_yield();
  }
  return st == 2 ? emergency : NULL;
}

#define NO_ROUTE UINT32_MAX

// The one answer to a pool p that failed to serve n bytes (err: the errno
// of the failure, whatever it is: ENOMEM, ENOSPC, EDQUOT, EFBIG, EIO,
// EBUSY, EBADF, EINVAL...), for malloc, calloc, realloc and the aligned
// calls alike: p's full= policy. abort: a message and abort(); null: NULL
// with ENOMEM; fallback: the block comes from the default pool, or, when p
// is the default pool or the default pool fails too, from the emergency
// pool. route: the route that chose p, counted as fallen back (NO_ROUTE: a
// realloc move, which is no new allocation). errno0: the caller's errno,
// restored on success.
RARE static __attribute__((noinline)) void *
pool_failed(struct mmpool *p, int err, size_t n, size_t align, int zero,
            struct mmpool *def, unsigned route, int errno0) {
  char eb[64];
  if (err == 0) err = ENOMEM;
  // A pool frozen for good (its file let go at exit while other threads
  // run on, or a fork child's uncopied shared pool) is not full: the
  // program may not know it is ending. Its blocks come from elsewhere,
  // whatever full= says.
  int gone = p->frozen != FROZEN_NONE;
  if (p->spec_full == SPEC_FULL_ABORT && !gone) {
    if (err == ENOMEM)
      log_fatal("pool '%s' is full (%zu bytes asked; full=abort)", p->name,
                n);
    log_fatal("pool '%s' cannot serve %zu bytes: %s (full=abort)", p->name,
              n, os_strerror(err, eb, sizeof eb));
  }
  if (p->spec_full != SPEC_FULL_FALLBACK && !gone) {
    errno = ENOMEM;
    return NULL;
  }
  void *b = NULL;
  if (p != def) b = alloc_in(def, n, align, zero);
  if (!b) {
    struct mmpool *em = emergency_pool(def, p != def ? errno : err);
    if (em && em != p) b = alloc_in(em, n, align, zero);
  }
  if (!b) {
    errno = ENOMEM;
    return NULL;
  }
  route_stats_fallback(p->id, err);
  if (route != NO_ROUTE) route_count(route, n, align, 1);
  errno = errno0;
  return b;
}

static void *alloc(size_t n, size_t align, int zero, uintptr_t ra) {
  struct mmpool *def = pool_for();
  if (!def) {
    void *b = boot_alloc(n, align);  // static memory: already zero
    if (!b) errno = ENOMEM;
    return b;
  }
  int errno0 = errno;
  unsigned r;
  struct mmpool *p = route_pick(n, ra, def, &r);
  void *b = alloc_in(p, n, align, zero);
  if (b) {
    route_count(r, n, align, 0);
    return b;
  }
  return pool_failed(p, errno, n, align, zero, def, r, errno0);
}

// realloc of a block of a pool that could not grow it nor move it within
// its pool (mmpool_realloc failed): the pool's full= policy decides where
// the block goes. NULL (errno as mmpool_realloc left it) when ptr is not a
// block.
RARE static __attribute__((noinline)) void *realloc_failed(void *ptr, size_t n,
                                                           int errno0) {
  int err = errno;
  uintptr_t a = (uintptr_t)ptr;
  struct mmpool *q = pool_of_addr(a);
  const char *why;
  struct pdesc *d = q ? heap_block(q, a, &why) : NULL;
  if (!d) return NULL;  // not a block: mmpool_realloc said why
  size_t old = heap_usable(q, d, a);
  struct mmpool *def = pool_for();
  void *b = pool_failed(q, err, n, 0, 0, def, NO_ROUTE, errno0);
  if (!b) return NULL;
  memcpy(b, ptr, old < n ? old : n);
  heap_free(ptr);
  return b;
}

// ---------------------------------------------------------------------------
// malloc family

#define CALLER() ((uintptr_t)__builtin_return_address(0))

// A block of n <= SC_DIRECT_MAX bytes from pool id (this thread's heap in
// it, core's fast path), counted in *count; NULL when the slab at hand is
// empty.
static inline __attribute__((always_inline)) void *
pop_direct(unsigned id, uint64_t *count, size_t n) {
  void *b = heap_try_direct(id, n);
  if (likely(b != NULL)) ++*count;
  return b;
}

// The routing table for the caller at ra if the fast path can know it:
// tab0 without lib= routes, else the return-address cache's entry.
static inline struct rtable *table_now(uintptr_t ra) {
  if (!route_by_lib) return &tl_route.tab0;
  unsigned i = (uint8_t)ra;
  return tl_route.rc.ra[i] == ra ? tl_route.rc.tab[i] : NULL;
}

// The lanes after the fast path: a size <= SC_SMALL_MAX whose pool the
// table knows, from that pool's thread heap. NULL: alloc() must serve it
// (first call, a class two routes cut, empty slab...).
static inline __attribute__((always_inline)) void *lane(struct rtable *t,
                                                        size_t n) {
  // Id 0 (the slow path's) gives NULL: the heap of id 0 is the empty heap.
  if (n <= SC_DIRECT_MAX) return pop_direct(t->pid[n], &t->count[n], n);
  unsigned c = sc_of(n), part = n > t->ccut[c];
  void *b = heap_try_class(t->cpid[c][part], c, n);
  if (b) t->ccount[c][part]++;
  return b;
}

// lane_refill (below) for a size above SC_DIRECT_MAX, whose tab0 lane is
// by class. Out of line: malloc_slow serves every such malloc.
static __attribute__((noinline)) void *class_refill(size_t n, uintptr_t ra) {
  struct rtable *t = &tl_route.tab0;
  unsigned c = sc_of(n), part = n > t->ccut[c], id = t->cpid[c][part];
  if (route_lane_ok(id)) {
    int errno0 = errno;
    void *b = heap_alloc_slow(&pool_table[id], n);
    if (likely(b != NULL)) {
      t->ccount[c][part]++;
      return b;
    }
    errno = errno0;
  }
  return alloc(n, 0, 0, ra);
}

static __attribute__((noinline)) void *malloc_slow(size_t n, uintptr_t ra) {
  if (n > SC_DIRECT_MAX && n <= SC_SMALL_MAX) {
    struct rtable *t = table_now(ra);
    void *b = t ? lane(t, n) : NULL;
    if (b) return b;
    if (!route_by_lib) return class_refill(n, ra);  // t is tab0
  }
  return alloc(n, 0, 0, ra);
}

// malloc. A small block comes straight from the pool that its size names
// in this thread's routing table (route.h). Without lib= routes that is
// tab0; the size test against route_tab0_limit (0 with lib= routes)
// doubles as the test for them, at no extra instruction. With them, the
// table is the return-address cache's entry for the caller. Inlined into
// each exported function, so that CALLER() is that function's caller; read
// only where it is needed.
//
// The instruction count of both paths is measured (bench/routes.sh); two
// details keep the lib= path at 7 instructions more than the tab0 path:
//  - the first test is a coin toss for the compiler, not likely(): either
//    path is then laid out whole with its own return, instead of jumping
//    back into the other's tail;
//  - preload.c is built with -fno-crossjumping (shim/CMakeLists.txt), which
//    would merge the two copies of pop_direct's tail again.
// tab0's lane for n names pool id, but its slab at hand had no free block:
// that pool's slow path directly (the route was decided when the lane was
// filled), counted as the fast path counts; routing in full
// (malloc_slow) when the lane may be stale or the pool cannot serve (its
// full= policy decides there). The lane is read again here: keeping it
// across the pop would cost the fast path a register copy. Id 0 names no
// open pool.
static __attribute__((noinline)) void *lane_refill(size_t n, uintptr_t ra) {
  unsigned id = tl_route.tab0.pid[n];
  if (route_lane_ok(id)) {
    int errno0 = errno;
    void *b = heap_alloc_slow(&pool_table[id], n);
    if (likely(b != NULL)) {
      tl_route.tab0.count[n]++;
      return b;
    }
    errno = errno0;
  }
  return malloc_slow(n, ra);
}

static inline __attribute__((always_inline)) void *malloc_inline(size_t n) {
  if (__builtin_expect_with_probability(n < route_main_limit, 1, 0.5)) {
    // The thread's main heap: tab0's pool for every size below the limit,
    // found without reading the pool id (heap_try_main). Before tab0 is
    // filled, and while a freeze holds the thread, it is the empty heap.
    void *b = heap_try_main(n);
    if (likely(b != NULL)) {
      ++tl_route.tab0.count[n];
      return b;
    }
    return lane_refill(n, CALLER());
  } else if (n <= SC_DIRECT_MAX) {
    if (n < route_tab0_limit) {
      // Id 0 ("ask the slow path") needs no test: the heap of id 0 is the
      // empty heap, whose slabs have no free block.
      void *b = pop_direct(tl_route.tab0.pid[n], &tl_route.tab0.count[n], n);
      if (likely(b != NULL)) return b;
      return lane_refill(n, CALLER());
    }
    uintptr_t ra = CALLER();
    unsigned i = (uint8_t)ra;
    if (likely(tl_route.rc.ra[i] == ra)) {
      struct rtable *t = tl_route.rc.tab[i];
      unsigned id = t->pid[n];
      void *b = pop_direct(id, &t->count[n], n);
      if (likely(b != NULL)) return b;
    }
    return malloc_slow(n, ra);
  }
  return malloc_slow(n, CALLER());
}

EXPORT void *malloc(size_t n) { return malloc_inline(n); }

EXPORT void free(void *ptr) { heap_free(ptr); }

EXPORT void cfree(void *ptr) { heap_free(ptr); }

EXPORT void free_sized(void *ptr, size_t n) {
  (void)n;
  heap_free(ptr);
}

EXPORT void free_aligned_sized(void *ptr, size_t align, size_t n) {
  (void)align, (void)n;
  heap_free(ptr);
}

// calloc of total bytes: from the lanes of table t (NULL: none), else the
// slow path.
static inline __attribute__((always_inline)) void *
calloc_in(struct rtable *t, size_t total, uintptr_t ra) {
  if (t && total <= SC_SMALL_MAX) {
    void *b = lane(t, total);
    if (b) return memset(b, 0, total); // usable size == total: all of it
  }
  return alloc(total, 0, 1, ra);
}

static inline int calloc_total(size_t n, size_t size, size_t *total) {
  if (!__builtin_mul_overflow(n, size, total)) return 1;
  errno = ENOMEM;
  return 0;
}

EXPORT void *calloc(size_t n, size_t size) {
  size_t total;
  if (!calloc_total(n, size, &total)) return NULL;
  uintptr_t ra = CALLER();
  return calloc_in(total <= SC_SMALL_MAX ? table_now(ra) : NULL, total, ra);
}

// ---------------------------------------------------------------------------
// Entry points by class (lib= routes; got.c points modules' GOT slots here).
// The entry of class k reads the table of class k from a fixed place, with
// no return-address lookup: class 0 (callers no lib= route matches) has
// exactly the fast path that malloc has without lib= routes. What the table
// cannot serve goes to the slow path, which routes by the return address.

static inline __attribute__((always_inline)) struct rtable *
class_table_now(unsigned k) {
  return k ? tl_ctab[k] : &tl_route.tab0;
}

static inline __attribute__((always_inline)) void *malloc_class(unsigned k,
                                                                size_t n) {
  if (likely(n <= SC_DIRECT_MAX)) {
    struct rtable *t = class_table_now(k);
    void *b = pop_direct(t->pid[n], &t->count[n], n);
    if (likely(b != NULL)) return b;
  }
  return malloc_slow(n, CALLER());
}

static inline __attribute__((always_inline)) void *
calloc_class(unsigned k, size_t n, size_t size) {
  size_t total;
  if (!calloc_total(n, size, &total)) return NULL;
  return calloc_in(class_table_now(k), total, CALLER());
}

#define CLASS_ENTRIES(k)                                                      \
  static void *malloc_c##k(size_t n) { return malloc_class(k, n); }           \
  static void *calloc_c##k(size_t n, size_t size) {                           \
    return calloc_class(k, n, size);                                          \
  }
CLASS_ENTRIES(0)
CLASS_ENTRIES(1)
CLASS_ENTRIES(2)
CLASS_ENTRIES(3)
CLASS_ENTRIES(4)
CLASS_ENTRIES(5)
CLASS_ENTRIES(6)
CLASS_ENTRIES(7)
_Static_assert(GOT_CLASSES == 8, "one CLASS_ENTRIES line per class");
void *const route_malloc_entry[GOT_CLASSES] = {
    malloc_c0, malloc_c1, malloc_c2, malloc_c3,
    malloc_c4, malloc_c5, malloc_c6, malloc_c7};
void *const route_calloc_entry[GOT_CLASSES] = {
    calloc_c0, calloc_c1, calloc_c2, calloc_c3,
    calloc_c4, calloc_c5, calloc_c6, calloc_c7};
// Handed to got.c through route_init: the entries, and the exported
// functions a bound GOT slot holds.
static const struct got_entries got_entries = {
    (void *)malloc, (void *)calloc, route_malloc_entry, route_calloc_entry};

EXPORT size_t malloc_usable_size(void *ptr) {
  if (unlikely(in_boot(ptr))) return boot_size(ptr);
  return mmpool_usable_size(ptr);
}

// realloc of a block of a pool through the control API's path, a failure
// reported (realloc_failed).
static void *realloc_pooled(void *ptr, size_t n) {
  int errno0 = errno;
  void *r = mmpool_realloc(NULL, ptr, n);
  if (likely(r != NULL)) return r;
  return realloc_failed(ptr, n, errno0);
}

// realloc when the block moves within its pool (the fast paths: a string
// or vector grown step by step leaves its class); old is its usable size.
static __attribute__((noinline)) void *realloc_move(void *ptr, size_t n,
                                                    size_t old) {
  int errno0 = errno, dirty;
  void *r = heap_alloc(heap_pool_at(ptr), n, &dirty);
  if (likely(r != NULL)) {
    memcpy(r, ptr, old < n ? old : n);
    heap_free_as(ptr, "realloc");
    return r;
  }
  errno = errno0;  // mmpool_realloc decides, and says why
  return realloc_pooled(ptr, n);
}

// Every other realloc but NULL: size 0, a bootstrap block (moved by a
// malloc routed for the caller ra), another thread's or a large block, one
// the fast path's checks refuse.
static __attribute__((noinline)) void *realloc_slow(void *ptr, size_t n,
                                                    uintptr_t ra) {
  if (unlikely(in_boot(ptr))) {
    // Bootstrap blocks move into a pool (they are never freed).
    if (n == 0) return NULL;
    void *r = malloc_slow(n, ra);
    if (r) {
      size_t old = boot_size(ptr);
      memcpy(r, ptr, old < n ? old : n);
    }
    return r;
  }
  if (n == 0) {  // glibc: realloc(p, 0) frees p and returns NULL
    heap_free_as(ptr, "realloc");
    return NULL;
  }
  if (!pool_of_addr((uintptr_t)ptr)) {
    // Not ours (a foreign library's block): we cannot know its size.
    log_print(LOG_WARN, "realloc(%p): not a block of any pool", ptr);
    errno = ENOMEM;
    return NULL;
  }
  return realloc_pooled(ptr, n);
}

// realloc(NULL, n) is malloc's fast path; a small block of this thread (or
// of a full slab) that stays in place returns here too, with no call: the
// other cases are out of line. A bootstrap block and a foreign pointer
// fail heap_try_resize's first test (no pool holds them in its checked
// range); size 0 frees.
static inline __attribute__((always_inline)) void *realloc_inline(
    void *ptr, size_t n) {
  if (!ptr) return malloc_inline(n);
  size_t old;
  int fast = likely(n != 0) ? heap_try_resize(ptr, n, &old) : -1;
  if (likely(fast > 0)) return ptr;
  if (fast == 0) return realloc_move(ptr, n, old);
  return realloc_slow(ptr, n, CALLER());
}

EXPORT void *realloc(void *ptr, size_t n) {
  return realloc_inline(ptr, n);
}

EXPORT void *reallocarray(void *ptr, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return realloc_inline(ptr, total);
}

// pre: align is a power of two.
static void *aligned(size_t align, size_t n, uintptr_t ra) {
  void *r = alloc(n, align, 0, ra);
  if (!r && errno == EINVAL) errno = ENOMEM;  // too big for the pool
  return r;
}

// glibc 2.36: an alignment that is not a power of two is rounded up; one
// above SIZE_MAX / 2 + 1 is EINVAL.
static void *memalign_glibc(size_t align, size_t n, uintptr_t ra) {
  if (align > SIZE_MAX / 2 + 1) {
    errno = EINVAL;
    return NULL;
  }
  if (align & (align - 1)) {
    size_t a = 1;
    while (a < align) a <<= 1;
    align = a;
  }
  return aligned(align ? align : 1, n, ra);
}

EXPORT void *memalign(size_t align, size_t n) {
  return memalign_glibc(align, n, CALLER());
}

EXPORT void *aligned_alloc(size_t align, size_t n) {
  return memalign_glibc(align, n, CALLER());
}

EXPORT int posix_memalign(void **out, size_t align, size_t n) {
  if (align < sizeof(void *) || (align & (align - 1))) return EINVAL;
  int saved = errno;
  void *r = aligned(align, n, CALLER());
  int e = errno;
  errno = saved;  // posix_memalign reports through its result only
  if (!r) return e == EINVAL ? EINVAL : ENOMEM;
  *out = r;
  return 0;
}

RARE EXPORT void *valloc(size_t n) { return aligned(4096, n, CALLER()); }

RARE EXPORT void *pvalloc(size_t n) {
  if (n > SIZE_MAX - 4095) {
    errno = ENOMEM;
    return NULL;
  }
  return aligned(4096, (n + 4095) & ~(size_t)4095, CALLER());
}

// glibc's internal names: some code allocates with one name and frees with
// the other (PITFALLS 1.4).
EXPORT void *__libc_malloc(size_t n) __attribute__((alias("malloc"), copy(malloc)));
EXPORT void __libc_free(void *p) __attribute__((alias("free"), copy(free)));
EXPORT void *__libc_calloc(size_t n, size_t s) __attribute__((alias("calloc"), copy(calloc)));
EXPORT void *__libc_realloc(void *p, size_t n) __attribute__((alias("realloc"), copy(realloc)));
EXPORT void *__libc_memalign(size_t a, size_t n) __attribute__((alias("memalign"), copy(memalign)));
EXPORT void *__libc_valloc(size_t n) __attribute__((alias("valloc"), copy(valloc)));
EXPORT void *__libc_pvalloc(size_t n) __attribute__((alias("pvalloc"), copy(pvalloc)));

// ---------------------------------------------------------------------------
// dlclose: a module unloaded leaves the table that lib= routes look return
// addresses up in (route.c); another module may be loaded at its address.
// dlopen needs no wrapper: an address in no known module rebuilds the table.
// (glibc's own unloads, of iconv modules for instance, are not seen: a
// return address of such a module that a later module reuses may be routed
// by the old module's name.)

EXPORT int dlclose(void *handle) {
  static int (*real)(void *);
  int (*fn)(void *) = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
  if (!fn) {
    fn = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
    if (!fn) {
      log_print(LOG_ERROR, "dlclose: the C library's dlclose is not found");
      return -1;
    }
    __atomic_store_n(&real, fn, __ATOMIC_RELEASE);
  }
  int r = fn(handle);
  int saved = errno;
  route_modules_changed();
  errno = saved;
  return r;
}

// ---------------------------------------------------------------------------
// Introspection: every open pool (those of the configuration, those the
// program opened through the API, the emergency pool)

// The next open pool after slot *id (start with *id = 0), its statistics in
// *st; NULL after the last. A pool closed meanwhile is skipped.
RARE static struct mmpool *next_pool(unsigned *id, mmpool_stats_t *st) {
  (void)pool_for();  // the configured pools are open
  while (++*id <= MMPOOL_MAX_POOLS) {
    struct mmpool *p = &pool_table[*id];
    if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) != POOL_OPEN) continue;
    mmpool_t *h = pool_handle(p);
    int saved = errno;
    int r = h ? mmpool_stats(h, st) : -1;
    errno = saved;
    if (r == 0) return p;
  }
  return NULL;
}

// The sums of every open pool.
RARE EXPORT struct mallinfo2 mallinfo2(void) {
  mmpool_stats_t st;
  struct mallinfo2 m;
  memset(&m, 0, sizeof m);
  for (unsigned id = 0; next_pool(&id, &st);) {
    m.arena += st.mapped;
    m.ordblks += st.in_use_blocks;
    m.hblks += st.large_blocks;
    m.uordblks += st.in_use;
    m.fordblks += st.free_bytes;
  }
  m.keepcost = 0;
  return m;
}

RARE EXPORT struct mallinfo mallinfo(void) {
  struct mallinfo2 m2 = mallinfo2();
  struct mallinfo m;
  memset(&m, 0, sizeof m);
  // The old interface has int fields: clamp instead of wrapping.
#define CLAMP(v) ((int)((v) > (size_t)INT32_MAX ? INT32_MAX : (v)))
  m.arena = CLAMP(m2.arena);
  m.ordblks = CLAMP(m2.ordblks);
  m.hblks = CLAMP(m2.hblks);
  m.uordblks = CLAMP(m2.uordblks);
  m.fordblks = CLAMP(m2.fordblks);
#undef CLAMP
  return m;
}

// No glibc tunable applies to the pools: accepted and ignored (1 = success).
EXPORT int mallopt(int param, int value) {
  (void)param, (void)value;
  return 1;
}

// Every open anonymous pool gives its free pages back to the kernel at once,
// instead of when they have stayed free for the purge delay (core/page.c,
// "Purging"); file pools keep theirs. pad is ignored: nothing stays. 1 when
// memory was given back, as glibc's.
EXPORT int malloc_trim(size_t pad) {
  (void)pad;
  int saved = errno;
  (void)pool_for();  // the configured pools are open
  uint64_t n = 0;
  for (unsigned id = 1; id <= MMPOOL_MAX_POOLS; id++) {
    struct mmpool *p = &pool_table[id];
    if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) == POOL_OPEN)
      n += heap_trim(p);
  }
  errno = saved;
  return n != 0;
}

// Like glibc's: on the stderr of the moment (fd 2 as it is now, whatever
// it was at start-up), one line per open pool and the total. Written
// without allocating, in one write per line.
RARE EXPORT void malloc_stats(void) {
  mmpool_stats_t st;
  size_t blocks = 0, in_use = 0, mapped = 0, free_b = 0;
  char line[256];
  int saved = errno;
  for (unsigned id = 0; next_pool(&id, &st);) {
    struct mmpool *p = &pool_table[id];
    size_t n = fmt_format(line, sizeof line, "mmpool: pool %s%s: %zu blocks "
                          "in use (%zu bytes), %zu bytes mapped, %zu free\n",
                          p->name, p == shim_pool ? " (default pool)" : "",
                          st.in_use_blocks, st.in_use, st.mapped,
                          st.free_bytes);
    os_write_all(2, line, n);
    blocks += st.in_use_blocks, in_use += st.in_use;
    mapped += st.mapped, free_b += st.free_bytes;
  }
  size_t n = fmt_format(line, sizeof line, "mmpool: all pools: %zu blocks in "
                        "use (%zu bytes), %zu bytes mapped, %zu free\n",
                        blocks, in_use, mapped, free_b);
  os_write_all(2, line, n);
  errno = saved;
}

// stdio may allocate: called with no lock of ours held (PITFALLS 1.6). One
// <pool> element per open pool, then the sums.
RARE EXPORT int malloc_info(int options, FILE *fp) {
  if (options != 0) {
    errno = EINVAL;
    return -1;
  }
  mmpool_stats_t st;
  size_t blocks = 0, in_use = 0, mapped = 0, free_b = 0;
  fprintf(fp, "<malloc version=\"mmpool-%d.%d\">\n", MMPOOL_VERSION_MAJOR,
          MMPOOL_VERSION_MINOR);
  for (unsigned id = 0; next_pool(&id, &st);) {
    fprintf(fp, "<pool name=\"%s\"%s>\n"
            "<total type=\"mapped\" size=\"%zu\"/>\n"
            "<total type=\"in_use\" count=\"%zu\" size=\"%zu\"/>\n"
            "<total type=\"free\" size=\"%zu\"/>\n</pool>\n",
            pool_table[id].name,
            &pool_table[id] == shim_pool ? " default=\"yes\"" : "",
            st.mapped, st.in_use_blocks, st.in_use, st.free_bytes);
    blocks += st.in_use_blocks, in_use += st.in_use;
    mapped += st.mapped, free_b += st.free_bytes;
  }
  fprintf(fp, "<total type=\"mapped\" size=\"%zu\"/>\n"
          "<total type=\"in_use\" count=\"%zu\" size=\"%zu\"/>\n"
          "<total type=\"free\" size=\"%zu\"/>\n</malloc>\n",
          mapped, blocks, in_use, free_b);
  return 0;
}
