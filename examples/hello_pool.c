// hello_pool.c: the smallest tour of mmpool. Opens an anonymous pool, takes
// a few blocks from it, keeps one under a root key, prints what the pool
// holds, checks it and closes it. Exits non-zero if anything is not as the
// API documents it.
//
// Build against an installed mmpool (cmake --install build --prefix PREFIX;
// add PREFIX/lib/pkgconfig to PKG_CONFIG_PATH if PREFIX is not /usr):
//   cc -o hello_pool hello_pool.c $(pkg-config --cflags --libs mmpool)
// Run:
//   ./hello_pool
// In the build tree: build/examples/hello_pool
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <mmpool.h>

static int failures;

static void expect(int ok, const char *what) {
  if (!ok) {
    failures++;
    fprintf(stderr, "hello_pool: unexpected: %s (%s)\n", what,
            mmpool_last_error());
  }
}

// Formats a byte count for people: "512 B", "3.9 KiB", "64.0 MiB".
static const char *human(size_t bytes, char *buf, size_t len) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)bytes;
  unsigned u = 0;
  while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
    v /= 1024;
    u++;
  }
  if (u == 0)
    snprintf(buf, len, "%zu B", bytes);
  else
    snprintf(buf, len, "%.1f %s", v, units[u]);
  return buf;
}

static void print_stats(const char *when, mmpool_t *pool, mmpool_stats_t *st) {
  char a[32], b[32], c[32], d[32];
  expect(mmpool_stats(pool, st) == 0, "mmpool_stats failed");
  printf("%s: %zu blocks in use (%zu large), %s; mapped %s, metadata %s, "
         "free %s\n",
         when, st->in_use_blocks, st->large_blocks,
         human(st->in_use, a, sizeof a), human(st->mapped, b, sizeof b),
         human(st->metadata, c, sizeof c), human(st->free_bytes, d, sizeof d));
}

int main(void) {
  char a[32];
  printf("mmpool %d.%d.%d: hello_pool\n", MMPOOL_VERSION_MAJOR,
         MMPOOL_VERSION_MINOR, MMPOOL_VERSION_PATCH);

  // Anonymous (volatile) memory, 256 MiB of address space reserved at once;
  // pages are committed only as blocks use them.
  mmpool_t *pool = mmpool_open("demo", "anon size=256M");
  if (pool == NULL) {
    fprintf(stderr, "hello_pool: mmpool_open: %s\n", mmpool_last_error());
    return 1;
  }
  printf("pool \"%s\": base %p, capacity %s\n", mmpool_name(pool),
         mmpool_base(pool), human(mmpool_capacity(pool), a, sizeof a));
  expect(mmpool_get("demo") == pool, "mmpool_get(\"demo\") is the pool");

  // Three blocks: a small string, a zeroed array, a 1 MiB buffer.
  char *greeting = mmpool_malloc(pool, 32);
  int *numbers = mmpool_calloc(pool, 1000, sizeof *numbers);
  unsigned char *buffer = mmpool_malloc(pool, (size_t)1 << 20);
  if (greeting == NULL || numbers == NULL || buffer == NULL) {
    fprintf(stderr, "hello_pool: allocation failed: %s\n", mmpool_last_error());
    return 1;
  }
  snprintf(greeting, 32, "hello, pool");
  memset(buffer, 0xab, (size_t)1 << 20);
  int zeroed = 1;
  for (int i = 0; i < 1000; i++)
    zeroed &= numbers[i] == 0;
  expect(zeroed, "calloc'ed block is zeroed");
  printf("blocks: \"%s\" at %p, 1000 ints at %p, 1 MiB at %p\n", greeting,
         (void *)greeting, (void *)numbers, (void *)buffer);

  // Every block knows its pool and its size.
  expect(mmpool_of(greeting) == pool && mmpool_of(numbers) == pool &&
             mmpool_of(buffer + 12345) == pool,
         "mmpool_of finds the pool of every block");
  expect(mmpool_usable_size(greeting) == 32, "usable size of greeting is 32");
  expect(mmpool_usable_size(buffer) == (size_t)1 << 20,
         "usable size of buffer is 1 MiB");
  expect(((uintptr_t)greeting & 15) == 0, "blocks are 16-byte aligned");

  // A root: how a program finds its data again (in a file pool, even in a
  // later run).
  expect(mmpool_set_root(pool, 0, greeting) == 0, "set root 0");
  char *found = mmpool_get_root(pool, 0);
  expect(found == greeting, "root 0 is the greeting");
  printf("root 0 -> \"%s\"\n", found ? found : "(null)");

  mmpool_stats_t st;
  print_stats("stats", pool, &st);
  expect(st.in_use_blocks == 3, "3 blocks in use");
  expect(st.in_use >= 32 + 1000 * sizeof(int) + ((size_t)1 << 20),
         "in_use covers the 3 blocks");
  expect(st.capacity == mmpool_capacity(pool), "stats capacity");
  printf("size classes in use:\n");
  for (unsigned i = 0; i < st.nclasses && i < MMPOOL_STATS_CLASSES; i++) {
    const mmpool_class_stats_t *c = &st.classes[i];
    if (c->block_size == 0 || c->blocks_used == 0) continue;
    printf("  %6zu B: %zu used, %zu free, %zu page%s\n", c->block_size,
           c->blocks_used, c->blocks_free, c->pages, c->pages == 1 ? "" : "s");
  }

  int check = mmpool_check(pool);
  expect(check == 0, "mmpool_check finds the pool sound");
  printf("check: %s\n", check == 0 ? "ok" : mmpool_last_error());

  mmpool_free(numbers);
  print_stats("after one free", pool, &st);
  expect(st.in_use_blocks == 2, "2 blocks in use after one free");

  expect(mmpool_close(pool) == 0, "mmpool_close");
  expect(mmpool_get("demo") == NULL, "the closed pool is gone");
  printf("closed \"demo\"\n");

  if (failures != 0) {
    printf("hello_pool: %d unexpected result%s\n", failures,
           failures == 1 ? "" : "s");
    return 1;
  }
  return 0;
}
