// rlimit_probe.c: a program that lowers RLIMIT_AS after it started, under
// the preload library (issue 12, item 5). The limit is set, first thing in
// main, to the current VmSize plus 256 MiB (from /proc/self/status), at
// most 1 GiB; then the program keeps
// creating threads (20, each allocating and freeing) and allocating in the
// main thread. With the default pool's whole 64 GiB reserved (before main:
// the library allocates first), the limit was below VmSize and nothing
// more could be mapped (pthread_create: EAGAIN); with a
// reservation that grows with use, they do. Prints "rlimit ok" at the end.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <unistd.h>

#define MiB ((size_t)1 << 20)

// VmSize in bytes, read with open and read into a stack buffer: no
// allocation, so that the limit is set before the program's first malloc
// (as a program that limits itself first thing in main does).
static size_t vmsize(void) {
  char buf[4096];
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  const char *v = strstr(buf, "VmSize:");
  return v ? strtoull(v + 7, NULL, 10) << 10 : 0;
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
  // VmSize + 256 MiB, within a budget of 1 GiB: a program with a small
  // heap gets its 256 MiB of room; a whole 64 GiB reserved up front (as the
  // pools did) would leave the program nothing to map.
  size_t lim = before + 256 * MiB;
  if (lim > 1024 * MiB) lim = 1024 * MiB;
  struct rlimit rl = {lim, RLIM_INFINITY};
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
      if (getenv("RLIMIT_PROBE_MAPS")) {
        char line[512];
        FILE *f = fopen("/proc/self/maps", "r");
        while (f && fgets(line, sizeof line, f)) fputs(line, stderr);
      }
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
