// api.c: the public control API (include/mmpool.h) over the engine.
//
// Each entry point checks its arguments, forwards to pool.c or heap.c and
// turns internal negative-errno results into the API's convention: NULL or
// -1, errno set, and the message left by log_fail for mmpool_last_error.
#include <errno.h>
#include <string.h>

#include "fmt.h"
#include "heap.h"
#include "lock.h"
#include "log.h"
#include "mmpool.h"
#include "os.h"
#include "page.h"
#include "pool.h"
#include "snapshot.h"

#define MMPOOL_PUSH_MAX 16

// The thread's pushed pools, as handles: one closed meanwhile (by another
// thread) is then refused like any stale handle.
static __thread mmpool_t *tl_stack[MMPOOL_PUSH_MAX];
static __thread unsigned tl_depth;

static void *fail_null(int err) {
  errno = err;
  return NULL;
}

static int fail_int(int r) {
  errno = -r;
  return -1;
}

static int bad_handle(const char *fn, const mmpool_t *h) {
  return log_fail(EBADF, "%s: stale or invalid pool handle %p (its pool "
                  "was closed, or it is not a handle)", fn, (const void *)h);
}

// The pool a pool argument means: NULL is the thread's current pool, else
// the default pool. NULL with the reason left by log_fail: EBADF for a
// stale or invalid handle, ENOMEM when the default pool cannot be opened.
static struct mmpool *resolve(mmpool_t *h, const char *fn) {
  if (!h && tl_depth) h = tl_stack[tl_depth - 1];
  if (!h) {
    struct mmpool *d = pool_default();
    if (!d) log_fail(ENOMEM, "%s: the default pool cannot be opened", fn);
    return d;
  }
  struct mmpool *p = pool_from_handle(h);
  if (!p) bad_handle(fn, h);
  return p;
}

// After resolve (or any failing engine call): the errno of its reason.
static void *fail_taken(void) {
  int e = log_take_code();
  return fail_null(e ? e : ENOMEM);
}

// A handle that must name an open pool (NULL: EINVAL); reason as resolve.
static struct mmpool *handle_arg(const mmpool_t *h, const char *fn) {
  if (!h) {
    log_fail(EINVAL, "%s: NULL pool", fn);
    return NULL;
  }
  struct mmpool *p = pool_from_handle(h);
  if (!p) bad_handle(fn, h);
  return p;
}

// ---------------------------------------------------------------------------
// Pools

mmpool_t *mmpool_open(const char *name, const char *options) {
  struct pool_spec sp;
  char why[300];
  int r = spec_parse(options, &sp, why, sizeof why);
  if (r) {
    log_fail(EINVAL, "pool '%.48s': %s", name ? name : "(null)", why);
    return fail_null(EINVAL);
  }
  struct mmpool *p;
  r = pool_open(name, &sp, &p);
  return r ? fail_null(-r) : pool_handle(p);
}

mmpool_t *mmpool_get(const char *name) {
  struct mmpool *p = pool_by_name(name);
  if (!p && name && strcmp(name, "default") == 0) p = pool_default();
  if (!p) {
    log_fail(ENOENT, "no open pool named '%.60s'", name ? name : "(null)");
    return fail_null(ENOENT);
  }
  return pool_handle(p);
}

mmpool_t *mmpool_of(const void *ptr) {
  struct mmpool *p = pool_of_addr((uintptr_t)ptr);
  if (!p) {
    log_fail(ENOENT, "%p is in no pool", ptr);
    return fail_null(ENOENT);
  }
  return pool_handle(p);
}

int mmpool_close(mmpool_t *pool) {
  log_take_code();
  struct mmpool *p = handle_arg(pool, "mmpool_close");
  if (!p) return fail_int(-log_take_code());
  for (unsigned i = 0; i < tl_depth; i++)
    if (tl_stack[i] == pool) {
      log_fail(EBUSY, "pool '%s' is pushed as this thread's current pool",
               p->name);
      return fail_int(-EBUSY);
    }
  int r = pool_close(p);
  return r ? fail_int(r) : 0;
}

RARE int mmpool_sync(mmpool_t *pool) {
  log_take_code();
  struct mmpool *p = resolve(pool, "mmpool_sync");
  if (!p) return fail_int(-log_take_code());
  int r = pool_sync(p);
  return r ? fail_int(r) : 0;
}

int mmpool_snapshot(const char *dir) {
  log_take_code();
  int r = snapshot_take(dir);
  return r ? fail_int(r) : 0;
}

RARE int mmpool_restore(const char *dir, const char *options) {
  log_take_code();
  static struct snap_manifest m;  // 21 KiB: not on the stack
  static char files[MMPOOL_MAX_POOLS][SNAP_FILE_MAX];
  static char words[2 * SPEC_PATH_MAX];
  static struct pool_spec sp;
  static struct pool_deltas deltas;
  static char names[SNAP_CHAIN_MAX][SNAP_FILE_MAX];
  static int busy;                // one restore at a time (the statics)
  if (__atomic_exchange_n(&busy, 1, __ATOMIC_ACQUIRE))
    return fail_int(log_fail(EBUSY, "mmpool_restore: another restore is "
                             "running"));
  char why[256];
  for (unsigned i = 0; i < MMPOOL_MAX_POOLS; i++) files[i][0] = 0;
  int r = snapshot_read(dir, &m);
  if (!r && spec_parse(options, &sp, why, sizeof why))
    r = log_fail(EINVAL, "mmpool_restore: %s", why);
  // relocate=yes: pools whose ranges are taken here are moved, with every
  // pointer into them, in copies (snapshot_relocated); images with deltas
  // have them applied at attach (or in a copy, snapshot_relocated). The
  // snapshot stays.
  int moved = 0;
  uint64_t changed = 0;
  if (!r) {
    moved = snapshot_relocated(dir, &m, sp.relocate,
                               sp.trust == SPEC_TRUST_ANY, files, &changed);
    if (moved < 0) r = moved;
  }
  struct mmpool *opened[MMPOOL_MAX_POOLS];
  uint32_t n = 0;
  for (uint32_t i = 0; !r && i < m.npools; i++) {
    const struct snap_entry *e = &m.pool[i];
    if (pool_by_name(e->name)) {
      r = log_fail(EEXIST, "mmpool_restore: a pool named '%s' is open "
                   "already", e->name);
      break;
    }
    fmt_format(words, sizeof words, "file=%s/%s mode=private %s", dir,
               files[i][0] ? files[i] : e->file, options ? options : "");
    if (spec_parse(words, &sp, why, sizeof why)) {
      r = log_fail(EINVAL, "mmpool_restore: %s", why);
      break;
    }
    // An image with deltas not copied: they are applied at attach.
    if (!files[i][0] && m.chain[i].n) {
      snapshot_deltas(dir, &m, i, &deltas, names);
      sp.deltas = &deltas;
    }
    struct mmpool *p = NULL;
    r = pool_open(e->name, &sp, &p);
    if (r) break;
    opened[n++] = p;
    r = snapshot_entry_check(e, p, moved > 0);
  }
  snapshot_relocated_drop(dir, MMPOOL_MAX_POOLS, files);  // "" when none
  if (r)
    while (n) pool_close(opened[--n]);
  else if (moved > 0)
    log_print(LOG_INFO, "mmpool_restore: %s: %d pools moved (their ranges "
              "were taken), %llu words changed", dir, moved,
              (unsigned long long)changed);
  __atomic_store_n(&busy, 0, __ATOMIC_RELEASE);
  return r ? fail_int(r) : (int)n;
}

// ---------------------------------------------------------------------------
// Allocation

// Every failing path below has left its reason with log_fail; its code is
// the errno (ENOMEM: full; EBADF: a stale handle; EBUSY: frozen in a fork
// child). Slow paths call log_take_code() first to drop a stale code.
static __attribute__((noinline)) void *malloc_slow(mmpool_t *h, size_t n) {
  log_take_code();
  struct mmpool *p = resolve(h, "mmpool_malloc");
  if (!p) return fail_taken();
  int dirty;
  void *r = heap_alloc(p, n, &dirty);
  return r ? r : fail_taken();
}

void *mmpool_malloc(mmpool_t *pool, size_t size) {
  // The fast path keeps no frame: a NULL pool, a stale handle, a bigger
  // size or an empty slab is a tail call. The handle holds the pool's id;
  // the calling thread's heap in that pool records the handle of the open
  // it was made for (0 once its pool is closed), so one compare with what
  // heap_try_direct_handle loads anyway checks the handle. NULL needs no
  // test: id 0's heap is the empty heap (handle 0), which has no free block.
  uintptr_t h = (uintptr_t)pool;
  unsigned id = (unsigned)(h & POOL_HANDLE_ID_MASK);
  if (likely(size <= SC_DIRECT_MAX)) {
    void *b = heap_try_direct_handle(id, h, size);
    if (likely(b != NULL)) return b;
  }
  return malloc_slow(pool, size);
}

// A calloc'd block whose pages the kernel has not given yet (fresh or
// purged: they read as zeros, so no memset): up to CALLOC_POPULATE_MAX
// bytes of an anonymous pool, made present and writable now, in one call.
// A program that reads such memory before it writes it (a hash table's
// buckets: read the chain, then store the node) otherwise maps the zero
// page at the read and takes a second fault at the write, which replaces
// that page and, with other threads running, makes every other CPU flush
// its TLB (an interrupt each): wl-hashtab 2 300 spent 15 % of its samples
// there, 0.13-0.14 s against mimalloc's 0.10; populated, 0.10
// (docs/performance.md, "calloc's fresh pages"). Larger blocks stay lazy,
// as sparse tables rely on; a file pool's fresh pages are holes of its
// file, which writing would fill.
#define CALLOC_POPULATE_MAX ((size_t)4 << 20)
static void calloc_fresh(struct mmpool *p, void *r, size_t total) {
  if (p->is_file || total > CALLOC_POPULATE_MAX) return;
  uintptr_t a = (uintptr_t)r & ~(uintptr_t)4095;
  (void)os_populate_write(a, (uintptr_t)r + total - a);  // advice only
}

void *mmpool_calloc(mmpool_t *pool, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    log_fail(ENOMEM, "calloc(%zu, %zu) overflows", n, size);
    return fail_null(ENOMEM);
  }
  log_take_code();
  struct mmpool *p = resolve(pool, "mmpool_calloc");
  if (!p) return fail_taken();
  int dirty;
  void *r = heap_alloc(p, total, &dirty);
  if (!r) return fail_taken();
  if (dirty) memset(r, 0, total);
  else calloc_fresh(p, r, total);
  return r;
}

void *mmpool_memalign(mmpool_t *pool, size_t align, size_t size) {
  if (align == 0 || (align & (align - 1))) {
    log_fail(EINVAL, "alignment %zu is not a power of two", align);
    return fail_null(EINVAL);
  }
  log_take_code();
  struct mmpool *p = resolve(pool, "mmpool_memalign");
  if (!p) return fail_taken();
  void *r;
  int dirty;
  if (align <= 16) {
    r = heap_alloc(p, size, &dirty);
  } else if (align > p->capacity / 2) {
    log_fail(EINVAL, "alignment %zu is more than half the capacity of pool "
             "'%s'", align, p->name);
    return fail_null(EINVAL);
  } else {
    unsigned c = sc_of_aligned(size, align);
    if (c < SC_COUNT)
      r = heap_alloc_class(p, c, size);
    else  // a page run, whatever the size, aligned by the page allocator
      r = heap_alloc_large(p, size, align, &dirty);
  }
  return r ? r : fail_taken();
}

// errno: the fast path touches no errno; heap_free_slow restores it.
void mmpool_free(void *ptr) { heap_free(ptr); }

size_t mmpool_usable_size(const void *ptr) {
  uintptr_t a = (uintptr_t)ptr;
  struct mmpool *p = pool_of_addr(a);
  const char *why;
  struct pdesc *d = p ? heap_block(p, a, &why) : NULL;
  return d ? heap_usable(p, d, a) : 0;
}

void *mmpool_realloc(mmpool_t *pool, void *ptr, size_t size) {
  if (!ptr) return mmpool_malloc(pool, size);
  struct mmpool *target = NULL;
  if (pool && !(target = pool_from_handle(pool))) {
    bad_handle("mmpool_realloc", pool);
    return fail_null(EBADF);
  }
  if (size == 0) {
    mmpool_free(ptr);
    return NULL;
  }
  if (!pool) {
    // A small block of this thread: in place, or moved within its pool by
    // the fast paths (heap.h). Anything else, or a full pool, below.
    size_t old;
    int fast = heap_try_resize(ptr, size, &old);
    if (likely(fast > 0)) return ptr;
    if (fast == 0) {
      int dirty;
      void *r = heap_alloc(heap_pool_at(ptr), size, &dirty);
      if (likely(r != NULL)) {
        memcpy(r, ptr, old < size ? old : size);
        heap_free_as(ptr, "realloc");
        return r;
      }
    }
  }
  uintptr_t a = (uintptr_t)ptr;
  struct mmpool *q = pool_of_addr(a);
  const char *why = "not a block of any pool";
  struct pdesc *d = q ? heap_block(q, a, &why) : NULL;
  if (!d) {
    // A pointer of no pool is another allocator's (refused); inside a pool
    // it is a misuse (freed block, interior pointer): like free, abort.
    // A block in a span of the file found damaged (lazy attach): its size
    // is unknown and its bytes untrusted; it stays where it is (EIO).
    if (why == PAGE_DAMAGED) {
      log_fail(EIO, "realloc(%p): %s", ptr, why);
      return fail_null(EIO);
    }
    if (q && !q->frozen) heap_misuse(q, a, "realloc", why);
    log_fail(EINVAL, "realloc(%p): %s", ptr, why);
    return fail_null(EINVAL);
  }
  // A frozen pool (its file let go at exit or exec) changes no byte: the
  // block moves, to the default pool unless a pool was named.
  if (!target) target = q->frozen ? pool_default() : q;
  if (!target) return fail_null(ENOMEM);
  if (target == q && !q->frozen && heap_resize(q, d, a, size) == 0)
    return ptr;
  size_t old = heap_usable(q, d, a);
  void *r = mmpool_malloc(pool_handle(target), size);
  if (!r) return NULL;
  memcpy(r, ptr, old < size ? old : size);
  mmpool_free(ptr);
  return r;
}

// ---------------------------------------------------------------------------
// Roots

int mmpool_set_root(mmpool_t *pool, unsigned key, void *ptr) {
  log_take_code();
  struct mmpool *p = resolve(pool, "mmpool_set_root");
  if (!p) return fail_int(-log_take_code());
  if (key >= MMPOOL_ROOTS) {
    log_fail(EINVAL, "mmpool_set_root: key out of range");
    return fail_int(-EINVAL);
  }
  uintptr_t a = (uintptr_t)ptr;
  // A root leads into a block handed out (any byte of it), so that the
  // pool's next user can follow it: an address in the header, in free or
  // never committed pages, or beyond the pool is refused. The attach checks
  // again (committed data) what the file says.
  engine_lock(&p->lock);
  if (ptr && !page_block_at(p, a)) {
    engine_unlock(&p->lock);
    log_fail(EINVAL, "mmpool_set_root: %p is not inside a block of pool "
             "'%s'", ptr, p->name);
    return fail_int(-EINVAL);
  }
  p->hdr->roots[key] = a;
  pool_seal(p);
  engine_unlock(&p->lock);
  return 0;
}

void *mmpool_get_root(mmpool_t *pool, unsigned key) {
  log_take_code();
  struct mmpool *p = resolve(pool, "mmpool_get_root");
  if (!p) return fail_taken();
  if (key >= MMPOOL_ROOTS) {
    log_fail(EINVAL, "mmpool_get_root: key out of range");
    return fail_null(EINVAL);
  }
  return (void *)__atomic_load_n(&p->hdr->roots[key], __ATOMIC_RELAXED);
}

// ---------------------------------------------------------------------------
// Current pool

mmpool_t *mmpool_push(mmpool_t *pool) {
  log_take_code();
  if (!handle_arg(pool, "mmpool_push")) return fail_taken();
  if (tl_depth == MMPOOL_PUSH_MAX) {
    log_fail(EOVERFLOW, "mmpool_push: more than %d pushes", MMPOOL_PUSH_MAX);
    return fail_null(EOVERFLOW);
  }
  tl_stack[tl_depth++] = pool;
  return pool;
}

mmpool_t *mmpool_pop(void) {
  if (tl_depth) tl_depth--;
  return tl_depth ? tl_stack[tl_depth - 1] : NULL;
}

mmpool_t *mmpool_current(void) {
  if (tl_depth) return tl_stack[tl_depth - 1];
  struct mmpool *d = pool_default();
  return d ? pool_handle(d) : NULL;
}

// ---------------------------------------------------------------------------
// Facts, statistics, checks

// A pool of the facts functions; NULL (errno EINVAL for NULL, EBADF for a
// stale handle) when there is none.
static struct mmpool *fact_pool(const mmpool_t *h, const char *fn) {
  struct mmpool *p = handle_arg(h, fn);
  if (!p) errno = log_take_code();
  return p;
}

const char *mmpool_name(const mmpool_t *pool) {
  struct mmpool *p = fact_pool(pool, "mmpool_name");
  return p ? p->name : NULL;
}
void *mmpool_base(const mmpool_t *pool) {
  struct mmpool *p = fact_pool(pool, "mmpool_base");
  return p ? (void *)p->base : NULL;
}
size_t mmpool_capacity(const mmpool_t *pool) {
  struct mmpool *p = fact_pool(pool, "mmpool_capacity");
  return p ? p->capacity : 0;
}

RARE int mmpool_stats(mmpool_t *pool, mmpool_stats_t *out) {
  log_take_code();
  struct mmpool *p = resolve(pool, "mmpool_stats");
  if (!p) return fail_int(-log_take_code());
  if (!out) {
    log_fail(EINVAL, "mmpool_stats: NULL output");
    return fail_int(-EINVAL);
  }
  heap_flush_all();  // every thread's frees count, batched or not
  engine_lock(&p->lock);
  page_stats(p, out);
  engine_unlock(&p->lock);
  return 0;
}

RARE int mmpool_check(mmpool_t *pool) {
  log_take_code();
  struct mmpool *p = resolve(pool, "mmpool_check");
  if (!p) return fail_int(-log_take_code());
  char why[256];
  engine_lock(&p->lock);
  int r = page_check(p, why, sizeof why);
  engine_unlock(&p->lock);
  if (r) {
    log_fail(EUCLEAN, "pool '%s': %s", p->name, why);
    return fail_int(r);
  }
  return 0;
}

RARE int mmpool_walk(mmpool_t *pool, int (*fn)(void *, size_t, void *),
                     void *arg) {
  log_take_code();
  struct mmpool *p = resolve(pool, "mmpool_walk");
  if (!p) return fail_int(-log_take_code());
  if (!fn) {
    log_fail(EINVAL, "mmpool_walk: NULL callback");
    return fail_int(-EINVAL);
  }
  // The callback may allocate or free: no lock is held while it runs, so
  // the caller must keep other threads out (documented). Blocks they freed
  // and still hold in batches are pushed first: a walk sees them free.
  heap_flush_all();
  return page_walk(p, fn, arg);
}

const char *mmpool_last_error(void) { return log_last_error(); }
