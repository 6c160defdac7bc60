// snapshot_time.c: what a snapshot costs the program, by the size of its
// heap (issue 14, "Speed it must reach").
//
// For each size (16 MiB, 256 MiB, 1 GiB, 2 GiB by default) it fills an
// anonymous pool with 256-byte blocks (each written, so every page is
// resident), starts two threads that allocate and free blocks of 16 B to
// 4 KiB in the same pool without pause, and takes 5 snapshots into DIR with
// mmpool_snapshot. Per size, medians of the 5:
//   pause_ms  how long the program's threads were held (the manifest's
//             pause: hold the set, copy the process, let go);
//   total_ms  mmpool_snapshot's duration (the writer: images written and
//             fsynced, manifest renamed, directory synced);
//   MBps      bytes written / total;
//   cp_MBps   the same bytes copied from the snapshot's image to a new
//             file in DIR with read(2)/write(2) of 1 MiB and an fsync, as
//             `cp` then `sync FILE` do, in the same run (the image is in
//             the page cache, as the pool's memory is for the writer);
//   ratio     MBps / cp_MBps;
//   reloc_ms  then the pool is closed, a page mapped at its base, and the
//             last snapshot restored with relocate=yes: copied, every
//             pointer moved, attached (one run), and that per GiB.
// ops/s is what the two threads managed during the snapshots: they are
// held only during the pauses. SNAP_THREADS=0 (or 1) runs without (or with
// one) allocating thread; SNAP_THP=1 opens the pool with thp=yes
// (transparent huge pages: the copy of the page tables, the pause, is then
// one entry per 2 MiB).
// One line per size, tab-separated, after a header line with the command.
//
// Built by the bench preset (cmake --preset bench && cmake --build
// build-bench); run: build-bench/bench/snapshot_time DIR [MiB ...]. DIR
// needs room for two copies of the largest heap.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>

#include "mmpool.h"
#include "timing.h"

#define BLOCK 256
#define ROUNDS 5

static void die(const char *what) {
  fprintf(stderr, "snapshot_time: %s: %s\n", what, mmpool_last_error());
  exit(1);
}

static mmpool_t *pool;
static atomic_int stop;
static atomic_long ops;

static void *worker(void *arg) {
  uint64_t rng = (uintptr_t)arg * 7919 + 1;
  void *ring[256] = {0};
  long n = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    unsigned k = (unsigned)(rng >> 20) % 256;
    mmpool_free(ring[k]);
    ring[k] = mmpool_malloc(pool, 16 + (rng >> 33) % 4096);
    if (++n % 1024 == 0) atomic_fetch_add(&ops, 1024);
  }
  for (unsigned k = 0; k < 256; k++) mmpool_free(ring[k]);
  return NULL;
}

// The manifest's pause (ns) and bytes, read back.
static void manifest_facts(const char *dir, uint64_t *pause, uint64_t *bytes) {
  char path[4200];
  snprintf(path, sizeof path, "%s/manifest", dir);
  int fd = open(path, O_RDONLY);
  // struct snap_manifest: pause_ns at 40, bytes at 48 (core/snapshot.h).
  if (fd < 0 || pread(fd, pause, 8, 40) != 8 || pread(fd, bytes, 8, 48) != 8) {
    perror("snapshot_time: manifest");
    exit(1);
  }
  close(fd);
}

// Copies src to dst with 1 MiB reads and writes, then fsync: ms.
static double copy_ms(const char *src, const char *dst) {
  static char buf[1 << 20];
  double t0 = now_ms();
  int in = open(src, O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_TRUNC,
                                           0600);
  if (in < 0 || out < 0) {
    perror("snapshot_time: copy");
    exit(1);
  }
  ssize_t n;
  while ((n = read(in, buf, sizeof buf)) > 0)
    if (write(out, buf, (size_t)n) != n) {
      perror("snapshot_time: write");
      exit(1);
    }
  fsync(out);
  close(in);
  close(out);
  return now_ms() - t0;
}

static void measure(const char *dir, uint64_t mib) {
  char sd[4096], img[4300], cp[4300];
  snprintf(sd, sizeof sd, "%s/snapshot_time.%d", dir, (int)getpid());
  char opts[64];
  snprintf(opts, sizeof opts, "size=%lluM thp=%s",
           (unsigned long long)(mib * 2 + 256),
           getenv("SNAP_THP") && atoi(getenv("SNAP_THP")) ? "yes" : "no");
  pool = mmpool_open("st", opts);
  if (!pool) die("open");
  uint64_t n = (mib << 20) / BLOCK;
  for (uint64_t i = 0; i < n; i++) {
    char *b = mmpool_malloc(pool, BLOCK);
    if (!b) die("fill");
    memset(b, (int)i, BLOCK);
  }
  atomic_store(&stop, 0);
  atomic_store(&ops, 0);
  pthread_t t[2];
  int nt = getenv("SNAP_THREADS") ? atoi(getenv("SNAP_THREADS")) : 2;
  if (nt > 2) nt = 2;
  for (long i = 0; i < nt; i++) pthread_create(&t[i], NULL, worker, (void *)i);
  usleep(100000);
  double pause[ROUNDS], total[ROUNDS], mbps[ROUNDS], cpps[ROUNDS];
  double t_all = now_ms();
  long ops0 = atomic_load(&ops);
  for (int r = 0; r < ROUNDS; r++) {
    double t0 = now_ms();
    if (mmpool_snapshot(sd) != 0) die("snapshot");
    total[r] = now_ms() - t0;
    uint64_t p_ns, bytes;
    manifest_facts(sd, &p_ns, &bytes);
    pause[r] = p_ns / 1e6;
    mbps[r] = bytes / 1e6 / (total[r] / 1e3);
    snprintf(img, sizeof img, "%s/st.%d.pool", sd, r + 1);
    snprintf(cp, sizeof cp, "%s/copy", sd);
    cpps[r] = bytes / 1e6 / (copy_ms(img, cp) / 1e3);
    unlink(cp);
  }
  double secs = (now_ms() - t_all) / 1e3;
  long done = atomic_load(&ops) - ops0;
  atomic_store(&stop, 1);
  for (int i = 0; i < nt; i++) pthread_join(t[i], NULL);
  double m = median(mbps, ROUNDS), c = median(cpps, ROUNDS);
  // Relocation: the pool closed, a page mapped at its base, the snapshot
  // restored with relocate=yes (the set copied, moved, attached).
  void *base = mmpool_base(pool);
  mmpool_close(pool);
  double reloc = -1;
  if (mmap(base, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
           MAP_FIXED_NOREPLACE, -1, 0) == base) {
    double t0 = now_ms();
    if (mmpool_restore(sd, "relocate=yes") != 1) die("restore relocate=yes");
    reloc = now_ms() - t0;
    mmpool_t *r = mmpool_get("st");
    if (!r || mmpool_base(r) == base) die("not moved");
    mmpool_close(r);
    munmap(base, 4096);
  }
  printf("%llu\t%.2f\t%.1f\t%.0f\t%.0f\t%.2f\t%.0f\t%.1f\t%.0f\n",
         (unsigned long long)mib, median(pause, ROUNDS),
         median(total, ROUNDS), m, c, m / c, done / secs, reloc,
         reloc * 1024 / mib);
  fflush(stdout);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", sd);
  if (system(cmd) != 0) fprintf(stderr, "snapshot_time: cannot remove %s\n", sd);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: snapshot_time DIR [MiB ...]\n");
    return 2;
  }
  printf("# snapshot_time");
  for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
  printf("\nMiB\tpause_ms\ttotal_ms\tMBps\tcp_MBps\tratio\tops_per_s\t"
         "reloc_ms\treloc_ms_per_GiB\n");
  if (argc == 2) {
    static const uint64_t sizes[] = {16, 256, 1024, 2048};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
      measure(argv[1], sizes[i]);
  }
  for (int i = 2; i < argc; i++) measure(argv[1], strtoull(argv[i], NULL, 0));
  return 0;
}
