/* frag: fragmenting churn, then the resident memory and what malloc_trim
 * gives back. SCALE*1000 blocks of 16..512 bytes are allocated (interleaved
 * with a few of 4..16 KiB), then 15 of every 16 are freed, leaving a sparse
 * live set; RSS is read after the frees, after an idle period
 * (wl_rss_after_idle_kib) and after malloc_trim(0). Prints rss_peak_kib,
 * rss_frag_kib, rss_idle_kib, rss_trim_kib. */
#include "wl.h"
#include <malloc.h>

int main(int argc, char **argv) {
  int t; long scale;
  wl_args(argc, argv, &t, &scale, 1000);
  long n = scale * 1000;
  unsigned char **b = malloc((size_t)n * sizeof *b);
  size_t *sz = malloc((size_t)n * sizeof *sz);
  if (!b || !sz) WL_FAIL("frag: malloc");
  uint64_t s = 23, sum = 0;
  for (long i = 0; i < n; i++) {
    sz[i] = i % 64 == 7 ? 4096 + wl_rand(&s) % 12288 : 16 + wl_rand(&s) % 497;
    b[i] = malloc(sz[i]);
    if (!b[i]) WL_FAIL("frag: malloc");
    memset(b[i], (int)(i & 0xff), sz[i]);
  }
  long peak = wl_rss_kib();
  for (long i = 0; i < n; i++)
    if (i % 16) { free(b[i]); b[i] = NULL; }
  long fragd = wl_rss_kib();
  long idle = wl_rss_after_idle_kib();
  malloc_trim(0);
  long trimmed = wl_rss_kib();
  for (long i = 0; i < n; i += 16) {
    if (b[i][0] != (unsigned char)(i & 0xff) || b[i][sz[i] - 1] != (unsigned char)(i & 0xff))
      WL_FAIL("frag: content");
    sum += sz[i];
    free(b[i]);
  }
  free(b); free(sz);
  printf("OK frag threads=%d scale=%ld checksum=%016llx rss_peak_kib=%ld "
         "rss_frag_kib=%ld rss_idle_kib=%ld rss_trim_kib=%ld\n", t, scale,
         (unsigned long long)sum, peak, fragd, idle, trimmed);
  return 0;
}
