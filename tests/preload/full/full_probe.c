// full_probe.c: full=fallback under the preload library (issue 12, item 4).
// Run with a configuration that routes blocks of 64 KiB and more to a pool
// that cannot serve them; every call must still return a block, from the
// default pool, with errno untouched. argv[1] picks the case:
//   tiny    (pool tiny size=1M, route size>=64K -> tiny) malloc fills tiny
//           and goes on in the default pool; calloc; realloc of a block of
//           tiny beyond tiny's room moves it, bytes and all, to the default
//           pool; aligned_alloc, posix_memalign, memalign with an alignment
//           tiny cannot give (EINVAL there); valloc, pvalloc
//   fork    (a shared file pool f, route size>=64K -> f) the same calls
//           (realloc aside) in a fork child, which has its own copy of f:
//           they are served by f, and the child's stores stay its own
//   emergency  (pool tiny size=1M, route size>=64K -> tiny, the default
//           pool d of 2M) tiny full, d full too: the blocks come from the
//           emergency pool "mmpool.emergency", for malloc, calloc, realloc
//           and the aligned calls
//   fill N  allocates N MiB in blocks of 100 KiB (route to a file pool on a
//           small file system: ENOSPC, or EFBIG under RLIMIT_FSIZE), writes
//           every byte, then checks them
// Prints "ok" and exits 0, or names the first failure and exits 1.
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mmpool.h"

static int failed;

static const char *pool_name(const void *p) {
  mmpool_t *h = p ? mmpool_of(p) : NULL;
  return h ? mmpool_name(h) : "(none)";
}

static void expect(const char *what, const void *p, const char *pool) {
  if (!p) {
    printf("FAIL %s: NULL (errno %d)\n", what, errno);
    failed = 1;
  } else if (pool && strcmp(pool_name(p), pool) != 0) {
    printf("FAIL %s: in pool %s, not %s\n", what, pool_name(p), pool);
    failed = 1;
  }
}

#define K64 ((size_t)64 << 10)
#define MIB ((size_t)1 << 20)

// The calls a pool that cannot serve must send elsewhere (dflt: the pool
// they must land in).
static void calls(const char *dflt) {
  errno = 1234;
  void *a = malloc(K64 * 3);
  expect("malloc", a, dflt);
  if (errno != 1234) printf("FAIL malloc: errno changed to %d\n", errno), failed = 1;
  unsigned char *c = calloc(1, K64 * 2);
  expect("calloc", c, dflt);
  for (size_t i = 0; c && i < K64 * 2; i++)
    if (c[i]) {
      printf("FAIL calloc: byte %zu is not zero\n", i);
      failed = 1;
      break;
    }
  void *al = aligned_alloc(MIB, K64);
  expect("aligned_alloc", al, dflt);
  if (al && (uintptr_t)al % MIB) printf("FAIL aligned_alloc: misaligned\n"), failed = 1;
  void *pm = NULL;
  int r = posix_memalign(&pm, MIB, K64 * 2);
  if (r) printf("FAIL posix_memalign: %d\n", r), failed = 1;
  else expect("posix_memalign", pm, dflt);
  void *m = memalign(MIB, K64);
  expect("memalign", m, dflt);
  void *v = valloc(2 * MIB);
  expect("valloc", v, dflt);
  void *pv = pvalloc(2 * MIB);
  expect("pvalloc", pv, dflt);
  free(a), free(c), free(al), free(pm), free(m), free(v), free(pv);
}

static int tiny(void) {
  // A large block in tiny, then tiny filled up.
  unsigned char *b = malloc(K64 * 3);
  expect("malloc in tiny", b, "tiny");
  if (!b) return 1;
  for (size_t i = 0; i < K64; i++) b[i] = (unsigned char)(i * 7);
  void *fill[64];
  unsigned n = 0, in_default = 0;
  for (; n < 64; n++) {
    fill[n] = malloc(K64 * 3);
    expect("malloc while tiny fills", fill[n], NULL);
    if (fill[n] && strcmp(pool_name(fill[n]), "default") == 0) in_default++;
  }
  if (!in_default) printf("FAIL tiny never filled\n"), failed = 1;
  calls("default");
  // realloc beyond tiny's room: the block moves to the default pool.
  unsigned char *g = realloc(b, 4 * MIB);
  expect("realloc beyond tiny", g, "default");
  if (g) {
    for (size_t i = 0; i < K64; i++)
      if (g[i] != (unsigned char)(i * 7)) {
        printf("FAIL realloc: byte %zu lost\n", i);
        failed = 1;
        break;
      }
    memset(g, 1, 4 * MIB);
    free(g);
  }
  for (unsigned i = 0; i < n; i++) free(fill[i]);
  return failed;
}

static int emergency(void) {
  unsigned char *b = malloc(K64 * 3);
  expect("malloc in tiny", b, "tiny");
  if (!b) return 1;
  memset(b, 9, K64 * 3);
  void *fill[40];
  for (unsigned n = 0; n < 40; n++) fill[n] = malloc(K64 * 3);
  calls("mmpool.emergency");
  unsigned char *g = realloc(b, 8 * MIB);
  expect("realloc beyond tiny and d", g, "mmpool.emergency");
  if (g && (g[0] != 9 || g[K64 * 3 - 1] != 9))
    printf("FAIL realloc: bytes lost\n"), failed = 1;
  free(g);
  for (unsigned n = 0; n < 40; n++) free(fill[n]);
  return failed;
}

static int forked(void) {
  // The parent allocates in f; so does the child, in its own copy of f.
  unsigned char *b = malloc(K64 * 2);
  expect("malloc in f", b, "f");
  if (!b) return 1;
  memset(b, 5, K64 * 2);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    calls("f");
    memset(b, 6, K64 * 2);
    unsigned char *c = realloc(b, K64 * 4);  // grows in its own copy
    expect("realloc in the child", c, "f");
    if (c && (c[0] != 6 || c[K64 * 2 - 1] != 6))
      printf("FAIL realloc in the child: bytes lost\n"), failed = 1;
    fflush(stdout);
    exit(failed);
  }
  int st;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st)) {
    printf("FAIL the child: status %d\n", st);
    failed = 1;
  }
  if (b[0] != 5 || b[K64 * 2 - 1] != 5)
    printf("FAIL the child's stores reached the parent\n"), failed = 1;
  free(b);
  return failed;
}

static int fill(size_t mib) {
  size_t blk = 100 << 10, n = mib * MIB / blk;
  unsigned char **v = calloc(n, sizeof *v);
  if (!v) return printf("FAIL calloc of the vector\n"), 1;
  unsigned in_default = 0;
  for (size_t i = 0; i < n; i++) {
    v[i] = i % 2 ? calloc(1, blk) : malloc(blk);
    if (!v[i]) return printf("FAIL block %zu: NULL (errno %d)\n", i, errno), 1;
    memset(v[i], (int)(i & 0xff), blk);
    if (strcmp(pool_name(v[i]), "default") == 0) in_default++;
  }
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < blk; j += 4096)
      if (v[i][j] != (unsigned char)(i & 0xff))
        return printf("FAIL block %zu: bytes lost\n", i), 1;
  if (!in_default) return printf("FAIL the file pool never filled\n"), 1;
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
  return 0;
}

int main(int argc, char **argv) {
  int r = 1;
  if (argc > 1 && strcmp(argv[1], "tiny") == 0) r = tiny();
  else if (argc > 1 && strcmp(argv[1], "fork") == 0) r = forked();
  else if (argc > 1 && strcmp(argv[1], "emergency") == 0) r = emergency();
  else if (argc > 2 && strcmp(argv[1], "fill") == 0)
    r = fill(strtoull(argv[2], NULL, 0));
  else fprintf(stderr, "usage: full_probe tiny|emergency|fork|fill MIB\n");
  if (!r) printf("ok\n");
  return r;
}
