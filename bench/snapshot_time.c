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
//   new_ratio the first snapshot's MBps over its cp_MBps: images made as
//             new files (the directory is empty);
//   inplace_ratio  the same, median of the last 3: each image is the one
//             of the snapshot before last, rewritten in place (the first
//             two have none to rewrite);
//   reloc_ms  then the pool is closed, a page mapped at its base, and the
//             last snapshot restored with relocate=yes: copied, every
//             pointer moved, attached (one run), and that per GiB.
// ops/s is what the two threads managed during the snapshots: they are
// held only during the pauses. SNAP_THREADS=0 (or 1) runs without (or with
// one) allocating thread; SNAP_THP=1 opens the pool with thp=yes
// (transparent huge pages: the copy of the page tables, the pause, is then
// one entry per 2 MiB).
// One line per size, tab-separated, after a header line with the command.
// These snapshots are whole (snapshot-incremental=no), as they were before
// incremental snapshots: the writer's throughput is against cp.
//
// snapshot_time --incremental DIR [MiB ...] (16, 256 and 1024 by default)
// measures incremental snapshots instead. Per size, with a heap of
// 256-byte blocks (no other thread):
//   - the cost of the tracking on the program: a loop that writes one byte
//     in every 4 KiB page of the heap right after a snapshot, whole
//     without tracking (the copy of the process leaves every page write-
//     protected: a minor fault each) and then with it (userfaultfd write-
//     protect as well), and the same loop once more (no fault): ns/page;
//   - the time of mmpool_restore of the last snapshot (an image and three
//     deltas of 10 %), in a child: restore_ms, the same on both lines;
//   - for 1 % and 10 % of the 4 KiB pages dirtied between snapshots (one
//     byte in a block of each page picked at random), 3 snapshots whole
//     (first, before anything was registered, after two more that give
//     the hidden images their page cache) and 3 incremental (after a
//     whole one that starts the tracking and the chain of deltas), medians:
//     pause, time, bytes written, and the incremental time over the whole
//     one. An incremental snapshot writes a delta: the pages dirtied in one
//     interval, the header and the descriptors.
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
#include <sys/wait.h>
#include <unistd.h>
#include <sys/mman.h>

#include "mmpool.h"
#include "dirty.h"     // DIRTY_CHAIN, dirty_why_text
#include "snapshot.h"  // the static core: snapshot_set_incremental
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
  snapshot_set_incremental(0);
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
  double inplace[ROUNDS - 2];
  for (int r = 2; r < ROUNDS; r++) inplace[r - 2] = mbps[r] / cpps[r];
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
  printf("%llu\t%.2f\t%.1f\t%.0f\t%.0f\t%.2f\t%.0f\t%.1f\t%.0f\t%.2f\t%.2f\n",
         (unsigned long long)mib, median(pause, ROUNDS), median(total, ROUNDS),
         m, c, m / c, done / secs, reloc, reloc * 1024 / mib, mbps[0] / cpps[0],
         median(inplace, ROUNDS - 2));
  fflush(stdout);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", sd);
  if (system(cmd) != 0) fprintf(stderr, "snapshot_time: cannot remove %s\n", sd);
}


// ---------------------------------------------------------------------------
// --incremental

static char **blocks;
static uint64_t nblocks;

static void snap_facts(const char *sd, double *ms, struct snap_manifest *m) {
  double t0 = now_ms();
  if (mmpool_snapshot(sd) != 0) die("snapshot");
  *ms = now_ms() - t0;
  if (snapshot_read(sd, m) != 0) die("manifest");
}

// One byte in a block of pct % of the heap's 4 KiB pages, picked at random.
static void dirty(double pct, uint64_t *rng) {
  uint64_t per_page = 4096 / BLOCK, pages = nblocks / per_page;
  uint64_t n = (uint64_t)(pages * pct / 100);
  for (uint64_t i = 0; i < n; i++) {
    *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
    blocks[(*rng >> 11) % nblocks][7]++;
  }
}

// ns per 4 KiB page of a loop writing one byte in each page of the heap.
static double touch_ns(void) {
  char *lo = blocks[0], *hi = blocks[0];
  for (uint64_t i = 0; i < nblocks; i++) {
    if (blocks[i] < lo) lo = blocks[i];
    if (blocks[i] > hi) hi = blocks[i];
  }
  uintptr_t a = ((uintptr_t)lo + 4095) & ~(uintptr_t)4095;
  uint64_t pages = 0;
  double t0 = now_ms();
  for (; a + 4096 <= (uintptr_t)hi; a += 4096, pages++)
    ((volatile char *)a)[8]++;
  return (now_ms() - t0) * 1e6 / (double)pages;
}

static void measure_incr(const char *dir, uint64_t mib) {
  char sd[4096], opts[64];
  snprintf(sd, sizeof sd, "%s/snapshot_incr.%d", dir, (int)getpid());
  snprintf(opts, sizeof opts, "size=%lluM thp=%s",
           (unsigned long long)(mib * 2 + 256),
           getenv("SNAP_THP") && atoi(getenv("SNAP_THP")) ? "yes" : "no");
  pool = mmpool_open("si", opts);
  if (!pool) die("open");
  nblocks = (mib << 20) / BLOCK;
  blocks = malloc(nblocks * sizeof *blocks);
  if (!blocks) die("blocks");
  for (uint64_t i = 0; i < nblocks; i++) {
    blocks[i] = mmpool_malloc(pool, BLOCK);
    if (!blocks[i]) die("fill");
    memset(blocks[i], (int)i, BLOCK);
  }
  struct snap_manifest m;
  double ms;
  uint64_t rng = 12345;
  static const double pcts[] = {1, 10};
  // [pct][incremental][round]
  double t[2][2][ROUNDS], pz[2][2][ROUNDS], by[2][2][ROUNDS], img = 0;
  double plain = 0, warm = 0, tracked = 0;
  // Whole snapshots first, in a process that never registered a range:
  // the first write to each page after one, then the rounds.
  for (int incr = 0; incr < 2; incr++) {
    snapshot_set_incremental(incr);
    snap_facts(sd, &ms, &m);
    if (!incr) {
      plain = touch_ns();
      warm = touch_ns();
      // The steady state: whole images overwrite hidden ones that have
      // their page cache. The first images of a process are written past
      // the cache (new files, core/delta.c), and the first rewrite of each
      // takes its cache pages (1.7 s at 1 GiB here instead of 0.4).
      snap_facts(sd, &ms, &m);
      snap_facts(sd, &ms, &m);
    } else {
      tracked = touch_ns();
    }
    for (int k = 0; k < 2; k++) {
      if (incr) {
        // A new chain: one whole image with nothing tracked, then one that
        // starts the tracking (three deltas of 10 % stay inside a chain's
        // quarter of the image).
        snapshot_set_incremental(0);
        snap_facts(sd, &ms, &m);
        snapshot_set_incremental(1);
      } else {
        dirty(pcts[k], &rng);  // the interval before the first round
      }
      snap_facts(sd, &ms, &m);
      for (int r = 0; r < 3; r++) {
        dirty(pcts[k], &rng);
        snap_facts(sd, &t[k][incr][r], &m);
        // Too scattered for a delta (more than DELTA_RECS_MAX records:
        // 10 % of 2 GiB) is written whole, by design: said, and measured
        // as it is.
        if (incr && !m.incremental && m.why_full == DIRTY_CHAIN)
          fprintf(stderr, "snapshot_time: %llu MiB at %.0f %%: written whole "
                  "(%s)\n", (unsigned long long)mib, pcts[k],
                  dirty_why_text(DIRTY_CHAIN));
        else if (incr && !m.incremental)
          die("not incremental");
        pz[k][incr][r] = m.pause_ns / 1e6;
        by[k][incr][r] = (double)m.bytes;
        img = (double)m.image_bytes;
      }
    }
  }
  // The last snapshot is an image and 3 deltas of 10 %: restored in a
  // child (its pool closed first), which maps the image and applies them
  // at attach.
  double restore = -1;
  int rp[2];
  if (pipe(rp) == 0) {
    pid_t c = fork();
    if (c == 0) {
      mmpool_close(pool);
      double t0 = now_ms();
      double d = mmpool_restore(sd, NULL) == 1 ? now_ms() - t0 : -1;
      if (write(rp[1], &d, sizeof d) != sizeof d) _exit(1);
      _exit(0);
    }
    if (c > 0 && read(rp[0], &restore, sizeof restore) != sizeof restore)
      restore = -1;
    if (c > 0) waitpid(c, NULL, 0);
    close(rp[0]);
    close(rp[1]);
  }
  for (int k = 0; k < 2; k++) {
    double tf = median(t[k][0], 3), ti = median(t[k][1], 3);
    printf("%llu\t%.0f\t%.2f\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.3f\t"
           "%.0f\t%.0f\t%.0f\t%.1f\n",
           (unsigned long long)mib, pcts[k], median(pz[k][0], 3),
           median(pz[k][1], 3), tf, ti, median(by[k][0], 3) / 1048576,
           median(by[k][1], 3) / 1048576, img / 1048576, ti / tf, plain,
           tracked, warm, restore);
  }
  fflush(stdout);
  mmpool_close(pool);
  free(blocks);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", sd);
  if (system(cmd) != 0) fprintf(stderr, "snapshot_time: cannot remove %s\n", sd);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: snapshot_time [--incremental] DIR [MiB ...]\n");
    return 2;
  }
  if (!strcmp(argv[1], "--incremental")) {
    if (argc < 3) {
      fprintf(stderr, "usage: snapshot_time --incremental DIR [MiB ...]\n");
      return 2;
    }
    printf("# snapshot_time");
    for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
    printf("\nMiB\tdirty_pct\tpause_full_ms\tpause_incr_ms\tfull_ms\t"
           "incr_ms\tfull_MiB\tincr_MiB\timage_MiB\tincr_over_full\t"
           "first_write_ns\tfirst_write_tracked_ns\tsecond_write_ns\trestore_ms\n");
    if (argc == 3) {
      static const uint64_t sizes[] = {16, 256, 1024};
      for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        measure_incr(argv[2], sizes[i]);
    }
    for (int i = 3; i < argc; i++)
      measure_incr(argv[2], strtoull(argv[i], NULL, 0));
    return 0;
  }
  printf("# snapshot_time");
  for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
  printf("\nMiB\tpause_ms\ttotal_ms\tMBps\tcp_MBps\tratio\tops_per_s\t"
         "reloc_ms\treloc_ms_per_GiB\tnew_ratio\tinplace_ratio\n");
  if (argc == 2) {
    static const uint64_t sizes[] = {16, 256, 1024, 2048};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
      measure(argv[1], sizes[i]);
  }
  for (int i = 2; i < argc; i++) measure(argv[1], strtoull(argv[i], NULL, 0));
  return 0;
}
