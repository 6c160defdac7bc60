// unmodified_heap.c: an ordinary C program, with no mmpool call in it,
// whose whole heap lives in a pool file.
//
// It builds a binary search tree of pseudo-random keys with malloc, walks
// it, frees it and prints a summary. Nothing in it knows of mmpool: the
// preload library takes its malloc, and the configuration (environment
// variables, docs/configuration.md) puts the default pool, which serves
// every allocation, in a file in mode=shared. When the program exits, the
// preload library writes the pool out and marks the file clean, so the
// next run attaches it as it is (no `recover`) and the header's generation
// counts the attaches. The tree itself is not found again: the program
// keeps no root (examples/root_attach.c does); blocks a run does not free
// (here: the C library's stdout buffer) stay allocated in the file.
//
// Build (no mmpool header, no -lmmpool):
//   cc -O2 -o unmodified_heap unmodified_heap.c
// Run it twice on one pool file, then look at the file:
//   export MMPOOL_CONFIG='pool heap file=heap.pool size=1G; default heap'
//   mmpool run -- ./unmodified_heap          # creates heap.pool
//   MMPOOL_STATS=1 mmpool run -- ./unmodified_heap   # attaches it again
//   mmpool info heap.pool && mmpool check heap.pool
//   rm heap.pool                             # start again
// (`mmpool run` sets LD_PRELOAD to the preload library; by hand:
// LD_PRELOAD=PREFIX/lib/libmmpool-preload.so ./unmodified_heap.)
// A run that dies (a signal, abort) leaves the file marked unclean: the
// next run is refused until the pool statement says `recover`.
//
// Usage: unmodified_heap [KEYS]   (default 200000)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct node {
  struct node *left, *right;
  uint64_t key;
  unsigned count; // times the key was inserted
};

static uint64_t rng = 88172645463325252ull;

static uint64_t next_key(void) { // xorshift64
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng % 1000000;
}

// Inserts key; returns 1 when it is new.
static int insert(struct node **at, uint64_t key) {
  while (*at) {
    if (key == (*at)->key) {
      (*at)->count++;
      return 0;
    }
    at = key < (*at)->key ? &(*at)->left : &(*at)->right;
  }
  struct node *n = malloc(sizeof *n);
  if (!n) {
    perror("malloc");
    exit(1);
  }
  *n = (struct node){NULL, NULL, key, 1};
  *at = n;
  return 1;
}

// In-order walk: a checksum that depends on the order of the keys.
static uint64_t walk(const struct node *n, uint64_t sum, unsigned depth,
                     unsigned *height) {
  if (!n) return sum;
  if (depth > *height) *height = depth;
  sum = walk(n->left, sum, depth + 1, height);
  sum = sum * 31 + n->key * n->count;
  return walk(n->right, sum, depth + 1, height);
}

static void destroy(struct node *n) {
  if (!n) return;
  destroy(n->left);
  destroy(n->right);
  free(n);
}

int main(int argc, char **argv) {
  long keys = argc > 1 ? atol(argv[1]) : 200000;
  struct node *root = NULL;
  long distinct = 0;
  for (long i = 0; i < keys; i++)
    distinct += insert(&root, next_key());
  unsigned height = 0;
  uint64_t sum = walk(root, 0, 1, &height);
  printf("%ld keys, %ld distinct, tree height %u, checksum %016llx\n", keys,
         distinct, height, (unsigned long long)sum);
  destroy(root);
  return 0;
}
