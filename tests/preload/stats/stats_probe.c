// stats_probe.c: a program run by test_stats under the preload library with
// MMPOOL_STATS=1 and a three-pool configuration routed by size
// (small: size<=256, big: size>=1M, mid: the default). It allocates in
// each route's range, keeps the blocks live, checks each landed in its
// pool (exit 3 if not), then ends as argv[1] says:
//   keep       returns from main
//   close2     closes fd 2 first (as coreutils do)
//   reuse2     closes fd 2 and opens argv[2], which takes fd 2
//   closeall   closes every fd from 3 up (a daemon), then opens argv[2] as
//              fds 3..15, so one of them takes the number of the report's
//              private descriptor
//   closeall2  closes every fd from 2 up, then opens argv[2] as fds 2..15:
//              neither the private copy nor fd 2 is stderr any more
//   closepool  frees nothing, closes pool big through the API
//   api        opens a pool "extra" through the API, 5 blocks live in it
//   threads    runs PROBE_THREADS threads one after another, each
//              allocating PROBE_THREAD_BLOCKS blocks of 64 bytes (route
//              small), freeing them and exiting: their counts must reach
//              the report once each
// The blocks of each range: 100 of 64 bytes, 10 of 8 KiB, 3 of 2 MiB.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mmpool.h"

static void *keep[113];

#define PROBE_THREADS 8
#define PROBE_THREAD_BLOCKS 50

static void *thread_main(void *arg) {
  (void)arg;
  void *b[PROBE_THREAD_BLOCKS];
  for (int i = 0; i < PROBE_THREAD_BLOCKS; i++)
    if (!(b[i] = malloc(64))) return (void *)1;
  for (int i = 0; i < PROBE_THREAD_BLOCKS; i++) free(b[i]);
  return NULL;
}

static int alloc_in(unsigned from, unsigned n, size_t size, const char *pool) {
  for (unsigned i = from; i < from + n; i++) {
    keep[i] = malloc(size);
    mmpool_t *p = keep[i] ? mmpool_of(keep[i]) : NULL;
    if (!p || strcmp(mmpool_name(p), pool) != 0) {
      fprintf(stderr, "stats_probe: a block of %zu bytes is in %s, not %s\n",
              size, p ? mmpool_name(p) : "no pool", pool);
      return -1;
    }
    memset(keep[i], 1, size);
  }
  return 0;
}

// Closes every descriptor from fd up, then opens file as fd..15; 0 or -1.
static int reopen_from(int fd, const char *file) {
  for (int k = fd; k < 1024; k++)
    close(k);
  for (int k = fd; k <= 15; k++)
    if (open(file, O_WRONLY | O_CREAT | O_APPEND, 0600) != k) return -1;
  return 0;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "keep";
  const char *file = argc > 2 ? argv[2] : "/dev/null";
  if (alloc_in(0, 100, 64, "small") || alloc_in(100, 10, 8192, "mid") ||
      alloc_in(110, 3, 2u << 20, "big"))
    return 3;
  if (strcmp(mode, "close2") == 0) {
    close(2);
  } else if (strcmp(mode, "reuse2") == 0) {
    close(2);
    if (open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600) != 2) return 4;
  } else if (strcmp(mode, "closeall") == 0) {
    if (reopen_from(3, file)) return 4;
  } else if (strcmp(mode, "closeall2") == 0) {
    if (reopen_from(2, file)) return 4;
  } else if (strcmp(mode, "closepool") == 0) {
    if (mmpool_close(mmpool_get("big")) != 0) return 5;
  } else if (strcmp(mode, "api") == 0) {
    mmpool_t *x = mmpool_open("extra", "size=1G");
    if (!x) return 5;
    for (int i = 0; i < 5; i++)
      if (!mmpool_malloc(x, 1000)) return 5;
  } else if (strcmp(mode, "threads") == 0) {
    for (int k = 0; k < PROBE_THREADS; k++) {
      pthread_t t;
      void *r;
      if (pthread_create(&t, NULL, thread_main, NULL) != 0 ||
          pthread_join(t, &r) != 0 || r != NULL)
        return 6;
    }
  } else if (strcmp(mode, "keep") != 0) {
    return 2;
  }
  printf("stats_probe: done\n");
  return 0;
}
