// alloc.h: the allocator shim of the benchmarks. Each benchmark program is
// compiled once per allocator; one compile definition picks what
// bench_malloc/bench_free/bench_realloc call:
//
//   BENCH_ALLOC_MMPOOL  mmpool_malloc(pool, n) / mmpool_free(p) on one
//                       anonymous pool that bench_init() opens explicitly
//                       (named "bench"), so the figures measure the API's
//                       fast path with an explicit handle, not the lookup of
//                       the thread's current or default pool.
//   otherwise           malloc/free/realloc of the C library. Which malloc
//                       that is depends on the link: glibc's own, or jemalloc,
//                       tcmalloc_minimal or mimalloc, which replace malloc
//                       when linked (they come before libc in the search
//                       order). BENCH_ALLOC_NAME says which, for the output.
//
// Invariant: a benchmark calls bench_init() once before its first
// allocation and touches no other allocator-specific name.
#ifndef MMPOOL_BENCH_ALLOC_H
#define MMPOOL_BENCH_ALLOC_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef BENCH_ALLOC_NAME
#define BENCH_ALLOC_NAME "glibc"
#endif

// Keeps the compiler from proving a block unused (and so from removing a
// malloc/free pair): p escapes into an opaque asm that may read memory.
static inline void bench_escape(void *p) {
  __asm__ volatile("" : : "r"(p) : "memory");
}

#if defined(BENCH_ALLOC_MMPOOL)
#include "mmpool.h"

static mmpool_t *bench_pool;

static inline void bench_init(void) {
  // 64G is the default capacity (address space only; committed as used).
  bench_pool = mmpool_open("bench", "anon");
  if (bench_pool == NULL) {
    fprintf(stderr, "bench: mmpool_open failed: %s\n", mmpool_last_error());
    exit(2);
  }
}
static inline void *bench_malloc(size_t n) {
  return mmpool_malloc(bench_pool, n);
}
static inline void bench_free(void *p) { mmpool_free(p); }
static inline void *bench_realloc(void *p, size_t n) {
  return mmpool_realloc(bench_pool, p, n);
}

#else // a malloc-replacing library, or glibc

static inline void bench_init(void) {}
static inline void *bench_malloc(size_t n) { return malloc(n); }
static inline void bench_free(void *p) { free(p); }
static inline void *bench_realloc(void *p, size_t n) { return realloc(p, n); }

#endif
#endif // MMPOOL_BENCH_ALLOC_H
