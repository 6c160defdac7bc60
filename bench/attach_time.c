// attach_time.c: how long mmpool_open takes to attach a clean file pool, by
// the size of what the pool holds (issue 13, item 4).
//
// For each size (1 MiB, 16 MiB, 256 MiB, 1 GiB, 4 GiB by default) it creates
// a file pool of a capacity just above that size, fills it with 256-byte
// blocks (size / 256 of them), closes it, and then times:
//   warm  mmpool_open of the file just closed (its pages in the page cache),
//         median of 7 opens (each followed by a close, not timed);
//   cold  the same after posix_fadvise(POSIX_FADV_DONTNEED) on the whole
//         file (after the close, which syncs it): the page cache holds none
//         of it, but the kernel's read-ahead still brings in more than is
//         touched, and the disk's own cache is not emptied (so a cold open
//         here is a page-cache miss, not a seek); median of 3;
//   read  the file's pages in the page cache after a cold open (mincore),
//         i.e. what the open made the kernel read, read-ahead included;
//   first the first mmpool_malloc(256) after a cold open (its slab is
//         checked then);
//   rebuild the other way to the same heap: a fresh anonymous pool of the
//         same capacity filled with the same blocks, each written (what a
//         program that keeps no heap spends rebuilding it), median of 3;
//   dirty KiB of the pool's mappings dirty after a warm open
//         (/proc/self/smaps: Shared_Dirty + Private_Dirty), what the open
//         wrote into the file's pages;
//   close mmpool_close right after a warm open (median of the 7): the
//         clean mark's metadata checksum and the sync of what the open
//         dirtied, the close of a program that touched nothing.
// One line per size, tab-separated, after a header line with the command.
//
// Built by the bench preset (cmake --preset bench && cmake --build
// build-bench), or by hand after the default build:
//   cc -O2 -Iinclude bench/attach_time.c -Lbuild -lmmpool
//      -Wl,-rpath,$PWD/build -o build/attach_time       (one line)
// Run: build-bench/bench/attach_time DIR [MiB ...]
// DIR needs room for the largest pool (4 GiB and a little); every file is
// removed after its size is measured.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mmpool.h"
#include "timing.h"

#define BLOCK 256

static void die(const char *what) {
  fprintf(stderr, "attach_time: %s: %s\n", what, mmpool_last_error());
  exit(1);
}

// Drops the file's pages from the page cache.
static void drop_cache(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0 || fdatasync(fd) != 0 ||
      posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0) {
    perror("attach_time: drop the page cache");
    exit(1);
  }
  close(fd);
}

// Pages of the file in the page cache.
static size_t cached_pages(const char *path) {
  int fd = open(path, O_RDONLY);
  struct stat sb;
  if (fd < 0 || fstat(fd, &sb) != 0) return 0;
  size_t len = (size_t)sb.st_size, pg = (size_t)sysconf(_SC_PAGESIZE);
  void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return 0;
  size_t n = (len + pg - 1) / pg, in = 0;
  unsigned char *v = malloc(n);
  if (v && mincore(m, len, v) == 0)
    for (size_t i = 0; i < n; i++) in += v[i] & 1;
  free(v);
  munmap(m, len);
  return in;
}

// KiB dirty in the mappings inside [lo, hi).
static long dirty_kib(uintptr_t lo, uintptr_t hi) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (!f) return -1;
  char line[512];
  long kib = 0;
  int in = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long a, b;
    long v;
    if (sscanf(line, "%lx-%lx ", &a, &b) == 2 &&
        strchr(line, '-') < strchr(line, ' '))  // a mapping's first line
      in = a >= lo && b <= hi;
    else if (in && (sscanf(line, "Shared_Dirty: %ld", &v) == 1 ||
                    sscanf(line, "Private_Dirty: %ld", &v) == 1))
      kib += v;
  }
  fclose(f);
  return kib;
}

static mmpool_t *open_timed(const char *opts, double *ms) {
  double t0 = now_ms();
  mmpool_t *p = mmpool_open("at", opts);
  *ms = now_ms() - t0;
  if (!p) die("open");
  return p;
}

static void measure(const char *dir, uint64_t mib) {
  char path[4096], opts[4200];
  snprintf(path, sizeof path, "%s/attach_time.%d.pool", dir, (int)getpid());
  unlink(path);
  uint64_t bytes = mib << 20;
  // Slabs of 256-byte blocks use about 97% of their pages: 1/16 more, and a
  // few MiB for the pool's own metadata, is enough.
  uint64_t cap = bytes + bytes / 16 + ((uint64_t)8 << 20);
  snprintf(opts, sizeof opts, "file=%s size=%llu", path,
           (unsigned long long)cap);
  mmpool_t *p = mmpool_open("at", opts);
  if (!p) die("create");
  for (uint64_t i = 0; i < bytes / BLOCK; i++)
    if (!mmpool_malloc(p, BLOCK)) die("fill");
  if (mmpool_close(p) != 0) die("close");
  snprintf(opts, sizeof opts, "file=%s", path);

  double warm[7], closing[7], cold[3], first = 0;
  size_t read_pages = 0;
  long dirty = 0;
  for (int i = 0; i < 7; i++) {
    p = open_timed(opts, &warm[i]);
    if (i == 0) {
      uintptr_t b = (uintptr_t)mmpool_base(p);
      dirty = dirty_kib(b, b + mmpool_capacity(p));
    }
    double t0 = now_ms();
    if (mmpool_close(p) != 0) die("close");
    closing[i] = now_ms() - t0;
  }
  for (int i = 0; i < 3; i++) {
    drop_cache(path);
    p = open_timed(opts, &cold[i]);
    if (i == 0) {
      read_pages = cached_pages(path);
      double t0 = now_ms();
      if (!mmpool_malloc(p, BLOCK)) die("first malloc");
      first = now_ms() - t0;
    }
    if (mmpool_close(p) != 0) die("close");
  }
  double rebuild[3];
  snprintf(opts, sizeof opts, "size=%llu", (unsigned long long)cap);
  for (int i = 0; i < 3; i++) {
    double t0 = now_ms();
    p = mmpool_open("rebuild", opts);
    if (!p) die("open anonymous");
    for (uint64_t k = 0; k < bytes / BLOCK; k++) {
      void *b = mmpool_malloc(p, BLOCK);
      if (!b) die("rebuild");
      memset(b, (int)k, BLOCK);
    }
    rebuild[i] = now_ms() - t0;
    if (mmpool_close(p) != 0) die("close anonymous");
  }
  printf("%llu\t%.3f\t%.3f\t%zu\t%.3f\t%ld\t%.3f\t%.3f\n",
         (unsigned long long)mib, median(warm, 7), median(cold, 3),
         read_pages, first, dirty, median(closing, 7), median(rebuild, 3));
  fflush(stdout);
  unlink(path);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: attach_time DIR [MiB ...]\n");
    return 2;
  }
  printf("# attach_time");
  for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
  printf("\nMiB\twarm_ms\tcold_ms\tcold_read_pages\tfirst_malloc_ms\t"
         "dirty_kib\tclose_ms\trebuild_ms\n");
  if (argc == 2) {
    static const uint64_t sizes[] = {1, 16, 256, 1024, 4096};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
      measure(argv[1], sizes[i]);
  }
  for (int i = 2; i < argc; i++) measure(argv[1], strtoull(argv[i], NULL, 0));
  return 0;
}
