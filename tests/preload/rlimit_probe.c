// rlimit_probe.c: a program that lowers RLIMIT_AS after it started, under
// the preload library (issue 12, item 5). The limit is set to the current
// VmSize plus 256 MiB (from /proc/self/status); then the program keeps
// creating threads (20, each allocating and freeing) and allocating in the
// main thread. With the default pool's whole 64 GiB reserved at start the
// allocator could not grow, nor the threads get their stacks; with a
// reservation that grows with use, they do. Prints "rlimit ok" at the end.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define MiB ((size_t)1 << 20)

static size_t vmsize(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  size_t kb = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmSize: %zu kB", &kb) == 1) break;
  if (f) fclose(f);
  return kb << 10;
}

static void *worker(void *arg) {
  size_t id = (size_t)arg;
  void *small[256];
  for (int i = 0; i < 256; i++) {
    small[i] = malloc(64 + (size_t)i * 16);
    if (!small[i]) return (void *)1;
    memset(small[i], (int)id, 64);
  }
  char *big = malloc(MiB);
  if (!big) return (void *)1;
  memset(big, 1, MiB);
  free(big);
  for (int i = 0; i < 256; i++) free(small[i]);
  return NULL;
}

int main(void) {
  size_t before = vmsize();
  if (!before) {
    fprintf(stderr, "cannot read VmSize\n");
    return 2;
  }
  struct rlimit rl = {before + 256 * MiB, RLIM_INFINITY};
  if (setrlimit(RLIMIT_AS, &rl) != 0) {
    perror("setrlimit");
    return 2;
  }
  pthread_t t[20];
  for (size_t i = 0; i < 20; i++) {
    int r = pthread_create(&t[i], NULL, worker, (void *)i);
    if (r) {
      fprintf(stderr, "pthread_create %zu: %s (VmSize %zu KiB, limit %zu KiB)\n",
              i, strerror(r), vmsize() >> 10, (size_t)rl.rlim_cur >> 10);
      return 1;
    }
  }
  for (size_t i = 0; i < 20; i++) {
    void *res;
    pthread_join(t[i], &res);
    if (res) {
      fprintf(stderr, "thread %zu could not allocate\n", i);
      return 1;
    }
  }
  // The main thread allocates past the pool's first reservation: 96 MiB in
  // 1 MiB blocks, kept, then freed.
  static char *keep[96];
  for (int i = 0; i < 96; i++) {
    keep[i] = malloc(MiB);
    if (!keep[i]) {
      fprintf(stderr, "malloc %d MiB: %s (VmSize %zu KiB, limit %zu KiB)\n",
              i + 1, strerror(errno), vmsize() >> 10,
              (size_t)rl.rlim_cur >> 10);
      return 1;
    }
    memset(keep[i], i, MiB);
  }
  for (int i = 0; i < 96; i++) free(keep[i]);
  printf("rlimit ok\n");
  return 0;
}
