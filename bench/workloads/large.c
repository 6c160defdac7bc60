/* large: large blocks (64 KiB .. 64 MiB) with threads. Each thread, SCALE
 * times, allocates a block of a log-uniform size in 64 KiB .. 64 MiB (at
 * most 8 live per thread), writes one byte per 4 KiB page, checks and
 * frees the block it replaces. */
#include "wl.h"

typedef wl_arg arg_t;

static void *work(void *p) {
  arg_t *a = p;
  uint64_t s = 17 + (uint64_t)a->id, sum = 0;
  unsigned char *live[8] = {0}; size_t lsz[8] = {0};
  for (long i = 0; i < a->n; i++) {
    int k = (int)(i % 8);
    if (live[k]) {
      for (size_t o = 0; o < lsz[k]; o += 4096)
        if (live[k][o] != (unsigned char)(o >> 12)) WL_FAIL("large: content");
      free(live[k]);
    }
    int sh = 16 + (int)(wl_rand(&s) % 10);          /* 64 KiB .. 32 MiB band */
    size_t sz = ((size_t)1 << sh) + wl_rand(&s) % ((size_t)1 << sh);
    live[k] = malloc(sz); lsz[k] = sz;
    if (!live[k]) WL_FAIL("large: malloc(%zu)", sz);
    for (size_t o = 0; o < sz; o += 4096) live[k][o] = (unsigned char)(o >> 12);
    sum += sz;
  }
  for (int k = 0; k < 8; k++) free(live[k]);
  a->sum = sum;
  return NULL;
}

int main(int argc, char **argv) {
  return wl_main_split("large", argc, argv, 400, 1, work);
}
