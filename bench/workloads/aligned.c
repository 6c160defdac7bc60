/* aligned: aligned allocations. Each thread, SCALE*1000 times, allocates
 * a block of 8..4096 bytes aligned to 16..65536 bytes with posix_memalign,
 * aligned_alloc or memalign in turn, keeping 256 live; checks the alignment
 * and the contents. */
#include "wl.h"
#include <malloc.h>

typedef wl_arg arg_t;

static void *work(void *p) {
  arg_t *a = p;
  uint64_t s = 11 + (uint64_t)a->id, sum = 0;
  unsigned char *live[256] = {0}; size_t lsz[256] = {0};
  for (long i = 0; i < a->n; i++) {
    int k = (int)(wl_rand(&s) % 256);
    if (live[k]) {
      if (live[k][0] != (unsigned char)lsz[k] || live[k][lsz[k] - 1] != (unsigned char)lsz[k])
        WL_FAIL("aligned: content");
      free(live[k]);
    }
    size_t al = (size_t)16 << (wl_rand(&s) % 13); /* 16 .. 64 KiB */
    size_t sz = 8 + wl_rand(&s) % 4089;
    void *q = NULL;
    switch (i % 3) {
    case 0: if (posix_memalign(&q, al, sz)) q = NULL; break;
    case 1: sz = (sz + al - 1) / al * al; q = aligned_alloc(al, sz); break;
    default: q = memalign(al, sz); break;
    }
    if (!q) WL_FAIL("aligned: allocation of %zu aligned %zu", sz, al);
    if ((uintptr_t)q % al) WL_FAIL("aligned: %p not aligned to %zu", q, al);
    memset(q, (int)(sz & 0xff), sz);
    live[k] = q; lsz[k] = sz; sum += al + sz;
  }
  for (int k = 0; k < 256; k++) free(live[k]);
  a->sum = sum;
  return NULL;
}

int main(int argc, char **argv) {
  return wl_main_split("aligned", argc, argv, 300, 1000, work);
}
