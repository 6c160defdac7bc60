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
#include "internal.h"
#include "shim.h"
#include "log.h"
#include "mmpool.h"

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

// The configuration: static, since it is read before malloc works.
struct mmpool_config shim_cfg;
static struct config_errors cfg_errs;
struct mmpool *shim_cfg_pool[CONFIG_MAX_POOLS];  // by config pool index
static int routed;  // size or thread routes apply
// The pool of every size of a direct slot ((n + 15) >> 4, n <= 1024) for
// the calling thread, routes applied: malloc's fast path reads its pool
// here, at no extra cost for routing. Filled by the slow path (all NULL
// until then), and NULL for a slot that a route boundary splits (those
// sizes take the slow path). With thread= routes the slow path re-reads
// the thread's name and refills the table when it changed.
#define NSLOTS (SC_DIRECT_MAX / 16 + 1)
static __thread struct mmpool *direct_pool[NSLOTS];
static __thread char tl_name[16];  // the name the table was made for
static __thread int tl_filled;      // direct_pool holds this thread's table

// Opens the configured pools; the default one becomes shim_pool. A pool
// that cannot be opened is reported; without its default the program runs
// on the built-in anonymous default.
static struct mmpool *open_configured(void) {
  extern char **environ;
  log_open_sink();
  int r = config_load(&shim_cfg, environ, &cfg_errs);
  log_set_level(shim_cfg.log_level);
  for (unsigned i = 0; i < cfg_errs.count; i++)
    log_print(LOG_ERROR, "%s", cfg_errs.line[i]);
  if (cfg_errs.total > cfg_errs.count)
    log_print(LOG_ERROR, "%u more configuration errors",
              cfg_errs.total - cfg_errs.count);
  if (r == -EINVAL) {
    log_print(LOG_ERROR, "MMPOOL_STRICT is set: stopping");
    _exit(127);
  }
  if (shim_cfg.fallback)
    log_print(LOG_WARN, "running on the default configuration (one "
              "anonymous pool) because of the errors above");
  struct mmpool *def = NULL;
  for (unsigned i = 0; i < shim_cfg.npools; i++) {
    struct mmpool *p = NULL;
    if (pool_open(shim_cfg.pools[i].name, &shim_cfg.pools[i].spec, &p) != 0) {
      log_print(LOG_ERROR, "%s", log_last_error());
      continue;
    }
    shim_cfg_pool[i] = p;
    if (i == shim_cfg.default_pool) def = p;
  }
  if (def) pool_set_default(def);
  shim_brk_init();
  routed = shim_cfg.nroutes > shim_cfg.lib_routes;
  if (shim_cfg.lib_routes)
    log_print(LOG_WARN, "%u lib= route(s) configured: this version does "
              "not apply them yet; they are skipped", shim_cfg.lib_routes);
  if (log_level() >= LOG_INFO) {
    char buf[4096];
    size_t n = config_describe(&shim_cfg, buf, sizeof buf);
    for (char *line = buf, *end; line < buf + n && *line; line = end + 1) {
      end = line;
      while (*end && *end != '\n') end++;
      log_print(LOG_INFO, "config: %.*s", (int)(end - line), line);
      if (!*end) break;
    }
  }
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

__attribute__((constructor)) static void shim_ctor(void) { (void)pool_for(); }

// ---------------------------------------------------------------------------
// Routing: the first size route that matches names the pool, else the
// default pool. A full pool follows its full= policy.

// The first route that matches size n for this thread (named tl_name).
static struct mmpool *route(size_t n, struct mmpool *def) {
  for (unsigned i = 0; i < shim_cfg.nroutes; i++) {
    const struct config_route *r = &shim_cfg.routes[i];
    int hit = r->cond == CONFIG_SIZE     ? n >= r->lo && n <= r->hi
              : r->cond == CONFIG_THREAD ? config_glob_match(r->glob, tl_name)
                                         : 0;  // lib=: not applied yet
    struct mmpool *p = shim_cfg_pool[r->pool];
    // A pool the program closed through the API takes nothing any more.
    if (hit && p && p->state == POOL_OPEN) return p;
  }
  return def;
}

// Applies the routes to every size of each direct slot, for this thread.
static void fill_direct(struct mmpool *def) {
  for (unsigned s = 0; s < NSLOTS; s++) {
    size_t lo = s ? 16 * s - 15 : 0, hi = 16 * s;
    struct mmpool *p = routed ? route(lo, def) : def;
    for (size_t n = lo + 1; n <= hi && p; n++)
      if ((routed ? route(n, def) : def) != p) p = NULL;
    direct_pool[s] = p;
  }
  tl_filled = 1;
}

// Before routing in the slow path: the thread's name, and its table.
static void refresh_thread(struct mmpool *def) {
  if (shim_cfg.thread_routes) {
    char name[16] = {0};
    syscall(SYS_prctl, PR_GET_NAME, name, 0, 0, 0);
    if (memcmp(name, tl_name, sizeof name) != 0 || !tl_filled) {
      memcpy(tl_name, name, sizeof name);
      fill_direct(def);
    }
  } else if (!tl_filled) {
    fill_direct(def);
  }
}

static void *alloc_in(struct mmpool *p, size_t n, size_t align, int zero) {
  return align ? mmpool_memalign(p, align, n)
         : zero ? mmpool_calloc(p, 1, n)
                : mmpool_malloc(p, n);
}

// Every allocation that leaves malloc's fast path: bootstrap, routes, and
// what a full pool does (fall back to the default pool, NULL, or abort).
static void *alloc(size_t n, size_t align, int zero) {
  struct mmpool *def = pool_for();
  if (!def) {
    void *b = boot_alloc(n, align);  // static memory: already zero
    if (!b) errno = ENOMEM;
    return b;
  }
  refresh_thread(def);
  struct mmpool *p = routed ? route(n, def) : def;
  void *r = alloc_in(p, n, align, zero);
  if (r || errno != ENOMEM) return r;
  if (p->spec_full == SPEC_FULL_ABORT)
    log_fatal("pool '%s' is full (%zu bytes asked; full=abort)", p->name, n);
  if (p->spec_full == SPEC_FULL_FALLBACK && p != def)
    return alloc_in(def, n, align, zero);
  return NULL;
}

// ---------------------------------------------------------------------------
// malloc family

static __attribute__((noinline)) void *malloc_slow(size_t n) {
  return alloc(n, 0, 0);
}

EXPORT void *malloc(size_t n) {
  // A small block comes straight from its pool's thread heap: the pool of
  // its size slot for this thread, routes applied.
  if (likely(n <= SC_DIRECT_MAX)) {
    unsigned s = (unsigned)(n + 15) >> 4;
    struct mmpool *p = direct_pool[s];
    if (likely(p != NULL)) {
      struct theap *h = tl_heap[p->id];
      struct pdesc *d = h->direct[s];
      uint64_t off = d->free;
      if (likely(off)) return slab_pop(h->base, d, off, n);
    }
  }
  return malloc_slow(n);
}

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

EXPORT void *calloc(size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return alloc(total, 0, 1);
}

EXPORT size_t malloc_usable_size(void *ptr) {
  if (unlikely(in_boot(ptr))) return boot_size(ptr);
  return mmpool_usable_size(ptr);
}

EXPORT void *realloc(void *ptr, size_t n) {
  if (!ptr) return malloc(n);
  if (unlikely(in_boot(ptr))) {
    // Bootstrap blocks move into a pool (they are never freed).
    if (n == 0) return NULL;
    void *r = malloc(n);
    if (r) {
      size_t old = boot_size(ptr);
      memcpy(r, ptr, old < n ? old : n);
    }
    return r;
  }
  if (n == 0) {  // glibc: realloc(p, 0) frees p and returns NULL
    heap_free(ptr);
    return NULL;
  }
  if (!pool_of_addr((uintptr_t)ptr)) {
    // Not ours (a foreign library's block): we cannot know its size.
    log_print(LOG_WARN, "realloc(%p): not a block of any pool", ptr);
    errno = ENOMEM;
    return NULL;
  }
  return mmpool_realloc(NULL, ptr, n);
}

EXPORT void *reallocarray(void *ptr, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return realloc(ptr, total);
}

// pre: align is a power of two.
static void *aligned(size_t align, size_t n) {
  void *r = alloc(n, align, 0);
  if (!r && errno == EINVAL) errno = ENOMEM;  // too big for the pool
  return r;
}

// glibc 2.36: an alignment that is not a power of two is rounded up; one
// above SIZE_MAX / 2 + 1 is EINVAL.
static void *memalign_glibc(size_t align, size_t n) {
  if (align > SIZE_MAX / 2 + 1) {
    errno = EINVAL;
    return NULL;
  }
  if (align & (align - 1)) {
    size_t a = 1;
    while (a < align) a <<= 1;
    align = a;
  }
  return aligned(align ? align : 1, n);
}

EXPORT void *memalign(size_t align, size_t n) {
  return memalign_glibc(align, n);
}

EXPORT void *aligned_alloc(size_t align, size_t n) {
  return memalign_glibc(align, n);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n) {
  if (align < sizeof(void *) || (align & (align - 1))) return EINVAL;
  int saved = errno;
  void *r = aligned(align, n);
  int e = errno;
  errno = saved;  // posix_memalign reports through its result only
  if (!r) return e == EINVAL ? EINVAL : ENOMEM;
  *out = r;
  return 0;
}

EXPORT void *valloc(size_t n) { return aligned(4096, n); }

EXPORT void *pvalloc(size_t n) {
  if (n > SIZE_MAX - 4095) {
    errno = ENOMEM;
    return NULL;
  }
  return aligned(4096, (n + 4095) & ~(size_t)4095);
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
// Introspection: answered from the default pool's statistics

static void default_stats(mmpool_stats_t *st) {
  memset(st, 0, sizeof *st);
  struct mmpool *p = pool_for();
  if (p) mmpool_stats(p, st);
}

EXPORT struct mallinfo2 mallinfo2(void) {
  mmpool_stats_t st;
  default_stats(&st);
  struct mallinfo2 m;
  memset(&m, 0, sizeof m);
  m.arena = st.mapped;
  m.ordblks = st.in_use_blocks;
  m.hblks = st.large_blocks;
  m.uordblks = st.in_use;
  m.fordblks = st.free_bytes;
  m.keepcost = 0;
  return m;
}

EXPORT struct mallinfo mallinfo(void) {
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

// Free spans of 4 MiB and more are already given back as they are freed.
EXPORT int malloc_trim(size_t pad) {
  (void)pad;
  return 0;
}

EXPORT void malloc_stats(void) {
  mmpool_stats_t st;
  default_stats(&st);
  log_print(LOG_ERROR, "default pool: %zu blocks in use (%zu bytes), %zu "
            "bytes mapped, %zu free", st.in_use_blocks, st.in_use, st.mapped,
            st.free_bytes);
}

// stdio may allocate: called with no lock of ours held (PITFALLS 1.6).
EXPORT int malloc_info(int options, FILE *fp) {
  if (options != 0) {
    errno = EINVAL;
    return -1;
  }
  mmpool_stats_t st;
  default_stats(&st);
  fprintf(fp, "<malloc version=\"mmpool-%d.%d\">\n<pool name=\"default\">\n"
          "<total type=\"mapped\" size=\"%zu\"/>\n"
          "<total type=\"in_use\" count=\"%zu\" size=\"%zu\"/>\n"
          "<total type=\"free\" size=\"%zu\"/>\n</pool>\n</malloc>\n",
          MMPOOL_VERSION_MAJOR, MMPOOL_VERSION_MINOR, st.mapped,
          st.in_use_blocks, st.in_use, st.free_bytes);
  return 0;
}
