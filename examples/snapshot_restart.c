// snapshot_restart.c: keep a running program's state with snapshots, and
// restart from the last one.
//
// The program's state is a table of counters in an anonymous pool named
// "state", found through the pool's root 0. It works in steps: each step
// changes every counter. Every 10 steps it takes a snapshot of its pools
// into DIR with mmpool_snapshot: the program pauses only while a copy of
// itself is made; the copy writes the snapshot while the program goes on.
// When it starts and DIR holds a snapshot, it restarts from it with
// mmpool_restore instead of starting over: the pool comes back at its
// address, its root gives the table, and the work goes on from the step
// the snapshot was taken at. The lines that matter:
//   if (mmpool_restore(dir, NULL) > 0) pool = mmpool_get("state");
//   ...
//   mmpool_snapshot(dir);
//
// Build against an installed mmpool (see persistent_list.c):
//   cc -O2 -o snapshot_restart snapshot_restart.c $(pkg-config --cflags
//      --libs mmpool)                                      (one line)
// Run:
//   ./snapshot_restart snap 35    # steps 1..35, snapshots at 10, 20, 30
//   ./snapshot_restart snap 50    # restarts at step 30: steps 31..50
//   mmpool info snap              # the snapshot: serial, pools, pause
// In the build tree: build/examples/snapshot_restart /tmp/snap 35
//
// Usage: snapshot_restart DIR STEPS [ADDR]
//   Works until step STEPS (from the snapshot's step when there is one).
//   Prints one line per snapshot, and at the end the step reached and a
//   checksum of the table that depends only on that step.
//   ADDR (hexadecimal): before restoring, map a page there, as a library
//   loaded at the snapshot's address would be; the restore then asks for
//   relocation (relocate=yes): the pool is mapped elsewhere and every
//   pointer into it moved (under the preload library, MMPOOL_LOG=info says
//   how many words changed; `mmpool relocate` prints it too).
//   Without relocate=yes the restore would fail with EEXIST, naming the
//   mapping in the way.
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <mmpool.h>

#define ROOT 0
#define NCOUNTERS 100000
#define MAGIC 0x7461745374696e75ull

struct table {
  uint64_t magic;
  uint64_t step;       // the last step done
  uint64_t *counters;  // NCOUNTERS, a block of its own
};

static void step(struct table *t) {
  t->step++;
  for (uint64_t i = 0; i < NCOUNTERS; i++)
    t->counters[i] = t->counters[i] * 6364136223846793005ull + i + t->step;
}

static uint64_t checksum(const struct table *t) {
  uint64_t s = t->step;
  for (uint64_t i = 0; i < NCOUNTERS; i++) s = s * 31 + t->counters[i];
  return s;
}

static int fail(const char *what) {
  fprintf(stderr, "snapshot_restart: %s: %s\n", what, mmpool_last_error());
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: snapshot_restart DIR STEPS [ADDR]\n");
    return 2;
  }
  const char *dir = argv[1];
  uint64_t steps = strtoull(argv[2], NULL, 10);
  const char *options = NULL;
  if (argc == 4) {
    void *at = (void *)(uintptr_t)strtoull(argv[3], NULL, 16);
    if (mmap(at, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
             MAP_FIXED_NOREPLACE, -1, 0) != at) {
      perror("snapshot_restart: mmap at ADDR");
      return 1;
    }
    if (mmpool_restore(dir, NULL) >= 0 || errno != EEXIST) {
      fprintf(stderr, "snapshot_restart: the restore should find its base "
              "taken\n");
      return 1;
    }
    printf("without relocation: %s\n", mmpool_last_error());
    options = "relocate=yes";
  }
  mmpool_t *pool;
  struct table *t;
  int n = mmpool_restore(dir, options);
  if (n > 0) {
    pool = mmpool_get("state");
    t = pool ? mmpool_get_root(pool, ROOT) : NULL;
    if (!t || t->magic != MAGIC) {
      fprintf(stderr, "snapshot_restart: %s holds no table\n", dir);
      return 1;
    }
    printf("restarted from the snapshot in %s at step %" PRIu64 "%s\n", dir,
           t->step, options ? " (moved)" : "");
  } else if (errno == ENOENT) {
    pool = mmpool_open("state", "size=1G");
    if (!pool) return fail("open");
    t = mmpool_malloc(pool, sizeof *t);
    if (!t) return fail("malloc");
    t->magic = MAGIC;
    t->step = 0;
    t->counters = mmpool_calloc(pool, NCOUNTERS, sizeof *t->counters);
    if (!t->counters) return fail("calloc");
    if (mmpool_set_root(pool, ROOT, t) != 0) return fail("set_root");
    printf("started afresh\n");
  } else {
    return fail("restore");
  }
  while (t->step < steps) {
    step(t);
    if (t->step % 10 == 0) {
      if (mmpool_snapshot(dir) != 0) return fail("snapshot");
      printf("snapshot at step %" PRIu64 "\n", t->step);
    }
  }
  printf("step %" PRIu64 ", checksum %016" PRIx64 "\n", t->step,
         checksum(t));
  return 0;
}
