/* wl.h: what the workloads share. Every workload is a plain program that
 * calls malloc/free/realloc (the allocator comes from LD_PRELOAD), takes
 * `THREADS SCALE` as arguments, checks its own result, prints one line
 * "OK <name> threads=T scale=S checksum=<hex> [extra]" and exits 0, or
 * prints "FAIL ..." on stderr and exits 1. */
#ifndef WL_H
#define WL_H
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

static inline uint64_t wl_rand(uint64_t *s) { /* xorshift64* */
  uint64_t x = *s;
  x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static inline uint64_t wl_mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

#define WL_FAIL(...) do { fprintf(stderr, "FAIL " __VA_ARGS__); \
  fputc('\n', stderr); exit(1); } while (0)

static inline void wl_args(int argc, char **argv, int *threads, long *scale,
                           long def_scale) {
  *threads = argc > 1 ? atoi(argv[1]) : 1;
  *scale = argc > 2 ? atol(argv[2]) : def_scale;
  if (*threads < 1 || *threads > 1024 || *scale < 1)
    WL_FAIL("usage: %s [THREADS] [SCALE]", argv[0]);
}

/* Resident set size of this process in KiB (from /proc/self/statm). */
static inline long wl_rss_kib(void) {
  long pages = 0, rss = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return -1;
  if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = -1;
  fclose(f);
  return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* RSS after an idle period: WL_IDLE_MS milliseconds (default 1000; 0: no
 * wait) of sleep, so that allocators that give memory back on a timer or
 * from a background thread (jemalloc's and mimalloc's decay) show it; an
 * allocator that only purges on its next call shows nothing more. */
static inline long wl_rss_after_idle_kib(void) {
  const char *e = getenv("WL_IDLE_MS");
  long ms = e && *e ? atol(e) : 1000;
  if (ms > 0) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
  }
  return wl_rss_kib();
}

/* Runs fn(arg_i) in `threads` threads, each getting its index. */
static inline void wl_run_threads(int threads, void *(*fn)(void *),
                                  void *args, size_t argsz) {
  pthread_t *t = calloc((size_t)threads, sizeof *t);
  if (!t) WL_FAIL("calloc");
  for (int i = 0; i < threads; i++)
    if (pthread_create(&t[i], NULL, fn, (char *)args + argsz * (size_t)i))
      WL_FAIL("pthread_create");
  for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
  free(t);
}
/* What most workloads give each thread: its index, its share of the work
   and the sum it computes over its blocks (the checksum's part). */
typedef struct { int id; long n; uint64_t sum; } wl_arg;

/* The main of a workload whose threads share scale * unit operations and
   each leave a sum: runs them, prints the OK line with the checksum. */
static inline int wl_main_split(const char *name, int argc, char **argv,
                                long def_scale, long unit,
                                void *(*work)(void *)) {
  int t; long scale;
  wl_args(argc, argv, &t, &scale, def_scale);
  wl_arg *a = calloc((size_t)t, sizeof *a);
  if (!a) WL_FAIL("calloc");
  for (int i = 0; i < t; i++) {
    a[i].id = i;
    a[i].n = scale * unit / t > 0 ? scale * unit / t : 1;
  }
  wl_run_threads(t, work, a, sizeof *a);
  uint64_t h = 0;
  for (int i = 0; i < t; i++) h = wl_mix(h, a[i].sum);
  printf("OK %s threads=%d scale=%ld checksum=%016llx\n", name, t, scale,
         (unsigned long long)h);
  free(a);
  return 0;
}
#endif
