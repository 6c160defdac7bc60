// root_attach.c: build a big structure once, attach it on every later run.
//
// The structure is a hash table of a million entries, built with
// mmpool_malloc in a pool file. Its address is the pool's root 0. A run
// first asks for the root: on the first run there is none, so it builds
// the table and sets the root; on every later run the root is there, and
// the table is ready as soon as the pool is attached (the file is mapped
// at the address it was built at, so its pointers are valid as they are).
// The two lines that matter:
//   struct table *t = mmpool_get_root(pool, 0);
//   if (!t) mmpool_set_root(pool, 0, t = build(pool));
// Each run prints how long it took from its start to a usable table, and
// an attaching run compares that with the build time the first run
// recorded in the table. Then it looks a few keys up and prints a checksum
// of the whole table, the same in every run.
//
// Build against an installed mmpool (see persistent_list.c):
//   cc -O2 -o root_attach root_attach.c $(pkg-config --cflags --libs mmpool)
// Run:
//   ./root_attach             # builds ./table.pool (80 MB), prints the time
//   ./root_attach             # attaches it: many times faster
//   rm table.pool             # start again
// In the build tree: build/examples/root_attach /tmp/table.pool
//
// Usage: root_attach [POOL-FILE [ENTRIES]]
//   POOL-FILE defaults to ./table.pool (no blanks); ENTRIES to 1000000,
//   used when the table is built.
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mmpool.h>

#define TABLE_ROOT 0
#define TABLE_MAGIC 0x656c6261546f6f50ull

struct entry {
  struct entry *next; // the bucket's chain
  uint64_t key;
  uint64_t value;
  char name[32];
};

struct table {
  uint64_t magic;
  uint64_t count;
  uint64_t nbuckets; // a power of two
  double build_ms;   // how long the first run took to build it
  struct entry **buckets;
};

static mmpool_t *pool;

static double ms_since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) * 1e3 +
         (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static uint64_t hash(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  return k;
}

static struct entry *find(const struct table *t, uint64_t key) {
  struct entry *e = t->buckets[hash(key) & (t->nbuckets - 1)];
  while (e && e->key != key)
    e = e->next;
  return e;
}

static _Noreturn void fail(const char *what) {
  fprintf(stderr, "root_attach: %s: %s\n", what, mmpool_last_error());
  exit(1);
}

// Entry i: key i * 7919 + 1, value i squared, name "entry-i".
static struct table *build(uint64_t n) {
  struct table *t = mmpool_calloc(pool, 1, sizeof *t);
  if (!t) fail("calloc");
  t->nbuckets = 1;
  while (t->nbuckets < n)
    t->nbuckets <<= 1;
  t->buckets = mmpool_calloc(pool, t->nbuckets, sizeof *t->buckets);
  if (!t->buckets) fail("calloc");
  for (uint64_t i = 0; i < n; i++) {
    struct entry *e = mmpool_malloc(pool, sizeof *e);
    if (!e) fail("malloc");
    e->key = i * 7919 + 1;
    e->value = i * i;
    snprintf(e->name, sizeof e->name, "entry-%" PRIu64, i);
    struct entry **b = &t->buckets[hash(e->key) & (t->nbuckets - 1)];
    e->next = *b;
    *b = e;
  }
  t->count = n;
  t->magic = TABLE_MAGIC;
  return t;
}

// FNV-1a over every entry, bucket by bucket: the same table gives the same
// sum wherever and whenever it is read.
static uint64_t checksum(const struct table *t, uint64_t *seen) {
  uint64_t h = 0xcbf29ce484222325ull;
  *seen = 0;
  for (uint64_t b = 0; b < t->nbuckets; b++)
    for (const struct entry *e = t->buckets[b]; e; e = e->next) {
      uint64_t words[2] = {e->key, e->value};
      const unsigned char *p = (const unsigned char *)words;
      for (size_t i = 0; i < sizeof words; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
      for (const char *c = e->name; *c; c++)
        h = (h ^ (unsigned char)*c) * 0x100000001b3ull;
      (*seen)++;
    }
  return h;
}

int main(int argc, char **argv) {
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  const char *path = argc > 1 ? argv[1] : "./table.pool";
  uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;
  if (*path == '\0' || strpbrk(path, " \t\n") || n == 0) {
    fprintf(stderr, "usage: root_attach [POOL-FILE [ENTRIES]] (a path "
                    "without blanks, ENTRIES > 0)\n");
    return 2;
  }
  char options[4200];
  if ((size_t)snprintf(options, sizeof options, "file=%s size=1G", path) >=
      sizeof options) {
    fprintf(stderr, "root_attach: pool path too long\n");
    return 2;
  }
  pool = mmpool_open("table", options);
  if (!pool) fail(path);

  struct table *t = mmpool_get_root(pool, TABLE_ROOT);
  int built = t == NULL;
  if (built) {
    t = build(n);
    if (mmpool_set_root(pool, TABLE_ROOT, t) != 0) fail("set_root");
  } else if (t->magic != TABLE_MAGIC) {
    fprintf(stderr, "root_attach: %s: root %d is not a table\n", path,
            TABLE_ROOT);
    return 1;
  }
  double ready_ms = ms_since(&t0); // from start to a usable table
  if (built) {
    t->build_ms = ready_ms;
    printf("built %" PRIu64 " entries in %.1f ms\n", t->count, ready_ms);
  } else {
    printf("attached %" PRIu64 " entries in %.1f ms (built in %.1f ms by "
           "the first run: %.0fx faster)\n",
           t->count, ready_ms, t->build_ms,
           t->build_ms / (ready_ms > 0.001 ? ready_ms : 0.001));
  }

  for (uint64_t i = 0; i < t->count; i += t->count / 3 + 1) {
    const struct entry *e = find(t, i * 7919 + 1);
    if (!e || e->value != i * i) {
      fprintf(stderr, "root_attach: entry %" PRIu64 " is missing\n", i);
      return 1;
    }
    printf("key %" PRIu64 ": %s = %" PRIu64 "\n", e->key, e->name, e->value);
  }
  uint64_t seen, sum = checksum(t, &seen);
  printf("checksum %016" PRIx64 " over %" PRIu64 " entries\n", sum, seen);
  // Writes the pool out, marks the file clean and unmaps it.
  if (mmpool_close(pool) != 0) fail("close");
  return 0;
}
