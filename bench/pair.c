// pair.c: the fast-path microbenchmark. One thread, one block size.
//
//   pair SIZE N [MODE]
//
// MODE pair (default): N times { p = malloc(SIZE); escape(p); free(p); }
//   the same block comes back every time: the cost of the shortest
//   malloc path plus the shortest free path.
// MODE ws: 64 live blocks kept round-robin; N times { free(slot[i % 64]);
//   slot[i % 64] = malloc(SIZE); escape; } so that every malloc pops a block
//   other than the one just freed and the free list is really walked.
// MODE wsK (ws100, ws7, ...): the same with K live blocks (1..4096). A power
//   of two such as 64 can coincide with the number of blocks an allocator
//   carves at a time (a 64 KiB page of 1 KiB blocks holds 64), which puts
//   it on its refill path at every call; ws100 avoids that coincidence.
//
// Prints one CSV line: allocator,mode,size,n,ns_per_pair
// The same binary serves callgrind.sh, which runs it at two values of N and
// divides the difference of the instruction counts by the difference of N.
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"

#define WS_DEFAULT 64
#define WS_MAX 4096

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static unsigned long parse_ul(const char *s, const char *what) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0') {
    fprintf(stderr, "pair: bad %s '%s'\n", what, s);
    exit(2);
  }
  return v;
}

// noinline: one symbol per loop, so callgrind_annotate shows them apart.
__attribute__((noinline)) static void run_pair(size_t size, unsigned long n) {
  for (unsigned long i = 0; i < n; i++) {
    void *p = bench_malloc(size);
    if (p == NULL) {
      fprintf(stderr, "pair: malloc(%zu) failed\n", size);
      exit(1);
    }
    bench_escape(p);
    bench_free(p);
  }
}

__attribute__((noinline)) static void run_ws(size_t size, unsigned long n,
                                             unsigned ws) {
  static void *slot[WS_MAX];
  for (unsigned i = 0; i < ws; i++) {
    slot[i] = bench_malloc(size);
    bench_escape(slot[i]);
  }
  for (unsigned long i = 0; i < n; i++) {
    unsigned j = (unsigned)(i % ws);
    bench_free(slot[j]);
    slot[j] = bench_malloc(size);
    if (slot[j] == NULL) {
      fprintf(stderr, "pair: malloc(%zu) failed\n", size);
      exit(1);
    }
    bench_escape(slot[j]);
  }
  for (unsigned i = 0; i < ws; i++)
    bench_free(slot[i]);
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: %s SIZE N [pair|ws|wsK]\n", argv[0]);
    return 2;
  }
  size_t size = parse_ul(argv[1], "size");
  unsigned long n = parse_ul(argv[2], "iteration count");
  const char *mode = argc == 4 ? argv[3] : "pair";
  unsigned ws = 0; // live blocks; 0: pair mode
  if (strcmp(mode, "ws") == 0) {
    ws = WS_DEFAULT;
  } else if (strncmp(mode, "ws", 2) == 0) {
    unsigned long k = parse_ul(mode + 2, "working set");
    if (k < 1 || k > WS_MAX) {
      fprintf(stderr, "pair: working set must be 1..%d\n", WS_MAX);
      return 2;
    }
    ws = (unsigned)k;
  } else if (strcmp(mode, "pair") != 0) {
    fprintf(stderr, "pair: mode must be pair, ws or wsK, not '%s'\n", mode);
    return 2;
  }
  bench_init();
  double t0 = now_ns();
  if (ws)
    run_ws(size, n, ws);
  else
    run_pair(size, n);
  double t1 = now_ns();
  printf("%s,%s,%zu,%lu,%.2f\n", BENCH_ALLOC_NAME, mode, size, n,
         n ? (t1 - t0) / (double)n : 0.0);
  return 0;
}
