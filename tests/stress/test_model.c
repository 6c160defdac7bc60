// test_model.c: a randomized model test of the allocation API.
//
// A fixed-seed generator drives millions of malloc/calloc/realloc/memalign/
// free/usable_size calls over four explicit pools (three anonymous of
// different capacities, one file-backed) and the default pool. A shadow model
// keeps every live block (address, requested size, pool, fill seed); every
// byte of every block carries a pattern derived from its seed, verified on
// free, on realloc and in periodic full sweeps. Every result is checked
// against the contract of include/mmpool.h: non-NULL, 16-byte (and requested)
// alignment, usable size exactly the requested size, owned by the expected
// pool; periodically no two live blocks overlap, mmpool_check passes and the
// statistics count exactly the model's blocks.
//
// MMPOOL_TEST_SEED overrides the seed (printed at start), MMPOOL_TEST_OPS the
// number of operations (default 3,000,000; 600,000 in sanitizer builds).
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "mmpool.h"
#include "pattern.h"

#ifdef MMPOOL_SANITIZED
#define DEFAULT_OPS 600000ul
#else
#define DEFAULT_OPS 3000000ul
#endif

#define SWEEP_EVERY 50000ul
#define TARGET_LIVE 6000u // the live count the free rate steers towards
#define MAX_LIVE 12000u

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

// ---------------------------------------------------------------------------
// Generator (pattern.h) with one global state.

static uint64_t rng_state;

static uint64_t rnd(void) { return rnd_next(&rng_state); }

// Uniform in [lo, hi].
static size_t rnd_range(size_t lo, size_t hi) {
  return lo + (size_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static uint64_t env_u64(const char *name, uint64_t dflt) {
  const char *v = getenv(name);
  if (v == NULL || *v == '\0') return dflt;
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 0);
  if (errno != 0 || *end != '\0') {
    fprintf(stderr, "bad %s=%s, using %" PRIu64 "\n", name, v, dflt);
    return dflt;
  }
  return x;
}

static size_t first_nonzero(const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t j = 0; j < n; j++)
    if (b[j] != 0) return j;
  return n;
}

// ---------------------------------------------------------------------------
// Pools and the model

#define NPOOLS 5 // four opened here, the last is the default pool (NULL)

struct pool_info {
  const char *name;
  mmpool_t *pool;   // the handle, also for the default pool
  size_t max_size;  // largest request made to this pool
  size_t max_align; // largest alignment asked for
  size_t budget;    // bytes (charged, see charge()) live at most
  size_t charged;   // bytes charged now
  size_t live;      // live blocks
  size_t bytes;     // sum of requested sizes of live blocks
};

struct block {
  uint8_t *p;
  size_t size;
  uint64_t seed;
  size_t charged; // what add_block charged the pool
  unsigned pool;
};

static struct pool_info pools[NPOOLS];
// The calling thread's current pool (what NULL means): the default pool, or
// the top of the pushes the test makes (up to 3 deep).
static unsigned push_stack[4];
static unsigned push_depth;

static unsigned current_pi(void) {
  return push_depth ? push_stack[push_depth - 1] : NPOOLS - 1;
}
static struct block *blocks;
static size_t nblocks;
static unsigned long op_no;
static uint64_t seed0;
static char tmpdir[256];
static char poolpath[300];

// A generous estimate of what a block costs its pool, rounding and
// alignment slack included, so the budgets keep every pool far from full.
static size_t charge(size_t size, size_t align) {
  size_t c = size < 64 ? 64 : size;
  if (size > 8 * KiB) c = (size + 64 * KiB - 1) & ~(64 * KiB - 1);
  return c + (align > 16 ? align : 0);
}

#define FAIL(fmt, ...)                                                         \
  fail_msg("op %lu (seed %" PRIu64 "): " fmt, op_no, seed0, ##__VA_ARGS__)

#define ERR() mmpool_last_error()

// The skewed size distribution: mostly 0..256, some up to 4K, some up to
// 200K, rarely up to 4 MiB; clamped to the pool's largest request.
static size_t rnd_size(unsigned pi) {
  unsigned r = (unsigned)(rnd() % 1000);
  size_t s;
  if (r < 800)
    s = rnd_range(0, 256);
  else if (r < 960)
    s = rnd_range(257, 4 * KiB);
  else if (r < 998)
    s = rnd_range(4 * KiB + 1, 200 * KiB);
  else
    s = rnd_range(200 * KiB + 1, 4 * MiB);
  if (s > pools[pi].max_size) s = rnd_range(0, pools[pi].max_size);
  return s;
}

static size_t rnd_align(unsigned pi) {
  size_t a = (size_t)16 << (rnd() % 17); // 16 .. 1 MiB
  while (a > pools[pi].max_align)
    a >>= 1;
  return a;
}

static unsigned rnd_pool(void) { return (unsigned)(rnd() % NPOOLS); }

// What to pass for pool pi: its handle, or NULL when it is current (half
// the time).
static mmpool_t *pool_arg(unsigned pi) {
  if (pi == current_pi() && (rnd() & 1)) return NULL;
  return pools[pi].pool;
}

static unsigned long skipped; // allocations left out to keep pools roomy

static int fits(unsigned pi, size_t size, size_t align) {
  if (pools[pi].charged + charge(size, align) <= pools[pi].budget) return 1;
  skipped++;
  return 0;
}

// Checks a fresh block of `size` bytes in pool pi at the requested alignment.
static void check_new(const char *what, void *p, unsigned pi, size_t size,
                      size_t align) {
  if (p == NULL)
    FAIL("%s(%s, %zu, align %zu) returned NULL: %s", what, pools[pi].name, size,
         align, ERR());
  if (((uintptr_t)p & 15) != 0)
    FAIL("%s(%s, %zu) = %p: not 16-byte aligned", what, pools[pi].name, size,
         p);
  if (align > 16 && ((uintptr_t)p & (align - 1)) != 0)
    FAIL("%s(%s, %zu) = %p: not aligned to %zu", what, pools[pi].name, size, p,
         align);
  size_t us = mmpool_usable_size(p);
  if (us != size)
    FAIL("%s(%s, %zu) = %p: usable size %zu, expected exactly %zu", what,
         pools[pi].name, size, p, us, size);
  mmpool_t *owner = mmpool_of(p);
  if (owner != pools[pi].pool)
    FAIL("%s(%s, %zu) = %p: mmpool_of gives %p (%s), expected %p", what,
         pools[pi].name, size, p, (void *)owner,
         owner ? mmpool_name(owner) : "none", (void *)pools[pi].pool);
}

static void add_block(void *p, size_t size, unsigned pi, uint64_t seed,
                      size_t align) {
  assert_true(nblocks < MAX_LIVE + 16);
  size_t c = charge(size, align);
  blocks[nblocks++] = (struct block){p, size, seed, c, pi};
  pools[pi].charged += c;
  pools[pi].live++;
  pools[pi].bytes += size;
}

static void drop_block(size_t i) {
  struct block *b = &blocks[i];
  unsigned pi = b->pool;
  pools[pi].charged -= b->charged;
  pools[pi].live--;
  pools[pi].bytes -= b->size;
  blocks[i] = blocks[--nblocks];
}

static void verify_block(const struct block *b, const char *when) {
  size_t bad = check_range(b->p, b->seed, b->size);
  if (bad != b->size)
    FAIL("%s: block %p (%zu bytes, pool %s): byte %zu is %#x, expected %#x",
         when, (void *)b->p, b->size, pools[b->pool].name, bad, b->p[bad],
         pat_byte(b->seed, bad));
}

// ---------------------------------------------------------------------------
// Operations

static void op_malloc(void) {
  unsigned pi = rnd_pool();
  size_t size = rnd_size(pi);
  if (!fits(pi, size, 16)) return;
  void *p = mmpool_malloc(pool_arg(pi), size);
  check_new("mmpool_malloc", p, pi, size, 16);
  uint64_t seed = rnd();
  fill_range(p, seed, 0, size);
  add_block(p, size, pi, seed, 16);
}

static void op_calloc(void) {
  unsigned pi = rnd_pool();
  size_t size = rnd_size(pi);
  if (!fits(pi, size, 16)) return;
  // Split size into n * each where it divides evenly, to vary the arguments.
  size_t n = 1, each = size;
  if (size >= 16 && size % 8 == 0) {
    n = 8;
    each = size / 8;
  } else if ((rnd() & 1) && size > 0) {
    n = size;
    each = 1;
  }
  void *p = mmpool_calloc(pool_arg(pi), n, each);
  check_new("mmpool_calloc", p, pi, size, 16);
  size_t nz = first_nonzero(p, size);
  if (nz != size)
    FAIL("mmpool_calloc(%s, %zu, %zu) = %p: byte %zu is %#x, not zero",
         pools[pi].name, n, each, p, nz, ((uint8_t *)p)[nz]);
  uint64_t seed = rnd();
  fill_range(p, seed, 0, size);
  add_block(p, size, pi, seed, 16);
}

static void op_memalign(void) {
  unsigned pi = rnd_pool();
  size_t align = rnd_align(pi);
  size_t size = rnd_size(pi);
  if (rnd() % 4 == 0 && align <= pools[pi].max_size)
    size = align; // exact multiples of the alignment are common in practice
  if (!fits(pi, size, align)) return;
  void *p = mmpool_memalign(pool_arg(pi), align, size);
  check_new("mmpool_memalign", p, pi, size, align);
  uint64_t seed = rnd();
  fill_range(p, seed, 0, size);
  add_block(p, size, pi, seed, align);
}

static void op_free(void) {
  if (nblocks == 0) return;
  size_t i = (size_t)(rnd() % nblocks);
  verify_block(&blocks[i], "before free");
  int e = errno = 4242;
  mmpool_free(blocks[i].p);
  if (errno != e) FAIL("mmpool_free changed errno to %d", errno);
  drop_block(i);
}

static void op_usable_size(void) {
  if (nblocks == 0) return;
  const struct block *b = &blocks[rnd() % nblocks];
  size_t us = mmpool_usable_size(b->p);
  if (us != b->size)
    FAIL("mmpool_usable_size(%p) = %zu, expected %zu (pool %s)", (void *)b->p,
         us, b->size, pools[b->pool].name);
  // NULL and memory outside every pool are no blocks.
  int local = 0;
  if (mmpool_usable_size(NULL) != 0 || mmpool_usable_size(&local) != 0 ||
      mmpool_usable_size(blocks) != 0)
    FAIL("mmpool_usable_size of NULL, stack or libc memory is not 0");
  if (mmpool_of(&local) != NULL || mmpool_of(blocks) != NULL)
    FAIL("mmpool_of of stack or libc memory is not NULL");
}

// A new size for a block of `old` bytes: grow, shrink, nudge or redraw.
static size_t resize(size_t old, unsigned pi) {
  size_t s;
  switch (rnd() % 5) {
  case 0:
    s = old * 2 + rnd_range(1, 64);
    break;
  case 1:
    s = old / 2;
    break;
  case 2:
    s = old + rnd_range(0, 32);
    break;
  case 3:
    s = old > 32 ? old - rnd_range(0, 32) : old;
    break;
  default:
    s = rnd_size(pi);
  }
  if (s > pools[pi].max_size) s = rnd_size(pi);
  return s;
}

static void op_realloc(void) {
  unsigned r = (unsigned)(rnd() % 100);
  if (nblocks == 0 || r < 2) {
    // realloc(pool, NULL, n) is malloc(pool, n).
    unsigned pi = rnd_pool();
    size_t size = rnd_size(pi);
    if (!fits(pi, size, 16)) return;
    void *p = mmpool_realloc(pool_arg(pi), NULL, size);
    check_new("mmpool_realloc(NULL ptr)", p, pi, size, 16);
    uint64_t seed = rnd();
    fill_range(p, seed, 0, size);
    add_block(p, size, pi, seed, 16);
    return;
  }
  size_t i = (size_t)(rnd() % nblocks);
  struct block b = blocks[i];
  verify_block(&b, "before realloc");
  if (r < 4) {
    // Size 0 frees the block and returns NULL.
    void *q = mmpool_realloc(NULL, b.p, 0);
    if (q != NULL)
      FAIL("mmpool_realloc(NULL, %p, 0) = %p, expected NULL", (void *)b.p, q);
    drop_block(i);
    return;
  }
  // Target: the same pool (passing NULL, or the pool itself) or another.
  unsigned to = b.pool;
  mmpool_t *arg;
  const char *what;
  unsigned how = (unsigned)(rnd() % 10);
  if (how < 4) {
    arg = NULL; // stays in the owner's pool, even for non-default pools
    what = "mmpool_realloc(NULL pool)";
  } else if (how < 7) {
    arg = pools[to].pool;
    what = "mmpool_realloc(same pool)";
  } else {
    to = rnd_pool();
    arg = pools[to].pool;
    what = to == b.pool ? "mmpool_realloc(same pool)"
                        : "mmpool_realloc(other pool)";
  }
  size_t size = resize(b.size, to);
  if (size == 0) size = 1; // size 0 would free the block, tested above
  if (to == b.pool) {
    if (pools[to].charged - b.charged + charge(size, 16) > pools[to].budget) {
      skipped++;
      return;
    }
  } else if (!fits(to, size, 16)) {
    return;
  }
  void *q = mmpool_realloc(arg, b.p, size);
  check_new(what, q, to, size, 16);
  size_t keep = b.size < size ? b.size : size;
  size_t bad = check_range(q, b.seed, keep);
  if (bad != keep)
    FAIL("%s(%s -> %s, %p, %zu -> %zu) = %p: byte %zu of the preserved "
         "prefix is %#x, expected %#x",
         what, pools[b.pool].name, pools[to].name, (void *)b.p, b.size, size, q,
         bad, ((uint8_t *)q)[bad], pat_byte(b.seed, bad));
  fill_range(q, b.seed, keep, size);
  drop_block(i);
  add_block(q, size, to, b.seed, 16);
}

// ---------------------------------------------------------------------------
// Sweeps

static int by_addr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)((const struct block *)a)->p;
  uintptr_t y = (uintptr_t)((const struct block *)b)->p;
  return x < y ? -1 : x > y;
}

static void check_stats(unsigned pi) {
  mmpool_stats_t st;
  memset(&st, 0xa5, sizeof st);
  if (mmpool_stats(pools[pi].pool, &st) != 0)
    FAIL("mmpool_stats(%s) failed: %s", pools[pi].name, ERR());
  if (st.in_use_blocks != pools[pi].live)
    FAIL("mmpool_stats(%s).in_use_blocks = %zu, the model holds %zu",
         pools[pi].name, st.in_use_blocks, pools[pi].live);
  if (st.in_use < pools[pi].bytes)
    FAIL("mmpool_stats(%s).in_use = %zu < %zu bytes requested by live blocks",
         pools[pi].name, st.in_use, pools[pi].bytes);
  if (st.capacity != mmpool_capacity(pools[pi].pool))
    FAIL("mmpool_stats(%s).capacity = %zu, mmpool_capacity = %zu",
         pools[pi].name, st.capacity, mmpool_capacity(pools[pi].pool));
  if (st.nclasses > MMPOOL_STATS_CLASSES)
    FAIL("mmpool_stats(%s).nclasses = %u", pools[pi].name, st.nclasses);
  // Every live block is either in a size class or a large block.
  size_t in_classes = 0, largest = 0;
  for (unsigned c = 0; c < st.nclasses; c++) {
    in_classes += st.classes[c].blocks_used;
    if (st.classes[c].block_size > largest) largest = st.classes[c].block_size;
  }
  if (in_classes + st.large_blocks != st.in_use_blocks)
    FAIL("mmpool_stats(%s): %zu blocks in classes + %zu large != %zu in use",
         pools[pi].name, in_classes, st.large_blocks, st.in_use_blocks);
  size_t big = 0;
  for (size_t i = 0; i < nblocks; i++)
    if (blocks[i].pool == pi && blocks[i].size > largest) big++;
  if (st.large_blocks < big)
    FAIL("mmpool_stats(%s).large_blocks = %zu, but %zu live blocks exceed "
         "the largest class (%zu bytes)",
         pools[pi].name, st.large_blocks, big, largest);
}

// mmpool_walk must report exactly the model's blocks of the pool, in
// address order, each with its requested size.
struct walk_ctx {
  unsigned pi;
  size_t next; // index into the address-sorted blocks[]
  size_t seen;
};

static int walk_fn(void *block, size_t size, void *arg) {
  struct walk_ctx *w = arg;
  while (w->next < nblocks && blocks[w->next].pool != w->pi)
    w->next++;
  if (w->next == nblocks)
    FAIL("mmpool_walk(%s) reports %p (%zu bytes), a block the model does "
         "not have (or out of address order)",
         pools[w->pi].name, block, size);
  const struct block *b = &blocks[w->next++];
  if (block != b->p || size != b->size)
    FAIL("mmpool_walk(%s) reports %p (%zu bytes) where the model's next "
         "block is %p (%zu bytes)",
         pools[w->pi].name, block, size, (void *)b->p, b->size);
  w->seen++;
  return 0;
}

static void check_walk(unsigned pi) {
  struct walk_ctx w = {pi, 0, 0};
  int r = mmpool_walk(pools[pi].pool, walk_fn, &w);
  if (r != 0) FAIL("mmpool_walk(%s) = %d: %s", pools[pi].name, r, ERR());
  if (w.seen != pools[pi].live)
    FAIL("mmpool_walk(%s) reported %zu blocks, the model holds %zu",
         pools[pi].name, w.seen, pools[pi].live);
}

static void sweep(void) {
  qsort(blocks, nblocks, sizeof *blocks, by_addr);
  for (size_t i = 0; i < nblocks; i++) {
    const struct block *b = &blocks[i];
    verify_block(b, "sweep");
    if (mmpool_of(b->p) != pools[b->pool].pool)
      FAIL("sweep: mmpool_of(%p) is no longer %s", (void *)b->p,
           pools[b->pool].name);
    if (mmpool_usable_size(b->p) != b->size)
      FAIL("sweep: mmpool_usable_size(%p) = %zu, expected %zu", (void *)b->p,
           mmpool_usable_size(b->p), b->size);
    if (i + 1 < nblocks) {
      // A block of size 0 still occupies its address.
      size_t len = b->size ? b->size : 1;
      if ((uintptr_t)b->p + len > (uintptr_t)blocks[i + 1].p)
        FAIL("sweep: block %p (%zu bytes, %s) overlaps block %p (%zu bytes, "
             "%s)",
             (void *)b->p, b->size, pools[b->pool].name,
             (void *)blocks[i + 1].p, blocks[i + 1].size,
             pools[blocks[i + 1].pool].name);
    }
  }
  if (mmpool_current() != pools[current_pi()].pool)
    FAIL("mmpool_current() is not %s", pools[current_pi()].name);
  // NULL means the current pool for the checks too.
  if (mmpool_check(NULL) != 0) FAIL("mmpool_check(NULL) failed: %s", ERR());
  for (unsigned pi = 0; pi < NPOOLS; pi++) {
    if (mmpool_check(pools[pi].pool) != 0)
      FAIL("mmpool_check(%s) failed: %s", pools[pi].name, ERR());
    check_stats(pi);
    check_walk(pi); // blocks[] is sorted by address here
  }
}

// ---------------------------------------------------------------------------
// Set-up and the test

static void open_pools(void) {
  const char *t = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/mmpool-model-XXXXXX",
           t && *t ? t : "/tmp");
  assert_non_null(mkdtemp(tmpdir));
  snprintf(poolpath, sizeof poolpath, "%s/model.pool", tmpdir);
  char fopts[400];
  snprintf(fopts, sizeof fopts, "file=%s size=256M", poolpath);

  struct {
    const char *name, *opts;
    size_t max_size, max_align, budget;
  } spec[NPOOLS] = {
      {"model.small", "size=64M", 1 * MiB, 256 * KiB, 12 * MiB},
      {"model-1g", "anon size=1G", 4 * MiB, 1 * MiB, 160 * MiB},
      {"model_16g", "size=16G base=auto", 4 * MiB, 1 * MiB, 160 * MiB},
      {"model.file", fopts, 4 * MiB, 1 * MiB, 48 * MiB},
      {"default", NULL, 4 * MiB, 1 * MiB, 160 * MiB},
  };
  for (unsigned i = 0; i < NPOOLS; i++) {
    pools[i] = (struct pool_info){.name = spec[i].name,
                                  .max_size = spec[i].max_size,
                                  .max_align = spec[i].max_align,
                                  .budget = spec[i].budget};
    if (i == NPOOLS - 1) break;
    pools[i].pool = mmpool_open(spec[i].name, spec[i].opts);
    if (pools[i].pool == NULL)
      fail_msg("mmpool_open(%s, %s): %s", spec[i].name, spec[i].opts, ERR());
    assert_string_equal(mmpool_name(pools[i].pool), spec[i].name);
    assert_ptr_equal(mmpool_get(spec[i].name), pools[i].pool);
  }
  assert_int_equal(mmpool_capacity(pools[0].pool), 64 * MiB);
  assert_int_equal(mmpool_capacity(pools[1].pool), 1024 * MiB);
  assert_int_equal(mmpool_capacity(pools[2].pool), (size_t)16 << 30);
  assert_int_equal(mmpool_capacity(pools[3].pool), 256 * MiB);

  // The default pool: what a NULL argument means when nothing is pushed.
  void *p = mmpool_malloc(NULL, 1);
  assert_non_null(p);
  mmpool_t *def = mmpool_of(p);
  assert_non_null(def);
  assert_ptr_equal(mmpool_current(), def);
  assert_ptr_equal(mmpool_get("default"), def);
  assert_string_equal(mmpool_name(def), "default");
  for (unsigned i = 0; i < NPOOLS - 1; i++)
    assert_ptr_not_equal(def, pools[i].pool);
  mmpool_free(p);
  pools[NPOOLS - 1].pool = def;
}

static void close_pools(void) {
  for (unsigned i = 0; i < NPOOLS - 1; i++) {
    if (mmpool_close(pools[i].pool) != 0)
      fail_msg("mmpool_close(%s): %s", pools[i].name, ERR());
    assert_null(mmpool_get(pools[i].name));
  }
  // The default pool stays open.
  errno = 0;
  assert_int_equal(mmpool_close(pools[NPOOLS - 1].pool), -1);
  assert_int_equal(errno, EBUSY);
  assert_int_equal(unlink(poolpath), 0);
  assert_int_equal(rmdir(tmpdir), 0);
  poolpath[0] = tmpdir[0] = 0;
}

static void test_model(void **state) {
  (void)state;
  seed0 = env_u64("MMPOOL_TEST_SEED", 0x6d6d706f6f6c31ull);
  unsigned long ops = (unsigned long)env_u64("MMPOOL_TEST_OPS", DEFAULT_OPS);
  printf("test_model: seed %" PRIu64 " (MMPOOL_TEST_SEED), %lu ops "
         "(MMPOOL_TEST_OPS)\n",
         seed0, ops);
  fflush(stdout);
  rng_state = seed0;
  blocks = calloc(MAX_LIVE + 16, sizeof *blocks);
  assert_non_null(blocks);
  open_pools();

  unsigned long counts[7] = {0};
  for (op_no = 0; op_no < ops; op_no++) {
    // Steer the live count towards TARGET_LIVE: the more blocks, the
    // likelier a free.
    unsigned free_pct = 10 + (unsigned)(50 * nblocks / TARGET_LIVE);
    unsigned r = (unsigned)(rnd() % 100);
    if (nblocks >= MAX_LIVE || r < free_pct) {
      op_free();
      counts[0]++;
      continue;
    }
    r = (unsigned)(rnd() % 100);
    if (r < 45) {
      op_malloc();
      counts[1]++;
    } else if (r < 55) {
      op_calloc();
      counts[2]++;
    } else if (r < 80) {
      op_realloc();
      counts[3]++;
    } else if (r < 92) {
      op_memalign();
      counts[4]++;
    } else {
      op_usable_size();
      counts[5]++;
    }
    if ((op_no + 1) % SWEEP_EVERY == 0) sweep();
    // Now and then, change what NULL means: push a pool, or pop.
    if (rnd() % 20000 == 0) {
      if (push_depth < 3 && (push_depth == 0 || (rnd() & 1))) {
        unsigned pi = (unsigned)(rnd() % NPOOLS);
        if (mmpool_push(pools[pi].pool) != pools[pi].pool)
          FAIL("mmpool_push(%s): %s", pools[pi].name, ERR());
        push_stack[push_depth++] = pi;
      } else {
        push_depth--;
        mmpool_t *now = mmpool_pop();
        mmpool_t *want = push_depth ? pools[current_pi()].pool : NULL;
        if (now != want)
          FAIL("mmpool_pop() = %p, expected %p", (void *)now, (void *)want);
      }
      if (mmpool_current() != pools[current_pi()].pool)
        FAIL("mmpool_current() is not %s after a push/pop",
             pools[current_pi()].name);
    }
  }
  sweep();
  printf("test_model: free %lu malloc %lu calloc %lu realloc %lu memalign %lu "
         "usable_size %lu; %lu left out (pool budgets); %zu live at the "
         "end\n",
         counts[0], counts[1], counts[2], counts[3], counts[4], counts[5],
         skipped, nblocks);

  while (push_depth > 0) {
    push_depth--;
    mmpool_pop();
  }
  assert_ptr_equal(mmpool_current(), pools[NPOOLS - 1].pool);
  while (nblocks > 0) {
    size_t i = nblocks - 1;
    verify_block(&blocks[i], "final free");
    mmpool_free(blocks[i].p);
    drop_block(i);
  }
  for (unsigned pi = 0; pi < NPOOLS; pi++) {
    mmpool_stats_t st;
    assert_int_equal(mmpool_stats(pools[pi].pool, &st), 0);
    if (st.in_use_blocks != 0 || st.in_use != 0)
      fail_msg("%s: after freeing everything, in_use_blocks %zu in_use %zu",
               pools[pi].name, st.in_use_blocks, st.in_use);
    if (st.large_blocks != 0)
      fail_msg("%s: after freeing everything, large_blocks %zu", pools[pi].name,
               st.large_blocks);
    if (mmpool_check(pools[pi].pool) != 0)
      fail_msg("mmpool_check(%s) after freeing everything: %s", pools[pi].name,
               ERR());
    check_walk(pi);
  }
  close_pools();
  free(blocks);
}

// ---------------------------------------------------------------------------
// Deterministic edge cases of the same calls, on a pool of their own

static void expect_fill(void *p, uint64_t seed, size_t n, const char *what) {
  size_t bad = check_range(p, seed, n);
  if (bad != n) fail_msg("%s: byte %zu of %zu changed", what, bad, n);
}

static void test_edges(void **state) {
  (void)state;
  mmpool_t *e = mmpool_open("model.edges", "size=64M");
  if (e == NULL) fail_msg("mmpool_open: %s", ERR());

  // Every power-of-two alignment up to half the capacity, at sizes around
  // it: aligned, and the usable size exactly what was asked.
  for (size_t align = 1; align <= 32 * MiB; align *= 2) {
    size_t sizes[] = {0, 1, 15, 16, 17, align - 1, align, align + 1, 3 * align};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
      size_t n = sizes[k];
      if (n > 16 * MiB) continue;
      errno = 0;
      uint8_t *p = mmpool_memalign(e, align, n);
      if (p == NULL)
        fail_msg("mmpool_memalign(%zu, %zu): NULL (%s)", align, n, ERR());
      size_t want_align = align < 16 ? 16 : align;
      if ((uintptr_t)p % want_align != 0)
        fail_msg("mmpool_memalign(%zu, %zu) = %p: misaligned", align, n,
                 (void *)p);
      if (mmpool_usable_size(p) != n)
        fail_msg("mmpool_memalign(%zu, %zu): usable size %zu", align, n,
                 mmpool_usable_size(p));
      assert_ptr_equal(mmpool_of(p), e);
      fill_range(p, align + n, 0, n);
      expect_fill(p, align + n, n, "memalign block");
      mmpool_free(p);
    }
  }
  // Alignments that are not powers of two.
  static const size_t bad_align[] = {0, 3, 24, 48, 65535, (size_t)-1};
  for (size_t k = 0; k < sizeof bad_align / sizeof *bad_align; k++) {
    errno = 0;
    assert_null(mmpool_memalign(e, bad_align[k], 64));
    assert_int_equal(errno, EINVAL);
  }

  // Size 0 gives distinct blocks of usable size 0.
  void *z1 = mmpool_malloc(e, 0), *z2 = mmpool_malloc(e, 0);
  void *z3 = mmpool_calloc(e, 0, 100), *z4 = mmpool_calloc(e, 100, 0);
  assert_non_null(z1);
  assert_non_null(z2);
  assert_non_null(z3);
  assert_non_null(z4);
  assert_ptr_not_equal(z1, z2);
  assert_ptr_not_equal(z3, z4);
  assert_int_equal(mmpool_usable_size(z1), 0);
  assert_int_equal(mmpool_usable_size(z3), 0);
  assert_int_equal(mmpool_usable_size(z4), 0);
  mmpool_free(z1);
  mmpool_free(z2);
  mmpool_free(z3);
  mmpool_free(z4);

  // free(NULL) is a no-op that keeps errno.
  errno = 1234;
  mmpool_free(NULL);
  assert_int_equal(errno, 1234);

  // Impossible sizes: NULL with ENOMEM, nothing else changed.
  static const size_t huge[] = {
      SIZE_MAX,        SIZE_MAX - 4096,       (size_t)1 << 63,
      (size_t)1 << 48, ((size_t)1 << 48) + 1, 65 * MiB};
  for (size_t k = 0; k < sizeof huge / sizeof *huge; k++) {
    errno = 0;
    if (mmpool_malloc(e, huge[k]) != NULL || errno != ENOMEM)
      fail_msg("mmpool_malloc(%zu): not NULL/ENOMEM", huge[k]);
    errno = 0;
    if (mmpool_memalign(e, 4096, huge[k]) != NULL || errno != ENOMEM)
      fail_msg("mmpool_memalign(4096, %zu): not NULL/ENOMEM", huge[k]);
    errno = 0;
    if (mmpool_memalign(e, 1 * MiB, huge[k]) != NULL || errno != ENOMEM)
      fail_msg("mmpool_memalign(1M, %zu): not NULL/ENOMEM", huge[k]);
  }
  errno = 0;
  assert_null(mmpool_calloc(e, SIZE_MAX / 2, 3));
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_null(mmpool_calloc(e, (size_t)1 << 32, (size_t)1 << 32));
  assert_int_equal(errno, ENOMEM);

  // A failed realloc leaves the block as it was: small and large blocks.
  static const size_t olds[] = {100, 3000, 200 * 1024, 3 * MiB};
  for (size_t i = 0; i < sizeof olds / sizeof *olds; i++) {
    for (size_t k = 0; k < sizeof huge / sizeof *huge; k++) {
      size_t n = olds[i];
      uint8_t *p = mmpool_malloc(e, n);
      assert_non_null(p);
      fill_range(p, 99, 0, n);
      errno = 0;
      void *q = mmpool_realloc(e, p, huge[k]);
      if (q != NULL || errno != ENOMEM)
        fail_msg("mmpool_realloc(%zu-byte block, %zu) = %p (errno %d), "
                 "expected NULL/ENOMEM",
                 n, huge[k], q, errno);
      errno = 0;
      q = mmpool_realloc(NULL, p, huge[k]);
      if (q != NULL || errno != ENOMEM)
        fail_msg("mmpool_realloc(NULL, %zu-byte block, %zu) = %p (errno %d), "
                 "expected NULL/ENOMEM",
                 n, huge[k], q, errno);
      if (mmpool_usable_size(p) != n)
        fail_msg("after a failed realloc to %zu: usable size %zu, not %zu",
                 huge[k], mmpool_usable_size(p), n);
      expect_fill(p, 99, n, "block after a failed realloc");
      if (mmpool_check(e) != 0)
        fail_msg("mmpool_check after a failed realloc of %zu to %zu: %s", n,
                 huge[k], ERR());
      mmpool_free(p);
    }
  }

  // Filling the pool: NULL/ENOMEM once full, never a crash; everything
  // freed makes the space usable again.
  void *blocks_[128];
  size_t nb = 0;
  for (; nb < 128; nb++) {
    errno = 0;
    blocks_[nb] = mmpool_malloc(e, 1 * MiB);
    if (blocks_[nb] == NULL) break;
    memset(blocks_[nb], (int)nb, 1 * MiB);
  }
  assert_true(nb >= 32 && nb < 64);
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_null(mmpool_malloc(e, 16 * MiB));
  assert_int_equal(errno, ENOMEM);
  // Small blocks may still fit in the metadata-sized gaps, or not; both
  // are fine as long as the answer is a block or NULL/ENOMEM.
  void *s = mmpool_malloc(e, 100);
  if (s == NULL) assert_int_equal(errno, ENOMEM);
  mmpool_free(s);
  assert_int_equal(mmpool_check(e), 0);
  for (size_t i = 0; i < nb; i++) {
    const uint8_t *b = blocks_[i];
    if (b[0] != (uint8_t)i || b[MiB - 1] != (uint8_t)i)
      fail_msg("full pool: block %zu overwritten", i);
    mmpool_free(blocks_[i]);
  }
  void *big = mmpool_malloc(e, 32 * MiB);
  if (big == NULL) fail_msg("32 MiB in an emptied 64 MiB pool: %s", ERR());
  mmpool_free(big);

  mmpool_stats_t st;
  assert_int_equal(mmpool_stats(e, &st), 0);
  assert_int_equal(st.in_use_blocks, 0);
  assert_int_equal(st.in_use, 0);
  assert_int_equal(mmpool_check(e), 0);
  assert_int_equal(mmpool_close(e), 0);
}

// After a failure the test has not closed its pools: remove the scratch
// files anyway (the pool file stays valid while mapped).
static int teardown(void **state) {
  (void)state;
  if (poolpath[0]) unlink(poolpath);
  if (tmpdir[0]) rmdir(tmpdir);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_edges),
      cmocka_unit_test(test_model),
  };
  return cmocka_run_group_tests(tests, NULL, teardown);
}
