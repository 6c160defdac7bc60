// route_lib.h: the functions that route_lib.c exports under a prefix
// (route_a, route_b, route_c in the libraries, route_x in the test program
// itself). Each calls one member of the malloc family and returns the block.
#ifndef ROUTE_LIB_H
#define ROUTE_LIB_H

#include <stddef.h>

#define ROUTE_DECLARE(p)                                                   \
  extern volatile unsigned long p##_calls;                                 \
  void *p##_malloc(size_t n);                                              \
  void *p##_calloc(size_t k, size_t n);                                    \
  void *p##_realloc(void *ptr, size_t n);                                  \
  void *p##_reallocarray(void *ptr, size_t k, size_t n);                   \
  void *p##_memalign(size_t align, size_t n);                              \
  void *p##_aligned_alloc(size_t align, size_t n);                         \
  void *p##_posix_memalign(size_t align, size_t n);                        \
  void *p##_valloc(size_t n);                                              \
  void *p##_pvalloc(size_t n);                                             \
  char *p##_strdup(const char *s);

#endif
