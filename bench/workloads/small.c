/* small: many small short-lived objects. Each thread, SCALE*1000 times,
 * allocates a batch of 32 blocks of 8..256 bytes, fills them, sums them
 * and frees them in a shuffled order. */
#include "wl.h"

typedef struct { int id; long n; uint64_t sum; } arg_t;

static void *work(void *p) {
  arg_t *a = p;
  uint64_t s = 0x1234 + (uint64_t)a->id, sum = 0;
  unsigned char *b[32];
  size_t sz[32];
  for (long r = 0; r < a->n; r++) {
    for (int i = 0; i < 32; i++) {
      sz[i] = 8 + wl_rand(&s) % 249;
      b[i] = malloc(sz[i]);
      if (!b[i]) WL_FAIL("small: malloc");
      memset(b[i], (int)(sz[i] & 0xff), sz[i]);
    }
    for (int i = 0; i < 32; i++) {
      int j = (int)((i * 7 + r) % 32);
      if (b[j][0] != (unsigned char)(sz[j] & 0xff) ||
          b[j][sz[j] - 1] != (unsigned char)(sz[j] & 0xff))
        WL_FAIL("small: block content changed");
      sum += b[j][sz[j] / 2] + sz[j];
    }
    for (int i = 0; i < 32; i++) free(b[(i * 5 + 3) % 32]);
  }
  a->sum = sum;
  return NULL;
}

int main(int argc, char **argv) {
  int t; long scale;
  wl_args(argc, argv, &t, &scale, 100);
  arg_t *a = calloc((size_t)t, sizeof *a);
  for (int i = 0; i < t; i++) { a[i].id = i; a[i].n = scale * 1000 / t; }
  wl_run_threads(t, work, a, sizeof *a);
  uint64_t h = 0;
  for (int i = 0; i < t; i++) {
    /* recompute the expected sum without allocating */
    uint64_t s = 0x1234 + (uint64_t)i, e = 0;
    for (long r = 0; r < a[i].n; r++)
      for (int k = 0; k < 32; k++) {
        size_t z = 8 + wl_rand(&s) % 249;
        e += (z & 0xff) + z;
      }
    if (e != a[i].sum) WL_FAIL("small: sum %llu != %llu",
                               (unsigned long long)a[i].sum, (unsigned long long)e);
    h = wl_mix(h, e);
  }
  printf("OK small threads=%d scale=%ld checksum=%016llx\n", t, scale,
         (unsigned long long)h);
  free(a);
  return 0;
}
