/* liveset: a live set that rises and falls. 8 cycles: each thread
 * allocates up to SCALE*1000/THREADS blocks of 16..8192 bytes, then frees
 * them all but 1 in 64; RSS is read at each low point. Prints
 * rss_high_kib (largest high), rss_low_kib (last low point): memory
 * returned to the OS between peaks, and rss_idle_kib: the last low point
 * after an idle period (wl_rss_after_idle_kib). */
#include "wl.h"

typedef struct { int id; long n; uint64_t sum; pthread_barrier_t *bar; } arg_t;
static long rss_high, rss_low, rss_idle;

static void *work(void *p) {
  arg_t *a = p;
  uint64_t s = 29 + (uint64_t)a->id, sum = 0;
  unsigned char **b = calloc((size_t)a->n, sizeof *b);
  size_t *sz = calloc((size_t)a->n, sizeof *sz);
  for (int cyc = 0; cyc < 8; cyc++) {
    for (long i = 0; i < a->n; i++) {
      if (b[i]) continue;
      sz[i] = 16 + wl_rand(&s) % 8177;
      b[i] = malloc(sz[i]);
      if (!b[i]) WL_FAIL("liveset: malloc");
      memset(b[i], (int)(i & 0xff), sz[i]);
    }
    if (pthread_barrier_wait(a->bar) == PTHREAD_BARRIER_SERIAL_THREAD) {
      long r = wl_rss_kib(); if (r > rss_high) rss_high = r;
    }
    pthread_barrier_wait(a->bar);
    for (long i = 0; i < a->n; i++) {
      if (b[i][0] != (unsigned char)(i & 0xff) || b[i][sz[i] - 1] != (unsigned char)(i & 0xff))
        WL_FAIL("liveset: content");
      if ((i + cyc) % 64) { sum += sz[i]; free(b[i]); b[i] = NULL; }
    }
    if (pthread_barrier_wait(a->bar) == PTHREAD_BARRIER_SERIAL_THREAD) {
      rss_low = wl_rss_kib();
      if (cyc == 7) rss_idle = wl_rss_after_idle_kib();
    }
    pthread_barrier_wait(a->bar);
  }
  for (long i = 0; i < a->n; i++) free(b[i]);
  free(b); free(sz);
  a->sum = sum;
  return NULL;
}

int main(int argc, char **argv) {
  int t; long scale;
  wl_args(argc, argv, &t, &scale, 100);
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, (unsigned)t);
  arg_t *a = calloc((size_t)t, sizeof *a);
  for (int i = 0; i < t; i++) { a[i].id = i; a[i].n = scale * 1000 / t; a[i].bar = &bar; }
  wl_run_threads(t, work, a, sizeof *a);
  uint64_t h = 0;
  for (int i = 0; i < t; i++) { if (!a[i].sum) WL_FAIL("liveset: nothing freed"); h = wl_mix(h, a[i].sum); }
  printf("OK liveset threads=%d scale=%ld checksum=%016llx rss_high_kib=%ld "
         "rss_low_kib=%ld rss_idle_kib=%ld\n", t, scale, (unsigned long long)h,
         rss_high, rss_low, rss_idle);
  free(a);
  return 0;
}
