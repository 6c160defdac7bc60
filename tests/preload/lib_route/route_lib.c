// route_lib.c: one tiny shared library per build, for the lib= route tests.
//
// Built three times (libroute_a.so, libroute_b.so, libroute_c.so) with
// ROUTE_PREFIX set to route_a, route_b or route_c: each copy exports
// <prefix>_malloc, <prefix>_calloc... that call one member of the malloc
// family from inside this library and return the block, so the caller's
// return address that the preload library sees lies in this module.
// Invariant: every allocation call is a real call made here: compiled with
// -fno-builtin and -fno-optimize-sibling-calls, and each call is followed by
// a store to a volatile counter, so no call is folded or made a tail call
// (a tail call would hand malloc our caller's return address).
#define _GNU_SOURCE
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "route_lib.h"

#ifndef ROUTE_PREFIX
#error "ROUTE_PREFIX must name the exported functions' prefix"
#endif
#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)
#define FN(x) CAT(ROUTE_PREFIX, x)
#define DECLARE2(p) ROUTE_DECLARE(p)
DECLARE2(ROUTE_PREFIX)  // the header's prototypes match these definitions
#define EXPORT __attribute__((visibility("default"), noinline))

// Counts the calls made: the store after each call keeps it a real call.
__attribute__((visibility("default"))) volatile unsigned long FN(calls);

EXPORT void *FN(malloc)(size_t n) {
  void *p = malloc(n);
  FN(calls)++;
  return p;
}

EXPORT void *FN(calloc)(size_t k, size_t n) {
  void *p = calloc(k, n);
  FN(calls)++;
  return p;
}

// ptr NULL: a new block; otherwise resizes ptr.
EXPORT void *FN(realloc)(void *ptr, size_t n) {
  void *p = realloc(ptr, n);
  FN(calls)++;
  return p;
}

EXPORT void *FN(reallocarray)(void *ptr, size_t k, size_t n) {
  void *p = reallocarray(ptr, k, n);
  FN(calls)++;
  return p;
}

EXPORT void *FN(memalign)(size_t align, size_t n) {
  void *p = memalign(align, n);
  FN(calls)++;
  return p;
}

EXPORT void *FN(aligned_alloc)(size_t align, size_t n) {
  void *p = aligned_alloc(align, n);
  FN(calls)++;
  return p;
}

// The block, or NULL when posix_memalign returned an error.
EXPORT void *FN(posix_memalign)(size_t align, size_t n) {
  void *p = NULL;
  int r = posix_memalign(&p, align, n);
  FN(calls)++;
  return r == 0 ? p : NULL;
}

EXPORT void *FN(valloc)(size_t n) {
  void *p = valloc(n);
  FN(calls)++;
  return p;
}

EXPORT void *FN(pvalloc)(size_t n) {
  void *p = pvalloc(n);
  FN(calls)++;
  return p;
}

// The copy is made by libc's strdup, which calls malloc from libc.so.6.
EXPORT char *FN(strdup)(const char *s) {
  char *p = strdup(s);
  FN(calls)++;
  return p;
}
