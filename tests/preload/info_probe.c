// info_probe.c: glibc's introspection calls under the preload library
// cover every open pool (issue 12, item 6). Run with two pools (a: blocks
// of 64 KiB and more; default: the rest):
//   - mallinfo2 sums the pools' figures (each pool's mmpool_stats);
//   - malloc_info has one <pool> element per pool;
//   - malloc_stats writes to fd 2 as it is at the call: after dup2 of a
//     pipe onto fd 2, the lines (one per pool) come through the pipe.
// Prints "ok" and exits 0, or "FAIL ..." and exits 1.
#define _GNU_SOURCE
#include <malloc.h>
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" // mallinfo
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mmpool.h"

static int failed;
#define CHECK(c, ...) \
  do { if (!(c)) { printf("FAIL " __VA_ARGS__); printf("\n"); failed = 1; } } while (0)

int main(void) {
  void *small = malloc(100), *big = malloc(256 << 10);
  mmpool_t *a = mmpool_get("a"), *d = mmpool_get("default");
  CHECK(a && d, "pools a and default are not both open");
  if (!a || !d) return 1;
  CHECK(mmpool_of(big) == a && mmpool_of(small) == d, "blocks not routed");
  mmpool_stats_t sa, sd;
  struct mallinfo2 m = mallinfo2();
  mmpool_stats(a, &sa);
  mmpool_stats(d, &sd);
  CHECK(m.uordblks == sa.in_use + sd.in_use, "mallinfo2 in use %zu, pools "
        "%zu + %zu", m.uordblks, sa.in_use, sd.in_use);
  CHECK(m.arena == sa.mapped + sd.mapped, "mallinfo2 arena %zu, pools %zu + "
        "%zu", m.arena, sa.mapped, sd.mapped);
  CHECK(m.ordblks == sa.in_use_blocks + sd.in_use_blocks, "mallinfo2 blocks");
  struct mallinfo m1 = mallinfo();
  CHECK((size_t)m1.uordblks == m.uordblks, "mallinfo in use %d, mallinfo2 %zu",
        m1.uordblks, m.uordblks);

  char *xml = NULL;
  size_t xl = 0;
  FILE *f = open_memstream(&xml, &xl);
  CHECK(malloc_info(0, f) == 0, "malloc_info failed");
  fclose(f);
  CHECK(strstr(xml, "<pool name=\"a\">") && strstr(xml, "<pool name=\"default\""),
        "malloc_info: %s", xml);
  free(xml);

  int pfd[2];
  if (pipe(pfd)) return 1;
  int saved = dup(2);
  dup2(pfd[1], 2);
  close(pfd[1]);
  malloc_stats();
  dup2(saved, 2);  // closes the pipe's write end held as fd 2
  close(saved);
  char buf[4096];
  ssize_t n = read(pfd[0], buf, sizeof buf - 1);
  buf[n > 0 ? n : 0] = 0;
  CHECK(strstr(buf, "pool a:") && strstr(buf, "pool default (default pool):"),
        "malloc_stats wrote '%s' to the pipe", buf);
  free(small), free(big);
  if (!failed) printf("ok\n");
  return failed;
}
