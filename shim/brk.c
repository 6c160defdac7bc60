// brk.c: the emulated program break (sbrk, __sbrk and brk).
//
// Legacy programs that manage their own heap through the program break get
// one contiguous region of our own instead of the kernel's break, which the
// preload library leaves alone (glibc's malloc, its only other user, is
// replaced). The region is set up at the first call:
// - With a pool marked `brk`: one large block of that pool, as big as the
//   pool can give, but half of that when the pool also serves malloc (it is
//   the default pool or a route's target); at most BRK_DEFAULT when the
//   pool's size= was not given, as the engine writes one page descriptor
//   per 64 KiB of a block (region/1024 bytes of memory); at most
//   BRK_FILE_MAX for a file pool, whose blocks are allocated in the file at
//   once. A failed attempt is retried at half the size, down to BRK_MIN.
//   The break starts one OS page (POOL_BRK_SKIP) into the block, so that no
//   break address is the start of a block: a stray free() of one is a
//   misuse that stops the program (core/heap.c) instead of freeing the
//   region.
// - Otherwise, or when that pool is not open: BRK_DEFAULT bytes of internal
//   read-write memory (vmmap_internal, MAP_NORESERVE), in no pool.
// Either way the region is disjoint from every block malloc hands out, by
// construction: it is a live block of its pool, or memory of no pool.
//
// A file pool keeps its break from run to run. Its header records the
// region's start and the break (st.brk_start, st.brk_cur: core/pool_brk.h),
// written when the region is set up and at every move, and the block stays
// live at exit. The first call of the next run on that file finds the
// record, checks it (its start POOL_BRK_SKIP into a live large block of the
// pool, the break inside that block: pool_brk_get) and resumes there:
// sbrk(0) is where the last run left it, the bytes below it what that run
// wrote, and the region keeps the size it was made with. A record that
// fails the check costs one warning (the file and the fault) and a fresh
// region; the block it named, if any, stays in the file. In mode=private
// the run starts from the file's record and bytes, and its changes, the
// record's included, stay in its copy-on-write mapping. A program that an
// exec starts with the same configuration resumes the break as a next run
// does.
// Anonymous pools and the default region start empty in every process.
//
// Semantics (glibc's, PITFALLS 1.12): sbrk(0) is the break; sbrk(n) moves
// it by n (negative shrinks) and returns the old one; brk(addr) sets it,
// returning 0. Anything that would leave [start, end] fails with
// (void *)-1 or -1 and ENOMEM and moves nothing (brk(NULL) included).
// One lock makes the calls atomic; glibc's own are not thread-safe.
//
// Invariants (under the lock):
// - start <= cur <= end; [start, cur) is the program's, [cur, end) reads as
//   zeros once the break grows over it. Anonymous memory is zeroed when the
//   break shrinks (the partial page by memset, whole pages by purging them);
//   file memory cannot be purged to zeros, so bytes in [cur, dirty_end) may
//   hold old data and are cleared when the break grows over them (a region
//   resumed from a file is dirty up to its end).
// - A file pool's header records start and cur (`keep`), so that a process
//   that dies leaves the break it had: its file, unclean, is attached with
//   `recover`, and the record is checked as at any attach.
// - The kernel's break is never touched: code that measures its heap as
//   [&end, sbrk(0)) sees a jump to a far address. A program calling
//   syscall(SYS_brk) directly, or a static binary, bypasses us.
// - A fork child keeps a private copy of the break, in every pool (a
//   mode=shared file pool is copied for the child, header and record
//   included, core/pool.c: the child's moves never reach the file); the
//   break cannot move in a pool that is frozen (its file let go at exit or
//   exec, or a fork child that could not copy it): ENOMEM. At exit and exec
//   the record is already current: core/pool.c's pool_release_files writes
//   the header out with the rest of the pool.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "os.h"
#include "pool_brk.h"
#include "shim.h"

#define EXPORT __attribute__((visibility("default")))

#define BRK_DEFAULT ((size_t)1 << 30)  // the region without a brk pool
#define BRK_FILE_MAX ((size_t)1 << 30) // the region of a file pool, at most
#define BRK_MIN ((size_t)1 << 20)      // smallest region taken from a pool
#define OS_PAGE ((uintptr_t)4096)

// What the configuration says of the break, read at the first call (under
// the lock, once the shim is initialised); then read-only.
static int pool_index = -1;      // the pool marked brk in the configuration
static struct mmpool *conf_pool; // its open handle, or NULL
static int conf_pool_mallocs;    // it is the default pool or a route's target
static int conf_pool_sized;      // its size= was given

// The region and the break. Under the lock.
static struct brk_region {
  uintptr_t start, cur, end; // all 0 until the region is set up
  uintptr_t dirty_end;       // file memory: [cur, dirty_end) may be dirty
  void *block;               // the pool block holding the region, or NULL
  struct mmpool *pool;       // its pool; NULL for the default region
  int anon;                  // purging gives zeros
  int keep;                  // a file pool's: its header records the break
} region;

// ---------------------------------------------------------------------------
// Lock: a spin lock whose word is the holder's process id. A fork child
// finds it held by its parent's pid when a parent thread held it at fork
// time; no such thread exists in the child, so the child takes it over.
// (No atfork handler: fork may be called from a signal handler that
// interrupted sbrk, PITFALLS 4.3.)

static int lock_word;

static void brk_lock(void) {
  int me = (int)getpid();
  for (;;) {
    int cur = 0;
    if (__atomic_compare_exchange_n(&lock_word, &cur, me, 0, __ATOMIC_ACQUIRE,
                                    __ATOMIC_RELAXED))
      return;
    if (cur != me &&
        __atomic_compare_exchange_n(&lock_word, &cur, me, 0, __ATOMIC_ACQUIRE,
                                    __ATOMIC_RELAXED))
      return; // held by the parent at fork time: ours now
    sched_yield();
  }
}

static void brk_unlock(void) {
  __atomic_store_n(&lock_word, 0, __ATOMIC_RELEASE);
}

// ---------------------------------------------------------------------------
// Setup

// Reads the brk pool of the configuration. pre: lock held, shim started.
static void configure(void) {
  for (unsigned i = 0; i < shim_cfg.npools; i++) {
    if (!shim_cfg.pools[i].spec.brk) continue;
    pool_index = (int)i;
    conf_pool = shim_cfg_pool[i];
    conf_pool_mallocs = shim_cfg.default_pool == i;
    conf_pool_sized = shim_cfg.pools[i].spec.size_set;
    for (unsigned r = 0; r < shim_cfg.nroutes; r++)
      if (shim_cfg.routes[r].pool == i) conf_pool_mallocs = 1;
    break; // config/ allows one brk pool at most
  }
}

static uintptr_t page_up(uintptr_t a) {
  return (a + OS_PAGE - 1) & ~(OS_PAGE - 1);
}

// Makes [lo, hi) of anonymous memory read as zeros; pages past hi are
// already zero (above the break). pre: hi <= end, end page aligned.
static void zero_anon(uintptr_t lo, uintptr_t hi) {
  uintptr_t mid = page_up(lo) < hi ? page_up(lo) : hi;
  memset((void *)lo, 0, mid - lo);
  if (mid < hi && vmmap_purge(mid, page_up(hi) - mid) != 0)
    memset((void *)mid, 0, hi - mid);
}

// The region a file pool's header records, checked; 1 when there is one.
// pre: lock held, p a file pool or a fork child's copy of one.
static int region_resume(struct mmpool *p) {
  struct pool_brk b;
  char why[256];
  int r = pool_brk_get(p, &b, why, sizeof why);
  if (r == -ENOENT) return 0;
  if (r != 0) {
    log_print(LOG_WARN, "brk: pool '%s': %s: %s; the break starts afresh",
              p->name, p->path, why);
    return 0;
  }
  region.block = (void *)b.block;
  region.pool = p;
  region.anon = 0;
  region.keep = 1;
  region.start = b.start;
  region.cur = b.cur;
  region.end = b.end;
  region.dirty_end = b.end; // what the file holds above the break
  return 1;
}

// The region as one large block of pool p: 1 resumed from p's file, 0 new,
// -1 none. pre: lock held.
static int region_from_pool(struct mmpool *p) {
  if (p->state != POOL_OPEN || p->frozen) return -1;
  // A fork child whose parent had not set the break up yet resumes from
  // its own copy of the pool, as the parent would have.
  int file = p->is_file || p->fork_copy;
  if (file && region_resume(p)) return 1;
  size_t want = pool_room(p);
  if (conf_pool_mallocs) want /= 2;
  if (!conf_pool_sized && want > BRK_DEFAULT) want = BRK_DEFAULT;
  if (p->is_file && want > BRK_FILE_MAX) want = BRK_FILE_MAX;
  want &= ~(PAGE_BYTES - 1);
  for (; want >= BRK_MIN; want = (want / 2) & ~(PAGE_BYTES - 1)) {
    int dirty = 1;
    void *blk = heap_alloc_large(p, want, 0, &dirty);
    if (!blk) continue;
    region.block = blk;
    region.pool = p;
    region.anon = !p->is_file;
    region.keep = file;
    region.start = region.cur = (uintptr_t)blk + POOL_BRK_SKIP;
    region.end = (uintptr_t)blk + want;
    region.dirty_end = region.start;
    if (dirty && region.anon)
      zero_anon(region.start, region.end);
    else if (dirty)
      region.dirty_end = region.end;
    if (region.keep) pool_brk_set(p, region.start, region.cur);
    return 0;
  }
  return -1;
}

// pre: lock held. 0, or -1 when no region can be had.
static int setup(void) {
  if (region.end) return 0;
  configure();
  int got = conf_pool ? region_from_pool(conf_pool) : -1;
  if (got == 1) {
    log_print(LOG_INFO,
              "brk: the break resumes at 0x%lx in 0x%lx-0x%lx (%zu bytes) "
              "of pool '%s', as %s recorded it",
              (unsigned long)region.cur, (unsigned long)region.start,
              (unsigned long)region.end, (size_t)(region.end - region.start),
              region.pool->name, region.pool->path);
    return 0;
  }
  if (got == 0) {
    log_print(LOG_INFO,
              "brk: the break is 0x%lx-0x%lx (%zu bytes) in pool "
              "'%s'",
              (unsigned long)region.start, (unsigned long)region.end,
              (size_t)(region.end - region.start), region.pool->name);
    return 0;
  }
  if (pool_index >= 0)
    log_print(LOG_WARN,
              "brk: pool '%s' cannot hold the break (%s); sbrk "
              "uses a default region of %zu bytes",
              shim_cfg.pools[pool_index].name,
              conf_pool ? "no room" : "not open", BRK_DEFAULT);
  void *r = vmmap_internal(BRK_DEFAULT);
  if (!r) {
    log_print(LOG_ERROR, "brk: cannot map a break region of %zu bytes",
              BRK_DEFAULT);
    return -1;
  }
  os_name_range((uintptr_t)r, BRK_DEFAULT, "mmpool-brk");
  region.block = NULL;
  region.pool = NULL;
  region.anon = 1;
  region.keep = 0;
  region.start = region.cur = region.dirty_end = (uintptr_t)r;
  region.end = (uintptr_t)r + BRK_DEFAULT;
  log_print(LOG_INFO,
            "brk: the break is 0x%lx-0x%lx (%zu bytes), the "
            "default region",
            (unsigned long)region.start, (unsigned long)region.end,
            BRK_DEFAULT);
  return 0;
}

// Takes the lock with the region set up; -1 (lock not held) when there is
// none. The shim's configuration comes first: a program may call sbrk
// before any malloc (which otherwise initialises the shim).
RARE static int enter(void) {
  int saved = errno;
  shim_start(); // returns at once when it has run
  brk_lock();
  int r = setup();
  log_take_code(); // a failed pool attempt decides no later errno
  errno = saved;
  if (r != 0) brk_unlock();
  return r;
}

// Moves the break to nb. pre: lock held, start <= nb <= end.
RARE static int move(uintptr_t nb) {
  uintptr_t old = region.cur;
  if (nb == old) return 0;
  if (region.pool && region.pool->frozen)
    return -1; // a frozen pool changes no byte
  if (nb > old) {
    if (region.dirty_end > old)
      memset((void *)old, 0,
             (nb < region.dirty_end ? nb : region.dirty_end) - old);
  } else if (region.anon) {
    zero_anon(nb, old);
  } else if (region.dirty_end < old) {
    region.dirty_end = old;
  }
  region.cur = nb;
  if (region.keep) pool_brk_set(region.pool, region.start, nb);
  return 0;
}

// ---------------------------------------------------------------------------
// The interface

EXPORT void *sbrk(intptr_t increment) {
  if (enter() != 0) {
    errno = ENOMEM;
    return (void *)-1;
  }
  uintptr_t old = region.cur, nb;
  int ok;
  if (increment >= 0) {
    ok = (uintptr_t)increment <= region.end - old;
    nb = old + (uintptr_t)increment;
  } else {
    uintptr_t dec = (uintptr_t)0 - (uintptr_t)increment;
    ok = dec <= old - region.start;
    nb = old - dec;
  }
  if (ok) ok = move(nb) == 0;
  brk_unlock();
  if (!ok) {
    errno = ENOMEM;
    return (void *)-1;
  }
  return (void *)old;
}

void *__sbrk(intptr_t increment); // glibc's name; no header declares it
EXPORT void *__sbrk(intptr_t increment)
    __attribute__((alias("sbrk"), copy(sbrk)));

EXPORT int brk(void *addr) {
  if (enter() != 0) {
    errno = ENOMEM;
    return -1;
  }
  uintptr_t a = (uintptr_t)addr;
  int ok = a >= region.start && a <= region.end && move(a) == 0;
  brk_unlock();
  if (!ok) {
    errno = ENOMEM;
    return -1;
  }
  return 0;
}
