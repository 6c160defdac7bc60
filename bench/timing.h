// timing.h: the clock and the median of the persistence benchmarks
// (attach_time.c, snapshot_time.c), header-only so that each still builds
// by hand with one cc line.
#ifndef MMPOOL_BENCH_TIMING_H
#define MMPOOL_BENCH_TIMING_H

#include <stdlib.h>
#include <time.h>

// Milliseconds of CLOCK_MONOTONIC.
static inline double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static inline int timing_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

// The median of v[0..n) (sorts v).
static inline double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, timing_cmp);
  return v[n / 2];
}

#endif
