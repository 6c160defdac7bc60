// api.c: the public control API (include/mmpool.h) over the engine.
//
// Each entry point checks its arguments, forwards to pool.c or heap.c and
// turns internal negative-errno results into the API's convention: NULL or
// -1, errno set, and the message left by log_fail for mmpool_last_error.
#include <errno.h>
#include <string.h>

#include "heap.h"
#include "lock.h"
#include "log.h"
#include "mmpool.h"
#include "page.h"
#include "pool.h"

#define MMPOOL_PUSH_MAX 16

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

static int pool_ok(const mmpool_t *p) {
  return p && p >= &pool_table[1] && p <= &pool_table[MMPOOL_MAX_POOLS] &&
         p->state == POOL_OPEN;
}

// NULL means the thread's current pool, else the default pool.
static inline mmpool_t *resolve(mmpool_t *p) {
  if (likely(p != NULL)) return p;
  return tl_depth ? tl_stack[tl_depth - 1] : pool_default();
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
  return r ? fail_null(-r) : p;
}

mmpool_t *mmpool_get(const char *name) {
  struct mmpool *p = pool_by_name(name);
  if (!p && name && strcmp(name, "default") == 0) p = pool_default();
  if (!p) {
    log_fail(ENOENT, "no open pool named '%.60s'", name ? name : "(null)");
    return fail_null(ENOENT);
  }
  return p;
}

mmpool_t *mmpool_of(const void *ptr) {
  struct mmpool *p = pool_of_addr((uintptr_t)ptr);
  if (!p) {
    log_fail(ENOENT, "%p is in no pool", ptr);
    return fail_null(ENOENT);
  }
  return p;
}

int mmpool_close(mmpool_t *pool) {
  if (!pool_ok(pool)) {
    log_fail(EINVAL, "mmpool_close: not an open pool");
    return fail_int(-EINVAL);
  }
  for (unsigned i = 0; i < tl_depth; i++)
    if (tl_stack[i] == pool) {
      log_fail(EBUSY, "pool '%s' is pushed as this thread's current pool",
               pool->name);
      return fail_int(-EBUSY);
    }
  int r = pool_close(pool);
  return r ? fail_int(r) : 0;
}

int mmpool_sync(mmpool_t *pool) {
  pool = resolve(pool);
  if (!pool_ok(pool)) {
    log_fail(EINVAL, "mmpool_sync: not an open pool");
    return fail_int(-EINVAL);
  }
  int r = pool_sync(pool);
  return r ? fail_int(r) : 0;
}

// ---------------------------------------------------------------------------
// Allocation

// Every failing path below has left its reason with log_fail; its code is
// the errno (ENOMEM: full; EINVAL: closed; EBUSY: frozen in a fork child).
// Slow paths call log_take_code() first to drop a stale code.
static void *alloc_fail(void) {
  int e = log_take_code();
  return fail_null(e ? e : ENOMEM);
}

static __attribute__((noinline)) void *malloc_slow(mmpool_t *p, size_t n) {
  log_take_code();
  p = resolve(p);
  if (!p) return fail_null(ENOMEM);
  if (!pool_ok(p)) {
    log_fail(EINVAL, "mmpool_malloc: not an open pool");
    return fail_null(EINVAL);
  }
  int dirty;
  void *r = heap_alloc(p, n, &dirty);
  return r ? r : alloc_fail();
}

void *mmpool_malloc(mmpool_t *p, size_t size) {
  // The fast path keeps no frame: a NULL pool, a bigger size or an empty
  // slab is a tail call.
  if (likely(p != NULL && size <= SC_DIRECT_MAX)) {
    void *b = heap_try_direct(p->id, size);
    if (likely(b != NULL)) return b;
  }
  return malloc_slow(p, size);
}

void *mmpool_calloc(mmpool_t *pool, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    log_fail(ENOMEM, "calloc(%zu, %zu) overflows", n, size);
    return fail_null(ENOMEM);
  }
  log_take_code();
  mmpool_t *p = resolve(pool);
  if (!p) return fail_null(ENOMEM);
  if (!pool_ok(p)) {
    log_fail(EINVAL, "mmpool_calloc: not an open pool");
    return fail_null(EINVAL);
  }
  int dirty;
  void *r = heap_alloc(p, total, &dirty);
  if (!r) return alloc_fail();
  if (dirty) memset(r, 0, total);
  return r;
}

void *mmpool_memalign(mmpool_t *pool, size_t align, size_t size) {
  if (align == 0 || (align & (align - 1))) {
    log_fail(EINVAL, "alignment %zu is not a power of two", align);
    return fail_null(EINVAL);
  }
  log_take_code();
  mmpool_t *p = resolve(pool);
  if (!p) return fail_null(ENOMEM);
  if (!pool_ok(p)) {
    log_fail(EINVAL, "mmpool_memalign: not an open pool");
    return fail_null(EINVAL);
  }
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
  return r ? r : alloc_fail();
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
  if (size == 0) {
    mmpool_free(ptr);
    return NULL;
  }
  uintptr_t a = (uintptr_t)ptr;
  struct mmpool *q = pool_of_addr(a);
  const char *why = "not a block of any pool";
  struct pdesc *d = q ? heap_block(q, a, &why) : NULL;
  if (!d) {
    // A pointer of no pool is another allocator's (refused); inside a pool
    // it is a misuse (freed block, interior pointer): like free, abort.
    if (q && !q->fork_frozen) heap_misuse(q, a, "realloc", why);
    log_fail(EINVAL, "realloc(%p): %s", ptr, why);
    return fail_null(EINVAL);
  }
  mmpool_t *target = pool ? pool : q;
  if (target == q && heap_resize(q, d, a, size) == 0) return ptr;
  size_t old = heap_usable(q, d, a);
  void *r = mmpool_malloc(target, size);
  if (!r) return NULL;
  memcpy(r, ptr, old < size ? old : size);
  mmpool_free(ptr);
  return r;
}

// ---------------------------------------------------------------------------
// Roots

int mmpool_set_root(mmpool_t *pool, unsigned key, void *ptr) {
  pool = resolve(pool);
  if (!pool_ok(pool) || key >= MMPOOL_ROOTS) {
    log_fail(EINVAL, "mmpool_set_root: %s", pool_ok(pool)
                                               ? "key out of range"
                                               : "not an open pool");
    return fail_int(-EINVAL);
  }
  uintptr_t a = (uintptr_t)ptr;
  // A root leads into a block handed out (any byte of it), so that the
  // pool's next user can follow it: an address in the header, in free or
  // never committed pages, or beyond the pool is refused. The attach checks
  // again (committed data) what the file says.
  engine_lock(&pool->lock);
  if (ptr && !page_block_at(pool, a)) {
    engine_unlock(&pool->lock);
    log_fail(EINVAL, "mmpool_set_root: %p is not inside a block of pool "
             "'%s'", ptr, pool->name);
    return fail_int(-EINVAL);
  }
  pool->hdr->roots[key] = a;
  pool_seal(pool);
  engine_unlock(&pool->lock);
  return 0;
}

void *mmpool_get_root(mmpool_t *pool, unsigned key) {
  pool = resolve(pool);
  if (!pool_ok(pool) || key >= MMPOOL_ROOTS) {
    log_fail(EINVAL, "mmpool_get_root: %s", pool_ok(pool)
                                               ? "key out of range"
                                               : "not an open pool");
    return fail_null(EINVAL);
  }
  return (void *)__atomic_load_n(&pool->hdr->roots[key], __ATOMIC_RELAXED);
}

// ---------------------------------------------------------------------------
// Current pool

mmpool_t *mmpool_push(mmpool_t *pool) {
  if (!pool_ok(pool)) {
    log_fail(EINVAL, "mmpool_push: not an open pool");
    return fail_null(EINVAL);
  }
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

mmpool_t *mmpool_current(void) { return resolve(NULL); }

// ---------------------------------------------------------------------------
// Facts, statistics, checks

const char *mmpool_name(const mmpool_t *pool) {
  return pool_ok(pool) ? pool->name : NULL;
}
void *mmpool_base(const mmpool_t *pool) {
  return pool_ok(pool) ? (void *)pool->base : NULL;
}
size_t mmpool_capacity(const mmpool_t *pool) {
  return pool_ok(pool) ? pool->capacity : 0;
}

int mmpool_stats(mmpool_t *pool, mmpool_stats_t *out) {
  pool = resolve(pool);
  if (!pool_ok(pool) || !out) {
    log_fail(EINVAL, "mmpool_stats: %s", out ? "not an open pool"
                                             : "NULL output");
    return fail_int(-EINVAL);
  }
  engine_lock(&pool->lock);
  page_stats(pool, out);
  engine_unlock(&pool->lock);
  return 0;
}

int mmpool_check(mmpool_t *pool) {
  pool = resolve(pool);
  if (!pool_ok(pool)) {
    log_fail(EINVAL, "mmpool_check: not an open pool");
    return fail_int(-EINVAL);
  }
  char why[256];
  engine_lock(&pool->lock);
  int r = page_check(pool, why, sizeof why);
  engine_unlock(&pool->lock);
  if (r) {
    log_fail(EUCLEAN, "pool '%s': %s", pool->name, why);
    return fail_int(r);
  }
  return 0;
}

int mmpool_walk(mmpool_t *pool, int (*fn)(void *, size_t, void *),
                void *arg) {
  pool = resolve(pool);
  if (!pool_ok(pool) || !fn) {
    log_fail(EINVAL, "mmpool_walk: %s", fn ? "not an open pool"
                                           : "NULL callback");
    return fail_int(-EINVAL);
  }
  // The callback may allocate or free: no lock is held while it runs, so
  // the caller must keep other threads out (documented).
  return page_walk(pool, fn, arg);
}

const char *mmpool_last_error(void) { return log_last_error(); }
